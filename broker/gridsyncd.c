/*
 * gridsyncd: the gridsync broker. Thin on purpose: parse settings, set up
 * logging, take the hard open-file limit, set the allocator's thresholds,
 * run the broker until SIGTERM/SIGINT, exit. See gs_broker.h.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "gs_broker.h"
#include "gs_config.h"
#include "gs_log.h"

/* Every client connection costs a file descriptor before any handshake,
 * and the usual soft limit of 1,024 is soon used up by idle peers: take
 * the hard limit, which the administrator set, and log what we have. */
static void
s_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl)) {
        gs_log(GS_LOG_WARN, "fd_limit", "error=\"%s\"", strerror(errno));
        return;
    }
    rlim_t was = rl.rlim_cur;
    if (rl.rlim_cur != rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl)) {
            gs_log(GS_LOG_WARN, "fd_limit", "soft=%llu hard=%llu error=\"%s\"",
                   (unsigned long long) was, (unsigned long long) rl.rlim_max,
                   strerror(errno));
            return;
        }
    }
    gs_log(GS_LOG_INFO, "fd_limit", "soft=%llu hard=%llu was=%llu",
           (unsigned long long) rl.rlim_cur, (unsigned long long) rl.rlim_max,
           (unsigned long long) was);
}

/* The writer allocates a few MiB per group commit (the packed acks and
 * events, handed to the publisher, which frees them on its thread). With
 * glibc's defaults a block that size is mmapped afresh every commit (the
 * dynamic threshold only rises to the size of the last one freed, and an
 * equal request is still at it) or, once in the arena, given back by the
 * next trim, and every page of it faults in again (with the mprotect
 * calls that grow the arena): a fifth to a third of the writer's page
 * faults under bench_load. Fixed thresholds of 32 MiB (glibc's largest
 * mmap threshold on 64 bits) keep such blocks in the arena, and its pages
 * mapped, while the broker runs.
 * An arena keeps at most what it once held at the same time, so the peak
 * does not grow, but what it freed stays mapped (RssAnon after a
 * district's ingest about 15 MB higher); larger blocks (a bigger
 * batch-max-records) still come from mmap. Failure only costs the
 * speed-up. */
static void
s_tune_malloc(void)
{
    if (!mallopt(M_MMAP_THRESHOLD, 32 << 20) || !mallopt(M_TRIM_THRESHOLD, 32 << 20))
        gs_log(GS_LOG_WARN, "malloc_tune", "error=\"mallopt refused the thresholds\"");
}

int
main(int argc, char **argv)
{
    gs_config_t cfg;
    gs_config_defaults(&cfg);
    char err[512];
    int rc = gs_config_parse_args(&cfg, argc, argv, err, sizeof err);
    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "gridsyncd: %s\n", err);
        return 2;
    }
    if (gs_log_setup(cfg.log_level, cfg.log_format)) {
        fprintf(stderr, "gridsyncd: log-level must be debug|info|warn|error and "
                        "log-format kv|json\n");
        return 2;
    }
    s_raise_fd_limit();
    s_tune_malloc();
    gs_broker_t *broker = gs_broker_new(&cfg);
    if (!broker)
        return 1;
    gs_broker_handle_signals(broker);
    rc = gs_broker_run(broker);
    gs_broker_destroy(&broker);
    return rc ? 1 : 0;
}

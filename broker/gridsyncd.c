/*
 * gridsyncd: the gridsync broker. Thin on purpose: parse settings, set up
 * logging, take the hard open-file limit, run the broker until
 * SIGTERM/SIGINT, exit. See gs_broker.h.
 */
#include <errno.h>
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
    gs_broker_t *broker = gs_broker_new(&cfg);
    if (!broker)
        return 1;
    gs_broker_handle_signals(broker);
    rc = gs_broker_run(broker);
    gs_broker_destroy(&broker);
    return rc ? 1 : 0;
}

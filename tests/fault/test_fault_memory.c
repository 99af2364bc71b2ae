/*
 * test_fault_memory: the broker's memory stays flat over a long run.
 *
 * With the idempotency table bounded (--idem-max-entries=1000, the least
 * allowed) nothing the broker keeps grows with the number of uploads: its
 * anonymous resident memory (RssAnon: heap, stacks, ZeroMQ buffers; not
 * LMDB's file mapping, which is page cache) after a warm-up and after many
 * more uploads differs by less than a bound. And it stops cleanly: exit
 * status 0 after SIGTERM, which under the sanitizer build also means that
 * LeakSanitizer found no leak.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault_kit.h"

/* The records go to S_GRIDS grids in turn, as a district's uploads spread
 * over its grids: a cell's person index entry holds a tag per person of the
 * cell (docs/store.md), and the writer's buffers for it are as large as the
 * cell. Four grids of 15,000 records each would measure cells far larger
 * than a grid ever is (a few hundred households), not what the broker keeps
 * per upload. */
#define S_GRIDS 256
static char s_grid_codes[S_GRIDS][16];
static const char *s_grids[S_GRIDS];

static void
s_grids_make(void)
{
    for (int i = 0; i < S_GRIDS; i++) {
        /* streets 001-016 of 440305, community 001, grids 001-016 */
        snprintf(s_grid_codes[i], sizeof s_grid_codes[i], "440305%03d001%03d", 1 + i / 16,
                 1 + i % 16);
        s_grids[i] = s_grid_codes[i];
    }
}

#define S_BOUND_KB (8 * 1024)   /* allowed RssAnon growth */

typedef gs_fk_env_t s_env_t;

static void
test_rss_flat_with_bounded_idempotency(void **state)
{
    s_env_t *e = *state;
    int soak = gs_fk_soak();
    s_grids_make();
#if defined(__SANITIZE_ADDRESS__)
    /* ASan keeps freed blocks in a quarantine of up to 256 MiB to catch use
     * after free; that is growth by design, not the broker's. Keep it small
     * for the broker child (the test process read its options at start). */
    char opts[512];
    const char *old = getenv("ASAN_OPTIONS");
    snprintf(opts, sizeof opts, "%s%squarantine_size_mb=4", old ? old : "",
             old && *old ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
#endif
    const char *extra[] = { "--idem-max-entries=1000", NULL };
    assert_int_equal(gs_tk_broker_start(&e->broker, e->store, extra), 0);
    pid_t pid = e->broker.pid;

    gs_fk_load_opts_t lo = {
        .endpoint = e->broker.upload, .tag = "R", .grids = s_grids,
        .n_grids = S_GRIDS, .records = 4, .members = 2,
        .timeout_ms = 10000, .retries = 5,
    };
    gs_fk_load_t *l = gs_fk_load_start(&lo, 4);
    assert_non_null(l);
    /* warm up: well past the idempotency bound, so expiry is under way */
    uint64_t warm = soak ? 20000 : 3000, more = soak ? 200000 : 12000;
    assert_int_equal(gs_fk_load_wait(l, warm, 60000), 0);
    long anon0 = gs_fk_proc_kb(pid, "RssAnon"), rss0 = gs_fk_proc_kb(pid, "VmRSS");
    assert_true(anon0 > 0);
    assert_int_equal(gs_fk_load_wait(l, warm + more, 120000), 0);
    long anon1 = gs_fk_proc_kb(pid, "RssAnon"), rss1 = gs_fk_proc_kb(pid, "VmRSS");
    double idem = gs_fk_metric(&e->broker, "gridsync_store_idempotency_entries");
    gs_fk_load_stop(l);
    assert_int_equal(gs_fk_load_errors(l), 0);
    uint64_t uploads = gs_fk_load_acked(l);
    fprintf(stderr,
            "uploads %llu -> %llu: RssAnon %ld -> %ld kB (bound +%d kB), VmRSS %ld -> %ld kB "
            "(LMDB pages included), %.0f idempotency entries\n",
            (unsigned long long) warm, (unsigned long long) (warm + more), anon0, anon1,
            S_BOUND_KB, rss0, rss1, idem);
    assert_true(anon1 - anon0 < S_BOUND_KB);
    /* the table is bounded: at most the limit plus one group commit's worth */
    assert_true(idem > 0 && idem <= 1000 + 64);

    size_t n = 0;
    gs_fk_load_acks(l, &n);
    assert_int_equal(n, uploads * (uint64_t) lo.records);
    gs_fk_load_destroy(&l);
    /* drained stop: status 0, and under LSan no leak report */
    assert_int_equal(gs_fk_broker_term(&e->broker), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rss_flat_with_bounded_idempotency, gs_fk_setup,
                                        gs_fk_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_broker_oom: gs_broker_new when memory runs out.
 *
 * The writer thread's tables (one slot per upload of a group commit, up to
 * --batch-max-records) are allocated where a failure can still be
 * reported: gs_broker_new refuses to start, with a log line, instead of a
 * broker that starts and then dereferences NULL at the first upload. The
 * test links the broker library with calloc wrapped (-Wl,--wrap=calloc) so
 * that large allocations fail on demand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gs_broker.h"
#include "gs_config.h"
#include "gs_testkit.h"

void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);

static size_t s_fail_from; /* calloc of at least this many bytes fails; 0 never */
static size_t s_failed;    /* callocs refused */

void *
__wrap_calloc(size_t n, size_t size)
{
    if (s_fail_from && size && n >= s_fail_from / size) {
        s_failed++;
        return NULL;
    }
    return __real_calloc(n, size);
}

static void
s_config(gs_config_t *c, const char *dir)
{
    char err[256], store[128];
    gs_config_defaults(c);
    snprintf(store, sizeof store, "%s/store", dir);
    assert_int_equal(gs_config_set(c, "store", store, err, sizeof err), 0);
    assert_int_equal(gs_config_set(c, "upload-endpoint", "tcp://127.0.0.1:*", err, sizeof err), 0);
    assert_int_equal(gs_config_set(c, "feed-endpoint", "tcp://127.0.0.1:*", err, sizeof err), 0);
    assert_int_equal(gs_config_set(c, "metrics-port", "0", err, sizeof err), 0);
    assert_int_equal(gs_config_set(c, "insecure-dev", "true", err, sizeof err), 0);
    assert_int_equal(gs_config_set(c, "batch-max-records", "1000000", err, sizeof err), 0);
}

static void
test_writer_tables_out_of_memory(void **state)
{
    (void) state;
    char dir[64];
    gs_tk_tmpdir(dir, sizeof dir);
    gs_config_t c;
    s_config(&c, dir);

    /* the writer's tables for 1,000,000 records are megabytes: refuse
     * those, and nothing smaller */
    s_fail_from = 4u << 20;
    s_failed = 0;
    gs_broker_t *b = gs_broker_new(&c);
    s_fail_from = 0;
    assert_true(s_failed > 0);
    assert_null(b);

    /* with memory, the same configuration starts */
    b = gs_broker_new(&c);
    assert_non_null(b);
    gs_broker_destroy(&b);
    assert_null(b);
    gs_tk_rmtree(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_tables_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_bench_walk: the pre-fill's walk over copies of a district
 * (gs_bench_walk_*, which bench_fill applies batch by batch) keeps the
 * records of a batch intact when the batch runs from the end of one copy
 * into the next. Those records point into their copy's generator; when the
 * walk freed it at the switch, the store validated freed memory and
 * rejected a few thousand of the city pre-fill's records as "not valid
 * UTF-8" (and ASan and valgrind report the read).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bench_util.h"

/* The packed bytes of r (malloc'd). */
static uint8_t *
s_pack(const Gridsync__V1__Record *r, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(&r->base);
    uint8_t *b = malloc(*len ? *len : 1);
    assert_non_null(b);
    assert_int_equal(protobuf_c_message_pack(&r->base, b), *len);
    return b;
}

static void
test_batch_across_copies(void **state)
{
    (void) state;
    gs_gen_opts_t o;
    assert_int_equal(gs_bench_fill_opts(&o, 0), 0);
    gs_gen_t *g = gs_gen_new(&o);
    assert_non_null(g);
    uint64_t n0 = (uint64_t) gs_gen_household_count(g) + gs_gen_rental_count(g);
    gs_gen_destroy(&g);

    /* a batch: the last 3 records of copy 0, then the first grid of copy 1 */
    gs_bench_walk_t w;
    assert_int_equal(gs_bench_walk_seek(&w, n0 - 3), 0);
    gs_arena_t *a = gs_arena_new(0);
    assert_non_null(a);
    Gridsync__V1__Record *first[50], *next[50];
    const char *grid;
    size_t k0 = gs_bench_walk_next(&w, a, first, 50, &grid);
    assert_int_equal(k0, 3);
    uint8_t *before[3];
    size_t len[3];
    for (size_t i = 0; i < k0; i++)
        before[i] = s_pack(first[i], &len[i]);
    size_t k1 = gs_bench_walk_next(&w, a, next, 50, &grid);
    assert_true(k1 > 0);
    assert_int_equal(strncmp(grid, "440311", 6), 0);      /* copy 1's district */
    /* copy 1's generator is built: copy 0's records must still read as they did */
    for (size_t i = 0; i < k0; i++) {
        size_t n;
        uint8_t *after = s_pack(first[i], &n);
        assert_int_equal(n, len[i]);
        assert_memory_equal(after, before[i], n);
        free(after);
        free(before[i]);
    }
    gs_arena_destroy(&a);
    gs_bench_walk_deinit(&w);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_across_copies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_store_ids: alias resolution (store/gs_store_ids.h) on a real LMDB
 * store: a canonical id, an alias (which resolves to the canonical entry's
 * current grid, not its own), an unknown id, ids too short or too long,
 * and the damaged cases: an entry that does not decode, an alias that
 * leads nowhere, an alias of an alias. White-box: it writes `ids` entries
 * through the write transaction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gs_store_ids.h"
#include "gs_store_int.h"
#include "st_lib.h"

static const char *G = "110105001001001";
static const char *G_OLD = "110105001002001";

static void
s_put_id(gs_txn_t *t, char kb, const char *id, const char *grid, const char *canon)
{
    uint8_t k[GS_IK_MAX], v[GS_IV_MAX];
    MDB_val key = { gs_key_id(k, kb, id, strlen(id)), k },
            val = { gs_val_id(v, grid, canon, strlen(canon)), v };
    assert_int_equal(gs_txn_put(t, GS_DB_IDS, &key, &val, 0), 0);
}

static int
s_fill(gs_txn_t *t, void *arg)
{
    (void) arg;
    s_put_id(t, 'H', "hh-1", G, "hh-1");            /* canonical */
    s_put_id(t, 'H', "hh-alias", G_OLD, "hh-1");    /* alias, made before a move */
    s_put_id(t, 'H', "hh-dangling", G, "hh-gone");  /* alias to nothing */
    s_put_id(t, 'H', "hh-2", G, "hh-2");
    s_put_id(t, 'H', "hh-chain", G, "hh-alias");    /* alias of an alias */
    MDB_val key = { 7, "Hhh-bad" }, val = { 3, "bad" };
    return gs_txn_put(t, GS_DB_IDS, &key, &val, 0);
}

static void
test_resolve(void **state)
{
    (void) state;
    char *dir = st_tmpdir();
    gs_store_t *st = st_open(dir, NULL);
    assert_int_equal(gs_store_write(st, s_fill, NULL), 0);
    MDB_txn *txn;
    assert_int_equal(gs_rtxn_begin(st, &txn), 0);
    char grid[GS_GRID_LEN + 1], canon[GS_ID_MAX + 1];

    assert_int_equal(gs_ids_resolve(st, txn, 'H', "hh-1", grid, canon), 0);
    assert_string_equal(grid, G);
    assert_string_equal(canon, "hh-1");

    /* the alias resolves to the canonical id and its current grid */
    assert_int_equal(gs_ids_resolve(st, txn, 'H', "hh-alias", grid, canon), 0);
    assert_string_equal(grid, G);
    assert_string_equal(canon, "hh-1");

    /* unknown: another id, another kind, empty, too long */
    assert_int_equal(gs_ids_resolve(st, txn, 'H', "hh-none", grid, canon), MDB_NOTFOUND);
    assert_int_equal(gs_ids_resolve(st, txn, 'R', "hh-1", grid, canon), MDB_NOTFOUND);
    assert_int_equal(gs_ids_resolve(st, txn, 'H', "", grid, canon), MDB_NOTFOUND);
    char longid[GS_ID_MAX + 2];
    memset(longid, 'x', GS_ID_MAX + 1);
    longid[GS_ID_MAX + 1] = 0;
    assert_int_equal(gs_ids_resolve(st, txn, 'H', longid, grid, canon), MDB_NOTFOUND);

    /* damaged */
    assert_int_equal(gs_ids_resolve(st, txn, 'H', "hh-bad", grid, canon), MDB_CORRUPTED);
    assert_int_equal(gs_ids_resolve(st, txn, 'H', "hh-dangling", grid, canon), MDB_CORRUPTED);
    assert_int_equal(gs_ids_resolve(st, txn, 'H', "hh-chain", grid, canon), MDB_CORRUPTED);

    gs_rtxn_end(st, &txn);
    gs_store_destroy(&st);
    st_rmdir(dir);
    free(dir);
}

/* Through the store: a record found under an alias made by a merge. */
static void
test_resolve_after_merge(void **state)
{
    (void) state;
    char *dir = st_tmpdir();
    gs_store_t *st = st_open(dir, NULL);
    gs_arena_t *a = gs_arena_new(0);
    st_rec_t r1 = { .id = "hh-m1", .grid = G, .addr_code = "A1", .pids = { 1 } };
    st_res_t res = st_put(st, a, &r1, ST_NOW_MS);
    if (res.status != GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED)
        fail_msg("put: status %d: %s", res.status, res.message);
    st_rec_t r2 = r1;
    r2.id = "hh-m2";     /* same place, another id: merges */
    res = st_put(st, a, &r2, ST_NOW_MS);
    assert_int_equal(res.status, GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_MERGED);
    MDB_txn *txn;
    assert_int_equal(gs_rtxn_begin(st, &txn), 0);
    char grid[GS_GRID_LEN + 1], canon[GS_ID_MAX + 1];
    assert_int_equal(gs_ids_resolve(st, txn, 'H', "hh-m2", grid, canon), 0);
    assert_string_equal(canon, "hh-m1");
    assert_string_equal(grid, G);
    gs_rtxn_end(st, &txn);
    st_verify_ok(st);
    gs_arena_destroy(&a);
    gs_store_destroy(&st);
    st_rmdir(dir);
    free(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_resolve_after_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

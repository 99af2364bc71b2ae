/*
 * test_store_ids: alias resolution (store/gs_store_ids.h) on a real LMDB
 * store: a canonical id, an alias (which resolves to the canonical entry's
 * current grid, not its own), an unknown id, ids too short or too long,
 * and the damaged cases: an entry that does not decode, an alias that
 * leads nowhere, an alias of an alias. White-box: it writes `ids` entries
 * through the write transaction. And the upgrade of a format 4 store, whose
 * canonical entries repeat the id after the grid (gs_ids_compact).
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
            val = { strcmp(id, canon) ? gs_val_id(v, grid, canon, strlen(canon))
                                      : gs_val_id(v, grid, NULL, 0), v };
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

/* ---- The upgrade from format 4 ------------------------------------------------------ */

/* Each ids entry of the closed store in dir: the value sizes of canonical
 * entries and of aliases into sizes[0] and sizes[1] (summed), their counts
 * into n[0] and n[1]. With old, first rewrite the canonical entries as
 * format 4 wrote them (grid, then the id again) and mark format 4. */
static void
s_ids_scan(const char *dir, int old, size_t sizes[2], size_t n[2])
{
    MDB_env *env;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 24), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    MDB_dbi ids, meta;
    assert_int_equal(mdb_dbi_open(txn, "ids", 0, &ids), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    MDB_cursor *c;
    assert_int_equal(mdb_cursor_open(txn, ids, &c), 0);
    MDB_val k, v;
    sizes[0] = sizes[1] = n[0] = n[1] = 0;
    int rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        char grid[GS_GRID_LEN + 1], canon[GS_ID_MAX + 1];
        assert_int_equal(gs_val_id_parse(k.mv_data, k.mv_size, v.mv_data, v.mv_size, grid,
                                         canon), 0);
        int alias = strlen(canon) != k.mv_size - 1 ||
                    memcmp(canon, (const char *) k.mv_data + 1, k.mv_size - 1) != 0;
        if (old && !alias) {
            /* the key copied: k points into the page the put changes */
            uint8_t ok[GS_IK_MAX], ov[GS_IV_MAX];
            memcpy(ok, k.mv_data, k.mv_size);
            k.mv_data = ok;
            MDB_val val = { gs_val_id(ov, grid, canon, strlen(canon)), ov };
            assert_int_equal(mdb_cursor_put(c, &k, &val, MDB_CURRENT), 0);
            v = val;
        }
        sizes[alias] += v.mv_size;
        n[alias]++;
    }
    assert_int_equal(rc, MDB_NOTFOUND);
    mdb_cursor_close(c);
    if (old) {
        uint8_t fmt[4] = { 4, 0, 0, 0 };
        MDB_val fk = { 6, "format" }, fv = { 4, fmt };
        assert_int_equal(mdb_put(txn, meta, &fk, &fv, 0), 0);
    }
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void
s_resolves(gs_store_t *st)
{
    MDB_txn *txn;
    assert_int_equal(gs_rtxn_begin(st, &txn), 0);
    char grid[GS_GRID_LEN + 1], canon[GS_ID_MAX + 1];
    assert_int_equal(gs_ids_resolve(st, txn, 'H', "hh-u1", grid, canon), 0);
    assert_string_equal(canon, "hh-u1");
    assert_string_equal(grid, G);
    assert_int_equal(gs_ids_resolve(st, txn, 'H', "hh-u2", grid, canon), 0);
    assert_string_equal(canon, "hh-u1");
    assert_int_equal(gs_ids_resolve(st, txn, 'R', "rt-u3", grid, canon), 0);
    assert_string_equal(canon, "rt-u3");
    assert_string_equal(grid, G_OLD);
    gs_rtxn_end(st, &txn);
}

static void
test_upgrade_from_format4(void **state)
{
    (void) state;
    char *dir = st_tmpdir();
    gs_store_t *st = st_open(dir, NULL);
    gs_arena_t *a = gs_arena_new(0);
    st_rec_t r1 = { .id = "hh-u1", .grid = G, .addr_code = "A1", .pids = { 1 } };
    assert_int_equal(st_put(st, a, &r1, ST_NOW_MS).status,
                     GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    st_rec_t r2 = r1;
    r2.id = "hh-u2";     /* same place, another id: an alias */
    assert_int_equal(st_put(st, a, &r2, ST_NOW_MS).status,
                     GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_MERGED);
    st_rec_t r3 = { .kind = 'R', .id = "rt-u3", .grid = G_OLD, .addr_code = "A3" };
    assert_int_equal(st_put(st, a, &r3, ST_NOW_MS).status,
                     GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    gs_store_destroy(&st);

    /* this build writes canonical entries as the grid alone */
    size_t sizes[2], n[2];
    s_ids_scan(dir, 0, sizes, n);
    assert_true(n[0] == 2 && n[1] == 1);
    assert_true(sizes[0] == 2 * GS_GRID_LEN);
    assert_true(sizes[1] == GS_GRID_LEN + strlen("hh-u1"));

    /* what format 4 left */
    s_ids_scan(dir, 1, sizes, n);
    assert_true(sizes[0] == 2 * GS_GRID_LEN + strlen("hh-u1") + strlen("rt-u3"));

    /* read-only before the upgrade: the same answers, verify passes */
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.read_only = 1;
    int err = 0;
    gs_store_t *ro = gs_store_new(dir, &o, &err);
    assert_non_null(ro);
    s_resolves(ro);
    st_verify_ok(ro);
    gs_store_destroy(&ro);

    /* a writable open that is not a broker's refuses to write records */
    st = st_open(dir, NULL);
    assert_int_equal(gs_store_upgraded_from(st), 0);
    gs_arena_reset(a);
    st_rec_t r4 = { .id = "hh-u4", .grid = G, .addr_code = "A4", .pids = { 4 } };
    Gridsync__V1__Record *rec = st_build(a, &r4);
    gs_apply_out_t out;
    assert_int_equal(st_apply(st, a, "dev-1", "up-4", &rec, 1, ST_NOW_MS, &out), GS_EVERSION);
    assert_non_null(strstr(gs_store_errdetail(), "format 4; start gridsyncd on it once"));
    gs_store_destroy(&st);

    /* the broker's (exclusive) open rewrites the canonical entries, once */
    gs_store_opts_t x;
    gs_store_opts_init(&x);
    x.exclusive = 1;
    st = st_open(dir, &x);
    assert_int_equal(gs_store_upgraded_from(st), 4);
    assert_true(gs_store_ids_compacted(st) == 2);
    assert_true(gs_store_persons_built(st) == 0);
    s_resolves(st);
    st_verify_ok(st);
    gs_arena_reset(a);
    assert_int_equal(st_put(st, a, &r4, ST_NOW_MS).status,
                     GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    st_verify_ok(st);
    gs_store_destroy(&st);
    s_ids_scan(dir, 0, sizes, n);
    assert_true(n[0] == 3 && n[1] == 1);
    assert_true(sizes[0] == 3 * GS_GRID_LEN);
    assert_true(sizes[1] == GS_GRID_LEN + strlen("hh-u1"));
    st = st_open(dir, &x);
    assert_int_equal(gs_store_upgraded_from(st), 0);
    assert_true(gs_store_ids_compacted(st) == 0);
    gs_store_destroy(&st);
    gs_arena_destroy(&a);
    st_rmdir(dir);
    free(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_resolve_after_merge),
        cmocka_unit_test(test_upgrade_from_format4),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

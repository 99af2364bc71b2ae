/*
 * test_store_txn: the store's write transaction (store/gs_store_txn.h) on a
 * real LMDB store in a temporary directory: puts and gets that commit, the
 * sticky error (nothing after the first failure, commit becomes abort),
 * absence that is not a failure, the cursors gets and puts go through
 * (fresh after a failed commit), the one translation of LMDB and errno
 * codes into GS_E* codes, map growth and redo on MDB_MAP_FULL, a commit
 * that fails like a full disk, and a read-only store.
 *
 * A white-box test of a store module: it includes the store's internal
 * header (and so lmdb.h), as only store code and its own tests may.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gs_store_int.h"
#include "st_lib.h"

typedef struct {
    char *dir;
    gs_store_t *st;
} s_fx_t;

static int
s_setup(void **state)
{
    s_fx_t *f = calloc(1, sizeof *f);
    f->dir = st_tmpdir();
    f->st = st_open(f->dir, NULL);
    *state = f;
    return 0;
}

static int
s_teardown(void **state)
{
    s_fx_t *f = *state;
    gs_store_destroy(&f->st);
    st_rmdir(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* A raw meta value through the debug hook: 0 or GS_ENOTFOUND. */
static int
s_meta(gs_store_t *st, const char *key, char *val, size_t cap)
{
    size_t n = 0;
    int rc = gs_store_debug_get(st, "meta", key, strlen(key), val, cap - 1, &n);
    val[rc == 0 ? (n < cap ? n : cap - 1) : 0] = 0;
    return rc;
}

static int
s_put_str(gs_txn_t *t, const char *key, const char *val)
{
    MDB_val k = { strlen(key), (void *) key }, v = { strlen(val), (void *) val };
    return gs_txn_put(t, GS_DB_META, &k, &v, 0);
}

/* ---- Commit, get, absence --------------------------------------------------- */

static int
s_put_two(gs_txn_t *t, void *arg)
{
    (void) arg;
    s_put_str(t, "t-a", "one");
    s_put_str(t, "t-b", "two");
    MDB_val k = { 3, "t-a" }, v;
    assert_int_equal(gs_txn_get(t, GS_DB_META, &k, &v), 0);
    assert_int_equal(v.mv_size, 3);
    assert_memory_equal(v.mv_data, "one", 3);
    /* absence is an answer, not a failure */
    MDB_val nk = { 7, "t-none1" };
    assert_int_equal(gs_txn_get(t, GS_DB_META, &nk, &v), GS_ENOTFOUND);
    assert_int_equal(gs_txn_del(t, GS_DB_META, &nk), GS_ENOTFOUND);
    assert_int_equal(t->err, 0);
    return s_put_str(t, "t-c", "three");
}

static void
test_commit(void **state)
{
    s_fx_t *f = *state;
    assert_int_equal(gs_store_write(f->st, s_put_two, NULL), 0);
    char b[16];
    assert_int_equal(s_meta(f->st, "t-a", b, sizeof b), 0);
    assert_string_equal(b, "one");
    assert_int_equal(s_meta(f->st, "t-c", b, sizeof b), 0);
    assert_string_equal(b, "three");
}

/* ---- The transaction's cursors ---------------------------------------------------- */

/* Gets and puts go through one cursor per table for the whole transaction:
 * keys in any order, a get between puts, a delete made by mdb_del beside
 * it, appends, all give what mdb_get and mdb_put would. */
static int
s_cursor_mix(gs_txn_t *t, void *arg)
{
    int *round = arg;
    char key[16], val[16];
    for (int i = 0; i < 200; i++) {
        int j = (i * 37) % 200;     /* not in key order */
        snprintf(key, sizeof key, "c-%03d", j);
        snprintf(val, sizeof val, "%d/%d", *round, j);
        assert_int_equal(s_put_str(t, key, val), 0);
        MDB_val k = { strlen(key), key }, v;
        snprintf(key, sizeof key, "c-%03d", (j * 7) % 200);
        k.mv_size = strlen(key);
        int rc = gs_txn_get(t, GS_DB_META, &k, &v);
        assert_true(rc == 0 || rc == GS_ENOTFOUND);
    }
    for (int j = 0; j < 200; j += 3) {
        snprintf(key, sizeof key, "c-%03d", j);
        MDB_val k = { strlen(key), key };
        assert_int_equal(gs_txn_del(t, GS_DB_META, &k), 0);
    }
    for (int j = 0; j < 200; j++) {
        snprintf(key, sizeof key, "c-%03d", j);
        snprintf(val, sizeof val, "%d/%d", *round, j);
        MDB_val k = { strlen(key), key }, v;
        int rc = gs_txn_get(t, GS_DB_META, &k, &v);
        if (j % 3 == 0) {
            assert_int_equal(rc, GS_ENOTFOUND);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(v.mv_size, strlen(val));
            assert_memory_equal(v.mv_data, val, v.mv_size);
        }
    }
    /* appends after the last key, through the same cursor */
    for (int j = 0; j < 50; j++) {
        uint8_t kb[8];
        gs_be64_put(kb, (uint64_t) (*round * 1000 + j));
        MDB_val k = { 8, kb }, v = { 1, "x" };
        assert_int_equal(gs_txn_put(t, GS_DB_LOG, &k, &v, MDB_APPEND), 0);
    }
    assert_non_null(t->cur[GS_DB_META]);
    return 0;
}

static void
test_cursors(void **state)
{
    s_fx_t *f = *state;
    /* a failed commit: nothing of it stays, and the next transaction's
     * cursors start afresh */
    int round = 1;
    gs_store_debug_fail_commit(f->st, EIO);
    assert_int_equal(gs_store_write(f->st, s_cursor_mix, &round), GS_EIO);
    char b[16];
    assert_int_equal(s_meta(f->st, "c-001", b, sizeof b), GS_ENOTFOUND);
    round = 2;
    assert_int_equal(gs_store_write(f->st, s_cursor_mix, &round), 0);
    assert_int_equal(s_meta(f->st, "c-001", b, sizeof b), 0);
    assert_string_equal(b, "2/1");
    assert_int_equal(s_meta(f->st, "c-003", b, sizeof b), GS_ENOTFOUND);
    round = 3;
    assert_int_equal(gs_store_write(f->st, s_cursor_mix, &round), 0);
    assert_int_equal(s_meta(f->st, "c-199", b, sizeof b), 0);
    assert_string_equal(b, "3/199");
    uint8_t kb[8], v[2];
    size_t vl = 0;
    gs_be64_put(kb, 3049);
    assert_int_equal(gs_store_debug_get(f->st, "log", kb, 8, v, sizeof v, &vl), 0);
    gs_be64_put(kb, 1000);
    assert_int_equal(gs_store_debug_get(f->st, "log", kb, 8, v, sizeof v, &vl), GS_ENOTFOUND);
}

/* ---- The sticky error ----------------------------------------------------------- */

static int
s_fail_midway(gs_txn_t *t, void *arg)
{
    (void) arg;
    assert_int_equal(s_put_str(t, "t-x", "before"), 0);
    /* a value that does not decode: translated once, kept */
    assert_int_equal(gs_txn_fail(t, MDB_CORRUPTED, "a test value"), GS_ECORRUPT);
    assert_non_null(strstr(gs_store_errdetail(), "a test value"));
    /* the first failure wins */
    assert_int_equal(gs_txn_fail(t, ENOSPC, "later"), GS_ECORRUPT);
    assert_int_equal(t->map_full, 0);
    /* nothing happens after it, and every call says so */
    assert_int_equal(s_put_str(t, "t-y", "after"), GS_ECORRUPT);
    MDB_val k = { 3, "t-x" }, v;
    assert_int_equal(gs_txn_get(t, GS_DB_META, &k, &v), GS_ECORRUPT);
    assert_int_equal(gs_txn_del(t, GS_DB_META, &k), GS_ECORRUPT);
    size_t n;
    assert_int_equal(gs_txn_count(t, GS_DB_META, &n), GS_ECORRUPT);
    return 0;   /* even when the caller says "commit", it is an abort */
}

static void
test_sticky(void **state)
{
    s_fx_t *f = *state;
    assert_int_equal(gs_store_write(f->st, s_fail_midway, NULL), GS_ECORRUPT);
    char b[16];
    assert_int_equal(s_meta(f->st, "t-x", b, sizeof b), GS_ENOTFOUND);
    assert_int_equal(s_meta(f->st, "t-y", b, sizeof b), GS_ENOTFOUND);
}

/* A write function's own answer (not a storage failure) aborts too. */
static int
s_refuse(gs_txn_t *t, void *arg)
{
    (void) arg;
    s_put_str(t, "t-r", "refused");
    gs_store_detail("refused by the test");
    return GS_EINVAL;
}

static void
test_own_answer_aborts(void **state)
{
    s_fx_t *f = *state;
    assert_int_equal(gs_store_write(f->st, s_refuse, NULL), GS_EINVAL);
    assert_string_equal(gs_store_errdetail(), "refused by the test");
    char b[16];
    assert_int_equal(s_meta(f->st, "t-r", b, sizeof b), GS_ENOTFOUND);
}

/* ---- Translation ------------------------------------------------------------------- */

static void
test_translate(void **state)
{
    s_fx_t *f = *state;
    static const struct { int raw; int gs; int map_full; } cases[] = {
        { MDB_MAP_FULL, GS_EFULL, 1 },  { ENOSPC, GS_EFULL, 0 },
        { EIO, GS_EIO, 0 },             { MDB_CORRUPTED, GS_ECORRUPT, 0 },
        { ENOMEM, GS_ENOMEM, 0 },       { MDB_BAD_VALSIZE, GS_EINVAL, 0 },
        { MDB_READERS_FULL, GS_EBUSY, 0 }, { GS_EINVAL, GS_EINVAL, 0 },
        { MDB_PANIC, GS_EINTERNAL, 0 },
    };
    pthread_mutex_lock(&f->st->write_lock);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gs_txn_t t;
        assert_int_equal(gs_txn_begin(f->st, &t), 0);
        assert_int_equal(gs_txn_fail(&t, cases[i].raw, "case"), cases[i].gs);
        assert_int_equal(t.map_full, cases[i].map_full);
        assert_int_equal(gs_txn_commit(&t), cases[i].gs);
        assert_null(t.txn);
        gs_txn_abort(&t);   /* safe after the end */
    }
    pthread_mutex_unlock(&f->st->write_lock);
}

/* ---- Map growth -------------------------------------------------------------------- */

typedef struct {
    int runs;               /* attempts made */
} s_fill_t;

/* 4 MiB of values: more than the 1 MiB map the test starts with. */
static int
s_fill(gs_txn_t *t, void *arg)
{
    s_fill_t *fl = arg;
    fl->runs++;
    static uint8_t val[4000];
    memset(val, 'v', sizeof val);
    for (int i = 0; i < 1000 && !t->err; i++) {
        char key[32];
        snprintf(key, sizeof key, "fill-%04d", i);
        MDB_val k = { strlen(key), key }, v = { sizeof val, val };
        gs_txn_put(t, GS_DB_META, &k, &v, 0);
    }
    return t->err;
}

static void
test_map_full_grows(void **state)
{
    (void) state;
    char *dir = st_tmpdir();
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.map_size = 1 << 20;
    gs_store_t *st = st_open(dir, &o);
    s_fill_t fl = { 0 };
    uint32_t grows = 0;
    pthread_mutex_lock(&st->write_lock);
    int rc = gs_store_write_locked(st, s_fill, &fl, &grows);
    pthread_mutex_unlock(&st->write_lock);
    assert_int_equal(rc, 0);
    assert_true(grows >= 2);
    assert_int_equal(fl.runs, (int) grows + 1);    /* redone from the start each time */
    char b[8];
    assert_int_equal(s_meta(st, "fill-0999", b, sizeof b), 0);
    gs_store_destroy(&st);
    st_rmdir(dir);
    free(dir);
}

/* At map_max, MAP_FULL is the answer: GS_EFULL, nothing stored. */
static void
test_map_max(void **state)
{
    (void) state;
    char *dir = st_tmpdir();
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.map_size = 1 << 20;
    o.map_max = 1 << 20;
    gs_store_t *st = st_open(dir, &o);
    s_fill_t fl = { 0 };
    assert_int_equal(gs_store_write(st, s_fill, &fl), GS_EFULL);
    char b[8];
    assert_int_equal(s_meta(st, "fill-0000", b, sizeof b), GS_ENOTFOUND);
    gs_store_destroy(&st);
    st_rmdir(dir);
    free(dir);
}

/* ---- A commit that fails like a full disk, a read-only store --------------------------- */

static void
test_commit_fails(void **state)
{
    s_fx_t *f = *state;
    gs_store_debug_fail_commit(f->st, ENOSPC);
    assert_int_equal(gs_store_write(f->st, s_put_two, NULL), GS_EFULL);
    char b[16];
    assert_int_equal(s_meta(f->st, "t-a", b, sizeof b), GS_ENOTFOUND);
    /* the next one commits */
    assert_int_equal(gs_store_write(f->st, s_put_two, NULL), 0);
    assert_int_equal(s_meta(f->st, "t-a", b, sizeof b), 0);
}

static void
test_read_only(void **state)
{
    s_fx_t *f = *state;
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.read_only = 1;
    gs_store_t *ro = st_open(f->dir, &o);
    assert_int_equal(gs_store_write(ro, s_put_two, NULL), GS_EREADONLY);
    gs_store_destroy(&ro);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cursors, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sticky, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_own_answer_aborts, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_translate, s_setup, s_teardown),
        cmocka_unit_test(test_map_full_grows),
        cmocka_unit_test(test_map_max),
        cmocka_unit_test_setup_teardown(test_commit_fails, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_read_only, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

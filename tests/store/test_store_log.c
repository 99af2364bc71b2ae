/*
 * test_store_log: the change log (store/gs_store_log.h) on a real LMDB
 * store: events appended with consecutive seqs across transactions, each
 * stamped with the last seq under every level prefix of its grid
 * (prev_seq), a move's two events linked by the record's back pointer, the
 * cell metadata and chain heads written once by the flush, and the feed
 * reading them back by either path. White-box: it drives gs_log_* inside
 * write transactions of its own. And the log's bodies at rest
 * (gs_store_lz.h): a store of format 5, whose bodies are all raw, reads the
 * same events as the LZ4 bodies this build writes, and a broker's open
 * upgrades it to the current format without rewriting them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gs_store_debug.h"
#include "gs_store_int.h"
#include "gs_store_log.h"
#include "gs_store_lz.h"
#include "st_lib.h"

static const char *G1 = "110105001001001";
static const char *G2 = "110105001001002";     /* same level-4 prefix as G1 */
static const char *G3 = "120105001001001";     /* another level-1 prefix */

typedef struct {
    const char *grids[4];           /* one event per grid (NULL ends) */
    uint64_t seqs[4];               /* seqs they got */
    size_t n_evs;                   /* events the log reported */
} s_batch_t;

static const uint8_t s_rec[] = { 0x0a, 0x00 };    /* bytes standing for a record */

static int
s_batch(gs_txn_t *t, void *arg)
{
    s_batch_t *b = arg;
    gs_log_t log;
    gs_log_init(&log);
    gs_wbuf_t out;
    gs_wbuf_init(&out);
    int rc = gs_log_begin(&log, t, &out, ST_NOW_MS);
    for (int i = 0; rc == 0 && i < 4 && b->grids[i]; i++) {
        gs_log_event_t ev = { GRIDSYNC__V1__OPERATION__OPERATION_UPSERT, b->grids[i], NULL,
                              GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD, "hh",
                              1, "dev-1", s_rec, sizeof s_rec, 0, NULL, 0, 0 };
        rc = gs_log_emit(&log, &ev, &b->seqs[i]);
    }
    if (rc == 0)
        rc = gs_log_flush(&log);
    b->n_evs = log.n_evs;
    /* the copies handed out decode to what was written */
    for (size_t i = 0; rc == 0 && i < log.n_evs; i++) {
        gs_event_fields_t f;
        assert_int_equal(gs_event_scan(out.data + log.evs[i].off, log.evs[i].len, &f), 0);
        assert_true(f.seq == log.evs[i].seq);
        assert_memory_equal(f.grid, log.evs[i].grid, GS_GRID_LEN);
    }
    gs_wbuf_deinit(&out);
    gs_log_deinit(&log);
    return rc;
}

typedef struct {
    uint64_t seq[16];
    gs_event_fields_t f[16];
    size_t n;
    uint8_t *copy[16];
} s_feed_t;

static int
s_take(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    s_feed_t *fd = arg;
    (void) grid;
    assert_true(fd->n < 16);
    fd->copy[fd->n] = malloc(len);
    memcpy(fd->copy[fd->n], data, len);
    fd->seq[fd->n] = seq;
    assert_int_equal(gs_event_scan(fd->copy[fd->n], len, &fd->f[fd->n]), 0);
    fd->n++;
    return 0;
}

static void
s_feed_free(s_feed_t *fd)
{
    for (size_t i = 0; i < fd->n; i++)
        free(fd->copy[i]);
    memset(fd, 0, sizeof *fd);
}

static void
test_emit_chain_cells(void **state)
{
    (void) state;
    char *dir = st_tmpdir();
    gs_store_t *st = st_open(dir, NULL);

    s_batch_t b1 = { { G1, G2, NULL }, { 0 }, 0 };
    assert_int_equal(gs_store_write(st, s_batch, &b1), 0);
    assert_int_equal(b1.n_evs, 2);
    assert_true(b1.seqs[0] == 1 && b1.seqs[1] == 2);
    s_batch_t b2 = { { G3, G1, NULL }, { 0 }, 0 };
    assert_int_equal(gs_store_write(st, s_batch, &b2), 0);
    assert_true(b2.seqs[0] == 3 && b2.seqs[1] == 4);    /* continues across transactions */

    uint64_t head;
    assert_int_equal(gs_store_head(st, &head), 0);
    assert_true(head == 4);

    /* chain heads: the last seq under each level prefix */
    uint64_t last;
    assert_int_equal(gs_store_prefix_last(st, "", &last), 0);
    assert_true(last == 4);
    assert_int_equal(gs_store_prefix_last(st, "11", &last), 0);
    assert_true(last == 4);
    assert_int_equal(gs_store_prefix_last(st, "12", &last), 0);
    assert_true(last == 3);
    assert_int_equal(gs_store_prefix_last(st, G2, &last), 0);
    assert_true(last == 2);
    assert_int_equal(gs_store_prefix_last(st, "13", &last), 0);
    assert_true(last == 0);

    /* the feed by both paths: same events, prev_seq is the chain before each */
    for (int path = 1; path <= 2; path++) {
        s_feed_t fd;
        memset(&fd, 0, sizeof fd);
        const char *pf[] = { "11" };
        uint64_t next, h;
        assert_int_equal(gs_store_events_path(st, pf, 1, 0, 0, s_take, &fd, &next, &h, path),
                         0);
        assert_int_equal(fd.n, 3);
        assert_true(fd.seq[0] == 1 && fd.seq[1] == 2 && fd.seq[2] == 4);
        assert_true(next == 4 && h == 4);
        /* event 4 (G1): root was at 3, "11" at 2, G1 itself at 1 */
        assert_int_equal(fd.f[2].n_prev_seq, GS_LEVELS);
        assert_true(fd.f[2].prev_seq[0] == 3);
        assert_true(fd.f[2].prev_seq[1] == 2);
        assert_true(fd.f[2].prev_seq[GS_LEVELS - 1] == 1);
        /* event 2 (G2): its own cell empty before it */
        assert_true(fd.f[1].prev_seq[GS_LEVELS - 1] == 0);
        assert_true(fd.f[1].prev_seq[GS_LEVELS - 2] == 1);
        assert_int_equal(fd.f[0].record_len, sizeof s_rec);
        s_feed_free(&fd);
    }
    gs_store_destroy(&st);
    st_rmdir(dir);
    free(dir);
}

/* Through the store: a move writes MOVE_OUT then MOVE_IN sharing a version,
 * the second pointing back to the first, and the cells follow. */
typedef struct {
    uint64_t last[2];
    uint32_t households[2];
} s_cells_t;

static int
s_cell(void *arg, const char *grid, const gs_cell_meta_t *m)
{
    s_cells_t *c = arg;
    int i = strcmp(grid, G1) == 0 ? 0 : strcmp(grid, G3) == 0 ? 1 : -1;
    if (i >= 0) {
        c->last[i] = m->last_seq;
        c->households[i] = m->households;
    }
    return 0;
}

static void
test_move(void **state)
{
    (void) state;
    char *dir = st_tmpdir();
    gs_store_t *st = st_open(dir, NULL);
    gs_arena_t *a = gs_arena_new(0);
    st_rec_t r = { .id = "hh-mv", .grid = G1, .addr_code = "A9", .pids = { 1 } };
    st_res_t first = st_put(st, a, &r, ST_NOW_MS);
    if (first.seq != 1)
        fail_msg("first put: status %d reason %d: %s", first.status, first.reason,
                 first.message);
    r.grid = G3;
    r.base = 1;
    st_res_t res = st_put(st, a, &r, ST_NOW_MS);
    assert_int_equal(res.status, GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    assert_int_equal(res.seq, 3);
    assert_int_equal(res.n_events, 2);
    s_feed_t fd;
    memset(&fd, 0, sizeof fd);
    const char *all[] = { "" };
    assert_int_equal(gs_store_events(st, all, 1, 1, 0, s_take, &fd, NULL, NULL), 0);
    assert_int_equal(fd.n, 2);
    assert_int_equal(fd.f[0].op, GRIDSYNC__V1__OPERATION__OPERATION_MOVE_OUT);
    assert_int_equal(fd.f[1].op, GRIDSYNC__V1__OPERATION__OPERATION_MOVE_IN);
    assert_true(fd.f[0].version == 2 && fd.f[1].version == 2);
    s_feed_free(&fd);
    s_cells_t c = { { 0, 0 }, { 9, 9 } };
    assert_int_equal(gs_store_cells(st, "", s_cell, &c), 0);
    assert_true(c.last[0] == 2 && c.last[1] == 3);
    assert_int_equal(c.households[0], 0);
    assert_int_equal(c.households[1], 1);
    st_verify_ok(st);
    gs_arena_destroy(&a);
    gs_store_destroy(&st);
    st_rmdir(dir);
    free(dir);
}

/* The chain heads are derived from the cells and kept by the writer, not
 * written: the chain table stays empty, a commit that failed leaves no
 * trace in them (the next event points past it), and a store opened again
 * derives the same heads. */
static void
test_chain_derived(void **state)
{
    (void) state;
    char *dir = st_tmpdir();
    gs_store_t *st = st_open(dir, NULL);
    s_batch_t b1 = { { G1, G3, NULL }, { 0 }, 0 };
    assert_int_equal(gs_store_write(st, s_batch, &b1), 0);
    uint8_t v[8];
    size_t vl;
    assert_int_equal(gs_store_debug_get(st, "chain", "*", 1, v, sizeof v, &vl), GS_ENOTFOUND);

    /* a failed commit: its events (seqs 3 and 4) never happened */
    gs_store_debug_fail_commit(st, EIO);
    s_batch_t lost = { { G2, G1, NULL }, { 0 }, 0 };
    assert_int_equal(gs_store_write(st, s_batch, &lost), GS_EIO);
    s_batch_t b2 = { { G2, NULL }, { 0 }, 0 };
    assert_int_equal(gs_store_write(st, s_batch, &b2), 0);
    assert_true(b2.seqs[0] == 3);
    s_feed_t fd;
    memset(&fd, 0, sizeof fd);
    const char *pf[] = { "" };
    uint64_t next, h;
    assert_int_equal(gs_store_events(st, pf, 1, 2, 0, s_take, &fd, &next, &h), 0);
    assert_int_equal(fd.n, 1);
    /* event 3 (G2): root at 2 (G3), "11" and its level 2 and 3 at 1 (G1), G2's cell at 0 */
    assert_true(fd.f[0].prev_seq[0] == 2 && fd.f[0].prev_seq[1] == 1);
    assert_true(fd.f[0].prev_seq[GS_LEVELS - 1] == 0);
    s_feed_free(&fd);
    st_verify_ok(st);

    /* opened again: the same heads, derived from the cells */
    gs_store_destroy(&st);
    st = st_open(dir, NULL);
    s_batch_t b3 = { { G1, NULL }, { 0 }, 0 };
    assert_int_equal(gs_store_write(st, s_batch, &b3), 0);
    memset(&fd, 0, sizeof fd);
    assert_int_equal(gs_store_events(st, pf, 1, 3, 0, s_take, &fd, &next, &h), 0);
    assert_int_equal(fd.n, 1);
    assert_true(fd.f[0].prev_seq[0] == 3 && fd.f[0].prev_seq[1] == 3);
    assert_true(fd.f[0].prev_seq[GS_LEVELS - 1] == 1);
    s_feed_free(&fd);
    uint64_t last;
    assert_int_equal(gs_store_prefix_last(st, "12", &last), 0);
    assert_true(last == 2);
    st_verify_ok(st);
    gs_store_destroy(&st);
    st_rmdir(dir);
    free(dir);
}

/* ---- Bodies at rest: format 5 (raw) and 6 (LZ4 when shorter) ------------------- */

/* Every event of the store as delivered: seq and bytes. */
typedef struct s_evs {
    uint64_t seq[16];
    uint8_t *data[16];
    size_t len[16];
    size_t n;
} s_evs_t;

static int
s_keep(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    (void) grid;
    s_evs_t *e = arg;
    assert_true(e->n < 16);
    e->seq[e->n] = seq;
    e->data[e->n] = malloc(len);
    assert_non_null(e->data[e->n]);
    memcpy(e->data[e->n], data, len);
    e->len[e->n++] = len;
    return 0;
}

static void
s_evs_free(s_evs_t *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->data[i]);
    e->n = 0;
}

/* The store's events equal want, byte for byte. */
static void
s_evs_same(gs_store_t *st, const s_evs_t *want)
{
    s_evs_t got = { .n = 0 };
    const char *pf[] = { "" };
    uint64_t next, head;
    assert_int_equal(gs_store_events(st, pf, 1, 0, 0, s_keep, &got, &next, &head), 0);
    assert_int_equal(got.n, want->n);
    for (size_t i = 0; i < got.n; i++) {
        assert_true(got.seq[i] == want->seq[i] && got.len[i] == want->len[i]);
        assert_memory_equal(got.data[i], want->data[i], got.len[i]);
    }
    s_evs_free(&got);
}

/* Count the log's bodies by form (n[0] raw, n[1] LZ4). With to_raw, first
 * rewrite every LZ4 body as the raw event and mark format 5: what a store
 * of format 5 holds. */
static void
s_log_bodies(const char *dir, int to_raw, size_t n[2])
{
    MDB_env *env;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 24), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    MDB_dbi log, meta;
    assert_int_equal(mdb_dbi_open(txn, "log", 0, &log), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    gs_wbuf_t scratch, val;
    gs_wbuf_init(&scratch);
    gs_wbuf_init(&val);
    for (uint64_t seq = 1;; seq++) {
        uint8_t kb[GS_LK_LEN];
        gs_key_log(kb, seq);
        MDB_val k = { GS_LK_LEN, kb }, v;
        int rc = mdb_get(txn, log, &k, &v);
        if (rc == MDB_NOTFOUND)
            break;
        assert_int_equal(rc, 0);
        const uint8_t *body = (const uint8_t *) v.mv_data + GS_LOG_HDR;
        int lz = body[0] == GS_LZ_TAG;
        if (to_raw && lz) {
            const uint8_t *ev;
            size_t len;
            assert_int_equal(gs_lz_decode(body, v.mv_size - GS_LOG_HDR, &scratch, &ev, &len),
                             0);
            gs_wbuf_reset(&val);
            gs_wbuf_put(&val, v.mv_data, GS_LOG_HDR);
            gs_wbuf_put(&val, ev, len);
            assert_false(val.failed);
            MDB_val nv = { val.len, val.data };
            assert_int_equal(mdb_put(txn, log, &k, &nv, 0), 0);
            lz = 0;
        }
        n[lz]++;
    }
    if (to_raw) {
        uint8_t fmt[4] = { 5, 0, 0, 0 };
        MDB_val fk = { 6, "format" }, fv = { 4, fmt };
        assert_int_equal(mdb_put(txn, meta, &fk, &fv, 0), 0);
    }
    gs_wbuf_deinit(&scratch);
    gs_wbuf_deinit(&val);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static int
s_hist_count(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    (void) seq;
    (void) grid;
    gs_event_fields_t f;
    assert_int_equal(gs_event_scan(data, len, &f), 0);
    assert_non_null(f.record);
    ++*(size_t *) arg;
    return 0;
}

/* Reads that go through the log: the feed, a record, its history, verify. */
static void
s_reads_ok(gs_store_t *st, const s_evs_t *want)
{
    s_evs_same(st, want);
    uint64_t version = 0;
    Gridsync__V1__Record *r = st_get(st, GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD,
                                     "hh-z1", &version, NULL);
    assert_non_null(r);
    assert_true(version == 2);
    gridsync__v1__record__free_unpacked(r, NULL);
    size_t hist = 0;
    assert_int_equal(gs_store_history(st, GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD,
                                      "hh-z1", s_hist_count, &hist), 0);
    assert_true(hist == 2);
    st_verify_ok(st);
}

static void
test_upgrade_from_format5(void **state)
{
    (void) state;
    char *dir = st_tmpdir();
    gs_store_t *st = st_open(dir, NULL);
    gs_arena_t *a = gs_arena_new(0);
    /* address text that repeats, as real records' texts do: it compresses */
    st_rec_t r1 = { .id = "hh-z1", .grid = G1, .addr_code = "A1", .pids = { 1, 2, 3 },
                    .note = "Chaoyang District, Jianguo Road 88, Building 3, Unit 2, "
                            "Room 1201; Chaoyang District, Jianguo Road 88, Building 3" };
    assert_int_equal(st_put(st, a, &r1, ST_NOW_MS).status,
                     GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    st_rec_t r2 = r1;
    r2.id = "hh-z2";
    r2.grid = G3;
    r2.addr_code = "A2";
    r2.pids[0] = 4;
    assert_int_equal(st_put(st, a, &r2, ST_NOW_MS).status,
                     GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    r1.base = 1;
    r1.pids[3] = 5;
    assert_int_equal(st_put(st, a, &r1, ST_NOW_MS).status,
                     GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    s_evs_t want = { .n = 0 };
    const char *pf[] = { "" };
    uint64_t next, head;
    assert_int_equal(gs_store_events(st, pf, 1, 0, 0, s_keep, &want, &next, &head), 0);
    assert_int_equal(want.n, 3);
    s_reads_ok(st, &want);
    gs_store_destroy(&st);

    /* this build wrote LZ4 bodies; make them what format 5 wrote */
    size_t n[2] = { 0, 0 };
    s_log_bodies(dir, 0, n);
    assert_true(n[1] == 3);
    n[0] = n[1] = 0;
    s_log_bodies(dir, 1, n);
    assert_true(n[0] == 3 && n[1] == 0);

    /* read-only: the same events, records and history */
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.read_only = 1;
    int err = 0;
    gs_store_t *ro = gs_store_new(dir, &o, &err);
    assert_non_null(ro);
    s_reads_ok(ro, &want);
    gs_store_destroy(&ro);

    /* a writable open that is not a broker's reads, and writes no records */
    st = st_open(dir, NULL);
    assert_int_equal(gs_store_upgraded_from(st), 0);
    s_reads_ok(st, &want);
    gs_arena_reset(a);
    st_rec_t r3 = r2;
    r3.id = "hh-z3";
    r3.addr_code = "A3";
    r3.pids[0] = 6;
    Gridsync__V1__Record *rec = st_build(a, &r3);
    gs_apply_out_t out;
    assert_int_equal(st_apply(st, a, "dev-1", "up-z3", &rec, 1, ST_NOW_MS, &out), GS_EVERSION);
    assert_non_null(strstr(gs_store_errdetail(), "format 5; start gridsyncd on it once"));
    gs_store_destroy(&st);

    /* the broker's open marks the current format and rewrites nothing */
    gs_store_opts_t x;
    gs_store_opts_init(&x);
    x.exclusive = 1;
    st = st_open(dir, &x);
    assert_int_equal(gs_store_upgraded_from(st), 5);
    assert_true(gs_store_ids_compacted(st) == 0 && gs_store_persons_built(st) == 0);
    s_reads_ok(st, &want);
    gs_arena_reset(a);
    assert_int_equal(st_put(st, a, &r3, ST_NOW_MS).status,
                     GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    st_verify_ok(st);
    gs_store_destroy(&st);
    n[0] = n[1] = 0;
    s_log_bodies(dir, 0, n);
    assert_true(n[0] == 3 && n[1] == 1);     /* old raw, new LZ4, side by side */
    st = st_open(dir, &x);
    assert_int_equal(gs_store_upgraded_from(st), 0);
    gs_store_destroy(&st);

    s_evs_free(&want);
    gs_arena_destroy(&a);
    st_rmdir(dir);
    free(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emit_chain_cells),
        cmocka_unit_test(test_chain_derived),
        cmocka_unit_test(test_move),
        cmocka_unit_test(test_upgrade_from_format5),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

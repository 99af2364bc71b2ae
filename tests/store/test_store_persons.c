/*
 * test_store_persons: the person index (store/gs_store_persons.h) on a real
 * LMDB store: one set of HMAC tags per cell that follows every write (new,
 * void, revive, move), the lookups that read it, verify noticing a set that
 * differs from the records, and the upgrade of a format 3 store (one entry
 * per ref, idempotency entries without their encoding byte) that an older
 * build left: readable before, refused for record writes by a non-broker
 * open, rebuilt by the broker's exclusive open, its remembered answers
 * replayed byte for byte; the upgrade of a format 6 store (every person ref
 * of a record in full) beside the tags format 7 keeps; and two persons
 * whose HMACs share their tag, never confused; the duplicate report
 * refusing on a format 7 store opened without its secret.key.
 * White-box: it reads the table's raw values and writes the older layout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gs_store_debug.h"
#include "gs_store_int.h"
#include "gs_store_persons.h"
#include "st_lib.h"

#define RS(x) GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_##x

static const char *G1 = "110105001001001";
static const char *G2 = "110105001001002";

/* ---- The pure helpers ------------------------------------------------------------ */

static void
test_tags(void **state)
{
    (void) state;
    uint8_t h1[16] = { 0x01, 0x02, 0x03, 0x04, 0xff }, h2[16] = { 0x80, 0, 0, 1 },
            h3[16] = { 0x7f, 0xff, 0xff, 0xff };
    assert_true(gs_persons_tag(h1) == 0x01020304u);
    assert_true(gs_persons_tag(h2) == 0x80000001u);
    /* a stored set: h1, h1, h2 (big-endian, ascending) */
    uint8_t val[12];
    gs_be32_put(val, 0x01020304u);
    gs_be32_put(val + 4, 0x01020304u);
    gs_be32_put(val + 8, 0x80000001u);
    assert_int_equal(gs_persons_has(val, 12, h1), 1);
    assert_int_equal(gs_persons_has(val, 12, h2), 1);
    assert_int_equal(gs_persons_has(val, 12, h3), 0);
    assert_int_equal(gs_persons_has(val, 0, h1), 0);
    assert_int_equal(gs_persons_has(val, 11, h1), -1);
    uint32_t want[3] = { 0x80000001u, 0x01020304u, 0x01020304u };
    assert_int_equal(gs_persons_differs(val, 12, want, 3), 0);
    uint32_t other[3] = { 0x80000001u, 0x01020304u, 0x01020305u };
    assert_int_equal(gs_persons_differs(val, 12, other, 3), 1);
    uint32_t fewer[2] = { 0x80000001u, 0x01020304u };
    assert_int_equal(gs_persons_differs(val, 12, fewer, 2), 1);
}

/* ---- The index follows the writes ----------------------------------------------------- */

typedef struct {
    gs_store_t *st;
    gs_arena_t *a;
    char *dir;
} fx_t;

static int
s_setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    f->dir = st_tmpdir();
    f->st = st_open(f->dir, NULL);
    f->a = gs_arena_new(0);
    *state = f;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *f = *state;
    gs_store_destroy(&f->st);
    gs_arena_destroy(&f->a);
    st_rmdir(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Tags held for grid (0 when the cell has no entry). */
static size_t
s_tags(gs_store_t *st, const char *grid)
{
    uint8_t buf[256];
    size_t len = 0;
    int rc = gs_store_debug_get(st, "persons", grid, GS_GRID_LEN, buf, sizeof buf, &len);
    if (rc == GS_ENOTFOUND)
        return 0;
    assert_int_equal(rc, 0);
    assert_int_equal(len % GS_PERSON_TAG, 0);
    return len / GS_PERSON_TAG;
}

typedef struct {
    size_t groups;                  /* calls */
    size_t refs;                    /* refs over all calls */
    char grids[8][16];              /* grids of the first refs */
} s_acc_t;

static int
s_acc(void *arg, const uint8_t *hmac, const gs_person_ref_t *refs, size_t n)
{
    s_acc_t *d = arg;
    (void) hmac;
    for (size_t i = 0; i < n; i++) {
        if (d->refs < 8)
            snprintf(d->grids[d->refs], 16, "%s", refs[i].grid);
        d->refs++;
    }
    d->groups++;
    return 0;
}

/* Refs of person pid: their count (0 when none). */
static size_t
s_refs_of(gs_store_t *st, uint32_t pid, s_acc_t *d)
{
    char id[19];
    st_idnum(pid, id);
    uint8_t k[16];
    assert_int_equal(gs_store_person_key(st, id, k), 0);
    memset(d, 0, sizeof *d);
    int rc = gs_store_person_refs(st, k, s_acc, d);
    if (rc == GS_ENOTFOUND)
        return 0;
    assert_int_equal(rc, 0);
    return d->refs;
}

static void
test_follows_writes(void **state)
{
    fx_t *f = *state;
    s_acc_t d;
    st_rec_t h1 = { .id = "H1", .grid = G1, .addr_code = "A1", .pids = { 100, 101 } };
    st_rec_t h2 = { .id = "H2", .grid = G1, .addr_code = "A2", .pids = { 100 } };
    st_rec_t r1 = { .kind = 'R', .id = "R1", .grid = G2, .addr_code = "B1", .pids = { 300 },
                    .landlord = 200 };
    assert_int_equal(st_put(f->st, f->a, &h1, ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(st_put(f->st, f->a, &h2, ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(st_put(f->st, f->a, &r1, ST_NOW_MS).status, RS(ACCEPTED));
    /* one entry per cell; person 100 twice in G1 */
    assert_int_equal(s_tags(f->st, G1), 3);
    assert_int_equal(s_tags(f->st, G2), 2);
    assert_int_equal(s_refs_of(f->st, 100, &d), 2);
    assert_string_equal(d.grids[0], G1);
    assert_int_equal(s_refs_of(f->st, 200, &d), 1);
    assert_string_equal(d.grids[0], G2);
    assert_int_equal(s_refs_of(f->st, 999, &d), 0);
    st_verify_ok(f->st);

    /* a void record leaves the index; a later active version comes back */
    gs_arena_reset(f->a);
    h2.base = 1;
    h2.void_ = 1;
    assert_int_equal(st_put(f->st, f->a, &h2, ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(s_tags(f->st, G1), 2);
    assert_int_equal(s_refs_of(f->st, 100, &d), 1);
    st_verify_ok(f->st);
    gs_arena_reset(f->a);
    h2.base = 2;
    h2.void_ = 0;
    assert_int_equal(st_put(f->st, f->a, &h2, ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(s_tags(f->st, G1), 3);
    st_verify_ok(f->st);

    /* moving both households to G2 empties G1's entry */
    gs_arena_reset(f->a);
    h1.grid = G2;
    h1.base = 1;
    h2.grid = G2;
    h2.base = 3;
    assert_int_equal(st_put(f->st, f->a, &h1, ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(st_put(f->st, f->a, &h2, ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(s_tags(f->st, G1), 0);
    assert_int_equal(s_tags(f->st, G2), 5);
    assert_int_equal(s_refs_of(f->st, 100, &d), 2);
    assert_string_equal(d.grids[0], G2);
    assert_string_equal(d.grids[1], G2);
    st_verify_ok(f->st);
}

typedef struct {
    size_t n;
} s_rep_t;

static void
s_report(void *arg, const char *line)
{
    (void) line;
    ((s_rep_t *) arg)->n++;
}

static void
test_verify_finds_wrong_sets(void **state)
{
    fx_t *f = *state;
    st_rec_t h1 = { .id = "H1", .grid = G1, .addr_code = "A1", .pids = { 100, 101 } };
    assert_int_equal(st_put(f->st, f->a, &h1, ST_NOW_MS).status, RS(ACCEPTED));
    uint8_t good[8];
    size_t len;
    assert_int_equal(gs_store_debug_get(f->st, "persons", G1, 15, good, sizeof good, &len), 0);
    assert_int_equal(len, 8);
    st_verify_ok(f->st);

    uint8_t bad[8];
    memcpy(bad, good, 8);
    bad[7] ^= 1;
    s_rep_t rep = { 0 };
    uint64_t problems;
    assert_int_equal(gs_store_debug_put(f->st, "persons", G1, 15, bad, 8), 0);
    assert_int_equal(gs_store_verify(f->st, s_report, &rep, &problems), GS_ECORRUPT);
    assert_true(problems >= 1);
    assert_int_equal(gs_store_debug_del(f->st, "persons", G1, 15), 0);
    assert_int_equal(gs_store_verify(f->st, s_report, &rep, &problems), GS_ECORRUPT);
    assert_int_equal(gs_store_debug_put(f->st, "persons", G1, 15, good, 8), 0);
    st_verify_ok(f->st);
    /* an entry for a cell whose records name nobody */
    assert_int_equal(gs_store_debug_put(f->st, "persons", G2, 15, good, 4), 0);
    assert_int_equal(gs_store_verify(f->st, s_report, &rep, &problems), GS_ECORRUPT);
    assert_int_equal(gs_store_debug_del(f->st, "persons", G2, 15), 0);
    st_verify_ok(f->st);
}

/* ---- The upgrade from format 3 ------------------------------------------------------ */

/* The answers the uploads of the upgrade test got, by upload number. */
#define S_UPS 4
static uint8_t s_acks[S_UPS][512];
static size_t s_ack_lens[S_UPS];

/* Make the records values of the store in dir what format 6 and older
 * wrote: every person ref in full (its HMAC computed from the record, as
 * readers of format 7 do), the GS_RF_TAGS flag off; and mark format 6.
 * Returns the refs written out in full. */
static size_t
s_make_full_refs(const char *dir)
{
    gs_store_t *st = st_open(dir, NULL);
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(st->env, NULL, 0, &txn), 0);
    MDB_cursor *c;
    assert_int_equal(mdb_cursor_open(txn, st->db[GS_DB_RECORDS], &c), 0);
    gs_wbuf_t scratch, puts;    /* puts: klen, key, vlen, value (after the walk) */
    gs_wbuf_init(&scratch);
    gs_wbuf_init(&puts);
    size_t n_full = 0;
    MDB_val k, v;
    int rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        gs_rec_hdr_t h;
        assert_int_equal(gs_rec_hdr_get(&v, &h), 0);
        if (!(h.flags & GS_RF_TAGS))
            continue;
        gs_ref_t *refs;
        size_t n;
        assert_int_equal(gs_rec_refs_full(st, txn, &h, &scratch, &refs, &n), 0);
        assert_int_equal(n, h.n_refs);
        h.flags &= (uint8_t) ~GS_RF_TAGS;
        uint8_t val[GS_REC_HDR + 16 * GS_REF_LEN];
        assert_true(gs_rec_data_off(&h) <= sizeof val);
        gs_rec_hdr_put(val, &h);
        gs_rec_refs_put(val, h.flags, refs, n);
        free(refs);
        size_t vl = gs_rec_data_off(&h);
        gs_wbuf_put(&puts, &k.mv_size, sizeof k.mv_size);
        gs_wbuf_put(&puts, k.mv_data, k.mv_size);
        gs_wbuf_put(&puts, &vl, sizeof vl);
        gs_wbuf_put(&puts, val, vl);
        n_full += n;
    }
    assert_int_equal(rc, MDB_NOTFOUND);
    mdb_cursor_close(c);
    assert_false(puts.failed);
    for (size_t off = 0; off < puts.len;) {
        MDB_val pk, pv;
        memcpy(&pk.mv_size, puts.data + off, sizeof pk.mv_size);
        pk.mv_data = puts.data + off + sizeof pk.mv_size;
        off += sizeof pk.mv_size + pk.mv_size;
        memcpy(&pv.mv_size, puts.data + off, sizeof pv.mv_size);
        pv.mv_data = puts.data + off + sizeof pv.mv_size;
        off += sizeof pv.mv_size + pv.mv_size;
        assert_int_equal(mdb_put(txn, st->db[GS_DB_RECORDS], &pk, &pv, 0), 0);
    }
    gs_wbuf_deinit(&puts);
    uint8_t fmt[4] = { 6, 0, 0, 0 };
    MDB_val fk = { 6, "format" }, fv = { 4, fmt };
    assert_int_equal(mdb_put(txn, st->db[GS_DB_META], &fk, &fv, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    gs_wbuf_deinit(&scratch);
    gs_store_destroy(&st);
    return n_full;
}

/* Records values with refs as tags (1) and in full (0). */
static void
s_ref_layouts(gs_store_t *st, size_t n[2])
{
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn), 0);
    MDB_cursor *c;
    assert_int_equal(mdb_cursor_open(txn, st->db[GS_DB_RECORDS], &c), 0);
    MDB_val k, v;
    int rc;
    n[0] = n[1] = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        gs_rec_hdr_t h;
        assert_int_equal(gs_rec_hdr_get(&v, &h), 0);
        assert_true(v.mv_size == gs_rec_data_off(&h));
        n[(h.flags & GS_RF_TAGS) != 0]++;
    }
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
}

static uint64_t s_ids_old;          /* canonical ids entries s_make_format3 wrote */

/* Make the store in dir look like one of format 3: the person index as one
 * entry per active ref, grid(15) | HMAC(16) | kind(1) | record id -> role,
 * each idempotency entry as its header and the packed Ack (s_acks), and
 * each canonical ids entry as grid | id, as the builds of format 3 wrote
 * them. Returns the person entries written. */
static size_t
s_make_format3(const char *dir)
{
    s_make_full_refs(dir);
    MDB_env *env;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 24), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    MDB_dbi recs, pers, meta;
    assert_int_equal(mdb_dbi_open(txn, "records", 0, &recs), 0);
    assert_int_equal(mdb_dbi_open(txn, "persons", 0, &pers), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    assert_int_equal(mdb_drop(txn, pers, 0), 0);
    MDB_cursor *c;
    assert_int_equal(mdb_cursor_open(txn, recs, &c), 0);
    MDB_val k, v;
    size_t n = 0;
    int rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        gs_rec_hdr_t h;
        assert_int_equal(gs_rec_hdr_get(&v, &h), 0);
        if (h.status != GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_ACTIVE)
            continue;
        for (size_t i = 0; i < h.n_refs; i++) {
            gs_ref_t ref;
            assert_int_equal(gs_rec_ref_get(v.mv_data, &h, i, &ref), 1);   /* in full */
            uint8_t pk[GS_GRID_LEN + 17 + GS_ID_MAX];
            memcpy(pk, k.mv_data, GS_GRID_LEN);
            memcpy(pk + GS_GRID_LEN, ref.hmac, 16);
            memcpy(pk + GS_GRID_LEN + 16, (const uint8_t *) k.mv_data + GS_GRID_LEN,
                   k.mv_size - GS_GRID_LEN);   /* kind and record id */
            MDB_val pkv = { GS_GRID_LEN + 16 + k.mv_size - GS_GRID_LEN, pk },
                    pv = { 1, &ref.role };
            assert_int_equal(mdb_put(txn, pers, &pkv, &pv, 0), 0);
            n++;
        }
    }
    assert_int_equal(rc, MDB_NOTFOUND);
    mdb_cursor_close(c);
    MDB_dbi idem;
    assert_int_equal(mdb_dbi_open(txn, "idem", 0, &idem), 0);
    for (int i = 0; i < S_UPS; i++) {
        char key[16];
        int kl = snprintf(key, sizeof key, "dev-1%cu%d", 0, i);
        MDB_val ik = { (size_t) kl, key }, iv;
        assert_int_equal(mdb_get(txn, idem, &ik, &iv), 0);
        uint8_t old[GS_IDEM_HDR + 512];
        memcpy(old, iv.mv_data, GS_IDEM_HDR);
        memcpy(old + GS_IDEM_HDR, s_acks[i], s_ack_lens[i]);
        MDB_val ov = { GS_IDEM_HDR + s_ack_lens[i], old };
        assert_int_equal(mdb_put(txn, idem, &ik, &ov, 0), 0);
    }
    /* canonical ids entries as format 3 wrote them: the id after the grid */
    MDB_dbi ids;
    assert_int_equal(mdb_dbi_open(txn, "ids", 0, &ids), 0);
    assert_int_equal(mdb_cursor_open(txn, ids, &c), 0);
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        assert_int_equal(v.mv_size, GS_GRID_LEN);     /* no aliases here */
        uint8_t ok[GS_IK_MAX], ov[GS_IV_MAX];
        memcpy(ok, k.mv_data, k.mv_size);   /* k points into the page the put changes */
        k.mv_data = ok;
        MDB_val val = { gs_val_id(ov, v.mv_data, (const char *) ok + 1, k.mv_size - 1), ov };
        assert_int_equal(mdb_cursor_put(c, &k, &val, MDB_CURRENT), 0);
        s_ids_old++;
    }
    assert_int_equal(rc, MDB_NOTFOUND);
    mdb_cursor_close(c);
    uint8_t fmt[4] = { 3, 0, 0, 0 };
    MDB_val fk = { 6, "format" }, fv = { 4, fmt };
    assert_int_equal(mdb_put(txn, meta, &fk, &fv, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    return n;
}

/* The answers the person reports give: refs of persons 100 and 200, and
 * the duplicate groups. */
static void
s_answers(gs_store_t *st, size_t out[3])
{
    s_acc_t d;
    out[0] = s_refs_of(st, 100, &d);
    out[1] = s_refs_of(st, 200, &d);
    memset(&d, 0, sizeof d);
    assert_int_equal(gs_store_person_dups(st, "", s_acc, &d), 0);
    out[2] = d.groups;
}

static void
test_upgrade_from_format3(void **state)
{
    fx_t *f = *state;
    st_rec_t recs[] = {
        { .id = "H1", .grid = G1, .addr_code = "A1", .pids = { 100, 101 } },
        { .id = "H2", .grid = G1, .addr_code = "A2", .pids = { 102 } },
        { .kind = 'R', .id = "R1", .grid = G2, .addr_code = "B1", .pids = { 100 },
          .landlord = 200 },
        { .kind = 'R', .id = "R2", .grid = G2, .addr_code = "B2", .pids = { 103 },
          .landlord = 200 },
    };
    for (int i = 0; i < S_UPS; i++) {
        char upid[8];
        snprintf(upid, sizeof upid, "u%d", i);
        Gridsync__V1__Record *rec = st_build(f->a, &recs[i]);
        gs_apply_out_t out;
        assert_int_equal(st_apply(f->st, f->a, "dev-1", upid, &rec, 1, ST_NOW_MS, &out), 0);
        assert_true(out.uploads[0].ack_len < sizeof s_acks[i]);
        memcpy(s_acks[i], out.uploads[0].ack, out.uploads[0].ack_len);
        s_ack_lens[i] = out.uploads[0].ack_len;
        gs_apply_out_clear(&out);
    }
    size_t want[3];
    s_answers(f->st, want);
    assert_int_equal(want[0], 2);
    assert_int_equal(want[1], 2);
    assert_int_equal(want[2], 1);     /* person 100 in two places */
    gs_store_destroy(&f->st);
    size_t entries = s_make_format3(f->dir);
    assert_int_equal(entries, 7);

    /* read-only before the upgrade: the same answers, verify passes */
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.read_only = 1;
    int err = 0;
    gs_store_t *ro = gs_store_new(f->dir, &o, &err);
    assert_non_null(ro);
    size_t got[3];
    s_answers(ro, got);
    assert_memory_equal(got, want, sizeof want);
    st_verify_ok(ro);
    gs_store_destroy(&ro);

    /* a writable open that is not a broker's refuses to write records */
    f->st = st_open(f->dir, NULL);
    assert_int_equal(gs_store_upgraded_from(f->st), 0);
    gs_arena_reset(f->a);
    st_rec_t extra = { .id = "H9", .grid = G1, .addr_code = "A9", .pids = { 109 } };
    Gridsync__V1__Record *xr = st_build(f->a, &extra);
    gs_apply_out_t xo;
    assert_int_equal(st_apply(f->st, f->a, "dev-1", "extra", &xr, 1, ST_NOW_MS, &xo),
                     GS_EVERSION);
    assert_non_null(strstr(gs_store_errdetail(), "start gridsyncd on it once"));
    gs_store_destroy(&f->st);

    /* the broker's (exclusive) open rebuilds the index, once */
    gs_store_opts_t x;
    gs_store_opts_init(&x);
    x.exclusive = 1;
    f->st = st_open(f->dir, &x);
    assert_int_equal(gs_store_upgraded_from(f->st), 3);
    assert_true(gs_store_persons_built(f->st) == entries);
    assert_true(s_ids_old > 0 && gs_store_ids_compacted(f->st) == s_ids_old);
    assert_int_equal(s_tags(f->st, G1), 3);
    assert_int_equal(s_tags(f->st, G2), 4);
    s_answers(f->st, got);
    assert_memory_equal(got, want, sizeof want);
    st_verify_ok(f->st);
    /* the answers remembered before the upgrade are replayed byte for byte */
    for (int i = 0; i < S_UPS; i++) {
        char upid[8];
        snprintf(upid, sizeof upid, "u%d", i);
        gs_arena_reset(f->a);
        Gridsync__V1__Record *rec = st_build(f->a, &recs[i]);
        gs_apply_out_t out;
        assert_int_equal(st_apply(f->st, f->a, "dev-1", upid, &rec, 1, ST_NOW_MS, &out), 0);
        assert_true(out.uploads[0].replayed);
        assert_int_equal(out.uploads[0].ack_len, s_ack_lens[i]);
        assert_memory_equal(out.uploads[0].ack, s_acks[i], s_ack_lens[i]);
        gs_apply_out_clear(&out);
    }
    gs_arena_reset(f->a);
    assert_int_equal(st_put(f->st, f->a, &extra, ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(s_tags(f->st, G1), 4);
    st_verify_ok(f->st);
    gs_store_destroy(&f->st);
    f->st = st_open(f->dir, &x);
    assert_int_equal(gs_store_upgraded_from(f->st), 0);
    assert_true(gs_store_persons_built(f->st) == 0);
}


/* A store of format 6 (records values with every person ref in full):
 * read-only, lookups and the duplicate report give the same answers and
 * verify passes; the broker's open marks format 7 and rewrites nothing;
 * then writes keep refs as tags beside the full ones, a record of full
 * refs is replaced and voided through them, and the answers follow. */
static void
test_upgrade_from_format6(void **state)
{
    fx_t *f = *state;
    st_rec_t recs[] = {
        { .id = "H1", .grid = G1, .addr_code = "A1", .pids = { 100, 101 } },
        { .id = "H2", .grid = G1, .addr_code = "A2", .pids = { 102 } },
        { .kind = 'R', .id = "R1", .grid = G2, .addr_code = "B1", .pids = { 100 },
          .landlord = 200 },
    };
    for (size_t i = 0; i < sizeof recs / sizeof *recs; i++)
        assert_int_equal(st_put(f->st, f->a, &recs[i], ST_NOW_MS).status, RS(ACCEPTED));
    size_t want[3], got[3], lay[2];
    s_answers(f->st, want);
    assert_int_equal(want[0], 2);
    assert_int_equal(want[1], 1);
    assert_int_equal(want[2], 1);     /* person 100 in two places */
    s_ref_layouts(f->st, lay);
    assert_true(lay[0] == 0 && lay[1] == 3);
    gs_store_destroy(&f->st);
    assert_int_equal(s_make_full_refs(f->dir), 5);

    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.read_only = 1;
    int err = 0;
    gs_store_t *ro = gs_store_new(f->dir, &o, &err);
    assert_non_null(ro);
    s_answers(ro, got);
    assert_memory_equal(got, want, sizeof want);
    st_verify_ok(ro);
    gs_store_destroy(&ro);

    gs_store_opts_t x;
    gs_store_opts_init(&x);
    x.exclusive = 1;
    f->st = st_open(f->dir, &x);
    assert_int_equal(gs_store_upgraded_from(f->st), 6);
    assert_true(gs_store_persons_built(f->st) == 0 && gs_store_ids_compacted(f->st) == 0);
    s_ref_layouts(f->st, lay);
    assert_true(lay[0] == 3 && lay[1] == 0);
    s_answers(f->st, got);
    assert_memory_equal(got, want, sizeof want);
    st_verify_ok(f->st);

    /* a new record beside them, and H1 (full refs) replaced: 101 leaves */
    gs_arena_reset(f->a);
    st_rec_t h3 = { .id = "H3", .grid = G2, .addr_code = "A3", .pids = { 101 } };
    assert_int_equal(st_put(f->st, f->a, &h3, ST_NOW_MS).status, RS(ACCEPTED));
    st_rec_t h1 = recs[0];
    h1.base = 1;
    h1.pids[1] = 104;
    assert_int_equal(st_put(f->st, f->a, &h1, ST_NOW_MS).status, RS(ACCEPTED));
    s_ref_layouts(f->st, lay);
    assert_true(lay[0] == 2 && lay[1] == 2);
    s_acc_t d;
    assert_int_equal(s_refs_of(f->st, 101, &d), 1);
    assert_string_equal(d.grids[0], G2);
    assert_int_equal(s_refs_of(f->st, 104, &d), 1);
    assert_int_equal(s_refs_of(f->st, 100, &d), 2);
    assert_int_equal(s_tags(f->st, G1), 3);   /* 100, 104, 102 */
    assert_int_equal(s_tags(f->st, G2), 3);   /* 100, 200, 101 */
    st_verify_ok(f->st);
    /* R1 (full refs) voided: 100 is in one place, no duplicate left */
    st_rec_t r1 = recs[2];
    r1.base = 1;
    r1.void_ = 1;
    assert_int_equal(st_put(f->st, f->a, &r1, ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(s_refs_of(f->st, 100, &d), 1);
    assert_int_equal(s_refs_of(f->st, 200, &d), 0);
    memset(&d, 0, sizeof d);
    assert_int_equal(gs_store_person_dups(f->st, "", s_acc, &d), 0);
    assert_int_equal(d.groups, 0);
    assert_int_equal(s_tags(f->st, G2), 1);
    st_verify_ok(f->st);
    gs_store_destroy(&f->st);
    f->st = st_open(f->dir, &x);
    assert_int_equal(gs_store_upgraded_from(f->st), 0);
}

static int
s_u32_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return (x >> 32) < (y >> 32) ? -1 : (x >> 32) > (y >> 32);
}

/* Two persons whose HMACs share their tag (the first 4 bytes), found
 * among a few hundred thousand ID numbers under this store's key: a
 * lookup of one does not name the other's record, and the duplicate
 * report groups by the full HMAC: the one living in two places is
 * reported, the other (in one place) is not, whether the refs are kept
 * as tags or in full. */
static void
test_tag_collision(void **state)
{
    fx_t *f = *state;
    size_t n = 400000;
    uint64_t *v = malloc(n * sizeof *v);
    assert_non_null(v);
    for (uint32_t pid = 1; pid <= n; pid++) {
        char id[19];
        uint8_t h[16];
        st_idnum(pid, id);
        assert_int_equal(gs_store_person_key(f->st, id, h), 0);
        v[pid - 1] = (uint64_t) gs_persons_tag(h) << 32 | pid;
    }
    qsort(v, n, sizeof *v, s_u32_cmp);
    uint32_t pa = 0, pb = 0;
    for (size_t i = 1; i < n && !pa; i++)
        if (v[i] >> 32 == v[i - 1] >> 32) {
            pa = (uint32_t) v[i - 1];
            pb = (uint32_t) v[i];
        }
    free(v);
    assert_true(pa && pb);
    st_rec_t ra = { .id = "HA", .grid = G1, .addr_code = "A1", .pids = { pa } };
    st_rec_t rb = { .id = "HB", .grid = G2, .addr_code = "A2", .pids = { pb } };
    st_rec_t rc = { .id = "HC", .grid = G2, .addr_code = "A3", .pids = { pa } };
    assert_int_equal(st_put(f->st, f->a, &ra, ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(st_put(f->st, f->a, &rb, ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(st_put(f->st, f->a, &rc, ST_NOW_MS).status, RS(ACCEPTED));
    for (int round = 0; round < 2; round++) {
        s_acc_t d;
        assert_int_equal(s_refs_of(f->st, pa, &d), 2);
        assert_int_equal(s_refs_of(f->st, pb, &d), 1);
        assert_string_equal(d.grids[0], G2);
        memset(&d, 0, sizeof d);
        assert_int_equal(gs_store_person_dups(f->st, "", s_acc, &d), 0);
        assert_int_equal(d.groups, 1);
        assert_int_equal(d.refs, 2);
        st_verify_ok(f->st);
        if (round == 0) {
            /* the same store with its refs in full */
            gs_store_destroy(&f->st);
            assert_int_equal(s_make_full_refs(f->dir), 3);
            f->st = st_open(f->dir, NULL);
        }
    }
}

/* A format 7 store opened read-only without its secret.key (gridctl's
 * open when the key is missing): a tag named in two places cannot be
 * checked against the full HMAC, so the duplicate report refuses with a
 * detail naming secret.key rather than answer without those persons; the
 * store answers as before once the key is back. */
static void
test_no_secret_refuses(void **state)
{
    fx_t *f = *state;
    st_rec_t ra = { .id = "HA", .grid = G1, .addr_code = "A1", .pids = { 7 } };
    st_rec_t rb = { .id = "HB", .grid = G2, .addr_code = "A2", .pids = { 7 } };
    assert_int_equal(st_put(f->st, f->a, &ra, ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(st_put(f->st, f->a, &rb, ST_NOW_MS).status, RS(ACCEPTED));
    gs_store_destroy(&f->st);
    char key[4096], aside[4096];
    snprintf(key, sizeof key, "%s/secret.key", f->dir);
    snprintf(aside, sizeof aside, "%s/secret.key.aside", f->dir);
    assert_int_equal(rename(key, aside), 0);
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.read_only = 1;
    f->st = st_open(f->dir, &o);
    s_acc_t d;
    memset(&d, 0, sizeof d);
    assert_int_not_equal(gs_store_person_dups(f->st, "", s_acc, &d), 0);
    assert_non_null(strstr(gs_store_errdetail(), "secret.key"));
    assert_int_equal(d.groups, 0);
    gs_store_destroy(&f->st);
    assert_int_equal(rename(aside, key), 0);
    f->st = st_open(f->dir, &o);
    memset(&d, 0, sizeof d);
    assert_int_equal(gs_store_person_dups(f->st, "", s_acc, &d), 0);
    assert_int_equal(d.groups, 1);
    assert_int_equal(d.refs, 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tags),
        cmocka_unit_test_setup_teardown(test_follows_writes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_verify_finds_wrong_sets, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_from_format3, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_from_format6, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_tag_collision, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_no_secret_refuses, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

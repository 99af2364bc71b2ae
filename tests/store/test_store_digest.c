/*
 * test_store_digest: the per-prefix digests (store/gs_store_digest.h) on
 * real LMDB stores: two stores given the same records in different orders,
 * batches, devices and clocks have equal digests at every level and list
 * the same children and cell records; the digests the write path keeps
 * equal the ones recomputed from the records (verify); a store made before
 * digests is upgraded at its writable open and readable (without digests)
 * before; the reader's arguments and paging; verify reports a damaged,
 * missing or extra digest; and the drift hook removes one record so that
 * the store stays consistent but differs from its peer in exactly that
 * cell. White-box where it needs the store's internals (the upgrade).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gs_store_digest.h"
#include "gs_store_int.h"
#include "st_lib.h"

#define RS(x) GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_##x
#define K_H GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD
#define K_R GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_RENTAL_HOUSING
#define N_RECS 36

static const char *const s_grids[] = {
    "110105001001001", "110105001001002", "110105001002001",
    "110105002001001", "110106001001001", "120105001001001",
};

typedef struct {
    char id[16];
    char grid[16];
    char addr[16];
    char note[32];
    char kind;
} s_spec_t;

static s_spec_t s_recs[N_RECS];

static void
s_specs_make(void)
{
    for (int i = 0; i < N_RECS; i++) {
        s_spec_t *s = &s_recs[i];
        s->kind = i % 4 == 3 ? 'R' : 'H';
        snprintf(s->id, sizeof s->id, "%c%03d", s->kind, i);
        snprintf(s->grid, sizeof s->grid, "%s", s_grids[i % 6]);
        snprintf(s->addr, sizeof s->addr, "A%03d", i);
        snprintf(s->note, sizeof s->note, "note %d", i);
    }
}

static st_rec_t
s_rec(const s_spec_t *s, const char *device, int64_t t)
{
    st_rec_t r = { .kind = s->kind, .id = s->id, .grid = s->grid, .note = s->note,
                   .device = device, .collected_at = t };
    if (s->kind == 'H') {
        r.addr_code = s->addr;
        r.pids[0] = (uint32_t) (100 + (s->id[3] - '0') + 10 * (s->id[2] - '0'));
    } else {
        r.room = s->addr;
        r.pids[0] = (uint32_t) (300 + (s->id[3] - '0') + 10 * (s->id[2] - '0'));
    }
    return r;
}

typedef struct {
    gs_store_t *a, *b;
    char *da, *db;
    gs_arena_t *ar;
} fx_t;

static int
s_setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    f->da = st_tmpdir();
    f->db = st_tmpdir();
    f->a = st_open(f->da, NULL);
    f->b = st_open(f->db, NULL);
    f->ar = gs_arena_new(64 * 1024);
    s_specs_make();
    *state = f;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *f = *state;
    gs_store_destroy(&f->a);
    gs_store_destroy(&f->b);
    st_rmdir(f->da);
    st_rmdir(f->db);
    free(f->da);
    free(f->db);
    gs_arena_destroy(&f->ar);
    free(f);
    return 0;
}

/* Upload recs[idx[0..n)] in batches of batch records. */
static void
s_upload(gs_store_t *st, gs_arena_t *ar, const int *idx, size_t n, size_t batch,
         const char *device, int64_t t, const char *tag)
{
    for (size_t i = 0; i < n; i += batch) {
        gs_arena_reset(ar);
        Gridsync__V1__Record *recs[N_RECS];
        size_t m = 0;
        for (size_t j = i; j < n && j < i + batch; j++) {
            st_rec_t r = s_rec(&s_recs[idx[j]], device, t);
            recs[m++] = st_build(ar, &r);
        }
        char up[32];
        snprintf(up, sizeof up, "%s-%zu", tag, i);
        gs_apply_out_t out;
        assert_int_equal(st_apply(st, ar, device, up, recs, m, t, &out), 0);
        for (size_t u = 0; u < out.n_uploads; u++)
            assert_int_equal(out.uploads[u].counts[RS(ACCEPTED)], m);
        gs_apply_out_clear(&out);
    }
}

/* ---- Walking a store's digest tree into text ----------------------------------------- */

static void
s_hex(const uint8_t *d, char *out)
{
    for (int i = 0; i < 16; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

typedef struct {
    char (*kids)[GS_GRID_LEN + 1];
    size_t n, cap;
} s_kids_t;

static int
s_kid(void *arg, const gs_digest_node_t *c)
{
    s_kids_t *k = arg;
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 16;
        k->kids = realloc(k->kids, k->cap * sizeof *k->kids);
    }
    memcpy(k->kids[k->n++], c->prefix, GS_GRID_LEN + 1);
    return 0;
}

static int
s_rec_line(void *arg, const gs_digest_record_t *r)
{
    gs_wbuf_t *b = arg;
    char h[33];
    s_hex(r->hash, h);
    gs_wbuf_printf(b, "  %d %s v%llu s%d %s\n", r->kind, r->record_key,
                   (unsigned long long) r->version, r->status, h);
    return 0;
}

/* Every prefix (digest, count) and every cell's records, depth first. */
static void
s_tree(gs_store_t *st, const char *prefix, gs_wbuf_t *b)
{
    int cell = strlen(prefix) == GS_GRID_LEN;
    s_kids_t k = { 0 };
    gs_digest_query_t q = { .prefix = prefix, .arg = cell ? (void *) b : (void *) &k };
    if (cell)
        q.record_fn = s_rec_line;
    else
        q.child_fn = s_kid;
    gs_digest_result_t r;
    assert_int_equal(gs_store_digest(st, &q, &r), 0);
    assert_null(r.next_cursor);
    char h[33];
    s_hex(r.node.digest, h);
    gs_wbuf_printf(b, "'%s' %s %llu\n", prefix, h, (unsigned long long) r.node.count);
    uint64_t sum = 0;
    for (size_t i = 0; i < k.n; i++) {
        gs_digest_query_t cq = { .prefix = k.kids[i] };
        gs_digest_result_t cr;
        assert_int_equal(gs_store_digest(st, &cq, &cr), 0);
        sum += cr.node.count;
        s_tree(st, k.kids[i], b);
    }
    if (!cell)
        assert_true(sum == r.node.count);   /* the children add up to their parent */
    free(k.kids);
}

static char *
s_tree_text(gs_store_t *st)
{
    gs_wbuf_t b;
    gs_wbuf_init(&b);
    s_tree(st, "", &b);
    gs_wbuf_put(&b, "", 1);
    return (char *) b.data;     /* the buffer's bytes, handed over */
}

static void
s_root(gs_store_t *st, gs_digest_node_t *n)
{
    gs_digest_query_t q = { .prefix = "" };
    gs_digest_result_t r;
    assert_int_equal(gs_store_digest(st, &q, &r), 0);
    *n = r.node;
}

/* ---- Order independence ------------------------------------------------------------ */

/* The same district written forwards in one upload and backwards in
 * batches of 5, by other devices at other times: equal at every level;
 * and after the same updates, voids and moves, equal again. */
static void
test_order_independent(void **state)
{
    fx_t *f = *state;
    int fwd[N_RECS], back[N_RECS];
    for (int i = 0; i < N_RECS; i++) {
        fwd[i] = i;
        back[i] = N_RECS - 1 - i;
    }
    s_upload(f->a, f->ar, fwd, N_RECS, N_RECS, "dev-a", ST_NOW_MS, "a");
    s_upload(f->b, f->ar, back, N_RECS, 5, "dev-b", ST_NOW_MS + 3600000, "b");
    char *ta = s_tree_text(f->a), *tb = s_tree_text(f->b);
    assert_string_equal(ta, tb);
    assert_non_null(strstr(ta, "'' "));
    gs_digest_node_t ra, rb;
    s_root(f->a, &ra);
    s_root(f->b, &rb);
    assert_true(ra.count == N_RECS);
    free(ta);
    free(tb);

    /* an edit, a void and a move, applied in opposite orders */
    s_spec_t *e = &s_recs[4], *v = &s_recs[8], *m = &s_recs[12];
    snprintf(e->note, sizeof e->note, "edited");
    snprintf(m->grid, sizeof m->grid, "%s", s_grids[5]);
    for (int pass = 0; pass < 2; pass++) {
        gs_store_t *st = pass ? f->b : f->a;
        for (int j = 0; j < 3; j++) {
            s_spec_t *s = pass ? (j == 0 ? m : j == 1 ? v : e) : (j == 0 ? e : j == 1 ? v : m);
            gs_arena_reset(f->ar);
            st_rec_t r = s_rec(s, "dev-c", ST_NOW_MS + pass);
            r.base = 1;
            r.void_ = s == v;
            assert_int_equal(st_put(st, f->ar, &r, ST_NOW_MS + 7200000 + pass).status,
                             RS(ACCEPTED));
        }
    }
    ta = s_tree_text(f->a);
    tb = s_tree_text(f->b);
    assert_string_equal(ta, tb);
    assert_non_null(strstr(ta, " v2 s1 "));    /* the void is a version with its status */
    gs_digest_node_t ra2;
    s_root(f->a, &ra2);
    assert_true(ra2.count == N_RECS);
    assert_memory_not_equal(ra2.digest, ra.digest, 16);
    free(ta);
    free(tb);
    st_verify_ok(f->a);
    st_verify_ok(f->b);
}

/* The same records with other contents differ, and where they differ. */
static void
test_content_differs(void **state)
{
    fx_t *f = *state;
    int all[N_RECS];
    for (int i = 0; i < N_RECS; i++)
        all[i] = i;
    s_upload(f->a, f->ar, all, N_RECS, 7, "dev-a", ST_NOW_MS, "a");
    snprintf(s_recs[0].note, sizeof s_recs[0].note, "other");
    s_upload(f->b, f->ar, all, N_RECS, 7, "dev-a", ST_NOW_MS, "a");
    gs_digest_node_t ra, rb;
    s_root(f->a, &ra);
    s_root(f->b, &rb);
    assert_true(ra.count == rb.count);
    assert_memory_not_equal(ra.digest, rb.digest, 16);
    /* another cell is equal, record 0's cell is not */
    gs_digest_query_t q = { .prefix = s_grids[1] };
    gs_digest_result_t x, y;
    assert_int_equal(gs_store_digest(f->a, &q, &x), 0);
    assert_int_equal(gs_store_digest(f->b, &q, &y), 0);
    assert_memory_equal(x.node.digest, y.node.digest, 16);
    q.prefix = s_grids[0];
    assert_int_equal(gs_store_digest(f->a, &q, &x), 0);
    assert_int_equal(gs_store_digest(f->b, &q, &y), 0);
    assert_memory_not_equal(x.node.digest, y.node.digest, 16);
}

/* ---- The reader ---------------------------------------------------------------------- */

typedef struct {
    char keys[N_RECS][20];
    size_t n;
} s_seen_t;

static int
s_seen(void *arg, const gs_digest_record_t *r)
{
    s_seen_t *s = arg;
    assert_true(s->n < N_RECS);
    snprintf(s->keys[s->n++], 20, "%d/%s", r->kind, r->record_key);
    return 0;
}

static int
s_stop(void *arg, const gs_digest_node_t *c)
{
    (void) arg;
    (void) c;
    return 77;
}

static void
test_reader(void **state)
{
    fx_t *f = *state;
    int all[N_RECS];
    for (int i = 0; i < N_RECS; i++)
        all[i] = i;
    s_upload(f->a, f->ar, all, N_RECS, N_RECS, "dev-a", ST_NOW_MS, "a");
    gs_digest_result_t r;
    gs_digest_query_t q = { .prefix = "110" };
    assert_int_equal(gs_store_digest(f->a, &q, &r), GS_EINVAL);    /* not a level */
    q.prefix = "1a";
    assert_int_equal(gs_store_digest(f->a, &q, &r), GS_EINVAL);
    q.prefix = s_grids[0];
    q.child_fn = s_stop;
    assert_int_equal(gs_store_digest(f->a, &q, &r), GS_EINVAL);    /* a cell has no children */
    q.child_fn = NULL;
    q.prefix = "11";
    q.record_fn = s_seen;
    assert_int_equal(gs_store_digest(f->a, &q, &r), GS_EINVAL);    /* records only at a cell */
    q.record_fn = NULL;
    q.child_fn = s_stop;
    assert_int_equal(gs_store_digest(f->a, &q, &r), 77);           /* the callback's answer */

    /* an absent prefix: empty, not an error */
    gs_digest_query_t e = { .prefix = "990000" };
    assert_int_equal(gs_store_digest(f->a, &e, &r), 0);
    assert_true(r.node.count == 0);
    uint8_t zero[16] = { 0 };
    assert_memory_equal(r.node.digest, zero, 16);
    uint64_t head;
    assert_int_equal(gs_store_head(f->a, &head), 0);
    assert_true(r.head_seq == head);

    /* a cell's records: all at once, or one page of 2 at a time, alike */
    s_seen_t whole = { 0 }, paged = { 0 };
    gs_digest_query_t c = { .prefix = s_grids[0], .record_fn = s_seen, .arg = &whole };
    assert_int_equal(gs_store_digest(f->a, &c, &r), 0);
    assert_null(r.next_cursor);
    assert_int_equal(whole.n, N_RECS / 6);
    c.arg = &paged;
    c.limit = 2;
    int pages = 0;
    uint8_t *cur = NULL;
    size_t cl = 0;
    do {
        c.cursor = cur;
        c.cursor_len = cl;
        assert_int_equal(gs_store_digest(f->a, &c, &r), 0);
        free(cur);
        cur = r.next_cursor;
        cl = r.next_cursor_len;
        pages++;
    } while (cur);
    assert_int_equal(pages, 3);
    assert_int_equal(paged.n, whole.n);
    for (size_t i = 0; i < whole.n; i++)
        assert_string_equal(paged.keys[i], whole.keys[i]);
    /* a damaged cursor */
    c.cursor = (const uint8_t *) "X1";
    c.cursor_len = 2;
    assert_int_equal(gs_store_digest(f->a, &c, &r), GS_EINVAL);
}

/* ---- Verify, the upgrade ---------------------------------------------------------------- */

typedef struct {
    int n;
    char last[512];
} s_rep_t;

static void
s_report(void *arg, const char *p)
{
    s_rep_t *r = arg;
    r->n++;
    snprintf(r->last, sizeof r->last, "%s", p);
}

static void
test_verify_finds_damage(void **state)
{
    fx_t *f = *state;
    int all[N_RECS];
    for (int i = 0; i < N_RECS; i++)
        all[i] = i;
    s_upload(f->a, f->ar, all, N_RECS, 9, "dev-a", ST_NOW_MS, "a");
    st_verify_ok(f->a);
    uint8_t k[GS_DGK_MAX];
    size_t kl = gs_key_digest(k, s_grids[2], 4);
    uint8_t val[GS_DIGEST_VAL];
    size_t vl;
    assert_int_equal(gs_store_debug_get(f->a, "digests", k, kl, val, sizeof val, &vl), 0);
    assert_int_equal(vl, GS_DIGEST_VAL);

    /* a flipped bit */
    val[3] ^= 1;
    assert_int_equal(gs_store_debug_put(f->a, "digests", k, kl, val, vl), 0);
    s_rep_t rep = { 0 };
    uint64_t problems;
    assert_int_equal(gs_store_verify(f->a, s_report, &rep, &problems), GS_ECORRUPT);
    assert_int_equal(rep.n, 1);
    assert_non_null(strstr(rep.last, "digests '110105001'"));

    /* missing */
    assert_int_equal(gs_store_debug_del(f->a, "digests", k, kl), 0);
    memset(&rep, 0, sizeof rep);
    assert_int_equal(gs_store_verify(f->a, s_report, &rep, &problems), GS_ECORRUPT);
    assert_int_equal(rep.n, 1);
    assert_non_null(strstr(rep.last, "missing"));

    /* back, and an extra prefix no record is under */
    val[3] ^= 1;
    assert_int_equal(gs_store_debug_put(f->a, "digests", k, kl, val, vl), 0);
    st_verify_ok(f->a);
    kl = gs_key_digest(k, "990000000000000", 3);
    assert_int_equal(gs_store_debug_put(f->a, "digests", k, kl, val, vl), 0);
    memset(&rep, 0, sizeof rep);
    assert_int_equal(gs_store_verify(f->a, s_report, &rep, &problems), GS_ECORRUPT);
    assert_int_equal(rep.n, 1);
    assert_non_null(strstr(rep.last, "'990000' : stored for a prefix with no records") ||
                    strstr(rep.last, "'990000': stored for a prefix with no records"));
}

/* Make the store in dir look like one made before digests: format 2 and
 * no digests table, as the previous build left it. */
static void
s_make_format2(const char *dir)
{
    MDB_env *env;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    MDB_dbi dg, meta;
    assert_int_equal(mdb_dbi_open(txn, "digests", 0, &dg), 0);
    assert_int_equal(mdb_drop(txn, dg, 1), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    uint8_t fmt[4] = { 2, 0, 0, 0 };
    MDB_val k = { 6, "format" }, v = { 4, fmt };
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void
test_upgrade_builds_digests(void **state)
{
    fx_t *f = *state;
    int all[N_RECS];
    for (int i = 0; i < N_RECS; i++)
        all[i] = i;
    s_upload(f->a, f->ar, all, N_RECS, 4, "dev-a", ST_NOW_MS, "a");
    char *before = s_tree_text(f->a);
    assert_true(gs_store_digests_built(f->a) == 0);     /* a new store needs none */
    gs_store_destroy(&f->a);
    s_make_format2(f->da);

    /* read-only before the upgrade: everything but the digests */
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.read_only = 1;
    int err = 0;
    gs_store_t *ro = gs_store_new(f->da, &o, &err);
    assert_non_null(ro);
    uint64_t head;
    assert_int_equal(gs_store_head(ro, &head), 0);
    assert_true(head > 0);
    gs_digest_query_t q = { .prefix = "" };
    gs_digest_result_t r;
    assert_int_equal(gs_store_digest(ro, &q, &r), GS_EVERSION);
    assert_non_null(strstr(gs_store_errdetail(), "start gridsyncd on it once"));
    st_verify_ok(ro);
    gs_store_destroy(&ro);

    /* a writable open that is not a broker's leaves them, and refuses
     * to write records without them */
    f->a = st_open(f->da, NULL);
    assert_true(gs_store_digests_built(f->a) == 0);
    assert_int_equal(gs_store_digest(f->a, &q, &r), GS_EVERSION);
    gs_arena_reset(f->ar);
    st_rec_t extra = { .id = "H-EXTRA", .grid = s_grids[0], .addr_code = "AX", .pids = { 77 } };
    Gridsync__V1__Record *xr = st_build(f->ar, &extra);
    gs_apply_out_t xo;
    assert_int_equal(st_apply(f->a, f->ar, "dev-1", "extra", &xr, 1, ST_NOW_MS, &xo),
                     GS_EVERSION);
    gs_store_destroy(&f->a);

    /* the broker's (exclusive) open builds them, once */
    gs_store_opts_t x;
    gs_store_opts_init(&x);
    x.exclusive = 1;
    f->a = st_open(f->da, &x);
    assert_true(gs_store_digests_built(f->a) == N_RECS);
    char *after = s_tree_text(f->a);
    assert_string_equal(before, after);
    st_verify_ok(f->a);
    gs_store_destroy(&f->a);
    f->a = st_open(f->da, &x);
    assert_true(gs_store_digests_built(f->a) == 0);
    free(before);
    free(after);

    /* a format this build does not know is still refused */
    gs_store_destroy(&f->a);
    uint8_t fmt[4] = { 9, 0, 0, 0 };
    gs_store_t *w = st_open(f->da, NULL);
    assert_int_equal(gs_store_debug_put(w, "meta", "format", 6, fmt, 4), 0);
    gs_store_destroy(&w);
    assert_null(gs_store_new(f->da, NULL, &err));
    assert_int_equal(err, GS_EVERSION);
}

/* ---- Drift ------------------------------------------------------------------------------ */

static void
test_drop_drifts_one_cell(void **state)
{
    fx_t *f = *state;
    int all[N_RECS];
    for (int i = 0; i < N_RECS; i++)
        all[i] = i;
    s_upload(f->a, f->ar, all, N_RECS, N_RECS, "dev-a", ST_NOW_MS, "a");
    s_upload(f->b, f->ar, all, N_RECS, 3, "dev-b", ST_NOW_MS, "b");
    /* an alias of record 5 in both, so the drop removes aliases too */
    for (int pass = 0; pass < 2; pass++) {
        gs_arena_reset(f->ar);
        st_rec_t r = s_rec(&s_recs[5], "dev-a", ST_NOW_MS);
        r.id = "H999";
        st_res_t x = st_put(pass ? f->b : f->a, f->ar, &r, ST_NOW_MS);
        assert_int_equal(x.status, RS(MERGED));
    }
    uint64_t head0;
    assert_int_equal(gs_store_head(f->b, &head0), 0);
    assert_int_equal(gs_store_debug_drop(f->b, K_H, "nope"), GS_ENOTFOUND);
    assert_int_equal(gs_store_debug_drop(f->b, 0, "H999"), 0);   /* by its alias */
    st_verify_ok(f->b);
    uint64_t head1;
    assert_int_equal(gs_store_head(f->b, &head1), 0);
    assert_true(head1 == head0);
    assert_null(st_get(f->b, K_H, s_recs[5].id, NULL, NULL));
    assert_null(st_get(f->b, K_H, "H999", NULL, NULL));

    gs_digest_node_t ra, rb;
    s_root(f->a, &ra);
    s_root(f->b, &rb);
    assert_true(ra.count == N_RECS && rb.count == N_RECS - 1);
    /* only the cell of record 5 (and its ancestors) differ */
    for (int g = 0; g < 6; g++) {
        gs_digest_query_t q = { .prefix = s_grids[g] };
        gs_digest_result_t x, y;
        assert_int_equal(gs_store_digest(f->a, &q, &x), 0);
        assert_int_equal(gs_store_digest(f->b, &q, &y), 0);
        if (strcmp(s_grids[g], s_recs[5].grid) == 0)
            assert_true(x.node.count == y.node.count + 1);
        else
            assert_memory_equal(x.node.digest, y.node.digest, 16);
    }
    /* the record can be uploaded again: the store is consistent */
    gs_arena_reset(f->ar);
    st_rec_t r = s_rec(&s_recs[5], "dev-b", ST_NOW_MS);
    assert_int_equal(st_put(f->b, f->ar, &r, ST_NOW_MS).status, RS(ACCEPTED));
    st_verify_ok(f->b);
}

/* The drift hook finds an organisation by its id alone, like the other
 * kinds, and the store stays consistent after the drop. */
static void
test_drop_organisation(void **state)
{
    fx_t *f = *state;
    gs_arena_reset(f->ar);
    st_rec_t o = { .kind = 'O', .id = "O1", .grid = s_grids[0], .addr_code = "ORG-A1",
                   .uscc = "91350100M000100Y43", .landlord = 7001, .pids = { 7002 } };
    assert_int_equal(st_put(f->b, f->ar, &o, ST_NOW_MS).status, RS(ACCEPTED));
    gs_digest_node_t before, after;
    s_root(f->b, &before);
    assert_int_equal(gs_store_debug_drop(f->b, 0, "O1"), 0);
    st_verify_ok(f->b);
    s_root(f->b, &after);
    assert_true(after.count + 1 == before.count);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_independent, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_content_differs, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_reader, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_verify_finds_damage, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_builds_digests, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_drop_drifts_one_cell, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_drop_organisation, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

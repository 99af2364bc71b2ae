/*
 * test_store_replica: a replica store (store/gs_store_replica.h) fed with
 * the change events of real district stores, as the replica thread feeds
 * it from JetStream: two origins end as exactly the union of the districts
 * (every record with the same version and bytes, verify clean, one own
 * event per origin event with its origin fields); redeliveries are
 * skipped; a move split across two calls; every refusal (bytes that do
 * not decode, headers missing or wrong, another origin, a gap, another
 * epoch, a record of another origin) applies what came before, nothing of
 * the refused message, and stops only that origin; the re-baseline
 * removes the origin's records and accepts a new lineage; a person named
 * in both districts is a duplicate in the replica's person index; a cell
 * repair (a record dropped, one at a changed version) rewrites exactly the
 * drifting records from the origin's events up to the applied position,
 * also while later events wait, and a refused repair writes nothing.
 * Every test runs again with a checker thread ahead of the writer, the
 * headers put in by the batch's fill; a bad message after many good ones
 * in one batch stops the origin with exactly the good ones applied, also
 * when the checker is stopped and the writer fills and checks them.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <pthread.h>

#include "gs_store.h"
#include "gs_store_debug.h"
#include "gs_store_replica.h"
#include "st_lib.h"

#define A1 "440305"
#define A2 "440306"

/* One district store and its events as the bridge publishes them. */
typedef struct {
    char *dir;                      /* its directory */
    gs_store_t *st;                 /* the store */
    gs_arena_t *arena;              /* its records */
    const char *area;               /* its origin name */
    char epoch[17];                 /* Gridsync-Epoch */
    size_t n;                       /* events read */
    uint8_t **data;                 /* packed ChangeEvents */
    size_t *len;                    /* their lengths */
    char (*seq)[24];                /* Gridsync-Seq */
} s_district_t;

static int
s_take(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    (void) grid;
    s_district_t *d = arg;
    d->data = realloc(d->data, (d->n + 1) * sizeof *d->data);
    d->len = realloc(d->len, (d->n + 1) * sizeof *d->len);
    d->seq = realloc(d->seq, (d->n + 1) * sizeof *d->seq);
    assert_non_null(d->data);
    assert_non_null(d->len);
    assert_non_null(d->seq);
    d->data[d->n] = malloc(len);
    memcpy(d->data[d->n], data, len);
    d->len[d->n] = len;
    snprintf(d->seq[d->n], sizeof d->seq[0], "%" PRIu64, seq);
    d->n++;
    return 0;
}

/* Read every event of d's store (again), in seq order. */
static void
s_events(s_district_t *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->data[i]);
    d->n = 0;
    const char *all = "";
    assert_int_equal(gs_store_events(d->st, &all, 1, 0, 0, s_take, d, NULL, NULL), 0);
    uint64_t e;
    assert_int_equal(gs_store_epoch(d->st, &e), 0);
    snprintf(d->epoch, sizeof d->epoch, "%016" PRIx64, e);
}

static void
s_district_open(s_district_t *d, const char *area)
{
    memset(d, 0, sizeof *d);
    d->area = area;
    d->dir = st_tmpdir();
    d->st = st_open(d->dir, NULL);
    d->arena = gs_arena_new(64 * 1024);
    assert_non_null(d->arena);
}

static void
s_district_close(s_district_t *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->data[i]);
    free(d->data);
    free(d->len);
    free(d->seq);
    gs_store_destroy(&d->st);
    gs_arena_destroy(&d->arena);
    st_rmdir(d->dir);
    free(d->dir);
}

/* The messages [from, to) of d, with its headers. */
static gs_repl_msg_t *
s_msgs(const s_district_t *d, size_t from, size_t to)
{
    gs_repl_msg_t *m = calloc(to - from + 1, sizeof *m);
    assert_non_null(m);
    for (size_t i = from; i < to; i++)
        m[i - from] = (gs_repl_msg_t) { d->data[i], d->len[i], d->area, d->epoch, d->seq[i],
                                        100 + i };
    return m;
}

/* Set by the *_ahead runs of the tests: every replicate goes through a
 * checker thread (gs_repl_ahead_*), which must not change any outcome. */
static int s_ahead_mode;

static void *
s_checker(void *arg)
{
    while (gs_repl_ahead_run(arg) == 0) {
    }
    return NULL;
}

/* The batch's fill: message i's headers from the whole messages arg. */
static void
s_fill_headers(void *arg, size_t i, gs_repl_msg_t *m)
{
    const gs_repl_msg_t *whole = arg;
    m->h_origin = whole[i].h_origin;
    m->h_epoch = whole[i].h_epoch;
    m->h_seq = whole[i].h_seq;
}

/* gs_store_replicate, or the same through a checker in s_ahead_mode, the
 * headers put in by the checker's fill. */
static int
s_store_replicate(gs_store_t *st, const char *area, const char *followed,
                  const gs_repl_msg_t *m, size_t n, int64_t now_ms, gs_repl_result_t *res,
                  gs_apply_out_t *out)
{
    if (!s_ahead_mode)
        return gs_store_replicate(st, area, followed, m, n, now_ms, res, out);
    gs_repl_ahead_t *a = gs_repl_ahead_new(st);
    assert_non_null(a);
    pthread_t tid;
    assert_int_equal(pthread_create(&tid, NULL, s_checker, a), 0);
    /* the headers left out, for the batch's fill to put back (as the
     * broker reads them out of NATS messages on the checker's thread) */
    gs_repl_msg_t *part = calloc(n + 1, sizeof *part);
    assert_non_null(part);
    for (size_t i = 0; i < n; i++)
        part[i] = (gs_repl_msg_t) { m[i].data, m[i].len, NULL, NULL, NULL, m[i].stream_seq };
    assert_int_equal(gs_repl_ahead_begin(a, area, followed, part, n, s_fill_headers, (void *) m), 0);
    int rc = gs_store_replicate_ahead(st, a, now_ms, res, out);
    gs_repl_ahead_end(a);
    gs_repl_ahead_stop(a);
    pthread_join(tid, NULL);
    gs_repl_ahead_destroy(&a);
    free(part);
    return rc;
}

/* Replicate messages [from, to) of d; returns the result. */
static gs_repl_result_t
s_replicate(gs_store_t *r, const s_district_t *d, size_t from, size_t to, size_t *n_events)
{
    gs_repl_msg_t *m = s_msgs(d, from, to);
    gs_repl_result_t res;
    gs_apply_out_t out;
    int rc = s_store_replicate(r, d->area, d->area, m, to - from, ST_NOW_MS + 1000, &res, &out);
    if (rc)
        fail_msg("replicate: %s (%s)", gs_store_strerror(rc), gs_store_errdetail());
    if (n_events)
        *n_events = out.n_events;
    /* every event handed out carries its origin */
    for (size_t i = 0; i < out.n_events; i++) {
        Gridsync__V1__ChangeEvent *ev =
            gridsync__v1__change_event__unpack(NULL, out.events[i].len, out.events[i].data);
        assert_non_null(ev);
        assert_string_equal(ev->origin, d->area);
        assert_true(ev->origin_epoch != 0);
        assert_true(ev->seq == out.events[i].seq);
        /* the spliced bytes are what protoc-c packs, origin fields included */
        size_t n = gridsync__v1__change_event__get_packed_size(ev);
        uint8_t *re = malloc(n);
        assert_non_null(re);
        assert_int_equal(gridsync__v1__change_event__pack(ev, re), n);
        assert_int_equal(n, out.events[i].len);
        assert_memory_equal(re, out.events[i].data, n);
        free(re);
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }
    gs_apply_out_clear(&out);
    free(m);
    return res;
}

/* Households and a rental in d's area, with an update, a void and a move.
 * Person seed shared names a person present in both districts. */
static void
s_fill(s_district_t *d, uint32_t base, uint32_t shared)
{
    char g1[16], g2[16], g3[16], id[32], addr[40];
    snprintf(g1, sizeof g1, "%s001001001", d->area);
    snprintf(g2, sizeof g2, "%s001001002", d->area);
    snprintf(g3, sizeof g3, "%s001002001", d->area);
    for (uint32_t i = 0; i < 6; i++) {
        snprintf(id, sizeof id, "hh-%s-%u", d->area, i);
        snprintf(addr, sizeof addr, "%s0010010000%02u", d->area, i);
        st_rec_t r = { .id = id, .grid = i % 2 ? g2 : g1, .addr_code = addr,
                       .pids = { base + 2 * i + 1, base + 2 * i + 2 } };
        if (i == 0 && shared)
            r.pids[1] = shared;
        assert_int_equal(st_put(d->st, d->arena, &r, ST_NOW_MS).status,
                         GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    }
    /* an update, a void and a move (MOVE_OUT + MOVE_IN) */
    snprintf(id, sizeof id, "hh-%s-1", d->area);
    snprintf(addr, sizeof addr, "%s0010010000%02u", d->area, 1);
    st_rec_t u = { .id = id, .grid = g2, .addr_code = addr, .base = 1, .note = "changed",
                   .pids = { base + 3, base + 4, base + 90 } };
    assert_int_equal(st_put(d->st, d->arena, &u, ST_NOW_MS).version, 2);
    snprintf(id, sizeof id, "hh-%s-2", d->area);
    snprintf(addr, sizeof addr, "%s0010010000%02u", d->area, 2);
    st_rec_t v = { .id = id, .grid = g1, .addr_code = addr, .base = 1, .void_ = 1,
                   .pids = { base + 5, base + 6 } };
    assert_int_equal(st_put(d->st, d->arena, &v, ST_NOW_MS).version, 2);
    snprintf(id, sizeof id, "hh-%s-3", d->area);
    snprintf(addr, sizeof addr, "%s0010010000%02u", d->area, 3);
    st_rec_t m = { .id = id, .grid = g3, .addr_code = addr, .base = 1,
                   .pids = { base + 7, base + 8 } };
    st_res_t mr = st_put(d->st, d->arena, &m, ST_NOW_MS);
    assert_int_equal(mr.version, 2);
    assert_int_equal(mr.n_events, 2);
    char rid[32];
    snprintf(rid, sizeof rid, "rent-%s", d->area);
    st_rec_t rr = { .kind = 'R', .id = rid, .grid = g3, .room = "101",
                    .pids = { base + 20 }, .landlord = base + 21 };
    assert_int_equal(st_put(d->st, d->arena, &rr, ST_NOW_MS).status,
                     GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    s_events(d);
}

/* ---- comparing stores ------------------------------------------------------------ */

typedef struct {
    size_t n;
    char line[64][200];             /* grid kind key version hash-of-bytes */
} s_recs_t;

static int
s_rec_line(void *arg, const gs_record_view_t *v)
{
    s_recs_t *r = arg;
    assert_true(r->n < 64);
    uint64_t h = 1469598103934665603ull;  /* FNV-1a of the bytes */
    for (size_t i = 0; i < v->len; i++)
        h = (h ^ v->data[i]) * 1099511628211ull;
    snprintf(r->line[r->n++], sizeof r->line[0], "%s %d %s %" PRIu64 " %d %zu %016" PRIx64,
             v->grid, v->kind, v->record_key, v->version, v->status, v->len, h);
    return 0;
}

static void
s_records(gs_store_t *st, const char *prefix, s_recs_t *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(gs_store_records(st, prefix, s_rec_line, r), 0);
}

/* The digest node of prefix in st. */
static gs_digest_node_t
s_digest(gs_store_t *st, const char *prefix)
{
    gs_digest_query_t q = { .prefix = prefix };
    gs_digest_result_t r;
    int rc = gs_store_digest(st, &q, &r);
    if (rc)
        fail_msg("digest of '%s': %s (%s)", prefix, gs_store_strerror(rc), gs_store_errdetail());
    free(r.next_cursor);
    return r.node;
}

static void
s_same_records(gs_store_t *district, gs_store_t *replica, const char *area)
{
    static s_recs_t a, b;
    s_records(district, "", &a);
    s_records(replica, area, &b);
    assert_int_equal(a.n, b.n);
    for (size_t i = 0; i < a.n; i++)
        assert_string_equal(a.line[i], b.line[i]);
    /* and so the digests agree, at the origin's area and in each cell */
    gs_digest_node_t d = s_digest(district, area), r = s_digest(replica, area);
    assert_int_equal(d.count, r.count);
    assert_memory_equal(d.digest, r.digest, GS_DIGEST_LEN);
    for (size_t i = 0; i < a.n; i++) {
        char cell[GS_GRID_LEN + 1];
        memcpy(cell, a.line[i], GS_GRID_LEN);
        cell[GS_GRID_LEN] = 0;
        d = s_digest(district, cell);
        r = s_digest(replica, cell);
        assert_int_equal(d.count, r.count);
        assert_memory_equal(d.digest, r.digest, GS_DIGEST_LEN);
    }
}

typedef struct {
    size_t n;                       /* events */
    size_t with_origin;             /* with origin fields set */
    uint64_t last_origin_seq[2];    /* per origin: last origin_seq seen (in order) */
    int in_order;                   /* origin seqs increase per origin */
} s_log_t;

static int
s_log_ev(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    (void) seq;
    (void) grid;
    s_log_t *l = arg;
    Gridsync__V1__ChangeEvent *ev = gridsync__v1__change_event__unpack(NULL, len, data);
    assert_non_null(ev);
    l->n++;
    if (ev->origin && *ev->origin && ev->origin_epoch && ev->origin_seq) {
        l->with_origin++;
        int o = strcmp(ev->origin, A1) == 0 ? 0 : 1;
        if (ev->origin_seq <= l->last_origin_seq[o])
            l->in_order = 0;
        l->last_origin_seq[o] = ev->origin_seq;
    }
    gridsync__v1__change_event__free_unpacked(ev, NULL);
    return 0;
}

static s_log_t
s_log(gs_store_t *st)
{
    s_log_t l = { 0, 0, { 0, 0 }, 1 };
    const char *all = "";
    assert_int_equal(gs_store_events(st, &all, 1, 0, 0, s_log_ev, &l, NULL, NULL), 0);
    return l;
}

static int
s_count_ev(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    (void) seq;
    (void) grid;
    (void) data;
    (void) len;
    (*(int *) arg)++;
    return 0;
}

/* Events in the history of household id. */
static int
s_history(gs_store_t *st, const char *id)
{
    int n = 0;
    assert_int_equal(gs_store_history(st, GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD, id,
                                      s_count_ev, &n), 0);
    return n;
}

/* ---- the tests --------------------------------------------------------------------- */

typedef struct {
    s_district_t d1, d2;
    char *rdir;
    gs_store_t *r;
} s_fix_t;

static int
s_setup(void **state)
{
    s_fix_t *f = calloc(1, sizeof *f);
    s_district_open(&f->d1, A1);
    s_district_open(&f->d2, A2);
    s_fill(&f->d1, 1000, 777);
    s_fill(&f->d2, 21000, 777);   /* other ID numbers than d1's */
    f->rdir = st_tmpdir();
    f->r = st_open(f->rdir, NULL);
    *state = f;
    return 0;
}

static int
s_teardown(void **state)
{
    s_fix_t *f = *state;
    s_district_close(&f->d1);
    s_district_close(&f->d2);
    gs_store_destroy(&f->r);
    st_rmdir(f->rdir);
    free(f->rdir);
    free(f);
    return 0;
}

static int
s_count_dup(void *arg, const uint8_t *hmac, const gs_person_ref_t *refs, size_t n)
{
    (void) hmac;
    int *dups = arg;
    int a1 = 0, a2 = 0;
    for (size_t i = 0; i < n; i++) {
        a1 |= strncmp(refs[i].grid, A1, 6) == 0;
        a2 |= strncmp(refs[i].grid, A2, 6) == 0;
    }
    if (a1 && a2)
        (*dups)++;
    return 0;
}

/* Two origins, in batches that split a move: exactly the union. */
static void
test_union_of_two_origins(void **state)
{
    s_fix_t *f = *state;
    size_t total = 0, ne;
    /* d1 in two calls, d2 in one between them; the cut after 9 lies
     * between a MOVE_OUT and its MOVE_IN (the move is the 9th/10th event) */
    gs_repl_result_t res = s_replicate(f->r, &f->d1, 0, 9, &ne);
    assert_int_equal(res.refused, 0);
    assert_int_equal(res.applied, 9);
    assert_int_equal(ne, 9);
    total += ne;
    res = s_replicate(f->r, &f->d2, 0, f->d2.n, &ne);
    assert_int_equal(res.refused, 0);
    assert_int_equal(res.applied, f->d2.n);
    total += ne;
    res = s_replicate(f->r, &f->d1, 9, f->d1.n, &ne);
    assert_int_equal(res.refused, 0);
    total += ne;
    assert_int_equal(total, f->d1.n + f->d2.n);
    st_verify_ok(f->r);
    s_same_records(f->d1.st, f->r, A1);
    s_same_records(f->d2.st, f->r, A2);
    s_log_t l = s_log(f->r);
    assert_int_equal(l.n, f->d1.n + f->d2.n);
    assert_int_equal(l.with_origin, l.n);
    assert_true(l.in_order);
    /* history follows the moved record across the move, though its two
     * halves came in different calls */
    assert_int_equal(s_history(f->r, "hh-" A1 "-3"), 3);
    assert_int_equal(s_history(f->d1.st, "hh-" A1 "-3"), 3);
    assert_int_equal(s_history(f->r, "hh-" A1 "-1"), 2);
    gs_origin_t o;
    assert_int_equal(gs_store_origin_get(f->r, A1, &o), 0);
    assert_int_equal(o.state, GS_ORIGIN_RUNNING);
    assert_int_equal(o.last_seq, f->d1.n);
    assert_int_equal(o.applied, f->d1.n);
    assert_string_equal(o.followed, A1);
    assert_int_equal(o.stream_seq, 100 + f->d1.n - 1);    /* where to resume */
    assert_int_equal(gs_store_origin_get(f->r, "440307", &o), GS_ENOTFOUND);
    assert_int_equal(o.state, GS_ORIGIN_NEW);

    /* redelivered: skipped, nothing written */
    uint64_t head0, head1;
    assert_int_equal(gs_store_head(f->r, &head0), 0);
    res = s_replicate(f->r, &f->d1, 0, f->d1.n, &ne);
    assert_int_equal(res.skipped, f->d1.n);
    assert_int_equal(res.consumed, f->d1.n);
    assert_int_equal(res.applied, 0);
    assert_int_equal(ne, 0);
    assert_int_equal(gs_store_head(f->r, &head1), 0);
    assert_true(head0 == head1);

    /* the person named in both districts is found at the replica only */
    int dups = 0;
    assert_int_equal(gs_store_person_dups(f->r, "", s_count_dup, &dups), 0);
    assert_int_equal(dups, 1);
    dups = 0;
    assert_int_equal(gs_store_person_dups(f->d1.st, "", s_count_dup, &dups), 0);
    assert_int_equal(dups, 0);
}

/* A refusal at message k of a batch: the k before are applied, then the
 * origin is stopped with the reason; the other origin goes on. */
static void
s_refused(s_fix_t *f, gs_repl_msg_t *m, size_t n, size_t k, int reason)
{
    gs_repl_result_t res;
    gs_apply_out_t out;
    assert_int_equal(s_store_replicate(f->r, A1, A1, m, n, ST_NOW_MS, &res, &out), 0);
    if (res.refused != reason)
        fail_msg("refused %d (%s), expected %d", res.refused, res.message, reason);
    assert_int_equal(res.consumed, k);
    assert_int_equal(res.applied, k);
    assert_int_equal(out.n_events, k);
    assert_true(res.message[0] != 0);
    gs_apply_out_clear(&out);
    st_verify_ok(f->r);
    gs_origin_t o;
    assert_int_equal(gs_store_origin_get(f->r, A1, &o), 0);
    assert_int_equal(o.state, GS_ORIGIN_STOPPED);
    assert_int_equal(o.reason, reason);
    assert_int_equal(o.last_seq, k);
    assert_string_equal(o.message, res.message);
    /* stopped: refused at once, nothing written */
    assert_int_equal(s_store_replicate(f->r, A1, A1, m, n, ST_NOW_MS, &res, &out), 0);
    assert_int_equal(res.refused, GS_REPL_STOPPED);
    assert_int_equal(res.consumed, 0);
    assert_int_equal(out.n_events, 0);
    gs_apply_out_clear(&out);
    /* the other origin is not held back */
    res = s_replicate(f->r, &f->d2, 0, f->d2.n, NULL);
    assert_int_equal(res.refused, 0);
    assert_int_equal(res.applied, f->d2.n);
    /* and the re-baseline lets the first start over */
    uint64_t removed = 0;
    assert_int_equal(gs_store_origin_rebaseline(f->r, A1, ST_NOW_MS, &removed, &out), 0);
    assert_int_equal(out.n_events, removed);
    gs_apply_out_clear(&out);
    st_verify_ok(f->r);
    static s_recs_t recs;
    s_records(f->r, A1, &recs);
    assert_int_equal(recs.n, 0);
    assert_int_equal(gs_store_origin_get(f->r, A1, &o), GS_ENOTFOUND);
    res = s_replicate(f->r, &f->d1, 0, f->d1.n, NULL);
    assert_int_equal(res.refused, 0);
    assert_int_equal(res.applied, f->d1.n);
    s_same_records(f->d1.st, f->r, A1);
    s_same_records(f->d2.st, f->r, A2);
    st_verify_ok(f->r);
}

static void
test_refuse_undecodable(void **state)
{
    s_fix_t *f = *state;
    gs_repl_msg_t *m = s_msgs(&f->d1, 0, 4);
    static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0x0f };
    m[2].data = junk;
    m[2].len = sizeof junk;
    s_refused(f, m, 4, 2, GS_REPL_DECODE);
    free(m);
}

/* An event whose record would take protobuf-c hundreds of MB to build is
 * refused before it is unpacked. */
static void
test_refuse_oversized(void **state)
{
    s_fix_t *f = *state;
    gs_repl_msg_t *m = s_msgs(&f->d1, 0, 3);
    Gridsync__V1__ChangeEvent *ev =
        gridsync__v1__change_event__unpack(NULL, m[2].len, m[2].data);
    assert_non_null(ev);
    Gridsync__V1__Household *h = ev->record->household;
    size_t n = 100000;
    Gridsync__V1__Person **many = calloc(n, sizeof *many);
    Gridsync__V1__Person empty = GRIDSYNC__V1__PERSON__INIT;
    for (size_t i = 0; i < n; i++)
        many[i] = &empty;
    size_t n0 = h->n_members;
    Gridsync__V1__Person **m0 = h->members;
    h->members = many;
    h->n_members = n;
    size_t len = gridsync__v1__change_event__get_packed_size(ev);
    uint8_t *big = malloc(len);
    gridsync__v1__change_event__pack(ev, big);
    h->members = m0;
    h->n_members = n0;
    gridsync__v1__change_event__free_unpacked(ev, NULL);
    free(many);
    m[2].data = big;
    m[2].len = len;
    s_refused(f, m, 3, 2, GS_REPL_DECODE);
    free(big);
    free(m);
}

static void
test_refuse_wrong_seq_header(void **state)
{
    s_fix_t *f = *state;
    gs_repl_msg_t *m = s_msgs(&f->d1, 0, 4);
    m[1].h_seq = "3";
    s_refused(f, m, 4, 1, GS_REPL_HEADER);
    free(m);
}

static void
test_refuse_missing_headers(void **state)
{
    s_fix_t *f = *state;
    gs_repl_msg_t *m = s_msgs(&f->d1, 0, 3);
    m[1].h_epoch = "0123";
    s_refused(f, m, 3, 1, GS_REPL_HEADER);
    free(m);
}

static void
test_refuse_other_origin(void **state)
{
    s_fix_t *f = *state;
    gs_repl_msg_t *m = s_msgs(&f->d1, 0, 3);
    m[2].h_origin = "440399";
    s_refused(f, m, 3, 2, GS_REPL_ORIGIN);
    free(m);
}

static void
test_refuse_gap(void **state)
{
    s_fix_t *f = *state;
    gs_repl_msg_t *m = s_msgs(&f->d1, 0, 5);
    m[3] = m[4];    /* seq 4 missing */
    s_refused(f, m, 4, 3, GS_REPL_GAP);
    free(m);
}

static void
test_refuse_other_epoch(void **state)
{
    s_fix_t *f = *state;
    gs_repl_msg_t *m = s_msgs(&f->d1, 0, 4);
    m[3].h_epoch = "00000000000000aa";
    s_refused(f, m, 4, 3, GS_REPL_EPOCH);
    free(m);
}

/* An origin's event that names a record id another origin holds. */
static void
test_refuse_record_of_other_origin(void **state)
{
    s_fix_t *f = *state;
    /* d2 first; then a third district under A1 that reuses d2's id */
    s_replicate(f->r, &f->d2, 0, f->d2.n, NULL);
    s_district_t d3;
    s_district_open(&d3, A1);
    st_rec_t a = { .id = "hh-a1-0", .grid = A1 "001001001", .room = "201",
                   .pids = { 5001, 5002 } };
    st_rec_t b = { .id = "hh-" A2 "-0", .grid = A1 "001001002", .room = "202",
                   .pids = { 5003, 5004 } };
    assert_int_equal(st_put(d3.st, d3.arena, &a, ST_NOW_MS).status,
                     GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    assert_int_equal(st_put(d3.st, d3.arena, &b, ST_NOW_MS).status,
                     GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    s_events(&d3);
    gs_repl_result_t res = s_replicate(f->r, &d3, 0, d3.n, NULL);
    assert_int_equal(res.refused, GS_REPL_ORIGIN);
    assert_int_equal(res.applied, 1);
    assert_non_null(strstr(res.message, "another origin"));
    st_verify_ok(f->r);
    s_same_records(f->d2.st, f->r, A2);
    s_district_close(&d3);
}

/* A new lineage after a re-baseline; a changed followed area is refused. */
static void
test_rebaseline_new_lineage(void **state)
{
    s_fix_t *f = *state;
    s_replicate(f->r, &f->d1, 0, f->d1.n, NULL);
    /* the district "restored": another store with another epoch and
     * fewer records under the same area */
    s_district_t d3;
    s_district_open(&d3, A1);
    st_rec_t a = { .id = "hh-" A1 "-0", .grid = A1 "001001001", .pids = { 1001, 777 },
                   .addr_code = A1 "001001000000" };
    assert_int_equal(st_put(d3.st, d3.arena, &a, ST_NOW_MS).status,
                     GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    s_events(&d3);
    gs_repl_result_t res = s_replicate(f->r, &d3, 0, d3.n, NULL);
    assert_int_equal(res.refused, GS_REPL_EPOCH);
    assert_int_equal(res.applied, 0);
    assert_non_null(strstr(res.message, "re-baseline"));
    gs_apply_out_t out;
    uint64_t removed;
    assert_int_equal(gs_store_origin_rebaseline(f->r, A1, ST_NOW_MS, &removed, &out), 0);
    assert_int_equal(removed, 7);
    gs_apply_out_clear(&out);
    res = s_replicate(f->r, &d3, 0, d3.n, NULL);
    assert_int_equal(res.refused, 0);
    assert_int_equal(res.applied, 1);
    s_same_records(d3.st, f->r, A1);
    st_verify_ok(f->r);

    /* following a narrower prefix than recorded needs a re-baseline too */
    gs_repl_msg_t *m = s_msgs(&d3, 0, d3.n);
    assert_int_equal(s_store_replicate(f->r, A1, A1 "001", m, d3.n, ST_NOW_MS, &res, &out), 0);
    assert_int_equal(res.refused, GS_REPL_AREA);
    gs_apply_out_clear(&out);
    free(m);
    s_district_close(&d3);
}

/* A replica that follows one community of an origin gets only its events
 * (as the consumer's filter gives them): order is checked at that level,
 * a record moving out leaves, the result is the district's records there. */
static void
test_narrower_followed_prefix(void **state)
{
    s_fix_t *f = *state;
    const char *community = A1 "001001";
    gs_repl_msg_t *all = s_msgs(&f->d1, 0, f->d1.n);
    gs_repl_msg_t *m = calloc(f->d1.n, sizeof *m);
    size_t n = 0;
    for (size_t i = 0; i < f->d1.n; i++) {
        Gridsync__V1__ChangeEvent *ev =
            gridsync__v1__change_event__unpack(NULL, all[i].len, all[i].data);
        if (strncmp(ev->grid_code, community, strlen(community)) == 0)
            m[n++] = all[i];
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }
    assert_true(n > 0 && n < f->d1.n);
    gs_repl_result_t res;
    gs_apply_out_t out;
    assert_int_equal(s_store_replicate(f->r, A1, community, m, n, ST_NOW_MS, &res, &out), 0);
    if (res.refused)
        fail_msg("refused: %s", res.message);
    assert_int_equal(res.applied, n);
    gs_apply_out_clear(&out);
    st_verify_ok(f->r);
    static s_recs_t a, b;
    s_records(f->d1.st, community, &a);
    s_records(f->r, "", &b);
    assert_int_equal(a.n, b.n);
    for (size_t i = 0; i < a.n; i++)
        assert_string_equal(a.line[i], b.line[i]);
    /* one event left out is a gap at that level too */
    gs_repl_msg_t *d2m = s_msgs(&f->d2, 0, 2);
    assert_int_equal(s_store_replicate(f->r, A2, A2, d2m + 1, 1, ST_NOW_MS, &res, &out), 0);
    assert_int_equal(res.refused, GS_REPL_GAP);
    gs_apply_out_clear(&out);
    free(d2m);
    free(m);
    free(all);
}

/* The key provisioned as federation.md says: one secret.key copied into
 * each store directory before its first open makes person keys comparable
 * between a district and the city; stores that made their own are not. */
static void
test_shared_person_key(void **state)
{
    uint8_t key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t) (7 * i + 1);
    char *dirs[2];
    gs_store_t *st[2];
    for (int i = 0; i < 2; i++) {
        dirs[i] = st_tmpdir();
        assert_int_equal(mkdir(dirs[i], 0700), 0);     /* the operator provisions it */
        char path[300];
        snprintf(path, sizeof path, "%s/secret.key", dirs[i]);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(key, 1, sizeof key, f), sizeof key);
        fclose(f);
        st[i] = st_open(dirs[i], NULL);
    }
    char id[19];
    st_idnum(777, id);
    uint8_t a[16], b[16], own[16];
    assert_int_equal(gs_store_person_key(st[0], id, a), 0);
    assert_int_equal(gs_store_person_key(st[1], id, b), 0);
    assert_memory_equal(a, b, 16);
    s_fix_t *f = *state;
    assert_int_equal(gs_store_person_key(f->r, id, own), 0);
    assert_memory_not_equal(a, own, 16);
    for (int i = 0; i < 2; i++) {
        gs_store_destroy(&st[i]);
        st_rmdir(dirs[i]);
        free(dirs[i]);
    }
}

/* ---- repairing cells ---------------------------------------------------------------- */

/* The messages of d's events [0, upto) in cell (as an ephemeral consumer
 * filtered to the cell's subjects gives them); their count into *n. */
static gs_repl_msg_t *
s_cell_msgs(const s_district_t *d, const char *cell, size_t upto, size_t *n)
{
    gs_repl_msg_t *all = s_msgs(d, 0, upto);
    gs_repl_msg_t *m = calloc(upto + 1, sizeof *m);
    assert_non_null(m);
    *n = 0;
    for (size_t i = 0; i < upto; i++) {
        Gridsync__V1__ChangeEvent *ev =
            gridsync__v1__change_event__unpack(NULL, all[i].len, all[i].data);
        assert_non_null(ev);
        if (strcmp(ev->grid_code, cell) == 0)
            m[(*n)++] = all[i];
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }
    free(all);
    return m;
}

/* Repair cell of d from its events [0, upto); returns the result, checks
 * that the events handed out carry the origin. */
static gs_repair_result_t
s_repair(s_fix_t *f, const s_district_t *d, const char *cell, size_t upto, size_t *n_events)
{
    size_t n;
    gs_repl_msg_t *m = s_cell_msgs(d, cell, upto, &n);
    gs_repair_result_t res;
    gs_apply_out_t out;
    int rc = gs_store_cell_repair(f->r, d->area, cell, m, n, ST_NOW_MS + 2000, &res, &out);
    if (rc)
        fail_msg("repair: %s (%s)", gs_store_strerror(rc), gs_store_errdetail());
    for (size_t i = 0; i < out.n_events; i++) {
        Gridsync__V1__ChangeEvent *ev =
            gridsync__v1__change_event__unpack(NULL, out.events[i].len, out.events[i].data);
        assert_non_null(ev);
        assert_string_equal(ev->origin, d->area);
        assert_string_equal(ev->grid_code, cell);
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }
    if (n_events)
        *n_events = out.n_events;
    gs_apply_out_clear(&out);
    free(m);
    return res;
}

/* A record dropped and one at a changed version (each in its own cell):
 * the digests name the cells, the repair of each rewrites exactly the
 * drifting record, another cell and the other origin are untouched, and
 * the replica equals the district again, digest for digest. */
static void
test_repair_cells(void **state)
{
    s_fix_t *f = *state;
    s_replicate(f->r, &f->d1, 0, f->d1.n, NULL);
    s_replicate(f->r, &f->d2, 0, f->d2.n, NULL);
    const char *g1 = A1 "001001001", *g2 = A1 "001001002", *g3 = A1 "001002001";
    assert_int_equal(gs_store_debug_drop(f->r, 0, "hh-" A1 "-0"), 0);
    assert_int_equal(gs_store_debug_set_version(f->r, 0, "hh-" A1 "-1", 9), 0);
    gs_digest_node_t a = s_digest(f->d1.st, g1), b = s_digest(f->r, g1);
    assert_int_equal(a.count, b.count + 1);
    a = s_digest(f->d1.st, g2);
    b = s_digest(f->r, g2);
    assert_int_equal(a.count, b.count);
    assert_memory_not_equal(a.digest, b.digest, GS_DIGEST_LEN);
    gs_digest_node_t other = s_digest(f->r, A2), g3before = s_digest(f->r, g3);
    uint64_t head0, head1;
    assert_int_equal(gs_store_head(f->r, &head0), 0);

    size_t ne;
    gs_repair_result_t res = s_repair(f, &f->d1, g1, f->d1.n, &ne);
    if (res.refused)
        fail_msg("refused: %s", res.message);
    assert_int_equal(res.installed, 1);
    assert_int_equal(res.removed, 0);
    assert_int_equal(res.records, 3);       /* hh-0, hh-2 (void), hh-4 */
    assert_int_equal(res.unchanged, 2);
    assert_int_equal(res.later, 0);
    assert_int_equal(res.last_seq, f->d1.n);
    assert_int_equal(ne, 1);
    res = s_repair(f, &f->d1, g2, f->d1.n, &ne);
    assert_int_equal(res.refused, 0);
    assert_int_equal(res.installed, 1);     /* hh-1 back at version 2 */
    assert_int_equal(res.records, 2);       /* hh-1, hh-5; hh-3 moved out */
    assert_int_equal(ne, 1);
    /* an intact cell: nothing written */
    res = s_repair(f, &f->d1, g3, f->d1.n, &ne);
    assert_int_equal(res.refused, 0);
    assert_int_equal(res.installed + res.removed, 0);
    assert_int_equal(res.unchanged, 2);
    assert_int_equal(ne, 0);
    assert_int_equal(gs_store_head(f->r, &head1), 0);
    assert_int_equal(head1, head0 + 2);
    st_verify_ok(f->r);
    s_same_records(f->d1.st, f->r, A1);
    s_same_records(f->d2.st, f->r, A2);
    gs_digest_node_t after = s_digest(f->r, A2), g3after = s_digest(f->r, g3);
    assert_memory_equal(other.digest, after.digest, GS_DIGEST_LEN);
    assert_memory_equal(g3before.digest, g3after.digest, GS_DIGEST_LEN);
    /* the origin's entry is the consumer's, not the repair's */
    gs_origin_t o;
    assert_int_equal(gs_store_origin_get(f->r, A1, &o), 0);
    assert_int_equal(o.last_seq, f->d1.n);
    assert_int_equal(o.state, GS_ORIGIN_RUNNING);
}

/* A repair while the district goes on: the stream holds events past what
 * the replica applied; the repair takes the cell to the applied position
 * only (those later are left to the consumer), and the consumer then
 * brings the replica to the district exactly. */
static void
test_repair_while_events_come(void **state)
{
    s_fix_t *f = *state;
    size_t k = 7;       /* up to the update of hh-1 */
    s_replicate(f->r, &f->d1, 0, k, NULL);
    const char *g1 = A1 "001001001";
    assert_int_equal(gs_store_debug_drop(f->r, 0, "hh-" A1 "-2"), 0);
    /* the void of hh-2 (event 8) is in the stream, not yet applied */
    gs_repair_result_t res = s_repair(f, &f->d1, g1, f->d1.n, NULL);
    if (res.refused)
        fail_msg("refused: %s", res.message);
    assert_int_equal(res.installed, 1);
    assert_int_equal(res.later, 1);
    assert_int_equal(res.last_seq, k);
    static s_recs_t recs;
    s_records(f->r, g1, &recs);
    assert_int_equal(recs.n, 3);
    int found = 0;      /* hh-2 at version 1, active: as the district held it at seq 7 */
    for (size_t i = 0; i < recs.n; i++)
        found |= strstr(recs.line[i], " hh-" A1 "-2 1 0 ") != NULL;
    if (!found)
        fail_msg("hh-2 not at version 1: %s | %s | %s", recs.line[0], recs.line[1],
                 recs.line[2]);
    gs_repl_result_t rr = s_replicate(f->r, &f->d1, k, f->d1.n, NULL);
    if (rr.refused)
        fail_msg("refused: %s", rr.message);
    s_same_records(f->d1.st, f->r, A1);
    st_verify_ok(f->r);
}

/* A record the replica holds in a cell but the origin never held there
 * (here: the cell's records of another lineage, the origin's entry then
 * set by hand to the origin's position): the repair removes it with a
 * MOVE_OUT of the replica's own and installs what the origin holds. */
static void
test_repair_removes_extra(void **state)
{
    s_fix_t *f = *state;
    const char *g1 = A1 "001001001";
    s_district_t d3;
    s_district_open(&d3, A1);
    st_rec_t x = { .id = "hh-extra", .grid = A1 "001001001", .pids = { 4001, 4002 },
                   .addr_code = A1 "001001009999" };
    assert_int_equal(st_put(d3.st, d3.arena, &x, ST_NOW_MS).status,
                     GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    s_events(&d3);
    s_replicate(f->r, &d3, 0, d3.n, NULL);
    /* the entry as if d1's events up to its head had been applied */
    uint8_t v[512];
    size_t vl;
    assert_int_equal(gs_store_debug_get(f->r, "origins", A1, 6, v, sizeof v, &vl), 0);
    uint64_t e = strtoull(f->d1.epoch, NULL, 16), last = f->d1.n;
    for (int i = 0; i < 8; i++) {
        v[i] = (uint8_t) (e >> (8 * i));
        v[8 + i] = (uint8_t) (last >> (8 * i));
    }
    assert_int_equal(gs_store_debug_put(f->r, "origins", A1, 6, v, vl), 0);
    size_t ne;
    gs_repair_result_t res = s_repair(f, &f->d1, g1, f->d1.n, &ne);
    if (res.refused)
        fail_msg("refused: %s", res.message);
    assert_int_equal(res.removed, 1);
    assert_int_equal(res.installed, 3);
    assert_int_equal(res.unchanged, 0);
    assert_int_equal(ne, 4);
    st_verify_ok(f->r);
    static s_recs_t a, b;
    s_records(f->d1.st, g1, &a);
    s_records(f->r, g1, &b);
    assert_int_equal(a.n, b.n);
    for (size_t i = 0; i < a.n; i++)
        assert_string_equal(a.line[i], b.line[i]);
    gs_digest_node_t da = s_digest(f->d1.st, g1), db = s_digest(f->r, g1);
    assert_memory_equal(da.digest, db.digest, GS_DIGEST_LEN);
    s_district_close(&d3);
}

/* Refusals write nothing: a cell event missing (a gap in the cell's
 * chain), another epoch, a cell the replica has nothing of the origin. */
static void
test_repair_refusals(void **state)
{
    s_fix_t *f = *state;
    const char *g1 = A1 "001001001";
    gs_repair_result_t res;
    gs_apply_out_t out;
    size_t n;
    gs_repl_msg_t *m = s_cell_msgs(&f->d1, g1, f->d1.n, &n);
    assert_int_equal(gs_store_cell_repair(f->r, A1, g1, m, n, ST_NOW_MS, &res, &out), 0);
    assert_int_equal(res.refused, GS_REPL_ORIGIN);      /* nothing applied yet */
    gs_apply_out_clear(&out);
    s_replicate(f->r, &f->d1, 0, f->d1.n, NULL);
    assert_int_equal(gs_store_debug_drop(f->r, 0, "hh-" A1 "-0"), 0);
    uint64_t head0, head1;
    assert_int_equal(gs_store_head(f->r, &head0), 0);
    assert_int_equal(gs_store_cell_repair(f->r, A1, g1, m + 1, n - 1, ST_NOW_MS, &res, &out),
                     0);
    assert_int_equal(res.refused, GS_REPL_GAP);
    assert_true(res.message[0] != 0);
    assert_int_equal(out.n_events, 0);
    gs_apply_out_clear(&out);
    m[0].h_epoch = "0123456789abcdef";
    assert_int_equal(gs_store_cell_repair(f->r, A1, g1, m, n, ST_NOW_MS, &res, &out), 0);
    assert_int_equal(res.refused, GS_REPL_EPOCH);
    gs_apply_out_clear(&out);
    assert_int_equal(gs_store_head(f->r, &head1), 0);
    assert_int_equal(head0, head1);
    static s_recs_t recs;
    s_records(f->r, g1, &recs);
    assert_int_equal(recs.n, 2);
    assert_int_equal(gs_store_cell_repair(f->r, A1, A2 "001001001", m, n, ST_NOW_MS, &res,
                                          &out), GS_EINVAL);
    assert_int_equal(gs_store_cell_repair(f->r, A1, A1 "0010", m, n, ST_NOW_MS, &res, &out),
                     GS_EINVAL);
    free(m);
    st_verify_ok(f->r);
}

/* A district's incident in a category its own table added (07) is applied
 * by a city replica whose table (the built-in one) lacks it: the replica
 * stores what the district decided, deadlines included, and needs no copy
 * of the district's table. */
static void
test_incident_of_district_table(void **state)
{
    s_fix_t *f = *state;
    const char *text = "07\t噪音扰民\t96\t48\t24\t12\t10\t8\t6\t2\tactive\n"
                       "99\t其他\t240\t120\t72\t24\t72\t48\t24\t4\tactive\n";
    gs_incident_table_t t;
    gs_verdict_t v;
    size_t line;
    assert_int_equal(gs_incident_table_parse(text, strlen(text), &t, &line, &v), 0);
    assert_int_equal(gs_store_incident_table_put(f->d1.st, &t, 0), 0);
    ProtobufCAllocator *al = gs_arena_allocator(f->d1.arena);
    Gridsync__V1__Record *r = al->alloc(al->allocator_data, sizeof *r);
    Gridsync__V1__Incident *in = al->alloc(al->allocator_data, sizeof *in);
    Gridsync__V1__RecordMeta *m = al->alloc(al->allocator_data, sizeof *m);
    gridsync__v1__record__init(r);
    gridsync__v1__incident__init(in);
    gridsync__v1__record_meta__init(m);
    r->body_case = GRIDSYNC__V1__RECORD__BODY_INCIDENT;
    r->incident = in;
    in->incident_id = "N1";
    in->grid_code = A1 "001001001";
    in->address = "某小区 3 栋";
    in->category = "07";
    in->severity = GRIDSYNC__V1__INCIDENT_SEVERITY__INCIDENT_SEVERITY_URGENT;
    in->description = "夜间施工噪音";
    in->status = GRIDSYNC__V1__INCIDENT_STATUS__INCIDENT_STATUS_REPORTED;
    in->meta = m;
    m->collector_id = "col-1";
    m->device_id = "dev-c";
    m->collected_at = ST_NOW_MS - 1000;
    static const gs_principal_t centre = {
        GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_CENTRE, NULL, NULL, 0 };
    for (int step = 0; step < 2; step++) {
        char upid[16];
        snprintf(upid, sizeof upid, "n1-%d", step);
        if (step) {
            in->status = GRIDSYNC__V1__INCIDENT_STATUS__INCIDENT_STATUS_ACCEPTED;
            m->base_version = 1;
        }
        gs_upload_t up = { "centre-1", upid, &r, 1, al, NULL, 0, NULL, 1 };
        gs_apply_out_t out;
        assert_int_equal(gs_store_apply_as(f->d1.st, &up, &centre, 1, ST_NOW_MS, &out), 0);
        Gridsync__V1__Ack *ack = st_ack(&out, 0);
        assert_int_equal(ack->results[0]->status,
                         GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
        gridsync__v1__ack__free_unpacked(ack, NULL);
        gs_apply_out_clear(&out);
    }
    s_events(&f->d1);
    gs_repl_result_t res = s_replicate(f->r, &f->d1, 0, f->d1.n, NULL);
    if (res.refused)
        fail_msg("refused: %s", res.message);
    assert_int_equal(res.applied, f->d1.n);
    int configured = 1;
    assert_int_equal(gs_store_incident_table(f->r, &t, &configured), 0);
    assert_int_equal(configured, 0);
    assert_null(gs_incident_table_find(&t, "07"));
    uint64_t version;
    char grid[16];
    Gridsync__V1__Record *got =
        st_get(f->r, GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT, "N1", &version, grid);
    assert_non_null(got);
    assert_int_equal(version, 2);
    assert_string_equal(got->incident->category, "07");
    assert_int_equal(got->incident->due_at, ST_NOW_MS + 12 * GS_INCIDENT_HOUR_MS);
    gridsync__v1__record__free_unpacked(got, NULL);
    s_same_records(f->d1.st, f->r, A1);
}

/* Through a checker, a batch of many more messages than it holds at once
 * (300), into a replica whose map starts at 192 KiB: the map grows during
 * the batch and the attempt is made again, the messages checked anew;
 * everything is applied, the records and digests are the district's. Then
 * a gap at message 200 of a second batch: refused there, the 200 before
 * applied. */
static void
test_ahead_many_messages(void **state)
{
    s_fix_t *f = *state;
    s_district_t d;
    s_district_open(&d, A1);
    char g1[16], g2[16], id[32], addr[40];
    snprintf(g1, sizeof g1, "%s001001001", A1);
    snprintf(g2, sizeof g2, "%s001001002", A1);
    for (uint32_t i = 0; i < 520; i++) {
        snprintf(id, sizeof id, "hh-%s-%u", A1, i);
        snprintf(addr, sizeof addr, "%s001001%06u", A1, i);
        st_rec_t r = { .id = id, .grid = i % 2 ? g2 : g1, .addr_code = addr,
                       .pids = { 5000 + 2 * i + 1, 5000 + 2 * i + 2 } };
        assert_int_equal(st_put(d.st, d.arena, &r, ST_NOW_MS).status,
                         GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
        if (i % 64 == 63)
            gs_arena_reset(d.arena);
    }
    s_events(&d);
    assert_int_equal(d.n, 520);
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.map_size = 192 * 1024;
    char *dir = st_tmpdir();
    gs_store_t *r = st_open(dir, &o);
    s_ahead_mode = 1;
    gs_repl_msg_t *m = s_msgs(&d, 0, 300);
    gs_repl_result_t res;
    gs_apply_out_t out;
    assert_int_equal(s_store_replicate(r, A1, A1, m, 300, ST_NOW_MS, &res, &out), 0);
    assert_int_equal(res.refused, 0);
    assert_int_equal(res.applied, 300);
    assert_int_equal(out.n_events, 300);
    assert_true(out.map_grows > 0);
    gs_apply_out_clear(&out);
    free(m);
    m = s_msgs(&d, 300, 520);
    m[200] = m[201];    /* origin seq 501 missing */
    assert_int_equal(s_store_replicate(r, A1, A1, m, 219, ST_NOW_MS, &res, &out), 0);
    s_ahead_mode = 0;
    assert_int_equal(res.refused, GS_REPL_GAP);
    assert_int_equal(res.consumed, 200);
    assert_int_equal(res.applied, 200);
    assert_int_equal(out.n_events, 200);
    gs_apply_out_clear(&out);
    free(m);
    st_verify_ok(r);
    gs_origin_t org;
    assert_int_equal(gs_store_origin_get(r, A1, &org), 0);
    assert_int_equal(org.last_seq, 500);
    assert_int_equal(org.reason, GS_REPL_GAP);
    /* the first 500 records, as the district holds them */
    const char *cells[] = { A1, g1, g2 };
    (void) f;
    gs_digest_node_t dn, rn;
    for (int c = 0; c < 3; c++) {
        dn = s_digest(d.st, cells[c]);
        rn = s_digest(r, cells[c]);
        assert_int_equal(rn.count, c == 0 ? 500 : 250);
        assert_int_equal(dn.count, c == 0 ? 520 : 260);
    }
    gs_store_destroy(&r);
    st_rmdir(dir);
    free(dir);
    /* all 520 through the checker into a fresh replica: the same digests */
    dir = st_tmpdir();
    r = st_open(dir, NULL);
    s_ahead_mode = 1;
    gs_repl_result_t all = s_replicate(r, &d, 0, d.n, NULL);
    s_ahead_mode = 0;
    assert_int_equal(all.applied, 520);
    for (int c = 0; c < 3; c++) {
        dn = s_digest(d.st, cells[c]);
        rn = s_digest(r, cells[c]);
        assert_int_equal(dn.count, rn.count);
        assert_memory_equal(dn.digest, rn.digest, GS_DIGEST_LEN);
    }
    st_verify_ok(r);
    gs_store_destroy(&r);
    st_rmdir(dir);
    free(dir);
    s_district_close(&d);
}

/* Through a checker whose batch's fill puts the headers in: a message
 * that does not decode after 257 good ones in one batch applies exactly
 * the 257, nothing of it, and stops the origin there; the same batch with
 * the checker stopped before it applies the same way, the writer filling
 * and checking every message itself. */
static void
test_ahead_bad_after_many(void **state)
{
    (void) state;
    s_district_t d;
    s_district_open(&d, A1);
    char g1[16], id[32], addr[40];
    snprintf(g1, sizeof g1, "%s001001001", A1);
    for (uint32_t i = 0; i < 300; i++) {
        snprintf(id, sizeof id, "hh-%s-%u", A1, i);
        snprintf(addr, sizeof addr, "%s001001%06u", A1, i);
        st_rec_t r = { .id = id, .grid = g1, .addr_code = addr,
                       .pids = { 7000 + 2 * i + 1, 7000 + 2 * i + 2 } };
        assert_int_equal(st_put(d.st, d.arena, &r, ST_NOW_MS).status,
                         GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
        if (i % 64 == 63)
            gs_arena_reset(d.arena);
    }
    s_events(&d);
    assert_int_equal(d.n, 300);
    static const uint8_t junk[] = { 0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f };
    for (int early_stop = 0; early_stop < 2; early_stop++) {
        char *dir = st_tmpdir();
        gs_store_t *r = st_open(dir, NULL);
        gs_repl_msg_t *m = s_msgs(&d, 0, 300);
        m[257].data = junk;
        m[257].len = sizeof junk;
        gs_repl_msg_t *part = calloc(300, sizeof *part);
        assert_non_null(part);
        for (size_t i = 0; i < 300; i++)
            part[i] = (gs_repl_msg_t) { m[i].data, m[i].len, NULL, NULL, NULL,
                                        m[i].stream_seq };
        gs_repl_ahead_t *a = gs_repl_ahead_new(r);
        assert_non_null(a);
        pthread_t tid;
        assert_int_equal(pthread_create(&tid, NULL, s_checker, a), 0);
        assert_int_equal(gs_repl_ahead_begin(a, A1, A1, part, 300, s_fill_headers, m), 0);
        if (early_stop)
            gs_repl_ahead_stop(a);
        gs_repl_result_t res;
        gs_apply_out_t out;
        assert_int_equal(gs_store_replicate_ahead(r, a, ST_NOW_MS, &res, &out), 0);
        gs_repl_ahead_end(a);
        gs_repl_ahead_stop(a);
        pthread_join(tid, NULL);
        gs_repl_ahead_destroy(&a);
        assert_int_equal(res.refused, GS_REPL_DECODE);
        assert_int_equal(res.refused_seq, 258);
        assert_int_equal(res.consumed, 257);
        assert_int_equal(res.applied, 257);
        assert_int_equal(out.n_events, 257);
        for (size_t i = 0; i < out.n_events; i++) {
            Gridsync__V1__ChangeEvent *ev =
                gridsync__v1__change_event__unpack(NULL, out.events[i].len, out.events[i].data);
            assert_non_null(ev);
            assert_int_equal(ev->origin_seq, i + 1);
            gridsync__v1__change_event__free_unpacked(ev, NULL);
        }
        gs_apply_out_clear(&out);
        gs_origin_t org;
        assert_int_equal(gs_store_origin_get(r, A1, &org), 0);
        assert_int_equal(org.state, GS_ORIGIN_STOPPED);
        assert_int_equal(org.reason, GS_REPL_DECODE);
        assert_int_equal(org.last_seq, 257);
        assert_int_equal(org.stop_seq, 258);
        assert_int_equal(s_digest(r, g1).count, 257);
        st_verify_ok(r);
        free(part);
        free(m);
        gs_store_destroy(&r);
        st_rmdir(dir);
        free(dir);
    }
    s_district_close(&d);
}

/* The tests again with every replicate through a checker thread. */
static int
s_setup_ahead(void **state)
{
    s_ahead_mode = 1;
    return s_setup(state);
}

static int
s_teardown_ahead(void **state)
{
    s_ahead_mode = 0;
    return s_teardown(state);
}

static void
test_bad_arguments(void **state)
{
    s_fix_t *f = *state;
    gs_repl_result_t res;
    gs_apply_out_t out;
    assert_int_equal(s_store_replicate(f->r, "4403051", "4403051", NULL, 0, 0, &res, &out),
                     GS_EINVAL);
    assert_int_equal(s_store_replicate(f->r, A1, "4403", NULL, 0, 0, &res, &out), GS_EINVAL);
    assert_int_equal(s_store_replicate(f->r, "", "", NULL, 0, 0, &res, &out), GS_EINVAL);
    assert_int_equal(gs_store_origin_rebaseline(f->r, "x", 0, NULL, &out), GS_EINVAL);
    assert_string_equal(gs_repl_reason_name(GS_REPL_GAP), "gap");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_union_of_two_origins, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_undecodable, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_oversized, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_wrong_seq_header, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_missing_headers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_other_origin, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_gap, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_other_epoch, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_record_of_other_origin, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_rebaseline_new_lineage, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_narrower_followed_prefix, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_shared_person_key, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_repair_cells, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_repair_while_events_come, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_repair_removes_extra, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_repair_refusals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_incident_of_district_table, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ahead_many_messages, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ahead_bad_after_many, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_union_of_two_origins, s_setup_ahead,
                                        s_teardown_ahead),
        cmocka_unit_test_setup_teardown(test_refuse_undecodable, s_setup_ahead,
                                        s_teardown_ahead),
        cmocka_unit_test_setup_teardown(test_refuse_oversized, s_setup_ahead, s_teardown_ahead),
        cmocka_unit_test_setup_teardown(test_refuse_wrong_seq_header, s_setup_ahead,
                                        s_teardown_ahead),
        cmocka_unit_test_setup_teardown(test_refuse_missing_headers, s_setup_ahead,
                                        s_teardown_ahead),
        cmocka_unit_test_setup_teardown(test_refuse_other_origin, s_setup_ahead,
                                        s_teardown_ahead),
        cmocka_unit_test_setup_teardown(test_refuse_gap, s_setup_ahead, s_teardown_ahead),
        cmocka_unit_test_setup_teardown(test_refuse_other_epoch, s_setup_ahead,
                                        s_teardown_ahead),
        cmocka_unit_test_setup_teardown(test_refuse_record_of_other_origin, s_setup_ahead,
                                        s_teardown_ahead),
        cmocka_unit_test_setup_teardown(test_rebaseline_new_lineage, s_setup_ahead,
                                        s_teardown_ahead),
        cmocka_unit_test_setup_teardown(test_narrower_followed_prefix, s_setup_ahead,
                                        s_teardown_ahead),
        cmocka_unit_test_setup_teardown(test_shared_person_key, s_setup_ahead,
                                        s_teardown_ahead),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

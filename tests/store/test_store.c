/*
 * test_store: the grid store against real LMDB files in temporary
 * directories. Dedup cases, idempotent retransmission (also across a
 * reopen), idempotency expiry, moves between cells, the person index, map
 * growth, both change-log read paths, prev_seq chains, snapshot paging,
 * verify finding a broken index, hot backup, concurrent readers, failed
 * commits, and the registries.
 *
 * Indexes are broken on purpose through gs_store_debug.h, so this test
 * does not include lmdb.h.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "gs_grid.h"
#include "gs_store.h"
#include "gs_store_debug.h"
#include "gs_validate.h"
#include "gs_wire.h"
#include "st_lib.h"

#define RS(x) GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_##x
#define RN(x) GRIDSYNC__V1__REASON__REASON_##x
#define OP(x) GRIDSYNC__V1__OPERATION__OPERATION_##x
#define K_H GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD
#define K_R GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_RENTAL
#define K_O GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_ORGANISATION

#define G1 "110105001001001"
#define G2 "110105002003004"
#define G3 "110105001001002"

typedef struct fx {
    char *dir;                  /* store directory */
    gs_store_t *st;             /* open store */
    gs_arena_t *a;              /* records */
} fx_t;

static int
s_setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = st_tmpdir();
    f->st = st_open(f->dir, NULL);
    f->a = gs_arena_new(0);
    assert_non_null(f->a);
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

static void
s_reopen(fx_t *f, const gs_store_opts_t *o)
{
    gs_store_destroy(&f->st);
    f->st = st_open(f->dir, o);
}

static uint64_t
s_head(gs_store_t *st)
{
    uint64_t h = 0;
    assert_int_equal(gs_store_head(st, &h), 0);
    return h;
}

/* The address text of a stored record (to see which content won). */
static char *
s_note(gs_store_t *st, int kind, const char *id, uint64_t *version)
{
    static char buf[128];
    Gridsync__V1__Record *r = st_get(st, kind, id, version, NULL);
    if (!r)
        return NULL;
    snprintf(buf, sizeof buf, "%s",
             r->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD ? r->household->address
                                                                  : r->rental->address);
    gridsync__v1__record__free_unpacked(r, NULL);
    return buf;
}

/* ---- Opening ------------------------------------------------------------------ */

static void
test_open_and_secret(void **state)
{
    fx_t *f = *state;
    char path[1024];
    snprintf(path, sizeof path, "%s/secret.key", f->dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(sb.st_size, 32);
    assert_int_equal(s_head(f->st), 0);

    uint8_t k1[16], k2[16];
    assert_int_equal(gs_store_person_key(f->st, "11010519491231002X", k1), 0);
    s_reopen(f, NULL);
    assert_int_equal(gs_store_person_key(f->st, "11010519491231002x", k2), 0);
    assert_memory_equal(k1, k2, 16);    /* same secret; 'x' normalised */

    /* read-only: a missing store is not created */
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.read_only = 1;
    char missing[1100];
    snprintf(missing, sizeof missing, "%s-missing", f->dir);
    int err = 0;
    assert_null(gs_store_new(missing, &o, &err));
    assert_int_equal(err, GS_ENOTFOUND);
    assert_int_not_equal(stat(missing, &sb), 0);

    /* read-only on the real store: reads work, writes are refused */
    gs_store_t *ro = st_open(f->dir, &o);
    uint64_t h;
    assert_int_equal(gs_store_head(ro, &h), 0);
    Gridsync__V1__Record *rec = st_build(f->a, &(st_rec_t) { .id = "H1", .addr_code = "A1",
                                                             .pids = { 1 } });
    gs_apply_out_t out;
    assert_int_equal(st_apply(ro, f->a, "dev-1", "u1", &rec, 1, ST_NOW_MS, &out), GS_EREADONLY);
    assert_null(out.uploads);
    gs_store_destroy(&ro);
    gs_store_destroy(&ro);
    assert_null(ro);
    gs_apply_out_clear(&out);
    gs_apply_out_clear(&out);

    /* a store whose secret vanished is refused, not silently re-keyed */
    gs_store_destroy(&f->st);
    char moved[1100];
    snprintf(moved, sizeof moved, "%s.bak", path);
    assert_int_equal(rename(path, moved), 0);
    assert_null(gs_store_new(f->dir, NULL, &err));
    assert_int_equal(err, GS_ECORRUPT);
    assert_int_equal(rename(moved, path), 0);
    f->st = st_open(f->dir, NULL);

    /* another format version is refused */
    uint8_t fmt[4] = { 99, 0, 0, 0 };
    assert_int_equal(gs_store_debug_put(f->st, "meta", "format", 6, fmt, 4), 0);
    gs_store_destroy(&f->st);
    assert_null(gs_store_new(f->dir, NULL, &err));
    assert_int_equal(err, GS_EVERSION);
    assert_true(strlen(gs_store_strerror(err)) > 0);
    /* leave the fixture a fresh store for its teardown */
    st_rmdir(f->dir);
    char *d = st_tmpdir();
    free(f->dir);
    f->dir = d;
    f->st = st_open(f->dir, NULL);
}

/* The lineage epoch: created at the first writable open, non-zero, the same
 * after a reopen (read-only too); a store made before epochs gets one at its
 * next writable open; a damaged one is refused. */
static void
test_epoch(void **state)
{
    fx_t *f = *state;
    uint64_t e1 = 0, e2 = 0;
    assert_int_equal(gs_store_epoch(f->st, &e1), 0);
    assert_int_not_equal(e1, 0);
    s_reopen(f, NULL);
    assert_int_equal(gs_store_epoch(f->st, &e2), 0);
    assert_int_equal(e1, e2);
    gs_store_opts_t ro;
    gs_store_opts_init(&ro);
    ro.read_only = 1;
    gs_store_t *r = st_open(f->dir, &ro);
    assert_int_equal(gs_store_epoch(r, &e2), 0);
    assert_int_equal(e1, e2);
    gs_store_destroy(&r);

    /* another store, another lineage */
    char *d2 = st_tmpdir();
    gs_store_t *other = st_open(d2, NULL);
    assert_int_equal(gs_store_epoch(other, &e2), 0);
    assert_int_not_equal(e2, 0);
    assert_int_not_equal(e1, e2);
    gs_store_destroy(&other);
    st_rmdir(d2);
    free(d2);

    /* a store from before epochs: none until it is opened for writing */
    assert_int_equal(gs_store_debug_del(f->st, "meta", "epoch", 5), 0);
    gs_store_destroy(&f->st);
    r = st_open(f->dir, &ro);
    e2 = 1;
    assert_int_equal(gs_store_epoch(r, &e2), GS_ENOTFOUND);
    assert_int_equal(e2, 0);
    gs_store_destroy(&r);
    f->st = st_open(f->dir, NULL);
    assert_int_equal(gs_store_epoch(f->st, &e2), 0);
    assert_int_not_equal(e2, 0);
    assert_int_not_equal(e2, e1);
    uint64_t e3 = 0;
    s_reopen(f, NULL);
    assert_int_equal(gs_store_epoch(f->st, &e3), 0);
    assert_int_equal(e2, e3);

    /* a damaged epoch is not taken for a missing one */
    uint8_t bad[4] = { 1, 2, 3, 4 };
    assert_int_equal(gs_store_debug_put(f->st, "meta", "epoch", 5, bad, 4), 0);
    gs_store_destroy(&f->st);
    int err = 0;
    assert_null(gs_store_new(f->dir, NULL, &err));
    assert_int_equal(err, GS_ECORRUPT);
    st_rmdir(f->dir);
    free(f->dir);
    f->dir = st_tmpdir();
    f->st = st_open(f->dir, NULL);
}

/* ---- Dedup cases ----------------------------------------------------------------- */

static void
test_accept_and_unchanged(void **state)
{
    fx_t *f = *state;
    st_rec_t r = { .id = "H1", .addr_code = "A1", .pids = { 1, 2 } };
    st_res_t x = st_put(f->st, f->a, &r, ST_NOW_MS);
    assert_int_equal(x.status, RS(ACCEPTED));
    assert_int_equal(x.version, 1);
    assert_int_equal(x.seq, 1);
    assert_string_equal(x.key, "H1");
    assert_int_equal(x.n_events, 1);

    /* re-collected by another device later: metadata differs, content not */
    r.device = "dev-2";
    r.collected_at = ST_NOW_MS - 60 * 1000;
    x = st_put(f->st, f->a, &r, ST_NOW_MS + 1000);
    assert_int_equal(x.status, RS(UNCHANGED));
    assert_int_equal(x.version, 1);
    assert_int_equal(x.seq, 0);
    assert_int_equal(x.n_events, 0);
    assert_int_equal(s_head(f->st), 1);
    uint64_t v = 0;
    assert_non_null(s_note(f->st, K_H, "H1", &v));
    assert_int_equal(v, 1);
    st_verify_ok(f->st);
}

static void
test_versions_conflict_rejects(void **state)
{
    fx_t *f = *state;
    st_rec_t r = { .id = "H1", .addr_code = "A1", .pids = { 1, 2 } };
    assert_int_equal(st_put(f->st, f->a, &r, ST_NOW_MS).status, RS(ACCEPTED));

    r.base = 1;
    r.note = "changed";
    st_res_t x = st_put(f->st, f->a, &r, ST_NOW_MS);
    assert_int_equal(x.status, RS(ACCEPTED));
    assert_int_equal(x.version, 2);
    assert_int_equal(x.seq, 2);

    /* stale base with other content: conflict, nothing kept */
    r.note = "other";
    x = st_put(f->st, f->a, &r, ST_NOW_MS);
    assert_int_equal(x.status, RS(CONFLICT));
    assert_int_equal(x.version, 2);
    assert_int_equal(x.seq, 0);
    assert_string_equal(x.key, "H1");
    assert_int_equal(x.n_events, 0);
    assert_string_equal(s_note(f->st, K_H, "H1", NULL), "changed");
    r.base = 0;
    assert_int_equal(st_put(f->st, f->a, &r, ST_NOW_MS).status, RS(CONFLICT));

    /* stale base but identical content: nothing to do */
    r.base = 1;
    r.note = "changed";
    x = st_put(f->st, f->a, &r, ST_NOW_MS);
    assert_int_equal(x.status, RS(UNCHANGED));
    assert_int_equal(x.version, 2);

    /* from the future */
    r.base = 5;
    r.note = "x";
    x = st_put(f->st, f->a, &r, ST_NOW_MS);
    assert_int_equal(x.status, RS(REJECTED));
    assert_int_equal(x.reason, RN(VERSION_AHEAD));

    /* an edit of a record the store never had */
    st_rec_t u = { .id = "H2", .addr_code = "A2", .pids = { 3 }, .base = 3 };
    x = st_put(f->st, f->a, &u, ST_NOW_MS);
    assert_int_equal(x.status, RS(REJECTED));
    assert_int_equal(x.reason, RN(UNKNOWN_RECORD));
    assert_null(s_note(f->st, K_H, "H2", NULL));
    assert_int_equal(s_head(f->st), 2);
    st_verify_ok(f->st);
}

static void
test_merge_by_address_code(void **state)
{
    fx_t *f = *state;
    st_rec_t a = { .id = "H1", .addr_code = "A1", .pids = { 1, 2 } };
    assert_int_equal(st_put(f->st, f->a, &a, ST_NOW_MS).status, RS(ACCEPTED));

    /* another collector, same address, new id, one more member: a new
     * record (base 0) may not overwrite what is there; it is told which
     * record holds the place and at what version, and nothing is stored */
    st_rec_t b = { .id = "H9", .addr_code = "A1", .pids = { 1, 2, 3 }, .device = "dev-2" };
    st_res_t x = st_put(f->st, f->a, &b, ST_NOW_MS);
    assert_int_equal(x.status, RS(CONFLICT));
    assert_string_equal(x.key, "H1");
    assert_int_equal(x.version, 1);
    assert_int_equal(x.n_events, 0);
    assert_int_equal(s_head(f->st), 1);

    /* re-based on version 1, the same edit merges into H1 */
    b.base = 1;
    x = st_put(f->st, f->a, &b, ST_NOW_MS);
    assert_int_equal(x.status, RS(MERGED));
    assert_string_equal(x.key, "H1");
    assert_int_equal(x.version, 2);
    assert_int_equal(x.seq, 2);
    assert_int_equal(x.n_events, 1);

    /* the alias finds the canonical record, whose id did not change */
    uint64_t v;
    Gridsync__V1__Record *r = st_get(f->st, K_H, "H9", &v, NULL);
    assert_non_null(r);
    assert_string_equal(r->household->household_id, "H1");
    assert_int_equal(r->household->n_members, 3);
    assert_int_equal(v, 2);
    gridsync__v1__record__free_unpacked(r, NULL);

    /* the alias is now a known id: the same upload again is unchanged */
    b.base = 2;
    x = st_put(f->st, f->a, &b, ST_NOW_MS);
    assert_int_equal(x.status, RS(UNCHANGED));
    assert_string_equal(x.key, "H1");

    /* a third id with content identical to the stored one: merged, no event */
    st_rec_t c = { .id = "H8", .addr_code = "A1", .pids = { 1, 2, 3 } };
    x = st_put(f->st, f->a, &c, ST_NOW_MS);
    assert_int_equal(x.status, RS(MERGED));
    assert_string_equal(x.key, "H1");
    assert_int_equal(x.version, 2);
    assert_int_equal(x.seq, 0);
    assert_int_equal(x.n_events, 0);
    assert_non_null(s_note(f->st, 0, "H8", NULL));

    /* natural keys are per kind: a rental at the same code is its own record */
    st_rec_t rr = { .kind = 'R', .id = "R1", .addr_code = "A1", .pids = { 5 } };
    assert_int_equal(st_put(f->st, f->a, &rr, ST_NOW_MS).status, RS(ACCEPTED));
    st_rec_t r2 = { .kind = 'R', .id = "R2", .addr_code = "A1", .pids = { 5, 6 }, .base = 1 };
    x = st_put(f->st, f->a, &r2, ST_NOW_MS);
    assert_int_equal(x.status, RS(MERGED));
    assert_string_equal(x.key, "R1");

    gs_store_info_t info;
    assert_int_equal(gs_store_info(f->st, &info), 0);
    assert_int_equal(info.records, 2);
    st_verify_ok(f->st);
}

static void
test_merge_by_room(void **state)
{
    fx_t *f = *state;
    st_rec_t r1 = { .kind = 'R', .id = "R1", .grid = G1, .room = "301", .pids = { 1 } };
    assert_int_equal(st_put(f->st, f->a, &r1, ST_NOW_MS).status, RS(ACCEPTED));
    st_rec_t r2 = { .kind = 'R', .id = "R2", .grid = G1, .room = "301", .pids = { 2 } };
    st_res_t x = st_put(f->st, f->a, &r2, ST_NOW_MS);
    assert_int_equal(x.status, RS(CONFLICT)); /* other content, not based on R1 */
    assert_string_equal(x.key, "R1");
    r2.base = 1;
    x = st_put(f->st, f->a, &r2, ST_NOW_MS);
    assert_int_equal(x.status, RS(MERGED));
    assert_string_equal(x.key, "R1");
    /* the same room number in another grid is another place */
    st_rec_t r3 = { .kind = 'R', .id = "R3", .grid = G2, .room = "301", .pids = { 3 } };
    assert_int_equal(st_put(f->st, f->a, &r3, ST_NOW_MS).status, RS(ACCEPTED));
    st_rec_t r4 = { .kind = 'R', .id = "R4", .grid = G1, .room = "302", .pids = { 4 } };
    assert_int_equal(st_put(f->st, f->a, &r4, ST_NOW_MS).status, RS(ACCEPTED));
    /* households by room too */
    st_rec_t h1 = { .id = "H1", .grid = G1, .room = "501", .pids = { 7 } };
    assert_int_equal(st_put(f->st, f->a, &h1, ST_NOW_MS).status, RS(ACCEPTED));
    st_rec_t h2 = { .id = "H2", .grid = G1, .room = "501", .pids = { 7 } };
    x = st_put(f->st, f->a, &h2, ST_NOW_MS);
    assert_int_equal(x.status, RS(MERGED));
    assert_string_equal(x.key, "H1");
    assert_int_equal(x.n_events, 0);    /* identical content */
    /* rentals with neither address code nor room have no natural key */
    st_rec_t n1 = { .kind = 'R', .id = "N1", .grid = G1, .pids = { 9 } };
    st_rec_t n2 = { .kind = 'R', .id = "N2", .grid = G1, .pids = { 9 } };
    assert_int_equal(st_put(f->st, f->a, &n1, ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(st_put(f->st, f->a, &n2, ST_NOW_MS).status, RS(ACCEPTED));
    st_verify_ok(f->st);
}

static void
test_natural_key_changes(void **state)
{
    fx_t *f = *state;
    st_rec_t h1 = { .id = "H1", .addr_code = "A1", .pids = { 1 } };
    st_rec_t h2 = { .id = "H2", .addr_code = "A2", .pids = { 2 } };
    assert_int_equal(st_put(f->st, f->a, &h1, ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(st_put(f->st, f->a, &h2, ST_NOW_MS).status, RS(ACCEPTED));
    /* address corrected: A1 is free again */
    h1.base = 1;
    h1.addr_code = "A3";
    assert_int_equal(st_put(f->st, f->a, &h1, ST_NOW_MS).status, RS(ACCEPTED));
    st_rec_t h3 = { .id = "H3", .addr_code = "A1", .pids = { 3 } };
    assert_int_equal(st_put(f->st, f->a, &h3, ST_NOW_MS).status, RS(ACCEPTED));
    /* an edit may not take another record's address */
    h2.base = 1;
    h2.addr_code = "A3";
    st_res_t x = st_put(f->st, f->a, &h2, ST_NOW_MS);
    assert_int_equal(x.status, RS(REJECTED));
    assert_int_equal(x.reason, RN(ADDRESS));
    /* from an address code to a room address and back */
    h1.base = 2;
    h1.addr_code = NULL;
    h1.room = "808";
    assert_int_equal(st_put(f->st, f->a, &h1, ST_NOW_MS).status, RS(ACCEPTED));
    st_rec_t h4 = { .id = "H4", .addr_code = "A3", .pids = { 4 } };
    assert_int_equal(st_put(f->st, f->a, &h4, ST_NOW_MS).status, RS(ACCEPTED));
    st_verify_ok(f->st);
}

static void
test_rejections(void **state)
{
    fx_t *f = *state;
    /* a wrong check character */
    Gridsync__V1__Record *rec = st_build(f->a, &(st_rec_t) { .id = "H1", .addr_code = "A1",
                                                             .pids = { 1, 2 } });
    char *id = rec->household->members[1]->id_number;
    id[17] = id[17] == '1' ? '2' : '1';
    gs_apply_out_t out;
    assert_int_equal(st_apply(f->st, f->a, "dev-1", "u1", &rec, 1, ST_NOW_MS, &out), 0);
    Gridsync__V1__Ack *ack = st_ack(&out, 0);
    assert_int_equal(ack->results[0]->status, RS(REJECTED));
    assert_int_equal(ack->results[0]->reason, RN(ID_CHECK));
    assert_true(strlen(ack->results[0]->message) > 0);
    assert_string_equal(ack->results[0]->record_key, "H1");
    assert_int_equal(out.uploads[0].counts[RS(REJECTED)], 1);
    assert_int_equal(out.n_events, 0);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_apply_out_clear(&out);
    assert_int_equal(s_head(f->st), 0);

    /* outside the device's prefixes */
    const char *scope[] = { "110105002", "110105001001" };
    Gridsync__V1__Record *recs[2] = {
        st_build(f->a, &(st_rec_t) { .id = "H2", .grid = G1, .addr_code = "A2", .pids = { 3 } }),
        st_build(f->a, &(st_rec_t) { .id = "H3", .grid = "110105003001001", .addr_code = "A3",
                                     .pids = { 4 } }),
    };
    gs_upload_t up = { "dev-1", "u2", recs, 2, gs_arena_allocator(f->a), scope, 2, NULL, 0 };
    assert_int_equal(gs_store_apply(f->st, &up, 1, ST_NOW_MS, &out), 0);
    ack = st_ack(&out, 0);
    assert_int_equal(ack->results[0]->status, RS(ACCEPTED));
    assert_int_equal(ack->results[1]->status, RS(REJECTED));
    assert_int_equal(ack->results[1]->reason, RN(OUT_OF_SCOPE));
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_apply_out_clear(&out);

    /* moving a record out of a grid the device does not cover */
    Gridsync__V1__Record *mv = st_build(f->a, &(st_rec_t) { .id = "H2", .grid = G2,
                                                            .addr_code = "A2", .pids = { 3 },
                                                            .base = 1 });
    const char *scope2[] = { "110105002" };
    gs_upload_t up2 = { "dev-1", "u3", &mv, 1, gs_arena_allocator(f->a), scope2, 1, NULL, 0 };
    assert_int_equal(gs_store_apply(f->st, &up2, 1, ST_NOW_MS, &out), 0);
    ack = st_ack(&out, 0);
    assert_int_equal(ack->results[0]->status, RS(REJECTED));
    assert_int_equal(ack->results[0]->reason, RN(OUT_OF_SCOPE));
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_apply_out_clear(&out);

    /* with a grid registry, unknown and retired grids are refused */
    Gridsync__V1__Grid g = GRIDSYNC__V1__GRID__INIT;
    g.grid_code = G1;
    g.name = "建外1";
    assert_int_equal(gs_store_grid_put(f->st, &g), 0);
    g.grid_code = G3;
    g.valid_to = "2020-12-31";
    assert_int_equal(gs_store_grid_put(f->st, &g), 0);
    st_res_t x = st_put(f->st, f->a, &(st_rec_t) { .id = "H5", .grid = G2, .addr_code = "A5",
                                                   .pids = { 5 } }, ST_NOW_MS);
    assert_int_equal(x.status, RS(REJECTED));
    assert_int_equal(x.reason, RN(GRID_UNKNOWN));
    x = st_put(f->st, f->a, &(st_rec_t) { .id = "H6", .grid = G3, .addr_code = "A6",
                                          .pids = { 6 } }, ST_NOW_MS);
    assert_int_equal(x.status, RS(REJECTED));
    assert_int_equal(x.reason, RN(GRID_UNKNOWN));
    x = st_put(f->st, f->a, &(st_rec_t) { .id = "H7", .grid = G1, .addr_code = "A7",
                                          .pids = { 7 } }, ST_NOW_MS);
    assert_int_equal(x.status, RS(ACCEPTED));

    /* request-level problems get an ack with a reason and no results */
    up = (gs_upload_t) { "dev 1", "u9", recs, 1, gs_arena_allocator(f->a), NULL, 0, NULL, 1 };
    assert_int_equal(gs_store_apply(f->st, &up, 1, ST_NOW_MS, &out), 0);
    ack = st_ack(&out, 0);
    assert_int_equal(ack->reason, RN(BAD_REQUEST));
    assert_int_equal(ack->n_results, 0);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_apply_out_clear(&out);
    assert_int_equal(gs_store_apply(f->st, NULL, 0, ST_NOW_MS, &out), 0);
    assert_int_equal(out.n_uploads, 0);
    st_verify_ok(f->st);
}

/* Scope is denied by default: an upload with no prefixes writes nothing
 * unless it says explicitly (scope_all) that the uploader is unrestricted. */
static void
test_scope_deny_by_default(void **state)
{
    fx_t *f = *state;
    gs_apply_out_t out;
    Gridsync__V1__Record *recs[2] = {
        st_build(f->a, &(st_rec_t) { .id = "H1", .grid = G1, .addr_code = "A1", .pids = { 1 } }),
        st_build(f->a, &(st_rec_t) { .id = "H2", .grid = G2, .addr_code = "A2", .pids = { 2 } }),
    };
    /* no list at all, and an empty one */
    const char *none[1] = { NULL };
    gs_upload_t ups[2] = {
        { "dev-1", "u1", recs, 2, gs_arena_allocator(f->a), NULL, 0, NULL, 0 },
        { "dev-2", "u2", recs, 2, gs_arena_allocator(f->a), none, 0, NULL, 0 },
    };
    assert_int_equal(gs_store_apply(f->st, ups, 2, ST_NOW_MS, &out), 0);
    for (size_t u = 0; u < 2; u++) {
        Gridsync__V1__Ack *ack = st_ack(&out, u);
        assert_int_equal(ack->n_results, 2);
        for (size_t i = 0; i < 2; i++) {
            assert_int_equal(ack->results[i]->status, RS(REJECTED));
            assert_int_equal(ack->results[i]->reason, RN(OUT_OF_SCOPE));
        }
        gridsync__v1__ack__free_unpacked(ack, NULL);
    }
    gs_apply_out_clear(&out);
    assert_int_equal(s_head(f->st), 0);

    /* the explicit flag writes everywhere */
    gs_upload_t all = { "dev-1", "u3", recs, 2, gs_arena_allocator(f->a), NULL, 0, NULL, 1 };
    assert_int_equal(gs_store_apply(f->st, &all, 1, ST_NOW_MS, &out), 0);
    assert_int_equal(out.uploads[0].counts[RS(ACCEPTED)], 2);
    gs_apply_out_clear(&out);
    assert_int_equal(s_head(f->st), 2);
}

/* A storage error in a lookup aborts the whole batch: a damaged grid
 * registry entry is not a rejection of one record, and nothing of the
 * batch is committed (not even its valid uploads). */
static void
test_storage_error_aborts_batch(void **state)
{
    fx_t *f = *state;
    Gridsync__V1__Grid g = GRIDSYNC__V1__GRID__INIT;
    g.grid_code = G1;
    assert_int_equal(gs_store_grid_put(f->st, &g), 0);
    g.grid_code = G2;
    assert_int_equal(gs_store_grid_put(f->st, &g), 0);
    /* G2's entry no longer unpacks (a field header with no field) */
    static const uint8_t junk[] = { 0x0a, 0x7f };
    assert_int_equal(gs_store_debug_put(f->st, "grids", G2, 15, junk, sizeof junk), 0);

    Gridsync__V1__Record *good =
        st_build(f->a, &(st_rec_t) { .id = "H1", .grid = G1, .addr_code = "A1", .pids = { 1 } });
    Gridsync__V1__Record *bad =
        st_build(f->a, &(st_rec_t) { .id = "H2", .grid = G2, .addr_code = "A2", .pids = { 2 } });
    gs_upload_t ups[2] = {
        { "dev-1", "u1", &good, 1, gs_arena_allocator(f->a), NULL, 0, NULL, 1 },
        { "dev-1", "u2", &bad, 1, gs_arena_allocator(f->a), NULL, 0, NULL, 1 },
    };
    gs_apply_out_t out;
    assert_int_equal(gs_store_apply(f->st, ups, 2, ST_NOW_MS, &out), GS_ECORRUPT);
    assert_null(out.uploads);
    assert_int_equal(out.n_uploads, 0);
    assert_int_equal(s_head(f->st), 0);
    assert_null(s_note(f->st, K_H, "H1", NULL));

    /* the valid upload alone is applied afresh (its answer was not kept) */
    assert_int_equal(gs_store_apply(f->st, ups, 1, ST_NOW_MS, &out), 0);
    assert_int_equal(out.uploads[0].replayed, 0);
    assert_int_equal(out.uploads[0].counts[RS(ACCEPTED)], 1);
    gs_apply_out_clear(&out);
    assert_int_equal(s_head(f->st), 1);
}

/* ---- Idempotency -------------------------------------------------------------------- */

static void
test_retransmission(void **state)
{
    fx_t *f = *state;
    Gridsync__V1__Record *recs[2] = {
        st_build(f->a, &(st_rec_t) { .id = "H1", .addr_code = "A1", .pids = { 1, 2 } }),
        st_build(f->a, &(st_rec_t) { .id = "H2", .addr_code = "A2", .pids = { 3 } }),
    };
    gs_apply_out_t out;
    assert_int_equal(st_apply(f->st, f->a, "dev-1", "up-1", recs, 2, ST_NOW_MS, &out), 0);
    assert_int_equal(out.uploads[0].replayed, 0);
    assert_int_equal(out.n_events, 2);
    size_t len = out.uploads[0].ack_len;
    uint8_t *first = malloc(len);
    memcpy(first, out.uploads[0].ack, len);
    gs_apply_out_clear(&out);
    assert_int_equal(s_head(f->st), 2);

    /* the same upload again: same bytes, nothing written */
    assert_int_equal(st_apply(f->st, f->a, "dev-1", "up-1", recs, 2, ST_NOW_MS + 5, &out), 0);
    assert_int_equal(out.uploads[0].replayed, 1);
    assert_int_equal(out.uploads[0].ack_len, len);
    assert_memory_equal(out.uploads[0].ack, first, len);
    assert_int_equal(out.uploads[0].counts[RS(ACCEPTED)], 2);
    assert_int_equal(out.n_events, 0);
    gs_apply_out_clear(&out);
    assert_int_equal(s_head(f->st), 2);

    /* after the broker restarted */
    s_reopen(f, NULL);
    assert_int_equal(st_apply(f->st, f->a, "dev-1", "up-1", recs, 2, ST_NOW_MS + 9, &out), 0);
    assert_int_equal(out.uploads[0].replayed, 1);
    assert_memory_equal(out.uploads[0].ack, first, len);
    gs_apply_out_clear(&out);

    /* twice in one batch: the second gets the first's answer */
    Gridsync__V1__Record *r3 = st_build(f->a, &(st_rec_t) { .id = "H3", .addr_code = "A3",
                                                            .pids = { 4 } });
    gs_upload_t ups[3] = {
        { "dev-1", "up-2", &r3, 1, gs_arena_allocator(f->a), NULL, 0, NULL, 1 },
        { "dev-1", "up-2", &r3, 1, gs_arena_allocator(f->a), NULL, 0, NULL, 1 },
        { "dev-2", "up-2", &r3, 1, gs_arena_allocator(f->a), NULL, 0, NULL, 1 },
    };
    assert_int_equal(gs_store_apply(f->st, ups, 3, ST_NOW_MS + 10, &out), 0);
    assert_int_equal(out.n_uploads, 3);
    assert_int_equal(out.uploads[0].replayed, 0);
    assert_int_equal(out.uploads[1].replayed, 1);
    assert_int_equal(out.uploads[0].ack_len, out.uploads[1].ack_len);
    assert_memory_equal(out.uploads[0].ack, out.uploads[1].ack, out.uploads[0].ack_len);
    /* another device's upload ids are its own: applied, and unchanged */
    assert_int_equal(out.uploads[2].replayed, 0);
    assert_int_equal(out.uploads[2].counts[RS(UNCHANGED)], 1);
    assert_int_equal(out.n_events, 1);
    assert_int_equal(out.head_seq, 3);
    gs_apply_out_clear(&out);
    free(first);
    st_verify_ok(f->st);
}

static void
s_one_upload(fx_t *f, const char *upid, const char *rid, int64_t now, int *replayed,
             int *status)
{
    char code[32];
    snprintf(code, sizeof code, "A-%s", rid);
    Gridsync__V1__Record *rec = st_build(f->a, &(st_rec_t) { .id = rid, .addr_code = code,
                                                             .pids = { 1 } });
    gs_apply_out_t out;
    assert_int_equal(st_apply(f->st, f->a, "dev-1", upid, &rec, 1, now, &out), 0);
    Gridsync__V1__Ack *ack = st_ack(&out, 0);
    *replayed = out.uploads[0].replayed;
    *status = ack->results[0]->status;
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_apply_out_clear(&out);
}

static void
test_idempotency_expiry(void **state)
{
    fx_t *f = *state;
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.idem_max_entries = 3;
    o.idem_max_age_ms = 60 * 1000;
    s_reopen(f, &o);
    int rep, status;
    char upid[16], rid[16];
    for (int i = 1; i <= 5; i++) {
        snprintf(upid, sizeof upid, "u%d", i);
        snprintf(rid, sizeof rid, "H%d", i);
        s_one_upload(f, upid, rid, ST_NOW_MS, &rep, &status);
        assert_int_equal(status, RS(ACCEPTED));
    }
    gs_store_info_t info;
    assert_int_equal(gs_store_info(f->st, &info), 0);
    assert_int_equal(info.idem_entries, 3);     /* bounded by count */
    /* u1 was forgotten: it is applied again, and content dedup answers */
    s_one_upload(f, "u1", "H1", ST_NOW_MS, &rep, &status);
    assert_int_equal(rep, 0);
    assert_int_equal(status, RS(UNCHANGED));
    s_one_upload(f, "u5", "H5", ST_NOW_MS, &rep, &status);
    assert_int_equal(rep, 1);
    assert_int_equal(status, RS(ACCEPTED));

    /* bounded by age: two minutes later only the new entry is left */
    int64_t later = ST_NOW_MS + 120 * 1000;
    s_one_upload(f, "u6", "H6", later, &rep, &status);
    assert_int_equal(gs_store_info(f->st, &info), 0);
    assert_int_equal(info.idem_entries, 1);
    s_one_upload(f, "u5", "H5", later, &rep, &status);
    assert_int_equal(rep, 0);
    assert_int_equal(status, RS(UNCHANGED));
    s_one_upload(f, "u6", "H6", later + 1, &rep, &status);
    assert_int_equal(rep, 1);
    st_verify_ok(f->st);
}

/* ---- Moves, void, person index -------------------------------------------------------- */

typedef struct s_evlist {
    uint64_t seq[256];
    char grid[256][16];
    int op[256];
    uint64_t version[256];
    char prev_grid[256][16];
    size_t n;
} s_evlist_t;

static int
s_collect(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    s_evlist_t *l = arg;
    Gridsync__V1__ChangeEvent *ev = gridsync__v1__change_event__unpack(NULL, len, data);
    assert_non_null(ev);
    assert_int_equal(ev->seq, seq);
    assert_string_equal(ev->grid_code, grid);
    if (l->n < 256) {
        l->seq[l->n] = seq;
        snprintf(l->grid[l->n], 16, "%s", grid);
        l->op[l->n] = ev->op;
        l->version[l->n] = ev->version;
        snprintf(l->prev_grid[l->n], 16, "%s", ev->previous_grid_code);
        l->n++;
    }
    gridsync__v1__change_event__free_unpacked(ev, NULL);
    return 0;
}

typedef struct s_cellsum {
    gs_cell_meta_t m;
    int n;
} s_cellsum_t;

static int
s_cell_add(void *arg, const char *grid, const gs_cell_meta_t *m)
{
    s_cellsum_t *s = arg;
    (void) grid;
    s->m.households += m->households;
    s->m.persons += m->persons;
    s->m.rentals += m->rentals;
    s->m.tenants += m->tenants;
    s->m.voided += m->voided;
    s->m.organisations += m->organisations;
    s->m.employees += m->employees;
    if (m->last_seq > s->m.last_seq)
        s->m.last_seq = m->last_seq;
    s->n++;
    return 0;
}

static s_cellsum_t
s_cells(gs_store_t *st, const char *prefix)
{
    s_cellsum_t s;
    memset(&s, 0, sizeof s);
    assert_int_equal(gs_store_cells(st, prefix, s_cell_add, &s), 0);
    return s;
}

static int
s_count_rec(void *arg, const gs_record_view_t *v)
{
    (void) v;
    (*(int *) arg)++;
    return 0;
}

static void
test_move_between_cells(void **state)
{
    fx_t *f = *state;
    assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .id = "H1", .grid = G1,
                     .addr_code = "A1", .pids = { 10, 11 } }, ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .id = "H2", .grid = G1,
                     .addr_code = "A2", .pids = { 12 } }, ST_NOW_MS).status, RS(ACCEPTED));

    Gridsync__V1__Record *mv = st_build(f->a, &(st_rec_t) { .id = "H1", .grid = G2,
                                        .addr_code = "A1", .pids = { 10, 11 }, .base = 1 });
    gs_apply_out_t out;
    assert_int_equal(st_apply(f->st, f->a, "dev-1", "mv", &mv, 1, ST_NOW_MS + 1, &out), 0);
    Gridsync__V1__Ack *ack = st_ack(&out, 0);
    assert_int_equal(ack->results[0]->status, RS(ACCEPTED));
    assert_int_equal(ack->results[0]->version, 2);
    assert_int_equal(ack->results[0]->seq, 4);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    assert_int_equal(out.n_events, 2);
    assert_string_equal(out.events[0].grid, G1);
    assert_int_equal(out.events[0].seq, 3);
    assert_string_equal(out.events[1].grid, G2);
    assert_int_equal(out.events[1].seq, 4);
    Gridsync__V1__ChangeEvent *e0 = gridsync__v1__change_event__unpack(NULL, out.events[0].len,
                                                                      out.events[0].data);
    Gridsync__V1__ChangeEvent *e1 = gridsync__v1__change_event__unpack(NULL, out.events[1].len,
                                                                      out.events[1].data);
    assert_int_equal(e0->op, OP(MOVE_OUT));
    assert_int_equal(e1->op, OP(MOVE_IN));
    assert_string_equal(e1->previous_grid_code, G1);
    assert_int_equal(e0->version, 2);
    assert_int_equal(e1->version, 2);
    assert_string_equal(e1->record->household->grid_code, G2);
    gridsync__v1__change_event__free_unpacked(e0, NULL);
    gridsync__v1__change_event__free_unpacked(e1, NULL);
    gs_apply_out_clear(&out);

    /* lookup by id still works and finds the new cell */
    char grid[16];
    uint64_t v;
    Gridsync__V1__Record *r = st_get(f->st, K_H, "H1", &v, grid);
    assert_non_null(r);
    assert_string_equal(grid, G2);
    assert_int_equal(v, 2);
    gridsync__v1__record__free_unpacked(r, NULL);

    /* both cells' feeds see it */
    s_evlist_t l = { .n = 0 };
    const char *p1[] = { G1 }, *p2[] = { G2 };
    uint64_t next, head;
    assert_int_equal(gs_store_events(f->st, p1, 1, 0, 0, s_collect, &l, &next, &head), 0);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.op[2], OP(MOVE_OUT));
    l.n = 0;
    assert_int_equal(gs_store_events(f->st, p2, 1, 0, 0, s_collect, &l, &next, &head), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.op[0], OP(MOVE_IN));
    assert_string_equal(l.prev_grid[0], G1);
    assert_int_equal(next, 4);
    assert_int_equal(head, 4);

    /* counts moved */
    s_cellsum_t c1 = s_cells(f->st, G1), c2 = s_cells(f->st, G2);
    assert_int_equal(c1.m.households, 1);
    assert_int_equal(c1.m.persons, 1);
    assert_int_equal(c1.m.last_seq, 3);
    assert_int_equal(c2.m.households, 1);
    assert_int_equal(c2.m.persons, 2);
    assert_int_equal(c2.m.last_seq, 4);
    int n = 0;
    assert_int_equal(gs_store_records(f->st, G1, s_count_rec, &n), 0);
    assert_int_equal(n, 1);

    /* the record's history follows it across the move */
    l.n = 0;
    assert_int_equal(gs_store_history(f->st, K_H, "H1", s_collect, &l), 0);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.seq[0], 1);
    assert_int_equal(l.op[0], OP(UPSERT));
    assert_int_equal(l.op[1], OP(MOVE_OUT));
    assert_int_equal(l.op[2], OP(MOVE_IN));
    assert_int_equal(gs_store_history(f->st, K_H, "nope", s_collect, &l), GS_ENOTFOUND);

    /* a room-keyed rental that moves takes its natural key along */
    assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .kind = 'R', .id = "R1", .grid = G1,
                     .room = "501", .pids = { 20 } }, ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .kind = 'R', .id = "R1", .grid = G2,
                     .room = "501", .pids = { 20 }, .base = 1 }, ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .kind = 'R', .id = "R2", .grid = G1,
                     .room = "501", .pids = { 21 } }, ST_NOW_MS).status, RS(ACCEPTED));
    st_res_t x = st_put(f->st, f->a, &(st_rec_t) { .kind = 'R', .id = "R3", .grid = G2,
                        .room = "501", .pids = { 22 }, .base = 2 }, ST_NOW_MS);
    assert_int_equal(x.status, RS(MERGED));
    assert_string_equal(x.key, "R1");
    st_verify_ok(f->st);
}

typedef struct s_dupacc {
    int groups;                     /* groups reported */
    uint8_t hmac[8][16];            /* their keys */
    size_t nrefs[8];                /* refs per group */
    int roles[8][8];                /* roles of each ref */
    char grids[8][8][16];
} s_dupacc_t;

static int
s_dup(void *arg, const uint8_t *hmac, const gs_person_ref_t *refs, size_t n)
{
    s_dupacc_t *d = arg;
    if (d->groups < 8) {
        memcpy(d->hmac[d->groups], hmac, 16);
        d->nrefs[d->groups] = n;
        for (size_t i = 0; i < n && i < 8; i++) {
            d->roles[d->groups][i] = refs[i].role;
            snprintf(d->grids[d->groups][i], 16, "%s", refs[i].grid);
            assert_true(refs[i].kind == K_H || refs[i].kind == K_R || refs[i].kind == K_O);
            assert_true(strlen(refs[i].record_key) > 0);
        }
    }
    d->groups++;
    return 0;
}

/* The person index's HMACs are a stored format: for a known secret.key they
 * are HMAC-SHA-256 (RFC 2104) truncated to 16 bytes, over the normalised ID
 * number for a person and over a NUL byte and the USCC for an
 * organisation, the values every existing store holds (computed apart,
 * with Python's hmac module). */
static void
test_person_hmac_known_values(void **state)
{
    fx_t *f = *state;
    gs_store_destroy(&f->st);
    char path[1024];
    snprintf(path, sizeof path, "%s/secret.key", f->dir);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 32; i++)
        assert_int_equal(fputc(i, fp), i);
    assert_int_equal(fclose(fp), 0);
    f->st = st_open(f->dir, NULL);

    static const uint8_t person[16] = {
        0xa6, 0x67, 0x55, 0x45, 0x3b, 0x10, 0x6d, 0xce,
        0xa0, 0xcf, 0xa2, 0x64, 0x21, 0x4a, 0xe5, 0x9f };
    uint8_t k[16];
    assert_int_equal(gs_store_person_key(f->st, "11010519491231002X", k), 0);
    assert_memory_equal(k, person, 16);
    assert_int_equal(gs_store_person_key(f->st, " 11010519491231002x ", k), 0);
    assert_memory_equal(k, person, 16);

    /* an organisation is indexed under the HMAC of NUL + its USCC: two
     * records with one USCC are reported under it */
    static const uint8_t org[16] = {
        0xd3, 0x76, 0x55, 0x34, 0x56, 0xcb, 0x34, 0x0a,
        0x58, 0xe3, 0xc1, 0x4c, 0x84, 0x2c, 0x2e, 0xca };
    st_rec_t o1 = { .kind = 'O', .id = "O1", .grid = G1, .addr_code = "A1",
                    .uscc = "91350100M000100Y43", .pids = { 10 } };
    st_rec_t o2 = { .kind = 'O', .id = "O2", .grid = G2, .addr_code = "B1",
                    .uscc = "91350100M000100Y43", .pids = { 20 } };
    assert_int_equal(st_put(f->st, f->a, &o1, ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(st_put(f->st, f->a, &o2, ST_NOW_MS).status, RS(ACCEPTED));
    s_dupacc_t d;
    memset(&d, 0, sizeof d);
    assert_int_equal(gs_store_person_dups(f->st, "", s_dup, &d), 0);
    assert_int_equal(d.groups, 1);
    assert_memory_equal(d.hmac[0], org, 16);
    assert_int_equal(d.roles[0][0], GS_PERSON_ROLE_ORG);
}

static void
test_person_index(void **state)
{
    fx_t *f = *state;
    /* person 100 lives in a household in G1 and rents in G2 (人户分离) */
    assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .id = "H1", .grid = G1, .addr_code = "A1",
                     .pids = { 100, 101 } }, ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .kind = 'R', .id = "R1", .grid = G2,
                     .addr_code = "B1", .pids = { 100 }, .landlord = 200 }, ST_NOW_MS).status,
                     RS(ACCEPTED));
    /* person 200 is landlord of two units: normal, not a duplicate */
    assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .kind = 'R', .id = "R2", .grid = G2,
                     .addr_code = "B2", .pids = { 300 }, .landlord = 200 }, ST_NOW_MS).status,
                     RS(ACCEPTED));
    /* persons without documents in two households are never grouped */
    assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .id = "H2", .grid = G1, .addr_code = "A2",
                     .pids = { 102 }, .nodoc = 1 }, ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .id = "H3", .grid = G3, .addr_code = "A3",
                     .pids = { 103 }, .nodoc = 1 }, ST_NOW_MS).status, RS(ACCEPTED));

    s_dupacc_t d;
    memset(&d, 0, sizeof d);
    assert_int_equal(gs_store_person_dups(f->st, "", s_dup, &d), 0);
    assert_int_equal(d.groups, 1);
    assert_int_equal(d.nrefs[0], 2);
    char id100[19];
    st_idnum(100, id100);
    uint8_t k100[16];
    assert_int_equal(gs_store_person_key(f->st, id100, k100), 0);
    assert_memory_equal(d.hmac[0], k100, 16);
    assert_true((d.roles[0][0] == 1 && d.roles[0][1] == 2) ||
                (d.roles[0][0] == 2 && d.roles[0][1] == 1));

    /* the same answer when the report needs several passes */
    gs_store_debug_dup_pass(f->st, 2);
    memset(&d, 0, sizeof d);
    assert_int_equal(gs_store_person_dups(f->st, "", s_dup, &d), 0);
    assert_int_equal(d.groups, 1);
    assert_int_equal(d.nrefs[0], 2);
    assert_memory_equal(d.hmac[0], k100, 16);
    gs_store_debug_dup_pass(f->st, 0);

    /* restricted to a prefix the group touches, or not */
    memset(&d, 0, sizeof d);
    assert_int_equal(gs_store_person_dups(f->st, "110105002", s_dup, &d), 0);
    assert_int_equal(d.groups, 1);
    memset(&d, 0, sizeof d);
    assert_int_equal(gs_store_person_dups(f->st, "44", s_dup, &d), 0);
    assert_int_equal(d.groups, 0);

    /* the landlord can still be looked up */
    char id200[19];
    st_idnum(200, id200);
    uint8_t k200[16];
    assert_int_equal(gs_store_person_key(f->st, id200, k200), 0);
    memset(&d, 0, sizeof d);
    assert_int_equal(gs_store_person_refs(f->st, k200, s_dup, &d), 0);
    assert_int_equal(d.groups, 1);
    assert_int_equal(d.nrefs[0], 2);
    assert_int_equal(d.roles[0][0], 3);

    uint8_t nobody[16] = { 0 };
    assert_int_equal(gs_store_person_refs(f->st, nobody, s_dup, &d), GS_ENOTFOUND);

    /* voiding the household takes it out of the index and the counts */
    st_res_t x = st_put(f->st, f->a, &(st_rec_t) { .id = "H1", .grid = G1, .addr_code = "A1",
                        .pids = { 100, 101 }, .base = 1, .void_ = 1 }, ST_NOW_MS);
    assert_int_equal(x.status, RS(ACCEPTED));
    s_evlist_t l = { .n = 0 };
    assert_int_equal(gs_store_history(f->st, K_H, "H1", s_collect, &l), 0);
    assert_int_equal(l.op[l.n - 1], OP(VOID));
    memset(&d, 0, sizeof d);
    assert_int_equal(gs_store_person_dups(f->st, "", s_dup, &d), 0);
    assert_int_equal(d.groups, 0);
    memset(&d, 0, sizeof d);
    assert_int_equal(gs_store_person_refs(f->st, k100, s_dup, &d), 0);
    assert_int_equal(d.nrefs[0], 1);
    assert_string_equal(d.grids[0][0], G2);
    s_cellsum_t c = s_cells(f->st, G1);
    assert_int_equal(c.m.households, 1);    /* H2 */
    assert_int_equal(c.m.persons, 2);
    assert_int_equal(c.m.voided, 1);

    /* voiding again with the same content is unchanged; reviving restores */
    x = st_put(f->st, f->a, &(st_rec_t) { .id = "H1", .grid = G1, .addr_code = "A1",
               .pids = { 100, 101 }, .base = 2, .void_ = 1 }, ST_NOW_MS);
    assert_int_equal(x.status, RS(UNCHANGED));
    x = st_put(f->st, f->a, &(st_rec_t) { .id = "H1", .grid = G1, .addr_code = "A1",
               .pids = { 100, 101 }, .base = 2 }, ST_NOW_MS);
    assert_int_equal(x.status, RS(ACCEPTED));
    assert_int_equal(x.version, 3);
    memset(&d, 0, sizeof d);
    assert_int_equal(gs_store_person_dups(f->st, "", s_dup, &d), 0);
    assert_int_equal(d.groups, 1);
    c = s_cells(f->st, G1);
    assert_int_equal(c.m.households, 2);
    assert_int_equal(c.m.voided, 0);
    st_verify_ok(f->st);
}

/* ---- Organisations (实有单位) ------------------------------------------------------------ */

#define USCC1 "91350100M000100Y43"
#define USCC2 "91110000600037341L"

static void
s_problem_ignore(void *arg, const char *problem)
{
    (void) arg;
    (void) problem;
}

/* The natural key of an organisation is its USCC and its place: one USCC
 * at one address merges as households at one address do; the same USCC
 * at another address is another record (a branch, or the same one
 * collected twice), never merged, and the duplicate report names both. */
static void
test_org_natural_keys(void **state)
{
    fx_t *f = *state;
    st_rec_t a = { .kind = 'O', .id = "O1", .grid = G1, .addr_code = "A1", .uscc = USCC1,
                   .pids = { 10, 11 }, .landlord = 12 };
    st_res_t x = st_put(f->st, f->a, &a, ST_NOW_MS);
    assert_int_equal(x.status, RS(ACCEPTED));
    assert_int_equal(x.version, 1);

    /* recollected under another id with the same content: merged */
    st_rec_t b = a;
    b.id = "O2";
    b.device = "dev-2";
    x = st_put(f->st, f->a, &b, ST_NOW_MS);
    assert_int_equal(x.status, RS(MERGED));
    assert_string_equal(x.key, "O1");
    assert_int_equal(x.version, 1);
    assert_int_equal(x.n_events, 0);
    /* with new content, a fresh record may not overwrite it; re-based it merges */
    st_rec_t c = a;
    c.id = "O3";
    c.pids[2] = 13;
    x = st_put(f->st, f->a, &c, ST_NOW_MS);
    assert_int_equal(x.status, RS(CONFLICT));
    assert_string_equal(x.key, "O1");
    c.base = 1;
    x = st_put(f->st, f->a, &c, ST_NOW_MS);
    assert_int_equal(x.status, RS(MERGED));
    assert_int_equal(x.version, 2);
    uint64_t v;
    Gridsync__V1__Record *r = st_get(f->st, K_O, "O3", &v, NULL);
    assert_non_null(r);
    assert_int_equal(r->body_case, GRIDSYNC__V1__RECORD__BODY_ORGANISATION);
    assert_string_equal(r->organisation->org_id, "O1");
    assert_int_equal(r->organisation->n_employees, 3);
    assert_int_equal(v, 2);
    gridsync__v1__record__free_unpacked(r, NULL);

    /* the same USCC at a second address, in another cell: its own record */
    st_rec_t br = { .kind = 'O', .id = "O4", .grid = G2, .addr_code = "B1", .uscc = USCC1,
                    .pids = { 20 } };
    x = st_put(f->st, f->a, &br, ST_NOW_MS);
    assert_int_equal(x.status, RS(ACCEPTED));
    assert_string_equal(x.key, "O4");
    /* another USCC at the first address: its own record too */
    st_rec_t other = { .kind = 'O', .id = "O5", .grid = G1, .addr_code = "A1", .uscc = USCC2 };
    assert_int_equal(st_put(f->st, f->a, &other, ST_NOW_MS).status, RS(ACCEPTED));
    /* natural keys are per kind: a household at A1 is its own record */
    st_rec_t hh = { .id = "H1", .grid = G1, .addr_code = "A1", .pids = { 30 } };
    assert_int_equal(st_put(f->st, f->a, &hh, ST_NOW_MS).status, RS(ACCEPTED));

    /* the duplicate report: one group, the two records holding USCC1 */
    s_dupacc_t d;
    memset(&d, 0, sizeof d);
    assert_int_equal(gs_store_person_dups(f->st, "", s_dup, &d), 0);
    assert_int_equal(d.groups, 1);
    assert_int_equal(d.nrefs[0], 2);
    assert_int_equal(d.roles[0][0], GS_PERSON_ROLE_ORG);
    assert_int_equal(d.roles[0][1], GS_PERSON_ROLE_ORG);
    /* reported under either grid's prefix, not under one it does not touch */
    memset(&d, 0, sizeof d);
    assert_int_equal(gs_store_person_dups(f->st, "110105002", s_dup, &d), 0);
    assert_int_equal(d.groups, 1);
    memset(&d, 0, sizeof d);
    assert_int_equal(gs_store_person_dups(f->st, "44", s_dup, &d), 0);
    assert_int_equal(d.groups, 0);

    /* voiding the branch ends the duplicate */
    br.base = 1;
    br.void_ = 1;
    assert_int_equal(st_put(f->st, f->a, &br, ST_NOW_MS).status, RS(ACCEPTED));
    memset(&d, 0, sizeof d);
    assert_int_equal(gs_store_person_dups(f->st, "", s_dup, &d), 0);
    assert_int_equal(d.groups, 0);
    st_verify_ok(f->st);
}

/* A stall without a USCC is keyed by its place and its folded name. */
static void
test_org_stall_without_uscc(void **state)
{
    fx_t *f = *state;
    st_rec_t s1 = { .kind = 'O', .id = "S1", .grid = G1, .room = "档口3", .name = "阿强 水果摊",
                    .landlord = 40 };
    assert_int_equal(st_put(f->st, f->a, &s1, ST_NOW_MS).status, RS(ACCEPTED));
    /* same place, the name typed without the space: the same stall, so a
     * fresh record conflicts with it, and re-based it merges */
    st_rec_t s2 = s1;
    s2.id = "S2";
    s2.name = "阿强水果摊";
    st_res_t x = st_put(f->st, f->a, &s2, ST_NOW_MS);
    assert_int_equal(x.status, RS(CONFLICT));
    assert_string_equal(x.key, "S1");
    s2.base = 1;
    x = st_put(f->st, f->a, &s2, ST_NOW_MS);
    assert_int_equal(x.status, RS(MERGED));
    assert_string_equal(x.key, "S1");
    assert_int_equal(x.version, 2);
    /* another name at the same place: another stall */
    st_rec_t s3 = s1;
    s3.id = "S3";
    s3.name = "老王烧烤";
    assert_int_equal(st_put(f->st, f->a, &s3, ST_NOW_MS).status, RS(ACCEPTED));
    /* the same name in another room: another stall */
    st_rec_t s4 = s1;
    s4.id = "S4";
    s4.room = "档口4";
    assert_int_equal(st_put(f->st, f->a, &s4, ST_NOW_MS).status, RS(ACCEPTED));
    /* a stall takes a USCC when it registers: the key changes with it */
    st_rec_t s5 = s3;
    s5.uscc = USCC2;
    s5.base = 1;
    x = st_put(f->st, f->a, &s5, ST_NOW_MS);
    assert_int_equal(x.status, RS(ACCEPTED));
    assert_int_equal(x.version, 2);
    /* and a new stall of the old name there is free to take the old key */
    st_rec_t s6 = s3;
    s6.id = "S6";
    assert_int_equal(st_put(f->st, f->a, &s6, ST_NOW_MS).status, RS(ACCEPTED));
    st_verify_ok(f->st);
}

/* Retransmission, unchanged content, version conflicts and rejections
 * behave for organisations exactly as for the other kinds. */
static void
test_org_versions_and_retransmission(void **state)
{
    fx_t *f = *state;
    st_rec_t a = { .kind = 'O', .id = "O1", .grid = G1, .addr_code = "A1", .uscc = USCC1,
                   .pids = { 10 } };
    Gridsync__V1__Record *rec = st_build(f->a, &a);
    gs_apply_out_t out;
    assert_int_equal(st_apply(f->st, f->a, "dev-1", "up-1", &rec, 1, ST_NOW_MS, &out), 0);
    assert_int_equal(out.n_events, 1);
    assert_int_equal(out.uploads[0].replayed, 0);
    gs_apply_out_clear(&out);
    /* the same upload again: the same answer, nothing written */
    rec = st_build(f->a, &a);
    assert_int_equal(st_apply(f->st, f->a, "dev-1", "up-1", &rec, 1, ST_NOW_MS, &out), 0);
    assert_int_equal(out.n_events, 0);
    assert_int_equal(out.uploads[0].replayed, 1);
    Gridsync__V1__Ack *ack = st_ack(&out, 0);
    assert_int_equal(ack->results[0]->status, RS(ACCEPTED));
    assert_int_equal(ack->results[0]->version, 1);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_apply_out_clear(&out);

    /* unchanged content (other metadata): no new version */
    st_rec_t u = a;
    u.device = "dev-9";
    u.collected_at = ST_NOW_MS - 60000;
    st_res_t x = st_put(f->st, f->a, &u, ST_NOW_MS);
    assert_int_equal(x.status, RS(UNCHANGED));
    assert_int_equal(x.version, 1);
    /* an edit on the current version, then a stale one */
    st_rec_t e = a;
    e.base = 1;
    e.pids[1] = 11;
    x = st_put(f->st, f->a, &e, ST_NOW_MS);
    assert_int_equal(x.status, RS(ACCEPTED));
    assert_int_equal(x.version, 2);
    e.pids[2] = 12;
    x = st_put(f->st, f->a, &e, ST_NOW_MS);
    assert_int_equal(x.status, RS(CONFLICT));
    assert_int_equal(x.version, 2);
    e.base = 5;
    x = st_put(f->st, f->a, &e, ST_NOW_MS);
    assert_int_equal(x.status, RS(REJECTED));
    assert_int_equal(x.reason, RN(VERSION_AHEAD));
    /* an invalid USCC never reaches the store */
    st_rec_t bad = { .kind = 'O', .id = "O9", .grid = G1, .addr_code = "A9",
                     .uscc = "91350100M000100Y44" };
    x = st_put(f->st, f->a, &bad, ST_NOW_MS);
    assert_int_equal(x.status, RS(REJECTED));
    assert_int_equal(x.reason, RN(USCC_CHECK));
    /* kind 0 finds an organisation by id, history follows it */
    s_evlist_t l = { .n = 0 };
    assert_int_equal(gs_store_history(f->st, 0, "O1", s_collect, &l), 0);
    assert_int_equal(l.n, 2);
    Gridsync__V1__Record *r = st_get(f->st, 0, "O1", NULL, NULL);
    assert_non_null(r);
    assert_int_equal(r->body_case, GRIDSYNC__V1__RECORD__BODY_ORGANISATION);
    gridsync__v1__record__free_unpacked(r, NULL);
    st_verify_ok(f->st);
}

/* Employees are persons of the index: a person living in one grid and
 * working in another is one person, and working there is not living in
 * two places. Cells count organisations and employees; a cell without
 * organisations keeps the 40-byte value older stores hold. */
static void
test_org_persons_and_cells(void **state)
{
    fx_t *f = *state;
    assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .id = "H1", .grid = G1, .addr_code = "A1",
                     .pids = { 100, 101 } }, ST_NOW_MS).status, RS(ACCEPTED));
    uint8_t val[64];
    size_t vl;
    assert_int_equal(gs_store_debug_get(f->st, "cells", G1, 15, val, sizeof val, &vl), 0);
    assert_int_equal(vl, 40);
    /* 100 works in G2 and represents the organisation; 100 is also its
     * contact in the record (one ref, the first role) */
    st_rec_t o = { .kind = 'O', .id = "O1", .grid = G2, .addr_code = "B1", .uscc = USCC1,
                   .pids = { 100, 102, 103 }, .landlord = 100 };
    assert_int_equal(st_put(f->st, f->a, &o, ST_NOW_MS).status, RS(ACCEPTED));
    char id100[19];
    st_idnum(100, id100);
    uint8_t k100[16];
    assert_int_equal(gs_store_person_key(f->st, id100, k100), 0);
    s_dupacc_t d;
    memset(&d, 0, sizeof d);
    assert_int_equal(gs_store_person_refs(f->st, k100, s_dup, &d), 0);
    assert_int_equal(d.groups, 1);
    assert_int_equal(d.nrefs[0], 2);    /* one person: home in G1, work in G2 */
    assert_string_equal(d.grids[0][0], G1);
    assert_int_equal(d.roles[0][0], GS_PERSON_ROLE_MEMBER);
    assert_string_equal(d.grids[0][1], G2);
    assert_int_equal(d.roles[0][1], GS_PERSON_ROLE_REPRESENTATIVE);
    char id102[19];
    st_idnum(102, id102);
    uint8_t k102[16];
    assert_int_equal(gs_store_person_key(f->st, id102, k102), 0);
    memset(&d, 0, sizeof d);
    assert_int_equal(gs_store_person_refs(f->st, k102, s_dup, &d), 0);
    assert_int_equal(d.roles[0][0], GS_PERSON_ROLE_EMPLOYEE);
    /* living somewhere and working somewhere is not a duplicate */
    memset(&d, 0, sizeof d);
    assert_int_equal(gs_store_person_dups(f->st, "", s_dup, &d), 0);
    assert_int_equal(d.groups, 0);

    s_cellsum_t c = s_cells(f->st, G2);
    assert_int_equal(c.m.organisations, 1);
    assert_int_equal(c.m.employees, 3);
    assert_int_equal(c.m.households, 0);
    assert_int_equal(gs_store_debug_get(f->st, "cells", G2, 15, val, sizeof val, &vl), 0);
    assert_int_equal(vl, 48);
    c = s_cells(f->st, "");
    assert_int_equal(c.m.organisations, 1);
    assert_int_equal(c.m.persons, 2);
    /* the organisation moves into G1: the counts move with it */
    o.grid = G1;
    o.base = 1;
    st_res_t x = st_put(f->st, f->a, &o, ST_NOW_MS);
    assert_int_equal(x.status, RS(ACCEPTED));
    assert_int_equal(x.n_events, 2);
    c = s_cells(f->st, G1);
    assert_int_equal(c.m.households, 1);
    assert_int_equal(c.m.organisations, 1);
    assert_int_equal(c.m.employees, 3);
    c = s_cells(f->st, G2);
    assert_int_equal(c.m.organisations, 0);
    assert_int_equal(gs_store_debug_get(f->st, "cells", G2, 15, val, sizeof val, &vl), 0);
    assert_int_equal(vl, 40);
    /* voided, it leaves the counts for voided */
    o.base = 2;
    o.void_ = 1;
    assert_int_equal(st_put(f->st, f->a, &o, ST_NOW_MS).status, RS(ACCEPTED));
    c = s_cells(f->st, G1);
    assert_int_equal(c.m.organisations, 0);
    assert_int_equal(c.m.employees, 0);
    assert_int_equal(c.m.voided, 1);
    st_verify_ok(f->st);

    /* a revived organisation brings the long form back; after a reopen
     * both forms read and verify */
    o.base = 3;
    o.void_ = 0;
    assert_int_equal(st_put(f->st, f->a, &o, ST_NOW_MS).status, RS(ACCEPTED));
    c = s_cells(f->st, G1);
    assert_int_equal(c.m.organisations, 1);
    assert_int_equal(c.m.voided, 0);
    s_reopen(f, NULL);
    st_verify_ok(f->st);
    c = s_cells(f->st, "");
    assert_int_equal(c.n, 2);
    assert_int_equal(c.m.employees, 3);
    /* a value of neither length is damage that verify reports */
    assert_int_equal(gs_store_debug_get(f->st, "cells", G1, 15, val, sizeof val, &vl), 0);
    assert_int_equal(vl, 48);
    assert_int_equal(gs_store_debug_put(f->st, "cells", G1, 15, val, 44), 0);
    uint64_t problems = 0;
    assert_int_equal(gs_store_verify(f->st, s_problem_ignore, NULL, &problems), GS_ECORRUPT);
    assert_true(problems > 0);
}

/* ---- Map growth and failures ------------------------------------------------------------ */

static void
test_tiny_map_grows(void **state)
{
    fx_t *f = *state;
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.map_size = 256 * 1024;
    st_rmdir(f->dir);
    gs_store_destroy(&f->st);
    free(f->dir);
    f->dir = st_tmpdir();
    f->st = st_open(f->dir, &o);
    uint32_t grows = 0;
    for (int b = 0; b < 40; b++) {
        Gridsync__V1__Record *recs[25];
        for (int i = 0; i < 25; i++) {
            char id[32], code[32];
            snprintf(id, sizeof id, "H%d-%d", b, i);
            snprintf(code, sizeof code, "A%d-%d", b, i);
            recs[i] = st_build(f->a, &(st_rec_t) {
                .id = id, .addr_code = code, .grid = b % 2 ? G1 : G2,
                .pids = { (uint32_t) (1000 + b * 100 + i * 3), (uint32_t) (1001 + b * 100 + i * 3),
                          (uint32_t) (1002 + b * 100 + i * 3) } });
        }
        char upid[32];
        snprintf(upid, sizeof upid, "b%d", b);
        gs_apply_out_t out;
        int rc = st_apply(f->st, f->a, "dev-1", upid, recs, 25, ST_NOW_MS, &out);
        if (rc)
            fail_msg("batch %d: %s (%s)", b, gs_store_strerror(rc), gs_store_errdetail());
        assert_int_equal(out.uploads[0].counts[RS(ACCEPTED)], 25);
        grows += out.map_grows;
        gs_apply_out_clear(&out);
        gs_arena_reset(f->a);
    }
    assert_true(grows > 0);
    gs_store_info_t info;
    assert_int_equal(gs_store_info(f->st, &info), 0);
    assert_int_equal(info.records, 1000);
    assert_int_equal(info.head_seq, 1000);
    assert_true(info.map_size > 256 * 1024);
    st_verify_ok(f->st);

    /* a map that may not grow: GS_EFULL, nothing half-applied */
    char *d2 = st_tmpdir();
    o.map_max = o.map_size;
    gs_store_t *st2 = st_open(d2, &o);
    Gridsync__V1__Record *big[200];
    for (int i = 0; i < 200; i++) {
        char id[32], code[32];
        snprintf(id, sizeof id, "B%d", i);
        snprintf(code, sizeof code, "C%d", i);
        big[i] = st_build(f->a, &(st_rec_t) { .id = id, .addr_code = code,
                          .pids = { (uint32_t) (50000 + i * 4), (uint32_t) (50001 + i * 4),
                                    (uint32_t) (50002 + i * 4), (uint32_t) (50003 + i * 4) } });
    }
    gs_apply_out_t out;
    int total = 0;
    for (int round = 0; round < 20; round++) {
        char upid[16];
        snprintf(upid, sizeof upid, "r%d", round);
        int rc = st_apply(st2, f->a, "dev-1", upid, big, 200, ST_NOW_MS, &out);
        if (rc == GS_EFULL)
            break;
        assert_int_equal(rc, 0);
        total++;
        gs_apply_out_clear(&out);
        for (int i = 0; i < 200; i++)   /* next round: new content */
            big[i]->household->address = round % 2 ? "odd" : "even";
        for (int i = 0; i < 200; i++)
            big[i]->household->meta->base_version = (uint64_t) round + 1;
    }
    assert_true(total < 20);
    assert_null(out.uploads);
    uint64_t head = s_head(st2);
    assert_int_equal(head, (uint64_t) total * 200);
    st_verify_ok(st2);
    gs_store_destroy(&st2);
    st_rmdir(d2);
    free(d2);
}

/* Another process (the broker) grows the map under a read-only handle
 * (gridctl): the reader adopts the new size instead of failing. */
static void
test_map_grown_by_other_process(void **state)
{
    fx_t *f = *state;
    gs_store_destroy(&f->st);
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.read_only = 1;
    o.map_size = 256 * 1024;
    gs_store_t *ro = st_open(f->dir, &o);
    gs_store_info_t before, after;
    assert_int_equal(gs_store_info(ro, &before), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        gs_store_opts_t w;
        gs_store_opts_init(&w);
        w.map_size = 256 * 1024;
        int err;
        gs_store_t *st = gs_store_new(f->dir, &w, &err);
        if (!st)
            _exit(2);
        gs_arena_t *a = gs_arena_new(0);
        for (int b = 0; b < 30; b++) {
            Gridsync__V1__Record *recs[25];
            for (int i = 0; i < 25; i++) {
                char id[32], code[32];
                snprintf(id, sizeof id, "G%d-%d", b, i);
                snprintf(code, sizeof code, "GA%d-%d", b, i);
                recs[i] = st_build(a, &(st_rec_t) { .id = id, .addr_code = code,
                                   .pids = { (uint32_t) (80000 + b * 100 + i * 2),
                                             (uint32_t) (80001 + b * 100 + i * 2) } });
            }
            char upid[16];
            snprintf(upid, sizeof upid, "g%d", b);
            gs_apply_out_t out;
            if (st_apply(st, a, "dev-1", upid, recs, 25, ST_NOW_MS, &out))
                _exit(3);
            gs_apply_out_clear(&out);
            gs_arena_reset(a);
        }
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(s_head(ro), 750);
    assert_int_equal(gs_store_info(ro, &after), 0);
    assert_true(after.map_size > before.map_size);
    assert_int_equal(after.records, 750);
    gs_store_destroy(&ro);
    f->st = st_open(f->dir, NULL);
    st_verify_ok(f->st);
}

static void
test_commit_failures(void **state)
{
    fx_t *f = *state;
    Gridsync__V1__Record *rec = st_build(f->a, &(st_rec_t) { .id = "H1", .addr_code = "A1",
                                                             .pids = { 1, 2 } });
    gs_apply_out_t out;
    gs_store_debug_fail_commit(f->st, ENOSPC);
    assert_int_equal(st_apply(f->st, f->a, "dev-1", "u1", &rec, 1, ST_NOW_MS, &out), GS_EFULL);
    assert_null(out.uploads);
    assert_int_equal(s_head(f->st), 0);
    assert_null(s_note(f->st, K_H, "H1", NULL));
    gs_store_debug_fail_commit(f->st, EIO);
    assert_int_equal(st_apply(f->st, f->a, "dev-1", "u1", &rec, 1, ST_NOW_MS, &out), GS_EIO);
    /* the retry after the failures is applied, not replayed */
    assert_int_equal(st_apply(f->st, f->a, "dev-1", "u1", &rec, 1, ST_NOW_MS, &out), 0);
    assert_int_equal(out.uploads[0].replayed, 0);
    assert_int_equal(out.uploads[0].counts[RS(ACCEPTED)], 1);
    gs_apply_out_clear(&out);

    /* the reopen the store does after MDB_PANIC keeps everything usable */
    assert_int_equal(gs_store_debug_reopen(f->st), 0);
    assert_int_equal(s_head(f->st), 1);
    assert_non_null(s_note(f->st, K_H, "H1", NULL));
    Gridsync__V1__Record *r2 = st_build(f->a, &(st_rec_t) { .id = "H2", .addr_code = "A2",
                                                            .pids = { 3 } });
    assert_int_equal(st_apply(f->st, f->a, "dev-1", "u2", &r2, 1, ST_NOW_MS, &out), 0);
    assert_int_equal(out.head_seq, 2);
    gs_apply_out_clear(&out);

    /* a real write failure: the file may not grow (as on a full disk) */
    gs_store_info_t info;
    assert_int_equal(gs_store_info(f->st, &info), 0);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    Gridsync__V1__Record *recs[300];
    for (int i = 0; i < 300; i++) {
        char id[32], code[32];
        snprintf(id, sizeof id, "F%d", i);
        snprintf(code, sizeof code, "FA%d", i);
        recs[i] = st_build(f->a, &(st_rec_t) { .id = id, .addr_code = code,
                           .pids = { (uint32_t) (7000 + i * 3), (uint32_t) (7001 + i * 3),
                                     (uint32_t) (7002 + i * 3) } });
    }
    lim = old;
    lim.rlim_cur = info.file_size;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = st_apply(f->st, f->a, "dev-1", "big", recs, 300, ST_NOW_MS, &out);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, oldsig);
    assert_true(rc == GS_EFULL || rc == GS_EIO);
    assert_int_equal(s_head(f->st), 2);
    st_verify_ok(f->st);
    /* space is back: the same upload goes through */
    rc = st_apply(f->st, f->a, "dev-1", "big", recs, 300, ST_NOW_MS, &out);
    assert_int_equal(rc, 0);
    assert_int_equal(out.uploads[0].counts[RS(ACCEPTED)], 300);
    gs_apply_out_clear(&out);
    st_verify_ok(f->st);
}

/* ---- Change-log reads --------------------------------------------------------------------- */

/* A deterministic mixed history over 30 cells in two streets and two
 * districts' worth of prefixes: creates, updates, moves, voids. */
static void
s_populate(fx_t *f, int ops)
{
    uint32_t x = 12345;
    char ids[120][16];
    char grids[120][16];
    uint64_t ver[120];
    memset(ver, 0, sizeof ver);
    for (int i = 0; i < 120; i++)
        snprintf(ids[i], 16, "P%d", i);
    for (int op = 0; op < ops; op++) {
        x = x * 1103515245u + 12345u;
        int i = (int) ((x >> 8) % 120);
        x = x * 1103515245u + 12345u;
        int cell = (int) ((x >> 8) % 30);
        char grid[16];
        snprintf(grid, sizeof grid, "1101050%02d%03d%03d", 1 + cell % 2, 1 + cell % 3,
                 1 + cell / 6);
        st_rec_t r = { .id = ids[i], .pids = { (uint32_t) (900 + i) } };
        char code[24], note[24];
        snprintf(code, sizeof code, "AC%d", i);
        snprintf(note, sizeof note, "op %d", op);
        r.addr_code = code;
        r.note = note;
        r.base = ver[i];
        /* a third of the updates move the record, some void it */
        r.grid = ver[i] && (x >> 20) % 3 ? grids[i] : grid;
        r.void_ = ver[i] && (x >> 24) % 7 == 0;
        st_res_t res = st_put(f->st, f->a, &r, ST_NOW_MS + op);
        if (res.status != RS(ACCEPTED))
            fail_msg("populate op %d on %s: status %d reason %d: %s", op, ids[i],
                     res.status, res.reason, res.message);
        ver[i] = res.version;
        if (r.grid != grids[i])
            snprintf(grids[i], 16, "%s", r.grid);
        if (op % 50 == 0)
            gs_arena_reset(f->a);
    }
}

typedef struct s_evsig {
    uint64_t seq[4096];
    uint64_t hash[4096];            /* FNV of grid + bytes */
    size_t n;
    const char *const *pf;          /* prefixes asked for */
    size_t npf;
    int bad;                        /* an event outside the prefixes */
} s_evsig_t;

static int
s_sig(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    s_evsig_t *s = arg;
    int ok = 0;
    for (size_t i = 0; i < s->npf; i++)
        if (gs_grid_prefix_covers(s->pf[i], grid))
            ok = 1;
    if (!ok)
        s->bad = 1;
    uint64_t h = 1469598103934665603ull;
    for (const char *g = grid; *g; g++)
        h = (h ^ (uint8_t) *g) * 1099511628211ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ data[i]) * 1099511628211ull;
    if (s->n < 4096) {
        s->seq[s->n] = seq;
        s->hash[s->n] = h;
        s->n++;
    }
    return 0;
}

static void
test_events_both_paths(void **state)
{
    fx_t *f = *state;
    s_populate(f, 400);
    uint64_t head = s_head(f->st);
    assert_true(head >= 400);
    const char *sets[][3] = {
        { "110105", NULL }, { "110105001", NULL }, { "110105001001", NULL },
        { "110105001001001", NULL }, { "110105001001001", "110105002002002", NULL },
        { "110105001", "110105001002", NULL }, { "99", NULL },
        { "110105002", "110105001003", NULL }, { "11", "110105002003", NULL },
    };
    uint64_t sinces[] = { 0, 5, head / 2, head, head + 3 };
    uint32_t limits[] = { 0, 1, 7, 100000 };
    static s_evsig_t a, b, c;
    for (size_t si = 0; si < sizeof sets / sizeof sets[0]; si++) {
        size_t npf = 0;
        while (npf < 3 && sets[si][npf])
            npf++;
        for (size_t k = 0; k < sizeof sinces / sizeof sinces[0]; k++) {
            for (size_t li = 0; li < sizeof limits / sizeof limits[0]; li++) {
                uint64_t na, nb, nc, ha, hb, hc;
                memset(&a, 0, sizeof a);
                memset(&b, 0, sizeof b);
                memset(&c, 0, sizeof c);
                a.pf = b.pf = c.pf = sets[si];
                a.npf = b.npf = c.npf = npf;
                assert_int_equal(gs_store_events_path(f->st, sets[si], npf, sinces[k],
                                 limits[li], s_sig, &a, &na, &ha, 1), 0);
                assert_int_equal(gs_store_events_path(f->st, sets[si], npf, sinces[k],
                                 limits[li], s_sig, &b, &nb, &hb, 2), 0);
                assert_int_equal(gs_store_events(f->st, sets[si], npf, sinces[k], limits[li],
                                                 s_sig, &c, &nc, &hc), 0);
                assert_int_equal(a.n, b.n);
                assert_int_equal(a.n, c.n);
                assert_memory_equal(a.seq, b.seq, a.n * sizeof a.seq[0]);
                assert_memory_equal(a.hash, b.hash, a.n * sizeof a.hash[0]);
                assert_memory_equal(a.hash, c.hash, a.n * sizeof a.hash[0]);
                assert_int_equal(na, nb);
                assert_int_equal(na, nc);
                assert_int_equal(ha, head);
                assert_int_equal(hb, head);
                assert_false(a.bad);
                if (limits[li])
                    assert_true(a.n <= limits[li]);
                for (size_t i = 0; i < a.n; i++) {
                    assert_true(a.seq[i] > sinces[k]);
                    if (i)
                        assert_true(a.seq[i] > a.seq[i - 1]);
                }
            }
        }
        /* paging with a small limit gives the unlimited answer */
        memset(&a, 0, sizeof a);
        a.pf = sets[si];
        a.npf = npf;
        uint64_t next, h;
        assert_int_equal(gs_store_events(f->st, sets[si], npf, 0, 0, s_sig, &a, &next, &h), 0);
        assert_int_equal(next, head);
        memset(&b, 0, sizeof b);
        b.pf = sets[si];
        b.npf = npf;
        uint64_t since = 0;
        for (int guard = 0; guard < 10000; guard++) {
            size_t before = b.n;
            assert_int_equal(gs_store_events(f->st, sets[si], npf, since, 7, s_sig, &b,
                                             &next, &h), 0);
            assert_true(next >= since);
            since = next;
            if (b.n - before < 7)
                break;
        }
        assert_int_equal(since, head);
        assert_int_equal(a.n, b.n);
        assert_memory_equal(a.seq, b.seq, a.n * sizeof a.seq[0]);
    }
    /* everything: seqs 1..head with no holes */
    memset(&a, 0, sizeof a);
    const char *all[] = { "" };
    a.pf = all;
    a.npf = 1;
    uint64_t next, h;
    assert_int_equal(gs_store_events(f->st, all, 1, 0, 0, s_sig, &a, &next, &h), 0);
    assert_int_equal(a.n, head);
    for (size_t i = 0; i < a.n; i++)
        assert_int_equal(a.seq[i], i + 1);
    /* no prefixes: nothing */
    memset(&a, 0, sizeof a);
    assert_int_equal(gs_store_events(f->st, NULL, 0, 0, 0, s_sig, &a, &next, &h), 0);
    assert_int_equal(a.n, 0);
    st_verify_ok(f->st);
}

typedef struct s_chain_chk {
    char prefix[512][16];           /* level prefixes seen */
    uint64_t last[512];             /* their last seq */
    size_t n;
    uint64_t events;
    int canonical;                  /* all events re-pack to the same bytes */
} s_chain_chk_t;

static uint64_t *
s_chain_slot(s_chain_chk_t *c, const char *p)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->prefix[i], p) == 0)
            return &c->last[i];
    assert_true(c->n < 512);
    snprintf(c->prefix[c->n], 16, "%s", p);
    c->last[c->n] = 0;
    return &c->last[c->n++];
}

static int
s_chain_ev(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    s_chain_chk_t *c = arg;
    Gridsync__V1__ChangeEvent *ev = gridsync__v1__change_event__unpack(NULL, len, data);
    assert_non_null(ev);
    assert_int_equal(ev->n_prev_seq, GS_LEVELS);
    for (int l = 0; l < GS_LEVELS; l++) {
        char p[16];
        snprintf(p, sizeof p, "%.*s", gs_level_len[l], grid);
        uint64_t *slot = s_chain_slot(c, p);
        assert_int_equal(ev->prev_seq[l], *slot);
        *slot = seq;
    }
    size_t n = protobuf_c_message_get_packed_size(&ev->base);
    uint8_t *buf = malloc(n);
    protobuf_c_message_pack(&ev->base, buf);
    if (n != len || memcmp(buf, data, len) != 0)
        c->canonical = 0;
    free(buf);
    gridsync__v1__change_event__free_unpacked(ev, NULL);
    c->events++;
    return 0;
}

static void
test_prev_seq_chains(void **state)
{
    fx_t *f = *state;
    s_populate(f, 250);
    static s_chain_chk_t c;
    memset(&c, 0, sizeof c);
    c.canonical = 1;
    const char *all[] = { "" };
    uint64_t next, head;
    assert_int_equal(gs_store_events(f->st, all, 1, 0, 0, s_chain_ev, &c, &next, &head), 0);
    assert_int_equal(c.events, head);
    assert_true(c.canonical);
    for (size_t i = 0; i < c.n; i++) {
        uint64_t last;
        assert_int_equal(gs_store_prefix_last(f->st, c.prefix[i], &last), 0);
        assert_int_equal(last, c.last[i]);
    }
    uint64_t last;
    assert_int_equal(gs_store_prefix_last(f->st, "", &last), 0);
    assert_int_equal(last, head);
    assert_int_equal(gs_store_prefix_last(f->st, "44", &last), 0);
    assert_int_equal(last, 0);
    assert_int_equal(gs_store_prefix_last(f->st, "1101", &last), 0);
    assert_int_equal(last, head);
    assert_int_equal(gs_store_prefix_last(f->st, "110", &last), GS_EINVAL);

    /* the feed detects a gap: an event whose prev_seq for the subscribed
     * level is not the last one seen */
    st_verify_ok(f->st);
}

/* The writer keeps state from one transaction to the next (its output
 * buffer, the string maps of its caches) and finds a cell's level
 * prefixes once for the records that follow in that cell; its cursors live
 * as long as a transaction. A commit that fails must leave none of it
 * behind: the batch applied again gives the acks and events, byte for
 * byte, of a store where it never failed, the chain and the digests
 * verify, and the answers handed over stay valid after the next apply. */
static size_t
s_cells_batch(gs_arena_t *a, int round, Gridsync__V1__Record **recs)
{
    static const char *const grids[] = { G1, G1, G3, G1, G2, G3, G2, G2 };
    size_t n = 0;
    for (int i = 0; i < 8; i++) {
        char id[16], code[16], note[32];
        snprintf(id, sizeof id, "C%d", i + (round == 2 ? 8 : 0));
        snprintf(code, sizeof code, "CA%d", i + (round == 2 ? 8 : 0));
        snprintf(note, sizeof note, "round %d", round);
        recs[n++] = st_build(a, &(st_rec_t) { .id = id, .grid = grids[i], .addr_code = code,
                                              .pids = { (uint32_t) (500 + i), 0 },
                                              .note = note,
                                              .base = round == 1 ? 1 : 0 });
    }
    return n;
}

static void
test_failed_commit_leaves_nothing(void **state)
{
    fx_t *f = *state;
    char *dir2 = st_tmpdir();
    gs_store_t *ref = st_open(dir2, NULL);
    Gridsync__V1__Record *recs[8];
    gs_apply_out_t out, rout;
    size_t n = s_cells_batch(f->a, 0, recs);
    assert_int_equal(st_apply(f->st, f->a, "dev-1", "c0", recs, n, ST_NOW_MS, &out), 0);
    gs_apply_out_clear(&out);
    assert_int_equal(st_apply(ref, f->a, "dev-1", "c0", recs, n, ST_NOW_MS, &rout), 0);
    gs_apply_out_clear(&rout);

    /* updates in the same cells, then new records: the first commit fails */
    for (int round = 1; round <= 2; round++) {
        char up[8];
        snprintf(up, sizeof up, "c%d", round);
        n = s_cells_batch(f->a, round, recs);
        gs_store_debug_fail_commit(f->st, EIO);
        assert_int_equal(st_apply(f->st, f->a, "dev-1", up, recs, n, ST_NOW_MS, &out), GS_EIO);
        assert_null(out.uploads);
        assert_null(out.bytes);
        assert_int_equal(st_apply(f->st, f->a, "dev-1", up, recs, n, ST_NOW_MS, &out), 0);
        assert_int_equal(st_apply(ref, f->a, "dev-1", up, recs, n, ST_NOW_MS, &rout), 0);
        assert_int_equal(out.uploads[0].replayed, 0);
        assert_int_equal(out.uploads[0].counts[RS(ACCEPTED)], 8);
        assert_int_equal(out.head_seq, rout.head_seq);
        assert_int_equal(out.uploads[0].ack_len, rout.uploads[0].ack_len);
        assert_memory_equal(out.uploads[0].ack, rout.uploads[0].ack, rout.uploads[0].ack_len);
        assert_int_equal(out.n_events, rout.n_events);
        for (size_t i = 0; i < out.n_events; i++) {
            assert_int_equal(out.events[i].seq, rout.events[i].seq);
            assert_int_equal(out.events[i].len, rout.events[i].len);
            assert_memory_equal(out.events[i].data, rout.events[i].data, rout.events[i].len);
        }
        /* what was handed over stays valid while the writer goes on */
        gs_apply_out_t next;
        Gridsync__V1__Record *one = recs[0];
        assert_int_equal(st_apply(f->st, f->a, "dev-1", up, &one, 1, ST_NOW_MS, &next), 0);
        assert_int_equal(next.uploads[0].replayed, 1);
        assert_memory_equal(out.uploads[0].ack, rout.uploads[0].ack, rout.uploads[0].ack_len);
        gs_apply_out_clear(&next);
        gs_apply_out_clear(&out);
        gs_apply_out_clear(&rout);
    }
    static s_chain_chk_t c;
    memset(&c, 0, sizeof c);
    c.canonical = 1;
    const char *all[] = { "" };
    uint64_t next_seq, head;
    assert_int_equal(gs_store_events(f->st, all, 1, 0, 0, s_chain_ev, &c, &next_seq, &head), 0);
    assert_int_equal(c.events, head);
    assert_int_equal(head, 24);
    /* the digests as the store that never failed has them, at every level */
    const char *prefixes[] = { "", "11", "110105", "110105001", "110105001001", G1, G2, G3 };
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        gs_digest_query_t q = { .prefix = prefixes[i] };
        gs_digest_result_t r1, r2;
        assert_int_equal(gs_store_digest(f->st, &q, &r1), 0);
        assert_int_equal(gs_store_digest(ref, &q, &r2), 0);
        assert_int_equal(r1.node.count, r2.node.count);
        assert_memory_equal(r1.node.digest, r2.node.digest, GS_DIGEST_LEN);
        free(r1.next_cursor);
        free(r2.next_cursor);
    }
    st_verify_ok(f->st);
    gs_store_destroy(&ref);
    st_rmdir(dir2);
    free(dir2);
}

/* ---- Snapshot paging ------------------------------------------------------------------------- */

typedef struct s_snap {
    char keys[256][24];
    uint64_t versions[256];
    size_t n;
} s_snap_t;

static int
s_snap_add(void *arg, const gs_record_view_t *v)
{
    s_snap_t *s = arg;
    assert_true(s->n < 256);
    snprintf(s->keys[s->n], 24, "%s/%s", v->grid, v->record_key);
    s->versions[s->n] = v->version;
    s->n++;
    Gridsync__V1__Record *r = gridsync__v1__record__unpack(NULL, v->len, v->data);
    assert_non_null(r);
    assert_string_equal(gs_record_id(r), v->record_key);
    gridsync__v1__record__free_unpacked(r, NULL);
    return 0;
}

/* A snapshot's record, copied out of the callback (the store may not be
 * read from inside it). */
typedef struct s_snaprec {
    char grid[16];
    int kind;
    char key[24];
    uint64_t version;
    uint64_t seq;
    int status;
    uint8_t *data;              /* the packed Record (malloc'd) */
    size_t len;
} s_snaprec_t;

typedef struct s_snaprecs {
    s_snaprec_t r[256];
    size_t n;
} s_snaprecs_t;

static int
s_snaprec_add(void *arg, const gs_record_view_t *v)
{
    s_snaprecs_t *s = arg;
    assert_true(s->n < 256);
    s_snaprec_t *r = &s->r[s->n++];
    snprintf(r->grid, sizeof r->grid, "%s", v->grid);
    snprintf(r->key, sizeof r->key, "%s", v->record_key);
    r->kind = v->kind;
    r->version = v->version;
    r->seq = v->seq;
    r->status = v->status;
    r->len = v->len;
    r->data = malloc(v->len ? v->len : 1);
    assert_non_null(r->data);
    memcpy(r->data, v->data, v->len);
    return 0;
}

static void
s_snaprecs_clear(s_snaprecs_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->r[i].data);
    s->n = 0;
}

/* The last event of a record's history, unpacked. */
static int
s_last_event(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    (void) seq;
    (void) grid;
    Gridsync__V1__ChangeEvent **ev = arg;
    if (*ev)
        gridsync__v1__change_event__free_unpacked(*ev, NULL);
    *ev = gridsync__v1__change_event__unpack(NULL, len, data);
    assert_non_null(*ev);
    return 0;
}

/* Every record a snapshot of prefix gives (in pages of limit) is the one
 * its own event holds: the same bytes as a lookup by id reads (which goes
 * to the log by seq, without the snapshot's log cursor), and the record
 * of the last event in its history, at that event's seq and version. */
static void
s_snapshot_matches_events(fx_t *f, const char *prefix, uint32_t limit, size_t want)
{
    static s_snaprecs_t got, one;
    const char *pf[] = { prefix };
    uint8_t *cur = NULL, *next = NULL;
    size_t cur_len = 0, next_len = 0;
    uint64_t snap;
    do {
        assert_int_equal(gs_store_snapshot(f->st, pf, 1, cur, cur_len, limit, s_snaprec_add,
                                           &got, &next, &next_len, &snap), 0);
        free(cur);
        cur = next;
        cur_len = next_len;
    } while (cur);
    assert_int_equal(got.n, want);
    for (size_t i = 0; i < got.n; i++) {
        const s_snaprec_t *r = &got.r[i];
        one.n = 0;
        assert_int_equal(gs_store_get(f->st, r->kind, r->key, s_snaprec_add, &one), 0);
        assert_int_equal(one.n, 1);
        assert_string_equal(one.r[0].grid, r->grid);
        assert_int_equal(one.r[0].version, r->version);
        assert_int_equal(one.r[0].seq, r->seq);
        assert_int_equal(one.r[0].status, r->status);
        assert_int_equal(one.r[0].len, r->len);
        assert_memory_equal(one.r[0].data, r->data, r->len);
        s_snaprecs_clear(&one);
        Gridsync__V1__ChangeEvent *ev = NULL;
        assert_int_equal(gs_store_history(f->st, r->kind, r->key, s_last_event, &ev), 0);
        assert_non_null(ev);
        assert_int_equal(ev->seq, r->seq);
        assert_int_equal(ev->version, r->version);
        assert_string_equal(ev->grid_code, r->grid);
        assert_non_null(ev->record);
        Gridsync__V1__Record *rec = gridsync__v1__record__unpack(NULL, r->len, r->data);
        assert_non_null(rec);
        size_t n = gridsync__v1__record__get_packed_size(rec);
        assert_int_equal(gridsync__v1__record__get_packed_size(ev->record), n);
        uint8_t *x = malloc(n), *y = malloc(n);
        assert_true(x && y);
        gridsync__v1__record__pack(rec, x);
        gridsync__v1__record__pack(ev->record, y);
        assert_memory_equal(x, y, n);
        free(x);
        free(y);
        gridsync__v1__record__free_unpacked(rec, NULL);
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }
    s_snaprecs_clear(&got);
}

/* A snapshot reads each record's version from the change log through one
 * log cursor: the next entry when the version is the one right after the
 * record before (records stored together, in key order), a search
 * otherwise (stored in the opposite order, edited later, voided, moved in
 * from another cell, or a cell of its own in between). Every way gives
 * the record its own event holds. */
static void
test_snapshot_reads_each_version_from_its_event(void **state)
{
    fx_t *f = *state;
    /* 30 households of G1 in one upload, in key order: consecutive seqs */
    Gridsync__V1__Record *recs[30];
    for (int i = 0; i < 30; i++) {
        char id[16], code[24];
        snprintf(id, sizeof id, "V-%02d", i);
        snprintf(code, sizeof code, "VA-%d", i);
        recs[i] = st_build(f->a, &(st_rec_t) { .id = gs_arena_strdup(f->a, id), .grid = G1,
                           .addr_code = gs_arena_strdup(f->a, code),
                           .pids = { (uint32_t) (5000 + i), (uint32_t) (5100 + i) } });
        assert_non_null(recs[i]);
    }
    gs_apply_out_t out;
    assert_int_equal(st_apply(f->st, f->a, "dev-1", "v-all", recs, 30, ST_NOW_MS, &out), 0);
    gs_apply_out_clear(&out);
    /* ten more in the opposite order, one upload each: seqs fall as keys rise */
    for (int i = 49; i >= 40; i--) {
        char id[16], code[24];
        snprintf(id, sizeof id, "V-%02d", i);
        snprintf(code, sizeof code, "VA-%d", i);
        assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .id = id, .grid = G1,
                         .addr_code = code, .pids = { (uint32_t) (5000 + i) } },
                         ST_NOW_MS).status, RS(ACCEPTED));
    }
    /* a record of another cell between them in the log */
    assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .id = "W-01", .grid = G3,
                     .addr_code = "WA-1", .pids = { 5900 } }, ST_NOW_MS).status, RS(ACCEPTED));
    /* edits of every fifth, voids of 3 and 13, and 7 and 17 moved to G2
     * and one moved in from G2 */
    for (int i = 0; i < 30; i += 5) {
        char id[16], code[24];
        snprintf(id, sizeof id, "V-%02d", i);
        snprintf(code, sizeof code, "VA-%d", i);
        assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .id = id, .grid = G1,
                         .addr_code = code, .pids = { (uint32_t) (5000 + i) }, .base = 1,
                         .note = "edited" }, ST_NOW_MS + 1).status, RS(ACCEPTED));
    }
    const int voided[] = { 3, 13 }, moved[] = { 7, 17 };
    for (int j = 0; j < 2; j++) {
        char id[16], code[24];
        snprintf(id, sizeof id, "V-%02d", voided[j]);
        snprintf(code, sizeof code, "VA-%d", voided[j]);
        assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .id = id, .grid = G1,
                         .addr_code = code, .pids = { (uint32_t) (5000 + voided[j]),
                         (uint32_t) (5100 + voided[j]) }, .base = 1, .void_ = 1 },
                         ST_NOW_MS + 2).status, RS(ACCEPTED));
        snprintf(id, sizeof id, "V-%02d", moved[j]);
        snprintf(code, sizeof code, "VA-%d", moved[j]);
        assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .id = id, .grid = G2,
                         .addr_code = code, .pids = { (uint32_t) (5000 + moved[j]),
                         (uint32_t) (5100 + moved[j]) }, .base = 1 },
                         ST_NOW_MS + 2).status, RS(ACCEPTED));
    }
    assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .id = "X-01", .grid = G2,
                     .addr_code = "XA-1", .pids = { 5950 } }, ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .id = "X-01", .grid = G1,
                     .addr_code = "XA-1", .pids = { 5950 }, .base = 1 },
                     ST_NOW_MS + 3).status, RS(ACCEPTED));
    /* G1: 30 + 10 - 2 moved out + 1 moved in (voided ones stay, void) */
    const uint32_t limits[] = { 0, 1, 7, 38 };
    for (size_t l = 0; l < sizeof limits / sizeof *limits; l++) {
        s_snapshot_matches_events(f, G1, limits[l], 39);
        s_snapshot_matches_events(f, G2, limits[l], 2);
        s_snapshot_matches_events(f, "110105", limits[l], 42);
    }
}

static void
test_snapshot_paging(void **state)
{
    fx_t *f = *state;
    const char *cells[] = { G1, G3, G2 };
    int per[] = { 20, 20, 10 };
    for (int c = 0; c < 3; c++) {
        for (int i = 0; i < per[c]; i++) {
            char id[16], code[24];
            snprintf(id, sizeof id, "S%d-%02d", c, i);
            snprintf(code, sizeof code, "SA%d-%d", c, i);
            assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .id = id, .grid = cells[c],
                             .addr_code = code, .pids = { (uint32_t) (3000 + c * 100 + i) } },
                             ST_NOW_MS).status, RS(ACCEPTED));
        }
    }
    uint64_t head = s_head(f->st);
    const char *pf[] = { G3, "110105001001" };  /* G3 is covered by the second */
    static s_snap_t all, paged;
    memset(&all, 0, sizeof all);
    memset(&paged, 0, sizeof paged);
    assert_int_equal(gs_store_records(f->st, "110105001001", s_snap_add, &all), 0);
    assert_int_equal(all.n, 40);

    uint8_t *cur = NULL;
    size_t cur_len = 0;
    uint64_t snap0 = 0;
    int pages = 0;
    do {
        uint8_t *next = NULL;
        size_t next_len = 0;
        uint64_t snap;
        size_t before = paged.n;
        assert_int_equal(gs_store_snapshot(f->st, pf, 2, cur, cur_len, 7, s_snap_add, &paged,
                                           &next, &next_len, &snap), 0);
        assert_true(paged.n - before <= 7);
        if (pages == 0)
            snap0 = snap;
        assert_int_equal(snap, snap0);
        free(cur);
        cur = next;
        cur_len = next_len;
        pages++;
    } while (cur);
    assert_int_equal(snap0, head);
    assert_int_equal(pages, 6);     /* 40 records, 7 a page */
    assert_int_equal(paged.n, all.n);
    for (size_t i = 0; i < all.n; i++)
        assert_string_equal(paged.keys[i], all.keys[i]);

    /* writes between pages: nothing seen twice, everything seen once, and
     * the snapshot seq stays that of the first page */
    memset(&paged, 0, sizeof paged);
    uint8_t *next = NULL;
    size_t next_len = 0;
    uint64_t snap;
    assert_int_equal(gs_store_snapshot(f->st, pf, 2, NULL, 0, 10, s_snap_add, &paged, &next,
                                       &next_len, &snap), 0);
    assert_non_null(next);
    assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .id = "S0-00", .grid = G1,
                     .addr_code = "SA0-0", .pids = { 3000 }, .base = 1, .note = "edited" },
                     ST_NOW_MS).status, RS(ACCEPTED));
    assert_int_equal(st_put(f->st, f->a, &(st_rec_t) { .id = "S0-99", .grid = G1,
                     .addr_code = "SA0-99", .pids = { 3099 } }, ST_NOW_MS).status, RS(ACCEPTED));
    cur = next;
    cur_len = next_len;
    while (cur) {
        uint64_t s2;
        assert_int_equal(gs_store_snapshot(f->st, pf, 2, cur, cur_len, 10, s_snap_add, &paged,
                                           &next, &next_len, &s2), 0);
        assert_int_equal(s2, snap);
        free(cur);
        cur = next;
        cur_len = next_len;
    }
    assert_int_equal(paged.n, 41);
    for (size_t i = 1; i < paged.n; i++)
        assert_true(strcmp(paged.keys[i - 1], paged.keys[i]) < 0);

    /* a cursor is tied to its prefix set and must be intact */
    assert_int_equal(gs_store_snapshot(f->st, pf, 2, NULL, 0, 5, s_snap_add, &paged, &next,
                                       &next_len, &snap), 0);
    assert_non_null(next);
    const char *other[] = { G2 };
    uint8_t *n2 = NULL;
    size_t n2l = 0;
    assert_int_equal(gs_store_snapshot(f->st, other, 1, next, next_len, 5, s_snap_add, &paged,
                                       &n2, &n2l, &snap), GS_EINVAL);
    assert_int_equal(gs_store_snapshot(f->st, pf, 2, next, next_len - 1, 5, s_snap_add,
                                       &paged, &n2, &n2l, &snap), GS_EINVAL);
    free(next);
    /* a page that ends exactly where one prefix's range ends: the next
     * page starts at the following prefix (G1 has 21 records now) */
    const char *two[] = { G2, G1 };
    memset(&paged, 0, sizeof paged);
    cur = NULL;
    cur_len = 0;
    pages = 0;
    do {
        assert_int_equal(gs_store_snapshot(f->st, two, 2, cur, cur_len, 21, s_snap_add,
                                           &paged, &next, &next_len, &snap), 0);
        free(cur);
        cur = next;
        cur_len = next_len;
        pages++;
    } while (cur);
    assert_int_equal(pages, 2);
    assert_int_equal(paged.n, 31);
    assert_true(strncmp(paged.keys[20], G1, 15) == 0);
    assert_true(strncmp(paged.keys[21], G2, 15) == 0);

    /* limit 0: one page with everything */
    memset(&paged, 0, sizeof paged);
    assert_int_equal(gs_store_snapshot(f->st, other, 1, NULL, 0, 0, s_snap_add, &paged, &next,
                                       &next_len, &snap), 0);
    assert_null(next);
    assert_int_equal(paged.n, 10);
}

/* ---- Verify, backup -------------------------------------------------------------------------- */

typedef struct s_lines {
    char text[2048];
    int n;
} s_lines_t;

static void
s_line(void *arg, const char *problem)
{
    s_lines_t *l = arg;
    l->n++;
    size_t used = strlen(l->text);
    snprintf(l->text + used, sizeof l->text - used, "%s\n", problem);
}

static void
test_verify_finds_broken_index(void **state)
{
    fx_t *f = *state;
    s_populate(f, 60);
    st_verify_ok(f->st);

    /* an ids entry deleted behind the store's back */
    static s_snap_t any;
    memset(&any, 0, sizeof any);
    assert_int_equal(gs_store_records(f->st, "", s_snap_add, &any), 0);
    assert_true(any.n > 0);
    char grid[16], key[32];
    snprintf(grid, sizeof grid, "%.15s", any.keys[0]);
    snprintf(key, sizeof key, "H%s", any.keys[0] + 16);
    assert_int_equal(gs_store_debug_del(f->st, "ids", key, strlen(key)), 0);
    s_lines_t l;
    memset(&l, 0, sizeof l);
    uint64_t problems = 0;
    assert_int_equal(gs_store_verify(f->st, s_line, &l, &problems), GS_ECORRUPT);
    assert_true(problems >= 1);
    assert_int_equal(l.n, (int) problems);
    assert_non_null(strstr(l.text, "ids"));

    /* put back as format 4 wrote it (the id after the grid): named */
    char val[64];
    snprintf(val, sizeof val, "%s%s", grid, key + 1);
    assert_int_equal(gs_store_debug_put(f->st, "ids", key, strlen(key), val, strlen(val)), 0);
    memset(&l, 0, sizeof l);
    assert_int_equal(gs_store_verify(f->st, s_line, &l, &problems), GS_ECORRUPT);
    assert_non_null(strstr(l.text, "has the layout of another format"));

    /* put back as the grid alone: clean again */
    assert_int_equal(gs_store_debug_put(f->st, "ids", key, strlen(key), grid, 15), 0);
    st_verify_ok(f->st);

    /* wrong counts in a cell */
    uint8_t zero[40] = { 0 };
    assert_int_equal(gs_store_debug_put(f->st, "cells", grid, 15, zero, sizeof zero), 0);
    memset(&l, 0, sizeof l);
    assert_int_equal(gs_store_verify(f->st, s_line, &l, &problems), GS_ECORRUPT);
    assert_non_null(strstr(l.text, "cells"));

    /* a hole in the log */
    assert_int_equal(gs_store_debug_del(f->st, "log", "\0\0\0\0\0\0\0\x05", 8), 0);
    memset(&l, 0, sizeof l);
    assert_int_equal(gs_store_verify(f->st, s_line, &l, &problems), GS_ECORRUPT);
    assert_non_null(strstr(l.text, "hole"));
    /* records hold no copy of their content: the record whose version
     * event 5 was has lost it, and reading it says so */
    assert_non_null(strstr(l.text, "is missing or has no record"));
    memset(&any, 0, sizeof any);
    assert_int_equal(gs_store_records(f->st, "", s_snap_add, &any), GS_ECORRUPT);
    assert_int_equal(gs_store_debug_del(f->st, "nosuchdb", "x", 1), GS_EINVAL);
}

typedef struct s_writer {
    gs_store_t *st;
    int batches;                    /* to apply */
    atomic_int done;                /* applied so far */
    int failed;                     /* an apply failed */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int rounds_per_batch;           /* 0: new records; 1: update the same set */
    int k;                          /* records per batch */
} s_writer_t;

static void *
s_writer_main(void *arg)
{
    s_writer_t *w = arg;
    gs_arena_t *a = gs_arena_new(0);
    for (int b = 0; b < w->batches; b++) {
        Gridsync__V1__Record *recs[32];
        for (int i = 0; i < w->k; i++) {
            char id[24], code[24], note[24];
            if (w->rounds_per_batch) {
                snprintf(id, sizeof id, "C%02d", i);
                snprintf(code, sizeof code, "CA%02d", i);
            } else {
                snprintf(id, sizeof id, "W%d-%d", b, i);
                snprintf(code, sizeof code, "WA%d-%d", b, i);
            }
            snprintf(note, sizeof note, "round %d", b);
            recs[i] = st_build(a, &(st_rec_t) { .id = id, .addr_code = code, .grid = G1,
                               .note = note, .base = w->rounds_per_batch ? (uint64_t) b : 0,
                               .pids = { (uint32_t) (60000 + i * 2),
                                         (uint32_t) (60001 + i * 2) } });
        }
        char upid[24];
        snprintf(upid, sizeof upid, "w%d", b);
        gs_apply_out_t out;
        int rc = st_apply(w->st, a, "dev-w", upid, recs, (size_t) w->k, ST_NOW_MS, &out);
        if (rc || out.uploads[0].counts[RS(ACCEPTED)] != (uint32_t) w->k)
            w->failed = 1;
        gs_apply_out_clear(&out);
        gs_arena_reset(a);
        pthread_mutex_lock(&w->mu);
        atomic_store(&w->done, b + 1);
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
    gs_arena_destroy(&a);
    return NULL;
}

static void
test_backup_while_writing(void **state)
{
    fx_t *f = *state;
    s_writer_t w = { .st = f->st, .batches = 60, .k = 10 };
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_writer_main, &w), 0);
    pthread_mutex_lock(&w.mu);
    while (atomic_load(&w.done) < 10)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    char dest[1100];
    snprintf(dest, sizeof dest, "%s-backup", f->dir);
    int rc = gs_store_backup(f->st, dest);
    pthread_join(t, NULL);
    assert_int_equal(rc, 0);
    assert_false(w.failed);
    /* a second backup into the same, non-empty directory is refused */
    assert_int_equal(gs_store_backup(f->st, dest), GS_EINVAL);

    struct stat sb;
    char path[1200];
    snprintf(path, sizeof path, "%s/secret.key", dest);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    gs_store_t *bk = st_open(dest, NULL);
    st_verify_ok(bk);
    uint64_t hb = s_head(bk), ho = s_head(f->st);
    assert_true(hb >= 100);     /* at least the batches done before */
    assert_true(hb <= ho);
    assert_int_equal(ho, 600);
    assert_int_equal(hb % 10, 0);   /* whole batches only */
    uint8_t k1[16], k2[16];
    assert_int_equal(gs_store_person_key(bk, "11010519491231002X", k1), 0);
    assert_int_equal(gs_store_person_key(f->st, "11010519491231002X", k2), 0);
    assert_memory_equal(k1, k2, 16);
    gs_store_destroy(&bk);
    st_verify_ok(f->st);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    /* the backup sits beside the store, inside the fixture's directory */
}

/* ---- Concurrent readers ------------------------------------------------------------------------ */

typedef struct s_reader {
    gs_store_t *st;
    s_writer_t *w;
    int errors;                     /* inconsistent snapshots seen */
    int reads;                      /* checks made */
} s_reader_t;

typedef struct s_minmax {
    uint64_t lo, hi;
    size_t n;
} s_minmax_t;

static int
s_minmax(void *arg, const gs_record_view_t *v)
{
    s_minmax_t *m = arg;
    if (!m->n || v->version < m->lo)
        m->lo = v->version;
    if (!m->n || v->version > m->hi)
        m->hi = v->version;
    m->n++;
    return 0;
}

typedef struct s_seqchk {
    uint64_t expect;
    int bad;
} s_seqchk_t;

static int
s_seqchk(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    s_seqchk_t *c = arg;
    (void) grid;
    (void) data;
    (void) len;
    if (seq != c->expect)
        c->bad = 1;
    c->expect = seq + 1;
    return 0;
}

static void *
s_reader_main(void *arg)
{
    s_reader_t *r = arg;
    const char *pf[] = { G1 };
    while (atomic_load(&r->w->done) < r->w->batches || r->reads < 3) {
        /* every record is updated in each batch: one snapshot never mixes
         * two batches */
        s_minmax_t m = { 0, 0, 0 };
        uint8_t *next = NULL;
        size_t nl = 0;
        uint64_t snap;
        if (gs_store_snapshot(r->st, pf, 1, NULL, 0, 0, s_minmax, &m, &next, &nl, &snap) != 0 ||
            next)
            r->errors++;
        if (m.n && (m.n != (size_t) r->w->k || m.lo != m.hi || m.hi != snap / (uint64_t) r->w->k))
            r->errors++;
        /* the log read in one transaction has no holes up to its head */
        s_seqchk_t c = { 1, 0 };
        uint64_t ns, head;
        const char *all[] = { "" };
        if (gs_store_events(r->st, all, 1, 0, 0, s_seqchk, &c, &ns, &head) != 0 || c.bad ||
            c.expect != head + 1)
            r->errors++;
        r->reads++;
    }
    return NULL;
}

static void
test_concurrent_readers(void **state)
{
    fx_t *f = *state;
    s_writer_t w = { .st = f->st, .batches = 80, .k = 12, .rounds_per_batch = 1 };
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    s_reader_t r[2] = { { f->st, &w, 0, 0 }, { f->st, &w, 0, 0 } };
    pthread_t tw, tr[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&tr[i], NULL, s_reader_main, &r[i]), 0);
    assert_int_equal(pthread_create(&tw, NULL, s_writer_main, &w), 0);
    pthread_join(tw, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(tr[i], NULL);
    assert_false(w.failed);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(r[i].errors, 0);
        assert_true(r[i].reads >= 3);
    }
    assert_int_equal(s_head(f->st), 80 * 12);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    st_verify_ok(f->st);
}

/* ---- Registries --------------------------------------------------------------------------------- */

/* ---- Prepared uploads ----------------------------------------------------------------- */

/* Apply one upload of specs to store A as it comes and to store B through
 * gs_store_prepare; both must answer byte for byte the same and emit the
 * same events. Returns A's ack (caller frees). */
static Gridsync__V1__Ack *
s_apply_both(gs_store_t *sa, gs_store_t *sb, gs_arena_t *aa, gs_arena_t *ab, const char *upid,
             const st_rec_t *specs, size_t n, int64_t now)
{
    Gridsync__V1__Record *ra[8], *rb[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        ra[i] = st_build(aa, &specs[i]);
        rb[i] = st_build(ab, &specs[i]);
        assert_non_null(ra[i]);
        assert_non_null(rb[i]);
    }
    gs_prepared_t *prep = NULL;
    assert_int_equal(gs_store_prepare(sb, rb, n, gs_arena_allocator(ab), now, &prep), 0);
    assert_non_null(prep);
    gs_upload_t ua = { "dev-1", upid, ra, n, gs_arena_allocator(aa), NULL, 0, NULL, 1 };
    gs_upload_t ub = { "dev-1", upid, rb, n, gs_arena_allocator(ab), NULL, 0, prep, 1 };
    gs_apply_out_t oa, ob;
    assert_int_equal(gs_store_apply(sa, &ua, 1, now, &oa), 0);
    assert_int_equal(gs_store_apply(sb, &ub, 1, now, &ob), 0);
    assert_int_equal(oa.uploads[0].ack_len, ob.uploads[0].ack_len);
    assert_memory_equal(oa.uploads[0].ack, ob.uploads[0].ack, oa.uploads[0].ack_len);
    assert_int_equal(oa.uploads[0].replayed, ob.uploads[0].replayed);
    assert_int_equal(oa.n_events, ob.n_events);
    for (size_t i = 0; i < oa.n_events; i++) {
        assert_int_equal(oa.events[i].seq, ob.events[i].seq);
        assert_string_equal(oa.events[i].grid, ob.events[i].grid);
        assert_int_equal(oa.events[i].len, ob.events[i].len);
        assert_memory_equal(oa.events[i].data, ob.events[i].data, oa.events[i].len);
    }
    Gridsync__V1__Ack *ack = st_ack(&oa, 0);
    gs_apply_out_clear(&oa);
    gs_apply_out_clear(&ob);
    return ack;
}

/* gs_store_prepare moves validation, packing, hashing and the person HMACs
 * out of the write transaction; it must change nothing else. A mixed
 * history (new records, edits, identical re-collections, stale bases,
 * merges by address under new ids, edits through those aliases, moves,
 * voids, invalid records, retransmissions) goes to two stores, one of them
 * through prepare: same answers and events throughout, every outcome seen,
 * and both stores pass verify. */
static void
test_prepared_same_results(void **state)
{
    fx_t *f = *state;
    char *dir_b = st_tmpdir();
    gs_store_t *sb = st_open(dir_b, NULL);
    gs_arena_t *ab = gs_arena_new(0);
    assert_non_null(ab);
    static const char *grids[3] = { G1, G2, G3 };
    enum { N = 30 };
    char ids[N][16], codes[N][16], alias[N][16], notes[N][32];
    uint64_t ver[N];
    int grid_of[N];
    memset(ver, 0, sizeof ver);
    memset(alias, 0, sizeof alias);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "Q%d", i);
        snprintf(codes[i], sizeof codes[i], "AQ%d", i);
        snprintf(notes[i], sizeof notes[i], "note 0");
        grid_of[i] = i % 3;
    }
    uint32_t seen = 0;          /* ResultStatus values seen */
    int replays = 0;
    char last_upid[32] = "";
    st_rec_t last[8];
    size_t last_n = 0;
    uint32_t x = 777;
    for (int op = 0; op < 400; op++) {
        st_rec_t specs[8];
        int which[8];
        size_t n = 0;
        char upid[32];
        char note_buf[8][32], id_buf[8][16];
        x = x * 1103515245u + 12345u;
        int retransmit = last_n && (x >> 8) % 12 == 0;
        if (retransmit) {
            /* the same upload again: answered from the idempotency table */
            memcpy(specs, last, sizeof specs);
            n = last_n;
            snprintf(upid, sizeof upid, "%s", last_upid);
            for (size_t k = 0; k < n; k++)
                which[k] = -1;
        } else {
            snprintf(upid, sizeof upid, "up-%d", op);
            n = 1 + (x >> 12) % 4;
            for (size_t k = 0; k < n; k++) {
                x = x * 1103515245u + 12345u;
                int i = (int) ((x >> 8) % N);
                int kind = (int) ((x >> 16) % 10);
                for (size_t j = 0; j < k; j++)
                    if (which[j] == i)
                        kind = 6;   /* one record once per upload; else invalid */
                st_rec_t r = { .id = ids[i], .addr_code = codes[i],
                               .pids = { 1000u + (uint32_t) i, 2000u + (uint32_t) (i % 7) },
                               .nodoc = i % 5 == 0, .grid = grids[grid_of[i]],
                               .base = ver[i], .note = notes[i] };
                snprintf(note_buf[k], sizeof note_buf[k], "note %d", op);
                switch (kind) {
                case 0: case 1: case 2:     /* new record or edit */
                    r.note = note_buf[k];
                    break;
                case 3:                     /* identical re-collection */
                    break;
                case 4:                     /* stale base */
                    r.note = note_buf[k];
                    r.base = ver[i] > 1 ? ver[i] - 1 : 0;
                    break;
                case 5:                     /* same address under a new id, or via the alias */
                    if (ver[i] && alias[i][0]) {
                        r.id = alias[i];
                        r.note = note_buf[k];
                    } else if (ver[i]) {
                        snprintf(id_buf[k], sizeof id_buf[k], "M%d", op);
                        r.id = id_buf[k];
                    }
                    break;
                case 6:                     /* invalid grid code */
                    r.grid = "1101";
                    break;
                case 7:                     /* move to another cell */
                    r.grid = grids[(grid_of[i] + 1) % 3];
                    r.note = note_buf[k];
                    break;
                case 8:                     /* void */
                    r.void_ = 1;
                    break;
                default:                    /* a rental with the same persons */
                    r.kind = 'R';
                    r.landlord = 3000u + (uint32_t) i;
                    r.id = ids[i];
                    break;
                }
                specs[k] = r;
                which[k] = kind == 9 ? -1 : i;
            }
        }
        /* the specs point into this iteration's buffers: keep copies of
         * the strings a retransmission will need */
        static char keep_id[8][16], keep_note[8][32];
        for (size_t k = 0; k < n && !retransmit; k++) {
            snprintf(keep_id[k], sizeof keep_id[k], "%s", specs[k].id);
            snprintf(keep_note[k], sizeof keep_note[k], "%s", specs[k].note);
            specs[k].id = keep_id[k];
            specs[k].note = keep_note[k];
        }
        Gridsync__V1__Ack *ack = s_apply_both(f->st, sb, f->a, ab, upid, specs, n,
                                              ST_NOW_MS + op);
        assert_int_equal(ack->n_results, n);
        if (retransmit)
            replays++;
        for (size_t k = 0; k < n; k++) {
            Gridsync__V1__RecordResult *res = ack->results[k];
            seen |= 1u << res->status;
            int i = which[k];
            if (i < 0 || retransmit)
                continue;
            if (res->status == RS(ACCEPTED) || res->status == RS(MERGED)) {
                ver[i] = res->version;
                snprintf(notes[i], sizeof notes[i], "%s", specs[k].note);
                if (strcmp(specs[k].grid, grids[grid_of[i]]) != 0)
                    grid_of[i] = (grid_of[i] + 1) % 3;
                if (res->status == RS(MERGED) && strcmp(specs[k].id, ids[i]) != 0)
                    snprintf(alias[i], sizeof alias[i], "%s", specs[k].id);
            }
        }
        gridsync__v1__ack__free_unpacked(ack, NULL);
        if (!retransmit) {
            memcpy(last, specs, sizeof last);
            last_n = n;
            snprintf(last_upid, sizeof last_upid, "%s", upid);
        }
        if (op % 20 == 0) {
            /* records are rebuilt for every upload; retransmissions too */
            gs_arena_reset(f->a);
            gs_arena_reset(ab);
        }
    }
    /* every outcome happened, so every path was compared */
    assert_true(seen & (1u << RS(ACCEPTED)));
    assert_true(seen & (1u << RS(UNCHANGED)));
    assert_true(seen & (1u << RS(MERGED)));
    assert_true(seen & (1u << RS(CONFLICT)));
    assert_true(seen & (1u << RS(REJECTED)));
    assert_true(replays > 0);
    assert_int_equal(s_head(f->st), s_head(sb));
    st_verify_ok(f->st);
    st_verify_ok(sb);
    gs_store_destroy(&sb);
    gs_arena_destroy(&ab);
    st_rmdir(dir_b);
    free(dir_b);
}

/* gs_store_prepare_wire keeps a record's wire bytes as its packed form when
 * normalisation changed nothing and they are what pack writes; otherwise
 * it packs. Either way the stored record (carried by its change event),
 * the answer and every event must be byte for byte what gs_store_prepare
 * gives from the same bytes. Four records: one kept as it came, one whose
 * phone normalisation changes it, one in a longer encoding of the same
 * content (a length in one byte more than it needs), one with a field the
 * schema does not know (dropped, so packed again). gs_store_prepare_canonical
 * (store C), told which bytes are canonical as the broker's pre-scan tells
 * it, gives the same again while skipping both walks for the kept ones. */
static void
test_prepared_wire_same_bytes(void **state)
{
    fx_t *f = *state;
    char *dir_b = st_tmpdir(), *dir_c = st_tmpdir();
    gs_store_t *sb = st_open(dir_b, NULL), *sc = st_open(dir_c, NULL);
    gs_arena_t *ab = gs_arena_new(0), *ac = gs_arena_new(0);
    assert_non_null(ab);
    assert_non_null(ac);
    enum { N = 4 };
    st_rec_t specs[N] = {
        { .id = "W0", .addr_code = "AW0", .pids = { 101, 102 }, .grid = G1, .note = "a" },
        { .id = "W1", .addr_code = "AW1", .pids = { 103 }, .grid = G1, .note = "b" },
        { .id = "W2", .addr_code = "AW2", .pids = { 104, 105 }, .grid = G2, .note = "c" },
        { .id = "W3", .addr_code = "AW3", .pids = { 106 }, .grid = G2, .note = "d" },
    };
    uint8_t *wire[N];
    size_t wire_len[N];
    for (size_t i = 0; i < N; i++) {
        Gridsync__V1__Record *r = st_build(f->a, &specs[i]);
        assert_non_null(r);
        /* in normal form first, as a device that normalises sends it */
        assert_int_equal(gs_record_check(r, gs_arena_allocator(f->a), NULL, ST_NOW_MS, NULL), 0);
        if (i == 1) {
            /* a phone as typed: the broker stores it as 13800138000 */
            static char *typed[] = { "+86 138-0013-8000" };
            r->household->members[0]->phones = typed;
            r->household->members[0]->n_phones = 1;
        }
        size_t n = protobuf_c_message_get_packed_size(&r->base);
        wire[i] = malloc(n + 2);
        assert_non_null(wire[i]);
        protobuf_c_message_pack(&r->base, wire[i]);
        wire_len[i] = n;
        if (i == 3) {
            /* Record field 40 (varint 1), which this schema does not know */
            wire[i][n] = (uint8_t) ((40u << 3) | 0);
            wire[i][n + 1] = 1;
            wire_len[i] = n + 2;
        }
        if (i == 2) {
            /* the body's length with one more byte than it needs */
            size_t k = 1;
            while (wire[i][k] & 0x80)
                k++;
            memmove(wire[i] + k + 2, wire[i] + k + 1, n - k - 1);
            wire[i][k] |= 0x80;
            wire[i][k + 1] = 0;
            wire_len[i] = n + 1;
        }
    }
    /* the four cases are what they are said to be */
    assert_int_equal(gs_wire_is_canonical(&gridsync__v1__record__descriptor, wire[0],
                                          wire_len[0]), 1);
    assert_int_equal(gs_wire_is_canonical(&gridsync__v1__record__descriptor, wire[1],
                                          wire_len[1]), 1);
    assert_int_equal(gs_wire_is_canonical(&gridsync__v1__record__descriptor, wire[2],
                                          wire_len[2]), 0);
    assert_int_equal(gs_wire_is_canonical(&gridsync__v1__record__descriptor, wire[3],
                                          wire_len[3]), 0);
    const uint8_t *canon[N];    /* what store C is given: canonical bytes only */
    for (size_t i = 0; i < N; i++)
        canon[i] = gs_wire_is_canonical(&gridsync__v1__record__descriptor, wire[i], wire_len[i])
                       ? wire[i] : NULL;
    for (size_t i = 0; i < N; i++) {
        Gridsync__V1__Record *r =
            gridsync__v1__record__unpack(gs_arena_allocator(ab), wire_len[i], wire[i]);
        assert_non_null(r);
        size_t changed = 99;
        assert_int_equal(gs_record_check_changed(r, gs_arena_allocator(ab), NULL, ST_NOW_MS,
                                                 NULL, &changed), 0);
        assert_int_equal(changed, i == 1 || i == 3 ? 1 : 0);
    }

    /* store A as before, store B keeping the bytes; twice each, so that the
     * second round meets stored records (UNCHANGED) */
    for (int round = 0; round < 2; round++) {
        Gridsync__V1__Record *ra[N], *rb[N], *rc[N];
        for (size_t i = 0; i < N; i++) {
            ra[i] = gridsync__v1__record__unpack(gs_arena_allocator(f->a), wire_len[i], wire[i]);
            rb[i] = gridsync__v1__record__unpack(gs_arena_allocator(ab), wire_len[i], wire[i]);
            rc[i] = gridsync__v1__record__unpack(gs_arena_allocator(ac), wire_len[i], wire[i]);
            assert_non_null(ra[i]);
            assert_non_null(rb[i]);
            assert_non_null(rc[i]);
        }
        gs_prepared_t *pa = NULL, *pb = NULL, *pc = NULL;
        assert_int_equal(gs_store_prepare(f->st, ra, N, gs_arena_allocator(f->a), ST_NOW_MS,
                                          &pa), 0);
        assert_int_equal(gs_store_prepare_wire(sb, rb, (const uint8_t *const *) wire, wire_len,
                                               N, gs_arena_allocator(ab), ST_NOW_MS, &pb), 0);
        const char *upid = round ? "wire-2" : "wire-1";
        gs_upload_t ua = { "dev-1", upid, ra, N, gs_arena_allocator(f->a), NULL, 0, pa, 1 };
        assert_int_equal(gs_store_prepare_canonical(sc, rc, canon, wire_len, N,
                                                    gs_arena_allocator(ac), ST_NOW_MS, &pc),
                         0);
        gs_upload_t ub = { "dev-1", upid, rb, N, gs_arena_allocator(ab), NULL, 0, pb, 1 };
        gs_upload_t uc = { "dev-1", upid, rc, N, gs_arena_allocator(ac), NULL, 0, pc, 1 };
        gs_apply_out_t oa, ob, oc;
        assert_int_equal(gs_store_apply(f->st, &ua, 1, ST_NOW_MS, &oa), 0);
        assert_int_equal(gs_store_apply(sb, &ub, 1, ST_NOW_MS, &ob), 0);
        assert_int_equal(gs_store_apply(sc, &uc, 1, ST_NOW_MS, &oc), 0);
        assert_int_equal(oa.uploads[0].ack_len, ob.uploads[0].ack_len);
        assert_memory_equal(oa.uploads[0].ack, ob.uploads[0].ack, oa.uploads[0].ack_len);
        assert_int_equal(oa.uploads[0].ack_len, oc.uploads[0].ack_len);
        assert_memory_equal(oa.uploads[0].ack, oc.uploads[0].ack, oa.uploads[0].ack_len);
        assert_int_equal(oa.n_events, round ? 0 : N);
        assert_int_equal(oa.n_events, ob.n_events);
        assert_int_equal(oa.n_events, oc.n_events);
        for (size_t i = 0; i < oa.n_events; i++) {
            assert_int_equal(oa.events[i].len, ob.events[i].len);
            assert_memory_equal(oa.events[i].data, ob.events[i].data, oa.events[i].len);
            assert_int_equal(oa.events[i].len, oc.events[i].len);
            assert_memory_equal(oa.events[i].data, oc.events[i].data, oa.events[i].len);
        }
        Gridsync__V1__Ack *ack = st_ack(&oa, 0);
        for (size_t i = 0; i < N; i++)
            assert_int_equal(ack->results[i]->status,
                             round ? RS(UNCHANGED) : RS(ACCEPTED));
        gridsync__v1__ack__free_unpacked(ack, NULL);
        gs_apply_out_clear(&oa);
        gs_apply_out_clear(&ob);
        gs_apply_out_clear(&oc);
    }
    st_verify_ok(f->st);
    st_verify_ok(sb);
    st_verify_ok(sc);
    for (size_t i = 0; i < N; i++)
        free(wire[i]);
    gs_store_destroy(&sb);
    gs_store_destroy(&sc);
    gs_arena_destroy(&ab);
    gs_arena_destroy(&ac);
    st_rmdir(dir_b);
    st_rmdir(dir_c);
    free(dir_b);
    free(dir_c);
}

static int
s_count_dev(void *arg, const Gridsync__V1__Device *d)
{
    (void) d;
    (*(int *) arg)++;
    return 0;
}

static int
s_count_grid(void *arg, const Gridsync__V1__Grid *g)
{
    (void) g;
    (*(int *) arg)++;
    return 0;
}

static void
test_registries(void **state)
{
    fx_t *f = *state;
    const char *key1 = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
    const char *key2 = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
    char *prefixes[] = { "110105001" };
    Gridsync__V1__Device d = GRIDSYNC__V1__DEVICE__INIT;
    d.device_id = "dev-1";
    d.collector_id = "col-1";
    d.public_key = (char *) key1;
    d.prefixes = prefixes;
    d.n_prefixes = 1;
    assert_int_equal(gs_store_device_put(f->st, &d), 0);
    Gridsync__V1__Device *got = NULL;
    assert_int_equal(gs_store_device_by_key(f->st, key1, &got), 0);
    assert_string_equal(got->device_id, "dev-1");
    assert_int_equal(got->n_prefixes, 1);
    gridsync__v1__device__free_unpacked(got, NULL);
    /* another device may not take the same key */
    Gridsync__V1__Device d2 = d;
    d2.device_id = "dev-2";
    assert_int_equal(gs_store_device_put(f->st, &d2), GS_EINVAL);
    /* key rotation: the old key no longer finds the device */
    d.public_key = (char *) key2;
    assert_int_equal(gs_store_device_put(f->st, &d), 0);
    assert_int_equal(gs_store_device_by_key(f->st, key1, &got), GS_ENOTFOUND);
    assert_int_equal(gs_store_device_by_key(f->st, key2, &got), 0);
    gridsync__v1__device__free_unpacked(got, NULL);
    d2.public_key = (char *) key1;
    assert_int_equal(gs_store_device_put(f->st, &d2), 0);
    assert_int_equal(gs_store_device_get(f->st, "dev-2", &got), 0);
    assert_string_equal(got->public_key, key1);
    gridsync__v1__device__free_unpacked(got, NULL);
    assert_int_equal(gs_store_device_get(f->st, "dev-3", &got), GS_ENOTFOUND);
    int n = 0;
    assert_int_equal(gs_store_devices(f->st, s_count_dev, &n), 0);
    assert_int_equal(n, 2);
    d.device_id = "bad id";
    assert_int_equal(gs_store_device_put(f->st, &d), GS_EINVAL);

    Gridsync__V1__Grid g = GRIDSYNC__V1__GRID__INIT;
    g.grid_code = G1;
    g.name = "一网格";
    assert_int_equal(gs_store_grid_put(f->st, &g), 0);
    g.grid_code = G2;
    assert_int_equal(gs_store_grid_put(f->st, &g), 0);
    g.grid_code = "12345";
    assert_int_equal(gs_store_grid_put(f->st, &g), GS_EINVAL);
    Gridsync__V1__Grid *gg = NULL;
    assert_int_equal(gs_store_grid_get(f->st, G1, &gg), 0);
    assert_string_equal(gg->name, "一网格");
    gridsync__v1__grid__free_unpacked(gg, NULL);
    n = 0;
    assert_int_equal(gs_store_grids(f->st, "110105001", s_count_grid, &n), 0);
    assert_int_equal(n, 1);
    n = 0;
    assert_int_equal(gs_store_grids(f->st, "", s_count_grid, &n), 0);
    assert_int_equal(n, 2);
    /* a batch is all or nothing: one bad code, or a failed commit, and none
     * of it is stored */
    Gridsync__V1__Grid b1 = GRIDSYNC__V1__GRID__INIT, b2 = GRIDSYNC__V1__GRID__INIT;
    b1.grid_code = "110105001001003";
    b2.grid_code = "1101050010010";
    Gridsync__V1__Grid *batch[] = { &b1, &b2 };
    assert_int_equal(gs_store_grids_put(f->st, batch, 2), GS_EINVAL);
    assert_int_equal(gs_store_grid_get(f->st, b1.grid_code, &gg), GS_ENOTFOUND);
    b2.grid_code = "110105001001004";
    gs_store_debug_fail_commit(f->st, EIO);
    assert_int_not_equal(gs_store_grids_put(f->st, batch, 2), 0);
    assert_int_equal(gs_store_grid_get(f->st, b1.grid_code, &gg), GS_ENOTFOUND);
    assert_int_equal(gs_store_grids_put(f->st, batch, 2), 0);
    n = 0;
    assert_int_equal(gs_store_grids(f->st, "", s_count_grid, &n), 0);
    assert_int_equal(n, 4);
    int dead = -1;
    assert_int_equal(gs_store_reader_check(f->st, &dead), 0);
    assert_int_equal(dead, 0);
    st_verify_ok(f->st);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_and_secret, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_person_hmac_known_values, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_epoch, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_accept_and_unchanged, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_versions_conflict_rejects, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_merge_by_address_code, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_merge_by_room, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_natural_key_changes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rejections, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_scope_deny_by_default, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_storage_error_aborts_batch, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_retransmission, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_prepared_same_results, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_prepared_wire_same_bytes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_expiry, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_move_between_cells, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_person_index, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_tiny_map_grows, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_map_grown_by_other_process, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_commit_failures, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_events_both_paths, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_prev_seq_chains, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_failed_commit_leaves_nothing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_paging, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_reads_each_version_from_its_event,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_org_natural_keys, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_org_stall_without_uscc, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_org_versions_and_retransmission, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_org_persons_and_cells, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_verify_finds_broken_index, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_backup_while_writing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_readers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_registries, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

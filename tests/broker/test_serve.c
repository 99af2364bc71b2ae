/*
 * test_serve: the broker's request handlers (gs_serve) called directly, on
 * a real store in a temporary directory, without sockets or threads: the
 * shape of each reply (sync, snapshot, ping, ack, admin), the error
 * replies and their counting, and the field numbers the replies are
 * written with against the generated descriptors. The sync reply, which
 * splices stored events (stripped on the wire) into the reply, is checked
 * against the plain rule on a generated district: filter by prefix,
 * unpack, drop Person.restricted, pack; so is the snapshot reply, whose
 * entries are written (and their records stripped) in place.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gs_gen.h"
#include "gs_grid.h"
#include "gs_metrics.h"
#include "gs_privacy.h"
#include "gs_serve.h"
#include "gs_store.h"
#include "gs_version.h"
#include "st_lib.h"

#define RS(x) GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_##x
#define RN(x) GRIDSYNC__V1__REASON__REASON_##x

#define G1 "110105001001001"
#define G2 "110105001001002"
#define G3 "110106002003004"

typedef struct fx {
    char *dir;                  /* store directory */
    gs_store_t *st;             /* open store, three records in it */
    gs_arena_t *a;              /* records */
    gs_metrics_t m;             /* the counters the handlers count in */
    atomic_int subs;            /* live-feed prefixes, for health */
    gs_serve_t s;               /* the handlers' settings */
    gs_serve_scratch_t x;       /* their scratch */
    gs_wbuf_t reply;            /* the reply under test */
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
    gs_metrics_init(&f->m, ST_NOW_MS);
    atomic_init(&f->subs, 3);
    f->s = (gs_serve_t) { .store = f->st, .metrics = &f->m, .subscriptions = &f->subs,
                          .sync_max_events = 100, .snapshot_max_records = 100,
                          .feed_restricted = 0, .secure = 1 };
    gs_serve_scratch_init(&f->x);
    gs_wbuf_init(&f->reply);
    const st_rec_t recs[] = {
        { .id = "H1", .grid = G1, .addr_code = "A1", .pids = { 1 } },
        { .id = "H2", .grid = G2, .addr_code = "A2", .pids = { 2 } },
        { .id = "H3", .grid = G3, .addr_code = "A3", .pids = { 3 } },
    };
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(st_put(f->st, f->a, &recs[i], ST_NOW_MS).status, RS(ACCEPTED));
    *state = f;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *f = *state;
    gs_wbuf_deinit(&f->reply);
    gs_serve_scratch_deinit(&f->x);
    gs_arena_destroy(&f->a);
    gs_store_destroy(&f->st);
    st_rmdir(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* The reply as a client decodes it (free with
 * gridsync__v1__reply__free_unpacked). */
static Gridsync__V1__Reply *
s_reply(const fx_t *f)
{
    assert_false(f->reply.failed);
    Gridsync__V1__Reply *r = gridsync__v1__reply__unpack(NULL, f->reply.len, f->reply.data);
    assert_non_null(r);
    return r;
}

static Gridsync__V1__AdminReply *
s_admin_reply(const fx_t *f)
{
    assert_false(f->reply.failed);
    Gridsync__V1__AdminReply *r =
        gridsync__v1__admin_reply__unpack(NULL, f->reply.len, f->reply.data);
    assert_non_null(r);
    return r;
}

/* The reply is an error with reason for request_id, and it was counted. */
static void
s_assert_error(fx_t *f, uint64_t request_id, int reason, uint64_t counted_before)
{
    Gridsync__V1__Reply *r = s_reply(f);
    assert_int_equal(r->request_id, request_id);
    assert_int_equal(r->body_case, GRIDSYNC__V1__REPLY__BODY_ERROR);
    assert_int_equal(r->error->reason, reason);
    assert_true(strlen(r->error->message) > 0);
    gridsync__v1__reply__free_unpacked(r, NULL);
    assert_int_equal(atomic_load(&f->m.request_errors[reason]), counted_before + 1);
}

static void
test_sync_reply(void **state)
{
    fx_t *f = *state;
    char *prefixes[] = { "110105" };
    Gridsync__V1__SyncRequest rq = GRIDSYNC__V1__SYNC_REQUEST__INIT;
    rq.prefixes = prefixes;
    rq.n_prefixes = 1;
    gs_serve_sync(&f->s, &f->x, 41, &rq, &f->reply);
    Gridsync__V1__Reply *r = s_reply(f);
    assert_int_equal(r->request_id, 41);
    assert_int_equal(r->body_case, GRIDSYNC__V1__REPLY__BODY_SYNC);
    assert_int_equal(r->sync->n_events, 2);     /* G1 and G2, not G3 */
    assert_string_equal(r->sync->events[0]->grid_code, G1);
    assert_string_equal(r->sync->events[1]->grid_code, G2);
    assert_int_equal(r->sync->head_seq, 3);
    assert_int_equal(r->sync->next_seq, 3); /* read up to the head */
    uint64_t epoch = 0;
    gs_store_epoch(f->st, &epoch);
    assert_true(epoch != 0);
    assert_int_equal(r->sync->store_epoch, epoch);
    gridsync__v1__reply__free_unpacked(r, NULL);

    /* a page of one; the next page starts after it */
    rq.limit = 1;
    gs_serve_sync(&f->s, &f->x, 42, &rq, &f->reply);
    r = s_reply(f);
    assert_int_equal(r->sync->n_events, 1);
    rq.since_seq = r->sync->next_seq;
    gridsync__v1__reply__free_unpacked(r, NULL);
    gs_serve_sync(&f->s, &f->x, 43, &rq, &f->reply);
    r = s_reply(f);
    assert_int_equal(r->sync->n_events, 1);
    assert_string_equal(r->sync->events[0]->grid_code, G2);
    gridsync__v1__reply__free_unpacked(r, NULL);
    assert_int_equal(atomic_load(&f->m.sync_requests), 3);
    assert_int_equal(atomic_load(&f->m.sync_events), 4);
}

/* Every stored event, as the log holds it. */
typedef struct s_logged {
    size_t n;                   /* events */
    uint64_t seq[400];          /* their seqs */
    char grid[400][16];         /* their grid codes */
    gs_wbuf_t bytes[400];       /* their packed bytes */
} s_logged_t;

static int
s_log_take(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    s_logged_t *l = arg;
    assert_true(l->n < 400);
    l->seq[l->n] = seq;
    snprintf(l->grid[l->n], sizeof l->grid[l->n], "%s", grid);
    gs_wbuf_init(&l->bytes[l->n]);
    gs_wbuf_put(&l->bytes[l->n], data, len);
    l->n++;
    return 0;
}

/* The plain rule for one stored event: unpack, drop Person.restricted when
 * strip, pack. Returns how many persons lost their restricted part. */
static size_t
s_rule(const gs_wbuf_t *stored, int strip, gs_wbuf_t *out)
{
    gs_arena_t *a = gs_arena_new(0);
    assert_non_null(a);
    Gridsync__V1__ChangeEvent *ev =
        gridsync__v1__change_event__unpack(gs_arena_allocator(a), stored->len, stored->data);
    assert_non_null(ev);
    size_t n = strip ? gs_record_strip_restricted(ev->record) : 0;
    gs_wbuf_reset(out);
    size_t need = gridsync__v1__change_event__get_packed_size(ev);
    gridsync__v1__change_event__pack(ev, gs_wbuf_reserve(out, need));
    out->len = need;
    gs_arena_destroy(&a);
    return n;
}

/* A sync of a generated district, page after page, gives exactly the
 * events the rule gives: those under the prefixes in seq order, each
 * byte for byte as unpack, drop (for a reader that gets the strip) and
 * pack make it, with next_seq and head_seq as docs/protocol.md says. */
static void
test_sync_events_follow_the_rule(void **state)
{
    fx_t *f = *state;
    gs_gen_t *g = gs_gen_new(NULL);
    assert_non_null(g);
    gs_arena_t *a = gs_arena_new(0);
    assert_non_null(a);
    /* households, rental units (landlords, tenants) and organisations
     * (representatives, contacts, employees) of a few grids */
    Gridsync__V1__Record *recs[50];
    for (uint32_t u = 0; u < 6; u++) {
        gs_arena_reset(a);
        for (uint32_t i = 0; i < 50; i++) {
            uint32_t k = u * 50 + i;
            recs[i] = k % 7 == 0 ? gs_gen_rental(g, k / 7, a)
                      : k % 5 == 0 ? gs_gen_org(g, k / 5, a)
                                   : gs_gen_household(g, k, a);
            assert_non_null(recs[i]);
        }
        char uid[32];
        snprintf(uid, sizeof uid, "gen-%u", u);
        gs_apply_out_t out;
        assert_int_equal(st_apply(f->st, a, "dev-1", uid, recs, 50, ST_NOW_MS, &out), 0);
        Gridsync__V1__Ack *ack = st_ack(&out, 0);
        assert_int_equal(ack->n_results, 50);
        for (size_t i = 0; i < 50; i++)
            assert_int_equal(ack->results[i]->status, RS(ACCEPTED));
        gridsync__v1__ack__free_unpacked(ack, NULL);
        gs_apply_out_clear(&out);
    }
    static s_logged_t log;
    memset(&log, 0, sizeof log);
    const char *all[] = { "" };
    uint64_t next = 0, head = 0;
    assert_int_equal(gs_store_events(f->st, all, 1, 0, 0, s_log_take, &log, &next, &head), 0);
    assert_true(log.n > 300);

    /* the gen district's first grid, and a prefix of it with one of the
     * fixture's grids */
    char grid0[16], street0[10];
    snprintf(grid0, sizeof grid0, "%s", log.grid[3]);
    snprintf(street0, sizeof street0, "%.9s", log.grid[3]);
    char *p_all[] = { (char *) "" };
    char *p_two[] = { street0, (char *) "1101" };
    char *p_one[] = { grid0 };
    struct {
        int feed_restricted, omit;      /* the broker's setting, the request's flag */
        char **prefixes;
        size_t n;
        uint32_t limit;
    } cases[] = {
        { 0, 0, p_all, 1, 37 },         /* stripped: the broker's default */
        { 1, 0, p_all, 1, 0 },          /* not stripped: feed-restricted, not omitted */
        { 1, 1, p_two, 2, 11 },         /* stripped by request, two prefixes */
        { 0, 0, p_one, 1, 5 },          /* one grid */
    };
    gs_wbuf_t want;
    gs_wbuf_init(&want);
    size_t stripped_seen = 0, kept_seen = 0;
    gs_wbuf_t tmp;
    gs_wbuf_init(&tmp);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        f->s.feed_restricted = cases[c].feed_restricted;
        int strip = !cases[c].feed_restricted || cases[c].omit;
        size_t at = 0;          /* next logged event to compare */
        size_t matched = 0;
        uint64_t since = 0;
        for (int page = 0;; page++) {
            assert_true(page < 1000);
            Gridsync__V1__SyncRequest rq = GRIDSYNC__V1__SYNC_REQUEST__INIT;
            rq.prefixes = cases[c].prefixes;
            rq.n_prefixes = cases[c].n;
            rq.since_seq = since;
            rq.limit = cases[c].limit;
            rq.omit_restricted = cases[c].omit;
            gs_serve_sync(&f->s, &f->x, 100 + (uint64_t) page, &rq, &f->reply);
            Gridsync__V1__Reply *r = s_reply(f);
            assert_int_equal(r->body_case, GRIDSYNC__V1__REPLY__BODY_SYNC);
            Gridsync__V1__SyncResponse *sr = r->sync;
            assert_int_equal(sr->head_seq, head);
            for (size_t i = 0; i < sr->n_events; i++) {
                /* the next logged event under the prefixes */
                while (at < log.n &&
                       gs_grid_prefix_find(log.grid[at], (const char *const *) cases[c].prefixes,
                                           cases[c].n) < 0)
                    at++;
                assert_true(at < log.n);
                stripped_seen += s_rule(&log.bytes[at], strip, &want);
                gs_wbuf_reset(&tmp);
                if (!strip && gs_event_strip_restricted(log.bytes[at].data, log.bytes[at].len,
                                                        &tmp) == 1)
                    kept_seen++;
                size_t got_len = gridsync__v1__change_event__get_packed_size(sr->events[i]);
                uint8_t *got = malloc(got_len);
                assert_non_null(got);
                gridsync__v1__change_event__pack(sr->events[i], got);
                assert_int_equal(got_len, want.len);
                assert_memory_equal(got, want.data, want.len);
                free(got);
                at++;
                matched++;
            }
            /* limit 0: the broker's sync_max_events */
            uint32_t limit = cases[c].limit ? cases[c].limit : (uint32_t) f->s.sync_max_events;
            if (sr->n_events == limit) {
                assert_int_equal(sr->next_seq, sr->events[sr->n_events - 1]->seq);
            } else {
                assert_int_equal(sr->next_seq, head);
            }
            since = sr->next_seq;
            int done = sr->next_seq >= sr->head_seq;
            gridsync__v1__reply__free_unpacked(r, NULL);
            if (done)
                break;
        }
        /* nothing under the prefixes was left out */
        while (at < log.n &&
               gs_grid_prefix_find(log.grid[at], (const char *const *) cases[c].prefixes,
                                   cases[c].n) < 0)
            at++;
        assert_int_equal(at, log.n);
        assert_true(matched > 0);
    }
    /* both ways were exercised: persons stripped, and persons sent with
     * their restricted part to a reader entitled to it */
    assert_true(stripped_seen > 10);
    assert_true(kept_seen > 10);
    gs_wbuf_deinit(&tmp);
    gs_wbuf_deinit(&want);
    for (size_t i = 0; i < log.n; i++)
        gs_wbuf_deinit(&log.bytes[i]);
    gs_arena_destroy(&a);
    gs_gen_destroy(&g);
}

static void
test_sync_errors(void **state)
{
    fx_t *f = *state;
    Gridsync__V1__SyncRequest rq = GRIDSYNC__V1__SYNC_REQUEST__INIT;
    /* no prefix at all */
    gs_serve_sync(&f->s, &f->x, 7, &rq, &f->reply);
    s_assert_error(f, 7, RN(BAD_REQUEST), 0);
    /* more than GS_SERVE_MAX_PREFIXES */
    char *many[GS_SERVE_MAX_PREFIXES + 1];
    for (size_t i = 0; i < GS_SERVE_MAX_PREFIXES + 1; i++)
        many[i] = "11";
    rq.prefixes = many;
    rq.n_prefixes = GS_SERVE_MAX_PREFIXES + 1;
    gs_serve_sync(&f->s, &f->x, 8, &rq, &f->reply);
    s_assert_error(f, 8, RN(BAD_REQUEST), 1);
    /* a prefix that is not at a level */
    char *odd[] = { "11", "110" };
    rq.prefixes = odd;
    rq.n_prefixes = 2;
    gs_serve_sync(&f->s, &f->x, 9, &rq, &f->reply);
    Gridsync__V1__Reply *r = s_reply(f);
    assert_int_equal(r->request_id, 9);
    assert_int_equal(r->body_case, GRIDSYNC__V1__REPLY__BODY_ERROR);
    assert_non_null(strstr(r->error->message, "prefix 2"));
    gridsync__v1__reply__free_unpacked(r, NULL);
    assert_int_equal(atomic_load(&f->m.sync_requests), 0);
}

/* Every stored record, as a snapshot entry should carry it. */
typedef struct s_stored {
    size_t n;                   /* records */
    char grid[400][16];         /* their grid codes */
    int kind[400];              /* RecordKind */
    char key[400][48];          /* record keys */
    uint64_t version[400];
    uint64_t seq[400];
    gs_wbuf_t bytes[400];       /* the packed Record as stored */
} s_stored_t;

static int
s_stored_take(void *arg, const gs_record_view_t *r)
{
    s_stored_t *l = arg;
    assert_true(l->n < 400);
    snprintf(l->grid[l->n], sizeof l->grid[l->n], "%s", r->grid);
    l->kind[l->n] = r->kind;
    assert_true(strlen(r->record_key) < sizeof l->key[l->n]);
    snprintf(l->key[l->n], sizeof l->key[l->n], "%s", r->record_key);
    l->version[l->n] = r->version;
    l->seq[l->n] = r->seq;
    gs_wbuf_init(&l->bytes[l->n]);
    gs_wbuf_put(&l->bytes[l->n], r->data, r->len);
    l->n++;
    return 0;
}

/* The plain rule for one stored record as a snapshot entry: unpack, drop
 * Person.restricted when strip, pack the entry. Returns how many persons
 * lost their restricted part. */
static size_t
s_entry_rule(const s_stored_t *l, size_t i, int strip, gs_wbuf_t *out)
{
    gs_arena_t *a = gs_arena_new(0);
    assert_non_null(a);
    Gridsync__V1__SnapshotEntry e = GRIDSYNC__V1__SNAPSHOT_ENTRY__INIT;
    e.grid_code = (char *) l->grid[i];
    e.kind = l->kind[i];
    e.record_key = (char *) l->key[i];
    e.version = l->version[i];
    e.seq = l->seq[i];
    e.record = gridsync__v1__record__unpack(gs_arena_allocator(a), l->bytes[i].len,
                                            l->bytes[i].data);
    assert_non_null(e.record);
    size_t n = strip ? gs_record_strip_restricted(e.record) : 0;
    gs_wbuf_reset(out);
    size_t need = gridsync__v1__snapshot_entry__get_packed_size(&e);
    gridsync__v1__snapshot_entry__pack(&e, gs_wbuf_reserve(out, need));
    out->len = need;
    gs_arena_destroy(&a);
    return n;
}

/* What one snapshot case saw. */
typedef struct s_snap_seen {
    size_t stripped;            /* persons whose restricted part was dropped */
    size_t kept;                /* persons sent with it */
    size_t narrowed;            /* entries whose length prefix shrank when stripped */
} s_snap_seen_t;

/* Page through a snapshot of the prefixes (limit per page) with the
 * broker's setting feed_restricted and the request's flag omit, and check
 * every reply against stored (every record of the store, in key order):
 * the records under the prefixes in key order, each entry byte for byte
 * as s_entry_rule makes it, and each reply exactly what protobuf-c packs
 * from it (each length as short as it can be). */
static void
s_snapshot_check(fx_t *f, const s_stored_t *stored, char **prefixes, size_t n_prefixes,
                 int feed_restricted, int omit, uint32_t limit, s_snap_seen_t *seen)
{
    f->s.feed_restricted = feed_restricted;
    int strip = !feed_restricted || omit;
    gs_wbuf_t want, packed;
    gs_wbuf_init(&want);
    gs_wbuf_init(&packed);
    size_t at = 0;          /* next stored record to compare */
    size_t matched = 0;
    uint8_t cursor[256];
    size_t cursor_len = 0;
    for (int page = 0;; page++) {
        assert_true(page < 1000);
        Gridsync__V1__SnapshotRequest rq = GRIDSYNC__V1__SNAPSHOT_REQUEST__INIT;
        rq.prefixes = prefixes;
        rq.n_prefixes = n_prefixes;
        rq.limit = limit;
        rq.omit_restricted = omit;
        rq.cursor.data = cursor;
        rq.cursor.len = cursor_len;
        gs_serve_snapshot(&f->s, &f->x, 200 + (uint64_t) page, &rq, &f->reply);
        Gridsync__V1__Reply *r = s_reply(f);
        assert_int_equal(r->body_case, GRIDSYNC__V1__REPLY__BODY_SNAPSHOT);
        gs_wbuf_reset(&packed);
        size_t need = gridsync__v1__reply__get_packed_size(r);
        gridsync__v1__reply__pack(r, gs_wbuf_reserve(&packed, need));
        assert_int_equal(need, f->reply.len);
        assert_memory_equal(packed.data, f->reply.data, need);
        Gridsync__V1__SnapshotResponse *sn = r->snapshot;
        for (size_t i = 0; i < sn->n_entries; i++) {
            /* the next stored record under the prefixes */
            while (at < stored->n &&
                   gs_grid_prefix_find(stored->grid[at], (const char *const *) prefixes,
                                       n_prefixes) < 0)
                at++;
            assert_true(at < stored->n);
            size_t dropped = s_entry_rule(stored, at, strip, &want);
            seen->stripped += dropped;
            /* the entry as stored would have needed a longer prefix */
            size_t whole = want.len + stored->bytes[at].len -
                           gridsync__v1__record__get_packed_size(sn->entries[i]->record);
            if (dropped && gs_wire_varint_len(want.len) < gs_wire_varint_len(whole))
                seen->narrowed++;
            if (!strip) {
                /* in an arena: the strip leaves what it drops to the owner */
                gs_arena_t *a = gs_arena_new(0);
                assert_non_null(a);
                Gridsync__V1__Record *rec = gridsync__v1__record__unpack(
                    gs_arena_allocator(a), stored->bytes[at].len, stored->bytes[at].data);
                assert_non_null(rec);
                seen->kept += gs_record_strip_restricted(rec);
                gs_arena_destroy(&a);
            }
            size_t got_len = gridsync__v1__snapshot_entry__get_packed_size(sn->entries[i]);
            uint8_t *got = malloc(got_len);
            assert_non_null(got);
            gridsync__v1__snapshot_entry__pack(sn->entries[i], got);
            assert_int_equal(got_len, want.len);
            assert_memory_equal(got, want.data, want.len);
            free(got);
            at++;
            matched++;
        }
        assert_true(sn->next_cursor.len <= sizeof cursor);
        cursor_len = sn->next_cursor.len;
        if (cursor_len)
            memcpy(cursor, sn->next_cursor.data, cursor_len);
        gridsync__v1__reply__free_unpacked(r, NULL);
        if (!cursor_len)
            break;
    }
    /* nothing under the prefixes was left out */
    while (at < stored->n &&
           gs_grid_prefix_find(stored->grid[at], (const char *const *) prefixes, n_prefixes) < 0)
        at++;
    assert_int_equal(at, stored->n);
    assert_true(matched > 0);
    gs_wbuf_deinit(&packed);
    gs_wbuf_deinit(&want);
}

/* A snapshot of a generated district, page after page, gives exactly the
 * entries the rule gives (s_snapshot_check), stripped or not. */
static void
test_snapshot_entries_follow_the_rule(void **state)
{
    fx_t *f = *state;
    gs_gen_t *g = gs_gen_new(NULL);
    assert_non_null(g);
    gs_arena_t *a = gs_arena_new(0);
    assert_non_null(a);
    /* households, rental units and organisations of a few grids */
    Gridsync__V1__Record *recs[50];
    for (uint32_t u = 0; u < 6; u++) {
        gs_arena_reset(a);
        for (uint32_t i = 0; i < 50; i++) {
            uint32_t k = u * 50 + i;
            recs[i] = k % 7 == 0 ? gs_gen_rental(g, k / 7, a)
                      : k % 5 == 0 ? gs_gen_org(g, k / 5, a)
                                   : gs_gen_household(g, k, a);
            assert_non_null(recs[i]);
        }
        char uid[32];
        snprintf(uid, sizeof uid, "gen-%u", u);
        gs_apply_out_t out;
        assert_int_equal(st_apply(f->st, a, "dev-1", uid, recs, 50, ST_NOW_MS, &out), 0);
        gs_apply_out_clear(&out);
    }
    static s_stored_t stored;
    memset(&stored, 0, sizeof stored);
    assert_int_equal(gs_store_records(f->st, "", s_stored_take, &stored), 0);
    assert_true(stored.n > 300);

    char grid0[16], street0[10];
    snprintf(grid0, sizeof grid0, "%s", stored.grid[stored.n - 1]);
    snprintf(street0, sizeof street0, "%.9s", stored.grid[stored.n - 1]);
    char *p_all[] = { (char *) "" };
    char *p_two[] = { street0, (char *) "1101" };
    char *p_one[] = { grid0 };
    s_snap_seen_t seen = { 0, 0, 0 };
    s_snapshot_check(f, &stored, p_all, 1, 0, 0, 37, &seen);    /* the broker's default */
    s_snapshot_check(f, &stored, p_all, 1, 1, 0, 0, &seen);     /* feed-restricted */
    s_snapshot_check(f, &stored, p_two, 2, 1, 1, 11, &seen);    /* omitted by request */
    s_snapshot_check(f, &stored, p_one, 1, 0, 0, 5, &seen);     /* one grid */
    /* both ways were exercised: persons stripped, and persons sent with
     * their restricted part to a reader entitled to it */
    assert_true(seen.stripped > 10);
    assert_true(seen.kept > 10);
    for (size_t i = 0; i < stored.n; i++)
        gs_wbuf_deinit(&stored.bytes[i]);
    gs_arena_destroy(&a);
    gs_gen_destroy(&g);
}

/* An entry whose record loses so much restricted data that its length
 * needs a byte less (over 16,384 bytes as stored, under it stripped) is
 * still written with the shortest length: a store whose text limit lets
 * a person's restricted part be that large. */
static void
test_snapshot_entry_shrinks_across_a_length_byte(void **state)
{
    fx_t *f = *state;
    char *dir = st_tmpdir();
    gs_limits_t lim = gs_limits_default;
    lim.max_text = 20000;
    gs_store_opts_t o = { .limits = &lim };
    gs_store_t *st = st_open(dir, &o);
    gs_arena_t *a = gs_arena_new(0);
    assert_non_null(a);
    /* restricted parts of 17,000, 16,500 and 100 bytes */
    const size_t sizes[] = { 17000, 16500, 100 };
    for (uint32_t i = 0; i < 3; i++) {
        char id[16], addr[16];
        snprintf(id, sizeof id, "S%u", i);
        snprintf(addr, sizeof addr, "AS%u", i);
        st_rec_t sr = { .id = id, .grid = G1, .addr_code = addr, .pids = { 100 + i } };
        Gridsync__V1__Record *rec = st_build(a, &sr);
        assert_non_null(rec);
        Gridsync__V1__Person *p = rec->household->members[0];
        p->restricted = gs_arena_alloc(a, sizeof *p->restricted);
        assert_non_null(p->restricted);
        gridsync__v1__restricted__init(p->restricted);
        char *w = gs_arena_alloc(a, sizes[i] + 1);
        assert_non_null(w);
        memset(w, 'w', sizes[i]);
        w[sizes[i]] = 0;
        p->restricted->welfare = w;
        char uid[32];
        snprintf(uid, sizeof uid, "big-%u", i);
        gs_apply_out_t out;
        assert_int_equal(st_apply(st, a, "dev-1", uid, &rec, 1, ST_NOW_MS, &out), 0);
        Gridsync__V1__Ack *ack = st_ack(&out, 0);
        assert_int_equal(ack->results[0]->status, RS(ACCEPTED));
        gridsync__v1__ack__free_unpacked(ack, NULL);
        gs_apply_out_clear(&out);
    }
    static s_stored_t stored;
    memset(&stored, 0, sizeof stored);
    assert_int_equal(gs_store_records(st, "", s_stored_take, &stored), 0);
    assert_int_equal(stored.n, 3);
    gs_store_t *fixture_store = f->s.store;
    f->s.store = st;
    char *p_all[] = { (char *) "" };
    s_snap_seen_t seen = { 0, 0, 0 };
    s_snapshot_check(f, &stored, p_all, 1, 0, 0, 2, &seen);
    assert_int_equal(seen.stripped, 3);
    assert_int_equal(seen.narrowed, 2);
    s_snapshot_check(f, &stored, p_all, 1, 1, 0, 0, &seen);
    assert_int_equal(seen.kept, 3);
    f->s.store = fixture_store;
    for (size_t i = 0; i < stored.n; i++)
        gs_wbuf_deinit(&stored.bytes[i]);
    gs_arena_destroy(&a);
    gs_store_destroy(&st);
    st_rmdir(dir);
    free(dir);
}

static void
test_snapshot_reply_and_pages(void **state)
{
    fx_t *f = *state;
    char *prefixes[] = { "" };
    Gridsync__V1__SnapshotRequest rq = GRIDSYNC__V1__SNAPSHOT_REQUEST__INIT;
    rq.prefixes = prefixes;
    rq.n_prefixes = 1;
    rq.limit = 2;
    gs_serve_snapshot(&f->s, &f->x, 5, &rq, &f->reply);
    Gridsync__V1__Reply *r = s_reply(f);
    assert_int_equal(r->request_id, 5);
    assert_int_equal(r->body_case, GRIDSYNC__V1__REPLY__BODY_SNAPSHOT);
    Gridsync__V1__SnapshotResponse *sn = r->snapshot;
    assert_int_equal(sn->n_entries, 2);
    assert_string_equal(sn->entries[0]->grid_code, G1);
    assert_string_equal(sn->entries[0]->record_key, "H1");
    assert_int_equal(sn->entries[0]->kind, GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD);
    assert_int_equal(sn->entries[0]->version, 1);
    assert_true(sn->entries[0]->seq > 0);
    assert_non_null(sn->entries[0]->record);
    assert_int_equal(sn->snapshot_seq, 3);
    assert_true(sn->next_cursor.len > 0);
    assert_true(sn->store_epoch != 0);
    /* the next page, from the cursor */
    uint8_t cursor[256];
    assert_true(sn->next_cursor.len <= sizeof cursor);
    memcpy(cursor, sn->next_cursor.data, sn->next_cursor.len);
    rq.cursor.data = cursor;
    rq.cursor.len = sn->next_cursor.len;
    gridsync__v1__reply__free_unpacked(r, NULL);
    gs_serve_snapshot(&f->s, &f->x, 6, &rq, &f->reply);
    r = s_reply(f);
    assert_int_equal(r->snapshot->n_entries, 1);
    assert_string_equal(r->snapshot->entries[0]->record_key, "H3");
    assert_int_equal(r->snapshot->next_cursor.len, 0);
    gridsync__v1__reply__free_unpacked(r, NULL);
    assert_int_equal(atomic_load(&f->m.snapshot_requests), 2);

    /* a cursor that does not belong to these prefixes */
    uint8_t junk[] = { 0xff, 0x01, 0x02 };
    rq.cursor.data = junk;
    rq.cursor.len = sizeof junk;
    gs_serve_snapshot(&f->s, &f->x, 7, &rq, &f->reply);
    s_assert_error(f, 7, RN(BAD_REQUEST), 0);
    /* and no prefix */
    rq.n_prefixes = 0;
    gs_serve_snapshot(&f->s, &f->x, 8, &rq, &f->reply);
    s_assert_error(f, 8, RN(BAD_REQUEST), 1);
}

/* gs_serve_read dispatches as the reader threads do. */
static void
test_read_dispatch(void **state)
{
    fx_t *f = *state;
    char *prefixes[] = { "110106" };
    Gridsync__V1__SyncRequest sync = GRIDSYNC__V1__SYNC_REQUEST__INIT;
    sync.prefixes = prefixes;
    sync.n_prefixes = 1;
    Gridsync__V1__Request req = GRIDSYNC__V1__REQUEST__INIT;
    req.request_id = 11;
    req.body_case = GRIDSYNC__V1__REQUEST__BODY_SYNC;
    req.sync = &sync;
    gs_serve_read(&f->s, &f->x, &req, NULL, ST_NOW_MS, &f->reply);
    Gridsync__V1__Reply *r = s_reply(f);
    assert_int_equal(r->request_id, 11);
    assert_int_equal(r->sync->n_events, 1);
    assert_string_equal(r->sync->events[0]->grid_code, G3);
    gridsync__v1__reply__free_unpacked(r, NULL);

    Gridsync__V1__SnapshotRequest snap = GRIDSYNC__V1__SNAPSHOT_REQUEST__INIT;
    snap.prefixes = prefixes;
    snap.n_prefixes = 1;
    req.request_id = 12;
    req.body_case = GRIDSYNC__V1__REQUEST__BODY_SNAPSHOT;
    req.snapshot = &snap;
    gs_serve_read(&f->s, &f->x, &req, NULL, ST_NOW_MS, &f->reply);
    r = s_reply(f);
    assert_int_equal(r->request_id, 12);
    assert_int_equal(r->snapshot->n_entries, 1);
    gridsync__v1__reply__free_unpacked(r, NULL);

    Gridsync__V1__HealthRequest h = GRIDSYNC__V1__HEALTH_REQUEST__INIT;
    Gridsync__V1__AdminRequest admin = GRIDSYNC__V1__ADMIN_REQUEST__INIT;
    admin.request_id = 13;
    admin.body_case = GRIDSYNC__V1__ADMIN_REQUEST__BODY_HEALTH;
    admin.health = &h;
    gs_serve_read(&f->s, &f->x, NULL, &admin, ST_NOW_MS, &f->reply);
    Gridsync__V1__AdminReply *ar = s_admin_reply(f);
    assert_int_equal(ar->request_id, 13);
    assert_int_equal(ar->body_case, GRIDSYNC__V1__ADMIN_REPLY__BODY_HEALTH);
    gridsync__v1__admin_reply__free_unpacked(ar, NULL);
}

static void
test_admin_replies(void **state)
{
    fx_t *f = *state;
    Gridsync__V1__AdminRequest rq = GRIDSYNC__V1__ADMIN_REQUEST__INIT;
    Gridsync__V1__HealthRequest h = GRIDSYNC__V1__HEALTH_REQUEST__INIT;
    rq.request_id = 21;
    rq.body_case = GRIDSYNC__V1__ADMIN_REQUEST__BODY_HEALTH;
    rq.health = &h;
    gs_serve_admin(&f->s, &f->x, &rq, ST_NOW_MS + 5000, &f->reply);
    Gridsync__V1__AdminReply *r = s_admin_reply(f);
    assert_int_equal(r->request_id, 21);
    assert_string_equal(r->health->version, GS_VERSION);
    assert_int_equal(r->health->head_seq, 3);
    assert_int_equal(r->health->records, 3);
    assert_int_equal(r->health->feed_subscriptions, 3);
    assert_int_equal(r->health->uptime_ms, 5000);
    assert_true(r->health->store_epoch != 0);
    gridsync__v1__admin_reply__free_unpacked(r, NULL);

    Gridsync__V1__StatsRequest st = GRIDSYNC__V1__STATS_REQUEST__INIT;
    st.prefix = "110105";
    rq.request_id = 22;
    rq.body_case = GRIDSYNC__V1__ADMIN_REQUEST__BODY_STATS;
    rq.stats = &st;
    gs_serve_admin(&f->s, &f->x, &rq, ST_NOW_MS + 5000, &f->reply);
    r = s_admin_reply(f);
    assert_int_equal(r->body_case, GRIDSYNC__V1__ADMIN_REPLY__BODY_STATS);
    assert_int_equal(r->stats->n_cells, 2);
    assert_string_equal(r->stats->cells[0]->grid_code, G1);
    assert_int_equal(r->stats->cells[0]->households, 1);
    assert_int_equal(r->stats->head_seq, 3);
    gridsync__v1__admin_reply__free_unpacked(r, NULL);

    Gridsync__V1__GetRequest get = GRIDSYNC__V1__GET_REQUEST__INIT;
    get.record_key = "H2";
    rq.request_id = 23;
    rq.body_case = GRIDSYNC__V1__ADMIN_REQUEST__BODY_GET;
    rq.get = &get;
    gs_serve_admin(&f->s, &f->x, &rq, ST_NOW_MS + 5000, &f->reply);
    r = s_admin_reply(f);
    assert_int_equal(r->body_case, GRIDSYNC__V1__ADMIN_REPLY__BODY_RECORD);
    assert_string_equal(r->record->grid_code, G2);
    assert_string_equal(r->record->record_key, "H2");
    gridsync__v1__admin_reply__free_unpacked(r, NULL);
    assert_int_equal(atomic_load(&f->m.admin_requests), 3);

    /* the admin errors: AdminReply.error, counted as every error is */
    get.record_key = "nope";
    rq.request_id = 24;
    gs_serve_admin(&f->s, &f->x, &rq, ST_NOW_MS + 5000, &f->reply);
    r = s_admin_reply(f);
    assert_int_equal(r->request_id, 24);
    assert_int_equal(r->body_case, GRIDSYNC__V1__ADMIN_REPLY__BODY_ERROR);
    assert_int_equal(r->error->reason, RN(NOT_FOUND));
    gridsync__v1__admin_reply__free_unpacked(r, NULL);
    assert_int_equal(atomic_load(&f->m.request_errors[RN(NOT_FOUND)]), 1);

    st.prefix = "11a";
    rq.request_id = 25;
    rq.body_case = GRIDSYNC__V1__ADMIN_REQUEST__BODY_STATS;
    rq.stats = &st;     /* the bodies share a union */
    gs_serve_admin(&f->s, &f->x, &rq, ST_NOW_MS + 5000, &f->reply);
    r = s_admin_reply(f);
    assert_int_equal(r->error->reason, RN(BAD_REQUEST));
    gridsync__v1__admin_reply__free_unpacked(r, NULL);

    rq.request_id = 26;
    rq.body_case = GRIDSYNC__V1__ADMIN_REQUEST__BODY__NOT_SET;
    gs_serve_admin(&f->s, &f->x, &rq, ST_NOW_MS + 5000, &f->reply);
    r = s_admin_reply(f);
    assert_int_equal(r->request_id, 26);
    assert_int_equal(r->error->reason, RN(UNKNOWN_TYPE));
    gridsync__v1__admin_reply__free_unpacked(r, NULL);
    assert_int_equal(atomic_load(&f->m.request_errors[RN(BAD_REQUEST)]), 1);
    assert_int_equal(atomic_load(&f->m.request_errors[RN(UNKNOWN_TYPE)]), 1);
}

/* The digest request: a prefix with its children, a cell with its records
 * in pages, all read in one transaction each, and the argument errors. */
static void
test_admin_digest(void **state)
{
    fx_t *f = *state;
    Gridsync__V1__AdminRequest rq = GRIDSYNC__V1__ADMIN_REQUEST__INIT;
    Gridsync__V1__DigestRequest d = GRIDSYNC__V1__DIGEST_REQUEST__INIT;
    rq.request_id = 31;
    rq.body_case = GRIDSYNC__V1__ADMIN_REQUEST__BODY_DIGEST;
    rq.digest = &d;
    d.prefix = "";
    gs_serve_admin(&f->s, &f->x, &rq, ST_NOW_MS, &f->reply);
    Gridsync__V1__AdminReply *r = s_admin_reply(f);
    assert_int_equal(r->request_id, 31);
    assert_int_equal(r->body_case, GRIDSYNC__V1__ADMIN_REPLY__BODY_DIGEST);
    Gridsync__V1__DigestReply *dr = r->digest;
    assert_string_equal(dr->node->prefix, "");
    assert_int_equal(dr->node->count, 3);
    assert_int_equal(dr->node->digest.len, 16);
    assert_int_equal(dr->n_children, 1);     /* province 11 */
    assert_string_equal(dr->children[0]->prefix, "11");
    assert_int_equal(dr->children[0]->count, 3);
    assert_memory_equal(dr->children[0]->digest.data, dr->node->digest.data, 16);
    assert_int_equal(dr->head_seq, 3);
    uint64_t epoch = 0;
    gs_store_epoch(f->st, &epoch);
    assert_true(dr->store_epoch == epoch);
    gridsync__v1__admin_reply__free_unpacked(r, NULL);

    /* a district: two streets' worth of children */
    d.prefix = "1101";
    gs_serve_admin(&f->s, &f->x, &rq, ST_NOW_MS, &f->reply);
    r = s_admin_reply(f);
    assert_int_equal(r->digest->n_children, 2);
    assert_string_equal(r->digest->children[0]->prefix, "110105");
    assert_int_equal(r->digest->children[0]->count, 2);
    assert_string_equal(r->digest->children[1]->prefix, "110106");
    gridsync__v1__admin_reply__free_unpacked(r, NULL);

    /* a cell's records, one per reply */
    const st_rec_t more = { .id = "H4", .grid = G1, .addr_code = "A4", .pids = { 4 } };
    assert_int_equal(st_put(f->st, f->a, &more, ST_NOW_MS).status, RS(ACCEPTED));
    d.prefix = G1;
    d.limit = 1;
    gs_serve_admin(&f->s, &f->x, &rq, ST_NOW_MS, &f->reply);
    r = s_admin_reply(f);
    dr = r->digest;
    assert_int_equal(dr->node->count, 2);
    assert_int_equal(dr->n_children, 0);
    assert_int_equal(dr->n_records, 1);
    assert_string_equal(dr->records[0]->record_key, "H1");
    assert_int_equal(dr->records[0]->kind, GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD);
    assert_int_equal(dr->records[0]->version, 1);
    assert_int_equal(dr->records[0]->content_hash.len, 16);
    assert_true(dr->next_cursor.len > 0);
    uint8_t cur[64];
    size_t cl = dr->next_cursor.len;
    memcpy(cur, dr->next_cursor.data, cl);
    gridsync__v1__admin_reply__free_unpacked(r, NULL);
    d.cursor.data = cur;
    d.cursor.len = cl;
    gs_serve_admin(&f->s, &f->x, &rq, ST_NOW_MS, &f->reply);
    r = s_admin_reply(f);
    assert_int_equal(r->digest->n_records, 1);
    assert_string_equal(r->digest->records[0]->record_key, "H4");
    assert_int_equal(r->digest->next_cursor.len, 0);    /* complete */
    gridsync__v1__admin_reply__free_unpacked(r, NULL);

    /* errors: a prefix off a level, a damaged cursor */
    d.cursor.len = 0;
    d.prefix = "110";
    rq.request_id = 32;
    gs_serve_admin(&f->s, &f->x, &rq, ST_NOW_MS, &f->reply);
    r = s_admin_reply(f);
    assert_int_equal(r->request_id, 32);
    assert_int_equal(r->error->reason, RN(BAD_REQUEST));
    assert_non_null(strstr(r->error->message, "level"));
    gridsync__v1__admin_reply__free_unpacked(r, NULL);
    d.prefix = G1;
    d.cursor.data = (uint8_t *) "Zzz";
    d.cursor.len = 3;
    gs_serve_admin(&f->s, &f->x, &rq, ST_NOW_MS, &f->reply);
    r = s_admin_reply(f);
    assert_int_equal(r->error->reason, RN(BAD_REQUEST));
    gridsync__v1__admin_reply__free_unpacked(r, NULL);
    assert_int_equal(atomic_load(&f->m.request_errors[RN(BAD_REQUEST)]), 2);
}

static void
test_ping_reply(void **state)
{
    fx_t *f = *state;
    /* an unregistered sender in development mode */
    gs_serve_ping(&f->s, 31, NULL, NULL, 0, 1, ST_NOW_MS + 7, &f->reply);
    Gridsync__V1__Reply *r = s_reply(f);
    assert_int_equal(r->request_id, 31);
    assert_int_equal(r->body_case, GRIDSYNC__V1__REPLY__BODY_PING);
    assert_false(r->ping->registered);
    assert_true(r->ping->scope_all);
    assert_int_equal(r->ping->n_prefixes, 0);
    assert_string_equal(r->ping->version, GS_VERSION);
    assert_int_equal(r->ping->head_seq, 3);
    assert_true(r->ping->store_epoch != 0);
    assert_true(r->ping->secure);
    assert_int_equal(r->ping->broker_time, ST_NOW_MS + 7);
    gridsync__v1__reply__free_unpacked(r, NULL);

    /* a district system with its prefixes */
    char *prefixes[] = { "110105", "110106" };
    Gridsync__V1__Device d = GRIDSYNC__V1__DEVICE__INIT;
    d.device_id = "district-1";
    d.role = GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT;
    d.prefixes = prefixes;
    d.n_prefixes = 2;
    gs_serve_ping(&f->s, 32, &d, prefixes, 2, 0, ST_NOW_MS, &f->reply);
    r = s_reply(f);
    assert_true(r->ping->registered);
    assert_string_equal(r->ping->device_id, "district-1");
    assert_int_equal(r->ping->role, GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT);
    assert_false(r->ping->scope_all);
    assert_int_equal(r->ping->n_prefixes, 2);
    assert_string_equal(r->ping->prefixes[1], "110106");
    gridsync__v1__reply__free_unpacked(r, NULL);
    assert_int_equal(atomic_load(&f->m.ping_requests), 2);
}

static void
test_ack_and_commit_errors(void **state)
{
    fx_t *f = *state;
    Gridsync__V1__Record *rec =
        st_build(f->a, &(st_rec_t) { .id = "H4", .grid = G1, .addr_code = "A4", .pids = { 4 } });
    gs_apply_out_t out;
    assert_int_equal(st_apply(f->st, f->a, "dev-1", "u-ack", &rec, 1, ST_NOW_MS, &out), 0);
    gs_serve_ack(&f->s, 51, &out.uploads[0], &f->reply);
    Gridsync__V1__Reply *r = s_reply(f);
    assert_int_equal(r->request_id, 51);
    assert_int_equal(r->body_case, GRIDSYNC__V1__REPLY__BODY_ACK);
    assert_string_equal(r->ack->upload_id, "u-ack");
    assert_int_equal(r->ack->n_results, 1);
    assert_int_equal(r->ack->results[0]->status, RS(ACCEPTED));
    gridsync__v1__reply__free_unpacked(r, NULL);
    gs_apply_out_clear(&out);
    assert_int_equal(atomic_load(&f->m.uploads_acked), 1);
    assert_int_equal(atomic_load(&f->m.records[RS(ACCEPTED)]), 1);

    /* the same upload again: answered from the idempotency table */
    assert_int_equal(st_apply(f->st, f->a, "dev-1", "u-ack", &rec, 1, ST_NOW_MS, &out), 0);
    gs_serve_ack(&f->s, 52, &out.uploads[0], &f->reply);
    gs_apply_out_clear(&out);
    assert_int_equal(atomic_load(&f->m.uploads_replayed), 1);

    gs_serve_commit_error(&f->s, 53, GS_EFULL, &f->reply);
    s_assert_error(f, 53, RN(STORAGE_FULL), 0);
    gs_serve_commit_error(&f->s, 54, GS_EIO, &f->reply);
    s_assert_error(f, 54, RN(INTERNAL), 0);
}

/* One error path: whatever reason, the reply is a whole Reply (what was
 * in the buffer before is gone) and the reason is counted once; a reason
 * beyond the counters is still answered. */
static void
test_every_error_is_counted(void **state)
{
    fx_t *f = *state;
    int reasons[] = { RN(BUSY), RN(MALFORMED), RN(UNAUTHORISED), RN(OUT_OF_SCOPE) };
    for (size_t i = 0; i < 4; i++) {
        gs_wbuf_put(&f->reply, "junk", 4);
        gs_serve_error(&f->s, &f->reply, 0, 60 + i, reasons[i], "why");
        s_assert_error(f, 60 + i, reasons[i], 0);
    }
    gs_serve_error(&f->s, &f->reply, 1, 70, RN(BUSY), "why");
    Gridsync__V1__AdminReply *r = s_admin_reply(f);
    assert_int_equal(r->request_id, 70);
    assert_int_equal(r->error->reason, RN(BUSY));
    gridsync__v1__admin_reply__free_unpacked(r, NULL);
    assert_int_equal(atomic_load(&f->m.request_errors[RN(BUSY)]), 2);
    gs_serve_error(&f->s, &f->reply, 0, 71, GS_REASONS_MAX + 5, "why");
    Gridsync__V1__Reply *rr = s_reply(f);
    assert_int_equal(rr->request_id, 71);
    gridsync__v1__reply__free_unpacked(rr, NULL);
}

/* Each named field number is the one gridsync.proto gives the field. */
static void
s_field(const ProtobufCMessageDescriptor *d, const char *name, unsigned id)
{
    const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field_by_name(d, name);
    if (!fd)
        fail_msg("%s has no field %s", d->name, name);
    if (fd->id != id)
        fail_msg("%s.%s is field %u, named as %u", d->name, name, fd->id, id);
}

static void
test_field_numbers_match_the_schema(void **state)
{
    (void) state;
    const ProtobufCMessageDescriptor *re = &gridsync__v1__reply__descriptor;
    s_field(re, "request_id", GS_F_REPLY_REQUEST_ID);
    s_field(re, "ack", GS_F_REPLY_ACK);
    s_field(re, "sync", GS_F_REPLY_SYNC);
    s_field(re, "snapshot", GS_F_REPLY_SNAPSHOT);
    s_field(re, "error", GS_F_REPLY_ERROR);
    s_field(re, "ping", GS_F_REPLY_PING);
    s_field(re, "incident_categories", GS_F_REPLY_INCIDENT_CATEGORIES);
    const ProtobufCMessageDescriptor *ar = &gridsync__v1__admin_reply__descriptor;
    s_field(ar, "request_id", GS_F_ADMIN_REPLY_REQUEST_ID);
    s_field(ar, "stats", GS_F_ADMIN_REPLY_STATS);
    s_field(ar, "record", GS_F_ADMIN_REPLY_RECORD);
    s_field(ar, "devices", GS_F_ADMIN_REPLY_DEVICES);
    s_field(ar, "grids", GS_F_ADMIN_REPLY_GRIDS);
    s_field(ar, "health", GS_F_ADMIN_REPLY_HEALTH);
    s_field(ar, "error", GS_F_ADMIN_REPLY_ERROR);
    s_field(ar, "digest", GS_F_ADMIN_REPLY_DIGEST);
    s_field(ar, "incident_categories", GS_F_ADMIN_REPLY_INCIDENT_CATEGORIES);
    const ProtobufCMessageDescriptor *ic = &gridsync__v1__incident_categories_reply__descriptor;
    s_field(ic, "categories", GS_F_CATEGORIES_CATEGORIES);
    s_field(ic, "configured", GS_F_CATEGORIES_CONFIGURED);
    const ProtobufCMessageDescriptor *dg = &gridsync__v1__digest_reply__descriptor;
    s_field(dg, "node", GS_F_DIGEST_NODE);
    s_field(dg, "children", GS_F_DIGEST_CHILDREN);
    s_field(dg, "records", GS_F_DIGEST_RECORDS);
    s_field(dg, "next_cursor", GS_F_DIGEST_NEXT_CURSOR);
    s_field(dg, "head_seq", GS_F_DIGEST_HEAD_SEQ);
    s_field(dg, "store_epoch", GS_F_DIGEST_STORE_EPOCH);
    const ProtobufCMessageDescriptor *sy = &gridsync__v1__sync_response__descriptor;
    s_field(sy, "events", GS_F_SYNC_EVENTS);
    s_field(sy, "next_seq", GS_F_SYNC_NEXT_SEQ);
    s_field(sy, "head_seq", GS_F_SYNC_HEAD_SEQ);
    s_field(sy, "store_epoch", GS_F_SYNC_STORE_EPOCH);
    const ProtobufCMessageDescriptor *sn = &gridsync__v1__snapshot_response__descriptor;
    s_field(sn, "entries", GS_F_SNAPSHOT_ENTRIES);
    s_field(sn, "snapshot_seq", GS_F_SNAPSHOT_SEQ);
    s_field(sn, "next_cursor", GS_F_SNAPSHOT_NEXT_CURSOR);
    s_field(sn, "store_epoch", GS_F_SNAPSHOT_STORE_EPOCH);
    const ProtobufCMessageDescriptor *en = &gridsync__v1__snapshot_entry__descriptor;
    s_field(en, "grid_code", GS_F_ENTRY_GRID_CODE);
    s_field(en, "kind", GS_F_ENTRY_KIND);
    s_field(en, "record_key", GS_F_ENTRY_RECORD_KEY);
    s_field(en, "version", GS_F_ENTRY_VERSION);
    s_field(en, "seq", GS_F_ENTRY_SEQ);
    s_field(en, "record", GS_F_ENTRY_RECORD);
    const ProtobufCMessageDescriptor *ce = &gridsync__v1__cell_stats__descriptor;
    s_field(ce, "grid_code", GS_F_CELL_GRID_CODE);
    s_field(ce, "households", GS_F_CELL_HOUSEHOLDS);
    s_field(ce, "persons", GS_F_CELL_PERSONS);
    s_field(ce, "rentals", GS_F_CELL_RENTALS);
    s_field(ce, "tenants", GS_F_CELL_TENANTS);
    s_field(ce, "voided", GS_F_CELL_VOIDED);
    s_field(ce, "last_seq", GS_F_CELL_LAST_SEQ);
    s_field(ce, "last_update", GS_F_CELL_LAST_UPDATE);
    s_field(ce, "organisations", GS_F_CELL_ORGANISATIONS);
    s_field(ce, "employees", GS_F_CELL_EMPLOYEES);
    s_field(ce, "incidents", GS_F_CELL_INCIDENTS);
    s_field(&gridsync__v1__stats_reply__descriptor, "cells", GS_F_STATS_CELLS);
    s_field(&gridsync__v1__stats_reply__descriptor, "head_seq", GS_F_STATS_HEAD_SEQ);
    s_field(&gridsync__v1__device_list_reply__descriptor, "devices", GS_F_DEVICES_DEVICES);
    s_field(&gridsync__v1__grid_list_reply__descriptor, "grids", GS_F_GRIDS_GRIDS);
    s_field(&gridsync__v1__feed_message__descriptor, "event", GS_F_FEED_EVENT);
    s_field(&gridsync__v1__feed_message__descriptor, "heartbeat", GS_F_FEED_HEARTBEAT);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sync_reply, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sync_errors, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sync_events_follow_the_rule, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_reply_and_pages, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_entries_follow_the_rule, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_entry_shrinks_across_a_length_byte,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_read_dispatch, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_admin_replies, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_admin_digest, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ping_reply, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ack_and_commit_errors, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_every_error_is_counted, s_setup, s_teardown),
        cmocka_unit_test(test_field_numbers_match_the_schema),
    };
    return cmocka_run_group_tests_name("serve", tests, NULL, NULL);
}

/*
 * fuzz_sync: sync and snapshot requests on arbitrary bytes, against a small
 * real store. See gs_fuzz.h.
 *
 * The broker's handlers for these (gs_serve.c gs_serve_sync and
 * gs_serve_snapshot) are in gridsyncd, which this target does not link, so
 * it repeats their steps over the same library calls: unpack the Request into
 * an arena, check the prefixes (count, gs_prefix_check), cap the limit as
 * the broker's defaults do, read with gs_store_events / gs_store_snapshot,
 * strip restricted data the way a feed without entitlement gets it, and
 * splice the stored bytes into a Reply with gs_wire.
 *
 * The store is made once per process (gs_fuzz_store_fill) and never
 * changes, so every answer can be checked against a brute-force one
 * computed from the whole change log and the whole record set:
 *  - sync: exactly the events with seq > since_seq under the prefixes, in
 *    seq order, each once, cut at limit, on both read paths (global log
 *    and per-cell logs, forced with gs_store_events_path); next_seq and
 *    head_seq as documented in gs_store.h;
 *  - snapshot from an empty cursor, followed page by page: exactly the
 *    records under the prefixes, in key order, each once;
 *  - any other cursor is either refused (GS_EINVAL) or yields records
 *    under the prefixes;
 *  - stored events and records always decode, and the spliced Reply
 *    decodes with as many events or entries as were put in.
 */
#include "gs_fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gs_arena.h"
#include "gs_grid.h"
#include "gs_privacy.h"
#include "gs_store_debug.h"
#include "gs_validate.h"
#include "gs_wire.h"

#define S_MAX_PREFIXES 64           /* as the broker */
#define S_SYNC_MAX_EVENTS 5000      /* broker default sync-max-events */
#define S_SNAPSHOT_MAX 2000         /* broker default snapshot-max-records */
#define S_MAX_PAGES 10000           /* bound on pages followed per input */
#define S_MAX_ITEMS 1024            /* events / records the small store holds, at most */

typedef struct {
    uint64_t seq;                   /* change-log seq */
    char grid[GS_GRID_LEN + 1];     /* cell of the event */
} s_event_t;

typedef struct {
    char grid[GS_GRID_LEN + 1];     /* cell */
    int kind;                       /* RecordKind */
    char key[GS_ID_MAX + 1];        /* canonical id */
} s_rec_t;

static gs_store_t *s_store;         /* the one store, made at first call */
static uint64_t s_head;             /* its head seq */
static s_event_t s_all_events[S_MAX_ITEMS];  /* whole change log, seq order */
static size_t s_n_events;                    /* how many */
static s_rec_t s_all_recs[S_MAX_ITEMS];      /* every record, key order */
static size_t s_n_recs;                      /* how many */
static gs_wbuf_t s_body, s_tmp, s_reply, s_entry;   /* reply scratch, reused */

static void
s_fail(const char *what)
{
    fprintf(stderr, "fuzz_sync: %s\n", what);
    abort();
}

static int
s_collect_event(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    (void) arg;
    (void) data;
    (void) len;
    if (s_n_events == S_MAX_ITEMS)
        s_fail("store fill made more events than expected");
    s_all_events[s_n_events].seq = seq;
    snprintf(s_all_events[s_n_events].grid, sizeof s_all_events[0].grid, "%s", grid);
    s_n_events++;
    return 0;
}

static int
s_collect_rec(void *arg, const gs_record_view_t *r)
{
    (void) arg;
    if (s_n_recs == S_MAX_ITEMS)
        s_fail("store fill made more records than expected");
    s_rec_t *x = &s_all_recs[s_n_recs++];
    snprintf(x->grid, sizeof x->grid, "%s", r->grid);
    x->kind = r->kind;
    snprintf(x->key, sizeof x->key, "%s", r->record_key);
    return 0;
}

static void
s_close(void)
{
    gs_store_destroy(&s_store);
    gs_wbuf_deinit(&s_body);
    gs_wbuf_deinit(&s_tmp);
    gs_wbuf_deinit(&s_reply);
    gs_wbuf_deinit(&s_entry);
}

static void
s_init(void)
{
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.no_sync = 1;
    int err = 0;
    s_store = gs_store_new(gs_fuzz_tmpdir(), &o, &err);
    if (!s_store || gs_fuzz_store_fill(s_store) || gs_store_head(s_store, &s_head))
        s_fail("cannot make the store");
    atexit(s_close); /* runs before the directory is removed */
    const char *all[] = { "" };
    uint64_t next, head;
    if (gs_store_events(s_store, all, 1, 0, 0, s_collect_event, NULL, &next, &head) ||
        gs_store_records(s_store, "", s_collect_rec, NULL))
        s_fail("cannot read the store");
    if (s_n_events == 0 || s_n_recs == 0 || head != s_head)
        s_fail("the store is empty");
}

static int
s_under(const char *grid, char **prefixes, size_t n)
{
    return gs_grid_prefix_find(grid, (const char *const *) prefixes, n) >= 0;
}

/* The broker's checks of a request's prefixes; 0 when it would serve. */
static int
s_prefixes_ok(char **prefixes, size_t n)
{
    if (n == 0 || n > S_MAX_PREFIXES)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (gs_prefix_check(prefixes[i], NULL))
            return 0;
    return 1;
}

/* ---- sync ------------------------------------------------------------------ */

typedef struct {
    char **prefixes;                /* of the request */
    size_t n_prefixes;              /* how many */
    int omit;                       /* strip restricted data */
    gs_wbuf_t *body;                /* SyncResponse being built */
    gs_wbuf_t *tmp;                 /* stripped event */
    uint64_t seqs[S_MAX_ITEMS];     /* delivered, in order */
    size_t count;                   /* how many delivered */
} s_sync_t;

static int
s_sync_event(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    s_sync_t *c = arg;
    if (c->count == S_MAX_ITEMS)
        s_fail("sync delivered more events than the store holds");
    if (!s_under(grid, c->prefixes, c->n_prefixes))
        s_fail("sync delivered an event outside the prefixes");
    if (c->count && seq <= c->seqs[c->count - 1])
        s_fail("sync events not in strictly increasing seq order");
    if (c->omit) {
        gs_wbuf_reset(c->tmp);
        int r = gs_event_strip_restricted(data, len, c->tmp);
        if (r < 0)
            s_fail("a stored change event does not decode");
        if (r == 1) {
            data = c->tmp->data;
            len = c->tmp->len;
        }
    }
    gs_wbuf_bytes_field(c->body, 1, data, len, 1);
    c->seqs[c->count++] = seq;
    return 0;
}

static int
s_has_empty(char **prefixes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!prefixes[i][0])
            return 1;
    return 0;
}

/* One read through the given path (gs_store_events_path: 0 as the broker
 * reads, 1 global log, 2 per-cell logs), checked against the whole log. */
static void
s_sync_path(Gridsync__V1__SyncRequest *rq, uint32_t limit, int path, s_sync_t *c,
            uint64_t *next_out)
{
    gs_wbuf_reset(&s_body);
    c->prefixes = rq->prefixes;
    c->n_prefixes = rq->n_prefixes;
    c->omit = rq->omit_restricted;
    c->body = &s_body;
    c->tmp = &s_tmp;
    c->count = 0;
    uint64_t next = 0, head = 0;
    int rc = gs_store_events_path(s_store, (const char *const *) rq->prefixes, rq->n_prefixes,
                                  rq->since_seq, limit, s_sync_event, c, &next, &head, path);
    if (rc == GS_EINVAL && path == 2 && s_has_empty(rq->prefixes, rq->n_prefixes))
        return; /* "" covers every cell: only the log path takes it */
    if (rc)
        s_fail("gs_store_events failed on a request the broker would serve");
    if (head != s_head)
        s_fail("sync head_seq is not the store's head");

    /* brute force: the whole log, filtered */
    size_t k = 0;
    for (size_t i = 0; i < s_n_events && k < limit; i++) {
        if (s_all_events[i].seq <= rq->since_seq ||
            !s_under(s_all_events[i].grid, rq->prefixes, rq->n_prefixes))
            continue;
        if (k >= c->count || c->seqs[k] != s_all_events[i].seq)
            s_fail("sync missed an event, or delivered another");
        k++;
    }
    if (k != c->count)
        s_fail("sync delivered more events than match");
    /* at the limit: resume after the last event; otherwise the head, but
     * never behind the client's own since_seq */
    uint64_t want_next = c->count == limit ? c->seqs[c->count - 1]
                         : rq->since_seq > s_head ? rq->since_seq
                                                  : s_head;
    if (next != want_next)
        s_fail("sync next_seq is not as documented");
    *next_out = next;
}

static void
s_sync(uint64_t request_id, Gridsync__V1__SyncRequest *rq)
{
    if (!s_prefixes_ok(rq->prefixes, rq->n_prefixes))
        return;
    uint32_t limit = rq->limit;
    if (limit == 0 || limit > S_SYNC_MAX_EVENTS)
        limit = S_SYNC_MAX_EVENTS;
    static s_sync_t c;
    uint64_t next;
    /* both read paths must give the same answer; the broker's last, so
     * that its reply is the one spliced below */
    s_sync_path(rq, limit, 1, &c, &next);
    s_sync_path(rq, limit, 2, &c, &next);
    s_sync_path(rq, limit, 0, &c, &next);

    /* the reply as the broker splices it */
    gs_wbuf_reset(&s_reply);
    gs_wbuf_uint_field(&s_body, 2, next);
    gs_wbuf_uint_field(&s_body, 3, s_head);
    gs_wbuf_uint_field(&s_reply, 1, request_id);
    gs_wbuf_bytes_field(&s_reply, 3, s_body.data, s_body.len, 1);
    if (s_reply.failed)
        return;
    Gridsync__V1__Reply *r = gridsync__v1__reply__unpack(NULL, s_reply.len, s_reply.data);
    if (!r || r->body_case != GRIDSYNC__V1__REPLY__BODY_SYNC || r->request_id != request_id ||
        r->sync->n_events != c.count || r->sync->next_seq != next)
        s_fail("the spliced sync reply does not decode as what was put in");
    for (size_t i = 0; i < c.count; i++)
        if (r->sync->events[i]->seq != c.seqs[i])
            s_fail("a spliced event carries another seq");
    gridsync__v1__reply__free_unpacked(r, NULL);
}

/* ---- snapshot ---------------------------------------------------------------- */

typedef struct {
    char **prefixes;                /* of the request */
    size_t n_prefixes;              /* how many */
    int omit;                       /* strip restricted data */
    gs_wbuf_t *page;                /* SnapshotResponse being built */
    gs_wbuf_t *entry;               /* one SnapshotEntry */
    gs_wbuf_t *tmp;                 /* stripped record */
    s_rec_t got[S_MAX_ITEMS];       /* records delivered over all pages */
    size_t count;                   /* how many */
    size_t page_count;              /* records in the current page */
} s_snap_t;

static int
s_snap_record(void *arg, const gs_record_view_t *r)
{
    s_snap_t *c = arg;
    if (c->count == S_MAX_ITEMS)
        s_fail("snapshot delivered more records than the store holds");
    if (!s_under(r->grid, c->prefixes, c->n_prefixes))
        s_fail("snapshot delivered a record outside the prefixes");
    const uint8_t *data = r->data;
    size_t len = r->len;
    gs_wbuf_reset(c->tmp);
    int s = gs_recbytes_strip_restricted(data, len, c->tmp);
    if (s < 0)
        s_fail("a stored record does not decode");
    if (c->omit && s == 1) {
        data = c->tmp->data;
        len = c->tmp->len;
    }
    gs_wbuf_reset(c->entry);
    gs_wbuf_bytes_field(c->entry, 1, r->grid, strlen(r->grid), 0);
    gs_wbuf_uint_field(c->entry, 2, (uint64_t) r->kind);
    gs_wbuf_bytes_field(c->entry, 3, r->record_key, strlen(r->record_key), 0);
    gs_wbuf_uint_field(c->entry, 4, r->version);
    gs_wbuf_uint_field(c->entry, 5, r->seq);
    gs_wbuf_bytes_field(c->entry, 6, data, len, 1);
    gs_wbuf_bytes_field(c->page, 1, c->entry->data, c->entry->len, 1);
    s_rec_t *x = &c->got[c->count++];
    snprintf(x->grid, sizeof x->grid, "%s", r->grid);
    x->kind = r->kind;
    snprintf(x->key, sizeof x->key, "%s", r->record_key);
    c->page_count++;
    return 0;
}

/* The page as the broker splices it must decode with its entries. */
static void
s_snap_reply(s_snap_t *c, uint64_t snap_seq, const uint8_t *next, size_t next_len)
{
    gs_wbuf_reset(&s_reply);
    gs_wbuf_uint_field(c->page, 2, snap_seq);
    gs_wbuf_bytes_field(c->page, 3, next, next_len, 0);
    gs_wbuf_uint_field(&s_reply, 1, 1);
    gs_wbuf_bytes_field(&s_reply, 4, c->page->data, c->page->len, 1);
    if (s_reply.failed || c->page->failed)
        return;
    Gridsync__V1__Reply *r = gridsync__v1__reply__unpack(NULL, s_reply.len, s_reply.data);
    if (!r || r->body_case != GRIDSYNC__V1__REPLY__BODY_SNAPSHOT ||
        r->snapshot->n_entries != c->page_count || r->snapshot->next_cursor.len != next_len)
        s_fail("the spliced snapshot page does not decode as what was put in");
    gridsync__v1__reply__free_unpacked(r, NULL);
}

static void
s_snapshot(Gridsync__V1__SnapshotRequest *rq)
{
    if (!s_prefixes_ok(rq->prefixes, rq->n_prefixes))
        return;
    uint32_t limit = rq->limit;
    if (limit == 0 || limit > S_SNAPSHOT_MAX)
        limit = S_SNAPSHOT_MAX;
    static s_snap_t c;
    c.prefixes = rq->prefixes;
    c.n_prefixes = rq->n_prefixes;
    c.omit = rq->omit_restricted;
    c.page = &s_body;
    c.entry = &s_entry;
    c.tmp = &s_tmp;
    c.count = 0;
    const char *const *pfx = (const char *const *) rq->prefixes;
    const uint8_t *cursor = rq->cursor.data;
    size_t cursor_len = rq->cursor.len;
    uint8_t *held = NULL;           /* the cursor of the previous page */
    uint64_t first_seq = 0;
    int pages = 0;
    for (;;) {
        uint8_t *next = NULL;
        size_t next_len = 0;
        uint64_t snap_seq = 0;
        gs_wbuf_reset(&s_body);
        c.page_count = 0;
        int rc = gs_store_snapshot(s_store, pfx, rq->n_prefixes, cursor, cursor_len, limit,
                                   s_snap_record, &c, &next, &next_len, &snap_seq);
        free(held);
        held = NULL;
        if (rc == GS_EINVAL && pages == 0 && rq->cursor.len > 0) {
            free(next);
            return; /* a cursor the store does not take: the broker says BAD_REQUEST */
        }
        if (rc)
            s_fail("gs_store_snapshot failed on a cursor it made or an empty one");
        if (pages == 0)
            first_seq = snap_seq;
        else if (snap_seq != first_seq)
            s_fail("later pages report another snapshot_seq");
        if (c.page_count > limit)
            s_fail("a snapshot page holds more than limit records");
        s_snap_reply(&c, snap_seq, next, next_len);
        pages++;
        if (!next || pages == S_MAX_PAGES) {
            free(next);
            break;
        }
        if (next_len == 0)
            s_fail("a next cursor of zero bytes");
        held = next;
        cursor = next;
        cursor_len = next_len;
    }
    if (rq->cursor.len > 0 || pages == S_MAX_PAGES)
        return; /* started mid-way (or cut short): no complete answer to compare */
    if (first_seq != s_head)
        s_fail("snapshot_seq is not the store's head");
    size_t k = 0;
    for (size_t i = 0; i < s_n_recs; i++) {
        const s_rec_t *x = &s_all_recs[i];
        if (!s_under(x->grid, rq->prefixes, rq->n_prefixes))
            continue;
        if (k >= c.count || strcmp(c.got[k].key, x->key) != 0 || c.got[k].kind != x->kind ||
            strcmp(c.got[k].grid, x->grid) != 0)
            s_fail("snapshot pages missed a record, repeated one or changed the order");
        k++;
    }
    if (k != c.count)
        s_fail("snapshot pages delivered more records than match");
}

int
gs_fuzz_sync(const uint8_t *data, size_t len)
{
    if (!s_store)
        s_init();
    gs_arena_t *arena = gs_arena_new(len * 4 + 4096);
    if (!arena)
        return 0;
    Gridsync__V1__Request *req =
        gridsync__v1__request__unpack(gs_arena_allocator(arena), len, data);
    if (req && req->body_case == GRIDSYNC__V1__REQUEST__BODY_SYNC)
        s_sync(req->request_id, req->sync);
    else if (req && req->body_case == GRIDSYNC__V1__REQUEST__BODY_SNAPSHOT)
        s_snapshot(req->snapshot);
    gs_arena_destroy(&arena);
    return 0;
}

#ifdef GS_FUZZ_LIBFUZZER
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return gs_fuzz_sync(data, size);
}
#endif

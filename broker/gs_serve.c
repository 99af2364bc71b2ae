/*
 * gs_serve: the broker's request handlers and its one error-reply path.
 * See gs_serve.h.
 */
#include "gs_serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gs_authz.h"
#include "gs_log.h"
#include "gs_privacy.h"
#include "gs_validate.h"
#include "gs_version.h"

_Static_assert(sizeof ((gs_upload_result_t *) 0)->counts /
                   sizeof ((gs_upload_result_t *) 0)->counts[0] == GS_RESULT_STATUSES,
               "the store counts records by every ResultStatus, as the metrics do");

void
gs_serve_scratch_init(gs_serve_scratch_t *x)
{
    gs_wbuf_init(&x->body);
}

void
gs_serve_scratch_deinit(gs_serve_scratch_t *x)
{
    gs_wbuf_deinit(&x->body);
}

void
gs_serve_error(const gs_serve_t *s, gs_wbuf_t *reply, int admin, uint64_t request_id,
               int reason, const char *msg)
{
    Gridsync__V1__Error err = GRIDSYNC__V1__ERROR__INIT;
    err.reason = (Gridsync__V1__Reason) reason;
    err.message = (char *) msg;
    gs_wbuf_reset(reply);
    gs_wbuf_uint_field(reply, admin ? GS_F_ADMIN_REPLY_REQUEST_ID : GS_F_REPLY_REQUEST_ID,
                       request_id);
    gs_wbuf_message_field(reply, admin ? GS_F_ADMIN_REPLY_ERROR : GS_F_REPLY_ERROR, &err.base);
    if (reason >= 0 && reason < GS_REASONS_MAX)
        atomic_fetch_add(&s->metrics->request_errors[reason], 1);
}

/* ---- sync and snapshot ----------------------------------------------------- */

/* Check a request's prefixes. Returns 0 or a reason with msg filled. */
static int
s_prefixes_check(char **prefixes, size_t n, char *msg, size_t msg_size)
{
    if (n == 0) {
        snprintf(msg, msg_size, "give at least one grid-code prefix (\"\" means everything)");
        return GRIDSYNC__V1__REASON__REASON_BAD_REQUEST;
    }
    if (n > GS_SERVE_MAX_PREFIXES) {
        snprintf(msg, msg_size, "at most %d prefixes per request, got %zu",
                 GS_SERVE_MAX_PREFIXES, n);
        return GRIDSYNC__V1__REASON__REASON_BAD_REQUEST;
    }
    for (size_t i = 0; i < n; i++) {
        gs_verdict_t v;
        if (gs_prefix_check(prefixes[i], &v)) {
            snprintf(msg, msg_size, "prefix %zu: %s", i + 1, v.message);
            return v.reason;
        }
    }
    return 0;
}

/* Shared checks of a sync or snapshot request: the prefixes, and the page
 * size (0 or above max means max). Returns 0, or 1 with an error packed
 * into reply. */
static int
s_read_request_check(const gs_serve_t *s, uint64_t request_id, char **prefixes, size_t n,
                     uint32_t want, int64_t max, gs_wbuf_t *reply, uint32_t *limit)
{
    char msg[GS_MSG_MAX];
    int reason = s_prefixes_check(prefixes, n, msg, sizeof msg);
    if (reason) {
        gs_serve_error(s, reply, 0, request_id, reason, msg);
        return 1;
    }
    *limit = (want == 0 || want > (uint32_t) max) ? (uint32_t) max : want;
    return 0;
}

/* A sync or snapshot page is written straight into the reply, behind the
 * Reply's request_id and the header of its body field (body_field), so
 * the page is not copied again once built. The body's length goes into a
 * slot of S_PAGE_SLOT bytes (a page up to the reply budget needs at most
 * 4); a page whose length needs fewer is moved down by the difference (a
 * page under 2 MiB, so a full page never is). Returns where the body
 * starts. */
#define S_PAGE_SLOT 4

static size_t
s_page_open(gs_wbuf_t *reply, uint64_t request_id, uint32_t body_field)
{
    gs_wbuf_uint_field(reply, GS_F_REPLY_REQUEST_ID, request_id);
    gs_wbuf_varint(reply, ((uint64_t) body_field << 3) | 2);
    if (gs_wbuf_reserve(reply, S_PAGE_SLOT))
        reply->len += S_PAGE_SLOT;
    return reply->len;
}

/* Finish a page opened at base: the store's epoch goes into the body (as
 * field epoch_field), and the body's length into its slot. */
static void
s_page_close(const gs_serve_t *s, gs_wbuf_t *reply, size_t base, uint32_t epoch_field)
{
    uint64_t epoch = 0;
    gs_store_epoch(s->store, &epoch);
    gs_wbuf_uint_field(reply, epoch_field, epoch);
    if (reply->failed)
        return;     /* what reply holds is not the page; it becomes an error */
    size_t n = reply->len - base;
    size_t width = gs_wire_varint_len(n);
    if (width > S_PAGE_SLOT) {
        reply->failed = 1;  /* over 256 MiB: far past the budget, never built */
        return;
    }
    uint8_t *slot = reply->data + base - S_PAGE_SLOT;
    if (width < S_PAGE_SLOT) {
        memmove(slot + width, reply->data + base, n);
        reply->len -= S_PAGE_SLOT - width;
    }
    for (size_t i = 0; i < width; i++, n >>= 7)
        slot[i] = (uint8_t) ((n & 0x7f) | (i + 1 < width ? 0x80 : 0));
}

/* May the reader (NULL: no filter) have this record? The filter is
 * gs_authz_record; only a DEPARTMENT is filtered, and only its reads pay
 * for the unpack that finds an incident's category. */
static int
s_reader_may(const Gridsync__V1__Device *reader, int kind, const uint8_t *rec, size_t len)
{
    if (!reader || reader->role != GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEPARTMENT)
        return 1;
    if (kind != GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT)
        return 0;
    Gridsync__V1__Record *r = gridsync__v1__record__unpack(NULL, len, rec);
    int ok = r && r->body_case == GRIDSYNC__V1__RECORD__BODY_INCIDENT && r->incident &&
             gs_authz_record(reader, kind, r->incident->category);
    if (r)
        gridsync__v1__record__free_unpacked(r, NULL);
    return ok;
}

typedef struct s_sync_ctx {
    const Gridsync__V1__Device *reader; /* filter (gs_authz_record); NULL = none */
    gs_wbuf_t *out;             /* the Reply, its SyncResponse being built */
    size_t base;                /* where the SyncResponse starts in out */
    int omit_restricted;        /* drop Person.restricted */
    uint64_t last_seq;          /* last event included */
    size_t count;               /* events included */
    int full;                   /* stopped at the byte budget */
} s_sync_ctx_t;

static int
s_sync_event(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    (void) grid;
    s_sync_ctx_t *c = arg;
    if (c->reader && c->reader->role == GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEPARTMENT) {
        /* skipped like an event of another prefix: next_seq passes it */
        Gridsync__V1__ChangeEvent *ev = gridsync__v1__change_event__unpack(NULL, len, data);
        int ok = ev && ev->record && ev->record->body_case == GRIDSYNC__V1__RECORD__BODY_INCIDENT &&
                 gs_authz_record(c->reader, (int) ev->kind, ev->record->incident->category);
        if (ev)
            gridsync__v1__change_event__free_unpacked(ev, NULL);
        if (!ok)
            return 0;
    }
    if (c->count > 0 && c->out->len - c->base + len > GS_SERVE_REPLY_BUDGET) {
        c->full = 1;
        return 1;
    }
    if (!c->omit_restricted) {
        gs_wbuf_bytes_field(c->out, GS_F_SYNC_EVENTS, data, len, 1);
    } else if (gs_event_strip_restricted_field(c->out, GS_F_SYNC_EVENTS, data, len) < 0) {
        /* never the original bytes instead: they may hold restricted data */
        c->out->failed = 1;
        return 1;
    }
    c->last_seq = seq;
    c->count++;
    return 0;
}

static void
s_sync(const gs_serve_t *s, gs_serve_scratch_t *x, uint64_t request_id,
       const Gridsync__V1__SyncRequest *rq, const Gridsync__V1__Device *reader,
       gs_wbuf_t *reply)
{
    gs_wbuf_reset(reply);
    uint32_t limit;
    if (s_read_request_check(s, request_id, rq->prefixes, rq->n_prefixes, rq->limit,
                             s->sync_max_events, reply, &limit))
        return;
    (void) x;
    size_t base = s_page_open(reply, request_id, GS_F_REPLY_SYNC);
    s_sync_ctx_t c = { .reader = reader, .out = reply, .base = base,
                       .omit_restricted = !s->feed_restricted || rq->omit_restricted };
    uint64_t next = rq->since_seq, head = 0;
    int rc = gs_store_events(s->store, (const char *const *) rq->prefixes, rq->n_prefixes,
                             rq->since_seq, limit, s_sync_event, &c, &next, &head);
    if (rc < 0) {
        gs_log(GS_LOG_ERROR, "sync_failed", "error=\"%s\"", gs_store_strerror(rc));
        gs_serve_error(s, reply, 0, request_id, GRIDSYNC__V1__REASON__REASON_INTERNAL,
                       "the change log could not be read; retry later");
        return;
    }
    if (c.full)
        next = c.last_seq; /* resume right after the last event sent */
    gs_wbuf_uint_field(reply, GS_F_SYNC_NEXT_SEQ, next);
    gs_wbuf_uint_field(reply, GS_F_SYNC_HEAD_SEQ, head);
    s_page_close(s, reply, base, GS_F_SYNC_STORE_EPOCH);
    atomic_fetch_add(&s->metrics->sync_requests, 1);
    atomic_fetch_add(&s->metrics->sync_events, c.count);
}

void
gs_serve_sync(const gs_serve_t *s, gs_serve_scratch_t *x, uint64_t request_id,
              const Gridsync__V1__SyncRequest *rq, gs_wbuf_t *reply)
{
    s_sync(s, x, request_id, rq, NULL, reply);
}

typedef struct s_snap_ctx {
    const Gridsync__V1__Device *reader; /* filter (gs_authz_record); NULL = none */
    gs_wbuf_t *out;             /* the Reply, its SnapshotResponse being built */
    int omit_restricted;        /* drop Person.restricted */
} s_snap_ctx_t;

/* The tag of field (below 16: one byte) and the varint v at o, left out
 * when v is 0 as gs_wbuf_uint_field leaves it (proto3); returns the end. */
static uint8_t *
s_uint_at(uint8_t *o, uint32_t field, uint64_t v)
{
    if (v == 0)
        return o;
    *o++ = (uint8_t) (field << 3);
    return o + gs_wire_varint_put(o, v);
}

/* The string field (below 16) of n bytes at o, left out when empty as
 * gs_wbuf_bytes_field leaves it without force; returns the end. */
static uint8_t *
s_str_at(uint8_t *o, uint32_t field, const char *p, size_t n)
{
    if (n == 0)
        return o;
    *o++ = (uint8_t) (field << 3 | 2);
    o += gs_wire_varint_put(o, n);
    memcpy(o, p, n);
    return o + n;
}

/* Bytes a SnapshotEntry's fields before the record take at most, besides
 * the grid code's and the record key's own: five one-byte tags and five
 * varints (two lengths, kind, version, seq) of at most ten bytes. */
#define S_ENTRY_HEAD_MAX (5 * (1 + 10))

/* The fields of a SnapshotEntry for r (grid code and record key of
 * grid_len and key_len bytes), appended to out; the record without
 * Person.restricted when omit, stripped straight into out as a sync
 * reply's events are. The fields before the record are written in one
 * step: a page writes them for every record. Returns -1 (out->failed set,
 * or out unchanged from where the record was to go) when the record is
 * not well-formed along the paths to its persons. */
static int
s_entry_fields(gs_wbuf_t *out, const gs_record_view_t *r, size_t grid_len, size_t key_len,
               int omit)
{
    _Static_assert(GS_F_ENTRY_GRID_CODE < 16 && GS_F_ENTRY_KIND < 16 &&
                       GS_F_ENTRY_RECORD_KEY < 16 && GS_F_ENTRY_VERSION < 16 &&
                       GS_F_ENTRY_SEQ < 16,
                   "the entry's fields before the record have one-byte tags");
    uint8_t *o = gs_wbuf_reserve(out, S_ENTRY_HEAD_MAX + grid_len + key_len);
    if (!o)
        return -1;
    uint8_t *e = s_str_at(o, GS_F_ENTRY_GRID_CODE, r->grid, grid_len);
    e = s_uint_at(e, GS_F_ENTRY_KIND, (uint64_t) r->kind);
    e = s_str_at(e, GS_F_ENTRY_RECORD_KEY, r->record_key, key_len);
    e = s_uint_at(e, GS_F_ENTRY_VERSION, r->version);
    e = s_uint_at(e, GS_F_ENTRY_SEQ, r->seq);
    out->len += (size_t) (e - o);
    if (!omit)
        gs_wbuf_bytes_field(out, GS_F_ENTRY_RECORD, r->data, r->len, 1);
    else if (gs_recbytes_strip_restricted_field(out, GS_F_ENTRY_RECORD, r->data, r->len) < 0)
        return -1;
    return out->failed ? -1 : 0;
}

/* Append one SnapshotEntry to out as SnapshotResponse.entries, in one pass
 * (no copy of the entry or of the record): the entry is written in place
 * behind a length slot as wide as its longest form needs (the record as
 * stored; stripping never makes it longer) and moved down by the
 * difference when it came out shorter across a varint width (rare: a
 * record that shrinks across 128 or 16,384 bytes). Returns -1 as
 * s_entry_fields does. */
static int
s_entry_put(gs_wbuf_t *out, const gs_record_view_t *r, int omit)
{
    size_t grid_len = strlen(r->grid), key_len = strlen(r->record_key);
    size_t most = 1 + gs_wire_varint_len(grid_len) + grid_len +
                  1 + gs_wire_varint_len((uint64_t) r->kind) +
                  1 + gs_wire_varint_len(key_len) + key_len +
                  1 + gs_wire_varint_len(r->version) + 1 + gs_wire_varint_len(r->seq) +
                  1 + gs_wire_varint_len(r->len) + r->len;
    size_t slot = gs_wire_varint_len(most);
    gs_wbuf_varint(out, ((uint64_t) GS_F_SNAPSHOT_ENTRIES << 3) | 2);
    if (!gs_wbuf_reserve(out, slot))
        return -1;
    out->len += slot;
    size_t base = out->len;
    if (s_entry_fields(out, r, grid_len, key_len, omit) < 0)
        return -1;
    size_t n = out->len - base;
    size_t width = gs_wire_varint_len(n);
    uint8_t *o = out->data + base - slot;
    if (width < slot) {
        memmove(o + width, out->data + base, n);
        out->len -= slot - width;
    }
    for (size_t i = 0; i < width; i++, n >>= 7)
        o[i] = (uint8_t) ((n & 0x7f) | (i + 1 < width ? 0x80 : 0));
    return 0;
}

static int
s_snap_record(void *arg, const gs_record_view_t *r)
{
    s_snap_ctx_t *c = arg;
    if (!s_reader_may(c->reader, r->kind, r->data, r->len))
        return 0;
    if (s_entry_put(c->out, r, c->omit_restricted) < 0) {
        /* never the record as stored instead: it may hold restricted data */
        c->out->failed = 1;
        return 1;
    }
    return 0;
}

static void
s_snapshot(const gs_serve_t *s, gs_serve_scratch_t *x, uint64_t request_id,
           const Gridsync__V1__SnapshotRequest *rq, const Gridsync__V1__Device *reader,
           gs_wbuf_t *reply)
{
    gs_wbuf_reset(reply);
    uint32_t limit;
    if (s_read_request_check(s, request_id, rq->prefixes, rq->n_prefixes, rq->limit,
                             s->snapshot_max_records, reply, &limit))
        return;
    (void) x;
    size_t base = s_page_open(reply, request_id, GS_F_REPLY_SNAPSHOT);
    s_snap_ctx_t c = { .reader = reader, .out = reply,
                       .omit_restricted = !s->feed_restricted || rq->omit_restricted };
    uint8_t *next = NULL;
    size_t next_len = 0;
    uint64_t snap_seq = 0;
    int rc = gs_store_snapshot(s->store, (const char *const *) rq->prefixes, rq->n_prefixes,
                               rq->cursor.data, rq->cursor.len, limit, s_snap_record, &c,
                               &next, &next_len, &snap_seq);
    if (rc < 0) {
        free(next);
        int r = rc == GS_EINVAL ? GRIDSYNC__V1__REASON__REASON_BAD_REQUEST
                                : GRIDSYNC__V1__REASON__REASON_INTERNAL;
        gs_serve_error(s, reply, 0, request_id, r,
                       rc == GS_EINVAL ? "snapshot cursor is not valid for these prefixes"
                                       : "the store could not be read; retry later");
        return;
    }
    gs_wbuf_uint_field(reply, GS_F_SNAPSHOT_SEQ, snap_seq);
    gs_wbuf_bytes_field(reply, GS_F_SNAPSHOT_NEXT_CURSOR, next, next_len, 0);
    free(next);
    s_page_close(s, reply, base, GS_F_SNAPSHOT_STORE_EPOCH);
    atomic_fetch_add(&s->metrics->snapshot_requests, 1);
}

void
gs_serve_snapshot(const gs_serve_t *s, gs_serve_scratch_t *x, uint64_t request_id,
                  const Gridsync__V1__SnapshotRequest *rq, gs_wbuf_t *reply)
{
    s_snapshot(s, x, request_id, rq, NULL, reply);
}

/* ---- admin requests -------------------------------------------------------- */

typedef struct s_stats_ctx {
    gs_wbuf_t *out;             /* StatsReply being built */
    gs_wbuf_t *cell;            /* one CellStats */
} s_stats_ctx_t;

static int
s_stats_cell(void *arg, const char *grid, const gs_cell_meta_t *m)
{
    s_stats_ctx_t *c = arg;
    gs_wbuf_reset(c->cell);
    gs_wbuf_bytes_field(c->cell, GS_F_CELL_GRID_CODE, grid, strlen(grid), 0);
    gs_wbuf_uint_field(c->cell, GS_F_CELL_HOUSEHOLDS, m->households);
    gs_wbuf_uint_field(c->cell, GS_F_CELL_PERSONS, m->persons);
    gs_wbuf_uint_field(c->cell, GS_F_CELL_RENTALS, m->rentals);
    gs_wbuf_uint_field(c->cell, GS_F_CELL_TENANTS, m->tenants);
    gs_wbuf_uint_field(c->cell, GS_F_CELL_VOIDED, m->voided);
    gs_wbuf_uint_field(c->cell, GS_F_CELL_LAST_SEQ, m->last_seq);
    gs_wbuf_uint_field(c->cell, GS_F_CELL_LAST_UPDATE, (uint64_t) m->last_update);
    gs_wbuf_uint_field(c->cell, GS_F_CELL_ORGANISATIONS, m->organisations);
    gs_wbuf_uint_field(c->cell, GS_F_CELL_EMPLOYEES, m->employees);
    gs_wbuf_uint_field(c->cell, GS_F_CELL_INCIDENTS, m->incidents);
    gs_wbuf_bytes_field(c->out, GS_F_STATS_CELLS, c->cell->data, c->cell->len, 1);
    return 0;
}

typedef struct s_get_ctx {
    gs_wbuf_t *out;             /* SnapshotEntry being built */
    int found;                  /* a record was seen */
} s_get_ctx_t;

static int
s_get_record(void *arg, const gs_record_view_t *r)
{
    s_get_ctx_t *c = arg;
    /* not stripped: fails only as out->failed */
    s_entry_fields(c->out, r, strlen(r->grid), strlen(r->record_key), 0);
    c->found = 1;
    return 0;
}

static int
s_device_add(void *arg, const Gridsync__V1__Device *d)
{
    gs_wbuf_message_field(arg, GS_F_DEVICES_DEVICES, &d->base);
    return 0;
}

static int
s_grid_add(void *arg, const Gridsync__V1__Grid *g)
{
    gs_wbuf_message_field(arg, GS_F_GRIDS_GRIDS, &g->base);
    return 0;
}

typedef struct s_digest_ctx {
    gs_wbuf_t *out;             /* DigestReply being built */
} s_digest_ctx_t;

static void
s_digest_node_pack(gs_wbuf_t *out, uint32_t field, const gs_digest_node_t *n)
{
    Gridsync__V1__DigestNode m = GRIDSYNC__V1__DIGEST_NODE__INIT;
    m.prefix = (char *) n->prefix;
    m.digest.data = (uint8_t *) n->digest;
    m.digest.len = GS_DIGEST_LEN;
    m.count = n->count;
    gs_wbuf_message_field(out, field, &m.base);
}

static int
s_digest_child(void *arg, const gs_digest_node_t *n)
{
    s_digest_ctx_t *c = arg;
    s_digest_node_pack(c->out, GS_F_DIGEST_CHILDREN, n);
    return 0;
}

static int
s_digest_record(void *arg, const gs_digest_record_t *r)
{
    s_digest_ctx_t *c = arg;
    Gridsync__V1__DigestRecord m = GRIDSYNC__V1__DIGEST_RECORD__INIT;
    m.kind = (Gridsync__V1__RecordKind) r->kind;
    m.record_key = (char *) r->record_key;
    m.version = r->version;
    m.status = (Gridsync__V1__RecordStatus) r->status;
    m.content_hash.data = (uint8_t *) r->hash;
    m.content_hash.len = sizeof r->hash;
    gs_wbuf_message_field(c->out, GS_F_DIGEST_RECORDS, &m.base);
    return 0;
}

/* A digest request into body: 0, or a store error (the caller answers). */
static int
s_digest(const gs_serve_t *s, const Gridsync__V1__DigestRequest *rq, gs_wbuf_t *body)
{
    s_digest_ctx_t c = { body };
    gs_digest_query_t q;
    memset(&q, 0, sizeof q);
    q.prefix = rq->prefix;
    q.arg = &c;
    if (strlen(rq->prefix) == GS_GRID_LEN)
        q.record_fn = s_digest_record;
    else
        q.child_fn = s_digest_child;
    q.cursor = rq->cursor.data;
    q.cursor_len = rq->cursor.len;
    q.limit = rq->limit && rq->limit < GS_SERVE_DIGEST_RECORDS ? rq->limit
                                                              : GS_SERVE_DIGEST_RECORDS;
    gs_digest_result_t r;
    int rc = gs_store_digest(s->store, &q, &r);
    if (rc)
        return rc;
    s_digest_node_pack(body, GS_F_DIGEST_NODE, &r.node);
    if (r.next_cursor)
        gs_wbuf_bytes_field(body, GS_F_DIGEST_NEXT_CURSOR, r.next_cursor, r.next_cursor_len, 0);
    free(r.next_cursor);
    gs_wbuf_uint_field(body, GS_F_DIGEST_HEAD_SEQ, r.head_seq);
    uint64_t epoch = 0;
    gs_store_epoch(s->store, &epoch);
    gs_wbuf_uint_field(body, GS_F_DIGEST_STORE_EPOCH, epoch);
    return 0;
}

/* The store's incident category table into body (an
 * IncidentCategoriesReply): 0, or a store error (the caller answers). */
static int
s_incident_categories(const gs_serve_t *s, gs_wbuf_t *body)
{
    gs_incident_table_t *t = malloc(sizeof *t);
    if (!t)
        return GS_ENOMEM;
    int configured = 0;
    int rc = gs_store_incident_table(s->store, t, &configured);
    for (size_t i = 0; rc == 0 && i < t->n; i++) {
        gs_incident_category_t *c = &t->cats[i];
        Gridsync__V1__IncidentCategory m = GRIDSYNC__V1__INCIDENT_CATEGORY__INIT;
        m.code = c->code;
        m.name = c->name;
        m.close_hours = c->close_hours;
        m.n_close_hours = 4;
        m.handle_hours = c->handle_hours;
        m.n_handle_hours = 4;
        m.retired = c->retired;
        gs_wbuf_message_field(body, GS_F_CATEGORIES_CATEGORIES, &m.base);
    }
    if (rc == 0 && configured)
        gs_wbuf_uint_field(body, GS_F_CATEGORIES_CONFIGURED, 1);
    free(t);
    return rc;
}

/* Stats and grids take any prefix of up to 15 digits, not only a level
 * boundary ("" = all). 1 when prefix is one; else the BAD_REQUEST reply
 * is in reply and 0. */
static int
s_admin_prefix_ok(const gs_serve_t *s, gs_wbuf_t *reply, uint64_t request_id,
                  const char *prefix)
{
    size_t n = 0;
    while (prefix[n] >= '0' && prefix[n] <= '9')
        n++;
    if (prefix[n] == 0 && n <= GS_GRID_LEN)
        return 1;
    gs_serve_error(s, reply, 1, request_id, GRIDSYNC__V1__REASON__REASON_BAD_REQUEST,
                   "prefix must be up to 15 digits");
    return 0;
}

void
gs_serve_admin(const gs_serve_t *s, gs_serve_scratch_t *x, const Gridsync__V1__AdminRequest *rq,
               int64_t now_ms, gs_wbuf_t *reply)
{
    gs_wbuf_reset(reply);
    gs_wbuf_t *body = &x->body;
    gs_wbuf_reset(body);
    int rc = 0, field = 0;
    atomic_fetch_add(&s->metrics->admin_requests, 1);
    switch (rq->body_case) {
    case GRIDSYNC__V1__ADMIN_REQUEST__BODY_STATS: {
        const char *prefix = rq->stats->prefix;
        if (!s_admin_prefix_ok(s, reply, rq->request_id, prefix))
            return;
        gs_wbuf_t cell;
        gs_wbuf_init(&cell);
        s_stats_ctx_t c = { body, &cell };
        rc = gs_store_cells(s->store, prefix, s_stats_cell, &c);
        gs_wbuf_deinit(&cell);
        uint64_t head = 0;
        gs_store_head(s->store, &head);
        gs_wbuf_uint_field(body, GS_F_STATS_HEAD_SEQ, head);
        field = GS_F_ADMIN_REPLY_STATS;
        break;
    }
    case GRIDSYNC__V1__ADMIN_REQUEST__BODY_GET: {
        int kind = rq->get->kind;
        if (kind != GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_UNSPECIFIED &&
            kind != GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD &&
            kind != GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_RENTAL &&
            kind != GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_ORGANISATION &&
            kind != GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT) {
            char msg[GS_MSG_MAX];
            snprintf(msg, sizeof msg,
                     "unknown record kind %d (0 any, 1 household, 2 rental, 3 organisation, "
                     "4 incident)", kind);
            gs_serve_error(s, reply, 1, rq->request_id,
                           GRIDSYNC__V1__REASON__REASON_BAD_REQUEST, msg);
            return;
        }
        s_get_ctx_t c = { body, 0 };
        rc = gs_store_get(s->store, rq->get->kind, rq->get->record_key, s_get_record, &c);
        if (rc == GS_ENOTFOUND) {
            char msg[GS_MSG_MAX];
            snprintf(msg, sizeof msg, "no record with id '%.64s'", rq->get->record_key);
            gs_serve_error(s, reply, 1, rq->request_id,
                           GRIDSYNC__V1__REASON__REASON_NOT_FOUND, msg);
            return;
        }
        field = GS_F_ADMIN_REPLY_RECORD;
        break;
    }
    case GRIDSYNC__V1__ADMIN_REQUEST__BODY_DEVICES:
        rc = gs_store_devices(s->store, s_device_add, body);
        field = GS_F_ADMIN_REPLY_DEVICES;
        break;
    case GRIDSYNC__V1__ADMIN_REQUEST__BODY_GRIDS:
        if (!s_admin_prefix_ok(s, reply, rq->request_id, rq->grids->prefix))
            return;
        rc = gs_store_grids(s->store, rq->grids->prefix, s_grid_add, body);
        field = GS_F_ADMIN_REPLY_GRIDS;
        break;
    case GRIDSYNC__V1__ADMIN_REQUEST__BODY_HEALTH: {
        gs_store_info_t info;
        memset(&info, 0, sizeof info);
        rc = gs_store_info(s->store, &info);
        Gridsync__V1__HealthReply h = GRIDSYNC__V1__HEALTH_REPLY__INIT;
        h.version = GS_VERSION;
        h.head_seq = info.head_seq;
        h.records = info.records;
        h.map_size = info.map_size;
        h.map_used = info.map_used;
        h.uptime_ms = now_ms - s->metrics->started_ms;
        h.feed_subscriptions = s->subscriptions ? (uint32_t) atomic_load(s->subscriptions) : 0;
        gs_store_epoch(s->store, &h.store_epoch);
        gs_wbuf_uint_field(reply, GS_F_ADMIN_REPLY_REQUEST_ID, rq->request_id);
        gs_wbuf_message_field(reply, GS_F_ADMIN_REPLY_HEALTH, &h.base);
        return;
    }
    case GRIDSYNC__V1__ADMIN_REQUEST__BODY_DIGEST:
        rc = s_digest(s, rq->digest, body);
        if (rc == GS_EINVAL || rc == GS_EVERSION) {
            /* the store says what is wrong: a prefix off a level, a damaged
             * cursor, or digests not built yet */
            char msg[GS_MSG_MAX];
            snprintf(msg, sizeof msg, "digest: %s", gs_store_errdetail());
            gs_serve_error(s, reply, 1, rq->request_id,
                           rc == GS_EINVAL ? GRIDSYNC__V1__REASON__REASON_BAD_REQUEST
                                           : GRIDSYNC__V1__REASON__REASON_INTERNAL,
                           msg);
            return;
        }
        field = GS_F_ADMIN_REPLY_DIGEST;
        break;
    case GRIDSYNC__V1__ADMIN_REQUEST__BODY_INCIDENT_CATEGORIES:
        rc = s_incident_categories(s, body);
        field = GS_F_ADMIN_REPLY_INCIDENT_CATEGORIES;
        break;
    default:
        gs_serve_error(s, reply, 1, rq->request_id, GRIDSYNC__V1__REASON__REASON_UNKNOWN_TYPE,
                       "admin request carries no known body");
        return;
    }
    if (rc < 0) {
        /* the store refuses an argument (GS_EINVAL) the checks above let
         * through: the request's fault, not one to retry */
        char msg[GS_MSG_MAX];
        snprintf(msg, sizeof msg, "store: %s", gs_store_strerror(rc));
        gs_serve_error(s, reply, 1, rq->request_id,
                       rc == GS_EINVAL ? GRIDSYNC__V1__REASON__REASON_BAD_REQUEST
                                       : GRIDSYNC__V1__REASON__REASON_INTERNAL,
                       msg);
        return;
    }
    gs_wbuf_uint_field(reply, GS_F_ADMIN_REPLY_REQUEST_ID, rq->request_id);
    gs_wbuf_bytes_field(reply, (uint32_t) field, body->data, body->len, 1);
    if (body->failed)
        reply->failed = 1;
}

/* Request{incident_categories{}}: the body the admin endpoint's
 * incident_categories carries, as Reply.incident_categories. */
static void
s_categories(const gs_serve_t *s, gs_serve_scratch_t *x, uint64_t request_id,
             gs_wbuf_t *reply)
{
    gs_wbuf_reset(reply);
    gs_wbuf_reset(&x->body);
    int rc = s_incident_categories(s, &x->body);
    if (rc) {
        char msg[GS_MSG_MAX];
        snprintf(msg, sizeof msg, "the incident category table could not be read (%s); "
                 "retry later", gs_store_strerror(rc));
        gs_serve_error(s, reply, 0, request_id, GRIDSYNC__V1__REASON__REASON_INTERNAL, msg);
        return;
    }
    gs_wbuf_uint_field(reply, GS_F_REPLY_REQUEST_ID, request_id);
    gs_wbuf_bytes_field(reply, GS_F_REPLY_INCIDENT_CATEGORIES, x->body.data, x->body.len, 1);
    if (x->body.failed)
        reply->failed = 1;
}

void
gs_serve_read(const gs_serve_t *s, gs_serve_scratch_t *x, const Gridsync__V1__Request *req,
              const Gridsync__V1__AdminRequest *admin, int64_t now_ms, gs_wbuf_t *reply)
{
    gs_serve_read_as(s, x, req, admin, NULL, now_ms, reply);
}

void
gs_serve_read_as(const gs_serve_t *s, gs_serve_scratch_t *x, const Gridsync__V1__Request *req,
                 const Gridsync__V1__AdminRequest *admin, const Gridsync__V1__Device *reader,
                 int64_t now_ms, gs_wbuf_t *reply)
{
    if (admin)
        gs_serve_admin(s, x, admin, now_ms, reply);
    else if (req->body_case == GRIDSYNC__V1__REQUEST__BODY_SYNC)
        s_sync(s, x, req->request_id, req->sync, reader, reply);
    else if (req->body_case == GRIDSYNC__V1__REQUEST__BODY_INCIDENT_CATEGORIES)
        s_categories(s, x, req->request_id, reply);
    else
        s_snapshot(s, x, req->request_id, req->snapshot, reader, reply);
    if (reply->failed)
        gs_serve_error(s, reply, admin != NULL, admin ? admin->request_id : req->request_id,
                       GRIDSYNC__V1__REASON__REASON_INTERNAL, "out of memory; retry later");
}

/* ---- replies built on the frontend and the writer --------------------------- */

void
gs_serve_ping(const gs_serve_t *s, uint64_t request_id, const Gridsync__V1__Device *dev,
              char **prefixes, size_t n_prefixes, int scope_all, int64_t now_ms,
              gs_wbuf_t *reply)
{
    atomic_fetch_add(&s->metrics->ping_requests, 1);
    Gridsync__V1__PingReply p = GRIDSYNC__V1__PING_REPLY__INIT;
    p.registered = dev != NULL;
    if (dev) {
        p.device_id = dev->device_id;
        p.role = dev->role;
        p.status = dev->status;
    }
    p.prefixes = scope_all ? NULL : prefixes;
    p.n_prefixes = scope_all ? 0 : n_prefixes;
    p.scope_all = scope_all != 0;
    p.version = GS_VERSION;
    gs_store_epoch(s->store, &p.store_epoch);
    gs_store_head(s->store, &p.head_seq);
    p.broker_time = now_ms;
    p.secure = s->secure != 0;
    gs_wbuf_reset(reply);
    gs_wbuf_uint_field(reply, GS_F_REPLY_REQUEST_ID, request_id);
    gs_wbuf_message_field(reply, GS_F_REPLY_PING, &p.base);
    if (reply->failed)
        gs_serve_error(s, reply, 0, request_id, GRIDSYNC__V1__REASON__REASON_BUSY,
                       "out of memory; retry later");
}

void
gs_serve_ack(const gs_serve_t *s, uint64_t request_id, const gs_upload_result_t *u,
             gs_wbuf_t *reply)
{
    gs_wbuf_reset(reply);
    gs_wbuf_uint_field(reply, GS_F_REPLY_REQUEST_ID, request_id);
    gs_wbuf_bytes_field(reply, GS_F_REPLY_ACK, u->ack, u->ack_len, 1);
    if (u->replayed)
        atomic_fetch_add(&s->metrics->uploads_replayed, 1);
    else
        atomic_fetch_add(&s->metrics->uploads_acked, 1);
    for (int k = GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED; k < GS_RESULT_STATUSES; k++)
        atomic_fetch_add(&s->metrics->records[k], u->counts[k]);
}

void
gs_serve_commit_error(const gs_serve_t *s, uint64_t request_id, int rc, gs_wbuf_t *reply)
{
    int reason = rc == GS_EFULL ? GRIDSYNC__V1__REASON__REASON_STORAGE_FULL
                                : GRIDSYNC__V1__REASON__REASON_INTERNAL;
    const char *msg = rc == GS_EFULL ? "storage full: nothing was stored; retry later"
                                     : "the broker could not store this upload; retry later";
    gs_serve_error(s, reply, 0, request_id, reason, msg);
}

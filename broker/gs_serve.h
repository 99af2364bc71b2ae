/*
 * gs_serve: the broker's request handlers, as functions of (store,
 * request) -> reply bytes. No sockets and no threads of their own: the
 * frontend answers pings with them, the readers sync, snapshot, incident
 * category and admin requests, the writer packs its acks; a test calls
 * them directly on a store in a temporary directory.
 *
 * Every reply is a packed gridsync.v1.Reply (or AdminReply) written into
 * the caller's gs_wbuf_t, which is reset first. Replies that carry stored
 * bytes (events, records, acks) splice them in with gs_wire rather than
 * unpacking and packing them again, so the field numbers they are written
 * with are named below; test_serve checks each against the generated
 * descriptors.
 *
 * Every error reply of the broker, from any thread, is packed by
 * gs_serve_error, which also counts it in
 * gridsync_request_errors_total{reason}: none goes uncounted.
 *
 * Thread safety: any thread, concurrently; the store's read calls are
 * thread-safe (gs_store.h) and the counters are atomics.
 */
#ifndef GS_SERVE_H
#define GS_SERVE_H

#include <stdatomic.h>
#include <stdint.h>

#include "gridsync.pb-c.h"
#include "gs_metrics.h"
#include "gs_store.h"
#include "gs_wire.h"

/* Field numbers of gridsync.proto that replies are written with. */
enum {
    GS_F_REPLY_REQUEST_ID = 1,          /* Reply.request_id */
    GS_F_REPLY_ACK = 2,                 /* Reply.ack */
    GS_F_REPLY_SYNC = 3,                /* Reply.sync */
    GS_F_REPLY_SNAPSHOT = 4,            /* Reply.snapshot */
    GS_F_REPLY_ERROR = 5,               /* Reply.error */
    GS_F_REPLY_PING = 6,                /* Reply.ping */
    GS_F_REPLY_INCIDENT_CATEGORIES = 7, /* Reply.incident_categories */
    GS_F_ADMIN_REPLY_REQUEST_ID = 1,    /* AdminReply.request_id */
    GS_F_ADMIN_REPLY_STATS = 2,         /* AdminReply.stats */
    GS_F_ADMIN_REPLY_RECORD = 3,        /* AdminReply.record */
    GS_F_ADMIN_REPLY_DEVICES = 4,       /* AdminReply.devices */
    GS_F_ADMIN_REPLY_GRIDS = 5,         /* AdminReply.grids */
    GS_F_ADMIN_REPLY_HEALTH = 6,        /* AdminReply.health */
    GS_F_ADMIN_REPLY_ERROR = 7,         /* AdminReply.error */
    GS_F_ADMIN_REPLY_DIGEST = 8,        /* AdminReply.digest */
    GS_F_ADMIN_REPLY_INCIDENT_CATEGORIES = 9, /* AdminReply.incident_categories */
    GS_F_CATEGORIES_CATEGORIES = 1,     /* IncidentCategoriesReply.categories */
    GS_F_CATEGORIES_CONFIGURED = 2,     /* IncidentCategoriesReply.configured */
    GS_F_DIGEST_NODE = 1,               /* DigestReply.node */
    GS_F_DIGEST_CHILDREN = 2,           /* DigestReply.children */
    GS_F_DIGEST_RECORDS = 3,            /* DigestReply.records */
    GS_F_DIGEST_NEXT_CURSOR = 4,        /* DigestReply.next_cursor */
    GS_F_DIGEST_HEAD_SEQ = 5,           /* DigestReply.head_seq */
    GS_F_DIGEST_STORE_EPOCH = 20,       /* DigestReply.store_epoch */
    GS_F_SYNC_EVENTS = 1,               /* SyncResponse.events */
    GS_F_SYNC_NEXT_SEQ = 2,             /* SyncResponse.next_seq */
    GS_F_SYNC_HEAD_SEQ = 3,             /* SyncResponse.head_seq */
    GS_F_SYNC_STORE_EPOCH = 20,         /* SyncResponse.store_epoch */
    GS_F_SNAPSHOT_ENTRIES = 1,          /* SnapshotResponse.entries */
    GS_F_SNAPSHOT_SEQ = 2,              /* SnapshotResponse.snapshot_seq */
    GS_F_SNAPSHOT_NEXT_CURSOR = 3,      /* SnapshotResponse.next_cursor */
    GS_F_SNAPSHOT_STORE_EPOCH = 20,     /* SnapshotResponse.store_epoch */
    GS_F_ENTRY_GRID_CODE = 1,           /* SnapshotEntry.grid_code */
    GS_F_ENTRY_KIND = 2,                /* SnapshotEntry.kind */
    GS_F_ENTRY_RECORD_KEY = 3,          /* SnapshotEntry.record_key */
    GS_F_ENTRY_VERSION = 4,             /* SnapshotEntry.version */
    GS_F_ENTRY_SEQ = 5,                 /* SnapshotEntry.seq */
    GS_F_ENTRY_RECORD = 6,              /* SnapshotEntry.record */
    GS_F_CELL_GRID_CODE = 1,            /* CellStats.grid_code */
    GS_F_CELL_HOUSEHOLDS = 2,           /* CellStats.households */
    GS_F_CELL_PERSONS = 3,              /* CellStats.persons */
    GS_F_CELL_RENTALS = 4,              /* CellStats.rentals */
    GS_F_CELL_TENANTS = 5,              /* CellStats.tenants */
    GS_F_CELL_VOIDED = 6,               /* CellStats.voided */
    GS_F_CELL_LAST_SEQ = 7,             /* CellStats.last_seq */
    GS_F_CELL_LAST_UPDATE = 8,          /* CellStats.last_update */
    GS_F_CELL_ORGANISATIONS = 9,        /* CellStats.organisations */
    GS_F_CELL_EMPLOYEES = 10,           /* CellStats.employees */
    GS_F_CELL_INCIDENTS = 11,           /* CellStats.incidents */
    GS_F_STATS_CELLS = 1,               /* StatsReply.cells */
    GS_F_STATS_HEAD_SEQ = 2,            /* StatsReply.head_seq */
    GS_F_DEVICES_DEVICES = 1,           /* DeviceListReply.devices */
    GS_F_GRIDS_GRIDS = 1,               /* GridListReply.grids */
    GS_F_FEED_EVENT = 1,                /* FeedMessage.event */
    GS_F_FEED_HEARTBEAT = 2,            /* FeedMessage.heartbeat */
    GS_F_FEED_INCIDENT_PREV = 3,        /* FeedMessage.incident_prev_seq */
};

#define GS_SERVE_MAX_PREFIXES 64         /* prefixes in one sync/snapshot request */
#define GS_SERVE_REPLY_BUDGET (4u << 20) /* bytes of events or records per reply */
#define GS_SERVE_DIGEST_RECORDS 1000     /* a cell's digest records per admin reply */

/* Buffers a caller keeps between calls, so that a reader thread in its
 * steady state allocates nothing: an admin reply's body while it is built
 * (sync and snapshot pages, their records stripped of restricted data
 * included, are built in the reply itself). gs_serve_scratch_init before
 * the first call, gs_serve_scratch_deinit after the last. */
typedef struct gs_serve_scratch {
    gs_wbuf_t body;             /* an admin reply's body */
} gs_serve_scratch_t;

void gs_serve_scratch_init(gs_serve_scratch_t *x);
void gs_serve_scratch_deinit(gs_serve_scratch_t *x);

/* What the handlers read besides the request. Filled once (gs_broker_new
 * fills the broker's), read-only afterwards. */
typedef struct gs_serve {
    gs_store_t *store;              /* read side: sync, snapshots, admin, ping */
    gs_metrics_t *metrics;          /* counts requests served and every error */
    const atomic_int *subscriptions;/* live-feed prefixes, for health; NULL = 0 */
    int64_t sync_max_events;        /* sync-max-events: the page bound */
    int64_t snapshot_max_records;   /* snapshot-max-records: the page bound */
    int feed_restricted;            /* feed-restricted: 0 always drops Person.restricted */
    int secure;                     /* CURVE on (pings say so) */
} gs_serve_t;

/* The error reply for request_id: Reply.error (admin 0) or
 * AdminReply.error (admin 1) with reason and msg, counted by reason. */
void gs_serve_error(const gs_serve_t *s, gs_wbuf_t *reply, int admin, uint64_t request_id,
                    int reason, const char *msg);

/* The reply to a sync: a page of the change log under rq's prefixes after
 * rq->since_seq, at most sync-max-events events (fewer than rq->limit when
 * that is smaller) and about GS_SERVE_REPLY_BUDGET bytes. The prefixes are
 * checked (1 to GS_SERVE_MAX_PREFIXES, each at a level); whether the
 * sender may read them is the caller's (gs_authz). Errors: BAD_REQUEST or
 * a prefix reason, INTERNAL when the log cannot be read. */
void gs_serve_sync(const gs_serve_t *s, gs_serve_scratch_t *x, uint64_t request_id,
                   const Gridsync__V1__SyncRequest *rq, gs_wbuf_t *reply);

/* The reply to a snapshot: a page of the current records under rq's
 * prefixes from rq->cursor, with the same checks as a sync. Errors as a
 * sync's, and BAD_REQUEST for a cursor that does not fit the prefixes. */
void gs_serve_snapshot(const gs_serve_t *s, gs_serve_scratch_t *x, uint64_t request_id,
                       const Gridsync__V1__SnapshotRequest *rq, gs_wbuf_t *reply);

/* The reply to an admin request (stats, get, devices, grids, health,
 * digest); now_ms (Unix ms) dates the health reply's uptime. A digest is
 * read in one read transaction (gs_store_digest): the prefix's digest and
 * count, its children, or a cell's records, at most
 * GS_SERVE_DIGEST_RECORDS (or the request's smaller limit) per reply.
 * Errors: BAD_REQUEST (a stats prefix that is not up to 15 digits, a
 * digest prefix not at a level boundary, a damaged digest cursor),
 * NOT_FOUND (get), UNKNOWN_TYPE (no body), INTERNAL (the store, or a
 * store whose digests are not built yet, with a message saying so). */
void gs_serve_admin(const gs_serve_t *s, gs_serve_scratch_t *x,
                    const Gridsync__V1__AdminRequest *rq, int64_t now_ms, gs_wbuf_t *reply);

/* The reply to a sync, snapshot or incident_categories request (req) or
 * an admin request (admin, when not NULL), as the readers serve them. An
 * incident_categories request is answered with the IncidentCategoriesReply
 * the admin endpoint's incident_categories gives (one builder for both),
 * read in one read transaction; INTERNAL when the store cannot read it.
 * When memory runs out while the reply is built, the reply is an INTERNAL
 * error saying so. (The handlers above leave reply->failed set then, and
 * its contents invalid.) */
void gs_serve_read(const gs_serve_t *s, gs_serve_scratch_t *x,
                   const Gridsync__V1__Request *req, const Gridsync__V1__AdminRequest *admin,
                   int64_t now_ms, gs_wbuf_t *reply);

/* gs_serve_read for the sender whose registry entry is reader (NULL: no
 * filter, as gs_serve_read; an unregistered sender in --insecure-dev): a
 * DEPARTMENT gets only the events and records gs_authz_record lets it read
 * (the incidents of its categories). A skipped event moves next_seq on
 * like an event of another prefix, so its sync stays resumable and exactly
 * once. */
void gs_serve_read_as(const gs_serve_t *s, gs_serve_scratch_t *x,
                      const Gridsync__V1__Request *req,
                      const Gridsync__V1__AdminRequest *admin,
                      const Gridsync__V1__Device *reader, int64_t now_ms, gs_wbuf_t *reply);

/* The reply to a ping, from what authorisation found: dev is the sender's
 * registry entry (NULL: unregistered, development mode only), prefixes the
 * ones it may touch, scope_all whether it may touch every grid; now_ms is
 * the broker's clock it reports. A BUSY error when memory runs out. */
void gs_serve_ping(const gs_serve_t *s, uint64_t request_id, const Gridsync__V1__Device *dev,
                   char **prefixes, size_t n_prefixes, int scope_all, int64_t now_ms,
                   gs_wbuf_t *reply);

/* The reply carrying an upload's Ack as the store packed it, counted as
 * acked or replayed and by record status. */
void gs_serve_ack(const gs_serve_t *s, uint64_t request_id, const gs_upload_result_t *u,
                  gs_wbuf_t *reply);

/* The error reply for an upload whose commit failed with store code rc:
 * STORAGE_FULL for GS_EFULL, INTERNAL otherwise; both say to retry. */
void gs_serve_commit_error(const gs_serve_t *s, uint64_t request_id, int rc,
                           gs_wbuf_t *reply);

#endif

/*
 * gs_client: the small C API a handheld app or a district system links to
 * talk to gridsyncd. Every gridsync tool uses it; nothing else speaks the
 * protocol (docs/protocol.md).
 *
 * Two objects:
 *   gs_client_t  request/reply on the upload endpoint (DEALER): uploads with
 *                Lazy Pirate retries, sync (catch-up) and snapshot pages
 *                (this header, gs_client.c).
 *   gs_sub_t     a district subscriber: live feed (SUB) plus the sync
 *                service; delivers each event of its prefixes exactly once and
 *                in order, detecting lost live messages and repairing them,
 *                with an optional durable checkpoint file (gs_sub.h, gs_sub.c;
 *                the file itself: gs_checkpoint.h).
 *
 * Errors: functions return 0 or a negative GS_CLIENT_E* code; a server
 * error reply gives GS_CLIENT_ESERVER with the reason and message in
 * gs_client_error_t.
 *
 * Connections: every socket is watched with a ZeroMQ socket monitor. A
 * handshake the broker refuses (key unknown or revoked, or the two sides in
 * different security modes) ends the request at once with GS_CLIENT_EAUTH
 * and a message naming the cause, instead of a wait for replies that cannot
 * come; a timeout's message says how far the connection got (no TCP
 * connection, connected but no handshake, or no reply). No call blocks
 * longer than its timeouts: sends wait for the socket only until the
 * attempt's deadline, and a cancel flag (the opts' cancel, set from a
 * signal handler or another thread) ends any wait within 100 ms with
 * GS_CLIENT_ECANCELLED.
 *
 * Threads: an object belongs to one thread at a time.
 */
#ifndef GS_CLIENT_H
#define GS_CLIENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "gridsync.pb-c.h"
#include "gs_arena.h"

enum {
    GS_CLIENT_OK = 0,
    GS_CLIENT_ETIMEOUT = -2001,   /* no reply after every retry */
    GS_CLIENT_ESERVER = -2002,    /* the broker answered with an Error */
    GS_CLIENT_EPROTO = -2003,     /* the reply did not decode or did not match */
    GS_CLIENT_EINVAL = -2004,     /* bad argument */
    GS_CLIENT_ENOMEM = -2005,
    GS_CLIENT_EIO = -2006,        /* socket or checkpoint file failure */
    GS_CLIENT_EGAP = -2007,       /* feed gap that the sync service could not fill */
    GS_CLIENT_ELINEAGE = -2008,   /* the broker's store was restored or replaced: the */
                                  /* positions followed are void; re-baseline */
    GS_CLIENT_EAUTH = -2010,      /* handshake refused: key not enrolled or revoked, or
                                   * the client and broker differ in security mode */
    GS_CLIENT_ECANCELLED = -2011  /* the caller's cancel flag was set */
};

const char *gs_client_strerror(int err);

typedef struct gs_client_error {
    int reason;                 /* gridsync.v1.Reason from the broker, or 0 */
    char message[256];          /* the broker's message, or ours */
} gs_client_error_t;

/* What to show a person for error rc: the client library's own message in
 * err when it wrote one (it is complete: a refused handshake, a timeout
 * and how far the connection got), else gs_client_strerror(rc) followed by
 * the broker's message, if any. Writes buf and returns it. err may be NULL. */
const char *gs_client_errtext(int rc, const gs_client_error_t *err, char *buf, size_t size);

/* CURVE keys, Z85 text (40 characters). All three set = CURVE; all empty
 * = plaintext (only a broker in --insecure-dev mode accepts that). */
typedef struct gs_curve_keys {
    char server_public[41];     /* the broker's public key */
    char public_key[41];        /* this client's public key */
    char secret_key[41];        /* this client's secret key */
} gs_curve_keys_t;

/* Read keys from a provisioning bundle as written by `gridctl devices
 * enrol` (lines "name = value": server_public, public_key, secret_key;
 * other lines ignored). Returns 0 or GS_CLIENT_EIO / GS_CLIENT_EINVAL. */
int gs_curve_keys_load(gs_curve_keys_t *keys, const char *path);

/* What else a provisioning bundle names: the device id and the endpoints
 * (lines device_id, upload_endpoint and feed_endpoint, as `gridctl devices
 * enrol --endpoint/--feed-endpoint` writes them); a field the bundle lacks
 * is "". Returns 0 or GS_CLIENT_EIO (unreadable) / GS_CLIENT_EINVAL (a
 * value too long). */
typedef struct gs_bundle_info {
    char device_id[65];         /* the registry id the key belongs to */
    char upload_endpoint[256];  /* the broker's upload/sync endpoint */
    char feed_endpoint[256];    /* its live feed endpoint */
} gs_bundle_info_t;

int gs_bundle_info_load(gs_bundle_info_t *info, const char *path);

typedef struct gs_client_opts {
    int timeout_ms;             /* wait for one reply (default 3000) */
    int retries;                /* resends after a timeout (default 5) */
    int64_t max_reply_bytes;    /* largest reply accepted (default 64 MiB) */
    gs_curve_keys_t curve;      /* CURVE keys (all empty = plaintext) */
    const atomic_int *cancel;   /* when set and nonzero, every wait ends with
                                 * GS_CLIENT_ECANCELLED (NULL = none) */
} gs_client_opts_t;

void gs_client_opts_init(gs_client_opts_t *o);

typedef struct gs_client gs_client_t;

/* Connect to the broker's upload endpoint (e.g. "tcp://127.0.0.1:7510").
 * NULL on failure. opts may be NULL for defaults. */
gs_client_t *gs_client_new(const char *endpoint, const gs_client_opts_t *opts);
void gs_client_destroy(gs_client_t **self_p);

/* Upload with Lazy Pirate: send, wait timeout_ms, and on silence reconnect
 * and resend the same bytes (same upload_id), up to retries times. The
 * broker's idempotency makes resending safe. Retry-later errors from the
 * broker (storage full, shutting down, busy, internal) are also retried.
 * On 0, *ack is the broker's Ack (free with gridsync__v1__ack__free_unpacked
 * (ack, NULL)). */
int gs_client_upload(gs_client_t *self, const Gridsync__V1__Upload *up,
                     Gridsync__V1__Ack **ack, gs_client_error_t *err);

/* Events for prefixes after since, at most limit (0 = broker default). */
int gs_client_sync(gs_client_t *self, const char *const *prefixes, size_t n,
                   uint64_t since, uint32_t limit, int omit_restricted,
                   Gridsync__V1__SyncResponse **resp, gs_client_error_t *err);

/* gs_client_sync with the reply unpacked into arena: no free per event or
 * string, and no free_unpacked; *resp and everything in it live until the
 * caller resets or destroys the arena (replies to earlier attempts that
 * arrive meanwhile are unpacked there too). For a reader that is done with
 * a page before it asks for the next, as a catch-up that applies each page
 * is: decoding a page costs about a third of what malloc'd events do.
 * Errors as gs_client_sync. Thread: the client's (and the arena's). */
int gs_client_sync_in(gs_client_t *self, const char *const *prefixes, size_t n,
                      uint64_t since, uint32_t limit, int omit_restricted, gs_arena_t *arena,
                      Gridsync__V1__SyncResponse **resp, gs_client_error_t *err);

/* What gs_client_sync_pages hands over: one page, valid until the call
 * returns. A non-zero return stops the walk (gs_client_sync_pages returns
 * it); use positive values, apart from the GS_CLIENT_* codes. */
typedef int gs_client_page_fn(void *arg, const Gridsync__V1__SyncResponse *page);

/* Catch up: sync pages of prefixes after since, each handed to fn in
 * order, until a page's next_seq reaches its head_seq (docs/protocol.md,
 * "Sync": the head as of that page) or fn returns non-zero. While fn works
 * on a page, the request for the next one (since_seq = the page's
 * next_seq, read before the page is decoded) is already with the broker,
 * so the broker reads the next page while the caller applies this one.
 * Still one request in flight at a time, each resent on silence as
 * gs_client_sync does; a walk that fn stops leaves one request unanswered,
 * whose reply the next call on this client counts as stale. Pages are
 * decoded into arena, reset before each; with arena NULL each page is
 * malloc'd and freed after fn returns, and fn may take events out of it
 * to keep (set page->events[i] to NULL; free each later with
 * gridsync__v1__change_event__free_unpacked(ev, NULL)), as gs_sub's
 * catch-up does. *next_seq (when not NULL) is the
 * next_seq of the last page fn accepted (since before the first). Check
 * each page's store_epoch and head_seq in fn as after gs_client_sync.
 * Errors as gs_client_sync, GS_CLIENT_EPROTO for a reply that is not a
 * sync page, or fn's return. Thread: the client's. */
int gs_client_sync_pages(gs_client_t *self, const char *const *prefixes, size_t n,
                         uint64_t since, uint32_t limit, int omit_restricted,
                         gs_arena_t *arena, gs_client_page_fn *fn, void *arg,
                         uint64_t *next_seq, gs_client_error_t *err);

/* The catch-up of gs_client_sync_pages as an object, for a reader that
 * takes a page at a time between other work (gs_sub's catch-up): a walk
 * over sync pages of prefixes after since, with the request for the next
 * page sent before this one is handed over. gs_client_walk_new copies
 * prefixes and sends the first request. gs_client_walk_next waits for the
 * page asked for and, unless it reaches its head_seq (or does not move
 * on), asks for the next one; it returns 0 with *page, decoded into arena
 * (reset first; valid until its next reset) or, with arena NULL, malloc'd
 * (free with gridsync__v1__sync_response__free_unpacked(page, NULL)), 1
 * when the walk is over (the last page was handed over), or an error as
 * gs_client_sync (GS_CLIENT_EPROTO for a reply that is not a sync page;
 * after an error start a new walk from the last page taken). While a walk
 * has a request out, make no other request on its client: that request's
 * wait would drop the walk's reply as stale, and the walk would wait a
 * timeout for its resend. gs_client_walk_destroy may leave a request
 * unanswered, whose reply the next call on the client counts as stale.
 * Thread: the client's. */
typedef struct gs_client_walk gs_client_walk_t;
int gs_client_walk_new(gs_client_t *self, const char *const *prefixes, size_t n,
                       uint64_t since, uint32_t limit, int omit_restricted,
                       gs_client_walk_t **walk);
int gs_client_walk_next(gs_client_walk_t *walk, gs_arena_t *arena,
                        Gridsync__V1__SyncResponse **page, gs_client_error_t *err);
void gs_client_walk_destroy(gs_client_walk_t **walk_p);

/* One snapshot page; cursor NULL/0 for the first. */
int gs_client_snapshot(gs_client_t *self, const char *const *prefixes,
                       size_t n, const uint8_t *cursor, size_t cursor_len,
                       uint32_t limit, Gridsync__V1__SnapshotResponse **resp,
                       gs_client_error_t *err);

/* gs_client_snapshot with the reply unpacked into arena, as
 * gs_client_sync_in does: *resp and everything in it (each entry's record
 * decoded in full) live until the caller resets or destroys the arena. A
 * page of a grid's few hundred records is a few thousand allocations, each
 * a bump here instead of a malloc and, later, a free. Errors as
 * gs_client_snapshot. Thread: the client's (and the arena's). */
int gs_client_snapshot_in(gs_client_t *self, const char *const *prefixes, size_t n,
                          const uint8_t *cursor, size_t cursor_len, uint32_t limit,
                          gs_arena_t *arena, Gridsync__V1__SnapshotResponse **resp,
                          gs_client_error_t *err);

/* Ask the broker who it takes this client's key for (docs/protocol.md,
 * "Ping"): one attempt, no resend, waiting at most the opts' timeout_ms.
 * On 0, *reply is the broker's PingReply (free with
 * gridsync__v1__ping_reply__free_unpacked(reply, NULL)) and *rtt_us (when
 * not NULL) the microseconds from sending to the reply; the first call on a
 * client also counts connecting and the handshake. Errors as
 * gs_client_call: GS_CLIENT_EAUTH when the handshake was refused (key not
 * enrolled or revoked, or the two sides in different security modes),
 * GS_CLIENT_ETIMEOUT with a message saying how far the connection got,
 * GS_CLIENT_ESERVER with the broker's reason (REASON_UNAUTHORISED for a key
 * revoked on a live connection). Thread: the client's. */
int gs_client_ping(gs_client_t *self, Gridsync__V1__PingReply **reply, int64_t *rtt_us,
                   gs_client_error_t *err);

/* Read the broker's incident category table (docs/protocol.md, "Incident
 * categories"): the codes and names this key may report incidents with,
 * their deadlines and whether each is retired. Any enrolled key may ask
 * (DEVICE, DISTRICT, CENTRE, DEPARTMENT, ADMIN); a city replica answers
 * with its own store's table. Resent on timeout (it changes nothing). On 0,
 * *reply is the IncidentCategoriesReply (free with
 * gridsync__v1__incident_categories_reply__free_unpacked(reply, NULL)).
 * Errors as gs_client_call: GS_CLIENT_EAUTH when the handshake was refused,
 * GS_CLIENT_ESERVER with the broker's reason (REASON_UNAUTHORISED for a key
 * revoked on a live connection, REASON_OUT_OF_SCOPE for an entry with no
 * prefixes, REASON_UNKNOWN_TYPE from a broker that predates the request),
 * GS_CLIENT_EPROTO for a reply of another kind. Thread: the client's. */
int gs_client_incident_categories(gs_client_t *self,
                                  Gridsync__V1__IncidentCategoriesReply **reply,
                                  gs_client_error_t *err);

/* Send any packed Request (request_id is set by the client) and get the
 * Reply. Used by the above; exposed for tools and tests. retry: resend on
 * timeout. */
int gs_client_call(gs_client_t *self, Gridsync__V1__Request *req, int retry,
                   Gridsync__V1__Reply **reply, gs_client_error_t *err);

/* Statistics for callers that report them. */
typedef struct gs_client_stats {
    uint64_t requests;          /* requests sent (first attempts) */
    uint64_t resends;           /* Lazy Pirate resends */
    uint64_t stale_replies;     /* replies to earlier attempts, ignored */
} gs_client_stats_t;
void gs_client_stats(const gs_client_t *self, gs_client_stats_t *st);

/* The subscriber (gs_sub_t) has its own header; it is included here so
 * that gs_client.h stays the one header a caller needs. */
#include "gs_sub.h"

#endif

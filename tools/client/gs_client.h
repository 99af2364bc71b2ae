/*
 * gs_client: the small C API a handheld app or a district system links to
 * talk to gridsyncd. Every gridsync tool uses it; nothing else speaks the
 * protocol (docs/protocol.md).
 *
 * Two objects:
 *   gs_client_t  request/reply on the upload endpoint (DEALER): uploads with
 *                Lazy Pirate retries, sync (catch-up) and snapshot pages.
 *   gs_sub_t     a district subscriber: live feed (SUB) plus the sync
 *                service; delivers each event of its prefixes exactly once and
 *                in order, detecting lost live messages and repairing them,
 *                with an optional durable checkpoint file.
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

/* One snapshot page; cursor NULL/0 for the first. */
int gs_client_snapshot(gs_client_t *self, const char *const *prefixes,
                       size_t n, const uint8_t *cursor, size_t cursor_len,
                       uint32_t limit, Gridsync__V1__SnapshotResponse **resp,
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

/* ---- Subscriber ----------------------------------------------------------- */

typedef struct gs_sub gs_sub_t;

typedef struct gs_sub_opts {
    int rcvhwm;                 /* live-feed receive HWM (default 100000) */
    int timeout_ms;             /* sync request timeout (default 3000) */
    uint32_t sync_limit;        /* events per sync request (default 0 = broker's) */
    int omit_restricted;        /* ask for events without Person.restricted */
    gs_curve_keys_t curve;      /* CURVE keys for feed and sync (empty = plaintext) */
    uint64_t epoch;             /* store epoch that since belongs to (0 = take the */
                                /* broker's); a checkpoint's epoch comes first     */
    const atomic_int *cancel;   /* as gs_client_opts_t.cancel, for feed and sync */
    gs_client_error_t *err;     /* when not NULL, gs_sub_new and gs_sub_next write
                                 * the message of a failure here */
} gs_sub_opts_t;

void gs_sub_opts_init(gs_sub_opts_t *o);

/* Follow prefixes (each at a level boundary: 0,2,4,6,9,12 or 15 digits; no
 * prefix may contain another). checkpoint (may be NULL) is a file holding
 * the last seq per prefix and the store epoch they belong to; when it
 * exists, following resumes there, else from since (0 = from the
 * beginning). Subscribes first, then catches up through the sync service
 * (the Clone pattern). A lineage change found during the catch-up (see
 * gs_sub_next) does not fail this call: the first gs_sub_next reports it,
 * so the caller can read gs_sub_lineage. */
gs_sub_t *gs_sub_new(const char *feed_endpoint, const char *sync_endpoint,
                     const char *const *prefixes, size_t n,
                     const char *checkpoint, uint64_t since,
                     const gs_sub_opts_t *opts, int *err);
void gs_sub_destroy(gs_sub_t **self_p);

/* The next event, in seq order per prefix, each exactly once. Waits up to
 * timeout_ms for one (-1 = forever). Returns 0 with *ev set (free with
 * gridsync__v1__change_event__free_unpacked(ev, NULL)), 1 on timeout, or an
 * error: GS_CLIENT_EAUTH when the feed's handshake was refused (ZeroMQ does
 * not reconnect after that, so nothing more can arrive), GS_CLIENT_ECANCELLED
 * when the cancel flag is set. Gaps in the live feed are detected
 * (prev_seq, heartbeats) and repaired from the sync service before anything
 * later is delivered.
 *
 * Lineage: the subscriber follows one store epoch (the checkpoint's, or
 * the broker's at first contact when the checkpoint has none). A sync
 * reply with another non-zero epoch, or with a head_seq below a position
 * of ours, means the broker's store was restored from a backup or
 * replaced, and will hand out our seqs again for other events (a heartbeat
 * that says so is checked with a sync request first: it may just have been
 * read late). From then on this returns GS_CLIENT_ELINEAGE (every call,
 * until gs_sub_rebaseline) and delivers nothing more; gs_sub_lineage says
 * what was seen. A broker with CURVE answers each new subscription with a
 * heartbeat before any event, so a follower that reconnects to a restored
 * store hears its epoch first; in --insecure-dev mode a few live events
 * can still arrive, and be delivered, before it. */
int gs_sub_next(gs_sub_t *self, int timeout_ms, Gridsync__V1__ChangeEvent **ev);

/* What revealed a lineage change. */
typedef struct gs_sub_lineage {
    uint64_t epoch;             /* the epoch followed (0 = not known) */
    uint64_t broker_epoch;      /* the broker's epoch as last heard (0 = not sent) */
    uint64_t head_seq;          /* the broker head that revealed it */
    uint64_t position;          /* our position it was compared with */
    char message[256];          /* what happened, for a person */
} gs_sub_lineage_t;

/* 1 with *out filled when a lineage change was found (GS_CLIENT_ELINEAGE),
 * else 0 (out may be NULL). */
int gs_sub_lineage(const gs_sub_t *self, gs_sub_lineage_t *out);

/* Start over after GS_CLIENT_ELINEAGE: drop what is queued, set every
 * position back to 0, follow the broker's current epoch and catch up from
 * the beginning. Whatever the caller built from earlier events describes a
 * store that no longer exists and must be discarded first; a checkpoint
 * written after this starts the new lineage. Returns 0 or an error (also
 * GS_CLIENT_ELINEAGE again if the store changed once more meanwhile). */
int gs_sub_rebaseline(gs_sub_t *self);

/* Silence watch. The broker sends a heartbeat for every subscribed prefix
 * each heartbeat-ms (default 1 s); a subscriber that hears none (and no
 * event) for a prefix for long is not being served: its subscription was
 * refused (key revoked or not allowed the prefix) or the feed is down.
 * Returns 1, with msg set to "no heartbeat for N s: check enrolment (...)",
 * when some prefix has been silent for warn_ms or more and no warning was
 * given in the last warn_ms; else 0. Call it between gs_sub_next calls.
 * warn_ms <= 0 never warns. */
int gs_sub_silence(gs_sub_t *self, int64_t warn_ms, char *msg, size_t size);

/* Record that everything delivered so far is processed: writes the
 * checkpoint file durably (write and fsync a temporary file, rename it over
 * the checkpoint, fsync the directory), so that after a crash the file is
 * the old checkpoint or the new one, never a mix, and a checkpoint once
 * returned survives a power cut. The checkpoint holds the positions and the
 * epoch followed (after GS_CLIENT_ELINEAGE still the old one, so a restart
 * reports the change again). Returns GS_CLIENT_EIO when any step fails
 * (the old checkpoint is then left as it was). extra, when not NULL, is
 * stored with it and returned by gs_sub_checkpoint_extra after a restart
 * (gridfeed keeps its output file size there). */
int gs_sub_checkpoint(gs_sub_t *self, const char *extra);
const char *gs_sub_checkpoint_extra(const gs_sub_t *self);

/* Last seq delivered for prefix i, and the broker's head as last heard. */
uint64_t gs_sub_position(const gs_sub_t *self, size_t i);
uint64_t gs_sub_head(const gs_sub_t *self);
/* The store epoch followed (0 = not known yet, or the broker sends none). */
uint64_t gs_sub_epoch(const gs_sub_t *self);

typedef struct gs_sub_stats {
    uint64_t live;              /* events delivered from the live feed */
    uint64_t pulled;            /* events delivered from the sync service */
    uint64_t duplicates;        /* live events already delivered, dropped */
    uint64_t gaps;              /* gaps detected */
    uint64_t heartbeats;        /* heartbeats seen */
} gs_sub_stats_t;
void gs_sub_stats(const gs_sub_t *self, gs_sub_stats_t *st);

#endif

/*
 * gs_admin: the client side of the broker's admin endpoint
 * (docs/protocol.md, "Admin endpoint"). One AdminRequest frame out, one
 * AdminReply frame back, over a DEALER on the broker's ipc:// socket. The
 * six bodies each have a call: stats, get, devices, grids, health, digest.
 *
 * Where it sits: admin -> broker -> store. gridctl uses it to read a store
 * through a running broker (--admin), and `gridctl health` to ask whether
 * the broker answers. The endpoint is local only: the broker binds it as an
 * ipc:// socket file inside the owner-only store directory and has no other
 * protection for it (no CURVE), so this client accepts ipc:// endpoints and
 * nothing else. Admin replies are not masked: whoever may open the socket
 * reads everything.
 *
 * Errors: 0, or a negative GS_CLIENT_E* code (gs_client.h) with a message
 * for a person in err (gs_client_errtext prints both):
 *   GS_CLIENT_EINVAL   the endpoint is not ipc://PATH, or an argument is bad
 *   GS_CLIENT_EIO      no socket file at PATH, nothing listening on it (a
 *                      stopped broker leaves its socket file behind), no
 *                      permission to open it, or a ZeroMQ failure
 *   GS_CLIENT_ETIMEOUT no reply within the opts' timeout_ms
 *   GS_CLIENT_ESERVER  the broker answered with an Error: err->reason is
 *                      its gridsync.v1.Reason (REASON_NOT_FOUND for a
 *                      record that does not exist, REASON_BAD_REQUEST for a
 *                      stats prefix that is not digits, ...)
 *   GS_CLIENT_EPROTO   the reply did not decode, or answered with another body
 *   GS_CLIENT_ECANCELLED  the opts' cancel flag was set
 * A call waits at most timeout_ms (the socket check, the send and the reply
 * together) and never resends: admin requests are cheap to repeat, so the
 * caller decides.
 *
 * Threads: an object belongs to one thread at a time.
 */
#ifndef GS_ADMIN_H
#define GS_ADMIN_H

#include <stdatomic.h>
#include <stdint.h>

#include "gs_client.h"

typedef struct gs_admin_opts {
    int timeout_ms;             /* wait for one reply (default 3000) */
    int64_t max_reply_bytes;    /* largest reply accepted (default 64 MiB) */
    const atomic_int *cancel;   /* when set and nonzero, a wait ends with
                                 * GS_CLIENT_ECANCELLED within 100 ms */
} gs_admin_opts_t;

void gs_admin_opts_init(gs_admin_opts_t *o);

typedef struct gs_admin gs_admin_t;

/* A client for the admin endpoint (e.g. "ipc://var/store/admin.sock").
 * Connects lazily, at the first call, so that a missing broker is reported
 * by that call. opts may be NULL for defaults. Returns NULL when the
 * endpoint is not ipc:// with a path that fits a unix socket address
 * (GS_CLIENT_EINVAL in *rc) or on allocation failure (GS_CLIENT_ENOMEM);
 * err (may be NULL) then says why. */
gs_admin_t *gs_admin_new(const char *endpoint, const gs_admin_opts_t *opts, int *rc,
                         gs_client_error_t *err);
void gs_admin_destroy(gs_admin_t **self_p);

/* The endpoint given to gs_admin_new. */
const char *gs_admin_endpoint(const gs_admin_t *self);

/* Send req (its request_id is set here, a fresh one per call) and wait for
 * the reply with that request_id, or with request_id 0 (the broker could
 * not read the request). On 0, *reply is the decoded AdminReply, never an
 * error body (free with gridsync__v1__admin_reply__free_unpacked(r, NULL)).
 * An Error reply gives GS_CLIENT_ESERVER. Used by the calls below; exposed
 * for tools and tests. */
int gs_admin_call(gs_admin_t *self, Gridsync__V1__AdminRequest *req,
                  Gridsync__V1__AdminReply **reply, gs_client_error_t *err);

/* Per-cell counters under prefix (0 to 15 digits, "" = every cell) and the
 * head seq. Free *out with gridsync__v1__stats_reply__free_unpacked. */
int gs_admin_stats(gs_admin_t *self, const char *prefix, Gridsync__V1__StatsReply **out,
                   gs_client_error_t *err);

/* One record by its canonical id or an alias; kind 0 (UNSPECIFIED) tries
 * both. A record that does not exist is GS_CLIENT_ESERVER with
 * err->reason REASON_NOT_FOUND. Free *out with
 * gridsync__v1__snapshot_entry__free_unpacked. */
int gs_admin_get(gs_admin_t *self, int kind, const char *record_key,
                 Gridsync__V1__SnapshotEntry **out, gs_client_error_t *err);

/* The device registry. Free *out with
 * gridsync__v1__device_list_reply__free_unpacked. */
int gs_admin_devices(gs_admin_t *self, Gridsync__V1__DeviceListReply **out,
                     gs_client_error_t *err);

/* The store's incident category table (docs/data-model.md, "Incident
 * categories and deadlines"): its categories in code order, and whether
 * it was set in the store (configured) or is the built-in one. Free *out
 * with gridsync__v1__incident_categories_reply__free_unpacked. */
int gs_admin_incident_categories(gs_admin_t *self,
                                 Gridsync__V1__IncidentCategoriesReply **out,
                                 gs_client_error_t *err);

/* The grid registry under prefix ("" = all). Free *out with
 * gridsync__v1__grid_list_reply__free_unpacked. */
int gs_admin_grids(gs_admin_t *self, const char *prefix, Gridsync__V1__GridListReply **out,
                   gs_client_error_t *err);

/* The broker's health. Free *out with
 * gridsync__v1__health_reply__free_unpacked. */
int gs_admin_health(gs_admin_t *self, Gridsync__V1__HealthReply **out,
                    gs_client_error_t *err);

/* The digest of prefix ("" or 2, 4, 6, 9, 12 or 15 digits) with its
 * children, or for a cell its records after cursor (cursor_len 0: from the
 * first; else a reply's next_cursor), at most limit per reply (0: the
 * broker's bound). The reply's node is always set and every digest and
 * content hash is 16 bytes (else GS_CLIENT_EPROTO). A prefix off a level
 * is GS_CLIENT_ESERVER with REASON_BAD_REQUEST. Free *out with
 * gridsync__v1__digest_reply__free_unpacked. */
int gs_admin_digest(gs_admin_t *self, const char *prefix, const uint8_t *cursor,
                    size_t cursor_len, uint32_t limit, Gridsync__V1__DigestReply **out,
                    gs_client_error_t *err);

#endif

/*
 * gs_frontend: the broker's frontend, on the thread that calls
 * gs_broker_run.
 *
 * It owns the client-facing ROUTER (uploads, sync, snapshots, pings), the
 * admin ROUTER, the PULL that the workers' replies arrive on, and the read
 * end of the signal pipe. For each request it reads (at most 256 per
 * wake-up, so replies keep flowing) it walks the frame's wire bytes first
 * (gs_prescan_records, which also finds an upload's records and which of
 * them are in the form protobuf-c packs), decodes it into an arena, checks
 * the envelope, authorises the sender against the registry
 * (gs_authz_check) and, for an upload, prepares its records
 * (gs_store_prepare_canonical) and applies the backpressure
 * bound (max-pending-records). Uploads go to the writer, sync, snapshot
 * and admin requests to the readers, pings are answered at once
 * (gs_serve_ping). Every error reply it sends is packed by gs_serve_error.
 * It sends every reply on the socket its request came from.
 *
 * On a stop request (the signal pipe) it stops reading the client
 * sockets and sends a drain marker to the writer and each reader, queued
 * behind what they hold, then forwards replies until every one of them
 * has reported done.
 *
 * Thread safety: the frontend thread only (gs_broker_int.h says which
 * fields of the broker are its own).
 */
#ifndef GS_FRONTEND_H
#define GS_FRONTEND_H

#include "gs_broker_int.h"
#include "gs_prescan.h"

/* Serve requests until a stop request has drained every worker (writer
 * and readers have reported done and their replies are sent), or until
 * polling fails (logged as event=poll_failed). The workers must be
 * running. */
void gs_frontend_run(gs_broker_t *b);

/* The frontend's scratch for gs_prescan_records (b->fe_records): room
 * for lim->max_records records, more than the pre-scan ever lets through.
 * Made by gs_broker_new, where a failure can still be reported; NULL when
 * out of memory. */
gs_prescan_records_t *gs_frontend_records_new(const gs_limits_t *lim);
void gs_frontend_records_destroy(gs_prescan_records_t **self_p);

#endif

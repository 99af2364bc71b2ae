/*
 * gs_store_idem: the idempotency table. Every applied upload leaves
 * (device id, upload id) -> its packed Ack with the result counts in
 * `idem`, and its place in the expiry queue `idem_fifo` (numbered by the
 * meta counter idem_fifo_next). A retransmission is answered from there;
 * entries expire from the oldest while there are more than
 * idem_max_entries or the oldest is older than idem_max_age_ms (docs/store.md,
 * "Idempotency and its bound").
 *
 * Where it sits: inside the write path's transaction (gs_store_apply.c),
 * on the write transaction object (gs_store_txn.h); verify checks the same
 * layout. Writer thread only, under write_lock.
 */
#ifndef GS_STORE_IDEM_H
#define GS_STORE_IDEM_H

#include <stddef.h>
#include <stdint.h>

#include "gs_store_txn.h"

#define GS_IDEM_COUNTS 6            /* result counts kept: one per ResultStatus */

/* The idempotency state of one write transaction. */
typedef struct gs_idem {
    gs_txn_t *t;                    /* the transaction */
    uint64_t fifo_next;             /* next expiry-queue number */
    uint64_t fifo0;                 /* its value when the transaction began */
} gs_idem_t;

/* A remembered answer; ack points into the map, valid until the next write. */
typedef struct gs_idem_entry {
    const uint8_t *ack;             /* the packed Ack */
    size_t ack_len;                 /* its length */
    uint32_t counts[GS_IDEM_COUNTS]; /* results by ResultStatus */
} gs_idem_entry_t;

/* Start on transaction t: reads idem_fifo_next. Returns 0 or the sticky error. */
int gs_idem_begin(gs_idem_t *self, gs_txn_t *t);

/* The answer remembered for (device_id, upload_id): 0 with *e set,
 * GS_ENOTFOUND, or the sticky error (GS_ECORRUPT for a damaged entry).
 * Both ids are at most GS_ID_MAX bytes (asserted). */
int gs_idem_get(gs_idem_t *self, const char *device_id, const char *upload_id,
                gs_idem_entry_t *e);

/* Remember ack and counts for (device_id, upload_id), made at now_ms, at
 * the end of the expiry queue. Returns 0 or the sticky error. */
int gs_idem_put(gs_idem_t *self, const char *device_id, const char *upload_id,
                int64_t now_ms, const uint32_t counts[GS_IDEM_COUNTS], const uint8_t *ack,
                size_t ack_len);

/* Drop entries from the oldest while more than max_entries remain or the
 * oldest is older than max_age_ms at now_ms. Returns 0 or the sticky error. */
int gs_idem_expire(gs_idem_t *self, int64_t now_ms, uint64_t max_entries, int64_t max_age_ms);

/* Write idem_fifo_next when it moved. Returns 0 or the sticky error. */
int gs_idem_flush(gs_idem_t *self);

#endif

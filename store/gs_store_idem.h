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
#include "gs_wire.h"

#define GS_IDEM_COUNTS 6            /* result counts kept: one per ResultStatus */

/* The idempotency state of one write transaction. Embedded: init once,
 * begin per attempt, deinit at the end. */
typedef struct gs_idem {
    gs_txn_t *t;                    /* the transaction */
    uint64_t fifo_next;             /* next expiry-queue number */
    uint64_t fifo0;                 /* its value when the transaction began */
    gs_wbuf_t scratch;              /* put: the compact form of an Ack */
    gs_wbuf_t check;                /* put: that form expanded again */
} gs_idem_t;

/* A remembered answer. */
typedef struct gs_idem_entry {
    size_t ack_len;                 /* the length of the packed Ack */
    uint32_t counts[GS_IDEM_COUNTS]; /* results by ResultStatus */
} gs_idem_entry_t;

void gs_idem_init(gs_idem_t *self);
void gs_idem_deinit(gs_idem_t *self);

/* Start on transaction t: reads idem_fifo_next. Returns 0 or the sticky
 * error: GS_EVERSION for a store of format 3 or older that a broker has
 * not upgraded yet (its entries have the older layout). */
int gs_idem_begin(gs_idem_t *self, gs_txn_t *t);

/* The answer remembered for (device_id, upload_id): 0 with *e set and the
 * packed Ack, byte for byte as it was put, appended to ack; GS_ENOTFOUND
 * (ack unchanged), or the sticky error (GS_ECORRUPT for a damaged entry,
 * GS_ENOMEM). Both ids are at most GS_ID_MAX bytes (asserted). */
int gs_idem_get(gs_idem_t *self, const char *device_id, const char *upload_id,
                gs_idem_entry_t *e, gs_wbuf_t *ack);

/* Remember ack and counts for (device_id, upload_id), made at now_ms, at
 * the end of the expiry queue. The Ack is kept in a compact form when
 * expanding that form gives back exactly its bytes (docs/store.md,
 * "Idempotency and its bound"), else as it is. Returns 0 or the sticky
 * error. */
int gs_idem_put(gs_idem_t *self, const char *device_id, const char *upload_id,
                int64_t now_ms, const uint32_t counts[GS_IDEM_COUNTS], const uint8_t *ack,
                size_t ack_len);

/* Drop entries from the oldest while more than max_entries remain or the
 * oldest is older than max_age_ms at now_ms. Returns 0 or the sticky error. */
int gs_idem_expire(gs_idem_t *self, int64_t now_ms, uint64_t max_entries, int64_t max_age_ms);

/* Write idem_fifo_next when it moved. Returns 0 or the sticky error. */
int gs_idem_flush(gs_idem_t *self);

/* Is the idem value v (len bytes) of upload_id well formed (its Ack
 * expands)? 0 yes, -1 no. For verify; any thread. */
int gs_idem_check(const uint8_t *v, size_t len, const char *upload_id);

/* Give every entry of a store of format 3 or older (header, packed Ack)
 * the layout of format 4 (header, encoding byte, Ack), keeping each Ack as
 * it is, in transaction t; *entries gets their number. Returns 0 or the
 * sticky error. */
int gs_idem_upgrade(gs_txn_t *t, uint64_t *entries);

#endif

/*
 * gs_store_repl_int: what the replica's two write paths share and nothing
 * outside store/ may see: the state of one attempt (gs_repl_t) and the
 * checks and writes both use. gs_store_replica.c applies an origin's
 * messages and re-baselines an origin; gs_store_repair.c repairs a cell.
 * Contracts of the public calls in gs_store_replica.h.
 *
 * Where it sits: inside a write transaction (gs_store_txn.h) and its change
 * log (gs_store_log.h); writer thread only, under write_lock.
 */
#ifndef GS_STORE_REPL_INT_H
#define GS_STORE_REPL_INT_H

#include "gs_store_int.h"
#include "gs_store_log.h"
#include "gs_store_record.h"
#include "gs_store_replica.h"

/* State of one replicate attempt (redone from scratch after map growth). */
typedef struct gs_repl {
    gs_store_t *st;                 /* the store */
    gs_txn_t *t;                    /* the write transaction */
    gs_log_t log;                   /* the change log in this attempt */
    int64_t now_ms;                 /* commit time */
    const char *area;               /* the origin */
    const char *followed;           /* the prefix followed in it */
    int level;                      /* followed's hierarchy level */
    const gs_repl_msg_t *msgs;      /* the messages */
    size_t n;                       /* how many */
    gs_origin_t o;                  /* the origin's entry as this attempt leaves it */
    gs_repl_result_t res;           /* what this attempt did */
    int dirty;                      /* the entry changed in this attempt */
    gs_repl_ahead_t *ahead;         /* the messages' checks made ahead, or NULL */
    const char *cell;               /* a repair: the cell */
    gs_repair_result_t rep;         /* a repair: what this attempt did */
} gs_repl_t;

/* An origin's name: an area prefix at a hierarchy level of 2 to 12 digits? */
int gs_repl_area_ok(const char *area);

/* A decimal u64 header value into *out; -1 when it is not one. */
int gs_repl_parse_dec(const char *s, uint64_t *out);

/* An epoch header (exactly 16 lower-case hex digits, not all zero) into
 * *out; -1 when it is not one. */
int gs_repl_parse_epoch(const char *s, uint64_t *out);

/* A NUL-terminated 15-digit grid code? */
int gs_repl_grid_ok(const char *g);

/* Read the origins entry of area in t into *o (state NEW when absent).
 * Returns 0 or the sticky error. */
int gs_repl_entry_read(gs_txn_t *t, const char *area, gs_origin_t *o);

/* The natural keys of record id as it changes from cur (found or not) to
 * pp (NULL: removed): the old key goes when it changes and still leads to
 * id, the new one is put unless nk_held (it leads to id already). The
 * caller has checked that no other record holds the new key. Returns 0 or
 * the sticky error. */
int gs_repl_natkey_replace(gs_repl_t *r, const gs_rec_cur_t *cur, const gs_prepared_t *pp,
                           const char *id, int nk_held);

/* Remove the record cur (found, canonical id) from its cell as a MOVE_OUT
 * of this store's own (origin r->area, origin_seq 0), with its natural key
 * when that leads to it: what a re-baseline and a repair do to a record
 * the origin no longer holds there. Returns 0 or the sticky error. */
int gs_repl_remove_held(gs_repl_t *r, const gs_rec_cur_t *cur, const char *id);

/* Run fn (an attempt over r) under the write lock, with map growth redone
 * as gs_store_write_locked does, and copy its events into *out (free with
 * gs_apply_out_clear). Returns 0 or a GS_E* code (out then empty). */
int gs_repl_run(gs_store_t *self, gs_repl_t *r, gs_wfn *fn, gs_apply_out_t *out);

#endif

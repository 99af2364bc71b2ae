/*
 * gs_store_persons: the person index (docs/store.md, "The person index and
 * its secret"). One entry per cell: key grid(15), value the first four
 * bytes of the HMAC of every person the cell's active records name, sorted,
 * repeated when two refs share them (a multiset, 4 bytes each). The full
 * refs (HMAC and role) are in each record's value, so the index only says
 * which cells to read: a lookup reads the sets of every cell and the
 * records of the few cells that hold the HMAC's first bytes. An upload
 * rewrites one small value per cell it touches, whatever the HMACs are.
 *
 * The write side caches the sets of the cells a transaction touches and
 * writes each once at the flush, like the cell counts; gs_log_t embeds it
 * (gs_log_begin, gs_log_flush). The read side is gs_persons_has and the
 * readers in gs_store_read.c; the upgrade from format 3 rebuilds the table
 * from the records (gs_persons_build).
 *
 * Where it sits: inside store/, writer thread only for the cache (under
 * write_lock, in the write path's transaction); the pure helpers on any
 * thread.
 */
#ifndef GS_STORE_PERSONS_H
#define GS_STORE_PERSONS_H

#include "gs_store_int.h"

#define GS_PERSON_TAG 4             /* bytes of the HMAC kept per person in a set */

/* One cached set. */
typedef struct gs_persons_set {
    uint32_t *v;                    /* the tags, ascending (big-endian order of the bytes) */
    size_t n, cap;                  /* used and allocated */
} gs_persons_set_t;

/* The sets of the cells one transaction touches. Embedded: init once,
 * begin per attempt, deinit at the end. */
typedef struct gs_persons {
    gs_txn_t *t;                    /* the transaction */
    gs_smap_t cells;                /* grid -> index into sets (u), dirty */
    char last_grid[GS_GRID_LEN + 1]; /* the grid of the last set asked for, "" for none */
    size_t last_set;                /* its index into sets */
    uint64_t last_gen;              /* cells.gen then */
    gs_persons_set_t *sets;         /* the cached sets */
    size_t n_sets, cap_sets;        /* used and allocated */
} gs_persons_t;

void gs_persons_init(gs_persons_t *self);
void gs_persons_deinit(gs_persons_t *self);

/* Start (or restart, after map growth) on transaction t: empties the cache. */
void gs_persons_begin(gs_persons_t *self, gs_txn_t *t);

/* Add (sign +1) or remove (-1) one active record's ref to hmac in grid.
 * Removing a tag the set does not hold changes nothing (gs_store_verify
 * reports the index then). GS_EVERSION (sticky) when the store still has
 * the person index of format 3 (a non-broker open before the upgrade).
 * Returns 0 or the sticky error. */
int gs_persons_change(gs_persons_t *self, const char *grid, const uint8_t hmac[16], int sign);

/* Write the changed sets (an empty set deletes its cell's entry). Returns
 * 0 or the sticky error. */
int gs_persons_flush(gs_persons_t *self);

/* The tag of an HMAC: its first GS_PERSON_TAG bytes, big-endian. */
uint32_t gs_persons_tag(const uint8_t hmac[16]);

/* Does a stored set value (len bytes) hold hmac's tag? 1 yes, 0 no, -1 the
 * value is damaged (its length is not a multiple of GS_PERSON_TAG). */
int gs_persons_has(const uint8_t *val, size_t len, const uint8_t hmac[16]);

/* Compare a stored set value with the tags want (n of them, any order;
 * sorted in place). 0 equal, 1 different. */
int gs_persons_differs(const uint8_t *val, size_t len, uint32_t *want, size_t n);

/* Rebuild the table from the active records' refs, in transaction t (the
 * upgrade from format 3). *tags gets the number of tags written. Returns 0
 * or the sticky error. */
int gs_persons_build(gs_txn_t *t, uint64_t *tags);

#endif

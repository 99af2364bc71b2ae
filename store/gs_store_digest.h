/*
 * gs_store_digest: order-independent digests of the current records, per
 * cell and rolled up per hierarchy level (prefix lengths 0, 2, 4, 6, 9, 12
 * and the 15-digit cell, the levels of the change log's chain). Two stores
 * that hold the same current records (same cell, kind, canonical id,
 * version, status and content hash) have equal digests at every level,
 * whatever order and batching wrote them; `gridctl compare` descends only
 * into prefixes whose digests differ. docs/store.md ("Digests") gives the
 * layout and the formula.
 *
 * A record's entry is BLAKE2b-128 over grid(15) · kind(1) · canonical id ·
 * version (u64 BE) · status (u8) · content hash (16). A prefix's digest is
 * the XOR of the entries of the records under it, stored with their count.
 * The grid is part of the entry, so a record held in the wrong cell changes
 * the digest at every level up to the root.
 *
 * Where it sits: the write side is embedded in the change log's state
 * (gs_log_t.digest), so gs_log_begin and gs_log_flush start and write it
 * with the chain and cell caches: every write path that uses the change log
 * keeps the digests by calling gs_digest_change once per record it
 * replaces, moves, creates or removes. Writer thread only, under
 * write_lock. The builder (a broker's open of a store made before digests)
 * and the recomputation (verify) run over the records table in one
 * transaction. The readers (gs_store_digest in gs_store.h) are in
 * gs_store_digest.c too.
 */
#ifndef GS_STORE_DIGEST_H
#define GS_STORE_DIGEST_H

#include "gs_store_int.h"

#define GS_DIGEST_VAL 24            /* digests value: XOR (16) + count (u64 LE) */

/* One version of a record as the digest sees it. Borrowed for the call. */
typedef struct gs_digest_rec {
    const char *grid;               /* its cell, 15 digits */
    uint64_t version;               /* its version, from 1 */
    int status;                     /* RecordStatus */
    const uint8_t *hash;            /* its content hash, 16 bytes (gs_rec_hdr_t.hash) */
    const uint8_t *entry;           /* its gs_digest_entry (16 bytes) when the caller */
                                    /* made it already (off the writer thread), else */
                                    /* NULL: made by gs_digest_change                */
} gs_digest_rec_t;

/* The digests touched by one write transaction. Embedded in gs_log_t:
 * init once, begin per attempt, flush before the commit, deinit at the
 * end. */
typedef struct gs_digest {
    gs_txn_t *t;                    /* the transaction */
    gs_smap_t prefixes;             /* digests key -> XOR (dig) and count (u), written by flush */
    gs_smap_path_t path;            /* the last grid's entries in prefixes */
} gs_digest_t;

void gs_digest_init(gs_digest_t *self);
void gs_digest_deinit(gs_digest_t *self);

/* Start (or restart, after map growth) on transaction t: empties the
 * cache. Returns 0. */
int gs_digest_begin(gs_digest_t *self, gs_txn_t *t);

/* The one call a write path makes when a record's current version
 * changes, in the transaction that writes the record:
 *   old NULL, now set   a new record (now's cell gains it)
 *   old set, now set    a new version (same cell), or a move (old's cell
 *                       loses it, now's cell gains it)
 *   old set, now NULL   the record is removed
 * kb is the key byte (GS_KIND_H / GS_KIND_R), canon the canonical id
 * (NUL-terminated), old the version stored until now (its header) and now
 * the version written. Every level prefix of both cells is updated in the
 * cache (read once per transaction); nothing is written until
 * gs_digest_flush. A count that would go below zero means the stored
 * digests disagree with the records: GS_ECORRUPT (sticky, the detail names
 * the prefix; gridctl verify reports it). On a store whose digests are not
 * built (format 2, opened by other than a broker) nothing may change a
 * record: GS_EVERSION (sticky). Returns 0 or the sticky error. */
int gs_digest_change(gs_digest_t *self, char kb, const char *canon,
                     const gs_digest_rec_t *old, const gs_digest_rec_t *now);

/* Write every prefix touched in this transaction (a prefix left with no
 * records is deleted). Returns 0 or the sticky error. */
int gs_digest_flush(gs_digest_t *self);

/* The entry of one record version (the formula above), into out. Pure. */
void gs_digest_entry(const char *grid, char kb, const char *canon, size_t canon_len,
                     uint64_t version, int status, const uint8_t hash[16],
                     uint8_t out[16]);

/* Called for every non-empty prefix, recomputed from the records, deepest
 * level first within each subtree and the root last. Return 0 to go on, or
 * an LMDB or errno code to stop with it. */
typedef int (gs_digest_emit_fn)(void *arg, int level, const char *prefix,
                                const uint8_t dig[16], uint64_t count);

/* Recompute every digest from the records table in txn (one pass in key
 * order, constant memory). Records whose key or header does not decode are
 * left out and counted in *skipped (verify reports them on its own).
 * *records gets the records digested. Returns 0, fn's code, or an LMDB
 * code. */
int gs_digest_recompute(gs_store_t *st, MDB_txn *txn, gs_digest_emit_fn *fn, void *arg,
                        uint64_t *records, uint64_t *skipped);

/* Build the digests table from the records (replacing whatever it holds)
 * and mark the store as format GS_FORMAT_VERSION, in transaction t: the
 * upgrade of a store made before digests. *records gets the records
 * digested. Returns 0 or the sticky error (GS_ECORRUPT when a record does
 * not decode). */
int gs_digest_build(gs_txn_t *t, uint64_t *records);

#endif

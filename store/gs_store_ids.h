/*
 * gs_store_ids: alias resolution, in one place. A record id names a record
 * either directly (its canonical entry in `ids`, which holds the record's
 * current grid) or as an alias (an id that merged into another record,
 * whose entry names the canonical id). Both the write path and the readers
 * resolve an id through gs_ids_resolve.
 *
 * Where it sits: on LMDB, beside the key codec (gs_store_keys.h) whose
 * layouts it reads; used by gs_store_apply.c (inside the write transaction)
 * and gs_store_read.c (inside read transactions).
 *
 * Threads: any thread, with a transaction of its own.
 */
#ifndef GS_STORE_IDS_H
#define GS_STORE_IDS_H

#include <lmdb.h>

#include "gs_store.h"
#include "gs_store_txn.h"

/* Resolve kind byte kb and id to the record's current grid and canonical
 * id (both NUL-terminated into the caller's buffers; for a canonical id,
 * canon is id). Returns 0; MDB_NOTFOUND when no record has that id (an
 * empty id or one longer than GS_ID_MAX included); MDB_CORRUPTED when an
 * entry does not decode or an alias leads nowhere; or another LMDB code
 * from mdb_get. Raw codes: the caller translates them (gs_txn_fail or
 * gs_store_err). */
int gs_ids_resolve(gs_store_t *st, MDB_txn *txn, char kb, const char *id,
                   char grid[GS_GRID_LEN + 1], char canon[GS_ID_MAX + 1]);

/* gs_ids_resolve in write transaction t, through its cursor on ids
 * (gs_txn_cursor). The same answers, or t's sticky error (a GS_E* code)
 * when it has one. */
int gs_ids_resolve_in(gs_txn_t *t, char kb, const char *id, char grid[GS_GRID_LEN + 1],
                      char canon[GS_ID_MAX + 1]);

/* The upgrade of formats 2 to 4, in write transaction t: every canonical
 * entry that repeats its id after the grid is rewritten as the grid alone
 * (gs_store_keys.h); aliases are left as they are. *entries gets the
 * entries rewritten. Returns 0 or the sticky error (GS_ECORRUPT when an
 * entry does not decode). Writer thread (the broker's open). */
int gs_ids_compact(gs_txn_t *t, uint64_t *entries);

#endif

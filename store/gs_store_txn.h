/*
 * gs_store_txn: the store's transactions. Read transactions (gs_rtxn_*,
 * gs_scan) and the write transaction object gs_txn_t, which every write in
 * the store goes through: apply, the registries, the epoch and the debug
 * hooks.
 *
 * Where it sits: directly on LMDB, below gs_store_apply.c,
 * gs_store_admin.c and gs_store.c. It is the one place where the codes a
 * write can fail with (LMDB's negative MDB_* codes, errno values) become
 * GS_E* codes, once, with the detail for gs_store_errdetail().
 *
 * The write transaction has a sticky error, as Knot DNS's knot_lmdb_txn
 * does: the first failure of a get, put or del (or one the caller records
 * with gs_txn_fail) is kept in t->err, every later get, put and del does
 * nothing and returns it, and gs_txn_commit aborts instead of committing.
 * A multi-step write can therefore chain its calls and check once. Absence
 * (GS_ENOTFOUND from get and del) is an answer, not a failure: it is not
 * sticky. Reason codes and verdicts never travel in these ints.
 *
 * Threads: a gs_txn_t belongs to the thread that began it, which holds the
 * store's write_lock from begin to commit or abort (gs_store_write takes
 * it). Read transactions may be used by any thread, one per thread.
 */
#ifndef GS_STORE_TXN_H
#define GS_STORE_TXN_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "gs_store.h"

/* ---- Read transactions ---------------------------------------------------------- */

/* Begin a read transaction; holds env_lock shared until gs_rtxn_end.
 * Adopts a map grown by another process (MDB_MAP_RESIZED), reopens after
 * MDB_PANIC. Returns 0 or a GS_E* code. */
int gs_rtxn_begin(gs_store_t *self, MDB_txn **txn);
/* End it (abort); *txn NULL afterwards, safe on NULL. */
void gs_rtxn_end(gs_store_t *self, MDB_txn **txn);

/* One entry of a gs_scan: return 0 to go on or an LMDB/errno code to stop
 * with that error; to stop with the caller's own answer, set *user to it
 * (non-zero) and return 0. */
typedef int (gs_scan_fn)(void *arg, MDB_txn *txn, const MDB_val *k, const MDB_val *v,
                         int *user);

/* Walk, in key order and one read transaction, every entry of db whose key
 * starts with prefix (NULL or "": all of them). Returns the first non-zero
 * *user, 0 at the end, GS_EINVAL for a prefix longer than a grid code, or
 * gs_store_err(rc, what) for an error. */
int gs_scan(gs_store_t *self, int db, const char *prefix, gs_scan_fn *each, void *arg,
            const char *what);

/* ---- The write transaction --------------------------------------------------------- */

#define GS_TXN_CURSORS 16           /* >= the store's databases (checked in gs_store_txn.c) */

typedef struct gs_txn {
    gs_store_t *st;                 /* the store */
    MDB_txn *txn;                   /* the LMDB transaction; NULL once ended */
    int err;                        /* sticky: 0, or the first failure as GS_E* */
    int map_full;                   /* that failure was MDB_MAP_FULL: grow and redo */
    MDB_cursor *cur[GS_TXN_CURSORS]; /* get and put's cursor per database, opened at
                                     * first use, closed when the transaction ends */
} gs_txn_t;

/* Begin a write transaction. The caller holds st->write_lock; env_lock is
 * held shared until commit or abort. Returns 0, GS_EREADONLY for a store
 * opened read-only, or another GS_E* code (t->txn stays NULL then). */
int gs_txn_begin(gs_store_t *st, gs_txn_t *t);

/* Look k up in db. Returns 0 with *v set (valid until the next write in
 * this transaction), GS_ENOTFOUND (not sticky), or the sticky error.
 * gs_txn_get and gs_txn_put go through one cursor per database that stays
 * open for the whole transaction: a key on the leaf page the cursor is on
 * (the next record of the same cell, the next seq) is found without a
 * descent from the root, which mdb_get and mdb_put make every time. */
int gs_txn_get(gs_txn_t *t, int db, const MDB_val *k, MDB_val *v);

/* The transaction's cursor on db (the one gs_txn_get and gs_txn_put use),
 * for a caller that reads through it with MDB_SET; valid until the
 * transaction ends, closed by it. NULL with the sticky error set when it
 * cannot be opened. */
MDB_cursor *gs_txn_cursor(gs_txn_t *t, int db);

/* Put k -> v in db with LMDB's put flags (MDB_APPEND, MDB_RESERVE, ...).
 * With MDB_RESERVE, v->mv_data points to the space to fill on return 0;
 * the caller fills it, then calls gs_txn_trace. Returns 0 or the sticky
 * error. */
int gs_txn_put(gs_txn_t *t, int db, MDB_val *k, MDB_val *v, unsigned flags);

/* Delete k from db. Returns 0, GS_ENOTFOUND (not sticky), or the sticky
 * error. */
int gs_txn_del(gs_txn_t *t, int db, const MDB_val *k);

/* Entries in db, into *n. Returns 0 or the sticky error. */
int gs_txn_count(gs_txn_t *t, int db, size_t *n);

/* A u64 counter of the meta table (8 bytes LE): *out = 0 when absent.
 * Returns 0 or the sticky error (GS_ECORRUPT for a value of another size). */
int gs_txn_meta_get(gs_txn_t *t, const char *name, uint64_t *out);
/* Set it. Returns 0 or the sticky error. */
int gs_txn_meta_put(gs_txn_t *t, const char *name, uint64_t val);

/* Record a failure found by the caller: rc is an LMDB code, an errno value
 * (MDB_CORRUPTED for a value that does not decode, ENOMEM, ...) or already
 * a GS_E* code; what names the step for the detail. The first failure
 * wins. Returns t->err (non-zero). */
int gs_txn_fail(gs_txn_t *t, int rc, const char *what);

/* Tell the debug trace about a put made with MDB_RESERVE, once filled. */
void gs_txn_trace(gs_txn_t *t, int db, const MDB_val *k, const MDB_val *v, int append);

/* Commit, or abort when t->err is set (and return it). Returns 0 or a
 * GS_E* code; t->map_full says the commit ran out of map. The transaction
 * is ended either way. */
int gs_txn_commit(gs_txn_t *t);

/* Abort; safe after commit or abort (does nothing then). */
void gs_txn_abort(gs_txn_t *t);

/* One attempt of a multi-step write: returns 0 to commit, or non-zero (the
 * sticky error, or a GS_E* answer of its own such as GS_EINVAL with the
 * detail set) to abort and return that. */
typedef int (gs_wfn)(gs_txn_t *t, void *arg);

/* Run fn in a write transaction, growing the map and running fn again from
 * the start whenever the transaction ran out of map (MDB_MAP_FULL in a put
 * or in the commit). *grows (may be NULL) counts the growths. The caller
 * holds write_lock. Returns 0 or a GS_E* code. */
int gs_store_write_locked(gs_store_t *self, gs_wfn *fn, void *arg, uint32_t *grows);

/* gs_store_write_locked under write_lock. */
int gs_store_write(gs_store_t *self, gs_wfn *fn, void *arg);

/* Double the map (bounded by map_max). Caller holds write_lock and no
 * transaction. Returns 0 or GS_EFULL when already at map_max. */
int gs_store_grow(gs_store_t *self);

#endif

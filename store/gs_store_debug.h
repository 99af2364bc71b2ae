/*
 * gs_store_debug: hooks into the store for tests and benchmarks only.
 *
 * Where it sits: beside gs_store.h, never used by the broker or the tools.
 * They let a test break an index on purpose (to prove that verify notices)
 * or fail a commit as a full disk would, and let the store benchmark see
 * every key and value the store writes so that it can replay them through
 * a bare LMDB loop. Production code must not call these.
 */
#ifndef GS_STORE_DEBUG_H
#define GS_STORE_DEBUG_H

#include <stddef.h>
#include "gs_store.h"

/* Names accepted as `db`: "records", "ids", "natkeys", "log", "cell_log",
 * "idem", "idem_fifo", "persons", "cells", "chain", "meta", "devices",
 * "device_keys", "grids", "digests". */

/* Delete one raw key from a named database in its own write transaction.
 * Returns 0, GS_ENOTFOUND, GS_EINVAL (unknown db) or another error. */
int gs_store_debug_del(gs_store_t *self, const char *db, const void *key,
                       size_t klen);

/* Put one raw key/value into a named database (overwriting). */
int gs_store_debug_put(gs_store_t *self, const char *db, const void *key,
                       size_t klen, const void *val, size_t vlen);

/* Read one raw value from a named database: copies at most cap bytes of it
 * into val and its full length into *vlen. Returns 0, GS_ENOTFOUND,
 * GS_EINVAL (unknown db) or another error. */
int gs_store_debug_get(gs_store_t *self, const char *db, const void *key,
                       size_t klen, void *val, size_t cap, size_t *vlen);

/* Called for every put (del = 0) and delete (del = 1) the store makes, with
 * the database name, the key, the value (NULL for a delete) and the LMDB
 * put flags that matter for speed (1 = append). Set fn NULL to stop.
 * Writer thread only; an apply retried after map growth is traced again,
 * and the trace of an attempt that failed is not withdrawn. */
typedef void (gs_store_trace_fn)(void *arg, int del, const char *db,
                                 const void *key, size_t klen,
                                 const void *val, size_t vlen, int append);
void gs_store_debug_trace(gs_store_t *self, gs_store_trace_fn *fn, void *arg);

/* The trace also marks transaction boundaries, with db = NULL: del = 3
 * when a write transaction begins, del = 2 when it has committed. What was
 * traced after a begin that is followed by another begin (not a commit)
 * was aborted and redone. */

/* Make the next write-transaction commit fail as if the disk had returned
 * err (an errno such as ENOSPC or EIO): the transaction is aborted and the
 * store translates the code as usual. 0 clears it. */
void gs_store_debug_fail_commit(gs_store_t *self, int err);

/* Close and reopen the LMDB environment as the store does by itself after
 * MDB_PANIC, while the store stays in use. Returns 0 or an error. */
int gs_store_debug_reopen(gs_store_t *self);

/* Persons held in memory per pass of gs_store_person_dups (0 = the
 * default of 500,000), so a test can force several passes. */
void gs_store_debug_dup_pass(gs_store_t *self, size_t entries);

/* Make this store drift from its peers on purpose: remove the record
 * kind/record_id (canonical id or alias; RecordKind, 0 tries both) in one
 * write transaction as if it had never been stored: its records entry, its
 * ids entries (aliases too), natural key, person-index entries, cell
 * counts and digests, through the write path's own functions, so the store
 * stays self-consistent (gs_store_verify finds nothing) but no longer
 * holds the record. No change event is written: the log keeps its history
 * and head_seq is unchanged. Returns 0, GS_ENOTFOUND or another error. */
int gs_store_debug_drop(gs_store_t *self, int kind, const char *record_id);

/* Make this store drift the other way: record kind/record_id (as for
 * gs_store_debug_drop) stays, with the same bytes, but its stored version
 * becomes version (not 0), its digests following, as if another version
 * had been stored. No change event. Returns 0, GS_ENOTFOUND, GS_EINVAL or
 * another error. */
int gs_store_debug_set_version(gs_store_t *self, int kind, const char *record_id,
                               uint64_t version);

/* gs_store_events with the read path forced: path 0 = choose as
 * gs_store_events does, 1 = scan the global log, 2 = merge the per-cell logs
 * (GS_EINVAL when the prefixes cover more than 64 cells). Tests use it to
 * prove both paths give the same answer. */
int gs_store_events_path(gs_store_t *self, const char *const *prefixes,
                         size_t n_prefixes, uint64_t since, uint32_t limit,
                         gs_event_fn *fn, void *arg, uint64_t *next_seq,
                         uint64_t *head_seq, int path);

#endif

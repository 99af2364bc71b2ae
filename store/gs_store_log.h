/*
 * gs_store_log: the change log. The write side appends change events to
 * `log` (seq -> grid, the record's previous seq, packed ChangeEvent) and
 * `cell_log`, keeps the hierarchy chain (the last seq under every level
 * prefix, stamped into each event as prev_seq) and the per-cell metadata
 * (counts, last seq, last update), and copies every packed event out for
 * the caller to publish after the commit. Cells are cached during the
 * transaction and written once by gs_log_flush; the chain heads are not
 * written at all: the store keeps them in memory (gs_store.chain), derived
 * from the cells at the first write and whenever the store's head is not
 * the one they describe, so the seven-level chain costs almost nothing per
 * record. The read side serves
 * the resumable feed ("events for prefixes after seq N"), by the global log
 * or by merging per-cell logs, and the last seq under a prefix.
 * docs/store.md ("The change log") describes the layouts and the chain.
 *
 * Where it sits: the write side runs inside the write path's transaction
 * (gs_store_apply.c), writer thread only, under write_lock; the readers run
 * on any thread in read transactions of their own (gs_store_events,
 * gs_store_prefix_last and gs_store_head in gs_store.h).
 */
#ifndef GS_STORE_LOG_H
#define GS_STORE_LOG_H

#include "gs_store_digest.h"
#include "gs_store_int.h"
#include "gs_store_persons.h"

/* One event of this transaction, located in the output buffer. */
typedef struct gs_log_ev {
    size_t off;                     /* packed ChangeEvent in *out */
    size_t len;                     /* its length */
    uint64_t seq;                   /* its seq */
    char grid[GS_GRID_LEN + 1];     /* its cell (the feed topic) */
} gs_log_ev_t;

/* The change log's state in one write transaction. Embedded: init once,
 * begin per attempt, deinit at the end. */
typedef struct gs_log {
    gs_txn_t *t;                    /* the transaction */
    gs_wbuf_t *out;                 /* packed events are appended here */
    int64_t now_ms;                 /* commit time stamped on events and cells */
    uint64_t head;                  /* last seq assigned */
    uint64_t head0;                 /* head when the transaction began */
    gs_smap_t cells;                /* grid -> cell meta, written by flush */
    gs_smap_t chain;                /* level prefix -> last seq, written by flush */
    gs_smap_path_t chain_path;      /* the last grid's entries in chain */
    gs_smap_ent_t *last_cell;       /* the last grid's entry in cells (NULL: none) */
    uint64_t last_cell_gen;         /* cells.gen then */
    gs_digest_t digest;             /* the digests of touched prefixes, written by flush; */
                                    /* every write path calls gs_digest_change on it   */
    gs_persons_t persons;           /* the person index sets of touched cells, written by */
                                    /* flush; every write path calls gs_persons_change   */
    gs_log_ev_t *evs;               /* events in seq order */
    size_t n_evs, cap_evs;          /* used and allocated */
    gs_wbuf_t body;                 /* one event's log body (gs_lz_encode) */
} gs_log_t;

/* One change event to append. Strings are borrowed for the call. */
typedef struct gs_log_event {
    int op;                         /* Operation */
    const char *grid;               /* the cell it happens in */
    const char *prev_grid;          /* MOVE_IN: the cell it left; else NULL */
    int kind;                       /* RecordKind */
    const char *record_key;         /* canonical id */
    uint64_t version;               /* the record's version */
    const char *origin_device;      /* the uploading device */
    const uint8_t *record;          /* the packed Record as stored */
    size_t record_len;              /* its length */
    uint64_t back;                  /* the record's previous event seq (0: none) */
    const char *origin;             /* a replica's event: the origin store's name, */
    uint64_t origin_epoch;          /* its lineage epoch and the event's seq there */
    uint64_t origin_seq;            /* (fields 12-14); NULL and 0 for own events */
} gs_log_event_t;

void gs_log_init(gs_log_t *self);
void gs_log_deinit(gs_log_t *self);

/* Start (or restart, after map growth) on transaction t: empties the
 * caches (the digests' and the person index's too) and the event list, reads head_seq. Events go to out. Returns 0
 * or the sticky error. */
int gs_log_begin(gs_log_t *self, gs_txn_t *t, gs_wbuf_t *out, int64_t now_ms);

/* Append ev with the next seq (into *seq): log, cell_log, the chain's
 * prev_seq and heads, the cell's last seq and update time, and a copy at
 * the end of out. The packed bytes are byte-identical to packing the whole
 * ChangeEvent; the log keeps them LZ4-compressed when that is shorter
 * (gs_store_lz.h), the copy in out is always the packed event. Returns 0
 * or the sticky error. */
int gs_log_emit(gs_log_t *self, const gs_log_event_t *ev, uint64_t *seq);

/* Add (sign +1) or remove (-1) one record's contribution to its cell's
 * counts (gs_cell_add). Returns 0 or the sticky error. */
int gs_log_cell_count(gs_log_t *self, const char *grid, char kb, int status, uint32_t people,
                      int sign);

/* Write the cached cells, chain heads, digests (gs_digest_flush), person
 * index sets (gs_persons_flush) and head_seq. Returns 0 or the sticky error. */
int gs_log_flush(gs_log_t *self);

/* One log value, read. Every reader of `log` goes through gs_log_val_get,
 * so the layout (header, then a body of gs_store_lz.h) is read in one place. */
typedef struct gs_log_val {
    const char *grid;               /* the event's cell: GS_GRID_LEN bytes, no NUL */
    uint64_t back;                  /* the record's previous event seq (0: none) */
    const uint8_t *ev;              /* the packed ChangeEvent: in the map (raw body) */
    size_t len;                     /* or in the caller's scratch (LZ4 body) */
} gs_log_val_t;

/* Read the log value v: its header and its event, decoded by gs_lz_decode
 * into scratch when compressed (the event lives until the end of the
 * transaction or the next use of scratch, whichever is first). Returns 0,
 * GS_ECORRUPT (a value shorter than its header, a damaged body; detail
 * set) or GS_ENOMEM. Any thread, scratch its own. */
int gs_log_val_get(const MDB_val *v, gs_wbuf_t *scratch, gs_log_val_t *out);

/* head_seq in a read transaction: 0 when empty. Returns 0 or a GS_E* code. */
int gs_log_head(gs_store_t *st, MDB_txn *txn, uint64_t *head);

#endif

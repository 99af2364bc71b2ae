/*
 * gs_store_replica: a replica store (the city tier, docs/federation.md).
 * A replica takes no uploads; it applies the change events of one or more
 * origin stores (district stores, each named by its area prefix) as they
 * come from JetStream, into its own tables, under its own seqs and change
 * log, and keeps per origin what it has applied (the origins table).
 *
 * Where it sits: the broker's replica thread (broker/gs_replica.c) calls
 * gs_store_replicate with the messages of one fetch and acks them after it
 * returns; --replica-rebaseline calls gs_store_origin_rebaseline once at
 * start, and --replica-repair calls gs_store_cell_repair once per cell
 * before the origin's consumer resumes. The readers (stats, metrics, gridctl) call gs_store_origin_get and
 * gs_store_origins.
 *
 * gs_store_replicate, gs_store_origin_rebaseline and the readers are in
 * gs_store_replica.c, gs_store_cell_repair in gs_store_repair.c.
 *
 * Threads: gs_store_replicate, gs_store_origin_rebaseline and
 * gs_store_cell_repair are writes
 * (serialised with every other write of the store, one writer thread);
 * the two readers any thread.
 */
#ifndef GS_STORE_REPLICA_H
#define GS_STORE_REPLICA_H

#include <stddef.h>
#include <stdint.h>

#include "gs_store.h"

/* Why an origin's message was refused. Each stops that origin. */
enum {
    GS_REPL_OK = 0,
    GS_REPL_DECODE = 1,     /* the data is not a ChangeEvent a store writes */
    GS_REPL_HEADER = 2,     /* a header missing, malformed or not matching the event */
    GS_REPL_ORIGIN = 3,     /* from another origin, or touching another origin's records */
    GS_REPL_GAP = 4,        /* out of order: an event is missing before it */
    GS_REPL_EPOCH = 5,      /* another lineage epoch than the one recorded */
    GS_REPL_CONFLICT = 6,   /* does not fit what the replica holds of that origin */
    GS_REPL_AREA = 7,       /* the followed prefix differs from the recorded one */
    GS_REPL_STOPPED = 8,    /* the origin was stopped by an earlier refusal */
    GS_REPL_REASONS = 9
};

/* Short name of a refusal reason ("decode", "gap", ...), for logs and
 * metric labels; "ok" for 0, "unknown" for others. */
const char *gs_repl_reason_name(int reason);

/* An origin's state. */
enum { GS_ORIGIN_NEW = 0, GS_ORIGIN_RUNNING = 1, GS_ORIGIN_STOPPED = 2 };

/* One entry of the origins table. */
typedef struct gs_origin {
    char area[GS_GRID_LEN + 1];     /* the origin's name: its area prefix */
    char followed[GS_GRID_LEN + 1]; /* the prefix followed in it ("" before the first) */
    uint64_t epoch;                 /* its lineage epoch (0 before the first event) */
    uint64_t last_seq;              /* last origin seq applied (0: none) */
    int64_t last_committed_at;      /* that event's committed_at at the origin, Unix ms */
    uint64_t applied;               /* events applied since the last re-baseline */
    uint64_t stream_seq;            /* the stream sequence of the last message applied */
                                    /* or skipped (0: none): where to resume          */
    int state;                      /* GS_ORIGIN_* */
    int reason;                     /* GS_REPL_* when stopped */
    uint64_t stop_seq;              /* the origin seq of the refused message (0: none) */
    char message[256];              /* why it stopped, for a person */
} gs_origin_t;

/* One message of an origin's stream: the packed ChangeEvent as the origin's
 * change log holds it, and the header values as received (NUL-terminated
 * strings; NULL when the header is absent). */
typedef struct gs_repl_msg {
    const uint8_t *data;            /* packed gridsync.v1.ChangeEvent */
    size_t len;                     /* its length */
    const char *h_origin;           /* Gridsync-Origin */
    const char *h_epoch;            /* Gridsync-Epoch: 16 lower-case hex digits */
    const char *h_seq;              /* Gridsync-Seq: decimal */
    uint64_t stream_seq;            /* its sequence in the stream (0: unknown) */
} gs_repl_msg_t;

/* What one gs_store_replicate call did. */
typedef struct gs_repl_result {
    size_t consumed;                /* messages from the first that were applied or */
                                    /* skipped as redeliveries: ack these          */
    size_t applied;                 /* events installed */
    size_t skipped;                 /* redeliveries (origin seq <= last applied) */
    int refused;                    /* GS_REPL_* of message [consumed], 0: none */
    uint64_t refused_seq;           /* its Gridsync-Seq (0 when unreadable) */
    char message[256];              /* the refusal, for a person */
    gs_origin_t origin;             /* the origin's entry after the commit */
} gs_repl_result_t;

/* Apply msgs[0..n) of origin area (2 to 12 digits), following prefix
 * followed (the origin's area, or a longer prefix under it), in ONE write
 * transaction with one durable commit (map growth redone as for
 * gs_store_apply). For each message in order:
 *   - checked: it passes gs_prescan (with the store's limits) and decodes
 *     as a ChangeEvent with a 15-digit grid under
 *     followed, a known op and kind and a record that decodes, has a kind,
 *     grid and id and agrees with the event; Gridsync-Origin is area,
 *     Gridsync-Seq is the event's seq, Gridsync-Epoch parses and is the
 *     epoch recorded for area (any epoch when none is recorded yet);
 *   - a redelivery (seq <= last applied) is skipped;
 *   - the entry keeps the highest stream_seq of the messages applied or
 *     skipped, so that the caller can resume the stream right after it;
 *   - in order when prev_seq[L] (L = followed's hierarchy level) equals
 *     the last applied origin seq (0 before the first), else a gap;
 *   - installed: UPSERT and VOID write the version the event carries (its
 *     record bytes as they are, its version, content hash computed from
 *     the bytes, person HMACs with this store's key, natural key, cell
 *     counts), MOVE_OUT removes the record from its old cell, MOVE_IN
 *     installs it in the new one; each gets one event in this store's own
 *     change log (own seq and prev_seq chain, origin/origin_epoch/
 *     origin_seq set). A record id held by a record outside area, a
 *     natural key held by another record, a MOVE_OUT of a record the
 *     replica does not hold in that cell, an UPSERT of a record held in
 *     another cell and a version not above the held one are refusals.
 * The first refused message stops the walk: the messages before it are
 * applied and committed with the entry, which records the origin as
 * stopped (reason, seq, message); nothing of the refused message is
 * written, and later calls for a stopped origin refuse at once
 * (GS_REPL_STOPPED) until gs_store_origin_rebaseline. A stopped origin
 * never holds back another: each has its own entry.
 *
 * Returns 0 when the outcome is in *res (a refusal included) and *out
 * holds the events to publish (free with gs_apply_out_clear; uploads
 * empty); on an error (GS_EFULL, GS_EIO, ...) nothing was committed and
 * the caller retries the same messages later. GS_EINVAL for a bad area or
 * followed, GS_EREADONLY for a read-only store. now_ms stamps the commit. */
int gs_store_replicate(gs_store_t *self, const char *area, const char *followed,
                       const gs_repl_msg_t *msgs, size_t n, int64_t now_ms,
                       gs_repl_result_t *res, gs_apply_out_t *out);

/* Checking ahead: the checks of gs_store_replicate that read no table
 * (headers, gs_prescan, decoding, the event's fields, its record's
 * prepared view with this store's HMAC key and content hash, the digest
 * entry of the version it installs) made on a
 * thread of the caller's (the checker) while gs_store_replicate_ahead
 * applies the same batch on the writer thread, each message as soon as it
 * is checked. The outcome is exactly gs_store_replicate's, refusals and
 * their order included. The caller's own per-message work that needs no
 * table (reading a message's headers out of its transport's form) can go
 * there too: see gs_repl_fill_fn.
 *
 * Use: the checker thread loops on gs_repl_ahead_run until it returns -1;
 * for each batch the writer calls gs_repl_ahead_begin, then
 * gs_store_replicate_ahead, then gs_repl_ahead_end (which waits until the
 * checker has let go of the messages; only then may they be freed), and
 * gs_repl_ahead_stop before it joins the checker. The memory of a batch's
 * decoded events (a few MB for thousands of messages) is kept until the
 * next batch begins. */
typedef struct gs_repl_ahead gs_repl_ahead_t;

/* A checker's state for store self; NULL when out of memory. */
gs_repl_ahead_t *gs_repl_ahead_new(gs_store_t *self);

/* Free it (its thread joined); sets *self_p to NULL. Safe on NULL. */
void gs_repl_ahead_destroy(gs_repl_ahead_t **self_p);

/* The checker thread's step: wait for a batch, check its messages in
 * order until all are checked or the batch ends. Returns 0, or -1 once
 * gs_repl_ahead_stop was called. */
int gs_repl_ahead_run(gs_repl_ahead_t *self);

/* End the checker's thread: its gs_repl_ahead_run returns -1. Any thread. */
void gs_repl_ahead_stop(gs_repl_ahead_t *self);

/* Completes message i of a batch (*m, which is msgs[i]) before it is
 * checked: sets what the caller left out of it (its header values). Called
 * once for each message, in order, on the checker's thread, and on the
 * writer's thread for a message the checker did not reach (it was
 * stopped), never on both for one message; may be called again for a
 * message after map growth, and must then give the same values. Touches
 * nothing of the store. */
typedef void (gs_repl_fill_fn)(void *arg, size_t i, gs_repl_msg_t *m);

/* Hand msgs[0..n) of origin area, following prefix followed, to the
 * checker (the writer; the previous batch ended). fill (may be NULL: the
 * messages are complete) with fill_arg completes each message first. The
 * messages stay the caller's and, but for what fill writes into them,
 * unchanged until gs_repl_ahead_end; the caller reads them again only
 * after that. Returns 0, or -1 (out of memory, stopped, or names too
 * long): complete the messages and use gs_store_replicate then. */
int gs_repl_ahead_begin(gs_repl_ahead_t *self, const char *area, const char *followed,
                        gs_repl_msg_t *msgs, size_t n, gs_repl_fill_fn *fill, void *fill_arg);

/* gs_store_replicate of the batch begun in ahead (self is the store ahead
 * was made for), its messages' checks taken from the checker. Same
 * results, errors and thread as gs_store_replicate. */
int gs_store_replicate_ahead(gs_store_t *self, gs_repl_ahead_t *ahead, int64_t now_ms,
                             gs_repl_result_t *res, gs_apply_out_t *out);

/* End the batch (the writer): the checker stops on it and lets go of its
 * messages before this returns. */
void gs_repl_ahead_end(gs_repl_ahead_t *self);

/* Re-baseline origin area: remove every record under area (each with a
 * MOVE_OUT event of this store's own: origin set, origin_seq 0, so that
 * followers of the replica see the records leave), with their ids, person
 * index entries, natural keys and cell counts, and reset the origin's
 * entry, so that the next gs_store_replicate accepts any epoch from its
 * first event. One transaction. *removed (may be NULL) gets the number of
 * records removed. Returns 0 or a GS_E* code. */
int gs_store_origin_rebaseline(gs_store_t *self, const char *area, int64_t now_ms,
                               uint64_t *removed, gs_apply_out_t *out);

/* What one gs_store_cell_repair call did. */
typedef struct gs_repair_result {
    size_t events;                  /* origin events of the cell read, up to last_seq */
    size_t later;                   /* messages past the applied position (left to */
                                    /* the consumer)                               */
    size_t records;                 /* records the origin holds in the cell at last_seq */
    size_t unchanged;               /* held exactly so already */
    size_t installed;               /* written anew (missing, other version, content */
                                    /* or status, or held in another cell)           */
    size_t removed;                 /* held here but not by the origin */
    uint64_t last_seq;              /* the origin seq the cell was repaired to */
    int refused;                    /* GS_REPL_* why nothing was written, 0: repaired */
    uint64_t refused_seq;           /* the origin seq of the message refused (0: none) */
    char message[256];              /* the refusal, for a person */
} gs_repair_result_t;

/* Repair one cell (15-digit grid) of origin area: make the records this
 * store holds in it exactly those the origin held there at the position
 * this store has applied (the origin's last applied seq), in ONE write
 * transaction with one durable commit. msgs[0..n) are the messages of the
 * origin's stream on the cell's subjects (gridsync.<cell tokens>.*), in
 * stream order, from the stream's first such message to at least the
 * recorded stream position; those whose origin seq is above the last
 * applied seq are counted in later and otherwise ignored (the origin's
 * consumer applies them). Each message is checked as gs_store_replicate
 * checks one (headers, gs_prescan, decoding, the record agreeing with the
 * event, the recorded epoch), and the messages must be complete: each
 * event's prev_seq at the cell level names the cell event before it (0 for
 * the first), else a gap.
 * The final state of each record is its last event: MOVE_OUT means not in
 * the cell, anything else the record that event carries. Then, through
 * gs_record_write (so the ids, person index, cell counts and digests
 * follow), each held record the origin does not hold in the cell is
 * removed (a MOVE_OUT of this store's own, origin_seq 0), and each record
 * the origin holds that differs here (missing, another version, content
 * hash or status, or held in another cell, from which it is removed
 * first) is written as UPSERT or VOID with origin_seq the seq of its last
 * event; records that agree are not touched. The origin's entry is not
 * changed.
 *
 * A refusal (res->refused: a message that fails its checks, a gap in the
 * cell's chain, a record id held under another origin's area, a natural
 * key held by a record of another cell, a cell outside the followed prefix, an
 * origin that has applied nothing) writes nothing. Returns 0 with the
 * outcome in *res and the events to publish in *out (free with
 * gs_apply_out_clear), or a GS_E* error with nothing committed (GS_EINVAL:
 * a bad area or cell, GS_EREADONLY). Writer thread (the replica thread). */
int gs_store_cell_repair(gs_store_t *self, const char *area, const char *cell,
                         const gs_repl_msg_t *msgs, size_t n, int64_t now_ms,
                         gs_repair_result_t *res, gs_apply_out_t *out);

/* The entry of origin area into *o. Returns 0, GS_ENOTFOUND (o zeroed,
 * area set, state NEW) or another GS_E* code. Any thread. */
int gs_store_origin_get(gs_store_t *self, const char *area, gs_origin_t *o);

/* Every entry, in area order. fn returns 0 to go on. Any thread; fn runs
 * inside the read transaction and must not call the store. */
typedef int (gs_origin_fn)(void *arg, const gs_origin_t *o);
int gs_store_origins(gs_store_t *self, gs_origin_fn *fn, void *arg);

#endif

/*
 * gs_store: the grid store. LMDB keyed by grid cell, with dedup, a change
 * log, a person index, per-cell metadata and the device/grid registries.
 *
 * Where it sits: the broker's writer thread calls gs_store_apply() with a
 * group of uploads and gets back, after a durable commit, one packed Ack per
 * upload and the change events to publish. The broker's reader threads and
 * gridctl use the read functions, which run in read-only transactions and
 * never block the writer. This is the only code in gridsync that includes
 * lmdb.h; every key layout is defined in gs_store_keys.c and docs/store.md.
 *
 * Errors: functions return 0 or a negative GS_E* code; gs_store_strerror()
 * names it. LMDB and errno codes are translated here, once.
 *
 * Threads: one gs_store_t may be shared by threads. Write functions
 * (apply, device/grid puts) are serialised inside the store (one writer at
 * a time); read functions may be called from any number of threads
 * concurrently and never wait for the writer. Callbacks of the read
 * functions run inside their read transaction and must not call back into
 * the store (a nested read can deadlock against map growth); the person
 * index functions are the exception and say so.
 */
#ifndef GS_STORE_H
#define GS_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "gs_incident.h"
#include "gs_validate.h"

/* ---- Errors ------------------------------------------------------------- */

enum {
    GS_OK = 0,
    GS_ENOTFOUND = -1001,   /* key, record or device does not exist */
    GS_EFULL = -1002,       /* disk full (ENOSPC) or the map cannot grow further */
    GS_EIO = -1003,         /* I/O error from the filesystem */
    GS_ECORRUPT = -1004,    /* store file damaged or of another format */
    GS_EINVAL = -1005,      /* bad argument (API misuse caught at runtime) */
    GS_ENOMEM = -1006,      /* out of memory */
    GS_EREADONLY = -1007,   /* write on a store opened read-only */
    GS_EVERSION = -1008,    /* store written by an incompatible version */
    GS_EBUSY = -1009,       /* store locked or too many readers */
    GS_EINTERNAL = -1010    /* anything else; logged with the LMDB code */
};

/* A person can act on this: "disk full", "record not found", ... */
const char *gs_store_strerror(int err);

/* Detail of the last error the store reported to the calling thread, e.g.
 * "apply: MDB_MAP_FULL: Environment mapsize limit reached (-30792)"; for
 * logs. Thread-local; "" when there is none. */
const char *gs_store_errdetail(void);

/* ---- Opening ------------------------------------------------------------ */

typedef struct gs_store gs_store_t;

typedef struct gs_store_opts {
    size_t map_size;            /* initial map size in bytes (default 64 MiB) */
    size_t map_max;             /* growth limit in bytes (default 1 TiB) */
    int read_only;              /* open read-only (gridctl on a live store) */
    int exclusive;              /* the broker's open: take the store lock (see */
                                /* gs_store_new); not with read_only          */
    int no_sync;                /* BENCHMARK ONLY: MDB_NOSYNC; acks not durable */
    uint32_t idem_max_entries;  /* idempotency entries kept (default 1,000,000) */
    int64_t idem_max_age_ms;    /* and for at most this long (default 30 days) */
    uint32_t max_readers;       /* LMDB reader slots (default 256) */
    const gs_limits_t *limits;  /* validation limits (NULL = defaults) */
    /* Called when LMDB stops the process on a failed internal assertion (a
     * damaged page it cannot go on from), with LMDB's message, just before
     * LMDB calls abort(): the last chance to log why. Any thread. NULL:
     * the message goes to stderr. */
    void (*on_fatal)(const char *msg);
} gs_store_opts_t;

/* Fill o with the defaults above. */
void gs_store_opts_init(gs_store_opts_t *o);

/* Open (creating if needed, unless read_only) the store in directory dir.
 * On first open also creates dir/secret.key (32 random bytes, mode 0600), the
 * per-deployment HMAC key for the person index; a store that has data but
 * lost its secret.key is refused (GS_ECORRUPT) rather than re-keyed. A
 * store of another format version gives GS_EVERSION, except a store of
 * format 2 (before digests), 3 (the person index of one entry per ref), 4
 * (canonical ids entries that repeat the id), 5 (no compressed change
 * log entry) or 6 (records values with full person refs), which an
 * exclusive open upgrades: in one transaction it builds the digests from the records
 * (format 2; gs_store_digests_built says how many records), rebuilds the
 * person index from the records' refs (formats 2 and 3;
 * gs_store_persons_built says how many tags), rewrites the canonical ids
 * entries (gs_store_ids_compacted says how many) and marks format 7; a
 * format 5 or 6 store (raw change log entries, full person refs, both
 * read as they are) needs only the mark. Other
 * opens of them read everything but the digests of format 2 (person
 * lookups read every cell's records until the upgrade), and a write of
 * records through them fails with GS_EVERSION. Cleans stale reader
 * slots. read_only never creates the store (GS_ENOTFOUND when missing; LMDB
 * may still create its lock.mdb beside an existing data file) and works
 * without secret.key (the person-index calls then return GS_ENOTFOUND).
 *
 * Before LMDB maps data.mdb, its two meta pages are read and checked
 * against LMDB's layout and the file size: a file that is not an LMDB
 * file, of another LMDB format, or shorter than its last committed page
 * gives GS_ECORRUPT with a detail saying which ("data.mdb is truncated: N
 * bytes, the last committed page needs M"), instead of a SIGBUS later.
 *
 * exclusive (one store, one broker): takes an exclusive lock (flock) on the
 * store directory itself before LMDB opens anything, and writes this
 * process's pid into dir/broker.pid. The lock is held until
 * gs_store_destroy (or the process ends). While another process holds it
 * the open fails with GS_EBUSY and a detail naming the holder ("store is in
 * use by gridsyncd pid N"). Non-exclusive opens (gridctl) do not take it
 * and are not stopped by it.
 * Returns NULL on failure with *err set (err may be NULL). */
gs_store_t *gs_store_new(const char *dir, const gs_store_opts_t *opts, int *err);

/* Close and free; sets *self_p to NULL. Safe on NULL and twice. */
void gs_store_destroy(gs_store_t **self_p);

/* ---- Applying uploads (writer thread only) ------------------------------ */

/* One upload as decoded by the broker. The store reads and may normalise
 * the records in place (see gs_record_check); alloc is the allocator they
 * were unpacked with (NULL = malloc/free). */
typedef struct gs_upload {
    const char *device_id;              /* authenticated device id */
    const char *upload_id;
    Gridsync__V1__Record **records;
    size_t n_records;
    ProtobufCAllocator *alloc;
    const char *const *prefixes;        /* grid prefixes the device may write; */
    size_t n_prefixes;                  /* none = it may write nothing          */
    const struct gs_prepared *prepared; /* NULL, or what gs_store_prepare     */
                                        /* made of these records: the apply    */
                                        /* then neither validates nor packs,   */
                                        /* hashes or HMACs them again          */
    int scope_all;                      /* 1: the uploader may write every     */
                                        /* grid (an ADMIN, or --insecure-dev's */
                                        /* unregistered sender); prefixes are  */
                                        /* then ignored. Never inferred from   */
                                        /* an empty list: set it explicitly    */
} gs_upload_t;

/* Who sent an upload, as far as the incident workflow asks (docs/data-
 * model.md, "Incident workflow"): its role, and for a DEPARTMENT its
 * department code and the incident categories it handles. All zero = a
 * DEVICE. The registry id is gs_upload_t.device_id. */
typedef struct gs_principal {
    int role;                           /* PrincipalRole */
    const char *department;             /* DEPARTMENT: its department code */
    const char *const *categories;      /* DEPARTMENT: the categories it */
    size_t n_categories;                /* handles (none = none)          */
} gs_principal_t;

/* ---- Preparing uploads (any thread) -------------------------------------- */

/* What an apply needs of one record and can have without a transaction: its
 * verdict, the record packed as stored, its content hash, its natural key
 * and the HMACs of the persons it names. Opaque; made by gs_store_prepare. */
typedef struct gs_prepared gs_prepared_t;

/* Validate and normalise records[0..n) in place (gs_record_check with the
 * store's limits; a NULL record is rejected as empty) and compute for each
 * valid record what gs_store_apply would otherwise compute inside its write
 * transaction. Pure CPU and thread-safe: the broker runs it on its frontend
 * thread, so the writer's transaction holds little more than LMDB reads and
 * puts, and the two threads work on different uploads at the same time.
 * Memory comes from alloc (required, like an arena: it must outlive the
 * apply, and nothing is freed one by one). now_ms as for gs_store_apply, on
 * the same day. *out gets n entries: pass it as gs_upload_t.prepared with
 * the same records. The apply gives the same results with or without it.
 * Returns 0, GS_EINVAL (no alloc) or GS_ENOMEM. */
int gs_store_prepare(gs_store_t *self, Gridsync__V1__Record **records, size_t n,
                     ProtobufCAllocator *alloc, int64_t now_ms, gs_prepared_t **out);

/* gs_store_prepare for records unpacked from bytes the caller still has:
 * wire[i] (wire_len[i] bytes; wire, or one entry, may be NULL) is what
 * records[i] was unpacked from. A record that normalisation leaves as it
 * was (gs_record_check_changed) and whose bytes are in the one form
 * protobuf-c packs (gs_wire_is_canonical) keeps those bytes as its packed
 * form instead of being packed again: the same bytes, the same results.
 * Those bytes are borrowed, not copied: they must stay unchanged until the
 * apply that uses *out has returned. Same thread rules, memory and errors
 * as gs_store_prepare. */
int gs_store_prepare_wire(gs_store_t *self, Gridsync__V1__Record **records,
                          const uint8_t *const *wire, const size_t *wire_len, size_t n,
                          ProtobufCAllocator *alloc, int64_t now_ms, gs_prepared_t **out);

/* gs_store_prepare_wire where the caller has found already which records'
 * bytes are canonical (gs_prescan_records, the walk that checks a request
 * before it is unpacked): wire[i] is given only for those, and is not
 * walked again; a record without wire[i] is packed. Such a record holds no
 * field the schema does not know (gs_record_check_known). The same bytes
 * and results as gs_store_prepare_wire; the same rules. */
int gs_store_prepare_canonical(gs_store_t *self, Gridsync__V1__Record **records,
                               const uint8_t *const *wire, const size_t *wire_len, size_t n,
                               ProtobufCAllocator *alloc, int64_t now_ms,
                               gs_prepared_t **out);

/* What one upload got. */
typedef struct gs_upload_result {
    uint8_t *ack;               /* packed gridsync.v1.Ack (owned by the gs_apply_out_t) */
    size_t ack_len;
    int replayed;               /* 1: answered from the idempotency table; nothing written */
    uint32_t counts[GS_RESULT_STATUSES]; /* records by ResultStatus (index = status value) */
} gs_upload_result_t;

/* IncidentStatus values, for tables indexed by them (CLOSED + 1). */
#define GS_INCIDENT_STATUSES (GRIDSYNC__V1__INCIDENT_STATUS__INCIDENT_STATUS_CLOSED + 1)

/* One change event produced by an apply, ready to publish. */
typedef struct gs_event_out {
    char grid[GS_GRID_LEN + 1]; /* topic */
    uint64_t seq;
    uint8_t *data;              /* packed gridsync.v1.ChangeEvent (owned by the gs_apply_out_t) */
    size_t len;
} gs_event_out_t;

typedef struct gs_apply_out {
    gs_upload_result_t *uploads;    /* n entries, same order as the input */
    size_t n_uploads;
    gs_event_out_t *events;         /* in seq order */
    size_t n_events;
    uint64_t head_seq;              /* last seq after the commit */
    uint32_t map_grows;             /* times the map grew during this apply */
    uint32_t incident_steps[GS_INCIDENT_STATUSES]; /* incident steps stored, by the
                                     * IncidentStatus they led to */
    void *bytes;                    /* where acks and event data point (may be NULL);
                                     * freed with the rest by gs_apply_out_clear */
} gs_apply_out_t;

/* Apply n uploads in ONE write transaction and commit it (full sync unless
 * no_sync). Each upload is looked up in the idempotency table first: a
 * (device_id, upload_id) seen before gets its stored Ack back unchanged and
 * writes nothing. Otherwise each record is validated and classified:
 *   accepted  - stored as a new version (version, seq set)
 *   unchanged - same content as stored (metadata aside): no version, no event
 *   merged    - same natural key (address code or grid+room) as a record
 *               under another id: applied to that record, whose id is
 *               returned in record_key; the new id becomes an alias
 *   conflict  - base_version stale and content differs: nothing stored,
 *               version = the current version
 *   rejected  - validation failed or grid outside the device's prefixes
 *               (with no prefixes and scope_all 0, every record), or an
 *               incident step the workflow or the uploader's role does not
 *               allow (TRANSITION, ROLE; gs_incident.h has the table)
 * A new or changed incident is stored as the store rewrites it: its history
 * gets one entry for the step (by = device_id, role, at = now_ms, the note
 * of the upload's last history entry), and its department, reported_at,
 * due_at, dispatch_due_at and closed_at are set by the step, whatever the
 * upload said (docs/data-model.md).
 * A record whose grid code changed moves: MOVE_OUT in the old cell and
 * MOVE_IN in the new cell, consecutive seqs, one new version.
 *
 * On MDB_MAP_FULL the transaction is aborted, the map grown (doubling, up to
 * map_max) and the whole batch applied again: nothing is lost or half-applied.
 * Results are final only when this returns 0; then out holds them (free with
 * gs_apply_out_clear). On error nothing was committed and out is empty:
 * GS_EFULL for a full disk (retry later), others as named. A storage error
 * in any lookup (a damaged grid registry entry, record or index: for
 * example GS_ECORRUPT) aborts the whole batch; it is never turned into one
 * record's rejection.
 * now_ms is the broker clock (commit time, idempotency age).
 *
 * Details: uploads are applied in order, so a later record (or upload) sees
 * what an earlier one in the same call did; the same (device_id, upload_id)
 * twice in one call gets the first one's Ack, marked replayed. An upload
 * whose ids are not identifiers, or that has no records or more than
 * limits.max_records, gets an Ack with a request-level reason and no
 * results; that answer is not remembered. Idempotency entries expire,
 * oldest first, once there are more than idem_max_entries or they are older
 * than idem_max_age_ms (checked at each apply): a retransmission after that
 * is applied again, and content dedup then answers "unchanged". */
int gs_store_apply(gs_store_t *self, gs_upload_t *ups, size_t n,
                   int64_t now_ms, gs_apply_out_t *out);

/* gs_store_apply with the principal of each upload: whos[i] sent ups[i]
 * (whos NULL = every upload from a DEVICE, which is what gs_store_apply
 * does). Only the incident workflow reads it. */
int gs_store_apply_as(gs_store_t *self, gs_upload_t *ups,
                      const gs_principal_t *whos, size_t n, int64_t now_ms,
                      gs_apply_out_t *out);

/* Free what an apply returned and zero it. Safe on a zeroed struct. */
void gs_apply_out_clear(gs_apply_out_t *out);

/* ---- Change log and sync (any thread) ------------------------------------ */

/* Last committed seq (0 for an empty store). */
int gs_store_head(gs_store_t *self, uint64_t *head_seq);

/* The store's lineage epoch: a random non-zero number created when the
 * store is first opened for writing (or, for a store made before epochs,
 * at its first writable open after that) and changed by every backup copy
 * and restore. Seqs are only comparable between two reads with the same
 * epoch: a follower whose checkpoint was taken under another epoch must
 * start over (docs/protocol.md). Read once at open and cached, so this
 * costs nothing; any thread. Returns 0, or GS_ENOTFOUND (*epoch = 0) for a
 * read-only open of a store that has none yet. */
int gs_store_epoch(gs_store_t *self, uint64_t *epoch);

/* Called once per event, in seq order. data is a packed ChangeEvent valid
 * only during the call. Return 0 to go on, anything else to stop early
 * (that value is then returned by the caller). */
typedef int (gs_event_fn)(void *arg, uint64_t seq, const char *grid,
                          const uint8_t *data, size_t len);

/* Events with seq > since whose grid code starts with one of the prefixes
 * (n_prefixes == 0 means none match; pass "" for everything; overlapping
 * prefixes deliver an event once), at most limit (0 = no limit), from one
 * read transaction. *next_seq is the seq to pass as since next time: the
 * seq of the last event delivered when the limit was reached, otherwise the
 * head (so a filtered-out stretch is not scanned again); when fn stops the
 * walk it is the seq before the event fn refused. *head_seq is the last
 * committed seq in that transaction. For a prefix set covering at most 64
 * cells the per-cell logs are merged, so the cost follows those cells'
 * traffic, not the store's; otherwise the global log is scanned from since.
 * Both give the same answer. */
int gs_store_events(gs_store_t *self, const char *const *prefixes,
                    size_t n_prefixes, uint64_t since, uint32_t limit,
                    gs_event_fn *fn, void *arg,
                    uint64_t *next_seq, uint64_t *head_seq);

/* A record as stored. Pointers are valid only during the callback. */
typedef struct gs_record_view {
    const char *grid;           /* 15 digits */
    int kind;                   /* RecordKind */
    const char *record_key;     /* canonical id */
    uint64_t version;
    uint64_t seq;               /* seq of the event that made this version */
    int64_t updated_at;         /* Unix ms of that commit */
    int status;                 /* RecordStatus */
    const uint8_t *data;        /* packed gridsync.v1.Record */
    size_t len;
} gs_record_view_t;

typedef int (gs_record_fn)(void *arg, const gs_record_view_t *rec);

/* Snapshot paging: all records under the prefixes (void ones included, see
 * status) as of one read transaction, in key order, at most limit per call
 * (0 = all in one page). cursor/cursor_len is
 * empty for the first page; *next_cursor (malloc'd, caller frees; NULL when
 * done) continues. *snapshot_seq is the head seq of the read transaction of
 * the FIRST page; a client follows deltas after it and applies them by
 * version, so later pages read at a newer seq do no harm. The cursor carries
 * that first seq and is tied to the prefix set (GS_EINVAL with another set
 * or damaged bytes). Cost is proportional to the records under the
 * prefixes. */
int gs_store_snapshot(gs_store_t *self, const char *const *prefixes,
                      size_t n_prefixes, const uint8_t *cursor,
                      size_t cursor_len, uint32_t limit,
                      gs_record_fn *fn, void *arg, uint8_t **next_cursor,
                      size_t *next_cursor_len, uint64_t *snapshot_seq);

/* ---- Lookups (any thread) ------------------------------------------------ */

/* One record by id (canonical or alias) of the given kind; kind 0 tries
 * households, rentals, organisations, then incidents. GS_ENOTFOUND if
 * absent. */
int gs_store_get(gs_store_t *self, int kind, const char *record_id,
                 gs_record_fn *fn, void *arg);

/* The change events of one record, oldest first (follows moves). */
int gs_store_history(gs_store_t *self, int kind, const char *record_id,
                     gs_event_fn *fn, void *arg);

/* Records under a prefix in key order (ls, export). */
int gs_store_records(gs_store_t *self, const char *prefix,
                     gs_record_fn *fn, void *arg);

/* Per-cell metadata, maintained on every write. */
typedef struct gs_cell_meta {
    uint32_t households;        /* active household records */
    uint32_t persons;           /* members of active households */
    uint32_t rentals;           /* active rental units */
    uint32_t tenants;           /* leases of active rental units */
    uint32_t voided;            /* void records of any kind */
    uint64_t last_seq;          /* last event in this cell */
    int64_t last_update;        /* Unix ms of that event */
    uint32_t organisations;     /* active organisation records */
    uint32_t employees;         /* employees listed by active organisations */
    uint32_t incidents;         /* active incident records, any workflow status */
} gs_cell_meta_t;

typedef int (gs_cell_fn)(void *arg, const char *grid, const gs_cell_meta_t *m);

/* Every cell under prefix with its metadata, in code order. O(cells). */
int gs_store_cells(gs_store_t *self, const char *prefix, gs_cell_fn *fn,
                   void *arg);

/* Last seq of an event under prefix (a level boundary), 0 if none: the
 * largest last seq of the cells under it. O(cells under prefix). */
int gs_store_prefix_last(gs_store_t *self, const char *prefix,
                         uint64_t *last_seq);

/* ---- Digests (any thread) ------------------------------------------------ */

/* Every store keeps, in the transaction that writes the records, an
 * order-independent digest of its current records per cell and per level
 * prefix (0, 2, 4, 6, 9, 12 digits and the 15-digit cell): the XOR of one
 * 16-byte entry per record, BLAKE2b-128 over grid · kind · canonical id ·
 * version · status · content hash, and the count of those records. Two
 * stores holding the same current records have equal digests at every
 * level whatever order wrote them (docs/store.md, "Digests"). */

#define GS_DIGEST_LEN 16

/* A prefix's digest. */
typedef struct gs_digest_node {
    char prefix[GS_GRID_LEN + 1];   /* a level prefix; "" for the root */
    uint8_t digest[GS_DIGEST_LEN];  /* XOR of its records' entries; zeros when empty */
    uint64_t count;                 /* records under it (any status) */
} gs_digest_node_t;

/* One record of a cell as its digest entry sees it. record_key is valid
 * only during the callback. */
typedef struct gs_digest_record {
    int kind;                       /* RecordKind */
    const char *record_key;         /* canonical id */
    uint64_t version;
    int status;                     /* RecordStatus */
    uint8_t hash[16];               /* content hash (the Record without meta) */
} gs_digest_record_t;

/* Return 0 to go on, anything else to stop (returned by gs_store_digest). */
typedef int (gs_digest_child_fn)(void *arg, const gs_digest_node_t *child);
typedef int (gs_digest_record_fn)(void *arg, const gs_digest_record_t *rec);

/* What to read: one prefix, and either its children or its records. */
typedef struct gs_digest_query {
    const char *prefix;             /* "" or 2, 4, 6, 9, 12 or 15 digits */
    gs_digest_child_fn *child_fn;   /* below a cell: each non-empty child at */
                                    /* the next level, in code order (NULL: */
                                    /* not wanted)                           */
    gs_digest_record_fn *record_fn; /* at a cell: its records in key order  */
                                    /* (kind, then id) (NULL: not wanted)    */
    void *arg;                      /* for both */
    const uint8_t *cursor;          /* records after this (a next_cursor); */
    size_t cursor_len;              /* empty = from the first              */
    uint32_t limit;                 /* records per call, 0 = all */
} gs_digest_query_t;

/* What gs_store_digest read. */
typedef struct gs_digest_result {
    gs_digest_node_t node;          /* the prefix's digest and count */
    uint64_t head_seq;              /* head seq of the read transaction */
    uint8_t *next_cursor;           /* malloc'd (caller frees); NULL when the */
    size_t next_cursor_len;         /* cell's records are complete            */
} gs_digest_result_t;

/* In ONE read transaction: the digest of q->prefix (an absent prefix has
 * count 0 and a zero digest), and with child_fn its children at the next
 * level, or, for a cell, with record_fn its records after the cursor, at
 * most limit (more: *next_cursor is set to continue; the cursor is the
 * last record's kind byte and id, opaque to callers). Cost: one read per
 * child or record. Returns 0, GS_EINVAL (prefix not at a level boundary or
 * not digits, child_fn for a cell, record_fn above one, a damaged cursor),
 * GS_EVERSION (a store whose digests are not built yet, opened by other
 * than a broker: start gridsyncd on it once, detail says so), GS_ENOMEM,
 * a callback's non-zero value, or another error. */
int gs_store_digest(gs_store_t *self, const gs_digest_query_t *q, gs_digest_result_t *out);

/* Records digested by this (exclusive) open's upgrade of a store made
 * before digests (0: none was needed or done). The broker logs it. */
uint64_t gs_store_digests_built(const gs_store_t *self);

/* Person tags written by this (exclusive) open's upgrade of a store of
 * format 2 or 3 to the person index of format 4 (0: none was needed, or
 * no active record names a person). The broker logs it. */
uint64_t gs_store_persons_built(const gs_store_t *self);

/* Canonical ids entries this (exclusive) open's upgrade of a store of
 * format 2, 3 or 4 rewrote as the grid alone (as formats 5 and 6 keep
 * them; 0: none was needed). The broker logs it. */
uint64_t gs_store_ids_compacted(const gs_store_t *self);

/* The format this (exclusive) open upgraded to the current one (2, 3, 4
 * or 5), 0 when the store needed no upgrade. The broker logs it. */
unsigned gs_store_upgraded_from(const gs_store_t *self);

/* ---- Person index (any thread) ------------------------------------------- */

/* One place a person is named. */
typedef struct gs_person_ref {
    const char *grid;
    int kind;                   /* RecordKind of the record naming the person */
    const char *record_key;
    int role;                   /* GS_PERSON_ROLE_* */
} gs_person_ref_t;

/* Roles in the person index. GS_PERSON_ROLE_ORG is not a person: an
 * organisation record is indexed by its USCC too (under an HMAC no ID
 * number can have), so one USCC at two addresses groups like a person
 * living in two places. */
enum {
    GS_PERSON_ROLE_MEMBER = 1,          /* household member */
    GS_PERSON_ROLE_TENANT = 2,          /* tenant of a rental unit */
    GS_PERSON_ROLE_LANDLORD = 3,        /* landlord of a rental unit */
    GS_PERSON_ROLE_REPRESENTATIVE = 4,  /* an organisation's legal representative */
    GS_PERSON_ROLE_CONTACT = 5,         /* an organisation's contact */
    GS_PERSON_ROLE_EMPLOYEE = 6,        /* works at an organisation */
    GS_PERSON_ROLE_ORG = 7,             /* the organisation itself, by its USCC */
};

/* Called for each person (keyed by HMAC of the normalised ID number) named
 * as a household member or tenant by more than one active record (one
 * person living in two places), with all the places that name them,
 * landlord and organisation refs included; and for each USCC held by more
 * than one active organisation record (the same USCC at two addresses: a
 * branch or a duplicate, never merged by the store), with those records
 * (role GS_PERSON_ROLE_ORG). Being landlord of several units, or working
 * at or representing several organisations, is not a duplicate. hmac is
 * 16 bytes. Persons without documents are never grouped.
 * With a non-empty prefix only groups with a place under it are reported.
 * Cost: one scan of the records' person refs per pass, grouped in memory
 * in passes of bounded size. fn runs outside any transaction and may call
 * the store. */
typedef int (gs_dup_fn)(void *arg, const uint8_t *hmac,
                        const gs_person_ref_t *refs, size_t n);
int gs_store_person_dups(gs_store_t *self, const char *prefix,
                         gs_dup_fn *fn, void *arg);

/* The index key of an ID number under this deployment's secret (16 bytes),
 * so an admin can look one person up without the index holding plain IDs. */
int gs_store_person_key(gs_store_t *self, const char *id_number,
                        uint8_t out[16]);
/* Every active place naming the person with that index key, in one call
 * of fn (outside the transaction); GS_ENOTFOUND when none. Cost: one read
 * of every cell's person set, and a scan of the records of the cells whose
 * set holds the key's first four bytes (every cell's, for a store of
 * format 3 or older opened by other than a broker). */
int gs_store_person_refs(gs_store_t *self, const uint8_t hmac[16],
                         gs_dup_fn *fn, void *arg);

/* ---- Registries ---------------------------------------------------------- */

/* Devices: key = device_id; value = packed gridsync.v1.Device.
 * put replaces; the public key index is kept in step. Writer: any one thread
 * at a time (the broker serialises these with apply). put refuses
 * (GS_EINVAL, with the detail set) a bad id, key or prefix, an unknown
 * role, and an active DEVICE, DISTRICT, DEPARTMENT or CENTRE entry without
 * prefixes: such an entry could do nothing. An ADMIN needs none; a revoked
 * entry may have none. A DEPARTMENT also needs its department code (an
 * identifier) and, while active, at least one category, each in the
 * store's category table (gs_store_incident_table; a retired one too); any
 * other role with a department or categories is refused. */
int gs_store_device_put(gs_store_t *self, const Gridsync__V1__Device *dev);
/* Caller frees *dev_out with gridsync__v1__device__free_unpacked(.., NULL). */
int gs_store_device_get(gs_store_t *self, const char *device_id,
                        Gridsync__V1__Device **dev_out);
int gs_store_device_by_key(gs_store_t *self, const char *public_key_z85,
                           Gridsync__V1__Device **dev_out);
typedef int (gs_device_fn)(void *arg, const Gridsync__V1__Device *dev);
int gs_store_devices(gs_store_t *self, gs_device_fn *fn, void *arg);

/* Grids registry. */
int gs_store_grid_put(gs_store_t *self, const Gridsync__V1__Grid *grid);
/* Add or replace n grids in one transaction: all of them or, on any
 * invalid grid (GS_EINVAL, detail names it) or store error, none. */
int gs_store_grids_put(gs_store_t *self, Gridsync__V1__Grid *const *grids, size_t n);
int gs_store_grid_get(gs_store_t *self, const char *grid_code,
                      Gridsync__V1__Grid **grid_out);
typedef int (gs_grid_fn)(void *arg, const Gridsync__V1__Grid *grid);
int gs_store_grids(gs_store_t *self, const char *prefix, gs_grid_fn *fn,
                   void *arg);

/* ---- Incident categories ------------------------------------------------- */

/* The incident category table this store validates uploads and computes
 * deadlines with (docs/data-model.md, "Incident categories and
 * deadlines"): the one an operator set, or the built-in one
 * (gs_incident_table_default) when none was set (*configured 0;
 * configured may be NULL). Any thread; one read transaction. Returns 0,
 * GS_ECORRUPT (a stored table that does not parse; detail says where) or
 * another GS_E* code. A city replica applies what its districts decided and
 * never reads it. */
int gs_store_incident_table(gs_store_t *self, gs_incident_table_t *out, int *configured);

/* Replace the table with table, which must read back from its text form
 * (gs_incident_table_parse's rules; GS_EINVAL with the detail otherwise).
 * A code of the stored table that table leaves out must be used by no
 * stored incident and named by no registry entry's categories: else
 * GS_EINVAL, detail "category 03 is used by 4 stored incidents: keep its
 * line and mark it retired ...". Uploads committed after it use the new
 * table; deadlines already set on stored incidents stay as they are.
 * dry_run: the same checks in a read transaction, nothing written. Writer:
 * serialised with apply as the registry puts are. Returns 0 or GS_E*. */
int gs_store_incident_table_put(gs_store_t *self, const gs_incident_table_t *table,
                                int dry_run);

/* ---- Operations ---------------------------------------------------------- */

typedef struct gs_store_info {
    uint64_t head_seq;
    uint64_t records;           /* all stored records (any status) */
    uint64_t events;            /* change-log entries */
    uint64_t idem_entries;      /* idempotency entries held */
    size_t map_size;            /* current map size, bytes */
    size_t map_used;            /* pages in use * page size, bytes */
    size_t file_size;           /* data file size, bytes */
    uint32_t readers_used;
    uint32_t readers_max;
} gs_store_info_t;

int gs_store_info(gs_store_t *self, gs_store_info_t *info);

/* Hot, compacting copy of the store into directory dest (which must not
 * exist, or be an empty directory; else GS_EINVAL), consistent as of one
 * read transaction; writers go on meanwhile (only map growth waits for it).
 * Copies secret.key too. The copy is built in a fresh directory beside dest
 * (dest.tmp-XXXXXX, mode 0700, files 0600), gets a fresh lineage epoch
 * (gs_store_epoch_renew), is synced and then renamed to dest in one step;
 * map growth by another process during the copy makes it start again from
 * scratch rather than fail. On any failure everything it created is removed
 * and dest is left as it was. The copy opens as a normal store. */
int gs_store_backup(gs_store_t *self, const char *dest);

/* Give the closed store in dir a new lineage epoch: a random non-zero
 * uint64 under meta key "epoch" (8 bytes little-endian), committed with a
 * full sync. Used on every backup and restore, so that a store brought back
 * from a copy is never taken for the lineage it was copied from. dir must
 * not be open in this process, nor by a broker. Returns 0 or GS_E*. */
int gs_store_epoch_renew(const char *dir);

/* Put the backup in directory backup in place as the store in dir, which
 * must not be held by a broker (GS_EBUSY, detail names its pid; the lock
 * of gs_store_new's exclusive is taken for the whole restore, so no broker
 * can start meanwhile). The backup must open as a store (GS_ECORRUPT,
 * GS_ENOTFOUND otherwise). A compacted copy of it is built beside dir
 * (data.mdb and secret.key, 0600, in a 0700 directory), given a fresh
 * epoch and synced. Then, when dir is missing or empty, it is renamed to
 * dir; when dir holds anything, with force it is swapped in atomically
 * (renameat2 RENAME_EXCHANGE) and the old store moved to
 * "dir.replaced-YYYYMMDDTHHMMSSZ" (its path in aside), and without force
 * the restore is refused (GS_EINVAL). aside gets "" when nothing was moved.
 * Nothing is left behind on failure. Returns 0 or GS_E*. */
int gs_store_restore(const char *backup, const char *dir, int force, char *aside,
                     size_t aside_size);

/* Check every index against the records: ids, aliases, natural keys, person
 * index, per-cell counts, per-cell log, change-log seqs strictly increasing
 * with no holes, prefix chain heads, and every digest (recomputed from the
 * records; each mismatch, missing or extra prefix is reported). Calls report (if not NULL) with a
 * line for each problem found. Returns 0 when all agree, GS_ECORRUPT when
 * any problem was found, or another error. */
typedef void (gs_report_fn)(void *arg, const char *problem);
int gs_store_verify(gs_store_t *self, gs_report_fn *report, void *arg,
                    uint64_t *problems);

/* Remove stale reader slots left by dead processes; returns how many. */
int gs_store_reader_check(gs_store_t *self, int *dead);

#endif

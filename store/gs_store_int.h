/*
 * gs_store_int: what the store's source files share and nothing outside
 * store/ may see: the gs_store struct, the LMDB handles, the key and value
 * layouts (docs/store.md describes them), the transactions (gs_store_txn.h)
 * and the small codecs used by both the write path (gs_store_apply.c) and
 * the checker (gs_store_verify.c).
 *
 * Where it sits: below gs_store.h. Only the store sources include this file, and so
 * only they include lmdb.h.
 */
#ifndef GS_STORE_INT_H
#define GS_STORE_INT_H

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <string.h>

#include "gs_arena.h"
#include "gs_store.h"
#include "gs_store_debug.h"
#include "gs_store_keys.h"
#include "gs_store_txn.h"
#include "gs_wire.h"

/* ---- Layout constants ------------------------------------------------------ */

#define GS_FORMAT_VERSION 7u        /* meta "format"; bumped on any layout change */
#define GS_FORMAT_FULL_REFS 6u      /* the format whose records values hold full person refs
                                     * (GS_REF_LEN each): a broker's open upgrades it */
#define GS_FORMAT_RAW_LOG 5u        /* the format whose log bodies are all raw (no LZ4,
                                     * gs_store_lz.h): a broker's open upgrades it */
#define GS_FORMAT_FULL_IDS 4u       /* the format whose canonical ids entries repeat the id:
                                     * a broker's open upgrades it */
#define GS_FORMAT_PERSON_KEYS 3u    /* the format with one persons entry per ref: a broker's
                                     * open upgrades it */
#define GS_FORMAT_NO_DIGESTS 2u     /* the format before digests: a broker's open upgrades it */
#define GS_KIND_H 'H'               /* key byte of a household */
#define GS_KIND_R 'R'               /* key byte of a rental unit */
#define GS_KIND_O 'O'               /* key byte of an organisation */
#define GS_KIND_I 'I'               /* key byte of an incident */
#define GS_REC_HDR 48               /* fixed part of a records value */
#define GS_REF_LEN 17               /* one full person ref in a records value: hmac16 + role
                                     * (formats 6 and older) */
#define GS_REF_TAG_LEN 5            /* one person ref as format 7 writes it: the HMAC's first
                                     * 4 bytes (its person index tag) + role (GS_RF_TAGS) */
#define GS_LOG_HDR 23               /* log value: grid(15) + previous seq of the record (8) */
#define GS_EV_RECORD 10             /* ChangeEvent field number of the record */
#define GS_CELL_VAL 40              /* cells value */
#define GS_CELL_VAL_ORG 48          /* cells value with organisation counts (an
                                     * extension, not a format change: every 40-byte
                                     * value stays valid, so "format" stays 2) */
#define GS_IDEM_HDR 40              /* idem value: created_at, fifo_no, counts[6] */
#define GS_NATKEY_MAX 400           /* longer natural keys are hashed (LMDB keys <= 511) */
#define GS_KEY_MAX 511              /* LMDB's default maximum key size */
#define GS_CELL_PATH_MAX 64         /* events: per-cell merge when <= this many cells */

/* Roles a person has in a record (persons value, ref role byte): the
 * public GS_PERSON_ROLE_* of gs_store.h, under the store's short names. */
enum {
    GS_ROLE_MEMBER = GS_PERSON_ROLE_MEMBER,
    GS_ROLE_TENANT = GS_PERSON_ROLE_TENANT,
    GS_ROLE_LANDLORD = GS_PERSON_ROLE_LANDLORD,
    GS_ROLE_REPRESENTATIVE = GS_PERSON_ROLE_REPRESENTATIVE,
    GS_ROLE_CONTACT = GS_PERSON_ROLE_CONTACT,
    GS_ROLE_EMPLOYEE = GS_PERSON_ROLE_EMPLOYEE,
    GS_ROLE_ORG = GS_PERSON_ROLE_ORG,
};

/* The named databases, in one array so that open, verify and the debug hooks
 * can walk them by index. */
enum {
    GS_DB_RECORDS,      /* grid|kind|id -> rec header + packed Record */
    GS_DB_IDS,          /* kind|id -> grid + canonical id */
    GS_DB_NATKEYS,      /* natural key -> kind|canonical id */
    GS_DB_LOG,          /* seq BE -> grid + back seq BE + packed ChangeEvent */
    GS_DB_CELL_LOG,     /* grid|seq BE -> "" */
    GS_DB_IDEM,         /* device\0upload -> idem header + packed Ack */
    GS_DB_IDEM_FIFO,    /* fifo_no BE -> created_at LE + device\0upload */
    GS_DB_PERSONS,      /* grid -> HMAC tags of its active records' persons */
    GS_DB_CELLS,        /* grid -> cell meta */
    GS_DB_CHAIN,        /* format 3 and older: level prefix -> last seq; now empty */
    GS_DB_META,         /* "format", "head_seq", "idem_fifo_next" */
    GS_DB_DEVICES,      /* device_id -> packed Device */
    GS_DB_DEVICE_KEYS,  /* public key Z85 -> device_id */
    GS_DB_GRIDS,        /* grid code -> packed Grid */
    GS_DB_DIGESTS,      /* level digit|level prefix -> digest + record count */
    GS_DB_ORIGINS,      /* a replica's origin area -> its state (gs_store_replica.h) */
    GS_DB_COUNT
};

extern const char *const gs_db_names[GS_DB_COUNT];

/* ---- The store --------------------------------------------------------------- */

struct gs_store {
    MDB_env *env;                   /* NULL only transiently during a reopen */
    MDB_dbi db[GS_DB_COUNT];        /* named database handles */
    char *dir;                      /* store directory */
    gs_store_opts_t opts;           /* options as given, defaults filled */
    gs_limits_t limits;             /* validation limits (copy) */
    unsigned env_flags;             /* flags passed to mdb_env_open */
    size_t map_size;                /* current map size */
    uint8_t secret[32];             /* person-index HMAC key; never logged */
    int have_secret;                /* secret loaded (read-only opens may lack it) */
    int lock_fd;                    /* exclusive: holds the store lock; else -1 */
    int no_origins;                 /* read-only open of a store without `origins` */
    uint64_t epoch;                 /* lineage epoch (meta "epoch"), read at open; 0 = none */
    /* SHA-256 states after the HMAC key's inner and outer pads (RFC 2104),
     * copied per HMAC (gs_store_codec.c); NULL without a secret. libcrypto,
     * not libsodium: see docs/architecture.md. */
    struct gs_hmac_key *hmac;
    /* Growth and reopen need every transaction of this process closed:
     * every transaction holds this shared, mdb_env_set_mapsize and a
     * reopen hold it exclusive. Writer-preferring so growth is not starved. */
    pthread_rwlock_t env_lock;
    pthread_mutex_t write_lock;     /* one writer at a time (apply, registry puts) */
    /* Writer scratch, used only under write_lock. */
    gs_arena_t *arena;              /* per-attempt temporaries */
    gs_wbuf_t out;                  /* acks and events of the running apply */
    gs_wbuf_t pack;                 /* one packed record */
    gs_wbuf_t stored;               /* a stored record decoded from its log entry */
    gs_store_trace_fn *trace;       /* debug: sees every write (bench) */
    void *trace_arg;                /* its argument */
    int fail_commit;                /* debug: the next commit fails with this */
    size_t dup_pass;                /* debug: persons per duplicate-report pass (0 = default) */
    int digests_ready;              /* the digests table is built (format 3) */
    uint64_t digests_built;         /* records digested by this open's upgrade */
    uint32_t format;                /* the store's format (meta "format") */
    int persons_sets;               /* format 4 or newer: person index sets, idem entries
                                     * with their encoding byte, no chain table */
    int format_current;             /* GS_FORMAT_VERSION: the layouts this build writes
                                     * (an older store until a broker's open upgrades it) */
    uint64_t persons_built;         /* person tags written by this open's upgrade */
    uint64_t ids_compacted;         /* canonical ids entries rewritten by this open's upgrade */
    uint32_t upgraded_from;         /* the format this open upgraded; 0: none */
    /* Writer only (under write_lock): the last seq under every level
     * prefix, derived from `cells` and kept in step by the change log
     * (gs_store_log.c), valid while chain_built and the store's head_seq
     * is chain_head. */
    struct gs_smap *chain;          /* NULL until the first write */
    uint64_t chain_head;            /* the head_seq chain describes */
    int chain_built;                /* chain may be used (0 after a failed commit) */
};

/* ---- Errors ------------------------------------------------------------------ */

/* Translate an LMDB or errno code to GS_E*, remembering the detail for
 * gs_store_errdetail() with what was being done. */
int gs_store_err(int rc, const char *what);

/* Remember a detail message for this thread (printf-style). */
void gs_store_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- Transactions -------------------------------------------------------------- */

/* Take a map size grown by another process (after MDB_MAP_RESIZED). */
void gs_store_adopt_mapsize(gs_store_t *self);

/* Close and reopen the environment after MDB_PANIC. Caller holds no
 * transaction. */
int gs_store_reopen(gs_store_t *self);

/* ---- Shared by opening and backup (gs_store.c, gs_store_backup.c) ----------- */

/* dir/name, malloc'd; NULL on allocation failure. */
char *gs_store_path(const char *dir, const char *name);

/* A new lineage epoch: a random non-zero uint64, 8 bytes little-endian. */
void gs_store_epoch_make(uint8_t out[8]);

/* Take the broker's exclusive lock on dir (flock, broker.pid names who);
 * *fd_out holds it. Returns 0, GS_EBUSY with a detail naming the holder,
 * or another GS_E* code. */
int gs_store_lock_take(const char *dir, const char *who, int *fd_out);

/* ---- Records value header ---------------------------------------------------- */

/* The fixed part of a records value, decoded. */
typedef struct gs_rec_hdr {
    uint64_t version;               /* record version, from 1 */
    uint64_t seq;                   /* event that made this version (MOVE_IN for a move) */
    int64_t updated_at;             /* commit time, Unix ms */
    uint8_t hash[16];               /* content hash (Record without meta) */
    uint8_t status;                 /* RecordStatus */
    uint8_t kind;                   /* 'H' / 'R' / 'O' / 'I' */
    uint16_t n_people;              /* members (household), leases (rental) or
                                     * employees (organisation) */
    uint16_t n_refs;                /* person refs that follow the header */
    uint8_t flags;                  /* GS_RF_* */
} gs_rec_hdr_t;

#define GS_RF_NATKEY 0x01           /* the record has a natural key */
#define GS_RF_TAGS 0x02             /* its person refs are tags (GS_REF_TAG_LEN each); without
                                     * it they are full (GS_REF_LEN each, format 6 and older) */

void gs_rec_hdr_put(uint8_t *p, const gs_rec_hdr_t *h);
/* Decode; returns -1 when v is too short for what the header says. */
int gs_rec_hdr_get(const MDB_val *v, gs_rec_hdr_t *h);
/* Bytes of one person ref in the records value h heads. */
static inline size_t
gs_rec_ref_len(const gs_rec_hdr_t *h)
{
    return (h->flags & GS_RF_TAGS) ? GS_REF_TAG_LEN : GS_REF_LEN;
}
/* Size of a records value: the header and the person refs. The packed
 * Record itself is not repeated there: it is the record field of the
 * change event at h->seq (see gs_rec_data). */
static inline size_t
gs_rec_data_off(const gs_rec_hdr_t *h)
{
    return GS_REC_HDR + (size_t) h->n_refs * gs_rec_ref_len(h);
}

/* The packed Record of the version h describes, read from its change event
 * in the log: *data points into the map (a raw log body) or into scratch
 * (a compressed one, gs_store_lz.h) and lives until the end of txn or the
 * next use of scratch, whichever is first. MDB_CORRUPTED when the event is
 * missing, does not decode or has no record; ENOMEM. */
int gs_rec_data(gs_store_t *st, MDB_txn *txn, const gs_rec_hdr_t *h, gs_wbuf_t *scratch,
                const uint8_t **data, size_t *len);
/* gs_rec_data through lc, a cursor on the log (GS_DB_LOG) of the same
 * transaction, which it moves: a walk over records whose versions lie close
 * together in the log (a snapshot page, usually one cell's) finds most of
 * them on the leaf page of the one before instead of descending the log's
 * tree from its root each time, and a version right after the one before
 * (h->seq == *at + 1) as the cursor's next entry. *at is the seq lc sits
 * on (0 before the first call, or when unknown), set here. */
int gs_rec_data_cursor(MDB_cursor *lc, uint64_t *at, const gs_rec_hdr_t *h,
                       gs_wbuf_t *scratch, const uint8_t **data, size_t *len);

/* ---- Record codecs (pure) ------------------------------------------------------ */

/* One person named by a record, for the index. */
typedef struct gs_ref {
    uint8_t hmac[16];               /* HMAC of the normalised ID number */
    uint8_t role;                   /* GS_ROLE_* */
} gs_ref_t;

/* One record's prepared view: its verdict and every derived fact the write
 * path needs, computed once (by gs_store_prepare off the writer thread, or
 * by the apply for records that were not prepared) and then read by the
 * classifier, the writes and the event emitter instead of asking proto/
 * again. Strings and the meta are borrowed from the record, which lives
 * as long as the upload; the rest lives in the preparing allocator. */
struct gs_prepared {
    gs_verdict_t verdict;           /* validation, then shape; reason 0: valid */
    int ready;                      /* valid and packed: every field below is set */
    /* the record's facts (set when the verdict is valid) */
    const Gridsync__V1__Record *rec; /* the record itself */
    int kind;                       /* RecordKind */
    char kb;                        /* its key byte, GS_KIND_H, _R or _O */
    const char *grid;               /* its grid code, 15 digits */
    const char *id;                 /* its id as uploaded (NULL when it has none) */
    const Gridsync__V1__RecordMeta *meta; /* its meta, NULL when absent */
    uint64_t base;                  /* meta.base_version, 0 without meta */
    int status;                     /* meta.status, ACTIVE without meta */
    uint32_t people;                /* gs_record_people */
    /* what storing it needs (set when ready) */
    const uint8_t *packed;          /* the record packed as stored under its own id */
    size_t packed_len;
    uint8_t hash[16];               /* its content hash */
    const uint8_t *natkey;          /* its natural key (natkey_len 0: none) */
    size_t natkey_len;
    const gs_ref_t *refs;           /* the persons it names (gs_record_refs) */
    size_t n_refs;
};

/* Person ref i of the records value val, whose header is h (checked by
 * gs_rec_hdr_get): its role, and its HMAC in full or (GS_RF_TAGS) only
 * its first GS_PERSON_TAG bytes, the rest zero. Returns 1 for a full HMAC,
 * 0 for a tag. Either way the first bytes are the person index's tag. */
int gs_rec_ref_get(const uint8_t *val, const gs_rec_hdr_t *h, size_t i, gs_ref_t *r);
/* Write n refs after the header at val, as tags when flags has GS_RF_TAGS,
 * else in full. */
void gs_rec_refs_put(uint8_t *val, uint8_t flags, const gs_ref_t *refs, size_t n);
/* The full person refs of the version h describes, computed from its
 * packed Record (gs_rec_data, scratch as there) with this store's key,
 * in the order the records value keeps them: what a format 7 value keeps
 * only as tags. *refs is malloc'ed (free it; NULL when *n is 0). Returns
 * 0, MDB_CORRUPTED (the record is missing or does not decode), ENOMEM, or
 * an error of gs_person_hmac (GS_ENOTFOUND without a secret, detail set):
 * callers translate with gs_store_err. Any thread, in txn. */
int gs_rec_refs_full(gs_store_t *st, MDB_txn *txn, const gs_rec_hdr_t *h, gs_wbuf_t *scratch,
                     gs_ref_t **refs, size_t *n);

/* Key byte for a RecordKind, 0 for others; and back. */
char gs_kind_byte(int kind);
int gs_kind_of_byte(char b);

/* Pack a record into buf (reset first); *len = its size. 0 or GS_ENOMEM. */
int gs_record_pack(const Gridsync__V1__Record *rec, gs_wbuf_t *buf, size_t *len);

/* Content hash of a packed Record: BLAKE2b-128 over its body tag, every
 * body field except meta (field 15) and any unknown Record field packed
 * after the body, so two records that differ only in metadata hash the
 * same. Returns 0, or -1 if the bytes do not parse. */
int gs_content_hash_packed(const uint8_t *r, size_t n, uint8_t out[16]);

/* Natural key of a record into out (at most GS_NATKEY_MAX + 2 bytes);
 * returns its length, 0 when the record has none. */
size_t gs_natkey(const Gridsync__V1__Record *rec, uint8_t *out);

/* Key the person index's HMAC with self->secret (self->hmac);
 * gs_person_hmac_deinit frees them (safe when never set up). Returns 0 or
 * GS_ENOMEM. */
int gs_person_hmac_init(gs_store_t *self);
void gs_person_hmac_deinit(gs_store_t *self);
/* HMAC of an ID number as the index keys it (normalised first): the first
 * 16 bytes of HMAC-SHA-256 under secret.key. Any thread (the keyed states
 * are only read). Returns 0, GS_ENOTFOUND (no secret loaded) or GS_ENOMEM
 * (libcrypto failed; its SHA-256 on a stack copy of the keyed state does
 * not allocate). */
int gs_person_hmac(const gs_store_t *self, const char *id_number,
                   uint8_t out[16]);
/* HMAC under which the index keys an organisation (GS_ROLE_ORG) by its
 * stored (normalised) USCC: over a NUL byte and the USCC, so it can never
 * equal a person's, whose ID numbers hold no NUL. Errors as gs_person_hmac. */
int gs_org_hmac(const gs_store_t *self, const char *uscc, uint8_t out[16]);

/* Person refs of a record, de-duplicated, at most max, their count in
 * *count (persons without documents are skipped). Returns 0 or an error of
 * gs_person_hmac. */
int gs_record_refs(const gs_store_t *self, const Gridsync__V1__Record *rec,
                   gs_ref_t *refs, size_t max, size_t *count);
/* Upper bound on the persons a record can name. */
size_t gs_record_people_max(const Gridsync__V1__Record *rec);

/* Members of a household, leases of a rental unit, employees of an
 * organisation. */
uint32_t gs_record_people(const Gridsync__V1__Record *rec);

/* What one record contributes to its cell's counts. */
void gs_cell_add(gs_cell_meta_t *m, char kind, int status, uint32_t people,
                 int sign);

/* A cells value: GS_CELL_VAL bytes, or GS_CELL_VAL_ORG when the cell has
 * organisation counts (a store written before organisations existed holds
 * only the short form, which reads as zero organisations). put writes into
 * p (room for GS_CELL_VAL_ORG) and returns the length; get returns -1 for
 * a length that is neither. */
size_t gs_cell_put(uint8_t *p, const gs_cell_meta_t *m);
int gs_cell_get(const uint8_t *p, size_t len, gs_cell_meta_t *m);

/* A request's prefix list, checked (each non-NULL and at most GS_GRID_LEN
 * bytes; in may be NULL only when n is 0) and normalised: sorted, those
 * covered by a shorter one dropped. *out gets a malloc'ed array of
 * pointers into in (free it), *n_out its length. 0, GS_EINVAL or
 * GS_ENOMEM. */
int gs_prefixes_take(const char *const *in, size_t n, const char ***out, size_t *n_out);

/* Top-level fields of a packed ChangeEvent, without unpacking the record. */
typedef struct gs_event_fields {
    uint64_t seq;                   /* field 1 */
    const char *grid;               /* field 2; not NUL-terminated */
    size_t grid_len;                /* its length */
    int kind;                       /* field 3 */
    const char *record_key;         /* field 4; not NUL-terminated */
    size_t record_key_len;          /* its length */
    int op;                         /* field 5 */
    uint64_t version;               /* field 6 */
    const uint8_t *record;          /* field 10, the packed Record; NULL when absent */
    size_t record_len;              /* its length */
    uint64_t prev_seq[GS_LEVELS];   /* field 11; zeros when absent */
    size_t n_prev_seq;              /* entries found */
} gs_event_fields_t;

/* Returns 0, or -1 on malformed bytes. */
int gs_event_scan(const uint8_t *p, size_t len, gs_event_fields_t *f);

/* ---- A small map keyed by short strings (cells, chain prefixes) --------------- */

typedef struct gs_smap_ent {
    char key[16];                   /* up to 15 bytes, NUL-padded */
    uint8_t klen;                   /* key length */
    uint8_t used;                   /* slot taken */
    uint8_t dirty;                  /* changed in this transaction */
    uint8_t loaded;                 /* value read from the store (or absent there) */
    uint64_t u;                     /* chain: last seq; digests: record count; verify: a counter */
    uint8_t dig[16];                /* digests: XOR of the record entries */
    gs_cell_meta_t cell;            /* cells: metadata */
} gs_smap_ent_t;

typedef struct gs_smap {
    gs_smap_ent_t *ents;            /* open addressing, power-of-two size */
    size_t cap;                     /* slots */
    size_t n;                       /* used slots */
    uint64_t gen;                   /* changes whenever entries move or are cleared */
} gs_smap_t;

/* The entries of one grid's level prefixes in a map (gs_smap_path). */
typedef struct gs_smap_path {
    const gs_smap_t *m;             /* the map they are in */
    uint64_t gen;                   /* its gen when they were found */
    char grid[GS_GRID_LEN + 1];     /* the grid; "" for none */
    gs_smap_ent_t *e[GS_LEVELS];    /* by level */
} gs_smap_path_t;

void gs_smap_init(gs_smap_t *m);
void gs_smap_deinit(gs_smap_t *m);
void gs_smap_clear(gs_smap_t *m);
/* Find or add; NULL on allocation failure. *created set when new. */
gs_smap_ent_t *gs_smap_get(gs_smap_t *m, const char *key, size_t klen,
                           int *created);
gs_smap_ent_t *gs_smap_find(const gs_smap_t *m, const char *key, size_t klen);
/* The entries of grid's level prefixes (keys as gs_key_chain makes them)
 * into path->e, each found or added (created[l] set for those added now).
 * They stay in path while the map keeps its entries where they are, and
 * are not looked up again for the same grid then: consecutive records
 * mostly share a cell. Returns 0, or -1 on allocation failure. */
int gs_smap_path(gs_smap_t *m, const char *grid, gs_smap_path_t *path,
                 int created[GS_LEVELS]);

#endif

/*
 * gs_store_keys: the key codec. Every key of every table the store keeps,
 * the small values that are keys of another table (an ids value, a natkeys
 * value, an idem_fifo value), and the snapshot cursor, built and parsed in
 * one place. docs/store.md ("Key layouts") describes the same bytes.
 *
 * Where it sits: below gs_store_int.h; used by the write path, the readers
 * and the checker, so the three cannot disagree on a layout. Pure: no LMDB,
 * no allocation, no I/O; any thread.
 *
 * Builders write into a buffer of the size the matching *_MAX names and
 * return the length written; the caller passes lengths it has checked
 * (asserted here). Parsers take bytes read from the store (or a cursor a
 * client sent back) and return 0, or -1 when the bytes do not have the
 * layout: the caller decides whether that means a damaged store
 * (MDB_CORRUPTED) or a bad argument.
 */
#ifndef GS_STORE_KEYS_H
#define GS_STORE_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "gs_validate.h"

/* ---- Byte order --------------------------------------------------------------- */

static inline void
gs_be64_put(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t) v;
        v >>= 8;
    }
}

static inline uint64_t
gs_be64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static inline void
gs_le64_put(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t) v;
        v >>= 8;
    }
}

static inline uint64_t
gs_le64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline void
gs_be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) (v >> 24);
    p[1] = (uint8_t) (v >> 16);
    p[2] = (uint8_t) (v >> 8);
    p[3] = (uint8_t) v;
}

static inline void
gs_le32_put(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t) v;
        v >>= 8;
    }
}

static inline uint32_t
gs_le32_get(const uint8_t *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 |
           (uint32_t) p[3] << 24;
}

static inline void
gs_le16_put(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t) v;
    p[1] = (uint8_t) (v >> 8);
}

static inline uint16_t
gs_le16_get(const uint8_t *p)
{
    return (uint16_t) (p[0] | p[1] << 8);
}

/* ---- records: grid(15) | kind(1) | record id ------------------------------------ */

#define GS_RK_MAX (GS_GRID_LEN + 1 + GS_ID_MAX)
size_t gs_key_record(uint8_t *k, const char *grid, char kb, const char *id, size_t id_len);
/* grid and id come back NUL-terminated; kb may be NULL. */
int gs_key_record_parse(const uint8_t *k, size_t len, char grid[GS_GRID_LEN + 1], char *kb,
                        char id[GS_ID_MAX + 1]);

/* ---- ids: kind(1) | record id -> grid(15) [| canonical id] -------------------------
 * A canonical entry (the key's id is the record's own) holds the grid alone;
 * an alias holds the grid and the canonical id. Format 4 and older repeated
 * the id in canonical entries: the parser reads that layout too (the same
 * answer), and the broker's upgrade rewrites it (gs_ids_compact). The same
 * kind | id bytes are the value of a natkeys entry. */

#define GS_IK_MAX (1 + GS_ID_MAX)
size_t gs_key_id(uint8_t *k, char kb, const char *id, size_t id_len);

#define GS_IV_MAX (GS_GRID_LEN + GS_ID_MAX)
/* The value of a canonical entry when alias_of is NULL, of an alias of
 * alias_of otherwise. */
size_t gs_val_id(uint8_t *v, const char *grid, const char *alias_of, size_t alias_len);
/* The entry k -> v: grid and canon come back NUL-terminated (grid may be
 * NULL); canon is the key's own id for a canonical entry. -1 when either
 * does not decode. */
int gs_val_id_parse(const uint8_t *k, size_t klen, const uint8_t *v, size_t len,
                    char grid[GS_GRID_LEN + 1], char canon[GS_ID_MAX + 1]);

/* natkeys value: kind(1) | canonical id; canon NUL-terminated, kb may be NULL. */
int gs_val_natkey_parse(const uint8_t *v, size_t len, char *kb, char canon[GS_ID_MAX + 1]);
/* Does a natkeys value name canon (whatever its kind byte)? */
int gs_val_natkey_is(const uint8_t *v, size_t len, const char *canon);

/* ---- log: seq (u64 BE); cell_log: grid(15) | seq (u64 BE) --------------------------- */

#define GS_LK_LEN 8
void gs_key_log(uint8_t k[GS_LK_LEN], uint64_t seq);
/* -1 unless len is GS_LK_LEN. */
int gs_key_log_parse(const uint8_t *k, size_t len, uint64_t *seq);

#define GS_CLK_LEN (GS_GRID_LEN + 8)
void gs_key_cell_log(uint8_t k[GS_CLK_LEN], const char *grid, uint64_t seq);
int gs_key_cell_log_parse(const uint8_t *k, size_t len, uint64_t *seq);

/* ---- persons: grid(15), the cell itself (gs_store_persons.h) ------------------------ */

/* ---- chain: the level prefix of a grid, "*" for the root ---------------------------- */

#define GS_CHK_MAX GS_GRID_LEN
/* out holds at least GS_CHK_MAX bytes (not NUL-terminated). */
size_t gs_key_chain(const char *grid, int level, char *out);

/* ---- digests: level digit ('0'..'6') | the level prefix of a grid ------------------- */

/* The level digit first, so the children of a prefix (the next level's
 * entries that extend it) are one contiguous range, and the root ("0")
 * is a key of its own. */
#define GS_DGK_MAX (1 + GS_GRID_LEN)
/* The digests key of grid's prefix at level (grid holds at least that
 * level's digits). k holds GS_DGK_MAX bytes. */
size_t gs_key_digest(uint8_t *k, const char *grid, int level);
/* prefix comes back NUL-terminated ("" for the root). */
int gs_key_digest_parse(const uint8_t *k, size_t len, int *level,
                        char prefix[GS_GRID_LEN + 1]);

/* ---- idem: device id | NUL | upload id; idem_fifo: fifo (u64 BE) -> created | idem key */

#define GS_IDK_MAX (2 * GS_ID_MAX + 1)
size_t gs_key_idem(uint8_t *k, const char *device_id, const char *upload_id);

#define GS_FK_LEN 8
void gs_key_idem_fifo(uint8_t k[GS_FK_LEN], uint64_t fifo_no);
#define GS_FV_MAX (8 + GS_IDK_MAX)
size_t gs_val_idem_fifo(uint8_t *v, int64_t created_at, const uint8_t *idem_key,
                        size_t idem_key_len);
/* *idem_key points into v. */
int gs_val_idem_fifo_parse(const uint8_t *v, size_t len, int64_t *created_at,
                           const uint8_t **idem_key, size_t *idem_key_len);

/* ---- The snapshot cursor -------------------------------------------------------------
 * 'S' | snapshot seq (u64 LE) | prefix-set hash (u32 LE) | prefix index (u32 LE) |
 * key length (u16 LE) | the last records key delivered (empty: the start of that
 * prefix's range). Opaque to clients; they send it back unchanged. */

#define GS_SNAP_HDR 19
#define GS_SNAP_MAX (GS_SNAP_HDR + GS_RK_MAX)

typedef struct gs_snap_cursor {
    uint64_t snap;                  /* head seq the snapshot was taken at */
    uint32_t prefix_hash;           /* gs_snap_prefix_hash of the normalised prefixes */
    uint32_t prefix_index;          /* prefix being walked */
    uint8_t last[GS_RK_MAX];        /* last records key delivered */
    size_t last_len;                /* its length; 0 = start of the prefix */
} gs_snap_cursor_t;

/* Hash of a normalised prefix set, so a cursor is not used with another. */
uint32_t gs_snap_prefix_hash(const char *const *prefixes, size_t n);

/* Encoded size, and encoding into out (at least that size). */
size_t gs_snap_cursor_size(const gs_snap_cursor_t *c);
void gs_snap_cursor_put(uint8_t *out, const gs_snap_cursor_t *c);
/* -1 when the bytes are not a cursor (the prefix checks are the caller's). */
int gs_snap_cursor_parse(const uint8_t *p, size_t len, gs_snap_cursor_t *c);

#endif

/*
 * gs_store_keys: the key codec (contract in gs_store_keys.h). Pure byte
 * layouts of every table's keys, the values that hold keys, and the
 * snapshot cursor.
 */
#include "gs_store_keys.h"

#include <assert.h>
#include <string.h>

/* ---- records ------------------------------------------------------------------------ */

size_t
gs_key_record(uint8_t *k, const char *grid, char kb, const char *id, size_t id_len)
{
    assert(k && grid && id && id_len <= GS_ID_MAX);
    memcpy(k, grid, GS_GRID_LEN);
    k[GS_GRID_LEN] = (uint8_t) kb;
    memcpy(k + GS_GRID_LEN + 1, id, id_len);
    return GS_GRID_LEN + 1 + id_len;
}

int
gs_key_record_parse(const uint8_t *k, size_t len, char grid[GS_GRID_LEN + 1], char *kb,
                    char id[GS_ID_MAX + 1])
{
    if (len <= GS_GRID_LEN + 1 || len > GS_RK_MAX)
        return -1;
    memcpy(grid, k, GS_GRID_LEN);
    grid[GS_GRID_LEN] = 0;
    if (kb)
        *kb = (char) k[GS_GRID_LEN];
    size_t il = len - GS_GRID_LEN - 1;
    memcpy(id, k + GS_GRID_LEN + 1, il);
    id[il] = 0;
    return 0;
}

/* ---- ids and natkeys ------------------------------------------------------------------ */

size_t
gs_key_id(uint8_t *k, char kb, const char *id, size_t id_len)
{
    assert(k && id && id_len <= GS_ID_MAX);
    k[0] = (uint8_t) kb;
    memcpy(k + 1, id, id_len);
    return 1 + id_len;
}

size_t
gs_val_id(uint8_t *v, const char *grid, const char *alias_of, size_t alias_len)
{
    assert(v && grid && (alias_of ? alias_len > 0 : alias_len == 0) && alias_len <= GS_ID_MAX);
    memcpy(v, grid, GS_GRID_LEN);
    if (alias_of)
        memcpy(v + GS_GRID_LEN, alias_of, alias_len);
    return GS_GRID_LEN + alias_len;
}

int
gs_val_id_parse(const uint8_t *k, size_t klen, const uint8_t *v, size_t len,
                char grid[GS_GRID_LEN + 1], char canon[GS_ID_MAX + 1])
{
    if (klen < 2 || klen > GS_IK_MAX || len < GS_GRID_LEN || len > GS_IV_MAX)
        return -1;
    if (grid) {
        memcpy(grid, v, GS_GRID_LEN);
        grid[GS_GRID_LEN] = 0;
    }
    /* a canonical entry names the key's own id: the grid alone (or, as
     * format 4 wrote it, followed by that id) */
    const uint8_t *c = len > GS_GRID_LEN ? v + GS_GRID_LEN : k + 1;
    size_t cl = len > GS_GRID_LEN ? len - GS_GRID_LEN : klen - 1;
    memcpy(canon, c, cl);
    canon[cl] = 0;
    return 0;
}

int
gs_val_natkey_parse(const uint8_t *v, size_t len, char *kb, char canon[GS_ID_MAX + 1])
{
    if (len < 2 || len > GS_IK_MAX)
        return -1;
    if (kb)
        *kb = (char) v[0];
    memcpy(canon, v + 1, len - 1);
    canon[len - 1] = 0;
    return 0;
}

int
gs_val_natkey_is(const uint8_t *v, size_t len, const char *canon)
{
    size_t cl = strlen(canon);
    return len == 1 + cl && memcmp(v + 1, canon, cl) == 0;
}

/* ---- log and cell_log -------------------------------------------------------------------- */

void
gs_key_log(uint8_t k[GS_LK_LEN], uint64_t seq)
{
    gs_be64_put(k, seq);
}

int
gs_key_log_parse(const uint8_t *k, size_t len, uint64_t *seq)
{
    if (len != GS_LK_LEN)
        return -1;
    *seq = gs_be64_get(k);
    return 0;
}

void
gs_key_cell_log(uint8_t k[GS_CLK_LEN], const char *grid, uint64_t seq)
{
    assert(grid);
    memcpy(k, grid, GS_GRID_LEN);
    gs_be64_put(k + GS_GRID_LEN, seq);
}

int
gs_key_cell_log_parse(const uint8_t *k, size_t len, uint64_t *seq)
{
    if (len != GS_CLK_LEN)
        return -1;
    *seq = gs_be64_get(k + GS_GRID_LEN);
    return 0;
}

/* ---- chain ---------------------------------------------------------------------- */

size_t
gs_key_chain(const char *grid, int level, char *out)
{
    assert(grid && out && level >= 0 && level < GS_LEVELS);
    int len = gs_level_len[level];
    if (len == 0) {
        out[0] = '*';   /* LMDB keys cannot be empty */
        return 1;
    }
    memcpy(out, grid, (size_t) len);
    return (size_t) len;
}

/* ---- digests ------------------------------------------------------------------------------------ */

size_t
gs_key_digest(uint8_t *k, const char *grid, int level)
{
    assert(k && grid && level >= 0 && level < GS_LEVELS);
    size_t len = (size_t) gs_level_len[level];
    k[0] = (uint8_t) ('0' + level);
    memcpy(k + 1, grid, len);
    return 1 + len;
}

int
gs_key_digest_parse(const uint8_t *k, size_t len, int *level, char prefix[GS_GRID_LEN + 1])
{
    if (!k || len < 1 || k[0] < '0' || k[0] >= '0' + GS_LEVELS)
        return -1;
    int l = k[0] - '0';
    if (len != 1 + (size_t) gs_level_len[l])
        return -1;
    for (size_t i = 1; i < len; i++)
        if (k[i] < '0' || k[i] > '9')
            return -1;
    memcpy(prefix, k + 1, len - 1);
    prefix[len - 1] = 0;
    *level = l;
    return 0;
}

/* ---- idem and idem_fifo ------------------------------------------------------------------------ */

size_t
gs_key_idem(uint8_t *k, const char *device_id, const char *upload_id)
{
    size_t dl = strlen(device_id), ul = strlen(upload_id);
    assert(dl <= GS_ID_MAX && ul <= GS_ID_MAX);
    memcpy(k, device_id, dl);
    k[dl] = 0;
    memcpy(k + dl + 1, upload_id, ul);
    return dl + 1 + ul;
}

void
gs_key_idem_fifo(uint8_t k[GS_FK_LEN], uint64_t fifo_no)
{
    gs_be64_put(k, fifo_no);
}

size_t
gs_val_idem_fifo(uint8_t *v, int64_t created_at, const uint8_t *idem_key, size_t idem_key_len)
{
    assert(idem_key_len <= GS_IDK_MAX);
    gs_le64_put(v, (uint64_t) created_at);
    memcpy(v + 8, idem_key, idem_key_len);
    return 8 + idem_key_len;
}

int
gs_val_idem_fifo_parse(const uint8_t *v, size_t len, int64_t *created_at,
                       const uint8_t **idem_key, size_t *idem_key_len)
{
    if (len < 8)
        return -1;
    *created_at = (int64_t) gs_le64_get(v);
    *idem_key = v + 8;
    *idem_key_len = len - 8;
    return 0;
}

/* ---- The snapshot cursor ---------------------------------------------------------------------- */

uint32_t
gs_snap_prefix_hash(const char *const *pf, size_t n)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        for (const char *p = pf[i]; *p; p++)
            h = (h ^ (uint8_t) *p) * 16777619u;
        h = (h ^ ',') * 16777619u;
    }
    return h;
}

size_t
gs_snap_cursor_size(const gs_snap_cursor_t *c)
{
    return GS_SNAP_HDR + c->last_len;
}

void
gs_snap_cursor_put(uint8_t *out, const gs_snap_cursor_t *c)
{
    assert(c->last_len <= sizeof c->last);
    out[0] = 'S';
    gs_le64_put(out + 1, c->snap);
    gs_le32_put(out + 9, c->prefix_hash);
    gs_le32_put(out + 13, c->prefix_index);
    gs_le16_put(out + 17, (uint16_t) c->last_len);
    memcpy(out + GS_SNAP_HDR, c->last, c->last_len);
}

int
gs_snap_cursor_parse(const uint8_t *p, size_t len, gs_snap_cursor_t *c)
{
    if (len < GS_SNAP_HDR || p[0] != 'S')
        return -1;
    size_t ll = gs_le16_get(p + 17);
    if (ll != len - GS_SNAP_HDR || ll > sizeof c->last)
        return -1;
    c->snap = gs_le64_get(p + 1);
    c->prefix_hash = gs_le32_get(p + 9);
    c->prefix_index = gs_le32_get(p + 13);
    c->last_len = ll;
    memcpy(c->last, p + GS_SNAP_HDR, ll);
    return 0;
}

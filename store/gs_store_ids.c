/*
 * gs_store_ids: alias resolution (contract in gs_store_ids.h).
 */
#include "gs_store_ids.h"

#include <assert.h>
#include <string.h>

#include "gs_store_int.h"

/* One lookup in ids: through cursor c when there is one (the write
 * transaction's, gs_txn_cursor), else with mdb_get. */
static int
s_get(MDB_txn *txn, MDB_dbi dbi, MDB_cursor *c, MDB_val *key, MDB_val *v)
{
    if (!c)
        return mdb_get(txn, dbi, key, v);
    MDB_val k = *key;
    return mdb_cursor_get(c, &k, v, MDB_SET);
}

static int
s_resolve(gs_store_t *st, MDB_txn *txn, MDB_cursor *c, char kb, const char *id,
          char grid[GS_GRID_LEN + 1], char canon[GS_ID_MAX + 1])
{
    size_t il = strlen(id);
    if (il == 0 || il > GS_ID_MAX)
        return MDB_NOTFOUND;
    uint8_t k[GS_IK_MAX];
    MDB_val key = { gs_key_id(k, kb, id, il), k }, v;
    MDB_dbi dbi = st->db[GS_DB_IDS];
    int rc = s_get(txn, dbi, c, &key, &v);
    if (rc)
        return rc;
    if (gs_val_id_parse(key.mv_data, key.mv_size, v.mv_data, v.mv_size, grid, canon))
        return MDB_CORRUPTED;
    if (strcmp(canon, id) == 0)
        return 0;
    /* an alias: the canonical entry holds the current grid (the alias
     * keeps the grid it was made in) */
    key.mv_size = gs_key_id(k, kb, canon, strlen(canon));
    rc = s_get(txn, dbi, c, &key, &v);
    if (rc)
        return rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc;
    char target[GS_ID_MAX + 1];
    if (gs_val_id_parse(key.mv_data, key.mv_size, v.mv_data, v.mv_size, grid, target) ||
        strcmp(target, canon) != 0)
        return MDB_CORRUPTED;   /* aliases do not chain */
    return 0;
}

int
gs_ids_resolve(gs_store_t *st, MDB_txn *txn, char kb, const char *id,
               char grid[GS_GRID_LEN + 1], char canon[GS_ID_MAX + 1])
{
    assert(st && txn && id && grid && canon);
    return s_resolve(st, txn, NULL, kb, id, grid, canon);
}

int
gs_ids_resolve_in(gs_txn_t *t, char kb, const char *id, char grid[GS_GRID_LEN + 1],
                  char canon[GS_ID_MAX + 1])
{
    assert(t && t->txn && id && grid && canon);
    if (t->err)
        return t->err;
    MDB_cursor *c = gs_txn_cursor(t, GS_DB_IDS);
    if (!c)
        return t->err;
    return s_resolve(t->st, t->txn, c, kb, id, grid, canon);
}

int
gs_ids_compact(gs_txn_t *t, uint64_t *entries)
{
    assert(t && entries);
    *entries = 0;
    if (t->err)
        return t->err;
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->st->db[GS_DB_IDS], &c);
    if (rc)
        return gs_txn_fail(t, rc, "open ids cursor");
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        char grid[GS_GRID_LEN + 1], canon[GS_ID_MAX + 1];
        if (gs_val_id_parse(k.mv_data, k.mv_size, v.mv_data, v.mv_size, grid, canon)) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (v.mv_size == GS_GRID_LEN || k.mv_size - 1 != strlen(canon) ||
            memcmp((const char *) k.mv_data + 1, canon, k.mv_size - 1) != 0)
            continue;   /* already the grid alone, or an alias */
        /* in place: the cursor stays on the entry, so MDB_NEXT goes on.
         * The key is copied first: k points into the page the put
         * rewrites. */
        uint8_t nk[GS_IK_MAX], nv[GS_IV_MAX];
        memcpy(nk, k.mv_data, k.mv_size);
        k.mv_data = nk;
        MDB_val val = { gs_val_id(nv, grid, NULL, 0), nv };
        if ((rc = mdb_cursor_put(c, &k, &val, MDB_CURRENT)))
            break;
        ++*entries;
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND)
        return gs_txn_fail(t, rc, "upgrade ids entries");
    return t->err;
}

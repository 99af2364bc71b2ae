/*
 * gs_store_ids: alias resolution (contract in gs_store_ids.h).
 */
#include "gs_store_ids.h"

#include <assert.h>
#include <string.h>

#include "gs_store_int.h"

int
gs_ids_resolve(gs_store_t *st, MDB_txn *txn, char kb, const char *id,
               char grid[GS_GRID_LEN + 1], char canon[GS_ID_MAX + 1])
{
    assert(st && txn && id && grid && canon);
    size_t il = strlen(id);
    if (il == 0 || il > GS_ID_MAX)
        return MDB_NOTFOUND;
    uint8_t k[GS_IK_MAX];
    MDB_val key = { gs_key_id(k, kb, id, il), k }, v;
    int rc = mdb_get(txn, st->db[GS_DB_IDS], &key, &v);
    if (rc)
        return rc;
    if (gs_val_id_parse(v.mv_data, v.mv_size, grid, canon))
        return MDB_CORRUPTED;
    if (strcmp(canon, id) == 0)
        return 0;
    /* an alias: the canonical entry holds the current grid (the alias
     * keeps the grid it was made in) */
    key.mv_size = gs_key_id(k, kb, canon, strlen(canon));
    rc = mdb_get(txn, st->db[GS_DB_IDS], &key, &v);
    if (rc)
        return rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc;
    char target[GS_ID_MAX + 1];
    if (gs_val_id_parse(v.mv_data, v.mv_size, grid, target) || strcmp(target, canon) != 0)
        return MDB_CORRUPTED;   /* aliases do not chain */
    return 0;
}

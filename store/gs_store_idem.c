/*
 * gs_store_idem: the idempotency table and its expiry queue (contract in
 * gs_store_idem.h; layouts in docs/store.md and gs_store_keys.h).
 */
#include "gs_store_idem.h"

#include <assert.h>
#include <errno.h>

#include "gs_store_int.h"

int
gs_idem_begin(gs_idem_t *self, gs_txn_t *t)
{
    assert(self && t);
    memset(self, 0, sizeof *self);
    self->t = t;
    int rc = gs_txn_meta_get(t, "idem_fifo_next", &self->fifo_next);
    if (rc)
        return rc;
    if (self->fifo_next == 0)
        self->fifo_next = 1;
    self->fifo0 = self->fifo_next;
    return 0;
}

int
gs_idem_get(gs_idem_t *self, const char *device_id, const char *upload_id,
            gs_idem_entry_t *e)
{
    assert(self && device_id && upload_id && e);
    uint8_t ik[GS_IDK_MAX];
    MDB_val k = { gs_key_idem(ik, device_id, upload_id), ik }, v;
    int rc = gs_txn_get(self->t, GS_DB_IDEM, &k, &v);
    if (rc)
        return rc;
    if (v.mv_size < GS_IDEM_HDR)
        return gs_txn_fail(self->t, MDB_CORRUPTED, "idem entry");
    const uint8_t *p = v.mv_data;
    for (int i = 0; i < GS_IDEM_COUNTS; i++)
        e->counts[i] = gs_le32_get(p + 16 + 4 * i);
    e->ack = p + GS_IDEM_HDR;
    e->ack_len = v.mv_size - GS_IDEM_HDR;
    return 0;
}

int
gs_idem_put(gs_idem_t *self, const char *device_id, const char *upload_id, int64_t now_ms,
            const uint32_t counts[GS_IDEM_COUNTS], const uint8_t *ack, size_t ack_len)
{
    assert(self && device_id && upload_id && counts && (ack || !ack_len));
    gs_txn_t *t = self->t;
    uint8_t ik[GS_IDK_MAX];
    MDB_val k = { gs_key_idem(ik, device_id, upload_id), ik };
    uint64_t fifo = self->fifo_next++;
    /* packed straight into the page: the Ack can be large */
    MDB_val v = { GS_IDEM_HDR + ack_len, NULL };
    int rc = gs_txn_put(t, GS_DB_IDEM, &k, &v, MDB_RESERVE);
    if (rc)
        return rc;
    uint8_t *d = v.mv_data;
    gs_le64_put(d, (uint64_t) now_ms);
    gs_le64_put(d + 8, fifo);
    for (int i = 0; i < GS_IDEM_COUNTS; i++)
        gs_le32_put(d + 16 + 4 * i, counts[i]);
    memcpy(d + GS_IDEM_HDR, ack, ack_len);
    gs_txn_trace(t, GS_DB_IDEM, &k, &v, 0);

    uint8_t fk[GS_FK_LEN], fv[GS_FV_MAX];
    gs_key_idem_fifo(fk, fifo);
    MDB_val fkey = { GS_FK_LEN, fk },
            fval = { gs_val_idem_fifo(fv, now_ms, ik, k.mv_size), fv };
    return gs_txn_put(t, GS_DB_IDEM_FIFO, &fkey, &fval, MDB_APPEND);
}

int
gs_idem_expire(gs_idem_t *self, int64_t now_ms, uint64_t max_entries, int64_t max_age_ms)
{
    assert(self);
    gs_txn_t *t = self->t;
    gs_store_t *st = t->st;
    size_t entries;
    int rc = gs_txn_count(t, GS_DB_IDEM, &entries);
    if (rc)
        return rc;
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(t->txn, st->db[GS_DB_IDEM_FIFO], &c)))
        return gs_txn_fail(t, rc, "open idem_fifo cursor");
    MDB_val k, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        int64_t created;
        const uint8_t *idk;
        size_t idkl;
        if (gs_val_idem_fifo_parse(v.mv_data, v.mv_size, &created, &idk, &idkl)) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (entries <= max_entries && now_ms - created <= max_age_ms)
            break;
        MDB_val ik = { idkl, (void *) idk };
        int drc = gs_txn_del(t, GS_DB_IDEM, &ik);
        if (drc == 0)
            entries--;
        else if (drc != GS_ENOTFOUND)
            break;      /* the sticky error says why */
        if (st->trace)
            st->trace(st->trace_arg, 1, gs_db_names[GS_DB_IDEM_FIFO], k.mv_data,
                      k.mv_size, NULL, 0, 0);
        if ((rc = mdb_cursor_del(c, 0)))
            break;
        /* after a delete the cursor sits on the next entry, if any */
        rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
        if (rc == MDB_NOTFOUND || rc == EINVAL)
            rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        gs_txn_fail(t, rc, "expire idempotency entries");
    return t->err;
}

int
gs_idem_flush(gs_idem_t *self)
{
    assert(self);
    if (self->fifo_next == self->fifo0)
        return self->t->err;
    return gs_txn_meta_put(self->t, "idem_fifo_next", self->fifo_next);
}

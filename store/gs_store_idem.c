/*
 * gs_store_idem: the idempotency table and its expiry queue (contract in
 * gs_store_idem.h; layouts in docs/store.md and gs_store_keys.h).
 */
#include "gs_store_idem.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "gs_store_int.h"

void
gs_idem_init(gs_idem_t *self)
{
    assert(self);
    memset(self, 0, sizeof *self);
    gs_wbuf_init(&self->scratch);
    gs_wbuf_init(&self->check);
}

void
gs_idem_deinit(gs_idem_t *self)
{
    if (!self)
        return;
    gs_wbuf_deinit(&self->scratch);
    gs_wbuf_deinit(&self->check);
}

int
gs_idem_begin(gs_idem_t *self, gs_txn_t *t)
{
    assert(self && t);
    self->t = t;
    self->fifo_next = self->fifo0 = 0;
    if (!t->st->format_current) {
        /* an older store opened by something else than a broker: its
         * indexes have the older layouts until the broker upgrades it */
        gs_store_detail("write records: the store has the layout of format %u; start "
                        "gridsyncd on it once to upgrade it", t->st->format);
        return gs_txn_fail(t, GS_EVERSION, "write records");
    }
    int rc = gs_txn_meta_get(t, "idem_fifo_next", &self->fifo_next);
    if (rc)
        return rc;
    if (self->fifo_next == 0)
        self->fifo_next = 1;
    self->fifo0 = self->fifo_next;
    return 0;
}

/* ---- The compact Ack ---------------------------------------------------------------
 *
 * An entry keeps its Ack in one of two encodings, named by the byte after
 * the header. S_ENC_PACKED: the packed Ack as it was sent. S_ENC_COMPACT:
 *   flags (bit 0: field 1 present, equal to the entry's upload id)
 *   varint: number of results
 *   per result: presence byte (bits 0-6: fields 1-7 of RecordResult; bit 7:
 *     the index differs from the result's position), then the present
 *     values: index (only with bit 7), status, reason, message (length and
 *     bytes), version, seq (zigzag difference from the previous result's
 *     seq), record key (bytes shared with the previous result's key, length
 *     and bytes of the rest)
 *   the packed bytes after the last result, as they were.
 * Most results are then 6 to 10 bytes instead of about 40 (the index, the
 * tags, the seq's high bytes and the key's common prefix are left out).
 * An Ack is kept compact only when expanding gives back exactly its bytes,
 * so a reply replayed from the table is the reply that was sent. */

#define S_ENC_PACKED 0
#define S_ENC_COMPACT 1
#define S_RF_INDEX_AT 0x80          /* presence byte: the index is not the position */

/* One RecordResult's fields (pointers into the packed Ack). */
typedef struct s_res {
    unsigned present;               /* bit f-1: field f present */
    uint64_t num[8];                /* varint fields by number (1, 2, 3, 5, 6) */
    const uint8_t *str[8];          /* length-delimited fields (4, 7) */
    size_t len[8];
} s_res_t;

static int
s_is_len_field(int f)
{
    return f == 4 || f == 7;
}

/* Parse one packed RecordResult; -1 for anything the compact form does not
 * carry (unknown fields, repeated or out-of-order fields, other wire types). */
static int
s_res_parse(const uint8_t *p, const uint8_t *end, s_res_t *r)
{
    memset(r, 0, sizeof *r);
    int last = 0;
    while (p < end) {
        uint64_t tag, v;
        if (gs_wire_varint_get(&p, end, &tag))
            return -1;
        int f = (int) (tag >> 3), wt = (int) (tag & 7);
        if (f <= last || f > 7 || wt != (s_is_len_field(f) ? 2 : 0))
            return -1;
        last = f;
        if (gs_wire_varint_get(&p, end, &v))
            return -1;
        if (wt == 2) {
            if (v > (uint64_t) (end - p))
                return -1;
            r->str[f] = p;
            r->len[f] = (size_t) v;
            p += v;
        } else {
            r->num[f] = v;
        }
        r->present |= 1u << (f - 1);
    }
    return 0;
}

static uint64_t
s_zigzag(int64_t v)
{
    return ((uint64_t) v << 1) ^ (uint64_t) (v >> 63);
}

static int64_t
s_unzigzag(uint64_t v)
{
    return (int64_t) (v >> 1) ^ -(int64_t) (v & 1);
}

/* The compact form of ack into b (without the encoding byte); -1 when ack
 * has a shape it does not carry. */
static int
s_ack_compact(const uint8_t *ack, size_t len, const char *upload_id, gs_wbuf_t *b)
{
    const uint8_t *p = ack, *end = ack + len;
    uint8_t flags = 0;
    size_t ul = strlen(upload_id);
    uint64_t tag, v;
    const uint8_t *q = p;
    if (p < end && gs_wire_varint_get(&q, end, &tag) == 0 && tag == ((1u << 3) | 2)) {
        if (gs_wire_varint_get(&q, end, &v) || v != ul || (size_t) (end - q) < ul ||
            memcmp(q, upload_id, ul) != 0)
            return -1;
        p = q + ul;
        flags = 1;
    }
    /* count the results first: the count leads */
    size_t n = 0;
    for (q = p; q < end; n++) {
        const uint8_t *r = q;
        if (gs_wire_varint_get(&r, end, &tag) || tag != ((2u << 3) | 2) ||
            gs_wire_varint_get(&r, end, &v) || v > (uint64_t) (end - r))
            break;
        q = r + v;
    }
    gs_wbuf_put(b, &flags, 1);
    gs_wbuf_varint(b, n);
    uint64_t prev_seq = 0;
    const uint8_t *prev_key = NULL;
    size_t prev_kl = 0;
    for (size_t i = 0; i < n; i++) {
        gs_wire_varint_get(&p, end, &tag);
        gs_wire_varint_get(&p, end, &v);
        s_res_t r;
        if (s_res_parse(p, p + v, &r))
            return -1;
        p += v;
        uint8_t pres = (uint8_t) r.present;
        if ((r.present & 1) && r.num[1] != i)
            pres |= S_RF_INDEX_AT;
        gs_wbuf_put(b, &pres, 1);
        if (pres & S_RF_INDEX_AT)
            gs_wbuf_varint(b, r.num[1]);
        if (r.present & (1u << 1))
            gs_wbuf_varint(b, r.num[2]);
        if (r.present & (1u << 2))
            gs_wbuf_varint(b, r.num[3]);
        if (r.present & (1u << 3)) {
            gs_wbuf_varint(b, r.len[4]);
            gs_wbuf_put(b, r.str[4], r.len[4]);
        }
        if (r.present & (1u << 4))
            gs_wbuf_varint(b, r.num[5]);
        if (r.present & (1u << 5)) {
            gs_wbuf_varint(b, s_zigzag((int64_t) (r.num[6] - prev_seq)));
            prev_seq = r.num[6];
        }
        if (r.present & (1u << 6)) {
            size_t shared = 0;
            while (shared < prev_kl && shared < r.len[7] && prev_key[shared] == r.str[7][shared])
                shared++;
            gs_wbuf_varint(b, shared);
            gs_wbuf_varint(b, r.len[7] - shared);
            gs_wbuf_put(b, r.str[7] + shared, r.len[7] - shared);
            prev_key = r.str[7];
            prev_kl = r.len[7];
        }
    }
    gs_wbuf_put(b, p, (size_t) (end - p));
    return b->failed ? -1 : 0;
}

/* Expand a compact Ack (without its encoding byte) into b; -1 when the
 * bytes are damaged. */
static int
s_ack_expand(const uint8_t *p, size_t len, const char *upload_id, gs_wbuf_t *b)
{
    const uint8_t *end = p + len;
    uint64_t n;
    if (p >= end)
        return -1;
    uint8_t flags = *p++;
    if (flags & ~1u || gs_wire_varint_get(&p, end, &n) || n > len)
        return -1;
    if (flags & 1)
        gs_wbuf_bytes_field(b, 1, upload_id, strlen(upload_id), 1);
    uint64_t seq = 0;
    uint8_t key[GS_KEY_MAX];
    size_t kl = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (p >= end)
            return -1;
        uint8_t pres = *p++;
        s_res_t r;
        memset(&r, 0, sizeof r);
        r.present = pres & 0x7f;
        uint64_t v;
        r.num[1] = i;
        if ((pres & S_RF_INDEX_AT) && (!(pres & 1) || gs_wire_varint_get(&p, end, &r.num[1])))
            return -1;
        for (int f = 2; f <= 7; f++) {
            if (!(r.present & (1u << (f - 1))))
                continue;
            if (gs_wire_varint_get(&p, end, &v))
                return -1;
            if (f == 4) {
                if (v > (uint64_t) (end - p))
                    return -1;
                r.str[4] = p;
                r.len[4] = (size_t) v;
                p += v;
            } else if (f == 6) {
                seq += (uint64_t) s_unzigzag(v);
                r.num[6] = seq;
            } else if (f == 7) {
                uint64_t rest;
                if (v > kl || gs_wire_varint_get(&p, end, &rest) || rest > (uint64_t) (end - p) ||
                    v + rest > sizeof key)
                    return -1;
                memcpy(key + v, p, rest);
                p += rest;
                kl = (size_t) (v + rest);
                r.str[7] = key;
                r.len[7] = kl;
            } else {
                r.num[f] = v;
            }
        }
        /* the result's size, then its fields in order */
        size_t sz = 0;
        for (int f = 1; f <= 7; f++) {
            if (!(r.present & (1u << (f - 1))))
                continue;
            sz += 1 + (s_is_len_field(f) ? gs_wire_varint_len(r.len[f]) + r.len[f]
                                         : gs_wire_varint_len(r.num[f]));
        }
        gs_wbuf_varint(b, (2u << 3) | 2);
        gs_wbuf_varint(b, sz);
        for (int f = 1; f <= 7; f++) {
            if (!(r.present & (1u << (f - 1))))
                continue;
            gs_wbuf_varint(b, ((uint64_t) f << 3) | (s_is_len_field(f) ? 2u : 0u));
            if (s_is_len_field(f)) {
                gs_wbuf_varint(b, r.len[f]);
                gs_wbuf_put(b, r.str[f], r.len[f]);
            } else {
                gs_wbuf_varint(b, r.num[f]);
            }
        }
    }
    gs_wbuf_put(b, p, (size_t) (end - p));
    return b->failed ? -1 : 0;
}

int
gs_idem_get(gs_idem_t *self, const char *device_id, const char *upload_id,
            gs_idem_entry_t *e, gs_wbuf_t *ack)
{
    assert(self && device_id && upload_id && e && ack);
    uint8_t ik[GS_IDK_MAX];
    MDB_val k = { gs_key_idem(ik, device_id, upload_id), ik }, v;
    int rc = gs_txn_get(self->t, GS_DB_IDEM, &k, &v);
    if (rc)
        return rc;
    if (v.mv_size <= GS_IDEM_HDR)
        return gs_txn_fail(self->t, MDB_CORRUPTED, "idem entry");
    const uint8_t *p = v.mv_data;
    for (int i = 0; i < GS_IDEM_COUNTS; i++)
        e->counts[i] = gs_le32_get(p + 16 + 4 * i);
    size_t start = ack->len;
    const uint8_t *body = p + GS_IDEM_HDR + 1;
    size_t bl = v.mv_size - GS_IDEM_HDR - 1;
    if (p[GS_IDEM_HDR] == S_ENC_PACKED) {
        gs_wbuf_put(ack, body, bl);
    } else if (p[GS_IDEM_HDR] != S_ENC_COMPACT || s_ack_expand(body, bl, upload_id, ack)) {
        if (ack->failed)
            return gs_txn_fail(self->t, ENOMEM, "replayed answer");
        ack->len = start;
        return gs_txn_fail(self->t, MDB_CORRUPTED, "idem entry");
    }
    if (ack->failed)
        return gs_txn_fail(self->t, ENOMEM, "replayed answer");
    e->ack_len = ack->len - start;
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
    /* the compact form when it gives back exactly these bytes */
    gs_wbuf_t *c = &self->scratch, *x = &self->check;
    gs_wbuf_reset(c);
    gs_wbuf_reset(x);
    int compact = s_ack_compact(ack, ack_len, upload_id, c) == 0 &&
                  s_ack_expand(c->data, c->len, upload_id, x) == 0 && x->len == ack_len &&
                  memcmp(x->data, ack, ack_len) == 0 && c->len < ack_len;
    const uint8_t *body = compact ? c->data : ack;
    size_t bl = compact ? c->len : ack_len;
    /* packed straight into the page */
    MDB_val v = { GS_IDEM_HDR + 1 + bl, NULL };
    int rc = gs_txn_put(t, GS_DB_IDEM, &k, &v, MDB_RESERVE);
    if (rc)
        return rc;
    uint8_t *d = v.mv_data;
    gs_le64_put(d, (uint64_t) now_ms);
    gs_le64_put(d + 8, fifo);
    for (int i = 0; i < GS_IDEM_COUNTS; i++)
        gs_le32_put(d + 16 + 4 * i, counts[i]);
    d[GS_IDEM_HDR] = compact ? S_ENC_COMPACT : S_ENC_PACKED;
    memcpy(d + GS_IDEM_HDR + 1, body, bl);
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

int
gs_idem_check(const uint8_t *v, size_t len, const char *upload_id)
{
    if (len <= GS_IDEM_HDR)
        return -1;
    if (v[GS_IDEM_HDR] == S_ENC_PACKED)
        return 0;
    if (v[GS_IDEM_HDR] != S_ENC_COMPACT)
        return -1;
    gs_wbuf_t b;
    gs_wbuf_init(&b);
    int rc = s_ack_expand(v + GS_IDEM_HDR + 1, len - GS_IDEM_HDR - 1, upload_id, &b);
    gs_wbuf_deinit(&b);
    return rc;
}

int
gs_idem_upgrade(gs_txn_t *t, uint64_t *entries)
{
    assert(t && entries);
    *entries = 0;
    if (t->err)
        return t->err;
    /* the keys first: puts while a cursor walks the table would move it */
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, t->st->db[GS_DB_IDEM], &c);
    if (rc)
        return gs_txn_fail(t, rc, "open idem cursor");
    gs_wbuf_t keys;
    gs_wbuf_init(&keys);
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        gs_wbuf_varint(&keys, k.mv_size);
        gs_wbuf_put(&keys, k.mv_data, k.mv_size);
    }
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND)
        rc = keys.failed ? ENOMEM : 0;
    uint8_t *buf = NULL;
    size_t cap = 0;
    const uint8_t *p = keys.data, *end = keys.data + keys.len;
    while (rc == 0 && p < end) {
        uint64_t kl;
        gs_wire_varint_get(&p, end, &kl);
        MDB_val key = { (size_t) kl, (void *) p };
        p += kl;
        if ((rc = mdb_get(t->txn, t->st->db[GS_DB_IDEM], &key, &v)))
            break;
        if (v.mv_size < GS_IDEM_HDR) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (v.mv_size + 1 > cap) {
            cap = (v.mv_size + 1) * 2;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                rc = ENOMEM;
                break;
            }
            buf = nb;
        }
        /* header, then the Ack as it was, named as such */
        memcpy(buf, v.mv_data, GS_IDEM_HDR);
        buf[GS_IDEM_HDR] = S_ENC_PACKED;
        memcpy(buf + GS_IDEM_HDR + 1, (const uint8_t *) v.mv_data + GS_IDEM_HDR,
               v.mv_size - GS_IDEM_HDR);
        MDB_val nv = { v.mv_size + 1, buf };
        if ((rc = mdb_put(t->txn, t->st->db[GS_DB_IDEM], &key, &nv, 0)))
            break;
        ++*entries;
    }
    free(buf);
    gs_wbuf_deinit(&keys);
    if (rc)
        return gs_txn_fail(t, rc, "upgrade idempotency entries");
    return t->err;
}

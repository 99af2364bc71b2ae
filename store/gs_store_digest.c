/*
 * gs_store_digest: the per-prefix digests of the current records (contract
 * in gs_store_digest.h; layout and formula in docs/store.md, "Digests").
 * The write side's cache and flush, the entry formula, the recomputation
 * from the records (the upgrade's builder and verify), the reader
 * (gs_store_digest) and the drift hooks for tests (gs_store_debug_drop,
 * gs_store_debug_set_version).
 */
#include "gs_store_digest.h"
#include "gs_store_ids.h"
#include "gs_store_log.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

/* ---- The entry ------------------------------------------------------------------- */

void
gs_digest_entry(const char *grid, char kb, const char *canon, size_t canon_len,
                uint64_t version, int status, const uint8_t hash[16], uint8_t out[16])
{
    assert(grid && canon && hash && out && canon_len <= GS_ID_MAX);
    /* one buffer, one call: the id's length follows from the total, every
     * other part being fixed */
    uint8_t b[GS_GRID_LEN + 1 + GS_ID_MAX + 8 + 1 + 16];
    uint8_t *p = b;
    memcpy(p, grid, GS_GRID_LEN);
    p += GS_GRID_LEN;
    *p++ = (uint8_t) kb;
    memcpy(p, canon, canon_len);
    p += canon_len;
    gs_be64_put(p, version);
    p += 8;
    *p++ = (uint8_t) status;
    memcpy(p, hash, 16);
    p += 16;
    crypto_generichash(out, 16, b, (size_t) (p - b), NULL, 0);
}

static void
s_xor(uint8_t *d, const uint8_t *e)
{
    for (int i = 0; i < 16; i++)
        d[i] ^= e[i];
}

static int
s_zero(const uint8_t *d)
{
    uint8_t z = 0;
    for (int i = 0; i < 16; i++)
        z |= d[i];
    return z == 0;
}

static void
s_val_put(uint8_t v[GS_DIGEST_VAL], const uint8_t dig[16], uint64_t count)
{
    memcpy(v, dig, 16);
    gs_le64_put(v + 16, count);
}

/* ---- Writing: the cache ------------------------------------------------------------ */

void
gs_digest_init(gs_digest_t *self)
{
    assert(self);
    memset(self, 0, sizeof *self);
    gs_smap_init(&self->prefixes);
}

void
gs_digest_deinit(gs_digest_t *self)
{
    if (self)
        gs_smap_deinit(&self->prefixes);
}

int
gs_digest_begin(gs_digest_t *self, gs_txn_t *t)
{
    assert(self && t);
    gs_smap_clear(&self->prefixes);
    memset(&self->path, 0, sizeof self->path);
    self->t = t;
    return 0;
}

/* The digests of grid's level prefixes, each read once per transaction
 * and marked to be written, into self->path. The cache key is the digests
 * key minus its level digit: the prefix lengths of the levels differ, so
 * the length says the level, and the root's empty prefix gets "*" as in
 * the chain. */
static int
s_prefix_ents(gs_digest_t *self, const char *grid)
{
    int created[GS_LEVELS];
    if (gs_smap_path(&self->prefixes, grid, &self->path, created))
        return gs_txn_fail(self->t, ENOMEM, "digest cache");
    for (int l = 0; l < GS_LEVELS; l++) {
        gs_smap_ent_t *e = self->path.e[l];
        if (created[l]) {
            uint8_t kb[GS_DGK_MAX];
            MDB_val k = { gs_key_digest(kb, grid, l), kb }, v;
            int rc = gs_txn_get(self->t, GS_DB_DIGESTS, &k, &v);
            if (rc == 0 && v.mv_size == GS_DIGEST_VAL) {
                memcpy(e->dig, v.mv_data, 16);
                e->u = gs_le64_get((const uint8_t *) v.mv_data + 16);
            } else if (rc == 0) {
                return gs_txn_fail(self->t, MDB_CORRUPTED, "digests value");
            } else if (rc != GS_ENOTFOUND) {
                return rc;
            }
        }
        e->dirty = 1;
    }
    return 0;
}

/* Add (sign +1) or remove (-1) entry under every level prefix of grid;
 * with sign 0 only XOR it in (a new version in the same cell: the count
 * does not change). */
static int
s_apply(gs_digest_t *self, const char *grid, const uint8_t entry[16], int sign)
{
    int rc = s_prefix_ents(self, grid);
    if (rc)
        return rc;
    for (int l = 0; l < GS_LEVELS; l++) {
        gs_smap_ent_t *e = self->path.e[l];
        if (sign < 0 && e->u == 0) {
            gs_store_detail("digest of prefix %.*s counts no records but one is removed: "
                            "run gridctl verify", gs_level_len[l], grid);
            return gs_txn_fail(self->t, GS_ECORRUPT, "digest count");
        }
    }
    for (int l = 0; l < GS_LEVELS; l++) {
        gs_smap_ent_t *e = self->path.e[l];
        s_xor(e->dig, entry);
        if (sign)
            e->u += (uint64_t) (int64_t) sign;
    }
    return 0;
}

int
gs_digest_change(gs_digest_t *self, char kb, const char *canon,
                 const gs_digest_rec_t *old, const gs_digest_rec_t *now)
{
    assert(self && self->t && canon && (old || now));
    assert(!old || (old->grid && old->hash));
    assert(!now || (now->grid && now->hash));
    if (self->t->err)
        return self->t->err;
    if (!self->t->st->digests_ready) {
        /* a store made before digests, opened by something else than a
         * broker: writing records would leave digests that do not match */
        return gs_txn_fail(self->t, GS_EVERSION,
                           "write records: the store's digests are not built yet (format 2); "
                           "start gridsyncd on it once to build them");
    }
    size_t cl = strlen(canon);
    uint8_t oe[16], ne[16];
    if (old)
        gs_digest_entry(old->grid, kb, canon, cl, old->version, old->status, old->hash, oe);
    if (now && now->entry) {
        memcpy(ne, now->entry, sizeof ne);
#ifndef NDEBUG
        /* made elsewhere: it must be the entry of exactly this version */
        uint8_t chk[16];
        gs_digest_entry(now->grid, kb, canon, cl, now->version, now->status, now->hash, chk);
        assert(memcmp(chk, ne, sizeof chk) == 0);
#endif
    } else if (now)
        gs_digest_entry(now->grid, kb, canon, cl, now->version, now->status, now->hash, ne);
    if (old && now && memcmp(old->grid, now->grid, GS_GRID_LEN) == 0) {
        /* the same cell: one pass with the difference, the count stays */
        s_xor(oe, ne);
        return s_apply(self, now->grid, oe, 0);
    }
    int rc = 0;
    if (old && (rc = s_apply(self, old->grid, oe, -1)))
        return rc;
    if (now)
        rc = s_apply(self, now->grid, ne, +1);
    return rc;
}

int
gs_digest_flush(gs_digest_t *self)
{
    assert(self && self->t);
    gs_txn_t *t = self->t;
    for (size_t i = 0; i < self->prefixes.cap; i++) {
        gs_smap_ent_t *e = &self->prefixes.ents[i];
        if (!e->used || !e->dirty)
            continue;
        /* the cache key's length says the level ("*" is the root, the
         * shortest other prefix has 2 digits) */
        int level = e->klen == 1 ? 0 : gs_level_of_len(e->klen);
        assert(level >= 0);
        char grid[GS_GRID_LEN] = { 0 };
        if (gs_level_len[level])
            memcpy(grid, e->key, e->klen);
        uint8_t kb[GS_DGK_MAX];
        MDB_val k = { gs_key_digest(kb, grid, level), kb };
        if (e->u == 0 && s_zero(e->dig)) {
            /* an empty prefix has no entry, so two stores list the same children */
            int rc = gs_txn_del(t, GS_DB_DIGESTS, &k);
            if (rc && rc != GS_ENOTFOUND)
                return rc;
            continue;
        }
        uint8_t b[GS_DIGEST_VAL];
        s_val_put(b, e->dig, e->u);
        MDB_val v = { GS_DIGEST_VAL, b };
        gs_txn_put(t, GS_DB_DIGESTS, &k, &v, 0);
    }
    return t->err;
}

/* ---- Recomputing from the records ------------------------------------------------------ */

int
gs_digest_recompute(gs_store_t *st, MDB_txn *txn, gs_digest_emit_fn *fn, void *arg,
                    uint64_t *records, uint64_t *skipped)
{
    assert(st && txn && fn && records && skipped);
    *records = *skipped = 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, st->db[GS_DB_RECORDS], &c);
    if (rc)
        return rc;
    /* one running accumulator per level; the records come in key order, so
     * each prefix's records are contiguous and a level closes when its
     * prefix changes (every deeper level closes with it) */
    char open[GS_GRID_LEN + 1] = "";    /* the grid whose prefixes are open */
    int have = 0;
    uint8_t dig[GS_LEVELS][16];
    uint64_t cnt[GS_LEVELS];
    memset(dig, 0, sizeof dig);
    memset(cnt, 0, sizeof cnt);
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        char grid[GS_GRID_LEN + 1], id[GS_ID_MAX + 1], kb;
        gs_rec_hdr_t h;
        if (gs_key_record_parse(k.mv_data, k.mv_size, grid, &kb, id) ||
            gs_rec_hdr_get(&v, &h)) {
            (*skipped)++;
            continue;
        }
        if (have) {
            int from = GS_LEVELS;   /* the shallowest level whose prefix changed */
            for (int l = 1; l < GS_LEVELS; l++)
                if (memcmp(open, grid, (size_t) gs_level_len[l]) != 0) {
                    from = l;
                    break;
                }
            for (int l = GS_LEVELS - 1; l >= from; l--) {
                char p[GS_GRID_LEN + 1];
                memcpy(p, open, (size_t) gs_level_len[l]);
                p[gs_level_len[l]] = 0;
                if ((rc = fn(arg, l, p, dig[l], cnt[l])))
                    goto out;
                memset(dig[l], 0, 16);
                cnt[l] = 0;
            }
        }
        memcpy(open, grid, sizeof open);
        have = 1;
        uint8_t e[16];
        gs_digest_entry(grid, kb, id, strlen(id), h.version, h.status, h.hash, e);
        for (int l = 0; l < GS_LEVELS; l++) {
            s_xor(dig[l], e);
            cnt[l]++;
        }
        (*records)++;
    }
    if (rc != MDB_NOTFOUND)
        goto out;
    rc = 0;
    for (int l = GS_LEVELS - 1; have && l >= 0; l--) {
        char p[GS_GRID_LEN + 1];
        memcpy(p, open, (size_t) gs_level_len[l]);
        p[gs_level_len[l]] = 0;
        if ((rc = fn(arg, l, p, dig[l], cnt[l])))
            break;
    }
out:
    mdb_cursor_close(c);
    return rc;
}

/* Put one recomputed prefix (the builder). */
static int
s_build_emit(void *arg, int level, const char *prefix, const uint8_t dig[16], uint64_t count)
{
    gs_txn_t *t = arg;
    char grid[GS_GRID_LEN] = { 0 };
    memcpy(grid, prefix, strlen(prefix));
    uint8_t kb[GS_DGK_MAX], b[GS_DIGEST_VAL];
    MDB_val k = { gs_key_digest(kb, grid, level), kb }, v = { GS_DIGEST_VAL, b };
    s_val_put(b, dig, count);
    gs_txn_put(t, GS_DB_DIGESTS, &k, &v, 0);
    return 0;   /* a failed put is sticky in t */
}

int
gs_digest_build(gs_txn_t *t, uint64_t *records)
{
    assert(t && records);
    *records = 0;
    if (t->err)
        return t->err;
    gs_store_t *st = t->st;
    int rc = mdb_drop(t->txn, st->db[GS_DB_DIGESTS], 0);
    if (rc)
        return gs_txn_fail(t, rc, "empty digests");
    uint64_t skipped = 0;
    rc = gs_digest_recompute(st, t->txn, s_build_emit, t, records, &skipped);
    if (rc)
        return gs_txn_fail(t, rc, "build digests");
    if (t->err)
        return t->err;
    if (skipped) {
        gs_store_detail("%llu records do not decode: run gridctl verify",
                        (unsigned long long) skipped);
        return gs_txn_fail(t, MDB_CORRUPTED, "build digests");
    }
    uint8_t fmt[4];
    gs_le32_put(fmt, GS_FORMAT_VERSION);
    MDB_val k = { 6, "format" }, v = { 4, fmt };
    return gs_txn_put(t, GS_DB_META, &k, &v, 0);
}

/* ---- Reading ------------------------------------------------------------------------ */

uint64_t
gs_store_digests_built(const gs_store_t *self)
{
    assert(self);
    return self->digests_built;
}

/* The children of the prefix at level (its next level's entries). */
static int
s_children(gs_store_t *st, MDB_txn *txn, const char *prefix, int level,
           gs_digest_child_fn *fn, void *arg, int *user)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, st->db[GS_DB_DIGESTS], &c);
    if (rc)
        return rc;
    size_t pl = strlen(prefix);
    uint8_t start[GS_DGK_MAX];
    start[0] = (uint8_t) ('0' + level + 1);
    memcpy(start + 1, prefix, pl);
    MDB_val k = { 1 + pl, start }, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 1 + pl || memcmp(k.mv_data, start, 1 + pl) != 0)
            break;
        gs_digest_node_t n;
        int cl;
        if (v.mv_size != GS_DIGEST_VAL ||
            gs_key_digest_parse(k.mv_data, k.mv_size, &cl, n.prefix) || cl != level + 1) {
            rc = MDB_CORRUPTED;
            break;
        }
        memcpy(n.digest, v.mv_data, 16);
        n.count = gs_le64_get((const uint8_t *) v.mv_data + 16);
        if ((*user = fn(arg, &n)))
            break;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* A cell's records after the cursor (kind byte + id), at most limit. */
static int
s_records(gs_store_t *st, MDB_txn *txn, const gs_digest_query_t *q, gs_digest_result_t *out,
          int *user)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, st->db[GS_DB_RECORDS], &c);
    if (rc)
        return rc;
    uint8_t start[GS_RK_MAX];
    memcpy(start, q->prefix, GS_GRID_LEN);
    if (q->cursor_len)
        memcpy(start + GS_GRID_LEN, q->cursor, q->cursor_len);
    MDB_val k = { GS_GRID_LEN + q->cursor_len, start }, v;
    uint8_t last[1 + GS_ID_MAX];        /* kind byte + id of the last record sent */
    size_t last_len = 0;
    uint32_t sent = 0;
    int more = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size < GS_GRID_LEN || memcmp(k.mv_data, q->prefix, GS_GRID_LEN) != 0)
            break;
        if (q->cursor_len && k.mv_size == GS_GRID_LEN + q->cursor_len &&
            memcmp(k.mv_data, start, k.mv_size) == 0)
            continue;   /* the cursor's own record was sent last time */
        char grid[GS_GRID_LEN + 1], id[GS_ID_MAX + 1], kb;
        gs_rec_hdr_t h;
        if (gs_key_record_parse(k.mv_data, k.mv_size, grid, &kb, id) || gs_rec_hdr_get(&v, &h)) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (q->limit && sent == q->limit) {
            more = 1;
            break;
        }
        gs_digest_record_t r = { gs_kind_of_byte(kb), id, h.version, h.status, { 0 } };
        memcpy(r.hash, h.hash, 16);
        if ((*user = q->record_fn(q->arg, &r)))
            break;
        sent++;
        last_len = k.mv_size - GS_GRID_LEN;
        memcpy(last, (const uint8_t *) k.mv_data + GS_GRID_LEN, last_len);
    }
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND)
        rc = 0;
    if (rc == 0 && more && !*user) {
        out->next_cursor = malloc(last_len);
        if (!out->next_cursor)
            return ENOMEM;
        memcpy(out->next_cursor, last, last_len);
        out->next_cursor_len = last_len;
    }
    return rc;
}

int
gs_store_digest(gs_store_t *self, const gs_digest_query_t *q, gs_digest_result_t *out)
{
    if (!self || !q || !out)
        return GS_EINVAL;
    memset(out, 0, sizeof *out);
    if (!q->prefix)
        return GS_EINVAL;
    size_t pl = strlen(q->prefix);
    int level = gs_level_of_len(pl);
    if (level < 0) {
        gs_store_detail("prefix '%.20s' is not a level prefix (0, 2, 4, 6, 9, 12 or 15 digits)",
                        q->prefix);
        return GS_EINVAL;
    }
    for (size_t i = 0; i < pl; i++)
        if (q->prefix[i] < '0' || q->prefix[i] > '9') {
            gs_store_detail("prefix '%s' is not all digits", q->prefix);
            return GS_EINVAL;
        }
    int cell = level == GS_LEVELS - 1;
    if ((cell && q->child_fn) || (!cell && q->record_fn)) {
        gs_store_detail("children are read above a cell, records at a cell");
        return GS_EINVAL;
    }
    if (q->cursor_len && (!q->cursor || q->cursor_len < 2 || q->cursor_len > 1 + GS_ID_MAX ||
                          gs_kind_of_byte((char) q->cursor[0]) == 0)) {
        gs_store_detail("damaged digest cursor");
        return GS_EINVAL;
    }
    if (!self->digests_ready) {
        gs_store_detail("the store's digests are not built yet (format %u): start "
                        "gridsyncd on it once to build them", GS_FORMAT_NO_DIGESTS);
        return GS_EVERSION;
    }
    memcpy(out->node.prefix, q->prefix, pl + 1);
    MDB_txn *txn;
    int rc = gs_rtxn_begin(self, &txn);
    if (rc)
        return rc;
    if ((rc = gs_log_head(self, txn, &out->head_seq)))
        goto done;
    char grid[GS_GRID_LEN] = { 0 };
    memcpy(grid, q->prefix, pl);
    uint8_t kb[GS_DGK_MAX];
    MDB_val k = { gs_key_digest(kb, grid, level), kb }, v;
    rc = mdb_get(txn, self->db[GS_DB_DIGESTS], &k, &v);
    if (rc == 0 && v.mv_size == GS_DIGEST_VAL) {
        memcpy(out->node.digest, v.mv_data, 16);
        out->node.count = gs_le64_get((const uint8_t *) v.mv_data + 16);
    } else if (rc == 0) {
        rc = MDB_CORRUPTED;
    }
    if (rc == MDB_NOTFOUND)
        rc = 0;
    int user = 0;
    if (rc == 0 && q->child_fn)
        rc = s_children(self, txn, q->prefix, level, q->child_fn, q->arg, &user);
    else if (rc == 0 && q->record_fn)
        rc = s_records(self, txn, q, out, &user);
    rc = user ? user : gs_store_err(rc, "read digests");
done:
    gs_rtxn_end(self, &txn);
    if (rc) {
        free(out->next_cursor);
        out->next_cursor = NULL;
        out->next_cursor_len = 0;
    }
    return rc;
}

/* ---- Drift, for tests ----------------------------------------------------------------- */

typedef struct s_drop {
    int kind;                       /* RecordKind, 0 = either */
    const char *id;                 /* canonical id or alias */
    gs_log_t log;                   /* cell counts and digests */
    uint64_t version;               /* not 0: keep the record, at this version */
} s_drop_t;

/* Every alias of canon (kind byte kb) into keys (arena); their count. */
static int
s_aliases(gs_txn_t *t, char kb, const char *canon, MDB_val **keys, size_t *n)
{
    gs_store_t *st = t->st;
    *keys = NULL;
    *n = 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, st->db[GS_DB_IDS], &c);
    if (rc)
        return gs_txn_fail(t, rc, "open ids cursor");
    size_t cap = 0;
    MDB_val k = { 1, &kb }, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 1 || *(const char *) k.mv_data != kb)
            break;
        char g[GS_GRID_LEN + 1], cn[GS_ID_MAX + 1];
        if (gs_val_id_parse(k.mv_data, k.mv_size, v.mv_data, v.mv_size, g, cn) ||
            strcmp(cn, canon) != 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            MDB_val *nk = gs_arena_alloc(st->arena, cap * sizeof *nk);
            if (!nk) {
                mdb_cursor_close(c);
                return gs_txn_fail(t, ENOMEM, "aliases");
            }
            if (*n)
                memcpy(nk, *keys, *n * sizeof *nk);
            *keys = nk;
        }
        void *kc = gs_arena_alloc(st->arena, k.mv_size);
        if (!kc) {
            mdb_cursor_close(c);
            return gs_txn_fail(t, ENOMEM, "aliases");
        }
        memcpy(kc, k.mv_data, k.mv_size);
        (*keys)[*n].mv_size = k.mv_size;
        (*keys)[(*n)++].mv_data = kc;
    }
    mdb_cursor_close(c);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : gs_txn_fail(t, rc, "scan ids");
}

static int
s_drop_fn(gs_txn_t *t, void *arg)
{
    s_drop_t *d = arg;
    gs_store_t *st = t->st;
    gs_arena_reset(st->arena);
    gs_wbuf_reset(&st->out);
    int rc;
    if ((rc = gs_log_begin(&d->log, t, &st->out, 0)))
        return rc;
    char grid[GS_GRID_LEN + 1], canon[GS_ID_MAX + 1], kb = 0;
    rc = MDB_NOTFOUND;
    for (int kind = 1; kind <= GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT && rc == MDB_NOTFOUND;
         kind++) {
        if (d->kind && d->kind != kind)
            continue;
        kb = gs_kind_byte(kind);
        rc = gs_ids_resolve(st, t->txn, kb, d->id, grid, canon);
    }
    if (rc == MDB_NOTFOUND)
        return GS_ENOTFOUND;
    if (rc)
        return gs_txn_fail(t, rc, "resolve id");
    size_t cl = strlen(canon);
    uint8_t rk[GS_RK_MAX];
    MDB_val k = { gs_key_record(rk, grid, kb, canon, cl), rk }, v;
    gs_rec_hdr_t h;
    if ((rc = gs_txn_get(t, GS_DB_RECORDS, &k, &v)))
        return rc == GS_ENOTFOUND ? gs_txn_fail(t, MDB_CORRUPTED, "record of an id") : rc;
    if (gs_rec_hdr_get(&v, &h))
        return gs_txn_fail(t, MDB_CORRUPTED, "record header");
    if (d->version) {
        /* the same record under another version: header and digests only */
        gs_digest_rec_t was = { grid, h.version, h.status, h.hash, NULL };
        uint8_t *copy = gs_arena_alloc(st->arena, v.mv_size);
        if (!copy)
            return gs_txn_fail(t, ENOMEM, "record copy");
        memcpy(copy, v.mv_data, v.mv_size);
        h.version = d->version;
        gs_rec_hdr_put(copy, &h);
        MDB_val nv = { v.mv_size, copy };
        gs_digest_rec_t now = { grid, h.version, h.status, h.hash, NULL };
        if ((rc = gs_txn_put(t, GS_DB_RECORDS, &k, &nv, 0)) ||
            (rc = gs_digest_change(&d->log.digest, kb, canon, &was, &now)))
            return rc;
        return gs_log_flush(&d->log);
    }
    /* copy the refs out before the value goes stale */
    size_t nrefs = h.n_refs;
    gs_ref_t *refs = nrefs ? gs_arena_alloc(st->arena, nrefs * sizeof *refs) : NULL;
    if (nrefs && !refs)
        return gs_txn_fail(t, ENOMEM, "person refs");
    for (size_t i = 0; i < nrefs; i++)
        gs_rec_ref_get(v.mv_data, &h, i, &refs[i]);
    const uint8_t *data;
    size_t len;
    if ((rc = gs_rec_data(st, t->txn, &h, &st->stored, &data, &len)))
        return gs_txn_fail(t, rc, "stored record");
    Gridsync__V1__Record *rec =
        gridsync__v1__record__unpack(gs_arena_allocator(st->arena), len, data);
    if (!rec)
        return gs_txn_fail(t, MDB_CORRUPTED, "stored record");
    uint8_t nk[GS_NATKEY_MAX + 2];
    size_t nkl = gs_natkey(rec, nk);

    if ((rc = gs_txn_del(t, GS_DB_RECORDS, &k)))
        return rc;
    if (h.status == GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_ACTIVE) {
        for (size_t i = 0; i < nrefs; i++)
            if ((rc = gs_persons_change(&d->log.persons, grid, refs[i].hmac, -1)))
                return rc;
    }
    if (nkl) {
        MDB_val nkk = { nkl, nk }, nkv;
        rc = gs_txn_get(t, GS_DB_NATKEYS, &nkk, &nkv);
        if (rc == 0 && gs_val_natkey_is(nkv.mv_data, nkv.mv_size, canon))
            rc = gs_txn_del(t, GS_DB_NATKEYS, &nkk);
        if (rc && rc != GS_ENOTFOUND)
            return rc;
    }
    MDB_val *aliases;
    size_t na;
    if ((rc = s_aliases(t, kb, canon, &aliases, &na)))
        return rc;
    for (size_t i = 0; i < na; i++)    /* the canonical entry is among them */
        if ((rc = gs_txn_del(t, GS_DB_IDS, &aliases[i])) && rc != GS_ENOTFOUND)
            return rc;
    if ((rc = gs_log_cell_count(&d->log, grid, kb, h.status, h.n_people, -1)))
        return rc;
    gs_digest_rec_t old = { grid, h.version, h.status, h.hash, NULL };
    if ((rc = gs_digest_change(&d->log.digest, kb, canon, &old, NULL)))
        return rc;
    return gs_log_flush(&d->log);
}

static int
s_drift(gs_store_t *self, int kind, const char *record_id, uint64_t version)
{
    if (!self || !record_id || !*record_id || kind < 0 || kind > 2)
        return GS_EINVAL;
    s_drop_t d = { kind, record_id, { 0 }, version };
    gs_log_init(&d.log);
    pthread_mutex_lock(&self->write_lock);
    int rc = gs_store_write_locked(self, s_drop_fn, &d, NULL);
    gs_arena_reset(self->arena);
    pthread_mutex_unlock(&self->write_lock);
    gs_log_deinit(&d.log);
    return rc;
}

int
gs_store_debug_drop(gs_store_t *self, int kind, const char *record_id)
{
    return s_drift(self, kind, record_id, 0);
}

int
gs_store_debug_set_version(gs_store_t *self, int kind, const char *record_id,
                           uint64_t version)
{
    return version ? s_drift(self, kind, record_id, version) : GS_EINVAL;
}

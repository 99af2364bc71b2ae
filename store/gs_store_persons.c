/*
 * gs_store_persons: the person index, one set of HMAC tags per cell
 * (contract in gs_store_persons.h, layout in docs/store.md): the write
 * side's cache and flush, the pure helpers the readers and verify use, and
 * the rebuild from the records.
 */
#include "gs_store_persons.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#define S_ACTIVE GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_ACTIVE

uint32_t
gs_persons_tag(const uint8_t hmac[16])
{
    return (uint32_t) hmac[0] << 24 | (uint32_t) hmac[1] << 16 | (uint32_t) hmac[2] << 8 |
           hmac[3];
}

static uint32_t
s_tag_at(const uint8_t *p)
{
    return gs_persons_tag(p);
}

/* First position in v[0..n) whose tag is >= x. */
static size_t
s_lower(const uint32_t *v, size_t n, uint32_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int
gs_persons_has(const uint8_t *val, size_t len, const uint8_t hmac[16])
{
    if (len % GS_PERSON_TAG)
        return -1;
    uint32_t x = gs_persons_tag(hmac);
    size_t lo = 0, hi = len / GS_PERSON_TAG;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t m = s_tag_at(val + mid * GS_PERSON_TAG);
        if (m == x)
            return 1;
        if (m < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static int
s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

int
gs_persons_differs(const uint8_t *val, size_t len, uint32_t *want, size_t n)
{
    if (len != n * GS_PERSON_TAG)
        return 1;
    if (n)
        qsort(want, n, sizeof *want, s_cmp_u32);
    for (size_t i = 0; i < n; i++)
        if (s_tag_at(val + i * GS_PERSON_TAG) != want[i])
            return 1;
    return 0;
}

/* ---- The write side's cache ---------------------------------------------------------- */

void
gs_persons_init(gs_persons_t *self)
{
    assert(self);
    memset(self, 0, sizeof *self);
    gs_smap_init(&self->cells);
}

void
gs_persons_deinit(gs_persons_t *self)
{
    if (!self)
        return;
    gs_smap_deinit(&self->cells);
    for (size_t i = 0; i < self->cap_sets; i++)
        free(self->sets[i].v);
    free(self->sets);
    self->sets = NULL;
    self->n_sets = self->cap_sets = 0;
}

void
gs_persons_begin(gs_persons_t *self, gs_txn_t *t)
{
    assert(self && t);
    gs_smap_clear(&self->cells);
    self->last_grid[0] = 0;
    self->n_sets = 0;       /* the buffers stay for the next transaction */
    self->t = t;
}

/* Make room for n tags in s. */
static int
s_reserve(gs_persons_set_t *s, size_t n)
{
    if (n <= s->cap)
        return 0;
    size_t nc = s->cap ? s->cap : 64;
    while (nc < n)
        nc *= 2;
    uint32_t *nv = realloc(s->v, nc * sizeof *nv);
    if (!nv)
        return -1;
    s->v = nv;
    s->cap = nc;
    return 0;
}

/* The cached set of grid, read from the table on first use. The last
 * grid's set is found again without a lookup: a record's persons, and the
 * next records', are mostly in one cell. */
static int
s_set(gs_persons_t *self, const char *grid, gs_persons_set_t **out)
{
    gs_txn_t *t = self->t;
    if (self->last_gen == self->cells.gen && strcmp(self->last_grid, grid) == 0) {
        *out = &self->sets[self->last_set];
        return 0;
    }
    int created;
    gs_smap_ent_t *e = gs_smap_get(&self->cells, grid, GS_GRID_LEN, &created);
    if (!e)
        return gs_txn_fail(t, ENOMEM, "person index cache");
    if (created) {
        if (self->n_sets == self->cap_sets) {
            size_t nc = self->cap_sets ? self->cap_sets * 2 : 64;
            gs_persons_set_t *ns = realloc(self->sets, nc * sizeof *ns);
            if (!ns)
                return gs_txn_fail(t, ENOMEM, "person index cache");
            memset(ns + self->cap_sets, 0, (nc - self->cap_sets) * sizeof *ns);
            self->sets = ns;
            self->cap_sets = nc;
        }
        e->u = self->n_sets++;
        gs_persons_set_t *s = &self->sets[e->u];
        s->n = 0;
        MDB_val k = { GS_GRID_LEN, (void *) grid }, v;
        int rc = gs_txn_get(t, GS_DB_PERSONS, &k, &v);
        if (rc == 0) {
            if (v.mv_size % GS_PERSON_TAG)
                return gs_txn_fail(t, MDB_CORRUPTED, "person index entry");
            size_t n = v.mv_size / GS_PERSON_TAG;
            if (s_reserve(s, n))
                return gs_txn_fail(t, ENOMEM, "person index cache");
            for (size_t i = 0; i < n; i++)
                s->v[i] = s_tag_at((const uint8_t *) v.mv_data + i * GS_PERSON_TAG);
            s->n = n;
        } else if (rc != GS_ENOTFOUND) {
            return rc;
        }
    }
    *out = &self->sets[e->u];
    e->dirty = 1;
    if (strlen(grid) == GS_GRID_LEN) {
        memcpy(self->last_grid, grid, GS_GRID_LEN + 1);
        self->last_set = e->u;
        self->last_gen = self->cells.gen;
    }
    return 0;
}

int
gs_persons_change(gs_persons_t *self, const char *grid, const uint8_t hmac[16], int sign)
{
    assert(self && self->t && grid && hmac && (sign == 1 || sign == -1));
    gs_txn_t *t = self->t;
    if (t->err)
        return t->err;
    if (!t->st->format_current) {
        /* an older store opened by something else than a broker: its
         * indexes have the older layouts until the broker upgrades it */
        gs_store_detail("write records: the store has the layout of format %u; start "
                        "gridsyncd on it once to upgrade it", t->st->format);
        return gs_txn_fail(t, GS_EVERSION, "write records");
    }
    gs_persons_set_t *s = NULL;
    int rc = s_set(self, grid, &s);
    if (rc)
        return rc;
    uint32_t x = gs_persons_tag(hmac);
    size_t i = s_lower(s->v, s->n, x);
    if (sign > 0) {
        if (s_reserve(s, s->n + 1))
            return gs_txn_fail(t, ENOMEM, "person index cache");
        memmove(s->v + i + 1, s->v + i, (s->n - i) * sizeof *s->v);
        s->v[i] = x;
        s->n++;
    } else if (i < s->n && s->v[i] == x) {
        memmove(s->v + i, s->v + i + 1, (s->n - i - 1) * sizeof *s->v);
        s->n--;
    }
    return 0;
}

int
gs_persons_flush(gs_persons_t *self)
{
    assert(self && self->t);
    gs_txn_t *t = self->t;
    for (size_t i = 0; i < self->cells.cap && !t->err; i++) {
        gs_smap_ent_t *e = &self->cells.ents[i];
        if (!e->used || !e->dirty)
            continue;
        const gs_persons_set_t *s = &self->sets[e->u];
        MDB_val k = { GS_GRID_LEN, e->key };
        if (s->n == 0) {
            int rc = gs_txn_del(t, GS_DB_PERSONS, &k);
            if (rc && rc != GS_ENOTFOUND)
                return rc;
            continue;
        }
        MDB_val v = { s->n * GS_PERSON_TAG, NULL };
        if (gs_txn_put(t, GS_DB_PERSONS, &k, &v, MDB_RESERVE))
            break;
        uint8_t *d = v.mv_data;
        for (size_t j = 0; j < s->n; j++)
            gs_be32_put(d + j * GS_PERSON_TAG, s->v[j]);
        gs_txn_trace(t, GS_DB_PERSONS, &k, &v, 0);
    }
    return t->err;
}

/* ---- The rebuild ------------------------------------------------------------------------ */

/* Write one cell's tags (sorted here); nothing when there are none. */
static int
s_build_put(gs_txn_t *t, const char *grid, gs_persons_set_t *s, uint64_t *tags)
{
    if (!s->n)
        return 0;
    qsort(s->v, s->n, sizeof *s->v, s_cmp_u32);
    MDB_val k = { GS_GRID_LEN, (void *) grid }, v = { s->n * GS_PERSON_TAG, NULL };
    int rc = gs_txn_put(t, GS_DB_PERSONS, &k, &v, MDB_RESERVE);
    if (rc)
        return rc;
    for (size_t j = 0; j < s->n; j++)
        gs_be32_put((uint8_t *) v.mv_data + j * GS_PERSON_TAG, s->v[j]);
    *tags += s->n;
    s->n = 0;
    return 0;
}

int
gs_persons_build(gs_txn_t *t, uint64_t *tags)
{
    assert(t && tags);
    *tags = 0;
    if (t->err)
        return t->err;
    gs_store_t *st = t->st;
    int rc = mdb_drop(t->txn, st->db[GS_DB_PERSONS], 0);
    if (rc)
        return gs_txn_fail(t, rc, "empty the person index");
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(t->txn, st->db[GS_DB_RECORDS], &c)))
        return gs_txn_fail(t, rc, "open records cursor");
    /* records are keyed grid first: one cell's tags at a time */
    gs_persons_set_t s = { NULL, 0, 0 };
    char grid[GS_GRID_LEN + 1] = "";
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        gs_rec_hdr_t h;
        if (k.mv_size < GS_GRID_LEN || gs_rec_hdr_get(&v, &h) ||
            v.mv_size < gs_rec_data_off(&h)) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (memcmp(k.mv_data, grid, GS_GRID_LEN) != 0) {
            if ((rc = s_build_put(t, grid, &s, tags)))
                break;
            memcpy(grid, k.mv_data, GS_GRID_LEN);
            grid[GS_GRID_LEN] = 0;
        }
        if (h.status != S_ACTIVE)
            continue;
        if (s_reserve(&s, s.n + h.n_refs)) {
            rc = ENOMEM;
            break;
        }
        for (size_t i = 0; i < h.n_refs; i++)
            s.v[s.n++] = s_tag_at((const uint8_t *) v.mv_data + GS_REC_HDR +
                                  i * gs_rec_ref_len(&h));
    }
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND)
        rc = s_build_put(t, grid, &s, tags);
    free(s.v);
    if (rc && !t->err)
        return gs_txn_fail(t, rc, "build the person index");
    return t->err;
}

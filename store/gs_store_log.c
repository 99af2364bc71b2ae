/*
 * gs_store_log: the change log, written and read (contract in
 * gs_store_log.h; layouts in docs/store.md). Appending an event, the chain
 * and cell caches and their flush; the head seq; the feed by global log or
 * per-cell merge; the last seq under a prefix.
 */
#include "gs_store_log.h"
#include "gs_grid.h"
#include "gs_store_lz.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

/* ---- Writing: caches ------------------------------------------------------------- */

void
gs_log_init(gs_log_t *self)
{
    assert(self);
    memset(self, 0, sizeof *self);
    gs_smap_init(&self->cells);
    gs_smap_init(&self->chain);
    gs_digest_init(&self->digest);
    gs_persons_init(&self->persons);
    gs_wbuf_init(&self->body);
}

void
gs_log_deinit(gs_log_t *self)
{
    if (!self)
        return;
    gs_smap_deinit(&self->cells);
    gs_smap_deinit(&self->chain);
    gs_digest_deinit(&self->digest);
    gs_persons_deinit(&self->persons);
    gs_wbuf_deinit(&self->body);
    free(self->evs);
    self->evs = NULL;
    self->n_evs = self->cap_evs = 0;
}

/* The chain heads of every level prefix, derived from `cells`: the last
 * seq under a prefix is the largest last seq of the cells under it (every
 * event sets its cell's). Built at the first write of this open and again
 * whenever the store's head is not the one they describe (a failed commit,
 * another process's write). */
static int
s_chain_build(gs_log_t *self)
{
    gs_txn_t *t = self->t;
    gs_store_t *st = t->st;
    if (!st->chain) {
        st->chain = malloc(sizeof *st->chain);
        if (!st->chain)
            return gs_txn_fail(t, ENOMEM, "chain heads");
        gs_smap_init(st->chain);
    }
    gs_smap_clear(st->chain);
    st->chain_built = 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(t->txn, st->db[GS_DB_CELLS], &c);
    if (rc)
        return gs_txn_fail(t, rc, "open cells cursor");
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        gs_cell_meta_t m;
        if (k.mv_size != GS_GRID_LEN || gs_cell_get(v.mv_data, v.mv_size, &m)) {
            rc = MDB_CORRUPTED;
            break;
        }
        char grid[GS_GRID_LEN + 1];
        memcpy(grid, k.mv_data, GS_GRID_LEN);
        grid[GS_GRID_LEN] = 0;
        for (int l = 0; l < GS_LEVELS; l++) {
            char key[GS_CHK_MAX];
            size_t kl = gs_key_chain(grid, l, key);
            gs_smap_ent_t *e = gs_smap_get(st->chain, key, kl, NULL);
            if (!e) {
                rc = ENOMEM;
                break;
            }
            if (m.last_seq > e->u)
                e->u = m.last_seq;
        }
        if (rc)
            break;
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND)
        return gs_txn_fail(t, rc, "derive chain heads");
    st->chain_head = self->head0;
    st->chain_built = 1;
    return 0;
}

int
gs_log_begin(gs_log_t *self, gs_txn_t *t, gs_wbuf_t *out, int64_t now_ms)
{
    assert(self && t && out);
    gs_smap_clear(&self->cells);
    gs_smap_clear(&self->chain);
    memset(&self->chain_path, 0, sizeof self->chain_path);
    self->last_cell = NULL;
    self->n_evs = 0;
    self->t = t;
    self->out = out;
    self->now_ms = now_ms;
    gs_digest_begin(&self->digest, t);
    gs_persons_begin(&self->persons, t);
    int rc = gs_txn_meta_get(t, "head_seq", &self->head);
    self->head0 = self->head;
    if (rc == 0 && (!t->st->chain_built || t->st->chain_head != self->head0))
        rc = s_chain_build(self);
    return rc;
}

/* The chain heads of grid's level prefixes, each read once per
 * transaction, into self->chain_path. */
static int
s_chain_ents(gs_log_t *self, const char *grid)
{
    int created[GS_LEVELS];
    if (gs_smap_path(&self->chain, grid, &self->chain_path, created))
        return gs_txn_fail(self->t, ENOMEM, "chain cache");
    for (int l = 0; l < GS_LEVELS; l++) {
        if (created[l]) {
            gs_smap_ent_t *e = self->chain_path.e[l];
            const gs_smap_ent_t *h = gs_smap_find(self->t->st->chain, e->key, e->klen);
            e->u = h ? h->u : 0;
        }
    }
    return 0;
}

/* A cell's metadata, read once per transaction; marked to be written. */
static int
s_cell_ent(gs_log_t *self, const char *grid, gs_smap_ent_t **out)
{
    gs_smap_ent_t *last = self->last_cell;
    if (last && self->last_cell_gen == self->cells.gen &&
        memcmp(last->key, grid, GS_GRID_LEN) == 0) {
        *out = last;    /* the same cell as the last call: found and marked */
        return 0;
    }
    int created;
    gs_smap_ent_t *e = gs_smap_get(&self->cells, grid, GS_GRID_LEN, &created);
    if (!e)
        return gs_txn_fail(self->t, ENOMEM, "cell cache");
    if (created) {
        MDB_val k = { GS_GRID_LEN, (void *) grid }, v;
        int rc = gs_txn_get(self->t, GS_DB_CELLS, &k, &v);
        if (rc == 0)
            gs_cell_get(v.mv_data, v.mv_size, &e->cell);    /* damaged: counted anew */
        else if (rc != GS_ENOTFOUND)
            return rc;
    }
    e->dirty = 1;
    *out = e;
    self->last_cell = e;
    self->last_cell_gen = self->cells.gen;
    return 0;
}

int
gs_log_cell_count(gs_log_t *self, const char *grid, char kb, int status, uint32_t people,
                  int sign)
{
    assert(self && grid && (sign == 1 || sign == -1));
    gs_smap_ent_t *ce = NULL;
    int rc = s_cell_ent(self, grid, &ce);
    if (rc)
        return rc;
    gs_cell_add(&ce->cell, kb, status, people, sign);
    return 0;
}

/* ---- Writing: events ----------------------------------------------------------------- */

int
gs_log_emit(gs_log_t *self, const gs_log_event_t *in, uint64_t *seq_out)
{
    assert(self && self->t && in && in->grid && in->record_key && seq_out);
    gs_txn_t *t = self->t;
    if (t->err)
        return t->err;
    uint64_t seq = ++self->head;
    uint64_t prev[GS_LEVELS];
    if (s_chain_ents(self, in->grid))
        return t->err;
    for (int l = 0; l < GS_LEVELS; l++) {
        gs_smap_ent_t *e = self->chain_path.e[l];
        prev[l] = e->u;
        e->u = seq;
        e->dirty = 1;
    }

    /* Fields 1..9 by protoc-c, then the record (10) and prev_seq (11)
     * spliced in field order: byte-identical to packing the whole message,
     * without copying the record into a message first. */
    Gridsync__V1__ChangeEvent ev = GRIDSYNC__V1__CHANGE_EVENT__INIT;
    ev.seq = seq;
    ev.grid_code = (char *) in->grid;
    ev.kind = (Gridsync__V1__RecordKind) in->kind;
    ev.record_key = (char *) in->record_key;
    ev.op = (Gridsync__V1__Operation) in->op;
    ev.version = in->version;
    ev.origin_device = (char *) in->origin_device;
    ev.committed_at = self->now_ms;
    ev.previous_grid_code = (char *) (in->prev_grid ? in->prev_grid : "");
    gs_wbuf_t *b = self->out;
    size_t off = b->len;
    size_t hl = protobuf_c_message_get_packed_size(&ev.base);
    uint8_t *p = gs_wbuf_reserve(b, hl);
    if (!p)
        return gs_txn_fail(t, ENOMEM, "event");
    protobuf_c_message_pack(&ev.base, p);
    b->len += hl;
    gs_wbuf_bytes_field(b, 10, in->record, in->record_len, 1);
    size_t pl = 0;
    for (int l = 0; l < GS_LEVELS; l++)
        pl += gs_wire_varint_len(prev[l]);
    gs_wbuf_varint(b, (11u << 3) | 2);
    gs_wbuf_varint(b, pl);
    for (int l = 0; l < GS_LEVELS; l++)
        gs_wbuf_varint(b, prev[l]);
    if (in->origin && *in->origin) {
        /* a replica's event: where it came from (fields 12-14, in order) */
        gs_wbuf_bytes_field(b, 12, in->origin, strlen(in->origin), 0);
        gs_wbuf_uint_field(b, 13, in->origin_epoch);
        gs_wbuf_uint_field(b, 14, in->origin_seq);
    }
    if (b->failed)
        return gs_txn_fail(t, ENOMEM, "event");
    size_t elen = b->len - off;

    /* the body (gs_store_lz.h) is encoded first, for its length; the log
     * value is then written in place: header, then the body. A store not
     * yet upgraded to this format keeps raw bodies, which older builds
     * read (only a broker's open upgrades, and it writes nothing first);
     * so does an event over what an LZ4 body may claim (none comes near) */
    const uint8_t *body = b->data + off;
    size_t blen = elen;
    if (t->st->format_current && elen <= GS_LZ_EVENT_MAX) {
        gs_wbuf_reset(&self->body);
        uint8_t *z = gs_wbuf_reserve(&self->body, elen);
        if (!z)
            return gs_txn_fail(t, ENOMEM, "event");
        blen = gs_lz_encode(body, elen, z);
        body = z;
    }
    uint8_t kb8[GS_LK_LEN];
    gs_key_log(kb8, seq);
    MDB_val k = { GS_LK_LEN, kb8 }, v = { GS_LOG_HDR + blen, NULL };
    int rc = gs_txn_put(t, GS_DB_LOG, &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc)
        return rc;
    uint8_t *d = v.mv_data;
    memcpy(d, in->grid, GS_GRID_LEN);
    gs_be64_put(d + GS_GRID_LEN, in->back);
    memcpy(d + GS_LOG_HDR, body, blen);
    gs_txn_trace(t, GS_DB_LOG, &k, &v, 1);

    uint8_t ck[GS_CLK_LEN];
    gs_key_cell_log(ck, in->grid, seq);
    MDB_val cv = { 0, "" };
    k.mv_size = sizeof ck;
    k.mv_data = ck;
    if ((rc = gs_txn_put(t, GS_DB_CELL_LOG, &k, &cv, 0)))
        return rc;

    gs_smap_ent_t *ce = NULL;
    if ((rc = s_cell_ent(self, in->grid, &ce)))
        return rc;
    ce->cell.last_seq = seq;
    ce->cell.last_update = self->now_ms;

    if (self->n_evs == self->cap_evs) {
        size_t nc = self->cap_evs ? self->cap_evs * 2 : 256;
        gs_log_ev_t *ne = realloc(self->evs, nc * sizeof *ne);
        if (!ne)
            return gs_txn_fail(t, ENOMEM, "events");
        self->evs = ne;
        self->cap_evs = nc;
    }
    gs_log_ev_t *er = &self->evs[self->n_evs++];
    er->off = off;
    er->len = elen;
    er->seq = seq;
    memcpy(er->grid, in->grid, GS_GRID_LEN);
    er->grid[GS_GRID_LEN] = 0;
    *seq_out = seq;
    return 0;
}

int
gs_log_flush(gs_log_t *self)
{
    assert(self && self->t);
    gs_txn_t *t = self->t;
    for (size_t i = 0; i < self->cells.cap; i++) {
        gs_smap_ent_t *e = &self->cells.ents[i];
        if (!e->used || !e->dirty)
            continue;
        uint8_t b[GS_CELL_VAL_ORG];
        size_t bl = gs_cell_put(b, &e->cell);
        MDB_val k = { GS_GRID_LEN, e->key }, v = { bl, b };
        gs_txn_put(t, GS_DB_CELLS, &k, &v, 0);
    }
    /* the chain heads are not written: the store's copy moves with this
     * transaction, and a failed commit makes the next one derive them
     * again (gs_txn_commit, gs_txn_abort) */
    gs_store_t *st = t->st;
    for (size_t i = 0; i < self->chain.cap && !t->err; i++) {
        gs_smap_ent_t *e = &self->chain.ents[i];
        if (!e->used || !e->dirty)
            continue;
        gs_smap_ent_t *h = gs_smap_get(st->chain, e->key, e->klen, NULL);
        if (!h) {
            st->chain_built = 0;
            gs_txn_fail(t, ENOMEM, "chain heads");
            break;
        }
        h->u = e->u;
    }
    st->chain_head = self->head;
    if (self->head != self->head0)
        gs_txn_meta_put(t, "head_seq", self->head);
    gs_digest_flush(&self->digest);
    gs_persons_flush(&self->persons);
    return t->err;     /* sticky: the first failed put, if any */
}

/* ---- Reading a log value ------------------------------------------------------------ */

int
gs_log_val_get(const MDB_val *v, gs_wbuf_t *scratch, gs_log_val_t *out)
{
    assert(v && scratch && out);
    if (v->mv_size < GS_LOG_HDR) {
        gs_store_detail("change log entry of %zu bytes, shorter than its header", v->mv_size);
        return GS_ECORRUPT;
    }
    const uint8_t *d = v->mv_data;
    out->grid = (const char *) d;
    out->back = gs_be64_get(d + GS_GRID_LEN);
    return gs_lz_decode(d + GS_LOG_HDR, v->mv_size - GS_LOG_HDR, scratch, &out->ev, &out->len);
}

/* ---- Reading the head --------------------------------------------------------------- */

int
gs_log_head(gs_store_t *self, MDB_txn *txn, uint64_t *head)
{
    MDB_val k = { 8, "head_seq" }, v;
    int rc = mdb_get(txn, self->db[GS_DB_META], &k, &v);
    *head = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return gs_store_err(rc, "read head_seq");
    if (v.mv_size != 8)
        return GS_ECORRUPT;
    *head = gs_le64_get(v.mv_data);
    return 0;
}

int
gs_store_head(gs_store_t *self, uint64_t *head_seq)
{
    MDB_txn *txn;
    int rc = gs_rtxn_begin(self, &txn);
    if (rc)
        return rc;
    rc = gs_log_head(self, txn, head_seq);
    gs_rtxn_end(self, &txn);
    return rc;
}

/* ---- Reading the log -------------------------------------------------------------- */

/* The state of one events call. */
typedef struct s_evq {
    gs_event_fn *fn;
    void *arg;
    uint32_t limit;                 /* 0 = no limit */
    uint32_t sent;                  /* events delivered */
    uint64_t last;                  /* seq of the last event delivered */
    int stop;                       /* fn's non-zero return */
    uint64_t stop_seq;              /* event fn stopped on */
    int err;                        /* a value that did not decode (GS_E*) */
    gs_wbuf_t scratch;              /* a compressed event, decoded */
} s_evq_t;

/* Deliver one log value; returns 1 when the walk must end (q->err set when
 * the value is damaged). */
static int
s_deliver(s_evq_t *q, uint64_t seq, const MDB_val *v)
{
    gs_log_val_t lv;
    int rc = gs_log_val_get(v, &q->scratch, &lv);
    if (rc) {
        q->err = rc;
        return 1;
    }
    char grid[GS_GRID_LEN + 1];
    memcpy(grid, lv.grid, GS_GRID_LEN);
    grid[GS_GRID_LEN] = 0;
    int r = q->fn(q->arg, seq, grid, lv.ev, lv.len);
    if (r) {
        q->stop = r;
        q->stop_seq = seq;
        return 1;
    }
    q->sent++;
    q->last = seq;
    return q->limit && q->sent >= q->limit;
}

/* Bytes below a log value that the scan asks the cache for ahead. */
#define S_SCAN_AHEAD 1024

/* Scan the global log from since+1, filtering by the grid in each value. */
static int
s_events_log(gs_store_t *self, MDB_txn *txn, const char *const *pf, size_t npf,
             uint64_t since, s_evq_t *q)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, self->db[GS_DB_LOG], &c);
    if (rc)
        return gs_store_err(rc, "open log cursor");
    uint8_t kb[GS_LK_LEN];
    gs_key_log(kb, since + 1);
    MDB_val k = { GS_LK_LEN, kb }, v;
    int all = npf == 1 && pf[0][0] == 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        uint64_t seq;
        if (gs_key_log_parse(k.mv_data, k.mv_size, &seq) || v.mv_size < GS_LOG_HDR) {
            rc = MDB_CORRUPTED;
            break;
        }
        /* LMDB fills a page from its end down, so with MDB_APPEND the next
         * entries lie just below this one: ask for them now, while this one
         * is read (a hint only; the page is mapped whole) */
        for (size_t o = 64; o <= S_SCAN_AHEAD; o += 64)
            __builtin_prefetch((const uint8_t *) v.mv_data - o);
        if (!all && gs_grid_prefix_find(v.mv_data, pf, npf) < 0)
            continue;
        if (s_deliver(q, seq, &v))
            break;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : gs_store_err(rc, "scan log");
}

/* Merge the per-cell logs of a few cells by seq. */
static int
s_events_cells(gs_store_t *self, MDB_txn *txn, char (*cells)[GS_GRID_LEN], size_t n,
               uint64_t since, s_evq_t *q)
{
    MDB_cursor *cur[GS_CELL_PATH_MAX];
    uint64_t next[GS_CELL_PATH_MAX];    /* next seq of each cell, 0 = done */
    size_t opened = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if ((rc = mdb_cursor_open(txn, self->db[GS_DB_CELL_LOG], &cur[i])))
            break;
        opened++;
        uint8_t kb[GS_CLK_LEN];
        gs_key_cell_log(kb, cells[i], since + 1);
        MDB_val k = { sizeof kb, kb }, v;
        rc = mdb_cursor_get(cur[i], &k, &v, MDB_SET_RANGE);
        next[i] = 0;
        uint64_t s0;
        if (rc == 0 && gs_key_cell_log_parse(k.mv_data, k.mv_size, &s0) == 0 &&
            memcmp(k.mv_data, cells[i], GS_GRID_LEN) == 0)
            next[i] = s0;
        if (rc == MDB_NOTFOUND)
            rc = 0;
        if (rc)
            break;
    }
    while (rc == 0) {
        size_t best = n;
        for (size_t i = 0; i < n; i++)
            if (next[i] && (best == n || next[i] < next[best]))
                best = i;
        if (best == n)
            break;
        uint64_t seq = next[best];
        uint8_t kb[GS_LK_LEN];
        gs_key_log(kb, seq);
        MDB_val k = { GS_LK_LEN, kb }, v;
        if ((rc = mdb_get(txn, self->db[GS_DB_LOG], &k, &v)))
            break;
        if (v.mv_size < GS_LOG_HDR) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (s_deliver(q, seq, &v))
            break;
        rc = mdb_cursor_get(cur[best], &k, &v, MDB_NEXT);
        next[best] = 0;
        uint64_t s1;
        if (rc == 0 && gs_key_cell_log_parse(k.mv_data, k.mv_size, &s1) == 0 &&
            memcmp(k.mv_data, cells[best], GS_GRID_LEN) == 0)
            next[best] = s1;
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    for (size_t i = 0; i < opened; i++)
        mdb_cursor_close(cur[i]);
    return gs_store_err(rc, "merge cell logs");
}

/* Count the cells under the prefixes, up to max+1; fill cells when <= max. */
static int
s_cells_under(gs_store_t *self, MDB_txn *txn, const char *const *pf, size_t npf,
              char (*cells)[GS_GRID_LEN], size_t max, size_t *n)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, self->db[GS_DB_CELLS], &c);
    if (rc)
        return gs_store_err(rc, "open cells cursor");
    *n = 0;
    for (size_t i = 0; i < npf && *n <= max; i++) {
        size_t pl = strlen(pf[i]);
        if (pl == 0) {
            *n = max + 1;   /* everything: the log is the better path */
            break;
        }
        MDB_val k = { pl, (void *) pf[i] }, v;
        for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            if (k.mv_size != GS_GRID_LEN || memcmp(k.mv_data, pf[i], pl) != 0)
                break;
            if (*n < max)
                memcpy(cells[*n], k.mv_data, GS_GRID_LEN);
            if (++*n > max)
                break;
        }
        if (rc == MDB_NOTFOUND)
            rc = 0;
        if (rc)
            break;
    }
    mdb_cursor_close(c);
    return gs_store_err(rc, "count cells");
}

int
gs_store_events_path(gs_store_t *self, const char *const *prefixes,
                     size_t n_prefixes, uint64_t since, uint32_t limit,
                     gs_event_fn *fn, void *arg, uint64_t *next_seq,
                     uint64_t *head_seq, int path)
{
    uint64_t dummy_n, dummy_h;
    if (!next_seq)
        next_seq = &dummy_n;
    if (!head_seq)
        head_seq = &dummy_h;
    *next_seq = since;
    if (!fn)
        return GS_EINVAL;
    const char **pf;
    size_t npf;
    int prc = gs_prefixes_take(prefixes, n_prefixes, &pf, &npf);
    if (prc)
        return prc;

    MDB_txn *txn;
    int rc = gs_rtxn_begin(self, &txn);
    if (rc) {
        free(pf);
        return rc;
    }
    s_evq_t q = { .fn = fn, .arg = arg, .limit = limit };
    gs_wbuf_init(&q.scratch);
    uint64_t head;
    if ((rc = gs_log_head(self, txn, &head)))
        goto done;
    *head_seq = head;
    if (npf && since < head) {
        char cells[GS_CELL_PATH_MAX][GS_GRID_LEN];
        size_t ncells = 0;
        if (path != 1 && (rc = s_cells_under(self, txn, pf, npf, cells,
                                             GS_CELL_PATH_MAX, &ncells)))
            goto done;
        if (path == 2 && ncells > GS_CELL_PATH_MAX) {
            rc = GS_EINVAL;
            goto done;
        }
        if (path != 1 && ncells <= GS_CELL_PATH_MAX)
            rc = s_events_cells(self, txn, cells, ncells, since, &q);
        else
            rc = s_events_log(self, txn, pf, npf, since, &q);
        if (rc == 0)
            rc = q.err;
        if (rc)
            goto done;
    }
    if (q.stop) {
        /* the event fn refused is not consumed */
        *next_seq = q.stop_seq - 1;
        rc = q.stop;
    } else if (q.limit && q.sent >= q.limit) {
        *next_seq = q.last;
    } else {
        *next_seq = since > head ? since : head;
    }
done:
    gs_rtxn_end(self, &txn);
    gs_wbuf_deinit(&q.scratch);
    free(pf);
    return rc;
}

int
gs_store_events(gs_store_t *self, const char *const *prefixes, size_t n_prefixes,
                uint64_t since, uint32_t limit, gs_event_fn *fn, void *arg,
                uint64_t *next_seq, uint64_t *head_seq)
{
    return gs_store_events_path(self, prefixes, n_prefixes, since, limit, fn, arg,
                                next_seq, head_seq, 0);
}

/* ---- The chain ----------------------------------------------------------------------- */

int
gs_store_prefix_last(gs_store_t *self, const char *prefix, uint64_t *last_seq)
{
    if (!prefix || !last_seq)
        return GS_EINVAL;
    int level = gs_level_of_len(strlen(prefix));
    if (level < 0)
        return GS_EINVAL;
    /* the largest last seq of the cells under the prefix (every event sets
     * its cell's): one read per cell under it */
    size_t pl = strlen(prefix);
    MDB_txn *txn;
    int rc = gs_rtxn_begin(self, &txn);
    if (rc)
        return rc;
    *last_seq = 0;
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(txn, self->db[GS_DB_CELLS], &c))) {
        gs_rtxn_end(self, &txn);
        return gs_store_err(rc, "open cells cursor");
    }
    MDB_val k = { pl, (void *) prefix }, v;
    for (rc = mdb_cursor_get(c, &k, &v, pl ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size < pl || memcmp(k.mv_data, prefix, pl) != 0)
            break;
        gs_cell_meta_t m;
        if (k.mv_size != GS_GRID_LEN || gs_cell_get(v.mv_data, v.mv_size, &m)) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (m.last_seq > *last_seq)
            *last_seq = m.last_seq;
    }
    mdb_cursor_close(c);
    gs_rtxn_end(self, &txn);
    return rc == MDB_NOTFOUND ? 0 : gs_store_err(rc, "read the cells under a prefix");
}

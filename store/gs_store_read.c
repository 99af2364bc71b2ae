/*
 * gs_store_read: everything that reads records. Snapshot paging for
 * devices, lookups by id, record history, per-cell metadata and the person
 * index reports. The change log's readers (the resumable feed, the head
 * and the chain) are in gs_store_log.c.
 *
 * Where it sits: called from the broker's sync and admin threads and from
 * gridctl. Each call runs in one read-only transaction, so what it returns
 * is one consistent state; readers never block the writer.
 *
 * Callbacks run inside that transaction: they must not call back into the
 * store (a nested read would deadlock against a pending map growth).
 */
#include "gs_grid.h"
#include "gs_store_int.h"
#include "gs_store_ids.h"
#include "gs_store_log.h"
#include "gs_store_persons.h"

#include <errno.h>
#include <stdlib.h>

/* ---- Helpers ---------------------------------------------------------------- */

/* Bytes below a log value that a snapshot asks the cache for ahead */
#define S_LOG_AHEAD 1024

/* Occurrences of the record field an event may have (the store packs one) */
#define S_EV_RECORDS_MAX 8

/* The packed Record in v, the log value of the event that made the
 * version (gs_rec_data, gs_rec_data_cursor): the event's record field, the
 * last one as gs_event_scan takes it. Only the record is wanted, so the
 * walk skips the other fields by their wire type instead of decoding
 * their values (the packed prev_seq list alone is seven varints of three
 * bytes or more). */
static int
s_rec_data_of(const MDB_val *v, gs_wbuf_t *scratch, const uint8_t **data, size_t *len)
{
    gs_log_val_t lv;
    int rc = gs_log_val_get(v, scratch, &lv);
    if (rc)
        return rc == GS_ENOMEM ? ENOMEM : MDB_CORRUPTED;
    const uint8_t *at[S_EV_RECORDS_MAX];
    size_t n[S_EV_RECORDS_MAX];
    long found = gs_wire_spans(lv.ev, lv.len, GS_EV_RECORD, at, n, S_EV_RECORDS_MAX);
    if (found < 1 || found > S_EV_RECORDS_MAX)
        return MDB_CORRUPTED;
    *data = at[found - 1];
    *len = n[found - 1];
    return 0;
}

/* A records value holds no copy of the record: the packed Record is the
 * record field of the event that made its version (see store.md). */
int
gs_rec_data(gs_store_t *st, MDB_txn *txn, const gs_rec_hdr_t *h, gs_wbuf_t *scratch,
            const uint8_t **data, size_t *len)
{
    uint8_t kb[GS_LK_LEN];
    gs_key_log(kb, h->seq);
    MDB_val k = { GS_LK_LEN, kb }, v;
    int rc = mdb_get(txn, st->db[GS_DB_LOG], &k, &v);
    if (rc)
        return rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc;
    return s_rec_data_of(&v, scratch, data, len);
}

int
gs_rec_data_cursor(MDB_cursor *lc, uint64_t *at, const gs_rec_hdr_t *h, gs_wbuf_t *scratch,
                   const uint8_t **data, size_t *len)
{
    uint8_t kb[GS_LK_LEN];
    gs_key_log(kb, h->seq);
    MDB_val k, v;
    int rc = MDB_NOTFOUND;
    if (*at && h->seq == *at + 1) {
        /* the version right after the last one read (records stored
         * together, as a grid's usually are): the next entry, when it is
         * that seq (the log has no holes, but its key says) */
        rc = mdb_cursor_get(lc, &k, &v, MDB_NEXT);
        if (rc == 0 && (k.mv_size != GS_LK_LEN || memcmp(k.mv_data, kb, GS_LK_LEN) != 0))
            rc = MDB_NOTFOUND;
    }
    if (rc) {
        /* MDB_SET looks on the cursor's current leaf page first, and
         * descends from the root only when the seq lies outside it */
        k.mv_size = GS_LK_LEN;
        k.mv_data = kb;
        rc = mdb_cursor_get(lc, &k, &v, MDB_SET);
    }
    *at = rc ? 0 : h->seq;
    if (rc)
        return rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc;
    /* the event is read field by field, each a dependent load, and then the
     * record in it byte by byte by the caller: ask for every cache line of
     * it up front, so that their misses overlap. LMDB fills a page from its
     * end down, so the log entries after this one (the next records' when
     * they were stored together) lie just below it: ask for those too, as
     * the log's scan does (a hint only; the page is mapped whole) */
    for (size_t i = 0; i < v.mv_size; i += 64)
        __builtin_prefetch((const uint8_t *) v.mv_data + i);
    for (size_t o = 64; o <= S_LOG_AHEAD; o += 64)
        __builtin_prefetch((const uint8_t *) v.mv_data - o);
    return s_rec_data_of(&v, scratch, data, len);
}

int
gs_rec_refs_full(gs_store_t *st, MDB_txn *txn, const gs_rec_hdr_t *h, gs_wbuf_t *scratch,
                 gs_ref_t **refs, size_t *n)
{
    *refs = NULL;
    *n = 0;
    const uint8_t *data;
    size_t len;
    int rc = gs_rec_data(st, txn, h, scratch, &data, &len);
    if (rc)
        return rc;
    Gridsync__V1__Record *rec = gridsync__v1__record__unpack(NULL, len, data);
    if (!rec)
        return MDB_CORRUPTED;
    /* as the write path computes them (gs_store_prepare, gs_prepare_packed) */
    size_t max = gs_record_people_max(rec);
    if (max) {
        *refs = malloc(max * sizeof **refs);
        if (!*refs)
            rc = ENOMEM;
        else if ((rc = gs_record_refs(st, rec, *refs, max, n)) != 0)
            *n = 0;
        if (rc == GS_ENOTFOUND)
            gs_store_detail("secret.key is missing: the person refs of format %u records "
                            "are computed with it", GS_FORMAT_VERSION);
    }
    gridsync__v1__record__free_unpacked(rec, NULL);
    if (rc || !*n) {
        free(*refs);
        *refs = NULL;
    }
    return rc;
}

/* A records entry as a view, its record read through lc (a log cursor of
 * txn, sitting on seq *at; gs_rec_data_cursor) when given. Buffers hold
 * the NUL-terminated copies. */
static int
s_view(gs_store_t *self, MDB_txn *txn, MDB_cursor *lc, uint64_t *at, const MDB_val *k,
       const MDB_val *v, gs_wbuf_t *scratch, gs_record_view_t *view,
       char grid[GS_GRID_LEN + 1], char id[GS_ID_MAX + 1])
{
    gs_rec_hdr_t h;
    char kb;
    if (gs_key_record_parse(k->mv_data, k->mv_size, grid, &kb, id) || gs_rec_hdr_get(v, &h))
        return GS_ECORRUPT;
    const uint8_t *data;
    size_t len;
    int rc = lc ? gs_rec_data_cursor(lc, at, &h, scratch, &data, &len)
                : gs_rec_data(self, txn, &h, scratch, &data, &len);
    if (rc)
        return rc == ENOMEM ? GS_ENOMEM : GS_ECORRUPT;
    view->grid = grid;
    view->kind = gs_kind_of_byte(kb);
    view->record_key = id;
    view->version = h.version;
    view->seq = h.seq;
    view->updated_at = h.updated_at;
    view->status = h.status;
    view->data = data;
    view->len = len;
    return 0;
}

/* Resolve kind|id to the records key (grid|kind|canonical). */
static int
s_find(gs_store_t *self, MDB_txn *txn, char kb, const char *id, uint8_t *rk,
       size_t *rkl)
{
    char grid[GS_GRID_LEN + 1], canon[GS_ID_MAX + 1];
    int rc = gs_ids_resolve(self, txn, kb, id, grid, canon);
    if (rc)
        return gs_store_err(rc, "look up id");
    *rkl = gs_key_record(rk, grid, kb, canon, strlen(canon));
    return 0;
}

/* Walk the kinds a lookup asks for: kind 0 tries households, rentals,
 * organisations, then incidents. */
static int
s_kinds(int kind, char kbs[4])
{
    if (kind == 0) {
        kbs[0] = GS_KIND_H;
        kbs[1] = GS_KIND_R;
        kbs[2] = GS_KIND_O;
        kbs[3] = GS_KIND_I;
        return 4;
    }
    kbs[0] = gs_kind_byte(kind);
    return kbs[0] ? 1 : 0;
}

/* ---- Snapshot paging --------------------------------------------------------- */

int
gs_store_snapshot(gs_store_t *self, const char *const *prefixes, size_t n_prefixes,
                  const uint8_t *cursor, size_t cursor_len, uint32_t limit,
                  gs_record_fn *fn, void *arg, uint8_t **next_cursor,
                  size_t *next_cursor_len, uint64_t *snapshot_seq)
{
    if (!fn || !next_cursor || !next_cursor_len)
        return GS_EINVAL;
    *next_cursor = NULL;
    *next_cursor_len = 0;
    const char **pf;
    size_t npf;
    int prc = gs_prefixes_take(prefixes, n_prefixes, &pf, &npf);
    if (prc)
        return prc;

    /* the walk's position lives in the cursor: snap, pi and the last key */
    gs_snap_cursor_t sc;
    memset(&sc, 0, sizeof sc);
    sc.prefix_hash = gs_snap_prefix_hash(pf, npf);
    int resume = cursor && cursor_len > 0;
    if (resume) {
        gs_snap_cursor_t in;
        if (gs_snap_cursor_parse(cursor, cursor_len, &in) ||
            in.prefix_hash != sc.prefix_hash || in.prefix_index >= npf) {
            free(pf);
            gs_store_detail("snapshot cursor does not belong to this prefix set");
            return GS_EINVAL;
        }
        sc = in;
    }
    uint64_t snap = sc.snap;
    uint32_t pi = sc.prefix_index;
    uint8_t *last = sc.last;
    size_t last_len = sc.last_len;

    MDB_txn *txn;
    int rc = gs_rtxn_begin(self, &txn);
    if (rc) {
        free(pf);
        return rc;
    }
    gs_wbuf_t scratch;              /* a compressed log entry's record, decoded */
    gs_wbuf_init(&scratch);
    if (!resume && (rc = gs_log_head(self, txn, &snap)))
        goto done;
    if (snapshot_seq)
        *snapshot_seq = snap;
    MDB_cursor *c, *lc;
    if ((rc = mdb_cursor_open(txn, self->db[GS_DB_RECORDS], &c))) {
        rc = gs_store_err(rc, "open records cursor");
        goto done;
    }
    if ((rc = mdb_cursor_open(txn, self->db[GS_DB_LOG], &lc))) {
        mdb_cursor_close(c);
        rc = gs_store_err(rc, "open log cursor");
        goto done;
    }
    uint32_t sent = 0;
    uint64_t log_at = 0;            /* the seq lc sits on, 0 before the first */
    int more = 0, user = 0;
    for (; pi < npf && !more && !user && rc == 0; pi++) {
        size_t pl = strlen(pf[pi]);
        MDB_val k, v;
        int here = 0;   /* records delivered from this prefix in this call */
        if (resume && last_len > 0) {
            k.mv_size = last_len;
            k.mv_data = last;
            rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
            if (rc == 0 && k.mv_size == last_len && memcmp(k.mv_data, last, last_len) == 0)
                rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        } else if (pl) {
            k.mv_size = pl;
            k.mv_data = (void *) pf[pi];
            rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        } else {
            rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        }
        resume = 0;
        for (; rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            if (k.mv_size < pl || memcmp(k.mv_data, pf[pi], pl) != 0)
                break;
            if (limit && sent >= limit) {
                /* a record remains: the page is full. When it is the first
                 * of a new prefix, the cursor says "start of prefix pi"
                 * (no key): the last key belongs to an earlier range. */
                more = 1;
                if (!here)
                    last_len = 0;
                break;
            }
            gs_record_view_t view;
            char grid[GS_GRID_LEN + 1], id[GS_ID_MAX + 1];
            if ((rc = s_view(self, txn, lc, &log_at, &k, &v, &scratch, &view, grid, id)))
                break;
            if ((user = fn(arg, &view)))
                break;
            sent++;
            here++;
            last_len = k.mv_size;
            memcpy(last, k.mv_data, last_len);
        }
        if (rc == MDB_NOTFOUND)
            rc = 0;
        if (more || user)
            break;
    }
    mdb_cursor_close(lc);
    mdb_cursor_close(c);
    if (rc) {
        rc = gs_store_err(rc, "snapshot");
    } else if (user) {
        rc = user;
    } else if (more) {
        sc.snap = snap;
        sc.prefix_index = pi;
        sc.last_len = last_len;
        size_t ncl = gs_snap_cursor_size(&sc);
        uint8_t *nc = malloc(ncl);
        if (!nc) {
            rc = GS_ENOMEM;
            goto done;
        }
        gs_snap_cursor_put(nc, &sc);
        *next_cursor = nc;
        *next_cursor_len = ncl;
    }
done:
    gs_rtxn_end(self, &txn);
    gs_wbuf_deinit(&scratch);
    free(pf);
    return rc;
}

/* ---- Lookups ------------------------------------------------------------------ */

int
gs_store_get(gs_store_t *self, int kind, const char *record_id, gs_record_fn *fn,
             void *arg)
{
    char kbs[4];
    int nk = s_kinds(kind, kbs);
    if (!record_id || !fn || !nk)
        return GS_EINVAL;
    MDB_txn *txn;
    int rc = gs_rtxn_begin(self, &txn);
    if (rc)
        return rc;
    rc = GS_ENOTFOUND;
    for (int i = 0; i < nk && rc == GS_ENOTFOUND; i++) {
        uint8_t rk[GS_RK_MAX];
        size_t rkl = 0;
        if ((rc = s_find(self, txn, kbs[i], record_id, rk, &rkl)))
            continue;
        MDB_val k = { rkl, rk }, v;
        if ((rc = mdb_get(txn, self->db[GS_DB_RECORDS], &k, &v))) {
            rc = rc == MDB_NOTFOUND ? GS_ECORRUPT : gs_store_err(rc, "get record");
            break;
        }
        gs_record_view_t view;
        char grid[GS_GRID_LEN + 1], id[GS_ID_MAX + 1];
        gs_wbuf_t scratch;
        gs_wbuf_init(&scratch);
        if (!(rc = s_view(self, txn, NULL, NULL, &k, &v, &scratch, &view, grid, id)))
            rc = fn(arg, &view);
        gs_wbuf_deinit(&scratch);
    }
    gs_rtxn_end(self, &txn);
    return rc;
}

int
gs_store_history(gs_store_t *self, int kind, const char *record_id, gs_event_fn *fn,
                 void *arg)
{
    char kbs[4];
    int nk = s_kinds(kind, kbs);
    if (!record_id || !fn || !nk)
        return GS_EINVAL;
    MDB_txn *txn;
    int rc = gs_rtxn_begin(self, &txn);
    if (rc)
        return rc;
    uint64_t *seqs = NULL;
    size_t n = 0, cap = 0;
    rc = GS_ENOTFOUND;
    for (int i = 0; i < nk && rc == GS_ENOTFOUND; i++) {
        uint8_t rk[GS_RK_MAX];
        size_t rkl = 0;
        if ((rc = s_find(self, txn, kbs[i], record_id, rk, &rkl)))
            continue;
        MDB_val k = { rkl, rk }, v;
        gs_rec_hdr_t h;
        if ((rc = mdb_get(txn, self->db[GS_DB_RECORDS], &k, &v)) || gs_rec_hdr_get(&v, &h)) {
            rc = GS_ECORRUPT;
            break;
        }
        /* follow each event's back pointer to the record's previous one */
        for (uint64_t s = h.seq; s && rc == 0;) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                uint64_t *ns = realloc(seqs, cap * sizeof *ns);
                if (!ns) {
                    rc = GS_ENOMEM;
                    break;
                }
                seqs = ns;
            }
            seqs[n++] = s;
            uint8_t kb[GS_LK_LEN];
            gs_key_log(kb, s);
            MDB_val lk = { GS_LK_LEN, kb }, lv;
            if (mdb_get(txn, self->db[GS_DB_LOG], &lk, &lv) || lv.mv_size < GS_LOG_HDR) {
                rc = GS_ECORRUPT;
                break;
            }
            /* the header alone: the body is decoded only to be delivered */
            uint64_t back = gs_be64_get((const uint8_t *) lv.mv_data + GS_GRID_LEN);
            if (back >= s) {
                rc = GS_ECORRUPT;
                break;
            }
            s = back;
        }
    }
    gs_wbuf_t scratch;              /* a compressed event, decoded */
    gs_wbuf_init(&scratch);
    for (size_t i = n; rc == 0 && i-- > 0;) {
        uint8_t kb[GS_LK_LEN];
        gs_key_log(kb, seqs[i]);
        MDB_val lk = { GS_LK_LEN, kb }, lv;
        gs_log_val_t ev;
        if (mdb_get(txn, self->db[GS_DB_LOG], &lk, &lv)) {
            rc = GS_ECORRUPT;
            break;
        }
        if ((rc = gs_log_val_get(&lv, &scratch, &ev)))
            break;
        char grid[GS_GRID_LEN + 1];
        memcpy(grid, ev.grid, GS_GRID_LEN);
        grid[GS_GRID_LEN] = 0;
        rc = fn(arg, seqs[i], grid, ev.ev, ev.len);
    }
    gs_wbuf_deinit(&scratch);
    free(seqs);
    gs_rtxn_end(self, &txn);
    return rc;
}

typedef struct s_rec_list {
    gs_store_t *st;             /* the store */
    gs_record_fn *fn;           /* the caller's callback */
    void *arg;                  /* its argument */
    gs_wbuf_t scratch;          /* a compressed log entry's record, decoded */
} s_rec_list_t;

static int
s_record_each(void *arg, MDB_txn *txn, const MDB_val *k, const MDB_val *v, int *user)
{
    s_rec_list_t *l = arg;
    gs_record_view_t view;
    char grid[GS_GRID_LEN + 1], id[GS_ID_MAX + 1];
    int rc = s_view(l->st, txn, NULL, NULL, k, v, &l->scratch, &view, grid, id);
    if (rc)
        return rc == GS_ECORRUPT ? MDB_CORRUPTED : rc == GS_ENOMEM ? ENOMEM : rc;
    *user = l->fn(l->arg, &view);
    return 0;
}

int
gs_store_records(gs_store_t *self, const char *prefix, gs_record_fn *fn, void *arg)
{
    if (!fn)
        return GS_EINVAL;
    s_rec_list_t l = { self, fn, arg, { 0 } };
    gs_wbuf_init(&l.scratch);
    int rc = gs_scan(self, GS_DB_RECORDS, prefix, s_record_each, &l, "list records");
    gs_wbuf_deinit(&l.scratch);
    return rc;
}

typedef struct s_cell_list {
    gs_cell_fn *fn;             /* the caller's callback */
    void *arg;                  /* its argument */
} s_cell_list_t;

static int
s_cell_each(void *arg, MDB_txn *txn, const MDB_val *k, const MDB_val *v, int *user)
{
    (void) txn;
    s_cell_list_t *l = arg;
    gs_cell_meta_t m;
    if (k->mv_size != GS_GRID_LEN || gs_cell_get(v->mv_data, v->mv_size, &m))
        return MDB_CORRUPTED;
    char grid[GS_GRID_LEN + 1];
    memcpy(grid, k->mv_data, GS_GRID_LEN);
    grid[GS_GRID_LEN] = 0;
    *user = l->fn(l->arg, grid, &m);
    return 0;
}

int
gs_store_cells(gs_store_t *self, const char *prefix, gs_cell_fn *fn, void *arg)
{
    if (!fn)
        return GS_EINVAL;
    s_cell_list_t l = { fn, arg };
    return gs_scan(self, GS_DB_CELLS, prefix, s_cell_each, &l, "list cells");
}

/* ---- Person index ---------------------------------------------------------------- */

/* The person index (gs_store_persons.h) holds one set of HMAC tags per
 * cell; the refs themselves (HMAC, role) are in the records' values, in
 * full (format 6 and older) or as tags (format 7, GS_RF_TAGS), a tag's
 * full HMAC computed again from the record when a reader needs it
 * (gs_rec_refs_full). Finding one person therefore reads every cell's set
 * and the records of the cells whose set holds the HMAC's tag; the
 * duplicate report scans the records' refs and groups them in memory, in
 * as many passes (split by HMAC) as keep each pass's memory bounded. */

#define S_DUP_PASS_ENTRIES 500000   /* entries held in memory per pass (~56 MB) */
#define S_ACTIVE_REC GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_ACTIVE

/* One person ref of an active record, copied out of the transaction. */
typedef struct s_pent {
    uint8_t hmac[16];               /* in full, or only its tag (full 0) */
    char grid[GS_GRID_LEN + 1];
    char id[GS_ID_MAX + 1];
    uint8_t kind;                   /* RecordKind */
    uint8_t role;                   /* GS_ROLE_* */
    uint8_t full;                   /* hmac is the full HMAC */
    uint16_t ref;                   /* the ref's place in its records value */
    uint64_t seq;                   /* the event of the record's version */
} s_pent_t;

/* A growable array of entries. */
typedef struct s_pents {
    s_pent_t *v;
    size_t n, cap;
} s_pents_t;

/* Room for one more entry. */
static int
s_pent_room(s_pents_t *a)
{
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 64;
        s_pent_t *nv = realloc(a->v, nc * sizeof *nv);
        if (!nv)
            return GS_ENOMEM;
        a->v = nv;
        a->cap = nc;
    }
    return 0;
}

/* Append a copy of e. */
static int
s_pent_push(s_pents_t *a, const s_pent_t *e)
{
    if (s_pent_room(a))
        return GS_ENOMEM;
    a->v[a->n++] = *e;
    return 0;
}

/* Add ref i (r, full or a tag) of the record keyed k, whose version is
 * the event at seq. */
static int
s_pent_add(s_pents_t *a, const MDB_val *k, const gs_ref_t *r, int full, size_t i,
           uint64_t seq)
{
    if (s_pent_room(a))
        return GS_ENOMEM;
    s_pent_t *e = &a->v[a->n];
    char kb;
    if (gs_key_record_parse(k->mv_data, k->mv_size, e->grid, &kb, e->id))
        return MDB_CORRUPTED;
    memcpy(e->hmac, r->hmac, 16);
    e->kind = (uint8_t) gs_kind_of_byte(kb);
    e->role = r->role;
    e->full = (uint8_t) full;
    e->ref = (uint16_t) i;
    e->seq = seq;
    a->n++;
    return 0;
}

/* The header of one records entry and its number of refs when it is
 * active (0 for another status). MDB_CORRUPTED for a damaged value. */
static int
s_rec_refs(const MDB_val *v, gs_rec_hdr_t *h, size_t *n)
{
    if (gs_rec_hdr_get(v, h) || v->mv_size < gs_rec_data_off(h))
        return MDB_CORRUPTED;
    *n = h->status == S_ACTIVE_REC ? h->n_refs : 0;
    return 0;
}

/* Make entry e's HMAC full: the ref at its place among the refs computed
 * from its record, which must carry the tag the value keeps. */
static int
s_pent_resolve(gs_store_t *st, MDB_txn *txn, gs_wbuf_t *scratch, s_pent_t *e)
{
    if (e->full)
        return 0;
    gs_rec_hdr_t h = { .seq = e->seq };
    gs_ref_t *refs;
    size_t n;
    int rc = gs_rec_refs_full(st, txn, &h, scratch, &refs, &n);
    if (rc)
        return rc;
    if (e->ref >= n || memcmp(refs[e->ref].hmac, e->hmac, GS_PERSON_TAG) != 0 ||
        refs[e->ref].role != e->role) {
        rc = MDB_CORRUPTED;
    } else {
        memcpy(e->hmac, refs[e->ref].hmac, 16);
        e->full = 1;
    }
    free(refs);
    return rc;
}

static int
s_pent_cmp(const void *a, const void *b)
{
    const s_pent_t *x = a, *y = b;
    int c = memcmp(x->hmac, y->hmac, 16);
    if (!c)
        c = strcmp(x->grid, y->grid);
    if (!c)
        c = (int) x->kind - (int) y->kind;
    if (!c)
        c = strcmp(x->id, y->id);
    return c;
}

/* By tag only: every entry of one person is in one run, whether its HMAC
 * is full or not. */
static int
s_pent_tag_cmp(const void *a, const void *b)
{
    const s_pent_t *x = a, *y = b;
    return memcmp(x->hmac, y->hmac, GS_PERSON_TAG);
}

/* Call fn with the n entries of one person. */
static int
s_pent_emit(const s_pent_t *e, size_t n, gs_dup_fn *fn, void *arg)
{
    gs_person_ref_t *refs = malloc(n * sizeof *refs);
    if (!refs)
        return GS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        refs[i].grid = e[i].grid;
        refs[i].kind = e[i].kind;
        refs[i].record_key = e[i].id;
        refs[i].role = e[i].role;
    }
    int rc = fn(arg, e[0].hmac, refs, n);
    free(refs);
    return rc;
}

/* Add the refs to hmac of the active records of one cell: a full ref
 * that equals it, a tag ref whose record's ref in that place does. */
static int
s_cell_person(gs_store_t *st, MDB_txn *txn, MDB_cursor *rc, gs_wbuf_t *scratch,
              const char *grid, const uint8_t hmac[16], s_pents_t *a)
{
    MDB_val k = { GS_GRID_LEN, (void *) grid }, v;
    int r;
    for (r = mdb_cursor_get(rc, &k, &v, MDB_SET_RANGE); r == 0;
         r = mdb_cursor_get(rc, &k, &v, MDB_NEXT)) {
        if (k.mv_size < GS_GRID_LEN || memcmp(k.mv_data, grid, GS_GRID_LEN) != 0)
            break;
        gs_rec_hdr_t h;
        size_t n;
        if ((r = s_rec_refs(&v, &h, &n)))
            break;
        for (size_t i = 0; i < n && r == 0; i++) {
            gs_ref_t ref;
            int full = gs_rec_ref_get(v.mv_data, &h, i, &ref);
            if (memcmp(ref.hmac, hmac, full ? 16 : GS_PERSON_TAG) != 0)
                continue;
            size_t before = a->n;
            if ((r = s_pent_add(a, &k, &ref, full, i, h.seq)) == 0 && !full &&
                (r = s_pent_resolve(st, txn, scratch, &a->v[before])) == 0 &&
                memcmp(a->v[before].hmac, hmac, 16) != 0)
                a->n = before;  /* another person with the same tag */
        }
        if (r)
            break;
    }
    return r == MDB_NOTFOUND ? 0 : r;
}

int
gs_store_person_refs(gs_store_t *self, const uint8_t hmac[16], gs_dup_fn *fn, void *arg)
{
    if (!hmac || !fn)
        return GS_EINVAL;
    MDB_txn *txn;
    int rc = gs_rtxn_begin(self, &txn);
    if (rc)
        return rc;
    MDB_cursor *cc = NULL, *rcur = NULL;
    s_pents_t a = { NULL, 0, 0 };
    gs_wbuf_t scratch;
    gs_wbuf_init(&scratch);
    /* the cells whose set holds the HMAC's tag; before the upgrade of a
     * format 3 store (a read-only open) every cell */
    int db = self->persons_sets ? GS_DB_PERSONS : GS_DB_CELLS;
    if ((rc = mdb_cursor_open(txn, self->db[db], &cc)) ||
        (rc = mdb_cursor_open(txn, self->db[GS_DB_RECORDS], &rcur))) {
        rc = gs_store_err(rc, "open cursors");
        goto done;
    }
    MDB_val ck, cv;
    for (rc = mdb_cursor_get(cc, &ck, &cv, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cc, &ck, &cv, MDB_NEXT)) {
        if (ck.mv_size != GS_GRID_LEN)
            continue;
        if (self->persons_sets) {
            int has = gs_persons_has(cv.mv_data, cv.mv_size, hmac);
            if (has < 0) {
                rc = MDB_CORRUPTED;
                break;
            }
            if (!has)
                continue;
        }
        char grid[GS_GRID_LEN + 1];
        memcpy(grid, ck.mv_data, GS_GRID_LEN);
        grid[GS_GRID_LEN] = 0;
        if ((rc = s_cell_person(self, txn, rcur, &scratch, grid, hmac, &a)))
            break;
    }
    rc = rc == MDB_NOTFOUND ? 0 : gs_store_err(rc, "look up person");
done:
    if (rcur)
        mdb_cursor_close(rcur);
    if (cc)
        mdb_cursor_close(cc);
    gs_rtxn_end(self, &txn);
    gs_wbuf_deinit(&scratch);
    /* the refs are copies: fn runs outside the transaction */
    if (rc == 0)
        rc = a.n ? s_pent_emit(a.v, a.n, fn, arg) : GS_ENOTFOUND;
    free(a.v);
    return rc;
}

/* The refs of active records in the store: the tags in the person index,
 * or before the upgrade of a format 3 store its entries (one per ref). */
static int
s_refs_count(gs_store_t *self, MDB_txn *txn, uint64_t *n)
{
    MDB_stat ms;
    *n = 0;
    if (!self->persons_sets) {
        int rc = mdb_stat(txn, self->db[GS_DB_PERSONS], &ms);
        *n = ms.ms_entries;
        return rc;
    }
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, self->db[GS_DB_PERSONS], &c);
    if (rc)
        return rc;
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
        *n += v.mv_size / GS_PERSON_TAG;
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int
gs_store_person_dups(gs_store_t *self, const char *prefix, gs_dup_fn *fn, void *arg)
{
    if (!fn)
        return GS_EINVAL;
    if (!prefix)
        prefix = "";
    size_t pl = strlen(prefix);
    if (pl > GS_GRID_LEN)
        return GS_EINVAL;
    MDB_txn *txn;
    int rc = gs_rtxn_begin(self, &txn);
    if (rc)
        return rc;
    uint64_t entries;
    rc = s_refs_count(self, txn, &entries);
    gs_rtxn_end(self, &txn);
    if (rc)
        return gs_store_err(rc, "count person refs");
    size_t per_pass = self->dup_pass ? self->dup_pass : S_DUP_PASS_ENTRIES;
    uint32_t passes = (uint32_t) (1 + entries / per_pass);
    s_pents_t a = { NULL, 0, 0 }, b = { NULL, 0, 0 };
    gs_wbuf_t scratch;
    gs_wbuf_init(&scratch);
    for (uint32_t pass = 0; pass < passes && rc == 0; pass++) {
        /* one pass: the persons whose HMAC falls in this share */
        a.n = b.n = 0;
        if ((rc = gs_rtxn_begin(self, &txn)))
            break;
        MDB_cursor *c;
        if ((rc = mdb_cursor_open(txn, self->db[GS_DB_RECORDS], &c))) {
            gs_rtxn_end(self, &txn);
            rc = gs_store_err(rc, "open records cursor");
            break;
        }
        MDB_val k, v;
        for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            gs_rec_hdr_t h;
            size_t n;
            if ((rc = s_rec_refs(&v, &h, &n)))
                break;
            for (size_t i = 0; i < n && rc == 0; i++) {
                gs_ref_t r;
                int full = gs_rec_ref_get(v.mv_data, &h, i, &r);
                if (passes > 1 && ((uint32_t) r.hmac[0] << 8 | r.hmac[1]) % passes != pass)
                    continue;
                rc = s_pent_add(&a, &k, &r, full, i, h.seq);
            }
            if (rc)
                break;
        }
        mdb_cursor_close(c);
        if (rc == MDB_NOTFOUND)
            rc = 0;
        /* A duplicate is one person living in two places: member or tenant
         * of more than one record; or one USCC held by more than one
         * organisation record (a branch, or the same one collected at two
         * addresses). Landlords of several units, and people working at
         * several organisations, are normal. A person's refs are among
         * those of its tag, so only a tag's run that holds two residents
         * or two organisations can hold a duplicate: those get their
         * HMACs in full (a tag ref's from its record, in this transaction)
         * and are grouped by HMAC. */
        if (rc == 0 && a.n)
            qsort(a.v, a.n, sizeof *a.v, s_pent_tag_cmp);
        for (size_t i = 0, j; i < a.n && rc == 0; i = j) {
            size_t residents = 0, orgs = 0;
            for (j = i; j < a.n && s_pent_tag_cmp(&a.v[j], &a.v[i]) == 0; j++) {
                if (a.v[j].role == GS_ROLE_MEMBER || a.v[j].role == GS_ROLE_TENANT)
                    residents++;
                if (a.v[j].role == GS_ROLE_ORG)
                    orgs++;
            }
            if (residents < 2 && orgs < 2)
                continue;
            for (size_t x = i; x < j && rc == 0; x++) {
                rc = s_pent_resolve(self, txn, &scratch, &a.v[x]);
                if (rc == 0)
                    rc = s_pent_push(&b, &a.v[x]);
            }
        }
        gs_rtxn_end(self, &txn);
        rc = gs_store_err(rc, "scan person refs");
        if (rc)
            break;
        if (b.n)
            qsort(b.v, b.n, sizeof *b.v, s_pent_cmp);
        for (size_t i = 0, j; i < b.n && rc == 0; i = j) {
            size_t residents = 0, orgs = 0;
            int touches = pl == 0;
            for (j = i; j < b.n && memcmp(b.v[j].hmac, b.v[i].hmac, 16) == 0; j++) {
                if (b.v[j].role == GS_ROLE_MEMBER || b.v[j].role == GS_ROLE_TENANT)
                    residents++;
                if (b.v[j].role == GS_ROLE_ORG)
                    orgs++;
                if (!touches && gs_grid_prefix_covers(prefix, b.v[j].grid))
                    touches = 1;
            }
            if ((residents >= 2 || orgs >= 2) && touches)
                rc = s_pent_emit(&b.v[i], j - i, fn, arg);
        }
    }
    gs_wbuf_deinit(&scratch);
    free(a.v);
    free(b.v);
    return rc;
}

/*
 * gs_store_apply: the write path. A group of uploads is applied in one LMDB
 * write transaction (gs_store_txn.h, redone from the start after map
 * growth): for each upload the idempotency lookup (gs_store_idem.h); for
 * each record its prepared view (gs_store_prepare, or made here), the facts
 * the dedup classifier asks for (gs_store_dedup.h: the registry, the id or
 * alias (gs_store_ids.h) or natural key, the content packed under the
 * canonical id, the owner of a new natural key), and the writes it decides:
 * the record, its indexes, its change events and cell counts
 * (gs_store_log.h); then one durable commit.
 *
 * Where it sits: called by the broker's writer thread (group commit); the
 * acks and events it returns are sent and published only after the commit.
 * gs_store_prepare runs on any thread before it.
 *
 * Cost model: per record a few point reads (ids, natkeys, the current
 * record) and the puts; per batch one read and one write of each touched
 * cell and hierarchy prefix (cached by the change log during the
 * transaction). Values are packed straight into LMDB pages with
 * MDB_RESERVE where that saves a copy.
 */
#include "gs_grid.h"
#include "gs_incident.h"
#include "gs_store_int.h"
#include "gs_store_dedup.h"
#include "gs_store_idem.h"
#include "gs_store_ids.h"
#include "gs_store_incident.h"
#include "gs_store_log.h"
#include "gs_store_record.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define S_REJECTED GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_REJECTED
#define S_ACTIVE GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_ACTIVE
#define S_VOID GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_VOID
#define S_ROLE(name) GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_##name

/* One upload's answer, located in the output buffer. */
typedef struct s_uprec {
    size_t off;                     /* packed Ack in self->out */
    size_t len;                     /* its length */
    int replayed;                   /* answered from the idempotency table */
    uint32_t counts[GS_IDEM_COUNTS]; /* results by ResultStatus */
} s_uprec_t;

/* The stored state of a record the upload refers to (gs_store_record.h). */
typedef gs_rec_cur_t s_cur_t;

/* A record as stored: packed under its canonical id, and its content hash. */
typedef struct s_bytes {
    const uint8_t *r;               /* packed Record; valid for this record's apply */
    size_t rl;                      /* its length */
    uint8_t hash[16];               /* gs_content_hash_packed of it */
} s_bytes_t;

/* State of one apply attempt (redone from scratch after map growth). */
typedef struct s_apply {
    gs_store_t *st;                 /* the store */
    gs_txn_t *t;                    /* the write transaction (sticky error) */
    int64_t now_ms;                 /* broker clock */
    gs_log_t log;                   /* the change log, chain and cells in this attempt */
    gs_idem_t idem;                 /* the idempotency table in this attempt */
    int registry;                   /* grid registry non-empty */
    char reg_grid[GS_GRID_LEN + 1]; /* last grid checked against the registry */
    gs_verdict_t reg_verdict;       /* and its verdict */
    const gs_upload_t *scope_up;    /* upload of the last scope answer (s_in_scope) */
    char scope_grid[GS_GRID_LEN + 1]; /* its grid */
    int scope_ok;                   /* and the answer */
    s_uprec_t *ups;                 /* one per upload */
    const gs_upload_t *up;          /* upload being applied */
    gs_principal_t who;             /* and who sent it */
    gs_upload_t *batch;             /* the uploads of this apply */
    const gs_principal_t *whos;     /* who sent each, NULL = DEVICEs */
    uint32_t steps[GS_INCIDENT_STATUSES]; /* incident steps stored in this attempt */
    int table_loaded;               /* incident_table read in this attempt */
    gs_incident_table_t incident_table; /* the store's category table, read at the
                                     * attempt's first incident */
    size_t n_batch;                 /* how many */
} s_apply_t;

/* ---- Reading the current state of a record -------------------------------------- */

int
gs_record_lookup(gs_txn_t *t, gs_arena_t *arena, char kb, const char *id, gs_rec_cur_t *cur)
{
    memset(cur, 0, sizeof *cur);
    if (t->err)
        return t->err;
    int rc = gs_ids_resolve_in(t, kb, id, cur->grid, cur->canon);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return gs_txn_fail(t, rc, "resolve id");
    MDB_val k;
    uint8_t rk[GS_RK_MAX];
    k.mv_data = rk;
    k.mv_size = gs_key_record(rk, cur->grid, kb, cur->canon, strlen(cur->canon));
    rc = gs_txn_get(t, GS_DB_RECORDS, &k, &cur->val);
    if (rc)
        return rc == GS_ENOTFOUND ? gs_txn_fail(t, MDB_CORRUPTED, "record of an id") : rc;
    if (gs_rec_hdr_get(&cur->val, &cur->hdr))
        return gs_txn_fail(t, MDB_CORRUPTED, "record header");
    if (cur->hdr.n_refs) {
        size_t bytes = (size_t) cur->hdr.n_refs * sizeof(gs_ref_t);
        cur->refs = gs_arena_alloc(arena, bytes);
        if (!cur->refs)
            return gs_txn_fail(t, ENOMEM, "person refs");
        for (size_t i = 0; i < cur->hdr.n_refs; i++)
            gs_rec_ref_get(cur->val.mv_data, &cur->hdr, i, &cur->refs[i]);
    }
    cur->found = 1;
    return 0;
}

/* Resolve kind|id to the stored record (gs_record_lookup in this attempt). */
static int
s_lookup(s_apply_t *a, char kb, const char *id, s_cur_t *cur)
{
    return gs_record_lookup(a->t, a->st->arena, kb, id, cur);
}

/* Natural key of the stored version (rare: only when the key changes). */
static int
s_old_natkey(s_apply_t *a, const s_cur_t *cur, uint8_t *nk, size_t *nkl)
{
    const uint8_t *data;
    size_t len;
    int rc = gs_rec_data(a->st, a->t->txn, &cur->hdr, &a->st->stored, &data, &len);
    if (rc)
        return gs_txn_fail(a->t, rc, "stored record");
    Gridsync__V1__Record *old =
        gridsync__v1__record__unpack(gs_arena_allocator(a->st->arena), len, data);
    if (!old)
        return gs_txn_fail(a->t, MDB_CORRUPTED, "stored record");
    *nkl = gs_natkey(old, nk);
    return 0;
}

/* ---- Writing -------------------------------------------------------------------- */

int
gs_record_write(gs_log_t *log, const gs_rec_write_t *w, const gs_rec_cur_t *cur,
                uint64_t *seq_out)
{
    const gs_prepared_t *pp = w->pp;
    gs_txn_t *t = log->t;
    if (cur && !cur->found)
        cur = NULL;
    int removing = w->op == GRIDSYNC__V1__OPERATION__OPERATION_MOVE_OUT;
    assert(pp->ready && w->canon && w->record && w->hash && (!removing || cur));
    int rc;
    const gs_ref_t *refs = pp->refs;
    size_t nrefs = pp->n_refs;
    if (nrefs > UINT16_MAX)
        nrefs = UINT16_MAX;
    uint32_t people = pp->people;
    char kb = pp->kb;
    const char *grid = pp->grid;
    const char *canon = w->canon;
    int status = pp->status;
    uint8_t flags = pp->natkey_len ? GS_RF_NATKEY : 0;
    /* refs as tags, which older builds cannot read, only in a store of
     * this format (as the log's LZ4 bodies) */
    if (t->st->format_current)
        flags |= GS_RF_TAGS;

    /* an upload moves a record whose grid changed in one call; a replica
     * gets the move as two events and removes, then installs */
    int moving = !w->op && cur && strcmp(cur->grid, grid) != 0;
    assert(!w->op || removing || !cur || strcmp(cur->grid, grid) == 0);
    uint64_t version = w->version;
    uint64_t seq = 0;
    gs_log_event_t ev = { 0, grid, NULL, pp->kind, canon, version, w->origin_device,
                          w->record, w->record_len, cur ? cur->hdr.seq : w->back,
                          w->origin, w->origin_epoch, w->origin_seq };
    if (moving || removing) {
        /* MOVE_OUT in the old cell, MOVE_IN in the new one: one version */
        ev.op = GRIDSYNC__V1__OPERATION__OPERATION_MOVE_OUT;
        ev.grid = cur->grid;
        if ((rc = gs_log_emit(log, &ev, &seq)))
            return rc;
        ev.grid = grid;
        ev.prev_grid = cur->grid;
        ev.back = seq;
    }
    if (!removing) {
        ev.op = w->op ? w->op
                : moving ? GRIDSYNC__V1__OPERATION__OPERATION_MOVE_IN
                : status == S_VOID ? GRIDSYNC__V1__OPERATION__OPERATION_VOID
                                   : GRIDSYNC__V1__OPERATION__OPERATION_UPSERT;
        if (w->op == GRIDSYNC__V1__OPERATION__OPERATION_MOVE_IN)
            ev.prev_grid = w->prev_grid;
        if ((rc = gs_log_emit(log, &ev, &seq)))
            return rc;
    }

    /* records */
    size_t cl = strlen(canon);
    uint8_t rk[GS_RK_MAX];
    MDB_val k = { 0, rk }, v;
    if (moving || removing) {
        k.mv_size = gs_key_record(rk, cur->grid, kb, canon, cl);
        if ((rc = gs_txn_del(t, GS_DB_RECORDS, &k)))
            return rc == GS_ENOTFOUND ? gs_txn_fail(t, MDB_CORRUPTED, "moved record") : rc;
    }
    if (!removing) {
        gs_rec_hdr_t h = { version, seq, log->now_ms, { 0 }, (uint8_t) status,
                           (uint8_t) kb,
                           (uint16_t) (people > UINT16_MAX ? UINT16_MAX : people),
                           (uint16_t) nrefs, flags };
        memcpy(h.hash, w->hash, 16);
        k.mv_size = gs_key_record(rk, grid, kb, canon, cl);
        v.mv_size = gs_rec_data_off(&h);
        v.mv_data = NULL;
        if ((rc = gs_txn_put(t, GS_DB_RECORDS, &k, &v, MDB_RESERVE)))
            return rc;
        uint8_t *d = v.mv_data;
        gs_rec_hdr_put(d, &h);
        gs_rec_refs_put(d, flags, refs, nrefs);
        gs_txn_trace(t, GS_DB_RECORDS, &k, &v, 0);
    }
    /* digests: this version's entry replaces the stored one's (two cells
     * for a move, none left for a removal) */
    gs_digest_rec_t dold = { cur ? cur->grid : NULL, cur ? cur->hdr.version : 0,
                             cur ? cur->hdr.status : 0, cur ? cur->hdr.hash : NULL, NULL },
                    dnew = { grid, version, status, w->hash, w->digest_entry };
    if ((rc = gs_digest_change(&log->digest, kb, canon, cur ? &dold : NULL,
                               removing ? NULL : &dnew)))
        return rc;

    /* ids: the canonical entry carries the current grid */
    uint8_t ik[GS_IK_MAX], iv[GS_IV_MAX];
    MDB_val key = { gs_key_id(ik, kb, canon, cl), ik },
            val = { gs_val_id(iv, grid, NULL, 0), iv };
    if (removing) {
        if ((rc = gs_txn_del(t, GS_DB_IDS, &key)) && rc != GS_ENOTFOUND)
            return rc;
    } else if (!cur || moving) {
        if ((rc = gs_txn_put(t, GS_DB_IDS, &key, &val, 0)))
            return rc;
    }

    /* persons: only active records are indexed */
    int old_active = cur && cur->hdr.status == S_ACTIVE;
    int new_active = !removing && status == S_ACTIVE;
    int same_refs = old_active && new_active && !moving && cur->hdr.n_refs == nrefs;
    /* the index keeps tags, and a stored ref may be only its tag */
    for (size_t i = 0; same_refs && i < nrefs; i++)
        if (gs_persons_tag(cur->refs[i].hmac) != gs_persons_tag(refs[i].hmac))
            same_refs = 0;
    if (!same_refs) {
        if (old_active)
            for (size_t i = 0; i < cur->hdr.n_refs; i++)
                if ((rc = gs_persons_change(&log->persons, cur->grid, cur->refs[i].hmac, -1)))
                    return rc;
        if (new_active)
            for (size_t i = 0; i < nrefs; i++)
                if ((rc = gs_persons_change(&log->persons, grid, refs[i].hmac, +1)))
                    return rc;
    }

    /* cells */
    if (cur && (rc = gs_log_cell_count(log, cur->grid, kb, cur->hdr.status,
                                       cur->hdr.n_people, -1)))
        return rc;
    if (!removing && (rc = gs_log_cell_count(log, grid, kb, status, people, +1)))
        return rc;
    *seq_out = seq;
    return 0;
}

/* Store a new version of an uploaded record (new, update, void, move) with
 * its events and index changes (gs_record_write). The natural key is
 * handled by the caller. */
static int
s_write(s_apply_t *a, const gs_prepared_t *pp, const char *canon, const s_bytes_t *as,
        const s_cur_t *cur, Gridsync__V1__RecordResult *res)
{
    assert(pp->ready && canon && as->r && (!cur || cur->found));
    gs_rec_write_t w = { .pp = pp, .canon = canon, .record = as->r, .record_len = as->rl,
                         .hash = as->hash, .version = cur ? cur->hdr.version + 1 : 1,
                         .origin_device = a->up->device_id };
    uint64_t seq = 0;
    int rc = gs_record_write(&a->log, &w, cur, &seq);
    if (rc)
        return rc;
    res->version = w.version;
    res->seq = seq;
    return 0;
}

/* ---- One record ------------------------------------------------------------------ */

static void
s_result(s_apply_t *a, Gridsync__V1__RecordResult *res, int status, int reason,
         const char *msg, const char *key)
{
    assert((status == S_REJECTED) == (reason != 0));  /* a verdict, never an error code */
    res->status = (Gridsync__V1__ResultStatus) status;
    res->reason = (Gridsync__V1__Reason) reason;
    if (msg && *msg) {
        char *m = gs_arena_strdup(a->st->arena, msg);
        if (m)
            res->message = m;
    }
    if (key && *key) {
        char *k = gs_arena_strdup(a->st->arena, key);
        if (k)
            res->record_key = k;
    }
}

/* Deny by default: only an explicit scope_all writes everywhere; an empty
 * (or missing) prefix list allows nothing. The answer for the last grid
 * asked about in this upload is kept: an upload's records mostly share a
 * few cells, and the prefix list lives in memory another thread wrote. */
static int
s_in_scope(s_apply_t *a, const char *grid)
{
    const gs_upload_t *up = a->up;
    if (up->scope_all)
        return 1;
    if (a->scope_up == up && strcmp(a->scope_grid, grid) == 0)
        return a->scope_ok;
    int ok = up->prefixes && up->n_prefixes &&
             gs_grid_prefix_find(grid, up->prefixes, up->n_prefixes) >= 0;
    assert(strlen(grid) == GS_GRID_LEN);    /* a stored or checked grid code */
    a->scope_up = up;
    memcpy(a->scope_grid, grid, GS_GRID_LEN + 1);
    a->scope_ok = ok;
    return ok;
}

/* May the grid take records (registry empty, or listed and valid today)?
 * The verdict goes to *v (reason 0 = yes). Returns 0, or the sticky
 * storage error (GS_ECORRUPT for an entry that does not unpack) that
 * aborts the batch: an error is never a verdict. */
static int
s_registry_check(s_apply_t *a, const char *grid, gs_verdict_t *v)
{
    gs_verdict_clear(v);
    if (!a->registry)
        return 0;
    if (strcmp(a->reg_grid, grid) == 0) {
        *v = a->reg_verdict;
        return 0;
    }
    MDB_val k = { GS_GRID_LEN, (void *) grid }, val;
    int rc = gs_txn_get(a->t, GS_DB_GRIDS, &k, &val);
    if (rc == GS_ENOTFOUND) {
        gs_verdict_set(v, GRIDSYNC__V1__REASON__REASON_GRID_UNKNOWN,
                       "grid %s is not in the grid registry", grid);
    } else if (rc == 0) {
        Gridsync__V1__Grid *g = gridsync__v1__grid__unpack(
            gs_arena_allocator(a->st->arena), val.mv_size, val.mv_data);
        if (!g)     /* a damaged entry says nothing about the grid */
            return gs_txn_fail(a->t, MDB_CORRUPTED, "grid registry entry");
        /* dates were checked when the entry was written (s_grid_valid):
         * a bad one now is a damaged entry */
        switch (gs_grid_valid_on(g, gs_date_today(a->now_ms))) {
        case GS_GRID_BAD_DATE:
            return gs_txn_fail(a->t, MDB_CORRUPTED, "grid registry dates");
        case GS_GRID_NOT_YET:
            gs_verdict_set(v, GRIDSYNC__V1__REASON__REASON_GRID_UNKNOWN,
                           "grid %s is valid only from %s", grid, g->valid_from);
            break;
        case GS_GRID_RETIRED:
            gs_verdict_set(v, GRIDSYNC__V1__REASON__REASON_GRID_UNKNOWN,
                           "grid %s was retired on %s", grid, g->valid_to);
            break;
        default:
            break;
        }
    } else {
        return rc;
    }
    memcpy(a->reg_grid, grid, GS_GRID_LEN + 1);
    a->reg_verdict = *v;
    return 0;
}

/* ---- Preparing (outside the transaction) ------------------------------------------- */

static void *
s_palloc(ProtobufCAllocator *alloc, size_t n)
{
    return alloc->alloc(alloc->allocator_data, n ? n : 1);
}

/* The record's facts into p (after gs_record_check passed): kind, grid,
 * id, meta and what follows from them, read once from proto/. A valid
 * record still needs a kind, a 15-digit grid and an id to be stored
 * (gs_record_check asks for them, but the store does not rely on it):
 * without them the verdict becomes REQUIRED. */
static void
s_view(const Gridsync__V1__Record *rec, gs_prepared_t *p)
{
    p->rec = rec;
    p->kind = gs_record_kind(rec);
    p->kb = gs_kind_byte(p->kind);
    p->grid = gs_record_grid(rec);
    p->id = gs_record_id(rec);
    if (!p->kb || !p->grid || strlen(p->grid) != GS_GRID_LEN || !p->id || !*p->id ||
        strlen(p->id) > GS_ID_MAX) {
        gs_verdict_set(&p->verdict, GRIDSYNC__V1__REASON__REASON_REQUIRED,
                       "record needs a kind, a 15-digit grid code and an id");
        return;
    }
    p->meta = gs_record_meta(rec);
    p->base = p->meta ? p->meta->base_version : 0;
    p->status = p->meta ? (int) p->meta->status : S_ACTIVE;
    p->people = gs_record_people(rec);
}

/* Natural key and person refs of one record (HMACs with this store's key):
 * the one way they are computed for storing, whether the record was
 * uploaded or came from another store. */
static int
s_derive(gs_store_t *self, ProtobufCAllocator *alloc, gs_prepared_t *p)
{
    const Gridsync__V1__Record *rec = p->rec;
    uint8_t nk[GS_NATKEY_MAX + 2];
    size_t nkl = gs_natkey(rec, nk);
    uint8_t *nkc = NULL;
    if (nkl && !(nkc = s_palloc(alloc, nkl)))
        return GS_ENOMEM;
    if (nkl)
        memcpy(nkc, nk, nkl);
    size_t maxrefs = gs_record_people_max(rec);
    gs_ref_t *refs = NULL;
    size_t nrefs = 0;
    if (maxrefs) {
        if (!(refs = s_palloc(alloc, maxrefs * sizeof *refs)))
            return GS_ENOMEM;
        int rc = gs_record_refs(self, rec, refs, maxrefs, &nrefs);
        if (rc)
            return rc;
    }
    p->natkey = nkc;
    p->natkey_len = nkl;
    p->refs = refs;
    p->n_refs = nrefs;
    return 0;
}

/* Pack, hash, natural key and person refs of one valid record. wire (may
 * be NULL) holds the wire_len bytes the record was unpacked from, when
 * normalisation changed nothing in it: if they are in the one form pack
 * writes (gs_wire_is_canonical), packing again would give them byte for
 * byte, so they are the packed form (borrowed: the caller keeps them).
 * canonical 1: the caller found them so already. */
static int
s_prepare_bytes(gs_store_t *self, ProtobufCAllocator *alloc, gs_prepared_t *p,
                const uint8_t *wire, size_t wire_len, int canonical)
{
    const Gridsync__V1__Record *rec = p->rec;
    assert(rec && !p->verdict.reason);
    size_t n;
    const uint8_t *buf;
    if (wire &&
        (canonical || gs_wire_is_canonical(&gridsync__v1__record__descriptor, wire, wire_len))) {
        n = wire_len;
        buf = wire;
    } else {
        n = protobuf_c_message_get_packed_size(&rec->base);
        uint8_t *packed = s_palloc(alloc, n);
        if (!packed)
            return GS_ENOMEM;
        protobuf_c_message_pack(&rec->base, packed);
        buf = packed;
    }
    if (gs_content_hash_packed(buf, n, p->hash))
        return 0;   /* cannot happen for protobuf-c's output; the apply will say so */
    int rc = s_derive(self, alloc, p);
    if (rc)
        return rc;
    p->packed = buf;
    p->packed_len = n;
    p->ready = 1;
    return 0;
}

static int
s_prepare_one(gs_store_t *self, ProtobufCAllocator *alloc, gs_prepared_t *p,
              const uint8_t *wire, size_t wire_len)
{
    return s_prepare_bytes(self, alloc, p, wire, wire_len, 0);
}

int
gs_prepare_packed(gs_store_t *self, ProtobufCAllocator *alloc, const uint8_t *data,
                  size_t len, const Gridsync__V1__Record *rec, gs_prepared_t *p)
{
    memset(p, 0, sizeof *p);
    if (!rec)
        rec = gridsync__v1__record__unpack(alloc, len, data);
    if (!rec || gs_content_hash_packed(data, len, p->hash)) {
        gs_verdict_set(&p->verdict, GRIDSYNC__V1__REASON__REASON_MALFORMED,
                       "record does not decode");
        return 0;
    }
    s_view(rec, p);
    if (p->verdict.reason)
        return 0;
    int rc = s_derive(self, alloc, p);
    if (rc)
        return rc;
    p->packed = data;
    p->packed_len = len;
    p->ready = 1;
    return 0;
}

int
gs_store_prepare(gs_store_t *self, Gridsync__V1__Record **records, size_t n,
                 ProtobufCAllocator *alloc, int64_t now_ms, gs_prepared_t **out)
{
    return gs_store_prepare_wire(self, records, NULL, NULL, n, alloc, now_ms, out);
}

/* gs_store_prepare_wire; canonical 1: each wire[i] given is canonical
 * (gs_store_prepare_canonical). */
static int
s_prepare(gs_store_t *self, Gridsync__V1__Record **records, const uint8_t *const *wire,
          const size_t *wire_len, size_t n, ProtobufCAllocator *alloc, int64_t now_ms,
          gs_prepared_t **out, int canonical)
{
    *out = NULL;
    if (!self || !alloc || (n && !records))
        return GS_EINVAL;
    gs_prepared_t *p = s_palloc(alloc, n * sizeof *p);
    if (!p)
        return GS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        memset(&p[i], 0, sizeof p[i]);
        Gridsync__V1__Record *rec = records[i];
        if (!rec) {
            gs_verdict_set(&p[i].verdict, GRIDSYNC__V1__REASON__REASON_REQUIRED, "empty record");
            continue;
        }
        size_t changed = 0;
        /* canonical bytes hold no unknown field: nothing to strip */
        int known = canonical && wire && wire[i];
        int bad = known ? gs_record_check_known(rec, alloc, &self->limits, now_ms,
                                                &p[i].verdict, &changed)
                        : gs_record_check_changed(rec, alloc, &self->limits, now_ms,
                                                  &p[i].verdict, &changed);
        p[i].id = gs_record_id(rec);    /* the key of a rejection */
        if (bad)
            continue;
        s_view(rec, &p[i]);
        if (p[i].verdict.reason)
            continue;
        int keep = wire && wire[i] && !changed;
        int rc = s_prepare_bytes(self, alloc, &p[i], keep ? wire[i] : NULL,
                                 keep ? wire_len[i] : 0, canonical);
        if (rc)
            return rc;
    }
    *out = p;
    return 0;
}

int
gs_store_prepare_wire(gs_store_t *self, Gridsync__V1__Record **records,
                      const uint8_t *const *wire, const size_t *wire_len, size_t n,
                      ProtobufCAllocator *alloc, int64_t now_ms, gs_prepared_t **out)
{
    return s_prepare(self, records, wire, wire_len, n, alloc, now_ms, out, 0);
}

int
gs_store_prepare_canonical(gs_store_t *self, Gridsync__V1__Record **records,
                           const uint8_t *const *wire, const size_t *wire_len, size_t n,
                           ProtobufCAllocator *alloc, int64_t now_ms, gs_prepared_t **out)
{
    return s_prepare(self, records, wire, wire_len, n, alloc, now_ms, out, 1);
}

/* The record as stored under canon, and its hash: as prepared when canon
 * is the id it came with (the usual case), else packed again into
 * st->pack from a shallow copy that carries canon (a record that arrives
 * under an alias or merges into another is stored under the canonical
 * id). The caller's record is not touched. Natural key and person refs do
 * not depend on the id, so they stay as prepared. */
static int
s_pack_hash(s_apply_t *a, const gs_prepared_t *pp, const char *canon, s_bytes_t *as)
{
    assert(pp->ready);
    gs_store_t *st = a->st;
    if (strcmp(pp->id, canon) == 0) {
        as->r = pp->packed;
        as->rl = pp->packed_len;
        memcpy(as->hash, pp->hash, 16);
        return 0;
    }
    Gridsync__V1__Record copy = *pp->rec;
    Gridsync__V1__Household hh;
    Gridsync__V1__RentalHousing rh;
    Gridsync__V1__OrganisationUnit oh;
    Gridsync__V1__Incident ih;
    if (pp->kind == GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD) {
        hh = *copy.household;
        hh.household_id = (char *) canon;
        copy.household = &hh;
    } else if (pp->kind == GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_ORGANISATION) {
        oh = *copy.organisation;
        oh.org_id = (char *) canon;
        copy.organisation = &oh;
    } else if (pp->kind == GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT) {
        ih = *copy.incident;
        ih.incident_id = (char *) canon;
        copy.incident = &ih;
    } else {
        assert(pp->kind == GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_RENTAL);
        rh = *copy.rental;
        rh.house_id = (char *) canon;
        copy.rental = &rh;
    }
    if (gs_record_pack(&copy, &st->pack, &st->pack.len))
        return gs_txn_fail(a->t, ENOMEM, "pack record");
    as->r = st->pack.data;
    as->rl = st->pack.len;
    if (gs_content_hash_packed(st->pack.data, st->pack.len, as->hash))
        return gs_txn_fail(a->t, GS_EINTERNAL, "hash of a packed record");
    return 0;
}

/* The stored record an upload meets: the one its id (or an alias of it)
 * names, else the one holding its natural key (*merged = 1). cur->found = 0
 * when there is none. Returns 0 or the sticky error. */
static int
s_find_record(s_apply_t *a, char kb, const char *id, const uint8_t *nk, size_t nkl,
              s_cur_t *cur, int *merged)
{
    *merged = 0;
    int rc = s_lookup(a, kb, id, cur);
    if (rc || cur->found || !nkl)
        return rc;
    MDB_val nkk = { nkl, (void *) nk }, nkv;
    rc = gs_txn_get(a->t, GS_DB_NATKEYS, &nkk, &nkv);
    if (rc == GS_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    /* same place under another id: that record absorbs this one */
    char other[GS_ID_MAX + 1];
    if (gs_val_natkey_parse(nkv.mv_data, nkv.mv_size, NULL, other))
        return gs_txn_fail(a->t, MDB_CORRUPTED, "natkeys entry");
    if ((rc = s_lookup(a, kb, other, cur)))
        return rc;
    if (!cur->found)
        return gs_txn_fail(a->t, MDB_CORRUPTED, "natkeys entry");
    *merged = 1;
    return 0;
}

/* Who holds natural key nk: *owner set to another record's canonical id
 * (in buf), or NULL when the key is free (*is_free = 1) or is canon's.
 * Returns 0 or the sticky error. */
static int
s_natkey_owner(s_apply_t *a, const uint8_t *nk, size_t nkl, const char *canon,
               char buf[GS_ID_MAX + 1], const char **owner, int *is_free)
{
    *owner = NULL;
    *is_free = 0;
    MDB_val nkk = { nkl, (void *) nk }, nkv;
    int rc = gs_txn_get(a->t, GS_DB_NATKEYS, &nkk, &nkv);
    if (rc == GS_ENOTFOUND) {
        *is_free = 1;
        return 0;
    }
    if (rc)
        return rc;
    if (!gs_val_natkey_is(nkv.mv_data, nkv.mv_size, canon)) {
        if (gs_val_natkey_parse(nkv.mv_data, nkv.mv_size, NULL, buf))
            snprintf(buf, GS_ID_MAX + 1, "(damaged natkeys entry)");
        *owner = buf;
    }
    return 0;
}

/* Take the record's natural key for canon. */
static int
s_natkey_put(s_apply_t *a, const gs_prepared_t *pp, const char *canon)
{
    uint8_t nv[GS_IK_MAX];
    MDB_val nkk = { pp->natkey_len, (void *) pp->natkey },
            val = { gs_key_id(nv, pp->kb, canon, strlen(canon)), nv };
    return gs_txn_put(a->t, GS_DB_NATKEYS, &nkk, &val, 0);
}

/* Store a new version of a stored record (GS_DEDUP_UPDATE): the record,
 * its events and indexes, and the natural-key changes (the old key
 * released when it changed, the new one taken when it was free). A merge
 * (alias) keeps the natural key it was found by. */
static int
s_update(s_apply_t *a, const gs_prepared_t *pp, const s_cur_t *cur, const s_bytes_t *as,
         int natkey_free, int alias, Gridsync__V1__RecordResult *res)
{
    assert(cur->found && !(alias && natkey_free));  /* a merge never takes a key */
    int rc;
    /* natural key changes (address corrected, room record moved): the new
     * key must be free (the classifier made sure), and the old one is released */
    uint8_t onk[GS_NATKEY_MAX + 2];
    size_t onkl = 0;
    int nk_put = 0, nk_del = 0;
    if (!alias) {
        int old_has = (cur->hdr.flags & GS_RF_NATKEY) != 0;
        if (pp->natkey_len) {
            nk_put = natkey_free;
            nk_del = natkey_free && old_has;
        } else {
            nk_del = old_has;
        }
        if (nk_del && (rc = s_old_natkey(a, cur, onk, &onkl)))
            return rc;
    }
    if ((rc = s_write(a, pp, cur->canon, as, cur, res)))
        return rc;
    if (nk_del && onkl) {
        MDB_val ok = { onkl, onk }, nkv;
        rc = gs_txn_get(a->t, GS_DB_NATKEYS, &ok, &nkv);
        if (rc == 0 && gs_val_natkey_is(nkv.mv_data, nkv.mv_size, cur->canon))
            rc = gs_txn_del(a->t, GS_DB_NATKEYS, &ok);
        if (rc && rc != GS_ENOTFOUND)
            return rc;
    }
    if (nk_put)
        return s_natkey_put(a, pp, cur->canon);
    return 0;
}

/* The upload's id as an alias of the record it merged into. */
static int
s_alias(s_apply_t *a, char kb, const char *id, const char *grid, const char *canon)
{
    assert(strcmp(id, canon) != 0);     /* an alias never names itself */
    uint8_t ik[GS_IK_MAX], iv[GS_IV_MAX];
    MDB_val key = { gs_key_id(ik, kb, id, strlen(id)), ik },
            val = { gs_val_id(iv, grid, canon, strlen(canon)), iv };
    return gs_txn_put(a->t, GS_DB_IDS, &key, &val, 0);
}

/* One record: gather the facts the classifier (gs_store_dedup.h) asks for,
 * one lookup at a time, then carry out its decision. Everything known
 * about the record itself comes from its prepared view. */
static int
s_record(s_apply_t *a, size_t index, Gridsync__V1__Record *rec,
         Gridsync__V1__RecordResult *res)
{
    gs_store_t *st = a->st;
    const gs_upload_t *up = a->up;
    gs_prepared_t local;
    const gs_prepared_t *pp;
    if (up->prepared) {
        pp = &up->prepared[index];  /* checked (and normalised) off the writer thread */
    } else {
        /* not prepared by the caller: the same view, made here */
        memset(&local, 0, sizeof local);
        if (!rec) {
            gs_verdict_set(&local.verdict, GRIDSYNC__V1__REASON__REASON_REQUIRED,
                           "empty record");
        } else {
            int bad = gs_record_check(rec, up->alloc, &st->limits, a->now_ms, &local.verdict);
            local.id = gs_record_id(rec);
            if (!bad)
                s_view(rec, &local);
        }
        pp = &local;
    }
    /* a centre or a department works on incidents, and on nothing else */
    if (!pp->verdict.reason && pp->kind != GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT &&
        (a->who.role == S_ROLE(CENTRE) || a->who.role == S_ROLE(DEPARTMENT))) {
        s_result(a, res, S_REJECTED, GRIDSYNC__V1__REASON__REASON_ROLE,
                 a->who.role == S_ROLE(CENTRE) ? "a CENTRE uploads incidents only"
                                               : "a DEPARTMENT uploads incidents only",
                 pp->id);
        return 0;
    }
    gs_dedup_facts_t f;
    memset(&f, 0, sizeof f);
    f.verdict = &pp->verdict;
    f.id = pp->id;
    if (!pp->verdict.reason) {
        f.grid = pp->grid;
        f.scope_ok = s_in_scope(a, pp->grid);
        f.base = pp->base;
    }

    gs_verdict_t gv;
    s_cur_t cur;
    memset(&cur, 0, sizeof cur);
    s_bytes_t as;
    char owner[GS_ID_MAX + 1];
    int natkey_free = 0;
    gs_dedup_t d;
    int rc = 0;
    for (;;) {
        gs_dedup_classify(&f, &d);
        if (d.action != GS_DEDUP_NEED)
            break;
        switch (d.need) {
        case GS_DF_REGISTRY:
            rc = s_registry_check(a, pp->grid, &gv);
            f.grid_reason = gv.reason;
            f.grid_message = gv.message;
            break;
        case GS_DF_RECORD:
            if (!pp->ready) {
                /* pack, hash, natural key and refs: the one way these
                 * values are made (into this attempt's arena) */
                if (pp != &local)
                    local = *pp;
                if (s_prepare_one(st, gs_arena_allocator(st->arena), &local, NULL, 0))
                    return gs_txn_fail(a->t, ENOMEM, "prepare record");
                if (!local.ready)   /* packed bytes that do not parse: cannot happen */
                    return gs_txn_fail(a->t, GS_EINTERNAL, "prepare record");
                pp = &local;
                f.verdict = &pp->verdict;
            }
            f.has_natkey = pp->natkey_len > 0;
            rc = s_find_record(a, pp->kb, pp->id, pp->natkey, pp->natkey_len, &cur,
                               &f.merged);
            f.found = cur.found;
            f.canon = cur.canon;
            f.stored_grid = cur.grid;
            f.version = cur.hdr.version;
            f.old_scope_ok = cur.found && s_in_scope(a, cur.grid);
            break;
        case GS_DF_CONTENT:
            rc = s_pack_hash(a, pp, cur.canon, &as);
            f.same = rc == 0 && memcmp(as.hash, cur.hdr.hash, 16) == 0 &&
                     pp->status == cur.hdr.status;
            break;
        case GS_DF_NATKEY_OWNER:
            rc = s_natkey_owner(a, pp->natkey, pp->natkey_len, cur.canon, owner,
                                &f.natkey_owner, &natkey_free);
            break;
        default:
            assert(!"the classifier asked for an unknown fact");
            return gs_txn_fail(a->t, GS_EINTERNAL, "classify record");
        }
        if (rc)
            return rc;
        f.have |= d.need;
    }

    assert(d.action != GS_DEDUP_NEED);
    assert(!d.alias || (f.merged && cur.found));
    /* an incident changes only by a step of its workflow, which the store
     * checks and records: it packs the stored form itself */
    int incident = pp->kind == GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT &&
                   (d.action == GS_DEDUP_NEW || d.action == GS_DEDUP_UPDATE);
    if (incident) {
        assert(!d.alias);   /* incidents have no natural key, so never merge */
        gs_verdict_t iv;
        int upd = d.action == GS_DEDUP_UPDATE;
        if (!a->table_loaded &&
            (rc = gs_incident_table_load(a->t, &a->incident_table, NULL)))
            return rc;
        a->table_loaded = 1;
        if ((rc = gs_incident_step_pack(a->t, &a->incident_table, &a->who, a->up->device_id,
                                        a->now_ms, pp, upd ? &cur : NULL,
                                        upd ? cur.canon : pp->id, &as.r, &as.rl, as.hash,
                                        &iv)))
            return rc;
        if (iv.reason) {
            res->version = upd ? cur.hdr.version : 0;
            s_result(a, res, S_REJECTED, iv.reason, iv.message, upd ? cur.canon : pp->id);
            return 0;
        }
    }
    switch (d.action) {
    case GS_DEDUP_NEW:
        if ((!incident && (rc = s_pack_hash(a, pp, pp->id, &as))) ||
            (rc = s_write(a, pp, pp->id, &as, NULL, res)))
            return rc;
        if (pp->natkey_len && (rc = s_natkey_put(a, pp, pp->id)))
            return rc;
        break;
    case GS_DEDUP_UPDATE:
        if ((rc = s_update(a, pp, &cur, &as, natkey_free, d.alias, res)))
            return rc;
        break;
    default:
        /* REJECT, CONFLICT, KEEP: nothing stored but a merge's alias */
        assert(d.action == GS_DEDUP_REJECT || d.action == GS_DEDUP_CONFLICT ||
               d.action == GS_DEDUP_KEEP);
        res->version = d.version;
        break;
    }
    s_result(a, res, d.status, d.reason, d.message, d.key);
    if (incident) {
        int to = (int) pp->rec->incident->status;
        assert(to > 0 && to < GS_INCIDENT_STATUSES);    /* validated */
        a->steps[to]++;
    }
    if (d.alias)
        return s_alias(a, pp->kb, pp->id, pp->grid, cur.canon);
    return 0;
}

/* ---- One upload ------------------------------------------------------------------ */

/* Pack a message at the end of the output buffer. */
static int
s_pack_out(s_apply_t *a, const ProtobufCMessage *m, size_t *off, size_t *len)
{
    gs_store_t *st = a->st;
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *p = gs_wbuf_reserve(&st->out, n ? n : 1);
    if (!p)
        return gs_txn_fail(a->t, ENOMEM, "pack answer");
    protobuf_c_message_pack(m, p);
    *off = st->out.len;
    *len = n;
    st->out.len += n;
    return 0;
}

/* An answer to the whole upload (not stored: it costs nothing to redo). */
static int
s_ack_error(s_apply_t *a, s_uprec_t *u, const gs_upload_t *up, int reason,
            const char *msg)
{
    Gridsync__V1__Ack ack = GRIDSYNC__V1__ACK__INIT;
    if (up->upload_id && strlen(up->upload_id) <= GS_ID_MAX)
        ack.upload_id = (char *) up->upload_id;
    ack.reason = (Gridsync__V1__Reason) reason;
    ack.message = (char *) msg;
    return s_pack_out(a, &ack.base, &u->off, &u->len);
}

static int
s_upload(s_apply_t *a, gs_upload_t *up, s_uprec_t *u)
{
    gs_store_t *st = a->st;
    gs_verdict_t v;
    int rc;
    a->up = up;
    memset(u, 0, sizeof *u);
    if (!up->device_id || !up->upload_id)
        return s_ack_error(a, u, up, GRIDSYNC__V1__REASON__REASON_BAD_REQUEST,
                           "device_id and upload_id are required");
    if (gs_ident_check(up->device_id, "device_id", &v) ||
        gs_ident_check(up->upload_id, "upload_id", &v))
        return s_ack_error(a, u, up, GRIDSYNC__V1__REASON__REASON_BAD_REQUEST, v.message);

    gs_idem_entry_t ie;
    u->off = st->out.len;
    rc = gs_idem_get(&a->idem, up->device_id, up->upload_id, &ie, &st->out);
    if (rc == 0) {
        /* a retransmission: the same answer, nothing written */
        memcpy(u->counts, ie.counts, sizeof u->counts);
        u->replayed = 1;
        u->len = ie.ack_len;
        return 0;
    }
    if (rc != GS_ENOTFOUND)
        return rc;
    if (up->n_records == 0)
        return s_ack_error(a, u, up, GRIDSYNC__V1__REASON__REASON_BAD_REQUEST,
                           "upload has no records");
    if (up->n_records > st->limits.max_records) {
        char msg[GS_MSG_MAX];
        snprintf(msg, sizeof msg, "upload has %zu records; at most %u are allowed",
                 up->n_records, st->limits.max_records);
        return s_ack_error(a, u, up, GRIDSYNC__V1__REASON__REASON_TOO_MANY_RECORDS, msg);
    }

    Gridsync__V1__RecordResult *res = gs_arena_alloc(st->arena, up->n_records * sizeof *res);
    Gridsync__V1__RecordResult **resp = gs_arena_alloc(st->arena, up->n_records * sizeof *resp);
    if (!res || !resp)
        return gs_txn_fail(a->t, ENOMEM, "results");
    for (size_t i = 0; i < up->n_records; i++) {
        Gridsync__V1__RecordResult init = GRIDSYNC__V1__RECORD_RESULT__INIT;
        res[i] = init;
        res[i].index = (uint32_t) i;
        resp[i] = &res[i];
        if ((rc = s_record(a, i, up->records[i], &res[i])))
            return rc;
        if ((unsigned) res[i].status < GS_IDEM_COUNTS)
            u->counts[res[i].status]++;
    }
    Gridsync__V1__Ack ack = GRIDSYNC__V1__ACK__INIT;
    ack.upload_id = (char *) up->upload_id;
    ack.n_results = up->n_records;
    ack.results = resp;
    if ((rc = s_pack_out(a, &ack.base, &u->off, &u->len)))
        return rc;
    size_t n = u->len;

    /* remember the answer, and its place in the expiry queue */
    return gs_idem_put(&a->idem, up->device_id, up->upload_id, a->now_ms, u->counts,
                       st->out.data + u->off, n);
}

/* One attempt of the whole batch in transaction t (gs_wfn): redone from
 * scratch after map growth, so every cache starts empty. */
static int
s_attempt(gs_txn_t *t, void *arg)
{
    s_apply_t *a = arg;
    gs_store_t *st = a->st;
    gs_arena_reset(st->arena);
    gs_wbuf_reset(&st->out);
    a->reg_grid[0] = 0;
    a->scope_up = NULL;
    memset(a->steps, 0, sizeof a->steps);
    a->table_loaded = 0;
    a->t = t;
    int rc;
    if ((rc = gs_log_begin(&a->log, t, &st->out, a->now_ms)))
        return rc;
    if ((rc = gs_idem_begin(&a->idem, t)))
        return rc;
    size_t grids;
    if ((rc = gs_txn_count(t, GS_DB_GRIDS, &grids)))
        return rc;
    a->registry = grids > 0;
    for (size_t i = 0; i < a->n_batch; i++) {
        static const gs_principal_t device = { 0, NULL, NULL, 0 };
        a->who = a->whos ? a->whos[i] : device;
        if ((rc = s_upload(a, &a->batch[i], &a->ups[i])))
            return rc;
    }
    if ((rc = gs_idem_expire(&a->idem, a->now_ms, st->opts.idem_max_entries,
                             st->opts.idem_max_age_ms)))
        return rc;
    if ((rc = gs_log_flush(&a->log)))
        return rc;
    return gs_idem_flush(&a->idem);
}

/* The results into out: the uploads and events in one block, pointing
 * into the packed acks and events, whose buffer (st->out) is handed over
 * rather than copied; gs_apply_out_clear frees both. st->out gets a buffer
 * of the same size for the next apply, allocated here, on the writer
 * thread: the next batch is written straight into it. */
static int
s_output(s_apply_t *a, size_t n, gs_apply_out_t *out)
{
    gs_store_t *st = a->st;
    size_t ub = n * sizeof(gs_upload_result_t);
    size_t eb = a->log.n_evs * sizeof(gs_event_out_t);
    uint8_t *blk = malloc(ub + eb + 1);
    if (!blk)
        return GS_ENOMEM;
    uint8_t *bytes = st->out.data;
    size_t cap = st->out.cap;
    out->bytes = bytes;
    gs_wbuf_init(&st->out);
    if (cap)    /* failing here is retried by the next apply */
        (void) gs_wbuf_reserve(&st->out, cap);
    out->uploads = (gs_upload_result_t *) blk;
    out->n_uploads = n;
    out->events = a->log.n_evs ? (gs_event_out_t *) (blk + ub) : NULL;
    out->n_events = a->log.n_evs;
    for (size_t i = 0; i < n; i++) {
        gs_upload_result_t *r = &out->uploads[i];
        r->ack = bytes + a->ups[i].off;
        r->ack_len = a->ups[i].len;
        r->replayed = a->ups[i].replayed;
        memcpy(r->counts, a->ups[i].counts, sizeof r->counts);
    }
    for (size_t i = 0; i < a->log.n_evs; i++) {
        const gs_log_ev_t *ev = &a->log.evs[i];
        gs_event_out_t *e = &out->events[i];
        memcpy(e->grid, ev->grid, sizeof e->grid);
        e->seq = ev->seq;
        e->data = bytes + ev->off;
        e->len = ev->len;
    }
    out->head_seq = a->log.head;
    memcpy(out->incident_steps, a->steps, sizeof out->incident_steps);
    return 0;
}

int
gs_store_apply(gs_store_t *self, gs_upload_t *ups, size_t n, int64_t now_ms,
               gs_apply_out_t *out)
{
    return gs_store_apply_as(self, ups, NULL, n, now_ms, out);
}

int
gs_store_apply_as(gs_store_t *self, gs_upload_t *ups, const gs_principal_t *whos, size_t n,
                  int64_t now_ms, gs_apply_out_t *out)
{
    if (!self || !out || (n && !ups))
        return GS_EINVAL;
    memset(out, 0, sizeof *out);
    if (self->opts.read_only) {
        gs_store_detail("store opened read-only");
        return GS_EREADONLY;
    }
    if (n == 0)
        return gs_store_head(self, &out->head_seq);

    pthread_mutex_lock(&self->write_lock);
    s_apply_t a;
    memset(&a, 0, sizeof a);
    a.st = self;
    a.now_ms = now_ms;
    a.batch = ups;
    a.whos = whos;
    a.n_batch = n;
    gs_log_init(&a.log);
    gs_idem_init(&a.idem);
    a.ups = calloc(n, sizeof *a.ups);
    int rc = a.ups ? 0 : GS_ENOMEM;
    uint32_t grows = 0;
    if (rc == 0)
        rc = gs_store_write_locked(self, s_attempt, &a, &grows);
    if (rc == 0)
        rc = s_output(&a, n, out);
    out->map_grows = grows;
    gs_arena_reset(self->arena);
    free(a.ups);
    gs_log_deinit(&a.log);
    gs_idem_deinit(&a.idem);
    pthread_mutex_unlock(&self->write_lock);
    if (rc) {
        uint32_t g = out->map_grows;
        memset(out, 0, sizeof *out);
        out->map_grows = g;
    }
    return rc;
}

void
gs_apply_out_clear(gs_apply_out_t *out)
{
    if (!out)
        return;
    free(out->uploads);
    free(out->bytes);
    memset(out, 0, sizeof *out);
}

/*
 * gs_store_repair: the repair of one cell of a replica from its origin's
 * stream (gs_store_cell_repair; contract in gs_store_replica.h, the design
 * in docs/federation.md, "Drift, compare and repair"). Every message and
 * every record is checked before anything is written, so a refused repair
 * leaves nothing behind; the records are written by gs_record_write, the
 * function the upload path uses.
 *
 * Where it sits: beside gs_store_replica.c, whose checks and writes it
 * shares (gs_store_repl_int.h); called by the broker's replica thread for
 * --replica-repair before the origin's consumer resumes.
 */
#include "gs_grid.h"
#include "gs_prescan.h"
#include "gs_store_repl_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define S_OP_UPSERT GRIDSYNC__V1__OPERATION__OPERATION_UPSERT
#define S_OP_VOID GRIDSYNC__V1__OPERATION__OPERATION_VOID
#define S_OP_MOVE_OUT GRIDSYNC__V1__OPERATION__OPERATION_MOVE_OUT
#define S_VOID GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_VOID

/* The last event of one record among a repair's messages. */
typedef struct s_final {
    char kb;                        /* its kind byte */
    const char *id;                 /* its id (in the arena) */
    size_t idx;                     /* the message of its last event */
    const Gridsync__V1__ChangeEvent *ev; /* that event (in the arena) */
    gs_event_fields_t f;            /* its fields (the record's bytes) */
} s_final_t;

static int
s_final_cmp(const void *a, const void *b)
{
    const s_final_t *x = a, *y = b;
    if (x->kb != y->kb)
        return x->kb < y->kb ? -1 : 1;
    int c = strcmp(x->id, y->id);
    if (c)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Refuse a repair: reason and message into r->rep. Returns 0: the
 * attempt ends there, having written nothing, and commits nothing. */
static int s_repair_refuse(gs_repl_t *r, int reason, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int
s_repair_refuse(gs_repl_t *r, int reason, uint64_t seq, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->rep.message, sizeof r->rep.message, fmt, ap);
    va_end(ap);
    r->rep.refused = reason;
    r->rep.refused_seq = seq;
    return 0;
}

/* Check one message of a repair and decode its event into *evp and *f.
 * Returns 0, 1 when it lies past the applied position (ignored), or -1
 * when it is refused (the reason in r->rep). */
static int
s_repair_msg(gs_repl_t *r, const gs_repl_msg_t *m, Gridsync__V1__ChangeEvent **evp,
             gs_event_fields_t *f)
{
    gs_store_t *st = r->st;
    uint64_t hseq, hepoch;
    if (gs_repl_parse_dec(m->h_seq, &hseq) || hseq == 0) {
        s_repair_refuse(r, GS_REPL_HEADER, 0, "a message of cell %s has no valid "
                        "Gridsync-Seq header", r->cell);
        return -1;
    }
    if (hseq > r->o.last_seq)
        return 1;
    if (!m->h_origin || strcmp(m->h_origin, r->area) != 0) {
        s_repair_refuse(r, GS_REPL_ORIGIN, hseq, "message seq %" PRIu64 " names origin "
                        "'%.40s', not %s", hseq, m->h_origin ? m->h_origin : "(none)",
                        r->area);
        return -1;
    }
    if (gs_repl_parse_epoch(m->h_epoch, &hepoch) || hepoch != r->o.epoch) {
        s_repair_refuse(r, GS_REPL_EPOCH, hseq, "message seq %" PRIu64 " has epoch '%.40s', "
                        "not the recorded %016" PRIx64, hseq, m->h_epoch ? m->h_epoch : "(none)",
                        r->o.epoch);
        return -1;
    }
    gs_verdict_t pv;
    Gridsync__V1__ChangeEvent *ev = NULL;
    if (m->data && m->len &&
        !gs_prescan(&gridsync__v1__change_event__descriptor, m->data, m->len, &st->limits,
                    NULL, &pv))
        ev = gridsync__v1__change_event__unpack(gs_arena_allocator(st->arena), m->len, m->data);
    if (!ev || gs_event_scan(m->data, m->len, f) || ev->seq != hseq ||
        f->n_prev_seq != GS_LEVELS || !gs_repl_grid_ok(ev->grid_code) ||
        strcmp(ev->grid_code, r->cell) != 0 || !gs_kind_byte(ev->kind) || !ev->record_key ||
        !*ev->record_key || strlen(ev->record_key) > GS_ID_MAX || !f->record || !ev->version) {
        s_repair_refuse(r, GS_REPL_DECODE, hseq, "message seq %" PRIu64 " is not a change "
                        "event of cell %s", hseq, r->cell);
        return -1;
    }
    *evp = ev;
    return 0;
}

/* One attempt of a repair (gs_wfn). */
static int
s_repair_attempt(gs_txn_t *t, void *arg)
{
    gs_repl_t *r = arg;
    gs_store_t *st = r->st;
    gs_arena_reset(st->arena);
    gs_wbuf_reset(&st->out);
    r->t = t;
    memset(&r->rep, 0, sizeof r->rep);
    int rc;
    if ((rc = gs_log_begin(&r->log, t, &st->out, r->now_ms)) ||
        (rc = gs_repl_entry_read(t, r->area, &r->o)))
        return rc;
    r->rep.last_seq = r->o.last_seq;
    if (!r->o.last_seq)
        return s_repair_refuse(r, GS_REPL_ORIGIN, 0, "origin %s has applied nothing yet: "
                               "nothing to repair against", r->area);
    if (!gs_grid_prefix_covers(r->o.followed, r->cell))
        return s_repair_refuse(r, GS_REPL_ORIGIN, 0, "cell %s lies outside the prefix %s "
                               "followed in origin %s", r->cell, r->o.followed, r->area);

    /* 1. the events up to the applied position: checked, complete */
    int cl = gs_level_of_len(GS_GRID_LEN);
    s_final_t *fin = r->n ? gs_arena_alloc(st->arena, r->n * sizeof *fin) : NULL;
    if (r->n && !fin)
        return gs_txn_fail(t, ENOMEM, "repair events");
    size_t nf = 0;
    uint64_t prev = 0;
    for (size_t i = 0; i < r->n; i++) {
        Gridsync__V1__ChangeEvent *ev;
        gs_event_fields_t f;
        int m = s_repair_msg(r, &r->msgs[i], &ev, &f);
        if (m < 0)
            return 0;
        if (m > 0) {
            r->rep.later++;
            continue;
        }
        if (f.prev_seq[cl] != prev)
            return s_repair_refuse(r, GS_REPL_GAP, ev->seq, "event seq %" PRIu64 " follows "
                                   "seq %" PRIu64 " in cell %s, but the event before it read "
                                   "is seq %" PRIu64 ": events of the cell are missing",
                                   ev->seq, f.prev_seq[cl], r->cell, prev);
        prev = ev->seq;
        fin[nf++] = (s_final_t) { gs_kind_byte(ev->kind), ev->record_key, i, ev, f };
        r->rep.events++;
    }
    /* the last event of each record decides: sort by record, then message */
    qsort(fin, nf, sizeof *fin, s_final_cmp);
    size_t nl = 0;
    for (size_t i = 0; i < nf; i++) {
        if (i + 1 < nf && fin[i + 1].kb == fin[i].kb && strcmp(fin[i + 1].id, fin[i].id) == 0)
            continue;
        fin[nl++] = fin[i];
    }

    /* 2. what the origin holds: each record checked before anything is written */
    gs_prepared_t *pps = nl ? gs_arena_alloc(st->arena, nl * sizeof *pps) : NULL;
    if (nl && !pps)
        return gs_txn_fail(t, ENOMEM, "repair records");
    for (size_t i = 0; i < nl; i++) {
        s_final_t *x = &fin[i];
        pps[i].ready = 0;
        if (x->ev->op == S_OP_MOVE_OUT)
            continue;   /* the record left the cell */
        if ((rc = gs_prepare_packed(st, gs_arena_allocator(st->arena), x->f.record,
                                    x->f.record_len, x->ev->record, &pps[i])))
            return gs_txn_fail(t, rc, "prepare repaired record");
        gs_prepared_t *pp = &pps[i];
        if (!pp->ready || pp->kind != (int) x->ev->kind || strcmp(pp->id, x->id) != 0 ||
            strcmp(pp->grid, r->cell) != 0)
            return s_repair_refuse(r, GS_REPL_DECODE, x->ev->seq, "event seq %" PRIu64 ": "
                                   "its record disagrees with the event (kind, id or grid)",
                                   x->ev->seq);
        r->rep.records++;
        gs_rec_cur_t cur;
        if ((rc = gs_record_lookup(t, st->arena, pp->kb, x->id, &cur)))
            return rc;
        if (cur.found && !gs_grid_prefix_covers(r->area, cur.grid))
            return s_repair_refuse(r, GS_REPL_ORIGIN, x->ev->seq, "record %c/%s is held by "
                                   "another origin (grid %s)", pp->kb, x->id, cur.grid);
        if (pp->natkey_len) {
            MDB_val nkk = { pp->natkey_len, (void *) pp->natkey }, nkv;
            rc = gs_txn_get(t, GS_DB_NATKEYS, &nkk, &nkv);
            if (rc && rc != GS_ENOTFOUND)
                return rc;
            if (rc == 0 && !gs_val_natkey_is(nkv.mv_data, nkv.mv_size, x->id)) {
                /* held by a record of this cell: the repair makes the cell's
                 * records the origin's, whose natural keys are unique */
                char okb = 0, other[GS_ID_MAX + 1] = "(damaged entry)";
                gs_rec_cur_t oc = { 0 };
                if (gs_val_natkey_parse(nkv.mv_data, nkv.mv_size, &okb, other) == 0 &&
                    (rc = gs_record_lookup(t, st->arena, okb, other, &oc)))
                    return rc;
                if (!oc.found || strcmp(oc.grid, r->cell) != 0)
                    return s_repair_refuse(r, GS_REPL_CONFLICT, x->ev->seq, "the natural key "
                                           "of record %c/%s is held by record %s in another "
                                           "cell: repair that record's cell first", pp->kb,
                                           x->id, other);
            }
        }
    }

    /* 3. held here but not by the origin: removed. The walk starts over
     * after each removal rather than keep a cursor across writes. */
    uint8_t from[GS_RK_MAX];
    size_t froml = GS_GRID_LEN;
    memcpy(from, r->cell, GS_GRID_LEN);
    for (;;) {
        MDB_cursor *c;
        if ((rc = mdb_cursor_open(t->txn, st->db[GS_DB_RECORDS], &c)))
            return gs_txn_fail(t, rc, "open records cursor");
        MDB_val k = { froml, from }, v;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && k.mv_size == froml && memcmp(k.mv_data, from, froml) == 0)
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);   /* the key kept: already seen */
        mdb_cursor_close(c);
        if (rc == MDB_NOTFOUND || (rc == 0 && (k.mv_size < GS_GRID_LEN ||
                                               memcmp(k.mv_data, r->cell, GS_GRID_LEN) != 0)))
            break;
        if (rc)
            return gs_txn_fail(t, rc, "walk records");
        char grid[GS_GRID_LEN + 1], kb, id[GS_ID_MAX + 1];
        if (gs_key_record_parse(k.mv_data, k.mv_size, grid, &kb, id) ||
            k.mv_size > sizeof from)
            return gs_txn_fail(t, MDB_CORRUPTED, "records key");
        size_t lo = 0, hi = nl;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            int cmp = fin[mid].kb != kb ? (fin[mid].kb < kb ? -1 : 1) : strcmp(fin[mid].id, id);
            if (cmp < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        int kept = lo < nl && fin[lo].kb == kb && strcmp(fin[lo].id, id) == 0 && pps[lo].ready;
        if (kept) {
            memcpy(from, k.mv_data, k.mv_size);
            froml = k.mv_size;
            continue;
        }
        gs_rec_cur_t cur;
        if ((rc = gs_record_lookup(t, st->arena, kb, id, &cur)))
            return rc;
        if (!cur.found || strcmp(cur.grid, grid) != 0)
            return gs_txn_fail(t, MDB_CORRUPTED, "record without its ids entry");
        if ((rc = gs_repl_remove_held(r, &cur, id)))
            return rc;
        r->rep.removed++;
    }

    /* 4. what the origin holds and this store does not hold exactly so */
    for (size_t i = 0; i < nl; i++) {
        s_final_t *x = &fin[i];
        gs_prepared_t *pp = &pps[i];
        if (!pp->ready)
            continue;
        gs_rec_cur_t cur;
        if ((rc = gs_record_lookup(t, st->arena, pp->kb, x->id, &cur)))
            return rc;
        if (cur.found && strcmp(cur.grid, r->cell) == 0 &&
            cur.hdr.version == x->ev->version && cur.hdr.status == (uint8_t) pp->status &&
            memcmp(cur.hdr.hash, pp->hash, 16) == 0) {
            r->rep.unchanged++;
            continue;
        }
        if (cur.found && strcmp(cur.grid, r->cell) != 0) {
            /* held in the wrong cell: out of there first */
            if ((rc = gs_repl_remove_held(r, &cur, x->id)) ||
                (rc = gs_record_lookup(t, st->arena, pp->kb, x->id, &cur)))
                return rc;
        }
        int nk_held = 0;
        if (pp->natkey_len) {
            MDB_val nkk = { pp->natkey_len, (void *) pp->natkey }, nkv;
            nk_held = gs_txn_get(t, GS_DB_NATKEYS, &nkk, &nkv) == 0 &&
                      gs_val_natkey_is(nkv.mv_data, nkv.mv_size, x->id);
        }
        if ((rc = gs_repl_natkey_replace(r, &cur, pp, x->id, nk_held)))
            return rc;
        gs_rec_write_t w = { .pp = pp, .canon = x->id, .record = x->f.record,
                             .record_len = x->f.record_len, .hash = pp->hash,
                             .version = x->ev->version,
                             .op = pp->status == S_VOID ? S_OP_VOID : S_OP_UPSERT,
                             .origin_device = x->ev->origin_device, .origin = r->area,
                             .origin_epoch = r->o.epoch, .origin_seq = x->ev->seq };
        uint64_t seq;
        if ((rc = gs_record_write(&r->log, &w, cur.found ? &cur : NULL, &seq)))
            return rc;
        r->rep.installed++;
    }
    if ((rc = gs_log_flush(&r->log)))
        return rc;
    return t->err;
}

int
gs_store_cell_repair(gs_store_t *self, const char *area, const char *cell,
                     const gs_repl_msg_t *msgs, size_t n, int64_t now_ms,
                     gs_repair_result_t *res, gs_apply_out_t *out)
{
    if (!self || !res || !out || (n && !msgs))
        return GS_EINVAL;
    memset(out, 0, sizeof *out);
    memset(res, 0, sizeof *res);
    if (!gs_repl_area_ok(area) || !gs_repl_grid_ok(cell) || !gs_grid_prefix_covers(area, cell)) {
        gs_store_detail("repair: origin area must be 2-12 digits at a hierarchy level, the "
                        "cell a 15-digit grid under it");
        return GS_EINVAL;
    }
    if (self->opts.read_only) {
        gs_store_detail("store opened read-only");
        return GS_EREADONLY;
    }
    gs_repl_t r;
    memset(&r, 0, sizeof r);
    r.st = self;
    r.now_ms = now_ms;
    r.area = area;
    r.cell = cell;
    r.msgs = msgs;
    r.n = n;
    int rc = gs_repl_run(self, &r, s_repair_attempt, out);
    if (rc == 0)
        *res = r.rep;
    return rc;
}

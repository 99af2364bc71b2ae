/*
 * gs_store_replica: a replica's write path and its origins table (contract
 * in gs_store_replica.h; the design in docs/federation.md, the layout in
 * docs/store.md; the repair of a cell is gs_store_repair.c, on the checks
 * and writes shared through gs_store_repl_int.h). Each message of an origin is checked in full (headers,
 * decoding, epoch, order, and what the replica holds) before anything of
 * it is written, so a refused message leaves nothing behind; the record
 * itself is written by gs_record_write, the function the upload path uses.
 *
 * Where it sits: beside gs_store_apply.c, on the write transaction
 * (gs_store_txn.h) and the change log (gs_store_log.h); called by the
 * broker's replica thread.
 */
#include "gs_store_replica.h"
#include "gs_grid.h"
#include "gs_prescan.h"
#include "gs_store_int.h"
#include "gs_store_log.h"
#include "gs_store_record.h"
#include "gs_store_repl_int.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define S_OP_UPSERT GRIDSYNC__V1__OPERATION__OPERATION_UPSERT
#define S_OP_VOID GRIDSYNC__V1__OPERATION__OPERATION_VOID
#define S_OP_MOVE_OUT GRIDSYNC__V1__OPERATION__OPERATION_MOVE_OUT
#define S_OP_MOVE_IN GRIDSYNC__V1__OPERATION__OPERATION_MOVE_IN
#define S_VOID GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_VOID

/* origins value: epoch, last seq, last committed_at, applied, stop seq (u64
 * LE each), state, reason, followed length (u8 each), followed (15 bytes,
 * NUL-padded), stream seq (u64 LE), then the stop message */
#define S_ORIGIN_HDR 66

const char *
gs_repl_reason_name(int reason)
{
    static const char *const names[GS_REPL_REASONS] = {
        "ok", "decode", "header", "origin", "gap", "epoch", "conflict", "area", "stopped"
    };
    return reason >= 0 && reason < GS_REPL_REASONS ? names[reason] : "unknown";
}

/* ---- The origins table ------------------------------------------------------------ */

static size_t
s_origin_put(uint8_t *p, const gs_origin_t *o)
{
    gs_le64_put(p, o->epoch);
    gs_le64_put(p + 8, o->last_seq);
    gs_le64_put(p + 16, (uint64_t) o->last_committed_at);
    gs_le64_put(p + 24, o->applied);
    gs_le64_put(p + 32, o->stop_seq);
    p[40] = (uint8_t) o->state;
    p[41] = (uint8_t) o->reason;
    size_t fl = strnlen(o->followed, GS_GRID_LEN);
    p[42] = (uint8_t) fl;
    memset(p + 43, 0, GS_GRID_LEN);
    memcpy(p + 43, o->followed, fl);
    gs_le64_put(p + 58, o->stream_seq);
    size_t ml = strnlen(o->message, sizeof o->message - 1);
    memcpy(p + S_ORIGIN_HDR, o->message, ml);
    return S_ORIGIN_HDR + ml;
}

/* Decode an entry of area; -1 when the value is damaged. */
static int
s_origin_get(const char *area, const MDB_val *v, gs_origin_t *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->area, sizeof o->area, "%s", area);
    const uint8_t *p = v->mv_data;
    if (v->mv_size < S_ORIGIN_HDR || v->mv_size > S_ORIGIN_HDR + sizeof o->message - 1 ||
        p[42] > GS_GRID_LEN || p[40] > GS_ORIGIN_STOPPED || p[41] >= GS_REPL_REASONS)
        return -1;
    o->epoch = gs_le64_get(p);
    o->last_seq = gs_le64_get(p + 8);
    o->last_committed_at = (int64_t) gs_le64_get(p + 16);
    o->applied = gs_le64_get(p + 24);
    o->stop_seq = gs_le64_get(p + 32);
    o->state = p[40];
    o->reason = p[41];
    memcpy(o->followed, p + 43, p[42]);
    o->stream_seq = gs_le64_get(p + 58);
    memcpy(o->message, p + S_ORIGIN_HDR, v->mv_size - S_ORIGIN_HDR);
    return 0;
}

/* An origin's name: an area prefix at a hierarchy level of 2 to 12 digits. */
int
gs_repl_area_ok(const char *area)
{
    size_t n = area ? strlen(area) : 0;
    if (n < 2 || n >= GS_GRID_LEN || gs_level_of_len(n) < 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (area[i] < '0' || area[i] > '9')
            return 0;
    return 1;
}

/* ---- Applying an origin's messages ------------------------------------------------ */

/* Refuse the current message: reason and message into the result.
 * Returns the reason (> 0). */
static int s_refuse(gs_repl_t *r, int reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int
s_refuse(gs_repl_t *r, int reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->res.message, sizeof r->res.message, fmt, ap);
    va_end(ap);
    r->res.refused = reason;
    return reason;
}

/* A decimal u64 header value; -1 when it is not one. */
int
gs_repl_parse_dec(const char *s, uint64_t *out)
{
    if (!s || !*s || strlen(s) > 20)
        return -1;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        unsigned d = (unsigned) (*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* An epoch header: exactly 16 lower-case hex digits, not all zero. */
int
gs_repl_parse_epoch(const char *s, uint64_t *out)
{
    if (!s || strlen(s) != 16)
        return -1;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned) (c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned) (c - 'a' + 10);
        else
            return -1;
        v = v << 4 | d;
    }
    if (!v)
        return -1;
    *out = v;
    return 0;
}

/* A NUL-terminated 15-digit grid code? */
int
gs_repl_grid_ok(const char *g)
{
    if (!g || strlen(g) != GS_GRID_LEN)
        return 0;
    for (size_t i = 0; i < GS_GRID_LEN; i++)
        if (g[i] < '0' || g[i] > '9')
            return 0;
    return 1;
}

/* The natural key of the version cur describes (from its stored bytes). */
static int
s_cur_natkey(gs_repl_t *r, const gs_rec_cur_t *cur, uint8_t *nk, size_t *nkl)
{
    const uint8_t *data;
    size_t len;
    *nkl = 0;
    int rc = gs_rec_data(r->st, r->t->txn, &cur->hdr, &r->st->stored, &data, &len);
    if (rc)
        return gs_txn_fail(r->t, rc, "stored record");
    Gridsync__V1__Record *old =
        gridsync__v1__record__unpack(gs_arena_allocator(r->st->arena), len, data);
    if (!old)
        return gs_txn_fail(r->t, MDB_CORRUPTED, "stored record");
    *nkl = gs_natkey(old, nk);
    return 0;
}

/* The seq of the replica's MOVE_OUT of record kb/id from grid prev, when
 * it is the last event in that cell (as it is when the district's MOVE_OUT
 * and MOVE_IN were both followed: nothing of the origin comes between
 * them, and other origins write other cells), else 0: the MOVE_IN's back
 * pointer, so history follows the record across the move. Returns 0 or the
 * sticky error. */
static int
s_move_back(gs_repl_t *r, const char *prev, char kb, const char *id, uint64_t *back)
{
    *back = 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(r->t->txn, r->st->db[GS_DB_CELL_LOG], &c);
    if (rc)
        return gs_txn_fail(r->t, rc, "open cell log cursor");
    uint8_t ck[GS_CLK_LEN];
    gs_key_cell_log(ck, prev, UINT64_MAX);
    MDB_val k = { sizeof ck, ck }, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    rc = mdb_cursor_get(c, &k, &v, rc == MDB_NOTFOUND ? MDB_LAST : MDB_PREV);
    uint64_t seq = 0;
    int found = rc == 0 && gs_key_cell_log_parse(k.mv_data, k.mv_size, &seq) == 0 &&
                memcmp(k.mv_data, prev, GS_GRID_LEN) == 0;
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        return gs_txn_fail(r->t, rc, "read cell log");
    if (!found)
        return 0;
    uint8_t lk[GS_LK_LEN];
    gs_key_log(lk, seq);
    MDB_val key = { GS_LK_LEN, lk }, val;
    if ((rc = gs_txn_get(r->t, GS_DB_LOG, &key, &val)))
        return rc == GS_ENOTFOUND ? gs_txn_fail(r->t, MDB_CORRUPTED, "cell log entry") : rc;
    gs_event_fields_t f;
    gs_log_val_t lv;
    if ((rc = gs_log_val_get(&val, &r->st->stored, &lv)))
        return gs_txn_fail(r->t, rc, "log entry");
    if (gs_event_scan(lv.ev, lv.len, &f))
        return gs_txn_fail(r->t, MDB_CORRUPTED, "log entry");
    if (f.op == S_OP_MOVE_OUT && gs_kind_byte(f.kind) == kb &&
        f.record_key_len == strlen(id) && memcmp(f.record_key, id, f.record_key_len) == 0)
        *back = seq;
    return 0;
}

/* The natural keys of record id as it changes from cur (found or not) to
 * pp (NULL: removed): the old key goes when it changes and still leads to
 * id, the new one is put unless nk_held (it leads to id already). The
 * caller has checked that no other record holds the new key. Returns 0 or
 * the sticky error. */
int
gs_repl_natkey_replace(gs_repl_t *r, const gs_rec_cur_t *cur, const gs_prepared_t *pp,
                 const char *id, int nk_held)
{
    int rc = 0;
    if (cur->found && (cur->hdr.flags & GS_RF_NATKEY) && !nk_held) {
        uint8_t onk[GS_NATKEY_MAX + 2];
        size_t onkl;
        if ((rc = s_cur_natkey(r, cur, onk, &onkl)))
            return rc;
        MDB_val ok = { onkl, onk }, nkv;
        if (onkl && (rc = gs_txn_get(r->t, GS_DB_NATKEYS, &ok, &nkv)) == 0 &&
            gs_val_natkey_is(nkv.mv_data, nkv.mv_size, id))
            rc = gs_txn_del(r->t, GS_DB_NATKEYS, &ok);
        if (rc && rc != GS_ENOTFOUND)
            return rc;
    }
    if (pp && pp->natkey_len && !nk_held) {
        uint8_t nv[GS_IK_MAX];
        MDB_val nkk = { pp->natkey_len, (void *) pp->natkey },
                val = { gs_key_id(nv, pp->kb, id, strlen(id)), nv };
        if ((rc = gs_txn_put(r->t, GS_DB_NATKEYS, &nkk, &val, 0)))
            return rc;
    }
    return 0;
}

/* Remove the record cur (found, kind byte kb, canonical id) from its cell
 * as a MOVE_OUT of this store's own (origin r->area, origin_seq 0), with
 * its natural key when that leads to it: what a re-baseline and a repair
 * do to a record the origin no longer holds there. Returns 0 or the
 * sticky error. */
int
gs_repl_remove_held(gs_repl_t *r, const gs_rec_cur_t *cur, const char *id)
{
    gs_store_t *st = r->st;
    gs_txn_t *t = r->t;
    const uint8_t *data;
    size_t len;
    int rc;
    if ((rc = gs_rec_data(st, t->txn, &cur->hdr, &st->stored, &data, &len)))
        return gs_txn_fail(t, rc, "stored record");
    gs_prepared_t pp;
    if ((rc = gs_prepare_packed(st, gs_arena_allocator(st->arena), data, len, NULL, &pp)))
        return gs_txn_fail(t, rc, "prepare stored record");
    if (!pp.ready)
        return gs_txn_fail(t, MDB_CORRUPTED, "stored record");
    /* its natural key, when it leads to it */
    if (pp.natkey_len) {
        MDB_val nkk = { pp.natkey_len, (void *) pp.natkey }, nkv;
        rc = gs_txn_get(t, GS_DB_NATKEYS, &nkk, &nkv);
        if (rc == 0 && gs_val_natkey_is(nkv.mv_data, nkv.mv_size, id))
            rc = gs_txn_del(t, GS_DB_NATKEYS, &nkk);
        if (rc && rc != GS_ENOTFOUND)
            return rc;
    }
    /* copy the bytes out of the map: the writes below may move them */
    uint8_t *copy = gs_arena_alloc(st->arena, len ? len : 1);
    if (!copy)
        return gs_txn_fail(t, ENOMEM, "record copy");
    memcpy(copy, data, len);
    gs_rec_write_t w = { .pp = &pp, .canon = id, .record = copy, .record_len = len,
                         .hash = pp.hash, .version = cur->hdr.version,
                         .op = S_OP_MOVE_OUT, .origin = r->area,
                         .origin_epoch = r->o.epoch, .origin_seq = 0 };
    uint64_t seq;
    return gs_record_write(&r->log, &w, cur, &seq);
}

typedef struct gs_repl_pre gs_repl_pre_t;
static const gs_repl_pre_t *s_ahead_wait(gs_repl_ahead_t *self, size_t i);
static void s_ahead_done(gs_repl_ahead_t *self, size_t i);

/* What s_check found in one message: the checks that need nothing of the
 * store's tables, done before (and on another thread than) the ones that
 * do. A refusal is kept with its stage, so that s_message refuses in the
 * order the checks are listed in gs_store_replica.h whoever ran them. */
struct gs_repl_pre {
    int early;                      /* GS_REPL_* refusal before lineage and order */
    int bad_prev;                   /* GS_REPL_DECODE: prev_seq is not GS_LEVELS long */
    int late;                       /* GS_REPL_* refusal after order (fields, record) */
    int rc;                         /* a GS_E* error of the record's preparation */
    uint64_t hseq, hepoch;          /* the headers' seq (0: unreadable) and epoch */
    char message[256];              /* the refusal, for a person */
    Gridsync__V1__ChangeEvent *ev;  /* the event (NULL after an early refusal) */
    gs_event_fields_t f;            /* its top-level fields */
    gs_prepared_t pp;               /* its record's prepared view */
    int has_entry;                  /* entry is made (all but MOVE_OUT) */
    uint8_t entry[16];              /* the version's digest entry (gs_digest_entry) */
};

/* Keep refusal reason of stage *at (early, bad_prev or late) and its
 * message in x. Returns the reason. */
static int s_pre_refuse(gs_repl_pre_t *x, int *at, int reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int
s_pre_refuse(gs_repl_pre_t *x, int *at, int reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->message, sizeof x->message, fmt, ap);
    va_end(ap);
    *at = reason;
    return reason;
}

/* The checks of message m of origin area (followed) that read no table:
 * headers, gs_prescan, decoding, the event's fields and its record's
 * prepared view, into *x (memory from alloc). Pure CPU on st's limits and
 * HMAC key: any thread (gs_repl_ahead_run runs it beside the writer). */
static void
s_check(gs_store_t *st, const char *area, const char *followed, const gs_repl_msg_t *m,
        ProtobufCAllocator *alloc, gs_repl_pre_t *x)
{
    memset(x, 0, sizeof *x);
    /* headers */
    uint64_t hseq, hepoch;
    if (gs_repl_parse_dec(m->h_seq, &hseq) || hseq == 0) {
        s_pre_refuse(x, &x->early, GS_REPL_HEADER, "message without a valid Gridsync-Seq "
                     "header (got '%.40s')", m->h_seq ? m->h_seq : "(none)");
        return;
    }
    x->hseq = hseq;
    if (!m->h_origin) {
        s_pre_refuse(x, &x->early, GS_REPL_HEADER, "message seq %" PRIu64 " has no "
                     "Gridsync-Origin header", hseq);
        return;
    }
    if (strcmp(m->h_origin, area) != 0) {
        s_pre_refuse(x, &x->early, GS_REPL_ORIGIN, "message seq %" PRIu64 " names origin "
                     "'%.40s', which is not this stream's origin %s", hseq, m->h_origin, area);
        return;
    }
    if (gs_repl_parse_epoch(m->h_epoch, &hepoch)) {
        s_pre_refuse(x, &x->early, GS_REPL_HEADER, "message seq %" PRIu64 " has no valid "
                     "Gridsync-Epoch header (got '%.40s')", hseq,
                     m->h_epoch ? m->h_epoch : "(none)");
        return;
    }
    x->hepoch = hepoch;

    /* the event: walked before protobuf-c unpacks it, as any input from
     * outside is (a hostile message could ask for hundreds of MB) */
    gs_verdict_t pv;
    if (m->data && m->len &&
        gs_prescan(&gridsync__v1__change_event__descriptor, m->data, m->len, &st->limits, NULL,
                   &pv)) {
        s_pre_refuse(x, &x->early, GS_REPL_DECODE, "message seq %" PRIu64 " is refused "
                     "before decoding: %s", hseq, pv.message);
        return;
    }
    gs_event_fields_t *f = &x->f;
    Gridsync__V1__ChangeEvent *ev = m->data && m->len
        ? gridsync__v1__change_event__unpack(alloc, m->len, m->data) : NULL;
    if (!ev || gs_event_scan(m->data, m->len, f)) {
        s_pre_refuse(x, &x->early, GS_REPL_DECODE, "message seq %" PRIu64 " does not decode "
                     "as a ChangeEvent", hseq);
        return;
    }
    if (ev->seq != hseq) {
        s_pre_refuse(x, &x->early, GS_REPL_HEADER, "message has Gridsync-Seq %" PRIu64 " but "
                     "its event has seq %" PRIu64, hseq, ev->seq);
        return;
    }
    x->ev = ev;

    /* checked after lineage and order (s_message) */
    if (f->n_prev_seq != GS_LEVELS) {
        s_pre_refuse(x, &x->bad_prev, GS_REPL_DECODE, "event seq %" PRIu64 " has %zu prev_seq "
                     "entries, not %d", hseq, f->n_prev_seq, GS_LEVELS);
        return;
    }

    /* the event's fields and its record */
    int op = ev->op;
    if (op != S_OP_UPSERT && op != S_OP_VOID && op != S_OP_MOVE_OUT && op != S_OP_MOVE_IN) {
        s_pre_refuse(x, &x->late, GS_REPL_DECODE, "event seq %" PRIu64 " has unknown op %d",
                     hseq, op);
        return;
    }
    if (!gs_repl_grid_ok(ev->grid_code) || !gs_kind_byte(ev->kind) || !ev->record_key ||
        !*ev->record_key || strlen(ev->record_key) > GS_ID_MAX || !f->record || !ev->version) {
        s_pre_refuse(x, &x->late, GS_REPL_DECODE, "event seq %" PRIu64 " lacks a grid, kind, "
                     "record key, version or record", hseq);
        return;
    }
    if (!gs_grid_prefix_covers(followed, ev->grid_code)) {
        s_pre_refuse(x, &x->late, GS_REPL_ORIGIN, "event seq %" PRIu64 " is in grid %s, "
                     "outside the followed area %s", hseq, ev->grid_code, followed);
        return;
    }
    if (op == S_OP_MOVE_IN && (!gs_repl_grid_ok(ev->previous_grid_code) ||
                               !gs_grid_prefix_covers(area, ev->previous_grid_code))) {
        s_pre_refuse(x, &x->late, GS_REPL_DECODE, "MOVE_IN event seq %" PRIu64 " has no "
                     "previous grid inside origin %s", hseq, area);
        return;
    }
    gs_prepared_t *pp = &x->pp;
    /* the record as the event's unpacking already built it (f.record are
     * its bytes, which are stored) */
    int rc = gs_prepare_packed(st, alloc, f->record, f->record_len, ev->record, pp);
    if (rc) {
        x->rc = rc;
        return;
    }
    if (!pp->ready) {
        s_pre_refuse(x, &x->late, GS_REPL_DECODE, "event seq %" PRIu64 ": %s", hseq,
                     pp->verdict.message);
        return;
    }
    /* MOVE_OUT carries the record as it is after the move (in its new grid) */
    const char *want_grid = op == S_OP_MOVE_OUT ? pp->grid : ev->grid_code;
    if (pp->kind != (int) ev->kind || strcmp(pp->id, ev->record_key) != 0 ||
        strcmp(pp->grid, want_grid) != 0 || !gs_grid_prefix_covers(area, pp->grid) ||
        (op == S_OP_VOID) != (op != S_OP_MOVE_OUT && op != S_OP_MOVE_IN &&
                              pp->status == S_VOID)) {
        s_pre_refuse(x, &x->late, GS_REPL_DECODE, "event seq %" PRIu64 ": its record "
                     "disagrees with the event (kind, id, grid or status)", hseq);
        return;
    }
    /* the digest entry of the version installed (as gs_record_write would
     * make it: its cell, key, version, status and content hash), here
     * rather than on the writer thread */
    if (op != S_OP_MOVE_OUT) {
        gs_digest_entry(pp->grid, pp->kb, ev->record_key, strlen(ev->record_key), ev->version,
                        pp->status, pp->hash, x->entry);
        x->has_entry = 1;
    }
}

/* One message: check everything, then write; the table-free checks are
 * m->pre when gs_repl_ahead_run made them, else made here. Returns 0
 * (applied or skipped), a GS_REPL_* reason (> 0: refused, nothing
 * written) or the sticky error (< 0). */
static int
s_message(gs_repl_t *r, const gs_repl_msg_t *m, const gs_repl_pre_t *pre)
{
    gs_store_t *st = r->st;
    gs_origin_t *o = &r->o;
    gs_repl_pre_t own;
    if (!pre) {
        s_check(st, r->area, r->followed, m, gs_arena_allocator(st->arena), &own);
        pre = &own;
    }
    r->res.refused_seq = pre->hseq;
    if (pre->early)
        return s_refuse(r, pre->early, "%s", pre->message);
    uint64_t hseq = pre->hseq, hepoch = pre->hepoch;
    const gs_event_fields_t *f = &pre->f;
    const Gridsync__V1__ChangeEvent *ev = pre->ev;

    /* lineage, redelivery, order */
    if (o->epoch && hepoch != o->epoch)
        return s_refuse(r, GS_REPL_EPOCH, "message seq %" PRIu64 " has epoch %016" PRIx64
                        " but origin %s was followed under epoch %016" PRIx64 ": the origin "
                        "store was replaced or restored; re-baseline it "
                        "(--replica-rebaseline=%s)", hseq, hepoch, r->area, o->epoch, r->area);
    if (hseq <= o->last_seq) {
        r->res.skipped++;
        if (m->stream_seq > o->stream_seq) {
            o->stream_seq = m->stream_seq;
            r->dirty = 1;
        }
        return 0;
    }
    if (pre->bad_prev)
        return s_refuse(r, pre->bad_prev, "%s", pre->message);
    if (f->prev_seq[r->level] != o->last_seq)
        return s_refuse(r, GS_REPL_GAP, "event seq %" PRIu64 " follows seq %" PRIu64
                        " under %s but the last applied is seq %" PRIu64 ": events are "
                        "missing", hseq, f->prev_seq[r->level], r->followed, o->last_seq);
    if (pre->rc)
        return gs_txn_fail(r->t, pre->rc, "prepare replicated record");
    if (pre->late)
        return s_refuse(r, pre->late, "%s", pre->message);
    const gs_prepared_t *pp = &pre->pp;
    int op = ev->op;
    int rc;

    /* what the replica holds */
    gs_rec_cur_t cur;
    if ((rc = gs_record_lookup(r->t, st->arena, pp->kb, ev->record_key, &cur)))
        return rc;
    if (cur.found && !gs_grid_prefix_covers(r->area, cur.grid))
        return s_refuse(r, GS_REPL_ORIGIN, "event seq %" PRIu64 ": record %c/%s is held by "
                        "another origin (grid %s)", hseq, pp->kb, ev->record_key, cur.grid);
    if (op == S_OP_MOVE_OUT && (!cur.found || strcmp(cur.grid, ev->grid_code) != 0))
        return s_refuse(r, GS_REPL_CONFLICT, "MOVE_OUT event seq %" PRIu64 " of record %c/%s "
                        "from grid %s, where the replica does not hold it", hseq, pp->kb,
                        ev->record_key, ev->grid_code);
    if (op == S_OP_MOVE_IN && cur.found)
        return s_refuse(r, GS_REPL_CONFLICT, "MOVE_IN event seq %" PRIu64 " of record %c/%s, "
                        "which the replica still holds in grid %s", hseq, pp->kb,
                        ev->record_key, cur.grid);
    if (cur.found && strcmp(cur.grid, ev->grid_code) != 0)
        return s_refuse(r, GS_REPL_CONFLICT, "event seq %" PRIu64 " changes record %c/%s in "
                        "grid %s, but the replica holds it in grid %s", hseq, pp->kb,
                        ev->record_key, ev->grid_code, cur.grid);
    if (cur.found && ev->version <= cur.hdr.version)
        return s_refuse(r, GS_REPL_CONFLICT, "event seq %" PRIu64 " brings version %" PRIu64
                        " of record %c/%s, the replica holds version %" PRIu64, hseq,
                        ev->version, pp->kb, ev->record_key, cur.hdr.version);
    int removing = op == S_OP_MOVE_OUT;
    int nk_held = 0;            /* the new natural key already leads to this record */
    if (!removing && pp->natkey_len) {
        MDB_val nkk = { pp->natkey_len, (void *) pp->natkey }, nkv;
        rc = gs_txn_get(r->t, GS_DB_NATKEYS, &nkk, &nkv);
        if (rc && rc != GS_ENOTFOUND)
            return rc;
        if (rc == 0) {
            nk_held = gs_val_natkey_is(nkv.mv_data, nkv.mv_size, ev->record_key);
            if (!nk_held) {
                char other[GS_ID_MAX + 1] = "(damaged entry)";
                gs_val_natkey_parse(nkv.mv_data, nkv.mv_size, NULL, other);
                return s_refuse(r, GS_REPL_CONFLICT, "event seq %" PRIu64 ": the natural key "
                                "of record %c/%s is held by record %s", hseq, pp->kb,
                                ev->record_key, other);
            }
        }
    }

    /* checked: now write */
    if ((rc = gs_repl_natkey_replace(r, &cur, removing ? NULL : pp, ev->record_key, nk_held)))
        return rc;
    uint64_t back = 0;
    if (op == S_OP_MOVE_IN &&
        (rc = s_move_back(r, ev->previous_grid_code, pp->kb, ev->record_key, &back)))
        return rc;
    gs_rec_write_t w = { .pp = pp, .canon = ev->record_key, .record = f->record,
                         .record_len = f->record_len, .hash = pp->hash,
                         .digest_entry = pre->has_entry ? pre->entry : NULL,
                         .version = ev->version,
                         .op = op, .prev_grid = ev->previous_grid_code, .back = back,
                         .origin_device = ev->origin_device, .origin = r->area,
                         .origin_epoch = hepoch, .origin_seq = ev->seq };
    uint64_t seq;
    if ((rc = gs_record_write(&r->log, &w, cur.found ? &cur : NULL, &seq)))
        return rc;
    o->epoch = hepoch;
    o->last_seq = ev->seq;
    o->last_committed_at = ev->committed_at;
    o->applied++;
    if (m->stream_seq > o->stream_seq)
        o->stream_seq = m->stream_seq;
    o->state = GS_ORIGIN_RUNNING;
    r->res.applied++;
    r->dirty = 1;
    return 0;
}

/* Read the entry of r->area into r->o (state NEW when absent). */
int
gs_repl_entry_read(gs_txn_t *t, const char *area, gs_origin_t *o)
{
    MDB_val k = { strlen(area), (void *) area }, v;
    int rc = gs_txn_get(t, GS_DB_ORIGINS, &k, &v);
    if (rc == GS_ENOTFOUND) {
        memset(o, 0, sizeof *o);
        snprintf(o->area, sizeof o->area, "%s", area);
        return 0;
    }
    if (rc)
        return rc;
    if (s_origin_get(area, &v, o))
        return gs_txn_fail(t, MDB_CORRUPTED, "origins entry");
    return 0;
}

static int
s_entry_write(gs_txn_t *t, const gs_origin_t *o)
{
    uint8_t buf[S_ORIGIN_HDR + sizeof o->message];
    MDB_val k = { strlen(o->area), (void *) o->area }, v = { s_origin_put(buf, o), buf };
    return gs_txn_put(t, GS_DB_ORIGINS, &k, &v, 0);
}

/* One attempt of the whole call in transaction t (gs_wfn). */
static int
s_attempt(gs_txn_t *t, void *arg)
{
    gs_repl_t *r = arg;
    gs_store_t *st = r->st;
    gs_arena_reset(st->arena);
    gs_wbuf_reset(&st->out);
    r->t = t;
    memset(&r->res, 0, sizeof r->res);
    r->dirty = 0;
    int rc;
    if ((rc = gs_log_begin(&r->log, t, &st->out, r->now_ms)) ||
        (rc = gs_repl_entry_read(t, r->area, &r->o)))
        return rc;
    gs_origin_t *o = &r->o;
    if (o->state == GS_ORIGIN_STOPPED) {
        /* nothing to write: the entry already says why */
        s_refuse(r, GS_REPL_STOPPED, "origin %s is stopped (%s): %s", r->area,
                 gs_repl_reason_name(o->reason), o->message);
        r->res.refused_seq = o->stop_seq;
        r->res.origin = *o;
        return 0;
    }
    int reason = 0;
    if (o->followed[0] && strcmp(o->followed, r->followed) != 0) {
        reason = s_refuse(r, GS_REPL_AREA, "origin %s was followed under %s, now under %s: "
                          "re-baseline it (--replica-rebaseline=%s)", r->area, o->followed,
                          r->followed, r->area);
    } else {
        for (size_t i = 0; i < r->n; i++) {
            /* nothing of a message outlives it in the arena (its event is
             * in st->out, the origin in r->o): emptied for each, the
             * arena stays in its first block, where a batch's worth of
             * decoded messages took fresh blocks from malloc each time */
            gs_arena_reset(st->arena);
            rc = s_message(r, &r->msgs[i], r->ahead ? s_ahead_wait(r->ahead, i) : NULL);
            if (r->ahead)
                s_ahead_done(r->ahead, i);
            if (rc < 0)
                return rc;
            if (rc > 0) {
                reason = rc;
                break;
            }
            r->res.consumed++;
        }
    }
    if (!o->followed[0] && r->res.applied)
        snprintf(o->followed, sizeof o->followed, "%s", r->followed);
    if (reason) {
        o->state = GS_ORIGIN_STOPPED;
        o->reason = reason;
        o->stop_seq = r->res.refused_seq;
        snprintf(o->message, sizeof o->message, "%s", r->res.message);
    }
    r->res.origin = *o;
    if (r->dirty || reason)
        s_entry_write(t, o);
    if ((rc = gs_log_flush(&r->log)))
        return rc;
    return t->err;
}

/* The events of an attempt into out (uploads empty): the packed events'
 * buffer (st->out) is handed over rather than copied, as gs_store_apply
 * hands it over, and st->out gets a buffer of the same size for the next
 * batch, allocated here on the writer thread. */
static int
s_output(gs_store_t *st, const gs_log_t *log, gs_apply_out_t *out)
{
    size_t eb = log->n_evs * sizeof(gs_event_out_t);
    uint8_t *blk = malloc(eb + 1);
    if (!blk)
        return GS_ENOMEM;
    uint8_t *bytes = st->out.data;
    size_t cap = st->out.cap;
    out->bytes = bytes;
    gs_wbuf_init(&st->out);
    if (cap)    /* failing here is retried by the next batch */
        (void) gs_wbuf_reserve(&st->out, cap);
    /* gs_apply_out_clear frees uploads: the block hangs there */
    out->uploads = (gs_upload_result_t *) blk;
    out->n_uploads = 0;
    out->events = log->n_evs ? (gs_event_out_t *) blk : NULL;
    out->n_events = log->n_evs;
    for (size_t i = 0; i < log->n_evs; i++) {
        const gs_log_ev_t *ev = &log->evs[i];
        gs_event_out_t *e = &out->events[i];
        memcpy(e->grid, ev->grid, sizeof e->grid);
        e->seq = ev->seq;
        e->data = bytes + ev->off;
        e->len = ev->len;
    }
    out->head_seq = log->head;
    return 0;
}

/* Run fn (an attempt over an gs_repl_t) under the write lock and copy its
 * events out. */
int
gs_repl_run(gs_store_t *self, gs_repl_t *r, gs_wfn *fn, gs_apply_out_t *out)
{
    pthread_mutex_lock(&self->write_lock);
    gs_log_init(&r->log);
    uint32_t grows = 0;
    int rc = gs_store_write_locked(self, fn, r, &grows);
    if (rc == 0)
        rc = s_output(self, &r->log, out);
    out->map_grows = grows;
    gs_arena_reset(self->arena);
    gs_log_deinit(&r->log);
    pthread_mutex_unlock(&self->write_lock);
    if (rc) {
        memset(out, 0, sizeof *out);
        out->map_grows = grows;
    }
    return rc;
}

static int
s_replicate(gs_store_t *self, const char *area, const char *followed,
            const gs_repl_msg_t *msgs, size_t n, gs_repl_ahead_t *ahead, int64_t now_ms,
            gs_repl_result_t *res, gs_apply_out_t *out)
{
    if (!self || !res || !out || (n && !msgs))
        return GS_EINVAL;
    memset(out, 0, sizeof *out);
    memset(res, 0, sizeof *res);
    if (!gs_repl_area_ok(area) || !followed || strlen(followed) > GS_GRID_LEN ||
        gs_level_of_len(strlen(followed)) < 0 || !gs_grid_prefix_covers(area, followed)) {
        gs_store_detail("replicate: origin area must be 2-12 digits at a hierarchy level, "
                        "the followed prefix a level prefix under it");
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
    r.followed = followed;
    r.level = gs_level_of_len(strlen(followed));
    r.msgs = msgs;
    r.n = n;
    r.ahead = ahead;
    int rc = gs_repl_run(self, &r, s_attempt, out);
    if (rc == 0)
        *res = r.res;
    return rc;
}

int
gs_store_replicate(gs_store_t *self, const char *area, const char *followed,
                   const gs_repl_msg_t *msgs, size_t n, int64_t now_ms,
                   gs_repl_result_t *res, gs_apply_out_t *out)
{
    return s_replicate(self, area, followed, msgs, n, NULL, now_ms, res, out);
}

/* ---- Checking ahead --------------------------------------------------------------- */

#define S_AHEAD_SLOTS 64            /* messages the checker may be ahead of the writer */
#define S_AHEAD_WAKE 32             /* a writer that waits wants this many checked: */
                                    /* woken once per few messages, not each one    */

struct gs_repl_ahead {
    gs_store_t *st;                 /* whose limits and HMAC key */
    pthread_mutex_t mu;             /* guards the fields below but the atomics */
    pthread_cond_t cond;            /* a batch begun, progress on either side, the end */
    /* A ring of slots, message i in slot i % S_AHEAD_SLOTS, each with an
     * arena of its own for the decoded event: it is reused as soon as the
     * writer is done with the message, so the memory stays small and in
     * cache whatever the batch's size. */
    gs_arena_t *arena[S_AHEAD_SLOTS];
    gs_repl_pre_t pre[S_AHEAD_SLOTS];
    char area[GS_GRID_LEN + 1];     /* the batch's origin */
    char followed[GS_GRID_LEN + 1]; /* and the prefix followed in it */
    gs_repl_msg_t *msgs;            /* its messages */
    size_t n;                       /* how many */
    gs_repl_fill_fn *fill;          /* completes a message before its check (or NULL) */
    void *fill_arg;                 /* and its argument */
    atomic_size_t checked;          /* messages the checker has done */
    atomic_size_t used;             /* messages the writer has done */
    atomic_size_t writer_wants;     /* the writer waits for checked > this - 1 (0: not) */
    atomic_size_t checker_wants;    /* the checker waits for used >= this (0: not) */
    int begun;                      /* a batch is begun and not ended */
    int running;                    /* the checker is on it */
    atomic_int cancel;              /* the writer is done with the batch */
    int stop;                       /* the checker's thread ends */
};

gs_repl_ahead_t *
gs_repl_ahead_new(gs_store_t *st)
{
    gs_repl_ahead_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->st = st;
    for (int i = 0; i < S_AHEAD_SLOTS; i++)
        if (!(self->arena[i] = gs_arena_new(0))) {
            while (i--)
                gs_arena_destroy(&self->arena[i]);
            free(self);
            return NULL;
        }
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cond, NULL);
    return self;
}

void
gs_repl_ahead_destroy(gs_repl_ahead_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gs_repl_ahead_t *self = *self_p;
    assert(!self->running);
    pthread_mutex_destroy(&self->mu);
    pthread_cond_destroy(&self->cond);
    for (int i = 0; i < S_AHEAD_SLOTS; i++)
        gs_arena_destroy(&self->arena[i]);
    free(self);
    *self_p = NULL;
}

/* Wake the other side if it waits for what *have now reaches. */
static void
s_ahead_wake(gs_repl_ahead_t *self, atomic_size_t *wants, size_t have)
{
    size_t w = atomic_load(wants);
    if (w && have >= w) {
        pthread_mutex_lock(&self->mu);
        pthread_cond_broadcast(&self->cond);
        pthread_mutex_unlock(&self->mu);
    }
}

int
gs_repl_ahead_run(gs_repl_ahead_t *self)
{
    pthread_mutex_lock(&self->mu);
    while (!self->stop && !(self->begun && !atomic_load(&self->cancel) && !self->running &&
                            atomic_load(&self->checked) < self->n))
        pthread_cond_wait(&self->cond, &self->mu);
    if (self->stop) {
        pthread_mutex_unlock(&self->mu);
        return -1;
    }
    self->running = 1;
    pthread_mutex_unlock(&self->mu);
    for (size_t i = 0; i < self->n && !atomic_load(&self->cancel); i++) {
        if (i >= S_AHEAD_SLOTS && atomic_load(&self->used) <= i - S_AHEAD_SLOTS) {
            /* the ring is full: wait until the writer has freed half of it,
             * so that each side wakes the other once per half ring at most */
            size_t want = i - S_AHEAD_SLOTS / 2 + 1;
            pthread_mutex_lock(&self->mu);
            atomic_store(&self->checker_wants, want);
            while (atomic_load(&self->used) < want && !atomic_load(&self->cancel))
                pthread_cond_wait(&self->cond, &self->mu);
            atomic_store(&self->checker_wants, 0);
            pthread_mutex_unlock(&self->mu);
            if (atomic_load(&self->cancel))
                break;
        }
        size_t k = i % S_AHEAD_SLOTS;
        gs_arena_reset(self->arena[k]);
        if (self->fill)
            self->fill(self->fill_arg, i, &self->msgs[i]);
        s_check(self->st, self->area, self->followed, &self->msgs[i],
                gs_arena_allocator(self->arena[k]), &self->pre[k]);
        atomic_store(&self->checked, i + 1);
        s_ahead_wake(self, &self->writer_wants, i + 1);
    }
    pthread_mutex_lock(&self->mu);
    self->running = 0;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->mu);
    return 0;
}

void
gs_repl_ahead_stop(gs_repl_ahead_t *self)
{
    pthread_mutex_lock(&self->mu);
    self->stop = 1;
    atomic_store(&self->cancel, 1);
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->mu);
}

int
gs_repl_ahead_begin(gs_repl_ahead_t *self, const char *area, const char *followed,
                    gs_repl_msg_t *msgs, size_t n, gs_repl_fill_fn *fill, void *fill_arg)
{
    assert(!self->begun);
    if (strlen(area) > GS_GRID_LEN || strlen(followed) > GS_GRID_LEN || (n && !msgs))
        return -1;
    pthread_mutex_lock(&self->mu);
    if (self->stop) {
        pthread_mutex_unlock(&self->mu);
        return -1;
    }
    snprintf(self->area, sizeof self->area, "%s", area);
    snprintf(self->followed, sizeof self->followed, "%s", followed);
    self->msgs = msgs;
    self->n = n;
    self->fill = fill;
    self->fill_arg = fill_arg;
    atomic_store(&self->checked, 0);
    atomic_store(&self->used, 0);
    atomic_store(&self->cancel, 0);
    self->begun = 1;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->mu);
    return 0;
}

void
gs_repl_ahead_end(gs_repl_ahead_t *self)
{
    pthread_mutex_lock(&self->mu);
    atomic_store(&self->cancel, 1);
    pthread_cond_broadcast(&self->cond);
    while (self->running)
        pthread_cond_wait(&self->cond, &self->mu);
    self->begun = 0;
    self->msgs = NULL;
    self->n = 0;
    self->fill = NULL;
    self->fill_arg = NULL;
    pthread_mutex_unlock(&self->mu);
}

/* What the checker found in message i of the batch, once it has checked
 * it; NULL when message i must be checked by the caller (the checker was
 * stopped before it, or the slot was reused: a second attempt of the
 * batch after map growth). A message the checker did not reach is
 * completed here (the batch's fill), once the checker has let go of the
 * batch, so that the caller checks it as the checker would have. */
static const gs_repl_pre_t *
s_ahead_wait(gs_repl_ahead_t *self, size_t i)
{
    if (atomic_load(&self->used) > i)
        return NULL;    /* checked, and so completed, in the first attempt */
    if (atomic_load(&self->checked) <= i) {
        /* when the checker is the slower side, waking the writer for each
         * message costs two context switches a message: it waits for a
         * few at once (fewer at the batch's end) */
        size_t want = i + S_AHEAD_WAKE < self->n ? i + S_AHEAD_WAKE : self->n;
        pthread_mutex_lock(&self->mu);
        atomic_store(&self->writer_wants, want);
        while (atomic_load(&self->checked) < want && !(self->stop && !self->running))
            pthread_cond_wait(&self->cond, &self->mu);
        atomic_store(&self->writer_wants, 0);
        pthread_mutex_unlock(&self->mu);
        if (atomic_load(&self->checked) <= i) {
            if (self->fill)
                self->fill(self->fill_arg, i, &self->msgs[i]);
            return NULL;
        }
    }
    return &self->pre[i % S_AHEAD_SLOTS];
}

/* The writer is done with message i: its slot may be reused. */
static void
s_ahead_done(gs_repl_ahead_t *self, size_t i)
{
    if (atomic_load(&self->used) > i)
        return;     /* a second attempt, checked inline */
    atomic_store(&self->used, i + 1);
    s_ahead_wake(self, &self->checker_wants, i + 1);
}

int
gs_store_replicate_ahead(gs_store_t *self, gs_repl_ahead_t *ahead, int64_t now_ms,
                         gs_repl_result_t *res, gs_apply_out_t *out)
{
    assert(ahead && ahead->begun && ahead->st == self);
    return s_replicate(self, ahead->area, ahead->followed, ahead->msgs, ahead->n, ahead, now_ms,
                       res, out);
}

/* ---- Re-baselining -------------------------------------------------------------------- */

/* One attempt of a re-baseline: every record under the area, removed. */
static int
s_rebase_attempt(gs_txn_t *t, void *arg)
{
    gs_repl_t *r = arg;
    gs_store_t *st = r->st;
    gs_arena_reset(st->arena);
    gs_wbuf_reset(&st->out);
    r->t = t;
    memset(&r->res, 0, sizeof r->res);
    int rc;
    if ((rc = gs_log_begin(&r->log, t, &st->out, r->now_ms)) ||
        (rc = gs_repl_entry_read(t, r->area, &r->o)))
        return rc;
    size_t al = strlen(r->area);
    for (;;) {
        /* the first record left under the area; each removal deletes it,
         * so the walk starts over rather than keep a cursor across writes */
        MDB_cursor *c;
        if ((rc = mdb_cursor_open(t->txn, st->db[GS_DB_RECORDS], &c)))
            return gs_txn_fail(t, rc, "open records cursor");
        MDB_val k = { al, (void *) r->area }, v;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        mdb_cursor_close(c);
        if (rc == MDB_NOTFOUND || (rc == 0 && (k.mv_size < al ||
                                               memcmp(k.mv_data, r->area, al) != 0)))
            break;
        if (rc)
            return gs_txn_fail(t, rc, "walk records");
        char grid[GS_GRID_LEN + 1], kb, id[GS_ID_MAX + 1];
        if (gs_key_record_parse(k.mv_data, k.mv_size, grid, &kb, id))
            return gs_txn_fail(t, MDB_CORRUPTED, "records key");
        gs_rec_cur_t cur;
        if ((rc = gs_record_lookup(t, st->arena, kb, id, &cur)))
            return rc;
        if (!cur.found || strcmp(cur.grid, grid) != 0)
            return gs_txn_fail(t, MDB_CORRUPTED, "record without its ids entry");
        if ((rc = gs_repl_remove_held(r, &cur, id)))
            return rc;
        r->res.applied++;
        if (r->res.applied % 4096 == 0)
            gs_arena_reset(st->arena);  /* bounded memory over a large origin */
    }
    /* the entry: back to new, any lineage accepted from its first event */
    MDB_val ek = { al, (void *) r->area };
    if ((rc = gs_txn_del(t, GS_DB_ORIGINS, &ek)) && rc != GS_ENOTFOUND)
        return rc;
    if ((rc = gs_log_flush(&r->log)))
        return rc;
    return t->err;
}

int
gs_store_origin_rebaseline(gs_store_t *self, const char *area, int64_t now_ms,
                           uint64_t *removed, gs_apply_out_t *out)
{
    if (!self || !out)
        return GS_EINVAL;
    memset(out, 0, sizeof *out);
    if (!gs_repl_area_ok(area)) {
        gs_store_detail("rebaseline: origin area must be 2-12 digits at a hierarchy level");
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
    int rc = gs_repl_run(self, &r, s_rebase_attempt, out);
    if (removed)
        *removed = rc == 0 ? r.res.applied : 0;
    return rc;
}

/* ---- Reading ------------------------------------------------------------------------ */

int
gs_store_origin_get(gs_store_t *self, const char *area, gs_origin_t *o)
{
    if (!self || !o || !gs_repl_area_ok(area))
        return GS_EINVAL;
    memset(o, 0, sizeof *o);
    snprintf(o->area, sizeof o->area, "%s", area);
    if (self->no_origins)
        return GS_ENOTFOUND;
    MDB_txn *txn;
    int rc = gs_rtxn_begin(self, &txn);
    if (rc)
        return rc;
    MDB_val k = { strlen(area), (void *) area }, v;
    rc = mdb_get(txn, self->db[GS_DB_ORIGINS], &k, &v);
    if (rc == 0 && s_origin_get(area, &v, o))
        rc = MDB_CORRUPTED;
    gs_rtxn_end(self, &txn);
    if (rc == MDB_NOTFOUND)
        return GS_ENOTFOUND;
    return rc ? gs_store_err(rc, "read origins") : 0;
}

typedef struct s_list {
    gs_origin_fn *fn;               /* the caller's callback */
    void *arg;                      /* and its argument */
} s_list_t;

static int
s_list_one(void *arg, MDB_txn *txn, const MDB_val *k, const MDB_val *v, int *user)
{
    (void) txn;
    s_list_t *l = arg;
    char area[GS_GRID_LEN + 1];
    if (k->mv_size > GS_GRID_LEN)
        return MDB_CORRUPTED;
    memcpy(area, k->mv_data, k->mv_size);
    area[k->mv_size] = 0;
    gs_origin_t o;
    if (s_origin_get(area, v, &o))
        return MDB_CORRUPTED;
    *user = l->fn(l->arg, &o);
    return 0;
}

int
gs_store_origins(gs_store_t *self, gs_origin_fn *fn, void *arg)
{
    if (!self || !fn)
        return GS_EINVAL;
    if (self->no_origins)
        return 0;
    s_list_t l = { fn, arg };
    return gs_scan(self, GS_DB_ORIGINS, NULL, s_list_one, &l, "read origins");
}

/*
 * gs_store_verify: recompute every index from the records and the change
 * log and compare with what is stored. Used by gridctl verify, after
 * restores, and by the crash tests after each kill.
 *
 * Where it sits: beside the write path, sharing its codecs
 * (gs_store_codec.c), so a disagreement means stored state drifted, not
 * that two implementations differ. Runs in one read transaction; cost is
 * one pass over the log and one over the records (each record unpacked).
 */
#include "gs_store_digest.h"
#include "gs_store_int.h"
#include "gs_store_idem.h"
#include "gs_store_log.h"
#include "gs_store_persons.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sodium.h>

#define S_MAX_REPORTS 1000

typedef struct s_ver {
    gs_store_t *st;
    MDB_txn *txn;
    gs_report_fn *report;
    void *arg;
    uint64_t problems;              /* problems found */
    gs_wbuf_t buf;                  /* scratch for the content hash */
    gs_wbuf_t ev;                   /* a compressed log entry's event, decoded */
    gs_smap_t cells;                /* grid -> counts from records, last seq from log */
    gs_smap_t chain;                /* level prefix -> last seq from log */
    uint64_t events;                /* log entries */
    uint64_t records;               /* records entries */
    uint64_t natkeys;               /* natural keys the records imply */
    uint64_t persons;               /* person index entries (cells) the records imply */
    char pgrid[GS_GRID_LEN + 1];    /* the cell whose person tags are being collected */
    uint32_t *ptags;                /* its active records' tags so far */
    size_t pn, pcap;                /* used and allocated */
    uint64_t digests;               /* digest prefixes the records imply */
} s_ver_t;

static void s_problem(s_ver_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_persons_cell(s_ver_t *v, const char *grid);

static void
s_problem(s_ver_t *v, const char *fmt, ...)
{
    v->problems++;
    if (!v->report || v->problems > S_MAX_REPORTS)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (v->problems == S_MAX_REPORTS)
        snprintf(line, sizeof line, "too many problems: only the first %d are reported",
                 S_MAX_REPORTS);
    v->report(v->arg, line);
}

static uint64_t
s_count(s_ver_t *v, int db)
{
    MDB_stat ms;
    return mdb_stat(v->txn, v->st->db[db], &ms) == 0 ? ms.ms_entries : 0;
}

/* ---- The change log ----------------------------------------------------------- */

static int
s_check_log(s_ver_t *v)
{
    gs_store_t *st = v->st;
    MDB_cursor *c;
    int rc = mdb_cursor_open(v->txn, st->db[GS_DB_LOG], &c);
    if (rc)
        return rc;
    uint64_t expect = 1, last = 0;
    MDB_val k, val;
    for (rc = mdb_cursor_get(c, &k, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &val, MDB_NEXT)) {
        uint64_t seq;
        if (gs_key_log_parse(k.mv_data, k.mv_size, &seq)) {
            s_problem(v, "log: key of %zu bytes", k.mv_size);
            continue;
        }
        if (seq != expect)
            s_problem(v, "log: seq %llu follows %llu (hole or disorder)",
                      (unsigned long long) seq, (unsigned long long) last);
        expect = seq + 1;
        last = seq;
        v->events++;
        gs_event_fields_t f;
        gs_log_val_t lv;
        int drc = gs_log_val_get(&val, &v->ev, &lv);
        if (drc == GS_ENOMEM)
            return ENOMEM;
        if (drc) {
            s_problem(v, "log %llu: %s", (unsigned long long) seq, gs_store_errdetail());
            continue;
        }
        if (gs_event_scan(lv.ev, lv.len, &f)) {
            s_problem(v, "log %llu: value does not decode", (unsigned long long) seq);
            continue;
        }
        const char *grid = lv.grid;
        if (f.seq != seq)
            s_problem(v, "log %llu: event says seq %llu", (unsigned long long) seq,
                      (unsigned long long) f.seq);
        if (f.grid_len != GS_GRID_LEN || memcmp(f.grid, grid, GS_GRID_LEN) != 0) {
            s_problem(v, "log %llu: header grid %.15s differs from the event's",
                      (unsigned long long) seq, grid);
            continue;
        }
        uint64_t back = lv.back;
        if (back >= seq)
            s_problem(v, "log %llu: record back pointer %llu is not earlier",
                      (unsigned long long) seq, (unsigned long long) back);
        if (f.n_prev_seq != GS_LEVELS)
            s_problem(v, "log %llu: %zu prev_seq entries, expected %d",
                      (unsigned long long) seq, f.n_prev_seq, GS_LEVELS);
        for (int l = 0; l < GS_LEVELS; l++) {
            char key[16];
            size_t kl = gs_key_chain(grid, l, key);
            gs_smap_ent_t *e = gs_smap_get(&v->chain, key, kl, NULL);
            if (!e)
                return ENOMEM;
            if (f.n_prev_seq == GS_LEVELS && f.prev_seq[l] != e->u)
                s_problem(v, "log %llu: prev_seq[%d] is %llu, the previous event under "
                          "%.*s is %llu", (unsigned long long) seq, l,
                          (unsigned long long) f.prev_seq[l], (int) kl, key,
                          (unsigned long long) e->u);
            e->u = seq;
        }
        gs_smap_ent_t *ce = gs_smap_get(&v->cells, grid, GS_GRID_LEN, NULL);
        if (!ce)
            return ENOMEM;
        ce->cell.last_seq = seq;
        uint8_t ck[GS_CLK_LEN];
        gs_key_cell_log(ck, grid, seq);
        MDB_val ckv = { sizeof ck, ck }, cv;
        if (mdb_get(v->txn, st->db[GS_DB_CELL_LOG], &ckv, &cv) != 0)
            s_problem(v, "cell_log: no entry for seq %llu in %.15s",
                      (unsigned long long) seq, grid);
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND)
        return rc;
    if (s_count(v, GS_DB_CELL_LOG) != v->events)
        s_problem(v, "cell_log has %llu entries, the log %llu",
                  (unsigned long long) s_count(v, GS_DB_CELL_LOG),
                  (unsigned long long) v->events);
    MDB_val hk = { 8, "head_seq" }, hv;
    uint64_t head = 0;
    if (mdb_get(v->txn, st->db[GS_DB_META], &hk, &hv) == 0 && hv.mv_size == 8)
        head = gs_le64_get(hv.mv_data);
    if (head != last)
        s_problem(v, "meta head_seq %llu, last log seq %llu", (unsigned long long) head,
                  (unsigned long long) last);

    /* chain heads: derived from cells (checked with them) since format 4,
     * whose table stays empty; an older store's table is emptied by its
     * upgrade and not read by this build */
    if (st->persons_sets && s_count(v, GS_DB_CHAIN) != 0)
        s_problem(v, "chain has %llu entries, a format %u store keeps none",
                  (unsigned long long) s_count(v, GS_DB_CHAIN), st->format);
    return 0;
}

/* ---- Records and their indexes --------------------------------------------------- */

static void
s_check_record(s_ver_t *v, gs_arena_t *arena, const MDB_val *k, const MDB_val *val)
{
    gs_store_t *st = v->st;
    v->records++;
    char grid[GS_GRID_LEN + 1], id[GS_ID_MAX + 1], kb;
    if (gs_key_record_parse(k->mv_data, k->mv_size, grid, &kb, id)) {
        s_problem(v, "records: key of %zu bytes", k->mv_size);
        return;
    }
    size_t il = strlen(id);
    gs_rec_hdr_t h;
    if (gs_rec_hdr_get(val, &h)) {
        s_problem(v, "record %s/%c/%s: header damaged", grid, kb, id);
        return;
    }
    if (val->mv_size != gs_rec_data_off(&h)) {
        s_problem(v, "record %s/%c/%s: value of %zu bytes, header says %zu", grid, kb, id,
                  val->mv_size, gs_rec_data_off(&h));
        return;
    }
    const uint8_t *data;
    size_t len;
    if (gs_rec_data(st, v->txn, &h, &v->ev, &data, &len)) {
        s_problem(v, "record %s/%c/%s: its event %llu is missing or has no record",
                  grid, kb, id, (unsigned long long) h.seq);
        return;
    }
    Gridsync__V1__Record *rec =
        gridsync__v1__record__unpack(gs_arena_allocator(arena), len, data);
    if (!rec) {
        s_problem(v, "record %s/%c/%s: does not decode", grid, kb, id);
        return;
    }
    const char *rg = gs_record_grid(rec), *rid = gs_record_id(rec);
    if (gs_kind_byte(gs_record_kind(rec)) != kb || h.kind != (uint8_t) kb ||
        !rg || strcmp(rg, grid) != 0 || !rid || strcmp(rid, id) != 0) {
        s_problem(v, "record %s/%c/%s: key disagrees with its content", grid, kb, id);
        return;
    }
    uint8_t hash[16];
    if (gs_content_hash_packed(data, len, hash) != 0 || memcmp(hash, h.hash, 16) != 0)
        s_problem(v, "record %s/%c/%s: content hash differs", grid, kb, id);
    const Gridsync__V1__RecordMeta *meta = gs_record_meta(rec);
    int status = meta ? (int) meta->status : 0;
    if (status != h.status)
        s_problem(v, "record %s/%c/%s: status %d in header, %d in record", grid, kb, id,
                  h.status, status);
    uint32_t people = gs_record_people(rec);
    if (people != h.n_people)
        s_problem(v, "record %s/%c/%s: %u people in header, %u in record", grid, kb, id,
                  h.n_people, people);

    /* person refs and the persons index */
    size_t maxr = gs_record_people_max(rec);
    gs_ref_t *refs = maxr ? gs_arena_alloc(arena, maxr * sizeof *refs) : NULL;
    size_t nr = 0;
    int rrc = refs ? gs_record_refs(st, rec, refs, maxr, &nr) : 0;
    if (rrc) {
        s_problem(v, "record %s/%c/%s: its person refs could not be computed (%s)", grid, kb,
                  id, gs_store_strerror(rrc));
    } else if (nr != h.n_refs) {
        s_problem(v, "record %s/%c/%s: %u person refs in header, %zu in record", grid, kb,
                  id, h.n_refs, nr);
    } else {
        for (size_t i = 0; i < nr; i++) {
            gs_ref_t r;
            int full = gs_rec_ref_get(val->mv_data, &h, i, &r);
            if (memcmp(r.hmac, refs[i].hmac, full ? 16 : GS_PERSON_TAG) || r.role != refs[i].role)
                s_problem(v, "record %s/%c/%s: person ref %zu differs", grid, kb, id, i);
        }
    }
    if (status == GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_ACTIVE && st->persons_sets) {
        if (strcmp(grid, v->pgrid) != 0)
            s_persons_cell(v, grid);
        if (v->pn + nr > v->pcap) {
            size_t nc = v->pcap ? v->pcap * 2 : 256;
            while (nc < v->pn + nr)
                nc *= 2;
            uint32_t *nt = realloc(v->ptags, nc * sizeof *nt);
            if (!nt) {
                s_problem(v, "record %s/%c/%s: out of memory for its person tags", grid, kb, id);
                nr = 0;
            } else {
                v->ptags = nt;
                v->pcap = nc;
            }
        }
        for (size_t i = 0; i < nr; i++)
            v->ptags[v->pn++] = gs_persons_tag(refs[i].hmac);
    }

    /* ids */
    uint8_t ik[GS_IK_MAX], want[GS_IV_MAX];
    /* the grid alone; format 4 and older repeated the id (layouts are
     * checked with ids) */
    size_t wl = gs_val_id(want, grid, id, il);
    MDB_val ikv = { gs_key_id(ik, kb, id, il), ik }, iv;
    if (mdb_get(v->txn, st->db[GS_DB_IDS], &ikv, &iv) != 0 ||
        (iv.mv_size != GS_GRID_LEN && iv.mv_size != wl) ||
        memcmp(iv.mv_data, want, iv.mv_size) != 0)
        s_problem(v, "ids: no canonical entry for record %s/%c/%s", grid, kb, id);

    /* natural key */
    uint8_t nk[GS_NATKEY_MAX + 2];
    size_t nkl = gs_natkey(rec, nk);
    if (!!nkl != !!(h.flags & GS_RF_NATKEY))
        s_problem(v, "record %s/%c/%s: natural-key flag wrong", grid, kb, id);
    if (nkl) {
        v->natkeys++;
        MDB_val nkv = { nkl, nk }, nv;
        uint8_t nwant[GS_IK_MAX];
        size_t nwl = gs_key_id(nwant, kb, id, il);    /* a natkeys value is an ids key */
        if (mdb_get(v->txn, st->db[GS_DB_NATKEYS], &nkv, &nv) != 0 || nv.mv_size != nwl ||
            memcmp(nv.mv_data, nwant, nwl) != 0)
            s_problem(v, "natkeys: record %s/%c/%s's natural key does not lead to it",
                      grid, kb, id);
    }

    /* counts */
    gs_smap_ent_t *ce = gs_smap_get(&v->cells, grid, GS_GRID_LEN, NULL);
    if (ce)
        gs_cell_add(&ce->cell, kb, status, people, +1);

    /* the event that made this version */
    uint8_t sk[GS_LK_LEN];
    gs_key_log(sk, h.seq);
    MDB_val skv = { GS_LK_LEN, sk }, sv;
    gs_event_fields_t f;
    gs_log_val_t lv;
    if (mdb_get(v->txn, st->db[GS_DB_LOG], &skv, &sv) != 0 || gs_log_val_get(&sv, &v->ev, &lv) ||
        gs_event_scan(lv.ev, lv.len, &f) ||
        f.version != h.version || f.record_key_len != il ||
        memcmp(f.record_key, id, il) != 0 || memcmp(sv.mv_data, grid, GS_GRID_LEN) != 0)
        s_problem(v, "record %s/%c/%s: version %llu has no matching event at seq %llu",
                  grid, kb, id, (unsigned long long) h.version, (unsigned long long) h.seq);
}

/* Compare the person index entry of the cell collected so far with its
 * active records' tags, then start collecting grid's ("" to finish). */
static void
s_persons_cell(s_ver_t *v, const char *grid)
{
    if (v->pgrid[0]) {
        MDB_val k = { GS_GRID_LEN, v->pgrid }, pv = { 0, NULL };
        int rc = mdb_get(v->txn, v->st->db[GS_DB_PERSONS], &k, &pv);
        if (v->pn)
            v->persons++;
        if ((rc != 0 && v->pn) || (rc == 0 && gs_persons_differs(pv.mv_data, pv.mv_size,
                                                                  v->ptags, v->pn)))
            s_problem(v, "persons: the entry of cell %s does not hold exactly the tags of "
                      "its active records' %zu person refs", v->pgrid, v->pn);
    }
    snprintf(v->pgrid, sizeof v->pgrid, "%s", grid);
    v->pn = 0;
}

static int
s_check_records(s_ver_t *v)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(v->txn, v->st->db[GS_DB_RECORDS], &c);
    if (rc)
        return rc;
    gs_arena_t *arena = gs_arena_new(64 * 1024);
    if (!arena) {
        mdb_cursor_close(c);
        return ENOMEM;
    }
    MDB_val k, val;
    for (rc = mdb_cursor_get(c, &k, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &val, MDB_NEXT)) {
        gs_arena_reset(arena);
        s_check_record(v, arena, &k, &val);
    }
    gs_arena_destroy(&arena);
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND)
        return rc;
    uint64_t n = s_count(v, GS_DB_NATKEYS);
    if (n != v->natkeys)
        s_problem(v, "natkeys has %llu entries, the records imply %llu",
                  (unsigned long long) n, (unsigned long long) v->natkeys);
    if (!v->st->persons_sets)
        return 0;   /* read-only look at a store of format 3 or older */
    s_persons_cell(v, "");
    n = s_count(v, GS_DB_PERSONS);
    if (n != v->persons)
        s_problem(v, "persons has %llu entries, the cells with active records naming "
                  "persons are %llu", (unsigned long long) n, (unsigned long long) v->persons);
    return 0;
}

static int
s_check_ids(s_ver_t *v)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(v->txn, v->st->db[GS_DB_IDS], &c);
    if (rc)
        return rc;
    uint64_t canon = 0;
    MDB_val k, val;
    for (rc = mdb_cursor_get(c, &k, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &val, MDB_NEXT)) {
        const char *kp = k.mv_data;
        char grid[GS_GRID_LEN + 1], cp[GS_ID_MAX + 1];
        if (gs_val_id_parse(k.mv_data, k.mv_size, val.mv_data, val.mv_size, grid, cp)) {
            s_problem(v, "ids: damaged entry");
            continue;
        }
        size_t il = k.mv_size - 1, cl = strlen(cp);
        if (il == cl && memcmp(kp + 1, cp, il) == 0) {
            canon++;
            /* the grid alone; format 4 and older repeated the id (a
             * read-only look at one before its upgrade) */
            if (val.mv_size != GS_GRID_LEN && v->st->format_current)
                s_problem(v, "ids: canonical entry %c/%.*s has the layout of another format",
                          kp[0], (int) il, kp + 1);
            uint8_t rk[GS_RK_MAX];
            MDB_val rkv = { gs_key_record(rk, grid, kp[0], kp + 1, il), rk }, rv;
            if (mdb_get(v->txn, v->st->db[GS_DB_RECORDS], &rkv, &rv) != 0)
                s_problem(v, "ids: %c/%.*s points to %s, where there is no record",
                          kp[0], (int) il, kp + 1, grid);
        } else {
            uint8_t ck[GS_IK_MAX];
            char cg[GS_GRID_LEN + 1], cc[GS_ID_MAX + 1];
            MDB_val ckv = { gs_key_id(ck, kp[0], cp, cl), ck }, cv;
            if (mdb_get(v->txn, v->st->db[GS_DB_IDS], &ckv, &cv) != 0 ||
                gs_val_id_parse(ckv.mv_data, ckv.mv_size, cv.mv_data, cv.mv_size, cg, cc) ||
                strcmp(cc, cp) != 0)
                s_problem(v, "ids: alias %c/%.*s points to %s, which is not a record",
                          kp[0], (int) il, kp + 1, cp);
        }
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND)
        return rc;
    if (canon != v->records)
        s_problem(v, "ids has %llu canonical entries for %llu records",
                  (unsigned long long) canon, (unsigned long long) v->records);
    return 0;
}

static int
s_check_cells(s_ver_t *v)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(v->txn, v->st->db[GS_DB_CELLS], &c);
    if (rc)
        return rc;
    MDB_val k, val;
    for (rc = mdb_cursor_get(c, &k, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &val, MDB_NEXT)) {
        gs_cell_meta_t got, want = { 0 };
        if (k.mv_size != GS_GRID_LEN || gs_cell_get(val.mv_data, val.mv_size, &got)) {
            s_problem(v, "cells: damaged entry");
            continue;
        }
        gs_smap_ent_t *e = gs_smap_find(&v->cells, k.mv_data, GS_GRID_LEN);
        if (e) {
            want = e->cell;
            e->dirty = 1;   /* seen */
        }
        if (got.households != want.households || got.persons != want.persons ||
            got.rentals != want.rentals || got.tenants != want.tenants ||
            got.voided != want.voided || got.organisations != want.organisations ||
            got.employees != want.employees || got.incidents != want.incidents)
            s_problem(v, "cells %.15s: counts h=%u p=%u r=%u t=%u o=%u e=%u i=%u v=%u, records "
                      "say h=%u p=%u r=%u t=%u o=%u e=%u i=%u v=%u", (const char *) k.mv_data,
                      got.households, got.persons, got.rentals, got.tenants, got.organisations,
                      got.employees, got.incidents, got.voided, want.households, want.persons,
                      want.rentals, want.tenants, want.organisations, want.employees,
                      want.incidents, want.voided);
        if (got.last_seq != want.last_seq)
            s_problem(v, "cells %.15s: last_seq %llu, the log says %llu",
                      (const char *) k.mv_data, (unsigned long long) got.last_seq,
                      (unsigned long long) want.last_seq);
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND)
        return rc;
    for (size_t i = 0; i < v->cells.cap; i++) {
        gs_smap_ent_t *e = &v->cells.ents[i];
        if (e->used && !e->dirty)
            s_problem(v, "cells: no entry for %.15s", e->key);
    }
    return 0;
}

static int
s_check_idem(s_ver_t *v)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(v->txn, v->st->db[GS_DB_IDEM_FIFO], &c);
    if (rc)
        return rc;
    MDB_val k, val;
    uint64_t last = 0;
    for (rc = mdb_cursor_get(c, &k, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &val, MDB_NEXT)) {
        int64_t created;
        const uint8_t *idk;
        size_t idkl;
        if (k.mv_size != GS_FK_LEN || val.mv_size <= 8 ||
            gs_val_idem_fifo_parse(val.mv_data, val.mv_size, &created, &idk, &idkl)) {
            s_problem(v, "idem_fifo: damaged entry");
            continue;
        }
        last = gs_be64_get(k.mv_data);
        MDB_val ik = { idkl, (void *) idk }, iv;
        if (mdb_get(v->txn, v->st->db[GS_DB_IDEM], &ik, &iv) != 0 || iv.mv_size < GS_IDEM_HDR ||
            gs_le64_get((const uint8_t *) iv.mv_data + 8) != last) {
            s_problem(v, "idem_fifo %llu: no matching idempotency entry",
                      (unsigned long long) last);
            continue;
        }
        /* the key is device NUL upload; the Ack expands (format 4) */
        const char *nul = memchr(idk, 0, idkl);
        char up[GS_ID_MAX + 1];
        size_t ul = nul ? idkl - (size_t) (nul - (const char *) idk) - 1 : 0;
        if (v->st->persons_sets && nul && ul <= GS_ID_MAX) {
            memcpy(up, nul + 1, ul);
            up[ul] = 0;
            if (gs_idem_check(iv.mv_data, iv.mv_size, up))
                s_problem(v, "idem_fifo %llu: the idempotency entry's answer is damaged",
                          (unsigned long long) last);
        }
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND)
        return rc;
    if (s_count(v, GS_DB_IDEM) != s_count(v, GS_DB_IDEM_FIFO))
        s_problem(v, "idem has %llu entries, idem_fifo %llu",
                  (unsigned long long) s_count(v, GS_DB_IDEM),
                  (unsigned long long) s_count(v, GS_DB_IDEM_FIFO));
    MDB_val fk = { 14, "idem_fifo_next" }, fv;
    uint64_t next = 0;
    if (mdb_get(v->txn, v->st->db[GS_DB_META], &fk, &fv) == 0 && fv.mv_size == 8)
        next = gs_le64_get(fv.mv_data);
    if (last && next <= last)
        s_problem(v, "meta idem_fifo_next %llu is not past the last entry %llu",
                  (unsigned long long) next, (unsigned long long) last);
    return 0;
}

/* ---- Digests ---------------------------------------------------------------------- */

/* A 16-byte digest as 32 lower-case hex digits. */
static void
s_hex(const uint8_t *d, char out[33])
{
    sodium_bin2hex(out, 33, d, 16);
}

/* One recomputed prefix against its stored digest. */
static int
s_digest_emit(void *arg, int level, const char *prefix, const uint8_t dig[16], uint64_t count)
{
    s_ver_t *v = arg;
    char grid[GS_GRID_LEN] = { 0 };
    memcpy(grid, prefix, strlen(prefix));
    uint8_t kb[GS_DGK_MAX];
    MDB_val k = { gs_key_digest(kb, grid, level), kb }, val;
    v->digests++;
    int rc = mdb_get(v->txn, v->st->db[GS_DB_DIGESTS], &k, &val);
    if (rc == MDB_NOTFOUND) {
        s_problem(v, "digests '%s': missing; the records give %llu records", prefix,
                  (unsigned long long) count);
        return 0;
    }
    if (rc)
        return rc;
    char want[33], got[33];
    s_hex(dig, want);
    if (val.mv_size != GS_DIGEST_VAL) {
        s_problem(v, "digests '%s': value of %zu bytes", prefix, val.mv_size);
        return 0;
    }
    uint64_t n = gs_le64_get((const uint8_t *) val.mv_data + 16);
    if (n != count || memcmp(val.mv_data, dig, 16) != 0) {
        s_hex(val.mv_data, got);
        s_problem(v, "digests '%s': stored %s with %llu records, the records give %s with %llu",
                  prefix, got, (unsigned long long) n, want, (unsigned long long) count);
    }
    return 0;
}

/* Every digest recomputed from the records; stored prefixes with no
 * records are found by a second pass only when the counts say so. */
static int
s_check_digests(s_ver_t *v)
{
    if (!v->st->digests_ready)
        return 0;   /* read-only look at a store made before digests */
    uint64_t recs = 0, skipped = 0;
    int rc = gs_digest_recompute(v->st, v->txn, s_digest_emit, v, &recs, &skipped);
    if (rc)
        return rc;
    if (s_count(v, GS_DB_DIGESTS) == v->digests)
        return 0;
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(v->txn, v->st->db[GS_DB_DIGESTS], &c)))
        return rc;
    MDB_cursor *rc2;
    if ((rc = mdb_cursor_open(v->txn, v->st->db[GS_DB_RECORDS], &rc2))) {
        mdb_cursor_close(c);
        return rc;
    }
    MDB_val k, val;
    for (rc = mdb_cursor_get(c, &k, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &val, MDB_NEXT)) {
        int level;
        char prefix[GS_GRID_LEN + 1];
        if (gs_key_digest_parse(k.mv_data, k.mv_size, &level, prefix)) {
            s_problem(v, "digests: damaged key of %zu bytes", k.mv_size);
            continue;
        }
        size_t pl = strlen(prefix);
        MDB_val rk = { pl, prefix }, rv;
        int r = pl ? mdb_cursor_get(rc2, &rk, &rv, MDB_SET_RANGE)
                   : mdb_cursor_get(rc2, &rk, &rv, MDB_FIRST);
        if (r == MDB_NOTFOUND || (r == 0 && (rk.mv_size < pl || memcmp(rk.mv_data, prefix, pl))))
            s_problem(v, "digests '%s': stored for a prefix with no records", prefix);
        else if (r)
            rc = r;
        if (rc)
            break;
    }
    mdb_cursor_close(rc2);
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int
gs_store_verify(gs_store_t *self, gs_report_fn *report, void *arg, uint64_t *problems)
{
    s_ver_t v;
    memset(&v, 0, sizeof v);
    v.st = self;
    v.report = report;
    v.arg = arg;
    gs_wbuf_init(&v.buf);
    gs_wbuf_init(&v.ev);
    gs_smap_init(&v.cells);
    gs_smap_init(&v.chain);
    if (problems)
        *problems = 0;
    if (!self->have_secret) {
        gs_store_detail("verify needs secret.key to recompute the person index");
        return GS_ENOTFOUND;
    }
    int rc = gs_rtxn_begin(self, &v.txn);
    if (rc)
        return rc;
    if (!(rc = s_check_log(&v)) && !(rc = s_check_records(&v)) && !(rc = s_check_ids(&v)) &&
        !(rc = s_check_cells(&v)) && !(rc = s_check_idem(&v)))
        rc = s_check_digests(&v);
    gs_rtxn_end(self, &v.txn);
    gs_wbuf_deinit(&v.buf);
    gs_wbuf_deinit(&v.ev);
    gs_smap_deinit(&v.cells);
    gs_smap_deinit(&v.chain);
    free(v.ptags);
    if (problems)
        *problems = v.problems;
    if (rc)
        return gs_store_err(rc, "verify");
    return v.problems ? GS_ECORRUPT : 0;
}

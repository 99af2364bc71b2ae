/*
 * gs_sim: a grid's working day as uploads with expected results. See
 * gs_sim.h for the script; this file keeps the dedup rules of the store
 * (docs/store.md) in the form "what must come back".
 */
#include "gs_sim.h"
#include "gs_gen_incident.h"

#include <stdio.h>
#include <string.h>

#include "gs_validate.h"

#define S_HOUR_MS 3600000LL

/* splitmix64: a well-mixed hash of a counter. */
static uint64_t
s_mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A draw in 0..9999 (basis points) for one (tag, index) under the seed:
 * the same for the same inputs in every run and thread. */
static uint32_t
s_draw(uint64_t seed, uint64_t tag, uint64_t index)
{
    return (uint32_t) (s_mix(s_mix(seed ^ (tag << 56)) ^ index) % 10000);
}

static uint32_t
s_bp(double pct)
{
    return (uint32_t) (pct * 100.0 + 0.5);
}

void
gs_sim_opts_init(gs_sim_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->run_id = "run";
    o->batch = 50;
    o->retransmit_pct = 3;
    o->lost_ack_pct = 2;
    o->invalid_pct = 2;
    o->recollect_pct = 5;
    o->new_id_pct = 2;
    o->conflict_pct = 1;
    o->twins_pct = 0.3;
}

int
gs_sim_opts_check(const gs_sim_opts_t *o, char *msg, size_t size)
{
    const char *r = o->run_id;
    size_t rl = r ? strlen(r) : 0;
    if (rl == 0 || rl > 24 || strspn(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789._-") != rl) {
        snprintf(msg, size, "run id must be 1..24 characters of A-Z a-z 0-9 . _ -");
        return -1;
    }
    if (o->batch < 2 || o->batch > 1000) {
        snprintf(msg, size, "batch must be 2..1000 records, not %u", o->batch);
        return -1;
    }
    const double shares[] = { o->retransmit_pct, o->lost_ack_pct, o->invalid_pct,
                              o->recollect_pct, o->new_id_pct, o->conflict_pct,
                              o->twins_pct };
    for (size_t i = 0; i < sizeof shares / sizeof shares[0]; i++)
        if (!(shares[i] >= 0 && shares[i] <= 100)) {
            snprintf(msg, size, "noise shares are percentages in 0..100");
            return -1;
        }
    if (s_bp(o->retransmit_pct) + s_bp(o->lost_ack_pct) > 10000) {
        snprintf(msg, size, "retransmit and lost-ack shares add up to more than 100%%");
        return -1;
    }
    if (s_bp(o->invalid_pct) + s_bp(o->recollect_pct) + s_bp(o->new_id_pct) +
            s_bp(o->conflict_pct) > 10000) {
        snprintf(msg, size,
                 "invalid, recollect, new-id and conflict shares add up to more than 100%%");
        return -1;
    }
    return 0;
}

void
gs_sim_device_id(const char *grid_code, int second, char *out, size_t size)
{
    snprintf(out, size, "dev-%s%s", grid_code, second ? "-b" : "");
}

const char *
gs_sim_status_name(int status)
{
    static const char *names[] = { "UNSPECIFIED", "ACCEPTED", "UNCHANGED",
                                   "MERGED", "CONFLICT", "REJECTED" };
    return status >= 0 && status < 6 ? names[status] : "UNKNOWN";
}

/* ---- Records ------------------------------------------------------------------ */

/* The people a record names, in the order validation visits them. */
static size_t
s_persons(Gridsync__V1__Record *rec, Gridsync__V1__Person **out, size_t max)
{
    size_t n = 0;
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD) {
        Gridsync__V1__Household *h = rec->household;
        for (size_t i = 0; i < h->n_members && n < max; i++)
            out[n++] = h->members[i];
    } else if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_RENTAL) {
        Gridsync__V1__RentalHousing *r = rec->rental;
        if (r->landlord && r->landlord->party_case == GRIDSYNC__V1__LANDLORD__PARTY_PERSON &&
            n < max)
            out[n++] = r->landlord->person;
        for (size_t i = 0; i < r->n_leases && n < max; i++)
            if (r->leases[i]->tenant)
                out[n++] = r->leases[i]->tenant;
    } else if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION) {
        Gridsync__V1__OrganisationUnit *o = rec->organisation;
        if (o->legal_representative && n < max)
            out[n++] = o->legal_representative;
        for (size_t i = 0; i < o->n_employees && n < max; i++)
            out[n++] = o->employees[i];
    }
    return n;
}

/* Household members plus tenants: the people a district counts (an
 * organisation's employees are counted where they live). */
static uint32_t
s_people(const Gridsync__V1__Record *rec)
{
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD)
        return (uint32_t) rec->household->n_members;
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_RENTAL)
        return (uint32_t) rec->rental->n_leases;
    return 0;
}

/* The first person with an 18-character resident ID number, or NULL. */
static Gridsync__V1__Person *
s_first_resident(Gridsync__V1__Record *rec)
{
    Gridsync__V1__Person *ps[64];
    size_t n = s_persons(rec, ps, 64);
    for (size_t i = 0; i < n; i++)
        if (ps[i]->id_type == GRIDSYNC__V1__ID_TYPE__ID_TYPE_RESIDENT_CARD &&
            ps[i]->id_number && strlen(ps[i]->id_number) == 18)
            return ps[i];
    return NULL;
}

/* The store merges a record into another only through its natural key: a
 * standard address code, or a room within the grid. */
static int
s_has_natkey(const Gridsync__V1__Record *rec)
{
    const char *code = NULL;
    const Gridsync__V1__RoomAddress *room = NULL;
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD) {
        code = rec->household->address_code;
        room = rec->household->room;
    } else if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_RENTAL) {
        code = rec->rental->address_code;
        room = rec->rental->room;
    } else if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION) {
        code = rec->organisation->address_code;
        room = rec->organisation->room;
    }
    return (code && *code) || (room && room->room && *room->room);
}

static char **
s_id_slot(Gridsync__V1__Record *rec)
{
    switch (rec->body_case) {
    case GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD: return &rec->household->household_id;
    case GRIDSYNC__V1__RECORD__BODY_ORGANISATION: return &rec->organisation->org_id;
    case GRIDSYNC__V1__RECORD__BODY_INCIDENT: return &rec->incident->incident_id;
    default: return &rec->rental->house_id;
    }
}

static char **
s_address_slot(Gridsync__V1__Record *rec)
{
    switch (rec->body_case) {
    case GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD: return &rec->household->address;
    case GRIDSYNC__V1__RECORD__BODY_ORGANISATION: return &rec->organisation->address;
    case GRIDSYNC__V1__RECORD__BODY_INCIDENT: return &rec->incident->address;
    default: return &rec->rental->address;
    }
}

/* A private copy of the record's metadata: the generator's strings may be
 * shared, so records are changed by replacing pointers, never in place. */
static Gridsync__V1__RecordMeta *
s_meta_own(gs_arena_t *a, Gridsync__V1__Record *rec)
{
    Gridsync__V1__RecordMeta **slot =
        rec->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD      ? &rec->household->meta
        : rec->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION ? &rec->organisation->meta
        : rec->body_case == GRIDSYNC__V1__RECORD__BODY_INCIDENT     ? &rec->incident->meta
                                                                    : &rec->rental->meta;
    Gridsync__V1__RecordMeta *m = gs_arena_alloc(a, sizeof *m);
    if (!m)
        return NULL;
    if (*slot)
        *m = **slot;
    else
        gridsync__v1__record_meta__init(m);
    *slot = m;
    return m;
}

static char *
s_concat(gs_arena_t *a, const char *x, const char *y)
{
    size_t xl = x ? strlen(x) : 0, yl = strlen(y);
    char *s = gs_arena_alloc(a, xl + yl + 1);
    if (!s)
        return NULL;
    if (xl)
        memcpy(s, x, xl);
    memcpy(s + xl, y, yl + 1);
    return s;
}

/* Corrupt the check character of a resident ID number: any other
 * character of the check alphabet fails GB 11643 and nothing else. */
static int
s_corrupt_id(gs_arena_t *a, Gridsync__V1__Person *p)
{
    static const char alphabet[] = "10X98765432";
    char *id = gs_arena_strdup(a, p->id_number);
    if (!id)
        return -1;
    const char *at = strchr(alphabet, id[17]);
    size_t k = at && id[17] ? (size_t) (at - alphabet) : 0;
    id[17] = alphabet[(k + 1) % 11];
    p->id_number = id;
    return 0;
}

/* Corrupt the check character of an organisation's USCC: the next
 * character of the alphabet fails GB 32100 and nothing else. */
static int
s_corrupt_uscc(gs_arena_t *a, Gridsync__V1__OrganisationUnit *o)
{
    static const char alphabet[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
    char *u = gs_arena_strdup(a, o->uscc);
    if (!u)
        return -1;
    const char *at = strchr(alphabet, u[17]);
    size_t k = at && u[17] ? (size_t) (at - alphabet) : 0;
    u[17] = alphabet[(k + 1) % (sizeof alphabet - 1)];
    o->uscc = u;
    return 0;
}

/* ---- Plan -------------------------------------------------------------------- */

/* State while one grid's plan is built. */
typedef struct s_plan {
    const gs_sim_opts_t *o;
    gs_arena_t *a;
    uint32_t grid;                  /* grid index */
    const char *code;               /* its 15-digit code */
    gs_sim_upload_t *ups;           /* uploads so far */
    size_t n_ups, cap_ups;          /* uploads made, room for */
    uint32_t ordinal;               /* uploads numbered within the grid */
    gs_sim_tally_t *tally;          /* may be NULL */
} s_plan_t;

/* Cut one phase's records into uploads of at most batch records. */
static int
s_phase(s_plan_t *p, int second_device, Gridsync__V1__Record **recs,
        gs_sim_expect_t *exps, const uint8_t *fresh, size_t n)
{
    const gs_sim_opts_t *o = p->o;
    char dev[GS_ID_MAX + 1];
    gs_sim_device_id(p->code, second_device, dev, sizeof dev);
    uint32_t lost = s_bp(o->lost_ack_pct), retx = s_bp(o->retransmit_pct);
    for (size_t at = 0; at < n; at += o->batch) {
        size_t k = n - at < o->batch ? n - at : o->batch;
        if (p->n_ups == p->cap_ups)
            return -1; /* sized by the caller; cannot happen */
        gs_sim_upload_t *u = &p->ups[p->n_ups++];
        memset(u, 0, sizeof *u);
        Gridsync__V1__Upload *up = gs_arena_alloc(p->a, sizeof *up);
        char uid[GS_ID_MAX + 1];
        uint32_t ord = ++p->ordinal;
        snprintf(uid, sizeof uid, "%s-%s-%u", o->run_id, p->code, ord);
        if (!up)
            return -1;
        gridsync__v1__upload__init(up);
        up->device_id = gs_arena_strdup(p->a, dev);
        up->upload_id = gs_arena_strdup(p->a, uid);
        if (!up->device_id || !up->upload_id)
            return -1;
        up->records = recs + at;
        up->n_records = k;
        u->up = up;
        u->expect = exps + at;
        uint32_t d = s_draw(o->seed, 'U', ((uint64_t) p->grid << 24) | ord);
        u->noise = d < lost ? GS_SIM_LOST_ACK : d < lost + retx ? GS_SIM_RETRANSMIT : GS_SIM_PLAIN;
        for (size_t i = 0; i < k; i++) {
            u->persons += s_people(recs[at + i]);
            u->fresh += fresh ? fresh[at + i] : 0;
        }
        if (p->tally) {
            p->tally->uploads++;
            p->tally->records += k;
            p->tally->retransmit += u->noise == GS_SIM_RETRANSMIT;
            p->tally->lost_ack += u->noise == GS_SIM_LOST_ACK;
            for (size_t i = 0; i < k; i++)
                p->tally->expected[exps[at + i].status]++;
        }
    }
    return 0;
}

static void
s_expect(gs_sim_expect_t *e, int status, int reason, uint64_t version, const char *key,
         int has_seq, int noise)
{
    e->status = status;
    e->reason = reason;
    e->version = version;
    e->record_key = key;
    e->has_seq = has_seq;
    e->noise = noise;
}

/* The index ranges of one grid's records. */
typedef struct s_ranges {
    uint32_t hf, hn;                /* households */
    uint32_t rf, rn;                /* rental units */
    uint32_t of, on;                /* organisations (on = 0 when left out) */
    uint32_t in;                    /* incidents (0 when left out), numbered in the grid */
    uint32_t grid;                  /* the grid, for the incidents */
    int64_t now_ms;                 /* for the incidents */
} s_ranges_t;

int
gs_sim_twin(const gs_sim_opts_t *o, const gs_gen_t *gen, uint32_t i, uint32_t *other)
{
    (void) gen;
    if (!o->twins_from)
        return 0;
    uint32_t n = gs_gen_household_count(o->twins_from);
    if (i >= n || s_draw(o->seed, 'T', i) >= s_bp(o->twins_pct))
        return 0;
    uint64_t off = s_mix(o->seed ^ 0x7477696e73ULL) % n;   /* "twins" */
    *other = (uint32_t) (((uint64_t) i + off) % n);
    return 1;
}

/* Household i with its planted person of another district, if any. */
static Gridsync__V1__Record *
s_household(const gs_sim_opts_t *o, const gs_gen_t *gen, uint32_t i, gs_arena_t *a)
{
    Gridsync__V1__Record *r = gs_gen_household(gen, i, a);
    uint32_t other;
    if (!r || !gs_sim_twin(o, gen, i, &other))
        return r;
    Gridsync__V1__Record *there = gs_gen_household(o->twins_from, other, a);
    if (!there || !there->household->n_members)
        return NULL;
    Gridsync__V1__Household *h = r->household, *th = there->household;
    Gridsync__V1__Person *head = th->members[0];
    for (size_t k = 0; k < th->n_members; k++)
        if (th->members[k]->relation == GRIDSYNC__V1__RELATION__RELATION_HEAD)
            head = th->members[k];
    Gridsync__V1__Person *p = gs_arena_alloc(a, sizeof *p);
    Gridsync__V1__Person **m = gs_arena_alloc(a, (h->n_members + 1) * sizeof *m);
    if (!p || !m)
        return NULL;
    *p = *head;
    p->relation = GRIDSYNC__V1__RELATION__RELATION_NON_RELATIVE;
    memcpy(m, h->members, h->n_members * sizeof *m);
    m[h->n_members] = p;
    h->members = m;
    h->n_members++;
    return r;
}

/* Record j of the grid: households first, then rental units, then
 * organisations, then incident reports. */
static Gridsync__V1__Record *
s_gen(const gs_sim_opts_t *o, const gs_gen_t *gen, const s_ranges_t *g, uint32_t j,
      gs_arena_t *a)
{
    if (j < g->hn)
        return s_household(o, gen, g->hf + j, a);
    if (j < g->hn + g->rn)
        return gs_gen_rental(gen, g->rf + (j - g->hn), a);
    if (j < g->hn + g->rn + g->on)
        return gs_gen_org(gen, g->of + (j - g->hn - g->rn), a);
    gs_gen_incident_t inc;
    if (gs_gen_incident(gen, g->grid, j - g->hn - g->rn - g->on, g->now_ms, a, &inc))
        return NULL;
    return inc.report;
}

/* The noise draw of record j: keyed by kind and index in the district. */
static uint32_t
s_draw_record(uint64_t seed, const s_ranges_t *g, uint32_t j)
{
    if (j < g->hn)
        return s_draw(seed, 'H', g->hf + j);
    if (j < g->hn + g->rn)
        return s_draw(seed, 'R', g->rf + (j - g->hn));
    if (j < g->hn + g->rn + g->on)
        return s_draw(seed, 'O', g->of + (j - g->hn - g->rn));
    /* incidents are numbered per grid: 4096 indexes per grid */
    return s_draw(seed, 'I', (uint64_t) g->grid * 4096 + (j - g->hn - g->rn - g->on));
}

int
gs_sim_plan_grid(const gs_sim_opts_t *o, const gs_gen_t *gen, uint32_t grid,
                 gs_arena_t *a, gs_sim_upload_t **ups_out, size_t *n_out,
                 gs_sim_tally_t *tally)
{
    enum {
        ACCEPTED = GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED,
        UNCHANGED = GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_UNCHANGED,
        MERGED = GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_MERGED,
        CONFLICT = GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_CONFLICT,
        REJECTED = GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_REJECTED
    };
    *ups_out = NULL;
    *n_out = 0;
    char msg[128];
    if (gs_sim_opts_check(o, msg, sizeof msg) || grid >= gs_gen_grid_count(gen))
        return -1;
    const char *code = gs_gen_grid_code(gen, grid);
    s_ranges_t rg = { 0 };
    gs_gen_grid_households(gen, grid, &rg.hf, &rg.hn);
    gs_gen_grid_rentals(gen, grid, &rg.rf, &rg.rn);
    if (o->organisations)
        gs_gen_grid_orgs(gen, grid, &rg.of, &rg.on);
    rg.grid = grid;
    rg.now_ms = o->now_ms;
    if (o->incidents)
        rg.in = gs_gen_grid_incident_count(gen, grid, a);
    uint32_t total = rg.hn + rg.rn + rg.on + rg.in;
    uint32_t inv = s_bp(o->invalid_pct), rec = s_bp(o->recollect_pct);
    uint32_t nid = s_bp(o->new_id_pct), con = s_bp(o->conflict_pct);

    /* three phases of at most total records each */
    size_t cap = (size_t) total + 1;
    Gridsync__V1__Record **recs = gs_arena_alloc(a, 3 * cap * sizeof *recs);
    gs_sim_expect_t *exps = gs_arena_alloc(a, 3 * cap * sizeof *exps);
    uint8_t *noise = gs_arena_alloc(a, cap);
    uint8_t *fresh = gs_arena_alloc(a, cap);
    s_plan_t p = { o, a, grid, code, NULL, 0, 0, 0, tally };
    p.cap_ups = 3 * (cap / o->batch + 1);
    p.ups = gs_arena_alloc(a, p.cap_ups * sizeof *p.ups);
    if (!recs || !exps || !noise || !fresh || !p.ups)
        return -1;

    /* 1. the offline burst: every record once */
    for (uint32_t j = 0; j < total; j++) {
        Gridsync__V1__Record *r = s_gen(o, gen, &rg, j, a);
        if (!r)
            return -1;
        uint32_t d = s_draw_record(o->seed, &rg, j);
        int kind = d < inv ? GS_SIM_INVALID
                   : d < inv + rec ? GS_SIM_RECOLLECT
                   : d < inv + rec + nid ? GS_SIM_NEW_ID
                   : d < inv + rec + nid + con ? GS_SIM_CONFLICT : GS_SIM_FRESH;
        /* an organisation with a USCC gets a wrong USCC, anyone else a wrong ID */
        Gridsync__V1__OrganisationUnit *org =
            r->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION && r->organisation->uscc &&
                    *r->organisation->uscc ? r->organisation : NULL;
        Gridsync__V1__Person *victim =
            kind == GS_SIM_INVALID && !org ? s_first_resident(r) : NULL;
        /* an incident report sent again under a new upload id is not
         * UNCHANGED: the stored one has the history the store wrote */
        int incident = r->body_case == GRIDSYNC__V1__RECORD__BODY_INCIDENT;
        if ((kind == GS_SIM_INVALID && !victim && !org) ||
            (kind == GS_SIM_NEW_ID && !s_has_natkey(r)) || (kind == GS_SIM_RECOLLECT && incident))
            kind = GS_SIM_FRESH; /* this record cannot carry that noise */
        noise[j] = (uint8_t) kind;
        const char *id = *s_id_slot(r);
        if (kind == GS_SIM_INVALID) {
            if (org ? s_corrupt_uscc(a, org) : s_corrupt_id(a, victim))
                return -1;
            s_expect(&exps[j], REJECTED,
                     org ? GRIDSYNC__V1__REASON__REASON_USCC_CHECK
                         : GRIDSYNC__V1__REASON__REASON_ID_CHECK, 0, id, 0, kind);
        } else {
            s_expect(&exps[j], ACCEPTED, 0, 1, id, 1, kind);
        }
        recs[j] = r;
        fresh[j] = 1;
        uint32_t other;
        if (tally) {
            tally->by_noise[kind]++;
            tally->twins += j < rg.hn && gs_sim_twin(o, gen, rg.hf + j, &other);
        }
    }
    if (s_phase(&p, 0, recs, exps, fresh, total))
        return -1;

    /* 2. the follow-up visit by the same device */
    Gridsync__V1__Record **r2 = recs + cap;
    gs_sim_expect_t *e2 = exps + cap;
    size_t n2 = 0;
    for (uint32_t j = 0; j < total; j++) {
        if (noise[j] == GS_SIM_FRESH)
            continue;
        Gridsync__V1__Record *r = s_gen(o, gen, &rg, j, a);
        if (!r)
            return -1;
        const char *id = *s_id_slot(r);
        Gridsync__V1__RecordMeta *m = s_meta_own(a, r);
        if (!m)
            return -1;
        switch (noise[j]) {
        case GS_SIM_INVALID: /* corrected on the spot */
            s_expect(&e2[n2], ACCEPTED, 0, 1, id, 1, noise[j]);
            break;
        case GS_SIM_RECOLLECT: /* visited again, nothing changed */
            m->collected_at += S_HOUR_MS;
            s_expect(&e2[n2], UNCHANGED, 0, 1, id, 0, noise[j]);
            break;
        case GS_SIM_NEW_ID: { /* collected again as if new: a new id, same place */
            m->collected_at += S_HOUR_MS;
            char *nid_s = s_concat(a, id, "-2");
            if (!nid_s)
                return -1;
            *s_id_slot(r) = nid_s;
            s_expect(&e2[n2], MERGED, 0, 1, id, 0, noise[j]);
            break;
        }
        case GS_SIM_CONFLICT: { /* an edit based on version 1 */
            m->collected_at += S_HOUR_MS;
            m->base_version = 1;
            char **addr = s_address_slot(r);
            if (!(*addr = s_concat(a, *addr, "（核实甲）")))
                return -1;
            s_expect(&e2[n2], ACCEPTED, 0, 2, id, 1, noise[j]);
            break;
        }
        default:
            break;
        }
        r2[n2++] = r;
    }
    if (s_phase(&p, 0, r2, e2, NULL, n2))
        return -1;

    /* 3. the second device's edits, based on the same version 1 */
    Gridsync__V1__Record **r3 = recs + 2 * cap;
    gs_sim_expect_t *e3 = exps + 2 * cap;
    size_t n3 = 0;
    char dev_b[GS_ID_MAX + 1], col_b[GS_ID_MAX + 1];
    gs_sim_device_id(code, 1, dev_b, sizeof dev_b);
    snprintf(col_b, sizeof col_b, "col-%s-b", code);
    for (uint32_t j = 0; j < total; j++) {
        if (noise[j] != GS_SIM_CONFLICT)
            continue;
        Gridsync__V1__Record *r = s_gen(o, gen, &rg, j, a);
        Gridsync__V1__RecordMeta *m = r ? s_meta_own(a, r) : NULL;
        if (!m)
            return -1;
        m->collected_at += 2 * S_HOUR_MS;
        m->base_version = 1;
        m->device_id = gs_arena_strdup(a, dev_b);
        m->collector_id = gs_arena_strdup(a, col_b);
        char **addr = s_address_slot(r);
        if (!m->device_id || !m->collector_id || !(*addr = s_concat(a, *addr, "（核实乙）")))
            return -1;
        s_expect(&e3[n3], CONFLICT, 0, 2, *s_id_slot(r), 0, GS_SIM_CONFLICT);
        r3[n3++] = r;
    }
    if (s_phase(&p, 1, r3, e3, NULL, n3))
        return -1;

    *ups_out = p.ups;
    *n_out = p.n_ups;
    return 0;
}

/* ---- Checking ----------------------------------------------------------------- */

static const char *
s_str(const char *s)
{
    return s ? s : "";
}

int
gs_sim_check(const gs_sim_upload_t *u, const Gridsync__V1__Ack *ack, char *detail,
             size_t size)
{
    const Gridsync__V1__Upload *up = u->up;
    char scratch[8];
    if (!detail) {
        detail = scratch;
        size = sizeof scratch;
    }
    detail[0] = 0;
    if (strcmp(s_str(ack->upload_id), up->upload_id) != 0 || ack->reason != 0 ||
        ack->n_results != up->n_records) {
        snprintf(detail, size,
                 "upload %s: ack for upload '%s' with reason %s (%s) and %zu results, "
                 "expected %zu results",
                 up->upload_id, s_str(ack->upload_id), gs_reason_name(ack->reason),
                 s_str(ack->message), ack->n_results, up->n_records);
        return 1;
    }
    int bad = 0;
    for (size_t i = 0; i < up->n_records; i++) {
        const gs_sim_expect_t *e = &u->expect[i];
        const Gridsync__V1__RecordResult *r = ack->results[i];
        int ok = r->index == i && (int) r->status == e->status && (int) r->reason == e->reason &&
                 r->version == e->version && strcmp(s_str(r->record_key), e->record_key) == 0 &&
                 (e->has_seq ? r->seq > 0 : r->seq == 0);
        if (ok)
            continue;
        if (bad++ == 0)
            snprintf(detail, size,
                     "upload %s record %zu (%s): expected %s%s%s v%llu key %s seq %s; "
                     "got %s%s%s v%llu key %s seq %llu%s%s",
                     up->upload_id, i, *s_id_slot(up->records[i]),
                     gs_sim_status_name(e->status), e->reason ? " " : "",
                     e->reason ? gs_reason_name(e->reason) : "",
                     (unsigned long long) e->version, e->record_key, e->has_seq ? ">0" : "0",
                     gs_sim_status_name(r->status), r->reason ? " " : "",
                     r->reason ? gs_reason_name(r->reason) : "",
                     (unsigned long long) r->version, s_str(r->record_key),
                     (unsigned long long) r->seq, r->message && *r->message ? ": " : "",
                     s_str(r->message));
    }
    return bad;
}

int
gs_sim_ack_same(const Gridsync__V1__Ack *first, const Gridsync__V1__Ack *again,
                char *detail, size_t size)
{
    char scratch[8];
    if (!detail) {
        detail = scratch;
        size = sizeof scratch;
    }
    detail[0] = 0;
    if (strcmp(s_str(first->upload_id), s_str(again->upload_id)) != 0 ||
        first->reason != again->reason || first->n_results != again->n_results) {
        snprintf(detail, size, "retransmission of %s: ack differs (upload id, reason or "
                 "%zu vs %zu results)", s_str(first->upload_id), first->n_results,
                 again->n_results);
        return 1;
    }
    for (size_t i = 0; i < first->n_results; i++) {
        const Gridsync__V1__RecordResult *a = first->results[i], *b = again->results[i];
        if (a->index != b->index || a->status != b->status || a->reason != b->reason ||
            a->version != b->version || a->seq != b->seq ||
            strcmp(s_str(a->record_key), s_str(b->record_key)) != 0) {
            snprintf(detail, size,
                     "retransmission of %s record %zu: first %s v%llu seq %llu, "
                     "again %s v%llu seq %llu",
                     s_str(first->upload_id), i, gs_sim_status_name(a->status),
                     (unsigned long long) a->version, (unsigned long long) a->seq,
                     gs_sim_status_name(b->status), (unsigned long long) b->version,
                     (unsigned long long) b->seq);
            return 1;
        }
    }
    return 0;
}

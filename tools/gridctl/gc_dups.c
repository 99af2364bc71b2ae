/*
 * gc_dups: `gridctl dups [PREFIX]`, the data-quality report an
 * administrator works through. Four findings:
 *
 *  1. Persons active in more than one household or rental unit (人户分离,
 *     repeated collection), from the store's person index
 *     (gs_store_person_dups; keyed by HMAC, never by plain ID numbers).
 *  1b. Organisations: one USCC held by organisation records at more than
 *     one address (a branch, or one organisation collected twice), from
 *     the same index; the store never merges them.
 *  2. Phone numbers given by many unrelated people, often the collector's
 *     own number typed for everyone.
 *  3. Rental units with more active tenants than their area plausibly holds
 *     (群租).
 *
 * 2 and 3 need the records themselves: one read transaction over the
 * records under PREFIX. Phones are grouped in memory (about 40 bytes per
 * person with a phone; a district of 350,000 persons takes some 15 MB).
 */
#include "gc.h"

#include <stdlib.h>
#include <string.h>

#include "gs_validate.h"

static const char s_help[] =
    "Usage: gridctl dups [PREFIX] [--phone-min N] [--area-per-person M2]\n"
    "\n"
    "Four data-quality findings, restricted to PREFIX when given:\n"
    "\n"
    "  persons     one ID number active as a household member or tenant in more than\n"
    "              one record, with every place that names it (landlord and\n"
    "              organisation places are listed too; being landlord of several\n"
    "              units, or working at several organisations, is not a finding).\n"
    "              Persons without documents are never grouped.\n"
    "  organisations  one USCC held by active organisation records at more than one\n"
    "              address: a branch, or the same organisation collected twice. The\n"
    "              store keeps both; decide which, and void the duplicate.\n"
    "  phones      a phone given by at least N different persons in at least N\n"
    "              different records (households, rental units): people of one\n"
    "              household, who often share a phone, count once, and a landlord\n"
    "              of many units is one person. --phone-min N (default 5).\n"
    "  rentals     rental units with fewer than M2 square metres per active tenant\n"
    "              (lease started and not ended today): plausibly 群租.\n"
    "              --area-per-person M2 (default 4). Units without an area are skipped.\n"
    "\n"
    "ID numbers and phones are masked unless --reveal (logged).\n"
    "\n"
    "--json: one document {prefix, thresholds:{phone_min, area_per_person},\n"
    "persons:[{id_number, name, places:[{grid, kind, record_key, role}]}],\n"
    "organisations:[{uscc, name, places:[{grid, record_key, address}]}],\n"
    "phones:[{phone, persons, records, places:[{grid, kind, record_key}]}],\n"
    "overcrowded:[{grid, record_key, area_m2, tenants, m2_per_person, address}]}.\n";

#define S_PLACES_SHOWN 10       /* places listed per shared phone */

/* ---- 1. persons in more than one place --------------------------------------- */

/* One place of an organisation finding. */
typedef struct s_org_place {
    char grid[GS_GRID_LEN + 1]; /* grid code */
    char key[GS_ID_MAX + 1];    /* canonical record id */
    char *address;              /* malloc'd */
} s_org_place_t;

/* One USCC held by organisation records at more than one address. */
typedef struct s_org_dup {
    char uscc[20];              /* the shared USCC (public: never masked) */
    char *name;                 /* malloc'd name of the first place, or NULL */
    s_org_place_t *places;      /* malloc'd */
    size_t n;                   /* places */
} s_org_dup_t;

typedef struct s_dups {
    gc_ctx_t *ctx;              /* options, output */
    gs_store_t *st;             /* read-only store (fn may call it) */
    gs_arena_t *arena;          /* scratch for one record */
    gs_json_t *json;            /* --json output (NULL for tables) */
    gc_table_t *table;          /* human output */
    uint64_t groups;            /* persons found */
    int no_secret;              /* person keys unavailable (no secret.key) */
    s_org_dup_t *orgs;          /* organisation findings, printed after the persons */
    size_t n_orgs, cap_orgs;    /* held, room for */
    int nomem;                  /* an organisation finding could not be kept */
} s_dups_t;

static const char *
s_role_name(int role)
{
    static const char *const names[] = { "?", "member", "tenant", "landlord",
                                         "legal_representative", "contact", "employee",
                                         "organisation" };
    return role > 0 && role <= GS_PERSON_ROLE_ORG ? names[role] : "?";
}

/* A record copied out of gs_store_get's transaction. */
typedef struct s_buf {
    uint8_t *data;              /* malloc'd packed Record */
    size_t len;                 /* its length */
} s_buf_t;

static int
s_copy_record(void *arg, const gs_record_view_t *v)
{
    s_buf_t *b = arg;
    b->data = malloc(v->len ? v->len : 1);
    if (!b->data)
        return GS_ENOMEM;
    memcpy(b->data, v->data, v->len);
    b->len = v->len;
    return 0;
}

/* The persons a record names, in order: members, or tenants then a
 * landlord person, or an organisation's representative, contact and
 * employees. Returns how many were stored in out (at most max). */
static size_t
s_persons(const Gridsync__V1__Record *r, const Gridsync__V1__Person **out, size_t max)
{
    size_t n = 0;
    if (r->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD && r->household) {
        for (size_t i = 0; i < r->household->n_members && n < max; i++)
            if (r->household->members[i])
                out[n++] = r->household->members[i];
    } else if (r->body_case == GRIDSYNC__V1__RECORD__BODY_RENTAL && r->rental) {
        const Gridsync__V1__RentalHousing *h = r->rental;
        for (size_t i = 0; i < h->n_leases && n < max; i++)
            if (h->leases[i] && h->leases[i]->tenant)
                out[n++] = h->leases[i]->tenant;
        if (h->landlord && h->landlord->party_case == GRIDSYNC__V1__LANDLORD__PARTY_PERSON &&
            h->landlord->person && n < max)
            out[n++] = h->landlord->person;
    } else if (r->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION && r->organisation) {
        const Gridsync__V1__OrganisationUnit *o = r->organisation;
        if (o->legal_representative && n < max)
            out[n++] = o->legal_representative;
        if (o->contact && o->contact != o->legal_representative && n < max)
            out[n++] = o->contact;
        for (size_t i = 0; i < o->n_employees && n < max; i++)
            if (o->employees[i])
                out[n++] = o->employees[i];
    }
    return n;
}

/* Decode a place (unmasked: its ID numbers are compared, never printed). */
static Gridsync__V1__Record *
s_load_place(s_dups_t *d, const gs_person_ref_t *ref)
{
    s_buf_t b = { NULL, 0 };
    if (gs_store_get(d->st, ref->kind, ref->record_key, s_copy_record, &b) != 0) {
        free(b.data);
        return NULL;
    }
    Gridsync__V1__Record *r = gc_record_load(b.data, b.len, d->arena, 1);
    free(b.data);
    return r;
}

/* Find which person of the group's first places the index key names: by
 * recomputing the key (needs secret.key), else as the ID number two places
 * have in common. */
static const Gridsync__V1__Person *
s_identify(s_dups_t *d, const uint8_t *hmac, const gs_person_ref_t *refs, size_t n)
{
    const gs_person_ref_t *first = NULL, *second = NULL;
    for (size_t i = 0; i < n; i++) {
        if (refs[i].role != 1 && refs[i].role != 2)
            continue;
        if (!first)
            first = &refs[i];
        else if (!second)
            second = &refs[i];
    }
    if (!first)
        return NULL;
    Gridsync__V1__Record *r = s_load_place(d, first);
    if (!r)
        return NULL;
    const Gridsync__V1__Person *ps[256];
    size_t np = s_persons(r, ps, 256);
    if (!d->no_secret) {
        for (size_t i = 0; i < np; i++) {
            uint8_t k[16];
            if (!ps[i]->id_number || !*ps[i]->id_number)
                continue;
            int rc = gs_store_person_key(d->st, ps[i]->id_number, k);
            if (rc == 0 && !memcmp(k, hmac, 16))
                return ps[i];
            if (rc) {
                d->no_secret = 1;
                break;
            }
        }
    }
    if (!second)
        return NULL;
    Gridsync__V1__Record *r2 = s_load_place(d, second);
    if (!r2)
        return NULL;
    const Gridsync__V1__Person *qs[256];
    size_t nq = s_persons(r2, qs, 256);
    for (size_t i = 0; i < np; i++)
        for (size_t j = 0; j < nq; j++)
            if (ps[i]->id_number && *ps[i]->id_number && qs[j]->id_number &&
                !strcmp(ps[i]->id_number, qs[j]->id_number))
                return ps[i];
    return NULL;
}

static char *
s_strdup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* An index group keyed by a USCC (role organisation): the same USCC at
 * several addresses. Kept to be printed after the persons. */
static int
s_on_org_dup(s_dups_t *d, const gs_person_ref_t *refs, size_t n)
{
    if (d->n_orgs == d->cap_orgs) {
        size_t nc = d->cap_orgs ? 2 * d->cap_orgs : 16;
        s_org_dup_t *no = realloc(d->orgs, nc * sizeof *no);
        if (!no) {
            d->nomem = 1;
            return 1;
        }
        d->orgs = no;
        d->cap_orgs = nc;
    }
    s_org_dup_t *od = &d->orgs[d->n_orgs];
    memset(od, 0, sizeof *od);
    if (!(od->places = calloc(n, sizeof *od->places))) {
        d->nomem = 1;
        return 1;
    }
    d->n_orgs++;
    od->n = n;
    for (size_t i = 0; i < n; i++) {
        s_org_place_t *p = &od->places[i];
        snprintf(p->grid, sizeof p->grid, "%s", refs[i].grid);
        snprintf(p->key, sizeof p->key, "%s", refs[i].record_key);
        gs_arena_reset(d->arena);
        Gridsync__V1__Record *r = s_load_place(d, &refs[i]);
        if (!r || r->body_case != GRIDSYNC__V1__RECORD__BODY_ORGANISATION)
            continue;
        char addr[512];
        p->address = strdup(gc_record_address(r, addr, sizeof addr));
        if (!od->uscc[0] && r->organisation->uscc)
            snprintf(od->uscc, sizeof od->uscc, "%s", r->organisation->uscc);
        if (!od->name)
            od->name = s_strdup_or_null(r->organisation->name);
    }
    return 0;
}

static void
s_org_dups_free(s_dups_t *d)
{
    for (size_t i = 0; i < d->n_orgs; i++) {
        for (size_t k = 0; k < d->orgs[i].n; k++)
            free(d->orgs[i].places[k].address);
        free(d->orgs[i].places);
        free(d->orgs[i].name);
    }
    free(d->orgs);
    d->orgs = NULL;
    d->n_orgs = d->cap_orgs = 0;
}

static int
s_on_dup(void *arg, const uint8_t *hmac, const gs_person_ref_t *refs, size_t n)
{
    s_dups_t *d = arg;
    /* an organisation's USCC group holds only organisation refs */
    if (n && refs[0].role == GS_PERSON_ROLE_ORG)
        return s_on_org_dup(d, refs, n);
    gs_arena_reset(d->arena);
    const Gridsync__V1__Person *p = s_identify(d, hmac, refs, n);
    char idm[80];
    const char *id = p ? gc_mask_id(p->id_number, d->ctx->reveal, idm, sizeof idm) : NULL;
    const char *name = p && p->name ? p->name : NULL;
    d->groups++;
    if (d->json) {
        gs_json_obj(d->json);
        gs_json_key(d->json, "id_number");
        gs_json_str(d->json, id);
        gs_json_key(d->json, "name");
        gs_json_str(d->json, name);
        gs_json_key(d->json, "places");
        gs_json_arr(d->json);
        for (size_t i = 0; i < n; i++) {
            gs_json_obj(d->json);
            gs_json_key(d->json, "grid");
            gs_json_str(d->json, refs[i].grid);
            gs_json_key(d->json, "kind");
            gs_json_str(d->json, gc_kind_name(refs[i].kind));
            gs_json_key(d->json, "record_key");
            gs_json_str(d->json, refs[i].record_key);
            gs_json_key(d->json, "role");
            gs_json_str(d->json, s_role_name(refs[i].role));
            gs_json_end(d->json);
        }
        gs_json_end(d->json);
        gs_json_end(d->json);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        gc_table_row(d->table);
        gc_table_cell(d->table, "%s", i ? "" : id ? id : "?");
        gc_table_cell(d->table, "%s", i ? "" : name ? name : "?");
        gc_table_cell(d->table, "%s", refs[i].grid);
        gc_table_cell(d->table, "%s", gc_kind_name(refs[i].kind));
        gc_table_cell(d->table, "%s", refs[i].record_key);
        gc_table_cell(d->table, "%s", s_role_name(refs[i].role));
    }
    return 0;
}

/* ---- 2 and 3: one scan of the records -------------------------------------------- */

/* One (phone, person, record) seen. */
typedef struct s_phone_ent {
    char phone[16];             /* normalised digits */
    uint64_t person;            /* hash of the ID number, or of name and birth date */
    uint32_t rec;               /* index into the places list */
} s_phone_ent_t;

/* A record some finding points at. */
typedef struct s_place {
    char grid[GS_GRID_LEN + 1]; /* grid code */
    int kind;                   /* RecordKind */
    char key[GS_ID_MAX + 1];    /* canonical record id */
} s_place_t;

/* A crowded rental unit. */
typedef struct s_crowd {
    uint32_t rec;               /* places index */
    double area;                /* m² */
    uint32_t tenants;           /* active leases */
    char *address;              /* malloc'd */
} s_crowd_t;

typedef struct s_scan {
    gc_ctx_t *ctx;              /* options */
    gs_arena_t *arena;          /* one record at a time */
    int today;                  /* YYYYMMDD for lease activity */
    double area_per_person;     /* threshold in m² */
    s_phone_ent_t *ents;        /* phones seen */
    size_t n_ents, cap_ents;    /* used, allocated */
    s_place_t *places;          /* records with a phone or a finding */
    size_t n_places, cap_places; /* used, allocated */
    s_crowd_t *crowds;          /* crowded units */
    size_t n_crowds, cap_crowds; /* used, allocated */
    int nomem;                  /* an allocation failed */
    int bad;                    /* records that did not decode */
} s_scan_t;

static uint64_t
s_hash(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *s = a ? a : ""; *s; s++)
        h = (h ^ (unsigned char) *s) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (const char *s = b ? b : ""; *s; s++)
        h = (h ^ (unsigned char) *s) * 1099511628211ull;
    return h;
}

static int
s_grow(void **v, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 1024;
    void *nv = realloc(*v, c * elem);
    if (!nv)
        return -1;
    *v = nv;
    *cap = c;
    return 0;
}

static uint32_t
s_place_add(s_scan_t *s, const gs_record_view_t *v)
{
    if (s->n_places && !strcmp(s->places[s->n_places - 1].key, v->record_key) &&
        s->places[s->n_places - 1].kind == v->kind)
        return (uint32_t) (s->n_places - 1);
    if (s_grow((void **) &s->places, &s->cap_places, s->n_places, sizeof *s->places)) {
        s->nomem = 1;
        return UINT32_MAX;
    }
    s_place_t *p = &s->places[s->n_places];
    snprintf(p->grid, sizeof p->grid, "%s", v->grid);
    snprintf(p->key, sizeof p->key, "%s", v->record_key);
    p->kind = v->kind;
    return (uint32_t) s->n_places++;
}

/* Is a lease running today? Dates are YYYY-MM-DD, so they compare as text. */
static int
s_lease_active(const Gridsync__V1__Lease *l, const char *today)
{
    if (!l || !l->tenant)
        return 0;
    if (l->start_date && *l->start_date && strcmp(l->start_date, today) > 0)
        return 0;
    if (l->end_date && *l->end_date && strcmp(l->end_date, today) < 0)
        return 0;
    return 1;
}

static int
s_scan_record(void *arg, const gs_record_view_t *v)
{
    s_scan_t *s = arg;
    if (v->status == GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_VOID)
        return 0;
    gs_arena_reset(s->arena);
    /* unmasked in memory: phones are grouped by their digits; output masks */
    Gridsync__V1__Record *r = gc_record_load(v->data, v->len, s->arena, 1);
    if (!gs_render_record_body(r)) {
        s->bad++;
        return 0;
    }
    const Gridsync__V1__Person *ps[512];
    size_t np = s_persons(r, ps, 512);
    uint32_t rec = UINT32_MAX;
    for (size_t i = 0; i < np; i++) {
        const Gridsync__V1__Person *p = ps[i];
        for (size_t k = 0; k < p->n_phones; k++) {
            if (!p->phones[k] || !*p->phones[k])
                continue;
            if (rec == UINT32_MAX && (rec = s_place_add(s, v)) == UINT32_MAX)
                return 1;
            if (s_grow((void **) &s->ents, &s->cap_ents, s->n_ents, sizeof *s->ents)) {
                s->nomem = 1;
                return 1;
            }
            s_phone_ent_t *e = &s->ents[s->n_ents++];
            snprintf(e->phone, sizeof e->phone, "%s", p->phones[k]);
            e->person = p->id_number && *p->id_number ? s_hash(p->id_number, "")
                                                      : s_hash(p->name, p->birth_date);
            e->rec = rec;
        }
    }
    if (r->body_case == GRIDSYNC__V1__RECORD__BODY_RENTAL && r->rental->area_m2 > 0) {
        char today[16];
        snprintf(today, sizeof today, "%04d-%02d-%02d", s->today / 10000, s->today / 100 % 100,
                 s->today % 100);
        uint32_t active = 0;
        for (size_t i = 0; i < r->rental->n_leases; i++)
            active += (uint32_t) s_lease_active(r->rental->leases[i], today);
        if (active && r->rental->area_m2 < s->area_per_person * active) {
            if (rec == UINT32_MAX && (rec = s_place_add(s, v)) == UINT32_MAX)
                return 1;
            if (s_grow((void **) &s->crowds, &s->cap_crowds, s->n_crowds, sizeof *s->crowds)) {
                s->nomem = 1;
                return 1;
            }
            char addr[512];
            s_crowd_t *c = &s->crowds[s->n_crowds++];
            c->rec = rec;
            c->area = r->rental->area_m2;
            c->tenants = active;
            c->address = strdup(gc_record_address(r, addr, sizeof addr));
        }
    }
    return 0;
}

static int
s_ent_cmp(const void *a, const void *b)
{
    const s_phone_ent_t *x = a, *y = b;
    int c = strcmp(x->phone, y->phone);
    if (c)
        return c;
    if (x->person != y->person)
        return x->person < y->person ? -1 : 1;
    return x->rec < y->rec ? -1 : x->rec > y->rec;
}

static int
s_u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

/* A flagged phone: a run of ents. */
typedef struct s_shared {
    size_t first, n;            /* the run in ents */
    uint32_t persons, records;  /* distinct */
    uint32_t *recs;             /* distinct records, sorted (malloc'd) */
} s_shared_t;

static int
s_shared_cmp(const void *a, const void *b)
{
    const s_shared_t *x = a, *y = b;
    uint32_t ux = x->persons < x->records ? x->persons : x->records;
    uint32_t uy = y->persons < y->records ? y->persons : y->records;
    if (ux != uy)
        return ux > uy ? -1 : 1;
    return x->first < y->first ? -1 : x->first > y->first;
}

static int
s_crowd_cmp(const void *a, const void *b)
{
    const s_crowd_t *x = a, *y = b;
    double dx = x->area / x->tenants, dy = y->area / y->tenants;
    return dx < dy ? -1 : dx > dy;
}

/* Group ents by phone; keep the phones at or above phone_min. */
static s_shared_t *
s_shared_find(s_scan_t *s, uint64_t phone_min, size_t *n_out)
{
    if (s->n_ents)  /* no phones at all: ents is NULL, which qsort must not get */
        qsort(s->ents, s->n_ents, sizeof *s->ents, s_ent_cmp);
    s_shared_t *v = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0, j; i < s->n_ents; i = j) {
        uint32_t persons = 0;
        for (j = i; j < s->n_ents && !strcmp(s->ents[j].phone, s->ents[i].phone); j++)
            if (j == i || s->ents[j].person != s->ents[j - 1].person)
                persons++;
        if (persons < phone_min)
            continue;
        uint32_t *recs = malloc((j - i) * sizeof *recs);
        if (!recs) {
            s->nomem = 1;
            break;
        }
        for (size_t k = i; k < j; k++)
            recs[k - i] = s->ents[k].rec;
        qsort(recs, j - i, sizeof *recs, s_u32_cmp);
        uint32_t records = 0;
        for (size_t k = 0; k < j - i; k++)
            if (k == 0 || recs[k] != recs[k - 1])
                recs[records++] = recs[k];
        if (records < phone_min) {
            free(recs);
            continue;
        }
        if (s_grow((void **) &v, &cap, n, sizeof *v)) {
            free(recs);
            s->nomem = 1;
            break;
        }
        v[n].first = i;
        v[n].n = j - i;
        v[n].persons = persons;
        v[n].records = records;
        v[n].recs = recs;
        n++;
    }
    if (n)
        qsort(v, n, sizeof *v, s_shared_cmp);
    *n_out = n;
    return v;
}

static void
s_scan_free(s_scan_t *s)
{
    for (size_t i = 0; i < s->n_crowds; i++)
        free(s->crowds[i].address);
    free(s->crowds);
    free(s->ents);
    free(s->places);
    gs_arena_destroy(&s->arena);
}

/* ---- the command -------------------------------------------------------------------- */

int
gc_cmd_dups(gc_ctx_t *ctx, int argc, char **argv)
{
    static const gc_optspec_t spec[] = { { "phone-min", 1 }, { "area-per-person", 1 },
                                         { NULL, 0 } };
    gc_args_t a;
    int rc = gc_args_parse(ctx, argc, argv, spec, &a);
    if (rc)
        return rc;
    if (a.help) {
        fputs(s_help, ctx->out);
        return GC_EXIT_OK;
    }
    if (a.n_pos > 1)
        return gc_usage(ctx, "expected at most one PREFIX");
    const char *prefix = a.n_pos ? a.pos[0] : "";
    uint64_t phone_min;
    if ((rc = gc_prefix_arg(ctx, prefix)) ||
        (rc = gc_args_u64(ctx, &a, "phone-min", 5, 2, 1000000, &phone_min)))
        return rc;
    double area = 4.0;
    const char *av = gc_args_get(&a, "area-per-person");
    if (av) {
        char *end = NULL;
        area = strtod(av, &end);
        if (!*av || *end || !(area > 0 && area <= 1000))
            return gc_usage(ctx, "--area-per-person must be square metres above 0, not '%.20s'",
                            av);
    }

    gs_store_t *st = gc_store_open(ctx, 0, &rc);
    if (!st)
        return rc;
    gs_json_t j;
    gs_json_init_file(&j, ctx->out);
    static const char *const hp[] = { "ID NUMBER", "NAME", "GRID", "KIND", "RECORD", "ROLE" };
    s_dups_t d;
    memset(&d, 0, sizeof d);
    d.ctx = ctx;
    d.st = st;
    d.arena = gs_arena_new(0);
    d.json = ctx->json ? &j : NULL;
    d.table = ctx->json ? NULL : gc_table_new(6, hp, "llllll");
    s_scan_t s;
    memset(&s, 0, sizeof s);
    s.ctx = ctx;
    s.arena = gs_arena_new(0);
    s.today = gc_today();
    s.area_per_person = area;
    if (!d.arena || !s.arena || (!ctx->json && !d.table)) {
        rc = gc_fail(ctx, "out of memory");
        goto done;
    }

    if (ctx->json) {
        gs_json_obj(&j);
        gs_json_key(&j, "prefix");
        gs_json_str(&j, prefix);
        gs_json_key(&j, "thresholds");
        gs_json_obj(&j);
        gs_json_key(&j, "phone_min");
        gs_json_u64(&j, phone_min);
        gs_json_key(&j, "area_per_person");
        gs_json_figure(&j, area);
        gs_json_end(&j);
        gs_json_key(&j, "persons");
        gs_json_arr(&j);
    }
    int err = gs_store_person_dups(st, prefix, s_on_dup, &d);
    if (ctx->json)
        gs_json_end(&j);
    if (d.nomem) {
        rc = gc_fail(ctx, "out of memory");
        goto done;
    }
    if (err) {
        /* a half-written document is worse than none: say so and stop */
        rc = gc_store_fail(ctx, "reading the person index", err);
        goto done;
    }
    if (!ctx->json) {
        fprintf(ctx->out, "Persons active in more than one place: %llu\n",
                (unsigned long long) d.groups);
        if (d.groups) {
            fputc('\n', ctx->out);
            gc_table_print(d.table, ctx->out);
        }
        fprintf(ctx->out, "\nOrganisations with one USCC at more than one address: %zu\n",
                d.n_orgs);
        static const char *const ho[] = { "USCC", "NAME", "GRID", "RECORD", "ADDRESS" };
        gc_table_t *t = d.n_orgs ? gc_table_new(5, ho, "lllll") : NULL;
        for (size_t i = 0; t && i < d.n_orgs; i++)
            for (size_t k = 0; k < d.orgs[i].n; k++) {
                const s_org_place_t *p = &d.orgs[i].places[k];
                gc_table_row(t);
                gc_table_cell(t, "%s", k ? "" : d.orgs[i].uscc[0] ? d.orgs[i].uscc : "?");
                gc_table_cell(t, "%s", k ? "" : d.orgs[i].name ? d.orgs[i].name : "?");
                gc_table_cell(t, "%s", p->grid);
                gc_table_cell(t, "%s", p->key);
                gc_table_cell(t, "%s", p->address ? p->address : "");
            }
        if (t) {
            fputc('\n', ctx->out);
            gc_table_print(t, ctx->out);
        }
        gc_table_destroy(&t);
    } else {
        gs_json_key(&j, "organisations");
        gs_json_arr(&j);
        for (size_t i = 0; i < d.n_orgs; i++) {
            gs_json_obj(&j);
            gs_json_key(&j, "uscc");
            gs_json_str(&j, d.orgs[i].uscc[0] ? d.orgs[i].uscc : NULL);
            gs_json_key(&j, "name");
            gs_json_str(&j, d.orgs[i].name);
            gs_json_key(&j, "places");
            gs_json_arr(&j);
            for (size_t k = 0; k < d.orgs[i].n; k++) {
                const s_org_place_t *p = &d.orgs[i].places[k];
                gs_json_obj(&j);
                gs_json_key(&j, "grid");
                gs_json_str(&j, p->grid);
                gs_json_key(&j, "record_key");
                gs_json_str(&j, p->key);
                gs_json_key(&j, "address");
                gs_json_str(&j, p->address);
                gs_json_end(&j);
            }
            gs_json_end(&j);
            gs_json_end(&j);
        }
        gs_json_end(&j);
    }

    err = gs_store_records(st, prefix, s_scan_record, &s);
    if (s.nomem || err > 0) {
        rc = gc_fail(ctx, "out of memory");
        goto done;
    }
    if (err) {
        rc = gc_store_fail(ctx, "reading the records", err);
        goto done;
    }
    size_t n_shared = 0;
    s_shared_t *shared = s_shared_find(&s, phone_min, &n_shared);
    if (s.nomem) {
        for (size_t i = 0; i < n_shared; i++)
            free(shared[i].recs);
        free(shared);
        rc = gc_fail(ctx, "out of memory");
        goto done;
    }
    if (s.n_crowds)
        qsort(s.crowds, s.n_crowds, sizeof *s.crowds, s_crowd_cmp);

    char pm[32];
    if (ctx->json) {
        gs_json_key(&j, "phones");
        gs_json_arr(&j);
        for (size_t i = 0; i < n_shared; i++) {
            const s_shared_t *sh = &shared[i];
            gs_json_obj(&j);
            gs_json_key(&j, "phone");
            gs_json_str(&j, gc_mask_phone(s.ents[sh->first].phone, ctx->reveal, pm, sizeof pm));
            gs_json_key(&j, "persons");
            gs_json_u64(&j, sh->persons);
            gs_json_key(&j, "records");
            gs_json_u64(&j, sh->records);
            gs_json_key(&j, "places");
            gs_json_arr(&j);
            for (uint32_t k = 0; k < sh->records; k++) {
                const s_place_t *p = &s.places[sh->recs[k]];
                gs_json_obj(&j);
                gs_json_key(&j, "grid");
                gs_json_str(&j, p->grid);
                gs_json_key(&j, "kind");
                gs_json_str(&j, gc_kind_name(p->kind));
                gs_json_key(&j, "record_key");
                gs_json_str(&j, p->key);
                gs_json_end(&j);
            }
            gs_json_end(&j);
            gs_json_end(&j);
        }
        gs_json_end(&j);
        gs_json_key(&j, "overcrowded");
        gs_json_arr(&j);
        for (size_t i = 0; i < s.n_crowds; i++) {
            const s_crowd_t *c = &s.crowds[i];
            const s_place_t *p = &s.places[c->rec];
            gs_json_obj(&j);
            gs_json_key(&j, "grid");
            gs_json_str(&j, p->grid);
            gs_json_key(&j, "record_key");
            gs_json_str(&j, p->key);
            gs_json_key(&j, "area_m2");
            gs_json_figure(&j, c->area);
            gs_json_key(&j, "tenants");
            gs_json_u64(&j, c->tenants);
            gs_json_key(&j, "m2_per_person");
            gs_json_figure(&j, c->area / c->tenants);
            gs_json_key(&j, "address");
            gs_json_str(&j, c->address);
            gs_json_end(&j);
        }
        gs_json_end(&j);
        gs_json_end(&j);
    } else {
        FILE *o = ctx->out;
        fprintf(o, "\nPhones shared by %llu or more unrelated people: %zu\n",
                (unsigned long long) phone_min, n_shared);
        if (n_shared) {
            static const char *const hs[] = { "PHONE", "PERSONS", "RECORDS", "PLACES" };
            gc_table_t *t = gc_table_new(4, hs, "lrrl");
            for (size_t i = 0; t && i < n_shared; i++) {
                const s_shared_t *sh = &shared[i];
                char places[1024];
                size_t o2 = 0;
                places[0] = 0;
                for (uint32_t k = 0; k < sh->records && k < S_PLACES_SHOWN; k++)
                    o2 += (size_t) snprintf(places + o2, sizeof places - o2, "%s%s",
                                            k ? " " : "", s.places[sh->recs[k]].key);
                if (sh->records > S_PLACES_SHOWN && o2 < sizeof places)
                    snprintf(places + o2, sizeof places - o2, " ... (%u more)",
                             sh->records - S_PLACES_SHOWN);
                gc_table_row(t);
                gc_table_cell(t, "%s",
                              gc_mask_phone(s.ents[sh->first].phone, ctx->reveal, pm, sizeof pm));
                gc_table_cell(t, "%u", sh->persons);
                gc_table_cell(t, "%u", sh->records);
                gc_table_cell(t, "%s", places);
            }
            fputc('\n', o);
            if (t)
                gc_table_print(t, o);
            gc_table_destroy(&t);
        }
        fprintf(o, "\nRental units under %g m² per active tenant: %zu\n", area, s.n_crowds);
        if (s.n_crowds) {
            static const char *const hc[] = { "GRID", "RENTAL", "AREA M²", "TENANTS",
                                              "M²/PERSON", "ADDRESS" };
            gc_table_t *t = gc_table_new(6, hc, "llrrrl");
            for (size_t i = 0; t && i < s.n_crowds; i++) {
                const s_crowd_t *c = &s.crowds[i];
                gc_table_row(t);
                gc_table_cell(t, "%s", s.places[c->rec].grid);
                gc_table_cell(t, "%s", s.places[c->rec].key);
                gc_table_cell(t, "%.1f", c->area);
                gc_table_cell(t, "%u", c->tenants);
                gc_table_cell(t, "%.1f", c->area / c->tenants);
                gc_table_cell(t, "%s", c->address ? c->address : "");
            }
            fputc('\n', o);
            if (t)
                gc_table_print(t, o);
            gc_table_destroy(&t);
        }
        if (d.no_secret)
            fprintf(o, "\n(secret.key is not readable: persons were identified by comparing "
                       "places)\n");
    }
    for (size_t i = 0; i < n_shared; i++)
        free(shared[i].recs);
    free(shared);
    if (s.bad)
        rc = gc_fail(ctx, "%d record(s) did not decode; run gridctl verify", s.bad);
done:
    gs_store_destroy(&st);
    s_org_dups_free(&d);
    gc_table_destroy(&d.table);
    gs_arena_destroy(&d.arena);
    s_scan_free(&s);
    return gc_finish(ctx, rc);
}

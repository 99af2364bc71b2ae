/*
 * test_gridctl: the admin tool run as a subprocess (GS_GRIDCTL) against real
 * stores.
 *
 * The group setup builds one store through the store API: a small
 * generated district, plus records made for the findings gridctl reports
 * (a person in two grids, one phone on five unrelated people, an
 * overcrowded rental unit, one USCC at two addresses, a merge alias, an
 * edit, a move, a void, a stall without a USCC) and a
 * grid registry with one grid nobody collected. Every figure the tests
 * expect is counted here while the records are made, not read back from
 * the store. Tests that write (registries) use stores of their own, and
 * the broker test runs the real gridsyncd on a backup of the fixture.
 *
 * Outputs are checked by exit status, by parsing --json with the small
 * parser below (so malformed JSON fails), and for masking by searching
 * every output for every raw ID number and phone the fixture holds.
 * Subprocesses are waited for; nothing sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "gs_arena.h"
#include "gs_client.h"
#include "gs_gen.h"
#include "gs_privacy.h"
#include "gs_store.h"
#include "gs_store_debug.h"
#include "gs_testkit.h"
#include "gs_version.h"

#ifndef GS_GRIDCTL
#error "GS_GRIDCTL must name the gridctl binary"
#endif

#define S_SHARED_PHONE "13912345678"
#define S_HEALTH_SECRET "RESTRICTED-HEALTH-SECRET"
#define S_DUP_SEED 900000u      /* person in two grids */
#define S_PHONE_SEED 910000u    /* five people sharing a phone */
#define S_ORG_SEED 940000u      /* organisations' people */
#define S_USCC "91350100M000100Y43" /* one USCC at two addresses */

/* ---- A small JSON parser, to read what --json prints -------------------------------- */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } s_jtype_t;

typedef struct s_json {
    s_jtype_t type;
    double num;                 /* J_NUM, J_BOOL */
    char *str;                  /* J_STR */
    struct s_json **items;      /* J_ARR values, J_OBJ values */
    char **keys;                /* J_OBJ keys */
    size_t n;
} s_json_t;

static void
s_json_free(s_json_t *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->n; i++) {
        s_json_free(j->items[i]);
        if (j->keys)
            free(j->keys[i]);
    }
    free(j->items);
    free(j->keys);
    free(j->str);
    free(j);
}

static void
s_ws(const char **p)
{
    while (**p == ' ' || **p == '\n' || **p == '\r' || **p == '\t')
        (*p)++;
}

static char *
s_jstring(const char **p)
{
    if (**p != '"')
        return NULL;
    (*p)++;
    size_t cap = 64, n = 0;
    char *s = malloc(cap);
    while (**p && **p != '"') {
        if (n + 8 > cap)
            s = realloc(s, cap *= 2);
        unsigned char c = (unsigned char) *(*p)++;
        if (c < 0x20) {
            free(s);
            return NULL; /* raw control characters are not JSON */
        }
        if (c != '\\') {
            s[n++] = (char) c;
            continue;
        }
        c = (unsigned char) *(*p)++;
        switch (c) {
        case '"': case '\\': case '/': s[n++] = (char) c; break;
        case 'n': s[n++] = '\n'; break;
        case 't': s[n++] = '\t'; break;
        case 'r': s[n++] = '\r'; break;
        case 'b': s[n++] = '\b'; break;
        case 'f': s[n++] = '\f'; break;
        case 'u': {
            unsigned v = 0;
            for (int i = 0; i < 4; i++) {
                char h = *(*p)++;
                v = v * 16 + (unsigned) (h >= 'a' ? h - 'a' + 10 : h >= 'A' ? h - 'A' + 10 : h - '0');
            }
            if (v < 0x80) {
                s[n++] = (char) v;
            } else if (v < 0x800) {
                s[n++] = (char) (0xc0 | v >> 6);
                s[n++] = (char) (0x80 | (v & 0x3f));
            } else {
                s[n++] = (char) (0xe0 | v >> 12);
                s[n++] = (char) (0x80 | ((v >> 6) & 0x3f));
                s[n++] = (char) (0x80 | (v & 0x3f));
            }
            break;
        }
        default:
            free(s);
            return NULL;
        }
    }
    if (**p != '"') {
        free(s);
        return NULL;
    }
    (*p)++;
    s[n] = 0;
    return s;
}

static s_json_t *s_jvalue(const char **p, int depth);

static s_json_t *
s_jcontainer(const char **p, int depth, int obj)
{
    s_json_t *j = calloc(1, sizeof *j);
    j->type = obj ? J_OBJ : J_ARR;
    (*p)++;
    s_ws(p);
    if (**p == (obj ? '}' : ']')) {
        (*p)++;
        return j;
    }
    for (;;) {
        char *key = NULL;
        s_ws(p);
        if (obj) {
            if (!(key = s_jstring(p)))
                goto bad;
            s_ws(p);
            if (*(*p)++ != ':') {
                free(key);
                goto bad;
            }
        }
        s_json_t *v = s_jvalue(p, depth + 1);
        if (!v) {
            free(key);
            goto bad;
        }
        j->items = realloc(j->items, (j->n + 1) * sizeof *j->items);
        if (obj)
            j->keys = realloc(j->keys, (j->n + 1) * sizeof *j->keys);
        j->items[j->n] = v;
        if (obj)
            j->keys[j->n] = key;
        j->n++;
        s_ws(p);
        if (**p == ',') {
            (*p)++;
            continue;
        }
        if (**p == (obj ? '}' : ']')) {
            (*p)++;
            return j;
        }
        goto bad;
    }
bad:
    s_json_free(j);
    return NULL;
}

static s_json_t *
s_jvalue(const char **p, int depth)
{
    s_ws(p);
    if (depth > 64)
        return NULL;
    if (**p == '{' || **p == '[')
        return s_jcontainer(p, depth, **p == '{');
    s_json_t *j = calloc(1, sizeof *j);
    if (**p == '"') {
        j->type = J_STR;
        if (!(j->str = s_jstring(p))) {
            free(j);
            return NULL;
        }
    } else if (!strncmp(*p, "true", 4) || !strncmp(*p, "false", 5)) {
        j->type = J_BOOL;
        j->num = **p == 't';
        *p += **p == 't' ? 4 : 5;
    } else if (!strncmp(*p, "null", 4)) {
        j->type = J_NULL;
        *p += 4;
    } else {
        char *end;
        j->type = J_NUM;
        j->num = strtod(*p, &end);
        if (end == *p) {
            free(j);
            return NULL;
        }
        *p = end;
    }
    return j;
}

/* Parse one document that must fill text (trailing whitespace allowed). */
static s_json_t *
s_json_parse(const char *text)
{
    const char *p = text;
    s_json_t *j = s_jvalue(&p, 0);
    s_ws(&p);
    if (j && *p) {
        s_json_free(j);
        return NULL;
    }
    return j;
}

/* Parse JSON lines: each line one document. Returns the count; *out holds
 * them (free each and the array). Fails the test on a bad line. */
static size_t
s_json_lines(const char *text, s_json_t ***out)
{
    size_t n = 0;
    *out = NULL;
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t) (nl - p) : strlen(p);
        char *line = strndup(p, len);
        s_json_t *j = s_json_parse(line);
        if (!j)
            fprintf(stderr, "not JSON: %.300s\n", line);
        assert_non_null(j);
        free(line);
        *out = realloc(*out, (n + 1) * sizeof **out);
        (*out)[n++] = j;
        p += len + (nl ? 1 : 0);
    }
    return n;
}

static void
s_json_lines_free(s_json_t **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        s_json_free(v[i]);
    free(v);
}

/* Member key of an object (NULL if absent or not an object). */
static const s_json_t *
s_jget(const s_json_t *j, const char *key)
{
    if (!j || j->type != J_OBJ)
        return NULL;
    for (size_t i = 0; i < j->n; i++)
        if (!strcmp(j->keys[i], key))
            return j->items[i];
    return NULL;
}

static double
s_jnum(const s_json_t *j, const char *key)
{
    const s_json_t *v = s_jget(j, key);
    assert_non_null(v);
    assert_true(v->type == J_NUM || v->type == J_BOOL);
    return v->num;
}

static const char *
s_jstr(const s_json_t *j, const char *key)
{
    const s_json_t *v = s_jget(j, key);
    if (!v || v->type != J_STR)
        return NULL;
    return v->str;
}

/* ---- The fixture -------------------------------------------------------------------------- */

/* What was loaded into one street. */
typedef struct s_tally {
    char street[10];            /* 9-digit prefix */
    long households, persons;   /* active */
    long rentals, tenants;      /* active; tenants = leases */
    long organisations, employees; /* active */
    long voided;                /* void records */
    long records;               /* active records (export jsonl lines) */
    long csv_rows;              /* export csv rows: members, tenants, landlord persons,
                                 * organisations' representatives, contacts, employees */
} s_tally_t;

typedef struct s_env {
    char dir[64];               /* temp dir */
    char store[128];            /* the fixture store */
    gs_gen_t *gen;              /* the district */
    gs_arena_t *arena;          /* records being built */
    gs_store_t *st;             /* open during setup only */
    uint32_t grids;             /* generated grids */
    char grid0[16], grid1[16], grid_last[16]; /* first, second and last grid */
    char extra_grid[16];        /* registered, never collected */
    s_tally_t tally[2];         /* per street */
    long grid0_records;         /* records (any status) in grid0 */
    char **secrets;             /* every raw ID number and phone loaded */
    size_t n_secrets, cap_secrets;
    char dup_id[19];            /* ID number of the person in two grids */
    char void_key[32];          /* the household voided */
    int uploads;                /* upload ids used */
    int runs;                   /* subprocesses run (output file names) */
} s_env_t;

static void
s_secret(s_env_t *e, const char *s)
{
    if (!s || strlen(s) < 7)
        return;
    if (e->n_secrets == e->cap_secrets) {
        e->cap_secrets = e->cap_secrets ? e->cap_secrets * 2 : 256;
        e->secrets = realloc(e->secrets, e->cap_secrets * sizeof *e->secrets);
    }
    e->secrets[e->n_secrets++] = strdup(s);
}

static void
s_person_secrets(s_env_t *e, const Gridsync__V1__Person *p)
{
    if (!p)
        return;
    s_secret(e, p->id_number);
    for (size_t i = 0; i < p->n_phones; i++)
        s_secret(e, p->phones[i]);
    if (p->floating)
        s_secret(e, p->floating->permit_number);
}

static s_tally_t *
s_street(s_env_t *e, const char *grid)
{
    for (int i = 0; i < 2; i++)
        if (!strncmp(e->tally[i].street, grid, 9))
            return &e->tally[i];
    fail_msg("grid %s is in no street of the fixture", grid);
    return NULL;
}

/* Count an active record into its street (sign -1 takes it out again). */
static void
s_count(s_env_t *e, const Gridsync__V1__Record *r, int sign)
{
    if (r->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD) {
        const Gridsync__V1__Household *h = r->household;
        s_tally_t *t = s_street(e, h->grid_code);
        t->households += sign;
        t->persons += sign * (long) h->n_members;
        t->records += sign;
        t->csv_rows += sign * (long) h->n_members;
        if (sign > 0)
            for (size_t i = 0; i < h->n_members; i++)
                s_person_secrets(e, h->members[i]);
    } else if (r->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION) {
        const Gridsync__V1__OrganisationUnit *o = r->organisation;
        s_tally_t *t = s_street(e, o->grid_code);
        t->organisations += sign;
        t->employees += sign * (long) o->n_employees;
        t->records += sign;
        t->csv_rows += sign * ((long) o->n_employees + (o->legal_representative ? 1 : 0) +
                               (o->contact ? 1 : 0));
        if (sign > 0) {
            s_person_secrets(e, o->legal_representative);
            s_person_secrets(e, o->contact);
            for (size_t i = 0; i < o->n_employees; i++)
                s_person_secrets(e, o->employees[i]);
            for (size_t i = 0; i < o->n_phones; i++)
                s_secret(e, o->phones[i]);
        }
    } else {
        const Gridsync__V1__RentalHousing *h = r->rental;
        s_tally_t *t = s_street(e, h->grid_code);
        t->rentals += sign;
        t->tenants += sign * (long) h->n_leases;
        t->records += sign;
        t->csv_rows += sign * (long) h->n_leases;
        if (h->landlord &&
            h->landlord->party_case == GRIDSYNC__V1__LANDLORD__PARTY_PERSON) {
            t->csv_rows += sign;
            if (sign > 0)
                s_person_secrets(e, h->landlord->person);
        }
        if (sign > 0) {
            for (size_t i = 0; i < h->n_leases; i++)
                s_person_secrets(e, h->leases[i]->tenant);
            if (h->building && h->building->head)
                s_secret(e, h->building->head->phone);
            if (h->landlord &&
                h->landlord->party_case == GRIDSYNC__V1__LANDLORD__PARTY_ORGANISATION)
                s_secret(e, h->landlord->organisation->contact_phone);
        }
    }
}

/* Apply one upload straight to store st; each record must get expect[i]
 * (NULL: all ACCEPTED). */
static void
s_apply_to(s_env_t *e, gs_store_t *st, Gridsync__V1__Record **recs, size_t n, const int *expect)
{
    char uid[32];
    snprintf(uid, sizeof uid, "ctltest-%d", ++e->uploads);
    gs_upload_t up;
    memset(&up, 0, sizeof up);
    up.device_id = "dev-ctltest";
    up.upload_id = uid;
    up.records = recs;
    up.n_records = n;
    up.alloc = gs_arena_allocator(e->arena);
    up.scope_all = 1;
    gs_apply_out_t out;
    memset(&out, 0, sizeof out);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    assert_int_equal(gs_store_apply(st, &up, 1, now, &out), 0);
    Gridsync__V1__Ack *ack =
        gridsync__v1__ack__unpack(NULL, out.uploads[0].ack_len, out.uploads[0].ack);
    assert_non_null(ack);
    assert_int_equal(ack->n_results, n);
    for (size_t i = 0; i < n; i++) {
        int want = expect ? expect[i] : GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED;
        if ((int) ack->results[i]->status != want)
            fprintf(stderr, "record %zu: status %d: %s\n", i, ack->results[i]->status,
                    ack->results[i]->message);
        assert_int_equal(ack->results[i]->status, want);
    }
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_apply_out_clear(&out);
}

/* The same to the fixture's store. */
static void
s_apply(s_env_t *e, Gridsync__V1__Record **recs, size_t n, const int *expect)
{
    s_apply_to(e, e->st, recs, n, expect);
}

static void
s_phone(gs_arena_t *a, Gridsync__V1__Person *p, const char *phone)
{
    p->n_phones = 1;
    p->phones = gs_arena_alloc(a, sizeof(char *));
    p->phones[0] = gs_arena_strdup(a, phone);
}

/* A rental unit of area m² with tenants people leasing since 2024. */
static Gridsync__V1__Record *
s_rental(s_env_t *e, const char *grid, const char *id, double area, int tenants, uint32_t seed)
{
    gs_arena_t *a = e->arena;
    Gridsync__V1__Record *people = gs_tk_household(a, grid, "tmp", NULL, tenants, seed);
    Gridsync__V1__Record *rec = gs_arena_alloc(a, sizeof *rec);
    Gridsync__V1__RentalHousing *h = gs_arena_alloc(a, sizeof *h);
    Gridsync__V1__RecordMeta *meta = gs_arena_alloc(a, sizeof *meta);
    gridsync__v1__record__init(rec);
    gridsync__v1__rental_housing__init(h);
    gridsync__v1__record_meta__init(meta);
    rec->body_case = GRIDSYNC__V1__RECORD__BODY_RENTAL;
    rec->rental = h;
    h->house_id = gs_arena_strdup(a, id);
    h->grid_code = gs_arena_strdup(a, grid);
    h->address = gs_arena_strdup(a, "测试村3巷5号201房");
    h->address_code = gs_arena_strdup(a, "ADDR-CROWD");
    h->area_m2 = area;
    h->n_leases = (size_t) tenants;
    h->leases = gs_arena_alloc(a, sizeof(void *) * (size_t) tenants);
    for (int i = 0; i < tenants; i++) {
        Gridsync__V1__Lease *l = gs_arena_alloc(a, sizeof *l);
        gridsync__v1__lease__init(l);
        l->tenant = people->household->members[i];
        l->tenant->relation = GRIDSYNC__V1__RELATION__RELATION_UNSPECIFIED;
        l->start_date = gs_arena_strdup(a, "2024-01-01");
        h->leases[i] = l;
    }
    meta->device_id = gs_arena_strdup(a, "dev-ctltest");
    meta->collector_id = gs_arena_strdup(a, "col-test");
    meta->collected_at = 1760000000000;
    h->meta = meta;
    return rec;
}

/* The generated district, one upload per 50 records. */
static void
s_load_district(s_env_t *e)
{
    Gridsync__V1__Record *recs[50];
    size_t n = 0;
    for (uint32_t g = 0; g < e->grids; g++) {
        uint32_t hf, hn, rf, rn;
        gs_gen_grid_households(e->gen, g, &hf, &hn);
        gs_gen_grid_rentals(e->gen, g, &rf, &rn);
        for (uint32_t i = 0; i < hn + rn; i++) {
            recs[n] = i < hn ? gs_gen_household(e->gen, hf + i, e->arena)
                             : gs_gen_rental(e->gen, rf + i - hn, e->arena);
            assert_non_null(recs[n]);
            s_count(e, recs[n], 1);
            if (g == 0)
                e->grid0_records++;
            if (++n == 50) {
                s_apply(e, recs, n, NULL);
                gs_arena_reset(e->arena);
                n = 0;
            }
        }
    }
    if (n)
        s_apply(e, recs, n, NULL);
    gs_arena_reset(e->arena);
}

/* The records behind the findings, edits, a move and a void. */
static void
s_load_findings(s_env_t *e)
{
    gs_arena_t *a = e->arena;
    const int accepted = GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED;
    const int merged = GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_MERGED;

    /* one person heading households in two grids of two streets; the first
     * household has restricted health data, and an alias by merge */
    Gridsync__V1__Record *dup_a = gs_tk_household(a, e->grid0, "HDUP-A", "ADDR-DUP-A", 2,
                                                  S_DUP_SEED);
    Gridsync__V1__Restricted *rs = gs_arena_alloc(a, sizeof *rs);
    gridsync__v1__restricted__init(rs);
    rs->health = gs_arena_strdup(a, S_HEALTH_SECRET);
    dup_a->household->members[1]->restricted = rs;
    Gridsync__V1__Record *alias = gs_tk_household(a, e->grid0, "HDUP-A2", "ADDR-DUP-A", 2,
                                                  S_DUP_SEED);
    alias->household->members[1]->restricted = rs;
    Gridsync__V1__Record *dup_b = gs_tk_household(a, e->grid_last, "HDUP-B", "ADDR-DUP-B", 1,
                                                  S_DUP_SEED);
    snprintf(e->dup_id, sizeof e->dup_id, "%s", dup_a->household->members[0]->id_number);

    /* a household that moves from grid1 to the last grid */
    Gridsync__V1__Record *mv = gs_tk_household(a, e->grid1, "HMOVE", "ADDR-MOVE", 2, 920000);

    /* five unrelated people, in five households, with one phone; one has
     * an address a CSV must quote and a name a spreadsheet would run */
    Gridsync__V1__Record *ph[5];
    for (int i = 0; i < 5; i++) {
        char id[16], addr[32];
        snprintf(id, sizeof id, "HPHONE-%d", i);
        snprintf(addr, sizeof addr, "ADDR-PHONE-%d", i);
        ph[i] = gs_tk_household(a, i % 2 ? e->grid1 : e->grid_last, id, addr, 1,
                                S_PHONE_SEED + (uint32_t) i * 7);
        s_phone(a, ph[i]->household->members[0], S_SHARED_PHONE);
    }
    ph[0]->household->address = gs_arena_strdup(a, "幸福路1号, \"东\"楼");
    ph[1]->household->members[0]->name = gs_arena_strdup(a, "=1+2");

    /* 3 tenants in 10 m²: 3.3 m² each */
    Gridsync__V1__Record *crowd = s_rental(e, e->grid0, "R-CROWD", 10.0, 3, 930000);

    /* one USCC at two addresses in two streets (a branch), and a stall
     * without a USCC; the shop's employee 0 lives in HDUP-B's household */
    Gridsync__V1__Record *shop = gs_tk_org(a, e->grid0, "O-SHOP", S_USCC, "ADDR-SHOP-1", 2,
                                           S_ORG_SEED);
    shop->organisation->employees[0] = dup_b->household->members[0];
    s_phone(a, shop->organisation->employees[1], "0755-26001234");
    Gridsync__V1__Record *branch = gs_tk_org(a, e->grid_last, "O-BRANCH", S_USCC,
                                             "ADDR-SHOP-2", 1, S_ORG_SEED + 10);
    Gridsync__V1__Record *stall = gs_tk_org(a, e->grid1, "O-STALL", NULL, NULL, 0,
                                            S_ORG_SEED + 20);

    Gridsync__V1__Record *recs[] = { dup_a, alias, dup_b, mv, ph[0], ph[1], ph[2], ph[3],
                                     ph[4], crowd, shop, branch, stall };
    int expect[] = { accepted, merged, accepted, accepted, accepted, accepted, accepted,
                     accepted, accepted, accepted, accepted, accepted, accepted };
    s_apply(e, recs, 13, expect);
    for (size_t i = 0; i < 13; i++)
        if (i != 1)
            s_count(e, recs[i], 1);
    e->grid0_records += 3; /* HDUP-A, R-CROWD and O-SHOP; the alias is not a record */
    s_secret(e, S_SHARED_PHONE);
    gs_arena_reset(a);

    /* edit HDUP-A (v2), move HMOVE to the last grid, void a generated one */
    dup_a = gs_tk_household(a, e->grid0, "HDUP-A", "ADDR-DUP-A", 2, S_DUP_SEED);
    dup_a->household->members[1]->restricted = rs = gs_arena_alloc(a, sizeof *rs);
    gridsync__v1__restricted__init(rs);
    rs->health = gs_arena_strdup(a, S_HEALTH_SECRET);
    dup_a->household->address = gs_arena_strdup(a, "改过的地址");
    dup_a->household->meta->base_version = 1;
    mv = gs_tk_household(a, e->grid_last, "HMOVE", "ADDR-MOVE", 2, 920000);
    mv->household->meta->base_version = 1;
    uint32_t hf, hn;
    gs_gen_grid_households(e->gen, 0, &hf, &hn);
    Gridsync__V1__Record *vd = gs_gen_household(e->gen, hf + 1, a);
    snprintf(e->void_key, sizeof e->void_key, "%s", vd->household->household_id);
    vd->household->meta->base_version = 1;
    vd->household->meta->status = GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_VOID;
    Gridsync__V1__Record *recs2[] = { dup_a, mv, vd };
    s_apply(e, recs2, 3, NULL);
    /* the move changes streets; the void leaves the counts for "voided" */
    Gridsync__V1__Record *old_mv = gs_tk_household(a, e->grid1, "HMOVE", "ADDR-MOVE", 2, 920000);
    s_count(e, old_mv, -1);
    s_count(e, mv, 1);
    s_count(e, vd, -1);
    s_street(e, e->grid0)->voided++;
    gs_arena_reset(a);
}

static int
s_setup(void **state)
{
    s_env_t *e = calloc(1, sizeof *e);
    gs_tk_tmpdir(e->dir, sizeof e->dir);
    snprintf(e->store, sizeof e->store, "%s/store", e->dir);
    gs_gen_opts_t go;
    gs_gen_opts_init(&go);
    go.seed = 5;
    go.streets = 2;
    go.grids = 6;
    go.households = 120;
    go.rental_buildings = 6;
    go.units_per_building = 3;
    /* "today" a day ago, so nothing generated lies in the future */
    go.now_ms = (int64_t) time(NULL) * 1000 - 86400000;
    e->gen = gs_gen_new(&go);
    e->arena = gs_arena_new(0);
    e->st = gs_store_new(e->store, NULL, NULL);
    if (!e->gen || !e->arena || !e->st)
        return -1;
    e->grids = gs_gen_grid_count(e->gen);
    snprintf(e->grid0, sizeof e->grid0, "%s", gs_gen_grid_code(e->gen, 0));
    snprintf(e->grid1, sizeof e->grid1, "%s", gs_gen_grid_code(e->gen, 1));
    snprintf(e->grid_last, sizeof e->grid_last, "%s", gs_gen_grid_code(e->gen, e->grids - 1));
    snprintf(e->tally[0].street, 10, "%.9s", e->grid0);
    snprintf(e->tally[1].street, 10, "%.9s", e->grid_last);
    if (!strcmp(e->tally[0].street, e->tally[1].street) || strncmp(e->grid0, e->grid1, 9))
        return -1; /* the tests assume grids 0 and 1 share street 1 */
    s_load_district(e);
    s_load_findings(e);
    /* the registry: every generated grid, and one in grid0's community that
     * nobody collected */
    snprintf(e->extra_grid, sizeof e->extra_grid, "%.12s099", e->grid0);
    for (uint32_t g = 0; g <= e->grids; g++) {
        Gridsync__V1__Grid gr = GRIDSYNC__V1__GRID__INIT;
        gr.grid_code = (char *) (g < e->grids ? gs_gen_grid_code(e->gen, g) : e->extra_grid);
        gr.name = (char *) (g < e->grids ? gs_gen_grid_name(e->gen, g) : "未采集网格");
        if (gs_store_grid_put(e->st, &gr))
            return -1;
    }
    gs_store_destroy(&e->st);
    *state = e;
    return 0;
}

static int
s_teardown(void **state)
{
    s_env_t *e = *state;
    gs_store_destroy(&e->st);
    gs_arena_destroy(&e->arena);
    gs_gen_destroy(&e->gen);
    for (size_t i = 0; i < e->n_secrets; i++)
        free(e->secrets[i]);
    free(e->secrets);
    gs_tk_rmtree(e->dir);
    free(e);
    return 0;
}

/* ---- Running gridctl ------------------------------------------------------------------------ */

typedef struct s_res {
    int status;                 /* exit status, or -1 if it did not exit */
    char *out;                  /* stdout */
    char *err;                  /* stderr */
} s_res_t;

static void
s_res_free(s_res_t *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

/* Start gridctl [--store store] args... with stdout and stderr to files. */
static pid_t
s_spawn(s_env_t *e, const char *store, const char *const *args, char *outp, char *errp)
{
    int id = ++e->runs;
    snprintf(outp, 128, "%s/run-%d.out", e->dir, id);
    snprintf(errp, 128, "%s/run-%d.err", e->dir, id);
    const char *argv[64];
    int argc = 0;
    argv[argc++] = GS_GRIDCTL;
    if (store) {
        argv[argc++] = "--store";
        argv[argc++] = store;
    }
    for (int i = 0; args[i] && argc < 63; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int r = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(o, STDOUT_FILENO);
        dup2(r, STDERR_FILENO);
        unsetenv("GRIDSYNC_STORE");
        execv(GS_GRIDCTL, (char *const *) argv);
        _exit(127);
    }
    return pid;
}

static s_res_t
s_wait(pid_t pid, const char *outp, const char *errp)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    s_res_t r;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.out = gs_tk_read_file(outp, NULL, 1);
    r.err = gs_tk_read_file(errp, NULL, 1);
    unlink(outp);
    unlink(errp);
    return r;
}

static s_res_t
s_runv(s_env_t *e, const char *store, const char *const *args)
{
    char outp[128], errp[128];
    pid_t pid = s_spawn(e, store, args, outp, errp);
    return s_wait(pid, outp, errp);
}

/* gridctl --store STORE args... (NULL-terminated) */
static s_res_t
s_run(s_env_t *e, const char *store, ...)
{
    const char *args[60];
    int n = 0;
    va_list ap;
    va_start(ap, store);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 59)
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    return s_runv(e, store, args);
}

#define S_CTL(e, ...) s_run((e), (e)->store, __VA_ARGS__, NULL)

/* Exit status must be want; shows stderr when it is not. */
static void
s_expect(const s_res_t *r, int want)
{
    if (r->status != want)
        fprintf(stderr, "exit %d (wanted %d)\nstdout: %.2000s\nstderr: %.2000s\n", r->status, want,
                r->out, r->err);
    assert_int_equal(r->status, want);
}

/* No raw ID number or phone of the fixture in text. */
static void
s_no_secrets(const s_env_t *e, const char *text)
{
    for (size_t i = 0; i < e->n_secrets; i++)
        if (strstr(text, e->secrets[i])) {
            fprintf(stderr, "unmasked personal data in output: %s\n", e->secrets[i]);
            fail();
        }
    assert_null(strstr(text, S_HEALTH_SECRET));
}

/* ---- Tests ------------------------------------------------------------------------------------ */

/* Exit statuses: 0 done, 1 missing store / unknown key, 2 bad arguments;
 * help for every command. */
static void
test_exit_codes(void **state)
{
    s_env_t *e = *state;
    s_res_t r = s_run(e, NULL, (const char *) NULL);
    s_expect(&r, 2);
    assert_non_null(strstr(r.err, "Usage: gridctl"));
    s_res_free(&r);
    r = s_run(e, NULL, "--help", NULL);
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "Commands:"));
    s_res_free(&r);
    static const char *const cmds[] = { "stats", "ls", "get", "history", "dups", "tail",
                                        "export", "devices", "grids", "backup", "verify",
                                        "health" };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        r = s_run(e, NULL, cmds[i], "--help", NULL);
        s_expect(&r, 0);
        assert_non_null(strstr(r.out, "Usage: gridctl"));
        s_res_free(&r);
        r = s_run(e, NULL, "help", cmds[i], NULL);
        s_expect(&r, 0);
        s_res_free(&r);
    }

    /* bad arguments: 2, before the store is even opened */
    static const char *const bad[][8] = {
        { "frobnicate" },
        { "stats", "--bogus" },
        { "stats", "12a" },
        { "stats", "4403", "4404" },
        { "stats", "--level", "planet" },
        { "ls" },
        { "get" },
        { "get", "bad key!" },
        { "tail", "--limit", "0" },
        { "tail", "--since", "-3" },
        { "tail", "--feed", "tcp://127.0.0.1:1" },
        { "export", "4403" },
        { "export", "4403", "--format", "xml" },
        { "dups", "--phone-min", "1" },
        { "devices", "frob", "x" },
        { "devices", "add", "dev-x", "--collector", "c", "--prefix", "12a" },
        { "grids" },
        { "backup" },
        { "verify", "extra" },
        { "health", "--admin", "tcp://127.0.0.1:1" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[10] = { 0 };
        for (int k = 0; k < 8 && bad[i][k]; k++)
            args[k] = bad[i][k];
        r = s_runv(e, e->store, args);
        if (r.status != 2)
            fprintf(stderr, "case %zu (%s %s)\n", i, bad[i][0], bad[i][1] ? bad[i][1] : "");
        s_expect(&r, 2);
        assert_true(strlen(r.err) > 0);
        s_res_free(&r);
    }

    /* a missing store: 1 and the advice, for reads and writes alike; and
     * nothing is created there */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no-such-store", e->dir);
    r = s_run(e, missing, "stats", NULL);
    s_expect(&r, 1);
    assert_non_null(strstr(r.err, "no store at"));
    assert_non_null(strstr(r.err, "start gridsyncd or pass --store"));
    s_res_free(&r);
    r = s_run(e, missing, "devices", "add", "dev-x", "--collector", "c", "--prefix", "440305",
              NULL);
    s_expect(&r, 1);
    assert_non_null(strstr(r.err, "no store at"));
    s_res_free(&r);
    struct stat sb;
    assert_int_equal(stat(missing, &sb), -1);

    /* unknown keys: 1 */
    r = S_CTL(e, "get", "H-NO-SUCH");
    s_expect(&r, 1);
    assert_non_null(strstr(r.err, "no record with id 'H-NO-SUCH'"));
    s_res_free(&r);
    r = S_CTL(e, "history", "H-NO-SUCH");
    s_expect(&r, 1);
    s_res_free(&r);
    r = S_CTL(e, "devices", "show", "dev-no-such");
    s_expect(&r, 1);
    s_res_free(&r);
}

/* gridctl --help names every command it dispatches, and on the devices and
 * grids lines every action: the actions come from the dispatch itself
 * (the list its "unknown action" message gives), each is checked to be
 * dispatched (it does not answer "unknown action"), and each must appear
 * in the command's line of gridctl --help and in COMMAND --help. */
static void
test_help_lists_every_command(void **state)
{
    s_env_t *e = *state;
    s_res_t help = s_run(e, NULL, "--help", NULL);
    s_expect(&help, 0);
    const char *cmds = strstr(help.out, "Commands:\n");
    assert_non_null(cmds);
    /* every command line of the help is one the dispatch knows */
    size_t listed = 0;
    for (const char *l = strchr(cmds, '\n') + 1; l[0] == ' ' && l[1] == ' ' && l[2] != ' ' &&
                                                 l[2] != '-';
         l = strchr(l, '\n') + 1) {
        char name[32];
        assert_int_equal(sscanf(l, " %31s", name), 1);
        s_res_t r = s_run(e, NULL, name, "--help", NULL);
        s_expect(&r, 0);
        s_res_free(&r);
        listed++;
    }
    assert_true(listed >= 12);

    static const char *const with_actions[] = { "devices", "grids" };
    for (size_t c = 0; c < 2; c++) {
        const char *cmd = with_actions[c];
        char line[64];
        snprintf(line, sizeof line, "\n  %s ", cmd);
        const char *l = strstr(cmds, line);
        assert_non_null(l);
        const char *eol = strchr(l + 1, '\n');
        assert_non_null(eol);
        char help_line[256];
        snprintf(help_line, sizeof help_line, "%.*s", (int) (eol - l - 1), l + 1);
        s_res_t sub = s_run(e, NULL, cmd, "--help", NULL);
        s_expect(&sub, 0);
        s_res_t bad = S_CTL(e, cmd, "frobnicate", "x");
        s_expect(&bad, 2);
        const char *open = strstr(bad.err, "unknown action 'frobnicate' (");
        assert_non_null(open);
        open = strchr(open, '(') + 1;
        const char *close = strchr(open, ')');
        assert_non_null(close);
        char list[256];
        snprintf(list, sizeof list, "%.*s", (int) (close - open), open);
        size_t n = 0;
        for (char *save = NULL, *act = strtok_r(list, ", ", &save); act;
             act = strtok_r(NULL, ", ", &save), n++) {
            /* dispatched: whatever it says, not "unknown action" */
            s_res_t r = S_CTL(e, cmd, act);
            assert_null(strstr(r.err, "unknown action"));
            s_res_free(&r);
            char word[48];
            snprintf(word, sizeof word, " %s", act);
            if (!strstr(help_line, word) || !strstr(sub.out, word))
                fprintf(stderr, "%s %s is not in gridctl --help's line '%s' or in %s --help\n",
                        cmd, act, help_line, cmd);
            assert_non_null(strstr(help_line, word));
            assert_non_null(strstr(sub.out, word));
        }
        assert_true(n >= 2);
        s_res_free(&bad);
        s_res_free(&sub);
    }
    s_res_free(&help);
}

/* stats adds up the per-cell counters to exactly what was loaded, at the
 * level below the prefix, with coverage against the registry. */
static void
test_stats(void **state)
{
    s_env_t *e = *state;
    s_res_t r = S_CTL(e, "stats", "--json");
    s_expect(&r, 0);
    s_json_t *j = s_json_parse(r.out);
    assert_non_null(j);
    /* one district of two streets: the rows are the streets */
    assert_string_equal(s_jstr(j, "level"), "street");
    const s_json_t *rows = s_jget(j, "rows");
    assert_int_equal(rows->n, 2);
    s_tally_t sum;
    memset(&sum, 0, sizeof sum);
    for (int i = 0; i < 2; i++) {
        const s_json_t *row = rows->items[i];
        const s_tally_t *t = &e->tally[i];
        assert_string_equal(s_jstr(row, "code"), t->street);
        assert_int_equal((long) s_jnum(row, "households"), t->households);
        assert_int_equal((long) s_jnum(row, "persons"), t->persons);
        assert_int_equal((long) s_jnum(row, "rentals"), t->rentals);
        assert_int_equal((long) s_jnum(row, "tenants"), t->tenants);
        assert_int_equal((long) s_jnum(row, "voided"), t->voided);
        sum.households += t->households;
        sum.persons += t->persons;
        sum.tenants += t->tenants;
    }
    const s_json_t *tot = s_jget(j, "totals");
    assert_int_equal((long) s_jnum(tot, "households"), sum.households);
    assert_int_equal((long) s_jnum(tot, "persons"), sum.persons);
    assert_int_equal((long) s_jnum(tot, "tenants"), sum.tenants);
    /* every generated grid is collected; the extra one is not */
    assert_int_equal((long) s_jnum(tot, "grids_registered"), e->grids + 1);
    assert_int_equal((long) s_jnum(tot, "grids_registered_collected"), e->grids);
    assert_true(fabs(s_jnum(tot, "coverage") - (double) e->grids / (e->grids + 1)) < 1e-6);
    assert_true(s_jnum(j, "head_seq") > 0);
    s_json_free(j);
    s_res_free(&r);

    /* a street: one row per grid (its one community), the uncollected grid
     * among them */
    r = S_CTL(e, "stats", e->tally[0].street, "--json");
    s_expect(&r, 0);
    j = s_json_parse(r.out);
    assert_non_null(j);
    assert_string_equal(s_jstr(j, "level"), "grid");
    rows = s_jget(j, "rows");
    int empty = 0, named = 0;
    long households = 0;
    for (size_t i = 0; i < rows->n; i++) {
        const s_json_t *row = rows->items[i];
        households += (long) s_jnum(row, "households");
        if (!strcmp(s_jstr(row, "code"), e->extra_grid)) {
            assert_string_equal(s_jstr(row, "status"), "empty");
            assert_string_equal(s_jstr(row, "name"), "未采集网格");
            empty++;
        } else {
            assert_string_equal(s_jstr(row, "status"), "collected");
        }
        named += s_jstr(row, "name") != NULL;
    }
    assert_int_equal(empty, 1);
    assert_int_equal(named, (int) rows->n);
    assert_int_equal(households, e->tally[0].households);
    s_json_free(j);
    s_res_free(&r);

    /* the table: aligned columns and a totals row */
    r = S_CTL(e, "stats");
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "STREET"));
    assert_non_null(strstr(r.out, "total"));
    assert_non_null(strstr(r.out, e->tally[1].street));
    char cov[64];
    snprintf(cov, sizeof cov, "%u of %u registered grids collected", e->grids, e->grids + 1);
    assert_non_null(strstr(r.out, cov));
    s_res_free(&r);
}

/* ls and get: the records of a grid; one record in full, by alias too. */
static void
test_ls_get(void **state)
{
    s_env_t *e = *state;
    s_res_t r = S_CTL(e, "ls", e->grid0, "--json");
    s_expect(&r, 0);
    s_json_t **lines;
    size_t n = s_json_lines(r.out, &lines);
    assert_int_equal((long) n, e->grid0_records);
    int seen_void = 0, seen_crowd = 0;
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(s_jstr(lines[i], "grid"), e->grid0);
        if (!strcmp(s_jstr(lines[i], "record_key"), e->void_key)) {
            assert_string_equal(s_jstr(lines[i], "status"), "void");
            seen_void = 1;
        }
        if (!strcmp(s_jstr(lines[i], "record_key"), "R-CROWD")) {
            assert_string_equal(s_jstr(lines[i], "kind"), "rental");
            assert_int_equal((int) s_jnum(lines[i], "people"), 3);
            seen_crowd = 1;
        }
    }
    assert_true(seen_void && seen_crowd);
    s_json_lines_free(lines, n);
    s_res_free(&r);

    r = S_CTL(e, "ls", e->grid0, "--kind", "rental", "--limit", "1");
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "ADDRESS"));
    assert_null(strstr(r.out, "household "));
    s_res_free(&r);

    /* get by the alias left by the merge: the canonical record, v2 */
    r = S_CTL(e, "get", "HDUP-A2", "--json");
    s_expect(&r, 0);
    s_json_t *j = s_json_parse(r.out);
    assert_non_null(j);
    assert_string_equal(s_jstr(j, "record_key"), "HDUP-A");
    assert_string_equal(s_jstr(j, "requested"), "HDUP-A2");
    assert_int_equal((int) s_jnum(j, "version"), 2);
    assert_string_equal(s_jstr(j, "status"), "active");
    const s_json_t *rec = s_jget(j, "record");
    assert_string_equal(s_jstr(rec, "address"), "改过的地址");
    const s_json_t *m0 = s_jget(rec, "members")->items[0];
    char masked[32];
    gs_mask_idnum(e->dup_id, masked, sizeof masked);
    assert_string_equal(s_jstr(m0, "id_number"), masked);
    const s_json_t *m1 = s_jget(rec, "members")->items[1];
    assert_string_equal(s_jstr(s_jget(m1, "restricted"), "health"), "***");
    s_json_free(j);
    s_res_free(&r);

    r = S_CTL(e, "get", "HDUP-A");
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, masked));
    assert_non_null(strstr(r.out, "health: ***"));
    assert_non_null(strstr(r.out, "version   2"));
    s_res_free(&r);
}

/* Nothing personal leaves gridctl unmasked without --reveal; --reveal is
 * logged before anything is shown. */
static void
test_masking_and_reveal(void **state)
{
    s_env_t *e = *state;
    char audit[160];
    snprintf(audit, sizeof audit, "%s/audit.log", e->store);
    static const char *const runs[][8] = {
        { "get", "HDUP-A" },
        { "get", "HDUP-A", "--json" },
        { "get", "R-CROWD" },
        { "ls", "" },
        { "export", "", "--format", "jsonl" },
        { "export", "", "--format", "csv" },
        { "dups" },
        { "dups", "--json" },
        { "tail", "--since", "0", "--json" },
        { "tail", "--since", "0" },
        { "history", "HDUP-A", "--json" },
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        const char *args[10] = { 0 };
        for (int k = 0; k < 8 && runs[i][k]; k++)
            args[k] = runs[i][k];
        if (!strcmp(args[0], "ls"))
            args[1] = e->grid0;
        s_res_t r = s_runv(e, e->store, args);
        s_expect(&r, 0);
        assert_true(strlen(r.out) > 0);
        s_no_secrets(e, r.out);
        s_no_secrets(e, r.err);
        s_res_free(&r);
    }
    struct stat sb;
    assert_int_equal(stat(audit, &sb), -1); /* nothing revealed, nothing logged */

    /* --reveal shows them, says so, and logs it */
    s_res_t r = S_CTL(e, "get", "HDUP-A", "--reveal", "--json");
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, e->dup_id));
    assert_non_null(strstr(r.out, S_HEALTH_SECRET));
    assert_non_null(strstr(r.err, "--reveal"));
    s_res_free(&r);
    r = s_run(e, e->store, "--reveal", "export", e->grid_last, "--format", "csv", NULL);
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, S_SHARED_PHONE));
    s_res_free(&r);
    assert_int_equal(stat(audit, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    char *log = gs_tk_read_file(audit, NULL, 1);
    int lines = 0;
    for (const char *p = log; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 2);
    assert_non_null(strstr(log, "cmd=\"get\""));
    assert_non_null(strstr(log, "HDUP-A"));
    assert_non_null(strstr(log, "cmd=\"export\""));
    assert_non_null(strstr(log, "uid="));
    free(log);
    unlink(audit);

    /* no audit log, no reveal */
    chmod(e->store, 0500);
    if (access(e->store, W_OK) != 0) { /* root writes anyway: nothing to test then */
        r = S_CTL(e, "get", "HDUP-A", "--reveal");
        s_expect(&r, 1);
        assert_null(strstr(r.out, e->dup_id));
        s_res_free(&r);
    }
    chmod(e->store, 0700);
}

/* Organisations in ls, get, history, stats and export: their own kind,
 * employees counted as their people, masked like everyone else. */
static void
test_organisations(void **state)
{
    s_env_t *e = *state;
    s_res_t r = S_CTL(e, "ls", e->grid0, "--kind", "organisation", "--json");
    s_expect(&r, 0);
    s_json_t **lines;
    size_t n = s_json_lines(r.out, &lines);
    assert_int_equal((long) n, 1);
    assert_string_equal(s_jstr(lines[0], "kind"), "organisation");
    assert_string_equal(s_jstr(lines[0], "record_key"), "O-SHOP");
    assert_int_equal((int) s_jnum(lines[0], "people"), 2);
    assert_string_equal(s_jstr(lines[0], "address"), "ADDR-SHOP-1");
    s_json_lines_free(lines, n);
    s_res_free(&r);

    r = S_CTL(e, "get", "O-SHOP");
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "organisation O-SHOP"));
    assert_non_null(strstr(r.out, "employees 2"));
    assert_non_null(strstr(r.out, S_USCC)); /* a USCC is public */
    s_res_free(&r);
    r = S_CTL(e, "get", "O-STALL", "--kind", "organisation", "--json");
    s_expect(&r, 0);
    s_json_t *j = s_json_parse(r.out);
    assert_non_null(j);
    assert_string_equal(s_jstr(j, "kind"), "organisation");
    const s_json_t *rec = s_jget(j, "record");
    assert_string_equal(s_jstr(rec, "kind"), "ORG_KIND_INDIVIDUAL_BUSINESS");
    assert_null(s_jget(rec, "uscc"));
    s_json_free(j);
    s_res_free(&r);
    r = S_CTL(e, "get", "O-SHOP", "--kind", "household");
    s_expect(&r, 1);
    s_res_free(&r);
    r = S_CTL(e, "history", "O-BRANCH", "--json");
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "\"organisation\""));
    s_res_free(&r);

    r = S_CTL(e, "stats", "--json");
    s_expect(&r, 0);
    j = s_json_parse(r.out);
    assert_non_null(j);
    const s_json_t *rows = s_jget(j, "rows");
    long orgs = 0, emps = 0;
    for (int i = 0; i < 2; i++) {
        assert_int_equal((long) s_jnum(rows->items[i], "organisations"), e->tally[i].organisations);
        assert_int_equal((long) s_jnum(rows->items[i], "employees"), e->tally[i].employees);
        orgs += e->tally[i].organisations;
        emps += e->tally[i].employees;
    }
    assert_int_equal(orgs, 3);
    assert_int_equal(emps, 3);
    const s_json_t *tot = s_jget(j, "totals");
    assert_int_equal((long) s_jnum(tot, "organisations"), orgs);
    assert_int_equal((long) s_jnum(tot, "employees"), emps);
    s_json_free(j);
    s_res_free(&r);
    r = S_CTL(e, "stats");
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "ORGS"));
    assert_non_null(strstr(r.out, "EMPLOYEES"));
    s_res_free(&r);

    r = S_CTL(e, "export", e->grid0, "--format", "csv");
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "organisation,O-SHOP,"));
    assert_non_null(strstr(r.out, ",legal_representative,"));
    assert_non_null(strstr(r.out, ",employee,"));
    s_res_free(&r);
}

/* dups finds the person in two grids, the shared phone and the crowded
 * unit, and only those. */
static void
test_dups(void **state)
{
    s_env_t *e = *state;
    s_res_t r = S_CTL(e, "dups", "--json");
    s_expect(&r, 0);
    s_json_t *j = s_json_parse(r.out);
    assert_non_null(j);
    char masked[32];
    gs_mask_idnum(e->dup_id, masked, sizeof masked);

    const s_json_t *persons = s_jget(j, "persons");
    assert_int_equal(persons->n, 1);
    const s_json_t *p = persons->items[0];
    assert_string_equal(s_jstr(p, "id_number"), masked);
    assert_string_equal(s_jstr(p, "name"), "张三");
    /* two homes, and the shop where the person works (listed, not a finding) */
    const s_json_t *places = s_jget(p, "places");
    assert_int_equal(places->n, 3);
    int a = 0, b = 0, w = 0;
    for (size_t i = 0; i < places->n; i++) {
        const char *key = s_jstr(places->items[i], "record_key");
        const char *grid = s_jstr(places->items[i], "grid");
        const char *role = s_jstr(places->items[i], "role");
        a += !strcmp(key, "HDUP-A") && !strcmp(grid, e->grid0) && !strcmp(role, "member");
        b += !strcmp(key, "HDUP-B") && !strcmp(grid, e->grid_last) && !strcmp(role, "member");
        w += !strcmp(key, "O-SHOP") && !strcmp(role, "employee") &&
             !strcmp(s_jstr(places->items[i], "kind"), "organisation");
    }
    assert_true(a == 1 && b == 1 && w == 1);

    /* one USCC at two addresses: the shop and its branch, never merged */
    const s_json_t *orgs = s_jget(j, "organisations");
    assert_int_equal(orgs->n, 1);
    assert_string_equal(s_jstr(orgs->items[0], "uscc"), S_USCC);
    assert_string_equal(s_jstr(orgs->items[0], "name"), "南联便利店");
    const s_json_t *op = s_jget(orgs->items[0], "places");
    assert_int_equal(op->n, 2);
    int shop = 0, branch = 0;
    for (size_t i = 0; i < op->n; i++) {
        const char *key = s_jstr(op->items[i], "record_key");
        shop += !strcmp(key, "O-SHOP") && !strcmp(s_jstr(op->items[i], "grid"), e->grid0) &&
                !strcmp(s_jstr(op->items[i], "address"), "ADDR-SHOP-1");
        branch += !strcmp(key, "O-BRANCH") && !strcmp(s_jstr(op->items[i], "grid"), e->grid_last);
    }
    assert_true(shop == 1 && branch == 1);

    const s_json_t *phones = s_jget(j, "phones");
    assert_int_equal(phones->n, 1);
    gs_mask_phone(S_SHARED_PHONE, masked, sizeof masked);
    assert_string_equal(s_jstr(phones->items[0], "phone"), masked);
    assert_int_equal((int) s_jnum(phones->items[0], "persons"), 5);
    assert_int_equal((int) s_jnum(phones->items[0], "records"), 5);
    assert_int_equal(s_jget(phones->items[0], "places")->n, 5);

    const s_json_t *crowd = s_jget(j, "overcrowded");
    assert_int_equal(crowd->n, 1);
    assert_string_equal(s_jstr(crowd->items[0], "record_key"), "R-CROWD");
    assert_int_equal((int) s_jnum(crowd->items[0], "tenants"), 3);
    assert_true(fabs(s_jnum(crowd->items[0], "area_m2") - 10.0) < 1e-9);
    s_json_free(j);
    s_res_free(&r);

    /* thresholds: six people would be needed; 3 m² per person is enough */
    r = S_CTL(e, "dups", "--json", "--phone-min", "6", "--area-per-person", "3");
    s_expect(&r, 0);
    j = s_json_parse(r.out);
    assert_non_null(j);
    assert_int_equal(s_jget(j, "phones")->n, 0);
    assert_int_equal(s_jget(j, "overcrowded")->n, 0);
    assert_int_equal(s_jget(j, "persons")->n, 1);
    s_json_free(j);
    s_res_free(&r);

    /* the human report names the findings, masked */
    r = S_CTL(e, "dups");
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "Persons active in more than one place: 1"));
    assert_non_null(strstr(r.out, "Organisations with one USCC at more than one address: 1"));
    assert_non_null(strstr(r.out, "O-BRANCH"));
    assert_non_null(strstr(r.out, "HDUP-B"));
    assert_non_null(strstr(r.out, masked));
    assert_non_null(strstr(r.out, "R-CROWD"));
    s_res_free(&r);
}

/* history follows a move; tail reads the log's end or after a seq. */
static void
test_history_tail(void **state)
{
    s_env_t *e = *state;
    s_res_t r = S_CTL(e, "history", "HMOVE", "--json");
    s_expect(&r, 0);
    s_json_t **ev;
    size_t n = s_json_lines(r.out, &ev);
    assert_int_equal(n, 3);
    assert_string_equal(s_jstr(ev[0], "op"), "upsert");
    assert_string_equal(s_jstr(ev[0], "grid"), e->grid1);
    assert_string_equal(s_jstr(ev[1], "op"), "move_out");
    assert_string_equal(s_jstr(ev[2], "op"), "move_in");
    assert_string_equal(s_jstr(ev[2], "grid"), e->grid_last);
    assert_string_equal(s_jstr(ev[2], "previous_grid_code"), e->grid1);
    assert_int_equal((int) s_jnum(ev[2], "version"), 2);
    uint64_t move_in = (uint64_t) s_jnum(ev[2], "seq");
    s_json_lines_free(ev, n);
    s_res_free(&r);
    r = S_CTL(e, "history", "HMOVE");
    s_expect(&r, 0);
    char arrow[64];
    snprintf(arrow, sizeof arrow, "%s -> %s", e->grid1, e->grid_last);
    assert_non_null(strstr(r.out, arrow));
    s_res_free(&r);

    /* the last 2 events of the store: the move_in and the void after it */
    r = S_CTL(e, "tail", "--limit", "2", "--json");
    s_expect(&r, 0);
    n = s_json_lines(r.out, &ev);
    assert_int_equal(n, 2);
    assert_int_equal((uint64_t) s_jnum(ev[0], "seq"), move_in);
    assert_string_equal(s_jstr(ev[1], "op"), "void");
    uint64_t head = (uint64_t) s_jnum(ev[1], "seq");
    s_json_lines_free(ev, n);
    s_res_free(&r);

    /* after a seq, in order, as many as there are */
    char since[32];
    snprintf(since, sizeof since, "%llu", (unsigned long long) (head - 5));
    r = S_CTL(e, "tail", "--since", since, "--json");
    s_expect(&r, 0);
    n = s_json_lines(r.out, &ev);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++)
        assert_int_equal((uint64_t) s_jnum(ev[i], "seq"), head - 4 + i);
    s_json_lines_free(ev, n);
    s_res_free(&r);

    /* the last event under one grid */
    r = S_CTL(e, "tail", e->grid_last, "--limit", "1", "--json");
    s_expect(&r, 0);
    n = s_json_lines(r.out, &ev);
    assert_int_equal(n, 1);
    assert_string_equal(s_jstr(ev[0], "grid"), e->grid_last);
    assert_int_equal((uint64_t) s_jnum(ev[0], "seq"), move_in);
    s_json_lines_free(ev, n);
    s_res_free(&r);
}

/* export: JSON lines per active record, CSV rows per person with proper
 * quoting, to an owner-only file. */
static void
test_export(void **state)
{
    s_env_t *e = *state;
    const s_tally_t *t = &e->tally[1];
    s_res_t r = S_CTL(e, "export", t->street, "--format", "jsonl");
    s_expect(&r, 0);
    s_json_t **lines;
    size_t n = s_json_lines(r.out, &lines);
    assert_int_equal((long) n, t->records);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(s_jget(lines[i], "record"));
        assert_string_equal(s_jstr(lines[i], "status"), "active");
    }
    s_json_lines_free(lines, n);
    s_res_free(&r);

    char out[160];
    snprintf(out, sizeof out, "%s/street.csv", e->dir);
    r = S_CTL(e, "export", t->street, "--format", "csv", "--output", out);
    s_expect(&r, 0);
    assert_non_null(strstr(r.err, "records"));
    s_res_free(&r);
    struct stat sb;
    assert_int_equal(stat(out, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    char *csv = gs_tk_read_file(out, NULL, 1);
    long rows = 0;
    for (const char *p = csv; *p; p++)
        rows += *p == '\n';
    assert_int_equal(rows, t->csv_rows + 1); /* and the header */
    assert_true(!strncmp(csv, "record_kind,record_id,grid,", 27));
    /* the address with a comma and quotes, quoted; the formula defused */
    assert_non_null(strstr(csv, "\"幸福路1号, \"\"东\"\"楼\""));
    s_no_secrets(e, csv);
    free(csv);
    unlink(out);

    r = S_CTL(e, "export", e->tally[0].street, "--format", "csv");
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "\"'=1+2\""));
    assert_null(strstr(r.out, ",=1+2,"));
    s_res_free(&r);
}

/* Registry writes on a store of their own: add, assign, revoke. */
static void
test_devices(void **state)
{
    s_env_t *e = *state;
    char store[160];
    snprintf(store, sizeof store, "%s/devstore", e->dir);
    gs_store_t *st = gs_store_new(store, NULL, NULL);
    assert_non_null(st);
    gs_store_destroy(&st);
    char pub[41], sec[41];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);

    s_res_t r = s_run(e, store, "devices", "add", "dev-1", "--collector", "col-1", "--prefix",
                      "440305001001", "--prefix", "440305001002", "--public-key", pub,
                      "--json", NULL);
    s_expect(&r, 0);
    s_json_t *j = s_json_parse(r.out);
    assert_non_null(j);
    assert_string_equal(s_jstr(j, "device_id"), "dev-1");
    assert_string_equal(s_jstr(j, "role"), "device");
    assert_string_equal(s_jstr(j, "status"), "active");
    assert_string_equal(s_jstr(j, "public_key"), pub);
    assert_int_equal(s_jget(j, "prefixes")->n, 2);
    s_json_free(j);
    assert_null(strstr(r.out, sec)); /* the secret half is never printed */
    s_res_free(&r);

    /* again: exists (1); bad values (2) */
    r = s_run(e, store, "devices", "add", "dev-1", "--collector", "col-1", "--prefix", "440305",
              NULL);
    s_expect(&r, 1);
    s_res_free(&r);
    r = s_run(e, store, "devices", "add", "dev-2", "--collector", "col-2", "--prefix", "4403050",
              NULL);
    s_expect(&r, 2);
    s_res_free(&r);
    r = s_run(e, store, "devices", "add", "dev-2", "--prefix", "440305", NULL);
    s_expect(&r, 2); /* a device needs its collector */
    s_res_free(&r);
    r = s_run(e, store, "devices", "add", "dev-2", "--collector", "c", "--prefix", "440305",
              "--public-key", "short", NULL);
    s_expect(&r, 2);
    s_res_free(&r);
    r = s_run(e, store, "devices", "add", "dev-2", "--collector", "c", "--prefix", "440305",
              "--public-key", pub, NULL);
    s_expect(&r, 1); /* that key is dev-1's */
    s_res_free(&r);
    r = s_run(e, store, "devices", "add", "district-1", "--role", "district", "--prefix",
              "440305", NULL);
    s_expect(&r, 0);
    s_res_free(&r);
    /* deny by default: a device or district without prefixes could do
     * nothing, so it is refused; an admin needs none */
    r = s_run(e, store, "devices", "add", "dev-np", "--collector", "c", NULL);
    s_expect(&r, 2);
    assert_non_null(strstr(r.err, "at least one --prefix"));
    s_res_free(&r);
    r = s_run(e, store, "devices", "add", "district-np", "--role", "district", NULL);
    s_expect(&r, 2);
    assert_non_null(strstr(r.err, "at least one --prefix"));
    s_res_free(&r);
    r = s_run(e, store, "devices", "assign", "district-1", NULL);
    s_expect(&r, 2);
    s_res_free(&r);
    /* an entry without prefixes from an older store: it can still be
     * revoked, but not changed otherwise until it is assigned prefixes */
    st = gs_store_new(store, NULL, NULL);
    assert_non_null(st);
    Gridsync__V1__Device old = GRIDSYNC__V1__DEVICE__INIT;
    old.device_id = "dev-old";
    old.collector_id = "c";
    uint8_t ob[64];
    size_t obl = gridsync__v1__device__pack(&old, ob);
    assert_int_equal(gs_store_debug_put(st, "devices", "dev-old", 7, ob, obl), 0);
    gs_store_destroy(&st);
    r = s_run(e, store, "devices", "show", "dev-old", NULL);
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "may do nothing"));
    s_res_free(&r);
    r = s_run(e, store, "devices", "revoke", "dev-old", NULL);
    s_expect(&r, 0);
    s_res_free(&r);
    r = s_run(e, store, "devices", "assign", "dev-old", "--prefix", "440305", NULL);
    s_expect(&r, 0);
    s_res_free(&r);
    st = gs_store_new(store, NULL, NULL);
    assert_non_null(st);
    assert_int_equal(gs_store_debug_del(st, "devices", "dev-old", 7), 0);
    gs_store_destroy(&st);

    r = s_run(e, store, "devices", "assign", "dev-1", "--prefix", "440305002", "--json", NULL);
    s_expect(&r, 0);
    j = s_json_parse(r.out);
    assert_non_null(j);
    assert_int_equal(s_jget(j, "prefixes")->n, 1);
    assert_string_equal(s_jget(j, "prefixes")->items[0]->str, "440305002");
    s_json_free(j);
    s_res_free(&r);
    r = s_run(e, store, "devices", "assign", "dev-9", "--prefix", "440305", NULL);
    s_expect(&r, 1);
    s_res_free(&r);

    r = s_run(e, store, "devices", "revoke", "dev-1", NULL);
    s_expect(&r, 0);
    s_res_free(&r);
    r = s_run(e, store, "devices", "revoke", "dev-1", NULL);
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "already revoked"));
    s_res_free(&r);

    /* read back through the store API, not through gridctl */
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.read_only = 1;
    st = gs_store_new(store, &o, NULL);
    assert_non_null(st);
    Gridsync__V1__Device *d = NULL;
    assert_int_equal(gs_store_device_get(st, "dev-1", &d), 0);
    assert_int_equal(d->status, GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_REVOKED);
    assert_int_equal(d->n_prefixes, 1);
    assert_string_equal(d->prefixes[0], "440305002");
    assert_string_equal(d->collector_id, "col-1");
    assert_true(d->updated_at >= d->created_at && d->created_at > 0);
    gridsync__v1__device__free_unpacked(d, NULL);
    assert_int_equal(gs_store_device_by_key(st, pub, &d), 0);
    assert_string_equal(d->device_id, "dev-1");
    gridsync__v1__device__free_unpacked(d, NULL);
    gs_store_destroy(&st);

    r = s_run(e, store, "devices", "list", "--json", NULL);
    s_expect(&r, 0);
    s_json_t **lines;
    size_t n = s_json_lines(r.out, &lines);
    assert_int_equal(n, 2);
    assert_string_equal(s_jstr(lines[0], "device_id"), "dev-1");
    assert_string_equal(s_jstr(lines[0], "status"), "revoked");
    assert_string_equal(s_jstr(lines[1], "role"), "district");
    s_json_lines_free(lines, n);
    s_res_free(&r);
}

/* A department is bound to a department code and incident categories as
 * well as prefixes; a centre to prefixes. */
static void
test_devices_department_centre(void **state)
{
    s_env_t *e = *state;
    char store[160];
    snprintf(store, sizeof store, "%s/deptstore", e->dir);
    gs_store_t *st = gs_store_new(store, NULL, NULL);
    assert_non_null(st);
    gs_store_destroy(&st);
    s_res_t r = s_run(e, store, "devices", "add", "fire-1", "--role", "department",
                      "--department", "dept-fire", "--category", "02", "--category", "03",
                      "--prefix", "440305", "--json", NULL);
    s_expect(&r, 0);
    s_json_t *j = s_json_parse(r.out);
    assert_non_null(j);
    assert_string_equal(s_jstr(j, "role"), "department");
    assert_string_equal(s_jstr(j, "department"), "dept-fire");
    assert_int_equal(s_jget(j, "categories")->n, 2);
    s_json_free(j);
    s_res_free(&r);
    r = s_run(e, store, "devices", "show", "fire-1", NULL);
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "02 安全隐患 03 治安"));
    s_res_free(&r);
    r = s_run(e, store, "devices", "add", "centre-1", "--role", "centre", "--prefix", "440305",
              NULL);
    s_expect(&r, 0);
    s_res_free(&r);
    /* fail closed: no category, an unknown one, no department code, a
     * category on another role, no prefix */
    r = s_run(e, store, "devices", "add", "d2", "--role", "department", "--department", "d",
              "--prefix", "440305", NULL);
    s_expect(&r, 2);
    s_res_free(&r);
    r = s_run(e, store, "devices", "add", "d2", "--role", "department", "--department", "d",
              "--category", "07", "--prefix", "440305", NULL);
    s_expect(&r, 2);
    assert_non_null(strstr(r.err, "not in this store's category table"));
    s_res_free(&r);
    r = s_run(e, store, "devices", "add", "d2", "--role", "department", "--category", "02",
              "--prefix", "440305", NULL);
    s_expect(&r, 2);
    s_res_free(&r);
    r = s_run(e, store, "devices", "add", "c2", "--role", "centre", "--category", "02",
              "--prefix", "440305", NULL);
    s_expect(&r, 2);
    s_res_free(&r);
    r = s_run(e, store, "devices", "add", "c2", "--role", "centre", NULL);
    s_expect(&r, 2);
    s_res_free(&r);
    /* the store refuses the same, whoever writes it */
    st = gs_store_new(store, NULL, NULL);
    assert_non_null(st);
    Gridsync__V1__Device d = GRIDSYNC__V1__DEVICE__INIT;
    char *pfx[] = { "440305" };
    char *cats[] = { "02" };
    d.device_id = "d3";
    d.role = GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEPARTMENT;
    d.prefixes = pfx;
    d.n_prefixes = 1;
    d.categories = cats;
    d.n_categories = 1;
    assert_int_equal(gs_store_device_put(st, &d), GS_EINVAL); /* no department code */
    d.department = "dept-x";
    assert_int_equal(gs_store_device_put(st, &d), 0);
    d.role = GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT;
    assert_int_equal(gs_store_device_put(st, &d), GS_EINVAL); /* categories on a district */
    gs_store_destroy(&st);
}

/* One incident step applied to st as principal who at now_ms; asserts it
 * is accepted. */
static void
s_inc_step(gs_store_t *st, const char *id, const char *cat, int sev, int status, uint64_t base,
           const char *dept, int role, const char *by, int64_t now_ms)
{
    static unsigned n;
    gs_arena_t *a = gs_arena_new(0);
    ProtobufCAllocator *al = gs_arena_allocator(a);
    Gridsync__V1__Record *r = al->alloc(al->allocator_data, sizeof *r);
    Gridsync__V1__Incident *in = al->alloc(al->allocator_data, sizeof *in);
    Gridsync__V1__RecordMeta *m = al->alloc(al->allocator_data, sizeof *m);
    gridsync__v1__record__init(r);
    gridsync__v1__incident__init(in);
    gridsync__v1__record_meta__init(m);
    r->body_case = GRIDSYNC__V1__RECORD__BODY_INCIDENT;
    r->incident = in;
    in->incident_id = (char *) id;
    in->grid_code = id[1] == '1' ? "440305001001001" : "440305001001002";
    in->address = "南联社区";
    in->category = (char *) cat;
    in->severity = (Gridsync__V1__IncidentSeverity) sev;
    in->description = "积水";
    in->status = (Gridsync__V1__IncidentStatus) status;
    in->department = (char *) (dept ? dept : "");
    in->meta = m;
    m->collector_id = "col-1";
    m->device_id = "dev-1";
    m->collected_at = now_ms;
    m->base_version = base;
    char uid[32];
    snprintf(uid, sizeof uid, "inc-%u", ++n);
    gs_upload_t up = { by, uid, &r, 1, al, NULL, 0, NULL, 1 };
    gs_principal_t who = { role, dept, NULL, 0 };
    const char *cats[] = { cat };
    if (role == GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEPARTMENT) {
        who.categories = cats;
        who.n_categories = 1;
    }
    gs_apply_out_t out;
    assert_int_equal(gs_store_apply_as(st, &up, &who, 1, now_ms, &out), 0);
    Gridsync__V1__Ack *ack = gridsync__v1__ack__unpack(NULL, out.uploads[0].ack_len,
                                                       out.uploads[0].ack);
    assert_non_null(ack);
    if (ack->results[0]->status != GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED)
        fail_msg("%s step to %d: %s", id, status, ack->results[0]->message);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_apply_out_clear(&out);
    gs_arena_destroy(&a);
}

/* gridctl incidents: open, overdue, closed and rejected incidents per
 * prefix and department, 结案率 and 按期结案率, at a given time. */
static void
test_incidents(void **state)
{
    s_env_t *e = *state;
    char store[160];
    snprintf(store, sizeof store, "%s/incstore", e->dir);
    gs_store_t *st = gs_store_new(store, NULL, NULL);
    assert_non_null(st);
    const int64_t t0 = 1780243200000LL, H = 3600000LL;
    const int D = GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE,
              C = GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_CENTRE,
              P = GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEPARTMENT;
    enum { REP = 1, ACC, REJ, DIS, HAN, VER, CLO };
    /* E1 (grid 1): closed within its 72 hours */
    s_inc_step(st, "E1", "02", 2, REP, 0, NULL, D, "dev-1", t0);
    s_inc_step(st, "E1", "02", 2, ACC, 1, NULL, C, "c", t0);
    s_inc_step(st, "E1", "02", 2, DIS, 2, "dept-fire", C, "c", t0);
    s_inc_step(st, "E1", "02", 2, HAN, 3, "dept-fire", P, "f", t0 + H / 2);
    s_inc_step(st, "E1", "02", 2, VER, 4, NULL, D, "dev-1", t0 + H / 2);
    s_inc_step(st, "E1", "02", 2, CLO, 5, NULL, C, "c", t0 + H);
    /* E2 (grid 2): 治安, 特别重大, 2 hours, still open at t0 + 3 h */
    s_inc_step(st, "E2", "03", 4, REP, 0, NULL, D, "dev-1", t0);
    s_inc_step(st, "E2", "03", 4, ACC, 1, NULL, C, "c", t0);
    /* E3: rejected; E4: only reported */
    s_inc_step(st, "E3", "01", 1, REP, 0, NULL, D, "dev-1", t0);
    s_inc_step(st, "E3", "01", 1, REJ, 1, NULL, C, "c", t0);
    s_inc_step(st, "E4", "04", 1, REP, 0, NULL, D, "dev-1", t0);
    /* E5 (grid 2): closed after its 2 hours */
    s_inc_step(st, "E5", "03", 4, REP, 0, NULL, D, "dev-1", t0);
    s_inc_step(st, "E5", "03", 4, ACC, 1, NULL, C, "c", t0);
    s_inc_step(st, "E5", "03", 4, DIS, 2, "dept-city", C, "c", t0);
    s_inc_step(st, "E5", "03", 4, HAN, 3, "dept-city", P, "y", t0 + H);
    s_inc_step(st, "E5", "03", 4, VER, 4, NULL, D, "dev-1", t0 + 2 * H);
    s_inc_step(st, "E5", "03", 4, CLO, 5, NULL, C, "c", t0 + 5 * H);
    gs_store_destroy(&st);

    char at[32];
    snprintf(at, sizeof at, "%lld", (long long) (t0 + 3 * H));
    s_json_t *j;
    s_res_t r = s_run(e, store, "incidents", "440305", "--at", at, "--json", NULL);
    s_expect(&r, 0);
    s_json_t **lines;
    size_t n = s_json_lines(r.out, &lines);
    /* two grids, three departments ("-", dept-city, dept-fire), the total */
    assert_int_equal(n, 6);
    const s_json_t *tot = lines[5];
    assert_string_equal(s_jstr(tot, "by"), "total");
    assert_true(s_jnum(tot, "reported") == 5);
    assert_true(s_jnum(tot, "registered") == 3);
    assert_true(s_jnum(tot, "open") == 2);
    assert_true(s_jnum(tot, "overdue") == 1);
    assert_true(s_jnum(tot, "closed") == 2);
    assert_true(s_jnum(tot, "closed_on_time") == 1);
    assert_true(s_jnum(tot, "rejected") == 1);
    assert_true(fabs(s_jnum(tot, "closure_rate") - 2.0 / 3.0) < 1e-9);
    assert_true(fabs(s_jnum(tot, "on_time_rate") - 0.5) < 1e-9);
    assert_string_equal(s_jstr(lines[0], "key"), "440305001001001");
    assert_true(s_jnum(lines[0], "closed_on_time") == 1);
    assert_string_equal(s_jstr(lines[1], "key"), "440305001001002");
    assert_true(s_jnum(lines[1], "overdue") == 1);
    assert_string_equal(s_jstr(lines[2], "by"), "department");
    assert_string_equal(s_jstr(lines[2], "key"), "-");
    assert_string_equal(s_jstr(lines[3], "key"), "dept-city");
    assert_true(s_jnum(lines[3], "closed") == 1 && s_jnum(lines[3], "closed_on_time") == 0);
    assert_string_equal(s_jstr(lines[4], "key"), "dept-fire");
    assert_true(s_jnum(lines[4], "closed_on_time") == 1);
    s_json_lines_free(lines, n);
    s_res_free(&r);
    /* before E2's deadline nothing is overdue; the text names the rates */
    snprintf(at, sizeof at, "%lld", (long long) (t0 + H));
    r = s_run(e, store, "incidents", "440305", "--level", "6", "--at", at, NULL);
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "按期结案率"));
    assert_non_null(strstr(r.out, "66.7%"));
    assert_non_null(strstr(r.out, "50.0%"));
    s_res_free(&r);
    r = s_run(e, store, "incidents", "440305", "--level", "5", NULL);
    s_expect(&r, 2);
    s_res_free(&r);
    /* stats count them per cell */
    r = s_run(e, store, "stats", "440305001", "--json", NULL);
    s_expect(&r, 0);
    j = s_json_parse(r.out);
    assert_non_null(j);
    assert_true(s_jnum(s_jget(j, "totals"), "incidents") == 5);
    s_json_free(j);
    s_res_free(&r);
    /* export carries them: a JSON line each; no person rows in the CSV */
    r = s_run(e, store, "export", "440305", "--format", "jsonl", NULL);
    s_expect(&r, 0);
    n = s_json_lines(r.out, &lines);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(s_jstr(lines[i], "kind"), "incident");
        assert_non_null(s_jget(s_jget(lines[i], "record"), "history"));
    }
    s_json_lines_free(lines, n);
    s_res_free(&r);
    r = s_run(e, store, "export", "440305", "--format", "csv", NULL);
    s_expect(&r, 0);
    assert_non_null(strstr(r.err, "5 records, 0 person rows"));
    s_res_free(&r);
    r = s_run(e, store, "ls", "440305001001002", "--kind", "incident", NULL);
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "E5"));
    s_res_free(&r);
}

static void
s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* grids import: a bad file names its bad lines and imports nothing; a good
 * one imports everything. */
static void
test_grids_import(void **state)
{
    s_env_t *e = *state;
    char store[160], bad[160], good[160];
    snprintf(store, sizeof store, "%s/gridstore", e->dir);
    snprintf(bad, sizeof bad, "%s/bad.csv", e->dir);
    snprintf(good, sizeof good, "%s/good.csv", e->dir);
    gs_store_t *st = gs_store_new(store, NULL, NULL);
    assert_non_null(st);
    gs_store_destroy(&st);

    s_write(bad, "code,name,valid_from,valid_to\n"
                 "440305001001001,南头第1网格\n"
                 "44030500100100X,bad code\n"
                 "440305001001002\n"
                 "440305001001003,日期,2024-02-30\n"
                 "440305001001004,反了,2025-01-01,2024-01-01\n"
                 "440305001001001,twice\n");
    s_res_t r = s_run(e, store, "grids", "import", bad, NULL);
    s_expect(&r, 1);
    for (int line = 3; line <= 7; line++) {
        char where[200];
        snprintf(where, sizeof where, "%s:%d:", bad, line);
        if (!strstr(r.err, where))
            fprintf(stderr, "no %s in:\n%s\n", where, r.err);
        assert_non_null(strstr(r.err, where));
    }
    assert_null(strstr(r.err, ":2:"));
    assert_non_null(strstr(r.err, "nothing was imported"));
    s_res_free(&r);
    r = s_run(e, store, "grids", "list", "--json", NULL);
    s_expect(&r, 0);
    assert_string_equal(r.out, "");
    s_res_free(&r);

    /* no header, quotes, a comment, a blank line, CRLF and dates */
    s_write(good, "# 南头街道\r\n"
                  "440305001001001,\"南头第1网格, 东\",2020-01-01,\r\n"
                  "\r\n"
                  "440305001001002,南头第2网格,,2099-12-31\r\n"
                  "440305001001003,过期网格,2000-01-01,2001-01-01\r\n");
    r = s_run(e, store, "grids", "import", good, "--json", NULL);
    s_expect(&r, 0);
    s_json_t *j = s_json_parse(r.out);
    assert_non_null(j);
    assert_int_equal((int) s_jnum(j, "grids"), 3);
    assert_int_equal((int) s_jnum(j, "added"), 3);
    s_json_free(j);
    s_res_free(&r);
    r = s_run(e, store, "grids", "list", "--json", NULL);
    s_expect(&r, 0);
    s_json_t **lines;
    size_t n = s_json_lines(r.out, &lines);
    assert_int_equal(n, 3);
    assert_string_equal(s_jstr(lines[0], "name"), "南头第1网格, 东");
    assert_string_equal(s_jstr(lines[0], "valid_from"), "2020-01-01");
    assert_null(s_jstr(lines[0], "valid_to"));
    assert_true(s_jnum(lines[0], "valid_today") == 1);
    assert_true(s_jnum(lines[2], "valid_today") == 0);
    s_json_lines_free(lines, n);
    s_res_free(&r);

    /* again: the same grids are replaced, not duplicated */
    r = s_run(e, store, "grids", "import", good, "--json", NULL);
    s_expect(&r, 0);
    j = s_json_parse(r.out);
    assert_int_equal((int) s_jnum(j, "replaced"), 3);
    s_json_free(j);
    s_res_free(&r);
}

/* grids import into an empty registry of a store holding records in a grid
 * the file lacks: the import says uploads there are now rejected, but a
 * --dry-run, which writes nothing, says only that importing would reject
 * them, and the registry stays empty. */
static void
test_grids_import_dry_run(void **state)
{
    s_env_t *e = *state;
    char store[160], csv[160];
    snprintf(store, sizeof store, "%s/orphanstore", e->dir);
    snprintf(csv, sizeof csv, "%s/other.csv", e->dir);
    gs_store_t *st = gs_store_new(store, NULL, NULL);
    assert_non_null(st);
    Gridsync__V1__Record *h = gs_tk_household(e->arena, e->grid0, "HORPHAN", "ADDR-ORPHAN", 1,
                                               930000);
    s_apply_to(e, st, &h, 1, NULL);
    gs_store_destroy(&st);
    gs_arena_reset(e->arena);
    /* a grid of another district, so the collected grid is not in the file */
    assert_string_not_equal(e->grid0, "110101001001001");
    s_write(csv, "110101001001001,别处网格\n");

    s_res_t r = s_run(e, store, "grids", "import", csv, "--dry-run", NULL);
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "dry run, nothing written"));
    if (strstr(r.err, "now rejected") || !strstr(r.err, "would reject uploads"))
        fprintf(stderr, "dry run said:\n%s\n", r.err);
    assert_null(strstr(r.err, "now rejected"));
    assert_non_null(strstr(r.err, "1 grid(s) holding records"));
    assert_non_null(strstr(r.err, "would reject uploads"));
    s_res_free(&r);
    r = s_run(e, store, "grids", "list", "--json", NULL);
    s_expect(&r, 0);
    assert_string_equal(r.out, "");
    s_res_free(&r);

    r = s_run(e, store, "grids", "import", csv, NULL);
    s_expect(&r, 0);
    assert_non_null(strstr(r.err, "1 grid(s) holding records"));
    assert_non_null(strstr(r.err, "now rejected"));
    s_res_free(&r);
}

/* backup makes a copy that verifies and holds the same figures. */
static void
test_backup_verify(void **state)
{
    s_env_t *e = *state;
    s_res_t r = S_CTL(e, "verify");
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "ok:"));
    s_res_free(&r);

    char bk[160];
    snprintf(bk, sizeof bk, "%s/backup", e->dir);
    r = S_CTL(e, "backup", bk, "--json");
    s_expect(&r, 0);
    s_json_t *j = s_json_parse(r.out);
    assert_non_null(j);
    double head = s_jnum(j, "head_seq");
    assert_true(head > 0);
    s_json_free(j);
    s_res_free(&r);

    r = s_run(e, bk, "verify", "--json", NULL);
    s_expect(&r, 0);
    j = s_json_parse(r.out);
    assert_non_null(j);
    assert_true(s_jnum(j, "ok") == 1);
    assert_int_equal(s_jget(j, "problems")->n, 0);
    assert_true(s_jnum(j, "head_seq") == head);
    s_json_free(j);
    s_res_free(&r);

    r = s_run(e, bk, "stats", "--json", NULL);
    s_expect(&r, 0);
    j = s_json_parse(r.out);
    assert_int_equal((long) s_jnum(s_jget(j, "totals"), "households"),
                     e->tally[0].households + e->tally[1].households);
    s_json_free(j);
    s_res_free(&r);

    /* into a directory that is not empty: refused */
    r = S_CTL(e, "backup", bk);
    s_expect(&r, 1);
    s_res_free(&r);

    /* a copy with an index entry removed: verify names the problem, exit 1 */
    char broken[160];
    snprintf(broken, sizeof broken, "%s/broken", e->dir);
    r = S_CTL(e, "backup", broken);
    s_expect(&r, 0);
    s_res_free(&r);
    gs_store_t *st = gs_store_new(broken, NULL, NULL);
    assert_non_null(st);
    assert_int_equal(gs_store_debug_del(st, "ids", "HHDUP-B", 7), 0);
    gs_store_destroy(&st);
    r = s_run(e, broken, "verify", NULL);
    s_expect(&r, 1);
    assert_non_null(strstr(r.out, "problem: "));
    assert_non_null(strstr(r.out, "problem(s) found"));
    s_res_free(&r);
    r = s_run(e, broken, "verify", "--json", NULL);
    s_expect(&r, 1);
    j = s_json_parse(r.out);
    assert_non_null(j);
    assert_true(s_jnum(j, "ok") == 0);
    assert_true(s_jget(j, "problems")->n > 0);
    s_json_free(j);
    s_res_free(&r);
}

/* How long a test waits for a line or an exit that must come: far beyond
 * any setting it uses, so only a hang reaches it. */
#define S_PATIENCE_MS 60000

/* gridctl --store store args... with stderr on a pipe (*err_fd). */
static pid_t
s_spawn_piped(const char *store, const char *const *args, int *err_fd)
{
    const char *argv[64];
    int argc = 0;
    argv[argc++] = GS_GRIDCTL;
    argv[argc++] = "--store";
    argv[argc++] = store;
    for (int i = 0; args[i] && argc < 63; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    return gs_tk_spawn(argv, err_fd);
}

/* Beside a running broker: reads and registry writes work, registry
 * changes take effect at once, tail --follow sees new events (by polling
 * the store and through the live feed), health answers. */
static void
test_with_broker(void **state)
{
    s_env_t *e = *state;
    char store[160], bundle[160];
    snprintf(store, sizeof store, "%s/live", e->dir);
    snprintf(bundle, sizeof bundle, "%s/district.keys", e->dir);
    s_res_t r = S_CTL(e, "backup", store);
    s_expect(&r, 0);
    s_res_free(&r);
    gs_tk_broker_t b;
    assert_int_equal(gs_tk_broker_start_mode(&b, store, NULL, 1), 0);

    r = s_run(e, store, "health", "--json", NULL);
    s_expect(&r, 0);
    s_json_t *j = s_json_parse(r.out);
    assert_non_null(j);
    assert_true(s_jnum(s_jget(j, "broker"), "up") == 1);
    /* HEALTH carries the version every program's --version prints */
    assert_string_equal(s_jstr(s_jget(j, "broker"), "version"), GS_VERSION);
    uint64_t head = (uint64_t) s_jnum(s_jget(j, "store"), "head_seq");
    assert_true(s_jnum(s_jget(j, "broker"), "head_seq") == (double) head);
    s_json_free(j);
    s_res_free(&r);

    /* enrol a device and a district system while the broker runs */
    gs_curve_keys_t dev, dist;
    memset(&dev, 0, sizeof dev);
    memset(&dist, 0, sizeof dist);
    assert_int_equal(zmq_curve_keypair(dev.public_key, dev.secret_key), 0);
    assert_int_equal(zmq_curve_keypair(dist.public_key, dist.secret_key), 0);
    memcpy(dev.server_public, b.server_key, 41);
    memcpy(dist.server_public, b.server_key, 41);
    r = s_run(e, store, "devices", "add", "dev-live", "--collector", "col-live", "--prefix",
              e->grid0, "--public-key", dev.public_key, NULL);
    s_expect(&r, 0);
    s_res_free(&r);
    r = s_run(e, store, "devices", "add", "district-live", "--role", "district", "--prefix",
              e->tally[0].street, "--public-key", dist.public_key, NULL);
    s_expect(&r, 0);
    s_res_free(&r);
    FILE *f = fopen(bundle, "w");
    fprintf(f, "server_public = %s\npublic_key = %s\nsecret_key = %s\n", dist.server_public,
            dist.public_key, dist.secret_key);
    fclose(f);
    /* the same keys in a bundle that also names the broker's endpoints */
    char bundle_ep[200];
    snprintf(bundle_ep, sizeof bundle_ep, "%s/district-ep.keys", e->dir);
    f = fopen(bundle_ep, "w");
    fprintf(f, "server_public = %s\npublic_key = %s\nsecret_key = %s\nupload_endpoint = %s\n"
            "feed_endpoint = %s\n", dist.server_public, dist.public_key, dist.secret_key,
            b.upload, b.feed);
    fclose(f);

    /* the category table as the district key reads it over its request
     * endpoint (the bundle names it): the built-in one */
    r = s_run(e, store, "incidents", "categories", "show", "--keys", bundle_ep, "--json", NULL);
    s_expect(&r, 0);
    j = s_json_parse(r.out);
    assert_non_null(j);
    assert_false(s_jget(j, "configured")->num);
    assert_int_equal(s_jget(j, "categories")->n, 7);
    assert_string_equal(s_jstr(s_jget(j, "categories")->items[0], "code"), "01");
    s_json_free(j);
    s_res_free(&r);
    r = s_run(e, store, "incidents", "categories", "--endpoint", b.upload, "--keys", bundle,
              NULL);
    s_expect(&r, 0);
    assert_ptr_equal(strstr(r.out, "# the built-in table (none set in this store)\n"), r.out);
    s_res_free(&r);
    r = s_run(e, store, "incidents", "categories", "set", bundle, "--keys", bundle, NULL);
    s_expect(&r, 2);
    assert_non_null(strstr(r.err, "--keys and --endpoint are for show only"));
    s_res_free(&r);

    /* three followers wait for the next event: one polls the store, one
     * follows the live feed with the district's keys, and one is given
     * only the bundle, which names the endpoints (it has read the store and
     * follows the feed before the upload, so the event must come by feed) */
    char since[32], out1[128], err1[128], out2[128], err2[128];
    snprintf(since, sizeof since, "%llu", (unsigned long long) head);
    const char *poll_args[] = { "tail", "--follow", "--since", since, "--count", "1", "--json",
                                NULL };
    const char *feed_args[] = { "tail", e->tally[0].street, "--follow", "--since", since,
                                "--count", "1", "--json", "--feed", b.feed, "--upload",
                                b.upload, "--keys", bundle, NULL };
    pid_t p1 = s_spawn(e, store, poll_args, out1, err1);
    pid_t p2 = s_spawn(e, store, feed_args, out2, err2);
    const char *keys_args[] = { "tail", e->tally[0].street, "--follow", "--since", since,
                                "--count", "1", "--keys", bundle_ep, NULL };
    int keys_err;
    pid_t p3k = s_spawn_piped(store, keys_args, &keys_err);
    gs_tk_wait_line(keys_err, "gridctl", "through the live feed at", S_PATIENCE_MS);

    gs_client_opts_t co;
    gs_client_opts_init(&co);
    co.curve = dev;
    co.timeout_ms = 5000;
    co.retries = 2;
    gs_client_t *c = gs_client_new(b.upload, &co);
    assert_non_null(c);
    Gridsync__V1__Record *rec = gs_tk_household(e->arena, e->grid0, "H-LIVE", "ADDR-LIVE", 1,
                                                940000);
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = "dev-live";
    up.upload_id = "live-1";
    up.records = &rec;
    up.n_records = 1;
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t cerr;
    assert_int_equal(gs_client_upload(c, &up, &ack, &cerr), 0);
    assert_int_equal(ack->results[0]->status, GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    uint64_t seq = ack->results[0]->seq;
    gridsync__v1__ack__free_unpacked(ack, NULL);

    int st3 = gs_tk_wait_exit(p3k, "gridctl tail --keys", S_PATIENCE_MS);
    assert_true(WIFEXITED(st3) && WEXITSTATUS(st3) == 0); /* --count 1: it got the event */
    close(keys_err);
    s_res_t rs[2] = { s_wait(p1, out1, err1), s_wait(p2, out2, err2) };
    for (int k = 0; k < 2; k++) {
        s_expect(&rs[k], 0);
        s_json_t *ev = s_json_parse(rs[k].out);
        assert_non_null(ev);
        assert_int_equal((uint64_t) s_jnum(ev, "seq"), seq);
        assert_string_equal(s_jstr(ev, "record_key"), "H-LIVE");
        s_no_secrets(e, rs[k].out);
        s_json_free(ev);
    }
    for (int k = 0; k < 2; k++)
        s_res_free(&rs[k]);

    /* tail --follow --feed whose subscription the broker stops serving
     * (the district's prefix narrowed away): it warns on stderr that no
     * heartbeat comes, again while that lasts, and SIGTERM ends it, 0 */
    const char *silent_args[] = { "tail", e->tally[0].street, "--follow", "--feed", b.feed,
                                  "--upload", b.upload, "--keys", bundle, "--heartbeat-warn",
                                  "300", NULL };
    int err_fd;
    pid_t p3 = s_spawn_piped(store, silent_args, &err_fd);
    gs_tk_wait_line(err_fd, "gridctl", "following", S_PATIENCE_MS);
    r = s_run(e, store, "devices", "assign", "district-live", "--prefix", "11", NULL);
    s_expect(&r, 0);
    s_res_free(&r);
    gs_tk_wait_line(err_fd, "gridctl", "no heartbeat for", S_PATIENCE_MS);
    gs_tk_wait_line(err_fd, "gridctl",
                    "check enrolment (is the key enrolled and active, and allowed "
                    "these prefixes?)",
                    S_PATIENCE_MS);
    kill(p3, SIGTERM);
    assert_int_equal(gs_tk_wait_exit(p3, "gridctl", S_PATIENCE_MS), 0);
    close(err_fd);

    /* read-only beside the writer: the new record is there */
    r = s_run(e, store, "get", "H-LIVE", "--json", NULL);
    s_expect(&r, 0);
    s_res_free(&r);
    r = s_run(e, store, "verify", NULL);
    s_expect(&r, 0);
    s_res_free(&r);

    /* revoking applies to the live connection's next request */
    r = s_run(e, store, "devices", "revoke", "dev-live", NULL);
    s_expect(&r, 0);
    s_res_free(&r);
    gs_arena_reset(e->arena);
    rec = gs_tk_household(e->arena, e->grid0, "H-LIVE-2", "ADDR-LIVE-2", 1, 950000);
    up.records = &rec;
    up.upload_id = "live-2";
    assert_int_equal(gs_client_upload(c, &up, &ack, &cerr), GS_CLIENT_ESERVER);
    assert_int_equal(cerr.reason, GRIDSYNC__V1__REASON__REASON_UNAUTHORISED);
    gs_client_destroy(&c);
    gs_arena_reset(e->arena);

    int st = gs_tk_broker_stop(&b, SIGTERM);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    r = s_run(e, store, "health", NULL);
    s_expect(&r, 1);
    assert_non_null(strstr(r.out, "broker    down"));
    s_res_free(&r);
    r = s_run(e, store, "stats", NULL);
    s_expect(&r, 0); /* and the store still reads with the broker gone */
    s_res_free(&r);
}

/* An incident of category cat reported in grid, in arena a. */
static Gridsync__V1__Record *
s_incident(gs_arena_t *a, const char *grid, const char *id, const char *cat)
{
    ProtobufCAllocator *al = gs_arena_allocator(a);
    Gridsync__V1__Record *r = al->alloc(al->allocator_data, sizeof *r);
    Gridsync__V1__Incident *in = al->alloc(al->allocator_data, sizeof *in);
    Gridsync__V1__RecordMeta *m = al->alloc(al->allocator_data, sizeof *m);
    gridsync__v1__record__init(r);
    gridsync__v1__incident__init(in);
    gridsync__v1__record_meta__init(m);
    r->body_case = GRIDSYNC__V1__RECORD__BODY_INCIDENT;
    r->incident = in;
    in->incident_id = (char *) id;
    in->grid_code = (char *) grid;
    in->address = "南联社区";
    in->category = (char *) cat;
    in->severity = GRIDSYNC__V1__INCIDENT_SEVERITY__INCIDENT_SEVERITY_GENERAL;
    in->description = "积水";
    in->status = GRIDSYNC__V1__INCIDENT_STATUS__INCIDENT_STATUS_REPORTED;
    in->meta = m;
    m->collector_id = "col-live";
    m->device_id = "dev-live";
    m->collected_at = 1760000000000;
    return r;
}

/* tail --follow --keys --category: a department's key (category 02 in one
 * street) follows its incident topic through the live feed and prints only
 * the incidents of 02, while a household and an incident of 03 are
 * uploaded beside them; the same --category on the store's log keeps the
 * same two; bad categories are usage errors. */
static void
test_tail_department(void **state)
{
    s_env_t *e = *state;
    char store[160], bundle[200], street[10];
    snprintf(store, sizeof store, "%s/dept", e->dir);
    snprintf(bundle, sizeof bundle, "%s/fire.keys", e->dir);
    snprintf(street, sizeof street, "%.9s", e->grid0);
    s_res_t r = S_CTL(e, "backup", store);
    s_expect(&r, 0);
    s_res_free(&r);
    gs_tk_broker_t b;
    assert_int_equal(gs_tk_broker_start_mode(&b, store, NULL, 1), 0);
    gs_curve_keys_t dev, fire;
    memset(&dev, 0, sizeof dev);
    memset(&fire, 0, sizeof fire);
    assert_int_equal(zmq_curve_keypair(dev.public_key, dev.secret_key), 0);
    assert_int_equal(zmq_curve_keypair(fire.public_key, fire.secret_key), 0);
    memcpy(dev.server_public, b.server_key, 41);
    memcpy(fire.server_public, b.server_key, 41);
    r = s_run(e, store, "devices", "add", "dev-live", "--collector", "col-live", "--prefix",
              e->grid0, "--public-key", dev.public_key, NULL);
    s_expect(&r, 0);
    s_res_free(&r);
    r = s_run(e, store, "devices", "add", "fire-live", "--role", "department", "--department",
              "dept-fire", "--category", "02", "--prefix", street, "--public-key",
              fire.public_key, NULL);
    s_expect(&r, 0);
    s_res_free(&r);
    FILE *f = fopen(bundle, "w");
    fprintf(f, "server_public = %s\npublic_key = %s\nsecret_key = %s\nupload_endpoint = %s\n"
            "feed_endpoint = %s\n", fire.server_public, fire.public_key, fire.secret_key,
            b.upload, b.feed);
    fclose(f);
    r = s_run(e, store, "health", "--json", NULL);
    s_expect(&r, 0);
    s_json_t *j = s_json_parse(r.out);
    assert_non_null(j);
    char since[32];
    snprintf(since, sizeof since, "%llu",
             (unsigned long long) s_jnum(s_jget(j, "store"), "head_seq"));
    s_json_free(j);
    s_res_free(&r);

    const char *args[] = { "tail", street, "--follow", "--since", since, "--count", "2",
                           "--json", "--keys", bundle, "--category", "02", NULL };
    char out[128], err[128];
    int err_fd;
    pid_t pid = s_spawn_piped(store, (const char *[]) { "tail", street, "--follow", "--since",
                                                         since, "--keys", bundle, "--category",
                                                         "02", "--heartbeat-warn", "0", NULL },
                              &err_fd);
    gs_tk_wait_line(err_fd, "gridctl", "following incident topic \"I02/", S_PATIENCE_MS);
    pid_t p2 = s_spawn(e, store, args, out, err);

    gs_client_opts_t co;
    gs_client_opts_init(&co);
    co.curve = dev;
    co.timeout_ms = 5000;
    co.retries = 2;
    gs_client_t *c = gs_client_new(b.upload, &co);
    assert_non_null(c);
    Gridsync__V1__Record *recs[4] = {
        gs_tk_household(e->arena, e->grid0, "H-DEPT", "ADDR-DEPT", 1, 960000),
        s_incident(e->arena, e->grid0, "E-03", "03"),
        s_incident(e->arena, e->grid0, "E-02a", "02"),
        s_incident(e->arena, e->grid0, "E-02b", "02"),
    };
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = "dev-live";
    up.upload_id = "dept-1";
    up.records = recs;
    up.n_records = 4;
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t cerr;
    assert_int_equal(gs_client_upload(c, &up, &ack, &cerr), 0);
    uint64_t seqs[4];
    for (int i = 0; i < 4; i++) {
        if (ack->results[i]->status != GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED)
            fail_msg("record %d: %s", i, ack->results[i]->message);
        seqs[i] = ack->results[i]->seq;
    }
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_client_destroy(&c);
    gs_arena_reset(e->arena);

    /* --count 2: exactly the two incidents of 02, in order, then exit 0 */
    s_res_t live = s_wait(p2, out, err);
    s_expect(&live, 0);
    kill(pid, SIGTERM);
    assert_int_equal(gs_tk_wait_exit(pid, "gridctl", S_PATIENCE_MS), 0);
    close(err_fd);
    /* and the same filter on the store's log */
    s_res_t logged = s_run(e, store, "tail", street, "--since", since, "--json", "--category",
                           "02", NULL);
    s_expect(&logged, 0);
    s_res_t *both[2] = { &live, &logged };
    for (int k = 0; k < 2; k++) {
        char *line = both[k]->out;
        for (int i = 2; i < 4; i++) {
            char *nl = strchr(line, '\n');
            assert_non_null(nl);
            *nl = 0;
            s_json_t *ev = s_json_parse(line);
            assert_non_null(ev);
            assert_int_equal((uint64_t) s_jnum(ev, "seq"), seqs[i]);
            assert_string_equal(s_jstr(ev, "kind"), "incident");
            s_json_free(ev);
            line = nl + 1;
        }
        assert_string_equal(line, "");
        s_res_free(both[k]);
    }

    static const char *const bad[][4] = {
        { "--category", "0/2" }, { "--category", "02,02" }, { "--category", "02," },
        { "--category", "123456789" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = s_run(e, store, "tail", street, bad[i][0], bad[i][1], NULL);
        s_expect(&r, 2);
        assert_non_null(strstr(r.err, "--category"));
        s_res_free(&r);
    }
    int st = gs_tk_broker_stop(&b, SIGTERM);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* tail --follow --feed while the broker's store is replaced by an older
 * copy of another lineage: it says so and exits 1 instead of waiting for
 * seqs the restored store hands out again. */
static void
test_tail_follow_restored(void **state)
{
    s_env_t *e = *state;
    char store[160], older[160];
    snprintf(store, sizeof store, "%s/lineage", e->dir);
    snprintf(older, sizeof older, "%s/lineage-older", e->dir);
    s_res_t r = S_CTL(e, "backup", store);
    s_expect(&r, 0);
    s_res_free(&r);
    r = S_CTL(e, "backup", older);
    s_expect(&r, 0);
    s_res_free(&r);
    /* the copy as a restore leaves it: an epoch of its own */
    gs_store_t *st = gs_store_new(older, NULL, NULL);
    assert_non_null(st);
    uint8_t v[8] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
    assert_int_equal(gs_store_debug_put(st, "meta", "epoch", 5, v, 8), 0);
    gs_store_destroy(&st);

    gs_tk_broker_t b;
    memset(&b, 0, sizeof b);
    assert_int_equal(gs_tk_broker_start_fixed(&b, store, NULL, 0), 0);
    char outp[128], errp[128];
    const char *args[] = { "tail", "--follow", "--limit", "1", "--feed", b.feed, "--upload",
                           b.upload, NULL };
    pid_t pid = s_spawn(e, store, args, outp, errp);

    /* an event it prints shows it follows the broker */
    gs_client_t *c = gs_client_new(b.upload, NULL);
    assert_non_null(c);
    Gridsync__V1__Record *rec = gs_tk_household(e->arena, e->grid0, "H-LINEAGE", "ADDR-LINEAGE",
                                                1, 960000);
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = "dev-lineage";
    up.upload_id = "lineage-1";
    up.records = &rec;
    up.n_records = 1;
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t cerr;
    assert_int_equal(gs_client_upload(c, &up, &ack, &cerr), 0);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_client_destroy(&c);
    gs_arena_reset(e->arena);
    struct timespec tick = { 0, 20 * 1000000L };
    int printed = 0;
    for (int i = 0; i < 3000 && !printed; i++) { /* a bound, not a wait: 60 s */
        char *out = gs_tk_read_file(outp, NULL, 1);
        printed = out && strstr(out, "H-LINEAGE") != NULL;
        free(out);
        if (!printed)
            nanosleep(&tick, NULL);
    }
    assert_true(printed);

    /* the restore, on the same endpoints */
    int bst = gs_tk_broker_stop(&b, SIGTERM);
    assert_true(WIFEXITED(bst) && WEXITSTATUS(bst) == 0);
    gs_tk_rmtree(store);
    assert_int_equal(rename(older, store), 0);
    assert_int_equal(gs_tk_broker_restart(&b, NULL), 0);

    int st_tail = 0, done = 0;
    for (int i = 0; i < 3000 && !done; i++) { /* the next heartbeat tells; bound 60 s */
        done = waitpid(pid, &st_tail, WNOHANG) == pid;
        if (!done)
            nanosleep(&tick, NULL);
    }
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, &st_tail, 0);
    }
    char *err = gs_tk_read_file(errp, NULL, 1);
    fprintf(stderr, "%s", err ? err : "");
    assert_true(done);
    assert_true(WIFEXITED(st_tail));
    assert_int_equal(WEXITSTATUS(st_tail), 1);
    assert_non_null(strstr(err, "restored or replaced"));
    assert_non_null(strstr(err, "efcdab8967452301")); /* the copy's epoch */
    free(err);
    unlink(outp);
    unlink(errp);

    /* health names the lineage on both sides: the restored store's */
    r = s_run(e, store, "health", "--json", NULL);
    s_expect(&r, 0);
    s_json_t *j = s_json_parse(r.out);
    assert_non_null(j);
    assert_string_equal(s_jstr(s_jget(j, "store"), "epoch"), "efcdab8967452301");
    assert_string_equal(s_jstr(s_jget(j, "broker"), "store_epoch"), "efcdab8967452301");
    s_json_free(j);
    s_res_free(&r);
    bst = gs_tk_broker_stop(&b, SIGTERM);
    assert_true(WIFEXITED(bst) && WEXITSTATUS(bst) == 0);
}

/* ---- --admin: reading through a running broker ------------------------------------------ */

/* text with the number after "updated_at": replaced by null, as --admin
 * prints it (an admin reply carries no commit time). Caller frees. */
static char *
s_updated_null(const char *text)
{
    const char *k = strstr(text, "\"updated_at\":");
    assert_non_null(k);
    k += strlen("\"updated_at\":");
    const char *end = k;
    while (*end >= '0' && *end <= '9')
        end++;
    assert_true(end > k);
    char *out = malloc(strlen(text) + 8);
    snprintf(out, strlen(text) + 8, "%.*snull%s", (int) (k - text), text, end);
    return out;
}

/* text without its line that contains word (the one line the two paths
 * print differently). Caller frees. */
static char *
s_drop_line(const char *text, const char *word)
{
    const char *w = strstr(text, word);
    assert_non_null(w);
    const char *start = w;
    while (start > text && start[-1] != '\n')
        start--;
    const char *end = strchr(w, '\n');
    end = end ? end + 1 : w + strlen(w);
    char *out = malloc(strlen(text) + 1);
    snprintf(out, strlen(text) + 1, "%.*s%s", (int) (start - text), text, end);
    return out;
}

/* --admin EP: stats, get, devices list|show and grids list read through a
 * running broker print what they print reading the store (masked alike;
 * only the header line of stats names the endpoint, and get shows no
 * commit time), from a machine without the store; health asks the broker
 * alone there. Every other command is refused, and a missing, stale or
 * wrong endpoint, an unknown record or device are reported. */
static void
test_admin_path(void **state)
{
    s_env_t *e = *state;
    char store[160], elsewhere[160], ep[420], stale[200], community[16];
    snprintf(store, sizeof store, "%s/admin-live", e->dir);
    snprintf(elsewhere, sizeof elsewhere, "%s/no-store-here", e->dir);
    snprintf(community, sizeof community, "%.12s", e->grid0);
    s_res_t r = S_CTL(e, "backup", store);
    s_expect(&r, 0);
    s_res_free(&r);
    r = s_run(e, store, "devices", "add", "dev-adm", "--collector", "col-adm", "--prefix",
              e->grid0, "--note", "through the broker", NULL);
    s_expect(&r, 0);
    s_res_free(&r);
    gs_tk_broker_t b;
    assert_int_equal(gs_tk_broker_start(&b, store, NULL), 0);
    snprintf(ep, sizeof ep, "%s", b.admin);

    /* the same words through both paths */
    const char *cases[][8] = {
        { "stats" },
        { "stats", e->tally[0].street },
        { "stats", community, "--level", "grid" },
        { "stats", "--json" },
        { "stats", e->tally[1].street, "--json" },
        { "get", "HDUP-A" },
        { "get", "HDUP-A2" },       /* an alias: "asked for HDUP-A2, an alias of it" */
        { "get", e->void_key },
        { "get", "R-CROWD", "--kind", "rental" },
        { "get", "HDUP-A", "--json" },
        { "devices", "list" },
        { "devices", "list", "--json" },
        { "devices", "show", "dev-adm" },
        { "devices", "show", "dev-adm", "--json" },
        { "grids", "list" },
        { "grids", "list", e->tally[0].street, "--json" },
        { "incidents", "categories" },
        { "incidents", "categories", "--json" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *remote[12] = { "--admin", ep };
        for (int k = 0; k < 8 && cases[i][k]; k++)
            remote[2 + k] = cases[i][k];
        s_res_t lr = s_runv(e, store, cases[i]);
        s_res_t rr = s_runv(e, elsewhere, remote);
        s_expect(&lr, 0);
        s_expect(&rr, 0);
        s_no_secrets(e, rr.out);
        char *want = strdup(lr.out), *got = strdup(rr.out);
        int get = !strcmp(cases[i][0], "get"), json = 0;
        for (int k = 0; k < 8 && cases[i][k]; k++)
            json |= !strcmp(cases[i][k], "--json");
        if (!strcmp(cases[i][0], "stats") && !json) {
            /* the header names where the figures came from */
            assert_non_null(strstr(rr.out, ep));
            free(want);
            free(got);
            want = s_drop_line(lr.out, store);
            got = s_drop_line(rr.out, ep);
        } else if (get && json) {
            free(want);
            want = s_updated_null(lr.out);
        } else if (get) {
            assert_non_null(strstr(rr.out, ", -)")); /* version N (seq S, -) */
            free(want);
            free(got);
            want = s_drop_line(lr.out, "  version ");
            got = s_drop_line(rr.out, "  version ");
        }
        if (strcmp(want, got))
            fprintf(stderr, "case %zu (%s %s):\n--- store:\n%s--- broker:\n%s", i,
                    cases[i][0], cases[i][1] ? cases[i][1] : "", want, got);
        assert_string_equal(want, got);
        free(want);
        free(got);
        s_res_free(&lr);
        s_res_free(&rr);
    }

    /* --reveal through the broker is logged in the store directory given,
     * and refused when it cannot be */
    r = s_run(e, elsewhere, "--admin", ep, "--reveal", "get", "HDUP-A", NULL);
    s_expect(&r, 1);
    assert_non_null(strstr(r.err, "--reveal is logged"));
    assert_null(strstr(r.out, e->dup_id));
    s_res_free(&r);
    r = s_run(e, store, "--admin", ep, "--reveal", "get", "HDUP-A", NULL);
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, e->dup_id));
    s_res_free(&r);

    /* not there: 1, named as from the store */
    r = s_run(e, elsewhere, "--admin", ep, "get", "H-NO-SUCH", NULL);
    s_expect(&r, 1);
    assert_non_null(strstr(r.err, "no record with id 'H-NO-SUCH'"));
    s_res_free(&r);
    r = s_run(e, elsewhere, "--admin", ep, "devices", "show", "dev-no-such", NULL);
    s_expect(&r, 1);
    assert_non_null(strstr(r.err, "no device 'dev-no-such'"));
    s_res_free(&r);

    /* health: the broker alone when the store is not here; both with it */
    r = s_run(e, elsewhere, "--admin", ep, "health", "--json", NULL);
    s_expect(&r, 0);
    s_json_t *j = s_json_parse(r.out);
    assert_non_null(j);
    assert_int_equal(s_jget(j, "store")->type, J_NULL);
    assert_true(s_jnum(s_jget(j, "broker"), "up") == 1);
    assert_true(s_jnum(s_jget(j, "broker"), "map_size") > 0);
    s_json_free(j);
    s_res_free(&r);
    r = s_run(e, elsewhere, "health", "--admin", ep, NULL);
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "store     not on this machine"));
    assert_non_null(strstr(r.out, "broker    up"));
    s_res_free(&r);
    r = s_run(e, store, "--admin", ep, "health", "--json", NULL);
    s_expect(&r, 0);
    j = s_json_parse(r.out);
    assert_non_null(j);
    assert_true(s_jnum(s_jget(j, "store"), "head_seq") == s_jnum(s_jget(j, "broker"),
                                                                   "head_seq"));
    s_json_free(j);
    s_res_free(&r);

    /* what the admin endpoint does not serve is refused, before anything
     * is written */
    char csv[200];
    snprintf(csv, sizeof csv, "%s/admin-grids.csv", e->dir);
    s_write(csv, "code,name\n440305001001099,not imported\n");
    const char *refused[][8] = {
        { "ls", e->tally[0].street },
        { "history", "HDUP-A" },
        { "export", e->tally[0].street, "--format", "jsonl" },
        { "dups" },
        { "tail", "--limit", "1" },
        { "devices", "add", "dev-x", "--collector", "c", "--prefix", e->grid0 },
        { "devices", "revoke", "dev-adm" },
        { "grids", "import", csv },
        { "backup", elsewhere },
        { "verify" },
        { "restore", store, elsewhere },
        { "ping", "--keys", "/dev/null" },
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        const char *args[12] = { "--admin", ep };
        for (int k = 0; k < 8 && refused[i][k]; k++)
            args[2 + k] = refused[i][k];
        r = s_runv(e, store, args);
        s_expect(&r, 2);
        if (!strstr(r.err, "the admin endpoint does not serve"))
            fprintf(stderr, "case %zu (%s): %s", i, refused[i][0], r.err);
        assert_non_null(strstr(r.err, "the admin endpoint does not serve"));
        s_res_free(&r);
    }
    struct stat sb;
    assert_int_equal(stat(elsewhere, &sb), -1); /* nothing made there */
    r = s_run(e, store, "devices", "show", "dev-adm", "--json", NULL);
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "\"status\":\"active\""));
    s_res_free(&r);

    /* endpoints that are not a broker's: a wrong scheme is a usage error;
     * a missing socket and one left behind say so */
    r = s_run(e, elsewhere, "--admin", "tcp://127.0.0.1:1", "stats", NULL);
    s_expect(&r, 2);
    assert_non_null(strstr(r.err, "must be ipc://PATH"));
    s_res_free(&r);
    r = s_run(e, elsewhere, "--admin", "", "stats", NULL);
    s_expect(&r, 2);
    s_res_free(&r);
    snprintf(stale, sizeof stale, "%s/stale.sock", e->dir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", stale);
    assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
    close(fd);
    char stale_ep[220];
    snprintf(stale_ep, sizeof stale_ep, "ipc://%s", stale);
    r = s_run(e, elsewhere, "--admin", stale_ep, "devices", "list", NULL);
    s_expect(&r, 1);
    assert_non_null(strstr(r.err, "nothing listens on"));
    s_res_free(&r);
    unlink(stale);

    int st = gs_tk_broker_stop(&b, SIGTERM);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    r = s_run(e, elsewhere, "--admin", ep, "stats", NULL);
    s_expect(&r, 1);
    assert_non_null(strstr(r.err, "no admin socket at"));
    s_res_free(&r);
    r = s_run(e, elsewhere, "--admin", ep, "health", NULL);
    s_expect(&r, 1);
    assert_non_null(strstr(r.out, "broker    down: no admin socket at"));
    s_res_free(&r);
}

/* ---- digest and compare ------------------------------------------------------------------ */

/* The generated district into a new store at dir: grids forwards in
 * uploads of 50, or backwards in uploads of 7. */
static void
s_district_into(s_env_t *e, const char *dir, int backwards, size_t batch)
{
    gs_store_t *st = gs_store_new(dir, NULL, NULL);
    assert_non_null(st);
    Gridsync__V1__Record *recs[50];
    size_t n = 0;
    for (uint32_t k = 0; k < e->grids; k++) {
        uint32_t g = backwards ? e->grids - 1 - k : k;
        uint32_t hf, hn, rf, rn;
        gs_gen_grid_households(e->gen, g, &hf, &hn);
        gs_gen_grid_rentals(e->gen, g, &rf, &rn);
        for (uint32_t j = 0; j < hn + rn; j++) {
            uint32_t i = backwards ? hn + rn - 1 - j : j;
            recs[n] = i < hn ? gs_gen_household(e->gen, hf + i, e->arena)
                             : gs_gen_rental(e->gen, rf + i - hn, e->arena);
            assert_non_null(recs[n]);
            if (++n == batch) {
                s_apply_to(e, st, recs, n, NULL);
                gs_arena_reset(e->arena);
                n = 0;
            }
        }
    }
    if (n)
        s_apply_to(e, st, recs, n, NULL);
    gs_arena_reset(e->arena);
    gs_store_destroy(&st);
}

/* JSON lines of compare: the cells and the summary. */
static void
s_compare_json(const char *out, s_json_t ***lines, size_t *n, const s_json_t **summary)
{
    *n = (size_t) s_json_lines(out, lines);
    assert_true(*n >= 1);
    *summary = (*lines)[*n - 1];
    assert_string_equal(s_jstr(*summary, "type"), "summary");
}

/* Two stores with the same generated district written in other orders
 * compare equal with one visit per level; after the drift hook drops one
 * record from B, compare names exactly that grid and record, from the
 * stores and through a running broker's admin endpoint; digest prints
 * the same from the store and through the broker. */
static void
test_digest_compare(void **state)
{
    s_env_t *e = *state;
    char da[160], db[160], missing[160];
    snprintf(da, sizeof da, "%s/cmp-a", e->dir);
    snprintf(db, sizeof db, "%s/cmp-b", e->dir);
    snprintf(missing, sizeof missing, "%s/cmp-none", e->dir);
    s_district_into(e, da, 0, 50);
    s_district_into(e, db, 1, 7);

    s_res_t r = s_run(e, NULL, "compare", da, db, NULL);
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "equal under (all)"));
    assert_non_null(strstr(r.out, "1 prefixes visited, 0 grids differ, 0 records differ"));
    s_res_free(&r);
    r = s_run(e, NULL, "compare", "--json", "--prefix", e->tally[0].street, da, db, NULL);
    s_expect(&r, 0);
    s_json_t **lines;
    size_t n;
    const s_json_t *sum;
    s_compare_json(r.out, &lines, &n, &sum);
    assert_int_equal(n, 1);
    assert_true(s_jnum(sum, "equal") == 1);
    assert_string_equal(s_jstr(sum, "prefix"), e->tally[0].street);
    assert_true(s_jnum(s_jget(sum, "a"), "count") > 0);
    assert_string_equal(s_jstr(s_jget(sum, "a"), "digest"), s_jstr(s_jget(sum, "b"), "digest"));
    s_json_lines_free(lines, n);
    s_res_free(&r);

    /* digest: the root's children, and a grid's records */
    r = s_run(e, da, "digest", "--json", NULL);
    s_expect(&r, 0);
    s_json_t *dj = s_json_parse(r.out);
    assert_non_null(dj);
    assert_string_equal(s_jstr(dj, "prefix"), "");
    assert_int_equal(s_jget(dj, "children")->n, 1);
    s_json_free(dj);
    s_res_free(&r);
    r = s_run(e, da, "digest", e->grid1, NULL);
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "grid "));
    assert_non_null(strstr(r.out, "CONTENT HASH"));
    s_res_free(&r);

    /* drift: drop the second household of grid 1 from B */
    uint32_t hf, hn;
    gs_gen_grid_households(e->gen, 1, &hf, &hn);
    Gridsync__V1__Record *victim = gs_gen_household(e->gen, hf + 1, e->arena);
    char key[80];
    snprintf(key, sizeof key, "%s", victim->household->household_id);
    gs_arena_reset(e->arena);
    gs_store_t *stb = gs_store_new(db, NULL, NULL);
    assert_non_null(stb);
    assert_int_equal(gs_store_debug_drop(stb, GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD,
                                         key), 0);
    gs_store_destroy(&stb);
    r = s_run(e, db, "verify", NULL);     /* B is consistent in itself */
    s_expect(&r, 0);
    s_res_free(&r);

    /* two more drifts in another grid: a void in B only (its version moves
     * on), and one record edited differently in each (same version) */
    uint32_t hf2, hn2;
    gs_gen_grid_households(e->gen, 0, &hf2, &hn2);
    char vkey[80], ckey[80];
    for (int side = 0; side < 2; side++) {
        gs_store_t *st = gs_store_new(side ? db : da, NULL, NULL);
        assert_non_null(st);
        Gridsync__V1__Record *ed = gs_gen_household(e->gen, hf2 + 2, e->arena);
        snprintf(ckey, sizeof ckey, "%s", ed->household->household_id);
        ed->household->address = (char *) (side ? "edited in B" : "edited in A");
        ed->household->meta->base_version = 1;
        Gridsync__V1__Record *recs[2] = { ed, NULL };
        size_t nr = 1;
        if (side) {
            Gridsync__V1__Record *vd = gs_gen_household(e->gen, hf2 + 3, e->arena);
            snprintf(vkey, sizeof vkey, "%s", vd->household->household_id);
            vd->household->meta->base_version = 1;
            vd->household->meta->status = GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_VOID;
            recs[nr++] = vd;
        }
        s_apply_to(e, st, recs, nr, NULL);
        gs_arena_reset(e->arena);
        gs_store_destroy(&st);
    }
    r = s_run(e, NULL, "compare", "--json", "--prefix", e->tally[0].street, da, db, NULL);
    s_expect(&r, 1);
    s_compare_json(r.out, &lines, &n, &sum);
    assert_int_equal(n, 3);     /* grid0, grid1, the summary */
    assert_string_equal(s_jstr(lines[0], "cell"), e->grid0);
    const s_json_t *g0 = s_jget(lines[0], "records");
    assert_int_equal(g0->n, 2);
    for (size_t i = 0; i < 2; i++) {
        const s_json_t *x = g0->items[i];
        const char *k = s_jstr(x, "record_key");
        if (!strcmp(k, ckey)) {
            assert_string_equal(s_jstr(x, "difference"), "content");
            assert_true(s_jnum(s_jget(x, "a"), "version") == 2);
            assert_true(s_jnum(s_jget(x, "b"), "version") == 2);
        } else {
            assert_string_equal(k, vkey);
            assert_string_equal(s_jstr(x, "difference"), "version");
            assert_string_equal(s_jstr(s_jget(x, "b"), "status"), "void");
        }
    }
    assert_true(s_jnum(sum, "records_differing") == 3);
    /* the street, the communities of grids 0 and 1 (one or two), the two
     * grids: nothing beside the drift was read */
    assert_true(s_jnum(sum, "prefixes_visited") >= 4 && s_jnum(sum, "prefixes_visited") <= 5);
    s_json_lines_free(lines, n);
    s_res_free(&r);
    r = s_run(e, NULL, "compare", "--prefix", e->grid1, da, db, NULL);
    s_expect(&r, 1);
    char line[200];
    assert_non_null(strstr(r.out, e->grid1));
    snprintf(line, sizeof line, "  only_a   household %s  A: v1 active\n", key);
    assert_non_null(strstr(r.out, line));
    assert_non_null(strstr(r.out, "DIFFERENT under "));
    assert_non_null(strstr(r.out, "1 prefixes visited, 1 grids differ, 1 records differ"));
    s_res_free(&r);

    /* the same through the broker serving B, and from B's side */
    char store_b_live[160];
    snprintf(store_b_live, sizeof store_b_live, "%s", db);
    gs_tk_broker_t b;
    assert_int_equal(gs_tk_broker_start(&b, store_b_live, NULL), 0);
    const char *pairs[][2] = { { da, b.admin }, { b.admin, da } };
    for (int p = 0; p < 2; p++) {
        r = s_run(e, NULL, "compare", "--json", "--prefix", e->grid1, pairs[p][0], pairs[p][1],
                  NULL);
        s_expect(&r, 1);
        s_compare_json(r.out, &lines, &n, &sum);
        assert_int_equal(n, 2);
        const s_json_t *cell = lines[0];
        assert_string_equal(s_jstr(cell, "type"), "cell");
        assert_string_equal(s_jstr(cell, "cell"), e->grid1);
        const s_json_t *recs = s_jget(cell, "records");
        assert_int_equal(recs->n, 1);
        assert_string_equal(s_jstr(recs->items[0], "record_key"), key);
        assert_string_equal(s_jstr(recs->items[0], "kind"), "household");
        assert_string_equal(s_jstr(recs->items[0], "difference"), p ? "only_b" : "only_a");
        assert_true(s_jnum(sum, "cells_differing") == 1);
        assert_true(s_jnum(sum, "records_differing") == 1);
        assert_true(s_jnum(sum, "equal") == 0);
        assert_true(s_jnum(sum, "prefixes_visited") == 1);
        s_json_lines_free(lines, n);
        s_res_free(&r);
    }
    /* B through its broker against B itself, read beside it: equal */
    r = s_run(e, NULL, "compare", b.admin, db, NULL);
    s_expect(&r, 0);
    s_res_free(&r);
    /* digest through the broker prints what the store prints */
    s_res_t lr = s_run(e, db, "digest", e->tally[0].street, NULL);
    s_res_t rr = s_run(e, missing, "--admin", b.admin, "digest", e->tally[0].street, NULL);
    s_expect(&lr, 0);
    s_expect(&rr, 0);
    assert_string_equal(lr.out, rr.out);
    s_res_free(&lr);
    s_res_free(&rr);
    int st = gs_tk_broker_stop(&b, SIGTERM);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    /* errors are 2: arguments, a prefix off a level, a missing store, --admin */
    const char *bad[][6] = {
        { "compare", da },
        { "compare", "--prefix", "110", da, db },
        { "compare", da, missing },
        { "compare", "--admin", "ipc:///nonexistent.sock", da, db },
        { "compare", da, "ipc:///nonexistent/admin.sock" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[8] = { 0 };
        for (int k = 0; k < 6 && bad[i][k]; k++)
            args[k] = bad[i][k];
        r = s_runv(e, NULL, args);
        s_expect(&r, 2);
        s_res_free(&r);
    }
    r = s_run(e, da, "digest", "110", NULL);
    s_expect(&r, 2);
    s_res_free(&r);
}

/* Write text to dir/name; the path goes to path. */
static void
s_write_file(const char *dir, const char *name, const char *text, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* gridctl incidents categories: show (the built-in table, then the one
 * set), check and set from a file (what show prints, edited), every file
 * problem with its line, a code in use refused unless retired, and the
 * table's codes for devices add. */
static void
test_incident_categories(void **state)
{
    s_env_t *e = *state;
    char store[160], path[256];
    snprintf(store, sizeof store, "%s/catstore", e->dir);
    gs_store_t *st = gs_store_new(store, NULL, NULL);
    assert_non_null(st);
    const int D = GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE;
    s_inc_step(st, "E1", "03", 2, 1, 0, NULL, D, "dev-1", 1780243200000LL);
    gs_store_destroy(&st);

    s_res_t r = s_run(e, store, "incidents", "categories", NULL);
    s_expect(&r, 0);
    assert_ptr_equal(strstr(r.out, "# the built-in table (none set in this store)\n"), r.out);
    assert_non_null(strstr(r.out, "\n02\t安全隐患\t168\t72\t24\t4\t72\t48\t24\t4\tactive\n"));
    /* what show prints is a file set takes: add 07, keep the rest */
    size_t n = strlen(r.out);
    char *text = malloc(n + 128);
    assert_non_null(text);
    snprintf(text, n + 128, "%s07\t噪音扰民\t96\t48\t24\t12\t10\t8\t6\t2\tactive\n", r.out);
    s_res_free(&r);
    s_write_file(e->dir, "cats.tsv", text, path, sizeof path);
    free(text);
    r = s_run(e, store, "incidents", "categories", "check", path, NULL);
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "8 categories (0 retired): it can be set"));
    s_res_free(&r);
    r = s_run(e, store, "incidents", "categories", "show", "--json", NULL);
    s_expect(&r, 0);
    s_json_t *j = s_json_parse(r.out);
    assert_non_null(j);
    assert_false(s_jget(j, "configured")->num);     /* check wrote nothing */
    assert_int_equal(s_jget(j, "categories")->n, 7);
    s_json_free(j);
    s_res_free(&r);
    r = s_run(e, store, "incidents", "categories", "set", path, "--json", NULL);
    s_expect(&r, 0);
    j = s_json_parse(r.out);
    assert_non_null(j);
    assert_true(s_jnum(j, "categories") == 8);
    assert_true(s_jget(j, "written")->num);
    s_json_free(j);
    s_res_free(&r);
    r = s_run(e, store, "incidents", "categories", "--json", NULL);
    s_expect(&r, 0);
    j = s_json_parse(r.out);
    assert_non_null(j);
    assert_true(s_jget(j, "configured")->num);
    const s_json_t *cats = s_jget(j, "categories");
    assert_int_equal(cats->n, 8);
    assert_string_equal(s_jstr(cats->items[6], "code"), "07");
    assert_string_equal(s_jstr(cats->items[6], "name"), "噪音扰民");
    assert_true(s_jget(cats->items[6], "handle_hours")->items[3]->num == 2);
    s_json_free(j);
    s_res_free(&r);
    r = s_run(e, store, "incidents", "categories", NULL);
    s_expect(&r, 0);
    assert_ptr_equal(strstr(r.out, "# the table set in this store\n"), r.out);
    s_res_free(&r);

    /* a department may now be bound to 07, and show names it */
    r = s_run(e, store, "devices", "add", "noise-1", "--role", "department", "--department",
              "dept-env", "--category", "07", "--prefix", "440305", NULL);
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "07 噪音扰民"));
    s_res_free(&r);

    /* each problem of a file with its line; nothing written */
    static const struct {
        const char *text, *err;
    } bad[] = {
        { "# c\n01\tx\t1\t1\t1\t1\t1\t1\t1\t1\tactive\n02\tx\t1\t1\t1\t1\t1\t1\t1\tactive\n",
          "bad.tsv:3: 10 field(s); a category line has 11" },
        { "01\tx\t1\t1\t1\t1\t1\t1\t1\t1\tactive\n\n01\ty\t1\t1\t1\t1\t1\t1\t1\t1\tactive\n",
          "bad.tsv:3: category 01 is given twice (first on line 1)" },
        { "01\tx\t24\t48\t1\t1\t1\t1\t1\t1\tactive\n",
          "bad.tsv:1: category 01: closure hours grow with severity" },
        { "01\tx\t1\t1\t1\t1\t1\t1\t1\tsoon\tactive\n",
          "bad.tsv:1: category 01: handling hours for URGENT 'soon'" },
        { "01\tx\t1\t1\t1\t1\t1\t1\t1\t1\tretired\n", "bad.tsv: the table has no active" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_write_file(e->dir, "bad.tsv", bad[i].text, path, sizeof path);
        r = s_run(e, store, "incidents", "categories", "set", path, NULL);
        s_expect(&r, 1);
        if (!strstr(r.err, bad[i].err))
            fail_msg("stderr \"%s\" lacks \"%s\"", r.err, bad[i].err);
        s_res_free(&r);
    }
    /* 03 has a stored incident, 07 a registry entry: neither can be left out */
    const char *keep07 = "07\t噪音扰民\t96\t48\t24\t12\t10\t8\t6\t2\tactive\n";
    s_write_file(e->dir, "no03.tsv", keep07, path, sizeof path);
    r = s_run(e, store, "incidents", "categories", "check", path, NULL);
    s_expect(&r, 1);
    assert_non_null(strstr(r.err, "category 03 is used by 1 stored incident: keep its line "
                                  "and mark it retired"));
    s_res_free(&r);
    s_write_file(e->dir, "no07.tsv", "03\t治安\t120\t48\t24\t2\t72\t48\t24\t4\tretired\n"
                 "99\t其他\t240\t120\t72\t24\t72\t48\t24\t4\tactive\n", path, sizeof path);
    r = s_run(e, store, "incidents", "categories", "set", path, NULL);
    s_expect(&r, 1);
    assert_non_null(strstr(r.err, "category 07 is used by 1 device registry entry (noise-1)"));
    s_res_free(&r);
    s_write_file(e->dir, "retire03.tsv", "03\t治安\t120\t48\t24\t2\t72\t48\t24\t4\tretired\n"
                 "07\t噪音扰民\t96\t48\t24\t12\t10\t8\t6\t2\tactive\n", path, sizeof path);
    r = s_run(e, store, "incidents", "categories", "set", path, NULL);
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "set 2 categories (1 retired)"));
    s_res_free(&r);
    r = s_run(e, store, "incidents", "categories", NULL);
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "\n03\t治安\t120\t48\t24\t2\t72\t48\t24\t4\tretired\n"));
    assert_null(strstr(r.out, "\n02\t"));
    s_res_free(&r);

    /* usage */
    r = s_run(e, store, "incidents", "categories", "set", NULL);
    s_expect(&r, 2);
    s_res_free(&r);
    r = s_run(e, store, "incidents", "categories", "drop", "x", NULL);
    s_expect(&r, 2);
    s_res_free(&r);
    snprintf(path, sizeof path, "%s/missing.tsv", e->dir);
    r = s_run(e, store, "incidents", "categories", "set", path, NULL);
    s_expect(&r, 1);
    assert_non_null(strstr(r.err, "cannot read"));
    s_res_free(&r);
    r = s_run(e, store, "incidents", "categories", "--help", NULL);
    s_expect(&r, 0);
    assert_non_null(strstr(r.out, "active|retired"));
    s_res_free(&r);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_help_lists_every_command),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_organisations),
        cmocka_unit_test(test_ls_get),
        cmocka_unit_test(test_masking_and_reveal),
        cmocka_unit_test(test_dups),
        cmocka_unit_test(test_history_tail),
        cmocka_unit_test(test_export),
        cmocka_unit_test(test_devices),
        cmocka_unit_test(test_devices_department_centre),
        cmocka_unit_test(test_incidents),
        cmocka_unit_test(test_incident_categories),
        cmocka_unit_test(test_grids_import),
        cmocka_unit_test(test_grids_import_dry_run),
        cmocka_unit_test(test_backup_verify),
        cmocka_unit_test(test_with_broker),
        cmocka_unit_test(test_tail_follow_restored),
        cmocka_unit_test(test_tail_department),
        cmocka_unit_test(test_admin_path),
        cmocka_unit_test(test_digest_compare),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}

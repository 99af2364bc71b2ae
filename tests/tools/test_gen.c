/*
 * Tests for gs_gen, the synthetic district generator: determinism and
 * random access, the grid hierarchy and codes, record counts and ranges,
 * and that every generated record of the default district passes
 * gs_record_check with plausible content (one head, 1..6 members, unique ID
 * numbers and addresses, valid phones, realistic shares of floating,
 * foreign and undocumented persons), and that organisations are valid,
 * keyed apart, and carry their noise (branches, stalls, employees who are
 * the district's household heads).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gs_arena.h"
#include "gs_gen.h"
#include "gs_validate.h"

/* ---- Helpers ------------------------------------------------------------ */

/* A set of strings (open addressing, FNV-1a), for uniqueness checks. */
typedef struct s_set {
    char **slots;   /* NULL or an owned copy */
    size_t cap;     /* power of two */
    size_t n;       /* keys held */
} s_set_t;

static uint64_t
s_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char) *s) * 1099511628211ULL;
    return h;
}

static void
s_set_init(s_set_t *s, size_t expect)
{
    s->cap = 1024;
    while (s->cap < expect * 2)
        s->cap *= 2;
    s->slots = calloc(s->cap, sizeof(char *));
    s->n = 0;
    assert_non_null(s->slots);
}

/* False when key was already present. */
static bool
s_set_add(s_set_t *s, const char *key)
{
    assert_true(s->n * 2 < s->cap); /* sized up front */
    size_t i = (size_t) s_hash(key) & (s->cap - 1);
    while (s->slots[i]) {
        if (strcmp(s->slots[i], key) == 0)
            return false;
        i = (i + 1) & (s->cap - 1);
    }
    s->slots[i] = strdup(key);
    assert_non_null(s->slots[i]);
    s->n++;
    return true;
}

static void
s_set_deinit(s_set_t *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slots[i]);
    free(s->slots);
    s->slots = NULL;
}

/* Packed bytes of a record into a malloc'd buffer. */
static uint8_t *
s_pack(const Gridsync__V1__Record *rec, size_t *len)
{
    *len = gridsync__v1__record__get_packed_size(rec);
    uint8_t *buf = malloc(*len ? *len : 1);
    assert_non_null(buf);
    assert_int_equal(gridsync__v1__record__pack(rec, buf), *len);
    return buf;
}

typedef Gridsync__V1__Record *(*s_make_fn)(const gs_gen_t *, uint32_t,
                                          gs_arena_t *);

/* Generate record i and return its packed bytes. */
static uint8_t *
s_make_packed(const gs_gen_t *g, s_make_fn make, uint32_t i, gs_arena_t *a,
              size_t *len)
{
    gs_arena_reset(a);
    Gridsync__V1__Record *rec = make(g, i, a);
    assert_non_null(rec);
    return s_pack(rec, len);
}

static int
s_year(const char *date)
{
    return atoi(date);
}

/* A phone as generated must already be in normalised form. */
static void
s_assert_phone(const char *phone)
{
    char out[16];
    gs_verdict_t v;
    assert_int_equal(gs_phone_normalize(phone, out, sizeof(out), &v), 0);
    assert_string_equal(out, phone);
    if (phone[0] == '1')
        assert_int_equal(strlen(phone), 11);
}

/* ---- Options and hierarchy ------------------------------------------------ */

static void
test_bad_options(void **state)
{
    (void) state;
    gs_gen_opts_t o;
    gs_gen_opts_init(&o);
    o.district = "44030";
    assert_null(gs_gen_new(&o));
    o.district = "44a305";
    assert_null(gs_gen_new(&o));
    o.district = "990305"; /* no such province */
    assert_null(gs_gen_new(&o));
    gs_gen_opts_init(&o);
    o.streets = 0;
    assert_null(gs_gen_new(&o));
    gs_gen_opts_init(&o);
    o.grids = o.streets - 1;
    assert_null(gs_gen_new(&o));
    gs_gen_opts_init(&o);
    o.units_per_building = 0;
    assert_null(gs_gen_new(&o));

    gs_gen_t *g = NULL;
    gs_gen_destroy(&g);
    gs_gen_destroy(NULL);
    g = gs_gen_new(NULL); /* defaults */
    assert_non_null(g);
    gs_gen_destroy(&g);
    assert_null(g);
    gs_gen_destroy(&g);
}

static void
test_hierarchy(void **state)
{
    (void) state;
    gs_gen_opts_t o;
    gs_gen_opts_init(&o);
    gs_gen_t *g = gs_gen_new(&o);
    assert_non_null(g);
    uint32_t n = gs_gen_grid_count(g);
    assert_int_equal(n, 1372);
    assert_null(gs_gen_grid_code(g, n));

    s_set_t codes, communities;
    s_set_init(&codes, n);
    s_set_init(&communities, n);
    uint32_t streets_seen = 0, max_street = 0;
    char prev[16] = "";
    for (uint32_t i = 0; i < n; i++) {
        const char *code = gs_gen_grid_code(g, i);
        gs_verdict_t v;
        assert_non_null(code);
        assert_int_equal(strlen(code), 15);
        assert_int_equal(gs_gridcode_check(code, &v), 0);
        assert_memory_equal(code, "440305", 6);
        assert_true(s_set_add(&codes, code));
        /* grid codes come in hierarchy order */
        assert_true(strcmp(prev, code) < 0);
        memcpy(prev, code, 16);
        uint32_t street = (uint32_t) atoi((char[4]){code[6], code[7], code[8], 0});
        assert_true(street >= 1 && street <= 8);
        if (street > max_street) {
            max_street = street;
            streets_seen++;
        }
        char comm[13];
        memcpy(comm, code, 12);
        comm[12] = '\0';
        s_set_add(&communities, comm);

        const char *name = gs_gen_grid_name(g, i);
        assert_non_null(name);
        assert_true(strlen(name) > 0);
        assert_int_equal(gs_text_check(name, 64, "grid name", &v), 0);
        assert_non_null(strstr(name, "网格"));
    }
    assert_int_equal(streets_seen, 8);
    /* about 8 to 15 grids per community */
    double per = (double) n / (double) communities.n;
    print_message("communities %zu, %.1f grids each\n", communities.n, per);
    assert_true(per >= 8.0 && per <= 15.0);
    s_set_deinit(&codes);
    s_set_deinit(&communities);
    gs_gen_destroy(&g);
}

static void
test_counts_and_ranges(void **state)
{
    (void) state;
    gs_gen_t *g = gs_gen_new(NULL);
    assert_non_null(g);
    uint32_t grids = gs_gen_grid_count(g);
    assert_int_equal(gs_gen_household_count(g), 139000);

    uint32_t next = 0, min = UINT32_MAX, max = 0, in_band = 0;
    for (uint32_t i = 0; i < grids; i++) {
        uint32_t first, n;
        gs_gen_grid_households(g, i, &first, &n);
        assert_int_equal(first, next);
        next = first + n;
        min = n < min ? n : min;
        max = n > max ? n : max;
        in_band += n >= 55 && n <= 200;
    }
    assert_int_equal(next, gs_gen_household_count(g));
    print_message("households per grid: %u..%u, %u of %u in 55..200\n", min,
                  max, in_band, grids);
    assert_true(min >= 40 && max <= 250);
    assert_true(in_band >= grids * 95 / 100);
    assert_true(max - min >= 60); /* sizes vary */

    next = 0;
    uint32_t biggest = 0;
    for (uint32_t i = 0; i < grids; i++) {
        uint32_t first, n;
        gs_gen_grid_rentals(g, i, &first, &n);
        assert_int_equal(first, next);
        next = first + n;
        biggest = n > biggest ? n : biggest;
    }
    uint32_t units = gs_gen_rental_count(g);
    assert_int_equal(next, units);
    double mean = (double) units / 13055.0;
    print_message("rental units %u (%.2f per building), busiest grid %u\n",
                  units, mean, biggest);
    assert_true(mean >= 3.5 && mean <= 4.5);
    /* urban-village grids hold many more units than the rest */
    assert_true(biggest >= 100);

    /* out of range */
    gs_arena_t *a = gs_arena_new(0);
    assert_null(gs_gen_household(g, gs_gen_household_count(g), a));
    assert_null(gs_gen_rental(g, units, a));
    gs_arena_destroy(&a);
    gs_gen_destroy(&g);
}

/* ---- Determinism ------------------------------------------------------------- */

static void
s_check_order_independent(s_make_fn make, uint32_t count)
{
    gs_gen_t *g1 = gs_gen_new(NULL), *g2 = gs_gen_new(NULL);
    gs_gen_opts_t o;
    gs_gen_opts_init(&o);
    o.seed = 2;
    gs_gen_t *g3 = gs_gen_new(&o);
    assert_non_null(g1);
    assert_non_null(g2);
    assert_non_null(g3);
    gs_arena_t *a = gs_arena_new(0);
    enum { N = 200 };
    uint8_t *fwd[N];
    size_t fwd_len[N];
    uint32_t idx[N];
    for (uint32_t k = 0; k < N; k++) {
        idx[k] = (uint32_t) ((uint64_t) k * 2654435761u % count);
        fwd[k] = s_make_packed(g1, make, idx[k], a, &fwd_len[k]);
    }
    /* backwards from another generator: same bytes */
    for (uint32_t k = N; k-- > 0;) {
        size_t len;
        uint8_t *b = s_make_packed(g2, make, idx[k], a, &len);
        assert_int_equal(len, fwd_len[k]);
        assert_memory_equal(b, fwd[k], len);
        free(b);
    }
    /* the same generator again after other work: same bytes */
    for (uint32_t k = 0; k < N; k += 7) {
        size_t len;
        uint8_t *b = s_make_packed(g1, make, idx[k], a, &len);
        assert_int_equal(len, fwd_len[k]);
        assert_memory_equal(b, fwd[k], len);
        free(b);
    }
    /* another seed: different records */
    uint32_t differ = 0;
    for (uint32_t k = 0; k < N; k++) {
        size_t len;
        if (idx[k] >= (make == gs_gen_rental ? gs_gen_rental_count(g3)
                                             : gs_gen_household_count(g3)))
            continue;
        uint8_t *b = s_make_packed(g3, make, idx[k], a, &len);
        differ += len != fwd_len[k] || memcmp(b, fwd[k], len) != 0;
        free(b);
    }
    assert_true(differ >= N * 9 / 10);
    for (uint32_t k = 0; k < N; k++)
        free(fwd[k]);
    gs_arena_destroy(&a);
    gs_gen_destroy(&g1);
    gs_gen_destroy(&g2);
    gs_gen_destroy(&g3);
}

static void
test_determinism_households(void **state)
{
    (void) state;
    s_check_order_independent(gs_gen_household, 139000);
}

static void
test_determinism_rentals(void **state)
{
    (void) state;
    gs_gen_t *g = gs_gen_new(NULL);
    uint32_t n = gs_gen_rental_count(g);
    gs_gen_destroy(&g);
    s_check_order_independent(gs_gen_rental, n);
}

static void
test_determinism_orgs(void **state)
{
    (void) state;
    s_check_order_independent(gs_gen_org, 8232);
}

/* Every organisation of the default district is valid and keyed apart;
 * the noise the register has is there in realistic shares: branches
 * sharing a USCC at another address in another grid, unregistered stalls
 * without a USCC, and people who work in one grid and live in another,
 * who are household heads of the district with the same ID number. */
static void
test_orgs_valid(void **state)
{
    (void) state;
    gs_gen_t *g = gs_gen_new(NULL);
    assert_non_null(g);
    gs_gen_opts_t o;
    gs_gen_opts_init(&o);
    uint32_t n = gs_gen_org_count(g);
    assert_int_equal(n, o.organisations);
    gs_arena_t *a = gs_arena_new(0);
    s_set_t keys, usccs, heads;
    s_set_init(&keys, n);
    s_set_init(&usccs, n);
    s_set_init(&heads, 200000);
    /* the ID numbers of household heads */
    for (uint32_t i = 0; i < gs_gen_household_count(g); i++) {
        gs_arena_reset(a);
        Gridsync__V1__Record *h = gs_gen_household(g, i, a);
        for (size_t k = 0; k < h->household->n_members; k++)
            if (h->household->members[k]->relation == GRIDSYNC__V1__RELATION__RELATION_HEAD &&
                *h->household->members[k]->id_number)
                assert_true(s_set_add(&heads, h->household->members[k]->id_number));
    }
    uint32_t branches = 0, stalls = 0, employees = 0, with_rep = 0, next = 0;
    uint32_t kinds[7] = {0};
    for (uint32_t gi = 0; gi < gs_gen_grid_count(g); gi++) {
        uint32_t first, cnt;
        gs_gen_grid_orgs(g, gi, &first, &cnt);
        assert_int_equal(first, next);
        next = first + cnt;
        for (uint32_t i = first; i < first + cnt; i++) {
            gs_arena_reset(a);
            Gridsync__V1__Record *rec = gs_gen_org(g, i, a);
            assert_non_null(rec);
            gs_verdict_t v;
            if (gs_record_check(rec, gs_arena_allocator(a), NULL, o.now_ms, &v))
                fail_msg("organisation %u: %s", i, v.message);
            const Gridsync__V1__OrganisationUnit *org = rec->organisation;
            assert_string_equal(org->grid_code, gs_gen_grid_code(g, gi));
            kinds[org->kind]++;
            char key[512];
            if (org->uscc && *org->uscc) {
                snprintf(key, sizeof key, "U%s|%s", org->uscc, org->address_code);
                if (!s_set_add(&usccs, org->uscc))
                    branches++;
            } else {
                stalls++;
                assert_int_equal(org->kind, GRIDSYNC__V1__ORG_KIND__ORG_KIND_INDIVIDUAL_BUSINESS);
                assert_non_null(org->room);
                snprintf(key, sizeof key, "N%s|%s|%s|%s", org->name, org->grid_code,
                         org->room->building, org->room->room);
            }
            assert_true(s_set_add(&keys, key));
            /* every one a household head (persons without documents aside) */
            if (org->legal_representative) {
                with_rep++;
                if (*org->legal_representative->id_number)
                    assert_false(s_set_add(&heads, org->legal_representative->id_number));
            }
            for (size_t k = 0; k < org->n_employees; k++)
                if (*org->employees[k]->id_number)
                    assert_false(s_set_add(&heads, org->employees[k]->id_number));
            employees += (uint32_t) org->n_employees;
        }
    }
    assert_int_equal(next, n);
    /* about 55% enterprises of which 5% branches, a third of 33% stalls */
    assert_true(branches > n / 100 && branches < n / 20);
    assert_true(stalls > n / 20 && stalls < n / 5);
    assert_true(kinds[GRIDSYNC__V1__ORG_KIND__ORG_KIND_SOCIAL_ORGANISATION] > 0);
    assert_true(kinds[GRIDSYNC__V1__ORG_KIND__ORG_KIND_PUBLIC_INSTITUTION] > 0);
    assert_true(with_rep == n);
    assert_true(employees > n * 2);
    assert_null(gs_gen_org(g, n, a));
    s_set_deinit(&keys);
    s_set_deinit(&usccs);
    s_set_deinit(&heads);
    gs_arena_destroy(&a);
    gs_gen_destroy(&g);
}

static void
test_seed_changes_layout(void **state)
{
    (void) state;
    gs_gen_opts_t o;
    gs_gen_opts_init(&o);
    gs_gen_t *a = gs_gen_new(&o);
    o.seed = 99;
    gs_gen_t *b = gs_gen_new(&o);
    assert_int_equal(gs_gen_grid_count(a), gs_gen_grid_count(b));
    uint32_t differ = 0;
    for (uint32_t i = 0; i < gs_gen_grid_count(a); i++) {
        uint32_t f1, n1, f2, n2;
        gs_gen_grid_households(a, i, &f1, &n1);
        gs_gen_grid_households(b, i, &f2, &n2);
        differ += n1 != n2;
    }
    assert_true(differ > gs_gen_grid_count(a) / 2);
    gs_gen_destroy(&a);
    gs_gen_destroy(&b);
}

/* Two threads generating from one gs_gen_t, interleaved, get the bytes a
 * single thread gets. */
typedef struct s_worker {
    const gs_gen_t *gen;        /* shared generator */
    uint32_t start;             /* first index this worker makes */
    uint32_t stride;            /* then every stride-th */
    uint32_t count;             /* indexes below this */
    uint64_t *hashes;           /* per index: FNV-1a of the packed bytes */
} s_worker_t;

static uint64_t
s_hash_bytes(const uint8_t *b, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

static void *
s_worker_run(void *arg)
{
    s_worker_t *w = arg;
    gs_arena_t *a = gs_arena_new(0);
    for (uint32_t i = w->start; i < w->count; i += w->stride) {
        gs_arena_reset(a);
        Gridsync__V1__Record *rec = i % 2 ? gs_gen_rental(w->gen, i / 2, a)
                                          : gs_gen_household(w->gen, i / 2, a);
        uint8_t buf[8192];
        /* no cmocka asserts off the main thread: 0 marks a failure */
        w->hashes[i] = 0;
        if (rec && gridsync__v1__record__get_packed_size(rec) <= sizeof(buf))
            w->hashes[i] = s_hash_bytes(buf, gridsync__v1__record__pack(rec, buf));
    }
    gs_arena_destroy(&a);
    return NULL;
}

static void
test_threads(void **state)
{
    (void) state;
    gs_gen_t *g = gs_gen_new(NULL);
    enum { COUNT = 20000 };
    uint64_t *one = calloc(COUNT, sizeof(uint64_t));
    uint64_t *two = calloc(COUNT, sizeof(uint64_t));
    assert_non_null(one);
    assert_non_null(two);
    s_worker_t solo = {g, 0, 1, COUNT, one};
    s_worker_run(&solo);
    s_worker_t w[2] = {{g, 0, 2, COUNT, two}, {g, 1, 2, COUNT, two}};
    pthread_t t[2];
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_create(&t[k], NULL, s_worker_run, &w[k]), 0);
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_join(t[k], NULL), 0);
    for (uint32_t i = 0; i < COUNT; i++) {
        assert_true(one[i] != 0);
        assert_true(one[i] == two[i]);
    }
    free(one);
    free(two);
    gs_gen_destroy(&g);
}

/* ---- Identity numbers ---------------------------------------------------------- */

static void
test_idnum(void **state)
{
    (void) state;
    char id[19];
    gs_gen_idnum("110105", 19491231, 2, 0, id);
    assert_string_equal(id, "11010519491231002X");
    gs_gen_idnum("340524", 19800101, 1, 0, id);
    assert_string_equal(id, "34052419800101001X");
    gs_gen_idnum("440524", 18800101, 1, 0, id);
    assert_string_equal(id, "440524188001010014");

    const int64_t now = 1780243200000LL; /* 2026-06-01 */
    s_set_t seen;
    s_set_init(&seen, 1000);
    for (uint32_t seq = 0; seq < 499; seq++) {
        for (int sex = 1; sex <= 2; sex++) {
            gs_verdict_t v;
            int date = 19000101 + (int) (seq % 12) * 100 + (int) (seq % 28);
            gs_gen_idnum("440305", date, sex, seq, id);
            assert_int_equal(strlen(id), 18);
            assert_int_equal(gs_idnum_check(id, now, &v), 0);
            assert_int_equal(gs_idnum_birth(id), date);
            assert_int_equal(gs_idnum_sex(id), sex);
            assert_memory_equal(id, "440305", 6);
            assert_memory_not_equal(id + 14, "000", 3);
        }
        /* one date: every sequence value and sex gives its own number */
        gs_gen_idnum("440305", 19900615, 1 + (int) (seq % 2), seq, id);
        assert_true(s_set_add(&seen, id));
    }
    s_set_deinit(&seen);
}

/* ---- The whole district ------------------------------------------------------- */

/* What the full scan counts. */
typedef struct s_stats {
    uint64_t persons;           /* household members */
    uint64_t size[7];           /* households by member count */
    uint64_t floating;          /* members with POPULATION_TYPE_FLOATING */
    uint64_t foreign;           /* members with POPULATION_TYPE_FOREIGN */
    uint64_t undocumented;      /* all persons with ID_TYPE_NONE */
    uint64_t all_persons;       /* members, tenants, landlords (per unit) */
    uint64_t restricted;        /* members with a Restricted part */
    uint64_t with_code;         /* households with an address code */
    uint64_t with_room;         /* households with a room address */
    uint64_t adults;            /* members aged 18+ */
    uint64_t adults_phone;      /* of which with a phone */
    uint64_t tenants;           /* lease tenants */
    uint64_t tenants_floating;  /* of which floating */
    uint64_t org_landlords;     /* units let by an organisation */
    uint64_t leases_by_n[5];    /* units by lease count */
    uint64_t inspections;       /* inspections seen */
    uint64_t hh_bytes;          /* packed household bytes */
    uint64_t hh_records;        /* households packed */
    uint64_t rental_bytes;      /* packed rental bytes */
    uint64_t rental_records;    /* rentals packed */
} s_stats_t;

static void
s_check_person(const Gridsync__V1__Person *p, s_set_t *ids, s_stats_t *st,
               int this_year)
{
    st->all_persons++;
    if (p->id_type == GRIDSYNC__V1__ID_TYPE__ID_TYPE_NONE) {
        st->undocumented++;
        assert_string_equal(p->id_number, "");
    } else {
        char key[80];
        snprintf(key, sizeof(key), "%d:%s", (int) p->id_type, p->id_number);
        if (!s_set_add(ids, key))
            fail_msg("duplicate ID number %s (%s)", p->id_number, p->name);
    }
    for (size_t k = 0; k < p->n_phones; k++)
        s_assert_phone(p->phones[k]);
    if (p->population_type == GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_FLOATING)
        assert_non_null(p->floating);
    if (p->id_type == GRIDSYNC__V1__ID_TYPE__ID_TYPE_PASSPORT) {
        assert_non_null(p->foreigner);
        assert_int_equal(strlen(p->foreigner->nationality), 3);
    }
    (void) this_year;
}

static void
s_check_household(const gs_gen_t *g, uint32_t gi, uint32_t i,
                  Gridsync__V1__Household *h, s_set_t *ids, s_set_t *places,
                  s_stats_t *st, int this_year, int64_t now_ms)
{
    const char *code = gs_gen_grid_code(g, gi);
    assert_string_equal(h->grid_code, code);
    assert_int_equal(h->household_id[0], 'H');
    assert_memory_equal(h->household_id + 1, code, 15);
    gs_verdict_t v;
    assert_int_equal(gs_ident_check(h->household_id, "id", &v), 0);
    char want[32];
    snprintf(want, sizeof(want), "col-%s", code);
    assert_string_equal(h->meta->collector_id, want);
    snprintf(want, sizeof(want), "dev-%s", code);
    assert_string_equal(h->meta->device_id, want);
    assert_int_equal(h->meta->base_version, 0);
    assert_int_equal(h->meta->status, GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_ACTIVE);
    assert_true(h->meta->collected_at <= now_ms);
    assert_true(h->meta->collected_at >= now_ms - 90LL * 86400000);

    /* one place per household */
    char place[300];
    if (h->address_code[0]) {
        st->with_code++;
        snprintf(place, sizeof(place), "code:%s", h->address_code);
    } else {
        assert_non_null(h->room);
        st->with_room++;
        snprintf(place, sizeof(place), "room:%s|%s|%s|%s|%s", h->grid_code,
                 h->room->building, h->room->unit, h->room->floor,
                 h->room->room);
    }
    if (!s_set_add(places, place))
        fail_msg("household %u: place %s used twice", i, place);

    assert_true(h->n_members >= 1 && h->n_members <= 6);
    st->size[h->n_members]++;
    size_t heads = 0;
    int head_year = 0;
    for (size_t k = 0; k < h->n_members; k++)
        if (h->members[k]->relation == GRIDSYNC__V1__RELATION__RELATION_HEAD) {
            heads++;
            head_year = s_year(h->members[k]->birth_date);
        }
    assert_int_equal(heads, 1);
    assert_int_equal(h->members[0]->relation, GRIDSYNC__V1__RELATION__RELATION_HEAD);
    for (size_t k = 0; k < h->n_members; k++) {
        const Gridsync__V1__Person *p = h->members[k];
        int year = s_year(p->birth_date);
        s_check_person(p, ids, st, this_year);
        st->persons++;
        st->floating += p->population_type
                        == GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_FLOATING;
        st->foreign += p->population_type
                       == GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_FOREIGN;
        st->restricted += p->restricted != NULL;
        if (this_year - year >= 18) {
            st->adults++;
            st->adults_phone += p->n_phones > 0;
        }
        /* generations in a plausible order */
        switch (p->relation) {
        case GRIDSYNC__V1__RELATION__RELATION_CHILD:
            assert_true(year >= head_year + 18);
            break;
        case GRIDSYNC__V1__RELATION__RELATION_PARENT:
            assert_true(year <= head_year - 18);
            break;
        case GRIDSYNC__V1__RELATION__RELATION_GRANDCHILD:
            assert_true(year >= head_year + 36);
            break;
        default:
            break;
        }
        assert_true(year >= 1900 && year < this_year + 1);
    }
}

static void
s_check_rental(const gs_gen_t *g, uint32_t gi, Gridsync__V1__RentalHousing *r,
               s_set_t *ids, s_set_t *places, s_stats_t *st, char *last_building,
               uint64_t *last_landlord, int this_year)
{
    const char *code = gs_gen_grid_code(g, gi);
    assert_string_equal(r->grid_code, code);
    assert_int_equal(r->house_id[0], 'R');
    assert_memory_equal(r->house_id + 1, code, 15);
    assert_true(r->address[0] != '\0');
    assert_non_null(r->building);
    assert_true(r->building->floors >= 1);
    if (r->building->head)
        s_assert_phone(r->building->head->phone);
    assert_true(r->area_m2 >= 10.0 && r->area_m2 <= 120.0);
    assert_true(r->room_count >= 1 && r->room_count <= 4);
    assert_true(r->use >= 1 && r->use <= 4);

    char place[300];
    if (r->address_code[0])
        snprintf(place, sizeof(place), "code:%s", r->address_code);
    else
        snprintf(place, sizeof(place), "room:%s|%s|%s|%s", r->grid_code,
                 r->room->building, r->room->floor, r->room->room);
    if (!s_set_add(places, place))
        fail_msg("rental %s: place %s used twice", r->house_id, place);

    /* a building's landlord is one party, the same on each of its units
     * (which are numbered together): count it once per building */
    assert_non_null(r->landlord);
    bool new_building = strcmp(last_building, r->building->building_id) != 0;
    if (new_building)
        snprintf(last_building, 64, "%s", r->building->building_id);
    uint8_t buf[4096];
    assert_true(gridsync__v1__landlord__get_packed_size(r->landlord) <= sizeof(buf));
    uint64_t h = s_hash_bytes(buf, gridsync__v1__landlord__pack(r->landlord, buf));
    if (new_building)
        *last_landlord = h;
    else
        assert_true(h == *last_landlord);
    if (r->landlord->party_case == GRIDSYNC__V1__LANDLORD__PARTY_PERSON) {
        if (new_building)
            s_check_person(r->landlord->person, ids, st, this_year);
    } else {
        assert_int_equal(r->landlord->party_case,
                         GRIDSYNC__V1__LANDLORD__PARTY_ORGANISATION);
        gs_verdict_t v;
        assert_int_equal(gs_uscc_check(r->landlord->organisation->uscc, &v), 0);
        s_assert_phone(r->landlord->organisation->contact_phone);
        st->org_landlords++;
    }

    assert_true(r->n_leases <= 4);
    st->leases_by_n[r->n_leases]++;
    for (size_t k = 0; k < r->n_leases; k++) {
        const Gridsync__V1__Person *t = r->leases[k]->tenant;
        s_check_person(t, ids, st, this_year);
        st->tenants++;
        st->tenants_floating += t->population_type
                                == GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_FLOATING;
        if (r->leases[k]->end_date[0])
            assert_true(strcmp(r->leases[k]->end_date, r->leases[k]->start_date) >= 0);
    }
    assert_true(r->n_inspections <= 3);
    for (size_t k = 0; k < r->n_inspections; k++) {
        const Gridsync__V1__Inspection *in = r->inspections[k];
        st->inspections++;
        assert_true(in->fire && in->security && in->environment
                    && in->management && in->integrity);
        assert_true(in->n_hazards <= 2);
        if (k > 0)
            assert_true(strcmp(r->inspections[k - 1]->date, in->date) <= 0);
    }
}

/* Generated records are already normalised: checking them changes nothing,
 * so what a simulated device sends is byte for byte what the store keeps.
 * Frees before. */
static void
s_assert_unchanged(const Gridsync__V1__Record *rec, uint8_t *before, size_t len)
{
    size_t after_len;
    uint8_t *after = s_pack(rec, &after_len);
    assert_int_equal(after_len, len);
    assert_memory_equal(after, before, len);
    free(after);
    free(before);
}

/* Every household and rental unit of the default district: about 1.5 s,
 * 6 s under ASan+UBSan. */
static void
test_district_valid(void **state)
{
    (void) state;
    gs_gen_opts_t o;
    gs_gen_opts_init(&o);
    gs_gen_t *g = gs_gen_new(&o);
    assert_non_null(g);
    const int this_year = gs_date_today(o.now_ms) / 10000;
    gs_arena_t *a = gs_arena_new(0);
    s_set_t ids, places;
    s_set_init(&ids, 800000);
    s_set_init(&places, 200000);
    s_stats_t st = {0};
    char last_building[64] = "";
    uint64_t last_landlord = 0;

    for (uint32_t gi = 0; gi < gs_gen_grid_count(g); gi++) {
        uint32_t first, n;
        gs_gen_grid_households(g, gi, &first, &n);
        for (uint32_t i = first; i < first + n; i++) {
            gs_arena_reset(a);
            Gridsync__V1__Record *rec = gs_gen_household(g, i, a);
            assert_non_null(rec);
            size_t len;
            uint8_t *before = s_pack(rec, &len);
            st.hh_bytes += len;
            st.hh_records++;
            gs_verdict_t v;
            if (gs_record_check(rec, gs_arena_allocator(a), NULL, o.now_ms, &v))
                fail_msg("household %u: %s (%s)", i, v.message,
                         gs_reason_name(v.reason));
            s_assert_unchanged(rec, before, len);
            s_check_household(g, gi, i, rec->household, &ids, &places, &st,
                              this_year, o.now_ms);
        }
        gs_gen_grid_rentals(g, gi, &first, &n);
        for (uint32_t i = first; i < first + n; i++) {
            gs_arena_reset(a);
            Gridsync__V1__Record *rec = gs_gen_rental(g, i, a);
            assert_non_null(rec);
            size_t len;
            uint8_t *before = s_pack(rec, &len);
            st.rental_bytes += len;
            st.rental_records++;
            gs_verdict_t v;
            if (gs_record_check(rec, gs_arena_allocator(a), NULL, o.now_ms, &v))
                fail_msg("rental %u: %s (%s)", i, v.message,
                         gs_reason_name(v.reason));
            s_assert_unchanged(rec, before, len);
            s_check_rental(g, gi, rec->rental, &ids, &places, &st,
                           last_building, &last_landlord, this_year);
        }
    }
    assert_int_equal(st.hh_records, gs_gen_household_count(g));
    assert_int_equal(st.rental_records, gs_gen_rental_count(g));

    uint64_t hh = st.hh_records;
    double mean = (double) st.persons / (double) hh;
    print_message("households %llu, persons %llu (%.2f each); sizes 1..6: "
                  "%llu %llu %llu %llu %llu %llu\n",
                  (unsigned long long) hh, (unsigned long long) st.persons, mean,
                  (unsigned long long) st.size[1], (unsigned long long) st.size[2],
                  (unsigned long long) st.size[3], (unsigned long long) st.size[4],
                  (unsigned long long) st.size[5], (unsigned long long) st.size[6]);
    print_message("members: floating %.1f%%, foreign %.2f%%, restricted %.2f%%; "
                  "undocumented %.3f%% of all %llu persons\n",
                  100.0 * st.floating / st.persons, 100.0 * st.foreign / st.persons,
                  100.0 * st.restricted / st.persons,
                  100.0 * st.undocumented / st.all_persons,
                  (unsigned long long) st.all_persons);
    print_message("rentals %llu: tenants %llu (%.1f%% floating), organisation "
                  "landlords %.1f%%, inspections %llu\n",
                  (unsigned long long) st.rental_records,
                  (unsigned long long) st.tenants,
                  100.0 * st.tenants_floating / st.tenants,
                  100.0 * st.org_landlords / st.rental_records,
                  (unsigned long long) st.inspections);
    print_message("mean packed size: household %.0f bytes, rental %.0f bytes\n",
                  (double) st.hh_bytes / hh,
                  (double) st.rental_bytes / st.rental_records);

    /* member counts: all sizes occur, most households have 2..4 */
    for (int k = 1; k <= 6; k++)
        assert_true(st.size[k] > 0);
    assert_true(st.size[2] + st.size[3] + st.size[4] > hh * 55 / 100);
    assert_true(mean > 2.4 && mean < 3.6);
    /* population shares */
    assert_true(st.floating > st.persons / 5 && st.floating < st.persons * 3 / 5);
    assert_true(st.foreign > 0 && st.foreign < st.persons * 3 / 100);
    assert_true(st.undocumented > 0 && st.undocumented * 200 < st.all_persons);
    assert_true(st.restricted > st.persons / 200 && st.restricted < st.persons / 20);
    assert_true(st.with_room > 0 && st.with_code > st.with_room * 5);
    assert_true(st.adults_phone > st.adults * 85 / 100);
    /* rentals */
    assert_true(st.tenants_floating > st.tenants * 6 / 10);
    assert_true(st.org_landlords > 0);
    for (int k = 0; k <= 4; k++)
        assert_true(st.leases_by_n[k] > 0);
    assert_true(st.inspections > 0);

    s_set_deinit(&ids);
    s_set_deinit(&places);
    gs_arena_destroy(&a);
    gs_gen_destroy(&g);
}

/* A small district with other options is just as valid. */
static void
test_small_district(void **state)
{
    (void) state;
    gs_gen_opts_t o;
    gs_gen_opts_init(&o);
    o.seed = 7;
    o.district = "110105";
    o.streets = 3;
    o.grids = 40;
    o.households = 3000;
    o.rental_buildings = 120;
    o.units_per_building = 2;
    gs_gen_t *g = gs_gen_new(&o);
    assert_non_null(g);
    assert_int_equal(gs_gen_grid_count(g), 40);
    assert_int_equal(gs_gen_household_count(g), 3000);
    gs_arena_t *a = gs_arena_new(0);
    s_set_t ids;
    s_set_init(&ids, 20000);
    uint32_t total = 0;
    for (uint32_t gi = 0; gi < 40; gi++) {
        assert_memory_equal(gs_gen_grid_code(g, gi), "110105", 6);
        uint32_t first, n;
        gs_gen_grid_households(g, gi, &first, &n);
        total += n;
    }
    assert_int_equal(total, 3000);
    uint32_t units = gs_gen_rental_count(g);
    assert_true(units >= 120 && units <= 120 * 6);
    for (uint32_t i = 0; i < 3000 + units; i++) {
        gs_arena_reset(a);
        Gridsync__V1__Record *rec = i < 3000 ? gs_gen_household(g, i, a)
                                             : gs_gen_rental(g, i - 3000, a);
        assert_non_null(rec);
        gs_verdict_t v;
        if (gs_record_check(rec, gs_arena_allocator(a), NULL, o.now_ms, &v))
            fail_msg("record %u: %s", i, v.message);
        if (i < 3000)
            for (size_t k = 0; k < rec->household->n_members; k++) {
                const Gridsync__V1__Person *p = rec->household->members[k];
                if (p->id_number[0])
                    assert_true(s_set_add(&ids, p->id_number));
            }
    }
    s_set_deinit(&ids);
    gs_gen_destroy(&g);

    /* an empty district: grids but no records */
    o.households = 0;
    o.rental_buildings = 0;
    g = gs_gen_new(&o);
    assert_non_null(g);
    assert_int_equal(gs_gen_household_count(g), 0);
    assert_int_equal(gs_gen_rental_count(g), 0);
    assert_null(gs_gen_household(g, 0, a));
    uint32_t first, n;
    gs_gen_grid_rentals(g, 39, &first, &n);
    assert_int_equal(n, 0);
    gs_gen_destroy(&g);
    gs_arena_destroy(&a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_hierarchy),
        cmocka_unit_test(test_counts_and_ranges),
        cmocka_unit_test(test_determinism_households),
        cmocka_unit_test(test_determinism_rentals),
        cmocka_unit_test(test_determinism_orgs),
        cmocka_unit_test(test_orgs_valid),
        cmocka_unit_test(test_seed_changes_layout),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_idnum),
        cmocka_unit_test(test_district_valid),
        cmocka_unit_test(test_small_district),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * st_lib: see st_lib.h.
 */
#include "st_lib.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "gs_validate.h"

static char *
s_strdup(gs_arena_t *a, const char *s)
{
    char *p = gs_arena_strdup(a, s);
    assert_non_null(p);
    return p;
}

static void *
s_new(gs_arena_t *a, size_t n)
{
    void *p = gs_arena_alloc(a, n);
    assert_non_null(p);
    memset(p, 0, n);
    return p;
}

static void
s_birth(uint32_t pid, int *y, int *m, int *d, int *seq)
{
    *y = 1940 + (int) (pid % 60);
    *m = 1 + (int) ((pid / 60) % 12);
    *d = 1 + (int) ((pid / 720) % 28);
    *seq = (int) ((pid / 20160) % 1000);
}

void
st_idnum(uint32_t pid, char out[19])
{
    int y, m, d, seq;
    s_birth(pid, &y, &m, &d, &seq);
    char first17[32];
    snprintf(first17, sizeof first17, "110105%04d%02d%02d%03d", y, m, d, seq);
    memcpy(out, first17, 17);
    out[17] = gs_idnum_check_char(first17);
    out[18] = 0;
}

static Gridsync__V1__Person *
s_person(gs_arena_t *a, uint32_t pid, Gridsync__V1__Relation rel)
{
    Gridsync__V1__Person *p = s_new(a, sizeof *p);
    gridsync__v1__person__init(p);
    int y, m, d, seq;
    s_birth(pid, &y, &m, &d, &seq);
    char id[19], birth[16], name[32];
    st_idnum(pid, id);
    snprintf(birth, sizeof birth, "%04d-%02d-%02d", y, m, d);
    snprintf(name, sizeof name, "居民%u", pid);
    p->id_type = GRIDSYNC__V1__ID_TYPE__ID_TYPE_RESIDENT_CARD;
    p->id_number = s_strdup(a, id);
    p->name = s_strdup(a, name);
    p->sex = seq % 2 ? GRIDSYNC__V1__SEX__SEX_MALE : GRIDSYNC__V1__SEX__SEX_FEMALE;
    p->birth_date = s_strdup(a, birth);
    p->population_type = GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_REGISTERED;
    p->residence_status = GRIDSYNC__V1__RESIDENCE_STATUS__RESIDENCE_STATUS_PRESENT_REGISTERED;
    p->relation = rel;
    return p;
}

static Gridsync__V1__Person *
s_person_nodoc(gs_arena_t *a, Gridsync__V1__Relation rel)
{
    Gridsync__V1__Person *p = s_new(a, sizeof *p);
    gridsync__v1__person__init(p);
    p->id_type = GRIDSYNC__V1__ID_TYPE__ID_TYPE_NONE;
    p->id_number = "";
    p->name = s_strdup(a, "无证人员");
    p->sex = GRIDSYNC__V1__SEX__SEX_FEMALE;
    p->birth_date = s_strdup(a, "1990-01-01");
    p->population_type = GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_UNSETTLED;
    p->residence_status = GRIDSYNC__V1__RESIDENCE_STATUS__RESIDENCE_STATUS_PRESENT_ONLY;
    p->relation = rel;
    return p;
}

Gridsync__V1__Record *
st_build(gs_arena_t *a, const st_rec_t *s)
{
    Gridsync__V1__Record *rec = s_new(a, sizeof *rec);
    gridsync__v1__record__init(rec);
    Gridsync__V1__RecordMeta *meta = s_new(a, sizeof *meta);
    gridsync__v1__record_meta__init(meta);
    meta->collector_id = s_strdup(a, "col-1");
    meta->device_id = s_strdup(a, s->device ? s->device : "dev-1");
    meta->collected_at = s->collected_at ? s->collected_at : ST_NOW_MS - 3600 * 1000;
    meta->base_version = s->base;
    meta->status = s->void_ ? GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_VOID
                            : GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_ACTIVE;
    Gridsync__V1__RoomAddress *room = NULL;
    if (s->room) {
        room = s_new(a, sizeof *room);
        gridsync__v1__room_address__init(room);
        room->building = s_strdup(a, "1号楼");
        room->unit = s_strdup(a, "2");
        room->room = s_strdup(a, s->room);
    }
    size_t np = 0;
    while (np < 8 && s->pids[np])
        np++;
    const char *grid = s->grid ? s->grid : "110105001001001";
    const char *note = s->note ? s->note : "建外街道1号";
    if (s->kind == 'O') {
        Gridsync__V1__OrganisationUnit *o = s_new(a, sizeof *o);
        gridsync__v1__organisation_unit__init(o);
        o->org_id = s_strdup(a, s->id);
        o->grid_code = s_strdup(a, grid);
        if (s->uscc)
            o->uscc = s_strdup(a, s->uscc);
        o->name = s_strdup(a, s->name ? s->name : "南联便利店");
        o->kind = s->uscc ? GRIDSYNC__V1__ORG_KIND__ORG_KIND_ENTERPRISE
                          : GRIDSYNC__V1__ORG_KIND__ORG_KIND_INDIVIDUAL_BUSINESS;
        o->industry = s_strdup(a, "F5261");
        o->status = GRIDSYNC__V1__ORG_STATUS__ORG_STATUS_OPERATING;
        o->address = s_strdup(a, note);
        if (s->addr_code)
            o->address_code = s_strdup(a, s->addr_code);
        o->room = room;
        if (s->landlord)
            o->legal_representative =
                s_person(a, s->landlord, GRIDSYNC__V1__RELATION__RELATION_UNSPECIFIED);
        size_t ne = np + (s->nodoc ? 1 : 0);
        o->employees = s_new(a, (ne ? ne : 1) * sizeof *o->employees);
        for (size_t i = 0; i < ne; i++)
            o->employees[i] =
                i < np ? s_person(a, s->pids[i], GRIDSYNC__V1__RELATION__RELATION_UNSPECIFIED)
                       : s_person_nodoc(a, GRIDSYNC__V1__RELATION__RELATION_UNSPECIFIED);
        o->n_employees = ne;
        o->meta = meta;
        rec->body_case = GRIDSYNC__V1__RECORD__BODY_ORGANISATION;
        rec->organisation = o;
    } else if (s->kind == 'R') {
        Gridsync__V1__RentalHousing *r = s_new(a, sizeof *r);
        gridsync__v1__rental_housing__init(r);
        r->house_id = s_strdup(a, s->id);
        r->grid_code = s_strdup(a, grid);
        r->address = s_strdup(a, note);
        if (s->addr_code)
            r->address_code = s_strdup(a, s->addr_code);
        r->room = room;
        r->area_m2 = 45.5;
        r->room_count = 2;
        r->use = GRIDSYNC__V1__UNIT_USE__UNIT_USE_RESIDENTIAL;
        size_t nl = np + (s->nodoc ? 1 : 0);
        r->leases = s_new(a, (nl ? nl : 1) * sizeof *r->leases);
        for (size_t i = 0; i < nl; i++) {
            Gridsync__V1__Lease *l = s_new(a, sizeof *l);
            gridsync__v1__lease__init(l);
            l->tenant = i < np ? s_person(a, s->pids[i], GRIDSYNC__V1__RELATION__RELATION_NON_RELATIVE)
                               : s_person_nodoc(a, GRIDSYNC__V1__RELATION__RELATION_NON_RELATIVE);
            l->start_date = s_strdup(a, "2025-01-01");
            r->leases[i] = l;
        }
        r->n_leases = nl;
        if (s->landlord) {
            Gridsync__V1__Landlord *ll = s_new(a, sizeof *ll);
            gridsync__v1__landlord__init(ll);
            ll->party_case = GRIDSYNC__V1__LANDLORD__PARTY_PERSON;
            ll->person = s_person(a, s->landlord, GRIDSYNC__V1__RELATION__RELATION_NON_RELATIVE);
            r->landlord = ll;
        }
        r->meta = meta;
        rec->body_case = GRIDSYNC__V1__RECORD__BODY_RENTAL;
        rec->rental = r;
    } else {
        Gridsync__V1__Household *h = s_new(a, sizeof *h);
        gridsync__v1__household__init(h);
        h->household_id = s_strdup(a, s->id);
        h->grid_code = s_strdup(a, grid);
        if (s->addr_code)
            h->address_code = s_strdup(a, s->addr_code);
        h->room = room;
        h->address = s_strdup(a, note);
        size_t nm = np + (s->nodoc ? 1 : 0);
        h->members = s_new(a, (nm ? nm : 1) * sizeof *h->members);
        for (size_t i = 0; i < nm; i++)
            h->members[i] = i < np
                ? s_person(a, s->pids[i], i == 0 ? GRIDSYNC__V1__RELATION__RELATION_HEAD
                                                 : GRIDSYNC__V1__RELATION__RELATION_CHILD)
                : s_person_nodoc(a, np == 0 ? GRIDSYNC__V1__RELATION__RELATION_HEAD
                                            : GRIDSYNC__V1__RELATION__RELATION_OTHER_RELATIVE);
        h->n_members = nm;
        h->meta = meta;
        rec->body_case = GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD;
        rec->household = h;
    }
    return rec;
}

char *
st_tmpdir(void)
{
    char tmpl[] = "/tmp/gs_store_test.XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    char *p = malloc(strlen(d) + 16);
    assert_non_null(p);
    snprintf(p, strlen(d) + 16, "%s/db", d);
    return p;   /* the store lives one level down so tests can add siblings */
}

static void
s_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            s_rmtree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

void
st_rmdir(const char *dir)
{
    /* dir is <tmp>/db: remove the whole <tmp> */
    char parent[1024];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash)
        *slash = 0;
    s_rmtree(parent);
}

gs_store_t *
st_open(const char *dir, const gs_store_opts_t *o)
{
    int err = 0;
    gs_store_t *st = gs_store_new(dir, o, &err);
    if (!st)
        fail_msg("gs_store_new(%s): %s (%s)", dir, gs_store_strerror(err), gs_store_errdetail());
    return st;
}

int
st_apply(gs_store_t *st, gs_arena_t *a, const char *device, const char *upload_id,
         Gridsync__V1__Record **recs, size_t n, int64_t now_ms, gs_apply_out_t *out)
{
    gs_upload_t up = { device, upload_id, recs, n, gs_arena_allocator(a), NULL, 0, NULL, 1 };
    return gs_store_apply(st, &up, 1, now_ms, out);
}

Gridsync__V1__Ack *
st_ack(const gs_apply_out_t *out, size_t i)
{
    assert_true(i < out->n_uploads);
    Gridsync__V1__Ack *ack = gridsync__v1__ack__unpack(NULL, out->uploads[i].ack_len,
                                                       out->uploads[i].ack);
    assert_non_null(ack);
    return ack;
}

st_res_t
st_put(gs_store_t *st, gs_arena_t *a, const st_rec_t *s, int64_t now_ms)
{
    static unsigned counter;
    char upid[64];
    snprintf(upid, sizeof upid, "put-%u-%lld", ++counter, (long long) now_ms);
    Gridsync__V1__Record *rec = st_build(a, s);
    gs_apply_out_t out;
    gs_upload_t up = { s->device ? s->device : "dev-1", upid, &rec, 1,
                       gs_arena_allocator(a), NULL, 0, NULL, 1 };
    int rc = gs_store_apply(st, &up, 1, now_ms, &out);
    if (rc)
        fail_msg("apply: %s (%s)", gs_store_strerror(rc), gs_store_errdetail());
    Gridsync__V1__Ack *ack = st_ack(&out, 0);
    assert_int_equal(ack->n_results, 1);
    st_res_t r;
    memset(&r, 0, sizeof r);
    r.status = ack->results[0]->status;
    r.reason = ack->results[0]->reason;
    r.version = ack->results[0]->version;
    r.seq = ack->results[0]->seq;
    snprintf(r.key, sizeof r.key, "%s", ack->results[0]->record_key);
    snprintf(r.message, sizeof r.message, "%s", ack->results[0]->message);
    r.n_events = out.n_events;
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_apply_out_clear(&out);
    return r;
}

typedef struct {
    Gridsync__V1__Record *rec;
    uint64_t version;
    char grid[16];
} s_got_t;

static int
s_got(void *arg, const gs_record_view_t *v)
{
    s_got_t *g = arg;
    g->rec = gridsync__v1__record__unpack(NULL, v->len, v->data);
    g->version = v->version;
    snprintf(g->grid, sizeof g->grid, "%s", v->grid);
    return 0;
}

Gridsync__V1__Record *
st_get(gs_store_t *st, int kind, const char *id, uint64_t *version, char grid[16])
{
    s_got_t g = { 0 };
    int rc = gs_store_get(st, kind, id, s_got, &g);
    if (rc == GS_ENOTFOUND)
        return NULL;
    assert_int_equal(rc, 0);
    assert_non_null(g.rec);
    if (version)
        *version = g.version;
    if (grid)
        memcpy(grid, g.grid, 16);
    return g.rec;
}

static void
s_print_problem(void *arg, const char *problem)
{
    (void) arg;
    print_error("verify: %s\n", problem);
}

void
st_verify_ok(gs_store_t *st)
{
    uint64_t problems = 0;
    int rc = gs_store_verify(st, s_print_problem, NULL, &problems);
    if (rc)
        fail_msg("verify: %s, %llu problems (%s)", gs_store_strerror(rc),
                 (unsigned long long) problems, gs_store_errdetail());
    assert_int_equal(problems, 0);
}

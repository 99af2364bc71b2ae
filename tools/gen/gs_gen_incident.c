/*
 * gs_gen_incident: generated incidents and their workflow plans. See
 * gs_gen_incident.h.
 */
#include "gs_gen_incident.h"

#include <stdio.h>
#include <string.h>

#include "gs_incident.h"

#define S_ST(name) GRIDSYNC__V1__INCIDENT_STATUS__INCIDENT_STATUS_##name
#define S_ROLE(name) GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_##name
#define S_HOUR GS_INCIDENT_HOUR_MS

static const struct {
    const char *category, *department;
} s_departments[] = {
    { "01", "dept-justice" }, { "02", "dept-fire" }, { "03", "dept-police" },
    { "04", "dept-sanitation" }, { "05", "dept-urban" }, { "06", "dept-civil" },
    { "99", "dept-street" },
};

/* What collectors report besides hazards, by category. */
static const struct {
    const char *category, *description;
} s_other[] = {
    { "01", "邻里噪音纠纷" }, { "01", "物业费纠纷" }, { "03", "可疑人员出入" },
    { "04", "垃圾堆放未清运" }, { "04", "下水道堵塞" }, { "05", "占道经营" },
    { "05", "违规张贴广告" }, { "06", "独居老人需要帮扶" }, { "99", "路灯损坏" },
};

#define S_N(a) (sizeof(a) / sizeof((a)[0]))

const char *
gs_gen_inc_department(const char *category)
{
    for (size_t i = 0; category && i < S_N(s_departments); i++)
        if (strcmp(s_departments[i].category, category) == 0)
            return s_departments[i].department;
    return NULL;
}

/* A 64-bit mix of a grid code and an index (splitmix64 over FNV-1a). */
static uint64_t
s_hash(const char *grid, uint32_t k, uint32_t salt)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = grid; *p; p++)
        h = (h ^ (uint8_t) *p) * 1099511628211ULL;
    h ^= ((uint64_t) k << 32) | salt;
    h += 0x9e3779b97f4a7c15ULL;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

/* The latest inspection's unrectified hazards of rental unit r: calls fn
 * for each, stops when fn returns non-zero. Returns how many were seen. */
typedef int (s_hazard_fn)(void *arg, const Gridsync__V1__RentalHousing *r,
                          const Gridsync__V1__Hazard *h);

static uint32_t
s_hazards(const gs_gen_t *g, uint32_t grid, gs_arena_t *a, s_hazard_fn *fn, void *arg)
{
    uint32_t first, n, seen = 0;
    gs_gen_grid_rentals(g, grid, &first, &n);
    for (uint32_t i = first; i < first + n; i++) {
        Gridsync__V1__Record *rec = gs_gen_rental(g, i, a);
        if (!rec || !rec->rental || !rec->rental->n_inspections)
            continue;
        const Gridsync__V1__RentalHousing *r = rec->rental;
        const Gridsync__V1__Inspection *in = r->inspections[r->n_inspections - 1];
        for (size_t h = 0; in && h < in->n_hazards; h++) {
            if (!in->hazards[h] || in->hazards[h]->rectified)
                continue;
            seen++;
            if (fn && fn(arg, r, in->hazards[h]))
                return seen;
        }
    }
    return seen;
}

static uint32_t
s_others(const char *grid)
{
    return 1 + (uint32_t) (s_hash(grid, 0, 7) % 3);
}

uint32_t
gs_gen_grid_incident_count(const gs_gen_t *g, uint32_t grid, gs_arena_t *a)
{
    const char *code = gs_gen_grid_code(g, grid);
    if (!code)
        return 0;
    return s_hazards(g, grid, a, NULL, NULL) + s_others(code);
}

/* The k-th hazard found, copied out. */
typedef struct s_pick {
    uint32_t want;                  /* index among the hazards */
    uint32_t at;                    /* hazards passed so far */
    const char *house_id, *address, *address_code, *description;
    const Gridsync__V1__RoomAddress *room;
} s_pick_t;

static int
s_pick(void *arg, const Gridsync__V1__RentalHousing *r, const Gridsync__V1__Hazard *h)
{
    s_pick_t *p = arg;
    if (p->at++ != p->want)
        return 0;
    p->house_id = r->house_id;
    p->address = r->address;
    p->address_code = r->address_code;
    p->room = r->room;
    p->description = h->description;
    return 1;
}

static void *
s_alloc(gs_arena_t *a, size_t n)
{
    ProtobufCAllocator *al = gs_arena_allocator(a);
    return al->alloc(al->allocator_data, n);
}

static void
s_step(gs_gen_incident_t *o, int status, int role, const char *dept, const char *note,
       int64_t after)
{
    if (o->n_steps < GS_GEN_INC_STEPS_MAX)
        o->steps[o->n_steps++] = (gs_gen_inc_step_t) { status, role, dept, note, after };
}

/* The plan of an incident of category and severity (hours from the
 * report; acceptance one hour after it). */
static void
s_plan(gs_gen_incident_t *o, const char *category, int severity, uint64_t h)
{
    const char *dept = gs_gen_inc_department(category);
    /* a department that is not this category's: a wrong first dispatch */
    const char *wrong = strcmp(dept, "dept-urban") ? "dept-urban" : "dept-street";
    int64_t due = gs_incident_close_ms(category, severity);   /* from acceptance */
    int64_t acc = S_HOUR;
    unsigned roll = (unsigned) (h % 100);
    o->outcome = roll < 70 ? GS_GEN_INC_ON_TIME : roll < 80 ? GS_GEN_INC_LATE
               : roll < 90 ? GS_GEN_INC_REJECTED : roll < 95 ? GS_GEN_INC_REDISPATCHED
                           : GS_GEN_INC_OVERDUE;
    if (o->outcome == GS_GEN_INC_REJECTED) {
        s_step(o, S_ST(REJECTED), S_ROLE(CENTRE), NULL, "重复上报，不予立案", acc);
        return;
    }
    const int64_t min = S_HOUR / 60;
    s_step(o, S_ST(ACCEPTED), S_ROLE(CENTRE), NULL, "立案", acc);
    int64_t t = acc + 15 * min;
    if (o->outcome == GS_GEN_INC_REDISPATCHED) {
        /* sent to the wrong department first; the centre sends it on */
        s_step(o, S_ST(DISPATCHED), S_ROLE(CENTRE), wrong, "派遣", t);
        t += 20 * min;
    }
    s_step(o, S_ST(DISPATCHED), S_ROLE(CENTRE), dept, o->n_steps > 1 ? "改派" : "派遣", t);
    if (o->outcome == GS_GEN_INC_OVERDUE)
        return;     /* never handled: open past its deadline */
    /* handled in the first quarter of the deadline (at least 15 minutes
     * after the dispatch), or (late) an hour after the deadline */
    int64_t handled = o->outcome == GS_GEN_INC_LATE ? acc + due + S_HOUR
                                                    : t + (due / 4 > 15 * min ? due / 4 : 15 * min);
    s_step(o, S_ST(HANDLED), S_ROLE(DEPARTMENT), dept, "已处置", handled);
    s_step(o, S_ST(VERIFIED), S_ROLE(DEVICE), NULL, "现场核查通过", handled + 10 * min);
    s_step(o, S_ST(CLOSED), S_ROLE(CENTRE), NULL, "结案", handled + 20 * min);
}

int
gs_gen_incident(const gs_gen_t *g, uint32_t grid, uint32_t k, int64_t now_ms, gs_arena_t *a,
                gs_gen_incident_t *out)
{
    memset(out, 0, sizeof *out);
    const char *code = gs_gen_grid_code(g, grid);
    if (!code)
        return -1;
    s_pick_t p = { .want = k };
    uint32_t hazards = s_hazards(g, grid, a, s_pick, &p);
    int from_hazard = p.description != NULL;
    if (!from_hazard && k - hazards >= s_others(code))
        return -1;
    uint64_t h = s_hash(code, k, 1);
    Gridsync__V1__Record *rec = s_alloc(a, sizeof *rec);
    Gridsync__V1__Incident *in = s_alloc(a, sizeof *in);
    Gridsync__V1__RecordMeta *m = s_alloc(a, sizeof *m);
    char *id = s_alloc(a, 32), *dev = s_alloc(a, 24), *col = s_alloc(a, 24);
    if (!rec || !in || !m || !id || !dev || !col)
        return -1;
    gridsync__v1__record__init(rec);
    gridsync__v1__incident__init(in);
    gridsync__v1__record_meta__init(m);
    rec->body_case = GRIDSYNC__V1__RECORD__BODY_INCIDENT;
    rec->incident = in;
    snprintf(id, 32, "E%s%05u", code, k);
    snprintf(dev, 24, "dev-%s", code);
    snprintf(col, 24, "col-%s", code);
    in->incident_id = id;
    in->grid_code = (char *) code;
    in->reporter = col;
    in->status = S_ST(REPORTED);
    /* graver ones are rarer: 一般 60%, 较大 25%, 重大 10%, 特别重大 5% */
    unsigned sv = (unsigned) ((h >> 8) % 100);
    in->severity = sv < 60 ? 1 : sv < 85 ? 2 : sv < 95 ? 3 : 4;
    if (from_hazard) {
        in->category = "02";
        in->description = (char *) p.description;
        in->address = (char *) p.address;
        in->address_code = (char *) p.address_code;
        in->room = (Gridsync__V1__RoomAddress *) p.room;
        Gridsync__V1__RecordRef *ref = s_alloc(a, sizeof *ref);
        Gridsync__V1__RecordRef **refs = s_alloc(a, sizeof *refs);
        if (!ref || !refs)
            return -1;
        gridsync__v1__record_ref__init(ref);
        ref->kind = GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_RENTAL;
        ref->record_key = (char *) p.house_id;
        refs[0] = ref;
        in->related = refs;
        in->n_related = 1;
    } else {
        size_t o = (size_t) ((h >> 16) % S_N(s_other));
        in->category = (char *) s_other[o].category;
        in->description = (char *) s_other[o].description;
        in->address = (char *) gs_gen_grid_name(g, grid);
    }
    in->meta = m;
    m->collector_id = col;
    m->device_id = dev;
    m->collected_at = now_ms - (int64_t) (1 + (h >> 24) % 3) * 24 * S_HOUR;
    out->report = rec;
    s_plan(out, in->category, (int) in->severity, h >> 32);
    return 0;
}

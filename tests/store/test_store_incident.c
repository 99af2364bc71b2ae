/*
 * test_store_incident: the incident workflow as the store enforces it
 * (store/gs_store_incident.c with proto/gs_incident's tables) on a real LMDB
 * store: a report carried through acceptance, dispatch, handling,
 * verification and closure by the principals whose work each step is; the
 * history and deadlines the store writes by its own clock; and the steps it
 * refuses (wrong role, wrong department or category, no such step, stale
 * base version, a void, a department changing what the incident is); and
 * the store's category table (gs_store_incident_table): the categories it
 * accepts, the deadlines it sets by category and severity, a change that
 * applies to the next step only, and a code in use that may be retired
 * but not dropped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gs_incident.h"
#include "st_lib.h"

#define RS(name) GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_##name
#define RN(name) GRIDSYNC__V1__REASON__REASON_##name
#define ST(name) GRIDSYNC__V1__INCIDENT_STATUS__INCIDENT_STATUS_##name
#define ROLE(name) GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_##name
#define K_I GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT
#define G1 "440305001001001"
#define HOUR GS_INCIDENT_HOUR_MS

typedef struct fx {
    char *dir;
    gs_store_t *st;
    gs_arena_t *a;
} fx_t;

static int
s_setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = st_tmpdir();
    f->st = st_open(f->dir, NULL);
    f->a = gs_arena_new(0);
    assert_non_null(f->a);
    *state = f;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *f = *state;
    gs_store_destroy(&f->st);
    gs_arena_destroy(&f->a);
    st_rmdir(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* The principals of the tests. */
static const char *const s_fire_cats[] = { "02", "03" };
static const gs_principal_t s_collector = { ROLE(DEVICE), NULL, NULL, 0 };
static const gs_principal_t s_centre = { ROLE(CENTRE), NULL, NULL, 0 };
static const gs_principal_t s_fire = { ROLE(DEPARTMENT), "dept-fire", s_fire_cats, 2 };
static const gs_principal_t s_other = { ROLE(DEPARTMENT), "dept-city", s_fire_cats, 2 };
static const gs_principal_t s_admin = { ROLE(ADMIN), NULL, NULL, 0 };

/* What an uploaded incident says. */
typedef struct inc {
    int status;
    uint64_t base;
    const char *department;
    const char *note;           /* the note of an appended history entry */
    const char *category;       /* default "02" */
    int severity;               /* default SERIOUS */
    int void_;
    const char *id;             /* default "E1" */
} inc_t;

static Gridsync__V1__Record *
s_build(gs_arena_t *a, const inc_t *s)
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
    in->incident_id = (char *) (s->id ? s->id : "E1");
    in->grid_code = G1;
    in->address_code = "A1";
    in->category = (char *) (s->category ? s->category : "02");
    in->severity = s->severity ? s->severity
                               : GRIDSYNC__V1__INCIDENT_SEVERITY__INCIDENT_SEVERITY_SERIOUS;
    in->description = "楼道堆放电动车充电";
    in->status = s->status;
    in->department = (char *) (s->department ? s->department : "");
    if (s->note) {
        Gridsync__V1__IncidentTransition *t = al->alloc(al->allocator_data, sizeof *t);
        Gridsync__V1__IncidentTransition **h = al->alloc(al->allocator_data, sizeof *h);
        gridsync__v1__incident_transition__init(t);
        /* a new entry (no `at`) with a forged author: the store keeps
         * only its note */
        t->to = s->status;
        t->by = "someone-else";
        t->note = (char *) s->note;
        h[0] = t;
        in->history = h;
        in->n_history = 1;
    }
    in->meta = m;
    m->collector_id = "col-1";
    m->device_id = "dev-c";
    m->collected_at = ST_NOW_MS - 1000;
    m->base_version = s->base;
    if (s->void_)
        m->status = GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_VOID;
    return r;
}

/* Apply one incident upload from device `by` with principal who. */
static st_res_t
s_put(fx_t *f, const char *by, const gs_principal_t *who, const inc_t *s, int64_t now)
{
    static unsigned counter;
    char upid[64];
    snprintf(upid, sizeof upid, "inc-%u", ++counter);
    Gridsync__V1__Record *rec = s_build(f->a, s);
    gs_upload_t up = { by, upid, &rec, 1, gs_arena_allocator(f->a), NULL, 0, NULL, 1 };
    gs_apply_out_t out;
    int rc = gs_store_apply_as(f->st, &up, who, 1, now, &out);
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

#define assert_accepted(r, v)                                                  \
    do {                                                                       \
        if ((r).status != RS(ACCEPTED))                                        \
            fail_msg("not accepted: status %d reason %d: %s", (r).status,      \
                     (r).reason, (r).message);                                 \
        assert_int_equal((r).version, (v));                                    \
    } while (0)

#define assert_refused(r, why, needle)                                         \
    do {                                                                       \
        assert_int_equal((r).status, RS(REJECTED));                            \
        assert_int_equal((r).reason, (why));                                   \
        if (!strstr((r).message, (needle)))                                    \
            fail_msg("message \"%s\" lacks \"%s\"", (r).message, (needle));    \
        assert_int_equal((r).n_events, 0);                                     \
    } while (0)

static Gridsync__V1__Record *
s_get_id(fx_t *f, const char *id, uint64_t *version)
{
    char grid[16];
    Gridsync__V1__Record *r = st_get(f->st, K_I, id, version, grid);
    assert_non_null(r);
    assert_int_equal(r->body_case, GRIDSYNC__V1__RECORD__BODY_INCIDENT);
    return r;
}

static Gridsync__V1__Record *
s_get(fx_t *f, uint64_t *version)
{
    return s_get_id(f, "E1", version);
}

static int
s_cell_one(void *arg, const char *grid, const gs_cell_meta_t *m)
{
    assert_string_equal(grid, G1);
    *(uint32_t *) arg = m->incidents;
    return 0;
}

static uint32_t
s_cell_incidents(fx_t *f)
{
    uint32_t n = 0;
    assert_int_equal(gs_store_cells(f->st, G1, s_cell_one, &n), 0);
    return n;
}

/* Report, accept, dispatch, handle, verify, close: each by its principal,
 * each a new version with one history entry the store wrote. */
static void
test_whole_workflow(void **state)
{
    fx_t *f = *state;
    int64_t t0 = ST_NOW_MS;
    st_res_t r = s_put(f, "dev-c", &s_collector,
                       &(inc_t) { .status = ST(REPORTED), .note = "发现隐患" }, t0);
    assert_accepted(r, 1);
    assert_string_equal(r.key, "E1");
    assert_int_equal(s_cell_incidents(f), 1);
    r = s_put(f, "centre-1", &s_centre, &(inc_t) { .status = ST(ACCEPTED), .base = 1 },
              t0 + HOUR);
    assert_accepted(r, 2);
    r = s_put(f, "centre-1", &s_centre,
              &(inc_t) { .status = ST(DISPATCHED), .base = 2, .department = "dept-fire",
                         .note = "请消防处置" }, t0 + 2 * HOUR);
    assert_accepted(r, 3);
    r = s_put(f, "fire-1", &s_fire,
              &(inc_t) { .status = ST(HANDLED), .base = 3, .department = "dept-fire",
                         .note = "已清理" }, t0 + 10 * HOUR);
    assert_accepted(r, 4);
    r = s_put(f, "dev-c", &s_collector,
              &(inc_t) { .status = ST(VERIFIED), .base = 4, .department = "dept-fire" },
              t0 + 11 * HOUR);
    assert_accepted(r, 5);
    r = s_put(f, "centre-1", &s_centre,
              &(inc_t) { .status = ST(CLOSED), .base = 5, .department = "dept-fire" },
              t0 + 12 * HOUR);
    assert_accepted(r, 6);

    uint64_t v;
    Gridsync__V1__Record *rec = s_get(f, &v);
    Gridsync__V1__Incident *in = rec->incident;
    assert_int_equal(v, 6);
    assert_int_equal(in->status, ST(CLOSED));
    assert_string_equal(in->department, "dept-fire");
    assert_int_equal(in->reported_at, t0);
    /* SERIOUS 安全隐患: 72 hours from acceptance; the department 48 hours */
    assert_int_equal(in->due_at, t0 + HOUR + 72 * HOUR);
    assert_int_equal(in->dispatch_due_at, t0 + 2 * HOUR + 48 * HOUR);
    assert_int_equal(in->closed_at, t0 + 12 * HOUR);
    assert_int_equal(in->n_history, 6);
    static const struct {
        int from, to, role;
        const char *by;
        int64_t at;
        const char *note, *dept;
    } want[6] = {
        { 0, ST(REPORTED), ROLE(DEVICE), "dev-c", 0, "发现隐患", "" },
        { ST(REPORTED), ST(ACCEPTED), ROLE(CENTRE), "centre-1", HOUR, "", "" },
        { ST(ACCEPTED), ST(DISPATCHED), ROLE(CENTRE), "centre-1", 2 * HOUR, "请消防处置",
          "dept-fire" },
        { ST(DISPATCHED), ST(HANDLED), ROLE(DEPARTMENT), "fire-1", 10 * HOUR, "已清理", "" },
        { ST(HANDLED), ST(VERIFIED), ROLE(DEVICE), "dev-c", 11 * HOUR, "", "" },
        { ST(VERIFIED), ST(CLOSED), ROLE(CENTRE), "centre-1", 12 * HOUR, "", "" },
    };
    for (size_t i = 0; i < 6; i++) {
        Gridsync__V1__IncidentTransition *t = in->history[i];
        assert_int_equal(t->from, want[i].from);
        assert_int_equal(t->to, want[i].to);
        assert_int_equal(t->role, want[i].role);
        assert_string_equal(t->by, want[i].by);
        assert_int_equal(t->at, t0 + want[i].at);
        assert_string_equal(t->note, want[i].note);
        assert_string_equal(t->department, want[i].dept);
    }
    gridsync__v1__record__free_unpacked(rec, NULL);
    assert_int_equal(s_cell_incidents(f), 1);
    st_verify_ok(f->st);
}

/* Steps the workflow does not have, or not for this principal. */
static void
test_refused_steps(void **state)
{
    fx_t *f = *state;
    int64_t t0 = ST_NOW_MS;
    /* a new incident starts as REPORTED, and only a collector or the
     * centre reports one */
    st_res_t r = s_put(f, "centre-1", &s_centre, &(inc_t) { .status = ST(ACCEPTED) }, t0);
    assert_refused(r, RN(TRANSITION), "starts as REPORTED");
    r = s_put(f, "fire-1", &s_fire, &(inc_t) { .status = ST(REPORTED) }, t0);
    assert_refused(r, RN(ROLE), "DEPARTMENT may not take the step report");
    r = s_put(f, "admin", &s_admin, &(inc_t) { .status = ST(REPORTED) }, t0);
    assert_refused(r, RN(ROLE), "ADMIN");
    gs_principal_t unknown = { 9, NULL, NULL, 0 };
    r = s_put(f, "x", &unknown, &(inc_t) { .status = ST(REPORTED) }, t0);
    assert_refused(r, RN(ROLE), "UNKNOWN");
    r = s_put(f, "dev-c", &s_collector, &(inc_t) { .status = ST(REPORTED) }, t0);
    assert_accepted(r, 1);
    /* a collector does not register, and nothing jumps to the end */
    r = s_put(f, "dev-c", &s_collector, &(inc_t) { .status = ST(ACCEPTED), .base = 1 }, t0);
    assert_refused(r, RN(ROLE), "CENTRE may");
    assert_int_equal(r.version, 1);
    r = s_put(f, "centre-1", &s_centre, &(inc_t) { .status = ST(CLOSED), .base = 1 }, t0);
    assert_refused(r, RN(TRANSITION), "no step from REPORTED to CLOSED");
    /* voiding is no way out */
    r = s_put(f, "centre-1", &s_centre,
              &(inc_t) { .status = ST(REPORTED), .base = 1, .void_ = 1 }, t0);
    assert_refused(r, RN(TRANSITION), "not voided");
    /* an edit before registration is a step; a stale base a conflict */
    r = s_put(f, "dev-c", &s_collector,
              &(inc_t) { .status = ST(REPORTED), .base = 1, .severity = 3 }, t0);
    assert_accepted(r, 2);
    r = s_put(f, "centre-1", &s_centre, &(inc_t) { .status = ST(ACCEPTED), .base = 1 }, t0);
    assert_int_equal(r.status, RS(CONFLICT));
    assert_int_equal(r.version, 2);
    r = s_put(f, "centre-1", &s_centre,
              &(inc_t) { .status = ST(ACCEPTED), .base = 2, .severity = 3 }, t0);
    assert_accepted(r, 3);
    r = s_put(f, "centre-1", &s_centre,
              &(inc_t) { .status = ST(DISPATCHED), .base = 3, .severity = 3,
                         .department = "dept-fire" }, t0);
    assert_accepted(r, 4);
    /* only the department it went to, and only in its categories */
    r = s_put(f, "city-1", &s_other,
              &(inc_t) { .status = ST(HANDLED), .base = 4, .severity = 3 }, t0);
    assert_refused(r, RN(ROLE), "dispatched to dept-fire");
    const char *const water[] = { "04" };
    gs_principal_t fire_water = { ROLE(DEPARTMENT), "dept-fire", water, 1 };
    r = s_put(f, "fire-2", &fire_water,
              &(inc_t) { .status = ST(HANDLED), .base = 4, .severity = 3 }, t0);
    assert_refused(r, RN(ROLE), "category 02 is not among");
    gs_principal_t fire_none = { ROLE(DEPARTMENT), "dept-fire", NULL, 0 };
    r = s_put(f, "fire-3", &fire_none,
              &(inc_t) { .status = ST(HANDLED), .base = 4, .severity = 3 }, t0);
    assert_refused(r, RN(ROLE), "category 02 is not among");
    /* a department does not change what the incident is */
    r = s_put(f, "fire-1", &s_fire,
              &(inc_t) { .status = ST(HANDLED), .base = 4, .severity = 1 }, t0);
    assert_refused(r, RN(ROLE), "only the centre changes");
    /* a collector cannot verify what is not handled yet */
    r = s_put(f, "dev-c", &s_collector,
              &(inc_t) { .status = ST(VERIFIED), .base = 4, .severity = 3 }, t0);
    assert_refused(r, RN(TRANSITION), "no step from DISPATCHED to VERIFIED");
    /* a re-dispatch names another department */
    r = s_put(f, "centre-1", &s_centre,
              &(inc_t) { .status = ST(DISPATCHED), .base = 4, .severity = 3,
                         .department = "dept-fire" }, t0);
    assert_refused(r, RN(TRANSITION), "another department");
    uint64_t v;
    Gridsync__V1__Record *rec = s_get(f, &v);
    assert_int_equal(v, 4);
    assert_int_equal(rec->incident->n_history, 4);
    gridsync__v1__record__free_unpacked(rec, NULL);
    st_verify_ok(f->st);
}

/* Re-dispatch, a department's return, a failed verification, a reopen:
 * the department changes only by a dispatch, the closure deadline is set
 * at registration and again at a reopen, never by a return. */
static void
test_redispatch_return_reopen(void **state)
{
    fx_t *f = *state;
    int64_t t0 = ST_NOW_MS;
    uint64_t v = 0;
    assert_accepted(s_put(f, "dev-c", &s_collector, &(inc_t) { .status = ST(REPORTED) }, t0), 1);
    assert_accepted(s_put(f, "c", &s_centre, &(inc_t) { .status = ST(ACCEPTED), .base = 1 },
                          t0), 2);
    assert_accepted(s_put(f, "c", &s_centre,
                          &(inc_t) { .status = ST(DISPATCHED), .base = 2,
                                     .department = "dept-city" }, t0 + HOUR), 3);
    /* the centre sends it elsewhere */
    assert_accepted(s_put(f, "c", &s_centre,
                          &(inc_t) { .status = ST(DISPATCHED), .base = 3,
                                     .department = "dept-fire" }, t0 + 2 * HOUR), 4);
    /* the department returns it; the upload's department is not kept */
    assert_accepted(s_put(f, "fire-1", &s_fire,
                          &(inc_t) { .status = ST(ACCEPTED), .base = 4,
                                     .department = "dept-x", .note = "非本部门职责" },
                          t0 + 3 * HOUR), 5);
    Gridsync__V1__Record *rec = s_get(f, &v);
    assert_string_equal(rec->incident->department, "dept-fire");
    assert_int_equal(rec->incident->due_at, t0 + 72 * HOUR);
    assert_string_equal(rec->incident->history[4]->note, "非本部门职责");
    gridsync__v1__record__free_unpacked(rec, NULL);
    assert_accepted(s_put(f, "c", &s_centre,
                          &(inc_t) { .status = ST(DISPATCHED), .base = 5,
                                     .department = "dept-fire" }, t0 + 4 * HOUR), 6);
    assert_accepted(s_put(f, "fire-1", &s_fire, &(inc_t) { .status = ST(HANDLED), .base = 6 },
                          t0 + 5 * HOUR), 7);
    /* verification fails: back to the same department only */
    st_res_t r = s_put(f, "dev-c", &s_collector,
                       &(inc_t) { .status = ST(DISPATCHED), .base = 7,
                                  .department = "dept-city" }, t0 + 6 * HOUR);
    assert_refused(r, RN(TRANSITION), "department that handled it (dept-fire)");
    assert_accepted(s_put(f, "dev-c", &s_collector,
                          &(inc_t) { .status = ST(DISPATCHED), .base = 7,
                                     .department = "dept-fire", .note = "仍有堆放" },
                          t0 + 6 * HOUR), 8);
    rec = s_get(f, &v);
    assert_int_equal(rec->incident->dispatch_due_at, t0 + 6 * HOUR + 48 * HOUR);
    gridsync__v1__record__free_unpacked(rec, NULL);
    assert_accepted(s_put(f, "fire-1", &s_fire, &(inc_t) { .status = ST(HANDLED), .base = 8 },
                          t0 + 7 * HOUR), 9);
    assert_accepted(s_put(f, "dev-c", &s_collector,
                          &(inc_t) { .status = ST(VERIFIED), .base = 9 }, t0 + 8 * HOUR), 10);
    assert_accepted(s_put(f, "c", &s_centre, &(inc_t) { .status = ST(CLOSED), .base = 10 },
                          t0 + 9 * HOUR), 11);
    /* reopened: open again, a new closure deadline */
    assert_accepted(s_put(f, "c", &s_centre, &(inc_t) { .status = ST(ACCEPTED), .base = 11 },
                          t0 + 100 * HOUR), 12);
    rec = s_get(f, &v);
    assert_int_equal(rec->incident->closed_at, 0);
    assert_int_equal(rec->incident->due_at, t0 + 100 * HOUR + 72 * HOUR);
    assert_int_equal(rec->incident->n_history, 12);
    gridsync__v1__record__free_unpacked(rec, NULL);

    /* a rejected report can be reopened by the centre */
    inc_t e2 = { .status = ST(REPORTED) };
    Gridsync__V1__Record *r2 = s_build(f->a, &e2);
    r2->incident->incident_id = "E2";
    gs_upload_t up = { "dev-c", "e2-1", &r2, 1, gs_arena_allocator(f->a), NULL, 0, NULL, 1 };
    gs_apply_out_t out;
    assert_int_equal(gs_store_apply(f->st, &up, 1, t0, &out), 0);  /* a DEVICE */
    Gridsync__V1__Ack *ack = st_ack(&out, 0);
    assert_int_equal(ack->results[0]->status, RS(ACCEPTED));
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_apply_out_clear(&out);
    assert_int_equal(s_cell_incidents(f), 2);
    st_verify_ok(f->st);
}

/* The history is the store's: a forged entry is replaced, and a
 * retransmission of the same upload is answered, not applied again. */
static void
test_history_is_the_stores(void **state)
{
    fx_t *f = *state;
    Gridsync__V1__Record *rec = s_build(f->a, &(inc_t) { .status = ST(REPORTED), .note = "n" });
    gs_upload_t up = { "dev-c", "same", &rec, 1, gs_arena_allocator(f->a), NULL, 0, NULL, 1 };
    gs_apply_out_t out;
    assert_int_equal(gs_store_apply_as(f->st, &up, &s_collector, 1, ST_NOW_MS, &out), 0);
    assert_int_equal(out.n_events, 1);
    gs_apply_out_clear(&out);
    assert_int_equal(gs_store_apply_as(f->st, &up, &s_collector, 1, ST_NOW_MS + 5, &out), 0);
    assert_int_equal(out.n_events, 0);
    assert_int_equal(out.uploads[0].replayed, 1);
    gs_apply_out_clear(&out);
    uint64_t v;
    Gridsync__V1__Record *got = s_get(f, &v);
    assert_int_equal(v, 1);
    assert_int_equal(got->incident->n_history, 1);
    assert_string_equal(got->incident->history[0]->by, "dev-c");
    assert_int_equal(got->incident->history[0]->at, ST_NOW_MS);
    assert_string_equal(got->incident->history[0]->note, "n");
    /* the stored record uploaded again as it is: unchanged */
    got->incident->meta->base_version = 1;
    Gridsync__V1__Record *again = got;
    gs_upload_t up2 = { "dev-c", "again", &again, 1, NULL, NULL, 0, NULL, 1 };
    assert_int_equal(gs_store_apply_as(f->st, &up2, &s_collector, 1, ST_NOW_MS + 9, &out), 0);
    Gridsync__V1__Ack *ack = st_ack(&out, 0);
    assert_int_equal(ack->results[0]->status, RS(UNCHANGED));
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_apply_out_clear(&out);
    gridsync__v1__record__free_unpacked(got, NULL);
}

/* ---- The store's category table ------------------------------------------------------ */

/* Set the table from its text form; returns gs_store_incident_table_put's
 * code. */
static int
s_table_set(fx_t *f, const char *text, int dry_run)
{
    gs_incident_table_t t;
    gs_verdict_t v;
    size_t line;
    if (gs_incident_table_parse(text, strlen(text), &t, &line, &v))
        fail_msg("table line %zu: %s", line, v.message);
    return gs_store_incident_table_put(f->st, &t, dry_run);
}

/* The built-in table with 07 噪音扰民 added (closure 96/48/24/12 hours,
 * handling 10/8/6/2) and 03 治安 as given by state03. */
static void
s_table_07(fx_t *f, const char *state03)
{
    char text[2048];
    snprintf(text, sizeof text,
             "01\t矛盾纠纷\t240\t120\t72\t24\t72\t48\t24\t4\tactive\n"
             "02\t安全隐患\t168\t72\t24\t4\t72\t48\t24\t4\tactive\n"
             "03\t治安\t120\t48\t24\t2\t72\t48\t24\t4\t%s\n"
             "04\t环境卫生\t120\t72\t48\t24\t72\t48\t24\t4\tactive\n"
             "07\t噪音扰民\t96\t48\t24\t12\t10\t8\t6\t2\tactive\n"
             "99\t其他\t240\t120\t72\t24\t72\t48\t24\t4\tactive\n", state03);
    assert_int_equal(s_table_set(f, text, 0), 0);
}

/* A store without a table set uses the built-in one and refuses a code it
 * does not hold; once set, the table decides which categories an upload
 * may have and, by category and severity, the deadlines the store sets by
 * its own clock (not the device's collected_at). */
static void
test_table_categories_and_deadlines(void **state)
{
    fx_t *f = *state;
    gs_incident_table_t t;
    int configured = 1;
    assert_int_equal(gs_store_incident_table(f->st, &t, &configured), 0);
    assert_int_equal(configured, 0);
    assert_memory_equal(&t, gs_incident_table_default(), sizeof t);

    int64_t t0 = ST_NOW_MS + 5 * HOUR;  /* the broker's clock, ahead of collected_at */
    st_res_t r = s_put(f, "dev-c", &s_collector,
                       &(inc_t) { .id = "E7", .status = ST(REPORTED), .category = "07" }, t0);
    assert_refused(r, RN(CATEGORY),
                   "category 07 is not in this store's category table (01 02 03 04 05 06 99)");

    s_table_07(f, "active");
    assert_int_equal(gs_store_incident_table(f->st, &t, &configured), 0);
    assert_int_equal(configured, 1);
    assert_int_equal(t.n, 6);
    assert_string_equal(gs_incident_table_find(&t, "07")->name, "噪音扰民");
    r = s_put(f, "dev-c", &s_collector,
              &(inc_t) { .id = "E7", .status = ST(REPORTED), .category = "07" }, t0);
    assert_accepted(r, 1);
    /* 05 and 06 are not in the table any more (nothing used them) */
    r = s_put(f, "dev-c", &s_collector,
              &(inc_t) { .id = "E5", .status = ST(REPORTED), .category = "05" }, t0);
    assert_refused(r, RN(CATEGORY), "(01 02 03 04 07 99)");

    /* 07 SERIOUS: 48 hours to closure, 8 to handle; URGENT: 12 and 2 */
    static const struct {
        const char *id;
        int severity;
        int64_t close_h, handle_h;
    } want[] = {
        { "E7", GRIDSYNC__V1__INCIDENT_SEVERITY__INCIDENT_SEVERITY_SERIOUS, 48, 8 },
        { "E8", GRIDSYNC__V1__INCIDENT_SEVERITY__INCIDENT_SEVERITY_URGENT, 12, 2 },
        { "E9", GRIDSYNC__V1__INCIDENT_SEVERITY__INCIDENT_SEVERITY_GENERAL, 96, 10 },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        inc_t s = { .id = want[i].id, .category = "07", .severity = want[i].severity };
        uint64_t base = 0;
        if (i) {
            s.status = ST(REPORTED);
            assert_accepted(s_put(f, "dev-c", &s_collector, &s, t0), 1);
        }
        base = 1;
        s.status = ST(ACCEPTED);
        s.base = base;
        assert_accepted(s_put(f, "centre-1", &s_centre, &s, t0 + HOUR), 2);
        s.status = ST(DISPATCHED);
        s.base = 2;
        s.department = "dept-env";
        assert_accepted(s_put(f, "centre-1", &s_centre, &s, t0 + 3 * HOUR), 3);
        uint64_t v;
        Gridsync__V1__Record *rec = s_get_id(f, want[i].id, &v);
        assert_int_equal(rec->incident->due_at, t0 + HOUR + want[i].close_h * HOUR);
        assert_int_equal(rec->incident->dispatch_due_at,
                         t0 + 3 * HOUR + want[i].handle_h * HOUR);
        gridsync__v1__record__free_unpacked(rec, NULL);
    }
    st_verify_ok(f->st);

    /* the table lives in the store: it is there after a reopen */
    gs_store_destroy(&f->st);
    f->st = st_open(f->dir, NULL);
    assert_int_equal(gs_store_incident_table(f->st, &t, &configured), 0);
    assert_int_equal(configured, 1);
    assert_non_null(gs_incident_table_find(&t, "07"));
    assert_null(gs_incident_table_find(&t, "05"));
}

/* A changed table applies to the next step; deadlines already set stay. */
static void
test_table_change_keeps_deadlines(void **state)
{
    fx_t *f = *state;
    int64_t t0 = ST_NOW_MS;
    assert_accepted(s_put(f, "dev-c", &s_collector, &(inc_t) { .status = ST(REPORTED) }, t0),
                    1);
    assert_accepted(s_put(f, "centre-1", &s_centre,
                          &(inc_t) { .status = ST(ACCEPTED), .base = 1 }, t0 + HOUR), 2);
    /* 02 SERIOUS now 10 hours to closure and 5 to handle */
    assert_int_equal(s_table_set(f, "02\t安全隐患\t20\t10\t5\t1\t9\t5\t3\t1\tactive\n"
                                    "99\t其他\t240\t120\t72\t24\t72\t48\t24\t4\tactive\n", 0),
                     0);
    uint64_t v;
    Gridsync__V1__Record *rec = s_get(f, &v);
    assert_int_equal(rec->incident->due_at, t0 + HOUR + 72 * HOUR);   /* as set before */
    gridsync__v1__record__free_unpacked(rec, NULL);
    assert_accepted(s_put(f, "centre-1", &s_centre,
                          &(inc_t) { .status = ST(DISPATCHED), .base = 2,
                                     .department = "dept-fire" }, t0 + 2 * HOUR), 3);
    rec = s_get(f, &v);
    assert_int_equal(rec->incident->due_at, t0 + HOUR + 72 * HOUR);
    assert_int_equal(rec->incident->dispatch_due_at, t0 + 2 * HOUR + 5 * HOUR);
    gridsync__v1__record__free_unpacked(rec, NULL);
    /* a new report is accepted with the new closure deadline */
    assert_accepted(s_put(f, "dev-c", &s_collector,
                          &(inc_t) { .id = "E2", .status = ST(REPORTED) }, t0), 1);
    assert_accepted(s_put(f, "centre-1", &s_centre,
                          &(inc_t) { .id = "E2", .status = ST(ACCEPTED), .base = 1 },
                          t0 + 4 * HOUR), 2);
    rec = s_get_id(f, "E2", &v);
    assert_int_equal(rec->incident->due_at, t0 + 4 * HOUR + 10 * HOUR);
    gridsync__v1__record__free_unpacked(rec, NULL);
}

/* A code in use cannot be dropped (stored incidents, registry entries);
 * marked retired it takes no new incidents while its own go on. */
static void
test_table_retire_not_remove(void **state)
{
    fx_t *f = *state;
    int64_t t0 = ST_NOW_MS;
    assert_accepted(s_put(f, "dev-c", &s_collector,
                          &(inc_t) { .id = "E3", .status = ST(REPORTED), .category = "03" },
                          t0), 1);
    /* a department entry names 04 */
    Gridsync__V1__Device d = GRIDSYNC__V1__DEVICE__INIT;
    char *pfx[] = { "440305" };
    char *cats[] = { "04" };
    d.device_id = "env-1";
    d.role = ROLE(DEPARTMENT);
    d.department = "dept-env";
    d.prefixes = pfx;
    d.n_prefixes = 1;
    d.categories = cats;
    d.n_categories = 1;
    assert_int_equal(gs_store_device_put(f->st, &d), 0);
    /* a department entry's categories must be in the table */
    cats[0] = "07";
    d.device_id = "noise-1";
    assert_int_equal(gs_store_device_put(f->st, &d), GS_EINVAL);
    assert_non_null(strstr(gs_store_errdetail(), "category 07 is not in this store's"));

    const char *without03 = "01\t矛盾纠纷\t240\t120\t72\t24\t72\t48\t24\t4\tactive\n"
                            "02\t安全隐患\t168\t72\t24\t4\t72\t48\t24\t4\tactive\n"
                            "04\t环境卫生\t120\t72\t48\t24\t72\t48\t24\t4\tactive\n";
    for (int dry = 0; dry < 2; dry++) {
        assert_int_equal(s_table_set(f, without03, dry), GS_EINVAL);
        if (!strstr(gs_store_errdetail(), "category 03 is used by 1 stored incident: keep its "
                                          "line and mark it retired"))
            fail_msg("detail: %s", gs_store_errdetail());
    }
    const char *without04 = "01\t矛盾纠纷\t240\t120\t72\t24\t72\t48\t24\t4\tactive\n"
                            "03\t治安\t120\t48\t24\t2\t72\t48\t24\t4\tactive\n";
    assert_int_equal(s_table_set(f, without04, 1), GS_EINVAL);
    assert_non_null(strstr(gs_store_errdetail(),
                           "category 04 is used by 1 device registry entry (env-1)"));
    gs_incident_table_t t;
    int configured;
    assert_int_equal(gs_store_incident_table(f->st, &t, &configured), 0);
    assert_int_equal(configured, 0);    /* nothing was written */

    /* 03 retired (05 and 06 dropped: unused) */
    cats[0] = "04";
    s_table_07(f, "retired");
    st_res_t r = s_put(f, "dev-c", &s_collector,
                       &(inc_t) { .id = "E4", .status = ST(REPORTED), .category = "03" }, t0);
    assert_refused(r, RN(CATEGORY), "category 03 (治安) is retired: it takes no new incidents");
    /* E3 goes on, with the retired row's deadline (SERIOUS 48 hours) */
    assert_accepted(s_put(f, "centre-1", &s_centre,
                          &(inc_t) { .id = "E3", .status = ST(ACCEPTED), .base = 1,
                                     .category = "03" }, t0 + HOUR), 2);
    uint64_t v;
    Gridsync__V1__Record *rec = s_get_id(f, "E3", &v);
    assert_int_equal(rec->incident->due_at, t0 + HOUR + 48 * HOUR);
    gridsync__v1__record__free_unpacked(rec, NULL);
    /* but no incident moves into it */
    assert_accepted(s_put(f, "dev-c", &s_collector,
                          &(inc_t) { .id = "E5", .status = ST(REPORTED) }, t0), 1);
    r = s_put(f, "centre-1", &s_centre,
              &(inc_t) { .id = "E5", .status = ST(ACCEPTED), .base = 1, .category = "03" }, t0);
    assert_refused(r, RN(CATEGORY), "is retired");
    /* a department may still be bound to it (its open incidents need one) */
    cats[0] = "03";
    d.device_id = "police-1";
    assert_int_equal(gs_store_device_put(f->st, &d), 0);
    st_verify_ok(f->st);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_whole_workflow, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refused_steps, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_redispatch_return_reopen, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_history_is_the_stores, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_table_categories_and_deadlines, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_table_change_keeps_deadlines, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_table_retire_not_remove, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_gen_incident: the generated incidents and their plans
 * (tools/gen/gs_gen_incident): every report valid, hazards of rental
 * inspections reported as 安全隐患 related to their unit, each plan a path
 * of the transition table taken by the right roles and departments, the
 * same incident for the same index; and every plan played through a real
 * store by its principals at the plan's times, ending as the plan says
 * (closed in time, late, rejected, re-dispatched, overdue).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gs_gen.h"
#include "gs_gen_incident.h"
#include "gs_incident.h"
#include "st_lib.h"

#define ST(name) GRIDSYNC__V1__INCIDENT_STATUS__INCIDENT_STATUS_##name
#define ROLE(name) GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_##name

static gs_gen_t *
s_gen(void)
{
    gs_gen_opts_t o;
    gs_gen_opts_init(&o);
    o.streets = 2;
    o.grids = 40;
    o.households = 800;
    o.rental_buildings = 120;
    o.organisations = 40;
    gs_gen_t *g = gs_gen_new(&o);
    assert_non_null(g);
    return g;
}

static int64_t
s_now(void)
{
    gs_gen_opts_t o;
    gs_gen_opts_init(&o);
    return o.now_ms;
}

/* Reports valid, plans legal, hazards related, outcomes all present. */
static void
test_reports_and_plans(void **state)
{
    (void) state;
    gs_gen_t *g = s_gen();
    gs_arena_t *a = gs_arena_new(0), *b = gs_arena_new(0);
    size_t outcomes[5] = { 0 }, hazards = 0, total = 0;
    for (uint32_t grid = 0; grid < gs_gen_grid_count(g); grid++) {
        gs_arena_reset(a);
        uint32_t n = gs_gen_grid_incident_count(g, grid, a);
        assert_true(n >= 1);
        for (uint32_t k = 0; k < n; k++) {
            gs_arena_reset(a);
            gs_gen_incident_t inc;
            assert_int_equal(gs_gen_incident(g, grid, k, s_now(), a, &inc), 0);
            Gridsync__V1__Incident *in = inc.report->incident;
            gs_verdict_t v;
            if (gs_record_check(inc.report, gs_arena_allocator(a), NULL, s_now(), &v))
                fail_msg("%s: %s", in->incident_id, v.message);
            assert_string_equal(in->grid_code, gs_gen_grid_code(g, grid));
            if (in->n_related) {
                hazards++;
                assert_string_equal(in->category, "02");
                assert_int_equal(in->related[0]->kind,
                                 GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_RENTAL);
                assert_true(strncmp(in->related[0]->record_key, "R", 1) == 0);
            }
            /* a path of the table, each step by its role */
            int from = ST(REPORTED);
            const char *dispatched = NULL;
            for (size_t i = 0; i < inc.n_steps; i++) {
                const gs_gen_inc_step_t *s = &inc.steps[i];
                if (gs_incident_step_check(from, s->status, s->role, NULL, &v))
                    fail_msg("%s step %zu: %s", in->incident_id, i, v.message);
                if (s->status == ST(DISPATCHED))
                    dispatched = s->department;
                if (s->role == ROLE(DEPARTMENT))
                    assert_string_equal(s->department, dispatched);
                if (i)
                    assert_true(s->after_ms >= inc.steps[i - 1].after_ms);
                from = s->status;
            }
            outcomes[inc.outcome]++;
            total++;
            /* the same index, the same incident */
            gs_arena_reset(b);
            gs_gen_incident_t again;
            assert_int_equal(gs_gen_incident(g, grid, k, s_now(), b, &again), 0);
            assert_string_equal(again.report->incident->incident_id, in->incident_id);
            assert_string_equal(again.report->incident->description, in->description);
            assert_int_equal(again.outcome, inc.outcome);
            assert_int_equal(again.n_steps, inc.n_steps);
        }
        gs_arena_reset(a);
        gs_gen_incident_t past;
        assert_int_equal(gs_gen_incident(g, grid, n, s_now(), a, &past), -1);
    }
    assert_true(hazards > 0);
    for (int o = 0; o < 5; o++)
        if (!outcomes[o])
            fail_msg("no incident with outcome %d among %zu", o, total);
    assert_true(outcomes[GS_GEN_INC_ON_TIME] > total / 2);
    assert_string_equal(gs_gen_inc_department("02"), "dept-fire");
    assert_null(gs_gen_inc_department("77"));
    gs_arena_destroy(&a);
    gs_arena_destroy(&b);
    gs_gen_destroy(&g);
}

/* Apply one version of the incident as principal who at now. */
static void
s_apply(gs_store_t *st, gs_arena_t *a, Gridsync__V1__Record *rec, const char *by,
        const gs_principal_t *who, int64_t now)
{
    static unsigned n;
    char uid[32];
    snprintf(uid, sizeof uid, "g-%u", ++n);
    gs_upload_t up = { by, uid, &rec, 1, gs_arena_allocator(a), NULL, 0, NULL, 1 };
    gs_apply_out_t out;
    assert_int_equal(gs_store_apply_as(st, &up, who, 1, now, &out), 0);
    Gridsync__V1__Ack *ack = st_ack(&out, 0);
    if (ack->results[0]->status != GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED)
        fail_msg("%s by %s: %s", rec->incident->incident_id, by, ack->results[0]->message);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_apply_out_clear(&out);
}

/* Every plan played through the store ends as it says. */
static void
test_plans_played_through_the_store(void **state)
{
    (void) state;
    gs_gen_t *g = s_gen();
    char *dir = st_tmpdir();
    gs_store_t *st = st_open(dir, NULL);
    gs_arena_t *a = gs_arena_new(0);
    const int64_t t0 = s_now();
    size_t played = 0;
    for (uint32_t grid = 0; grid < gs_gen_grid_count(g); grid += 3) {
        gs_arena_reset(a);
        uint32_t n = gs_gen_grid_incident_count(g, grid, a);
        for (uint32_t k = 0; k < n; k++) {
            gs_arena_reset(a);
            gs_gen_incident_t inc;
            assert_int_equal(gs_gen_incident(g, grid, k, t0, a, &inc), 0);
            Gridsync__V1__Record *rec = inc.report;
            Gridsync__V1__Incident *in = rec->incident;
            const char *cats[1] = { in->category };
            gs_principal_t collector = { ROLE(DEVICE), NULL, NULL, 0 };
            s_apply(st, a, rec, in->meta->device_id, &collector, t0);
            for (size_t i = 0; i < inc.n_steps; i++) {
                const gs_gen_inc_step_t *s = &inc.steps[i];
                gs_principal_t who = { s->role, NULL, NULL, 0 };
                const char *by = s->role == ROLE(DEVICE) ? in->meta->device_id : "centre-1";
                char dept_key[40];
                if (s->role == ROLE(DEPARTMENT)) {
                    who.department = s->department;
                    who.categories = cats;
                    who.n_categories = 1;
                    snprintf(dept_key, sizeof dept_key, "key-%s", s->department);
                    by = dept_key;
                }
                in->status = (Gridsync__V1__IncidentStatus) s->status;
                in->department = (char *) (s->department ? s->department : "");
                in->meta->base_version = i + 1;
                s_apply(st, a, rec, by, &who, t0 + s->after_ms);
            }
            uint64_t v;
            char gridc[16];
            Gridsync__V1__Record *got = st_get(st, GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT,
                                               in->incident_id, &v, gridc);
            assert_non_null(got);
            const Gridsync__V1__Incident *gi = got->incident;
            assert_int_equal(gi->n_history, inc.n_steps + 1);
            int64_t later = t0 + 400 * GS_INCIDENT_HOUR_MS;
            switch (inc.outcome) {
            case GS_GEN_INC_ON_TIME:
            case GS_GEN_INC_REDISPATCHED:
                assert_true(gs_incident_on_time(gi));
                break;
            case GS_GEN_INC_LATE:
                assert_int_equal(gi->status, ST(CLOSED));
                assert_false(gs_incident_on_time(gi));
                break;
            case GS_GEN_INC_REJECTED:
                assert_int_equal(gi->status, ST(REJECTED));
                assert_false(gs_incident_overdue(gi, later));
                break;
            case GS_GEN_INC_OVERDUE:
                assert_int_equal(gi->status, ST(DISPATCHED));
                assert_false(gs_incident_overdue(gi, t0 + GS_INCIDENT_HOUR_MS));
                assert_true(gs_incident_overdue(gi, later));
                break;
            }
            gridsync__v1__record__free_unpacked(got, NULL);
            played++;
        }
    }
    assert_true(played > 10);
    st_verify_ok(st);
    gs_store_destroy(&st);
    gs_arena_destroy(&a);
    st_rmdir(dir);
    free(dir);
    gs_gen_destroy(&g);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reports_and_plans),
        cmocka_unit_test(test_plans_played_through_the_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_authz: the broker's authorisation rule (gs_authz_check) as a pure
 * function of a registry entry and a prefix: every role, every status,
 * entries without prefixes, and the prefix boundaries; what a key reads
 * (gs_authz_record) and which live-feed topics it may follow
 * (gs_authz_topic): a department only the incident topics of its
 * categories inside its prefixes, every other role grid topics and the
 * incident topics of every category in the table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "gs_authz.h"

#define S_DEVICE GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE
#define S_DISTRICT GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT
#define S_ADMIN GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN
#define S_DEPARTMENT GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEPARTMENT
#define S_CENTRE GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_CENTRE
#define S_ACTIVE GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_ACTIVE
#define S_REVOKED GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_REVOKED

/* A registry entry with role, status and the n prefixes in p. */
static Gridsync__V1__Device
s_entry(int role, int status, char **p, size_t n)
{
    Gridsync__V1__Device d = GRIDSYNC__V1__DEVICE__INIT;
    d.device_id = "dev-1";
    d.role = (Gridsync__V1__PrincipalRole) role;
    d.status = (Gridsync__V1__DeviceStatus) status;
    d.prefixes = p;
    d.n_prefixes = n;
    return d;
}

/* Some prefixes of every length a caller may ask about, NULL included. */
static const char *s_asks[] = { NULL, "", "44", "4401", "440101", "440101001",
                                "440101001002", "440101001002003", "450101001002003" };
#define S_N_ASKS (sizeof s_asks / sizeof s_asks[0])

static void
test_no_entry_may_do_nothing(void **state)
{
    (void) state;
    for (size_t i = 0; i < S_N_ASKS; i++)
        assert_int_equal(gs_authz_check(NULL, s_asks[i]), GS_AUTHZ_NOT_ENROLLED);
}

static void
test_revoked_may_do_nothing_whatever_its_role(void **state)
{
    (void) state;
    char *p[] = { "" };
    int roles[] = { S_DEVICE, S_DISTRICT, S_ADMIN, 7 };
    for (size_t r = 0; r < 4; r++) {
        Gridsync__V1__Device d = s_entry(roles[r], S_REVOKED, p, 1);
        Gridsync__V1__Device none = s_entry(roles[r], S_REVOKED, NULL, 0);
        /* a status this broker does not know is no better than revoked */
        Gridsync__V1__Device odd = s_entry(roles[r], 9, p, 1);
        for (size_t i = 0; i < S_N_ASKS; i++) {
            assert_int_equal(gs_authz_check(&d, s_asks[i]), GS_AUTHZ_REVOKED);
            assert_int_equal(gs_authz_check(&none, s_asks[i]), GS_AUTHZ_REVOKED);
            assert_int_equal(gs_authz_check(&odd, s_asks[i]), GS_AUTHZ_REVOKED);
        }
    }
}

static void
test_unknown_role_may_do_nothing(void **state)
{
    (void) state;
    char *p[] = { "", "4401" };
    int roles[] = { 5, 7, -1, 1000 };
    for (size_t r = 0; r < 4; r++) {
        Gridsync__V1__Device d = s_entry(roles[r], S_ACTIVE, p, 2);
        Gridsync__V1__Device none = s_entry(roles[r], S_ACTIVE, NULL, 0);
        for (size_t i = 0; i < S_N_ASKS; i++) {
            assert_int_equal(gs_authz_check(&d, s_asks[i]), GS_AUTHZ_UNKNOWN_ROLE);
            assert_int_equal(gs_authz_check(&none, s_asks[i]), GS_AUTHZ_UNKNOWN_ROLE);
        }
    }
}

static void
test_admin_may_touch_everything(void **state)
{
    (void) state;
    char *p[] = { "4401" };
    Gridsync__V1__Device none = s_entry(S_ADMIN, S_ACTIVE, NULL, 0);
    /* its prefixes, if an entry lists any, narrow nothing: the role decides */
    Gridsync__V1__Device some = s_entry(S_ADMIN, S_ACTIVE, p, 1);
    for (size_t i = 0; i < S_N_ASKS; i++) {
        assert_int_equal(gs_authz_check(&none, s_asks[i]), GS_AUTHZ_ALLOWED);
        assert_int_equal(gs_authz_check(&some, s_asks[i]), GS_AUTHZ_ALLOWED);
    }
}

static void
test_without_prefixes_device_and_district_may_do_nothing(void **state)
{
    (void) state;
    int roles[] = { S_DEVICE, S_DISTRICT, S_DEPARTMENT, S_CENTRE };
    for (size_t r = 0; r < 4; r++) {
        Gridsync__V1__Device d = s_entry(roles[r], S_ACTIVE, NULL, 0);
        for (size_t i = 0; i < S_N_ASKS; i++)
            assert_int_equal(gs_authz_check(&d, s_asks[i]), GS_AUTHZ_NO_SCOPE);
    }
}

static void
test_prefix_boundaries(void **state)
{
    (void) state;
    char *p[] = { "440101", "45" };
    int roles[] = { S_DEVICE, S_DISTRICT, S_DEPARTMENT, S_CENTRE };
    for (size_t r = 0; r < 4; r++) {
        Gridsync__V1__Device d = s_entry(roles[r], S_ACTIVE, p, 2);
        /* the key itself: it may touch something */
        assert_int_equal(gs_authz_check(&d, NULL), GS_AUTHZ_ALLOWED);
        /* at or below an assigned prefix, the first or a later one */
        assert_int_equal(gs_authz_check(&d, "440101"), GS_AUTHZ_ALLOWED);
        assert_int_equal(gs_authz_check(&d, "440101001"), GS_AUTHZ_ALLOWED);
        assert_int_equal(gs_authz_check(&d, "440101001002003"), GS_AUTHZ_ALLOWED);
        assert_int_equal(gs_authz_check(&d, "45"), GS_AUTHZ_ALLOWED);
        assert_int_equal(gs_authz_check(&d, "450101001002003"), GS_AUTHZ_ALLOWED);
        /* above one, beside one, or a digit short of one */
        assert_int_equal(gs_authz_check(&d, ""), GS_AUTHZ_OUTSIDE);
        assert_int_equal(gs_authz_check(&d, "44"), GS_AUTHZ_OUTSIDE);
        assert_int_equal(gs_authz_check(&d, "4401"), GS_AUTHZ_OUTSIDE);
        assert_int_equal(gs_authz_check(&d, "44010"), GS_AUTHZ_OUTSIDE);
        assert_int_equal(gs_authz_check(&d, "440102"), GS_AUTHZ_OUTSIDE);
        assert_int_equal(gs_authz_check(&d, "440102001002003"), GS_AUTHZ_OUTSIDE);
        assert_int_equal(gs_authz_check(&d, "4"), GS_AUTHZ_OUTSIDE);
        assert_int_equal(gs_authz_check(&d, "46"), GS_AUTHZ_OUTSIDE);
    }
}

/* An assigned "" is the level that holds every grid: an administrator
 * wrote it explicitly (the registry accepts it as a prefix), so it covers
 * everything, as any assigned prefix covers what lies below it. */
static void
test_assigned_empty_prefix_covers_everything(void **state)
{
    (void) state;
    char *p[] = { "" };
    Gridsync__V1__Device d = s_entry(S_DISTRICT, S_ACTIVE, p, 1);
    for (size_t i = 0; i < S_N_ASKS; i++)
        assert_int_equal(gs_authz_check(&d, s_asks[i]), GS_AUTHZ_ALLOWED);
}

/* What a key reads inside its prefixes: a department the incidents of its
 * categories and nothing else; every other role every record. */
static void
test_record_kinds_and_categories(void **state)
{
    (void) state;
    char *p[] = { "440101" };
    char *cats[] = { "02", "03" };
    const int I = GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT;
    const int H = GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD;
    Gridsync__V1__Device dep = s_entry(S_DEPARTMENT, S_ACTIVE, p, 1);
    dep.categories = cats;
    dep.n_categories = 2;
    assert_true(gs_authz_record(&dep, I, "02"));
    assert_true(gs_authz_record(&dep, I, "03"));
    assert_false(gs_authz_record(&dep, I, "04"));
    assert_false(gs_authz_record(&dep, I, NULL));
    for (int k = 0; k <= 5; k++)
        if (k != I)
            assert_false(gs_authz_record(&dep, k, "02"));
    dep.n_categories = 0;   /* none: nothing */
    assert_false(gs_authz_record(&dep, I, "02"));
    int roles[] = { S_DEVICE, S_DISTRICT, S_ADMIN, S_CENTRE };
    for (size_t r = 0; r < 4; r++) {
        Gridsync__V1__Device d = s_entry(roles[r], S_ACTIVE, p, 1);
        assert_true(gs_authz_record(&d, H, NULL));
        assert_true(gs_authz_record(&d, I, "04"));
    }
    assert_false(gs_authz_record(NULL, H, NULL));
}

/* Which topics a key may follow: the verdict of gs_authz_topic for the
 * topic text t. */
static gs_authz_t
s_topic(const Gridsync__V1__Device *d, const char *t)
{
    gs_topic_t topic;
    assert_int_equal(gs_topic_parse(t, strlen(t), &topic), 0);
    return gs_authz_topic(d, &topic, gs_incident_table_default());
}

static void
test_topics(void **state)
{
    (void) state;
    char *p[] = { "440101" };
    char *cats[] = { "02", "03" };
    Gridsync__V1__Device dep = s_entry(S_DEPARTMENT, S_ACTIVE, p, 1);
    dep.categories = cats;
    dep.n_categories = 2;
    assert_int_equal(s_topic(&dep, "I02/440101"), GS_AUTHZ_ALLOWED);
    assert_int_equal(s_topic(&dep, "I03/440101001"), GS_AUTHZ_ALLOWED);
    assert_int_equal(s_topic(&dep, "440101"), GS_AUTHZ_GRID_TOPIC);
    assert_int_equal(s_topic(&dep, "440101001"), GS_AUTHZ_GRID_TOPIC);
    assert_int_equal(s_topic(&dep, "I04/440101"), GS_AUTHZ_CATEGORY);
    assert_int_equal(s_topic(&dep, "I77/440101"), GS_AUTHZ_CATEGORY); /* not in the table */
    assert_int_equal(s_topic(&dep, "I02/4401"), GS_AUTHZ_OUTSIDE);
    assert_int_equal(s_topic(&dep, "I02/440102"), GS_AUTHZ_OUTSIDE);
    assert_int_equal(s_topic(&dep, "I02/"), GS_AUTHZ_OUTSIDE);
    dep.n_categories = 0;   /* none: no topic at all */
    assert_int_equal(s_topic(&dep, "I02/440101"), GS_AUTHZ_CATEGORY);
    dep.status = S_REVOKED;
    assert_int_equal(s_topic(&dep, "I02/440101"), GS_AUTHZ_REVOKED);
    int roles[] = { S_DEVICE, S_DISTRICT, S_CENTRE };
    for (size_t r = 0; r < 3; r++) {
        Gridsync__V1__Device d = s_entry(roles[r], S_ACTIVE, p, 1);
        assert_int_equal(s_topic(&d, "440101001"), GS_AUTHZ_ALLOWED);
        assert_int_equal(s_topic(&d, "I04/440101001"), GS_AUTHZ_ALLOWED);
        assert_int_equal(s_topic(&d, "I77/440101001"), GS_AUTHZ_CATEGORY);
        assert_int_equal(s_topic(&d, "I04/440102"), GS_AUTHZ_OUTSIDE);
        assert_int_equal(s_topic(&d, "4401"), GS_AUTHZ_OUTSIDE);
        Gridsync__V1__Device none = s_entry(roles[r], S_ACTIVE, NULL, 0);
        assert_int_equal(s_topic(&none, "I04/440101001"), GS_AUTHZ_NO_SCOPE);
    }
    Gridsync__V1__Device admin = s_entry(S_ADMIN, S_ACTIVE, NULL, 0);
    assert_int_equal(s_topic(&admin, ""), GS_AUTHZ_ALLOWED);
    assert_int_equal(s_topic(&admin, "I99/"), GS_AUTHZ_ALLOWED);
    assert_int_equal(s_topic(&admin, "I77/"), GS_AUTHZ_CATEGORY);
    assert_int_equal(s_topic(NULL, "I02/440101"), GS_AUTHZ_NOT_ENROLLED);
}

/* The category an incident topic names is looked up in the table the store
 * holds, not the built-in one: a category an operator added can be
 * followed, one the operator's table lacks cannot, even if built in. */
static void
test_topics_use_the_stores_table(void **state)
{
    (void) state;
    static const char text[] = "02\t安全隐患\t168\t72\t24\t4\t72\t48\t24\t4\tactive\n"
                               "77\t噪音扰民\t96\t48\t30\t12\t10\t8\t6\t2\tactive\n";
    gs_incident_table_t t;
    gs_verdict_t v;
    size_t line;
    assert_int_equal(gs_incident_table_parse(text, strlen(text), &t, &line, &v), 0);
    char *p[] = { "440101" };
    char *cats[] = { "77", "03" };
    Gridsync__V1__Device dep = s_entry(S_DEPARTMENT, S_ACTIVE, p, 1);
    dep.categories = cats;
    dep.n_categories = 2;
    gs_topic_t topic;
    assert_int_equal(gs_topic_parse("I77/440101", 10, &topic), 0);
    assert_int_equal(gs_authz_topic(&dep, &topic, &t), GS_AUTHZ_ALLOWED);
    assert_int_equal(gs_authz_topic(&dep, &topic, gs_incident_table_default()),
                     GS_AUTHZ_CATEGORY);
    assert_int_equal(gs_topic_parse("I03/440101", 10, &topic), 0);
    assert_int_equal(gs_authz_topic(&dep, &topic, &t), GS_AUTHZ_CATEGORY);
    assert_int_equal(gs_authz_topic(&dep, &topic, gs_incident_table_default()),
                     GS_AUTHZ_ALLOWED);
}

static void
test_covers(void **state)
{
    (void) state;
    const char *p[] = { "4401", "" };
    assert_int_equal(gs_authz_covers("4401", p, 0), 0);
    assert_int_equal(gs_authz_covers("", p, 0), 0);
    assert_int_equal(gs_authz_covers("440101", p, 1), 1);
    assert_int_equal(gs_authz_covers("4401", p, 1), 1);
    assert_int_equal(gs_authz_covers("440", p, 1), 0);
    assert_int_equal(gs_authz_covers("4402", p, 1), 0);
    assert_int_equal(gs_authz_covers("", p, 1), 0);
    assert_int_equal(gs_authz_covers("9", p, 2), 1);
    assert_int_equal(gs_authz_covers("", p, 2), 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_entry_may_do_nothing),
        cmocka_unit_test(test_revoked_may_do_nothing_whatever_its_role),
        cmocka_unit_test(test_unknown_role_may_do_nothing),
        cmocka_unit_test(test_admin_may_touch_everything),
        cmocka_unit_test(test_without_prefixes_device_and_district_may_do_nothing),
        cmocka_unit_test(test_prefix_boundaries),
        cmocka_unit_test(test_assigned_empty_prefix_covers_everything),
        cmocka_unit_test(test_covers),
        cmocka_unit_test(test_record_kinds_and_categories),
        cmocka_unit_test(test_topics),
        cmocka_unit_test(test_topics_use_the_stores_table),
    };
    return cmocka_run_group_tests_name("authz", tests, NULL, NULL);
}

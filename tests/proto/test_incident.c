/*
 * test_incident: the incident workflow tables (proto/gs_incident): every
 * step of the transition table for every role, the steps that are not in
 * it, the built-in category and deadline table, and the table's text form
 * (what it reads, each refusal with its line, printed and read back).
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

#define R(name) GRIDSYNC__V1__REASON__REASON_##name
#define ST(name) GRIDSYNC__V1__INCIDENT_STATUS__INCIDENT_STATUS_##name
#define ROLE(name) GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_##name

#define assert_msg_has(v, needle)                                              \
    do {                                                                       \
        if (!strstr((v).message, (needle)))                                    \
            fail_msg("message \"%s\" lacks \"%s\"", (v).message, (needle));    \
    } while (0)

/* The workflow as docs/data-model.md prints it: from, to, and the roles
 * that may take the step (D DEVICE, C CENTRE, P DEPARTMENT). */
static const struct {
    int from, to;
    const char *roles;
} s_want[] = {
    { 0, ST(REPORTED), "DC" },
    { ST(REPORTED), ST(REPORTED), "DC" },
    { ST(REPORTED), ST(ACCEPTED), "C" },
    { ST(REPORTED), ST(REJECTED), "C" },
    { ST(REJECTED), ST(ACCEPTED), "C" },
    { ST(ACCEPTED), ST(DISPATCHED), "C" },
    { ST(DISPATCHED), ST(DISPATCHED), "C" },
    { ST(DISPATCHED), ST(ACCEPTED), "PC" },
    { ST(DISPATCHED), ST(HANDLED), "P" },
    { ST(HANDLED), ST(DISPATCHED), "DC" },
    { ST(HANDLED), ST(VERIFIED), "D" },
    { ST(VERIFIED), ST(CLOSED), "C" },
    { ST(CLOSED), ST(ACCEPTED), "C" },
};

static bool
s_want_role(const char *roles, int role)
{
    char c = role == ROLE(DEVICE) ? 'D' : role == ROLE(CENTRE) ? 'C'
           : role == ROLE(DEPARTMENT) ? 'P' : 0;
    return c && strchr(roles, c);
}

/* Every (from, to, role) of statuses 0..7 and roles 0..5: allowed exactly
 * where the table above says, refused with TRANSITION where there is no
 * step and with ROLE where the step exists for other roles. */
static void
test_every_step_and_role(void **state)
{
    (void) state;
    size_t n;
    gs_incident_steps(&n);
    assert_int_equal(n, sizeof s_want / sizeof s_want[0]);
    for (int from = 0; from <= ST(CLOSED); from++)
        for (int to = 0; to <= ST(CLOSED) + 1; to++)
            for (int role = 0; role <= 5; role++) {
                const char *roles = NULL;
                for (size_t i = 0; i < n; i++)
                    if (s_want[i].from == from && s_want[i].to == to)
                        roles = s_want[i].roles;
                gs_verdict_t v;
                const gs_incident_step_t *step;
                int rc = gs_incident_step_check(from, to, role, &step, &v);
                if (!roles) {
                    assert_int_equal(rc, R(TRANSITION));
                    assert_null(step);
                } else if (s_want_role(roles, role)) {
                    assert_int_equal(rc, 0);
                    assert_non_null(step);
                    assert_int_equal(step->to, to);
                    assert_string_equal(v.message, "");
                } else {
                    assert_int_equal(rc, R(ROLE));
                }
            }
}

static void
test_messages(void **state)
{
    (void) state;
    gs_verdict_t v;
    assert_int_equal(gs_incident_step_check(ST(ACCEPTED), ST(CLOSED), ROLE(CENTRE),
                                            NULL, &v), R(TRANSITION));
    assert_string_equal(v.message, "no step from ACCEPTED to CLOSED; from ACCEPTED: DISPATCHED");
    assert_int_equal(gs_incident_step_check(0, ST(ACCEPTED), ROLE(CENTRE), NULL, &v),
                     R(TRANSITION));
    assert_string_equal(v.message, "a new incident starts as REPORTED, not ACCEPTED");
    assert_int_equal(gs_incident_step_check(ST(VERIFIED), ST(CLOSED), ROLE(DEPARTMENT),
                                            NULL, &v), R(ROLE));
    assert_string_equal(v.message, "a DEPARTMENT may not take the step close (结案); CENTRE may");
    assert_int_equal(gs_incident_step_check(ST(REPORTED), ST(REPORTED), ROLE(ADMIN),
                                            NULL, &v), R(ROLE));
    assert_msg_has(v, "DEVICE or CENTRE may");
    /* an unknown role is refused, never mistaken for a known one */
    assert_int_equal(gs_incident_step_check(0, ST(REPORTED), 40, NULL, &v), R(ROLE));
    assert_int_equal(gs_incident_step_check(0, ST(REPORTED), -1, NULL, &v), R(ROLE));
    assert_msg_has(v, "UNKNOWN");
    assert_string_equal(gs_incident_status_name(ST(HANDLED)), "HANDLED");
    assert_string_equal(gs_incident_status_name(0), "NEW");
    assert_string_equal(gs_incident_status_name(99), "UNKNOWN");
    assert_true(gs_incident_open(ST(DISPATCHED)));
    assert_false(gs_incident_open(ST(CLOSED)));
    assert_false(gs_incident_open(ST(REJECTED)));
}

static void
test_overdue_and_on_time(void **state)
{
    (void) state;
    Gridsync__V1__Incident in = GRIDSYNC__V1__INCIDENT__INIT;
    in.status = ST(DISPATCHED);
    assert_false(gs_incident_overdue(&in, 1000));   /* no deadline yet */
    in.due_at = 500;
    assert_false(gs_incident_overdue(&in, 500));
    assert_true(gs_incident_overdue(&in, 501));
    in.status = ST(CLOSED);
    in.closed_at = 400;
    assert_false(gs_incident_overdue(&in, 501));
    assert_true(gs_incident_on_time(&in));
    in.closed_at = 501;
    assert_false(gs_incident_on_time(&in));
    in.status = ST(REJECTED);
    assert_false(gs_incident_overdue(&in, 501));
    assert_false(gs_incident_on_time(&in));
    assert_false(gs_incident_overdue(NULL, 1));
}

static void
test_categories_and_deadlines(void **state)
{
    (void) state;
    size_t n;
    const gs_incident_category_t *c = gs_incident_categories(&n);
    assert_int_equal(n, 7);
    for (size_t i = 0; i < n; i++) {
        assert_ptr_equal(gs_incident_category_find(c[i].code), &c[i]);
        assert_true(strlen(c[i].code) <= GS_INCIDENT_CATEGORY_MAX);
        if (i)
            assert_true(strcmp(c[i - 1].code, c[i].code) < 0);
        /* a graver incident never gets longer */
        for (int s = 1; s < 4; s++)
            assert_true(c[i].close_hours[s] <= c[i].close_hours[s - 1]);
    }
    assert_string_equal(gs_incident_category_find("02")->name, "安全隐患");
    assert_null(gs_incident_category_find("2"));
    assert_null(gs_incident_category_find(""));
    assert_null(gs_incident_category_find(NULL));
    assert_int_equal(gs_incident_close_ms("02", 4), 4 * GS_INCIDENT_HOUR_MS);
    assert_int_equal(gs_incident_close_ms("01", 1), 240 * GS_INCIDENT_HOUR_MS);
    assert_int_equal(gs_incident_close_ms("02", 0), 0);
    assert_int_equal(gs_incident_close_ms("02", 5), 0);
    assert_int_equal(gs_incident_close_ms("77", 1), 0);
    const gs_incident_table_t *d = gs_incident_table_default();
    assert_ptr_equal(d->cats, c);
    assert_int_equal(gs_incident_table_handle_ms(d, "01", 1), 72 * GS_INCIDENT_HOUR_MS);
    assert_int_equal(gs_incident_table_handle_ms(d, "99", 4), 4 * GS_INCIDENT_HOUR_MS);
    assert_int_equal(gs_incident_table_handle_ms(d, "02", 0), 0);
    assert_int_equal(gs_incident_table_handle_ms(d, "77", 1), 0);
    assert_int_equal(gs_incident_table_close_ms(d, "03", 4), 2 * GS_INCIDENT_HOUR_MS);
}

/* Parse text (NUL-terminated) and expect a refusal on line `line` whose
 * message holds needle. */
static void
s_parse_refused(const char *text, size_t line, const char *needle)
{
    gs_incident_table_t t;
    gs_verdict_t v;
    size_t at = 99;
    if (gs_incident_table_parse(text, strlen(text), &t, &at, &v) == 0)
        fail_msg("accepted: %s", text);
    if (at != line)
        fail_msg("line %zu, not %zu: %s", at, line, v.message);
    assert_msg_has(v, needle);
    gs_verdict_t why;
    if (gs_text_check(v.message, GS_MSG_MAX - 1, "message", &why))
        fail_msg("the message is not text (%s): %s", why.message, v.message);
}

/* The table's text form: what it reads, in code order; every refusal with
 * its line; and the default table printed and read back unchanged. */
static void
test_table_text(void **state)
{
    (void) state;
    const char *text = "# a comment\n"
                       "\n"
                       "07\t噪音扰民\t96\t48\t24\t12\t48\t24\t12\t2\tactive\r\n"
                       "01\t矛盾纠纷\t240\t120\t72\t24\t72\t48\t24\t4\tretired\n"
                       "  \t\n"
                       "A1\tOther\t1\t1\t1\t1\t8760\t8760\t1\t1\tactive";
    gs_incident_table_t t;
    gs_verdict_t v;
    size_t line = 99;
    assert_int_equal(gs_incident_table_parse(text, strlen(text), &t, &line, &v), 0);
    assert_int_equal(line, 0);
    assert_int_equal(t.n, 3);
    assert_string_equal(t.cats[0].code, "01");
    assert_true(t.cats[0].retired);
    assert_string_equal(t.cats[1].code, "07");
    assert_string_equal(t.cats[1].name, "噪音扰民");
    assert_false(t.cats[1].retired);
    assert_string_equal(t.cats[2].code, "A1");
    assert_int_equal(gs_incident_table_close_ms(&t, "07", 2), 48 * GS_INCIDENT_HOUR_MS);
    assert_int_equal(gs_incident_table_handle_ms(&t, "07", 4), 2 * GS_INCIDENT_HOUR_MS);
    assert_int_equal(gs_incident_table_handle_ms(&t, "A1", 1), 8760 * GS_INCIDENT_HOUR_MS);
    assert_null(gs_incident_table_find(&t, "02"));

    /* printed and read back: the same table */
    char buf[16384];
    size_t n = gs_incident_table_format(&t, buf, sizeof buf);
    assert_int_equal(n, strlen(buf));
    gs_incident_table_t back;
    assert_int_equal(gs_incident_table_parse(buf, n, &back, &line, &v), 0);
    assert_memory_equal(&back, &t, sizeof t);
    n = gs_incident_table_format(gs_incident_table_default(), buf, sizeof buf);
    assert_int_equal(gs_incident_table_parse(buf, n, &back, &line, &v), 0);
    assert_memory_equal(&back, gs_incident_table_default(), sizeof back);
    /* a short buffer: cut, NUL-terminated, the length needed returned */
    char small[10];
    size_t need = gs_incident_table_format(&t, NULL, 0);
    assert_true(need > sizeof small);
    assert_int_equal(gs_incident_table_format(&t, small, sizeof small), need);
    assert_int_equal(strlen(small), sizeof small - 1);

    s_parse_refused("01\t矛盾纠纷\t240\t120\t72\t24\t72\t48\t24\t4\n", 1, "10 field(s)");
    s_parse_refused("#\n01\t矛盾纠纷\t240\t120\t72\t24\t72\t48\t24\t4\tactive\textra\n", 2,
                    "12 field(s)");
    s_parse_refused("0-1\tx\t1\t1\t1\t1\t1\t1\t1\t1\tactive\n", 1,
                    "category '0-1' is not a category code");
    s_parse_refused("123456789\tx\t1\t1\t1\t1\t1\t1\t1\t1\tactive\n", 1,
                    "is not a category code");
    s_parse_refused("01\t\t1\t1\t1\t1\t1\t1\t1\t1\tactive\n", 1, "category 01 has no name");
    s_parse_refused("01\t名\x01\t1\t1\t1\t1\t1\t1\t1\t1\tactive\n", 1, "category 01: name");
    s_parse_refused("01\tx\t1\tone\t1\t1\t1\t1\t1\t1\tactive\n", 1,
                    "closure hours for SERIOUS 'one' are not a whole number from 1 to 8760");
    s_parse_refused("01\tx\t1\t1\t1\t1\t1\t1\t1\t0\tactive\n", 1,
                    "handling hours for URGENT '0'");
    s_parse_refused("01\tx\t8761\t1\t1\t1\t1\t1\t1\t1\tactive\n", 1, "closure hours for GENERAL");
    s_parse_refused("01\tx\t24\t48\t1\t1\t1\t1\t1\t1\tactive\n", 1,
                    "closure hours grow with severity (SERIOUS 48 after GENERAL 24)");
    s_parse_refused("01\tx\t1\t1\t1\t1\t1\t1\t1\t1\tclosed\n", 1,
                    "the last field is 'active' or 'retired', not 'closed'");
    s_parse_refused("01\tx\t1\t1\t1\t1\t1\t1\t1\t1\tactive\n\n"
                    "01\ty\t1\t1\t1\t1\t1\t1\t1\t1\tactive\n", 3,
                    "category 01 is given twice (first on line 1)");
    /* a quoted field is cut and shown as printable ASCII only, so the
     * message stays text (it was cut inside a UTF-8 character, and passed
     * a terminal's escape sequences on; found by fuzz_categories) */
    s_parse_refused("01\tx\t1\t1\t1\t1\t1\t1\t1\t1\t停用停用停用\n", 1,
                    "not '????????????..'");
    s_parse_refused("01\tx\t1\t1\t1\t1\t1\t1\t1\t1\t\x1b[2J\n", 1, "not '?[2J'");
    s_parse_refused("01\tx\t1\t1\t1\t1\t7\xa2\xa2\t1\t1\t1\tactive\n", 1,
                    "hours for GENERAL '7?\?' are not");
    s_parse_refused("0\xe5\x85\xb6\tx\t1\t1\t1\t1\t1\t1\t1\t1\tactive\n", 1,
                    "category '0??\?' is not");
    s_parse_refused("01\tx\t1\t1\t1\t1\t1\t1\t1\t1\tretired\n", 0, "no active category");
    s_parse_refused("# nothing\n", 0, "no active category (0 retired)");
    char nul[] = "01\tx\t1\t1\t1\t1\t1\t1\t1\t1\tactive\n02\0";
    assert_int_not_equal(gs_incident_table_parse(nul, sizeof nul - 1, &t, &line, &v), 0);
    assert_int_equal(line, 2);
    assert_msg_has(v, "NUL");
    /* more than the limit */
    char *many = malloc((GS_INCIDENT_CATEGORIES_MAX + 1) * 40);
    assert_non_null(many);
    size_t o = 0;
    for (int i = 0; i <= GS_INCIDENT_CATEGORIES_MAX; i++)
        o += (size_t) sprintf(many + o, "C%03d\tx\t1\t1\t1\t1\t1\t1\t1\t1\tactive\n", i);
    assert_int_not_equal(gs_incident_table_parse(many, o, &t, &line, &v), 0);
    assert_int_equal(line, GS_INCIDENT_CATEGORIES_MAX + 1);
    assert_msg_has(v, "more than 100 categories");
    free(many);

    /* the code shape uploads are checked against */
    assert_int_equal(gs_incident_code_check("02", &v), 0);
    assert_int_equal(gs_incident_code_check("abcDEF12", &v), 0);
    assert_int_equal(gs_incident_code_check("", &v), R(CATEGORY));
    assert_int_equal(gs_incident_code_check(NULL, &v), R(CATEGORY));
    assert_int_equal(gs_incident_code_check("0 2", &v), R(CATEGORY));
    assert_msg_has(v, "category '0?2' is not a category code");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_step_and_role),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_categories_and_deadlines),
        cmocka_unit_test(test_table_text),
        cmocka_unit_test(test_overdue_and_on_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

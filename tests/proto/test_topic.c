/*
 * test_topic: proto/gs_topic, the live feed's topics: grid topics at
 * every level and refused off a level; incident topics built and parsed
 * back, and every malformed one refused (no marker, no separator, an empty
 * or overlong category, a category that is not a code, a prefix that is
 * not digits or not at a level); and the category read from a packed
 * ChangeEvent's bytes for an incident, and nothing for other kinds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "gs_topic.h"

static int
s_parse(const char *t, gs_topic_t *out)
{
    return gs_topic_parse(t, strlen(t), out);
}

static void
test_grid_topics(void **state)
{
    (void) state;
    gs_topic_t t;
    static const char *ok[] = { "", "44", "4403", "440305", "440305001", "440305001001",
                                "440305001001001" };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(s_parse(ok[i], &t), 0);
        assert_false(t.incident);
        assert_string_equal(t.prefix, ok[i]);
        assert_int_equal(t.level, (int) i);
    }
    assert_int_equal(s_parse("440", &t), -1);          /* not at a level */
    assert_int_equal(s_parse("44a3", &t), -1);         /* not digits */
    assert_int_equal(s_parse("4403050010010011", &t), -1); /* too long */
    /* a NUL inside is not a topic either */
    assert_int_equal(gs_topic_parse("44\0003", 4, &t), -1);
}

static void
test_incident_topics(void **state)
{
    (void) state;
    char buf[GS_TOPIC_MAX + 1];
    gs_topic_t t;
    assert_int_equal(gs_topic_incident(buf, sizeof buf, "02", "440305"), 10);
    assert_string_equal(buf, "I02/440305");
    assert_int_equal(s_parse(buf, &t), 0);
    assert_true(t.incident);
    assert_string_equal(t.category, "02");
    assert_string_equal(t.prefix, "440305");
    assert_int_equal(t.level, 3);
    /* every level, the empty prefix included */
    assert_int_equal(s_parse("I99/", &t), 0);
    assert_int_equal(t.level, 0);
    assert_int_equal(s_parse("I02/440305001001001", &t), 0);
    assert_int_equal(t.level, 6);
    /* the longest category */
    assert_int_equal(gs_topic_incident(buf, sizeof buf, "ABCDEFGH", "440305001001001"),
                     GS_TOPIC_MAX);
    /* refused: no separator, empty or long category, not a code, bad prefix */
    static const char *bad[] = { "I", "I02", "I/4403", "IABCDEFGHI/44", "I0.2/44", "I0 /44",
                                 "I02/440", "I02/44a3", "I02/4403/", "I02//44", "i02/44",
                                 "I02/4403050010010011" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(s_parse(bad[i], &t), -1);
    assert_int_equal(gs_topic_incident(buf, sizeof buf, "", "44"), -1);
    assert_int_equal(gs_topic_incident(buf, sizeof buf, "02", "440"), -1);
    assert_int_equal(gs_topic_incident(buf, sizeof buf, "0/2", "44"), -1);
    assert_int_equal(gs_topic_incident(buf, 5, "02", "4403"), -1); /* does not fit */
}

static uint8_t *
s_pack_event(int kind, const char *category, size_t *len)
{
    Gridsync__V1__ChangeEvent ev = GRIDSYNC__V1__CHANGE_EVENT__INIT;
    Gridsync__V1__Record rec = GRIDSYNC__V1__RECORD__INIT;
    Gridsync__V1__Incident in = GRIDSYNC__V1__INCIDENT__INIT;
    Gridsync__V1__Household hh = GRIDSYNC__V1__HOUSEHOLD__INIT;
    uint64_t prev[7] = { 1, 2, 3, 4, 5, 6, 7 };
    ev.seq = 9;
    ev.grid_code = "440305001001001";
    ev.kind = kind;
    ev.record = &rec;
    ev.n_prev_seq = 7;
    ev.prev_seq = prev;
    if (kind == GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT) {
        in.incident_id = "inc-1";
        in.category = (char *) category;
        in.description = "a hazard";
        rec.body_case = GRIDSYNC__V1__RECORD__BODY_INCIDENT;
        rec.incident = &in;
    } else {
        hh.household_id = "hh-1";
        rec.body_case = GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD;
        rec.household = &hh;
    }
    *len = gridsync__v1__change_event__get_packed_size(&ev);
    uint8_t *buf = malloc(*len);
    assert_non_null(buf);
    gridsync__v1__change_event__pack(&ev, buf);
    return buf;
}

static void
test_event_category(void **state)
{
    (void) state;
    char cat[GS_INCIDENT_CATEGORY_MAX + 1];
    size_t len;
    uint8_t *b = s_pack_event(GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT, "03", &len);
    assert_int_equal(gs_topic_event_category(b, len, cat), 1);
    assert_string_equal(cat, "03");
    /* cut anywhere: never read past the end, never a category from half a field */
    for (size_t n = 0; n < len; n++) {
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, b, n);
        int r = gs_topic_event_category(cut, n, cat);
        assert_true(r == 0 || (r == 1 && strcmp(cat, "03") == 0));
        free(cut);
    }
    free(b);
    b = s_pack_event(GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT, "123456789", &len);
    assert_int_equal(gs_topic_event_category(b, len, cat), 0); /* does not fit */
    free(b);
    b = s_pack_event(GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD, NULL, &len);
    assert_int_equal(gs_topic_event_category(b, len, cat), 0);
    free(b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid_topics),
        cmocka_unit_test(test_incident_topics),
        cmocka_unit_test(test_event_category),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

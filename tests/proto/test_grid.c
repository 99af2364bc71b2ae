/*
 * test_grid: proto/gs_grid, the shared rules about grid codes and dates:
 * which codes a prefix covers (level boundaries, the empty prefix, codes
 * inside stored bytes that are not NUL-terminated, overlong prefixes), the
 * calendar conversions against known dates and a day-by-day round trip, and
 * a registry entry's validity on a day (open ends, both ends inclusive,
 * damaged dates).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "gs_grid.h"
#include "gs_validate.h"

#define G "440305001001001"

static void
test_prefix_covers(void **state)
{
    (void) state;
    assert_true(gs_grid_prefix_covers("", G));
    assert_true(gs_grid_prefix_covers("44", G));
    assert_true(gs_grid_prefix_covers("440305001", G));
    assert_true(gs_grid_prefix_covers(G, G));
    assert_false(gs_grid_prefix_covers("440306", G));
    assert_false(gs_grid_prefix_covers("45", G));
    /* a prefix may be the subject: a subscription inside a scope */
    assert_true(gs_grid_prefix_covers("4403", "440305"));
    assert_false(gs_grid_prefix_covers("440305", "4403"));
    /* longer than a grid code: covers nothing, not even its own start */
    assert_false(gs_grid_prefix_covers(G "1", G "1"));
}

static void
test_prefix_covers_stored_bytes(void **state)
{
    (void) state;
    /* a code inside a stored value: 15 digits followed by other bytes */
    char raw[GS_GRID_LEN + 4];
    memcpy(raw, G, GS_GRID_LEN);
    memcpy(raw + GS_GRID_LEN, "\x0a\x03xyz", 4);
    assert_true(gs_grid_prefix_covers(G, raw));
    assert_true(gs_grid_prefix_covers("440305", raw));
    assert_false(gs_grid_prefix_covers("440305001001002", raw));
}

static void
test_prefix_find(void **state)
{
    (void) state;
    const char *pf[] = { "4401", "440305", "44" };
    assert_int_equal(gs_grid_prefix_find(G, pf, 3), 1);
    assert_int_equal(gs_grid_prefix_find("440100001001001", pf, 3), 0);
    assert_int_equal(gs_grid_prefix_find("450100001001001", pf, 3), -1);
    assert_int_equal(gs_grid_prefix_find(G, pf, 1), -1);
    /* no prefixes allow nothing */
    assert_int_equal(gs_grid_prefix_find(G, pf, 0), -1);
    const char *all[] = { "" };
    assert_int_equal(gs_grid_prefix_find(G, all, 1), 0);
}

static void
test_calendar_known_dates(void **state)
{
    (void) state;
    assert_int_equal(gs_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(gs_days_from_civil(1969, 12, 31), -1);
    assert_int_equal(gs_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(gs_days_from_civil(2026, 6, 1), 20605);
    assert_int_equal(gs_days_from_civil(1850, 1, 1), -43829);
    int y, m, d;
    gs_civil_from_days(11016, &y, &m, &d);
    assert_int_equal(y * 10000 + m * 100 + d, 20000229);
    gs_civil_from_days(-1, &y, &m, &d);
    assert_int_equal(y * 10000 + m * 100 + d, 19691231);
}

/* Every day from 1850 to 2200 goes there and back, and the days follow each
 * other: each date is the day after the previous one. */
static void
test_calendar_round_trip(void **state)
{
    (void) state;
    int64_t first = gs_days_from_civil(1850, 1, 1), last = gs_days_from_civil(2200, 12, 31);
    int py = 1849, pm = 12, pd = 31;
    for (int64_t z = first; z <= last; z++) {
        int y, m, d;
        gs_civil_from_days(z, &y, &m, &d);
        assert_int_equal(gs_days_from_civil(y, m, d), z);
        char s[16];
        snprintf(s, sizeof s, "%04d-%02d-%02d", y, m, d);
        int ymd = 0;
        assert_int_equal(gs_date_parse(s, &ymd, NULL), 0);
        int next_month = d == 1 && (m == pm + 1 || (m == 1 && pm == 12 && y == py + 1));
        assert_true(d == pd + 1 ? (y == py && m == pm) : next_month);
        py = y, pm = m, pd = d;
    }
}

static void
test_date_today(void **state)
{
    (void) state;
    /* 2026-05-31 16:00 UTC is 2026-06-01 00:00 in China */
    int64_t midnight_cst = gs_days_from_civil(2026, 6, 1) * 86400000LL - 8LL * 3600000;
    assert_int_equal(gs_date_today(midnight_cst), 20260601);
    assert_int_equal(gs_date_today(midnight_cst - 1), 20260531);
    assert_int_equal(gs_date_today(0), 19700101);
}

static void
test_grid_valid_on(void **state)
{
    (void) state;
    Gridsync__V1__Grid g = GRIDSYNC__V1__GRID__INIT;
    g.grid_code = (char *) G;
    assert_int_equal(gs_grid_valid_on(&g, 20260601), GS_GRID_VALID);
    g.valid_from = (char *) "2026-06-01";
    assert_int_equal(gs_grid_valid_on(&g, 20260531), GS_GRID_NOT_YET);
    assert_int_equal(gs_grid_valid_on(&g, 20260601), GS_GRID_VALID);
    g.valid_to = (char *) "2026-12-31";
    assert_int_equal(gs_grid_valid_on(&g, 20261231), GS_GRID_VALID);
    assert_int_equal(gs_grid_valid_on(&g, 20270101), GS_GRID_RETIRED);
    g.valid_from = (char *) "";
    assert_int_equal(gs_grid_valid_on(&g, 19000101), GS_GRID_VALID);
    g.valid_to = (char *) "2026-02-30";
    assert_int_equal(gs_grid_valid_on(&g, 20260101), GS_GRID_BAD_DATE);
    g.valid_to = NULL;
    g.valid_from = (char *) "soon";
    assert_int_equal(gs_grid_valid_on(&g, 20260101), GS_GRID_BAD_DATE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefix_covers),
        cmocka_unit_test(test_prefix_covers_stored_bytes),
        cmocka_unit_test(test_prefix_find),
        cmocka_unit_test(test_calendar_known_dates),
        cmocka_unit_test(test_calendar_round_trip),
        cmocka_unit_test(test_date_today),
        cmocka_unit_test(test_grid_valid_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

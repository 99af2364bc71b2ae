/*
 * gs_grid: see gs_grid.h. The calendar arithmetic is H. Hinnant's
 * days_from_civil / civil_from_days (eras of 400 years, 146,097 days each).
 */
#include "gs_grid.h"

#include <assert.h>
#include <string.h>

bool
gs_grid_prefix_covers(const char *prefix, const char *code)
{
    assert(prefix && code);
    size_t l = strnlen(prefix, GS_GRID_LEN + 1);
    /* strncmp stops at a NUL in code, so a shorter code is never read past
     * its end, and l <= GS_GRID_LEN keeps a stored code's bytes in bounds */
    return l <= GS_GRID_LEN && strncmp(code, prefix, l) == 0;
}

int
gs_grid_prefix_find(const char *code, const char *const *prefixes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (gs_grid_prefix_covers(prefixes[i], code))
            return (int) i;
    return -1;
}

int64_t
gs_days_from_civil(int y, int m, int d)
{
    int64_t yy = (int64_t) y - (m <= 2);
    int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
    int64_t yoe = yy - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void
gs_civil_from_days(int64_t days, int *y, int *m, int *d)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int) (doy - (153 * mp + 2) / 5 + 1);
    *m = (int) (mp < 10 ? mp + 3 : mp - 9);
    *y = (int) (yoe + era * 400 + (*m <= 2));
}

int
gs_grid_valid_on(const Gridsync__V1__Grid *g, int yyyymmdd)
{
    assert(g);
    int from = 0, to = 0;
    bool has_from = g->valid_from && *g->valid_from;
    bool has_to = g->valid_to && *g->valid_to;
    if ((has_from && gs_date_parse(g->valid_from, &from, NULL)) ||
        (has_to && gs_date_parse(g->valid_to, &to, NULL)))
        return GS_GRID_BAD_DATE;
    if (has_from && yyyymmdd < from)
        return GS_GRID_NOT_YET;
    if (has_to && yyyymmdd > to)
        return GS_GRID_RETIRED;
    return GS_GRID_VALID;
}

/*
 * bench_util: shared helpers of the benchmark programs (see bench_util.h).
 */
#include "bench_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int64_t
gs_bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
gs_bench_sleep_until(int64_t t_us)
{
    struct timespec ts = { (time_t) (t_us / 1000000), (long) (t_us % 1000000) * 1000 };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static int
s_cmp_double(const void *x, const void *y)
{
    double a = *(const double *) x, b = *(const double *) y;
    return a < b ? -1 : a > b;
}

double
gs_bench_quantile(double *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, s_cmp_double);
    size_t rank = (size_t) (q * (double) n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

void
gs_bench_kv(const char *prefix, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s.%s=", prefix, key);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    fflush(stdout);
}

void
gs_bench_fill_opts(gs_gen_opts_t *o, uint64_t total)
{
    gs_gen_opts_init(o);
    if (total < 1000)
        total = 1000;
    o->district = "440306";
    o->households = (uint32_t) (total * 73 / 100);
    o->rental_buildings = (uint32_t) ((total - o->households) / 4 + 1);
    uint64_t grids = total / 400;
    o->grids = (uint32_t) (grids < 40 ? 40 : grids > 15000 ? 15000 : grids);
    o->streets = o->grids >= 400 ? 40 : o->grids / 10;
}

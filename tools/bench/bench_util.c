/*
 * bench_util: shared helpers of the benchmark programs (see bench_util.h).
 */
#include "bench_util.h"
#include "bench_iocount.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

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

/* The fields of /proc/PID/stat after the command (which may hold spaces),
 * read into buf; NULL when it cannot be read. */
static const char *
s_proc_stat(long pid, char *buf, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    return p && p[1] ? p + 2 : NULL;
}

double
gs_bench_proc_cpu_s(long pid)
{
    char buf[1024];
    const char *p = s_proc_stat(pid, buf, sizeof buf);
    unsigned long long ut, st;
    if (!p || sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                     &ut, &st) != 2)
        return -1;
    return (double) (ut + st) / (double) sysconf(_SC_CLK_TCK);
}

double
gs_bench_proc_run_s(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    unsigned long long ns = 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char tp[128];
        snprintf(tp, sizeof tp, "/proc/%ld/task/%s/schedstat", pid, e->d_name);
        FILE *f = fopen(tp, "r");
        unsigned long long t;
        if (!f)
            continue;   /* the thread exited meanwhile */
        if (fscanf(f, "%llu", &t) == 1) {
            ns += t;
            n++;
        }
        fclose(f);
    }
    closedir(d);
    return n ? (double) ns / 1e9 : -1;
}

double
gs_bench_self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

long long
gs_bench_proc_majflt(long pid)
{
    char buf[1024];
    const char *p = s_proc_stat(pid, buf, sizeof buf);
    unsigned long long mf;
    if (!p || sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %llu", &mf) != 1)
        return -1;
    return (long long) mf;
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

int
gs_bench_fill_opts(gs_gen_opts_t *o, uint32_t copy)
{
    static char codes[GS_BENCH_FILL_COPIES][8];
    if (copy >= GS_BENCH_FILL_COPIES)
        return -1;
    gs_gen_opts_init(o);
    snprintf(codes[copy], sizeof codes[copy], "4403%02u", 10 + copy);
    o->district = codes[copy];
    o->seed = 1000 + copy;
    o->grids = 1372;
    o->households = 300000;
    o->rental_buildings = 13055;
    return 0;
}

static void
s_walk_grid(gs_bench_walk_t *w)
{
    uint32_t first, n;
    gs_gen_grid_households(w->gen, w->grid, &first, &n);
    w->hh_next = first;
    w->hh_end = first + n;
    gs_gen_grid_rentals(w->gen, w->grid, &first, &n);
    w->rt_next = first;
    w->rt_end = first + n;
}

static int
s_walk_copy(gs_bench_walk_t *w, uint32_t copy)
{
    /* the batch being built may still hold records of the current copy,
     * whose strings point into its generator: keep it one copy longer */
    gs_gen_destroy(&w->prev);
    w->prev = w->gen;
    w->gen = NULL;
    gs_gen_opts_t o;
    if (gs_bench_fill_opts(&o, copy))
        return -1;
    w->gen = gs_gen_new(&o);
    if (!w->gen)
        return -1;
    w->copy = copy;
    w->grid = 0;
    s_walk_grid(w);
    return 0;
}

int
gs_bench_walk_seek(gs_bench_walk_t *w, uint64_t from)
{
    memset(w, 0, sizeof *w);
    for (uint32_t c = 0;; c++) {
        if (s_walk_copy(w, c))
            return -1;
        uint64_t n = (uint64_t) gs_gen_household_count(w->gen) + gs_gen_rental_count(w->gen);
        if (w->index + n > from)
            break;
        w->index += n;
    }
    for (;; w->grid++) {
        s_walk_grid(w);
        uint64_t hh = w->hh_end - w->hh_next, n = hh + (w->rt_end - w->rt_next);
        if (w->index + n > from) {
            uint64_t skip = from - w->index;
            if (skip < hh) {
                w->hh_next += (uint32_t) skip;
            } else {
                w->hh_next = w->hh_end;
                w->rt_next += (uint32_t) (skip - hh);
            }
            w->index = from;
            return 0;
        }
        w->index += n;
    }
}

const char *
gs_bench_walk_grid(const gs_bench_walk_t *w)
{
    return gs_gen_grid_code(w->gen, w->grid);
}

size_t
gs_bench_walk_next(gs_bench_walk_t *w, gs_arena_t *a, Gridsync__V1__Record **recs,
                   size_t max, const char **grid)
{
    while (w->hh_next == w->hh_end && w->rt_next == w->rt_end) {
        if (w->grid + 1 < gs_gen_grid_count(w->gen)) {
            w->grid++;
            s_walk_grid(w);
        } else if (s_walk_copy(w, w->copy + 1)) {
            return 0;
        }
    }
    *grid = gs_gen_grid_code(w->gen, w->grid);
    size_t k = 0;
    while (k < max) {
        Gridsync__V1__Record *r = NULL;
        if (w->hh_next < w->hh_end)
            r = gs_gen_household(w->gen, w->hh_next++, a);
        else if (w->rt_next < w->rt_end)
            r = gs_gen_rental(w->gen, w->rt_next++, a);
        else
            break;
        if (!r)
            break;
        recs[k++] = r;
        w->index++;
    }
    return k;
}

void
gs_bench_walk_deinit(gs_bench_walk_t *w)
{
    gs_gen_destroy(&w->gen);
    gs_gen_destroy(&w->prev);
}

int
gs_bench_iocount_read(const char *path, gs_bench_iocount_t *c)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t n = fread(c, sizeof *c, 1, f);
    fclose(f);
    return n == 1 && c->magic == GS_BENCH_IOCOUNT_MAGIC ? 0 : -1;
}

void
gs_bench_scale(gs_gen_opts_t *o, double scale)
{
    if (scale != 1) {
        o->grids = (uint32_t) fmax(1, round(o->grids * scale));
        o->households = (uint32_t) round(o->households * scale);
        o->rental_buildings = (uint32_t) round(o->rental_buildings * scale);
        o->organisations = (uint32_t) round(o->organisations * scale);
    }
    if (o->streets > o->grids)
        o->streets = o->grids;
}

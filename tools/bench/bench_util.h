/*
 * bench_util: what the benchmark programs share: a monotonic clock,
 * percentiles, "key=value" result lines for the driver, and the pre-fill
 * data (copies of a district layout) with a walk over its records.
 *
 * Where it sits: linked by the programs in tools/bench/ only. They print
 * their results as "key=value" lines on stdout; tools/bench/run_bench.sh
 * collects those lines and writes docs/benchmarks.md from them.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "gs_arena.h"
#include "gs_gen.h"

/* CLOCK_MONOTONIC in microseconds. */
int64_t gs_bench_now_us(void);

/* Sleep until the monotonic time t_us (returns at once when it has passed). */
void gs_bench_sleep_until(int64_t t_us);

/* Sort v (n values) in place and return the q-quantile (0 < q <= 1) by
 * the nearest-rank method; 0 when n is 0. */
double gs_bench_quantile(double *v, size_t n, double q);

/* utime + stime of process pid (from /proc/PID/stat), in seconds; -1 when
 * it cannot be read. */
double gs_bench_proc_cpu_s(long pid);

/* CPU time of process pid's live threads so far, in seconds, to the
 * nanosecond (the sum of /proc/PID/task/TID/schedstat's first field): for
 * short intervals, where gs_bench_proc_cpu_s's clock ticks (10 ms) are too
 * coarse. Threads that exited no longer count. -1 when it cannot be read. */
double gs_bench_proc_run_s(long pid);

/* This process's CPU time so far (utime + stime of all its threads,
 * libzmq's I/O thread included; getrusage), in seconds. */
double gs_bench_self_cpu_s(void);

/* Major page faults of process pid so far (from /proc/PID/stat: faults
 * that waited for the device, a file page not in the page cache); -1 when
 * it cannot be read. */
long long gs_bench_proc_majflt(long pid);

/* Print "prefix.key=value\n" on stdout (value formatted like printf). */
void gs_bench_kv(const char *prefix, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Scale the district of o as `gridsim --scale F` does (grids at least 1,
 * households, rental buildings and organisations; streets no more than
 * grids), so a benchmark lays out exactly the uploads gridsim sends. */
void gs_bench_scale(gs_gen_opts_t *o, double scale);

/* The pre-fill data: copies of one district layout, so that millions of
 * records stay valid and distinct (a single generated district of millions
 * of households runs out of ID numbers and makes invalid birth dates).
 * Copy c (0 <= c < GS_BENCH_FILL_COPIES) has district code 4403xx with
 * xx = 10 + c (so its grid codes and record ids are its own), seed 1000 + c
 * (its own persons), 1,372 grids, 300,000 households and 13,055 rental
 * buildings: about 350,000 records, some 260 per grid. Codes 440301..440309
 * are left to the measured runs. Returns -1 when c is out of range. */
#define GS_BENCH_FILL_COPIES 89
int gs_bench_fill_opts(gs_gen_opts_t *o, uint32_t copy);

/* Walks the pre-fill's records in index order: copy by copy, grid by grid,
 * households then rental units of each grid. */
typedef struct gs_bench_walk {
    gs_gen_t *gen;              /* generator of the current copy (owned) */
    gs_gen_t *prev;             /* the copy before (owned): records built from it
                                 * may still wait in the caller's batch */
    uint32_t copy;              /* current copy */
    uint32_t grid;              /* current grid of that copy */
    uint64_t index;             /* global index of the next record */
    uint32_t hh_next, hh_end;   /* households of the current grid left */
    uint32_t rt_next, rt_end;   /* rental units of the current grid left */
} gs_bench_walk_t;

/* Position w at global record index from. 0, or -1 past the last copy or
 * when a generator cannot be made. */
int gs_bench_walk_seek(gs_bench_walk_t *w, uint64_t from);

/* The grid code of the current grid. */
const char *gs_bench_walk_grid(const gs_bench_walk_t *w);

/* Up to max records of one grid (the current one, or the next when it is
 * done) into recs, built in arena a; *grid gets its code. 0 at the end.
 * The records point into their copy's generator as well as into a: those
 * of one copy stay valid until the walk starts the copy after the next
 * (a copy holds far more records than a batch), or gs_bench_walk_deinit. */
size_t gs_bench_walk_next(gs_bench_walk_t *w, gs_arena_t *a, Gridsync__V1__Record **recs,
                          size_t max, const char **grid);

/* Free the walk's generators. */
void gs_bench_walk_deinit(gs_bench_walk_t *w);

#endif

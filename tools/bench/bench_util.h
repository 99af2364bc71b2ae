/*
 * bench_util: what the benchmark programs share: a monotonic clock,
 * percentiles, "key=value" result lines for the driver, and the layout of
 * the large synthetic district used to pre-fill stores.
 *
 * Where it sits: linked by the programs in tools/bench/ only. They print
 * their results as "key=value" lines on stdout; tools/bench/run_bench.sh
 * collects those lines and writes docs/benchmarks.md from them.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "gs_gen.h"

/* CLOCK_MONOTONIC in microseconds. */
int64_t gs_bench_now_us(void);

/* Sleep until the monotonic time t_us (returns at once when it has passed). */
void gs_bench_sleep_until(int64_t t_us);

/* Sort v (n values) in place and return the q-quantile (0 < q <= 1) by
 * the nearest-rank method; 0 when n is 0. */
double gs_bench_quantile(double *v, size_t n, double q);

/* Print "prefix.key=value\n" on stdout (value formatted like printf). */
void gs_bench_kv(const char *prefix, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Options of the pre-fill district: district code "440306", sized so that
 * its records number about total (73% households, the rest rental units of
 * 4 per building on average), about 400 records per grid (a few hundred per
 * device, as in the seed district), at most 15,000 grids. */
void gs_bench_fill_opts(gs_gen_opts_t *o, uint64_t total);

#endif

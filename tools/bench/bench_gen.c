/*
 * bench_gen: how fast the synthetic district generator (tools/gen) builds
 * records, the load generator's own cost per record. Builds every
 * household and every rental unit of the seed district once, each into a
 * reset arena, and reports the rates. Reported, not asserted (this run
 * used to sit in test_gen; timings do not belong in the unit suite).
 *
 * Output ("key=value" lines for run_bench.sh): gen.households, gen.members,
 * gen.households_per_s, gen.rentals, gen.leases, gen.rentals_per_s.
 *
 * Usage: bench_gen
 */
#include <stdint.h>
#include <stdio.h>

#include "bench_util.h"
#include "gs_arena.h"
#include "gs_gen.h"

int
main(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "usage: %s\n", argv[0]);
        return 2;
    }
    gs_gen_t *g = gs_gen_new(NULL);
    gs_arena_t *a = gs_arena_new(0);
    if (!g || !a) {
        fprintf(stderr, "bench_gen: out of memory\n");
        return 1;
    }
    uint64_t members = 0, leases = 0;
    int64_t t0 = gs_bench_now_us();
    for (uint32_t i = 0; i < gs_gen_household_count(g); i++) {
        gs_arena_reset(a);
        Gridsync__V1__Record *rec = gs_gen_household(g, i, a);
        if (!rec) {
            fprintf(stderr, "bench_gen: household %u was not built\n", i);
            return 1;
        }
        members += rec->household->n_members;
    }
    int64_t t1 = gs_bench_now_us();
    for (uint32_t i = 0; i < gs_gen_rental_count(g); i++) {
        gs_arena_reset(a);
        Gridsync__V1__Record *rec = gs_gen_rental(g, i, a);
        if (!rec) {
            fprintf(stderr, "bench_gen: rental unit %u was not built\n", i);
            return 1;
        }
        leases += rec->rental->n_leases;
    }
    int64_t t2 = gs_bench_now_us();
    double hs = (double) (t1 - t0) / 1e6, rs = (double) (t2 - t1) / 1e6;
    gs_bench_kv("gen", "households", "%u", gs_gen_household_count(g));
    gs_bench_kv("gen", "members", "%llu", (unsigned long long) members);
    gs_bench_kv("gen", "households_per_s", "%.0f",
                hs > 0 ? gs_gen_household_count(g) / hs : 0);
    gs_bench_kv("gen", "rentals", "%u", gs_gen_rental_count(g));
    gs_bench_kv("gen", "leases", "%llu", (unsigned long long) leases);
    gs_bench_kv("gen", "rentals_per_s", "%.0f", rs > 0 ? gs_gen_rental_count(g) / rs : 0);
    gs_arena_destroy(&a);
    gs_gen_destroy(&g);
    return 0;
}

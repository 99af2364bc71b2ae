/*
 * bench_pull: device pull-sync. How long one device takes to download its
 * own grid from a large store: snapshot pages of the grid's prefix until
 * the cursor is empty, then one sync request for the deltas after the
 * snapshot seq (what a device does before it follows the feed).
 *
 * Where it sits: a client of a running gridsyncd whose store was pre-filled
 * by bench_fill (the pre-fill data, bench_util.h); started by
 * tools/bench/run_bench.sh. Grids are picked at random (fixed seed) among
 * the grids the first --filled records of the pre-fill cover completely,
 * and downloaded one after another by one client.
 *
 * Output: "pull.*" key=value lines: p50/p99/max milliseconds per grid,
 * records per grid; with --broker-pid, the broker's CPU time (utime +
 * stime) per grid over the same downloads, which the machine's other work
 * moves far less than the latencies, and its major page faults per grid
 * (a page of the store that was not in the page cache: the download
 * waited for the device).
 *
 * With --again 1 the same grids are downloaded a second time, in the same
 * order, and reported as "pull.again.*": their pages are then in the page
 * cache and mapped in the broker, so the second pass shows what a
 * download costs without the device, and the first what it costs on the
 * cache the store had.
 *
 * Each reply is decoded in full into one arena, reset before each grid
 * (gs_client_snapshot_in, gs_client_sync_in), as a device that stores a
 * page before it asks for the next would; --decode malloc decodes with
 * malloc and frees each reply (gs_client_snapshot, gs_client_sync). The
 * client's own CPU time per grid is reported too. --seed N picks another
 * set of grids (0, the default, the same as ever); --detail FILE writes
 * one line per grid: pass, grid, records, pages, snapshot ms, sync ms.
 *
 * Usage: bench_pull --upload EP --filled N [--samples N] [--broker-pid PID]
 *                   [--again 1] [--decode arena|malloc] [--detail FILE]
 *                   [--seed N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "gs_client.h"

/* The arena's first block: a snapshot page of a few hundred records
 * decodes into about a megabyte. */
#define S_ARENA_BLOCK (4u << 20)

/* records/s over the downloads' own time */
static double
s_records_per_s(const double *ms, uint32_t samples, uint64_t records)
{
    double total_ms = 0;
    for (uint32_t s = 0; s < samples; s++)
        total_ms += ms[s];
    return total_ms > 0 ? (double) records / (total_ms / 1000.0) : 0;
}

/* How a pass decodes the replies: into one arena, reset before each grid
 * (gs_client_snapshot_in, gs_client_sync_in), or malloc'd and freed
 * (gs_client_snapshot, gs_client_sync). */
typedef struct s_opts {
    gs_arena_t *arena;          /* NULL: malloc */
    FILE *detail;               /* one line per grid, or NULL */
    uint64_t seed;              /* which grids: 0 the first run's, others others */
} s_opts_t;

/* Download samples grids picked from codes (the same ones on every call),
 * one after another, and print the figures under prefix. ms gets each
 * download's milliseconds (sorted), *records the records received. */
static int
s_pass(gs_client_t *cli, const s_opts_t *o, char (*codes)[16], size_t grids,
       uint32_t samples, long broker_pid, const char *prefix, double *ms,
       uint64_t *records_out)
{
    uint64_t records = 0, pages = 0, deltas = 0;
    uint64_t x = 0x9e3779b97f4a7c15ULL + o->seed * 0x2545f4914f6cdd1dULL;
    if (!x)
        x = 1;  /* xorshift's one stuck state */
    double bcpu0 = broker_pid ? gs_bench_proc_run_s(broker_pid) : -1;
    long long bmf0 = broker_pid ? gs_bench_proc_majflt(broker_pid) : -1;
    double ccpu0 = gs_bench_self_cpu_s();
    for (uint32_t s = 0; s < samples; s++) {
        /* xorshift: the same grids every run */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const char *pfx[1] = { codes[x % grids] };
        int64_t t0 = gs_bench_now_us();
        if (o->arena)
            gs_arena_reset(o->arena);
        uint8_t *cursor = NULL;
        size_t cursor_len = 0;
        uint64_t snap_seq = 0, grid_records = 0, grid_pages = 0;
        int first = 1;
        for (;;) {
            Gridsync__V1__SnapshotResponse *r = NULL;
            gs_client_error_t err;
            int rc = o->arena
                         ? gs_client_snapshot_in(cli, pfx, 1, cursor, cursor_len, 0, o->arena,
                                                 &r, &err)
                         : gs_client_snapshot(cli, pfx, 1, cursor, cursor_len, 0, &r, &err);
            if (rc) {
                fprintf(stderr, "bench_pull: snapshot: %s %s\n", gs_client_strerror(rc),
                        err.message);
                return -1;
            }
            grid_pages++;
            grid_records += r->n_entries;
            if (first)
                snap_seq = r->snapshot_seq;
            first = 0;
            free(cursor);
            cursor = NULL;
            cursor_len = r->next_cursor.len;
            if (cursor_len) {
                cursor = malloc(cursor_len);
                if (!cursor)
                    return -1;
                memcpy(cursor, r->next_cursor.data, cursor_len);
            }
            if (!o->arena)
                gridsync__v1__snapshot_response__free_unpacked(r, NULL);
            if (!cursor_len)
                break;
        }
        int64_t t1 = gs_bench_now_us();
        Gridsync__V1__SyncResponse *d = NULL;
        gs_client_error_t err;
        int rc = o->arena ? gs_client_sync_in(cli, pfx, 1, snap_seq, 0, 0, o->arena, &d, &err)
                          : gs_client_sync(cli, pfx, 1, snap_seq, 0, 0, &d, &err);
        if (rc) {
            fprintf(stderr, "bench_pull: sync: %s %s\n", gs_client_strerror(rc), err.message);
            return -1;
        }
        deltas += d->n_events;
        if (!o->arena)
            gridsync__v1__sync_response__free_unpacked(d, NULL);
        int64_t t2 = gs_bench_now_us();
        ms[s] = (double) (t2 - t0) / 1000.0;
        records += grid_records;
        pages += grid_pages;
        if (o->detail)
            fprintf(o->detail, "%s %s %llu %llu %.3f %.3f\n", prefix, pfx[0],
                    (unsigned long long) grid_records, (unsigned long long) grid_pages,
                    (double) (t1 - t0) / 1000.0, (double) (t2 - t1) / 1000.0);
    }
    double ccpu = gs_bench_self_cpu_s() - ccpu0;
    double bcpu = bcpu0 >= 0 ? gs_bench_proc_run_s(broker_pid) - bcpu0 : -1;
    long long bmf = bmf0 >= 0 ? gs_bench_proc_majflt(broker_pid) - bmf0 : -1;
    gs_bench_kv(prefix, "samples", "%u", samples);
    gs_bench_kv(prefix, "records_per_grid", "%.1f", (double) records / samples);
    gs_bench_kv(prefix, "pages_per_grid", "%.2f", (double) pages / samples);
    gs_bench_kv(prefix, "delta_events", "%llu", (unsigned long long) deltas);
    gs_bench_kv(prefix, "p50_ms", "%.3f", gs_bench_quantile(ms, samples, 0.50));
    gs_bench_kv(prefix, "p99_ms", "%.3f", gs_bench_quantile(ms, samples, 0.99));
    gs_bench_kv(prefix, "max_ms", "%.3f", ms[samples - 1]);
    gs_bench_kv(prefix, "client_cpu_ms_per_grid", "%.3f", ccpu * 1000.0 / samples);
    if (bcpu >= 0)
        gs_bench_kv(prefix, "broker_cpu_ms_per_grid", "%.3f", bcpu * 1000.0 / samples);
    if (bmf >= 0)
        gs_bench_kv(prefix, "broker_major_faults_per_grid", "%.2f", (double) bmf / samples);
    *records_out = records;
    return records ? 0 : -1;
}

int
main(int argc, char **argv)
{
    const char *upload_ep = NULL;
    uint64_t filled = 0;
    uint32_t samples = 300;
    long broker_pid = 0;
    int again = 0;
    const char *decode = "arena", *detail = NULL;
    uint64_t seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v && !strcmp(a, "--upload"))
            upload_ep = v;
        else if (v && !strcmp(a, "--filled"))
            filled = strtoull(v, NULL, 10);
        else if (v && !strcmp(a, "--samples"))
            samples = (uint32_t) strtoul(v, NULL, 10);
        else if (v && !strcmp(a, "--broker-pid"))
            broker_pid = atol(v);
        else if (v && !strcmp(a, "--again"))
            again = atoi(v) != 0;
        else if (v && !strcmp(a, "--decode") && (!strcmp(v, "arena") || !strcmp(v, "malloc")))
            decode = v;
        else if (v && !strcmp(a, "--detail"))
            detail = v;
        else if (v && !strcmp(a, "--seed"))
            seed = strtoull(v, NULL, 10);
        else {
            fprintf(stderr, "usage: bench_pull --upload EP --filled N [--samples N] "
                    "[--broker-pid PID] [--again 1] [--decode arena|malloc] "
                    "[--detail FILE] [--seed N]\n");
            return 2;
        }
        i++;
    }
    if (!upload_ep || !filled || !samples)
        return 2;
    /* the grids whose records the pre-fill applied in full */
    size_t grids = 0, cap = 0;
    char (*codes)[16] = NULL;
    uint64_t cum = 0;
    for (uint32_t c = 0; cum < filled; c++) {
        gs_gen_opts_t go;
        gs_gen_t *gen = gs_bench_fill_opts(&go, c) ? NULL : gs_gen_new(&go);
        if (!gen)
            break;
        for (uint32_t g = 0; g < gs_gen_grid_count(gen) && cum < filled; g++) {
            uint32_t f, hn, rn;
            gs_gen_grid_households(gen, g, &f, &hn);
            gs_gen_grid_rentals(gen, g, &f, &rn);
            cum += (uint64_t) hn + rn;
            if (cum > filled)
                break;
            if (grids == cap) {
                cap = cap ? 2 * cap : 1024;
                codes = realloc(codes, cap * sizeof *codes);
                if (!codes)
                    return 1;
            }
            snprintf(codes[grids++], sizeof codes[0], "%s", gs_gen_grid_code(gen, g));
        }
        gs_gen_destroy(&gen);
    }
    if (!grids) {
        fprintf(stderr, "bench_pull: the pre-fill covers no whole grid\n");
        return 1;
    }
    gs_client_t *cli = gs_client_new(upload_ep, NULL);
    if (!cli)
        return 1;
    double *ms = calloc(samples, sizeof *ms);
    if (!ms)
        return 1;
    /* a first block that holds a whole page's decode, kept across resets */
    s_opts_t o = { NULL, NULL, seed };
    if (!strcmp(decode, "arena") && !(o.arena = gs_arena_new(S_ARENA_BLOCK)))
        return 1;
    if (detail && !(o.detail = fopen(detail, "w"))) {
        fprintf(stderr, "bench_pull: cannot write %s\n", detail);
        return 1;
    }
    gs_bench_kv("pull", "decode", "%s", decode);
    uint64_t records = 0;
    if (s_pass(cli, &o, codes, grids, samples, broker_pid, "pull", ms, &records))
        return 1;
    gs_bench_kv("pull", "grids", "%zu", grids);
    gs_bench_kv("pull", "records_per_s", "%.0f", s_records_per_s(ms, samples, records));
    if (again && s_pass(cli, &o, codes, grids, samples, broker_pid, "pull.again", ms, &records))
        return 1;
    if (o.detail)
        fclose(o.detail);
    gs_arena_destroy(&o.arena);
    free(ms);
    gs_client_destroy(&cli);
    free(codes);
    return records ? 0 : 1;
}

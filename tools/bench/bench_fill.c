/*
 * bench_fill: pre-fill a store with synthetic records, fast, for the
 * growth, catch-up and pull-sync benchmarks.
 *
 * Where it sits: run by tools/bench/run_bench.sh while no broker has the
 * store open. It applies records of the pre-fill data (bench_util.h:
 * copies of a district layout) through gs_store_apply, the store's
 * ordinary write path (validation, dedup, change log, indexes), so the
 * store ends up exactly as if devices had uploaded them. To save time it
 * opens the store with the BENCHMARK-ONLY no_sync option (MDB_NOSYNC) and
 * applies large transactions; the measured runs that follow reopen the
 * store with full sync. The data file is flushed (fdatasync) before exit,
 * so the next process starts from a store on disk.
 *
 * Records are numbered copy by copy, grid by grid (households, then rental
 * units of each grid); --from and --count pick a range, so the store can
 * be filled in steps (1M, then up to 5M) without repeating a record.
 *
 * Output: "fill.*" key=value lines (records applied, seconds, store info).
 * With --log-bytes it also walks the store's whole change log and reports
 * the events and their packed bytes (fill.log_events, fill.log_bytes):
 * exactly what a district's bridge publishes as message data, against
 * which the federation benchmark sets JetStream's bytes per message.
 *
 * With --households H it stops with the upload that brings the households
 * applied to H or more (the city benchmark asks for households, not
 * records); --count, when given too, still bounds the records.
 *
 * Usage: bench_fill --store DIR --from I --count N [--txn N] [--log-bytes 1]
 *                   [--households H]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "gs_arena.h"
#include "gs_gen.h"
#include "gs_store.h"

#define S_UP_MAX 250            /* records per upload (one device, one grid) */
#define S_UPS_MAX 256           /* uploads per transaction, at most */
#define S_NOW_MS 1780243200000LL /* the generator's "today" */

static void
s_usage(void)
{
    fprintf(stderr,
            "usage: bench_fill --store DIR --from I --count N [--txn N]\n"
            "  --from I     first record index to apply (default 0)\n"
            "  --count N    records to apply\n"
            "  --txn N      records per transaction (default 20000)\n"
            "  --log-bytes 1  also report the change log's events and packed bytes\n"
            "  --households H  stop once H households are applied\n"
            "Applies with no_sync (BENCHMARK ONLY), then flushes the data file.\n");
}

/* gs_event_fn: count one event of the change log and its packed bytes */
static int
s_log_count(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    (void) seq;
    (void) grid;
    (void) data;
    uint64_t *n = arg;
    n[0]++;
    n[1] += len;
    return 0;
}

int
main(int argc, char **argv)
{
    const char *dir = NULL;
    uint64_t from = 0, count = 0, txn = 20000, hh_target = 0;
    int log_bytes = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            s_usage();
            return 2;
        }
        if (!strcmp(a, "--store"))
            dir = v;
        else if (!strcmp(a, "--from"))
            from = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--count"))
            count = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--txn"))
            txn = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--households"))
            hh_target = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--log-bytes"))
            log_bytes = atoi(v);
        else {
            s_usage();
            return 2;
        }
        i++;
    }
    if (!dir || txn == 0) {
        s_usage();
        return 2;
    }
    if (hh_target && !count)
        count = UINT64_MAX;
    gs_store_opts_t so;
    gs_store_opts_init(&so);
    so.no_sync = 1;                     /* BENCHMARK ONLY: the pre-fill is not measured */
    so.map_size = (size_t) 1 << 30;
    int err = 0;
    gs_store_t *st = gs_store_new(dir, &so, &err);
    if (!st) {
        fprintf(stderr, "bench_fill: open %s: %s (%s)\n", dir, gs_store_strerror(err),
                gs_store_errdetail());
        return 1;
    }
    gs_bench_walk_t w;
    if (gs_bench_walk_seek(&w, from)) {
        fprintf(stderr, "bench_fill: --from %llu is past the pre-fill data's end\n",
                (unsigned long long) from);
        return 1;
    }
    gs_arena_t *arena = gs_arena_new((size_t) 8 << 20);
    static Gridsync__V1__Record *recs[S_UPS_MAX][S_UP_MAX];
    static char upids[S_UPS_MAX][64], devs[S_UPS_MAX][32];
    gs_upload_t ups[S_UPS_MAX];
    uint64_t done = 0, accepted = 0, upload_no = from, hh_done = 0;
    int64_t t0 = gs_bench_now_us(), last = t0;
    while (done < count) {
        size_t n = 0, in_txn = 0;
        while (n < S_UPS_MAX && in_txn < txn && done + in_txn < count &&
               (!hh_target || hh_done < hh_target)) {
            uint64_t left = count - done - in_txn;
            size_t want = left < S_UP_MAX ? (size_t) left : S_UP_MAX;
            const char *grid = NULL;
            size_t k = gs_bench_walk_next(&w, arena, recs[n], want, &grid);
            if (!k)
                break;
            for (size_t r = 0; r < k; r++)
                hh_done += recs[n][r]->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD;
            /* one upload per grid: the grid's device */
            snprintf(devs[n], sizeof devs[n], "dev-%s", grid);
            snprintf(upids[n], sizeof upids[n], "fill-%llu", (unsigned long long) upload_no++);
            ups[n] = (gs_upload_t) { devs[n], upids[n], recs[n], k, gs_arena_allocator(arena),
                                     NULL, 0, NULL, 1 };
            n++;
            in_txn += k;
        }
        if (!n)
            break;
        gs_apply_out_t out;
        int rc = gs_store_apply(st, ups, n, S_NOW_MS, &out);
        if (rc) {
            fprintf(stderr, "bench_fill: apply: %s (%s)\n", gs_store_strerror(rc),
                    gs_store_errdetail());
            return 1;
        }
        for (size_t i = 0; i < n; i++)
            accepted += out.uploads[i].counts[1];
        gs_apply_out_clear(&out);
        gs_arena_reset(arena);
        done += in_txn;
        int64_t now = gs_bench_now_us();
        if (now - last > 10000000) {
            double rate = (double) done / ((double) (now - t0) / 1e6);
            if (hh_target)
                fprintf(stderr, "  bench_fill: %llu records, %llu of %llu households (%.0f/s)\n",
                        (unsigned long long) done, (unsigned long long) hh_done,
                        (unsigned long long) hh_target, rate);
            else
                fprintf(stderr, "  bench_fill: %llu of %llu records (%.0f/s)\n",
                        (unsigned long long) done, (unsigned long long) count, rate);
            last = now;
        }
    }
    double secs = (double) (gs_bench_now_us() - t0) / 1e6;
    gs_store_info_t info;
    memset(&info, 0, sizeof info);
    gs_store_info(st, &info);
    uint64_t log_n[2] = { 0, 0 };     /* events, bytes */
    if (log_bytes) {
        const char *all[1] = { "" };
        uint64_t next = 0, head = 0;
        if (gs_store_events(st, all, 1, 0, 0, s_log_count, log_n, &next, &head)) {
            fprintf(stderr, "bench_fill: reading the change log: %s\n", gs_store_errdetail());
            return 1;
        }
    }
    gs_store_destroy(&st);
    /* no_sync left the last commits in the page cache: write them out so
     * the measured runs start from a store that is on disk */
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        fdatasync(fd);
        close(fd);
    }
    gs_bench_kv("fill", "records", "%llu", (unsigned long long) done);
    gs_bench_kv("fill", "households", "%llu", (unsigned long long) hh_done);
    gs_bench_kv("fill", "accepted", "%llu", (unsigned long long) accepted);
    gs_bench_kv("fill", "seconds", "%.3f", secs);
    gs_bench_kv("fill", "records_per_s", "%.0f", secs > 0 ? (double) done / secs : 0);
    gs_bench_kv("fill", "next_index", "%llu", (unsigned long long) (from + done));
    gs_bench_kv("fill", "store_records", "%llu", (unsigned long long) info.records);
    gs_bench_kv("fill", "store_events", "%llu", (unsigned long long) info.events);
    gs_bench_kv("fill", "store_used_bytes", "%zu", info.map_used);
    gs_bench_kv("fill", "store_file_bytes", "%zu", info.file_size);
    if (log_bytes) {
        gs_bench_kv("fill", "log_events", "%llu", (unsigned long long) log_n[0]);
        gs_bench_kv("fill", "log_bytes", "%llu", (unsigned long long) log_n[1]);
    }
    gs_arena_destroy(&arena);
    gs_bench_walk_deinit(&w);
    return accepted == done ? 0 : 1;
}

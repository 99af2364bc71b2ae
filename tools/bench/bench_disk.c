/*
 * bench_disk: the device's own ceilings on the filesystem the stores live
 * on, measured in the same run as everything else, so that records/s can
 * be read against the commits/s the disk allows.
 *
 * Where it sits: run by tools/bench/run_bench.sh in its work directory
 * (the same filesystem as the broker's temporary stores).
 *
 *  - Flush latency: a file of --sync-blocks 4 KiB blocks is written and
 *    synced first (so that each measured flush carries data, not a change
 *    of file size, as an LMDB page overwrite does); then --syncs times,
 *    one 4 KiB pwrite to the next block and fdatasync; each pair is timed.
 *  - Sequential bandwidth: --seq-mb MiB written in 1 MiB write calls to a
 *    new file, then one fdatasync; MB/s over the whole (the final flush
 *    included, so the page cache does not count).
 *
 * Output: "disk.*" key=value lines: sync_p50_ms, sync_p99_ms, sync_max_ms,
 * syncs_per_s (1 / median), seq_mb_per_s and the sizes used.
 *
 * Usage: bench_disk --dir DIR [--syncs N] [--seq-mb N]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"

enum { S_BLOCK = 4096, S_CHUNK = 1 << 20 };

static int
s_fail(const char *what, const char *path)
{
    fprintf(stderr, "bench_disk: %s %s: ", what, path);
    perror(NULL);
    return 1;
}

int
main(int argc, char **argv)
{
    const char *dir = NULL;
    int syncs = 200, seq_mb = 256;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v && !strcmp(a, "--dir"))
            dir = v;
        else if (v && !strcmp(a, "--syncs"))
            syncs = atoi(v);
        else if (v && !strcmp(a, "--seq-mb"))
            seq_mb = atoi(v);
        else {
            fprintf(stderr, "usage: bench_disk --dir DIR [--syncs N] [--seq-mb N]\n");
            return 2;
        }
        i++;
    }
    if (!dir || syncs < 1 || syncs > 100000 || seq_mb < 1 || seq_mb > 65536) {
        fprintf(stderr, "usage: bench_disk --dir DIR [--syncs N] [--seq-mb N]\n");
        return 2;
    }
    char path[4096];
    uint8_t *buf = aligned_alloc(S_BLOCK, S_CHUNK);
    double *lat = calloc((size_t) syncs, sizeof *lat);
    if (!buf || !lat)
        return 1;
    for (size_t i = 0; i < S_CHUNK; i++)
        buf[i] = (uint8_t) (i * 2654435761u >> 13);

    /* flush latency of one 4 KiB overwrite */
    snprintf(path, sizeof path, "%s/bench_disk.sync", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return s_fail("open", path);
    for (int i = 0; i < syncs; i++)
        if (pwrite(fd, buf, S_BLOCK, (off_t) i * S_BLOCK) != S_BLOCK)
            return s_fail("write", path);
    if (fsync(fd) != 0)
        return s_fail("fsync", path);
    for (int i = 0; i < syncs; i++) {
        buf[0] = (uint8_t) i;       /* a real change each time */
        int64_t t0 = gs_bench_now_us();
        if (pwrite(fd, buf, S_BLOCK, (off_t) i * S_BLOCK) != S_BLOCK || fdatasync(fd) != 0)
            return s_fail("write and fdatasync", path);
        lat[i] = (double) (gs_bench_now_us() - t0) / 1000.0;
    }
    close(fd);
    unlink(path);
    double p50 = gs_bench_quantile(lat, (size_t) syncs, 0.5);
    double p99 = gs_bench_quantile(lat, (size_t) syncs, 0.99);
    double max = lat[syncs - 1];

    /* sequential bandwidth, the closing flush included */
    snprintf(path, sizeof path, "%s/bench_disk.seq", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return s_fail("open", path);
    int64_t t0 = gs_bench_now_us();
    for (int i = 0; i < seq_mb; i++)
        if (write(fd, buf, S_CHUNK) != S_CHUNK)
            return s_fail("write", path);
    if (fdatasync(fd) != 0)
        return s_fail("fdatasync", path);
    double secs = (double) (gs_bench_now_us() - t0) / 1e6;
    close(fd);
    unlink(path);

    gs_bench_kv("disk", "syncs", "%d", syncs);
    gs_bench_kv("disk", "sync_p50_ms", "%.3f", p50);
    gs_bench_kv("disk", "sync_p99_ms", "%.3f", p99);
    gs_bench_kv("disk", "sync_max_ms", "%.3f", max);
    gs_bench_kv("disk", "syncs_per_s", "%.0f", p50 > 0 ? 1000.0 / p50 : 0);
    gs_bench_kv("disk", "seq_mb", "%d", seq_mb);
    gs_bench_kv("disk", "seq_mb_per_s", "%.1f", secs > 0 ? (double) seq_mb * 1.048576 / secs : 0);
    free(buf);
    free(lat);
    return 0;
}

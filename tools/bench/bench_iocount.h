/*
 * bench_iocount: the counters of the write-counting shim
 * (libbench_iocount.so, bench_iocount.c), as laid out in the file the shim
 * shares with the benchmark programs.
 *
 * Where it sits: run_bench.sh starts gridsyncd with
 * LD_PRELOAD=libbench_iocount.so and GS_BENCH_IOCOUNT=FILE. The shim maps
 * FILE (created, sized to this struct) shared and adds to its counters on
 * every write and flush call of the process; a reader (bench_load) reads
 * the file at the start and the end of its measured interval and takes the
 * difference, so nothing needs to be signalled or stopped. /proc's
 * write_bytes is not used: on the kernel the bench was written on it does
 * not reflect what the process wrote.
 *
 * Counted: bytes passed to write, pwrite, pwrite64, writev, pwritev,
 * pwritev64 and pwritev2 on descriptors above 2 that refer to regular
 * files (the store's files; not sockets, pipes or the log on stderr), and
 * every fdatasync, fsync (regular files) and msync call. A write on a
 * descriptor opened with O_DSYNC or O_SYNC is a flush of its own (LMDB
 * writes its meta page that way after the fdatasync of the data pages), so
 * it is counted in sync_writes too: flushes = fdatasyncs + fsyncs + msyncs
 * + sync_writes.
 */
#ifndef BENCH_IOCOUNT_H
#define BENCH_IOCOUNT_H

#include <stdint.h>

#define GS_BENCH_IOCOUNT_MAGIC 0x67736963u   /* "gsic" */

typedef struct gs_bench_iocount {
    uint32_t magic;                 /* GS_BENCH_IOCOUNT_MAGIC once the shim mapped it */
    uint32_t pid;                   /* the process the shim runs in */
    uint64_t write_calls;           /* write calls on regular files */
    uint64_t write_bytes;           /* bytes those calls were given */
    uint64_t fdatasyncs;            /* fdatasync calls */
    uint64_t fsyncs;                /* fsync calls on regular files */
    uint64_t msyncs;                /* msync calls */
    uint64_t sync_writes;           /* write calls on descriptors opened O_DSYNC or O_SYNC */
} gs_bench_iocount_t;

/* Read the counters from FILE into c. 0, or -1 when the file cannot be
 * read or the shim never mapped it (magic missing). */
int gs_bench_iocount_read(const char *path, gs_bench_iocount_t *c);

#endif

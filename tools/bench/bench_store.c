/*
 * bench_store: what the grid store costs over bare LMDB.
 *
 * Applies a synthetic district (tools/gen) through gs_store_apply in batches
 * the way the broker's group commit does (one upload per grid device, about
 * --batch records per transaction, full sync), and records every key and
 * value the store writes through the store's debug trace. Then, in the same
 * run, a bare LMDB loop puts exactly those bytes under exactly those keys,
 * transaction by transaction, into an environment in the same starting
 * state. The difference is the store's own work: validation, dedup lookups,
 * hashing, packing, indexes. Reported, not asserted.
 *
 * Two baselines: "bare, all puts" replays every write (records, log, ids,
 * natural keys, persons, cells, chain, idempotency, meta); "bare, records"
 * replays only the records puts, the least any design would write.
 *
 * Cases: an empty store, and one pre-filled with --prefill records of
 * another district (default 5,000,000). The pre-fill runs with MDB_NOSYNC
 * (the benchmark-only no_sync option) to save time; the measured phase
 * always runs with full sync. The pre-filled store is copied with
 * gs_store_backup so the bare loop starts from the same state.
 *
 * This program includes lmdb.h for the bare loop only: it measures LMDB
 * itself. Everything else goes through the store API.
 *
 * Under the write-counting shim (bench_iocount.h) it also reports the bytes
 * written per record, of the store and of each database replayed alone
 * (--breakdown), so the bytes can be told apart by table.
 *
 * Usage: bench_store [--dir D] [--batch N] [--prefill N] [--limit N]
 *                    [--breakdown] [--persons-by-cell] [--upload N]
 *                    [--interleave N]
 */
#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_iocount.h"
#include "gs_arena.h"
#include "gs_gen.h"
#include "gs_store.h"
#include "gs_store_debug.h"

#define S_MAP ((size_t) 256 << 30)     /* virtual: large enough never to grow */
#define S_NOW_MS 1780243200000LL        /* the generator's "today" */

/* ---- Trace of what the store wrote ---------------------------------------------- */

/* One write: [db u8][del u8][append u8][klen u32][vlen u32][key][val] */
typedef struct s_trace {
    uint8_t *buf;                   /* the writes */
    size_t len, cap;
    size_t txn_start;               /* where the running transaction began */
    size_t *txn_end;                /* end offset of each committed transaction */
    size_t n_txn, cap_txn;
    uint64_t *txn_records;          /* records uploaded in each transaction */
    uint64_t pending_records;       /* set by the driver before each apply */
} s_trace_t;

static const char *s_dbs[] = { "records", "ids", "natkeys", "log", "cell_log", "idem",
                               "idem_fifo", "persons", "cells", "chain", "meta",
                               "devices", "device_keys", "grids", "digests" };
#define S_NDB (sizeof s_dbs / sizeof s_dbs[0])

static int s_persons_by_cell;       /* --persons-by-cell what-if */
static int s_persons_db = 7;        /* index of "persons" in s_dbs */

static int
s_db_index(const char *name)
{
    for (size_t i = 0; i < S_NDB; i++)
        if (strcmp(name, s_dbs[i]) == 0)
            return (int) i;
    return -1;
}

static void
s_need(s_trace_t *t, size_t n)
{
    if (t->cap - t->len >= n)
        return;
    size_t cap = t->cap ? t->cap : (size_t) 64 << 20;
    while (cap - t->len < n)
        cap *= 2;
    t->buf = realloc(t->buf, cap);
    if (!t->buf) {
        fprintf(stderr, "bench_store: out of memory for the trace\n");
        exit(1);
    }
    t->cap = cap;
}

static void
s_trace_fn(void *arg, int del, const char *db, const void *key, size_t klen,
           const void *val, size_t vlen, int append)
{
    s_trace_t *t = arg;
    if (del == 3) {             /* begin: drop an aborted attempt */
        t->len = t->txn_start;
        return;
    }
    if (del == 2) {             /* committed */
        if (t->n_txn == t->cap_txn) {
            t->cap_txn = t->cap_txn ? t->cap_txn * 2 : 1024;
            t->txn_end = realloc(t->txn_end, t->cap_txn * sizeof *t->txn_end);
            t->txn_records = realloc(t->txn_records, t->cap_txn * sizeof *t->txn_records);
            if (!t->txn_end || !t->txn_records)
                exit(1);
        }
        t->txn_records[t->n_txn] = t->pending_records;
        t->txn_end[t->n_txn++] = t->len;
        t->txn_start = t->len;
        return;
    }
    s_need(t, 11 + klen + vlen);
    uint8_t *p = t->buf + t->len;
    p[0] = (uint8_t) s_db_index(db);
    p[1] = (uint8_t) del;
    p[2] = (uint8_t) append;
    uint32_t kl = (uint32_t) klen, vl = (uint32_t) vlen;
    memcpy(p + 3, &kl, 4);
    memcpy(p + 7, &vl, 4);
    memcpy(p + 11, key, klen);
    if (vlen)
        memcpy(p + 11 + klen, val, vlen);
    t->len += 11 + klen + vlen;
}

static void
s_trace_reset(s_trace_t *t)
{
    t->len = t->txn_start = 0;
    t->n_txn = 0;
}

/* Make room for the trace of about n records before the timed run and
 * touch it, so that page faults on fresh memory are not charged to the
 * store. */
static void
s_trace_reserve(s_trace_t *t, uint64_t n)
{
    s_need(t, (size_t) n * 3072);
    memset(t->buf, 0, t->cap);
}

/* ---- Timing ------------------------------------------------------------------------ */

static double
s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* CPU time of the calling thread: what the shared machine's other load
 * does not move, unlike the wall clock (which includes the flushes). */
static double
s_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* ---- Driving the store ---------------------------------------------------------------- */

typedef struct s_feed {
    gs_gen_t *gen;
    uint32_t grid;                  /* next grid */
    uint32_t hh_next, hh_end;       /* households of the current grid left */
    uint32_t rt_next, rt_end;       /* rentals of the current grid left */
    uint64_t made;                  /* records made so far */
    uint64_t limit;                 /* stop after this many (0 = all) */
    uint32_t stride;                /* grids this feed skips to its next (1: every grid) */
} s_feed_t;

/* Next up to max records of the current grid; 0 when the district is done. */
static size_t
s_feed_next(s_feed_t *f, gs_arena_t *a, Gridsync__V1__Record **recs, size_t max,
            const char **grid)
{
    while (f->hh_next == f->hh_end && f->rt_next == f->rt_end) {
        if (f->grid >= gs_gen_grid_count(f->gen))
            return 0;
        uint32_t first, n;
        gs_gen_grid_households(f->gen, f->grid, &first, &n);
        f->hh_next = first;
        f->hh_end = first + n;
        gs_gen_grid_rentals(f->gen, f->grid, &first, &n);
        f->rt_next = first;
        f->rt_end = first + n;
        f->grid += f->stride;
    }
    *grid = gs_gen_grid_code(f->gen, f->grid - f->stride);
    size_t k = 0;
    while (k < max && (!f->limit || f->made < f->limit)) {
        Gridsync__V1__Record *r = NULL;
        if (f->hh_next < f->hh_end)
            r = gs_gen_household(f->gen, f->hh_next++, a);
        else if (f->rt_next < f->rt_end)
            r = gs_gen_rental(f->gen, f->rt_next++, a);
        else
            break;
        if (!r) {
            fprintf(stderr, "bench_store: generator failed\n");
            exit(1);
        }
        recs[k++] = r;
        f->made++;
    }
    return k;
}

typedef struct s_run {
    uint64_t records;               /* records applied */
    uint64_t accepted;              /* of which accepted */
    double secs;                    /* time inside gs_store_apply */
    double cpu_secs;                /* CPU time of this thread inside it */
    double prep_secs;               /* time inside gs_store_prepare */
    uint64_t txns;                  /* applies (= transactions) */
} s_run_t;

#define S_UP_MAX 250                /* most records per upload (one device) */
#define S_UPS_MAX 64                /* uploads per apply */
#define S_IL_MAX 1024               /* most feeds taking turns (--interleave) */
static size_t s_up_max = S_UP_MAX;  /* records per upload (--upload) */
static uint32_t s_interleave = 1;   /* feeds taking turns (--interleave) */

/* Apply a district through the store; batch = records per transaction. */
static s_run_t
s_apply_district(gs_store_t *st, gs_gen_t *gen, uint32_t batch, uint64_t limit,
                 s_trace_t *t, const char *tag)
{
    s_run_t run = { 0, 0, 0, 0, 0, 0 };
    /* --interleave N: N feeds, each on every Nth grid, taking turns upload
     * by upload, as bench_load's connections do (each on its own grids) */
    static s_feed_t feeds[S_IL_MAX];
    for (uint32_t i = 0; i < s_interleave; i++)
        feeds[i] = (s_feed_t) { gen, i, 0, 0, 0, 0, 0, 0, s_interleave };
    uint32_t turn = 0, live = s_interleave;
    uint64_t made = 0;
    gs_arena_t *a = gs_arena_new(4 << 20);
    static Gridsync__V1__Record *recs[S_UPS_MAX][S_UP_MAX];
    static char upids[S_UPS_MAX][48], devs[S_UPS_MAX][32];
    gs_upload_t ups[S_UPS_MAX];
    uint64_t upload_no = 0;
    double last_report = s_now();
    for (;;) {
        size_t n = 0, total = 0;
        while (n < S_UPS_MAX && total < batch && live && (!limit || made < limit)) {
            const char *grid = NULL;
            size_t want = batch - total < s_up_max ? batch - total : s_up_max;
            if (limit && want > limit - made)
                want = (size_t) (limit - made);
            s_feed_t *f = &feeds[turn++ % s_interleave];
            if (f->grid == UINT32_MAX)
                continue;
            size_t k = s_feed_next(f, a, recs[n], want, &grid);
            if (!k) {
                f->grid = UINT32_MAX;       /* this feed's grids are done */
                live--;
                continue;
            }
            made += k;
            snprintf(devs[n], sizeof devs[n], "dev-%s", grid);
            snprintf(upids[n], sizeof upids[n], "%s-%llu", tag, (unsigned long long) ++upload_no);
            /* as the broker's frontend does, before the writer's apply */
            gs_prepared_t *prep;
            double p0 = s_now();
            if (gs_store_prepare(st, recs[n], k, gs_arena_allocator(a), S_NOW_MS, &prep)) {
                fprintf(stderr, "bench_store: prepare: out of memory\n");
                exit(1);
            }
            run.prep_secs += s_now() - p0;
            ups[n] = (gs_upload_t) { devs[n], upids[n], recs[n], k, gs_arena_allocator(a),
                                     NULL, 0, prep, 1 };
            n++;
            total += k;
        }
        if (!n)
            break;
        gs_apply_out_t out;
        if (t)
            t->pending_records = total;
        double t0 = s_now(), c0 = s_cpu();
        int rc = gs_store_apply(st, ups, n, S_NOW_MS, &out);
        run.secs += s_now() - t0;
        run.cpu_secs += s_cpu() - c0;
        if (rc) {
            fprintf(stderr, "bench_store: apply: %s (%s)\n", gs_store_strerror(rc),
                    gs_store_errdetail());
            exit(1);
        }
        for (size_t i = 0; i < n; i++)
            run.accepted += out.uploads[i].counts[1];
        gs_apply_out_clear(&out);
        run.records += total;
        run.txns++;
        gs_arena_reset(a);
        if (s_now() - last_report > 10) {
            fprintf(stderr, "  %s: %llu records...\n", tag, (unsigned long long) run.records);
            last_report = s_now();
        }
    }
    gs_arena_destroy(&a);
    return run;
}

/* ---- The bare loop --------------------------------------------------------------------- */

/* Replay the trace into the LMDB environment in dir (created or existing),
 * transaction by transaction; only_db >= 0 replays that database only. */
static double
s_bare(const char *dir, const s_trace_t *t, int only_db, uint64_t *records)
{
    MDB_env *env;
    MDB_dbi dbi[S_NDB];
    int rc;
    if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_maxdbs(env, 16)) ||
        (rc = mdb_env_set_mapsize(env, S_MAP)) ||
        (rc = mdb_env_open(env, dir, MDB_NOTLS, 0600))) {
        fprintf(stderr, "bench_store: bare env: %s\n", mdb_strerror(rc));
        exit(1);
    }
    MDB_txn *txn;
    mdb_txn_begin(env, NULL, 0, &txn);
    for (size_t i = 0; i < S_NDB; i++)
        if ((rc = mdb_dbi_open(txn, s_dbs[i], MDB_CREATE, &dbi[i]))) {
            fprintf(stderr, "bench_store: bare dbi: %s\n", mdb_strerror(rc));
            exit(1);
        }
    mdb_txn_commit(txn);
    *records = 0;
    double t0 = s_now();
    size_t off = 0;
    for (size_t x = 0; x < t->n_txn; x++) {
        if ((rc = mdb_txn_begin(env, NULL, 0, &txn)))
            break;
        while (off < t->txn_end[x]) {
            const uint8_t *p = t->buf + off;
            uint32_t kl, vl;
            memcpy(&kl, p + 3, 4);
            memcpy(&vl, p + 7, 4);
            MDB_val k = { kl, (void *) (p + 11) }, v = { vl, (void *) (p + 11 + kl) };
            off += 11 + kl + vl;
            if (only_db >= 0 && p[0] != only_db)
                continue;
            uint8_t alt[600];
            if (s_persons_by_cell && p[0] == s_persons_db && kl > 32 && kl <= sizeof alt) {
                /* what-if: the same entry keyed grid | hmac | kind | id */
                memcpy(alt, p + 11 + 17, 15);
                memcpy(alt + 15, p + 11, 17);
                memcpy(alt + 32, p + 11 + 32, kl - 32);
                k.mv_data = alt;
            }
            if (p[1])
                rc = mdb_del(txn, dbi[p[0]], &k, NULL);
            else
                rc = mdb_put(txn, dbi[p[0]], &k, &v, p[2] ? MDB_APPEND : 0);
            if (rc && rc != MDB_NOTFOUND) {
                fprintf(stderr, "bench_store: bare put: %s\n", mdb_strerror(rc));
                exit(1);
            }
        }
        if ((rc = mdb_txn_commit(txn))) {
            fprintf(stderr, "bench_store: bare commit: %s\n", mdb_strerror(rc));
            exit(1);
        }
        *records += t->txn_records[x];
    }
    double secs = s_now() - t0;
    mdb_env_close(env);
    return secs;
}

/* Key and value bytes of the puts to database db in the trace, and their
 * count: what a table holds for the records, against the pages written. */
static uint64_t
s_trace_payload(const s_trace_t *t, int db, uint64_t *puts)
{
    uint64_t bytes = 0;
    *puts = 0;
    for (size_t off = 0; off < t->len;) {
        const uint8_t *p = t->buf + off;
        uint32_t kl, vl;
        memcpy(&kl, p + 3, 4);
        memcpy(&vl, p + 7, 4);
        off += 11 + kl + vl;
        if (p[0] == db && !p[1]) {
            bytes += kl + vl;
            (*puts)++;
        }
    }
    return bytes;
}

/* ---- Main ------------------------------------------------------------------------------ */

static const char *s_io;            /* the shim's counter file, NULL when not preloaded */

/* Bytes the process passed to write calls so far (0 without the shim). */
static uint64_t
s_io_bytes(void)
{
    gs_bench_iocount_t c;
    return s_io && gs_bench_iocount_read(s_io, &c) == 0 ? c.write_bytes : 0;
}

static void
s_rm(const char *dir)
{
    char p[1024];
    const char *names[] = { "data.mdb", "lock.mdb", "secret.key" };
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

static gs_store_t *
s_open(const char *dir, int no_sync)
{
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.map_size = S_MAP;
    o.map_max = S_MAP;
    o.no_sync = no_sync;
    int err;
    gs_store_t *st = gs_store_new(dir, &o, &err);
    if (!st) {
        fprintf(stderr, "bench_store: open %s: %s (%s)\n", dir, gs_store_strerror(err),
                gs_store_errdetail());
        exit(1);
    }
    return st;
}

static void
s_report(const char *label, const s_run_t *run, double bare_all, double bare_rec,
         uint64_t nrec)
{
    double store_rate = (double) run->records / run->secs;
    double all_rate = (double) nrec / bare_all;
    printf("%-22s %10.0f %14.0f %7.1f%%", label, store_rate, all_rate,
           100.0 * store_rate / all_rate);
    if (bare_rec > 0) {
        double rec_rate = (double) nrec / bare_rec;
        printf(" %14.0f %7.1f%%", rec_rate, 100.0 * store_rate / rec_rate);
    } else {
        printf(" %14s %8s", "-", "-");
    }
    printf("   (%llu records, %llu transactions)\n", (unsigned long long) run->records,
           (unsigned long long) run->txns);
    printf("  %s: prepare %.2f us/record (frontend thread); apply %.2f us/record "
           "(writer thread, %.2f us of it CPU); both on one thread %.0f records/s\n", label,
           1e6 * run->prep_secs / (double) run->records, 1e6 * run->secs / (double) run->records,
           1e6 * run->cpu_secs / (double) run->records,
           (double) run->records / (run->secs + run->prep_secs));
    fflush(stdout);
}

int
main(int argc, char **argv)
{
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    uint32_t batch = 1000;
    uint64_t prefill = 5000000, limit = 0;
    int breakdown = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            base = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = (uint32_t) strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--prefill") && i + 1 < argc)
            prefill = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--limit") && i + 1 < argc)
            limit = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--breakdown"))
            breakdown = 1;
        else if (!strcmp(argv[i], "--persons-by-cell"))
            s_persons_by_cell = 1;
        else if (!strcmp(argv[i], "--upload") && i + 1 < argc)
            s_up_max = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--interleave") && i + 1 < argc)
            s_interleave = (uint32_t) strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--dir D] [--batch N] [--prefill N] [--limit N] "
                    "[--breakdown] [--persons-by-cell]\n"
                    "  --batch    records per transaction (default 1000)\n"
                    "  --prefill  records in the pre-filled case, 0 to skip (default 5000000)\n"
                    "  --limit    measured records (default: the whole district)\n"
                    "  --breakdown  also replay each database alone (empty case)\n"
                    "  --persons-by-cell  what-if: bare loops key the person index by\n"
                    "             grid first (the store itself is unchanged)\n"
                    "  --upload   records per upload (default and most %d)\n"
                    "  --interleave N  N devices take turns upload by upload, each on\n"
                    "             every Nth grid, as bench_load's connections (default 1)\n"
                    "Under the write-counting shim (LD_PRELOAD=libbench_iocount.so,\n"
                    "GS_BENCH_IOCOUNT=FILE) it also prints the bytes written per record\n"
                    "of the empty case and of each database replayed alone.\n",
                    argv[0], S_UP_MAX);
            return 2;
        }
    }
    if (s_up_max == 0 || s_up_max > S_UP_MAX || s_interleave == 0 || s_interleave > S_IL_MAX) {
        fprintf(stderr, "bench_store: --upload 1..%d, --interleave 1..%d\n", S_UP_MAX,
                S_IL_MAX);
        return 2;
    }
    if (batch == 0)
        batch = 1000;
    s_io = getenv("GS_BENCH_IOCOUNT");
    gs_bench_iocount_t probe;
    if (s_io && gs_bench_iocount_read(s_io, &probe) != 0)
        s_io = NULL;
    char root[1024];
    snprintf(root, sizeof root, "%s/bench_store.XXXXXX", base);
    if (!mkdtemp(root)) {
        perror("bench_store: mkdtemp");
        return 1;
    }
    char d_store[1100], d_bare[1100], d_rec[1100];
    snprintf(d_store, sizeof d_store, "%s/store", root);
    snprintf(d_bare, sizeof d_bare, "%s/bare", root);
    snprintf(d_rec, sizeof d_rec, "%s/bare-records", root);

    gs_gen_t *gen = gs_gen_new(NULL);
    if (!gen) {
        fprintf(stderr, "bench_store: generator\n");
        return 1;
    }
    printf("bench_store: district 440305 (%u grids, %u households, %u rental units), "
           "transactions of ~%u records, uploads of <= %d records, full sync\n",
           gs_gen_grid_count(gen), gs_gen_household_count(gen), gs_gen_rental_count(gen),
           batch, S_UP_MAX);
    printf("%-22s %10s %14s %8s %14s %8s\n", "case", "store/s", "bare all/s", "ratio",
           "bare rec/s", "ratio");
    static s_trace_t t;

    uint64_t expect = limit ? limit : (uint64_t) gs_gen_household_count(gen) +
                                      gs_gen_rental_count(gen);
    s_trace_reserve(&t, expect);

    /* ---- empty store */
    gs_store_t *st = s_open(d_store, 0);
    gs_store_debug_trace(st, s_trace_fn, &t);
    uint64_t io0 = s_io_bytes();
    s_run_t run = s_apply_district(st, gen, batch, limit, &t, "empty");
    uint64_t io1 = s_io_bytes();
    gs_store_debug_trace(st, NULL, NULL);
    gs_store_destroy(&st);
    mkdir(d_bare, 0700);
    mkdir(d_rec, 0700);
    uint64_t nrec = 0;
    double all = s_bare(d_bare, &t, -1, &nrec);
    double rec = s_bare(d_rec, &t, s_db_index("records"), &nrec);
    s_report("empty store", &run, all, rec, nrec);
    if (s_io)
        printf("  empty store: %.0f bytes written per record, %.2f records per transaction\n",
               (double) (io1 - io0) / (double) run.records,
               (double) run.records / (double) run.txns);
    if (breakdown) {
        /* which databases the time goes to: each replayed alone */
        for (size_t i = 0; i < S_NDB; i++) {
            char d[1200];
            snprintf(d, sizeof d, "%s/bare-%s", root, s_dbs[i]);
            mkdir(d, 0700);
            uint64_t n;
            uint64_t b0 = s_io_bytes();
            double secs = s_bare(d, &t, (int) i, &n);
            uint64_t b1 = s_io_bytes();
            printf("  bare %-12s alone: %10.0f records/s (%.2f s)", s_dbs[i],
                   (double) n / secs, secs);
            if (s_io)
                printf(", %.0f bytes written per record (%.1f pages per transaction)",
                       (double) (b1 - b0) / (double) n,
                       (double) (b1 - b0) / 4096.0 / (double) t.n_txn);
            uint64_t puts, pl = s_trace_payload(&t, (int) i, &puts);
            printf(", payload %.0f bytes per record in %.2f puts\n", (double) pl / (double) n,
                   (double) puts / (double) n);
            s_rm(d);
        }
    }
    s_rm(d_store);
    s_rm(d_bare);
    s_rm(d_rec);
    s_trace_reset(&t);

    /* ---- pre-filled store */
    if (prefill) {
        gs_gen_opts_t go;
        gs_gen_opts_init(&go);
        go.district = "440306";
        go.streets = 40;
        go.households = (uint32_t) (prefill * 73 / 100);
        go.rental_buildings = (uint32_t) ((prefill - go.households) / 4 + 1);
        go.grids = (uint32_t) (prefill / 400 < 40 ? 40 : prefill / 400 > 15000 ? 15000
                                                                                  : prefill / 400);
        gs_gen_t *pgen = gs_gen_new(&go);
        if (!pgen) {
            fprintf(stderr, "bench_store: pre-fill generator\n");
            return 1;
        }
        fprintf(stderr, "pre-filling %llu records with MDB_NOSYNC (benchmark only)...\n",
                (unsigned long long) prefill);
        st = s_open(d_store, 1);
        double t0 = s_now();
        s_run_t pre = s_apply_district(st, pgen, 5000, prefill, NULL, "prefill");
        fprintf(stderr, "pre-filled %llu records in %.0f s\n",
                (unsigned long long) pre.records, s_now() - t0);
        gs_store_destroy(&st);
        gs_gen_destroy(&pgen);
        st = s_open(d_store, 0);
        int rc = gs_store_backup(st, d_bare);
        if (rc) {
            fprintf(stderr, "bench_store: copy for the bare loop: %s\n", gs_store_strerror(rc));
            return 1;
        }
        gs_store_debug_trace(st, s_trace_fn, &t);
        run = s_apply_district(st, gen, batch, limit, &t, "full");
        gs_store_debug_trace(st, NULL, NULL);
        gs_store_destroy(&st);
        all = s_bare(d_bare, &t, -1, &nrec);
        char label[64];
        snprintf(label, sizeof label, "%lluk pre-filled", (unsigned long long) (pre.records / 1000));
        s_report(label, &run, all, -1, nrec);
        s_rm(d_store);
        s_rm(d_bare);
    }
    rmdir(root);
    gs_gen_destroy(&gen);
    free(t.buf);
    free(t.txn_end);
    free(t.txn_records);
    return 0;
}

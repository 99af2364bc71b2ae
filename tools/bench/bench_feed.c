/*
 * bench_feed: how fast committed changes reach a district subscriber, and
 * how fast a subscriber that was away catches up.
 *
 * Where it sits: a client of a running gridsyncd, started by
 * tools/bench/run_bench.sh. Two modes:
 *
 * latency: --devices threads upload fresh records of one district (gs_gen,
 *   --district, a code no other run uses) at a steady offered --rate
 *   (records/s, paced by a shared schedule, not by the acks), while a
 *   gs_sub subscriber thread in the same process follows that district on
 *   the live feed. For every seq the ack carried we know, on one
 *   CLOCK_MONOTONIC: when the upload was sent, when its ack arrived, and
 *   when the subscriber received the event. Events carry committed_at in
 *   whole milliseconds, too coarse for this, so the commit instant is
 *   bounded from the client side instead: the broker sends acks only after
 *   the commit returns, and hands the events to its publisher at the same
 *   point. "commit -> subscriber" is reported as event receive time minus
 *   ack receive time (a slight under-estimate: it leaves out the ack's own
 *   trip from the writer to the client, tens of microseconds on loopback;
 *   negative when the event wins the race), and, as an upper bound, event
 *   receive time minus send time (which includes queueing and the fsync).
 *   The load starts --warmup seconds (default 1) before the timed
 *   --seconds: the first fraction of a second on fresh stores, a fresh
 *   stream and cold processes is slower at every stage, and over a short
 *   run it alone would set the 99th percentile. Events sent during the
 *   warm-up are reported apart (feed.warmup_*), not hidden.
 *
 * catchup: a subscriber resumes --behind events behind the head for
 *   --prefix: it pulls from the sync service, page after page
 *   (gs_client_sync_pages: the next page is asked for before this one is
 *   decoded), decoding every event, until it reaches the head it saw at the
 *   start. Reports events/s. With --sub-feed EP (the broker's feed) the
 *   subscriber is the client library's gs_sub instead, as gridfeed and
 *   district systems follow: gs_sub_new catches up, then every event is
 *   taken with gs_sub_next up to that head ("catchup_sub.*").
 *
 * latency with --city EP: the subscriber follows a city replica of the
 *   district instead (--feed is then the replica's feed and --city its
 *   upload endpoint, for its head and sync), so the figure is district
 *   commit -> city subscriber, across the bridge, NATS JetStream and the
 *   replica's apply. The replica's events have seqs of its own; each is
 *   matched with the district's ack by its origin_seq.
 *
 * Output: "feed.*" or "catchup.*" key=value lines.
 *
 * Usage: bench_feed latency --upload EP --feed EP [--district CODE]
 *                   [--rate N] [--seconds S] [--warmup S] [--devices N] [--batch N]
 *                   [--city EP]
 *        bench_feed catchup --upload EP --prefix P --behind N [--sub-feed EP]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "gs_arena.h"
#include "gs_client.h"
#include "gs_gen.h"

/* ---- latency ------------------------------------------------------------------------ */

typedef struct s_lat {
    const char *upload_ep, *feed_ep;
    const char *city_ep;            /* a replica's upload endpoint, or NULL */
    uint64_t sub_base;              /* the subscriber's start (the replica's head) */
    atomic_ullong origin_seen;      /* highest origin_seq the subscriber got */
    const gs_gen_t *gen;
    const char *district;
    double rate;                    /* offered records/s */
    double seconds;                 /* length of the timed load */
    double warmup;                  /* seconds of load before it, not timed */
    uint32_t batch;                 /* records per upload */
    uint64_t base;                  /* head seq before the load */
    size_t cap;                     /* slots in the per-seq arrays */
    int64_t *t_send, *t_ack, *t_recv; /* per seq - base - 1, microseconds; 0 = none */
    atomic_uint next_grid;
    atomic_ullong scheduled;        /* records scheduled so far */
    atomic_ullong acked;            /* records acked */
    atomic_ullong max_seq;          /* highest seq acked */
    atomic_int stop_load;           /* the load is over */
    atomic_int sub_ready;           /* the subscriber sees the live feed */
    atomic_int sub_done;            /* the subscriber should stop */
    atomic_int failed;
    int64_t t0, t_timed, t_end;     /* load start, end of the warm-up, load end */
    double *ack_lat;                /* per upload, ms */
    size_t n_ack_lat;
    pthread_mutex_t lock;
    gs_sub_stats_t sub_stats;
    uint64_t received;              /* events the subscriber got */
} s_lat_t;

static void *
s_sub_main(void *arg)
{
    s_lat_t *L = arg;
    gs_sub_opts_t so;
    gs_sub_opts_init(&so);
    const char *pfx[1] = { L->district };
    int err = 0;
    gs_sub_t *sub = gs_sub_new(L->feed_ep, L->city_ep ? L->city_ep : L->upload_ep, pfx, 1, NULL,
                               L->city_ep ? L->sub_base : L->base, &so, &err);
    if (!sub) {
        fprintf(stderr, "bench_feed: subscriber: %s\n", gs_client_strerror(err));
        atomic_store(&L->failed, 1);
        atomic_store(&L->sub_ready, 1);
        return NULL;
    }
    /* a heartbeat proves the subscription reached the broker's XPUB */
    int64_t give_up = gs_bench_now_us() + 10000000;
    for (;;) {
        Gridsync__V1__ChangeEvent *ev = NULL;
        int rc = gs_sub_next(sub, 100, &ev);
        if (ev)
            gridsync__v1__change_event__free_unpacked(ev, NULL);
        gs_sub_stats_t st;
        gs_sub_stats(sub, &st);
        if (st.heartbeats > 0 || rc < 0 || gs_bench_now_us() > give_up)
            break;
    }
    atomic_store(&L->sub_ready, 1);
    int64_t idle_deadline = 0;
    for (;;) {
        Gridsync__V1__ChangeEvent *ev = NULL;
        int rc = gs_sub_next(sub, 50, &ev);
        int64_t now = gs_bench_now_us();
        if (rc < 0) {
            fprintf(stderr, "bench_feed: subscriber: %s\n", gs_client_strerror(rc));
            atomic_store(&L->failed, 1);
            break;
        }
        if (ev) {
            /* a replica's event is the district's event origin_seq */
            uint64_t seq = L->city_ep ? ev->origin_seq : ev->seq;
            if (seq > L->base && seq - L->base - 1 < L->cap)
                L->t_recv[seq - L->base - 1] = now;
            if (L->city_ep && seq > atomic_load(&L->origin_seen))
                atomic_store(&L->origin_seen, seq);
            L->received++;
            gridsync__v1__change_event__free_unpacked(ev, NULL);
        }
        if (atomic_load(&L->sub_done)) {
            uint64_t want = atomic_load(&L->max_seq);
            uint64_t have = L->city_ep ? atomic_load(&L->origin_seen) : gs_sub_position(sub, 0);
            if (have >= want)
                break;
            if (!idle_deadline)
                idle_deadline = now + 10000000;
            if (now > idle_deadline) {
                fprintf(stderr, "bench_feed: subscriber stopped at seq %llu of %llu\n",
                        (unsigned long long) have, (unsigned long long) want);
                break;
            }
        }
    }
    gs_sub_stats(sub, &L->sub_stats);
    gs_sub_destroy(&sub);
    return NULL;
}

static void *
s_device_main(void *arg)
{
    s_lat_t *L = arg;
    gs_client_opts_t co;
    gs_client_opts_init(&co);
    gs_client_t *cli = gs_client_new(L->upload_ep, &co);
    gs_arena_t *a = gs_arena_new(1 << 20);
    Gridsync__V1__Record **recs = calloc(L->batch, sizeof *recs);
    if (!cli || !a || !recs) {
        atomic_store(&L->failed, 1);
        return NULL;
    }
    uint64_t upload_no = 0;
    char dev[64], uid[96];
    while (!atomic_load(&L->stop_load) && !atomic_load(&L->failed)) {
        uint32_t g = atomic_fetch_add(&L->next_grid, 1);
        if (g >= gs_gen_grid_count(L->gen))
            break;
        const char *code = gs_gen_grid_code(L->gen, g);
        snprintf(dev, sizeof dev, "dev-%s", code);
        uint32_t hf, hn, rf, rn;
        gs_gen_grid_households(L->gen, g, &hf, &hn);
        gs_gen_grid_rentals(L->gen, g, &rf, &rn);
        uint32_t total = hn + rn;
        for (uint32_t at = 0; at < total && !atomic_load(&L->stop_load); at += L->batch) {
            gs_arena_reset(a);
            uint32_t k = total - at < L->batch ? total - at : L->batch;
            for (uint32_t j = 0; j < k; j++) {
                uint32_t x = at + j;
                recs[j] = x < hn ? gs_gen_household(L->gen, hf + x, a)
                                 : gs_gen_rental(L->gen, rf + (x - hn), a);
                if (!recs[j]) {
                    atomic_store(&L->failed, 1);
                    break;
                }
            }
            /* this upload's place in the schedule */
            uint64_t before = atomic_fetch_add(&L->scheduled, k);
            int64_t when = L->t0 + (int64_t) ((double) before / L->rate * 1e6);
            if (when >= L->t_end) {
                atomic_store(&L->stop_load, 1);
                break;
            }
            gs_bench_sleep_until(when);
            Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
            snprintf(uid, sizeof uid, "lat-%s-%llu", code, (unsigned long long) ++upload_no);
            up.device_id = dev;
            up.upload_id = uid;
            up.records = recs;
            up.n_records = k;
            Gridsync__V1__Ack *ack = NULL;
            gs_client_error_t cerr;
            int64_t ts = gs_bench_now_us();
            int rc = gs_client_upload(cli, &up, &ack, &cerr);
            int64_t ta = gs_bench_now_us();
            if (rc) {
                fprintf(stderr, "bench_feed: upload: %s %s\n", gs_client_strerror(rc),
                        cerr.message);
                atomic_store(&L->failed, 1);
                break;
            }
            for (size_t i = 0; i < ack->n_results; i++) {
                uint64_t seq = ack->results[i]->seq;
                if (seq > L->base && seq - L->base - 1 < L->cap) {
                    L->t_send[seq - L->base - 1] = ts;
                    L->t_ack[seq - L->base - 1] = ta;
                }
                uint64_t m = atomic_load(&L->max_seq);
                while (seq > m && !atomic_compare_exchange_weak(&L->max_seq, &m, seq))
                    ;
            }
            atomic_fetch_add(&L->acked, ack->n_results);
            gridsync__v1__ack__free_unpacked(ack, NULL);
            pthread_mutex_lock(&L->lock);
            if (ts >= L->t_timed)
                L->ack_lat[L->n_ack_lat++] = (double) (ta - ts) / 1000.0;
            pthread_mutex_unlock(&L->lock);
        }
    }
    free(recs);
    gs_arena_destroy(&a);
    gs_client_destroy(&cli);
    return NULL;
}

static int
s_head(const char *upload_ep, const char *prefix, uint64_t *head)
{
    gs_client_t *cli = gs_client_new(upload_ep, NULL);
    if (!cli)
        return -1;
    const char *pfx[1] = { prefix };
    Gridsync__V1__SyncResponse *r = NULL;
    gs_client_error_t err;
    int rc = gs_client_sync(cli, pfx, 1, 0, 1, 0, &r, &err);
    if (rc == 0) {
        *head = r->head_seq;
        gridsync__v1__sync_response__free_unpacked(r, NULL);
    } else {
        fprintf(stderr, "bench_feed: sync: %s %s\n", gs_client_strerror(rc), err.message);
    }
    gs_client_destroy(&cli);
    return rc ? -1 : 0;
}

static void
s_report_ms(const char *prefix, const char *name, double *v, size_t n)
{
    char key[64];
    snprintf(key, sizeof key, "%s_p50_ms", name);
    gs_bench_kv(prefix, key, "%.3f", gs_bench_quantile(v, n, 0.50));
    snprintf(key, sizeof key, "%s_p99_ms", name);
    gs_bench_kv(prefix, key, "%.3f", gs_bench_quantile(v, n, 0.99));
    snprintf(key, sizeof key, "%s_max_ms", name);
    gs_bench_kv(prefix, key, "%.3f", n ? v[n - 1] : 0.0);
}

static int
s_latency(int argc, char **argv)
{
    s_lat_t L;
    memset(&L, 0, sizeof L);
    L.district = "440303";
    L.rate = 10000;
    L.seconds = 10;
    L.warmup = 1;
    L.batch = 50;
    uint32_t devices = 8;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return 2;
        if (!strcmp(a, "--upload"))
            L.upload_ep = v;
        else if (!strcmp(a, "--feed"))
            L.feed_ep = v;
        else if (!strcmp(a, "--district"))
            L.district = v;
        else if (!strcmp(a, "--rate"))
            L.rate = strtod(v, NULL);
        else if (!strcmp(a, "--seconds"))
            L.seconds = strtod(v, NULL);
        else if (!strcmp(a, "--devices"))
            devices = (uint32_t) strtoul(v, NULL, 10);
        else if (!strcmp(a, "--batch"))
            L.batch = (uint32_t) strtoul(v, NULL, 10);
        else if (!strcmp(a, "--city"))
            L.city_ep = v;
        else if (!strcmp(a, "--warmup"))
            L.warmup = strtod(v, NULL);
        else
            return 2;
        i++;
    }
    if (!L.upload_ep || !L.feed_ep || !(L.rate > 0) || !(L.seconds > 0) || !(L.warmup >= 0) ||
        devices < 1 ||
        devices > 256 || L.batch < 1 || L.batch > 1000)
        return 2;
    gs_gen_opts_t go;
    gs_gen_opts_init(&go);
    go.district = L.district;
    gs_gen_t *gen = gs_gen_new(&go);
    if (!gen || s_head(L.upload_ep, "", &L.base) ||
        (L.city_ep && s_head(L.city_ep, "", &L.sub_base)))
        return 1;
    L.gen = gen;
    L.cap = (size_t) (L.rate * (L.warmup + L.seconds) * 1.5) + 100000;
    L.t_send = calloc(L.cap, sizeof *L.t_send);
    L.t_ack = calloc(L.cap, sizeof *L.t_ack);
    L.t_recv = calloc(L.cap, sizeof *L.t_recv);
    L.ack_lat = calloc(L.cap, sizeof *L.ack_lat);
    pthread_mutex_init(&L.lock, NULL);
    if (!L.t_send || !L.t_ack || !L.t_recv || !L.ack_lat)
        return 1;

    pthread_t sub_tid;
    pthread_create(&sub_tid, NULL, s_sub_main, &L);
    while (!atomic_load(&L.sub_ready)) {
        struct timespec ts = { 0, 10000000 };
        nanosleep(&ts, NULL);
    }
    L.t0 = gs_bench_now_us() + 20000;
    L.t_timed = L.t0 + (int64_t) (L.warmup * 1e6);
    L.t_end = L.t_timed + (int64_t) (L.seconds * 1e6);
    pthread_t *tids = calloc(devices, sizeof *tids);
    for (uint32_t i = 0; i < devices; i++)
        pthread_create(&tids[i], NULL, s_device_main, &L);
    for (uint32_t i = 0; i < devices; i++)
        pthread_join(tids[i], NULL);
    double load_secs = (double) (gs_bench_now_us() - L.t0) / 1e6;
    atomic_store(&L.sub_done, 1);
    pthread_join(sub_tid, NULL);

    /* latencies over every seq with all three times; those sent during the
     * warm-up apart */
    double *by_ack = malloc(L.cap * sizeof *by_ack), *by_send = malloc(L.cap * sizeof *by_send);
    double *warm = malloc(L.cap * sizeof *warm);
    size_t n = 0, n_warm = 0, missing = 0;
    uint64_t top = atomic_load(&L.max_seq);
    for (size_t i = 0; i < L.cap && L.base + i + 1 <= top; i++) {
        if (!L.t_ack[i])
            continue;
        if (!L.t_recv[i]) {
            missing++;
            continue;
        }
        if (L.t_send[i] < L.t_timed) {
            warm[n_warm++] = (double) (L.t_recv[i] - L.t_ack[i]) / 1000.0;
            continue;
        }
        by_ack[n] = (double) (L.t_recv[i] - L.t_ack[i]) / 1000.0;
        by_send[n] = (double) (L.t_recv[i] - L.t_send[i]) / 1000.0;
        n++;
    }
    uint64_t acked = atomic_load(&L.acked);
    gs_bench_kv("feed", "offered_per_s", "%.0f", L.rate);
    gs_bench_kv("feed", "acked_records", "%llu", (unsigned long long) acked);
    gs_bench_kv("feed", "achieved_per_s", "%.0f", load_secs > 0 ? (double) acked / load_secs : 0);
    gs_bench_kv("feed", "events_timed", "%zu", n);
    gs_bench_kv("feed", "events_missing", "%zu", missing);
    gs_bench_kv("feed", "live", "%llu", (unsigned long long) L.sub_stats.live);
    gs_bench_kv("feed", "pulled", "%llu", (unsigned long long) L.sub_stats.pulled);
    gs_bench_kv("feed", "gaps", "%llu", (unsigned long long) L.sub_stats.gaps);
    s_report_ms("feed", "commit_sub", by_ack, n);
    s_report_ms("feed", "send_sub", by_send, n);
    s_report_ms("feed", "ack", L.ack_lat, L.n_ack_lat);
    gs_bench_kv("feed", "warmup_s", "%g", L.warmup);
    gs_bench_kv("feed", "warmup_events", "%zu", n_warm);
    s_report_ms("feed", "warmup_commit_sub", warm, n_warm);
    int failed = atomic_load(&L.failed) || missing > 0 || n == 0;
    free(warm);
    free(by_ack);
    free(by_send);
    free(L.t_send);
    free(L.t_ack);
    free(L.t_recv);
    free(L.ack_lat);
    free(tids);
    pthread_mutex_destroy(&L.lock);
    gs_gen_destroy(&gen);
    return failed ? 1 : 0;
}

/* ---- catch-up -------------------------------------------------------------------------- */

/* The catch-up's count of what it was given. */
typedef struct s_cu {
    uint64_t head;                  /* the head at the start: events past it are not counted */
    uint64_t last;                  /* seq of the last event counted */
    uint64_t events;                /* events counted */
    uint64_t pages;                 /* pages received */
} s_cu_t;

/* One page: every event decoded; those after the last one and up to the
 * starting head are counted. Stops once the starting head is reached. */
static int
s_cu_page(void *arg, const Gridsync__V1__SyncResponse *page)
{
    s_cu_t *c = arg;
    c->pages++;
    for (size_t i = 0; i < page->n_events; i++) {
        uint64_t seq = page->events[i]->seq;
        if (seq > c->last && seq <= c->head) {
            c->events++;
            c->last = seq;
        }
    }
    if (page->next_seq > c->last)
        c->last = page->next_seq;
    return c->last >= c->head ? 1 : 0;
}

/* The catch-up through the client library's subscriber: gs_sub_new
 * catches up from since (subscribed first, then pulled), and every event
 * is taken with gs_sub_next until its position reaches head. */
static int
s_catchup_sub(const char *upload_ep, const char *feed_ep, const char *prefix, uint64_t since,
              uint64_t head, s_cu_t *c, double *secs)
{
    const char *pfx[1] = { prefix };
    int err = 0;
    int64_t t0 = gs_bench_now_us();
    gs_sub_t *sub = gs_sub_new(feed_ep, upload_ep, pfx, 1, NULL, since, NULL, &err);
    if (!sub) {
        fprintf(stderr, "bench_feed: subscriber: %s\n", gs_client_strerror(err));
        return -1;
    }
    int rc = 0;
    while (c->last < head) {
        Gridsync__V1__ChangeEvent *ev = NULL;
        rc = gs_sub_next(sub, 10000, &ev);
        if (rc)
            break;
        if (ev->seq > c->last && ev->seq <= head)
            c->events++;
        c->last = ev->seq > c->last ? ev->seq : c->last;
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }
    *secs = (double) (gs_bench_now_us() - t0) / 1e6;
    gs_sub_destroy(&sub);
    if (rc) {
        fprintf(stderr, "bench_feed: subscriber stopped at seq %llu of %llu: %s\n",
                (unsigned long long) c->last, (unsigned long long) head,
                rc == 1 ? "no event for 10 s" : gs_client_strerror(rc));
        return -1;
    }
    return 0;
}

static int
s_catchup(int argc, char **argv)
{
    const char *upload_ep = NULL, *prefix = NULL, *feed_ep = NULL;
    uint64_t behind = 1000000;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return 2;
        if (!strcmp(a, "--upload"))
            upload_ep = v;
        else if (!strcmp(a, "--prefix"))
            prefix = v;
        else if (!strcmp(a, "--behind"))
            behind = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--sub-feed"))
            feed_ep = v;
        else
            return 2;
        i++;
    }
    if (!upload_ep || !prefix)
        return 2;
    uint64_t head = 0;
    if (s_head(upload_ep, prefix, &head))
        return 1;
    uint64_t since = head > behind ? head - behind : 0;
    if (feed_ep) {
        s_cu_t c = { .head = head, .last = since };
        double secs = 0;
        if (s_catchup_sub(upload_ep, feed_ep, prefix, since, head, &c, &secs))
            return 1;
        gs_bench_kv("catchup_sub", "since", "%llu", (unsigned long long) since);
        gs_bench_kv("catchup_sub", "head", "%llu", (unsigned long long) head);
        gs_bench_kv("catchup_sub", "events", "%llu", (unsigned long long) c.events);
        gs_bench_kv("catchup_sub", "seconds", "%.3f", secs);
        gs_bench_kv("catchup_sub", "events_per_s", "%.0f",
                    secs > 0 ? (double) c.events / secs : 0);
        return 0;
    }
    gs_client_t *cli = gs_client_new(upload_ep, NULL);
    if (!cli)
        return 1;
    /* pages decoded into one arena (gs_client_sync_pages), a block that
     * holds a whole page, so a reset leaves nothing to free */
    gs_arena_t *arena = gs_arena_new(32u << 20);
    if (!arena) {
        gs_client_destroy(&cli);
        return 1;
    }
    const char *pfx[1] = { prefix };
    s_cu_t c = { .head = head, .last = since };
    int64_t t0 = gs_bench_now_us();
    gs_client_error_t err;
    int rc = since < head ? gs_client_sync_pages(cli, pfx, 1, since, 0, 0, arena, s_cu_page, &c,
                                                 NULL, &err)
                          : 0;
    double secs = (double) (gs_bench_now_us() - t0) / 1e6;
    gs_arena_destroy(&arena);
    gs_client_destroy(&cli);
    if (rc < 0) {
        fprintf(stderr, "bench_feed: sync: %s %s\n", gs_client_strerror(rc), err.message);
        return 1;
    }
    gs_bench_kv("catchup", "prefix", "%s", prefix);
    gs_bench_kv("catchup", "since", "%llu", (unsigned long long) since);
    gs_bench_kv("catchup", "head", "%llu", (unsigned long long) head);
    gs_bench_kv("catchup", "events", "%llu", (unsigned long long) c.events);
    gs_bench_kv("catchup", "requests", "%llu", (unsigned long long) c.pages);
    gs_bench_kv("catchup", "seconds", "%.3f", secs);
    gs_bench_kv("catchup", "events_per_s", "%.0f", secs > 0 ? (double) c.events / secs : 0);
    return c.last >= head ? 0 : 1;
}

int
main(int argc, char **argv)
{
    int rc = 2;
    if (argc >= 2 && !strcmp(argv[1], "latency"))
        rc = s_latency(argc - 2, argv + 2);
    else if (argc >= 2 && !strcmp(argv[1], "catchup"))
        rc = s_catchup(argc - 2, argv + 2);
    if (rc == 2)
        fprintf(stderr,
                "usage: bench_feed latency --upload EP --feed EP [--district CODE] [--rate N]\n"
                "                  [--seconds S] [--devices N] [--batch N] [--city EP]\n"
                "       bench_feed catchup --upload EP --prefix P [--behind N] [--sub-feed EP]\n");
    return rc;
}

/*
 * bench_subs: light live-feed subscribers, many in one process, each on a
 * prefix of its own, while bench_load ingests the district: what a
 * hundred followers cost the ingest and the broker's memory.
 *
 * Where it sits: run by tools/bench/run_bench.sh (section "Subscribers")
 * against the real gridsyncd in CURVE mode, next to bench_load on the same
 * fresh store. The subscribers are as light as a follower can be: one SUB
 * socket each, no sync service, no checkpoint, no JSON; each decodes what
 * it gets, counts events and checks their order. So the figure is the
 * broker's cost of having followers, not the followers' own.
 *
 * What it does, in order:
 *  1. Lays out the district exactly as bench_load does (gs_gen and the
 *     gs_sim plan without noise at --scale), picks --subs grids spread
 *     evenly over it and counts the records each grid gets: one UPSERT
 *     event each on a fresh store, so that is what its subscriber must
 *     receive, no more, no fewer.
 *  2. Opens one SUB socket per grid with the CURVE keys of --key (one key
 *     for all; a district's departments follow with one key), subscribes
 *     to the grid's 15-digit code and waits for the heartbeat a CURVE
 *     broker answers every new subscription with, so that every
 *     subscription is in place before the upload starts. Prints
 *     "subs.ready=1".
 *  3. Receives until every subscriber has all its events. Each event must
 *     be of its grid, with prev_seq at the grid level (the 15-digit level,
 *     index 6) equal to the seq it saw last (0 for the first), so each
 *     event arrives once, in order, without a gap. A wrong event, or no
 *     progress for --timeout-s, fails the bench.
 *
 * Output: "subs.*" key=value lines. Exit 0 every subscriber got exactly
 * its events in order, 1 otherwise, 2 bad arguments or setup failure.
 *
 * Usage: bench_subs --feed EP --key BUNDLE --subs N [--scale F]
 *                   [--timeout-s N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bench_util.h"
#include "gs_arena.h"
#include "gs_client.h"
#include "gs_client_int.h"
#include "gs_gen.h"
#include "gs_sim.h"

#define S_GRID_LEVEL 6              /* prev_seq index of a 15-digit prefix */

typedef struct s_sub {
    char grid[16];
    void *sock;
    uint64_t expect;                /* events this grid gets */
    uint64_t got;
    uint64_t last;                  /* seq of the last event */
    int ready;                      /* first heartbeat seen */
} s_sub_t;

/* Read one feed message from s. Returns 1 a heartbeat for its prefix, 2 an
 * event that passed the checks, 0 nothing (or another prefix's heartbeat),
 * -1 a wrong message. */
static int
s_recv(s_sub_t *s)
{
    char topic[32];
    int tl = zmq_recv(s->sock, topic, sizeof topic, ZMQ_DONTWAIT);
    if (tl < 0)
        return 0;
    int more = 0;
    size_t ml = sizeof more;
    zmq_getsockopt(s->sock, ZMQ_RCVMORE, &more, &ml);
    if (!more) {
        fprintf(stderr, "bench_subs: %s: a feed message of one frame\n", s->grid);
        return -1;
    }
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, s->sock, 0) < 0) {
        zmq_msg_close(&m);
        return -1;
    }
    Gridsync__V1__FeedMessage *fm =
        gridsync__v1__feed_message__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
    zmq_msg_close(&m);
    if (!fm) {
        fprintf(stderr, "bench_subs: %s: a feed message that does not decode\n", s->grid);
        return -1;
    }
    int rc = 0;
    if (fm->body_case == GRIDSYNC__V1__FEED_MESSAGE__BODY_HEARTBEAT) {
        rc = strcmp(fm->heartbeat->prefix, s->grid) == 0 ? 1 : 0;
    } else if (fm->body_case == GRIDSYNC__V1__FEED_MESSAGE__BODY_EVENT) {
        const Gridsync__V1__ChangeEvent *ev = fm->event;
        if (strcmp(ev->grid_code, s->grid) != 0) {
            fprintf(stderr, "bench_subs: %s: an event of grid %s\n", s->grid, ev->grid_code);
            rc = -1;
        } else if (ev->n_prev_seq <= S_GRID_LEVEL || ev->prev_seq[S_GRID_LEVEL] != s->last ||
                   ev->seq <= s->last) {
            fprintf(stderr, "bench_subs: %s: event %llu follows %llu, expected after %llu "
                    "(lost, repeated or out of order)\n", s->grid, (unsigned long long) ev->seq,
                    ev->n_prev_seq > S_GRID_LEVEL
                        ? (unsigned long long) ev->prev_seq[S_GRID_LEVEL] : 0ULL,
                    (unsigned long long) s->last);
            rc = -1;
        } else {
            s->last = ev->seq;
            s->got++;
            rc = 2;
        }
    }
    gridsync__v1__feed_message__free_unpacked(fm, NULL);
    return rc;
}

static void
s_usage(void)
{
    fprintf(stderr,
            "usage: bench_subs --feed EP --key BUNDLE --subs N [--scale F] [--timeout-s N]\n"
            "Follows N grids of the district bench_load uploads, one SUB socket each,\n"
            "and checks that each gets exactly its events, in order.\n");
}

int
main(int argc, char **argv)
{
    const char *feed = NULL, *key = NULL;
    uint32_t n = 0;
    double scale = 1;
    int timeout_s = 60;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--feed"))
            feed = v;
        else if (!strcmp(a, "--key"))
            key = v;
        else if (!strcmp(a, "--subs"))
            n = (uint32_t) strtoul(v, NULL, 10);
        else if (!strcmp(a, "--scale"))
            scale = strtod(v, NULL);
        else if (!strcmp(a, "--timeout-s"))
            timeout_s = atoi(v);
        else {
            s_usage();
            return 2;
        }
    }
    if (argc % 2 == 0 || !feed || !key || n < 1 || !(scale > 0) || timeout_s < 1) {
        s_usage();
        return 2;
    }
    gs_curve_keys_t keys;
    if (gs_curve_keys_load(&keys, key)) {
        fprintf(stderr, "bench_subs: %s is not an enrolment bundle with keys\n", key);
        return 2;
    }
    /* 1: the district and its plan, as bench_load lays them out */
    gs_gen_opts_t go;
    gs_gen_opts_init(&go);
    gs_bench_scale(&go, scale);
    gs_sim_opts_t so;
    gs_sim_opts_init(&so);
    so.organisations = 1;
    so.run_id = "load";
    so.retransmit_pct = so.lost_ack_pct = so.invalid_pct = 0;
    so.recollect_pct = so.new_id_pct = so.conflict_pct = 0;
    gs_gen_t *gen = gs_gen_new(&go);
    if (!gen) {
        fprintf(stderr, "bench_subs: cannot lay out the district\n");
        return 2;
    }
    uint32_t grids = gs_gen_grid_count(gen);
    if (n > grids) {
        fprintf(stderr, "bench_subs: %u subscribers, but the district has %u grids\n", n,
                grids);
        return 2;
    }
    s_sub_t *subs = calloc(n, sizeof *subs);
    zmq_pollitem_t *items = calloc(n, sizeof *items);
    gs_arena_t *a = gs_arena_new(1 << 20);
    if (!subs || !items || !a)
        return 2;
    uint64_t expect_all = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t g = (uint32_t) ((uint64_t) i * grids / n);
        snprintf(subs[i].grid, sizeof subs[i].grid, "%s", gs_gen_grid_code(gen, g));
        gs_arena_reset(a);
        gs_sim_upload_t *ups;
        size_t nu;
        if (gs_sim_plan_grid(&so, gen, g, a, &ups, &nu, NULL)) {
            fprintf(stderr, "bench_subs: cannot plan grid %u\n", g);
            return 2;
        }
        for (size_t u = 0; u < nu; u++)
            subs[i].expect += ups[u].up->n_records;
        expect_all += subs[i].expect;
    }
    gs_arena_destroy(&a);
    gs_gen_destroy(&gen);

    /* 2: subscribe, and wait for each subscription's first heartbeat */
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, (int) n + 16);
    for (uint32_t i = 0; i < n; i++) {
        void *s = zmq_socket(ctx, ZMQ_SUB);
        /* no receive bound: a lost event must be the broker's, not ours */
        int zero = 0;
        zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof zero);
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
        if (gs_curve_apply(s, &keys) || zmq_connect(s, feed) ||
            zmq_setsockopt(s, ZMQ_SUBSCRIBE, subs[i].grid, strlen(subs[i].grid))) {
            fprintf(stderr, "bench_subs: cannot subscribe at %s: %s\n", feed,
                    zmq_strerror(zmq_errno()));
            return 2;
        }
        subs[i].sock = s;
        items[i] = (zmq_pollitem_t) { s, 0, ZMQ_POLLIN, 0 };
    }
    int64_t deadline = gs_bench_now_us() + (int64_t) timeout_s * 1000000;
    uint32_t waiting = n;
    while (waiting > 0) {
        if (gs_bench_now_us() > deadline) {
            fprintf(stderr, "bench_subs: %u subscriptions got no heartbeat within %d s (key "
                    "not enrolled for the district, or the broker not in CURVE mode?)\n",
                    waiting, timeout_s);
            return 1;
        }
        if (zmq_poll(items, (int) n, 200) < 0)
            return 1;
        for (uint32_t i = 0; i < n; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            int rc;
            while ((rc = s_recv(&subs[i])) != 0) {
                if (rc < 0)
                    return 1;
                if (rc == 1 && !subs[i].ready) {
                    subs[i].ready = 1;
                    waiting--;
                }
            }
        }
    }
    printf("subs.ready=1\n");
    fflush(stdout);

    /* 3: until every subscriber has all its events */
    double cpu0 = gs_bench_self_cpu_s();
    int64_t first_us = 0, last_us = 0, progress = gs_bench_now_us();
    uint64_t got_all = 0, more = 0;
    while (got_all < expect_all) {
        if (zmq_poll(items, (int) n, 200) < 0)
            return 1;
        int64_t now = gs_bench_now_us();
        for (uint32_t i = 0; i < n; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            int rc;
            while ((rc = s_recv(&subs[i])) != 0) {
                if (rc < 0)
                    return 1;
                if (rc != 2)
                    continue;
                if (subs[i].got > subs[i].expect)
                    more++;
                else
                    got_all++;
                if (!first_us)
                    first_us = now;
                last_us = progress = now;
            }
        }
        if (more) {
            fprintf(stderr, "bench_subs: more events than records uploaded to a grid\n");
            return 1;
        }
        if (now - progress > (int64_t) timeout_s * 1000000) {
            fprintf(stderr, "bench_subs: no event for %d s with %llu of %llu received\n",
                    timeout_s, (unsigned long long) got_all, (unsigned long long) expect_all);
            return 1;
        }
    }
    double cpu = gs_bench_self_cpu_s() - cpu0;
    gs_bench_kv("subs", "subscribers", "%u", n);
    gs_bench_kv("subs", "events", "%llu", (unsigned long long) got_all);
    gs_bench_kv("subs", "events_per_subscriber", "%.1f", (double) got_all / n);
    gs_bench_kv("subs", "seconds", "%.3f", (double) (last_us - first_us) / 1e6);
    gs_bench_kv("subs", "cpu_s", "%.3f", cpu);
    for (uint32_t i = 0; i < n; i++)
        zmq_close(subs[i].sock);
    zmq_ctx_term(ctx);
    free(items);
    free(subs);
    return 0;
}

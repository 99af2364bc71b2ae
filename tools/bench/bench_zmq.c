/*
 * bench_zmq: the bare ZeroMQ limit for gridsim's traffic. A DEALER -> ROUTER
 * loop over tcp loopback carrying exactly the bytes of gridsim's uploads
 * (packed Request messages, one frame each, as gs_client sends them) and
 * answering each with reply bytes the size gridsyncd's acks would have
 * (a Reply holding the Ack of the upload's expected results). No decoding,
 * no validation, no storage: what the transport alone allows.
 *
 * Where it sits: one of the two "raw limits" of the benchmark
 * (tools/bench/run_bench.sh); end-to-end ingest is reported as a fraction
 * of the lower of this and the bare LMDB loop.
 *
 * Shape: every message of the gs_sim plan (each planned upload, plus the
 * second sends of retransmissions and lost acks) is packed up front. The
 * ROUTER thread answers every request at once. The main thread drives
 * --dealers DEALER sockets (as many connections as gridsim's devices), each
 * with up to --window requests in flight, and counts records carried per
 * second of wall time. The message list is sent --passes times (default:
 * as often as it takes to run for at least --min-seconds, 2 by default), so
 * that a short list still gives a stable rate.
 *
 * Output: "zmq.*" key=value lines.
 *
 * Usage: bench_zmq [--scale F] [--dealers N] [--window N] [--min-seconds S]
 *                  [--run-id ID]
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bench_util.h"
#include "gs_arena.h"
#include "gs_gen.h"
#include "gs_sim.h"

/* One message of the stream and its answer. */
typedef struct s_msg {
    uint8_t *req;                   /* packed Request */
    size_t req_len;
    uint8_t *rep;                   /* packed Reply */
    size_t rep_len;
    uint32_t records;               /* records in the upload */
} s_msg_t;

typedef struct s_server {
    void *ctx;
    char endpoint[128];             /* where the ROUTER listens */
    const s_msg_t *msgs;            /* answers, by request order */
    size_t n_msgs;
} s_server_t;

/* Pack what gridsim would send for every upload of the plan, and the reply
 * gridsyncd would give. */
static s_msg_t *
s_build(const gs_gen_t *gen, const gs_sim_opts_t *so, size_t *n_out, uint64_t *bytes_out)
{
    size_t cap = 1024, n = 0;
    s_msg_t *m = malloc(cap * sizeof *m);
    gs_arena_t *a = gs_arena_new(1 << 20);
    uint64_t bytes = 0, request_id = 0;
    for (uint32_t g = 0; g < gs_gen_grid_count(gen); g++) {
        gs_arena_reset(a);
        gs_sim_upload_t *ups;
        size_t nu;
        if (gs_sim_plan_grid(so, gen, g, a, &ups, &nu, NULL)) {
            fprintf(stderr, "bench_zmq: plan failed\n");
            exit(1);
        }
        for (size_t i = 0; i < nu; i++) {
            gs_sim_upload_t *u = &ups[i];
            int copies = 1 + (u->noise != GS_SIM_PLAIN);
            /* the Ack gridsyncd answers with, from the expected results */
            Gridsync__V1__RecordResult *rr = gs_arena_alloc(a, u->up->n_records * sizeof *rr);
            Gridsync__V1__RecordResult **rp = gs_arena_alloc(a, u->up->n_records * sizeof *rp);
            for (size_t k = 0; k < u->up->n_records; k++) {
                gridsync__v1__record_result__init(&rr[k]);
                rr[k].index = (uint32_t) k;
                rr[k].status = (Gridsync__V1__ResultStatus) u->expect[k].status;
                rr[k].reason = (Gridsync__V1__Reason) u->expect[k].reason;
                rr[k].version = u->expect[k].version;
                rr[k].record_key = (char *) u->expect[k].record_key;
                rr[k].seq = u->expect[k].has_seq ? 1000000 + request_id * 64 + k : 0;
                rp[k] = &rr[k];
            }
            Gridsync__V1__Ack ack = GRIDSYNC__V1__ACK__INIT;
            ack.upload_id = u->up->upload_id;
            ack.n_results = u->up->n_records;
            ack.results = rp;
            for (int c = 0; c < copies; c++) {
                if (n == cap) {
                    cap *= 2;
                    m = realloc(m, cap * sizeof *m);
                    if (!m)
                        exit(1);
                }
                Gridsync__V1__Request req = GRIDSYNC__V1__REQUEST__INIT;
                req.request_id = ++request_id;
                req.body_case = GRIDSYNC__V1__REQUEST__BODY_UPLOAD;
                req.upload = u->up;
                Gridsync__V1__Reply rep = GRIDSYNC__V1__REPLY__INIT;
                rep.request_id = request_id;
                rep.body_case = GRIDSYNC__V1__REPLY__BODY_ACK;
                rep.ack = &ack;
                s_msg_t *x = &m[n++];
                x->req_len = gridsync__v1__request__get_packed_size(&req);
                x->rep_len = gridsync__v1__reply__get_packed_size(&rep);
                x->req = malloc(x->req_len);
                x->rep = malloc(x->rep_len);
                if (!x->req || !x->rep)
                    exit(1);
                gridsync__v1__request__pack(&req, x->req);
                gridsync__v1__reply__pack(&rep, x->rep);
                x->records = (uint32_t) u->up->n_records;
                bytes += x->req_len + x->rep_len;
            }
        }
    }
    gs_arena_destroy(&a);
    *n_out = n;
    *bytes_out = bytes;
    return m;
}

/* The ROUTER side: answer request i (in arrival order) with reply i. */
static void *
s_router_main(void *arg)
{
    s_server_t *s = arg;
    void *router = zmq_socket(s->ctx, ZMQ_ROUTER);
    int hwm = 0;
    zmq_setsockopt(router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(router, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (zmq_bind(router, "tcp://127.0.0.1:*") != 0) {
        perror("bench_zmq: bind");
        exit(1);
    }
    size_t len = sizeof s->endpoint;
    zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, s->endpoint, &len);
    /* tell the main thread where to connect */
    void *ready = zmq_socket(s->ctx, ZMQ_PAIR);
    zmq_connect(ready, "inproc://bench-ready");
    zmq_send(ready, "", 0, 0);
    zmq_close(ready);
    for (size_t i = 0;; i++) {
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, router, 0) < 0 || zmq_msg_recv(&body, router, 0) < 0) {
            perror("bench_zmq: router recv");
            exit(1);
        }
        if (zmq_msg_size(&body) == 0) {     /* the end: no answer */
            zmq_msg_close(&id);
            zmq_msg_close(&body);
            break;
        }
        const s_msg_t *x = &s->msgs[i % s->n_msgs];
        zmq_msg_send(&id, router, ZMQ_SNDMORE);
        zmq_send(router, x->rep, x->rep_len, 0);
        zmq_msg_close(&body);
    }
    zmq_close(router);
    return NULL;
}

int
main(int argc, char **argv)
{
    double scale = 1;
    int dealers = 8, window = 8;
    double min_seconds = 2;
    gs_gen_opts_t go;
    gs_gen_opts_init(&go);
    gs_sim_opts_t so;
    gs_sim_opts_init(&so);
    so.organisations = 1;      /* the district as gridsim collects it, organisations included */
    so.run_id = "bench";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v && !strcmp(a, "--scale"))
            scale = strtod(v, NULL);
        else if (v && !strcmp(a, "--dealers"))
            dealers = atoi(v);
        else if (v && !strcmp(a, "--window"))
            window = atoi(v);
        else if (v && !strcmp(a, "--min-seconds"))
            min_seconds = strtod(v, NULL);
        else if (v && !strcmp(a, "--run-id"))
            so.run_id = v;
        else {
            fprintf(stderr, "usage: bench_zmq [--scale F] [--dealers N] [--window N] "
                    "[--min-seconds S] [--run-id ID]\n");
            return 2;
        }
        i++;
    }
    if (!(scale > 0) || dealers < 1 || dealers > 256 || window < 1) {
        fprintf(stderr, "bench_zmq: bad arguments\n");
        return 2;
    }
    gs_bench_scale(&go, scale);
    gs_gen_t *gen = gs_gen_new(&go);
    if (!gen)
        return 2;
    size_t n = 0;
    uint64_t bytes = 0;
    s_msg_t *msgs = s_build(gen, &so, &n, &bytes);
    if (n == 0)
        return 1;

    s_server_t srv;
    memset(&srv, 0, sizeof srv);
    srv.ctx = zmq_ctx_new();
    srv.msgs = msgs;
    srv.n_msgs = n;
    void *ready = zmq_socket(srv.ctx, ZMQ_PAIR);
    zmq_bind(ready, "inproc://bench-ready");
    pthread_t tid;
    pthread_create(&tid, NULL, s_router_main, &srv);
    char dummy[1];
    zmq_recv(ready, dummy, sizeof dummy, 0);
    zmq_close(ready);

    void **socks = calloc((size_t) dealers, sizeof *socks);
    int *inflight = calloc((size_t) dealers, sizeof *inflight);
    zmq_pollitem_t *items = calloc((size_t) dealers, sizeof *items);
    for (int d = 0; d < dealers; d++) {
        socks[d] = zmq_socket(srv.ctx, ZMQ_DEALER);
        int hwm = 0;
        zmq_setsockopt(socks[d], ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(socks[d], ZMQ_RCVHWM, &hwm, sizeof hwm);
        if (zmq_connect(socks[d], srv.endpoint) != 0) {
            perror("bench_zmq: connect");
            return 1;
        }
        items[d] = (zmq_pollitem_t) { socks[d], 0, ZMQ_POLLIN, 0 };
    }
    size_t sent = 0, received = 0, total = n;
    uint64_t records = 0;
    int64_t t0 = gs_bench_now_us();
    while (received < total) {
        /* keep every dealer's window full */
        for (int d = 0; d < dealers && sent < total; d++)
            while (inflight[d] < window && sent < total) {
                const s_msg_t *x = &msgs[sent++ % n];
                if (zmq_send(socks[d], x->req, x->req_len, 0) != (int) x->req_len) {
                    perror("bench_zmq: send");
                    return 1;
                }
                records += x->records;
                inflight[d]++;
            }
        if (zmq_poll(items, dealers, 1000) < 0) {
            perror("bench_zmq: poll");
            return 1;
        }
        for (int d = 0; d < dealers; d++) {
            if (!(items[d].revents & ZMQ_POLLIN))
                continue;
            zmq_msg_t m;
            zmq_msg_init(&m);
            while (zmq_msg_recv(&m, socks[d], ZMQ_DONTWAIT) >= 0) {
                inflight[d]--;
                received++;
            }
            zmq_msg_close(&m);
        }
        /* at the end of a pass: another one if the run is still short */
        if (received == total && total % n == 0 &&
            (double) (gs_bench_now_us() - t0) / 1e6 < min_seconds && total / n < 1000)
            total += n;
    }
    double secs = (double) (gs_bench_now_us() - t0) / 1e6;
    zmq_send(socks[0], "", 0, 0);
    pthread_join(tid, NULL);
    for (int d = 0; d < dealers; d++)
        zmq_close(socks[d]);
    zmq_ctx_term(srv.ctx);
    gs_bench_kv("zmq", "messages", "%zu", total);
    gs_bench_kv("zmq", "passes", "%zu", total / n);
    gs_bench_kv("zmq", "records", "%llu", (unsigned long long) records);
    gs_bench_kv("zmq", "bytes_per_pass", "%llu", (unsigned long long) bytes);
    gs_bench_kv("zmq", "dealers", "%d", dealers);
    gs_bench_kv("zmq", "window", "%d", window);
    gs_bench_kv("zmq", "seconds", "%.3f", secs);
    gs_bench_kv("zmq", "messages_per_s", "%.0f", (double) total / secs);
    gs_bench_kv("zmq", "records_per_s", "%.0f", (double) records / secs);
    gs_bench_kv("zmq", "mb_per_s", "%.1f", (double) bytes * (double) (total / n) / secs / 1e6);
    for (size_t i = 0; i < n; i++) {
        free(msgs[i].req);
        free(msgs[i].rep);
    }
    free(msgs);
    free(socks);
    free(inflight);
    free(items);
    gs_gen_destroy(&gen);
    return 0;
}

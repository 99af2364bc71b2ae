/*
 * bench_load: the light load generator, the headline end-to-end ingest
 * figure. Uploads the seed district to a running gridsyncd over many CURVE
 * connections, as a fleet of handhelds would, while costing as little per
 * record as possible itself, so that the figure measures the broker.
 *
 * Where it sits: run by tools/bench/run_bench.sh against the real
 * gridsyncd (CURVE, full sync, a fresh temporary store) after N device
 * keys were enrolled with `gridctl devices enrol` (one bundle per
 * connection). gridsim + gridfeed stay as the realistic run; this one
 * replaces neither, it measures something else (the broker alone).
 *
 * What it does, in order:
 *  1. Before the clock: lays out the district exactly as `gridsim --scale F
 *     --no-noise` does (gs_gen, gs_sim plan without noise: every record
 *     once, in uploads of 50 in grid order), deals the grids out to the
 *     connections round-robin, names each upload after its connection's
 *     device (a CURVE broker takes uploads only in the name of the key's
 *     device) and packs every Request to bytes. It keeps only the bytes
 *     and the expected answer of each record (gs_sim's expectation:
 *     ACCEPTED, version 1, the record's id as key, a seq, on a fresh store).
 *  2. Opens one DEALER socket per bundle with the bundle's CURVE keys and
 *     pings the broker on each, so that every handshake is done before the
 *     clock starts.
 *  3. The measured interval: keeps up to --window uploads in flight per
 *     connection, from one thread (zmq_poll over all sockets), and checks
 *     every answer as it arrives: the reply's request id, an Ack for the
 *     right upload, one result per record in order, and each record's
 *     status, reason, version, key and seq rule. A wrong or missing answer
 *     is a failure of the bench (exit 1).
 *  4. Reports the rate and, over the same interval: its own CPU time
 *     (getrusage, all its threads: packing is done, what is left is
 *     sending, CURVE, receiving and checking), the broker's CPU time
 *     (utime + stime from /proc/PID/stat, --broker-pid), and the broker's
 *     write and flush counts from the shim's counter file (--iocount, see
 *     bench_iocount.h).
 *
 * Output: "load.*" key=value lines. Exit 0 all answers as expected, 1 a
 * wrong answer, a refused handshake or no progress for --timeout-s, 2 bad
 * arguments or setup failure.
 *
 * Usage: bench_load --endpoint EP --keys BUNDLE... [--window N] [--scale F]
 *                   [--district CODE] [--run-id ID] [--broker-pid PID]
 *                   [--iocount FILE] [--timeout-s N]
 *   --district lays out the same district under another 6-digit code (the
 *   generator's district, default 440305): new ids, addresses, ID numbers
 *   and USCCs, so one store can take it after another district's run.
 *   --keys takes every following argument that does not start with "--".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "bench_iocount.h"
#include "bench_util.h"
#include "gs_arena.h"
#include "gs_client.h"
#include "gs_client_int.h"
#include "gs_gen.h"
#include "gs_sim.h"

#define S_R(name) GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_##name

/* The expected answer to one record. */
typedef struct s_exp {
    const char *key;                /* canonical id in the result */
    uint64_t version;
    uint8_t status, reason, has_seq;
} s_exp_t;

/* One upload, packed, and where its expectations are. */
typedef struct s_msg {
    uint8_t *req;                   /* packed Request */
    size_t len;
    const char *upload_id;
    uint32_t conn;                  /* connection that sends it */
    uint32_t n_records;
    uint32_t persons;
    size_t exp;                     /* first expectation in the run's array */
    int64_t sent_us;                /* when it went out */
    int state;                      /* 0 queued, 1 in flight, 2 answered */
} s_msg_t;

/* One connection: a device key, its socket and its queue. */
typedef struct s_conn {
    gs_curve_keys_t keys;
    gs_bundle_info_t info;
    void *sock;
    size_t *queue;                  /* message indices, in sending order */
    size_t n_queue, cap_queue, next;
    int inflight;
} s_conn_t;

typedef struct s_run {
    s_msg_t *msgs;
    size_t n_msgs, cap_msgs;
    s_exp_t *exp;
    size_t n_exp, cap_exp;
    uint64_t records, persons;
    uint64_t errors;                /* expectation errors */
    int printed;
} s_run_t;

static void *
s_grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    p = realloc(p, c * elem);
    if (!p) {
        fprintf(stderr, "bench_load: out of memory\n");
        exit(2);
    }
    *cap = c;
    return p;
}

static char *
s_strdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d) {
        fprintf(stderr, "bench_load: out of memory\n");
        exit(2);
    }
    return d;
}

static void
s_error(s_run_t *run, const char *upload_id, const char *what, const char *detail)
{
    run->errors++;
    if (run->printed++ < 10)
        fprintf(stderr, "bench_load: expectation error: upload %s: %s%s\n", upload_id, what,
                detail);
}

/* Step 1: every upload of the district, packed, with its expectations. */
static void
s_build(s_run_t *run, s_conn_t *conns, uint32_t n_conns, const gs_gen_t *gen,
        const gs_sim_opts_t *so)
{
    gs_arena_t *a = gs_arena_new(1 << 20);
    if (!a)
        exit(2);
    for (uint32_t g = 0; g < gs_gen_grid_count(gen); g++) {
        gs_arena_reset(a);
        gs_sim_upload_t *ups;
        size_t nu;
        if (gs_sim_plan_grid(so, gen, g, a, &ups, &nu, NULL)) {
            fprintf(stderr, "bench_load: cannot plan grid %u\n", g);
            exit(2);
        }
        s_conn_t *c = &conns[g % n_conns];
        for (size_t i = 0; i < nu; i++) {
            gs_sim_upload_t *u = &ups[i];
            u->up->device_id = c->info.device_id;
            Gridsync__V1__Request req = GRIDSYNC__V1__REQUEST__INIT;
            req.request_id = run->n_msgs + 1;   /* the reply names its message */
            req.body_case = GRIDSYNC__V1__REQUEST__BODY_UPLOAD;
            req.upload = u->up;
            run->msgs = s_grow(run->msgs, &run->cap_msgs, run->n_msgs + 1, sizeof *run->msgs);
            s_msg_t *m = &run->msgs[run->n_msgs];
            memset(m, 0, sizeof *m);
            m->len = gridsync__v1__request__get_packed_size(&req);
            m->req = malloc(m->len);
            if (!m->req)
                exit(2);
            gridsync__v1__request__pack(&req, m->req);
            m->upload_id = s_strdup(u->up->upload_id);
            m->conn = g % n_conns;
            m->n_records = (uint32_t) u->up->n_records;
            m->persons = u->persons;
            m->exp = run->n_exp;
            run->exp = s_grow(run->exp, &run->cap_exp, run->n_exp + m->n_records,
                              sizeof *run->exp);
            for (size_t k = 0; k < u->up->n_records; k++) {
                const gs_sim_expect_t *e = &u->expect[k];
                run->exp[run->n_exp++] = (s_exp_t) { s_strdup(e->record_key), e->version,
                                                     (uint8_t) e->status, (uint8_t) e->reason,
                                                     (uint8_t) e->has_seq };
            }
            c->queue = s_grow(c->queue, &c->cap_queue, c->n_queue + 1, sizeof *c->queue);
            c->queue[c->n_queue++] = run->n_msgs;
            run->records += m->n_records;
            run->persons += m->persons;
            run->n_msgs++;
        }
    }
    gs_arena_destroy(&a);
}

/* Check one reply; marks its message answered. Returns the message, or
 * NULL when the reply names none in flight (an error was counted). */
static s_msg_t *
s_check(s_run_t *run, const uint8_t *data, size_t len)
{
    Gridsync__V1__Reply *rep = gridsync__v1__reply__unpack(NULL, len, data);
    if (!rep) {
        s_error(run, "?", "a reply that does not decode", "");
        return NULL;
    }
    s_msg_t *m = NULL;
    if (rep->request_id < 1 || rep->request_id > run->n_msgs ||
        run->msgs[rep->request_id - 1].state != 1) {
        s_error(run, "?", "a reply to no request in flight", "");
        goto done;
    }
    m = &run->msgs[rep->request_id - 1];
    m->state = 2;
    if (rep->body_case != GRIDSYNC__V1__REPLY__BODY_ACK) {
        s_error(run, m->upload_id, "not an ack: ",
                rep->body_case == GRIDSYNC__V1__REPLY__BODY_ERROR && rep->error->message
                    ? rep->error->message : "(another reply)");
        goto done;
    }
    const Gridsync__V1__Ack *ack = rep->ack;
    if (strcmp(ack->upload_id, m->upload_id) != 0 || ack->n_results != m->n_records) {
        s_error(run, m->upload_id, "an ack for another upload or with the wrong number of "
                "results: ", ack->upload_id);
        goto done;
    }
    for (size_t k = 0; k < ack->n_results; k++) {
        const Gridsync__V1__RecordResult *r = ack->results[k];
        const s_exp_t *e = &run->exp[m->exp + k];
        if (r->index != k || (int) r->status != e->status || (int) r->reason != e->reason ||
            r->version != e->version || strcmp(r->record_key, e->key) != 0 ||
            (r->seq > 0) != e->has_seq)
            s_error(run, m->upload_id, "answered otherwise than expected: record ", e->key);
    }
done:
    gridsync__v1__reply__free_unpacked(rep, NULL);
    return m;
}

/* Step 2: ping on every connection until each has answered. */
static int
s_handshake(s_conn_t *conns, uint32_t n, zmq_pollitem_t *items, int timeout_s)
{
    Gridsync__V1__PingRequest ping = GRIDSYNC__V1__PING_REQUEST__INIT;
    Gridsync__V1__Request req = GRIDSYNC__V1__REQUEST__INIT;
    req.request_id = 0xFFFFFFFFu;
    req.body_case = GRIDSYNC__V1__REQUEST__BODY_PING;
    req.ping = &ping;
    uint8_t buf[64];
    size_t len = gridsync__v1__request__pack(&req, buf);
    for (uint32_t c = 0; c < n; c++)
        if (zmq_send(conns[c].sock, buf, len, 0) != (int) len) {
            perror("bench_load: send ping");
            return -1;
        }
    uint32_t left = n;
    int *done = calloc(n, sizeof *done);
    int64_t deadline = gs_bench_now_us() + (int64_t) timeout_s * 1000000;
    while (left > 0 && gs_bench_now_us() < deadline) {
        if (zmq_poll(items, (int) n, 200) < 0)
            break;
        for (uint32_t c = 0; c < n; c++) {
            if (!(items[c].revents & ZMQ_POLLIN))
                continue;
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, conns[c].sock, ZMQ_DONTWAIT) >= 0) {
                Gridsync__V1__Reply *rep =
                    gridsync__v1__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
                if (!rep || rep->body_case != GRIDSYNC__V1__REPLY__BODY_PING ||
                    !rep->ping->registered ||
                    strcmp(rep->ping->device_id, conns[c].info.device_id) != 0) {
                    fprintf(stderr, "bench_load: connection %u (%s): the broker did not "
                            "take the key for its device\n", c, conns[c].info.device_id);
                    free(done);
                    return -1;
                }
                gridsync__v1__reply__free_unpacked(rep, NULL);
                if (!done[c]) {
                    done[c] = 1;
                    left--;
                }
            }
            zmq_msg_close(&m);
        }
    }
    free(done);
    if (left > 0) {
        fprintf(stderr, "bench_load: %u connections got no answer to a ping within %d s "
                "(keys not enrolled, or the broker not in CURVE mode?)\n", left, timeout_s);
        return -1;
    }
    return 0;
}

static void
s_usage(void)
{
    fprintf(stderr,
            "usage: bench_load --endpoint EP --keys BUNDLE... [--window N] [--scale F]\n"
            "                  [--district CODE] [--run-id ID] [--broker-pid PID]\n"
            "                  [--iocount FILE] [--timeout-s N]\n"
            "Uploads the seed district (as gridsim --no-noise) over one CURVE connection\n"
            "per enrolment bundle and checks every answer.\n");
}

int
main(int argc, char **argv)
{
    const char *endpoint = NULL, *iocount = NULL;
    const char **bundles = calloc((size_t) argc, sizeof *bundles);
    uint32_t n_conns = 0;
    int window = 2, timeout_s = 60;
    long broker_pid = 0;
    double scale = 1;
    gs_gen_opts_t go;
    gs_gen_opts_init(&go);
    gs_sim_opts_t so;
    gs_sim_opts_init(&so);
    so.organisations = 1;      /* the district as gridsim collects it, organisations included */
    so.run_id = "load";
    so.retransmit_pct = so.lost_ack_pct = so.invalid_pct = 0;
    so.recollect_pct = so.new_id_pct = so.conflict_pct = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--keys")) {
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                bundles[n_conns++] = argv[++i];
            continue;
        }
        if (!v) {
            s_usage();
            return 2;
        }
        if (!strcmp(a, "--endpoint"))
            endpoint = v;
        else if (!strcmp(a, "--window"))
            window = atoi(v);
        else if (!strcmp(a, "--scale"))
            scale = strtod(v, NULL);
        else if (!strcmp(a, "--district"))
            go.district = v;
        else if (!strcmp(a, "--run-id"))
            so.run_id = v;
        else if (!strcmp(a, "--broker-pid"))
            broker_pid = atol(v);
        else if (!strcmp(a, "--iocount"))
            iocount = v;
        else if (!strcmp(a, "--timeout-s"))
            timeout_s = atoi(v);
        else {
            s_usage();
            return 2;
        }
        i++;
    }
    char msg[256];
    if (!endpoint || n_conns < 1 || window < 1 || window > 1000 || !(scale > 0) ||
        timeout_s < 1) {
        s_usage();
        return 2;
    }
    if (gs_sim_opts_check(&so, msg, sizeof msg)) {
        fprintf(stderr, "bench_load: %s\n", msg);
        return 2;
    }
    s_conn_t *conns = calloc(n_conns, sizeof *conns);
    for (uint32_t c = 0; c < n_conns; c++)
        if (gs_curve_keys_load(&conns[c].keys, bundles[c]) ||
            gs_bundle_info_load(&conns[c].info, bundles[c]) || !conns[c].info.device_id[0]) {
            fprintf(stderr, "bench_load: %s is not an enrolment bundle with keys and a "
                    "device_id (gridctl devices enrol --bundle)\n", bundles[c]);
            return 2;
        }
    /* the district exactly as gridsim --scale lays it out */
    gs_bench_scale(&go, scale);
    gs_gen_t *gen = gs_gen_new(&go);
    if (!gen) {
        fprintf(stderr, "bench_load: cannot lay out the district\n");
        return 2;
    }

    s_run_t run;
    memset(&run, 0, sizeof run);
    int64_t tb = gs_bench_now_us();
    s_build(&run, conns, n_conns, gen, &so);
    double build_s = (double) (gs_bench_now_us() - tb) / 1e6;
    gs_gen_destroy(&gen);

    void *ctx = zmq_ctx_new();
    zmq_pollitem_t *items = calloc(n_conns, sizeof *items);
    for (uint32_t c = 0; c < n_conns; c++) {
        s_conn_t *k = &conns[c];
        k->sock = zmq_socket(ctx, ZMQ_DEALER);
        int zero = 0;
        zmq_setsockopt(k->sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(k->sock, ZMQ_SNDHWM, &zero, sizeof zero);
        zmq_setsockopt(k->sock, ZMQ_RCVHWM, &zero, sizeof zero);
        if (gs_curve_apply(k->sock, &k->keys) || zmq_connect(k->sock, endpoint) != 0) {
            fprintf(stderr, "bench_load: cannot connect to %s: %s\n", endpoint,
                    zmq_strerror(zmq_errno()));
            return 2;
        }
        items[c] = (zmq_pollitem_t) { k->sock, 0, ZMQ_POLLIN, 0 };
    }
    if (s_handshake(conns, n_conns, items, timeout_s))
        return 1;

    /* step 3: the measured interval */
    gs_bench_iocount_t io0, io1;
    int have_io = iocount && gs_bench_iocount_read(iocount, &io0) == 0;
    if (iocount && !have_io)
        fprintf(stderr, "bench_load: %s holds no counters (is the shim preloaded?)\n", iocount);
    double bcpu0 = broker_pid ? gs_bench_proc_cpu_s(broker_pid) : -1;
    double cpu0 = gs_bench_self_cpu_s();
    int64_t t0 = gs_bench_now_us(), last_progress = t0;
    double *lat_ms = calloc(run.n_msgs ? run.n_msgs : 1, sizeof *lat_ms);
    size_t answered = 0;
    while (answered < run.n_msgs) {
        for (uint32_t c = 0; c < n_conns; c++) {
            s_conn_t *k = &conns[c];
            while (k->inflight < window && k->next < k->n_queue) {
                s_msg_t *m = &run.msgs[k->queue[k->next++]];
                m->sent_us = gs_bench_now_us();
                if (zmq_send(k->sock, m->req, m->len, 0) != (int) m->len) {
                    perror("bench_load: send");
                    return 1;
                }
                m->state = 1;
                k->inflight++;
            }
        }
        int n = zmq_poll(items, (int) n_conns, 1000);
        if (n < 0) {
            perror("bench_load: poll");
            return 1;
        }
        int64_t now = gs_bench_now_us();
        for (uint32_t c = 0; c < n_conns && n > 0; c++) {
            if (!(items[c].revents & ZMQ_POLLIN))
                continue;
            zmq_msg_t zm;
            zmq_msg_init(&zm);
            while (zmq_msg_recv(&zm, conns[c].sock, ZMQ_DONTWAIT) >= 0) {
                s_msg_t *m = s_check(&run, zmq_msg_data(&zm), zmq_msg_size(&zm));
                if (m) {
                    conns[m->conn].inflight--;
                    lat_ms[answered++] = (double) (now - m->sent_us) / 1000.0;
                    last_progress = now;
                }
            }
            zmq_msg_close(&zm);
        }
        if (run.errors > 0 && run.printed >= 10)
            break;                  /* enough detail: the bench has failed */
        if (now - last_progress > (int64_t) timeout_s * 1000000) {
            fprintf(stderr, "bench_load: no answer for %d s with %zu of %zu uploads "
                    "answered\n", timeout_s, answered, run.n_msgs);
            return 1;
        }
    }
    double secs = (double) (gs_bench_now_us() - t0) / 1e6;
    double cpu = gs_bench_self_cpu_s() - cpu0;
    double bcpu = bcpu0 >= 0 ? gs_bench_proc_cpu_s(broker_pid) - bcpu0 : -1;
    have_io = have_io && gs_bench_iocount_read(iocount, &io1) == 0;

    double recs = (double) run.records;
    gs_bench_kv("load", "connections", "%u", n_conns);
    gs_bench_kv("load", "window", "%d", window);
    gs_bench_kv("load", "uploads", "%zu", run.n_msgs);
    gs_bench_kv("load", "records", "%llu", (unsigned long long) run.records);
    gs_bench_kv("load", "persons", "%llu", (unsigned long long) run.persons);
    gs_bench_kv("load", "build_seconds", "%.3f", build_s);
    gs_bench_kv("load", "seconds", "%.3f", secs);
    gs_bench_kv("load", "records_per_s", "%.1f", recs / secs);
    gs_bench_kv("load", "persons_per_s", "%.1f", (double) run.persons / secs);
    gs_bench_kv("load", "p50_ms", "%.2f", gs_bench_quantile(lat_ms, answered, 0.5));
    gs_bench_kv("load", "p99_ms", "%.2f", gs_bench_quantile(lat_ms, answered, 0.99));
    gs_bench_kv("load", "gen_cpu_s", "%.3f", cpu);
    gs_bench_kv("load", "gen_cpu_us_per_record", "%.2f", cpu * 1e6 / recs);
    if (bcpu >= 0) {
        gs_bench_kv("load", "broker_cpu_s", "%.3f", bcpu);
        gs_bench_kv("load", "broker_cpu_us_per_record", "%.2f", bcpu * 1e6 / recs);
    }
    if (have_io) {
        uint64_t flushes = (io1.fdatasyncs - io0.fdatasyncs) + (io1.fsyncs - io0.fsyncs) +
                           (io1.msyncs - io0.msyncs) + (io1.sync_writes - io0.sync_writes);
        gs_bench_kv("load", "write_calls", "%llu",
                    (unsigned long long) (io1.write_calls - io0.write_calls));
        gs_bench_kv("load", "write_bytes", "%llu",
                    (unsigned long long) (io1.write_bytes - io0.write_bytes));
        gs_bench_kv("load", "write_bytes_per_record", "%.1f",
                    (double) (io1.write_bytes - io0.write_bytes) / recs);
        gs_bench_kv("load", "flushes", "%llu", (unsigned long long) flushes);
        gs_bench_kv("load", "fdatasyncs", "%llu",
                    (unsigned long long) (io1.fdatasyncs - io0.fdatasyncs));
        gs_bench_kv("load", "fsyncs", "%llu", (unsigned long long) (io1.fsyncs - io0.fsyncs));
        gs_bench_kv("load", "msyncs", "%llu", (unsigned long long) (io1.msyncs - io0.msyncs));
        gs_bench_kv("load", "sync_writes", "%llu",
                    (unsigned long long) (io1.sync_writes - io0.sync_writes));
    }
    gs_bench_kv("load", "expectation_errors", "%llu", (unsigned long long) run.errors);
    gs_bench_kv("load", "unanswered", "%zu", run.n_msgs - answered);

    for (uint32_t c = 0; c < n_conns; c++) {
        zmq_close(conns[c].sock);
        free(conns[c].queue);
    }
    zmq_ctx_term(ctx);
    for (size_t i = 0; i < run.n_msgs; i++) {
        free(run.msgs[i].req);
        free((char *) run.msgs[i].upload_id);
    }
    for (size_t i = 0; i < run.n_exp; i++)
        free((char *) run.exp[i].key);
    free(run.msgs);
    free(run.exp);
    free(lat_ms);
    free(items);
    free(conns);
    free(bundles);
    return run.errors || answered < run.n_msgs ? 1 : 0;
}

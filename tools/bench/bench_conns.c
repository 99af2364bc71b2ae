/*
 * bench_conns: idle-ish device connections. Holds many CURVE connections
 * open to a running gridsyncd, as a fleet of handhelds that are switched on
 * but have nothing to upload, so that the driver can read what they cost
 * the broker in memory.
 *
 * Where it sits: run by tools/bench/run_bench.sh (section "Connections")
 * against the real gridsyncd in CURVE mode, after a few device keys were
 * enrolled with `gridctl devices enrol`. One process holds --conns
 * connections; the driver starts several when the descriptor limit does
 * not let one hold them all (each DEALER socket costs this process two
 * descriptors: its TCP connection and its mailbox).
 *
 * What it does, in order:
 *  1. Raises its soft open-file limit to the hard one, opens --conns DEALER
 *     sockets, each with the CURVE keys of one bundle (round-robin over
 *     --keys: one key may hold several connections, as a device that
 *     reconnects does for a while), and connects them, --batch at a time.
 *  2. Pings on every connection and waits for every answer (the handshake
 *     and the ZAP check are done then): the reply must be a PingReply that
 *     names the key's device as registered. Prints "conns.ready=1".
 *  3. Pings every connection once more, spread evenly over --ping-s
 *     seconds (a device's rare keep-alive), waits for every answer, and
 *     prints "conns.held=1": from here until it is told to stop, the
 *     connections are open and idle, and the driver reads the broker's
 *     memory.
 *  4. On SIGTERM or SIGINT it closes everything and prints its counts.
 *
 * Every wait is bounded by --timeout-s (per batch of connections, per round
 * of pings). Output: "conns.*" key=value lines.
 * Exit 0 every ping answered as expected, 1 a wrong or missing answer, 2 bad
 * arguments or setup failure (too few descriptors included).
 *
 * Usage: bench_conns --endpoint EP --conns N --keys BUNDLE... [--ping-s S]
 *                    [--batch N] [--timeout-s N]
 *   --keys takes every following argument that does not start with "--".
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zmq.h>

#include "bench_util.h"
#include "gs_client.h"
#include "gs_client_int.h"

typedef struct s_key {
    gs_curve_keys_t keys;
    gs_bundle_info_t info;
} s_key_t;

static volatile sig_atomic_t s_stop;

static void
s_on_signal(int sig)
{
    (void) sig;
    s_stop = 1;
}

/* The packed ping every connection sends (request_id = the connection's
 * index + 1, so a reply names its connection). */
static size_t
s_ping(uint32_t c, uint8_t *buf)
{
    Gridsync__V1__PingRequest ping = GRIDSYNC__V1__PING_REQUEST__INIT;
    Gridsync__V1__Request req = GRIDSYNC__V1__REQUEST__INIT;
    req.request_id = (uint64_t) c + 1;
    req.body_case = GRIDSYNC__V1__REQUEST__BODY_PING;
    req.ping = &ping;
    return gridsync__v1__request__pack(&req, buf);
}

/* Read every reply queued on connection c; each must be the PingReply to
 * c's ping, naming its key's device as registered. Returns the replies
 * read, or -1 on a wrong one. */
static int
s_drain(void *sock, uint32_t c, const s_key_t *key)
{
    int got = 0;
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) >= 0) {
        Gridsync__V1__Reply *rep =
            gridsync__v1__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        int ok = rep && rep->body_case == GRIDSYNC__V1__REPLY__BODY_PING &&
                 rep->request_id == (uint64_t) c + 1 && rep->ping->registered &&
                 strcmp(rep->ping->device_id, key->info.device_id) == 0;
        if (rep)
            gridsync__v1__reply__free_unpacked(rep, NULL);
        if (!ok) {
            fprintf(stderr, "bench_conns: connection %u (%s): not the ping reply expected "
                    "(key not enrolled, or the broker not in CURVE mode?)\n", c,
                    key->info.device_id);
            zmq_msg_close(&m);
            return -1;
        }
        got++;
    }
    zmq_msg_close(&m);
    return got;
}

/* Wait until every connection in [from, to) with want[c] set has answered
 * (want[c] cleared then). Returns 0, or -1 on a wrong answer or the
 * deadline. */
static int
s_wait(void **socks, zmq_pollitem_t *items, uint8_t *want, uint32_t from, uint32_t to,
       const s_key_t *keys, uint32_t n_keys, int64_t deadline_us)
{
    uint32_t left = 0;
    for (uint32_t c = from; c < to; c++)
        left += want[c];
    while (left > 0) {
        if (gs_bench_now_us() > deadline_us) {
            fprintf(stderr, "bench_conns: %u pings unanswered at the deadline\n", left);
            return -1;
        }
        if (zmq_poll(items + from, (int) (to - from), 200) < 0 && errno != EINTR)
            return -1;
        for (uint32_t c = from; c < to; c++) {
            if (!(items[c].revents & ZMQ_POLLIN))
                continue;
            int got = s_drain(socks[c], c, &keys[c % n_keys]);
            if (got < 0)
                return -1;
            if (got > 0 && want[c]) {
                want[c] = 0;
                left--;
            }
        }
    }
    return 0;
}

static void
s_usage(void)
{
    fprintf(stderr,
            "usage: bench_conns --endpoint EP --conns N --keys BUNDLE... [--ping-s S]\n"
            "                   [--batch N] [--timeout-s N]\n"
            "Holds N idle CURVE connections to a gridsyncd until SIGTERM (see the header).\n");
}

int
main(int argc, char **argv)
{
    const char *endpoint = NULL;
    const char **bundles = calloc((size_t) argc, sizeof *bundles);
    uint32_t n_keys = 0, n = 0, batch = 500, rounds = 1;
    double ping_s = 2;
    int timeout_s = 120;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--keys")) {
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                bundles[n_keys++] = argv[++i];
            continue;
        }
        if (!v) {
            s_usage();
            return 2;
        }
        if (!strcmp(a, "--endpoint"))
            endpoint = v;
        else if (!strcmp(a, "--conns"))
            n = (uint32_t) strtoul(v, NULL, 10);
        else if (!strcmp(a, "--batch"))
            batch = (uint32_t) strtoul(v, NULL, 10);
        else if (!strcmp(a, "--rounds"))
            rounds = (uint32_t) strtoul(v, NULL, 10);
        else if (!strcmp(a, "--ping-s"))
            ping_s = strtod(v, NULL);
        else if (!strcmp(a, "--timeout-s"))
            timeout_s = atoi(v);
        else {
            s_usage();
            return 2;
        }
        i++;
    }
    if (!endpoint || n < 1 || n_keys < 1 || batch < 1 || !(ping_s >= 0) || timeout_s < 1) {
        s_usage();
        return 2;
    }
    s_key_t *keys = calloc(n_keys, sizeof *keys);
    for (uint32_t k = 0; k < n_keys; k++)
        if (gs_curve_keys_load(&keys[k].keys, bundles[k]) ||
            gs_bundle_info_load(&keys[k].info, bundles[k]) || !keys[k].info.device_id[0]) {
            fprintf(stderr, "bench_conns: %s is not an enrolment bundle with keys and a "
                    "device_id (gridctl devices enrol --bundle)\n", bundles[k]);
            return 2;
        }
    /* two descriptors per DEALER socket (TCP and mailbox), and a few more
     * for the context's own threads */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) || (rl.rlim_cur != RLIM_INFINITY &&
                                          rl.rlim_cur < (rlim_t) n * 2 + 64)) {
        fprintf(stderr, "bench_conns: %u connections need %u descriptors, the limit is %llu; "
                "run several processes\n", n, n * 2 + 64, (unsigned long long) rl.rlim_cur);
        return 2;
    }
    /* SIGTERM and SIGINT are blocked but while waiting in step 4, so that
     * one cannot slip in between the check and the wait */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);

    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, (int) n + 16);
    void **socks = calloc(n, sizeof *socks);
    zmq_pollitem_t *items = calloc(n, sizeof *items);
    uint8_t *want = calloc(n, 1);
    if (!ctx || !socks || !items || !want) {
        fprintf(stderr, "bench_conns: out of memory\n");
        return 2;
    }
    int64_t t0 = gs_bench_now_us(), deadline = t0 + (int64_t) timeout_s * 1000000;
    uint8_t buf[64];
    uint64_t pings = 0;
    /* 1 and 2: connect and ping, a batch at a time, so that the broker's
     * handshakes (and their ZAP checks) never all wait at once */
    for (uint32_t from = 0; from < n; from += batch) {
        uint32_t to = from + batch < n ? from + batch : n;
        for (uint32_t c = from; c < to; c++) {
            void *s = zmq_socket(ctx, ZMQ_DEALER);
            if (!s) {
                fprintf(stderr, "bench_conns: socket %u: %s\n", c, zmq_strerror(zmq_errno()));
                return 2;
            }
            int zero = 0;
            zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
            if (gs_curve_apply(s, &keys[c % n_keys].keys) || zmq_connect(s, endpoint) != 0) {
                fprintf(stderr, "bench_conns: cannot connect to %s: %s\n", endpoint,
                        zmq_strerror(zmq_errno()));
                return 2;
            }
            socks[c] = s;
            items[c] = (zmq_pollitem_t) { s, 0, ZMQ_POLLIN, 0 };
            size_t len = s_ping(c, buf);
            if (zmq_send(s, buf, len, 0) != (int) len) {
                fprintf(stderr, "bench_conns: send: %s\n", zmq_strerror(zmq_errno()));
                return 2;
            }
            want[c] = 1;
            pings++;
        }
        /* the bound is per batch: a loaded machine slows every batch alike */
        deadline = gs_bench_now_us() + (int64_t) timeout_s * 1000000;
        if (s_wait(socks, items, want, from, to, keys, n_keys, deadline))
            return 1;
    }
    double connect_s = (double) (gs_bench_now_us() - t0) / 1e6;
    printf("conns.ready=1\n");
    fflush(stdout);

    /* 3: --rounds keep-alive pings per connection, each round spread over
     * ping_s seconds and answered in full before the next */
    for (uint32_t r = 0; r < rounds; r++) {
        int64_t t1 = gs_bench_now_us();
        deadline = t1 + (int64_t) (ping_s * 1e6) + (int64_t) timeout_s * 1000000;
        for (uint32_t c = 0; c < n; c++) {
            gs_bench_sleep_until(t1 + (int64_t) (ping_s * 1e6 * c / n));
            size_t len = s_ping(c, buf);
            if (zmq_send(socks[c], buf, len, 0) != (int) len) {
                fprintf(stderr, "bench_conns: send: %s\n", zmq_strerror(zmq_errno()));
                return 1;
            }
            want[c] = 1;
            pings++;
            /* take the answers that have come meanwhile */
            if (c % 256 == 255) {
                uint32_t lo = c - 255;
                for (uint32_t k = lo; k <= c; k++)
                    items[k].revents = 0;
                if (zmq_poll(items + lo, 256, 0) > 0)
                    for (uint32_t k = lo; k <= c; k++)
                        if ((items[k].revents & ZMQ_POLLIN)) {
                            int got = s_drain(socks[k], k, &keys[k % n_keys]);
                            if (got < 0)
                                return 1;
                            if (got > 0)
                                want[k] = 0;
                        }
            }
        }
        if (s_wait(socks, items, want, 0, n, keys, n_keys, deadline))
            return 1;
    }
    printf("conns.held=1\n");
    fflush(stdout);

    /* 4: idle until told to stop */
    while (!s_stop)
        sigsuspend(&old);
    gs_bench_kv("conns", "connections", "%u", n);
    gs_bench_kv("conns", "keys", "%u", n_keys);
    gs_bench_kv("conns", "pings_answered", "%llu", (unsigned long long) pings);
    gs_bench_kv("conns", "connect_seconds", "%.3f", connect_s);
    for (uint32_t c = 0; c < n; c++)
        zmq_close(socks[c]);
    zmq_ctx_term(ctx);
    free(want);
    free(items);
    free(socks);
    free(keys);
    free(bundles);
    return 0;
}

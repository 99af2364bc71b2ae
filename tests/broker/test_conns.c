/*
 * test_conns: idle connections against the real gridsyncd (CURVE on). A
 * client TCP connection costs the broker a file descriptor from the moment
 * it is accepted, before any handshake, so peers that connect and never
 * speak could once use up the default 1,024 descriptors and lock everyone
 * out. Shown here:
 *  - the broker takes the hard open-file limit at start: started with a
 *    soft limit of 1,024, it holds 1,100 idle connections and still serves
 *    a well-behaved device;
 *  - with a small max-connections the bound is hit: a log line and
 *    gridsync_connections_refused_total say so, and once the handshake
 *    timeout has dropped the idle peers a well-behaved device is served
 *    (waiting on its retries, which are bounded);
 *  - the ZAP handler hands its endpoint over and closes the old socket
 *    (gridsync_zap_handovers_total), freeing the pipes libzmq keeps to it:
 *    a connection it checked stays open and served, and new handshakes are
 *    still checked (an enrolled key served, an unknown one refused).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "gs_arena.h"
#include "gs_client.h"
#include "gs_store.h"
#include "gs_testkit.h"

#define GRID_A "440305001001001"
#define S_IDLE_MANY 1100            /* over the default soft limit of 1,024 */
#define S_IDLE_STEP 50              /* connections opened at once */
#define S_IDLE_FEW 100              /* over the small bound below */
#define S_SMALL_BOUND "32"
#define S_WAIT_MS 30000             /* bounded waits, generous for sanitizer builds */

typedef struct {
    char dir[64];
    char store[128];
    gs_tk_broker_t broker;
    gs_arena_t *arena;
    gs_curve_keys_t keys;           /* an enrolled device */
    int *idle;                      /* raw TCP connections that never speak */
    size_t n_idle;
} s_env_t;

static int64_t
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Start the broker (CURVE) with extra settings, the soft open-file limit
 * set to soft for it (0 = unchanged), and enrol one device. */
static s_env_t *
s_start(const char *const *extra, rlim_t soft)
{
    s_env_t *e = calloc(1, sizeof *e);
    assert_non_null(e);
    gs_tk_tmpdir(e->dir, sizeof e->dir);
    snprintf(e->store, sizeof e->store, "%s/store", e->dir);
    struct rlimit rl, mine;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &mine), 0);
    if (soft) {
        rl = mine;
        rl.rlim_cur = soft;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    int rc = gs_tk_broker_start_mode(&e->broker, e->store, extra, 1);
    /* the broker inherited the low limit; this process needs its own back */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &mine), 0);
    assert_int_equal(rc, 0);
    e->arena = gs_arena_new(0);
    assert_int_equal(zmq_curve_keypair(e->keys.public_key, e->keys.secret_key), 0);
    memcpy(e->keys.server_public, e->broker.server_key, 41);
    gs_store_t *st = gs_store_new(e->store, NULL, NULL);
    assert_non_null(st);
    Gridsync__V1__Device d = GRIDSYNC__V1__DEVICE__INIT;
    d.device_id = "dev-a";
    d.collector_id = "col-1";
    d.public_key = e->keys.public_key;
    char *prefixes[1] = { "440305" };
    d.prefixes = prefixes;
    d.n_prefixes = 1;
    assert_int_equal(gs_store_device_put(st, &d), 0);
    gs_store_destroy(&st);
    return e;
}

static void
s_stop(s_env_t *e)
{
    for (size_t i = 0; i < e->n_idle; i++)
        close(e->idle[i]);
    free(e->idle);
    int st = gs_tk_broker_stop(&e->broker, SIGTERM);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    gs_arena_destroy(&e->arena);
    gs_tk_rmtree(e->dir);
    free(e);
}

/* n TCP connections to the request endpoint that never send a byte
 * (non-blocking connects: the test never waits on a full backlog). */
static void
s_idle(s_env_t *e, size_t n)
{
    const char *colon = strrchr(e->broker.upload, ':');
    assert_non_null(colon);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) atoi(colon + 1));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    e->idle = realloc(e->idle, (e->n_idle + n) * sizeof *e->idle);
    assert_non_null(e->idle);
    for (size_t i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            fail_msg("socket %zu: %s", i, strerror(errno));
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) && errno != EINPROGRESS)
            fail_msg("connect %zu: %s", i, strerror(errno));
        e->idle[e->n_idle++] = fd;
    }
}

/* The value of one sample from the metrics endpoint, -1 when absent (or
 * when the endpoint dropped the scrape: s_wait_metric asks again). */
static long long
s_metric(s_env_t *e, const char *sample)
{
    double v = gs_tk_metric(e->broker.metrics_port, sample);
    assert_true(v != GS_TK_METRIC_UNREADABLE);
    return v < 0 ? -1 : (long long) v;
}

/* Wait (bounded) until the sample is at least v; returns its last value. */
static long long
s_wait_metric(s_env_t *e, const char *sample, long long v)
{
    int64_t deadline = s_now_ms() + S_WAIT_MS;
    long long got;
    while ((got = s_metric(e, sample)) < v && s_now_ms() < deadline) {
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return got;
}

/* Wait (bounded) for a line of the broker's log holding text. */
static int
s_wait_log(s_env_t *e, const char *text)
{
    int64_t deadline = s_now_ms() + S_WAIT_MS;
    do {
        FILE *f = fopen(e->broker.log_path, "r");
        char line[2048];
        int found = 0;
        while (f && !found && fgets(line, sizeof line, f))
            found = strstr(line, text) != NULL;
        if (f)
            fclose(f);
        if (found)
            return 1;
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    } while (s_now_ms() < deadline);
    return 0;
}

/* The enrolled device uploads one new household; the client retries
 * (Lazy Pirate) up to retries times. */
static void
s_served(s_env_t *e, const char *hid, int timeout_ms, int retries)
{
    gs_client_opts_t o;
    gs_client_opts_init(&o);
    o.timeout_ms = timeout_ms;
    o.retries = retries;
    o.curve = e->keys;
    gs_client_t *c = gs_client_new(e->broker.upload, &o);
    assert_non_null(c);
    Gridsync__V1__Record *rec = gs_tk_household(e->arena, GRID_A, hid, hid, 1, 1);
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = "dev-a";
    up.upload_id = (char *) hid;
    up.records = &rec;
    up.n_records = 1;
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t err;
    int rc = gs_client_upload(c, &up, &ack, &err);
    if (rc)
        fail_msg("upload %s: %s: %s", hid, gs_client_strerror(rc), err.message);
    assert_int_equal(ack->results[0]->status, GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_client_destroy(&c);
}

/* Started with a soft limit of 1,024, the broker takes the hard limit,
 * holds 1,100 idle connections and still serves a device. */
static void
test_idle_connections_over_soft_limit(void **state)
{
    (void) state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 4096) {
        printf("hard open-file limit %llu: too low to show this, skipped\n",
               (unsigned long long) rl.rlim_max);
        skip();
    }
    const char *vg = getenv("GS_TEST_VALGRIND");
    if (vg && *vg && strcmp(vg, "0") != 0) {
        /* valgrind keeps descriptors of its own above the soft limit and
         * gives the program a hard limit equal to it */
        printf("under valgrind the open-file limit cannot be raised: skipped\n");
        skip();
    }
    s_env_t *e = s_start(NULL, 1024);
    /* in steps, each accepted before the next (the listen backlog is
     * finite: a burst beyond it is dropped by the kernel, not the broker) */
    for (size_t n = 0; n < S_IDLE_MANY; n += S_IDLE_STEP) {
        s_idle(e, S_IDLE_STEP);
        long long open = s_wait_metric(e, "gridsync_connections_open", (long long) e->n_idle);
        if (open < (long long) e->n_idle)
            fail_msg("broker holds %lld connections, wanted %zu", open, e->n_idle);
    }
    s_served(e, "H-many-1", 5000, 2);
    assert_int_equal(s_metric(e, "gridsync_connections_refused_total"), 0);
    assert_true(s_wait_log(e, "event=fd_limit"));
    s_stop(e);
}

/* With a small bound: it is hit (log line, metric), and after the
 * handshake timeout has dropped the idle peers a device is served. */
static void
test_bound_hit_then_served(void **state)
{
    (void) state;
    static const char *const extra[] = { "--max-connections=" S_SMALL_BOUND,
                                         "--handshake-timeout-ms=500", NULL };
    s_env_t *e = s_start(extra, 0);
    assert_int_equal(s_metric(e, "gridsync_connections_max"), atoi(S_SMALL_BOUND));
    s_idle(e, S_IDLE_FEW);
    assert_true(s_wait_log(e, "event=connections_bound"));
    assert_true(s_wait_metric(e, "gridsync_connections_refused_total", 1) >= 1);
    /* the idle peers that got in are dropped after 500 ms; the device's
     * retries (a bounded number) get it served once they are */
    s_served(e, "H-bound-1", 2000, 10);
    assert_true(s_metric(e, "gridsync_connections_open") <= atoi(S_SMALL_BOUND));
    s_stop(e);
}

/* A DEALER with the device's keys (or fresh, unknown ones when keys is
 * NULL) connected to the request endpoint, its socket events watched by a
 * PAIR connected to monitor_ep. */
static void *
s_dealer(s_env_t *e, void *ctx, const gs_curve_keys_t *keys, const char *monitor_ep,
         void **monitor)
{
    gs_curve_keys_t fresh;
    if (!keys) {
        memset(&fresh, 0, sizeof fresh);
        assert_int_equal(zmq_curve_keypair(fresh.public_key, fresh.secret_key), 0);
        keys = &fresh;
    }
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, e->broker.server_key, 40), 0);
    assert_int_equal(zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, keys->public_key, 40), 0);
    assert_int_equal(zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, keys->secret_key, 40), 0);
    assert_int_equal(zmq_socket_monitor(d, monitor_ep, ZMQ_EVENT_ALL), 0);
    *monitor = zmq_socket(ctx, ZMQ_PAIR);
    assert_int_equal(zmq_connect(*monitor, monitor_ep), 0);
    assert_int_equal(zmq_connect(d, e->broker.upload), 0);
    return d;
}

/* Send a ping on d and wait (bounded) for its answer, which must name the
 * enrolled device. */
static void
s_ping(void *d, uint64_t id)
{
    Gridsync__V1__PingRequest ping = GRIDSYNC__V1__PING_REQUEST__INIT;
    Gridsync__V1__Request req = GRIDSYNC__V1__REQUEST__INIT;
    req.request_id = id;
    req.body_case = GRIDSYNC__V1__REQUEST__BODY_PING;
    req.ping = &ping;
    uint8_t buf[64];
    size_t len = gridsync__v1__request__pack(&req, buf);
    assert_int_equal(zmq_send(d, buf, len, 0), (int) len);
    zmq_pollitem_t it = { d, 0, ZMQ_POLLIN, 0 };
    assert_int_equal(zmq_poll(&it, 1, S_WAIT_MS), 1);
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, d, 0) >= 0);
    Gridsync__V1__Reply *rep =
        gridsync__v1__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
    assert_non_null(rep);
    assert_int_equal(rep->body_case, GRIDSYNC__V1__REPLY__BODY_PING);
    assert_int_equal(rep->request_id, id);
    assert_true(rep->ping->registered);
    assert_string_equal(rep->ping->device_id, "dev-a");
    gridsync__v1__reply__free_unpacked(rep, NULL);
    zmq_msg_close(&m);
}

/* Count the socket events of one kind queued on a monitor, without waiting. */
static int
s_events(void *monitor, uint16_t kind)
{
    int n = 0;
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (zmq_msg_recv(&m, monitor, ZMQ_DONTWAIT) >= 0) {
        uint16_t ev;
        memcpy(&ev, zmq_msg_data(&m), sizeof ev);
        n += zmq_msg_more(&m) && ev == kind;
        if (zmq_msg_more(&m))
            zmq_msg_recv(&m, monitor, 0);   /* the endpoint frame */
    }
    zmq_msg_close(&m);
    return n;
}

/* The ZAP handler hands its endpoint over and closes the old socket, which
 * ends the pipe libzmq kept from each checked connection to it: the
 * connection itself stays open (one handshake, no disconnection) and is
 * served; the new handler checks new handshakes (an unknown key refused,
 * the enrolled one served); and it hands over again in its turn. */
static void
test_zap_handover(void **state)
{
    (void) state;
    s_env_t *e = s_start(NULL, 0);
    void *ctx = zmq_ctx_new();
    void *mon, *mon2, *mon3;
    void *d = s_dealer(e, ctx, &e->keys, "inproc://mon-1", &mon);
    s_ping(d, 1);
    assert_true(s_wait_metric(e, "gridsync_zap_handovers_total", 1) >= 1);
    s_ping(d, 2);
    s_ping(d, 3);
    /* one handshake: a connection lost and made again would show two */
    assert_int_equal(s_events(mon, ZMQ_EVENT_HANDSHAKE_SUCCEEDED), 1);

    /* an unknown key: refused by the new handler, never answered */
    void *stranger = s_dealer(e, ctx, NULL, "inproc://mon-2", &mon2);
    uint8_t junk[1] = { 0 };
    assert_int_equal(zmq_send(stranger, junk, 1, 0), 1);
    int64_t deadline = s_now_ms() + S_WAIT_MS, failed = 0;
    while (!failed && s_now_ms() < deadline) {
        zmq_pollitem_t it = { mon2, 0, ZMQ_POLLIN, 0 };
        zmq_poll(&it, 1, 100);
        failed = s_events(mon2, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    }
    assert_true(failed > 0);
    zmq_pollitem_t it = { stranger, 0, ZMQ_POLLIN, 0 };
    assert_int_equal(zmq_poll(&it, 1, 0), 0);

    /* the enrolled key on a new connection; then a second handover, and
     * both connections are still served */
    long long before = s_metric(e, "gridsync_zap_handovers_total");
    void *d2 = s_dealer(e, ctx, &e->keys, "inproc://mon-3", &mon3);
    s_ping(d2, 4);
    assert_true(s_wait_metric(e, "gridsync_zap_handovers_total", before + 1) >= before + 1);
    s_ping(d2, 5);
    s_ping(d, 6);
    assert_int_equal(s_events(mon, ZMQ_EVENT_HANDSHAKE_SUCCEEDED), 0);
    assert_int_equal(s_events(mon3, ZMQ_EVENT_HANDSHAKE_SUCCEEDED), 1);
    zmq_close(d);
    zmq_close(d2);
    zmq_close(stranger);
    zmq_close(mon);
    zmq_close(mon2);
    zmq_close(mon3);
    zmq_ctx_term(ctx);
    s_stop(e);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_connections_over_soft_limit),
        cmocka_unit_test(test_bound_hit_then_served),
        cmocka_unit_test(test_zap_handover),
    };
    return cmocka_run_group_tests_name("conns", tests, NULL, NULL);
}

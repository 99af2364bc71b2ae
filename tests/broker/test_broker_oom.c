/*
 * test_broker_oom: the broker when memory runs out or a thread cannot start.
 *
 * The writer's and the publisher's tables are allocated where a failure
 * can still be reported: gs_broker_new refuses to start, with a log line,
 * instead of a broker that starts and then dereferences NULL. A thread
 * that cannot start makes gs_broker_run stop and join the ones it had
 * started. A request the frontend cannot hand on for want of memory is
 * still answered. The test links the broker library with calloc and
 * pthread_create wrapped (-Wl,--wrap=...) so that they fail on demand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "gs_broker.h"
#include "gs_config.h"
#include "gs_testkit.h"

void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);

static size_t s_fail_from; /* calloc of at least this many bytes fails; 0 never */
static size_t s_failed;    /* callocs refused */

/* calloc on the frontend thread (the one running gs_broker_run here):
 * the s_frontend_nth-th from now fails; 0 never */
static pthread_t s_frontend;
static atomic_int s_frontend_nth;

static atomic_int s_thread_nth; /* the nth pthread_create from now fails; 0 never */

void *
__wrap_calloc(size_t n, size_t size)
{
    if (s_fail_from && size && n >= s_fail_from / size) {
        s_failed++;
        return NULL;
    }
    if (atomic_load(&s_frontend_nth) > 0 && pthread_equal(pthread_self(), s_frontend) &&
        atomic_fetch_sub(&s_frontend_nth, 1) == 1)
        return NULL;
    return __real_calloc(n, size);
}

int
__wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    if (atomic_load(&s_thread_nth) > 0 && atomic_fetch_sub(&s_thread_nth, 1) == 1)
        return EAGAIN;
    return __real_pthread_create(t, a, fn, arg);
}

static void
s_config(gs_config_t *c, const char *dir)
{
    char err[256], store[128];
    gs_config_defaults(c);
    snprintf(store, sizeof store, "%s/store", dir);
    assert_int_equal(gs_config_set(c, "store", store, err, sizeof err), 0);
    assert_int_equal(gs_config_set(c, "upload-endpoint", "tcp://127.0.0.1:*", err, sizeof err), 0);
    assert_int_equal(gs_config_set(c, "feed-endpoint", "tcp://127.0.0.1:*", err, sizeof err), 0);
    assert_int_equal(gs_config_set(c, "metrics-port", "0", err, sizeof err), 0);
    assert_int_equal(gs_config_set(c, "insecure-dev", "true", err, sizeof err), 0);
    assert_int_equal(gs_config_set(c, "batch-max-records", "1000000", err, sizeof err), 0);
}

/* With every calloc of fail_from bytes or more failing, gs_broker_new(c)
 * refuses to start (and one did fail); with memory, the same configuration
 * starts. */
static void
s_refused_then_starts(const gs_config_t *c, size_t fail_from)
{
    s_fail_from = fail_from;
    s_failed = 0;
    gs_broker_t *b = gs_broker_new(c);
    s_fail_from = 0;
    assert_true(s_failed > 0);
    assert_null(b);

    b = gs_broker_new(c);
    assert_non_null(b);
    gs_broker_destroy(&b);
    assert_null(b);
}

static void
test_writer_tables_out_of_memory(void **state)
{
    (void) state;
    char dir[64];
    gs_tk_tmpdir(dir, sizeof dir);
    gs_config_t c;
    s_config(&c, dir);

    /* the writer's tables for 1,000,000 records are megabytes: refuse
     * those, and nothing smaller */
    s_refused_then_starts(&c, 4u << 20);
    gs_tk_rmtree(dir);
}

/* The publisher's tables (the prefix table and the keys that follow the
 * feed) are allocated by gs_broker_new: without memory for them it
 * refuses to start. The writer's are small here, so only the publisher's
 * reach the failing size. */
static void
test_publisher_tables_out_of_memory(void **state)
{
    (void) state;
    char dir[64], err[256];
    gs_tk_tmpdir(dir, sizeof dir);
    gs_config_t c;
    s_config(&c, dir);
    assert_int_equal(gs_config_set(&c, "batch-max-records", "100", err, sizeof err), 0);

    s_refused_then_starts(&c, 32u << 10);
    gs_tk_rmtree(dir);
}

/* How many threads of this process have a name starting with "gs-". */
static int
s_broker_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[300], name[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", de->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(name, sizeof name, f))
                name[0] = 0;
            fclose(f);
        }
        n += strncmp(name, "gs-", 3) == 0;
    }
    closedir(d);
    return n;
}

/* Whichever of its threads cannot start (writer, publisher, each reader,
 * metrics), gs_broker_run says so and returns -1 with none of the others
 * left running, and the broker can be destroyed. */
static void
test_partial_start(void **state)
{
    (void) state;
    char dir[64];
    gs_tk_tmpdir(dir, sizeof dir);
    gs_config_t c;
    s_config(&c, dir);
    assert_true(c.readers == 2);
    for (int nth = 1; nth <= 5; nth++) {
        gs_broker_t *b = gs_broker_new(&c);
        assert_non_null(b);
        /* gs_broker_new's own (the connection counter, which may end
         * when gs_broker_run shuts the context down) */
        int base = s_broker_threads();
        atomic_store(&s_thread_nth, nth);
        assert_int_equal(gs_broker_run(b), -1);
        assert_int_equal(atomic_load(&s_thread_nth), 0); /* the nth was refused */
        assert_true(s_broker_threads() <= base);
        gs_broker_destroy(&b);
        assert_int_equal(s_broker_threads(), 0);
    }
    gs_tk_rmtree(dir);
}

typedef struct {
    gs_broker_t *b;
    int rc;
} s_run_t;

static void *
s_run_main(void *arg)
{
    s_run_t *r = arg;
    r->rc = gs_broker_run(r->b);
    return NULL;
}

/* Send an AdminRequest to the admin socket; its reply, or NULL after 5 s. */
static Gridsync__V1__AdminReply *
s_admin(void *dealer, const Gridsync__V1__AdminRequest *rq)
{
    size_t len = gridsync__v1__admin_request__get_packed_size(rq);
    uint8_t buf[512];
    assert_true(len <= sizeof buf);
    gridsync__v1__admin_request__pack(rq, buf);
    assert_int_equal(zmq_send(dealer, buf, len, 0), (int) len);
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, dealer, 0) < 0) {
        zmq_msg_close(&m);
        return NULL;
    }
    Gridsync__V1__AdminReply *r =
        gridsync__v1__admin_reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
    zmq_msg_close(&m);
    assert_non_null(r);
    return r;
}

/* gridsync_request_errors_total for reason (its name without REASON_);
 * 0 when absent. */
static long
s_errors(int port, const char *reason)
{
    char sample[128];
    snprintf(sample, sizeof sample, "gridsync_request_errors_total{reason=\"%s\"}", reason);
    double v = gs_tk_metric(port, sample);
    assert_true(v != GS_TK_METRIC_UNREADABLE);
    return v < 0 ? 0 : (long) v;
}

/* The admin path answers every request, even when the frontend runs out
 * of memory handing it on (REASON_BUSY, retry later), and every error it
 * answers is counted in gridsync_request_errors_total. */
static void
test_admin_out_of_memory(void **state)
{
    (void) state;
    char dir[64], err[256], port[16], ep[200];
    gs_tk_tmpdir(dir, sizeof dir);
    gs_config_t c;
    s_config(&c, dir);
    int mport = gs_tk_free_port();
    assert_true(mport > 0);
    snprintf(port, sizeof port, "%d", mport);
    assert_int_equal(gs_config_set(&c, "metrics-port", port, err, sizeof err), 0);
    int uport = gs_tk_free_port();
    while (uport && uport == mport)
        uport = gs_tk_free_port();
    assert_true(uport > 0);
    char upload_ep[64];
    snprintf(upload_ep, sizeof upload_ep, "tcp://127.0.0.1:%d", uport);
    assert_int_equal(gs_config_set(&c, "upload-endpoint", upload_ep, err, sizeof err), 0);
    s_run_t run = { gs_broker_new(&c), 0 };
    assert_non_null(run.b);
    assert_int_equal(pthread_create(&s_frontend, NULL, s_run_main, &run), 0);

    void *ctx = zmq_ctx_new();
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    int patience = 5000, zero = 0;
    zmq_setsockopt(dealer, ZMQ_RCVTIMEO, &patience, sizeof patience);
    zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof zero);
    snprintf(ep, sizeof ep, "ipc://%s/store/admin.sock", dir);
    assert_int_equal(zmq_connect(dealer, ep), 0);

    Gridsync__V1__AdminRequest rq = GRIDSYNC__V1__ADMIN_REQUEST__INIT;
    Gridsync__V1__HealthRequest health = GRIDSYNC__V1__HEALTH_REQUEST__INIT;
    rq.body_case = GRIDSYNC__V1__ADMIN_REQUEST__BODY_HEALTH;
    rq.health = &health;
    /* the frontend's allocations for one admin request fail in turn: the
     * request's arena, then its job; each request is still answered */
    int busy = 0;
    for (int nth = 1; nth <= 3; nth++) {
        rq.request_id = (uint64_t) nth;
        atomic_store(&s_frontend_nth, nth);
        Gridsync__V1__AdminReply *r = s_admin(dealer, &rq);
        atomic_store(&s_frontend_nth, 0);
        assert_non_null(r);
        assert_int_equal(r->request_id, (uint64_t) nth);
        if (r->error && r->error->reason == GRIDSYNC__V1__REASON__REASON_BUSY) {
            assert_non_null(strstr(r->error->message, "out of memory"));
            busy++;
        }
        gridsync__v1__admin_reply__free_unpacked(r, NULL);
    }
    assert_int_equal(busy, 2);
    assert_int_equal(s_errors(mport, "BUSY"), 2);

    /* the request endpoint too: without memory for the request's arena,
     * the answer is BUSY with the request's id, not "does not decode" */
    void *req_dealer = zmq_socket(ctx, ZMQ_DEALER);
    zmq_setsockopt(req_dealer, ZMQ_RCVTIMEO, &patience, sizeof patience);
    zmq_setsockopt(req_dealer, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(req_dealer, upload_ep), 0);
    Gridsync__V1__Request sreq = GRIDSYNC__V1__REQUEST__INIT;
    Gridsync__V1__SyncRequest sync = GRIDSYNC__V1__SYNC_REQUEST__INIT;
    char *all[] = { "" };
    sync.prefixes = all;
    sync.n_prefixes = 1;
    sreq.request_id = 77;
    sreq.body_case = GRIDSYNC__V1__REQUEST__BODY_SYNC;
    sreq.sync = &sync;
    uint8_t sbuf[128];
    size_t slen = gridsync__v1__request__pack(&sreq, sbuf);
    atomic_store(&s_frontend_nth, 1);
    assert_int_equal(zmq_send(req_dealer, sbuf, slen, 0), (int) slen);
    zmq_msg_t sm;
    zmq_msg_init(&sm);
    assert_true(zmq_msg_recv(&sm, req_dealer, 0) >= 0);
    atomic_store(&s_frontend_nth, 0);
    Gridsync__V1__Reply *sr =
        gridsync__v1__reply__unpack(NULL, zmq_msg_size(&sm), zmq_msg_data(&sm));
    zmq_msg_close(&sm);
    assert_non_null(sr);
    assert_int_equal(sr->request_id, 77);
    assert_non_null(sr->error);
    assert_int_equal(sr->error->reason, GRIDSYNC__V1__REASON__REASON_BUSY);
    gridsync__v1__reply__free_unpacked(sr, NULL);
    zmq_close(req_dealer);
    assert_int_equal(s_errors(mport, "BUSY"), 3);

    /* the readers' admin errors are counted too */
    Gridsync__V1__AdminRequest none = GRIDSYNC__V1__ADMIN_REQUEST__INIT;
    Gridsync__V1__AdminRequest get = GRIDSYNC__V1__ADMIN_REQUEST__INIT;
    Gridsync__V1__GetRequest g = GRIDSYNC__V1__GET_REQUEST__INIT;
    g.record_key = "no-such-record";
    get.body_case = GRIDSYNC__V1__ADMIN_REQUEST__BODY_GET;
    get.get = &g;
    Gridsync__V1__AdminRequest stats = GRIDSYNC__V1__ADMIN_REQUEST__INIT;
    Gridsync__V1__StatsRequest st = GRIDSYNC__V1__STATS_REQUEST__INIT;
    st.prefix = "44x";
    stats.body_case = GRIDSYNC__V1__ADMIN_REQUEST__BODY_STATS;
    stats.stats = &st;
    const Gridsync__V1__AdminRequest *bad[] = { &none, &get, &stats };
    const int want[] = { GRIDSYNC__V1__REASON__REASON_UNKNOWN_TYPE,
                         GRIDSYNC__V1__REASON__REASON_NOT_FOUND,
                         GRIDSYNC__V1__REASON__REASON_BAD_REQUEST };
    for (int i = 0; i < 3; i++) {
        Gridsync__V1__AdminReply *r = s_admin(dealer, bad[i]);
        assert_non_null(r);
        assert_non_null(r->error);
        assert_int_equal(r->error->reason, want[i]);
        gridsync__v1__admin_reply__free_unpacked(r, NULL);
    }
    assert_int_equal(s_errors(mport, "UNKNOWN_TYPE"), 1);
    assert_int_equal(s_errors(mport, "NOT_FOUND"), 1);
    assert_int_equal(s_errors(mport, "BAD_REQUEST"), 1);

    zmq_close(dealer);
    zmq_ctx_term(ctx);
    gs_broker_stop(run.b);
    pthread_join(s_frontend, NULL);
    assert_int_equal(run.rc, 0);
    gs_broker_destroy(&run.b);
    gs_tk_rmtree(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_tables_out_of_memory),
        cmocka_unit_test(test_publisher_tables_out_of_memory),
        cmocka_unit_test(test_partial_start),
        cmocka_unit_test(test_admin_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

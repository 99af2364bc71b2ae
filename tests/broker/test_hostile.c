/*
 * test_hostile: hostile input against the real gridsyncd, in its default
 * secure mode (CURVE, registry-backed ZAP).
 *
 * The sender is an enrolled device: a lost or stolen handheld, or a buggy
 * app, is what can reach the request handling at all, since an unknown key
 * never gets past the handshake (test_security covers wrong, revoked and
 * out-of-scope keys, test_broker garbage, truncated and oversize frames).
 * Each kind of abuse runs twice, a warm-up round and a measured round, and
 * each test shows:
 *  - the right error: every reply is checked, and the broker's /metrics
 *    counters moved by exactly what was sent;
 *  - nothing stored: the store's head seq did not move (read from the
 *    store file, as gridctl does);
 *  - the broker still serves everyone else: another device's upload is
 *    acked afterwards (during the flood, while it lasts);
 *  - no memory growth: the broker's VmRSS after the measured round is
 *    within S_RSS_SLACK_KB of what it was after the warm-up round (for
 *    messages of a million frames, of the first one's peak: see
 *    test_giant_message). A bound on retained memory, not a timing;
 *  - a clean exit afterwards (status 0; under the sanitizer build that
 *    includes LeakSanitizer's check of the broker).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "gs_arena.h"
#include "gs_client.h"
#include "gs_store.h"
#include "gs_testkit.h"
#include "gs_validate.h"
#include "gs_wire.h"

#define GRID_A "440305001001001"
#define S_PREFIX "440305"           /* both devices' assignment */
#define S_RSS_SLACK_KB (16 * 1024)  /* retained-memory bound per measured round */
#define S_WAIT_MS 30000             /* for one reply; generous for sanitizer builds */

/* The flood, per round: one-byte messages over several connections, then
 * messages of 100 empty frames. Separately, messages of a million empty
 * frames. */
#define S_FLOOD_SOCKETS 4
#define S_FLOOD_FRAMES 1000000
/* Under valgrind (make test-valgrind) the broker runs some fifty times
 * slower, and what that run looks for is memory errors, which a tenth of
 * the flood shows as well as all of it: the full flood runs in make test
 * and under the sanitizers. */
#define S_FLOOD_FRAMES_VALGRIND 100000
static size_t s_flood_frames = S_FLOOD_FRAMES;
#define S_FLOOD_MULTI 2000
#define S_FLOOD_EMPTY 100
#define S_FLOOD_GIANT 1000000

#if defined(__SANITIZE_ADDRESS__)
#define S_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define S_ASAN 1
#endif
#endif

typedef struct {
    char dir[64];               /* temp dir */
    char store[128];            /* store inside it */
    gs_tk_broker_t broker;      /* the daemon */
    gs_arena_t *arena;          /* records */
    void *ctx;                  /* ZeroMQ context for raw sockets */
    void *raw;                  /* DEALER of the hostile device, for hand-made frames */
    gs_curve_keys_t bad;        /* keys of the enrolled device that misbehaves */
    gs_curve_keys_t good;       /* keys of a device that behaves */
    gs_client_t *client;        /* the hostile device through the client library */
    int served;                 /* well-behaved uploads so far */
    int settles;                /* s_settle calls so far (upload ids) */
} s_env_t;

/* ---- environment ------------------------------------------------------------ */

static void
s_enrol(s_env_t *e, const char *id, gs_curve_keys_t *keys)
{
    memset(keys, 0, sizeof *keys);
    assert_int_equal(zmq_curve_keypair(keys->public_key, keys->secret_key), 0);
    memcpy(keys->server_public, e->broker.server_key, 41);
    gs_store_t *st = gs_store_new(e->store, NULL, NULL);
    assert_non_null(st);
    Gridsync__V1__Device d = GRIDSYNC__V1__DEVICE__INIT;
    d.device_id = (char *) id;
    d.collector_id = "col-1";
    d.public_key = keys->public_key;
    char *prefixes[1] = { S_PREFIX };
    d.prefixes = prefixes;
    d.n_prefixes = 1;
    d.role = GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE;
    assert_int_equal(gs_store_device_put(st, &d), 0);
    gs_store_destroy(&st);
}

static void *
s_dealer(s_env_t *e, const gs_curve_keys_t *k)
{
    void *s = zmq_socket(e->ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, k->server_public, 40);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, k->public_key, 40);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, k->secret_key, 40);
    assert_int_equal(zmq_connect(s, e->broker.upload), 0);
    return s;
}

static int
s_setup(void **state)
{
    s_env_t *e = calloc(1, sizeof *e);
    gs_tk_tmpdir(e->dir, sizeof e->dir);
    snprintf(e->store, sizeof e->store, "%s/store", e->dir);
#ifdef S_ASAN
    /* The broker child inherits this. ASan parks freed memory in a
     * quarantine (256 MiB by default) that fills across rounds and would
     * look like growth; a small one keeps the bound meaningful. */
    static char opts[512];
    const char *old = getenv("ASAN_OPTIONS");
    snprintf(opts, sizeof opts, "%s%squarantine_size_mb=8", old ? old : "",
             old && *old ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
#endif
    if (gs_tk_broker_start_mode(&e->broker, e->store, NULL, 1))
        return -1;
    s_enrol(e, "dev-bad", &e->bad);
    s_enrol(e, "dev-good", &e->good);
    e->arena = gs_arena_new(0);
    e->ctx = zmq_ctx_new();
    e->raw = s_dealer(e, &e->bad);
    gs_client_opts_t o;
    gs_client_opts_init(&o);
    o.timeout_ms = S_WAIT_MS;
    o.retries = 1;
    o.curve = e->bad;
    e->client = gs_client_new(e->broker.upload, &o);
    assert_non_null(e->client);
    *state = e;
    return 0;
}

static int
s_teardown(void **state)
{
    s_env_t *e = *state;
    gs_client_destroy(&e->client);
    zmq_close(e->raw);
    zmq_ctx_term(e->ctx);
    int st = gs_tk_broker_stop(&e->broker, SIGTERM);
    gs_arena_destroy(&e->arena);
    int clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!clean)
        fprintf(stderr, "gridsyncd did not exit cleanly (status 0x%x); see %s.log\n", st,
                e->store);
    else
        gs_tk_rmtree(e->dir);
    free(e);
    return clean ? 0 : -1;
}

/* ---- observing the broker ---------------------------------------------------- */

static uint64_t
s_head(s_env_t *e)
{
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.read_only = 1;
    gs_store_t *st = gs_store_new(e->store, &o, NULL);
    assert_non_null(st);
    uint64_t head = 0;
    assert_int_equal(gs_store_head(st, &head), 0);
    gs_store_destroy(&st);
    return head;
}

/* A memory figure of the broker from /proc/PID/status ("VmRSS", "VmHWM"), kB. */
static long
s_status_kb(s_env_t *e, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int) e->broker.pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t fl = strlen(field);
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
            kb = strtol(line + fl + 1, NULL, 10);
            break;
        }
    fclose(f);
    assert_true(kb > 0);
    return kb;
}

/* The value of one sample ("name" or "name{label=\"v\"}") from the
 * metrics endpoint; 0 when absent, as Prometheus counters are before their
 * first increment. */
static uint64_t
s_metric(s_env_t *e, const char *sample)
{
    double v = gs_tk_metric(e->broker.metrics_port, sample);
    assert_true(v != GS_TK_METRIC_UNREADABLE && v != GS_TK_METRIC_UNANSWERED);
    return v < 0 ? 0 : (uint64_t) v;
}

static uint64_t
s_errors(s_env_t *e, const char *reason)
{
    char sample[128];
    snprintf(sample, sizeof sample, "gridsync_request_errors_total{reason=\"%s\"}", reason);
    return s_metric(e, sample);
}

/* Another device uploads one new household and gets it accepted; returns
 * its seq. */
static uint64_t
s_served(s_env_t *e)
{
    gs_client_opts_t o;
    gs_client_opts_init(&o);
    o.timeout_ms = S_WAIT_MS;
    o.retries = 1;
    o.curve = e->good;
    gs_client_t *c = gs_client_new(e->broker.upload, &o);
    assert_non_null(c);
    gs_arena_t *a = gs_arena_new(0);
    int k = e->served++;
    char hid[32], addr[32], uid[32];
    snprintf(hid, sizeof hid, "H-good-%d", k);
    snprintf(addr, sizeof addr, "ADDR-good-%d", k);
    snprintf(uid, sizeof uid, "good-%d", k);
    Gridsync__V1__Record *rec = gs_tk_household(a, GRID_A, hid, addr, 2, 500000 + 10 * k);
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = "dev-good";
    up.upload_id = uid;
    up.records = &rec;
    up.n_records = 1;
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t err;
    int rc = gs_client_upload(c, &up, &ack, &err);
    if (rc)
        fprintf(stderr, "good upload: %s: %s\n", gs_client_strerror(rc), err.message);
    assert_int_equal(rc, 0);
    assert_int_equal(ack->n_results, 1);
    assert_int_equal(ack->results[0]->status, GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    uint64_t seq = ack->results[0]->seq;
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_arena_destroy(&a);
    gs_client_destroy(&c);
    return seq;
}

/* Send one hand-made frame as the hostile device; the Reply (caller frees). */
static Gridsync__V1__Reply *
s_raw_call(s_env_t *e, const void *data, size_t len)
{
    assert_int_equal(zmq_send(e->raw, data, len, 0), (int) len);
    zmq_pollitem_t it = { e->raw, 0, ZMQ_POLLIN, 0 };
    assert_int_equal(zmq_poll(&it, 1, S_WAIT_MS), 1);
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, e->raw, 0) >= 0);
    Gridsync__V1__Reply *rep =
        gridsync__v1__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
    zmq_msg_close(&m);
    assert_non_null(rep);
    return rep;
}

static void
s_expect_error(Gridsync__V1__Reply *rep, int reason, uint64_t request_id)
{
    assert_int_equal(rep->body_case, GRIDSYNC__V1__REPLY__BODY_ERROR);
    if (rep->error->reason != (Gridsync__V1__Reason) reason)
        fprintf(stderr, "got %s: %s\n", gs_reason_name(rep->error->reason),
                rep->error->message);
    assert_int_equal(rep->error->reason, reason);
    assert_int_equal(rep->request_id, request_id);
    assert_true(strlen(rep->error->message) > 10);
    gridsync__v1__reply__free_unpacked(rep, NULL);
}

/* Upload through the client library as the hostile device; every record
 * must come back rejected with reason. */
static void
s_upload_rejected(s_env_t *e, const char *uid, Gridsync__V1__Record **recs, size_t n,
                  int reason)
{
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = "dev-bad";
    up.upload_id = (char *) uid;
    up.records = recs;
    up.n_records = n;
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t err;
    int rc = gs_client_upload(e->client, &up, &ack, &err);
    if (rc)
        fprintf(stderr, "upload %s: %s: %s\n", uid, gs_client_strerror(rc), err.message);
    assert_int_equal(rc, 0);
    assert_int_equal(ack->reason, 0);
    assert_int_equal(ack->n_results, n);
    for (size_t i = 0; i < n; i++) {
        const Gridsync__V1__RecordResult *r = ack->results[i];
        if (r->reason != (Gridsync__V1__Reason) reason)
            fprintf(stderr, "record %zu: %s: %s\n", i, gs_reason_name(r->reason), r->message);
        assert_int_equal(r->status, GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_REJECTED);
        assert_int_equal(r->reason, reason);
        assert_int_equal(r->seq, 0);
        assert_true(strlen(r->message) > 5);
    }
    gridsync__v1__ack__free_unpacked(ack, NULL);
}

/* Wait until the broker has released what earlier requests held: a
 * rejected one-record upload passes the frontend and the writer, which
 * frees a batch's requests only after sending its replies, so its answer
 * comes after the release of everything sent before it. */
static void
s_settle(s_env_t *e)
{
    Gridsync__V1__Record empty = GRIDSYNC__V1__RECORD__INIT;
    Gridsync__V1__Record *rec = &empty;
    char uid[32];
    snprintf(uid, sizeof uid, "settle-%d", e->settles++);
    s_upload_rejected(e, uid, &rec, 1, GRIDSYNC__V1__REASON__REASON_REQUIRED);
}

/* Run an abuse twice and check what every test checks. round returns how
 * many records it legitimately stored (a well-behaved upload meanwhile). */
static void
s_abuse(s_env_t *e, const char *what, int (*round)(s_env_t *e, int n))
{
    uint64_t head0 = s_head(e);
    int stored = round(e, 0);
    s_settle(e);
    long warm = s_status_kb(e, "VmRSS");
    stored += round(e, 1);
    s_settle(e);
    long after = s_status_kb(e, "VmRSS");
    printf("%s: broker VmRSS %ld kB after the warm-up round, %ld kB after the second "
           "(peak %ld kB)\n", what, warm, after, s_status_kb(e, "VmHWM"));
    assert_true(after - warm < S_RSS_SLACK_KB);
    assert_int_equal(s_head(e), head0 + (uint64_t) stored);
    uint64_t seq = s_served(e);
    assert_int_equal(seq, head0 + (uint64_t) stored + 1);
}

/* ---- unknown enum values --------------------------------------------------- */

#define S_ENUM_UPLOADS 30
#define S_ENUM_KINDS 6

static int
s_round_enums(s_env_t *e, int n)
{
    uint64_t rejected0 = s_metric(e, "gridsync_records_total{status=\"rejected\"}");
    for (int i = 0; i < S_ENUM_UPLOADS; i++) {
        gs_arena_reset(e->arena);
        Gridsync__V1__Record *recs[S_ENUM_KINDS];
        for (int k = 0; k < S_ENUM_KINDS; k++) {
            char hid[32];
            snprintf(hid, sizeof hid, "H-enum-%d-%d-%d", n, i, k);
            recs[k] = gs_tk_household(e->arena, GRID_A, hid, NULL, 2, (uint32_t) (i * 10 + k));
        }
        /* proto3 keeps values it does not know as plain numbers */
        recs[0]->household->members[0]->sex = (Gridsync__V1__Sex) 99;
        recs[1]->household->members[1]->id_type = (Gridsync__V1__IdType) 77;
        recs[2]->household->meta->status = (Gridsync__V1__RecordStatus) 5;
        recs[3]->household->members[1]->relation = (Gridsync__V1__Relation) 1000;
        recs[4]->household->members[0]->population_type = (Gridsync__V1__PopulationType) -3;
        recs[5]->household->members[0]->residence_status =
            (Gridsync__V1__ResidenceStatus) 0x7fffffff;
        char uid[32];
        snprintf(uid, sizeof uid, "enum-%d-%d", n, i);
        s_upload_rejected(e, uid, recs, S_ENUM_KINDS, GRIDSYNC__V1__REASON__REASON_BAD_ENUM);
    }
    assert_int_equal(s_metric(e, "gridsync_records_total{status=\"rejected\"}") - rejected0,
                     S_ENUM_UPLOADS * S_ENUM_KINDS);
    return 0;
}

/* Enum values this broker does not know: each record REJECTED with
 * REASON_BAD_ENUM, never stored as a number nobody can interpret. */
static void
test_unknown_enums(void **state)
{
    s_abuse(*state, "unknown enums", s_round_enums);
}

/* ---- deep nesting ----------------------------------------------------------- */

#define S_NEST_DEPTH 100000
#define S_NEST_REQUESTS 10

/* A Request whose field 2 (upload) opens S_NEST_DEPTH groups: the old
 * proto2 group wire types, which protobuf-c does not take. */
static uint8_t *
s_nested_groups(size_t *len)
{
    uint8_t *b = malloc(2 + S_NEST_DEPTH);
    size_t n = 0;
    b[n++] = 0x08; /* request_id = 3 */
    b[n++] = 0x03;
    for (int i = 0; i < S_NEST_DEPTH; i++)
        b[n++] = (2 << 3) | 3; /* field 2, start group */
    *len = n;
    return b;
}

static size_t
s_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t) (v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t) v;
    return n;
}

/* A valid sync Request (request_id 4) followed by unknown field 1000 holding
 * S_NEST_DEPTH levels of length-delimited fields, each inside the last. */
static uint8_t *
s_nested_unknown(size_t *len)
{
    size_t cap = 64 + (size_t) S_NEST_DEPTH * 8;
    uint8_t *b = malloc(cap);
    /* built inside out at the end of the buffer */
    size_t start = cap, inner = 0;
    for (int i = 0; i < S_NEST_DEPTH; i++) {
        uint8_t hdr[16];
        size_t h = s_varint(hdr, (1000 << 3) | 2);
        h += s_varint(hdr + h, inner);
        start -= h;
        memcpy(b + start, hdr, h);
        inner += h;
    }
    uint8_t head[32];
    size_t n = 0;
    head[n++] = 0x08; /* request_id = 4 */
    head[n++] = 0x04;
    head[n++] = 0x1a; /* sync { prefixes: "440305" } */
    head[n++] = 8;
    head[n++] = 0x0a;
    head[n++] = 6;
    memcpy(head + n, S_PREFIX, 6);
    n += 6;
    memmove(b + n, b + start, inner);
    memcpy(b, head, n);
    *len = n + inner;
    return b;
}

static int
s_round_nesting(s_env_t *e, int n)
{
    (void) n;
    uint64_t malformed0 = s_errors(e, "MALFORMED");
    uint64_t syncs0 = s_metric(e, "gridsync_sync_requests_total");
    size_t glen, ulen;
    uint8_t *groups = s_nested_groups(&glen);
    uint8_t *unknown = s_nested_unknown(&ulen);
    for (int i = 0; i < S_NEST_REQUESTS; i++) {
        /* groups fail the pre-scan cleanly; the request_id read before
         * them is echoed */
        s_expect_error(s_raw_call(e, groups, glen), GRIDSYNC__V1__REASON__REASON_MALFORMED, 3);
        /* protobuf-c keeps an unknown field as opaque bytes without
         * descending into it: the request is served as a plain sync */
        Gridsync__V1__Reply *rep = s_raw_call(e, unknown, ulen);
        assert_int_equal(rep->body_case, GRIDSYNC__V1__REPLY__BODY_SYNC);
        assert_int_equal(rep->request_id, 4);
        gridsync__v1__reply__free_unpacked(rep, NULL);
    }
    free(groups);
    free(unknown);
    assert_int_equal(s_errors(e, "MALFORMED") - malformed0, S_NEST_REQUESTS);
    assert_int_equal(s_metric(e, "gridsync_sync_requests_total") - syncs0, S_NEST_REQUESTS);
    return 0;
}

/* Data nested 100,000 deep. The schema has no recursive message, so known
 * fields cannot nest deeper than a few levels; depth can only come from
 * group wire types (refused by the decoder: MALFORMED) or from unknown
 * length-delimited fields (kept as opaque bytes, never parsed: the request
 * is served and its depth costs nothing). */
static void
test_deep_nesting(void **state)
{
    s_abuse(*state, "deep nesting", s_round_nesting);
}

/* ---- unknown fields ---------------------------------------------------------- */

typedef struct {
    int found;                  /* the record was read */
    size_t unknown;             /* unknown fields in it, at any depth */
    int marker;                 /* its packed bytes hold the smuggled text */
} s_stored_t;

static int
s_stored_record(void *arg, const gs_record_view_t *r)
{
    s_stored_t *st = arg;
    st->found = 1;
    st->marker = memmem(r->data, r->len, "religion:", 9) != NULL;
    Gridsync__V1__Record *rec = gridsync__v1__record__unpack(NULL, r->len, r->data);
    assert_non_null(rec);
    st->unknown = gs_wire_strip_unknown(&rec->base, NULL);
    gridsync__v1__record__free_unpacked(rec, NULL);
    return 0;
}

/* Upload through the client library as the well-behaved device. */
static Gridsync__V1__Ack *
s_good_upload(s_env_t *e, const char *uid, Gridsync__V1__Record *rec)
{
    gs_client_opts_t o;
    gs_client_opts_init(&o);
    o.timeout_ms = S_WAIT_MS;
    o.retries = 1;
    o.curve = e->good;
    gs_client_t *c = gs_client_new(e->broker.upload, &o);
    assert_non_null(c);
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = "dev-good";
    up.upload_id = (char *) uid;
    up.records = &rec;
    up.n_records = 1;
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t err;
    int rc = gs_client_upload(c, &up, &ack, &err);
    if (rc)
        fprintf(stderr, "upload %s: %s: %s\n", uid, gs_client_strerror(rc), err.message);
    assert_int_equal(rc, 0);
    assert_int_equal(ack->n_results, 1);
    gs_client_destroy(&c);
    return ack;
}

/* A record whose Person carries fields this schema does not know (a way to
 * send religion or health past the privacy filter, which drops the known
 * `restricted` sub-message only) is stored without them; the same record
 * without them is then the same content (UNCHANGED), so dedup stays exact. */
static void
test_unknown_fields_not_stored(void **state)
{
    s_env_t *e = *state;
    gs_arena_reset(e->arena);
    Gridsync__V1__Record *rec =
        gs_tk_household(e->arena, GRID_A, "H-unknown-1", "ADDR-unknown-1", 2, 700000);
    /* field 150 of Person, length-delimited, as protobuf-c keeps it */
    static uint8_t smuggled[] = "\x0f" "religion: xxxxx";
    ProtobufCMessageUnknownField uf = { 150, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED,
                                        sizeof smuggled - 1, smuggled };
    Gridsync__V1__Person *p = rec->household->members[1];
    p->base.n_unknown_fields = 1;
    p->base.unknown_fields = &uf;
    Gridsync__V1__Ack *ack = s_good_upload(e, "unknown-1", rec);
    assert_int_equal(ack->results[0]->status,
                     GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    uint64_t version = ack->results[0]->version;
    gridsync__v1__ack__free_unpacked(ack, NULL);

    gs_store_opts_t so;
    gs_store_opts_init(&so);
    so.read_only = 1;
    gs_store_t *st = gs_store_new(e->store, &so, NULL);
    assert_non_null(st);
    s_stored_t got = { 0, 0, 0 };
    assert_int_equal(gs_store_get(st, GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD,
                                  "H-unknown-1", s_stored_record, &got),
                     0);
    gs_store_destroy(&st);
    assert_true(got.found);
    assert_int_equal(got.unknown, 0);
    assert_false(got.marker);

    p->base.n_unknown_fields = 0;
    p->base.unknown_fields = NULL;
    rec->household->meta->base_version = version;
    ack = s_good_upload(e, "unknown-2", rec);
    assert_int_equal(ack->results[0]->status,
                     GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_UNCHANGED);
    gridsync__v1__ack__free_unpacked(ack, NULL);
}

/* ---- NUL inside text --------------------------------------------------------- */

/* A name "ab\0cd": protobuf-c would hand it on as "ab", so the broker
 * refuses it from the wire bytes, before decoding, with the reason
 * data-model.md gives for control characters. Nothing is stored, and the
 * same record with a plain name is then accepted. */
static void
test_nul_in_text(void **state)
{
    s_env_t *e = *state;
    gs_arena_reset(e->arena);
    uint64_t head0 = s_head(e);
    uint64_t bad0 = s_errors(e, "BAD_ENCODING");
    Gridsync__V1__Record *rec =
        gs_tk_household(e->arena, GRID_A, "H-nul-1", "ADDR-nul-1", 2, 800000);
    rec->household->members[0]->name = "ab#cd";
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = "dev-bad";
    up.upload_id = "nul-1";
    up.records = &rec;
    up.n_records = 1;
    Gridsync__V1__Request rq = GRIDSYNC__V1__REQUEST__INIT;
    rq.request_id = 4242;
    rq.body_case = GRIDSYNC__V1__REQUEST__BODY_UPLOAD;
    rq.upload = &up;
    size_t n = gridsync__v1__request__get_packed_size(&rq);
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    gridsync__v1__request__pack(&rq, buf);
    uint8_t *at = memmem(buf, n, "ab#cd", 5);
    assert_non_null(at);
    at[2] = 0;
    Gridsync__V1__Reply *rep = s_raw_call(e, buf, n);
    free(buf);
    assert_int_equal(rep->body_case, GRIDSYNC__V1__REPLY__BODY_ERROR);
    assert_non_null(strstr(rep->error->message,
                           "records[0].household.members[0].name has a control character "
                           "(byte 3)"));
    s_expect_error(rep, GRIDSYNC__V1__REASON__REASON_BAD_ENCODING, 4242);
    assert_int_equal(s_errors(e, "BAD_ENCODING"), bad0 + 1);
    assert_int_equal(s_head(e), head0);

    rec->household->members[0]->name = "abcd";
    Gridsync__V1__Ack *ack = s_good_upload(e, "nul-2", rec);
    assert_int_equal(ack->results[0]->status, GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    assert_int_equal(s_head(e), head0 + 1);
}

/* ---- count and size limits --------------------------------------------------- */

#define S_LIMIT_UPLOADS 10
#define S_MANY_RECORDS 500000       /* empty records: 1 MB on the wire */

/* A packed upload Request of n empty records (2 bytes each on the wire). */
static uint8_t *
s_empty_records(size_t n, uint64_t request_id, const char *uid, size_t *len)
{
    Gridsync__V1__Record *empty = malloc(sizeof *empty);
    gridsync__v1__record__init(empty);
    Gridsync__V1__Record **recs = malloc(n * sizeof *recs);
    for (size_t i = 0; i < n; i++)
        recs[i] = empty;
    uint8_t *b = gs_tk_upload_request("dev-bad", uid, recs, n, request_id, len);
    free(recs);
    free(empty);
    return b;
}

static int
s_round_counts(s_env_t *e, int n)
{
    uint64_t too_many0 = s_errors(e, "TOO_MANY_RECORDS");
    for (int i = 0; i < S_LIMIT_UPLOADS; i++) {
        char uid[32];
        snprintf(uid, sizeof uid, "many-%d-%d", n, i);
        /* one over max-records (1000) */
        size_t len;
        uint8_t *b = s_empty_records(1001, 11, uid, &len);
        s_expect_error(s_raw_call(e, b, len), GRIDSYNC__V1__REASON__REASON_TOO_MANY_RECORDS,
                       11);
        free(b);
        /* and far over it, in a message well inside max-message-bytes:
         * the decoder builds every record before the count is checked */
        b = s_empty_records(S_MANY_RECORDS, 12, uid, &len);
        s_expect_error(s_raw_call(e, b, len), GRIDSYNC__V1__REASON__REASON_TOO_MANY_RECORDS,
                       12);
        free(b);

        /* inside a record: 33 members (limit 32), 9 phones (limit 8) */
        gs_arena_reset(e->arena);
        char hid[32];
        snprintf(hid, sizeof hid, "H-many-%d-%d", n, i);
        Gridsync__V1__Record *recs[2];
        recs[0] = gs_tk_household(e->arena, GRID_A, hid, NULL, 33, (uint32_t) i * 100);
        snprintf(hid, sizeof hid, "H-phones-%d-%d", n, i);
        recs[1] = gs_tk_household(e->arena, GRID_A, hid, NULL, 1, (uint32_t) i * 100 + 50);
        Gridsync__V1__Person *p = recs[1]->household->members[0];
        p->n_phones = 9;
        p->phones = gs_arena_alloc(e->arena, 9 * sizeof *p->phones);
        for (int k = 0; k < 9; k++)
            p->phones[k] = "13800138000";
        snprintf(uid, sizeof uid, "members-%d-%d", n, i);
        s_upload_rejected(e, uid, recs, 2, GRIDSYNC__V1__REASON__REASON_TOO_MANY);
    }
    assert_int_equal(s_errors(e, "TOO_MANY_RECORDS") - too_many0, 2 * S_LIMIT_UPLOADS);
    return 0;
}

#define S_BLOWUP_RECORDS 2000000     /* empty records: 4 MB, just under max-message-bytes */
#define S_BLOWUP_PEAK_KB (64 * 1024)  /* bound on the broker's peak memory growth */

/* A frame of max-message-bytes full of empty records. Refused from its raw
 * bytes (gs_prescan) with the count and the limit in the message, before
 * protobuf-c builds a struct per record: the broker's peak resident memory
 * (VmHWM) grows by far less than the hundreds of MB a decode would take
 * (a bound on memory, not a timing). The broker serves a normal upload
 * afterwards. */
static void
test_decode_blowup(void **state)
{
    s_env_t *e = *state;
    uint64_t head0 = s_head(e);
    s_served(e);
    long rss0 = s_status_kb(e, "VmRSS");
    long hwm0 = s_status_kb(e, "VmHWM");
    size_t len;
    uint8_t *b = s_empty_records(S_BLOWUP_RECORDS, 21, "blowup", &len);
    assert_true(len > (3u << 20) && len < (4u << 20));
    for (int i = 0; i < 2; i++) {
        Gridsync__V1__Reply *rep = s_raw_call(e, b, len);
        assert_int_equal(rep->body_case, GRIDSYNC__V1__REPLY__BODY_ERROR);
        assert_string_equal(rep->error->message,
                            "upload has 2000000 records; at most 1000 per upload");
        s_expect_error(rep, GRIDSYNC__V1__REASON__REASON_TOO_MANY_RECORDS, 21);
    }
    free(b);
    long hwm = s_status_kb(e, "VmHWM");
    long anon = s_status_kb(e, "RssAnon");
    printf("decode blow-up: broker VmRSS %ld kB before, peak %ld kB before and %ld kB after; "
           "RssAnon %ld kB\n", rss0, hwm0, hwm, anon);
    assert_true(hwm - (hwm0 > rss0 ? hwm0 : rss0) < S_BLOWUP_PEAK_KB);
    assert_int_equal(s_served(e), head0 + 2);
}

/* Uploads over max-records get REASON_TOO_MANY_RECORDS, lists inside a
 * record over their limits REASON_TOO_MANY. */
static void
test_count_limits(void **state)
{
    s_abuse(*state, "count limits", s_round_counts);
}

#define S_HUGE_TEXT (3u << 20)      /* under max-message-bytes (4 MiB) */

static int
s_round_strings(s_env_t *e, int n)
{
    char name[66], addr[258];
    memset(name, 'N', 65);
    name[65] = 0;
    memset(addr, 'A', 257);
    addr[257] = 0;
    char *huge = malloc(S_HUGE_TEXT + 1);
    /* valid UTF-8 all along: 3-byte characters */
    for (size_t k = 0; k + 3 <= S_HUGE_TEXT; k += 3)
        memcpy(huge + k, "\xe8\xb7\xaf", 3);
    huge[S_HUGE_TEXT - S_HUGE_TEXT % 3] = 0;
    for (int i = 0; i < S_LIMIT_UPLOADS; i++) {
        gs_arena_reset(e->arena);
        Gridsync__V1__Record *recs[3];
        char hid[32];
        for (int k = 0; k < 3; k++) {
            snprintf(hid, sizeof hid, "H-long-%d-%d-%d", n, i, k);
            recs[k] = gs_tk_household(e->arena, GRID_A, hid, NULL, 1,
                                      (uint32_t) (i * 10 + k));
        }
        recs[0]->household->members[0]->name = name;  /* names: 64 bytes */
        recs[1]->household->address = addr;            /* other text: 256 bytes */
        recs[2]->household->address = huge;
        char uid[32];
        snprintf(uid, sizeof uid, "long-%d-%d", n, i);
        s_upload_rejected(e, uid, recs, 3, GRIDSYNC__V1__REASON__REASON_TOO_LONG);
    }
    free(huge);
    return 0;
}

/* Strings over their limits, up to one of 3 MiB: REASON_TOO_LONG. */
static void
test_string_limits(void **state)
{
    s_abuse(*state, "string limits", s_round_strings);
}

/* ---- millions of tiny frames --------------------------------------------------- */

typedef struct {
    s_env_t *e;                 /* environment (read-only here) */
    int index;                  /* which flooder */
    size_t frames;              /* one-byte messages to send */
    size_t multi;               /* messages of S_FLOOD_EMPTY empty frames to send */
    uint64_t malformed;         /* MALFORMED replies received */
    uint64_t other;             /* any other reply (stays 0) */
    int done;                   /* the marker's reply came back */
} s_flooder_t;

/* Read whatever replies are waiting; returns 1 when the marker's came. */
static int
s_flood_drain(s_flooder_t *f, void *s)
{
    int marker = 0;
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (zmq_msg_recv(&m, s, ZMQ_DONTWAIT) >= 0) {
        Gridsync__V1__Reply *rep =
            gridsync__v1__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        if (rep && rep->body_case == GRIDSYNC__V1__REPLY__BODY_ERROR &&
            rep->error->reason == GRIDSYNC__V1__REASON__REASON_MALFORMED)
            f->malformed++;
        else if (rep && rep->body_case == GRIDSYNC__V1__REPLY__BODY_SYNC &&
                 rep->request_id == 99)
            marker = 1;
        else
            f->other++;
        if (rep)
            gridsync__v1__reply__free_unpacked(rep, NULL);
    }
    zmq_msg_close(&m);
    return marker;
}

static void *
s_flood_main(void *arg)
{
    s_flooder_t *f = arg;
    s_env_t *e = f->e;
    void *s = zmq_socket(e->ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, e->bad.server_public, 40);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, e->bad.public_key, 40);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, e->bad.secret_key, 40);
    zmq_connect(s, e->broker.upload);
    /* as fast as the broker takes them (a full queue blocks the send) */
    for (size_t i = 0; i < f->frames; i++) {
        uint8_t byte = (uint8_t) (i * 31 + (size_t) f->index);
        zmq_send(s, &byte, 1, 0);
        if ((i & 1023) == 0)
            s_flood_drain(f, s);
    }
    for (size_t i = 0; i < f->multi; i++) {
        for (int k = 0; k < S_FLOOD_EMPTY; k++)
            zmq_send(s, "", 0, k + 1 < S_FLOOD_EMPTY ? ZMQ_SNDMORE : 0);
        if ((i & 63) == 0)
            s_flood_drain(f, s);
    }
    /* Marker: a sync request behind everything sent. Requests from one
     * connection are handled in order, so its answer means the broker has
     * handled the flood. An answer can be dropped when this connection's
     * reply queue is full, hence the resend after a quiet second. */
    static const uint8_t marker[] = { 0x08, 99, 0x1a, 8, 0x0a, 6, '4', '4', '0', '3', '0', '5' };
    while (!f->done) {
        zmq_send(s, marker, sizeof marker, 0);
        for (int quiet = 0; !f->done && quiet < 1;) {
            zmq_pollitem_t it = { s, 0, ZMQ_POLLIN, 0 };
            if (zmq_poll(&it, 1, 1000) <= 0)
                quiet++;
            else
                f->done = s_flood_drain(f, s);
        }
    }
    zmq_close(s);
    return NULL;
}

static int
s_round_flood(s_env_t *e, int n)
{
    (void) n;
    uint64_t malformed0 = s_errors(e, "MALFORMED");
    uint64_t dropped0 = s_metric(e, "gridsync_dropped_frames_total");
    s_flooder_t f[S_FLOOD_SOCKETS];
    pthread_t th[S_FLOOD_SOCKETS];
    for (int i = 0; i < S_FLOOD_SOCKETS; i++) {
        f[i] = (s_flooder_t) { .e = e, .index = i, .frames = s_flood_frames / S_FLOOD_SOCKETS,
                               .multi = i == 0 ? S_FLOOD_MULTI : 0 };
        assert_int_equal(pthread_create(&th[i], NULL, s_flood_main, &f[i]), 0);
    }
    /* everyone else is served while the flood lasts */
    s_served(e);
    uint64_t received = 0;
    for (int i = 0; i < S_FLOOD_SOCKETS; i++) {
        pthread_join(th[i], NULL);
        assert_true(f[i].done);
        assert_int_equal(f[i].other, 0);
        received += f[i].malformed;
    }
    /* every message was answered MALFORMED (or counted as a drop); the
     * answers that reached the flooders are MALFORMED too (some may have
     * been dropped at a full reply queue: counted as unroutable) */
    uint64_t sent = s_flood_frames + S_FLOOD_MULTI;
    uint64_t counted = (s_errors(e, "MALFORMED") - malformed0) +
                       (s_metric(e, "gridsync_dropped_frames_total") - dropped0);
    printf("flood: %llu messages sent, %llu counted by the broker, %llu answers read\n",
           (unsigned long long) sent, (unsigned long long) counted,
           (unsigned long long) received);
    assert_int_equal(counted, sent);
    assert_true(received > 0 && received <= sent);
    return 1;
}

/* A million one-byte messages from four connections as fast as they go, and
 * thousands of messages of 100 empty frames, while another device uploads.
 * Every one is answered MALFORMED. */
static void
test_tiny_frames(void **state)
{
    s_abuse(*state, "tiny frames", s_round_flood);
}

#define S_GIANTS 2
/* a million frames through a broker under valgrind on a loaded machine
 * took longer than S_WAIT_MS: a longer bound there */
static int s_giant_wait_ms = S_WAIT_MS;

/* One message of a million empty frames. libzmq delivers a message only
 * once its last frame has arrived and bounds each frame (max-message-bytes),
 * not the number of frames, so the broker holds every frame until the end
 * (docs/security.md says so). What the broker itself must do: answer
 * MALFORMED, keep serving, store nothing, and not keep more memory with
 * each such message: after the first, the broker's resident memory stays
 * within the first one's peak. */
static void
test_giant_message(void **state)
{
    s_env_t *e = *state;
    uint64_t head0 = s_head(e);
    uint64_t malformed0 = s_errors(e, "MALFORMED");
    long peak = 0;
    for (int g = 0; g < S_GIANTS; g++) {
        for (int k = 0; k < S_FLOOD_GIANT; k++)
            zmq_send(e->raw, "", 0, k + 1 < S_FLOOD_GIANT ? ZMQ_SNDMORE : 0);
        zmq_pollitem_t it = { e->raw, 0, ZMQ_POLLIN, 0 };
        assert_int_equal(zmq_poll(&it, 1, s_giant_wait_ms), 1);
        zmq_msg_t m;
        zmq_msg_init(&m);
        assert_true(zmq_msg_recv(&m, e->raw, 0) >= 0);
        Gridsync__V1__Reply *rep =
            gridsync__v1__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        zmq_msg_close(&m);
        assert_non_null(rep);
        assert_int_equal(rep->body_case, GRIDSYNC__V1__REPLY__BODY_ERROR);
        assert_int_equal(rep->error->reason, GRIDSYNC__V1__REASON__REASON_MALFORMED);
        assert_non_null(strstr(rep->error->message, "got 1000000"));
        gridsync__v1__reply__free_unpacked(rep, NULL);
        long rss = s_status_kb(e, "VmRSS");
        if (g == 0)
            peak = s_status_kb(e, "VmHWM");
        printf("giant message %d: broker VmRSS %ld kB (peak after the first %ld kB)\n", g + 1,
               rss, peak);
        assert_true(rss < peak + S_RSS_SLACK_KB);
        s_served(e);
    }
    assert_int_equal(s_errors(e, "MALFORMED") - malformed0, S_GIANTS);
    assert_int_equal(s_head(e), head0 + S_GIANTS);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *vg = getenv("GS_TEST_VALGRIND");
    if (vg && *vg && strcmp(vg, "0") != 0)
        s_flood_frames = S_FLOOD_FRAMES_VALGRIND, s_giant_wait_ms = 10 * S_WAIT_MS;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unknown_enums, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_deep_nesting, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_count_limits, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_decode_blowup, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_fields_not_stored, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_string_limits, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_nul_in_text, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_tiny_frames, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_giant_message, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("hostile", tests, NULL, NULL);
}

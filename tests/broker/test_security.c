/*
 * test_security: CURVE identities and grid-scoped authorisation against the
 * real gridsyncd.
 *
 * The registry is written straight into the store by this process while the
 * broker runs (LMDB serialises writers across processes), as gridctl does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "gs_arena.h"
#include "gs_client.h"
#include "gs_store.h"
#include "gs_store_debug.h"
#include "gs_testkit.h"

#define GRID_A "440305001001001"
#define GRID_X "440305002001001"   /* outside device A's community */

typedef struct {
    char dir[64];
    char store[128];
    gs_tk_broker_t broker;
    gs_arena_t *arena;
} s_env_t;

/* A broker in CURVE mode on a fresh temporary store, with the extra
 * "--name=value" arguments (NULL-terminated, may be NULL), and an arena;
 * -1 when the broker did not start. s_env_stop undoes it. */
static int
s_env_start(s_env_t *e, const char *const *extra)
{
    memset(e, 0, sizeof *e);
    gs_tk_tmpdir(e->dir, sizeof e->dir);
    snprintf(e->store, sizeof e->store, "%s/store", e->dir);
    if (gs_tk_broker_start_mode(&e->broker, e->store, extra, 1))
        return -1;
    assert_int_equal(strlen(e->broker.server_key), 40);
    e->arena = gs_arena_new(0);
    return 0;
}

static void
s_env_stop(s_env_t *e)
{
    gs_tk_broker_stop(&e->broker, SIGTERM);
    gs_arena_destroy(&e->arena);
    gs_tk_rmtree(e->dir);
}

static int
s_setup(void **state)
{
    s_env_t *e = calloc(1, sizeof *e);
    if (s_env_start(e, NULL))
        return -1;
    *state = e;
    return 0;
}

static int
s_teardown(void **state)
{
    s_env_t *e = *state;
    s_env_stop(e);
    free(e);
    return 0;
}

/* Enrol (or update) a principal; returns its keys. */
static void
s_enrol(s_env_t *e, const char *id, int role, const char *prefix, int revoked,
        gs_curve_keys_t *keys, int new_keys)
{
    if (new_keys) {
        memset(keys, 0, sizeof *keys);
        assert_int_equal(zmq_curve_keypair(keys->public_key, keys->secret_key), 0);
        memcpy(keys->server_public, e->broker.server_key, 41);
    }
    gs_store_t *st = gs_store_new(e->store, NULL, NULL);
    assert_non_null(st);
    Gridsync__V1__Device d = GRIDSYNC__V1__DEVICE__INIT;
    d.device_id = (char *) id;
    d.collector_id = "col-1";
    d.public_key = keys->public_key;
    char *prefixes[1] = { (char *) prefix };
    d.prefixes = prefixes;
    d.n_prefixes = prefix ? 1 : 0;  /* none: an ADMIN, which needs none */
    d.role = (Gridsync__V1__PrincipalRole) role;
    d.status = revoked ? GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_REVOKED
                       : GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_ACTIVE;
    assert_int_equal(gs_store_device_put(st, &d), 0);
    gs_store_destroy(&st);
}

/* Write a principal with no prefixes straight into the registry's tables,
 * as a store written before the registry refused such entries may hold. */
static void
s_enrol_unscoped(s_env_t *e, const char *id, int role, gs_curve_keys_t *keys)
{
    memset(keys, 0, sizeof *keys);
    assert_int_equal(zmq_curve_keypair(keys->public_key, keys->secret_key), 0);
    memcpy(keys->server_public, e->broker.server_key, 41);
    Gridsync__V1__Device d = GRIDSYNC__V1__DEVICE__INIT;
    d.device_id = (char *) id;
    d.collector_id = "col-1";
    d.public_key = keys->public_key;
    d.role = (Gridsync__V1__PrincipalRole) role;
    gs_store_t *st = gs_store_new(e->store, NULL, NULL);
    assert_non_null(st);
    /* the registry itself refuses it */
    assert_int_equal(gs_store_device_put(st, &d), GS_EINVAL);
    assert_non_null(strstr(gs_store_errdetail(), "at least one grid prefix"));
    uint8_t buf[256];
    size_t n = gridsync__v1__device__pack(&d, buf);
    assert_int_equal(gs_store_debug_put(st, "devices", id, strlen(id), buf, n), 0);
    assert_int_equal(gs_store_debug_put(st, "device_keys", keys->public_key, 40, id, strlen(id)),
                     0);
    gs_store_destroy(&st);
}

static gs_client_t *
s_client(s_env_t *e, const gs_curve_keys_t *keys, int timeout_ms, int retries)
{
    gs_client_opts_t o;
    gs_client_opts_init(&o);
    o.timeout_ms = timeout_ms;
    o.retries = retries;
    if (keys)
        o.curve = *keys;
    gs_client_t *c = gs_client_new(e->broker.upload, &o);
    assert_non_null(c);
    return c;
}

static int
s_upload(gs_client_t *c, const char *device, const char *uid, Gridsync__V1__Record **recs,
         size_t n, Gridsync__V1__Ack **ack, gs_client_error_t *err)
{
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = (char *) device;
    up.upload_id = (char *) uid;
    up.records = recs;
    up.n_records = n;
    return gs_client_upload(c, &up, ack, err);
}

static uint64_t
s_head(s_env_t *e)
{
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.read_only = 1;
    gs_store_t *st = gs_store_new(e->store, &o, NULL);
    uint64_t head = 0;
    gs_store_head(st, &head);
    gs_store_destroy(&st);
    return head;
}

/* An enrolled device uploads inside its grids; a record outside them is
 * rejected on its own with a clear reason. */
static void
test_device_scope(void **state)
{
    s_env_t *e = *state;
    gs_curve_keys_t k;
    s_enrol(e, "dev-a", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE, "440305001001", 0,
            &k, 1);
    gs_client_t *c = s_client(e, &k, 5000, 2);
    Gridsync__V1__Record *recs[2] = {
        gs_tk_household(e->arena, GRID_A, "H-in", "ADDR-in", 2, 10),
        gs_tk_household(e->arena, GRID_X, "H-out", "ADDR-out", 2, 20),
    };
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t err;
    assert_int_equal(s_upload(c, "dev-a", "u1", recs, 2, &ack, &err), 0);
    assert_int_equal(ack->results[0]->status, GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    assert_int_equal(ack->results[1]->status, GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_REJECTED);
    assert_int_equal(ack->results[1]->reason, GRIDSYNC__V1__REASON__REASON_OUT_OF_SCOPE);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    assert_int_equal(s_head(e), 1); /* only the in-scope record */

    /* naming another device in the upload is refused */
    assert_int_equal(s_upload(c, "dev-b", "u2", recs, 1, &ack, &err), GS_CLIENT_ESERVER);
    assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_UNAUTHORISED);

    /* pulling outside its grids is refused; inside works */
    const char *out[] = { "440305002" };
    Gridsync__V1__SyncResponse *r = NULL;
    assert_int_equal(gs_client_sync(c, out, 1, 0, 0, 0, &r, &err), GS_CLIENT_ESERVER);
    assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_OUT_OF_SCOPE);
    const char *in[] = { GRID_A };
    assert_int_equal(gs_client_sync(c, in, 1, 0, 0, 0, &r, &err), 0);
    assert_int_equal(r->n_events, 1);
    gridsync__v1__sync_response__free_unpacked(r, NULL);
    gs_client_destroy(&c);
}

/* Deny by default: a DEVICE entry with no prefixes (in the registry from
 * before it refused them) may not upload anything, and a DISTRICT one may
 * not sync "" (everything). An ADMIN, by its role, may. */
static void
test_empty_prefixes_deny(void **state)
{
    s_env_t *e = *state;
    gs_curve_keys_t k;
    s_enrol_unscoped(e, "dev-none", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE, &k);
    gs_client_t *c = s_client(e, &k, 5000, 2);
    Gridsync__V1__Record *rec = gs_tk_household(e->arena, GRID_A, "H-1", "ADDR-1", 1, 1);
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t err;
    int rc = s_upload(c, "dev-none", "u1", &rec, 1, &ack, &err);
    if (rc == 0)
        gridsync__v1__ack__free_unpacked(ack, NULL);
    assert_int_equal(rc, GS_CLIENT_ESERVER);
    assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_OUT_OF_SCOPE);
    assert_non_null(strstr(err.message, "no grid prefixes"));
    const char *all[] = { "" };
    Gridsync__V1__SyncResponse *r = NULL;
    assert_int_equal(gs_client_sync(c, all, 1, 0, 0, 0, &r, &err), GS_CLIENT_ESERVER);
    assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_OUT_OF_SCOPE);
    gs_client_destroy(&c);
    assert_int_equal(s_head(e), 0);

    gs_curve_keys_t dk;
    s_enrol_unscoped(e, "district-none", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT,
                     &dk);
    c = s_client(e, &dk, 5000, 2);
    assert_int_equal(gs_client_sync(c, all, 1, 0, 0, 0, &r, &err), GS_CLIENT_ESERVER);
    assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_OUT_OF_SCOPE);
    const char *one[] = { GRID_A };
    assert_int_equal(gs_client_sync(c, one, 1, 0, 0, 0, &r, &err), GS_CLIENT_ESERVER);
    assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_OUT_OF_SCOPE);
    gs_client_destroy(&c);

    /* an ADMIN needs no prefixes: it reads everywhere by its role */
    gs_curve_keys_t ak;
    s_enrol(e, "admin-1", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN, NULL, 0, &ak, 1);
    c = s_client(e, &ak, 5000, 2);
    assert_int_equal(gs_client_sync(c, all, 1, 0, 0, 0, &r, &err), 0);
    gridsync__v1__sync_response__free_unpacked(r, NULL);
    gs_client_destroy(&c);
}

/* Ping says who the broker takes a key for: an enrolled device with its
 * prefixes, a DISTRICT entry without prefixes (answered, not refused, with
 * an empty scope, while its other requests stay refused), and an ADMIN
 * with scope_all; a key revoked while its connection lives is refused. */
static void
test_ping_reports_scope(void **state)
{
    s_env_t *e = *state;
    gs_client_error_t err;
    Gridsync__V1__PingReply *p = NULL;
    int64_t rtt = -1;

    gs_curve_keys_t k;
    s_enrol(e, "dev-a", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE, "440305001001", 0,
            &k, 1);
    gs_client_t *c = s_client(e, &k, 5000, 0);
    Gridsync__V1__Record *rec = gs_tk_household(e->arena, GRID_A, "H-1", "ADDR-1", 1, 1);
    Gridsync__V1__Ack *ack = NULL;
    assert_int_equal(s_upload(c, "dev-a", "u1", &rec, 1, &ack, &err), 0);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    assert_int_equal(gs_client_ping(c, &p, &rtt, &err), 0);
    assert_true(p->registered);
    assert_true(p->secure);
    assert_string_equal(p->device_id, "dev-a");
    assert_int_equal(p->role, GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE);
    assert_int_equal(p->status, GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_ACTIVE);
    assert_false(p->scope_all);
    assert_int_equal(p->n_prefixes, 1);
    assert_string_equal(p->prefixes[0], "440305001001");
    assert_int_equal(p->head_seq, 1);
    assert_true(p->store_epoch != 0);
    assert_true(p->broker_time > 0);
    assert_true(strlen(p->version) > 0);
    assert_true(rtt >= 0);
    gridsync__v1__ping_reply__free_unpacked(p, NULL);

    /* revoked on the live connection: refused like any other request */
    s_enrol(e, "dev-a", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE, "440305001001", 1,
            &k, 0);
    assert_int_equal(gs_client_ping(c, &p, &rtt, &err), GS_CLIENT_ESERVER);
    assert_null(p);
    assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_UNAUTHORISED);
    gs_client_destroy(&c);

    /* no prefixes: answered with an empty scope; everything else refused */
    gs_curve_keys_t dk;
    s_enrol_unscoped(e, "district-none", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT,
                     &dk);
    c = s_client(e, &dk, 5000, 0);
    assert_int_equal(gs_client_ping(c, &p, &rtt, &err), 0);
    assert_true(p->registered);
    assert_string_equal(p->device_id, "district-none");
    assert_int_equal(p->role, GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT);
    assert_false(p->scope_all);
    assert_int_equal(p->n_prefixes, 0);
    gridsync__v1__ping_reply__free_unpacked(p, NULL);
    const char *all[] = { "" };
    Gridsync__V1__SyncResponse *r = NULL;
    assert_int_equal(gs_client_sync(c, all, 1, 0, 0, 0, &r, &err), GS_CLIENT_ESERVER);
    assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_OUT_OF_SCOPE);
    gs_client_destroy(&c);

    gs_curve_keys_t ak;
    s_enrol(e, "admin-1", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN, NULL, 0, &ak, 1);
    c = s_client(e, &ak, 5000, 0);
    assert_int_equal(gs_client_ping(c, &p, &rtt, &err), 0);
    assert_int_equal(p->role, GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN);
    assert_true(p->scope_all);
    assert_int_equal(p->n_prefixes, 0);
    gridsync__v1__ping_reply__free_unpacked(p, NULL);
    gs_client_destroy(&c);
    /* three answered, one refused (counted as an error) */
    assert_true(gs_tk_metric(e->broker.metrics_port, "gridsync_ping_requests_total") == 3);
}

/* Unknown keys and plaintext never get an answer (refused at the
 * handshake), and nothing is stored. The client says so at once, from its
 * socket monitor, rather than timing out: the key is not enrolled, or the
 * client has no keys for a broker in CURVE mode. The timeout is long, so a
 * client that waited it out would show in the test's run time, not its
 * result: the result is the error code and message. */
static void
test_unknown_key_and_plaintext_refused(void **state)
{
    s_env_t *e = *state;
    gs_curve_keys_t k;
    memset(&k, 0, sizeof k);
    assert_int_equal(zmq_curve_keypair(k.public_key, k.secret_key), 0);
    memcpy(k.server_public, e->broker.server_key, 41);
    Gridsync__V1__Record *rec = gs_tk_household(e->arena, GRID_A, "H-1", "ADDR-1", 1, 1);
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t err;

    gs_client_t *c = s_client(e, &k, 30000, 0);
    assert_int_equal(s_upload(c, "dev-a", "u1", &rec, 1, &ack, &err), GS_CLIENT_EAUTH);
    assert_non_null(strstr(err.message, "handshake refused"));
    assert_non_null(strstr(err.message, "is the key enrolled"));
    assert_non_null(strstr(gs_client_strerror(GS_CLIENT_EAUTH),
                           "handshake refused: is the key enrolled / is the broker in CURVE "
                           "mode?"));
    /* the same client tries again with a fresh connection, and is refused again */
    assert_int_equal(s_upload(c, "dev-a", "u1", &rec, 1, &ack, &err), GS_CLIENT_EAUTH);
    gs_client_destroy(&c);

    c = s_client(e, NULL, 30000, 0);
    assert_int_equal(s_upload(c, "dev-a", "u1", &rec, 1, &ack, &err), GS_CLIENT_EAUTH);
    assert_non_null(strstr(err.message, "CURVE mode and this client has no keys"));
    gs_client_destroy(&c);
    assert_int_equal(s_head(e), 0);

    /* while an enrolled device is served as usual */
    gs_curve_keys_t good;
    s_enrol(e, "dev-a", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE, "440305", 0, &good,
            1);
    c = s_client(e, &good, 5000, 2);
    assert_int_equal(s_upload(c, "dev-a", "u1", &rec, 1, &ack, &err), 0);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_client_destroy(&c);
}

/* Revoking applies to a live connection at its next request, and to new
 * handshakes; district systems cannot upload. */
static void
test_revoke_live_and_roles(void **state)
{
    s_env_t *e = *state;
    gs_curve_keys_t k;
    s_enrol(e, "dev-a", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE, "440305", 0, &k, 1);
    gs_client_t *c = s_client(e, &k, 5000, 2);
    Gridsync__V1__Record *rec = gs_tk_household(e->arena, GRID_A, "H-1", "ADDR-1", 1, 1);
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t err;
    assert_int_equal(s_upload(c, "dev-a", "u1", &rec, 1, &ack, &err), 0);
    gridsync__v1__ack__free_unpacked(ack, NULL);

    s_enrol(e, "dev-a", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE, "440305", 1, &k, 0);
    Gridsync__V1__Record *rec2 = gs_tk_household(e->arena, GRID_A, "H-2", "ADDR-2", 1, 5);
    assert_int_equal(s_upload(c, "dev-a", "u2", &rec2, 1, &ack, &err), GS_CLIENT_ESERVER);
    assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_UNAUTHORISED);
    assert_non_null(strstr(err.message, "revoked"));
    gs_client_destroy(&c);
    /* a new connection with the revoked key is refused at the handshake */
    c = s_client(e, &k, 300, 0);
    assert_int_equal(s_upload(c, "dev-a", "u3", &rec2, 1, &ack, &err), GS_CLIENT_EAUTH);
    assert_non_null(strstr(err.message, "handshake refused"));
    gs_client_destroy(&c);
    assert_int_equal(s_head(e), 1);

    gs_curve_keys_t dk;
    s_enrol(e, "district-1", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT, "440305", 0,
            &dk, 1);
    c = s_client(e, &dk, 5000, 2);
    assert_int_equal(s_upload(c, "district-1", "u4", &rec2, 1, &ack, &err), GS_CLIENT_ESERVER);
    assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_UNAUTHORISED);
    gs_client_destroy(&c);
}

/* A district system's subscription outside its prefixes is refused by the
 * broker (XPUB_MANUAL): it receives nothing from there, while its own
 * prefix flows. */
static void
test_subscription_scope(void **state)
{
    s_env_t *e = *state;
    gs_curve_keys_t dk, dev;
    s_enrol(e, "district-1", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT, "440305001",
            0, &dk, 1);
    s_enrol(e, "dev-a", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE, "440305", 0, &dev,
            1);

    /* the client library refuses to follow an out-of-scope prefix */
    gs_sub_opts_t so;
    gs_sub_opts_init(&so);
    so.curve = dk;
    so.timeout_ms = 5000;
    const char *bad[] = { "440305002" };
    int err = 0;
    assert_null(gs_sub_new(e->broker.feed, e->broker.upload, bad, 1, NULL, 0, &so, &err));
    assert_int_equal(err, GS_CLIENT_ESERVER);

    /* a raw SUB asking for both: only its own prefix is delivered */
    void *ctx = zmq_ctx_new();
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    zmq_setsockopt(sub, ZMQ_CURVE_SERVERKEY, dk.server_public, 41);
    zmq_setsockopt(sub, ZMQ_CURVE_PUBLICKEY, dk.public_key, 41);
    zmq_setsockopt(sub, ZMQ_CURVE_SECRETKEY, dk.secret_key, 41);
    int patience = 30000;   /* a silent feed fails the test, not hangs it */
    zmq_setsockopt(sub, ZMQ_RCVTIMEO, &patience, sizeof patience);
    assert_int_equal(zmq_connect(sub, e->broker.feed), 0);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "440305002", 9);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "440305001", 9);

    gs_client_t *c = s_client(e, &dev, 5000, 2);
    /* wait until the allowed subscription is live: its heartbeat arrives */
    for (;;) {
        char topic[32];
        int n = zmq_recv(sub, topic, sizeof topic, 0);
        assert_true(n >= 0);
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, sub, 0);
        zmq_msg_close(&m);
        if (n == 9 && !memcmp(topic, "440305001", 9))
            break;
    }
    /* out-of-scope record first, then an in-scope one: if the first were
     * delivered it would arrive before the second on this connection */
    Gridsync__V1__Record *rx = gs_tk_household(e->arena, GRID_X, "H-x", "ADDR-x", 1, 3);
    Gridsync__V1__Record *ra = gs_tk_household(e->arena, GRID_A, "H-a", "ADDR-a", 1, 4);
    Gridsync__V1__Ack *ack;
    gs_client_error_t cerr;
    assert_int_equal(s_upload(c, "dev-a", "u1", &rx, 1, &ack, &cerr), 0);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    assert_int_equal(s_upload(c, "dev-a", "u2", &ra, 1, &ack, &cerr), 0);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    for (;;) {
        char topic[32];
        int n = zmq_recv(sub, topic, sizeof topic, 0);
        assert_true(n >= 9);
        assert_memory_equal(topic, "440305001", 9); /* never 440305002 */
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, sub, 0);
        zmq_msg_close(&m);
        if (n == 15)
            break; /* the in-scope event */
    }
    zmq_close(sub);
    zmq_ctx_term(ctx);
    gs_client_destroy(&c);
}

/* A CURVE SUB following prefix, with a monitor on its connection. */
typedef struct {
    void *sub;                  /* the subscriber */
    void *mon;                  /* PAIR reading its socket events */
} s_follower_t;

static void
s_follow(void *ctx, s_env_t *e, const gs_curve_keys_t *k, const char *prefix,
         const char *name, s_follower_t *f)
{
    f->sub = zmq_socket(ctx, ZMQ_SUB);
    zmq_setsockopt(f->sub, ZMQ_CURVE_SERVERKEY, k->server_public, 41);
    zmq_setsockopt(f->sub, ZMQ_CURVE_PUBLICKEY, k->public_key, 41);
    zmq_setsockopt(f->sub, ZMQ_CURVE_SECRETKEY, k->secret_key, 41);
    int linger = 0;
    zmq_setsockopt(f->sub, ZMQ_LINGER, &linger, sizeof linger);
    /* subscriptions queue like messages: thousands of them must not stop
     * at the default high-water mark (1,000) */
    int hwm = 0;
    zmq_setsockopt(f->sub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    char mep[64];
    snprintf(mep, sizeof mep, "inproc://mon-%s", name);
    assert_int_equal(zmq_socket_monitor(f->sub, mep, ZMQ_EVENT_ALL), 0);
    f->mon = zmq_socket(ctx, ZMQ_PAIR);
    zmq_setsockopt(f->mon, ZMQ_LINGER, &linger, sizeof linger);
    /* a broker that never cuts the victim off fails the test, not hangs it */
    int patience = 30000;
    zmq_setsockopt(f->mon, ZMQ_RCVTIMEO, &patience, sizeof patience);
    zmq_setsockopt(f->sub, ZMQ_RCVTIMEO, &patience, sizeof patience);
    assert_int_equal(zmq_connect(f->mon, mep), 0);
    assert_int_equal(zmq_connect(f->sub, e->broker.feed), 0);
    zmq_setsockopt(f->sub, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
}

/* Block for the next socket event of f; returns its number. */
static int
s_next_event(s_follower_t *f)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, f->mon, 0) >= 6);
    uint16_t ev;
    memcpy(&ev, zmq_msg_data(&m), 2);
    zmq_msg_close(&m);
    zmq_msg_init(&m);
    zmq_msg_recv(&m, f->mon, 0);    /* the endpoint */
    zmq_msg_close(&m);
    return ev;
}

/* Seconds since t0, for the waits below: each fails the test past 30 s
 * instead of hanging the run, even while other messages keep coming. */
static long
s_seconds_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long) (now.tv_sec - t0->tv_sec);
}

/* Drop every message f holds now. */
static void
s_drain(s_follower_t *f)
{
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        int n = zmq_msg_recv(&m, f->sub, ZMQ_DONTWAIT);
        zmq_msg_close(&m);
        if (n < 0)
            break;
    }
}

/* Wait for socket event want of f, passing over the others. Bounded. */
static void
s_wait_event(s_follower_t *f, int want)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (s_next_event(f) != want)
        if (s_seconds_since(&t0) >= 30)
            fail_msg("no socket event %d within 30 s", want);
}

/* Wait for an event of f: a heartbeat (topic = prefix) when want_len is
 * the prefix's length, or a record event (topic of 15 digits). Bounded. */
static void
s_wait_message(s_follower_t *f, size_t want_len)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (s_seconds_since(&t0) >= 30)
            fail_msg("no message with a topic of %zu characters within 30 s", want_len);
        char topic[32];
        int n = zmq_recv(f->sub, topic, sizeof topic, 0);
        assert_true(n >= 0);
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, f->sub, 0);
        zmq_msg_close(&m);
        if ((size_t) n == want_len)
            return;
    }
}

static void
s_unfollow(s_follower_t *f)
{
    zmq_socket_monitor(f->sub, NULL, 0);
    zmq_close(f->mon);
    zmq_close(f->sub);
}

/* Revoking a district system's key cuts its open live-feed connection:
 * the broker reopens the feed socket, the revoked key fails the new
 * handshake, and the other subscriber carries on after reconnecting. */
static void
test_revoke_cuts_live_feed(void **state)
{
    s_env_t *e = *state;
    gs_curve_keys_t k1, k2, dev;
    s_enrol(e, "district-1", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT, "440305",
            0, &k1, 1);
    s_enrol(e, "district-2", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT, "440305",
            0, &k2, 1);
    s_enrol(e, "dev-a", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE, "440305", 0, &dev,
            1);
    void *ctx = zmq_ctx_new();
    s_follower_t victim, other;
    s_follow(ctx, e, &k1, "440305001", "victim", &victim);
    s_follow(ctx, e, &k2, "440305001", "other", &other);
    s_wait_message(&victim, 9);     /* both subscriptions are live */
    s_wait_message(&other, 9);

    gs_client_t *c = s_client(e, &dev, 5000, 2);
    Gridsync__V1__Record *r1 = gs_tk_household(e->arena, GRID_A, "H-r1", "ADDR-r1", 1, 7);
    Gridsync__V1__Ack *ack;
    gs_client_error_t cerr;
    assert_int_equal(s_upload(c, "dev-a", "r1", &r1, 1, &ack, &cerr), 0);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    s_wait_message(&victim, 15);
    s_wait_message(&other, 15);

    /* revoke district-1: within a heartbeat the broker drops every feed
     * connection, and the victim's key fails the handshake that follows */
    s_enrol(e, "district-1", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT, "440305",
            1, &k1, 0);
    s_wait_event(&victim, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    /* the other reconnects and subscribes again: its heartbeat returns */
    s_wait_event(&other, ZMQ_EVENT_DISCONNECTED);
    s_wait_event(&other, ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    /* drop what both held from before: a heartbeat the other received on
     * its old connection is still queued, and taken for the new
     * subscription's it would let the record below be published before
     * the broker has applied that subscription (lost, as for any follower
     * not yet subscribed). Then the new record: the other receives it,
     * the victim, refused, cannot */
    s_drain(&victim);
    s_drain(&other);
    s_wait_message(&other, 9);
    Gridsync__V1__Record *r2 = gs_tk_household(e->arena, GRID_A, "H-r2", "ADDR-r2", 1, 8);
    assert_int_equal(s_upload(c, "dev-a", "r2", &r2, 1, &ack, &cerr), 0);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    s_wait_message(&other, 15);
    zmq_pollitem_t it = { victim.sub, 0, ZMQ_POLLIN, 0 };
    assert_int_equal(zmq_poll(&it, 1, 0), 0);

    gs_client_destroy(&c);
    s_unfollow(&victim);
    s_unfollow(&other);
    zmq_ctx_term(ctx);
}

/* The value of a metric line "name value" (name with its labels, if any)
 * from the broker's metrics endpoint; -1 when it is not there (or when the
 * endpoint dropped the scrape). */
static double
s_metric(s_env_t *e, const char *name)
{
    double v = gs_tk_metric(e->broker.metrics_port, name);
    assert_true(v != GS_TK_METRIC_UNREADABLE);
    return v < 0 ? -1 : v;
}

/* Wait (bounded) until a metric reads want: the broker handles feed
 * control messages on its own thread, after the client has sent them. */
static void
s_metric_reaches(s_env_t *e, const char *name, double want)
{
    for (int i = 0; i < 1000 && s_metric(e, name) != want; i++) {
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    assert_true(s_metric(e, name) == want);
}

/* Wait for a message of f whose topic is exactly topic (a heartbeat of
 * that prefix, or an event of that grid); fails past f's patience. */
static void
s_wait_topic(s_follower_t *f, const char *topic)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        assert_true(now.tv_sec - t0.tv_sec < 30); /* a prefix without heartbeats fails */
        char t[32];
        int n = zmq_recv(f->sub, t, sizeof t, 0);
        assert_true(n >= 0);
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, f->sub, 0);
        zmq_msg_close(&m);
        if ((size_t) n == strlen(topic) && memcmp(t, topic, (size_t) n) == 0)
            return;
    }
}

/* The i-th grid of street 440305000: distinct prefixes at the grid level,
 * all under district 440305. */
static void
s_grid(int i, char out[16])
{
    snprintf(out, 16, "440305%09d", i);
}

#define S_MANY 5000     /* more prefixes than the broker once tracked (4,096) */

/* Wait for socket event want of f while reading (and dropping) whatever
 * f receives: a subscriber whose queue is full reads nothing from its
 * connection, so it would not see the broker close it, and a SUB sends
 * its subscriptions again only when the application calls into it.
 * want = -1: only drop what is queued. Bounded. */
static void
s_event_draining(s_follower_t *f, int want)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        assert_true(now.tv_sec - t0.tv_sec < 30);
        s_drain(f);
        if (want < 0)
            return;
        zmq_pollitem_t it = { f->mon, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&it, 1, 10) == 1 && s_next_event(f) == want)
            return;
    }
}

/* One district key follows S_MANY grids of its district; two more keys
 * subscribe after them. The later prefix gets its heartbeats; revoking a
 * later key while the S_MANY are live cuts it off the feed, and so does
 * revoking the key with S_MANY prefixes. The broker once tracked 4,096
 * prefixes and followers: past them, no heartbeats and no revocation. */
static void
test_revoke_after_many_prefixes(void **state)
{
    s_env_t *e = *state;
    gs_curve_keys_t kf, kv, ko, dev;
    s_enrol(e, "district-f", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT, "440305",
            0, &kf, 1);
    s_enrol(e, "district-v", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT, "440305",
            0, &kv, 1);
    s_enrol(e, "district-o", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT, "440305",
            0, &ko, 1);
    s_enrol(e, "dev-a", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE, "440305", 0, &dev,
            1);
    void *ctx = zmq_ctx_new();
    s_follower_t filler, victim, other;
    char grid[16];
    s_grid(0, grid);
    s_follow(ctx, e, &kf, grid, "filler", &filler);
    for (int i = 1; i < S_MANY; i++) {
        s_grid(i, grid);
        zmq_setsockopt(filler.sub, ZMQ_SUBSCRIBE, grid, strlen(grid));
    }
    s_wait_topic(&filler, grid);    /* the last one is live */
    assert_true(s_metric(e, "gridsync_feed_subscriptions") == S_MANY);

    s_follow(ctx, e, &kv, "440305001", "victim", &victim);
    s_follow(ctx, e, &ko, "440305001", "other", &other);
    s_wait_topic(&victim, "440305001");
    s_wait_topic(&other, "440305001");
    assert_true(s_metric(e, "gridsync_feed_subscriptions") == S_MANY + 1);
    s_wait_event(&other, ZMQ_EVENT_HANDSHAKE_SUCCEEDED);   /* the first connection's */

    /* revoke a later key: cut off within a heartbeat */
    s_enrol(e, "district-v", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT, "440305",
            1, &kv, 0);
    s_wait_event(&victim, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    assert_true(s_metric(e, "gridsync_feed_rebinds_total") == 1);
    /* the others connect again and subscribe again, the filler all S_MANY
     * (libzmq's SUB sends them again when the application next calls it) */
    s_event_draining(&other, ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    s_wait_event(&filler, ZMQ_EVENT_HANDSHAKE_SUCCEEDED);   /* the first connection's */
    s_event_draining(&filler, ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    s_event_draining(&other, -1);
    s_wait_topic(&other, "440305001");
    s_metric_reaches(e, "gridsync_feed_subscriptions", S_MANY + 1);

    /* an event committed now reaches the other, never the victim */
    s_drain(&victim);
    gs_client_t *c = s_client(e, &dev, 5000, 2);
    Gridsync__V1__Record *r1 = gs_tk_household(e->arena, GRID_A, "H-m1", "ADDR-m1", 1, 7);
    Gridsync__V1__Ack *ack;
    gs_client_error_t cerr;
    assert_int_equal(s_upload(c, "dev-a", "m1", &r1, 1, &ack, &cerr), 0);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    s_wait_topic(&other, GRID_A);
    zmq_pollitem_t it = { victim.sub, 0, ZMQ_POLLIN, 0 };
    assert_int_equal(zmq_poll(&it, 1, 0), 0);

    /* revoke the key with S_MANY prefixes: cut off as well */
    s_enrol(e, "district-f", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT, "440305",
            1, &kf, 0);
    s_event_draining(&filler, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    assert_true(s_metric(e, "gridsync_feed_rebinds_total") == 2);
    s_event_draining(&other, ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    s_event_draining(&other, -1);
    s_wait_topic(&other, "440305001");
    s_metric_reaches(e, "gridsync_feed_subscriptions", 1);

    gs_client_destroy(&c);
    s_unfollow(&filler);
    s_unfollow(&victim);
    s_unfollow(&other);
    zmq_ctx_term(ctx);
}

/* A subscriber that subscribes and unsubscribes, or subscribes and
 * disconnects, over and over, leaves nothing behind: the prefix table
 * holds only live subscriptions, and a prefix subscribed afterwards gets
 * its heartbeats. */
static void
test_subscription_churn(void **state)
{
    s_env_t *e = *state;
    gs_curve_keys_t kc, ko;
    s_enrol(e, "district-c", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT, "440305",
            0, &kc, 1);
    s_enrol(e, "district-o", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT, "440305",
            0, &ko, 1);
    void *ctx = zmq_ctx_new();
    char grid[16];
    for (int round = 0; round < 6; round++) {
        char name[16];
        snprintf(name, sizeof name, "churn-%d", round);
        s_follower_t f;
        s_grid(round * 1000, grid);
        s_follow(ctx, e, &kc, grid, name, &f);
        for (int i = 1; i < 1000; i++) {
            s_grid(round * 1000 + i, grid);
            zmq_setsockopt(f.sub, ZMQ_SUBSCRIBE, grid, strlen(grid));
        }
        /* the broker has applied them all: the last one's heartbeat */
        s_wait_topic(&f, grid);
        if (round % 2) {
            /* unsubscribe on the open connection */
            for (int i = 0; i < 1000; i++) {
                s_grid(round * 1000 + i, grid);
                zmq_setsockopt(f.sub, ZMQ_UNSUBSCRIBE, grid, strlen(grid));
            }
        }
        /* and leave: libzmq unsubscribes what is left on the broker side */
        s_unfollow(&f);
        s_metric_reaches(e, "gridsync_feed_subscriptions", 0);
    }
    s_follower_t other;
    s_follow(ctx, e, &ko, "440305001", "other", &other);
    s_wait_topic(&other, "440305001");
    assert_true(s_metric(e, "gridsync_feed_subscriptions") == 1);
    assert_true(s_metric(e, "gridsync_feed_rebinds_total") == 0);
    s_unfollow(&other);
    zmq_ctx_term(ctx);
}

/* feed-max-prefixes bounds the distinct prefixes one key follows: one
 * more is refused (logged, counted) and gets no heartbeats, and once the
 * key lets one go it may follow another. */
static void
test_subscription_bound(void **state)
{
    (void) state;
    s_env_t e;
    static const char *const extra[] = { "--feed-max-prefixes=3", NULL };
    assert_int_equal(s_env_start(&e, extra), 0);
    gs_curve_keys_t k;
    s_enrol(&e, "district-b", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT, "440305",
            0, &k, 1);
    void *ctx = zmq_ctx_new();
    s_follower_t f;
    char g[5][16];
    for (int i = 0; i < 5; i++)
        s_grid(i, g[i]);
    s_follow(ctx, &e, &k, g[0], "bound", &f);
    for (int i = 1; i < 4; i++)
        zmq_setsockopt(f.sub, ZMQ_SUBSCRIBE, g[i], strlen(g[i]));
    s_wait_topic(&f, g[2]);
    s_metric_reaches(&e, "gridsync_feed_refused_total", 1);
    assert_true(s_metric(&e, "gridsync_feed_subscriptions") == 3);

    /* let one go, then the fifth is applied */
    zmq_setsockopt(f.sub, ZMQ_UNSUBSCRIBE, g[0], strlen(g[0]));
    zmq_setsockopt(f.sub, ZMQ_SUBSCRIBE, g[4], strlen(g[4]));
    s_wait_topic(&f, g[4]);
    assert_true(s_metric(&e, "gridsync_feed_subscriptions") == 3);
    /* a whole round of heartbeats between two of g[4]'s: never one of g[3] */
    for (int round = 0; round < 2; round++) {
        for (;;) {
            char t[32];
            int n = zmq_recv(f.sub, t, sizeof t, 0);
            assert_true(n >= 0);
            zmq_msg_t m;
            zmq_msg_init(&m);
            zmq_msg_recv(&m, f.sub, 0);
            zmq_msg_close(&m);
            assert_false(n == 15 && memcmp(t, g[3], 15) == 0);
            if (n == 15 && memcmp(t, g[4], 15) == 0)
                break;
        }
    }
    assert_true(s_metric(&e, "gridsync_feed_refused_total") == 1);
    s_unfollow(&f);
    zmq_ctx_term(ctx);
    s_env_stop(&e);
}

/* A CURVE client against a broker in --insecure-dev mode: the mechanisms
 * differ, and the client's error names that, at once. */
static void
test_curve_client_insecure_broker(void **state)
{
    (void) state;
    char dir[64], store[128];
    gs_tk_tmpdir(dir, sizeof dir);
    snprintf(store, sizeof store, "%s/store", dir);
    gs_tk_broker_t b;
    assert_int_equal(gs_tk_broker_start(&b, store, NULL), 0);
    gs_client_opts_t o;
    gs_client_opts_init(&o);
    o.timeout_ms = 30000;
    o.retries = 0;
    assert_int_equal(zmq_curve_keypair(o.curve.public_key, o.curve.secret_key), 0);
    char sec[41];
    assert_int_equal(zmq_curve_keypair(o.curve.server_public, sec), 0);
    gs_client_t *c = gs_client_new(b.upload, &o);
    assert_non_null(c);
    gs_arena_t *a = gs_arena_new(0);
    Gridsync__V1__Record *rec = gs_tk_household(a, GRID_A, "H-1", "ADDR-1", 1, 1);
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t err;
    assert_int_equal(s_upload(c, "dev-a", "u1", &rec, 1, &ack, &err), GS_CLIENT_EAUTH);
    assert_non_null(strstr(err.message, "not in CURVE mode"));
    gs_client_destroy(&c);
    gs_arena_destroy(&a);
    gs_tk_broker_stop(&b, SIGTERM);
    gs_tk_rmtree(dir);
}

/* A subscription the broker applies is answered at once with a heartbeat
 * for its prefix, before any event under it: the subscriber learns the
 * store's epoch and the prefix's last seq first (a follower that
 * reconnects to a restored store must not take one of its events for a
 * new one). The heartbeat interval is a minute here, so only the
 * heartbeat sent on subscribing can arrive in time. */
static void
test_heartbeat_on_subscribe(void **state)
{
    (void) state;
    s_env_t e;
    static const char *const extra[] = { "--heartbeat-ms=60000", NULL };
    assert_int_equal(s_env_start(&e, extra), 0);
    gs_curve_keys_t kd, dev;
    s_enrol(&e, "district-h", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT, "440305",
            0, &kd, 1);
    s_enrol(&e, "dev-a", GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE, "440305", 0, &dev,
            1);
    gs_client_t *c = s_client(&e, &dev, 5000, 2);
    Gridsync__V1__Record *r1 = gs_tk_household(e.arena, GRID_A, "H-h1", "ADDR-h1", 1, 3);
    Gridsync__V1__Ack *ack;
    gs_client_error_t cerr;
    assert_int_equal(s_upload(c, "dev-a", "h1", &r1, 1, &ack, &cerr), 0);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    uint64_t epoch = 0, head = 0;
    {
        gs_store_opts_t ro;
        gs_store_opts_init(&ro);
        ro.read_only = 1;
        gs_store_t *st = gs_store_new(e.store, &ro, NULL);
        assert_non_null(st);
        assert_int_equal(gs_store_epoch(st, &epoch), 0);
        assert_int_equal(gs_store_head(st, &head), 0);
        gs_store_destroy(&st);
    }

    void *ctx = zmq_ctx_new();
    s_follower_t f;
    s_follow(ctx, &e, &kd, "440305001", "hb-on-sub", &f);
    char topic[32];
    int n = zmq_recv(f.sub, topic, sizeof topic, 0);
    assert_int_equal(n, 9);
    assert_memory_equal(topic, "440305001", 9);
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, f.sub, 0) >= 0);
    Gridsync__V1__FeedMessage *fm =
        gridsync__v1__feed_message__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
    zmq_msg_close(&m);
    assert_non_null(fm);
    assert_int_equal(fm->body_case, GRIDSYNC__V1__FEED_MESSAGE__BODY_HEARTBEAT);
    assert_int_equal(fm->heartbeat->store_epoch, epoch);
    assert_int_equal(fm->heartbeat->head_seq, head);
    assert_int_equal(fm->heartbeat->prefix_last_seq, head);
    gridsync__v1__feed_message__free_unpacked(fm, NULL);

    /* an event committed now comes after it */
    Gridsync__V1__Record *r2 = gs_tk_household(e.arena, GRID_A, "H-h2", "ADDR-h2", 1, 4);
    assert_int_equal(s_upload(c, "dev-a", "h2", &r2, 1, &ack, &cerr), 0);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    s_wait_message(&f, 15);

    gs_client_destroy(&c);
    s_unfollow(&f);
    zmq_ctx_term(ctx);
    s_env_stop(&e);
}

/* The lines of the broker's log so far that contain needle. */
static int
s_log_count(const gs_tk_broker_t *b, const char *needle)
{
    FILE *f = fopen(b->log_path, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (getline(&line, &cap, f) > 0)
        if (strstr(line, needle))
            n++;
    free(line);
    fclose(f);
    return n;
}

/* Wait (bounded) until the broker's log has a line with needle: the log
 * reaches its file through the kit's drain thread. */
static void
s_log_wait(const gs_tk_broker_t *b, const char *needle)
{
    for (int i = 0; i < 3000 && s_log_count(b, needle) == 0; i++) {
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    assert_true(s_log_count(b, needle) > 0);
}

/* What a ZeroMQ client without CURVE keys sends first, on a TCP connection
 * of its own to endpoint ("tcp://127.0.0.1:PORT"): the ZMTP 3.0 greeting
 * with the NULL mechanism; then it reads until the broker hangs up
 * (bounded). A libzmq DEALER would read the broker's greeting while
 * sending its own and might hang up first, before the broker has read it. */
static void
s_plaintext_greet(const char *endpoint)
{
    const char *colon = strrchr(endpoint, ':');
    assert_non_null(colon);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = { 30, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons((uint16_t) atoi(colon + 1)) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof sa), 0);
    uint8_t greeting[64] = { 0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 3, 0, 'N', 'U', 'L', 'L' };
    assert_int_equal(send(fd, greeting, sizeof greeting, MSG_NOSIGNAL), (ssize_t) sizeof greeting);
    uint8_t buf[256];
    ssize_t got;
    while ((got = recv(fd, buf, sizeof buf, 0)) > 0) {
    }
    assert_true(got == 0 || (got < 0 && errno == ECONNRESET)); /* not the time-out */
    close(fd);
}

/* A DEALER on the broker's upload endpoint with CURVE keys (server_key as
 * the broker's) that connects once (no reconnection). */
static void *
s_dealer_curve(void *ctx, const gs_tk_broker_t *b, const char *server_key)
{
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    assert_non_null(d);
    int no = -1, zero = 0;
    zmq_setsockopt(d, ZMQ_RECONNECT_IVL, &no, sizeof no);
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    {
        char pub[41], sec[41];
        assert_int_equal(zmq_curve_keypair(pub, sec), 0);
        assert_int_equal(zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, server_key, 40), 0);
        assert_int_equal(zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, pub, 40), 0);
        assert_int_equal(zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, sec, 40), 0);
    }
    assert_int_equal(zmq_connect(d, b->upload), 0);
    return d;
}

/* A plaintext client at a CURVE endpoint: one event=plaintext_client line
 * per ten seconds however often it tries, and its tries counted. A client
 * with the wrong server key is counted and logged apart (handshake_failed);
 * a key the broker does not know is neither (gs_auth logs it). */
static void
test_plaintext_client_logged(void **state)
{
    s_env_t *e = *state;
    void *ctx = zmq_ctx_new();
    assert_non_null(ctx);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const int tries = 5;
    for (int i = 1; i <= tries; i++) {
        s_plaintext_greet(e->broker.upload);
        s_metric_reaches(e, "gridsync_handshakes_plaintext_total", i);
    }
    s_log_wait(&e->broker, "event=plaintext_client");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int lines = s_log_count(&e->broker, "event=plaintext_client");
    /* the bound is one line per ten seconds: on a machine so slow that the
     * tries spread over more, one more line per ten seconds is allowed */
    long spread_s = (long) (t1.tv_sec - t0.tv_sec) + 1;
    assert_true(lines >= 1 && lines <= 1 + spread_s / 10);
    assert_int_equal(s_log_count(&e->broker, "event=plaintext_client what=upload count=1 "
                                             "total=1 msg=\"a client without CURVE keys"),
                     1);

    /* the wrong server key: the broker cannot open the client's HELLO */
    char wrong_pub[41], wrong_sec[41];
    assert_int_equal(zmq_curve_keypair(wrong_pub, wrong_sec), 0);
    void *d = s_dealer_curve(ctx, &e->broker, wrong_pub);
    s_metric_reaches(e, "gridsync_handshakes_failed_total", 1);
    zmq_close(d);
    s_log_wait(&e->broker, "event=handshake_failed what=upload error=0x11000001 count=1");

    /* the right server key, a key nobody enrolled: refused by ZAP only */
    d = s_dealer_curve(ctx, &e->broker, e->broker.server_key);
    s_log_wait(&e->broker, "event=handshake_refused");
    zmq_close(d);
    assert_true(s_metric(e, "gridsync_handshakes_failed_total") == 1);
    zmq_ctx_term(ctx);
}

/* --insecure-dev on anything but a loopback bind: the broker refuses to
 * start (test_endpoint has the parser's cases). */
static void
test_insecure_refused_off_loopback(void **state)
{
    (void) state;
    char dir[64], store[128];
    gs_tk_tmpdir(dir, sizeof dir);
    snprintf(store, sizeof store, "%s/store", dir);
    static const char *const extra[] = { "--upload-endpoint=tcp://0.0.0.0:*", NULL };
    gs_tk_broker_t b;
    assert_int_equal(gs_tk_broker_start_mode(&b, store, extra, 0), -1);

    /* libzmq binds "tcp://SRC;DST" on DST: a loopback SRC must not pass.
     * Refused before anything is bound, with the endpoint named. */
    int port = gs_tk_free_port();
    assert_true(port > 0);
    char attack[96], up_arg[128], feed_arg[128];
    snprintf(attack, sizeof attack, "tcp://127.0.0.1:1;0.0.0.0:%d", port);
    snprintf(up_arg, sizeof up_arg, "--upload-endpoint=%s", attack);
    snprintf(feed_arg, sizeof feed_arg, "--feed-endpoint=%s", attack);
    const char *const *cases[] = {
        (const char *const[]) { up_arg, NULL },
        (const char *const[]) { feed_arg, NULL },
        (const char *const[]) { "--upload-endpoint=tcp://*:0", NULL },
        (const char *const[]) { "--feed-endpoint=tcp://lo:0", NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char st_i[160];
        snprintf(st_i, sizeof st_i, "%s/store-%zu", dir, i);
        assert_int_equal(gs_tk_broker_start_mode(&b, st_i, cases[i], 0), -1);
        char *log = NULL;
        size_t cap = 0;
        FILE *f = fopen(b.log_path, "r");
        assert_non_null(f);
        ssize_t got = getdelim(&log, &cap, '\0', f);
        fclose(f);
        assert_true(got > 0);
        assert_non_null(strstr(log, "event=insecure_refused"));
        if (i < 2)
            assert_non_null(strstr(log, attack));
        assert_null(strstr(log, "event=ready"));
        free(log);
    }
    gs_tk_rmtree(dir);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_device_scope, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_empty_prefixes_deny, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ping_reports_scope, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_and_plaintext_refused, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_revoke_live_and_roles, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_subscription_scope, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_revoke_cuts_live_feed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_revoke_after_many_prefixes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_subscription_churn, s_setup, s_teardown),
        cmocka_unit_test(test_subscription_bound),
        cmocka_unit_test(test_heartbeat_on_subscribe),
        cmocka_unit_test(test_curve_client_insecure_broker),
        cmocka_unit_test_setup_teardown(test_plaintext_client_logged, s_setup, s_teardown),
        cmocka_unit_test(test_insecure_refused_off_loopback),
    };
    return cmocka_run_group_tests_name("security", tests, NULL, NULL);
}

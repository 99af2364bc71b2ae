/*
 * test_incidents: the incident workflow end to end through the real
 * gridsyncd in CURVE mode, with a real key for each role: a collector
 * (DEVICE) reports, the centre (CENTRE) accepts and dispatches, the
 * department (DEPARTMENT) handles, the collector verifies, the centre
 * closes; steps refused for the wrong role, department or status; the
 * deadlines set by the broker's clock and an overdue case; and a
 * department following its incidents by sync, cut off mid-stream and
 * resumed from its checkpoint, ending with exactly the incidents of its
 * categories, once each, and nothing else; and the store's category table
 * set while the broker runs, which the next upload is checked and given
 * its deadlines with. The live feed's incident
 * topics (I<category>/<prefix>): a department admitted only to those of
 * its categories inside its prefixes and refused everything else (a grid
 * topic, another category, another area, a malformed or unknown topic), a
 * collector refused outside its grids, what it receives (only the
 * incidents of the topic's category, with incident_prev_seq), and the cut
 * when a department's categories are narrowed while it follows. And the
 * client library's subscriber on incident topics, fed by a publisher the
 * test controls: a broken incident_prev_seq chain repaired from the sync
 * service, a heartbeat whose last seq is not one of the topic's, a
 * duplicate, and the next link taken live.
 *
 * The registry is written straight into the store by this process while the
 * broker runs (LMDB serialises writers across processes), as gridctl does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "gs_arena.h"
#include "gs_client.h"
#include "gs_incident.h"
#include "gs_store.h"
#include "gs_testkit.h"

#define GRID_A "440305001001001"
#define RS(name) GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_##name
#define RN(name) GRIDSYNC__V1__REASON__REASON_##name
#define ST(name) GRIDSYNC__V1__INCIDENT_STATUS__INCIDENT_STATUS_##name
#define ROLE(name) GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_##name
#define SEV(name) GRIDSYNC__V1__INCIDENT_SEVERITY__INCIDENT_SEVERITY_##name

typedef struct {
    char dir[64];
    char store[128];
    gs_tk_broker_t broker;
    gs_arena_t *arena;
    gs_curve_keys_t collector, centre, fire, city;
    unsigned uploads;               /* upload ids used */
} s_env_t;

/* Enrol a principal with a fresh keypair. */
static void
s_enrol(s_env_t *e, const char *id, int role, const char *department, const char *cats,
        gs_curve_keys_t *keys)
{
    memset(keys, 0, sizeof *keys);
    assert_int_equal(zmq_curve_keypair(keys->public_key, keys->secret_key), 0);
    memcpy(keys->server_public, e->broker.server_key, 41);
    gs_store_t *st = gs_store_new(e->store, NULL, NULL);
    assert_non_null(st);
    Gridsync__V1__Device d = GRIDSYNC__V1__DEVICE__INIT;
    d.device_id = (char *) id;
    d.collector_id = role == ROLE(DEVICE) ? "col-1" : "";
    d.public_key = keys->public_key;
    char *prefixes[1] = { "440305001" };
    d.prefixes = prefixes;
    d.n_prefixes = 1;
    d.role = (Gridsync__V1__PrincipalRole) role;
    d.department = (char *) (department ? department : "");
    char c[3][3] = { "", "", "" };
    char *cp[3];
    size_t nc = 0;
    for (const char *p = cats; p && *p; p += 2) {
        memcpy(c[nc], p, 2);
        cp[nc] = c[nc];
        nc++;
    }
    d.categories = cp;
    d.n_categories = nc;
    assert_int_equal(gs_store_device_put(st, &d), 0);
    gs_store_destroy(&st);
}

static int
s_setup(void **state)
{
    s_env_t *e = calloc(1, sizeof *e);
    gs_tk_tmpdir(e->dir, sizeof e->dir);
    snprintf(e->store, sizeof e->store, "%s/store", e->dir);
    if (gs_tk_broker_start_mode(&e->broker, e->store, NULL, 1))
        return -1;
    e->arena = gs_arena_new(0);
    s_enrol(e, "dev-c", ROLE(DEVICE), NULL, NULL, &e->collector);
    s_enrol(e, "centre-1", ROLE(CENTRE), NULL, NULL, &e->centre);
    s_enrol(e, "fire-1", ROLE(DEPARTMENT), "dept-fire", "0203", &e->fire);
    s_enrol(e, "city-1", ROLE(DEPARTMENT), "dept-city", "04", &e->city);
    *state = e;
    return 0;
}

static int
s_teardown(void **state)
{
    s_env_t *e = *state;
    gs_tk_broker_stop(&e->broker, SIGTERM);
    gs_arena_destroy(&e->arena);
    gs_tk_rmtree(e->dir);
    free(e);
    return 0;
}

/* Wait (bounded: 30 s) until the broker's log has a line with needle; the
 * log reaches its file through the kit's drain thread, so it is read
 * again every 10 ms. */
static void
s_log_wait(const gs_tk_broker_t *b, const char *needle)
{
    for (int i = 0; i < 3000; i++) {
        char *log = gs_tk_read_file(b->log_path, NULL, 1);
        int found = strstr(log, needle) != NULL;
        free(log);
        if (found)
            return;
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    fail_msg("the broker never logged \"%s\"", needle);
}

static gs_client_t *
s_client(s_env_t *e, const gs_curve_keys_t *keys)
{
    gs_client_opts_t o;
    gs_client_opts_init(&o);
    o.timeout_ms = 5000;
    o.retries = 2;
    o.curve = *keys;
    gs_client_t *c = gs_client_new(e->broker.upload, &o);
    assert_non_null(c);
    return c;
}

/* An incident as a client sends it: status asked for, base version,
 * department, and a new history entry with its note. */
static Gridsync__V1__Record *
s_incident(s_env_t *e, const char *id, const char *category, int severity, int status,
           uint64_t base, const char *department, const char *note)
{
    ProtobufCAllocator *al = gs_arena_allocator(e->arena);
    Gridsync__V1__Record *r = al->alloc(al->allocator_data, sizeof *r);
    Gridsync__V1__Incident *in = al->alloc(al->allocator_data, sizeof *in);
    Gridsync__V1__RecordMeta *m = al->alloc(al->allocator_data, sizeof *m);
    gridsync__v1__record__init(r);
    gridsync__v1__incident__init(in);
    gridsync__v1__record_meta__init(m);
    r->body_case = GRIDSYNC__V1__RECORD__BODY_INCIDENT;
    r->incident = in;
    in->incident_id = (char *) id;
    in->grid_code = GRID_A;
    in->address = "南联社区5栋楼道";
    in->category = (char *) category;
    in->severity = (Gridsync__V1__IncidentSeverity) severity;
    in->description = "楼道堆放电动车充电";
    in->status = (Gridsync__V1__IncidentStatus) status;
    in->department = (char *) (department ? department : "");
    if (note) {
        Gridsync__V1__IncidentTransition *t = al->alloc(al->allocator_data, sizeof *t);
        Gridsync__V1__IncidentTransition **h = al->alloc(al->allocator_data, sizeof *h);
        gridsync__v1__incident_transition__init(t);
        t->to = (Gridsync__V1__IncidentStatus) status;
        t->note = (char *) note;
        h[0] = t;
        in->history = h;
        in->n_history = 1;
    }
    in->meta = m;
    m->collector_id = "col-1";
    m->device_id = "dev-c";
    m->collected_at = (int64_t) time(NULL) * 1000;
    m->base_version = base;
    return r;
}

/* Upload one record as device and return its result (status, reason,
 * version; the message copied into msg). */
typedef struct {
    int status, reason;
    uint64_t version;
    char msg[200];
    uint64_t seq;                   /* the event's seq when stored */
} s_res_t;

static s_res_t
s_put(s_env_t *e, gs_client_t *c, const char *device, Gridsync__V1__Record *rec)
{
    char uid[32];
    snprintf(uid, sizeof uid, "u-%u", ++e->uploads);
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = (char *) device;
    up.upload_id = uid;
    up.records = &rec;
    up.n_records = 1;
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t err;
    if (gs_client_upload(c, &up, &ack, &err))
        fail_msg("upload: %s", err.message);
    assert_int_equal(ack->n_results, 1);
    s_res_t r = { (int) ack->results[0]->status, (int) ack->results[0]->reason,
                  ack->results[0]->version, "", ack->results[0]->seq };
    snprintf(r.msg, sizeof r.msg, "%s", ack->results[0]->message);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    return r;
}

#define assert_accepted(r, v)                                                  \
    do {                                                                       \
        if ((r).status != RS(ACCEPTED))                                        \
            fail_msg("not accepted: status %d reason %d: %s", (r).status,      \
                     (r).reason, (r).msg);                                     \
        assert_int_equal((r).version, (v));                                    \
    } while (0)

#define assert_refused(r, why, needle)                                         \
    do {                                                                       \
        assert_int_equal((r).status, RS(REJECTED));                            \
        assert_int_equal((r).reason, (why));                                   \
        if (!strstr((r).msg, (needle)))                                        \
            fail_msg("message \"%s\" lacks \"%s\"", (r).msg, (needle));        \
    } while (0)

/* The incident id as the centre reads it (a snapshot of the grid). */
static Gridsync__V1__Incident *
s_read(gs_client_t *c, const char *id, Gridsync__V1__SnapshotResponse **keep)
{
    const char *p[] = { GRID_A };
    gs_client_error_t err;
    assert_int_equal(gs_client_snapshot(c, p, 1, NULL, 0, 0, keep, &err), 0);
    for (size_t i = 0; i < (*keep)->n_entries; i++) {
        Gridsync__V1__Record *r = (*keep)->entries[i]->record;
        if (r->body_case == GRIDSYNC__V1__RECORD__BODY_INCIDENT &&
            strcmp(r->incident->incident_id, id) == 0)
            return r->incident;
    }
    fail_msg("incident %s not in the snapshot", id);
    return NULL;
}

/* Report to closure with a key for each role, and the steps refused on
 * the way. */
static void
test_report_to_closure(void **state)
{
    s_env_t *e = *state;
    gs_client_t *col = s_client(e, &e->collector), *cen = s_client(e, &e->centre),
                *fire = s_client(e, &e->fire), *city = s_client(e, &e->city);
    s_res_t r = s_put(e, col, "dev-c",
                      s_incident(e, "E1", "02", SEV(SERIOUS), ST(REPORTED), 0, NULL, "楼道隐患"));
    assert_accepted(r, 1);
    /* a collector does not register; a centre uploads incidents only */
    r = s_put(e, col, "dev-c", s_incident(e, "E1", "02", SEV(SERIOUS), ST(ACCEPTED), 1, NULL,
                                           NULL));
    assert_refused(r, RN(ROLE), "CENTRE may");
    r = s_put(e, cen, "centre-1", gs_tk_household(e->arena, GRID_A, "H1", "A-1", 2, 10));
    assert_refused(r, RN(ROLE), "CENTRE uploads incidents only");
    /* the key names the uploader: the centre cannot speak as the collector */
    Gridsync__V1__Record *rec = s_incident(e, "E1", "02", SEV(SERIOUS), ST(ACCEPTED), 1, NULL,
                                           NULL);
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = "dev-c";
    up.upload_id = "spoof";
    up.records = &rec;
    up.n_records = 1;
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_client_upload(cen, &up, &ack, &err), GS_CLIENT_ESERVER);
    assert_int_equal(err.reason, RN(UNAUTHORISED));
    r = s_put(e, cen, "centre-1", s_incident(e, "E1", "02", SEV(SERIOUS), ST(CLOSED), 1, NULL,
                                              NULL));
    assert_refused(r, RN(TRANSITION), "no step from REPORTED to CLOSED");
    r = s_put(e, cen, "centre-1", s_incident(e, "E1", "02", SEV(SERIOUS), ST(ACCEPTED), 1, NULL,
                                              "立案"));
    assert_accepted(r, 2);
    r = s_put(e, cen, "centre-1", s_incident(e, "E1", "02", SEV(SERIOUS), ST(DISPATCHED), 2,
                                              "dept-fire", "派消防"));
    assert_accepted(r, 3);
    /* only the department it went to */
    r = s_put(e, city, "city-1", s_incident(e, "E1", "02", SEV(SERIOUS), ST(HANDLED), 3,
                                             "dept-fire", NULL));
    assert_refused(r, RN(ROLE), "dispatched to dept-fire");
    r = s_put(e, fire, "fire-1", s_incident(e, "E1", "02", SEV(SERIOUS), ST(HANDLED), 3,
                                             "dept-fire", "已清理"));
    assert_accepted(r, 4);
    /* a stale base is a conflict, as for every edit */
    r = s_put(e, col, "dev-c", s_incident(e, "E1", "02", SEV(SERIOUS), ST(VERIFIED), 3,
                                           "dept-fire", NULL));
    assert_int_equal(r.status, RS(CONFLICT));
    assert_int_equal(r.version, 4);
    r = s_put(e, col, "dev-c", s_incident(e, "E1", "02", SEV(SERIOUS), ST(VERIFIED), 4,
                                           "dept-fire", "现场核查通过"));
    assert_accepted(r, 5);
    r = s_put(e, fire, "fire-1", s_incident(e, "E1", "02", SEV(SERIOUS), ST(CLOSED), 5,
                                             "dept-fire", NULL));
    assert_refused(r, RN(ROLE), "CENTRE may");
    r = s_put(e, cen, "centre-1", s_incident(e, "E1", "02", SEV(SERIOUS), ST(CLOSED), 5,
                                              "dept-fire", "结案"));
    assert_accepted(r, 6);

    Gridsync__V1__SnapshotResponse *snap = NULL;
    Gridsync__V1__Incident *in = s_read(cen, "E1", &snap);
    assert_int_equal(in->status, ST(CLOSED));
    assert_int_equal(in->n_history, 6);
    static const char *by[6] = { "dev-c", "centre-1", "centre-1", "fire-1", "dev-c", "centre-1" };
    static const int role[6] = { ROLE(DEVICE), ROLE(CENTRE), ROLE(CENTRE), ROLE(DEPARTMENT),
                                 ROLE(DEVICE), ROLE(CENTRE) };
    for (size_t i = 0; i < 6; i++) {
        assert_string_equal(in->history[i]->by, by[i]);
        assert_int_equal(in->history[i]->role, role[i]);
        assert_true(in->history[i]->at >= in->reported_at);
    }
    /* deadlines by the broker's clock: 72 h from acceptance (安全隐患,
     * 较大), 48 h from the dispatch; closed in time */
    assert_int_equal(in->due_at, in->history[1]->at + 72 * GS_INCIDENT_HOUR_MS);
    assert_int_equal(in->dispatch_due_at, in->history[2]->at + 48 * GS_INCIDENT_HOUR_MS);
    assert_int_equal(in->closed_at, in->history[5]->at);
    assert_true(in->closed_at <= in->due_at);
    assert_string_equal(in->history[2]->department, "dept-fire");
    assert_string_equal(in->history[3]->note, "已清理");
    gridsync__v1__snapshot_response__free_unpacked(snap, NULL);
    /* the metrics count the steps stored, not the refused ones */
    assert_true(gs_tk_metric(e->broker.metrics_port,
                             "gridsync_incident_steps_total{to=\"CLOSED\"}") == 1);
    assert_true(gs_tk_metric(e->broker.metrics_port,
                             "gridsync_incident_steps_total{to=\"ACCEPTED\"}") == 1);
    assert_true(gs_tk_metric(e->broker.metrics_port, "gridsync_incident_steps_total") == 6);

    /* an overdue case: 治安, 特别重大 has 2 hours; past due_at it is open
     * and overdue, as the figures count it */
    assert_accepted(s_put(e, col, "dev-c", s_incident(e, "E2", "03", SEV(URGENT), ST(REPORTED),
                                                        0, NULL, NULL)), 1);
    assert_accepted(s_put(e, cen, "centre-1", s_incident(e, "E2", "03", SEV(URGENT),
                                                          ST(ACCEPTED), 1, NULL, NULL)), 2);
    in = s_read(cen, "E2", &snap);
    assert_int_equal(in->due_at, in->history[1]->at + 2 * GS_INCIDENT_HOUR_MS);
    assert_false(gs_incident_overdue(in, in->due_at));
    assert_true(gs_incident_overdue(in, in->due_at + 1));
    gridsync__v1__snapshot_response__free_unpacked(snap, NULL);
    gs_client_destroy(&col);
    gs_client_destroy(&cen);
    gs_client_destroy(&fire);
    gs_client_destroy(&city);
}

/* A department follows its incidents by sync: it reads the incidents of
 * its categories and nothing else (no household, no other category), and
 * after being cut off mid-stream resumes from the last next_seq it kept
 * and ends with each of them exactly once. It is refused the live feed's
 * grid topics, which carry every kind. */
static void
test_department_follows_its_incidents(void **state)
{
    s_env_t *e = *state;
    gs_client_t *col = s_client(e, &e->collector);
    /* households and incidents of three categories, interleaved */
    static const char *cats[] = { "02", "04", "03", "01" };
    size_t want = 0;
    for (int i = 0; i < 24; i++) {
        char hid[16], iid[16];
        snprintf(hid, sizeof hid, "H%d", i);
        snprintf(iid, sizeof iid, "E%d", i);
        char addr[16];
        snprintf(addr, sizeof addr, "A-%d", i);
        assert_accepted(s_put(e, col, "dev-c",
                              gs_tk_household(e->arena, GRID_A, hid, addr, 1, 100 + (uint32_t) i)),
                        1);
        const char *cat = cats[i % 4];
        assert_accepted(s_put(e, col, "dev-c", s_incident(e, gs_arena_strdup(e->arena, iid), cat, SEV(GENERAL),
                                                           ST(REPORTED), 0, NULL, NULL)), 1);
        if (!strcmp(cat, "02") || !strcmp(cat, "03"))
            want++;
    }
    gs_client_destroy(&col);
    assert_int_equal(want, 12);

    /* pages of 5 events of the log; cut off after the second page */
    char seen[24] = { 0 };
    size_t got = 0;
    uint64_t checkpoint = 0;
    const char *p[] = { "440305001" };
    for (int round = 0; round < 2; round++) {
        gs_client_t *dep = s_client(e, &e->fire);
        for (int page = 0; round == 1 || page < 2; page++) {
            Gridsync__V1__SyncResponse *r = NULL;
            gs_client_error_t err;
            assert_int_equal(gs_client_sync(dep, p, 1, checkpoint, 5, 0, &r, &err), 0);
            for (size_t i = 0; i < r->n_events; i++) {
                Gridsync__V1__ChangeEvent *ev = r->events[i];
                assert_int_equal(ev->kind, GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT);
                const char *cat = ev->record->incident->category;
                assert_true(!strcmp(cat, "02") || !strcmp(cat, "03"));
                int n = atoi(ev->record_key + 1);
                assert_int_equal(seen[n], 0);   /* exactly once */
                seen[n] = 1;
                got++;
            }
            int done = r->next_seq >= r->head_seq;
            checkpoint = r->next_seq;   /* what a follower keeps */
            gridsync__v1__sync_response__free_unpacked(r, NULL);
            if (done)
                break;
        }
        gs_client_destroy(&dep);    /* round 0: killed mid-stream */
        if (round == 0)
            assert_true(got < want);
    }
    assert_int_equal(got, want);

    /* its snapshot: the same incidents, nothing else */
    gs_client_t *dep = s_client(e, &e->fire);
    Gridsync__V1__SnapshotResponse *snap = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_client_snapshot(dep, p, 1, NULL, 0, 0, &snap, &err), 0);
    assert_int_equal(snap->n_entries, want);
    for (size_t i = 0; i < snap->n_entries; i++)
        assert_int_equal(snap->entries[i]->kind, GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT);
    gridsync__v1__snapshot_response__free_unpacked(snap, NULL);
    /* outside its prefixes: refused as for any key */
    const char *out[] = { "440305002" };
    Gridsync__V1__SyncResponse *r = NULL;
    assert_int_equal(gs_client_sync(dep, out, 1, 0, 0, 0, &r, &err), GS_CLIENT_ESERVER);
    assert_int_equal(err.reason, RN(OUT_OF_SCOPE));
    gs_client_destroy(&dep);

    /* a grid topic of the live feed refuses it: the broker says so in its log */
    void *ctx = zmq_ctx_new();
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    zmq_setsockopt(sub, ZMQ_CURVE_SERVERKEY, e->fire.server_public, 41);
    zmq_setsockopt(sub, ZMQ_CURVE_PUBLICKEY, e->fire.public_key, 41);
    zmq_setsockopt(sub, ZMQ_CURVE_SECRETKEY, e->fire.secret_key, 41);
    assert_int_equal(zmq_connect(sub, e->broker.feed), 0);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "440305001", 9);
    s_log_wait(&e->broker, "a department follows incident topics only");
    zmq_close(sub);
    zmq_ctx_term(ctx);
}

/* A CURVE SUB with keys, a 30 s receive bound (a silent feed fails the
 * test, not hangs it), subscribed to each topic of the NULL-ended list. */
static void *
s_sub_open(s_env_t *e, void *ctx, const gs_curve_keys_t *k, const char *const *topics)
{
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    zmq_setsockopt(sub, ZMQ_CURVE_SERVERKEY, k->server_public, 41);
    zmq_setsockopt(sub, ZMQ_CURVE_PUBLICKEY, k->public_key, 41);
    zmq_setsockopt(sub, ZMQ_CURVE_SECRETKEY, k->secret_key, 41);
    int patience = 30000, zero = 0;
    zmq_setsockopt(sub, ZMQ_RCVTIMEO, &patience, sizeof patience);
    zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(sub, e->broker.feed), 0);
    for (size_t i = 0; topics[i]; i++)
        zmq_setsockopt(sub, ZMQ_SUBSCRIBE, topics[i], strlen(topics[i]));
    return sub;
}

/* The next message of sub: its topic into topic (NUL-terminated) and its
 * FeedMessage (caller frees). */
static Gridsync__V1__FeedMessage *
s_sub_recv(void *sub, char *topic, size_t size)
{
    int n = zmq_recv(sub, topic, size - 1, 0);
    assert_true(n >= 0 && (size_t) n < size);
    topic[n] = 0;
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, sub, 0) >= 0);
    Gridsync__V1__FeedMessage *fm =
        gridsync__v1__feed_message__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
    zmq_msg_close(&m);
    assert_non_null(fm);
    return fm;
}

/* Wait for the heartbeat of topic on sub: the subscription is applied. */
static void
s_sub_heartbeat(void *sub, const char *topic)
{
    for (;;) {
        char t[64];
        Gridsync__V1__FeedMessage *fm = s_sub_recv(sub, t, sizeof t);
        int hb = fm->body_case == GRIDSYNC__V1__FEED_MESSAGE__BODY_HEARTBEAT &&
                 strcmp(fm->heartbeat->prefix, topic) == 0;
        gridsync__v1__feed_message__free_unpacked(fm, NULL);
        if (hb)
            return;
    }
}

/* Who may follow which incident topic: a department only the topics of its
 * categories inside its prefixes, never a grid topic; a collector its own
 * grids' topics; the centre every category of its prefixes. A department
 * receives the incidents of its topic's category and nothing else, each
 * with incident_prev_seq; narrowing its categories while it follows cuts
 * it off (the feed socket is reopened). */
static void
test_feed_incident_topics(void **state)
{
    s_env_t *e = *state;
    void *ctx = zmq_ctx_new();
    static const struct { const char *device, *topic, *why; } refused[] = {
        { "fire-1", "440305001", "a department follows incident topics only" },
        { "fire-1", "I04/440305001", "not among the key's categories" },
        { "fire-1", "I02/440305002", "outside the assigned prefixes" },
        { "fire-1", "I02/4403", "outside the assigned prefixes" },
        { "fire-1", "I77/440305001", "not in the category table" },
        { "fire-1", "I02/4403050", "not a topic" },
        { "fire-1", "I02440305001", "not a topic" },
        { "dev-c", "I02/440305002", "outside the assigned prefixes" },
        { "city-1", "I02/440305001", "not among the key's categories" },
    };
    const gs_curve_keys_t *keys[] = { &e->fire, &e->collector, &e->city };
    void *subs[3];
    for (size_t k = 0; k < 3; k++) {
        const char *topics[16];
        size_t n = 0;
        const char *id = k == 0 ? "fire-1" : k == 1 ? "dev-c" : "city-1";
        for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
            if (!strcmp(refused[i].device, id))
                topics[n++] = refused[i].topic;
        topics[n] = NULL;
        subs[k] = s_sub_open(e, ctx, keys[k], topics);
    }
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char needle[256];
        if (!strcmp(refused[i].why, "not a topic"))
            snprintf(needle, sizeof needle, "device=%s reason=\"not a topic",
                     refused[i].device);
        else
            snprintf(needle, sizeof needle, "device=%s prefix=\"%s\" reason=\"", refused[i].device,
                     refused[i].topic);
        s_log_wait(&e->broker, needle);
        char *log = gs_tk_read_file(e->broker.log_path, NULL, 1);
        const char *line = strstr(log, needle);
        const char *end = strchr(line, '\n');
        char *why = strstr(line, refused[i].why);
        if (!why || (end && why > end))
            fail_msg("refusal of %s for %s does not say \"%s\"", refused[i].topic,
                     refused[i].device, refused[i].why);
        free(log);
    }
    for (size_t k = 0; k < 3; k++)
        zmq_close(subs[k]);

    /* admitted: the department to its category, the collector and the
     * centre inside their grids */
    const char *fire_t[] = { "I02/440305001", NULL };
    const char *col_t[] = { "I04/440305001001001", NULL };
    const char *cen_t[] = { "I04/44030500", NULL };    /* 8 digits: not a level */
    void *fire = s_sub_open(e, ctx, &e->fire, fire_t);
    void *col = s_sub_open(e, ctx, &e->collector, col_t);
    void *cen = s_sub_open(e, ctx, &e->centre, cen_t);
    s_sub_heartbeat(fire, "I02/440305001");
    s_sub_heartbeat(col, "I04/440305001001001");
    s_log_wait(&e->broker, "device=centre-1 reason=\"not a topic");
    zmq_close(cen);
    const char *cen_ok[] = { "I04/440305001", NULL };
    cen = s_sub_open(e, ctx, &e->centre, cen_ok);
    s_sub_heartbeat(cen, "I04/440305001");

    /* a household, an incident of 04, one of 02: the department hears only
     * the last, under its category's topic */
    gs_client_t *c = s_client(e, &e->collector);
    assert_accepted(s_put(e, c, "dev-c", gs_tk_household(e->arena, GRID_A, "H-live",
                                                          "A-live", 1, 500)), 1);
    assert_accepted(s_put(e, c, "dev-c", s_incident(e, "L04", "04", SEV(GENERAL),
                                                     ST(REPORTED), 0, NULL, NULL)), 1);
    assert_accepted(s_put(e, c, "dev-c", s_incident(e, "L02", "02", SEV(GENERAL),
                                                     ST(REPORTED), 0, NULL, NULL)), 1);
    uint64_t seq02 = 0;
    for (;;) {
        char t[64];
        Gridsync__V1__FeedMessage *fm = s_sub_recv(fire, t, sizeof t);
        assert_memory_equal(t, "I02/440305001", 13); /* never a grid topic or 04 */
        if (fm->body_case == GRIDSYNC__V1__FEED_MESSAGE__BODY_EVENT) {
            Gridsync__V1__ChangeEvent *ev = fm->event;
            assert_string_equal(t, "I02/" GRID_A);
            assert_int_equal(ev->kind, GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT);
            assert_string_equal(ev->record_key, "L02");
            assert_int_equal(fm->n_incident_prev_seq, 7);
            /* the chain is at least the previous 02 incident there (none),
             * and never past the event itself */
            for (size_t l = 0; l < 7; l++)
                assert_true(fm->incident_prev_seq[l] < ev->seq);
            seq02 = ev->seq;
        }
        gridsync__v1__feed_message__free_unpacked(fm, NULL);
        if (seq02)
            break;
    }
    /* the collector's and the centre's topics carry the 04 incident only */
    void *takers[2] = { col, cen };
    for (size_t k = 0; k < 2; k++) {
        for (;;) {
            char t[64];
            Gridsync__V1__FeedMessage *fm = s_sub_recv(takers[k], t, sizeof t);
            int ev = fm->body_case == GRIDSYNC__V1__FEED_MESSAGE__BODY_EVENT;
            if (ev) {
                assert_string_equal(t, "I04/" GRID_A);
                assert_string_equal(fm->event->record_key, "L04");
            }
            gridsync__v1__feed_message__free_unpacked(fm, NULL);
            if (ev)
                break;
        }
    }
    gs_client_destroy(&c);

    /* a second 02 incident chains to the first: incident_prev_seq at the
     * topic's level (street, 4) names it exactly, as the publisher saw it */
    c = s_client(e, &e->collector);
    assert_accepted(s_put(e, c, "dev-c", s_incident(e, "L02b", "02", SEV(GENERAL),
                                                     ST(REPORTED), 0, NULL, NULL)), 1);
    gs_client_destroy(&c);
    for (;;) {
        char t[64];
        Gridsync__V1__FeedMessage *fm = s_sub_recv(fire, t, sizeof t);
        int ev = fm->body_case == GRIDSYNC__V1__FEED_MESSAGE__BODY_EVENT;
        if (ev) {
            assert_string_equal(fm->event->record_key, "L02b");
            assert_int_equal(fm->n_incident_prev_seq, 7);
            assert_int_equal(fm->incident_prev_seq[4], seq02);
        }
        gridsync__v1__feed_message__free_unpacked(fm, NULL);
        if (ev)
            break;
    }

    /* its categories narrowed to 03 while it follows 02: cut off */
    gs_curve_keys_t fire2;
    s_enrol(e, "fire-1", ROLE(DEPARTMENT), "dept-fire", "03", &fire2);
    s_log_wait(&e->broker, "event=feed_rebind reason=revocation device=fire-1");
    zmq_close(fire);
    zmq_close(col);
    zmq_close(cen);
    zmq_ctx_term(ctx);
}

static int
s_setup_insecure(void **state)
{
    s_env_t *e = calloc(1, sizeof *e);
    gs_tk_tmpdir(e->dir, sizeof e->dir);
    snprintf(e->store, sizeof e->store, "%s/store", e->dir);
    if (gs_tk_broker_start(&e->broker, e->store, NULL))
        return -1;
    e->arena = gs_arena_new(0);
    *state = e;
    return 0;
}

/* The event of seq, read back from the sync service (caller frees). */
static Gridsync__V1__ChangeEvent *
s_event_at(gs_client_t *c, uint64_t seq)
{
    const char *p[] = { "" };
    Gridsync__V1__SyncResponse *r = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_client_sync(c, p, 1, seq - 1, 1, 0, &r, &err), 0);
    assert_int_equal(r->n_events, 1);
    assert_int_equal(r->events[0]->seq, seq);
    Gridsync__V1__ChangeEvent *ev = r->events[0];
    r->events[0] = NULL;
    gridsync__v1__sync_response__free_unpacked(r, NULL);
    return ev;
}

/* Publish on xpub, under topic, the event of seq with incident_prev_seq
 * prev at every level. */
static void
s_fake_event(void *xpub, gs_client_t *c, const char *topic, uint64_t seq, uint64_t prev)
{
    Gridsync__V1__ChangeEvent *ev = s_event_at(c, seq);
    uint64_t chain[7];
    for (size_t l = 0; l < 7; l++)
        chain[l] = prev;
    Gridsync__V1__FeedMessage fm = GRIDSYNC__V1__FEED_MESSAGE__INIT;
    fm.body_case = GRIDSYNC__V1__FEED_MESSAGE__BODY_EVENT;
    fm.event = ev;
    fm.n_incident_prev_seq = 7;
    fm.incident_prev_seq = chain;
    size_t len = gridsync__v1__feed_message__get_packed_size(&fm);
    uint8_t *buf = malloc(len);
    gridsync__v1__feed_message__pack(&fm, buf);
    assert_int_equal(zmq_send(xpub, topic, strlen(topic), ZMQ_SNDMORE), (int) strlen(topic));
    assert_int_equal(zmq_send(xpub, buf, len, 0), (int) len);
    free(buf);
    gridsync__v1__change_event__free_unpacked(ev, NULL);
}

/* The next event of sub (bounded: 30 s), which must be seq. */
static void
s_sub_expect(gs_sub_t *sub, uint64_t seq)
{
    Gridsync__V1__ChangeEvent *ev = NULL;
    assert_int_equal(gs_sub_next(sub, 30000, &ev), 0);
    assert_int_equal(ev->seq, seq);
    assert_int_equal(ev->kind, GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT);
    assert_string_equal(ev->record->incident->category, "02");
    gridsync__v1__change_event__free_unpacked(ev, NULL);
}

/* gs_sub on an incident topic, against a publisher the test drives (the
 * real broker serves the sync): what it catches up, a gap in the chain
 * repaired in seq order with only its category's incidents, a heartbeat
 * naming a later seq of another kind (the publisher's last seq is only
 * never too low) repaired without an error, a duplicate dropped, and the
 * next link taken live. */
static void
test_sub_incident_chain(void **state)
{
    s_env_t *e = *state;
    void *ctx = zmq_ctx_new();
    void *xpub = zmq_socket(ctx, ZMQ_XPUB);
    int zero = 0, timeo = 30000;
    zmq_setsockopt(xpub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(xpub, ZMQ_RCVTIMEO, &timeo, sizeof timeo);
    assert_int_equal(zmq_bind(xpub, "tcp://127.0.0.1:*"), 0);
    char ep[128];
    size_t eplen = sizeof ep;
    zmq_getsockopt(xpub, ZMQ_LAST_ENDPOINT, ep, &eplen);

    gs_client_t *c = s_client(e, &e->collector); /* plaintext: no keys */
    uint64_t e1 = s_put(e, c, "dev-c", s_incident(e, "C1", "02", SEV(GENERAL), ST(REPORTED),
                                                  0, NULL, NULL)).seq;
    s_put(e, c, "dev-c", gs_tk_household(e->arena, GRID_A, "H1", "A-1", 1, 601));
    s_put(e, c, "dev-c", s_incident(e, "C2", "04", SEV(GENERAL), ST(REPORTED), 0, NULL, NULL));

    const char *cats[] = { "02" };
    const char *p[] = { "440305001" };
    gs_sub_opts_t so;
    gs_sub_opts_init(&so);
    so.categories = cats;
    so.n_categories = 1;
    so.timeout_ms = 5000;
    int err = 0;
    gs_sub_t *sub = gs_sub_new(ep, e->broker.upload, p, 1, NULL, 0, &so, &err);
    assert_non_null(sub);
    assert_int_equal(gs_sub_count(sub), 1);
    assert_string_equal(gs_sub_topic(sub, 0), "I02/440305001");
    s_sub_expect(sub, e1);      /* the catch-up: its category only */
    /* the subscription reached the publisher */
    char m[64];
    int n = zmq_recv(xpub, m, sizeof m, 0);
    assert_int_equal(n, 14);
    assert_memory_equal(m, "\001I02/440305001", 14);

    /* more after the catch-up; the feed loses e3's first links */
    uint64_t e3 = s_put(e, c, "dev-c", s_incident(e, "C3", "02", SEV(GENERAL), ST(REPORTED),
                                                  0, NULL, NULL)).seq;
    s_put(e, c, "dev-c", gs_tk_household(e->arena, GRID_A, "H2", "A-2", 1, 602));
    s_put(e, c, "dev-c", s_incident(e, "C4", "03", SEV(GENERAL), ST(REPORTED), 0, NULL, NULL));
    uint64_t e5 = s_put(e, c, "dev-c", s_incident(e, "C5", "02", SEV(GENERAL), ST(REPORTED),
                                                  0, NULL, NULL)).seq;
    s_fake_event(xpub, c, "I02/" GRID_A, e5, e3);
    s_sub_expect(sub, e3);      /* repaired */
    s_sub_expect(sub, e5);
    gs_sub_stats_t st;
    gs_sub_stats(sub, &st);
    assert_int_equal(st.gaps, 1);
    assert_int_equal(st.live, 0);

    /* a heartbeat naming a household's seq: a repair that finds nothing */
    uint64_t h3 = s_put(e, c, "dev-c", gs_tk_household(e->arena, GRID_A, "H3", "A-3", 1,
                                                        603)).seq;
    Gridsync__V1__Heartbeat hb = GRIDSYNC__V1__HEARTBEAT__INIT;
    hb.head_seq = h3;
    hb.prefix = "I02/440305001";
    hb.prefix_last_seq = h3;
    Gridsync__V1__FeedMessage fm = GRIDSYNC__V1__FEED_MESSAGE__INIT;
    fm.body_case = GRIDSYNC__V1__FEED_MESSAGE__BODY_HEARTBEAT;
    fm.heartbeat = &hb;
    uint8_t buf[256];
    size_t len = gridsync__v1__feed_message__pack(&fm, buf);
    zmq_send(xpub, hb.prefix, strlen(hb.prefix), ZMQ_SNDMORE);
    zmq_send(xpub, buf, len, 0);
    /* then e5 again: a duplicate. Both are taken in (bounded: 30 s) before
     * anything else happens, and neither delivers an event */
    s_fake_event(xpub, c, "I02/" GRID_A, e5, e3);
    for (int i = 0;; i++) {
        gs_sub_stats(sub, &st);
        if (st.heartbeats == 1 && st.duplicates == 1)
            break;
        assert_true(i < 300);
        Gridsync__V1__ChangeEvent *none = NULL;
        assert_int_equal(gs_sub_next(sub, 100, &none), 1);
    }
    assert_int_equal(st.gaps, 2);
    assert_int_equal(gs_sub_position(sub, 0), e5); /* delivered: no event moved it */
    /* e6 chained to e5, after the position the repair reached: taken live */
    uint64_t e6 = s_put(e, c, "dev-c", s_incident(e, "C6", "02", SEV(GENERAL), ST(REPORTED),
                                                  0, NULL, NULL)).seq;
    s_fake_event(xpub, c, "I02/" GRID_A, e6, e5);
    s_sub_expect(sub, e6);
    gs_sub_stats(sub, &st);
    assert_int_equal(st.gaps, 2);
    assert_int_equal(st.duplicates, 1);
    assert_int_equal(st.live, 1);
    assert_int_equal(gs_sub_position(sub, 0), e6);
    gs_client_destroy(&c);
    gs_sub_destroy(&sub);
    zmq_close(xpub);
    zmq_ctx_term(ctx);
}

/* Set the store's category table from text while the broker runs, as
 * gridctl incidents categories set does. */
static void
s_table_set(s_env_t *e, const char *text)
{
    gs_incident_table_t t;
    gs_verdict_t v;
    size_t line;
    if (gs_incident_table_parse(text, strlen(text), &t, &line, &v))
        fail_msg("table line %zu: %s", line, v.message);
    gs_store_t *st = gs_store_new(e->store, NULL, NULL);
    assert_non_null(st);
    assert_int_equal(gs_store_incident_table_put(st, &t, 0), 0);
    gs_store_destroy(&st);
}

/* A table set while the broker runs applies to the next upload: a category
 * it adds is accepted, its deadlines are the ones set; a later change
 * applies to the next step and leaves the deadlines already set alone. */
static void
test_changed_table_applies_to_next_upload(void **state)
{
    s_env_t *e = *state;
    gs_client_t *col = s_client(e, &e->collector), *cen = s_client(e, &e->centre);
    s_res_t r = s_put(e, col, "dev-c",
                      s_incident(e, "N1", "07", SEV(MAJOR), ST(REPORTED), 0, NULL, NULL));
    assert_refused(r, RN(CATEGORY), "category 07 is not in this store's category table");
    s_table_set(e, "02\t安全隐患\t168\t72\t24\t4\t72\t48\t24\t4\tactive\n"
                   "03\t治安\t120\t48\t24\t2\t72\t48\t24\t4\tactive\n"
                   "04\t环境卫生\t120\t72\t48\t24\t72\t48\t24\t4\tactive\n"
                   "07\t噪音扰民\t96\t48\t30\t12\t10\t8\t6\t2\tactive\n");
    r = s_put(e, col, "dev-c", s_incident(e, "N1", "07", SEV(MAJOR), ST(REPORTED), 0, NULL,
                                           NULL));
    assert_accepted(r, 1);
    assert_accepted(s_put(e, cen, "centre-1", s_incident(e, "N1", "07", SEV(MAJOR),
                                                          ST(ACCEPTED), 1, NULL, NULL)), 2);
    Gridsync__V1__SnapshotResponse *snap = NULL;
    Gridsync__V1__Incident *in = s_read(cen, "N1", &snap);
    assert_int_equal(in->due_at, in->history[1]->at + 30 * GS_INCIDENT_HOUR_MS);
    int64_t due = in->due_at;
    gridsync__v1__snapshot_response__free_unpacked(snap, NULL);
    /* 07 MAJOR now 20 hours to closure and 5 to handle */
    s_table_set(e, "02\t安全隐患\t168\t72\t24\t4\t72\t48\t24\t4\tactive\n"
                   "03\t治安\t120\t48\t24\t2\t72\t48\t24\t4\tactive\n"
                   "04\t环境卫生\t120\t72\t48\t24\t72\t48\t24\t4\tactive\n"
                   "07\t噪音扰民\t96\t48\t20\t12\t10\t8\t5\t2\tactive\n");
    assert_accepted(s_put(e, cen, "centre-1", s_incident(e, "N1", "07", SEV(MAJOR),
                                                          ST(DISPATCHED), 2, "dept-fire",
                                                          NULL)), 3);
    in = s_read(cen, "N1", &snap);
    assert_int_equal(in->due_at, due);
    assert_int_equal(in->dispatch_due_at, in->history[2]->at + 5 * GS_INCIDENT_HOUR_MS);
    gridsync__v1__snapshot_response__free_unpacked(snap, NULL);
    assert_accepted(s_put(e, col, "dev-c", s_incident(e, "N2", "07", SEV(MAJOR), ST(REPORTED),
                                                        0, NULL, NULL)), 1);
    assert_accepted(s_put(e, cen, "centre-1", s_incident(e, "N2", "07", SEV(MAJOR),
                                                          ST(ACCEPTED), 1, NULL, NULL)), 2);
    in = s_read(cen, "N2", &snap);
    assert_int_equal(in->due_at, in->history[1]->at + 20 * GS_INCIDENT_HOUR_MS);
    gridsync__v1__snapshot_response__free_unpacked(snap, NULL);
    gs_client_destroy(&col);
    gs_client_destroy(&cen);
}

/* Revoke id's registry entry while its connection lives, as gridctl
 * devices revoke does. */
static void
s_revoke(s_env_t *e, const char *id)
{
    gs_store_t *st = gs_store_new(e->store, NULL, NULL);
    assert_non_null(st);
    Gridsync__V1__Device *d = NULL;
    assert_int_equal(gs_store_device_get(st, id, &d), 0);
    d->status = GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_REVOKED;
    assert_int_equal(gs_store_device_put(st, d), 0);
    gridsync__v1__device__free_unpacked(d, NULL);
    gs_store_destroy(&st);
}

/* Request{incident_categories{}} over CURVE: every enrolled role reads the
 * built-in table (configured false), then the table set while the broker
 * runs; a key revoked on its live connection is refused like any request. */
static void
test_categories_over_curve(void **state)
{
    s_env_t *e = *state;
    gs_curve_keys_t district, admin;
    s_enrol(e, "district-1", ROLE(DISTRICT), NULL, NULL, &district);
    s_enrol(e, "admin-1", ROLE(ADMIN), NULL, NULL, &admin);
    const gs_curve_keys_t *keys[] = { &e->collector, &district, &e->centre, &e->fire, &admin };
    size_t nb = 0;
    const gs_incident_category_t *builtin = gs_incident_categories(&nb);
    gs_client_error_t err;
    Gridsync__V1__IncidentCategoriesReply *r = NULL;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        gs_client_t *c = s_client(e, keys[k]);
        assert_int_equal(gs_client_incident_categories(c, &r, &err), 0);
        assert_false(r->configured);
        assert_int_equal(r->n_categories, nb);
        for (size_t i = 0; i < nb; i++) {
            assert_string_equal(r->categories[i]->code, builtin[i].code);
            assert_string_equal(r->categories[i]->name, builtin[i].name);
            assert_int_equal(r->categories[i]->n_close_hours, 4);
            assert_int_equal(r->categories[i]->close_hours[3], builtin[i].close_hours[3]);
            assert_int_equal(r->categories[i]->handle_hours[0], builtin[i].handle_hours[0]);
            assert_int_equal(r->categories[i]->retired, builtin[i].retired);
        }
        gridsync__v1__incident_categories_reply__free_unpacked(r, NULL);
        gs_client_destroy(&c);
    }

    gs_client_t *col = s_client(e, &e->collector);
    s_table_set(e, "02\t安全隐患\t168\t72\t24\t4\t72\t48\t24\t4\tactive\n"
                   "03\t治安\t120\t48\t24\t2\t72\t48\t24\t4\tactive\n"
                   "04\t环境卫生\t120\t72\t48\t24\t72\t48\t24\t4\tactive\n"
                   "07\t噪音扰民\t96\t48\t30\t12\t10\t8\t6\t2\tactive\n"
                   "09\t旧类\t96\t48\t30\t12\t10\t8\t6\t2\tretired\n");
    assert_int_equal(gs_client_incident_categories(col, &r, &err), 0);
    assert_true(r->configured);
    assert_int_equal(r->n_categories, 5);
    assert_string_equal(r->categories[3]->code, "07");
    assert_string_equal(r->categories[3]->name, "噪音扰民");
    assert_int_equal(r->categories[3]->close_hours[2], 30);
    assert_int_equal(r->categories[3]->n_handle_hours, 4);
    assert_int_equal(r->categories[3]->handle_hours[3], 2);
    assert_false(r->categories[3]->retired);
    assert_string_equal(r->categories[4]->code, "09");
    assert_true(r->categories[4]->retired);
    gridsync__v1__incident_categories_reply__free_unpacked(r, NULL);

    s_revoke(e, "dev-c");
    assert_int_equal(gs_client_incident_categories(col, &r, &err), GS_CLIENT_ESERVER);
    assert_null(r);
    assert_int_equal(err.reason, RN(UNAUTHORISED));
    assert_non_null(strstr(err.message, "revoked"));
    gs_client_destroy(&col);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_report_to_closure, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_changed_table_applies_to_next_upload, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_department_follows_its_incidents, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_feed_incident_topics, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sub_incident_chain, s_setup_insecure, s_teardown),
        cmocka_unit_test_setup_teardown(test_categories_over_curve, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

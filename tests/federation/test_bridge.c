/*
 * test_bridge: the district's bridge into JetStream (broker/gs_bridge,
 * docs/federation.md) with the real gridsyncd and a real nats-server
 * (support/gs_tk_nats). Uploads go through the client library; the stream
 * is read back with a nats.c consumer and compared, event by event, with
 * what the broker's sync service returns: every seq from 1 to the head
 * exactly once, in order, on its subject, with its headers and its bytes.
 * Then the same after the broker is killed mid-publishing, while
 * nats-server is down, after a restore from an older backup (refused, then
 * re-baselined), against a server that wants credentials, and on a
 * three-node cluster that loses a node. Every wait is on the protocol
 * (metrics, stream info, log lines) and bounded.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <inttypes.h>
#include <nats/nats.h>

#include "gs_arena.h"
#include "gs_bridge.h"
#include "gs_natslink.h"
#include "gs_client.h"
#include "gs_config.h"
#include "gs_testkit.h"
#include "gs_tk_nats.h"

#define AREA "440305"
#define STREAM "GRIDSYNC_440305"
#define FILTER "gridsync.44.03.05.>"
#define S_WAIT_MS 60000

typedef struct {
    char dir[64];               /* temporary directory */
    char store[128];            /* the district's store inside it */
    gs_tk_nats_t nats;          /* the server (or the cluster's first node) */
    gs_tk_broker_t broker;      /* the district's gridsyncd */
    gs_arena_t *arena;          /* records */
    int next;                   /* next record number: unique ids and persons */
    char url_arg[600];          /* --jetstream-url=... */
} s_env_t;

static int64_t
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A short pause between two looks at the broker's metrics, inside a
 * bounded wait. */
static void
s_pause(void)
{
    struct timespec ts = { 0, 20 * 1000 * 1000 };
    nanosleep(&ts, NULL);
}

/* A temporary directory, and with nats a nats-server started with
 * nats_extra in its config. */
static s_env_t *
s_env_new(int nats, const char *nats_extra)
{
    s_env_t *e = calloc(1, sizeof *e);
    assert_non_null(e);
    gs_tk_tmpdir(e->dir, sizeof e->dir);
    snprintf(e->store, sizeof e->store, "%s/store", e->dir);
    e->arena = gs_arena_new(0);
    if (nats) {
        assert_int_equal(gs_tk_nats_start(&e->nats, nats_extra), 0);
        snprintf(e->url_arg, sizeof e->url_arg, "--jetstream-url=%s", e->nats.url);
    }
    return e;
}

static void
s_env_destroy(s_env_t *e)
{
    /* a SIGTERM drains the bridge too: the broker exits 0 */
    if (e->broker.pid)
        assert_int_equal(gs_tk_broker_stop(&e->broker, SIGTERM), 0);
    gs_tk_nats_destroy(&e->nats);
    gs_arena_destroy(&e->arena);
    gs_tk_rmtree(e->dir);
    free(e);
}

/* The broker's arguments for the bridge, then more (NULL-terminated). */
static void
s_args(s_env_t *e, const char **argv, const char *const *more)
{
    int n = 0;
    argv[n++] = e->url_arg;
    argv[n++] = "--jetstream-area=" AREA;
    /* sync replies then carry what the stream carries: full records */
    argv[n++] = "--feed-restricted=true";
    for (int i = 0; more && more[i]; i++)
        argv[n++] = more[i];
    argv[n] = NULL;
}

/* Start (fixed ports, so that a restart comes back where clients are). */
static void
s_broker_start(s_env_t *e, const char *store, const char *const *more)
{
    const char *argv[16];
    s_args(e, argv, more);
    assert_int_equal(gs_tk_broker_start_fixed(&e->broker, store, argv, 0), 0);
}

static void
s_broker_restart(s_env_t *e, const char *const *more)
{
    const char *argv[16];
    s_args(e, argv, more);
    assert_int_equal(gs_tk_broker_restart(&e->broker, argv), 0);
}

/* One sample of the broker's metrics, waiting out a dropped scrape. */
static double
s_metric(s_env_t *e, const char *sample)
{
    int64_t deadline = s_now_ms() + S_WAIT_MS;
    double v;
    while ((v = gs_tk_metric(e->broker.metrics_port, sample)) == GS_TK_METRIC_UNANSWERED &&
           s_now_ms() < deadline)
        s_pause();
    if (v < 0)
        fail_msg("metric %s: %g", sample, v);
    return v;
}

/* Wait (bounded) until the sample equals v. */
static void
s_wait_metric(s_env_t *e, const char *sample, double v)
{
    int64_t deadline = s_now_ms() + S_WAIT_MS;
    double got;
    while ((got = s_metric(e, sample)) != v && s_now_ms() < deadline)
        s_pause();
    if (got != v)
        fail_msg("metric %s is %g, waited for %g", sample, got, v);
}

/* How many lines of the broker's log (all its starts) hold text. */
static int
s_log_count(s_env_t *e, const char *text)
{
    char *log = gs_tk_read_file(e->broker.log_path, NULL, 1);
    int n = 0;
    for (const char *p = log; (p = strstr(p, text)) != NULL; p++)
        n++;
    free(log);
    return n;
}

/* Wait (bounded) until the log holds at least n lines with text. */
static void
s_wait_log(s_env_t *e, const char *text, int n)
{
    int64_t deadline = s_now_ms() + S_WAIT_MS;
    while (s_log_count(e, text) < n && s_now_ms() < deadline)
        s_pause();
    if (s_log_count(e, text) < n) {
        char *log = gs_tk_read_file(e->broker.log_path, NULL, 1);
        size_t len = strlen(log);
        fprintf(stderr, "--- the end of the broker's log:\n%s\n",
                log + (len > 4000 ? len - 4000 : 0));
        free(log);
        fail_msg("the broker's log (%s) has no line with %s", e->broker.log_path, text);
    }
}

/* count uploads of per households each, in cells of the area, acked. */
static void
s_upload(s_env_t *e, int count, int per)
{
    gs_client_t *c = gs_client_new(e->broker.upload, NULL);
    assert_non_null(c);
    for (int u = 0; u < count; u++) {
        Gridsync__V1__Record *recs[64];
        assert_true(per <= 64);
        for (int j = 0; j < per; j++) {
            int k = e->next++;
            char grid[16], hid[32];
            snprintf(grid, sizeof grid, AREA "%03d%03d%03d", 1 + k % 3, 1 + k % 2, 1 + k % 5);
            snprintf(hid, sizeof hid, "H-%d", k);
            recs[j] = gs_tk_household(e->arena, grid, hid, NULL, 1 + k % 3,
                                      (uint32_t) (k * 7 + 1));
        }
        char uid[32];
        snprintf(uid, sizeof uid, "up-%d", e->next);
        Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
        up.device_id = "dev-1";
        up.upload_id = uid;
        up.records = recs;
        up.n_records = (size_t) per;
        Gridsync__V1__Ack *ack = NULL;
        gs_client_error_t err;
        int rc = gs_client_upload(c, &up, &ack, &err);
        if (rc)
            fail_msg("upload %s: %s: %s", uid, gs_client_strerror(rc), err.message);
        gridsync__v1__ack__free_unpacked(ack, NULL);
    }
    gs_client_destroy(&c);
    gs_arena_reset(e->arena);
}

/* The store's log through the broker's sync service: the packed events,
 * [0] for seq 1, and the store's epoch. */
typedef struct {
    uint8_t **data;
    size_t *len;
    uint64_t head;
    uint64_t epoch;
} s_log_t;

static void
s_sync_all(s_env_t *e, s_log_t *l)
{
    gs_client_t *c = gs_client_new(e->broker.upload, NULL);
    assert_non_null(c);
    memset(l, 0, sizeof *l);
    const char *all[1] = { "" };
    uint64_t since = 0;
    size_t cap = 0;
    for (;;) {
        Gridsync__V1__SyncResponse *r = NULL;
        gs_client_error_t err;
        int rc = gs_client_sync(c, all, 1, since, 0, 0, &r, &err);
        if (rc)
            fail_msg("sync: %s: %s", gs_client_strerror(rc), err.message);
        l->epoch = r->store_epoch;
        for (size_t i = 0; i < r->n_events; i++) {
            Gridsync__V1__ChangeEvent *ev = r->events[i];
            assert_int_equal(ev->seq, l->head + 1);
            if (l->head == cap) {
                cap = cap ? cap * 2 : 256;
                l->data = realloc(l->data, cap * sizeof *l->data);
                l->len = realloc(l->len, cap * sizeof *l->len);
            }
            size_t n = gridsync__v1__change_event__get_packed_size(ev);
            l->data[l->head] = malloc(n ? n : 1);
            l->len[l->head] = gridsync__v1__change_event__pack(ev, l->data[l->head]);
            l->head++;
        }
        since = r->next_seq;
        uint64_t head = r->head_seq;
        gridsync__v1__sync_response__free_unpacked(r, NULL);
        if (since >= head)
            break;
    }
    gs_client_destroy(&c);
}

static void
s_log_free(s_log_t *l)
{
    for (uint64_t i = 0; i < l->head; i++)
        free(l->data[i]);
    free(l->data);
    free(l->len);
}

static void
s_connect(const char *url, natsConnection **nc, jsCtx **js, const char *user,
          const char *password)
{
    natsOptions *o = NULL;
    assert_int_equal(natsOptions_Create(&o), NATS_OK);
    assert_int_equal(natsOptions_SetURL(o, url), NATS_OK);
    assert_int_equal(natsOptions_SetTimeout(o, 5000), NATS_OK);
    if (user)
        assert_int_equal(natsOptions_SetUserInfo(o, user, password), NATS_OK);
    natsStatus s = natsConnection_Connect(nc, o);
    if (s != NATS_OK)
        fail_msg("connect %s: %s", url, natsStatus_GetText(s));
    natsOptions_Destroy(o);
    /* a cluster that lost a node may be electing leaders for a while */
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 30000;
    assert_int_equal(natsConnection_JetStream(js, *nc, &jo), NATS_OK);
}

static const char *
s_header(natsMsg *m, const char *key)
{
    const char *v = NULL;
    if (natsMsgHeader_Get(m, key, &v) != NATS_OK || !v)
        fail_msg("message without header %s", key);
    return v;
}

/* The stream, read with a consumer from its first message (or, with
 * by_get, message by message with the stream's get API), holds exactly
 * the events 1..head of the broker's log, once each and in order, on their
 * subjects, with their headers and bytes. The broker must have published
 * everything (the caller waited for the lag to reach 0). */
static void
s_check_stream_by(s_env_t *e, const char *url, const char *user, const char *password,
                  int by_get)
{
    s_log_t l;
    s_sync_all(e, &l);
    assert_true(l.head > 0);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    s_connect(url, &nc, &js, user, password);
    jsStreamInfo *si = NULL;
    assert_int_equal(js_GetStreamInfo(&si, js, STREAM, NULL, NULL), NATS_OK);
    assert_int_equal(si->State.Msgs, l.head);
    assert_int_equal(si->Config->SubjectsLen, 1);
    assert_string_equal(si->Config->Subjects[0], FILTER);
    /* as federation.md gives the stream: file, limits with none set, 10 s
     * duplicate window */
    assert_int_equal(si->Config->Storage, js_FileStorage);
    assert_int_equal(si->Config->Retention, js_LimitsPolicy);
    assert_int_equal(si->Config->Discard, js_DiscardOld);
    assert_true(si->Config->MaxAge == 0 && si->Config->MaxMsgs <= 0 &&
                si->Config->MaxBytes <= 0);
    assert_int_equal(si->Config->Duplicates, 10LL * 1000000000);
    uint64_t first = si->State.FirstSeq;
    jsStreamInfo_Destroy(si);

    natsSubscription *sub = NULL;
    natsStatus s;
    if (!by_get) {
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = STREAM;
        so.Config.DeliverPolicy = js_DeliverAll;
        so.Config.AckPolicy = js_AckNone;
        jsErrCode jerr = 0;
        s = js_SubscribeSync(&sub, js, FILTER, NULL, &so, &jerr);
        if (s != NATS_OK)
            fail_msg("subscribe: %s (%d)", natsStatus_GetText(s), (int) jerr);
    }
    char epoch_hex[17];
    snprintf(epoch_hex, sizeof epoch_hex, "%016" PRIx64, l.epoch);
    for (uint64_t seq = 1; seq <= l.head; seq++) {
        natsMsg *m = NULL;
        if (by_get)
            s = js_GetMsg(&m, js, STREAM, first + seq - 1, NULL, NULL);
        else
            s = natsSubscription_NextMsg(&m, sub, 10000);
        if (s != NATS_OK)
            fail_msg("message %llu of %llu: %s", (unsigned long long) seq,
                     (unsigned long long) l.head, natsStatus_GetText(s));
        char want[80];
        snprintf(want, sizeof want, "%llu", (unsigned long long) seq);
        if (strcmp(s_header(m, "Gridsync-Seq"), want) != 0)
            fail_msg("stream message %llu carries seq %s", (unsigned long long) seq,
                     s_header(m, "Gridsync-Seq"));
        assert_string_equal(s_header(m, "Gridsync-Origin"), AREA);
        assert_string_equal(s_header(m, "Gridsync-Epoch"), epoch_hex);
        gs_bridge_msg_id(AREA, l.epoch, seq, want, sizeof want);
        assert_string_equal(s_header(m, "Nats-Msg-Id"), want);
        /* the bytes the log holds, and the subject of their grid and kind */
        assert_int_equal((size_t) natsMsg_GetDataLength(m), l.len[seq - 1]);
        assert_memory_equal(natsMsg_GetData(m), l.data[seq - 1], l.len[seq - 1]);
        Gridsync__V1__ChangeEvent *ev = gridsync__v1__change_event__unpack(
            NULL, l.len[seq - 1], l.data[seq - 1]);
        assert_non_null(ev);
        char subject[96];
        assert_int_equal(gs_bridge_subject(ev->grid_code, ev->kind, subject, sizeof subject),
                         0);
        assert_string_equal(natsMsg_GetSubject(m), subject);
        gridsync__v1__change_event__free_unpacked(ev, NULL);
        natsMsg_Destroy(m);
    }
    if (!by_get) {
        /* and nothing after the head */
        natsMsg *extra = NULL;
        assert_int_equal(natsSubscription_NextMsg(&extra, sub, 200), NATS_TIMEOUT);
        natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    s_log_free(&l);
}

static void
s_check_stream(s_env_t *e, const char *url, const char *user, const char *password)
{
    s_check_stream_by(e, url, user, password, 0);
}

/* Wait until the stream holds the broker's whole log (lag 0, in events and
 * seconds). */
static void
s_wait_caught_up(s_env_t *e)
{
    double head = s_metric(e, "gridsync_store_head_seq");
    s_wait_metric(e, "gridsync_bridge_last_seq", head);
    s_wait_metric(e, "gridsync_bridge_lag_events", 0);
    assert_true(s_metric(e, "gridsync_bridge_lag_seconds") == 0);
}

/* ---- names and settings ------------------------------------------------------ */

static void
test_names(void **state)
{
    (void) state;
    char out[128];
    assert_int_equal(gs_bridge_subject("440305001002003", 1, out, sizeof out), 0);
    assert_string_equal(out, "gridsync.44.03.05.001.002.003.household");
    assert_int_equal(gs_bridge_subject("440305001002003", 2, out, sizeof out), 0);
    assert_string_equal(out, "gridsync.44.03.05.001.002.003.rental");
    assert_int_equal(gs_bridge_subject("440305001002003", 0, out, sizeof out), -1);
    assert_int_equal(gs_bridge_subject("440305001002003", 999, out, sizeof out), -1);
    assert_int_equal(gs_bridge_subject("44030500100200", 1, out, sizeof out), -1);
    assert_int_equal(gs_bridge_subject("4403050010020x3", 1, out, sizeof out), -1);
    gs_bridge_stream_name("440305", out, sizeof out);
    assert_string_equal(out, "GRIDSYNC_440305");
    gs_bridge_stream_subject("440305", out, sizeof out);
    assert_string_equal(out, "gridsync.44.03.05.>");
    gs_bridge_stream_subject("44", out, sizeof out);
    assert_string_equal(out, "gridsync.44.>");
    gs_bridge_stream_subject("440305001002", out, sizeof out);
    assert_string_equal(out, "gridsync.44.03.05.001.002.>");
    gs_bridge_msg_id("440305", 0xabcULL, 42, out, sizeof out);
    assert_string_equal(out, "440305:0000000000000abc:42");
}

/* Fail closed: a setting that cannot work is refused with a message. */
static void
test_settings_refused(void **state)
{
    (void) state;
    char err[600];
    gs_config_t c;
    gs_config_defaults(&c);
    assert_int_equal(gs_bridge_check(&c, err, sizeof err), 0);    /* no bridge */
    static const struct {
        const char *name, *value;
        const char *expect;
    } bad[] = {
        { "jetstream-area", AREA, "jetstream-url is empty" },
        { "jetstream-rebaseline", "true", "jetstream-url is empty" },
        { "jetstream-url", "http://127.0.0.1:4222", "not a nats://" },
        { "jetstream-url", "nats://u:secret@127.0.0.1:4222", "credentials in the URL" },
        { "jetstream-url", "nats://127.0.0.1:4222", "jetstream-area" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gs_config_defaults(&c);
        assert_int_equal(gs_config_set(&c, bad[i].name, bad[i].value, err, sizeof err), 0);
        assert_int_equal(gs_bridge_check(&c, err, sizeof err), -1);
        if (!strstr(err, bad[i].expect))
            fail_msg("%s=%s: '%s'", bad[i].name, bad[i].value, err);
    }
    const char *areas_good[] = { "44", "4403", "440305", "440305001", "440305001002" };
    const char *areas_bad[] = { "4", "4403051", "440305001002003", "44a305", "" };
    for (size_t i = 0; i < 5; i++) {
        gs_config_defaults(&c);
        gs_config_set(&c, "jetstream-url", "nats://127.0.0.1:4222", err, sizeof err);
        gs_config_set(&c, "jetstream-area", areas_good[i], err, sizeof err);
        assert_int_equal(gs_bridge_check(&c, err, sizeof err), 0);
        gs_config_set(&c, "jetstream-area", areas_bad[i], err, sizeof err);
        assert_int_equal(gs_bridge_check(&c, err, sizeof err), -1);
        assert_non_null(strstr(err, "jetstream-area"));
    }
    /* credentials: one method, complete, readable */
    static const char *const combos[][4] = {
        { "jetstream-user", "u", NULL, "go together" },
        { "jetstream-password-file", "/etc/hostname", NULL, "go together" },
        { "jetstream-user", "u", "jetstream-creds-file=/etc/hostname", "only one" },
        { "jetstream-tls-cert", "/etc/hostname", NULL, "go together" },
        { "jetstream-creds-file", "/nonexistent/x.creds", NULL, "cannot read" },
    };
    for (size_t i = 0; i < sizeof combos / sizeof combos[0]; i++) {
        gs_config_defaults(&c);
        gs_config_set(&c, "jetstream-url", "nats://127.0.0.1:4222", err, sizeof err);
        gs_config_set(&c, "jetstream-area", AREA, err, sizeof err);
        assert_int_equal(gs_config_set(&c, combos[i][0], combos[i][1], err, sizeof err), 0);
        if (combos[i][2]) {
            char name[64];
            const char *eq = strchr(combos[i][2], '=');
            snprintf(name, sizeof name, "%.*s", (int) (eq - combos[i][2]), combos[i][2]);
            assert_int_equal(gs_config_set(&c, name, eq + 1, err, sizeof err), 0);
        }
        assert_int_equal(gs_bridge_check(&c, err, sizeof err), -1);
        if (!strstr(err, combos[i][3]))
            fail_msg("combination %zu: '%s'", i, err);
    }
    /* and gridsyncd itself refuses to start, saying why */
    s_env_t *e = s_env_new(0, NULL);
    const char *argv[] = { "--jetstream-area=" AREA, NULL };
    assert_int_equal(gs_tk_broker_start(&e->broker, e->store, argv), -1);
    assert_true(s_log_count(e, "event=config_refused") == 1);
    assert_true(s_log_count(e, "jetstream-url is empty") == 1);
    s_env_destroy(e);
}

/* ---- (a) the log into the stream ------------------------------------------------ */

static void
test_publishes_log_exactly_once(void **state)
{
    (void) state;
    s_env_t *e = s_env_new(1, NULL);
    s_broker_start(e, e->store, NULL);
    s_wait_metric(e, "gridsync_bridge_connected", 1);
    s_upload(e, 20, 10);
    s_wait_caught_up(e);
    assert_true(s_metric(e, "gridsync_bridge_published_total") == 200);
    assert_true(s_metric(e, "gridsync_bridge_state{state=\"running\"}") == 1);
    /* commit -> stream ack, timed for the events whose note the bridge
     * took (at least those of the note that woke it), each once */
    double timed = s_metric(e, "gridsync_bridge_ack_seconds_count");
    assert_true(timed >= 1 && timed <= 200);
    assert_true(s_metric(e, "gridsync_bridge_ack_seconds_bucket{le=\"+Inf\"}") == timed);
    assert_true(s_metric(e, "gridsync_bridge_ack_seconds_sum") > 0);
    s_check_stream(e, e->nats.url, NULL, NULL);
    /* a restart resumes after what the stream holds: nothing twice */
    assert_int_equal(gs_tk_broker_stop(&e->broker, SIGTERM), 0);
    s_broker_restart(e, NULL);
    s_upload(e, 5, 4);
    s_wait_caught_up(e);
    assert_true(s_metric(e, "gridsync_bridge_published_total") == 20);
    s_wait_log(e, "event=bridge_resumed stream=" STREAM " stream_seq=200 last_seq=200 "
               "from_seq=201", 1);
    s_check_stream(e, e->nats.url, NULL, NULL);
    s_env_destroy(e);
}

/* ---- (b) the broker killed mid-publishing ---------------------------------------- */

static void
test_broker_killed(void **state)
{
    (void) state;
    s_env_t *e = s_env_new(1, NULL);
    s_broker_start(e, e->store, NULL);
    for (int round = 0; round < 4; round++) {
        /* the bridge has resumed; then a load, and the kill right after
         * its last ack, while the bridge has events in flight or still to
         * read */
        s_wait_log(e, "event=bridge_resumed", round + 1);
        s_upload(e, 20, 25);
        int st = gs_tk_broker_stop(&e->broker, SIGKILL);
        assert_true(WIFSIGNALED(st));
        s_broker_restart(e, NULL);
    }
    s_upload(e, 2, 5);
    s_wait_caught_up(e);
    /* five starts, each resumed from the stream's last message */
    assert_int_equal(s_log_count(e, "event=bridge_resumed"), 5);
    s_check_stream(e, e->nats.url, NULL, NULL);
    s_env_destroy(e);
}

/* ---- (c) nats-server down while uploads go on ----------------------------------- */

static void
test_nats_down(void **state)
{
    (void) state;
    s_env_t *e = s_env_new(1, NULL);
    s_broker_start(e, e->store, NULL);
    s_upload(e, 5, 10);
    s_wait_caught_up(e);
    /* killed while the bridge publishes the next load */
    s_upload(e, 10, 20);
    assert_int_not_equal(gs_tk_nats_stop(&e->nats, SIGKILL), 0);
    s_wait_metric(e, "gridsync_bridge_connected", 0);
    /* uploads go on, acked as ever (s_upload fails on anything else) */
    s_upload(e, 20, 10);
    double head = s_metric(e, "gridsync_store_head_seq");
    assert_true(head == 450);
    double last = s_metric(e, "gridsync_bridge_last_seq");
    assert_true(last < head);
    assert_true(s_metric(e, "gridsync_bridge_lag_events") == head - last);
    /* back: the stream catches up, with nothing lost or doubled */
    assert_int_equal(gs_tk_nats_restart(&e->nats), 0);
    s_wait_caught_up(e);
    assert_true(s_metric(e, "gridsync_bridge_connected") == 1);
    assert_true(s_metric(e, "gridsync_bridge_reconnects_total") >= 1);
    s_check_stream(e, e->nats.url, NULL, NULL);
    s_env_destroy(e);
}

/* ---- (d) lineage ------------------------------------------------------------------ */

/* The stream's message count. */
static uint64_t
s_stream_msgs(const char *url)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    s_connect(url, &nc, &js, NULL, NULL);
    jsStreamInfo *si = NULL;
    assert_int_equal(js_GetStreamInfo(&si, js, STREAM, NULL, NULL), NATS_OK);
    uint64_t n = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return n;
}

/* The district restored from an older backup: the bridge refuses to go on
 * and says why; --jetstream-rebaseline then purges the stream and
 * republishes, and the stream holds exactly the new lineage. */
static void
test_lineage(void **state)
{
    (void) state;
    s_env_t *e = s_env_new(1, NULL);
    s_broker_start(e, e->store, NULL);
    s_upload(e, 3, 10);
    s_wait_caught_up(e);
    s_log_t l;
    s_sync_all(e, &l);
    uint64_t old_epoch = l.epoch;
    s_log_free(&l);
    assert_int_equal(gs_tk_broker_stop(&e->broker, SIGTERM), 0);
    /* a backup at seq 30, with an epoch of its own (as a restore gives it) */
    char backup[160];
    snprintf(backup, sizeof backup, "%s/backup", e->dir);
    const uint8_t epoch[8] = { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x08 };
    gs_tk_store_backup_epoch(e->store, backup, epoch);
    /* the district goes on to seq 50, all of it in the stream */
    s_broker_restart(e, NULL);
    s_upload(e, 2, 10);
    s_wait_caught_up(e);
    assert_int_equal(gs_tk_broker_stop(&e->broker, SIGTERM), 0);

    /* restored from the backup: refused, and nothing published */
    s_broker_start(e, backup, NULL);
    s_wait_metric(e, "gridsync_bridge_state{state=\"stopped\"}", 1);
    char want[300];
    snprintf(want, sizeof want, "event=bridge_stopped reason=lineage stream=" STREAM
             " stream_origin=\"" AREA "\" stream_epoch=%016" PRIx64 " stream_seq=50 "
             "store_epoch=0877665544332211 store_head=30", old_epoch);
    s_wait_log(e, want, 1);
    assert_true(s_metric(e, "gridsync_bridge_state{state=\"running\"}") == 0);
    s_upload(e, 1, 5);  /* uploads are not held up */
    assert_true(s_metric(e, "gridsync_bridge_lag_events") == 35);
    assert_int_equal(s_stream_msgs(e->nats.url), 50);
    assert_int_equal(gs_tk_broker_stop(&e->broker, SIGTERM), 0);

    /* re-baselined: the old lineage purged (logged), the new one published */
    const char *rebaseline[] = { "--jetstream-rebaseline", NULL };
    s_broker_restart(e, rebaseline);
    s_wait_log(e, "event=bridge_rebaseline stream=" STREAM " purged_msgs=50 "
               "purged_stream_seqs=1..50", 1);
    s_wait_caught_up(e);
    s_check_stream(e, e->nats.url, NULL, NULL);
    assert_int_equal(s_stream_msgs(e->nats.url), 35);
    /* the setting left on does nothing more once the stream holds this
     * lineage */
    assert_int_equal(gs_tk_broker_stop(&e->broker, SIGTERM), 0);
    s_broker_restart(e, rebaseline);
    s_wait_log(e, "purged_msgs=0", 1);
    s_wait_caught_up(e);
    s_check_stream(e, e->nats.url, NULL, NULL);
    s_env_destroy(e);
}

/* An event outside jetstream-area stops the bridge, naming it; what came
 * before it is published, nothing is skipped. */
static void
test_event_outside_area(void **state)
{
    (void) state;
    s_env_t *e = s_env_new(1, NULL);
    s_broker_start(e, e->store, NULL);
    s_upload(e, 1, 3);
    s_wait_caught_up(e);
    gs_client_t *c = gs_client_new(e->broker.upload, NULL);
    assert_non_null(c);
    Gridsync__V1__Record *rec[2] = {
        gs_tk_household(e->arena, "440306001001001", "H-outside", NULL, 2, 99991),
        gs_tk_household(e->arena, AREA "001001001", "H-after", NULL, 2, 99992),
    };
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = "dev-1";
    up.upload_id = "up-outside";
    up.records = rec;
    up.n_records = 2;
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_client_upload(c, &up, &ack, &err), 0);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_client_destroy(&c);
    s_wait_metric(e, "gridsync_bridge_state{state=\"stopped\"}", 1);
    s_wait_log(e, "event=bridge_stopped reason=event stream=" STREAM
               " seq=4 grid=440306001001001 area=" AREA, 1);
    assert_true(s_metric(e, "gridsync_bridge_last_seq") == 3);
    assert_int_equal(s_stream_msgs(e->nats.url), 3);
    s_env_destroy(e);
}

/* ---- (e) a server with authentication on ------------------------------------------- */

#define S_USER "district"
#define S_PASSWORD "s3cret-Pa55"
/* the user nkey of the NATS documentation's example */
#define S_NKEY_SEED "SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY"
#define S_NKEY_PUBLIC "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"

static void
s_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
test_credentials(void **state)
{
    (void) state;
    char out[64];
    assert_int_equal(gs_natslink_nkey_public_seed(S_NKEY_SEED, out, sizeof out), 0);
    assert_string_equal(out, S_NKEY_PUBLIC);
    assert_int_equal(gs_natslink_nkey_public_seed("SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VZ",
                                           out, sizeof out), -1);   /* checksum */
    assert_int_equal(gs_natslink_nkey_public_seed(S_NKEY_PUBLIC, out, sizeof out), -1);

    /* the district's user may publish on its subjects and use its own
     * stream only, as docs/federation.md advises; the test reads as
     * another user */
    s_env_t *e = s_env_new(1, "authorization {\n  users = [\n"
                              "    { user: \"" S_USER "\", password: \"" S_PASSWORD "\",\n"
                              "      permissions: {\n"
                              "        publish: [ \"gridsync.44.03.05.>\",\n"
                              "          \"$JS.API.STREAM.INFO." STREAM "\",\n"
                              "          \"$JS.API.STREAM.CREATE." STREAM "\",\n"
                              "          \"$JS.API.STREAM.MSG.GET." STREAM "\",\n"
                              "          \"$JS.API.STREAM.PURGE." STREAM "\" ]\n"
                              "        subscribe: [ \"_INBOX.>\" ] } }\n"
                              "    { user: \"reader\", password: \"reader-pw\" }\n"
                              "    { nkey: \"" S_NKEY_PUBLIC "\" }\n  ]\n}\n");
    char pw[200], pw_bad[200], seed[200], seed_bad[200];
    snprintf(pw, sizeof pw, "%s/password", e->dir);
    snprintf(pw_bad, sizeof pw_bad, "%s/password-old", e->dir);
    snprintf(seed, sizeof seed, "%s/user.nk", e->dir);
    snprintf(seed_bad, sizeof seed_bad, "%s/other.nk", e->dir);
    s_write_file(pw, S_PASSWORD "\n");
    s_write_file(pw_bad, "not-the-password\n");
    s_write_file(seed, S_NKEY_SEED "\n");
    s_write_file(seed_bad, "SUAnotaseed\n");
    char pw_arg[260], pw_bad_arg[260], seed_arg[260], seed_bad_arg[260];
    snprintf(pw_arg, sizeof pw_arg, "--jetstream-password-file=%s", pw);
    snprintf(pw_bad_arg, sizeof pw_bad_arg, "--jetstream-password-file=%s", pw_bad);
    snprintf(seed_arg, sizeof seed_arg, "--jetstream-nkey-seed-file=%s", seed);
    snprintf(seed_bad_arg, sizeof seed_bad_arg, "--jetstream-nkey-seed-file=%s", seed_bad);

    /* user and password: connected, published */
    const char *user[] = { "--jetstream-user=" S_USER, pw_arg, NULL };
    s_broker_start(e, e->store, user);
    s_upload(e, 4, 5);
    s_wait_caught_up(e);
    s_check_stream(e, e->nats.url, "reader", "reader-pw");
    assert_int_equal(gs_tk_broker_stop(&e->broker, SIGTERM), 0);

    /* none, or a wrong password: a clear error, uploads go on */
    s_broker_restart(e, NULL);
    s_wait_log(e, "event=bridge_connect_failed", 1);
    s_wait_log(e, "error=\"Authorization Violation\"", 1);
    s_upload(e, 1, 5);
    assert_true(s_metric(e, "gridsync_bridge_connected") == 0);
    /* never connected, it does not know what the stream holds: the whole
     * log counts as lag */
    assert_true(s_metric(e, "gridsync_bridge_lag_events") == 25);
    assert_int_equal(gs_tk_broker_stop(&e->broker, SIGTERM), 0);
    const char *wrong[] = { "--jetstream-user=" S_USER, pw_bad_arg, NULL };
    s_broker_restart(e, wrong);
    s_wait_log(e, "error=\"Authorization Violation\"", 2);
    assert_int_equal(gs_tk_broker_stop(&e->broker, SIGTERM), 0);

    /* an nkey: connected, and the stream catches up */
    const char *nkey[] = { seed_arg, NULL };
    s_broker_restart(e, nkey);
    s_wait_caught_up(e);
    s_check_stream(e, e->nats.url, "reader", "reader-pw");
    assert_int_equal(gs_tk_broker_stop(&e->broker, SIGTERM), 0);
    /* a file that holds no seed: refused at start */
    const char *nkey_bad[] = { seed_bad_arg, NULL };
    const char *argv[16];
    s_args(e, argv, nkey_bad);
    assert_int_equal(gs_tk_broker_restart(&e->broker, argv), -1);
    assert_true(s_log_count(e, "not a NATS user nkey seed") == 1);
    /* no secret in the log */
    assert_int_equal(s_log_count(e, S_PASSWORD), 0);
    assert_int_equal(s_log_count(e, "SUACSSL3"), 0);
    s_env_destroy(e);
}

/* TLS: a server that requires it and verifies clients. The bridge connects
 * with the CA and a client certificate; without the certificate, or
 * trusting another CA, it fails with a clear error. Certificates are made
 * with openssl for the test. */
static void
test_tls(void **state)
{
    (void) state;
    s_env_t *e = s_env_new(0, NULL);
    char cmd[4096];
    /* a CA, another CA, and a server and a client certificate from the first */
    snprintf(cmd, sizeof cmd,
             "cd %s && exec > openssl.log 2>&1 && "
             "for ca in ca other; do openssl req -x509 -newkey ec -pkeyopt "
             "ec_paramgen_curve:prime256v1 -nodes -keyout $ca.key -out $ca.pem -days 2 "
             "-subj /CN=gridsync-test-$ca || exit 1; done && "
             "printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext && "
             "for who in server client; do openssl req -newkey ec -pkeyopt "
             "ec_paramgen_curve:prime256v1 -nodes -keyout $who.key -out $who.csr "
             "-subj /CN=127.0.0.1 && openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key "
             "-CAcreateserial -out $who.pem -days 2 $( [ $who = server ] && echo -extfile "
             "server.ext ) || exit 1; done", e->dir);
    if (system(cmd) != 0)
        fail_msg("openssl failed (see %s/openssl.log)", e->dir);
    char extra[1024];
    snprintf(extra, sizeof extra,
             "tls {\n  cert_file: \"%s/server.pem\"\n  key_file: \"%s/server.key\"\n"
             "  ca_file: \"%s/ca.pem\"\n  verify: true\n  timeout: 5\n}\n", e->dir, e->dir,
             e->dir);
    assert_int_equal(gs_tk_nats_start(&e->nats, extra), 0);
    snprintf(e->url_arg, sizeof e->url_arg, "--jetstream-url=tls://127.0.0.1:%d",
             e->nats.port);
    char ca[300], other[300], cert[300], key[300];
    snprintf(ca, sizeof ca, "--jetstream-tls-ca=%s/ca.pem", e->dir);
    snprintf(other, sizeof other, "--jetstream-tls-ca=%s/other.pem", e->dir);
    snprintf(cert, sizeof cert, "--jetstream-tls-cert=%s/client.pem", e->dir);
    snprintf(key, sizeof key, "--jetstream-tls-key=%s/client.key", e->dir);

    const char *good[] = { ca, cert, key, NULL };
    s_broker_start(e, e->store, good);
    s_wait_log(e, "event=bridge_connected", 1);
    s_wait_log(e, "tls=on", 1);
    s_upload(e, 4, 5);
    s_wait_caught_up(e);
    assert_true(s_metric(e, "gridsync_bridge_published_total") == 20);
    assert_int_equal(gs_tk_broker_stop(&e->broker, SIGTERM), 0);

    /* no client certificate: the server refuses the handshake */
    const char *no_cert[] = { ca, NULL };
    s_broker_restart(e, no_cert);
    s_wait_log(e, "event=bridge_connect_failed", 1);
    assert_true(s_metric(e, "gridsync_bridge_connected") == 0);
    assert_int_equal(gs_tk_broker_stop(&e->broker, SIGTERM), 0);
    /* a server certificate from a CA the bridge does not trust */
    const char *wrong_ca[] = { other, cert, key, NULL };
    s_broker_restart(e, wrong_ca);
    s_wait_log(e, "event=bridge_connect_failed", 2);
    assert_true(s_metric(e, "gridsync_bridge_connected") == 0);
    s_env_destroy(e);
}

/* ---- (f) a three-node cluster, one node killed ------------------------------------ */

static void
test_cluster_node_killed(void **state)
{
    (void) state;
    s_env_t *e = s_env_new(0, NULL);
    gs_tk_nats_t nodes[3];
    assert_int_equal(gs_tk_nats_cluster_start(nodes, 3, NULL), 0);
    snprintf(e->url_arg, sizeof e->url_arg, "--jetstream-url=%s,%s,%s", nodes[0].url,
             nodes[1].url, nodes[2].url);
    const char *r3[] = { "--jetstream-replicas=3", NULL };
    s_broker_start(e, e->store, r3);
    s_upload(e, 10, 10);
    s_wait_caught_up(e);
    /* the first node (the one the bridge is connected to: the URLs are
     * tried in order) killed while the bridge publishes */
    s_upload(e, 20, 25);
    assert_int_not_equal(gs_tk_nats_stop(&nodes[0], SIGKILL), 0);
    s_upload(e, 10, 10);
    s_wait_caught_up(e);
    assert_true(s_metric(e, "gridsync_bridge_reconnects_total") >= 1);
    /* read with the stream's get API: creating a consumer right after the
     * loss of a node can time out while the cluster elects */
    s_check_stream_by(e, nodes[1].url, NULL, NULL, 1);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    s_connect(nodes[2].url, &nc, &js, NULL, NULL);
    jsStreamInfo *si = NULL;
    assert_int_equal(js_GetStreamInfo(&si, js, STREAM, NULL, NULL), NATS_OK);
    assert_int_equal(si->Config->Replicas, 3);
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    assert_int_equal(gs_tk_broker_stop(&e->broker, SIGTERM), 0);
    for (int i = 0; i < 3; i++)
        gs_tk_nats_destroy(&nodes[i]);
    s_env_destroy(e);
}

int
main(void)
{
    if (!gs_tk_nats_available())
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_settings_refused),
        cmocka_unit_test(test_publishes_log_exactly_once),
        cmocka_unit_test(test_broker_killed),
        cmocka_unit_test(test_nats_down),
        cmocka_unit_test(test_lineage),
        cmocka_unit_test(test_event_outside_area),
        cmocka_unit_test(test_credentials),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_cluster_node_killed),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    nats_Close();
    return rc;
}

/*
 * gs_bridge: the change log into JetStream, on the gs-bridge thread. See
 * gs_bridge.h and docs/federation.md.
 */
#include "gs_bridge.h"
#include "gs_natslink.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <nats/nats.h>
#include <sodium.h>

#include "gs_grid.h"
#include "gs_log.h"
#include "gs_wire.h"

#define S_PAGE 2048             /* events read per read transaction */
#define S_SUBJECT_MAX 96        /* an event's subject, NUL included */
#define S_MAX_PENDING 4096      /* publishes in flight, waiting for their ack */
#define S_NOTES 64              /* the writer's notes kept until their events are read */
#define S_ACK_WAIT_MS 10000     /* an ack not back by then is an error (reconnect) */
#define S_API_WAIT_MS 5000      /* stream info, get, purge, create */
#define S_DRAIN_MS 5000         /* at stop or error: what is in flight may still be acked */
#define S_BACKOFF_MIN_MS 100    /* reconnect backoff, doubling up to */
#define S_BACKOFF_MAX_MS 5000
#define S_IDLE_MS 1000          /* wake-up when no note comes */
#define S_BUSY_MS 100           /* ... while acks are outstanding */
#define S_DUP_WINDOW_S 10       /* the stream's duplicate window (Nats-Msg-Id) */

struct gs_bridge {
    gs_broker_t *b;                 /* the broker it publishes for */
    gs_metrics_t *m;                /* its counters (b->metrics) */
    const gs_config_t *cfg;         /* b->cfg */
    char stream[48];                /* GRIDSYNC_<area> */
    char filter[64];                /* gridsync.<area tokens>.> */
    int tls;                        /* TLS asked for (tls:// or a jetstream-tls-* setting) */
    uint64_t epoch;                 /* the store's lineage epoch */
    char epoch_hex[17];             /* and as the Gridsync-Epoch header writes it */
    char id_prefix[64];             /* "<area>:<epoch>:", the fixed part of Nats-Msg-Id */
    atomic_int stop;                /* gs_bridge_halt asked to stop */
    atomic_int failed;              /* an ack came back with an error (nats.c's thread) */
    atomic_int nats_used;           /* nats.c was opened: close it at destroy */
    int sync_made;                  /* mu and cond are initialised */
    /* the gs-bridge thread's own state */
    void *wake;                     /* PULL on GS_EP_BRIDGE */
    natsConnection *nc;             /* NULL while not connected */
    jsCtx *js;                      /* its JetStream context */
    natsSubscription *acks;         /* the stream's acks of this connection's publishes */
    char reply[64];                 /* their subject, "<inbox>." + the event's seq */
    size_t reply_len;               /* the length of "<inbox>." */
    char ack_stream[64];            /* "\"stream\":\"GRIDSYNC_<area>\"", in every positive ack */
    uint64_t sent_seq;              /* last event seq handed to nats.c (or found in the stream) */
    uint64_t stream_last;           /* the stream seq the next publish expects as last */
    /* the events of one read, copied out of its read transaction */
    uint8_t *buf;                   /* their data, one after the other */
    size_t buf_len, buf_cap;
    size_t page_off[S_PAGE];        /* each event's data in buf */
    uint32_t page_len[S_PAGE];
    uint64_t page_seq[S_PAGE];      /* its seq */
    int64_t page_noted[S_PAGE];     /* when the writer noted it committed (0 = unknown) */
    char page_subject[S_PAGE][S_SUBJECT_MAX];
    size_t n_page;
    /* the writer's notes {head, gs_mono_us} whose events are not read yet,
     * oldest first */
    uint64_t note_head[S_NOTES];
    int64_t note_us[S_NOTES];
    size_t note_first, n_notes;
    /* shared with nats.c's thread that delivers the acks (s_on_ack) */
    pthread_mutex_t mu;             /* with cond: the bridge waiting for acks */
    pthread_cond_t cond;
    atomic_uint_fast64_t wake_at;   /* signal cond once this seq is acked (0 = none waits) */
    atomic_int_fast64_t ack_us;     /* gs_mono_us of the last ack, or of the first
                                     * publish after all were acked */
    atomic_int_fast64_t noted[S_MAX_PENDING]; /* page_noted of each event in flight,
                                               * by seq modulo S_MAX_PENDING */
    char halt[400];                 /* why the log cannot be published on ("" = it can) */
    int connect_failures;           /* in a row, for the log's rate */
    char last_error[200];           /* the last connect error logged */
    int64_t last_error_ms;          /* and when */
};

/* ---- names (pure) ----------------------------------------------------------- */

/* The area's digits split as the subject's tokens: "44.03.05". */
static void
s_tokens(const char *code, size_t len, char *out, size_t size)
{
    static const int cuts[] = { 2, 4, 6, 9, 12, 15 };
    size_t o = 0, from = 0;
    out[0] = 0;
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0] && (size_t) cuts[i] <= len; i++) {
        int n = snprintf(out + o, size - o, "%s%.*s", o ? "." : "", (int) (cuts[i] - from),
                         code + from);
        if (n < 0 || (size_t) n >= size - o)
            return;
        o += (size_t) n;
        from = (size_t) cuts[i];
    }
}

void
gs_bridge_stream_name(const char *area, char *out, size_t size)
{
    snprintf(out, size, "GRIDSYNC_%s", area);
}

void
gs_bridge_stream_subject(const char *area, char *out, size_t size)
{
    char t[32];
    s_tokens(area, strlen(area), t, sizeof t);
    snprintf(out, size, "gridsync.%s.>", t);
}

int
gs_bridge_subject(const char *grid, int kind, char *out, size_t size)
{
    out[0] = 0;
    if (strlen(grid) != GS_GRID_LEN)
        return -1;
    for (size_t i = 0; i < GS_GRID_LEN; i++)
        if (!isdigit((unsigned char) grid[i]))
            return -1;
    /* the kind token follows the schema's enum, so a kind added there
     * gets its subject without a change here */
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&gridsync__v1__record_kind__descriptor, kind);
    static const char strip[] = "RECORD_KIND_";
    if (!v || kind == 0 || strncmp(v->name, strip, sizeof strip - 1) != 0)
        return -1;
    const char *k = v->name + sizeof strip - 1;
    /* built by hand rather than with snprintf: the bridge makes one for
     * every event it publishes */
    static const char pre[] = "gridsync.";
    static const int cuts[] = { 2, 4, 6, 9, 12, 15 };
    size_t n_cuts = sizeof cuts / sizeof cuts[0];
    if (sizeof pre - 1 + GS_GRID_LEN + n_cuts + strlen(k) + 1 > size)
        return -1;
    char *o = out;
    memcpy(o, pre, sizeof pre - 1);
    o += sizeof pre - 1;
    size_t from = 0;
    for (size_t i = 0; i < n_cuts; i++) {
        memcpy(o, grid + from, (size_t) cuts[i] - from);
        o += (size_t) cuts[i] - from;
        *o++ = '.';
        from = (size_t) cuts[i];
    }
    for (; *k; k++)
        *o++ = (char) tolower((unsigned char) *k);
    *o = 0;
    return 0;
}

void
gs_bridge_msg_id(const char *area, uint64_t epoch, uint64_t seq, char *out, size_t size)
{
    snprintf(out, size, "%s:%016" PRIx64 ":%" PRIu64, area, epoch, seq);
}

/* ---- settings ---------------------------------------------------------------- */

int
gs_bridge_check(const gs_config_t *c, char *err, size_t err_size)
{
    if (!c->jetstream_url[0]) {
        const char *set = c->jetstream_area[0] ? "jetstream-area"
                          : c->jetstream_rebaseline ? "jetstream-rebaseline"
                                                    : gs_natslink_setting_set(c);
        if (set) {
            snprintf(err, err_size, "%s is set but jetstream-url is empty (no bridge "
                     "would run): set jetstream-url or remove %s", set, set);
            return -1;
        }
        return 0;
    }
    /* the link's own rules: one place, for the replica too */
    if (gs_natslink_check(c, err, err_size))
        return -1;
    const char *area = c->jetstream_area;
    gs_verdict_t v;
    int level = gs_level_of_len(strlen(area));
    if (!area[0] || gs_prefix_check(area, &v) != 0 || level < GS_LEVEL_PROVINCE ||
        level > GS_LEVEL_COMMUNITY) {
        snprintf(err, err_size, "jetstream-area: '%s' is not a prefix of 2, 4, 6, 9 or 12 "
                 "digits (the district's area, e.g. its 6-digit county code); it is required "
                 "with jetstream-url", area);
        return -1;
    }
    return 0;
}

gs_bridge_t *
gs_bridge_new(gs_broker_t *b)
{
    const gs_config_t *c = &b->cfg;
    assert(c->jetstream_url[0]);
    gs_bridge_t *self = calloc(1, sizeof *self);
    if (!self) {
        gs_log(GS_LOG_ERROR, "out_of_memory", "what=bridge");
        return NULL;
    }
    self->b = b;
    self->m = &b->metrics;
    self->cfg = c;
    gs_bridge_stream_name(c->jetstream_area, self->stream, sizeof self->stream);
    gs_bridge_stream_subject(c->jetstream_area, self->filter, sizeof self->filter);
    self->tls = gs_natslink_tls(c);
    if (gs_store_epoch(b->store, &self->epoch) != 0) {
        gs_log(GS_LOG_ERROR, "bridge_config", "msg=\"the store has no lineage epoch\"");
        goto fail;
    }
    snprintf(self->epoch_hex, sizeof self->epoch_hex, "%016" PRIx64, self->epoch);
    /* Nats-Msg-Id's fixed part: gs_bridge_msg_id's form for seq 0 without
     * its "0" */
    gs_bridge_msg_id(c->jetstream_area, self->epoch, 0, self->id_prefix,
                     sizeof self->id_prefix);
    self->id_prefix[strlen(self->id_prefix) - 1] = 0;
    snprintf(self->ack_stream, sizeof self->ack_stream, "\"stream\":\"%s\"", self->stream);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int ok = pthread_mutex_init(&self->mu, NULL) == 0;
    if (ok && pthread_cond_init(&self->cond, &ca) != 0) {
        pthread_mutex_destroy(&self->mu);
        ok = 0;
    }
    pthread_condattr_destroy(&ca);
    if (!ok) {
        gs_log(GS_LOG_ERROR, "out_of_memory", "what=bridge");
        free(self);
        return NULL;
    }
    self->sync_made = 1;
    if (gs_natslink_plaintext_auth(c))
        gs_log(GS_LOG_WARN, "bridge_plaintext", "msg=\"the bridge authenticates to NATS "
               "without TLS: the change log (personal data) and the user's credentials cross "
               "the network in the clear; set jetstream-tls-ca or use tls:// (security.md)\"");
    b->metrics.bridge_enabled = 1;
    return self;
fail:
    gs_bridge_destroy(&self);
    return NULL;
}

void
gs_bridge_destroy(gs_bridge_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gs_bridge_t *self = *self_p;
    assert(!self->nc && !self->wake);
    /* nats.c's own threads may still hold the library (and could still call
     * s_on_ack with self): wait for them before self goes */
    if (atomic_load(&self->nats_used))
        nats_CloseAndWait(5000);
    if (self->sync_made) {
        pthread_cond_destroy(&self->cond);
        pthread_mutex_destroy(&self->mu);
    }
    free(self->buf);
    free(self);
    *self_p = NULL;
}

/* ---- the writer's note, the lifecycle's stop ---------------------------------- */

/* A note: the new head, and when it was committed (gs_mono_us), from
 * which the bridge times commit -> the stream's ack. */
typedef struct {
    uint64_t head;
    int64_t us;
} s_note_t;

void
gs_bridge_notify(void *to_bridge, uint64_t head)
{
    if (to_bridge) {
        s_note_t n = { head, gs_mono_us() };
        zmq_send(to_bridge, &n, sizeof n, ZMQ_DONTWAIT); /* EAGAIN: dropped */
    }
}

void
gs_bridge_halt(gs_bridge_t *self, void *to_bridge)
{
    atomic_store(&self->stop, 1);
    /* a full queue means notes the bridge will read, and then see stop */
    gs_bridge_notify(to_bridge, 0);
}

/* Keep a note until the events it announces are published: only notes of
 * heads beyond what was published count (the halt's head 0, or a note that
 * came after the bridge published its events anyway, do not); when full,
 * the oldest goes (its events then get a later note's time). */
static void
s_note_keep(gs_bridge_t *self, const s_note_t *n)
{
    uint64_t last = self->n_notes ? self->note_head[(self->note_first + self->n_notes - 1) %
                                                    S_NOTES]
                                   : self->sent_seq;
    if (n->head <= last)
        return;
    if (self->n_notes == S_NOTES) {
        self->note_first = (self->note_first + 1) % S_NOTES;
        self->n_notes--;
    }
    size_t i = (self->note_first + self->n_notes) % S_NOTES;
    self->note_head[i] = n->head;
    self->note_us[i] = n->us;
    self->n_notes++;
}

/* Take every note queued, without waiting. */
static void
s_notes_take(gs_bridge_t *self)
{
    s_note_t n;
    while (zmq_recv(self->wake, &n, sizeof n, ZMQ_DONTWAIT) == (int) sizeof n)
        s_note_keep(self, &n);
}

/* When the event seq was committed, by the first note kept whose head
 * reaches it (the notes before it are of events before seq): 0 when no note
 * covers it (committed before the bridge came to it: a catch-up). */
static int64_t
s_noted(gs_bridge_t *self, uint64_t seq)
{
    while (self->n_notes && self->note_head[self->note_first] < seq) {
        self->note_first = (self->note_first + 1) % S_NOTES;
        self->n_notes--;
    }
    return self->n_notes ? self->note_us[self->note_first] : 0;
}

/* 1 when a note kept announces events beyond what was published. */
static int
s_note_beyond(const gs_bridge_t *self)
{
    return self->n_notes &&
           self->note_head[(self->note_first + self->n_notes - 1) % S_NOTES] > self->sent_seq;
}

/* Wait for a note (or stop) at most ms; take every note queued. */
static void
s_wait(gs_bridge_t *self, long ms)
{
    if (atomic_load(&self->stop))
        return;
    zmq_pollitem_t it = { self->wake, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll(&it, 1, ms) <= 0)
        return;
    s_notes_take(self);
}

/* ---- acks (nats.c's thread) -------------------------------------------------- */

static uint64_t
s_header_u64(natsMsg *msg, const char *key, int hex, int *ok)
{
    const char *v = NULL;
    *ok = 0;
    if (natsMsgHeader_Get(msg, key, &v) != NATS_OK || !v || !*v)
        return 0;
    errno = 0;
    char *end;
    unsigned long long x = strtoull(v, &end, hex ? 16 : 10);
    if (errno || *end || v[0] == '-' || v[0] == '+' || isspace((unsigned char) v[0]))
        return 0;
    *ok = 1;
    return x;
}

/* The value of "key": in the JSON text t, as text up to the next '"' or
 * ',' or '}' (a number, true, or a string's content), into out; "" when
 * the key is absent. JetStream's ack is one flat object, {"stream":...,
 * "seq":N, "duplicate":true} or {"error":{"code":N,"err_code":N,
 * "description":"..."}, ...}: enough for it. */
static void
s_json_value(const char *t, const char *key, char *out, size_t size)
{
    char k[32];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(t, k);
    size_t n = 0;
    if (p) {
        p += strlen(k);
        if (*p == '"')
            p++;
        for (; p[n] && p[n] != '"' && p[n] != ',' && p[n] != '}' && n + 1 < size; n++)
            out[n] = p[n] == '\n' ? ' ' : p[n];
    }
    out[n] = 0;
}

/* Every publish's ack, on the subject "<inbox>.<event seq>". A positive
 * ack (first copy or a duplicate of one the stream holds) moves the acked
 * seq on; anything else (a refused expectation, no stream, no responders)
 * marks the connection failed: the bridge thread then drops what is in
 * flight, reconnects and resumes from what the stream holds. */
static void
s_on_ack(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void) nc;
    (void) sub;
    gs_bridge_t *self = closure;
    int64_t now = gs_mono_us();
    const char *subject = natsMsg_GetSubject(msg);
    const char *dot = subject ? strrchr(subject, '.') : NULL;
    uint64_t seq = dot ? strtoull(dot + 1, NULL, 10) : 0;
    char text[512], err[200] = "", code[16] = "", v[24];
    int len = natsMsg_GetDataLength(msg);
    const char *data = natsMsg_GetData(msg);
    snprintf(text, sizeof text, "%.*s", len < 0 ? 0 : len, data ? data : "");
    int no_responders = natsMsg_IsNoResponders(msg);
    natsMsg_Destroy(msg);
    int ok = seq > 0 && !no_responders && !strstr(text, "\"error\":") &&
             strstr(text, self->ack_stream) != NULL;
    if (ok) {
        s_json_value(text, "seq", v, sizeof v);
        ok = v[0] != 0;
    }
    if (ok) {
        s_json_value(text, "duplicate", v, sizeof v);
        if (strcmp(v, "true") != 0)
            atomic_fetch_add(&self->m->bridge_published, 1);
        int64_t noted = atomic_exchange(&self->noted[seq % S_MAX_PENDING], 0);
        if (noted > 0 && now > noted)
            gs_hist_observe(&self->m->bridge_ack_seconds, (double) (now - noted) / 1e6);
        atomic_store(&self->ack_us, now);
        uint64_t cur = atomic_load(&self->m->bridge_acked_seq);
        while (seq > cur && !atomic_compare_exchange_weak(&self->m->bridge_acked_seq, &cur, seq))
            ;
    } else {
        atomic_fetch_add(&self->m->bridge_errors, 1);
        s_json_value(text, "description", err, sizeof err);
        s_json_value(text, "err_code", code, sizeof code);
        if (!err[0])
            snprintf(err, sizeof err, "%s", no_responders ? "no responders "
                     "(no stream for the subject, or JetStream is not available)" : text);
        for (char *p = err; *p; p++)
            if (*p == '"' || *p == '\\')
                *p = '\'';
        /* the first error of a run is the one worth a line; those after it
         * are the publishes behind it, refused for the same reason */
        if (atomic_exchange(&self->failed, 1) == 0)
            gs_log(GS_LOG_WARN, "bridge_publish_failed", "seq=%llu error=\"%s\" code=%s "
                   "text=\"%s\" msg=\"reconnecting and resuming from the stream's last "
                   "message\"", (unsigned long long) seq,
                   no_responders ? "no responders" : "refused", code[0] ? code : "0", err);
    }
    uint64_t want = atomic_load(&self->wake_at);
    if (want && (!ok || atomic_load(&self->m->bridge_acked_seq) >= want)) {
        pthread_mutex_lock(&self->mu);
        pthread_cond_signal(&self->cond);
        pthread_mutex_unlock(&self->mu);
    }
}

/* ---- connection ------------------------------------------------------------- */

/* nats.c's last error on this thread, for a log value in double quotes:
 * without nats.c's source position ("(conn.c:1905): text") and with any
 * double quote made single. Valid until the next call on this thread. */
static const char *
s_nats_error(natsStatus s)
{
    static _Thread_local char buf[256];
    natsStatus ls;
    const char *t = nats_GetLastError(&ls);
    if (!t || !*t)
        t = natsStatus_GetText(s);
    const char *end = t[0] == '(' ? strstr(t, "): ") : NULL;
    snprintf(buf, sizeof buf, "%s", end ? end + 3 : t);
    for (char *p = buf; *p; p++)
        if (*p == '"' || *p == '\n')
            *p = '\'';
    return buf;
}

/* Connect and make the JetStream context. Returns 0, or -1 (logged at a
 * bounded rate) when no server could be reached or the options are
 * refused. */
static int
s_connect(gs_bridge_t *self)
{
    const gs_config_t *c = self->cfg;
    atomic_store(&self->nats_used, 1);
    char name[64];
    snprintf(name, sizeof name, "gridsyncd-bridge-%s", c->jetstream_area);
    /* servers, credentials and TLS: the link's one rule */
    const char *what = "options";
    natsStatus s = NATS_OK;
    natsOptions *o = gs_natslink_options(c, name, &what, &s);
    /* the bridge reconnects itself, so that after any break it reads the
     * stream's last message again before it publishes another event */
    if (s == NATS_OK) {
        what = "options";
        s = natsOptions_SetAllowReconnect(o, false);
    }
    if (s == NATS_OK) {
        what = "connect";
        s = gs_natslink_connect(&self->nc, o, gs_natslink_signs(c));
    }
    if (s == NATS_OK) {
        what = "jetstream";
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = S_API_WAIT_MS;
        s = natsConnection_JetStream(&self->js, self->nc, &jo);
    }
    if (s == NATS_OK) {
        /* the acks come to "<inbox>.<event seq>", one subscription: the
         * bridge publishes with the core client and keeps its own window
         * (nats.c's asynchronous JetStream publish costs a table entry, a
         * timer entry and a JSON parse per message) */
        what = "subscribe";
        natsInbox *inbox = NULL;
        s = natsInbox_Create(&inbox);
        if (s == NATS_OK && strlen(inbox) + 2 > sizeof self->reply - 21)
            s = NATS_ERR;
        if (s == NATS_OK) {
            char all[sizeof self->reply];
            snprintf(self->reply, sizeof self->reply, "%s.", inbox);
            self->reply_len = strlen(self->reply);
            snprintf(all, sizeof all, "%s.*", inbox);
            s = natsConnection_Subscribe(&self->acks, self->nc, all, s_on_ack, self);
        }
        natsInbox_Destroy(inbox);
        /* the window's acks must never be dropped as a slow consumer's */
        if (s == NATS_OK)
            s = natsSubscription_SetPendingLimits(self->acks, -1, -1);
        if (s == NATS_OK)
            s = natsConnection_Flush(self->nc);
    }
    natsOptions_Destroy(o);
    if (s == NATS_OK) {
        self->connect_failures = 0;
        self->last_error[0] = 0;
        atomic_store(&self->m->bridge_connected, 1);
        char url[256] = "";
        natsConnection_GetConnectedUrl(self->nc, url, sizeof url);
        gs_log(GS_LOG_INFO, "bridge_connected", "url=\"%s\" stream=%s tls=%s", url,
               self->stream, self->tls ? "on" : "off");
        return 0;
    }
    char msg[200];
    snprintf(msg, sizeof msg, "%s", s_nats_error(s));
    natsSubscription_Destroy(self->acks);
    self->acks = NULL;
    jsCtx_Destroy(self->js);
    self->js = NULL;
    if (self->nc) {
        natsConnection_Destroy(self->nc);
        self->nc = NULL;
    }
    atomic_fetch_add(&self->m->bridge_errors, 1);
    self->connect_failures++;
    int64_t now = gs_now_ms();
    /* a long outage logs its first failure, a changed error, and then one
     * line a minute */
    if (self->connect_failures == 1 || strcmp(msg, self->last_error) != 0 ||
        now - self->last_error_ms >= 60000) {
        gs_log(GS_LOG_WARN, "bridge_connect_failed", "url=\"%s\" step=%s error=\"%s\" "
               "attempts=%d msg=\"uploads go on; the bridge retries and catches up\"",
               self->cfg->jetstream_url, what, msg, self->connect_failures);
        snprintf(self->last_error, sizeof self->last_error, "%s", msg);
        self->last_error_ms = now;
    }
    return -1;
}

/* Wait until the stream acknowledged seq, an ack failed, stop was asked or
 * deadline (gs_mono_us) passed. Returns 0 when seq is acknowledged. */
static int
s_acks_wait(gs_bridge_t *self, uint64_t seq, int64_t deadline)
{
    pthread_mutex_lock(&self->mu);
    atomic_store(&self->wake_at, seq);
    int64_t now;
    while (atomic_load(&self->m->bridge_acked_seq) < seq && !atomic_load(&self->failed) &&
           !atomic_load(&self->stop) && (now = gs_mono_us()) < deadline) {
        /* a bounded step: stop is asked without a signal here (cond runs on
     * CLOCK_MONOTONIC, gs_mono_us's clock) */
        int64_t until = now + 100000 < deadline ? now + 100000 : deadline;
        struct timespec ts = { (time_t) (until / 1000000), (long) (until % 1000000) * 1000 };
        pthread_cond_timedwait(&self->cond, &self->mu, &ts);
    }
    atomic_store(&self->wake_at, 0);
    pthread_mutex_unlock(&self->mu);
    return atomic_load(&self->m->bridge_acked_seq) >= seq ? 0 : -1;
}

/* Give up the connection: with drain, what is in flight gets up to
 * S_DRAIN_MS to be acknowledged; whatever is still unacknowledged then is
 * dropped (the next connection reads what the stream holds). */
static void
s_disconnect(gs_bridge_t *self, int drain, const char *why)
{
    if (!self->nc)
        return;
    if (drain && natsConnection_Status(self->nc) == NATS_CONN_STATUS_CONNECTED &&
        !atomic_load(&self->failed))
        s_acks_wait(self, self->sent_seq, gs_mono_us() + (int64_t) S_DRAIN_MS * 1000);
    natsSubscription_Destroy(self->acks);
    self->acks = NULL;
    jsCtx_Destroy(self->js);
    self->js = NULL;
    natsConnection_Destroy(self->nc);
    self->nc = NULL;
    atomic_store(&self->m->bridge_connected, 0);
    gs_log(GS_LOG_INFO, "bridge_disconnected", "why=\"%s\" last_seq=%llu", why,
           (unsigned long long) atomic_load(&self->m->bridge_acked_seq));
}

/* ---- the stream ------------------------------------------------------------- */

enum { S_RESUMED = 0, S_RETRY = -1, S_STOPPED = 1 };

/* Stop for good: log why, count it. */
static int
s_stopped(gs_bridge_t *self, const char *reason, const char *detail)
{
    snprintf(self->halt, sizeof self->halt, "%s", detail);
    atomic_store(&self->m->bridge_stopped, 1);
    atomic_fetch_add(&self->m->bridge_errors, 1);
    gs_log(GS_LOG_ERROR, "bridge_stopped", "reason=%s stream=%s %s", reason, self->stream,
           detail);
    return S_STOPPED;
}

/* The stream's info; the stream is created when it does not exist. */
static int
s_stream_info(gs_bridge_t *self, jsStreamInfo **si)
{
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(si, self->js, self->stream, NULL, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
        jsStreamConfig sc;
        jsStreamConfig_Init(&sc);
        const char *subjects[1] = { self->filter };
        sc.Name = self->stream;
        sc.Subjects = subjects;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        sc.Retention = js_LimitsPolicy;
        sc.Discard = js_DiscardOld;
        sc.Replicas = (int64_t) self->cfg->jetstream_replicas;
        /* the chain of expected sequences, not the duplicate window, keeps
         * copies out; the server holds every id of the window in memory
         * (two minutes by default: over a million ids at 10k events/s) */
        sc.Duplicates = (int64_t) S_DUP_WINDOW_S * 1000000000;
        jerr = 0;
        s = js_AddStream(si, self->js, &sc, NULL, &jerr);
        if (s == NATS_OK)
            gs_log(GS_LOG_INFO, "bridge_stream_created", "stream=%s subjects=\"%s\" "
                   "replicas=%lld", self->stream, self->filter,
                   (long long) self->cfg->jetstream_replicas);
    }
    if (s != NATS_OK) {
        atomic_fetch_add(&self->m->bridge_errors, 1);
        gs_log(GS_LOG_WARN, "bridge_stream_failed", "stream=%s error=\"%s\" code=%d",
               self->stream, s_nats_error(s), (int) jerr);
        return -1;
    }
    return 0;
}

/* Read the stream's last message and decide where to resume: after the seq
 * it holds (S_RESUMED), nowhere for now (S_RETRY: an error, logged), or
 * nowhere until an operator acts (S_STOPPED: another lineage, a stream
 * with other subjects; logged). With jetstream-rebaseline, a stream of
 * another lineage is purged and the log republished from seq 1. */
static int
s_resume(gs_bridge_t *self)
{
    atomic_store(&self->failed, 0);
    jsStreamInfo *si = NULL;
    if (s_stream_info(self, &si))
        return S_RETRY;
    char detail[400];
    const jsStreamConfig *sc = si->Config;
    if (!sc || sc->SubjectsLen != 1 || strcmp(sc->Subjects[0], self->filter) != 0) {
        snprintf(detail, sizeof detail, "subjects=\"%s%s\" want=\"%s\" msg=\"the stream "
                 "exists with other subjects; fix or delete it\"",
                 sc && sc->SubjectsLen > 0 ? sc->Subjects[0] : "",
                 sc && sc->SubjectsLen > 1 ? ",..." : "", self->filter);
        jsStreamInfo_Destroy(si);
        return s_stopped(self, "stream_subjects", detail);
    }
    if (sc->Replicas != self->cfg->jetstream_replicas)
        gs_log(GS_LOG_WARN, "bridge_stream_replicas", "stream=%s replicas=%lld "
               "jetstream_replicas=%lld msg=\"the stream exists with another number of "
               "replicas; the bridge does not change it (nats stream edit)\"", self->stream,
               (long long) sc->Replicas, (long long) self->cfg->jetstream_replicas);
    uint64_t msgs = si->State.Msgs, first = si->State.FirstSeq, last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    uint64_t head = 0;
    gs_store_head(self->b->store, &head);

    uint64_t held = 0;  /* the last event seq the stream holds, 0 = none */
    const char *why = NULL;
    uint64_t their_epoch = 0;
    char origin[32] = "";
    if (msgs > 0) {
        natsMsg *msg = NULL;
        jsErrCode jerr = 0;
        natsStatus s = js_GetMsg(&msg, self->js, self->stream, last, NULL, &jerr);
        if (s != NATS_OK) {
            atomic_fetch_add(&self->m->bridge_errors, 1);
            gs_log(GS_LOG_WARN, "bridge_stream_failed", "stream=%s what=\"last message\" "
                   "stream_seq=%llu error=\"%s\" code=%d", self->stream,
                   (unsigned long long) last, s_nats_error(s), (int) jerr);
            return S_RETRY;
        }
        int ok_e, ok_s;
        their_epoch = s_header_u64(msg, "Gridsync-Epoch", 1, &ok_e);
        held = s_header_u64(msg, "Gridsync-Seq", 0, &ok_s);
        const char *o = NULL;
        if (natsMsgHeader_Get(msg, "Gridsync-Origin", &o) == NATS_OK && o)
            snprintf(origin, sizeof origin, "%s", o);
        natsMsg_Destroy(msg);
        if (!ok_e || !ok_s || strcmp(origin, self->cfg->jetstream_area) != 0)
            why = "the stream's last message is not one of this district's events";
        else if (their_epoch != self->epoch)
            why = "the stream holds another lineage of this district's store (restored "
                  "from a backup, or replaced)";
        else if (held > head)
            why = "the stream holds events beyond the store's head";
    }
    if (why) {
        snprintf(detail, sizeof detail, "stream_origin=\"%s\" stream_epoch=%016" PRIx64
                 " stream_seq=%llu store_epoch=%s store_head=%llu stream_msgs=%llu msg=\"%s; "
                 "nothing more is published until an operator re-baselines (gridsyncd "
                 "--jetstream-rebaseline, docs/federation.md)\"", origin, their_epoch,
                 (unsigned long long) held, self->epoch_hex, (unsigned long long) head,
                 (unsigned long long) msgs, why);
        if (!self->cfg->jetstream_rebaseline)
            return s_stopped(self, "lineage", detail);
        jsErrCode jerr = 0;
        natsStatus s = js_PurgeStream(self->js, self->stream, NULL, &jerr);
        if (s != NATS_OK) {
            atomic_fetch_add(&self->m->bridge_errors, 1);
            gs_log(GS_LOG_WARN, "bridge_stream_failed", "stream=%s what=purge error=\"%s\" "
                   "code=%d", self->stream, s_nats_error(s), (int) jerr);
            return S_RETRY;
        }
        gs_log(GS_LOG_WARN, "bridge_rebaseline", "stream=%s purged_msgs=%llu "
               "purged_stream_seqs=%llu..%llu stream_origin=\"%s\" stream_epoch=%016" PRIx64
               " stream_seq=%llu store_epoch=%s store_head=%llu msg=\"purged; republishing "
               "the store's log from seq 1\"", self->stream, (unsigned long long) msgs,
               (unsigned long long) first, (unsigned long long) last, origin, their_epoch,
               (unsigned long long) held, self->epoch_hex, (unsigned long long) head);
        held = 0;
    } else if (self->cfg->jetstream_rebaseline) {
        gs_log(GS_LOG_INFO, "bridge_rebaseline", "stream=%s purged_msgs=0 msg=\"the stream "
               "already holds this store's lineage: nothing to purge\"", self->stream);
    }
    self->sent_seq = held;
    self->stream_last = last;
    atomic_store(&self->m->bridge_acked_seq, held);
    gs_log(GS_LOG_INFO, "bridge_resumed", "stream=%s stream_seq=%llu last_seq=%llu "
           "from_seq=%llu head_seq=%llu epoch=%s", self->stream, (unsigned long long) last,
           (unsigned long long) held, (unsigned long long) held + 1, (unsigned long long) head,
           self->epoch_hex);
    return S_RESUMED;
}

/* ---- publishing ------------------------------------------------------------- */

/* gs_event_fn: one event of the log copied into the page, with its subject,
 * or the reason it cannot be published (self->halt; the walk stops there). */
static int
s_collect(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    gs_bridge_t *self = arg;
    const char *area = self->cfg->jetstream_area;
    uint64_t want = self->sent_seq + self->n_page + 1;
    if (seq != want) {
        snprintf(self->halt, sizeof self->halt, "seq=%llu expected=%llu msg=\"the change "
                 "log has a hole; run gridctl verify\"", (unsigned long long) seq,
                 (unsigned long long) want);
        return 1;
    }
    if (!gs_grid_prefix_covers(area, grid)) {
        snprintf(self->halt, sizeof self->halt, "seq=%llu grid=%.15s area=%s msg=\"an event "
                 "outside jetstream-area cannot be published; check jetstream-area\"",
                 (unsigned long long) seq, grid, area);
        return 1;
    }
    uint64_t kind = 0;
    char g[GS_GRID_LEN + 1];
    memcpy(g, grid, GS_GRID_LEN);
    g[GS_GRID_LEN] = 0;
    size_t i = self->n_page;
    if (gs_wire_find_varint(data, len, 3, &kind) != 0 || kind > INT32_MAX ||
        gs_bridge_subject(g, (int) kind, self->page_subject[i], S_SUBJECT_MAX) != 0) {
        snprintf(self->halt, sizeof self->halt, "seq=%llu grid=%s kind=%llu msg=\"an event "
                 "whose kind has no subject cannot be published\"", (unsigned long long) seq,
                 g, (unsigned long long) kind);
        return 1;
    }
    if (len > INT32_MAX)
        return 2;
    if (self->buf_len + len > self->buf_cap) {
        size_t cap = self->buf_cap ? self->buf_cap : 65536;
        while (cap < self->buf_len + len)
            cap *= 2;
        uint8_t *nb = realloc(self->buf, cap);
        if (!nb)
            return 2;   /* out of memory: the page so far goes, the rest next time */
        self->buf = nb;
        self->buf_cap = cap;
    }
    memcpy(self->buf + self->buf_len, data, len);
    self->page_off[i] = self->buf_len;
    self->page_len[i] = (uint32_t) len;
    self->buf_len += len;
    self->page_seq[i] = seq;
    self->n_page++;
    return 0;
}

/* Decimal digits of x into out (at least 21 bytes), NUL-terminated;
 * returns their number. */
static size_t
s_u64_text(uint64_t x, char *out)
{
    char t[21];
    size_t n = 0;
    do {
        t[n++] = (char) ('0' + x % 10);
        x /= 10;
    } while (x);
    for (size_t i = 0; i < n; i++)
        out[i] = t[n - 1 - i];
    out[n] = 0;
    return n;
}

/* Publish event i of the page: its data on its subject, the headers of
 * docs/federation.md and the expected last sequence, the reply subject
 * naming its seq. Returns a nats.c status (NATS_OK: handed to the
 * connection). */
static natsStatus
s_publish_one(gs_bridge_t *self, size_t i)
{
    uint64_t seq = self->page_seq[i];
    char sq[24], id[96], last[24];
    size_t n = s_u64_text(seq, sq);
    /* "<inbox>.<seq>", "<area>:<epoch>:<seq>" (gs_bridge_msg_id's form,
     * its fixed part made once at start) */
    memcpy(self->reply + self->reply_len, sq, n + 1);
    size_t idp = strlen(self->id_prefix);
    memcpy(id, self->id_prefix, idp);
    memcpy(id + idp, sq, n + 1);
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, self->page_subject[i], self->reply,
                                  (const char *) self->buf + self->page_off[i],
                                  (int) self->page_len[i]);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "Gridsync-Origin", self->cfg->jetstream_area);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "Gridsync-Epoch", self->epoch_hex);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "Gridsync-Seq", sq);
    /* the chain: the stream must still end where the previous event went,
     * or it refuses this one (0 = an empty new stream: none) */
    if (s == NATS_OK && self->stream_last > 0) {
        s_u64_text(self->stream_last, last);
        s = natsMsgHeader_Set(m, "Nats-Expected-Last-Sequence", last);
    }
    if (s == NATS_OK) {
        atomic_store(&self->noted[seq % S_MAX_PENDING], self->page_noted[i]);
        if (atomic_load(&self->m->bridge_acked_seq) >= self->sent_seq)
            atomic_store(&self->ack_us, gs_mono_us()); /* the ack timer starts now */
        s = natsConnection_PublishMsg(self->nc, m);
    }
    natsMsg_Destroy(m);
    return s;
}

/* An ack overdue: events in flight and none acknowledged for S_ACK_WAIT_MS
 * (the server or the link lost them). Marks the connection failed (logged
 * once) and returns 1, or returns 0. */
static int
s_ack_overdue(gs_bridge_t *self)
{
    uint64_t acked = atomic_load(&self->m->bridge_acked_seq);
    if (acked >= self->sent_seq ||
        gs_mono_us() - atomic_load(&self->ack_us) < (int64_t) S_ACK_WAIT_MS * 1000)
        return 0;
    atomic_fetch_add(&self->m->bridge_errors, 1);
    if (atomic_exchange(&self->failed, 1) == 0)
        gs_log(GS_LOG_WARN, "bridge_publish_failed", "seq=%llu error=\"no ack within %d ms\" "
               "msg=\"reconnecting and resuming from the stream's last message\"",
               (unsigned long long) acked + 1, S_ACK_WAIT_MS);
    return 1;
}

/* Read the next page of the log after sent_seq and publish it, at most
 * S_MAX_PENDING unacknowledged. Returns the number of events handed to
 * nats.c, or -1 when a publish was refused or its ack did not come
 * (self->failed is set) or an event cannot be published (self->halt). */
static int
s_publish_page(gs_bridge_t *self)
{
    const char *all[1] = { "" };
    uint64_t next = 0, head = 0;
    self->n_page = 0;
    self->buf_len = 0;
    int rc = gs_store_events(self->b->store, all, 1, self->sent_seq, S_PAGE, s_collect, self,
                             &next, &head);
    if (rc != 0 && rc != 1 && rc != 2) {
        atomic_fetch_add(&self->m->bridge_errors, 1);
        gs_log(GS_LOG_WARN, "bridge_store_failed", "error=\"%s\"", gs_store_strerror(rc));
        self->n_page = 0;
        return -1;
    }
    /* the writer sent the notes of the events just read when it committed
     * them, before or while they were read: take them now, so that none of
     * those events goes without its time */
    s_notes_take(self);
    for (size_t i = 0; i < self->n_page; i++)
        self->page_noted[i] = s_noted(self, self->page_seq[i]);
    size_t done = 0;
    for (; done < self->n_page && !atomic_load(&self->failed); done++) {
        /* the window: wait for acks to free a quarter of it, so that the
         * bridge wakes once per S_MAX_PENDING / 4 acks, not per ack */
        uint64_t acked = atomic_load(&self->m->bridge_acked_seq);
        if (acked < self->sent_seq && self->sent_seq - acked >= S_MAX_PENDING &&
            s_acks_wait(self, self->sent_seq - S_MAX_PENDING * 3 / 4,
                        atomic_load(&self->ack_us) + (int64_t) S_ACK_WAIT_MS * 1000) != 0)
            break;
        natsStatus s = s_publish_one(self, done);
        if (s != NATS_OK) {
            atomic_fetch_add(&self->m->bridge_errors, 1);
            if (s == NATS_NO_MEMORY)
                break;  /* the rest of the page next time */
            if (atomic_exchange(&self->failed, 1) == 0)
                gs_log(GS_LOG_WARN, "bridge_publish_failed", "seq=%llu error=\"%s\" "
                       "msg=\"reconnecting and resuming from the stream's last message\"",
                       (unsigned long long) self->page_seq[done], s_nats_error(s));
            break;
        }
        self->sent_seq = self->page_seq[done];
        self->stream_last++;
    }
    self->n_page = 0;
    if (s_ack_overdue(self))
        return -1;
    if (atomic_load(&self->failed))
        return -1;
    if (self->halt[0])
        return -1;
    return (int) done;
}

/* ---- the thread ------------------------------------------------------------- */

/* Wait out *backoff (only a stop ends it early: the writer's notes are
 * taken and do not hasten the next try, or an outage under load would be
 * retried at the commit rate), then double it, up to S_BACKOFF_MAX_MS. */
static void
s_back_off(gs_bridge_t *self, long *backoff)
{
    int64_t until = gs_mono_us() + (int64_t) *backoff * 1000;
    int64_t left;
    while (!atomic_load(&self->stop) && (left = until - gs_mono_us()) > 0)
        s_wait(self, (long) ((left + 999) / 1000));
    *backoff = *backoff * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : *backoff * 2;
}

void *
gs_bridge_main(void *arg)
{
    gs_bridge_t *self = arg;
    gs_broker_t *b = self->b;
    self->wake = zmq_socket(b->ctx, ZMQ_PULL);
    /* room for the notes of a page's publishing time (16 bytes each); the
     * writer's side holds a few more */
    int hwm = S_NOTES;
    zmq_setsockopt(self->wake, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_connect(self->wake, GS_EP_BRIDGE);
    long backoff = S_BACKOFF_MIN_MS;
    gs_log(GS_LOG_INFO, "bridge_started", "url=\"%s\" stream=%s subjects=\"%s\" epoch=%s",
           self->cfg->jetstream_url, self->stream, self->filter, self->epoch_hex);
    while (!atomic_load(&self->stop)) {
        if (!self->nc) {
            if (s_connect(self) != 0) {
                s_back_off(self, &backoff);
                continue;
            }
            int rc = s_resume(self);
            if (rc == S_STOPPED)
                break;
            if (rc == S_RETRY) {
                s_disconnect(self, 0, "stream error");
                s_back_off(self, &backoff);
                continue;
            }
            backoff = S_BACKOFF_MIN_MS;
        }
        if (atomic_load(&self->failed) ||
            natsConnection_Status(self->nc) != NATS_CONN_STATUS_CONNECTED) {
            s_disconnect(self, 0, atomic_load(&self->failed) ? "publish failed"
                                                            : "connection lost");
            atomic_fetch_add(&self->m->bridge_reconnects, 1);
            s_back_off(self, &backoff);
            continue;
        }
        if (s_ack_overdue(self))
            continue;
        int n = s_publish_page(self);
        if (n < 0 && self->halt[0]) {
            /* what was read before the bad event still goes out */
            s_disconnect(self, 1, "stopped");
            atomic_store(&self->m->bridge_stopped, 1);
            atomic_fetch_add(&self->m->bridge_errors, 1);
            gs_log(GS_LOG_ERROR, "bridge_stopped", "reason=event stream=%s %s", self->stream,
                   self->halt);
            break;
        }
        /* a full page, or a note taken after the read of events beyond it
         * (its note is gone from the queue, so a wait would not end on
         * it): read on at once */
        if (n == S_PAGE || (n > 0 && s_note_beyond(self)))
            continue;
        s_wait(self, atomic_load(&self->m->bridge_acked_seq) < self->sent_seq ? S_BUSY_MS
                                                                               : S_IDLE_MS);
    }
    if (self->nc)
        s_disconnect(self, 1, atomic_load(&self->stop) ? "stopping" : "stopped");
    /* stopped for good: nothing more to do until gridsyncd stops */
    while (!atomic_load(&self->stop))
        s_wait(self, S_IDLE_MS);
    zmq_close(self->wake);
    self->wake = NULL;
    return NULL;
}

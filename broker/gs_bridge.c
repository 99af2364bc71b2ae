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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <nats/nats.h>
#include <sodium.h>

#include "gs_grid.h"
#include "gs_log.h"
#include "gs_wire.h"

#define S_PAGE 512              /* events read per read transaction */
#define S_MAX_PENDING 4096      /* publishes in flight, waiting for their ack */
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
    atomic_int stop;                /* gs_bridge_halt asked to stop */
    atomic_int failed;              /* an ack came back with an error (nats.c's thread) */
    atomic_int nats_used;           /* nats.c was opened: close it at destroy */
    /* the gs-bridge thread's own state */
    void *wake;                     /* PULL on GS_EP_BRIDGE */
    natsConnection *nc;             /* NULL while not connected */
    jsCtx *js;                      /* its JetStream context */
    int js_published;               /* an async publish was made with js */
    uint64_t sent_seq;              /* last event seq handed to nats.c (or found in the stream) */
    uint64_t stream_last;           /* the stream seq the next publish expects as last */
    natsMsg *page[S_PAGE];          /* the events of one read, as messages */
    uint64_t page_seq[S_PAGE];      /* and their seqs */
    size_t n_page;
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
    char token[64];
    const char *k = v->name + sizeof strip - 1;
    size_t n = 0;
    for (; k[n] && n < sizeof token - 1; n++)
        token[n] = (char) tolower((unsigned char) k[n]);
    token[n] = 0;
    char t[32];
    s_tokens(grid, GS_GRID_LEN, t, sizeof t);
    int w = snprintf(out, size, "gridsync.%s.%s", t, token);
    if (w < 0 || (size_t) w >= size) {
        out[0] = 0;
        return -1;
    }
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
    free(self);
    *self_p = NULL;
}

/* ---- the writer's note, the lifecycle's stop ---------------------------------- */

void
gs_bridge_notify(void *to_bridge, uint64_t head)
{
    if (to_bridge)
        zmq_send(to_bridge, &head, sizeof head, ZMQ_DONTWAIT); /* EAGAIN: dropped */
}

void
gs_bridge_halt(gs_bridge_t *self, void *to_bridge)
{
    atomic_store(&self->stop, 1);
    /* a full queue means notes the bridge will read, and then see stop */
    gs_bridge_notify(to_bridge, 0);
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
    uint64_t head;
    while (zmq_recv(self->wake, &head, sizeof head, ZMQ_DONTWAIT) >= 0)
        ;
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

/* Every async publish's outcome. An ack (first copy or a duplicate of one
 * the stream holds) moves the acked seq on; an error marks the connection
 * failed: the bridge thread then drops what is in flight, reconnects and
 * resumes from what the stream holds. */
static void
s_on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    gs_bridge_t *self = closure;
    int ok;
    uint64_t seq = s_header_u64(msg, "Gridsync-Seq", 0, &ok);
    if (pa && !pae) {
        if (!pa->Duplicate)
            atomic_fetch_add(&self->m->bridge_published, 1);
        uint64_t cur = atomic_load(&self->m->bridge_acked_seq);
        while (ok && seq > cur &&
               !atomic_compare_exchange_weak(&self->m->bridge_acked_seq, &cur, seq))
            ;
    } else {
        atomic_fetch_add(&self->m->bridge_errors, 1);
        /* the first error of a run is the one worth a line; those after it
         * are the publishes behind it, refused for the same reason */
        if (atomic_exchange(&self->failed, 1) == 0)
            gs_log(GS_LOG_WARN, "bridge_publish_failed", "seq=%llu error=\"%s\" code=%d "
                   "text=\"%s\" msg=\"reconnecting and resuming from the stream's last "
                   "message\"", (unsigned long long) seq,
                   natsStatus_GetText(pae ? pae->Err : NATS_ERR), pae ? (int) pae->ErrCode : 0,
                   pae && pae->ErrText ? pae->ErrText : "");
    }
    natsMsg_Destroy(msg);
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
        s = natsConnection_Connect(&self->nc, o);
    }
    if (s == NATS_OK) {
        what = "jetstream";
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = S_API_WAIT_MS;
        jo.PublishAsync.MaxPending = S_MAX_PENDING;
        /* a full window waits for acks to free a place rather than fail at
         * once (nats.c's default is 200 ms), which would cost a reconnect */
        jo.PublishAsync.StallWait = S_DRAIN_MS;
        jo.PublishAsync.AckHandler = s_on_ack;
        jo.PublishAsync.AckHandlerClosure = self;
        s = natsConnection_JetStream(&self->js, self->nc, &jo);
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

/* Give up the connection: with drain, what is in flight gets up to
 * S_DRAIN_MS to be acknowledged; whatever is still unacknowledged then is
 * dropped (the next connection reads what the stream holds). */
static void
s_disconnect(gs_bridge_t *self, int drain, const char *why)
{
    if (!self->nc)
        return;
    if (drain && natsConnection_Status(self->nc) == NATS_CONN_STATUS_CONNECTED &&
        !atomic_load(&self->failed)) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = S_DRAIN_MS;
        js_PublishAsyncComplete(self->js, &po);
    }
    /* nats.c 3.4.1 crashes here on a context that never published
     * asynchronously (its table of pending publishes is made by the first) */
    natsMsgList pending = { 0 };
    if (self->js_published && js_PublishAsyncGetPendingList(&pending, self->js) == NATS_OK)
        natsMsgList_Destroy(&pending);
    self->js_published = 0;
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

static void
s_page_clear(gs_bridge_t *self)
{
    for (size_t i = 0; i < self->n_page; i++)
        natsMsg_Destroy(self->page[i]);
    self->n_page = 0;
}

/* gs_event_fn: one event of the log into a message of the page, or the
 * reason it cannot be published (self->halt; the walk stops there). */
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
    char subject[96];
    char g[GS_GRID_LEN + 1];
    snprintf(g, sizeof g, "%.15s", grid);
    if (gs_wire_find_varint(data, len, 3, &kind) != 0 || kind > INT32_MAX ||
        gs_bridge_subject(g, (int) kind, subject, sizeof subject) != 0) {
        snprintf(self->halt, sizeof self->halt, "seq=%llu grid=%s kind=%llu msg=\"an event "
                 "whose kind has no subject cannot be published\"", (unsigned long long) seq,
                 g, (unsigned long long) kind);
        return 1;
    }
    char id[80], sq[24];
    gs_bridge_msg_id(area, self->epoch, seq, id, sizeof id);
    snprintf(sq, sizeof sq, "%" PRIu64, seq);
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, subject, NULL, (const char *) data, (int) len);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "Gridsync-Origin", area);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "Gridsync-Epoch", self->epoch_hex);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "Gridsync-Seq", sq);
    if (s != NATS_OK) {
        natsMsg_Destroy(m);
        return 2;   /* out of memory: the page so far goes, the rest next time */
    }
    self->page[self->n_page] = m;
    self->page_seq[self->n_page] = seq;
    self->n_page++;
    return 0;
}

/* Read the next page of the log after sent_seq and publish it. Returns the
 * number of events handed to nats.c, or -1 when a publish was refused
 * (self->failed is set) or an event cannot be published (self->halt). */
static int
s_publish_page(gs_bridge_t *self)
{
    const char *all[1] = { "" };
    uint64_t next = 0, head = 0;
    int rc = gs_store_events(self->b->store, all, 1, self->sent_seq, S_PAGE, s_collect, self,
                             &next, &head);
    if (rc != 0 && rc != 1 && rc != 2) {
        atomic_fetch_add(&self->m->bridge_errors, 1);
        gs_log(GS_LOG_WARN, "bridge_store_failed", "error=\"%s\"", gs_store_strerror(rc));
        s_page_clear(self);
        return -1;
    }
    size_t done = 0;
    for (; done < self->n_page; done++) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = S_ACK_WAIT_MS;
        /* the chain: the stream must still end where the previous event
         * went, or it refuses this one (0 = an empty new stream: none) */
        po.ExpectLastSeq = self->stream_last;
        self->js_published = 1;
        natsStatus s = js_PublishMsgAsync(self->js, &self->page[done], &po);
        if (s != NATS_OK) {
            natsMsg_Destroy(self->page[done]);
            self->page[done] = NULL;
            atomic_fetch_add(&self->m->bridge_errors, 1);
            if (atomic_exchange(&self->failed, 1) == 0)
                gs_log(GS_LOG_WARN, "bridge_publish_failed", "seq=%llu error=\"%s\" "
                       "msg=\"reconnecting and resuming from the stream's last message\"",
                       (unsigned long long) self->page_seq[done], s_nats_error(s));
            done++;
            break;
        }
        self->sent_seq = self->page_seq[done];
        self->stream_last++;
    }
    size_t published = done;
    for (; done < self->n_page; done++)
        natsMsg_Destroy(self->page[done]);
    self->n_page = 0;
    if (atomic_load(&self->failed))
        return -1;
    if (self->halt[0])
        return -1;
    return (int) published;
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
    int hwm = 4;
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
        if (n == S_PAGE)
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

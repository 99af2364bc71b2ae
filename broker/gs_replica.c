/*
 * gs_replica: the city replica's thread. See gs_replica.h; the design is
 * docs/federation.md ("The city replica").
 */
#include "gs_replica.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gs_grid.h"
#include "gs_log.h"
#include "gs_natslink.h"
#include "gs_replica_pull.h"
#include "gs_store_replica.h"
#include "gs_thread.h"

#define S_IDLE_FETCH_MS 100         /* a round of fetches waits this long in all for */
                                    /* quiet origins (shared among them)             */
#define S_RETRY_MS 500              /* pause after NATS errors (a drain ends it) */
#define S_ACK_WAIT_NS 30000000000LL /* unacked messages come again after 30 s */
#define S_JS_WAIT_MS 2000           /* a JetStream API request waits at most this (so a */
                                    /* drain during an outage is not held up long)      */
#define S_BATCH_MAX 8192            /* messages per fetch and commit, at most */

/* Origin states as the metrics show them. */
enum { S_WAITING = 0, S_RUNNING = 1, S_STOPPED = 2 };

/* One origin being followed. */
typedef struct s_org {
    gs_replica_origin_t cfg;        /* what the config asks for */
    natsSubscription *sub;          /* its pull subscription; NULL: not yet */
    int waiting_logged;             /* the missing stream was logged */
    uint64_t next_dseq;             /* the consumer's next delivery sequence (from 1
                                     * for each subscription, whose consumer is made
                                     * anew) */
    natsStatus last_err;            /* last fetch error logged (once per kind) */
    int had_msgs;                   /* its last fetch brought messages */
    uint64_t known_pending;         /* messages its last fetch left pending in the
                                     * consumer (0: none or not known) */
    gs_rpull_t pull;                /* its standing pull request (gs_replica_pull) */
    atomic_int state;               /* S_* */
    atomic_uint_fast64_t applied;   /* events applied */
    atomic_uint_fast64_t skipped;   /* redeliveries skipped */
    atomic_uint_fast64_t refused[GS_REPL_REASONS]; /* refusals by reason */
    atomic_uint_fast64_t lag_events; /* messages still pending in its consumer */
    atomic_int_fast64_t last_committed_at; /* origin commit time of the last applied */
    atomic_uint_fast64_t last_seq;  /* last origin seq applied */
    atomic_uint_fast64_t resubscribed; /* consumers made anew after lost deliveries */
    size_t repaired;                /* cells of cfg.repair done (replica-repair) */
} s_org_t;

struct gs_replica {
    gs_broker_t *b;                 /* the broker it writes for */
    size_t n;                       /* origins */
    s_org_t org[GS_REPLICA_MAX];    /* and their state */
    natsConnection *nc;             /* the NATS connection; NULL: not connected */
    jsCtx *js;                      /* its JetStream context */
    int down_logged;                /* a failed connect was logged */
    int batch;                      /* messages per fetch */
    gs_repl_ahead_t *ahead;         /* the checker's state; NULL: checks made inline */
    pthread_t checker;              /* its thread (gs-repl-check), when ahead */
};

/* Set while the replica closes its own connection, so that nats.c's
 * disconnect callback, which may run later on nats.c's thread, does not
 * report an outage. A file-level flag, not the replica's: the callback may
 * come after the replica is gone (one replica per process). */
static atomic_int s_closing;

/* ---- Planning ---------------------------------------------------------------------- */

static int
s_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char) s[i]))
            return 0;
    return 1;
}

/* An area: 2, 4, 6, 9 or 12 digits. */
static int
s_area_ok(const char *a)
{
    size_t n = strlen(a);
    return n >= 2 && n < GS_GRID_LEN && gs_level_of_len(n) > 0 && s_digits(a, n);
}

/* gridsync.<prefix split 2.2.2.3.3.3>.> */
static void
s_subject(const char *prefix, char *out, size_t size)
{
    static const int cut[] = { 2, 4, 6, 9, 12, 15 };
    size_t n = strlen(prefix), at = 0;
    int w = snprintf(out, size, "gridsync");
    for (int i = 0; i < 6 && at < n; i++) {
        w += snprintf(out + w, size - (size_t) w, ".%.*s", cut[i] - (int) at, prefix + at);
        at = (size_t) cut[i];
    }
    snprintf(out + w, size - (size_t) w, ".>");
}

int
gs_replica_plan(const gs_config_t *cfg, gs_replica_origin_t *out, size_t max, char *err,
                size_t err_size)
{
    size_t n = 0;
    const char *p = cfg->replica_of;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t) (e - p) : strlen(p);
        char a[GS_GRID_LEN + 1];
        while (l && isspace((unsigned char) *p)) {
            p++;
            l--;
        }
        while (l && isspace((unsigned char) p[l - 1]))
            l--;
        if (l == 0 || l > GS_GRID_LEN) {
            snprintf(err, err_size, "replica-of: '%.*s' is not an area (2, 4, 6, 9 or 12 "
                     "digits)", (int) (l > 20 ? 20 : l), p);
            return -1;
        }
        memcpy(a, p, l);
        a[l] = 0;
        if (!s_area_ok(a)) {
            snprintf(err, err_size, "replica-of: '%s' is not an area (2, 4, 6, 9 or 12 digits)",
                     a);
            return -1;
        }
        for (size_t i = 0; i < n; i++)
            if (gs_grid_prefix_covers(out[i].area, a) || gs_grid_prefix_covers(a, out[i].area)) {
                snprintf(err, err_size, "replica-of: origins %s and %s overlap; each district "
                         "is named once", out[i].area, a);
                return -1;
            }
        if (n == max) {
            snprintf(err, err_size, "replica-of: more than %zu origins", max);
            return -1;
        }
        gs_replica_origin_t *o = &out[n++];
        memset(o, 0, sizeof *o);
        memcpy(o->area, a, l + 1);
        p += l;
        while (*p && *p != ',')
            p++;
        if (*p == ',')
            p++;
    }
    if (n == 0) {
        snprintf(err, err_size, "replica-of: no origin areas given");
        return -1;
    }
    const char *ra = cfg->replica_area;
    if (ra[0] && (strlen(ra) > GS_GRID_LEN || gs_level_of_len(strlen(ra)) < 0 ||
                  !s_digits(ra, strlen(ra)))) {
        snprintf(err, err_size, "replica-area: '%s' is not a level prefix (2, 4, 6, 9, 12 or "
                 "15 digits)", ra);
        return -1;
    }
    const char *nm = cfg->replica_name;
    if (!nm[0]) {
        snprintf(err, err_size, "replica-name: empty");
        return -1;
    }
    for (const char *c = nm; *c; c++)
        if (!isalnum((unsigned char) *c) && *c != '-' && *c != '_') {
            snprintf(err, err_size, "replica-name: '%s' may hold only letters, digits, '-' "
                     "and '_' (a JetStream consumer name)", nm);
            return -1;
        }
    for (size_t i = 0; i < n; i++) {
        gs_replica_origin_t *o = &out[i];
        if (!ra[0] || gs_grid_prefix_covers(ra, o->area)) {
            snprintf(o->followed, sizeof o->followed, "%s", o->area);
        } else if (gs_grid_prefix_covers(o->area, ra)) {
            snprintf(o->followed, sizeof o->followed, "%s", ra);
        } else {
            snprintf(err, err_size, "replica-area %s neither covers nor lies under origin %s",
                     ra, o->area);
            return -1;
        }
        snprintf(o->stream, sizeof o->stream, "GRIDSYNC_%s", o->area);
        snprintf(o->durable, sizeof o->durable, "%s_%s", nm, o->area);
        s_subject(o->followed, o->subject, sizeof o->subject);
    }
    if (cfg->replica_rebaseline[0]) {
        size_t i = 0;
        while (i < n && strcmp(out[i].area, cfg->replica_rebaseline) != 0)
            i++;
        if (i == n) {
            snprintf(err, err_size, "replica-rebaseline: %s is not one of replica-of (%s)",
                     cfg->replica_rebaseline, cfg->replica_of);
            return -1;
        }
    }
    size_t n_cells = 0;
    for (const char *c = cfg->replica_repair; *c;) {
        size_t l = strcspn(c, ",");
        char cell[GS_GRID_LEN + 1];
        if (l != GS_GRID_LEN || !s_digits(c, l)) {
            snprintf(err, err_size, "replica-repair: '%.*s' is not a cell (a 15-digit grid "
                     "code)", (int) (l > 20 ? 20 : l), c);
            return -1;
        }
        memcpy(cell, c, l);
        cell[l] = 0;
        size_t i = 0;
        while (i < n && !gs_grid_prefix_covers(out[i].followed, cell))
            i++;
        if (i == n) {
            snprintf(err, err_size, "replica-repair: cell %s lies under no origin this replica "
                     "follows (replica-of %s)", cell, cfg->replica_of);
            return -1;
        }
        for (size_t j = 0; j < out[i].n_repair; j++)
            if (strcmp(out[i].repair[j], cell) == 0) {
                snprintf(err, err_size, "replica-repair: cell %s is named twice", cell);
                return -1;
            }
        if (++n_cells > GS_REPAIR_MAX) {
            snprintf(err, err_size, "replica-repair: more than %d cells; repair the rest "
                     "with another restart", GS_REPAIR_MAX);
            return -1;
        }
        memcpy(out[i].repair[out[i].n_repair++], cell, sizeof cell);
        c += l;
        if (*c == ',' && !*++c) {
            snprintf(err, err_size, "replica-repair: '' is not a cell (a 15-digit grid code)");
            return -1;
        }
    }
    if (!cfg->jetstream_url[0]) {
        snprintf(err, err_size, "replica-of needs jetstream-url (the NATS server the "
                 "districts publish to)");
        return -1;
    }
    if (cfg->jetstream_area[0] || cfg->jetstream_rebaseline) {
        snprintf(err, err_size, "%s is a district's bridge setting; a replica (replica-of) "
                 "publishes nothing to NATS", cfg->jetstream_area[0] ? "jetstream-area"
                                                                    : "jetstream-rebaseline");
        return -1;
    }
    if (gs_natslink_check(cfg, err, err_size))
        return -1;
    return (int) n;
}

/* ---- Construction ------------------------------------------------------------------ */

gs_replica_t *
gs_replica_new(gs_broker_t *b)
{
    gs_replica_t *self = calloc(1, sizeof *self);
    if (!self) {
        gs_log(GS_LOG_ERROR, "out_of_memory", "what=\"replica\"");
        return NULL;
    }
    self->b = b;
    gs_replica_origin_t plan[GS_REPLICA_MAX];
    char err[300];
    int n = gs_replica_plan(&b->cfg, plan, GS_REPLICA_MAX, err, sizeof err);
    if (n < 0) {
        gs_log(GS_LOG_ERROR, "config_error", "msg=\"%s\"", err);
        free(self);
        return NULL;
    }
    self->n = (size_t) n;
    const gs_config_t *c = &b->cfg;
    if (!gs_natslink_tls(c) && (c->jetstream_user[0] || c->jetstream_nkey_seed_file[0] ||
                                c->jetstream_creds_file[0]))
        gs_log(GS_LOG_WARN, "replica_plaintext", "msg=\"the replica authenticates to NATS "
               "without TLS: its credentials and the districts' records cross the network in "
               "the clear; set jetstream-tls-ca or a tls:// URL\"");
    /* A fetch asks only for what is pending (gs_rpull_fetch), so a full batch
     * comes only while the replica is behind: then each commit (its fsync,
     * the tree pages it rewrites) is shared by as many events as the
     * writer's own group commit may hold, bounded so that a batch's
     * messages and dirty pages stay a few tens of MB. */
    int64_t bm = b->cfg.batch_max_records;
    self->batch = bm > S_BATCH_MAX ? S_BATCH_MAX : (int) bm;
    for (size_t i = 0; i < self->n; i++) {
        s_org_t *o = &self->org[i];
        o->cfg = plan[i];
        if (b->cfg.replica_rebaseline[0] && strcmp(b->cfg.replica_rebaseline, o->cfg.area) == 0) {
            uint64_t removed = 0;
            gs_apply_out_t out;
            int rc = gs_store_origin_rebaseline(b->store, o->cfg.area, gs_now_ms(), &removed,
                                                &out);
            if (rc) {
                gs_log(GS_LOG_ERROR, "replica_rebaseline_failed", "origin=%s error=\"%s\" "
                       "detail=\"%s\"", o->cfg.area, gs_store_strerror(rc),
                       gs_store_errdetail());
                free(self);
                return NULL;
            }
            /* the events reach followers by sync; no one follows the feed yet */
            atomic_store(&b->head_seq, out.head_seq);
            gs_apply_out_clear(&out);
            gs_log(GS_LOG_WARN, "replica_rebaselined", "origin=%s removed=%" PRIu64
                   " msg=\"the origin's records were removed; its stream is read again from "
                   "the start under any lineage\"", o->cfg.area, removed);
        }
        gs_origin_t st;
        int rc = gs_store_origin_get(b->store, o->cfg.area, &st);
        if (rc && rc != GS_ENOTFOUND) {
            gs_log(GS_LOG_ERROR, "store_failed", "what=\"origins\" error=\"%s\" detail=\"%s\"",
                   gs_store_strerror(rc), gs_store_errdetail());
            free(self);
            return NULL;
        }
        atomic_store(&o->last_seq, st.last_seq);
        atomic_store(&o->applied, st.applied);
        atomic_store(&o->last_committed_at, st.last_committed_at);
        if (st.state == GS_ORIGIN_STOPPED) {
            atomic_store(&o->state, S_STOPPED);
            gs_log(GS_LOG_ERROR, "replica_origin_stopped", "origin=%s reason=%s seq=%" PRIu64
                   " msg=\"%s\"", o->cfg.area, gs_repl_reason_name(st.reason), st.stop_seq,
                   st.message);
        }
    }
    return self;
}

void
gs_replica_destroy(gs_replica_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

void
gs_replica_describe(const gs_replica_t *self, char *out, size_t size)
{
    size_t w = 0;
    out[0] = 0;
    for (size_t i = 0; i < self->n && w < size; i++)
        w += (size_t) snprintf(out + w, size - w, "%s%s(%s)", i ? "," : "",
                               self->org[i].cfg.area, self->org[i].cfg.followed);
}

/* ---- NATS -------------------------------------------------------------------------- */

/* Drop o's subscription: the next round subscribes again from where the
 * store stands. Destroy only: an unsubscribe would delete the consumer
 * while messages may still be in flight to it. */
static void
s_unsubscribe(s_org_t *o)
{
    natsSubscription_Destroy(o->sub);
    o->sub = NULL;
    o->known_pending = 0;   /* what it said was pending is no longer known */
    o->pull.ahead_until = 0; /* its requests went with it */
}

static void
s_disconnect(gs_replica_t *self)
{
    for (size_t i = 0; i < self->n; i++) {
        s_org_t *o = &self->org[i];
        s_unsubscribe(o);
        if (atomic_load(&o->state) == S_RUNNING)
            atomic_store(&o->state, S_WAITING);
    }
    jsCtx_Destroy(self->js);
    self->js = NULL;
    if (self->nc)
        atomic_store(&s_closing, 1);
    natsConnection_Destroy(self->nc);
    self->nc = NULL;
}

/* nats.c's connection events, on its own threads: logged only. */
static void
s_on_disconnected(natsConnection *nc, void *arg)
{
    (void) nc;
    (void) arg;
    if (atomic_load(&s_closing))
        return;
    gs_log(GS_LOG_WARN, "replica_nats_disconnected", "msg=\"lost the NATS connection; "
           "reconnecting\"");
}

static void
s_on_reconnected(natsConnection *nc, void *arg)
{
    (void) nc;
    (void) arg;
    gs_log(GS_LOG_INFO, "replica_nats_reconnected", "msg=\"NATS connection back\"");
}

static int
s_connect(gs_replica_t *self)
{
    const gs_config_t *cfg = &self->b->cfg;
    const char *what;
    natsStatus s;
    natsOptions *o = gs_natslink_options(cfg, "gridsyncd-replica", &what, &s);
    if (!o) {
        if (!self->down_logged)
            gs_log(GS_LOG_ERROR, "replica_nats_config", "what=%s error=\"%s\" msg=\"the NATS "
                   "link cannot be set up as configured\"", what, natsStatus_GetText(s));
        self->down_logged = 1;
        return -1;
    }
    s = natsOptions_SetDisconnectedCB(o, s_on_disconnected, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(o, s_on_reconnected, NULL);
    /* the replica sends only pull requests and acks, each waited on by the
     * next step: written at once, not after nats.c's flusher's 1 ms */
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(o, true);
    if (s == NATS_OK)
        s = gs_natslink_connect(&self->nc, o, gs_natslink_signs(cfg));
    natsOptions_Destroy(o);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = S_JS_WAIT_MS;
    if (s == NATS_OK)
        s = natsConnection_JetStream(&self->js, self->nc, &jo);
    if (s != NATS_OK) {
        if (!self->down_logged)
            gs_log(GS_LOG_WARN, "replica_nats_down", "url=\"%s\" error=\"%s\" msg=\"NATS is "
                   "not reachable; trying again\"", cfg->jetstream_url, natsStatus_GetText(s));
        self->down_logged = 1;
        s_disconnect(self);
        return -1;
    }
    self->down_logged = 0;
    atomic_store(&s_closing, 0);
    gs_log(GS_LOG_INFO, "replica_nats_connected", "url=\"%s\"", cfg->jetstream_url);
    return 0;
}

/* The durable consumer of o, made anew to start right after the last
 * message the store applied or skipped (the origins table, not the
 * consumer's ack floor, says where to resume: messages a killed replica
 * had fetched but not applied would otherwise come back only after the
 * ack wait, behind later ones), and a pull subscription bound to it. A
 * missing stream is waited for. 0 when subscribed. */
static int
s_subscribe(gs_replica_t *self, s_org_t *o)
{
    jsErrCode jerr = 0;
    jsStreamInfo *si = NULL;
    natsStatus s = js_GetStreamInfo(&si, self->js, o->cfg.stream, NULL, &jerr);
    uint64_t stream_last = s == NATS_OK && si ? si->State.LastSeq : 0;
    jsStreamInfo_Destroy(si);
    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
        if (!o->waiting_logged)
            gs_log(GS_LOG_INFO, "replica_waiting", "origin=%s stream=%s msg=\"the district's "
                   "stream does not exist yet; waiting for it\"", o->cfg.area, o->cfg.stream);
        o->waiting_logged = 1;
        return -1;
    }
    if (s != NATS_OK)
        return -1;
    gs_origin_t st;
    int rc = gs_store_origin_get(self->b->store, o->cfg.area, &st);
    if (rc && rc != GS_ENOTFOUND)
        return -1;
    if (st.stream_seq > stream_last) {
        /* the stream was made anew and numbers from 1 again: its position
         * means nothing here, so read it all; what the store holds is
         * skipped by origin seq */
        gs_log(GS_LOG_WARN, "replica_stream_renumbered", "origin=%s stream=%s "
               "recorded_stream_seq=%" PRIu64 " stream_last_seq=%" PRIu64 " msg=\"the stream "
               "is shorter than the position recorded: reading it from the start\"",
               o->cfg.area, o->cfg.stream, st.stream_seq, stream_last);
        st.stream_seq = 0;
    }
    s = js_DeleteConsumer(self->js, o->cfg.stream, o->cfg.durable, NULL, &jerr);
    if (s != NATS_OK && s != NATS_NOT_FOUND && jerr != JSConsumerNotFoundErr) {
        gs_log(GS_LOG_WARN, "replica_subscribe_failed", "origin=%s what=\"delete consumer\" "
               "error=\"%s\" code=%d", o->cfg.area, natsStatus_GetText(s), (int) jerr);
        return -1;
    }
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = o->cfg.durable;
    /* one ack per applied batch, for its last message (the store, not the
     * ack floor, says where to resume: see above) */
    cc.AckPolicy = js_AckAll;
    cc.DeliverPolicy = st.stream_seq ? js_DeliverByStartSequence : js_DeliverAll;
    cc.OptStartSeq = st.stream_seq ? st.stream_seq + 1 : 0;
    cc.FilterSubject = o->cfg.subject;
    cc.AckWait = S_ACK_WAIT_NS;
    cc.MaxAckPending = (int64_t) self->batch * 4;
    jsConsumerInfo *ci = NULL;
    s = js_AddConsumer(&ci, self->js, o->cfg.stream, &cc, NULL, &jerr);
    jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK) {
        gs_log(GS_LOG_WARN, "replica_subscribe_failed", "origin=%s what=\"add consumer\" "
               "error=\"%s\" code=%d", o->cfg.area, natsStatus_GetText(s), (int) jerr);
        return -1;
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = o->cfg.stream;
    so.Consumer = o->cfg.durable;
    s = js_PullSubscribe(&o->sub, self->js, o->cfg.subject, o->cfg.durable, NULL, &so, &jerr);
    if (s != NATS_OK) {
        gs_log(GS_LOG_WARN, "replica_subscribe_failed", "origin=%s error=\"%s\" code=%d",
               o->cfg.area, natsStatus_GetText(s), (int) jerr);
        o->sub = NULL;
        return -1;
    }
    gs_rpull_init(&o->pull, o->cfg.stream, o->cfg.durable);
    o->waiting_logged = 0;
    o->next_dseq = 1;
    atomic_store(&o->state, S_RUNNING);
    gs_log(GS_LOG_INFO, "replica_following", "origin=%s stream=%s consumer=%s subject=%s "
           "last_seq=%" PRIu64 " from_stream_seq=%" PRIu64, o->cfg.area, o->cfg.stream,
           o->cfg.durable, o->cfg.subject, st.last_seq, st.stream_seq + 1);
    return 0;
}

/* A header value of m, NULL when absent. */
static const char *
s_header(natsMsg *m, const char *name)
{
    const char *v = NULL;
    return natsMsgHeader_Get(m, name, &v) == NATS_OK ? v : NULL;
}

/* The header values of message i of a batch (the natsMsg array arg) into
 * *m: the batch's fill (gs_repl_fill_fn), so that nats.c's parsing of the
 * headers (a hash table of them, allocated per message) runs on the
 * checker's thread, beside the writes. */
static void
s_fill_headers(void *arg, size_t i, gs_repl_msg_t *m)
{
    natsMsg *nm = ((natsMsg **) arg)[i];
    m->h_origin = s_header(nm, "Gridsync-Origin");
    m->h_epoch = s_header(nm, "Gridsync-Epoch");
    m->h_seq = s_header(nm, "Gridsync-Seq");
}

/* Fetch one batch of o (gs_rpull_fetch) and apply it. With wait_ms 0 (a quiet
 * origin while another is busy) only what o's standing request has
 * delivered is taken, after making sure one stands, so that the busy
 * origins do not wait for a request of o's. The standing request's answer
 * is never read, so an error of o's consumer (deleted, its stream made
 * anew) would go unseen while others stay busy: once that request has used
 * half its life, o makes a fetch of its own (1 ms), whose status is
 * read, and then a new standing request; at most one such fetch per
 * origin every GS_RPULL_AHEAD_EXPIRES_MS / 2. Returns the messages consumed
 * (>= 0), or -1 after a NATS or store error (retried later). */
static int
s_fetch_apply(gs_replica_t *self, s_org_t *o, int wait_ms)
{
    gs_broker_t *b = self->b;
    natsMsgList list = { NULL, 0 };
    int renew = 0;
    if (wait_ms == 0 && (wait_ms = gs_rpull_quiet_wait_ms(&o->pull)) > 0)
        renew = 1;
    if (wait_ms == 0)
        gs_rpull_ask_ahead(&o->pull, self->nc, o->sub, self->batch, 0);
    /* what the last fetch of this subscription left pending is in the
     * stream: asked for at once */
    uint64_t known = o->known_pending;
    o->known_pending = 0;
    natsStatus s = gs_rpull_fetch(o->sub, self->batch, known < (uint64_t) self->batch ?
                                  (int) known : self->batch, wait_ms,
                                  gs_rpull_standing(&o->pull), &list);
    if (s == NATS_TIMEOUT) {
        atomic_store(&o->lag_events, 0);
        if (renew)
            gs_rpull_ask_ahead(&o->pull, self->nc, o->sub, self->batch, 0);
        return 0;
    }
    if (s != NATS_OK) {
        if (s != o->last_err)
            gs_log(GS_LOG_WARN, "replica_fetch_failed", "origin=%s error=\"%s\" "
                   "detail=\"%s\"", o->cfg.area, natsStatus_GetText(s),
                   nats_GetLastError(NULL));
        o->last_err = s;
        /* what was fetched may be lost in flight: resume from the store */
        s_unsubscribe(o);
        if (atomic_load(&o->state) == S_RUNNING)
            atomic_store(&o->state, S_WAITING);
        natsMsgList_Destroy(&list);
        return -1;
    }
    o->last_err = NATS_OK;
    size_t n = (size_t) list.Count;
    gs_repl_msg_t *msgs = calloc(n ? n : 1, sizeof *msgs);
    int64_t *stored = calloc(n ? n : 1, sizeof *stored); /* stream timestamps, ns */
    if (!msgs || !stored) {
        free(msgs);
        free(stored);
        natsMsgList_Destroy(&list);
        return -1;
    }
    int lost = 0;
    for (size_t i = 0; i < n; i++) {
        natsMsg *m = list.Msgs[i];
        jsMsgMetaData *meta = NULL, own;
        memset(&own, 0, sizeof own);
        uint64_t sseq = 0;
        if (gs_rpull_delivery(m, &own.Sequence.Stream, &own.Sequence.Consumer, &own.Timestamp,
                       &own.NumPending) == 0)
            meta = &own;
        else if (natsMsg_GetMetaData(&meta, m) != NATS_OK)
            meta = NULL;
        if (meta) {
            /* Every delivery of the consumer has the next delivery sequence.
             * One that skips ahead means deliveries were lost in flight (sent
             * on a connection that broke): the server counts them delivered
             * and sends them again only after the ack wait, so what follows
             * would look like a gap in the district's log. The store must not
             * judge that: the messages before are applied, the rest dropped,
             * and the consumer made anew from the position the store holds. */
            lost = meta->Sequence.Consumer != o->next_dseq;
            if (!lost) {
                o->next_dseq++;
                sseq = meta->Sequence.Stream;
                stored[i] = meta->Timestamp;
                if (i + 1 == n) {
                    atomic_store(&o->lag_events, meta->NumPending);
                    o->known_pending = meta->NumPending;
                }
            }
        }
        if (meta != &own)
            jsMsgMetaData_Destroy(meta);
        if (lost) {
            atomic_fetch_add(&o->resubscribed, 1);
            gs_log(GS_LOG_WARN, "replica_deliveries_lost", "origin=%s msg=\"deliveries lost "
                   "in flight (a NATS connection broke): reading again from the position "
                   "applied\"", o->cfg.area);
            n = i;
            break;
        }
        /* the headers: s_fill_headers, on the checker's thread */
        msgs[i] = (gs_repl_msg_t) { (const uint8_t *) natsMsg_GetData(m),
                                    (size_t) natsMsg_GetDataLength(m), NULL, NULL, NULL,
                                    sseq };
    }
    if (!lost && n > 0)
        gs_rpull_ask_ahead(&o->pull, self->nc, o->sub, self->batch, n);
    gs_repl_result_t res;
    gs_apply_out_t out;
    int64_t t0 = gs_mono_us();
    int rc;
    /* the checker decodes and prepares the messages while the store
     * applies those it has done (two cores for one batch) */
    if (self->ahead && gs_repl_ahead_begin(self->ahead, o->cfg.area, o->cfg.followed, msgs, n,
                                           s_fill_headers, list.Msgs) == 0) {
        rc = gs_store_replicate_ahead(b->store, self->ahead, gs_now_ms(), &res, &out);
        gs_repl_ahead_end(self->ahead);
    } else {
        for (size_t i = 0; i < n; i++)
            s_fill_headers(list.Msgs, i, &msgs[i]);
        rc = gs_store_replicate(b->store, o->cfg.area, o->cfg.followed, msgs, n, gs_now_ms(),
                                &res, &out);
    }
    double secs = (double) (gs_mono_us() - t0) / 1e6;
    free(msgs);
    if (rc == 0) {
        /* the applied messages are the last of those consumed (redeliveries
         * come first); wall clocks: the stream's host against this one */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t now_ns = (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
        for (size_t i = res.consumed - res.applied; i < res.consumed; i++)
            if (stored[i] > 0)
                gs_hist_observe(&b->metrics.replica_stream_seconds,
                                now_ns > stored[i] ? (double) (now_ns - stored[i]) / 1e9 : 0.0);
    }
    free(stored);
    if (rc) {
        /* nothing committed: the same messages come again */
        atomic_fetch_add(&b->metrics.commit_failures, 1);
        gs_log(GS_LOG_ERROR, "commit_failed", "origin=%s error=\"%s\" detail=\"%s\" "
               "messages=%zu", o->cfg.area, gs_store_strerror(rc), gs_store_errdetail(), n);
        natsMsgList_Destroy(&list);
        s_unsubscribe(o);   /* the same messages again, in order, next round */
        return -1;
    }
    atomic_fetch_add(&b->metrics.commits, 1);
    atomic_fetch_add(&b->metrics.map_grows, out.map_grows);
    gs_hist_observe(&b->metrics.commit_records, (double) res.applied);
    gs_hist_observe(&b->metrics.commit_seconds, secs);
    /* committed: now the ack, of the last message consumed, which acks all
     * before it (AckAll); a lost ack means a redelivery, skipped */
    if (res.consumed)
        natsMsg_Ack(list.Msgs[res.consumed - 1], NULL);
    atomic_fetch_add(&o->applied, res.applied);
    atomic_fetch_add(&o->skipped, res.skipped);
    atomic_store(&o->last_seq, res.origin.last_seq);
    atomic_store(&o->last_committed_at, res.origin.last_committed_at);
    if (res.refused) {
        atomic_fetch_add(&o->refused[res.refused], 1);
        atomic_store(&o->state, S_STOPPED);
        gs_log(GS_LOG_ERROR, "replica_refused", "origin=%s reason=%s seq=%" PRIu64
               " msg=\"%s\" action=\"origin stopped; fix the cause, then "
               "--replica-rebaseline=%s\"", o->cfg.area, gs_repl_reason_name(res.refused),
               res.refused_seq, res.message, o->cfg.area);
        s_unsubscribe(o);
    }
    natsMsgList_Destroy(&list);
    if (lost)
        s_unsubscribe(o);   /* made anew next round, from the store's position */
    if (out.n_events) {
        atomic_store(&b->head_seq, out.head_seq);
        gs_log(GS_LOG_DEBUG, "replica_applied", "origin=%s applied=%zu skipped=%zu "
               "head_seq=%" PRIu64 " ms=%.3f", o->cfg.area, res.applied, res.skipped,
               out.head_seq, secs * 1e3);
    }
    gs_events_hand(b->to_publisher, &out);
    return (int) res.consumed;
}

/* ---- Repairing cells (replica-repair) ---------------------------------------------- */

/* Fetch the messages of o's stream on the subjects of cell, in stream
 * order, up to stream position upto, through a consumer of the replica's
 * own made for it (deliver all, filtered to the cell) and deleted after.
 * *msgs gets them (destroy each and free the array). 0, or -1 after a
 * NATS error (logged). */
static int
s_repair_fetch(gs_replica_t *self, s_org_t *o, const char *cell, uint64_t upto,
               natsMsg ***msgs, size_t *n)
{
    char name[80], subject[64];
    snprintf(name, sizeof name, "%s_repair", o->cfg.durable);
    s_subject(cell, subject, sizeof subject);
    *msgs = NULL;
    *n = 0;
    jsErrCode jerr = 0;
    natsStatus s = js_DeleteConsumer(self->js, o->cfg.stream, name, NULL, &jerr);
    if (s != NATS_OK && s != NATS_NOT_FOUND && jerr != JSConsumerNotFoundErr)
        goto fail;
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = name;
    cc.AckPolicy = js_AckExplicit;
    cc.DeliverPolicy = js_DeliverAll;
    cc.FilterSubject = subject;
    cc.AckWait = S_ACK_WAIT_NS;
    cc.MaxAckPending = (int64_t) self->batch * 4;
    jsConsumerInfo *ci = NULL;
    if ((s = js_AddConsumer(&ci, self->js, o->cfg.stream, &cc, NULL, &jerr)) != NATS_OK)
        goto fail;
    uint64_t pending = ci->NumPending;
    jsConsumerInfo_Destroy(ci);
    natsSubscription *sub = NULL;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = o->cfg.stream;
    so.Consumer = name;
    if (pending && (s = js_PullSubscribe(&sub, self->js, subject, name, NULL, &so, &jerr)) !=
        NATS_OK)
        goto fail;
    size_t cap = 0;
    int done = !pending;
    while (!done) {
        natsMsgList list = { NULL, 0 };
        s = gs_rpull_fetch(sub, self->batch, 1, S_JS_WAIT_MS, 0, &list);
        if (s != NATS_OK) {
            natsMsgList_Destroy(&list);
            break;
        }
        for (int i = 0; i < list.Count; i++) {
            natsMsg *m = list.Msgs[i];
            list.Msgs[i] = NULL;
            jsMsgMetaData *meta = NULL;
            uint64_t sseq = UINT64_MAX, left = 0;
            if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
                sseq = meta->Sequence.Stream;
                left = meta->NumPending;
            }
            jsMsgMetaData_Destroy(meta);
            natsMsg_Ack(m, NULL);   /* the consumer goes with the repair */
            if (sseq > upto || done) {
                done = 1;           /* past what the replica has applied */
                natsMsg_Destroy(m);
                continue;
            }
            if (*n == cap) {
                size_t nc = cap ? 2 * cap : 256;
                natsMsg **grown = realloc(*msgs, nc * sizeof *grown);
                if (!grown) {
                    natsMsg_Destroy(m);
                    s = NATS_NO_MEMORY;
                    break;
                }
                *msgs = grown;
                cap = nc;
            }
            (*msgs)[(*n)++] = m;
            if (sseq == upto || left == 0)
                done = 1;
        }
        natsMsgList_Destroy(&list);
        if (s != NATS_OK)
            break;
    }
    natsSubscription_Destroy(sub);
    js_DeleteConsumer(self->js, o->cfg.stream, name, NULL, NULL);
    if (s == NATS_OK)
        return 0;
fail:
    gs_log(GS_LOG_WARN, "replica_repair_failed", "origin=%s cell=%s error=\"%s\" code=%d "
           "msg=\"the cell's messages could not be read; tried again\"", o->cfg.area, cell,
           natsStatus_GetText(s), (int) jerr);
    for (size_t i = 0; i < *n; i++)
        natsMsg_Destroy((*msgs)[i]);
    free(*msgs);
    *msgs = NULL;
    *n = 0;
    return -1;
}

/* Repair one cell of o from its stream (gs_store_cell_repair) and hand
 * the replica's events to the publisher. 0 when done (repaired or refused:
 * logged), -1 to try again later (NATS or store error). */
static int
s_repair_cell(gs_replica_t *self, s_org_t *o, const char *cell)
{
    gs_broker_t *b = self->b;
    gs_origin_t st;
    int rc = gs_store_origin_get(b->store, o->cfg.area, &st);
    if (rc && rc != GS_ENOTFOUND)
        return -1;
    jsErrCode jerr = 0;
    jsStreamInfo *si = NULL;
    natsStatus s = js_GetStreamInfo(&si, self->js, o->cfg.stream, NULL, &jerr);
    uint64_t stream_last = s == NATS_OK && si ? si->State.LastSeq : 0;
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK && s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr)
        return -1;
    if (st.stream_seq > stream_last) {
        gs_log(GS_LOG_ERROR, "replica_repair_refused", "origin=%s cell=%s reason=stream "
               "recorded_stream_seq=%" PRIu64 " stream_last_seq=%" PRIu64 " msg=\"the stream "
               "does not hold what the replica applied (missing, or made anew): the cell "
               "cannot be re-read from it; nothing was changed\"", o->cfg.area, cell,
               st.stream_seq, stream_last);
        return 0;
    }
    natsMsg **nm = NULL;
    size_t n = 0;
    if (st.stream_seq && s_repair_fetch(self, o, cell, st.stream_seq, &nm, &n))
        return -1;
    gs_repl_msg_t *msgs = calloc(n ? n : 1, sizeof *msgs);
    if (!msgs) {
        for (size_t i = 0; i < n; i++)
            natsMsg_Destroy(nm[i]);
        free(nm);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        msgs[i] = (gs_repl_msg_t) { (const uint8_t *) natsMsg_GetData(nm[i]),
                                    (size_t) natsMsg_GetDataLength(nm[i]),
                                    s_header(nm[i], "Gridsync-Origin"),
                                    s_header(nm[i], "Gridsync-Epoch"),
                                    s_header(nm[i], "Gridsync-Seq"), 0 };
    gs_repair_result_t res;
    gs_apply_out_t out;
    rc = gs_store_cell_repair(b->store, o->cfg.area, cell, msgs, n, gs_now_ms(), &res, &out);
    free(msgs);
    for (size_t i = 0; i < n; i++)
        natsMsg_Destroy(nm[i]);
    free(nm);
    if (rc) {
        atomic_fetch_add(&b->metrics.commit_failures, 1);
        gs_log(GS_LOG_ERROR, "commit_failed", "origin=%s cell=%s what=\"repair\" error=\"%s\" "
               "detail=\"%s\"", o->cfg.area, cell, gs_store_strerror(rc), gs_store_errdetail());
        return -1;
    }
    atomic_fetch_add(&b->metrics.commits, 1);
    if (res.refused)
        gs_log(GS_LOG_ERROR, "replica_repair_refused", "origin=%s cell=%s reason=%s seq=%" PRIu64
               " msg=\"%s; nothing was changed\"", o->cfg.area, cell,
               gs_repl_reason_name(res.refused), res.refused_seq, res.message);
    else
        gs_log(GS_LOG_WARN, "replica_repaired", "origin=%s cell=%s last_seq=%" PRIu64
               " events=%zu later=%zu records=%zu unchanged=%zu installed=%zu removed=%zu",
               o->cfg.area, cell, res.last_seq, res.events, res.later, res.records,
               res.unchanged, res.installed, res.removed);
    if (out.n_events)
        atomic_store(&b->head_seq, out.head_seq);
    gs_events_hand(b->to_publisher, &out);
    return 0;
}

/* The cells of o that replica-repair names and are not done yet, in turn,
 * before o's consumer resumes: the store's position for o does not move
 * meanwhile (this thread is its one writer), so each cell is repaired to
 * exactly what the replica applied. 0 when all are done. */
static int
s_repair_pending(gs_replica_t *self, s_org_t *o)
{
    while (o->repaired < o->cfg.n_repair) {
        if (s_repair_cell(self, o, o->cfg.repair[o->repaired]))
            return -1;
        o->repaired++;
    }
    return 0;
}

/* Wait up to ms for the drain marker; 1 when it came. */
static int
s_wait_drain(void *in, int ms)
{
    zmq_pollitem_t it = { in, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll(&it, 1, ms) <= 0)
        return 0;
    void *p;
    while (gs_ptr_recv(in, &p, ZMQ_DONTWAIT) == 0) {
        if (!p)
            return 1;
        /* uploads are answered by the frontend and never handed over */
        gs_job_t *j = p;
        gs_job_destroy(&j);
    }
    return errno == ETERM;
}

/* The checker's thread (gs-repl-check): the table-free checks of the
 * batches the replica thread applies (gs_repl_ahead_run). */
static void *
s_checker_main(void *arg)
{
    gs_repl_ahead_t *ahead = arg;
    while (gs_repl_ahead_run(ahead) == 0) {
    }
    return NULL;
}

void *
gs_replica_main(void *arg)
{
    gs_replica_t *self = arg;
    gs_broker_t *b = self->b;
    void *in = zmq_socket(b->ctx, ZMQ_PAIR);
    void *out = zmq_socket(b->ctx, ZMQ_PUSH);
    zmq_connect(in, GS_EP_WRITER);
    zmq_connect(out, GS_EP_REPLIES);
    /* without the checker (out of memory, no thread) the checks run inline */
    self->ahead = gs_repl_ahead_new(b->store);
    if (self->ahead && gs_thread_start(&self->checker, "gs-repl-check", s_checker_main,
                                       self->ahead) != 0) {
        gs_log(GS_LOG_WARN, "start_failed", "thread=gs-repl-check msg=\"the replica checks "
               "its messages on its own thread instead\"");
        gs_repl_ahead_destroy(&self->ahead);
    }
    size_t busy = 0;    /* messages consumed in the last round */
    while (!s_wait_drain(in, 0)) {
        if (!self->nc && s_connect(self)) {
            if (s_wait_drain(in, S_RETRY_MS))
                break;
            continue;
        }
        size_t active = 0, failed = 0, consumed = 0, following = 0;
        for (size_t i = 0; i < self->n; i++) {
            s_org_t *o = &self->org[i];
            if (o->repaired < o->cfg.n_repair && !o->sub && s_repair_pending(self, o))
                continue;   /* tried again next round; the origin waits for it */
            if (atomic_load(&o->state) == S_STOPPED)
                continue;
            active++;
            if (!o->sub && s_subscribe(self, o))
                continue;
            following++;
            /* Quiet origins share the idle wait, so that a message for one
             * waits at most S_IDLE_FETCH_MS / n while another is polled. An
             * origin that had messages last time gets the same wait: its
             * requests ask only for messages that are there (gs_rpull_fetch) and
             * end as soon as they are delivered. A quiet origin in a busy
             * round (this one or the last) does not hold up the others:
             * it makes no request of its own and takes only what its
             * standing request delivered (a request and its 1 ms wait
             * for each quiet origin would add up, per round, to a
             * district's lag in a city of many). */
            int wait = S_IDLE_FETCH_MS / (int) self->n;
            if (!o->had_msgs && (consumed || busy))
                wait = 0;
            else if (wait < 1)
                wait = 1;
            int got = s_fetch_apply(self, o, wait);
            o->had_msgs = got > 0;
            if (got < 0)
                failed++;
            else
                consumed += (size_t) got;
        }
        busy = consumed;
        if (natsConnection_Status(self->nc) == NATS_CONN_STATUS_CLOSED) {
            gs_log(GS_LOG_WARN, "replica_nats_closed", "msg=\"connection closed; connecting "
                   "again\"");
            s_disconnect(self);
        }
        /* nothing to fetch from (all stopped, streams missing, errors):
         * wait for the drain marker a while instead of spinning */
        if ((!active || !following || failed == following) && !consumed &&
            s_wait_drain(in, S_RETRY_MS))
            break;
    }
    s_disconnect(self);
    if (self->ahead) {
        gs_repl_ahead_stop(self->ahead);
        pthread_join(self->checker, NULL);
        gs_repl_ahead_destroy(&self->ahead);
    }
    /* tell the frontend we are done (nothing of ours is queued) */
    gs_ptr_send(out, NULL);
    int linger = -1;
    zmq_setsockopt(out, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(in);
    zmq_close(out);
    return NULL;
}

/* ---- Metrics ----------------------------------------------------------------------- */

void
gs_replica_metrics(void *arg, gs_wbuf_t *b, int64_t now_ms)
{
    gs_replica_t *self = arg;
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        { "gridsync_replica_applied_total", "counter", "Origin events applied by the replica" },
        { "gridsync_replica_skipped_total", "counter", "Redelivered origin events skipped" },
        { "gridsync_replica_resubscribed_total", "counter",
          "Consumers made anew after deliveries were lost in flight" },
        { "gridsync_replica_refused_total", "counter",
          "Origin messages refused (the origin stops), by reason" },
        { "gridsync_replica_lag_events", "gauge",
          "Messages of the origin's stream not yet applied (consumer pending)" },
        { "gridsync_replica_lag_seconds", "gauge",
          "Now minus the origin commit time of the last applied event, while behind" },
        { "gridsync_replica_last_origin_seq", "gauge", "Last origin seq applied" },
        { "gridsync_replica_origin_state", "gauge",
          "0 waiting (no stream or no NATS), 1 running, 2 stopped (a refusal)" },
    };
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        gs_wbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help,
                       fam[f].name, fam[f].type);
        for (size_t i = 0; i < self->n; i++) {
            s_org_t *o = &self->org[i];
            const char *a = o->cfg.area;
            uint64_t lag = atomic_load(&o->lag_events);
            int64_t at = atomic_load(&o->last_committed_at);
            switch (f) {
            case 0:
                gs_wbuf_printf(b, "%s{origin=\"%s\"} %" PRIu64 "\n", fam[f].name, a,
                               (uint64_t) atomic_load(&o->applied));
                break;
            case 1:
                gs_wbuf_printf(b, "%s{origin=\"%s\"} %" PRIu64 "\n", fam[f].name, a,
                               (uint64_t) atomic_load(&o->skipped));
                break;
            case 2:
                gs_wbuf_printf(b, "%s{origin=\"%s\"} %" PRIu64 "\n", fam[f].name, a,
                               (uint64_t) atomic_load(&o->resubscribed));
                break;
            case 3:
                for (int r = GS_REPL_DECODE; r < GS_REPL_STOPPED; r++)
                    gs_wbuf_printf(b, "%s{origin=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
                                   fam[f].name, a, gs_repl_reason_name(r),
                                   (uint64_t) atomic_load(&o->refused[r]));
                break;
            case 4:
                gs_wbuf_printf(b, "%s{origin=\"%s\"} %" PRIu64 "\n", fam[f].name, a, lag);
                break;
            case 5:
                gs_wbuf_printf(b, "%s{origin=\"%s\"} %.3f\n", fam[f].name, a,
                               lag && at && now_ms > at ? (double) (now_ms - at) / 1000.0 : 0.0);
                break;
            case 6:
                gs_wbuf_printf(b, "%s{origin=\"%s\"} %" PRIu64 "\n", fam[f].name, a,
                               (uint64_t) atomic_load(&o->last_seq));
                break;
            default:
                gs_wbuf_printf(b, "%s{origin=\"%s\"} %d\n", fam[f].name, a,
                               atomic_load(&o->state));
                break;
            }
        }
    }
}

/*
 * gs_sub: the exactly-once subscriber. It follows prefixes on the live
 * feed (SUB), detects what the feed lost (prev_seq, heartbeats) and repairs
 * it from the sync service through a gs_client_t, guards the store lineage
 * (epoch, head), and keeps its positions in a checkpoint (gs_checkpoint).
 * With categories it follows incident topics instead, one per category and
 * prefix, each with its own position, chained by the feed message's
 * incident_prev_seq. See gs_sub.h and docs/protocol.md.
 */
#include "gs_sub.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "gs_checkpoint.h"
#include "gs_client_int.h"
#include "gs_grid.h"
#include "gs_topic.h"
#include "gs_validate.h"

#define S_MAX_SUB_PREFIXES 64

struct gs_sub {
    void *ctx;                  /* own ZeroMQ context */
    void *sock;                 /* SUB on the live feed */
    gs_client_t *cli;           /* sync service */
    gs_sub_opts_t opts;         /* settings */
    size_t n;                   /* topics followed: prefixes, or categories x prefixes */
    int incidents;              /* following incident topics (opts.categories) */
    char prefix[S_MAX_SUB_PREFIXES][GS_GRID_LEN + 1];  /* grid-code prefix of each topic */
    char category[S_MAX_SUB_PREFIXES][GS_INCIDENT_CATEGORY_MAX + 1]; /* "" for a grid topic */
    char topic[S_MAX_SUB_PREFIXES][GS_TOPIC_MAX + 1];  /* as subscribed and checkpointed */
    int level[S_MAX_SUB_PREFIXES];          /* hierarchy level of each prefix */
    uint64_t known[S_MAX_SUB_PREFIXES];     /* last seq queued or delivered */
    uint64_t delivered[S_MAX_SUB_PREFIXES]; /* last seq handed to the caller */
    Gridsync__V1__ChangeEvent **queue;      /* events ready to deliver, FIFO */
    size_t q_head, q_len, q_cap;            /* ring indexes */
    uint64_t head;              /* broker head seq as last heard */
    char *checkpoint;           /* checkpoint path or NULL */
    char extra[256];            /* caller's data stored with the checkpoint */
    gs_sub_stats_t stats;       /* counters */
    uint64_t epoch;             /* store epoch followed; 0 = not known yet */
    uint64_t broker_epoch;      /* the broker's epoch as last heard; 0 = none sent */
    int lineage_bad;            /* a lineage change was found: only ELINEAGE now */
    gs_sub_lineage_t lineage;   /* what revealed it */
    gs_watch_t watch;           /* the feed socket's monitor */
    int64_t heard[S_MAX_SUB_PREFIXES];      /* last heartbeat or event per prefix, ms */
    int served[S_MAX_SUB_PREFIXES];         /* a heartbeat of the topic arrived */
    int64_t warned;             /* last silence warning, ms (0 = none since heard) */
    size_t catchup;             /* topic the catch-up to the head is at; n = done */
    gs_client_walk_t *walk;     /* its walk over sync pages; NULL when none is under way */
    uint64_t walk_since;        /* since_seq of the walk's page being taken */
};

/* gs_sub_new (and gs_sub_rebaseline) catch up until this many events are
 * queued, or to the head if that comes first; gs_sub_next pulls the rest
 * a page at a time as the caller takes them, so a subscriber far behind
 * holds about a page, not its whole backlog. */
#define S_CATCHUP_AHEAD 1000

void
gs_sub_opts_init(gs_sub_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->rcvhwm = 100000;
    o->timeout_ms = 3000;
    o->sync_limit = 0;
    o->omit_restricted = 0;
}

static int
s_queue_push(gs_sub_t *self, Gridsync__V1__ChangeEvent *ev)
{
    if (self->q_len == self->q_cap) {
        size_t cap = self->q_cap ? self->q_cap * 2 : 1024;
        Gridsync__V1__ChangeEvent **q = malloc(cap * sizeof *q);
        if (!q)
            return GS_CLIENT_ENOMEM;
        for (size_t i = 0; i < self->q_len; i++)
            q[i] = self->queue[(self->q_head + i) % self->q_cap];
        free(self->queue);
        self->queue = q;
        self->q_cap = cap;
        self->q_head = 0;
    }
    self->queue[(self->q_head + self->q_len) % self->q_cap] = ev;
    self->q_len++;
    return 0;
}

/* Free every queued event. */
static void
s_queue_drop(gs_sub_t *self)
{
    while (self->q_len) {
        gridsync__v1__change_event__free_unpacked(self->queue[self->q_head], NULL);
        self->q_head = (self->q_head + 1) % self->q_cap;
        self->q_len--;
    }
}

/* Is ev one of topic i's events: under its prefix and, for an incident
 * topic, an incident of its category? */
static int
s_wants(const gs_sub_t *self, size_t i, const Gridsync__V1__ChangeEvent *ev)
{
    if (!gs_grid_prefix_covers(self->prefix[i], ev->grid_code))
        return 0;
    if (!self->incidents)
        return 1;
    return ev->kind == GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT && ev->record &&
           ev->record->body_case == GRIDSYNC__V1__RECORD__BODY_INCIDENT &&
           ev->record->incident->category &&
           strcmp(ev->record->incident->category, self->category[i]) == 0;
}

/* The topic ev belongs to, or -1. */
static int
s_prefix_index(const gs_sub_t *self, const Gridsync__V1__ChangeEvent *ev)
{
    for (size_t i = 0; i < self->n; i++)
        if (s_wants(self, i, ev))
            return (int) i;
    return -1;
}

/* A sync reply said: the store has this epoch (0 = the broker sends none)
 * and this head, now. Another epoch than ours, or a head below a position
 * of ours, means the store was restored from a backup or replaced: its
 * seqs are handed out again for other events, so going on would skip
 * them. From then on the subscriber only reports it. Adopts the broker's
 * epoch when ours is not known (no checkpoint, or one written before
 * epochs existed). */
static int
s_lineage_check(gs_sub_t *self, uint64_t epoch, uint64_t head)
{
    if (self->lineage_bad)
        return GS_CLIENT_ELINEAGE;
    if (epoch)
        self->broker_epoch = epoch;
    gs_sub_lineage_t *l = &self->lineage;
    if (epoch && self->epoch && epoch != self->epoch) {
        l->position = 0;
        for (size_t p = 0; p < self->n; p++)
            l->position = self->known[p] > l->position ? self->known[p] : l->position;
        snprintf(l->message, sizeof l->message,
                 "the broker's store has epoch %016llx, not %016llx as followed (broker "
                 "head %llu, our position %llu): it was restored from a backup or replaced",
                 (unsigned long long) epoch, (unsigned long long) self->epoch,
                 (unsigned long long) head, (unsigned long long) l->position);
    } else {
        size_t p = 0;
        while (p < self->n && head >= self->known[p])
            p++;
        if (p == self->n) {
            if (epoch && !self->epoch)
                self->epoch = epoch;
            return 0;
        }
        l->position = self->known[p];
        snprintf(l->message, sizeof l->message,
                 "the broker's head seq %llu is below our position %llu (prefix \"%s\"): "
                 "its store was restored from a backup or replaced",
                 (unsigned long long) head, (unsigned long long) l->position, self->topic[p]);
    }
    l->epoch = self->epoch;
    l->broker_epoch = self->broker_epoch;
    l->head_seq = head;
    self->lineage_bad = 1;
    return GS_CLIENT_ELINEAGE;
}

/* One sync page of topic p, asked for after since: checked for lineage,
 * then every event of the topic after known[p] queued (taken out of the
 * page, which free_unpacked then skips). *done is set when the pull ends
 * with this page, and the result is then the pull's (see s_pull). */
static int
s_pull_page(gs_sub_t *self, size_t p, uint64_t target, uint64_t since,
            const Gridsync__V1__SyncResponse *r, int *done)
{
    *done = 1;
    /* before taking anything: these could be another store's events */
    int rc = s_lineage_check(self, r->store_epoch, r->head_seq);
    if (rc)
        return rc;
    self->head = r->head_seq > self->head ? r->head_seq : self->head;
    for (size_t i = 0; i < r->n_events; i++) {
        Gridsync__V1__ChangeEvent *ev = r->events[i];
        if (ev->seq <= self->known[p] || !s_wants(self, p, ev))
            continue;
        if (s_queue_push(self, ev))
            return GS_CLIENT_ENOMEM;
        r->events[i] = NULL; /* moved into the queue */
        self->known[p] = ev->seq;
        self->stats.pulled++;
    }
    uint64_t next = r->next_seq, head = r->head_seq;
    if (self->known[p] >= target && target != UINT64_MAX)
        return 0;
    if (self->incidents && next >= head) {
        if (next > self->known[p])
            self->known[p] = next;
        return 0;
    }
    if (next >= head || (r->n_events == 0 && next <= since))
        return self->known[p] >= target || target == UINT64_MAX ? 0 : GS_CLIENT_EGAP;
    *done = 0;
    return 0;
}

/* One page of the catch-up to the head, for topic self->catchup, through
 * its walk (started here from the topic's position): the request for the
 * next page is with the broker while the caller takes this one. When the
 * topic is caught up the catch-up moves to the next topic. On an error the
 * walk is dropped, so the next step starts again from the position.
 * Returns 0 or an error (GS_CLIENT_ELINEAGE as s_lineage_check). */
static int
s_catchup_step(gs_sub_t *self)
{
    size_t p = self->catchup;
    gs_client_error_t local;
    gs_client_error_t *err = self->opts.err ? self->opts.err : &local;
    if (!self->walk) {
        const char *pfx[1] = { self->prefix[p] };
        self->walk_since = self->known[p];
        int rc = gs_client_walk_new(self->cli, pfx, 1, self->known[p], self->opts.sync_limit,
                                    self->opts.omit_restricted, &self->walk);
        if (rc)
            return rc;
    }
    Gridsync__V1__SyncResponse *page = NULL;
    int done = 1;
    int rc = gs_client_walk_next(self->walk, NULL, &page, err);
    if (rc == 0) {
        /* the feed is not read until the catch-up is over: not silence */
        for (size_t i = 0; i < self->n; i++)
            self->heard[i] = gs_client_mono_ms();
        rc = s_pull_page(self, p, UINT64_MAX, self->walk_since, page, &done);
        self->walk_since = page->next_seq;
        /* free_unpacked skips the NULLed entries we took */
        gridsync__v1__sync_response__free_unpacked(page, NULL);
    } else if (rc == 1) {
        rc = 0;     /* the walk ended on a page that did not move on */
    }
    if (rc || done) {
        gs_client_walk_destroy(&self->walk);
        if (rc == 0)
            self->catchup++;
    }
    return rc;
}

/* Catch up until S_CATCHUP_AHEAD events are queued or every topic is at
 * the head. */
static int
s_catchup_ahead(gs_sub_t *self)
{
    while (self->catchup < self->n && self->q_len < S_CATCHUP_AHEAD) {
        int rc = s_catchup_step(self);
        if (rc)
            return rc;
    }
    return 0;
}

/* Pull events of topic p after known[p] until known[p] >= target or the
 * log is exhausted. Queues each event once. For an incident topic the
 * sync service also returns other events of the prefix (other kinds and
 * categories, unless the key is a department's and reads only its own),
 * which are skipped; and target may be a seq that is not one of the
 * topic's (its heartbeat's last seq is only never too low), so reaching
 * the end of the log is success, and the position moves to where the log
 * was read to: nothing of the topic lies before it that was not queued.
 * One page at a time: a repair usually ends within one, so no page past
 * the target is read for nothing (the catch-up to the head, many pages,
 * is s_catchup_step's). */
static int
s_pull(gs_sub_t *self, size_t p, uint64_t target)
{
    const char *pfx[1] = { self->prefix[p] };
    uint64_t since = self->known[p];
    gs_client_error_t local;
    gs_client_error_t *err = self->opts.err ? self->opts.err : &local;
    for (;;) {
        Gridsync__V1__SyncResponse *r = NULL;
        int rc = gs_client_sync(self->cli, pfx, 1, since, self->opts.sync_limit,
                                self->opts.omit_restricted, &r, err);
        if (rc)
            return rc;
        int done;
        rc = s_pull_page(self, p, target, since, r, &done);
        since = r->next_seq;
        /* free_unpacked skips the NULLed entries we took */
        gridsync__v1__sync_response__free_unpacked(r, NULL);
        if (rc || done)
            return rc;
    }
}

/* Does a heartbeat's epoch or head disagree with us? It is only a
 * suspicion: a heartbeat is as of its sending, and one read late (a slow
 * subscriber that pulled newer events meanwhile, or the last heartbeats of
 * a broker that was replaced) can name an older head or epoch. */
static int
s_lineage_suspect(const gs_sub_t *self, uint64_t epoch, uint64_t head)
{
    if (epoch && epoch != self->epoch)
        return 1;
    for (size_t p = 0; p < self->n; p++)
        if (head < self->known[p])
            return 1;
    return 0;
}

/* Ask the sync service for the epoch and head now, which tells a late
 * heartbeat from a restored store. */
static int
s_lineage_confirm(gs_sub_t *self)
{
    const char *pfx[1] = { self->prefix[0] };
    Gridsync__V1__SyncResponse *r = NULL;
    gs_client_error_t err;
    int rc = gs_client_sync(self->cli, pfx, 1, self->known[0], 1, self->opts.omit_restricted,
                            &r, &err);
    if (rc)
        return rc;
    rc = s_lineage_check(self, r->store_epoch, r->head_seq);
    gridsync__v1__sync_response__free_unpacked(r, NULL);
    return rc;
}

/* The topics followed, as the pointer array gs_checkpoint takes. */
static void
s_prefix_list(const gs_sub_t *self, const char **out)
{
    for (size_t i = 0; i < self->n; i++)
        out[i] = self->topic[i];
}

gs_sub_t *
gs_sub_new(const char *feed_endpoint, const char *sync_endpoint,
           const char *const *prefixes, size_t n, const char *checkpoint, uint64_t since,
           const gs_sub_opts_t *opts, int *err)
{
    int e = GS_CLIENT_EINVAL;
    size_t n_cat = opts ? opts->n_categories : 0;
    if (n == 0 || n > S_MAX_SUB_PREFIXES || n * (n_cat ? n_cat : 1) > S_MAX_SUB_PREFIXES)
        goto fail_early;
    for (size_t c = 0; c < n_cat; c++) {
        char t[GS_TOPIC_MAX + 1];
        if (!opts->categories[c] || gs_topic_incident(t, sizeof t, opts->categories[c], "") < 0)
            goto fail_early;
        for (size_t d = 0; d < c; d++)
            if (strcmp(opts->categories[c], opts->categories[d]) == 0)
                goto fail_early; /* one category twice */
    }
    for (size_t i = 0; i < n; i++) {
        gs_verdict_t v;
        if (gs_prefix_check(prefixes[i], &v))
            goto fail_early;
        for (size_t j = 0; j < n; j++)
            if (i != j && gs_grid_prefix_covers(prefixes[j], prefixes[i]))
                goto fail_early; /* one prefix contains another */
    }
    gs_sub_t *self = calloc(1, sizeof *self);
    if (!self) {
        e = GS_CLIENT_ENOMEM;
        goto fail_early;
    }
    if (opts)
        self->opts = *opts;
    else
        gs_sub_opts_init(&self->opts);
    self->opts.categories = NULL;   /* the caller's; copied below */
    self->incidents = n_cat > 0;
    self->n = n * (n_cat ? n_cat : 1);
    for (size_t i = 0; i < self->n; i++) {
        /* topic i: prefix i % n, category i / n */
        const char *pf = prefixes[i % n];
        snprintf(self->prefix[i], sizeof self->prefix[i], "%s", pf);
        if (n_cat) {
            snprintf(self->category[i], sizeof self->category[i], "%s",
                     opts->categories[i / n]);
            gs_topic_incident(self->topic[i], sizeof self->topic[i], self->category[i], pf);
        } else {
            snprintf(self->topic[i], sizeof self->topic[i], "%s", pf);
        }
        self->level[i] = gs_level_of_len(strlen(pf));
        self->known[i] = self->delivered[i] = since;
    }
    n = self->n;
    self->epoch = self->opts.epoch;
    if (checkpoint) {
        self->checkpoint = strdup(checkpoint);
        if (!self->checkpoint) {
            e = GS_CLIENT_ENOMEM;
            goto fail;
        }
        const char *pf[S_MAX_SUB_PREFIXES];
        s_prefix_list(self, pf);
        if (gs_checkpoint_read(checkpoint, pf, n, self->delivered, &self->epoch, self->extra,
                               sizeof self->extra) < 0) {
            e = GS_CLIENT_EIO;
            goto fail;
        }
        for (size_t i = 0; i < n; i++)
            self->known[i] = self->delivered[i];
    }
    gs_client_opts_t co;
    gs_client_opts_init(&co);
    co.timeout_ms = self->opts.timeout_ms;
    co.curve = self->opts.curve;
    co.cancel = self->opts.cancel;
    self->cli = gs_client_new(sync_endpoint, &co);
    self->ctx = zmq_ctx_new();
    if (!self->cli || !self->ctx) {
        e = GS_CLIENT_EIO;
        goto fail;
    }
    self->sock = zmq_socket(self->ctx, ZMQ_SUB);
    int linger = 0;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(self->sock, ZMQ_RCVHWM, &self->opts.rcvhwm, sizeof self->opts.rcvhwm);
    if (gs_curve_apply(self->sock, &self->opts.curve) ||
        gs_watch_start(&self->watch, self->ctx, self->sock, 1) ||
        zmq_connect(self->sock, feed_endpoint)) {
        e = GS_CLIENT_EIO;
        goto fail;
    }
    /* Clone pattern: subscribe first, then catch up, so nothing falls
     * between the two; live events at or below what was pulled are dropped */
    for (size_t i = 0; i < n; i++)
        zmq_setsockopt(self->sock, ZMQ_SUBSCRIBE, self->topic[i], strlen(self->topic[i]));
    e = s_catchup_ahead(self);  /* gs_sub_next takes the catch-up on from there */
    if (e && e != GS_CLIENT_ELINEAGE)
        goto fail;  /* a lineage change: gs_sub_next reports it, gs_sub_lineage tells what */
    /* silence is counted from here: heartbeats start once subscribed */
    for (size_t i = 0; i < n; i++)
        self->heard[i] = gs_client_mono_ms();
    return self;
fail:
    gs_sub_destroy(&self);
fail_early:
    if (err)
        *err = e;
    if (e == GS_CLIENT_EINVAL && opts && opts->err)
        gs_client_err_set(opts->err, 0, "bad prefix (level boundary: 0, 2, 4, 6, 9, 12 or 15 digits; "
              "none inside another) or category (1 to 8 letters or digits, each once; "
              "at most 64 categories x prefixes)");
    return NULL;
}

void
gs_sub_destroy(gs_sub_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gs_sub_t *self = *self_p;
    s_queue_drop(self);
    free(self->queue);
    gs_client_walk_destroy(&self->walk);
    if (self->sock) {
        gs_watch_stop(&self->watch, self->sock);
        zmq_close(self->sock);
    }
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    gs_client_destroy(&self->cli);
    free(self->checkpoint);
    free(self);
    *self_p = NULL;
}

static Gridsync__V1__ChangeEvent *
s_queue_pop(gs_sub_t *self)
{
    Gridsync__V1__ChangeEvent *ev = self->queue[self->q_head];
    self->q_head = (self->q_head + 1) % self->q_cap;
    self->q_len--;
    int p = s_prefix_index(self, ev);
    if (p >= 0)
        self->delivered[p] = ev->seq;
    return ev;
}

/* Handle one live message; may queue events or repair a gap. */
static int
s_on_live(gs_sub_t *self, const uint8_t *data, size_t len)
{
    Gridsync__V1__FeedMessage *fm = gridsync__v1__feed_message__unpack(NULL, len, data);
    if (!fm)
        return 0; /* not ours to judge; the next heartbeat tells if we lost one */
    int rc = 0;
    if (fm->body_case == GRIDSYNC__V1__FEED_MESSAGE__BODY_EVENT) {
        Gridsync__V1__ChangeEvent *ev = fm->event;
        int p = s_prefix_index(self, ev);
        if (p >= 0)
            self->heard[p] = gs_client_mono_ms();
        if (p < 0) {
            /* not a prefix of ours */
        } else if (ev->seq <= self->known[p]) {
            self->stats.duplicates++;
        } else {
            /* prev is the prefix's event before this one. At or before our
             * position, nothing lies between: this is the next event. (The
             * position need not be an event of the prefix: a start at the
             * head, say.) After it, or missing, we missed something. An
             * incident topic's chain is the message's incident_prev_seq
             * (never too low), not the event's, which counts every kind. */
            int lv = self->level[p];
            uint64_t prev = UINT64_MAX;
            if (!self->incidents && (size_t) lv < ev->n_prev_seq)
                prev = ev->prev_seq[lv];
            else if (self->incidents && (size_t) lv < fm->n_incident_prev_seq)
                prev = fm->incident_prev_seq[lv];
            if (prev <= self->known[p]) {
                fm->event = NULL; /* moved into the queue */
                fm->body_case = GRIDSYNC__V1__FEED_MESSAGE__BODY__NOT_SET;
                rc = s_queue_push(self, ev);
                if (rc == 0) {
                    self->known[p] = ev->seq;
                    self->stats.live++;
                } else {
                    gridsync__v1__change_event__free_unpacked(ev, NULL);
                }
            } else {
                self->stats.gaps++;
                rc = s_pull(self, (size_t) p, ev->seq);
            }
        }
    } else if (fm->body_case == GRIDSYNC__V1__FEED_MESSAGE__BODY_HEARTBEAT) {
        Gridsync__V1__Heartbeat *hb = fm->heartbeat;
        self->stats.heartbeats++;
        if (s_lineage_suspect(self, hb->store_epoch, hb->head_seq))
            rc = s_lineage_confirm(self); /* a late heartbeat, or a restored store */
        if (rc == 0 && hb->head_seq > self->head)
            self->head = hb->head_seq;
        for (size_t p = 0; p < self->n; p++)
            if (strcmp(hb->prefix, self->topic[p]) == 0) {
                self->heard[p] = gs_client_mono_ms();
                self->served[p] = 1;
            }
        for (size_t p = 0; rc == 0 && p < self->n; p++) {
            if (strcmp(hb->prefix, self->topic[p]) == 0 &&
                hb->prefix_last_seq > self->known[p]) {
                self->stats.gaps++;
                rc = s_pull(self, p, hb->prefix_last_seq);
                break;
            }
        }
    }
    gridsync__v1__feed_message__free_unpacked(fm, NULL);
    return rc;
}

int
gs_sub_next(gs_sub_t *self, int timeout_ms, Gridsync__V1__ChangeEvent **ev)
{
    *ev = NULL;
    if (self->lineage_bad)
        return GS_CLIENT_ELINEAGE;
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : gs_client_mono_ms() + timeout_ms;
    while (self->q_len == 0) {
        /* still catching up: the next page first, the live feed after (its
         * copies of what is pulled are dropped as duplicates then) */
        if (self->catchup < self->n) {
            int rc = s_catchup_step(self);
            if (rc)
                return rc;
            continue;
        }
        /* Take what is already queued without a poll: under load the next
         * event is usually there, and a poll per event cost a subscriber
         * more than decoding it. Poll only when the queue is empty. */
        zmq_msg_t topic, body;
        zmq_msg_init(&topic);
        if (zmq_msg_recv(&topic, self->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&topic);
            if (errno != EAGAIN && errno != EINTR)
                return GS_CLIENT_EIO;
            if (gs_client_cancelled(self->opts.cancel))
                return GS_CLIENT_ECANCELLED;
            int64_t left = deadline == INT64_MAX ? -1 : deadline - gs_client_mono_ms();
            if (left < 0 && deadline != INT64_MAX)
                return 1;
            /* forever, or in slices when there is a cancel flag to watch */
            long wait = left < 0 ? (self->opts.cancel ? GS_CLIENT_SLICE_MS : -1)
                                 : gs_client_wait_ms(left, self->opts.cancel);
            zmq_pollitem_t it[2] = { { self->sock, 0, ZMQ_POLLIN, 0 },
                                     { self->watch.pair, 0, ZMQ_POLLIN, 0 } };
            int n = zmq_poll(it, 2, wait);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return GS_CLIENT_EIO;
            if (it[1].revents) {
                gs_watch_drain(&self->watch);
                if (self->watch.refused) {
                    gs_watch_refusal(&self->watch, self->opts.curve.server_public[0] != 0,
                                    "the feed endpoint", self->opts.err);
                    return GS_CLIENT_EAUTH;
                }
            }
            if (n == 0 && wait == left)
                return 1;
            continue;
        }
        zmq_msg_init(&body);
        if (zmq_msg_more(&topic) && zmq_msg_recv(&body, self->sock, 0) >= 0) {
            int rc = s_on_live(self, zmq_msg_data(&body), zmq_msg_size(&body));
            if (rc) {
                zmq_msg_close(&topic);
                zmq_msg_close(&body);
                return rc;
            }
        }
        zmq_msg_close(&topic);
        zmq_msg_close(&body);
    }
    *ev = s_queue_pop(self);
    return 0;
}

int
gs_sub_silence(gs_sub_t *self, int64_t warn_ms, char *msg, size_t size)
{
    if (warn_ms <= 0)
        return 0;
    int64_t now = gs_client_mono_ms(), oldest = now;
    for (size_t i = 0; i < self->n; i++)
        if (self->heard[i] < oldest)
            oldest = self->heard[i];
    if (now - oldest < warn_ms) {
        self->warned = 0;   /* heard again: the next silence warns at once */
        return 0;
    }
    if (self->warned && now - self->warned < warn_ms)
        return 0;
    self->warned = now;
    snprintf(msg, size, "no heartbeat for %lld s: check enrolment (is the key enrolled and "
             "active, and allowed these prefixes?)", (long long) ((now - oldest + 999) / 1000));
    return 1;
}

int
gs_sub_checkpoint(gs_sub_t *self, const char *extra)
{
    if (!self->checkpoint)
        return GS_CLIENT_EINVAL;
    if (extra)
        snprintf(self->extra, sizeof self->extra, "%s", extra);
    const char *pf[S_MAX_SUB_PREFIXES];
    s_prefix_list(self, pf);
    return gs_checkpoint_write(self->checkpoint, pf, self->delivered, self->n, self->epoch,
                               self->extra);
}

const char *
gs_sub_checkpoint_extra(const gs_sub_t *self)
{
    return self->extra;
}

uint64_t
gs_sub_position(const gs_sub_t *self, size_t i)
{
    return i < self->n ? self->delivered[i] : 0;
}

int
gs_sub_served(const gs_sub_t *self)
{
    for (size_t i = 0; i < self->n; i++)
        if (!self->served[i])
            return 0;
    return 1;
}

size_t
gs_sub_count(const gs_sub_t *self)
{
    return self->n;
}

const char *
gs_sub_topic(const gs_sub_t *self, size_t i)
{
    return i < self->n ? self->topic[i] : NULL;
}

const char *
gs_sub_prefix(const gs_sub_t *self, size_t i)
{
    return i < self->n ? self->prefix[i] : NULL;
}

int
gs_sub_wants(const gs_sub_t *self, size_t i, const Gridsync__V1__ChangeEvent *ev)
{
    return i < self->n && s_wants(self, i, ev);
}

uint64_t
gs_sub_head(const gs_sub_t *self)
{
    return self->head;
}

uint64_t
gs_sub_epoch(const gs_sub_t *self)
{
    return self->epoch;
}

int
gs_sub_lineage(const gs_sub_t *self, gs_sub_lineage_t *out)
{
    if (!self->lineage_bad)
        return 0;
    if (out)
        *out = self->lineage;
    return 1;
}

int
gs_sub_rebaseline(gs_sub_t *self)
{
    s_queue_drop(self);
    for (size_t i = 0; i < self->n; i++)
        self->known[i] = self->delivered[i] = 0;
    self->epoch = self->broker_epoch;
    self->head = 0;
    self->lineage_bad = 0;
    memset(&self->lineage, 0, sizeof self->lineage);
    /* the live feed stays subscribed; its copies of what is pulled here
     * are dropped as duplicates */
    gs_client_walk_destroy(&self->walk);
    self->catchup = 0;
    return s_catchup_ahead(self);
}

void
gs_sub_stats(const gs_sub_t *self, gs_sub_stats_t *st)
{
    *st = self->stats;
}

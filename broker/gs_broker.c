/*
 * gs_broker: gridsyncd's threads and sockets. See gs_broker.h for the map.
 *
 * Hand-offs between threads carry a pointer in an inproc message: the
 * decoded request (and the arena it lives in) moves from the frontend to a
 * worker and the reply moves back, without copying. Whoever receives a
 * pointer owns it. A NULL pointer is a control message ("drain" to a worker,
 * "done" back from it).
 */
#include "gs_broker.h"

#include <czmq.h>
#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "gs_arena.h"
#include "gs_auth.h"
#include "gs_log.h"
#include "gs_metrics.h"
#include "gs_prescan.h"
#include "gs_privacy.h"
#include "gs_store.h"
#include "gs_thread.h"
#include "gs_validate.h"
#include "gs_wire.h"

#define S_EP_WRITER "inproc://gs-writer"
#define S_EP_READERS "inproc://gs-readers"
#define S_EP_REPLIES "inproc://gs-replies"
#define S_EP_EVENTS "inproc://gs-events"
#define S_MAX_PREFIXES 64           /* prefixes in one sync/snapshot request */
#define S_REPLY_BUDGET (4u << 20)   /* bytes of events or records per reply */
#define S_MAX_SUBS 4096             /* distinct live-feed prefixes tracked */

/* Where a reply goes. */
enum { S_TO_ROUTER = 0, S_TO_ADMIN = 1 };

/* A request on its way from the frontend to a worker. */
typedef struct s_job {
    zmq_msg_t identity;         /* ROUTER routing id of the client */
    int req_style;              /* 1: client used REQ; reply needs the empty delimiter */
    int target;                 /* S_TO_ROUTER or S_TO_ADMIN */
    uint64_t request_id;        /* echoed in the reply */
    gs_arena_t *arena;          /* owns the decoded request */
    Gridsync__V1__Request *req; /* decoded request (device side) */
    Gridsync__V1__AdminRequest *admin; /* decoded request (admin side) */
    int64_t recv_us;            /* monotonic receive time, for ack latency */
    gs_prepared_t *prepared;    /* uploads: validated, packed, hashed by the frontend */
    char **prefixes;            /* the sender's grid prefixes (arena); NULL = any */
    size_t n_prefixes;          /* how many */
} s_job_t;

/* A reply on its way back to the frontend. */
typedef struct s_reply {
    zmq_msg_t identity;         /* moved from the job */
    int req_style;              /* as in the job */
    int target;                 /* as in the job */
    zmq_msg_t body;             /* packed Reply / AdminReply */
    int64_t recv_us;            /* as in the job; 0 = no latency sample */
} s_reply_t;

/* One subscribed live-feed prefix. */
typedef struct s_sub {
    char prefix[GS_GRID_LEN + 1];   /* as subscribed */
    int level;                      /* gs_level_of_len, -1 if not a level */
    uint64_t last_seq;              /* last event published under it */
} s_sub_t;

/* Who follows what on the live feed (secure mode): each authorised
 * subscription, by the device id of its CURVE key. Rechecked against the
 * registry every heartbeat, so a revocation reaches open connections. */
typedef struct s_follower {
    char device_id[GS_ID_MAX + 1];  /* registry id of the subscriber's key */
    char prefix[GS_GRID_LEN + 1];   /* the prefix it was allowed */
} s_follower_t;

typedef struct s_followers {
    s_follower_t *v;                /* S_MAX_SUBS entries */
    size_t n;                       /* in use */
} s_followers_t;

struct gs_broker {
    gs_config_t cfg;                /* effective settings */
    gs_limits_t limits;             /* validation limits derived from cfg */
    gs_store_t *store;              /* the one store */
    void *ctx;                      /* ZeroMQ context (CZMQ's, for zauth) */
    void *router;                   /* upload endpoint */
    void *xpub;                     /* feed endpoint (publisher thread after start) */
    void *admin;                    /* admin endpoint */
    void *to_writer;                /* PAIR, frontend side */
    void *to_readers;               /* PUSH, frontend side */
    void *replies;                  /* PULL, frontend side */
    void *to_publisher;             /* PAIR, writer side (bound here) */
    uint8_t server_secret[32];      /* CURVE secret, to open the feed socket again */
    char feed_bound[256];           /* resolved feed endpoint, to bind it again */
    int http_fd;                    /* metrics listener or -1 */
    int http_port;                  /* bound metrics port */
    pthread_t metrics_thread;       /* serves http_fd, so a slow scraper stalls only it */
    int metrics_running;            /* metrics_thread was started */
    int metrics_stop[2];            /* self-pipe that stops metrics_thread */
    char admin_path[320];           /* ipc socket file to remove at exit, or "" */
    int sig_pipe[2];                /* self-pipe for stop requests */
    pthread_t writer, publisher;    /* worker threads */
    pthread_t *readers;             /* cfg.readers threads */
    s_job_t **wjobs;                /* the writer's group, cfg.batch_max_records + 1 */
    gs_upload_t *wups;              /* and its uploads, allocated before it starts */
    int threads_started;            /* how many of the above run */
    int secure;                     /* CURVE on client-facing TCP sockets */
    gs_auth_t *auth;                /* ZAP handler (secure mode) */
    char server_public[41];         /* broker public key, Z85 */
    gs_metrics_t metrics;           /* counters, shared by all threads */
    atomic_uint_fast64_t head_seq;  /* last committed seq (writer updates) */
    atomic_int subscriptions;       /* distinct prefixes (publisher updates) */
    atomic_int_fast64_t pending;    /* records handed to the writer, not yet answered */
};

static gs_broker_t *s_signal_broker;    /* for the signal handler */

static int64_t
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
s_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- pointer messages ---------------------------------------------------- */

static int
s_send_ptr(void *sock, void *p)
{
    return zmq_send(sock, &p, sizeof p, 0) == (int) sizeof p ? 0 : -1;
}

/* Receive a pointer; returns 0 and sets *p, or -1 (EAGAIN, ETERM...). */
static int
s_recv_ptr(void *sock, void **p, int flags)
{
    void *v = NULL;
    int n = zmq_recv(sock, &v, sizeof v, flags);
    if (n != (int) sizeof v)
        return -1;
    *p = v;
    return 0;
}

static void
s_job_destroy(s_job_t **job_p)
{
    if (!job_p || !*job_p)
        return;
    s_job_t *job = *job_p;
    zmq_msg_close(&job->identity);
    gs_arena_destroy(&job->arena);
    free(job);
    *job_p = NULL;
}

/* Make a reply for job from a finished buffer (copied into a zmq message). */
static s_reply_t *
s_reply_new(s_job_t *job, const uint8_t *data, size_t len)
{
    s_reply_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    zmq_msg_init(&r->identity);
    zmq_msg_move(&r->identity, &job->identity);
    r->req_style = job->req_style;
    r->target = job->target;
    r->recv_us = job->recv_us;
    zmq_msg_init_size(&r->body, len);
    if (len)
        memcpy(zmq_msg_data(&r->body), data, len);
    return r;
}

static void
s_reply_destroy(s_reply_t **r_p)
{
    if (!r_p || !*r_p)
        return;
    zmq_msg_close(&(*r_p)->identity);
    zmq_msg_close(&(*r_p)->body);
    free(*r_p);
    *r_p = NULL;
}

/* Pack an error Reply (or AdminReply) for request_id into b. */
static void
s_error_pack(gs_wbuf_t *b, int admin, uint64_t request_id, int reason, const char *msg)
{
    Gridsync__V1__Error err = GRIDSYNC__V1__ERROR__INIT;
    err.reason = (Gridsync__V1__Reason) reason;
    err.message = (char *) msg;
    gs_wbuf_uint_field(b, 1, request_id);
    /* Reply.error is field 5, AdminReply.error field 7 */
    gs_wbuf_message_field(b, admin ? 7 : 5, &err.base);
}

/* Is prefix at or below one of allowed? */
static int
s_prefix_allowed(const char *prefix, char **allowed, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strncmp(prefix, allowed[i], strlen(allowed[i])) == 0)
            return 1;
    return 0;
}

/* ---- writer thread -------------------------------------------------------- */

static void
s_count_reply_error(gs_broker_t *b, int reason)
{
    if (reason >= 0 && reason < GS_REASONS_MAX)
        atomic_fetch_add(&b->metrics.request_errors[reason], 1);
}

static void *
s_writer_main(void *arg)
{
    gs_broker_t *b = arg;
    void *in = zmq_socket(b->ctx, ZMQ_PAIR);
    void *out = zmq_socket(b->ctx, ZMQ_PUSH);
    zmq_connect(in, S_EP_WRITER);
    zmq_connect(out, S_EP_REPLIES);
    size_t cap = (size_t) b->cfg.batch_max_records + 1;
    s_job_t **jobs = b->wjobs;
    gs_upload_t *ups = b->wups;
    gs_wbuf_t wb;
    gs_wbuf_init(&wb);
    int draining = 0;
    int last_rc = 0;

    while (!draining) {
        void *p;
        if (s_recv_ptr(in, &p, 0)) {
            if (errno == EINTR)
                continue;   /* not a stop: only the frontend's NULL is one */
            break;
        }
        if (!p) {
            draining = 1;
            break;
        }
        size_t n = 0, records = 0;
        jobs[n++] = p;
        records += jobs[0]->req->upload->n_records;
        int64_t deadline = s_mono_us() + b->cfg.batch_linger_us;
        /* group commit: take whatever else is pending, within the bounds */
        while (n < cap && records < (size_t) b->cfg.batch_max_records) {
            if (s_recv_ptr(in, &p, ZMQ_DONTWAIT)) {
                int64_t left = deadline - s_mono_us();
                if (errno != EAGAIN || left <= 0)
                    break;
                zmq_pollitem_t it = { in, 0, ZMQ_POLLIN, 0 };
                if (zmq_poll(&it, 1, (long) ((left + 999) / 1000)) <= 0)
                    break;
                continue;
            }
            if (!p) {
                draining = 1; /* commit this batch, then stop */
                break;
            }
            jobs[n++] = p;
            records += ((s_job_t *) p)->req->upload->n_records;
        }
        for (size_t i = 0; i < n; i++) {
            Gridsync__V1__Upload *up = jobs[i]->req->upload;
            ups[i] = (gs_upload_t) {
                .device_id = up->device_id,
                .upload_id = up->upload_id,
                .records = up->records,
                .n_records = up->n_records,
                .alloc = gs_arena_allocator(jobs[i]->arena),
                .prefixes = (const char *const *) jobs[i]->prefixes,
                .prepared = jobs[i]->prepared,
                .n_prefixes = jobs[i]->n_prefixes,
            };
        }
        gs_apply_out_t res;
        memset(&res, 0, sizeof res);
        int64_t t0 = s_mono_us();
        int rc = gs_store_apply(b->store, ups, n, s_now_ms(), &res);
        double secs = (double) (s_mono_us() - t0) / 1e6;
        if (rc == 0) {
            atomic_fetch_add(&b->metrics.commits, 1);
            atomic_fetch_add(&b->metrics.map_grows, res.map_grows);
            gs_hist_observe(&b->metrics.commit_records, (double) records);
            gs_hist_observe(&b->metrics.commit_seconds, secs);
            atomic_store(&b->head_seq, res.head_seq);
            if (last_rc)
                gs_log(GS_LOG_INFO, "store_recovered", "head_seq=%llu",
                       (unsigned long long) res.head_seq);
            for (size_t i = 0; i < n; i++) {
                gs_upload_result_t *u = &res.uploads[i];
                gs_wbuf_reset(&wb);
                gs_wbuf_uint_field(&wb, 1, jobs[i]->request_id);
                gs_wbuf_bytes_field(&wb, 2, u->ack, u->ack_len, 1);
                s_reply_t *r = s_reply_new(jobs[i], wb.data, wb.len);
                if (u->replayed)
                    atomic_fetch_add(&b->metrics.uploads_replayed, 1);
                else
                    atomic_fetch_add(&b->metrics.uploads_acked, 1);
                for (int k = 1; k < 6; k++)
                    atomic_fetch_add(&b->metrics.records[k], u->counts[k]);
                if (r && s_send_ptr(out, r))
                    s_reply_destroy(&r);
            }
            if (res.n_events) {
                gs_apply_out_t *ev = malloc(sizeof *ev);
                if (ev) {
                    *ev = res;
                    if (s_send_ptr(b->to_publisher, ev)) {
                        gs_apply_out_clear(ev);
                        free(ev);
                    }
                } else {
                    gs_apply_out_clear(&res);
                }
            } else {
                gs_apply_out_clear(&res);
            }
            gs_log(GS_LOG_DEBUG, "commit", "uploads=%zu records=%zu events=%zu ms=%.3f",
                   n, records, res.n_events, secs * 1e3);
        } else {
            atomic_fetch_add(&b->metrics.commit_failures, 1);
            int reason = rc == GS_EFULL ? GRIDSYNC__V1__REASON__REASON_STORAGE_FULL
                                        : GRIDSYNC__V1__REASON__REASON_INTERNAL;
            const char *msg = rc == GS_EFULL
                                  ? "storage full: nothing was stored; retry later"
                                  : "the broker could not store this upload; retry later";
            if (rc != last_rc)
                gs_log(GS_LOG_ERROR, "commit_failed", "error=\"%s\" uploads=%zu records=%zu",
                       gs_store_strerror(rc), n, records);
            for (size_t i = 0; i < n; i++) {
                gs_wbuf_reset(&wb);
                s_error_pack(&wb, 0, jobs[i]->request_id, reason, msg);
                s_count_reply_error(b, reason);
                s_reply_t *r = s_reply_new(jobs[i], wb.data, wb.len);
                if (r)
                    r->recv_us = 0;
                if (r && s_send_ptr(out, r))
                    s_reply_destroy(&r);
            }
        }
        last_rc = rc;
        atomic_fetch_sub(&b->pending, (int64_t) records);
        for (size_t i = 0; i < n; i++)
            s_job_destroy(&jobs[i]);
    }
    /* tell the frontend every ack of ours is queued ahead of this */
    s_send_ptr(out, NULL);
    gs_wbuf_deinit(&wb);
    int linger = -1;
    zmq_setsockopt(out, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(in);
    zmq_close(out);
    return NULL;
}

/* ---- publisher thread ----------------------------------------------------- */

static void
s_feed_send(gs_broker_t *b, const char *topic, size_t topic_len, const uint8_t *body,
            size_t len)
{
    /* XPUB never blocks: at a subscriber's HWM the message is dropped for
     * that subscriber, who detects the gap (prev_seq) and repairs it. */
    if (!b->xpub)
        return;     /* the feed could not be bound again (logged) */
    zmq_send(b->xpub, topic, topic_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(b->xpub, body, len, ZMQ_DONTWAIT);
}

static void
s_publish_events(gs_broker_t *b, gs_apply_out_t *ev, s_sub_t *subs, size_t nsubs,
                 gs_wbuf_t *wb, gs_wbuf_t *tmp)
{
    for (size_t i = 0; i < ev->n_events; i++) {
        gs_event_out_t *e = &ev->events[i];
        const uint8_t *data = e->data;
        size_t len = e->len;
        gs_wbuf_reset(tmp);
        if (!b->cfg.feed_restricted && gs_event_strip_restricted(data, len, tmp) == 1) {
            data = tmp->data;
            len = tmp->len;
        }
        gs_wbuf_reset(wb);
        gs_wbuf_bytes_field(wb, 1, data, len, 1); /* FeedMessage.event */
        s_feed_send(b, e->grid, GS_GRID_LEN, wb->data, wb->len);
        for (size_t k = 0; k < nsubs; k++)
            if (strncmp(e->grid, subs[k].prefix, strlen(subs[k].prefix)) == 0)
                subs[k].last_seq = e->seq;
    }
    atomic_fetch_add(&b->metrics.feed_events, ev->n_events);
}

static void
s_heartbeats(gs_broker_t *b, s_sub_t *subs, size_t nsubs, uint64_t head, gs_wbuf_t *wb)
{
    for (size_t k = 0; k < nsubs; k++) {
        Gridsync__V1__Heartbeat hb = GRIDSYNC__V1__HEARTBEAT__INIT;
        hb.head_seq = head;
        hb.prefix = subs[k].prefix;
        hb.prefix_last_seq = subs[k].last_seq;
        hb.sent_at = s_now_ms();
        gs_store_epoch(b->store, &hb.store_epoch); /* 0 if the store has none */
        gs_wbuf_reset(wb);
        gs_wbuf_message_field(wb, 2, &hb.base); /* FeedMessage.heartbeat */
        s_feed_send(b, subs[k].prefix, strlen(subs[k].prefix), wb->data, wb->len);
    }
    atomic_fetch_add(&b->metrics.feed_heartbeats, nsubs);
}

/* In secure mode (XPUB_MANUAL) a subscription takes effect only when the
 * subscriber's registry entry allows the prefix; returns 1 when it may. */
static int
s_subscription_allowed(gs_broker_t *b, zmq_msg_t *m, const char *prefix)
{
    const char *id = zmq_msg_gets(m, "device_id");
    const char *why = NULL;
    Gridsync__V1__Device *dev = NULL;
    if (!id || gs_store_device_get(b->store, id, &dev))
        why = "not enrolled";
    else if (dev->status != GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_ACTIVE)
        why = "revoked";
    else if (gs_level_of_len(strlen(prefix)) < 0)
        why = "prefix not at a level boundary (0,2,4,6,9,12,15 digits)";
    else if (dev->role != GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN &&
             !s_prefix_allowed(prefix, dev->prefixes, dev->n_prefixes))
        why = "outside the assigned prefixes";
    if (why) {
        atomic_fetch_add(&b->metrics.feed_refused, 1);
        gs_log(GS_LOG_WARN, "feed_subscribe_refused", "device=%s prefix=\"%s\" reason=\"%s\"",
               id ? id : "-", prefix, why);
    }
    if (dev)
        gridsync__v1__device__free_unpacked(dev, NULL);
    return why == NULL;
}

/* A (un)subscription arrived on the XPUB: authorise it (secure mode) and
 * keep the distinct prefix set for heartbeats. */
static void
s_followers_note(s_followers_t *f, zmq_msg_t *m, const char *prefix, int subscribe)
{
    const char *id = zmq_msg_gets(m, "device_id");
    if (!id || strlen(id) > GS_ID_MAX)
        return;
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->v[i].device_id, id) == 0 && strcmp(f->v[i].prefix, prefix) == 0) {
            if (!subscribe)
                f->v[i] = f->v[--f->n];
            return;
        }
    }
    if (subscribe && f->n < S_MAX_SUBS) {
        snprintf(f->v[f->n].device_id, sizeof f->v[f->n].device_id, "%s", id);
        snprintf(f->v[f->n].prefix, sizeof f->v[f->n].prefix, "%s", prefix);
        f->n++;
    }
}

static size_t
s_subscription(gs_broker_t *b, zmq_msg_t *m, s_sub_t *subs, size_t nsubs,
               s_followers_t *fol)
{
    const uint8_t *msg = zmq_msg_data(m);
    size_t len = zmq_msg_size(m);
    gs_log(GS_LOG_DEBUG, "feed_control", "bytes=%zu kind=%d", len, len ? msg[0] : -1);
    if (len < 1 || len - 1 > GS_GRID_LEN || (msg[0] != 0 && msg[0] != 1))
        return nsubs;
    char prefix[GS_GRID_LEN + 1];
    memcpy(prefix, msg + 1, len - 1);
    prefix[len - 1] = 0;
    if (b->secure) {
        if (msg[0] == 1) {
            if (!s_subscription_allowed(b, m, prefix))
                return nsubs;
            zmq_setsockopt(b->xpub, ZMQ_SUBSCRIBE, prefix, len - 1);
            s_followers_note(fol, m, prefix, 1);
        } else {
            zmq_setsockopt(b->xpub, ZMQ_UNSUBSCRIBE, prefix, len - 1);
            s_followers_note(fol, m, prefix, 0);
            return nsubs; /* others may still follow it: keep its heartbeat */
        }
    }
    size_t k;
    for (k = 0; k < nsubs; k++)
        if (strcmp(subs[k].prefix, prefix) == 0)
            break;
    if (msg[0] == 1 && k == nsubs && nsubs < S_MAX_SUBS) {
        s_sub_t *s = &subs[nsubs++];
        memcpy(s->prefix, prefix, len);
        s->level = gs_level_of_len(len - 1);
        s->last_seq = 0;
        if (s->level >= 0)
            gs_store_prefix_last(b->store, prefix, &s->last_seq);
        gs_log(GS_LOG_INFO, "feed_subscribe", "prefix=\"%s\" last_seq=%llu", prefix,
               (unsigned long long) s->last_seq);
    } else if (msg[0] == 0 && k < nsubs) {
        gs_log(GS_LOG_INFO, "feed_unsubscribe", "prefix=\"%s\"", prefix);
        subs[k] = subs[--nsubs];
    }
    atomic_store(&b->subscriptions, (int) nsubs);
    atomic_store(&b->metrics.feed_subscriptions, (int64_t) nsubs);
    return nsubs;
}

static void *s_xpub_open(gs_broker_t *b, const char *endpoint);

/* Does the registry still let every follower follow its prefix? The first
 * that may not (revoked, removed, or its assignment narrowed) is named. */
static const s_follower_t *
s_followers_stale(gs_broker_t *b, const s_followers_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        Gridsync__V1__Device *dev = NULL;
        int ok = gs_store_device_get(b->store, f->v[i].device_id, &dev) == 0 &&
                 dev->status == GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_ACTIVE &&
                 (dev->role == GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN ||
                  s_prefix_allowed(f->v[i].prefix, dev->prefixes, dev->n_prefixes));
        if (dev)
            gridsync__v1__device__free_unpacked(dev, NULL);
        if (!ok)
            return &f->v[i];
    }
    return NULL;
}

/* ZeroMQ cannot drop one peer of an XPUB socket, so a follower that lost
 * its rights is cut off by closing the socket and binding a new one on the
 * same endpoint. Every subscriber's connection drops; ZeroMQ reconnects
 * them, the ZAP handler refuses the revoked key at the new handshake, and
 * the others subscribe again and repair what they missed meanwhile from
 * the sync service, as after any gap. Returns 0, or -1 when the endpoint
 * could not be bound again (the feed is then down: logged as an error). */
static int
s_xpub_rebind(gs_broker_t *b, const s_follower_t *why)
{
    gs_log(GS_LOG_WARN, "feed_rebind", "reason=revocation device=%s prefix=\"%s\"",
           why->device_id, why->prefix);
    int zero = 0;
    zmq_setsockopt(b->xpub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(b->xpub);
    b->xpub = NULL;
    /* the old listener closes in ZeroMQ's I/O thread: the port may be busy
     * for a moment */
    for (int attempt = 0; attempt < 300 && !b->xpub; attempt++) {
        b->xpub = s_xpub_open(b, b->feed_bound);
        if (!b->xpub) {
            struct timespec ts = { 0, 10 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
    }
    atomic_fetch_add(&b->metrics.feed_rebinds, 1);
    if (!b->xpub) {
        gs_log(GS_LOG_ERROR, "feed_rebind_failed", "endpoint=\"%s\" error=\"%s\"",
               b->feed_bound, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

static void *
s_publisher_main(void *arg)
{
    gs_broker_t *b = arg;
    void *in = zmq_socket(b->ctx, ZMQ_PAIR);
    zmq_connect(in, S_EP_EVENTS);
    s_sub_t *subs = calloc(S_MAX_SUBS, sizeof *subs);
    size_t nsubs = 0;
    s_followers_t fol = { calloc(S_MAX_SUBS, sizeof *fol.v), 0 };
    gs_wbuf_t wb, tmp;
    gs_wbuf_init(&wb);
    gs_wbuf_init(&tmp);
    int64_t next_hb = s_mono_us() + b->cfg.heartbeat_ms * 1000;
    for (;;) {
        zmq_pollitem_t items[2] = { { in, 0, ZMQ_POLLIN, 0 }, { b->xpub, 0, ZMQ_POLLIN, 0 } };
        int64_t wait_us = next_hb - s_mono_us();
        if (wait_us < 0)
            wait_us = 0;
        if (zmq_poll(items, b->xpub ? 2 : 1, (long) (wait_us / 1000)) < 0 && errno != EINTR)
            break;
        if (items[1].revents & ZMQ_POLLIN) {
            for (;;) {
                zmq_msg_t m;
                zmq_msg_init(&m);
                if (zmq_msg_recv(&m, b->xpub, ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&m);
                    break;
                }
                nsubs = s_subscription(b, &m, subs, nsubs, &fol);
                zmq_msg_close(&m);
            }
        }
        if (items[0].revents & ZMQ_POLLIN) {
            void *p;
            int stop = 0;
            while (s_recv_ptr(in, &p, ZMQ_DONTWAIT) == 0) {
                if (!p) {
                    stop = 1;
                    break;
                }
                gs_apply_out_t *ev = p;
                s_publish_events(b, ev, subs, nsubs, &wb, &tmp);
                gs_apply_out_clear(ev);
                free(ev);
            }
            if (stop)
                break;
        }
        if (s_mono_us() >= next_hb) {
            const s_follower_t *stale = b->secure && b->xpub ? s_followers_stale(b, &fol) : NULL;
            if (stale) {
                s_xpub_rebind(b, stale);
                fol.n = 0;      /* the survivors subscribe again */
            }
            s_heartbeats(b, subs, nsubs, atomic_load(&b->head_seq), &wb);
            next_hb = s_mono_us() + b->cfg.heartbeat_ms * 1000;
        }
    }
    gs_wbuf_deinit(&wb);
    gs_wbuf_deinit(&tmp);
    free(subs);
    free(fol.v);
    zmq_close(in);
    return NULL;
}

/* ---- reader threads ------------------------------------------------------- */

typedef struct s_sync_ctx {
    gs_wbuf_t *out;             /* SyncResponse being built */
    gs_wbuf_t *tmp;             /* scratch for stripping */
    int omit_restricted;        /* drop Person.restricted */
    uint64_t last_seq;          /* last event included */
    size_t count;               /* events included */
    int full;                   /* stopped at the byte budget */
} s_sync_ctx_t;

static int
s_sync_event(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    (void) grid;
    s_sync_ctx_t *c = arg;
    if (c->count > 0 && c->out->len + len > S_REPLY_BUDGET) {
        c->full = 1;
        return 1;
    }
    if (c->omit_restricted) {
        gs_wbuf_reset(c->tmp);
        if (gs_event_strip_restricted(data, len, c->tmp) == 1) {
            data = c->tmp->data;
            len = c->tmp->len;
        }
    }
    gs_wbuf_bytes_field(c->out, 1, data, len, 1);
    c->last_seq = seq;
    c->count++;
    return 0;
}

/* Check a request's prefixes. Returns 0 or a reason with msg filled. */
static int
s_prefixes_check(char **prefixes, size_t n, char *msg, size_t msg_size)
{
    if (n == 0) {
        snprintf(msg, msg_size, "give at least one grid-code prefix (\"\" means everything)");
        return GRIDSYNC__V1__REASON__REASON_BAD_REQUEST;
    }
    if (n > S_MAX_PREFIXES) {
        snprintf(msg, msg_size, "at most %d prefixes per request, got %zu", S_MAX_PREFIXES, n);
        return GRIDSYNC__V1__REASON__REASON_BAD_REQUEST;
    }
    for (size_t i = 0; i < n; i++) {
        gs_verdict_t v;
        if (gs_prefix_check(prefixes[i], &v)) {
            snprintf(msg, msg_size, "prefix %zu: %s", i + 1, v.message);
            return v.reason;
        }
    }
    return 0;
}

/* Shared checks of a sync or snapshot request: the prefixes, and the page
 * size (0 or above max means max). Returns 0, or 1 with an error packed
 * into reply. */
static int
s_read_request_check(gs_broker_t *b, s_job_t *job, char **prefixes, size_t n,
                     uint32_t want, int64_t max, gs_wbuf_t *reply, uint32_t *limit)
{
    char msg[GS_MSG_MAX];
    int reason = s_prefixes_check(prefixes, n, msg, sizeof msg);
    if (reason) {
        s_error_pack(reply, 0, job->request_id, reason, msg);
        s_count_reply_error(b, reason);
        return 1;
    }
    *limit = (want == 0 || want > (uint32_t) max) ? (uint32_t) max : want;
    return 0;
}

static void
s_serve_sync(gs_broker_t *b, s_job_t *job, gs_wbuf_t *reply, gs_wbuf_t *body, gs_wbuf_t *tmp)
{
    Gridsync__V1__SyncRequest *rq = job->req->sync;
    uint32_t limit;
    if (s_read_request_check(b, job, rq->prefixes, rq->n_prefixes, rq->limit,
                             b->cfg.sync_max_events, reply, &limit))
        return;
    s_sync_ctx_t c = { .out = body, .tmp = tmp,
                       .omit_restricted = !b->cfg.feed_restricted || rq->omit_restricted };
    uint64_t next = rq->since_seq, head = 0;
    int rc = gs_store_events(b->store, (const char *const *) rq->prefixes, rq->n_prefixes,
                             rq->since_seq, limit, s_sync_event, &c, &next, &head);
    if (rc < 0) {
        gs_log(GS_LOG_ERROR, "sync_failed", "error=\"%s\"", gs_store_strerror(rc));
        s_error_pack(reply, 0, job->request_id, GRIDSYNC__V1__REASON__REASON_INTERNAL,
                     "the change log could not be read; retry later");
        s_count_reply_error(b, GRIDSYNC__V1__REASON__REASON_INTERNAL);
        return;
    }
    if (c.full)
        next = c.last_seq; /* resume right after the last event sent */
    gs_wbuf_uint_field(body, 2, next);
    gs_wbuf_uint_field(body, 3, head);
    uint64_t epoch = 0;
    gs_store_epoch(b->store, &epoch);
    gs_wbuf_uint_field(body, 20, epoch); /* SyncResponse.store_epoch */
    gs_wbuf_uint_field(reply, 1, job->request_id);
    gs_wbuf_bytes_field(reply, 3, body->data, body->len, 1);
    atomic_fetch_add(&b->metrics.sync_requests, 1);
    atomic_fetch_add(&b->metrics.sync_events, c.count);
}

typedef struct s_snap_ctx {
    gs_wbuf_t *out;             /* SnapshotResponse being built */
    gs_wbuf_t *entry;           /* one SnapshotEntry */
    gs_wbuf_t *tmp;             /* scratch for stripping */
    int omit_restricted;        /* drop Person.restricted */
} s_snap_ctx_t;

static void
s_entry_pack(gs_wbuf_t *e, const gs_record_view_t *r, int omit, gs_wbuf_t *tmp)
{
    const uint8_t *data = r->data;
    size_t len = r->len;
    if (omit) {
        gs_wbuf_reset(tmp);
        if (gs_recbytes_strip_restricted(data, len, tmp) == 1) {
            data = tmp->data;
            len = tmp->len;
        }
    }
    gs_wbuf_bytes_field(e, 1, r->grid, strlen(r->grid), 0);
    gs_wbuf_uint_field(e, 2, (uint64_t) r->kind);
    gs_wbuf_bytes_field(e, 3, r->record_key, strlen(r->record_key), 0);
    gs_wbuf_uint_field(e, 4, r->version);
    gs_wbuf_uint_field(e, 5, r->seq);
    gs_wbuf_bytes_field(e, 6, data, len, 1);
}

static int
s_snap_record(void *arg, const gs_record_view_t *r)
{
    s_snap_ctx_t *c = arg;
    gs_wbuf_reset(c->entry);
    s_entry_pack(c->entry, r, c->omit_restricted, c->tmp);
    gs_wbuf_bytes_field(c->out, 1, c->entry->data, c->entry->len, 1);
    return 0;
}

static void
s_serve_snapshot(gs_broker_t *b, s_job_t *job, gs_wbuf_t *reply, gs_wbuf_t *body,
                 gs_wbuf_t *tmp)
{
    Gridsync__V1__SnapshotRequest *rq = job->req->snapshot;
    uint32_t limit;
    if (s_read_request_check(b, job, rq->prefixes, rq->n_prefixes, rq->limit,
                             b->cfg.snapshot_max_records, reply, &limit))
        return;
    gs_wbuf_t entry;
    gs_wbuf_init(&entry);
    s_snap_ctx_t c = { .out = body, .entry = &entry, .tmp = tmp,
                       .omit_restricted = !b->cfg.feed_restricted || rq->omit_restricted };
    uint8_t *next = NULL;
    size_t next_len = 0;
    uint64_t snap_seq = 0;
    int rc = gs_store_snapshot(b->store, (const char *const *) rq->prefixes, rq->n_prefixes,
                               rq->cursor.data, rq->cursor.len, limit, s_snap_record, &c,
                               &next, &next_len, &snap_seq);
    gs_wbuf_deinit(&entry);
    if (rc < 0) {
        free(next);
        int r = rc == GS_EINVAL ? GRIDSYNC__V1__REASON__REASON_BAD_REQUEST
                                : GRIDSYNC__V1__REASON__REASON_INTERNAL;
        s_error_pack(reply, 0, job->request_id, r,
                     rc == GS_EINVAL ? "snapshot cursor is not valid for these prefixes"
                                     : "the store could not be read; retry later");
        s_count_reply_error(b, r);
        return;
    }
    gs_wbuf_uint_field(body, 2, snap_seq);
    gs_wbuf_bytes_field(body, 3, next, next_len, 0);
    free(next);
    uint64_t epoch = 0;
    gs_store_epoch(b->store, &epoch);
    gs_wbuf_uint_field(body, 20, epoch); /* SnapshotResponse.store_epoch */
    gs_wbuf_uint_field(reply, 1, job->request_id);
    gs_wbuf_bytes_field(reply, 4, body->data, body->len, 1);
    atomic_fetch_add(&b->metrics.snapshot_requests, 1);
}

/* ---- admin requests (reader threads) -------------------------------------- */

typedef struct s_stats_ctx {
    gs_wbuf_t *out;             /* StatsReply being built */
    gs_wbuf_t *cell;            /* one CellStats */
} s_stats_ctx_t;

static int
s_stats_cell(void *arg, const char *grid, const gs_cell_meta_t *m)
{
    s_stats_ctx_t *c = arg;
    gs_wbuf_reset(c->cell);
    gs_wbuf_bytes_field(c->cell, 1, grid, strlen(grid), 0);
    gs_wbuf_uint_field(c->cell, 2, m->households);
    gs_wbuf_uint_field(c->cell, 3, m->persons);
    gs_wbuf_uint_field(c->cell, 4, m->rentals);
    gs_wbuf_uint_field(c->cell, 5, m->tenants);
    gs_wbuf_uint_field(c->cell, 6, m->voided);
    gs_wbuf_uint_field(c->cell, 7, m->last_seq);
    gs_wbuf_uint_field(c->cell, 8, (uint64_t) m->last_update);
    gs_wbuf_bytes_field(c->out, 1, c->cell->data, c->cell->len, 1);
    return 0;
}

typedef struct s_get_ctx {
    gs_wbuf_t *out;             /* SnapshotEntry being built */
    gs_wbuf_t *tmp;             /* scratch */
    int found;                  /* a record was seen */
} s_get_ctx_t;

static int
s_get_record(void *arg, const gs_record_view_t *r)
{
    s_get_ctx_t *c = arg;
    s_entry_pack(c->out, r, 0, c->tmp);
    c->found = 1;
    return 0;
}

static int
s_device_add(void *arg, const Gridsync__V1__Device *d)
{
    gs_wbuf_message_field(arg, 1, &d->base);
    return 0;
}

static int
s_grid_add(void *arg, const Gridsync__V1__Grid *g)
{
    gs_wbuf_message_field(arg, 1, &g->base);
    return 0;
}

static void
s_serve_admin(gs_broker_t *b, s_job_t *job, gs_wbuf_t *reply, gs_wbuf_t *body, gs_wbuf_t *tmp)
{
    Gridsync__V1__AdminRequest *rq = job->admin;
    int rc = 0, field = 0;
    atomic_fetch_add(&b->metrics.admin_requests, 1);
    switch (rq->body_case) {
    case GRIDSYNC__V1__ADMIN_REQUEST__BODY_STATS: {
        const char *prefix = rq->stats->prefix;
        gs_verdict_t v;
        if (gs_prefix_check(prefix, &v) && strlen(prefix) > 0) {
            /* stats accept any digit prefix, not only level boundaries */
            for (const char *p = prefix; *p; p++)
                if (*p < '0' || *p > '9' || p - prefix >= GS_GRID_LEN) {
                    s_error_pack(reply, 1, rq->request_id,
                                 GRIDSYNC__V1__REASON__REASON_BAD_REQUEST,
                                 "prefix must be up to 15 digits");
                    return;
                }
        }
        gs_wbuf_t cell;
        gs_wbuf_init(&cell);
        s_stats_ctx_t c = { body, &cell };
        rc = gs_store_cells(b->store, prefix, s_stats_cell, &c);
        gs_wbuf_deinit(&cell);
        uint64_t head = 0;
        gs_store_head(b->store, &head);
        gs_wbuf_uint_field(body, 2, head);
        field = 2;
        break;
    }
    case GRIDSYNC__V1__ADMIN_REQUEST__BODY_GET: {
        s_get_ctx_t c = { body, tmp, 0 };
        rc = gs_store_get(b->store, rq->get->kind, rq->get->record_key, s_get_record, &c);
        if (rc == GS_ENOTFOUND) {
            char msg[GS_MSG_MAX];
            snprintf(msg, sizeof msg, "no record with id '%.64s'", rq->get->record_key);
            s_error_pack(reply, 1, rq->request_id, GRIDSYNC__V1__REASON__REASON_NOT_FOUND, msg);
            return;
        }
        field = 3;
        break;
    }
    case GRIDSYNC__V1__ADMIN_REQUEST__BODY_DEVICES:
        rc = gs_store_devices(b->store, s_device_add, body);
        field = 4;
        break;
    case GRIDSYNC__V1__ADMIN_REQUEST__BODY_GRIDS:
        rc = gs_store_grids(b->store, rq->grids->prefix, s_grid_add, body);
        field = 5;
        break;
    case GRIDSYNC__V1__ADMIN_REQUEST__BODY_HEALTH: {
        gs_store_info_t info;
        memset(&info, 0, sizeof info);
        rc = gs_store_info(b->store, &info);
        Gridsync__V1__HealthReply h = GRIDSYNC__V1__HEALTH_REPLY__INIT;
        h.version = "0.1.0";
        h.head_seq = info.head_seq;
        h.records = info.records;
        h.map_size = info.map_size;
        h.map_used = info.map_used;
        h.uptime_ms = s_now_ms() - b->metrics.started_ms;
        h.feed_subscriptions = (uint32_t) atomic_load(&b->subscriptions);
        gs_store_epoch(b->store, &h.store_epoch);
        gs_wbuf_uint_field(reply, 1, rq->request_id);
        gs_wbuf_message_field(reply, 6, &h.base);
        return;
    }
    default:
        s_error_pack(reply, 1, rq->request_id, GRIDSYNC__V1__REASON__REASON_UNKNOWN_TYPE,
                     "admin request carries no known body");
        return;
    }
    if (rc < 0) {
        char msg[GS_MSG_MAX];
        snprintf(msg, sizeof msg, "store: %s", gs_store_strerror(rc));
        s_error_pack(reply, 1, rq->request_id, GRIDSYNC__V1__REASON__REASON_INTERNAL, msg);
        return;
    }
    gs_wbuf_uint_field(reply, 1, rq->request_id);
    gs_wbuf_bytes_field(reply, (uint32_t) field, body->data, body->len, 1);
}

static void *
s_reader_main(void *arg)
{
    gs_broker_t *b = arg;
    void *in = zmq_socket(b->ctx, ZMQ_PULL);
    void *out = zmq_socket(b->ctx, ZMQ_PUSH);
    zmq_connect(in, S_EP_READERS);
    zmq_connect(out, S_EP_REPLIES);
    gs_wbuf_t reply, body, tmp;
    gs_wbuf_init(&reply);
    gs_wbuf_init(&body);
    gs_wbuf_init(&tmp);
    for (;;) {
        void *p;
        if (s_recv_ptr(in, &p, 0)) {
            if (errno == EINTR)
                continue;   /* as in the writer */
            break;
        }
        if (!p)
            break;
        s_job_t *job = p;
        gs_wbuf_reset(&reply);
        gs_wbuf_reset(&body);
        if (job->admin)
            s_serve_admin(b, job, &reply, &body, &tmp);
        else if (job->req->body_case == GRIDSYNC__V1__REQUEST__BODY_SYNC)
            s_serve_sync(b, job, &reply, &body, &tmp);
        else
            s_serve_snapshot(b, job, &reply, &body, &tmp);
        if (reply.failed) {
            gs_wbuf_reset(&reply);
            s_error_pack(&reply, job->admin != NULL, job->request_id,
                         GRIDSYNC__V1__REASON__REASON_INTERNAL, "out of memory; retry later");
        }
        s_reply_t *r = s_reply_new(job, reply.data, reply.len);
        if (r) {
            r->recv_us = 0;
            if (s_send_ptr(out, r))
                s_reply_destroy(&r);
        }
        s_job_destroy(&job);
    }
    s_send_ptr(out, NULL);
    gs_wbuf_deinit(&reply);
    gs_wbuf_deinit(&body);
    gs_wbuf_deinit(&tmp);
    int linger = -1;
    zmq_setsockopt(out, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(in);
    zmq_close(out);
    return NULL;
}

/* ---- frontend ------------------------------------------------------------- */

/* Who sent this request, and may they do it? In secure mode the identity
 * is the "device_id" the ZAP handler attached to the connection; the
 * registry is read again for every request, so a revocation applies to a
 * live connection at its next request. In --insecure-dev mode the upload's
 * own device_id is taken at its word, and an unregistered one may do
 * anything. On success the sender's prefixes are copied into the arena
 * (*prefixes NULL = unrestricted). Returns 0 or a reason with msg set. */
static int
s_authorise(gs_broker_t *b, zmq_msg_t *body, Gridsync__V1__Request *req, gs_arena_t *arena,
            char ***prefixes, size_t *n_prefixes, char *msg, size_t msg_size)
{
    *prefixes = NULL;
    *n_prefixes = 0;
    const char *id = NULL;
    if (b->secure) {
        id = zmq_msg_gets(body, "device_id");
        if (!id) {
            snprintf(msg, msg_size, "connection is not authenticated");
            return GRIDSYNC__V1__REASON__REASON_UNAUTHORISED;
        }
    } else if (req->body_case == GRIDSYNC__V1__REQUEST__BODY_UPLOAD) {
        id = req->upload->device_id;
    }
    Gridsync__V1__Device *dev = NULL;
    int rc = id ? gs_store_device_get(b->store, id, &dev) : GS_ENOTFOUND;
    if (rc) {
        if (!b->secure)
            return 0; /* development mode: unregistered means unrestricted */
        snprintf(msg, msg_size, "device '%.64s' is not enrolled", id);
        return GRIDSYNC__V1__REASON__REASON_UNAUTHORISED;
    }
    int reason = 0;
    if (dev->status != GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_ACTIVE) {
        snprintf(msg, msg_size, "device '%.64s' has been revoked", dev->device_id);
        reason = GRIDSYNC__V1__REASON__REASON_UNAUTHORISED;
    } else if (req->body_case == GRIDSYNC__V1__REQUEST__BODY_UPLOAD) {
        if (dev->role == GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT) {
            snprintf(msg, msg_size, "'%.64s' is a district system; district systems do not upload",
                     dev->device_id);
            reason = GRIDSYNC__V1__REASON__REASON_UNAUTHORISED;
        } else if (strcmp(req->upload->device_id, dev->device_id) != 0) {
            snprintf(msg, msg_size, "upload names device '%.64s' but the key belongs to '%.64s'",
                     req->upload->device_id, dev->device_id);
            reason = GRIDSYNC__V1__REASON__REASON_UNAUTHORISED;
        }
    } else {
        char **want = req->body_case == GRIDSYNC__V1__REQUEST__BODY_SYNC
                          ? req->sync->prefixes : req->snapshot->prefixes;
        size_t nw = req->body_case == GRIDSYNC__V1__REQUEST__BODY_SYNC
                        ? req->sync->n_prefixes : req->snapshot->n_prefixes;
        for (size_t i = 0; i < nw && !reason; i++)
            if (dev->role != GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN &&
                !s_prefix_allowed(want[i], dev->prefixes, dev->n_prefixes)) {
                snprintf(msg, msg_size, "prefix '%.15s' is outside the grids assigned to '%.64s'",
                         want[i], dev->device_id);
                reason = GRIDSYNC__V1__REASON__REASON_OUT_OF_SCOPE;
            }
    }
    if (!reason && dev->role != GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN) {
        char **copy = gs_arena_alloc(arena, (dev->n_prefixes + 1) * sizeof *copy);
        for (size_t i = 0; copy && i < dev->n_prefixes; i++)
            copy[i] = gs_arena_strdup(arena, dev->prefixes[i]);
        *prefixes = copy;
        *n_prefixes = dev->n_prefixes;
    }
    gridsync__v1__device__free_unpacked(dev, NULL);
    return reason;
}

/* Send an error straight from the frontend. */
static void
s_frontend_error(gs_broker_t *b, void *sock, zmq_msg_t *identity, int req_style,
                 int admin, uint64_t request_id, int reason, const char *msg)
{
    gs_wbuf_t wb;
    gs_wbuf_init(&wb);
    s_error_pack(&wb, admin, request_id, reason, msg);
    s_count_reply_error(b, reason);
    zmq_msg_t id;
    zmq_msg_init(&id);
    zmq_msg_copy(&id, identity);
    if (zmq_msg_send(&id, sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&id);
        atomic_fetch_add(&b->metrics.unroutable_replies, 1);
    } else {
        if (req_style)
            zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(sock, wb.data, wb.len, ZMQ_DONTWAIT);
    }
    gs_wbuf_deinit(&wb);
}

static void
s_send_reply(gs_broker_t *b, s_reply_t *r)
{
    void *sock = r->target == S_TO_ADMIN ? b->admin : b->router;
    if (zmq_msg_send(&r->identity, sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        /* the client went away (ROUTER_MANDATORY) or its queue is full */
        atomic_fetch_add(&b->metrics.unroutable_replies, 1);
        return;
    }
    if (r->req_style)
        zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_msg_send(&r->body, sock, ZMQ_DONTWAIT);
    if (r->recv_us)
        gs_hist_observe(&b->metrics.ack_seconds, (double) (s_mono_us() - r->recv_us) / 1e6);
}

/* Read one whole message from a ROUTER: identity, optional empty delimiter,
 * body. Returns 0 with identity and body set, or -1 when it was malformed
 * (dropped and counted, or answered when addressable). */
static int
s_recv_request(gs_broker_t *b, void *sock, zmq_msg_t *identity, zmq_msg_t *body,
               int *req_style)
{
    zmq_msg_t frames[4];
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f);
            break;
        }
        more = zmq_msg_more(&f);
        if (n < 4) {
            zmq_msg_init(&frames[n]);
            zmq_msg_move(&frames[n], &f);
        }
        n++;
        zmq_msg_close(&f);
    }
    int kept = n < 4 ? n : 4;
    int ok = 0;
    *req_style = 0;
    if (n == 2) {
        ok = 1;
    } else if (n == 3 && zmq_msg_size(&frames[1]) == 0) {
        ok = 1;
        *req_style = 1;
    }
    if (ok) {
        zmq_msg_init(identity);
        zmq_msg_init(body);
        zmq_msg_move(identity, &frames[0]);
        zmq_msg_move(body, &frames[n - 1]);
    } else if (n >= 1) {
        /* addressable: say what was wrong */
        char msg[GS_MSG_MAX];
        snprintf(msg, sizeof msg,
                 "expected one frame (a gridsync.v1.Request) after the routing id, got %d", n - 1);
        s_frontend_error(b, sock, &frames[0], 0, sock == b->admin, 0,
                         GRIDSYNC__V1__REASON__REASON_MALFORMED, msg);
    } else {
        atomic_fetch_add(&b->metrics.dropped_frames, 1);
    }
    for (int i = 0; i < kept; i++)
        zmq_msg_close(&frames[i]);
    return ok ? 0 : -1;
}

static void
s_handle_router(gs_broker_t *b, int draining)
{
    zmq_msg_t identity, body;
    int req_style;
    if (s_recv_request(b, b->router, &identity, &body, &req_style))
        return;
    size_t len = zmq_msg_size(&body);
    gs_arena_t *arena = NULL;
    /* Walk the raw bytes before unpacking: protobuf-c builds every list
     * element before anything can count them, so a frame of millions of
     * empty records would take hundreds of MB (see gs_prescan.h). */
    gs_verdict_t pre;
    if (gs_prescan(&gridsync__v1__request__descriptor, zmq_msg_data(&body), len, &b->limits,
                   NULL, &pre)) {
        uint64_t rid = 0; /* echo the request_id when the bytes hold one */
        gs_wire_find_varint(zmq_msg_data(&body), len,
                            protobuf_c_message_descriptor_get_field_by_name(
                                &gridsync__v1__request__descriptor, "request_id")->id,
                            &rid);
        s_frontend_error(b, b->router, &identity, req_style, 0, rid, pre.reason, pre.message);
        goto done;
    }
    arena = gs_arena_new(len * 4 + 4096);
    Gridsync__V1__Request *req =
        arena ? gridsync__v1__request__unpack(gs_arena_allocator(arena), len,
                                              zmq_msg_data(&body))
              : NULL;
    if (!req) {
        char msg[GS_MSG_MAX];
        snprintf(msg, sizeof msg, "%zu bytes do not decode as a gridsync.v1.Request", len);
        s_frontend_error(b, b->router, &identity, req_style, 0, 0,
                         GRIDSYNC__V1__REASON__REASON_MALFORMED, msg);
        goto done;
    }
    gs_verdict_t v;
    switch (req->body_case) {
    case GRIDSYNC__V1__REQUEST__BODY_UPLOAD:
        if (draining) {
            s_frontend_error(b, b->router, &identity, req_style, 0, req->request_id,
                             GRIDSYNC__V1__REASON__REASON_SHUTTING_DOWN,
                             "broker is shutting down; retry the same upload shortly");
            goto done;
        }
        if (gs_upload_check(req->upload, &b->limits, &v)) {
            s_frontend_error(b, b->router, &identity, req_style, 0, req->request_id,
                             v.reason, v.message);
            goto done;
        }
        /* backpressure: the writer's queue is bounded, in records */
        if (atomic_load(&b->pending) + (int64_t) req->upload->n_records >
            b->cfg.max_pending_records) {
            char busy[GS_MSG_MAX];
            snprintf(busy, sizeof busy,
                     "broker busy: %lld records are waiting to be stored; retry the same "
                     "upload shortly",
                     (long long) atomic_load(&b->pending));
            s_frontend_error(b, b->router, &identity, req_style, 0, req->request_id,
                             GRIDSYNC__V1__REASON__REASON_BUSY, busy);
            goto done;
        }
        break;
    case GRIDSYNC__V1__REQUEST__BODY_SYNC:
    case GRIDSYNC__V1__REQUEST__BODY_SNAPSHOT:
        break;
    default:
        s_frontend_error(b, b->router, &identity, req_style, 0, req->request_id,
                         GRIDSYNC__V1__REASON__REASON_UNKNOWN_TYPE,
                         "request carries no known body (upload, sync or snapshot)");
        goto done;
    }
    char **prefixes = NULL;
    size_t n_prefixes = 0;
    char amsg[GS_MSG_MAX];
    int reason = s_authorise(b, &body, req, arena, &prefixes, &n_prefixes, amsg, sizeof amsg);
    if (reason) {
        gs_log(GS_LOG_WARN, "request_refused", "reason=%s msg=\"%s\"", gs_reason_name(reason),
               amsg);
        s_frontend_error(b, b->router, &identity, req_style, 0, req->request_id, reason, amsg);
        goto done;
    }
    s_job_t *job = calloc(1, sizeof *job);
    if (!job) {
        s_frontend_error(b, b->router, &identity, req_style, 0, req->request_id,
                         GRIDSYNC__V1__REASON__REASON_BUSY, "out of memory; retry later");
        goto done;
    }
    job->prefixes = prefixes;
    job->n_prefixes = n_prefixes;
    if (req->body_case == GRIDSYNC__V1__REQUEST__BODY_UPLOAD) {
        /* Validate, normalise, pack, hash and HMAC here, on the frontend
         * thread, so the writer's transaction spends its time on storage
         * only and the two threads work on different uploads at once. */
        Gridsync__V1__Upload *up = req->upload;
        if (gs_store_prepare(b->store, up->records, up->n_records, gs_arena_allocator(arena),
                             s_now_ms(), &job->prepared)) {
            free(job);
            s_frontend_error(b, b->router, &identity, req_style, 0, req->request_id,
                             GRIDSYNC__V1__REASON__REASON_BUSY, "out of memory; retry later");
            goto done;
        }
    }
    zmq_msg_init(&job->identity);
    zmq_msg_move(&job->identity, &identity);
    job->req_style = req_style;
    job->target = S_TO_ROUTER;
    job->request_id = req->request_id;
    job->arena = arena;
    job->req = req;
    job->recv_us = s_mono_us();
    arena = NULL;
    int is_upload = req->body_case == GRIDSYNC__V1__REQUEST__BODY_UPLOAD;
    size_t nrec = is_upload ? req->upload->n_records : 0;
    if (is_upload)
        atomic_fetch_add(&b->pending, (int64_t) nrec);
    if (s_send_ptr(is_upload ? b->to_writer : b->to_readers, job)) {
        if (is_upload)
            atomic_fetch_sub(&b->pending, (int64_t) nrec);
        s_job_destroy(&job);
    }
done:
    gs_arena_destroy(&arena);
    zmq_msg_close(&identity);
    zmq_msg_close(&body);
}

static void
s_handle_admin(gs_broker_t *b)
{
    zmq_msg_t identity, body;
    int req_style;
    if (s_recv_request(b, b->admin, &identity, &body, &req_style))
        return;
    size_t len = zmq_msg_size(&body);
    /* the same walk before unpacking as for uploads: the admin socket is
     * local and owner-only, but a broken tool must not cost the broker
     * hundreds of MB either */
    gs_verdict_t pre;
    if (gs_prescan(&gridsync__v1__admin_request__descriptor, zmq_msg_data(&body), len,
                   &b->limits, NULL, &pre)) {
        s_frontend_error(b, b->admin, &identity, req_style, 1, 0, pre.reason, pre.message);
        zmq_msg_close(&identity);
        zmq_msg_close(&body);
        return;
    }
    gs_arena_t *arena = gs_arena_new(len * 4 + 1024);
    Gridsync__V1__AdminRequest *req =
        arena ? gridsync__v1__admin_request__unpack(gs_arena_allocator(arena), len,
                                                    zmq_msg_data(&body))
              : NULL;
    if (!req) {
        s_frontend_error(b, b->admin, &identity, req_style, 1, 0,
                         GRIDSYNC__V1__REASON__REASON_MALFORMED,
                         "request does not decode as a gridsync.v1.AdminRequest");
        gs_arena_destroy(&arena);
    } else {
        s_job_t *job = calloc(1, sizeof *job);
        if (job) {
            zmq_msg_init(&job->identity);
            zmq_msg_move(&job->identity, &identity);
            job->req_style = req_style;
            job->target = S_TO_ADMIN;
            job->request_id = req->request_id;
            job->arena = arena;
            job->admin = req;
            if (s_send_ptr(b->to_readers, job))
                s_job_destroy(&job);
        } else {
            gs_arena_destroy(&arena);
        }
    }
    zmq_msg_close(&identity);
    zmq_msg_close(&body);
}

/* Forward every queued reply; count "done" markers from workers. */
static int
s_drain_replies(gs_broker_t *b)
{
    int done = 0;
    void *p;
    while (s_recv_ptr(b->replies, &p, ZMQ_DONTWAIT) == 0) {
        if (!p) {
            done++;
            continue;
        }
        s_reply_t *r = p;
        s_send_reply(b, r);
        s_reply_destroy(&r);
    }
    return done;
}

static void
s_on_signal(int sig)
{
    (void) sig;
    if (s_signal_broker)
        gs_broker_stop(s_signal_broker);
}

void
gs_broker_handle_signals(gs_broker_t *self)
{
    s_signal_broker = self;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* The metrics listener's own thread: a scraper that connects and then
 * stalls holds up this thread for at most the per-request deadline of
 * gs_metrics_serve_one, never uploads, admin requests or the feed. */
static void *
s_metrics_main(void *arg)
{
    gs_broker_t *b = arg;
    for (;;) {
        struct pollfd pf[2] = { { .fd = b->http_fd, .events = POLLIN },
                                { .fd = b->metrics_stop[0], .events = POLLIN } };
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pf[1].revents)
            break;
        if (pf[0].revents & POLLIN)
            gs_metrics_serve_one(b->http_fd, &b->metrics, b->store, s_now_ms());
    }
    return NULL;
}

void
gs_broker_stop(gs_broker_t *self)
{
    char c = 'x';
    ssize_t w = write(self->sig_pipe[1], &c, 1);
    (void) w;
}

static void
s_metrics_halt(gs_broker_t *b)
{
    if (!b->metrics_running)
        return;
    char c = 'x';
    ssize_t w = write(b->metrics_stop[1], &c, 1);
    (void) w;
    pthread_join(b->metrics_thread, NULL);
    b->metrics_running = 0;
}

int
gs_broker_run(gs_broker_t *self)
{
    gs_broker_t *b = self;
    if (gs_thread_start(&b->writer, "gs-writer", s_writer_main, b))
        return -1;
    b->threads_started++;
    if (gs_thread_start(&b->publisher, "gs-publisher", s_publisher_main, b))
        return -1;
    b->threads_started++;
    for (int i = 0; i < b->cfg.readers; i++) {
        char name[16];
        snprintf(name, sizeof name, "gs-reader-%d", i);
        if (gs_thread_start(&b->readers[i], name, s_reader_main, b))
            return -1;
        b->threads_started++;
    }
    if (b->http_fd >= 0) {
        if (gs_thread_start(&b->metrics_thread, "gs-metrics", s_metrics_main, b))
            return -1;
        b->metrics_running = 1;
    }

    int draining = 0;
    int workers = 1 + (int) b->cfg.readers;    /* writer + readers to hear "done" from */
    int done = 0;
    while (done < workers) {
        zmq_pollitem_t items[5] = {
            { b->replies, 0, ZMQ_POLLIN, 0 },
            { b->router, 0, draining ? 0 : ZMQ_POLLIN, 0 },
            { b->admin, 0, draining ? 0 : ZMQ_POLLIN, 0 },
            { NULL, b->sig_pipe[0], ZMQ_POLLIN, 0 },
        };
        if (zmq_poll(items, 4, -1) < 0) {
            if (errno == EINTR)
                continue;
            gs_log(GS_LOG_ERROR, "poll_failed", "error=\"%s\"", zmq_strerror(errno));
            break;
        }
        if (items[0].revents & ZMQ_POLLIN)
            done += s_drain_replies(b);
        if (items[1].revents & ZMQ_POLLIN) {
            /* bounded burst so replies keep flowing under load */
            for (int k = 0; k < 256; k++) {
                int ev = 0;
                size_t sz = sizeof ev;
                zmq_getsockopt(b->router, ZMQ_EVENTS, &ev, &sz);
                if (!(ev & ZMQ_POLLIN))
                    break;
                s_handle_router(b, draining);
            }
        }
        if (items[2].revents & ZMQ_POLLIN)
            s_handle_admin(b);
        if ((items[3].revents & ZMQ_POLLIN) && !draining) {
            char buf[16];
            ssize_t r = read(b->sig_pipe[0], buf, sizeof buf);
            (void) r;
            draining = 1;
            gs_log(GS_LOG_INFO, "draining", "head_seq=%llu",
                   (unsigned long long) atomic_load(&b->head_seq));
            /* queued behind every upload already handed over */
            s_send_ptr(b->to_writer, NULL);
            for (int i = 0; i < b->cfg.readers; i++)
                s_send_ptr(b->to_readers, NULL);
        }
    }
    /* every worker reported done: their replies are sent; stop the feed */
    s_metrics_halt(b);
    s_send_ptr(b->to_publisher, NULL);
    pthread_join(b->writer, NULL);
    for (int i = 0; i < b->cfg.readers; i++)
        pthread_join(b->readers[i], NULL);
    pthread_join(b->publisher, NULL);
    b->threads_started = 0;
    uint64_t head = 0;
    gs_store_head(b->store, &head);
    gs_log(GS_LOG_INFO, "stopped", "head_seq=%llu", (unsigned long long) head);
    return 0;
}

/* ---- construction --------------------------------------------------------- */

/* Is an endpoint on this machine only (loopback TCP, ipc, inproc)? */
static int
s_loopback(const char *ep)
{
    if (!strncmp(ep, "ipc://", 6) || !strncmp(ep, "inproc://", 9))
        return 1;
    if (strncmp(ep, "tcp://", 6))
        return 0;
    const char *host = ep + 6;
    return !strncmp(host, "127.", 4) || !strncmp(host, "localhost:", 10) ||
           !strncmp(host, "[::1]:", 6);
}

static void
s_curve_server(void *sock, const uint8_t secret[32])
{
    int one = 1;
    zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret, 32);
    zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "gridsync", 8);
}

/* The live feed's socket, bound to endpoint; NULL with errno on failure.
 * Used at start and again after a revocation (s_xpub_rebind). */
static void *
s_xpub_open(gs_broker_t *b, const char *endpoint)
{
    void *x = zmq_socket(b->ctx, ZMQ_XPUB);
    if (!x)
        return NULL;
    if (b->secure) {
        s_curve_server(x, b->server_secret);
        int manual = 1; /* every subscription is authorised first */
        zmq_setsockopt(x, ZMQ_XPUB_MANUAL, &manual, sizeof manual);
    }
    int sndhwm = (int) b->cfg.feed_sndhwm;
    zmq_setsockopt(x, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm);
    /* subscriptions are prefixes (tiny); the bound must still fit the CURVE
     * handshake commands, which the same limit applies to */
    int64_t submax = 4096;
    zmq_setsockopt(x, ZMQ_MAXMSGSIZE, &submax, sizeof submax);
    int linger = 2000;
    zmq_setsockopt(x, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(x, endpoint)) {
        int err = errno;
        int zero = 0;
        zmq_setsockopt(x, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(x);
        errno = err;
        return NULL;
    }
    return x;
}

static void *
s_bind(gs_broker_t *b, int type, const char *endpoint, const char *what, char *bound,
       size_t bound_size)
{
    void *s = zmq_socket(b->ctx, type);
    if (!s)
        return NULL;
    int linger = 2000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(s, endpoint)) {
        gs_log(GS_LOG_ERROR, "bind_failed", "what=%s endpoint=\"%s\" error=\"%s\"", what,
               endpoint, zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    if (bound) {
        size_t n = bound_size;
        zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, bound, &n);
    }
    return s;
}

gs_broker_t *
gs_broker_new(const gs_config_t *cfg)
{
    gs_broker_t *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->cfg = *cfg;
    b->http_fd = -1;
    b->sig_pipe[0] = b->sig_pipe[1] = -1;
    b->metrics_stop[0] = b->metrics_stop[1] = -1;
    gs_metrics_init(&b->metrics, s_now_ms());
    b->metrics.batch_max_records = cfg->batch_max_records;
    b->metrics.batch_linger_us = cfg->batch_linger_us;
    b->limits = gs_limits_default;
    b->limits.max_records = (uint32_t) cfg->max_records;

    if (mkdir(cfg->store, 0700) && errno != EEXIST) {
        gs_log(GS_LOG_ERROR, "store_failed", "dir=\"%s\" error=\"%s\"", cfg->store,
               strerror(errno));
        goto fail;
    }
    gs_store_opts_t so;
    gs_store_opts_init(&so);
    so.map_size = (size_t) cfg->map_size_mb << 20;
    so.map_max = (size_t) cfg->map_max_gb << 30;
    so.no_sync = cfg->no_sync;
    so.idem_max_entries = (uint32_t) cfg->idem_max_entries;
    so.idem_max_age_ms = cfg->idem_max_age_h * 3600 * 1000;
    so.limits = &b->limits;
    int err = 0;
    b->store = gs_store_new(cfg->store, &so, &err);
    if (!b->store) {
        gs_log(GS_LOG_ERROR, "store_failed", "dir=\"%s\" error=\"%s\"", cfg->store,
               gs_store_strerror(err));
        goto fail;
    }
    uint64_t head = 0;
    gs_store_head(b->store, &head);
    atomic_store(&b->head_seq, head);
    if (cfg->no_sync)
        gs_log(GS_LOG_WARN, "no_sync",
               "msg=\"commits are not durable: acked data can be lost on power loss\"");

    /* CZMQ's context, so that zauth (CURVE) sees our sockets */
    zsys_handler_set(NULL);
    b->ctx = zsys_init();
    if (!b->ctx)
        goto fail;
    if (pipe2(b->metrics_stop, O_CLOEXEC | O_NONBLOCK) ||
        pipe2(b->sig_pipe, O_CLOEXEC | O_NONBLOCK))
        goto fail;

    /* internal hand-offs first */
    b->to_writer = s_bind(b, ZMQ_PAIR, S_EP_WRITER, "writer", NULL, 0);
    b->to_readers = s_bind(b, ZMQ_PUSH, S_EP_READERS, "readers", NULL, 0);
    b->replies = s_bind(b, ZMQ_PULL, S_EP_REPLIES, "replies", NULL, 0);
    b->to_publisher = s_bind(b, ZMQ_PAIR, S_EP_EVENTS, "events", NULL, 0);
    if (!b->to_writer || !b->to_readers || !b->replies || !b->to_publisher)
        goto fail;
    int hwm = 0; /* internal queues: never drop */
    zmq_setsockopt(b->to_writer, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(b->to_readers, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(b->replies, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(b->to_publisher, ZMQ_SNDHWM, &hwm, sizeof hwm);

    /* client-facing sockets: CURVE unless explicitly in development mode */
    char up_ep[256] = "", feed_ep[256] = "", admin_ep[600] = "";
    b->secure = !cfg->insecure_dev;
    uint8_t server_secret[32];
    if (!b->secure) {
        if (!s_loopback(cfg->upload_endpoint) || !s_loopback(cfg->feed_endpoint)) {
            gs_log(GS_LOG_ERROR, "insecure_refused",
                   "msg=\"--insecure-dev is only allowed on loopback endpoints\" upload=%s feed=%s",
                   cfg->upload_endpoint, cfg->feed_endpoint);
            goto fail;
        }
        gs_log(GS_LOG_WARN, "insecure_dev",
               "msg=\"INSECURE DEVELOPMENT MODE: no CURVE, no authentication, plaintext on "
               "loopback; never use this with real data\"");
    } else {
        char cert_path[1100];
        if (cfg->server_cert[0])
            snprintf(cert_path, sizeof cert_path, "%s", cfg->server_cert);
        else
            snprintf(cert_path, sizeof cert_path, "%s/broker.cert", cfg->store);
        if (gs_auth_server_keys(cert_path, b->server_public, server_secret)) {
            gs_log(GS_LOG_ERROR, "server_key_failed", "path=\"%s\" error=\"%s\"", cert_path,
                   strerror(errno));
            goto fail;
        }
        b->auth = gs_auth_new(b->ctx, b->store);
        if (!b->auth)
            goto fail;
    }
    b->router = zmq_socket(b->ctx, ZMQ_ROUTER);
    if (b->secure)
        s_curve_server(b->router, server_secret);
    int64_t maxmsg = cfg->max_message_bytes;
    int one = 1;
    zmq_setsockopt(b->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(b->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    int linger = 2000;
    zmq_setsockopt(b->router, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(b->router, cfg->upload_endpoint)) {
        gs_log(GS_LOG_ERROR, "bind_failed", "what=upload endpoint=\"%s\" error=\"%s\"",
               cfg->upload_endpoint, zmq_strerror(errno));
        goto fail;
    }
    size_t n = sizeof up_ep;
    zmq_getsockopt(b->router, ZMQ_LAST_ENDPOINT, up_ep, &n);

    memcpy(b->server_secret, server_secret, 32);
    b->xpub = s_xpub_open(b, cfg->feed_endpoint);
    if (!b->xpub) {
        gs_log(GS_LOG_ERROR, "bind_failed", "what=feed endpoint=\"%s\" error=\"%s\"",
               cfg->feed_endpoint, zmq_strerror(errno));
        goto fail;
    }
    n = sizeof feed_ep;
    zmq_getsockopt(b->xpub, ZMQ_LAST_ENDPOINT, feed_ep, &n);
    snprintf(b->feed_bound, sizeof b->feed_bound, "%s", feed_ep);

    /* admin: ipc socket inside the owner-only store directory */
    char admin_cfg[600];
    if (cfg->admin_endpoint[0] && strncmp(cfg->admin_endpoint, "ipc://", 6) != 0) {
        /* the admin endpoint has no authentication of its own: file
         * permissions are its protection, so it must be a local socket */
        gs_log(GS_LOG_ERROR, "admin_refused",
               "msg=\"admin-endpoint must be ipc:// (protected by file permissions)\" "
               "endpoint=\"%s\"", cfg->admin_endpoint);
        goto fail;
    }
    if (cfg->admin_endpoint[0])
        snprintf(admin_cfg, sizeof admin_cfg, "%s", cfg->admin_endpoint);
    else
        snprintf(admin_cfg, sizeof admin_cfg, "ipc://%s/admin.sock", cfg->store);
    if (!strncmp(admin_cfg, "ipc://", 6))
        unlink(admin_cfg + 6); /* a socket file left by a killed broker */
    mode_t old = umask(0077);
    b->admin = s_bind(b, ZMQ_ROUTER, admin_cfg, "admin", admin_ep, sizeof admin_ep);
    umask(old);
    if (b->admin && !strncmp(admin_cfg, "ipc://", 6))
        snprintf(b->admin_path, sizeof b->admin_path, "%s", admin_cfg + 6);
    if (!b->admin)
        goto fail;
    zmq_setsockopt(b->admin, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);

    if (strcmp(cfg->metrics_address, "off") != 0 && cfg->metrics_address[0]) {
        b->http_fd = gs_metrics_listen(cfg->metrics_address, (int) cfg->metrics_port,
                                       &b->http_port);
        if (b->http_fd < 0) {
            gs_log(GS_LOG_ERROR, "bind_failed", "what=metrics address=%s port=%lld error=\"%s\"",
                   cfg->metrics_address, (long long) cfg->metrics_port, strerror(errno));
            goto fail;
        }
    }
    b->readers = calloc((size_t) cfg->readers, sizeof *b->readers);
    /* the writer's arrays, here where a failure can still be reported */
    b->wjobs = calloc((size_t) cfg->batch_max_records + 1, sizeof *b->wjobs);
    b->wups = calloc((size_t) cfg->batch_max_records + 1, sizeof *b->wups);
    if (!b->readers || !b->wjobs || !b->wups) {
        gs_log(GS_LOG_ERROR, "out_of_memory", "what=\"writer tables\" batch_max_records=%lld",
               (long long) cfg->batch_max_records);
        goto fail;
    }
    gs_log(GS_LOG_INFO, "ready",
           "upload=%s feed=%s admin=%s metrics_port=%d store=\"%s\" head_seq=%llu "
           "security=%s server_key=%s",
           up_ep, feed_ep, admin_ep, b->http_fd >= 0 ? b->http_port : 0, cfg->store,
           (unsigned long long) head, b->secure ? "curve" : "none",
           b->secure ? b->server_public : "-");
    return b;
fail:
    gs_broker_destroy(&b);
    return NULL;
}

void
gs_broker_destroy(gs_broker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gs_broker_t *b = *self_p;
    void **socks[] = { &b->router, &b->xpub, &b->admin, &b->to_writer, &b->to_readers,
                       &b->replies, &b->to_publisher };
    for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++)
        if (*socks[i]) {
            zmq_close(*socks[i]);
            *socks[i] = NULL;
        }
    s_metrics_halt(b);
    gs_auth_destroy(&b->auth);
    if (b->ctx)
        zsys_shutdown();
    if (b->admin_path[0])
        unlink(b->admin_path);  /* ours: bound by this process */
    if (b->http_fd >= 0)
        close(b->http_fd);
    for (int i = 0; i < 2; i++) {
        if (b->sig_pipe[i] >= 0)
            close(b->sig_pipe[i]);
        if (b->metrics_stop[i] >= 0)
            close(b->metrics_stop[i]);
    }
    explicit_bzero(b->server_secret, sizeof b->server_secret);
    gs_store_destroy(&b->store);
    free(b->readers);
    free(b->wjobs);
    free(b->wups);
    if (s_signal_broker == b)
        s_signal_broker = NULL;
    free(b);
    *self_p = NULL;
}

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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "gs_arena.h"
#include "gs_auth.h"
#include "gs_conns.h"
#include "gs_endpoint.h"
#include "gs_log.h"
#include "gs_metrics.h"
#include "gs_prescan.h"
#include "gs_privacy.h"
#include "gs_store.h"
#include "gs_thread.h"
#include "gs_validate.h"
#include "gs_version.h"
#include "gs_wire.h"

#define S_EP_WRITER "inproc://gs-writer"
#define S_EP_READERS "inproc://gs-readers"
#define S_EP_REPLIES "inproc://gs-replies"
#define S_EP_EVENTS "inproc://gs-events"
#define S_MAX_PREFIXES 64           /* prefixes in one sync/snapshot request */
#define S_REPLY_BUDGET (4u << 20)   /* bytes of events or records per reply */

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
    char **prefixes;            /* the sender's grid prefixes (arena); none = nothing */
    size_t n_prefixes;          /* how many */
    int scope_all;              /* 1: the sender may write every grid (s_authorise) */
} s_job_t;

/* A reply on its way back to the frontend. */
typedef struct s_reply {
    zmq_msg_t identity;         /* moved from the job */
    int req_style;              /* as in the job */
    int target;                 /* as in the job */
    zmq_msg_t body;             /* packed Reply / AdminReply */
    int64_t recv_us;            /* as in the job; 0 = no latency sample */
} s_reply_t;

/* One key's subscriptions to one live-feed prefix. */
typedef struct s_holder {
    uint32_t key;                   /* index into s_feed_t.keys */
    uint32_t applied;               /* applied by the broker */
    uint32_t refused;               /* refused, and still listed by libzmq */
} s_holder_t;

/* One prefix that live subscriptions hold (a slot of s_feed_t.subs). In
 * secure mode (XPUB_MANUAL) libzmq lists every subscription it received
 * on a connection, applied by the broker or refused, and when the
 * connection ends it hands the broker an unsubscription for each one it
 * still lists, without the connection's metadata. So both kinds are
 * counted here, and the entry goes when both are back at zero. */
typedef struct s_sub {
    int used;                       /* slot in use */
    char prefix[GS_GRID_LEN + 1];   /* as subscribed */
    int level;                      /* gs_level_of_len, -1 if not a level */
    uint64_t last_seq;              /* last event published under it */
    uint32_t applied;               /* applied subscriptions: heart-beaten while > 0 */
    uint32_t refused;               /* refused ones libzmq still lists */
    s_holder_t *holders;            /* by key (secure mode) */
    uint32_t n_holders, cap_holders;
} s_sub_t;

/* A key that subscribed on the current feed socket. Kept until the next
 * rebind however its subscriptions end; at most one per registry entry. */
typedef struct s_key {
    char device_id[GS_ID_MAX + 1];  /* registry id of the subscriber's key */
    int admitted;                   /* had a subscription applied: checked every heartbeat */
    uint32_t n_prefixes;            /* distinct prefixes it holds applied (the bound) */
    int admin;                      /* admitted as an admin at least once */
    char (*scope)[GS_GRID_LEN + 1]; /* every assigned prefix it was admitted under */
    uint32_t n_scope, cap_scope;
} s_key_t;

/* The publisher's tables (publisher thread only; allocated by
 * gs_broker_new, where running out of memory is reported). */
typedef struct s_feed {
    s_sub_t *subs;                  /* open addressing by prefix, cap_subs slots */
    size_t cap_subs, n_subs;        /* a power of two; n_subs <= cap_subs / 2 */
    size_t n_live;                  /* entries with applied > 0 */
    size_t n_odd;                   /* entries not at a level (insecure mode only) */
    s_key_t *keys;                  /* in order of first subscription */
    size_t n_keys, cap_keys;
    uint32_t *key_slots;            /* open addressing by device id: index + 1, 0 free */
    size_t cap_key_slots;           /* a power of two, 2 * cap_keys */
} s_feed_t;

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
    dev_t admin_dev;                /* and its identity when bound: removed only */
    ino_t admin_ino;                /* while the path is still that file */
    int sig_pipe[2];                /* self-pipe for stop requests */
    pthread_t writer, publisher;    /* worker threads */
    pthread_t *readers;             /* cfg.readers threads */
    s_job_t **wjobs;                /* the writer's group, cfg.batch_max_records + 1 */
    gs_upload_t *wups;              /* and its uploads, allocated before it starts */
    s_feed_t feed;                  /* the publisher's tables, allocated before it starts */
    int threads_started;            /* how many of the above run */
    int secure;                     /* CURVE on client-facing TCP sockets */
    gs_auth_t *auth;                /* ZAP handler (secure mode) */
    gs_conns_t *conns;              /* the bound on client connections */
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

/* Pack an error Reply (or AdminReply) for request_id into out, and count it
 * in gridsync_request_errors_total: every error reply of every thread is
 * packed here, so none goes uncounted. */
static void
s_error_pack(gs_broker_t *b, gs_wbuf_t *out, int admin, uint64_t request_id, int reason,
             const char *msg)
{
    Gridsync__V1__Error err = GRIDSYNC__V1__ERROR__INIT;
    err.reason = (Gridsync__V1__Reason) reason;
    err.message = (char *) msg;
    gs_wbuf_uint_field(out, 1, request_id);
    /* Reply.error is field 5, AdminReply.error field 7 */
    gs_wbuf_message_field(out, admin ? 7 : 5, &err.base);
    if (reason >= 0 && reason < GS_REASONS_MAX)
        atomic_fetch_add(&b->metrics.request_errors[reason], 1);
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
                .scope_all = jobs[i]->scope_all,
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
                s_error_pack(b, &wb, 0, jobs[i]->request_id, reason, msg);
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

#define S_FEED_SUBS0 1024   /* prefix slots allocated at start (grows) */
#define S_FEED_KEYS0 64     /* keys allocated at start (grows) */

static uint64_t
s_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t) *s) * 1099511628211ull;
    return h;
}

/* Allocate the publisher's tables at their starting size: 0, or -1 when
 * memory runs out (then s_feed_deinit frees what was allocated). */
static int
s_feed_init(s_feed_t *f)
{
    memset(f, 0, sizeof *f);
    f->subs = calloc(S_FEED_SUBS0, sizeof *f->subs);
    f->keys = calloc(S_FEED_KEYS0, sizeof *f->keys);
    f->key_slots = calloc(2 * S_FEED_KEYS0, sizeof *f->key_slots);
    if (!f->subs || !f->keys || !f->key_slots)
        return -1;
    f->cap_subs = S_FEED_SUBS0;
    f->cap_keys = S_FEED_KEYS0;
    f->cap_key_slots = 2 * S_FEED_KEYS0;
    return 0;
}

/* Forget every subscription and key, keeping the memory: after a rebind
 * the new socket starts with none. */
static void
s_feed_clear(s_feed_t *f)
{
    for (size_t i = 0; i < f->cap_subs; i++)
        free(f->subs[i].holders);
    if (f->subs)
        memset(f->subs, 0, f->cap_subs * sizeof *f->subs);
    for (size_t i = 0; i < f->n_keys; i++)
        free(f->keys[i].scope);
    if (f->key_slots)
        memset(f->key_slots, 0, f->cap_key_slots * sizeof *f->key_slots);
    f->n_subs = f->n_live = f->n_odd = f->n_keys = 0;
}

static void
s_feed_deinit(s_feed_t *f)
{
    s_feed_clear(f);
    free(f->subs);
    free(f->keys);
    free(f->key_slots);
    memset(f, 0, sizeof *f);
}

static s_sub_t *
s_sub_find(s_feed_t *f, const char *prefix)
{
    size_t mask = f->cap_subs - 1;
    for (size_t i = s_hash(prefix) & mask;; i = (i + 1) & mask) {
        if (!f->subs[i].used)
            return NULL;
        if (strcmp(f->subs[i].prefix, prefix) == 0)
            return &f->subs[i];
    }
}

static int
s_subs_grow(s_feed_t *f)
{
    size_t cap = f->cap_subs * 2;
    s_sub_t *v = calloc(cap, sizeof *v);
    if (!v)
        return -1;
    for (size_t i = 0; i < f->cap_subs; i++) {
        if (!f->subs[i].used)
            continue;
        size_t j = s_hash(f->subs[i].prefix) & (cap - 1);
        while (v[j].used)
            j = (j + 1) & (cap - 1);
        v[j] = f->subs[i];
    }
    free(f->subs);
    f->subs = v;
    f->cap_subs = cap;
    return 0;
}

/* The entry for prefix, added if new (its last seq read from the store);
 * NULL when memory runs out. Moves other entries: pointers into the table
 * are stale afterwards. */
static s_sub_t *
s_sub_get(gs_broker_t *b, s_feed_t *f, const char *prefix)
{
    s_sub_t *s = s_sub_find(f, prefix);
    if (s)
        return s;
    if ((f->n_subs + 1) * 2 > f->cap_subs && s_subs_grow(f))
        return NULL;
    size_t mask = f->cap_subs - 1;
    size_t i = s_hash(prefix) & mask;
    while (f->subs[i].used)
        i = (i + 1) & mask;
    s = &f->subs[i];
    memset(s, 0, sizeof *s);
    s->used = 1;
    snprintf(s->prefix, sizeof s->prefix, "%s", prefix);
    s->level = gs_level_of_len(strlen(prefix));
    if (s->level >= 0)
        gs_store_prefix_last(b->store, prefix, &s->last_seq);
    else
        f->n_odd++;
    f->n_subs++;
    return s;
}

/* Drop an entry; the later members of its probe run move back into the
 * hole (no tombstones), so pointers into the table are stale afterwards. */
static void
s_sub_remove(s_feed_t *f, s_sub_t *s)
{
    size_t mask = f->cap_subs - 1;
    size_t i = (size_t) (s - f->subs);
    free(s->holders);
    if (s->level < 0)
        f->n_odd--;
    if (s->applied)
        f->n_live--;
    memset(s, 0, sizeof *s);
    f->n_subs--;
    for (size_t j = (i + 1) & mask; f->subs[j].used; j = (j + 1) & mask) {
        size_t home = s_hash(f->subs[j].prefix) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            f->subs[i] = f->subs[j];
            memset(&f->subs[j], 0, sizeof f->subs[j]);
            i = j;
        }
    }
}

static long
s_key_find(const s_feed_t *f, const char *id)
{
    size_t mask = f->cap_key_slots - 1;
    for (size_t i = s_hash(id) & mask;; i = (i + 1) & mask) {
        uint32_t v = f->key_slots[i];
        if (!v)
            return -1;
        if (strcmp(f->keys[v - 1].device_id, id) == 0)
            return (long) v - 1;
    }
}

/* The index of key id, added if new; -1 when memory runs out. */
static long
s_key_get(s_feed_t *f, const char *id)
{
    long k = s_key_find(f, id);
    if (k >= 0)
        return k;
    if (f->n_keys == f->cap_keys) {
        size_t cap = f->cap_keys * 2;
        s_key_t *v = realloc(f->keys, cap * sizeof *v);
        if (v)
            f->keys = v;
        uint32_t *slots = v ? calloc(2 * cap, sizeof *slots) : NULL;
        if (!slots)
            return -1;
        free(f->key_slots);
        f->key_slots = slots;
        f->cap_keys = cap;
        f->cap_key_slots = 2 * cap;
        for (size_t n = 0; n < f->n_keys; n++) {
            size_t i = s_hash(f->keys[n].device_id) & (f->cap_key_slots - 1);
            while (f->key_slots[i])
                i = (i + 1) & (f->cap_key_slots - 1);
            f->key_slots[i] = (uint32_t) n + 1;
        }
    }
    s_key_t *key = &f->keys[f->n_keys];
    memset(key, 0, sizeof *key);
    snprintf(key->device_id, sizeof key->device_id, "%s", id);
    size_t i = s_hash(id) & (f->cap_key_slots - 1);
    while (f->key_slots[i])
        i = (i + 1) & (f->cap_key_slots - 1);
    f->key_slots[i] = (uint32_t) ++f->n_keys;
    return (long) f->n_keys - 1;
}

/* Remember what the registry let key follow when a subscription of it
 * was applied: its role and assigned prefixes, added to what it was
 * admitted under before. 0, or -1 when memory runs out. */
static int
s_key_admit(s_key_t *key, const Gridsync__V1__Device *dev)
{
    key->admitted = 1;
    if (dev->role == GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN) {
        key->admin = 1;
        return 0;
    }
    for (size_t i = 0; i < dev->n_prefixes; i++) {
        const char *p = dev->prefixes[i];
        if (strlen(p) > GS_GRID_LEN)
            return -1; /* the registry never holds one; never widen on a surprise */
        uint32_t j = 0;
        while (j < key->n_scope && strcmp(key->scope[j], p) != 0)
            j++;
        if (j < key->n_scope)
            continue;
        if (key->n_scope == key->cap_scope) {
            uint32_t cap = key->cap_scope ? 2 * key->cap_scope : 4;
            void *v = realloc(key->scope, cap * sizeof *key->scope);
            if (!v)
                return -1;
            key->scope = v;
            key->cap_scope = cap;
        }
        snprintf(key->scope[key->n_scope++], sizeof key->scope[0], "%s", p);
    }
    return 0;
}

static s_holder_t *
s_holder_find(s_sub_t *s, long key)
{
    for (uint32_t i = 0; i < s->n_holders; i++)
        if (s->holders[i].key == (uint32_t) key)
            return &s->holders[i];
    return NULL;
}

/* key's holding of s, added if new; NULL when memory runs out. */
static s_holder_t *
s_holder_get(s_sub_t *s, long key)
{
    s_holder_t *h = s_holder_find(s, key);
    if (h)
        return h;
    if (s->n_holders == s->cap_holders) {
        uint32_t cap = s->cap_holders ? 2 * s->cap_holders : 2;
        void *v = realloc(s->holders, cap * sizeof *s->holders);
        if (!v)
            return NULL;
        s->holders = v;
        s->cap_holders = cap;
    }
    h = &s->holders[s->n_holders++];
    *h = (s_holder_t) { .key = (uint32_t) key };
    return h;
}

/* One subscription of h's key to s ends: an applied one (applied = 1) or
 * a refused one. */
static void
s_holder_drop(s_feed_t *f, s_sub_t *s, s_holder_t *h, int applied)
{
    if (applied) {
        h->applied--;
        if (h->applied == 0)
            f->keys[h->key].n_prefixes--;
        if (--s->applied == 0)
            f->n_live--;
    } else {
        h->refused--;
        s->refused--;
    }
    if (!h->applied && !h->refused)
        *h = s->holders[--s->n_holders];
}

static void
s_feed_gauge(gs_broker_t *b, const s_feed_t *f)
{
    atomic_store(&b->subscriptions, (int) f->n_live);
    atomic_store(&b->metrics.feed_subscriptions, (int64_t) f->n_live);
}

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
s_publish_events(gs_broker_t *b, gs_apply_out_t *ev, s_feed_t *f, gs_wbuf_t *wb,
                 gs_wbuf_t *tmp)
{
    static const int level_len[] = { 0, 2, 4, 6, 9, 12, 15 };
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
        /* the prefixes an event falls under are its grid's levels: one
         * lookup each, however many prefixes are followed */
        char prefix[GS_GRID_LEN + 1];
        for (size_t l = 0; l < sizeof level_len / sizeof level_len[0]; l++) {
            memcpy(prefix, e->grid, (size_t) level_len[l]);
            prefix[level_len[l]] = 0;
            s_sub_t *s = s_sub_find(f, prefix);
            if (s)
                s->last_seq = e->seq;
        }
        for (size_t k = 0; f->n_odd && k < f->cap_subs; k++)
            if (f->subs[k].used && f->subs[k].level < 0 &&
                strncmp(e->grid, f->subs[k].prefix, strlen(f->subs[k].prefix)) == 0)
                f->subs[k].last_seq = e->seq;
    }
    atomic_fetch_add(&b->metrics.feed_events, ev->n_events);
}

/* One heartbeat for the prefix of s. */
static void
s_heartbeat_send(gs_broker_t *b, const s_sub_t *s, uint64_t head, gs_wbuf_t *wb)
{
    Gridsync__V1__Heartbeat hb = GRIDSYNC__V1__HEARTBEAT__INIT;
    hb.head_seq = head;
    hb.prefix = (char *) s->prefix;
    hb.prefix_last_seq = s->last_seq;
    hb.sent_at = s_now_ms();
    gs_store_epoch(b->store, &hb.store_epoch); /* 0 if the store has none */
    gs_wbuf_reset(wb);
    gs_wbuf_message_field(wb, 2, &hb.base); /* FeedMessage.heartbeat */
    s_feed_send(b, s->prefix, strlen(s->prefix), wb->data, wb->len);
    atomic_fetch_add(&b->metrics.feed_heartbeats, 1);
}

/* One heartbeat for every prefix an applied subscription holds, however
 * many there are. */
static void
s_heartbeats(gs_broker_t *b, const s_feed_t *f, uint64_t head, gs_wbuf_t *wb)
{
    for (size_t k = 0; k < f->cap_subs; k++) {
        const s_sub_t *s = &f->subs[k];
        if (s->used && s->applied)
            s_heartbeat_send(b, s, head, wb);
    }
}

/* Why key id may not follow prefix now, or NULL when it may; *dev_out
 * gets its registry entry when it has one (caller frees). */
static const char *
s_subscription_check(gs_broker_t *b, const char *id, const char *prefix, int level,
                     Gridsync__V1__Device **dev_out)
{
    *dev_out = NULL;
    if (!id || gs_store_device_get(b->store, id, dev_out))
        return "not enrolled";
    Gridsync__V1__Device *dev = *dev_out;
    if (dev->status != GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_ACTIVE)
        return "revoked";
    if (dev->role != GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN &&
        dev->role != GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE &&
        dev->role != GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT)
        return "unknown role";
    if (level < 0)
        return "prefix not at a level boundary (0,2,4,6,9,12,15 digits)";
    if (dev->role != GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN &&
        !s_prefix_allowed(prefix, dev->prefixes, dev->n_prefixes))
        return "outside the assigned prefixes";
    return NULL;
}

/* A subscription in secure mode (XPUB_MANUAL): applied only when the
 * subscriber's registry entry allows the prefix and its key stays within
 * feed-max-prefixes; counted either way (s_sub_t). */
static void
s_subscribe(gs_broker_t *b, s_feed_t *f, const char *id, const char *prefix, int level)
{
    Gridsync__V1__Device *dev = NULL;
    const char *why = s_subscription_check(b, id, prefix, level, &dev);
    char bound[96];
    long k = id && strlen(id) <= GS_ID_MAX ? s_key_get(f, id) : -1;
    s_sub_t *s = level >= 0 ? s_sub_get(b, f, prefix) : NULL;
    s_holder_t *h = s && k >= 0 ? s_holder_get(s, k) : NULL;
    if (!why && !h) {
        /* libzmq lists it whatever the broker decides, and its end could
         * not be counted: refuse it, and say why */
        why = "the broker is out of memory";
    } else if (!why && h->applied == 0 &&
               f->keys[k].n_prefixes >= (uint64_t) b->cfg.feed_max_prefixes) {
        snprintf(bound, sizeof bound, "the key already follows %u prefixes (feed-max-prefixes)",
                 f->keys[k].n_prefixes);
        why = bound;
    } else if (!why && s_key_admit(&f->keys[k], dev)) {
        why = "the broker is out of memory";
    }
    if (why) {
        atomic_fetch_add(&b->metrics.feed_refused, 1);
        gs_log(GS_LOG_WARN, "feed_subscribe_refused", "device=%s prefix=\"%s\" reason=\"%s\"",
               id ? id : "-", prefix, why);
        if (h) {
            h->refused++;
            s->refused++;
        }
    } else {
        if (h->applied++ == 0)
            f->keys[k].n_prefixes++;
        if (s->applied++ == 0) {
            f->n_live++;
            gs_log(GS_LOG_INFO, "feed_subscribe", "prefix=\"%s\" last_seq=%llu", prefix,
                   (unsigned long long) s->last_seq);
        }
        zmq_setsockopt(b->xpub, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
        /* A heartbeat at once: the new subscriber's first message names
         * the store's epoch and head before any event, so a subscriber
         * that reconnected to a restored store learns it before it could
         * take one of the restored store's events for a new one. */
        s_feed_gauge(b, f);     /* before the heartbeat, which a test may wait on */
        gs_wbuf_t wb;
        gs_wbuf_init(&wb);
        s_heartbeat_send(b, s, atomic_load(&b->head_seq), &wb);
        gs_wbuf_deinit(&wb);
    }
    if (s && !s->applied && !s->refused)
        s_sub_remove(f, s); /* its holder could not be added */
    if (dev)
        gridsync__v1__device__free_unpacked(dev, NULL);
}

/* An unsubscription in secure mode. With metadata it is the connection's
 * own: it ends one of that key's subscriptions (an applied one first),
 * and one for a prefix the key does not hold is ignored. Without metadata
 * libzmq sends it because a connection ended, and does not say whose: a
 * refused subscription is charged first, so the applied count never falls
 * below the subscriptions that really are applied, and no live prefix
 * loses its heartbeats. */
static void
s_unsubscribe(gs_broker_t *b, s_feed_t *f, const char *id, const char *prefix, int level)
{
    if (level < 0)
        return;     /* never counted (refused in s_subscription_check) */
    zmq_setsockopt(b->xpub, ZMQ_UNSUBSCRIBE, prefix, strlen(prefix));
    s_sub_t *s = s_sub_find(f, prefix);
    if (!s)
        return;
    if (id) {
        long k = s_key_find(f, id);
        s_holder_t *h = k >= 0 ? s_holder_find(s, k) : NULL;
        if (h)
            s_holder_drop(f, s, h, h->applied > 0);
    } else {
        s_holder_t *h = NULL;
        for (uint32_t i = 0; i < s->n_holders && !h; i++)
            if (s->holders[i].refused)
                h = &s->holders[i];
        if (h)
            s_holder_drop(f, s, h, 0);
        else if (s->n_holders)
            s_holder_drop(f, s, &s->holders[0], 1);
    }
    if (!s->applied && !s->refused) {
        gs_log(GS_LOG_INFO, "feed_unsubscribe", "prefix=\"%s\"", prefix);
        s_sub_remove(f, s);
    }
}

/* A control message arrived on the XPUB: (un)subscription of a prefix. */
static void
s_subscription(gs_broker_t *b, zmq_msg_t *m, s_feed_t *f)
{
    const uint8_t *msg = zmq_msg_data(m);
    size_t len = zmq_msg_size(m);
    gs_log(GS_LOG_DEBUG, "feed_control", "bytes=%zu kind=%d", len, len ? msg[0] : -1);
    if (len < 1 || len - 1 > GS_GRID_LEN || (msg[0] != 0 && msg[0] != 1))
        return;
    char prefix[GS_GRID_LEN + 1];
    int digits = 1;
    for (size_t i = 1; i < len; i++)
        digits &= msg[i] >= '0' && msg[i] <= '9';
    memcpy(prefix, msg + 1, len - 1);
    prefix[len - 1] = 0;
    /* only digits are grid prefixes: anything else (a NUL among them) is
     * never applied or counted, in both directions alike */
    int level = digits ? gs_level_of_len(len - 1) : -1;
    if (b->secure) {
        const char *id = zmq_msg_gets(m, "device_id");
        if (msg[0] == 1 && !digits) {
            atomic_fetch_add(&b->metrics.feed_refused, 1);
            gs_log(GS_LOG_WARN, "feed_subscribe_refused",
                   "device=%s reason=\"prefix is not grid-code digits\"", id ? id : "-");
        } else if (msg[0] == 1) {
            s_subscribe(b, f, id, prefix, level);
        } else {
            s_unsubscribe(b, f, id, prefix, level);
        }
    } else if (digits) {
        /* libzmq applies subscriptions itself here and passes on only the
         * first subscription to a prefix and the last unsubscription */
        s_sub_t *s = s_sub_find(f, prefix);
        if (msg[0] == 1 && !s) {
            s = s_sub_get(b, f, prefix);
            if (!s) {
                gs_log(GS_LOG_ERROR, "out_of_memory",
                       "what=\"feed prefix table\" prefix=\"%s\" msg=\"no heartbeats for it\"",
                       prefix);
            } else {
                s->applied = 1;
                f->n_live++;
                gs_log(GS_LOG_INFO, "feed_subscribe", "prefix=\"%s\" last_seq=%llu", prefix,
                       (unsigned long long) s->last_seq);
            }
        } else if (msg[0] == 0 && s) {
            gs_log(GS_LOG_INFO, "feed_unsubscribe", "prefix=\"%s\"", prefix);
            s_sub_remove(f, s);
        }
    }
    s_feed_gauge(b, f);
}

static void *s_xpub_open(gs_broker_t *b, const char *endpoint);

/* Does the registry still let every admitted key follow what it was
 * admitted under? The first that may not (revoked, removed, no longer an
 * admin, or an assigned prefix it was admitted under no longer covered)
 * is returned. One registry read per admitted key. */
static const s_key_t *
s_keys_stale(gs_broker_t *b, const s_feed_t *f)
{
    for (size_t i = 0; i < f->n_keys; i++) {
        const s_key_t *key = &f->keys[i];
        if (!key->admitted)
            continue;
        Gridsync__V1__Device *dev = NULL;
        int ok = gs_store_device_get(b->store, key->device_id, &dev) == 0 &&
                 dev->status == GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_ACTIVE;
        if (ok && dev->role != GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN) {
            ok = !key->admin;
            for (uint32_t j = 0; ok && j < key->n_scope; j++)
                ok = s_prefix_allowed(key->scope[j], dev->prefixes, dev->n_prefixes);
        }
        if (dev)
            gridsync__v1__device__free_unpacked(dev, NULL);
        if (!ok)
            return key;
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
s_xpub_rebind(gs_broker_t *b, const s_key_t *why)
{
    gs_log(GS_LOG_WARN, "feed_rebind", "reason=revocation device=%s", why->device_id);
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
    s_feed_t *f = &b->feed;
    void *in = zmq_socket(b->ctx, ZMQ_PAIR);
    zmq_connect(in, S_EP_EVENTS);
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
                s_subscription(b, &m, f);
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
                s_publish_events(b, ev, f, &wb, &tmp);
                gs_apply_out_clear(ev);
                free(ev);
            }
            if (stop)
                break;
        }
        if (s_mono_us() >= next_hb) {
            const s_key_t *stale = b->secure && b->xpub ? s_keys_stale(b, f) : NULL;
            if (stale) {
                s_xpub_rebind(b, stale);
                /* the old socket took its subscriptions with it: the
                 * survivors subscribe again on the new one */
                s_feed_clear(f);
                s_feed_gauge(b, f);
            }
            s_heartbeats(b, f, atomic_load(&b->head_seq), &wb);
            next_hb = s_mono_us() + b->cfg.heartbeat_ms * 1000;
        }
    }
    gs_wbuf_deinit(&wb);
    gs_wbuf_deinit(&tmp);
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
        s_error_pack(b, reply, 0, job->request_id, reason, msg);
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
        s_error_pack(b, reply, 0, job->request_id, GRIDSYNC__V1__REASON__REASON_INTERNAL,
                     "the change log could not be read; retry later");
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
        s_error_pack(b, reply, 0, job->request_id, r,
                     rc == GS_EINVAL ? "snapshot cursor is not valid for these prefixes"
                                     : "the store could not be read; retry later");
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
                    s_error_pack(b, reply, 1, rq->request_id,
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
            s_error_pack(b, reply, 1, rq->request_id, GRIDSYNC__V1__REASON__REASON_NOT_FOUND,
                         msg);
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
        h.version = GS_VERSION;
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
        s_error_pack(b, reply, 1, rq->request_id, GRIDSYNC__V1__REASON__REASON_UNKNOWN_TYPE,
                     "admin request carries no known body");
        return;
    }
    if (rc < 0) {
        char msg[GS_MSG_MAX];
        snprintf(msg, sizeof msg, "store: %s", gs_store_strerror(rc));
        s_error_pack(b, reply, 1, rq->request_id, GRIDSYNC__V1__REASON__REASON_INTERNAL, msg);
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
            s_error_pack(b, &reply, job->admin != NULL, job->request_id,
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
 * anything (said so by *scope_all, never by an empty list). Scope is denied
 * by default: only an ADMIN gets *scope_all = 1; a DEVICE or DISTRICT entry
 * without prefixes (written before the registry refused them) may do
 * nothing, and is refused every request but a ping, which is answered so
 * that it can say so. On success the sender's prefixes are copied into the
 * arena, and *dev_out (when not NULL) gets the registry entry, NULL for an
 * unregistered sender in development mode; the caller frees it with
 * gridsync__v1__device__free_unpacked. Returns 0 or a reason with msg set. */
static int
s_authorise(gs_broker_t *b, zmq_msg_t *body, Gridsync__V1__Request *req, gs_arena_t *arena,
            char ***prefixes, size_t *n_prefixes, int *scope_all, char *msg, size_t msg_size,
            Gridsync__V1__Device **dev_out)
{
    *prefixes = NULL;
    *n_prefixes = 0;
    *scope_all = 0;
    if (dev_out)
        *dev_out = NULL;
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
        if (!b->secure && rc == GS_ENOTFOUND) {
            /* development mode (loopback only): unregistered is unrestricted */
            *scope_all = 1;
            return 0;
        }
        if (rc != GS_ENOTFOUND) {
            snprintf(msg, msg_size, "the device registry could not be read; retry later");
            return GRIDSYNC__V1__REASON__REASON_INTERNAL;
        }
        snprintf(msg, msg_size, "device '%.64s' is not enrolled", id);
        return GRIDSYNC__V1__REASON__REASON_UNAUTHORISED;
    }
    int reason = 0;
    int admin = dev->role == GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN;
    if (dev->status != GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_ACTIVE) {
        snprintf(msg, msg_size, "device '%.64s' has been revoked", dev->device_id);
        reason = GRIDSYNC__V1__REASON__REASON_UNAUTHORISED;
    } else if (!admin && dev->role != GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE &&
               dev->role != GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT) {
        snprintf(msg, msg_size, "'%.64s' has an unknown role (%d); it may do nothing",
                 dev->device_id, (int) dev->role);
        reason = GRIDSYNC__V1__REASON__REASON_UNAUTHORISED;
    } else if (!admin && dev->n_prefixes == 0 &&
               req->body_case != GRIDSYNC__V1__REQUEST__BODY_PING) {
        snprintf(msg, msg_size, "'%.64s' has no grid prefixes assigned, so it may do nothing; "
                 "an administrator assigns them (gridctl devices assign)", dev->device_id);
        reason = GRIDSYNC__V1__REASON__REASON_OUT_OF_SCOPE;
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
    } else if (req->body_case == GRIDSYNC__V1__REQUEST__BODY_PING) {
        /* nothing asked for: the reply says what the sender may touch */
    } else if (req->body_case == GRIDSYNC__V1__REQUEST__BODY_SYNC ||
               req->body_case == GRIDSYNC__V1__REQUEST__BODY_SNAPSHOT) {
        char **want = req->body_case == GRIDSYNC__V1__REQUEST__BODY_SYNC
                          ? req->sync->prefixes : req->snapshot->prefixes;
        size_t nw = req->body_case == GRIDSYNC__V1__REQUEST__BODY_SYNC
                        ? req->sync->n_prefixes : req->snapshot->n_prefixes;
        for (size_t i = 0; i < nw && !reason; i++)
            if (!admin && !s_prefix_allowed(want[i], dev->prefixes, dev->n_prefixes)) {
                snprintf(msg, msg_size, "prefix '%.15s' is outside the grids assigned to '%.64s'",
                         want[i], dev->device_id);
                reason = GRIDSYNC__V1__REASON__REASON_OUT_OF_SCOPE;
            }
    } else {
        /* a body the checks above do not know is never let through */
        snprintf(msg, msg_size, "request carries no known body");
        reason = GRIDSYNC__V1__REASON__REASON_UNKNOWN_TYPE;
    }
    if (!reason && admin) {
        *scope_all = 1; /* an administrator's role: everywhere, said explicitly */
    } else if (!reason) {
        char **copy = gs_arena_alloc(arena, (dev->n_prefixes + 1) * sizeof *copy);
        size_t i = 0;
        for (; copy && i < dev->n_prefixes; i++)
            if (!(copy[i] = gs_arena_strdup(arena, dev->prefixes[i])))
                break;
        if (!copy || i < dev->n_prefixes) {
            /* never a list shorter than its count (or NULL with a count) */
            snprintf(msg, msg_size, "out of memory; retry later");
            reason = GRIDSYNC__V1__REASON__REASON_BUSY;
        } else {
            *prefixes = copy;
            *n_prefixes = dev->n_prefixes;
        }
    }
    if (!reason && dev_out)
        *dev_out = dev;
    else
        gridsync__v1__device__free_unpacked(dev, NULL);
    return reason;
}

/* Send a packed reply straight from the frontend to identity. */
static void
s_frontend_send(gs_broker_t *b, void *sock, zmq_msg_t *identity, int req_style,
                const gs_wbuf_t *wb)
{
    zmq_msg_t id;
    zmq_msg_init(&id);
    zmq_msg_copy(&id, identity);
    if (zmq_msg_send(&id, sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&id);
        atomic_fetch_add(&b->metrics.unroutable_replies, 1);
    } else {
        if (req_style)
            zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(sock, wb->data, wb->len, ZMQ_DONTWAIT);
    }
}

/* Send an error straight from the frontend. */
static void
s_frontend_error(gs_broker_t *b, void *sock, zmq_msg_t *identity, int req_style,
                 int admin, uint64_t request_id, int reason, const char *msg)
{
    gs_wbuf_t wb;
    gs_wbuf_init(&wb);
    s_error_pack(b, &wb, admin, request_id, reason, msg);
    s_frontend_send(b, sock, identity, req_style, &wb);
    gs_wbuf_deinit(&wb);
}

/* Answer a ping on the frontend thread, from what s_authorise found (dev is
 * NULL for an unregistered sender in development mode): the registry was
 * read there already, and the rest is a few reads of the store's head. */
static void
s_answer_ping(gs_broker_t *b, zmq_msg_t *identity, int req_style, uint64_t request_id,
              const Gridsync__V1__Device *dev, char **prefixes, size_t n_prefixes,
              int scope_all)
{
    atomic_fetch_add(&b->metrics.ping_requests, 1);
    Gridsync__V1__PingReply p = GRIDSYNC__V1__PING_REPLY__INIT;
    p.registered = dev != NULL;
    if (dev) {
        p.device_id = dev->device_id;
        p.role = dev->role;
        p.status = dev->status;
    }
    p.prefixes = scope_all ? NULL : prefixes;
    p.n_prefixes = scope_all ? 0 : n_prefixes;
    p.scope_all = scope_all != 0;
    p.version = GS_VERSION;
    gs_store_epoch(b->store, &p.store_epoch);
    gs_store_head(b->store, &p.head_seq);
    p.broker_time = s_now_ms();
    p.secure = b->secure != 0;
    gs_wbuf_t wb;
    gs_wbuf_init(&wb);
    gs_wbuf_uint_field(&wb, 1, request_id);
    gs_wbuf_message_field(&wb, 6, &p.base); /* Reply.ping */
    if (wb.failed)
        s_frontend_error(b, b->router, identity, req_style, 0, request_id,
                         GRIDSYNC__V1__REASON__REASON_BUSY, "out of memory; retry later");
    else
        s_frontend_send(b, b->router, identity, req_style, &wb);
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

/* The request_id in a request's raw bytes, to echo in an error reply
 * when the request could not be decoded; 0 when it holds none. */
static uint64_t
s_request_id(const ProtobufCMessageDescriptor *desc, zmq_msg_t *body)
{
    uint64_t rid = 0;
    gs_wire_find_varint(zmq_msg_data(body), zmq_msg_size(body),
                        protobuf_c_message_descriptor_get_field_by_name(desc, "request_id")->id,
                        &rid);
    return rid;
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
        s_frontend_error(b, b->router, &identity, req_style, 0,
                         s_request_id(&gridsync__v1__request__descriptor, &body), pre.reason,
                         pre.message);
        goto done;
    }
    arena = gs_arena_new(len * 4 + 4096);
    Gridsync__V1__Request *req =
        arena ? gridsync__v1__request__unpack(gs_arena_allocator(arena), len,
                                              zmq_msg_data(&body))
              : NULL;
    if (!arena) {
        s_frontend_error(b, b->router, &identity, req_style, 0,
                         s_request_id(&gridsync__v1__request__descriptor, &body),
                         GRIDSYNC__V1__REASON__REASON_BUSY, "out of memory; retry later");
        goto done;
    }
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
    case GRIDSYNC__V1__REQUEST__BODY_PING:
        break;
    default:
        s_frontend_error(b, b->router, &identity, req_style, 0, req->request_id,
                         GRIDSYNC__V1__REASON__REASON_UNKNOWN_TYPE,
                         "request carries no known body (upload, sync, snapshot or ping)");
        goto done;
    }
    char **prefixes = NULL;
    size_t n_prefixes = 0;
    int scope_all = 0;
    char amsg[GS_MSG_MAX];
    Gridsync__V1__Device *dev = NULL;
    int is_ping = req->body_case == GRIDSYNC__V1__REQUEST__BODY_PING;
    int reason = s_authorise(b, &body, req, arena, &prefixes, &n_prefixes, &scope_all, amsg,
                             sizeof amsg, is_ping ? &dev : NULL);
    if (reason) {
        gs_log(GS_LOG_WARN, "request_refused", "reason=%s msg=\"%s\"", gs_reason_name(reason),
               amsg);
        s_frontend_error(b, b->router, &identity, req_style, 0, req->request_id, reason, amsg);
        goto done;
    }
    if (is_ping) {
        s_answer_ping(b, &identity, req_style, req->request_id, dev, prefixes, n_prefixes,
                      scope_all);
        if (dev)
            gridsync__v1__device__free_unpacked(dev, NULL);
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
    job->scope_all = scope_all;
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
    if (!arena) {
        s_frontend_error(b, b->admin, &identity, req_style, 1,
                         s_request_id(&gridsync__v1__admin_request__descriptor, &body),
                         GRIDSYNC__V1__REASON__REASON_BUSY, "out of memory; retry later");
    } else if (!req) {
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
            /* answered, as the request path does: a tool waiting for a
             * reply is told to retry instead of timing out */
            s_frontend_error(b, b->admin, &identity, req_style, 1, req->request_id,
                             GRIDSYNC__V1__REASON__REASON_BUSY, "out of memory; retry later");
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

/* A thread could not be started: stop and join the ones that were, so
 * that gs_broker_run returns with none of them running. Nothing has been
 * read from a client yet, so nothing is lost: shutting the context down
 * makes every blocking receive of the workers fail (ETERM), and each of
 * them leaves. Returns -1. */
static int
s_start_failed(gs_broker_t *b, const char *name, int err, int readers_started)
{
    gs_log(GS_LOG_ERROR, "start_failed", "thread=%s error=\"%s\" msg=\"could not start a "
           "thread; gridsyncd stops\"", name, strerror(err));
    zmq_ctx_shutdown(b->ctx);
    if (b->threads_started >= 1)
        pthread_join(b->writer, NULL);
    if (b->threads_started >= 2)
        pthread_join(b->publisher, NULL);
    for (int i = 0; i < readers_started; i++)
        pthread_join(b->readers[i], NULL);
    b->threads_started = 0;
    return -1;
}

int
gs_broker_run(gs_broker_t *self)
{
    gs_broker_t *b = self;
    int rc = gs_thread_start(&b->writer, "gs-writer", s_writer_main, b);
    if (rc)
        return s_start_failed(b, "gs-writer", rc, 0);
    b->threads_started++;
    rc = gs_thread_start(&b->publisher, "gs-publisher", s_publisher_main, b);
    if (rc)
        return s_start_failed(b, "gs-publisher", rc, 0);
    b->threads_started++;
    for (int i = 0; i < b->cfg.readers; i++) {
        char name[16];
        snprintf(name, sizeof name, "gs-reader-%d", i);
        rc = gs_thread_start(&b->readers[i], name, s_reader_main, b);
        if (rc)
            return s_start_failed(b, name, rc, i);
        b->threads_started++;
    }
    if (b->http_fd >= 0) {
        rc = gs_thread_start(&b->metrics_thread, "gs-metrics", s_metrics_main, b);
        if (rc)
            return s_start_failed(b, "gs-metrics", rc, b->cfg.readers);
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

/* The bound on client connections: the setting, or (0) the open-file
 * limit less a reserve for the store, the internal sockets, the metrics
 * listener and libzmq's own descriptors. */
static int64_t
s_max_connections(const gs_config_t *cfg)
{
    if (cfg->max_connections > 0)
        return cfg->max_connections;
    struct rlimit rl;
    int64_t limit = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        limit = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1000256 ? 1000256
                                                                       : (int64_t) rl.rlim_cur;
    return limit - 256 >= 64 ? limit - 256 : 64;
}

/* May --insecure-dev bind ep (what = "upload" or "feed"; bound: 1 for the
 * address libzmq reports after binding)? Logs the refusal, naming the
 * endpoint and why (gs_endpoint.h has the rule). */
static int
s_loopback(const char *what, const char *ep, int bound)
{
    char why[200];
    if (gs_endpoint_is_loopback(ep, why, sizeof why))
        return 1;
    gs_log(GS_LOG_ERROR, "insecure_refused",
           "msg=\"--insecure-dev is only allowed on loopback endpoints\" what=%s %s=\"%s\" "
           "why=\"%s\"", what, bound ? "bound" : "endpoint", ep, why);
    return 0;
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
    /* a peer that never finishes its handshake is dropped (idle connections
     * would otherwise hold descriptors for ever) */
    int hs = (int) b->cfg.handshake_timeout_ms;
    zmq_setsockopt(x, ZMQ_HANDSHAKE_IVL, &hs, sizeof hs);
    if (gs_conns_watch(b->conns, x, "feed") || zmq_bind(x, endpoint)) {
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

/* The store's last word before LMDB aborts on a damaged page. */
static void
s_store_fatal(const char *msg)
{
    gs_log(GS_LOG_ERROR, "store_damaged", "msg=\"%s\"", msg);
}

/* Make way for the admin socket at path. Only a socket file nobody listens
 * on is removed: one left by a broker that was killed. Anything else there
 * (a live broker's socket, which with the default path inside the locked
 * store cannot exist, or a file that is not a socket) is left alone and the
 * start refused. Returns 0 when the path is free. */
static int
s_admin_clear(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return 0;
    if (!S_ISSOCK(sb.st_mode)) {
        gs_log(GS_LOG_ERROR, "admin_refused", "msg=\"the admin socket path holds a file that "
               "is not a socket; not removing it\" path=\"%s\"", path);
        return -1;
    }
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path)
        return 0;   /* cannot be bound either: the bind reports it */
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int live = connect(fd, (struct sockaddr *) &sa, sizeof sa) == 0 ||
               (errno != ECONNREFUSED && errno != ENOENT);
    close(fd);
    if (live) {
        gs_log(GS_LOG_ERROR, "admin_refused", "msg=\"another process listens on the admin "
               "socket; not replacing it\" path=\"%s\"", path);
        return -1;
    }
    unlink(path);   /* left by a killed broker */
    return 0;
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
    /* one store, one broker: the store lock is taken before LMDB opens the
     * files, and before anything below touches the store directory (the
     * admin socket) */
    so.exclusive = 1;
    so.on_fatal = s_store_fatal;
    int err = 0;
    b->store = gs_store_new(cfg->store, &so, &err);
    if (!b->store) {
        gs_log(GS_LOG_ERROR, err == GS_EBUSY ? "store_locked" : "store_failed",
               "dir=\"%s\" error=\"%s\" detail=\"%s\"", cfg->store, gs_store_strerror(err),
               gs_store_errdetail());
        goto fail;
    }
    uint64_t head = 0;
    gs_store_head(b->store, &head);
    atomic_store(&b->head_seq, head);
    if (cfg->no_sync)
        gs_log(GS_LOG_WARN, "no_sync",
               "msg=\"commits are not durable: acked data can be lost on power loss\"");

    b->readers = calloc((size_t) cfg->readers, sizeof *b->readers);
    /* the writer's arrays, here where a failure can still be reported, and
     * before any socket or thread exists */
    b->wjobs = calloc((size_t) cfg->batch_max_records + 1, sizeof *b->wjobs);
    b->wups = calloc((size_t) cfg->batch_max_records + 1, sizeof *b->wups);
    if (!b->readers || !b->wjobs || !b->wups) {
        gs_log(GS_LOG_ERROR, "out_of_memory", "what=\"writer tables\" batch_max_records=%lld",
               (long long) cfg->batch_max_records);
        goto fail;
    }
    /* and the publisher's (they grow with the subscriptions later; a
     * subscription they cannot take then is refused, logged) */
    if (s_feed_init(&b->feed)) {
        gs_log(GS_LOG_ERROR, "out_of_memory", "what=\"publisher tables\"");
        goto fail;
    }

    /* CZMQ's context, so that zauth (CURVE) sees our sockets */
    zsys_handler_set(NULL);
    b->ctx = zsys_init();
    if (!b->ctx)
        goto fail;
    if (pipe2(b->metrics_stop, O_CLOEXEC | O_NONBLOCK) ||
        pipe2(b->sig_pipe, O_CLOEXEC | O_NONBLOCK))
        goto fail;
    int64_t max_conns = s_max_connections(cfg);
    b->conns = gs_conns_new(b->ctx, &b->metrics, max_conns);
    if (!b->conns) {
        gs_log(GS_LOG_ERROR, "start_failed", "what=\"connection counter\" error=\"%s\"",
               strerror(errno));
        goto fail;
    }

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
        if (!s_loopback("upload", cfg->upload_endpoint, 0) ||
            !s_loopback("feed", cfg->feed_endpoint, 0))
            goto fail;
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
    int hs = (int) cfg->handshake_timeout_ms;
    zmq_setsockopt(b->router, ZMQ_HANDSHAKE_IVL, &hs, sizeof hs);
    if (gs_conns_watch(b->conns, b->router, "upload")) {
        gs_log(GS_LOG_ERROR, "start_failed", "what=\"connection counter\" error=\"%s\"",
               zmq_strerror(errno));
        goto fail;
    }
    if (zmq_bind(b->router, cfg->upload_endpoint)) {
        gs_log(GS_LOG_ERROR, "bind_failed", "what=upload endpoint=\"%s\" error=\"%s\"",
               cfg->upload_endpoint, zmq_strerror(errno));
        goto fail;
    }
    size_t n = sizeof up_ep;
    zmq_getsockopt(b->router, ZMQ_LAST_ENDPOINT, up_ep, &n);
    /* defence in depth: what libzmq really bound must be loopback too */
    if (!b->secure && !s_loopback("upload", up_ep, 1))
        goto fail;

    memcpy(b->server_secret, server_secret, 32);
    b->xpub = s_xpub_open(b, cfg->feed_endpoint);
    if (!b->xpub) {
        gs_log(GS_LOG_ERROR, "bind_failed", "what=feed endpoint=\"%s\" error=\"%s\"",
               cfg->feed_endpoint, zmq_strerror(errno));
        goto fail;
    }
    n = sizeof feed_ep;
    zmq_getsockopt(b->xpub, ZMQ_LAST_ENDPOINT, feed_ep, &n);
    if (!b->secure && !s_loopback("feed", feed_ep, 1))
        goto fail;
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
    if (s_admin_clear(admin_cfg + 6))
        goto fail;
    mode_t old = umask(0077);
    b->admin = s_bind(b, ZMQ_ROUTER, admin_cfg, "admin", admin_ep, sizeof admin_ep);
    umask(old);
    if (!b->admin)
        goto fail;
    /* remember which file we bound: only that one is removed at exit */
    struct stat asb;
    if (strlen(admin_cfg + 6) < sizeof b->admin_path && lstat(admin_cfg + 6, &asb) == 0) {
        snprintf(b->admin_path, sizeof b->admin_path, "%s", admin_cfg + 6);
        b->admin_dev = asb.st_dev;
        b->admin_ino = asb.st_ino;
    }
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
    gs_log(GS_LOG_INFO, "ready",
           "upload=%s feed=%s admin=%s metrics_port=%d store=\"%s\" head_seq=%llu "
           "security=%s server_key=%s max_connections=%lld handshake_timeout_ms=%lld",
           up_ep, feed_ep, admin_ep, b->http_fd >= 0 ? b->http_port : 0, cfg->store,
           (unsigned long long) head, b->secure ? "curve" : "none",
           b->secure ? b->server_public : "-", (long long) max_conns,
           (long long) cfg->handshake_timeout_ms);
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
    gs_conns_destroy(&b->conns); /* after the sockets it watches, before the context */
    s_metrics_halt(b);
    gs_auth_destroy(&b->auth);
    if (b->ctx)
        zsys_shutdown();
    struct stat asb;
    if (b->admin_path[0] && lstat(b->admin_path, &asb) == 0 && asb.st_dev == b->admin_dev &&
        asb.st_ino == b->admin_ino)
        unlink(b->admin_path);  /* ours: the very file this process bound */
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
    s_feed_deinit(&b->feed);
    if (s_signal_broker == b)
        s_signal_broker = NULL;
    free(b);
    *self_p = NULL;
}

/*
 * gs_broker: gridsyncd's lifecycle. gs_broker_new opens the store, binds
 * every socket and creates the writer and the feed; gs_broker_run starts
 * the worker threads, runs the frontend on the calling thread and joins
 * them; gs_broker_destroy closes everything. The threads' bodies live in
 * their own modules; gs_broker_int.h has the map and says which thread
 * owns what.
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

#include "gs_bridge.h"
#include "gs_broker_int.h"
#include "gs_endpoint.h"
#include "gs_feed.h"
#include "gs_frontend.h"
#include "gs_log.h"
#include "gs_reader.h"
#include "gs_replica.h"
#include "gs_thread.h"
#include "gs_writer.h"

/* declared only in libzmq's draft API, but 4.3.4 accepts it in every build
 * (gs_broker_new says what happens when one does not) */
#ifndef ZMQ_ZERO_COPY_RECV
#define ZMQ_ZERO_COPY_RECV 10
#endif

static gs_broker_t *s_signal_broker;    /* for the signal handler */

/* ---- lifecycle ------------------------------------------------------------- */

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
            gs_metrics_serve_one(b->http_fd, &b->metrics, b->store, gs_now_ms());
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

/* Stop and join the bridge thread, if it runs (after the writer: no more
 * notes come, and to_bridge is the lifecycle's). */
static void
s_bridge_halt(gs_broker_t *b)
{
    if (!b->bridge_running)
        return;
    gs_bridge_halt(b->bridge, b->to_bridge);
    pthread_join(b->bridge_thread, NULL);
    b->bridge_running = 0;
}

static void
s_reader_socks_close(gs_broker_t *b)
{
    for (int i = 0; i < b->cfg.readers; i++)
        gs_reader_close(&b->reader_socks[i]);
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
    s_bridge_halt(b);
    if (b->threads_started >= 1)
        pthread_join(b->writer_thread, NULL);
    if (b->threads_started >= 2)
        pthread_join(b->publisher_thread, NULL);
    for (int i = 0; i < readers_started; i++)
        pthread_join(b->readers[i], NULL);
    s_reader_socks_close(b);
    b->threads_started = 0;
    return -1;
}

int
gs_broker_run(gs_broker_t *self)
{
    gs_broker_t *b = self;
    /* every reader connected before any job or drain marker is dealt
     * (gs_reader.h says why) */
    for (int i = 0; i < b->cfg.readers; i++) {
        if (gs_reader_open(&b->reader_socks[i], b)) {
            gs_log(GS_LOG_ERROR, "start_failed", "what=\"reader sockets\" error=\"%s\"",
                   zmq_strerror(errno));
            s_reader_socks_close(b);
            return -1;
        }
    }
    /* a replica's writer is the replica thread: the same place, the same
     * drain protocol */
    const char *wname = b->replica ? "gs-replica" : "gs-writer";
    int rc = b->replica ? gs_thread_start(&b->writer_thread, wname, gs_replica_main, b->replica)
                        : gs_thread_start(&b->writer_thread, wname, gs_writer_main, b->writer);
    if (rc)
        return s_start_failed(b, wname, rc, 0);
    b->threads_started++;
    rc = gs_thread_start(&b->publisher_thread, "gs-publisher", gs_feed_main, b->feed);
    if (rc)
        return s_start_failed(b, "gs-publisher", rc, 0);
    b->threads_started++;
    for (int i = 0; i < b->cfg.readers; i++) {
        char name[16];
        snprintf(name, sizeof name, "gs-reader-%d", i);
        rc = gs_thread_start(&b->readers[i], name, gs_reader_main, &b->reader_socks[i]);
        if (rc)
            return s_start_failed(b, name, rc, i);
        b->threads_started++;
    }
    if (b->bridge) {
        rc = gs_thread_start(&b->bridge_thread, "gs-bridge", gs_bridge_main, b->bridge);
        if (rc)
            return s_start_failed(b, "gs-bridge", rc, b->cfg.readers);
        b->bridge_running = 1;
    }
    if (b->http_fd >= 0) {
        rc = gs_thread_start(&b->metrics_thread, "gs-metrics", s_metrics_main, b);
        if (rc)
            return s_start_failed(b, "gs-metrics", rc, b->cfg.readers);
        b->metrics_running = 1;
    }

    /* only now: a stop request (SIGTERM) from here on drains and exits */
    gs_log(GS_LOG_INFO, "ready", "%s", b->ready);
    gs_frontend_run(b);

    /* every worker reported done: their replies are sent; stop the feed */
    s_metrics_halt(b);
    gs_ptr_send(b->to_publisher, NULL);
    pthread_join(b->writer_thread, NULL);
    s_bridge_halt(b);
    for (int i = 0; i < b->cfg.readers; i++)
        pthread_join(b->readers[i], NULL);
    s_reader_socks_close(b);
    pthread_join(b->publisher_thread, NULL);
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
    gs_metrics_init(&b->metrics, gs_now_ms());
    b->metrics.batch_max_records = cfg->batch_max_records;
    b->metrics.batch_linger_us = cfg->batch_linger_us;
    char why[600];
    /* a replica's NATS settings are checked with its plan (gs_replica_new);
     * a replica has no bridge: its writer is the replica thread */
    if (!cfg->replica_of[0] && gs_bridge_check(cfg, why, sizeof why)) {
        gs_log(GS_LOG_ERROR, "config_refused", "msg=\"%s\"", why);
        goto fail;
    }
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
    if (gs_store_upgraded_from(b->store))
        gs_log(GS_LOG_INFO, "store_upgraded",
               "dir=\"%s\" from_format=%u format=7 digested_records=%llu person_tags=%llu "
               "ids_rewritten=%llu",
               cfg->store, gs_store_upgraded_from(b->store),
               (unsigned long long) gs_store_digests_built(b->store),
               (unsigned long long) gs_store_persons_built(b->store),
               (unsigned long long) gs_store_ids_compacted(b->store));
    if ((cfg->replica_rebaseline[0] || cfg->replica_repair[0]) && !cfg->replica_of[0]) {
        gs_log(GS_LOG_ERROR, "config_error", "msg=\"%s is for a replica: replica-of is not "
               "set\"", cfg->replica_rebaseline[0] ? "replica-rebaseline" : "replica-repair");
        goto fail;
    }
    if (cfg->replica_of[0]) {
        /* the config is checked and a re-baseline done before anything binds */
        b->replica = gs_replica_new(b);
        if (!b->replica)
            goto fail;
        b->metrics.replica_section = gs_replica_metrics;
        b->metrics.replica_arg = b->replica;
    }
    uint64_t head = 0;
    gs_store_head(b->store, &head);
    atomic_store(&b->head_seq, head);
    b->serve = (gs_serve_t) {
        .store = b->store,
        .metrics = &b->metrics,
        .subscriptions = &b->subscriptions,
        .sync_max_events = cfg->sync_max_events,
        .snapshot_max_records = cfg->snapshot_max_records,
        .feed_restricted = cfg->feed_restricted,
        .secure = !cfg->insecure_dev,
    };
    if (cfg->no_sync)
        gs_log(GS_LOG_WARN, "no_sync",
               "msg=\"commits are not durable: acked data can be lost on power loss\"");

    b->readers = calloc((size_t) cfg->readers, sizeof *b->readers);
    b->reader_socks = calloc((size_t) cfg->readers, sizeof *b->reader_socks);
    /* the writer's arrays, here where a failure can still be reported, and
     * before any socket or thread exists */
    b->writer = gs_writer_new(b);
    if (!b->readers || !b->reader_socks || !b->writer) {
        gs_log(GS_LOG_ERROR, "out_of_memory", "what=\"writer tables\" batch_max_records=%lld",
               (long long) cfg->batch_max_records);
        goto fail;
    }
    /* and the publisher's (they grow with the subscriptions later; a
     * subscription they cannot take then is refused, logged) */
    b->feed = gs_feed_new(b);
    if (!b->feed) {
        gs_log(GS_LOG_ERROR, "out_of_memory", "what=\"publisher tables\"");
        goto fail;
    }
    /* and the frontend's room for an upload's record spans */
    b->fe_records = gs_frontend_records_new(&b->limits);
    if (!b->fe_records) {
        gs_log(GS_LOG_ERROR, "out_of_memory", "what=\"frontend tables\" max_records=%u",
               (unsigned) b->limits.max_records);
        goto fail;
    }
    if (cfg->jetstream_url[0] && !cfg->replica_of[0] && !(b->bridge = gs_bridge_new(b)))
        goto fail;

    /* the ZeroMQ context comes from CZMQ (zsys), as the broker's keypair
     * does (zcert); CURVE handshakes are authorised by gs_auth's own ZAP
     * handler, not by CZMQ's zauth */
    zsys_handler_set(NULL);
    b->ctx = zsys_init();
    if (!b->ctx)
        goto fail;
    /* Messages read from a connection are copied out of its 8 KB receive
     * buffer rather than pointing into it: a zero-copy message keeps the
     * buffer, with its table of reference counts (18 KB), and the next read
     * takes a fresh one. Copying keeps one buffer per connection, mostly
     * untouched, for a copy of at most 8 KB per message (CURVE copies each
     * message once more anyway to decrypt it). Set before any socket is
     * made: a socket takes it from the context when created. */
    if (zmq_ctx_set(b->ctx, ZMQ_ZERO_COPY_RECV, 0))
        gs_log(GS_LOG_INFO, "zero_copy_recv", "msg=\"this libzmq reads messages without a "
               "copy; connections cost about 4 KB more each\"");
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
    b->to_writer = s_bind(b, ZMQ_PAIR, GS_EP_WRITER, "writer", NULL, 0);
    b->to_readers = s_bind(b, ZMQ_PUSH, GS_EP_READERS, "readers", NULL, 0);
    b->replies = s_bind(b, ZMQ_PULL, GS_EP_REPLIES, "replies", NULL, 0);
    b->to_publisher = s_bind(b, ZMQ_PAIR, GS_EP_EVENTS, "events", NULL, 0);
    if (!b->to_writer || !b->to_readers || !b->replies || !b->to_publisher)
        goto fail;
    if (b->bridge) {
        /* the writer's notes of new heads: a few at most, dropped when
         * full (gs_bridge_notify), so the writer never waits for it */
        b->to_bridge = s_bind(b, ZMQ_PUSH, GS_EP_BRIDGE, "bridge", NULL, 0);
        if (!b->to_bridge)
            goto fail;
        int small = 4, no_linger = 0;
        zmq_setsockopt(b->to_bridge, ZMQ_SNDHWM, &small, sizeof small);
        zmq_setsockopt(b->to_bridge, ZMQ_LINGER, &no_linger, sizeof no_linger);
    }
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
        b->auth = gs_auth_new(b->ctx, b->store, &b->metrics);
        if (!b->auth)
            goto fail;
    }
    b->router = zmq_socket(b->ctx, ZMQ_ROUTER);
    if (b->secure && gs_auth_curve_server(b->router, server_secret))
        goto fail;
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
    if (gs_feed_bind(b->feed, cfg->feed_endpoint, feed_ep, sizeof feed_ep)) {
        gs_log(GS_LOG_ERROR, "bind_failed", "what=feed endpoint=\"%s\" error=\"%s\"",
               cfg->feed_endpoint, zmq_strerror(errno));
        goto fail;
    }
    if (!b->secure && !s_loopback("feed", feed_ep, 1))
        goto fail;

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
    char replica_of[600] = "";
    if (b->replica)
        gs_replica_describe(b->replica, replica_of, sizeof replica_of);
    /* logged by gs_broker_run once every thread runs, after the caller has
     * set up signal handling (gs_broker.h) */
    snprintf(b->ready, sizeof b->ready,
             "upload=%s feed=%s admin=%s metrics_port=%d store=\"%s\" head_seq=%llu "
             "security=%s server_key=%s max_connections=%lld handshake_timeout_ms=%lld%s%s",
             up_ep, feed_ep, admin_ep, b->http_fd >= 0 ? b->http_port : 0, cfg->store,
             (unsigned long long) head, b->secure ? "curve" : "none",
             b->secure ? b->server_public : "-", (long long) max_conns,
             (long long) cfg->handshake_timeout_ms, b->replica ? " replica_of=" : "",
             replica_of);
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
    s_bridge_halt(b);
    void **socks[] = { &b->router, &b->admin, &b->to_writer, &b->to_readers, &b->replies,
                       &b->to_publisher, &b->to_bridge };
    for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++)
        if (*socks[i]) {
            zmq_close(*socks[i]);
            *socks[i] = NULL;
        }
    gs_feed_close(b->feed);
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
    free(b->reader_socks);
    gs_writer_destroy(&b->writer);
    gs_replica_destroy(&b->replica);
    gs_feed_destroy(&b->feed);
    gs_frontend_records_destroy(&b->fe_records);
    gs_bridge_destroy(&b->bridge);
    if (s_signal_broker == b)
        s_signal_broker = NULL;
    free(b);
    *self_p = NULL;
}

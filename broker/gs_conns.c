/*
 * gs_conns: the connection bound. See gs_conns.h.
 *
 * One thread polls a wake-up pipe and one PAIR per watched socket, connected
 * to that socket's monitor. A watch made on another thread hands its PAIR
 * over under the mutex (a ZeroMQ socket may change threads across a full
 * memory barrier) and writes a byte to the pipe.
 */
#include "gs_conns.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "gs_log.h"
#include "gs_thread.h"

#define S_WATCHES_MAX 64            /* watched sockets alive at once (2, plus feed reopens) */
#define S_EVENTS_MAX 4096           /* events read before shedding (one pass) */
#define S_LOG_EVERY_MS 10000        /* at most one connections_bound line per this */
#define S_FDS_CAP (1u << 22)        /* descriptors tracked one by one */
#define S_STOP_WAIT_MS 15000        /* for watched sockets to be destroyed (linger is 2 s) */
#define S_EVENTS (ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_MONITOR_STOPPED)
/* added for CURVE sockets only: a plaintext broker has no handshake to fail
 * but a greeting mismatch, which names a CURVE client, not a plaintext one */
#define S_EVENTS_CURVE (S_EVENTS | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)

typedef struct {
    void *pair;                     /* connected to the socket's monitor */
    uint16_t id;                    /* 1.., marks its descriptors in fds[] */
    char what[16];                  /* "upload", "feed" */
} s_watch_t;

/* One event read from a monitor, kept until the pass is done. */
typedef struct {
    int type;                       /* ZMQ_EVENT_* */
    int fd;                         /* the connection's descriptor */
    int port;                       /* the accepting endpoint's port, 0 if unknown */
    int watch;                      /* index into watches[] */
    uint32_t value;                 /* the event's value as sent */
} s_event_t;

/* One kind of failed handshake, logged at most every S_LOG_EVERY_MS. */
typedef struct {
    int64_t last_log_ms;            /* last line */
    uint64_t logged;                /* total at that line */
} s_hs_log_t;

struct gs_conns {
    void *ctx;                      /* the broker's ZeroMQ context */
    gs_metrics_t *m;                /* counts go here */
    int64_t max;                    /* the bound */
    pthread_t thread;               /* "gs-conns" */
    int running;                    /* thread started */
    int wake[2];                    /* self-pipe: new watches, stop */
    pthread_mutex_t lock;           /* guards pending, n_pending, stop, next_id */
    s_watch_t pending[S_WATCHES_MAX]; /* watches made, not yet taken by the thread */
    size_t n_pending;
    int stop;                       /* destroy asked the thread to end */
    unsigned next_id;               /* for watch ids and monitor endpoints */
    /* the thread's own state */
    s_watch_t watches[S_WATCHES_MAX];
    size_t n_watches;
    uint16_t *fds;                  /* fd -> watch id holding it open, 0 = none */
    size_t n_fds;                   /* entries in fds */
    int64_t open;                   /* connections held open */
    int64_t last_log_ms;            /* last connections_bound line */
    uint64_t refused_logged;        /* refused count at that line */
    s_hs_log_t plaintext_log;       /* event=plaintext_client */
    s_hs_log_t hs_failed_log;       /* event=handshake_failed */
    s_event_t events[S_EVENTS_MAX]; /* one pass */
};

static int64_t
s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The port of "tcp://HOST:PORT" (0 for anything else). */
static int
s_endpoint_port(const char *ep, size_t len)
{
    if (len < 7 || strncmp(ep, "tcp://", 6) != 0)
        return 0;
    size_t i = len;
    while (i > 6 && ep[i - 1] >= '0' && ep[i - 1] <= '9')
        i--;
    if (i == len || ep[i - 1] != ':' || len - i > 5)
        return 0;
    int port = 0;
    for (; i < len; i++)
        port = port * 10 + (ep[i] - '0');
    return port;
}

/* Is fd still a TCP socket whose local port is port? */
static int
s_is_ours(int fd, int port)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int type = 0;
    socklen_t tl = sizeof type;
    if (port <= 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) || type != SOCK_STREAM ||
        getsockname(fd, (struct sockaddr *) &ss, &sl))
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *) &ss)->sin_port) == port;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *) &ss)->sin6_port) == port;
    return 0;
}

/* Read one event (two frames, version 1) from a monitor PAIR without
 * waiting. 0 with *ev filled, -1 when none is queued. */
static int
s_read_event(void *pair, s_event_t *ev)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, pair, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return -1;
    }
    int ok = zmq_msg_size(&m) == 6;
    if (ok) {
        const uint8_t *d = zmq_msg_data(&m);
        uint16_t type;
        uint32_t value;
        memcpy(&type, d, 2);
        memcpy(&value, d + 2, 4);
        ev->type = type;
        ev->fd = (int) value;
        ev->value = value;
    }
    int more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    ev->port = 0;
    if (more) {
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, pair, 0) >= 0)
            ev->port = s_endpoint_port(zmq_msg_data(&m), zmq_msg_size(&m));
        zmq_msg_close(&m);
    }
    if (!ok)
        ev->type = 0; /* not an event of version 1: ignored */
    return 0;
}

static void
s_set_open(gs_conns_t *c, int64_t open)
{
    c->open = open;
    atomic_store(&c->m->connections_open, open);
}

/* A watched socket was closed: its connections go with it. */
static void
s_watch_stopped(gs_conns_t *c, size_t w)
{
    uint16_t id = c->watches[w].id;
    int64_t open = c->open;
    for (size_t fd = 0; fd < c->n_fds; fd++)
        if (c->fds[fd] == id) {
            c->fds[fd] = 0;
            open--;
        }
    s_set_open(c, open < 0 ? 0 : open);
    int linger = 0;
    zmq_setsockopt(c->watches[w].pair, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(c->watches[w].pair);
    c->watches[w] = c->watches[--c->n_watches];
}

/* Count n more of a kind of failed handshake in *counter and log line
 * (event, what, total since the last line, msg) unless one was logged less
 * than S_LOG_EVERY_MS ago. */
static void
s_handshake_log(s_hs_log_t *l, atomic_uint_fast64_t *counter,
                const char *event, const char *what, const char *detail, const char *msg)
{
    uint64_t total = atomic_fetch_add(counter, 1) + 1;
    int64_t now = s_mono_ms();
    if (l->last_log_ms != 0 && now - l->last_log_ms < S_LOG_EVERY_MS)
        return;
    gs_log(GS_LOG_WARN, event, "what=%s%s count=%llu total=%llu msg=\"%s\"", what, detail,
           (unsigned long long) (total - l->logged), (unsigned long long) total, msg);
    l->last_log_ms = now;
    l->logged = total;
}

/* A handshake on a CURVE socket failed for a protocol reason (ZMQ_EVENT_
 * HANDSHAKE_FAILED_PROTOCOL; the value is a ZMQ_PROTOCOL_ERROR_*). libzmq
 * gives no peer address with it: the event's endpoint is the broker's own.
 * A key the broker does not know fails later, in ZAP, and gs_auth logs
 * that (handshake_refused). */
static void
s_handshake_failed(gs_conns_t *c, const s_event_t *e)
{
    const char *what = c->watches[e->watch].what;
    if (e->value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
        /* the client's greeting asked for another mechanism: NULL, from a
         * client that has no CURVE keys (or PLAIN) */
        s_handshake_log(&c->plaintext_log, &c->m->handshakes_plaintext, "plaintext_client",
                        what, "",
                        "a client without CURVE keys tried to connect; give it an enrolment "
                        "bundle (gridctl devices enrol --bundle)");
        return;
    }
    char detail[48];
    snprintf(detail, sizeof detail, " error=0x%08x", (unsigned) e->value);
    /* ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC: the server could not open the
     * client's HELLO, which is what a client with the wrong server key sends */
    s_handshake_log(&c->hs_failed_log, &c->m->handshakes_failed, "handshake_failed", what,
                    detail,
                    e->value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC
                        ? "a client's CURVE handshake could not be decrypted: it most likely "
                          "has the wrong server key; give it a fresh enrolment bundle"
                        : "a client broke the ZeroMQ handshake");
}

/* Read what every readable monitor has queued, then shed what is over the
 * bound (see "Descriptor reuse" in gs_conns.h). */
static void
s_pass(gs_conns_t *c, const zmq_pollitem_t *items, size_t n_items)
{
    size_t n = 0;
    for (size_t i = 0; i < n_items && n < S_EVENTS_MAX; i++) {
        if (!(items[i].revents & ZMQ_POLLIN))
            continue;
        while (n < S_EVENTS_MAX && s_read_event(items[i].socket, &c->events[n]) == 0) {
            c->events[n].watch = (int) i;
            n++;
        }
    }
    int64_t open = c->open;
    uint64_t refused = 0;
    int stopped[S_WATCHES_MAX] = { 0 };
    for (size_t i = 0; i < n; i++) {
        s_event_t *e = &c->events[i];
        uint16_t id = c->watches[e->watch].id;
        if (e->type == ZMQ_EVENT_MONITOR_STOPPED) {
            stopped[e->watch] = 1;
            continue;
        }
        if (e->type == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
            s_handshake_failed(c, e);
            continue;
        }
        if (e->fd < 0)
            continue;
        size_t fd = (size_t) e->fd;
        if (e->type == ZMQ_EVENT_ACCEPTED) {
            if (fd < c->n_fds && c->fds[fd] == 0)
                c->fds[fd] = id;
            open++;
            if (open <= c->max)
                e->type = 0; /* within the bound: nothing more to do */
        } else if (e->type == ZMQ_EVENT_DISCONNECTED) {
            if (fd < c->n_fds && c->fds[fd] == id) {
                c->fds[fd] = 0;
                open--;
            } else if (fd >= c->n_fds) {
                open--;
            }
            /* a connection over the bound that has gone by itself is not
             * shed: its descriptor may already be something else */
            for (size_t j = 0; j < i; j++)
                if (c->events[j].type == ZMQ_EVENT_ACCEPTED && c->events[j].fd == e->fd &&
                    c->events[j].watch == e->watch)
                    c->events[j].type = 0;
        }
    }
    s_set_open(c, open < 0 ? 0 : open);
    for (size_t i = 0; i < n; i++) {
        s_event_t *e = &c->events[i];
        if (e->type != ZMQ_EVENT_ACCEPTED || !s_is_ours(e->fd, e->port))
            continue;
        /* libzmq sees the peer go and closes the descriptor itself */
        if (shutdown(e->fd, SHUT_RDWR) == 0)
            refused++;
    }
    if (refused) {
        uint64_t total = atomic_fetch_add(&c->m->connections_refused, refused) + refused;
        int64_t now = s_mono_ms();
        if (c->last_log_ms == 0 || now - c->last_log_ms >= S_LOG_EVERY_MS) {
            gs_log(GS_LOG_WARN, "connections_bound",
                   "max_connections=%lld open=%lld refused=%llu refused_total=%llu "
                   "msg=\"connection bound reached: new connections are closed until idle "
                   "ones time out (handshake-timeout-ms) or leave\"",
                   (long long) c->max, (long long) c->open,
                   (unsigned long long) (total - c->refused_logged),
                   (unsigned long long) total);
            c->last_log_ms = now;
            c->refused_logged = total;
        }
    }
    for (size_t w = n_items; w-- > 0;)
        if (stopped[w])
            s_watch_stopped(c, w);
}

static void *
s_main(void *arg)
{
    gs_conns_t *c = arg;
    zmq_pollitem_t items[S_WATCHES_MAX + 1];
    int64_t stop_deadline = 0;  /* set once destroy has asked */
    for (;;) {
        size_t n = c->n_watches;
        if (stop_deadline && n == 0)
            break;  /* every watched socket has been destroyed */
        if (stop_deadline && s_mono_ms() > stop_deadline) {
            gs_log(GS_LOG_WARN, "connections_watch_stuck",
                   "watches=%zu msg=\"watched sockets not destroyed in time\"", n);
            break;
        }
        for (size_t i = 0; i < n; i++)
            items[i] = (zmq_pollitem_t) { c->watches[i].pair, 0, ZMQ_POLLIN, 0 };
        items[n] = (zmq_pollitem_t) { NULL, c->wake[0], ZMQ_POLLIN, 0 };
        if (zmq_poll(items, (int) n + 1, stop_deadline ? 100 : -1) < 0) {
            if (errno == EINTR)
                continue;
            break; /* ETERM: the context is going away */
        }
        if (items[n].revents & ZMQ_POLLIN) {
            char buf[64];
            while (read(c->wake[0], buf, sizeof buf) > 0) {
            }
            pthread_mutex_lock(&c->lock);
            int stop = c->stop;
            for (size_t i = 0; i < c->n_pending; i++)
                c->watches[c->n_watches++] = c->pending[i];
            c->n_pending = 0;
            pthread_mutex_unlock(&c->lock);
            /* a watched socket tells its monitor when it is destroyed,
             * which libzmq does in its reaper thread after the linger,
             * and it waits for that message to be taken: so the PAIRs
             * stay open until each one has said so */
            if (stop && !stop_deadline)
                stop_deadline = s_mono_ms() + S_STOP_WAIT_MS;
        }
        s_pass(c, items, n);
    }
    return NULL;
}

gs_conns_t *
gs_conns_new(void *ctx, gs_metrics_t *m, int64_t max)
{
    if (!ctx || !m || max < 1) {
        errno = EINVAL;
        return NULL;
    }
    gs_conns_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->ctx = ctx;
    c->m = m;
    c->max = max;
    c->wake[0] = c->wake[1] = -1;
    pthread_mutex_init(&c->lock, NULL);
    struct rlimit rl;
    size_t nfds = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        nfds = (size_t) rl.rlim_cur;
    c->n_fds = nfds < S_FDS_CAP ? nfds : S_FDS_CAP;
    c->fds = calloc(c->n_fds, sizeof *c->fds);
    if (!c->fds || pipe2(c->wake, O_CLOEXEC | O_NONBLOCK))
        goto fail;
    int rc = gs_thread_start(&c->thread, "gs-conns", s_main, c);
    if (rc) {
        errno = rc;
        goto fail;
    }
    c->running = 1;
    atomic_store(&m->connections_max, max);
    return c;
fail:;
    int err = errno;
    gs_conns_destroy(&c);
    errno = err;
    return NULL;
}

int
gs_conns_watch(gs_conns_t *self, void *sock, const char *what)
{
    pthread_mutex_lock(&self->lock);
    unsigned serial = ++self->next_id;
    int full = self->n_pending == S_WATCHES_MAX;
    pthread_mutex_unlock(&self->lock);
    if (full) {
        errno = ENOSPC;
        return -1;
    }
    /* ids mark descriptors and may repeat after 65,535 watches (the feed
     * socket is reopened at revocations); only a few are alive at once */
    uint16_t id = (uint16_t) (serial % UINT16_MAX + 1);
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://gs-conns-%u", serial);
    int mechanism = ZMQ_NULL;
    size_t ml = sizeof mechanism;
    if (zmq_getsockopt(sock, ZMQ_MECHANISM, &mechanism, &ml))
        return -1;
    void *pair = zmq_socket(self->ctx, ZMQ_PAIR);
    if (!pair)
        return -1;
    /* no bound on queued events: libzmq's I/O thread blocks when it cannot
     * hand one over, so the queue towards this thread must never be full */
    int zero = 0;
    zmq_setsockopt(pair, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(pair, ZMQ_LINGER, &zero, sizeof zero);
    /* connected before the watched socket binds, so that no event is
     * emitted while nobody listens (libzmq would block on it) */
    int events = mechanism == ZMQ_CURVE ? S_EVENTS_CURVE : S_EVENTS;
    if (zmq_socket_monitor(sock, ep, events) || zmq_connect(pair, ep)) {
        int err = errno;
        zmq_socket_monitor(sock, NULL, 0);
        zmq_close(pair);
        errno = err;
        return -1;
    }
    s_watch_t w = { pair, id, "" };
    snprintf(w.what, sizeof w.what, "%s", what ? what : "");
    pthread_mutex_lock(&self->lock);
    if (self->n_pending == S_WATCHES_MAX) {
        pthread_mutex_unlock(&self->lock);
        zmq_socket_monitor(sock, NULL, 0);
        zmq_close(pair);
        errno = ENOSPC;
        return -1;
    }
    self->pending[self->n_pending++] = w;
    pthread_mutex_unlock(&self->lock);
    char b = 1;
    if (write(self->wake[1], &b, 1) < 0 && errno != EAGAIN)
        return -1;
    return 0;
}

void
gs_conns_destroy(gs_conns_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gs_conns_t *c = *self_p;
    if (c->running) {
        pthread_mutex_lock(&c->lock);
        c->stop = 1;
        pthread_mutex_unlock(&c->lock);
        char b = 1;
        if (write(c->wake[1], &b, 1) < 0) {
            /* a full pipe already wakes the thread */
        }
        pthread_join(c->thread, NULL);
    }
    int zero = 0;
    for (size_t i = 0; i < c->n_watches; i++) {
        zmq_setsockopt(c->watches[i].pair, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(c->watches[i].pair);
    }
    for (size_t i = 0; i < c->n_pending; i++) {
        zmq_setsockopt(c->pending[i].pair, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(c->pending[i].pair);
    }
    for (int i = 0; i < 2; i++)
        if (c->wake[i] >= 0)
            close(c->wake[i]);
    pthread_mutex_destroy(&c->lock);
    free(c->fds);
    free(c);
    *self_p = NULL;
}

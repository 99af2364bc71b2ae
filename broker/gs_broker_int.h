/*
 * gs_broker_int: what the broker's modules share. Internal to broker/:
 * tools and tests outside broker/ use gs_broker.h only.
 *
 * One module per thread, around the gs_broker_t that gs_broker.c builds:
 *   gs_broker.c    lifecycle: gs_broker_new binds every socket and creates
 *                  the writer and the feed, gs_broker_run starts and joins
 *                  the threads, gs_broker_destroy; the metrics thread
 *   gs_handoff.c   the jobs and replies the threads pass (gs_handoff.h)
 *   gs_frontend.c  the frontend thread (the caller of gs_broker_run)
 *   gs_writer.c    the writer thread (group commit)
 *   gs_replica.c   the replica thread, the writer of a city replica
 *   gs_feed.c      the publisher thread and its tables (the live feed)
 *   gs_reader.c    the reader threads
 *   gs_bridge.c    the bridge thread: the change log into JetStream
 *   gs_serve.c     the request handlers: (store, request) -> reply bytes,
 *                  no sockets; the one error-reply path
 *   gs_authz.c     the authorisation rule, a pure function
 *
 * Who owns what in gs_broker_t (the struct below says it per field):
 *   - set in gs_broker_new and read-only afterwards, any thread: cfg,
 *     limits, serve, secure, server_secret, server_public, ctx (libzmq
 *     contexts are thread-safe), store (gs_store.h says which of its
 *     calls each thread may make: the writer writes, everyone reads);
 *   - the frontend thread's: router, admin, to_writer, to_readers,
 *     replies, sig_pipe's read end, fe_records;
 *   - the writer thread's: writer, to_publisher (on which gs_broker_run
 *     sends the publisher's stop once the writer has reported done),
 *     to_bridge (likewise the bridge's stop);
 *   - the bridge thread's once started: bridge (gs_bridge.h);
 *   - the publisher thread's once started: feed (gs_feed.h);
 *   - atomics any thread may touch: metrics, head_seq (the writer
 *     stores), subscriptions (the publisher stores), pending (the
 *     frontend adds, the writer subtracts);
 *   - the lifecycle's (gs_broker.c, on the thread that calls new, run and
 *     destroy): the thread handles, the metrics listener and its pipe.
 */
#ifndef GS_BROKER_INT_H
#define GS_BROKER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <zmq.h>

#include "gs_arena.h"
#include "gs_auth.h"
#include "gs_broker.h"
#include "gs_conns.h"
#include "gs_handoff.h"
#include "gs_metrics.h"
#include "gs_serve.h"
#include "gs_store.h"
#include "gs_validate.h"

/* The inproc endpoints of the hand-offs (bound by gs_broker_new). */
#define GS_EP_WRITER "inproc://gs-writer"     /* PAIR: frontend -> writer */
#define GS_EP_READERS "inproc://gs-readers"   /* PUSH/PULL: frontend -> readers */
#define GS_EP_REPLIES "inproc://gs-replies"   /* PUSH/PULL: workers -> frontend */
#define GS_EP_EVENTS "inproc://gs-events"     /* PAIR: writer -> publisher */

typedef struct gs_writer gs_writer_t;
typedef struct gs_feed gs_feed_t;
typedef struct gs_bridge gs_bridge_t;


struct gs_broker {
    gs_config_t cfg;                /* effective settings */
    gs_limits_t limits;             /* validation limits derived from cfg */
    gs_serve_t serve;               /* what the request handlers read (gs_serve.h) */
    gs_store_t *store;              /* the one store */
    void *ctx;                      /* ZeroMQ context (CZMQ's zsys context) */
    void *router;                   /* upload endpoint (frontend) */
    void *admin;                    /* admin endpoint (frontend) */
    void *to_writer;                /* PAIR, frontend side */
    void *to_readers;               /* PUSH, frontend side */
    void *replies;                  /* PULL, frontend side */
    void *to_publisher;             /* PAIR, writer side (bound here) */
    uint8_t server_secret[32];      /* CURVE secret, to open the feed socket again */
    int http_fd;                    /* metrics listener or -1 */
    int http_port;                  /* bound metrics port */
    pthread_t metrics_thread;       /* serves http_fd, so a slow scraper stalls only it */
    int metrics_running;            /* metrics_thread was started */
    int metrics_stop[2];            /* self-pipe that stops metrics_thread */
    char admin_path[320];           /* ipc socket file to remove at exit, or "" */
    dev_t admin_dev;                /* and its identity when bound: removed only */
    ino_t admin_ino;                /* while the path is still that file */
    int sig_pipe[2];                /* self-pipe for stop requests */
    pthread_t writer_thread;        /* gs-writer */
    pthread_t publisher_thread;     /* gs-publisher */
    pthread_t *readers;             /* cfg.readers threads */
    struct gs_reader *reader_socks; /* their sockets, cfg.readers (gs_reader.h) */
    char ready[1024];               /* the "ready" line, logged once all run */
    gs_writer_t *writer;            /* the writer's group, allocated before it starts */
    gs_feed_t *feed;                /* the live feed: socket and tables (gs_feed.h) */
    gs_bridge_t *bridge;            /* the JetStream bridge, or NULL (gs_bridge.h) */
    void *to_bridge;                /* PUSH, writer side: new heads for the bridge, or NULL */
    pthread_t bridge_thread;        /* gs-bridge */
    int bridge_running;             /* bridge_thread was started */
    struct gs_replica *replica;     /* replica-of set: the replica thread's state */
                                    /* (gs_replica.h), which runs instead of the writer */
    int threads_started;            /* how many of the above run */
    int secure;                     /* CURVE on client-facing TCP sockets */
    gs_auth_t *auth;                /* ZAP handler (secure mode) */
    gs_conns_t *conns;              /* the bound on client connections */
    char server_public[41];         /* broker public key, Z85 */
    gs_metrics_t metrics;           /* counters, shared by all threads */
    atomic_uint_fast64_t head_seq;  /* last committed seq (writer updates) */
    atomic_int subscriptions;       /* distinct prefixes (publisher updates) */
    atomic_int_fast64_t pending;    /* records handed to the writer, not yet answered */
    struct gs_prescan_records *fe_records; /* the frontend's scratch for the pre-scan's
                                     * record spans (gs_frontend.h) */
};

/* Wall-clock Unix milliseconds. */
static inline int64_t
gs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic microseconds, for durations and deadlines. */
static inline int64_t
gs_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


#endif

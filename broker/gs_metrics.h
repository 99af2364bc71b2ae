/*
 * gs_metrics: the broker's counters and histograms, and a minimal HTTP
 * listener that serves them in Prometheus text format at /metrics.
 *
 * Counters are atomics, so any broker thread may count without a lock; the
 * broker's metrics thread (gs-metrics) renders and serves them, one scrape
 * at a time. Store gauges (size, map use, head seq) are read at render time.
 */
#ifndef GS_METRICS_H
#define GS_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "gs_store.h"
#include "gs_wire.h"

#define GS_HIST_BUCKETS 16
#define GS_REASONS_MAX 140      /* Reason values are below this */
/* GS_RESULT_STATUSES (gs_validate.h, through gs_store.h): ResultStatus
 * values are below it */

typedef struct gs_hist {
    const double *bounds;               /* upper bounds, GS_HIST_BUCKETS-1 finite */
    atomic_uint_fast64_t buckets[GS_HIST_BUCKETS]; /* non-cumulative counts */
    atomic_uint_fast64_t count;         /* observations */
    _Atomic double sum;                 /* sum of observations */
} gs_hist_t;

typedef struct gs_metrics {
    int64_t started_ms;                         /* for uptime */
    atomic_uint_fast64_t uploads_acked;         /* uploads answered with an Ack */
    atomic_uint_fast64_t uploads_replayed;      /* ... from the idempotency table */
    atomic_uint_fast64_t records[GS_RESULT_STATUSES]; /* by ResultStatus */
    atomic_uint_fast64_t request_errors[GS_REASONS_MAX]; /* Error replies by reason */
    atomic_uint_fast64_t dropped_frames;        /* unaddressable input dropped */
    atomic_uint_fast64_t unroutable_replies;    /* replies to peers that left */
    atomic_uint_fast64_t commits;               /* write transactions committed */
    atomic_uint_fast64_t commit_failures;       /* applies that failed (disk full...) */
    atomic_uint_fast64_t map_grows;             /* LMDB map growths */
    atomic_uint_fast64_t incident_steps[GS_INCIDENT_STATUSES]; /* stored, by status led to */
    gs_hist_t commit_records;                   /* records per commit */
    gs_hist_t commit_seconds;                   /* apply+commit duration */
    gs_hist_t ack_seconds;                      /* receive -> ack sent */
    atomic_uint_fast64_t feed_events;           /* events published */
    atomic_uint_fast64_t feed_incident_events;  /* of them, sent again under an incident topic */
    atomic_uint_fast64_t feed_heartbeats;       /* heartbeats published */
    atomic_int_fast64_t feed_subscriptions;     /* distinct prefixes subscribed */
    atomic_uint_fast64_t feed_refused;          /* subscriptions refused */
    atomic_uint_fast64_t feed_rebinds;          /* feed socket reopened to cut off a revoked key */
    atomic_uint_fast64_t sync_requests;         /* sync requests served */
    atomic_uint_fast64_t ping_requests;         /* pings answered */
    atomic_uint_fast64_t sync_events;           /* events sent in sync replies */
    atomic_uint_fast64_t snapshot_requests;     /* snapshot pages served */
    atomic_uint_fast64_t admin_requests;        /* admin requests served */
    atomic_int_fast64_t connections_open;       /* client connections held (gs_conns) */
    atomic_uint_fast64_t connections_refused;   /* shed over max-connections */
    atomic_int_fast64_t connections_max;        /* the bound in force (reported) */
    atomic_uint_fast64_t handshakes_plaintext;  /* plaintext clients at a CURVE endpoint */
    atomic_uint_fast64_t handshakes_failed;     /* other failed CURVE handshakes (not ZAP) */
    atomic_uint_fast64_t zap_handovers;         /* ZAP sockets closed after a handover (gs_auth) */
    int64_t batch_max_records;                  /* configured bound (reported) */
    int64_t batch_linger_us;                    /* configured bound (reported) */
    int bridge_enabled;                         /* jetstream-url set: the bridge's metrics follow */
    atomic_uint_fast64_t bridge_published;      /* events the stream acknowledged */
    atomic_uint_fast64_t bridge_acked_seq;      /* last seq the stream holds, as last read or acked */
    atomic_int bridge_connected;                /* 1 while connected to NATS */
    atomic_int bridge_stopped;                  /* 1 once stopped for good (lineage, area) */
    atomic_uint_fast64_t bridge_errors;         /* connect, stream and publish errors */
    atomic_uint_fast64_t bridge_reconnects;     /* connections given up and made again */
    gs_hist_t bridge_ack_seconds;               /* writer's note of a commit -> the stream's ack */
    /* a replica's own families (gs_replica_metrics), appended when set;
     * set before the threads start */
    void (*replica_section)(void *arg, gs_wbuf_t *out, int64_t now_ms);
    void *replica_arg;                          /* its argument */
    gs_hist_t replica_stream_seconds;           /* an event's store in the stream -> the
                                                 * replica's commit of it */
} gs_metrics_t;

void gs_metrics_init(gs_metrics_t *m, int64_t now_ms);
void gs_hist_observe(gs_hist_t *h, double v);

/* Render every metric, plus store gauges when store is not NULL. */
void gs_metrics_render(gs_metrics_t *m, gs_store_t *store, int64_t now_ms,
                       gs_wbuf_t *out);

/* Open a listening TCP socket on address:port (port 0 = any free port).
 * Returns the fd or -1 with errno; *bound_port gets the actual port. */
int gs_metrics_listen(const char *address, int port, int *bound_port);

/* Accept one connection on listen_fd and answer it: GET /metrics gets the
 * rendered text, anything else 404. Non-blocking accept; the whole
 * exchange has a deadline of two seconds, after which the client is
 * dropped. The broker calls it from a thread of its own. */
void gs_metrics_serve_one(int listen_fd, gs_metrics_t *m, gs_store_t *store,
                          int64_t now_ms);

#endif

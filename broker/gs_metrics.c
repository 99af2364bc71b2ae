/*
 * gs_metrics: see gs_metrics.h. The HTTP side is deliberately tiny: one
 * request per connection, answered and closed, which is all a Prometheus
 * scraper needs. It binds to loopback by default.
 */
#include "gs_metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gs_incident.h"
#include "gs_validate.h"

static const double s_count_bounds[GS_HIST_BUCKETS - 1] = {
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384
};
static const double s_time_bounds[GS_HIST_BUCKETS - 1] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1, 2.5, 5
};

static const char *s_status_names[GS_RESULT_STATUSES] = {
    "unspecified", "accepted", "unchanged", "merged", "conflict", "rejected"
};

void
gs_metrics_init(gs_metrics_t *m, int64_t now_ms)
{
    memset(m, 0, sizeof *m);
    m->started_ms = now_ms;
    m->commit_records.bounds = s_count_bounds;
    m->commit_seconds.bounds = s_time_bounds;
    m->ack_seconds.bounds = s_time_bounds;
    m->bridge_ack_seconds.bounds = s_time_bounds;
    m->replica_stream_seconds.bounds = s_time_bounds;
}

void
gs_hist_observe(gs_hist_t *h, double v)
{
    int i = 0;
    while (i < GS_HIST_BUCKETS - 1 && v > h->bounds[i])
        i++;
    atomic_fetch_add(&h->buckets[i], 1);
    atomic_fetch_add(&h->count, 1);
    double old = atomic_load(&h->sum);
    while (!atomic_compare_exchange_weak(&h->sum, &old, old + v))
        ;
}

static void
s_counter(gs_wbuf_t *b, const char *name, const char *help, uint64_t v)
{
    gs_wbuf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name,
             name, (unsigned long long) v);
}

static void
s_gauge(gs_wbuf_t *b, const char *name, const char *help, double v)
{
    gs_wbuf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, v);
}

static void
s_hist(gs_wbuf_t *b, const char *name, const char *help, gs_hist_t *h)
{
    gs_wbuf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < GS_HIST_BUCKETS; i++) {
        cum += atomic_load(&h->buckets[i]);
        if (i < GS_HIST_BUCKETS - 1)
            gs_wbuf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i],
                     (unsigned long long) cum);
        else
            gs_wbuf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long) cum);
    }
    gs_wbuf_printf(b, "%s_sum %.9g\n%s_count %llu\n", name, atomic_load(&h->sum), name,
             (unsigned long long) atomic_load(&h->count));
}

/* gs_event_fn: the committed_at (field 8) of the one event asked for. */
static int
s_committed_at(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    uint64_t v = 0;
    if (gs_wire_find_varint(data, len, 8, &v) == 0)
        *(int64_t *) arg = (int64_t) v;
    return 0;
}

/* The bridge's metrics (docs/operations.md). The lags are computed here,
 * at scrape time: in events, the store's head less the last seq the
 * stream holds; in seconds, how long ago the oldest event the stream does
 * not hold yet was committed (0 when it holds everything). */
static void
s_bridge(gs_wbuf_t *b, gs_metrics_t *m, gs_store_t *store, int64_t now_ms)
{
    uint64_t acked = atomic_load(&m->bridge_acked_seq);
    uint64_t head = 0, next = 0, at_head = 0;
    int64_t committed_at = 0;
    if (store && gs_store_head(store, &head) == 0 && head > acked) {
        const char *all[1] = { "" };
        if (gs_store_events(store, all, 1, acked, 1, s_committed_at, &committed_at, &next,
                            &at_head) != 0)
            committed_at = 0;
    }
    double lag_s = committed_at > 0 && now_ms > committed_at
                       ? (double) (now_ms - committed_at) / 1000.0 : 0.0;
    int stopped = atomic_load(&m->bridge_stopped);
    s_counter(b, "gridsync_bridge_published_total",
              "Change events the JetStream stream acknowledged.",
              atomic_load(&m->bridge_published));
    s_gauge(b, "gridsync_bridge_last_seq", "Last seq the district's stream holds.",
            (double) acked);
    s_gauge(b, "gridsync_bridge_lag_events",
            "Committed events the stream does not hold yet (head - last seq).",
            (double) (head > acked ? head - acked : 0));
    s_gauge(b, "gridsync_bridge_lag_seconds",
            "Age of the oldest committed event the stream does not hold yet (0 = caught up).",
            lag_s);
    s_gauge(b, "gridsync_bridge_connected", "1 while the bridge is connected to NATS.",
            (double) atomic_load(&m->bridge_connected));
    gs_wbuf_printf(b, "# HELP gridsync_bridge_state The bridge's state: running, or stopped "
                      "until an operator acts (lineage or area error).\n"
                      "# TYPE gridsync_bridge_state gauge\n"
                      "gridsync_bridge_state{state=\"running\"} %d\n"
                      "gridsync_bridge_state{state=\"stopped\"} %d\n", !stopped, stopped);
    s_counter(b, "gridsync_bridge_errors_total",
              "Bridge errors: connection, stream, publish or refused expectation.",
              atomic_load(&m->bridge_errors));
    s_counter(b, "gridsync_bridge_reconnects_total",
              "Times the bridge gave up its NATS connection and made a new one.",
              atomic_load(&m->bridge_reconnects));
    s_hist(b, "gridsync_bridge_ack_seconds", "Commit (the writer's note to the bridge) to "
           "the stream's ack, per event published after its note.", &m->bridge_ack_seconds);
}

void
gs_metrics_render(gs_metrics_t *m, gs_store_t *store, int64_t now_ms, gs_wbuf_t *b)
{
    gs_wbuf_printf(b, "# HELP gridsync_uploads_total Uploads answered, by how.\n"
                "# TYPE gridsync_uploads_total counter\n"
                "gridsync_uploads_total{result=\"acked\"} %llu\n"
                "gridsync_uploads_total{result=\"replayed\"} %llu\n",
             (unsigned long long) atomic_load(&m->uploads_acked),
             (unsigned long long) atomic_load(&m->uploads_replayed));
    gs_wbuf_printf(b, "# HELP gridsync_records_total Uploaded records by result.\n"
                "# TYPE gridsync_records_total counter\n");
    for (int i = GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED; i < GS_RESULT_STATUSES;
         i++)
        gs_wbuf_printf(b, "gridsync_records_total{status=\"%s\"} %llu\n", s_status_names[i],
                 (unsigned long long) atomic_load(&m->records[i]));
    gs_wbuf_printf(b, "# HELP gridsync_request_errors_total Requests answered with an error, by reason.\n"
                "# TYPE gridsync_request_errors_total counter\n");
    for (int i = 0; i < GS_REASONS_MAX; i++) {
        uint64_t v = atomic_load(&m->request_errors[i]);
        if (v)
            gs_wbuf_printf(b, "gridsync_request_errors_total{reason=\"%s\"} %llu\n",
                     gs_reason_name(i), (unsigned long long) v);
    }
    s_counter(b, "gridsync_dropped_frames_total",
              "Malformed input that could not be answered, dropped.",
              atomic_load(&m->dropped_frames));
    s_counter(b, "gridsync_unroutable_replies_total",
              "Replies whose client had disconnected.", atomic_load(&m->unroutable_replies));
    s_counter(b, "gridsync_commits_total", "Write transactions committed.",
              atomic_load(&m->commits));
    s_counter(b, "gridsync_commit_failures_total",
              "Group commits that failed (nothing acked; e.g. disk full).",
              atomic_load(&m->commit_failures));
    s_counter(b, "gridsync_map_grows_total", "Times the LMDB map grew.",
              atomic_load(&m->map_grows));
    gs_wbuf_printf(b, "# HELP gridsync_incident_steps_total Incident workflow steps stored, by "
                      "the status they led to.\n"
                      "# TYPE gridsync_incident_steps_total counter\n");
    for (int i = 1; i < GS_INCIDENT_STATUSES; i++)
        gs_wbuf_printf(b, "gridsync_incident_steps_total{to=\"%s\"} %llu\n",
                       gs_incident_status_name(i),
                       (unsigned long long) atomic_load(&m->incident_steps[i]));
    s_hist(b, "gridsync_commit_records", "Records per group commit.", &m->commit_records);
    s_hist(b, "gridsync_commit_seconds", "Apply and durable commit time per group commit.",
           &m->commit_seconds);
    s_hist(b, "gridsync_ack_seconds", "Upload received to ack sent.", &m->ack_seconds);
    s_gauge(b, "gridsync_batch_max_records", "Configured group-commit record bound.",
            (double) m->batch_max_records);
    s_gauge(b, "gridsync_batch_linger_seconds", "Configured group-commit linger.",
            (double) m->batch_linger_us / 1e6);
    s_counter(b, "gridsync_feed_events_total", "Change events published on the live feed.",
              atomic_load(&m->feed_events));
    s_counter(b, "gridsync_feed_incident_events_total",
              "Incident events sent again under their incident topic (I<category>/<grid>).",
              atomic_load(&m->feed_incident_events));
    s_counter(b, "gridsync_feed_heartbeats_total", "Heartbeats published.",
              atomic_load(&m->feed_heartbeats));
    s_gauge(b, "gridsync_feed_subscriptions", "Distinct prefixes subscribed on the live feed.",
            (double) atomic_load(&m->feed_subscriptions));
    s_counter(b, "gridsync_feed_refused_total", "Feed subscriptions refused.",
              atomic_load(&m->feed_refused));
    s_counter(b, "gridsync_feed_rebinds_total",
              "Feed socket reopened to cut off a subscriber whose key was revoked.",
              atomic_load(&m->feed_rebinds));
    s_counter(b, "gridsync_sync_requests_total", "Sync (catch-up) requests served.",
              atomic_load(&m->sync_requests));
    s_counter(b, "gridsync_ping_requests_total", "Pings answered (gridctl ping).",
              atomic_load(&m->ping_requests));
    s_counter(b, "gridsync_sync_events_total", "Events sent in sync replies.",
              atomic_load(&m->sync_events));
    s_counter(b, "gridsync_snapshot_requests_total", "Snapshot pages served.",
              atomic_load(&m->snapshot_requests));
    s_counter(b, "gridsync_admin_requests_total", "Admin requests served.",
              atomic_load(&m->admin_requests));
    s_gauge(b, "gridsync_connections_open",
            "Client TCP connections held open on the request and feed endpoints.",
            (double) atomic_load(&m->connections_open));
    s_gauge(b, "gridsync_connections_max", "Configured bound on client connections.",
            (double) atomic_load(&m->connections_max));
    s_counter(b, "gridsync_connections_refused_total",
              "Client connections closed at once because the bound was reached.",
              atomic_load(&m->connections_refused));
    s_counter(b, "gridsync_handshakes_plaintext_total",
              "Clients without CURVE keys that tried to connect to a CURVE endpoint.",
              atomic_load(&m->handshakes_plaintext));
    s_counter(b, "gridsync_handshakes_failed_total",
              "CURVE handshakes broken off for a protocol error (wrong server key...).",
              atomic_load(&m->handshakes_failed));
    s_counter(b, "gridsync_zap_handovers_total",
              "ZAP sockets closed after handing the endpoint over, freeing the pipes of "
              "the connections they checked.",
              atomic_load(&m->zap_handovers));
    if (store) {
        gs_store_info_t info;
        if (gs_store_info(store, &info) == 0) {
            s_gauge(b, "gridsync_store_head_seq", "Last committed change-log seq.",
                    (double) info.head_seq);
            s_gauge(b, "gridsync_store_records", "Records stored.", (double) info.records);
            s_gauge(b, "gridsync_store_map_bytes", "LMDB map size.", (double) info.map_size);
            s_gauge(b, "gridsync_store_used_bytes", "LMDB pages in use.",
                    (double) info.map_used);
            s_gauge(b, "gridsync_store_file_bytes", "LMDB data file size.",
                    (double) info.file_size);
            s_gauge(b, "gridsync_store_idempotency_entries", "Uploads remembered.",
                    (double) info.idem_entries);
            s_gauge(b, "gridsync_store_readers", "LMDB reader slots in use.",
                    (double) info.readers_used);
        }
    }
    if (m->bridge_enabled)
        s_bridge(b, m, store, now_ms);
    s_gauge(b, "gridsync_uptime_seconds", "Seconds since the broker started.",
            (double) (now_ms - m->started_ms) / 1000.0);
    if (m->replica_section) {
        m->replica_section(m->replica_arg, b, now_ms);
        s_hist(b, "gridsync_replica_stream_seconds", "A district event's store in its "
               "stream (the stream's timestamp) to the replica's commit of it, per event "
               "applied.", &m->replica_stream_seconds);
    }
}

int
gs_metrics_listen(const char *address, int port, int *bound_port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) port);
    if (inet_pton(AF_INET, address, &sa.sin_addr) != 1) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *) &sa, sizeof sa) || listen(fd, 16)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *) &sa, &sl);
    if (bound_port)
        *bound_port = ntohs(sa.sin_port);
    return fd;
}

/* One request gets this long in all, to send its request and to take the
 * answer; then it is dropped. The listener has a thread of its own, so
 * only the next scrape waits meanwhile. */
#define S_REQUEST_MS 2000

static int64_t
s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until the deadline; > 0 when ready. */
static int
s_wait(int fd, short events, int64_t deadline)
{
    int64_t left = deadline - s_mono_ms();
    if (left <= 0)
        return 0;
    struct pollfd pf = { .fd = fd, .events = events };
    return poll(&pf, 1, (int) left);
}

static void
s_write_all(int fd, const void *p, size_t n, int64_t deadline)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            if (s_wait(fd, POLLOUT, deadline) <= 0)
                return;
            continue;
        }
        if (w <= 0)
            return;
        c += w;
        n -= (size_t) w;
    }
}

void
gs_metrics_serve_one(int listen_fd, gs_metrics_t *m, gs_store_t *store, int64_t now_ms)
{
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    int64_t deadline = s_mono_ms() + S_REQUEST_MS;
    char req[1024];
    size_t got = 0;
    /* read the request line; a scraper sends it at once */
    while (got < sizeof req - 1) {
        if (s_wait(fd, POLLIN, deadline) <= 0)
            break;
        ssize_t r = read(fd, req + got, sizeof req - 1 - got);
        if (r <= 0)
            break;
        got += (size_t) r;
        req[got] = 0;
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            break;
    }
    req[got] = 0;
    if (strncmp(req, "GET /metrics", 12) == 0) {
        gs_wbuf_t body;
        gs_wbuf_init(&body);
        gs_metrics_render(m, store, now_ms, &body);
        char head[160];
        int hn = snprintf(head, sizeof head,
                          "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                          body.len);
        s_write_all(fd, head, (size_t) hn, deadline);
        s_write_all(fd, body.data, body.len, deadline);
        gs_wbuf_deinit(&body);
    } else {
        static const char nf[] = "HTTP/1.0 404 Not Found\r\nContent-Length: 22\r\n"
                                 "Connection: close\r\n\r\ntry GET /metrics here\n";
        s_write_all(fd, nf, sizeof nf - 1, deadline);
    }
    close(fd);
}

/*
 * gs_client: requests with Lazy Pirate retries, and an exactly-once
 * subscriber. See gs_client.h and docs/protocol.md.
 */
#include "gs_client.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "gs_grid.h"
#include "gs_validate.h"

#define S_MAX_SUB_PREFIXES 64
#define S_SLICE_MS 100          /* longest wait between looks at the cancel flag */

const char *
gs_client_strerror(int err)
{
    switch (err) {
    case GS_CLIENT_OK: return "ok";
    case GS_CLIENT_ETIMEOUT: return "no reply from the broker (timed out after retries)";
    case GS_CLIENT_ESERVER: return "the broker refused the request";
    case GS_CLIENT_EPROTO: return "the broker's reply could not be understood";
    case GS_CLIENT_EINVAL: return "invalid argument";
    case GS_CLIENT_ENOMEM: return "out of memory";
    case GS_CLIENT_EIO: return "socket or file error";
    case GS_CLIENT_EGAP: return "feed gap could not be repaired from the sync service";
    case GS_CLIENT_ELINEAGE: return "the broker's store was restored or replaced: re-baseline";
    case GS_CLIENT_EAUTH:
        return "handshake refused: is the key enrolled / is the broker in CURVE mode?";
    case GS_CLIENT_ECANCELLED: return "interrupted";
    default: return "unknown error";
    }
}

const char *
gs_client_errtext(int rc, const gs_client_error_t *err, char *buf, size_t size)
{
    const char *msg = err ? err->message : "";
    if (rc == GS_CLIENT_ESERVER || !msg[0])
        snprintf(buf, size, "%s%s%s", gs_client_strerror(rc), msg[0] ? ": " : "", msg);
    else
        snprintf(buf, size, "%s", msg); /* ours, and complete */
    return buf;
}

static int64_t
s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_err(gs_client_error_t *err, int reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
s_err(gs_client_error_t *err, int reason, const char *fmt, ...)
{
    if (!err)
        return;
    err->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

/* ---- handshake watch ------------------------------------------------------ */

/* What the socket monitor told about one socket's connections. ZeroMQ
 * reports a refused handshake only there: the connection just goes quiet,
 * and after a refusal (ZAP status, mechanism mismatch) it is not retried. */
typedef struct s_watch {
    void *pair;                 /* PAIR reading the monitor's events */
    int connected;              /* a TCP connection was made */
    int handshaked;             /* a handshake completed */
    int refused;                /* a handshake failed for good (auth, protocol) */
    int failed;                 /* the last handshake failure event, or 0 */
    uint32_t value;             /* its value: ZAP status or protocol error */
} s_watch_t;

/* Watch sock's connections; seq makes the inproc endpoint unique in ctx. */
static int
s_watch_start(s_watch_t *w, void *ctx, void *sock, unsigned seq)
{
    memset(w, 0, sizeof *w);
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://gs-client-monitor-%u", seq);
    if (zmq_socket_monitor(sock, ep, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                                         ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                         ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                         ZMQ_EVENT_HANDSHAKE_FAILED_AUTH))
        return GS_CLIENT_EIO;
    w->pair = zmq_socket(ctx, ZMQ_PAIR);
    int linger = 0;
    /* connected before the watched socket connects, so no event is lost */
    if (!w->pair || zmq_setsockopt(w->pair, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_connect(w->pair, ep)) {
        if (w->pair)
            zmq_close(w->pair);
        w->pair = NULL;
        zmq_socket_monitor(sock, NULL, 0);
        return GS_CLIENT_EIO;
    }
    return 0;
}

static void
s_watch_stop(s_watch_t *w, void *sock)
{
    if (!w->pair)
        return;
    zmq_socket_monitor(sock, NULL, 0);
    zmq_close(w->pair);
    w->pair = NULL;
}

/* Read every event the monitor has queued. */
static void
s_watch_drain(s_watch_t *w)
{
    while (w->pair) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, w->pair, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        uint16_t ev = 0;
        uint32_t value = 0;
        /* first frame: event number (16 bits) and value (32 bits) */
        if (zmq_msg_size(&m) >= 6) {
            memcpy(&ev, zmq_msg_data(&m), 2);
            memcpy(&value, (const uint8_t *) zmq_msg_data(&m) + 2, 4);
        }
        while (zmq_msg_more(&m)) { /* second frame: the endpoint */
            zmq_msg_close(&m);
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, w->pair, 0) < 0)
                break;
        }
        zmq_msg_close(&m);
        if (ev == ZMQ_EVENT_CONNECTED) {
            w->connected = 1;
        } else if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            w->connected = w->handshaked = 1;
            w->refused = w->failed = 0;
        } else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
                   ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
            w->refused = 1;
            w->failed = ev;
            w->value = value;
        } else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
            /* the connection closed during the handshake; ZeroMQ retries */
            w->failed = ev;
            w->value = value;
        }
    }
}

/* The caller's message for a refused handshake (w->refused). */
static void
s_watch_refusal(const s_watch_t *w, int curve, const char *endpoint, gs_client_error_t *err)
{
    if (w->failed == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        s_err(err, 0, "handshake refused: is the key enrolled / is the broker in CURVE mode? "
              "(%s answered %u: it does not know this key, or the key is revoked; see "
              "gridctl devices list)", endpoint, (unsigned) w->value);
    else if (w->value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH && curve)
        s_err(err, 0, "handshake refused: this client uses CURVE keys but the broker at %s is "
              "not in CURVE mode (started with --insecure-dev?)", endpoint);
    else if (w->value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        s_err(err, 0, "handshake refused: the broker at %s is in CURVE mode and this client "
              "has no keys: give it the enrolment bundle of an enrolled key (gridctl devices "
              "enrol --bundle)", endpoint);
    else
        s_err(err, 0, "handshake refused: is the key enrolled / is the broker in CURVE mode? "
              "(%s: ZeroMQ protocol error 0x%x; is the bundle's server key this broker's?)",
              endpoint, (unsigned) w->value);
}

/* The caller's message for a timeout, from how far the connections got. */
static void
s_watch_timeout(const s_watch_t *w, int curve, const char *endpoint, int attempts,
                int timeout_ms, gs_client_error_t *err)
{
    if (w->handshaked)
        s_err(err, 0, "no reply from %s (%d attempt%s of %d ms)", endpoint, attempts,
              attempts > 1 ? "s" : "", timeout_ms);
    else if (!w->connected)
        s_err(err, 0, "no reply from %s: could not connect (is gridsyncd running and "
              "listening there?); no handshake completed, so %s", endpoint,
              curve ? "the CURVE keys were not tried yet"
                    : "it is not known whether the broker wants CURVE keys");
    else if (w->failed == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        s_err(err, 0, "no reply from %s: connected, but the broker dropped every handshake: "
              "is the key enrolled / is the broker in CURVE mode, and is the bundle's server "
              "key this broker's?", endpoint);
    else
        s_err(err, 0, "no reply from %s: connected, but no handshake completed: is the key "
              "enrolled / is the broker in CURVE mode?", endpoint);
}

/* ---- request/reply client ------------------------------------------------- */

struct gs_client {
    void *ctx;                  /* own ZeroMQ context */
    void *sock;                 /* DEALER, recreated after a timeout */
    s_watch_t watch;            /* its socket monitor */
    unsigned watch_seq;         /* monitors made, for unique endpoints */
    char endpoint[256];         /* where to connect */
    gs_client_opts_t opts;      /* timeouts and retries */
    uint64_t next_id;           /* last request_id used */
    gs_client_stats_t stats;    /* counters */
};

/* Apply CURVE client keys to a socket, if any are set. */
static int
s_curve_apply(void *sock, const gs_curve_keys_t *k)
{
    if (!k->server_public[0])
        return 0;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, k->server_public, 41) ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, k->public_key, 41) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->secret_key, 41))
        return GS_CLIENT_EINVAL;
    return 0;
}

/* One "name = value" field of an enrolment bundle, and where its value goes. */
typedef struct s_bundle_field {
    const char *name;           /* the name before '=' */
    char *out;                  /* its value, NUL-terminated */
    size_t size;                /* room in out */
} s_bundle_field_t;

/* Read the "name = value" lines of the bundle at path into fields; other
 * lines are ignored. Returns 0, GS_CLIENT_EIO when the file cannot be
 * read, or GS_CLIENT_EINVAL when a value does not fit. */
static int
s_bundle_read(const char *path, const s_bundle_field_t *fields, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return GS_CLIENT_EIO;
    char line[512];
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        char name[64], value[300];
        if (sscanf(line, " %63[a-z_] = %299s", name, value) != 2)
            continue;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(name, fields[i].name) != 0)
                continue;
            if (strlen(value) >= fields[i].size)
                rc = GS_CLIENT_EINVAL;
            else
                memcpy(fields[i].out, value, strlen(value) + 1);
        }
    }
    fclose(f);
    return rc;
}

int
gs_curve_keys_load(gs_curve_keys_t *keys, const char *path)
{
    memset(keys, 0, sizeof *keys);
    const s_bundle_field_t fields[] = {
        { "server_public", keys->server_public, sizeof keys->server_public },
        { "public_key", keys->public_key, sizeof keys->public_key },
        { "secret_key", keys->secret_key, sizeof keys->secret_key },
    };
    int rc = s_bundle_read(path, fields, sizeof fields / sizeof fields[0]);
    if (rc == 0 && (strlen(keys->server_public) != 40 || strlen(keys->public_key) != 40 ||
                    strlen(keys->secret_key) != 40))
        rc = GS_CLIENT_EINVAL;  /* Z85 keys are 40 characters */
    if (rc)
        memset(keys, 0, sizeof *keys);
    return rc;
}

int
gs_bundle_info_load(gs_bundle_info_t *info, const char *path)
{
    memset(info, 0, sizeof *info);
    const s_bundle_field_t fields[] = {
        { "device_id", info->device_id, sizeof info->device_id },
        { "upload_endpoint", info->upload_endpoint, sizeof info->upload_endpoint },
        { "feed_endpoint", info->feed_endpoint, sizeof info->feed_endpoint },
    };
    return s_bundle_read(path, fields, sizeof fields / sizeof fields[0]);
}

void
gs_client_opts_init(gs_client_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->timeout_ms = 3000;
    o->retries = 5;
    o->max_reply_bytes = 64 << 20;
}

static int
s_client_connect(gs_client_t *self)
{
    if (self->sock) {
        s_watch_stop(&self->watch, self->sock);
        zmq_close(self->sock);
    }
    self->sock = zmq_socket(self->ctx, ZMQ_DEALER);
    if (!self->sock)
        return GS_CLIENT_EIO;
    /* linger 0: closing never waits for unsent requests */
    int linger = 0;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(self->sock, ZMQ_MAXMSGSIZE, &self->opts.max_reply_bytes,
                   sizeof self->opts.max_reply_bytes);
    if (s_curve_apply(self->sock, &self->opts.curve))
        return GS_CLIENT_EINVAL;
    if (s_watch_start(&self->watch, self->ctx, self->sock, ++self->watch_seq))
        return GS_CLIENT_EIO;
    if (zmq_connect(self->sock, self->endpoint))
        return GS_CLIENT_EIO;
    return 0;
}

static int
s_cancelled(const atomic_int *cancel)
{
    return cancel && atomic_load(cancel);
}

/* How long one poll may wait: the time left, in slices when there is a
 * cancel flag to look at. */
static long
s_wait_ms(int64_t left, const atomic_int *cancel)
{
    if (left < 0)
        left = 0;
    return cancel && left > S_SLICE_MS ? S_SLICE_MS : (long) left;
}

gs_client_t *
gs_client_new(const char *endpoint, const gs_client_opts_t *opts)
{
    if (!endpoint || strlen(endpoint) >= sizeof(((gs_client_t *) 0)->endpoint))
        return NULL;
    gs_client_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    if (opts)
        self->opts = *opts;
    else
        gs_client_opts_init(&self->opts);
    snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint);
    self->ctx = zmq_ctx_new();
    /* random start so two runs of a tool never share request ids */
    self->next_id = ((uint64_t) getpid() << 32) ^ (uint64_t) s_mono_ms();
    if (!self->ctx || s_client_connect(self)) {
        gs_client_destroy(&self);
        return NULL;
    }
    return self;
}

void
gs_client_destroy(gs_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gs_client_t *self = *self_p;
    if (self->sock) {
        s_watch_stop(&self->watch, self->sock);
        zmq_close(self->sock);
    }
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    free(self);
    *self_p = NULL;
}

void
gs_client_stats(const gs_client_t *self, gs_client_stats_t *st)
{
    *st = self->stats;
}

static int
s_retry_later(int reason)
{
    return reason == GRIDSYNC__V1__REASON__REASON_STORAGE_FULL ||
           reason == GRIDSYNC__V1__REASON__REASON_SHUTTING_DOWN ||
           reason == GRIDSYNC__V1__REASON__REASON_BUSY ||
           reason == GRIDSYNC__V1__REASON__REASON_INTERNAL;
}

/* Fold what the current socket's monitor saw into the call's view. */
static void
s_watch_fold(s_watch_t *all, const s_watch_t *w)
{
    all->connected |= w->connected;
    all->handshaked |= w->handshaked;
    if (w->failed) {
        all->failed = w->failed;
        all->value = w->value;
    }
}

/* Queue the request on the socket, waiting no longer than deadline: a
 * DEALER with no connection (none yet, or its handshake was refused and
 * ZeroMQ gave up) would block a plain send forever. Returns 0 sent, 1 the
 * deadline passed, or GS_CLIENT_EAUTH / ECANCELLED / EIO. */
static int
s_send_until(gs_client_t *self, const uint8_t *buf, size_t len, int64_t deadline)
{
    for (;;) {
        if (zmq_send(self->sock, buf, len, ZMQ_DONTWAIT) == (int) len)
            return 0;
        if (errno != EAGAIN && errno != EINTR)
            return GS_CLIENT_EIO;
        if (s_cancelled(self->opts.cancel))
            return GS_CLIENT_ECANCELLED;
        int64_t left = deadline - s_mono_ms();
        if (left <= 0)
            return 1;
        zmq_pollitem_t it[2] = { { self->sock, 0, ZMQ_POLLOUT, 0 },
                                 { self->watch.pair, 0, ZMQ_POLLIN, 0 } };
        if (zmq_poll(it, 2, s_wait_ms(left, self->opts.cancel)) < 0 && errno != EINTR)
            return GS_CLIENT_EIO;
        s_watch_drain(&self->watch);
        if (self->watch.refused)
            return GS_CLIENT_EAUTH;
    }
}

/* Wait until ms have passed, or the cancel flag is set. */
static int
s_pause(const gs_client_t *self, int ms)
{
    int64_t until = s_mono_ms() + ms;
    for (;;) {
        if (s_cancelled(self->opts.cancel))
            return GS_CLIENT_ECANCELLED;
        int64_t left = until - s_mono_ms();
        if (left <= 0)
            return 0;
        long w = s_wait_ms(left, self->opts.cancel);
        struct timespec ts = { w / 1000, (w % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
}

int
gs_client_call(gs_client_t *self, Gridsync__V1__Request *req, int retry,
               Gridsync__V1__Reply **reply_out, gs_client_error_t *err)
{
    *reply_out = NULL;
    if (err) {
        err->reason = 0;
        err->message[0] = 0;
    }
    /* a socket whose handshake was refused is dead: give the broker a new
     * chance (it may have enrolled the key since) */
    s_watch_drain(&self->watch);
    if (self->watch.refused && s_client_connect(self))
        return GS_CLIENT_EIO;
    req->request_id = ++self->next_id;
    size_t len = gridsync__v1__request__get_packed_size(req);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return GS_CLIENT_ENOMEM;
    gridsync__v1__request__pack(req, buf);
    self->stats.requests++;
    int attempts = retry ? 1 + self->opts.retries : 1;
    int rc = GS_CLIENT_ETIMEOUT;
    s_watch_t seen;             /* what every socket of this call saw */
    memset(&seen, 0, sizeof seen);
    int a;
    for (a = 0; a < attempts; a++) {
        if (a > 0)
            self->stats.resends++;
        int64_t deadline = s_mono_ms() + self->opts.timeout_ms;
        int sent = s_send_until(self, buf, len, deadline);
        if (sent < 0) {
            rc = sent;
            break;
        }
        int got = 0, retry_later = 0;
        while (!got && sent == 0) {
            if (s_cancelled(self->opts.cancel)) {
                rc = GS_CLIENT_ECANCELLED;
                break;
            }
            int64_t left = deadline - s_mono_ms();
            if (left <= 0)
                break;
            zmq_pollitem_t it[2] = { { self->sock, 0, ZMQ_POLLIN, 0 },
                                     { self->watch.pair, 0, ZMQ_POLLIN, 0 } };
            int n = zmq_poll(it, 2, s_wait_ms(left, self->opts.cancel));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                break;
            if (it[1].revents) {
                s_watch_drain(&self->watch);
                if (self->watch.refused) {
                    rc = GS_CLIENT_EAUTH;
                    break;
                }
            }
            if (!it[0].revents)
                continue;
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, self->sock, 0) < 0) {
                zmq_msg_close(&m);
                continue;
            }
            Gridsync__V1__Reply *rep =
                gridsync__v1__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
            zmq_msg_close(&m);
            if (!rep || rep->request_id != req->request_id) {
                /* a reply to an earlier attempt or an earlier request */
                self->stats.stale_replies++;
                if (rep)
                    gridsync__v1__reply__free_unpacked(rep, NULL);
                continue;
            }
            if (rep->body_case == GRIDSYNC__V1__REPLY__BODY_ERROR) {
                int reason = rep->error->reason;
                s_err(err, reason, "%s", rep->error->message);
                gridsync__v1__reply__free_unpacked(rep, NULL);
                if (retry && s_retry_later(reason) && a + 1 < attempts) {
                    retry_later = 1;
                    break;
                }
                free(buf);
                return GS_CLIENT_ESERVER;
            }
            *reply_out = rep;
            got = 1;
        }
        if (got) {
            rc = 0;
            break;
        }
        if (rc == GS_CLIENT_EAUTH || rc == GS_CLIENT_ECANCELLED)
            break;
        if (retry_later) {
            /* back off for one timeout before sending the same bytes again */
            int pr = s_pause(self, self->opts.timeout_ms);
            if (pr) {
                rc = pr;
                break;
            }
            continue;
        }
        /* Lazy Pirate: the socket may be wedged on a dead peer; start fresh */
        s_watch_drain(&self->watch);
        s_watch_fold(&seen, &self->watch);
        if (s_client_connect(self)) {
            rc = GS_CLIENT_EIO;
            break;
        }
    }
    free(buf);
    s_watch_drain(&self->watch);
    s_watch_fold(&seen, &self->watch);
    int curve = self->opts.curve.server_public[0] != 0;
    if (rc == GS_CLIENT_ETIMEOUT)
        s_watch_timeout(&seen, curve, self->endpoint, attempts, self->opts.timeout_ms, err);
    else if (rc == GS_CLIENT_EAUTH)
        s_watch_refusal(&self->watch, curve, self->endpoint, err);
    else if (rc == GS_CLIENT_ECANCELLED)
        s_err(err, 0, "interrupted while waiting for %s", self->endpoint);
    return rc;
}

int
gs_client_upload(gs_client_t *self, const Gridsync__V1__Upload *up,
                 Gridsync__V1__Ack **ack, gs_client_error_t *err)
{
    *ack = NULL;
    Gridsync__V1__Request req = GRIDSYNC__V1__REQUEST__INIT;
    req.body_case = GRIDSYNC__V1__REQUEST__BODY_UPLOAD;
    req.upload = (Gridsync__V1__Upload *) up;
    Gridsync__V1__Reply *rep = NULL;
    int rc = gs_client_call(self, &req, 1, &rep, err);
    if (rc)
        return rc;
    if (rep->body_case != GRIDSYNC__V1__REPLY__BODY_ACK) {
        gridsync__v1__reply__free_unpacked(rep, NULL);
        return GS_CLIENT_EPROTO;
    }
    *ack = rep->ack;
    rep->ack = NULL; /* detach: the caller frees the Ack on its own */
    rep->body_case = GRIDSYNC__V1__REPLY__BODY__NOT_SET;
    gridsync__v1__reply__free_unpacked(rep, NULL);
    return 0;
}

int
gs_client_sync(gs_client_t *self, const char *const *prefixes, size_t n, uint64_t since,
               uint32_t limit, int omit_restricted, Gridsync__V1__SyncResponse **resp,
               gs_client_error_t *err)
{
    *resp = NULL;
    Gridsync__V1__SyncRequest sr = GRIDSYNC__V1__SYNC_REQUEST__INIT;
    sr.prefixes = (char **) prefixes;
    sr.n_prefixes = n;
    sr.since_seq = since;
    sr.limit = limit;
    sr.omit_restricted = omit_restricted;
    Gridsync__V1__Request req = GRIDSYNC__V1__REQUEST__INIT;
    req.body_case = GRIDSYNC__V1__REQUEST__BODY_SYNC;
    req.sync = &sr;
    Gridsync__V1__Reply *rep = NULL;
    int rc = gs_client_call(self, &req, 1, &rep, err);
    if (rc)
        return rc;
    if (rep->body_case != GRIDSYNC__V1__REPLY__BODY_SYNC) {
        gridsync__v1__reply__free_unpacked(rep, NULL);
        return GS_CLIENT_EPROTO;
    }
    *resp = rep->sync;
    rep->sync = NULL;
    rep->body_case = GRIDSYNC__V1__REPLY__BODY__NOT_SET;
    gridsync__v1__reply__free_unpacked(rep, NULL);
    return 0;
}

int
gs_client_snapshot(gs_client_t *self, const char *const *prefixes, size_t n,
                   const uint8_t *cursor, size_t cursor_len, uint32_t limit,
                   Gridsync__V1__SnapshotResponse **resp, gs_client_error_t *err)
{
    *resp = NULL;
    Gridsync__V1__SnapshotRequest sr = GRIDSYNC__V1__SNAPSHOT_REQUEST__INIT;
    sr.prefixes = (char **) prefixes;
    sr.n_prefixes = n;
    sr.cursor.data = (uint8_t *) cursor;
    sr.cursor.len = cursor_len;
    sr.limit = limit;
    Gridsync__V1__Request req = GRIDSYNC__V1__REQUEST__INIT;
    req.body_case = GRIDSYNC__V1__REQUEST__BODY_SNAPSHOT;
    req.snapshot = &sr;
    Gridsync__V1__Reply *rep = NULL;
    int rc = gs_client_call(self, &req, 1, &rep, err);
    if (rc)
        return rc;
    if (rep->body_case != GRIDSYNC__V1__REPLY__BODY_SNAPSHOT) {
        gridsync__v1__reply__free_unpacked(rep, NULL);
        return GS_CLIENT_EPROTO;
    }
    *resp = rep->snapshot;
    rep->snapshot = NULL;
    rep->body_case = GRIDSYNC__V1__REPLY__BODY__NOT_SET;
    gridsync__v1__reply__free_unpacked(rep, NULL);
    return 0;
}

int
gs_client_ping(gs_client_t *self, Gridsync__V1__PingReply **reply, int64_t *rtt_us,
               gs_client_error_t *err)
{
    *reply = NULL;
    if (rtt_us)
        *rtt_us = 0;
    Gridsync__V1__PingRequest pr = GRIDSYNC__V1__PING_REQUEST__INIT;
    Gridsync__V1__Request req = GRIDSYNC__V1__REQUEST__INIT;
    req.body_case = GRIDSYNC__V1__REQUEST__BODY_PING;
    req.ping = &pr;
    Gridsync__V1__Reply *rep = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* no resend: a ping measures one round trip, and says so when it gets none */
    int rc = gs_client_call(self, &req, 0, &rep, err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc)
        return rc;
    if (rep->body_case != GRIDSYNC__V1__REPLY__BODY_PING) {
        gridsync__v1__reply__free_unpacked(rep, NULL);
        return GS_CLIENT_EPROTO;
    }
    if (rtt_us)
        *rtt_us = (int64_t) (t1.tv_sec - t0.tv_sec) * 1000000 +
                  (t1.tv_nsec - t0.tv_nsec) / 1000;
    *reply = rep->ping;
    rep->ping = NULL;
    rep->body_case = GRIDSYNC__V1__REPLY__BODY__NOT_SET;
    gridsync__v1__reply__free_unpacked(rep, NULL);
    return 0;
}

/* ---- subscriber ----------------------------------------------------------- */

struct gs_sub {
    void *ctx;                  /* own ZeroMQ context */
    void *sock;                 /* SUB on the live feed */
    gs_client_t *cli;           /* sync service */
    gs_sub_opts_t opts;         /* settings */
    size_t n;                   /* prefixes followed */
    char prefix[S_MAX_SUB_PREFIXES][GS_GRID_LEN + 1];
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
    s_watch_t watch;            /* the feed socket's monitor */
    int64_t heard[S_MAX_SUB_PREFIXES];      /* last heartbeat or event per prefix, ms */
    int64_t warned;             /* last silence warning, ms (0 = none since heard) */
};

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

static int
s_prefix_index(const gs_sub_t *self, const char *grid)
{
    for (size_t i = 0; i < self->n; i++)
        if (gs_grid_prefix_covers(self->prefix[i], grid))
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
                 (unsigned long long) head, (unsigned long long) l->position, self->prefix[p]);
    }
    l->epoch = self->epoch;
    l->broker_epoch = self->broker_epoch;
    l->head_seq = head;
    self->lineage_bad = 1;
    return GS_CLIENT_ELINEAGE;
}

/* Pull events of prefix p after known[p] until known[p] >= target or the
 * log is exhausted. Queues each event once. */
static int
s_pull(gs_sub_t *self, size_t p, uint64_t target)
{
    const char *pfx[1] = { self->prefix[p] };
    uint64_t since = self->known[p];
    for (;;) {
        Gridsync__V1__SyncResponse *r = NULL;
        gs_client_error_t local;
        int rc = gs_client_sync(self->cli, pfx, 1, since, self->opts.sync_limit,
                                self->opts.omit_restricted, &r,
                                self->opts.err ? self->opts.err : &local);
        if (rc)
            return rc;
        /* before taking anything: these could be another store's events */
        rc = s_lineage_check(self, r->store_epoch, r->head_seq);
        if (rc) {
            gridsync__v1__sync_response__free_unpacked(r, NULL);
            return rc;
        }
        self->head = r->head_seq > self->head ? r->head_seq : self->head;
        for (size_t i = 0; i < r->n_events; i++) {
            Gridsync__V1__ChangeEvent *ev = r->events[i];
            if (ev->seq <= self->known[p])
                continue;
            r->events[i] = NULL; /* moved into the queue */
            if (s_queue_push(self, ev)) {
                gridsync__v1__change_event__free_unpacked(ev, NULL);
                gridsync__v1__sync_response__free_unpacked(r, NULL);
                return GS_CLIENT_ENOMEM;
            }
            self->known[p] = ev->seq;
            self->stats.pulled++;
        }
        /* free_unpacked skips the NULLed entries we took */
        uint64_t next = r->next_seq, head = r->head_seq;
        size_t got = r->n_events;
        gridsync__v1__sync_response__free_unpacked(r, NULL);
        if (self->known[p] >= target && target != UINT64_MAX)
            return 0;
        if (next >= head || (got == 0 && next <= since))
            return self->known[p] >= target || target == UINT64_MAX ? 0 : GS_CLIENT_EGAP;
        since = next;
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

static int
s_checkpoint_load(gs_sub_t *self, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 1 : GS_CLIENT_EIO;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!strncmp(line, "extra ", 6)) {
            snprintf(self->extra, sizeof self->extra, "%s", line + 6);
        } else if (!strncmp(line, "epoch ", 6)) {
            char *end;
            errno = 0;
            self->epoch = strtoull(line + 6, &end, 16);
            if (errno || end == line + 6 || *end || self->epoch == 0) {
                fclose(f);
                return GS_CLIENT_EIO; /* a damaged epoch must not pass for "unknown" */
            }
        } else if (!strncmp(line, "prefix \"", 8)) {
            char *q = strchr(line + 8, '"');
            if (!q)
                continue;
            *q = 0;
            unsigned long long seq = strtoull(q + 1, NULL, 10);
            for (size_t i = 0; i < self->n; i++)
                if (!strcmp(self->prefix[i], line + 8))
                    self->known[i] = self->delivered[i] = seq;
        }
    }
    fclose(f);
    return 0;
}

gs_sub_t *
gs_sub_new(const char *feed_endpoint, const char *sync_endpoint,
           const char *const *prefixes, size_t n, const char *checkpoint, uint64_t since,
           const gs_sub_opts_t *opts, int *err)
{
    int e = GS_CLIENT_EINVAL;
    if (n == 0 || n > S_MAX_SUB_PREFIXES)
        goto fail_early;
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
    self->n = n;
    for (size_t i = 0; i < n; i++) {
        snprintf(self->prefix[i], sizeof self->prefix[i], "%s", prefixes[i]);
        self->level[i] = gs_level_of_len(strlen(prefixes[i]));
        self->known[i] = self->delivered[i] = since;
    }
    self->epoch = self->opts.epoch;
    if (checkpoint) {
        self->checkpoint = strdup(checkpoint);
        if (s_checkpoint_load(self, checkpoint) < 0) {
            e = GS_CLIENT_EIO;
            goto fail;
        }
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
    if (s_curve_apply(self->sock, &self->opts.curve) ||
        s_watch_start(&self->watch, self->ctx, self->sock, 1) ||
        zmq_connect(self->sock, feed_endpoint)) {
        e = GS_CLIENT_EIO;
        goto fail;
    }
    /* Clone pattern: subscribe first, then catch up, so nothing falls
     * between the two; live events at or below what was pulled are dropped */
    for (size_t i = 0; i < n; i++)
        zmq_setsockopt(self->sock, ZMQ_SUBSCRIBE, self->prefix[i], strlen(self->prefix[i]));
    for (size_t i = 0; i < n; i++) {
        e = s_pull(self, i, UINT64_MAX);
        if (e == GS_CLIENT_ELINEAGE)
            break;  /* gs_sub_next reports it, and gs_sub_lineage tells what */
        if (e)
            goto fail;
    }
    /* silence is counted from here: heartbeats start once subscribed */
    for (size_t i = 0; i < n; i++)
        self->heard[i] = s_mono_ms();
    return self;
fail:
    gs_sub_destroy(&self);
fail_early:
    if (err)
        *err = e;
    if (e == GS_CLIENT_EINVAL && opts && opts->err)
        s_err(opts->err, 0, "bad prefix (level boundary: 0, 2, 4, 6, 9, 12 or 15 digits; "
              "none inside another)");
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
    if (self->sock) {
        s_watch_stop(&self->watch, self->sock);
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
    int p = s_prefix_index(self, ev->grid_code);
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
        int p = s_prefix_index(self, ev->grid_code);
        if (p >= 0)
            self->heard[p] = s_mono_ms();
        if (p < 0) {
            /* not a prefix of ours */
        } else if (ev->seq <= self->known[p]) {
            self->stats.duplicates++;
        } else {
            /* prev is the prefix's event before this one. At or before our
             * position, nothing lies between: this is the next event. (The
             * position need not be an event of the prefix: a start at the
             * head, say.) After it, or missing, we missed something. */
            int lv = self->level[p];
            uint64_t prev = (size_t) lv < ev->n_prev_seq ? ev->prev_seq[lv] : UINT64_MAX;
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
            if (strcmp(hb->prefix, self->prefix[p]) == 0)
                self->heard[p] = s_mono_ms();
        for (size_t p = 0; rc == 0 && p < self->n; p++) {
            if (strcmp(hb->prefix, self->prefix[p]) == 0 &&
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
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : s_mono_ms() + timeout_ms;
    while (self->q_len == 0) {
        /* Take what is already queued without a poll: under load the next
         * event is usually there, and a poll per event cost a subscriber
         * more than decoding it. Poll only when the queue is empty. */
        zmq_msg_t topic, body;
        zmq_msg_init(&topic);
        if (zmq_msg_recv(&topic, self->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&topic);
            if (errno != EAGAIN && errno != EINTR)
                return GS_CLIENT_EIO;
            if (s_cancelled(self->opts.cancel))
                return GS_CLIENT_ECANCELLED;
            int64_t left = deadline == INT64_MAX ? -1 : deadline - s_mono_ms();
            if (left < 0 && deadline != INT64_MAX)
                return 1;
            /* forever, or in slices when there is a cancel flag to watch */
            long wait = left < 0 ? (self->opts.cancel ? S_SLICE_MS : -1)
                                 : s_wait_ms(left, self->opts.cancel);
            zmq_pollitem_t it[2] = { { self->sock, 0, ZMQ_POLLIN, 0 },
                                     { self->watch.pair, 0, ZMQ_POLLIN, 0 } };
            int n = zmq_poll(it, 2, wait);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return GS_CLIENT_EIO;
            if (it[1].revents) {
                s_watch_drain(&self->watch);
                if (self->watch.refused) {
                    s_watch_refusal(&self->watch, self->opts.curve.server_public[0] != 0,
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
    int64_t now = s_mono_ms(), oldest = now;
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

/* fsync the directory holding path, so that a rename in it is durable. */
static int
s_fsync_dir(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = 0;     /* a file in the root directory */
    else
        *slash = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    if (close(fd))
        rc = -1;
    return rc;
}

int
gs_sub_checkpoint(gs_sub_t *self, const char *extra)
{
    if (!self->checkpoint)
        return GS_CLIENT_EINVAL;
    if (extra)
        snprintf(self->extra, sizeof self->extra, "%s", extra);
    char tmp[4096];
    if ((size_t) snprintf(tmp, sizeof tmp, "%s.tmp", self->checkpoint) >= sizeof tmp)
        return GS_CLIENT_EIO;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return GS_CLIENT_EIO;
    char buf[8192];
    size_t len = (size_t) snprintf(buf, sizeof buf, "gridsync-checkpoint 1\n");
    if (self->epoch) /* the store lineage these positions belong to */
        len += (size_t) snprintf(buf + len, sizeof buf - len, "epoch %016llx\n",
                                 (unsigned long long) self->epoch);
    for (size_t i = 0; i < self->n && len < sizeof buf - 64; i++)
        len += (size_t) snprintf(buf + len, sizeof buf - len, "prefix \"%s\" %llu\n",
                                 self->prefix[i], (unsigned long long) self->delivered[i]);
    if (self->extra[0] && len < sizeof buf - sizeof self->extra - 8)
        len += (size_t) snprintf(buf + len, sizeof buf - len, "extra %s\n", self->extra);
    int ok = write(fd, buf, len) == (ssize_t) len && fsync(fd) == 0;
    if (close(fd))
        ok = 0;
    if (!ok || rename(tmp, self->checkpoint)) {
        unlink(tmp);
        return GS_CLIENT_EIO;
    }
    /* the rename is durable only once the directory entry is on disk */
    if (s_fsync_dir(self->checkpoint))
        return GS_CLIENT_EIO;
    return 0;
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
    for (size_t i = 0; i < self->n; i++) {
        int rc = s_pull(self, i, UINT64_MAX);
        if (rc)
            return rc;
    }
    return 0;
}

void
gs_sub_stats(const gs_sub_t *self, gs_sub_stats_t *st)
{
    *st = self->stats;
}

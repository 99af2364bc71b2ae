/*
 * gs_client: requests with Lazy Pirate retries (uploads, sync, snapshot,
 * ping), enrolment bundles, and the connection helpers the subscriber
 * shares (gs_client_int.h). See gs_client.h and docs/protocol.md.
 */
#include "gs_client.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "gs_client_int.h"
#include "gs_wire.h"

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

int64_t
gs_client_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
gs_client_err_set(gs_client_error_t *err, int reason, const char *fmt, ...)
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

/* Watch sock's connections; seq makes the inproc endpoint unique in ctx. */
int
gs_watch_start(gs_watch_t *w, void *ctx, void *sock, unsigned seq)
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

void
gs_watch_stop(gs_watch_t *w, void *sock)
{
    if (!w->pair)
        return;
    zmq_socket_monitor(sock, NULL, 0);
    zmq_close(w->pair);
    w->pair = NULL;
}

/* Read every event the monitor has queued. */
void
gs_watch_drain(gs_watch_t *w)
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
void
gs_watch_refusal(const gs_watch_t *w, int curve, const char *endpoint, gs_client_error_t *err)
{
    if (w->failed == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        gs_client_err_set(err, 0, "handshake refused: is the key enrolled / is the broker in CURVE mode? "
              "(%s answered %u: it does not know this key, or the key is revoked; see "
              "gridctl devices list)", endpoint, (unsigned) w->value);
    else if (w->value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH && curve)
        gs_client_err_set(err, 0, "handshake refused: this client uses CURVE keys but the broker at %s is "
              "not in CURVE mode (started with --insecure-dev?)", endpoint);
    else if (w->value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        gs_client_err_set(err, 0, "handshake refused: the broker at %s is in CURVE mode and this client "
              "has no keys: give it the enrolment bundle of an enrolled key (gridctl devices "
              "enrol --bundle)", endpoint);
    else
        gs_client_err_set(err, 0, "handshake refused: is the key enrolled / is the broker in CURVE mode? "
              "(%s: ZeroMQ protocol error 0x%x; is the bundle's server key this broker's?)",
              endpoint, (unsigned) w->value);
}

/* The caller's message for a timeout, from how far the connections got. */
void
gs_watch_timeout(const gs_watch_t *w, int curve, const char *endpoint, int attempts,
                int timeout_ms, gs_client_error_t *err)
{
    if (w->handshaked)
        gs_client_err_set(err, 0, "no reply from %s (%d attempt%s of %d ms)", endpoint, attempts,
              attempts > 1 ? "s" : "", timeout_ms);
    else if (!w->connected)
        gs_client_err_set(err, 0, "no reply from %s: could not connect (is gridsyncd running and "
              "listening there?); no handshake completed, so %s", endpoint,
              curve ? "the CURVE keys were not tried yet"
                    : "it is not known whether the broker wants CURVE keys");
    else if (w->failed == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        gs_client_err_set(err, 0, "no reply from %s: connected, but the broker dropped every handshake: "
              "is the key enrolled / is the broker in CURVE mode, and is the bundle's server "
              "key this broker's?", endpoint);
    else
        gs_client_err_set(err, 0, "no reply from %s: connected, but no handshake completed: is the key "
              "enrolled / is the broker in CURVE mode?", endpoint);
}

/* ---- request/reply client ------------------------------------------------- */

struct gs_client {
    void *ctx;                  /* own ZeroMQ context */
    void *sock;                 /* DEALER, recreated after a timeout */
    gs_watch_t watch;           /* its socket monitor */
    unsigned watch_seq;         /* monitors made, for unique endpoints */
    char endpoint[256];         /* where to connect */
    gs_client_opts_t opts;      /* timeouts and retries */
    uint64_t next_id;           /* last request_id used */
    gs_client_stats_t stats;    /* counters */
};

/* Apply CURVE client keys to a socket, if any are set. */
int
gs_curve_apply(void *sock, const gs_curve_keys_t *k)
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
        gs_watch_stop(&self->watch, self->sock);
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
    if (gs_curve_apply(self->sock, &self->opts.curve))
        return GS_CLIENT_EINVAL;
    if (gs_watch_start(&self->watch, self->ctx, self->sock, ++self->watch_seq))
        return GS_CLIENT_EIO;
    if (zmq_connect(self->sock, self->endpoint))
        return GS_CLIENT_EIO;
    return 0;
}

int
gs_client_cancelled(const atomic_int *cancel)
{
    return cancel && atomic_load(cancel);
}

/* How long one poll may wait: the time left, in slices when there is a
 * cancel flag to look at. */
long
gs_client_wait_ms(int64_t left, const atomic_int *cancel)
{
    if (left < 0)
        left = 0;
    return cancel && left > GS_CLIENT_SLICE_MS ? GS_CLIENT_SLICE_MS : (long) left;
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
    self->next_id = ((uint64_t) getpid() << 32) ^ (uint64_t) gs_client_mono_ms();
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
        gs_watch_stop(&self->watch, self->sock);
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
s_watch_fold(gs_watch_t *all, const gs_watch_t *w)
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
        if (gs_client_cancelled(self->opts.cancel))
            return GS_CLIENT_ECANCELLED;
        int64_t left = deadline - gs_client_mono_ms();
        if (left <= 0)
            return 1;
        zmq_pollitem_t it[2] = { { self->sock, 0, ZMQ_POLLOUT, 0 },
                                 { self->watch.pair, 0, ZMQ_POLLIN, 0 } };
        if (zmq_poll(it, 2, gs_client_wait_ms(left, self->opts.cancel)) < 0 && errno != EINTR)
            return GS_CLIENT_EIO;
        gs_watch_drain(&self->watch);
        if (self->watch.refused)
            return GS_CLIENT_EAUTH;
    }
}

/* Wait until ms have passed, or the cancel flag is set. */
static int
s_pause(const gs_client_t *self, int ms)
{
    int64_t until = gs_client_mono_ms() + ms;
    for (;;) {
        if (gs_client_cancelled(self->opts.cancel))
            return GS_CLIENT_ECANCELLED;
        int64_t left = until - gs_client_mono_ms();
        if (left <= 0)
            return 0;
        long w = gs_client_wait_ms(left, self->opts.cancel);
        struct timespec ts = { w / 1000, (w % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
}

/* Reply.error's field number, for telling an error from a page without
 * decoding the page. */
#define S_REPLY_ERROR 5

/* A request on its way: its packed bytes (resent as they are on a
 * timeout) and where its first attempt stands. */
typedef struct s_pending {
    uint8_t *buf;               /* the packed Request (malloc'd) */
    size_t len;                 /* its bytes */
    uint64_t request_id;        /* the id the reply must echo */
    int sent;                   /* the first attempt is queued (0: send it when waiting) */
    int64_t deadline;           /* the first attempt's deadline, when sent */
} s_pending_t;

/* Pack req under the next request_id and, when send_now, queue its first
 * attempt without waiting for the reply (a failure to queue is left to
 * s_call_wait, which sends again). Returns 0 or GS_CLIENT_ENOMEM /
 * GS_CLIENT_EIO. */
static int
s_call_start(gs_client_t *self, Gridsync__V1__Request *req, int send_now, s_pending_t *pend)
{
    memset(pend, 0, sizeof *pend);
    /* a socket whose handshake was refused is dead: give the broker a new
     * chance (it may have enrolled the key since) */
    gs_watch_drain(&self->watch);
    if (self->watch.refused && s_client_connect(self))
        return GS_CLIENT_EIO;
    req->request_id = ++self->next_id;
    pend->request_id = req->request_id;
    pend->len = gridsync__v1__request__get_packed_size(req);
    pend->buf = malloc(pend->len ? pend->len : 1);
    if (!pend->buf)
        return GS_CLIENT_ENOMEM;
    gridsync__v1__request__pack(req, pend->buf);
    self->stats.requests++;
    if (send_now) {
        pend->deadline = gs_client_mono_ms() + self->opts.timeout_ms;
        pend->sent = s_send_until(self, pend->buf, pend->len, pend->deadline) == 0;
    }
    return 0;
}

/* The request_id and the body's field number of a packed Reply, read
 * without decoding it (0 when absent). */
static void
s_reply_peek(const uint8_t *p, size_t len, uint64_t *request_id, uint32_t *body)
{
    const uint8_t *end = p + len;
    *request_id = 0;
    *body = 0;
    while (p < end) {
        uint64_t tag, v;
        if (gs_wire_varint_get(&p, end, &tag))
            return;
        if ((tag >> 3) == 1 && (tag & 7) == 0) {
            if (gs_wire_varint_get(&p, end, &v))
                return;
            *request_id = v;
            continue;
        }
        if ((tag & 7) == 2 && (tag >> 3) <= UINT32_MAX)
            *body = (uint32_t) (tag >> 3);
        if (gs_wire_skip(&p, end, (int) (tag & 7)))
            return;
    }
}

/* Wait for the reply to pend, resending its bytes on silence as the opts
 * say (Lazy Pirate) when retry. On 0 the reply, which is not an Error, is
 * *rep_out unpacked by alloc when rep_out is not NULL, else the bytes in
 * *raw (initialised here whenever raw is given; the caller closes it).
 * Frees pend's bytes. */
static int
s_call_wait(gs_client_t *self, s_pending_t *pend, int retry, ProtobufCAllocator *alloc,
            Gridsync__V1__Reply **rep_out, zmq_msg_t *raw, gs_client_error_t *err)
{
    if (raw)
        zmq_msg_init(raw);
    if (err) {
        err->reason = 0;
        err->message[0] = 0;
    }
    int attempts = retry ? 1 + self->opts.retries : 1;
    int rc = GS_CLIENT_ETIMEOUT;
    gs_watch_t seen;             /* what every socket of this call saw */
    memset(&seen, 0, sizeof seen);
    int a;
    for (a = 0; a < attempts; a++) {
        if (a > 0)
            self->stats.resends++;
        int64_t deadline;
        int sent;
        if (a == 0 && pend->sent) {
            deadline = pend->deadline;  /* queued already, before this wait */
            sent = 0;
        } else {
            deadline = gs_client_mono_ms() + self->opts.timeout_ms;
            sent = s_send_until(self, pend->buf, pend->len, deadline);
        }
        if (sent < 0) {
            rc = sent;
            break;
        }
        int got = 0, retry_later = 0;
        while (!got && sent == 0) {
            if (gs_client_cancelled(self->opts.cancel)) {
                rc = GS_CLIENT_ECANCELLED;
                break;
            }
            int64_t left = deadline - gs_client_mono_ms();
            if (left <= 0)
                break;
            zmq_pollitem_t it[2] = { { self->sock, 0, ZMQ_POLLIN, 0 },
                                     { self->watch.pair, 0, ZMQ_POLLIN, 0 } };
            int n = zmq_poll(it, 2, gs_client_wait_ms(left, self->opts.cancel));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                break;
            if (it[1].revents) {
                gs_watch_drain(&self->watch);
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
            /* whose reply is it? With rep_out, as protobuf-c decodes it (a
             * reply that does not decode is no one's); for a raw reply, as
             * its top-level fields say, without decoding the page */
            Gridsync__V1__Reply *rep = NULL;
            uint64_t id = 0;
            int is_error = 0;
            if (rep_out) {
                rep = gridsync__v1__reply__unpack(alloc, zmq_msg_size(&m), zmq_msg_data(&m));
                if (rep) {
                    id = rep->request_id;
                    is_error = rep->body_case == GRIDSYNC__V1__REPLY__BODY_ERROR;
                }
            } else {
                uint32_t body;
                s_reply_peek(zmq_msg_data(&m), zmq_msg_size(&m), &id, &body);
                is_error = body == S_REPLY_ERROR;
            }
            /* request_id 0: the broker could not read the request at all,
             * so the error is the answer to the one outstanding here */
            int ours = (rep || !rep_out) &&
                       (id == pend->request_id || (id == 0 && is_error));
            if (!ours) {
                /* a reply to an earlier attempt or an earlier request */
                self->stats.stale_replies++;
                if (rep)
                    gridsync__v1__reply__free_unpacked(rep, alloc);
                zmq_msg_close(&m);
                continue;
            }
            if (is_error) {
                if (!rep) {
                    rep = gridsync__v1__reply__unpack(alloc, zmq_msg_size(&m),
                                                      zmq_msg_data(&m));
                    if (!rep || rep->body_case != GRIDSYNC__V1__REPLY__BODY_ERROR) {
                        if (rep)
                            gridsync__v1__reply__free_unpacked(rep, alloc);
                        zmq_msg_close(&m);
                        continue;   /* no one's, as above */
                    }
                }
                zmq_msg_close(&m);
                int reason = rep->error->reason;
                gs_client_err_set(err, reason, "%s", rep->error->message);
                gridsync__v1__reply__free_unpacked(rep, alloc);
                if (retry && s_retry_later(reason) && a + 1 < attempts) {
                    retry_later = 1;
                    break;
                }
                free(pend->buf);
                pend->buf = NULL;
                return GS_CLIENT_ESERVER;
            }
            if (rep_out) {
                *rep_out = rep;
                zmq_msg_close(&m);
            } else {
                zmq_msg_move(raw, &m);
                zmq_msg_close(&m);
            }
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
        gs_watch_drain(&self->watch);
        s_watch_fold(&seen, &self->watch);
        if (s_client_connect(self)) {
            rc = GS_CLIENT_EIO;
            break;
        }
    }
    free(pend->buf);
    pend->buf = NULL;
    gs_watch_drain(&self->watch);
    s_watch_fold(&seen, &self->watch);
    int curve = self->opts.curve.server_public[0] != 0;
    if (rc == GS_CLIENT_ETIMEOUT)
        gs_watch_timeout(&seen, curve, self->endpoint, attempts, self->opts.timeout_ms, err);
    else if (rc == GS_CLIENT_EAUTH)
        gs_watch_refusal(&self->watch, curve, self->endpoint, err);
    else if (rc == GS_CLIENT_ECANCELLED)
        gs_client_err_set(err, 0, "interrupted while waiting for %s", self->endpoint);
    return rc;
}

/* gs_client_call with the Reply unpacked by alloc (NULL: malloc, as
 * protobuf-c's default). */
static int
s_call(gs_client_t *self, Gridsync__V1__Request *req, int retry, ProtobufCAllocator *alloc,
       Gridsync__V1__Reply **reply_out, gs_client_error_t *err)
{
    *reply_out = NULL;
    if (err) {
        err->reason = 0;
        err->message[0] = 0;
    }
    s_pending_t pend;
    int rc = s_call_start(self, req, 0, &pend);
    if (rc)
        return rc;
    return s_call_wait(self, &pend, retry, alloc, reply_out, NULL, err);
}

int
gs_client_call(gs_client_t *self, Gridsync__V1__Request *req, int retry,
               Gridsync__V1__Reply **reply_out, gs_client_error_t *err)
{
    return s_call(self, req, retry, NULL, reply_out, err);
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

/* A sync request (sr) wrapped in its Request (req, pointing at sr). */
static void
s_sync_request(Gridsync__V1__SyncRequest *sr, Gridsync__V1__Request *req,
               const char *const *prefixes, size_t n, uint64_t since, uint32_t limit,
               int omit_restricted)
{
    gridsync__v1__sync_request__init(sr);
    sr->prefixes = (char **) prefixes;
    sr->n_prefixes = n;
    sr->since_seq = since;
    sr->limit = limit;
    sr->omit_restricted = omit_restricted;
    gridsync__v1__request__init(req);
    req->body_case = GRIDSYNC__V1__REQUEST__BODY_SYNC;
    req->sync = sr;
}

/* gs_client_sync with the reply unpacked by alloc (NULL: malloc). */
static int
s_sync(gs_client_t *self, const char *const *prefixes, size_t n, uint64_t since,
       uint32_t limit, int omit_restricted, ProtobufCAllocator *alloc,
       Gridsync__V1__SyncResponse **resp, gs_client_error_t *err)
{
    *resp = NULL;
    Gridsync__V1__SyncRequest sr;
    Gridsync__V1__Request req;
    s_sync_request(&sr, &req, prefixes, n, since, limit, omit_restricted);
    Gridsync__V1__Reply *rep = NULL;
    int rc = s_call(self, &req, 1, alloc, &rep, err);
    if (rc)
        return rc;
    if (rep->body_case != GRIDSYNC__V1__REPLY__BODY_SYNC) {
        gridsync__v1__reply__free_unpacked(rep, alloc);
        return GS_CLIENT_EPROTO;
    }
    *resp = rep->sync;
    rep->sync = NULL;
    rep->body_case = GRIDSYNC__V1__REPLY__BODY__NOT_SET;
    gridsync__v1__reply__free_unpacked(rep, alloc);
    return 0;
}

int
gs_client_sync(gs_client_t *self, const char *const *prefixes, size_t n, uint64_t since,
               uint32_t limit, int omit_restricted, Gridsync__V1__SyncResponse **resp,
               gs_client_error_t *err)
{
    return s_sync(self, prefixes, n, since, limit, omit_restricted, NULL, resp, err);
}

int
gs_client_sync_in(gs_client_t *self, const char *const *prefixes, size_t n, uint64_t since,
                  uint32_t limit, int omit_restricted, gs_arena_t *arena,
                  Gridsync__V1__SyncResponse **resp, gs_client_error_t *err)
{
    assert(arena);
    return s_sync(self, prefixes, n, since, limit, omit_restricted,
                  gs_arena_allocator(arena), resp, err);
}

/* next_seq and head_seq of the SyncResponse in a packed Reply, read
 * without decoding its events (0 when absent, as protobuf-c would give). */
static void
s_sync_peek(const uint8_t *p, size_t len, uint64_t *next, uint64_t *head)
{
    const uint8_t *end = p + len, *body = NULL, *body_end = NULL;
    *next = *head = 0;
    while (p < end) {
        uint64_t tag, n;
        if (gs_wire_varint_get(&p, end, &tag))
            return;
        if (tag == ((3u << 3) | 2)) {   /* Reply.sync */
            if (gs_wire_varint_get(&p, end, &n) || n > (uint64_t) (end - p))
                return;
            body = p;
            body_end = p + n;
            p += n;
        } else if (gs_wire_skip(&p, end, (int) (tag & 7))) {
            return;
        }
    }
    for (p = body; p && p < body_end;) {
        uint64_t tag, v;
        if (gs_wire_varint_get(&p, body_end, &tag))
            return;
        if (tag == ((2u << 3) | 0) || tag == ((3u << 3) | 0)) {  /* next_seq, head_seq */
            if (gs_wire_varint_get(&p, body_end, &v))
                return;
            *(tag >> 3 == 2 ? next : head) = v;
        } else if (gs_wire_skip(&p, body_end, (int) (tag & 7))) {
            return;
        }
    }
}

/* A catch-up walk: the request for the next page, already sent. */
struct gs_client_walk {
    gs_client_t *cli;           /* the client it runs on (borrowed) */
    Gridsync__V1__SyncRequest sr; /* since_seq: the page asked for */
    Gridsync__V1__Request req;  /* wraps sr */
    char **prefixes;            /* copies of the caller's prefixes */
    size_t n;                   /* their count */
    s_pending_t pend;           /* the request on its way (pend.buf NULL: none) */
    int over;                   /* the last page handed over reached its head */
};

int
gs_client_walk_new(gs_client_t *self, const char *const *prefixes, size_t n, uint64_t since,
                   uint32_t limit, int omit_restricted, gs_client_walk_t **walk_p)
{
    *walk_p = NULL;
    gs_client_walk_t *w = calloc(1, sizeof *w);
    if (!w)
        return GS_CLIENT_ENOMEM;
    w->cli = self;
    w->n = n;
    w->prefixes = calloc(n ? n : 1, sizeof *w->prefixes);
    int rc = w->prefixes ? 0 : GS_CLIENT_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!(w->prefixes[i] = strdup(prefixes[i])))
            rc = GS_CLIENT_ENOMEM;
    if (rc == 0) {
        s_sync_request(&w->sr, &w->req, (const char *const *) w->prefixes, n, since, limit,
                       omit_restricted);
        rc = s_call_start(self, &w->req, 1, &w->pend);
    }
    if (rc) {
        gs_client_walk_destroy(&w);
        return rc;
    }
    *walk_p = w;
    return 0;
}

void
gs_client_walk_destroy(gs_client_walk_t **walk_p)
{
    if (!walk_p || !*walk_p)
        return;
    gs_client_walk_t *w = *walk_p;
    /* a request still on its way is answered into the void: the next call
     * on the client counts its reply as stale */
    free(w->pend.buf);
    for (size_t i = 0; w->prefixes && i < w->n; i++)
        free(w->prefixes[i]);
    free(w->prefixes);
    free(w);
    *walk_p = NULL;
}

int
gs_client_walk_next(gs_client_walk_t *w, gs_arena_t *arena, Gridsync__V1__SyncResponse **page,
                    gs_client_error_t *err)
{
    *page = NULL;
    if (err) {
        err->reason = 0;
        err->message[0] = 0;
    }
    if (w->over || !w->pend.buf)
        return 1;
    zmq_msg_t m;
    int rc = s_call_wait(w->cli, &w->pend, 1, NULL, NULL, &m, err);  /* frees pend.buf */
    if (rc) {
        zmq_msg_close(&m);
        return rc;
    }
    uint64_t next, head;
    s_sync_peek(zmq_msg_data(&m), zmq_msg_size(&m), &next, &head);
    /* caught up when next_seq reaches head_seq; a reply that does not
     * move on (a broker older than this rule) ends the walk too */
    if (next < head && next > w->sr.since_seq) {
        /* ask for the next page now: the broker reads it while this one
         * is decoded and taken */
        w->sr.since_seq = next;
        rc = s_call_start(w->cli, &w->req, 1, &w->pend);
        if (rc) {
            zmq_msg_close(&m);
            return rc;
        }
    } else {
        w->over = 1;
    }
    ProtobufCAllocator *alloc = NULL;
    if (arena) {
        gs_arena_reset(arena);
        alloc = gs_arena_allocator(arena);
    }
    Gridsync__V1__Reply *rep = gridsync__v1__reply__unpack(alloc, zmq_msg_size(&m),
                                                           zmq_msg_data(&m));
    zmq_msg_close(&m);
    if (!rep || rep->body_case != GRIDSYNC__V1__REPLY__BODY_SYNC) {
        if (rep && !arena)
            gridsync__v1__reply__free_unpacked(rep, NULL);
        w->over = 1;    /* the walk cannot go on from a page it could not read */
        return GS_CLIENT_EPROTO;
    }
    *page = rep->sync;
    if (!arena) {
        rep->sync = NULL;   /* detach: the caller frees the page on its own */
        rep->body_case = GRIDSYNC__V1__REPLY__BODY__NOT_SET;
        gridsync__v1__reply__free_unpacked(rep, NULL);
    }
    return 0;
}

int
gs_client_sync_pages(gs_client_t *self, const char *const *prefixes, size_t n, uint64_t since,
                     uint32_t limit, int omit_restricted, gs_arena_t *arena,
                     gs_client_page_fn *fn, void *arg, uint64_t *next_seq,
                     gs_client_error_t *err)
{
    assert(fn);
    if (next_seq)
        *next_seq = since;
    if (err) {
        err->reason = 0;
        err->message[0] = 0;
    }
    gs_client_walk_t *w = NULL;
    int rc = gs_client_walk_new(self, prefixes, n, since, limit, omit_restricted, &w);
    while (rc == 0) {
        Gridsync__V1__SyncResponse *page = NULL;
        rc = gs_client_walk_next(w, arena, &page, err);
        if (rc) {
            if (rc == 1)
                rc = 0;     /* the last page reached its head */
            break;
        }
        rc = fn(arg, page);
        if (rc == 0 && next_seq)
            *next_seq = page->next_seq;
        if (!arena)
            gridsync__v1__sync_response__free_unpacked(page, NULL); /* skips events fn took */
    }
    gs_client_walk_destroy(&w);
    return rc;
}

/* gs_client_snapshot with the reply unpacked by alloc (NULL: malloc). */
static int
s_snapshot(gs_client_t *self, const char *const *prefixes, size_t n, const uint8_t *cursor,
           size_t cursor_len, uint32_t limit, ProtobufCAllocator *alloc,
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
    int rc = s_call(self, &req, 1, alloc, &rep, err);
    if (rc)
        return rc;
    if (rep->body_case != GRIDSYNC__V1__REPLY__BODY_SNAPSHOT) {
        gridsync__v1__reply__free_unpacked(rep, alloc);
        return GS_CLIENT_EPROTO;
    }
    *resp = rep->snapshot;
    rep->snapshot = NULL;
    rep->body_case = GRIDSYNC__V1__REPLY__BODY__NOT_SET;
    gridsync__v1__reply__free_unpacked(rep, alloc);
    return 0;
}

int
gs_client_snapshot(gs_client_t *self, const char *const *prefixes, size_t n,
                   const uint8_t *cursor, size_t cursor_len, uint32_t limit,
                   Gridsync__V1__SnapshotResponse **resp, gs_client_error_t *err)
{
    return s_snapshot(self, prefixes, n, cursor, cursor_len, limit, NULL, resp, err);
}

int
gs_client_snapshot_in(gs_client_t *self, const char *const *prefixes, size_t n,
                      const uint8_t *cursor, size_t cursor_len, uint32_t limit,
                      gs_arena_t *arena, Gridsync__V1__SnapshotResponse **resp,
                      gs_client_error_t *err)
{
    assert(arena);
    return s_snapshot(self, prefixes, n, cursor, cursor_len, limit,
                      gs_arena_allocator(arena), resp, err);
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

int
gs_client_incident_categories(gs_client_t *self, Gridsync__V1__IncidentCategoriesReply **reply,
                              gs_client_error_t *err)
{
    *reply = NULL;
    Gridsync__V1__IncidentCategoriesRequest cr = GRIDSYNC__V1__INCIDENT_CATEGORIES_REQUEST__INIT;
    Gridsync__V1__Request req = GRIDSYNC__V1__REQUEST__INIT;
    req.body_case = GRIDSYNC__V1__REQUEST__BODY_INCIDENT_CATEGORIES;
    req.incident_categories = &cr;
    Gridsync__V1__Reply *rep = NULL;
    int rc = gs_client_call(self, &req, 1, &rep, err);
    if (rc)
        return rc;
    if (rep->body_case != GRIDSYNC__V1__REPLY__BODY_INCIDENT_CATEGORIES) {
        gridsync__v1__reply__free_unpacked(rep, NULL);
        return GS_CLIENT_EPROTO;
    }
    *reply = rep->incident_categories;
    rep->incident_categories = NULL;
    rep->body_case = GRIDSYNC__V1__REPLY__BODY__NOT_SET;
    gridsync__v1__reply__free_unpacked(rep, NULL);
    return 0;
}

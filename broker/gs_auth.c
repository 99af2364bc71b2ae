/*
 * gs_auth: broker keys and the ZAP handler. See gs_auth.h.
 */
#include "gs_auth.h"

#include <czmq.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zmq.h>

#include "gs_broker_int.h"
#include "gs_frames.h"
#include "gs_log.h"
#include "gs_thread.h"

#define S_ZAP_EP "inproc://zeromq.zap.01"
/* ZMQ_ZAP_ENFORCE_DOMAIN is declared only in libzmq's draft API, but
 * 4.3.4 accepts it in every build (gs_auth_curve_server checks) */
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif
/* The ZAP socket is handed over (s_rotate) once it has been quiet for
 * S_QUIET_MS after answering, or has answered S_ROTATE_AFTER since it was
 * bound; the one handed over answers what was sent to it for S_RETIRE_MS
 * more, then is closed. */
#define S_QUIET_MS 1000
#define S_RETIRE_MS 1000
#define S_ROTATE_AFTER 1024
#define S_TRIM_DELAY_MS 200

struct gs_auth {
    void *ctx;                      /* the broker's context */
    void *rep;                      /* ZAP socket bound to the ZAP endpoint (handler thread) */
    void *retiring;                 /* the previous ZAP socket, answering what it has, or NULL */
    int64_t retire_at_ms;           /* when retiring is closed (monotonic) */
    int64_t quiet_since_ms;         /* the last request answered (monotonic) */
    int64_t trim_at_ms;             /* when to call malloc_trim, or 0 */
    uint64_t since_rotation;        /* requests answered since rep was bound */
    void *stop_w, *stop_r;          /* PAIR: tells the thread to end */
    gs_store_t *store;              /* the device registry */
    gs_metrics_t *metrics;          /* zap_handovers is counted there */
    pthread_t thread;               /* handler */
    int running;                    /* thread started */
    atomic_uint_fast64_t allowed;   /* handshakes accepted */
    atomic_uint_fast64_t refused;   /* handshakes refused */
};

int
gs_auth_server_keys(const char *path, char public_z85[41], uint8_t secret[32])
{
    zcert_t *cert = zcert_load(path);
    if (!cert) {
        cert = zcert_new();
        if (!cert)
            return -1;
        zcert_set_meta(cert, "role", "gridsyncd");
        mode_t old = umask(0077);
        int rc = zcert_save(cert, path);
        umask(old);
        if (rc) {
            zcert_destroy(&cert);
            return -1;
        }
        char secret_path[1024];
        snprintf(secret_path, sizeof secret_path, "%s_secret", path);
        chmod(secret_path, 0600);
        gs_log(GS_LOG_INFO, "server_key_created", "path=\"%s\" public_key=%s", path,
               zcert_public_txt(cert));
    }
    memcpy(public_z85, zcert_public_txt(cert), 41);
    memcpy(secret, zcert_secret_key(cert), 32);
    zcert_destroy(&cert);
    return 0;
}

/* Append a ZMTP metadata property (name, value) to buf. */
static size_t
s_property(uint8_t *buf, size_t cap, const char *name, const char *value)
{
    size_t nn = strlen(name), vn = strlen(value);
    if (1 + nn + 4 + vn > cap || nn > 255)
        return 0;
    buf[0] = (uint8_t) nn;
    memcpy(buf + 1, name, nn);
    buf[1 + nn] = (uint8_t) (vn >> 24);
    buf[2 + nn] = (uint8_t) (vn >> 16);
    buf[3 + nn] = (uint8_t) (vn >> 8);
    buf[4 + nn] = (uint8_t) vn;
    memcpy(buf + 5 + nn, value, vn);
    return 1 + nn + 4 + vn;
}

/* Answer one ZAP request. Frames: version, request id, domain, address,
 * routing id, mechanism, credentials... */
static void
s_handle(gs_auth_t *self, void *rep)
{
    zmq_msg_t f[8];
    int n = gs_frames_recv(rep, f, 8, 0);
    int kept = n < 8 ? n : 8;
    const char *status = "400", *text = "refused";
    char user[GS_ID_MAX + 1] = "";
    uint8_t meta[256];
    size_t meta_len = 0;
    char mech[16] = "";
    if (kept >= 6) {
        size_t ml = zmq_msg_size(&f[5]);
        if (ml < sizeof mech) {
            memcpy(mech, zmq_msg_data(&f[5]), ml);
            mech[ml] = 0;
        }
    }
    if (!strcmp(mech, "NULL")) {
        /* ipc admin socket and internal sockets: protected otherwise */
        status = "200";
        text = "OK";
    } else if (!strcmp(mech, "CURVE") && kept >= 7 && zmq_msg_size(&f[6]) == 32) {
        char key[41];
        zmq_z85_encode(key, zmq_msg_data(&f[6]), 32);
        Gridsync__V1__Device *dev = NULL;
        int rc = gs_store_device_by_key(self->store, key, &dev);
        if (rc == 0 && dev->status == GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_ACTIVE) {
            status = "200";
            text = "OK";
            snprintf(user, sizeof user, "%s", dev->device_id);
            meta_len = s_property(meta, sizeof meta, "device_id", dev->device_id);
            atomic_fetch_add(&self->allowed, 1);
        } else {
            text = rc == 0 ? "device revoked" : "key not enrolled";
            atomic_fetch_add(&self->refused, 1);
            gs_log(GS_LOG_WARN, "handshake_refused", "reason=\"%s\" key=%s device=%s", text,
                   key, rc == 0 ? dev->device_id : "-");
        }
        if (dev)
            gridsync__v1__device__free_unpacked(dev, NULL);
    } else {
        atomic_fetch_add(&self->refused, 1);
        gs_log(GS_LOG_WARN, "handshake_refused", "reason=\"mechanism %s not allowed\"",
               mech[0] ? mech : "?");
    }
    /* reply: version, request id, status, text, user id, metadata */
    zmq_send(rep, "1.0", 3, ZMQ_SNDMORE);
    if (kept >= 2)
        zmq_send(rep, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
    else
        zmq_send(rep, "", 0, ZMQ_SNDMORE);
    zmq_send(rep, status, 3, ZMQ_SNDMORE);
    zmq_send(rep, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(rep, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(rep, meta, meta_len, 0);
    for (int i = 0; i < kept; i++)
        zmq_msg_close(&f[i]);
}

/* A REP socket for ZAP requests, not bound yet, or NULL. */
static void *
s_zap_socket(void *ctx)
{
    void *rep = zmq_socket(ctx, ZMQ_REP);
    int linger = 0;
    if (rep)
        zmq_setsockopt(rep, ZMQ_LINGER, &linger, sizeof linger);
    return rep;
}

/* Hand the ZAP endpoint to a fresh socket and retire the current one: it
 * answers the requests already sent to it until retire_at_ms, then its
 * close ends the pipe every connection it answered keeps to it. */
static void
s_rotate(gs_auth_t *self, int64_t now)
{
    void *fresh = s_zap_socket(self->ctx);
    if (!fresh)
        return;
    /* between the unbind and the bind a handshake finds no handler, and
     * ZMQ_ZAP_ENFORCE_DOMAIN refuses it (the client connects again) */
    if (zmq_unbind(self->rep, S_ZAP_EP)) {
        zmq_close(fresh);
        return;
    }
    if (zmq_bind(fresh, S_ZAP_EP)) {
        zmq_close(fresh);
        if (zmq_bind(self->rep, S_ZAP_EP))
            gs_log(GS_LOG_ERROR, "auth_failed", "error=\"%s\" msg=\"the ZAP handler "
                   "could not bind again; every handshake is refused\"", zmq_strerror(errno));
        return;
    }
    self->retiring = self->rep;
    self->rep = fresh;
    self->retire_at_ms = now + S_RETIRE_MS;
    self->since_rotation = 0;
}

static void *
s_main(void *arg)
{
    gs_auth_t *self = arg;
    for (;;) {
        zmq_pollitem_t items[3] = { { self->rep, 0, ZMQ_POLLIN, 0 },
                                    { self->stop_r, 0, ZMQ_POLLIN, 0 },
                                    { self->retiring, 0, ZMQ_POLLIN, 0 } };
        long timeout = -1;
        int64_t now = gs_mono_us() / 1000;
        if (self->retiring)
            timeout = self->retire_at_ms > now ? self->retire_at_ms - now : 0;
        else if (self->since_rotation > 0)
            timeout = self->quiet_since_ms + S_QUIET_MS > now
                          ? self->quiet_since_ms + S_QUIET_MS - now : 0;
        if (self->trim_at_ms && (timeout < 0 || self->trim_at_ms - now < timeout))
            timeout = self->trim_at_ms > now ? self->trim_at_ms - now : 0;
        if (zmq_poll(items, self->retiring ? 3 : 2, timeout) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (items[1].revents & ZMQ_POLLIN)
            break;
        if (items[0].revents & ZMQ_POLLIN) {
            s_handle(self, self->rep);
            self->since_rotation++;
            self->quiet_since_ms = gs_mono_us() / 1000;
        }
        if (self->retiring && (items[2].revents & ZMQ_POLLIN))
            s_handle(self, self->retiring);
        now = gs_mono_us() / 1000;
        if (self->retiring && now >= self->retire_at_ms) {
            zmq_close(self->retiring);
            self->retiring = NULL;
            atomic_fetch_add(&self->metrics->zap_handovers, 1);
            /* libzmq's threads free the pipes as they process the close,
             * soon after; malloc_trim then gives the freed pages back */
            self->trim_at_ms = now + S_TRIM_DELAY_MS;
        }
        if (self->trim_at_ms && now >= self->trim_at_ms) {
            self->trim_at_ms = 0;
            malloc_trim(0);
        }
        if (!self->retiring && self->since_rotation > 0 &&
            (now >= self->quiet_since_ms + S_QUIET_MS || self->since_rotation >= S_ROTATE_AFTER))
            s_rotate(self, now);
    }
    return NULL;
}

gs_auth_t *
gs_auth_new(void *ctx, gs_store_t *store, gs_metrics_t *metrics)
{
    gs_auth_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->ctx = ctx;
    self->store = store;
    self->metrics = metrics;
    self->rep = s_zap_socket(ctx);
    self->stop_r = zmq_socket(ctx, ZMQ_PAIR);
    self->stop_w = zmq_socket(ctx, ZMQ_PAIR);
    if (!self->rep || zmq_bind(self->rep, S_ZAP_EP) ||
        zmq_bind(self->stop_r, "inproc://gs-auth-stop") ||
        zmq_connect(self->stop_w, "inproc://gs-auth-stop")) {
        gs_log(GS_LOG_ERROR, "auth_failed", "error=\"%s\"", zmq_strerror(errno));
        gs_auth_destroy(&self);
        return NULL;
    }
    if (gs_thread_start(&self->thread, "gs-auth", s_main, self)) {
        gs_auth_destroy(&self);
        return NULL;
    }
    self->running = 1;
    return self;
}

uint64_t
gs_auth_allowed(const gs_auth_t *self)
{
    return atomic_load(&((gs_auth_t *) self)->allowed);
}

uint64_t
gs_auth_refused(const gs_auth_t *self)
{
    return atomic_load(&((gs_auth_t *) self)->refused);
}

void
gs_auth_destroy(gs_auth_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gs_auth_t *self = *self_p;
    if (self->running) {
        zmq_send(self->stop_w, "", 0, 0);
        pthread_join(self->thread, NULL);
    }
    if (self->rep)
        zmq_close(self->rep);
    if (self->retiring)
        zmq_close(self->retiring);
    if (self->stop_r)
        zmq_close(self->stop_r);
    if (self->stop_w)
        zmq_close(self->stop_w);
    free(self);
    *self_p = NULL;
}

int
gs_auth_curve_server(void *sock, const uint8_t secret[32])
{
    int one = 1;
    /* without ZMQ_ZAP_ENFORCE_DOMAIN libzmq lets a handshake through
     * unchecked when it finds no ZAP handler, as during a handover */
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret, 32) ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "gridsync", 8) ||
        zmq_setsockopt(sock, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof one)) {
        gs_log(GS_LOG_ERROR, "auth_failed", "error=\"%s\" msg=\"this libzmq cannot refuse "
               "handshakes the ZAP handler has not checked (ZMQ_ZAP_ENFORCE_DOMAIN); "
               "gridsyncd needs libzmq 4.3 or later\"", zmq_strerror(errno));
        return -1;
    }
    return 0;
}

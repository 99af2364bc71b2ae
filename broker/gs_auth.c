/*
 * gs_auth: broker keys and the ZAP handler. See gs_auth.h.
 */
#include "gs_auth.h"

#include <czmq.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "gs_frames.h"
#include "gs_log.h"
#include "gs_thread.h"

#define S_ZAP_EP "inproc://zeromq.zap.01"

struct gs_auth {
    void *ctx;                      /* the broker's context */
    void *rep;                      /* ZAP socket (handler thread) */
    void *stop_w, *stop_r;          /* PAIR: tells the thread to end */
    gs_store_t *store;              /* the device registry */
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
s_handle(gs_auth_t *self)
{
    zmq_msg_t f[8];
    int n = gs_frames_recv(self->rep, f, 8, 0);
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
    zmq_send(self->rep, "1.0", 3, ZMQ_SNDMORE);
    if (kept >= 2)
        zmq_send(self->rep, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
    else
        zmq_send(self->rep, "", 0, ZMQ_SNDMORE);
    zmq_send(self->rep, status, 3, ZMQ_SNDMORE);
    zmq_send(self->rep, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(self->rep, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(self->rep, meta, meta_len, 0);
    for (int i = 0; i < kept; i++)
        zmq_msg_close(&f[i]);
}

static void *
s_main(void *arg)
{
    gs_auth_t *self = arg;
    for (;;) {
        zmq_pollitem_t items[2] = { { self->rep, 0, ZMQ_POLLIN, 0 },
                                    { self->stop_r, 0, ZMQ_POLLIN, 0 } };
        if (zmq_poll(items, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (items[1].revents & ZMQ_POLLIN)
            break;
        if (items[0].revents & ZMQ_POLLIN)
            s_handle(self);
    }
    return NULL;
}

gs_auth_t *
gs_auth_new(void *ctx, gs_store_t *store)
{
    gs_auth_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->ctx = ctx;
    self->store = store;
    self->rep = zmq_socket(ctx, ZMQ_REP);
    self->stop_r = zmq_socket(ctx, ZMQ_PAIR);
    self->stop_w = zmq_socket(ctx, ZMQ_PAIR);
    int linger = 0;
    zmq_setsockopt(self->rep, ZMQ_LINGER, &linger, sizeof linger);
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
    if (self->stop_r)
        zmq_close(self->stop_r);
    if (self->stop_w)
        zmq_close(self->stop_w);
    free(self);
    *self_p = NULL;
}

void
gs_auth_curve_server(void *sock, const uint8_t secret[32])
{
    int one = 1;
    zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret, 32);
    zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "gridsync", 8);
}

/*
 * gs_admin: requests to the broker's admin endpoint. See gs_admin.h and
 * docs/protocol.md ("Admin endpoint").
 */
#include "gs_admin.h"
#include "gs_client_int.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

struct gs_admin {
    void *ctx;                  /* own ZeroMQ context */
    void *sock;                 /* DEALER, NULL until the first call */
    char endpoint[sizeof(((struct sockaddr_un *) 0)->sun_path) + 8]; /* ipc://PATH */
    const char *path;           /* PATH inside endpoint */
    gs_admin_opts_t opts;       /* settings */
    uint64_t next_id;           /* last request_id sent */
};

void
gs_admin_opts_init(gs_admin_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->timeout_ms = 3000;
    o->max_reply_bytes = 64 << 20;
}

gs_admin_t *
gs_admin_new(const char *endpoint, const gs_admin_opts_t *opts, int *rc, gs_client_error_t *err)
{
    assert(endpoint && rc);
    if (err) {
        err->reason = 0;
        err->message[0] = 0;
    }
    *rc = GS_CLIENT_EINVAL;
    /* the broker serves admin requests on an ipc:// socket only (file
     * permissions are its protection); anything else cannot be it */
    if (strncmp(endpoint, "ipc://", 6) || !endpoint[6]) {
        gs_client_err_set(err, 0, "the admin endpoint must be ipc://PATH (the broker serves admin "
                      "requests only on its local socket), not '%.100s'", endpoint);
        return NULL;
    }
    if (strlen(endpoint) >= sizeof(((gs_admin_t *) 0)->endpoint)) {
        gs_client_err_set(err, 0, "the admin socket path '%.100s...' is too long for a unix socket",
              endpoint + 6);
        return NULL;
    }
    *rc = GS_CLIENT_ENOMEM;
    gs_admin_t *self = calloc(1, sizeof *self);
    if (!self) {
        gs_client_err_set(err, 0, "out of memory");
        return NULL;
    }
    snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint);
    self->path = self->endpoint + 6;
    if (opts)
        self->opts = *opts;
    else
        gs_admin_opts_init(&self->opts);
    /* random start so two runs of a tool never share request ids */
    self->next_id = ((uint64_t) getpid() << 32) ^ (uint64_t) gs_client_mono_ms();
    self->ctx = zmq_ctx_new();
    if (!self->ctx) {
        gs_client_err_set(err, 0, "cannot make a ZeroMQ context: %s", zmq_strerror(zmq_errno()));
        gs_admin_destroy(&self);
        return NULL;
    }
    *rc = 0;
    return self;
}

void
gs_admin_destroy(gs_admin_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gs_admin_t *self = *self_p;
    if (self->sock)
        zmq_close(self->sock);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    free(self);
    *self_p = NULL;
}

const char *
gs_admin_endpoint(const gs_admin_t *self)
{
    return self->endpoint;
}

/* Is the broker there? ZeroMQ connects to an ipc path that is missing, or
 * that a stopped broker left behind, or that we may not open, without a
 * word and retries until the timeout; the kernel says at once which it is.
 * Returns 0 when something listens on the path, else GS_CLIENT_EIO with
 * the reason in err. */
static int
s_socket_check(const gs_admin_t *self, gs_client_error_t *err)
{
    struct stat sb;
    if (stat(self->path, &sb) != 0) {
        if (errno == ENOENT)
            gs_client_err_set(err, 0, "no admin socket at %s: is gridsyncd running on this store?",
                  self->path);
        else
            gs_client_err_set(err, 0, "cannot reach the admin socket %s: %s", self->path,
                  strerror(errno));
        return GS_CLIENT_EIO;
    }
    if (!S_ISSOCK(sb.st_mode)) {
        gs_client_err_set(err, 0, "%s is not a socket: not a broker's admin endpoint", self->path);
        return GS_CLIENT_EIO;
    }
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, self->path, strlen(self->path) + 1); /* fits: gs_admin_new */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        gs_client_err_set(err, 0, "cannot make a socket: %s", strerror(errno));
        return GS_CLIENT_EIO;
    }
    int rc = connect(fd, (struct sockaddr *) &sa, sizeof sa);
    int e = errno;
    close(fd);
    if (rc == 0)
        return 0;
    if (e == ECONNREFUSED)
        gs_client_err_set(err, 0, "nothing listens on %s (left by a stopped broker)", self->path);
    else if (e == EACCES || e == EPERM)
        gs_client_err_set(err, 0, "no permission to open %s: the admin socket is for the store's owner",
              self->path);
    else
        gs_client_err_set(err, 0, "cannot connect to %s: %s", self->path, strerror(e));
    return GS_CLIENT_EIO;
}

static int
s_connect(gs_admin_t *self, gs_client_error_t *err)
{
    self->sock = zmq_socket(self->ctx, ZMQ_DEALER);
    if (!self->sock) {
        gs_client_err_set(err, 0, "cannot make a socket: %s", zmq_strerror(zmq_errno()));
        return GS_CLIENT_EIO;
    }
    /* linger 0: closing never waits for an unsent request */
    int linger = 0;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(self->sock, ZMQ_MAXMSGSIZE, &self->opts.max_reply_bytes,
                   sizeof self->opts.max_reply_bytes);
    if (zmq_connect(self->sock, self->endpoint)) {
        gs_client_err_set(err, 0, "cannot connect to %s: %s", self->endpoint, zmq_strerror(zmq_errno()));
        zmq_close(self->sock);
        self->sock = NULL;
        return GS_CLIENT_EIO;
    }
    return 0;
}

/* Poll the socket for events until deadline. Returns 0 ready, 1 the
 * deadline passed, GS_CLIENT_ECANCELLED or GS_CLIENT_EIO. */
static int
s_wait(gs_admin_t *self, short events, int64_t deadline)
{
    for (;;) {
        if (gs_client_cancelled(self->opts.cancel))
            return GS_CLIENT_ECANCELLED;
        if (gs_client_mono_ms() >= deadline)
            return 1;
        zmq_pollitem_t it = { self->sock, 0, events, 0 };
        int n = zmq_poll(&it, 1, gs_client_wait_ms(deadline - gs_client_mono_ms(), self->opts.cancel));
        if (n < 0 && errno != EINTR)
            return GS_CLIENT_EIO;
        if (n > 0)
            return 0;
    }
}

int
gs_admin_call(gs_admin_t *self, Gridsync__V1__AdminRequest *req,
              Gridsync__V1__AdminReply **reply_out, gs_client_error_t *err)
{
    assert(self && req && reply_out);
    *reply_out = NULL;
    if (err) {
        err->reason = 0;
        err->message[0] = 0;
    }
    int64_t deadline = gs_client_mono_ms() + self->opts.timeout_ms;
    int rc = s_socket_check(self, err);
    if (rc)
        return rc;
    if (!self->sock && (rc = s_connect(self, err)))
        return rc;
    req->request_id = ++self->next_id;
    size_t len = gridsync__v1__admin_request__get_packed_size(req);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        gs_client_err_set(err, 0, "out of memory");
        return GS_CLIENT_ENOMEM;
    }
    gridsync__v1__admin_request__pack(req, buf);
    /* a DEALER without a connection yet would block a plain send */
    for (;;) {
        if (zmq_send(self->sock, buf, len, ZMQ_DONTWAIT) == (int) len) {
            rc = 0;
            break;
        }
        if (errno != EAGAIN && errno != EINTR) {
            rc = GS_CLIENT_EIO;
            break;
        }
        if ((rc = s_wait(self, ZMQ_POLLOUT, deadline)) != 0)
            break;
    }
    free(buf);
    while (rc == 0) {
        if ((rc = s_wait(self, ZMQ_POLLIN, deadline)) != 0)
            break;
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            continue;
        }
        Gridsync__V1__AdminReply *rep =
            gridsync__v1__admin_reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        zmq_msg_close(&m);
        if (!rep) {
            gs_client_err_set(err, 0, "the answer from %s does not decode as a gridsync.v1.AdminReply",
                  self->endpoint);
            return GS_CLIENT_EPROTO;
        }
        /* request_id 0: the broker could not read the request at all, and
         * that answer is ours (docs/protocol.md, "Frames") */
        if (rep->request_id != req->request_id && rep->request_id != 0) {
            gridsync__v1__admin_reply__free_unpacked(rep, NULL); /* an earlier call's */
            continue;
        }
        if (rep->body_case == GRIDSYNC__V1__ADMIN_REPLY__BODY_ERROR) {
            gs_client_err_set(err, rep->error->reason, "%s", rep->error->message);
            gridsync__v1__admin_reply__free_unpacked(rep, NULL);
            return GS_CLIENT_ESERVER;
        }
        *reply_out = rep;
        return 0;
    }
    if (rc == 1) {
        gs_client_err_set(err, 0, "no answer on %s within %d ms", self->endpoint, self->opts.timeout_ms);
        rc = GS_CLIENT_ETIMEOUT;
    } else if (rc == GS_CLIENT_ECANCELLED) {
        gs_client_err_set(err, 0, "interrupted while waiting for %s", self->endpoint);
    } else {
        gs_client_err_set(err, 0, "socket error on %s: %s", self->endpoint, zmq_strerror(zmq_errno()));
    }
    /* start the next call on a fresh connection, not one that went quiet */
    zmq_close(self->sock);
    self->sock = NULL;
    return rc;
}

/* gs_admin_call, and check that the reply has the body asked for. */
static int
s_ask(gs_admin_t *self, Gridsync__V1__AdminRequest *req, const char *what,
      Gridsync__V1__AdminReply **rep, gs_client_error_t *err)
{
    int rc = gs_admin_call(self, req, rep, err);
    if (rc)
        return rc;
    /* the reply's body field has the request's field number (AdminReply
     * and AdminRequest share 2..6); from the digest on it is one more
     * (7 is Error) */
    int want = req->body_case >= GRIDSYNC__V1__ADMIN_REQUEST__BODY_DIGEST
                   ? (int) req->body_case + 1
                   : (int) req->body_case;
    if ((int) (*rep)->body_case != want) {
        gs_client_err_set(err, 0, "the broker answered a %s request with another kind of reply", what);
        gridsync__v1__admin_reply__free_unpacked(*rep, NULL);
        *rep = NULL;
        return GS_CLIENT_EPROTO;
    }
    return 0;
}

/* Free a reply whose body the caller has taken (and set to NULL). */
static void
s_release(Gridsync__V1__AdminReply *rep)
{
    rep->body_case = GRIDSYNC__V1__ADMIN_REPLY__BODY__NOT_SET;
    gridsync__v1__admin_reply__free_unpacked(rep, NULL);
}

int
gs_admin_stats(gs_admin_t *self, const char *prefix, Gridsync__V1__StatsReply **out,
               gs_client_error_t *err)
{
    *out = NULL;
    Gridsync__V1__StatsRequest sr = GRIDSYNC__V1__STATS_REQUEST__INIT;
    sr.prefix = (char *) (prefix ? prefix : "");
    Gridsync__V1__AdminRequest req = GRIDSYNC__V1__ADMIN_REQUEST__INIT;
    req.body_case = GRIDSYNC__V1__ADMIN_REQUEST__BODY_STATS;
    req.stats = &sr;
    Gridsync__V1__AdminReply *rep = NULL;
    int rc = s_ask(self, &req, "stats", &rep, err);
    if (!rc) {
        *out = rep->stats;
        rep->stats = NULL;
        s_release(rep);
    }
    return rc;
}

int
gs_admin_get(gs_admin_t *self, int kind, const char *record_key,
             Gridsync__V1__SnapshotEntry **out, gs_client_error_t *err)
{
    *out = NULL;
    if (!record_key || !*record_key) {
        gs_client_err_set(err, 0, "a record id is needed");
        return GS_CLIENT_EINVAL;
    }
    Gridsync__V1__GetRequest gr = GRIDSYNC__V1__GET_REQUEST__INIT;
    gr.kind = (Gridsync__V1__RecordKind) kind;
    gr.record_key = (char *) record_key;
    Gridsync__V1__AdminRequest req = GRIDSYNC__V1__ADMIN_REQUEST__INIT;
    req.body_case = GRIDSYNC__V1__ADMIN_REQUEST__BODY_GET;
    req.get = &gr;
    Gridsync__V1__AdminReply *rep = NULL;
    int rc = s_ask(self, &req, "get", &rep, err);
    if (!rc) {
        *out = rep->record;
        rep->record = NULL;
        s_release(rep);
    }
    return rc;
}

int
gs_admin_devices(gs_admin_t *self, Gridsync__V1__DeviceListReply **out, gs_client_error_t *err)
{
    *out = NULL;
    Gridsync__V1__DeviceListRequest dr = GRIDSYNC__V1__DEVICE_LIST_REQUEST__INIT;
    Gridsync__V1__AdminRequest req = GRIDSYNC__V1__ADMIN_REQUEST__INIT;
    req.body_case = GRIDSYNC__V1__ADMIN_REQUEST__BODY_DEVICES;
    req.devices = &dr;
    Gridsync__V1__AdminReply *rep = NULL;
    int rc = s_ask(self, &req, "devices", &rep, err);
    if (!rc) {
        *out = rep->devices;
        rep->devices = NULL;
        s_release(rep);
    }
    return rc;
}

int
gs_admin_grids(gs_admin_t *self, const char *prefix, Gridsync__V1__GridListReply **out,
               gs_client_error_t *err)
{
    *out = NULL;
    Gridsync__V1__GridListRequest gr = GRIDSYNC__V1__GRID_LIST_REQUEST__INIT;
    gr.prefix = (char *) (prefix ? prefix : "");
    Gridsync__V1__AdminRequest req = GRIDSYNC__V1__ADMIN_REQUEST__INIT;
    req.body_case = GRIDSYNC__V1__ADMIN_REQUEST__BODY_GRIDS;
    req.grids = &gr;
    Gridsync__V1__AdminReply *rep = NULL;
    int rc = s_ask(self, &req, "grids", &rep, err);
    if (!rc) {
        *out = rep->grids;
        rep->grids = NULL;
        s_release(rep);
    }
    return rc;
}

int
gs_admin_health(gs_admin_t *self, Gridsync__V1__HealthReply **out, gs_client_error_t *err)
{
    *out = NULL;
    Gridsync__V1__HealthRequest hr = GRIDSYNC__V1__HEALTH_REQUEST__INIT;
    Gridsync__V1__AdminRequest req = GRIDSYNC__V1__ADMIN_REQUEST__INIT;
    req.body_case = GRIDSYNC__V1__ADMIN_REQUEST__BODY_HEALTH;
    req.health = &hr;
    Gridsync__V1__AdminReply *rep = NULL;
    int rc = s_ask(self, &req, "health", &rep, err);
    if (!rc) {
        *out = rep->health;
        rep->health = NULL;
        s_release(rep);
    }
    return rc;
}

int
gs_admin_incident_categories(gs_admin_t *self, Gridsync__V1__IncidentCategoriesReply **out,
                             gs_client_error_t *err)
{
    *out = NULL;
    Gridsync__V1__IncidentCategoriesRequest cr = GRIDSYNC__V1__INCIDENT_CATEGORIES_REQUEST__INIT;
    Gridsync__V1__AdminRequest req = GRIDSYNC__V1__ADMIN_REQUEST__INIT;
    req.body_case = GRIDSYNC__V1__ADMIN_REQUEST__BODY_INCIDENT_CATEGORIES;
    req.incident_categories = &cr;
    Gridsync__V1__AdminReply *rep = NULL;
    int rc = s_ask(self, &req, "incident categories", &rep, err);
    if (!rc) {
        *out = rep->incident_categories;
        rep->incident_categories = NULL;
        s_release(rep);
    }
    return rc;
}

int
gs_admin_digest(gs_admin_t *self, const char *prefix, const uint8_t *cursor,
                size_t cursor_len, uint32_t limit, Gridsync__V1__DigestReply **out,
                gs_client_error_t *err)
{
    *out = NULL;
    if (cursor_len && !cursor) {
        gs_client_err_set(err, 0, "a cursor length without a cursor");
        return GS_CLIENT_EINVAL;
    }
    Gridsync__V1__DigestRequest dr = GRIDSYNC__V1__DIGEST_REQUEST__INIT;
    dr.prefix = (char *) (prefix ? prefix : "");
    dr.cursor.data = (uint8_t *) cursor;
    dr.cursor.len = cursor_len;
    dr.limit = limit;
    Gridsync__V1__AdminRequest req = GRIDSYNC__V1__ADMIN_REQUEST__INIT;
    req.body_case = GRIDSYNC__V1__ADMIN_REQUEST__BODY_DIGEST;
    req.digest = &dr;
    Gridsync__V1__AdminReply *rep = NULL;
    int rc = s_ask(self, &req, "digest", &rep, err);
    if (rc)
        return rc;
    Gridsync__V1__DigestReply *d = rep->digest;
    /* what the caller will index without checking: a node, 16-byte digests */
    int ok = d && d->node && d->node->digest.len == 16;
    for (size_t i = 0; ok && i < d->n_children; i++)
        ok = d->children[i]->digest.len == 16;
    for (size_t i = 0; ok && i < d->n_records; i++)
        ok = d->records[i]->content_hash.len == 16;
    if (!ok) {
        gs_client_err_set(err, 0, "the broker's digest reply lacks its node or has a digest "
                                  "that is not 16 bytes");
        gridsync__v1__admin_reply__free_unpacked(rep, NULL);
        return GS_CLIENT_EPROTO;
    }
    *out = d;
    rep->digest = NULL;
    s_release(rep);
    return 0;
}

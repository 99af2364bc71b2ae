/*
 * gs_frontend: the frontend thread. See gs_frontend.h.
 */
#include "gs_frontend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gs_authz.h"
#include "gs_frames.h"
#include "gs_log.h"
#include "gs_prescan.h"
#include "gs_validate.h"
#include "gs_wire.h"

/* Who sent this request, and may they do it? In secure mode the identity
 * is the "device_id" the ZAP handler attached to the connection; the
 * registry is read again for every request, so a revocation applies to a
 * live connection at its next request. In --insecure-dev mode the upload's
 * own device_id is taken at its word, and an unregistered one may do
 * anything (said so by *scope_all, never by an empty list). Scope is denied
 * by default: only an ADMIN gets *scope_all = 1; a DEVICE or DISTRICT entry
 * without prefixes (written before the registry refused them) may do
 * nothing, and is refused every request but a ping, which is answered so
 * that it can say so. On success the sender's prefixes are copied into the
 * arena, and *dev_out (when not NULL) gets the registry entry, NULL for an
 * unregistered sender in development mode; the caller frees it with
 * gridsync__v1__device__free_unpacked. Returns 0 or a reason with msg set. */
static int
s_authorise(gs_broker_t *b, zmq_msg_t *body, Gridsync__V1__Request *req, gs_arena_t *arena,
            char ***prefixes, size_t *n_prefixes, int *scope_all, char *msg, size_t msg_size,
            Gridsync__V1__Device **dev_out)
{
    *prefixes = NULL;
    *n_prefixes = 0;
    *scope_all = 0;
    if (dev_out)
        *dev_out = NULL;
    const char *id = NULL;
    if (b->secure) {
        id = zmq_msg_gets(body, "device_id");
        if (!id) {
            snprintf(msg, msg_size, "connection is not authenticated");
            return GRIDSYNC__V1__REASON__REASON_UNAUTHORISED;
        }
    } else if (req->body_case == GRIDSYNC__V1__REQUEST__BODY_UPLOAD) {
        id = req->upload->device_id;
    }
    Gridsync__V1__Device *dev = NULL;
    int rc = id ? gs_store_device_get(b->store, id, &dev) : GS_ENOTFOUND;
    if (rc) {
        if (!b->secure && rc == GS_ENOTFOUND) {
            /* development mode (loopback only): unregistered is unrestricted */
            *scope_all = 1;
            return 0;
        }
        if (rc != GS_ENOTFOUND) {
            snprintf(msg, msg_size, "the device registry could not be read; retry later");
            return GRIDSYNC__V1__REASON__REASON_INTERNAL;
        }
        snprintf(msg, msg_size, "device '%.64s' is not enrolled", id);
        return GRIDSYNC__V1__REASON__REASON_UNAUTHORISED;
    }
    int reason = 0;
    int admin = dev->role == GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN;
    int is_ping = req->body_case == GRIDSYNC__V1__REQUEST__BODY_PING;
    gs_authz_t may = gs_authz_check(dev, NULL);
    if (may == GS_AUTHZ_REVOKED) {
        snprintf(msg, msg_size, "device '%.64s' has been revoked", dev->device_id);
        reason = GRIDSYNC__V1__REASON__REASON_UNAUTHORISED;
    } else if (may == GS_AUTHZ_UNKNOWN_ROLE) {
        snprintf(msg, msg_size, "'%.64s' has an unknown role (%d); it may do nothing",
                 dev->device_id, (int) dev->role);
        reason = GRIDSYNC__V1__REASON__REASON_UNAUTHORISED;
    } else if (may != GS_AUTHZ_ALLOWED && !(may == GS_AUTHZ_NO_SCOPE && is_ping)) {
        /* GS_AUTHZ_NO_SCOPE: a ping is still answered, so that it can say so */
        snprintf(msg, msg_size, "'%.64s' has no grid prefixes assigned, so it may do nothing; "
                 "an administrator assigns them (gridctl devices assign)", dev->device_id);
        reason = GRIDSYNC__V1__REASON__REASON_OUT_OF_SCOPE;
    } else if (req->body_case == GRIDSYNC__V1__REQUEST__BODY_UPLOAD) {
        if (dev->role == GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT) {
            snprintf(msg, msg_size, "'%.64s' is a district system; district systems do not upload",
                     dev->device_id);
            reason = GRIDSYNC__V1__REASON__REASON_UNAUTHORISED;
        } else if (strcmp(req->upload->device_id, dev->device_id) != 0) {
            snprintf(msg, msg_size, "upload names device '%.64s' but the key belongs to '%.64s'",
                     req->upload->device_id, dev->device_id);
            reason = GRIDSYNC__V1__REASON__REASON_UNAUTHORISED;
        }
    } else if (is_ping) {
        /* nothing asked for: the reply says what the sender may touch */
    } else if (req->body_case == GRIDSYNC__V1__REQUEST__BODY_INCIDENT_CATEGORIES) {
        /* the category table is no grid's data: every enrolled role with
         * a scope may read it, to know what it may report with */
    } else if (req->body_case == GRIDSYNC__V1__REQUEST__BODY_SYNC ||
               req->body_case == GRIDSYNC__V1__REQUEST__BODY_SNAPSHOT) {
        char **want = req->body_case == GRIDSYNC__V1__REQUEST__BODY_SYNC
                          ? req->sync->prefixes : req->snapshot->prefixes;
        size_t nw = req->body_case == GRIDSYNC__V1__REQUEST__BODY_SYNC
                        ? req->sync->n_prefixes : req->snapshot->n_prefixes;
        for (size_t i = 0; i < nw && !reason; i++)
            if (gs_authz_check(dev, want[i]) != GS_AUTHZ_ALLOWED) {
                snprintf(msg, msg_size, "prefix '%.15s' is outside the grids assigned to '%.64s'",
                         want[i], dev->device_id);
                reason = GRIDSYNC__V1__REASON__REASON_OUT_OF_SCOPE;
            }
    } else {
        /* a body the checks above do not know is never let through */
        snprintf(msg, msg_size, "request carries no known body");
        reason = GRIDSYNC__V1__REASON__REASON_UNKNOWN_TYPE;
    }
    if (!reason && admin) {
        *scope_all = 1; /* an administrator's role: everywhere, said explicitly */
    } else if (!reason) {
        char **copy = gs_arena_alloc(arena, (dev->n_prefixes + 1) * sizeof *copy);
        size_t i = 0;
        for (; copy && i < dev->n_prefixes; i++)
            if (!(copy[i] = gs_arena_strdup(arena, dev->prefixes[i])))
                break;
        if (!copy || i < dev->n_prefixes) {
            /* never a list shorter than its count (or NULL with a count) */
            snprintf(msg, msg_size, "out of memory; retry later");
            reason = GRIDSYNC__V1__REASON__REASON_BUSY;
        } else {
            *prefixes = copy;
            *n_prefixes = dev->n_prefixes;
        }
    }
    if (!reason && dev_out)
        *dev_out = dev;
    else
        gridsync__v1__device__free_unpacked(dev, NULL);
    return reason;
}

/* Send a packed reply straight from the frontend to identity. */
static void
s_frontend_send(gs_broker_t *b, void *sock, zmq_msg_t *identity, int req_style,
                const gs_wbuf_t *wb)
{
    zmq_msg_t id;
    zmq_msg_init(&id);
    zmq_msg_copy(&id, identity);
    if (zmq_msg_send(&id, sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&id);
        atomic_fetch_add(&b->metrics.unroutable_replies, 1);
    } else {
        if (req_style)
            zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(sock, wb->data, wb->len, ZMQ_DONTWAIT);
    }
}

/* Send an error straight from the frontend. */
static void
s_frontend_error(gs_broker_t *b, void *sock, zmq_msg_t *identity, int req_style,
                 int admin, uint64_t request_id, int reason, const char *msg)
{
    gs_wbuf_t wb;
    gs_wbuf_init(&wb);
    gs_serve_error(&b->serve, &wb, admin, request_id, reason, msg);
    s_frontend_send(b, sock, identity, req_style, &wb);
    gs_wbuf_deinit(&wb);
}

/* Answer a ping on the frontend thread, from what s_authorise found (dev is
 * NULL for an unregistered sender in development mode): the registry was
 * read there already, and the rest is a few reads of the store's head. */
static void
s_answer_ping(gs_broker_t *b, zmq_msg_t *identity, int req_style, uint64_t request_id,
              const Gridsync__V1__Device *dev, char **prefixes, size_t n_prefixes,
              int scope_all)
{
    gs_wbuf_t wb;
    gs_wbuf_init(&wb);
    gs_serve_ping(&b->serve, request_id, dev, prefixes, n_prefixes, scope_all, gs_now_ms(),
                  &wb);
    s_frontend_send(b, b->router, identity, req_style, &wb);
    gs_wbuf_deinit(&wb);
}

static void
s_send_reply(gs_broker_t *b, gs_reply_t *r)
{
    void *sock = r->target == GS_TO_ADMIN ? b->admin : b->router;
    if (zmq_msg_send(&r->identity, sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        /* the client went away (ROUTER_MANDATORY) or its queue is full */
        atomic_fetch_add(&b->metrics.unroutable_replies, 1);
        return;
    }
    if (r->req_style)
        zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_msg_send(&r->body, sock, ZMQ_DONTWAIT);
    if (r->recv_us)
        gs_hist_observe(&b->metrics.ack_seconds, (double) (gs_mono_us() - r->recv_us) / 1e6);
}

/* Read one whole message from a ROUTER: identity, optional empty delimiter,
 * body. Returns 0 with identity and body set, or -1 when it was malformed
 * (dropped and counted, or answered when addressable). */
static int
s_recv_request(gs_broker_t *b, void *sock, zmq_msg_t *identity, zmq_msg_t *body,
               int *req_style)
{
    zmq_msg_t frames[4];
    int n = gs_frames_recv(sock, frames, 4, ZMQ_DONTWAIT);
    int kept = n < 4 ? n : 4;
    int ok = 0;
    *req_style = 0;
    if (n == 2) {
        ok = 1;
    } else if (n == 3 && zmq_msg_size(&frames[1]) == 0) {
        ok = 1;
        *req_style = 1;
    }
    if (ok) {
        zmq_msg_init(identity);
        zmq_msg_init(body);
        zmq_msg_move(identity, &frames[0]);
        zmq_msg_move(body, &frames[n - 1]);
    } else if (n >= 1) {
        /* addressable: say what was wrong */
        char msg[GS_MSG_MAX];
        snprintf(msg, sizeof msg,
                 "expected one frame (a gridsync.v1.Request) after the routing id, got %d", n - 1);
        s_frontend_error(b, sock, &frames[0], 0, sock == b->admin, 0,
                         GRIDSYNC__V1__REASON__REASON_MALFORMED, msg);
    } else {
        atomic_fetch_add(&b->metrics.dropped_frames, 1);
    }
    for (int i = 0; i < kept; i++)
        zmq_msg_close(&frames[i]);
    return ok ? 0 : -1;
}

/* The request_id in a request's raw bytes, to echo in an error reply
 * when the request could not be decoded; 0 when it holds none. */
static uint64_t
s_request_id(const ProtobufCMessageDescriptor *desc, zmq_msg_t *body)
{
    uint64_t rid = 0;
    gs_wire_find_varint(zmq_msg_data(body), zmq_msg_size(body),
                        protobuf_c_message_descriptor_get_field_by_name(desc, "request_id")->id,
                        &rid);
    return rid;
}

gs_prescan_records_t *
gs_frontend_records_new(const gs_limits_t *lim)
{
    gs_prescan_records_t *r = calloc(1, sizeof *r);
    size_t max = lim->max_records ? lim->max_records : 1;
    if (!r)
        return NULL;
    r->at = calloc(max, sizeof *r->at);
    r->len = calloc(max, sizeof *r->len);
    r->canonical = calloc(max, 1);
    r->max = max;
    if (!r->at || !r->len || !r->canonical)
        gs_frontend_records_destroy(&r);
    return r;
}

void
gs_frontend_records_destroy(gs_prescan_records_t **self_p)
{
    gs_prescan_records_t *r = *self_p;
    if (!r)
        return;
    free(r->at);
    free(r->len);
    free(r->canonical);
    free(r);
    *self_p = NULL;
}

static void
s_handle_router(gs_broker_t *b, int draining)
{
    gs_prescan_records_t *recs = b->fe_records;
    zmq_msg_t identity, body;
    int req_style;
    if (s_recv_request(b, b->router, &identity, &body, &req_style))
        return;
    size_t len = zmq_msg_size(&body);
    gs_arena_t *arena = NULL;
    /* Walk the raw bytes before unpacking: protobuf-c builds every list
     * element before anything can count them, so a frame of millions of
     * empty records would take hundreds of MB (see gs_prescan.h). The same
     * walk finds the upload's records and whether their bytes can be
     * stored as they came. */
    gs_verdict_t pre;
    if (gs_prescan_records(&gridsync__v1__request__descriptor, zmq_msg_data(&body), len,
                           &b->limits, NULL, &pre, recs)) {
        s_frontend_error(b, b->router, &identity, req_style, 0,
                         s_request_id(&gridsync__v1__request__descriptor, &body), pre.reason,
                         pre.message);
        goto done;
    }
    arena = gs_arena_new(len * 4 + 4096);
    Gridsync__V1__Request *req =
        arena ? gridsync__v1__request__unpack(gs_arena_allocator(arena), len,
                                              zmq_msg_data(&body))
              : NULL;
    if (!arena) {
        s_frontend_error(b, b->router, &identity, req_style, 0,
                         s_request_id(&gridsync__v1__request__descriptor, &body),
                         GRIDSYNC__V1__REASON__REASON_BUSY, "out of memory; retry later");
        goto done;
    }
    if (!req) {
        char msg[GS_MSG_MAX];
        snprintf(msg, sizeof msg, "%zu bytes do not decode as a gridsync.v1.Request", len);
        s_frontend_error(b, b->router, &identity, req_style, 0, 0,
                         GRIDSYNC__V1__REASON__REASON_MALFORMED, msg);
        goto done;
    }
    gs_verdict_t v;
    switch (req->body_case) {
    case GRIDSYNC__V1__REQUEST__BODY_UPLOAD:
        if (b->replica) {
            /* a replica's store is written from its origins' streams only */
            char ro[GS_MSG_MAX];
            snprintf(ro, sizeof ro, "this broker is a read-only city replica of districts "
                     "%.200s; upload to the district broker of the record's area",
                     b->cfg.replica_of);
            s_frontend_error(b, b->router, &identity, req_style, 0, req->request_id,
                             GRIDSYNC__V1__REASON__REASON_READ_ONLY, ro);
            goto done;
        }
        if (draining) {
            s_frontend_error(b, b->router, &identity, req_style, 0, req->request_id,
                             GRIDSYNC__V1__REASON__REASON_SHUTTING_DOWN,
                             "broker is shutting down; retry the same upload shortly");
            goto done;
        }
        if (gs_upload_check(req->upload, &b->limits, &v)) {
            s_frontend_error(b, b->router, &identity, req_style, 0, req->request_id,
                             v.reason, v.message);
            goto done;
        }
        /* backpressure: the writer's queue is bounded, in records */
        if (atomic_load(&b->pending) + (int64_t) req->upload->n_records >
            b->cfg.max_pending_records) {
            char busy[GS_MSG_MAX];
            snprintf(busy, sizeof busy,
                     "broker busy: %lld records are waiting to be stored; retry the same "
                     "upload shortly",
                     (long long) atomic_load(&b->pending));
            s_frontend_error(b, b->router, &identity, req_style, 0, req->request_id,
                             GRIDSYNC__V1__REASON__REASON_BUSY, busy);
            goto done;
        }
        break;
    case GRIDSYNC__V1__REQUEST__BODY_SYNC:
    case GRIDSYNC__V1__REQUEST__BODY_SNAPSHOT:
    case GRIDSYNC__V1__REQUEST__BODY_PING:
    case GRIDSYNC__V1__REQUEST__BODY_INCIDENT_CATEGORIES:
        break;
    default:
        s_frontend_error(b, b->router, &identity, req_style, 0, req->request_id,
                         GRIDSYNC__V1__REASON__REASON_UNKNOWN_TYPE,
                         "request carries no known body (upload, sync, snapshot, ping or "
                         "incident_categories)");
        goto done;
    }
    char **prefixes = NULL;
    size_t n_prefixes = 0;
    int scope_all = 0;
    char amsg[GS_MSG_MAX];
    Gridsync__V1__Device *dev = NULL;
    int is_ping = req->body_case == GRIDSYNC__V1__REQUEST__BODY_PING;
    int reason = s_authorise(b, &body, req, arena, &prefixes, &n_prefixes, &scope_all, amsg,
                             sizeof amsg, &dev);
    if (reason) {
        gs_log(GS_LOG_WARN, "request_refused", "reason=%s msg=\"%s\"", gs_reason_name(reason),
               amsg);
        s_frontend_error(b, b->router, &identity, req_style, 0, req->request_id, reason, amsg);
        goto done;
    }
    if (is_ping) {
        s_answer_ping(b, &identity, req_style, req->request_id, dev, prefixes, n_prefixes,
                      scope_all);
        if (dev)
            gridsync__v1__device__free_unpacked(dev, NULL);
        goto done;
    }
    gs_job_t *job = calloc(1, sizeof *job);
    if (!job) {
        if (dev)
            gridsync__v1__device__free_unpacked(dev, NULL);
        s_frontend_error(b, b->router, &identity, req_style, 0, req->request_id,
                         GRIDSYNC__V1__REASON__REASON_BUSY, "out of memory; retry later");
        goto done;
    }
    job->dev = dev;     /* the job owns it from here */
    job->prefixes = prefixes;
    job->n_prefixes = n_prefixes;
    job->scope_all = scope_all;
    if (req->body_case == GRIDSYNC__V1__REQUEST__BODY_UPLOAD) {
        /* Validate, normalise, pack, hash and HMAC here, on the frontend
         * thread, so the writer's transaction spends its time on storage
         * only and the two threads work on different uploads at once. */
        Gridsync__V1__Upload *up = req->upload;
        /* the job keeps the frame: records whose bytes are what pack
         * writes, and that normalisation leaves as they are, are stored as
         * the bytes they came in (the frame's data stays where it is when
         * the message moves, but a tiny message keeps its bytes inside the
         * zmq_msg_t, so the pre-scan's spans are moved with them) */
        const uint8_t *was = zmq_msg_data(&body);
        zmq_msg_init(&job->frame);
        zmq_msg_move(&job->frame, &body);
        job->has_frame = 1;
        /* one span per record, in order, as the pre-scan walked them; were
         * they ever not, every record would be packed (the same bytes) */
        int spans = recs->n == up->n_records;
        const uint8_t *now = zmq_msg_data(&job->frame);
        for (size_t i = 0; spans && i < recs->n; i++)
            recs->at[i] = recs->canonical[i] ? now + (recs->at[i] - was) : NULL;
        int rc = gs_store_prepare_canonical(b->store, up->records, spans ? recs->at : NULL,
                                            recs->len, up->n_records,
                                            gs_arena_allocator(arena), gs_now_ms(),
                                            &job->prepared);
        if (rc) {
            if (job->dev)
                gridsync__v1__device__free_unpacked(job->dev, NULL);
            zmq_msg_close(&job->frame);
            free(job);
            s_frontend_error(b, b->router, &identity, req_style, 0, req->request_id,
                             GRIDSYNC__V1__REASON__REASON_BUSY, "out of memory; retry later");
            goto done;
        }
    }
    zmq_msg_init(&job->identity);
    zmq_msg_move(&job->identity, &identity);
    job->req_style = req_style;
    job->target = GS_TO_ROUTER;
    job->request_id = req->request_id;
    job->arena = arena;
    job->req = req;
    job->recv_us = gs_mono_us();
    arena = NULL;
    int is_upload = req->body_case == GRIDSYNC__V1__REQUEST__BODY_UPLOAD;
    size_t nrec = is_upload ? req->upload->n_records : 0;
    if (is_upload)
        atomic_fetch_add(&b->pending, (int64_t) nrec);
    if (gs_ptr_send(is_upload ? b->to_writer : b->to_readers, job)) {
        if (is_upload)
            atomic_fetch_sub(&b->pending, (int64_t) nrec);
        gs_job_destroy(&job);
    }
done:
    gs_arena_destroy(&arena);
    zmq_msg_close(&identity);
    zmq_msg_close(&body);
}

static void
s_handle_admin(gs_broker_t *b)
{
    zmq_msg_t identity, body;
    int req_style;
    if (s_recv_request(b, b->admin, &identity, &body, &req_style))
        return;
    size_t len = zmq_msg_size(&body);
    /* the same walk before unpacking as for uploads: the admin socket is
     * local and owner-only, but a broken tool must not cost the broker
     * hundreds of MB either */
    gs_verdict_t pre;
    if (gs_prescan(&gridsync__v1__admin_request__descriptor, zmq_msg_data(&body), len,
                   &b->limits, NULL, &pre)) {
        s_frontend_error(b, b->admin, &identity, req_style, 1, 0, pre.reason, pre.message);
        zmq_msg_close(&identity);
        zmq_msg_close(&body);
        return;
    }
    gs_arena_t *arena = gs_arena_new(len * 4 + 1024);
    Gridsync__V1__AdminRequest *req =
        arena ? gridsync__v1__admin_request__unpack(gs_arena_allocator(arena), len,
                                                    zmq_msg_data(&body))
              : NULL;
    if (!arena) {
        s_frontend_error(b, b->admin, &identity, req_style, 1,
                         s_request_id(&gridsync__v1__admin_request__descriptor, &body),
                         GRIDSYNC__V1__REASON__REASON_BUSY, "out of memory; retry later");
    } else if (!req) {
        s_frontend_error(b, b->admin, &identity, req_style, 1, 0,
                         GRIDSYNC__V1__REASON__REASON_MALFORMED,
                         "request does not decode as a gridsync.v1.AdminRequest");
        gs_arena_destroy(&arena);
    } else {
        gs_job_t *job = calloc(1, sizeof *job);
        if (job) {
            zmq_msg_init(&job->identity);
            zmq_msg_move(&job->identity, &identity);
            job->req_style = req_style;
            job->target = GS_TO_ADMIN;
            job->request_id = req->request_id;
            job->arena = arena;
            job->admin = req;
            if (gs_ptr_send(b->to_readers, job))
                gs_job_destroy(&job);
        } else {
            /* answered, as the request path does: a tool waiting for a
             * reply is told to retry instead of timing out */
            s_frontend_error(b, b->admin, &identity, req_style, 1, req->request_id,
                             GRIDSYNC__V1__REASON__REASON_BUSY, "out of memory; retry later");
            gs_arena_destroy(&arena);
        }
    }
    zmq_msg_close(&identity);
    zmq_msg_close(&body);
}

/* Forward every queued reply; count "done" markers from workers. */
static int
s_drain_replies(gs_broker_t *b)
{
    int done = 0;
    void *p;
    while (gs_ptr_recv(b->replies, &p, ZMQ_DONTWAIT) == 0) {
        if (!p) {
            done++;
            continue;
        }
        gs_reply_t *r = p;
        s_send_reply(b, r);
        gs_reply_destroy(&r);
    }
    return done;
}

void
gs_frontend_run(gs_broker_t *b)
{
    int draining = 0;
    int workers = 1 + (int) b->cfg.readers;    /* writer + readers to hear "done" from */
    int done = 0;
    while (done < workers) {
        zmq_pollitem_t items[5] = {
            { b->replies, 0, ZMQ_POLLIN, 0 },
            { b->router, 0, draining ? 0 : ZMQ_POLLIN, 0 },
            { b->admin, 0, draining ? 0 : ZMQ_POLLIN, 0 },
            { NULL, b->sig_pipe[0], ZMQ_POLLIN, 0 },
        };
        if (zmq_poll(items, 4, -1) < 0) {
            if (errno == EINTR)
                continue;
            gs_log(GS_LOG_ERROR, "poll_failed", "error=\"%s\"", zmq_strerror(errno));
            break;
        }
        if (items[0].revents & ZMQ_POLLIN)
            done += s_drain_replies(b);
        if (items[1].revents & ZMQ_POLLIN) {
            /* bounded burst so replies keep flowing under load */
            for (int k = 0; k < 256; k++) {
                int ev = 0;
                size_t sz = sizeof ev;
                zmq_getsockopt(b->router, ZMQ_EVENTS, &ev, &sz);
                if (!(ev & ZMQ_POLLIN))
                    break;
                s_handle_router(b, draining);
            }
        }
        if (items[2].revents & ZMQ_POLLIN)
            s_handle_admin(b);
        if ((items[3].revents & ZMQ_POLLIN) && !draining) {
            char buf[16];
            ssize_t r = read(b->sig_pipe[0], buf, sizeof buf);
            (void) r;
            draining = 1;
            gs_log(GS_LOG_INFO, "draining", "head_seq=%llu",
                   (unsigned long long) atomic_load(&b->head_seq));
            /* queued behind every upload already handed over */
            gs_ptr_send(b->to_writer, NULL);
            for (int i = 0; i < b->cfg.readers; i++)
                gs_ptr_send(b->to_readers, NULL);
        }
    }
}

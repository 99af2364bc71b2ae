/*
 * gs_writer: the writer thread (group commit). See gs_writer.h.
 */
#include "gs_writer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gs_bridge.h"
#include "gs_log.h"

struct gs_writer {
    gs_broker_t *b;                 /* the broker it writes for */
    size_t cap;                     /* uploads in one group: batch-max-records + 1 */
    gs_job_t **jobs;                /* the group being committed */
    gs_upload_t *ups;               /* and its uploads, as gs_store_apply takes them */
    gs_principal_t *whos;           /* and who sent each (the incident workflow) */
};

gs_writer_t *
gs_writer_new(gs_broker_t *b)
{
    gs_writer_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->b = b;
    self->cap = (size_t) b->cfg.batch_max_records + 1;
    self->jobs = calloc(self->cap, sizeof *self->jobs);
    self->ups = calloc(self->cap, sizeof *self->ups);
    self->whos = calloc(self->cap, sizeof *self->whos);
    if (!self->jobs || !self->ups || !self->whos)
        gs_writer_destroy(&self);
    return self;
}

void
gs_writer_destroy(gs_writer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->jobs);
    free((*self_p)->ups);
    free((*self_p)->whos);
    free(*self_p);
    *self_p = NULL;
}

void *
gs_writer_main(void *arg)
{
    gs_writer_t *self = arg;
    gs_broker_t *b = self->b;
    void *in = zmq_socket(b->ctx, ZMQ_PAIR);
    void *out = zmq_socket(b->ctx, ZMQ_PUSH);
    zmq_connect(in, GS_EP_WRITER);
    zmq_connect(out, GS_EP_REPLIES);
    size_t cap = self->cap;
    gs_job_t **jobs = self->jobs;
    gs_upload_t *ups = self->ups;
    gs_wbuf_t wb;
    gs_wbuf_init(&wb);
    int draining = 0;
    int last_rc = 0;

    while (!draining) {
        void *p;
        if (gs_ptr_recv(in, &p, 0)) {
            if (errno == EINTR)
                continue;   /* not a stop: only the frontend's NULL is one */
            break;
        }
        if (!p) {
            draining = 1;
            break;
        }
        size_t n = 0, records = 0;
        jobs[n++] = p;
        records += jobs[0]->req->upload->n_records;
        int64_t deadline = gs_mono_us() + b->cfg.batch_linger_us;
        /* group commit: take whatever else is pending, within the bounds */
        while (n < cap && records < (size_t) b->cfg.batch_max_records) {
            if (gs_ptr_recv(in, &p, ZMQ_DONTWAIT)) {
                int64_t left = deadline - gs_mono_us();
                if (errno != EAGAIN || left <= 0)
                    break;
                zmq_pollitem_t it = { in, 0, ZMQ_POLLIN, 0 };
                if (zmq_poll(&it, 1, (long) ((left + 999) / 1000)) <= 0)
                    break;
                continue;
            }
            if (!p) {
                draining = 1; /* commit this batch, then stop */
                break;
            }
            jobs[n++] = p;
            records += ((gs_job_t *) p)->req->upload->n_records;
        }
        for (size_t i = 0; i < n; i++) {
            Gridsync__V1__Upload *up = jobs[i]->req->upload;
            ups[i] = (gs_upload_t) {
                .device_id = up->device_id,
                .upload_id = up->upload_id,
                .records = up->records,
                .n_records = up->n_records,
                .alloc = gs_arena_allocator(jobs[i]->arena),
                .prefixes = (const char *const *) jobs[i]->prefixes,
                .prepared = jobs[i]->prepared,
                .n_prefixes = jobs[i]->n_prefixes,
                .scope_all = jobs[i]->scope_all,
            };
            /* an unregistered sender (--insecure-dev) is a DEVICE */
            const Gridsync__V1__Device *d = jobs[i]->dev;
            self->whos[i] = (gs_principal_t) {
                .role = d ? (int) d->role : GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE,
                .department = d ? d->department : NULL,
                .categories = d ? (const char *const *) d->categories : NULL,
                .n_categories = d ? d->n_categories : 0,
            };
        }
        gs_apply_out_t res;
        memset(&res, 0, sizeof res);
        int64_t t0 = gs_mono_us();
        int rc = gs_store_apply_as(b->store, ups, self->whos, n, gs_now_ms(), &res);
        double secs = (double) (gs_mono_us() - t0) / 1e6;
        if (rc == 0) {
            atomic_fetch_add(&b->metrics.commits, 1);
            atomic_fetch_add(&b->metrics.map_grows, res.map_grows);
            for (int s = 0; s < GS_INCIDENT_STATUSES; s++)
                atomic_fetch_add(&b->metrics.incident_steps[s], res.incident_steps[s]);
            gs_hist_observe(&b->metrics.commit_records, (double) records);
            gs_hist_observe(&b->metrics.commit_seconds, secs);
            atomic_store(&b->head_seq, res.head_seq);
            gs_bridge_notify(b->to_bridge, res.head_seq); /* never waits */
            if (last_rc)
                gs_log(GS_LOG_INFO, "store_recovered", "head_seq=%llu",
                       (unsigned long long) res.head_seq);
            for (size_t i = 0; i < n; i++) {
                gs_serve_ack(&b->serve, jobs[i]->request_id, &res.uploads[i], &wb);
                gs_reply_t *r = gs_reply_new(jobs[i], wb.data, wb.len);
                if (r && gs_ptr_send(out, r))
                    gs_reply_destroy(&r);
            }
            size_t n_events = res.n_events;
            gs_events_hand(b->to_publisher, &res);
            gs_log(GS_LOG_DEBUG, "commit", "uploads=%zu records=%zu events=%zu ms=%.3f",
                   n, records, n_events, secs * 1e3);
        } else {
            atomic_fetch_add(&b->metrics.commit_failures, 1);
            if (rc != last_rc)
                gs_log(GS_LOG_ERROR, "commit_failed", "error=\"%s\" uploads=%zu records=%zu",
                       gs_store_strerror(rc), n, records);
            for (size_t i = 0; i < n; i++) {
                gs_serve_commit_error(&b->serve, jobs[i]->request_id, rc, &wb);
                gs_reply_t *r = gs_reply_new(jobs[i], wb.data, wb.len);
                if (r)
                    r->recv_us = 0;
                if (r && gs_ptr_send(out, r))
                    gs_reply_destroy(&r);
            }
        }
        last_rc = rc;
        atomic_fetch_sub(&b->pending, (int64_t) records);
        for (size_t i = 0; i < n; i++)
            gs_job_destroy(&jobs[i]);
    }
    /* tell the frontend every ack of ours is queued ahead of this */
    gs_ptr_send(out, NULL);
    gs_wbuf_deinit(&wb);
    int linger = -1;
    zmq_setsockopt(out, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(in);
    zmq_close(out);
    return NULL;
}

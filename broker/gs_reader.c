/*
 * gs_reader: the reader threads. See gs_reader.h.
 */
#include "gs_reader.h"

#include <assert.h>
#include <errno.h>

int
gs_reader_open(gs_reader_t *r, gs_broker_t *b)
{
    assert(r && b);
    r->b = b;
    r->in = zmq_socket(b->ctx, ZMQ_PULL);
    r->out = zmq_socket(b->ctx, ZMQ_PUSH);
    if (!r->in || !r->out || zmq_connect(r->in, GS_EP_READERS) ||
        zmq_connect(r->out, GS_EP_REPLIES)) {
        int err = errno;
        gs_reader_close(r);
        errno = err;
        return -1;
    }
    /* the last reply and the "done" marker are queued before the thread
     * returns; closing must not drop them */
    int linger = -1;
    zmq_setsockopt(r->out, ZMQ_LINGER, &linger, sizeof linger);
    return 0;
}

void
gs_reader_close(gs_reader_t *r)
{
    if (r->in)
        zmq_close(r->in);
    if (r->out)
        zmq_close(r->out);
    r->in = r->out = NULL;
}

void *
gs_reader_main(void *arg)
{
    gs_reader_t *self = arg;
    gs_broker_t *b = self->b;
    void *in = self->in;
    void *out = self->out;
    gs_wbuf_t reply;
    gs_wbuf_init(&reply);
    gs_serve_scratch_t scratch;
    gs_serve_scratch_init(&scratch);
    for (;;) {
        void *p;
        if (gs_ptr_recv(in, &p, 0)) {
            if (errno == EINTR)
                continue;   /* a signal is not a stop: only the frontend's NULL is one */
            break;
        }
        if (!p)
            break;
        gs_job_t *job = p;
        gs_serve_read_as(&b->serve, &scratch, job->req, job->admin, job->dev, gs_now_ms(),
                         &reply);
        gs_reply_t *r = gs_reply_take(job, &reply);
        if (r) {
            r->recv_us = 0;
            if (gs_ptr_send(out, r))
                gs_reply_destroy(&r);
        }
        gs_job_destroy(&job);
    }
    gs_ptr_send(out, NULL);
    gs_wbuf_deinit(&reply);
    gs_serve_scratch_deinit(&scratch);
    return NULL;
}

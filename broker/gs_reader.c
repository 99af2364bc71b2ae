/*
 * gs_reader: the reader threads. See gs_reader.h.
 */
#include "gs_reader.h"

#include <errno.h>

void *
gs_reader_main(void *arg)
{
    gs_broker_t *b = arg;
    void *in = zmq_socket(b->ctx, ZMQ_PULL);
    void *out = zmq_socket(b->ctx, ZMQ_PUSH);
    zmq_connect(in, GS_EP_READERS);
    zmq_connect(out, GS_EP_REPLIES);
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
        gs_serve_read(&b->serve, &scratch, job->req, job->admin, gs_now_ms(), &reply);
        gs_reply_t *r = gs_reply_new(job, reply.data, reply.len);
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
    int linger = -1;
    zmq_setsockopt(out, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(in);
    zmq_close(out);
    return NULL;
}

/*
 * gs_handoff: the jobs and replies the broker's threads pass. See
 * gs_handoff.h.
 */
#include "gs_handoff.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int
gs_ptr_send(void *sock, void *p)
{
    return zmq_send(sock, &p, sizeof p, 0) == (int) sizeof p ? 0 : -1;
}

void
gs_events_hand(void *sock, gs_apply_out_t *out)
{
    assert(sock && out);
    gs_apply_out_t *ev = out->n_events ? malloc(sizeof *ev) : NULL;
    if (ev) {
        *ev = *out;
        memset(out, 0, sizeof *out);
        if (gs_ptr_send(sock, ev) == 0)
            return;
        gs_apply_out_clear(ev);
        free(ev);
        return;
    }
    gs_apply_out_clear(out);
}

/* Receive a pointer; returns 0 and sets *p, or -1 (EAGAIN, ETERM...). */
int
gs_ptr_recv(void *sock, void **p, int flags)
{
    void *v = NULL;
    int n = zmq_recv(sock, &v, sizeof v, flags);
    if (n != (int) sizeof v)
        return -1;
    *p = v;
    return 0;
}

void
gs_job_destroy(gs_job_t **job_p)
{
    if (!job_p || !*job_p)
        return;
    gs_job_t *job = *job_p;
    zmq_msg_close(&job->identity);
    if (job->has_frame)
        zmq_msg_close(&job->frame);
    if (job->dev)
        gridsync__v1__device__free_unpacked(job->dev, NULL);
    gs_arena_destroy(&job->arena);
    free(job);
    *job_p = NULL;
}

/* Make a reply for job from a finished buffer (copied into a zmq message). */
gs_reply_t *
gs_reply_new(gs_job_t *job, const uint8_t *data, size_t len)
{
    gs_reply_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    zmq_msg_init(&r->identity);
    zmq_msg_move(&r->identity, &job->identity);
    r->req_style = job->req_style;
    r->target = job->target;
    r->recv_us = job->recv_us;
    zmq_msg_init_size(&r->body, len);
    if (len)
        memcpy(zmq_msg_data(&r->body), data, len);
    return r;
}

/* zmq_msg_init_data's free function for a buffer gs_reply_take moved. */
static void
s_body_free(void *data, void *hint)
{
    (void) hint;
    free(data);
}

gs_reply_t *
gs_reply_take(gs_job_t *job, gs_wbuf_t *wb)
{
    /* a small reply costs less to copy than a buffer to allocate */
    if (wb->failed || wb->len < GS_REPLY_TAKE_MIN)
        return gs_reply_new(job, wb->data, wb->len);
    uint8_t *fresh = malloc(wb->cap);
    gs_reply_t *r = fresh ? calloc(1, sizeof *r) : NULL;
    if (!r) {
        free(fresh);
        return gs_reply_new(job, wb->data, wb->len);
    }
    if (zmq_msg_init_data(&r->body, wb->data, wb->len, s_body_free, NULL)) {
        free(r);
        free(fresh);
        return gs_reply_new(job, wb->data, wb->len);
    }
    zmq_msg_init(&r->identity);
    zmq_msg_move(&r->identity, &job->identity);
    r->req_style = job->req_style;
    r->target = job->target;
    r->recv_us = job->recv_us;
    /* the same room again: the next reply of this size grows nothing */
    wb->data = fresh;
    wb->len = 0;
    return r;
}

void
gs_reply_destroy(gs_reply_t **r_p)
{
    if (!r_p || !*r_p)
        return;
    zmq_msg_close(&(*r_p)->identity);
    zmq_msg_close(&(*r_p)->body);
    free(*r_p);
    *r_p = NULL;
}

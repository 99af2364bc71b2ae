/*
 * test_handoff: the broker's thread hand-offs over a real inproc PAIR: a
 * pointer and the NULL control message arrive as sent, an empty queue is
 * EAGAIN, a reply takes its job's routing id and a copy of the bytes,
 * destroying is safe on NULL, and a commit's events pass to the publisher
 * with their ownership.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gs_handoff.h"

static void
test_pointers(void **state)
{
    (void) state;
    void *ctx = zmq_ctx_new();
    void *a = zmq_socket(ctx, ZMQ_PAIR), *b = zmq_socket(ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(a, "inproc://test-handoff"), 0);
    assert_int_equal(zmq_connect(b, "inproc://test-handoff"), 0);
    int x = 7;
    assert_int_equal(gs_ptr_send(b, &x), 0);
    assert_int_equal(gs_ptr_send(b, NULL), 0);
    void *p = NULL;
    assert_int_equal(gs_ptr_recv(a, &p, 0), 0);
    assert_ptr_equal(p, &x);
    p = &x;
    assert_int_equal(gs_ptr_recv(a, &p, 0), 0);
    assert_null(p); /* the control message */
    assert_int_equal(gs_ptr_recv(a, &p, ZMQ_DONTWAIT), -1);
    assert_int_equal(errno, EAGAIN);
    /* a frame that is not a pointer is refused, not read as one */
    assert_int_equal(zmq_send(b, "abc", 3, 0), 3);
    p = &x;
    assert_int_equal(gs_ptr_recv(a, &p, 0), -1);
    assert_ptr_equal(p, &x);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
}

static void
test_job_to_reply(void **state)
{
    (void) state;
    gs_job_t *job = calloc(1, sizeof *job);
    assert_non_null(job);
    zmq_msg_init_size(&job->identity, 5);
    memcpy(zmq_msg_data(&job->identity), "peer1", 5);
    job->req_style = 1;
    job->target = GS_TO_ADMIN;
    job->recv_us = 1234;
    job->arena = gs_arena_new(0);
    uint8_t body[3] = { 1, 2, 3 };
    gs_reply_t *r = gs_reply_new(job, body, sizeof body);
    assert_non_null(r);
    body[0] = 9; /* the reply holds a copy */
    assert_int_equal(zmq_msg_size(&r->identity), 5);
    assert_memory_equal(zmq_msg_data(&r->identity), "peer1", 5);
    assert_int_equal(zmq_msg_size(&job->identity), 0); /* moved out of the job */
    assert_int_equal(zmq_msg_size(&r->body), 3);
    assert_int_equal(((uint8_t *) zmq_msg_data(&r->body))[0], 1);
    assert_int_equal(r->req_style, 1);
    assert_int_equal(r->target, GS_TO_ADMIN);
    assert_int_equal(r->recv_us, 1234);
    gs_job_destroy(&job);
    assert_null(job);
    gs_job_destroy(&job);   /* safe on NULL */
    gs_reply_destroy(&r);
    assert_null(r);
    gs_reply_destroy(NULL);
}

/* A commit's events go to the publisher as one pointer that owns them, and
 * the caller's struct is left empty; a commit without events sends
 * nothing. (The memory checks of valgrind and ASan see both owners free
 * exactly once.) */
static void
test_events_hand(void **state)
{
    (void) state;
    void *ctx = zmq_ctx_new();
    void *a = zmq_socket(ctx, ZMQ_PAIR), *b = zmq_socket(ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(a, "inproc://test-events"), 0);
    assert_int_equal(zmq_connect(b, "inproc://test-events"), 0);
    gs_apply_out_t out;
    memset(&out, 0, sizeof out);
    /* the events hang in the block that gs_apply_out_clear frees */
    out.uploads = calloc(1, sizeof(gs_event_out_t));
    assert_non_null(out.uploads);
    out.events = (gs_event_out_t *) out.uploads;
    out.n_events = 1;
    out.events[0].seq = 42;
    out.head_seq = 42;
    gs_events_hand(b, &out);
    assert_null(out.uploads);
    assert_int_equal(out.n_events, 0);
    void *p = NULL;
    assert_int_equal(gs_ptr_recv(a, &p, 0), 0);
    gs_apply_out_t *got = p;
    assert_non_null(got);
    assert_int_equal(got->n_events, 1);
    assert_int_equal(got->events[0].seq, 42);
    gs_apply_out_clear(got);
    free(got);
    /* nothing to publish: nothing sent, the struct cleared */
    memset(&out, 0, sizeof out);
    out.uploads = calloc(1, 16);
    gs_events_hand(b, &out);
    assert_null(out.uploads);
    assert_int_equal(gs_ptr_recv(a, &p, ZMQ_DONTWAIT), -1);
    assert_int_equal(errno, EAGAIN);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pointers),
        cmocka_unit_test(test_job_to_reply),
        cmocka_unit_test(test_events_hand),
    };
    return cmocka_run_group_tests_name("handoff", tests, NULL, NULL);
}

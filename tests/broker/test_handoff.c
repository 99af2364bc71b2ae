/*
 * test_handoff: the broker's thread hand-offs over a real inproc PAIR: a
 * pointer and the NULL control message arrive as sent, an empty queue is
 * EAGAIN, a reply takes its job's routing id and a copy of the bytes, and
 * destroying is safe on NULL.
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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pointers),
        cmocka_unit_test(test_job_to_reply),
    };
    return cmocka_run_group_tests_name("handoff", tests, NULL, NULL);
}

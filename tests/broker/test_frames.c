/*
 * test_frames: gs_frames_recv over a real inproc PAIR: a message of fewer,
 * as many and more frames than kept, each consumed whole, so that the next
 * receive starts at the next message; nothing to receive.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gs_frames.h"

/* Send a message of n frames "m<tag>-<i>". */
static void
s_send(void *s, int tag, int n)
{
    for (int i = 0; i < n; i++) {
        char f[16];
        int len = snprintf(f, sizeof f, "m%d-%d", tag, i);
        assert_int_equal(zmq_send(s, f, (size_t) len, i + 1 < n ? ZMQ_SNDMORE : 0), len);
    }
}

/* The kept frames of message tag, n frames long, max kept. */
static void
s_expect(void *s, int tag, int n, int max)
{
    zmq_msg_t f[4];
    assert_true(max <= 4);
    assert_int_equal(gs_frames_recv(s, f, max, 0), n);
    int kept = n < max ? n : max;
    for (int i = 0; i < kept; i++) {
        char want[16];
        int len = snprintf(want, sizeof want, "m%d-%d", tag, i);
        assert_int_equal(zmq_msg_size(&f[i]), (size_t) len);
        assert_memory_equal(zmq_msg_data(&f[i]), want, (size_t) len);
        zmq_msg_close(&f[i]);
    }
}

static void
test_frames_whole_messages(void **state)
{
    (void) state;
    void *ctx = zmq_ctx_new();
    void *a = zmq_socket(ctx, ZMQ_PAIR), *b = zmq_socket(ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(a, "inproc://test-frames"), 0);
    assert_int_equal(zmq_connect(b, "inproc://test-frames"), 0);
    s_send(b, 1, 1);
    s_send(b, 2, 3);
    s_send(b, 3, 7); /* more than kept: the rest is dropped */
    s_send(b, 4, 2);
    s_expect(a, 1, 1, 3);
    s_expect(a, 2, 3, 3);
    s_expect(a, 3, 7, 3);
    s_expect(a, 4, 2, 3); /* starts at the next message */
    /* nothing there: 0, errno EAGAIN */
    zmq_msg_t f[1];
    assert_int_equal(gs_frames_recv(a, f, 1, ZMQ_DONTWAIT), 0);
    assert_int_equal(errno, EAGAIN);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frames_whole_messages),
    };
    return cmocka_run_group_tests_name("frames", tests, NULL, NULL);
}

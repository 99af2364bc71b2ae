/*
 * gs_frames: reading one whole multipart message. See gs_frames.h.
 */
#include "gs_frames.h"

#include <assert.h>

int
gs_frames_recv(void *sock, zmq_msg_t *frames, int max, int flags)
{
    assert(sock && frames && max > 0);
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, sock, n == 0 ? flags : 0) < 0) {
            zmq_msg_close(&f);
            break;
        }
        more = zmq_msg_more(&f);
        if (n < max) {
            zmq_msg_init(&frames[n]);
            zmq_msg_move(&frames[n], &f);
        }
        n++;
        zmq_msg_close(&f);
    }
    return n;
}

/*
 * gs_frames: reading one whole multipart ZeroMQ message into frames.
 *
 * The frontend (requests: routing id, optional empty delimiter, body) and
 * the ZAP handler (version, request id, domain, address, routing id,
 * mechanism, credentials) both take a message whose frame count a peer
 * chooses. They keep the first few frames and must still consume the rest,
 * or the next receive would start inside this message.
 *
 * Thread safety: none of its own; the caller owns the socket.
 */
#ifndef GS_FRAMES_H
#define GS_FRAMES_H

#include <zmq.h>

/* Receive every frame of the next message on sock (flags as for
 * zmq_msg_recv, e.g. ZMQ_DONTWAIT; applied to the first frame, the others
 * are there already). The first min(n, max) frames are kept in frames[],
 * initialised: the caller closes each. Frames past max are dropped.
 * Returns n, the number of frames the message had (0 when none could be
 * received: errno says why). max > 0, frames non-NULL (asserted). */
int gs_frames_recv(void *sock, zmq_msg_t *frames, int max, int flags);

#endif

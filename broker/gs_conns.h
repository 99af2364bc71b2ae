/*
 * gs_conns: a bound on the client connections the broker holds open.
 *
 * Every TCP connection to the request or feed endpoint costs the broker a
 * file descriptor from the moment it is accepted, before any handshake. A
 * thousand idle connections that never send a greeting used to exhaust the
 * default 1,024 descriptors, after which nobody was served. ZeroMQ has no
 * per-socket connection limit, so this module counts connections itself:
 * each watched socket reports to it through a socket monitor
 * (zmq_socket_monitor, ZMQ_EVENT_ACCEPTED / ZMQ_EVENT_DISCONNECTED /
 * ZMQ_EVENT_MONITOR_STOPPED), on a thread of its own ("gs-conns") that never
 * touches the sockets it watches, so it never delays the frontend.
 *
 * Above the bound, each newly accepted connection is shed: shutdown(2) on
 * the descriptor the ACCEPTED event names, so that libzmq sees the peer go
 * and closes the descriptor itself (the broker never closes a descriptor
 * libzmq owns). Idle peers that are let in are dropped by the handshake
 * timeout (ZMQ_HANDSHAKE_IVL, set by the broker) and free their place.
 * The bound is hit: one log line (event=connections_bound) at most every
 * ten seconds, and gridsync_connections_refused_total counts every shed
 * connection; gridsync_connections_open is the number held open now
 * (connections being shed included, until libzmq has closed them).
 *
 * Failed handshakes. On a socket that is a CURVE server the monitor also
 * reports ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: a greeting with another
 * mechanism (ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH, a client without
 * CURVE keys) is logged as event=plaintext_client and counted in
 * handshakes_plaintext; any other protocol error (a wrong server key makes
 * ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC) as event=handshake_failed, counted
 * in handshakes_failed. Each at most one line per ten seconds, with the
 * count since the last. libzmq names no peer in these events (the endpoint
 * is the broker's own). Keys refused by ZAP are gs_auth's to log.
 *
 * Descriptor reuse. The event reaches this thread a moment after libzmq
 * emitted it, and in that moment the connection may already have gone and
 * its descriptor been given to something else. Two guards keep a shed from
 * hitting the wrong descriptor: all events already queued are read before
 * anything is shed, and a connection whose DISCONNECTED is among them is
 * not shed; and a descriptor is shut down only if it is still a TCP socket
 * whose local port is the port of the endpoint that accepted it. What is
 * left (the descriptor reused by another new connection to the same
 * endpoint within that moment) sheds a connection that arrived while the
 * broker was over its bound anyway. This relies on the broker's ZeroMQ
 * context having one I/O thread (CZMQ's default), which emits a
 * connection's ACCEPTED before it can emit its DISCONNECTED.
 *
 * Thread safety: gs_conns_watch may be called from any thread (the thread
 * that owns the watched socket); new and destroy from one thread.
 */
#ifndef GS_CONNS_H
#define GS_CONNS_H

#include <stdint.h>
#include "gs_metrics.h"

typedef struct gs_conns gs_conns_t;

/* Start counting for sockets of ctx, with at most max (>= 1) connections
 * over every watched socket together; counts go to m (connections_open,
 * connections_refused). NULL with errno on failure. */
gs_conns_t *gs_conns_new(void *ctx, gs_metrics_t *m, int64_t max);

/* Count the connections of sock (a ROUTER or XPUB that is about to bind;
 * call it before zmq_bind, from the thread that owns sock). what names the
 * endpoint in logs ("upload", "feed"). A watched socket that is closed
 * takes its connections out of the count. Returns 0 or -1 with errno. */
int gs_conns_watch(gs_conns_t *self, void *sock, const char *what);

/* Stop the thread and free everything. Call after every watched socket has
 * been closed and before the context is terminated. libzmq destroys a
 * closed socket in its reaper thread once the linger is over, and then
 * waits until its monitor's last message (ZMQ_EVENT_MONITOR_STOPPED) is
 * taken; so this waits for that message from each watched socket (at most
 * 15 s, then it logs connections_watch_stuck) before closing the receiving
 * ends. NULL-safe. */
void gs_conns_destroy(gs_conns_t **self_p);

#endif

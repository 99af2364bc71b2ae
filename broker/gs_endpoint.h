/*
 * gs_endpoint: is a ZeroMQ bind endpoint reachable from this machine only?
 *
 * Where it sits: gs_broker_new asks it before it binds the request and feed
 * endpoints without CURVE (--insecure-dev), and again for the address
 * libzmq reports as bound (ZMQ_LAST_ENDPOINT). It parses the whole
 * endpoint, as libzmq will read it, and allows only what it understands:
 *
 *   ipc://PATH, inproc://NAME             (local by nature)
 *   tcp://A.B.C.D:PORT                    (A = 127: dotted decimal, 4 parts)
 *   tcp://localhost:PORT
 *   tcp://[::1]:PORT                      (any spelling inet_pton reads as ::1)
 *
 * PORT is 0 to 65535 in decimal or "*" (an ephemeral port). Everything else
 * is refused: a "SRC;DST" pair (libzmq binds the part after the ';', so
 * tcp://127.0.0.1:1;0.0.0.0:13545 binds every interface), the wildcard
 * host "*", interface names (lo, eth0), other host names, other addresses,
 * IPv4-mapped or scoped IPv6, other transports, and anything unparsable.
 *
 * Thread safety: pure; no allocation.
 */
#ifndef GS_ENDPOINT_H
#define GS_ENDPOINT_H

#include <stddef.h>

/* 1 when ep (NULL refused) binds on this machine only, as above; else 0
 * with why (may be NULL) set to a reason for a person, e.g. "a ';'
 * (source;destination) is not allowed". */
int gs_endpoint_is_loopback(const char *ep, char *why, size_t why_size);

#endif

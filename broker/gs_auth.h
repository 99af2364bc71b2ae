/*
 * gs_auth: CURVE identities for gridsyncd.
 *
 * - The broker's own keypair, kept as a CZMQ zcert file pair
 *   (STORE/broker.cert public, STORE/broker.cert_secret, mode 0600),
 *   created at first start.
 * - A ZAP handler (RFC 27) answering libzmq's handshake questions from the
 *   device registry in the store: a client key that is not enrolled, or
 *   whose device is revoked, is refused at the handshake; an accepted one is
 *   tagged with the connection property "device_id", which every message
 *   from that connection carries (zmq_msg_gets), so the broker knows who
 *   sent what and re-checks the registry on each request.
 *
 * Why not zauth: CZMQ's zauth checks keys against a zcertstore, and the
 * hook that lets a zcertstore load from somewhere other than a directory of
 * certificate files (zcertstore_set_loader) is a draft API that Debian's
 * libczmq does not export. Mirroring the registry into a directory would
 * make a second source of truth and delay revocation. The ZAP exchange is a
 * few frames; the registry lookup is the part that matters.
 *
 * Memory: libzmq keeps each connection's pipe to the ZAP socket (two
 * queues of 256 message slots, 33 KB) for the life of the connection,
 * although only the handshake uses it. So the handler hands the ZAP
 * endpoint over to a fresh socket once it has been quiet for a second
 * after answering (or after 1,024 answers), answers what was already sent
 * to the old one for a second more, and closes it: that ends the pipes of
 * the connections it answered, which stay open, and malloc_trim gives the
 * pages back. A handshake that comes in the microseconds between the old
 * socket's unbind and the new one's bind finds no handler and is refused
 * (ZMQ_ZAP_ENFORCE_DOMAIN), never let through; its client connects again.
 * A request that reaches the old socket only after its close (a libzmq
 * thread stalled for over a second) goes unanswered: that handshake ends at
 * handshake-timeout-ms and its client connects again.
 *
 * Thread: the handler runs on its own thread; libzmq's I/O threads wait on
 * it during handshakes, so it only does one read transaction per request.
 */
#ifndef GS_AUTH_H
#define GS_AUTH_H

#include <stdint.h>
#include "gs_metrics.h"
#include "gs_store.h"

typedef struct gs_auth gs_auth_t;

/* Load the broker keypair from path (zcert format), creating it if missing.
 * public_z85 gets 41 bytes (40 + NUL), secret is 32 bytes. Returns 0 or -1
 * with errno. */
int gs_auth_server_keys(const char *path, char public_z85[41], uint8_t secret[32]);

/* Start the ZAP handler on ctx (binds inproc://zeromq.zap.01). NULL on
 * failure. metrics->zap_handovers counts its handovers (see the header).
 * Call from the thread that starts the broker. */
gs_auth_t *gs_auth_new(void *ctx, gs_store_t *store, gs_metrics_t *metrics);

/* Handshakes allowed / refused so far. */
uint64_t gs_auth_allowed(const gs_auth_t *self);
uint64_t gs_auth_refused(const gs_auth_t *self);

void gs_auth_destroy(gs_auth_t **self_p);

/* Make sock a CURVE server with the broker's secret (32 bytes), its
 * handshakes asked of the ZAP handler (domain "gridsync") and refused when
 * no handler answers (ZMQ_ZAP_ENFORCE_DOMAIN). Before bind. Returns 0, or -1
 * (logged) when libzmq refuses an option: the socket must not be bound. */
int gs_auth_curve_server(void *sock, const uint8_t secret[32]);

#endif

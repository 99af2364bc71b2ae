/*
 * gs_client_int: what the request client (gs_client.c) and the subscriber
 * (gs_sub.c) share inside the client library: the socket-monitor watch
 * that tells a refused handshake from a slow broker, CURVE keys on a
 * socket, the monotonic clock, cancellable waits and error messages; the
 * admin client (gs_admin.c) uses the last three.
 *
 * Private to tools/client: not installed, not for callers of gs_client.h.
 * Same threading as the objects using it: one thread at a time per socket.
 */
#ifndef GS_CLIENT_INT_H
#define GS_CLIENT_INT_H

#include <stdatomic.h>
#include <stdint.h>

#include "gs_client.h"

#define GS_CLIENT_SLICE_MS 100  /* longest wait between looks at the cancel flag */

/* What the socket monitor told about one socket's connections. ZeroMQ
 * reports a refused handshake only there: the connection just goes quiet,
 * and after a refusal (ZAP status, mechanism mismatch) it is not retried. */
typedef struct gs_watch {
    void *pair;                 /* PAIR reading the monitor's events */
    int connected;              /* a TCP connection was made */
    int handshaked;             /* a handshake completed */
    int refused;                /* a handshake failed for good (auth, protocol) */
    int failed;                 /* the last handshake failure event, or 0 */
    uint32_t value;             /* its value: ZAP status or protocol error */
} gs_watch_t;

/* Watch sock's connections (sock not connected yet, so no event is lost);
 * seq makes the inproc endpoint unique in ctx. Returns 0 or GS_CLIENT_EIO. */
int gs_watch_start(gs_watch_t *w, void *ctx, void *sock, unsigned seq);

/* Stop watching sock (before closing it). Safe when not started. */
void gs_watch_stop(gs_watch_t *w, void *sock);

/* Read every event the monitor has queued into w; never blocks. */
void gs_watch_drain(gs_watch_t *w);

/* Write the caller's message for a refused handshake (w->refused) into
 * err; curve: this side has keys; endpoint names the endpoint for people. */
void gs_watch_refusal(const gs_watch_t *w, int curve, const char *endpoint,
                      gs_client_error_t *err);

/* Write the caller's message for a timeout into err, from how far the
 * connections got. */
void gs_watch_timeout(const gs_watch_t *w, int curve, const char *endpoint, int attempts,
                      int timeout_ms, gs_client_error_t *err);

/* Apply CURVE client keys to a socket, if any are set. Returns 0 or
 * GS_CLIENT_EINVAL. */
int gs_curve_apply(void *sock, const gs_curve_keys_t *k);

/* Milliseconds on the monotonic clock. */
int64_t gs_client_mono_ms(void);

/* Is the caller's cancel flag set? (NULL: never.) */
int gs_client_cancelled(const atomic_int *cancel);

/* How long one poll may wait: the time left (0 when negative), in slices of
 * GS_CLIENT_SLICE_MS when there is a cancel flag to look at. */
long gs_client_wait_ms(int64_t left, const atomic_int *cancel);

/* Set err's reason and message (printf format); err may be NULL. */
void gs_client_err_set(gs_client_error_t *err, int reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif

/*
 * gs_feed: the live feed. The broker's publisher thread and what it owns:
 * the XPUB feed socket and the tables of who follows which prefix.
 *
 * It publishes each committed event (handed over by the writer on
 * GS_EP_EVENTS) with topic = grid code, without Person.restricted unless
 * feed-restricted is set, and each incident's event once more under its
 * incident topic, "I" category "/" grid code (gs_topic.h), with
 * FeedMessage.incident_prev_seq, the chain a department checks. In secure
 * mode (XPUB_MANUAL) it authorises each subscription, a grid topic or an
 * incident topic, against the subscriber's registry entry (gs_authz_topic),
 * bounds the prefixes of one key (feed-max-prefixes), and counts
 * subscriptions applied and refused per prefix and per key. Every
 * heartbeat-ms it sends one heartbeat per subscribed prefix and checks
 * every key admitted to the feed socket against the registry again; when
 * one may no longer follow what it was admitted under, it closes the
 * socket and binds a new one on the same endpoint (s_xpub_rebind), which
 * cuts that key off (docs/security.md).
 *
 * Thread safety: gs_feed_new, gs_feed_bind, gs_feed_close and
 * gs_feed_destroy on the thread that builds and destroys the broker, never
 * while gs_feed_main runs; gs_feed_main is the body of the gs-publisher
 * thread, and the object is that thread's while it runs.
 */
#ifndef GS_FEED_H
#define GS_FEED_H

#include <stddef.h>

#include "gs_broker_int.h"

/* The feed of broker b, with its tables allocated at their starting size
 * (they grow with the subscriptions; a subscription they cannot take then
 * is refused, logged). No socket yet. NULL when memory runs out (the
 * caller logs it). */
gs_feed_t *gs_feed_new(gs_broker_t *b);

/* Open the feed socket (CURVE and XPUB_MANUAL in secure mode) and bind it
 * to endpoint; bound gets the endpoint libzmq resolved, which is also
 * where a rebind binds again. Returns 0, or -1 with errno (the caller
 * logs it). */
int gs_feed_bind(gs_feed_t *self, const char *endpoint, char *bound, size_t bound_size);

/* Close the feed socket, if open (before the connection counter that
 * watches it is destroyed). */
void gs_feed_close(gs_feed_t *self);

/* Close the socket and free the tables; NULLs *self_p; safe on NULL. */
void gs_feed_destroy(gs_feed_t **self_p);

/* The publisher thread's body (arg: the gs_feed_t). Returns NULL when the
 * writer's NULL arrives on GS_EP_EVENTS (the broker stops it after every
 * other worker is done, so every committed event is published first). */
void *gs_feed_main(void *arg);

#endif

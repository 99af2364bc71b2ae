/*
 * gs_broker: the gridsyncd daemon as an object.
 *
 * Threads and sockets (all ZeroMQ, one context), one module each
 * (gs_broker_int.h has the map and says which thread owns what):
 *   frontend (the thread calling gs_broker_run; gs_frontend.c)
 *       ROUTER upload-endpoint   <- devices and district systems
 *       ROUTER admin endpoint    <- admin tools (ipc, owner-only)
 *       prescan, decode, envelope checks, authorisation (gs_authz.c) and
 *       the preparation of upload records, then:
 *         uploads              -> writer   (inproc PAIR, a pointer per job)
 *         sync/snapshot/admin  -> readers  (inproc PUSH/PULL)
 *         pings                   answered at once
 *       PULL replies     <- writer and readers: [identity][reply], sent on
 *       the socket the request came from; the signal pipe
 *   writer (gs_writer.c): group commit. Takes pending uploads, one
 *       gs_store_apply (one durable transaction), then sends every ack and
 *       hands the events to the publisher. No ack leaves before its commit
 *       returned.
 *   publisher (gs_feed.c): owns the XPUB feed socket: authorises each
 *       subscription, publishes events with topic = grid code, counts the
 *       live subscriptions of each prefix, sends heartbeats, and reopens
 *       the socket when a key admitted to it loses its rights.
 *   readers (gs_reader.c): serve sync, snapshot and admin requests from
 *       read-only transactions, which never block the writer.
 *   metrics (gs_broker.c): the /metrics HTTP listener (gs_metrics.c).
 *   ZAP handler (gs_auth.c) and connection counter (gs_conns.c).
 * The request handlers (gs_serve.c) are functions of (store, request) ->
 * reply bytes that these threads call.
 *
 * The broker holds no storage logic: everything it stores or reads goes
 * through gs_store.
 */
#ifndef GS_BROKER_H
#define GS_BROKER_H

#include "gs_config.h"

typedef struct gs_broker gs_broker_t;

/* Open the store, bind every endpoint and allocate the writer's and the
 * publisher's tables. NULL on failure, with the reason logged (port in use,
 * store unreadable, event=out_of_memory, ...). */
gs_broker_t *gs_broker_new(const gs_config_t *cfg);

/* Start every thread, log event=ready (the bound endpoints and the server
 * key; not before: a supervisor that stops the broker once it is ready gets
 * a drain), serve until gs_broker_stop (or SIGTERM/SIGINT once
 * gs_broker_handle_signals was called, which gridsyncd does before this
 * call), then drain: stop taking requests, commit what is pending, send
 * those acks, close. Returns 0 on a clean stop;
 * -1 when a thread could not start (event=start_failed), after stopping and
 * joining the ones that had, so that none is left running. */
int gs_broker_run(gs_broker_t *self);

/* Ask a running broker to drain and stop. Async-signal-safe. */
void gs_broker_stop(gs_broker_t *self);

/* Route SIGTERM and SIGINT to gs_broker_stop(self). */
void gs_broker_handle_signals(gs_broker_t *self);

void gs_broker_destroy(gs_broker_t **self_p);

#endif

/*
 * gs_broker: the gridsyncd daemon as an object.
 *
 * Threads and sockets (all ZeroMQ, one context):
 *   frontend (the thread calling gs_broker_run)
 *       ROUTER upload-endpoint   <- devices and district systems
 *       decode + envelope checks, then hands each request on:
 *         uploads        -> writer   (inproc PAIR, a pointer per job)
 *         sync/snapshot  -> readers  (inproc PUSH/PULL)
 *       PULL replies     <- writer and readers: [identity][reply], sent on
 *       admin endpoint (ipc), metrics HTTP listener, signal pipe
 *   writer: group commit. Drains pending uploads, one gs_store_apply (one
 *       durable transaction), then sends every ack and hands the events to
 *       the publisher. No ack leaves before its commit returned.
 *   publisher: owns the XPUB feed socket: publishes events with topic =
 *       grid code, counts the live subscriptions of each prefix, sends
 *       heartbeats, and reopens the socket when a key admitted to it is
 *       revoked.
 *   readers: serve sync and snapshot requests from read-only transactions,
 *       which never block the writer.
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

/* Serve until gs_broker_stop (or SIGTERM/SIGINT once
 * gs_broker_handle_signals was called), then drain: stop taking requests,
 * commit what is pending, send those acks, close. Returns 0 on a clean stop;
 * -1 when a thread could not start (event=start_failed), after stopping and
 * joining the ones that had, so that none is left running. */
int gs_broker_run(gs_broker_t *self);

/* Ask a running broker to drain and stop. Async-signal-safe. */
void gs_broker_stop(gs_broker_t *self);

/* Route SIGTERM and SIGINT to gs_broker_stop(self). */
void gs_broker_handle_signals(gs_broker_t *self);

void gs_broker_destroy(gs_broker_t **self_p);

#endif

/*
 * fed_lib: what the federation tests share on top of nats.c (gstestkit
 * starts the nats-server; it does not link nats.c).
 */
#ifndef FED_LIB_H
#define FED_LIB_H

#include <nats/nats.h>

/* Create JetStream stream name on subject (file storage, replicas copies);
 * fails the running test with nats.c's status and JetStream's error code
 * when the server refuses it. */
void fed_add_stream(jsCtx *js, const char *name, const char *subject, int replicas);

#endif

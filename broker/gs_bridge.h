/*
 * gs_bridge: the district's committed change log into NATS JetStream
 * (docs/federation.md). A thread of gridsyncd, gs-bridge, reads the store's
 * change log through its own read transactions (gs_store_events, after the
 * last seq the stream holds, in bounded pages) and publishes each event,
 * as the log holds it, into the district's stream GRIDSYNC_<area> on the
 * subject gridsync.PP.CC.DD.SSS.CCC.GGG.<kind>, with the headers
 * Nats-Msg-Id, Gridsync-Origin, Gridsync-Epoch and Gridsync-Seq.
 *
 * Where it sits: after the writer's commit. The writer tells it the new
 * head without ever waiting (gs_bridge_notify drops the note when the
 * bridge's queue is full: the bridge reads the store anyway, and wakes on
 * a timer too), so NATS being slow or down never delays an upload or an
 * ack; the bridge catches up afterwards.
 *
 * It publishes with the core client (the JetStream headers set on the
 * message, the reply subject "<inbox>.<event seq>") and keeps its own
 * window of acks, which nats.c's thread hands to it on that inbox.
 *
 * Exactly once: every publish expects the stream's last sequence to be the
 * one the previous event got (JetStream's Nats-Expected-Last-Sequence), so
 * the stream itself refuses a gap or a second copy. On (re)connect and
 * after any error the bridge drops what it had in flight, reads the
 * stream's last message and resumes after the seq in its Gridsync-Seq.
 * A stream whose last message belongs to another lineage (another
 * Gridsync-Epoch, or a seq above the store's head) stops the bridge for
 * good, logged and counted, unless jetstream-rebaseline is set: then the
 * stream is purged and the log republished from seq 1.
 *
 * Thread safety: gs_bridge_check, gs_bridge_subject, gs_bridge_msg_id and
 * the stream-name helpers are pure (any thread). gs_bridge_new and
 * gs_bridge_destroy run on the thread that builds and destroys the broker,
 * never while gs_bridge_main runs; gs_bridge_main is the body of the
 * gs-bridge thread; gs_bridge_notify is the writer's (and, once the writer
 * has stopped, the lifecycle's, through gs_bridge_halt).
 */
#ifndef GS_BRIDGE_H
#define GS_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#include "gs_broker_int.h"

/* The inproc endpoint the writer notes new heads on (PUSH -> PULL). */
#define GS_EP_BRIDGE "inproc://gs-bridge"

typedef struct gs_bridge gs_bridge_t;

/* Check the jetstream-* settings of c, fail closed: with jetstream-url
 * empty every other jetstream-* setting must be unset; with it set, each
 * URL is nats:// or tls:// without credentials (user@), jetstream-area is a prefix of 2, 4, 6, 9 or
 * 12 digits, at most one of jetstream-user, jetstream-nkey-seed-file and
 * jetstream-creds-file is set, jetstream-user comes with
 * jetstream-password-file (and only with it), jetstream-tls-cert with
 * jetstream-tls-key, and every file named can be read. Returns 0, or -1
 * with a message for a person in err. */
int gs_bridge_check(const gs_config_t *c, char *err, size_t err_size);

/* The stream of area: "GRIDSYNC_<area>". */
void gs_bridge_stream_name(const char *area, char *out, size_t size);

/* The stream's subject filter: "gridsync." + area split 2.2.2.3.3 + ".>",
 * e.g. "gridsync.44.03.05.>". area must be a prefix at a level (1..5). */
void gs_bridge_stream_subject(const char *area, char *out, size_t size);

/* The subject of an event in grid (15 digits) of RecordKind kind:
 * "gridsync.44.03.05.001.002.003.household" (the kind's enum name after
 * RECORD_KIND_, lower case). Returns 0, or -1 when grid is not 15 digits
 * or kind is not a RecordKind the schema names (out is then ""). */
int gs_bridge_subject(const char *grid, int kind, char *out, size_t size);

/* Nats-Msg-Id of an event: "<area>:<epoch, 16 lower-case hex>:<seq>". */
void gs_bridge_msg_id(const char *area, uint64_t epoch, uint64_t seq, char *out,
                      size_t size);


/* The bridge of broker b, whose cfg passed gs_bridge_check: reads the
 * password file and the store's epoch. NULL with a log line when it
 * cannot. b->metrics.bridge_enabled is set. */
gs_bridge_t *gs_bridge_new(gs_broker_t *b);

/* Free the bridge and tear nats.c down (it waits, bounded, for nats.c's
 * own threads to end); NULLs *self_p; safe on NULL. After the gs-bridge
 * thread has been joined. */
void gs_bridge_destroy(gs_bridge_t **self_p);

/* The writer's note that the store's head is now head, committed now (the
 * note carries gs_mono_us, from which the bridge times commit -> stream
 * ack, gridsync_bridge_ack_seconds): never blocks, and is dropped when the
 * bridge's queue of notes is full (it reads the store anyway). to_bridge
 * is the PUSH socket bound on GS_EP_BRIDGE; NULL (no bridge) does
 * nothing. */
void gs_bridge_notify(void *to_bridge, uint64_t head);

/* Ask the gs-bridge thread to stop: it gives what it has in flight a
 * bounded time to be acknowledged, closes its connection and returns.
 * Called by the lifecycle once the writer has stopped (to_bridge is then
 * the lifecycle's). */
void gs_bridge_halt(gs_bridge_t *self, void *to_bridge);

/* The gs-bridge thread's body (arg: the gs_bridge_t). */
void *gs_bridge_main(void *arg);

#endif

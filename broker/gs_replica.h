/*
 * gs_replica: the city replica's thread (docs/federation.md). When
 * replica-of is set, this thread takes the writer's place: it is the one
 * writer of the store. Per origin area it keeps a durable JetStream pull
 * consumer on the origin's stream GRIDSYNC_<area> (filtered to the followed
 * prefix), fetches a batch, asks for the next one (delivered while this
 * one commits), applies it with gs_store_replicate_ahead (one durable
 * transaction; its own thread gs-repl-check reads the messages' headers
 * and makes their table-free checks meanwhile, gs_store_replicate inline
 * when that thread could not start), then acks what was applied or skipped, then hands the
 * replica's own events to the publisher, so the live feed, sync and
 * snapshot serve the city as they serve a district. A stream that does not
 * exist yet is waited for (logged once); a NATS outage is ridden out by
 * reconnecting; a refused message stops that origin only (logged, counted,
 * recorded in the store's origins table) until an operator re-baselines it
 * with --replica-rebaseline=AREA.
 *
 * Uploads never reach it: the frontend answers them with REASON_READ_ONLY.
 * It honours the writer's drain protocol: a NULL on GS_EP_WRITER stops it
 * between batches, and it answers "done" (NULL) on GS_EP_REPLIES.
 *
 * Thread safety: gs_replica_plan is pure (any thread). gs_replica_new and
 * gs_replica_destroy run on the thread that builds and destroys the broker;
 * gs_replica_main is the body of the gs-replica thread. The counters and
 * states the metrics page reads are atomics (gs_replica_metrics, any
 * thread).
 */
#ifndef GS_REPLICA_H
#define GS_REPLICA_H

#include <stddef.h>

#include "gs_broker_int.h"
#include "gs_config.h"

#define GS_REPLICA_MAX 64           /* origins one replica follows */
#define GS_REPAIR_MAX 32            /* cells one --replica-repair names */

typedef struct gs_replica gs_replica_t;

/* One origin as the configuration asks for it. */
typedef struct gs_replica_origin {
    char area[GS_GRID_LEN + 1];     /* origin name, its area prefix */
    char followed[GS_GRID_LEN + 1]; /* the prefix followed in it */
    char stream[32];                /* GRIDSYNC_<area> */
    char durable[64];               /* <replica-name>_<area> */
    char subject[64];               /* filter: gridsync.<followed tokens>.> */
    size_t n_repair;                /* cells of it to repair (replica-repair) */
    char repair[GS_REPAIR_MAX][GS_GRID_LEN + 1]; /* and those cells */
} gs_replica_origin_t;

/* Check the replica settings of cfg (replica-of set) and derive the
 * origins: each origin a 2, 4, 6, 9 or 12-digit area, none twice and none
 * inside another; replica-area empty or a level prefix that covers or lies
 * under every origin; jetstream-url set; replica-name a consumer name
 * (letters, digits, '-' and '_'); replica-rebaseline empty or one of the
 * origins; replica-repair empty or up to GS_REPAIR_MAX comma-separated
 * 15-digit cells, each under one origin's followed prefix and named once
 * (into that origin's repair list); the NATS link's settings as gs_natslink_check wants them. Returns the number of origins (> 0) with out[0..n) filled, or
 * -1 with a message a person can act on in err. */
int gs_replica_plan(const gs_config_t *cfg, gs_replica_origin_t *out, size_t max,
                    char *err, size_t err_size);

/* The replica of broker b, for the origins planned from b's config. Reads
 * each origin's entry from the store (a stopped origin stays stopped).
 * When cfg.replica_rebaseline is set, re-baselines that origin in the store
 * first (logged): its entry is reset, so its stream is read from the start.
 * NULL on a config error or failure (logged). */
gs_replica_t *gs_replica_new(gs_broker_t *b);

void gs_replica_destroy(gs_replica_t **self_p);

/* The thread's body (arg: the gs_replica_t). Returns after the drain
 * marker (or ETERM), having closed its NATS connection. */
void *gs_replica_main(void *arg);

/* Append the replica's metrics in Prometheus text (gs_metrics_t's
 * replica_section hook; arg is the gs_replica_t). Any thread. */
void gs_replica_metrics(void *arg, gs_wbuf_t *out, int64_t now_ms);

/* "origin=state,..." for the ready line and logs. */
void gs_replica_describe(const gs_replica_t *self, char *out, size_t size);

#endif

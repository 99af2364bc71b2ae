/*
 * gs_sub: the exactly-once district subscriber of the client library.
 *
 * Where it sits: tools/client, beside the request client (gs_client.h),
 * which it uses for the sync service. gridfeed and the tests follow the
 * live feed through it. gs_client.h includes this header, so callers need
 * only gs_client.h; the error codes, gs_client_error_t and gs_curve_keys_t
 * are declared there, and the checkpoint file's format in gs_checkpoint.h.
 *
 * Errors: functions return 0 or a negative GS_CLIENT_E* code (gs_client.h).
 *
 * Threads: a subscriber belongs to one thread at a time; its cancel flag
 * may be set from any thread or a signal handler.
 */
#ifndef GS_SUB_H
#define GS_SUB_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "gridsync.pb-c.h"
#include "gs_client.h"

typedef struct gs_sub gs_sub_t;

typedef struct gs_sub_opts {
    int rcvhwm;                 /* live-feed receive HWM (default 100000) */
    int timeout_ms;             /* sync request timeout (default 3000) */
    uint32_t sync_limit;        /* events per sync request (default 0 = broker's) */
    int omit_restricted;        /* ask for events without Person.restricted */
    gs_curve_keys_t curve;      /* CURVE keys for feed and sync (empty = plaintext) */
    uint64_t epoch;             /* store epoch that since belongs to (0 = take the */
                                /* broker's); a checkpoint's epoch comes first     */
    const atomic_int *cancel;   /* as gs_client_opts_t.cancel, for feed and sync */
    gs_client_error_t *err;     /* when not NULL, gs_sub_new and gs_sub_next write
                                 * the message of a failure here */
    const char *const *categories; /* incident categories to follow (NULL: none); see
                                 * gs_sub_new */
    size_t n_categories;        /* entries in categories; 0 = follow grid topics */
} gs_sub_opts_t;

void gs_sub_opts_init(gs_sub_opts_t *o);

/* Follow prefixes (each at a level boundary: 0,2,4,6,9,12 or 15 digits; no
 * prefix may contain another). With opts->n_categories > 0 (each category
 * 1 to 8 letters or digits, none twice; categories x prefixes at most
 * 64), follow instead the incident topic of each category in each prefix
 * ("I02/440305", gs_topic.h): only the incidents of those categories are
 * delivered, each topic is a position of its own (topic i is prefix
 * i % n, category i / n), and its chain is the feed message's
 * incident_prev_seq (docs/protocol.md); this is how a DEPARTMENT key
 * follows, which the broker refuses on grid topics. checkpoint (may be
 * NULL) is a file holding the last seq per topic and the store epoch they
 * belong to; when it
 * exists, following resumes there, else from since (0 = from the
 * beginning). Subscribes first, then catches up through the sync service
 * (the Clone pattern): this call queues the first events (about 1,000, or
 * all up to the head if fewer), and gs_sub_next pulls the rest a page at a
 * time as they are taken, the next page asked for before this one is
 * taken, so a subscriber far behind holds about a page in memory; a sync
 * error on a later page is then gs_sub_next's to return (the next call
 * resumes from the last event queued). A lineage change found during the catch-up (see
 * gs_sub_next) does not fail this call: the first gs_sub_next reports it,
 * so the caller can read gs_sub_lineage. */
gs_sub_t *gs_sub_new(const char *feed_endpoint, const char *sync_endpoint,
                     const char *const *prefixes, size_t n,
                     const char *checkpoint, uint64_t since,
                     const gs_sub_opts_t *opts, int *err);
void gs_sub_destroy(gs_sub_t **self_p);

/* The next event, in seq order per prefix, each exactly once. Waits up to
 * timeout_ms for one (-1 = forever; while gs_sub_new's catch-up is not
 * over, the next sync page is waited for however short timeout_ms is).
 * Returns 0 with *ev set (free with
 * gridsync__v1__change_event__free_unpacked(ev, NULL)), 1 on timeout, or an
 * error: GS_CLIENT_EAUTH when the feed's handshake was refused (ZeroMQ does
 * not reconnect after that, so nothing more can arrive), GS_CLIENT_ECANCELLED
 * when the cancel flag is set. Gaps in the live feed are detected
 * (prev_seq, heartbeats) and repaired from the sync service before anything
 * later is delivered.
 *
 * Lineage: the subscriber follows one store epoch (the checkpoint's, or
 * the broker's at first contact when the checkpoint has none). A sync
 * reply with another non-zero epoch, or with a head_seq below a position
 * of ours, means the broker's store was restored from a backup or
 * replaced, and will hand out our seqs again for other events (a heartbeat
 * that says so is checked with a sync request first: it may just have been
 * read late). From then on this returns GS_CLIENT_ELINEAGE (every call,
 * until gs_sub_rebaseline) and delivers nothing more; gs_sub_lineage says
 * what was seen. A broker with CURVE answers each new subscription with a
 * heartbeat before any event, so a follower that reconnects to a restored
 * store hears its epoch first; in --insecure-dev mode a few live events
 * can still arrive, and be delivered, before it. */
int gs_sub_next(gs_sub_t *self, int timeout_ms, Gridsync__V1__ChangeEvent **ev);

/* What revealed a lineage change. */
typedef struct gs_sub_lineage {
    uint64_t epoch;             /* the epoch followed (0 = not known) */
    uint64_t broker_epoch;      /* the broker's epoch as last heard (0 = not sent) */
    uint64_t head_seq;          /* the broker head that revealed it */
    uint64_t position;          /* our position it was compared with */
    char message[256];          /* what happened, for a person */
} gs_sub_lineage_t;

/* 1 with *out filled when a lineage change was found (GS_CLIENT_ELINEAGE),
 * else 0 (out may be NULL). */
int gs_sub_lineage(const gs_sub_t *self, gs_sub_lineage_t *out);

/* Start over after GS_CLIENT_ELINEAGE: drop what is queued, set every
 * position back to 0, follow the broker's current epoch and catch up from
 * the beginning. Whatever the caller built from earlier events describes a
 * store that no longer exists and must be discarded first; a checkpoint
 * written after this starts the new lineage. Returns 0 or an error (also
 * GS_CLIENT_ELINEAGE again if the store changed once more meanwhile). */
int gs_sub_rebaseline(gs_sub_t *self);

/* Silence watch. The broker sends a heartbeat for every subscribed prefix
 * each heartbeat-ms (default 1 s); a subscriber that hears none (and no
 * event) for a prefix for long is not being served: its subscription was
 * refused (key revoked or not allowed the prefix) or the feed is down.
 * Returns 1, with msg set to "no heartbeat for N s: check enrolment (...)",
 * when some prefix has been silent for warn_ms or more and no warning was
 * given in the last warn_ms; else 0. Call it between gs_sub_next calls.
 * warn_ms <= 0 never warns. */
int gs_sub_silence(gs_sub_t *self, int64_t warn_ms, char *msg, size_t size);

/* 1 once a heartbeat of every topic followed has arrived since
 * gs_sub_new: the broker applied every subscription (with CURVE it answers
 * each one it applies with a heartbeat before any event), so what it
 * publishes from then on reaches this subscriber live. Else 0. */
int gs_sub_served(const gs_sub_t *self);

/* Record that everything delivered so far is processed: writes the
 * checkpoint file durably (write and fsync a temporary file, rename it over
 * the checkpoint, fsync the directory), so that after a crash the file is
 * the old checkpoint or the new one, never a mix, and a checkpoint once
 * returned survives a power cut. The checkpoint holds the positions and the
 * epoch followed (after GS_CLIENT_ELINEAGE still the old one, so a restart
 * reports the change again). Returns GS_CLIENT_EIO when any step fails
 * (the old checkpoint is then left as it was). extra, when not NULL, is
 * stored with it and returned by gs_sub_checkpoint_extra after a restart
 * (gridfeed keeps its output file size there). */
int gs_sub_checkpoint(gs_sub_t *self, const char *extra);
const char *gs_sub_checkpoint_extra(const gs_sub_t *self);

/* Last seq delivered for topic i, and the broker's head as last heard. */
uint64_t gs_sub_position(const gs_sub_t *self, size_t i);
/* Topics followed: the prefixes, or categories x prefixes. */
size_t gs_sub_count(const gs_sub_t *self);
/* Topic i as subscribed ("440305", "I02/440305"), and its grid-code
 * prefix; NULL past the end. */
const char *gs_sub_topic(const gs_sub_t *self, size_t i);
const char *gs_sub_prefix(const gs_sub_t *self, size_t i);
/* Is ev one of topic i's events (under its prefix, and for an incident
 * topic an incident of its category)? */
int gs_sub_wants(const gs_sub_t *self, size_t i, const Gridsync__V1__ChangeEvent *ev);
uint64_t gs_sub_head(const gs_sub_t *self);
/* The store epoch followed (0 = not known yet, or the broker sends none). */
uint64_t gs_sub_epoch(const gs_sub_t *self);

typedef struct gs_sub_stats {
    uint64_t live;              /* events delivered from the live feed */
    uint64_t pulled;            /* events delivered from the sync service */
    uint64_t duplicates;        /* live events already delivered, dropped */
    uint64_t gaps;              /* gaps detected */
    uint64_t heartbeats;        /* heartbeats seen */
} gs_sub_stats_t;
void gs_sub_stats(const gs_sub_t *self, gs_sub_stats_t *st);

#endif

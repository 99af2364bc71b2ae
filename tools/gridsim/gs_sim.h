/*
 * gs_sim: the collector fleet's script, and what the broker must answer.
 *
 * Where it sits: between the district generator (gs_gen) and whatever sends
 * uploads. gridsim sends the uploads to gridsyncd and checks every ack; a
 * benchmark peer can replay the same uploads against another system and
 * compare counts. Nothing here talks to a network.
 *
 * For one grid, gs_sim_plan_grid() lays out what its device does in one
 * working day, as a list of uploads in the order they must be sent (each
 * one only after the previous one was acked):
 *   1. the offline burst: every record of the grid, in batches; records
 *      picked as "invalid" carry a corrupted ID check character (an
 *      organisation with a USCC: a corrupted USCC check character);
 *   2. the follow-up visit, same device: corrected invalid records,
 *      identical re-collections (same content, new upload), the same place
 *      under a new record id, and one side of each conflicting edit (based
 *      on version 1, new content);
 *   3. a second device ("dev-<grid>-b") sends the other side of each
 *      conflicting edit, also based on version 1, with different content.
 * With twins_from set, some households also list a person of another
 * district (gs_sim_twin): the cross-district duplicates a city finds.
 * Each upload may also be marked for a retransmission (send again after the
 * ack: the same ack must come back) or a lost ack (the first ack is dropped
 * unread and the upload sent again: results as if it were the first).
 *
 * Every record comes with the exact result a correct broker gives it on a
 * store that has not seen the district before. Which record and which
 * upload gets which noise depends only on the seed and its index, never on
 * timing or threads.
 *
 * Thread safety: plans for different grids may be built concurrently, each
 * in its own arena, from one read-only gs_gen_t.
 */
#ifndef GS_SIM_H
#define GS_SIM_H

#include <stddef.h>
#include <stdint.h>
#include "gridsync.pb-c.h"
#include "gs_arena.h"
#include "gs_gen.h"
#include "gs_validate.h"

/* Record-level noise: what the device does with one record. */
enum {
    GS_SIM_FRESH = 0,           /* uploaded once, accepted as version 1 */
    GS_SIM_INVALID,             /* first with a bad ID (or USCC) check character, then
                                 * corrected */
    GS_SIM_RECOLLECT,           /* re-collected unchanged: UNCHANGED */
    GS_SIM_NEW_ID,              /* same place under a new id: MERGED into the first */
    GS_SIM_CONFLICT,            /* two devices edit version 1: ACCEPTED then CONFLICT */
    GS_SIM_RECORD_KINDS
};

/* Upload-level noise: what happens to one upload on the wire. */
enum {
    GS_SIM_PLAIN = 0,           /* sent once */
    GS_SIM_RETRANSMIT,          /* sent again after its ack */
    GS_SIM_LOST_ACK             /* first ack lost, then sent again */
};

/* Record-level noise shares are exclusive bands (their sum is at most 100);
 * so are the upload-level ones. */
typedef struct gs_sim_opts {
    uint64_t seed;              /* which records and uploads get noise (default 1) */
    const char *run_id;         /* prefix of every upload id (default "run") */
    uint32_t batch;             /* records per upload (default 50) */
    double retransmit_pct;      /* uploads sent twice (default 3) */
    double lost_ack_pct;        /* uploads whose first ack is lost (default 2) */
    double invalid_pct;         /* records with a bad ID check character (default 2) */
    double recollect_pct;       /* records re-collected unchanged (default 5) */
    double new_id_pct;          /* records collected again under a new id (default 2) */
    double conflict_pct;        /* records edited by two devices (default 1) */
    int organisations;          /* also the grid's organisations, after its households
                                 * and rental units (default 0; gridsim and the
                                 * benchmarks set it) */
    int incidents;              /* also the grid's incident reports (gs_gen_incident),
                                 * last: each a collector's REPORTED incident, with the
                                 * noise a record that names no person, has no natural
                                 * key and is rewritten by the store can carry (two
                                 * devices editing it) (default 0; gridsim --incidents) */
    int64_t now_ms;             /* the generator's opts.now_ms (for the incidents) */
    const gs_gen_t *twins_from; /* another district (its own seed, the same sizes), */
                                /* or NULL: none of its persons planted here        */
    double twins_pct;           /* households of this district that also list a     */
                                /* person of twins_from (default 0.3: 3 in 1,000)   */
} gs_sim_opts_t;

/* Fill o with the defaults above. */
void gs_sim_opts_init(gs_sim_opts_t *o);

/* Check options; 0, or -1 with a message for a person in msg (run_id not
 * 1..24 characters of [A-Za-z0-9._-], batch not in 2..1000, a share out of
 * 0..100, or the shares of one level summing over 100). */
int gs_sim_opts_check(const gs_sim_opts_t *o, char *msg, size_t size);

/* The result a correct broker gives one record. */
typedef struct gs_sim_expect {
    int status;                 /* ResultStatus */
    int reason;                 /* Reason (REJECTED only, else 0) */
    uint64_t version;           /* version in the result (0 when rejected) */
    const char *record_key;     /* canonical id in the result */
    int has_seq;                /* 1: seq > 0 (a new event); 0: seq == 0 */
    int noise;                  /* GS_SIM_* record kind that produced this record */
} gs_sim_expect_t;

/* One upload, ready to send, with the expected result of each record. */
typedef struct gs_sim_upload {
    Gridsync__V1__Upload *up;   /* device_id, upload_id, records */
    gs_sim_expect_t *expect;    /* up->n_records entries */
    int noise;                  /* GS_SIM_PLAIN, _RETRANSMIT or _LOST_ACK */
    uint32_t fresh;             /* records of the district sent here the first time */
    uint32_t persons;           /* household members and tenants in the records */
} gs_sim_upload_t;

/* What a plan holds, by kind (summed over grids by the caller). */
typedef struct gs_sim_tally {
    uint64_t uploads;           /* uploads in the plan (each sent at least once) */
    uint64_t records;           /* records in them */
    uint64_t by_noise[GS_SIM_RECORD_KINDS]; /* district records by record-level noise */
    uint64_t retransmit;        /* uploads marked GS_SIM_RETRANSMIT */
    uint64_t lost_ack;          /* uploads marked GS_SIM_LOST_ACK */
    uint64_t expected[GS_RESULT_STATUSES]; /* expected results by ResultStatus, each
                                           * upload once */
    uint64_t twins;             /* persons of twins_from planted (one per household) */
} gs_sim_tally_t;

/* Lay out the day of grid (below gs_gen_grid_count) in arena a: *ups gets
 * *n uploads in sending order, all allocated in a (valid until it is
 * reset). tally (may be NULL) is added to. Returns 0, or -1 when the arena
 * ran out of memory or the options are bad. */
int gs_sim_plan_grid(const gs_sim_opts_t *o, const gs_gen_t *gen, uint32_t grid,
                     gs_arena_t *a, gs_sim_upload_t **ups, size_t *n,
                     gs_sim_tally_t *tally);

/* Cross-district duplicates: whether household i of gen (this district)
 * also lists a person of o->twins_from, and which: the head of household
 * *other there. A deterministic draw per household under o->seed picks
 * o->twins_pct of the households below twins_from's household count; the
 * other household is (i + an offset drawn from the seed) modulo that
 * count, so no two households of this district plant the same person. The
 * person is appended as a member (relation NON_RELATIVE: registered here
 * too, never deregistered there) in every phase of the plan, so the
 * district holds exactly one such person per planted household and a
 * city that replicates both districts finds exactly the planted ones
 * (when the two districts' seeds differ: under one seed their migrant
 * persons coincide anyway). Returns 1 (and *other) or 0. Pure. */
int gs_sim_twin(const gs_sim_opts_t *o, const gs_gen_t *gen, uint32_t i, uint32_t *other);

/* The device id of a grid's own device and of the second device. */
void gs_sim_device_id(const char *grid_code, int second, char *out, size_t size);

/* Compare an ack with what u expects: the upload id, no request-level
 * reason, one result per record in order, and each record's status,
 * reason, version, record_key and seq rule. Returns how many records (or 1
 * for the envelope) differ; the first difference is described in detail
 * (may be NULL) for a person. */
int gs_sim_check(const gs_sim_upload_t *u, const Gridsync__V1__Ack *ack,
                 char *detail, size_t size);

/* Compare the ack to a retransmission with the first ack: same results
 * field by field, seqs included. Returns 0 when they are the same, else 1
 * with the first difference in detail (may be NULL). */
int gs_sim_ack_same(const Gridsync__V1__Ack *first, const Gridsync__V1__Ack *again,
                    char *detail, size_t size);

/* "ACCEPTED", "UNCHANGED", ... for a ResultStatus. */
const char *gs_sim_status_name(int status);

#endif

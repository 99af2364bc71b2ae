/*
 * fault_kit: what the fault tests share. They run the real gridsyncd (through
 * gs_testkit), put it under load from in-process devices, follow its feed
 * with in-process district subscribers, break things (SIGKILL, a full disk,
 * a slow consumer) and then hold the result against what the devices were
 * told: every ack is a promise, and the store and the feeds must keep it.
 *
 *   load      device threads, each its own gs_client with Lazy Pirate
 *             retries, uploading fresh records and remembering every ack
 *   follower  a subscriber thread (gs_sub with a checkpoint file) that keeps
 *             following across broker restarts and records the seqs it got
 *   checks    the store, opened read-only, against the acks: each acked
 *             record stored once with its acked version, one change-log event
 *             per accepted result, seqs 1..head without holes, verify clean
 *
 * Nothing here waits on time: threads wait for acks, events, replies and
 * process exits. Timeouts below are only bounds that turn a hang into a
 * failure with a message.
 */
#ifndef GS_FAULT_KIT_H
#define GS_FAULT_KIT_H

#include <stddef.h>
#include <stdint.h>

#include "gs_testkit.h"

/* One acked record, as the broker's Ack described it. */
typedef struct gs_fk_ack {
    char id[40];                /* record id (also the canonical key here) */
    char grid[16];              /* its grid code */
    uint64_t version;           /* acked version */
    uint64_t seq;               /* acked change-log seq */
} gs_fk_ack_t;

/* Sort acks by id, as the checks want them. */
void gs_fk_acks_sort(gs_fk_ack_t *acks, size_t n);

/* ---- load ----------------------------------------------------------------- */

typedef struct gs_fk_load_opts {
    const char *endpoint;       /* broker upload endpoint */
    const char *tag;            /* prefix of record and upload ids (unique per test) */
    const char *const *grids;   /* grid codes the records go to, in turn */
    size_t n_grids;             /* how many */
    int records;                /* records per upload */
    int members;                /* persons per household */
    int timeout_ms;             /* client: wait for one reply */
    int retries;                /* client: resends before giving up */
    long max_uploads;           /* per thread; 0 = until gs_fk_load_stop */
} gs_fk_load_opts_t;

typedef struct gs_fk_load gs_fk_load_t;

/* Start threads device threads (at most 8). Every upload holds fresh records
 * (ids "TAG-T-N"), so each result must be ACCEPTED at version 1; anything
 * else, or an upload that fails after all its retries, is counted as an
 * error and printed. NULL on failure. */
gs_fk_load_t *gs_fk_load_start(const gs_fk_load_opts_t *o, int threads);

/* Uploads acked so far, all threads. */
uint64_t gs_fk_load_acked(gs_fk_load_t *l);

/* Wait until at least uploads uploads are acked. Returns 0, or -1 when every
 * thread ended first or nothing new was acked for bound_ms. */
int gs_fk_load_wait(gs_fk_load_t *l, uint64_t uploads, int bound_ms);

/* Ask the threads to stop after their current upload (which they finish,
 * retries included) and join them. */
void gs_fk_load_stop(gs_fk_load_t *l);

/* Uploads that failed or were answered unexpectedly. */
uint64_t gs_fk_load_errors(gs_fk_load_t *l);

/* Resends (after a timeout) by all threads' clients. Call after
 * gs_fk_load_stop. */
uint64_t gs_fk_load_resends(gs_fk_load_t *l);

/* Every acked record of all threads, sorted by id (owned by l). Call after
 * gs_fk_load_stop. */
const gs_fk_ack_t *gs_fk_load_acks(gs_fk_load_t *l, size_t *n);

void gs_fk_load_destroy(gs_fk_load_t **l_p);

/* ---- follower ------------------------------------------------------------- */

typedef struct gs_fk_follow_opts {
    const char *feed;           /* broker feed endpoint */
    const char *sync;           /* broker upload endpoint (sync service) */
    const char *prefix;         /* one level-boundary prefix */
    const char *checkpoint;     /* checkpoint file */
    int rcvhwm;                 /* live-feed receive HWM (0 = library default) */
    int timeout_ms;             /* sync request timeout (0 = library default) */
    int checkpoint_every;       /* events between checkpoints (0 = 50) */
    int stalled;                /* start stalled: read nothing until released */
} gs_fk_follow_opts_t;

typedef struct gs_fk_follow gs_fk_follow_t;

/* Start a subscriber thread. It delivers into its seq list, checkpoints
 * every checkpoint_every events, and when the subscriber fails (the broker
 * was down longer than its sync retries) checkpoints what it has and
 * resumes from the checkpoint. Every event must have a seq above the last
 * one under the prefix, else it counts an error. GS_CLIENT_ELINEAGE (no
 * test here restores a store) counts an error and ends the follower. */
gs_fk_follow_t *gs_fk_follow_start(const gs_fk_follow_opts_t *o);

/* Let a stalled follower read. */
void gs_fk_follow_release(gs_fk_follow_t *f);

/* Simulate a crash of the district system: drop the subscriber without a
 * checkpoint and forget what was delivered after the last one, then resume
 * from the checkpoint file. Takes effect at the follower's next step. */
void gs_fk_follow_crash(gs_fk_follow_t *f);

/* Wait until the follower has delivered up to seq target for its prefix,
 * then stop it. Returns 0, or -1 when it made no progress for bound_ms. */
int gs_fk_follow_finish(gs_fk_follow_t *f, uint64_t target, int bound_ms);

/* Delivered seqs in order (owned by f), and counters. */
const uint64_t *gs_fk_follow_seqs(gs_fk_follow_t *f, size_t *n);
typedef struct gs_fk_follow_stats {
    uint64_t live, pulled, duplicates, gaps, heartbeats;  /* gs_sub, summed */
    uint64_t resumes;           /* subscriber re-created from its checkpoint */
    uint64_t crashes;           /* simulated crashes */
    uint64_t errors;            /* events out of order or not under the prefix, or a */
                                /* lineage change (the broker lost committed events) */
} gs_fk_follow_stats_t;
void gs_fk_follow_stats(gs_fk_follow_t *f, gs_fk_follow_stats_t *st);

void gs_fk_follow_destroy(gs_fk_follow_t **f_p);

/* ---- checks --------------------------------------------------------------- */

/* Hold the store in dir (opened read-only; the broker may be running)
 * against the acks (sorted by id): every acked record present with its
 * acked version; records == acks (nothing stored twice); change-log seqs
 * exactly 1..head; every event is the one of an acked record (id, version
 * and seq), each acked record has exactly one; gs_store_verify clean.
 * Prints each problem; returns how many. */
int gs_fk_check_store(const char *dir, const gs_fk_ack_t *acks, size_t n);

/* Seqs of the change log under prefix, in order (malloc'd); last seq in
 * *last. Returns the count, or (size_t) -1 on a store error. */
size_t gs_fk_log_seqs(const char *dir, const char *prefix, uint64_t **seqs, uint64_t *last);

/* Compare a follower's seqs with the log's; prints the first difference.
 * Returns 0 when equal. */
int gs_fk_seqs_compare(const char *what, const uint64_t *got, size_t n_got,
                       const uint64_t *want, size_t n_want);

/* ---- broker --------------------------------------------------------------- */

/* A value from the broker's /metrics (gs_tk_metric), or -1 when it is not
 * there or cannot be read. name is a metric name (summed over its label
 * sets) or a name with one label set exactly as printed, e.g.
 * gridsync_uploads_total{result="replayed"}. */
double gs_fk_metric(const gs_tk_broker_t *b, const char *name);

/* SIGTERM the broker and return 0 when it drained and exited with status 0
 * (under LSan a leak makes the exit status non-zero); prints otherwise. */
int gs_fk_broker_term(gs_tk_broker_t *b);

/* A value from /proc/PID/status in kB (e.g. "RssAnon"), or -1. */
long gs_fk_proc_kb(pid_t pid, const char *field);

/* Random numbers for one test run: the seed comes from GS_FAULT_SEED when
 * set, else from the clock, and is printed so a failure can be rerun. */
uint64_t gs_fk_seed(void);
uint64_t gs_fk_rand(uint64_t *state);

/* Remove a test's temporary directory, or keep it and say where when
 * GS_FAULT_KEEP is set (store, checkpoints and broker logs, for a post
 * mortem). */
void gs_fk_cleanup(const char *dir);

/* GRIDSYNC_SOAK set (and not "0"): run the long variants. */
int gs_fk_soak(void);

/* A fault test's fixture: a temporary directory, the store path inside it,
 * and the broker the test starts. */
typedef struct gs_fk_env {
    char dir[64];               /* temp dir */
    char store[128];            /* store (or a link to it on a small filesystem) */
    char mnt[128];              /* a mount point the test made, when it made one */
    int mounted;                /* mnt holds a filesystem to unmount at the end */
    gs_tk_broker_t broker;      /* the daemon */
} gs_fk_env_t;

/* cmocka setup: a fresh gs_fk_env_t in *state. */
int gs_fk_setup(void **state);
/* cmocka teardown: SIGKILL the broker, unmount mnt if mounted, and
 * gs_fk_cleanup the directory. */
int gs_fk_teardown(void **state);

#endif

/*
 * gs_fuzz: the fuzz targets for hostile input, and what they share.
 *
 * Where it sits: beside the code paths a client's bytes reach. Each target
 * is one entry point taking arbitrary bytes:
 *   gs_fuzz_upload       the broker frontend's decode + validate path
 *                        (Request unpacked into an arena, gs_upload_check,
 *                        gs_record_check on every record);
 *   gs_fuzz_sync         the sync and snapshot request path (decode, prefix
 *                        checks, gs_store_events / gs_store_snapshot on a
 *                        small real store, replies built as the broker
 *                        builds them) with results checked against a
 *                        brute-force answer;
 *   gs_fuzz_store_apply  arbitrary records through gs_store_apply on a real
 *                        LMDB store, with gs_store_verify run periodically;
 *   gs_fuzz_replicate    arbitrary messages of a district's stream through
 *                        gs_store_replicate on a real replica store, with
 *                        gs_store_verify run periodically;
 *   gs_fuzz_topic        the live feed's topics (gs_topic.h): a subscription
 *                        topic parsed against a reference, and the category
 *                        read from an event's bytes against the decoded
 *                        event;
 *   gs_fuzz_categories   the incident category and deadline table's text
 *                        form (gs_incident.h): what the parser refuses
 *                        names a line and says why in text, and what it
 *                        accepts prints and parses back to itself.
 *
 * The same entry points are built twice: as libFuzzer programs (the
 * GS_FUZZ_LIBFUZZER define adds LLVMFuzzerTestOneInput) and, in every
 * normal build, inside test_fuzz_regressions, which replays the committed
 * seed corpus and every regression input. An entry point returns 0 for
 * any input; a broken invariant aborts the process (that is the finding).
 *
 * Stores live in temporary directories made once per process and removed
 * at exit. Not thread-safe: one target call at a time.
 */
#ifndef GS_FUZZ_H
#define GS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "gs_gen.h"
#include "gs_store.h"

int gs_fuzz_upload(const uint8_t *data, size_t len);
int gs_fuzz_sync(const uint8_t *data, size_t len);
int gs_fuzz_store_apply(const uint8_t *data, size_t len);
int gs_fuzz_replicate(const uint8_t *data, size_t len);
int gs_fuzz_topic(const uint8_t *data, size_t len);
int gs_fuzz_categories(const uint8_t *data, size_t len);

/* libFuzzer's entry point (defined by each target under GS_FUZZ_LIBFUZZER). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Flags in the first byte of a gs_fuzz_store_apply input; the rest is a
 * packed gridsync.v1.Upload. */
enum {
    GS_FUZZ_APPLY_PREPARED = 1,     /* gs_store_prepare first (the frontend path) */
    GS_FUZZ_APPLY_SCOPED = 2,       /* device limited to GS_FUZZ_SCOPE */
    GS_FUZZ_APPLY_REPAIR_IDS = 4,   /* fix ID check characters, birth dates and sex */
    GS_FUZZ_APPLY_TWICE = 8         /* the same records again, as a second upload */
};
#define GS_FUZZ_SCOPE "440305001001002"  /* the district's second grid */

/* gs_fuzz_replicate: the origin (the fuzz district's county) and the
 * epoch its messages carry, and the flags byte before each message. */
#define GS_FUZZ_ORIGIN "440305"
#define GS_FUZZ_EPOCH "00000000000000e1"
enum {
    GS_FUZZ_REPL_BAD_SEQ = 1,       /* Gridsync-Seq "1" whatever the event's seq */
    GS_FUZZ_REPL_NO_SEQ = 2,        /* no Gridsync-Seq */
    GS_FUZZ_REPL_OTHER_EPOCH = 4,   /* Gridsync-Epoch of another lineage */
    GS_FUZZ_REPL_OTHER_ORIGIN = 8   /* Gridsync-Origin of another district */
};

/* "Now" for every target: the generator's default date, so that the seed
 * records (collected in the 90 days before it) stay valid forever. */
int64_t gs_fuzz_now_ms(void);

/* A new directory under $TMPDIR (or /tmp), removed with its contents at
 * process exit. Aborts when it cannot be made. The string is static. */
const char *gs_fuzz_tmpdir(void);

/* The small synthetic district every target and the seed maker share:
 * one street, 4 grids, 16 households, 3 rental buildings. Same bytes on
 * every call. Caller destroys. */
gs_gen_t *gs_fuzz_district(void);

/* Fill an empty store with the district (every household and rental unit),
 * then a handful of edits: a new version, a move to another grid and a
 * void. Deterministic, so a snapshot cursor made on one such store is valid
 * on another. Returns 0 or a GS_E* code. */
int gs_fuzz_store_fill(gs_store_t *st);

#endif

/*
 * gs_prescan: walk a packed request before protobuf-c unpacks it, and refuse
 * what would be expensive to decode.
 *
 * Where it sits: on the broker's frontend thread, between receiving a
 * request frame and gridsync__v1__request__unpack(). protobuf-c builds one
 * struct for every element of a repeated field (and keeps scan bookkeeping
 * for every field it meets) before anything can count them, so a 4 MB frame
 * of millions of two-byte empty records would decode into hundreds of MB.
 * The pre-scan reads the same bytes with no allocation, following the
 * message descriptors (field numbers, types and labels come from the
 * generated code), and answers before any of that memory is taken:
 *
 *  - REASON_MALFORMED: truncated varints, tags or lengths, field number 0,
 *    group or invalid wire types, a message nested deeper than
 *    GS_PRESCAN_DEPTH_MAX, or a singular message field sent more than once
 *    (protobuf-c would merge the copies, at a cost quadratic in their
 *    number; no gridsync client sends that);
 *  - REASON_TOO_MANY_RECORDS: Upload.records longer than lim->max_records;
 *  - REASON_BAD_ENCODING: a string field (PROTOBUF_C_TYPE_STRING, at any
 *    depth) holding a 0x00 byte, "PATH has a control character (byte N)"
 *    as gs_text_check says it (bytes from 1). protobuf-c would hand the
 *    string on cut at the NUL, so no later check could see it; other
 *    control characters and bad UTF-8 are gs_text_check's to refuse;
 *  - REASON_TOO_LARGE: any other repeated field longer than
 *    GS_PRESCAN_LIST_MAX entries (or its own limit from lim, when that is
 *    higher), or a request whose estimated decoded size is over
 *    GS_PRESCAN_DECODE_MAX.
 *
 * Lists over their documented per-record limits but within
 * GS_PRESCAN_LIST_MAX (a household of 33 members) still decode, so that
 * gs_record_check() rejects that one record (REASON_TOO_MANY) and not the
 * whole upload. Unknown fields are counted at the level they appear but never
 * descended into, as protobuf-c keeps them as opaque bytes.
 *
 * Every message names the place and the limit, e.g. "upload has 2000000
 * records; at most 1000 per upload" or "upload.records[4].household has
 * 5000 members; at most 32 per household" (list positions from 0, as
 * RecordResult.index counts them).
 *
 * Thread safety: reentrant; no allocation, no globals that change.
 */
#ifndef GS_PRESCAN_H
#define GS_PRESCAN_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>
#include "gs_validate.h"

#define GS_PRESCAN_DEPTH_MAX 32             /* message nesting; the schema needs 7 */
#define GS_PRESCAN_LIST_MAX 1024            /* entries in one repeated field */
#define GS_PRESCAN_DECODE_MAX (64u << 20)   /* estimated bytes protobuf-c allocates */

typedef struct gs_prescan_stats {
    size_t messages;            /* message instances, the top one included */
    size_t fields;              /* field occurrences (tags), all levels */
    size_t unknown;             /* of which fields the schema does not know */
    size_t decode_bytes;        /* estimate of what unpacking allocates */
    int depth;                  /* deepest nesting reached; the top message is 1 */
} gs_prescan_stats_t;

/* Walk the packed message data (len bytes) of type desc without decoding
 * it, count what unpacking would build, and check it against lim (NULL =
 * gs_limits_default) and the GS_PRESCAN_* caps as described above.
 *
 * The decode estimate is an upper bound of what protobuf-c allocates for
 * this input when it succeeds, counted in 16-byte allocation units as
 * gs_arena does: each message struct (sizeof_message from its descriptor),
 * the scan bookkeeping protobuf-c keeps per field occurrence, each repeated
 * array, string, bytes value and unknown field.
 *
 * stats (may be NULL) is filled in as far as the walk got. Returns 0 or the
 * reason code, with a message for a person in *v (may be NULL). Input that
 * passes may still fail to unpack (a string field sent as a varint, say):
 * the scan checks structure and size, protobuf-c the rest. */
int gs_prescan(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
               size_t len, const gs_limits_t *lim, gs_prescan_stats_t *stats,
               gs_verdict_t *v);

/* Where an upload's records sit in a request's bytes, and whether each is
 * in the one form protobuf-c packs (what gs_wire_is_canonical says of it
 * for gridsync.v1.Record), as gs_prescan_records finds them on its walk:
 * the caller's arrays of max entries. */
typedef struct gs_prescan_records {
    const uint8_t **at;         /* [max] where each Upload.records value starts */
    size_t *len;                /* [max] and its length */
    uint8_t *canonical;         /* [max] 1 when canonical, else 0 */
    size_t max;                 /* entries the arrays hold */
    size_t n;                   /* Upload.records values met, in order (only
                                 * the first max are told) */
} gs_prescan_records_t;

/* gs_prescan, and when recs is not NULL the records of the request's
 * upload into it, in the order protobuf-c unpacks them (the i-th value of
 * Upload.records is records[i]), in the same walk: the frontend keeps a
 * record's wire bytes as its packed form without walking them again.
 * recs is only meaningful when 0 is returned (then every span lies inside
 * data and recs->n counts them all); a request that holds no upload tells
 * none. Same thread rules as gs_prescan. */
int gs_prescan_records(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                       size_t len, const gs_limits_t *lim, gs_prescan_stats_t *stats,
                       gs_verdict_t *v, gs_prescan_records_t *recs);

#endif

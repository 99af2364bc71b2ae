/*
 * gs_render: the one JSON writer of the tools, and the names they print for
 * record kinds and operations.
 *
 * Where it sits: at the end of the flow, where data leaves gridsync as
 * text. gridfeed writes every change event it receives as one JSON line
 * (to a buffer it appends to its output file); gridctl writes its --json
 * output (to stdout) with the same writer, so the records and events it
 * prints are the lines district systems already read from gridfeed:
 *   {"seq":12,"grid":"440305001001001","kind":"household","op":"upsert",
 *    "version":1,"record_key":"H...","origin_device":"dev-...",
 *    "committed_at":1795000000000,"record":{...}}
 * previous_grid_code is added for moves. "record" is the household or
 * rental unit with proto field names. In a message, fields at their default
 * value (empty string, 0, false, empty list, unset message) are left out
 * (a oneof member is written when it is the chosen one, a proto3 "optional"
 * field when it is set), enums are written by name, bytes as lower-case hex,
 * and the strings gs_mask_kind names (ID numbers, phones) are masked unless
 * reveal is set.
 *
 * The writer is compact (no spaces) and adds the commas; each top-level
 * value ends with a newline. Strings are written as they are (UTF-8) except
 * '"', '\', and the control characters below U+0020 and U+007F, which are
 * escaped (\n, \t, else \u00XX). Doubles in messages are written with the
 * fewest of 15 or 17 significant digits that read back as the same value;
 * NaN and infinities, which JSON lacks, as null.
 *
 * Errors: writing to a buffer stops at the first failed allocation and
 * sets the buffer's sticky failed flag (gs_json_failed); writing to a
 * stream leaves errors to the stream (ferror).
 *
 * Not thread-safe: one writer per thread. A writer borrows its stream or
 * buffer, which must outlive it; it owns no memory and needs no cleanup.
 */
#ifndef GS_RENDER_H
#define GS_RENDER_H

#include <stdint.h>
#include <stdio.h>
#include <protobuf-c/protobuf-c.h>

#include "gridsync.pb-c.h"
#include "gs_wire.h"

#define GS_JSON_DEPTH 32        /* nesting the writer tracks (the schema needs < 10) */

/* A streaming JSON writer. Initialise with gs_json_init_file or
 * gs_json_init_buf; the fields are private. */
typedef struct gs_json {
    FILE *f;                    /* destination stream, or NULL */
    gs_wbuf_t *buf;             /* destination buffer when f is NULL */
    int depth;                  /* open containers */
    int count[GS_JSON_DEPTH];   /* values written in each open container */
    char close[GS_JSON_DEPTH];  /* the character that closes each one */
    int after_key;              /* a key was written; its value comes next */
} gs_json_t;

/* Write to stream f, or append to buffer b (as text, no NUL). */
void gs_json_init_file(gs_json_t *j, FILE *f);
void gs_json_init_buf(gs_json_t *j, gs_wbuf_t *b);

void gs_json_obj(gs_json_t *j);                 /* { */
void gs_json_arr(gs_json_t *j);                 /* [ */
void gs_json_end(gs_json_t *j);                 /* } or ]; a newline after the top level */
void gs_json_key(gs_json_t *j, const char *key);
void gs_json_str(gs_json_t *j, const char *s);  /* NULL writes null */
void gs_json_u64(gs_json_t *j, uint64_t v);
void gs_json_i64(gs_json_t *j, int64_t v);
/* A stored double, exactly (15 or 17 significant digits, see above). */
void gs_json_dbl(gs_json_t *j, double v);
/* A figure computed for a person (a ratio, an area): 6 significant digits. */
void gs_json_figure(gs_json_t *j, double v);
void gs_json_bool(gs_json_t *j, int v);
void gs_json_null(gs_json_t *j);

/* A protobuf-c message as a JSON object (the rules above); masked unless
 * reveal. A caller that masked the message already passes reveal = 1. */
void gs_json_msg(gs_json_t *j, const ProtobufCMessage *m, int reveal);

/* A change event as the object shown above, with its record masked unless
 * reveal. At the top level that is one line, newline included. */
void gs_json_event(gs_json_t *j, const Gridsync__V1__ChangeEvent *ev, int reveal);

/* 1 when a buffer writer's allocation failed (the text is incomplete), or
 * a stream writer's stream has an error; 0 otherwise. */
int gs_json_failed(const gs_json_t *j);

/* "household", "rental" or "organisation"; NULL for any other kind. */
const char *gs_render_kind_name(int kind);

/* "upsert", "void", "move_out" or "move_in"; NULL for any other op. */
const char *gs_render_op_name(int op);

/* The household, rental unit or organisation of a record (what "record"
 * holds in an event's JSON), or NULL when r is NULL or holds none. */
const ProtobufCMessage *gs_render_record_body(const Gridsync__V1__Record *r);

#endif

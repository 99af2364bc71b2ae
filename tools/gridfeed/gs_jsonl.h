/*
 * gs_jsonl: change events as JSON lines, for district systems that read
 * text rather than protobuf.
 *
 * Where it sits: gridfeed turns every ChangeEvent it receives from the
 * subscriber into one line of this form and appends it to its output:
 *   {"seq":12,"grid":"440305001001001","kind":"household","op":"upsert",
 *    "version":1,"record_key":"H...","origin_device":"dev-...",
 *    "committed_at":1795000000000,"record":{...}}
 * previous_grid_code is added for moves. "record" is the household or
 * rental unit with proto field names; fields at their default value (empty
 * string, 0, false, empty list, unset message) are left out, enums are
 * written by name. ID numbers (id_number, permit_number) and phones
 * (phones, phone, contact_phone) are masked unless reveal is set.
 *
 * Pure functions on a caller's buffer; reentrant.
 */
#ifndef GS_JSONL_H
#define GS_JSONL_H

#include <stddef.h>
#include "gridsync.pb-c.h"

/* A growable text buffer. */
typedef struct gs_jbuf {
    char *data;                 /* malloc'd, NUL-terminated when len > 0 */
    size_t len;                 /* bytes used */
    size_t cap;                 /* bytes allocated */
    int failed;                 /* an allocation failed; contents incomplete */
} gs_jbuf_t;

/* Free the buffer's memory and zero it. Safe twice. */
void gs_jbuf_free(gs_jbuf_t *b);

/* Append one event as a JSON object and a newline. Returns 0, or -1 when
 * memory ran out (b->failed is then set). */
int gs_jsonl_event(gs_jbuf_t *b, const Gridsync__V1__ChangeEvent *ev, int reveal);

/* Append any protobuf-c message as a JSON object (same rules as the
 * record above). Returns 0 or -1. */
int gs_jsonl_message(gs_jbuf_t *b, const ProtobufCMessage *m, int reveal);

#endif

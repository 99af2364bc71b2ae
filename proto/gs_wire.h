/*
 * gs_wire: a growable byte buffer with the few protobuf encoding steps that
 * let gridsync splice already-packed messages into envelopes.
 *
 * Why it exists: the store keeps change events and records as packed
 * protobuf. A sync reply is a SyncResponse whose repeated `events` field is
 * exactly those bytes, length-prefixed; a snapshot page and a Reply envelope
 * work the same way. protoc-c can only pack a message it has unpacked, which
 * would decode and re-encode every stored event; writing the field headers
 * ourselves sends the stored bytes as they are. Everything else is packed by
 * protoc-c.
 *
 * Not thread-safe: one buffer per thread.
 */
#ifndef GS_WIRE_H
#define GS_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

typedef struct gs_wbuf {
    uint8_t *data;      /* bytes written so far (malloc'd) */
    size_t len;         /* bytes used */
    size_t cap;         /* bytes allocated */
    int failed;         /* sticky: an allocation failed; contents are invalid */
} gs_wbuf_t;

void gs_wbuf_init(gs_wbuf_t *b);
void gs_wbuf_deinit(gs_wbuf_t *b);
void gs_wbuf_reset(gs_wbuf_t *b);

/* Ensure room for n more bytes; returns a pointer to them or NULL (and sets
 * failed). Does not change len. */
uint8_t *gs_wbuf_reserve(gs_wbuf_t *b, size_t n);

void gs_wbuf_put(gs_wbuf_t *b, const void *p, size_t n);
void gs_wbuf_varint(gs_wbuf_t *b, uint64_t v);

/* field number + wire type 0 (varint); skipped when v == 0 (proto3 default) */
void gs_wbuf_uint_field(gs_wbuf_t *b, uint32_t field, uint64_t v);

/* field number + wire type 2 + length + bytes (written even when n == 0 if
 * force, else skipped for n == 0 as proto3 does for empty strings) */
void gs_wbuf_bytes_field(gs_wbuf_t *b, uint32_t field, const void *p, size_t n,
                         int force);

/* Pack a protoc-c message as a length-delimited field. */
void gs_wbuf_message_field(gs_wbuf_t *b, uint32_t field,
                           const ProtobufCMessage *m);

/* Bytes a varint of v takes. */
size_t gs_wire_varint_len(uint64_t v);

#endif

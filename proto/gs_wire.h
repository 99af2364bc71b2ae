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
 * It also holds the few steps that read raw wire bytes without decoding
 * them (gs_prescan walks a request with them before protobuf-c unpacks it;
 * gs_wire_spans finds an uploaded record's bytes and gs_wire_is_canonical
 * says whether they are what protobuf-c would pack, so that the store can
 * keep them) and gs_wire_strip_unknown, which drops the fields this schema
 * does not know from an unpacked message before the broker stores it.
 *
 * Not thread-safe: one buffer per thread.
 */
#ifndef GS_WIRE_H
#define GS_WIRE_H

#include <stdarg.h>
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

/* Append text formatted as printf does, whatever its length (no NUL is
 * counted in len, though one follows the text in data). An allocation
 * failure sets failed; an encoding error appends nothing. For text built in
 * a buffer: JSON lines, the metrics page. */
void gs_wbuf_printf(gs_wbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gs_wbuf_vprintf(gs_wbuf_t *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
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

/* Write v as a varint at p, which has room for gs_wire_varint_len(v) bytes
 * (10 at most); returns the bytes written. */
size_t gs_wire_varint_put(uint8_t *p, uint64_t v);

/* ---- reading (no allocation) ------------------------------------------- */

/* Read one varint at *p (at most 10 bytes, not past end) into *v and move
 * *p past it. Returns 0, or -1 when it is truncated or longer than 10
 * bytes (*p is then unchanged). Inline for the one-byte varint, which most
 * tags and lengths are (every walk over packed bytes reads them per
 * field); gs_wire_varint_get_long reads the others. */
int gs_wire_varint_get_long(const uint8_t **p, const uint8_t *end, uint64_t *v);
static inline int
gs_wire_varint_get(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    if (*p < end && !(**p & 0x80)) {
        *v = **p;
        (*p)++;
        return 0;
    }
    return gs_wire_varint_get_long(p, end, v);
}

/* Move *p past the value of a field of wire type wt (0 varint, 1 64-bit,
 * 2 length-delimited, 5 32-bit). Returns 0, or -1 when the value runs past
 * end or wt is a group (3, 4) or invalid (6, 7). Inline: the walks call it
 * once per field. */
static inline int
gs_wire_skip(const uint8_t **p, const uint8_t *end, int wt)
{
    const uint8_t *q = *p;
    uint64_t n;
    switch (wt) {
    case 0:
        if (gs_wire_varint_get(&q, end, &n))
            return -1;
        break;
    case 1:
    case 5: {
        size_t need = wt == 1 ? 8 : 4;
        if ((size_t) (end - q) < need)
            return -1;
        q += need;
        break;
    }
    case 2:
        if (gs_wire_varint_get(&q, end, &n) || n > (uint64_t) (end - q))
            return -1;
        q += n;
        break;
    default:
        return -1;
    }
    *p = q;
    return 0;
}

/* The value of the last varint field number `field` at the top level of
 * the message in data (as protobuf-c keeps the last of a repeated scalar).
 * Stops at the first malformed byte, keeping what it found before. Returns
 * 0 when found, -1 when not. For replies to requests that are refused
 * before they are unpacked (the request_id echo). */
int gs_wire_find_varint(const uint8_t *data, size_t len, uint32_t field,
                        uint64_t *value);

/* ---- unpacked messages ------------------------------------------------- */

/* The bytes of every occurrence of length-delimited field `field` at the
 * top level of the message data (len bytes), in order: at most max spans
 * into span_at/span_len (either may be NULL when max is 0). Returns how
 * many there are (even past max), or -1 when the data does not walk (a
 * truncated tag or value). Used to find where an unpacked list element
 * came from: the i-th occurrence of a repeated message field is element i. */
long gs_wire_spans(const uint8_t *data, size_t len, uint32_t field,
                   const uint8_t **span_at, size_t *span_len, size_t max);

/* Is data (len bytes) exactly what protobuf_c_message_pack writes for the
 * message of type desc that protobuf-c unpacks from it? Then a caller that
 * changed nothing in the unpacked message may keep the bytes instead of
 * packing it again. Conservative: 1 only when every field is known to
 * desc, occurs in the order pack writes fields (desc->fields), at most once
 * (a repeated string, bytes or message field: in one contiguous run), at
 * most one field of each oneof, with the wire type pack uses, minimal
 * varints for tags, lengths and values, and a value pack does not leave
 * out: no zero number, no false, no empty string or bytes (proto3 packs
 * none of them), an int32/enum/uint32/sint32 in its 32-bit range (an
 * int32 or enum also not negative), a string without a 0x00 byte, and
 * nested messages (at most 32 deep) canonical in turn.
 * Repeated scalar fields, proto2 required fields and anything else not
 * named here give 0, as does input that does not walk. Pure, no allocation. */
int gs_wire_is_canonical(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                         size_t len);

/* Read a varint at *p that is in its one shortest form (no trailing 0x00
 * group but a lone 0x00, a tenth byte only as 0x01). 0 and *p moved past
 * it, or -1 (truncated, too long or not shortest). */
static inline int
gs_wire_varint_min(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    const uint8_t *q = *p;
    if (q < end && *q < 0x80) {
        /* one byte (most tags and lengths): its shortest form already */
        *v = *q;
        *p = q + 1;
        return 0;
    }
    if (gs_wire_varint_get(&q, end, v))
        return -1;
    size_t n = (size_t) (q - *p);
    uint8_t last = q[-1];
    if ((n > 1 && last == 0) || (n == 10 && last != 1))
        return -1;
    *p = q;
    return 0;
}

/* n bytes at p, little-endian. */
static inline uint64_t
gs_wire_le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t) p[i] << (8 * i);
    return v;
}

/* The steps of gs_wire_is_canonical, for a walk of the same bytes that
 * has other work to do (gs_prescan answers it for an upload's records on
 * its way): per message a gs_wire_canon_t, then for each field in turn
 * its tag in shortest form (gs_wire_varint_min), gs_wire_canon_field and
 * gs_wire_canon_value, then a message field's body canonical in turn and
 * a string without a 0x00 byte. The bytes are canonical when every step
 * says so. */
#define GS_WIRE_CANON_ONEOFS 8  /* oneofs of one message tracked */

typedef struct gs_wire_canon {
    long last;                  /* index in desc->fields of the field met last; -1 none */
    size_t n_oneofs;            /* oneofs met so far */
    unsigned oneofs[GS_WIRE_CANON_ONEOFS]; /* their quantifier offsets */
} gs_wire_canon_t;

static inline void
gs_wire_canon_init(gs_wire_canon_t *c)
{
    c->last = -1;
    c->n_oneofs = 0;
}

/* Field f of message type d (NULL: a field d does not know) met next:
 * 1 when pack writes it at this place (known, in descriptor order, a
 * repeated string/bytes/message field in one run, one member per oneof,
 * not proto2 required, not a repeated scalar), 0 not. Updates c. */
static inline int
gs_wire_canon_field(gs_wire_canon_t *c, const ProtobufCMessageDescriptor *d,
                    const ProtobufCFieldDescriptor *f)
{
    if (!f)
        return 0;   /* unknown: pack never writes it */
    long i = (long) (f - d->fields);
    if (i == c->last) {
        /* the same field again: only a list's next element */
        if (f->label != PROTOBUF_C_LABEL_REPEATED)
            return 0;
    } else {
        /* pack writes the fields in descriptor order */
        if (i < c->last)
            return 0;
        c->last = i;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            /* one member of a oneof: protobuf-c keeps the last one sent */
            for (size_t k = 0; k < c->n_oneofs; k++)
                if (c->oneofs[k] == f->quantifier_offset)
                    return 0;
            if (c->n_oneofs == GS_WIRE_CANON_ONEOFS)
                return 0;
            c->oneofs[c->n_oneofs++] = f->quantifier_offset;
        }
    }
    return f->label != PROTOBUF_C_LABEL_REQUIRED &&
           (f->label != PROTOBUF_C_LABEL_REPEATED || f->type == PROTOBUF_C_TYPE_STRING ||
            f->type == PROTOBUF_C_TYPE_BYTES || f->type == PROTOBUF_C_TYPE_MESSAGE);
}

/* The value of field f at *p, sent with wire type wt: 1 when it is as
 * pack writes it (see gs_wire_is_canonical), else 0. Moves *p past the
 * value when it reads; a length-delimited value sets *body and *body_len
 * to its payload, which is the caller's to check for a message field (its
 * body canonical) and for a string (no 0x00 byte, which gs_prescan refuses
 * for the whole request). */
static inline int
gs_wire_canon_value(const ProtobufCFieldDescriptor *f, int wt, const uint8_t **p,
                    const uint8_t *end, const uint8_t **body, size_t *body_len)
{
    uint64_t v;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_ENUM:
        /* a negative int32 is packed sign-extended to 10 bytes: left to pack */
        return wt == 0 && !gs_wire_varint_min(p, end, &v) && v >= 1 && v <= INT32_MAX;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_SINT32:
        return wt == 0 && !gs_wire_varint_min(p, end, &v) && v >= 1 && v <= UINT32_MAX;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_SINT64:
        return wt == 0 && !gs_wire_varint_min(p, end, &v) && v != 0;
    case PROTOBUF_C_TYPE_BOOL:
        /* protobuf-c reads any non-zero varint as true and packs it as 1 */
        return wt == 0 && !gs_wire_varint_min(p, end, &v) && v == 1;
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        if (wt != 5 || end - *p < 4)
            return 0;
        v = gs_wire_le(*p, 4);
        *p += 4;
        /* -0.0f is zero to proto3's "leave out the default" */
        return v != 0 && !(f->type == PROTOBUF_C_TYPE_FLOAT && v == 0x80000000u);
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        if (wt != 1 || end - *p < 8)
            return 0;
        v = gs_wire_le(*p, 8);
        *p += 8;
        return v != 0 && !(f->type == PROTOBUF_C_TYPE_DOUBLE && v == (uint64_t) 1 << 63);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE: {
        if (wt != 2 || gs_wire_varint_min(p, end, &v) || v > (uint64_t) (end - *p))
            return 0;
        const uint8_t *at = *p;
        *p += v;
        *body = at;
        *body_len = (size_t) v;
        /* a message's body is the caller's to walk, and so is a string's
         * 0x00 (pack measures a string with strlen: one would cut it) */
        return v > 0 || f->type == PROTOBUF_C_TYPE_MESSAGE;
    }
    default:
        return 0;
    }
}

/* Drop the unknown fields (fields this schema does not know, which
 * protobuf-c keeps as opaque bytes and packs again) of m and of every
 * message inside it, at any depth: singular, oneof (the set member only)
 * and repeated message fields. Their memory is released with alloc (the
 * allocator m was unpacked with; NULL means protobuf-c's default,
 * malloc/free). Returns the number of unknown fields dropped. m may be
 * NULL. */
size_t gs_wire_strip_unknown(ProtobufCMessage *m, ProtobufCAllocator *alloc);

/* Bytes of one element of a repeated field's array in a protobuf-c
 * message struct (what quantifier_offset counts and fields[i].offset
 * points at), for code that walks messages by their descriptors. */
size_t gs_pb_elem_size(ProtobufCType type);

/* Is the singular field f, whose value p points at inside a protobuf-c
 * message struct, at its proto3 default (zero, empty or absent)? What the
 * JSON renderers leave out. */
int gs_pb_is_default(const ProtobufCFieldDescriptor *f, const void *p);

#endif

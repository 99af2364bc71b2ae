/*
 * gs_wire: see gs_wire.h.
 */
#include "gs_wire.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
gs_wbuf_init(gs_wbuf_t *b)
{
    memset(b, 0, sizeof *b);
}

void
gs_wbuf_deinit(gs_wbuf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void
gs_wbuf_reset(gs_wbuf_t *b)
{
    b->len = 0;
    b->failed = 0;
}

uint8_t *
gs_wbuf_reserve(gs_wbuf_t *b, size_t n)
{
    if (b->failed)
        return NULL;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                b->failed = 1;
                return NULL;
            }
            cap *= 2;
        }
        uint8_t *d = realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return NULL;
        }
        b->data = d;
        b->cap = cap;
    }
    return b->data + b->len;
}

void
gs_wbuf_put(gs_wbuf_t *b, const void *p, size_t n)
{
    uint8_t *d = gs_wbuf_reserve(b, n);
    if (!d)
        return;
    if (n)
        memcpy(d, p, n);
    b->len += n;
}

void
gs_wbuf_vprintf(gs_wbuf_t *b, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    /* room for vsnprintf's NUL too; len does not count it */
    uint8_t *d = n < 0 ? NULL : gs_wbuf_reserve(b, (size_t) n + 1);
    if (d) {
        vsnprintf((char *) d, (size_t) n + 1, fmt, again);
        b->len += (size_t) n;
    }
    va_end(again);
}

void
gs_wbuf_printf(gs_wbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gs_wbuf_vprintf(b, fmt, ap);
    va_end(ap);
}

size_t
gs_wire_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

void
gs_wbuf_varint(gs_wbuf_t *b, uint64_t v)
{
    uint8_t *d = gs_wbuf_reserve(b, 10);
    if (!d)
        return;
    b->len += gs_wire_varint_put(d, v);
}

size_t
gs_wire_varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t) (v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t) v;
    return n;
}

void
gs_wbuf_uint_field(gs_wbuf_t *b, uint32_t field, uint64_t v)
{
    if (v == 0)
        return;
    gs_wbuf_varint(b, (uint64_t) field << 3);
    gs_wbuf_varint(b, v);
}

void
gs_wbuf_bytes_field(gs_wbuf_t *b, uint32_t field, const void *p, size_t n,
                    int force)
{
    if (n == 0 && !force)
        return;
    gs_wbuf_varint(b, ((uint64_t) field << 3) | 2);
    gs_wbuf_varint(b, n);
    gs_wbuf_put(b, p, n);
}

void
gs_wbuf_message_field(gs_wbuf_t *b, uint32_t field, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    gs_wbuf_varint(b, ((uint64_t) field << 3) | 2);
    gs_wbuf_varint(b, n);
    uint8_t *d = gs_wbuf_reserve(b, n);
    if (!d)
        return;
    protobuf_c_message_pack(m, d);
    b->len += n;
}

int
gs_wire_varint_get_long(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    const uint8_t *q = *p;
    uint64_t r = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (q >= end)
            return -1;
        uint8_t c = *q++;
        r |= (uint64_t) (c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = r;
            *p = q;
            return 0;
        }
    }
    return -1; /* an 11th byte would be needed */
}

int
gs_wire_find_varint(const uint8_t *data, size_t len, uint32_t field,
                    uint64_t *value)
{
    const uint8_t *p = data, *end = data + len;
    int found = -1;
    while (p < end) {
        uint64_t tag, v;
        if (gs_wire_varint_get(&p, end, &tag))
            break;
        if ((tag & 7) == 0 && (tag >> 3) == field) {
            if (gs_wire_varint_get(&p, end, &v))
                break;
            *value = v;
            found = 0;
        } else if (gs_wire_skip(&p, end, (int) (tag & 7))) {
            break;
        }
    }
    return found;
}

long
gs_wire_spans(const uint8_t *data, size_t len, uint32_t field, const uint8_t **span_at,
              size_t *span_len, size_t max)
{
    const uint8_t *p = data, *end = data + len;
    long found = 0;
    while (p < end) {
        uint64_t tag, n;
        if (gs_wire_varint_get(&p, end, &tag))
            return -1;
        if ((tag & 7) == 2 && (tag >> 3) == field) {
            if (gs_wire_varint_get(&p, end, &n) || n > (uint64_t) (end - p))
                return -1;
            if ((size_t) found < max) {
                span_at[found] = p;
                span_len[found] = (size_t) n;
            }
            found++;
            p += n;
        } else if (gs_wire_skip(&p, end, (int) (tag & 7))) {
            return -1;
        }
    }
    return found;
}

#define S_CANON_DEPTH 32        /* nesting gs_wire_is_canonical follows */

static int
s_canonical(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end,
            int depth)
{
    if (depth > S_CANON_DEPTH)
        return 0;
    gs_wire_canon_t c;
    gs_wire_canon_init(&c);
    while (p < end) {
        uint64_t tag;
        if (gs_wire_varint_min(&p, end, &tag) || tag >> 3 == 0 || tag >> 3 > 0x1fffffff)
            return 0;
        uint32_t id = (uint32_t) (tag >> 3);
        /* pack writes the fields in descriptor order: look only from the
         * field met last (anything before it fails gs_wire_canon_field) */
        unsigned i = (unsigned) (c.last < 0 ? 0 : c.last);
        while (i < d->n_fields && d->fields[i].id != id)
            i++;
        if (i == d->n_fields || !gs_wire_canon_field(&c, d, &d->fields[i]))
            return 0;
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const uint8_t *body = NULL;
        size_t body_len = 0;
        if (!gs_wire_canon_value(f, (int) (tag & 7), &p, end, &body, &body_len))
            return 0;
        if (f->type == PROTOBUF_C_TYPE_MESSAGE &&
            !s_canonical(f->descriptor, body, body + body_len, depth + 1))
            return 0;
        /* pack measures a string with strlen: a 0x00 would cut it */
        if (f->type == PROTOBUF_C_TYPE_STRING && memchr(body, 0, body_len))
            return 0;
    }
    return 1;
}

int
gs_wire_is_canonical(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len)
{
    assert(desc);
    return s_canonical(desc, data, data + len, 1);
}

/* Release one block of an unpacked message as protobuf-c would. */
static void
s_release(ProtobufCAllocator *alloc, void *ptr)
{
    if (alloc)
        alloc->free(alloc->allocator_data, ptr);
    else
        free(ptr);
}

size_t
gs_wire_strip_unknown(ProtobufCMessage *m, ProtobufCAllocator *alloc)
{
    if (!m)
        return 0;
    size_t dropped = m->n_unknown_fields;
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        s_release(alloc, m->unknown_fields[i].data);
    if (m->unknown_fields)
        s_release(alloc, m->unknown_fields);
    m->unknown_fields = NULL;
    m->n_unknown_fields = 0;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned f = 0; f < d->n_fields; f++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[f];
        if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        /* members of a oneof share storage: only the set one is a message */
        if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *) ((const char *) m + fd->quantifier_offset) != fd->id)
            continue;
        void *member = (char *) m + fd->offset;
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *) ((const char *) m + fd->quantifier_offset);
            ProtobufCMessage **arr = *(ProtobufCMessage ***) member;
            for (size_t i = 0; arr && i < n; i++)
                dropped += gs_wire_strip_unknown(arr[i], alloc);
        } else {
            ProtobufCMessage *sub = *(ProtobufCMessage **) member;
            /* a default instance is shared, never one of this message's own */
            if (sub != fd->default_value)
                dropped += gs_wire_strip_unknown(sub, alloc);
        }
    }
    return dropped;
}

size_t
gs_pb_elem_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default:
        return 4;   /* the 32-bit integer types */
    }
}

int
gs_pb_is_default(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return *(const uint64_t *) p == 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *) p == 0;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *) p == 0;
    case PROTOBUF_C_TYPE_BOOL:
        return !*(const protobuf_c_boolean *) p;
    case PROTOBUF_C_TYPE_ENUM:
        return *(const int *) p == 0;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *) p;
        return !s || !*s;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *) p)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *) p == NULL;
    default:
        return *(const uint32_t *) p == 0;   /* the 32-bit integer types */
    }
}

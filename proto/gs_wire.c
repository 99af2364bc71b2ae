/*
 * gs_wire: see gs_wire.h.
 */
#include "gs_wire.h"

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
    size_t n = 0;
    while (v >= 0x80) {
        d[n++] = (uint8_t) (v | 0x80);
        v >>= 7;
    }
    d[n++] = (uint8_t) v;
    b->len += n;
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

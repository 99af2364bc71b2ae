/*
 * gs_store_lz: the body of a change log entry at rest, raw or LZ4
 * (contract and layout in gs_store_lz.h). LZ4 rather than zstd: see
 * docs/architecture.md ("Dependencies").
 */
#include "gs_store_lz.h"
#include "gs_store_int.h"

#include <assert.h>
#include <lz4.h>

/* The length varint of an LZ4 body: at most 4 bytes for GS_LZ_EVENT_MAX. */
#define S_LEN_MAX 5

size_t
gs_lz_encode(const uint8_t *ev, size_t len, uint8_t *dst)
{
    assert(ev && dst && len >= 1 && ev[0] != GS_LZ_TAG && len <= GS_LZ_EVENT_MAX);
    uint8_t hdr[1 + S_LEN_MAX];
    hdr[0] = GS_LZ_TAG;
    size_t hl = 1 + gs_wire_varint_put(hdr + 1, len);
    /* the block must leave the body shorter than the event: LZ4 gives up
     * (returns 0) when it cannot, and the raw form is kept */
    int n = 0;
    if (len > hl + 1) {
        /* One stream per thread, made ready with LZ4's fast reset: each
         * block stands alone (no dictionary, nothing of the previous
         * event), as LZ4_decompress_safe reads it, without clearing the
         * 16 KiB table per event as LZ4_compress_default does. */
        static _Thread_local LZ4_stream_t stream;
        static _Thread_local int stream_ready;
        if (!stream_ready) {
            LZ4_initStream(&stream, sizeof stream);
            stream_ready = 1;
        }
        LZ4_resetStream_fast(&stream);
        n = LZ4_compress_fast_continue(&stream, (const char *) ev, (char *) dst + hl, (int) len,
                                       (int) (len - hl - 1), 1);
    }
    if (n <= 0) {
        memcpy(dst, ev, len);
        return len;
    }
    memcpy(dst, hdr, hl);
    return hl + (size_t) n;
}

int
gs_lz_decode(const uint8_t *body, size_t blen, gs_wbuf_t *scratch, const uint8_t **ev,
             size_t *len)
{
    assert(body || blen == 0);
    assert(scratch && ev && len);
    if (blen == 0) {
        gs_store_detail("change log entry: no event after the header");
        return GS_ECORRUPT;
    }
    if (body[0] != GS_LZ_TAG) {
        *ev = body;
        *len = blen;
        return 0;
    }
    uint64_t want = 0;
    size_t i = 1;
    for (int shift = 0;; shift += 7) {
        if (i >= blen || i > S_LEN_MAX) {
            gs_store_detail("change log entry: LZ4 body without a valid length");
            return GS_ECORRUPT;
        }
        uint8_t b = body[i++];
        want |= (uint64_t) (b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    if (want == 0 || want > GS_LZ_EVENT_MAX) {
        gs_store_detail("change log entry: LZ4 body claims %llu bytes (1 to %u allowed)",
                        (unsigned long long) want, GS_LZ_EVENT_MAX);
        return GS_ECORRUPT;
    }
    gs_wbuf_reset(scratch);
    uint8_t *out = gs_wbuf_reserve(scratch, (size_t) want);
    if (!out)
        return GS_ENOMEM;
    /* the decoder's loads each depend on the last: ask for every cache
     * line of the block up front (a log scan reads cold pages) */
    for (size_t off = i; off < blen; off += 64)
        __builtin_prefetch(body + off);
    /* the safe decoder never reads past the block nor writes past want */
    int n = LZ4_decompress_safe((const char *) body + i, (char *) out, (int) (blen - i),
                                (int) want);
    if (n < 0 || (uint64_t) n != want) {
        gs_store_detail("change log entry: LZ4 block damaged (%s of %llu bytes)",
                        n < 0 ? "does not decode" : "decodes short",
                        (unsigned long long) want);
        return GS_ECORRUPT;
    }
    scratch->len = (size_t) n;
    *ev = out;
    *len = (size_t) n;
    return 0;
}

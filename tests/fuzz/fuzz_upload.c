/*
 * fuzz_upload: the broker frontend's decode and validate path on arbitrary
 * bytes. See gs_fuzz.h.
 *
 * What the frontend does with a request frame (gs_frontend.c,
 * s_handle_router): pre-scan it (gs_prescan), then unpack a gridsync.v1.Request into an arena sized from
 * the frame, then for an upload gs_upload_check and gs_record_check on
 * every record, normalising in place with the arena's allocator. This
 * target does the same and then checks what must hold for any input:
 *  - a verdict's reason is the return value, is named in the schema, and
 *    comes with a message exactly when it is not 0;
 *  - the message fits GS_MSG_MAX and is valid UTF-8 (it travels in a
 *    proto3 string, which other protobuf runtimes refuse to parse when it
 *    is not UTF-8);
 *  - a valid record has a kind, a 15-digit grid code and an id;
 *  - normalisation is a fixed point: a valid record, packed, unpacked and
 *    checked again, is still valid and packs to the same bytes (otherwise
 *    an unchanged re-upload would not compare equal in the store);
 *  - the pre-scan's record spans (gs_prescan_records, what the frontend
 *    runs) answer as gs_prescan does, name each record of an upload in
 *    order, judge each canonical exactly when gs_wire_is_canonical does,
 *    and a record judged canonical packs to its bytes (the frontend stores
 *    them as they came).
 */
#include "gs_fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gs_arena.h"
#include "gs_prescan.h"
#include "gs_validate.h"
#include "gs_wire.h"

static void
s_fail(const char *what, const gs_verdict_t *v)
{
    fprintf(stderr, "fuzz_upload: %s (reason %d %s, message \"%s\")\n", what, v->reason,
            gs_reason_name(v->reason), v->message);
    abort();
}

/* Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF). */
static int
s_utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *) s;
    while (*p) {
        unsigned c = *p;
        int n;
        unsigned cp, min;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += n + 1;
    }
    return 1;
}

/* What every verdict must look like, whatever the input. */
static void
s_verdict_sane(int rc, const gs_verdict_t *v)
{
    if (rc != v->reason)
        s_fail("return value differs from the verdict's reason", v);
    if (memchr(v->message, 0, sizeof v->message) == NULL)
        s_fail("verdict message not NUL-terminated", v);
    if ((rc == 0) != (v->message[0] == 0))
        s_fail("message present exactly when the reason is not 0", v);
    if (rc && strcmp(gs_reason_name(rc), "UNKNOWN") == 0)
        s_fail("reason not in the schema", v);
    if (!s_utf8_ok(v->message))
        s_fail("verdict message is not valid UTF-8", v);
}

/* A record that passed: it has what the store keys it by, and checking
 * its normal form again changes nothing. */
static void
s_valid_record(Gridsync__V1__Record *rec, gs_arena_t *arena, int64_t now)
{
    gs_verdict_t v;
    gs_verdict_clear(&v);
    const char *grid = gs_record_grid(rec), *id = gs_record_id(rec);
    if (gs_record_kind(rec) == 0 || !grid || strlen(grid) != GS_GRID_LEN || !id || !*id ||
        strlen(id) > GS_ID_MAX)
        s_fail("valid record without kind, grid code or id", &v);

    size_t n1 = gridsync__v1__record__get_packed_size(rec);
    uint8_t *b1 = gs_arena_alloc(arena, n1 + 1);
    if (!b1)
        return;
    gridsync__v1__record__pack(rec, b1);
    ProtobufCAllocator *alloc = gs_arena_allocator(arena);
    Gridsync__V1__Record *again = gridsync__v1__record__unpack(alloc, n1, b1);
    if (!again)
        s_fail("a valid record does not decode after packing", &v);
    int rc = gs_record_check(again, alloc, NULL, now, &v);
    s_verdict_sane(rc, &v);
    if (rc)
        s_fail("a valid record's normal form is not valid", &v);
    size_t n2 = gridsync__v1__record__get_packed_size(again);
    uint8_t *b2 = gs_arena_alloc(arena, n2 + 1);
    if (!b2)
        return;
    gridsync__v1__record__pack(again, b2);
    if (n1 != n2 || memcmp(b1, b2, n1) != 0)
        s_fail("normalisation is not a fixed point", &v);
}

int
gs_fuzz_upload(const uint8_t *data, size_t len)
{
    /* the broker's frontend pre-scans first and answers a refusal without
     * unpacking; its verdict must be as sane as any other */
    gs_verdict_t pv, rv;
    int prc = gs_prescan(&gridsync__v1__request__descriptor, data, len, &gs_limits_default,
                         NULL, &pv);
    s_verdict_sane(prc, &pv);
    static const uint8_t *at[1000];
    static size_t at_len[1000];
    static uint8_t canon[1000];
    gs_prescan_records_t recs = { at, at_len, canon, 1000, 0 };
    int rrc = gs_prescan_records(&gridsync__v1__request__descriptor, data, len,
                                 &gs_limits_default, NULL, &rv, &recs);
    if (rrc != prc || strcmp(rv.message, pv.message) != 0)
        s_fail("gs_prescan_records answers otherwise than gs_prescan", &rv);
    if (prc)
        return 0;
    /* the same sizing as the broker's frontend */
    gs_arena_t *arena = gs_arena_new(len * 4 + 4096);
    if (!arena)
        return 0;
    ProtobufCAllocator *alloc = gs_arena_allocator(arena);
    Gridsync__V1__Request *req = gridsync__v1__request__unpack(alloc, len, data);
    if (req && req->body_case == GRIDSYNC__V1__REQUEST__BODY_UPLOAD) {
        gs_verdict_t v;
        if (recs.n != req->upload->n_records)
            s_fail("the pre-scan's record spans do not match the upload's records", &rv);
        for (size_t i = 0; i < recs.n && i < recs.max; i++) {
            int want = gs_wire_is_canonical(&gridsync__v1__record__descriptor, at[i],
                                            at_len[i]);
            if (canon[i] != want)
                s_fail("the pre-scan's canonical verdict is not gs_wire_is_canonical's", &rv);
            if (!want)
                continue;
            Gridsync__V1__Record *rec = req->upload->records[i];
            size_t n = gridsync__v1__record__get_packed_size(rec);
            uint8_t *b = gs_arena_alloc(arena, n + 1);
            if (!b)
                continue;
            gridsync__v1__record__pack(rec, b);
            if (n != at_len[i] || memcmp(b, at[i], n) != 0)
                s_fail("a record judged canonical packs to other bytes", &rv);
        }
        int rc = gs_upload_check(req->upload, &gs_limits_default, &v);
        s_verdict_sane(rc, &v);
        int64_t now = gs_fuzz_now_ms();
        for (size_t i = 0; rc == 0 && i < req->upload->n_records; i++) {
            Gridsync__V1__Record *rec = req->upload->records[i];
            int r = gs_record_check(rec, alloc, &gs_limits_default, now, &v);
            s_verdict_sane(r, &v);
            if (r == 0)
                s_valid_record(rec, arena, now);
        }
    }
    gs_arena_destroy(&arena);
    return 0;
}

#ifdef GS_FUZZ_LIBFUZZER
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return gs_fuzz_upload(data, size);
}
#endif

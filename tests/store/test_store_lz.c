/*
 * test_store_lz: the change log body codec (store/gs_store_lz.h) alone. A
 * packed event that compresses comes back byte for byte from its LZ4 body;
 * one that does not is kept raw and read in place; an LZ4 body cut short,
 * with a wrong or oversized length, or with altered bytes is refused with
 * GS_ECORRUPT and a detail, never read outside its bounds (the sanitizer
 * build runs this test too).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <pthread.h>

#include "gs_store.h"
#include "gs_store_lz.h"

/* Bytes shaped like a packed ChangeEvent of a household: field 1's tag
 * first, then text that repeats as records do (grid codes, field tags,
 * addresses), n bytes in all. */
static uint8_t *
s_event(size_t n)
{
    uint8_t *p = malloc(n);
    assert_non_null(p);
    static const char text[] = "110105001001001 household Chaoyang Road 12 unit 3 member ";
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t) text[i % (sizeof text - 1)];
    p[0] = 0x08;
    if (n > 1)
        p[1] = 0x2a;
    return p;
}

/* Bytes that do not compress: field 1's tag, then a pseudo-random run. */
static uint8_t *
s_noise(size_t n)
{
    uint8_t *p = malloc(n);
    assert_non_null(p);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t) x;
    }
    p[0] = 0x08;
    return p;
}

/* Decode body and expect it to fail as damaged, with a detail. */
static void
s_refused(const uint8_t *body, size_t blen, gs_wbuf_t *scratch)
{
    /* a copy of exactly blen bytes, so the sanitizer sees any read past it */
    uint8_t *copy = malloc(blen ? blen : 1);
    assert_non_null(copy);
    if (blen)
        memcpy(copy, body, blen);
    const uint8_t *ev = NULL;
    size_t len = 0;
    assert_int_equal(gs_lz_decode(copy, blen, scratch, &ev, &len), GS_ECORRUPT);
    assert_non_null(strstr(gs_store_errdetail(), "change log entry"));
    free(copy);
}

static void
test_round_trip(void **state)
{
    (void) state;
    gs_wbuf_t scratch;
    gs_wbuf_init(&scratch);
    size_t sizes[] = { 200, 700, 5000, 300000 };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        uint8_t *ev = s_event(n), *body = malloc(n);
        assert_non_null(body);
        size_t blen = gs_lz_encode(ev, n, body);
        assert_true(blen < n);
        assert_int_equal(body[0], GS_LZ_TAG);
        const uint8_t *out = NULL;
        size_t len = 0;
        assert_int_equal(gs_lz_decode(body, blen, &scratch, &out, &len), 0);
        assert_true(len == n);
        assert_memory_equal(out, ev, n);
        assert_true(out == scratch.data);
        free(ev);
        free(body);
    }
    gs_wbuf_deinit(&scratch);
}

/* Each body stands alone: the encoder's per-thread stream keeps nothing of
 * the event before. The same event encoded again right after itself (from
 * another buffer), after another event, and on a thread that never encoded
 * before gives the same body, which decodes with no other input. A stream
 * that used the previous event as a dictionary would make the second body
 * a few bytes of references that decode to nothing alone. */
typedef struct s_enc {
    const uint8_t *ev;
    size_t n;
    uint8_t *body;
    size_t blen;
} s_enc_t;

static void *
s_encode_thread(void *arg)
{
    s_enc_t *e = arg;
    e->blen = gs_lz_encode(e->ev, e->n, e->body);
    return NULL;
}

static void
test_each_block_alone(void **state)
{
    (void) state;
    gs_wbuf_t scratch;
    gs_wbuf_init(&scratch);
    size_t n = 700;
    uint8_t *a = s_event(n), *again = malloc(n), *other = s_event(3000);
    uint8_t *b1 = malloc(n), *b2 = malloc(n), *b3 = malloc(n), *b4 = malloc(n),
            *bo = malloc(3000);
    assert_true(again && b1 && b2 && b3 && b4 && bo);
    for (size_t i = 5; i < 3000; i += 11)
        other[i] = (uint8_t) ('0' + i % 10);
    memcpy(again, a, n);
    size_t l1 = gs_lz_encode(a, n, b1);
    size_t l2 = gs_lz_encode(again, n, b2);
    assert_int_equal(gs_lz_encode(other, 3000, bo) < 3000, 1);
    size_t l3 = gs_lz_encode(a, n, b3);
    s_enc_t t = { .ev = again, .n = n, .body = b4 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_encode_thread, &t), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(b1[0], GS_LZ_TAG);
    assert_true(l2 == l1 && l3 == l1 && t.blen == l1);
    assert_memory_equal(b2, b1, l1);
    assert_memory_equal(b3, b1, l1);
    assert_memory_equal(b4, b1, l1);
    const uint8_t *out = NULL;
    size_t len = 0;
    assert_int_equal(gs_lz_decode(b2, l2, &scratch, &out, &len), 0);
    assert_true(len == n);
    assert_memory_equal(out, a, n);
    free(a);
    free(again);
    free(other);
    free(b1);
    free(b2);
    free(b3);
    free(b4);
    free(bo);
    gs_wbuf_deinit(&scratch);
}

static void
test_raw_in_place(void **state)
{
    (void) state;
    gs_wbuf_t scratch;
    gs_wbuf_init(&scratch);
    /* incompressible and tiny events are kept as they are, read in place */
    size_t sizes[] = { 1, 2, 3, 10, 700 };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        uint8_t *ev = s_noise(n), *body = malloc(n);
        assert_non_null(body);
        size_t blen = gs_lz_encode(ev, n, body);
        assert_true(blen == n);
        assert_memory_equal(body, ev, n);
        const uint8_t *out = NULL;
        size_t len = 0;
        assert_int_equal(gs_lz_decode(body, blen, &scratch, &out, &len), 0);
        assert_true(out == body && len == n);
        free(ev);
        free(body);
    }
    /* an empty body is no event */
    s_refused(NULL, 0, &scratch);
    gs_wbuf_deinit(&scratch);
}

static void
test_truncated(void **state)
{
    (void) state;
    gs_wbuf_t scratch;
    gs_wbuf_init(&scratch);
    size_t n = 700;
    uint8_t *ev = s_event(n), *body = malloc(n);
    assert_non_null(body);
    size_t blen = gs_lz_encode(ev, n, body);
    assert_int_equal(body[0], GS_LZ_TAG);
    /* every shorter prefix: the tag alone, a cut length, a cut block */
    for (size_t cut = 1; cut < blen; cut++)
        s_refused(body, cut, &scratch);
    free(ev);
    free(body);
    gs_wbuf_deinit(&scratch);
}

static void
test_bad_length(void **state)
{
    (void) state;
    gs_wbuf_t scratch;
    gs_wbuf_init(&scratch);
    size_t n = 700;
    uint8_t *ev = s_event(n), *body = malloc(n + 16);
    assert_non_null(body);
    size_t blen = gs_lz_encode(ev, n, body);
    /* the length is 700: two varint bytes, 0xbc 0x05 */
    assert_true(body[1] == 0xbc && body[2] == 0x05);
    body[1] = 0xbd;                     /* claims 701 */
    s_refused(body, blen, &scratch);
    body[1] = 0xbb;                     /* claims 699 */
    s_refused(body, blen, &scratch);
    body[1] = 0x80;                     /* claims 640 */
    s_refused(body, blen, &scratch);
    /* over GS_LZ_EVENT_MAX, never allocated */
    uint8_t huge[] = { GS_LZ_TAG, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x00 };
    s_refused(huge, sizeof huge, &scratch);
    assert_non_null(strstr(gs_store_errdetail(), "claims"));
    /* zero, and a varint that never ends */
    uint8_t zero[] = { GS_LZ_TAG, 0x00, 0x10, 0x08 };
    s_refused(zero, sizeof zero, &scratch);
    uint8_t endless[] = { GS_LZ_TAG, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
    s_refused(endless, sizeof endless, &scratch);
    free(ev);
    free(body);
    gs_wbuf_deinit(&scratch);
}

static void
test_altered(void **state)
{
    (void) state;
    gs_wbuf_t scratch;
    gs_wbuf_init(&scratch);
    size_t n = 700;
    uint8_t *ev = s_event(n), *body = malloc(n);
    assert_non_null(body);
    size_t blen = gs_lz_encode(ev, n, body);
    /* every byte of the block flipped in turn: LZ4 blocks carry no
     * checksum, so a flipped literal may decode to other bytes of the same
     * length; anything else is refused. Never a crash, never a length
     * other than the one claimed. */
    size_t refused = 0;
    for (size_t i = 3; i < blen; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            uint8_t *copy = malloc(blen);
            assert_non_null(copy);
            memcpy(copy, body, blen);
            copy[i] ^= (uint8_t) (1u << bit);
            const uint8_t *out = NULL;
            size_t len = 0;
            int rc = gs_lz_decode(copy, blen, &scratch, &out, &len);
            assert_true(rc == 0 || rc == GS_ECORRUPT);
            if (rc == 0)
                assert_true(len == n);
            else
                refused++;
            free(copy);
        }
    }
    assert_true(refused > 0);
    free(ev);
    free(body);
    gs_wbuf_deinit(&scratch);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_each_block_alone),
        cmocka_unit_test(test_raw_in_place),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bad_length),
        cmocka_unit_test(test_altered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

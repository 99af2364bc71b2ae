/*
 * test_store_idem: the idempotency table (store/gs_store_idem.h) on a real
 * LMDB store: an answer remembered and found again with its counts, absence,
 * the expiry queue numbered across transactions, expiry by count and by
 * age, and the layout verify checks. White-box: it drives gs_idem_* inside
 * write transactions of its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gs_store_debug.h"
#include "gs_store_idem.h"
#include "gs_store_int.h"
#include "st_lib.h"

typedef struct {
    const char *upload;             /* upload id to remember (NULL: none) */
    int64_t now;                    /* its time */
    uint64_t max_entries;           /* expiry bounds for this transaction */
    int64_t max_age;
} s_step_t;

static int
s_step(gs_txn_t *t, void *arg)
{
    const s_step_t *s = arg;
    gs_idem_t idem;
    gs_idem_init(&idem);
    int rc = gs_idem_begin(&idem, t);
    if (rc == 0 && s->upload) {
        uint32_t counts[GS_IDEM_COUNTS] = { 0, 3, 1, 0, 0, 2 };
        char ack[32];
        snprintf(ack, sizeof ack, "ack of %s", s->upload);
        rc = gs_idem_put(&idem, "dev-1", s->upload, s->now, counts, (const uint8_t *) ack,
                         strlen(ack));
    }
    if (rc == 0)
        rc = gs_idem_expire(&idem, s->now, s->max_entries, s->max_age);
    if (rc == 0)
        rc = gs_idem_flush(&idem);
    gs_idem_deinit(&idem);
    return rc;
}

typedef struct {
    const char *upload;             /* looked up */
    int rc;                         /* gs_idem_get's answer */
    gs_idem_entry_t e;              /* copied out */
    char ack[32];
} s_look_t;

static int
s_look(gs_txn_t *t, void *arg)
{
    s_look_t *l = arg;
    gs_idem_t idem;
    gs_idem_init(&idem);
    gs_wbuf_t b;
    gs_wbuf_init(&b);
    int rc = gs_idem_begin(&idem, t);
    if (rc == 0) {
        l->rc = gs_idem_get(&idem, "dev-1", l->upload, &l->e, &b);
        if (l->rc == 0) {
            assert_true(l->e.ack_len == b.len && l->e.ack_len < sizeof l->ack);
            memcpy(l->ack, b.data, l->e.ack_len);
            l->ack[l->e.ack_len] = 0;
        } else {
            assert_int_equal(b.len, 0);
        }
    }
    gs_wbuf_deinit(&b);
    gs_idem_deinit(&idem);
    return rc;
}

static int
s_lookup(gs_store_t *st, const char *upload, s_look_t *l)
{
    memset(l, 0, sizeof *l);
    l->upload = upload;
    assert_int_equal(gs_store_write(st, s_look, l), 0);
    return l->rc;
}

static uint64_t
s_fifo_next(gs_store_t *st)
{
    uint8_t b[8];
    size_t n = 0;
    if (gs_store_debug_get(st, "meta", "idem_fifo_next", 14, b, sizeof b, &n))
        return 0;
    assert_int_equal(n, 8);
    return gs_le64_get(b);
}

static void
test_remember_and_expire(void **state)
{
    (void) state;
    char *dir = st_tmpdir();
    gs_store_t *st = st_open(dir, NULL);
    const uint64_t many = 1000;
    const int64_t long_ago = 1000000;
    s_look_t l;

    assert_int_equal(s_lookup(st, "up-1", &l), GS_ENOTFOUND);
    s_step_t s1 = { "up-1", ST_NOW_MS, many, long_ago };
    assert_int_equal(gs_store_write(st, s_step, &s1), 0);
    assert_int_equal(s_lookup(st, "up-1", &l), 0);
    assert_string_equal(l.ack, "ack of up-1");
    assert_int_equal(l.e.counts[1], 3);
    assert_int_equal(l.e.counts[2], 1);
    assert_int_equal(l.e.counts[5], 2);
    assert_int_equal(s_fifo_next(st), 2);   /* numbered from 1 */

    s_step_t s2 = { "up-2", ST_NOW_MS + 10, many, long_ago };
    s_step_t s3 = { "up-3", ST_NOW_MS + 20, many, long_ago };
    assert_int_equal(gs_store_write(st, s_step, &s2), 0);
    assert_int_equal(gs_store_write(st, s_step, &s3), 0);
    assert_int_equal(s_fifo_next(st), 4);
    st_verify_ok(st);

    /* by count: at most two kept, the oldest goes */
    s_step_t by_count = { NULL, ST_NOW_MS + 30, 2, long_ago };
    assert_int_equal(gs_store_write(st, s_step, &by_count), 0);
    assert_int_equal(s_lookup(st, "up-1", &l), GS_ENOTFOUND);
    assert_int_equal(s_lookup(st, "up-2", &l), 0);
    assert_int_equal(s_lookup(st, "up-3", &l), 0);

    /* by age: older than 15 ms at now + 35 */
    s_step_t by_age = { NULL, ST_NOW_MS + 35, many, 15 };
    assert_int_equal(gs_store_write(st, s_step, &by_age), 0);
    assert_int_equal(s_lookup(st, "up-2", &l), GS_ENOTFOUND);
    assert_int_equal(s_lookup(st, "up-3", &l), 0);
    assert_string_equal(l.ack, "ack of up-3");
    assert_int_equal(s_fifo_next(st), 4);   /* numbers are never reused */
    st_verify_ok(st);

    gs_store_destroy(&st);
    st_rmdir(dir);
    free(dir);
}

/* A damaged entry is a storage error, never an answer. */
static void
test_damaged(void **state)
{
    (void) state;
    char *dir = st_tmpdir();
    gs_store_t *st = st_open(dir, NULL);
    assert_int_equal(gs_store_debug_put(st, "idem", "dev-1\0up-x", 10, "short", 5), 0);
    s_look_t l;
    memset(&l, 0, sizeof l);
    l.upload = "up-x";
    assert_int_equal(gs_store_write(st, s_look, &l), GS_ECORRUPT);
    assert_int_equal(l.rc, GS_ECORRUPT);
    gs_store_destroy(&st);
    st_rmdir(dir);
    free(dir);
}

/* ---- Compact answers -------------------------------------------------------------------- */

typedef struct {
    const char *upload;             /* its upload id */
    const uint8_t *ack;             /* bytes to remember */
    size_t len;
    gs_wbuf_t got;                  /* what the lookup gave back */
    int rc;                         /* gs_idem_get's answer */
} s_raw_t;

static int
s_put_raw(gs_txn_t *t, void *arg)
{
    s_raw_t *r = arg;
    gs_idem_t idem;
    gs_idem_init(&idem);
    uint32_t counts[GS_IDEM_COUNTS] = { 0 };
    int rc = gs_idem_begin(&idem, t);
    if (rc == 0)
        rc = gs_idem_put(&idem, "dev-1", r->upload, ST_NOW_MS, counts, r->ack, r->len);
    if (rc == 0)
        rc = gs_idem_flush(&idem);
    gs_idem_deinit(&idem);
    return rc;
}

static int
s_get_raw(gs_txn_t *t, void *arg)
{
    s_raw_t *r = arg;
    gs_idem_t idem;
    gs_idem_init(&idem);
    gs_idem_entry_t e;
    int rc = gs_idem_begin(&idem, t);
    if (rc == 0) {
        r->rc = gs_idem_get(&idem, "dev-1", r->upload, &e, &r->got);
        if (r->rc == 0)
            assert_int_equal(e.ack_len, r->got.len);
    }
    gs_idem_deinit(&idem);
    return rc;
}

/* Remember ack under upload, read it back: the same bytes; returns the
 * size of the stored value. */
static size_t
s_round_trip(gs_store_t *st, const char *upload, const uint8_t *ack, size_t len)
{
    s_raw_t r = { upload, ack, len, { 0 }, 0 };
    gs_wbuf_init(&r.got);
    assert_int_equal(gs_store_write(st, s_put_raw, &r), 0);
    assert_int_equal(gs_store_write(st, s_get_raw, &r), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.got.len, len);
    if (len)
        assert_memory_equal(r.got.data, ack, len);
    gs_wbuf_deinit(&r.got);
    char key[64];
    int kl = snprintf(key, sizeof key, "dev-1%c%s", 0, upload);
    uint8_t v[8];
    size_t vl = 0;
    assert_int_equal(gs_store_debug_get(st, "idem", key, (size_t) kl, v, sizeof v, &vl), 0);
    return vl;
}

/* Pack an Ack of n results into a malloc'd buffer. */
static uint8_t *
s_pack_ack(Gridsync__V1__Ack *ack, size_t *len)
{
    *len = gridsync__v1__ack__get_packed_size(ack);
    uint8_t *b = malloc(*len + 1);
    assert_non_null(b);
    gridsync__v1__ack__pack(ack, b);
    return b;
}

/* Every Ack comes back byte for byte, and the usual one (keys sharing a
 * prefix, consecutive seqs) is kept in well under half its size. */
static void
test_compact_answers(void **state)
{
    (void) state;
    char *dir = st_tmpdir();
    gs_store_t *st = st_open(dir, NULL);
    enum { N = 50 };
    Gridsync__V1__RecordResult res[N], *resp[N];
    char keys[N][32];
    for (int i = 0; i < N; i++) {
        Gridsync__V1__RecordResult init = GRIDSYNC__V1__RECORD_RESULT__INIT;
        res[i] = init;
        res[i].index = (uint32_t) i;
        res[i].status = GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED;
        res[i].version = 1;
        res[i].seq = 1234567 + (uint64_t) i;
        snprintf(keys[i], sizeof keys[i], "H44030500100100%04d", i);
        res[i].record_key = keys[i];
        resp[i] = &res[i];
    }
    Gridsync__V1__Ack ack = GRIDSYNC__V1__ACK__INIT;
    ack.upload_id = "up-c1";
    ack.n_results = N;
    ack.results = resp;
    size_t len;
    uint8_t *b = s_pack_ack(&ack, &len);
    size_t vl = s_round_trip(st, "up-c1", b, len);
    assert_true(vl - GS_IDEM_HDR - 1 < len / 3);
    free(b);

    /* a mixed one: a rejection with its message, a merge into another key,
     * a conflict, an index out of order, seqs going back and a jump */
    res[3].status = GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_REJECTED;
    res[3].reason = GRIDSYNC__V1__REASON__REASON_MALFORMED;
    res[3].message = "member 2: ID check character should be X";
    res[3].version = 0;
    res[3].seq = 0;
    res[3].record_key = "";
    res[7].status = GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_MERGED;
    res[7].record_key = "H-OTHER-1";
    res[9].status = GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_CONFLICT;
    res[9].version = 300;
    res[10].index = 40;
    res[11].seq = 5;
    res[12].seq = 1ULL << 40;
    b = s_pack_ack(&ack, &len);
    s_round_trip(st, "up-c2", b, len);
    free(b);

    /* an upload refused whole: no results, a reason and a message */
    Gridsync__V1__Ack err = GRIDSYNC__V1__ACK__INIT;
    err.upload_id = "up-c3";
    err.reason = GRIDSYNC__V1__REASON__REASON_BAD_REQUEST;
    err.message = "upload has no records";
    b = s_pack_ack(&err, &len);
    s_round_trip(st, "up-c3", b, len);
    free(b);

    /* an Ack naming another upload is kept as it is */
    ack.upload_id = "up-else";
    b = s_pack_ack(&ack, &len);
    assert_int_equal(s_round_trip(st, "up-c4", b, len), GS_IDEM_HDR + 1 + len);
    free(b);
    st_verify_ok(st);

    /* a compact entry whose bytes run short is a storage error */
    char key[16];
    int kl = snprintf(key, sizeof key, "dev-1%cup-c1", 0);
    uint8_t v[GS_IDEM_HDR + 4];
    size_t got;
    assert_int_equal(gs_store_debug_get(st, "idem", key, (size_t) kl, v, sizeof v, &got), 0);
    v[GS_IDEM_HDR + 2] = 0x7f;          /* many results, none there */
    assert_int_equal(gs_store_debug_put(st, "idem", key, (size_t) kl, v, GS_IDEM_HDR + 3), 0);
    s_raw_t r = { "up-c1", NULL, 0, { 0 }, 0 };
    gs_wbuf_init(&r.got);
    assert_int_equal(gs_store_write(st, s_get_raw, &r), GS_ECORRUPT);
    assert_int_equal(r.got.len, 0);
    gs_wbuf_deinit(&r.got);
    gs_store_destroy(&st);
    st_rmdir(dir);
    free(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remember_and_expire),
        cmocka_unit_test(test_damaged),
        cmocka_unit_test(test_compact_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

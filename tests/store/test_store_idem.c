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
    int rc = gs_idem_begin(&idem, t);
    if (rc)
        return rc;
    if (s->upload) {
        uint32_t counts[GS_IDEM_COUNTS] = { 0, 3, 1, 0, 0, 2 };
        char ack[32];
        snprintf(ack, sizeof ack, "ack of %s", s->upload);
        if ((rc = gs_idem_put(&idem, "dev-1", s->upload, s->now, counts,
                              (const uint8_t *) ack, strlen(ack))))
            return rc;
    }
    if ((rc = gs_idem_expire(&idem, s->now, s->max_entries, s->max_age)))
        return rc;
    return gs_idem_flush(&idem);
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
    int rc = gs_idem_begin(&idem, t);
    if (rc)
        return rc;
    l->rc = gs_idem_get(&idem, "dev-1", l->upload, &l->e);
    if (l->rc == 0) {
        assert_true(l->e.ack_len < sizeof l->ack);
        memcpy(l->ack, l->e.ack, l->e.ack_len);
        l->ack[l->e.ack_len] = 0;
    }
    return 0;
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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remember_and_expire),
        cmocka_unit_test(test_damaged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_store_dedup: the dedup classifier (store/gs_store_dedup.h) without
 * LMDB. One case per row of the dedup table in docs/store.md ("Dedup and
 * versions"), in the table's order, with every fact given; then the order
 * in which the classifier asks for the facts that cost a lookup, so that a
 * record is never looked up further than its verdict needs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "gs_store_dedup.h"

#define ACCEPTED GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED
#define UNCHANGED GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_UNCHANGED
#define MERGED GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_MERGED
#define CONFLICT GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_CONFLICT
#define REJECTED GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_REJECTED

static const char *G = "110105001001001";
static const char *G2 = "110105001002001";
static gs_verdict_t s_valid;

/* A valid, in-scope record with every costly fact known: the grid is
 * open, nothing is stored under the id or the natural key. */
static gs_dedup_facts_t
s_facts(void)
{
    gs_dedup_facts_t f;
    memset(&f, 0, sizeof f);
    f.have = GS_DF_REGISTRY | GS_DF_RECORD | GS_DF_CONTENT | GS_DF_NATKEY_OWNER;
    f.verdict = &s_valid;
    f.id = "hh-new";
    f.grid = G;
    f.scope_ok = 1;
    f.has_natkey = 1;
    return f;
}

/* The id is known: stored at version 3 in G under canon hh-1. */
static gs_dedup_facts_t
s_known(void)
{
    gs_dedup_facts_t f = s_facts();
    f.id = "hh-1";
    f.found = 1;
    f.canon = "hh-1";
    f.stored_grid = G;
    f.version = 3;
    f.old_scope_ok = 1;
    return f;
}

/* The id is unknown; its natural key leads to hh-1 at version 3. */
static gs_dedup_facts_t
s_by_natkey(void)
{
    gs_dedup_facts_t f = s_known();
    f.id = "hh-new";
    f.merged = 1;
    return f;
}

static gs_dedup_t
s_run(const gs_dedup_facts_t *f)
{
    gs_dedup_t d;
    gs_dedup_classify(f, &d);
    return d;
}

static void
s_nothing_stored(const gs_dedup_t *d)
{
    assert_true(d->action == GS_DEDUP_REJECT || d->action == GS_DEDUP_CONFLICT ||
                d->action == GS_DEDUP_KEEP);
}

/* ---- The rows of the table ------------------------------------------------------ */

static void
test_row_check_fails(void **state)
{
    (void) state;
    gs_verdict_t bad;
    gs_verdict_set(&bad, GRIDSYNC__V1__REASON__REASON_ID_CHECK, "member 1: bad check digit");
    gs_dedup_facts_t f = s_facts();
    f.verdict = &bad;
    f.have = 0;     /* nothing looked up */
    gs_dedup_t d = s_run(&f);
    assert_int_equal(d.action, GS_DEDUP_REJECT);
    assert_int_equal(d.status, REJECTED);
    assert_int_equal(d.reason, GRIDSYNC__V1__REASON__REASON_ID_CHECK);
    assert_string_equal(d.message, "member 1: bad check digit");
    assert_string_equal(d.key, "hh-new");
    /* a record without an id is answered without a key */
    f.id = NULL;
    d = s_run(&f);
    assert_null(d.key);
}

static void
test_row_out_of_scope(void **state)
{
    (void) state;
    gs_dedup_facts_t f = s_facts();
    f.scope_ok = 0;
    f.have = 0;
    gs_dedup_t d = s_run(&f);
    assert_int_equal(d.action, GS_DEDUP_REJECT);
    assert_int_equal(d.reason, GRIDSYNC__V1__REASON__REASON_OUT_OF_SCOPE);
    assert_non_null(strstr(d.message, G));

    /* or it moves from a grid outside them */
    f = s_known();
    f.grid = G2;
    f.old_scope_ok = 0;
    d = s_run(&f);
    assert_int_equal(d.action, GS_DEDUP_REJECT);
    assert_int_equal(d.reason, GRIDSYNC__V1__REASON__REASON_OUT_OF_SCOPE);
    assert_string_equal(d.key, "hh-1");
    assert_string_equal(d.message,
                        "record hh-1 is in grid 110105001001001, outside this device's "
                        "assignment");
    /* a move inside the scope is an ordinary update */
    f.old_scope_ok = 1;
    f.base = 3;
    assert_int_equal(s_run(&f).action, GS_DEDUP_UPDATE);
}

static void
test_row_grid_unknown(void **state)
{
    (void) state;
    gs_dedup_facts_t f = s_facts();
    f.grid_reason = GRIDSYNC__V1__REASON__REASON_GRID_UNKNOWN;
    f.grid_message = "grid 110105001001001 was retired on 2026-01-01";
    gs_dedup_t d = s_run(&f);
    assert_int_equal(d.action, GS_DEDUP_REJECT);
    assert_int_equal(d.reason, GRIDSYNC__V1__REASON__REASON_GRID_UNKNOWN);
    assert_string_equal(d.message, f.grid_message);
}

static void
test_row_known_same(void **state)
{
    (void) state;
    gs_dedup_facts_t f = s_known();
    f.same = 1;
    for (uint64_t base = 0; base <= 5; base++) {    /* base does not matter */
        f.base = base;
        gs_dedup_t d = s_run(&f);
        assert_int_equal(d.action, GS_DEDUP_KEEP);
        assert_int_equal(d.status, UNCHANGED);
        assert_int_equal(d.version, 3);
        assert_false(d.alias);
        assert_string_equal(d.key, "hh-1");
        assert_string_equal(d.message, "");
    }
}

static void
test_row_known_update(void **state)
{
    (void) state;
    gs_dedup_facts_t f = s_known();
    f.base = 3;
    gs_dedup_t d = s_run(&f);
    assert_int_equal(d.action, GS_DEDUP_UPDATE);
    assert_int_equal(d.status, ACCEPTED);
    assert_false(d.alias);
    assert_string_equal(d.key, "hh-1");
    /* known through an alias: stored under the canonical id */
    f.id = "hh-old-alias";
    d = s_run(&f);
    assert_int_equal(d.action, GS_DEDUP_UPDATE);
    assert_string_equal(d.key, "hh-1");
    assert_false(d.alias);
}

static void
test_row_known_conflict(void **state)
{
    (void) state;
    gs_dedup_facts_t f = s_known();
    for (uint64_t base = 0; base < 3; base++) {
        f.base = base;
        gs_dedup_t d = s_run(&f);
        assert_int_equal(d.action, GS_DEDUP_CONFLICT);
        assert_int_equal(d.status, CONFLICT);
        assert_int_equal(d.reason, 0);
        assert_int_equal(d.version, 3);
        assert_non_null(strstr(d.message, "re-base on the current version"));
        s_nothing_stored(&d);
    }
}

static void
test_row_known_ahead(void **state)
{
    (void) state;
    gs_dedup_facts_t f = s_known();
    f.base = 4;
    gs_dedup_t d = s_run(&f);
    assert_int_equal(d.action, GS_DEDUP_REJECT);
    assert_int_equal(d.reason, GRIDSYNC__V1__REASON__REASON_VERSION_AHEAD);
    assert_string_equal(d.message, "base_version 4 is newer than the stored version 3");
    assert_string_equal(d.key, "hh-1");
}

static void
test_row_known_address_taken(void **state)
{
    (void) state;
    gs_dedup_facts_t f = s_known();
    f.base = 3;
    f.natkey_owner = "hh-9";
    gs_dedup_t d = s_run(&f);
    assert_int_equal(d.action, GS_DEDUP_REJECT);
    assert_int_equal(d.reason, GRIDSYNC__V1__REASON__REASON_ADDRESS);
    assert_string_equal(d.message, "this address already belongs to record hh-9");
    /* the version check comes first */
    f.base = 2;
    assert_int_equal(s_run(&f).action, GS_DEDUP_CONFLICT);
    /* same content never looks at the natural key */
    f.base = 3;
    f.same = 1;
    assert_int_equal(s_run(&f).action, GS_DEDUP_KEEP);
}

static void
test_row_merge_same(void **state)
{
    (void) state;
    gs_dedup_facts_t f = s_by_natkey();
    f.same = 1;
    gs_dedup_t d = s_run(&f);
    assert_int_equal(d.action, GS_DEDUP_KEEP);
    assert_int_equal(d.status, MERGED);
    assert_int_equal(d.version, 3);
    assert_string_equal(d.key, "hh-1");
    assert_true(d.alias);
}

static void
test_row_merge_update(void **state)
{
    (void) state;
    gs_dedup_facts_t f = s_by_natkey();
    f.base = 3;
    f.natkey_owner = "hh-1";    /* a merge never checks its own key's owner */
    gs_dedup_t d = s_run(&f);
    assert_int_equal(d.action, GS_DEDUP_UPDATE);
    assert_int_equal(d.status, MERGED);
    assert_string_equal(d.key, "hh-1");
    assert_true(d.alias);
}

static void
test_row_merge_conflict(void **state)
{
    (void) state;
    gs_dedup_facts_t f = s_by_natkey();
    f.base = 0;     /* a new record on an occupied address */
    gs_dedup_t d = s_run(&f);
    assert_int_equal(d.action, GS_DEDUP_CONFLICT);
    assert_int_equal(d.status, CONFLICT);
    assert_int_equal(d.version, 3);
    assert_string_equal(d.key, "hh-1");
    assert_false(d.alias);      /* no alias either */
    assert_string_equal(d.message,
                        "this place already has record hh-1 (version 3) with other content: "
                        "re-base the edit on that record");
}

static void
test_row_merge_ahead(void **state)
{
    (void) state;
    gs_dedup_facts_t f = s_by_natkey();
    f.base = 7;
    gs_dedup_t d = s_run(&f);
    assert_int_equal(d.action, GS_DEDUP_REJECT);
    assert_int_equal(d.reason, GRIDSYNC__V1__REASON__REASON_VERSION_AHEAD);
    assert_false(d.alias);
}

static void
test_row_unknown_with_base(void **state)
{
    (void) state;
    gs_dedup_facts_t f = s_facts();
    f.base = 2;
    gs_dedup_t d = s_run(&f);
    assert_int_equal(d.action, GS_DEDUP_REJECT);
    assert_int_equal(d.reason, GRIDSYNC__V1__REASON__REASON_UNKNOWN_RECORD);
    assert_string_equal(d.key, "hh-new");
    assert_string_equal(d.message,
                        "record hh-new is not stored, so base_version 2 cannot apply; send "
                        "base_version 0 for a new record");
}

static void
test_row_new(void **state)
{
    (void) state;
    gs_dedup_facts_t f = s_facts();
    gs_dedup_t d = s_run(&f);
    assert_int_equal(d.action, GS_DEDUP_NEW);
    assert_int_equal(d.status, ACCEPTED);
    assert_string_equal(d.key, "hh-new");
    assert_false(d.alias);
    assert_int_equal(d.version, 0);     /* the write sets version 1 */
}

/* The organisation rows: the natural key carries the USCC (or a stall's
 * folded name) with the place, so the rows above apply unchanged. The
 * same USCC at the same address finds the record that holds the key and
 * merges; at another address the key is another one, nothing is found,
 * and the record is new, never merged (the duplicate report shows both). */
static void
test_rows_organisation(void **state)
{
    (void) state;
    gs_dedup_facts_t f = s_by_natkey();
    f.id = "org-new";
    f.same = 1;
    gs_dedup_t d = s_run(&f);
    assert_int_equal(d.action, GS_DEDUP_KEEP);
    assert_int_equal(d.status, MERGED);
    assert_true(d.alias);
    assert_string_equal(d.key, "hh-1");

    f = s_facts();
    f.id = "org-branch";
    d = s_run(&f);
    assert_int_equal(d.action, GS_DEDUP_NEW);
    assert_int_equal(d.status, ACCEPTED);
    assert_false(d.alias);
    assert_string_equal(d.key, "org-branch");
}

/* ---- The order of the lookups ------------------------------------------------------ */

/* Run the classifier as the write path does, answering each NEED from the
 * complete facts in full; returns the sequence of facts asked for. */
static unsigned
s_asks(const gs_dedup_facts_t *full, unsigned order[4], size_t *n, gs_dedup_t *out)
{
    gs_dedup_facts_t f = *full;
    f.have = 0;
    *n = 0;
    unsigned all = 0;
    for (;;) {
        gs_dedup_classify(&f, out);
        if (out->action != GS_DEDUP_NEED)
            break;
        assert_false(f.have & out->need);       /* never asked twice */
        assert_true(*n < 4);
        order[(*n)++] = out->need;
        all |= out->need;
        f.have |= out->need;
    }
    return all;
}

static void
test_lookup_order(void **state)
{
    (void) state;
    unsigned order[4];
    size_t n;
    gs_dedup_t d, direct;

    /* an update that changes content: every fact, in the table's order */
    gs_dedup_facts_t f = s_known();
    f.base = 3;
    s_asks(&f, order, &n, &d);
    assert_int_equal(n, 4);
    assert_int_equal(order[0], GS_DF_REGISTRY);
    assert_int_equal(order[1], GS_DF_RECORD);
    assert_int_equal(order[2], GS_DF_CONTENT);
    assert_int_equal(order[3], GS_DF_NATKEY_OWNER);
    direct = s_run(&f);
    assert_int_equal(d.action, direct.action);

    /* a new record: no content comparison, no owner */
    f = s_facts();
    assert_int_equal(s_asks(&f, order, &n, &d), GS_DF_REGISTRY | GS_DF_RECORD);
    assert_int_equal(d.action, GS_DEDUP_NEW);

    /* unchanged: no owner lookup */
    f = s_known();
    f.same = 1;
    assert_int_equal(s_asks(&f, order, &n, &d),
                     GS_DF_REGISTRY | GS_DF_RECORD | GS_DF_CONTENT);
    /* a merge, or a record without a natural key: no owner lookup */
    f = s_by_natkey();
    f.base = 3;
    assert_false(s_asks(&f, order, &n, &d) & GS_DF_NATKEY_OWNER);
    f = s_known();
    f.base = 3;
    f.has_natkey = 0;
    assert_false(s_asks(&f, order, &n, &d) & GS_DF_NATKEY_OWNER);
    assert_int_equal(d.action, GS_DEDUP_UPDATE);
    /* a conflict: no owner lookup */
    f = s_known();
    f.base = 1;
    assert_false(s_asks(&f, order, &n, &d) & GS_DF_NATKEY_OWNER);
    /* the registry refuses: the indexes are never read */
    f = s_facts();
    f.grid_reason = GRIDSYNC__V1__REASON__REASON_GRID_UNKNOWN;
    f.grid_message = "no";
    assert_int_equal(s_asks(&f, order, &n, &d), GS_DF_REGISTRY);
    /* a move from outside the scope: refused before the content is packed */
    f = s_known();
    f.grid = G2;
    f.old_scope_ok = 0;
    assert_int_equal(s_asks(&f, order, &n, &d), GS_DF_REGISTRY | GS_DF_RECORD);
    assert_int_equal(d.reason, GRIDSYNC__V1__REASON__REASON_OUT_OF_SCOPE);
}

int
main(void)
{
    gs_verdict_clear(&s_valid);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_row_check_fails),
        cmocka_unit_test(test_row_out_of_scope),
        cmocka_unit_test(test_row_grid_unknown),
        cmocka_unit_test(test_row_known_same),
        cmocka_unit_test(test_row_known_update),
        cmocka_unit_test(test_row_known_conflict),
        cmocka_unit_test(test_row_known_ahead),
        cmocka_unit_test(test_row_known_address_taken),
        cmocka_unit_test(test_row_merge_same),
        cmocka_unit_test(test_row_merge_update),
        cmocka_unit_test(test_row_merge_conflict),
        cmocka_unit_test(test_row_merge_ahead),
        cmocka_unit_test(test_row_unknown_with_base),
        cmocka_unit_test(test_row_new),
        cmocka_unit_test(test_rows_organisation),
        cmocka_unit_test(test_lookup_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

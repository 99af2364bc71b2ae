/*
 * test_privacy: proto/gs_privacy. The wire-level strip of Person.restricted
 * from packed change events and records is checked against the plain way
 * (unpack with protobuf-c, drop the sub-messages, pack again) on records of
 * the generated district, byte for byte; then on bytes that are not well
 * formed; then the ID number and phone masks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gs_arena.h"
#include "gs_gen.h"
#include "gs_privacy.h"
#include "gs_wire.h"

/* Pack rec, as the store keeps it, into b (reset first). */
static void
s_pack_record(const Gridsync__V1__Record *rec, gs_wbuf_t *b)
{
    gs_wbuf_reset(b);
    size_t n = gridsync__v1__record__get_packed_size(rec);
    uint8_t *d = gs_wbuf_reserve(b, n);
    assert_non_null(d);
    gridsync__v1__record__pack(rec, d);
    b->len = n;
}

/* Pack a change event carrying rec, with every other field set. */
static void
s_pack_event(Gridsync__V1__Record *rec, uint64_t seq, gs_wbuf_t *b)
{
    Gridsync__V1__ChangeEvent ev = GRIDSYNC__V1__CHANGE_EVENT__INIT;
    uint64_t prev[7] = { seq - 1, seq - 2, 0, seq - 3, 5, 0, 1 };
    ev.seq = seq;
    ev.grid_code = (char *) "440305001001001";
    ev.kind = GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD;
    ev.record_key = (char *) "H44030500100100100001";
    ev.op = GRIDSYNC__V1__OPERATION__OPERATION_UPSERT;
    ev.version = 3;
    ev.origin_device = (char *) "dev-440305001001001";
    ev.committed_at = 1780000000000;
    ev.record = rec;
    ev.n_prev_seq = 7;
    ev.prev_seq = prev;
    gs_wbuf_reset(b);
    size_t n = gridsync__v1__change_event__get_packed_size(&ev);
    uint8_t *d = gs_wbuf_reserve(b, n);
    assert_non_null(d);
    gridsync__v1__change_event__pack(&ev, d);
    b->len = n;
}

/* The plain way, for reference: unpack, drop, pack. Returns the number of
 * persons whose restricted part was dropped; ref gets the bytes. Unpacked
 * into an arena, since gs_record_strip_restricted detaches sub-messages
 * without freeing them. */
static size_t
s_reference(int event, const uint8_t *data, size_t len, gs_wbuf_t *ref)
{
    static gs_arena_t *a;
    if (!a)
        a = gs_arena_new(0);
    assert_non_null(a);
    gs_arena_reset(a);
    ProtobufCAllocator *al = gs_arena_allocator(a);
    gs_wbuf_reset(ref);
    size_t n;
    if (event) {
        Gridsync__V1__ChangeEvent *ev = gridsync__v1__change_event__unpack(al, len, data);
        assert_non_null(ev);
        n = gs_record_strip_restricted(ev->record);
        size_t need = gridsync__v1__change_event__get_packed_size(ev);
        gridsync__v1__change_event__pack(ev, gs_wbuf_reserve(ref, need));
        ref->len = need;
    } else {
        Gridsync__V1__Record *rec = gridsync__v1__record__unpack(al, len, data);
        assert_non_null(rec);
        n = gs_record_strip_restricted(rec);
        size_t need = gridsync__v1__record__get_packed_size(rec);
        gridsync__v1__record__pack(rec, gs_wbuf_reserve(ref, need));
        ref->len = need;
    }
    return n;
}

/* gs_event_strip_restricted_field (event) or
 * gs_recbytes_strip_restricted_field appends in as field 1 (SyncResponse
 * .events, a SnapshotEntry's record is field 6) holding want, after what
 * out held: the sync and snapshot replies' fast path. */
static void
s_compare_field(int event, const gs_wbuf_t *in, const gs_wbuf_t *want, int dropped)
{
    gs_wbuf_t out, exp;
    gs_wbuf_init(&out);
    gs_wbuf_init(&exp);
    gs_wbuf_put(&out, "xy", 2);
    gs_wbuf_put(&exp, "xy", 2);
    gs_wbuf_bytes_field(&exp, 1, want->data, want->len, 1);
    int r = event ? gs_event_strip_restricted_field(&out, 1, in->data, in->len)
                  : gs_recbytes_strip_restricted_field(&out, 1, in->data, in->len);
    assert_int_equal(r, dropped);
    assert_int_equal(out.failed, 0);
    assert_int_equal(out.len, exp.len);
    assert_memory_equal(out.data, exp.data, exp.len);
    gs_wbuf_deinit(&out);
    gs_wbuf_deinit(&exp);
}

/* Strip one packed message both ways and compare. Counts what it saw. */
static void
s_compare(int event, const gs_wbuf_t *in, gs_wbuf_t *out, gs_wbuf_t *ref, size_t *with,
          size_t *without)
{
    size_t dropped = s_reference(event, in->data, in->len, ref);
    /* out keeps what was in it before: the result is appended */
    gs_wbuf_reset(out);
    gs_wbuf_put(out, "xy", 2);
    int r = event ? gs_event_strip_restricted(in->data, in->len, out)
                  : gs_recbytes_strip_restricted(in->data, in->len, out);
    assert_int_equal(out->failed, 0);
    assert_memory_equal(out->data, "xy", 2);
    if (dropped) {
        assert_int_equal(r, 1);
        assert_int_equal(out->len - 2, ref->len);
        assert_memory_equal(out->data + 2, ref->data, ref->len);
        assert_true(ref->len < in->len);
        (*with)++;
    } else {
        assert_int_equal(r, 0);
        assert_int_equal(out->len, 2);   /* nothing appended */
        assert_int_equal(ref->len, in->len);
        (*without)++;
    }
    s_compare_field(event, in, dropped ? ref : in, dropped != 0);
}

static void
test_strip_matches_unpack_drop_pack(void **state)
{
    (void) state;
    gs_gen_t *g = gs_gen_new(NULL);
    assert_non_null(g);
    gs_arena_t *a = gs_arena_new(0);
    assert_non_null(a);
    gs_wbuf_t in, out, ref;
    gs_wbuf_init(&in);
    gs_wbuf_init(&out);
    gs_wbuf_init(&ref);
    size_t with = 0, without = 0, rentals_with = 0, orgs_with = 0;
    for (uint32_t i = 0; i < 6000; i++) {
        gs_arena_reset(a);
        /* every 7th index a rental unit (landlord persons and tenants),
         * every 5th an organisation (representative, contact, employees) */
        int rental = i % 7 == 0, org = !rental && i % 5 == 0;
        Gridsync__V1__Record *rec = rental ? gs_gen_rental(g, i, a)
                                    : org  ? gs_gen_org(g, i, a)
                                           : gs_gen_household(g, i, a);
        assert_non_null(rec);
        size_t w0 = with;
        s_pack_record(rec, &in);
        s_compare(0, &in, &out, &ref, &with, &without);
        s_pack_event(rec, 1000 + i, &in);
        s_compare(1, &in, &out, &ref, &with, &without);
        if (rental && with > w0)
            rentals_with++;
        if (org && with > w0)
            orgs_with++;
    }
    /* both outcomes, and every kind of record, were exercised */
    assert_true(with > 100);
    assert_true(without > 100);
    assert_true(rentals_with > 0);
    assert_true(orgs_with > 0);
    gs_wbuf_deinit(&in);
    gs_wbuf_deinit(&out);
    gs_wbuf_deinit(&ref);
    gs_arena_destroy(&a);
    gs_gen_destroy(&g);
}

/* A household whose first member has a restricted part, packed as an
 * event into b. */
static void
s_event_with_restricted(gs_gen_t *g, gs_arena_t *a, gs_wbuf_t *b)
{
    for (uint32_t i = 0;; i++) {
        gs_arena_reset(a);
        Gridsync__V1__Record *rec = gs_gen_household(g, i, a);
        assert_non_null(rec);
        if (rec->household->members[0]->restricted) {
            s_pack_event(rec, 77, b);
            return;
        }
    }
}

static void
test_strip_bad_bytes(void **state)
{
    (void) state;
    gs_gen_t *g = gs_gen_new(NULL);
    gs_arena_t *a = gs_arena_new(0);
    gs_wbuf_t ev, out;
    gs_wbuf_init(&ev);
    gs_wbuf_init(&out);
    s_event_with_restricted(g, a, &ev);

    /* Every truncation: either refused, or (cut at a field boundary of the
     * event) a shorter message whose result, when something was dropped,
     * still unpacks. Cuts inside the record are always refused, since its
     * length prefix then runs past the end. */
    size_t refused = 0;
    for (size_t n = 0; n < ev.len; n++) {
        gs_wbuf_reset(&out);
        int r = gs_event_strip_restricted(ev.data, n, &out);
        assert_true(r >= -1 && r <= 1);
        if (r == 1) {
            Gridsync__V1__ChangeEvent *e =
                gridsync__v1__change_event__unpack(NULL, out.len, out.data);
            assert_non_null(e);
            gridsync__v1__change_event__free_unpacked(e, NULL);
        }
        if (r < 0)
            refused++;
    }
    assert_true(refused > ev.len / 2);

    /* the record field (10) with the wrong wire type */
    uint8_t bad_type[] = { 0x50, 0x01 };
    assert_int_equal(gs_event_strip_restricted(bad_type, sizeof bad_type, &out), -1);
    /* field number 0 */
    uint8_t zero[] = { 0x02, 0x00 };
    assert_int_equal(gs_event_strip_restricted(zero, sizeof zero, &out), -1);
    /* a member whose length runs past its household */
    uint8_t overrun[] = { 0x0a, 0x04, 0x2a, 0x10, 0x00, 0x00 };
    assert_int_equal(gs_recbytes_strip_restricted(overrun, sizeof overrun, &out), -1);
    /* a varint of 11 bytes */
    uint8_t longv[] = { 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
    assert_int_equal(gs_event_strip_restricted(longv, sizeof longv, &out), -1);
    /* empty input is an empty message: nothing to drop */
    gs_wbuf_reset(&out);
    assert_int_equal(gs_event_strip_restricted(ev.data, 0, &out), 0);
    assert_int_equal(out.len, 0);

    /* the field form walks only bytes that can hold a tag of
     * Person.restricted (0x8A then 0x01 or 0x81): the overrun has none and
     * is appended as it is; with one it is walked, and refused */
    gs_wbuf_reset(&out);
    assert_int_equal(gs_recbytes_strip_restricted_field(&out, 6, overrun, sizeof overrun), 0);
    assert_int_equal(out.len, 2 + sizeof overrun);
    assert_memory_equal(out.data + 2, overrun, sizeof overrun);
    const uint8_t tags[][2] = { { 0x8a, 0x01 }, { 0x8a, 0x81 } };
    for (size_t i = 0; i < 2; i++) {
        uint8_t may[] = { 0x0a, 0x04, 0x2a, 0x10, tags[i][0], tags[i][1] };
        /* the same as an event's record (field 10) */
        uint8_t may_ev[] = { 0x52, 0x06, 0x0a, 0x04, 0x2a, 0x10, tags[i][0], tags[i][1] };
        gs_wbuf_reset(&out);
        assert_int_equal(gs_recbytes_strip_restricted_field(&out, 6, may, sizeof may), -1);
        assert_int_equal(gs_event_strip_restricted_field(&out, 1, may_ev, sizeof may_ev), -1);
        assert_int_equal(out.len, 0);
    }
    /* 0x8A at the very end, or before another byte, starts no tag */
    uint8_t tail[] = { 0x0a, 0x04, 0x2a, 0x10, 0x8a, 0x02, 0x8a };
    gs_wbuf_reset(&out);
    assert_int_equal(gs_recbytes_strip_restricted_field(&out, 6, tail, sizeof tail), 0);
    assert_int_equal(out.len, 2 + sizeof tail);

    gs_wbuf_deinit(&ev);
    gs_wbuf_deinit(&out);
    gs_arena_destroy(&a);
    gs_gen_destroy(&g);
}

/* Fields this schema does not know, inside a Person next to restricted,
 * are carried through as they are. */
static void
test_strip_keeps_unknown_fields(void **state)
{
    (void) state;
    /* Record{household{household_id, members{id_number(2)="A",
     * restricted(17){welfare}, unknown field 120: varint 7}}} */
    gs_wbuf_t rs, person, hh, rec, out;
    gs_wbuf_init(&rs);
    gs_wbuf_init(&person);
    gs_wbuf_init(&hh);
    gs_wbuf_init(&rec);
    gs_wbuf_init(&out);
    gs_wbuf_bytes_field(&rs, 4, "x", 1, 1);
    gs_wbuf_bytes_field(&person, 2, "A", 1, 1);
    gs_wbuf_bytes_field(&person, 17, rs.data, rs.len, 1);
    gs_wbuf_uint_field(&person, 120, 7);
    gs_wbuf_bytes_field(&hh, 1, "H1", 2, 1);
    gs_wbuf_bytes_field(&hh, 5, person.data, person.len, 1);
    gs_wbuf_bytes_field(&rec, 1, hh.data, hh.len, 1);
    assert_int_equal(gs_recbytes_strip_restricted(rec.data, rec.len, &out), 1);

    gs_wbuf_t want_p, want_h, want;
    gs_wbuf_init(&want_p);
    gs_wbuf_init(&want_h);
    gs_wbuf_init(&want);
    gs_wbuf_bytes_field(&want_p, 2, "A", 1, 1);
    gs_wbuf_uint_field(&want_p, 120, 7);
    gs_wbuf_bytes_field(&want_h, 1, "H1", 2, 1);
    gs_wbuf_bytes_field(&want_h, 5, want_p.data, want_p.len, 1);
    gs_wbuf_bytes_field(&want, 1, want_h.data, want_h.len, 1);
    assert_int_equal(out.len, want.len);
    assert_memory_equal(out.data, want.data, want.len);

    gs_wbuf_t *all[] = { &rs, &person, &hh, &rec, &out, &want_p, &want_h, &want };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        gs_wbuf_deinit(all[i]);
}

/* A person, its household and the event shrink across 128 and 16,384
 * bytes when the restricted part goes: the one-pass strip then writes each
 * length in fewer bytes than the original and moves the body down. Every
 * size around both boundaries, against unpack, drop and pack. */
static void
test_strip_shrinks_across_a_length_byte(void **state)
{
    (void) state;
    gs_wbuf_t in, out, ref;
    gs_wbuf_init(&in);
    gs_wbuf_init(&out);
    gs_wbuf_init(&ref);
    static char text[20000];
    memset(text, 'a', sizeof text - 1);
    size_t with = 0, without = 0;
    const size_t around[] = { 100, 16350 };
    for (size_t b = 0; b < 2; b++) {
        for (size_t n = around[b]; n < around[b] + 40; n++) {
            Gridsync__V1__Restricted rs = GRIDSYNC__V1__RESTRICTED__INIT;
            rs.welfare = (char *) "dibao";
            Gridsync__V1__Person p = GRIDSYNC__V1__PERSON__INIT;
            text[n] = 0;
            p.name = text;
            p.restricted = &rs;
            Gridsync__V1__Person *members[1] = { &p };
            Gridsync__V1__Household hh = GRIDSYNC__V1__HOUSEHOLD__INIT;
            hh.household_id = (char *) "H1";
            hh.n_members = 1;
            hh.members = members;
            Gridsync__V1__Record rec = GRIDSYNC__V1__RECORD__INIT;
            rec.body_case = GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD;
            rec.household = &hh;
            s_pack_event(&rec, 9, &in);
            s_compare(1, &in, &out, &ref, &with, &without);
            text[n] = 'a';
        }
    }
    assert_int_equal(with, 80);
    gs_wbuf_deinit(&in);
    gs_wbuf_deinit(&out);
    gs_wbuf_deinit(&ref);
}

static void
test_masks(void **state)
{
    (void) state;
    char out[32];
    gs_mask_idnum("110101199003071234", out, sizeof out);
    assert_string_equal(out, "110101********1234");
    gs_mask_phone("13812345678", out, sizeof out);
    assert_string_equal(out, "138****5678");
    gs_mask_idnum("1234", out, sizeof out);
    assert_string_equal(out, "1**4");
    gs_mask_phone("", out, sizeof out);
    assert_string_equal(out, "");
    /* which fields are masked, by their schema names */
    assert_int_equal(gs_mask_kind("id_number"), GS_MASK_IDNUM);
    assert_int_equal(gs_mask_kind("permit_number"), GS_MASK_IDNUM);
    assert_int_equal(gs_mask_kind("phones"), GS_MASK_PHONE);
    assert_int_equal(gs_mask_kind("phone"), GS_MASK_PHONE);
    assert_int_equal(gs_mask_kind("contact_phone"), GS_MASK_PHONE);
    assert_int_equal(gs_mask_kind("name"), GS_MASK_NONE);
    assert_int_equal(gs_mask_kind("id_type"), GS_MASK_NONE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strip_matches_unpack_drop_pack),
        cmocka_unit_test(test_strip_bad_bytes),
        cmocka_unit_test(test_strip_keeps_unknown_fields),
        cmocka_unit_test(test_strip_shrinks_across_a_length_byte),
        cmocka_unit_test(test_masks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

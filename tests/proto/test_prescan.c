/*
 * test_prescan: the pre-decode walk (proto/gs_prescan) and the wire reading
 * helpers it uses (proto/gs_wire), on wire bytes built by hand: millions of
 * empty records, long lists inside a record, duplicated sub-messages, deep
 * unknown nesting, truncated input. Where an input passes, it is unpacked by
 * protobuf-c into an arena to show that the decode estimate bounds what
 * protobuf-c really allocated. Also gs_wire's formatted appends.
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
#include "gs_prescan.h"
#include "gs_validate.h"
#include "gs_wire.h"

#define R(name) GRIDSYNC__V1__REASON__REASON_##name

#define assert_msg_has(v, needle)                                              \
    do {                                                                       \
        if (!strstr((v).message, (needle)))                                    \
            fail_msg("message \"%s\" lacks \"%s\"", (v).message, (needle));    \
    } while (0)

/* Field numbers, from the generated descriptors. */
static uint32_t
s_field(const ProtobufCMessageDescriptor *d, const char *name)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, name);
    assert_non_null(f);
    return f->id;
}

/* Wrap the n bytes in b as length-delimited field `field` (into b itself). */
static void
s_wrap(gs_wbuf_t *b, uint32_t field)
{
    gs_wbuf_t out;
    gs_wbuf_init(&out);
    gs_wbuf_bytes_field(&out, field, b->data, b->len, 1);
    assert_false(out.failed);
    gs_wbuf_deinit(b);
    *b = out;
}

/* Request { request_id: 7, upload { device_id, upload_id, records } } where
 * the records field holds `records` (already framed as Upload fields). */
static void
s_request(gs_wbuf_t *req, const gs_wbuf_t *records)
{
    gs_wbuf_t up;
    gs_wbuf_init(&up);
    gs_wbuf_bytes_field(&up, s_field(&gridsync__v1__upload__descriptor, "device_id"), "dev-1", 5, 0);
    gs_wbuf_bytes_field(&up, s_field(&gridsync__v1__upload__descriptor, "upload_id"), "up-1", 4, 0);
    gs_wbuf_put(&up, records->data, records->len);
    gs_wbuf_init(req);
    gs_wbuf_uint_field(req, s_field(&gridsync__v1__request__descriptor, "request_id"), 7);
    gs_wbuf_bytes_field(req, s_field(&gridsync__v1__request__descriptor, "upload"), up.data,
                        up.len, 1);
    assert_false(req->failed);
    gs_wbuf_deinit(&up);
}

/* n empty records: 2 bytes each. */
static void
s_empty_records(gs_wbuf_t *recs, size_t n)
{
    uint32_t f = s_field(&gridsync__v1__upload__descriptor, "records");
    gs_wbuf_init(recs);
    for (size_t i = 0; i < n; i++)
        gs_wbuf_bytes_field(recs, f, NULL, 0, 1);
    assert_false(recs->failed);
}

/* A record (as an Upload.records field) of one household with `members`
 * empty members, each with `phones` empty phones. */
static void
s_household_record(gs_wbuf_t *out, size_t members, size_t phones)
{
    gs_wbuf_t person, hh;
    gs_wbuf_init(&person);
    for (size_t i = 0; i < phones; i++)
        gs_wbuf_bytes_field(&person, s_field(&gridsync__v1__person__descriptor, "phones"), NULL,
                            0, 1);
    gs_wbuf_init(&hh);
    gs_wbuf_bytes_field(&hh, s_field(&gridsync__v1__household__descriptor, "household_id"),
                        "H-1", 3, 0);
    for (size_t i = 0; i < members; i++)
        gs_wbuf_bytes_field(&hh, s_field(&gridsync__v1__household__descriptor, "members"),
                            person.data, person.len, 1);
    s_wrap(&hh, s_field(&gridsync__v1__record__descriptor, "household"));
    s_wrap(&hh, s_field(&gridsync__v1__upload__descriptor, "records"));
    gs_wbuf_put(out, hh.data, hh.len);
    assert_false(out->failed);
    gs_wbuf_deinit(&hh);
    gs_wbuf_deinit(&person);
}

/* Scan b as a Request; when it passes, unpack it into an arena and check
 * that the estimate is at least what protobuf-c allocated. */
static int
s_scan(const gs_wbuf_t *b, const gs_limits_t *lim, gs_prescan_stats_t *st, gs_verdict_t *v)
{
    int rc = gs_prescan(&gridsync__v1__request__descriptor, b->data, b->len, lim, st, v);
    if (rc == 0) {
        gs_arena_t *a = gs_arena_new(0);
        assert_non_null(a);
        Gridsync__V1__Request *req =
            gridsync__v1__request__unpack(gs_arena_allocator(a), b->len, b->data);
        assert_non_null(req);
        if (st->decode_bytes < gs_arena_used(a))
            fail_msg("estimate %zu < %zu bytes allocated", st->decode_bytes, gs_arena_used(a));
        gs_arena_destroy(&a);
    }
    return rc;
}

/* ---- counts ---------------------------------------------------------------- */

/* 2,000,000 empty records (4 MB): refused by count, with the count. */
static void
test_many_empty_records(void **state)
{
    (void) state;
    gs_wbuf_t recs, req;
    s_empty_records(&recs, 2000000);
    s_request(&req, &recs);
    gs_prescan_stats_t st;
    gs_verdict_t v;
    assert_int_equal(s_scan(&req, NULL, &st, &v), R(TOO_MANY_RECORDS));
    assert_string_equal(v.message, "upload has 2000000 records; at most 1000 per upload");
    assert_int_equal(st.messages, 2 + 2000000);
    /* the configured limit is the one applied */
    gs_limits_t lim = gs_limits_default;
    lim.max_records = 5000000;
    assert_int_equal(s_scan(&req, &lim, &st, &v), R(TOO_LARGE)); /* by its decode estimate */
    assert_msg_has(v, "MiB to decode");
    gs_wbuf_deinit(&req);
    gs_wbuf_deinit(&recs);

    /* exactly at the limit passes, and decodes within the estimate */
    s_empty_records(&recs, 1000);
    s_request(&req, &recs);
    assert_int_equal(s_scan(&req, NULL, &st, &v), 0);
    assert_int_equal(v.reason, 0);
    assert_int_equal(st.depth, 3);
    gs_wbuf_deinit(&req);
    gs_wbuf_deinit(&recs);
    s_empty_records(&recs, 1001);
    s_request(&req, &recs);
    assert_int_equal(s_scan(&req, NULL, &st, &v), R(TOO_MANY_RECORDS));
    gs_wbuf_deinit(&req);
    gs_wbuf_deinit(&recs);
}

/* Lists inside a record: over the documented limit but within the
 * structural cap they decode (validation rejects that record alone); over
 * the cap the request is refused, naming where and the documented limit. */
static void
test_nested_lists(void **state)
{
    (void) state;
    gs_wbuf_t recs, req;
    gs_prescan_stats_t st;
    gs_verdict_t v;
    gs_wbuf_init(&recs);
    s_household_record(&recs, 2, 1);
    s_household_record(&recs, 33, 9);
    s_request(&req, &recs);
    assert_int_equal(s_scan(&req, NULL, &st, &v), 0);
    assert_int_equal(st.depth, 5);
    gs_wbuf_deinit(&req);

    s_household_record(&recs, GS_PRESCAN_LIST_MAX + 1, 0);
    s_request(&req, &recs);
    assert_int_equal(s_scan(&req, NULL, &st, &v), R(TOO_LARGE));
    assert_string_equal(v.message,
                        "upload.records[2].household has 1025 members; at most 32 per household");
    gs_wbuf_deinit(&req);
    gs_wbuf_deinit(&recs);

    gs_wbuf_init(&recs);
    s_household_record(&recs, 1, 5000);
    s_request(&req, &recs);
    assert_int_equal(s_scan(&req, NULL, &st, &v), R(TOO_LARGE));
    assert_string_equal(v.message,
                        "upload.records[0].household.members[0] has 5000 phones; at most 8 per "
                        "person");
    gs_wbuf_deinit(&req);
    gs_wbuf_deinit(&recs);
}

/* Lists all within their caps but too much in total: the decode estimate
 * refuses it (1000 records of 2 members of 700 empty phones: under 3 MB on
 * the wire, about 90 MB decoded). */
static void
test_decode_budget(void **state)
{
    (void) state;
    gs_wbuf_t recs, req;
    gs_prescan_stats_t st;
    gs_verdict_t v;
    gs_wbuf_init(&recs);
    for (int i = 0; i < 1000; i++)
        s_household_record(&recs, 2, 700);
    s_request(&req, &recs);
    assert_true(req.len < 3u << 20);
    assert_int_equal(s_scan(&req, NULL, &st, &v), R(TOO_LARGE));
    assert_true(st.decode_bytes > GS_PRESCAN_DECODE_MAX);
    assert_msg_has(v, "MiB to decode, more than 64 MiB");
    gs_wbuf_deinit(&req);
    gs_wbuf_deinit(&recs);
    /* a tenth of it passes, and the estimate holds */
    gs_wbuf_init(&recs);
    for (int i = 0; i < 100; i++)
        s_household_record(&recs, 2, 700);
    s_request(&req, &recs);
    assert_int_equal(s_scan(&req, NULL, &st, &v), 0);
    gs_wbuf_deinit(&req);
    gs_wbuf_deinit(&recs);
}

/* A real record, packed by protobuf-c, with strings and nested messages:
 * passes, and the estimate bounds the decode. Packed repeated scalars
 * (ChangeEvent.prev_seq) are counted element by element. */
static void
test_real_messages(void **state)
{
    (void) state;
    Gridsync__V1__Person p = GRIDSYNC__V1__PERSON__INIT;
    Gridsync__V1__FloatingInfo fl = GRIDSYNC__V1__FLOATING_INFO__INIT;
    Gridsync__V1__Restricted rs = GRIDSYNC__V1__RESTRICTED__INIT;
    char *phones[2] = { "13800138000", "01012345678" };
    p.name = "王秀英";
    p.id_number = "11010519491231002X";
    p.phones = phones;
    p.n_phones = 2;
    fl.inflow_reason = "务工";
    p.floating = &fl;
    rs.health = "x";
    p.restricted = &rs;
    Gridsync__V1__Person *pp[3] = { &p, &p, &p };
    Gridsync__V1__Lease lease = GRIDSYNC__V1__LEASE__INIT;
    lease.tenant = &p;
    lease.start_date = "2024-01-01";
    Gridsync__V1__Lease *leases[2] = { &lease, &lease };
    Gridsync__V1__RentalHousing rh = GRIDSYNC__V1__RENTAL_HOUSING__INIT;
    rh.house_id = "R-1";
    rh.leases = leases;
    rh.n_leases = 2;
    Gridsync__V1__Landlord ll = GRIDSYNC__V1__LANDLORD__INIT;
    ll.party_case = GRIDSYNC__V1__LANDLORD__PARTY_PERSON;
    ll.person = &p;
    rh.landlord = &ll;
    Gridsync__V1__Household h = GRIDSYNC__V1__HOUSEHOLD__INIT;
    h.household_id = "H-1";
    h.members = pp;
    h.n_members = 3;
    Gridsync__V1__Record r1 = GRIDSYNC__V1__RECORD__INIT, r2 = GRIDSYNC__V1__RECORD__INIT;
    r1.body_case = GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD;
    r1.household = &h;
    r2.body_case = GRIDSYNC__V1__RECORD__BODY_RENTAL;
    r2.rental = &rh;
    Gridsync__V1__Record *recs[2] = { &r1, &r2 };
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = "dev-1";
    up.upload_id = "u-1";
    up.records = recs;
    up.n_records = 2;
    Gridsync__V1__Request rq = GRIDSYNC__V1__REQUEST__INIT;
    rq.request_id = 3;
    rq.body_case = GRIDSYNC__V1__REQUEST__BODY_UPLOAD;
    rq.upload = &up;
    gs_wbuf_t b;
    gs_wbuf_init(&b);
    size_t n = gridsync__v1__request__get_packed_size(&rq);
    gridsync__v1__request__pack(&rq, gs_wbuf_reserve(&b, n));
    b.len = n;
    gs_prescan_stats_t st;
    gs_verdict_t v;
    assert_int_equal(s_scan(&b, NULL, &st, &v), 0);
    /* Request, Upload, Record, RentalHousing, Lease, Person, FloatingInfo */
    assert_int_equal(st.depth, 7);
    assert_int_equal(st.unknown, 0);
    uint64_t rid = 0;
    assert_int_equal(gs_wire_find_varint(b.data, b.len, 1, &rid), 0);
    assert_int_equal(rid, 3);
    assert_int_equal(gs_wire_find_varint(b.data, b.len, 9, &rid), -1);
    gs_wbuf_deinit(&b);

    /* packed uint64s: 500 pass, 2000 are over the list cap */
    uint64_t seqs[2000];
    for (size_t i = 0; i < 2000; i++)
        seqs[i] = i * 1000003u;
    Gridsync__V1__ChangeEvent ev = GRIDSYNC__V1__CHANGE_EVENT__INIT;
    ev.prev_seq = seqs;
    ev.n_prev_seq = 500;
    uint8_t buf[32 * 1024];
    n = gridsync__v1__change_event__pack(&ev, buf);
    assert_int_equal(gs_prescan(&gridsync__v1__change_event__descriptor, buf, n, NULL, &st, &v),
                     0);
    gs_arena_t *a = gs_arena_new(0);
    Gridsync__V1__ChangeEvent *d =
        gridsync__v1__change_event__unpack(gs_arena_allocator(a), n, buf);
    assert_non_null(d);
    assert_int_equal(d->n_prev_seq, 500);
    assert_true(st.decode_bytes >= gs_arena_used(a));
    gs_arena_destroy(&a);
    ev.n_prev_seq = 2000;
    n = gridsync__v1__change_event__pack(&ev, buf);
    assert_int_equal(gs_prescan(&gridsync__v1__change_event__descriptor, buf, n, NULL, &st, &v),
                     R(TOO_LARGE));
    assert_string_equal(v.message, "prev_seq has 2000 entries; at most 1024 in one request");
}

/* ---- text ------------------------------------------------------------------- */

/* A record with one household whose second member has `name` (nl bytes)
 * and the phones given. */
static void
s_named_member(gs_wbuf_t *req, const char *name, size_t nl, const char *phone, size_t pl)
{
    const ProtobufCMessageDescriptor *pd = &gridsync__v1__person__descriptor;
    gs_wbuf_t ok, odd, hh;
    gs_wbuf_init(&ok);
    gs_wbuf_bytes_field(&ok, s_field(pd, "name"), "王秀英", strlen("王秀英"), 0);
    gs_wbuf_init(&odd);
    gs_wbuf_bytes_field(&odd, s_field(pd, "name"), name, nl, 1);
    gs_wbuf_bytes_field(&odd, s_field(pd, "phones"), "13800138000", 11, 1);
    gs_wbuf_bytes_field(&odd, s_field(pd, "phones"), phone, pl, 1);
    gs_wbuf_init(&hh);
    uint32_t mf = s_field(&gridsync__v1__household__descriptor, "members");
    gs_wbuf_bytes_field(&hh, mf, ok.data, ok.len, 1);
    gs_wbuf_bytes_field(&hh, mf, odd.data, odd.len, 1);
    s_wrap(&hh, s_field(&gridsync__v1__record__descriptor, "household"));
    s_wrap(&hh, s_field(&gridsync__v1__upload__descriptor, "records"));
    s_request(req, &hh);
    gs_wbuf_deinit(&hh);
    gs_wbuf_deinit(&odd);
    gs_wbuf_deinit(&ok);
}

/* A NUL inside any string field is refused before protobuf-c would cut the
 * string at it ("ab\0cd" would be stored as "ab"): BAD_ENCODING, with the
 * field's path and the byte, as gs_text_check words a control character. */
static void
test_nul_in_text(void **state)
{
    (void) state;
    gs_prescan_stats_t st;
    gs_verdict_t v;
    gs_wbuf_t b;
    s_named_member(&b, "abcd", 4, "01012345678", 11);
    assert_int_equal(s_scan(&b, NULL, &st, &v), 0);
    gs_wbuf_deinit(&b);

    s_named_member(&b, "ab\0cd", 5, "01012345678", 11);
    assert_int_equal(s_scan(&b, NULL, &st, &v), R(BAD_ENCODING));
    assert_string_equal(v.message,
                        "upload.records[0].household.members[1].name has a control character "
                        "(byte 3)");
    gs_wbuf_deinit(&b);

    /* at the end of a value, and in a repeated string */
    s_named_member(&b, "abcd", 4, "0101234567\0", 11);
    assert_int_equal(s_scan(&b, NULL, &st, &v), R(BAD_ENCODING));
    assert_string_equal(v.message,
                        "upload.records[0].household.members[1].phones[1] has a control "
                        "character (byte 11)");
    gs_wbuf_deinit(&b);

    /* in the envelope (an identifier), and as the only byte */
    gs_wbuf_t recs, up;
    s_empty_records(&recs, 1);
    gs_wbuf_init(&up);
    gs_wbuf_bytes_field(&up, s_field(&gridsync__v1__upload__descriptor, "device_id"),
                        "dev-1\0x", 7, 0);
    gs_wbuf_put(&up, recs.data, recs.len);
    s_wrap(&up, s_field(&gridsync__v1__request__descriptor, "upload"));
    assert_int_equal(s_scan(&up, NULL, &st, &v), R(BAD_ENCODING));
    assert_string_equal(v.message, "upload.device_id has a control character (byte 6)");
    gs_wbuf_deinit(&up);
    gs_wbuf_init(&up);
    gs_wbuf_bytes_field(&up, s_field(&gridsync__v1__upload__descriptor, "upload_id"), "", 1, 0);
    s_wrap(&up, s_field(&gridsync__v1__request__descriptor, "upload"));
    assert_int_equal(s_scan(&up, NULL, &st, &v), R(BAD_ENCODING));
    assert_string_equal(v.message, "upload.upload_id has a control character (byte 1)");
    gs_wbuf_deinit(&up);
    gs_wbuf_deinit(&recs);

    /* bytes fields may hold anything */
    uint8_t cur[3] = { 'a', 0, 'b' };
    Gridsync__V1__SnapshotRequest sr = GRIDSYNC__V1__SNAPSHOT_REQUEST__INIT;
    sr.cursor.data = cur;
    sr.cursor.len = sizeof cur;
    uint8_t buf[64];
    size_t n = gridsync__v1__snapshot_request__pack(&sr, buf);
    assert_int_equal(gs_prescan(&gridsync__v1__snapshot_request__descriptor, buf, n, NULL, &st,
                                &v), 0);
}

/* ---- structure --------------------------------------------------------------- */

/* Truncated and invalid wire data: MALFORMED, cheaply; and the scan is
 * never stricter than protobuf-c on cut-off copies of a valid request. */
static void
test_malformed(void **state)
{
    (void) state;
    gs_verdict_t v;
    gs_prescan_stats_t st;
    const ProtobufCMessageDescriptor *rd = &gridsync__v1__request__descriptor;
    static const struct {
        const char *bytes;
        size_t len;
        const char *what;
    } bad[] = {
        { "\x08\x80", 2, "truncated value" },                  /* varint cut */
        { "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12, "truncated value" },
        { "\x80", 1, "truncated field tag" },
        { "\x12\x05\x0a\x01", 4, "length runs past the end" },  /* upload, 5 > 2 */
        { "\x12\x03\x0a\x05x", 5, "length runs past the end" }, /* inside upload */
        { "\x12\x80", 2, "length runs past the end" },
        { "\x13", 1, "group wire type" },
        { "\x0e\x00", 2, "invalid wire type" },
        { "\x00\x00", 2, "field number out of range" },
        /* Record.household twice: protobuf-c would merge the copies */
        { "\x12\x06\x1a\x04\x0a\x00\x0a\x00", 8, "upload.records[0].household sent more than once" },
        { "\x12\x00\x12\x00", 4, "upload sent more than once" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = gs_prescan(rd, (const uint8_t *) bad[i].bytes, bad[i].len, NULL, &st, &v);
        if (rc != R(MALFORMED))
            fail_msg("case %zu: %s", i, v.message);
        assert_msg_has(v, bad[i].what);
        assert_msg_has(v, "do not decode as a gridsync.v1.Request");
    }
    /* empty input is an empty Request (protobuf-c agrees) */
    assert_int_equal(gs_prescan(rd, NULL, 0, NULL, &st, &v), 0);

    gs_wbuf_t recs, req;
    gs_wbuf_init(&recs);
    s_household_record(&recs, 3, 2);
    s_household_record(&recs, 1, 0);
    s_request(&req, &recs);
    size_t passed = 0;
    for (size_t cut = 0; cut < req.len; cut++) {
        uint8_t *copy = malloc(cut + 1); /* exactly cut bytes readable for ASan */
        memcpy(copy, req.data, cut);
        int rc = gs_prescan(rd, copy, cut, NULL, &st, &v);
        Gridsync__V1__Request *d = gridsync__v1__request__unpack(NULL, cut, copy);
        if (d) {
            if (rc)
                fail_msg("cut %zu: protobuf-c decodes it but the scan says %s", cut, v.message);
            gridsync__v1__request__free_unpacked(d, NULL);
        }
        passed += rc == 0;
        free(copy);
    }
    assert_true(passed >= 1 && passed < req.len / 2);
    gs_wbuf_deinit(&req);
    gs_wbuf_deinit(&recs);
}

/* 100,000 levels of unknown length-delimited fields inside a Person: kept as
 * opaque bytes, never descended into, so they pass at depth 5 and count as
 * one unknown field. Known fields can only nest as deep as the schema. */
static void
test_deep_unknown(void **state)
{
    (void) state;
    /* built inside out from the end of one buffer */
    size_t cap = 100000 * 8, start = cap, inner = 0;
    uint8_t *deep = malloc(cap);
    assert_non_null(deep);
    for (int i = 0; i < 100000; i++) {
        gs_wbuf_t hdr;
        gs_wbuf_init(&hdr);
        gs_wbuf_varint(&hdr, (1000 << 3) | 2);
        gs_wbuf_varint(&hdr, inner);
        start -= hdr.len;
        memcpy(deep + start, hdr.data, hdr.len);
        inner += hdr.len;
        gs_wbuf_deinit(&hdr);
    }
    gs_wbuf_t b;
    gs_wbuf_init(&b);
    gs_wbuf_put(&b, deep + start, inner);
    free(deep);
    gs_wbuf_t hh;
    gs_wbuf_init(&hh);
    gs_wbuf_bytes_field(&hh, s_field(&gridsync__v1__household__descriptor, "members"), b.data,
                        b.len, 1);
    s_wrap(&hh, s_field(&gridsync__v1__record__descriptor, "household"));
    s_wrap(&hh, s_field(&gridsync__v1__upload__descriptor, "records"));
    gs_wbuf_t req;
    s_request(&req, &hh);
    gs_prescan_stats_t st;
    gs_verdict_t v;
    assert_int_equal(s_scan(&req, NULL, &st, &v), 0);
    assert_int_equal(st.depth, 5);
    assert_int_equal(st.unknown, 1);
    gs_wbuf_deinit(&req);
    gs_wbuf_deinit(&hh);
    gs_wbuf_deinit(&b);
}

/* The reading helpers on their own. */
static void
test_wire_helpers(void **state)
{
    (void) state;
    const uint8_t *p;
    uint64_t x = 0;
    static const uint8_t ten[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
    p = ten;
    assert_int_equal(gs_wire_varint_get(&p, ten + sizeof ten, &x), 0);
    assert_true(x == UINT64_MAX);
    assert_ptr_equal(p, ten + 10);
    p = ten;
    assert_int_equal(gs_wire_varint_get(&p, ten + 9, &x), -1);
    assert_ptr_equal(p, ten);
    static const uint8_t fixed[] = { 1, 2, 3, 4, 5, 6, 7 };
    p = fixed;
    assert_int_equal(gs_wire_skip(&p, fixed + 7, 1), -1);
    assert_int_equal(gs_wire_skip(&p, fixed + 7, 5), 0);
    assert_ptr_equal(p, fixed + 4);
    assert_int_equal(gs_wire_skip(&p, fixed + 7, 3), -1);
    /* the last of repeated values wins; a malformed tail keeps what came before */
    static const uint8_t two[] = { 0x08, 0x05, 0x12, 0x00, 0x08, 0x09, 0x12, 0x40 };
    assert_int_equal(gs_wire_find_varint(two, sizeof two, 1, &x), 0);
    assert_int_equal(x, 9);
}

/* gs_wbuf_printf: text of any length, appended; len counts no NUL. */
static void
test_wbuf_printf(void **state)
{
    (void) state;
    gs_wbuf_t b;
    gs_wbuf_init(&b);
    gs_wbuf_put(&b, "x", 1);
    gs_wbuf_printf(&b, "%d-%s", 42, "ok");
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.data, "x42-ok", 6);
    char big[1000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    gs_wbuf_printf(&b, "[%s]", big);
    assert_int_equal(b.len, 6 + 1001);
    assert_int_equal(b.data[6], '[');
    assert_int_equal(b.data[6 + 1000], ']');
    assert_false(b.failed);
    gs_wbuf_deinit(&b);
}

/* ---- gs_wire_is_canonical --------------------------------------------------------- */

/* A household of two members and a rental unit with a landlord (a oneof),
 * a double, a bool, repeated strings and messages, nested sub-messages:
 * every kind of field a record holds, packed by protobuf-c. */
static size_t
s_canon_records(uint8_t *out[2], size_t len[2])
{
    static char *phones[] = { "13800138000", "075512345678" };
    Gridsync__V1__Restricted rs = GRIDSYNC__V1__RESTRICTED__INIT;
    rs.health = "ok";
    Gridsync__V1__Person m1 = GRIDSYNC__V1__PERSON__INIT, m2 = GRIDSYNC__V1__PERSON__INIT;
    m1.id_type = GRIDSYNC__V1__ID_TYPE__ID_TYPE_RESIDENT_CARD;
    m1.id_number = "11010519491231002X";
    m1.name = "张三";
    m1.sex = GRIDSYNC__V1__SEX__SEX_MALE;
    m1.birth_date = "1949-12-31";
    m1.relation = GRIDSYNC__V1__RELATION__RELATION_HEAD;
    m1.n_phones = 2;
    m1.phones = phones;
    m1.restricted = &rs;
    m2.name = "李四";
    m2.relation = GRIDSYNC__V1__RELATION__RELATION_SPOUSE;
    Gridsync__V1__Person *members[] = { &m1, &m2 };
    Gridsync__V1__RecordMeta meta = GRIDSYNC__V1__RECORD_META__INIT;
    meta.collector_id = "col-1";
    meta.device_id = "dev-1";
    meta.collected_at = 1700000000000;
    meta.base_version = 3;
    Gridsync__V1__Household hh = GRIDSYNC__V1__HOUSEHOLD__INIT;
    hh.household_id = "H1";
    hh.grid_code = "440305001001001";
    hh.address_code = "A1";
    hh.n_members = 2;
    hh.members = members;
    hh.is_hukou_household = 1;
    hh.meta = &meta;
    Gridsync__V1__Record r1 = GRIDSYNC__V1__RECORD__INIT;
    r1.body_case = GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD;
    r1.household = &hh;

    Gridsync__V1__Landlord ll = GRIDSYNC__V1__LANDLORD__INIT;
    ll.party_case = GRIDSYNC__V1__LANDLORD__PARTY_PERSON;
    ll.person = &m2;
    Gridsync__V1__RentalHousing rh = GRIDSYNC__V1__RENTAL_HOUSING__INIT;
    rh.house_id = "R1";
    rh.grid_code = "440305001001001";
    rh.area_m2 = 42.5;
    rh.room_count = 2;
    rh.landlord = &ll;
    rh.access_control = 1;
    rh.meta = &meta;
    Gridsync__V1__Record r2 = GRIDSYNC__V1__RECORD__INIT;
    r2.body_case = GRIDSYNC__V1__RECORD__BODY_RENTAL;
    r2.rental = &rh;

    const Gridsync__V1__Record *recs[2] = { &r1, &r2 };
    for (int i = 0; i < 2; i++) {
        len[i] = protobuf_c_message_get_packed_size(&recs[i]->base);
        out[i] = malloc(len[i]);
        assert_non_null(out[i]);
        protobuf_c_message_pack(&recs[i]->base, out[i]);
    }
    return 2;
}

/* Would keeping these bytes give what packing their unpacked form gives?
 * Fails the test when gs_wire_is_canonical says yes and the answer is no;
 * returns what it said. */
static int
s_canon_sound(const uint8_t *data, size_t len)
{
    int canon = gs_wire_is_canonical(&gridsync__v1__record__descriptor, data, len);
    Gridsync__V1__Record *r = gridsync__v1__record__unpack(NULL, len, data);
    if (canon) {
        if (!r)
            fail_msg("canonical bytes do not unpack");
        size_t n = protobuf_c_message_get_packed_size(&r->base);
        uint8_t *again = malloc(n ? n : 1);
        assert_non_null(again);
        protobuf_c_message_pack(&r->base, again);
        if (n != len || memcmp(again, data, len) != 0)
            fail_msg("canonical bytes (%zu) pack again as other bytes (%zu)", len, n);
        free(again);
    }
    if (r)
        gridsync__v1__record__free_unpacked(r, NULL);
    return canon;
}

/* protobuf-c's own output is canonical; every other encoding of the same
 * record is not, and nothing judged canonical packs again as other bytes. */
static void
test_canonical(void **state)
{
    (void) state;
    uint8_t *rec[2];
    size_t len[2];
    s_canon_records(rec, len);
    for (int i = 0; i < 2; i++)
        assert_int_equal(s_canon_sound(rec[i], len[i]), 1);

    uint8_t buf[4096];
    const uint8_t *hh = rec[0];
    size_t hl = len[0];
    /* the body's length in one byte more than it needs */
    size_t k = 1;
    while (hh[k] & 0x80)
        k++;                /* hh[1..k] is the length */
    assert_true(2 * hl < sizeof buf);
    memcpy(buf, hh, k + 1);
    buf[k] |= 0x80;
    buf[k + 1] = 0;
    memcpy(buf + k + 2, hh + k + 1, hl - k - 1);
    assert_int_equal(s_canon_sound(buf, hl + 1), 0);
    /* an unknown field after the body */
    memcpy(buf, hh, hl);
    buf[hl] = (uint8_t) ((40u << 3) | 0);
    buf[hl + 1] = 1;
    assert_int_equal(s_canon_sound(buf, hl + 2), 0);
    /* the body sent twice (protobuf-c merges), and a second oneof member */
    memcpy(buf, hh, hl);
    memcpy(buf + hl, hh, hl);
    assert_int_equal(s_canon_sound(buf, 2 * hl), 0);
    memcpy(buf, hh, hl);
    memcpy(buf + hl, rec[1], len[1]);
    assert_int_equal(s_canon_sound(buf, hl + len[1]), 0);

    /* Household fields by hand: an explicit zero, a false, an empty string,
     * a bool of 2, fields out of order; each unpacks to what protobuf-c
     * packs otherwise */
    static const struct {
        const char *what;
        uint8_t bytes[16];
        size_t n;
        int canon;
    } body[] = {
        { "id", { 0x0a, 1, 'H' }, 3, 1 },
        { "zero uint64", { 0x7a, 2, 0x20, 0x00 }, 4, 0 },        /* meta.base_version 0 */
        { "false", { 0x38, 0x00 }, 2, 0 },                       /* is_hukou_household */
        { "bool 2", { 0x38, 0x02 }, 2, 0 },
        { "bool 1", { 0x38, 0x01 }, 2, 1 },
        { "empty string", { 0x12, 0x00 }, 2, 0 },                /* grid_code "" */
        { "out of order", { 0x12, 1, '4', 0x0a, 1, 'H' }, 6, 0 },
        { "in order", { 0x0a, 1, 'H', 0x12, 1, '4' }, 6, 1 },
        { "long tag", { 0x8a, 0x00, 1, 'H' }, 4, 0 },
        { "empty meta", { 0x7a, 0x00 }, 2, 1 },
        { "int64 in 2 bytes", { 0x7a, 3, 0x18, 0x81, 0x00 }, 5, 0 },
        { "NUL in string", { 0x0a, 2, 'H', 0 }, 4, 0 },
    };
    for (size_t b = 0; b < sizeof body / sizeof body[0]; b++) {
        buf[0] = 0x0a;      /* Record.household */
        buf[1] = (uint8_t) body[b].n;
        memcpy(buf + 2, body[b].bytes, body[b].n);
        int got = s_canon_sound(buf, body[b].n + 2);
        if (got != body[b].canon)
            fail_msg("%s: canonical %d, expected %d", body[b].what, got, body[b].canon);
    }

    /* Random damage to both records, over and over: whatever the walk
     * accepts must pack again as itself. */
    uint32_t x = 12345;
    size_t accepted = 0;
    for (int round = 0; round < 20000; round++) {
        int i = round & 1;
        memcpy(buf, rec[i], len[i]);
        size_t n = len[i];
        int edits = 1 + (int) ((x >> 4) % 3);
        for (int e = 0; e < edits; e++) {
            x = x * 1103515245u + 12345u;
            size_t at = (x >> 8) % n;
            switch ((x >> 24) % 4) {
            case 0: buf[at] ^= (uint8_t) (1u << ((x >> 3) % 8)); break;
            case 1: buf[at] = (uint8_t) (x >> 16); break;
            case 2: if (n > 1) { memmove(buf + at, buf + at + 1, n - at - 1); n--; } break;
            default: buf[at] = buf[at] < 2 ? buf[at] : (uint8_t) (buf[at] - 1); break;
            }
        }
        accepted += (size_t) s_canon_sound(buf, n);
    }
    assert_true(accepted > 0);      /* some damage (a changed letter) stays canonical */
    free(rec[0]);
    free(rec[1]);
}

/* One request carrying an upload of the n records rec[i] (len[i] bytes
 * each), through gs_prescan_records: it answers as gs_prescan does, and
 * when it passes it tells every record, in order, where its bytes sit and
 * exactly what gs_wire_is_canonical says of them. Returns its verdict. */
static int
s_records_agree(const uint8_t *const *rec, const size_t *len, size_t n)
{
    const uint32_t upload_field = protobuf_c_message_descriptor_get_field_by_name(
                       &gridsync__v1__request__descriptor, "upload")->id,
                   records_field = protobuf_c_message_descriptor_get_field_by_name(
                       &gridsync__v1__upload__descriptor, "records")->id;
    gs_wbuf_t up, req;
    gs_wbuf_init(&up);
    gs_wbuf_init(&req);
    gs_wbuf_bytes_field(&up, 1, "dev-1", 5, 0);
    for (size_t i = 0; i < n; i++)
        gs_wbuf_bytes_field(&up, records_field, rec[i], len[i], 1);
    gs_wbuf_uint_field(&req, 1, 7);
    gs_wbuf_bytes_field(&req, upload_field, up.data, up.len, 1);
    assert_false(up.failed || req.failed);
    enum { MAX = 8 };
    const uint8_t *at[MAX];
    size_t l[MAX];
    uint8_t canon[MAX];
    gs_prescan_records_t r = { at, l, canon, MAX, 99 };
    gs_verdict_t v, v2;
    int rc = gs_prescan_records(&gridsync__v1__request__descriptor, req.data, req.len, NULL,
                                NULL, &v, &r);
    assert_int_equal(gs_prescan(&gridsync__v1__request__descriptor, req.data, req.len, NULL,
                                NULL, &v2), rc);
    assert_string_equal(v.message, v2.message);
    if (rc == 0) {
        assert_true(n <= MAX);
        assert_int_equal(r.n, n);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(l[i], len[i]);
            assert_true(at[i] >= req.data && at[i] + l[i] <= req.data + req.len);
            assert_memory_equal(at[i], rec[i], len[i]);
            int want = gs_wire_is_canonical(&gridsync__v1__record__descriptor, rec[i], len[i]);
            if (canon[i] != want)
                fail_msg("record %zu of %zu: pre-scan says canonical %d, gs_wire_is_canonical %d",
                         i, n, canon[i], want);
        }
    }
    gs_wbuf_deinit(&up);
    gs_wbuf_deinit(&req);
    return rc;
}

/* gs_prescan_records, the frontend's one walk: its canonical verdict on
 * each record is gs_wire_is_canonical's, for protobuf-c's own output
 * (names in Chinese: multi-byte UTF-8), for each encoding by hand in
 * test_canonical's list, for a record with an unknown field, and for
 * thousands of randomly damaged records, one to three per upload. A
 * request without an upload tells no record. */
static void
test_prescan_records(void **state)
{
    (void) state;
    uint8_t *rec[2];
    size_t len[2];
    s_canon_records(rec, len);
    assert_int_equal(s_records_agree((const uint8_t *const *) rec, len, 2), 0);

    /* a household with a field this schema does not know after its body */
    uint8_t unk[4096];
    assert_true(len[0] + 2 <= sizeof unk);
    memcpy(unk, rec[0], len[0]);
    unk[len[0]] = (uint8_t) ((40u << 3) | 0);
    unk[len[0] + 1] = 1;
    const uint8_t *mix[3] = { rec[1], unk, rec[0] };
    size_t mix_len[3] = { len[1], len[0] + 2, len[0] };
    assert_int_equal(s_records_agree(mix, mix_len, 3), 0);

    static const struct {
        uint8_t bytes[18];
        size_t n;
    } body[] = {
        { { 0x0a, 3, 0x0a, 1, 'H' }, 5 },
        { { 0x0a, 4, 0x7a, 2, 0x20, 0x00 }, 6 },
        { { 0x0a, 2, 0x38, 0x00 }, 4 },
        { { 0x0a, 2, 0x38, 0x02 }, 4 },
        { { 0x0a, 2, 0x38, 0x01 }, 4 },
        { { 0x0a, 2, 0x12, 0x00 }, 4 },
        { { 0x0a, 6, 0x12, 1, '4', 0x0a, 1, 'H' }, 8 },
        { { 0x0a, 6, 0x0a, 1, 'H', 0x12, 1, '4' }, 8 },
        { { 0x0a, 4, 0x8a, 0x00, 1, 'H' }, 6 },
        { { 0x0a, 2, 0x7a, 0x00 }, 4 },
        { { 0x0a, 5, 0x7a, 3, 0x18, 0x81, 0x00 }, 7 },
        { { 0x0a, 3, 0x0a, 1, 0xe5 }, 5 },            /* a lone UTF-8 lead byte */
        { { 0x0a, 0 }, 2 },                            /* an empty household */
        { { 0 }, 0 },                                  /* an empty record */
    };
    for (size_t b = 0; b < sizeof body / sizeof body[0]; b++) {
        const uint8_t *one = body[b].bytes;
        size_t n = body[b].n;
        assert_int_equal(s_records_agree(&one, &n, 1), 0);
    }

    /* random damage, as test_canonical does it, to one to three records */
    uint8_t buf[3][4096];
    uint32_t x = 777;
    size_t passed = 0, canonical = 0;
    for (int round = 0; round < 6000; round++) {
        size_t k = 1 + round % 3;
        const uint8_t *ptr[3];
        size_t n[3];
        for (size_t j = 0; j < k; j++) {
            int i = (int) ((round + j) & 1);
            memcpy(buf[j], rec[i], len[i]);
            n[j] = len[i];
            int edits = (int) ((x >> 4) % 3);   /* 0: left as protobuf-c packed it */
            for (int e = 0; e < edits; e++) {
                x = x * 1103515245u + 12345u;
                size_t at = (x >> 8) % n[j];
                switch ((x >> 24) % 4) {
                case 0: buf[j][at] ^= (uint8_t) (1u << ((x >> 3) % 8)); break;
                case 1: buf[j][at] = (uint8_t) (x >> 16); break;
                case 2:
                    if (n[j] > 1) {
                        memmove(buf[j] + at, buf[j] + at + 1, n[j] - at - 1);
                        n[j]--;
                    }
                    break;
                default: buf[j][at] = buf[j][at] < 2 ? buf[j][at] : (uint8_t) (buf[j][at] - 1); break;
                }
            }
            x = x * 1103515245u + 12345u;
            ptr[j] = buf[j];
            canonical += (size_t) gs_wire_is_canonical(&gridsync__v1__record__descriptor,
                                                       buf[j], n[j]);
        }
        passed += s_records_agree(ptr, n, k) == 0;
    }
    /* both verdicts were met many times */
    assert_true(passed > 1000);
    assert_true(canonical > 1000);

    /* a ping carries no upload: no record is told */
    uint8_t ping[] = { 0x08, 0x01 };
    const uint8_t *at[1];
    size_t l[1];
    uint8_t c[1];
    gs_prescan_records_t r = { at, l, c, 1, 5 };
    assert_int_equal(gs_prescan_records(&gridsync__v1__request__descriptor, ping, sizeof ping,
                                        NULL, NULL, NULL, &r), 0);
    assert_int_equal(r.n, 0);
    free(rec[0]);
    free(rec[1]);
}

/* gs_wire_spans: the occurrences of one length-delimited field, in order. */
static void
test_wire_spans(void **state)
{
    (void) state;
    const uint8_t msg[] = { 0x08, 0x07, 0x1a, 0x02, 'a', 'b', 0x12, 0x01, 'x', 0x1a, 0x00,
                            0x1a, 0x01, 'c' };
    const uint8_t *at[4];
    size_t l[4];
    assert_int_equal(gs_wire_spans(msg, sizeof msg, 3, at, l, 4), 3);
    assert_ptr_equal(at[0], msg + 4);
    assert_int_equal(l[0], 2);
    assert_int_equal(l[1], 0);
    assert_ptr_equal(at[2], msg + 13);
    assert_int_equal(l[2], 1);
    assert_int_equal(gs_wire_spans(msg, sizeof msg, 3, at, l, 1), 3);   /* counted past max */
    assert_int_equal(gs_wire_spans(msg, sizeof msg, 9, NULL, NULL, 0), 0);
    assert_int_equal(gs_wire_spans(msg, sizeof msg - 1, 3, at, l, 4), -1);  /* cut short */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wbuf_printf),
        cmocka_unit_test(test_many_empty_records),
        cmocka_unit_test(test_nested_lists),
        cmocka_unit_test(test_decode_budget),
        cmocka_unit_test(test_real_messages),
        cmocka_unit_test(test_nul_in_text),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_deep_unknown),
        cmocka_unit_test(test_wire_helpers),
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_prescan_records),
        cmocka_unit_test(test_wire_spans),
    };
    return cmocka_run_group_tests_name("prescan", tests, NULL, NULL);
}

/*
 * test_render: tools/render/gs_render, the JSON writer gridfeed and gridctl
 * share. The writer's commas, nesting and the newline after a top-level
 * value; string escaping; the two double formats; protobuf messages by
 * descriptor (defaults left out, enums by name, bytes as hex, repeated
 * fields, masking unless reveal); a change event as gridfeed's line, byte
 * for byte; and the same bytes whether written to a stream or a buffer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gs_render.h"

/* What fn writes into a buffer, as a NUL-terminated string (caller frees). */
typedef void (s_write_fn)(gs_json_t *j, void *arg);

static char *
s_to_buf(s_write_fn *fn, void *arg)
{
    gs_wbuf_t b;
    gs_wbuf_init(&b);
    gs_json_t j;
    gs_json_init_buf(&j, &b);
    fn(&j, arg);
    assert_false(gs_json_failed(&j));
    char *s = calloc(1, b.len + 1);
    assert_non_null(s);
    if (b.len)
        memcpy(s, b.data, b.len);
    gs_wbuf_deinit(&b);
    return s;
}

static char *
s_to_file(s_write_fn *fn, void *arg)
{
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    assert_non_null(f);
    gs_json_t j;
    gs_json_init_file(&j, f);
    fn(&j, arg);
    assert_false(gs_json_failed(&j));
    assert_int_equal(fclose(f), 0);
    return s;
}

/* fn writes want, both to a buffer and to a stream. */
static void
s_expect(s_write_fn *fn, void *arg, const char *want)
{
    char *a = s_to_buf(fn, arg), *b = s_to_file(fn, arg);
    assert_string_equal(a, want);
    assert_string_equal(b, want);
    free(a);
    free(b);
}

static void
s_nested(gs_json_t *j, void *arg)
{
    (void) arg;
    gs_json_obj(j);
    gs_json_key(j, "n");
    gs_json_u64(j, 18446744073709551615ull);
    gs_json_key(j, "i");
    gs_json_i64(j, -5);
    gs_json_key(j, "list");
    gs_json_arr(j);
    gs_json_bool(j, 1);
    gs_json_bool(j, 0);
    gs_json_null(j);
    gs_json_str(j, NULL);
    gs_json_obj(j);
    gs_json_end(j);
    gs_json_arr(j);
    gs_json_end(j);
    gs_json_end(j);
    gs_json_key(j, "o");
    gs_json_obj(j);
    gs_json_key(j, "a");
    gs_json_str(j, "b");
    gs_json_end(j);
    gs_json_end(j);
    /* a second top-level value is a second line */
    gs_json_arr(j);
    gs_json_end(j);
}

static void
test_writer_nesting(void **state)
{
    (void) state;
    s_expect(s_nested, NULL,
             "{\"n\":18446744073709551615,\"i\":-5,\"list\":[true,false,null,null,{},[]],"
             "\"o\":{\"a\":\"b\"}}\n[]\n");
}

static void
s_strings(gs_json_t *j, void *arg)
{
    (void) arg;
    gs_json_arr(j);
    gs_json_str(j, "q\"b\\n\nt\tc\x01 d\x7f" "e");
    gs_json_str(j, "深圳 ok");
    gs_json_str(j, "");
    gs_json_end(j);
}

static void
test_writer_strings(void **state)
{
    (void) state;
    s_expect(s_strings, NULL,
             "[\"q\\\"b\\\\n\\nt\\tc\\u0001 d\\u007fe\",\"深圳 ok\",\"\"]\n");
}

static void
s_doubles(gs_json_t *j, void *arg)
{
    (void) arg;
    gs_json_arr(j);
    gs_json_dbl(j, 0.1);
    gs_json_dbl(j, 1.0 / 3.0);
    gs_json_dbl(j, NAN);
    gs_json_figure(j, 1.0 / 3.0);
    gs_json_figure(j, 120.5);
    gs_json_figure(j, INFINITY);
    gs_json_end(j);
}

static void
test_writer_doubles(void **state)
{
    (void) state;
    s_expect(s_doubles, NULL,
             "[0.1,0.33333333333333331,null,0.333333,120.5,null]\n");
}

/* A household with a masked-by-default member. */
typedef struct s_hh {
    Gridsync__V1__Household hh;
    Gridsync__V1__Person p;
    Gridsync__V1__Person *members[1];
    char *phones[2];
    Gridsync__V1__Record rec;
    Gridsync__V1__ChangeEvent ev;
    int reveal;
} s_hh_t;

static void
s_hh_init(s_hh_t *h)
{
    memset(h, 0, sizeof *h);
    gridsync__v1__household__init(&h->hh);
    gridsync__v1__person__init(&h->p);
    gridsync__v1__record__init(&h->rec);
    gridsync__v1__change_event__init(&h->ev);
    h->p.id_type = GRIDSYNC__V1__ID_TYPE__ID_TYPE_RESIDENT_CARD;
    h->p.id_number = (char *) "110101199003071234";
    h->p.name = (char *) "张三";
    h->p.sex = GRIDSYNC__V1__SEX__SEX_FEMALE;
    h->phones[0] = (char *) "13812345678";
    h->phones[1] = (char *) "075512345678";
    h->p.phones = h->phones;
    h->p.n_phones = 2;
    h->members[0] = &h->p;
    h->hh.household_id = (char *) "H1";
    h->hh.grid_code = (char *) "440305001001001";
    h->hh.members = h->members;
    h->hh.n_members = 1;
    h->hh.is_hukou_household = 1;
    h->rec.body_case = GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD;
    h->rec.household = &h->hh;
    h->ev.seq = 12;
    h->ev.grid_code = (char *) "440305001001001";
    h->ev.kind = GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD;
    h->ev.op = GRIDSYNC__V1__OPERATION__OPERATION_UPSERT;
    h->ev.version = 1;
    h->ev.record_key = (char *) "H1";
    h->ev.origin_device = (char *) "dev-1";
    h->ev.committed_at = 1795000000000;
    h->ev.record = &h->rec;
}

static void
s_msg(gs_json_t *j, void *arg)
{
    s_hh_t *h = arg;
    gs_json_msg(j, &h->hh.base, h->reveal);
}

static void
s_event(gs_json_t *j, void *arg)
{
    s_hh_t *h = arg;
    gs_json_event(j, &h->ev, h->reveal);
}

#define S_HH_MASKED                                                                    \
    "{\"household_id\":\"H1\",\"grid_code\":\"440305001001001\",\"members\":[{"          \
    "\"id_type\":\"ID_TYPE_RESIDENT_CARD\",\"id_number\":\"110101********1234\","        \
    "\"name\":\"张三\",\"sex\":\"SEX_FEMALE\",\"phones\":[\"138****5678\","              \
    "\"075*****5678\"]}],\"is_hukou_household\":true}"

static void
test_message(void **state)
{
    (void) state;
    s_hh_t h;
    s_hh_init(&h);
    s_expect(s_msg, &h, S_HH_MASKED "\n");
    h.reveal = 1;
    char *s = s_to_buf(s_msg, &h);
    assert_non_null(strstr(s, "\"id_number\":\"110101199003071234\""));
    assert_non_null(strstr(s, "\"phones\":[\"13812345678\",\"075512345678\"]"));
    free(s);
}

static void
s_snapshot_request(gs_json_t *j, void *arg)
{
    Gridsync__V1__SnapshotRequest *r = arg;
    gs_json_msg(j, &r->base, 0);
}

static void
test_message_bytes_and_defaults(void **state)
{
    (void) state;
    Gridsync__V1__SnapshotRequest r = GRIDSYNC__V1__SNAPSHOT_REQUEST__INIT;
    s_expect(s_snapshot_request, &r, "{}\n");
    char *pf[] = { (char *) "4403", (char *) "" };
    uint8_t cur[] = { 0x00, 0xab, 0x10 };
    r.prefixes = pf;
    r.n_prefixes = 2;
    r.cursor.data = cur;
    r.cursor.len = sizeof cur;
    r.limit = 7;
    s_expect(s_snapshot_request, &r,
             "{\"prefixes\":[\"4403\",\"\"],\"limit\":7,\"cursor\":\"00ab10\"}\n");
}

static void
test_event_line(void **state)
{
    (void) state;
    s_hh_t h;
    s_hh_init(&h);
    s_expect(s_event, &h,
             "{\"seq\":12,\"grid\":\"440305001001001\",\"kind\":\"household\",\"op\":\"upsert\","
             "\"version\":1,\"record_key\":\"H1\",\"origin_device\":\"dev-1\","
             "\"committed_at\":1795000000000,\"record\":" S_HH_MASKED "}\n");
    /* a move carries its previous grid; unknown kinds and ops say so */
    h.ev.previous_grid_code = (char *) "440305001001002";
    h.ev.kind = 9;
    h.ev.op = 0;
    h.ev.record = NULL;
    s_expect(s_event, &h,
             "{\"seq\":12,\"grid\":\"440305001001001\",\"kind\":\"unspecified\","
             "\"op\":\"unspecified\",\"version\":1,\"record_key\":\"H1\","
             "\"origin_device\":\"dev-1\",\"committed_at\":1795000000000,"
             "\"previous_grid_code\":\"440305001001002\"}\n");
}

static void
test_names(void **state)
{
    (void) state;
    assert_string_equal(gs_render_kind_name(GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_RENTAL), "rental");
    assert_null(gs_render_kind_name(0));
    assert_string_equal(gs_render_op_name(GRIDSYNC__V1__OPERATION__OPERATION_MOVE_IN), "move_in");
    assert_null(gs_render_op_name(99));
    s_hh_t h;
    s_hh_init(&h);
    assert_ptr_equal(gs_render_record_body(&h.rec), &h.hh.base);
    assert_null(gs_render_record_body(NULL));
    h.rec.body_case = GRIDSYNC__V1__RECORD__BODY_RENTAL;
    h.rec.rental = NULL; /* shares its storage with household */
    assert_null(gs_render_record_body(&h.rec));
    h.rec.body_case = GRIDSYNC__V1__RECORD__BODY__NOT_SET;
    assert_null(gs_render_record_body(&h.rec));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_nesting),
        cmocka_unit_test(test_writer_strings),
        cmocka_unit_test(test_writer_doubles),
        cmocka_unit_test(test_message),
        cmocka_unit_test(test_message_bytes_and_defaults),
        cmocka_unit_test(test_event_line),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_schema: the wire format is plain protobuf and the schema can grow.
 *
 * Encodes records with the generated protoc-c code, decodes them again, and
 * hands a sample to Google's own `protoc --decode` to show that any language
 * with the .proto file can read what gridsync writes. Also shows that a
 * message carrying fields this build does not know (a newer client) still
 * decodes, which is the compatibility promise of docs/data-model.md.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gridsync.pb-c.h"
#include "gs_validate.h"

#ifndef GS_PROTO_DIR
#error "GS_PROTO_DIR must name the directory holding gridsync.proto"
#endif

/* A household of two, filled the way a handheld would. */
static void
s_household_fill(Gridsync__V1__Household *h, Gridsync__V1__Person *m[2],
                 Gridsync__V1__RecordMeta *meta)
{
    gridsync__v1__household__init(h);
    gridsync__v1__record_meta__init(meta);
    h->household_id = "H440305001001001-00001";
    h->grid_code = "440305001001001";
    h->address_code = "4403050010010010101";
    h->address = "南山区南头街道南联社区1栋101";
    h->hukou_number = "000123";
    h->is_hukou_household = 1;
    meta->collector_id = "col-440305001001001";
    meta->device_id = "dev-440305001001001";
    meta->collected_at = 1780000000000;
    h->meta = meta;
    for (int i = 0; i < 2; i++)
        gridsync__v1__person__init(m[i]);
    m[0]->id_type = GRIDSYNC__V1__ID_TYPE__ID_TYPE_RESIDENT_CARD;
    m[0]->id_number = "11010519491231002X";
    m[0]->name = "王秀英";
    m[0]->sex = GRIDSYNC__V1__SEX__SEX_FEMALE;
    m[0]->birth_date = "1949-12-31";
    m[0]->population_type = GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_REGISTERED;
    m[0]->residence_status = GRIDSYNC__V1__RESIDENCE_STATUS__RESIDENCE_STATUS_PRESENT_REGISTERED;
    m[0]->relation = GRIDSYNC__V1__RELATION__RELATION_HEAD;
    m[1]->id_type = GRIDSYNC__V1__ID_TYPE__ID_TYPE_RESIDENT_CARD;
    m[1]->id_number = "34052419800101001X";
    m[1]->name = "李强";
    m[1]->sex = GRIDSYNC__V1__SEX__SEX_MALE;
    m[1]->birth_date = "1980-01-01";
    m[1]->population_type = GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_FLOATING;
    m[1]->residence_status = GRIDSYNC__V1__RESIDENCE_STATUS__RESIDENCE_STATUS_PRESENT_ONLY;
    m[1]->relation = GRIDSYNC__V1__RELATION__RELATION_CHILD;
    h->n_members = 2;
    h->members = m;
}

static uint8_t *
s_pack_household(const Gridsync__V1__Household *h, size_t *len)
{
    *len = gridsync__v1__household__get_packed_size(h);
    uint8_t *buf = malloc(*len);
    assert_non_null(buf);
    assert_int_equal(gridsync__v1__household__pack(h, buf), *len);
    return buf;
}

/* Tables indexed by ResultStatus are GS_RESULT_STATUSES long: the schema
 * must have exactly those values, 0 to GS_RESULT_STATUSES - 1. */
static void
test_result_status_count(void **state)
{
    (void) state;
    const ProtobufCEnumDescriptor *d = &gridsync__v1__result_status__descriptor;
    assert_int_equal(d->n_values, GS_RESULT_STATUSES);
    for (unsigned i = 0; i < d->n_values; i++)
        assert_true(d->values[i].value >= 0 && d->values[i].value < GS_RESULT_STATUSES);
}

static void
test_household_roundtrip(void **state)
{
    (void) state;
    Gridsync__V1__Household h;
    Gridsync__V1__Person p0, p1, *m[2] = { &p0, &p1 };
    Gridsync__V1__RecordMeta meta;
    s_household_fill(&h, m, &meta);
    size_t len;
    uint8_t *buf = s_pack_household(&h, &len);

    Gridsync__V1__Household *d = gridsync__v1__household__unpack(NULL, len, buf);
    assert_non_null(d);
    assert_string_equal(d->household_id, h.household_id);
    assert_string_equal(d->grid_code, "440305001001001");
    assert_int_equal(d->n_members, 2);
    assert_string_equal(d->members[1]->name, "李强");
    assert_int_equal(d->members[0]->relation, GRIDSYNC__V1__RELATION__RELATION_HEAD);
    assert_int_equal(d->meta->collected_at, 1780000000000);
    gridsync__v1__household__free_unpacked(d, NULL);
    free(buf);
}

/* protoc (the reference implementation) decodes our bytes. */
static void
test_protoc_decodes_sample(void **state)
{
    (void) state;
    Gridsync__V1__Household h;
    Gridsync__V1__Person p0, p1, *m[2] = { &p0, &p1 };
    Gridsync__V1__RecordMeta meta;
    s_household_fill(&h, m, &meta);
    size_t len;
    uint8_t *buf = s_pack_household(&h, &len);

    char dir[] = "/tmp/gs-schema-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], cmd[1024];
    snprintf(path, sizeof path, "%s/sample.bin", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
    free(buf);

    snprintf(cmd, sizeof cmd,
             "protoc --decode=gridsync.v1.Household -I%s %s/gridsync.proto < %s",
             GS_PROTO_DIR, GS_PROTO_DIR, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[8192];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int rc = pclose(p);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "household_id: \"H440305001001001-00001\""));
    assert_non_null(strstr(out, "relation: RELATION_HEAD"));
    assert_non_null(strstr(out, "id_number: \"34052419800101001X\""));
    unlink(path);
    rmdir(dir);
}

/* A newer client adds field 120 (varint) and field 121 (string) to a
 * Person; this build must still decode everything it knows. */
static void
test_unknown_fields_tolerated(void **state)
{
    (void) state;
    Gridsync__V1__Person p;
    gridsync__v1__person__init(&p);
    p.name = "张三";
    p.id_type = GRIDSYNC__V1__ID_TYPE__ID_TYPE_NONE;
    size_t len = gridsync__v1__person__get_packed_size(&p);
    uint8_t buf[256];
    assert_true(len + 16 < sizeof buf);
    gridsync__v1__person__pack(&p, buf);
    /* field 120, wire type 0: tag = 120<<3 = 960 -> varint 0xC0 0x07 */
    buf[len++] = 0xC0;
    buf[len++] = 0x07;
    buf[len++] = 0x2A;
    /* field 121, wire type 2: tag = 121<<3|2 = 970 -> 0xCA 0x07, len 2 */
    buf[len++] = 0xCA;
    buf[len++] = 0x07;
    buf[len++] = 0x02;
    buf[len++] = 'o';
    buf[len++] = 'k';
    Gridsync__V1__Person *d = gridsync__v1__person__unpack(NULL, len, buf);
    assert_non_null(d);
    assert_string_equal(d->name, "张三");
    assert_int_equal(d->id_type, GRIDSYNC__V1__ID_TYPE__ID_TYPE_NONE);
    gridsync__v1__person__free_unpacked(d, NULL);
}

/* An enum value this build does not know survives decoding as a number,
 * so validation (not the decoder) decides what to do with it. */
static void
test_unknown_enum_value_decodes(void **state)
{
    (void) state;
    /* Person{ sex: 7 }: field 4 varint */
    const uint8_t buf[] = { 0x20, 0x07 };
    Gridsync__V1__Person *d = gridsync__v1__person__unpack(NULL, sizeof buf, buf);
    assert_non_null(d);
    assert_int_equal((int) d->sex, 7);
    gridsync__v1__person__free_unpacked(d, NULL);
}

/* Truncated input is refused by the decoder, not misread. */
static void
test_truncated_refused(void **state)
{
    (void) state;
    Gridsync__V1__Household h;
    Gridsync__V1__Person p0, p1, *m[2] = { &p0, &p1 };
    Gridsync__V1__RecordMeta meta;
    s_household_fill(&h, m, &meta);
    size_t len;
    uint8_t *buf = s_pack_household(&h, &len);
    size_t refused = 0;
    for (size_t cut = 1; cut < len; cut++) {
        Gridsync__V1__Household *d = gridsync__v1__household__unpack(NULL, cut, buf);
        if (!d)
            refused++;
        else
            gridsync__v1__household__free_unpacked(d, NULL);
    }
    /* most cuts land inside a length-delimited field and must fail */
    assert_true(refused > len / 2);
    free(buf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_result_status_count),
        cmocka_unit_test(test_household_roundtrip),
        cmocka_unit_test(test_protoc_decodes_sample),
        cmocka_unit_test(test_unknown_fields_tolerated),
        cmocka_unit_test(test_unknown_enum_value_decodes),
        cmocka_unit_test(test_truncated_refused),
    };
    return cmocka_run_group_tests_name("schema", tests, NULL, NULL);
}

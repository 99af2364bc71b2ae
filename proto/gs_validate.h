/*
 * gs_validate: field and record validation for gridsync.
 *
 * Where it sits: the first thing that looks inside an uploaded record. The
 * store calls gs_record_check() on every record before deciding what to do
 * with it; gridsim uses the check-character helpers to make valid data.
 *
 * Everything here is pure: no I/O, no clock, no globals that change. "Now"
 * is passed in so that results are reproducible in tests. Calendar dates are
 * taken in China Standard Time (UTC+8, no daylight saving).
 *
 * Every check fills a gs_verdict_t with a reason code (gridsync.v1.Reason,
 * 0 = valid) and a message a collector can act on, such as
 * "member 3: ID number check character should be X". Functions return the
 * reason code too, so callers can write `if (gs_x_check(...)) ...`.
 *
 * Thread safety: all functions are reentrant.
 */
#ifndef GS_VALIDATE_H
#define GS_VALIDATE_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>
#include "gridsync.pb-c.h"

#define GS_MSG_MAX 200          /* bytes in a verdict message, NUL included */
#define GS_ID_MAX 64            /* bytes in a record id, device id or upload id
                                 * (a copy needs GS_ID_MAX + 1 with the NUL) */
#define GS_GRID_LEN 15          /* digits in a grid code */
#define GS_RESULT_STATUSES (GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_REJECTED + 1)
                                /* ResultStatus values, for tables indexed by them
                                 * (test_schema checks it against the schema) */

typedef struct gs_verdict {
    int reason;                 /* Gridsync__V1__Reason; 0 when valid */
    char message[GS_MSG_MAX];   /* for a person; "" when valid */
} gs_verdict_t;

/* Size and count limits for everything a client can send. Documented in
 * docs/security.md; the broker may be configured with other values. */
typedef struct gs_limits {
    uint32_t max_records;       /* records per upload (default 1000) */
    uint32_t max_members;       /* persons per household (default 32) */
    uint32_t max_phones;        /* phones per person (default 8) */
    uint32_t max_leases;        /* leases per rental unit (default 64) */
    uint32_t max_inspections;   /* inspections per rental unit or organisation
                                 * (default 64) */
    uint32_t max_hazards;       /* hazards per inspection (default 32) */
    uint32_t max_employees;     /* employees per organisation (default 500) */
    uint32_t max_related;       /* related records per incident (default 16) */
    uint32_t max_transitions;   /* history entries per incident (default 64) */
    uint32_t max_text;          /* bytes in a free-text field (default 256) */
    uint32_t max_name;          /* bytes in a person or organisation name (default 64) */
} gs_limits_t;

extern const gs_limits_t gs_limits_default;

/* Set *v to valid (reason 0, empty message). */
void gs_verdict_clear(gs_verdict_t *v);

/* Set *v to reason with a printf-style message; returns reason. A message
 * longer than GS_MSG_MAX - 1 bytes is cut at a UTF-8 character boundary.
 * v may be NULL (every function here accepts a NULL verdict). */
int gs_verdict_set(gs_verdict_t *v, int reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Name of a reason code, e.g. "ID_CHECK"; "UNKNOWN" for values not in the
 * schema. Never NULL. */
const char *gs_reason_name(int reason);

/* ---- Resident ID numbers (GB 11643-1999) -------------------------------- */

/* The check character for the first 17 digits of an 18-character number:
 * '0'..'9' or 'X'. Returns 0 if first17 is not 17 ASCII digits. */
char gs_idnum_check_char(const char *first17);

/* Normalise an ID number as typed: trim ASCII and ideographic spaces at the
 * ends, fold full-width digits and letters (U+FF10.., U+FF21.., U+FF41..) to
 * ASCII, uppercase 'x', and upgrade a legacy 15-digit number to 18 by
 * inserting "19" after position 6 and computing the check character.
 * Writes the NUL-terminated result to out (out_size >= 19; "" on failure).
 * Returns 0, or REASON_ID_FORMAT with a message when the input is empty, too
 * long, or not digits (with a final X) after folding. Does not verify the
 * check character or the date: see gs_idnum_check(). */
int gs_idnum_normalize(const char *in, char *out, size_t out_size,
                       gs_verdict_t *v);

/* Check an already normalised 18-character number: shape, province code
 * (11-15, 21-23, 31-37, 41-46, 50-54, 61-65, 71, 81, 82, 83, 91), birth date
 * (a real date, not before 1850-01-01, not after today at now_ms) and check
 * character, in that order. Returns 0 or REASON_ID_FORMAT / REASON_ID_DATE /
 * REASON_ID_CHECK. The message names the expected check character but never
 * repeats the number (messages end up in logs). */
int gs_idnum_check(const char *id18, int64_t now_ms, gs_verdict_t *v);

/* Birth date (YYYYMMDD as an int) and sex (1 male, 2 female: odd or even
 * 17th digit) encoded in a valid 18-character number; 0 when those digits
 * are missing. */
int gs_idnum_birth(const char *id18);
int gs_idnum_sex(const char *id18);

/* ---- Unified social credit codes (GB 32100-2015) ------------------------ */

/* The check character for the first 17 characters, or 0 if any is outside
 * the alphabet 0123456789ABCDEFGHJKLMNPQRTUWXY. */
char gs_uscc_check_char(const char *first17);

/* Check an 18-character USCC (ASCII uppercase; lowercase is folded by
 * the caller's normaliser, see gs_record_check). Returns 0,
 * REASON_USCC_FORMAT or REASON_USCC_CHECK. */
int gs_uscc_check(const char *uscc, gs_verdict_t *v);

/* ---- Industry codes (GB/T 4754-2017) ----------------------------------- */

/* Check an industry code as collectors write it: a section letter A..T,
 * alone or followed by a 2, 3 or 4 digit code whose first two digits (the
 * division) belong to that section (A 01-05, B 06-12, C 13-43, ... T 97),
 * e.g. "F", "F52", "F5261". Only the shape and the section/division
 * agreement are checked, not that the group or class exists. Returns 0 or
 * REASON_INDUSTRY. */
int gs_industry_check(const char *code, gs_verdict_t *v);

/* ---- Organisation names ------------------------------------------------- */

/* An organisation's name folded for comparison, as the natural key of an
 * organisation without a USCC uses it: full-width ASCII forms folded to
 * ASCII, ASCII letters lower-cased, white space (ASCII and U+3000)
 * removed, every other character kept as it is. Writes at most
 * out_size - 1 bytes and a NUL (cut at a character boundary); returns the
 * length. NULL counts as "". */
size_t gs_org_name_fold(const char *name, char *out, size_t out_size);

/* ---- Phones ------------------------------------------------------------- */

/* Normalise and check a phone number. Folds full-width characters, strips
 * white space, hyphens, round brackets and one leading +86 / 0086. Accepts
 * a mainland mobile (^1[3-9]\d{9}$) or a landline with area code (0
 * followed by 9 to 11 digits, e.g. 010-12345678, 0755-1234567), whose area
 * code does not start with 0 (00 is an international prefix) and starts
 * with 1 only as Beijing's 10. After +86 a landline written without its
 * trunk 0 ("+86 10 1234 5678") gets it back. The result normalises to
 * itself. Writes the digits to out (out_size >= 16; "" on failure).
 * Returns 0 or REASON_PHONE; the message does not repeat the number. */
int gs_phone_normalize(const char *in, char *out, size_t out_size,
                       gs_verdict_t *v);

/* ---- Grid codes --------------------------------------------------------- */

/* Hierarchy levels of a grid-code prefix, by length. */
enum {
    GS_LEVEL_ALL = 0,           /* ""                 */
    GS_LEVEL_PROVINCE = 1,      /* 2 digits           */
    GS_LEVEL_CITY = 2,          /* 4 digits           */
    GS_LEVEL_DISTRICT = 3,      /* 6 digits           */
    GS_LEVEL_STREET = 4,        /* 9 digits           */
    GS_LEVEL_COMMUNITY = 5,     /* 12 digits          */
    GS_LEVEL_GRID = 6,          /* 15 digits          */
    GS_LEVELS = 7
};

/* Prefix length of each level: {0, 2, 4, 6, 9, 12, 15}. */
extern const int gs_level_len[GS_LEVELS];

/* Level of a prefix of length len, or -1 if len is not a level boundary. */
int gs_level_of_len(size_t len);

/* Check a full grid code: 15 ASCII digits, a GB/T 2260 province (11-15,
 * 21-23, 31-37, 41-46, 50-54, 61-65, 71, 81, 82), and
 * non-zero street, community and grid segments. Returns 0 or
 * REASON_GRID_CODE with a message saying which segment is wrong. */
int gs_gridcode_check(const char *code, gs_verdict_t *v);

/* Check a subscription / pull prefix: digits only, length at a level
 * boundary (0, 2, 4, 6, 9, 12 or 15). Returns 0 or REASON_BAD_REQUEST. */
int gs_prefix_check(const char *prefix, gs_verdict_t *v);

/* ---- Dates -------------------------------------------------------------- */

/* Parse "YYYY-MM-DD" into *yyyymmdd. Checks that the day exists (leap years
 * included) and 1850 <= year <= 2200. Returns 0 or REASON_DATE. */
int gs_date_parse(const char *s, int *yyyymmdd, gs_verdict_t *v);

/* Today's date as YYYYMMDD in China Standard Time at Unix time now_ms. */
int gs_date_today(int64_t now_ms);

/* ---- Text --------------------------------------------------------------- */

/* Check a string: valid UTF-8 (no overlongs, surrogates or code points
 * above U+10FFFF), no control characters (below U+0020, U+007F, and the C1
 * controls U+0080..U+009F), at most max_bytes bytes. NULL counts as "".
 * field names the field for the message.
 * Returns 0, REASON_BAD_ENCODING or REASON_TOO_LONG. */
int gs_text_check(const char *s, size_t max_bytes, const char *field,
                  gs_verdict_t *v);

/* Check an identifier used in store keys (record, device, upload, collector
 * ids): 1..GS_ID_MAX bytes of [A-Za-z0-9._:-]. Returns 0, REASON_REQUIRED
 * (empty) or REASON_BAD_REQUEST. Inside gs_record_check() the same problems
 * in household_id, house_id and meta ids are reported as REASON_BAD_ENCODING
 * (bad characters) or REASON_TOO_LONG instead, since they are record-level. */
int gs_ident_check(const char *s, const char *field, gs_verdict_t *v);

/* ---- Records ------------------------------------------------------------ */

/* Normalise then validate one record, as the store does before storing it.
 *
 * Unknown fields (fields this schema does not know, at any depth of the
 * record) are dropped first, whatever the verdict, and released with alloc:
 * only what the schema knows is stored and forwarded to feeds, where the
 * privacy filter can see it (see gs_wire_strip_unknown).
 *
 * Normalisation, in place: resident ID numbers (see gs_idnum_normalize),
 * phones (gs_phone_normalize), USCC trimmed, folded and uppercased. A
 * replaced string is allocated with alloc and the old one released with
 * alloc (pass the allocator the message was unpacked with; NULL means
 * malloc/free, as protobuf-c's default). A string is replaced only when its
 * normal form differs, and protobuf-c's shared empty string is never freed.
 * So a record built by hand over string literals must be checked with an
 * allocator whose free is a no-op (an arena) unless it is already normal.
 * When the check fails, strings normalised before the failure stay
 * replaced; the record remains consistent and can be freed as usual.
 *
 * Validation: required fields (domain.md), enum values known to this schema
 * (REASON_BAD_ENUM; proto3 keeps unknown values as plain ints),
 * ID check characters and their agreement with birth_date and sex, USCC,
 * phones, grid code, dates (birth and inspection dates not in the future,
 * lease end not before start), exactly one household head, no ID number
 * twice in one record (REASON_DUPLICATE_MEMBER; persons without documents
 * never clash), string and list limits from lim (NULL = defaults; names use
 * max_name, other strings max_text), rental area_m2 finite in 0..100000,
 * record metadata (collector_id, device_id, collected_at not more than a day
 * ahead of now_ms, status). An organisation needs a kind, a status and a
 * place (address_code, or room with building and room); its USCC passes
 * gs_uscc_check, or is empty only for kind INDIVIDUAL_BUSINESS (an
 * unregistered stall), which then needs a name; its industry passes
 * gs_industry_check; its legal representative, contact and employees are
 * checked as persons; one person may be representative, contact and
 * employee, but no employee is listed twice. An incident needs a category
 * code of the right shape (gs_incident_code_check, else REASON_CATEGORY;
 * the store checks that its configured table holds it), a
 * severity, a status, a description and a place (address_code, room,
 * address or location); its location has finite latitude -90..90 and
 * longitude -180..180 (REASON_OUT_OF_RANGE); its related records name a
 * kind and an id; status DISPATCHED needs a department (an identifier);
 * its history entries are checked for shape only (the store rewrites
 * them, see docs/data-model.md).
 *
 * Order: the record's own fields, then each person / lease / inspection in
 * list order, then the household head count, then metadata, then duplicate
 * ID numbers. Stops at the first problem. The message locates it for a
 * person (lists are counted from 1), e.g.
 * "member 3: ID number check character should be X, not 5" or
 * "lease 2 tenant: birth_date 2031-02-30 is not a real date".
 * Returns 0 or the reason code. */
int gs_record_check(Gridsync__V1__Record *rec, ProtobufCAllocator *alloc,
                    const gs_limits_t *lim, int64_t now_ms, gs_verdict_t *v);

/* gs_record_check, and *changed (may be NULL) = how many changes the
 * normalisation made to rec: strings replaced by their normal form plus
 * unknown fields dropped. 0 means rec holds exactly what it was unpacked
 * with, so bytes it was unpacked from that pack would write again
 * (gs_wire_is_canonical) are its packed form. */
int gs_record_check_changed(Gridsync__V1__Record *rec, ProtobufCAllocator *alloc,
                            const gs_limits_t *lim, int64_t now_ms, gs_verdict_t *v,
                            size_t *changed);

/* gs_record_check_changed for a record unpacked from bytes that hold no
 * field this schema does not know, at any depth (gs_wire_is_canonical said
 * 1 of them): the walk that would drop unknown fields is skipped, as it
 * would drop none; the verdict, the normalisation and *changed are the
 * same. */
int gs_record_check_known(Gridsync__V1__Record *rec, ProtobufCAllocator *alloc,
                          const gs_limits_t *lim, int64_t now_ms, gs_verdict_t *v,
                          size_t *changed);

/* Validate an upload's envelope (not its records): device_id and upload_id
 * are identifiers, record count within lim->max_records and above zero.
 * Returns 0, REASON_BAD_REQUEST or REASON_TOO_MANY_RECORDS. */
int gs_upload_check(const Gridsync__V1__Upload *up, const gs_limits_t *lim,
                    gs_verdict_t *v);

/* The grid code and record id of a record (household_id, house_id,
 * org_id or incident_id), or NULLs when it has no body. */
const char *gs_record_grid(const Gridsync__V1__Record *rec);
const char *gs_record_id(const Gridsync__V1__Record *rec);
/* RECORD_KIND_HOUSEHOLD, RECORD_KIND_RENTAL, RECORD_KIND_ORGANISATION,
 * RECORD_KIND_INCIDENT, or 0 when it has no body. */
int gs_record_kind(const Gridsync__V1__Record *rec);
/* The record's metadata, or NULL. */
Gridsync__V1__RecordMeta *gs_record_meta(const Gridsync__V1__Record *rec);

#endif

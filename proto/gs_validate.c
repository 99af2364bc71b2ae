/*
 * gs_validate: field and record validation. See gs_validate.h.
 *
 * Where it sits: between protobuf-c unpacking and the store. The broker
 * unpacks an upload, checks its envelope with gs_upload_check(), and the store
 * runs gs_record_check() on each record, which normalises identity numbers
 * and phones in place and then decides whether the record may be stored.
 *
 * Messages never echo ID numbers or phone numbers (they end up in logs and
 * acks; see PIPL notes in the domain brief), and only echo other input when it
 * is short printable ASCII, so that a message is always valid UTF-8.
 */
#include "gs_validate.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gs_incident.h"
#include "gs_grid.h"
#include "gs_wire.h"

#define R(name) GRIDSYNC__V1__REASON__REASON_##name

#define S_DAY_MS 86400000LL
#define S_CST_OFFSET_MS (8LL * 3600 * 1000)
#define S_MIN_BIRTH 18500101
#define S_AREA_MAX 100000.0
#define S_ECHO_MAX 24           /* bytes of user input quoted in a message */

const gs_limits_t gs_limits_default = {
    .max_records = 1000,
    .max_members = 32,
    .max_phones = 8,
    .max_leases = 64,
    .max_inspections = 64,
    .max_hazards = 32,
    .max_employees = 500,
    .max_related = 16,
    .max_transitions = 64,
    .max_text = 256,
    .max_name = 64,
};

const int gs_level_len[GS_LEVELS] = {0, 2, 4, 6, 9, 12, 15};

/* ---- Verdicts ----------------------------------------------------------- */

/* Cut a truncated message back to the last whole UTF-8 character. */
static void
s_utf8_trim_tail(char *s)
{
    size_t n = strlen(s);
    size_t i = n;
    while (i > 0 && ((unsigned char) s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0)
        return;
    unsigned char lead = (unsigned char) s[i - 1];
    size_t want = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (n - (i - 1) < want)
        s[i - 1] = '\0';
}

void
gs_verdict_clear(gs_verdict_t *v)
{
    if (!v)
        return;
    v->reason = 0;
    v->message[0] = '\0';
}

int
gs_verdict_set(gs_verdict_t *v, int reason, const char *fmt, ...)
{
    if (!v)
        return reason;
    v->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(v->message, sizeof(v->message), fmt, ap);
    va_end(ap);
    if (n < 0)
        v->message[0] = '\0';
    else if ((size_t) n >= sizeof(v->message))
        s_utf8_trim_tail(v->message);
    return reason;
}

/* Put "prefix: " in front of the message already in v. */
static int
s_verdict_prefix(gs_verdict_t *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
s_verdict_prefix(gs_verdict_t *v, const char *fmt, ...)
{
    if (!v)
        return 0;
    char prefix[GS_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    if (n < 0)
        return v->reason;
    char old[GS_MSG_MAX];
    memcpy(old, v->message, sizeof(old));
    return gs_verdict_set(v, v->reason, "%s: %s", prefix, old);
}

const char *
gs_reason_name(int reason)
{
    const ProtobufCEnumValue *ev =
        protobuf_c_enum_descriptor_get_value(&gridsync__v1__reason__descriptor,
                                             reason);
    if (!ev)
        return "UNKNOWN";
    const char *name = ev->name;
    if (strncmp(name, "REASON_", 7) == 0)
        name += 7;
    return name;
}

/* Quote at most S_ECHO_MAX bytes of s into buf if it is printable ASCII;
 * otherwise a placeholder, so that messages stay valid UTF-8. */
static const char *
s_echo(const char *s, char buf[S_ECHO_MAX + 4])
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char) s[n];
        if (c < 0x20 || c >= 0x7F)
            return "(value not shown)";
        if (n == S_ECHO_MAX) {
            memcpy(buf, s, n);
            memcpy(buf + n, "...", 4);
            return buf;
        }
    }
    memcpy(buf, s, n + 1);
    return buf;
}

static const char *
s_str(const char *s)
{
    return s ? s : "";
}

/* ---- UTF-8 and folding -------------------------------------------------- */

/* Decode one strictly valid UTF-8 character at s[*i] (no overlongs, no
 * surrogates, at most U+10FFFF). Returns 0 and advances *i, or -1. */
static inline int
s_utf8_next(const unsigned char *s, size_t len, size_t *i, uint32_t *cp)
{
    size_t k = *i;
    unsigned char c = s[k];
    uint32_t min;
    size_t need;
    if (c < 0x80) {
        *cp = c;
        *i = k + 1;
        return 0;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        min = 0x80;
        *cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        min = 0x800;
        *cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        min = 0x10000;
        *cp = c & 0x07;
    } else {
        return -1;
    }
    if (len - k - 1 < need)
        return -1;
    for (size_t j = 1; j <= need; j++) {
        unsigned char cc = s[k + j];
        if ((cc & 0xC0) != 0x80)
            return -1;
        *cp = (*cp << 6) | (cc & 0x3F);
    }
    if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF))
        return -1;
    *i = k + 1 + need;
    return 0;
}

/* Map the full-width forms people type on Chinese keyboards to ASCII, and
 * the ideographic space to a space. Returns 0 for anything else non-ASCII. */
static int
s_fold_char(uint32_t cp)
{
    if (cp < 0x80)
        return (int) cp;
    if (cp == 0x3000)
        return ' ';
    /* U+FF01..U+FF5E mirror ASCII 0x21..0x7E: digits, letters, + - ( ) */
    if (cp >= 0xFF01 && cp <= 0xFF5E)
        return (int) (cp - 0xFF01 + 0x21);
    return 0;
}

static bool
s_is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v'
           || c == '\f';
}

enum { S_FOLD_OK = 0, S_FOLD_LONG = -1, S_FOLD_CHAR = -2 };

/* Fold in to ASCII in out (at most cap - 1 characters), dropping leading and
 * trailing spaces. Spaces are held back until something follows them, so
 * trailing padding never counts against cap. */
static int
s_fold(const char *in, char *out, size_t cap)
{
    const unsigned char *s = (const unsigned char *) in;
    size_t len = strlen(in);
    size_t i = 0, n = 0, spaces = 0;
    while (i < len) {
        int c;
        if (s[i] < 0x80) {
            /* ASCII (digits, letters, spaces: nearly every byte folded)
             * folds to itself, as s_utf8_next and s_fold_char would say */
            c = s[i++];
        } else {
            uint32_t cp;
            if (s_utf8_next(s, len, &i, &cp) < 0)
                return S_FOLD_CHAR;
            c = s_fold_char(cp);
            if (c == 0)
                return S_FOLD_CHAR;
        }
        if (s_is_space(c)) {
            if (n > 0)
                spaces++;
            continue;
        }
        if (n + spaces + 1 >= cap)
            return S_FOLD_LONG;
        while (spaces) {
            out[n++] = ' ';
            spaces--;
        }
        out[n++] = (char) c;
    }
    out[n] = '\0';
    return S_FOLD_OK;
}

static bool
s_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* ---- Dates -------------------------------------------------------------- */

static bool
s_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
s_days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && s_leap(y) ? 29 : dim[m - 1];
}

/* A real date with 1850 <= y <= 2200. */
static bool
s_ymd_valid(int y, int m, int d)
{
    return y >= 1850 && y <= 2200 && m >= 1 && m <= 12 && d >= 1
           && d <= s_days_in_month(y, m);
}

static int
s_num(const char *s, size_t n)
{
    int x = 0;
    for (size_t i = 0; i < n; i++)
        x = x * 10 + (s[i] - '0');
    return x;
}

enum { S_DATE_OK = 0, S_DATE_SHAPE = 1, S_DATE_UNREAL = 2 };

static int
s_date_parse(const char *s, int *yyyymmdd)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' || !s_digits(s, 4)
        || !s_digits(s + 5, 2) || !s_digits(s + 8, 2))
        return S_DATE_SHAPE;
    int y = s_num(s, 4), m = s_num(s + 5, 2), d = s_num(s + 8, 2);
    if (!s_ymd_valid(y, m, d))
        return S_DATE_UNREAL;
    *yyyymmdd = y * 10000 + m * 100 + d;
    return S_DATE_OK;
}

/* Report a date that failed s_date_parse, naming the field. */
static int
s_date_fail(gs_verdict_t *v, int how, const char *field, const char *s)
{
    char echo[S_ECHO_MAX + 4];
    if (how == S_DATE_SHAPE)
        return gs_verdict_set(v, R(DATE), "%s %s is not a YYYY-MM-DD date",
                              field, s_echo(s, echo));
    return gs_verdict_set(v, R(DATE), "%s %s is not a real date", field,
                          s_echo(s, echo));
}

int
gs_date_parse(const char *s, int *yyyymmdd, gs_verdict_t *v)
{
    int ymd = 0;
    s = s_str(s);
    int how = s_date_parse(s, &ymd);
    if (how != S_DATE_OK)
        return s_date_fail(v, how, "date", s);
    if (yyyymmdd)
        *yyyymmdd = ymd;
    gs_verdict_clear(v);
    return 0;
}

int
gs_date_today(int64_t now_ms)
{
    /* keep absurd clocks inside years 1..9999 so nothing below overflows */
    const int64_t lo = -62135596800000LL, hi = 253402271999999LL;
    if (now_ms < lo)
        now_ms = lo;
    if (now_ms > hi)
        now_ms = hi;
    int64_t ms = now_ms + S_CST_OFFSET_MS;
    int64_t z = ms / S_DAY_MS;
    if (ms % S_DAY_MS < 0)
        z--;
    int y, m, d;
    gs_civil_from_days(z, &y, &m, &d);
    return y * 10000 + m * 100 + d;
}

/* ---- Resident ID numbers ------------------------------------------------ */

static const int s_id_weights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6,
                                     3, 7, 9, 10, 5, 8, 4, 2};

char
gs_idnum_check_char(const char *first17)
{
    if (!first17)
        return 0;
    int sum = 0;
    for (int i = 0; i < 17; i++) {
        if (first17[i] < '0' || first17[i] > '9')
            return 0;
        sum += (first17[i] - '0') * s_id_weights[i];
    }
    return "10X98765432"[sum % 11];
}

/* Province-level codes that can start a resident ID number: GB/T 2260
 * provinces, 71 Taiwan, 81/82 Hong Kong and Macao, 83 Taiwan residents'
 * cards, 91 foreigners' permanent residence (2023 format). */
static bool
s_id_province_ok(int p)
{
    return (p >= 11 && p <= 15) || (p >= 21 && p <= 23) || (p >= 31 && p <= 37)
           || (p >= 41 && p <= 46) || (p >= 50 && p <= 54)
           || (p >= 61 && p <= 65) || p == 71 || p == 81 || p == 82
           || p == 83 || p == 91;
}

int
gs_idnum_normalize(const char *in, char *out, size_t out_size, gs_verdict_t *v)
{
    assert(out && out_size >= 19);
    if (!out || out_size < 19)
        return gs_verdict_set(v, R(INTERNAL), "ID number buffer too small");
    out[0] = '\0';
    in = s_str(in);
    if (strnlen(in, 19) == 18 && s_digits(in, 17) && (s_digits(in + 17, 1) || in[17] == 'X')) {
        /* already in normal form (every stored number, nearly every upload):
         * the fold below would give it back unchanged */
        memcpy(out, in, 19);
        gs_verdict_clear(v);
        return 0;
    }
    char buf[20];
    int rc = s_fold(in, buf, sizeof(buf));
    if (rc == S_FOLD_CHAR)
        return gs_verdict_set(v, R(ID_FORMAT),
                              "ID number may only contain digits and a final X");
    if (rc == S_FOLD_LONG)
        return gs_verdict_set(v, R(ID_FORMAT),
                              "ID number is too long (18 characters, or 15 "
                              "digits for an old card)");
    size_t n = strlen(buf);
    if (n == 0)
        return gs_verdict_set(v, R(ID_FORMAT), "ID number is empty");
    if (n == 18 && buf[17] == 'x')
        buf[17] = 'X';
    if (n == 18) {
        if (!s_digits(buf, 17) || !(s_digits(buf + 17, 1) || buf[17] == 'X'))
            return gs_verdict_set(v, R(ID_FORMAT),
                                  "ID number may only contain digits and a "
                                  "final X");
        memcpy(out, buf, 19);
    } else if (n == 15) {
        if (!s_digits(buf, 15))
            return gs_verdict_set(v, R(ID_FORMAT),
                                  "a 15-character ID number must be all "
                                  "digits");
        /* GB 11643-1989 cards: 2-digit year of the 1900s, no check */
        memcpy(out, buf, 6);
        memcpy(out + 6, "19", 2);
        memcpy(out + 8, buf + 6, 9);
        out[17] = gs_idnum_check_char(out);
        out[18] = '\0';
    } else {
        return gs_verdict_set(v, R(ID_FORMAT),
                              "ID number has %zu characters, not 18 (or 15 "
                              "for an old card)", n);
    }
    gs_verdict_clear(v);
    return 0;
}

/* gs_idnum_check against today (YYYYMMDD, gs_date_today): the record
 * check works the day out once per record, not once per person. */
static int
s_idnum_check(const char *id18, int today, gs_verdict_t *v)
{
    id18 = s_str(id18);
    size_t n = strlen(id18);
    if (n != 18 || !s_digits(id18, 17)
        || !(s_digits(id18 + 17, 1) || id18[17] == 'X'))
        return gs_verdict_set(v, R(ID_FORMAT),
                              "ID number must be 17 digits and a digit or X");
    int province = s_num(id18, 2);
    if (!s_id_province_ok(province))
        return gs_verdict_set(v, R(ID_FORMAT),
                              "ID number region %02d is not a province code",
                              province);
    int y = s_num(id18 + 6, 4), m = s_num(id18 + 10, 2), d = s_num(id18 + 12, 2);
    if (!s_ymd_valid(y, m, d))
        return gs_verdict_set(v, R(ID_DATE),
                              "birth date %04d-%02d-%02d in the ID number is "
                              "not a real date", y, m, d);
    int birth = y * 10000 + m * 100 + d;
    if (birth < S_MIN_BIRTH)
        return gs_verdict_set(v, R(ID_DATE),
                              "birth date %04d-%02d-%02d in the ID number is "
                              "before 1850", y, m, d);
    if (birth > today)
        return gs_verdict_set(v, R(ID_DATE),
                              "birth date %04d-%02d-%02d in the ID number is "
                              "in the future", y, m, d);
    char want = gs_idnum_check_char(id18);
    if (want != id18[17])
        return gs_verdict_set(v, R(ID_CHECK),
                              "ID number check character should be %c, not %c",
                              want, id18[17]);
    gs_verdict_clear(v);
    return 0;
}

int
gs_idnum_check(const char *id18, int64_t now_ms, gs_verdict_t *v)
{
    return s_idnum_check(id18, gs_date_today(now_ms), v);
}

int
gs_idnum_birth(const char *id18)
{
    if (!id18 || strlen(id18) < 14 || !s_digits(id18 + 6, 8))
        return 0;
    return s_num(id18 + 6, 8);
}

int
gs_idnum_sex(const char *id18)
{
    if (!id18 || strlen(id18) < 17 || !s_digits(id18 + 16, 1))
        return 0;
    return (id18[16] - '0') % 2 ? 1 : 2;
}

/* ---- USCC --------------------------------------------------------------- */

static const char s_uscc_alphabet[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
static const int s_uscc_weights[17] = {1, 3, 9, 27, 19, 26, 16, 17, 20,
                                       29, 25, 13, 8, 24, 10, 30, 28};

static int
s_uscc_value(char c)
{
    if (c == '\0')
        return -1;
    const char *p = strchr(s_uscc_alphabet, c);
    return p ? (int) (p - s_uscc_alphabet) : -1;
}

char
gs_uscc_check_char(const char *first17)
{
    if (!first17)
        return 0;
    int sum = 0;
    for (int i = 0; i < 17; i++) {
        int x = s_uscc_value(first17[i]);
        if (x < 0)
            return 0;
        sum += x * s_uscc_weights[i];
    }
    int c = 31 - sum % 31;
    return s_uscc_alphabet[c == 31 ? 0 : c];
}

int
gs_uscc_check(const char *uscc, gs_verdict_t *v)
{
    uscc = s_str(uscc);
    size_t n = strlen(uscc);
    if (n != 18)
        return gs_verdict_set(v, R(USCC_FORMAT),
                              "USCC has %zu characters, not 18", n);
    for (size_t i = 0; i < 18; i++)
        if (s_uscc_value(uscc[i]) < 0)
            return gs_verdict_set(v, R(USCC_FORMAT),
                                  "USCC character %zu is not one of "
                                  "0-9 and A-Y without I, O, S, V, Z", i + 1);
    char want = gs_uscc_check_char(uscc);
    if (want != uscc[17])
        return gs_verdict_set(v, R(USCC_CHECK),
                              "USCC check character should be %c, not %c",
                              want, uscc[17]);
    gs_verdict_clear(v);
    return 0;
}

/* ---- Industry codes (GB/T 4754-2017) ----------------------------------- */

/* Divisions (the first two digits) of each section letter A..T. */
static const struct {
    int lo, hi;
} s_sections[20] = {
    {1, 5},   {6, 12},  {13, 43}, {44, 46}, {47, 50}, {51, 52}, {53, 60},
    {61, 62}, {63, 65}, {66, 69}, {70, 70}, {71, 72}, {73, 75}, {76, 79},
    {80, 82}, {83, 83}, {84, 85}, {86, 90}, {91, 96}, {97, 97},
};

int
gs_industry_check(const char *code, gs_verdict_t *v)
{
    code = s_str(code);
    size_t n = strlen(code);
    char sec = n ? code[0] : 0;
    if (sec < 'A' || sec > 'T')
        return gs_verdict_set(v, R(INDUSTRY),
                              "industry must start with a GB/T 4754 section "
                              "letter A to T");
    if (n == 1) {
        gs_verdict_clear(v);
        return 0;
    }
    if (n < 3 || n > 5 || !s_digits(code + 1, n - 1))
        return gs_verdict_set(v, R(INDUSTRY),
                              "industry is a section letter, optionally "
                              "followed by a 2 to 4 digit code (e.g. F5261)");
    int div = s_num(code + 1, 2);
    int lo = s_sections[sec - 'A'].lo, hi = s_sections[sec - 'A'].hi;
    if (div < lo || div > hi)
        return gs_verdict_set(v, R(INDUSTRY),
                              "industry division %02d is not in section %c "
                              "(divisions %02d to %02d)", div, sec, lo, hi);
    gs_verdict_clear(v);
    return 0;
}

/* ---- Organisation names --------------------------------------------------- */

size_t
gs_org_name_fold(const char *name, char *out, size_t out_size)
{
    assert(out && out_size > 0);
    const unsigned char *s = (const unsigned char *) s_str(name);
    size_t len = strlen((const char *) s);
    size_t i = 0, n = 0;
    while (i < len) {
        size_t at = i;
        uint32_t cp;
        if (s_utf8_next(s, len, &i, &cp) < 0) {
            cp = s[at];     /* not UTF-8: kept byte by byte */
            i = at + 1;
        }
        int c = s_fold_char(cp);
        if (c && s_is_space(c))
            continue;
        char one;
        const char *bytes;
        size_t nb;
        if (c) {
            one = (char) (c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
            bytes = &one;
            nb = 1;
        } else {
            bytes = (const char *) s + at;
            nb = i - at;
        }
        if (n + nb >= out_size)
            break;
        memcpy(out + n, bytes, nb);
        n += nb;
    }
    out[n] = '\0';
    return n;
}

/* ---- Phones ------------------------------------------------------------- */

int
gs_phone_normalize(const char *in, char *out, size_t out_size, gs_verdict_t *v)
{
    assert(out && out_size >= 16);
    if (!out || out_size < 16)
        return gs_verdict_set(v, R(INTERNAL), "phone buffer too small");
    out[0] = '\0';
    char folded[40];
    int rc = s_fold(s_str(in), folded, sizeof(folded));
    if (rc != S_FOLD_OK)
        return gs_verdict_set(v, R(PHONE),
                              rc == S_FOLD_LONG ? "phone number is too long"
                                                : "phone number has characters "
                                                  "other than digits");
    char d[40];
    size_t n = 0;
    for (const char *p = folded; *p; p++) {
        if (*p == ' ' || *p == '-' || *p == '(' || *p == ')')
            continue;
        d[n++] = *p;
    }
    d[n] = '\0';
    const char *digits = d;
    bool international = false;
    if (strncmp(digits, "+86", 3) == 0) {
        digits += 3;
        international = true;
    } else if (strncmp(digits, "0086", 4) == 0) {
        digits += 4;
        international = true;
    }
    n = strlen(digits);
    if (n == 0)
        return gs_verdict_set(v, R(PHONE), "phone number is empty");
    if (!s_digits(digits, n))
        return gs_verdict_set(v, R(PHONE),
                              "phone number has characters other than digits");
    bool mobile = n == 11 && digits[0] == '1' && digits[1] >= '3';
    if (mobile) {
        memcpy(out, digits, n + 1);
    } else if (digits[0] == '0' && n >= 10 && n <= 12) {
        memcpy(out, digits, n + 1);
    } else if (international && digits[0] != '0' && n >= 9 && n <= 11) {
        /* +86 10 1234 5678: the trunk 0 is dropped in international form */
        out[0] = '0';
        memcpy(out + 1, digits, n + 1);
    } else {
        return gs_verdict_set(v, R(PHONE),
                              "phone number is neither a mobile (11 digits "
                              "from 13) nor a landline (0, area code, number)");
    }
    /* A landline's area code (after the trunk 0) never starts with 0: "00"
     * is an international prefix, and keeping "0086..." would not be a
     * fixed point (a second pass would strip it as the country code). The
     * only one starting with 1 is Beijing's 10: "01" and another digit is
     * a mobile typed with a 0 in front, or after +86 a mobile with a digit
     * missing ("+86 138 0013 800" is not the landline 01380013800), which
     * written without +86 is refused as a mobile. */
    if (!mobile && (out[1] == '0' || (out[1] == '1' && out[2] != '0'))) {
        bool zero = out[1] == '0';
        out[0] = '\0';
        return gs_verdict_set(v, R(PHONE),
                              zero ? "phone number is neither a mobile nor a landline "
                                     "(no area code starts with 0)"
                                   : "phone number is neither a mobile nor a landline "
                                     "(the only area code starting with 1 is 10; a "
                                     "mobile has 11 digits and no 0 in front)");
    }
    gs_verdict_clear(v);
    return 0;
}

/* ---- Grid codes and prefixes -------------------------------------------- */

int
gs_level_of_len(size_t len)
{
    for (int i = 0; i < GS_LEVELS; i++)
        if ((size_t) gs_level_len[i] == len)
            return i;
    return -1;
}

/* Province codes of GB/T 2260 (including 71, 81, 82). */
static bool
s_grid_province_ok(int p)
{
    return (p >= 11 && p <= 15) || (p >= 21 && p <= 23) || (p >= 31 && p <= 37)
           || (p >= 41 && p <= 46) || (p >= 50 && p <= 54)
           || (p >= 61 && p <= 65) || p == 71 || p == 81 || p == 82;
}

int
gs_gridcode_check(const char *code, gs_verdict_t *v)
{
    code = s_str(code);
    if (strlen(code) != GS_GRID_LEN || !s_digits(code, GS_GRID_LEN))
        return gs_verdict_set(v, R(GRID_CODE),
                              "grid code must be %d digits", GS_GRID_LEN);
    int province = s_num(code, 2);
    if (!s_grid_province_ok(province))
        return gs_verdict_set(v, R(GRID_CODE),
                              "grid code province %02d does not exist",
                              province);
    static const struct {
        int at;
        const char *name;
    } segs[] = {{6, "street"}, {9, "community"}, {12, "grid number"}};
    for (size_t i = 0; i < sizeof(segs) / sizeof(segs[0]); i++)
        if (memcmp(code + segs[i].at, "000", 3) == 0)
            return gs_verdict_set(v, R(GRID_CODE),
                                  "grid code %s segment (digits %d-%d) is 000",
                                  segs[i].name, segs[i].at + 1,
                                  segs[i].at + 3);
    gs_verdict_clear(v);
    return 0;
}

int
gs_prefix_check(const char *prefix, gs_verdict_t *v)
{
    prefix = s_str(prefix);
    size_t n = strnlen(prefix, GS_GRID_LEN + 1);
    if (gs_level_of_len(n) < 0)
        return gs_verdict_set(v, R(BAD_REQUEST),
                              "prefix length %zu%s is not a level "
                              "(0, 2, 4, 6, 9, 12 or 15 digits)",
                              n, n > GS_GRID_LEN ? "+" : "");
    if (!s_digits(prefix, n))
        return gs_verdict_set(v, R(BAD_REQUEST), "prefix must be digits");
    gs_verdict_clear(v);
    return 0;
}

/* ---- Text and identifiers ----------------------------------------------- */

int
gs_text_check(const char *s, size_t max_bytes, const char *field,
              gs_verdict_t *v)
{
    s = s_str(s);
    field = field ? field : "text";
    size_t n = strlen(s);
    if (n > max_bytes)
        return gs_verdict_set(v, R(TOO_LONG), "%s is %zu bytes, limit %zu",
                              field, n, max_bytes);
    const unsigned char *u = (const unsigned char *) s;
    size_t i = 0;
    while (i < n) {
        /* printable ASCII (ids, codes, dates, numbers: most bytes of a
         * record) needs no decoding */
        if (u[i] >= 0x20 && u[i] < 0x7F) {
            i++;
            continue;
        }
        /* three bytes led by E1..EC or EE..EF (CJK: names and addresses)
         * are valid with any two continuation bytes: never overlong (not
         * E0), never a surrogate (not ED), U+1000 and up, so no control */
        if (u[i] >= 0xE1 && u[i] != 0xED && u[i] <= 0xEF && n - i >= 3 &&
            (u[i + 1] & 0xC0) == 0x80 && (u[i + 2] & 0xC0) == 0x80) {
            i += 3;
            continue;
        }
        size_t at = i;
        uint32_t cp;
        if (s_utf8_next(u, n, &i, &cp) < 0)
            return gs_verdict_set(v, R(BAD_ENCODING),
                                  "%s is not valid UTF-8 (byte %zu)", field,
                                  at + 1);
        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))
            return gs_verdict_set(v, R(BAD_ENCODING),
                                  "%s has a control character (byte %zu)",
                                  field, at + 1);
    }
    gs_verdict_clear(v);
    return 0;
}

static bool
s_ident_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':'
           || c == '-';
}

int
gs_ident_check(const char *s, const char *field, gs_verdict_t *v)
{
    s = s_str(s);
    field = field ? field : "identifier";
    size_t n = strnlen(s, GS_ID_MAX + 1);
    if (n == 0)
        return gs_verdict_set(v, R(REQUIRED), "%s is required", field);
    if (n > GS_ID_MAX)
        return gs_verdict_set(v, R(BAD_REQUEST),
                              "%s is longer than %d bytes", field, GS_ID_MAX);
    for (size_t i = 0; i < n; i++)
        if (!s_ident_char(s[i]))
            return gs_verdict_set(v, R(BAD_REQUEST),
                                  "%s may only hold letters, digits and . _ : -",
                                  field);
    gs_verdict_clear(v);
    return 0;
}

/* ---- Records ------------------------------------------------------------ */

/* State of one gs_record_check() call. */
typedef struct s_ctx {
    ProtobufCAllocator *alloc;  /* for replaced strings; NULL = malloc/free */
    const gs_limits_t *lim;     /* never NULL */
    int64_t now_ms;             /* "now" for future checks */
    int today;                  /* YYYYMMDD in CST at now_ms */
    gs_verdict_t *v;            /* where problems are reported */
    gs_verdict_t scratch;       /* used when the caller passed no verdict */
    size_t changed;             /* strings replaced and unknown fields dropped */
} s_ctx_t;

/* Replace *field with a copy of value, releasing the old string with the
 * record's allocator. Leaves *field alone when it already equals value. */
static int
s_replace(s_ctx_t *ctx, char **field, const char *value)
{
    if (*field && strcmp(*field, value) == 0)
        return 0;
    size_t n = strlen(value) + 1;
    char *copy = ctx->alloc ? ctx->alloc->alloc(ctx->alloc->allocator_data, n)
                            : malloc(n);
    if (!copy)
        return gs_verdict_set(ctx->v, R(INTERNAL), "out of memory");
    ctx->changed++;
    memcpy(copy, value, n);
    char *old = *field;
    *field = copy;
    /* unpacked empty strings share protobuf-c's static empty string */
    if (old && old != protobuf_c_empty_string) {
        if (ctx->alloc)
            ctx->alloc->free(ctx->alloc->allocator_data, old);
        else
            free(old);
    }
    return 0;
}

static bool
s_empty(const char *s)
{
    return !s || !*s;
}

static int
s_text(s_ctx_t *ctx, const char *s, size_t max, const char *field)
{
    if (s_empty(s)) {
        /* most optional texts are left out: gs_text_check's answer for "" */
        gs_verdict_clear(ctx->v);
        return 0;
    }
    return gs_text_check(s, max, field, ctx->v);
}

static int
s_required_text(s_ctx_t *ctx, const char *s, size_t max, const char *field)
{
    if (s_empty(s))
        return gs_verdict_set(ctx->v, R(REQUIRED), "%s is required", field);
    return gs_text_check(s, max, field, ctx->v);
}

/* An identifier inside a record: bad characters are an encoding problem of
 * the record rather than a bad request. */
static int
s_record_ident(s_ctx_t *ctx, const char *s, const char *field)
{
    int rc = gs_ident_check(s, field, ctx->v);
    if (rc == R(BAD_REQUEST)) {
        rc = strlen(s_str(s)) > GS_ID_MAX ? R(TOO_LONG) : R(BAD_ENCODING);
        ctx->v->reason = rc;
    }
    return rc;
}

/* An enum field: known to the schema; 0 allowed only when optional. */
static int
s_enum(s_ctx_t *ctx, const ProtobufCEnumDescriptor *desc, int value,
       bool required, const char *field)
{
    if (value == 0 && required)
        return gs_verdict_set(ctx->v, R(REQUIRED), "%s is required", field);
    /* the schema's enums are one run of values each: the range check that
     * get_value ends with, without its search (a range's size is the next
     * range's orig_index less its own; a sentinel follows the last) */
    const ProtobufCIntRange *r = desc->value_ranges;
    if (desc->n_value_ranges == 1 && value >= r[0].start_value &&
        (int64_t) value - r[0].start_value < (int64_t) (r[1].orig_index - r[0].orig_index))
        return 0;
    if (!protobuf_c_enum_descriptor_get_value(desc, value))
        return gs_verdict_set(ctx->v, R(BAD_ENUM),
                              "%s value %d is unknown", field, value);
    return 0;
}

/* An optional date: empty, or a real YYYY-MM-DD. *ymd is 0 when empty. */
static int
s_date(s_ctx_t *ctx, const char *s, const char *field, int *ymd)
{
    *ymd = 0;
    if (s_empty(s))
        return 0;
    int how = s_date_parse(s, ymd);
    if (how != S_DATE_OK)
        return s_date_fail(ctx->v, how, field, s);
    return 0;
}

static int
s_required_date(s_ctx_t *ctx, const char *s, const char *field, int *ymd)
{
    if (s_empty(s))
        return gs_verdict_set(ctx->v, R(REQUIRED), "%s is required", field);
    return s_date(ctx, s, field, ymd);
}

static int
s_not_future(s_ctx_t *ctx, int ymd, const char *s, const char *field)
{
    char echo[S_ECHO_MAX + 4];
    if (ymd > ctx->today)
        return gs_verdict_set(ctx->v, R(DATE_FUTURE),
                              "%s %s is in the future", field,
                              s_echo(s, echo));
    return 0;
}

/* Normalise and check a phone in place. A message names it "field", or
 * "field index" when index is not 0 (the index is not formatted for a
 * phone that passes: nearly all do). */
static int
s_phone(s_ctx_t *ctx, char **phone, const char *field, size_t index)
{
    char out[16];
    if (gs_phone_normalize(*phone, out, sizeof(out), ctx->v))
        return index ? s_verdict_prefix(ctx->v, "%s %zu", field, index)
                     : s_verdict_prefix(ctx->v, "%s", field);
    return s_replace(ctx, phone, out);
}

#define S_TRY(expr)                                                            \
    do {                                                                       \
        int s_rc_ = (expr);                                                    \
        if (s_rc_)                                                             \
            return s_rc_;                                                      \
    } while (0)

static int
s_id_number(s_ctx_t *ctx, Gridsync__V1__Person *p, int *id_birth, int *id_sex)
{
    *id_birth = *id_sex = 0;
    if (p->id_type == GRIDSYNC__V1__ID_TYPE__ID_TYPE_NONE) {
        if (!s_empty(p->id_number))
            return gs_verdict_set(ctx->v, R(ID_FORMAT),
                                  "id_number must be empty when id_type is "
                                  "NONE");
        return 0;
    }
    if (s_empty(p->id_number))
        return gs_verdict_set(ctx->v, R(REQUIRED), "id_number is required");
    if (p->id_type != GRIDSYNC__V1__ID_TYPE__ID_TYPE_RESIDENT_CARD)
        return s_text(ctx, p->id_number, ctx->lim->max_name, "id_number");
    char id[19];
    S_TRY(gs_idnum_normalize(p->id_number, id, sizeof(id), ctx->v));
    S_TRY(s_idnum_check(id, ctx->today, ctx->v));
    S_TRY(s_replace(ctx, &p->id_number, id));
    *id_birth = gs_idnum_birth(id);
    *id_sex = gs_idnum_sex(id);
    return 0;
}

static int
s_floating(s_ctx_t *ctx, const Gridsync__V1__FloatingInfo *f)
{
    const size_t max = ctx->lim->max_text;
    int ymd;
    S_TRY(s_text(ctx, f->inflow_reason, max, "floating.inflow_reason"));
    S_TRY(s_date(ctx, f->inflow_date, "floating.inflow_date", &ymd));
    S_TRY(s_text(ctx, f->permit_number, max, "floating.permit_number"));
    S_TRY(s_date(ctx, f->permit_expiry, "floating.permit_expiry", &ymd));
    return 0;
}

static int
s_foreigner(s_ctx_t *ctx, const Gridsync__V1__ForeignerInfo *f)
{
    const size_t max = ctx->lim->max_text;
    int ymd;
    S_TRY(s_text(ctx, f->nationality, max, "foreigner.nationality"));
    S_TRY(s_text(ctx, f->visa_type, max, "foreigner.visa_type"));
    S_TRY(s_date(ctx, f->visa_expiry, "foreigner.visa_expiry", &ymd));
    S_TRY(s_date(ctx, f->planned_departure, "foreigner.planned_departure",
                 &ymd));
    return 0;
}

static int
s_restricted(s_ctx_t *ctx, const Gridsync__V1__Restricted *r)
{
    const size_t max = ctx->lim->max_text;
    S_TRY(s_text(ctx, r->religion, max, "restricted.religion"));
    S_TRY(s_text(ctx, r->health, max, "restricted.health"));
    S_TRY(s_text(ctx, r->disability, max, "restricted.disability"));
    S_TRY(s_text(ctx, r->welfare, max, "restricted.welfare"));
    return 0;
}

/* One person, without the "member 3: " locator (the caller adds it). */
static int
s_person(s_ctx_t *ctx, Gridsync__V1__Person *p)
{
    const gs_limits_t *lim = ctx->lim;
    char echo[S_ECHO_MAX + 4];
    S_TRY(s_enum(ctx, &gridsync__v1__id_type__descriptor, (int) p->id_type,
                 true, "id_type"));
    int id_birth, id_sex;
    S_TRY(s_id_number(ctx, p, &id_birth, &id_sex));
    S_TRY(s_required_text(ctx, p->name, lim->max_name, "name"));
    S_TRY(s_enum(ctx, &gridsync__v1__sex__descriptor, (int) p->sex, true,
                 "sex"));
    int birth;
    S_TRY(s_required_date(ctx, p->birth_date, "birth_date", &birth));
    S_TRY(s_not_future(ctx, birth, p->birth_date, "birth_date"));
    if (id_birth && birth != id_birth)
        return gs_verdict_set(ctx->v, R(ID_MISMATCH),
                              "birth_date %s does not match the ID number",
                              s_echo(p->birth_date, echo));
    if (id_sex && (int) p->sex != id_sex)
        return gs_verdict_set(ctx->v, R(ID_MISMATCH),
                              "sex is %s but the ID number is a %s's",
                              p->sex == GRIDSYNC__V1__SEX__SEX_MALE ? "male"
                                                                    : "female",
                              id_sex == 1 ? "man" : "woman");
    S_TRY(s_enum(ctx, &gridsync__v1__population_type__descriptor,
                 (int) p->population_type, true, "population_type"));
    S_TRY(s_enum(ctx, &gridsync__v1__residence_status__descriptor,
                 (int) p->residence_status, true, "residence_status"));
    S_TRY(s_enum(ctx, &gridsync__v1__relation__descriptor, (int) p->relation,
                 false, "relation"));
    if (p->n_phones > lim->max_phones)
        return gs_verdict_set(ctx->v, R(TOO_MANY),
                              "%zu phones, limit %u", p->n_phones,
                              lim->max_phones);
    for (size_t i = 0; i < p->n_phones; i++)
        S_TRY(s_phone(ctx, &p->phones[i], "phone", i + 1));
    S_TRY(s_text(ctx, p->ethnicity, lim->max_text, "ethnicity"));
    S_TRY(s_text(ctx, p->hukou_region, lim->max_text, "hukou_region"));
    S_TRY(s_text(ctx, p->hukou_address, lim->max_text, "hukou_address"));
    S_TRY(s_text(ctx, p->occupation, lim->max_text, "occupation"));
    S_TRY(s_text(ctx, p->workplace, lim->max_text, "workplace"));
    if (p->floating)
        S_TRY(s_floating(ctx, p->floating));
    if (p->foreigner)
        S_TRY(s_foreigner(ctx, p->foreigner));
    if (p->restricted)
        S_TRY(s_restricted(ctx, p->restricted));
    return 0;
}

static int
s_meta(s_ctx_t *ctx, const Gridsync__V1__RecordMeta *m)
{
    if (!m)
        return gs_verdict_set(ctx->v, R(REQUIRED), "meta is required");
    S_TRY(s_record_ident(ctx, m->collector_id, "meta.collector_id"));
    S_TRY(s_record_ident(ctx, m->device_id, "meta.device_id"));
    if (m->collected_at == 0)
        return gs_verdict_set(ctx->v, R(REQUIRED),
                              "meta.collected_at is required");
    if (m->collected_at < 0)
        return gs_verdict_set(ctx->v, R(OUT_OF_RANGE),
                              "meta.collected_at is before 1970");
    /* unsigned difference: cannot overflow whatever the two clocks say */
    if (m->collected_at > ctx->now_ms
        && (uint64_t) m->collected_at - (uint64_t) ctx->now_ms
               > (uint64_t) S_DAY_MS)
        return gs_verdict_set(ctx->v, R(DATE_FUTURE),
                              "meta.collected_at is more than a day ahead of "
                              "the broker's clock");
    S_TRY(s_enum(ctx, &gridsync__v1__record_status__descriptor,
                 (int) m->status, false, "meta.status"));
    return 0;
}

static int
s_room(s_ctx_t *ctx, const Gridsync__V1__RoomAddress *r)
{
    const size_t max = ctx->lim->max_text;
    S_TRY(s_text(ctx, r->building, max, "room.building"));
    S_TRY(s_text(ctx, r->unit, max, "room.unit"));
    S_TRY(s_text(ctx, r->floor, max, "room.floor"));
    S_TRY(s_text(ctx, r->room, max, "room.room"));
    return 0;
}

/* The place of a record: a standard address code, or a building and room. */
static int
s_place(s_ctx_t *ctx, const char *address_code,
        const Gridsync__V1__RoomAddress *room, bool required)
{
    S_TRY(s_text(ctx, address_code, ctx->lim->max_text, "address_code"));
    if (room)
        S_TRY(s_room(ctx, room));
    if (required && s_empty(address_code)
        && (!room || s_empty(room->building) || s_empty(room->room)))
        return gs_verdict_set(ctx->v, R(ADDRESS),
                              "give address_code, or room with building and "
                              "room");
    return 0;
}

static int
s_grid(s_ctx_t *ctx, const char *grid_code)
{
    if (s_empty(grid_code))
        return gs_verdict_set(ctx->v, R(REQUIRED), "grid_code is required");
    return gs_gridcode_check(grid_code, ctx->v);
}

/* A person of a record, and where it is (for messages). */
typedef struct s_who {
    Gridsync__V1__Person *person;   /* NULL when the slot is empty */
    size_t at;                      /* position, as s_person_at numbers them */
    bool rental;                    /* a rental's landlord (at 0) or tenant */
    bool org;                       /* an organisation's legal representative
                                     * (at 0), contact (at 1) or employee */
} s_who_t;

/* "member 2", "landlord", "lease 1 tenant", "employee 3": formatted only
 * for a message. */
static const char *
s_who_label(const s_who_t *w, char out[48])
{
    if (w->org && w->at < 2)
        snprintf(out, 48, "%s", w->at == 0 ? "legal_representative" : "contact");
    else if (w->org)
        snprintf(out, 48, "employee %zu", w->at - 1);
    else if (!w->rental)
        snprintf(out, 48, "member %zu", w->at + 1);
    else if (w->at == 0)
        snprintf(out, 48, "landlord");
    else
        snprintf(out, 48, "lease %zu tenant", w->at);
    return out;
}


/* The i-th person of a record, in message order: household members, a
 * rental's landlord person then lease tenants, or an organisation's legal
 * representative, contact, then employees. False past the end. */
static bool
s_person_at(const Gridsync__V1__Record *rec, size_t i, s_who_t *w)
{
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION) {
        const Gridsync__V1__OrganisationUnit *o = rec->organisation;
        Gridsync__V1__Person *p;
        if (i == 0)
            p = o->legal_representative;
        else if (i == 1)
            p = o->contact;
        else if (i - 2 < o->n_employees)
            p = o->employees[i - 2];
        else
            return false;
        *w = (s_who_t) { .person = p, .at = i, .org = true };
        return true;
    }
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD) {
        const Gridsync__V1__Household *h = rec->household;
        if (i >= h->n_members)
            return false;
        *w = (s_who_t) { .person = h->members[i], .at = i, .rental = false };
        return true;
    }
    if (rec->body_case != GRIDSYNC__V1__RECORD__BODY_RENTAL)
        return false;   /* an incident names no persons */
    const Gridsync__V1__RentalHousing *r = rec->rental;
    Gridsync__V1__Landlord *ll = r->landlord;
    if (i == 0) {
        *w = (s_who_t) {
            .person = ll && ll->party_case == GRIDSYNC__V1__LANDLORD__PARTY_PERSON
                          ? ll->person : NULL,
            .at = 0,
            .rental = true,
        };
        return true;
    }
    if (i - 1 >= r->n_leases)
        return false;
    Gridsync__V1__Lease *l = r->leases[i - 1];
    *w = (s_who_t) { .person = l ? l->tenant : NULL, .at = i, .rental = true };
    return true;
}

/* Do the leases at person positions i and j (1-based lease positions, as
 * s_person_at numbers them) run at the same time? An empty end date is
 * open-ended; dates are already valid YYYY-MM-DD, which sort as text. */
static bool
s_leases_overlap(const Gridsync__V1__Record *rec, size_t i, size_t j)
{
    const Gridsync__V1__Lease *a = rec->rental->leases[i - 1];
    const Gridsync__V1__Lease *b = rec->rental->leases[j - 1];
    bool a_open = s_empty(a->end_date), b_open = s_empty(b->end_date);
    bool a_before_b = !a_open && strcmp(a->end_date, b->start_date) < 0;
    bool b_before_a = !b_open && strcmp(b->end_date, a->start_date) < 0;
    return !a_before_b && !b_before_a;
}

/* No non-empty ID number may appear twice in one record: a household lists
 * each member once, a landlord is not a tenant of the same unit, and an
 * organisation lists each employee once. Exceptions: a tenant may hold
 * several leases of one unit one after the other (renewals), as long as
 * their dates do not overlap; an organisation's legal representative and
 * contact may be one person, and either may also be an employee.
 * Quadratic, but the person count is bounded by the limits, which were
 * checked before. */
static int
s_duplicates(s_ctx_t *ctx, const Gridsync__V1__Record *rec)
{
    s_who_t a, b;
    bool rental = rec->body_case == GRIDSYNC__V1__RECORD__BODY_RENTAL;
    bool org = rec->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION;
    for (size_t i = 0; s_person_at(rec, i, &a); i++) {
        if (!a.person || s_empty(a.person->id_number))
            continue;
        for (size_t j = 0; j < i && s_person_at(rec, j, &b); j++) {
            if (org && j < 2)
                continue; /* j < i: a representative or contact, not two employees */
            if (!b.person || s_empty(b.person->id_number))
                continue;
            if (strcmp(a.person->id_number, b.person->id_number) != 0)
                continue;
            if (rental && j > 0 && !s_leases_overlap(rec, i, j))
                continue; /* a renewal */
            char la[48], lb[48];
            return gs_verdict_set(ctx->v, R(DUPLICATE_MEMBER),
                                  rental && j > 0
                                      ? "%s: same ID number as %s, with overlapping lease dates"
                                      : "%s: same ID number as %s",
                                  s_who_label(&a, la), s_who_label(&b, lb));
        }
    }
    return 0;
}

static int
s_household(s_ctx_t *ctx, Gridsync__V1__Household *h)
{
    const gs_limits_t *lim = ctx->lim;
    S_TRY(s_record_ident(ctx, h->household_id, "household_id"));
    S_TRY(s_grid(ctx, h->grid_code));
    S_TRY(s_place(ctx, h->address_code, h->room, true));
    S_TRY(s_text(ctx, h->address, lim->max_text, "address"));
    S_TRY(s_text(ctx, h->hukou_number, lim->max_text, "hukou_number"));
    if (h->n_members == 0)
        return gs_verdict_set(ctx->v, R(REQUIRED),
                              "a household needs at least one member");
    if (h->n_members > lim->max_members)
        return gs_verdict_set(ctx->v, R(TOO_MANY), "%zu members, limit %u",
                              h->n_members, lim->max_members);
    size_t heads = 0;
    for (size_t i = 0; i < h->n_members; i++) {
        Gridsync__V1__Person *p = h->members[i];
        if (!p)
            return gs_verdict_set(ctx->v, R(REQUIRED), "member %zu is empty",
                                  i + 1);
        if (s_person(ctx, p))
            return s_verdict_prefix(ctx->v, "member %zu", i + 1);
        if (p->relation == GRIDSYNC__V1__RELATION__RELATION_HEAD)
            heads++;
    }
    if (heads != 1)
        return gs_verdict_set(ctx->v, R(HEAD),
                              "a household needs exactly one head member "
                              "(relation HEAD), not %zu", heads);
    S_TRY(s_meta(ctx, h->meta));
    return 0;
}

/* A non-empty USCC: folded (full-width, spaces at the ends), upper-cased,
 * checked, and stored in that normal form. */
static int
s_uscc(s_ctx_t *ctx, char **field)
{
    char uscc[20];
    int rc = s_fold(*field, uscc, sizeof(uscc));
    if (rc != S_FOLD_OK)
        return gs_verdict_set(ctx->v, R(USCC_FORMAT),
                              rc == S_FOLD_LONG ? "USCC is longer than 18 "
                                                  "characters"
                                                : "USCC has characters "
                                                  "outside its alphabet");
    for (char *c = uscc; *c; c++)
        if (*c >= 'a' && *c <= 'z')
            *c = (char) (*c - 'a' + 'A');
    S_TRY(gs_uscc_check(uscc, ctx->v));
    return s_replace(ctx, field, uscc);
}

static int
s_organisation(s_ctx_t *ctx, Gridsync__V1__Organisation *o)
{
    const gs_limits_t *lim = ctx->lim;
    if (s_empty(o->uscc))
        return gs_verdict_set(ctx->v, R(REQUIRED), "uscc is required");
    S_TRY(s_uscc(ctx, &o->uscc));
    S_TRY(s_text(ctx, o->name, lim->max_name, "name"));
    S_TRY(s_text(ctx, o->contact_name, lim->max_name, "contact_name"));
    if (!s_empty(o->contact_phone))
        S_TRY(s_phone(ctx, &o->contact_phone, "contact_phone", 0));
    return 0;
}

static int
s_building(s_ctx_t *ctx, Gridsync__V1__Building *b)
{
    const gs_limits_t *lim = ctx->lim;
    S_TRY(s_text(ctx, b->building_id, lim->max_text, "building.building_id"));
    S_TRY(s_text(ctx, b->name, lim->max_name, "building.name"));
    if (b->head) {
        S_TRY(s_text(ctx, b->head->name, lim->max_name, "building.head.name"));
        if (!s_empty(b->head->phone))
            S_TRY(s_phone(ctx, &b->head->phone, "building.head.phone", 0));
    }
    return 0;
}

static int
s_lease(s_ctx_t *ctx, Gridsync__V1__Lease *l, size_t no)
{
    char echo[S_ECHO_MAX + 4];
    if (!l || !l->tenant)
        return gs_verdict_set(ctx->v, R(REQUIRED),
                              "lease %zu: tenant is required", no);
    if (s_person(ctx, l->tenant))
        return s_verdict_prefix(ctx->v, "lease %zu tenant", no);
    int start, end;
    if (s_required_date(ctx, l->start_date, "start_date", &start)
        || s_date(ctx, l->end_date, "end_date", &end))
        return s_verdict_prefix(ctx->v, "lease %zu", no);
    if (end && end < start)
        return gs_verdict_set(ctx->v, R(DATE_ORDER),
                              "lease %zu: end_date %s is before start_date",
                              no, s_echo(l->end_date, echo));
    return 0;
}

static int
s_inspection_body(s_ctx_t *ctx, Gridsync__V1__Inspection *in)
{
    const gs_limits_t *lim = ctx->lim;
    int ymd;
    S_TRY(s_required_date(ctx, in->date, "date", &ymd));
    S_TRY(s_not_future(ctx, ymd, in->date, "date"));
    S_TRY(s_text(ctx, in->inspector, lim->max_name, "inspector"));
    const ProtobufCEnumDescriptor *cr = &gridsync__v1__check_result__descriptor;
    S_TRY(s_enum(ctx, cr, (int) in->fire, false, "fire"));
    S_TRY(s_enum(ctx, cr, (int) in->security, false, "security"));
    S_TRY(s_enum(ctx, cr, (int) in->environment, false, "environment"));
    S_TRY(s_enum(ctx, cr, (int) in->management, false, "management"));
    S_TRY(s_enum(ctx, cr, (int) in->integrity, false, "integrity"));
    if (in->n_hazards > lim->max_hazards)
        return gs_verdict_set(ctx->v, R(TOO_MANY), "%zu hazards, limit %u",
                              in->n_hazards, lim->max_hazards);
    for (size_t i = 0; i < in->n_hazards; i++) {
        const Gridsync__V1__Hazard *hz = in->hazards[i];
        if (!hz)
            continue;
        if (s_text(ctx, hz->description, lim->max_text, "description")
            || s_date(ctx, hz->rectified_date, "rectified_date", &ymd)
            || s_not_future(ctx, ymd, hz->rectified_date, "rectified_date"))
            return s_verdict_prefix(ctx->v, "hazard %zu", i + 1);
    }
    return 0;
}

/* The inspections of a rental unit or an organisation. */
static int
s_inspections(s_ctx_t *ctx, Gridsync__V1__Inspection **ins, size_t n)
{
    if (n > ctx->lim->max_inspections)
        return gs_verdict_set(ctx->v, R(TOO_MANY), "%zu inspections, limit %u",
                              n, ctx->lim->max_inspections);
    for (size_t i = 0; i < n; i++) {
        if (!ins[i])
            return gs_verdict_set(ctx->v, R(REQUIRED),
                                  "inspection %zu is empty", i + 1);
        if (s_inspection_body(ctx, ins[i]))
            return s_verdict_prefix(ctx->v, "inspection %zu", i + 1);
    }
    return 0;
}

static int
s_rental(s_ctx_t *ctx, Gridsync__V1__RentalHousing *r)
{
    const gs_limits_t *lim = ctx->lim;
    S_TRY(s_record_ident(ctx, r->house_id, "house_id"));
    S_TRY(s_grid(ctx, r->grid_code));
    S_TRY(s_required_text(ctx, r->address, lim->max_text, "address"));
    S_TRY(s_place(ctx, r->address_code, r->room, false));
    if (r->building)
        S_TRY(s_building(ctx, r->building));
    if (!isfinite(r->area_m2) || r->area_m2 < 0 || r->area_m2 > S_AREA_MAX)
        return gs_verdict_set(ctx->v, R(OUT_OF_RANGE),
                              "area_m2 must be between 0 and %.0f",
                              S_AREA_MAX);
    S_TRY(s_enum(ctx, &gridsync__v1__unit_use__descriptor, (int) r->use, false,
                 "use"));
    Gridsync__V1__Landlord *ll = r->landlord;
    if (ll && ll->party_case == GRIDSYNC__V1__LANDLORD__PARTY_PERSON
        && ll->person) {
        if (s_person(ctx, ll->person))
            return s_verdict_prefix(ctx->v, "landlord");
    } else if (ll && ll->party_case == GRIDSYNC__V1__LANDLORD__PARTY_ORGANISATION
               && ll->organisation) {
        if (s_organisation(ctx, ll->organisation))
            return s_verdict_prefix(ctx->v, "landlord organisation");
    }
    if (r->n_leases > lim->max_leases)
        return gs_verdict_set(ctx->v, R(TOO_MANY), "%zu leases, limit %u",
                              r->n_leases, lim->max_leases);
    for (size_t i = 0; i < r->n_leases; i++)
        S_TRY(s_lease(ctx, r->leases[i], i + 1));
    S_TRY(s_inspections(ctx, r->inspections, r->n_inspections));
    S_TRY(s_meta(ctx, r->meta));
    return 0;
}

/* A person slot that may be empty, located by label for a message. */
static int
s_person_opt(s_ctx_t *ctx, Gridsync__V1__Person *p, const char *label)
{
    if (p && s_person(ctx, p))
        return s_verdict_prefix(ctx->v, "%s", label);
    return 0;
}

static int
s_org_unit(s_ctx_t *ctx, Gridsync__V1__OrganisationUnit *o)
{
    const gs_limits_t *lim = ctx->lim;
    S_TRY(s_record_ident(ctx, o->org_id, "org_id"));
    S_TRY(s_grid(ctx, o->grid_code));
    S_TRY(s_enum(ctx, &gridsync__v1__org_kind__descriptor, (int) o->kind, true,
                 "kind"));
    if (!s_empty(o->uscc)) {
        S_TRY(s_uscc(ctx, &o->uscc));
        S_TRY(s_text(ctx, o->name, lim->max_name, "name"));
    } else if (o->kind != GRIDSYNC__V1__ORG_KIND__ORG_KIND_INDIVIDUAL_BUSINESS) {
        return gs_verdict_set(ctx->v, R(REQUIRED),
                              "uscc is required; only an unregistered stall "
                              "(kind INDIVIDUAL_BUSINESS) may go without one");
    } else if (s_empty(o->name)) {
        return gs_verdict_set(ctx->v, R(REQUIRED),
                              "name is required for a stall without a USCC");
    } else {
        S_TRY(s_text(ctx, o->name, lim->max_name, "name"));
    }
    if (!s_empty(o->industry))
        S_TRY(gs_industry_check(o->industry, ctx->v));
    S_TRY(s_enum(ctx, &gridsync__v1__org_status__descriptor, (int) o->status,
                 true, "status"));
    S_TRY(s_place(ctx, o->address_code, o->room, true));
    S_TRY(s_text(ctx, o->address, lim->max_text, "address"));
    S_TRY(s_person_opt(ctx, o->legal_representative, "legal_representative"));
    S_TRY(s_person_opt(ctx, o->contact, "contact"));
    if (o->n_phones > lim->max_phones)
        return gs_verdict_set(ctx->v, R(TOO_MANY), "%zu phones, limit %u",
                              o->n_phones, lim->max_phones);
    for (size_t i = 0; i < o->n_phones; i++)
        S_TRY(s_phone(ctx, &o->phones[i], "phone", i + 1));
    if (o->n_employees > lim->max_employees)
        return gs_verdict_set(ctx->v, R(TOO_MANY), "%zu employees, limit %u",
                              o->n_employees, lim->max_employees);
    for (size_t i = 0; i < o->n_employees; i++) {
        if (!o->employees[i])
            return gs_verdict_set(ctx->v, R(REQUIRED), "employee %zu is empty",
                                  i + 1);
        if (s_person(ctx, o->employees[i]))
            return s_verdict_prefix(ctx->v, "employee %zu", i + 1);
    }
    S_TRY(s_inspections(ctx, o->inspections, o->n_inspections));
    S_TRY(s_meta(ctx, o->meta));
    return 0;
}

/* An incident's optional GPS point. */
static int
s_geo(s_ctx_t *ctx, const Gridsync__V1__GeoPoint *g)
{
    if (!isfinite(g->lat) || g->lat < -90 || g->lat > 90)
        return gs_verdict_set(ctx->v, R(OUT_OF_RANGE),
                              "location.lat must be between -90 and 90");
    if (!isfinite(g->lon) || g->lon < -180 || g->lon > 180)
        return gs_verdict_set(ctx->v, R(OUT_OF_RANGE),
                              "location.lon must be between -180 and 180");
    return 0;
}

/* One history entry: its shape only; the store writes the entries itself. */
static int
s_transition(s_ctx_t *ctx, const Gridsync__V1__IncidentTransition *t)
{
    S_TRY(s_enum(ctx, &gridsync__v1__incident_status__descriptor, (int) t->from,
                 false, "from"));
    S_TRY(s_enum(ctx, &gridsync__v1__incident_status__descriptor, (int) t->to,
                 true, "to"));
    S_TRY(s_enum(ctx, &gridsync__v1__principal_role__descriptor, (int) t->role,
                 false, "role"));
    S_TRY(s_text(ctx, t->by, GS_ID_MAX, "by"));
    S_TRY(s_text(ctx, t->note, ctx->lim->max_text, "note"));
    if (!s_empty(t->department))
        S_TRY(s_record_ident(ctx, t->department, "department"));
    return 0;
}

static int
s_incident(s_ctx_t *ctx, Gridsync__V1__Incident *in)
{
    const gs_limits_t *lim = ctx->lim;
    S_TRY(s_record_ident(ctx, in->incident_id, "incident_id"));
    S_TRY(s_grid(ctx, in->grid_code));
    if (s_empty(in->category))
        return gs_verdict_set(ctx->v, R(REQUIRED), "category is required");
    /* whether the store's configured table holds it is the store's check,
     * in the transaction that takes the step (gs_store_incident.c) */
    if (gs_incident_code_check(in->category, ctx->v))
        return R(CATEGORY);
    S_TRY(s_enum(ctx, &gridsync__v1__incident_severity__descriptor,
                 (int) in->severity, true, "severity"));
    S_TRY(s_enum(ctx, &gridsync__v1__incident_status__descriptor,
                 (int) in->status, true, "status"));
    S_TRY(s_required_text(ctx, in->description, lim->max_text, "description"));
    S_TRY(s_text(ctx, in->reporter, lim->max_name, "reporter"));
    S_TRY(s_place(ctx, in->address_code, in->room, false));
    S_TRY(s_text(ctx, in->address, lim->max_text, "address"));
    if (in->location)
        S_TRY(s_geo(ctx, in->location));
    if (s_empty(in->address_code) && s_empty(in->address) && !in->location
        && (!in->room || s_empty(in->room->building) || s_empty(in->room->room)))
        return gs_verdict_set(ctx->v, R(ADDRESS),
                              "give address_code, address, room with building "
                              "and room, or location");
    if (in->n_related > lim->max_related)
        return gs_verdict_set(ctx->v, R(TOO_MANY), "%zu related records, limit %u",
                              in->n_related, lim->max_related);
    for (size_t i = 0; i < in->n_related; i++) {
        const Gridsync__V1__RecordRef *r = in->related[i];
        if (!r)
            return gs_verdict_set(ctx->v, R(REQUIRED), "related %zu is empty", i + 1);
        if (s_enum(ctx, &gridsync__v1__record_kind__descriptor, (int) r->kind, true,
                   "kind")
            || s_record_ident(ctx, r->record_key, "record_key"))
            return s_verdict_prefix(ctx->v, "related %zu", i + 1);
    }
    if (!s_empty(in->department))
        S_TRY(s_record_ident(ctx, in->department, "department"));
    else if (in->status == GRIDSYNC__V1__INCIDENT_STATUS__INCIDENT_STATUS_DISPATCHED)
        return gs_verdict_set(ctx->v, R(REQUIRED),
                              "department is required to dispatch an incident");
    if (in->n_history > lim->max_transitions)
        return gs_verdict_set(ctx->v, R(TOO_MANY), "%zu history entries, limit %u",
                              in->n_history, lim->max_transitions);
    for (size_t i = 0; i < in->n_history; i++) {
        if (!in->history[i])
            return gs_verdict_set(ctx->v, R(REQUIRED), "history %zu is empty", i + 1);
        if (s_transition(ctx, in->history[i]))
            return s_verdict_prefix(ctx->v, "history %zu", i + 1);
    }
    if (in->reported_at < 0 || in->due_at < 0 || in->dispatch_due_at < 0
        || in->closed_at < 0)
        return gs_verdict_set(ctx->v, R(OUT_OF_RANGE),
                              "reported_at, due_at, dispatch_due_at and "
                              "closed_at are not before 1970");
    S_TRY(s_meta(ctx, in->meta));
    return 0;
}

static int s_record_check(Gridsync__V1__Record *rec, ProtobufCAllocator *alloc,
                          const gs_limits_t *lim, int64_t now_ms, gs_verdict_t *v,
                          size_t *changed, int strip);

int
gs_record_check(Gridsync__V1__Record *rec, ProtobufCAllocator *alloc,
                const gs_limits_t *lim, int64_t now_ms, gs_verdict_t *v)
{
    return gs_record_check_changed(rec, alloc, lim, now_ms, v, NULL);
}

int
gs_record_check_changed(Gridsync__V1__Record *rec, ProtobufCAllocator *alloc,
                        const gs_limits_t *lim, int64_t now_ms, gs_verdict_t *v,
                        size_t *changed)
{
    return s_record_check(rec, alloc, lim, now_ms, v, changed, 1);
}

int
gs_record_check_known(Gridsync__V1__Record *rec, ProtobufCAllocator *alloc,
                      const gs_limits_t *lim, int64_t now_ms, gs_verdict_t *v,
                      size_t *changed)
{
    return s_record_check(rec, alloc, lim, now_ms, v, changed, 0);
}

/* gs_record_check_changed; strip 0 skips the unknown-field walk (the
 * caller knows there are none). */
static int
s_record_check(Gridsync__V1__Record *rec, ProtobufCAllocator *alloc, const gs_limits_t *lim,
               int64_t now_ms, gs_verdict_t *v, size_t *changed, int strip)
{
    s_ctx_t ctx = {
        .alloc = alloc,
        .lim = lim ? lim : &gs_limits_default,
        .now_ms = now_ms,
        .today = gs_date_today(now_ms),
    };
    ctx.v = v ? v : &ctx.scratch;
    gs_verdict_clear(ctx.v);
    /* Only fields this schema knows are stored and forwarded: an unknown
     * field could carry restricted personal data past the privacy filter,
     * which drops the known `restricted` sub-message only. */
    if (changed)
        *changed = 0;
    if (rec && strip)
        ctx.changed = gs_wire_strip_unknown(&rec->base, alloc);
    if (!rec || gs_record_kind(rec) == 0)
        return gs_verdict_set(ctx.v, R(REQUIRED),
                              "record has no household, rental, "
                              "organisation or incident");
    int rc;
    switch (rec->body_case) {
    case GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD:
        rc = s_household(&ctx, rec->household);
        break;
    case GRIDSYNC__V1__RECORD__BODY_RENTAL:
        rc = s_rental(&ctx, rec->rental);
        break;
    case GRIDSYNC__V1__RECORD__BODY_ORGANISATION:
        rc = s_org_unit(&ctx, rec->organisation);
        break;
    default:
        rc = s_incident(&ctx, rec->incident);
        break;
    }
    if (rc == 0)
        rc = s_duplicates(&ctx, rec);
    if (rc == 0)
        gs_verdict_clear(ctx.v);
    if (changed)
        *changed = ctx.changed;
    return rc;
}

int
gs_upload_check(const Gridsync__V1__Upload *up, const gs_limits_t *lim,
                gs_verdict_t *v)
{
    if (!lim)
        lim = &gs_limits_default;
    if (!up)
        return gs_verdict_set(v, R(BAD_REQUEST), "upload is missing");
    if (gs_ident_check(up->device_id, "device_id", v)
        || gs_ident_check(up->upload_id, "upload_id", v)) {
        if (v)
            v->reason = R(BAD_REQUEST);
        return R(BAD_REQUEST);
    }
    if (up->n_records == 0)
        return gs_verdict_set(v, R(BAD_REQUEST), "upload has no records");
    if (up->n_records > lim->max_records)
        return gs_verdict_set(v, R(TOO_MANY_RECORDS),
                              "upload has %zu records, limit %u",
                              up->n_records, lim->max_records);
    gs_verdict_clear(v);
    return 0;
}

/* ---- Record accessors --------------------------------------------------- */

const char *
gs_record_grid(const Gridsync__V1__Record *rec)
{
    switch (gs_record_kind(rec)) {
    case GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD:
        return rec->household->grid_code;
    case GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_RENTAL:
        return rec->rental->grid_code;
    case GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_ORGANISATION:
        return rec->organisation->grid_code;
    case GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT:
        return rec->incident->grid_code;
    default:
        return NULL;
    }
}

const char *
gs_record_id(const Gridsync__V1__Record *rec)
{
    switch (gs_record_kind(rec)) {
    case GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD:
        return rec->household->household_id;
    case GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_RENTAL:
        return rec->rental->house_id;
    case GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_ORGANISATION:
        return rec->organisation->org_id;
    case GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT:
        return rec->incident->incident_id;
    default:
        return NULL;
    }
}

int
gs_record_kind(const Gridsync__V1__Record *rec)
{
    if (!rec)
        return 0;
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD && rec->household)
        return GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD;
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_RENTAL && rec->rental)
        return GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_RENTAL;
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION
        && rec->organisation)
        return GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_ORGANISATION;
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_INCIDENT && rec->incident)
        return GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT;
    return 0;
}

Gridsync__V1__RecordMeta *
gs_record_meta(const Gridsync__V1__Record *rec)
{
    switch (gs_record_kind(rec)) {
    case GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD:
        return rec->household->meta;
    case GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_RENTAL:
        return rec->rental->meta;
    case GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_ORGANISATION:
        return rec->organisation->meta;
    case GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT:
        return rec->incident->meta;
    default:
        return NULL;
    }
}

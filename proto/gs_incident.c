/*
 * gs_incident: the incident workflow tables (see gs_incident.h). The two
 * tables below are the only place the built-in categories and deadlines
 * (a store's default) and the allowed transitions are written down;
 * docs/data-model.md prints them, and the text form of a category table.
 */
#include "gs_incident.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_ST(name) GRIDSYNC__V1__INCIDENT_STATUS__INCIDENT_STATUS_##name
#define S_RB(name) GS_INCIDENT_ROLE_BIT(GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_##name)
#define R(name) GRIDSYNC__V1__REASON__REASON_##name

/* The built-in table: categories, their closure deadlines in hours by
 * severity (一般, 较大, 重大, 特别重大) and a department's hours to handle a
 * dispatched incident by severity (the same for every category). Kept in
 * code order (gs_incident_table_find walks it). */
#define S_HANDLE { 72, 48, 24, 4 }
static const gs_incident_table_t s_default = {
    7,
    {
        { "01", "矛盾纠纷", { 240, 120, 72, 24 }, S_HANDLE, false },
        { "02", "安全隐患", { 168, 72, 24, 4 }, S_HANDLE, false },
        { "03", "治安", { 120, 48, 24, 2 }, S_HANDLE, false },
        { "04", "环境卫生", { 120, 72, 48, 24 }, S_HANDLE, false },
        { "05", "城市管理", { 168, 96, 48, 24 }, S_HANDLE, false },
        { "06", "民生服务", { 240, 120, 72, 24 }, S_HANDLE, false },
        { "99", "其他", { 240, 120, 72, 24 }, S_HANDLE, false },
    },
};

/* The workflow. A row allows one step to the roles it names; anything not
 * here is refused. ADMIN takes no step: an incident is moved by the
 * principals whose work it is. */
static const gs_incident_step_t s_steps[] = {
    { 0, S_ST(REPORTED), S_RB(DEVICE) | S_RB(CENTRE), "report (上报)" },
    { S_ST(REPORTED), S_ST(REPORTED), S_RB(DEVICE) | S_RB(CENTRE),
      "edit before registration" },
    { S_ST(REPORTED), S_ST(ACCEPTED), S_RB(CENTRE), "accept (立案)" },
    { S_ST(REPORTED), S_ST(REJECTED), S_RB(CENTRE), "reject (不予立案)" },
    { S_ST(REJECTED), S_ST(ACCEPTED), S_RB(CENTRE), "reopen a rejected report" },
    { S_ST(ACCEPTED), S_ST(DISPATCHED), S_RB(CENTRE), "dispatch (派遣)" },
    { S_ST(DISPATCHED), S_ST(DISPATCHED), S_RB(CENTRE),
      "re-dispatch to another department" },
    { S_ST(DISPATCHED), S_ST(ACCEPTED), S_RB(DEPARTMENT) | S_RB(CENTRE),
      "return to the centre (退回)" },
    { S_ST(DISPATCHED), S_ST(HANDLED), S_RB(DEPARTMENT), "handle (处置反馈)" },
    { S_ST(HANDLED), S_ST(DISPATCHED), S_RB(DEVICE) | S_RB(CENTRE),
      "verification failed: back to the department" },
    { S_ST(HANDLED), S_ST(VERIFIED), S_RB(DEVICE), "verify on site (核查)" },
    { S_ST(VERIFIED), S_ST(CLOSED), S_RB(CENTRE), "close (结案)" },
    { S_ST(CLOSED), S_ST(ACCEPTED), S_RB(CENTRE), "reopen a closed incident" },
};

#define S_N(a) (sizeof(a) / sizeof((a)[0]))

const gs_incident_table_t *
gs_incident_table_default(void)
{
    return &s_default;
}

const gs_incident_category_t *
gs_incident_table_find(const gs_incident_table_t *t, const char *code)
{
    if (!t || !code || !*code)
        return NULL;
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->cats[i].code, code) == 0)
            return &t->cats[i];
    return NULL;
}

static bool
s_severity_ok(int severity)
{
    return severity >= GRIDSYNC__V1__INCIDENT_SEVERITY__INCIDENT_SEVERITY_GENERAL &&
           severity <= GRIDSYNC__V1__INCIDENT_SEVERITY__INCIDENT_SEVERITY_URGENT;
}

int64_t
gs_incident_table_close_ms(const gs_incident_table_t *t, const char *category, int severity)
{
    const gs_incident_category_t *c = gs_incident_table_find(t, category);
    if (!c || !s_severity_ok(severity))
        return 0;
    return (int64_t) c->close_hours[severity - 1] * GS_INCIDENT_HOUR_MS;
}

int64_t
gs_incident_table_handle_ms(const gs_incident_table_t *t, const char *category, int severity)
{
    const gs_incident_category_t *c = gs_incident_table_find(t, category);
    if (!c || !s_severity_ok(severity))
        return 0;
    return (int64_t) c->handle_hours[severity - 1] * GS_INCIDENT_HOUR_MS;
}

const gs_incident_category_t *
gs_incident_categories(size_t *n)
{
    if (n)
        *n = s_default.n;
    return s_default.cats;
}

const gs_incident_category_t *
gs_incident_category_find(const char *code)
{
    return gs_incident_table_find(&s_default, code);
}

int64_t
gs_incident_close_ms(const char *category, int severity)
{
    return gs_incident_table_close_ms(&s_default, category, severity);
}

/* ---- The table's text form -------------------------------------------------------- */

static const char *const s_sev_names[4] = { "GENERAL", "SERIOUS", "MAJOR", "URGENT" };

#define S_ECHO_MAX 12            /* bytes of an unchecked field quoted in a message */

/* Quote at most max (<= S_ECHO_MAX) bytes of s, an unchecked field, into
 * out for a message: a byte that is not printable ASCII (a space, a control
 * character, any byte of a UTF-8 sequence or of bad UTF-8) becomes '?',
 * and ".." marks a cut, so that the message stays text whatever the field
 * holds (gridctl prints it; an admin reply carries it in a proto3 string). */
static const char *
s_echo(const char *s, size_t max, char out[S_ECHO_MAX + 3])
{
    assert(max <= S_ECHO_MAX);
    size_t n = strlen(s), e = 0;
    for (size_t i = 0; i < n && e < max; i++) {
        unsigned char c = (unsigned char) s[i];
        out[e++] = c > ' ' && c < 0x7f ? (char) c : '?';
    }
    if (n > max) {
        out[e++] = '.';
        out[e++] = '.';
    }
    out[e] = 0;
    return out;
}

int
gs_incident_code_check(const char *code, gs_verdict_t *v)
{
    size_t n = code ? strlen(code) : 0;
    bool ok = n >= 1 && n <= GS_INCIDENT_CATEGORY_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char c = (unsigned char) code[i];
        ok = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    }
    if (ok) {
        gs_verdict_clear(v);
        return 0;
    }
    char echo[S_ECHO_MAX + 3];
    return gs_verdict_set(v, R(CATEGORY),
                          "category '%s' is not a category code (1 to %d ASCII letters or "
                          "digits)", s_echo(code ? code : "", GS_INCIDENT_CATEGORY_MAX, echo),
                          GS_INCIDENT_CATEGORY_MAX);
}

/* A whole number of hours, 1..GS_INCIDENT_HOURS_MAX, into *out. */
static bool
s_hours(const char *f, uint32_t *out)
{
    if (!*f || strlen(f) > 5)
        return false;
    uint32_t h = 0;
    for (const char *p = f; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        h = h * 10 + (uint32_t) (*p - '0');
    }
    if (h < 1 || h > GS_INCIDENT_HOURS_MAX)
        return false;
    *out = h;
    return true;
}

static int
s_cat_cmp(const void *a, const void *b)
{
    return strcmp(((const gs_incident_category_t *) a)->code,
                  ((const gs_incident_category_t *) b)->code);
}

/* One category line (its nf fields split, each NUL-terminated) into *c.
 * Returns 0, or -1 with the problem in v. */
static int
s_parse_line(char **f, size_t nf, gs_incident_category_t *c, gs_verdict_t *v)
{
    memset(c, 0, sizeof *c);
    if (nf != GS_INCIDENT_TABLE_FIELDS) {
        gs_verdict_set(v, R(BAD_REQUEST),
                       "%zu field(s); a category line has %d separated by tabs: code, name, "
                       "4 closure hours, 4 handling hours, active or retired",
                       nf, GS_INCIDENT_TABLE_FIELDS);
        return -1;
    }
    gs_verdict_t why;
    if (gs_incident_code_check(f[0], &why)) {
        gs_verdict_set(v, R(BAD_REQUEST), "%s", why.message);
        return -1;
    }
    memcpy(c->code, f[0], strlen(f[0]) + 1);
    if (!*f[1]) {
        gs_verdict_set(v, R(BAD_REQUEST), "category %s has no name", c->code);
        return -1;
    }
    if (gs_text_check(f[1], GS_INCIDENT_NAME_MAX, "name", &why)) {
        gs_verdict_set(v, R(BAD_REQUEST), "category %s: %s", c->code, why.message);
        return -1;
    }
    memcpy(c->name, f[1], strlen(f[1]) + 1);
    for (int k = 0; k < 8; k++) {
        uint32_t *h = k < 4 ? &c->close_hours[k] : &c->handle_hours[k - 4];
        const char *what = k < 4 ? "closure" : "handling";
        if (!s_hours(f[2 + k], h)) {
            char echo[S_ECHO_MAX + 3];
            gs_verdict_set(v, R(BAD_REQUEST),
                           "category %s: %s hours for %s '%s' are not a whole number "
                           "from 1 to %d", c->code, what, s_sev_names[k % 4],
                           s_echo(f[2 + k], S_ECHO_MAX, echo), GS_INCIDENT_HOURS_MAX);
            return -1;
        }
        /* a graver incident never gets more time than a lighter one */
        if (k % 4 && *h > h[-1]) {
            gs_verdict_set(v, R(BAD_REQUEST),
                           "category %s: %s hours grow with severity (%s %u after %s %u)",
                           c->code, what, s_sev_names[k % 4], *h, s_sev_names[k % 4 - 1],
                           h[-1]);
            return -1;
        }
    }
    if (strcmp(f[10], "active") == 0) {
        c->retired = false;
    } else if (strcmp(f[10], "retired") == 0) {
        c->retired = true;
    } else {
        char echo[S_ECHO_MAX + 3];
        gs_verdict_set(v, R(BAD_REQUEST),
                       "category %s: the last field is 'active' or 'retired', not '%s'",
                       c->code, s_echo(f[10], S_ECHO_MAX, echo));
        return -1;
    }
    return 0;
}

int
gs_incident_table_parse(const char *text, size_t len, gs_incident_table_t *out,
                        size_t *line, gs_verdict_t *v)
{
    assert(out && line && v && (text || !len));
    memset(out, 0, sizeof *out);
    gs_verdict_clear(v);
    *line = 0;
    size_t first_line[GS_INCIDENT_CATEGORIES_MAX];
    char buf[1024];
    size_t pos = 0, no = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t) (nl - text) : len;
        size_t l = end - pos;
        *line = ++no;
        if (l && text[pos + l - 1] == '\r')
            l--;
        if (l >= sizeof buf) {
            gs_verdict_set(v, R(BAD_REQUEST), "line longer than %zu bytes", sizeof buf - 1);
            return -1;
        }
        memcpy(buf, text + pos, l);
        buf[l] = 0;
        pos = nl ? end + 1 : len;
        if (strlen(buf) != l) {
            gs_verdict_set(v, R(BAD_REQUEST), "a NUL byte in the line");
            return -1;
        }
        if (buf[0] == '#' || buf[strspn(buf, " \t")] == 0)
            continue;
        char *f[GS_INCIDENT_TABLE_FIELDS];
        size_t nf = 0;
        for (char *p = buf;;) {
            if (nf < GS_INCIDENT_TABLE_FIELDS)
                f[nf] = p;
            nf++;
            char *tab = strchr(p, '\t');
            if (!tab)
                break;
            *tab = 0;
            p = tab + 1;
        }
        if (out->n == GS_INCIDENT_CATEGORIES_MAX) {
            gs_verdict_set(v, R(BAD_REQUEST), "more than %d categories",
                           GS_INCIDENT_CATEGORIES_MAX);
            return -1;
        }
        gs_incident_category_t *c = &out->cats[out->n];
        if (s_parse_line(f, nf, c, v))
            return -1;
        for (size_t i = 0; i < out->n; i++) {
            if (strcmp(out->cats[i].code, c->code) == 0) {
                gs_verdict_set(v, R(BAD_REQUEST), "category %s is given twice (first on line "
                               "%zu)", c->code, first_line[i]);
                return -1;
            }
        }
        first_line[out->n++] = no;
    }
    *line = 0;
    size_t active = 0;
    for (size_t i = 0; i < out->n; i++)
        active += !out->cats[i].retired;
    if (!active) {
        gs_verdict_set(v, R(BAD_REQUEST), "the table has no active category (%zu retired)",
                       out->n);
        return -1;
    }
    qsort(out->cats, out->n, sizeof out->cats[0], s_cat_cmp);
    return 0;
}

size_t
gs_incident_table_format(const gs_incident_table_t *t, char *buf, size_t size)
{
    assert(t && (buf || !size));
    size_t n = 0;
    if (size)
        buf[0] = 0;
    for (size_t i = 0; i <= t->n; i++) {
        int w;
        char *at = size > n ? buf + n : NULL;
        size_t room = size > n ? size - n : 0;
        if (i == 0) {
            w = snprintf(at, room, "# code\tname\tclose GENERAL\tclose SERIOUS\tclose MAJOR"
                                   "\tclose URGENT\thandle GENERAL\thandle SERIOUS"
                                   "\thandle MAJOR\thandle URGENT\tstate\n");
        } else {
            const gs_incident_category_t *c = &t->cats[i - 1];
            w = snprintf(at, room, "%s\t%s\t%u\t%u\t%u\t%u\t%u\t%u\t%u\t%u\t%s\n", c->code,
                         c->name, c->close_hours[0], c->close_hours[1], c->close_hours[2],
                         c->close_hours[3], c->handle_hours[0], c->handle_hours[1],
                         c->handle_hours[2], c->handle_hours[3],
                         c->retired ? "retired" : "active");
        }
        if (w > 0)
            n += (size_t) w;
    }
    return n;
}

const gs_incident_step_t *
gs_incident_steps(size_t *n)
{
    if (n)
        *n = S_N(s_steps);
    return s_steps;
}

const char *
gs_incident_status_name(int status)
{
    if (status == 0)
        return "NEW";
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
        &gridsync__v1__incident_status__descriptor, status);
    if (!ev)
        return "UNKNOWN";
    return ev->name + strlen("INCIDENT_STATUS_");
}

static const char *
s_role_name(int role)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
        &gridsync__v1__principal_role__descriptor, role);
    return ev ? ev->name + strlen("PRINCIPAL_ROLE_") : "UNKNOWN";
}

/* "DEVICE or CENTRE" for a role mask. */
static void
s_roles_text(uint32_t roles, char *out, size_t size)
{
    size_t n = 0;
    out[0] = 0;
    for (int r = 0; r < 32; r++) {
        if (!(roles & GS_INCIDENT_ROLE_BIT(r)))
            continue;
        int w = snprintf(out + n, size - n, "%s%s", n ? " or " : "", s_role_name(r));
        if (w < 0 || (size_t) w >= size - n)
            break;
        n += (size_t) w;
    }
}

int
gs_incident_step_check(int from, int to, int role, const gs_incident_step_t **step,
                       gs_verdict_t *v)
{
    if (step)
        *step = NULL;
    char next[96];
    size_t nn = 0;
    next[0] = 0;
    for (size_t i = 0; i < S_N(s_steps); i++) {
        const gs_incident_step_t *s = &s_steps[i];
        if (s->from != from)
            continue;
        if (s->to == to) {
            /* the role must be a known one and named in the row */
            if (role < 0 || role >= 32 || !(s->roles & GS_INCIDENT_ROLE_BIT(role))) {
                char who[64];
                s_roles_text(s->roles, who, sizeof who);
                return gs_verdict_set(v, R(ROLE), "a %s may not take the step %s; %s may",
                                      s_role_name(role), s->name, who);
            }
            if (step)
                *step = s;
            gs_verdict_clear(v);
            return 0;
        }
        int w = snprintf(next + nn, sizeof next - nn, "%s%s", nn ? ", " : "",
                         gs_incident_status_name(s->to));
        if (w > 0 && (size_t) w < sizeof next - nn)
            nn += (size_t) w;
    }
    if (from == 0)
        return gs_verdict_set(v, R(TRANSITION),
                              "a new incident starts as REPORTED, not %s",
                              gs_incident_status_name(to));
    if (!nn)
        return gs_verdict_set(v, R(TRANSITION), "no step from %s to %s",
                              gs_incident_status_name(from), gs_incident_status_name(to));
    return gs_verdict_set(v, R(TRANSITION), "no step from %s to %s; from %s: %s",
                          gs_incident_status_name(from), gs_incident_status_name(to),
                          gs_incident_status_name(from), next);
}

bool
gs_incident_open(int status)
{
    return status != S_ST(REJECTED) && status != S_ST(CLOSED) && status != 0;
}

bool
gs_incident_overdue(const Gridsync__V1__Incident *in, int64_t now_ms)
{
    return in && gs_incident_open((int) in->status) && in->due_at > 0 && now_ms > in->due_at;
}

bool
gs_incident_on_time(const Gridsync__V1__Incident *in)
{
    return in && in->status == S_ST(CLOSED) && in->due_at > 0 && in->closed_at <= in->due_at;
}

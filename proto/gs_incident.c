/*
 * gs_incident: the incident workflow tables (see gs_incident.h). The three
 * tables below are the only place the categories, the deadlines and the
 * allowed transitions are written down; docs/data-model.md prints them.
 */
#include "gs_incident.h"

#include <stdio.h>
#include <string.h>

#define S_ST(name) GRIDSYNC__V1__INCIDENT_STATUS__INCIDENT_STATUS_##name
#define S_RB(name) GS_INCIDENT_ROLE_BIT(GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_##name)
#define R(name) GRIDSYNC__V1__REASON__REASON_##name

/* Categories and their closure deadlines in hours by severity (一般, 较大,
 * 重大, 特别重大). Kept in code order (gs_incident_category_find walks it). */
static const gs_incident_category_t s_categories[] = {
    { "01", "矛盾纠纷", { 240, 120, 72, 24 } },
    { "02", "安全隐患", { 168, 72, 24, 4 } },
    { "03", "治安", { 120, 48, 24, 2 } },
    { "04", "环境卫生", { 120, 72, 48, 24 } },
    { "05", "城市管理", { 168, 96, 48, 24 } },
    { "06", "民生服务", { 240, 120, 72, 24 } },
    { "99", "其他", { 240, 120, 72, 24 } },
};

/* A department's hours to handle a dispatched incident, by severity. */
static const uint32_t s_handle_hours[4] = { 72, 48, 24, 4 };

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

const gs_incident_category_t *
gs_incident_categories(size_t *n)
{
    if (n)
        *n = S_N(s_categories);
    return s_categories;
}

const gs_incident_category_t *
gs_incident_category_find(const char *code)
{
    if (!code || !*code)
        return NULL;
    for (size_t i = 0; i < S_N(s_categories); i++)
        if (strcmp(s_categories[i].code, code) == 0)
            return &s_categories[i];
    return NULL;
}

static bool
s_severity_ok(int severity)
{
    return severity >= GRIDSYNC__V1__INCIDENT_SEVERITY__INCIDENT_SEVERITY_GENERAL &&
           severity <= GRIDSYNC__V1__INCIDENT_SEVERITY__INCIDENT_SEVERITY_URGENT;
}

int64_t
gs_incident_close_ms(const char *category, int severity)
{
    const gs_incident_category_t *c = gs_incident_category_find(category);
    if (!c || !s_severity_ok(severity))
        return 0;
    return (int64_t) c->close_hours[severity - 1] * GS_INCIDENT_HOUR_MS;
}

int64_t
gs_incident_handle_ms(int severity)
{
    if (!s_severity_ok(severity))
        return 0;
    return (int64_t) s_handle_hours[severity - 1] * GS_INCIDENT_HOUR_MS;
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

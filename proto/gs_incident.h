/*
 * gs_incident: the incident workflow (事件: report, registration, dispatch,
 * handling, verification, closure) as tables and pure functions.
 *
 * Where it sits: validation (gs_validate.c) asks it whether a category
 * code exists; the store's write path (store/gs_store_incident.c) asks it
 * whether a transition is allowed and what deadline it sets; gridctl and
 * the generator read the same tables. Each rule is here and nowhere else:
 *   - the category table (code and name, e.g. "02" 安全隐患),
 *   - the deadline table (hours to closure by category and severity, and a
 *     department's hours to handle by severity),
 *   - the transition table (from status, to status, the roles that may
 *     take the step), docs/data-model.md "Incident workflow" prints it.
 *
 * Everything is pure: no clock, no I/O. Thread safety: reentrant.
 */
#ifndef GS_INCIDENT_H
#define GS_INCIDENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "gs_validate.h"

#define GS_INCIDENT_CATEGORY_MAX 8      /* bytes of a category code, NUL excluded */
#define GS_INCIDENT_HOUR_MS 3600000LL   /* one hour in ms, the deadline tables' unit */

/* One category of the code table. */
typedef struct gs_incident_category {
    const char *code;           /* two digits, the value of Incident.category */
    const char *name;           /* its name, e.g. "安全隐患" */
    uint32_t close_hours[4];    /* hours from acceptance to closure, by severity
                                 * GENERAL, SERIOUS, MAJOR, URGENT */
} gs_incident_category_t;

/* The category table, in code order; *n gets its length. Never NULL. */
const gs_incident_category_t *gs_incident_categories(size_t *n);

/* The category with this code, or NULL (unknown, empty or NULL). */
const gs_incident_category_t *gs_incident_category_find(const char *code);

/* Deadline of closure: hours from acceptance for category and severity
 * (IncidentSeverity 1..4), in ms; 0 for an unknown category or severity. */
int64_t gs_incident_close_ms(const char *category, int severity);

/* A department's time to handle a dispatched incident, in ms, by severity
 * (72, 48, 24, 4 hours for GENERAL .. URGENT); 0 for an unknown severity. */
int64_t gs_incident_handle_ms(int severity);

/* Bits of the roles that may take a step (1u << PrincipalRole). */
#define GS_INCIDENT_ROLE_BIT(role) (1u << (unsigned) (role))

/* One row of the transition table. from 0 = a new record. */
typedef struct gs_incident_step {
    int from;                   /* IncidentStatus stored; 0 = no record yet */
    int to;                     /* IncidentStatus asked for */
    uint32_t roles;             /* GS_INCIDENT_ROLE_BIT of each role allowed */
    const char *name;           /* what the step is, e.g. "dispatch (派遣)" */
} gs_incident_step_t;

/* The transition table; *n gets its length. Never NULL. */
const gs_incident_step_t *gs_incident_steps(size_t *n);

/* May a principal of role (PrincipalRole) move an incident from status
 * `from` (0 = the record does not exist yet) to `to`? Returns 0 and the
 * step's row in *step (step may be NULL), or sets *v: REASON_TRANSITION
 * when the table has no such step ("no step from ACCEPTED to CLOSED;
 * from ACCEPTED: DISPATCHED"), REASON_ROLE when it has but not for this
 * role ("a DEPARTMENT may not take the step close (结案); CENTRE may").
 * An unknown role or status is refused like any missing row. */
int gs_incident_step_check(int from, int to, int role,
                           const gs_incident_step_t **step, gs_verdict_t *v);

/* Name of an IncidentStatus without its prefix ("DISPATCHED"), "NEW" for
 * 0, "UNKNOWN" otherwise. Never NULL. */
const char *gs_incident_status_name(int status);

/* Is the status open (not REJECTED and not CLOSED)? */
bool gs_incident_open(int status);

/* Is the incident overdue at now_ms: open, with a closure deadline
 * (due_at, set at acceptance), and now_ms past it? */
bool gs_incident_overdue(const Gridsync__V1__Incident *in, int64_t now_ms);

/* Was it closed on time (按期结案): CLOSED, and closed_at not after
 * due_at? */
bool gs_incident_on_time(const Gridsync__V1__Incident *in);

#endif

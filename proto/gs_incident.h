/*
 * gs_incident: the incident workflow (事件: report, registration, dispatch,
 * handling, verification, closure) as tables and pure functions.
 *
 * Where it sits: validation (gs_validate.c) asks it whether a category
 * code is well formed; the store's write path (store/gs_store_incident.c)
 * asks it whether a transition is allowed, and looks categories and
 * deadlines up in the store's configured table with it; gridctl parses and
 * prints that table with it; the generator reads the built-in one. Each
 * rule is here and nowhere else:
 *   - the category table's shape, its text form and the built-in table
 *     (code and name, e.g. "02" 安全隐患; hours to closure and a
 *     department's hours to handle, by category and severity),
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
#define GS_INCIDENT_NAME_MAX 48         /* bytes of a category name (UTF-8), NUL excluded */
#define GS_INCIDENT_CATEGORIES_MAX 100  /* categories in one table */
#define GS_INCIDENT_HOURS_MAX 8760      /* the longest deadline in a table, hours (a year) */
#define GS_INCIDENT_HOUR_MS 3600000LL   /* one hour in ms, the deadline tables' unit */
#define GS_INCIDENT_TABLE_FIELDS 11     /* tab-separated fields of a category line */

/* One category of a category table. */
typedef struct gs_incident_category {
    char code[GS_INCIDENT_CATEGORY_MAX + 1];  /* the value of Incident.category, e.g. "02" */
    char name[GS_INCIDENT_NAME_MAX + 1];      /* its name, e.g. "安全隐患" */
    uint32_t close_hours[4];    /* hours from acceptance to closure (due_at), by
                                 * severity GENERAL, SERIOUS, MAJOR, URGENT */
    uint32_t handle_hours[4];   /* a department's hours from each dispatch to its
                                 * handling deadline (dispatch_due_at), by severity */
    bool retired;               /* takes no new incidents; its open ones go on */
} gs_incident_category_t;

/* A category table: the categories and their deadlines. The built-in one
 * (gs_incident_table_default) is what a store holds until an operator sets
 * its own (docs/data-model.md, "Incident categories and deadlines"). */
typedef struct gs_incident_table {
    size_t n;                                       /* categories, 1.. */
    gs_incident_category_t cats[GS_INCIDENT_CATEGORIES_MAX]; /* in code order (strcmp) */
} gs_incident_table_t;

/* The built-in table. Never NULL. */
const gs_incident_table_t *gs_incident_table_default(void);

/* The category of t with this code, or NULL (unknown, empty or NULL).
 * A retired category is found. */
const gs_incident_category_t *gs_incident_table_find(const gs_incident_table_t *t,
                                                     const char *code);

/* Deadline of closure from acceptance for category and severity
 * (IncidentSeverity 1..4) in table t, in ms; 0 for an unknown category or
 * severity. */
int64_t gs_incident_table_close_ms(const gs_incident_table_t *t, const char *category,
                                   int severity);

/* A department's time to handle a dispatched incident of category and
 * severity in table t, in ms; 0 for an unknown category or severity. */
int64_t gs_incident_table_handle_ms(const gs_incident_table_t *t, const char *category,
                                    int severity);

/* Is code shaped like a category code: 1 to GS_INCIDENT_CATEGORY_MAX
 * ASCII letters or digits? Returns 0, or REASON_CATEGORY in *v
 * ("category '0-2' is not a category code (1 to 8 ASCII letters or
 * digits)"). Whether a store's table holds it is the store's question. */
int gs_incident_code_check(const char *code, gs_verdict_t *v);

/* Parse a category table from its text form (docs/data-model.md, "The
 * table file"): UTF-8, one category per line, GS_INCIDENT_TABLE_FIELDS
 * fields separated by one tab each: code, name, closure hours by severity
 * GENERAL, SERIOUS, MAJOR, URGENT, handling hours by the same severities,
 * and "active" or "retired". Blank lines and lines starting with '#' are
 * skipped; a CR before the newline is ignored. Each code passes
 * gs_incident_code_check and appears once; a name is 1 to
 * GS_INCIDENT_NAME_MAX bytes of text (gs_text_check); hours are whole
 * numbers 1..GS_INCIDENT_HOURS_MAX that do not grow with severity; at most
 * GS_INCIDENT_CATEGORIES_MAX lines and at least one active category. *out
 * gets the table in code order. Returns 0, or -1 with the first problem in
 * v->message (reason REASON_BAD_REQUEST) and its 1-based line in *line (0
 * for a problem of the whole table, e.g. no active category). Pure. */
int gs_incident_table_parse(const char *text, size_t len, gs_incident_table_t *out,
                            size_t *line, gs_verdict_t *v);

/* The text form of t as gs_incident_table_parse reads it: a comment line
 * naming the columns, then one line per category in code order. Writes at
 * most size bytes with a NUL (snprintf's rules) and returns the length the
 * whole text needs, NUL excluded. Parsing the text gives t back. */
size_t gs_incident_table_format(const gs_incident_table_t *t, char *buf, size_t size);

/* The built-in table's categories (gs_incident_table_default()->cats);
 * *n gets its length. Never NULL. */
const gs_incident_category_t *gs_incident_categories(size_t *n);

/* gs_incident_table_find in the built-in table. A store's configured table
 * may differ: what a store accepts is gs_store_incident_table's. */
const gs_incident_category_t *gs_incident_category_find(const char *code);

/* gs_incident_table_close_ms in the built-in table (the generator plans
 * its late cases with it). */
int64_t gs_incident_close_ms(const char *category, int severity);

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

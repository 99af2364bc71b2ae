/*
 * gs_gen_incident: deterministic incidents (事件) for a generated district,
 * each with the workflow it goes through, for gridsim, the demo and tests.
 *
 * Where it sits: on top of gs_gen (the district) and gs_incident (the
 * workflow tables). A grid's incidents are its rental units' hazards that
 * an inspection found and nobody rectified (安全隐患, related to the rental
 * unit), then incidents of the other categories. Each comes with a plan:
 * the steps after the report, with the role that takes each, the
 * department, the note and the time (ms after the report), drawn so that a
 * district has about 70% closed in time, 10% closed late, 10% rejected, 5%
 * dispatched to a wrong department first and re-dispatched by the centre
 * (改派) before closure, and 5% left open past their deadline. Every plan is a path of the transition table
 * (gs_incident_step_check allows each step to its role), and every
 * department step is taken by the department the incident is dispatched to.
 *
 * Thread safety: pure functions of (generator, grid, index); any thread,
 * each with its own arena.
 */
#ifndef GS_GEN_INCIDENT_H
#define GS_GEN_INCIDENT_H

#include <stddef.h>
#include <stdint.h>

#include "gs_arena.h"
#include "gs_gen.h"

#define GS_GEN_INC_STEPS_MAX 10     /* steps after the report, at most */

/* What the plan makes of an incident. */
typedef enum gs_gen_inc_outcome {
    GS_GEN_INC_ON_TIME = 0,     /* closed before due_at */
    GS_GEN_INC_LATE,            /* closed after due_at */
    GS_GEN_INC_REJECTED,        /* rejected by the centre */
    GS_GEN_INC_REDISPATCHED,    /* sent to the wrong department first, closed in time */
    GS_GEN_INC_OVERDUE,         /* dispatched and never handled: open past due_at */
} gs_gen_inc_outcome_t;

/* One step of a plan. */
typedef struct gs_gen_inc_step {
    int status;                 /* IncidentStatus the step leads to */
    int role;                   /* PrincipalRole that takes it */
    const char *department;     /* for a dispatch (and the department's own steps) */
    const char *note;           /* the step's note */
    int64_t after_ms;           /* when, after the report */
} gs_gen_inc_step_t;

/* An incident and its plan. */
typedef struct gs_gen_incident {
    Gridsync__V1__Record *report;   /* the first version: status REPORTED (in the arena) */
    gs_gen_inc_outcome_t outcome;
    size_t n_steps;
    gs_gen_inc_step_t steps[GS_GEN_INC_STEPS_MAX];
} gs_gen_incident_t;

/* How many incidents grid has: one per unrectified hazard of its rental
 * units (their latest inspection's), plus 1 to 3 of other categories.
 * Builds the grid's rental units in a (reset it after). */
uint32_t gs_gen_grid_incident_count(const gs_gen_t *g, uint32_t grid, gs_arena_t *a);

/* Incident k (0 .. count-1) of grid into *out, built in arena a (now_ms
 * as the generator's opts.now_ms):
 * incident_id "E<grid code><5-digit k>", reported by the grid's collector
 * and device, valid (gs_record_check at opts.now_ms), meta.collected_at
 * one to three days before now_ms. The department codes are
 * "dept-" + a category's department (dept-justice 01, dept-fire 02,
 * dept-police 03, dept-sanitation 04, dept-urban 05, dept-civil 06,
 * dept-street 99); gs_gen_inc_department gives it for a category.
 * Returns 0, or -1 when k is out of range or memory runs out. */
int gs_gen_incident(const gs_gen_t *g, uint32_t grid, uint32_t k, int64_t now_ms,
                    gs_arena_t *a, gs_gen_incident_t *out);

/* The department code that handles a category, NULL for an unknown one. */
const char *gs_gen_inc_department(const char *category);

#endif

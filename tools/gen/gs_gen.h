/*
 * gs_gen: a deterministic synthetic district, shaped like a real one.
 *
 * Where it sits: the data source for gridsim (the device fleet), the
 * benchmarks, the demo and tests. Given a seed it always produces the same
 * district: streets -> communities -> grids, households of 1..6 members with
 * valid resident ID numbers and phones, and rental buildings with units,
 * landlords, tenants and safety inspections.
 *
 * Records are made on demand by index (random access, no table kept), so a
 * 5M-record run does not hold 5M records in memory. Each record is built in
 * a caller's arena and valid until that arena is reset.
 *
 * Thread safety: a gs_gen_t is read-only after gs_gen_new; any number of
 * threads may generate from it at once, each with its own arena.
 */
#ifndef GS_GEN_H
#define GS_GEN_H

#include <stddef.h>
#include <stdint.h>
#include "gridsync.pb-c.h"
#include "gs_arena.h"

typedef struct gs_gen gs_gen_t;

typedef struct gs_gen_opts {
    uint64_t seed;              /* default 1 */
    const char *district;       /* 6-digit GB/T 2260 code (default "440305") */
    uint32_t streets;           /* default 8 */
    uint32_t grids;             /* total grids (default 1372) */
    uint32_t households;        /* total households (default 139000) */
    uint32_t rental_buildings;  /* default 13055 */
    uint32_t units_per_building;/* mean rental units per building (default 4) */
    int64_t now_ms;             /* "today" for dates and collected_at
                                   (default 2026-06-01T00:00+08:00) */
} gs_gen_opts_t;

void gs_gen_opts_init(gs_gen_opts_t *o);

/* NULL on bad options (e.g. district not 6 digits) or no memory. */
gs_gen_t *gs_gen_new(const gs_gen_opts_t *opts);
void gs_gen_destroy(gs_gen_t **self_p);

/* The hierarchy. Grid codes are 15 digits: district(6) street(3)
 * community(3) grid(3). Indexes run from 0 to count-1. */
uint32_t gs_gen_grid_count(const gs_gen_t *self);
const char *gs_gen_grid_code(const gs_gen_t *self, uint32_t grid);
const char *gs_gen_grid_name(const gs_gen_t *self, uint32_t grid);

uint32_t gs_gen_household_count(const gs_gen_t *self);
uint32_t gs_gen_rental_count(const gs_gen_t *self);   /* rental units */

/* Index range [*first, *first + *n) of the households / rental units that
 * lie in one grid (records are numbered grid by grid). */
void gs_gen_grid_households(const gs_gen_t *self, uint32_t grid,
                            uint32_t *first, uint32_t *n);
void gs_gen_grid_rentals(const gs_gen_t *self, uint32_t grid,
                         uint32_t *first, uint32_t *n);

/* Build household i (or rental unit i) as a Record in arena a. Valid: it
 * passes gs_record_check. meta.device_id is the grid's device
 * ("dev-<grid code>"), meta.collector_id "col-<grid code>", base_version 0.
 * Same seed and index -> same bytes. NULL on allocation failure. */
Gridsync__V1__Record *gs_gen_household(const gs_gen_t *self, uint32_t i,
                                       gs_arena_t *a);
Gridsync__V1__Record *gs_gen_rental(const gs_gen_t *self, uint32_t i,
                                    gs_arena_t *a);

/* Make a valid resident ID number (18 chars + NUL into out) for a birth
 * date (YYYYMMDD) and sex (1 male, 2 female) from a 6-digit area code and a
 * sequence value; used for noise and tests. */
void gs_gen_idnum(const char *area6, int yyyymmdd, int sex, uint32_t seq,
                  char out[19]);

#endif

/*
 * gs_gen: a deterministic synthetic district, shaped like a real one.
 *
 * Where it sits: the data source for gridsim (the device fleet), the
 * benchmarks, the demo and tests. Given a seed it always produces the same
 * district: streets -> communities -> grids, households of 1..6 members with
 * valid resident ID numbers and phones, rental buildings with units,
 * landlords, tenants and safety inspections, and organisations (shops,
 * companies, 个体 stalls, community services) with their people.
 *
 * Records are made on demand by index (random access, no table kept), so a
 * 5M-record run does not hold 5M records in memory. Each record is built in
 * a caller's arena and valid until that arena is reset. Only the hierarchy
 * (a few hundred KB for the default district) is laid out up front.
 *
 * What the data guarantees (for any district up to 15,000 grids and 9,999
 * rental buildings per grid):
 *  - every record passes gs_record_check (see gs_gen_household);
 *  - no two persons share an ID number (resident ID, passport or permit),
 *    except that a building's landlord is one person and appears, with the
 *    same content, on every rental unit of that building, and that an
 *    organisation's legal representative, contact and employees are
 *    household heads of the district (the same ID number, so the person
 *    index sees one person; most live in another grid than they work in);
 *  - no two households, no two rental units and no two organisations share
 *    a natural key (standard address code, room address, USCC with place),
 *    so the store never merges generated records;
 *  - household, rental-unit and organisation indexes run grid by grid, so
 *    each grid's records form one contiguous index range.
 * Organisations carry the noise a real register has: about 1 in 20
 * enterprises is a branch with the USCC of an enterprise in another grid
 * (at its own address: the store keeps both and reports the USCC as a
 * duplicate), and a third of the 个体工商户 are unregistered stalls without
 * a USCC, keyed by name and stall. Other duplicates and errors are the job
 * of the noise tools built on top.
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
    uint32_t organisations;     /* organisations (实有单位), spread evenly over
                                   the grids (default 8232) */
    int64_t now_ms;             /* "today" for dates and collected_at
                                   (default 2026-06-01T00:00+08:00) */
} gs_gen_opts_t;

void gs_gen_opts_init(gs_gen_opts_t *o);

/* Lay out the district. opts NULL means defaults. NULL on bad options
 * (district not 6 digits or not a real province, streets not in 1..399,
 * fewer grids than streets, units_per_building 0 or over 1000, now_ms not
 * positive) or no memory. */
gs_gen_t *gs_gen_new(const gs_gen_opts_t *opts);

/* Free the generator; sets *self_p to NULL. Safe on NULL and twice. Records
 * already made stay valid (they live in the callers' arenas). */
void gs_gen_destroy(gs_gen_t **self_p);

/* The hierarchy. Grid codes are 15 digits: district(6) street(3)
 * community(3) grid(3), streets numbered from 001 (001..099 街道), about 11
 * grids per community; grid indexes follow code order. Indexes run from 0
 * to count-1; code and name are NULL past the end and valid as long as the
 * generator. Names are UTF-8, e.g. "华阳社区第1网格". */
uint32_t gs_gen_grid_count(const gs_gen_t *self);
const char *gs_gen_grid_code(const gs_gen_t *self, uint32_t grid);
const char *gs_gen_grid_name(const gs_gen_t *self, uint32_t grid);

uint32_t gs_gen_household_count(const gs_gen_t *self);
uint32_t gs_gen_rental_count(const gs_gen_t *self);   /* rental units */

/* Index range [*first, *first + *n) of the households / rental units that
 * lie in one grid (records are numbered grid by grid; *n may be 0 for
 * rentals). grid must be below gs_gen_grid_count (asserted). */
void gs_gen_grid_households(const gs_gen_t *self, uint32_t grid,
                            uint32_t *first, uint32_t *n);
void gs_gen_grid_rentals(const gs_gen_t *self, uint32_t grid,
                         uint32_t *first, uint32_t *n);

/* Build household i (or rental unit i) as a Record in arena a. Valid: it
 * passes gs_record_check(rec, gs_arena_allocator(a), NULL, opts.now_ms, v).
 * meta.device_id is the grid's device ("dev-<grid code>"),
 * meta.collector_id "col-<grid code>", collected_at within the 90 days
 * before now_ms, base_version 0, status ACTIVE. household_id is
 * "H<grid code><5-digit index in grid>", house_id "R<grid code><index>".
 * Same seed and index -> same bytes, in any order and any thread.
 *
 * Some strings point to constant text shared by all records (enum-like
 * values such as ethnicity, the district code as hukou region). Release the
 * record only by resetting the arena, and give gs_record_check the arena's
 * allocator, never NULL (which would free() replaced strings).
 * NULL when i is out of range or on allocation failure. */
Gridsync__V1__Record *gs_gen_household(const gs_gen_t *self, uint32_t i,
                                       gs_arena_t *a);
Gridsync__V1__Record *gs_gen_rental(const gs_gen_t *self, uint32_t i,
                                    gs_arena_t *a);

/* Organisations: count, the index range of one grid (as for households),
 * and organisation i as a Record (body organisation) in arena a, with the
 * same promises as gs_gen_household. org_id is "O<grid code><5-digit index
 * in grid>". It builds the households its people come from in a too.
 * NULL when i is out of range or on allocation failure. */
uint32_t gs_gen_org_count(const gs_gen_t *self);
void gs_gen_grid_orgs(const gs_gen_t *self, uint32_t grid, uint32_t *first,
                      uint32_t *n);
Gridsync__V1__Record *gs_gen_org(const gs_gen_t *self, uint32_t i, gs_arena_t *a);

/* Make a valid resident ID number (18 chars + NUL into out) for a birth
 * date (YYYYMMDD, a real date) and sex (1 male, 2 female) from a 6-digit
 * area code (asserted) and a sequence value; used for noise and tests.
 * The 3-digit sequence is 2 * (seq % 499) + 1 for men and + 2 for women, so
 * it is never 000 and its parity matches sex: seq values 0..498 give 499
 * different numbers per area, date and sex. Pure and thread-safe. */
void gs_gen_idnum(const char *area6, int yyyymmdd, int sex, uint32_t seq,
                  char out[19]);

#endif

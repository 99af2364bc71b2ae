/*
 * gs_grid: the rules about grid codes and calendar dates that every part of
 * gridsync shares: which codes a prefix covers, whether a registry entry is
 * valid on a day, and the conversion between calendar dates and day numbers.
 *
 * Where it sits: proto/, beside gs_validate (which checks that a code, a
 * prefix or a date is well formed). The store, the broker and the tools call
 * these functions instead of writing the rules again, so that a subscription,
 * a sync, an upload's authorisation and gridctl's listings agree on what
 * "under a prefix" and "valid today" mean.
 *
 * Days are counted from 1970-01-01 (day 0) in the proleptic Gregorian
 * calendar; "today" is the calendar date in China Standard Time (UTC+8, no
 * daylight saving), as gs_date_today computes it.
 *
 * Pure functions: no I/O, no clock, no allocation. Reentrant, any thread.
 */
#ifndef GS_GRID_H
#define GS_GRID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gridsync.pb-c.h"
#include "gs_validate.h"

/* ---- Prefixes ----------------------------------------------------------- */

/* Does prefix cover code, that is, does code start with prefix? "" covers
 * every code; a prefix longer than GS_GRID_LEN covers none. code is a
 * NUL-terminated string or at least GS_GRID_LEN readable bytes (a grid code
 * inside a stored key or value); prefix is NUL-terminated. A code may itself
 * be a prefix: "4403" covers "440305" (a subscription inside a device's
 * scope). Both must be non-NULL (asserted). */
bool gs_grid_prefix_covers(const char *prefix, const char *code);

/* Index of the first of prefixes[0..n) that covers code, or -1 when none
 * does (always when n is 0: no prefixes allow nothing). */
int gs_grid_prefix_find(const char *code, const char *const *prefixes, size_t n);

/* ---- Calendar ----------------------------------------------------------- */

/* Day number of the civil date y-m-d (m 1..12, d 1..31; the date is not
 * checked: gs_date_parse does that). Exact for any year that fits an int. */
int64_t gs_days_from_civil(int y, int m, int d);

/* The civil date of day number days, into *y, *m (1..12) and *d (1..31). */
void gs_civil_from_days(int64_t days, int *y, int *m, int *d);

/* ---- Grid registry validity -------------------------------------------- */

/* What gs_grid_valid_on says about a registry entry on a day. */
enum {
    GS_GRID_VALID = 0,          /* in service that day (open ends included) */
    GS_GRID_NOT_YET = 1,        /* the day is before valid_from */
    GS_GRID_RETIRED = 2,        /* the day is after valid_to */
    GS_GRID_BAD_DATE = -1       /* valid_from or valid_to is set but is not a
                                 * real YYYY-MM-DD date (gs_date_parse) */
};

/* Is the registry entry g in service on day yyyymmdd (as gs_date_parse and
 * gs_date_today give it)? valid_from and valid_to are both inclusive; an
 * empty or NULL one is open. A bad date is reported before anything else,
 * since the registry checks dates when an entry is written and a bad one
 * means a damaged entry. g must be non-NULL (asserted). */
int gs_grid_valid_on(const Gridsync__V1__Grid *g, int yyyymmdd);

#endif

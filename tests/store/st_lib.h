/*
 * st_lib: helpers shared by the store tests (and the store benchmark):
 * temporary store directories, valid Household / RentalHousing
 * and OrganisationUnit records built in code with computed ID check
 * characters, and one-call uploads.
 *
 * Records are built in a gs_arena so that validation may normalise their
 * strings in place; they live until the arena is reset.
 */
#ifndef ST_LIB_H
#define ST_LIB_H

#include <stddef.h>
#include <stdint.h>

#include "gs_arena.h"
#include "gs_store.h"

/* "Now" for every test: 2026-06-01T00:00+08:00. */
#define ST_NOW_MS 1780243200000LL

/* What a test record looks like. Zero fields take defaults. */
typedef struct st_rec {
    char kind;                  /* 'H' household (default), 'R' rental or
                                 * 'O' organisation */
    const char *id;             /* record id */
    const char *grid;           /* 15 digits */
    const char *addr_code;      /* standard address code; NULL = none */
    const char *room;           /* room number of a RoomAddress; NULL = none */
    uint32_t pids[8];           /* persons by seed (0 ends): members, tenants
                                 * or employees */
    uint32_t landlord;          /* rental: landlord person seed; organisation:
                                 * legal representative; 0 = none */
    const char *uscc;           /* organisation: its USCC; NULL = an
                                 * unregistered stall (INDIVIDUAL_BUSINESS) */
    const char *name;           /* organisation: its name (default "南联便利店") */
    int nodoc;                  /* also name one person without documents */
    const char *note;           /* human-readable address text (varies content) */
    uint64_t base;              /* meta.base_version */
    int void_;                  /* meta.status = VOID */
    const char *device;         /* meta.device_id (default "dev-1") */
    int64_t collected_at;       /* meta.collected_at (default ST_NOW_MS - 1 h) */
} st_rec_t;

/* Build a record in arena a; NULL only on allocation failure. */
Gridsync__V1__Record *st_build(gs_arena_t *a, const st_rec_t *s);

/* The valid 18-character resident ID number of person seed pid. */
void st_idnum(uint32_t pid, char out[19]);

/* mkdtemp a directory for a store: returns a malloc'd path. */
char *st_tmpdir(void);
/* Remove the directory and everything in it (one level deep plus the
 * backup subdirectories tests make). */
void st_rmdir(const char *dir);

/* Open a store in dir with the options (NULL = defaults); asserts. */
gs_store_t *st_open(const char *dir, const gs_store_opts_t *o);

/* Apply one upload of n records; returns the store's code. */
int st_apply(gs_store_t *st, gs_arena_t *a, const char *device,
             const char *upload_id, Gridsync__V1__Record **recs, size_t n,
             int64_t now_ms, gs_apply_out_t *out);

/* The Ack of upload i of an apply, unpacked (free with
 * gridsync__v1__ack__free_unpacked(.., NULL)); asserts it decodes. */
Gridsync__V1__Ack *st_ack(const gs_apply_out_t *out, size_t i);

/* Apply one record and return its result (status, version, seq and the
 * record key copied into key, which may be NULL). */
typedef struct st_res {
    int status;                 /* ResultStatus */
    int reason;                 /* Reason */
    uint64_t version;
    uint64_t seq;
    char key[65];               /* record_key */
    char message[200];          /* message, for failures */
    size_t n_events;            /* events the apply produced */
} st_res_t;
st_res_t st_put(gs_store_t *st, gs_arena_t *a, const st_rec_t *s, int64_t now_ms);

/* The record as stored, unpacked (heap; free with
 * gridsync__v1__record__free_unpacked(.., NULL)), or NULL when absent;
 * version/grid of the stored view go to the out parameters if not NULL. */
Gridsync__V1__Record *st_get(gs_store_t *st, int kind, const char *id,
                             uint64_t *version, char grid[16]);

/* Run verify and fail the test (printing the problems) unless it passes. */
void st_verify_ok(gs_store_t *st);

#endif

/*
 * fuzz_common: temporary directories and the small deterministic district
 * shared by the fuzz targets and the seed maker. See gs_fuzz.h.
 */
#include "gs_fuzz.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_DIRS 8
#define S_FILL_BATCH 8

static char s_dirs[S_MAX_DIRS][256];    /* made by gs_fuzz_tmpdir, removed at exit */
static int s_ndirs;                     /* how many */

int64_t
gs_fuzz_now_ms(void)
{
    gs_gen_opts_t o;
    gs_gen_opts_init(&o);
    return o.now_ms;
}

static int
s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove(path);
}

static void
s_cleanup(void)
{
    for (int i = 0; i < s_ndirs; i++)
        nftw(s_dirs[i], s_rm, 16, FTW_DEPTH | FTW_PHYS);
    s_ndirs = 0;
}

const char *
gs_fuzz_tmpdir(void)
{
    if (s_ndirs == S_MAX_DIRS) {
        fprintf(stderr, "gs_fuzz_tmpdir: too many directories\n");
        abort();
    }
    const char *base = getenv("TMPDIR");
    char *d = s_dirs[s_ndirs];
    snprintf(d, sizeof s_dirs[0], "%s/gs-fuzz-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(d)) {
        perror("gs_fuzz_tmpdir: mkdtemp");
        abort();
    }
    if (s_ndirs++ == 0)
        atexit(s_cleanup);
    return d;
}

gs_gen_t *
gs_fuzz_district(void)
{
    gs_gen_opts_t o;
    gs_gen_opts_init(&o);
    o.streets = 1;
    o.grids = 4;
    o.households = 16;
    o.rental_buildings = 3;
    o.units_per_building = 2;
    o.organisations = 8;
    return gs_gen_new(&o);
}

/* Apply n records as one upload; every record must be accepted. */
static int
s_apply(gs_store_t *st, gs_arena_t *a, Gridsync__V1__Record **recs, size_t n, int batch)
{
    char uid[32];
    snprintf(uid, sizeof uid, "fill-%d", batch);
    gs_upload_t up = {
        .device_id = "dev-fill",
        .upload_id = uid,
        .records = recs,
        .n_records = n,
        .alloc = gs_arena_allocator(a),
        .scope_all = 1,
    };
    gs_apply_out_t out;
    memset(&out, 0, sizeof out);
    int rc = gs_store_apply(st, &up, 1, gs_fuzz_now_ms(), &out);
    if (rc == 0 && out.uploads[0].counts[GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED] !=
                       n) {
        fprintf(stderr, "gs_fuzz_store_fill: batch %d: not every record was accepted\n", batch);
        rc = GS_EINTERNAL;
    }
    gs_apply_out_clear(&out);
    return rc;
}

int
gs_fuzz_store_fill(gs_store_t *st)
{
    gs_gen_t *g = gs_fuzz_district();
    gs_arena_t *a = gs_arena_new(0);
    if (!g || !a) {
        gs_gen_destroy(&g);
        gs_arena_destroy(&a);
        return GS_ENOMEM;
    }
    int rc = 0, batch = 0;
    Gridsync__V1__Record *recs[S_FILL_BATCH];
    uint32_t nh = gs_gen_household_count(g), nr = gs_gen_rental_count(g);
    for (uint32_t i = 0; rc == 0 && i < nh + nr; i += S_FILL_BATCH) {
        size_t n = 0;
        gs_arena_reset(a);
        for (uint32_t k = i; k < nh + nr && n < S_FILL_BATCH; k++)
            recs[n++] = k < nh ? gs_gen_household(g, k, a) : gs_gen_rental(g, k - nh, a);
        rc = s_apply(st, a, recs, n, batch++);
    }
    if (rc == 0) {
        /* an edit, a move to the last grid and a void, each on version 1 */
        gs_arena_reset(a);
        recs[0] = gs_gen_household(g, 0, a);
        recs[0]->household->address = gs_arena_strdup(a, "edited address");
        recs[1] = gs_gen_household(g, 1, a);
        recs[1]->household->grid_code =
            gs_arena_strdup(a, gs_gen_grid_code(g, gs_gen_grid_count(g) - 1));
        recs[2] = gs_gen_rental(g, 0, a);
        recs[2]->rental->meta->status = GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_VOID;
        for (int k = 0; k < 3; k++) {
            Gridsync__V1__RecordMeta *m = gs_record_meta(recs[k]);
            m->base_version = 1;
        }
        rc = s_apply(st, a, recs, 3, batch++);
    }
    gs_arena_destroy(&a);
    gs_gen_destroy(&g);
    return rc;
}

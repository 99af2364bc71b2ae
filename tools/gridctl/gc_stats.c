/*
 * gc_stats: `gridctl stats [PREFIX]`, the per-level table of what has been
 * collected. It reads the per-cell metadata (gs_store_cells: O(cells), never
 * the records) and the grid registry, from the store or with --admin from
 * a broker (gc_src), merges them in code order and adds them up at the
 * level below PREFIX.
 *
 * Coverage is about the registry: a registered grid (valid today) is
 * collected when it holds at least one active household, rental unit or
 * organisation.
 * A row's coverage is collected registered grids / registered grids. Grids
 * with records that are not in the registry are counted apart
 * ("unregistered"); with an empty registry there is no coverage to give.
 */
#include "gc.h"

#include <stdlib.h>
#include <string.h>

#include "gs_grid.h"
#include "gs_validate.h"

static const char s_help[] =
    "Usage: gridctl stats [PREFIX] [--level LEVEL]\n"
    "\n"
    "Households, persons, rental units, tenants, organisations, their employees\n"
    "and void records, added up at the\n"
    "level below PREFIX (a district gives one row per street, a street one per\n"
    "community, a community one per grid), with totals, the last update and the\n"
    "collection coverage. Without PREFIX: the whole store, starting at the first\n"
    "level with more than one entry.\n"
    "\n"
    "  PREFIX         grid-code digits (6 district, 9 street, 12 community, 15 grid)\n"
    "  --level L      rows at level province|city|district|street|community|grid\n"
    "\n"
    "Coverage: a grid of the registry (valid today) is collected when it holds an\n"
    "active household, rental unit or organisation; coverage is collected /\n"
    "registered grids.\n"
    "At grid level each row says collected, empty (registered, nothing collected)\n"
    "or unregistered (records in a grid missing from a non-empty registry).\n"
    "Cost: one read of the per-cell counters and of the registry, not the records.\n"
    "\n"
    "--json: one document {prefix, level, head_seq, registry:{grids, total},\n"
    "rows:[{code, name, households, persons, rentals, tenants, organisations,\n"
    "employees, incidents, voided, grids,\n"
    "grids_registered, grids_registered_collected, grids_unregistered, coverage,\n"
    "status, last_seq, last_update}], totals:{...}}. coverage is a fraction or null.\n";

static const char *const s_level_names[GS_LEVELS] = {
    "all", "province", "city", "district", "street", "community", "grid"
};

/* One cell or registered grid, in code order. */
typedef struct s_item {
    char grid[GS_GRID_LEN + 1]; /* grid code */
    int has_cell;               /* the store has counters for it */
    gs_cell_meta_t m;           /* those counters */
    int registered;             /* in the registry and valid today */
    char *name;                 /* registry name (malloc'd) or NULL */
} s_item_t;

/* A growing list of items. */
typedef struct s_items {
    s_item_t *v;                /* items */
    size_t n, cap;              /* used, allocated */
    int today;                  /* YYYYMMDD, for registry validity */
    uint64_t reg_total;         /* registry entries anywhere */
    int nomem;                  /* an allocation failed */
} s_items_t;

/* One output row: a code at the chosen level. */
typedef struct s_row {
    char code[GS_GRID_LEN + 1]; /* prefix of the row */
    const char *name;           /* registry name (grid rows) */
    uint64_t households, persons, rentals, tenants, voided; /* summed cell counters */
    uint64_t organisations, employees; /* summed cell counters */
    uint64_t incidents;         /* summed cell counter */
    uint64_t grids;             /* grids with active records */
    uint64_t registered;        /* registered grids (valid today) */
    uint64_t reg_collected;     /* registered grids with active records */
    uint64_t unregistered;      /* grids with records, missing from the registry */
    uint64_t last_seq;          /* last event under the row */
    int64_t last_update;        /* its commit time */
} s_row_t;

static s_item_t *
s_item_add(s_items_t *it)
{
    if (it->n == it->cap) {
        size_t cap = it->cap ? it->cap * 2 : 256;
        s_item_t *v = realloc(it->v, cap * sizeof *v);
        if (!v) {
            it->nomem = 1;
            return NULL;
        }
        it->v = v;
        it->cap = cap;
    }
    s_item_t *x = &it->v[it->n++];
    memset(x, 0, sizeof *x);
    return x;
}

static int
s_on_cell(void *arg, const char *grid, const gs_cell_meta_t *m)
{
    s_items_t *it = arg;
    s_item_t *x = s_item_add(it);
    if (!x)
        return 1;
    snprintf(x->grid, sizeof x->grid, "%s", grid);
    x->has_cell = 1;
    x->m = *m;
    return 0;
}

/* Registry entries, merged into the (sorted) cells list by a second sorted
 * list that is merged afterwards. */
typedef struct s_regs {
    s_items_t *it;              /* where merged items go */
    s_item_t *v;                /* registry items */
    size_t n, cap;              /* used, allocated */
} s_regs_t;

static int
s_on_grid(void *arg, const Gridsync__V1__Grid *g)
{
    s_regs_t *r = arg;
    if (!g->grid_code || strlen(g->grid_code) != GS_GRID_LEN ||
        gs_grid_valid_on(g, r->it->today) > GS_GRID_VALID) /* a damaged date is open */
        return 0;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        s_item_t *v = realloc(r->v, cap * sizeof *v);
        if (!v) {
            r->it->nomem = 1;
            return 1;
        }
        r->v = v;
        r->cap = cap;
    }
    s_item_t *x = &r->v[r->n++];
    memset(x, 0, sizeof *x);
    memcpy(x->grid, g->grid_code, GS_GRID_LEN + 1);
    x->registered = 1;
    x->name = g->name && *g->name ? strdup(g->name) : NULL;
    return 0;
}

static int
s_count_grid(void *arg, const Gridsync__V1__Grid *g)
{
    (void) g;
    ++*(uint64_t *) arg;
    return 0;
}

/* Merge the registry list into it (both in code order). */
static int
s_merge(s_items_t *it, s_regs_t *r)
{
    s_item_t *cells = it->v;
    size_t nc = it->n, i = 0, j = 0;
    it->v = NULL;
    it->n = it->cap = 0;
    while (i < nc || j < r->n) {
        int c = i == nc ? 1 : j == r->n ? -1 : strcmp(cells[i].grid, r->v[j].grid);
        s_item_t *x = s_item_add(it);
        if (!x)
            break;
        if (c < 0) {
            *x = cells[i++];
        } else if (c > 0) {
            *x = r->v[j++];
            r->v[j - 1].name = NULL;
        } else {
            *x = cells[i++];
            x->registered = 1;
            x->name = r->v[j].name;
            r->v[j++].name = NULL;
        }
    }
    free(cells);
    return it->nomem ? -1 : 0;
}

/* Distinct codes at prefix length len. */
static size_t
s_groups(const s_items_t *it, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < it->n; i++)
        if (i == 0 || strncmp(it->v[i].grid, it->v[i - 1].grid, len))
            n++;
    return n;
}

static int
s_active(const s_item_t *x)
{
    return x->has_cell && (x->m.households || x->m.rentals || x->m.organisations);
}

static void
s_row_add(s_row_t *r, const s_item_t *x)
{
    if (x->has_cell) {
        r->households += x->m.households;
        r->persons += x->m.persons;
        r->rentals += x->m.rentals;
        r->tenants += x->m.tenants;
        r->organisations += x->m.organisations;
        r->employees += x->m.employees;
        r->incidents += x->m.incidents;
        r->voided += x->m.voided;
        if (x->m.last_seq > r->last_seq) {
            r->last_seq = x->m.last_seq;
            r->last_update = x->m.last_update;
        }
    }
    r->grids += (uint64_t) s_active(x);
    r->registered += (uint64_t) x->registered;
    r->reg_collected += (uint64_t) (x->registered && s_active(x));
}

/* The status of one grid at grid level. */
static const char *
s_grid_status(const s_row_t *r, uint64_t reg_total)
{
    if (r->registered)
        return r->grids ? "collected" : "empty";
    if (reg_total && r->grids)
        return "unregistered";
    return r->grids ? "collected" : "void only";
}

static void
s_json_row(gs_json_t *j, const s_row_t *r, int grid_level, uint64_t reg_total, int totals)
{
    gs_json_obj(j);
    if (!totals) {
        gs_json_key(j, "code");
        gs_json_str(j, r->code);
        gs_json_key(j, "name");
        gs_json_str(j, r->name);
    }
    gs_json_key(j, "households");
    gs_json_u64(j, r->households);
    gs_json_key(j, "persons");
    gs_json_u64(j, r->persons);
    gs_json_key(j, "rentals");
    gs_json_u64(j, r->rentals);
    gs_json_key(j, "tenants");
    gs_json_u64(j, r->tenants);
    gs_json_key(j, "organisations");
    gs_json_u64(j, r->organisations);
    gs_json_key(j, "employees");
    gs_json_u64(j, r->employees);
    gs_json_key(j, "incidents");
    gs_json_u64(j, r->incidents);
    gs_json_key(j, "voided");
    gs_json_u64(j, r->voided);
    gs_json_key(j, "grids");
    gs_json_u64(j, r->grids);
    gs_json_key(j, "grids_registered");
    gs_json_u64(j, r->registered);
    gs_json_key(j, "grids_registered_collected");
    gs_json_u64(j, r->reg_collected);
    gs_json_key(j, "grids_unregistered");
    gs_json_u64(j, r->unregistered);
    gs_json_key(j, "coverage");
    if (r->registered)
        gs_json_figure(j, (double) r->reg_collected / (double) r->registered);
    else
        gs_json_null(j);
    if (grid_level && !totals) {
        gs_json_key(j, "status");
        gs_json_str(j, s_grid_status(r, reg_total));
    }
    gs_json_key(j, "last_seq");
    gs_json_u64(j, r->last_seq);
    gs_json_key(j, "last_update");
    gs_json_i64(j, r->last_update);
    gs_json_end(j);
}

static void
s_table_row(gc_table_t *t, const s_row_t *r, int grid_level, uint64_t reg_total,
            const char *label)
{
    char b[8][32], when[32];
    gc_table_row(t);
    gc_table_cell(t, "%s", label ? label : r->code);
    if (grid_level)
        gc_table_cell(t, "%s", r->name ? r->name : "");
    gc_table_cell(t, "%s", gc_num(r->households, b[0], sizeof b[0]));
    gc_table_cell(t, "%s", gc_num(r->persons, b[1], sizeof b[1]));
    gc_table_cell(t, "%s", gc_num(r->rentals, b[2], sizeof b[2]));
    gc_table_cell(t, "%s", gc_num(r->tenants, b[3], sizeof b[3]));
    gc_table_cell(t, "%s", gc_num(r->organisations, b[5], sizeof b[5]));
    gc_table_cell(t, "%s", gc_num(r->employees, b[6], sizeof b[6]));
    gc_table_cell(t, "%s", gc_num(r->voided, b[4], sizeof b[4]));
    if (grid_level && !label) {
        gc_table_cell(t, "%s", s_grid_status(r, reg_total));
    } else if (r->registered) {
        char extra[48] = "";
        if (r->unregistered)
            snprintf(extra, sizeof extra, " +%llu unregistered",
                     (unsigned long long) r->unregistered);
        gc_table_cell(t, "%llu/%llu (%.1f%%)%s", (unsigned long long) r->reg_collected,
                      (unsigned long long) r->registered,
                      100.0 * (double) r->reg_collected / (double) r->registered, extra);
    } else if (r->unregistered) {
        gc_table_cell(t, "%llu unregistered", (unsigned long long) r->unregistered);
    } else {
        gc_table_cell(t, "%s", reg_total ? "no grids registered" : "-");
    }
    gc_table_cell(t, "%s", gc_time_local(r->last_update, when, sizeof when));
}

int
gc_cmd_stats(gc_ctx_t *ctx, int argc, char **argv)
{
    static const gc_optspec_t spec[] = { { "level", 1 }, { NULL, 0 } };
    gc_args_t a;
    int rc = gc_args_parse(ctx, argc, argv, spec, &a);
    if (rc)
        return rc;
    if (a.help) {
        fputs(s_help, ctx->out);
        return GC_EXIT_OK;
    }
    if (a.n_pos > 1)
        return gc_usage(ctx, "expected at most one PREFIX");
    const char *prefix = a.n_pos ? a.pos[0] : "";
    if ((rc = gc_prefix_arg(ctx, prefix)))
        return rc;
    size_t pl = strlen(prefix);
    int level = -1;
    const char *lv = gc_args_get(&a, "level");
    if (lv) {
        for (int i = 1; i < GS_LEVELS; i++)
            if (!strcmp(lv, s_level_names[i]))
                level = i;
        if (level < 0)
            return gc_usage(ctx, "--level must be province, city, district, street, "
                                 "community or grid");
        if ((size_t) gs_level_len[level] < pl)
            return gc_usage(ctx, "--level %s is above the prefix %s", lv, prefix);
    }

    gc_src_t *src = gc_src_open(ctx, &rc);
    if (!src)
        return rc;
    s_items_t it = { 0 };
    it.today = gc_today();
    s_regs_t regs = { &it, NULL, 0, 0 };
    uint64_t head = 0;
    int err = gc_src_cells(src, prefix, s_on_cell, &it, &head);
    if (!err)
        err = gc_src_grids(src, prefix, s_on_grid, &regs);
    if (!err)
        err = gc_src_grids(src, "", s_count_grid, &it.reg_total);
    if (it.nomem || (!err && s_merge(&it, &regs)))
        err = GS_ENOMEM;
    for (size_t i = 0; i < regs.n; i++)
        free(regs.v[i].name);
    free(regs.v);
    if (err) {
        for (size_t i = 0; i < it.n; i++)
            free(it.v[i].name);
        free(it.v);
        rc = err > 0 ? gc_fail(ctx, "out of memory") : gc_src_fail(ctx, src, "stats", err);
        gc_src_close(&src);
        return rc;
    }
    gc_src_close(&src);

    /* the level of the rows: the one below the prefix, going further down
     * while it would give a single row (a store of one district) */
    if (level < 0) {
        level = GS_LEVEL_GRID;
        for (int i = 1; i < GS_LEVELS; i++)
            if ((size_t) gs_level_len[i] > pl) {
                level = i;
                break;
            }
        while (level < GS_LEVEL_GRID && s_groups(&it, (size_t) gs_level_len[level]) <= 1)
            level++;
    }
    size_t len = (size_t) gs_level_len[level];
    int grid_level = level == GS_LEVEL_GRID;

    size_t nrows = s_groups(&it, len);
    s_row_t *rows = calloc(nrows ? nrows : 1, sizeof *rows);
    s_row_t tot;
    memset(&tot, 0, sizeof tot);
    if (!rows) {
        for (size_t i = 0; i < it.n; i++)
            free(it.v[i].name);
        free(it.v);
        return gc_fail(ctx, "out of memory");
    }
    size_t r = 0;
    for (size_t i = 0; i < it.n; i++) {
        const s_item_t *x = &it.v[i];
        if (i && strncmp(x->grid, it.v[i - 1].grid, len))
            r++;
        s_row_t *row = &rows[r];
        if (!row->code[0])
            snprintf(row->code, sizeof row->code, "%.*s", (int) len, x->grid);
        if (grid_level)
            row->name = x->name;
        s_row_add(row, x);
        s_row_add(&tot, x);
        if (it.reg_total && !x->registered && s_active(x)) {
            row->unregistered++;
            tot.unregistered++;
        }
    }

    if (ctx->json) {
        gs_json_t j;
        gs_json_init_file(&j, ctx->out);
        gs_json_obj(&j);
        gs_json_key(&j, "prefix");
        gs_json_str(&j, prefix);
        gs_json_key(&j, "level");
        gs_json_str(&j, s_level_names[level]);
        gs_json_key(&j, "head_seq");
        gs_json_u64(&j, head);
        gs_json_key(&j, "registry");
        gs_json_obj(&j);
        gs_json_key(&j, "grids");
        gs_json_u64(&j, tot.registered);
        gs_json_key(&j, "total");
        gs_json_u64(&j, it.reg_total);
        gs_json_end(&j);
        gs_json_key(&j, "rows");
        gs_json_arr(&j);
        for (size_t i = 0; i < nrows; i++)
            s_json_row(&j, &rows[i], grid_level, it.reg_total, 0);
        gs_json_end(&j);
        gs_json_key(&j, "totals");
        s_json_row(&j, &tot, grid_level, it.reg_total, 1);
        gs_json_end(&j);
    } else {
        char head_b[32], up[32];
        fprintf(ctx->out, "store %s, head seq %s, %s %s\n\n",
                ctx->admin ? ctx->admin : ctx->store_dir,
                gc_num(head, head_b, sizeof head_b), pl ? "under" : "prefix",
                pl ? prefix : "(all)");
        char first[16];
        snprintf(first, sizeof first, "%s", s_level_names[level]);
        for (char *p = first; *p; p++)
            *p = (char) (*p - 'a' + 'A');
        const char *hg[] = { first, "NAME", "HOUSEHOLDS", "PERSONS", "RENTALS", "TENANTS",
                             "ORGS", "EMPLOYEES", "VOIDED", "STATUS", "LAST UPDATE" };
        const char *ho[] = { first, "HOUSEHOLDS", "PERSONS", "RENTALS", "TENANTS", "ORGS",
                             "EMPLOYEES", "VOIDED", "COVERAGE", "LAST UPDATE" };
        gc_table_t *t = grid_level ? gc_table_new(11, hg, "llrrrrrrrll")
                                   : gc_table_new(10, ho, "lrrrrrrrll");
        if (!t) {
            free(rows);
            for (size_t i = 0; i < it.n; i++)
                free(it.v[i].name);
            free(it.v);
            return gc_fail(ctx, "out of memory");
        }
        for (size_t i = 0; i < nrows; i++)
            s_table_row(t, &rows[i], grid_level, it.reg_total, NULL);
        if (nrows > 1) {
            gc_table_rule(t);
            s_table_row(t, &tot, grid_level, it.reg_total, "total");
        }
        if (nrows)
            gc_table_print(t, ctx->out);
        else
            fprintf(ctx->out, "nothing collected and no registered grids under %s\n",
                    pl ? prefix : "the store");
        gc_table_destroy(&t);
        fputc('\n', ctx->out);
        if (!it.reg_total) {
            fprintf(ctx->out, "coverage: registry empty (import one with gridctl grids "
                              "import FILE.csv)\n");
        } else if (tot.registered) {
            fprintf(ctx->out, "coverage: %llu of %llu registered grids collected (%.1f%%)\n",
                    (unsigned long long) tot.reg_collected,
                    (unsigned long long) tot.registered,
                    100.0 * (double) tot.reg_collected / (double) tot.registered);
        } else {
            fprintf(ctx->out, "coverage: no registered grids under %s\n", prefix);
        }
        if (tot.unregistered)
            fprintf(ctx->out, "%llu grid(s) hold records but are not in the registry\n",
                    (unsigned long long) tot.unregistered);
        fprintf(ctx->out, "last update: %s\n", gc_time_local(tot.last_update, up, sizeof up));
    }
    free(rows);
    for (size_t i = 0; i < it.n; i++)
        free(it.v[i].name);
    free(it.v);
    return gc_finish(ctx, GC_EXIT_OK);
}

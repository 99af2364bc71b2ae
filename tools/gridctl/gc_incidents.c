/*
 * gc_incidents: `gridctl incidents`, the incident figures of a prefix: per
 * prefix at a level and per department, how many incidents were reported,
 * registered, are open, overdue, closed (on time), rejected, with 结案率
 * and 按期结案率. One pass over the records under the prefix (the store
 * read-only, as ls does); what counts as open, overdue and on time is
 * gs_incident's (proto/gs_incident.h), the one place it is decided.
 */
#include "gc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gs_incident.h"

#define S_ST(name) GRIDSYNC__V1__INCIDENT_STATUS__INCIDENT_STATUS_##name
#define S_ROWS_MAX 100000           /* groups kept (prefixes and departments) */

static const char s_help[] =
    "Usage: gridctl incidents PREFIX [--level DIGITS] [--at UNIX_MS]\n"
    "       gridctl incidents categories [show|check FILE|set FILE]  (--help there)\n"
    "\n"
    "The incidents (事件) under PREFIX: per prefix of DIGITS digits (2, 4, 6, 9,\n"
    "12 or 15; default 15, one row per grid) and per department (the one an\n"
    "incident was last dispatched to; \"-\" before any dispatch), with a total:\n"
    "  REPORTED   incidents in all (every status)\n"
    "  REGISTERED accepted by the centre at least once and not rejected now\n"
    "             (status ACCEPTED, DISPATCHED, HANDLED, VERIFIED or CLOSED)\n"
    "  OPEN       neither REJECTED nor CLOSED\n"
    "  OVERDUE    open and past its closure deadline (due_at) at --at (default now)\n"
    "  CLOSED     status CLOSED; ON_TIME of them closed by their due_at\n"
    "  REJECTED   status REJECTED (不予立案)\n"
    "  结案率      CLOSED / REGISTERED, in percent (\"-\" when nothing is registered)\n"
    "  按期结案率  ON_TIME / CLOSED, in percent (\"-\" when nothing is closed)\n"
    "\n"
    "--json: one line per row {by: \"prefix\"|\"department\"|\"total\", key, reported,\n"
    "registered, open, overdue, closed, closed_on_time, rejected, closure_rate,\n"
    "on_time_rate} (rates as fractions 0..1, null when undefined).\n";

/* The counts of one row. */
typedef struct s_row {
    char key[GS_ID_MAX + 1];        /* a prefix or a department code */
    int by;                         /* 0 prefix, 1 department, 2 total */
    uint64_t reported, registered, open, overdue, closed, on_time, rejected;
} s_row_t;

typedef struct s_inc {
    gc_ctx_t *ctx;
    size_t level;                   /* digits of a row's prefix */
    int64_t at;                     /* "now" for overdue */
    s_row_t *rows;                  /* prefix rows then department rows, unsorted */
    size_t n, cap;
    s_row_t total;
    gs_arena_t *arena;              /* one record at a time */
    int bad;                        /* records that did not decode */
    int full;                       /* more groups than S_ROWS_MAX */
} s_inc_t;

static s_row_t *
s_row(s_inc_t *s, int by, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->rows[i].by == by && strcmp(s->rows[i].key, key) == 0)
            return &s->rows[i];
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        if (cap > S_ROWS_MAX) {
            s->full = 1;
            return NULL;
        }
        s_row_t *r = realloc(s->rows, cap * sizeof *r);
        if (!r) {
            s->full = 1;
            return NULL;
        }
        s->rows = r;
        s->cap = cap;
    }
    s_row_t *r = &s->rows[s->n++];
    memset(r, 0, sizeof *r);
    r->by = by;
    snprintf(r->key, sizeof r->key, "%s", key);
    return r;
}

static void
s_count(s_row_t *r, const Gridsync__V1__Incident *in, int64_t at)
{
    if (!r)
        return;
    int st = (int) in->status;
    r->reported++;
    if (st >= S_ST(ACCEPTED) && st != S_ST(REJECTED))
        r->registered++;
    if (gs_incident_open(st))
        r->open++;
    if (gs_incident_overdue(in, at))
        r->overdue++;
    if (st == S_ST(CLOSED))
        r->closed++;
    if (gs_incident_on_time(in))
        r->on_time++;
    if (st == S_ST(REJECTED))
        r->rejected++;
}

static int
s_record(void *arg, const gs_record_view_t *v)
{
    s_inc_t *s = arg;
    if (v->kind != GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT ||
        v->status != GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_ACTIVE)
        return 0;
    gs_arena_reset(s->arena);
    Gridsync__V1__Record *r = gridsync__v1__record__unpack(gs_arena_allocator(s->arena), v->len,
                                                           v->data);
    if (!r || r->body_case != GRIDSYNC__V1__RECORD__BODY_INCIDENT || !r->incident) {
        s->bad++;
        return 0;
    }
    char pfx[GS_GRID_LEN + 1];
    snprintf(pfx, sizeof pfx, "%.*s", (int) s->level, v->grid);
    s_count(s_row(s, 0, pfx), r->incident, s->at);
    const char *d = r->incident->department;
    s_count(s_row(s, 1, d && *d ? d : "-"), r->incident, s->at);
    s_count(&s->total, r->incident, s->at);
    return 0;
}

static int
s_row_cmp(const void *a, const void *b)
{
    const s_row_t *x = a, *y = b;
    if (x->by != y->by)
        return x->by - y->by;
    return strcmp(x->key, y->key);
}

/* A rate in percent into buf, "-" when undefined. */
static const char *
s_pct(uint64_t num, uint64_t den, char *buf, size_t size)
{
    if (!den)
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.1f%%", 100.0 * (double) num / (double) den);
    return buf;
}

static void
s_json_row(gs_json_t *j, const s_row_t *r)
{
    static const char *by[3] = { "prefix", "department", "total" };
    gs_json_obj(j);
    gs_json_key(j, "by");
    gs_json_str(j, by[r->by]);
    gs_json_key(j, "key");
    gs_json_str(j, r->key);
    const struct { const char *k; uint64_t v; } f[] = {
        { "reported", r->reported }, { "registered", r->registered }, { "open", r->open },
        { "overdue", r->overdue }, { "closed", r->closed }, { "closed_on_time", r->on_time },
        { "rejected", r->rejected },
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        gs_json_key(j, f[i].k);
        gs_json_u64(j, f[i].v);
    }
    gs_json_key(j, "closure_rate");
    if (r->registered)
        gs_json_dbl(j, (double) r->closed / (double) r->registered);
    else
        gs_json_null(j);
    gs_json_key(j, "on_time_rate");
    if (r->closed)
        gs_json_dbl(j, (double) r->on_time / (double) r->closed);
    else
        gs_json_null(j);
    gs_json_end(j);
}

static void
s_table_row(gc_table_t *t, const char *by, const s_row_t *r)
{
    char a[16], b[16];
    gc_table_row(t);
    gc_table_cell(t, "%s", by);
    gc_table_cell(t, "%s", r->key);
    gc_table_cell(t, "%llu", (unsigned long long) r->reported);
    gc_table_cell(t, "%llu", (unsigned long long) r->registered);
    gc_table_cell(t, "%llu", (unsigned long long) r->open);
    gc_table_cell(t, "%llu", (unsigned long long) r->overdue);
    gc_table_cell(t, "%llu", (unsigned long long) r->closed);
    gc_table_cell(t, "%llu", (unsigned long long) r->on_time);
    gc_table_cell(t, "%llu", (unsigned long long) r->rejected);
    gc_table_cell(t, "%s", s_pct(r->closed, r->registered, a, sizeof a));
    gc_table_cell(t, "%s", s_pct(r->on_time, r->closed, b, sizeof b));
}

int
gc_cmd_incidents(gc_ctx_t *ctx, int argc, char **argv)
{
    /* the category table is a command of its own (gc_categories.c) */
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] == '-')
            continue;
        if (!strcmp(argv[i], "categories"))
            return gc_cmd_incident_categories(ctx, argc, argv);
        break;
    }
    static const gc_optspec_t spec[] = { { "level", 1 }, { "at", 1 }, { NULL, 0 } };
    gc_args_t a;
    int rc = gc_args_parse(ctx, argc, argv, spec, &a);
    if (rc)
        return rc;
    if (a.help) {
        fputs(s_help, ctx->out);
        return GC_EXIT_OK;
    }
    if (a.n_pos != 1)
        return gc_usage(ctx, "expected one PREFIX (\"\" for the whole store)");
    s_inc_t s;
    memset(&s, 0, sizeof s);
    s.ctx = ctx;
    uint64_t level, at;
    if ((rc = gc_prefix_arg(ctx, a.pos[0])) ||
        (rc = gc_args_u64(ctx, &a, "level", GS_GRID_LEN, 2, GS_GRID_LEN, &level)) ||
        (rc = gc_args_u64(ctx, &a, "at", (uint64_t) gc_now_ms(), 1, INT64_MAX, &at)))
        return rc;
    if (level != 2 && level != 4 && level != 6 && level != 9 && level != 12 && level != 15)
        return gc_usage(ctx, "--level must be 2, 4, 6, 9, 12 or 15 digits");
    if (level < strlen(a.pos[0]))
        return gc_usage(ctx, "--level %llu is above PREFIX %s", (unsigned long long) level,
                        a.pos[0]);
    s.level = (size_t) level;
    s.at = (int64_t) at;
    snprintf(s.total.key, sizeof s.total.key, "%s", *a.pos[0] ? a.pos[0] : "\"\"");
    s.total.by = 2;
    gs_store_t *st = gc_store_open(ctx, 0, &rc);
    if (!st)
        return rc;
    s.arena = gs_arena_new(0);
    if (!s.arena) {
        gs_store_destroy(&st);
        return gc_fail(ctx, "out of memory");
    }
    int err = gs_store_records(st, a.pos[0], s_record, &s);
    gs_store_destroy(&st);
    if (err < 0) {
        rc = gc_store_fail(ctx, "reading the records", err);
    } else if (s.full) {
        rc = gc_fail(ctx, "more than %d prefixes and departments; ask for a coarser --level",
                     S_ROWS_MAX);
    } else {
        qsort(s.rows, s.n, sizeof *s.rows, s_row_cmp);
        if (ctx->json) {
            gs_json_t j;
            gs_json_init_file(&j, ctx->out);
            for (size_t i = 0; i < s.n; i++)
                s_json_row(&j, &s.rows[i]);
            s_json_row(&j, &s.total);
        } else {
            static const char *const h[] = { "BY", "KEY", "REPORTED", "REGISTERED", "OPEN",
                                             "OVERDUE", "CLOSED", "ON_TIME", "REJECTED",
                                             "结案率", "按期结案率" };
            gc_table_t *t = gc_table_new(11, h, "llrrrrrrrrr");
            if (!t) {
                rc = gc_fail(ctx, "out of memory");
            } else {
                for (size_t i = 0; i < s.n; i++)
                    s_table_row(t, s.rows[i].by ? "department" : "prefix", &s.rows[i]);
                s_table_row(t, "total", &s.total);
                gc_table_print(t, ctx->out);
                gc_table_destroy(&t);
            }
        }
    }
    if (!rc && s.bad)
        rc = gc_fail(ctx, "%d incident(s) did not decode; run gridctl verify", s.bad);
    free(s.rows);
    gs_arena_destroy(&s.arena);
    return gc_finish(ctx, rc);
}

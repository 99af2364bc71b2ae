/*
 * gc_records: the subcommands that show records. `ls PREFIX` (one line per
 * record), `get KEY` (one record in full), `history KEY` (its change
 * events) and `export PREFIX` (every record, as JSON lines or one CSV row
 * per person).
 *
 * Each reads through gs_store_records / gs_store_get / gs_store_history in
 * one read transaction, so what it prints is consistent as of one moment
 * even while the broker writes. Store callbacks run inside that
 * transaction: they decode and print, and never call back into the store.
 */
#include "gc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gs_validate.h"

/* --kind household|rental|organisation as a RecordKind (0 = any); -1 when bad. */
static int
s_kind_arg(gc_ctx_t *ctx, const gc_args_t *a, int *kind)
{
    const char *k = gc_args_get(a, "kind");
    *kind = 0;
    if (!k)
        return GC_EXIT_OK;
    if (!strcmp(k, "household"))
        *kind = GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD;
    else if (!strcmp(k, "rental"))
        *kind = GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_RENTAL;
    else if (!strcmp(k, "organisation"))
        *kind = GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_ORGANISATION;
    else if (!strcmp(k, "incident"))
        *kind = GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT;
    else
        return gc_usage(ctx, "--kind must be household, rental, organisation or incident");
    return GC_EXIT_OK;
}

/* The header fields of a stored record in a JSON object being written. */
static void
s_json_view(gs_json_t *j, const gs_record_view_t *v)
{
    gs_json_key(j, "kind");
    gs_json_str(j, gc_kind_name(v->kind));
    gs_json_key(j, "record_key");
    gs_json_str(j, v->record_key);
    gs_json_key(j, "grid");
    gs_json_str(j, v->grid);
    gs_json_key(j, "version");
    gs_json_u64(j, v->version);
    gs_json_key(j, "seq");
    gs_json_u64(j, v->seq);
    gs_json_key(j, "updated_at");
    if (v->updated_at)
        gs_json_i64(j, v->updated_at);
    else
        gs_json_null(j); /* read through a broker: its reply has no commit time */
    gs_json_key(j, "status");
    gs_json_str(j, gc_status_name(v->status));
}

/* ---- ls ------------------------------------------------------------------------------- */

static const char s_ls_help[] =
    "Usage: gridctl ls PREFIX [--kind household|rental|organisation|incident] [--limit N]\n"
    "\n"
    "The records under PREFIX (a grid, a community, or any grid-code prefix) in\n"
    "code order, void ones included: kind, id, grid, version, status, members of a\n"
    "household, tenants of a rental unit or employees of an organisation, address,\n"
    "last update. Nothing personal is shown besides the address.\n"
    "\n"
    "  --kind K       only households, only rental units or only organisations\n"
    "  --limit N      stop after N records\n"
    "\n"
    "--json: one line per record {kind, record_key, grid, version, seq, updated_at,\n"
    "status, people, address}.\n";

/* State of one ls walk. */
typedef struct s_ls {
    gc_ctx_t *ctx;              /* options, output */
    int kind;                   /* 0 = both */
    uint64_t limit;             /* 0 = all */
    uint64_t n;                 /* records listed */
    gs_arena_t *arena;          /* one record at a time */
    gc_table_t *table;          /* human output */
    gs_json_t json;             /* --json output */
    int bad;                    /* a record did not decode */
} s_ls_t;

static int
s_ls_record(void *arg, const gs_record_view_t *v)
{
    s_ls_t *s = arg;
    if (s->kind && v->kind != s->kind)
        return 0;
    gs_arena_reset(s->arena);
    Gridsync__V1__Record *r = gc_record_load(v->data, v->len, s->arena, s->ctx->reveal);
    if (!r) {
        s->bad++;
        return 0;
    }
    char addr[512], when[32];
    gc_record_address(r, addr, sizeof addr);
    if (s->ctx->json) {
        gs_json_obj(&s->json);
        s_json_view(&s->json, v);
        gs_json_key(&s->json, "people");
        gs_json_u64(&s->json, gc_record_people(r));
        gs_json_key(&s->json, "address");
        gs_json_str(&s->json, addr);
        gs_json_end(&s->json);
    } else {
        gc_table_row(s->table);
        gc_table_cell(s->table, "%s", gc_kind_name(v->kind));
        gc_table_cell(s->table, "%s", v->record_key);
        gc_table_cell(s->table, "%s", v->grid);
        gc_table_cell(s->table, "%llu", (unsigned long long) v->version);
        gc_table_cell(s->table, "%s", gc_status_name(v->status));
        gc_table_cell(s->table, "%zu", gc_record_people(r));
        gc_table_cell(s->table, "%s", gc_time_local(v->updated_at, when, sizeof when));
        gc_table_cell(s->table, "%s", addr);
    }
    return ++s->n == s->limit ? 1 : 0;
}

int
gc_cmd_ls(gc_ctx_t *ctx, int argc, char **argv)
{
    static const gc_optspec_t spec[] = { { "kind", 1 }, { "limit", 1 }, { NULL, 0 } };
    gc_args_t a;
    int rc = gc_args_parse(ctx, argc, argv, spec, &a);
    if (rc)
        return rc;
    if (a.help) {
        fputs(s_ls_help, ctx->out);
        return GC_EXIT_OK;
    }
    if (a.n_pos != 1)
        return gc_usage(ctx, "expected one PREFIX (a grid or community code)");
    s_ls_t s;
    memset(&s, 0, sizeof s);
    s.ctx = ctx;
    if ((rc = gc_prefix_arg(ctx, a.pos[0])) || (rc = s_kind_arg(ctx, &a, &s.kind)) ||
        (rc = gc_args_u64(ctx, &a, "limit", 0, 1, UINT32_MAX, &s.limit)))
        return rc;
    gs_store_t *st = gc_store_open(ctx, 0, &rc);
    if (!st)
        return rc;
    static const char *const h[] = { "KIND", "ID", "GRID", "VER", "STATUS", "PEOPLE",
                                     "UPDATED", "ADDRESS" };
    s.arena = gs_arena_new(0);
    s.table = ctx->json ? NULL : gc_table_new(8, h, "lllrlrll");
    gs_json_init_file(&s.json, ctx->out);
    if (!s.arena || (!ctx->json && !s.table)) {
        gs_store_destroy(&st);
        gs_arena_destroy(&s.arena);
        gc_table_destroy(&s.table);
        return gc_fail(ctx, "out of memory");
    }
    int err = gs_store_records(st, a.pos[0], s_ls_record, &s);
    gs_store_destroy(&st);
    if (err < 0)
        rc = gc_store_fail(ctx, "ls", err);
    else if (!ctx->json && s.n)
        gc_table_print(s.table, ctx->out);
    else if (!ctx->json)
        fprintf(ctx->out, "no records under %s\n", a.pos[0]);
    if (s.bad)
        rc = gc_fail(ctx, "%d record(s) did not decode; run gridctl verify", s.bad);
    gc_table_destroy(&s.table);
    gs_arena_destroy(&s.arena);
    return gc_finish(ctx, rc);
}

/* ---- get --------------------------------------------------------------------------------- */

static const char s_get_help[] =
    "Usage: gridctl get KEY [--kind household|rental|organisation|incident]\n"
    "\n"
    "One record by its id (the canonical id or an alias left by a merge): version,\n"
    "status, grid, and every field. ID numbers and phones are masked\n"
    "(110101********1234, 138****5678) and a person's restricted part (religion,\n"
    "health, disability, welfare) shows *** unless --reveal (logged in\n"
    "STORE/audit.log).\n"
    "\n"
    "Exit status 1 when no record has that id.\n"
    "\n"
    "--json: one document {kind, record_key, requested, grid, grid_name, version,\n"
    "seq, updated_at, status, record}; record uses proto field names and enum\n"
    "names, as gridfeed writes it.\n";

/* A record copied out of the read transaction. */
typedef struct s_got {
    gs_record_view_t v;         /* header; pointers below */
    char grid[GS_GRID_LEN + 1]; /* copy of the grid code */
    char key[GS_ID_MAX + 1];    /* copy of the canonical id */
    uint8_t *data;              /* malloc'd copy of the packed record */
} s_got_t;

static int
s_get_copy(void *arg, const gs_record_view_t *v)
{
    s_got_t *g = arg;
    g->v = *v;
    snprintf(g->grid, sizeof g->grid, "%s", v->grid);
    snprintf(g->key, sizeof g->key, "%s", v->record_key);
    g->data = malloc(v->len ? v->len : 1);
    if (!g->data)
        return GS_ENOMEM;
    memcpy(g->data, v->data, v->len);
    g->v.grid = g->grid;
    g->v.record_key = g->key;
    g->v.data = g->data;
    return 0;
}

int
gc_cmd_get(gc_ctx_t *ctx, int argc, char **argv)
{
    static const gc_optspec_t spec[] = { { "kind", 1 }, { NULL, 0 } };
    gc_args_t a;
    int rc = gc_args_parse(ctx, argc, argv, spec, &a);
    if (rc)
        return rc;
    if (a.help) {
        fputs(s_get_help, ctx->out);
        return GC_EXIT_OK;
    }
    if (a.n_pos != 1)
        return gc_usage(ctx, "expected one KEY (a household, rental unit or organisation id)");
    int kind;
    if ((rc = s_kind_arg(ctx, &a, &kind)))
        return rc;
    const char *key = a.pos[0];
    gs_verdict_t v;
    if (gs_ident_check(key, "KEY", &v))
        return gc_usage(ctx, "'%.80s' is not a record id: %s", key, v.message);
    gc_src_t *src = gc_src_open(ctx, &rc);
    if (!src)
        return rc;
    s_got_t g;
    memset(&g, 0, sizeof g);
    int err = gc_src_get(src, kind, key, s_get_copy, &g);
    Gridsync__V1__Grid *grid = NULL;
    if (!err && gc_src_grid_get(src, g.grid, &grid) != 0)
        grid = NULL;
    if (err == GS_ENOTFOUND) {
        free(g.data);
        gc_src_close(&src);
        return gc_fail(ctx, "no record with id '%s'", key);
    }
    if (err) {
        free(g.data);
        rc = gc_src_fail(ctx, src, "get", err);
        gc_src_close(&src);
        return rc;
    }
    gc_src_close(&src);
    gs_arena_t *arena = gs_arena_new(0);
    Gridsync__V1__Record *r = arena ? gc_record_load(g.data, g.v.len, arena, ctx->reveal) : NULL;
    const ProtobufCMessage *body = gs_render_record_body(r);
    const char *gname = grid && grid->name && *grid->name ? grid->name : NULL;
    if (!body) {
        rc = gc_fail(ctx, "record '%s' does not decode; run gridctl verify", key);
    } else if (ctx->json) {
        gs_json_t j;
        gs_json_init_file(&j, ctx->out);
        gs_json_obj(&j);
        s_json_view(&j, &g.v);
        gs_json_key(&j, "requested");
        gs_json_str(&j, key);
        gs_json_key(&j, "grid_name");
        gs_json_str(&j, gname);
        gs_json_key(&j, "record");
        gs_json_msg(&j, body, 1); /* masked when loaded */
        gs_json_end(&j);
    } else {
        char when[32], addr[512];
        FILE *o = ctx->out;
        fprintf(o, "%s %s", gc_kind_name(g.v.kind), g.key);
        if (strcmp(g.key, key))
            fprintf(o, "  (asked for %s, an alias of it)", key);
        fprintf(o, "\n  grid      %s%s%s\n", g.grid, gname ? "  " : "", gname ? gname : "");
        fprintf(o, "  version   %llu (seq %llu, %s)\n", (unsigned long long) g.v.version,
                (unsigned long long) g.v.seq,
                gc_time_local(g.v.updated_at, when, sizeof when));
        fprintf(o, "  status    %s\n", gc_status_name(g.v.status));
        fprintf(o, "  address   %s\n", gc_record_address(r, addr, sizeof addr));
        fprintf(o, "  %-9s %zu\n",
                g.v.kind == GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_RENTAL         ? "tenants"
                : g.v.kind == GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_ORGANISATION ? "employees"
                                                                                  : "members",
                gc_record_people(r));
        fputc('\n', o);
        gc_text_msg(o, body, 0);
        if (!ctx->reveal)
            fputs("\n(ID numbers, phones and restricted data masked; --reveal shows them)\n", o);
    }
    if (grid)
        gridsync__v1__grid__free_unpacked(grid, NULL);
    gs_arena_destroy(&arena);
    free(g.data);
    return gc_finish(ctx, rc);
}

/* ---- history ---------------------------------------------------------------------------------- */

static const char s_history_help[] =
    "Usage: gridctl history KEY [--kind household|rental|organisation|incident]\n"
    "\n"
    "The change events of one record, oldest first, across moves between grids:\n"
    "seq, commit time, operation (upsert, void, move_out, move_in), version, the\n"
    "device that uploaded it, and the grid (old -> new for a move).\n"
    "\n"
    "Exit status 1 when no record has that id.\n"
    "\n"
    "--json: one line per event, the same lines gridfeed and gridctl tail --json\n"
    "write: {seq, grid, kind, op, version, record_key, origin_device, committed_at,\n"
    "previous_grid_code, record}, masked unless --reveal.\n";

/* State of one history walk. */
typedef struct s_hist {
    gc_ctx_t *ctx;              /* options, output */
    gs_arena_t *arena;          /* one event at a time */
    gc_table_t *table;          /* human output */
    gs_json_t json;             /* --json output */
    uint64_t n;                 /* events shown */
    int bad;                    /* events that did not decode */
} s_hist_t;

static int
s_hist_event(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    s_hist_t *h = arg;
    gs_arena_reset(h->arena);
    Gridsync__V1__ChangeEvent *ev = gc_event_load(data, len, h->arena, h->ctx->reveal);
    if (!ev) {
        h->bad++;
        return 0;
    }
    h->n++;
    if (h->ctx->json) {
        gs_json_event(&h->json, ev, 1); /* masked when loaded */
        return 0;
    }
    char when[32];
    gc_table_row(h->table);
    gc_table_cell(h->table, "%llu", (unsigned long long) seq);
    gc_table_cell(h->table, "%s", gc_time_local(ev->committed_at, when, sizeof when));
    gc_table_cell(h->table, "%s", gc_op_name(ev->op));
    gc_table_cell(h->table, "%llu", (unsigned long long) ev->version);
    gc_table_cell(h->table, "%s", ev->origin_device ? ev->origin_device : "");
    if (ev->previous_grid_code && *ev->previous_grid_code)
        gc_table_cell(h->table, "%s -> %s", ev->previous_grid_code, grid);
    else
        gc_table_cell(h->table, "%s", grid);
    return 0;
}

int
gc_cmd_history(gc_ctx_t *ctx, int argc, char **argv)
{
    static const gc_optspec_t spec[] = { { "kind", 1 }, { NULL, 0 } };
    gc_args_t a;
    int rc = gc_args_parse(ctx, argc, argv, spec, &a);
    if (rc)
        return rc;
    if (a.help) {
        fputs(s_history_help, ctx->out);
        return GC_EXIT_OK;
    }
    if (a.n_pos != 1)
        return gc_usage(ctx, "expected one KEY (a household, rental unit or organisation id)");
    int kind;
    if ((rc = s_kind_arg(ctx, &a, &kind)))
        return rc;
    gs_verdict_t v;
    if (gs_ident_check(a.pos[0], "KEY", &v))
        return gc_usage(ctx, "'%.80s' is not a record id: %s", a.pos[0], v.message);
    gs_store_t *st = gc_store_open(ctx, 0, &rc);
    if (!st)
        return rc;
    static const char *const hd[] = { "SEQ", "TIME", "OP", "VER", "DEVICE", "GRID" };
    s_hist_t h;
    memset(&h, 0, sizeof h);
    h.ctx = ctx;
    h.arena = gs_arena_new(0);
    h.table = gc_table_new(6, hd, "rllrll");
    gs_json_init_file(&h.json, ctx->out);
    int err = h.arena && h.table ? gs_store_history(st, kind, a.pos[0], s_hist_event, &h)
                                 : GS_ENOMEM;
    gs_store_destroy(&st);
    if (err == GS_ENOTFOUND)
        rc = gc_fail(ctx, "no record with id '%s'", a.pos[0]);
    else if (err)
        rc = gc_store_fail(ctx, "history", err);
    else if (!ctx->json)
        gc_table_print(h.table, ctx->out);
    if (!err && h.bad)
        rc = gc_fail(ctx, "%d event(s) did not decode; run gridctl verify", h.bad);
    gc_table_destroy(&h.table);
    gs_arena_destroy(&h.arena);
    return gc_finish(ctx, rc);
}

/* ---- export ------------------------------------------------------------------------------------ */

static const char s_export_help[] =
    "Usage: gridctl export PREFIX --format jsonl|csv [--output FILE] [--include-void]\n"
    "                      [--bom]\n"
    "\n"
    "Every record under PREFIX, consistent as of one moment (one read transaction).\n"
    "Void records are left out unless --include-void.\n"
    "\n"
    "  jsonl   one line per record: {kind, record_key, grid, version, seq,\n"
    "          updated_at, status, record}; record as gridctl get --json shows it\n"
    "  csv     a header, then one row per person (household members, tenants, a\n"
    "          landlord who is a person, an organisation's legal representative,\n"
    "          contact and employees; an incident names no person and has no row):\n"
    "          record_kind, record_id, grid, status, role\n"
    "          (member|tenant|landlord|legal_representative|contact|employee),\n"
    "          relation, id_type, id_number, name, sex,\n"
    "          birth_date, population_type, phones (';' between), address.\n"
    "          RFC 4180 quoting; a cell starting with = + - @ gets a leading ' so a\n"
    "          spreadsheet does not run it as a formula\n"
    "\n"
    "  --output FILE  write FILE (mode 0600, replaced only when complete) instead of\n"
    "                 stdout\n"
    "  --bom          start the CSV with a UTF-8 byte order mark (for Excel)\n"
    "\n"
    "ID numbers, phones and restricted data are masked unless --reveal (logged).\n"
    "The counts go to stderr.\n";

/* State of one export walk. */
typedef struct s_exp {
    gc_ctx_t *ctx;              /* options */
    FILE *f;                    /* destination */
    int csv;                    /* 1 csv, 0 jsonl */
    int include_void;           /* --include-void */
    gs_arena_t *arena;          /* one record at a time */
    gs_json_t json;             /* jsonl writer */
    uint64_t records, rows;     /* written */
    int bad;                    /* records that did not decode */
} s_exp_t;

static void
s_csv_person(s_exp_t *e, const gs_record_view_t *v, const char *role,
             const Gridsync__V1__Person *p, const char *addr)
{
    char rel[48], idt[48], sex[24], pop[48], phones[512];
    FILE *f = e->f;
    size_t o = 0;
    phones[0] = 0;
    for (size_t i = 0; i < p->n_phones && o + 1 < sizeof phones; i++)
        o += (size_t) snprintf(phones + o, sizeof phones - o, "%s%s", i ? ";" : "",
                               p->phones[i]);
    gc_csv_cell(f, gc_kind_name(v->kind), 1);
    gc_csv_cell(f, v->record_key, 0);
    gc_csv_cell(f, v->grid, 0);
    gc_csv_cell(f, gc_status_name(v->status), 0);
    gc_csv_cell(f, role, 0);
    gc_csv_cell(f, p->relation ? gc_enum_name(&gridsync__v1__relation__descriptor,
                                              (int) p->relation, rel, sizeof rel)
                               : "",
                0);
    gc_csv_cell(f, gc_enum_name(&gridsync__v1__id_type__descriptor, (int) p->id_type, idt,
                                sizeof idt), 0);
    gc_csv_cell(f, p->id_number, 0);
    gc_csv_cell(f, p->name, 0);
    gc_csv_cell(f, gc_enum_name(&gridsync__v1__sex__descriptor, (int) p->sex, sex, sizeof sex),
                0);
    gc_csv_cell(f, p->birth_date, 0);
    gc_csv_cell(f, gc_enum_name(&gridsync__v1__population_type__descriptor,
                                (int) p->population_type, pop, sizeof pop), 0);
    gc_csv_cell(f, phones, 0);
    gc_csv_cell(f, addr, 0);
    fputs("\r\n", f);
    e->rows++;
}

static int
s_exp_record(void *arg, const gs_record_view_t *v)
{
    s_exp_t *e = arg;
    if (!e->include_void && v->status == GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_VOID)
        return 0;
    gs_arena_reset(e->arena);
    Gridsync__V1__Record *r = gc_record_load(v->data, v->len, e->arena, e->ctx->reveal);
    const ProtobufCMessage *body = gs_render_record_body(r);
    if (!body) {
        e->bad++;
        return 0;
    }
    e->records++;
    if (!e->csv) {
        gs_json_obj(&e->json);
        s_json_view(&e->json, v);
        gs_json_key(&e->json, "record");
        gs_json_msg(&e->json, body, 1); /* masked when loaded */
        gs_json_end(&e->json);
    } else {
        char addr[512];
        gc_record_address(r, addr, sizeof addr);
        if (r->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD) {
            for (size_t i = 0; i < r->household->n_members; i++)
                if (r->household->members[i])
                    s_csv_person(e, v, "member", r->household->members[i], addr);
        } else if (r->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION) {
            const Gridsync__V1__OrganisationUnit *o = r->organisation;
            if (o->legal_representative)
                s_csv_person(e, v, "legal_representative", o->legal_representative, addr);
            if (o->contact)
                s_csv_person(e, v, "contact", o->contact, addr);
            for (size_t i = 0; i < o->n_employees; i++)
                if (o->employees[i])
                    s_csv_person(e, v, "employee", o->employees[i], addr);
        } else if (r->body_case == GRIDSYNC__V1__RECORD__BODY_RENTAL) {
            const Gridsync__V1__RentalHousing *h = r->rental;
            for (size_t i = 0; i < h->n_leases; i++)
                if (h->leases[i] && h->leases[i]->tenant)
                    s_csv_person(e, v, "tenant", h->leases[i]->tenant, addr);
            if (h->landlord && h->landlord->party_case ==
                                   GRIDSYNC__V1__LANDLORD__PARTY_PERSON && h->landlord->person)
                s_csv_person(e, v, "landlord", h->landlord->person, addr);
        }
    }
    /* a full disk or a closed pipe: stop instead of formatting the rest */
    return ferror(e->f) ? 1 : 0;
}

int
gc_cmd_export(gc_ctx_t *ctx, int argc, char **argv)
{
    static const gc_optspec_t spec[] = { { "format", 1 }, { "output", 1 },
                                         { "include-void", 0 }, { "bom", 0 }, { NULL, 0 } };
    gc_args_t a;
    int rc = gc_args_parse(ctx, argc, argv, spec, &a);
    if (rc)
        return rc;
    if (a.help) {
        fputs(s_export_help, ctx->out);
        return GC_EXIT_OK;
    }
    if (a.n_pos != 1)
        return gc_usage(ctx, "expected one PREFIX");
    if ((rc = gc_prefix_arg(ctx, a.pos[0])))
        return rc;
    const char *fmt = gc_args_get(&a, "format");
    if (!fmt)
        return gc_usage(ctx, "--format jsonl or --format csv is required");
    if (strcmp(fmt, "jsonl") && strcmp(fmt, "csv"))
        return gc_usage(ctx, "--format must be jsonl or csv, not '%.20s'", fmt);
    const char *out = gc_args_get(&a, "output");
    if (out && !*out)
        return gc_usage(ctx, "--output needs a file name");
    if (gc_args_has(&a, "bom") && strcmp(fmt, "csv"))
        return gc_usage(ctx, "--bom is for --format csv");

    gs_store_t *st = gc_store_open(ctx, 0, &rc);
    if (!st)
        return rc;
    s_exp_t e;
    memset(&e, 0, sizeof e);
    e.ctx = ctx;
    e.csv = !strcmp(fmt, "csv");
    e.include_void = gc_args_has(&a, "include-void");
    e.f = ctx->out;
    char tmp[4096] = "";
    if (out) {
        /* personal data: owner-only, and the name appears only when complete */
        snprintf(tmp, sizeof tmp, "%s.tmp%ld", out, (long) getpid());
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        e.f = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!e.f) {
            if (fd >= 0)
                close(fd);
            gs_store_destroy(&st);
            return gc_fail(ctx, "cannot create %s: %s", tmp, strerror(errno));
        }
    }
    e.arena = gs_arena_new(0);
    gs_json_init_file(&e.json, e.f);
    if (e.csv) {
        if (gc_args_has(&a, "bom"))
            fputs("\xef\xbb\xbf", e.f);
        fputs("record_kind,record_id,grid,status,role,relation,id_type,id_number,name,sex,"
              "birth_date,population_type,phones,address\r\n", e.f);
    }
    int err = e.arena ? gs_store_records(st, a.pos[0], s_exp_record, &e) : GS_ENOMEM;
    gs_store_destroy(&st);
    gs_arena_destroy(&e.arena);
    int werr = fflush(e.f) != 0 || ferror(e.f);
    if (out) {
        werr |= fsync(fileno(e.f)) != 0;
        werr |= fclose(e.f) != 0;
    }
    if (err < 0) {
        rc = gc_store_fail(ctx, "export", err);
    } else if (werr || err > 0) {
        rc = gc_fail(ctx, "writing %s failed: %s", out ? out : "the output", strerror(errno));
    } else if (out && rename(tmp, out) != 0) {
        rc = gc_fail(ctx, "cannot rename %s to %s: %s", tmp, out, strerror(errno));
    }
    if (out && rc)
        unlink(tmp);
    if (!rc) {
        char b1[32], b2[32];
        fprintf(stderr, "gridctl export: %s records", gc_num(e.records, b1, sizeof b1));
        if (e.csv)
            fprintf(stderr, ", %s person rows", gc_num(e.rows, b2, sizeof b2));
        fprintf(stderr, " under %s%s%s%s\n", *a.pos[0] ? a.pos[0] : "(all)",
                out ? " written to " : "", out ? out : "",
                ctx->reveal ? " (unmasked)" : " (masked)");
    }
    if (!rc && e.bad)
        rc = gc_fail(ctx, "%d record(s) did not decode and were left out; run gridctl verify",
                     e.bad);
    return out ? rc : gc_finish(ctx, rc);
}

/*
 * gc_categories: `gridctl incidents categories ...`, the incident category
 * table a store validates incident uploads and computes deadlines with
 * (docs/data-model.md, "Incident categories and deadlines"): show it, check
 * a file, set it from a file. The file is the table's text form
 * (gs_incident_table_parse, proto/gs_incident.h): what show prints can be
 * edited and set again.
 *
 * set writes the store read-write beside a running broker, as the registry
 * commands do (LMDB queues it with the broker's commits); uploads committed
 * after it use the new table. The rule that a code in use cannot be dropped
 * is the store's (gs_store_incident_table_put); this file reports it.
 */
#include "gc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gs_incident.h"

#define S_FILE_MAX (1u << 20)   /* a table file is a few kilobytes; refuse more than 1 MiB */

static const char s_help[] =
    "Usage: gridctl incidents categories [show] [--keys FILE] [--endpoint EP]\n"
    "       gridctl incidents categories check FILE\n"
    "       gridctl incidents categories set FILE\n"
    "\n"
    "The incident category table of the store: each category's code and name, the\n"
    "hours from acceptance to the closure deadline (due_at) and a department's hours\n"
    "from each dispatch to its handling deadline (dispatch_due_at), by severity\n"
    "GENERAL, SERIOUS, MAJOR, URGENT, and whether it is active or retired. A store\n"
    "with no table set uses the built-in one.\n"
    "\n"
    "  show     print the table in its file form (a '#' line names the columns;\n"
    "           another says whether it is the built-in one): redirect it to a\n"
    "           file, edit, and set it. With --admin, the running broker's table;\n"
    "           with --keys FILE and/or --endpoint EP (as gridctl ping), the table\n"
    "           the broker gives that enrolled key over its request endpoint\n"
    "           (a city replica gives its own)\n"
    "  check    read FILE and check it as set would, writing nothing: every\n"
    "           problem of the file is reported as FILE:LINE, and a category of the\n"
    "           store's table that FILE leaves out while stored incidents or\n"
    "           device registry entries use it is refused (exit status 1)\n"
    "  set      check, then replace the store's table with FILE, all or nothing.\n"
    "           Uploads committed from then on are checked and given deadlines\n"
    "           with it; deadlines already set on stored incidents stay.\n"
    "\n"
    "The file: UTF-8 text, one category per line, 11 fields separated by tabs:\n"
    "  code  name  4 closure hours  4 handling hours  active|retired\n"
    "A code is 1 to 8 ASCII letters or digits, given once; a name 1 to 48 bytes;\n"
    "hours are whole numbers 1..8760 that do not grow with severity. Blank lines\n"
    "and lines starting with # are skipped. A retired category takes no new\n"
    "incidents; the incidents already in it go on with its deadlines. To stop\n"
    "using a category, mark it retired: one that stored incidents or registry\n"
    "entries use cannot be left out.\n"
    "\n"
    "--json: show writes {configured, categories: [{code, name, close_hours,\n"
    "handle_hours, retired}]}; check and set write {file, categories, retired,\n"
    "written}.\n";

static void
s_json_table(gc_ctx_t *ctx, const gs_incident_table_t *t, int configured)
{
    gs_json_t j;
    gs_json_init_file(&j, ctx->out);
    gs_json_obj(&j);
    gs_json_key(&j, "configured");
    gs_json_bool(&j, configured);
    gs_json_key(&j, "categories");
    gs_json_arr(&j);
    for (size_t i = 0; i < t->n; i++) {
        const gs_incident_category_t *c = &t->cats[i];
        gs_json_obj(&j);
        gs_json_key(&j, "code");
        gs_json_str(&j, c->code);
        gs_json_key(&j, "name");
        gs_json_str(&j, c->name);
        gs_json_key(&j, "close_hours");
        gs_json_arr(&j);
        for (int s = 0; s < 4; s++)
            gs_json_u64(&j, c->close_hours[s]);
        gs_json_end(&j);
        gs_json_key(&j, "handle_hours");
        gs_json_arr(&j);
        for (int s = 0; s < 4; s++)
            gs_json_u64(&j, c->handle_hours[s]);
        gs_json_end(&j);
        gs_json_key(&j, "retired");
        gs_json_bool(&j, c->retired);
        gs_json_end(&j);
    }
    gs_json_end(&j);
    gs_json_end(&j);
}

/* keys and ep (both NULL: the store, or --admin): through the broker's
 * request endpoint, as an enrolled key reads it. */
static int
s_show(gc_ctx_t *ctx, const char *keys, const char *ep)
{
    int rc;
    gc_src_t *src = keys || ep ? gc_src_open_request(ctx, keys, ep, &rc) : gc_src_open(ctx, &rc);
    if (!src)
        return rc;
    gs_incident_table_t *t = malloc(sizeof *t);
    int configured = 0;
    int err = t ? gc_src_incident_table(src, t, &configured) : GS_ENOMEM;
    if (err) {
        rc = gc_src_fail(ctx, src, "reading the incident category table", err);
        gc_src_close(&src);
        free(t);
        return rc;
    }
    gc_src_close(&src);
    if (ctx->json) {
        s_json_table(ctx, t, configured);
    } else {
        size_t n = gs_incident_table_format(t, NULL, 0);
        char *text = malloc(n + 1);
        if (!text) {
            free(t);
            return gc_fail(ctx, "out of memory");
        }
        gs_incident_table_format(t, text, n + 1);
        fprintf(ctx->out, "# %s\n%s",
                configured ? "the table set in this store"
                           : "the built-in table (none set in this store)",
                text);
        free(text);
    }
    free(t);
    return gc_finish(ctx, GC_EXIT_OK);
}

/* Read and parse FILE into *t; prints FILE:LINE: problem and returns
 * GC_EXIT_FAIL when it does not read. */
static int
s_read(gc_ctx_t *ctx, const char *path, gs_incident_table_t *t)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return gc_fail(ctx, "cannot read %s: %s", path, strerror(errno));
    char *text = malloc(S_FILE_MAX + 1);
    size_t n = text ? fread(text, 1, S_FILE_MAX + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!text)
        return gc_fail(ctx, "out of memory");
    int rc = GC_EXIT_OK;
    size_t line;
    gs_verdict_t v;
    if (bad)
        rc = gc_fail(ctx, "cannot read %s", path);
    else if (n > S_FILE_MAX)
        rc = gc_fail(ctx, "%s is larger than 1 MiB; a category table is a few kilobytes",
                     path);
    else if (gs_incident_table_parse(text, n, t, &line, &v) && line)
        rc = gc_fail(ctx, "%s:%zu: %s", path, line, v.message);
    else if (v.reason)
        rc = gc_fail(ctx, "%s: %s", path, v.message);
    free(text);
    return rc;
}

/* check (dry) and set. */
static int
s_set(gc_ctx_t *ctx, const char *path, int dry)
{
    gs_incident_table_t *t = malloc(sizeof *t);
    if (!t)
        return gc_fail(ctx, "out of memory");
    int rc = s_read(ctx, path, t);
    gs_store_t *st = rc ? NULL : gc_store_open(ctx, !dry, &rc);
    if (!st) {
        free(t);
        return rc;
    }
    int err = gs_store_incident_table_put(st, t, dry);
    gs_store_destroy(&st);
    if (err == GS_EINVAL && *gs_store_errdetail()) {
        rc = gc_fail(ctx, "%s: %s", path, gs_store_errdetail());
    } else if (err) {
        rc = gc_store_fail(ctx, "writing the incident category table", err);
    } else {
        size_t retired = 0;
        for (size_t i = 0; i < t->n; i++)
            retired += t->cats[i].retired;
        if (ctx->json) {
            gs_json_t j;
            gs_json_init_file(&j, ctx->out);
            gs_json_obj(&j);
            gs_json_key(&j, "file");
            gs_json_str(&j, path);
            gs_json_key(&j, "categories");
            gs_json_u64(&j, t->n);
            gs_json_key(&j, "retired");
            gs_json_u64(&j, retired);
            gs_json_key(&j, "written");
            gs_json_bool(&j, !dry);
            gs_json_end(&j);
        } else if (dry) {
            fprintf(ctx->out, "%s: %zu categories (%zu retired): it can be set\n", path, t->n,
                    retired);
        } else {
            fprintf(ctx->out,
                    "set %zu categories (%zu retired) from %s; uploads from now on use them, "
                    "deadlines already set stay\n", t->n, retired, path);
        }
    }
    free(t);
    return gc_finish(ctx, rc);
}

int
gc_cmd_incident_categories(gc_ctx_t *ctx, int argc, char **argv)
{
    static const gc_optspec_t spec[] = { { "keys", 1 }, { "endpoint", 1 }, { NULL, 0 } };
    gc_args_t a;
    int rc = gc_args_parse(ctx, argc, argv, spec, &a);
    if (rc)
        return rc;
    if (a.help) {
        fputs(s_help, ctx->out);
        return GC_EXIT_OK;
    }
    const char *action = a.n_pos > 1 ? a.pos[1] : "show";
    static char cmd[48];
    snprintf(cmd, sizeof cmd, "incidents categories %.12s", action);
    ctx->cmd = cmd;
    const char *keys = gc_args_get(&a, "keys"), *ep = gc_args_get(&a, "endpoint");
    if (!strcmp(action, "show")) {
        if (a.n_pos > 2)
            return gc_usage(ctx, "incidents categories show takes no arguments");
        if ((keys || ep) && ctx->admin)
            return gc_usage(ctx, "give --admin, or --keys/--endpoint, not both");
        return s_show(ctx, keys, ep);
    }
    if (keys || ep)
        return gc_usage(ctx, "--keys and --endpoint are for show only");
    if (!strcmp(action, "check") || !strcmp(action, "set")) {
        if (a.n_pos != 3)
            return gc_usage(ctx, "expected: incidents categories %s FILE", action);
        return s_set(ctx, a.pos[2], !strcmp(action, "check"));
    }
    return gc_usage(ctx, "unknown action '%.20s' (show, check, set)", action);
}

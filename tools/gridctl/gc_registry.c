/*
 * gc_registry: `gridctl devices ...` and `gridctl grids ...`, the two
 * registries the store keeps beside the grid data.
 *
 * Devices (gridsync.v1.Device) are who may connect: handhelds, district
 * systems and admins, each with a CURVE public key, grid prefixes and a
 * status. The broker reads an entry again for every request, so add,
 * assign and revoke take effect without a restart. The grid registry is
 * the list of valid grid codes; once it holds any grid, uploads to grids
 * outside it are rejected (REASON_GRID_UNKNOWN).
 *
 * Writes open the store read-write beside a running broker: LMDB lets one
 * writer in at a time across processes, so they simply queue with the
 * broker's commits. `enrol` and `rekey` make CURVE keypairs here and hand
 * the secret half only to a provisioning bundle file.
 */
#include "gc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zmq.h>

#include "gs_grid.h"
#include "gs_incident.h"
#include "gs_validate.h"

#define S_MAX_PREFIXES 32       /* prefixes per device on the command line */
#define S_MAX_ERRORS 50         /* bad CSV rows listed before "and N more" */

static const char *
s_role_name(int role)
{
    switch (role) {
    case GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE: return "device";
    case GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT: return "district";
    case GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN: return "admin";
    case GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEPARTMENT: return "department";
    case GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_CENTRE: return "centre";
    default: return "unknown";
    }
}

static const char *
s_dev_status(int status)
{
    return status == GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_REVOKED ? "revoked" : "active";
}

/* ---- devices: output ---------------------------------------------------------------- */

static void
s_json_device(gs_json_t *j, const Gridsync__V1__Device *d)
{
    gs_json_obj(j);
    gs_json_key(j, "device_id");
    gs_json_str(j, d->device_id);
    gs_json_key(j, "role");
    gs_json_str(j, s_role_name(d->role));
    gs_json_key(j, "status");
    gs_json_str(j, s_dev_status(d->status));
    gs_json_key(j, "collector_id");
    gs_json_str(j, d->collector_id && *d->collector_id ? d->collector_id : NULL);
    gs_json_key(j, "prefixes");
    gs_json_arr(j);
    for (size_t i = 0; i < d->n_prefixes; i++)
        gs_json_str(j, d->prefixes[i]);
    gs_json_end(j);
    /* a public key is public: printing it is how it gets checked */
    gs_json_key(j, "public_key");
    gs_json_str(j, d->public_key && *d->public_key ? d->public_key : NULL);
    gs_json_key(j, "created_at");
    gs_json_i64(j, d->created_at);
    gs_json_key(j, "updated_at");
    gs_json_i64(j, d->updated_at);
    gs_json_key(j, "note");
    gs_json_str(j, d->note && *d->note ? d->note : NULL);
    gs_json_key(j, "department");
    gs_json_str(j, d->department && *d->department ? d->department : NULL);
    gs_json_key(j, "categories");
    gs_json_arr(j);
    for (size_t i = 0; i < d->n_categories; i++)
        gs_json_str(j, d->categories[i]);
    gs_json_end(j);
    gs_json_end(j);
}

/* table: the store's incident category table, for the names of a
 * department's categories (NULL: codes only). */
static void
s_text_device(FILE *o, const Gridsync__V1__Device *d, const gs_incident_table_t *table)
{
    char when[32];
    fprintf(o, "device      %s\n", d->device_id);
    fprintf(o, "role        %s\n", s_role_name(d->role));
    fprintf(o, "status      %s\n", s_dev_status(d->status));
    fprintf(o, "collector   %s\n", d->collector_id && *d->collector_id ? d->collector_id : "-");
    if (d->role == GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEPARTMENT) {
        fprintf(o, "department  %s\n", d->department && *d->department ? d->department : "-");
        fprintf(o, "categories ");
        for (size_t i = 0; i < d->n_categories; i++) {
            const gs_incident_category_t *c = gs_incident_table_find(table, d->categories[i]);
            fprintf(o, " %s%s%s", d->categories[i], c ? " " : "", c ? c->name : "");
        }
        fprintf(o, "%s\n", d->n_categories ? "" : " (none: it may read nothing)");
    }
    fprintf(o, "prefixes   ");
    for (size_t i = 0; i < d->n_prefixes; i++)
        fprintf(o, " %s", *d->prefixes[i] ? d->prefixes[i] : "\"\" (everything)");
    if (d->n_prefixes)
        fputc('\n', o);
    else if (d->role == GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN)
        fprintf(o, " (none: an admin reads everywhere)\n");
    else
        fprintf(o, " (none: it may do nothing until assigned some)\n");
    fprintf(o, "public key  %s\n", d->public_key && *d->public_key ? d->public_key
                                                                   : "(none: cannot connect)");
    fprintf(o, "created     %s\n", gc_time_local(d->created_at, when, sizeof when));
    fprintf(o, "updated     %s\n", gc_time_local(d->updated_at, when, sizeof when));
    if (d->note && *d->note)
        fprintf(o, "note        %s\n", d->note);
}

typedef struct s_devlist {
    gs_json_t json;             /* --json */
    gc_table_t *table;          /* human output */
    size_t n;                   /* devices seen */
} s_devlist_t;

static int
s_on_device(void *arg, const Gridsync__V1__Device *d)
{
    s_devlist_t *l = arg;
    l->n++;
    if (!l->table) {
        s_json_device(&l->json, d);
        return 0;
    }
    char pfx[256], when[32];
    size_t o = 0;
    pfx[0] = 0;
    for (size_t i = 0; i < d->n_prefixes && o + 1 < sizeof pfx; i++)
        o += (size_t) snprintf(pfx + o, sizeof pfx - o, "%s%s", i ? "," : "",
                               *d->prefixes[i] ? d->prefixes[i] : "\"\"");
    gc_table_row(l->table);
    gc_table_cell(l->table, "%s", d->device_id);
    gc_table_cell(l->table, "%s", s_role_name(d->role));
    gc_table_cell(l->table, "%s", s_dev_status(d->status));
    gc_table_cell(l->table, "%s", d->collector_id && *d->collector_id ? d->collector_id : "-");
    gc_table_cell(l->table, "%s", d->n_prefixes ? pfx : "-");
    gc_table_cell(l->table, "%.8s%s", d->public_key && *d->public_key ? d->public_key : "-",
                  d->public_key && *d->public_key ? "..." : "");
    gc_table_cell(l->table, "%s", gc_time_local(d->updated_at, when, sizeof when));
    return 0;
}

/* ---- devices: actions ---------------------------------------------------------------- */

static const char s_devices_help[] =
    "Usage: gridctl devices list\n"
    "       gridctl devices show DEVICE_ID\n"
    "       gridctl devices add DEVICE_ID --prefix P [--prefix P2 ...]\n"
    "                           [--collector C]\n"
    "                           [--role device|district|admin|department|centre]\n"
    "                           [--department D --category C [--category C2 ...]]\n"
    "                           [--public-key Z85] [--note TEXT]\n"
    "       gridctl devices assign DEVICE_ID --prefix P [--prefix P2 ...]\n"
    "       gridctl devices revoke DEVICE_ID\n"
    "       gridctl devices enrol DEVICE_ID --bundle FILE --prefix P [...] [--collector C]\n"
    "                             [--role R] [--department D --category C ...]\n"
    "                             [--endpoint EP] [--feed-endpoint EP]\n"
    "       gridctl devices rekey DEVICE_ID --bundle FILE [--endpoint EP] [--feed-endpoint EP]\n"
    "\n"
    "The device registry: who may connect (handhelds, district systems, admins),\n"
    "with which CURVE public key, and inside which grid prefixes. The broker reads\n"
    "the registry on every request, so changes apply at once, while it runs.\n"
    "\n"
    "  add      enrol a new identity (refused if DEVICE_ID exists). --role device\n"
    "           (default) needs --collector. A device or district system needs at\n"
    "           least one --prefix (scope is denied by default); an admin needs none\n"
    "           and reads everywhere. Each --prefix is a grid-code prefix at a\n"
    "           level boundary: 2, 4, 6 (district), 9 (street), 12 (community) or\n"
    "           15 (grid) digits. --public-key is the identity's CURVE public key in\n"
    "           Z85 (40 characters); without one it cannot connect to a broker that\n"
    "           runs CURVE. A department (职能部门: handles dispatched incidents)\n"
    "           needs --department (its code, which a centre dispatches to) and at\n"
    "           least one --category (a code of the incident category table, e.g.\n"
    "           02 安全隐患); it reads only the incidents of its categories under its\n"
    "           prefixes. A centre (指挥中心) accepts, dispatches and closes\n"
    "           incidents under its prefixes.\n"
    "  assign   replace the prefixes\n"
    "  revoke   refuse the identity from its next request on (idempotent)\n"
    "  show     one identity; exit status 1 if unknown\n"
    "  list     every identity\n"
    "\n"
    "  enrol    add with a fresh CURVE keypair and write a provisioning bundle\n"
    "           (broker public key, endpoints, the device's keypair) to FILE, created\n"
    "           0600 and never overwritten; --bundle - prints it. This is the only\n"
    "           time the secret key exists outside the device: gridctl keeps no copy.\n"
    "  rekey    rotate: a fresh keypair for an existing identity, and its bundle; the\n"
    "           old key is refused from its next handshake\n"
    "\n"
    "--json: list writes one line per device; show, add, assign and revoke write the\n"
    "device as stored: {device_id, role, status, collector_id, prefixes, public_key,\n"
    "created_at, updated_at, note, department, categories}.\n";

/* --prefix values, checked. Returns GC_EXIT_OK or a usage error. */
static int
s_prefixes_arg(gc_ctx_t *ctx, const gc_args_t *a, const char **out, size_t *n)
{
    *n = gc_args_all(a, "prefix", out, S_MAX_PREFIXES);
    if (*n > S_MAX_PREFIXES)
        return gc_usage(ctx, "at most %d prefixes", S_MAX_PREFIXES);
    for (size_t i = 0; i < *n; i++) {
        gs_verdict_t v;
        if (gs_prefix_check(out[i], &v))
            return gc_usage(ctx, "bad --prefix '%.20s': %s",
                            out[i], v.message);
        for (size_t k = 0; k < i; k++)
            if (!strcmp(out[k], out[i]))
                return gc_usage(ctx, "--prefix %s given twice", out[i]);
    }
    return GC_EXIT_OK;
}

/* Look a device up; prints "no device" (exit 1) or a store error. */
static int
s_device_load(gc_ctx_t *ctx, gs_store_t *st, const char *id, Gridsync__V1__Device **d)
{
    int err = gs_store_device_get(st, id, d);
    if (err == GS_ENOTFOUND)
        return gc_fail(ctx, "no device '%s' (gridctl devices list shows them)", id);
    if (err)
        return gc_store_fail(ctx, "reading the device registry", err);
    return GC_EXIT_OK;
}

static int
s_device_put(gc_ctx_t *ctx, gs_store_t *st, const Gridsync__V1__Device *d, const char *done)
{
    int err = gs_store_device_put(st, d);
    if (err)
        return gc_store_fail(ctx, "writing the device registry", err);
    if (ctx->json) {
        gs_json_t j;
        gs_json_init_file(&j, ctx->out);
        s_json_device(&j, d);
    } else {
        fprintf(ctx->out, "%s device %s\n\n", done, d->device_id);
        gs_incident_table_t *t = malloc(sizeof *t);
        if (t && gs_store_incident_table(st, t, NULL)) {
            free(t);
            t = NULL;   /* the names are a courtesy: codes only */
        }
        s_text_device(ctx->out, d, t);
        free(t);
    }
    return GC_EXIT_OK;
}

/* --category values against the store's table (the store's put checks the
 * same in its transaction; this says it as a usage error, with the codes
 * there are). Returns GC_EXIT_OK or an error. */
static int
s_categories_arg(gc_ctx_t *ctx, gs_store_t *st, const char *const *cats, size_t n)
{
    gs_incident_table_t *t = malloc(sizeof *t);
    if (!t)
        return gc_fail(ctx, "out of memory");
    int err = gs_store_incident_table(st, t, NULL);
    if (err) {
        free(t);
        return gc_store_fail(ctx, "reading the incident category table", err);
    }
    int rc = GC_EXIT_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        if (gs_incident_table_find(t, cats[i]))
            continue;
        char codes[256];
        size_t o = 0;
        codes[0] = 0;
        for (size_t k = 0; k < t->n && o + GS_INCIDENT_CATEGORY_MAX + 8 < sizeof codes; k++)
            o += (size_t) snprintf(codes + o, sizeof codes - o, "%s%s", o ? " " : "",
                                   t->cats[k].code);
        rc = gc_usage(ctx, "--category '%s' is not in this store's category table (%s; gridctl "
                      "incidents categories shows it)", cats[i], codes);
    }
    free(t);
    return rc;
}

/* add, with the public key either from --public-key or (enrol) made here */
static int s_devices_add_key(gc_ctx_t *ctx, const gc_args_t *a, const char *made_key);

static int
s_devices_add(gc_ctx_t *ctx, const gc_args_t *a)
{
    return s_devices_add_key(ctx, a, NULL);
}

static int
s_devices_add_key(gc_ctx_t *ctx, const gc_args_t *a, const char *made_key)
{
    if (a->n_pos != 2)
        return gc_usage(ctx, "expected: devices add DEVICE_ID --prefix P ...");
    const char *id = a->pos[1];
    gs_verdict_t v;
    if (gs_ident_check(id, "DEVICE_ID", &v))
        return gc_usage(ctx, "bad DEVICE_ID '%.70s': %s", id, v.message);
    int role = GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE;
    const char *rs = gc_args_get(a, "role");
    if (rs && !strcmp(rs, "district"))
        role = GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT;
    else if (rs && !strcmp(rs, "admin"))
        role = GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN;
    else if (rs && !strcmp(rs, "department"))
        role = GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEPARTMENT;
    else if (rs && !strcmp(rs, "centre"))
        role = GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_CENTRE;
    else if (rs && strcmp(rs, "device"))
        return gc_usage(ctx, "--role must be device, district, admin, department or centre");
    int is_dept = role == GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEPARTMENT;
    const char *department = gc_args_get(a, "department");
    const char *cats[S_MAX_PREFIXES];
    size_t ncat = gc_args_all(a, "category", cats, S_MAX_PREFIXES);
    if (!is_dept && (department || ncat))
        return gc_usage(ctx, "--department and --category are for --role department only");
    if (is_dept && !department)
        return gc_usage(ctx, "a department needs --department (the code a centre dispatches to)");
    if (department && gs_ident_check(department, "--department", &v))
        return gc_usage(ctx, "bad --department '%.70s': %s", department, v.message);
    if (is_dept && !ncat)
        return gc_usage(ctx, "a department needs at least one --category");
    if (ncat > S_MAX_PREFIXES)
        return gc_usage(ctx, "at most %d categories", S_MAX_PREFIXES);
    for (size_t i = 0; i < ncat; i++)
        if (gs_incident_code_check(cats[i], &v))
            return gc_usage(ctx, "--category: %s", v.message);
    const char *collector = gc_args_get(a, "collector");
    if (role == GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE && !collector)
        return gc_usage(ctx, "a device needs --collector (the collector who carries it)");
    if (collector && gs_ident_check(collector, "--collector", &v))
        return gc_usage(ctx, "bad --collector '%.70s': %s", collector, v.message);
    const char *prefixes[S_MAX_PREFIXES];
    size_t np;
    int rc = s_prefixes_arg(ctx, a, prefixes, &np);
    if (rc)
        return rc;
    if (!np && role != GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN)
        return gc_usage(ctx, "a %s needs at least one --prefix", s_role_name(role));
    const char *key = made_key ? made_key : gc_args_get(a, "public-key");
    uint8_t raw[32];
    if (key && (strlen(key) != 40 || !zmq_z85_decode(raw, key)))
        return gc_usage(ctx, "--public-key must be a CURVE public key in Z85 (40 characters)");
    const char *note = gc_args_get(a, "note");
    if (note && gs_text_check(note, 256, "--note", &v))
        return gc_usage(ctx, "%s", v.message);

    gs_store_t *st = gc_store_open(ctx, 1, &rc);
    if (!st)
        return rc;
    if (ncat && (rc = s_categories_arg(ctx, st, cats, ncat))) {
        gs_store_destroy(&st);
        return rc;
    }
    Gridsync__V1__Device *old = NULL;
    int err = gs_store_device_get(st, id, &old);
    if (err == 0) {
        gridsync__v1__device__free_unpacked(old, NULL);
        gs_store_destroy(&st);
        return gc_fail(ctx, "device '%s' exists; change it with devices assign or revoke", id);
    }
    if (err != GS_ENOTFOUND) {
        gs_store_destroy(&st);
        return gc_store_fail(ctx, "reading the device registry", err);
    }
    if (key) {
        err = gs_store_device_by_key(st, key, &old);
        if (err == 0) {
            rc = gc_fail(ctx, "that public key already belongs to device '%s'", old->device_id);
            gridsync__v1__device__free_unpacked(old, NULL);
            gs_store_destroy(&st);
            return rc;
        }
    }
    Gridsync__V1__Device d = GRIDSYNC__V1__DEVICE__INIT;
    d.device_id = (char *) id;
    d.collector_id = (char *) (collector ? collector : "");
    d.public_key = (char *) (key ? key : "");
    d.prefixes = (char **) prefixes;
    d.n_prefixes = np;
    d.role = (Gridsync__V1__PrincipalRole) role;
    d.status = GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_ACTIVE;
    d.created_at = d.updated_at = gc_now_ms();
    d.note = (char *) (note ? note : "");
    d.department = (char *) (department ? department : "");
    d.categories = (char **) cats;
    d.n_categories = ncat;
    rc = s_device_put(ctx, st, &d, "added");
    gs_store_destroy(&st);
    if (!rc && !key && !ctx->json)
        fprintf(ctx->out, "\n(no public key: it cannot connect to a broker that runs CURVE)\n");
    return gc_finish(ctx, rc);
}

/* assign and revoke: read, change, write. */
static int
s_devices_change(gc_ctx_t *ctx, const gc_args_t *a, int revoke)
{
    if (a->n_pos != 2)
        return gc_usage(ctx, "expected: devices %s DEVICE_ID%s", revoke ? "revoke" : "assign",
                        revoke ? "" : " --prefix P ...");
    const char *id = a->pos[1];
    gs_verdict_t v;
    if (gs_ident_check(id, "DEVICE_ID", &v))
        return gc_usage(ctx, "bad DEVICE_ID '%.70s': %s", id, v.message);
    const char *prefixes[S_MAX_PREFIXES];
    size_t np = 0;
    int rc;
    if (!revoke) {
        if ((rc = s_prefixes_arg(ctx, a, prefixes, &np)))
            return rc;
        if (!np)
            return gc_usage(ctx, "assign needs at least one --prefix (it replaces them all)");
    }
    gs_store_t *st = gc_store_open(ctx, 1, &rc);
    if (!st)
        return rc;
    Gridsync__V1__Device *d = NULL;
    if ((rc = s_device_load(ctx, st, id, &d))) {
        gs_store_destroy(&st);
        return rc;
    }
    if (revoke && d->status == GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_REVOKED) {
        if (ctx->json) {
            gs_json_t j;
            gs_json_init_file(&j, ctx->out);
            s_json_device(&j, d);
        } else {
            fprintf(ctx->out, "device %s was already revoked\n", id);
        }
        gridsync__v1__device__free_unpacked(d, NULL);
        gs_store_destroy(&st);
        return gc_finish(ctx, GC_EXIT_OK);
    }
    /* the unpacked strings stay owned by d; swap the prefix list for ours
     * while writing and put it back before freeing */
    char **old_prefixes = d->prefixes;
    size_t old_n = d->n_prefixes;
    if (revoke) {
        d->status = GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_REVOKED;
    } else {
        d->prefixes = (char **) prefixes;
        d->n_prefixes = np;
    }
    d->updated_at = gc_now_ms();
    rc = s_device_put(ctx, st, d, revoke ? "revoked" : "assigned");
    d->prefixes = old_prefixes;
    d->n_prefixes = old_n;
    gridsync__v1__device__free_unpacked(d, NULL);
    gs_store_destroy(&st);
    return gc_finish(ctx, rc);
}

static int
s_devices_show(gc_ctx_t *ctx, const gc_args_t *a)
{
    if (a->n_pos != 2)
        return gc_usage(ctx, "expected: devices show DEVICE_ID");
    int rc;
    gc_src_t *src = gc_src_open(ctx, &rc);
    if (!src)
        return rc;
    Gridsync__V1__Device *d = NULL;
    int err = gc_src_device_get(src, a->pos[1], &d);
    if (err == GS_ENOTFOUND)
        rc = gc_fail(ctx, "no device '%s' (gridctl devices list shows them)", a->pos[1]);
    else if (err)
        rc = gc_src_fail(ctx, src, "reading the device registry", err);
    gs_incident_table_t *t = rc ? NULL : malloc(sizeof *t);
    if (t && gc_src_incident_table(src, t, NULL)) {
        free(t);
        t = NULL;   /* the names are a courtesy: codes only */
    }
    gc_src_close(&src);
    if (rc)
        return rc;
    if (ctx->json) {
        gs_json_t j;
        gs_json_init_file(&j, ctx->out);
        s_json_device(&j, d);
    } else {
        s_text_device(ctx->out, d, t);
    }
    free(t);
    gridsync__v1__device__free_unpacked(d, NULL);
    return gc_finish(ctx, GC_EXIT_OK);
}

static int
s_devices_list(gc_ctx_t *ctx, const gc_args_t *a)
{
    if (a->n_pos != 1)
        return gc_usage(ctx, "devices list takes no arguments");
    int rc;
    gc_src_t *src = gc_src_open(ctx, &rc);
    if (!src)
        return rc;
    static const char *const h[] = { "DEVICE", "ROLE", "STATUS", "COLLECTOR", "PREFIXES",
                                      "KEY", "UPDATED" };
    s_devlist_t l;
    memset(&l, 0, sizeof l);
    gs_json_init_file(&l.json, ctx->out);
    if (!ctx->json && !(l.table = gc_table_new(7, h, "lllllll"))) {
        gc_src_close(&src);
        return gc_fail(ctx, "out of memory");
    }
    int err = gc_src_devices(src, s_on_device, &l);
    if (err)
        rc = gc_src_fail(ctx, src, "reading the device registry", err);
    gc_src_close(&src);
    if (!err && l.table && l.n)
        gc_table_print(l.table, ctx->out);
    else if (!err && l.table)
        fprintf(ctx->out, "no devices enrolled\n");
    gc_table_destroy(&l.table);
    return gc_finish(ctx, rc);
}

/* ---- devices: keys and provisioning bundles -------------------------------------------- */

/* The broker's public key, from the zcert file it made at first start
 * (STORE/broker.cert: a line `public-key = "Z85"`). */
static int
s_broker_key(gc_ctx_t *ctx, char out[41])
{
    char path[1024];
    snprintf(path, sizeof path, "%s/broker.cert", ctx->store_dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return gc_fail(ctx, "no broker key at %s: start gridsyncd once (without "
                            "--insecure-dev) so it makes its keypair", path);
    char line[256];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "public-key = \"");
        if (p && strlen(p + 14) >= 41 && p[14 + 40] == '"') {
            memcpy(out, p + 14, 40);
            out[40] = 0;
            found = 1;
        }
    }
    fclose(f);
    return found ? GC_EXIT_OK : gc_fail(ctx, "%s holds no public key", path);
}

/* Write a provisioning bundle: everything a handheld or a district system
 * needs to connect, in the "name = value" form gs_curve_keys_load reads.
 * The file is created 0600 and never overwritten; "-" prints it, which is
 * the only way gridctl ever shows a secret key. */
static int
s_bundle_write(gc_ctx_t *ctx, const char *path, const char *device_id,
               const char *server_public, const char *public_key, const char *secret_key,
               const char *upload_ep, const char *feed_ep)
{
    FILE *f = stdout;
    if (strcmp(path, "-") != 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
            return gc_fail(ctx, "cannot create bundle %s: %s%s", path, strerror(errno),
                           errno == EEXIST ? " (bundles are never overwritten)" : "");
        f = fdopen(fd, "w");
        if (!f) {
            close(fd);
            return gc_fail(ctx, "cannot write bundle %s", path);
        }
    }
    fprintf(f,
            "# gridsync provisioning bundle for %s. Contains a SECRET key:\n"
            "# install it on that device only, then delete this file.\n"
            "device_id = %s\n"
            "upload_endpoint = %s\n"
            "feed_endpoint = %s\n"
            "server_public = %s\n"
            "public_key = %s\n"
            "secret_key = %s\n",
            device_id, device_id, upload_ep, feed_ep, server_public, public_key, secret_key);
    int bad = ferror(f);
    if (f != stdout)
        bad |= fclose(f) != 0;
    else
        fflush(f);
    return bad ? gc_fail(ctx, "writing bundle %s failed", path) : GC_EXIT_OK;
}

/* enrol: add a device with a fresh keypair and write its bundle.
 * rekey: give an existing device a fresh keypair (rotation) and write its
 * bundle; the old key stops working at its next handshake. */
static int
s_devices_keys(gc_ctx_t *ctx, const gc_args_t *a, int rekey)
{
    const char *bundle = gc_args_get(a, "bundle");
    if (a->n_pos != 2)
        return gc_usage(ctx, "expected: devices %s DEVICE_ID --bundle FILE ...",
                        rekey ? "rekey" : "enrol");
    if (!bundle)
        return gc_usage(ctx, "--bundle FILE is required (where the device's secret key goes; "
                             "'-' prints it)");
    const char *upload_ep = gc_args_get(a, "endpoint");
    const char *feed_ep = gc_args_get(a, "feed-endpoint");
    char server[41];
    int rc = s_broker_key(ctx, server);
    if (rc)
        return rc;
    char pub[41], sec[41];
    if (zmq_curve_keypair(pub, sec))
        return gc_fail(ctx, "cannot make a CURVE keypair: %s", zmq_strerror(errno));
    /* with --bundle -, standard output carries the bundle and nothing else,
     * so that it can be piped straight to the device: reports go to stderr */
    FILE *report = ctx->out;
    if (!strcmp(bundle, "-"))
        ctx->out = stderr;
    if (!rekey) {
        rc = s_devices_add_key(ctx, a, pub);
    } else {
        gs_store_t *st = gc_store_open(ctx, 1, &rc);
        if (!st) {
            ctx->out = report;
            return rc;
        }
        Gridsync__V1__Device *d = NULL;
        rc = s_device_load(ctx, st, a->pos[1], &d);
        if (!rc) {
            char *old_key = d->public_key; /* owned by d: put back before freeing */
            d->public_key = pub;
            d->updated_at = gc_now_ms();
            rc = s_device_put(ctx, st, d, "rekeyed");
            d->public_key = old_key;
            gridsync__v1__device__free_unpacked(d, NULL);
        }
        gs_store_destroy(&st);
    }
    ctx->out = report;
    if (!rc)
        rc = s_bundle_write(ctx, bundle, a->pos[1], server, pub, sec,
                            upload_ep ? upload_ep : "tcp://127.0.0.1:7510",
                            feed_ep ? feed_ep : "tcp://127.0.0.1:7511");
    explicit_bzero(sec, sizeof sec);
    return rc;
}

int
gc_cmd_devices(gc_ctx_t *ctx, int argc, char **argv)
{
    static const gc_optspec_t spec[] = { { "prefix", 1 }, { "collector", 1 }, { "role", 1 },
                                         { "department", 1 }, { "category", 1 },
                                         { "public-key", 1 }, { "note", 1 }, { "bundle", 1 },
                                         { "endpoint", 1 }, { "feed-endpoint", 1 },
                                         { NULL, 0 } };
    gc_args_t a;
    int rc = gc_args_parse(ctx, argc, argv, spec, &a);
    if (rc)
        return rc;
    if (a.help || !a.n_pos) {
        fputs(s_devices_help, a.help ? ctx->out : stderr);
        return a.help ? GC_EXIT_OK : GC_EXIT_USAGE;
    }
    const char *action = a.pos[0];
    static char cmd[48];
    snprintf(cmd, sizeof cmd, "devices %.20s", action);
    ctx->cmd = cmd; /* messages and the audit log name the action */
    /* options that only some actions take */
    int enrol = !strcmp(action, "enrol"), rekey = !strcmp(action, "rekey");
    if (!enrol && !rekey && (gc_args_has(&a, "bundle") || gc_args_has(&a, "endpoint") ||
                             gc_args_has(&a, "feed-endpoint")))
        return gc_usage(ctx, "--bundle, --endpoint and --feed-endpoint are for devices "
                             "enrol and rekey");
    if (enrol && gc_args_has(&a, "public-key"))
        return gc_usage(ctx, "devices enrol makes the keypair; to register a key made "
                             "elsewhere use devices add --public-key");
    if (rekey)
        return s_devices_keys(ctx, &a, 1);
    if (enrol) {
        /* enrol takes add's options, with a key made here */
        return s_devices_keys(ctx, &a, 0);
    }
    int writes = !strcmp(action, "add") || !strcmp(action, "assign");
    if (!writes && (gc_args_has(&a, "prefix") || gc_args_has(&a, "collector")))
        return gc_usage(ctx, "devices %s takes no --prefix or --collector", action);
    if (strcmp(action, "add") &&
        (gc_args_has(&a, "role") || gc_args_has(&a, "public-key") || gc_args_has(&a, "note")))
        return gc_usage(ctx, "--role, --public-key and --note are for devices add");
    if (!strcmp(action, "assign") && gc_args_has(&a, "collector"))
        return gc_usage(ctx, "devices assign changes prefixes only");
    if (!strcmp(action, "list"))
        return s_devices_list(ctx, &a);
    if (!strcmp(action, "show"))
        return s_devices_show(ctx, &a);
    if (!strcmp(action, "add"))
        return s_devices_add(ctx, &a);
    if (!strcmp(action, "assign"))
        return s_devices_change(ctx, &a, 0);
    if (!strcmp(action, "revoke"))
        return s_devices_change(ctx, &a, 1);
    return gc_usage(ctx, "unknown action '%.20s' (list, show, add, enrol, rekey, assign, "
                         "revoke)", action);
}

/* ---- grids ----------------------------------------------------------------------------- */

static const char s_grids_help[] =
    "Usage: gridctl grids list [PREFIX]\n"
    "       gridctl grids import FILE.csv [--dry-run]\n"
    "\n"
    "The grid registry: valid grid codes with names and dates. While it is empty\n"
    "the broker accepts any well-formed grid code; once it holds a grid, uploads\n"
    "to a grid missing from it (or outside its dates) are rejected with\n"
    "GRID_UNKNOWN.\n"
    "\n"
    "  list     the registry (under PREFIX), with whether each grid is valid today\n"
    "  import   add or replace grids from a CSV file, all or nothing: columns\n"
    "           code,name[,valid_from,valid_to] (dates YYYY-MM-DD, empty = open); a\n"
    "           header row (code,...) is optional; blank lines and lines starting\n"
    "           with # are skipped. Every bad row is reported as FILE:LINE and then\n"
    "           nothing is written (exit status 1). --dry-run checks only.\n"
    "\n"
    "--json: list writes one line per grid {grid_code, name, valid_from, valid_to,\n"
    "valid_today}; import writes {file, grids, added, replaced, dry_run}.\n";

typedef struct s_gridlist {
    gs_json_t json;             /* --json */
    gc_table_t *table;          /* human output */
    size_t n;                   /* grids seen */
    int today;                  /* YYYYMMDD */
} s_gridlist_t;

static int
s_on_grid(void *arg, const Gridsync__V1__Grid *g)
{
    s_gridlist_t *l = arg;
    /* a damaged date does not hide the entry (it counts as open) */
    int valid = gs_grid_valid_on(g, l->today) <= GS_GRID_VALID;
    l->n++;
    if (!l->table) {
        gs_json_obj(&l->json);
        gs_json_key(&l->json, "grid_code");
        gs_json_str(&l->json, g->grid_code);
        gs_json_key(&l->json, "name");
        gs_json_str(&l->json, g->name);
        gs_json_key(&l->json, "valid_from");
        gs_json_str(&l->json, g->valid_from && *g->valid_from ? g->valid_from : NULL);
        gs_json_key(&l->json, "valid_to");
        gs_json_str(&l->json, g->valid_to && *g->valid_to ? g->valid_to : NULL);
        gs_json_key(&l->json, "valid_today");
        gs_json_bool(&l->json, valid);
        gs_json_end(&l->json);
        return 0;
    }
    gc_table_row(l->table);
    gc_table_cell(l->table, "%s", g->grid_code);
    gc_table_cell(l->table, "%s", g->name ? g->name : "");
    gc_table_cell(l->table, "%s", g->valid_from && *g->valid_from ? g->valid_from : "-");
    gc_table_cell(l->table, "%s", g->valid_to && *g->valid_to ? g->valid_to : "-");
    gc_table_cell(l->table, "%s", valid ? "valid" : "not valid today");
    return 0;
}

static int
s_grids_list(gc_ctx_t *ctx, const gc_args_t *a)
{
    if (a->n_pos > 2)
        return gc_usage(ctx, "expected: grids list [PREFIX]");
    const char *prefix = a->n_pos == 2 ? a->pos[1] : "";
    int rc = gc_prefix_arg(ctx, prefix);
    if (rc)
        return rc;
    gc_src_t *src = gc_src_open(ctx, &rc);
    if (!src)
        return rc;
    static const char *const h[] = { "GRID", "NAME", "VALID FROM", "VALID TO", "TODAY" };
    s_gridlist_t l;
    memset(&l, 0, sizeof l);
    l.today = gc_today();
    gs_json_init_file(&l.json, ctx->out);
    if (!ctx->json && !(l.table = gc_table_new(5, h, "lllll"))) {
        gc_src_close(&src);
        return gc_fail(ctx, "out of memory");
    }
    int err = gc_src_grids(src, prefix, s_on_grid, &l);
    if (err)
        rc = gc_src_fail(ctx, src, "reading the grid registry", err);
    gc_src_close(&src);
    if (!err && l.table && l.n) {
        gc_table_print(l.table, ctx->out);
        char b[32];
        fprintf(ctx->out, "\n%s grid(s)\n", gc_num(l.n, b, sizeof b));
    } else if (!err && l.table) {
        fprintf(ctx->out, "registry empty%s%s (gridctl grids import FILE.csv fills it)\n",
                *prefix ? " under " : "", prefix);
    }
    gc_table_destroy(&l.table);
    return gc_finish(ctx, rc);
}

/* Split one CSV line in place into at most max fields (RFC 4180 quotes;
 * a field cannot span lines). Returns the count, or -1 with *why set. */
static int
s_csv_split(char *line, char **fields, int max, const char **why)
{
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == max) {
            *why = "too many columns (code,name[,valid_from,valid_to])";
            return -1;
        }
        char *out = p;
        fields[n++] = out;
        if (*p == '"') {
            p++;
            for (;;) {
                if (!*p) {
                    *why = "unterminated quote";
                    return -1;
                }
                if (*p == '"' && p[1] == '"') {
                    *out++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *out++ = *p++;
                }
            }
            if (*p && *p != ',') {
                *why = "text after a closing quote";
                return -1;
            }
        } else {
            while (*p && *p != ',')
                *out++ = *p++;
        }
        int more = *p == ',';
        if (*p)
            p++;
        *out = 0;
        if (!more)
            return n;
    }
}

/* Trim ASCII spaces at both ends, in place. */
static char *
s_trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = 0;
    return s;
}

/* A grid read from the file. */
typedef struct s_row {
    char code[GS_GRID_LEN + 1]; /* grid code */
    char *name, *from, *to;     /* malloc'd */
    long line;                  /* where it was */
} s_row_t;

static int
s_row_cmp(const void *a, const void *b)
{
    const s_row_t *x = a, *y = b;
    int c = strcmp(x->code, y->code);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

static void
s_rows_free(s_row_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].name);
        free(rows[i].from);
        free(rows[i].to);
    }
    free(rows);
}

/* Cells holding data whose grid is not among the imported rows. */
typedef struct s_orphans {
    const s_row_t *rows;        /* sorted by code */
    size_t n;                   /* rows */
    uint64_t orphans;           /* cells with records, not in rows */
} s_orphans_t;

static int
s_on_cell_orphan(void *arg, const char *grid, const gs_cell_meta_t *m)
{
    s_orphans_t *o = arg;
    if (!m->households && !m->rentals)
        return 0;
    s_row_t key;
    memset(&key, 0, sizeof key);
    snprintf(key.code, sizeof key.code, "%s", grid);
    size_t lo = 0, hi = o->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(o->rows[mid].code, key.code);
        if (c == 0)
            return 0;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    o->orphans++;
    return 0;
}

static int
s_grid_count(void *arg, const Gridsync__V1__Grid *g)
{
    (void) g;
    ++*(uint64_t *) arg;
    return 1; /* one is enough to know it is not empty */
}

static int
s_grids_import(gc_ctx_t *ctx, const gc_args_t *a)
{
    if (a->n_pos != 2)
        return gc_usage(ctx, "expected: grids import FILE.csv");
    const char *path = a->pos[1];
    int dry = gc_args_has(a, "dry-run");
    FILE *f = fopen(path, "r");
    if (!f)
        return gc_fail(ctx, "cannot read %s: %s", path, strerror(errno));
    s_row_t *rows = NULL;
    size_t n = 0, cap = 0;
    uint64_t errors = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    long lineno = 0;
    int seen_data = 0, nomem = 0;
    int today = gc_today();
#define S_BAD(...)                                                                      \
    do {                                                                                \
        if (errors++ < S_MAX_ERRORS) {                                                  \
            fprintf(stderr, "%s:%ld: ", path, lineno);                                 \
            fprintf(stderr, __VA_ARGS__);                                               \
            fputc('\n', stderr);                                                        \
        }                                                                               \
    } while (0)
    while ((len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        char *p = line;
        if (lineno == 1 && !strncmp(p, "\xef\xbb\xbf", 3))
            p += 3; /* a spreadsheet's byte order mark */
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (!*s_trim(p) || *s_trim(p) == '#')
            continue;
        char *fl[4];
        const char *why = NULL;
        int nf = s_csv_split(p, fl, 4, &why);
        if (nf < 0) {
            S_BAD("%s", why);
            continue;
        }
        for (int i = 0; i < nf; i++)
            fl[i] = s_trim(fl[i]);
        if (!seen_data) {
            seen_data = 1;
            if (!strcasecmp(fl[0], "code") || !strcasecmp(fl[0], "grid_code"))
                continue; /* the header */
        }
        gs_verdict_t v;
        int from = 0, to = 0;
        if (nf < 2) {
            S_BAD("expected code,name[,valid_from,valid_to]");
            continue;
        }
        if (gs_gridcode_check(fl[0], &v)) {
            S_BAD("grid code '%.20s': %s", fl[0], v.message);
            continue;
        }
        if (!*fl[1]) {
            S_BAD("grid %s has no name", fl[0]);
            continue;
        }
        if (gs_text_check(fl[1], 128, "name", &v)) {
            S_BAD("grid %s: %s", fl[0], v.message);
            continue;
        }
        if (nf > 2 && *fl[2] && gs_date_parse(fl[2], &from, &v)) {
            S_BAD("grid %s: valid_from '%.20s': %s", fl[0], fl[2], v.message);
            continue;
        }
        if (nf > 3 && *fl[3] && gs_date_parse(fl[3], &to, &v)) {
            S_BAD("grid %s: valid_to '%.20s': %s", fl[0], fl[3], v.message);
            continue;
        }
        if (from && to && to < from) {
            S_BAD("grid %s: valid_to %s is before valid_from %s", fl[0], fl[3], fl[2]);
            continue;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 256;
            s_row_t *nr = realloc(rows, nc * sizeof *nr);
            if (!nr) {
                nomem = 1;
                break;
            }
            rows = nr;
            cap = nc;
        }
        s_row_t *r = &rows[n++];
        memset(r, 0, sizeof *r);
        memcpy(r->code, fl[0], GS_GRID_LEN + 1);
        r->name = strdup(fl[1]);
        r->from = strdup(nf > 2 ? fl[2] : "");
        r->to = strdup(nf > 3 ? fl[3] : "");
        r->line = lineno;
        if (!r->name || !r->from || !r->to)
            nomem = 1;
    }
    int read_err = ferror(f);
    free(line);
    fclose(f);
    if (nomem || read_err) {
        s_rows_free(rows, n);
        return nomem ? gc_fail(ctx, "out of memory") : gc_fail(ctx, "reading %s failed", path);
    }
    /* the same code twice: which name is meant? */
    if (n)
        qsort(rows, n, sizeof *rows, s_row_cmp);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(rows[i].code, rows[i - 1].code)) {
            lineno = rows[i].line;
            S_BAD("grid %s is already on line %ld", rows[i].code, rows[i - 1].line);
        }
#undef S_BAD
    if (errors) {
        if (errors > S_MAX_ERRORS)
            fprintf(stderr, "%s: ... and %llu more bad rows\n", path,
                    (unsigned long long) (errors - S_MAX_ERRORS));
        s_rows_free(rows, n);
        return gc_fail(ctx, "%llu bad row(s) in %s; nothing was imported",
                       (unsigned long long) errors, path);
    }
    if (!n) {
        s_rows_free(rows, n);
        return gc_fail(ctx, "%s holds no grids; nothing was imported", path);
    }

    int rc;
    gs_store_t *st = gc_store_open(ctx, !dry, &rc);
    if (!st) {
        s_rows_free(rows, n);
        return rc;
    }
    uint64_t before = 0, added = 0, replaced = 0, not_today = 0;
    int err = gs_store_grids(st, "", s_grid_count, &before);
    if (err == 1)
        err = 0;
    s_orphans_t orph = { rows, n, 0 };
    Gridsync__V1__Grid *grids = calloc(n, sizeof *grids);
    Gridsync__V1__Grid **gp = calloc(n, sizeof *gp);
    if (!grids || !gp)
        err = GS_ENOMEM;
    if (!err && !before)
        err = gs_store_cells(st, "", s_on_cell_orphan, &orph);
    for (size_t i = 0; !err && i < n; i++) {
        Gridsync__V1__Grid *old = NULL;
        int ge = gs_store_grid_get(st, rows[i].code, &old);
        if (ge == 0) {
            replaced++;
            gridsync__v1__grid__free_unpacked(old, NULL);
        } else if (ge == GS_ENOTFOUND) {
            added++;
        } else {
            err = ge;
            break;
        }
        Gridsync__V1__Grid *g = &grids[i];
        gridsync__v1__grid__init(g);
        g->grid_code = rows[i].code;
        g->name = rows[i].name;
        g->valid_from = rows[i].from;
        g->valid_to = rows[i].to;
        gp[i] = g;
        not_today += (uint64_t) (gs_grid_valid_on(g, today) > GS_GRID_VALID);
    }
    /* one transaction: every grid of the file or, on any failure, none */
    if (!err && !dry)
        err = gs_store_grids_put(st, gp, n);
    gs_store_destroy(&st);
    free(grids);
    free(gp);
    s_rows_free(rows, n);
    if (err)
        return gc_store_fail(ctx, "grid registry (nothing was imported)", err);
    if (ctx->json) {
        gs_json_t j;
        gs_json_init_file(&j, ctx->out);
        gs_json_obj(&j);
        gs_json_key(&j, "file");
        gs_json_str(&j, path);
        gs_json_key(&j, "grids");
        gs_json_u64(&j, n);
        gs_json_key(&j, "added");
        gs_json_u64(&j, added);
        gs_json_key(&j, "replaced");
        gs_json_u64(&j, replaced);
        gs_json_key(&j, "dry_run");
        gs_json_bool(&j, dry);
        gs_json_end(&j);
    } else {
        char b1[32], b2[32], b3[32];
        fprintf(ctx->out, "%s %s grid(s) from %s: %s new, %s replaced\n",
                dry ? "checked (dry run, nothing written)" : "imported", gc_num(n, b1, sizeof b1),
                path, gc_num(added, b2, sizeof b2), gc_num(replaced, b3, sizeof b3));
    }
    if (not_today)
        fprintf(stderr, "gridctl grids import: %llu of them are not valid today (dates)\n",
                (unsigned long long) not_today);
    /* "now rejected" only once the registry was written: a dry run says
     * what the import would do */
    if (orph.orphans && dry)
        fprintf(stderr,
                "gridctl grids import: the registry is empty; %llu grid(s) holding records "
                "are not in %s, and importing it would reject uploads to them "
                "(GRID_UNKNOWN)\n",
                (unsigned long long) orph.orphans, path);
    else if (orph.orphans)
        fprintf(stderr,
                "gridctl grids import: the registry was empty; %llu grid(s) holding records "
                "are not in %s, and uploads to them are now rejected (GRID_UNKNOWN)\n",
                (unsigned long long) orph.orphans, path);
    return gc_finish(ctx, GC_EXIT_OK);
}

int
gc_cmd_grids(gc_ctx_t *ctx, int argc, char **argv)
{
    static const gc_optspec_t spec[] = { { "dry-run", 0 }, { NULL, 0 } };
    gc_args_t a;
    int rc = gc_args_parse(ctx, argc, argv, spec, &a);
    if (rc)
        return rc;
    if (a.help || !a.n_pos) {
        fputs(s_grids_help, a.help ? ctx->out : stderr);
        return a.help ? GC_EXIT_OK : GC_EXIT_USAGE;
    }
    static char cmd[48];
    snprintf(cmd, sizeof cmd, "grids %.20s", a.pos[0]);
    ctx->cmd = cmd; /* messages name the action */
    if (!strcmp(a.pos[0], "list")) {
        if (gc_args_has(&a, "dry-run"))
            return gc_usage(ctx, "--dry-run is for grids import");
        return s_grids_list(ctx, &a);
    }
    if (!strcmp(a.pos[0], "import"))
        return s_grids_import(ctx, &a);
    return gc_usage(ctx, "unknown action '%.20s' (list, import)", a.pos[0]);
}

/*
 * gc_source: where gridctl's reads come from (gc.h, "Sources"). Either the
 * store, opened read-only here, or a running broker's admin endpoint
 * through the client library's gs_admin: then each read is one
 * AdminRequest (docs/protocol.md, "Admin endpoint") and its reply is handed
 * to the same callbacks the store would call, so the commands above
 * render both paths with one piece of code.
 */
#include "gc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gs_admin.h"

struct gc_src {
    gs_store_t *store;          /* the store read directly, or NULL */
    gs_admin_t *admin;          /* or the broker's admin endpoint */
    gs_client_t *client;        /* or its request endpoint (the incident table only) */
    gs_client_error_t err;      /* the last admin call's error */
};

/* Broker errors as the store's: a record, device or grid that is not
 * there is GS_ENOTFOUND on both paths; anything else keeps its
 * GS_CLIENT_E* code and the message in self->err. */
static int
s_admin_rc(const gc_src_t *self, int rc)
{
    if (rc == GS_CLIENT_ESERVER && self->err.reason == GRIDSYNC__V1__REASON__REASON_NOT_FOUND)
        return GS_ENOTFOUND;
    return rc;
}

gc_src_t *
gc_src_open(gc_ctx_t *ctx, int *exit_code)
{
    *exit_code = GC_EXIT_FAIL;
    gc_src_t *self = calloc(1, sizeof *self);
    if (!self) {
        gc_fail(ctx, "out of memory");
        return NULL;
    }
    if (!ctx->admin) {
        self->store = gc_store_open(ctx, 0, exit_code);
        if (!self->store)
            gc_src_close(&self);
        return self;
    }
    gs_admin_opts_t o;
    gs_admin_opts_init(&o);
    o.timeout_ms = GC_ADMIN_TIMEOUT_MS;
    int rc;
    self->admin = gs_admin_new(ctx->admin, &o, &rc, &self->err);
    if (!self->admin) {
        if (rc == GS_CLIENT_EINVAL)
            *exit_code = gc_usage(ctx, "--admin: %s", self->err.message);
        else
            gc_fail(ctx, "%s", self->err.message);
        gc_src_close(&self);
        return NULL;
    }
    /* the reply is unmasked; what gridctl prints from it is masked unless
     * --reveal, which is logged in the store directory given (or the
     * default) as for a local read, and refused when it cannot be */
    if (ctx->reveal && gc_audit_reveal(ctx)) {
        gc_src_close(&self);
        return NULL;
    }
    *exit_code = GC_EXIT_OK;
    return self;
}

gc_src_t *
gc_src_open_at(gc_ctx_t *ctx, const char *where, int *exit_code)
{
    /* a copy of the context naming this source alone: the global --store
     * and --admin do not apply to it */
    gc_ctx_t c = *ctx;
    if (!strncmp(where, "ipc://", 6)) {
        c.admin = where;
    } else {
        c.admin = NULL;
        c.store_dir = where;
    }
    gc_src_t *self = gc_src_open(&c, exit_code);
    ctx->audited = c.audited;
    return self;
}

gs_client_t *
gc_client_open(gc_ctx_t *ctx, const char *keys, const char *ep, gs_client_opts_t *o,
               char *ep_out, size_t ep_size, int *exit_code)
{
    *exit_code = GC_EXIT_USAGE;
    gs_bundle_info_t bundle;
    memset(&bundle, 0, sizeof bundle);
    if (keys) {
        /* a bundle that cannot be read is the operator's to fix, as a bad argument */
        if (gs_curve_keys_load(&o->curve, keys) || gs_bundle_info_load(&bundle, keys)) {
            gc_usage(ctx, "cannot read CURVE keys from the enrolment bundle %s", keys);
            return NULL;
        }
        if (!ep && bundle.upload_endpoint[0])
            ep = bundle.upload_endpoint;
        if (!ep) {
            gc_usage(ctx, "%s names no upload endpoint: give --endpoint EP", keys);
            return NULL;
        }
    } else if (!ep) {
        gc_usage(ctx, "give --keys FILE (an enrolment bundle) or --endpoint EP");
        return NULL;
    }
    gs_client_t *cli = gs_client_new(ep, o);
    if (!cli) {
        gc_usage(ctx, "cannot connect to '%s': not a usable ZeroMQ endpoint", ep);
        return NULL;
    }
    snprintf(ep_out, ep_size, "%s", ep);
    *exit_code = GC_EXIT_OK;
    return cli;
}

gc_src_t *
gc_src_open_request(gc_ctx_t *ctx, const char *keys, const char *ep, int *exit_code)
{
    gc_src_t *self = calloc(1, sizeof *self);
    if (!self) {
        *exit_code = gc_fail(ctx, "out of memory");
        return NULL;
    }
    gs_client_opts_t o;
    gs_client_opts_init(&o);
    o.timeout_ms = GC_ADMIN_TIMEOUT_MS;
    o.retries = 0;
    char used[256];
    self->client = gc_client_open(ctx, keys, ep, &o, used, sizeof used, exit_code);
    if (!self->client)
        gc_src_close(&self);
    return self;
}

void
gc_src_close(gc_src_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gc_src_t *self = *self_p;
    gs_store_destroy(&self->store);
    gs_admin_destroy(&self->admin);
    gs_client_destroy(&self->client);
    free(self);
    *self_p = NULL;
}

int
gc_src_fail(gc_ctx_t *ctx, const gc_src_t *self, const char *what, int err)
{
    if (self->store || err == GS_ENOTFOUND || err == GS_ENOMEM)
        return gc_store_fail(ctx, what, err);
    char buf[512];
    gs_client_errtext(err, &self->err, buf, sizeof buf);
    /* the client's own messages name the endpoint and the cause whole;
     * a broker's refusal is about the request, which what names */
    if (err == GS_CLIENT_ESERVER)
        return gc_fail(ctx, "%s: %s", what, buf);
    return gc_fail(ctx, "%s", buf);
}

int
gc_src_cells(gc_src_t *self, const char *prefix, gs_cell_fn *fn, void *arg, uint64_t *head)
{
    if (self->store) {
        int err = gs_store_cells(self->store, prefix, fn, arg);
        if (!err && head)
            err = gs_store_head(self->store, head);
        return err;
    }
    Gridsync__V1__StatsReply *r = NULL;
    int rc = gs_admin_stats(self->admin, prefix, &r, &self->err);
    if (rc)
        return s_admin_rc(self, rc);
    for (size_t i = 0; i < r->n_cells; i++) {
        const Gridsync__V1__CellStats *c = r->cells[i];
        gs_cell_meta_t m;
        memset(&m, 0, sizeof m);
        m.households = c->households;
        m.persons = c->persons;
        m.rentals = c->rentals;
        m.tenants = c->tenants;
        m.voided = c->voided;
        m.last_seq = c->last_seq;
        m.last_update = c->last_update;
        m.organisations = c->organisations;
        m.employees = c->employees;
        m.incidents = c->incidents;
        if (fn(arg, c->grid_code, &m))
            break;
    }
    if (head)
        *head = r->head_seq;
    gridsync__v1__stats_reply__free_unpacked(r, NULL);
    return 0;
}

int
gc_src_grids(gc_src_t *self, const char *prefix, gs_grid_fn *fn, void *arg)
{
    if (self->store)
        return gs_store_grids(self->store, prefix, fn, arg);
    Gridsync__V1__GridListReply *r = NULL;
    int rc = gs_admin_grids(self->admin, prefix, &r, &self->err);
    if (rc)
        return s_admin_rc(self, rc);
    for (size_t i = 0; i < r->n_grids; i++)
        if (fn(arg, r->grids[i]))
            break;
    gridsync__v1__grid_list_reply__free_unpacked(r, NULL);
    return 0;
}

int
gc_src_grid_get(gc_src_t *self, const char *grid_code, Gridsync__V1__Grid **out)
{
    *out = NULL;
    if (self->store)
        return gs_store_grid_get(self->store, grid_code, out);
    /* the registry under the whole code holds that grid alone, if any */
    Gridsync__V1__GridListReply *r = NULL;
    int rc = gs_admin_grids(self->admin, grid_code, &r, &self->err);
    if (rc)
        return s_admin_rc(self, rc);
    for (size_t i = 0; i < r->n_grids && !*out; i++)
        if (r->grids[i]->grid_code && !strcmp(r->grids[i]->grid_code, grid_code)) {
            *out = r->grids[i];
            r->grids[i] = r->grids[--r->n_grids]; /* the caller owns it now */
        }
    gridsync__v1__grid_list_reply__free_unpacked(r, NULL);
    return *out ? 0 : GS_ENOTFOUND;
}

int
gc_src_devices(gc_src_t *self, gs_device_fn *fn, void *arg)
{
    if (self->store)
        return gs_store_devices(self->store, fn, arg);
    Gridsync__V1__DeviceListReply *r = NULL;
    int rc = gs_admin_devices(self->admin, &r, &self->err);
    if (rc)
        return s_admin_rc(self, rc);
    for (size_t i = 0; i < r->n_devices; i++)
        if (fn(arg, r->devices[i]))
            break;
    gridsync__v1__device_list_reply__free_unpacked(r, NULL);
    return 0;
}

int
gc_src_device_get(gc_src_t *self, const char *device_id, Gridsync__V1__Device **out)
{
    *out = NULL;
    if (self->store)
        return gs_store_device_get(self->store, device_id, out);
    /* the admin endpoint lists the registry whole; one entry is picked here */
    Gridsync__V1__DeviceListReply *r = NULL;
    int rc = gs_admin_devices(self->admin, &r, &self->err);
    if (rc)
        return s_admin_rc(self, rc);
    for (size_t i = 0; i < r->n_devices && !*out; i++)
        if (r->devices[i]->device_id && !strcmp(r->devices[i]->device_id, device_id)) {
            *out = r->devices[i];
            r->devices[i] = r->devices[--r->n_devices]; /* the caller owns it now */
        }
    gridsync__v1__device_list_reply__free_unpacked(r, NULL);
    return *out ? 0 : GS_ENOTFOUND;
}

int
gc_src_incident_table(gc_src_t *self, gs_incident_table_t *out, int *configured)
{
    if (self->store)
        return gs_store_incident_table(self->store, out, configured);
    Gridsync__V1__IncidentCategoriesReply *r = NULL;
    int rc = self->client ? gs_client_incident_categories(self->client, &r, &self->err)
                          : gs_admin_incident_categories(self->admin, &r, &self->err);
    if (rc)
        return s_admin_rc(self, rc);
    /* the broker's table read back through its text form's rules, so a
     * reply that would not make a table is refused, not half taken */
    memset(out, 0, sizeof *out);
    rc = r->n_categories > GS_INCIDENT_CATEGORIES_MAX ? GS_ECORRUPT : 0;
    for (size_t i = 0; rc == 0 && i < r->n_categories; i++) {
        const Gridsync__V1__IncidentCategory *c = r->categories[i];
        gs_incident_category_t *o = &out->cats[out->n++];
        if (!c->code || !c->name || strlen(c->code) > GS_INCIDENT_CATEGORY_MAX ||
            strlen(c->name) > GS_INCIDENT_NAME_MAX || c->n_close_hours != 4 ||
            c->n_handle_hours != 4) {
            rc = GS_ECORRUPT;
            break;
        }
        memcpy(o->code, c->code, strlen(c->code) + 1);
        memcpy(o->name, c->name, strlen(c->name) + 1);
        memcpy(o->close_hours, c->close_hours, sizeof o->close_hours);
        memcpy(o->handle_hours, c->handle_hours, sizeof o->handle_hours);
        o->retired = c->retired;
    }
    if (configured)
        *configured = r->configured;
    gridsync__v1__incident_categories_reply__free_unpacked(r, NULL);
    if (rc == 0) {
        size_t n = gs_incident_table_format(out, NULL, 0), line;
        char *text = malloc(n + 1);
        gs_verdict_t v;
        if (!text)
            return GS_ENOMEM;
        gs_incident_table_format(out, text, n + 1);
        if (gs_incident_table_parse(text, n, out, &line, &v))
            rc = GS_ECORRUPT;
        free(text);
    }
    if (rc == GS_ECORRUPT) {
        /* the broker answered, but not with a table: the client's protocol error */
        self->err.reason = 0;
        snprintf(self->err.message, sizeof self->err.message,
                 "the broker's incident category table does not read as a table");
        rc = GS_CLIENT_EPROTO;
    }
    return rc;
}

/* A stored record's status is its meta.status (RECORD_STATUS_ACTIVE when
 * absent), as the store derives it on the write. */
static int
s_record_status(const Gridsync__V1__Record *r)
{
    const Gridsync__V1__RecordMeta *m = r ? gs_record_meta(r) : NULL;
    return m ? (int) m->status : 0;
}

int
gc_src_get(gc_src_t *self, int kind, const char *key, gs_record_fn *fn, void *arg)
{
    if (self->store)
        return gs_store_get(self->store, kind, key, fn, arg);
    Gridsync__V1__SnapshotEntry *e = NULL;
    int rc = gs_admin_get(self->admin, kind, key, &e, &self->err);
    if (rc)
        return s_admin_rc(self, rc);
    /* the callbacks read the record as the store keeps it: packed */
    size_t len = e->record ? gridsync__v1__record__get_packed_size(e->record) : 0;
    uint8_t *data = malloc(len ? len : 1);
    if (!data) {
        gridsync__v1__snapshot_entry__free_unpacked(e, NULL);
        return GS_ENOMEM;
    }
    if (e->record)
        gridsync__v1__record__pack(e->record, data);
    gs_record_view_t v;
    memset(&v, 0, sizeof v);
    v.grid = e->grid_code;
    v.kind = (int) e->kind;
    v.record_key = e->record_key;
    v.version = e->version;
    v.seq = e->seq;
    v.updated_at = 0; /* not in an admin reply */
    v.status = s_record_status(e->record);
    v.data = data;
    v.len = len;
    rc = fn(arg, &v);
    free(data);
    gridsync__v1__snapshot_entry__free_unpacked(e, NULL);
    return rc < 0 ? rc : 0; /* as the store: a callback's error comes back */
}

int
gc_src_digest(gc_src_t *self, const gs_digest_query_t *q, gs_digest_result_t *out,
              uint64_t *epoch)
{
    memset(out, 0, sizeof *out);
    if (epoch)
        *epoch = 0;
    if (self->store) {
        if (epoch)
            gs_store_epoch(self->store, epoch);
        return gs_store_digest(self->store, q, out);
    }
    Gridsync__V1__DigestReply *r = NULL;
    int rc = gs_admin_digest(self->admin, q->prefix, q->cursor, q->cursor_len, q->limit, &r,
                             &self->err);
    if (rc)
        return s_admin_rc(self, rc);
    /* the same checks the store's reader makes: what was asked for came back */
    size_t pl = strlen(q->prefix);
    int ok = r->node->prefix && !strcmp(r->node->prefix, q->prefix);
    for (size_t i = 0; ok && i < r->n_children; i++)
        ok = r->children[i]->prefix && strlen(r->children[i]->prefix) > pl &&
             strlen(r->children[i]->prefix) <= GS_GRID_LEN &&
             !strncmp(r->children[i]->prefix, q->prefix, pl);
    for (size_t i = 0; ok && i < r->n_records; i++)
        ok = r->records[i]->record_key != NULL;
    if (!ok) {
        gridsync__v1__digest_reply__free_unpacked(r, NULL);
        snprintf(self->err.message, sizeof self->err.message,
                 "the broker's digest reply does not answer for prefix '%s'", q->prefix);
        return GS_CLIENT_EPROTO;
    }
    snprintf(out->node.prefix, sizeof out->node.prefix, "%s", q->prefix);
    memcpy(out->node.digest, r->node->digest.data, GS_DIGEST_LEN);
    out->node.count = r->node->count;
    out->head_seq = r->head_seq;
    if (epoch)
        *epoch = r->store_epoch;
    for (size_t i = 0; !rc && q->child_fn && i < r->n_children; i++) {
        gs_digest_node_t n;
        snprintf(n.prefix, sizeof n.prefix, "%s", r->children[i]->prefix);
        memcpy(n.digest, r->children[i]->digest.data, GS_DIGEST_LEN);
        n.count = r->children[i]->count;
        rc = q->child_fn(q->arg, &n);
    }
    for (size_t i = 0; !rc && q->record_fn && i < r->n_records; i++) {
        const Gridsync__V1__DigestRecord *d = r->records[i];
        gs_digest_record_t v = { (int) d->kind, d->record_key, d->version, (int) d->status,
                                 { 0 } };
        memcpy(v.hash, d->content_hash.data, 16);
        rc = q->record_fn(q->arg, &v);
    }
    if (!rc && r->next_cursor.len) {
        out->next_cursor = malloc(r->next_cursor.len);
        if (!out->next_cursor)
            rc = GS_ENOMEM;
        else
            memcpy(out->next_cursor, r->next_cursor.data, r->next_cursor.len);
        out->next_cursor_len = r->next_cursor.len;
    }
    gridsync__v1__digest_reply__free_unpacked(r, NULL);
    return rc;
}

/*
 * gs_store_admin: the registries kept beside the grid data. Devices (and
 * the public-key index the broker's ZAP handler uses to find a device by
 * its CURVE key) and the grid registry (valid codes with dates, consulted
 * by apply when it is not empty).
 *
 * Where it sits: written by gridctl / the admin endpoint, read by the
 * broker's authentication and by apply. Values are the packed protobuf
 * messages, so the schema stays the one description of them.
 */
#include "gs_incident.h"
#include "gs_store_incident.h"
#include "gs_store_int.h"

#include <stdlib.h>

/* ---- Devices ------------------------------------------------------------------ */

static int
s_device_check(const Gridsync__V1__Device *dev)
{
    gs_verdict_t v;
    if (!dev || !dev->device_id || gs_ident_check(dev->device_id, "device_id", &v)) {
        gs_store_detail("device: %s", dev && dev->device_id ? v.message : "device_id missing");
        return GS_EINVAL;
    }
    if (dev->public_key && *dev->public_key && strlen(dev->public_key) != 40) {
        gs_store_detail("device %s: public key must be 40 Z85 characters", dev->device_id);
        return GS_EINVAL;
    }
    for (size_t i = 0; i < dev->n_prefixes; i++) {
        if (!dev->prefixes[i] || gs_prefix_check(dev->prefixes[i], &v)) {
            gs_store_detail("device %s: prefix %zu: %s", dev->device_id, i,
                            dev->prefixes[i] ? v.message : "missing");
            return GS_EINVAL;
        }
    }
    int department = dev->role == GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEPARTMENT;
    /* a department is bound to categories as well as prefixes; no other
     * role carries them, so that nothing reads as a binding it is not */
    if (!department && ((dev->department && *dev->department) || dev->n_categories)) {
        gs_store_detail("device %s: only a department has a department and categories",
                        dev->device_id);
        return GS_EINVAL;
    }
    if (department) {
        if (!dev->department || gs_ident_check(dev->department, "department", &v)) {
            gs_store_detail("device %s: a department needs its department code (%s)",
                            dev->device_id, dev->department ? v.message : "missing");
            return GS_EINVAL;
        }
        /* the store's table holds them: checked in the put's transaction */
        for (size_t i = 0; i < dev->n_categories; i++)
            if (gs_incident_code_check(dev->categories[i], &v)) {
                gs_store_detail("device %s: %s", dev->device_id, v.message);
                return GS_EINVAL;
            }
        if (dev->n_categories == 0 &&
            dev->status != GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_REVOKED) {
            gs_store_detail("device %s: a department needs at least one incident category",
                            dev->device_id);
            return GS_EINVAL;
        }
    }
    switch (dev->role) {
    case GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN:
        return 0;   /* reads everywhere by its role; prefixes are not needed */
    case GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE:
    case GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT:
    case GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEPARTMENT:
    case GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_CENTRE:
        /* no prefixes would allow nothing (the broker denies by default);
         * a revoked entry may keep none, so that any entry can be revoked */
        if (dev->n_prefixes == 0 &&
            dev->status != GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_REVOKED) {
            gs_store_detail("device %s: a %s needs at least one grid prefix", dev->device_id,
                            dev->role == GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE
                                ? "device"
                            : dev->role == GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT
                                ? "district system"
                            : department ? "department" : "centre");
            return GS_EINVAL;
        }
        return 0;
    default:
        gs_store_detail("device %s: unknown role %d", dev->device_id, (int) dev->role);
        return GS_EINVAL;
    }
}

/* Are a department's categories in the store's table as of t? Returns 0,
 * GS_EINVAL with the detail, or the sticky error. */
static int
s_device_categories(gs_txn_t *t, const Gridsync__V1__Device *dev)
{
    gs_incident_table_t *table = malloc(sizeof *table);
    if (!table)
        return gs_txn_fail(t, ENOMEM, "incident category table");
    int rc = gs_incident_table_load(t, table, NULL);
    for (size_t i = 0; rc == 0 && i < dev->n_categories; i++) {
        if (!gs_incident_table_find(table, dev->categories[i])) {
            gs_store_detail("device %s: category %s is not in this store's category table "
                            "(gridctl incidents categories lists it)", dev->device_id,
                            dev->categories[i]);
            rc = GS_EINVAL;
        }
    }
    free(table);
    return rc;
}

static int
s_device_put_fn(gs_txn_t *t, void *arg)
{
    const Gridsync__V1__Device *dev = arg;
    const char *key = dev->public_key ? dev->public_key : "";
    size_t il = strlen(dev->device_id);
    MDB_val k = { il, dev->device_id }, v;
    int rc;
    if (dev->n_categories && (rc = s_device_categories(t, dev)))
        return rc;
    rc = gs_txn_get(t, GS_DB_DEVICES, &k, &v);
    if (rc == 0) {
        Gridsync__V1__Device *old = gridsync__v1__device__unpack(NULL, v.mv_size, v.mv_data);
        if (!old)
            return gs_txn_fail(t, MDB_CORRUPTED, "device entry");
        if (old->public_key && *old->public_key && strcmp(old->public_key, key) != 0) {
            /* key rotated: the old key must no longer find this device */
            MDB_val ok = { strlen(old->public_key), old->public_key }, ov;
            if (gs_txn_get(t, GS_DB_DEVICE_KEYS, &ok, &ov) == 0 && ov.mv_size == il &&
                memcmp(ov.mv_data, dev->device_id, il) == 0)
                gs_txn_del(t, GS_DB_DEVICE_KEYS, &ok);
        }
        gridsync__v1__device__free_unpacked(old, NULL);
    }
    if (t->err)
        return t->err;
    if (*key) {
        MDB_val kk = { strlen(key), (void *) key }, kv;
        rc = gs_txn_get(t, GS_DB_DEVICE_KEYS, &kk, &kv);
        if (rc == 0 && (kv.mv_size != il || memcmp(kv.mv_data, dev->device_id, il) != 0)) {
            gs_store_detail("public key already belongs to device %.*s",
                            (int) kv.mv_size, (const char *) kv.mv_data);
            return GS_EINVAL;
        }
        MDB_val idv = { il, dev->device_id };
        gs_txn_put(t, GS_DB_DEVICE_KEYS, &kk, &idv, 0);
    }
    size_t n = protobuf_c_message_get_packed_size(&dev->base);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return gs_txn_fail(t, ENOMEM, "pack device");
    protobuf_c_message_pack(&dev->base, buf);
    MDB_val dv = { n, buf };
    rc = gs_txn_put(t, GS_DB_DEVICES, &k, &dv, 0);
    free(buf);
    return rc;
}

int
gs_store_device_put(gs_store_t *self, const Gridsync__V1__Device *dev)
{
    int rc = s_device_check(dev);
    if (rc)
        return rc;
    return gs_store_write(self, s_device_put_fn, (void *) dev);
}

/* Unpack the device stored under id (heap; caller frees). */
static int
s_device_read(gs_store_t *self, MDB_txn *txn, const void *id, size_t il,
              Gridsync__V1__Device **out)
{
    MDB_val k = { il, (void *) id }, v;
    int rc = mdb_get(txn, self->db[GS_DB_DEVICES], &k, &v);
    if (rc)
        return gs_store_err(rc, "read device");
    *out = gridsync__v1__device__unpack(NULL, v.mv_size, v.mv_data);
    return *out ? 0 : GS_ECORRUPT;
}

int
gs_store_device_get(gs_store_t *self, const char *device_id, Gridsync__V1__Device **dev_out)
{
    if (!device_id || !dev_out || !*device_id || strlen(device_id) > GS_ID_MAX)
        return GS_EINVAL;
    *dev_out = NULL;
    MDB_txn *txn;
    int rc = gs_rtxn_begin(self, &txn);
    if (rc)
        return rc;
    rc = s_device_read(self, txn, device_id, strlen(device_id), dev_out);
    gs_rtxn_end(self, &txn);
    return rc;
}

int
gs_store_device_by_key(gs_store_t *self, const char *public_key_z85,
                       Gridsync__V1__Device **dev_out)
{
    if (!public_key_z85 || !*public_key_z85 || !dev_out || strlen(public_key_z85) > 64)
        return GS_EINVAL;
    *dev_out = NULL;
    MDB_txn *txn;
    int rc = gs_rtxn_begin(self, &txn);
    if (rc)
        return rc;
    MDB_val k = { strlen(public_key_z85), (void *) public_key_z85 }, v;
    rc = mdb_get(txn, self->db[GS_DB_DEVICE_KEYS], &k, &v);
    if (rc == 0)
        rc = s_device_read(self, txn, v.mv_data, v.mv_size, dev_out);
    else
        rc = gs_store_err(rc, "find device by key");
    gs_rtxn_end(self, &txn);
    return rc;
}

typedef struct s_dev_list {
    gs_device_fn *fn;           /* the caller's callback */
    void *arg;                  /* its argument */
} s_dev_list_t;

static int
s_device_each(void *arg, MDB_txn *txn, const MDB_val *k, const MDB_val *v, int *user)
{
    (void) txn, (void) k;
    s_dev_list_t *l = arg;
    Gridsync__V1__Device *d = gridsync__v1__device__unpack(NULL, v->mv_size, v->mv_data);
    if (!d)
        return MDB_CORRUPTED;
    *user = l->fn(l->arg, d);
    gridsync__v1__device__free_unpacked(d, NULL);
    return 0;
}

int
gs_store_devices(gs_store_t *self, gs_device_fn *fn, void *arg)
{
    if (!fn)
        return GS_EINVAL;
    s_dev_list_t l = { fn, arg };
    return gs_scan(self, GS_DB_DEVICES, NULL, s_device_each, &l, "list devices");
}

/* ---- Grid registry ---------------------------------------------------------------- */

static int
s_grid_put_fn(gs_txn_t *t, void *arg)
{
    const Gridsync__V1__Grid *g = arg;
    size_t n = protobuf_c_message_get_packed_size(&g->base);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return gs_txn_fail(t, ENOMEM, "pack grid");
    protobuf_c_message_pack(&g->base, buf);
    MDB_val k = { GS_GRID_LEN, g->grid_code }, v = { n, buf };
    int rc = gs_txn_put(t, GS_DB_GRIDS, &k, &v, 0);
    free(buf);
    return rc;
}

/* 0 when grid may be stored; GS_EINVAL with the detail set otherwise. */
static int
s_grid_valid(const Gridsync__V1__Grid *grid)
{
    gs_verdict_t v;
    int d;
    if (!grid || !grid->grid_code || gs_gridcode_check(grid->grid_code, &v)) {
        gs_store_detail("grid: %s", grid && grid->grid_code ? v.message : "grid_code missing");
        return GS_EINVAL;
    }
    if ((grid->valid_from && *grid->valid_from && gs_date_parse(grid->valid_from, &d, &v)) ||
        (grid->valid_to && *grid->valid_to && gs_date_parse(grid->valid_to, &d, &v))) {
        gs_store_detail("grid %s: %s", grid->grid_code, v.message);
        return GS_EINVAL;
    }
    return 0;
}

int
gs_store_grid_put(gs_store_t *self, const Gridsync__V1__Grid *grid)
{
    int rc = s_grid_valid(grid);
    return rc ? rc : gs_store_write(self, s_grid_put_fn, (void *) grid);
}

typedef struct s_grids {
    Gridsync__V1__Grid *const *v;   /* the grids */
    size_t n;                       /* how many */
} s_grids_t;

static int
s_grids_put_fn(gs_txn_t *t, void *arg)
{
    const s_grids_t *g = arg;
    for (size_t i = 0; i < g->n; i++) {
        int rc = s_grid_put_fn(t, g->v[i]);
        if (rc)
            return rc;
    }
    return 0;
}

int
gs_store_grids_put(gs_store_t *self, Gridsync__V1__Grid *const *grids, size_t n)
{
    if (!grids && n)
        return GS_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int rc = s_grid_valid(grids[i]);
        if (rc)
            return rc;
    }
    s_grids_t g = { grids, n };
    return gs_store_write(self, s_grids_put_fn, &g);
}

int
gs_store_grid_get(gs_store_t *self, const char *grid_code, Gridsync__V1__Grid **grid_out)
{
    if (!grid_code || !grid_out || strlen(grid_code) != GS_GRID_LEN)
        return GS_EINVAL;
    *grid_out = NULL;
    MDB_txn *txn;
    int rc = gs_rtxn_begin(self, &txn);
    if (rc)
        return rc;
    MDB_val k = { GS_GRID_LEN, (void *) grid_code }, v;
    rc = mdb_get(txn, self->db[GS_DB_GRIDS], &k, &v);
    if (rc == 0) {
        *grid_out = gridsync__v1__grid__unpack(NULL, v.mv_size, v.mv_data);
        if (!*grid_out)
            rc = GS_ECORRUPT;
    } else {
        rc = gs_store_err(rc, "read grid");
    }
    gs_rtxn_end(self, &txn);
    return rc;
}

typedef struct s_grid_list {
    gs_grid_fn *fn;             /* the caller's callback */
    void *arg;                  /* its argument */
} s_grid_list_t;

static int
s_grid_each(void *arg, MDB_txn *txn, const MDB_val *k, const MDB_val *v, int *user)
{
    (void) txn, (void) k;
    s_grid_list_t *l = arg;
    Gridsync__V1__Grid *g = gridsync__v1__grid__unpack(NULL, v->mv_size, v->mv_data);
    if (!g)
        return MDB_CORRUPTED;
    *user = l->fn(l->arg, g);
    gridsync__v1__grid__free_unpacked(g, NULL);
    return 0;
}

int
gs_store_grids(gs_store_t *self, const char *prefix, gs_grid_fn *fn, void *arg)
{
    if (!fn)
        return GS_EINVAL;
    s_grid_list_t l = { fn, arg };
    return gs_scan(self, GS_DB_GRIDS, prefix, s_grid_each, &l, "list grids");
}

/*
 * gs_store_incident: one step of an incident's workflow as the store takes
 * it (see gs_store_incident.h): the category check, the checks beside the
 * workflow table, the history entry and the times the step sets; and the
 * store's incident category table (read, replaced, its codes in use).
 */
#include "gs_incident.h"
#include "gs_store_incident.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define S_ACTIVE GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_ACTIVE
#define S_INC(name) GRIDSYNC__V1__INCIDENT_STATUS__INCIDENT_STATUS_##name
#define S_ROLE(name) GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_##name

/* Is category among the uploader's categories? */
static int
s_has_category(const gs_principal_t *up, const char *category)
{
    for (size_t i = 0; i < up->n_categories; i++)
        if (up->categories && up->categories[i] && strcmp(up->categories[i], category) == 0)
            return 1;
    return 0;
}

static int
s_streq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* May this uploader take this step on this incident, beyond what the
 * transition table says (gs_incident_step_check)? A department acts only
 * on incidents dispatched to it in its categories; after registration only
 * the centre changes what an incident is (grid, category, severity); the
 * department changes only by a dispatch, and a dispatch names the right
 * one. Verdict in *v (reason 0 = yes). */
static void
s_incident_rules(const gs_principal_t *up, const Gridsync__V1__Incident *old,
                 const Gridsync__V1__Incident *in, gs_verdict_t *v)
{
    int from = old ? (int) old->status : 0, to = (int) in->status;
    gs_verdict_clear(v);
    if (up->role == S_ROLE(DEPARTMENT)) {
        /* old is set: no department step starts an incident */
        if (!up->department || !*up->department || !s_streq(old->department, up->department)) {
            gs_verdict_set(v, GRIDSYNC__V1__REASON__REASON_ROLE,
                           "the incident is dispatched to %s, not to this key's department",
                           old->department && *old->department ? old->department : "no department");
            return;
        }
        if (!s_has_category(up, old->category)) {
            gs_verdict_set(v, GRIDSYNC__V1__REASON__REASON_ROLE,
                           "category %s is not among this department's categories",
                           old->category);
            return;
        }
    }
    if (old && from != S_INC(REPORTED) && up->role != S_ROLE(CENTRE) &&
        (!s_streq(old->grid_code, in->grid_code) || !s_streq(old->category, in->category) ||
         old->severity != in->severity)) {
        gs_verdict_set(v, GRIDSYNC__V1__REASON__REASON_ROLE,
                       "after registration only the centre changes an incident's grid, "
                       "category or severity");
        return;
    }
    if (to == S_INC(DISPATCHED) && from == S_INC(DISPATCHED) &&
        s_streq(old->department, in->department)) {
        gs_verdict_set(v, GRIDSYNC__V1__REASON__REASON_TRANSITION,
                       "a re-dispatch names another department; it is dispatched to %s",
                       old->department);
        return;
    }
    if (to == S_INC(DISPATCHED) && from == S_INC(HANDLED) &&
        !s_streq(old->department, in->department)) {
        gs_verdict_set(v, GRIDSYNC__V1__REASON__REASON_TRANSITION,
                       "a failed verification goes back to the department that handled "
                       "it (%s)", old->department);
        return;
    }
}

/* Is the incident's category one the table lets this step have? Any step
 * needs it in the table (its deadlines come from there); a retired one only
 * when the incident already has it (its open incidents go on, no new one
 * takes it). Verdict in *v (reason 0 = yes); returns v->reason. */
static int
s_category_check(const gs_incident_table_t *table, const Gridsync__V1__Incident *old,
                 const Gridsync__V1__Incident *in, gs_verdict_t *v)
{
    gs_verdict_clear(v);
    const gs_incident_category_t *c = gs_incident_table_find(table, in->category);
    if (!c) {
        char codes[GS_MSG_MAX / 2];
        size_t n = 0;
        codes[0] = 0;
        for (size_t i = 0; i < table->n; i++) {
            if (table->cats[i].retired)
                continue;
            if (n + GS_INCIDENT_CATEGORY_MAX + 6 >= sizeof codes) {
                snprintf(codes + n, sizeof codes - n, " ...");
                break;
            }
            n += (size_t) snprintf(codes + n, sizeof codes - n, "%s%s", n ? " " : "",
                                   table->cats[i].code);
        }
        return gs_verdict_set(v, GRIDSYNC__V1__REASON__REASON_CATEGORY,
                              "category %s is not in this store's category table (%s)",
                              in->category, codes);
    }
    if (c->retired && !(old && s_streq(old->category, in->category)))
        return gs_verdict_set(v, GRIDSYNC__V1__REASON__REASON_CATEGORY,
                              "category %s (%s) is retired: it takes no new incidents",
                              c->code, c->name);
    return 0;
}

int
gs_incident_step_pack(gs_txn_t *t, const gs_incident_table_t *table,
                      const gs_principal_t *who, const char *by, int64_t now_ms,
                      const gs_prepared_t *pp, const gs_rec_cur_t *cur,
                      const char *canon, const uint8_t **record, size_t *record_len,
                      uint8_t hash[16], gs_verdict_t *v)
{
    gs_store_t *st = t->st;
    const gs_principal_t *up = who;
    const Gridsync__V1__Incident *in = pp->rec->incident;
    const Gridsync__V1__Incident *old = NULL;
    ProtobufCAllocator *alloc = gs_arena_allocator(st->arena);
    gs_verdict_clear(v);
    if (cur) {
        const uint8_t *data;
        size_t len;
        int rc = gs_rec_data(st, t->txn, &cur->hdr, &st->stored, &data, &len);
        if (rc)
            return gs_txn_fail(t, rc, "stored incident");
        Gridsync__V1__Record *r = gridsync__v1__record__unpack(alloc, len, data);
        if (!r || r->body_case != GRIDSYNC__V1__RECORD__BODY_INCIDENT || !r->incident)
            return gs_txn_fail(t, MDB_CORRUPTED, "stored incident");
        old = r->incident;
    }
    if (pp->status != S_ACTIVE) {
        gs_verdict_set(v, GRIDSYNC__V1__REASON__REASON_TRANSITION,
                       "an incident is rejected or closed through its workflow, not voided");
        return 0;
    }
    if (s_category_check(table, old, in, v))
        return 0;
    int from = old ? (int) old->status : 0, to = (int) in->status;
    if (gs_incident_step_check(from, to, up->role, NULL, v))
        return 0;
    s_incident_rules(up, old, in, v);
    if (v->reason)
        return 0;
    size_t n_old = old ? old->n_history : 0;
    if (n_old + 1 > st->limits.max_transitions) {
        gs_verdict_set(v, GRIDSYNC__V1__REASON__REASON_TOO_MANY,
                       "the incident's history is full (%u steps)", st->limits.max_transitions);
        return 0;
    }

    /* the record as stored: the upload's fields, what the store keeps */
    Gridsync__V1__Incident ih = *in;
    Gridsync__V1__Record copy = *pp->rec;
    copy.incident = &ih;
    ih.incident_id = (char *) canon;
    Gridsync__V1__IncidentTransition step = GRIDSYNC__V1__INCIDENT_TRANSITION__INIT;
    step.from = (Gridsync__V1__IncidentStatus) from;
    step.to = (Gridsync__V1__IncidentStatus) to;
    step.by = (char *) (by ? by : "");
    step.at = now_ms;
    step.role = (Gridsync__V1__PrincipalRole) up->role;
    /* the note of this step: the upload's last history entry, when it is
     * one the store has not recorded (no `at` yet; the store's all have) */
    if (in->n_history && in->history[in->n_history - 1] &&
        in->history[in->n_history - 1]->at == 0)
        step.note = in->history[in->n_history - 1]->note;
    /* the department changes only by a dispatch */
    if (to != S_INC(DISPATCHED))
        ih.department = old ? old->department : (char *) "";
    if (to == S_INC(DISPATCHED))
        step.department = ih.department;
    Gridsync__V1__IncidentTransition **hist =
        gs_arena_alloc(st->arena, (n_old + 1) * sizeof *hist);
    if (!hist)
        return gs_txn_fail(t, ENOMEM, "incident history");
    for (size_t i = 0; i < n_old; i++)
        hist[i] = old->history[i];
    hist[n_old] = &step;
    ih.history = hist;
    ih.n_history = n_old + 1;
    /* times by the broker's clock */
    ih.reported_at = old ? old->reported_at : now_ms;
    ih.due_at = old ? old->due_at : 0;
    ih.dispatch_due_at = old ? old->dispatch_due_at : 0;
    ih.closed_at = old ? old->closed_at : 0;
    if (to == S_INC(ACCEPTED) && from != S_INC(DISPATCHED))
        ih.due_at = now_ms + gs_incident_table_close_ms(table, ih.category, (int) ih.severity);
    if (to == S_INC(DISPATCHED))
        ih.dispatch_due_at =
            now_ms + gs_incident_table_handle_ms(table, ih.category, (int) ih.severity);
    if (to == S_INC(CLOSED))
        ih.closed_at = now_ms;
    else if (to == S_INC(ACCEPTED))
        ih.closed_at = 0;   /* reopened */
    if (gs_record_pack(&copy, &st->pack, &st->pack.len))
        return gs_txn_fail(t, ENOMEM, "pack incident");
    *record = st->pack.data;
    *record_len = st->pack.len;
    if (gs_content_hash_packed(st->pack.data, st->pack.len, hash))
        return gs_txn_fail(t, GS_EINTERNAL, "hash of a packed incident");
    return 0;
}

/* ---- The category table ------------------------------------------------------------- */

#define S_TABLE_KEY "incident_categories"   /* meta key of the configured table */

/* Parse the meta value v; 0 or -1 (it does not parse). */
static int
s_table_decode(const MDB_val *v, gs_incident_table_t *out)
{
    size_t line;
    gs_verdict_t why;
    if (gs_incident_table_parse(v->mv_data, v->mv_size, out, &line, &why)) {
        gs_store_detail("stored incident category table, line %zu: %s", line, why.message);
        return -1;
    }
    return 0;
}

int
gs_incident_table_load(gs_txn_t *t, gs_incident_table_t *out, int *configured)
{
    MDB_val k = { sizeof S_TABLE_KEY - 1, (void *) S_TABLE_KEY }, v;
    if (configured)
        *configured = 0;
    int rc = gs_txn_get(t, GS_DB_META, &k, &v);
    if (rc == GS_ENOTFOUND) {
        *out = *gs_incident_table_default();
        return 0;
    }
    if (rc)
        return rc;
    if (s_table_decode(&v, out))
        return gs_txn_fail(t, MDB_CORRUPTED, "incident category table");
    if (configured)
        *configured = 1;
    return 0;
}

/* The table as of read transaction txn (gs_incident_table_load's answer
 * outside a write). Returns 0 or a GS_E* code. */
static int
s_table_read(gs_store_t *self, MDB_txn *txn, gs_incident_table_t *out, int *configured)
{
    if (configured)
        *configured = 0;
    MDB_val k = { sizeof S_TABLE_KEY - 1, (void *) S_TABLE_KEY }, v;
    int rc = mdb_get(txn, self->db[GS_DB_META], &k, &v);
    if (rc == MDB_NOTFOUND) {
        *out = *gs_incident_table_default();
        return 0;
    }
    if (rc)
        return gs_store_err(rc, "read incident category table");
    if (s_table_decode(&v, out))
        return GS_ECORRUPT;
    if (configured)
        *configured = 1;
    return 0;
}

int
gs_store_incident_table(gs_store_t *self, gs_incident_table_t *out, int *configured)
{
    if (!self || !out)
        return GS_EINVAL;
    MDB_txn *txn;
    int rc = gs_rtxn_begin(self, &txn);
    if (rc)
        return rc;
    rc = s_table_read(self, txn, out, configured);
    gs_rtxn_end(self, &txn);
    return rc;
}

/* The codes of the stored table that a new one drops, and who uses them. */
typedef struct s_dropped {
    const char *code[GS_INCIDENT_CATEGORIES_MAX]; /* codes dropped (into the old table) */
    uint64_t incidents[GS_INCIDENT_CATEGORIES_MAX]; /* stored incidents of each */
    uint64_t devices[GS_INCIDENT_CATEGORIES_MAX]; /* registry entries naming each */
    char device[GS_INCIDENT_CATEGORIES_MAX][GS_ID_MAX + 1]; /* the first such entry */
    size_t n;
} s_dropped_t;

static int
s_dropped_find(const s_dropped_t *d, const char *code)
{
    for (size_t i = 0; code && i < d->n; i++)
        if (strcmp(d->code[i], code) == 0)
            return (int) i;
    return -1;
}

/* Count, in txn, the stored incidents and registry entries that use a
 * dropped code. Returns 0 or an LMDB code (MDB_CORRUPTED for a value that
 * does not decode). The walk reads every incident once: it runs only when
 * a set drops a code. */
static int
s_dropped_count(gs_store_t *st, MDB_txn *txn, s_dropped_t *d)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, st->db[GS_DB_IDS], &c);
    if (rc)
        return rc;
    /* ids: kind byte | id -> grid [| canonical id]; the incidents are the 'I' keys */
    MDB_val k = { 1, (void *) "I" }, v;
    gs_wbuf_t scratch;              /* a compressed log entry's record, decoded */
    gs_wbuf_init(&scratch);
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (((const char *) k.mv_data)[0] != GS_KIND_I)
            break;
        char grid[GS_GRID_LEN + 1], canon[GS_ID_MAX + 1];
        if (gs_val_id_parse(k.mv_data, k.mv_size, v.mv_data, v.mv_size, grid, canon)) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (k.mv_size - 1 != strlen(canon) || memcmp((const char *) k.mv_data + 1, canon,
                                                     k.mv_size - 1) != 0)
            continue;   /* an alias: its record is counted under its canonical id */
        uint8_t rk[GS_RK_MAX];
        MDB_val rkv = { gs_key_record(rk, grid, GS_KIND_I, canon, strlen(canon)), rk }, rv;
        gs_rec_hdr_t h;
        const uint8_t *data;
        size_t len;
        if ((rc = mdb_get(txn, st->db[GS_DB_RECORDS], &rkv, &rv)) ||
            (rc = gs_rec_hdr_get(&rv, &h) ? MDB_CORRUPTED : 0) ||
            (rc = gs_rec_data(st, txn, &h, &scratch, &data, &len))) {
            rc = rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc;
            break;
        }
        Gridsync__V1__Record *r = gridsync__v1__record__unpack(NULL, len, data);
        if (!r || !r->incident) {
            if (r)
                gridsync__v1__record__free_unpacked(r, NULL);
            rc = MDB_CORRUPTED;
            break;
        }
        int i = s_dropped_find(d, r->incident->category);
        if (i >= 0)
            d->incidents[i]++;
        gridsync__v1__record__free_unpacked(r, NULL);
    }
    mdb_cursor_close(c);
    gs_wbuf_deinit(&scratch);
    if (rc != MDB_NOTFOUND && rc != 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, st->db[GS_DB_DEVICES], &c)))
        return rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        Gridsync__V1__Device *dev = gridsync__v1__device__unpack(NULL, v.mv_size, v.mv_data);
        if (!dev) {
            rc = MDB_CORRUPTED;
            break;
        }
        for (size_t j = 0; j < dev->n_categories; j++) {
            int i = s_dropped_find(d, dev->categories[j]);
            if (i >= 0 && d->devices[i]++ == 0)
                snprintf(d->device[i], sizeof d->device[i], "%s", dev->device_id);
        }
        gridsync__v1__device__free_unpacked(dev, NULL);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* May the table in txn be replaced by table? Every code the stored table
 * has and table drops must be unused. Returns 0, GS_EINVAL with the detail
 * naming the first used code, or a GS_E* error. */
static int
s_table_replace_check(gs_store_t *st, MDB_txn *txn, const gs_incident_table_t *old,
                      const gs_incident_table_t *table)
{
    s_dropped_t *d = calloc(1, sizeof *d);
    if (!d)
        return GS_ENOMEM;
    for (size_t i = 0; i < old->n; i++)
        if (!gs_incident_table_find(table, old->cats[i].code))
            d->code[d->n++] = old->cats[i].code;
    int rc = d->n ? s_dropped_count(st, txn, d) : 0;
    if (rc) {
        free(d);
        return gs_store_err(rc, "count the uses of dropped categories");
    }
    for (size_t i = 0; i < d->n; i++) {
        if (!d->incidents[i] && !d->devices[i])
            continue;
        char devs[GS_ID_MAX + 48] = "";
        if (d->devices[i])
            snprintf(devs, sizeof devs, "%s%llu device registry entr%s (%s%s)",
                     d->incidents[i] ? " and " : "", (unsigned long long) d->devices[i],
                     d->devices[i] == 1 ? "y" : "ies", d->device[i],
                     d->devices[i] > 1 ? ", ..." : "");
        char incs[48] = "";
        if (d->incidents[i])
            snprintf(incs, sizeof incs, "%llu stored incident%s",
                     (unsigned long long) d->incidents[i], d->incidents[i] == 1 ? "" : "s");
        gs_store_detail("category %s is used by %s%s: keep its line and mark it retired "
                        "(it then takes no new incidents)", d->code[i], incs, devs);
        free(d);
        return GS_EINVAL;
    }
    free(d);
    return 0;
}

/* A table checked and in its stored form. */
typedef struct s_table_put {
    const gs_incident_table_t *table; /* the new table */
    const char *text;           /* its text form */
    size_t len;                 /* its length */
} s_table_put_t;

static int
s_table_put_fn(gs_txn_t *t, void *arg)
{
    const s_table_put_t *p = arg;
    gs_incident_table_t *old = malloc(sizeof *old);
    if (!old)
        return gs_txn_fail(t, ENOMEM, "incident category table");
    int rc = gs_incident_table_load(t, old, NULL);
    if (rc == 0)
        rc = s_table_replace_check(t->st, t->txn, old, p->table);
    free(old);
    if (rc)
        return rc;
    MDB_val k = { sizeof S_TABLE_KEY - 1, (void *) S_TABLE_KEY },
            v = { p->len, (void *) p->text };
    return gs_txn_put(t, GS_DB_META, &k, &v, 0);
}

int
gs_store_incident_table_put(gs_store_t *self, const gs_incident_table_t *table, int dry_run)
{
    if (!self || !table)
        return GS_EINVAL;
    /* the stored form is the text form, parsed back here: a table that
     * would not read back is refused now, not at the next upload */
    size_t len = gs_incident_table_format(table, NULL, 0);
    char *text = malloc(len + 1);
    gs_incident_table_t *again = malloc(sizeof *again);
    if (!text || !again) {
        free(text);
        free(again);
        return GS_ENOMEM;
    }
    gs_incident_table_format(table, text, len + 1);
    size_t line;
    gs_verdict_t why;
    int rc = 0;
    if (gs_incident_table_parse(text, len, again, &line, &why)) {
        gs_store_detail("incident category table: %s", why.message);
        rc = GS_EINVAL;
    }
    free(again);
    s_table_put_t p = { table, text, len };
    if (rc == 0 && !dry_run) {
        rc = gs_store_write(self, s_table_put_fn, &p);
    } else if (rc == 0) {
        /* the same checks in one read transaction: nothing is written */
        gs_incident_table_t *old = malloc(sizeof *old);
        MDB_txn *txn = NULL;
        rc = old ? gs_rtxn_begin(self, &txn) : GS_ENOMEM;
        if (rc == 0 && (rc = s_table_read(self, txn, old, NULL)) == 0)
            rc = s_table_replace_check(self, txn, old, table);
        gs_rtxn_end(self, &txn);
        free(old);
    }
    free(text);
    return rc;
}

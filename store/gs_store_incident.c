/*
 * gs_store_incident: one step of an incident's workflow as the store takes
 * it (see gs_store_incident.h): the checks beside the workflow table, the
 * history entry and the times the step sets.
 */
#include "gs_incident.h"
#include "gs_store_incident.h"

#include <errno.h>

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

int
gs_incident_step_pack(gs_txn_t *t, const gs_principal_t *who, const char *by,
                      int64_t now_ms, const gs_prepared_t *pp, const gs_rec_cur_t *cur,
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
        int rc = gs_rec_data(st, t->txn, &cur->hdr, &data, &len);
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
        ih.due_at = now_ms + gs_incident_close_ms(ih.category, (int) ih.severity);
    if (to == S_INC(DISPATCHED))
        ih.dispatch_due_at = now_ms + gs_incident_handle_ms((int) ih.severity);
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

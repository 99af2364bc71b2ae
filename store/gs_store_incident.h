/*
 * gs_store_incident: one step of an incident's workflow as the store takes
 * it (docs/data-model.md, "Incident workflow"): the transition and role
 * checks of the workflow table (gs_incident.h), the rules beside the table
 * (a department acts on what is dispatched to it in its categories, only
 * the centre changes what an incident is after registration, a re-dispatch
 * names another department), the history entry the store writes for the
 * step and the times it sets by the broker's clock (reported_at, due_at,
 * dispatch_due_at, closed_at).
 *
 * Where it sits: called by the write path (gs_store_apply.c) for an
 * incident the dedup classifier found NEW or UPDATE, inside the write
 * transaction; writer thread only, under write_lock. A replica's events
 * (gs_store_replica.c) do not come here: it stores what its origin decided.
 */
#ifndef GS_STORE_INCIDENT_H
#define GS_STORE_INCIDENT_H

#include "gs_store_int.h"
#include "gs_store_record.h"

/* Check the step that the incident of pp (valid and prepared) asks for
 * against the stored version cur (NULL: a new report), by principal who,
 * and pack the record as the store keeps it under canon into t->st->pack:
 * the upload's fields, the stored history plus one entry for this step
 * (from, to, by, role, at = now_ms, note, department), department and
 * times set by the step. *record and *record_len then point at the packed
 * bytes (valid until the next use of t->st->pack) and hash gets their
 * content hash. A refused step (a void, no such step, a role or rule that
 * does not allow it, a full history) sets *v with the reason and message
 * and packs nothing; otherwise *v is cleared. by is the uploader's
 * registry id (Upload.device_id). Returns 0, or the transaction's sticky
 * error (a stored incident that does not unpack is MDB_CORRUPTED). */
int gs_incident_step_pack(gs_txn_t *t, const gs_principal_t *who, const char *by,
                          int64_t now_ms, const gs_prepared_t *pp, const gs_rec_cur_t *cur,
                          const char *canon, const uint8_t **record, size_t *record_len,
                          uint8_t hash[16], gs_verdict_t *v);

#endif

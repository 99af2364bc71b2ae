/*
 * gs_store_incident: one step of an incident's workflow as the store takes
 * it (docs/data-model.md, "Incident workflow"): the transition and role
 * checks of the workflow table (gs_incident.h), the rules beside the table
 * (a department acts on what is dispatched to it in its categories, only
 * the centre changes what an incident is after registration, a re-dispatch
 * names another department), the history entry the store writes for the
 * step and the times it sets by the broker's clock (reported_at, due_at,
 * dispatch_due_at, closed_at) from the store's category table.
 *
 * Also that table itself: the categories and deadlines an operator
 * configured for this store (gridctl incidents categories set), kept as its
 * text form (gs_incident_table_parse) under the meta key
 * "incident_categories"; a store without that key uses the built-in table
 * (gs_incident_table_default), as every store did before the table could be
 * configured, so no format change was needed. The public functions are
 * gs_store_incident_table and gs_store_incident_table_put (gs_store.h).
 *
 * Where it sits: called by the write path (gs_store_apply.c) for an
 * incident the dedup classifier found NEW or UPDATE, inside the write
 * transaction; writer thread only, under write_lock. A replica's events
 * (gs_store_replica.c) do not come here: it stores what its origin decided.
 */
#ifndef GS_STORE_INCIDENT_H
#define GS_STORE_INCIDENT_H

#include "gs_incident.h"
#include "gs_store_int.h"
#include "gs_store_record.h"

/* The store's category table as of t into *out: the configured one, or the
 * built-in one when none is (*configured 0; configured may be NULL).
 * Returns 0 or the sticky error (a stored table that does not parse is
 * MDB_CORRUPTED). */
int gs_incident_table_load(gs_txn_t *t, gs_incident_table_t *out, int *configured);

/* Check the step that the incident of pp (valid and prepared) asks for
 * against the stored version cur (NULL: a new report), by principal who,
 * with the category and deadlines of table (the store's, from
 * gs_incident_table_load in this transaction),
 * and pack the record as the store keeps it under canon into t->st->pack:
 * the upload's fields, the stored history plus one entry for this step
 * (from, to, by, role, at = now_ms, note, department), department and
 * times set by the step. *record and *record_len then point at the packed
 * bytes (valid until the next use of t->st->pack) and hash gets their
 * content hash. A refused step (a void, a category the table does not hold
 * or that is retired and not the stored incident's, no such step, a role
 * or rule that does not allow it, a full history) sets *v with the reason and message
 * and packs nothing; otherwise *v is cleared. by is the uploader's
 * registry id (Upload.device_id). Returns 0, or the transaction's sticky
 * error (a stored incident that does not unpack is MDB_CORRUPTED). */
int gs_incident_step_pack(gs_txn_t *t, const gs_incident_table_t *table,
                          const gs_principal_t *who, const char *by, int64_t now_ms,
                          const gs_prepared_t *pp, const gs_rec_cur_t *cur,
                          const char *canon, const uint8_t **record, size_t *record_len,
                          uint8_t hash[16], gs_verdict_t *v);

#endif

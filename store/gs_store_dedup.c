/*
 * gs_store_dedup: the dedup table as a pure function (contract in
 * gs_store_dedup.h). Each branch below is one row, or one ordering
 * decision, of the table in docs/store.md; the row is named beside it.
 */
#include "gs_store_dedup.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>


#define S_ACCEPTED GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED
#define S_UNCHANGED GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_UNCHANGED
#define S_MERGED GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_MERGED
#define S_CONFLICT GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_CONFLICT
#define S_REJECTED GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_REJECTED

static void
s_reject(gs_dedup_t *d, int reason, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
s_reject(gs_dedup_t *d, int reason, const char *key, const char *fmt, ...)
{
    d->action = GS_DEDUP_REJECT;
    d->status = S_REJECTED;
    d->reason = reason;
    d->key = key;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->message, sizeof d->message, fmt, ap);
    va_end(ap);
}

static void
s_need(gs_dedup_t *d, unsigned fact)
{
    d->action = GS_DEDUP_NEED;
    d->need = fact;
}

void
gs_dedup_classify(const gs_dedup_facts_t *f, gs_dedup_t *d)
{
    assert(f && d);
    memset(d, 0, sizeof *d);

    /* the record fails gs_record_check (or has no kind, grid or id) */
    if (f->verdict && f->verdict->reason) {
        s_reject(d, f->verdict->reason, f->id, "%s", f->verdict->message);
        return;
    }
    assert(f->id && f->grid);   /* a valid record has both */
    /* its grid is outside the upload's prefixes */
    if (!f->scope_ok) {
        s_reject(d, GRIDSYNC__V1__REASON__REASON_OUT_OF_SCOPE, f->id,
                 "grid %s is outside this device's assignment", f->grid);
        return;
    }
    /* the registry is not empty and the grid is not in it, or not valid today */
    if (!(f->have & GS_DF_REGISTRY)) {
        s_need(d, GS_DF_REGISTRY);
        return;
    }
    if (f->grid_reason) {
        s_reject(d, f->grid_reason, f->id, "%s", f->grid_message ? f->grid_message : "");
        return;
    }

    if (!(f->have & GS_DF_RECORD)) {
        s_need(d, GS_DF_RECORD);
        return;
    }
    if (!f->found) {
        /* id unknown, no natural-key match, base_version > 0 */
        if (f->base > 0) {
            s_reject(d, GRIDSYNC__V1__REASON__REASON_UNKNOWN_RECORD, f->id,
                     "record %s is not stored, so base_version %llu cannot apply; "
                     "send base_version 0 for a new record",
                     f->id, (unsigned long long) f->base);
            return;
        }
        /* id unknown, no natural-key match, base_version = 0 */
        d->action = GS_DEDUP_NEW;
        d->status = S_ACCEPTED;
        d->key = f->id;
        return;
    }
    assert(f->canon && f->stored_grid);
    /* it moves from a grid outside the upload's prefixes: a move touches
     * the old cell too, so the device must cover both */
    if (strcmp(f->stored_grid, f->grid) != 0 && !f->old_scope_ok) {
        s_reject(d, GRIDSYNC__V1__REASON__REASON_OUT_OF_SCOPE, f->canon,
                 "record %s is in grid %s, outside this device's assignment",
                 f->canon, f->stored_grid);
        return;
    }

    if (!(f->have & GS_DF_CONTENT)) {
        s_need(d, GS_DF_CONTENT);
        return;
    }
    if (!f->same) {
        /* base_version > current (id known, or found by natural key) */
        if (f->base > f->version) {
            s_reject(d, GRIDSYNC__V1__REASON__REASON_VERSION_AHEAD, f->canon,
                     "base_version %llu is newer than the stored version %llu",
                     (unsigned long long) f->base, (unsigned long long) f->version);
            return;
        }
        /* content differs, base_version < current: a merge with new content
         * is an edit of the record it merges into, so it passes the same
         * check; a fresh record (base 0) landing on an occupied address
         * must re-base on that record. No edit is silently lost. */
        if (f->base < f->version) {
            d->action = GS_DEDUP_CONFLICT;
            d->status = S_CONFLICT;
            d->key = f->canon;
            d->version = f->version;
            if (f->merged)
                snprintf(d->message, sizeof d->message,
                         "this place already has record %s (version %llu) with other "
                         "content: re-base the edit on that record",
                         f->canon, (unsigned long long) f->version);
            else
                snprintf(d->message, sizeof d->message,
                         "edit based on version %llu, but the record is at version %llu: "
                         "re-base on the current version",
                         (unsigned long long) f->base, (unsigned long long) f->version);
            return;
        }
        /* id known, content differs, its new natural key belongs to another
         * record (a corrected address, a room record moved) */
        if (!f->merged && f->has_natkey) {
            if (!(f->have & GS_DF_NATKEY_OWNER)) {
                s_need(d, GS_DF_NATKEY_OWNER);
                return;
            }
            if (f->natkey_owner) {
                s_reject(d, GRIDSYNC__V1__REASON__REASON_ADDRESS, f->canon,
                         "this address already belongs to record %s", f->natkey_owner);
                return;
            }
        }
    }

    d->key = f->canon;
    d->alias = f->merged;   /* the new id becomes an alias of the record it merged into */
    if (f->same) {
        /* same content and status: UNCHANGED, or MERGED into the record
         * holding the natural key; the current version, no event */
        d->action = GS_DEDUP_KEEP;
        d->status = f->merged ? S_MERGED : S_UNCHANGED;
        d->version = f->version;
    } else {
        /* content differs, base_version = current: a new version */
        d->action = GS_DEDUP_UPDATE;
        d->status = f->merged ? S_MERGED : S_ACCEPTED;
    }
}

/*
 * gs_store_dedup: the dedup table of docs/store.md ("Dedup and versions")
 * as one pure function. Given what is known about one uploaded record and
 * the stored record it meets, it says what the apply does: reject it,
 * answer CONFLICT, answer UNCHANGED or MERGED without a write, store it as
 * a new record, or store a new version of the stored one (and whether the
 * upload's id becomes an alias). It also writes the RecordResult's status,
 * reason, message, key and version.
 *
 * Where it sits: called by the write path (gs_store_apply.c) once per
 * record; it does no I/O, so the table is tested without LMDB
 * (test_store_dedup walks every row). The write path gathers the facts;
 * because some facts cost a lookup (the grid registry, the id and natural
 * key indexes, the packed content, the owner of a new natural key), the
 * classifier asks for them one at a time in the order the table needs
 * them: it answers GS_DEDUP_NEED with the fact it lacks, the caller looks
 * it up, sets the fact's GS_DF_* bit in `have` and calls again. So no
 * lookup is made that the verdict does not depend on.
 *
 * Threads: pure; any thread.
 */
#ifndef GS_STORE_DEDUP_H
#define GS_STORE_DEDUP_H

#include <stddef.h>
#include <stdint.h>

#include "gs_validate.h"

/* Facts that cost a lookup: bits of gs_dedup_facts_t.have. */
enum {
    GS_DF_REGISTRY = 1 << 0,        /* grid_reason / grid_message */
    GS_DF_RECORD = 1 << 1,          /* found .. old_scope_ok */
    GS_DF_CONTENT = 1 << 2,         /* same */
    GS_DF_NATKEY_OWNER = 1 << 3,    /* natkey_owner */
};

/* What is known about one uploaded record. Strings are borrowed. */
typedef struct gs_dedup_facts {
    unsigned have;                  /* GS_DF_* bits: which costly facts are set */
    /* known without a lookup */
    const gs_verdict_t *verdict;    /* validation and shape; reason 0 = valid */
    const char *id;                 /* the upload's record id (NULL when it has none) */
    const char *grid;               /* the upload's grid */
    int scope_ok;                   /* the uploader may write grid */
    uint64_t base;                  /* meta.base_version */
    int has_natkey;                 /* the upload has a natural key */
    /* GS_DF_REGISTRY */
    int grid_reason;                /* 0: the grid may take records; else why not */
    const char *grid_message;       /* and the message for a person */
    /* GS_DF_RECORD: the stored record the id (or an alias) or else the
     * natural key leads to */
    int found;                      /* there is one */
    int merged;                     /* found by the natural key under another id */
    const char *canon;              /* its canonical id */
    const char *stored_grid;        /* its grid */
    uint64_t version;               /* its version */
    int old_scope_ok;               /* the uploader may write stored_grid */
    /* GS_DF_CONTENT */
    int same;                       /* same content hash and status as stored */
    /* GS_DF_NATKEY_OWNER */
    const char *natkey_owner;       /* canonical id of another record that holds the
                                     * upload's natural key; NULL: free, or this one's */
} gs_dedup_facts_t;

/* What to do. */
typedef enum gs_dedup_action {
    GS_DEDUP_NEED,                  /* a fact is missing: look up `need`, call again */
    GS_DEDUP_REJECT,                /* nothing stored: REJECTED with reason */
    GS_DEDUP_CONFLICT,              /* nothing stored: CONFLICT at the stored version */
    GS_DEDUP_KEEP,                  /* no new version: UNCHANGED, or MERGED (+ alias) */
    GS_DEDUP_NEW,                   /* store version 1 under the upload's id */
    GS_DEDUP_UPDATE,                /* store version + 1 of the stored record (+ alias) */
} gs_dedup_action_t;

typedef struct gs_dedup {
    gs_dedup_action_t action;       /* see above */
    unsigned need;                  /* GS_DEDUP_NEED: the GS_DF_* bit to look up */
    int status;                     /* ResultStatus for the result */
    int reason;                     /* Reason (REJECT only; else 0) */
    uint64_t version;               /* result version: the stored one (KEEP, CONFLICT);
                                     * NEW and UPDATE: set by the write, 0 here */
    int alias;                      /* write the upload's id as an alias of `key` */
    const char *key;                /* result record_key: the upload's id or canon */
    char message[GS_MSG_MAX];       /* result message; "" for none */
} gs_dedup_t;

/* Classify one record from f into *out (cleared first). Pure. Asserts
 * f and out; a fact used without its `have` bit set is never read. */
void gs_dedup_classify(const gs_dedup_facts_t *f, gs_dedup_t *out);

#endif

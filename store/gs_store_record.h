/*
 * gs_store_record: the one function that writes a record's current version
 * (gs_record_write) and the lookup of the stored version it replaces
 * (gs_record_lookup), shared by the two write paths: uploads
 * (gs_store_apply.c) and a replica's events (gs_store_replica.c). Every
 * place where a record's current version is written, replaced, moved or
 * removed is inside gs_record_write, so anything that must follow each
 * such change (the record, its ids entry, the person index, the cell
 * counts and the change event) is kept in step there once.
 *
 * Also the record's prepared view made from packed bytes as stored
 * (gs_prepare_packed), for records that come from another store and are
 * neither validated nor normalised again.
 *
 * Where it sits: inside a write transaction (gs_store_txn.h) and its
 * change log (gs_store_log.h); writer thread only, under write_lock.
 */
#ifndef GS_STORE_RECORD_H
#define GS_STORE_RECORD_H

#include "gs_store_int.h"
#include "gs_store_log.h"

/* The stored state of a record. */
typedef struct gs_rec_cur {
    int found;                      /* the record exists */
    char grid[GS_GRID_LEN + 1];     /* its cell */
    char canon[GS_ID_MAX + 1];      /* its canonical id */
    gs_rec_hdr_t hdr;               /* its header */
    gs_ref_t *refs;                 /* its person refs (copied to the arena) */
    MDB_val val;                    /* its value; valid until the next write */
} gs_rec_cur_t;

/* Resolve kind byte kb and id (direct or alias, gs_ids_resolve) to the
 * stored record in t; the person refs are copied into arena. cur->found = 0
 * when unknown. Returns 0 or the transaction's sticky error. */
int gs_record_lookup(gs_txn_t *t, gs_arena_t *arena, char kb, const char *id,
                     gs_rec_cur_t *cur);

/* One change of a record's current version. */
typedef struct gs_rec_write {
    const gs_prepared_t *pp;        /* the new version's view (ready): kind, grid, */
                                    /* status, people, person refs, natural key flag */
    const char *canon;              /* its canonical id */
    const uint8_t *record;          /* the packed Record as stored */
    size_t record_len;              /* its length */
    const uint8_t *hash;            /* its content hash (16 bytes) */
    const uint8_t *digest_entry;    /* the new version's gs_digest_entry when the */
                                    /* caller made it (off the writer thread), or */
                                    /* NULL: made here                            */
    uint64_t version;               /* the version it becomes */
    int op;                         /* 0: an upload's change: UPSERT or VOID, or */
                                    /* MOVE_OUT + MOVE_IN when the grid changed;  */
                                    /* MOVE_OUT: only remove cur from its cell;   */
                                    /* UPSERT, VOID, MOVE_IN: install in pp->grid */
                                    /* (cur, when found, is in that cell)         */
    const char *prev_grid;          /* op MOVE_IN: the cell it left */
    uint64_t back;                  /* the record's previous event seq when cur is */
                                    /* not found (0: none)                        */
    const char *origin_device;      /* the device the change came from */
    const char *origin;             /* a replica's change: the origin store, its */
    uint64_t origin_epoch;          /* epoch and the event's seq there (NULL, 0: */
    uint64_t origin_seq;            /* this store's own change)                  */
} gs_rec_write_t;

/* Write w in log's transaction over cur (NULL or not found: a new record):
 * its change events (the one for the installed version into *seq, or the
 * MOVE_OUT's for a removal), the records entry (put, moved or deleted),
 * the canonical ids entry, the person index (active records only) and the
 * cell counts. The natural key and aliases are the caller's. Returns 0 or
 * the sticky error. */
int gs_record_write(gs_log_t *log, const gs_rec_write_t *w, const gs_rec_cur_t *cur,
                    uint64_t *seq);

/* The prepared view of a packed Record as another store holds it: kind,
 * grid, id, meta, status and people (the checks of an upload's view: a
 * kind, a 15-digit grid and an id, else verdict REQUIRED), then its
 * natural key and person refs as gs_store_prepare computes them (HMACs
 * with this store's key), the bytes themselves (not packed again) and their
 * content hash. No validation and no normalisation: the bytes are stored
 * as they are. rec is those bytes already unpacked (the record of an
 * unpacked ChangeEvent), or NULL to unpack them here. Memory from alloc.
 * Returns 0 (p->ready says whether the view is usable; a record without a
 * kind, grid or id, or bytes that do not decode, leave it 0 with the
 * verdict set), or GS_ENOMEM. */
int gs_prepare_packed(gs_store_t *self, ProtobufCAllocator *alloc, const uint8_t *data,
                      size_t len, const Gridsync__V1__Record *rec, gs_prepared_t *p);

#endif

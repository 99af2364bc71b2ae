/*
 * fuzz_store_apply: arbitrary records through gs_store_apply on a real
 * LMDB store. See gs_fuzz.h.
 *
 * Input: one flags byte (GS_FUZZ_APPLY_*), then a packed
 * gridsync.v1.Upload. The store is made once per process (no_sync, for
 * speed) and keeps everything every input wrote, so later inputs meet
 * earlier records: edits, merges, moves, conflicts and voids happen
 * between inputs as they do between devices. GS_FUZZ_APPLY_REPAIR_IDS
 * fixes ID check characters (and the birth date and sex that must agree
 * with them) after decoding, so mutated records get past validation and
 * into the store's own logic instead of stopping at REASON_ID_CHECK.
 *
 * What must hold for any input:
 *  - gs_store_apply returns 0: nothing a client sends may fail a whole
 *    group commit (other devices' uploads share it);
 *  - every Ack decodes; unless it is a replay of an earlier upload under
 *    the same ids, it has one result per record, with a seq and a version
 *    for each accepted one and a reason for each rejected one;
 *  - the events continue the change log without holes, decode, and carry
 *    the seq and grid they were published under;
 *  - gs_store_verify finds nothing, checked every S_VERIFY_EVERY inputs and
 *    at exit.
 */
#include "gs_fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gs_arena.h"
#include "gs_validate.h"

#define S_VERIFY_EVERY 64

static gs_store_t *s_store;         /* the one store, made at first call */
static uint64_t s_head;             /* its head seq after the last apply */
static uint64_t s_calls;            /* applies so far */

static void
s_report(void *arg, const char *problem)
{
    (void) arg;
    fprintf(stderr, "fuzz_store_apply: verify: %s\n", problem);
}

static void
s_verify(void)
{
    uint64_t problems = 0;
    int rc = gs_store_verify(s_store, s_report, NULL, &problems);
    if (rc) {
        fprintf(stderr, "fuzz_store_apply: gs_store_verify: %s, %llu problems\n",
                gs_store_strerror(rc), (unsigned long long) problems);
        abort();
    }
}

static void
s_close(void)
{
    if (s_store)
        s_verify();
    gs_store_destroy(&s_store);
}

static void
s_init(void)
{
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.no_sync = 1;
    int err = 0;
    s_store = gs_store_new(gs_fuzz_tmpdir(), &o, &err);
    if (!s_store) {
        fprintf(stderr, "fuzz_store_apply: cannot make the store: %s\n", gs_store_strerror(err));
        abort();
    }
    atexit(s_close); /* runs before the directory is removed */
}

static void
s_fail(const char *what)
{
    fprintf(stderr, "fuzz_store_apply: %s\n", what);
    abort();
}

/* Make a resident ID number's check character, birth date and sex agree. */
static void
s_repair_person(Gridsync__V1__Person *p, gs_arena_t *a)
{
    if (!p || p->id_type != GRIDSYNC__V1__ID_TYPE__ID_TYPE_RESIDENT_CARD || !p->id_number ||
        strlen(p->id_number) != 18)
        return;
    char c = gs_idnum_check_char(p->id_number);
    if (!c)
        return;
    p->id_number[17] = c;
    int birth = gs_idnum_birth(p->id_number);
    if (birth > 0) {
        char bd[16];
        snprintf(bd, sizeof bd, "%04d-%02d-%02d", birth / 10000, birth / 100 % 100,
                 birth % 100);
        p->birth_date = gs_arena_strdup(a, bd);
    }
    int sex = gs_idnum_sex(p->id_number);
    if (sex)
        p->sex = (Gridsync__V1__Sex) sex;
}

static void
s_repair(Gridsync__V1__Record *rec, gs_arena_t *a)
{
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD && rec->household) {
        for (size_t i = 0; i < rec->household->n_members; i++)
            s_repair_person(rec->household->members[i], a);
    } else if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_RENTAL && rec->rental) {
        Gridsync__V1__RentalHousing *r = rec->rental;
        if (r->landlord && r->landlord->party_case == GRIDSYNC__V1__LANDLORD__PARTY_PERSON)
            s_repair_person(r->landlord->person, a);
        for (size_t i = 0; i < r->n_leases; i++)
            s_repair_person(r->leases[i]->tenant, a);
    } else if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION && rec->organisation) {
        Gridsync__V1__OrganisationUnit *o = rec->organisation;
        s_repair_person(o->legal_representative, a);
        s_repair_person(o->contact, a);
        for (size_t i = 0; i < o->n_employees; i++)
            s_repair_person(o->employees[i], a);
        /* a mutated USCC of the right length gets its check character back */
        if (o->uscc && strlen(o->uscc) == 18) {
            char *u = gs_arena_strdup(a, o->uscc);
            char c = u ? gs_uscc_check_char(u) : 0;
            if (c) {
                u[17] = c;
                o->uscc = u;
            }
        }
    }
}

/* One upload's answer must be whole and consistent. */
static void
s_check_upload(const gs_upload_t *up, const gs_upload_result_t *res)
{
    Gridsync__V1__Ack *ack = gridsync__v1__ack__unpack(NULL, res->ack_len, res->ack);
    if (!ack)
        s_fail("an Ack does not decode");
    if (res->replayed) {
        /* the stored answer to the first upload under this id, whatever
         * this one holds */
    } else if (ack->reason == 0) {
        if (ack->n_results != up->n_records) {
            fprintf(stderr, "fuzz_store_apply: upload '%s' of '%s': %zu records, %zu results\n",
                    up->upload_id ? up->upload_id : "", up->device_id ? up->device_id : "",
                    up->n_records, ack->n_results);
            s_fail("an Ack without one result per record");
        }
        uint64_t counted = 0;
        for (int k = 1; k < 6; k++)
            counted += res->counts[k];
        if (counted != up->n_records)
            s_fail("result counts do not add up to the records");
        for (size_t i = 0; i < ack->n_results; i++) {
            const Gridsync__V1__RecordResult *r = ack->results[i];
            if (r->index != i)
                s_fail("a result names another record index");
            switch (r->status) {
            case GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED:
                if (r->seq == 0 || r->version == 0)
                    s_fail("an accepted record without seq or version");
                break;
            case GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_MERGED:
                /* a merge with the same content makes no event */
                if (r->version == 0 || !r->record_key || !*r->record_key)
                    s_fail("a merged record without version or record key");
                break;
            case GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_REJECTED:
                if (r->reason == 0 || !r->message || !*r->message)
                    s_fail("a rejected record without a reason and message");
                break;
            case GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_UNCHANGED:
            case GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_CONFLICT:
                break;
            default:
                s_fail("a result without a known status");
            }
        }
    } else if (ack->n_results != 0) {
        s_fail("an Ack with a request-level reason and results");
    }
    gridsync__v1__ack__free_unpacked(ack, NULL);
}

static void
s_check_events(const gs_apply_out_t *out)
{
    if (out->head_seq != s_head + out->n_events)
        s_fail("head_seq did not advance by the number of events");
    for (size_t i = 0; i < out->n_events; i++) {
        const gs_event_out_t *e = &out->events[i];
        if (e->seq != s_head + 1 + i)
            s_fail("event seqs are not consecutive from the old head");
        Gridsync__V1__ChangeEvent *ev = gridsync__v1__change_event__unpack(NULL, e->len, e->data);
        if (!ev)
            s_fail("a change event does not decode");
        if (ev->seq != e->seq || !ev->grid_code || strcmp(ev->grid_code, e->grid) != 0)
            s_fail("a change event disagrees with its topic or seq");
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }
}

int
gs_fuzz_store_apply(const uint8_t *data, size_t len)
{
    if (len < 1)
        return 0;
    if (!s_store)
        s_init();
    int flags = data[0];
    gs_arena_t *arena = gs_arena_new(len * 4 + 4096);
    if (!arena)
        return 0;
    ProtobufCAllocator *alloc = gs_arena_allocator(arena);
    Gridsync__V1__Upload *u = gridsync__v1__upload__unpack(alloc, len - 1, data + 1);
    if (!u) {
        gs_arena_destroy(&arena);
        return 0;
    }
    int64_t now = gs_fuzz_now_ms();
    if (flags & GS_FUZZ_APPLY_REPAIR_IDS)
        for (size_t i = 0; i < u->n_records; i++)
            s_repair(u->records[i], arena);
    gs_prepared_t *prepared = NULL;
    if ((flags & GS_FUZZ_APPLY_PREPARED) &&
        gs_store_prepare(s_store, u->records, u->n_records, alloc, now, &prepared)) {
        gs_arena_destroy(&arena);
        return 0;
    }
    static const char *const scope[] = { GS_FUZZ_SCOPE };
    gs_upload_t ups[2] = { {
        .device_id = u->device_id,
        .upload_id = u->upload_id,
        .records = u->records,
        .n_records = u->n_records,
        .alloc = alloc,
        .prefixes = (flags & GS_FUZZ_APPLY_SCOPED) ? scope : NULL,
        .n_prefixes = (flags & GS_FUZZ_APPLY_SCOPED) ? 1 : 0,
        .prepared = prepared,
        .scope_all = !(flags & GS_FUZZ_APPLY_SCOPED),
    } };
    size_t n = 1;
    if (flags & GS_FUZZ_APPLY_TWICE) {
        char uid[GS_ID_MAX + 8];
        snprintf(uid, sizeof uid, "%.60s.2", u->upload_id ? u->upload_id : "");
        ups[1] = ups[0];
        ups[1].upload_id = gs_arena_strdup(arena, uid);
        n = 2;
    }
    gs_apply_out_t out;
    memset(&out, 0, sizeof out);
    int rc = gs_store_apply(s_store, ups, n, now, &out);
    if (rc) {
        fprintf(stderr, "fuzz_store_apply: gs_store_apply: %s (%s)\n", gs_store_strerror(rc),
                gs_store_errdetail());
        abort();
    }
    if (out.n_uploads != n)
        s_fail("not one result per upload");
    for (size_t i = 0; i < n; i++)
        s_check_upload(&ups[i], &out.uploads[i]);
    s_check_events(&out);
    s_head = out.head_seq;
    gs_apply_out_clear(&out);
    gs_arena_destroy(&arena);
    if (++s_calls % S_VERIFY_EVERY == 0)
        s_verify();
    return 0;
}

#ifdef GS_FUZZ_LIBFUZZER
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return gs_fuzz_store_apply(data, size);
}
#endif

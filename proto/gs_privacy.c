/*
 * gs_privacy: see gs_privacy.h.
 */
#include "gs_privacy.h"

#include <string.h>

static size_t
s_strip_person(Gridsync__V1__Person *p)
{
    if (p && p->restricted) {
        p->restricted = NULL;
        return 1;
    }
    return 0;
}

size_t
gs_record_strip_restricted(Gridsync__V1__Record *rec)
{
    size_t n = 0;
    if (!rec)
        return 0;
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD && rec->household) {
        for (size_t i = 0; i < rec->household->n_members; i++)
            n += s_strip_person(rec->household->members[i]);
    } else if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_RENTAL && rec->rental) {
        Gridsync__V1__RentalHousing *r = rec->rental;
        if (r->landlord && r->landlord->party_case == GRIDSYNC__V1__LANDLORD__PARTY_PERSON)
            n += s_strip_person(r->landlord->person);
        for (size_t i = 0; i < r->n_leases; i++)
            if (r->leases[i])
                n += s_strip_person(r->leases[i]->tenant);
    }
    return n;
}

/* Restricted sub-messages are owned by the unpacked message; we detach
 * them to pack, then put them back so free_unpacked releases them. */
typedef struct {
    Gridsync__V1__Person *person;
    Gridsync__V1__Restricted *restricted;
} s_saved_t;

static size_t
s_detach(Gridsync__V1__Record *rec, s_saved_t *saved, size_t cap)
{
    size_t n = 0;
    if (!rec)
        return 0;
    Gridsync__V1__Person *persons[512];
    size_t np = 0;
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD && rec->household) {
        for (size_t i = 0; i < rec->household->n_members && np < 512; i++)
            persons[np++] = rec->household->members[i];
    } else if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_RENTAL && rec->rental) {
        Gridsync__V1__RentalHousing *r = rec->rental;
        if (r->landlord && r->landlord->party_case == GRIDSYNC__V1__LANDLORD__PARTY_PERSON)
            persons[np++] = r->landlord->person;
        for (size_t i = 0; i < r->n_leases && np < 512; i++)
            if (r->leases[i])
                persons[np++] = r->leases[i]->tenant;
    }
    for (size_t i = 0; i < np && n < cap; i++) {
        if (persons[i] && persons[i]->restricted) {
            saved[n].person = persons[i];
            saved[n].restricted = persons[i]->restricted;
            persons[i]->restricted = NULL;
            n++;
        }
    }
    return n;
}

static void
s_reattach(s_saved_t *saved, size_t n)
{
    for (size_t i = 0; i < n; i++)
        saved[i].person->restricted = saved[i].restricted;
}

int
gs_event_strip_restricted(const uint8_t *data, size_t len, gs_wbuf_t *out)
{
    Gridsync__V1__ChangeEvent *ev = gridsync__v1__change_event__unpack(NULL, len, data);
    if (!ev)
        return -1;
    s_saved_t saved[512];
    size_t n = s_detach(ev->record, saved, 512);
    if (n) {
        size_t need = gridsync__v1__change_event__get_packed_size(ev);
        uint8_t *d = gs_wbuf_reserve(out, need);
        if (d) {
            gridsync__v1__change_event__pack(ev, d);
            out->len += need;
        }
    }
    s_reattach(saved, n);
    gridsync__v1__change_event__free_unpacked(ev, NULL);
    return n ? 1 : 0;
}

int
gs_recbytes_strip_restricted(const uint8_t *data, size_t len, gs_wbuf_t *out)
{
    Gridsync__V1__Record *rec = gridsync__v1__record__unpack(NULL, len, data);
    if (!rec)
        return -1;
    s_saved_t saved[512];
    size_t n = s_detach(rec, saved, 512);
    if (n) {
        size_t need = gridsync__v1__record__get_packed_size(rec);
        uint8_t *d = gs_wbuf_reserve(out, need);
        if (d) {
            gridsync__v1__record__pack(rec, d);
            out->len += need;
        }
    }
    s_reattach(saved, n);
    gridsync__v1__record__free_unpacked(rec, NULL);
    return n ? 1 : 0;
}

static void
s_mask(const char *in, size_t keep_head, size_t keep_tail, char *out, size_t out_size)
{
    if (!out_size)
        return;
    size_t n = in ? strlen(in) : 0;
    if (n + 1 > out_size)
        n = out_size - 1;
    if (keep_head + keep_tail >= n) {
        /* too short to keep that much: keep a quarter at each end */
        keep_head = n / 4;
        keep_tail = n / 4;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (i < keep_head || i >= n - keep_tail) ? in[i] : '*';
    out[n] = 0;
}

void
gs_mask_idnum(const char *id, char *out, size_t out_size)
{
    s_mask(id, 6, 4, out, out_size);
}

void
gs_mask_phone(const char *phone, char *out, size_t out_size)
{
    s_mask(phone, 3, 4, out, out_size);
}

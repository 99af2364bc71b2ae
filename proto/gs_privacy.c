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
    } else if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION && rec->organisation) {
        Gridsync__V1__OrganisationUnit *o = rec->organisation;
        n += s_strip_person(o->legal_representative);
        n += s_strip_person(o->contact);
        for (size_t i = 0; i < o->n_employees; i++)
            n += s_strip_person(o->employees[i]);
    }
    return n;
}

/* ---- Stripping packed bytes -------------------------------------------
 *
 * The feed and sync replies drop Person.restricted from every change event
 * they send to a reader not entitled to it. Unpacking each event into
 * protobuf-c structs (dozens of allocations) and packing it again cost more
 * than everything else the publisher does per event, so the bytes are
 * rewritten on the wire instead: only the messages on a path down to a
 * Person are walked, every other field is copied as it is (runs of them in
 * one copy), and the enclosing length prefixes are recomputed. Stored
 * events are packed by protobuf-c, so the result is byte for byte what
 * unpack, drop and pack would give (test_privacy checks this on generated
 * districts).
 *
 * The field forms (a sync reply's events, a snapshot entry's record) first
 * look for the bytes every encoding of Person.restricted's tag starts with;
 * most events and records have none, and are then copied as they are
 * without the walk.
 *
 * One pass: a message on a path is written behind a length slot as wide as
 * its old length needs; the new length is never larger, so when it needs
 * fewer bytes the body moves down by the difference (rare: only a message
 * that shrinks across 128 or 16,384 bytes). The output never runs ahead of
 * the input (every tag and length is written in at most the bytes it was
 * read from), so room for the input's length is enough.
 */

/* The message types on the paths from a ChangeEvent or a Record down to
 * Person.restricted. */
typedef enum {
    S_NONE,         /* not on a path: copied as it is */
    S_DROP,         /* Person.restricted: left out */
    S_EVENT,
    S_RECORD,
    S_HOUSEHOLD,
    S_RENTAL,
    S_ORG,
    S_LANDLORD,
    S_LEASE,
    S_PERSON
} s_msg_t;

/* What field f of a message of type t holds (field numbers from
 * gridsync.proto). */
static s_msg_t
s_child(s_msg_t t, uint64_t f)
{
    switch (t) {
    case S_EVENT:       /* ChangeEvent.record */
        return f == 10 ? S_RECORD : S_NONE;
    case S_RECORD:      /* Record.household, Record.rental, Record.organisation */
        return f == 1 ? S_HOUSEHOLD : f == 2 ? S_RENTAL : f == 3 ? S_ORG : S_NONE;
    case S_HOUSEHOLD:   /* Household.members */
        return f == 5 ? S_PERSON : S_NONE;
    case S_RENTAL:      /* RentalHousing.landlord, RentalHousing.leases */
        return f == 10 ? S_LANDLORD : f == 11 ? S_LEASE : S_NONE;
    case S_ORG:         /* OrganisationUnit.legal_representative, .contact, .employees */
        return f == 11 || f == 12 || f == 14 ? S_PERSON : S_NONE;
    case S_LANDLORD:    /* Landlord.person */
    case S_LEASE:       /* Lease.tenant */
        return f == 1 ? S_PERSON : S_NONE;
    case S_PERSON:      /* Person.restricted */
        return f == 17 ? S_DROP : S_NONE;
    default:
        return S_NONE;
    }
}

/* gs_wire_varint_get with the one- and two-byte cases (every tag, every
 * length but a whole record's) inline: this loop runs for every field of
 * every event sent. */
static inline int
s_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    const uint8_t *q = *p;
    if (q < end && *q < 0x80) {
        *v = *q;
        *p = q + 1;
        return 0;
    }
    if (end - q >= 2 && q[1] < 0x80) {
        *v = (uint64_t) (q[0] & 0x7f) | (uint64_t) q[1] << 7;
        *p = q + 2;
        return 0;
    }
    return gs_wire_varint_get(p, end, v);
}

/* Write v as a varint at o; returns the byte after it. */
static inline uint8_t *
s_varint_put(uint8_t *o, uint64_t v)
{
    while (v >= 0x80) {
        *o++ = (uint8_t) (v | 0x80);
        v >>= 7;
    }
    *o++ = (uint8_t) v;
    return o;
}

/* Copy the message [p, end) of type t to o without Person.restricted,
 * counting the parts left out in *dropped. o has room for end - p bytes
 * and does not overlap the input. Returns the byte after what was written,
 * or NULL when the bytes are not a well-formed message along the paths. */
static uint8_t *
s_strip(s_msg_t t, const uint8_t *p, const uint8_t *end, uint8_t *o, size_t *dropped)
{
    const uint8_t *run = p;     /* start of the fields still to copy as they are */
    while (p < end) {
        const uint8_t *field = p;
        uint64_t tag;
        if (s_varint(&p, end, &tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
            return NULL;
        s_msg_t c = s_child(t, tag >> 3);
        if (c == S_NONE) {
            if ((tag & 7) == 2) {
                uint64_t n;
                if (s_varint(&p, end, &n) || n > (uint64_t) (end - p))
                    return NULL;
                p += n;
            } else if ((tag & 7) == 0) {
                uint64_t v;
                if (s_varint(&p, end, &v))
                    return NULL;
            } else if (gs_wire_skip(&p, end, (int) (tag & 7))) {
                return NULL;
            }
            continue;
        }
        uint64_t n;
        if ((tag & 7) != 2 || s_varint(&p, end, &n) || n > (uint64_t) (end - p))
            return NULL;
        const uint8_t *body = p;
        p += n;
        if (field > run) {
            memcpy(o, run, (size_t) (field - run));
            o += field - run;
        }
        run = p;
        if (c == S_DROP) {
            (*dropped)++;
            continue;
        }
        o = s_varint_put(o, tag);
        size_t slot = gs_wire_varint_len(n);
        uint8_t *in = s_strip(c, body, p, o + slot, dropped);
        if (!in)
            return NULL;
        size_t inner = (size_t) (in - (o + slot));
        size_t width = gs_wire_varint_len(inner);
        if (width < slot)
            memmove(o + width, o + slot, inner);
        o = s_varint_put(o, inner) + inner;
    }
    if (end > run) {
        memcpy(o, run, (size_t) (end - run));
        o += end - run;
    }
    return o;
}

static int
s_strip_top(s_msg_t t, const uint8_t *data, size_t len, gs_wbuf_t *out)
{
    uint8_t *o = gs_wbuf_reserve(out, len + 1);    /* + 1: never NULL, even for 0 bytes */
    if (!o)
        return -1;
    size_t dropped = 0;
    uint8_t *e = s_strip(t, data, data + len, o, &dropped);
    if (!e)
        return -1;
    if (!dropped)
        return 0;
    out->len += (size_t) (e - o);
    return 1;
}

int
gs_event_strip_restricted(const uint8_t *data, size_t len, gs_wbuf_t *out)
{
    return s_strip_top(S_EVENT, data, len, out);
}

/* Can [p, p + len) hold Person.restricted at any depth? Its tag (field 17,
 * wire type 2) is the varint 138, and every encoding of 138, the shortest
 * or a padded one, starts with the byte 0x8A followed by 0x01 or 0x81:
 * bytes without that pair hold none. Most records have no restricted part,
 * and memchr finds that far faster than the walk. */
static int
s_may_hold_restricted(const uint8_t *p, size_t len)
{
    if (len < 2)
        return 0;
    const uint8_t *last = p + len - 1;     /* a pair starts before it */
    while (p < last && (p = memchr(p, 0x8A, (size_t) (last - p))) != NULL) {
        if ((p[1] & 0x7F) == 0x01)
            return 1;
        p++;
    }
    return 0;
}

/* data (a message of type t) appended to out as the length-delimited field
 * number field, without Person.restricted: gs_event_strip_restricted_field
 * and gs_recbytes_strip_restricted_field. */
static int
s_strip_field(s_msg_t t, gs_wbuf_t *out, uint32_t field, const uint8_t *data, size_t len)
{
    if (!s_may_hold_restricted(data, len)) {
        gs_wbuf_bytes_field(out, field, data, len, 1);
        return out->failed ? -1 : 0;
    }
    uint64_t tag = ((uint64_t) field << 3) | 2;
    size_t slot = gs_wire_varint_len(len);
    uint8_t *o = gs_wbuf_reserve(out, gs_wire_varint_len(tag) + slot + len);
    if (!o)
        return -1;
    o = s_varint_put(o, tag);
    /* the walk reads its bytes one field at a time, each a dependent load:
     * ask for every cache line of the event up front */
    for (size_t i = 0; i < len; i += 64)
        __builtin_prefetch(data + i);
    size_t dropped = 0;
    uint8_t *e = s_strip(t, data, data + len, o + slot, &dropped);
    if (!e)
        return -1;
    size_t n = (size_t) (e - (o + slot));
    if (!dropped && n != len) {
        /* not protobuf-c's encoding (a tag or length wider than it needs):
         * nothing was dropped, so send the bytes as they are */
        memcpy(o + slot, data, len);
        n = len;
    }
    size_t width = gs_wire_varint_len(n);
    if (width < slot)
        memmove(o + width, o + slot, n);
    out->len = (size_t) (s_varint_put(o, n) + n - out->data);
    return dropped ? 1 : 0;
}

int
gs_event_strip_restricted_field(gs_wbuf_t *out, uint32_t field, const uint8_t *data,
                                size_t len)
{
    return s_strip_field(S_EVENT, out, field, data, len);
}

int
gs_recbytes_strip_restricted_field(gs_wbuf_t *out, uint32_t field, const uint8_t *data,
                                   size_t len)
{
    return s_strip_field(S_RECORD, out, field, data, len);
}

int
gs_recbytes_strip_restricted(const uint8_t *data, size_t len, gs_wbuf_t *out)
{
    return s_strip_top(S_RECORD, data, len, out);
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

int
gs_mask_kind(const char *field)
{
    if (!strcmp(field, "id_number") || !strcmp(field, "permit_number"))
        return GS_MASK_IDNUM;
    if (!strcmp(field, "phones") || !strcmp(field, "phone") || !strcmp(field, "contact_phone"))
        return GS_MASK_PHONE;
    return GS_MASK_NONE;
}

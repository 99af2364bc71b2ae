/*
 * gs_prescan: a decode-cost check over raw protobuf bytes. See gs_prescan.h.
 *
 * Where it sits: the broker's frontend calls gs_prescan() on every request
 * frame before gridsync__v1__request__unpack(). The walk mirrors what
 * protobuf_c_message_unpack() does (protobuf-c 1.4): per message it scans
 * every field occurrence into "scanned member" slabs (the first 16 on the
 * stack, then slabs of 32, 64, ... allocated), allocates one array per
 * repeated field and one per message's unknown fields, then each string,
 * bytes value, unknown field's copy and sub-message. Those are the amounts
 * the estimate adds up, each rounded to gs_arena's 16-byte unit.
 */
#include "gs_prescan.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "gs_wire.h"

#define R(name) GRIDSYNC__V1__REASON__REASON_##name

#define S_FIELDS_MAX 64         /* fields per message tracked one by one */
#define S_SLAB_FIRST 16         /* scanned members protobuf-c keeps on its stack */
#define S_SCANNED_SIZE 40       /* sizeof(ScannedMember) on LP64 */
#define S_UNKNOWN_SIZE 24       /* sizeof(ProtobufCMessageUnknownField) on LP64 */
#define S_PATH_MAX 120          /* bytes of field path kept for messages */

/* A repeated field with a documented limit (gs_limits_t). */
typedef struct {
    const ProtobufCMessageDescriptor *msg;  /* message holding the field */
    const char *field;                      /* field name in msg */
    size_t limit_offset;                    /* offsetof(gs_limits_t, ...) */
    const char *what;                       /* plural noun for messages */
    const char *per;                        /* the holder, for messages */
    bool whole;                             /* the limit itself is the cap (request-level) */
} s_list_limit_t;

static const s_list_limit_t s_list_limits[] = {
    { &gridsync__v1__upload__descriptor, "records",
      offsetof(gs_limits_t, max_records), "records", "upload", true },
    { &gridsync__v1__household__descriptor, "members",
      offsetof(gs_limits_t, max_members), "members", "household", false },
    { &gridsync__v1__person__descriptor, "phones",
      offsetof(gs_limits_t, max_phones), "phones", "person", false },
    { &gridsync__v1__rental_housing__descriptor, "leases",
      offsetof(gs_limits_t, max_leases), "leases", "rental unit", false },
    { &gridsync__v1__rental_housing__descriptor, "inspections",
      offsetof(gs_limits_t, max_inspections), "inspections", "rental unit", false },
    { &gridsync__v1__organisation_unit__descriptor, "employees",
      offsetof(gs_limits_t, max_employees), "employees", "organisation", false },
    { &gridsync__v1__organisation_unit__descriptor, "phones",
      offsetof(gs_limits_t, max_phones), "phones", "organisation", false },
    { &gridsync__v1__organisation_unit__descriptor, "inspections",
      offsetof(gs_limits_t, max_inspections), "inspections", "organisation", false },
    { &gridsync__v1__incident__descriptor, "related",
      offsetof(gs_limits_t, max_related), "related records", "incident", false },
    { &gridsync__v1__incident__descriptor, "history",
      offsetof(gs_limits_t, max_transitions), "history entries", "incident", false },
    { &gridsync__v1__inspection__descriptor, "hazards",
      offsetof(gs_limits_t, max_hazards), "hazards", "inspection", false },
};

/* State of one gs_prescan() call. */
typedef struct {
    const gs_limits_t *lim;     /* limits in force */
    const uint8_t *start;       /* first byte of the input, for offsets */
    size_t len;                 /* input length, for messages */
    const char *top;            /* full name of the top message type */
    gs_prescan_stats_t st;      /* what has been counted so far */
    gs_verdict_t *v;            /* where the verdict goes (never NULL) */
    gs_prescan_records_t *recs; /* NULL, or where Upload.records are told */
    const ProtobufCFieldDescriptor *recs_field; /* Upload.records, when recs */
    /* field path of the message being walked, as (name, index) frames:
     * written out only when a message needs it, since nearly every request
     * passes and formatting it for each sub-message cost more than the
     * rest of the walk */
    struct {
        const char *name;
        long index;             /* -1 for a singular field */
    } frames[GS_PRESCAN_DEPTH_MAX + 1];
    size_t depth;               /* frames in use */
} s_scan_t;

static size_t
s_units(size_t n)
{
    if (n == 0)
        n = 1; /* gs_arena hands out 16 bytes even for 0 */
    return (n + 15) & ~(size_t) 15;
}

static int
s_malformed(s_scan_t *s, const uint8_t *at, const char *what)
{
    return gs_verdict_set(s->v, R(MALFORMED),
                          "%zu bytes do not decode as a %s: %s at byte %zu", s->len,
                          s->top, what, (size_t) (at - s->start));
}

static bool
s_packable(ProtobufCType type)
{
    return type != PROTOBUF_C_TYPE_STRING && type != PROTOBUF_C_TYPE_BYTES &&
           type != PROTOBUF_C_TYPE_MESSAGE;
}

/* Elements in a packed run of n bytes at p, or -1 when they do not fit it. */
static long
s_packed_count(ProtobufCType type, const uint8_t *p, size_t n)
{
    switch (type) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return n % 4 ? -1 : (long) (n / 4);
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return n % 8 ? -1 : (long) (n / 8);
    default: {
        /* varints: one per byte without the continuation bit */
        if (n && (p[n - 1] & 0x80))
            return -1;
        long count = 0;
        for (size_t i = 0; i < n; i++)
            count += !(p[i] & 0x80);
        return count;
    }
    }
}

/* The path as text, "records[3].household.members[0]" (cut at
 * S_PATH_MAX - 1 bytes), with ".field" appended when field is not NULL. */
static const char *
s_path(const s_scan_t *s, const char *field, char out[S_PATH_MAX])
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i <= s->depth && len < S_PATH_MAX - 1; i++) {
        const char *name = i < s->depth ? s->frames[i].name : field;
        if (!name)
            break;
        long index = i < s->depth ? s->frames[i].index : -1;
        int n = index >= 0 ? snprintf(out + len, S_PATH_MAX - len, "%s%s[%ld]",
                                      len ? "." : "", name, index)
                           : snprintf(out + len, S_PATH_MAX - len, "%s%s", len ? "." : "",
                                      name);
        if (n < 0)
            break;
        len = (size_t) n < S_PATH_MAX - len ? len + (size_t) n : S_PATH_MAX - 1;
    }
    return out;
}

static const s_list_limit_t *
s_list_limit(const ProtobufCMessageDescriptor *desc, const ProtobufCFieldDescriptor *f)
{
    for (size_t i = 0; i < sizeof s_list_limits / sizeof s_list_limits[0]; i++)
        if (s_list_limits[i].msg == desc && strcmp(s_list_limits[i].field, f->name) == 0)
            return &s_list_limits[i];
    return NULL;
}

/* Check a repeated field's final count against its cap. */
static int
s_list_check(s_scan_t *s, const ProtobufCMessageDescriptor *desc,
             const ProtobufCFieldDescriptor *f, size_t count)
{
    const s_list_limit_t *l = s_list_limit(desc, f);
    if (!l) {
        if (count <= GS_PRESCAN_LIST_MAX)
            return 0;
        char path[S_PATH_MAX];
        return gs_verdict_set(s->v, R(TOO_LARGE), "%s has %zu entries; at most %u in one request",
                              s_path(s, f->name, path), count,
                              (unsigned) GS_PRESCAN_LIST_MAX);
    }
    uint32_t limit;
    memcpy(&limit, (const char *) s->lim + l->limit_offset, sizeof limit);
    uint32_t cap = l->whole || limit > GS_PRESCAN_LIST_MAX ? limit : GS_PRESCAN_LIST_MAX;
    if (count <= cap)
        return 0;
    char path[S_PATH_MAX];
    return gs_verdict_set(s->v, l->whole ? R(TOO_MANY_RECORDS) : R(TOO_LARGE),
                          "%s has %zu %s; at most %u per %s",
                          s->depth ? s_path(s, NULL, path) : l->per, count, l->what, limit,
                          l->per);
}

/* Bytes protobuf-c allocates for scanned-member slabs of n occurrences. */
static size_t
s_slab_cost(size_t n)
{
    size_t cost = 0;
    size_t have = S_SLAB_FIRST, slab = S_SLAB_FIRST * 2;
    while (have < n) {
        cost += s_units(slab * S_SCANNED_SIZE);
        have += slab;
        slab *= 2;
    }
    return cost;
}

static int s_message(s_scan_t *s, const ProtobufCMessageDescriptor *desc, const uint8_t *p,
                     const uint8_t *end, int depth, int *canon);

/* One length-delimited value of known field f (n bytes at p). canon (NULL:
 * not asked) is 1 on entry when the message holding f is canonical so
 * far, and is left 1 only when this value's body is canonical too. */
static int
s_delimited(s_scan_t *s, const ProtobufCFieldDescriptor *f, size_t *count, const uint8_t *p,
            size_t n, int depth, int *canon)
{
    bool repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
    switch (f->type) {
    case PROTOBUF_C_TYPE_MESSAGE: {
        /* s_message refuses a depth past GS_PRESCAN_DEPTH_MAX before it
         * pushes deeper, so the frames never overflow */
        s->frames[s->depth].name = f->name;
        s->frames[s->depth].index = repeated ? (long) *count : -1;
        s->depth++;
        /* an upload's record is judged whether or not what holds it is */
        int is_record = s->recs && f == s->recs_field;
        int sub = 1;
        int rc = s_message(s, f->descriptor, p, p + n, depth + 1,
                           is_record || (canon && *canon) ? &sub : NULL);
        s->depth--;
        if (canon)
            *canon = *canon && sub;
        if (is_record) {
            gs_prescan_records_t *r = s->recs;
            if (r->n < r->max) {
                r->at[r->n] = p;
                r->len[r->n] = n;
                r->canonical[r->n] = (uint8_t) (rc == 0 && sub);
            }
            r->n++;
        }
        (*count)++;
        return rc;
    }
    case PROTOBUF_C_TYPE_STRING: {
        /* protobuf-c hands a string on as a NUL-terminated char *, so the
         * validator would see "ab\0cd" as "ab": only the raw bytes show it */
        const uint8_t *nul = n ? memchr(p, 0, n) : NULL;
        if (nul) {
            char path[S_PATH_MAX];
            s_path(s, f->name, path);
            if (repeated)
                return gs_verdict_set(s->v, R(BAD_ENCODING),
                                      "%s[%zu] has a control character (byte %zu)", path,
                                      *count, (size_t) (nul - p) + 1);
            return gs_verdict_set(s->v, R(BAD_ENCODING), "%s has a control character (byte %zu)",
                                  path, (size_t) (nul - p) + 1);
        }
        s->st.decode_bytes += s_units(n + 1);
        (*count)++;
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES:
        s->st.decode_bytes += s_units(n);
        (*count)++;
        return 0;
    default:
        if (repeated && s_packable(f->type)) {
            long k = s_packed_count(f->type, p, n);
            if (k < 0)
                return s_malformed(s, p, "packed list cut short");
            *count += (size_t) k;
        } else {
            (*count)++; /* protobuf-c refuses it; counted all the same */
        }
        return 0;
    }
}

/* Walk one message of type desc (p..end). canon (NULL: not asked) gets 1
 * when the bytes are in the one form pack writes (gs_wire_is_canonical,
 * from the same steps), else 0; it is only meaningful when 0 is
 * returned. */
static int
s_message(s_scan_t *s, const ProtobufCMessageDescriptor *desc, const uint8_t *p,
          const uint8_t *end, int depth, int *canon)
{
    gs_wire_canon_t cw;         /* the canonical check's state, while asked */
    int ok = canon != NULL;     /* canonical so far (while asked) */
    if (ok)
        gs_wire_canon_init(&cw);
    if (depth > GS_PRESCAN_DEPTH_MAX)
        return s_malformed(s, p, "messages nested too deep");
    if (depth > s->st.depth)
        s->st.depth = depth;
    s->st.messages++;
    s->st.decode_bytes += s_units(desc->sizeof_message);
    size_t counts[S_FIELDS_MAX];            /* occurrences (elements for lists) per field */
    size_t tracked = desc->n_fields < S_FIELDS_MAX ? desc->n_fields : S_FIELDS_MAX;
    memset(counts, 0, tracked * sizeof counts[0]);  /* the only ones ever read */
    size_t spill = 0;                       /* shared by fields past S_FIELDS_MAX (none in
                                             * this schema): costed, not checked */
    size_t occurrences = 0, unknown = 0;
    const ProtobufCFieldDescriptor *prev = NULL;    /* the field met last */
    while (p < end) {
        const uint8_t *at = p;
        uint64_t tag;
        if (*p < 0x80) {
            tag = *p++;     /* a one-byte tag (fields 1..15): most of them */
        } else if (gs_wire_varint_get(&p, end, &tag)) {
            return s_malformed(s, at, "truncated field tag");
        } else if (ok) {
            const uint8_t *q = at;
            ok = !gs_wire_varint_min(&q, end, &tag);
        }
        if (tag >> 3 == 0 || tag >> 3 > 0x1fffffff)
            return s_malformed(s, at, "field number out of range");
        int wt = (int) (tag & 7);
        if (wt == 3 || wt == 4 || wt > 5)
            return s_malformed(s, at, wt < 6 ? "group wire type (not supported)"
                                             : "invalid wire type");
        occurrences++;
        s->st.fields++;
        /* fields mostly come in descriptor order, a list's elements in a
         * run: try the field met last and the one after it before the
         * search (field numbers are unique, so a hit is the same answer) */
        unsigned id = (unsigned) (tag >> 3);
        const ProtobufCFieldDescriptor *f =
            prev && prev->id == id ? prev
            : prev && prev + 1 < desc->fields + desc->n_fields && prev[1].id == id ? prev + 1
            : !prev && desc->n_fields && desc->fields[0].id == id ? desc->fields
            : protobuf_c_message_descriptor_get_field(desc, id);
        if (f)
            prev = f;
        if (ok)
            ok = gs_wire_canon_field(&cw, desc, f);
        const uint8_t *value = p;
        const uint8_t *payload = NULL;      /* wt 2: the bytes after the length */
        uint64_t n = 0;                     /* and how many */
        if (wt == 2 && p < end && *p < 0x80 && *p < end - p) {
            /* a one-byte length that fits (most strings and sub-messages):
             * what gs_wire_skip would find, read once */
            n = *p;
            payload = p + 1;
            p = payload + n;
        } else if (gs_wire_skip(&p, end, wt)) {
            return s_malformed(s, value, wt == 2 ? "length runs past the end"
                                                 : "truncated value");
        }
        if (ok) {
            /* f is known here: gs_wire_canon_field says 0 for unknown */
            const uint8_t *q = value, *body = NULL;
            size_t body_len = 0;
            ok = gs_wire_canon_value(f, wt, &q, end, &body, &body_len);
        }
        if (!f) {
            unknown++;
            s->st.unknown++;
            s->st.decode_bytes += s_units((size_t) (p - value));
            continue;
        }
        size_t idx = (size_t) (f - desc->fields);
        size_t *count = idx < S_FIELDS_MAX ? &counts[idx] : &spill;
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && f->label != PROTOBUF_C_LABEL_REPEATED &&
            idx < S_FIELDS_MAX && *count > 0) {
            /* protobuf-c merges the copies, re-copying every list each time */
            char what[S_PATH_MAX + 64], path[S_PATH_MAX];
            snprintf(what, sizeof what, "%s sent more than once", s_path(s, f->name, path));
            return s_malformed(s, at, what);
        }
        if (wt != 2) {
            (*count)++;
            if (idx >= S_FIELDS_MAX && f->label == PROTOBUF_C_LABEL_REPEATED)
                s->st.decode_bytes += s_units(gs_pb_elem_size(f->type));
            continue;
        }
        if (!payload) {
            gs_wire_varint_get(&value, end, &n); /* cannot fail: skipped above */
            payload = value;
        }
        size_t before = *count;
        int rc = s_delimited(s, f, count, payload, (size_t) n, depth, canon ? &ok : NULL);
        if (rc)
            return rc;
        if (idx >= S_FIELDS_MAX && f->label == PROTOBUF_C_LABEL_REPEATED)
            s->st.decode_bytes += s_units((*count - before) * gs_pb_elem_size(f->type));
    }
    s->st.decode_bytes += s_slab_cost(occurrences);
    if (unknown)
        s->st.decode_bytes += s_units(unknown * S_UNKNOWN_SIZE);
    for (size_t i = 0; i < tracked; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (f->label != PROTOBUF_C_LABEL_REPEATED || counts[i] == 0)
            continue;
        s->st.decode_bytes += s_units(counts[i] * gs_pb_elem_size(f->type));
        int rc = s_list_check(s, desc, f, counts[i]);
        if (rc)
            return rc;
    }
    if (canon)
        *canon = ok;
    return 0;
}

int
gs_prescan(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
           const gs_limits_t *lim, gs_prescan_stats_t *stats, gs_verdict_t *v)
{
    return gs_prescan_records(desc, data, len, lim, stats, v, NULL);
}

int
gs_prescan_records(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                   const gs_limits_t *lim, gs_prescan_stats_t *stats, gs_verdict_t *v,
                   gs_prescan_records_t *recs)
{
    static const uint8_t none[1];
    if (!data)
        data = none; /* an empty frame: no pointer arithmetic on NULL */
    gs_verdict_t scratch;
    s_scan_t s = {
        .lim = lim ? lim : &gs_limits_default,
        .start = data,
        .len = len,
        .top = desc->name,
        .v = v ? v : &scratch,
        .recs = recs,
    };
    if (recs) {
        recs->n = 0;
        s.recs_field = protobuf_c_message_descriptor_get_field_by_name(
            &gridsync__v1__upload__descriptor, "records");
    }
    gs_verdict_clear(s.v);
    int rc = s_message(&s, desc, data, data + len, 1, NULL);
    if (rc == 0 && s.st.decode_bytes > GS_PRESCAN_DECODE_MAX)
        rc = gs_verdict_set(s.v, R(TOO_LARGE),
                            "request would take about %zu MiB to decode, more than %u MiB; "
                            "send fewer records per upload",
                            s.st.decode_bytes >> 20, (unsigned) (GS_PRESCAN_DECODE_MAX >> 20));
    if (stats)
        *stats = s.st;
    return rc;
}

/*
 * gc_render: records and events made ready for a person to read. Decoding
 * into an arena, masking personal data in place (the one place gridctl
 * masks; see gc.h), short names for kinds and operations, addresses, and
 * the indented text form `gridctl get` prints.
 *
 * Masking walks the protobuf-c descriptors rather than naming fields of
 * Person one by one, so a field added to the schema under one of the
 * masked names (gs_mask_kind) or inside Restricted is masked without a
 * change here.
 */
#include "gc.h"

#include <ctype.h>
#include <string.h>

#include "gs_privacy.h"
#include "gs_wire.h"

/* ---- Masking ------------------------------------------------------------------- */

const char *
gc_mask_id(const char *id, int reveal, char *buf, size_t size)
{
    if (reveal)
        snprintf(buf, size, "%s", id ? id : "");
    else
        gs_mask_idnum(id ? id : "", buf, size);
    return buf;
}

const char *
gc_mask_phone(const char *phone, int reveal, char *buf, size_t size)
{
    if (reveal)
        snprintf(buf, size, "%s", phone ? phone : "");
    else
        gs_mask_phone(phone ? phone : "", buf, size);
    return buf;
}

/* Beside gs_mask_kind's kinds: every string of a Restricted message. */
#define S_MASK_ALL 3

/* A masked copy of s in the arena (NULL when out of memory). */
static char *
s_masked(gs_arena_t *a, const char *s, int kind)
{
    if (kind == S_MASK_ALL)
        return gs_arena_strdup(a, "***");
    size_t n = strlen(s) + 1;
    char *m = gs_arena_alloc(a, n);
    if (!m)
        return NULL;
    if (kind == GS_MASK_IDNUM)
        gs_mask_idnum(s, m, n);
    else
        gs_mask_phone(s, m, n);
    return m;
}

/* Is field f of message base the member its oneof holds (or not in a
 * oneof)? Members of a oneof share storage, so only the chosen one may be
 * read. */
static int
s_field_present(const char *base, const ProtobufCFieldDescriptor *f)
{
    if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
        return 1;
    return *(const uint32_t *) (base + f->quantifier_offset) == f->id;
}

/* Mask m in place. restricted: m is (inside) a Restricted message, whose
 * every non-empty string becomes "***". Returns 0, or -1 out of memory. */
static int
s_mask_msg(ProtobufCMessage *m, gs_arena_t *a, int restricted)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    char *base = (char *) m;
    if (d == &gridsync__v1__restricted__descriptor)
        restricted = 1;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!s_field_present(base, f))
            continue;
        void *p = base + f->offset;
        size_t n = 1;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            n = *(const size_t *) (base + f->quantifier_offset);
            p = *(void **) p;
            if (!n || !p)
                continue;
        }
        if (f->type == PROTOBUF_C_TYPE_STRING) {
            int kind = restricted ? S_MASK_ALL : gs_mask_kind(f->name);
            if (!kind)
                continue;
            char **sv = p;
            for (size_t k = 0; k < n; k++) {
                if (!sv[k] || !*sv[k])
                    continue;
                char *ms = s_masked(a, sv[k], kind);
                if (!ms)
                    return -1;
                sv[k] = ms;
            }
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            ProtobufCMessage **mv = p;
            for (size_t k = 0; k < n; k++)
                if (mv[k] && s_mask_msg(mv[k], a, restricted))
                    return -1;
        } else if (restricted && f->type == PROTOBUF_C_TYPE_BYTES) {
            /* no bytes fields today; never show one from the restricted part */
            ProtobufCBinaryData *bv = p;
            for (size_t k = 0; k < n; k++)
                bv[k].len = 0;
        }
    }
    return 0;
}

Gridsync__V1__Record *
gc_record_load(const uint8_t *data, size_t len, gs_arena_t *a, int reveal)
{
    Gridsync__V1__Record *r = gridsync__v1__record__unpack(gs_arena_allocator(a), len, data);
    if (!r)
        return NULL;
    if (!reveal && s_mask_msg(&r->base, a, 0))
        return NULL;
    return r;
}

Gridsync__V1__ChangeEvent *
gc_event_load(const uint8_t *data, size_t len, gs_arena_t *a, int reveal)
{
    Gridsync__V1__ChangeEvent *ev =
        gridsync__v1__change_event__unpack(gs_arena_allocator(a), len, data);
    if (!ev)
        return NULL;
    if (!reveal && s_mask_msg(&ev->base, a, 0))
        return NULL;
    return ev;
}

/* ---- Names and summaries ---------------------------------------------------------- */

const char *
gc_kind_name(int kind)
{
    const char *name = gs_render_kind_name(kind);
    return name ? name : "unknown";
}

const char *
gc_op_name(int op)
{
    const char *name = gs_render_op_name(op);
    return name ? name : "unknown";
}

const char *
gc_status_name(int status)
{
    return status == GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_VOID ? "void" : "active";
}

static const char *
s_room(const Gridsync__V1__RoomAddress *ra, char *buf, size_t size)
{
    if (!ra) {
        snprintf(buf, size, "-");
        return buf;
    }
    snprintf(buf, size, "building %s unit %s floor %s room %s",
             ra->building && *ra->building ? ra->building : "-",
             ra->unit && *ra->unit ? ra->unit : "-", ra->floor && *ra->floor ? ra->floor : "-",
             ra->room && *ra->room ? ra->room : "-");
    return buf;
}

const char *
gc_record_address(const Gridsync__V1__Record *r, char *buf, size_t size)
{
    const char *text = NULL, *code = NULL;
    const Gridsync__V1__RoomAddress *room = NULL;
    if (r && r->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD && r->household) {
        text = r->household->address;
        code = r->household->address_code;
        room = r->household->room;
    } else if (r && r->body_case == GRIDSYNC__V1__RECORD__BODY_RENTAL && r->rental) {
        text = r->rental->address;
        code = r->rental->address_code;
        room = r->rental->room;
    } else if (r && r->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION && r->organisation) {
        text = r->organisation->address;
        code = r->organisation->address_code;
        room = r->organisation->room;
    } else if (r && r->body_case == GRIDSYNC__V1__RECORD__BODY_INCIDENT && r->incident) {
        text = r->incident->address;
        code = r->incident->address_code;
        room = r->incident->room;
    }
    if (text && *text)
        snprintf(buf, size, "%s", text);
    else if (code && *code)
        snprintf(buf, size, "%s", code);
    else
        s_room(room, buf, size);
    return buf;
}

size_t
gc_record_people(const Gridsync__V1__Record *r)
{
    if (r && r->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD && r->household)
        return r->household->n_members;
    if (r && r->body_case == GRIDSYNC__V1__RECORD__BODY_RENTAL && r->rental)
        return r->rental->n_leases;
    if (r && r->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION && r->organisation)
        return r->organisation->n_employees;
    return 0;
}

/* ---- Text form ------------------------------------------------------------------- */

/* An enum value without its type's prefix, lower case: SEX_FEMALE ->
 * "female", ID_TYPE_HK_MACAO_PERMIT -> "hk_macao_permit". */
const char *
gc_enum_name(const ProtobufCEnumDescriptor *ed, int v, char *buf, size_t size)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(ed, v);
    if (!ev) {
        snprintf(buf, size, "%d", v); /* a value newer than this schema */
        return buf;
    }
    /* the prefix all of the type's values share, up to an underscore */
    size_t pre = 0;
    if (ed->n_values > 1) {
        const char *a = ed->values[0].name, *b = ed->values[1].name;
        size_t i = 0;
        while (a[i] && a[i] == b[i])
            i++;
        while (i > 0 && a[i - 1] != '_')
            i--;
        pre = i;
    }
    const char *s = ev->name + (strlen(ev->name) > pre ? pre : 0);
    size_t o = 0;
    for (; *s && o + 1 < size; s++)
        buf[o++] = (char) tolower((unsigned char) *s);
    buf[o] = 0;
    return buf;
}

/* Is a singular field at its default (and so not printed)? As in any
 * proto3 rendering, except that RecordStatus 0 is ACTIVE: worth printing in
 * metadata. */
static int
s_is_default(const ProtobufCFieldDescriptor *f, const void *p)
{
    if (f->type == PROTOBUF_C_TYPE_ENUM && f->descriptor == &gridsync__v1__record_status__descriptor)
        return 0;
    return gs_pb_is_default(f, p);
}

/* One scalar value as text. */
static void
s_text_scalar(FILE *f, const ProtobufCFieldDescriptor *fd, const void *p)
{
    char buf[64];
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        fprintf(f, "%d", *(const int32_t *) p);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        fprintf(f, "%u", *(const uint32_t *) p);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: {
        int64_t v = *(const int64_t *) p;
        size_t nl = strlen(fd->name);
        if (nl > 3 && !strcmp(fd->name + nl - 3, "_at"))
            fprintf(f, "%s (%lld)", gc_time_local(v, buf, sizeof buf), (long long) v);
        else
            fprintf(f, "%lld", (long long) v);
        break;
    }
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        fprintf(f, "%llu", (unsigned long long) *(const uint64_t *) p);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        fprintf(f, "%g", (double) *(const float *) p);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        fprintf(f, "%g", *(const double *) p);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        fputs(*(const protobuf_c_boolean *) p ? "yes" : "no", f);
        break;
    case PROTOBUF_C_TYPE_ENUM:
        gc_enum_name(fd->descriptor, *(const int *) p, buf, sizeof buf);
        fputs(buf, f);
        break;
    case PROTOBUF_C_TYPE_STRING:
        fputs(*(char *const *) p ? *(char *const *) p : "", f);
        break;
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *d = p;
        for (size_t i = 0; i < d->len; i++)
            fprintf(f, "%02x", d->data[i]);
        break;
    }
    default:
        break;
    }
}

void
gc_text_msg(FILE *f, const ProtobufCMessage *m, int indent)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *) m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (!s_field_present(base, fd))
            continue;
        const void *p = base + fd->offset;
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *) (base + fd->quantifier_offset);
            const char *arr = *(char *const *) p;
            if (!n || !arr)
                continue;
            size_t es = gs_pb_elem_size(fd->type);
            if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
                fprintf(f, "%*s%s (%zu):\n", indent, "", fd->name, n);
                for (size_t k = 0; k < n; k++) {
                    const ProtobufCMessage *sub = *(ProtobufCMessage *const *) (arr + k * es);
                    fprintf(f, "%*s[%zu]\n", indent + 2, "", k + 1);
                    if (sub)
                        gc_text_msg(f, sub, indent + 4);
                }
            } else {
                fprintf(f, "%*s%s: ", indent, "", fd->name);
                for (size_t k = 0; k < n; k++) {
                    if (k)
                        fputs(", ", f);
                    s_text_scalar(f, fd, arr + k * es);
                }
                fputc('\n', f);
            }
            continue;
        }
        if (!(fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && s_is_default(fd, p))
            continue;
        if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
            const ProtobufCMessage *sub = *(ProtobufCMessage *const *) p;
            if (!sub)
                continue;
            fprintf(f, "%*s%s:\n", indent, "", fd->name);
            gc_text_msg(f, sub, indent + 2);
            continue;
        }
        fprintf(f, "%*s%s: ", indent, "", fd->name);
        s_text_scalar(f, fd, p);
        fputc('\n', f);
    }
}

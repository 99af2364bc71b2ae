/*
 * gs_jsonl: see gs_jsonl.h. Walks protobuf-c descriptors, so a field added
 * to the schema shows up in the output without a change here.
 */
#include "gs_jsonl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gs_privacy.h"
#include "gs_wire.h"

void
gs_jbuf_free(gs_jbuf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static int
s_reserve(gs_jbuf_t *b, size_t more)
{
    if (b->failed)
        return -1;
    if (b->len + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        b->failed = 1;
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

static void
s_put(gs_jbuf_t *b, const char *s, size_t n)
{
    if (s_reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

static void
s_puts(gs_jbuf_t *b, const char *s)
{
    s_put(b, s, strlen(s));
}

static void s_putf(gs_jbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
s_putf(gs_jbuf_t *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        s_put(b, tmp, (size_t) n < sizeof tmp ? (size_t) n : sizeof tmp - 1);
}

/* A JSON string: quotes, backslashes and control characters escaped;
 * UTF-8 passes through (the broker only stores valid UTF-8). */
static void
s_string(gs_jbuf_t *b, const char *s)
{
    s_put(b, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char) *s;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        s_put(b, run, (size_t) (s - run));
        if (c == '"')
            s_puts(b, "\\\"");
        else if (c == '\\')
            s_puts(b, "\\\\");
        else if (c == '\n')
            s_puts(b, "\\n");
        else if (c == '\t')
            s_puts(b, "\\t");
        else
            s_putf(b, "\\u%04x", c);
        run = s + 1;
    }
    s_put(b, run, (size_t) (s - run));
    s_put(b, "\"", 1);
}

static void
s_key(gs_jbuf_t *b, const char *name, int *first)
{
    if (!*first)
        s_put(b, ",", 1);
    *first = 0;
    s_string(b, name);
    s_put(b, ":", 1);
}

/* Which masking a field's strings get: 0 none, 1 ID number, 2 phone. */
static int
s_mask_kind(const char *field)
{
    if (!strcmp(field, "id_number") || !strcmp(field, "permit_number"))
        return 1;
    if (!strcmp(field, "phones") || !strcmp(field, "phone") || !strcmp(field, "contact_phone"))
        return 2;
    return 0;
}

static void
s_double(gs_jbuf_t *b, double v)
{
    if (!isfinite(v)) {
        s_puts(b, "null"); /* JSON has no NaN or infinity */
        return;
    }
    /* the shortest of 15 or 17 digits that reads back as the same value */
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.15g", v);
    if (strtod(tmp, NULL) != v)
        snprintf(tmp, sizeof tmp, "%.17g", v);
    s_puts(b, tmp);
}

/* One value of field f stored at p (an element, for repeated fields). */
static void
s_value(gs_jbuf_t *b, const ProtobufCFieldDescriptor *f, const void *p, int reveal)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        s_putf(b, "%d", *(const int32_t *) p);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        s_putf(b, "%u", *(const uint32_t *) p);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        s_putf(b, "%lld", (long long) *(const int64_t *) p);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        s_putf(b, "%llu", (unsigned long long) *(const uint64_t *) p);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        s_double(b, *(const float *) p);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        s_double(b, *(const double *) p);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        s_puts(b, *(const protobuf_c_boolean *) p ? "true" : "false");
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *) p;
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        if (ev)
            s_string(b, ev->name);
        else
            s_putf(b, "%d", v); /* a value newer than this schema */
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *) p;
        int mk = reveal ? 0 : s_mask_kind(f->name);
        if (!s) {
            s_string(b, "");
        } else if (mk) {
            size_t n = strlen(s) + 1;
            char stack[128];
            char *m = n <= sizeof stack ? stack : malloc(n);
            if (!m) {
                b->failed = 1;
                return;
            }
            if (mk == 1)
                gs_mask_idnum(s, m, n);
            else
                gs_mask_phone(s, m, n);
            s_string(b, m);
            if (m != stack)
                free(m);
        } else {
            s_string(b, s);
        }
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *d = p;
        s_put(b, "\"", 1);
        for (size_t i = 0; i < d->len; i++)
            s_putf(b, "%02x", d->data[i]);
        s_put(b, "\"", 1);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *) p;
        if (m)
            gs_jsonl_message(b, m, reveal);
        else
            s_puts(b, "null");
        break;
    }
    }
}


int
gs_jsonl_message(gs_jbuf_t *b, const ProtobufCMessage *m, int reveal)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *) m;
    int first = 1;
    s_put(b, "{", 1);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *p = base + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *) (base + f->quantifier_offset);
            if (n == 0)
                continue;
            const char *arr = *(char *const *) p;
            size_t es = gs_pb_elem_size(f->type);
            s_key(b, f->name, &first);
            s_put(b, "[", 1);
            for (size_t j = 0; j < n; j++) {
                if (j)
                    s_put(b, ",", 1);
                s_value(b, f, arr + j * es, reveal);
            }
            s_put(b, "]", 1);
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            /* a oneof member is written when it is the chosen one, even at
             * its default value */
            if (*(const uint32_t *) (base + f->quantifier_offset) != f->id)
                continue;
        } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
                   f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING) {
            /* explicit presence (proto3 "optional"): written when set */
            if (!*(const protobuf_c_boolean *) (base + f->quantifier_offset))
                continue;
        } else if (gs_pb_is_default(f, p)) {
            continue;
        }
        s_key(b, f->name, &first);
        s_value(b, f, p, reveal);
    }
    s_put(b, "}", 1);
    return b->failed ? -1 : 0;
}

static const char *
s_kind_name(int kind)
{
    switch (kind) {
    case GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD: return "household";
    case GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_RENTAL: return "rental";
    default: return "unspecified";
    }
}

static const char *
s_op_name(int op)
{
    switch (op) {
    case GRIDSYNC__V1__OPERATION__OPERATION_UPSERT: return "upsert";
    case GRIDSYNC__V1__OPERATION__OPERATION_VOID: return "void";
    case GRIDSYNC__V1__OPERATION__OPERATION_MOVE_OUT: return "move_out";
    case GRIDSYNC__V1__OPERATION__OPERATION_MOVE_IN: return "move_in";
    default: return "unspecified";
    }
}

int
gs_jsonl_event(gs_jbuf_t *b, const Gridsync__V1__ChangeEvent *ev, int reveal)
{
    s_putf(b, "{\"seq\":%llu,\"grid\":", (unsigned long long) ev->seq);
    s_string(b, ev->grid_code ? ev->grid_code : "");
    s_puts(b, ",\"kind\":");
    s_string(b, s_kind_name(ev->kind));
    s_puts(b, ",\"op\":");
    s_string(b, s_op_name(ev->op));
    s_putf(b, ",\"version\":%llu,\"record_key\":", (unsigned long long) ev->version);
    s_string(b, ev->record_key ? ev->record_key : "");
    s_puts(b, ",\"origin_device\":");
    s_string(b, ev->origin_device ? ev->origin_device : "");
    s_putf(b, ",\"committed_at\":%lld", (long long) ev->committed_at);
    if (ev->previous_grid_code && *ev->previous_grid_code) {
        s_puts(b, ",\"previous_grid_code\":");
        s_string(b, ev->previous_grid_code);
    }
    const Gridsync__V1__Record *r = ev->record;
    const ProtobufCMessage *body = NULL;
    if (r && r->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD && r->household)
        body = &r->household->base;
    else if (r && r->body_case == GRIDSYNC__V1__RECORD__BODY_RENTAL && r->rental)
        body = &r->rental->base;
    if (body) {
        s_puts(b, ",\"record\":");
        gs_jsonl_message(b, body, reveal);
    }
    s_puts(b, "}\n");
    return b->failed ? -1 : 0;
}

/*
 * gs_render: see gs_render.h. Messages are written by walking their
 * protobuf-c descriptors, so a field added to the schema shows up in the
 * output without a change here.
 */
#include "gs_render.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "gs_privacy.h"

/* ---- Output ------------------------------------------------------------------ */

static void
s_put(gs_json_t *j, const char *s, size_t n)
{
    if (j->f)
        fwrite(s, 1, n, j->f);
    else
        gs_wbuf_put(j->buf, s, n);
}

static void
s_puts(gs_json_t *j, const char *s)
{
    s_put(j, s, strlen(s));
}

static void s_putf(gs_json_t *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
s_putf(gs_json_t *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (j->f)
        vfprintf(j->f, fmt, ap);
    else
        gs_wbuf_vprintf(j->buf, fmt, ap);
    va_end(ap);
}

/* A JSON string: quotes, backslashes and control characters escaped;
 * UTF-8 passes through (the broker only stores valid UTF-8). */
static void
s_string(gs_json_t *j, const char *s)
{
    s_put(j, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char) *s;
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
            continue;
        s_put(j, run, (size_t) (s - run));
        if (c == '"')
            s_puts(j, "\\\"");
        else if (c == '\\')
            s_puts(j, "\\\\");
        else if (c == '\n')
            s_puts(j, "\\n");
        else if (c == '\t')
            s_puts(j, "\\t");
        else
            s_putf(j, "\\u%04x", c);
        run = s + 1;
    }
    s_put(j, run, (size_t) (s - run));
    s_put(j, "\"", 1);
}

/* ---- The writer --------------------------------------------------------------- */

void
gs_json_init_file(gs_json_t *j, FILE *f)
{
    memset(j, 0, sizeof *j);
    j->f = f;
}

void
gs_json_init_buf(gs_json_t *j, gs_wbuf_t *b)
{
    memset(j, 0, sizeof *j);
    j->buf = b;
}

int
gs_json_failed(const gs_json_t *j)
{
    return j->f ? ferror(j->f) != 0 : j->buf->failed != 0;
}

/* Comma before a value in an array (in objects the key wrote it). */
static void
s_value(gs_json_t *j)
{
    if (j->after_key) {
        j->after_key = 0;
        return;
    }
    if (j->depth > 0 && j->depth <= GS_JSON_DEPTH && j->count[j->depth - 1]++)
        s_put(j, ",", 1);
}

static void
s_open(gs_json_t *j, char open, char close)
{
    s_value(j);
    s_put(j, &open, 1);
    if (j->depth < GS_JSON_DEPTH) {
        j->close[j->depth] = close;
        j->count[j->depth] = 0;
    }
    j->depth++;
}

void
gs_json_obj(gs_json_t *j)
{
    s_open(j, '{', '}');
}

void
gs_json_arr(gs_json_t *j)
{
    s_open(j, '[', ']');
}

void
gs_json_end(gs_json_t *j)
{
    if (j->depth <= 0)
        return;
    j->depth--;
    s_put(j, j->depth < GS_JSON_DEPTH ? &j->close[j->depth] : "}", 1);
    if (j->depth == 0)
        s_put(j, "\n", 1);
}

void
gs_json_key(gs_json_t *j, const char *key)
{
    if (j->depth > 0 && j->depth <= GS_JSON_DEPTH && j->count[j->depth - 1]++)
        s_put(j, ",", 1);
    s_string(j, key);
    s_put(j, ":", 1);
    j->after_key = 1;
}

void
gs_json_str(gs_json_t *j, const char *s)
{
    s_value(j);
    if (s)
        s_string(j, s);
    else
        s_puts(j, "null");
}

void
gs_json_u64(gs_json_t *j, uint64_t v)
{
    s_value(j);
    s_putf(j, "%llu", (unsigned long long) v);
}

void
gs_json_i64(gs_json_t *j, int64_t v)
{
    s_value(j);
    s_putf(j, "%lld", (long long) v);
}

void
gs_json_dbl(gs_json_t *j, double v)
{
    s_value(j);
    if (!isfinite(v)) {
        s_puts(j, "null");
        return;
    }
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.15g", v);
    if (strtod(tmp, NULL) != v)
        snprintf(tmp, sizeof tmp, "%.17g", v);
    s_puts(j, tmp);
}

void
gs_json_figure(gs_json_t *j, double v)
{
    s_value(j);
    if (!isfinite(v))
        s_puts(j, "null");
    else
        s_putf(j, "%.6g", v);
}

void
gs_json_bool(gs_json_t *j, int v)
{
    s_value(j);
    s_puts(j, v ? "true" : "false");
}

void
gs_json_null(gs_json_t *j)
{
    s_value(j);
    s_puts(j, "null");
}

/* ---- Messages ------------------------------------------------------------------ */

/* A string of field f, masked unless reveal. */
static void
s_field_string(gs_json_t *j, const ProtobufCFieldDescriptor *f, const char *s, int reveal)
{
    int mk = reveal ? GS_MASK_NONE : gs_mask_kind(f->name);
    if (!s || mk == GS_MASK_NONE) {
        gs_json_str(j, s ? s : "");
        return;
    }
    size_t n = strlen(s) + 1;
    char stack[128];
    char *m = n <= sizeof stack ? stack : malloc(n);
    if (!m) {
        /* a stream has no sticky flag: leave a null rather than the plain text */
        if (j->buf)
            j->buf->failed = 1;
        gs_json_null(j);
        return;
    }
    if (mk == GS_MASK_IDNUM)
        gs_mask_idnum(s, m, n);
    else
        gs_mask_phone(s, m, n);
    gs_json_str(j, m);
    if (m != stack)
        free(m);
}

/* One value of field f stored at p (an element, for repeated fields). */
static void
s_field_value(gs_json_t *j, const ProtobufCFieldDescriptor *f, const void *p, int reveal)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        gs_json_i64(j, *(const int32_t *) p);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        gs_json_u64(j, *(const uint32_t *) p);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        gs_json_i64(j, *(const int64_t *) p);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        gs_json_u64(j, *(const uint64_t *) p);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        gs_json_dbl(j, *(const float *) p);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        gs_json_dbl(j, *(const double *) p);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        gs_json_bool(j, *(const protobuf_c_boolean *) p);
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *) p;
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        if (ev)
            gs_json_str(j, ev->name);
        else
            gs_json_i64(j, v); /* a value newer than this schema */
        break;
    }
    case PROTOBUF_C_TYPE_STRING:
        s_field_string(j, f, *(char *const *) p, reveal);
        break;
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *d = p;
        s_value(j);
        s_put(j, "\"", 1);
        for (size_t i = 0; i < d->len; i++)
            s_putf(j, "%02x", d->data[i]);
        s_put(j, "\"", 1);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *) p;
        if (m)
            gs_json_msg(j, m, reveal);
        else
            gs_json_null(j);
        break;
    }
    }
}

void
gs_json_msg(gs_json_t *j, const ProtobufCMessage *m, int reveal)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *) m;
    gs_json_obj(j);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *p = base + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *) (base + f->quantifier_offset);
            if (n == 0)
                continue;
            const char *arr = *(char *const *) p;
            size_t es = gs_pb_elem_size(f->type);
            gs_json_key(j, f->name);
            gs_json_arr(j);
            for (size_t k = 0; k < n; k++)
                s_field_value(j, f, arr + k * es, reveal);
            gs_json_end(j);
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
        gs_json_key(j, f->name);
        s_field_value(j, f, p, reveal);
    }
    gs_json_end(j);
}

/* ---- Events and names ------------------------------------------------------------- */

const char *
gs_render_kind_name(int kind)
{
    switch (kind) {
    case GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD: return "household";
    case GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_RENTAL: return "rental";
    case GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_ORGANISATION: return "organisation";
    case GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT: return "incident";
    default: return NULL;
    }
}

const char *
gs_render_op_name(int op)
{
    switch (op) {
    case GRIDSYNC__V1__OPERATION__OPERATION_UPSERT: return "upsert";
    case GRIDSYNC__V1__OPERATION__OPERATION_VOID: return "void";
    case GRIDSYNC__V1__OPERATION__OPERATION_MOVE_OUT: return "move_out";
    case GRIDSYNC__V1__OPERATION__OPERATION_MOVE_IN: return "move_in";
    default: return NULL;
    }
}

const ProtobufCMessage *
gs_render_record_body(const Gridsync__V1__Record *r)
{
    if (r && r->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD && r->household)
        return &r->household->base;
    if (r && r->body_case == GRIDSYNC__V1__RECORD__BODY_RENTAL && r->rental)
        return &r->rental->base;
    if (r && r->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION && r->organisation)
        return &r->organisation->base;
    if (r && r->body_case == GRIDSYNC__V1__RECORD__BODY_INCIDENT && r->incident)
        return &r->incident->base;
    return NULL;
}

void
gs_json_event(gs_json_t *j, const Gridsync__V1__ChangeEvent *ev, int reveal)
{
    const char *kind = gs_render_kind_name(ev->kind), *op = gs_render_op_name(ev->op);
    gs_json_obj(j);
    gs_json_key(j, "seq");
    gs_json_u64(j, ev->seq);
    gs_json_key(j, "grid");
    gs_json_str(j, ev->grid_code ? ev->grid_code : "");
    gs_json_key(j, "kind");
    gs_json_str(j, kind ? kind : "unspecified");
    gs_json_key(j, "op");
    gs_json_str(j, op ? op : "unspecified");
    gs_json_key(j, "version");
    gs_json_u64(j, ev->version);
    gs_json_key(j, "record_key");
    gs_json_str(j, ev->record_key ? ev->record_key : "");
    gs_json_key(j, "origin_device");
    gs_json_str(j, ev->origin_device ? ev->origin_device : "");
    gs_json_key(j, "committed_at");
    gs_json_i64(j, ev->committed_at);
    if (ev->previous_grid_code && *ev->previous_grid_code) {
        gs_json_key(j, "previous_grid_code");
        gs_json_str(j, ev->previous_grid_code);
    }
    const ProtobufCMessage *body = gs_render_record_body(ev->record);
    if (body) {
        gs_json_key(j, "record");
        gs_json_msg(j, body, reveal);
    }
    gs_json_end(j);
}

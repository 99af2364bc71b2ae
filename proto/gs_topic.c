/*
 * gs_topic: the live feed's topics. See gs_topic.h.
 */
#include "gs_topic.h"

#include <stdio.h>
#include <string.h>

#include "gs_wire.h"

/* Field numbers read from a packed ChangeEvent (gridsync.proto). */
#define S_EVENT_KIND 3              /* ChangeEvent.kind */
#define S_EVENT_RECORD 10           /* ChangeEvent.record */
#define S_RECORD_INCIDENT 4         /* Record.incident */
#define S_INCIDENT_CATEGORY 7       /* Incident.category */

static int
s_is_code_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int
s_prefix_set(gs_topic_t *out, const char *p, size_t len)
{
    if (len > GS_GRID_LEN)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (p[i] < '0' || p[i] > '9')
            return -1;
    memcpy(out->prefix, p, len);
    out->prefix[len] = 0;
    out->level = gs_level_of_len(len);
    return out->level < 0 ? -1 : 0;
}

int
gs_topic_parse(const void *topic, size_t len, gs_topic_t *out)
{
    const char *t = topic;
    memset(out, 0, sizeof *out);
    if (len == 0 || t[0] != GS_TOPIC_INCIDENT[0])
        return s_prefix_set(out, t, len);
    const char *sep = memchr(t, GS_TOPIC_SEP, len);
    if (!sep)
        return -1;
    size_t clen = (size_t) (sep - t) - 1;
    if (clen == 0 || clen > GS_INCIDENT_CATEGORY_MAX)
        return -1;
    for (size_t i = 0; i < clen; i++)
        if (!s_is_code_char((unsigned char) t[1 + i]))
            return -1;
    memcpy(out->category, t + 1, clen);
    out->category[clen] = 0;
    out->incident = 1;
    return s_prefix_set(out, sep + 1, len - clen - 2);
}

int
gs_topic_incident(char *out, size_t size, const char *category, const char *prefix)
{
    int n = snprintf(out, size, "%s%s%c%s", GS_TOPIC_INCIDENT, category, GS_TOPIC_SEP, prefix);
    gs_topic_t t;
    if (n < 0 || (size_t) n >= size || gs_topic_parse(out, (size_t) n, &t) ||
        strcmp(t.category, category) != 0)
        return -1;
    return n;
}

/* The last length-delimited field number field at the top level of the
 * message in [p, end): 0 with *val and *n set, -1 when there is none or
 * the bytes are malformed before it. */
static int
s_field_bytes(const uint8_t *p, const uint8_t *end, uint32_t field, const uint8_t **val,
              size_t *n)
{
    int found = -1;
    while (p < end) {
        uint64_t key, v;
        if (gs_wire_varint_get(&p, end, &key))
            return found;
        int wt = (int) (key & 7);
        if ((key >> 3) == field && wt == 2) {
            if (gs_wire_varint_get(&p, end, &v) || v > (uint64_t) (end - p))
                return found;
            *val = p;
            *n = (size_t) v;
            found = 0;
            p += v;
        } else if (gs_wire_skip(&p, end, wt)) {
            return found;
        }
    }
    return found;
}

int
gs_topic_event_category(const uint8_t *event, size_t len, char *category)
{
    uint64_t kind = 0;
    if (gs_wire_find_varint(event, len, S_EVENT_KIND, &kind) ||
        kind != GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT)
        return 0;
    const uint8_t *rec, *inc, *cat;
    size_t rn, in, cn;
    if (s_field_bytes(event, event + len, S_EVENT_RECORD, &rec, &rn) ||
        s_field_bytes(rec, rec + rn, S_RECORD_INCIDENT, &inc, &in) ||
        s_field_bytes(inc, inc + in, S_INCIDENT_CATEGORY, &cat, &cn) ||
        cn == 0 || cn > GS_INCIDENT_CATEGORY_MAX)
        return 0;
    memcpy(category, cat, cn);
    category[cn] = 0;
    return 1;
}

/*
 * fuzz_topic: the live feed's topics (proto/gs_topic.c), which the broker
 * parses from every subscription a client sends and reads from every
 * event it publishes. See gs_fuzz.h.
 *
 * Input: any bytes, taken twice: as a subscription topic
 * (gs_topic_parse) and as a packed ChangeEvent (gs_topic_event_category).
 *
 * What must hold for any input:
 *  - gs_topic_parse accepts exactly the topics of docs/protocol.md ("Live
 *    feed"), as a reference written independently here says: "" or digits
 *    of a level length, or "I", 1 to 8 letters or digits, "/" and such a
 *    prefix; what it accepts is rebuilt byte for byte by
 *    gs_topic_incident (or is the prefix itself), with level the prefix's;
 *  - gs_topic_event_category returns 0 or 1 and, on 1, a NUL-terminated
 *    category of at most GS_INCIDENT_CATEGORY_MAX bytes;
 *  - on the bytes protobuf-c packs for the same event (what the broker
 *    reads it from), it answers exactly what the decoded event says: 1
 *    with its category when it is an incident whose category has 1 to
 *    GS_INCIDENT_CATEGORY_MAX bytes, else 0; and a category of letters or
 *    digits makes an incident topic that parses back to it.
 */
#include "gs_fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gridsync.pb-c.h"
#include "gs_topic.h"

#define S_MAX_INPUT 65536           /* longer inputs only cost decode time */

static void
s_fail(const char *what, const uint8_t *data, size_t len)
{
    fprintf(stderr, "fuzz_topic: %s (input of %zu bytes: \"%.*s\")\n", what, len,
            (int) (len < 64 ? len : 64), (const char *) data);
    abort();
}

/* Digits of a level length (0, 2, 4, 6, 9, 12 or 15)? */
static int
s_ref_prefix(const uint8_t *p, size_t len)
{
    static const size_t levels[] = { 0, 2, 4, 6, 9, 12, 15 };
    int level_len = 0;
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        level_len |= levels[i] == len;
    for (size_t i = 0; i < len; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return level_len;
}

/* The reference: is data a topic the protocol defines? */
static int
s_ref_topic(const uint8_t *data, size_t len)
{
    if (s_ref_prefix(data, len))
        return 1;
    if (len < 3 || data[0] != 'I')
        return 0;
    size_t c = 1;
    while (c < len && c <= GS_INCIDENT_CATEGORY_MAX + 1 &&
           ((data[c] >= '0' && data[c] <= '9') || (data[c] >= 'A' && data[c] <= 'Z') ||
            (data[c] >= 'a' && data[c] <= 'z')))
        c++;
    /* c: the first byte that is not a letter or digit, which must be "/" */
    return c >= 2 && c <= GS_INCIDENT_CATEGORY_MAX + 1 && c < len && data[c] == '/' &&
           s_ref_prefix(data + c + 1, len - c - 1);
}

static void
s_check_parse(const uint8_t *data, size_t len)
{
    gs_topic_t t;
    int rc = gs_topic_parse(data, len, &t);
    if (rc != 0 && rc != -1)
        s_fail("gs_topic_parse returned neither 0 nor -1", data, len);
    if ((rc == 0) != s_ref_topic(data, len))
        s_fail(rc == 0 ? "gs_topic_parse accepted what is not a topic"
                       : "gs_topic_parse refused a topic", data, len);
    if (rc)
        return;
    size_t plen = strnlen(t.prefix, sizeof t.prefix);
    if (plen == sizeof t.prefix || t.level != gs_level_of_len(plen) || t.level < 0)
        s_fail("parsed prefix and level disagree", data, len);
    char built[GS_TOPIC_MAX + 1];
    if (!t.incident) {
        if (t.category[0] || plen != len || memcmp(t.prefix, data, len))
            s_fail("a grid topic is not its own prefix", data, len);
        return;
    }
    int n = gs_topic_incident(built, sizeof built, t.category, t.prefix);
    if (n < 0 || (size_t) n != len || memcmp(built, data, len))
        s_fail("an incident topic is not rebuilt from its parts", data, len);
}

/* gs_topic_event_category on bytes; checks what holds for any bytes. */
static int
s_category(const uint8_t *data, size_t len, char *category)
{
    memset(category, 0x7f, GS_INCIDENT_CATEGORY_MAX + 1);
    int rc = gs_topic_event_category(data, len, category);
    if (rc != 0 && rc != 1)
        s_fail("gs_topic_event_category returned neither 0 nor 1", data, len);
    if (rc == 1 && !memchr(category, 0, GS_INCIDENT_CATEGORY_MAX + 1))
        s_fail("a category that is not NUL-terminated", data, len);
    return rc;
}

static void
s_check_event(const uint8_t *data, size_t len)
{
    char category[GS_INCIDENT_CATEGORY_MAX + 1];
    s_category(data, len, category);
    Gridsync__V1__ChangeEvent *ev = gridsync__v1__change_event__unpack(NULL, len, data);
    if (!ev)
        return;
    /* the canonical bytes of the same event, as the store keeps them */
    size_t plen = gridsync__v1__change_event__get_packed_size(ev);
    uint8_t *packed = malloc(plen ? plen : 1);
    if (!packed)
        abort();
    gridsync__v1__change_event__pack(ev, packed);
    const char *want = NULL;
    if (ev->kind == GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT && ev->record &&
        ev->record->body_case == GRIDSYNC__V1__RECORD__BODY_INCIDENT &&
        ev->record->incident->category) {
        size_t cn = strlen(ev->record->incident->category);
        if (cn >= 1 && cn <= GS_INCIDENT_CATEGORY_MAX)
            want = ev->record->incident->category;
    }
    int rc = s_category(packed, plen, category);
    if (rc != (want != NULL))
        s_fail(want ? "the category of a packed incident was not found"
                    : "a category found in a packed event that has none", data, len);
    if (want && strcmp(category, want))
        s_fail("the category read from the bytes is not the decoded one", data, len);
    if (want) {
        /* the publisher makes its topic from it: letters and digits only */
        int code = 1;
        for (const char *c = want; *c; c++)
            code &= (*c >= '0' && *c <= '9') || (*c >= 'A' && *c <= 'Z') ||
                    (*c >= 'a' && *c <= 'z');
        char topic[GS_TOPIC_MAX + 1];
        gs_topic_t t;
        int n = gs_topic_incident(topic, sizeof topic, want, "");
        if ((n >= 0) != code)
            s_fail("an incident topic made of a category that is not letters and digits, "
                   "or none of one that is", data, len);
        if (n >= 0 && (gs_topic_parse(topic, (size_t) n, &t) || !t.incident ||
                       strcmp(t.category, want) || t.prefix[0]))
            s_fail("an event's incident topic does not parse back to its category", data,
                   len);
    }
    free(packed);
    gridsync__v1__change_event__free_unpacked(ev, NULL);
}

int
gs_fuzz_topic(const uint8_t *data, size_t len)
{
    if (len > S_MAX_INPUT)
        return 0;
    s_check_parse(data, len);
    s_check_event(data, len);
    return 0;
}

#ifdef GS_FUZZ_LIBFUZZER
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return gs_fuzz_topic(data, size);
}
#endif

/*
 * gs_topic: the live feed's topics, as the broker publishes them and a
 * subscriber asks for them (docs/protocol.md, "Live feed").
 *
 * Where it sits: the publisher (broker/gs_feed.c) sends every event under
 * its grid code and, for an incident, a second time under the incident
 * topic of its category; it parses each subscription here before it
 * authorises it. The subscriber (tools/client/gs_sub.c) builds the topics
 * it follows here. One place for the format, so both sides agree:
 *   - a grid topic: a grid-code prefix, ASCII digits ("440305");
 *   - an incident topic: GS_TOPIC_INCIDENT ("I"), the category code, "/",
 *     then a grid-code prefix ("I02/440305"). The marker is not a digit,
 *     so no grid subscription other than "" matches an incident topic, and
 *     the "/" ends the category whatever its length. Only incident events
 *     are published under such a topic.
 *
 * Thread safety: pure functions; any thread.
 */
#ifndef GS_TOPIC_H
#define GS_TOPIC_H

#include <stddef.h>
#include <stdint.h>

#include "gs_incident.h"
#include "gs_validate.h"

#define GS_TOPIC_INCIDENT "I"       /* first byte of every incident topic */
#define GS_TOPIC_SEP '/'            /* ends the category of an incident topic */
/* bytes of the longest topic, NUL excluded: "I" + category + "/" + grid */
#define GS_TOPIC_MAX (1 + GS_INCIDENT_CATEGORY_MAX + 1 + GS_GRID_LEN)

/* A topic, parsed. */
typedef struct gs_topic {
    int incident;                               /* 1: an incident topic */
    char category[GS_INCIDENT_CATEGORY_MAX + 1]; /* its category ("" for a grid topic) */
    char prefix[GS_GRID_LEN + 1];               /* the grid-code prefix */
    int level;                                  /* gs_level_of_len of prefix */
} gs_topic_t;

/* Parse len bytes of a topic (not NUL-terminated). 0 with *out filled
 * when it is a grid topic or an incident topic whose category is 1 to
 * GS_INCIDENT_CATEGORY_MAX bytes of A-Za-z0-9 (whether the table holds it
 * is the caller's question, gs_authz_topic) and whose prefix
 * is digits at a level boundary (0, 2, 4, 6, 9, 12 or 15); -1 for
 * anything else, which is never a topic the broker publishes. */
int gs_topic_parse(const void *topic, size_t len, gs_topic_t *out);

/* Write the incident topic of category and prefix into out (size bytes,
 * NUL-terminated). Returns its length, or -1 when the two do not make a
 * topic gs_topic_parse accepts or it does not fit. */
int gs_topic_incident(char *out, size_t size, const char *category, const char *prefix);

/* Is the packed ChangeEvent of len bytes an incident's? Then 1, with its
 * category (Record.incident.category) in category (GS_INCIDENT_CATEGORY_MAX
 * + 1 bytes); 0 for any other kind, or when it has no category that fits.
 * Reads the wire bytes without decoding them. */
int gs_topic_event_category(const uint8_t *event, size_t len, char *category);

#endif

/*
 * gs_authz: may this key touch this prefix? The broker's one authorisation
 * rule, as a pure function of the key's registry entry.
 *
 * Every request and subscription is authorised here, after the registry
 * entry of the sender's key was read: an upload, sync, snapshot or ping on
 * the frontend thread (gs_frontend.c), a live-feed subscription on the
 * publisher thread, and again every key admitted to the feed at each
 * heartbeat (gs_feed.c), which is how a revocation or a narrowed
 * assignment reaches a follower. The grid of each uploaded record is
 * checked by the store against the same assigned prefixes (gs_store_apply).
 *
 * The rule (docs/security.md), denied by default:
 *   - no registry entry, or an entry that is not ACTIVE: nothing;
 *   - a role other than DEVICE, DISTRICT, ADMIN, DEPARTMENT and CENTRE:
 *     nothing;
 *   - ADMIN: every prefix, whatever prefixes it lists;
 *   - DEVICE, DISTRICT, DEPARTMENT or CENTRE: a prefix at or below one of
 *     its assigned prefixes (a string prefix: "4401" covers "440101..."
 *     and "4401", not "440"), and nothing at all when it has none;
 *   - and what it may read there (gs_authz_record): a DEPARTMENT only the
 *     incidents of its categories, every other role every record;
 *   - and so which live-feed topics it may follow (gs_authz_topic): a grid
 *     topic carries every kind of record, so every role but DEPARTMENT;
 *     an incident topic (gs_topic.h) carries the incidents of one
 *     category, so every role that may read them.
 * What a role may do with what it may touch (a district system does not
 * upload, a device uploads only under its own id) is the caller's rule.
 *
 * Thread safety: pure functions; any thread.
 */
#ifndef GS_AUTHZ_H
#define GS_AUTHZ_H

#include <stddef.h>

#include "gridsync.pb-c.h"
#include "gs_incident.h"
#include "gs_topic.h"

/* A verdict: GS_AUTHZ_ALLOWED or why not. */
typedef enum gs_authz {
    GS_AUTHZ_ALLOWED = 0,       /* may touch it */
    GS_AUTHZ_NOT_ENROLLED,      /* no registry entry */
    GS_AUTHZ_REVOKED,           /* the entry is not ACTIVE */
    GS_AUTHZ_UNKNOWN_ROLE,      /* a role this broker does not know */
    GS_AUTHZ_NO_SCOPE,          /* a role with prefixes, and none assigned */
    GS_AUTHZ_OUTSIDE,           /* prefix is not at or below an assigned one */
    GS_AUTHZ_GRID_TOPIC,        /* a grid topic, for a key that reads only incidents */
    GS_AUTHZ_CATEGORY,          /* an incident category not in the table, or not its */
} gs_authz_t;

/* May the key whose registry entry is dev (NULL: none) touch prefix, a
 * grid code or a prefix of one? prefix NULL asks whether the key may touch
 * anything at all (active, known role, and for a DEVICE or DISTRICT at
 * least one assigned prefix); an upload asks that, and the store checks
 * each record's grid. The checks run in the order of gs_authz_t, so the
 * first reason that applies is the one returned. */
gs_authz_t gs_authz_check(const Gridsync__V1__Device *dev, const char *prefix);

/* May the key whose registry entry is dev read a record of this kind
 * (RecordKind) and, for an incident, this category, inside a prefix it
 * may touch (gs_authz_check)? A DEPARTMENT reads only incidents whose
 * category is among its categories (none: nothing); every other role
 * reads every record. NULL dev: no. */
int gs_authz_record(const Gridsync__V1__Device *dev, int kind, const char *category);

/* May the key whose registry entry is dev follow live-feed topic t (parsed
 * by gs_topic_parse)? First gs_authz_check of its prefix (its verdict when
 * not ALLOWED); then a grid topic is GS_AUTHZ_GRID_TOPIC for a DEPARTMENT,
 * and an incident topic GS_AUTHZ_CATEGORY when its category is not in
 * table (the store's category table, gs_store_incident_table; a retired
 * category is in it) or the key may not read it (gs_authz_record). */
gs_authz_t gs_authz_topic(const Gridsync__V1__Device *dev, const gs_topic_t *t,
                          const gs_incident_table_t *table);

/* Is prefix at or below one of the n prefixes in allowed? The one prefix
 * match of the broker: also the test of which followed prefixes an event
 * falls under. 0 for n == 0. */
int gs_authz_covers(const char *prefix, const char *const *allowed, size_t n);

#endif

/*
 * gs_feed: the live feed, on the publisher thread. See gs_feed.h.
 */
#include "gs_feed.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gs_authz.h"
#include "gs_log.h"
#include "gs_privacy.h"
#include "gs_topic.h"

/* One key's subscriptions to one live-feed prefix. */
typedef struct s_holder {
    uint32_t key;                   /* index into gs_feed_t.keys */
    uint32_t applied;               /* applied by the broker */
    uint32_t refused;               /* refused, and still listed by libzmq */
} s_holder_t;

/* One topic that live subscriptions hold (a slot of gs_feed_t.subs): a
 * grid-code prefix, or an incident topic (gs_topic.h). In
 * secure mode (XPUB_MANUAL) libzmq lists every subscription it received
 * on a connection, applied by the broker or refused, and when the
 * connection ends it hands the broker an unsubscription for each one it
 * still lists, without the connection's metadata. So both kinds are
 * counted here, and the entry goes when both are back at zero. */
typedef struct s_sub {
    int used;                       /* slot in use */
    char prefix[GS_TOPIC_MAX + 1];  /* the topic as subscribed */
    int level;                      /* level of its grid-code prefix, -1 if not a level */
    uint64_t last_seq;              /* last event published under it; for an incident
                                     * topic at least that (see s_sub_get) */
    uint32_t applied;               /* applied subscriptions: heart-beaten while > 0 */
    uint32_t refused;               /* refused ones libzmq still lists */
    s_holder_t *holders;            /* by key (secure mode) */
    uint32_t n_holders, cap_holders;
} s_sub_t;

/* A key that subscribed on the current feed socket. Kept until the next
 * rebind however its subscriptions end; at most one per registry entry. */
typedef struct s_key {
    char device_id[GS_ID_MAX + 1];  /* registry id of the subscriber's key */
    int admitted;                   /* had a subscription applied: checked every heartbeat */
    uint32_t n_prefixes;            /* distinct prefixes it holds applied (the bound) */
    int admin;                      /* admitted as an admin at least once */
    char (*scope)[GS_GRID_LEN + 1]; /* every assigned prefix it was admitted under */
    uint32_t n_scope, cap_scope;
    int grid_topics;                /* admitted to a grid topic at least once */
    char (*categories)[GS_INCIDENT_CATEGORY_MAX + 1]; /* of the incident topics it was
                                     * admitted to */
    uint32_t n_categories, cap_categories;
} s_key_t;

/* The live feed: its socket and the publisher's tables (publisher thread
 * only once it runs; allocated by gs_broker_new, where running out of
 * memory is reported). */
struct gs_feed {
    gs_broker_t *b;                 /* the broker it publishes for */
    void *xpub;                     /* the feed socket; NULL while it is down */
    char bound[256];                /* resolved feed endpoint, to bind it again */
    s_sub_t *subs;                  /* open addressing by prefix, cap_subs slots */
    size_t cap_subs, n_subs;        /* a power of two; n_subs <= cap_subs / 2 */
    size_t n_live;                  /* entries with applied > 0 */
    size_t n_odd;                   /* entries not at a level (insecure mode only) */
    s_key_t *keys;                  /* in order of first subscription */
    size_t n_keys, cap_keys;
    uint32_t *key_slots;            /* open addressing by device id: index + 1, 0 free */
    size_t cap_key_slots;           /* a power of two, 2 * cap_keys */
};

#define S_FEED_SUBS0 1024   /* prefix slots allocated at start (grows) */
#define S_FEED_KEYS0 64     /* keys allocated at start (grows) */

static uint64_t
s_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t) *s) * 1099511628211ull;
    return h;
}

/* Allocate the publisher's tables at their starting size: 0, or -1 when
 * memory runs out (then s_feed_deinit frees what was allocated). */
static int
s_feed_init(gs_feed_t *f)
{
    f->subs = calloc(S_FEED_SUBS0, sizeof *f->subs);
    f->keys = calloc(S_FEED_KEYS0, sizeof *f->keys);
    f->key_slots = calloc(2 * S_FEED_KEYS0, sizeof *f->key_slots);
    if (!f->subs || !f->keys || !f->key_slots)
        return -1;
    f->cap_subs = S_FEED_SUBS0;
    f->cap_keys = S_FEED_KEYS0;
    f->cap_key_slots = 2 * S_FEED_KEYS0;
    return 0;
}

/* Forget every subscription and key, keeping the memory: after a rebind
 * the new socket starts with none. */
static void
s_feed_clear(gs_feed_t *f)
{
    for (size_t i = 0; i < f->cap_subs; i++)
        free(f->subs[i].holders);
    if (f->subs)
        memset(f->subs, 0, f->cap_subs * sizeof *f->subs);
    for (size_t i = 0; i < f->n_keys; i++) {
        free(f->keys[i].scope);
        free(f->keys[i].categories);
    }
    if (f->key_slots)
        memset(f->key_slots, 0, f->cap_key_slots * sizeof *f->key_slots);
    f->n_subs = f->n_live = f->n_odd = f->n_keys = 0;
}

static void
s_feed_deinit(gs_feed_t *f)
{
    s_feed_clear(f);
    free(f->subs);
    free(f->keys);
    free(f->key_slots);
    memset(f, 0, sizeof *f);
}

static s_sub_t *
s_sub_find(gs_feed_t *f, const char *prefix)
{
    size_t mask = f->cap_subs - 1;
    for (size_t i = s_hash(prefix) & mask;; i = (i + 1) & mask) {
        if (!f->subs[i].used)
            return NULL;
        if (strcmp(f->subs[i].prefix, prefix) == 0)
            return &f->subs[i];
    }
}

static int
s_subs_grow(gs_feed_t *f)
{
    size_t cap = f->cap_subs * 2;
    s_sub_t *v = calloc(cap, sizeof *v);
    if (!v)
        return -1;
    for (size_t i = 0; i < f->cap_subs; i++) {
        if (!f->subs[i].used)
            continue;
        size_t j = s_hash(f->subs[i].prefix) & (cap - 1);
        while (v[j].used)
            j = (j + 1) & (cap - 1);
        v[j] = f->subs[i];
    }
    free(f->subs);
    f->subs = v;
    f->cap_subs = cap;
    return 0;
}

/* The entry for topic prefix, added if new (its last seq read from the
 * store); NULL when memory runs out. Moves other entries: pointers into
 * the table are stale afterwards. The store keeps the last seq of each
 * grid-code prefix, not of each category in it: an incident topic starts
 * from its prefix's last seq, which is never lower than the last incident
 * event of the category there, and from then on follows the events
 * published under it. So its last seq, and the incident_prev_seq sent
 * with its events, are never lower than the true ones: a subscriber can
 * repair once for nothing, but never miss a loss. */
static s_sub_t *
s_sub_get(gs_feed_t *f, const char *prefix)
{
    s_sub_t *s = s_sub_find(f, prefix);
    if (s)
        return s;
    if ((f->n_subs + 1) * 2 > f->cap_subs && s_subs_grow(f))
        return NULL;
    size_t mask = f->cap_subs - 1;
    size_t i = s_hash(prefix) & mask;
    while (f->subs[i].used)
        i = (i + 1) & mask;
    s = &f->subs[i];
    memset(s, 0, sizeof *s);
    s->used = 1;
    snprintf(s->prefix, sizeof s->prefix, "%s", prefix);
    gs_topic_t t;
    s->level = gs_topic_parse(prefix, strlen(prefix), &t) ? -1 : t.level;
    if (s->level >= 0)
        gs_store_prefix_last(f->b->store, t.prefix, &s->last_seq);
    else
        f->n_odd++;
    f->n_subs++;
    return s;
}

/* Drop an entry; the later members of its probe run move back into the
 * hole (no tombstones), so pointers into the table are stale afterwards. */
static void
s_sub_remove(gs_feed_t *f, s_sub_t *s)
{
    size_t mask = f->cap_subs - 1;
    size_t i = (size_t) (s - f->subs);
    free(s->holders);
    if (s->level < 0)
        f->n_odd--;
    if (s->applied)
        f->n_live--;
    memset(s, 0, sizeof *s);
    f->n_subs--;
    for (size_t j = (i + 1) & mask; f->subs[j].used; j = (j + 1) & mask) {
        size_t home = s_hash(f->subs[j].prefix) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            f->subs[i] = f->subs[j];
            memset(&f->subs[j], 0, sizeof f->subs[j]);
            i = j;
        }
    }
}

static long
s_key_find(const gs_feed_t *f, const char *id)
{
    size_t mask = f->cap_key_slots - 1;
    for (size_t i = s_hash(id) & mask;; i = (i + 1) & mask) {
        uint32_t v = f->key_slots[i];
        if (!v)
            return -1;
        if (strcmp(f->keys[v - 1].device_id, id) == 0)
            return (long) v - 1;
    }
}

/* The index of key id, added if new; -1 when memory runs out. */
static long
s_key_get(gs_feed_t *f, const char *id)
{
    long k = s_key_find(f, id);
    if (k >= 0)
        return k;
    if (f->n_keys == f->cap_keys) {
        size_t cap = f->cap_keys * 2;
        s_key_t *v = realloc(f->keys, cap * sizeof *v);
        if (v)
            f->keys = v;
        uint32_t *slots = v ? calloc(2 * cap, sizeof *slots) : NULL;
        if (!slots)
            return -1;
        free(f->key_slots);
        f->key_slots = slots;
        f->cap_keys = cap;
        f->cap_key_slots = 2 * cap;
        for (size_t n = 0; n < f->n_keys; n++) {
            size_t i = s_hash(f->keys[n].device_id) & (f->cap_key_slots - 1);
            while (f->key_slots[i])
                i = (i + 1) & (f->cap_key_slots - 1);
            f->key_slots[i] = (uint32_t) n + 1;
        }
    }
    s_key_t *key = &f->keys[f->n_keys];
    memset(key, 0, sizeof *key);
    snprintf(key->device_id, sizeof key->device_id, "%s", id);
    size_t i = s_hash(id) & (f->cap_key_slots - 1);
    while (f->key_slots[i])
        i = (i + 1) & (f->cap_key_slots - 1);
    f->key_slots[i] = (uint32_t) ++f->n_keys;
    return (long) f->n_keys - 1;
}

/* Remember the category of incident topic t that key was admitted to. 0,
 * or -1 when memory runs out. */
static int
s_key_admit_category(s_key_t *key, const gs_topic_t *t)
{
    for (uint32_t j = 0; j < key->n_categories; j++)
        if (strcmp(key->categories[j], t->category) == 0)
            return 0;
    if (key->n_categories == key->cap_categories) {
        uint32_t cap = key->cap_categories ? 2 * key->cap_categories : 4;
        void *v = realloc(key->categories, cap * sizeof *key->categories);
        if (!v)
            return -1;
        key->categories = v;
        key->cap_categories = cap;
    }
    snprintf(key->categories[key->n_categories++], sizeof key->categories[0], "%s",
             t->category);
    return 0;
}

/* Remember what the registry let key follow when a subscription of it to
 * topic t was applied: its role and assigned prefixes, whether it was a
 * grid topic, and an incident topic's category, added to what it was
 * admitted under before. 0, or -1 when memory runs out. */
static int
s_key_admit(s_key_t *key, const Gridsync__V1__Device *dev, const gs_topic_t *t)
{
    if (!t->incident)
        key->grid_topics = 1;
    else if (s_key_admit_category(key, t))
        return -1;
    key->admitted = 1;
    if (dev->role == GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN) {
        key->admin = 1;
        return 0;
    }
    for (size_t i = 0; i < dev->n_prefixes; i++) {
        const char *p = dev->prefixes[i];
        if (strlen(p) > GS_GRID_LEN)
            return -1; /* the registry never holds one; never widen on a surprise */
        uint32_t j = 0;
        while (j < key->n_scope && strcmp(key->scope[j], p) != 0)
            j++;
        if (j < key->n_scope)
            continue;
        if (key->n_scope == key->cap_scope) {
            uint32_t cap = key->cap_scope ? 2 * key->cap_scope : 4;
            void *v = realloc(key->scope, cap * sizeof *key->scope);
            if (!v)
                return -1;
            key->scope = v;
            key->cap_scope = cap;
        }
        snprintf(key->scope[key->n_scope++], sizeof key->scope[0], "%s", p);
    }
    return 0;
}

static s_holder_t *
s_holder_find(s_sub_t *s, long key)
{
    for (uint32_t i = 0; i < s->n_holders; i++)
        if (s->holders[i].key == (uint32_t) key)
            return &s->holders[i];
    return NULL;
}

/* key's holding of s, added if new; NULL when memory runs out. */
static s_holder_t *
s_holder_get(s_sub_t *s, long key)
{
    s_holder_t *h = s_holder_find(s, key);
    if (h)
        return h;
    if (s->n_holders == s->cap_holders) {
        uint32_t cap = s->cap_holders ? 2 * s->cap_holders : 2;
        void *v = realloc(s->holders, cap * sizeof *s->holders);
        if (!v)
            return NULL;
        s->holders = v;
        s->cap_holders = cap;
    }
    h = &s->holders[s->n_holders++];
    *h = (s_holder_t) { .key = (uint32_t) key };
    return h;
}

/* One subscription of h's key to s ends: an applied one (applied = 1) or
 * a refused one. */
static void
s_holder_drop(gs_feed_t *f, s_sub_t *s, s_holder_t *h, int applied)
{
    if (applied) {
        h->applied--;
        if (h->applied == 0)
            f->keys[h->key].n_prefixes--;
        if (--s->applied == 0)
            f->n_live--;
    } else {
        h->refused--;
        s->refused--;
    }
    if (!h->applied && !h->refused)
        *h = s->holders[--s->n_holders];
}

static void
s_feed_gauge(const gs_feed_t *f)
{
    atomic_store(&f->b->subscriptions, (int) f->n_live);
    atomic_store(&f->b->metrics.feed_subscriptions, (int64_t) f->n_live);
}

static void
s_feed_send(gs_feed_t *f, const char *topic, size_t topic_len, const uint8_t *body,
            size_t len)
{
    /* XPUB never blocks: at a subscriber's HWM the message is dropped for
     * that subscriber, who detects the gap (prev_seq) and repairs it. */
    if (!f->xpub)
        return;     /* the feed could not be bound again (logged) */
    zmq_send(f->xpub, topic, topic_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(f->xpub, body, len, ZMQ_DONTWAIT);
}

/* Send an incident's event (data, len bytes, as sent under its grid code)
 * once more under its incident topic, "I" category "/" grid code, with
 * incident_prev_seq: for each level, the last seq of the incident topic of
 * that level's prefix (s_sub_get says why it is never too low), or, when
 * nobody follows that topic, e->seq - 1, which is never too low either.
 * The followed topics' last seqs move to this event. */
static void
s_publish_incident(gs_feed_t *f, const gs_event_out_t *e, const char *category,
                   const uint8_t *data, size_t len, gs_wbuf_t *wb)
{
    static const int level_len[] = { 0, 2, 4, 6, 9, 12, 15 };
    char topic[GS_TOPIC_MAX + 1];
    gs_wbuf_t prev;
    gs_wbuf_init(&prev);
    for (size_t l = 0; l < sizeof level_len / sizeof level_len[0]; l++) {
        char prefix[GS_GRID_LEN + 1];
        memcpy(prefix, e->grid, (size_t) level_len[l]);
        prefix[level_len[l]] = 0;
        s_sub_t *s = gs_topic_incident(topic, sizeof topic, category, prefix) < 0
                         ? NULL : s_sub_find(f, topic);
        gs_wbuf_varint(&prev, s ? s->last_seq : e->seq - 1);
        if (s)
            s->last_seq = e->seq;
    }
    int n = gs_topic_incident(topic, sizeof topic, category, e->grid);
    gs_wbuf_reset(wb);
    gs_wbuf_bytes_field(wb, GS_F_FEED_EVENT, data, len, 1);
    gs_wbuf_bytes_field(wb, GS_F_FEED_INCIDENT_PREV, prev.data, prev.len, 1);
    if (n > 0 && !prev.failed && !wb->failed) {
        s_feed_send(f, topic, (size_t) n, wb->data, wb->len);
        atomic_fetch_add(&f->b->metrics.feed_incident_events, 1);
    }
    gs_wbuf_deinit(&prev);
}

static void
s_publish_events(gs_feed_t *f, gs_apply_out_t *ev, gs_wbuf_t *wb, gs_wbuf_t *tmp)
{
    gs_broker_t *b = f->b;
    static const int level_len[] = { 0, 2, 4, 6, 9, 12, 15 };
    atomic_fetch_add(&b->metrics.feed_events, ev->n_events);
    /* nobody follows any topic: the socket would drop every message, so
     * the restricted part is not stripped and nothing is packed (a city
     * replica or a district without subscribers saves that work on every
     * event). A subscriber that arrives later resumes by its prev_seq
     * chain as after any subscription (protocol.md, Resume). */
    if (f->n_subs == 0)
        return;
    for (size_t i = 0; i < ev->n_events; i++) {
        gs_event_out_t *e = &ev->events[i];
        const uint8_t *data = e->data;
        size_t len = e->len;
        gs_wbuf_reset(tmp);
        if (!b->cfg.feed_restricted && gs_event_strip_restricted(data, len, tmp) == 1) {
            data = tmp->data;
            len = tmp->len;
        }
        gs_wbuf_reset(wb);
        gs_wbuf_bytes_field(wb, GS_F_FEED_EVENT, data, len, 1);
        s_feed_send(f, e->grid, GS_GRID_LEN, wb->data, wb->len);
        /* the prefixes an event falls under are its grid's levels: one
         * lookup each, however many prefixes are followed */
        char prefix[GS_GRID_LEN + 1];
        for (size_t l = 0; l < sizeof level_len / sizeof level_len[0]; l++) {
            memcpy(prefix, e->grid, (size_t) level_len[l]);
            prefix[level_len[l]] = 0;
            s_sub_t *s = s_sub_find(f, prefix);
            if (s)
                s->last_seq = e->seq;
        }
        for (size_t k = 0; f->n_odd && k < f->cap_subs; k++) {
            const char *odd = f->subs[k].prefix;
            if (f->subs[k].used && f->subs[k].level < 0 && gs_authz_covers(e->grid, &odd, 1))
                f->subs[k].last_seq = e->seq;
        }
        /* an incident goes once more under its category's topic, which a
         * department may follow: only incidents are ever sent there */
        char category[GS_INCIDENT_CATEGORY_MAX + 1];
        if (gs_topic_event_category(data, len, category))
            s_publish_incident(f, e, category, data, len, wb);
    }
}

/* One heartbeat for the prefix of s. */
static void
s_heartbeat_send(gs_feed_t *f, const s_sub_t *s, uint64_t head, gs_wbuf_t *wb)
{
    gs_broker_t *b = f->b;
    Gridsync__V1__Heartbeat hb = GRIDSYNC__V1__HEARTBEAT__INIT;
    hb.head_seq = head;
    hb.prefix = (char *) s->prefix;
    hb.prefix_last_seq = s->last_seq;
    hb.sent_at = gs_now_ms();
    gs_store_epoch(b->store, &hb.store_epoch); /* 0 if the store has none */
    gs_wbuf_reset(wb);
    gs_wbuf_message_field(wb, GS_F_FEED_HEARTBEAT, &hb.base);
    s_feed_send(f, s->prefix, strlen(s->prefix), wb->data, wb->len);
    atomic_fetch_add(&b->metrics.feed_heartbeats, 1);
}

/* One heartbeat for every prefix an applied subscription holds, however
 * many there are. */
static void
s_heartbeats(gs_feed_t *f, uint64_t head, gs_wbuf_t *wb)
{
    for (size_t k = 0; k < f->cap_subs; k++) {
        const s_sub_t *s = &f->subs[k];
        if (s->used && s->applied)
            s_heartbeat_send(f, s, head, wb);
    }
}

/* Why key id may not follow topic t (NULL: digits not at a level) now, or
 * NULL when it may (gs_authz_topic); *dev_out gets its registry entry when
 * it has one (caller frees). */
static const char *
s_subscription_check(const gs_feed_t *f, const char *id, const gs_topic_t *t,
                     Gridsync__V1__Device **dev_out)
{
    *dev_out = NULL;
    if (!id || gs_store_device_get(f->b->store, id, dev_out))
        return "not enrolled";
    gs_authz_t v = gs_authz_check(*dev_out, NULL);
    if (v == GS_AUTHZ_REVOKED)
        return "revoked";
    if (v == GS_AUTHZ_UNKNOWN_ROLE)
        return "unknown role";
    if (!t)
        return "prefix not at a level boundary (0,2,4,6,9,12,15 digits)";
    /* the category table an operator set (or the built-in one), read at
     * each subscription like the registry entry */
    gs_incident_table_t table;
    if (gs_store_incident_table(f->b->store, &table, NULL))
        return "the store's incident category table cannot be read";
    switch (gs_authz_topic(*dev_out, t, &table)) {
    case GS_AUTHZ_ALLOWED:
        return NULL;
    case GS_AUTHZ_GRID_TOPIC:
        /* a grid topic carries every kind of record; a department reads
         * only its incidents (gs_authz_record) */
        return "a department follows incident topics only (I<category>/<prefix>), not a "
               "grid topic, which carries every kind of record";
    case GS_AUTHZ_CATEGORY:
        return "the category is not in the category table or not among the key's categories";
    default:
        return "outside the assigned prefixes";
    }
}

/* A subscription in secure mode (XPUB_MANUAL) to prefix, a topic (t its
 * parse; NULL for digits not at a level): applied only when the
 * subscriber's registry entry allows the topic and its key stays within
 * feed-max-prefixes; counted either way (s_sub_t). */
static void
s_subscribe(gs_feed_t *f, const char *id, const char *prefix, const gs_topic_t *t)
{
    gs_broker_t *b = f->b;
    int level = t ? t->level : -1;
    Gridsync__V1__Device *dev = NULL;
    const char *why = s_subscription_check(f, id, t, &dev);
    char bound[96];
    long k = id && strlen(id) <= GS_ID_MAX ? s_key_get(f, id) : -1;
    s_sub_t *s = level >= 0 ? s_sub_get(f, prefix) : NULL;
    s_holder_t *h = s && k >= 0 ? s_holder_get(s, k) : NULL;
    if (!why && !h) {
        /* libzmq lists it whatever the broker decides, and its end could
         * not be counted: refuse it, and say why */
        why = "the broker is out of memory";
    } else if (!why && h->applied == 0 &&
               f->keys[k].n_prefixes >= (uint64_t) b->cfg.feed_max_prefixes) {
        snprintf(bound, sizeof bound, "the key already follows %u prefixes (feed-max-prefixes)",
                 f->keys[k].n_prefixes);
        why = bound;
    } else if (!why && s_key_admit(&f->keys[k], dev, t)) {
        why = "the broker is out of memory";
    }
    if (why) {
        atomic_fetch_add(&b->metrics.feed_refused, 1);
        gs_log(GS_LOG_WARN, "feed_subscribe_refused", "device=%s prefix=\"%s\" reason=\"%s\"",
               id ? id : "-", prefix, why);
        if (h) {
            h->refused++;
            s->refused++;
        }
    } else {
        if (h->applied++ == 0)
            f->keys[k].n_prefixes++;
        if (s->applied++ == 0) {
            f->n_live++;
            gs_log(GS_LOG_INFO, "feed_subscribe", "prefix=\"%s\" last_seq=%llu", prefix,
                   (unsigned long long) s->last_seq);
        }
        zmq_setsockopt(f->xpub, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
        /* A heartbeat at once: the new subscriber's first message names
         * the store's epoch and head before any event, so a subscriber
         * that reconnected to a restored store learns it before it could
         * take one of the restored store's events for a new one. */
        s_feed_gauge(f);     /* before the heartbeat, which a test may wait on */
        gs_wbuf_t wb;
        gs_wbuf_init(&wb);
        s_heartbeat_send(f, s, atomic_load(&b->head_seq), &wb);
        gs_wbuf_deinit(&wb);
    }
    if (s && !s->applied && !s->refused)
        s_sub_remove(f, s); /* its holder could not be added */
    if (dev)
        gridsync__v1__device__free_unpacked(dev, NULL);
}

/* An unsubscription in secure mode. With metadata it is the connection's
 * own: it ends one of that key's subscriptions (an applied one first),
 * and one for a prefix the key does not hold is ignored. Without metadata
 * libzmq sends it because a connection ended, and does not say whose: a
 * refused subscription is charged first, so the applied count never falls
 * below the subscriptions that really are applied, and no live prefix
 * loses its heartbeats. */
static void
s_unsubscribe(gs_feed_t *f, const char *id, const char *prefix, int level)
{
    if (level < 0)
        return;     /* never counted (refused in s_subscription_check) */
    zmq_setsockopt(f->xpub, ZMQ_UNSUBSCRIBE, prefix, strlen(prefix));
    s_sub_t *s = s_sub_find(f, prefix);
    if (!s)
        return;
    if (id) {
        long k = s_key_find(f, id);
        s_holder_t *h = k >= 0 ? s_holder_find(s, k) : NULL;
        if (h)
            s_holder_drop(f, s, h, h->applied > 0);
    } else {
        s_holder_t *h = NULL;
        for (uint32_t i = 0; i < s->n_holders && !h; i++)
            if (s->holders[i].refused)
                h = &s->holders[i];
        if (h)
            s_holder_drop(f, s, h, 0);
        else if (s->n_holders)
            s_holder_drop(f, s, &s->holders[0], 1);
    }
    if (!s->applied && !s->refused) {
        gs_log(GS_LOG_INFO, "feed_unsubscribe", "prefix=\"%s\"", prefix);
        s_sub_remove(f, s);
    }
}

/* A control message arrived on the XPUB: (un)subscription of a prefix. */
static void
s_subscription(gs_feed_t *f, zmq_msg_t *m)
{
    gs_broker_t *b = f->b;
    const uint8_t *msg = zmq_msg_data(m);
    size_t len = zmq_msg_size(m);
    gs_log(GS_LOG_DEBUG, "feed_control", "bytes=%zu kind=%d", len, len ? msg[0] : -1);
    if (len < 1 || len - 1 > GS_TOPIC_MAX || (msg[0] != 0 && msg[0] != 1))
        return;
    char prefix[GS_TOPIC_MAX + 1];
    int digits = 1;
    for (size_t i = 1; i < len; i++)
        digits &= msg[i] >= '0' && msg[i] <= '9';
    memcpy(prefix, msg + 1, len - 1);
    prefix[len - 1] = 0;
    /* only topics (gs_topic_parse) and, in insecure mode, digits off a
     * level are followed: anything else (a NUL among them, a malformed
     * incident topic) is never applied or counted, in both directions
     * alike */
    gs_topic_t t;
    int topic = gs_topic_parse(msg + 1, len - 1, &t) == 0;
    int level = topic ? t.level : -1;
    if (b->secure) {
        const char *id = zmq_msg_gets(m, "device_id");
        if (msg[0] == 1 && !topic && !digits) {
            atomic_fetch_add(&b->metrics.feed_refused, 1);
            gs_log(GS_LOG_WARN, "feed_subscribe_refused",
                   "device=%s reason=\"not a topic: neither grid-code digits nor "
                   "I<category>/<prefix>\"", id ? id : "-");
        } else if (msg[0] == 1) {
            s_subscribe(f, id, prefix, topic ? &t : NULL);
        } else {
            s_unsubscribe(f, id, prefix, level);
        }
    } else if (topic || digits) {
        /* libzmq applies subscriptions itself here and passes on only the
         * first subscription to a prefix and the last unsubscription */
        s_sub_t *s = s_sub_find(f, prefix);
        if (msg[0] == 1 && !s) {
            s = s_sub_get(f, prefix);
            if (!s) {
                gs_log(GS_LOG_ERROR, "out_of_memory",
                       "what=\"feed prefix table\" prefix=\"%s\" msg=\"no heartbeats for it\"",
                       prefix);
            } else {
                s->applied = 1;
                f->n_live++;
                gs_log(GS_LOG_INFO, "feed_subscribe", "prefix=\"%s\" last_seq=%llu", prefix,
                       (unsigned long long) s->last_seq);
            }
        } else if (msg[0] == 0 && s) {
            gs_log(GS_LOG_INFO, "feed_unsubscribe", "prefix=\"%s\"", prefix);
            s_sub_remove(f, s);
        }
    }
    s_feed_gauge(f);
}

/* Does the registry still let every admitted key follow what it was
 * admitted under (gs_authz_check, gs_authz_record)? The first that may not
 * (revoked, removed, no longer an admin, a role no longer known, an
 * assigned prefix it was admitted under no longer covered, a DEPARTMENT
 * now while it was admitted to a grid topic, or the category of an
 * incident topic it was admitted to no longer its) is returned. One
 * registry read per admitted key. */
static const s_key_t *
s_keys_stale(const gs_feed_t *f)
{
    for (size_t i = 0; i < f->n_keys; i++) {
        const s_key_t *key = &f->keys[i];
        if (!key->admitted)
            continue;
        Gridsync__V1__Device *dev = NULL;
        if (gs_store_device_get(f->b->store, key->device_id, &dev))
            dev = NULL;
        int ok;
        if (key->admin) {
            /* admitted under the ADMIN role, which lists no prefixes */
            ok = gs_authz_check(dev, NULL) == GS_AUTHZ_ALLOWED &&
                 dev->role == GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN;
        } else {
            ok = gs_authz_check(dev, NULL) == GS_AUTHZ_ALLOWED;
            for (uint32_t j = 0; ok && j < key->n_scope; j++)
                ok = gs_authz_check(dev, key->scope[j]) == GS_AUTHZ_ALLOWED;
            if (ok && key->grid_topics)
                ok = dev->role != GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEPARTMENT;
            for (uint32_t j = 0; ok && j < key->n_categories; j++)
                ok = gs_authz_record(dev, GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT,
                                     key->categories[j]);
        }
        if (dev)
            gridsync__v1__device__free_unpacked(dev, NULL);
        if (!ok)
            return key;
    }
    return NULL;
}

/* The live feed's socket, bound to endpoint; NULL with errno on failure.
 * Used at start and again after a revocation (s_xpub_rebind). */
static void *
s_xpub_open(gs_feed_t *f, const char *endpoint)
{
    gs_broker_t *b = f->b;
    void *x = zmq_socket(b->ctx, ZMQ_XPUB);
    if (!x)
        return NULL;
    if (b->secure) {
        if (gs_auth_curve_server(x, b->server_secret)) {
            zmq_close(x);
            return NULL;
        }
        int manual = 1; /* every subscription is authorised first */
        zmq_setsockopt(x, ZMQ_XPUB_MANUAL, &manual, sizeof manual);
    }
    int sndhwm = (int) b->cfg.feed_sndhwm;
    zmq_setsockopt(x, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm);
    /* subscriptions are prefixes (tiny); the bound must still fit the CURVE
     * handshake commands, which the same limit applies to */
    int64_t submax = 4096;
    zmq_setsockopt(x, ZMQ_MAXMSGSIZE, &submax, sizeof submax);
    int linger = 2000;
    zmq_setsockopt(x, ZMQ_LINGER, &linger, sizeof linger);
    /* a peer that never finishes its handshake is dropped (idle connections
     * would otherwise hold descriptors for ever) */
    int hs = (int) b->cfg.handshake_timeout_ms;
    zmq_setsockopt(x, ZMQ_HANDSHAKE_IVL, &hs, sizeof hs);
    if (gs_conns_watch(b->conns, x, "feed") || zmq_bind(x, endpoint)) {
        int err = errno;
        int zero = 0;
        zmq_setsockopt(x, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(x);
        errno = err;
        return NULL;
    }
    return x;
}

/* Bind the feed socket again on its endpoint, trying up to attempts times
 * 10 ms apart (the old listener closes in ZeroMQ's I/O thread: the port
 * may be busy for a moment). 0, or -1 with errno. */
static int
s_xpub_reopen(gs_feed_t *f, int attempts)
{
    for (int attempt = 0; attempt < attempts && !f->xpub; attempt++) {
        f->xpub = s_xpub_open(f, f->bound);
        if (!f->xpub && attempt + 1 < attempts) {
            struct timespec ts = { 0, 10 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
    }
    return f->xpub ? 0 : -1;
}

/* ZeroMQ cannot drop one peer of an XPUB socket, so a follower that lost
 * its rights is cut off by closing the socket and binding a new one on the
 * same endpoint. Every subscriber's connection drops; ZeroMQ reconnects
 * them, the ZAP handler refuses the revoked key at the new handshake, and
 * the others subscribe again and repair what they missed meanwhile from
 * the sync service, as after any gap. Returns 0, or -1 when the endpoint
 * could not be bound again within 3 s: the feed is down (logged as an
 * error) and gs_feed_main tries again at each heartbeat until it is back
 * (logged as feed_rebound). */
static int
s_xpub_rebind(gs_feed_t *f, const s_key_t *why)
{
    gs_broker_t *b = f->b;
    gs_log(GS_LOG_WARN, "feed_rebind", "reason=revocation device=%s", why->device_id);
    int zero = 0;
    zmq_setsockopt(f->xpub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(f->xpub);
    f->xpub = NULL;
    atomic_fetch_add(&b->metrics.feed_rebinds, 1);
    if (s_xpub_reopen(f, 300)) {
        gs_log(GS_LOG_ERROR, "feed_rebind_failed", "endpoint=\"%s\" error=\"%s\" "
               "msg=\"the live feed is down; trying again at each heartbeat\"",
               f->bound, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

void *
gs_feed_main(void *arg)
{
    gs_feed_t *f = arg;
    gs_broker_t *b = f->b;
    void *in = zmq_socket(b->ctx, ZMQ_PAIR);
    zmq_connect(in, GS_EP_EVENTS);
    gs_wbuf_t wb, tmp;
    gs_wbuf_init(&wb);
    gs_wbuf_init(&tmp);
    int64_t next_hb = gs_mono_us() + b->cfg.heartbeat_ms * 1000;
    for (;;) {
        zmq_pollitem_t items[2] = { { in, 0, ZMQ_POLLIN, 0 }, { f->xpub, 0, ZMQ_POLLIN, 0 } };
        int64_t wait_us = next_hb - gs_mono_us();
        if (wait_us < 0)
            wait_us = 0;
        if (zmq_poll(items, f->xpub ? 2 : 1, (long) (wait_us / 1000)) < 0 && errno != EINTR)
            break;
        if (items[1].revents & ZMQ_POLLIN) {
            for (;;) {
                zmq_msg_t m;
                zmq_msg_init(&m);
                if (zmq_msg_recv(&m, f->xpub, ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&m);
                    break;
                }
                s_subscription(f, &m);
                zmq_msg_close(&m);
            }
        }
        if (items[0].revents & ZMQ_POLLIN) {
            void *p;
            int stop = 0;
            while (gs_ptr_recv(in, &p, ZMQ_DONTWAIT) == 0) {
                if (!p) {
                    stop = 1;
                    break;
                }
                gs_apply_out_t *ev = p;
                s_publish_events(f, ev, &wb, &tmp);
                gs_apply_out_clear(ev);
                free(ev);
            }
            if (stop)
                break;
        }
        if (gs_mono_us() >= next_hb) {
            /* a rebind that failed: the feed comes back as soon as it can */
            if (!f->xpub && s_xpub_reopen(f, 1) == 0)
                gs_log(GS_LOG_INFO, "feed_rebound", "endpoint=\"%s\"", f->bound);
            const s_key_t *stale = b->secure && f->xpub ? s_keys_stale(f) : NULL;
            if (stale) {
                s_xpub_rebind(f, stale);
                /* the old socket took its subscriptions with it: the
                 * survivors subscribe again on the new one */
                s_feed_clear(f);
                s_feed_gauge(f);
            }
            s_heartbeats(f, atomic_load(&b->head_seq), &wb);
            next_hb = gs_mono_us() + b->cfg.heartbeat_ms * 1000;
        }
    }
    gs_wbuf_deinit(&wb);
    gs_wbuf_deinit(&tmp);
    zmq_close(in);
    return NULL;
}

gs_feed_t *
gs_feed_new(gs_broker_t *b)
{
    gs_feed_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->b = b;
    if (s_feed_init(self))
        gs_feed_destroy(&self);
    return self;
}

int
gs_feed_bind(gs_feed_t *self, const char *endpoint, char *bound, size_t bound_size)
{
    assert(!self->xpub);
    self->xpub = s_xpub_open(self, endpoint);
    if (!self->xpub)
        return -1;
    size_t n = bound_size;
    zmq_getsockopt(self->xpub, ZMQ_LAST_ENDPOINT, bound, &n);
    snprintf(self->bound, sizeof self->bound, "%s", bound);
    return 0;
}

void
gs_feed_close(gs_feed_t *self)
{
    if (self && self->xpub) {
        zmq_close(self->xpub);
        self->xpub = NULL;
    }
}

void
gs_feed_destroy(gs_feed_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gs_feed_close(*self_p);
    s_feed_deinit(*self_p);
    free(*self_p);
    *self_p = NULL;
}

/*
 * gc_tail: `gridctl tail`, the store's change log as lines or JSON lines.
 *
 * Reading is gs_store_events (one read transaction per call). --follow then
 * either polls the store every 500 ms (a human tool: a read transaction
 * twice a second costs the broker nothing) or, with --feed and --upload,
 * follows the broker's live feed through the client library's subscriber,
 * which detects and repairs gaps itself, warns on stderr when the feed goes
 * silent ("no heartbeat for N s: check enrolment", every --heartbeat-warn
 * ms while it lasts, following goes on), fails when the broker refuses the
 * handshake, and exits 1 when it reports that the broker's store was
 * restored or replaced (GS_CLIENT_ELINEAGE). --category keeps only the
 * incidents of those categories (read from the event bytes, gs_topic.h)
 * and, with --feed, follows their incident topics (gs_sub_opts_t
 * .categories), as a department's key must.
 */
#include "gc.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gs_client.h"
#include "gs_topic.h"
#include "gs_validate.h"

#define S_MAX_CATEGORIES 64     /* gs_sub follows at most 64 topics */

static const char s_help[] =
    "Usage: gridctl tail [PREFIX] [--since SEQ] [--limit N] [--follow]\n"
    "                    [--feed EP --upload EP [--keys FILE] [--heartbeat-warn MS]]\n"
    "                    [--keys FILE [--heartbeat-warn MS]]\n"
    "                    [--category C[,C2...]] [--count N]\n"
    "\n"
    "Change events under PREFIX (default: all) from the store's log, oldest first:\n"
    "seq, commit time, operation, kind, record id, version, grid (old -> new for a\n"
    "move) and the device that uploaded it.\n"
    "\n"
    "  --since SEQ    the events after SEQ (all of them, or the first --limit)\n"
    "  --limit N      without --since: the last N events (default 20)\n"
    "  --follow       then wait for new events until interrupted (polls the store\n"
    "                 every 500 ms, or follows the live feed with --feed)\n"
    "  --feed EP      the broker's live feed endpoint, with --upload EP its\n"
    "                 upload/sync endpoint: follow through the client library's\n"
    "                 subscriber (PREFIX must then be 0, 2, 4, 6, 9, 12 or 15 digits)\n"
    "  --keys FILE    CURVE keys (server_public, public_key, secret_key) for --feed:\n"
    "                 the enrolment bundle of gridctl devices enrol --bundle; its\n"
    "                 feed_endpoint and upload_endpoint lines serve when --feed or\n"
    "                 --upload is not given (--follow --keys FILE alone follows the\n"
    "                 live feed of the broker the bundle names)\n"
    "  --heartbeat-warn MS  with --feed: warn on stderr when no heartbeat arrived\n"
    "                 for MS milliseconds, and again every MS while it lasts;\n"
    "                 following goes on (default 5000, 0 = never)\n"
    "  --category C[,C2...]  only the incidents of these categories (codes of 1 to\n"
    "                 8 letters or digits, e.g. 02; repeatable; each once); with\n"
    "                 --feed, follow their incident topics in PREFIX (I02/PREFIX)\n"
    "                 instead of PREFIX itself: how a department's key follows\n"
    "  --count N      exit after printing N events\n"
    "\n"
    "--json: one line per event, the lines gridfeed writes: {seq, grid, kind, op,\n"
    "version, record_key, origin_device, committed_at, previous_grid_code, record},\n"
    "the record masked unless --reveal (logged).\n";

/* Set by SIGINT/SIGTERM; also the client library's cancel flag with --feed
 * (lock-free, so a handler may set it). */
static atomic_int s_stop;

static void
s_on_signal(int sig)
{
    (void) sig;
    atomic_store(&s_stop, 1);
}

/* One event kept for the "last N" view. */
typedef struct s_kept {
    uint64_t seq;               /* its seq */
    char grid[GS_GRID_LEN + 1]; /* its cell */
    uint8_t *data;              /* malloc'd packed ChangeEvent */
    size_t len;                 /* its length */
} s_kept_t;

typedef struct s_tail {
    gc_ctx_t *ctx;              /* options, output */
    gs_arena_t *arena;          /* one event at a time */
    gs_json_t json;             /* --json output */
    uint64_t printed;           /* events printed */
    uint64_t count;             /* stop after this many (0 = never) */
    uint64_t last_seq;          /* last event printed */
    s_kept_t *ring;             /* last-N buffer */
    size_t ring_size, ring_n, ring_next; /* capacity, held, next slot */
    const char *categories[S_MAX_CATEGORIES]; /* --category codes (in cat_buf) */
    size_t n_categories;        /* 0: every event */
    char cat_buf[S_MAX_CATEGORIES][GS_INCIDENT_CATEGORY_MAX + 1]; /* their text */
    int nomem;                  /* an allocation failed */
    int bad;                    /* events that did not decode */
} s_tail_t;

/* Print one event (packed bytes). Returns 1 when --count is reached. */
static int
s_print(s_tail_t *t, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    gs_arena_reset(t->arena);
    Gridsync__V1__ChangeEvent *ev = gc_event_load(data, len, t->arena, t->ctx->reveal);
    if (!ev) {
        t->bad++;
        return 0;
    }
    if (t->ctx->json) {
        gs_json_event(&t->json, ev, 1); /* masked when loaded */
    } else {
        char when[32], where[48];
        if (ev->previous_grid_code && *ev->previous_grid_code)
            snprintf(where, sizeof where, "%s -> %s", ev->previous_grid_code, grid);
        else
            snprintf(where, sizeof where, "%s", grid);
        fprintf(t->ctx->out, "%8llu  %s  %-8s  %-9s  %s v%llu  %s  %s\n",
                (unsigned long long) seq, gc_time_local(ev->committed_at, when, sizeof when),
                gc_op_name(ev->op), gc_kind_name(ev->kind), ev->record_key ? ev->record_key : "",
                (unsigned long long) ev->version, where,
                ev->origin_device ? ev->origin_device : "");
    }
    t->printed++;
    t->last_seq = seq;
    return t->count && t->printed >= t->count;
}

/* Is the packed event one to show: any, or with --category an incident of
 * one of the categories? */
static int
s_wanted(const s_tail_t *t, const uint8_t *data, size_t len)
{
    if (!t->n_categories)
        return 1;
    char category[GS_INCIDENT_CATEGORY_MAX + 1];
    if (!gs_topic_event_category(data, len, category))
        return 0;
    for (size_t i = 0; i < t->n_categories; i++)
        if (!strcmp(category, t->categories[i]))
            return 1;
    return 0;
}

static int
s_on_event(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    if (!s_wanted(arg, data, len))
        return 0;
    return s_print(arg, seq, grid, data, len);
}

/* Keep the event in the ring of the last ring_size. */
static int
s_on_keep(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    s_tail_t *t = arg;
    if (!s_wanted(t, data, len))
        return 0;
    s_kept_t *k = &t->ring[t->ring_next];
    free(k->data);
    k->data = malloc(len ? len : 1);
    if (!k->data) {
        t->nomem = 1;
        return 1;
    }
    memcpy(k->data, data, len);
    k->len = len;
    k->seq = seq;
    snprintf(k->grid, sizeof k->grid, "%s", grid);
    t->ring_next = (t->ring_next + 1) % t->ring_size;
    if (t->ring_n < t->ring_size)
        t->ring_n++;
    return 0;
}

static void
s_ring_clear(s_tail_t *t)
{
    for (size_t i = 0; i < t->ring_size; i++) {
        free(t->ring[i].data);
        t->ring[i].data = NULL;
    }
    t->ring_n = t->ring_next = 0;
}

/* The last limit events under prefix: read windows that grow from the
 * head backwards until they hold enough (the log has no holes, so a
 * window of w seqs holds at most w events). *next is the seq to follow
 * from. */
static int
s_last(s_tail_t *t, gs_store_t *st, const char *prefix, uint64_t limit, uint64_t *next)
{
    uint64_t head = 0;
    int err = gs_store_head(st, &head);
    if (err)
        return err;
    t->ring_size = (size_t) limit;
    t->ring = calloc(t->ring_size, sizeof *t->ring);
    if (!t->ring)
        return GS_ENOMEM;
    const char *pf[1] = { prefix };
    uint64_t window = limit * 4 > 256 ? limit * 4 : 256;
    for (;;) {
        uint64_t since = head > window ? head - window : 0, n2 = 0, h2 = 0;
        s_ring_clear(t);
        err = gs_store_events(st, pf, 1, since, 0, s_on_keep, t, &n2, &h2);
        if (err)
            return t->nomem ? GS_ENOMEM : err;
        *next = n2;
        if (t->ring_n >= limit || since == 0)
            break;
        window = window > UINT64_MAX / 8 ? UINT64_MAX : window * 8;
    }
    size_t start = (t->ring_next + t->ring_size - t->ring_n) % t->ring_size;
    for (size_t i = 0; i < t->ring_n; i++) {
        const s_kept_t *k = &t->ring[(start + i) % t->ring_size];
        if (s_print(t, k->seq, k->grid, k->data, k->len))
            return 1;
    }
    return 0;
}

/* Follow the live feed through the client library. */
static int
s_follow_feed(s_tail_t *t, const gc_args_t *a, const char *feed_ep, const char *upload_ep,
              const char *prefix, uint64_t since, uint64_t epoch, int64_t hb_warn_ms)
{
    gc_ctx_t *ctx = t->ctx;
    gs_client_error_t cerr = { 0, "" };
    gs_sub_opts_t so;
    gs_sub_opts_init(&so);
    /* since is a seq of the store read above: the broker must serve that
     * lineage, or following from since would skip events */
    so.epoch = epoch;
    so.cancel = &s_stop;
    so.err = &cerr;
    /* what would be masked anyway is better not sent at all */
    so.omit_restricted = !ctx->reveal;
    const char *keys = gc_args_get(a, "keys");
    if (keys && gs_curve_keys_load(&so.curve, keys))
        return gc_fail(ctx, "cannot read CURVE keys from %s", keys);
    so.categories = t->categories;
    so.n_categories = t->n_categories;
    const char *pf[1] = { prefix };
    int err = 0;
    gs_sub_t *sub = gs_sub_new(feed_ep, upload_ep, pf, 1, NULL, since, &so, &err);
    if (!sub && err == GS_CLIENT_ECANCELLED)
        return GC_EXIT_OK; /* interrupted while catching up */
    char text[512];
    if (!sub)
        return gc_fail(ctx, "cannot follow the feed: %s",
                       gs_client_errtext(err, &cerr, text, sizeof text));
    /* stderr, so that the events on stdout stay machine-readable */
    if (!t->n_categories)
        fprintf(stderr, "gridctl tail: following \"%s\" through the live feed at %s\n",
                prefix, feed_ep);
    for (size_t i = 0; t->n_categories && i < gs_sub_count(sub); i++)
        fprintf(stderr, "gridctl tail: following incident topic \"%s\" through the live "
                "feed at %s\n", gs_sub_topic(sub, i), feed_ep);
    int rc = GC_EXIT_OK;
    while (!s_stop) {
        Gridsync__V1__ChangeEvent *ev = NULL;
        int r = gs_sub_next(sub, 500, &ev);
        char warning[256];
        if (r >= 0 && gs_sub_silence(sub, hb_warn_ms, warning, sizeof warning))
            fprintf(stderr, "gridctl tail: %s\n", warning);
        if (r == 1 || r == GS_CLIENT_ECANCELLED)
            continue;
        if (r == GS_CLIENT_ELINEAGE) {
            /* seqs printed so far belong to a store that no longer exists */
            gs_sub_lineage_t l;
            gs_sub_lineage(sub, &l);
            rc = gc_fail(ctx, "the broker's store was restored or replaced: %s; the events "
                         "printed so far are void, start again to follow the restored log",
                         l.message);
            break;
        }
        if (r < 0) {
            rc = gc_fail(ctx, "feed: %s", gs_client_errtext(r, &cerr, text, sizeof text));
            break;
        }
        /* repack so the event is masked the one way every event is */
        size_t len = gridsync__v1__change_event__get_packed_size(ev);
        uint8_t *buf = malloc(len ? len : 1);
        int done = 0;
        if (buf) {
            gridsync__v1__change_event__pack(ev, buf);
            done = s_print(t, ev->seq, ev->grid_code ? ev->grid_code : "", buf, len);
        }
        free(buf);
        gridsync__v1__change_event__free_unpacked(ev, NULL);
        fflush(ctx->out);
        if (!buf) {
            rc = gc_fail(ctx, "out of memory");
            break;
        }
        if (done)
            break;
    }
    gs_sub_destroy(&sub);
    return rc;
}

/* --category C[,C2...], repeatable, into t->categories: each code 1 to
 * GS_INCIDENT_CATEGORY_MAX letters or digits (what an incident topic
 * takes), none twice. */
static int
s_categories_parse(gc_ctx_t *ctx, const gc_args_t *a, s_tail_t *t)
{
    const char *given[GC_MAX_ARGS];
    size_t n = gc_args_all(a, "category", given, GC_MAX_ARGS);
    for (size_t i = 0; i < n; i++) {
        const char *p = given[i];
        for (;;) {
            size_t len = strcspn(p, ",");
            char *c = t->cat_buf[t->n_categories];
            char topic[GS_TOPIC_MAX + 1];
            if (t->n_categories == S_MAX_CATEGORIES)
                return gc_usage(ctx, "at most %d categories", S_MAX_CATEGORIES);
            if (len == 0 || len > GS_INCIDENT_CATEGORY_MAX)
                return gc_usage(ctx, "--category wants codes of 1 to %d letters or digits "
                                "separated by commas (e.g. 02,03), not '%.32s'",
                                GS_INCIDENT_CATEGORY_MAX, given[i]);
            memcpy(c, p, len);
            c[len] = 0;
            if (gs_topic_incident(topic, sizeof topic, c, "") < 0)
                return gc_usage(ctx, "--category '%s' is not 1 to %d letters or digits", c,
                                GS_INCIDENT_CATEGORY_MAX);
            for (size_t j = 0; j < t->n_categories; j++)
                if (!strcmp(t->categories[j], c))
                    return gc_usage(ctx, "--category '%s' is given twice", c);
            t->categories[t->n_categories++] = c;
            if (!p[len])
                break;
            p += len + 1;
        }
    }
    return GC_EXIT_OK;
}

int
gc_cmd_tail(gc_ctx_t *ctx, int argc, char **argv)
{
    static const gc_optspec_t spec[] = { { "since", 1 }, { "limit", 1 }, { "follow", 0 },
                                         { "feed", 1 },  { "upload", 1 }, { "keys", 1 },
                                         { "count", 1 }, { "heartbeat-warn", 1 },
                                         { "category", 1 }, { NULL, 0 } };
    gc_args_t a;
    int rc = gc_args_parse(ctx, argc, argv, spec, &a);
    if (rc)
        return rc;
    if (a.help) {
        fputs(s_help, ctx->out);
        return GC_EXIT_OK;
    }
    if (a.n_pos > 1)
        return gc_usage(ctx, "expected at most one PREFIX");
    const char *prefix = a.n_pos ? a.pos[0] : "";
    uint64_t since, limit, count, hb_warn;
    int has_since = gc_args_has(&a, "since");
    if ((rc = gc_prefix_arg(ctx, prefix)) ||
        (rc = gc_args_u64(ctx, &a, "heartbeat-warn", 5000, 0, 86400000, &hb_warn)) ||
        (rc = gc_args_u64(ctx, &a, "since", 0, 0, UINT64_MAX, &since)) ||
        (rc = gc_args_u64(ctx, &a, "limit", has_since ? 0 : 20, 1, 1000000, &limit)) ||
        (rc = gc_args_u64(ctx, &a, "count", 0, 1, UINT64_MAX, &count)))
        return rc;
    int follow = gc_args_has(&a, "follow");
    /* --keys alone means the live feed too: the bundle names the endpoints */
    const char *keys = gc_args_get(&a, "keys");
    int feed = gc_args_has(&a, "feed") || gc_args_has(&a, "upload") || keys;
    if (feed && !follow)
        return gc_usage(ctx, "--feed, --upload and --keys are for --follow");
    if (gc_args_has(&a, "heartbeat-warn") && !feed)
        return gc_usage(ctx, "--heartbeat-warn is for --feed");
    const char *feed_ep = gc_args_get(&a, "feed"), *upload_ep = gc_args_get(&a, "upload");
    gs_bundle_info_t bundle;
    memset(&bundle, 0, sizeof bundle);
    if (keys && gs_bundle_info_load(&bundle, keys))
        return gc_fail(ctx, "cannot read the enrolment bundle %s", keys);
    if (!feed_ep && bundle.feed_endpoint[0])
        feed_ep = bundle.feed_endpoint;
    if (!upload_ep && bundle.upload_endpoint[0])
        upload_ep = bundle.upload_endpoint;
    if (feed && !(feed_ep && upload_ep)) {
        if (!keys)
            return gc_usage(ctx, "--feed and --upload go together");
        const char *which = !feed_ep ? "feed" : "upload";
        return gc_usage(ctx, "%s names no %s endpoint: give --%s EP", keys, which, which);
    }
    gs_verdict_t v;
    if (feed && gs_prefix_check(prefix, &v))
        return gc_usage(ctx, "with --feed, PREFIX must be 0, 2, 4, 6, 9, 12 or 15 digits");
    s_tail_t t;
    memset(&t, 0, sizeof t);
    if ((rc = s_categories_parse(ctx, &a, &t)))
        return rc;

    gs_store_t *st = gc_store_open(ctx, 0, &rc);
    if (!st)
        return rc;
    t.ctx = ctx;
    t.count = count;
    t.arena = gs_arena_new(0);
    gs_json_init_file(&t.json, ctx->out);
    if (!t.arena) {
        gs_store_destroy(&st);
        return gc_fail(ctx, "out of memory");
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    const char *pf[1] = { prefix };
    uint64_t next = since, head = 0;
    int err;
    if (has_since)
        err = gs_store_events(st, pf, 1, since, (uint32_t) limit, s_on_event, &t, &next, &head);
    else
        err = s_last(&t, st, prefix, limit, &next);
    int done = err == 1;
    if (err < 0) {
        rc = err == GS_ENOMEM ? gc_fail(ctx, "out of memory") : gc_store_fail(ctx, "tail", err);
        done = 1;
    }
    fflush(ctx->out);
    if (!done && follow && feed) {
        /* the store is not needed while following the broker */
        uint64_t epoch = 0;
        gs_store_epoch(st, &epoch); /* 0 (not known) for a store from before epochs */
        gs_store_destroy(&st);
        rc = s_follow_feed(&t, &a, feed_ep, upload_ep, prefix,
                           t.last_seq > next ? t.last_seq : next, epoch, (int64_t) hb_warn);
    }
    while (!done && follow && !feed && !s_stop) {
        struct timespec ts = { 0, 500 * 1000000L };
        nanosleep(&ts, NULL);
        if (s_stop)
            break;
        err = gs_store_events(st, pf, 1, next, 0, s_on_event, &t, &next, &head);
        fflush(ctx->out);
        if (err == 1)
            break;
        if (err < 0) {
            rc = gc_store_fail(ctx, "tail", err);
            break;
        }
    }
    gs_store_destroy(&st);
    if (t.ring) {
        s_ring_clear(&t);
        free(t.ring);
    }
    gs_arena_destroy(&t.arena);
    if (!rc && t.bad)
        rc = gc_fail(ctx, "%d event(s) did not decode; run gridctl verify", t.bad);
    return gc_finish(ctx, rc);
}

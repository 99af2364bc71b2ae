/*
 * make_seeds: writes the seed corpus of the fuzz targets.
 *
 *   make_seeds OUTDIR      (then copy OUTDIR/<target>/ to tests/fuzz/corpus/)
 *
 * Seeds are valid inputs, so that mutation starts from what real clients
 * send and reaches past the decoder: uploads of households, rental units
 * and organisations from the small fuzz district (gs_fuzz_district), some with ID
 * numbers and phones in forms the broker normalises, plus a few with
 * mistakes; sync and snapshot requests, one of them carrying a real
 * second-page cursor from a store filled like the sync target's; and for
 * the store target, an order of uploads that creates, edits, moves,
 * merges and voids records; for the replica target, the change log of a
 * store filled like the sync target's, as a district's stream carries it,
 * whole, redelivered, with a gap and with a lineage change; for the topic
 * target, subscription topics of every kind and level, some broken, and
 * packed events: incidents of the district as the store keeps them, a
 * household, and an incident without a category; for the category table
 * target, the built-in table as `gridctl incidents categories show` prints
 * it, tables an operator edited (comments, blank lines, CRLF, a retired
 * category, a code of letters) and a few with one mistake. Deterministic:
 * the same bytes on every run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gs_arena.h"
#include "gs_fuzz.h"
#include "gs_gen_incident.h"
#include "gs_incident.h"
#include "gs_validate.h"

static const char *s_out;           /* output directory */

static void
s_die(const char *what)
{
    fprintf(stderr, "make_seeds: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void
s_write(const char *target, const char *name, int flags, const uint8_t *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", s_out, target);
    if (mkdir(path, 0755) && errno != EEXIST)
        s_die(path);
    snprintf(path, sizeof path, "%s/%s/%s", s_out, target, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        s_die(path);
    if (flags >= 0)
        fputc(flags, f);
    if (len && fwrite(data, 1, len, f) != len)
        s_die(path);
    if (fclose(f))
        s_die(path);
}

static void
s_write_request(const char *target, const char *name, Gridsync__V1__Request *req)
{
    size_t n = gridsync__v1__request__get_packed_size(req);
    uint8_t *b = malloc(n + 1);
    gridsync__v1__request__pack(req, b);
    s_write(target, name, -1, b, n);
    free(b);
}

static Gridsync__V1__Upload
s_upload(const char *device, const char *uid, Gridsync__V1__Record **recs, size_t n)
{
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = (char *) device;
    up.upload_id = (char *) uid;
    up.records = recs;
    up.n_records = n;
    return up;
}

static void
s_write_upload_request(const char *name, Gridsync__V1__Upload *up)
{
    Gridsync__V1__Request req = GRIDSYNC__V1__REQUEST__INIT;
    req.request_id = 1;
    req.body_case = GRIDSYNC__V1__REQUEST__BODY_UPLOAD;
    req.upload = up;
    s_write_request("fuzz_upload", name, &req);
}

static void
s_write_apply(const char *name, int flags, Gridsync__V1__Upload *up)
{
    size_t n = gridsync__v1__upload__get_packed_size(up);
    uint8_t *b = malloc(n + 1);
    gridsync__v1__upload__pack(up, b);
    s_write("fuzz_store_apply", name, flags, b, n);
    free(b);
}

/* Rewrite the first member's ID number as typed on a phone keyboard in
 * full-width digits, and its first phone with a +86 prefix and spaces. */
static void
s_untidy(Gridsync__V1__Record *rec, gs_arena_t *a)
{
    Gridsync__V1__Person *p = rec->household->members[0];
    char wide[18 * 3 + 1], *w = wide;
    for (const char *c = p->id_number; *c; c++) {
        if (*c >= '0' && *c <= '9') {
            /* U+FF10 + digit: EF BC 90.. */
            *w++ = (char) 0xef;
            *w++ = (char) 0xbc;
            *w++ = (char) (0x90 + (*c - '0'));
        } else {
            *w++ = (char) (*c == 'X' ? 'x' : *c);
        }
    }
    *w = 0;
    p->id_number = gs_arena_strdup(a, wide);
    if (p->n_phones && strlen(p->phones[0]) == 11 && p->phones[0][0] == '1') {
        char ph[32];
        const char *d = p->phones[0];
        snprintf(ph, sizeof ph, "+86 %.3s %.4s %.4s", d, d + 3, d + 7);
        p->phones[0] = gs_arena_strdup(a, ph);
    }
}

static void
s_uploads(gs_gen_t *g, gs_arena_t *a)
{
    Gridsync__V1__Record *recs[8];
    Gridsync__V1__Upload up;

    for (uint32_t i = 0; i < 3; i++)
        recs[i] = gs_gen_household(g, i, a);
    up = s_upload("dev-fuzz", "seed-households", recs, 3);
    s_write_upload_request("households", &up);

    recs[0] = gs_gen_rental(g, 0, a);
    recs[1] = gs_gen_rental(g, 3, a);
    up = s_upload("dev-fuzz", "seed-rentals", recs, 2);
    s_write_upload_request("rentals", &up);

    recs[0] = gs_gen_household(g, 5, a);
    s_untidy(recs[0], a);
    recs[1] = gs_gen_rental(g, 1, a);
    up = s_upload("dev-fuzz", "seed-untidy", recs, 2);
    s_write_upload_request("untidy", &up);

    /* mistakes: a wrong check character, an unknown enum value */
    recs[0] = gs_gen_household(g, 6, a);
    char *id = gs_arena_strdup(a, recs[0]->household->members[0]->id_number);
    id[17] = id[17] == '0' ? '1' : '0';
    recs[0]->household->members[0]->id_number = id;
    recs[1] = gs_gen_household(g, 7, a);
    recs[1]->household->members[0]->sex = (Gridsync__V1__Sex) 99;
    up = s_upload("dev-fuzz", "seed-mistakes", recs, 2);
    s_write_upload_request("mistakes", &up);

    for (uint32_t i = 0; i < 4; i++)
        recs[i] = gs_gen_org(g, i, a);
    up = s_upload("dev-fuzz", "seed-organisations", recs, 4);
    s_write_upload_request("organisations", &up);

    /* an organisation with a wrong USCC check character, one without a kind */
    recs[0] = gs_gen_org(g, 4, a);
    recs[0]->organisation->uscc = gs_arena_strdup(a, "91350100M000100Y44");
    recs[1] = gs_gen_org(g, 5, a);
    recs[1]->organisation->kind = GRIDSYNC__V1__ORG_KIND__ORG_KIND_UNSPECIFIED;
    up = s_upload("dev-fuzz", "seed-org-mistakes", recs, 2);
    s_write_upload_request("org-mistakes", &up);

    /* incidents of the first grids; then one of an unknown category and
     * one with a GPS point out of range */
    gs_gen_opts_t go;
    gs_gen_opts_init(&go);
    size_t ni = 0;
    for (uint32_t grid = 0; grid < 4 && ni < 4; grid++) {
        gs_gen_incident_t inc;
        if (gs_gen_incident(g, grid, 0, go.now_ms, a, &inc) == 0)
            recs[ni++] = inc.report;
    }
    up = s_upload("dev-fuzz", "seed-incidents", recs, ni);
    s_write_upload_request("incidents", &up);
    gs_gen_incident_t bad;
    if (gs_gen_incident(g, 0, 0, go.now_ms, a, &bad) == 0) {
        bad.report->incident->category = gs_arena_strdup(a, "07");
        recs[0] = bad.report;
        Gridsync__V1__GeoPoint *pt = gs_arena_alloc(a, sizeof *pt);
        gridsync__v1__geo_point__init(pt);
        pt->lat = 91.5;
        pt->lon = 113.9;
        gs_gen_incident_t far;
        gs_gen_incident(g, 1, 0, go.now_ms, a, &far);
        far.report->incident->location = pt;
        recs[1] = far.report;
        up = s_upload("dev-fuzz", "seed-incident-mistakes", recs, 2);
        s_write_upload_request("incident-mistakes", &up);
    }
}

static void
s_sync_request(const char *target, const char *name, const char **prefixes, size_t n,
               uint64_t since, uint32_t limit, int omit)
{
    Gridsync__V1__SyncRequest s = GRIDSYNC__V1__SYNC_REQUEST__INIT;
    s.prefixes = (char **) prefixes;
    s.n_prefixes = n;
    s.since_seq = since;
    s.limit = limit;
    s.omit_restricted = omit;
    Gridsync__V1__Request req = GRIDSYNC__V1__REQUEST__INIT;
    req.request_id = 7;
    req.body_case = GRIDSYNC__V1__REQUEST__BODY_SYNC;
    req.sync = &s;
    s_write_request(target, name, &req);
}

static void
s_snapshot_request(const char *target, const char *name, const char **prefixes, size_t n,
                   uint32_t limit, const uint8_t *cursor, size_t cursor_len, int omit)
{
    Gridsync__V1__SnapshotRequest s = GRIDSYNC__V1__SNAPSHOT_REQUEST__INIT;
    s.prefixes = (char **) prefixes;
    s.n_prefixes = n;
    s.limit = limit;
    s.cursor.data = (uint8_t *) cursor;
    s.cursor.len = cursor_len;
    s.omit_restricted = omit;
    Gridsync__V1__Request req = GRIDSYNC__V1__REQUEST__INIT;
    req.request_id = 8;
    req.body_case = GRIDSYNC__V1__REQUEST__BODY_SNAPSHOT;
    req.snapshot = &s;
    s_write_request(target, name, &req);
}

static int
s_ignore(void *arg, const gs_record_view_t *r)
{
    (void) arg;
    (void) r;
    return 0;
}

static void
s_requests(gs_gen_t *g, const char *target)
{
    const char *all[] = { "" };
    const char *district[] = { "440305" };
    const char *two[] = { "440305001", gs_gen_grid_code(g, 1) };
    const char *grid[] = { gs_gen_grid_code(g, 0) };
    s_sync_request(target, "sync-all", all, 1, 0, 0, 0);
    s_sync_request(target, "sync-limit", two, 2, 3, 5, 1);
    s_sync_request(target, "sync-grid", grid, 1, 0, 0, 0);
    s_snapshot_request(target, "snapshot-first", district, 1, 4, NULL, 0, 0);
    s_snapshot_request(target, "snapshot-grid-omit", grid, 1, 0, NULL, 0, 1);

    /* a real second-page cursor, from a store filled as the sync target's */
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.no_sync = 1;
    gs_store_t *st = gs_store_new(gs_fuzz_tmpdir(), &o, NULL);
    if (!st || gs_fuzz_store_fill(st))
        s_die("store");
    uint8_t *next = NULL;
    size_t next_len = 0;
    uint64_t seq;
    if (gs_store_snapshot(st, district, 1, NULL, 0, 4, s_ignore, NULL, &next, &next_len, &seq) ||
        !next)
        s_die("snapshot");
    s_snapshot_request(target, "snapshot-page2", district, 1, 4, next, next_len, 0);
    free(next);
    gs_store_destroy(&st);
}

/* The store target: an order of uploads that creates, edits, moves,
 * merges and voids (file names keep the order). */
static void
s_applies(gs_gen_t *g, gs_arena_t *a)
{
    Gridsync__V1__Record *recs[8];
    Gridsync__V1__Upload up;

    for (uint32_t i = 0; i < 4; i++)
        recs[i] = gs_gen_household(g, i, a);
    up = s_upload("dev-fuzz", "a-new", recs, 4);
    s_write_apply("00-new", 0, &up);

    for (uint32_t i = 0; i < 3; i++)
        recs[i] = gs_gen_rental(g, i, a);
    up = s_upload("dev-fuzz", "a-rentals", recs, 3);
    s_write_apply("01-rentals", GS_FUZZ_APPLY_PREPARED, &up);

    recs[0] = gs_gen_household(g, 0, a);
    recs[0]->household->address = gs_arena_strdup(a, "changed address");
    recs[0]->household->meta->base_version = 1;
    up = s_upload("dev-fuzz", "a-edit", recs, 1);
    s_write_apply("02-edit", GS_FUZZ_APPLY_REPAIR_IDS, &up);

    recs[0] = gs_gen_household(g, 1, a);
    recs[0]->household->grid_code =
        gs_arena_strdup(a, gs_gen_grid_code(g, gs_gen_grid_count(g) - 1));
    recs[0]->household->meta->base_version = 1;
    up = s_upload("dev-fuzz", "a-move", recs, 1);
    s_write_apply("03-move", GS_FUZZ_APPLY_PREPARED | GS_FUZZ_APPLY_REPAIR_IDS, &up);

    recs[0] = gs_gen_household(g, 2, a);
    recs[0]->household->household_id = gs_arena_strdup(a, "H-merge-1");
    up = s_upload("dev-fuzz", "a-merge", recs, 1);
    s_write_apply("04-merge", 0, &up);

    recs[0] = gs_gen_rental(g, 1, a);
    recs[0]->rental->meta->status = GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_VOID;
    recs[0]->rental->meta->base_version = 1;
    recs[1] = gs_gen_household(g, 3, a);
    recs[1]->household->address = gs_arena_strdup(a, "edited ahead");
    recs[1]->household->meta->base_version = 7; /* ahead of the store */
    up = s_upload("dev-fuzz", "a-void", recs, 2);
    s_write_apply("05-void-ahead", GS_FUZZ_APPLY_PREPARED, &up);

    for (uint32_t i = 0; i < 3; i++)
        recs[i] = gs_gen_household(g, 4 + i * 4, a); /* grids 2, 3, 4 */
    up = s_upload("dev-fuzz", "a-scoped", recs, 3);
    s_write_apply("06-scoped-twice", GS_FUZZ_APPLY_SCOPED | GS_FUZZ_APPLY_TWICE, &up);

    /* organisations, and the first one again under a new id: a merge */
    for (uint32_t i = 0; i < 4; i++)
        recs[i] = gs_gen_org(g, i, a);
    recs[4] = gs_gen_org(g, 0, a);
    recs[4]->organisation->org_id = gs_arena_strdup(a, "O-merge-1");
    up = s_upload("dev-fuzz", "a-orgs", recs, 5);
    s_write_apply("07-organisations", GS_FUZZ_APPLY_PREPARED | GS_FUZZ_APPLY_REPAIR_IDS, &up);

    /* incidents reported, then the same twice (unchanged); a device's
     * acceptance of one is refused (ROLE) */
    gs_gen_opts_t go;
    gs_gen_opts_init(&go);
    size_t ni = 0;
    for (uint32_t grid = 0; grid < 4 && ni < 3; grid++) {
        gs_gen_incident_t inc;
        if (gs_gen_incident(g, grid, 0, go.now_ms, a, &inc) == 0)
            recs[ni++] = inc.report;
    }
    up = s_upload("dev-fuzz", "a-incidents", recs, ni);
    s_write_apply("08-incidents", GS_FUZZ_APPLY_PREPARED | GS_FUZZ_APPLY_TWICE, &up);
}

/* The events of a filled store, as messages of gs_fuzz_replicate. */
typedef struct s_stream {
    uint8_t *data[512];             /* packed ChangeEvents */
    size_t len[512];                /* their lengths */
    size_t n;                       /* how many */
} s_stream_t;

static int
s_take_event(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    (void) seq;
    (void) grid;
    s_stream_t *s = arg;
    if (s->n == 512 || len > 0xffff)
        return 0;
    s->data[s->n] = malloc(len);
    if (!s->data[s->n])
        s_die("event");
    memcpy(s->data[s->n], data, len);
    s->len[s->n++] = len;
    return 0;
}

/* Messages [from, to) of s (skipping skip, when it is in range), those
 * from flags_from on with flags; all of it twice when twice. */
static void
s_write_replicate(const char *name, const s_stream_t *s, size_t from, size_t to, size_t skip,
                  int flags_from, int flags, int twice)
{
    size_t cap = 0;
    for (size_t i = 0; i < s->n; i++)
        cap += s->len[i] + 3;
    uint8_t *b = malloc(2 * cap + 1), *w = b; /* twice at most */
    if (!b)
        s_die("seed");
    for (size_t k = from; k < to + (twice ? to - from : 0); k++) {
        size_t i = k < to ? k : from + (k - to);
        if (i == skip)
            continue;
        *w++ = (uint8_t) (i >= (size_t) flags_from ? flags : 0);
        *w++ = (uint8_t) (s->len[i] & 0xff);
        *w++ = (uint8_t) (s->len[i] >> 8);
        memcpy(w, s->data[i], s->len[i]);
        w += s->len[i];
    }
    s_write("fuzz_replicate", name, -1, b, (size_t) (w - b));
    free(b);
}

static void
s_replicates(void)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/.replicate-store", s_out);
    if (mkdir(dir, 0700) && errno != EEXIST)
        s_die(dir);
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.no_sync = 1;
    int err = 0;
    gs_store_t *st = gs_store_new(dir, &o, &err);
    static s_stream_t s;
    const char *all = "";
    if (!st || gs_fuzz_store_fill(st) ||
        gs_store_events(st, &all, 1, 0, 0, s_take_event, &s, NULL, NULL) || s.n < 4)
        s_die("replicate store");
    gs_store_destroy(&st);
    s_write_replicate("01-stream", &s, 0, s.n, s.n, 0, 0, 0);
    /* the first half twice: the second copy is skipped */
    s_write_replicate("02-redelivered", &s, 0, s.n / 2, s.n, 0, 0, 1);
    s_write_replicate("03-gap", &s, 0, s.n, s.n / 2, 0, 0, 0);
    s_write_replicate("04-lineage", &s, 0, s.n, s.n, (int) (s.n / 2), GS_FUZZ_REPL_OTHER_EPOCH,
                      0);
    s_write_replicate("05-seq-header", &s, 0, 4, s.n, 2, GS_FUZZ_REPL_BAD_SEQ, 0);
    s_write_replicate("06-other-origin", &s, 0, 4, s.n, 3, GS_FUZZ_REPL_OTHER_ORIGIN, 0);
    for (size_t i = 0; i < s.n; i++)
        free(s.data[i]);
    /* the store itself is not part of the corpus */
    char path[1200];
    const char *files[] = { "data.mdb", "lock.mdb", "secret.key" };
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        remove(path);
    }
    rmdir(dir);
}

/* An event of rec as the store packs it, written as a fuzz_topic seed. */
static void
s_write_topic_event(const char *name, Gridsync__V1__Record *rec, const char *grid,
                    Gridsync__V1__RecordKind kind, uint64_t seq)
{
    Gridsync__V1__ChangeEvent ev = GRIDSYNC__V1__CHANGE_EVENT__INIT;
    uint64_t prev[7] = { seq - 1, seq - 1, seq - 1, seq - 2, seq - 3, seq - 4, seq - 5 };
    ev.seq = seq;
    ev.grid_code = (char *) grid;
    ev.kind = kind;
    ev.op = GRIDSYNC__V1__OPERATION__OPERATION_UPSERT;
    ev.version = 1;
    ev.record_key = "seed";
    ev.record = rec;
    ev.prev_seq = prev;
    ev.n_prev_seq = 7;
    ev.committed_at = gs_fuzz_now_ms();
    size_t len = gridsync__v1__change_event__get_packed_size(&ev);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        s_die("malloc");
    gridsync__v1__change_event__pack(&ev, buf);
    s_write("fuzz_topic", name, -1, buf, len);
    free(buf);
}

/* Seeds of fuzz_topic: topics, then packed events. */
static void
s_topics(gs_gen_t *g, gs_arena_t *a)
{
    static const char *const topics[][2] = {
        { "01-everything", "" },          { "02-province", "44" },
        { "03-district", "440305" },      { "04-street", "440305001" },
        { "05-grid", "440305001001001" }, { "06-incident-district", "I02/440305" },
        { "07-incident-all", "I02/" },    { "08-incident-grid", "IABCDEFGH/440305001001001" },
        { "09-no-separator", "I02" },     { "10-no-category", "I/44" },
        { "11-bad-level", "4403051" },    { "12-category-too-long", "I123456789/44" },
    };
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
        s_write("fuzz_topic", topics[i][0], -1, (const uint8_t *) topics[i][1],
                strlen(topics[i][1]));
    gs_gen_opts_t go;
    gs_gen_opts_init(&go);
    char name[64];
    for (uint32_t grid = 0; grid < 2; grid++) {
        gs_gen_incident_t inc;
        if (gs_gen_incident(g, grid, 0, go.now_ms, a, &inc))
            continue;
        snprintf(name, sizeof name, "2%u-incident-event", grid);
        s_write_topic_event(name, inc.report, inc.report->incident->grid_code,
                            GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT, 100 + grid);
        if (grid == 0) {
            inc.report->incident->category = "";
            s_write_topic_event("29-incident-no-category", inc.report,
                                inc.report->incident->grid_code,
                                GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT, 120);
        }
    }
    Gridsync__V1__Record *h = gs_gen_household(g, 0, a);
    if (h)
        s_write_topic_event("30-household-event", h, h->household->grid_code,
                            GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD, 130);
}

/* Seeds of fuzz_categories: category tables as text. */
static void
s_categories(void)
{
    const gs_incident_table_t *t = gs_incident_table_default();
    size_t n = gs_incident_table_format(t, NULL, 0);
    char *text = malloc(n + 1);
    if (!text)
        s_die("malloc");
    gs_incident_table_format(t, text, n + 1);
    s_write("fuzz_categories", "01-builtin", -1, (const uint8_t *) text, n);
    free(text);
    static const char *const tables[][2] = {
        { "02-edited",
          "# our district's table\n"
          "\n"
          "07\t噪音扰民\t96\t48\t24\t12\t48\t24\t12\t2\tactive\r\n"
          "01\t矛盾纠纷\t240\t120\t72\t24\t72\t48\t24\t4\tretired\n"
          "  \t\n"
          "A1\tOther\t1\t1\t1\t1\t8760\t8760\t1\t1\tactive" },
        { "03-one-line", "99\t其他\t240\t120\t72\t24\t72\t48\t24\t4\tactive\n" },
        { "10-ten-fields", "01\t矛盾纠纷\t240\t120\t72\t24\t72\t48\t24\t4\n" },
        { "11-hours-grow", "01\tx\t24\t48\t1\t1\t1\t1\t1\t1\tactive\n" },
        { "12-twice",
          "01\tx\t1\t1\t1\t1\t1\t1\t1\t1\tactive\n"
          "01\ty\t1\t1\t1\t1\t1\t1\t1\t1\tactive\n" },
        { "13-all-retired", "01\tx\t1\t1\t1\t1\t1\t1\t1\t1\tretired\n" },
        { "14-bad-state", "01\t名\t1\t1\t1\t1\t1\t1\t1\t1\t停用\n" },
    };
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
        s_write("fuzz_categories", tables[i][0], -1, (const uint8_t *) tables[i][1],
                strlen(tables[i][1]));
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    s_out = argv[1];
    if (mkdir(s_out, 0755) && errno != EEXIST)
        s_die(s_out);
    gs_gen_t *g = gs_fuzz_district();
    gs_arena_t *a = gs_arena_new(0);
    if (!g || !a)
        s_die("generator");
    s_uploads(g, a);
    s_requests(g, "fuzz_upload");
    s_requests(g, "fuzz_sync");
    s_applies(g, a);
    s_replicates();
    s_topics(g, a);
    s_categories();
    gs_arena_destroy(&a);
    gs_gen_destroy(&g);
    return 0;
}

/*
 * test_replica: the city replica end to end, with real components only: a
 * nats-server with JetStream (support/gs_tk_nats), district gridsyncd
 * brokers that devices upload to, and a gridsyncd started with
 * --replica-of. The districts' events are read from their brokers with
 * sync requests and published into each district's stream exactly in the
 * format of docs/federation.md (subject, Nats-Msg-Id, Gridsync-Origin,
 * Gridsync-Epoch, Gridsync-Seq), as the bridge does.
 *
 *   - two origins end as exactly the union (snapshots compared record by
 *     record, bytes included); the replica's log has one event per origin
 *     event with its origin fields; its live feed delivers them; uploads
 *     are refused with REASON_READ_ONLY; gridctl dups on the replica finds
 *     the persons planted in both districts, which neither district sees;
 *     a key asking it for the incident category table gets its own (the
 *     built-in one, then the one set in the city's store), not a district's;
 *   - the replica SIGKILLed several times mid-stream: every origin event
 *     applied exactly once;
 *   - hostile input (bytes that do not decode, a wrong Gridsync-Seq,
 *     another origin's name, a gap): counted, logged, that origin stops,
 *     the other goes on, nothing half-applied;
 *   - lineage: a district replaced by a store of another epoch stops its
 *     origin; --replica-rebaseline=AREA accepts the new lineage;
 *   - drift: a record dropped from the replica's store and one at a
 *     changed version; gridctl compare names their cells and records;
 *     --replica-repair re-reads those cells from the district's stream
 *     (more events waiting behind the applied position meanwhile) and
 *     compare is equal again, the other cells untouched;
 *   - a pull request stands while a batch is applied: while the
 *     replica's commit waits (on the store's write lock, held by the
 *     test), every message stored meanwhile, one publish after another,
 *     is delivered to it, and none is acked before its own commit.
 *     A quiet origin's event is applied while another origin's backlog
 *     still is.
 * Every wait is on the protocol (a reply, a feed event, a log line) and
 * bounded.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <nats/nats.h>

#include "fed_lib.h"
#include "gs_client.h"
#include "gs_config.h"
#include "gs_incident.h"
#include "gs_natslink.h"
#include "gs_replica.h"
#include "gs_store.h"
#include "gs_store_debug.h"
#include "gs_testkit.h"
#include "gs_tk_nats.h"

#define A1 "440305"
#define A2 "440306"
#define SHARED_SEED 9000u           /* two persons registered in both districts */

/* ---- NATS ------------------------------------------------------------------------ */

#define S_USER "city"             /* the authenticated server's user */
#define S_PASSWORD "s3cret-city"    /* and password */
/* a user nkey pair (the one NATS's documentation uses) */
#define S_NKEY_SEED "SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY"
#define S_NKEY_PUB "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"
enum { S_AUTH_NONE, S_AUTH_PASSWORD, S_AUTH_NKEY, S_AUTH_TLS };
static int s_auth;                  /* what the running test's server wants */
static const char *s_batch_arg = "--batch-max-records=50"; /* the replica's batch bound */
static char s_seed_file[128];       /* S_NKEY_SEED in a file, as operators keep it */
static char s_pki[64];              /* S_AUTH_TLS: ca.pem, server.*, client.* */

static void
s_connect(const char *url, natsConnection **nc, jsCtx **js)
{
    natsOptions *o = NULL;
    assert_int_equal(natsOptions_Create(&o), NATS_OK);
    assert_int_equal(natsOptions_SetURL(o, url), NATS_OK);
    if (s_auth == S_AUTH_PASSWORD)
        assert_int_equal(natsOptions_SetUserInfo(o, S_USER, S_PASSWORD), NATS_OK);
    if (s_auth == S_AUTH_NKEY)
        assert_int_equal(natsOptions_SetNKeyFromSeed(o, S_NKEY_PUB, s_seed_file), NATS_OK);
    if (s_auth == S_AUTH_TLS) {
        char ca[128], cert[128], key[128];
        snprintf(ca, sizeof ca, "%s/ca.pem", s_pki);
        snprintf(cert, sizeof cert, "%s/client.pem", s_pki);
        snprintf(key, sizeof key, "%s/client.key", s_pki);
        assert_int_equal(natsOptions_SetSecure(o, true), NATS_OK);
        assert_int_equal(natsOptions_LoadCATrustedCertificates(o, ca), NATS_OK);
        assert_int_equal(natsOptions_LoadCertificatesChain(o, cert, key), NATS_OK);
    }
    assert_int_equal(natsOptions_SetTimeout(o, 5000), NATS_OK);
    /* a signed nonce: nats.c 3.4.1 drops 1 signature in 256 (gs_natslink.h) */
    assert_int_equal(gs_natslink_connect(nc, o, s_auth == S_AUTH_NKEY), NATS_OK);
    natsOptions_Destroy(o);
    assert_int_equal(natsConnection_JetStream(js, *nc, NULL), NATS_OK);
}

/* The district stream GRIDSYNC_<area>, as the bridge creates it. */
static void
s_add_stream(jsCtx *js, const char *area)
{
    char name[32], subj[64];
    snprintf(name, sizeof name, "GRIDSYNC_%s", area);
    snprintf(subj, sizeof subj, "gridsync.%.2s.%.2s.%.2s.>", area, area + 2, area + 4);
    fed_add_stream(js, name, subj, 1);
}

static void
s_purge_stream(jsCtx *js, const char *area)
{
    char name[32];
    snprintf(name, sizeof name, "GRIDSYNC_%s", area);
    assert_int_equal(js_PurgeStream(js, name, NULL, NULL), NATS_OK);
}

/* Publish one message: data with the federation headers (any of which
 * may be NULL to leave it out). Returns its stream sequence. */
static uint64_t
s_publish_raw(jsCtx *js, const char *grid, const char *kind, const void *data, size_t len,
              const char *origin, const char *epoch, const char *seq)
{
    char subj[96], id[96];
    snprintf(subj, sizeof subj, "gridsync.%.2s.%.2s.%.2s.%.3s.%.3s.%.3s.%s", grid, grid + 2,
             grid + 4, grid + 6, grid + 9, grid + 12, kind);
    natsMsg *m = NULL;
    assert_int_equal(natsMsg_Create(&m, subj, NULL, data, (int) len), NATS_OK);
    snprintf(id, sizeof id, "%s:%s:%s", origin ? origin : "-", epoch ? epoch : "-",
             seq ? seq : "-");
    assert_int_equal(natsMsgHeader_Set(m, "Nats-Msg-Id", id), NATS_OK);
    if (origin)
        assert_int_equal(natsMsgHeader_Set(m, "Gridsync-Origin", origin), NATS_OK);
    if (epoch)
        assert_int_equal(natsMsgHeader_Set(m, "Gridsync-Epoch", epoch), NATS_OK);
    if (seq)
        assert_int_equal(natsMsgHeader_Set(m, "Gridsync-Seq", seq), NATS_OK);
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_PublishMsg(&pa, js, m, NULL, &jerr);
    if (s != NATS_OK)
        fail_msg("publish %s: %s (%d)", subj, natsStatus_GetText(s), (int) jerr);
    assert_false(pa->Duplicate);
    uint64_t seq_no = pa->Sequence;
    jsPubAck_Destroy(pa);
    natsMsg_Destroy(m);
    return seq_no;
}

/* ---- districts ------------------------------------------------------------------- */

typedef struct {
    const char *area;               /* its jetstream-area */
    char dir[64];                   /* temp dir */
    char store[128];                /* its store */
    gs_tk_broker_t b;               /* its gridsyncd */
    gs_client_t *c;                 /* a device's client */
    gs_arena_t *arena;              /* records */
    char epoch[17];                 /* its store's epoch, hex */
    uint64_t published;             /* last seq published to its stream */
    int uploads;                    /* uploads made */
} s_district_t;

/* NATS URL the districts' bridges publish to; "" = the test publishes */
static char s_bridge_url[96];

static void
s_district_start(s_district_t *d, const char *area)
{
    memset(d, 0, sizeof *d);
    d->area = area;
    gs_tk_tmpdir(d->dir, sizeof d->dir);
    snprintf(d->store, sizeof d->store, "%s/store", d->dir);
    /* sync replies carry whole records (restricted part too), as the
     * bridge publishes them */
    char url[160], jarea[64];
    snprintf(url, sizeof url, "--jetstream-url=%s", s_bridge_url);
    snprintf(jarea, sizeof jarea, "--jetstream-area=%s", area);
    const char *extra[] = { "--feed-restricted=true", s_bridge_url[0] ? url : NULL, jarea, NULL };
    assert_int_equal(gs_tk_broker_start(&d->b, d->store, extra), 0);
    d->c = gs_client_new(d->b.upload, NULL);
    assert_non_null(d->c);
    d->arena = gs_arena_new(0);
}

static void
s_district_stop(s_district_t *d)
{
    gs_client_destroy(&d->c);
    gs_tk_broker_stop(&d->b, SIGTERM);
    gs_arena_destroy(&d->arena);
    gs_tk_rmtree(d->dir);
}

/* Upload n households to d: hh-<area>-<first+i> in three grids, persons
 * from seed; the one named shared (when not -1) holds the shared persons. */
static void
s_upload(s_district_t *d, int first, int n, uint32_t seed, int shared)
{
    Gridsync__V1__Record *recs[64];
    assert_true(n <= 64);
    for (int i = 0; i < n; i++) {
        char grid[16], hid[32], addr[32];
        int k = first + i;
        snprintf(grid, sizeof grid, "%s001%03d%03d", d->area, 1 + k % 2, 1 + k % 3);
        snprintf(hid, sizeof hid, "hh-%s-%d", d->area, k);
        snprintf(addr, sizeof addr, "ADDR-%s-%d", d->area, k);
        recs[i] = gs_tk_household(d->arena, grid, hid, k % 4 ? addr : NULL, 2,
                                  k == shared ? SHARED_SEED : seed + 10u * (uint32_t) k);
    }
    char upid[32];
    snprintf(upid, sizeof upid, "up-%d", ++d->uploads);
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    char dev[32];
    snprintf(dev, sizeof dev, "dev-%s", d->area);
    up.device_id = dev;
    up.upload_id = upid;
    up.records = recs;
    up.n_records = (size_t) n;
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t err;
    int rc = gs_client_upload(d->c, &up, &ack, &err);
    if (rc)
        fail_msg("upload: %s: %s", gs_client_strerror(rc), err.message);
    for (size_t i = 0; i < ack->n_results; i++)
        assert_true(ack->results[i]->status ==
                        GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED ||
                    ack->results[i]->status ==
                        GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_MERGED);
    gridsync__v1__ack__free_unpacked(ack, NULL);
}

/* Move household k of d to another grid: a MOVE_OUT and a MOVE_IN. */
static void
s_move(s_district_t *d, int k, uint32_t seed)
{
    char grid[16], hid[32];
    snprintf(grid, sizeof grid, "%s002001001", d->area);
    snprintf(hid, sizeof hid, "hh-%s-%d", d->area, k);
    Gridsync__V1__Record *rec = gs_tk_household(d->arena, grid, hid, NULL, 3,
                                                seed + 10u * (uint32_t) k);
    rec->household->meta->base_version = 1;
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    char upid[32];
    snprintf(upid, sizeof upid, "up-%d", ++d->uploads);
    up.device_id = "dev-mover";
    up.upload_id = upid;
    up.records = &rec;
    up.n_records = 1;
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_client_upload(d->c, &up, &ack, &err), 0);
    assert_int_equal(ack->results[0]->version, 2);
    gridsync__v1__ack__free_unpacked(ack, NULL);
}

static uint64_t s_publish(s_district_t *d, jsCtx *js);

/* Publish the events of d after seq since (the ones before are not in
 * the stream, as after a purge); returns the district's head. */
static uint64_t
s_publish_from(s_district_t *d, jsCtx *js, uint64_t since)
{
    d->published = since;
    return s_publish(d, js);
}

/* Publish every event of d after d->published into its stream, as the
 * bridge does (bytes as the district's log holds them: a sync reply
 * carries them whole, and protobuf-c packs them back byte for byte).
 * Returns the district's head. */
static uint64_t
s_publish(s_district_t *d, jsCtx *js)
{
    const char *all = "";
    for (;;) {
        Gridsync__V1__SyncResponse *r = NULL;
        gs_client_error_t err;
        assert_int_equal(gs_client_sync(d->c, &all, 1, d->published, 0, 0, &r, &err), 0);
        snprintf(d->epoch, sizeof d->epoch, "%016" PRIx64, r->store_epoch);
        for (size_t i = 0; i < r->n_events; i++) {
            Gridsync__V1__ChangeEvent *ev = r->events[i];
            size_t n = gridsync__v1__change_event__get_packed_size(ev);
            uint8_t *buf = malloc(n);
            gridsync__v1__change_event__pack(ev, buf);
            char seq[24];
            snprintf(seq, sizeof seq, "%" PRIu64, ev->seq);
            s_publish_raw(js, ev->grid_code, "household", buf, n, d->area, d->epoch, seq);
            free(buf);
            d->published = ev->seq;
        }
        uint64_t head = r->head_seq, next = r->next_seq;
        gridsync__v1__sync_response__free_unpacked(r, NULL);
        if (next >= head)
            return head;
    }
}

/* ---- the replica ----------------------------------------------------------------- */

typedef struct {
    char dir[64];
    char store[128];
    gs_tk_broker_t b;
    char url_arg[96];
} s_replica_t;

static void
s_replica_start(s_replica_t *r, const char *url, const char *rebaseline)
{
    if (!r->dir[0]) {
        gs_tk_tmpdir(r->dir, sizeof r->dir);
        snprintf(r->store, sizeof r->store, "%s/store", r->dir);
        snprintf(r->url_arg, sizeof r->url_arg, "--jetstream-url=%s", url);
    }
    char rb[64], pwf[160], pwarg[200];
    snprintf(rb, sizeof rb, "--replica-rebaseline=%s", rebaseline ? rebaseline : "");
    const char *extra[12] = { "--replica-of=" A1 "," A2, r->url_arg, s_batch_arg };
    int n = 3;
    char seedarg[200], tls[3][200];
    if (s_auth == S_AUTH_TLS) {
        /* the server verified against the CA, the replica by its certificate */
        snprintf(tls[0], sizeof tls[0], "--jetstream-tls-ca=%s/ca.pem", s_pki);
        snprintf(tls[1], sizeof tls[1], "--jetstream-tls-cert=%s/client.pem", s_pki);
        snprintf(tls[2], sizeof tls[2], "--jetstream-tls-key=%s/client.key", s_pki);
        for (int i = 0; i < 3; i++)
            extra[n++] = tls[i];
    }
    if (s_auth == S_AUTH_NKEY) {
        /* only the seed: the replica derives the public key from it */
        snprintf(seedarg, sizeof seedarg, "--jetstream-nkey-seed-file=%s", s_seed_file);
        extra[n++] = seedarg;
    }
    if (s_auth == S_AUTH_PASSWORD) {
        /* the credentials as an operator provisions them: a password file */
        snprintf(pwf, sizeof pwf, "%s/nats.password", r->dir);
        FILE *f = fopen(pwf, "w");
        assert_non_null(f);
        fprintf(f, "%s\n", S_PASSWORD);
        fclose(f);
        snprintf(pwarg, sizeof pwarg, "--jetstream-password-file=%s", pwf);
        extra[n++] = "--jetstream-user=" S_USER;
        extra[n++] = pwarg;
    }
    if (rebaseline)
        extra[n++] = rb;
    extra[n] = NULL;
    if (r->b.pid == 0 && r->b.upload[0])
        assert_int_equal(gs_tk_broker_restart(&r->b, extra), 0);
    else
        assert_int_equal(gs_tk_broker_start_fixed(&r->b, r->store, extra, 0), 0);
}

/* What the replica's feed delivered per origin. */
typedef struct {
    uint64_t last[2];               /* last origin seq seen, per origin */
    int resets[2];                  /* re-baselines seen (runs of removals), per origin */
    uint64_t count[2];              /* events seen, per origin */
    uint64_t replica_events;        /* all events */
    int in_order;                   /* origin seqs strictly increasing */
} s_seen_t;

/* Follow the replica from seq 0 (catch-up by sync, then the live feed)
 * until it delivered origin seq want[i] of each origin after resets[i]
 * re-baselines of it (a re-baseline's removals, origin_seq 0, start the
 * origin's count again). Every event carries its origin; each origin
 * event comes once, in order. */
static void
s_follow_after(s_replica_t *r, const uint64_t want[2], const int resets[2], s_seen_t *seen)
{
    memset(seen, 0, sizeof *seen);
    seen->in_order = 1;
    const char *pf[] = { "44" };
    gs_sub_t *sub = gs_sub_new(r->b.feed, r->b.upload, pf, 1, NULL, 0, NULL, NULL);
    assert_non_null(sub);
    int removing[2] = { 0, 0 };
    while (seen->last[0] < want[0] || seen->last[1] < want[1] ||
           seen->resets[0] < resets[0] || seen->resets[1] < resets[1]) {
        Gridsync__V1__ChangeEvent *ev = NULL;
        int rc = gs_sub_next(sub, 30000, &ev);
        if (rc) {
            size_t len = 0;
            char *text = gs_tk_read_file(r->b.log_path, &len, 1);
            fprintf(stderr, "rc %d; replica log:\n%s\n", rc,
                    text && len > 4000 ? text + len - 4000 : text ? text : "");
            free(text);
        }
        if (rc)
            fail_msg("replica feed: %s (have %" PRIu64 "/%" PRIu64 " and %" PRIu64 "/%" PRIu64
                     ")", gs_client_strerror(rc), seen->last[0], want[0], seen->last[1],
                     want[1]);
        assert_non_null(ev->origin);
        int o = strcmp(ev->origin, A1) == 0 ? 0 : strcmp(ev->origin, A2) == 0 ? 1 : -1;
        assert_true(o >= 0);
        assert_true(ev->origin_epoch != 0);
        if (ev->origin_seq) {
            if (ev->origin_seq <= seen->last[o])
                seen->in_order = 0;
            seen->last[o] = ev->origin_seq;
            seen->count[o]++;
            removing[o] = 0;
        } else if (!removing[o]) {
            /* a re-baseline's removals: the origin starts over */
            removing[o] = 1;
            seen->resets[o]++;
            seen->last[o] = seen->count[o] = 0;
        }
        seen->replica_events++;
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }
    gs_sub_destroy(&sub);
}

static void
s_follow(s_replica_t *r, const uint64_t want[2], s_seen_t *seen)
{
    const int none[2] = { 0, 0 };
    s_follow_after(r, want, none, seen);
}

/* Snapshot lines (grid kind key version record-bytes) under prefix. */
typedef struct {
    size_t n;
    char **line;
} s_snap_t;

static void
s_snapshot(const char *upload, const char *prefix, s_snap_t *s)
{
    memset(s, 0, sizeof *s);
    gs_client_t *c = gs_client_new(upload, NULL);
    uint8_t *cursor = NULL;
    size_t cursor_len = 0;
    for (;;) {
        Gridsync__V1__SnapshotResponse *r = NULL;
        gs_client_error_t err;
        assert_int_equal(gs_client_snapshot(c, &prefix, 1, cursor, cursor_len, 0, &r, &err), 0);
        for (size_t i = 0; i < r->n_entries; i++) {
            Gridsync__V1__SnapshotEntry *e = r->entries[i];
            size_t n = gridsync__v1__record__get_packed_size(e->record);
            uint8_t *buf = malloc(n);
            gridsync__v1__record__pack(e->record, buf);
            char *line = malloc(2 * n + 200);
            int w = sprintf(line, "%s %d %s %" PRIu64 " ", e->grid_code, e->kind,
                            e->record_key, e->version);
            for (size_t j = 0; j < n; j++)
                w += sprintf(line + w, "%02x", buf[j]);
            free(buf);
            s->line = realloc(s->line, (s->n + 1) * sizeof *s->line);
            s->line[s->n++] = line;
        }
        free(cursor);
        cursor = NULL;
        cursor_len = r->next_cursor.len;
        if (cursor_len) {
            cursor = malloc(cursor_len);
            memcpy(cursor, r->next_cursor.data, cursor_len);
        }
        gridsync__v1__snapshot_response__free_unpacked(r, NULL);
        if (!cursor_len)
            break;
    }
    gs_client_destroy(&c);
}

static void
s_snap_free(s_snap_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->line[i]);
    free(s->line);
}

/* The replica holds exactly the district's records (under its area). */
static void
s_same(s_district_t *d, s_replica_t *r)
{
    s_snap_t a, b;
    s_snapshot(d->b.upload, "", &a);
    s_snapshot(r->b.upload, d->area, &b);
    assert_true(a.n > 0);
    assert_int_equal(a.n, b.n);
    for (size_t i = 0; i < a.n; i++)
        assert_string_equal(a.line[i], b.line[i]);
    s_snap_free(&a);
    s_snap_free(&b);
}

/* Wait until the file at path holds want at least count times. */
static int
s_wait_log(const char *path, const char *want, int count, int patience_ms)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (in >= 0)
        inotify_add_watch(in, dir, IN_MODIFY | IN_CREATE);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        size_t len = 0;
        char *text = gs_tk_read_file(path, &len, 1);
        int n = 0;
        for (const char *p = text; p && (p = strstr(p, want)); p++)
            n++;
        free(text);
        if (n >= count) {
            if (in >= 0)
                close(in);
            return 0;
        }
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long spent = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (spent >= patience_ms) {
            if (in >= 0)
                close(in);
            fprintf(stderr, "no '%s' (x%d) in %s:\n", want, count, path);
            text = gs_tk_read_file(path, &len, 1);
            fprintf(stderr, "%s\n", text && len > 3000 ? text + len - 3000 : text ? text : "");
            free(text);
            return -1;
        }
        struct pollfd p = { .fd = in, .events = POLLIN };
        if (poll(&p, in >= 0 ? 1 : 0, 200) > 0) {
            char buf[4096];
            while (read(in, buf, sizeof buf) > 0)
                ;
        }
    }
}

/* gridctl --store STORE CMD [ARG]: its output (malloc'd); it must exit 0. */
static char *
s_ctl(const char *store, const char *cmd, const char *arg)
{
    char out[200];
    snprintf(out, sizeof out, "%s.ctl", store);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        execl(GS_GRIDCTL, "gridctl", "--store", store, cmd, arg, (char *) NULL);
        _exit(127);
    }
    assert_int_equal(gs_tk_wait_exit(pid, "gridctl", 30000), 0);
    size_t len;
    return gs_tk_read_file(out, &len, 0);
}

static int
s_count(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)); p++)
        n++;
    return n;
}

/* Set the incident category table of the store at path from text while
 * its broker runs, as gridctl incidents categories set does. */
static void
s_table_set(const char *path, const char *text)
{
    gs_incident_table_t t;
    gs_verdict_t v;
    size_t line;
    if (gs_incident_table_parse(text, strlen(text), &t, &line, &v))
        fail_msg("table line %zu: %s", line, v.message);
    gs_store_t *st = gs_store_new(path, NULL, NULL);
    assert_non_null(st);
    assert_int_equal(gs_store_incident_table_put(st, &t, 0), 0);
    gs_store_destroy(&st);
}

/* ---- the tests ------------------------------------------------------------------- */

typedef struct {
    gs_tk_nats_t nats;
    natsConnection *nc;
    jsCtx *js;
    s_district_t d[2];
    s_replica_t r;
} s_env_t;

/* Run argv (openssl) to completion; it must exit 0. What it says on
 * stderr is shown only when it fails. */
static int
s_run(const char *const *argv)
{
    int fd = -1;
    pid_t pid = gs_tk_spawn(argv, &fd);
    char said[8192];
    size_t n = 0;
    ssize_t r;
    while ((r = read(fd, said + n, sizeof said - 1 - n)) > 0 || (r < 0 && errno == EINTR))
        if (r > 0 && (n += (size_t) r) == sizeof said - 1)
            n = 0;  /* keep reading: only the tail matters */
    said[n] = 0;
    close(fd);
    int st = gs_tk_wait_exit(pid, argv[0], 60000);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    fprintf(stderr, "%s %s failed:\n%s\n", argv[0], argv[1], said);
    return -1;
}

/* The openssl program on PATH into out; -1 when there is none. */
static int
s_openssl(char *out, size_t size)
{
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, size, "%s/openssl", d);
        if (access(out, X_OK) == 0)
            return 0;
    }
    return -1;
}

/* A CA, a server certificate for 127.0.0.1 and a client certificate,
 * made with openssl into s_pki. */
static int
s_make_pki(void)
{
    char openssl[512];
    if (s_openssl(openssl, sizeof openssl)) {
        fprintf(stderr, "no openssl program on PATH: the TLS test needs it\n");
        return -1;
    }
    gs_tk_tmpdir(s_pki, sizeof s_pki);
    char p[8][160];
    const char *names[] = { "ca.key", "ca.pem", "server.key", "server.csr", "server.pem",
                            "client.key", "client.csr", "client.pem" };
    for (int i = 0; i < 8; i++)
        snprintf(p[i], sizeof p[i], "%s/%s", s_pki, names[i]);
    char ext[160];
    snprintf(ext, sizeof ext, "%s/san.cnf", s_pki);
    FILE *f = fopen(ext, "w");
    if (!f)
        return -1;
    fprintf(f, "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
    fclose(f);
    const char *ca[] = { openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                         p[0], "-out", p[1], "-days", "2", "-subj", "/CN=gridsync-test-ca",
                         NULL };
    if (s_run(ca))
        return -1;
    for (int who = 0; who < 2; who++) {
        const char *key = p[2 + 3 * who], *csr = p[3 + 3 * who], *pem = p[4 + 3 * who];
        const char *req[] = { openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                              "-out", csr, "-subj", who ? "/CN=gridsync-replica" : "/CN=localhost",
                              NULL };
        const char *sign[] = { openssl, "x509", "-req", "-in", csr, "-CA", p[1], "-CAkey",
                               p[0], "-CAcreateserial", "-out", pem, "-days", "2", "-extfile",
                               ext, NULL };
        if (s_run(req) || s_run(sign))
            return -1;
    }
    return 0;
}

/* The district's head seq, by a sync request. */
static uint64_t
s_head(s_district_t *d)
{
    const char *all = "";
    Gridsync__V1__SyncResponse *r = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_client_sync(d->c, &all, 1, 0, 1, 0, &r, &err), 0);
    uint64_t head = r->head_seq;
    gridsync__v1__sync_response__free_unpacked(r, NULL);
    return head;
}

static int
s_setup_with(void **state, int streams, int auth)
{
    s_env_t *e = calloc(1, sizeof *e);
    s_auth = auth;
    if (auth == S_AUTH_NKEY) {
        char dir[64];
        gs_tk_tmpdir(dir, sizeof dir);
        snprintf(s_seed_file, sizeof s_seed_file, "%s/user.nk", dir);
        FILE *f = fopen(s_seed_file, "w");
        if (!f)
            return -1;
        fprintf(f, "%s\n", S_NKEY_SEED);
        fclose(f);
    }
    char tlsconf[600];
    if (auth == S_AUTH_TLS) {
        if (s_make_pki())
            return -1;
        snprintf(tlsconf, sizeof tlsconf,
                 "tls {\n  cert_file: \"%s/server.pem\"\n  key_file: \"%s/server.key\"\n"
                 "  ca_file: \"%s/ca.pem\"\n  verify: true\n}\n", s_pki, s_pki, s_pki);
    }
    const char *conf = auth == S_AUTH_TLS ? tlsconf : auth == S_AUTH_PASSWORD
        ? "authorization {\n  user: " S_USER "\n  password: " S_PASSWORD "\n}\n"
        : auth == S_AUTH_NKEY
        ? "authorization {\n  users: [ { nkey: " S_NKEY_PUB " } ]\n}\n" : NULL;
    if (gs_tk_nats_start(&e->nats, conf))
        return -1;
    s_connect(e->nats.url, &e->nc, &e->js);
    s_district_start(&e->d[0], A1);
    s_district_start(&e->d[1], A2);
    if (streams) {
        s_add_stream(e->js, A1);
        s_add_stream(e->js, A2);
    }
    *state = e;
    return 0;
}

static int
s_setup(void **state)
{
    return s_setup_with(state, 1, 0);
}

/* No district streams yet (the replica starts first). */
static int
s_setup_bare(void **state)
{
    return s_setup_with(state, 0, 0);
}

/* A nats-server that wants a user and password. */
static int
s_setup_auth(void **state)
{
    return s_setup_with(state, 1, S_AUTH_PASSWORD);
}

/* A nats-server that speaks TLS only and wants a client certificate. */
static int
s_setup_tls(void **state)
{
    return s_setup_with(state, 1, S_AUTH_TLS);
}

/* Districts whose own bridges publish their logs (no test publishing). */
static int
s_setup_bridged(void **state)
{
    s_env_t *e = calloc(1, sizeof *e);
    if (gs_tk_nats_start(&e->nats, NULL))
        return -1;
    snprintf(s_bridge_url, sizeof s_bridge_url, "%s", e->nats.url);
    s_connect(e->nats.url, &e->nc, &e->js);
    s_district_start(&e->d[0], A1);
    s_district_start(&e->d[1], A2);
    *state = e;
    return 0;
}

/* A nats-server that wants a user nkey. */
static int
s_setup_nkey(void **state)
{
    return s_setup_with(state, 1, S_AUTH_NKEY);
}

static int
s_teardown(void **state)
{
    s_env_t *e = *state;
    if (e->r.b.pid)
        gs_tk_broker_stop(&e->r.b, SIGTERM);
    if (e->r.dir[0])
        gs_tk_rmtree(e->r.dir);
    s_district_stop(&e->d[0]);
    s_district_stop(&e->d[1]);
    jsCtx_Destroy(e->js);
    natsConnection_Destroy(e->nc);
    gs_tk_nats_destroy(&e->nats);
    free(e);
    s_bridge_url[0] = 0;
    if (s_auth == S_AUTH_TLS)
        gs_tk_rmtree(s_pki);
    if (s_auth == S_AUTH_NKEY) {
        char dir[128];
        snprintf(dir, sizeof dir, "%s", s_seed_file);
        *strrchr(dir, '/') = 0;
        gs_tk_rmtree(dir);
    }
    s_auth = S_AUTH_NONE;
    return 0;
}

/* (a), (e), (f): the union of two districts, the live feed, read-only,
 * cross-district duplicates. */
static void
test_union_of_two_districts(void **state)
{
    s_env_t *e = *state;
    s_upload(&e->d[0], 0, 20, 1000, 3);
    s_upload(&e->d[1], 0, 12, 5000, 7);
    s_move(&e->d[0], 5, 1000);
    uint64_t want[2];
    want[0] = s_publish(&e->d[0], e->js);
    want[1] = s_publish(&e->d[1], e->js);
    assert_int_equal(want[0], 22);      /* 20 + MOVE_OUT + MOVE_IN */

    s_replica_start(&e->r, e->nats.url, NULL);
    s_seen_t seen;
    s_follow(&e->r, want, &seen);
    assert_true(seen.in_order);
    assert_int_equal(seen.count[0], want[0]);
    assert_int_equal(seen.count[1], want[1]);
    assert_int_equal(seen.replica_events, want[0] + want[1]);
    s_same(&e->d[0], &e->r);
    s_same(&e->d[1], &e->r);

    /* more uploads at one district reach the city's live feed */
    const char *pf[] = { A2 };
    gs_sub_t *sub = gs_sub_new(e->r.b.feed, e->r.b.upload, pf, 1, NULL, want[0] + want[1],
                               NULL, NULL);
    assert_non_null(sub);
    s_upload(&e->d[1], 12, 3, 5000, -1);
    uint64_t head = s_publish(&e->d[1], e->js);
    for (uint64_t s = want[1] + 1; s <= head; s++) {
        Gridsync__V1__ChangeEvent *ev = NULL;
        assert_int_equal(gs_sub_next(sub, 30000, &ev), 0);
        assert_string_equal(ev->origin, A2);
        assert_int_equal(ev->origin_seq, s);
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }
    gs_sub_destroy(&sub);
    s_same(&e->d[1], &e->r);

    /* uploads to the replica are refused, naming the districts */
    gs_client_t *c = gs_client_new(e->r.b.upload, NULL);
    Gridsync__V1__Record *rec = gs_tk_household(e->d[0].arena, A1 "001001001", "hh-city", NULL,
                                                1, 7000);
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = "dev-city";
    up.upload_id = "up-city";
    up.records = &rec;
    up.n_records = 1;
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_client_upload(c, &up, &ack, &err), GS_CLIENT_ESERVER);
    assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_READ_ONLY);
    assert_non_null(strstr(err.message, A1 "," A2));

    /* a key that asks the replica for the incident category table gets the
     * replica's own: the built-in one while none is set there, whatever a
     * district set, then the one set in the city's store while it runs */
    const char *own = "02\t安全隐患\t168\t72\t24\t4\t72\t48\t24\t4\tactive\n"
                      "07\t噪音扰民\t96\t48\t30\t12\t10\t8\t6\t2\tactive\n";
    s_table_set(e->d[0].store, own);
    size_t nb = 0;
    const gs_incident_category_t *builtin = gs_incident_categories(&nb);
    Gridsync__V1__IncidentCategoriesReply *cats = NULL;
    assert_int_equal(gs_client_incident_categories(c, &cats, &err), 0);
    assert_false(cats->configured);
    assert_int_equal(cats->n_categories, nb);
    for (size_t i = 0; i < nb; i++) {
        assert_string_equal(cats->categories[i]->code, builtin[i].code);
        assert_string_equal(cats->categories[i]->name, builtin[i].name);
        assert_int_equal(cats->categories[i]->n_close_hours, 4);
        assert_int_equal(cats->categories[i]->close_hours[0], builtin[i].close_hours[0]);
        assert_int_equal(cats->categories[i]->handle_hours[3], builtin[i].handle_hours[3]);
    }
    gridsync__v1__incident_categories_reply__free_unpacked(cats, NULL);
    s_table_set(e->r.store, own);
    assert_int_equal(gs_client_incident_categories(c, &cats, &err), 0);
    assert_true(cats->configured);
    assert_int_equal(cats->n_categories, 2);
    assert_string_equal(cats->categories[1]->code, "07");
    assert_string_equal(cats->categories[1]->name, "噪音扰民");
    assert_int_equal(cats->categories[1]->close_hours[2], 30);
    gridsync__v1__incident_categories_reply__free_unpacked(cats, NULL);
    gs_client_destroy(&c);

    /* the persons in both districts: a finding at the city only */
    char *city = s_ctl(e->r.store, "dups", "--json");
    char *d1 = s_ctl(e->d[0].store, "dups", "--json");
    assert_int_equal(s_count(city, "\"id_number\""), 2);
    assert_true(s_count(city, "\"" A1) >= 2 && s_count(city, "\"" A2) >= 2);
    assert_int_equal(s_count(d1, "\"id_number\""), 0);
    free(city);
    free(d1);

    double applied = gs_tk_metric(e->r.b.metrics_port,
                                  "gridsync_replica_applied_total{origin=\"" A1 "\"}");
    assert_true(applied == (double) want[0]);
    /* every event applied is timed from its store in the stream to its
     * commit (the city's half of the lag) */
    double applied2 = gs_tk_metric(e->r.b.metrics_port,
                                   "gridsync_replica_applied_total{origin=\"" A2 "\"}");
    assert_true(gs_tk_metric(e->r.b.metrics_port, "gridsync_replica_stream_seconds_count") ==
                applied + applied2);
    assert_int_equal(gs_tk_gridctl(e->r.store, "verify"), 0);
    /* each district and the city agree digest for digest under its area */
    for (int i = 0; i < 2; i++) {
        char args[400];
        snprintf(args, sizeof args, "compare --prefix %s %s %s", e->d[i].area, e->d[i].store,
                 e->r.store);
        assert_int_equal(gs_tk_gridctl(e->r.store, args), 0);
    }
    /* health lists the origins the store follows */
    char *h = s_ctl(e->r.store, "health", "--json");
    assert_non_null(strstr(h, "\"area\":\"" A1 "\",\"followed\":\"" A1 "\",\"state\":\"running\""));
    assert_non_null(strstr(h, "\"area\":\"" A2 "\""));
    free(h);
}

/* (b): SIGKILL (and, between, SIGTERM) the replica several times while it
 * applies; every origin event is applied exactly once. */
static void
test_kill_replica_exactly_once(void **state)
{
    s_env_t *e = *state;
    uint64_t want[2] = { 0, 0 };
    for (int round = 0; round < 4; round++) {
        s_upload(&e->d[0], 40 * round, 40, 1000, -1);
        s_upload(&e->d[1], 40 * round, 40, 5000, round == 2 ? 41 : -1);
        want[0] = s_publish(&e->d[0], e->js);
        want[1] = s_publish(&e->d[1], e->js);
        s_replica_start(&e->r, e->nats.url, NULL);
        /* killed once it applies something of this round */
        char line[64];
        snprintf(line, sizeof line, "event=replica_following origin=%s", A1);
        assert_int_equal(s_wait_log(e->r.b.log_path, line, round + 1, 30000), 0);
        const char *pf[] = { "44" };
        gs_sub_t *sub = gs_sub_new(e->r.b.feed, e->r.b.upload, pf, 1, NULL, 0, NULL, NULL);
        Gridsync__V1__ChangeEvent *ev = NULL;
        assert_int_equal(gs_sub_next(sub, 30000, &ev), 0);
        gridsync__v1__change_event__free_unpacked(ev, NULL);
        if (round % 2) {
            /* a drain in the middle of a backlog: the fetch in hand is
             * committed and acked, and the broker exits 0 */
            int st = gs_tk_broker_stop(&e->r.b, SIGTERM);
            assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        } else {
            gs_tk_broker_stop(&e->r.b, SIGKILL);
        }
        gs_sub_destroy(&sub);
    }
    s_replica_start(&e->r, e->nats.url, NULL);
    s_seen_t seen;
    s_follow(&e->r, want, &seen);
    assert_true(seen.in_order);
    assert_int_equal(seen.count[0], want[0]);
    assert_int_equal(seen.count[1], want[1]);
    assert_int_equal(seen.replica_events, want[0] + want[1]);
    s_same(&e->d[0], &e->r);
    s_same(&e->d[1], &e->r);
    assert_int_equal(gs_tk_gridctl(e->r.store, "verify"), 0);
}

/* The consumer of origin area once the replica has taken and acked
 * everything up to the stream's last message: polled (the ack goes out
 * after the commit, which the feed reported) until a deadline of 30 s. Its
 * ack policy is AckAll; nothing is pending delivery or an ack, and what was
 * delivered to it (nothing, when it was made anew after the last message)
 * is acked up to the stream's last message. */
static void
s_consumer_settled(s_env_t *e, const char *area)
{
    char stream[32], durable[32];
    snprintf(stream, sizeof stream, "GRIDSYNC_%s", area);
    snprintf(durable, sizeof durable, "replica_%s", area);
    jsStreamInfo *si = NULL;
    assert_int_equal(js_GetStreamInfo(&si, e->js, stream, NULL, NULL), NATS_OK);
    uint64_t last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    assert_true(last > 0);
    for (int tries = 0;; tries++) {
        jsConsumerInfo *ci = NULL;
        assert_int_equal(js_GetConsumerInfo(&ci, e->js, stream, durable, NULL, NULL), NATS_OK);
        int settled = ci->NumPending == 0 && ci->NumAckPending == 0 &&
                      ci->Delivered.Stream == last &&
                      (ci->Delivered.Consumer == 0 || (ci->AckFloor.Stream == last &&
                                                       ci->AckFloor.Consumer ==
                                                           ci->Delivered.Consumer));
        if (settled || tries == 1500) {
            if (!settled)
                fprintf(stderr, "consumer %s: delivered %" PRIu64 "/%" PRIu64 " ack floor %"
                        PRIu64 "/%" PRIu64 " pending %" PRIu64 " ack pending %" PRId64
                        ", stream last %" PRIu64 "\n", durable, ci->Delivered.Consumer,
                        ci->Delivered.Stream, ci->AckFloor.Consumer, ci->AckFloor.Stream,
                        ci->NumPending, ci->NumAckPending, last);
            assert_true(settled);
            assert_int_equal(ci->Config->AckPolicy, js_AckAll);
            jsConsumerInfo_Destroy(ci);
            return;
        }
        jsConsumerInfo_Destroy(ci);
        nanosleep(&(struct timespec) { 0, 20 * 1000000 }, NULL);
    }
}

/* The replica acks one message per applied batch, the last one, and its
 * consumer acknowledges all before it (AckAll): once everything is applied
 * nothing is left unacked. A SIGKILL while it applies (between a commit
 * and its ack, or before either) loses nothing and applies nothing twice:
 * the consumer is made anew from the position the store holds, not from
 * its ack floor. */
static void
test_acks_one_per_batch(void **state)
{
    s_env_t *e = *state;
    uint64_t want[2];
    /* several batches of the replica's (--batch-max-records=50) */
    s_upload(&e->d[0], 0, 60, 1000, -1);
    s_upload(&e->d[0], 60, 60, 1000, -1);
    s_upload(&e->d[1], 0, 50, 5000, -1);
    want[0] = s_publish(&e->d[0], e->js);
    want[1] = s_publish(&e->d[1], e->js);
    s_replica_start(&e->r, e->nats.url, NULL);
    s_seen_t seen;
    s_follow(&e->r, want, &seen);
    s_consumer_settled(e, A1);
    s_consumer_settled(e, A2);

    /* killed while it applies the next events, some acked, some not */
    s_upload(&e->d[0], 120, 60, 1000, -1);
    s_upload(&e->d[0], 180, 60, 1000, -1);
    want[0] = s_publish(&e->d[0], e->js);
    const char *pf[] = { "44" };
    gs_sub_t *sub = gs_sub_new(e->r.b.feed, e->r.b.upload, pf, 1, NULL, 0, NULL, NULL);
    assert_non_null(sub);
    Gridsync__V1__ChangeEvent *ev = NULL;
    assert_int_equal(gs_sub_next(sub, 30000, &ev), 0);
    gridsync__v1__change_event__free_unpacked(ev, NULL);
    gs_tk_broker_stop(&e->r.b, SIGKILL);
    gs_sub_destroy(&sub);
    s_upload(&e->d[1], 50, 30, 5000, -1);
    want[1] = s_publish(&e->d[1], e->js);

    s_replica_start(&e->r, e->nats.url, NULL);
    s_follow(&e->r, want, &seen);
    assert_true(seen.in_order);
    assert_int_equal(seen.count[0], want[0]);
    assert_int_equal(seen.count[1], want[1]);
    assert_int_equal(seen.replica_events, want[0] + want[1]);
    s_consumer_settled(e, A1);
    s_consumer_settled(e, A2);
    s_same(&e->d[0], &e->r);
    s_same(&e->d[1], &e->r);
}

/* The store's write lock, held by a thread of the test (a write
 * transaction on the replica's store, opened beside it, that waits in the
 * store's trace at its begin until released), so that the replica's next
 * commit waits. */
typedef struct {
    gs_store_t *st;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int held, release;
} s_hold_t;

static void
s_hold_trace(void *arg, int del, const char *db, const void *key, size_t klen,
             const void *val, size_t vlen, int append)
{
    (void) db;
    (void) key;
    (void) klen;
    (void) val;
    (void) vlen;
    (void) append;
    s_hold_t *h = arg;
    if (del != 3)
        return;
    pthread_mutex_lock(&h->mu);
    h->held = 1;
    pthread_cond_broadcast(&h->cond);
    while (!h->release)
        pthread_cond_wait(&h->cond, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

static void *
s_hold_main(void *arg)
{
    s_hold_t *h = arg;
    /* a key that is not there: nothing is written when it ends */
    gs_store_debug_del(h->st, "meta", "test-hold", 9);
    return NULL;
}

/* Delivered and acked stream positions of origin area's consumer. */
static void
s_consumer_at(s_env_t *e, const char *area, uint64_t *delivered, uint64_t *acked)
{
    char stream[32], durable[32];
    snprintf(stream, sizeof stream, "GRIDSYNC_%s", area);
    snprintf(durable, sizeof durable, "replica_%s", area);
    jsConsumerInfo *ci = NULL;
    assert_int_equal(js_GetConsumerInfo(&ci, e->js, stream, durable, NULL, NULL), NATS_OK);
    *delivered = ci->Delivered.Stream;
    *acked = ci->AckFloor.Stream;
    jsConsumerInfo_Destroy(ci);
}

/* Poll origin area's consumer (every 20 ms, up to 30 s) until it has
 * delivered stream position want; its last positions into *delivered and
 * *acked. */
static void
s_wait_delivered(s_env_t *e, const char *area, uint64_t want, uint64_t *delivered,
                 uint64_t *acked)
{
    for (int tries = 0; tries < 1500; tries++) {
        s_consumer_at(e, area, delivered, acked);
        if (*delivered >= want)
            return;
        nanosleep(&(struct timespec) { 0, 20 * 1000000 }, NULL);
    }
}

/* The replica keeps a pull request standing while it applies a batch: the
 * messages stored while a commit waits are delivered during the commit,
 * each as it is stored, not asked for after it. Here the commit waits on
 * the store's write lock, held by the test: the first event is fetched
 * alone, its commit waits; the 30 events published next, one publish
 * after another (each waits for its stream ack), are every one delivered
 * all the same (a "no wait" request would end after the first of them,
 * and the rest would wait at the server for the batch after next), and
 * none is acked (nothing was committed). Released, every event is applied
 * once, in order, and the consumer settles with all acked. */
static void
test_fetch_ahead_of_commit(void **state)
{
    s_env_t *e = *state;
    s_replica_start(&e->r, e->nats.url, NULL);
    char line[64];
    snprintf(line, sizeof line, "event=replica_following origin=%s", A1);
    assert_int_equal(s_wait_log(e->r.b.log_path, line, 1, 30000), 0);

    s_hold_t h = { .mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
    int err = 0;
    h.st = gs_store_new(e->r.store, NULL, &err);
    assert_non_null(h.st);
    gs_store_debug_trace(h.st, s_hold_trace, &h);
    pthread_t tid;
    assert_int_equal(pthread_create(&tid, NULL, s_hold_main, &h), 0);
    pthread_mutex_lock(&h.mu);
    while (!h.held)
        pthread_cond_wait(&h.cond, &h.mu);   /* the store's begin: no deadline to add */
    pthread_mutex_unlock(&h.mu);

    /* one event; once the replica has it, its commit waits */
    s_upload(&e->d[0], 0, 1, 1000, -1);
    assert_int_equal(s_publish(&e->d[0], e->js), 1);
    uint64_t first_delivered = 0, first_acked = 0, delivered = 0, acked = 0;
    s_wait_delivered(e, A1, 1, &first_delivered, &first_acked);
    /* more events while it waits */
    s_upload(&e->d[0], 1, 30, 1000, -1);
    uint64_t want[2] = { s_publish(&e->d[0], e->js), 0 };
    assert_int_equal(want[0], 31);
    s_wait_delivered(e, A1, want[0], &delivered, &acked);

    /* release before asserting: a failed assertion must not leave the
     * replica's store locked */
    pthread_mutex_lock(&h.mu);
    h.release = 1;
    pthread_cond_broadcast(&h.cond);
    pthread_mutex_unlock(&h.mu);
    pthread_join(tid, NULL);
    gs_store_destroy(&h.st);
    assert_int_equal(first_delivered, 1);
    assert_int_equal(first_acked, 0);
    assert_int_equal(delivered, want[0]); /* all delivered during the first commit */
    assert_int_equal(acked, 0);         /* and nothing acked before its commit */

    s_seen_t seen;
    s_follow(&e->r, want, &seen);
    assert_true(seen.in_order);
    assert_int_equal(seen.count[0], want[0]);
    assert_int_equal(seen.replica_events, want[0]);
    s_consumer_settled(e, A1);
    s_same(&e->d[0], &e->r);
}

/* Upload n households to d from index first, in uploads of up to 64. */
static void
s_upload_many(s_district_t *d, int first, int n, uint32_t seed)
{
    for (int k = 0; k < n; k += 64)
        s_upload(d, first + k, n - k < 64 ? n - k : 64, seed, -1);
}

/* A replica behind its stream fetches and commits up to batch-max-records
 * messages at a time (here 1500, above the 1024 a fetch once held; its
 * consumer allows four batches unacked): 2600 events pending when it
 * starts, a SIGKILL once it has applied some of them, a restart; every
 * event is applied once, in order, and the consumer settles all acked. */
static void
test_large_batches_when_behind(void **state)
{
    s_env_t *e = *state;
    s_upload_many(&e->d[0], 0, 2600, 1000);
    uint64_t want[2] = { s_publish(&e->d[0], e->js), 0 };
    assert_int_equal(want[0], 2600);
    s_batch_arg = "--batch-max-records=1500";
    s_replica_start(&e->r, e->nats.url, NULL);
    const char *pf[] = { "44" };
    gs_sub_t *sub = gs_sub_new(e->r.b.feed, e->r.b.upload, pf, 1, NULL, 0, NULL, NULL);
    assert_non_null(sub);
    Gridsync__V1__ChangeEvent *ev = NULL;
    assert_int_equal(gs_sub_next(sub, 30000, &ev), 0);
    gridsync__v1__change_event__free_unpacked(ev, NULL);
    jsConsumerInfo *ci = NULL;
    assert_int_equal(js_GetConsumerInfo(&ci, e->js, "GRIDSYNC_" A1, "replica_" A1, NULL, NULL),
                     NATS_OK);
    assert_int_equal(ci->Config->MaxAckPending, 4 * 1500);
    jsConsumerInfo_Destroy(ci);
    gs_tk_broker_stop(&e->r.b, SIGKILL);
    gs_sub_destroy(&sub);

    s_replica_start(&e->r, e->nats.url, NULL);
    s_batch_arg = "--batch-max-records=50";
    s_seen_t seen;
    s_follow(&e->r, want, &seen);
    assert_true(seen.in_order);
    assert_int_equal(seen.count[0], want[0]);
    assert_int_equal(seen.replica_events, want[0]);
    s_consumer_settled(e, A1);
    s_same(&e->d[0], &e->r);
    assert_int_equal(gs_tk_gridctl(e->r.store, "verify"), 0);
}

/* A quiet origin while another is busy makes no request of its own (each
 * would cost the busy origin a wait per round) and takes what its standing
 * pull request delivered: A1 has 2600 events waiting (52 batches of the
 * replica's 50), A2 one; A2's event is applied while A1's batches are
 * still being applied, not after them, and every event of both once, in
 * order. Ordered on the city's own log, not timed. */
static void
test_quiet_origin_while_busy(void **state)
{
    s_env_t *e = *state;
    s_upload_many(&e->d[0], 0, 2600, 1000);
    s_upload(&e->d[1], 0, 1, 5000, -1);
    uint64_t want[2] = { s_publish(&e->d[0], e->js), s_publish(&e->d[1], e->js) };
    assert_int_equal(want[0], 2600);
    assert_int_equal(want[1], 1);
    s_replica_start(&e->r, e->nats.url, NULL);
    const char *pf[] = { "44" };
    gs_sub_t *sub = gs_sub_new(e->r.b.feed, e->r.b.upload, pf, 1, NULL, 0, NULL, NULL);
    assert_non_null(sub);
    uint64_t last[2] = { 0, 0 }, a1_before_a2 = 0;
    int in_order = 1;
    while (last[0] < want[0] || last[1] < want[1]) {
        Gridsync__V1__ChangeEvent *ev = NULL;
        int rc = gs_sub_next(sub, 30000, &ev);
        if (rc)
            fail_msg("replica feed: %s (have %" PRIu64 "/%" PRIu64 " and %" PRIu64 "/%" PRIu64
                     ")", gs_client_strerror(rc), last[0], want[0], last[1], want[1]);
        assert_non_null(ev->origin);
        int o = strcmp(ev->origin, A1) == 0 ? 0 : 1;
        if (ev->origin_seq != last[o] + 1)
            in_order = 0;
        last[o] = ev->origin_seq;
        if (o == 1)
            a1_before_a2 = last[0];
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }
    gs_sub_destroy(&sub);
    assert_true(in_order);
    assert_true(a1_before_a2 < want[0]);  /* A2's event came while A1's were applied */
    s_consumer_settled(e, A1);
    s_consumer_settled(e, A2);
    s_same(&e->d[0], &e->r);
    s_same(&e->d[1], &e->r);
}

/* One hostile message into origin A1's stream after its good events (at
 * the step-th re-baseline): refused with reason, A1 stopped, A2 goes on;
 * nothing half-applied. same_a1: the district holds no more than was
 * published. */
static void
s_hostile(s_env_t *e, int step, const char *reason, int same_a1)
{
    char line[128];
    snprintf(line, sizeof line, "event=replica_refused origin=%s reason=%s", A1, reason);
    assert_int_equal(s_wait_log(e->r.b.log_path, line, 1, 30000), 0);
    /* the other origin goes on */
    s_upload(&e->d[1], 100 + 10 * step, 2, 5000, -1);
    uint64_t want[2] = { e->d[0].published, s_publish(&e->d[1], e->js) };
    const int resets[2] = { step, 0 };
    s_seen_t seen;
    s_follow_after(&e->r, want, resets, &seen);
    assert_true(seen.in_order);
    assert_int_equal(seen.count[0], e->d[0].published);   /* the good ones, no more */
    if (same_a1)
        s_same(&e->d[0], &e->r);
    s_same(&e->d[1], &e->r);
    char metric[128];
    snprintf(metric, sizeof metric,
             "gridsync_replica_refused_total{origin=\"%s\",reason=\"%s\"}", A1, reason);
    assert_true(gs_tk_metric(e->r.b.metrics_port, metric) == 1.0);
    assert_true(gs_tk_metric(e->r.b.metrics_port,
                             "gridsync_replica_origin_state{origin=\"" A1 "\"}") == 2.0);
    assert_true(gs_tk_metric(e->r.b.metrics_port,
                             "gridsync_replica_origin_state{origin=\"" A2 "\"}") == 1.0);
}

/* Stop the replica and take the hostile message (stream seq) out of A1's
 * stream, so that after a re-baseline the good events come first again. */
static void
s_drop(s_env_t *e, uint64_t stream_seq)
{
    gs_tk_broker_stop(&e->r.b, SIGTERM);
    assert_int_equal(js_DeleteMsg(e->js, "GRIDSYNC_" A1, stream_seq, NULL, NULL), NATS_OK);
}

/* (c): hostile input. */
static void
test_hostile_input(void **state)
{
    s_env_t *e = *state;
    s_upload(&e->d[0], 0, 6, 1000, -1);
    s_upload(&e->d[1], 0, 6, 5000, -1);
    uint64_t n1 = s_publish(&e->d[0], e->js);
    s_publish(&e->d[1], e->js);
    char next[24];
    snprintf(next, sizeof next, "%" PRIu64, n1 + 1);
    const char *grid = A1 "001001001";

    /* bytes that do not decode */
    static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
    uint64_t bad = s_publish_raw(e->js, grid, "household", junk, sizeof junk, A1,
                                 e->d[0].epoch, next);
    s_replica_start(&e->r, e->nats.url, NULL);
    s_hostile(e, 0, "decode", 1);

    /* a real event (the first) under another Gridsync-Seq */
    s_drop(e, bad);
    Gridsync__V1__SyncResponse *r = NULL;
    gs_client_error_t err;
    const char *all = "";
    assert_int_equal(gs_client_sync(e->d[0].c, &all, 1, 0, 1, 0, &r, &err), 0);
    size_t n = gridsync__v1__change_event__get_packed_size(r->events[0]);
    uint8_t *first = malloc(n);
    gridsync__v1__change_event__pack(r->events[0], first);
    gridsync__v1__sync_response__free_unpacked(r, NULL);
    bad = s_publish_raw(e->js, grid, "household", first, n, A1, e->d[0].epoch, "999");
    s_replica_start(&e->r, e->nats.url, A1);
    s_hostile(e, 1, "header", 1);

    /* a message naming an origin that is not configured */
    s_drop(e, bad);
    bad = s_publish_raw(e->js, grid, "household", first, n, "440399", e->d[0].epoch, next);
    free(first);
    s_replica_start(&e->r, e->nats.url, A1);
    s_hostile(e, 2, "origin", 1);

    /* a gap: the district's next two events, the first one left out */
    s_drop(e, bad);
    s_upload(&e->d[0], 50, 1, 1000, -1);
    s_upload(&e->d[0], 51, 1, 1000, -1);
    assert_int_equal(gs_client_sync(e->d[0].c, &all, 1, n1 + 1, 1, 0, &r, &err), 0);
    assert_int_equal(r->n_events, 1);
    n = gridsync__v1__change_event__get_packed_size(r->events[0]);
    uint8_t *later = malloc(n);
    gridsync__v1__change_event__pack(r->events[0], later);
    snprintf(next, sizeof next, "%" PRIu64, r->events[0]->seq);
    gridsync__v1__sync_response__free_unpacked(r, NULL);
    s_publish_raw(e->js, grid, "household", later, n, A1, e->d[0].epoch, next);
    free(later);
    s_replica_start(&e->r, e->nats.url, A1);
    s_hostile(e, 3, "gap", 0);
    assert_int_equal(gs_tk_gridctl(e->r.store, "verify"), 0);
    char *h = s_ctl(e->r.store, "health", NULL);   /* text */
    assert_non_null(strstr(h, "origin " A1 " stopped"));
    assert_non_null(strstr(h, "stopped (gap)"));
    assert_non_null(strstr(h, "origin " A2 " running"));
    free(h);
}

/* (d): lineage. District A1 is replaced by a store of another epoch (a
 * restore); its stream is purged and refilled, as the bridge's re-baseline
 * does. The replica stops A1 until --replica-rebaseline=A1. */
static void
test_lineage_rebaseline(void **state)
{
    s_env_t *e = *state;
    s_upload(&e->d[0], 0, 8, 1000, -1);
    s_upload(&e->d[1], 0, 5, 5000, -1);
    uint64_t want[2] = { s_publish(&e->d[0], e->js), s_publish(&e->d[1], e->js) };
    s_replica_start(&e->r, e->nats.url, NULL);
    s_seen_t seen;
    s_follow(&e->r, want, &seen);

    /* another A1 store: fewer records, another epoch */
    s_district_stop(&e->d[0]);
    s_district_start(&e->d[0], A1);
    s_upload(&e->d[0], 0, 3, 1000, -1);
    s_purge_stream(e->js, A1);
    uint64_t head = s_publish(&e->d[0], e->js);
    char line[128];
    snprintf(line, sizeof line, "event=replica_refused origin=%s reason=epoch", A1);
    assert_int_equal(s_wait_log(e->r.b.log_path, line, 1, 30000), 0);

    /* the operator re-baselines: the old records go, the new lineage comes */
    gs_tk_broker_stop(&e->r.b, SIGTERM);
    s_replica_start(&e->r, e->nats.url, A1);
    assert_int_equal(s_wait_log(e->r.b.log_path, "event=replica_rebaselined origin=" A1, 1,
                                30000), 0);
    want[0] = head;
    const int resets[2] = { 1, 0 };
    s_follow_after(&e->r, want, resets, &seen);
    assert_int_equal(seen.count[0], head);
    s_same(&e->d[0], &e->r);
    s_same(&e->d[1], &e->r);
    assert_int_equal(gs_tk_gridctl(e->r.store, "verify"), 0);
}

/* The replica's head seq, by a sync request. */
static uint64_t
s_replica_head(s_replica_t *r)
{
    gs_client_t *c = gs_client_new(r->b.upload, NULL);
    const char *all = "";
    Gridsync__V1__SyncResponse *resp = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_client_sync(c, &all, 1, 0, 1, 0, &resp, &err), 0);
    uint64_t head = resp->head_seq;
    gridsync__v1__sync_response__free_unpacked(resp, NULL);
    gs_client_destroy(&c);
    return head;
}

/* gridctl compare A B under prefix: its exit status, its output into out
 * (malloc'd). */
static int
s_compare(const char *a, const char *b, const char *prefix, char **out)
{
    char path[200];
    snprintf(path, sizeof path, "%s.compare", b);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        execl(GS_GRIDCTL, "gridctl", "compare", "--quiet", "--prefix", prefix, a, b,
              (char *) NULL);
        _exit(127);
    }
    int st = gs_tk_wait_exit(pid, "gridctl", 30000);
    size_t len;
    *out = gs_tk_read_file(path, &len, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* (g): drift and repair. Records of A1 drift in the replica's store (one
 * dropped, one at another version); compare names them; while the
 * district goes on (its new events wait in the stream behind what the
 * replica applied), --replica-repair re-reads exactly those cells from the
 * stream, and then the consumer brings the rest: equal again. */
static void
test_drift_repair(void **state)
{
    s_env_t *e = *state;
    s_upload(&e->d[0], 0, 24, 1000, -1);
    s_upload(&e->d[1], 0, 12, 5000, -1);
    uint64_t want[2] = { s_publish(&e->d[0], e->js), s_publish(&e->d[1], e->js) };
    s_replica_start(&e->r, e->nats.url, NULL);
    s_seen_t seen;
    s_follow(&e->r, want, &seen);
    gs_tk_broker_stop(&e->r.b, SIGTERM);

    /* hh-0 in cell 001001001, hh-1 in cell 001002002 (s_upload's grids) */
    const char *c0 = A1 "001001001", *c1 = A1 "001002002";
    int err = 0;
    gs_store_t *st = gs_store_new(e->r.store, NULL, &err);
    assert_non_null(st);
    assert_int_equal(gs_store_debug_drop(st, 0, "hh-" A1 "-0"), 0);
    assert_int_equal(gs_store_debug_set_version(st, 0, "hh-" A1 "-1", 5), 0);
    uint64_t head0;
    assert_int_equal(gs_store_head(st, &head0), 0);
    gs_store_destroy(&st);
    char *out = NULL;
    assert_int_equal(s_compare(e->d[0].store, e->r.store, A1, &out), 1);
    assert_non_null(strstr(out, c0));
    assert_non_null(strstr(out, c1));
    assert_non_null(strstr(out, "hh-" A1 "-0"));
    assert_non_null(strstr(out, "hh-" A1 "-1"));
    assert_null(strstr(out, A1 "001001002"));
    free(out);

    /* the district goes on in the same cells: new versions wait in the
     * stream while the replica is down */
    uint64_t before = want[0];
    s_upload(&e->d[0], 24, 6, 1000, -1);
    s_move(&e->d[0], 0, 1000);     /* the two drifting records move on */
    s_move(&e->d[0], 1, 1000);
    want[0] = s_publish(&e->d[0], e->js);

    char arg[80];
    snprintf(arg, sizeof arg, "%s,%s", c0, c1);
    const char *extra[] = { "--replica-of=" A1 "," A2, e->r.url_arg, "--batch-max-records=50",
                            NULL, NULL };
    char rep[120];
    snprintf(rep, sizeof rep, "--replica-repair=%s", arg);
    extra[3] = rep;
    assert_int_equal(gs_tk_broker_restart(&e->r.b, extra), 0);
    char line[160];
    snprintf(line, sizeof line, "event=replica_repaired origin=%s cell=%s", A1, c0);
    assert_int_equal(s_wait_log(e->r.b.log_path, line, 1, 30000), 0);
    snprintf(line, sizeof line, "event=replica_repaired origin=%s cell=%s", A1, c1);
    assert_int_equal(s_wait_log(e->r.b.log_path, line, 1, 30000), 0);
    size_t len;
    char *log = gs_tk_read_file(e->r.b.log_path, &len, 1);
    /* each cell: exactly its drifting record rewritten, the later events left */
    assert_int_equal(s_count(log, "installed=1 removed=0"), 2);
    free(log);
    /* ... to the position the replica had applied, not the stream's end */
    snprintf(line, sizeof line, "event=replica_repaired origin=%s cell=%s last_seq=%" PRIu64,
             A1, c0, before);
    assert_int_equal(s_wait_log(e->r.b.log_path, line, 1, 1000), 0);
    /* the consumer then brings what waited */
    s_follow(&e->r, want, &seen);
    /* two events of the repair, then each new event once: nothing else
     * of the other cells was written */
    assert_int_equal(s_replica_head(&e->r), head0 + 2 + (want[0] - before));
    s_same(&e->d[0], &e->r);
    s_same(&e->d[1], &e->r);
    assert_int_equal(s_compare(e->d[0].store, e->r.store, A1, &out), 0);
    free(out);
    assert_int_equal(s_compare(e->d[1].store, e->r.store, A2, &out), 0);
    free(out);
    assert_int_equal(gs_tk_gridctl(e->r.store, "verify"), 0);
}

/* The replica starts before the districts' streams exist and waits; it
 * rides out a nats-server outage (districts keep taking uploads) and
 * catches up; SIGTERM drains it and it exits 0. */
static void
test_late_streams_and_outage(void **state)
{
    s_env_t *e = *state;
    s_replica_start(&e->r, e->nats.url, NULL);
    assert_int_equal(s_wait_log(e->r.b.log_path, "event=replica_waiting origin=" A1, 1, 30000),
                     0);
    s_add_stream(e->js, A1);
    s_add_stream(e->js, A2);
    s_upload(&e->d[0], 0, 10, 1000, -1);
    s_upload(&e->d[1], 0, 10, 5000, -1);
    uint64_t want[2] = { s_publish(&e->d[0], e->js), s_publish(&e->d[1], e->js) };
    s_seen_t seen;
    s_follow(&e->r, want, &seen);

    /* NATS down: the districts go on taking uploads */
    jsCtx_Destroy(e->js);
    natsConnection_Destroy(e->nc);
    gs_tk_nats_stop(&e->nats, SIGKILL);
    s_upload(&e->d[0], 10, 10, 1000, -1);
    s_upload(&e->d[1], 10, 10, 5000, -1);
    assert_int_equal(gs_tk_nats_restart(&e->nats), 0);
    assert_int_equal(s_wait_log(e->r.b.log_path, "event=replica_nats_reconnected", 1, 30000), 0);
    s_connect(e->nats.url, &e->nc, &e->js);
    want[0] = s_publish(&e->d[0], e->js);
    want[1] = s_publish(&e->d[1], e->js);
    s_follow(&e->r, want, &seen);
    assert_true(seen.in_order);
    assert_int_equal(seen.count[0], want[0]);
    assert_int_equal(seen.count[1], want[1]);
    s_same(&e->d[0], &e->r);
    s_same(&e->d[1], &e->r);

    /* a district's stream deleted and made anew (numbered from 1 again)
     * while the replica is stopped: it reads the new stream from the start,
     * skips what it holds and takes the new events */
    int st = gs_tk_broker_stop(&e->r.b, SIGTERM);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(js_DeleteStream(e->js, "GRIDSYNC_" A2, NULL, NULL), NATS_OK);
    s_add_stream(e->js, A2);
    s_upload(&e->d[1], 20, 5, 5000, -1);
    e->d[1].published = 0;
    /* only the newest events: the stream is shorter than where the replica was */
    uint64_t keep = want[1];
    want[1] = s_publish_from(&e->d[1], e->js, keep - 3);
    s_replica_start(&e->r, e->nats.url, NULL);
    assert_int_equal(s_wait_log(e->r.b.log_path, "event=replica_stream_renumbered origin=" A2,
                                1, 30000), 0);
    s_follow(&e->r, want, &seen);
    assert_int_equal(seen.count[1], want[1]);
    s_same(&e->d[1], &e->r);
    st = gs_tk_broker_stop(&e->r.b, SIGTERM);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* The link to an authenticating nats-server: with user and password, with
 * an nkey seed, or over TLS with a client certificate. */
static void
test_authenticated_link(void **state)
{
    s_env_t *e = *state;
    s_upload(&e->d[0], 0, 5, 1000, -1);
    s_upload(&e->d[1], 0, 5, 5000, -1);
    uint64_t want[2] = { s_publish(&e->d[0], e->js), s_publish(&e->d[1], e->js) };
    s_replica_start(&e->r, e->nats.url, NULL);
    s_seen_t seen;
    s_follow(&e->r, want, &seen);
    s_same(&e->d[0], &e->r);
}

/* End to end with the real bridge: two district brokers publish their own
 * change logs (gs_bridge), the replica started before or after their
 * uploads ends as exactly their union, digest for digest. */
static void
test_with_district_bridges(void **state)
{
    s_env_t *e = *state;
    s_upload(&e->d[0], 0, 20, 1000, 3);
    s_upload(&e->d[1], 0, 12, 5000, 7);
    s_move(&e->d[0], 5, 1000);
    s_replica_start(&e->r, e->nats.url, NULL);
    /* and more while the replica follows */
    s_upload(&e->d[0], 20, 10, 1000, -1);
    s_upload(&e->d[1], 12, 10, 5000, -1);
    uint64_t want[2] = { s_head(&e->d[0]), s_head(&e->d[1]) };
    assert_int_equal(want[0], 32);
    s_seen_t seen;
    s_follow(&e->r, want, &seen);
    assert_true(seen.in_order);
    assert_int_equal(seen.count[0], want[0]);
    assert_int_equal(seen.count[1], want[1]);
    s_same(&e->d[0], &e->r);
    s_same(&e->d[1], &e->r);
    for (int i = 0; i < 2; i++) {
        char args[400];
        snprintf(args, sizeof args, "compare --prefix %s %s %s", e->d[i].area, e->d[i].store,
                 e->r.store);
        assert_int_equal(gs_tk_gridctl(e->r.store, args), 0);
    }
    char *city = s_ctl(e->r.store, "dups", "--json");
    assert_int_equal(s_count(city, "\"id_number\""), 2);
    free(city);
}

/* Kill district d's broker (and its bridge) and start it again. */
static void
s_district_kill(s_district_t *d)
{
    gs_tk_broker_stop(&d->b, SIGKILL);
    char url[160], jarea[64];
    snprintf(url, sizeof url, "--jetstream-url=%s", s_bridge_url);
    snprintf(jarea, sizeof jarea, "--jetstream-area=%s", d->area);
    const char *extra[] = { "--feed-restricted=true", url, jarea, NULL };
    assert_int_equal(gs_tk_broker_restart(&d->b, extra), 0);
}

/* Faults end to end: a district broker (with its bridge) SIGKILLed, the
 * nats-server SIGKILLed while the districts take uploads, the replica
 * SIGKILLed, each while events flow; at the end the city holds exactly
 * the union: nothing lost, nothing twice, digests equal. */
static void
test_faults_end_to_end(void **state)
{
    s_env_t *e = *state;
    s_replica_start(&e->r, e->nats.url, NULL);
    int next = 0;
    for (int round = 0; round < 3; round++) {
        s_upload(&e->d[0], next, 30, 1000, -1);
        s_upload(&e->d[1], next, 30, 5000, round == 1 ? next + 2 : -1);
        next += 30;
        if (round == 0) {
            s_district_kill(&e->d[0]);
        } else if (round == 1) {
            gs_tk_nats_stop(&e->nats, SIGKILL);
            s_upload(&e->d[0], next, 20, 1000, -1);     /* uploads go on without NATS */
            s_upload(&e->d[1], next, 20, 5000, -1);
            next += 20;
            assert_int_equal(gs_tk_nats_restart(&e->nats), 0);
        } else {
            gs_tk_broker_stop(&e->r.b, SIGKILL);
            s_upload(&e->d[0], next, 10, 1000, -1);
            next += 10;
            s_replica_start(&e->r, e->nats.url, NULL);
        }
    }
    uint64_t want[2] = { s_head(&e->d[0]), s_head(&e->d[1]) };
    s_seen_t seen;
    s_follow(&e->r, want, &seen);
    assert_true(seen.in_order);
    assert_int_equal(seen.count[0], want[0]);
    assert_int_equal(seen.count[1], want[1]);
    assert_int_equal(seen.replica_events, want[0] + want[1]);
    s_same(&e->d[0], &e->r);
    s_same(&e->d[1], &e->r);
    for (int i = 0; i < 2; i++) {
        char args[400];
        snprintf(args, sizeof args, "compare --prefix %s %s %s", e->d[i].area, e->d[i].store,
                 e->r.store);
        assert_int_equal(gs_tk_gridctl(e->r.store, args), 0);
    }
    assert_int_equal(gs_tk_gridctl(e->r.store, "verify"), 0);
}

/* The plan of a replica's config: names, subjects, and what is refused. */
static void
test_plan(void **state)
{
    (void) state;
    gs_config_t c;
    gs_config_defaults(&c);
    snprintf(c.jetstream_url, sizeof c.jetstream_url, "nats://127.0.0.1:4222");
    snprintf(c.replica_of, sizeof c.replica_of, " 440305 ,440306");
    gs_replica_origin_t o[4];
    char err[300];
    assert_int_equal(gs_replica_plan(&c, o, 4, err, sizeof err), 2);
    assert_string_equal(o[0].area, "440305");
    assert_string_equal(o[0].followed, "440305");
    assert_string_equal(o[0].stream, "GRIDSYNC_440305");
    assert_string_equal(o[0].durable, "replica_440305");
    assert_string_equal(o[0].subject, "gridsync.44.03.05.>");
    assert_string_equal(o[1].subject, "gridsync.44.03.06.>");
    /* a street of one district, under a custom consumer name */
    gs_config_t s = c;
    snprintf(s.replica_of, sizeof s.replica_of, "440305");
    snprintf(s.replica_area, sizeof s.replica_area, "440305001");
    snprintf(s.replica_name, sizeof s.replica_name, "street-1");
    assert_int_equal(gs_replica_plan(&s, o, 4, err, sizeof err), 1);
    assert_string_equal(o[0].followed, "440305001");
    assert_string_equal(o[0].subject, "gridsync.44.03.05.001.>");
    assert_string_equal(o[0].durable, "street-1_440305");
    /* a city area covering both: each origin whole */
    gs_config_t w = c;
    snprintf(w.replica_area, sizeof w.replica_area, "4403");
    assert_int_equal(gs_replica_plan(&w, o, 4, err, sizeof err), 2);
    assert_string_equal(o[1].followed, "440306");
    /* cells to repair, each to its origin */
    gs_config_t rp = c;
    snprintf(rp.replica_repair, sizeof rp.replica_repair, "440306001001001,440305002001001");
    assert_int_equal(gs_replica_plan(&rp, o, 4, err, sizeof err), 2);
    assert_int_equal(o[0].n_repair, 1);
    assert_string_equal(o[0].repair[0], "440305002001001");
    assert_string_equal(o[1].repair[0], "440306001001001");
    static const struct {
        const char *cells, *why;
    } badcells[] = {
        { "44030500100100", "not a cell" },
        { "440305001001001,", "not a cell" },
        { "440307001001001", "under no origin" },
        { "440305001001001,440305001001001", "named twice" },
    };
    for (size_t i = 0; i < sizeof badcells / sizeof badcells[0]; i++) {
        snprintf(rp.replica_repair, sizeof rp.replica_repair, "%s", badcells[i].cells);
        err[0] = 0;
        assert_int_equal(gs_replica_plan(&rp, o, 4, err, sizeof err), -1);
        if (!strstr(err, badcells[i].why))
            fail_msg("cells %zu: '%s' does not say '%s'", i, err, badcells[i].why);
    }

    static const struct {
        const char *of, *area, *name, *url, *rebaseline, *why;
    } bad[] = {
        { "", "", "replica", "u", "", "no origin" },
        { "440305,4403", "", "replica", "u", "", "overlap" },
        { "440305,440305", "", "replica", "u", "", "overlap" },
        { "44030", "", "replica", "u", "", "not an area" },
        { "440305x", "", "replica", "u", "", "not an area" },
        { "440305,440306", "440305001", "replica", "u", "", "neither covers" },
        { "440305", "4403051", "replica", "u", "", "not a level prefix" },
        { "440305", "", "a.b", "u", "", "consumer name" },
        { "440305", "", "replica", "", "", "jetstream-url" },
        { "440305", "", "replica", "u", "440306", "not one of replica-of" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gs_config_t b = c;
        snprintf(b.replica_of, sizeof b.replica_of, "%s", bad[i].of);
        snprintf(b.replica_area, sizeof b.replica_area, "%s", bad[i].area);
        snprintf(b.replica_name, sizeof b.replica_name, "%s", bad[i].name);
        snprintf(b.jetstream_url, sizeof b.jetstream_url, "%s", bad[i].url);
        snprintf(b.replica_rebaseline, sizeof b.replica_rebaseline, "%s", bad[i].rebaseline);
        err[0] = 0;
        assert_int_equal(gs_replica_plan(&b, o, 4, err, sizeof err), -1);
        if (!strstr(err, bad[i].why))
            fail_msg("case %zu: '%s' does not say '%s'", i, err, bad[i].why);
    }
}

/* Config mistakes stop the start with a message. */
static void
test_config_refused(void **state)
{
    s_env_t *e = *state;
    char dir[64], store[128];
    gs_tk_tmpdir(dir, sizeof dir);
    snprintf(store, sizeof store, "%s/store", dir);
    const char *bad[][3] = {
        { "--replica-of=440305,4403", "--jetstream-url=nats://127.0.0.1:1", NULL },
        { "--replica-of=440305", NULL, NULL },
        { "--replica-of=440305,440306", "--replica-area=440305001",
          "--jetstream-url=nats://127.0.0.1:1" },
        { "--replica-rebaseline=440305", NULL, NULL },
        { "--replica-repair=440305001001001", NULL, NULL },
        { "--replica-of=440305", "--replica-repair=440306001001001",
          "--jetstream-url=nats://127.0.0.1:1" },
    };
    (void) e;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gs_tk_broker_t b;
        memset(&b, 0, sizeof b);
        const char *extra[4] = { bad[i][0], bad[i][1], bad[i][2], NULL };
        assert_int_not_equal(gs_tk_broker_start(&b, store, extra), 0);
        /* refused for its config, with a message */
        assert_int_equal(s_wait_log(b.log_path, "event=config_error", (int) i + 1, 5000), 0);
    }
    gs_tk_rmtree(dir);
}

int
main(void)
{
    if (!gs_tk_nats_available())
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan),
        cmocka_unit_test_setup_teardown(test_union_of_two_districts, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_kill_replica_exactly_once, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_acks_one_per_batch, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_fetch_ahead_of_commit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_large_batches_when_behind, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_quiet_origin_while_busy, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_hostile_input, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_lineage_rebaseline, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_drift_repair, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_late_streams_and_outage, s_setup_bare,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_authenticated_link, s_setup_auth, s_teardown),
        cmocka_unit_test_setup_teardown(test_authenticated_link, s_setup_nkey, s_teardown),
        cmocka_unit_test_setup_teardown(test_authenticated_link, s_setup_tls, s_teardown),
        cmocka_unit_test_setup_teardown(test_with_district_bridges, s_setup_bridged,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_faults_end_to_end, s_setup_bridged, s_teardown),
        cmocka_unit_test_setup_teardown(test_config_refused, s_setup, s_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    nats_Close();
    return rc;
}

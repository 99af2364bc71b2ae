/*
 * test_admin: the broker's admin endpoint (docs/protocol.md, "Admin
 * endpoint") and the client library's gs_admin that speaks it.
 *
 * One real gridsyncd per test, on a fresh store, filled the way an
 * operator fills one: records uploaded through the client library,
 * devices and grids registered with the real gridctl. Each of the six
 * request bodies is asked through gs_admin and checked against what was
 * put in; bad input (no body, a body from a newer schema, bytes that do
 * not decode, a wrong frame layout, a stats prefix that is not digits, a
 * record that does not exist) is checked for the documented reason and
 * request_id, through raw DEALER and REQ sockets where no client would
 * send it. The client's own failures (no socket, a socket left by a
 * stopped broker, a peer that never answers, a cancel) are checked
 * without a broker. Every wait is for a reply or a bounded timeout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "gs_admin.h"
#include "gs_arena.h"
#include "gs_client.h"
#include "gs_store.h"
#include "gs_store_debug.h"
#include "gs_testkit.h"
#include "gs_version.h"

#define GRID_A "440305001001001"
#define GRID_B "440305001001002"
#define GRID_C "440305002001001"   /* another street */
#define S_PATIENCE_MS 10000         /* a reply that takes longer is a hang */

typedef struct {
    char dir[64];               /* temp dir */
    char store[128];            /* store inside it */
    gs_tk_broker_t broker;      /* the daemon */
    gs_arena_t *arena;          /* records */
    gs_admin_t *admin;          /* client of its admin endpoint */
    uint64_t head;              /* seq of the last upload's last event */
} s_env_t;

/* Upload recs as device dev; returns the seq of the last event. */
static uint64_t
s_upload(s_env_t *e, const char *upload_id, Gridsync__V1__Record **recs, size_t n)
{
    gs_client_opts_t o;
    gs_client_opts_init(&o);
    o.timeout_ms = S_PATIENCE_MS;
    o.retries = 0;
    gs_client_t *c = gs_client_new(e->broker.upload, &o);
    assert_non_null(c);
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = (char *) "dev-admin-test";
    up.upload_id = (char *) upload_id;
    up.records = recs;
    up.n_records = n;
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_client_upload(c, &up, &ack, &err), 0);
    uint64_t seq = 0;
    for (size_t i = 0; i < ack->n_results; i++) {
        assert_int_equal(ack->results[i]->status,
                         GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
        if (ack->results[i]->seq > seq)
            seq = ack->results[i]->seq;
    }
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_client_destroy(&c);
    return seq;
}

static int
s_setup(void **state)
{
    s_env_t *e = calloc(1, sizeof *e);
    gs_tk_tmpdir(e->dir, sizeof e->dir);
    snprintf(e->store, sizeof e->store, "%s/store", e->dir);
    if (gs_tk_broker_start(&e->broker, e->store, NULL))
        return -1;
    e->arena = gs_arena_new(0);
    /* three households in two grids of one street, one in another street */
    Gridsync__V1__Record *recs[] = {
        gs_tk_household(e->arena, GRID_A, "H-A-1", "ADDR-A-1", 3, 1000),
        gs_tk_household(e->arena, GRID_A, "H-A-2", "ADDR-A-2", 2, 2000),
        gs_tk_household(e->arena, GRID_B, "H-B-1", "ADDR-B-1", 1, 3000),
        gs_tk_household(e->arena, GRID_C, "H-C-1", NULL, 4, 4000),
    };
    e->head = s_upload(e, "up-admin-1", recs, 4);
    /* the registries, as an operator fills them beside the running broker */
    assert_int_equal(gs_tk_gridctl(e->store, "devices add dev-1 --collector col-1 "
                                             "--prefix 440305001"), 0);
    assert_int_equal(gs_tk_gridctl(e->store, "devices add dist-1 --role district "
                                             "--prefix 440305 --note 'district one'"), 0);
    char csv[200], args[300];
    snprintf(csv, sizeof csv, "%s/grids.csv", e->dir);
    FILE *f = fopen(csv, "w");
    assert_non_null(f);
    fprintf(f, "code,name,valid_from,valid_to\n"
               GRID_A ",Grid A,,\n"
               GRID_B ",Grid B,2020-01-01,\n"
               GRID_C ",Grid C,,2021-12-31\n");
    fclose(f);
    snprintf(args, sizeof args, "grids import %s", csv);
    assert_int_equal(gs_tk_gridctl(e->store, args), 0);

    gs_admin_opts_t ao;
    gs_admin_opts_init(&ao);
    ao.timeout_ms = S_PATIENCE_MS;
    int rc;
    e->admin = gs_admin_new(e->broker.admin, &ao, &rc, NULL);
    assert_non_null(e->admin);
    *state = e;
    return 0;
}

static int
s_teardown(void **state)
{
    s_env_t *e = *state;
    gs_admin_destroy(&e->admin);
    gs_tk_broker_stop(&e->broker, SIGTERM);
    gs_arena_destroy(&e->arena);
    gs_tk_rmtree(e->dir);
    free(e);
    return 0;
}

/* ---- Raw frames -------------------------------------------------------------- */

/* A socket of type on the admin endpoint, with bounded waits. */
static void *
s_raw(void *ctx, const s_env_t *e, int type)
{
    void *s = zmq_socket(ctx, type);
    assert_non_null(s);
    int patience = S_PATIENCE_MS, zero = 0;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &patience, sizeof patience);
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &patience, sizeof patience);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(s, e->broker.admin), 0);
    return s;
}

/* The next reply on s, decoded; the test fails when none comes in time. */
static Gridsync__V1__AdminReply *
s_raw_reply(void *s)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    int n = zmq_msg_recv(&m, s, 0);
    if (n < 0)
        fail_msg("no reply on the admin endpoint: %s", zmq_strerror(zmq_errno()));
    assert_false(zmq_msg_more(&m)); /* one frame */
    Gridsync__V1__AdminReply *r =
        gridsync__v1__admin_reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
    zmq_msg_close(&m);
    assert_non_null(r);
    return r;
}

/* Send bytes as one frame and expect an Error with reason and request_id. */
static void
s_raw_expect(void *s, const void *data, size_t len, int reason, uint64_t request_id,
             const char *words)
{
    assert_int_equal(zmq_send(s, data, len, 0), (int) len);
    Gridsync__V1__AdminReply *r = s_raw_reply(s);
    assert_int_equal(r->body_case, GRIDSYNC__V1__ADMIN_REPLY__BODY_ERROR);
    assert_int_equal(r->error->reason, reason);
    assert_int_equal(r->request_id, request_id);
    if (words && !strstr(r->error->message, words))
        fail_msg("error message '%s' does not say '%s'", r->error->message, words);
    gridsync__v1__admin_reply__free_unpacked(r, NULL);
}

/* ---- The five bodies ------------------------------------------------------------ */

static const Gridsync__V1__CellStats *
s_cell(const Gridsync__V1__StatsReply *s, const char *grid)
{
    for (size_t i = 0; i < s->n_cells; i++)
        if (!strcmp(s->cells[i]->grid_code, grid))
            return s->cells[i];
    return NULL;
}

/* stats{prefix}: every cell under any digit prefix, in code order, with
 * the counters of what was uploaded and the head seq; a prefix that is
 * not up to 15 digits is REASON_BAD_REQUEST with the request's id. */
static void
test_stats(void **state)
{
    s_env_t *e = *state;
    Gridsync__V1__StatsReply *s = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_admin_stats(e->admin, "", &s, &err), 0);
    assert_int_equal(s->n_cells, 3);
    assert_int_equal(s->head_seq, e->head);
    assert_string_equal(s->cells[0]->grid_code, GRID_A);
    assert_string_equal(s->cells[1]->grid_code, GRID_B);
    assert_string_equal(s->cells[2]->grid_code, GRID_C);
    const Gridsync__V1__CellStats *a = s_cell(s, GRID_A);
    assert_int_equal(a->households, 2);
    assert_int_equal(a->persons, 5);
    assert_int_equal(a->rentals, 0);
    assert_int_equal(a->voided, 0);
    assert_true(a->last_seq > 0 && a->last_seq <= e->head);
    assert_true(a->last_update > 0);
    assert_int_equal(s_cell(s, GRID_C)->persons, 4);
    gridsync__v1__stats_reply__free_unpacked(s, NULL);

    /* any digit prefix, not only a level boundary: 7 digits, a street, a grid */
    static const struct {
        const char *prefix;
        size_t cells;
    } cases[] = { { "4403050", 3 }, { "440305001", 2 }, { GRID_C, 1 }, { "4403051", 0 },
                  { "11", 0 } };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(gs_admin_stats(e->admin, cases[i].prefix, &s, &err), 0);
        assert_int_equal(s->n_cells, cases[i].cells);
        assert_int_equal(s->head_seq, e->head);
        gridsync__v1__stats_reply__free_unpacked(s, NULL);
    }

    static const char *const bad[] = { "44a305", "4403050010010011", " 44", "-1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(gs_admin_stats(e->admin, bad[i], &s, &err), GS_CLIENT_ESERVER);
        assert_null(s);
        assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_BAD_REQUEST);
        assert_non_null(strstr(err.message, "up to 15 digits"));
    }
    /* each answered, each error counted by its reason */
    assert_true(gs_tk_metric(e->broker.metrics_port, "gridsync_admin_requests_total") == 10.0);
    assert_true(gs_tk_metric(e->broker.metrics_port,
                             "gridsync_request_errors_total{reason=\"BAD_REQUEST\"}") == 4.0);
}

/* get{kind, record_key}: the record by its canonical id, of either kind
 * or the kind asked; a record that does not exist, or not of that kind,
 * is REASON_NOT_FOUND naming the id. */
static void
test_get(void **state)
{
    s_env_t *e = *state;
    Gridsync__V1__SnapshotEntry *r = NULL;
    gs_client_error_t err;
    static const int kinds[] = { GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_UNSPECIFIED,
                                 GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD };
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(gs_admin_get(e->admin, kinds[i], "H-A-2", &r, &err), 0);
        assert_string_equal(r->grid_code, GRID_A);
        assert_int_equal(r->kind, GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD);
        assert_string_equal(r->record_key, "H-A-2");
        assert_int_equal(r->version, 1);
        assert_true(r->seq > 0 && r->seq <= e->head);
        /* unmasked and whole: the members with their ID numbers */
        assert_non_null(r->record);
        assert_int_equal(r->record->body_case, GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD);
        assert_string_equal(r->record->household->household_id, "H-A-2");
        assert_int_equal(r->record->household->n_members, 2);
        assert_int_equal(strlen(r->record->household->members[0]->id_number), 18);
        assert_null(strchr(r->record->household->members[0]->id_number, '*'));
        gridsync__v1__snapshot_entry__free_unpacked(r, NULL);
    }

    assert_int_equal(gs_admin_get(e->admin, 0, "H-NO-SUCH", &r, &err), GS_CLIENT_ESERVER);
    assert_null(r);
    assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_NOT_FOUND);
    assert_non_null(strstr(err.message, "no record with id 'H-NO-SUCH'"));
    assert_int_equal(gs_admin_get(e->admin, GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_RENTAL,
                                  "H-A-2", &r, &err), GS_CLIENT_ESERVER);
    assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_NOT_FOUND);
    /* the client refuses an empty id before sending */
    assert_int_equal(gs_admin_get(e->admin, 0, "", &r, &err), GS_CLIENT_EINVAL);
}

/* get with the record_key left out (a raw request: gs_admin refuses to
 * send one): REASON_NOT_FOUND, as for any id that names no record. */
static void
test_get_missing_key(void **state)
{
    s_env_t *e = *state;
    void *ctx = zmq_ctx_new();
    void *s = s_raw(ctx, e, ZMQ_DEALER);
    Gridsync__V1__GetRequest g = GRIDSYNC__V1__GET_REQUEST__INIT;
    Gridsync__V1__AdminRequest rq = GRIDSYNC__V1__ADMIN_REQUEST__INIT;
    rq.request_id = 77;
    rq.body_case = GRIDSYNC__V1__ADMIN_REQUEST__BODY_GET;
    rq.get = &g;
    uint8_t buf[64];
    size_t len = gridsync__v1__admin_request__pack(&rq, buf);
    s_raw_expect(s, buf, len, GRIDSYNC__V1__REASON__REASON_NOT_FOUND, 77, "no record");
    zmq_close(s);
    zmq_ctx_term(ctx);
}

static const Gridsync__V1__Device *
s_device(const Gridsync__V1__DeviceListReply *d, const char *id)
{
    for (size_t i = 0; i < d->n_devices; i++)
        if (!strcmp(d->devices[i]->device_id, id))
            return d->devices[i];
    return NULL;
}

/* devices{}: the whole registry, as gridctl wrote it. */
static void
test_devices(void **state)
{
    s_env_t *e = *state;
    Gridsync__V1__DeviceListReply *d = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_admin_devices(e->admin, &d, &err), 0);
    assert_int_equal(d->n_devices, 2);
    const Gridsync__V1__Device *dev = s_device(d, "dev-1");
    assert_non_null(dev);
    assert_int_equal(dev->role, GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE);
    assert_int_equal(dev->status, GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_ACTIVE);
    assert_string_equal(dev->collector_id, "col-1");
    assert_int_equal(dev->n_prefixes, 1);
    assert_string_equal(dev->prefixes[0], "440305001");
    assert_true(dev->created_at > 0);
    const Gridsync__V1__Device *dist = s_device(d, "dist-1");
    assert_non_null(dist);
    assert_int_equal(dist->role, GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT);
    assert_string_equal(dist->note, "district one");
    gridsync__v1__device_list_reply__free_unpacked(d, NULL);

    /* a revocation shows at once */
    assert_int_equal(gs_tk_gridctl(e->store, "devices revoke dev-1"), 0);
    assert_int_equal(gs_admin_devices(e->admin, &d, &err), 0);
    assert_int_equal(s_device(d, "dev-1")->status,
                     GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_REVOKED);
    gridsync__v1__device_list_reply__free_unpacked(d, NULL);
}

/* grids{prefix}: the registry under a prefix, in code order, dates as
 * imported; a prefix with no grids is an empty list. */
static void
test_grids(void **state)
{
    s_env_t *e = *state;
    Gridsync__V1__GridListReply *g = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_admin_grids(e->admin, "", &g, &err), 0);
    assert_int_equal(g->n_grids, 3);
    assert_string_equal(g->grids[0]->grid_code, GRID_A);
    assert_string_equal(g->grids[0]->name, "Grid A");
    assert_string_equal(g->grids[1]->valid_from, "2020-01-01");
    assert_string_equal(g->grids[2]->grid_code, GRID_C);
    assert_string_equal(g->grids[2]->valid_to, "2021-12-31");
    gridsync__v1__grid_list_reply__free_unpacked(g, NULL);

    static const struct {
        const char *prefix;
        size_t grids;
    } cases[] = { { "440305001", 2 }, { "4403050", 3 }, { GRID_B, 1 }, { "12", 0 } };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(gs_admin_grids(e->admin, cases[i].prefix, &g, &err), 0);
        assert_int_equal(g->n_grids, cases[i].grids);
        gridsync__v1__grid_list_reply__free_unpacked(g, NULL);
    }
}

/* incident_categories{}: the store's category table, the built-in one
 * until gridctl sets another, which the next request shows. */
static void
test_incident_categories(void **state)
{
    s_env_t *e = *state;
    Gridsync__V1__IncidentCategoriesReply *c = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_admin_incident_categories(e->admin, &c, &err), 0);
    assert_false(c->configured);
    assert_int_equal(c->n_categories, 7);
    assert_string_equal(c->categories[1]->code, "02");
    assert_string_equal(c->categories[1]->name, "安全隐患");
    assert_int_equal(c->categories[1]->n_close_hours, 4);
    assert_int_equal(c->categories[1]->close_hours[0], 168);
    assert_int_equal(c->categories[1]->n_handle_hours, 4);
    assert_int_equal(c->categories[1]->handle_hours[3], 4);
    assert_false(c->categories[1]->retired);
    gridsync__v1__incident_categories_reply__free_unpacked(c, NULL);

    char path[160], cmd[256];
    snprintf(path, sizeof path, "%s/cats.tsv", e->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("07\t噪音扰民\t96\t48\t24\t12\t10\t8\t6\t2\tactive\n"
          "01\t矛盾纠纷\t240\t120\t72\t24\t72\t48\t24\t4\tretired\n", f);
    assert_int_equal(fclose(f), 0);
    snprintf(cmd, sizeof cmd, "incidents categories set %s", path);
    assert_int_equal(gs_tk_gridctl(e->store, cmd), 0);
    assert_int_equal(gs_admin_incident_categories(e->admin, &c, &err), 0);
    assert_true(c->configured);
    assert_int_equal(c->n_categories, 2);
    assert_string_equal(c->categories[0]->code, "01");
    assert_true(c->categories[0]->retired);
    assert_string_equal(c->categories[1]->code, "07");
    assert_int_equal(c->categories[1]->handle_hours[0], 10);
    gridsync__v1__incident_categories_reply__free_unpacked(c, NULL);
}

/* health{}: version, head seq, records, map, uptime, subscriptions, epoch. */
static void
test_health(void **state)
{
    s_env_t *e = *state;
    Gridsync__V1__HealthReply *h = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_admin_health(e->admin, &h, &err), 0);
    assert_string_equal(h->version, GS_VERSION);
    assert_int_equal(h->head_seq, e->head);
    assert_int_equal(h->records, 4);
    assert_true(h->map_size > 0 && h->map_used > 0 && h->map_used <= h->map_size);
    assert_true(h->uptime_ms >= 0);
    assert_int_equal(h->feed_subscriptions, 0);
    assert_true(h->store_epoch != 0);
    gridsync__v1__health_reply__free_unpacked(h, NULL);
}

/* A grids prefix that is not up to 15 digits and a get kind this broker
 * does not know are bad requests (REASON_BAD_REQUEST, not to be retried),
 * as a stats prefix that is not digits is. The broker once passed them to
 * the store and answered its GS_EINVAL as REASON_INTERNAL, which clients
 * read as "retry later". */
/* digest{prefix, cursor, limit}: the same digests, children and cell
 * records as the store itself gives (read beside the broker, read-only),
 * paged at a cell; a prefix off a level is REASON_BAD_REQUEST. */
static void
test_digest(void **state)
{
    s_env_t *e = *state;
    gs_store_opts_t so;
    gs_store_opts_init(&so);
    so.read_only = 1;
    int serr = 0;
    gs_store_t *st = gs_store_new(e->store, &so, &serr);
    assert_non_null(st);

    Gridsync__V1__DigestReply *d = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_admin_digest(e->admin, "", NULL, 0, 0, &d, &err), 0);
    gs_digest_query_t q = { .prefix = "" };
    gs_digest_result_t r;
    assert_int_equal(gs_store_digest(st, &q, &r), 0);
    assert_int_equal(d->node->count, 4);
    assert_true(r.node.count == 4);
    assert_memory_equal(d->node->digest.data, r.node.digest, 16);
    assert_int_equal(d->head_seq, e->head);
    assert_true(d->store_epoch != 0);
    assert_int_equal(d->n_children, 1);
    assert_string_equal(d->children[0]->prefix, "44");
    gridsync__v1__digest_reply__free_unpacked(d, NULL);

    /* a street: its two communities' worth of cells below, here one */
    assert_int_equal(gs_admin_digest(e->admin, "440305001", NULL, 0, 0, &d, &err), 0);
    assert_int_equal(d->node->count, 3);
    assert_int_equal(d->n_children, 1);
    assert_string_equal(d->children[0]->prefix, "440305001001");
    gridsync__v1__digest_reply__free_unpacked(d, NULL);

    /* a cell, one record per reply, in key order */
    assert_int_equal(gs_admin_digest(e->admin, GRID_A, NULL, 0, 1, &d, &err), 0);
    assert_int_equal(d->node->count, 2);
    assert_int_equal(d->n_records, 1);
    assert_string_equal(d->records[0]->record_key, "H-A-1");
    assert_int_equal(d->records[0]->version, 1);
    assert_true(d->next_cursor.len > 0);
    Gridsync__V1__DigestReply *d2 = NULL;
    assert_int_equal(gs_admin_digest(e->admin, GRID_A, d->next_cursor.data, d->next_cursor.len,
                                     1, &d2, &err), 0);
    assert_int_equal(d2->n_records, 1);
    assert_string_equal(d2->records[0]->record_key, "H-A-2");
    assert_int_equal(d2->next_cursor.len, 0);
    gridsync__v1__digest_reply__free_unpacked(d, NULL);
    gridsync__v1__digest_reply__free_unpacked(d2, NULL);

    static const char *const bad[] = { "440", "44a305", "4403050010010011" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(gs_admin_digest(e->admin, bad[i], NULL, 0, 0, &d, &err),
                         GS_CLIENT_ESERVER);
        assert_null(d);
        assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_BAD_REQUEST);
    }
    gs_store_destroy(&st);
}

/* A store made before digests (format 2) gets them built, and its person
 * index rebuilt, when the broker opens it, which the broker logs; digest
 * then answers for its records. */
static void
test_digest_after_upgrade(void **state)
{
    (void) state;
    char dir[64], store[128];
    gs_tk_tmpdir(dir, sizeof dir);
    snprintf(store, sizeof store, "%s/store", dir);
    gs_store_t *st = gs_store_new(store, NULL, NULL);
    assert_non_null(st);
    gs_arena_t *a = gs_arena_new(0);
    Gridsync__V1__Record *recs[] = {
        gs_tk_household(a, GRID_A, "H-U-1", "ADDR-U-1", 2, 5000),
        gs_tk_household(a, GRID_C, "H-U-2", "ADDR-U-2", 1, 6000),
    };
    gs_upload_t up;
    memset(&up, 0, sizeof up);
    up.device_id = "dev-upgrade";
    up.upload_id = "up-upgrade-1";
    up.records = recs;
    up.n_records = 2;
    up.alloc = gs_arena_allocator(a);
    up.scope_all = 1;
    gs_apply_out_t out;
    assert_int_equal(gs_store_apply(st, &up, 1, 1780243200000LL, &out), 0);
    gs_apply_out_clear(&out);
    /* what the previous build left: format 2, no digests */
    const uint8_t fmt2[4] = { 2, 0, 0, 0 };
    assert_int_equal(gs_store_debug_put(st, "meta", "format", 6, fmt2, 4), 0);
    gs_store_destroy(&st);
    gs_arena_destroy(&a);

    gs_tk_broker_t b;
    assert_int_equal(gs_tk_broker_start(&b, store, NULL), 0);
    size_t len = 0;
    char *log = gs_tk_read_file(b.log_path, &len, 0);
    assert_non_null(log);
    /* logged before ready, so already in the file */
    assert_non_null(strstr(log, "event=store_upgraded"));
    assert_non_null(strstr(log, "from_format=2 format=7 digested_records=2 person_tags=3"));
    free(log);
    gs_admin_opts_t ao;
    gs_admin_opts_init(&ao);
    ao.timeout_ms = S_PATIENCE_MS;
    int rc;
    gs_admin_t *ad = gs_admin_new(b.admin, &ao, &rc, NULL);
    assert_non_null(ad);
    Gridsync__V1__DigestReply *d = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_admin_digest(ad, "4403", NULL, 0, 0, &d, &err), 0);
    assert_int_equal(d->node->count, 2);
    assert_int_equal(d->n_children, 1);
    gridsync__v1__digest_reply__free_unpacked(d, NULL);
    gs_admin_destroy(&ad);
    gs_tk_broker_stop(&b, SIGTERM);
    gs_tk_rmtree(dir);
}

static void
test_bad_arguments(void **state)
{
    s_env_t *e = *state;
    gs_client_error_t err;
    static const char *const bad[] = { "4403050010010011", "44a305", " 44" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        Gridsync__V1__GridListReply *g = NULL;
        assert_int_equal(gs_admin_grids(e->admin, bad[i], &g, &err), GS_CLIENT_ESERVER);
        assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_BAD_REQUEST);
        assert_non_null(strstr(err.message, "up to 15 digits"));
    }
    Gridsync__V1__SnapshotEntry *r = NULL;
    assert_int_equal(gs_admin_get(e->admin, 99, "H-A-2", &r, &err), GS_CLIENT_ESERVER);
    assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_BAD_REQUEST);
}

/* ---- Bad input ---------------------------------------------------------------------------- */

/* No body, and a body this broker's schema does not know (field 8, as a
 * newer client might send): REASON_UNKNOWN_TYPE with the request's id. */
static void
test_unknown_body(void **state)
{
    s_env_t *e = *state;
    void *ctx = zmq_ctx_new();
    void *s = s_raw(ctx, e, ZMQ_DEALER);
    /* request_id 41, nothing else */
    static const uint8_t none[] = { 0x08, 41 };
    s_raw_expect(s, none, sizeof none, GRIDSYNC__V1__REASON__REASON_UNKNOWN_TYPE, 41,
                 "no known body");
    /* request_id 42, field 49 an empty message: a body from a newer schema
     * (a field number well above the ones in use, so that adding a body
     * does not make it known) */
    static const uint8_t newer[] = { 0x08, 42, 0x8a, 0x03, 0x00 };
    s_raw_expect(s, newer, sizeof newer, GRIDSYNC__V1__REASON__REASON_UNKNOWN_TYPE, 42,
                 "no known body");
    /* through the client library: GS_CLIENT_ESERVER with the reason */
    Gridsync__V1__AdminRequest rq = GRIDSYNC__V1__ADMIN_REQUEST__INIT;
    Gridsync__V1__AdminReply *r = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_admin_call(e->admin, &rq, &r, &err), GS_CLIENT_ESERVER);
    assert_null(r);
    assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_UNKNOWN_TYPE);
    zmq_close(s);
    zmq_ctx_term(ctx);
}

/* Bytes that are not an AdminRequest, and frame layouts other than one
 * frame (or an empty delimiter and one frame): REASON_MALFORMED with
 * request_id 0, even when the bytes begin with a readable request_id. The
 * broker goes on answering on the same connection. */
static void
test_malformed(void **state)
{
    s_env_t *e = *state;
    void *ctx = zmq_ctx_new();
    void *s = s_raw(ctx, e, ZMQ_DEALER);
    /* request_id 5, then a length that runs past the end */
    static const uint8_t trunc[] = { 0x08, 5, 0x12, 0x40, 0x0a };
    s_raw_expect(s, trunc, sizeof trunc, GRIDSYNC__V1__REASON__REASON_MALFORMED, 0, NULL);
    /* a varint that never ends */
    static const uint8_t varint[] = { 0x08, 0xff, 0xff, 0xff };
    s_raw_expect(s, varint, sizeof varint, GRIDSYNC__V1__REASON__REASON_MALFORMED, 0, NULL);
    /* request_id 6 and a stats body whose prefix is field 1 as a varint:
     * the wire type is wrong for a string */
    static const uint8_t wiretype[] = { 0x08, 6, 0x12, 0x02, 0x08, 0x01 };
    s_raw_expect(s, wiretype, sizeof wiretype, GRIDSYNC__V1__REASON__REASON_MALFORMED, 0,
                 NULL);

    /* two frames after the routing id */
    assert_int_equal(zmq_send(s, "a", 1, ZMQ_SNDMORE), 1);
    static const uint8_t health[] = { 0x08, 7, 0x32, 0x00 };
    assert_int_equal(zmq_send(s, health, sizeof health, 0), (int) sizeof health);
    Gridsync__V1__AdminReply *r = s_raw_reply(s);
    assert_int_equal(r->body_case, GRIDSYNC__V1__ADMIN_REPLY__BODY_ERROR);
    assert_int_equal(r->error->reason, GRIDSYNC__V1__REASON__REASON_MALFORMED);
    assert_int_equal(r->request_id, 0);
    assert_non_null(strstr(r->error->message, "expected one frame"));
    gridsync__v1__admin_reply__free_unpacked(r, NULL);

    /* and the same connection is still served */
    assert_int_equal(zmq_send(s, health, sizeof health, 0), (int) sizeof health);
    r = s_raw_reply(s);
    assert_int_equal(r->body_case, GRIDSYNC__V1__ADMIN_REPLY__BODY_HEALTH);
    assert_int_equal(r->request_id, 7);
    gridsync__v1__admin_reply__free_unpacked(r, NULL);
    zmq_close(s);

    /* a REQ socket works too: the delimiter goes back with the reply */
    s = s_raw(ctx, e, ZMQ_REQ);
    assert_int_equal(zmq_send(s, health, sizeof health, 0), (int) sizeof health);
    r = s_raw_reply(s);
    assert_int_equal(r->body_case, GRIDSYNC__V1__ADMIN_REPLY__BODY_HEALTH);
    assert_int_equal(r->request_id, 7);
    gridsync__v1__admin_reply__free_unpacked(r, NULL);
    zmq_close(s);
    zmq_ctx_term(ctx);
}

/* ---- The client without a broker ------------------------------------------------------- */

/* gs_admin fails at once, with a message that says what to do, when the
 * endpoint is not ipc://, when no socket file is there, when the file is
 * one a stopped broker left (nothing listens), and when it is not a
 * socket; a peer that takes the request and never answers ends in
 * GS_CLIENT_ETIMEOUT, and a set cancel flag in GS_CLIENT_ECANCELLED. */
static void
test_client_errors(void **state)
{
    (void) state;
    char dir[64], ep[200], path[160];
    gs_tk_tmpdir(dir, sizeof dir);
    gs_client_error_t err;
    int rc;
    static const char *const bad[] = { "tcp://127.0.0.1:7512", "ipc://", "inproc://x",
                                       "var/store/admin.sock" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(gs_admin_new(bad[i], NULL, &rc, &err));
        assert_int_equal(rc, GS_CLIENT_EINVAL);
        assert_non_null(strstr(err.message, "must be ipc://PATH"));
    }
    char longpath[300];
    memset(longpath, 'x', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = 0;
    memcpy(longpath, "ipc:///", 7);
    assert_null(gs_admin_new(longpath, NULL, &rc, &err));
    assert_int_equal(rc, GS_CLIENT_EINVAL);
    assert_non_null(strstr(err.message, "too long"));

    gs_admin_opts_t o;
    gs_admin_opts_init(&o);
    o.timeout_ms = 300;
    Gridsync__V1__HealthReply *h = NULL;

    /* no socket file */
    snprintf(path, sizeof path, "%s/admin.sock", dir);
    snprintf(ep, sizeof ep, "ipc://%s", path);
    gs_admin_t *a = gs_admin_new(ep, &o, &rc, &err);
    assert_non_null(a);
    assert_string_equal(gs_admin_endpoint(a), ep);
    assert_int_equal(gs_admin_health(a, &h, &err), GS_CLIENT_EIO);
    assert_non_null(strstr(err.message, "no admin socket at"));

    /* a socket file nobody listens on, as a killed broker leaves it */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
    close(fd);
    assert_int_equal(gs_admin_health(a, &h, &err), GS_CLIENT_EIO);
    assert_non_null(strstr(err.message, "nothing listens on"));
    assert_non_null(strstr(err.message, "left by a stopped broker"));
    unlink(path);

    /* a file that is not a socket */
    FILE *f = fopen(path, "w");
    fclose(f);
    assert_int_equal(gs_admin_health(a, &h, &err), GS_CLIENT_EIO);
    assert_non_null(strstr(err.message, "is not a socket"));
    unlink(path);

    /* a peer that reads the request and never answers */
    void *ctx = zmq_ctx_new();
    void *mute = zmq_socket(ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(mute, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_bind(mute, ep), 0);
    assert_int_equal(gs_admin_health(a, &h, &err), GS_CLIENT_ETIMEOUT);
    assert_null(h);
    assert_non_null(strstr(err.message, "no answer on"));
    char text[300];
    assert_non_null(strstr(gs_client_errtext(GS_CLIENT_ETIMEOUT, &err, text, sizeof text),
                           "within 300 ms"));
    gs_admin_destroy(&a);

    /* the cancel flag ends the wait */
    atomic_int cancel = 1;
    o.timeout_ms = 60000;
    o.cancel = &cancel;
    a = gs_admin_new(ep, &o, &rc, &err);
    assert_non_null(a);
    assert_int_equal(gs_admin_health(a, &h, &err), GS_CLIENT_ECANCELLED);
    gs_admin_destroy(&a);
    gs_admin_destroy(&a); /* safe twice */
    zmq_close(mute);
    zmq_ctx_term(ctx);
    gs_tk_rmtree(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stats, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_get, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_get_missing_key, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_devices, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_grids, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_incident_categories, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_health, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_digest, s_setup, s_teardown),
        cmocka_unit_test(test_digest_after_upgrade),
        cmocka_unit_test_setup_teardown(test_unknown_body, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_malformed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, s_setup, s_teardown),
        cmocka_unit_test(test_client_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

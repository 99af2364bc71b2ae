/*
 * test_broker: gridsyncd end to end, as clients see it.
 *
 * Each test starts the real daemon on loopback with a fresh store and talks
 * to it over real ZeroMQ sockets, through the client library where a client
 * would, and with raw sockets where a test must send what no client would.
 * Nothing waits on time: tests wait for replies, feed events and process
 * exits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "gs_arena.h"
#include "gs_admin.h"
#include "gs_client.h"
#include "gs_testkit.h"
#include "gs_validate.h"

#define GRID_A "440305001001001"
#define GRID_B "440305001001002"
#define GRID_C "440305002001001"   /* another street */

typedef struct {
    char dir[64];               /* temp dir */
    char store[128];            /* store inside it */
    gs_tk_broker_t broker;      /* the daemon */
    gs_arena_t *arena;          /* records */
} s_env_t;

static int
s_setup_with(void **state, const char *const *extra)
{
    s_env_t *e = calloc(1, sizeof *e);
    gs_tk_tmpdir(e->dir, sizeof e->dir);
    snprintf(e->store, sizeof e->store, "%s/store", e->dir);
    if (gs_tk_broker_start(&e->broker, e->store, extra))
        return -1;
    e->arena = gs_arena_new(0);
    *state = e;
    return 0;
}

static int
s_setup(void **state)
{
    return s_setup_with(state, NULL);
}

static int
s_teardown(void **state)
{
    s_env_t *e = *state;
    gs_tk_broker_stop(&e->broker, SIGTERM);
    gs_arena_destroy(&e->arena);
    gs_tk_rmtree(e->dir);
    free(e);
    return 0;
}

/* Upload recs through the client library; returns the Ack (caller frees). */
static Gridsync__V1__Ack *
s_upload(gs_client_t *c, const char *device, const char *upload_id,
         Gridsync__V1__Record **recs, size_t n)
{
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = (char *) device;
    up.upload_id = (char *) upload_id;
    up.records = recs;
    up.n_records = n;
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t err;
    int rc = gs_client_upload(c, &up, &ack, &err);
    if (rc)
        fprintf(stderr, "upload %s: %s: %s\n", upload_id, gs_client_strerror(rc), err.message);
    assert_int_equal(rc, 0);
    assert_non_null(ack);
    assert_int_equal(ack->n_results, n);
    return ack;
}

/* Upload -> ack -> in the store -> on the live feed in seq order. */
static void
test_upload_ack_store_feed(void **state)
{
    s_env_t *e = *state;
    const char *prefixes[] = { "440305" };
    gs_sub_t *sub = gs_sub_new(e->broker.feed, e->broker.upload, prefixes, 1, NULL, 0, NULL, NULL);
    assert_non_null(sub);
    gs_client_t *c = gs_client_new(e->broker.upload, NULL);

    Gridsync__V1__Record *recs[3] = {
        gs_tk_household(e->arena, GRID_A, "H-A-1", "ADDR-A-1", 3, 1000),
        gs_tk_household(e->arena, GRID_A, "H-A-2", "ADDR-A-2", 2, 2000),
        gs_tk_household(e->arena, GRID_C, "H-C-1", NULL, 1, 3000),
    };
    Gridsync__V1__Ack *ack = s_upload(c, "dev-1", "up-1", recs, 3);
    uint64_t seqs[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ack->results[i]->status, GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
        assert_int_equal(ack->results[i]->version, 1);
        assert_true(ack->results[i]->seq > 0);
        seqs[i] = ack->results[i]->seq;
        if (i)
            assert_true(seqs[i] > seqs[i - 1]);
    }
    gridsync__v1__ack__free_unpacked(ack, NULL);

    /* the feed delivers the three events, in seq order */
    for (int i = 0; i < 3; i++) {
        Gridsync__V1__ChangeEvent *ev = NULL;
        assert_int_equal(gs_sub_next(sub, 10000, &ev), 0);
        assert_int_equal(ev->seq, seqs[i]);
        assert_int_equal(ev->op, GRIDSYNC__V1__OPERATION__OPERATION_UPSERT);
        assert_non_null(ev->record);
        assert_string_equal(ev->record_key, recs[i]->household->household_id);
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }

    /* and the store has them: a snapshot of grid A returns A's two */
    const char *pa[] = { GRID_A };
    Gridsync__V1__SnapshotResponse *snap = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_client_snapshot(c, pa, 1, NULL, 0, 0, &snap, &err), 0);
    assert_int_equal(snap->n_entries, 2);
    assert_string_equal(snap->entries[0]->record_key, "H-A-1");
    assert_int_equal(snap->entries[0]->version, 1);
    assert_true(snap->snapshot_seq >= seqs[2]);
    gridsync__v1__snapshot_response__free_unpacked(snap, NULL);
    gs_client_destroy(&c);
    gs_sub_destroy(&sub);
}

static int
s_status(const Gridsync__V1__Ack *ack, size_t i)
{
    return ack->results[i]->status;
}

/* Retransmission, unchanged, merge, conflict and rejection, from outside. */
static void
test_dedup_seen_from_client(void **state)
{
    s_env_t *e = *state;
    gs_client_t *c = gs_client_new(e->broker.upload, NULL);
    Gridsync__V1__Record *r1 = gs_tk_household(e->arena, GRID_A, "H-1", "ADDR-1", 2, 100);
    Gridsync__V1__Ack *a1 = s_upload(c, "dev-1", "u-1", &r1, 1);
    assert_int_equal(s_status(a1, 0), GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);

    /* retransmission: the identical answer, nothing new */
    Gridsync__V1__Ack *a1b = s_upload(c, "dev-1", "u-1", &r1, 1);
    assert_int_equal(s_status(a1b, 0), s_status(a1, 0));
    assert_int_equal(a1b->results[0]->seq, a1->results[0]->seq);
    assert_int_equal(a1b->results[0]->version, a1->results[0]->version);

    /* identical re-collection under a new upload: unchanged */
    Gridsync__V1__Ack *a2 = s_upload(c, "dev-2", "u-2", &r1, 1);
    assert_int_equal(s_status(a2, 0), GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_UNCHANGED);
    assert_int_equal(a2->results[0]->seq, 0);

    /* same address, new id: merged into H-1 */
    Gridsync__V1__Record *r2 = gs_tk_household(e->arena, GRID_A, "H-1-dup", "ADDR-1", 2, 100);
    Gridsync__V1__Ack *a3 = s_upload(c, "dev-3", "u-3", &r2, 1);
    assert_int_equal(s_status(a3, 0), GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_MERGED);
    assert_string_equal(a3->results[0]->record_key, "H-1");

    /* an edit based on version 1 with new content: accepted as version 2 */
    Gridsync__V1__Record *r3 = gs_tk_household(e->arena, GRID_A, "H-1", "ADDR-1", 3, 100);
    r3->household->meta->base_version = 1;
    Gridsync__V1__Ack *a4 = s_upload(c, "dev-1", "u-4", &r3, 1);
    assert_int_equal(s_status(a4, 0), GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    assert_int_equal(a4->results[0]->version, 2);

    /* another device still on version 1, different content: conflict */
    Gridsync__V1__Record *r4 = gs_tk_household(e->arena, GRID_A, "H-1", "ADDR-1", 1, 100);
    r4->household->meta->base_version = 1;
    Gridsync__V1__Ack *a5 = s_upload(c, "dev-2", "u-5", &r4, 1);
    assert_int_equal(s_status(a5, 0), GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_CONFLICT);
    assert_int_equal(a5->results[0]->version, 2);

    /* a wrong check character: rejected, with a message a person can act on */
    Gridsync__V1__Record *r5 = gs_tk_household(e->arena, GRID_B, "H-9", "ADDR-9", 2, 900);
    char *id = r5->household->members[1]->id_number;
    id[17] = id[17] == '0' ? '1' : '0';
    Gridsync__V1__Ack *a6 = s_upload(c, "dev-1", "u-6", &r5, 1);
    assert_int_equal(s_status(a6, 0), GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_REJECTED);
    assert_int_equal(a6->results[0]->reason, GRIDSYNC__V1__REASON__REASON_ID_CHECK);
    assert_non_null(strstr(a6->results[0]->message, "member 2"));

    Gridsync__V1__Ack *acks[] = { a1, a1b, a2, a3, a4, a5, a6 };
    for (size_t i = 0; i < sizeof acks / sizeof acks[0]; i++)
        gridsync__v1__ack__free_unpacked(acks[i], NULL);
    gs_client_destroy(&c);
}

#define USCC1 "91350100M000100Y43"

/* Organisations through the real daemon: uploaded with the other kinds,
 * merged by USCC and address, kept apart at another address, rejected
 * with a reason for a wrong USCC, then read back from the live feed, by
 * sync (an employee's
 * restricted data left out), snapshot, and the admin endpoint's counts
 * and record (which has it). */
/* What gs_client_sync_pages handed over, against one reply of the same
 * events. */
typedef struct s_pages {
    const Gridsync__V1__SyncResponse *want; /* the events, from gs_client_sync */
    size_t stop_after;          /* stop (return 7) at this many events; 0 = never */
    size_t seen;                /* events handed over */
    size_t pages;               /* pages handed over */
} s_pages_t;

static int
s_page_check(void *arg, const Gridsync__V1__SyncResponse *page)
{
    s_pages_t *p = arg;
    p->pages++;
    assert_true(page->n_events <= 1);
    for (size_t i = 0; i < page->n_events; i++) {
        assert_true(p->seen < p->want->n_events);
        const Gridsync__V1__ChangeEvent *w = p->want->events[p->seen];
        assert_int_equal(page->events[i]->seq, w->seq);
        assert_string_equal(page->events[i]->record_key, w->record_key);
        size_t n = gridsync__v1__change_event__get_packed_size(w);
        assert_int_equal(gridsync__v1__change_event__get_packed_size(page->events[i]), n);
        p->seen++;
    }
    return p->stop_after && p->seen >= p->stop_after ? 7 : 0;
}

/* Events gs_client_sync_pages handed over without an arena, kept. */
typedef struct s_kept {
    const Gridsync__V1__SyncResponse *want; /* the events, from gs_client_sync */
    Gridsync__V1__ChangeEvent **events; /* taken out of the pages */
    size_t n;
} s_kept_t;

static int
s_page_keep(void *arg, const Gridsync__V1__SyncResponse *page)
{
    s_kept_t *k = arg;
    for (size_t i = 0; i < page->n_events; i++) {
        assert_true(k->n < k->want->n_events);
        k->events = realloc(k->events, (k->n + 1) * sizeof *k->events);
        assert_non_null(k->events);
        k->events[k->n++] = page->events[i];
        page->events[i] = NULL;     /* ours now: the page's free skips it */
    }
    return 0;
}

static void
test_organisations_end_to_end(void **state)
{
    s_env_t *e = *state;
    const char *district[] = { "440305" };
    gs_sub_t *sub = gs_sub_new(e->broker.feed, e->broker.upload, district, 1, NULL, 0, NULL,
                               NULL);
    assert_non_null(sub);
    gs_client_t *c = gs_client_new(e->broker.upload, NULL);
    /* person 7000 lives in grid A and works in grid C */
    Gridsync__V1__Record *hh = gs_tk_household(e->arena, GRID_A, "H-7", "ADDR-7", 2, 7000);
    Gridsync__V1__Record *o1 = gs_tk_org(e->arena, GRID_C, "O-1", USCC1, "SHOP-1", 3, 6999);
    Gridsync__V1__Restricted *rs = gs_arena_alloc(e->arena, sizeof *rs);
    gridsync__v1__restricted__init(rs);
    rs->health = gs_arena_strdup(e->arena, "糖尿病");
    o1->organisation->employees[2]->restricted = rs;
    Gridsync__V1__Record *stall = gs_tk_org(e->arena, GRID_C, "S-1", NULL, NULL, 1, 7100);
    Gridsync__V1__Record *recs[] = { hh, o1, stall };
    Gridsync__V1__Ack *a1 = s_upload(c, "dev-1", "org-1", recs, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(s_status(a1, i), GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);

    /* recollected under another id at the same address: merged */
    Gridsync__V1__Record *o2 = gs_tk_org(e->arena, GRID_C, "O-2", USCC1, "SHOP-1", 3, 6999);
    o2->organisation->employees[2]->restricted = rs;
    /* the same USCC at a second address: a record of its own */
    Gridsync__V1__Record *o3 = gs_tk_org(e->arena, GRID_B, "O-3", USCC1, "SHOP-2", 1, 7200);
    /* a wrong check character */
    Gridsync__V1__Record *o4 = gs_tk_org(e->arena, GRID_B, "O-4", "91350100M000100Y44",
                                         "SHOP-4", 1, 7300);
    Gridsync__V1__Record *recs2[] = { o2, o3, o4 };
    Gridsync__V1__Ack *a2 = s_upload(c, "dev-1", "org-2", recs2, 3);
    assert_int_equal(s_status(a2, 0), GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_MERGED);
    assert_string_equal(a2->results[0]->record_key, "O-1");
    assert_int_equal(s_status(a2, 1), GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    assert_int_equal(s_status(a2, 2), GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_REJECTED);
    assert_int_equal(a2->results[2]->reason, GRIDSYNC__V1__REASON__REASON_USCC_CHECK);
    assert_string_equal(a2->results[2]->message, "USCC check character should be 3, not 4");

    /* the live feed: the four events in seq order, each with its kind */
    static const char *const keys[] = { "H-7", "O-1", "S-1", "O-3" };
    for (int i = 0; i < 4; i++) {
        Gridsync__V1__ChangeEvent *ev = NULL;
        assert_int_equal(gs_sub_next(sub, 10000, &ev), 0);
        assert_string_equal(ev->record_key, keys[i]);
        assert_int_equal(ev->kind, i ? GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_ORGANISATION
                                     : GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD);
        assert_int_equal(ev->record->body_case, i ? GRIDSYNC__V1__RECORD__BODY_ORGANISATION
                                                  : GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD);
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }
    gs_sub_destroy(&sub);

    /* sync: four events, the organisations with their kind and people */
    const char *all[] = { "440305" };
    for (int omit = 0; omit < 2; omit++) {
        Gridsync__V1__SyncResponse *sr = NULL;
        gs_client_error_t err;
        assert_int_equal(gs_client_sync(c, all, 1, 0, 0, omit, &sr, &err), 0);
        assert_int_equal(sr->n_events, 4);
        int orgs = 0;
        for (size_t i = 0; i < sr->n_events; i++) {
            const Gridsync__V1__ChangeEvent *ev = sr->events[i];
            if (ev->kind != GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_ORGANISATION)
                continue;
            orgs++;
            assert_non_null(ev->record);
            assert_int_equal(ev->record->body_case, GRIDSYNC__V1__RECORD__BODY_ORGANISATION);
            const Gridsync__V1__OrganisationUnit *o = ev->record->organisation;
            assert_string_equal(o->org_id, ev->record_key);
            if (strcmp(ev->record_key, "O-1") == 0) {
                assert_string_equal(ev->grid_code, GRID_C);
                assert_string_equal(o->uscc, USCC1);
                assert_int_equal(o->n_employees, 3);
                assert_non_null(o->legal_representative);
                /* kept in the store (below), never in sync replies of a
                 * broker without feed-restricted, asked or not */
                assert_null(o->employees[2]->restricted);
            }
        }
        assert_int_equal(orgs, 3);
        /* the same page decoded into an arena (gs_client_sync_in) holds the
         * same events, byte for byte once packed again */
        gs_arena_t *pa = gs_arena_new(0);
        assert_non_null(pa);
        Gridsync__V1__SyncResponse *sa = NULL;
        assert_int_equal(gs_client_sync_in(c, all, 1, 0, 0, omit, pa, &sa, &err), 0);
        assert_int_equal(sa->n_events, sr->n_events);
        assert_int_equal(sa->next_seq, sr->next_seq);
        assert_int_equal(sa->head_seq, sr->head_seq);
        for (size_t i = 0; i < sr->n_events; i++) {
            size_t n = gridsync__v1__change_event__get_packed_size(sr->events[i]);
            assert_int_equal(gridsync__v1__change_event__get_packed_size(sa->events[i]), n);
            uint8_t *x = malloc(n), *y = malloc(n);
            assert_true(x && y);
            gridsync__v1__change_event__pack(sr->events[i], x);
            gridsync__v1__change_event__pack(sa->events[i], y);
            assert_memory_equal(x, y, n);
            free(x);
            free(y);
        }
        /* and page by page, one event each, the next page asked for before
         * this one is handed over (gs_client_sync_pages): the same events */
        s_pages_t pg = { .want = sr, .stop_after = 0 };
        uint64_t reached = 0;
        assert_int_equal(gs_client_sync_pages(c, all, 1, 0, 1, omit, pa, s_page_check, &pg,
                                              &reached, &err), 0);
        assert_int_equal(pg.seen, sr->n_events);
        assert_true(pg.pages >= sr->n_events && pg.pages <= sr->n_events + 1);
        assert_int_equal(reached, sr->next_seq);
        /* without an arena the pages are malloc'd, and fn may keep the
         * events it takes out of them (gs_sub's catch-up) */
        s_kept_t kept = { .want = sr };
        assert_int_equal(gs_client_sync_pages(c, all, 1, 0, 1, omit, NULL, s_page_keep, &kept,
                                              &reached, &err), 0);
        assert_int_equal(kept.n, sr->n_events);
        for (size_t i = 0; i < kept.n; i++) {
            assert_int_equal(kept.events[i]->seq, sr->events[i]->seq);
            assert_string_equal(kept.events[i]->record_key, sr->events[i]->record_key);
            gridsync__v1__change_event__free_unpacked(kept.events[i], NULL);
        }
        free(kept.events);
        /* stopped after two pages: the request for the third is answered
         * into the void, and the next call takes its own reply */
        pg = (s_pages_t) { .want = sr, .stop_after = 2 };
        assert_int_equal(gs_client_sync_pages(c, all, 1, 0, 1, omit, pa, s_page_check, &pg,
                                              &reached, &err), 7);
        assert_int_equal(pg.seen, 2);
        assert_int_equal(reached, sr->events[0]->seq);  /* the last page fn accepted */
        Gridsync__V1__SyncResponse *again = NULL;
        assert_int_equal(gs_client_sync(c, all, 1, 0, 0, omit, &again, &err), 0);
        assert_int_equal(again->n_events, sr->n_events);
        gridsync__v1__sync_response__free_unpacked(again, NULL);
        gs_arena_destroy(&pa);
        gridsync__v1__sync_response__free_unpacked(sr, NULL);
    }

    /* a snapshot of grid C: the household is elsewhere, the two
     * organisations are there */
    const char *pc[] = { GRID_C };
    Gridsync__V1__SnapshotResponse *snap = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_client_snapshot(c, pc, 1, NULL, 0, 0, &snap, &err), 0);
    assert_int_equal(snap->n_entries, 2);
    for (size_t i = 0; i < snap->n_entries; i++)
        assert_int_equal(snap->entries[i]->kind,
                         GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_ORGANISATION);
    /* the same page decoded into an arena (gs_client_snapshot_in): the
     * same entries, byte for byte once packed again */
    gs_arena_t *sa = gs_arena_new(0);
    assert_non_null(sa);
    Gridsync__V1__SnapshotResponse *snap_a = NULL;
    assert_int_equal(gs_client_snapshot_in(c, pc, 1, NULL, 0, 0, sa, &snap_a, &err), 0);
    assert_int_equal(snap_a->snapshot_seq, snap->snapshot_seq);
    assert_int_equal(snap_a->next_cursor.len, 0);
    assert_int_equal(snap_a->n_entries, snap->n_entries);
    for (size_t i = 0; i < snap->n_entries; i++) {
        size_t n = gridsync__v1__snapshot_entry__get_packed_size(snap->entries[i]);
        assert_int_equal(gridsync__v1__snapshot_entry__get_packed_size(snap_a->entries[i]), n);
        uint8_t *x = malloc(n), *y = malloc(n);
        assert_true(x && y);
        gridsync__v1__snapshot_entry__pack(snap->entries[i], x);
        gridsync__v1__snapshot_entry__pack(snap_a->entries[i], y);
        assert_memory_equal(x, y, n);
        free(x);
        free(y);
    }
    gs_arena_destroy(&sa);
    gridsync__v1__snapshot_response__free_unpacked(snap, NULL);

    /* the admin endpoint counts organisations and employees per cell */
    int rc;
    gs_admin_t *adm = gs_admin_new(e->broker.admin, NULL, &rc, NULL);
    assert_non_null(adm);
    Gridsync__V1__StatsReply *st = NULL;
    assert_int_equal(gs_admin_stats(adm, GRID_C, &st, &err), 0);
    assert_int_equal(st->n_cells, 1);
    assert_int_equal(st->cells[0]->organisations, 2);
    assert_int_equal(st->cells[0]->employees, 4);
    assert_int_equal(st->cells[0]->households, 0);
    gridsync__v1__stats_reply__free_unpacked(st, NULL);
    Gridsync__V1__SnapshotEntry *got = NULL;
    assert_int_equal(gs_admin_get(adm, 0, "O-2", &got, &err), 0);
    assert_string_equal(got->record_key, "O-1");
    assert_int_equal(got->kind, GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_ORGANISATION);
    assert_string_equal(got->record->organisation->employees[2]->restricted->health, "糖尿病");
    gridsync__v1__snapshot_entry__free_unpacked(got, NULL);
    /* asked by kind: an organisation is found as one, not as a household */
    assert_int_equal(gs_admin_get(adm, GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_ORGANISATION,
                                  "O-3", &got, &err), 0);
    assert_string_equal(got->grid_code, GRID_B);
    gridsync__v1__snapshot_entry__free_unpacked(got, NULL);
    assert_int_equal(gs_admin_get(adm, GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD,
                                  "O-3", &got, &err), GS_CLIENT_ESERVER);
    assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_NOT_FOUND);
    gs_admin_destroy(&adm);

    gridsync__v1__ack__free_unpacked(a1, NULL);
    gridsync__v1__ack__free_unpacked(a2, NULL);
    gs_client_destroy(&c);
}

/* Upload n households to grid in batches of batch; returns the last seq. */
static uint64_t
s_load(s_env_t *e, gs_client_t *c, const char *grid, int from, int n, int batch)
{
    uint64_t last = 0;
    Gridsync__V1__Record **recs = calloc((size_t) batch, sizeof *recs);
    for (int i = from; i < from + n; i += batch) {
        int k = (from + n - i) < batch ? (from + n - i) : batch;
        gs_arena_reset(e->arena);
        for (int j = 0; j < k; j++) {
            char hid[64], addr[64];
            snprintf(hid, sizeof hid, "H-%s-%d", grid, i + j);
            snprintf(addr, sizeof addr, "A-%s-%d", grid, i + j);
            recs[j] = gs_tk_household(e->arena, grid, hid, addr, 1 + (i + j) % 3,
                                      (uint32_t) (i + j) * 7);
        }
        char uid[64];
        snprintf(uid, sizeof uid, "load-%s-%d", grid, i);
        Gridsync__V1__Ack *ack = s_upload(c, "dev-load", uid, recs, (size_t) k);
        for (int j = 0; j < k; j++) {
            assert_int_equal(s_status(ack, (size_t) j),
                             GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
            last = ack->results[j]->seq;
        }
        gridsync__v1__ack__free_unpacked(ack, NULL);
    }
    free(recs);
    return last;
}

/* A subscriber away while thousands of events pass resumes from its
 * checkpoint with nothing lost and nothing twice. */
static void
test_subscriber_resumes(void **state)
{
    s_env_t *e = *state;
    char ckpt[160];
    snprintf(ckpt, sizeof ckpt, "%s/feed.ckpt", e->dir);
    const char *prefixes[] = { "440305001" };
    gs_client_t *c = gs_client_new(e->broker.upload, NULL);
    s_load(e, c, GRID_A, 0, 50, 25);

    gs_sub_t *sub = gs_sub_new(e->broker.feed, e->broker.upload, prefixes, 1, ckpt, 0, NULL, NULL);
    assert_non_null(sub);
    uint64_t prev = 0;
    for (int i = 0; i < 50; i++) {
        Gridsync__V1__ChangeEvent *ev;
        assert_int_equal(gs_sub_next(sub, 10000, &ev), 0);
        assert_true(ev->seq > prev);
        prev = ev->seq;
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }
    assert_int_equal(gs_sub_checkpoint(sub, NULL), 0);
    gs_sub_destroy(&sub);

    /* away: 3,000 events pass, in and out of the prefix */
    uint64_t last_in = s_load(e, c, GRID_B, 0, 2000, 200);
    s_load(e, c, GRID_C, 0, 1000, 200);

    sub = gs_sub_new(e->broker.feed, e->broker.upload, prefixes, 1, ckpt, 0, NULL, NULL);
    assert_non_null(sub);
    int got = 0;
    for (;;) {
        Gridsync__V1__ChangeEvent *ev;
        int rc = gs_sub_next(sub, got < 2000 ? 10000 : 0, &ev);
        if (rc == 1)
            break;
        assert_int_equal(rc, 0);
        assert_true(ev->seq > prev); /* strictly increasing: no duplicates */
        assert_string_equal(ev->grid_code, GRID_B);
        prev = ev->seq;
        got++;
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }
    assert_int_equal(got, 2000);
    assert_int_equal(prev, last_in);
    gs_sub_destroy(&sub);
    gs_client_destroy(&c);
}

/* A subscriber far behind catches up across many sync pages (each next
 * page asked for before this one is taken), gs_sub_new holding only the
 * first thousand events and gs_sub_next pulling the rest as they are
 * taken, is stopped halfway with events delivered past its checkpoint,
 * and resumes from the checkpoint:
 * every event of its prefix after the checkpoint comes exactly once, in
 * order, up to the last one, and nothing of the other street. */
static void
test_subscriber_catches_up_in_pages(void **state)
{
    s_env_t *e = *state;
    char ckpt[160];
    snprintf(ckpt, sizeof ckpt, "%s/feed.ckpt", e->dir);
    const char *prefixes[] = { "440305001" };
    gs_client_t *c = gs_client_new(e->broker.upload, NULL);
    /* grid A's 1,500 events with grid C's between them */
    uint64_t seq_a[1500];
    size_t n_a = 0;
    for (int round = 0; round < 5; round++) {
        s_load(e, c, GRID_C, round * 100, 100, 50);
        uint64_t last = s_load(e, c, GRID_A, round * 300, 300, 100);
        for (uint64_t s = last - 299; s <= last; s++)
            seq_a[n_a++] = s;  /* one upload's events have consecutive seqs */
    }
    gs_sub_opts_t so;
    gs_sub_opts_init(&so);
    so.sync_limit = 7;              /* a page holds 7 events of the prefix at most */
    gs_sub_t *sub = gs_sub_new(e->broker.feed, e->broker.upload, prefixes, 1, ckpt, 0, &so,
                               NULL);
    assert_non_null(sub);
    /* gs_sub_new queued about a thousand; the rest comes a page at a time */
    gs_sub_stats_t st;
    gs_sub_stats(sub, &st);
    assert_true(st.pulled >= 1000 && st.pulled < n_a);
    size_t at = 0;
    for (; at < 700; at++) {
        Gridsync__V1__ChangeEvent *ev;
        assert_int_equal(gs_sub_next(sub, 10000, &ev), 0);
        assert_int_equal(ev->seq, seq_a[at]);
        gridsync__v1__change_event__free_unpacked(ev, NULL);
        if (at == 599)
            assert_int_equal(gs_sub_checkpoint(sub, NULL), 0);
    }
    /* stopped without a checkpoint after 700: the last 100 come again */
    gs_sub_destroy(&sub);
    sub = gs_sub_new(e->broker.feed, e->broker.upload, prefixes, 1, ckpt, 0, &so, NULL);
    assert_non_null(sub);
    for (at = 600; at < n_a; at++) {
        Gridsync__V1__ChangeEvent *ev;
        assert_int_equal(gs_sub_next(sub, 10000, &ev), 0);
        assert_int_equal(ev->seq, seq_a[at]);
        assert_string_equal(ev->grid_code, GRID_A);
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }
    Gridsync__V1__ChangeEvent *ev = NULL;
    assert_int_equal(gs_sub_next(sub, 0, &ev), 1);  /* nothing more */
    assert_int_equal(gs_sub_position(sub, 0), seq_a[n_a - 1]);
    gs_sub_stats(sub, &st);
    assert_int_equal(st.pulled, n_a - 600);
    assert_int_equal(st.live, 0);
    gs_sub_destroy(&sub);
    gs_client_destroy(&c);
}

/* A subscriber that starts at the head while its prefix is quiet (the
 * head is another street's event) follows the prefix's next events live:
 * an event whose prev_seq lies at or before the start position is the
 * next one, not a gap. (It used to count a gap and pull the first events
 * again from the sync service.) */
static void
test_subscriber_starts_at_head(void **state)
{
    s_env_t *e = *state;
    gs_client_t *c = gs_client_new(e->broker.upload, NULL);
    uint64_t head = s_load(e, c, GRID_C, 0, 30, 30);
    assert_true(head > 0);
    const char *prefixes[] = { "440305001" };
    gs_sub_t *sub = gs_sub_new(e->broker.feed, e->broker.upload, prefixes, 1, NULL, head, NULL,
                               NULL);
    assert_non_null(sub);
    /* a heartbeat for the prefix proves the subscription is in place */
    gs_sub_stats_t st;
    do {
        Gridsync__V1__ChangeEvent *ev = NULL;
        assert_true(gs_sub_next(sub, 10000, &ev) >= 0);
        assert_null(ev);
        gs_sub_stats(sub, &st);
    } while (st.heartbeats == 0);
    uint64_t last = s_load(e, c, GRID_A, 0, 40, 20);
    uint64_t prev = head;
    for (int i = 0; i < 40; i++) {
        Gridsync__V1__ChangeEvent *ev;
        assert_int_equal(gs_sub_next(sub, 10000, &ev), 0);
        assert_true(ev->seq > prev);
        assert_string_equal(ev->grid_code, GRID_A);
        prev = ev->seq;
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }
    assert_int_equal(prev, last);
    gs_sub_stats(sub, &st);
    assert_int_equal(st.gaps, 0);
    assert_int_equal(st.pulled, 0);
    assert_int_equal(st.live, 40);
    gs_sub_destroy(&sub);
    gs_client_destroy(&c);
}

/* A subscriber with a tiny RCVHWM that reads nothing while 5,000 events
 * pass loses live messages, detects it, repairs it, and ends with exactly
 * the full set. */
static void
test_slow_subscriber_repairs(void **state)
{
    s_env_t *e = *state;
    const char *prefixes[] = { "" };
    gs_sub_opts_t so;
    gs_sub_opts_init(&so);
    so.rcvhwm = 4;
    gs_sub_t *sub = gs_sub_new(e->broker.feed, e->broker.upload, prefixes, 1, NULL, 0, &so, NULL);
    assert_non_null(sub);
    gs_client_t *c = gs_client_new(e->broker.upload, NULL);
    uint64_t last = s_load(e, c, GRID_A, 0, 5000, 250);

    uint64_t expect = 1;
    while (expect <= last) {
        Gridsync__V1__ChangeEvent *ev;
        assert_int_equal(gs_sub_next(sub, 10000, &ev), 0);
        assert_int_equal(ev->seq, expect); /* every seq, once, in order */
        expect++;
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }
    gs_sub_stats_t st;
    gs_sub_stats(sub, &st);
    assert_true(st.gaps > 0);      /* the HWM did drop messages */
    assert_true(st.pulled > 0);    /* and they came from the sync service */
    gs_sub_destroy(&sub);
    gs_client_destroy(&c);
}

/* Page through the snapshot of one prefix, calling fn for every entry.
 * Returns the number of pages; s_last_snapshot_seq gets the first page's
 * snapshot_seq. */
static uint64_t s_last_snapshot_seq;

static int
s_snapshot_all(gs_client_t *c, const char *prefix, uint32_t limit,
               void (*fn)(void *arg, const Gridsync__V1__SnapshotEntry *e), void *arg)
{
    const char *pa[] = { prefix };
    uint8_t *cursor = NULL;
    size_t cursor_len = 0;
    int pages = 0;
    do {
        Gridsync__V1__SnapshotResponse *r;
        gs_client_error_t err;
        assert_int_equal(gs_client_snapshot(c, pa, 1, cursor, cursor_len, limit, &r, &err), 0);
        if (pages == 0)
            s_last_snapshot_seq = r->snapshot_seq;
        for (size_t i = 0; i < r->n_entries; i++)
            fn(arg, r->entries[i]);
        pages++;
        free(cursor);
        cursor = NULL;
        cursor_len = r->next_cursor.len;
        if (cursor_len) {
            cursor = malloc(cursor_len);
            memcpy(cursor, r->next_cursor.data, cursor_len);
        }
        gridsync__v1__snapshot_response__free_unpacked(r, NULL);
    } while (cursor_len);
    return pages;
}

static void
s_entry_in_grid_a(void *arg, const Gridsync__V1__SnapshotEntry *e)
{
    assert_string_equal(e->grid_code, GRID_A);
    (*(int *) arg)++;
}

typedef struct {
    char *seen;                 /* [upload * 5 + record] seen once */
    int found;                  /* entries seen */
} s_seen_t;

static void
s_entry_mark_seen(void *arg, const Gridsync__V1__SnapshotEntry *e)
{
    s_seen_t *sn = arg;
    int ui, rj;
    assert_int_equal(sscanf(e->record_key, "S-%d-%d", &ui, &rj), 2);
    assert_int_equal(e->version, 1);
    assert_int_equal(sn->seen[ui * 5 + rj], 0); /* never twice */
    sn->seen[ui * 5 + rj] = 1;
    sn->found++;
}

/* A device pulls its grid, and only its grid: snapshot, then deltas. */
static void
test_device_pulls_own_grid(void **state)
{
    s_env_t *e = *state;
    gs_client_t *c = gs_client_new(e->broker.upload, NULL);
    s_load(e, c, GRID_A, 0, 30, 30);
    s_load(e, c, GRID_B, 0, 40, 40);
    const char *pa[] = { GRID_A };
    int total = 0;
    int pages = s_snapshot_all(c, GRID_A, 7, s_entry_in_grid_a, &total);
    uint64_t snap_seq = s_last_snapshot_seq;
    assert_int_equal(total, 30);
    assert_true(pages >= 5);

    /* later changes: deltas of grid A only */
    s_load(e, c, GRID_A, 30, 5, 5);
    s_load(e, c, GRID_B, 40, 5, 5);
    Gridsync__V1__SyncResponse *d;
    gs_client_error_t err;
    assert_int_equal(gs_client_sync(c, pa, 1, snap_seq, 0, 0, &d, &err), 0);
    assert_int_equal(d->n_events, 5);
    for (size_t i = 0; i < d->n_events; i++)
        assert_string_equal(d->events[i]->grid_code, GRID_A);
    gridsync__v1__sync_response__free_unpacked(d, NULL);
    gs_client_destroy(&c);
}

/* In --insecure-dev mode a ping from an unregistered sender is answered:
 * not registered, not secure, and unrestricted (scope_all, never an empty
 * list), with the store's head, epoch and the broker's version. */
static void
test_ping_development_mode(void **state)
{
    s_env_t *e = *state;
    gs_client_t *c = gs_client_new(e->broker.upload, NULL);
    assert_non_null(c);
    s_load(e, c, GRID_A, 0, 3, 3);
    Gridsync__V1__PingReply *p = NULL;
    int64_t rtt = -1;
    gs_client_error_t err;
    assert_int_equal(gs_client_ping(c, &p, &rtt, &err), 0);
    assert_false(p->registered);
    assert_false(p->secure);
    assert_true(p->scope_all);
    assert_int_equal(p->n_prefixes, 0);
    assert_string_equal(p->device_id, "");
    assert_int_equal(p->head_seq, 3);
    assert_true(p->store_epoch != 0);
    assert_true(p->broker_time > 0);
    assert_true(strlen(p->version) > 0);
    assert_true(rtt >= 0);
    gridsync__v1__ping_reply__free_unpacked(p, NULL);
    gs_client_destroy(&c);
}

/* A ping on its own thread. */
typedef struct {
    gs_client_t *c;
    int rc;
    gs_client_error_t err;
} s_call_t;

static void *
s_ping_main(void *arg)
{
    s_call_t *call = arg;
    Gridsync__V1__PingReply *p = NULL;
    int64_t rtt = 0;
    call->rc = gs_client_ping(call->c, &p, &rtt, &call->err);
    if (p)
        gridsync__v1__ping_reply__free_unpacked(p, NULL);
    return NULL;
}

/* A reply with request_id 0 is the broker saying it could not read the
 * request at all (protocol.md): the client takes it as the answer to its
 * outstanding request, at once, instead of waiting out its timeout and
 * resending bytes that would get the same answer. The real broker sends it
 * only for bytes a client cannot produce, so a ROUTER here answers the
 * client's first request that way. */
static void
test_client_takes_unreadable_reply(void **state)
{
    (void) state;
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(router, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_bind(router, "tcp://127.0.0.1:*"), 0);
    char ep[64];
    size_t epl = sizeof ep;
    zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &epl);
    gs_client_opts_t o;
    gs_client_opts_init(&o);
    o.timeout_ms = 10000;   /* ignored, the reply would end in a timeout */
    o.retries = 1;
    gs_client_t *c = gs_client_new(ep, &o);
    assert_non_null(c);
    /* the call blocks until its answer: it runs on its own thread while
     * this one plays the broker */
    s_call_t call;
    memset(&call, 0, sizeof call);
    call.c = c;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_ping_main, &call), 0);
    zmq_msg_t id, req;
    zmq_msg_init(&id);
    zmq_msg_init(&req);
    assert_true(zmq_msg_recv(&id, router, 0) >= 0);
    assert_true(zmq_msg_recv(&req, router, 0) >= 0);
    Gridsync__V1__Error er = GRIDSYNC__V1__ERROR__INIT;
    er.reason = GRIDSYNC__V1__REASON__REASON_MALFORMED;
    er.message = "request does not decode";
    Gridsync__V1__Reply rep = GRIDSYNC__V1__REPLY__INIT;
    rep.request_id = 0;
    rep.body_case = GRIDSYNC__V1__REPLY__BODY_ERROR;
    rep.error = &er;
    uint8_t buf[128];
    size_t n = gridsync__v1__reply__pack(&rep, buf);
    assert_true(zmq_msg_send(&id, router, ZMQ_SNDMORE) >= 0);
    assert_int_equal(zmq_send(router, buf, n, 0), (int) n);
    zmq_msg_close(&req);
    pthread_join(t, NULL);
    assert_int_equal(call.rc, GS_CLIENT_ESERVER);
    assert_int_equal(call.err.reason, GRIDSYNC__V1__REASON__REASON_MALFORMED);
    assert_string_equal(call.err.message, "request does not decode");
    gs_client_destroy(&c);
    zmq_close(router);
    zmq_ctx_term(ctx);
}

/* Send raw frames on a fresh DEALER; return the Reply (or NULL if none
 * within the wait, which is how a dropped connection shows). */
static Gridsync__V1__Reply *
s_raw(void *ctx, const char *ep, const void *const *frames, const size_t *lens, int n,
      int wait_ms)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_connect(s, ep), 0);
    for (int i = 0; i < n; i++)
        zmq_send(s, frames[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0);
    Gridsync__V1__Reply *rep = NULL;
    zmq_pollitem_t it = { s, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll(&it, 1, wait_ms) == 1) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, s, 0);
        rep = gridsync__v1__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        zmq_msg_close(&m);
    }
    zmq_close(s);
    return rep;
}

static void
s_expect_error(Gridsync__V1__Reply *rep, int reason)
{
    assert_non_null(rep);
    assert_int_equal(rep->body_case, GRIDSYNC__V1__REPLY__BODY_ERROR);
    assert_int_equal(rep->error->reason, reason);
    assert_true(strlen(rep->error->message) > 10);
    gridsync__v1__reply__free_unpacked(rep, NULL);
}

/* Garbage, truncation, unknown types, extra frames, oversize: each gets a
 * reason (or, for oversize, a dropped connection), and the broker goes on
 * serving everyone else. */
static void
test_bad_input(void **state)
{
    s_env_t *e = *state;
    void *ctx = zmq_ctx_new();
    const char *ep = e->broker.upload;

    const char garbage[] = "\xff\xff\xff\xff this is not protobuf";
    const void *f1[] = { garbage };
    size_t l1[] = { sizeof garbage - 1 };
    s_expect_error(s_raw(ctx, ep, f1, l1, 1, 5000), GRIDSYNC__V1__REASON__REASON_MALFORMED);

    /* a real upload, cut short */
    Gridsync__V1__Record *r = gs_tk_household(e->arena, GRID_A, "H-T", "ADDR-T", 3, 50);
    size_t len;
    uint8_t *buf = gs_tk_upload_request("dev-x", "u-t", &r, 1, 7, &len);
    const void *f2[] = { buf };
    size_t l2[] = { len / 2 };
    s_expect_error(s_raw(ctx, ep, f2, l2, 1, 5000), GRIDSYNC__V1__REASON__REASON_MALFORMED);

    /* a Request with no body */
    const uint8_t empty_req[] = { 0x08, 0x05 }; /* request_id = 5 */
    const void *f3[] = { empty_req };
    size_t l3[] = { sizeof empty_req };
    Gridsync__V1__Reply *rep = s_raw(ctx, ep, f3, l3, 1, 5000);
    assert_non_null(rep);
    assert_int_equal(rep->request_id, 5);
    s_expect_error(rep, GRIDSYNC__V1__REASON__REASON_UNKNOWN_TYPE);

    /* two frames where one is expected */
    const void *f4[] = { buf, buf };
    size_t l4[] = { len, len };
    s_expect_error(s_raw(ctx, ep, f4, l4, 2, 5000), GRIDSYNC__V1__REASON__REASON_MALFORMED);

    /* an upload with no device id */
    uint8_t *nodev = gs_tk_upload_request("", "u-nd", &r, 1, 8, &len);
    const void *f5[] = { nodev };
    size_t l5[] = { len };
    s_expect_error(s_raw(ctx, ep, f5, l5, 1, 5000), GRIDSYNC__V1__REASON__REASON_BAD_REQUEST);
    free(nodev);

    /* over max-message-bytes (64 KiB in this test): libzmq drops the
     * connection before the broker sees a byte; no reply can be addressed */
    size_t big = 200 * 1024;
    uint8_t *huge = calloc(1, big);
    const void *f6[] = { huge };
    size_t l6[] = { big };
    rep = s_raw(ctx, ep, f6, l6, 1, 500);
    assert_null(rep);
    free(huge);

    /* and everyone else is still served */
    gs_client_t *c = gs_client_new(ep, NULL);
    Gridsync__V1__Ack *ack = s_upload(c, "dev-ok", "u-ok", &r, 1);
    assert_int_equal(s_status(ack, 0), GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_client_destroy(&c);
    free(buf);
    zmq_ctx_term(ctx);
}

static int
s_setup_small_hwm(void **state)
{
    static const char *const extra[] = { "--feed-sndhwm=8", NULL };
    return s_setup_with(state, extra);
}

static int
s_setup_small_msgs(void **state)
{
    static const char *const extra[] = { "--max-message-bytes=65536", NULL };
    return s_setup_with(state, extra);
}

/* SIGTERM during load: the broker drains; every acked record is there
 * after a restart, with its acked version. */
static void
test_sigterm_keeps_acked(void **state)
{
    s_env_t *e = *state;
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_connect(s, e->broker.upload), 0);
    enum { N = 400 };
    /* pipeline N uploads of 5 records without waiting */
    for (int i = 0; i < N; i++) {
        gs_arena_reset(e->arena);
        Gridsync__V1__Record *recs[5];
        for (int j = 0; j < 5; j++) {
            char hid[32], addr[32];
            snprintf(hid, sizeof hid, "S-%d-%d", i, j);
            snprintf(addr, sizeof addr, "SA-%d-%d", i, j);
            recs[j] = gs_tk_household(e->arena, GRID_A, hid, addr, 2, (uint32_t) (i * 5 + j));
        }
        char uid[32];
        snprintf(uid, sizeof uid, "st-%d", i);
        size_t len;
        uint8_t *buf = gs_tk_upload_request("dev-s", uid, recs, 5, (uint64_t) i + 1, &len);
        zmq_send(s, buf, len, 0);
        free(buf);
    }
    /* collect acks; stop the broker after the first 50 */
    int acked[N] = { 0 };
    int n_acked = 0, stopped = 0;
    for (;;) {
        zmq_pollitem_t it = { s, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&it, 1, stopped ? 2000 : 20000) <= 0)
            break; /* after the stop: the broker is gone and has said all */
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, s, 0);
        Gridsync__V1__Reply *rep =
            gridsync__v1__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        zmq_msg_close(&m);
        assert_non_null(rep);
        if (rep->body_case == GRIDSYNC__V1__REPLY__BODY_ACK) {
            acked[rep->request_id - 1] = 1;
            n_acked++;
        } else {
            assert_int_equal(rep->error->reason, GRIDSYNC__V1__REASON__REASON_SHUTTING_DOWN);
        }
        gridsync__v1__reply__free_unpacked(rep, NULL);
        if (n_acked == 50 && !stopped) {
            kill(e->broker.pid, SIGTERM);
            stopped = 1;
        }
    }
    int st = gs_tk_broker_stop(&e->broker, SIGTERM);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    zmq_close(s);
    zmq_ctx_term(ctx);
    assert_true(n_acked >= 50);
    /* a clean exit leaves no admin socket file behind */
    assert_true(strncmp(e->broker.admin, "ipc://", 6) == 0);
    assert_int_equal(access(e->broker.admin + 6, F_OK), -1);

    /* restart on the same store: every acked record is there */
    assert_int_equal(gs_tk_broker_start(&e->broker, e->store, NULL), 0);
    gs_client_t *c = gs_client_new(e->broker.upload, NULL);
    s_seen_t sn = { calloc(N * 5, 1), 0 };
    s_snapshot_all(c, GRID_A, 0, s_entry_mark_seen, &sn);
    char *seen = sn.seen;
    for (int i = 0; i < N; i++)
        if (acked[i])
            for (int j = 0; j < 5; j++)
                assert_int_equal(seen[i * 5 + j], 1);
    free(seen);
    gs_client_destroy(&c);
}

/* Count snapshot entries. */
static void
s_entry_count(void *arg, const Gridsync__V1__SnapshotEntry *e)
{
    (void) e;
    (*(int *) arg)++;
}

/* The broker thread named name (gs_thread_start), or 0. */
static pid_t
s_thread_named(pid_t pid, const char *name)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task", (int) pid);
    DIR *d = opendir(path);
    assert_non_null(d);
    pid_t found = 0;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        pid_t tid = (pid_t) atoi(de->d_name);
        if (tid <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%d/comm", (int) pid, (int) tid);
        char comm[32] = "";
        FILE *f = fopen(path, "r");
        if (f && fgets(comm, sizeof comm, f) && !strncmp(comm, name, strlen(name)) &&
            (comm[strlen(name)] == '\n' || comm[strlen(name)] == 0))
            found = tid;
        if (f)
            fclose(f);
    }
    closedir(d);
    return found;
}

/* SIGTERM may land on any thread that does not block it. Only the
 * frontend takes it: aimed at the writer, it is not taken (the writer once
 * took it as a failed receive and left, so that the drain waited for it
 * forever, or queued uploads went unanswered). The writer keeps
 * committing, and a SIGTERM to the process then drains cleanly. */
static void
test_sigterm_any_thread(void **state)
{
    s_env_t *e = *state;
    gs_client_t *c = gs_client_new(e->broker.upload, NULL);
    s_load(e, c, GRID_A, 0, 200, 50);
    pid_t writer = s_thread_named(e->broker.pid, "gs-writer");
    assert_true(writer > 0);
    assert_int_equal(syscall(SYS_tgkill, e->broker.pid, writer, SIGTERM), 0);
    s_load(e, c, GRID_A, 200, 100, 50);     /* still accepted: no drain began */
    gs_client_destroy(&c);
    int st = gs_tk_broker_stop(&e->broker, SIGTERM);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);

    assert_int_equal(gs_tk_broker_start(&e->broker, e->store, NULL), 0);
    c = gs_client_new(e->broker.upload, NULL);
    int found = 0;
    s_snapshot_all(c, GRID_A, 0, s_entry_count, &found);
    assert_int_equal(found, 300);
    gs_client_destroy(&c);
}

/* A metrics client that trickles its request a byte at a time holds up
 * no upload (the listener has its own thread), and the broker drops it at
 * its deadline. Served from the frontend thread, the trickle below would
 * hold uploads for close to a minute, past the client's retries. */
typedef struct {
    int fd;                     /* connection to the metrics port */
    int sent;                   /* bytes the broker took before closing */
} s_trickle_t;

static void *
s_trickle_main(void *arg)
{
    s_trickle_t *t = arg;
    /* never a full request: no blank line ends it */
    for (t->sent = 0; t->sent < 1000; t->sent++) {
        if (send(t->fd, "x", 1, MSG_NOSIGNAL) != 1)
            break;
        struct timespec ts = { 0, 50 * 1000 * 1000 };   /* the load's shape */
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void
test_metrics_stall(void **state)
{
    s_env_t *e = *state;
    assert_true(e->broker.metrics_port > 0);
    s_trickle_t t = { socket(AF_INET, SOCK_STREAM, 0), 0 };
    assert_true(t.fd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons((uint16_t) e->broker.metrics_port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(t.fd, (struct sockaddr *) &sa, sizeof sa), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_trickle_main, &t), 0);

    gs_client_t *c = gs_client_new(e->broker.upload, NULL);
    for (int i = 0; i < 5; i++) {
        gs_arena_reset(e->arena);
        char hid[32], addr[32], uid[32];
        snprintf(hid, sizeof hid, "M-%d", i);
        snprintf(addr, sizeof addr, "MA-%d", i);
        snprintf(uid, sizeof uid, "m-%d", i);
        Gridsync__V1__Record *rec = gs_tk_household(e->arena, GRID_A, hid, addr, 2, (uint32_t) i);
        Gridsync__V1__Ack *ack = s_upload(c, "dev-m", uid, &rec, 1);
        assert_int_equal(ack->results[0]->status,
                         GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
        gridsync__v1__ack__free_unpacked(ack, NULL);
    }
    gs_client_destroy(&c);

    /* the broker gave up on the trickling client and closed it */
    pthread_join(th, NULL);
    assert_true(t.sent < 1000);
    char buf[512];
    ssize_t r;
    struct timeval patience = { 60, 0 };   /* a broker that never closes fails, not hangs */
    setsockopt(t.fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
    while ((r = read(t.fd, buf, sizeof buf)) > 0)
        ;
    assert_true(r <= 0);
    close(t.fd);
}

static int
s_setup_small_queue(void **state)
{
    static const char *const extra[] = { "--max-pending-records=1000", NULL };
    return s_setup_with(state, extra);
}

/* The writer's queue is bounded: uploads beyond it are answered BUSY at
 * once instead of piling up, and a client that retries gets them stored. */
static void
test_backpressure_busy(void **state)
{
    s_env_t *e = *state;
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_connect(s, e->broker.upload), 0);
    enum { N = 20, K = 1000 };
    Gridsync__V1__Record **recs = calloc(K, sizeof *recs);
    uint8_t *bufs[N];
    size_t lens[N];
    for (int i = 0; i < N; i++) {
        gs_arena_reset(e->arena);
        for (int j = 0; j < K; j++) {
            char hid[32], addr[32];
            snprintf(hid, sizeof hid, "B-%d-%d", i, j);
            snprintf(addr, sizeof addr, "BA-%d-%d", i, j);
            recs[j] = gs_tk_household(e->arena, GRID_A, hid, addr, 1, (uint32_t) (i * K + j));
        }
        char uid[32];
        snprintf(uid, sizeof uid, "bp-%d", i);
        bufs[i] = gs_tk_upload_request("dev-b", uid, recs, K, (uint64_t) i + 1, &lens[i]);
        zmq_send(s, bufs[i], lens[i], 0);
    }
    int acked = 0, busy = 0;
    while (acked < N) {
        /* every upload is answered, ACK or BUSY: a silence is a failure */
        zmq_pollitem_t it = { s, 0, ZMQ_POLLIN, 0 };
        assert_int_equal(zmq_poll(&it, 1, 60000), 1);
        zmq_msg_t m;
        zmq_msg_init(&m);
        assert_true(zmq_msg_recv(&m, s, 0) >= 0);
        Gridsync__V1__Reply *rep =
            gridsync__v1__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        zmq_msg_close(&m);
        assert_non_null(rep);
        if (rep->body_case == GRIDSYNC__V1__REPLY__BODY_ACK) {
            acked++;
        } else {
            assert_int_equal(rep->error->reason, GRIDSYNC__V1__REASON__REASON_BUSY);
            busy++;
            /* retry the same upload, as a client does */
            int i = (int) rep->request_id - 1;
            zmq_send(s, bufs[i], lens[i], 0);
        }
        gridsync__v1__reply__free_unpacked(rep, NULL);
    }
    assert_true(busy > 0);
    for (int i = 0; i < N; i++)
        free(bufs[i]);
    free(recs);
    zmq_close(s);
    zmq_ctx_term(ctx);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_upload_ack_store_feed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ping_development_mode, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dedup_seen_from_client, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_organisations_end_to_end, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_subscriber_resumes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_subscriber_catches_up_in_pages, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_subscriber_starts_at_head, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_slow_subscriber_repairs, s_setup_small_hwm, s_teardown),
        cmocka_unit_test_setup_teardown(test_device_pulls_own_grid, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, s_setup_small_msgs, s_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_keeps_acked, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_any_thread, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_busy, s_setup_small_queue, s_teardown),
        cmocka_unit_test_setup_teardown(test_metrics_stall, s_setup, s_teardown),
        cmocka_unit_test(test_client_takes_unreadable_reply),
    };
    return cmocka_run_group_tests_name("broker", tests, NULL, NULL);
}

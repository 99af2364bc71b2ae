/*
 * test_fault_kill: gridsyncd SIGKILLed under load keeps every promise it
 * made. An ack means "durably committed"; a retry after a lost ack must not
 * store anything twice; the change log stays gapless; a subscriber that
 * resumes from its checkpoint and repairs from the sync service ends with
 * exactly the log's events for its prefix.
 *
 * The broker runs on fixed ports so that devices and subscribers reconnect
 * to the restarted process by themselves. Kills are placed by counting acks
 * (a random 20..200 more each cycle), never by time.
 *
 * GRIDSYNC_SOAK=1 runs many more cycles with more devices.
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
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "fault_kit.h"
#include "gs_arena.h"
#include "gs_client.h"

/* Four cells in community 440305001001 (followed) and four elsewhere. */
static const char *const s_grids[] = {
    "440305001001001", "440305002001001", "440305001001002", "440305002001002",
    "440305001001003", "440305002001003", "440305001001004", "440305002001004",
};
#define S_PREFIX "440305001001"

typedef gs_fk_env_t s_env_t;

/* Run `gridctl --store DIR verify` when the build has gridctl. */
static void
s_gridctl_verify(const char *store)
{
#ifdef GS_GRIDCTL
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(GS_GRIDCTL, GS_GRIDCTL, "--store", store, "verify", (char *) NULL);
        _exit(127);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
#else
    (void) store;
#endif
}

/* Repeated SIGKILL while devices upload and a subscriber follows. */
static void
test_kill9_under_load(void **state)
{
    s_env_t *e = *state;
    int soak = gs_fk_soak();
    int cycles = soak ? 200 : 24;
    int devices = soak ? 6 : 4;
    uint64_t rng = gs_fk_seed();
    uint64_t replayed = 0;

    assert_int_equal(gs_tk_broker_start_fixed(&e->broker, e->store, NULL, 0), 0);
    gs_fk_load_opts_t lo = {
        .endpoint = e->broker.upload, .tag = "K", .grids = s_grids,
        .n_grids = sizeof s_grids / sizeof s_grids[0], .records = 3, .members = 2,
        .timeout_ms = 250, .retries = 2000,
    };
    char cp[200];
    snprintf(cp, sizeof cp, "%s/follower.cp", e->dir);
    gs_fk_follow_opts_t fo = {
        .feed = e->broker.feed, .sync = e->broker.upload, .prefix = S_PREFIX,
        .checkpoint = cp, .timeout_ms = 300, .checkpoint_every = 40,
    };
    gs_fk_follow_t *f = gs_fk_follow_start(&fo);
    assert_non_null(f);
    gs_fk_load_t *l = gs_fk_load_start(&lo, devices);
    assert_non_null(l);

    for (int c = 0; c < cycles; c++) {
        uint64_t target = gs_fk_load_acked(l) + 20 + gs_fk_rand(&rng) % 181;
        assert_int_equal(gs_fk_load_wait(l, target, 60000), 0);
        /* uploads this incarnation answered from the idempotency table:
         * committed by the one before, their acks lost with it (read
         * before the kill, so the few after the read go uncounted) */
        double r = gs_fk_metric(&e->broker, "gridsync_uploads_total{result=\"replayed\"}");
        if (r > 0)
            replayed += (uint64_t) r;
        int st = gs_tk_broker_stop(&e->broker, SIGKILL);
        /* it was killed, not stopped for some reason of its own */
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        if (c % 4 == 1)
            gs_fk_follow_crash(f); /* the district system dies too, now and then */
        assert_int_equal(gs_tk_broker_restart(&e->broker, NULL), 0);
    }
    /* some load on the last incarnation too, then stop the devices: each
     * finishes its upload in flight, so every upload ends acked */
    assert_int_equal(gs_fk_load_wait(l, gs_fk_load_acked(l) + 50, 60000), 0);
    gs_fk_load_stop(l);
    assert_int_equal(gs_fk_load_errors(l), 0);
    size_t n = 0;
    const gs_fk_ack_t *acks = gs_fk_load_acks(l, &n);
    uint64_t resends = gs_fk_load_resends(l);
    fprintf(stderr,
            "%d kills, %llu uploads, %zu records acked; %llu resends after timeouts, at least "
            "%llu uploads answered from the idempotency table after a kill\n",
            cycles, (unsigned long long) gs_fk_load_acked(l), n, (unsigned long long) resends,
            (unsigned long long) replayed);
    assert_true(n >= (size_t) cycles * 20 * 3);
    /* the devices did have to retry against restarted brokers */
    assert_true(resends > 0);

    /* the store keeps every ack, once, in a gapless log */
    assert_int_equal(gs_fk_check_store(e->store, acks, n), 0);

    /* the subscriber ends with exactly the log's events for its prefix */
    uint64_t *want = NULL, last = 0;
    size_t n_want = gs_fk_log_seqs(e->store, S_PREFIX, &want, &last);
    assert_true(n_want != (size_t) -1 && n_want > 0);
    assert_int_equal(gs_fk_follow_finish(f, last, 30000), 0);
    size_t n_got = 0;
    const uint64_t *got = gs_fk_follow_seqs(f, &n_got);
    gs_fk_follow_stats_t fs;
    gs_fk_follow_stats(f, &fs);
    fprintf(stderr,
            "follower: %zu events (live %llu, pulled %llu, duplicates dropped %llu, gaps %llu), "
            "%llu resumes, %llu crashes\n",
            n_got, (unsigned long long) fs.live, (unsigned long long) fs.pulled,
            (unsigned long long) fs.duplicates, (unsigned long long) fs.gaps,
            (unsigned long long) fs.resumes, (unsigned long long) fs.crashes);
    assert_int_equal(fs.errors, 0);
    assert_int_equal(gs_fk_seqs_compare("follower " S_PREFIX, got, n_got, want, n_want), 0);
    /* the crashes forgot deliveries; resuming must have brought them back */
    assert_true(fs.crashes > 0);
    free(want);
    gs_fk_follow_destroy(&f);
    gs_fk_load_destroy(&l);

    /* a drained stop exits 0 (and under LSan, with no leak) */
    assert_int_equal(gs_fk_broker_term(&e->broker), 0);
    s_gridctl_verify(e->store);
}

/* Make upload k of a batch: records "L-k-r" in the grids, persons from seed. */
static Gridsync__V1__Record **
s_batch_records(gs_arena_t *a, int k, int per)
{
    Gridsync__V1__Record **recs = gs_arena_alloc(a, (size_t) per * sizeof *recs);
    for (int r = 0; r < per; r++) {
        char id[32];
        snprintf(id, sizeof id, "L-%d-%d", k, r);
        recs[r] = gs_tk_household(a, s_grids[(k + r) % 8], id, NULL, 2,
                                  (uint32_t) (1 + (k * per + r) * 2));
    }
    return recs;
}

/* Acks lost in flight: pipelined uploads, SIGKILL before the acks are read,
 * restart, the devices retry the same uploads. */
static void
test_acks_lost_in_flight(void **state)
{
    s_env_t *e = *state;
    enum { N_A = 40, N_B = 40, PER = 5 };
    assert_int_equal(gs_tk_broker_start_fixed(&e->broker, e->store, NULL, 0), 0);
    gs_arena_t *a = gs_arena_new(0);
    Gridsync__V1__Record **recs[N_A + N_B];
    for (int k = 0; k < N_A + N_B; k++)
        recs[k] = s_batch_records(a, k, PER);

    /* a subscriber to everything tells when batch A is committed */
    const char *all[] = { "" };
    gs_sub_opts_t so;
    gs_sub_opts_init(&so);
    so.timeout_ms = 500;
    gs_sub_t *sub = gs_sub_new(e->broker.feed, e->broker.upload, all, 1, NULL, 0, &so, NULL);
    assert_non_null(sub);

    void *ctx = zmq_ctx_new();
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(dealer, e->broker.upload), 0);
    char dev[32], uid[32];
    for (int k = 0; k < N_A; k++) {
        snprintf(dev, sizeof dev, "dev-L-%d", k % 4);
        snprintf(uid, sizeof uid, "up-L-%d", k);
        size_t len = 0;
        uint8_t *buf = gs_tk_upload_request(dev, uid, recs[k], PER, (uint64_t) k + 1, &len);
        assert_int_equal(zmq_send(dealer, buf, len, 0), (int) len);
        free(buf);
    }
    /* every record of A on the feed = A committed; its acks are on their
     * way or waiting unread in the DEALER */
    uint64_t feed_seq[N_A * PER];
    for (int i = 0; i < N_A * PER; i++) {
        Gridsync__V1__ChangeEvent *ev = NULL;
        assert_int_equal(gs_sub_next(sub, 30000, &ev), 0);
        int k = 0, r = 0;
        assert_int_equal(sscanf(ev->record_key, "L-%d-%d", &k, &r), 2);
        assert_true(k < N_A && r < PER);
        feed_seq[k * PER + r] = ev->seq;
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }
    /* batch B goes out and the broker dies at once: some of B committed,
     * some in flight, some never read */
    for (int k = N_A; k < N_A + N_B; k++) {
        snprintf(dev, sizeof dev, "dev-L-%d", k % 4);
        snprintf(uid, sizeof uid, "up-L-%d", k);
        size_t len = 0;
        uint8_t *buf = gs_tk_upload_request(dev, uid, recs[k], PER, (uint64_t) k + 1, &len);
        assert_int_equal(zmq_send(dealer, buf, len, 0), (int) len);
        free(buf);
    }
    int st = gs_tk_broker_stop(&e->broker, SIGKILL);
    assert_true(WIFSIGNALED(st));
    zmq_close(dealer); /* the acks are lost with it */
    zmq_ctx_term(ctx);

    assert_int_equal(gs_tk_broker_restart(&e->broker, NULL), 0);
    gs_client_opts_t co;
    gs_client_opts_init(&co);
    co.timeout_ms = 1000;
    gs_client_t *c = gs_client_new(e->broker.upload, &co);
    gs_fk_ack_t acks[(N_A + N_B) * PER];
    for (int k = 0; k < N_A + N_B; k++) {
        snprintf(dev, sizeof dev, "dev-L-%d", k % 4);
        snprintf(uid, sizeof uid, "up-L-%d", k);
        Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
        up.device_id = dev;
        up.upload_id = uid;
        up.records = recs[k];
        up.n_records = PER;
        Gridsync__V1__Ack *ack = NULL;
        gs_client_error_t err;
        assert_int_equal(gs_client_upload(c, &up, &ack, &err), 0);
        assert_int_equal(ack->n_results, PER);
        for (int r = 0; r < PER; r++) {
            const Gridsync__V1__RecordResult *res = ack->results[r];
            /* a replayed ack is the original one: accepted, version 1 */
            assert_int_equal(res->status, GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
            assert_int_equal(res->version, 1);
            if (k < N_A)
                assert_int_equal(res->seq, feed_seq[k * PER + r]);
            gs_fk_ack_t *x = &acks[k * PER + r];
            snprintf(x->id, sizeof x->id, "%s", res->record_key);
            snprintf(x->grid, sizeof x->grid, "%s", recs[k][r]->household->grid_code);
            x->version = res->version;
            x->seq = res->seq;
        }
        gridsync__v1__ack__free_unpacked(ack, NULL);
    }
    gs_client_destroy(&c);
    /* all of A came back from the idempotency table */
    double replayed = gs_fk_metric(&e->broker, "gridsync_uploads_total{result=\"replayed\"}");
    fprintf(stderr, "after restart: %.0f of %d retried uploads were already committed\n",
            replayed, N_A + N_B);
    assert_true(replayed >= N_A);
    gs_fk_acks_sort(acks, (N_A + N_B) * PER);
    assert_int_equal(gs_fk_check_store(e->store, acks, (N_A + N_B) * PER), 0);

    /* the subscriber, across the restart, sees every event once */
    uint64_t *want = NULL, last = 0;
    size_t n_want = gs_fk_log_seqs(e->store, "", &want, &last);
    assert_int_equal(n_want, (N_A + N_B) * PER);
    uint64_t pos = gs_sub_position(sub, 0);
    size_t i = (size_t) N_A * PER;
    while (pos < last) {
        Gridsync__V1__ChangeEvent *ev = NULL;
        assert_int_equal(gs_sub_next(sub, 30000, &ev), 0);
        assert_true(i < n_want);
        assert_int_equal(ev->seq, want[i]);
        i++;
        pos = ev->seq;
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }
    assert_int_equal(i, n_want);
    free(want);
    gs_sub_destroy(&sub);
    gs_arena_destroy(&a);
    assert_int_equal(gs_fk_broker_term(&e->broker), 0);
    s_gridctl_verify(e->store);
}

/* SIGTERM the moment the broker is ready, before its threads have all
 * started: it must drain and exit, every time. The readers once connected
 * their queue in their own threads, so a stop sent at once reached only
 * those already connected, and the broker waited for ever on the others. */
static void
test_sigterm_at_start(void **state)
{
    (void) state;
    char dir[64];
    gs_tk_tmpdir(dir, sizeof dir);
    const char *const extra[] = { "--readers=8", NULL };
    for (int round = 0; round < 30; round++) {
        char store[128];
        snprintf(store, sizeof store, "%s/store-%d", dir, round);
        gs_tk_broker_t b;
        assert_int_equal(gs_tk_broker_start(&b, store, extra), 0);
        /* gs_tk_broker_stop kills a broker that has not exited after its
         * patience: a status other than exit 0 is that hang */
        int st = gs_tk_broker_stop(&b, SIGTERM);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("round %d: gridsyncd did not drain and exit on SIGTERM at start "
                     "(wait status %d)", round, st);
    }
    gs_tk_rmtree(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill9_under_load, gs_fk_setup, gs_fk_teardown),
        cmocka_unit_test_setup_teardown(test_acks_lost_in_flight, gs_fk_setup, gs_fk_teardown),
        cmocka_unit_test(test_sigterm_at_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

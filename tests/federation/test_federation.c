/*
 * test_federation: the four-level flow end to end, with real parts only:
 * a nats-server with JetStream, two district gridsyncd (counties 440305 and
 * 440306 of one city) bridging their change logs into their streams, a
 * city gridsyncd replica of both, and gridsim's collector fleets uploading
 * to both districts. The city must end with exactly the union: every
 * district event applied once, in order (its origin seqs run 1..head with
 * no gap and no repeat), equal digests at every level (gridctl compare),
 * and the persons registered in both districts (each gridsim plants some of
 * the other district's, generated with its own seed) found by the city's
 * dups, exactly as many as the generators planted.
 * Then the same under faults while the fleets upload: the district broker
 * (and with it its bridge), nats-server and the city replica are each
 * killed with SIGKILL and restarted, several times.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <zmq.h>

#include "gs_client.h"
#include "gs_testkit.h"
#include "gs_tk_nats.h"

#define S_CITY "4403"
#define S_CATCH_UP_MS 180000

typedef struct s_district {
    const char *area;           /* county code: the origin's name */
    char dir[256];              /* temporary directory */
    char store[300];            /* its store */
    gs_tk_broker_t b;
} s_district_t;

typedef struct s_world {
    gs_tk_nats_t nats;
    s_district_t d[2];
    char city_dir[256];
    char city_store[300];
    gs_tk_broker_t city;
    char url_arg[96];
} s_world_t;

static int64_t
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
s_district_start(s_world_t *w, s_district_t *d)
{
    char area_arg[64];
    snprintf(area_arg, sizeof area_arg, "--jetstream-area=%s", d->area);
    const char *extra[] = { w->url_arg, area_arg, NULL };
    assert_int_equal(gs_tk_broker_start_fixed(&d->b, d->store, extra, 0), 0);
}

static void
s_district_restart(s_world_t *w, s_district_t *d)
{
    char area_arg[64];
    snprintf(area_arg, sizeof area_arg, "--jetstream-area=%s", d->area);
    const char *extra[] = { w->url_arg, area_arg, NULL };
    assert_int_equal(gs_tk_broker_restart(&d->b, extra), 0);
}

static const char *const s_city_args[] = { NULL, "--replica-of=440305,440306", NULL };

static void
s_city_start(s_world_t *w, int restart)
{
    const char *extra[] = { w->url_arg, s_city_args[1], NULL };
    if (restart)
        assert_int_equal(gs_tk_broker_restart(&w->city, extra), 0);
    else
        assert_int_equal(gs_tk_broker_start_fixed(&w->city, w->city_store, extra, 0), 0);
}

static void
s_world_start(s_world_t *w)
{
    memset(w, 0, sizeof *w);
    assert_int_equal(gs_tk_nats_start(&w->nats, NULL), 0);
    snprintf(w->url_arg, sizeof w->url_arg, "--jetstream-url=%s", w->nats.url);
    w->d[0].area = "440305";
    w->d[1].area = "440306";
    for (int i = 0; i < 2; i++) {
        gs_tk_tmpdir(w->d[i].dir, sizeof w->d[i].dir);
        /* dir and store are fields of one object: no snprintf from one into
         * the other (-Werror=restrict) */
        strcpy(w->d[i].store, w->d[i].dir);
        strcat(w->d[i].store, "/store");
        s_district_start(w, &w->d[i]);
    }
    gs_tk_tmpdir(w->city_dir, sizeof w->city_dir);
    strcpy(w->city_store, w->city_dir);
    strcat(w->city_store, "/store");
    s_city_start(w, 0);
}

static void
s_world_stop(s_world_t *w)
{
    assert_int_equal(gs_tk_broker_stop(&w->city, SIGTERM), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(gs_tk_broker_stop(&w->d[i].b, SIGTERM), 0);
        gs_tk_rmtree(w->d[i].dir);
    }
    gs_tk_rmtree(w->city_dir);
    gs_tk_nats_destroy(&w->nats);
}

/* gridsim against one district, in the background, its --json summary
 * into out. twins (may be NULL): its --twins-from, the other district and
 * that one's seed, so that some persons of it are registered here too. */
static pid_t
s_gridsim(const s_district_t *d, const char *seed, const char *scale, const char *twins,
          const char *out)
{
    /* every record kind: households, rentals, organisations and incidents */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "exec '%s' --endpoint '%s' --district %s --seed %s --scale %s "
             "--devices 4 --incidents --quiet --json%s%s > '%s'", GS_GRIDSIM, d->b.upload,
             d->area, seed, scale, twins ? " --twins-from " : "", twins ? twins : "", out);
    const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    return gs_tk_spawn(argv, NULL);
}

/* The persons gridsim said it planted from the other district. */
static uint64_t
s_planted(const char *out)
{
    char *text = gs_tk_read_file(out, NULL, 0);
    assert_non_null(text);
    const char *p = strstr(text, "\"planted\":");
    assert_non_null(p);
    uint64_t n = strtoull(p + strlen("\"planted\":"), NULL, 10);
    free(text);
    return n;
}

static void
s_gridsim_wait(pid_t pid)
{
    int st = gs_tk_wait_exit(pid, "gridsim", 600000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* The district's head seq, through its sync service. */
static uint64_t
s_head(const gs_tk_broker_t *b)
{
    gs_client_t *c = gs_client_new(b->upload, NULL);
    assert_non_null(c);
    const char *all[] = { "" };
    Gridsync__V1__SyncResponse *r = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_client_sync(c, all, 1, UINT64_MAX - 1, 1, 0, &r, &err), 0);
    uint64_t head = r->head_seq;
    gridsync__v1__sync_response__free_unpacked(r, NULL);
    gs_client_destroy(&c);
    return head;
}

/* Read the city's whole change log for an origin's area: every event must
 * carry that origin, and their origin seqs must run 1, 2, 3... (no gap, no
 * repeat). Returns the last origin seq seen. */
static uint64_t
s_city_origin_last(const gs_tk_broker_t *city, const char *area)
{
    gs_client_t *c = gs_client_new(city->upload, NULL);
    assert_non_null(c);
    const char *pfx[] = { area };
    uint64_t since = 0, last = 0;
    for (;;) {
        Gridsync__V1__SyncResponse *r = NULL;
        gs_client_error_t err;
        assert_int_equal(gs_client_sync(c, pfx, 1, since, 0, 0, &r, &err), 0);
        for (size_t i = 0; i < r->n_events; i++) {
            const Gridsync__V1__ChangeEvent *e = r->events[i];
            assert_string_equal(e->origin, area);
            if (e->origin_seq != last + 1)
                fail_msg("city: origin %s seq %llu after %llu (a gap or a second copy)", area,
                         (unsigned long long) e->origin_seq, (unsigned long long) last);
            last = e->origin_seq;
        }
        int done = r->next_seq >= r->head_seq || r->n_events == 0;
        since = r->next_seq;
        gridsync__v1__sync_response__free_unpacked(r, NULL);
        if (done)
            break;
    }
    gs_client_destroy(&c);
    return last;
}

/* Wait until the city holds every event of both districts, checking order
 * and exactly-once on the way. Between looks the test waits on the city's
 * live feed (an event or a heartbeat), not on a clock. */
static void
s_wait_city(s_world_t *w)
{
    uint64_t want[2] = { s_head(&w->d[0].b), s_head(&w->d[1].b) };
    void *ctx = zmq_ctx_new();
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    assert_int_equal(zmq_setsockopt(sub, ZMQ_SUBSCRIBE, S_CITY, strlen(S_CITY)), 0);
    assert_int_equal(zmq_connect(sub, w->city.feed), 0);
    int64_t end = s_now_ms() + S_CATCH_UP_MS;
    for (;;) {
        uint64_t got[2] = { s_city_origin_last(&w->city, w->d[0].area),
                            s_city_origin_last(&w->city, w->d[1].area) };
        if (got[0] == want[0] && got[1] == want[1])
            break;
        if (s_now_ms() > end)
            fail_msg("city behind after %d s: %s %llu of %llu, %s %llu of %llu",
                     S_CATCH_UP_MS / 1000, w->d[0].area, (unsigned long long) got[0],
                     (unsigned long long) want[0], w->d[1].area, (unsigned long long) got[1],
                     (unsigned long long) want[1]);
        zmq_pollitem_t it = { sub, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&it, 1, 2000) > 0) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            while (zmq_msg_recv(&m, sub, ZMQ_DONTWAIT) >= 0)
                ;
            zmq_msg_close(&m);
        }
    }
    zmq_close(sub);
    zmq_ctx_term(ctx);
}

/* Whether the child pid has exited (not reaped: gs_tk_wait_exit does). */
static int
s_exited(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    return waitid(P_PID, (id_t) pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

/* Wait until n events (not heartbeats) arrived on the city's live feed for
 * the whole city, or both fleets (sims) have finished, at most
 * S_CATCH_UP_MS. */
static void
s_wait_events(const gs_tk_broker_t *city, int n, const pid_t sims[2])
{
    void *ctx = zmq_ctx_new();
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    assert_int_equal(zmq_setsockopt(sub, ZMQ_SUBSCRIBE, S_CITY, strlen(S_CITY)), 0);
    assert_int_equal(zmq_connect(sub, city->feed), 0);
    int64_t end = s_now_ms() + S_CATCH_UP_MS;
    int seen = 0;
    /* n more events, or the load is over (then no more come) */
    while (seen < n && !(s_exited(sims[0]) && s_exited(sims[1]))) {
        int left = (int) (end - s_now_ms());
        if (left <= 0)
            fail_msg("only %d of %d events on the city's feed in %d s", seen, n,
                     S_CATCH_UP_MS / 1000);
        zmq_pollitem_t it = { sub, 0, ZMQ_POLLIN, 0 };
        /* at least once a second: the fleets' exit ends the wait too */
        if (zmq_poll(&it, 1, left < 1000 ? left : 1000) <= 0)
            continue;
        zmq_msg_t topic, body;
        zmq_msg_init(&topic);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&topic, sub, 0) >= 0 && zmq_msg_more(&topic) &&
            zmq_msg_recv(&body, sub, 0) >= 0) {
            Gridsync__V1__FeedMessage *fm = gridsync__v1__feed_message__unpack(
                NULL, zmq_msg_size(&body), zmq_msg_data(&body));
            if (fm && fm->event)
                seen++;
            if (fm)
                gridsync__v1__feed_message__free_unpacked(fm, NULL);
        }
        zmq_msg_close(&topic);
        zmq_msg_close(&body);
    }
    zmq_close(sub);
    zmq_ctx_term(ctx);
}

/* gridctl compare of one district with the city from the district's area:
 * its exit status (0 equal, 1 differ). */
static int
s_compare(const s_world_t *w, const s_district_t *d)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s compare --prefix %s %s %s >&2", GS_GRIDCTL, d->area, d->store,
             w->city_store);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The persons the city's dups report finds in both districts: each
 * person entry with places in 440305 and in 440306. */
static uint64_t
s_city_twins(const s_world_t *w)
{
    char cmd[1200], path[400];
    snprintf(path, sizeof path, "%s/dups.json", w->city_dir);
    snprintf(cmd, sizeof cmd, "%s --store %s --json dups > %s", GS_GRIDCTL, w->city_store, path);
    assert_int_equal(system(cmd), 0);
    char *out = gs_tk_read_file(path, NULL, 0);
    assert_non_null(out);
    char *orgs = strstr(out, "\"organisations\"");
    if (orgs)
        *orgs = 0;      /* persons only */
    uint64_t n = 0;
    for (char *p = strstr(out, "\"id_number\""); p;) {
        char *next = strstr(p + 1, "\"id_number\"");
        if (next)
            *next = 0;
        n += strstr(p, "\"grid\":\"440305") && strstr(p, "\"grid\":\"440306");
        if (next)
            *next = '"';
        p = next;
    }
    free(out);
    return n;
}

static void
test_union(void **state)
{
    (void) state;
    s_world_t w;
    s_world_start(&w);
    /* each district with its own seed, and a few of each other's persons
     * registered in it too */
    char out[2][200];
    for (int i = 0; i < 2; i++)
        snprintf(out[i], sizeof out[i], "%s/gridsim-%d.json", w.city_dir, i);
    pid_t sims[2] = { s_gridsim(&w.d[0], "1", "0.01", "440306:2", out[0]),
                      s_gridsim(&w.d[1], "2", "0.01", "440305:1", out[1]) };
    s_gridsim_wait(sims[0]);
    s_gridsim_wait(sims[1]);
    s_wait_city(&w);
    assert_int_equal(s_compare(&w, &w.d[0]), 0);
    assert_int_equal(s_compare(&w, &w.d[1]), 0);
    /* the city finds exactly the persons the generators planted */
    uint64_t planted = s_planted(out[0]) + s_planted(out[1]);
    assert_true(planted > 0);
    assert_int_equal(s_city_twins(&w), planted);
    s_world_stop(&w);
}

static void
test_faults(void **state)
{
    (void) state;
    s_world_t w;
    s_world_start(&w);
    char out[2][200];
    for (int i = 0; i < 2; i++)
        snprintf(out[i], sizeof out[i], "%s/gridsim-%d.json", w.city_dir, i);
    pid_t sims[2] = { s_gridsim(&w.d[0], "3", "0.03", NULL, out[0]),
                      s_gridsim(&w.d[1], "4", "0.03", NULL, out[1]) };
    for (int round = 0; round < 3; round++) {
        /* each part dies while the others are busy: after some more
         * events reached the city's live feed */
        s_wait_events(&w.city, 200, sims);
        gs_tk_broker_stop(&w.d[0].b, SIGKILL);
        s_district_restart(&w, &w.d[0]);
        s_wait_events(&w.city, 200, sims);
        gs_tk_nats_stop(&w.nats, SIGKILL);
        assert_int_equal(gs_tk_nats_restart(&w.nats), 0);
        s_wait_events(&w.city, 200, sims);
        gs_tk_broker_stop(&w.city, SIGKILL);
        s_city_start(&w, 1);
    }
    s_gridsim_wait(sims[0]);
    s_gridsim_wait(sims[1]);
    s_wait_city(&w);
    assert_int_equal(s_compare(&w, &w.d[0]), 0);
    assert_int_equal(s_compare(&w, &w.d[1]), 0);
    s_world_stop(&w);
}

int
main(void)
{
    if (!gs_tk_nats_available())
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_union),
        cmocka_unit_test(test_faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

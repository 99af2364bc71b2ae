/*
 * test_gridsim: the fleet simulator's noise model, and gridsim end to end
 * against the real gridsyncd.
 *
 * The model tests build plans in memory and check them with the validation
 * library: deterministic for a seed, corrupted records fail exactly on the
 * ID check character, everything else is valid. The integration tests run
 * the gridsim binary (GS_GRIDSIM) against a broker started by gs_testkit
 * and read its --json summary, then look at the store through the client
 * library. Nothing waits on time: tests wait for process exits and replies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "gs_arena.h"
#include "gs_store.h"
#include "gs_client.h"
#include "gs_gen.h"
#include "gs_gen_incident.h"
#include "gs_sim.h"
#include "gs_testkit.h"
#include "gs_validate.h"

#ifndef GS_GRIDSIM
#error "GS_GRIDSIM must name the gridsim binary"
#endif
#ifndef GS_GRIDCTL
#error "GS_GRIDCTL must name the gridctl binary"
#endif

/* How long a test waits for a gridsim that should exit: far beyond any
 * budget it is given, so only a hang reaches it. */
#define S_EXIT_PATIENCE_MS 60000

#define S_ACCEPTED GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED
#define S_REJECTED GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_REJECTED

/* ---- The model, in memory ------------------------------------------------------ */

static gs_gen_t *
s_small_district(void)
{
    gs_gen_opts_t go;
    gs_gen_opts_init(&go);
    go.seed = 11;
    go.grids = 12;
    go.streets = 2;
    go.households = 900;
    go.rental_buildings = 40;
    go.organisations = 120;
    gs_gen_t *gen = gs_gen_new(&go);
    assert_non_null(gen);
    return gen;
}

/* The generator's "today", which its records are valid for. */
static int64_t
s_gen_now(void)
{
    gs_gen_opts_t go;
    gs_gen_opts_init(&go);
    return go.now_ms;
}

static void
s_noisy(gs_sim_opts_t *o)
{
    gs_sim_opts_init(o);
    o->seed = 5;
    o->run_id = "t";
    o->batch = 20;
    o->retransmit_pct = 10;
    o->lost_ack_pct = 10;
    o->invalid_pct = 10;
    o->recollect_pct = 10;
    o->new_id_pct = 10;
    o->conflict_pct = 10;
}

/* Same seed, same plan: byte for byte, in any arena. */
static void
test_plan_is_deterministic(void **state)
{
    (void) state;
    gs_gen_t *gen = s_small_district();
    gs_sim_opts_t o;
    s_noisy(&o);
    gs_arena_t *a1 = gs_arena_new(0), *a2 = gs_arena_new(0);
    for (uint32_t g = 0; g < gs_gen_grid_count(gen); g += 5) {
        gs_sim_upload_t *u1, *u2;
        size_t n1, n2;
        gs_arena_reset(a1);
        gs_arena_reset(a2);
        assert_int_equal(gs_sim_plan_grid(&o, gen, g, a1, &u1, &n1, NULL), 0);
        assert_int_equal(gs_sim_plan_grid(&o, gen, g, a2, &u2, &n2, NULL), 0);
        assert_int_equal(n1, n2);
        assert_true(n1 > 0);
        for (size_t i = 0; i < n1; i++) {
            size_t l1 = gridsync__v1__upload__get_packed_size(u1[i].up);
            size_t l2 = gridsync__v1__upload__get_packed_size(u2[i].up);
            assert_int_equal(l1, l2);
            uint8_t *b1 = malloc(l1), *b2 = malloc(l2);
            gridsync__v1__upload__pack(u1[i].up, b1);
            gridsync__v1__upload__pack(u2[i].up, b2);
            assert_memory_equal(b1, b2, l1);
            assert_int_equal(u1[i].noise, u2[i].noise);
            free(b1);
            free(b2);
        }
    }
    /* another seed picks other records */
    gs_sim_opts_t o2 = o;
    o2.seed = 6;
    gs_sim_tally_t t1 = { 0 }, t2 = { 0 };
    for (uint32_t g = 0; g < gs_gen_grid_count(gen); g++) {
        gs_sim_upload_t *u;
        size_t n;
        gs_arena_reset(a1);
        assert_int_equal(gs_sim_plan_grid(&o, gen, g, a1, &u, &n, &t1), 0);
        gs_arena_reset(a1);
        assert_int_equal(gs_sim_plan_grid(&o2, gen, g, a1, &u, &n, &t2), 0);
    }
    assert_int_equal(t1.by_noise[GS_SIM_FRESH] + t1.by_noise[GS_SIM_INVALID] +
                     t1.by_noise[GS_SIM_RECOLLECT] + t1.by_noise[GS_SIM_NEW_ID] +
                     t1.by_noise[GS_SIM_CONFLICT],
                     gs_gen_household_count(gen) + gs_gen_rental_count(gen));
    assert_memory_not_equal(t1.by_noise, t2.by_noise, sizeof t1.by_noise);
    gs_arena_destroy(&a1);
    gs_arena_destroy(&a2);
    gs_gen_destroy(&gen);
}

/* Every planned record passes validation except the corrupted ones, which
 * fail on the ID check character (an organisation's USCC check character)
 * and nothing else; each kind of noise is present and the expected results
 * follow the store's rules. Organisations are planned only when asked. */
static void
test_plan_matches_validation(void **state)
{
    (void) state;
    gs_gen_t *gen = s_small_district();
    gs_sim_opts_t o;
    s_noisy(&o);
    o.organisations = 1;
    size_t org_rejected = 0;
    gs_arena_t *a = gs_arena_new(0);
    gs_sim_tally_t t = { 0 };
    size_t rejected = 0, checked = 0;
    for (uint32_t g = 0; g < gs_gen_grid_count(gen); g++) {
        gs_sim_upload_t *u;
        size_t n;
        gs_arena_reset(a);
        assert_int_equal(gs_sim_plan_grid(&o, gen, g, a, &u, &n, &t), 0);
        for (size_t i = 0; i < n; i++) {
            assert_true(u[i].up->n_records >= 1 && u[i].up->n_records <= o.batch);
            for (size_t j = 0; j < u[i].up->n_records; j++) {
                gs_verdict_t v;
                int reason = gs_record_check(u[i].up->records[j], gs_arena_allocator(a), NULL,
                                             s_gen_now(), &v);
                const gs_sim_expect_t *e = &u[i].expect[j];
                const Gridsync__V1__Record *rec = u[i].up->records[j];
                if (e->status == S_REJECTED) {
                    int org = rec->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION &&
                              rec->organisation->uscc && *rec->organisation->uscc;
                    int want = org ? GRIDSYNC__V1__REASON__REASON_USCC_CHECK
                                   : GRIDSYNC__V1__REASON__REASON_ID_CHECK;
                    assert_int_equal(reason, want);
                    assert_int_equal(e->reason, want);
                    org_rejected += (size_t) org;
                    rejected++;
                } else {
                    if (reason)
                        fprintf(stderr, "unexpected verdict: %s\n", v.message);
                    assert_int_equal(reason, 0);
                }
                assert_non_null(e->record_key);
                checked++;
            }
        }
    }
    assert_int_equal(rejected, t.by_noise[GS_SIM_INVALID]);
    for (int k = 0; k < GS_SIM_RECORD_KINDS; k++)
        assert_true(t.by_noise[k] > 0);
    assert_true(t.retransmit > 0 && t.lost_ack > 0);
    assert_true(org_rejected > 0);
    /* each district record is accepted once (corrections included), plus
     * the first side of each conflicting edit */
    uint64_t district = gs_gen_household_count(gen) + gs_gen_rental_count(gen) +
                        gs_gen_org_count(gen);
    assert_int_equal(t.expected[S_ACCEPTED], district + t.by_noise[GS_SIM_CONFLICT]);
    assert_int_equal(t.expected[GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_UNCHANGED],
                     t.by_noise[GS_SIM_RECOLLECT]);
    assert_int_equal(t.expected[GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_MERGED],
                     t.by_noise[GS_SIM_NEW_ID]);
    assert_int_equal(t.expected[GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_CONFLICT],
                     t.by_noise[GS_SIM_CONFLICT]);
    assert_int_equal(t.records, checked);
    gs_arena_destroy(&a);
    gs_gen_destroy(&gen);
}

static int
s_cell_incidents(void *arg, const char *grid, const gs_cell_meta_t *m)
{
    (void) grid;
    *(uint64_t *) arg += m->incidents;
    return 0;
}

/* With incidents, the plan ends each grid with its incident reports, and a
 * real store answers every upload of every grid exactly as planned (the
 * noise an incident can carry: re-collected unchanged, two devices editing
 * the report); the cells then count each report once. */
static void
test_plan_with_incidents_through_a_store(void **state)
{
    (void) state;
    gs_gen_t *gen = s_small_district();
    gs_sim_opts_t o;
    s_noisy(&o);
    o.organisations = 1;
    o.incidents = 1;
    o.now_ms = s_gen_now();
    char dir[64], store[128];
    gs_tk_tmpdir(dir, sizeof dir);
    snprintf(store, sizeof store, "%s/store", dir);
    gs_store_t *st = gs_store_new(store, NULL, NULL);
    assert_non_null(st);
    gs_arena_t *a = gs_arena_new(0);
    uint64_t incidents = 0, seen_incidents = 0;
    for (uint32_t g = 0; g < gs_gen_grid_count(gen); g++) {
        gs_sim_upload_t *u;
        size_t n;
        gs_arena_reset(a);
        assert_int_equal(gs_sim_plan_grid(&o, gen, g, a, &u, &n, NULL), 0);
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < u[i].up->n_records; j++)
                if (u[i].up->records[j]->body_case == GRIDSYNC__V1__RECORD__BODY_INCIDENT &&
                    u[i].expect[j].status == S_ACCEPTED && u[i].expect[j].version == 1)
                    incidents++;
            gs_upload_t up = { u[i].up->device_id, u[i].up->upload_id, u[i].up->records,
                               u[i].up->n_records, gs_arena_allocator(a), NULL, 0, NULL, 1 };
            gs_apply_out_t out;
            assert_int_equal(gs_store_apply(st, &up, 1, o.now_ms, &out), 0);
            Gridsync__V1__Ack *ack = gridsync__v1__ack__unpack(NULL, out.uploads[0].ack_len,
                                                               out.uploads[0].ack);
            assert_non_null(ack);
            char detail[256];
            if (gs_sim_check(&u[i], ack, detail, sizeof detail))
                fail_msg("grid %u upload %zu: %s", g, i, detail);
            gridsync__v1__ack__free_unpacked(ack, NULL);
            gs_apply_out_clear(&out);
        }
    }
    assert_true(incidents >= gs_gen_grid_count(gen));
    assert_int_equal(gs_store_cells(st, "", s_cell_incidents, &seen_incidents), 0);
    assert_int_equal(seen_incidents, incidents);
    gs_store_destroy(&st);
    gs_arena_destroy(&a);
    gs_gen_destroy(&gen);
    gs_tk_rmtree(dir);
}

/* ID numbers, for counting the persons two districts share. */
typedef struct {
    char (*ids)[32];
    size_t n, cap;
} s_ids_t;

static void
s_ids_add(s_ids_t *s, const char *id)
{
    if (!id || !*id)
        return;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        s->ids = realloc(s->ids, s->cap * sizeof *s->ids);
        assert_non_null(s->ids);
    }
    snprintf(s->ids[s->n++], sizeof s->ids[0], "%s", id);
}

static int
s_id_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Sorted, each once. */
static void
s_ids_uniq(s_ids_t *s)
{
    qsort(s->ids, s->n, sizeof *s->ids, s_id_cmp);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if (k == 0 || strcmp(s->ids[k - 1], s->ids[i]) != 0)
            memmove(s->ids[k++], s->ids[i], sizeof s->ids[0]);
    s->n = k;
}

/* Cross-district duplicates: with twins_from, exactly tally.twins persons
 * of the other district (its own seed) are listed in this district's
 * records, each in one household, all records still valid; the same plan
 * twice is the same; without it, the two districts share no person. */
static void
test_twins_planted(void **state)
{
    (void) state;
    gs_gen_t *here = s_small_district();
    gs_gen_opts_t go;
    gs_gen_opts_init(&go);
    go.seed = 12;
    go.district = "440306";
    go.grids = 12;
    go.streets = 2;
    go.households = 900;
    go.rental_buildings = 40;
    go.organisations = 120;
    gs_gen_t *there = gs_gen_new(&go);
    assert_non_null(there);
    gs_arena_t *a = gs_arena_new(0);
    s_ids_t b = { 0 };
    for (uint32_t i = 0; i < gs_gen_household_count(there); i++) {
        gs_arena_reset(a);
        Gridsync__V1__Record *r = gs_gen_household(there, i, a);
        for (size_t k = 0; k < r->household->n_members; k++)
            s_ids_add(&b, r->household->members[k]->id_number);
    }
    s_ids_uniq(&b);
    for (int twins = 0; twins < 2; twins++) {
        gs_sim_opts_t o;
        s_noisy(&o);
        o.organisations = 1;
        o.twins_from = twins ? there : NULL;
        o.twins_pct = 5;
        gs_sim_tally_t t = { 0 };
        s_ids_t h = { 0 };
        for (uint32_t g = 0; g < gs_gen_grid_count(here); g++) {
            gs_sim_upload_t *u;
            size_t n;
            gs_arena_reset(a);
            assert_int_equal(gs_sim_plan_grid(&o, here, g, a, &u, &n, &t), 0);
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < u[i].up->n_records; j++) {
                    Gridsync__V1__Record *r = u[i].up->records[j];
                    gs_verdict_t v;
                    if (u[i].expect[j].status != S_REJECTED)
                        assert_int_equal(gs_record_check(r, gs_arena_allocator(a), NULL,
                                                         s_gen_now(), &v), 0);
                    if (r->body_case != GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD)
                        continue;
                    for (size_t k = 0; k < r->household->n_members; k++)
                        s_ids_add(&h, r->household->members[k]->id_number);
                }
        }
        s_ids_uniq(&h);
        size_t shared = 0;
        for (size_t i = 0; i < h.n; i++)
            shared += bsearch(h.ids[i], b.ids, b.n, sizeof *b.ids, s_id_cmp) != NULL;
        if (twins) {
            assert_true(t.twins > 10 && t.twins < 100);     /* about 5% of 900 */
            assert_int_equal(shared, t.twins);
        } else {
            assert_int_equal(t.twins, 0);
            assert_int_equal(shared, 0);
        }
        free(h.ids);
    }
    free(b.ids);
    gs_arena_destroy(&a);
    gs_gen_destroy(&there);
    gs_gen_destroy(&here);
}

/* The checker notices a wrong answer, and a retransmission ack that differs. */
static void
test_check_finds_differences(void **state)
{
    (void) state;
    gs_gen_t *gen = s_small_district();
    gs_sim_opts_t o;
    gs_sim_opts_init(&o);
    o.run_id = "t";
    gs_arena_t *a = gs_arena_new(0);
    gs_sim_upload_t *u;
    size_t n;
    assert_int_equal(gs_sim_plan_grid(&o, gen, 0, a, &u, &n, NULL), 0);
    size_t k = u[0].up->n_records;
    Gridsync__V1__RecordResult *res = calloc(k, sizeof *res);
    Gridsync__V1__RecordResult **resp = calloc(k, sizeof *resp);
    for (size_t i = 0; i < k; i++) {
        gridsync__v1__record_result__init(&res[i]);
        res[i].index = (uint32_t) i;
        res[i].status = (Gridsync__V1__ResultStatus) u[0].expect[i].status;
        res[i].reason = (Gridsync__V1__Reason) u[0].expect[i].reason;
        res[i].version = u[0].expect[i].version;
        res[i].record_key = (char *) u[0].expect[i].record_key;
        res[i].seq = u[0].expect[i].has_seq ? 100 + i : 0;
        resp[i] = &res[i];
    }
    Gridsync__V1__Ack ack = GRIDSYNC__V1__ACK__INIT;
    ack.upload_id = u[0].up->upload_id;
    ack.results = resp;
    ack.n_results = k;
    char detail[512];
    assert_int_equal(gs_sim_check(&u[0], &ack, detail, sizeof detail), 0);
    assert_int_equal(gs_sim_ack_same(&ack, &ack, detail, sizeof detail), 0);

    Gridsync__V1__Ack again = ack;
    Gridsync__V1__RecordResult **resp2 = calloc(k, sizeof *resp2);
    Gridsync__V1__RecordResult moved = res[k - 1];
    memcpy(resp2, resp, k * sizeof *resp2);
    moved.seq += 1000;
    resp2[k - 1] = &moved;
    again.results = resp2;
    assert_int_equal(gs_sim_ack_same(&ack, &again, detail, sizeof detail), 1);
    assert_non_null(strstr(detail, "retransmission"));

    /* a record the broker says it already had */
    res[1].status = GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_UNCHANGED;
    res[1].seq = 0;
    assert_int_equal(gs_sim_check(&u[0], &ack, detail, sizeof detail), 1);
    assert_non_null(strstr(detail, "got UNCHANGED"));
    /* a wrong upload id is an envelope error */
    ack.upload_id = (char *) "other";
    assert_int_equal(gs_sim_check(&u[0], &ack, detail, sizeof detail), 1);
    free(resp2);
    free(resp);
    free(res);
    gs_arena_destroy(&a);
    gs_gen_destroy(&gen);
}

/* ---- gridsim against a real broker ------------------------------------------------ */

typedef struct {
    char dir[64];               /* temp dir */
    char store[128];            /* broker store */
    gs_tk_broker_t broker;      /* the daemon */
} s_env_t;

static int
s_setup(void **state)
{
    s_env_t *e = calloc(1, sizeof *e);
    gs_tk_tmpdir(e->dir, sizeof e->dir);
    snprintf(e->store, sizeof e->store, "%s/store", e->dir);
    if (gs_tk_broker_start(&e->broker, e->store, NULL))
        return -1;
    *state = e;
    return 0;
}

static int
s_teardown(void **state)
{
    s_env_t *e = *state;
    int st = gs_tk_broker_stop(&e->broker, SIGTERM);
    gs_tk_rmtree(e->dir);
    free(e);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* Run gridsim with args (NULL-terminated); its stdout into out (malloc'd),
 * its stderr into the file err_path. Returns the wait status. */
static int
s_gridsim(const char *const *args, char **out, const char *err_path)
{
    const char *argv[64];
    int argc = 0;
    argv[argc++] = GS_GRIDSIM;
    for (int i = 0; args[i] && argc < 63; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], STDOUT_FILENO);
        int ef = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (ef >= 0)
            dup2(ef, STDERR_FILENO);
        close(pfd[0]);
        execv(GS_GRIDSIM, (char *const *) argv);
        _exit(127);
    }
    close(pfd[1]);
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    ssize_t n;
    while ((n = read(pfd[0], buf + len, cap - len - 1)) > 0) {
        len += (size_t) n;
        if (cap - len < 1024)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    close(pfd[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    *out = buf;
    return st;
}

/* The number after "key": in a one-line JSON object whose keys are unique. */
static uint64_t
s_json_u64(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (!p) {
        fprintf(stderr, "no %s in %s\n", key, json);
        fail();
    }
    return strtoull(p + strlen(pat), NULL, 10);
}

/* All events of the store through the sync service, in order. */
static size_t
s_log_seqs(const char *endpoint, uint64_t **seqs_out)
{
    gs_client_t *c = gs_client_new(endpoint, NULL);
    assert_non_null(c);
    const char *all[] = { "" };
    uint64_t since = 0, *seqs = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        Gridsync__V1__SyncResponse *r = NULL;
        gs_client_error_t err;
        assert_int_equal(gs_client_sync(c, all, 1, since, 0, 0, &r, &err), 0);
        for (size_t i = 0; i < r->n_events; i++) {
            if (n == cap)
                seqs = realloc(seqs, (cap = cap ? cap * 2 : 1024) * sizeof *seqs);
            seqs[n++] = r->events[i]->seq;
        }
        int done = r->next_seq >= r->head_seq || (r->n_events == 0 && r->next_seq <= since);
        since = r->next_seq;
        gridsync__v1__sync_response__free_unpacked(r, NULL);
        if (done)
            break;
    }
    gs_client_destroy(&c);
    *seqs_out = seqs;
    return n;
}

/* Records in the store, counted through snapshot pages. */
static size_t
s_record_count(const char *endpoint)
{
    gs_client_t *c = gs_client_new(endpoint, NULL);
    assert_non_null(c);
    const char *all[] = { "" };
    uint8_t *cursor = NULL;
    size_t cursor_len = 0, n = 0;
    for (;;) {
        Gridsync__V1__SnapshotResponse *r = NULL;
        gs_client_error_t err;
        assert_int_equal(gs_client_snapshot(c, all, 1, cursor, cursor_len, 0, &r, &err), 0);
        n += r->n_entries;
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
    return n;
}

#define S_NOISY_ARGS                                                                  \
    "--scale", "0.01", "--devices", "3", "--batch", "25", "--seed", "7",              \
    "--retransmit", "10", "--lost-ack", "10", "--invalid", "5", "--recollect", "5",   \
    "--new-id", "5", "--conflict", "5", "--json", "--quiet"

/* The fleet reports incidents (--incidents), then --workflow takes each
 * through its planned steps as the grids' devices, an enrolled centre and
 * the departments enrolled under their codes: every step acked as planned
 * by a real broker. --workflow with --keys is refused. */
static void
test_incident_workflow_against_the_broker(void **state)
{
    s_env_t *e = *state;
    char err_path[128];
    snprintf(err_path, sizeof err_path, "%s/gridsim.err", e->dir);
    const char *fleet[] = { "--endpoint", e->broker.upload, "--run-id", "inc", "--incidents",
                            S_NOISY_ARGS, NULL };
    char *json = NULL;
    int st = s_gridsim(fleet, &json, err_path);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(s_json_u64(json, "expectation_errors"), 0);
    free(json);
    /* the registry: a centre, and a department per category */
    gs_store_t *reg = gs_store_new(e->store, NULL, NULL);
    assert_non_null(reg);
    char *pfx[1] = { "440305" };
    Gridsync__V1__Device d = GRIDSYNC__V1__DEVICE__INIT;
    d.device_id = "centre-sim";
    d.role = GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_CENTRE;
    d.prefixes = pfx;
    d.n_prefixes = 1;
    assert_int_equal(gs_store_device_put(reg, &d), 0);
    static const char *cats[] = { "01", "02", "03", "04", "05", "06", "99" };
    for (size_t i = 0; i < sizeof cats / sizeof cats[0]; i++) {
        char *c[1] = { (char *) cats[i] };
        d.device_id = d.department = (char *) gs_gen_inc_department(cats[i]);
        d.role = GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEPARTMENT;
        d.categories = c;
        d.n_categories = 1;
        assert_int_equal(gs_store_device_put(reg, &d), 0);
    }
    gs_store_destroy(&reg);
    const char *flow[] = { "--endpoint", e->broker.upload, "--run-id", "incw", "--workflow",
                           S_NOISY_ARGS, NULL };
    st = s_gridsim(flow, &json, err_path);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char *err = gs_tk_read_file(err_path, NULL, 1);
        fprintf(stderr, "gridsim --workflow: %s\n%s\n", json, err);
        free(err);
    }
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(s_json_u64(json, "expectation_errors"), 0);
    assert_int_equal(s_json_u64(json, "transport_errors"), 0);
    assert_true(s_json_u64(json, "incident_steps") > 0);
    free(json);
    const char *keys[] = { "--endpoint", e->broker.upload, "--keys", err_path, "--workflow",
                           "--quiet", NULL };
    st = s_gridsim(keys, &json, err_path);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    free(json);
    char *err = gs_tk_read_file(err_path, NULL, 0);
    assert_non_null(strstr(err, "--workflow uploads in the names of the centre"));
    free(err);
}

/* All noise on: every ack as expected, counts consistent, and the store
 * holds each district record once with one event per accepted change. */
static void
test_noisy_fleet_all_as_expected(void **state)
{
    s_env_t *e = *state;
    char err_path[128];
    snprintf(err_path, sizeof err_path, "%s/gridsim.err", e->dir);
    const char *args[] = { "--endpoint", e->broker.upload, "--run-id", "first",
                           S_NOISY_ARGS, NULL };
    char *json = NULL;
    int st = s_gridsim(args, &json, err_path);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "gridsim: %s\n", json);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(s_json_u64(json, "expectation_errors"), 0);
    assert_int_equal(s_json_u64(json, "transport_errors"), 0);
    uint64_t accepted = s_json_u64(json, "accepted"), unchanged = s_json_u64(json, "unchanged");
    uint64_t merged = s_json_u64(json, "merged"), conflict = s_json_u64(json, "conflict");
    uint64_t rejected = s_json_u64(json, "rejected");
    assert_int_equal(accepted + unchanged + merged + conflict + rejected,
                     s_json_u64(json, "records_sent"));
    const char *noise[] = { "retransmissions", "lost_acks", "invalid", "recollections",
                            "new_ids", "conflicts" };
    for (size_t i = 0; i < sizeof noise / sizeof noise[0]; i++)
        assert_true(s_json_u64(json, noise[i]) > 0);
    assert_true(unchanged > 0 && merged > 0 && conflict > 0 && rejected > 0);

    /* the store: one event per accepted change, seqs 1..N without holes */
    assert_true(s_json_u64(json, "organisations") > 0);
    uint64_t district = s_json_u64(json, "households") + s_json_u64(json, "rentals") +
                        s_json_u64(json, "organisations");
    uint64_t events = s_json_u64(json, "events");
    assert_int_equal(events, district + s_json_u64(json, "conflicts"));
    uint64_t *seqs = NULL;
    size_t n = s_log_seqs(e->broker.upload, &seqs);
    assert_int_equal(n, events);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(seqs[i], i + 1);
    assert_int_equal(s_json_u64(json, "max_seq"), n);
    free(seqs);
    /* merges made no second record: one per household, rental unit or
     * organisation */
    assert_int_equal(s_record_count(e->broker.upload), district);
    free(json);
}

/* gridsim catches a broker that answers differently from the model: the
 * same district again under new upload ids finds every record already
 * stored, which must count as wrong answers and fail the run. The same
 * upload ids again are retransmissions and are answered as the first time. */
static void
test_wrong_answers_fail_the_run(void **state)
{
    s_env_t *e = *state;
    char err_path[128];
    snprintf(err_path, sizeof err_path, "%s/gridsim.err", e->dir);
    const char *first[] = { "--endpoint", e->broker.upload, "--run-id", "day1",
                            S_NOISY_ARGS, NULL };
    char *j1 = NULL;
    int st = s_gridsim(first, &j1, err_path);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    uint64_t head = s_json_u64(j1, "max_seq");
    assert_true(head > 0);

    /* new upload ids, same records: fresh records come back UNCHANGED */
    const char *second[] = { "--endpoint", e->broker.upload, "--run-id", "day2",
                             S_NOISY_ARGS, NULL };
    char *j2 = NULL;
    st = s_gridsim(second, &j2, err_path);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    assert_true(s_json_u64(j2, "expectation_errors") > 0);
    assert_int_equal(s_json_u64(j2, "accepted"), 0);
    assert_int_equal(s_json_u64(j2, "events"), 0);
    FILE *f = fopen(err_path, "r");
    assert_non_null(f);
    char line[1024];
    int detailed = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "expectation error") && strstr(line, "expected ACCEPTED") &&
            strstr(line, "got UNCHANGED"))
            detailed++;
    fclose(f);
    assert_true(detailed > 0);

    /* the first day's upload ids again: every answer is the stored one */
    char *j3 = NULL;
    st = s_gridsim(first, &j3, err_path);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(s_json_u64(j3, "expectation_errors"), 0);
    assert_int_equal(s_json_u64(j3, "max_seq"), head);
    assert_int_equal(s_json_u64(j3, "accepted"), s_json_u64(j1, "accepted"));
    uint64_t *seqs = NULL;
    assert_int_equal(s_log_seqs(e->broker.upload, &seqs), head); /* nothing new stored */
    free(seqs);
    free(j1);
    free(j2);
    free(j3);
}

/* Bad arguments exit 2; a broker that never answers exits 1. */
static void
test_exit_codes(void **state)
{
    s_env_t *e = *state;
    char err_path[128];
    snprintf(err_path, sizeof err_path, "%s/gridsim.err", e->dir);
    const char *bad[][4] = {
        { "--invalid", "150", NULL },
        { "--scale", "0", NULL },
        { "--invalid", "60", "--recollect", "60" },
        { "--no-such-option", NULL },
        { "--run-id", "has space", NULL },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[6] = { bad[i][0], bad[i][1], bad[i][2], bad[i][3], NULL, NULL };
        char *out = NULL;
        int st = s_gridsim(args, &out, err_path);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 2);
        free(out);
    }
    /* a TCP port that accepts connections and never says a word */
    char ep[64];
    int ls = gs_tk_listen_silent(ep, sizeof ep);
    const char *dead[] = { "--endpoint", ep, "--scale", "0.01", "--timeout-ms", "100",
                           "--retries", "1", "--json", "--quiet", NULL };
    char *out = NULL;
    int st = s_gridsim(dead, &out, err_path);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    assert_true(s_json_u64(out, "transport_errors") > 0);
    free(out);
    close(ls);
}

/* Start gridsim with args, stdout to out_path and stderr to err_path. */
static pid_t
s_gridsim_start(const char *const *args, const char *out_path, const char *err_path)
{
    const char *argv[64];
    int argc = 0;
    argv[argc++] = GS_GRIDSIM;
    for (int i = 0; args[i] && argc < 63; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int of = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int ef = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (of >= 0)
            dup2(of, STDOUT_FILENO);
        if (ef >= 0)
            dup2(ef, STDERR_FILENO);
        execv(GS_GRIDSIM, (char *const *) argv);
        _exit(127);
    }
    return pid;
}

static int
s_setup_curve(void **state)
{
    s_env_t *e = calloc(1, sizeof *e);
    gs_tk_tmpdir(e->dir, sizeof e->dir);
    snprintf(e->store, sizeof e->store, "%s/store", e->dir);
    if (gs_tk_broker_start_mode(&e->broker, e->store, NULL, 1))
        return -1;
    *state = e;
    return 0;
}

/* The default broker runs CURVE. gridsim --keys with the bundle of an
 * enrolled device uploads and gets every ack as expected, connecting to
 * the endpoint the bundle names; without keys, or with a key the broker
 * does not know, it stops at once with a message about the handshake and
 * CURVE, not a bare timeout, and within its budget. */
static void
test_curve_broker(void **state)
{
    s_env_t *e = *state;
    char bundle[128], stranger[160], args[1024], out_path[128], err_path[128];
    snprintf(bundle, sizeof bundle, "%s/sim.bundle", e->dir);
    snprintf(stranger, sizeof stranger, "%s/stranger.bundle", e->dir);
    snprintf(out_path, sizeof out_path, "%s/gridsim.out", e->dir);
    snprintf(err_path, sizeof err_path, "%s/gridsim.err", e->dir);
    snprintf(args, sizeof args, "devices enrol dev-sim --collector col-sim --prefix 440305 "
             "--bundle %s --endpoint %s --feed-endpoint %s", bundle, e->broker.upload,
             e->broker.feed);
    assert_int_equal(gs_tk_gridctl(e->store, args), 0);

    /* the enrolled bundle: no --endpoint, the bundle's is used */
    const char *ok[] = { "--keys", bundle, "--scale", "0.005", "--devices", "2", "--seed", "3",
                         "--json", "--quiet", NULL };
    int st = gs_tk_wait_exit(s_gridsim_start(ok, out_path, err_path), "gridsim",
                             S_EXIT_PATIENCE_MS);
    char *json = gs_tk_read_file(out_path, NULL, 0), *err = gs_tk_read_file(err_path, NULL, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "gridsim: %s\n%s\n", json, err);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(s_json_u64(json, "uploads") > 0);
    assert_int_equal(s_json_u64(json, "transport_errors"), 0);
    assert_int_equal(s_json_u64(json, "expectation_errors"), 0);
    free(json);
    free(err);

    /* plaintext against CURVE: the message names the mismatch */
    /* the refusal ends the wait at once: a long timeout only keeps a slow
     * broker (valgrind) from being taken for a silent one */
    const char *plain[] = { "--endpoint", e->broker.upload, "--scale", "0.005", "--devices",
                            "8", "--timeout-ms", "20000", "--retries", "1", "--json",
                            "--quiet", NULL };
    st = gs_tk_wait_exit(s_gridsim_start(plain, out_path, err_path), "gridsim",
                         S_EXIT_PATIENCE_MS);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    err = gs_tk_read_file(err_path, NULL, 0);
    if (!strstr(err, "handshake refused") || !strstr(err, "CURVE"))
        fprintf(stderr, "gridsim said: %s\n", err);
    assert_non_null(strstr(err, "handshake refused"));
    assert_non_null(strstr(err, "CURVE"));
    free(err);

    /* a key the broker never enrolled */
    char pub[41], sec[41];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    FILE *f = fopen(stranger, "w");
    assert_non_null(f);
    fprintf(f, "device_id = dev-sim\nupload_endpoint = %s\nserver_public = %s\n"
            "public_key = %s\nsecret_key = %s\n", e->broker.upload, e->broker.server_key,
            pub, sec);
    fclose(f);
    const char *unknown[] = { "--keys", stranger, "--scale", "0.005", "--timeout-ms", "20000",
                              "--retries", "1", "--json", "--quiet", NULL };
    st = gs_tk_wait_exit(s_gridsim_start(unknown, out_path, err_path), "gridsim",
                         S_EXIT_PATIENCE_MS);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    err = gs_tk_read_file(err_path, NULL, 0);
    if (!strstr(err, "handshake refused: is the key enrolled"))
        fprintf(stderr, "gridsim said: %s\n", err);
    assert_non_null(strstr(err, "handshake refused: is the key enrolled / is the broker in "
                                "CURVE mode?"));
    free(err);

    /* an unreadable bundle is a setup failure */
    const char *missing[] = { "--keys", "/nonexistent/bundle", NULL };
    st = gs_tk_wait_exit(s_gridsim_start(missing, out_path, err_path), "gridsim",
                         S_EXIT_PATIENCE_MS);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
}

/* Nothing listening at the endpoint: with --timeout-ms 1000 --retries 1
 * gridsim gives up and exits 1, its message naming the connection. */
static void
test_nothing_listening(void **state)
{
    s_env_t *e = *state;
    char out_path[128], err_path[128], ep[64];
    snprintf(out_path, sizeof out_path, "%s/gridsim.out", e->dir);
    snprintf(err_path, sizeof err_path, "%s/gridsim.err", e->dir);
    /* a port bound and never listened on: connections to it are refused,
     * and no other program (another test's broker) can take it meanwhile */
    int hold = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(hold >= 0);
    struct sockaddr_in sin = { .sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof sin;
    assert_int_equal(bind(hold, (struct sockaddr *) &sin, sizeof sin), 0);
    assert_int_equal(getsockname(hold, (struct sockaddr *) &sin, &sl), 0);
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", ntohs(sin.sin_port));
    const char *dead[] = { "--endpoint", ep, "--scale", "0.005", "--timeout-ms", "1000",
                           "--retries", "1", "--json", "--quiet", NULL };
    int st = gs_tk_wait_exit(s_gridsim_start(dead, out_path, err_path), "gridsim",
                             S_EXIT_PATIENCE_MS);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    char *err = gs_tk_read_file(err_path, NULL, 0);
    assert_non_null(strstr(err, "could not connect"));
    free(err);
    close(hold);
}

/* SIGTERM while every device waits for a broker that never answers (a
 * TCP port that accepts and stays silent, timeouts of ten minutes):
 * gridsim stops at once, says so, and exits 1. It is signalled once it has
 * connected (the listener accepted), so it is waiting inside the client. */
static void
test_sigterm_while_waiting(void **state)
{
    s_env_t *e = *state;
    char out_path[128], err_path[128], ep[64];
    snprintf(out_path, sizeof out_path, "%s/gridsim.out", e->dir);
    snprintf(err_path, sizeof err_path, "%s/gridsim.err", e->dir);
    int ls = gs_tk_listen_silent(ep, sizeof ep);
    const char *args[] = { "--endpoint", ep, "--scale", "0.005", "--devices", "2",
                           "--timeout-ms", "600000", "--retries", "5", "--json", "--quiet",
                           NULL };
    pid_t pid = s_gridsim_start(args, out_path, err_path);
    struct pollfd p = { .fd = ls, .events = POLLIN };
    assert_int_equal(poll(&p, 1, S_EXIT_PATIENCE_MS), 1); /* gridsim connected */
    int c = accept(ls, NULL, NULL);
    assert_true(c >= 0);
    kill(pid, SIGTERM);
    int st = gs_tk_wait_exit(pid, "gridsim", S_EXIT_PATIENCE_MS);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    char *err = gs_tk_read_file(err_path, NULL, 0), *json = gs_tk_read_file(out_path, NULL, 0);
    assert_non_null(strstr(err, "interrupted"));
    assert_non_null(strstr(json, "\"interrupted\":true"));
    assert_int_equal(s_json_u64(json, "transport_errors"), 0);
    free(err);
    free(json);
    close(c);
    close(ls);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_is_deterministic),
        cmocka_unit_test(test_plan_matches_validation),
        cmocka_unit_test(test_plan_with_incidents_through_a_store),
        cmocka_unit_test(test_check_finds_differences),
        cmocka_unit_test(test_twins_planted),
        cmocka_unit_test_setup_teardown(test_noisy_fleet_all_as_expected, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_incident_workflow_against_the_broker, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_answers_fail_the_run, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_exit_codes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_curve_broker, s_setup_curve, s_teardown),
        cmocka_unit_test_setup_teardown(test_nothing_listening, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_while_waiting, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("gridsim", tests, NULL, NULL);
}

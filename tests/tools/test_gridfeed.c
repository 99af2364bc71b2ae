/*
 * test_gridfeed: the district subscriber end to end against the real
 * gridsyncd.
 *
 * A small generated district is uploaded through the client library (plus
 * edits and a move between streets), and the gridfeed binary (GS_GRIDFEED)
 * follows prefixes into an output file. Its lines are compared with the
 * store's change log read through the sync service: the same seqs, once
 * each, after clean runs, a crash between writing and checkpointing, a
 * SIGKILL while following live, and a SIGTERM. ID numbers and phones are
 * masked unless --reveal. A store restored from an older backup makes
 * gridfeed stop (status 3) or re-baseline. A department (CURVE, its own
 * key) follows its categories with --category while households, rental
 * units and incidents of every category are uploaded, is SIGKILLed twice
 * mid-stream and resumed from its checkpoint, and ends with exactly the
 * incident events of its categories and area, each once, the last of them
 * taken live. The tests wait
 * on process exits and on lines gridfeed prints (--verbose), never on
 * time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gs_arena.h"
#include "gs_client.h"
#include "gs_gen.h"
#include "gs_gen_incident.h"
#include "gs_grid.h"
#include "gs_store.h"
#include "gs_testkit.h"

#ifndef GS_GRIDFEED
#error "GS_GRIDFEED must name the gridfeed binary"
#endif
#ifndef GS_GRIDCTL
#error "GS_GRIDCTL must name the gridctl binary"
#endif

/* How long a test waits for a line or an exit that must come: far beyond
 * any setting it uses, so only a hang reaches it. */
#define S_PATIENCE_MS 60000

#define S_SECRETS 16            /* raw ID numbers and phones remembered per kind */

typedef struct {
    char dir[64];               /* temp dir */
    char store[128];            /* broker store */
    gs_tk_broker_t broker;      /* the daemon */
    gs_gen_t *gen;              /* the district */
    gs_arena_t *arena;          /* records being uploaded */
    gs_client_t *cli;           /* uploads and sync */
    char street1[16], street2[16]; /* the district's two street prefixes */
    char ids[S_SECRETS][19];    /* raw resident ID numbers of street 1 */
    char phones[S_SECRETS][32]; /* raw phones of street 1 */
    int n_ids, n_phones;
    uint64_t head;              /* last seq acked */
    int uploads;                /* upload ids used */
} s_env_t;

static int
s_setup(void **state)
{
    s_env_t *e = calloc(1, sizeof *e);
    gs_tk_tmpdir(e->dir, sizeof e->dir);
    snprintf(e->store, sizeof e->store, "%s/store", e->dir);
    if (gs_tk_broker_start(&e->broker, e->store, NULL))
        return -1;
    gs_gen_opts_t go;
    gs_gen_opts_init(&go);
    go.seed = 3;
    go.streets = 2;
    go.grids = 8;
    go.households = 400;
    go.rental_buildings = 16;
    e->gen = gs_gen_new(&go);
    e->arena = gs_arena_new(0);
    e->cli = gs_client_new(e->broker.upload, NULL);
    if (!e->gen || !e->arena || !e->cli)
        return -1;
    snprintf(e->street1, sizeof e->street1, "%.9s", gs_gen_grid_code(e->gen, 0));
    snprintf(e->street2, sizeof e->street2, "%.9s",
             gs_gen_grid_code(e->gen, gs_gen_grid_count(e->gen) - 1));
    *state = e;
    return strcmp(e->street1, e->street2) ? 0 : -1;
}

static int
s_teardown(void **state)
{
    s_env_t *e = *state;
    gs_client_destroy(&e->cli);
    int st = gs_tk_broker_stop(&e->broker, SIGTERM);
    gs_arena_destroy(&e->arena);
    gs_gen_destroy(&e->gen);
    gs_tk_rmtree(e->dir);
    free(e);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* Remember raw personal data of street-1 records, to look for in output. */
static void
s_remember(s_env_t *e, const Gridsync__V1__Record *r)
{
    if (r->body_case != GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD ||
        !gs_grid_prefix_covers(e->street1, r->household->grid_code))
        return;
    for (size_t i = 0; i < r->household->n_members; i++) {
        const Gridsync__V1__Person *p = r->household->members[i];
        if (e->n_ids < S_SECRETS && p->id_type == GRIDSYNC__V1__ID_TYPE__ID_TYPE_RESIDENT_CARD &&
            strlen(p->id_number) == 18)
            snprintf(e->ids[e->n_ids++], sizeof e->ids[0], "%s", p->id_number);
        if (e->n_phones < S_SECRETS && p->n_phones && strlen(p->phones[0]) == 11)
            snprintf(e->phones[e->n_phones++], sizeof e->phones[0], "%s", p->phones[0]);
    }
}

/* Upload records; all must be accepted. */
static void
s_upload(s_env_t *e, Gridsync__V1__Record **recs, size_t n)
{
    char uid[32];
    snprintf(uid, sizeof uid, "feedtest-%d", ++e->uploads);
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = (char *) "dev-feedtest";
    up.upload_id = uid;
    up.records = recs;
    up.n_records = n;
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t err;
    assert_int_equal(gs_client_upload(e->cli, &up, &ack, &err), 0);
    assert_int_equal(ack->n_results, n);
    for (size_t i = 0; i < n; i++) {
        if (ack->results[i]->status != GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED)
            fprintf(stderr, "record %zu: %s\n", i, ack->results[i]->message);
        assert_int_equal(ack->results[i]->status,
                         GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
        if (ack->results[i]->seq > e->head)
            e->head = ack->results[i]->seq;
    }
    gridsync__v1__ack__free_unpacked(ack, NULL);
}

/* Upload every record of grids [g0, g1), 60 per upload. */
static void
s_upload_grids(s_env_t *e, uint32_t g0, uint32_t g1)
{
    Gridsync__V1__Record *recs[60];
    size_t n = 0;
    for (uint32_t g = g0; g < g1; g++) {
        uint32_t hf, hn, rf, rn;
        gs_gen_grid_households(e->gen, g, &hf, &hn);
        gs_gen_grid_rentals(e->gen, g, &rf, &rn);
        for (uint32_t i = 0; i < hn + rn; i++) {
            recs[n] = i < hn ? gs_gen_household(e->gen, hf + i, e->arena)
                             : gs_gen_rental(e->gen, rf + i - hn, e->arena);
            assert_non_null(recs[n]);
            s_remember(e, recs[n]);
            if (++n == 60) {
                s_upload(e, recs, n);
                gs_arena_reset(e->arena);
                n = 0;
            }
        }
    }
    if (n)
        s_upload(e, recs, n);
    gs_arena_reset(e->arena);
}

/* Edit one household of grid 0 and move another to the last grid (another
 * street): UPSERT v2, then MOVE_OUT in street 1 and MOVE_IN in street 2. */
static void
s_edit_and_move(s_env_t *e)
{
    uint32_t hf, hn;
    gs_gen_grid_households(e->gen, 0, &hf, &hn);
    Gridsync__V1__Record *ed = gs_gen_household(e->gen, hf, e->arena);
    ed->household->meta->base_version = 1;
    ed->household->address = gs_arena_strdup(e->arena, "改过的地址");
    Gridsync__V1__Record *mv = NULL;
    for (uint32_t i = 1; i < hn && !mv; i++) {
        Gridsync__V1__Record *r = gs_gen_household(e->gen, hf + i, e->arena);
        if (r->household->address_code && *r->household->address_code)
            mv = r; /* a natural key that does not depend on the grid */
    }
    assert_non_null(mv);
    mv->household->meta->base_version = 1;
    mv->household->grid_code = gs_arena_strdup(
        e->arena, gs_gen_grid_code(e->gen, gs_gen_grid_count(e->gen) - 1));
    Gridsync__V1__Record *recs[2] = { ed, mv };
    s_upload(e, recs, 2);
    gs_arena_reset(e->arena);
}

/* The change log's seqs for prefixes, in order, through the sync service. */
static size_t
s_log_seqs(s_env_t *e, const char *const *prefixes, size_t np, uint64_t **out)
{
    uint64_t since = 0, *seqs = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        Gridsync__V1__SyncResponse *r = NULL;
        gs_client_error_t err;
        assert_int_equal(gs_client_sync(e->cli, prefixes, np, since, 0, 0, &r, &err), 0);
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
    *out = seqs;
    return n;
}

/* The seqs of an output file's lines, in file order; every line must be a
 * whole JSON object. */
static size_t
s_out_seqs(const char *path, uint64_t **out)
{
    char *text = gs_tk_read_file(path, NULL, 0);
    uint64_t *seqs = NULL;
    size_t n = 0, cap = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl); /* no partial last line */
        assert_memory_equal(line, "{\"seq\":", 7);
        assert_true(nl[-1] == '}');
        if (n == cap)
            seqs = realloc(seqs, (cap = cap ? cap * 2 : 1024) * sizeof *seqs);
        seqs[n++] = strtoull(line + 7, NULL, 10);
        line = nl + 1;
    }
    free(text);
    *out = seqs;
    return n;
}

static void
s_assert_same_seqs(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
    if (na != nb)
        fprintf(stderr, "output has %zu events, change log %zu\n", na, nb);
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++)
        assert_int_equal(a[i], b[i]);
}

/* Start gridfeed with args, after the broker's endpoints if endpoints;
 * *err_fd (if not NULL) gets a pipe of its stderr, else stderr goes to the
 * test's. */
static pid_t
s_spawn_with(s_env_t *e, int endpoints, const char *const *args, int *err_fd)
{
    const char *argv[64];
    int argc = 0;
    argv[argc++] = GS_GRIDFEED;
    if (endpoints) {
        argv[argc++] = "--feed";
        argv[argc++] = e->broker.feed;
        argv[argc++] = "--upload";
        argv[argc++] = e->broker.upload;
    }
    for (int i = 0; args[i] && argc < 63; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    return gs_tk_spawn(argv, err_fd);
}

/* The same, always after the broker's endpoints. */
static pid_t
s_spawn(s_env_t *e, const char *const *args, int *err_fd)
{
    return s_spawn_with(e, 1, args, err_fd);
}

/* Run gridfeed to completion; returns the wait status. */
static int
s_run(s_env_t *e, const char *const *args)
{
    pid_t pid = s_spawn(e, args, NULL);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return st;
}

static void
s_assert_exit(int st, int code)
{
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), code);
}

/* Read stderr lines until one contains want (and, if min > 0, says at
 * least min events were written). Fails if gridfeed ends first. */
static void
s_wait_line(FILE *err, const char *want, uint64_t min)
{
    char line[512];
    while (fgets(line, sizeof line, err)) {
        const char *p = strstr(line, want);
        if (!p)
            continue;
        if (min == 0)
            return;
        const char *w = strstr(line, "checkpoint: ");
        if (w && strtoull(w + 12, NULL, 10) >= min)
            return;
    }
    fail_msg("gridfeed ended before printing '%s'", want);
}

static char s_head_arg[32];

static const char *
s_head(const s_env_t *e)
{
    snprintf(s_head_arg, sizeof s_head_arg, "%llu", (unsigned long long) e->head);
    return s_head_arg;
}

/* One street, then both: the output is the change log for the prefixes,
 * every event once; moves show up on both sides; personal data masked
 * unless --reveal. */
static void
test_output_matches_change_log(void **state)
{
    s_env_t *e = *state;
    s_upload_grids(e, 0, gs_gen_grid_count(e->gen));
    s_edit_and_move(e);
    char out1[128], out2[128], out3[128], ck[128];
    snprintf(out1, sizeof out1, "%s/street1.jsonl", e->dir);
    snprintf(out2, sizeof out2, "%s/both.jsonl", e->dir);
    snprintf(out3, sizeof out3, "%s/revealed.jsonl", e->dir);
    snprintf(ck, sizeof ck, "%s/street1.ckpt", e->dir);

    const char *a1[] = { "--prefix", e->street1, "--output", out1, "--checkpoint", ck,
                         "--until-seq", s_head(e), "--quiet", NULL };
    s_assert_exit(s_run(e, a1), 0);
    uint64_t *got, *want;
    const char *p1[] = { e->street1 };
    size_t ng = s_out_seqs(out1, &got), nw = s_log_seqs(e, p1, 1, &want);
    assert_true(nw > 100);
    s_assert_same_seqs(got, ng, want, nw);
    free(got);
    free(want);

    char *text = gs_tk_read_file(out1, NULL, 0);
    assert_non_null(strstr(text, "\"op\":\"move_out\""));
    assert_null(strstr(text, "\"op\":\"move_in\""));
    assert_non_null(strstr(text, "\"version\":2"));
    assert_non_null(strstr(text, "********")); /* masked ID numbers */
    assert_true(e->n_ids > 0 && e->n_phones > 0);
    for (int i = 0; i < e->n_ids; i++)
        assert_null(strstr(text, e->ids[i]));
    for (int i = 0; i < e->n_phones; i++)
        assert_null(strstr(text, e->phones[i]));
    free(text);

    /* a second run on the same checkpoint finds nothing new to write */
    struct stat st1, st2;
    assert_int_equal(stat(out1, &st1), 0);
    s_assert_exit(s_run(e, a1), 0);
    assert_int_equal(stat(out1, &st2), 0);
    assert_int_equal(st1.st_size, st2.st_size);

    /* two streets at once: each event of either, once */
    const char *a2[] = { "--prefix", e->street1, "--prefix", e->street2, "--output", out2,
                         "--until-seq", s_head(e), "--quiet", NULL };
    s_assert_exit(s_run(e, a2), 0);
    const char *all[] = { e->street1, e->street2 };
    ng = s_out_seqs(out2, &got);
    nw = s_log_seqs(e, all, 2, &want);
    assert_int_equal(nw, e->head); /* the district is these two streets */
    int *seen = calloc(e->head + 1, sizeof *seen);
    for (size_t i = 0; i < ng; i++) {
        assert_true(got[i] >= 1 && got[i] <= e->head);
        assert_int_equal(seen[got[i]]++, 0);
    }
    assert_int_equal(ng, nw);
    free(seen);
    free(got);
    free(want);
    text = gs_tk_read_file(out2, NULL, 0);
    assert_non_null(strstr(text, "\"op\":\"move_in\""));
    assert_non_null(strstr(text, "\"previous_grid_code\":\""));
    free(text);

    /* --reveal writes them as they are */
    const char *a3[] = { "--prefix", e->street1, "--output", out3, "--until-seq", s_head(e),
                         "--reveal", "--quiet", NULL };
    s_assert_exit(s_run(e, a3), 0);
    text = gs_tk_read_file(out3, NULL, 0);
    for (int i = 0; i < e->n_ids; i++)
        assert_non_null(strstr(text, e->ids[i]));
    for (int i = 0; i < e->n_phones; i++)
        assert_non_null(strstr(text, e->phones[i]));
    free(text);
}

/* Killed after writing lines and before checkpointing them: the restart
 * cuts them off and writes them again, so nothing is doubled or lost. */
static void
test_crash_between_write_and_checkpoint(void **state)
{
    s_env_t *e = *state;
    s_upload_grids(e, 0, gs_gen_grid_count(e->gen));
    char out[128], ck[128];
    snprintf(out, sizeof out, "%s/feed.jsonl", e->dir);
    snprintf(ck, sizeof ck, "%s/feed.ckpt", e->dir);
    const char *district = "440305";
    const char *crash[] = { "--prefix", district, "--output", out, "--checkpoint", ck,
                            "--checkpoint-every", "20", "--crash-after", "50", "--quiet", NULL };
    int st = s_run(e, crash);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);

    /* the crash left lines the checkpoint does not cover */
    uint64_t *got;
    size_t before = s_out_seqs(out, &got);
    free(got);
    assert_int_equal(before, 60);
    char *ckt = gs_tk_read_file(ck, NULL, 0);
    const char *x = strstr(ckt, "extra output_size=");
    assert_non_null(x);
    struct stat sto;
    assert_int_equal(stat(out, &sto), 0);
    assert_true(strtoll(x + 18, NULL, 10) < sto.st_size);
    free(ckt);

    const char *resume[] = { "--prefix", district, "--output", out, "--checkpoint", ck,
                             "--checkpoint-every", "20", "--until-seq", s_head(e), "--quiet",
                             NULL };
    s_assert_exit(s_run(e, resume), 0);
    uint64_t *want;
    const char *p[] = { district };
    size_t ng = s_out_seqs(out, &got), nw = s_log_seqs(e, p, 1, &want);
    s_assert_same_seqs(got, ng, want, nw);
    free(got);
    free(want);
}

/* SIGKILL while following a live feed with uploads going on, more uploads
 * while it is down, then a restart: the output is the change log. */
static void
test_sigkill_while_following(void **state)
{
    s_env_t *e = *state;
    char out[128], ck[128];
    snprintf(out, sizeof out, "%s/feed.jsonl", e->dir);
    snprintf(ck, sizeof ck, "%s/feed.ckpt", e->dir);
    const char *follow[] = { "--prefix", e->street1, "--output", out, "--checkpoint", ck,
                             "--checkpoint-every", "7", "--verbose", "--quiet", NULL };
    int err_fd;
    pid_t pid = s_spawn(e, follow, &err_fd);
    FILE *err = fdopen(err_fd, "r");
    s_wait_line(err, "following", 0);
    uint32_t ng = gs_gen_grid_count(e->gen);
    s_upload_grids(e, 0, 2);
    s_wait_line(err, "checkpoint:", 1); /* it is writing */
    s_upload_grids(e, 2, ng / 2);       /* and goes on while we kill it */
    kill(pid, SIGKILL);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    fclose(err);
    s_upload_grids(e, ng / 2, ng);      /* events it missed while down */
    s_edit_and_move(e);

    const char *resume[] = { "--prefix", e->street1, "--output", out, "--checkpoint", ck,
                             "--checkpoint-every", "7", "--until-seq", s_head(e), "--quiet",
                             NULL };
    s_assert_exit(s_run(e, resume), 0);
    uint64_t *got, *want;
    const char *p[] = { e->street1 };
    size_t n_got = s_out_seqs(out, &got), n_want = s_log_seqs(e, p, 1, &want);
    s_assert_same_seqs(got, n_got, want, n_want);
    free(got);
    free(want);
}

/* SIGTERM: a last checkpoint covering exactly what was written, exit 0. */
static void
test_sigterm_checkpoints(void **state)
{
    s_env_t *e = *state;
    char out[128], ck[128];
    snprintf(out, sizeof out, "%s/feed.jsonl", e->dir);
    snprintf(ck, sizeof ck, "%s/feed.ckpt", e->dir);
    const char *follow[] = { "--prefix", e->street1, "--output", out, "--checkpoint", ck,
                             "--checkpoint-every", "1000000", "--verbose", "--quiet", NULL };
    int err_fd;
    pid_t pid = s_spawn(e, follow, &err_fd);
    FILE *err = fdopen(err_fd, "r");
    s_wait_line(err, "following", 0);
    s_upload_grids(e, 0, 1);
    const char *p[] = { e->street1 };
    uint64_t *want;
    size_t n_want = s_log_seqs(e, p, 1, &want);
    assert_true(n_want > 0);
    s_wait_line(err, "checkpoint:", n_want); /* quiet feed: written and checkpointed */
    kill(pid, SIGTERM);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    fclose(err);
    s_assert_exit(st, 0);
    uint64_t *got;
    size_t n_got = s_out_seqs(out, &got);
    s_assert_same_seqs(got, n_got, want, n_want);
    char *ckt = gs_tk_read_file(ck, NULL, 0);
    struct stat sto;
    assert_int_equal(stat(out, &sto), 0);
    char expect[128];
    snprintf(expect, sizeof expect, "prefix \"%s\" %llu\n", e->street1,
             (unsigned long long) got[n_got - 1]);
    assert_non_null(strstr(ckt, expect));
    snprintf(expect, sizeof expect, "extra output_size=%lld\n", (long long) sto.st_size);
    assert_non_null(strstr(ckt, expect));
    free(ckt);
    free(got);
    free(want);
}

/* Run gridfeed to completion; *err_text gets its stderr (malloc'd). */
static int
s_run_err(s_env_t *e, const char *const *args, char **err_text)
{
    int err_fd;
    pid_t pid = s_spawn(e, args, &err_fd);
    FILE *err = fdopen(err_fd, "r");
    size_t len = 0, cap = 4096;
    char *text = malloc(cap);
    size_t n;
    while ((n = fread(text + len, 1, cap - len - 1, err)) > 0) {
        len += n;
        if (cap - len < 1024)
            text = realloc(text, cap *= 2);
    }
    text[len] = 0;
    fclose(err);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    fprintf(stderr, "%s", text);
    *err_text = text;
    return st;
}

/* Stop the broker; when from is given, put that store in the place of its
 * own (a restore); start it again (new ports) and reconnect the client. */
static void
s_broker_bounce(s_env_t *e, const char *from)
{
    gs_client_destroy(&e->cli);
    int st = gs_tk_broker_stop(&e->broker, SIGTERM);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (from) {
        gs_tk_rmtree(e->store);
        assert_int_equal(rename(from, e->store), 0);
    }
    assert_int_equal(gs_tk_broker_start(&e->broker, e->store, NULL), 0);
    e->cli = gs_client_new(e->broker.upload, NULL);
    assert_non_null(e->cli);
}

/* The broker's store is restored from an older backup and takes new
 * uploads, whose seqs gridfeed's checkpoint is already past. gridfeed must
 * not exit 0 having written nothing: it stops with status 3 and says what
 * happened (with an epoch in the checkpoint, and with a checkpoint from
 * before epochs), and --on-restore rebaseline moves the output aside and
 * writes the restored store's log from seq 0. */
static void
test_restored_store(void **state)
{
    s_env_t *e = *state;
    uint32_t ng = gs_gen_grid_count(e->gen);
    s_upload_grids(e, 0, ng / 2);
    uint64_t backup_head = e->head;

    /* the backup, with an epoch of its own as a restore gives it */
    gs_client_destroy(&e->cli);
    int st = gs_tk_broker_stop(&e->broker, SIGTERM);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char backup[128];
    snprintf(backup, sizeof backup, "%s/backup", e->dir);
    static const uint8_t v[8] = { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88 };
    gs_tk_store_backup_epoch(e->store, backup, v);
    uint64_t e1 = gs_tk_store_epoch(e->store), e2 = gs_tk_store_epoch(backup);
    assert_int_not_equal(e1, e2);
    assert_int_equal(gs_tk_broker_start(&e->broker, e->store, NULL), 0);
    e->cli = gs_client_new(e->broker.upload, NULL);
    assert_non_null(e->cli);

    /* gridfeed takes everything, then the store is restored and goes on */
    s_upload_grids(e, ng / 2, ng);
    uint64_t old_head = e->head;
    char out[128], ck[128], ck_e[128], ck_old[128], voided[160];
    snprintf(out, sizeof out, "%s/feed.jsonl", e->dir);
    snprintf(ck, sizeof ck, "%s/feed.ckpt", e->dir);
    snprintf(ck_e, sizeof ck_e, "%s/feed.ckpt.e1", e->dir);
    snprintf(ck_old, sizeof ck_old, "%s/feed.ckpt.old", e->dir);
    snprintf(voided, sizeof voided, "%s.void-%016llx", out, (unsigned long long) e1);
    const char *take[] = { "--prefix", "440305", "--output", out, "--checkpoint", ck,
                           "--until-seq", s_head(e), "--quiet", NULL };
    s_assert_exit(s_run(e, take), 0);
    uint64_t *got, *want;
    size_t n_old = s_out_seqs(out, &got);
    assert_int_equal(n_old, old_head);
    free(got);
    char *ckt = gs_tk_read_file(ck, NULL, 0);
    char expect[64];
    snprintf(expect, sizeof expect, "\nepoch %016llx\n", (unsigned long long) e1);
    assert_non_null(strstr(ckt, expect));
    /* the same checkpoint as one written before epochs */
    FILE *f = fopen(ck_old, "w");
    assert_non_null(f);
    for (char *line = ckt; *line;) {
        char *nl = strchr(line, '\n');
        if (strncmp(line, "epoch ", 6))
            fwrite(line, 1, (size_t) (nl - line + 1), f);
        line = nl + 1;
    }
    fclose(f);
    f = fopen(ck_e, "w");
    fputs(ckt, f);
    fclose(f);
    free(ckt);

    s_broker_bounce(e, backup);
    e->head = backup_head;
    s_edit_and_move(e);     /* seqs the checkpoint is already past */
    assert_true(e->head < old_head);
    struct stat before, after;
    assert_int_equal(stat(out, &before), 0);

    /* the epoch tells: status 3, what happened and what to do */
    const char *resume[] = { "--prefix", "440305", "--output", out, "--checkpoint", ck,
                             "--until-seq", s_head(e), "--quiet", NULL };
    char *text = NULL;
    s_assert_exit(s_run_err(e, resume, &text), 3);
    assert_non_null(strstr(text, "RESTORED OR REPLACED"));
    snprintf(expect, sizeof expect, "epoch %016llx, not %016llx", (unsigned long long) e2,
             (unsigned long long) e1);
    assert_non_null(strstr(text, expect));
    assert_non_null(strstr(text, "--on-restore rebaseline"));
    free(text);
    assert_int_equal(stat(out, &after), 0);
    assert_int_equal(before.st_size, after.st_size);

    /* a checkpoint from before epochs: the head below it tells */
    const char *resume_old[] = { "--prefix", "440305", "--output", out, "--checkpoint", ck_old,
                                 "--until-seq", s_head(e), "--quiet", NULL };
    s_assert_exit(s_run_err(e, resume_old, &text), 3);
    snprintf(expect, sizeof expect, "head seq %llu is below our position %llu",
             (unsigned long long) e->head, (unsigned long long) old_head);
    assert_non_null(strstr(text, expect));
    free(text);

    /* re-baseline: the old lines aside, the restored log from seq 0 */
    const char *rebase[] = { "--prefix", "440305", "--output", out, "--checkpoint", ck,
                             "--until-seq", s_head(e), "--on-restore", "rebaseline", "--quiet",
                             NULL };
    s_assert_exit(s_run_err(e, rebase, &text), 0);
    assert_non_null(strstr(text, "re-baselined"));
    assert_non_null(strstr(text, voided));
    free(text);
    size_t n_void = s_out_seqs(voided, &got);
    assert_int_equal(n_void, n_old);
    free(got);
    const char *all[] = { "440305" };
    size_t n_got = s_out_seqs(out, &got), n_want = s_log_seqs(e, all, 1, &want);
    assert_int_equal(n_want, e->head);
    s_assert_same_seqs(got, n_got, want, n_want);
    free(got);
    free(want);
    ckt = gs_tk_read_file(ck, NULL, 0);
    snprintf(expect, sizeof expect, "\nepoch %016llx\n", (unsigned long long) e2);
    assert_non_null(strstr(ckt, expect));
    free(ckt);

    /* from there on as usual: more events, appended once (a grid the
     * restored store never had) */
    s_upload_grids(e, ng / 2, ng / 2 + 1);
    const char *more[] = { "--prefix", "440305", "--output", out, "--checkpoint", ck,
                           "--until-seq", s_head(e), "--on-restore", "rebaseline", "--quiet",
                           NULL };
    s_assert_exit(s_run(e, more), 0);
    n_got = s_out_seqs(out, &got);
    n_want = s_log_seqs(e, all, 1, &want);
    s_assert_same_seqs(got, n_got, want, n_want);
    free(got);
    free(want);
    /* and the checkpoint of the old lineage still refuses */
    const char *stale[] = { "--prefix", "440305", "--output", voided, "--checkpoint", ck_e,
                            "--until-seq", s_head(e), "--quiet", NULL };
    s_assert_exit(s_run(e, stale), 3);
}

/* SIGTERM while gridfeed waits for its first catch-up reply from a sync
 * endpoint that accepted the connection and stays silent (default
 * timeouts: 18 s before it would give up): it stops at once, exit 0. */
static void
test_sigterm_during_catchup(void **state)
{
    s_env_t *e = *state;
    char ep[64];
    int ls = gs_tk_listen_silent(ep, sizeof ep);
    const char *args[] = { GS_GRIDFEED, "--feed", e->broker.feed, "--upload", ep, "--prefix",
                           e->street1, "--quiet", NULL };
    int err_fd;
    pid_t pid = gs_tk_spawn(args, &err_fd);
    struct pollfd p = { .fd = ls, .events = POLLIN };
    assert_int_equal(poll(&p, 1, S_PATIENCE_MS), 1); /* gridfeed connected */
    int c = accept(ls, NULL, NULL);
    assert_true(c >= 0);
    kill(pid, SIGTERM);
    gs_tk_wait_line(err_fd, "gridfeed", "interrupted", S_PATIENCE_MS);
    s_assert_exit(gs_tk_wait_exit(pid, "gridfeed", S_PATIENCE_MS), 0);
    close(err_fd);
    close(c);
    close(ls);
}

static int
s_setup_curve(void **state)
{
    s_env_t *e = calloc(1, sizeof *e);
    gs_tk_tmpdir(e->dir, sizeof e->dir);
    snprintf(e->store, sizeof e->store, "%s/store", e->dir);
    if (gs_tk_broker_start_mode(&e->broker, e->store, NULL, 1))
        return -1;
    snprintf(e->street1, sizeof e->street1, "440305001");
    *state = e;
    return 0;
}

/* A district system whose subscription the broker stops serving hears no
 * heartbeat: gridfeed says "no heartbeat for N s: check enrolment" and
 * keeps following, saying it again while the silence lasts (its prefix
 * was narrowed away, so the broker cut the feed and refuses the new
 * subscription without a word); SIGTERM still stops it, exit 0. A
 * district system whose key is revoked while it follows is refused at its
 * next handshake: gridfeed says so and exits 1. */
static void
test_silent_feed_and_revoked_key(void **state)
{
    s_env_t *e = *state;
    char bundle[128], args[1024];
    snprintf(bundle, sizeof bundle, "%s/district1.bundle", e->dir);
    snprintf(args, sizeof args, "devices enrol district-1 --role district --prefix 440305 "
             "--bundle %s", bundle);
    assert_int_equal(gs_tk_gridctl(e->store, args), 0);
    const char *follow[] = { "--prefix", e->street1, "--keys", bundle, "--heartbeat-warn",
                             "300", "--verbose", "--quiet", NULL };
    int err_fd;
    pid_t pid = s_spawn(e, follow, &err_fd);
    gs_tk_wait_line(err_fd, "gridfeed", "following", S_PATIENCE_MS);
    assert_int_equal(gs_tk_gridctl(e->store, "devices assign district-1 --prefix 440305002"), 0);
    gs_tk_wait_line(err_fd, "gridfeed", "no heartbeat for", S_PATIENCE_MS);
    gs_tk_wait_line(err_fd, "gridfeed", "no heartbeat for", S_PATIENCE_MS);
    gs_tk_wait_line(err_fd, "gridfeed",
                    "check enrolment (is the key enrolled and active, and allowed "
                    "these prefixes?)",
                    S_PATIENCE_MS);
    kill(pid, SIGTERM);
    s_assert_exit(gs_tk_wait_exit(pid, "gridfeed", S_PATIENCE_MS), 0);
    close(err_fd);

    snprintf(bundle, sizeof bundle, "%s/district2.bundle", e->dir);
    snprintf(args, sizeof args, "devices enrol district-2 --role district --prefix 440305 "
             "--bundle %s", bundle);
    assert_int_equal(gs_tk_gridctl(e->store, args), 0);
    pid = s_spawn(e, follow, &err_fd);
    gs_tk_wait_line(err_fd, "gridfeed", "following", S_PATIENCE_MS);
    assert_int_equal(gs_tk_gridctl(e->store, "devices revoke district-2"), 0);
    gs_tk_wait_line(err_fd, "gridfeed", "handshake refused", S_PATIENCE_MS);
    s_assert_exit(gs_tk_wait_exit(pid, "gridfeed", S_PATIENCE_MS), 1);
    close(err_fd);
}

/* Nothing typed twice: gridfeed given only --keys takes the feed and
 * upload endpoints from the enrolment bundle (gridctl devices enrol
 * --endpoint --feed-endpoint) and follows the CURVE broker, delivering an
 * event uploaded while it follows; a bundle that names no endpoints, with
 * no --feed or --upload, is refused (exit 2) and the message says what to
 * give. */
static void
test_endpoints_from_bundle(void **state)
{
    s_env_t *e = *state;
    char bundle[128], device[128], bare[128], out[128], args[1024];
    snprintf(bundle, sizeof bundle, "%s/district.bundle", e->dir);
    snprintf(device, sizeof device, "%s/device.bundle", e->dir);
    snprintf(bare, sizeof bare, "%s/bare.bundle", e->dir);
    snprintf(out, sizeof out, "%s/feed.out", e->dir);
    snprintf(args, sizeof args, "devices enrol district-b --role district --prefix 440305 "
             "--bundle %s --endpoint %s --feed-endpoint %s", bundle, e->broker.upload,
             e->broker.feed);
    assert_int_equal(gs_tk_gridctl(e->store, args), 0);
    snprintf(args, sizeof args, "devices enrol dev-feedtest --collector col-feed --prefix "
             "440305 --bundle %s --endpoint %s", device, e->broker.upload);
    assert_int_equal(gs_tk_gridctl(e->store, args), 0);

    const char *follow[] = { "--keys", bundle, "--prefix", e->street1, "--count", "1",
                             "--output", out, "--verbose", "--quiet", NULL };
    int err_fd;
    pid_t pid = s_spawn_with(e, 0, follow, &err_fd);
    gs_tk_wait_line(err_fd, "gridfeed", "following", S_PATIENCE_MS);

    /* one household uploaded by the enrolled collector, through CURVE */
    gs_client_opts_t co;
    gs_client_opts_init(&co);
    assert_int_equal(gs_curve_keys_load(&co.curve, device), 0);
    e->cli = gs_client_new(e->broker.upload, &co);
    assert_non_null(e->cli);
    e->arena = gs_arena_new(0);
    assert_non_null(e->arena);
    char grid[16];
    snprintf(grid, sizeof grid, "%s001001", e->street1);
    Gridsync__V1__Record *h = gs_tk_household(e->arena, grid, "HBUNDLE", "ADDR-BUNDLE", 1,
                                              940000);
    s_upload(e, &h, 1);
    s_assert_exit(gs_tk_wait_exit(pid, "gridfeed", S_PATIENCE_MS), 0);
    close(err_fd);
    uint64_t *seqs = NULL;
    size_t n = s_out_seqs(out, &seqs);
    assert_int_equal(n, 1);
    assert_true(seqs[0] == e->head);
    free(seqs);

    /* keys without endpoints, and none given: refused, naming the fix */
    FILE *f = fopen(bare, "w");
    assert_non_null(f);
    FILE *in = fopen(bundle, "r");
    assert_non_null(in);
    char line[512];
    while (fgets(line, sizeof line, in))
        if (strncmp(line, "feed_endpoint", 13) && strncmp(line, "upload_endpoint", 15))
            fputs(line, f);
    fclose(in);
    fclose(f);
    const char *no_ep[] = { "--keys", bare, "--prefix", e->street1, NULL };
    pid = s_spawn_with(e, 0, no_ep, &err_fd);
    gs_tk_wait_line(err_fd, "gridfeed", "names no feed_endpoint; give --feed EP",
                    S_PATIENCE_MS);
    s_assert_exit(gs_tk_wait_exit(pid, "gridfeed", S_PATIENCE_MS), 2);
    close(err_fd);
}

static int64_t s_gen_now_ms;   /* the generator's opts.now_ms (gs_gen_incident) */

/* Upload the households, rental units and incident reports of grids
 * [g0, g1), one upload per grid; all must be accepted. */
static void
s_upload_with_incidents(s_env_t *e, uint32_t g0, uint32_t g1)
{
    for (uint32_t g = g0; g < g1; g++) {
        s_upload_grids(e, g, g + 1);
        uint32_t n = gs_gen_grid_incident_count(e->gen, g, e->arena);
        gs_arena_reset(e->arena);
        Gridsync__V1__Record *recs[64];
        assert_true(n <= 64);
        for (uint32_t k = 0; k < n; k++) {
            gs_gen_incident_t inc;
            assert_int_equal(gs_gen_incident(e->gen, g, k, s_gen_now_ms,
                                             e->arena, &inc), 0);
            recs[k] = inc.report;
        }
        if (n)
            s_upload(e, recs, n);
        gs_arena_reset(e->arena);
    }
}

/* The seqs of the incident events of categories c1 and c2 under prefix,
 * in order, read by a key that sees every kind. */
static size_t
s_incident_seqs(s_env_t *e, const char *prefix, const char *c1, const char *c2,
                uint64_t **out, size_t *others)
{
    uint64_t since = 0, *seqs = NULL;
    size_t n = 0, cap = 0;
    *others = 0;
    for (;;) {
        Gridsync__V1__SyncResponse *r = NULL;
        gs_client_error_t err;
        const char *p[] = { prefix };
        assert_int_equal(gs_client_sync(e->cli, p, 1, since, 0, 0, &r, &err), 0);
        for (size_t i = 0; i < r->n_events; i++) {
            const Gridsync__V1__ChangeEvent *ev = r->events[i];
            int want = ev->kind == GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT &&
                       (!strcmp(ev->record->incident->category, c1) ||
                        !strcmp(ev->record->incident->category, c2));
            if (!want) {
                (*others)++;
                continue;
            }
            if (n == cap)
                seqs = realloc(seqs, (cap = cap ? cap * 2 : 256) * sizeof *seqs);
            seqs[n++] = ev->seq;
        }
        int done = r->next_seq >= r->head_seq;
        since = r->next_seq;
        gridsync__v1__sync_response__free_unpacked(r, NULL);
        if (done)
            break;
    }
    *out = seqs;
    return n;
}

/* A department's live follow (分拨): gridfeed with the department's key
 * and --category 02,03 follows street 1 while the collector uploads
 * households, rental units and incidents of every category in both
 * streets; it is SIGKILLed mid-stream twice and restarted from its
 * checkpoint, with uploads while it is down, and ends with exactly the
 * incident events of 02 and 03 in street 1, in seq order, each once, and
 * nothing else. The broker refuses the department a grid topic, so this
 * runs on incident topics only. */
static void
test_department_live_follow(void **state)
{
    s_env_t *e = *state;
    gs_gen_opts_t go;
    gs_gen_opts_init(&go);
    go.seed = 5;
    go.streets = 2;
    go.grids = 8;
    go.households = 80;
    go.rental_buildings = 160; /* their hazards are incidents of 02 */
    e->gen = gs_gen_new(&go);
    s_gen_now_ms = go.now_ms;
    e->arena = gs_arena_new(0);
    assert_non_null(e->gen);
    assert_non_null(e->arena);
    snprintf(e->street1, sizeof e->street1, "%.9s", gs_gen_grid_code(e->gen, 0));
    char device[128], fire[128], out[128], ck[128], args[1024];
    snprintf(device, sizeof device, "%s/device.bundle", e->dir);
    snprintf(fire, sizeof fire, "%s/fire.bundle", e->dir);
    snprintf(out, sizeof out, "%s/fire.jsonl", e->dir);
    snprintf(ck, sizeof ck, "%s/fire.ckpt", e->dir);
    snprintf(args, sizeof args, "devices enrol dev-feedtest --collector col-feed --prefix "
             "%.6s --bundle %s", e->street1, device);
    assert_int_equal(gs_tk_gridctl(e->store, args), 0);
    snprintf(args, sizeof args, "devices enrol fire-1 --role department --department "
             "dept-fire --category 02 --category 03 --prefix %s --bundle %s", e->street1, fire);
    assert_int_equal(gs_tk_gridctl(e->store, args), 0);
    gs_client_opts_t co;
    gs_client_opts_init(&co);
    assert_int_equal(gs_curve_keys_load(&co.curve, device), 0);
    e->cli = gs_client_new(e->broker.upload, &co);
    assert_non_null(e->cli);

    uint32_t ng = gs_gen_grid_count(e->gen);
    assert_true(ng >= 8);
    s_upload_with_incidents(e, 0, 2);
    const char *follow[] = { "--keys", fire, "--feed", e->broker.feed, "--upload",
                             e->broker.upload, "--prefix", e->street1, "--category", "02,03",
                             "--output", out, "--checkpoint", ck, "--checkpoint-every", "1",
                             "--verbose", "--quiet", NULL };
    /* twice: follow, see it write, upload more while it runs, SIGKILL it,
     * upload more while it is down */
    for (uint32_t round = 0; round < 2; round++) {
        int err_fd;
        pid_t pid = s_spawn_with(e, 0, follow, &err_fd);
        gs_tk_wait_line(err_fd, "gridfeed", "following", S_PATIENCE_MS);
        s_upload_with_incidents(e, 2 + 3 * round, 3 + 3 * round);
        gs_tk_wait_line(err_fd, "gridfeed", "checkpoint: 1 events written", S_PATIENCE_MS);
        s_upload_with_incidents(e, 3 + 3 * round, 4 + 3 * round);
        kill(pid, SIGKILL);
        int st = gs_tk_wait_exit(pid, "gridfeed", S_PATIENCE_MS);
        assert_true(WIFSIGNALED(st));
        close(err_fd);
        s_upload_with_incidents(e, 4 + 3 * round, 5 + 3 * round);
    }
    s_upload_with_incidents(e, 8, ng);
    const char *resume[] = { "--keys", fire, "--feed", e->broker.feed, "--upload",
                             e->broker.upload, "--prefix", e->street1, "--category", "02,03",
                             "--output", out, "--checkpoint", ck, "--checkpoint-every", "1",
                             "--until-seq", s_head(e), "--quiet", NULL };
    pid_t pid = s_spawn_with(e, 0, resume, NULL);
    s_assert_exit(gs_tk_wait_exit(pid, "gridfeed", S_PATIENCE_MS), 0);

    /* and live: caught up, it takes a new incident of 02 or 03 (a copy of
     * one of grid 0's under a new id) off its incident topic, not by sync */
    const char *live[] = { "--keys", fire, "--feed", e->broker.feed, "--upload",
                           e->broker.upload, "--prefix", e->street1, "--category", "02,03",
                           "--output", out, "--checkpoint", ck, "--checkpoint-every", "1",
                           "--verbose", NULL };
    int err_fd;
    pid = s_spawn_with(e, 0, live, &err_fd);
    gs_tk_wait_line(err_fd, "gridfeed", "following", S_PATIENCE_MS);
    /* the broker applied both subscriptions: what it publishes now is live */
    gs_tk_wait_line(err_fd, "gridfeed", "served: a heartbeat arrived for every incident topic",
                    S_PATIENCE_MS);
    Gridsync__V1__Record *copy = NULL;
    uint32_t n0 = gs_gen_grid_incident_count(e->gen, 0, e->arena);
    for (uint32_t k = 0; k < n0 && !copy; k++) {
        gs_gen_incident_t inc;
        assert_int_equal(gs_gen_incident(e->gen, 0, k, s_gen_now_ms, e->arena, &inc), 0);
        const char *cat = inc.report->incident->category;
        if (!strcmp(cat, "02") || !strcmp(cat, "03"))
            copy = inc.report;
    }
    assert_non_null(copy);
    char id[64];
    snprintf(id, sizeof id, "%s-live", copy->incident->incident_id);
    copy->incident->incident_id = id;
    s_upload(e, &copy, 1);
    gs_arena_reset(e->arena);
    gs_tk_wait_line(err_fd, "gridfeed", "checkpoint: 1 events written", S_PATIENCE_MS);
    kill(pid, SIGTERM);
    gs_tk_wait_line(err_fd, "gridfeed", "events written (1 live, 0 pulled by sync)",
                    S_PATIENCE_MS);
    s_assert_exit(gs_tk_wait_exit(pid, "gridfeed", S_PATIENCE_MS), 0);
    close(err_fd);

    uint64_t *got, *want;
    size_t others;
    size_t n_got = s_out_seqs(out, &got);
    size_t n_want = s_incident_seqs(e, e->street1, "02", "03", &want, &others);
    assert_true(n_want > 8);    /* a stream worth killing */
    assert_true(others > n_want); /* and much it must not see */
    s_assert_same_seqs(got, n_got, want, n_want);
    free(got);
    free(want);
    /* and every line is an incident of 02 or 03 in street 1 */
    char *text = gs_tk_read_file(out, NULL, 0);
    size_t lines = 0;
    for (char *line = text; *line; lines++) {
        char *nl = strchr(line, '\n');
        *nl = 0;
        char want_grid[32];
        snprintf(want_grid, sizeof want_grid, "\"grid_code\":\"%s", e->street1);
        assert_non_null(strstr(line, want_grid));
        assert_true(strstr(line, "\"category\":\"02\"") || strstr(line, "\"category\":\"03\""));
        line = nl + 1;
    }
    assert_int_equal(lines, n_got);
    free(text);
}

/* Usage errors exit 2 without touching anything. */
static void
test_bad_arguments(void **state)
{
    s_env_t *e = *state;
    const char *cases[][5] = {
        { "--output", "x", NULL },                            /* no prefix */
        { "--prefix", "4403051", NULL },                      /* not a level */
        { "--prefix", "440305", "--prefix", "440305001", NULL }, /* nested */
        { "--prefix", "440305", "--until-seq", "ten", NULL },
        { "--prefix", "440305", "--bogus", NULL },
        { "--prefix", "440305", "--on-restore", "later", NULL },
        { "--prefix", "440305", "--on-restore", "rebaseline", NULL }, /* needs --output */
        { "--prefix", "440305", "--category", "02,", NULL },  /* an empty category */
        { "--prefix", "440305", "--category", "02,02", NULL }, /* one twice */
        { "--prefix", "440305", "--category", "0/2", NULL },  /* not a code */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        s_assert_exit(s_run(e, cases[i]), 2);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_output_matches_change_log, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_crash_between_write_and_checkpoint, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_sigkill_while_following, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_checkpoints, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_restored_store, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_during_catchup, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_silent_feed_and_revoked_key, s_setup_curve,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_endpoints_from_bundle, s_setup_curve, s_teardown),
        cmocka_unit_test_setup_teardown(test_department_live_follow, s_setup_curve,
                                        s_teardown),
    };
    return cmocka_run_group_tests_name("gridfeed", tests, NULL, NULL);
}

/*
 * test_store_crash: crash consistency of the store under SIGKILL.
 *
 * A child process applies batches in a loop with full sync and, after each
 * successful apply, writes "committed <batch> <head seq>" to a pipe. The
 * parent reads a random number of those lines, does a random amount of
 * busy work, and kills the child with SIGKILL wherever it happens to be
 * (building a batch, inside the commit, between commit and report), reads
 * what is left in the pipe, then reopens the
 * store and checks: verify passes, every batch the child reported is there
 * with the versions it implies, the log has no holes and ends at or after
 * the last reported head. A new child then carries on from the batch after
 * the last reported one; when that batch was committed but not reported,
 * its uploads are answered from the idempotency table.
 *
 * Each batch b has two uploads: eight new households N<b>-i, and an update
 * of last batch's eight (one moves to another cell, one is voided, the rest
 * change their address text). So after batch b, N<b>-* are at version 1
 * and N<b-1>-* at version 2.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "gs_store.h"
#include "st_lib.h"

#define PER_BATCH 8
#define KILLS 30

static const char *s_cells[3] = { "110105001001001", "110105001002001", "110105003001002" };
static const char *s_moved_to = "110105002001001";

static void
s_batch_records(gs_arena_t *a, int b, Gridsync__V1__Record **fresh,
                Gridsync__V1__Record **upd)
{
    for (int i = 0; i < PER_BATCH; i++) {
        char id[32], code[32], note[32];
        snprintf(id, sizeof id, "N%d-%d", b, i);
        snprintf(code, sizeof code, "NA%d-%d", b, i);
        snprintf(note, sizeof note, "batch %d", b);
        uint32_t p = 100000u + (uint32_t) b * 20u + (uint32_t) i * 2u;
        fresh[i] = st_build(a, &(st_rec_t) { .id = id, .addr_code = code,
                            .grid = s_cells[i % 3], .note = note, .pids = { p, p + 1 },
                            .device = "crash-dev" });
        if (b == 0)
            continue;
        snprintf(id, sizeof id, "N%d-%d", b - 1, i);
        snprintf(code, sizeof code, "NA%d-%d", b - 1, i);
        snprintf(note, sizeof note, "updated in %d", b);
        p -= 20u;
        upd[i] = st_build(a, &(st_rec_t) { .id = id, .addr_code = code,
                          .grid = i == 0 ? s_moved_to : s_cells[i % 3], .note = note,
                          .pids = { p, p + 1 }, .base = 1, .void_ = i == 1,
                          .device = "crash-dev" });
    }
}

/* The child: apply batches from start on, report each, until killed. */
static void
s_child(const char *dir, int wfd, int start)
{
    int err = 0;
    gs_store_t *st = gs_store_new(dir, NULL, &err);
    if (!st)
        _exit(2);
    gs_arena_t *a = gs_arena_new(0);
    for (int b = start; b < 100000; b++) {
        Gridsync__V1__Record *fresh[PER_BATCH], *upd[PER_BATCH];
        s_batch_records(a, b, fresh, upd);
        char u1[32], u2[32];
        snprintf(u1, sizeof u1, "batch-%d-new", b);
        snprintf(u2, sizeof u2, "batch-%d-upd", b);
        gs_upload_t ups[2] = {
            { "crash-dev", u1, fresh, PER_BATCH, gs_arena_allocator(a), NULL, 0, NULL, 1 },
            { "crash-dev", u2, upd, PER_BATCH, gs_arena_allocator(a), NULL, 0, NULL, 1 },
        };
        gs_apply_out_t out;
        if (gs_store_apply(st, ups, b ? 2 : 1, ST_NOW_MS + b, &out) != 0)
            _exit(3);
        /* every record of the batch was accepted (now or when first sent) */
        for (size_t u = 0; u < out.n_uploads; u++)
            if (out.uploads[u].counts[GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED] !=
                PER_BATCH)
                _exit(4);
        uint64_t head = out.head_seq;
        gs_apply_out_clear(&out);
        /* a retransmission before the report: the parent's kill may land
         * here, after the commit, so that the next child starts at a batch
         * that is already stored and gets it answered from the table */
        if (gs_store_apply(st, ups, b ? 2 : 1, ST_NOW_MS + b, &out) != 0 ||
            !out.uploads[0].replayed || out.n_events != 0 || out.head_seq != head)
            _exit(6);
        gs_apply_out_clear(&out);
        char line[64];
        int n = snprintf(line, sizeof line, "committed %d %llu\n", b,
                         (unsigned long long) head);
        if (write(wfd, line, (size_t) n) != n)
            _exit(5);
        gs_arena_reset(a);
    }
    _exit(0);
}

static int
s_seq_check(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    uint64_t *expect = arg;
    (void) grid;
    (void) data;
    (void) len;
    assert_int_equal(seq, *expect);
    (*expect)++;
    return 0;
}

/* What the store must hold after batches 0..last were reported. */
static void
s_check(gs_store_t *st, int last, uint64_t last_head)
{
    st_verify_ok(st);
    uint64_t head = 0;
    assert_int_equal(gs_store_head(st, &head), 0);
    assert_true(head >= last_head);
    uint64_t expect = 1, next, h;
    const char *all[] = { "" };
    assert_int_equal(gs_store_events(st, all, 1, 0, 0, s_seq_check, &expect, &next, &h), 0);
    assert_int_equal(expect, h + 1);
    for (int b = 0; b <= last; b++) {
        for (int i = 0; i < PER_BATCH; i++) {
            char id[32], grid[16];
            snprintf(id, sizeof id, "N%d-%d", b, i);
            uint64_t v = 0;
            Gridsync__V1__Record *r = st_get(st, 0, id, &v, grid);
            if (!r)
                fail_msg("batch %d reported committed but %s is missing", b, id);
            int status = r->household->meta->status;
            gridsync__v1__record__free_unpacked(r, NULL);
            if (b < last || v == 2) {
                /* the next batch was committed too */
                assert_int_equal(v, 2);
                assert_string_equal(grid, i == 0 ? s_moved_to : s_cells[i % 3]);
                assert_int_equal(status, i == 1);
            } else {
                assert_int_equal(v, 1);
                assert_string_equal(grid, s_cells[i % 3]);
            }
        }
    }
}

static void
test_crash_consistency(void **state)
{
    (void) state;
    char *dir = st_tmpdir();
    unsigned seed = (unsigned) getpid();
    srand(seed);
    print_message("crash test seed %u\n", seed);
    int last = -1;
    uint64_t last_head = 0;
    int kills = 0, unreported = 0;
    while (kills < KILLS) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            s_child(dir, fds[1], last + 1);
        }
        close(fds[1]);
        FILE *in = fdopen(fds[0], "r");
        assert_non_null(in);
        int want = 1 + rand() % 6;
        int got = 0, b;
        unsigned long long hs;
        char line[128];
        while (got < want && fgets(line, sizeof line, in)) {
            assert_int_equal(sscanf(line, "committed %d %llu", &b, &hs), 2);
            assert_int_equal(b, last + 1);
            last = b;
            last_head = hs;
            got++;
        }
        /* A random amount of work before the kill so that it lands at a
         * random point of the child's next batch (building it, inside the
         * commit, in the retransmission after it), not always just after
         * the report. This is not synchronisation: any point is valid. */
        for (volatile long spin = rand() % 4000000; spin > 0; spin--)
            ;
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
            fail_msg("child ended by itself: status %d", status);
        /* reports written before the kill still count */
        while (fgets(line, sizeof line, in)) {
            assert_int_equal(sscanf(line, "committed %d %llu", &b, &hs), 2);
            assert_int_equal(b, last + 1);
            last = b;
            last_head = hs;
        }
        fclose(in);
        kills++;

        gs_store_t *st = st_open(dir, NULL);
        uint64_t head = 0;
        assert_int_equal(gs_store_head(st, &head), 0);
        if (head > last_head)
            unreported++;   /* killed between a commit and its report */
        s_check(st, last, last_head);
        gs_store_destroy(&st);
    }
    print_message("%d kills, %d batches, %d kills after an unreported commit\n", kills,
                  last + 1, unreported);
    assert_true(last >= KILLS);
    st_rmdir(dir);
    free(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_consistency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

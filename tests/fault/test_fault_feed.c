/*
 * test_fault_feed: feed consumers that cannot keep up, or are not there.
 *
 * The live feed is best-effort by design: the broker's XPUB drops messages
 * for a subscriber whose queue is full rather than slow everyone down. A
 * subscriber must still end with every event of its prefix exactly once: it
 * detects the loss (prev_seq chains, heartbeats) and repairs it from the
 * sync service. A subscriber that was offline the whole time catches up from
 * its checkpoint to the same state.
 *
 * The slow subscriber is made slow by not reading at all while the devices
 * upload a volume far larger than its queues (so the broker must drop),
 * then by reading while the load goes on; its repairs keep it behind. The
 * test asserts that gaps were seen, so it cannot pass without drops.
 *
 * A checkpoint that cannot be written (its filesystem read-only, or full)
 * is GS_CLIENT_EIO, and leaves the last checkpoint as it was and no
 * temporary file behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fault_kit.h"
#include "gs_client.h"

static const char *const s_grids[] = {
    "440305003001001", "440305003001002", "440305004001001",
};
#define S_PREFIX "440305003001"

typedef gs_fk_env_t s_env_t;

/* Follow prefix from checkpoint cp until seq last; returns the seqs. */
static uint64_t *
s_catch_up(const s_env_t *e, const char *cp, uint64_t last, size_t *n)
{
    const char *p[] = { S_PREFIX };
    gs_sub_opts_t so;
    gs_sub_opts_init(&so);
    int err = 0;
    gs_sub_t *sub = gs_sub_new(e->broker.feed, e->broker.upload, p, 1, cp, 0, &so, &err);
    assert_non_null(sub);
    size_t cap = 1024;
    uint64_t *v = malloc(cap * sizeof *v);
    *n = 0;
    while (gs_sub_position(sub, 0) < last) {
        Gridsync__V1__ChangeEvent *ev = NULL;
        assert_int_equal(gs_sub_next(sub, 30000, &ev), 0);
        if (*n == cap)
            v = realloc(v, (cap *= 2) * sizeof *v);
        v[(*n)++] = ev->seq;
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }
    gs_sub_destroy(&sub);
    return v;
}

static void
test_slow_and_offline_subscribers(void **state)
{
    s_env_t *e = *state;
    int soak = gs_fk_soak();
    const char *extra[] = { "--feed-sndhwm=2", NULL };
    assert_int_equal(gs_tk_broker_start(&e->broker, e->store, extra), 0);

    /* the offline subscriber: registered once, then gone for the whole test */
    char cp_off[200], cp_slow[200];
    snprintf(cp_off, sizeof cp_off, "%s/offline.cp", e->dir);
    snprintf(cp_slow, sizeof cp_slow, "%s/slow.cp", e->dir);
    {
        const char *p[] = { S_PREFIX };
        gs_sub_t *sub = gs_sub_new(e->broker.feed, e->broker.upload, p, 1, cp_off, 0, NULL, NULL);
        assert_non_null(sub);
        assert_int_equal(gs_sub_checkpoint(sub, NULL), 0);
        gs_sub_destroy(&sub);
    }

    gs_fk_follow_opts_t fo = {
        .feed = e->broker.feed, .sync = e->broker.upload, .prefix = S_PREFIX,
        .checkpoint = cp_slow, .rcvhwm = 2, .timeout_ms = 2000, .checkpoint_every = 500,
        .stalled = 1,
    };
    gs_fk_follow_t *f = gs_fk_follow_start(&fo);
    assert_non_null(f);

    /* big households (~1.3 KB an event): while the subscriber reads nothing,
     * its prefix gets some 5 MB of events against queues of 2 messages on
     * either side; then it reads while the same devices go on uploading */
    long stall_uploads = soak ? 300 : 30;
    long more_uploads = soak ? 1500 : 60;
    gs_fk_load_opts_t lo = {
        .endpoint = e->broker.upload, .tag = "S", .grids = s_grids,
        .n_grids = sizeof s_grids / sizeof s_grids[0], .records = 100, .members = 24,
        .timeout_ms = 5000, .retries = 20,
        .max_uploads = stall_uploads + more_uploads,
    };
    gs_fk_load_t *l = gs_fk_load_start(&lo, 2);
    assert_non_null(l);
    assert_int_equal(gs_fk_load_wait(l, 2 * (uint64_t) stall_uploads, 60000), 0);
    /* now the subscriber reads, under the load that goes on */
    gs_fk_follow_release(f);
    assert_int_equal(gs_fk_load_wait(l, 2 * (uint64_t) (stall_uploads + more_uploads), 120000),
                     0);
    gs_fk_load_stop(l);
    assert_int_equal(gs_fk_load_errors(l), 0);

    uint64_t *want = NULL, last = 0;
    size_t n_want = gs_fk_log_seqs(e->store, S_PREFIX, &want, &last);
    assert_true(n_want != (size_t) -1 && n_want > 0);
    assert_int_equal(gs_fk_follow_finish(f, last, 60000), 0);
    size_t n_got = 0;
    const uint64_t *got = gs_fk_follow_seqs(f, &n_got);
    gs_fk_follow_stats_t fs;
    gs_fk_follow_stats(f, &fs);
    fprintf(stderr,
            "slow subscriber: %zu events (live %llu, pulled %llu, duplicates dropped %llu, "
            "gaps %llu, heartbeats %llu)\n",
            n_got, (unsigned long long) fs.live, (unsigned long long) fs.pulled,
            (unsigned long long) fs.duplicates, (unsigned long long) fs.gaps,
            (unsigned long long) fs.heartbeats);
    assert_int_equal(fs.errors, 0);
    /* the feed did drop (else this test proved nothing), and repair filled it */
    assert_true(fs.gaps > 0);
    assert_true(fs.pulled > 0);
    assert_int_equal(gs_fk_seqs_compare("slow subscriber", got, n_got, want, n_want), 0);

    /* the offline subscriber comes back to the same state */
    size_t n_off = 0;
    uint64_t *off = s_catch_up(e, cp_off, last, &n_off);
    assert_int_equal(gs_fk_seqs_compare("offline subscriber", off, n_off, want, n_want), 0);
    free(off);

    size_t n = 0;
    const gs_fk_ack_t *acks = gs_fk_load_acks(l, &n);
    assert_int_equal(gs_fk_check_store(e->store, acks, n), 0);
    free(want);
    gs_fk_follow_destroy(&f);
    gs_fk_load_destroy(&l);
    assert_int_equal(gs_fk_broker_term(&e->broker), 0);
}

/* The whole of a small file (static buffer). */
static const char *
s_file(const char *path)
{
    static char buf[4096];
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void
test_checkpoint_cannot_be_written(void **state)
{
    s_env_t *e = *state;
    snprintf(e->mnt, sizeof e->mnt, "%s/fs", e->dir);
    assert_int_equal(mkdir(e->mnt, 0700), 0);
    /* root ignores permission bits: a read-only, then a full, filesystem */
    if (mount("tmpfs", e->mnt, "tmpfs", 0, "size=64k,mode=0700") != 0) {
        fprintf(stderr, "SKIP checkpoint test: cannot mount a tmpfs on %s (%s); it needs "
                        "root (CAP_SYS_ADMIN)\n", e->mnt, strerror(errno));
        skip();
    }
    e->mounted = 1;
    assert_int_equal(gs_tk_broker_start(&e->broker, e->store, NULL), 0);
    char cp[200], tmp[210];
    snprintf(cp, sizeof cp, "%s/feed.cp", e->mnt);
    snprintf(tmp, sizeof tmp, "%s.tmp", cp);
    const char *p[] = { S_PREFIX };
    gs_sub_t *sub = gs_sub_new(e->broker.feed, e->broker.upload, p, 1, cp, 0, NULL, NULL);
    assert_non_null(sub);
    assert_int_equal(gs_sub_checkpoint(sub, "first"), 0);
    char before[4096];
    snprintf(before, sizeof before, "%s", s_file(cp));
    assert_non_null(strstr(before, "extra first\n"));

    /* read-only: the temporary file cannot even be made */
    assert_int_equal(mount(NULL, e->mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0);
    assert_int_equal(gs_sub_checkpoint(sub, "second"), GS_CLIENT_EIO);
    assert_string_equal(s_file(cp), before);
    assert_int_equal(access(tmp, F_OK), -1);

    /* full: the write fails; the temporary file is removed again */
    assert_int_equal(mount(NULL, e->mnt, "tmpfs", MS_REMOUNT, "size=64k"), 0);
    char fill[200];
    snprintf(fill, sizeof fill, "%s/fill", e->mnt);
    int fd = open(fill, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    char block[4096];
    memset(block, 'x', sizeof block);
    while (write(fd, block, sizeof block) > 0)
        ;
    while (write(fd, block, 1) > 0) /* the last bytes of the last page */
        ;
    close(fd);
    char extra[200];
    memset(extra, 'y', sizeof extra - 1);
    extra[sizeof extra - 1] = 0;
    assert_int_equal(gs_sub_checkpoint(sub, extra), GS_CLIENT_EIO);
    assert_string_equal(s_file(cp), before);
    assert_int_equal(access(tmp, F_OK), -1);

    /* room again: checkpoints work */
    assert_int_equal(unlink(fill), 0);
    assert_int_equal(gs_sub_checkpoint(sub, "third"), 0);
    assert_non_null(strstr(s_file(cp), "extra third\n"));
    gs_sub_destroy(&sub);
    assert_int_equal(gs_fk_broker_term(&e->broker), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slow_and_offline_subscribers, gs_fk_setup, gs_fk_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_cannot_be_written, gs_fk_setup,
                                        gs_fk_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

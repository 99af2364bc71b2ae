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
 * A store restored from an older backup hands out seqs again from the
 * backup's head. A subscriber that was ahead must not take the new events
 * for ones it has (or skip them): it reports GS_CLIENT_ELINEAGE, whether it
 * was following live across the restore or starts from a checkpoint, with
 * an epoch in it or (a checkpoint written before epochs) without one, and
 * after gs_sub_rebaseline it follows the restored log from seq 0.
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
#include "gs_store.h"

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

/* Upload uploads x 10 fresh records (ids tagged tag) and wait for the acks. */
static void
s_load(const s_env_t *e, const char *tag, long uploads)
{
    gs_fk_load_opts_t lo = {
        .endpoint = e->broker.upload, .tag = tag, .grids = s_grids,
        .n_grids = sizeof s_grids / sizeof s_grids[0], .records = 10, .members = 2,
        .timeout_ms = 5000, .retries = 20, .max_uploads = uploads,
    };
    gs_fk_load_t *l = gs_fk_load_start(&lo, 1);
    assert_non_null(l);
    assert_int_equal(gs_fk_load_wait(l, (uint64_t) uploads, 60000), 0);
    gs_fk_load_stop(l);
    assert_int_equal(gs_fk_load_errors(l), 0);
    gs_fk_load_destroy(&l);
}

/* Deliver until prefix position >= last; returns how many events. */
static size_t
s_drain(gs_sub_t *sub, uint64_t last)
{
    size_t n = 0;
    while (gs_sub_position(sub, 0) < last) {
        Gridsync__V1__ChangeEvent *ev = NULL;
        assert_int_equal(gs_sub_next(sub, 30000, &ev), 0);
        gridsync__v1__change_event__free_unpacked(ev, NULL);
        n++;
    }
    return n;
}

/* A new subscriber on checkpoint cp must report the lineage change at once. */
static void
s_expect_lineage(const s_env_t *e, const char *cp, gs_sub_lineage_t *l)
{
    const char *p[] = { S_PREFIX };
    int err = 0;
    gs_sub_t *sub = gs_sub_new(e->broker.feed, e->broker.upload, p, 1, cp, 0, NULL, &err);
    assert_non_null(sub);
    Gridsync__V1__ChangeEvent *ev = NULL;
    assert_int_equal(gs_sub_next(sub, 0, &ev), GS_CLIENT_ELINEAGE);
    assert_null(ev);
    assert_int_equal(gs_sub_next(sub, 0, &ev), GS_CLIENT_ELINEAGE); /* and stays so */
    assert_int_equal(gs_sub_lineage(sub, l), 1);
    fprintf(stderr, "lineage: %s\n", l->message);
    gs_sub_destroy(&sub);
}

/* Copy a checkpoint file without its epoch line (one written before epochs). */
static void
s_strip_epoch(const char *from, const char *to)
{
    FILE *in = fopen(from, "r"), *out = fopen(to, "w");
    assert_non_null(in);
    assert_non_null(out);
    char line[512];
    int had = 0;
    while (fgets(line, sizeof line, in)) {
        if (!strncmp(line, "epoch ", 6))
            had = 1;
        else
            fputs(line, out);
    }
    fclose(in);
    fclose(out);
    assert_true(had);
}

static void
s_copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "r"), *out = fopen(to, "w");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

static void
test_restored_store(void **state)
{
    s_env_t *e = *state;
    assert_int_equal(gs_tk_broker_start_fixed(&e->broker, e->store, NULL, 0), 0);
    s_load(e, "R1", 5);

    /* the backup: taken while the broker is stopped, given an epoch of its
     * own as a restore does */
    assert_int_equal(gs_fk_broker_term(&e->broker), 0);
    char backup[200];
    snprintf(backup, sizeof backup, "%s/backup", e->dir);
    uint64_t e1 = gs_tk_store_epoch(e->store);
    static const uint8_t v[8] = { 0x5e, 0xed, 0x0f, 0x12, 0x34, 0x56, 0x78, 0x9a };
    gs_tk_store_backup_epoch(e->store, backup, v);
    uint64_t e2 = gs_tk_store_epoch(backup);
    assert_int_not_equal(e1, e2);
    uint64_t *seqs = NULL, backup_head = 0;

    /* more events after the backup; a subscriber follows all of them */
    assert_int_equal(gs_tk_broker_restart(&e->broker, NULL), 0);
    s_load(e, "R2", 5);
    uint64_t last = 0;
    size_t n_log = gs_fk_log_seqs(e->store, S_PREFIX, &seqs, &last);
    assert_true(n_log != (size_t) -1 && n_log > 0);
    free(seqs);
    char cp[200], cp_e1[200], cp_old[200];
    snprintf(cp, sizeof cp, "%s/live.cp", e->dir);
    snprintf(cp_e1, sizeof cp_e1, "%s/e1.cp", e->dir);
    snprintf(cp_old, sizeof cp_old, "%s/old.cp", e->dir);
    const char *p[] = { S_PREFIX };
    int err = 0;
    gs_sub_t *sub = gs_sub_new(e->broker.feed, e->broker.upload, p, 1, cp, 0, NULL, &err);
    assert_non_null(sub);
    assert_int_equal(s_drain(sub, last), n_log);
    assert_int_equal(gs_sub_epoch(sub), e1);
    assert_int_equal(gs_sub_checkpoint(sub, NULL), 0);
    s_copy_file(cp, cp_e1);
    s_strip_epoch(cp, cp_old);

    /* the restore: the older copy replaces the store, and new uploads get
     * seqs the subscriber already holds */
    assert_int_equal(gs_fk_broker_term(&e->broker), 0);
    gs_tk_rmtree(e->store);
    assert_int_equal(rename(backup, e->store), 0);
    assert_int_equal(gs_tk_broker_restart(&e->broker, NULL), 0);
    s_load(e, "R3", 1);
    n_log = gs_fk_log_seqs(e->store, S_PREFIX, &seqs, &backup_head);
    free(seqs);
    uint64_t head = 0;
    {
        gs_store_opts_t ro;
        gs_store_opts_init(&ro);
        ro.read_only = 1;
        gs_store_t *st = gs_store_new(e->store, &ro, NULL);
        assert_non_null(st);
        assert_int_equal(gs_store_head(st, &head), 0);
        gs_store_destroy(&st);
    }
    assert_true(head < last);
    {
        /* sync and snapshot replies carry the restored store's epoch */
        gs_client_t *c = gs_client_new(e->broker.upload, NULL);
        assert_non_null(c);
        Gridsync__V1__SyncResponse *sr = NULL;
        gs_client_error_t ce;
        assert_int_equal(gs_client_sync(c, p, 1, 0, 1, 0, &sr, &ce), 0);
        assert_int_equal(sr->store_epoch, e2);
        gridsync__v1__sync_response__free_unpacked(sr, NULL);
        Gridsync__V1__SnapshotResponse *pr = NULL;
        assert_int_equal(gs_client_snapshot(c, p, 1, NULL, 0, 1, &pr, &ce), 0);
        assert_int_equal(pr->store_epoch, e2);
        gridsync__v1__snapshot_response__free_unpacked(pr, NULL);
        gs_client_destroy(&c);
    }

    /* the live subscriber hears it in the next heartbeat; nothing is
     * delivered meanwhile (the new seqs are at or below its position) */
    int r = 1;
    for (int i = 0; i < 30 && r == 1; i++) {
        Gridsync__V1__ChangeEvent *ev = NULL;
        r = gs_sub_next(sub, 1000, &ev);
        if (r == 0) {
            fprintf(stderr, "delivered seq %llu of the restored store as a new event\n",
                    (unsigned long long) ev->seq);
            gridsync__v1__change_event__free_unpacked(ev, NULL);
        }
    }
    assert_int_equal(r, GS_CLIENT_ELINEAGE);
    gs_sub_lineage_t l;
    assert_int_equal(gs_sub_lineage(sub, &l), 1);
    assert_int_equal(l.epoch, e1);
    assert_int_equal(l.broker_epoch, e2);
    assert_non_null(strstr(l.message, "epoch"));
    /* its checkpoint keeps the old lineage, so a restart reports it again */
    assert_int_equal(gs_sub_checkpoint(sub, NULL), 0);
    s_expect_lineage(e, cp, &l);
    assert_int_equal(l.epoch, e1);

    /* a checkpoint from before epochs: the head below the position tells */
    s_expect_lineage(e, cp_old, &l);
    assert_int_equal(l.epoch, 0);
    assert_int_equal(l.head_seq, head);
    assert_int_equal(l.position, last);
    assert_non_null(strstr(l.message, "below"));

    /* re-baseline: the restored log from seq 0, under the new epoch */
    assert_int_equal(gs_sub_rebaseline(sub), 0);
    assert_int_equal(gs_sub_epoch(sub), e2);
    assert_int_equal(gs_sub_position(sub, 0), 0);
    assert_int_equal(s_drain(sub, backup_head), n_log);
    assert_int_equal(gs_sub_checkpoint(sub, NULL), 0);
    gs_sub_destroy(&sub);

    /* the restored store grows past the old position: only the epoch can
     * tell now, and it does */
    s_load(e, "R4", 8);
    n_log = gs_fk_log_seqs(e->store, S_PREFIX, &seqs, &last);
    free(seqs);
    s_expect_lineage(e, cp_e1, &l);
    assert_int_equal(l.epoch, e1);
    assert_int_equal(l.broker_epoch, e2);
    /* while the re-baselined checkpoint goes on as usual */
    sub = gs_sub_new(e->broker.feed, e->broker.upload, p, 1, cp, 0, NULL, &err);
    assert_non_null(sub);
    assert_true(s_drain(sub, last) > 0);
    assert_int_equal(gs_sub_epoch(sub), e2);
    gs_sub_destroy(&sub);
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
        cmocka_unit_test_setup_teardown(test_restored_store, gs_fk_setup, gs_fk_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_cannot_be_written, gs_fk_setup,
                                        gs_fk_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

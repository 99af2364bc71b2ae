/*
 * test_fault_storage: the store runs out of room.
 *
 * Map full: a broker started with a 1 MiB LMDB map keeps accepting while
 * the map grows under concurrent uploads and reads; each growth aborts the
 * group transaction and applies it again, so no batch is lost or half
 * applied.
 *
 * Disk full: the store lives on a 12 MiB tmpfs mounted for the test (root
 * only; skipped with the reason otherwise) that a ballast file fills. The
 * broker must answer REASON_STORAGE_FULL without acking, stay up, keep
 * serving sync and snapshot reads with everything acked before, and accept
 * the very same upload once the ballast is deleted, without a restart.
 *
 * A damaged registry entry: a storage error while a batch is applied
 * aborts the whole batch; the upload is answered REASON_INTERNAL, nothing
 * is stored, and the broker keeps serving.
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
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_kit.h"
#include "gs_arena.h"
#include "gs_client.h"
#include "gs_store.h"
#include "gs_store_debug.h"

static const char *const s_grids[] = {
    "440305005001001", "440305005001002", "440305005002001", "440305006001001",
};

typedef gs_fk_env_t s_env_t;

/* ---- map full ------------------------------------------------------------- */

static void
test_map_grows_under_load(void **state)
{
    s_env_t *e = *state;
    int soak = gs_fk_soak();
    const char *extra[] = { "--map-size-mb=1", NULL };
    assert_int_equal(gs_tk_broker_start(&e->broker, e->store, extra), 0);

    /* a reader the whole time: growth must wait for no one forever */
    char cp[200];
    snprintf(cp, sizeof cp, "%s/follower.cp", e->dir);
    gs_fk_follow_opts_t fo = {
        .feed = e->broker.feed, .sync = e->broker.upload, .prefix = "",
        .checkpoint = cp, .timeout_ms = 5000,
    };
    gs_fk_follow_t *f = gs_fk_follow_start(&fo);
    assert_non_null(f);
    gs_fk_load_opts_t lo = {
        .endpoint = e->broker.upload, .tag = "M", .grids = s_grids,
        .n_grids = sizeof s_grids / sizeof s_grids[0], .records = 20, .members = 8,
        .timeout_ms = 10000, .retries = 5, .max_uploads = soak ? 1000 : 60,
    };
    gs_fk_load_t *l = gs_fk_load_start(&lo, 3);
    assert_non_null(l);
    assert_int_equal(gs_fk_load_wait(l, 3 * (uint64_t) lo.max_uploads, 60000), 0);
    gs_fk_load_stop(l);
    assert_int_equal(gs_fk_load_errors(l), 0);

    double grows = gs_fk_metric(&e->broker, "gridsync_map_grows_total");
    double map = gs_fk_metric(&e->broker, "gridsync_store_map_bytes");
    double fails = gs_fk_metric(&e->broker, "gridsync_commit_failures_total");
    fprintf(stderr, "map grew %.0f times to %.0f bytes; %.0f commit failures\n", grows, map,
            fails);
    assert_true(grows > 0);
    assert_true(map > 1024.0 * 1024.0);
    assert_true(fails == 0); /* growth is not a failure: nobody was refused */

    size_t n = 0;
    const gs_fk_ack_t *acks = gs_fk_load_acks(l, &n);
    assert_int_equal(n, 3 * (size_t) lo.max_uploads * (size_t) lo.records);
    assert_int_equal(gs_fk_check_store(e->store, acks, n), 0);

    uint64_t *want = NULL, last = 0;
    size_t n_want = gs_fk_log_seqs(e->store, "", &want, &last);
    assert_int_equal(n_want, n);
    assert_int_equal(gs_fk_follow_finish(f, last, 30000), 0);
    size_t n_got = 0;
    const uint64_t *got = gs_fk_follow_seqs(f, &n_got);
    assert_int_equal(gs_fk_seqs_compare("follower", got, n_got, want, n_want), 0);
    free(want);
    gs_fk_follow_destroy(&f);
    gs_fk_load_destroy(&l);
    assert_int_equal(gs_fk_broker_term(&e->broker), 0);
}

/* ---- disk full ------------------------------------------------------------ */

/* Upload k of the disk-full test: 10 fresh households of 8 persons. */
static void
s_disk_upload(gs_arena_t *a, int k, Gridsync__V1__Upload *up, char *uid, size_t uid_size)
{
    enum { PER = 10 };
    Gridsync__V1__Record **recs = gs_arena_alloc(a, PER * sizeof *recs);
    for (int r = 0; r < PER; r++) {
        char id[32];
        snprintf(id, sizeof id, "D-%d-%d", k, r);
        recs[r] = gs_tk_household(a, s_grids[(k + r) % 4], id, NULL, 8,
                                  (uint32_t) (1 + (k * PER + r) * 8));
    }
    snprintf(uid, uid_size, "up-D-%d", k);
    gridsync__v1__upload__init(up);
    up->device_id = "dev-D";
    up->upload_id = uid;
    up->records = recs;
    up->n_records = PER;
}

static void
s_ack_note(gs_fk_ack_t *acks, size_t *n, const Gridsync__V1__Upload *up,
           const Gridsync__V1__Ack *ack)
{
    assert_int_equal(ack->n_results, up->n_records);
    for (size_t i = 0; i < ack->n_results; i++) {
        const Gridsync__V1__RecordResult *r = ack->results[i];
        assert_int_equal(r->status, GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
        assert_int_equal(r->version, 1);
        gs_fk_ack_t *x = &acks[(*n)++];
        snprintf(x->id, sizeof x->id, "%s", r->record_key);
        snprintf(x->grid, sizeof x->grid, "%s", up->records[i]->household->grid_code);
        x->version = r->version;
        x->seq = r->seq;
    }
}

/* Does the broker, through its read services, still show exactly the acked
 * records (and nothing of the failed upload)? */
static void
s_reads_intact(gs_client_t *c, const gs_fk_ack_t *acks, size_t n, const char *failed_prefix)
{
    /* snapshot: every acked record, at its acked version */
    const char *all[] = { "" };
    size_t seen = 0;
    uint8_t *cursor = NULL;
    size_t cursor_len = 0;
    for (;;) {
        Gridsync__V1__SnapshotResponse *snap = NULL;
        gs_client_error_t err;
        assert_int_equal(gs_client_snapshot(c, all, 1, cursor, cursor_len, 100, &snap, &err), 0);
        for (size_t i = 0; i < snap->n_entries; i++) {
            const Gridsync__V1__SnapshotEntry *en = snap->entries[i];
            assert_true(strncmp(en->record_key, failed_prefix, strlen(failed_prefix)) != 0);
            const gs_fk_ack_t *a = NULL;
            for (size_t k = 0; k < n && !a; k++)
                if (strcmp(acks[k].id, en->record_key) == 0)
                    a = &acks[k];
            assert_non_null(a);
            assert_int_equal(en->version, a->version);
            assert_int_equal(en->seq, a->seq);
            seen++;
        }
        free(cursor);
        cursor = NULL;
        cursor_len = snap->next_cursor.len;
        if (cursor_len) {
            cursor = malloc(cursor_len);
            memcpy(cursor, snap->next_cursor.data, cursor_len);
        }
        gridsync__v1__snapshot_response__free_unpacked(snap, NULL);
        if (!cursor_len)
            break;
    }
    assert_int_equal(seen, n);
    /* sync: the change log, one event per acked record, 1..n */
    uint64_t since = 0, count = 0;
    for (;;) {
        Gridsync__V1__SyncResponse *r = NULL;
        gs_client_error_t err;
        assert_int_equal(gs_client_sync(c, all, 1, since, 0, 0, &r, &err), 0);
        for (size_t i = 0; i < r->n_events; i++) {
            assert_int_equal(r->events[i]->seq, count + 1);
            assert_true(strncmp(r->events[i]->record_key, failed_prefix,
                                strlen(failed_prefix)) != 0);
            count++;
        }
        int done = r->next_seq >= r->head_seq;
        since = r->next_seq;
        gridsync__v1__sync_response__free_unpacked(r, NULL);
        if (done)
            break;
    }
    assert_int_equal(count, n);
}

/* Fill the filesystem at fs_dir with a file at path until keep bytes are
 * left free. */
static void
s_ballast(const char *fs_dir, const char *path, long long keep)
{
    struct statvfs sv;
    assert_int_equal(statvfs(fs_dir, &sv), 0);
    long long avail = (long long) sv.f_bavail * (long long) sv.f_frsize;
    long long want = avail - keep;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    static char chunk[1 << 16];
    memset(chunk, 0x5a, sizeof chunk);
    while (want > 0) {
        size_t n = want < (long long) sizeof chunk ? (size_t) want : sizeof chunk;
        ssize_t w = write(fd, chunk, n);
        if (w <= 0)
            break;
        want -= w;
    }
    close(fd);
}

static void
test_disk_full(void **state)
{
    s_env_t *e = *state;
    snprintf(e->mnt, sizeof e->mnt, "%s/fs", e->dir);
    assert_int_equal(mkdir(e->mnt, 0700), 0);
    if (mount("tmpfs", e->mnt, "tmpfs", 0, "size=12m,mode=0700") != 0) {
        fprintf(stderr, "SKIP disk-full test: cannot mount a 12 MiB tmpfs on %s (%s); it needs "
                        "root (CAP_SYS_ADMIN)\n", e->mnt, strerror(errno));
        skip();
    }
    e->mounted = 1;
    /* the store on the small filesystem, the broker's log beside it on the
     * big one (the log goes to STORE.log) */
    char real_store[200];
    snprintf(real_store, sizeof real_store, "%s/store", e->mnt);
    assert_int_equal(mkdir(real_store, 0700), 0);
    assert_int_equal(symlink(real_store, e->store), 0);
    assert_int_equal(gs_tk_broker_start(&e->broker, e->store, NULL), 0);

    gs_client_opts_t co;
    gs_client_opts_init(&co);
    co.timeout_ms = 10000;
    co.retries = 0; /* the probe: one answer, no retry-later loop */
    gs_client_t *probe = gs_client_new(e->broker.upload, &co);
    gs_arena_t *a = gs_arena_new(0);
    size_t cap = 4000, n = 0;
    gs_fk_ack_t *acks = calloc(cap, sizeof *acks);

    /* some data first, then the ballast leaves ~1 MiB */
    int k = 0;
    for (; k < 20; k++) {
        Gridsync__V1__Upload up;
        char uid[32];
        s_disk_upload(a, k, &up, uid, sizeof uid);
        Gridsync__V1__Ack *ack = NULL;
        gs_client_error_t err;
        assert_int_equal(gs_client_upload(probe, &up, &ack, &err), 0);
        s_ack_note(acks, &n, &up, ack);
        gridsync__v1__ack__free_unpacked(ack, NULL);
    }
    char ballast[200];
    snprintf(ballast, sizeof ballast, "%s/ballast", e->mnt);
    s_ballast(e->mnt, ballast, 1 << 20);

    /* upload until the broker says the storage is full */
    Gridsync__V1__Upload failed;
    char failed_uid[32];
    int full = 0;
    for (; k < 300 && !full; k++) {
        s_disk_upload(a, k, &failed, failed_uid, sizeof failed_uid);
        Gridsync__V1__Ack *ack = NULL;
        gs_client_error_t err;
        int rc = gs_client_upload(probe, &failed, &ack, &err);
        if (rc == 0) {
            assert_true(n + failed.n_records <= cap);
            s_ack_note(acks, &n, &failed, ack);
            gridsync__v1__ack__free_unpacked(ack, NULL);
            continue;
        }
        if (rc != GS_CLIENT_ESERVER)
            fprintf(stderr, "upload %s: %s: %s\n", failed_uid, gs_client_strerror(rc),
                    err.message);
        fprintf(stderr, "after %zu acked records: reason %d \"%s\"\n", n, err.reason,
                err.message);
        assert_int_equal(rc, GS_CLIENT_ESERVER);
        assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_STORAGE_FULL);
        full = 1;
    }
    assert_true(full);
    char failed_prefix[32];
    snprintf(failed_prefix, sizeof failed_prefix, "D-%d-", k - 1);

    /* it is still up, still full (the same upload is refused again, not
     * acked), and its reads serve everything acked and nothing else */
    int st = 0;
    assert_int_equal(waitpid(e->broker.pid, &st, WNOHANG), 0);
    {
        Gridsync__V1__Ack *ack = NULL;
        gs_client_error_t err;
        assert_int_equal(gs_client_upload(probe, &failed, &ack, &err), GS_CLIENT_ESERVER);
        assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_STORAGE_FULL);
    }
    s_reads_intact(probe, acks, n, failed_prefix);
    assert_true(gs_fk_metric(&e->broker, "gridsync_commit_failures_total") >= 2);

    /* space comes back: the same upload goes through, no restart */
    assert_int_equal(unlink(ballast), 0);
    gs_client_opts_init(&co);
    co.timeout_ms = 10000;
    gs_client_t *device = gs_client_new(e->broker.upload, &co);
    {
        Gridsync__V1__Ack *ack = NULL;
        gs_client_error_t err;
        int rc = gs_client_upload(device, &failed, &ack, &err);
        if (rc)
            fprintf(stderr, "retry of %s after freeing space: %s: %s (reason %d)\n",
                    failed_uid, gs_client_strerror(rc), err.message, err.reason);
        assert_int_equal(rc, 0);
        s_ack_note(acks, &n, &failed, ack);
        gridsync__v1__ack__free_unpacked(ack, NULL);
    }
    /* and new data after it */
    for (int j = 0; j < 5; j++, k++) {
        Gridsync__V1__Upload up;
        char uid[32];
        s_disk_upload(a, k, &up, uid, sizeof uid);
        Gridsync__V1__Ack *ack = NULL;
        gs_client_error_t err;
        assert_int_equal(gs_client_upload(device, &up, &ack, &err), 0);
        s_ack_note(acks, &n, &up, ack);
        gridsync__v1__ack__free_unpacked(ack, NULL);
    }
    s_reads_intact(device, acks, n, "none-");
    gs_client_destroy(&probe);
    gs_client_destroy(&device);

    assert_int_equal(gs_fk_broker_term(&e->broker), 0);
    gs_fk_acks_sort(acks, n);
    assert_int_equal(gs_fk_check_store(e->store, acks, n), 0);
    free(acks);
    gs_arena_destroy(&a);
}

/* ---- a damaged registry entry ---------------------------------------------- */

/* The grid registry entry of one grid no longer decodes. An upload with a
 * record there and one in a sound grid is refused whole with
 * REASON_INTERNAL (retry later), not answered with a rejection of one
 * record; nothing of it is stored; the sound record alone is then accepted. */
static void
test_damaged_registry_entry(void **state)
{
    s_env_t *e = *state;
    assert_int_equal(gs_tk_broker_start(&e->broker, e->store, NULL), 0);
    gs_store_t *st = gs_store_new(e->store, NULL, NULL);
    assert_non_null(st);
    Gridsync__V1__Grid g = GRIDSYNC__V1__GRID__INIT;
    g.grid_code = (char *) s_grids[0];
    assert_int_equal(gs_store_grid_put(st, &g), 0);
    g.grid_code = (char *) s_grids[1];
    assert_int_equal(gs_store_grid_put(st, &g), 0);
    static const uint8_t junk[] = { 0x0a, 0x7f };
    assert_int_equal(gs_store_debug_put(st, "grids", s_grids[1], 15, junk, sizeof junk), 0);
    gs_store_destroy(&st);

    gs_client_opts_t co;
    gs_client_opts_init(&co);
    co.timeout_ms = 10000;
    co.retries = 0;
    gs_client_t *c = gs_client_new(e->broker.upload, &co);
    gs_arena_t *a = gs_arena_new(0);
    Gridsync__V1__Record *recs[2] = {
        gs_tk_household(a, s_grids[0], "H-sound", NULL, 2, 910000),
        gs_tk_household(a, s_grids[1], "H-damaged", NULL, 2, 920000),
    };
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = "dev-damaged";
    up.upload_id = "u-1";
    up.records = recs;
    up.n_records = 2;
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t err;
    int rc = gs_client_upload(c, &up, &ack, &err);
    if (rc == 0) {
        fprintf(stderr, "acked: record 1 status %d reason %d\n", ack->results[1]->status,
                ack->results[1]->reason);
        gridsync__v1__ack__free_unpacked(ack, NULL);
    }
    assert_int_equal(rc, GS_CLIENT_ESERVER);
    assert_int_equal(err.reason, GRIDSYNC__V1__REASON__REASON_INTERNAL);
    assert_true(gs_fk_metric(&e->broker, "gridsync_commit_failures_total") >= 1);

    gs_store_opts_t ro;
    gs_store_opts_init(&ro);
    ro.read_only = 1;
    st = gs_store_new(e->store, &ro, NULL);
    assert_non_null(st);
    uint64_t head = 7;
    assert_int_equal(gs_store_head(st, &head), 0);
    gs_store_destroy(&st);
    assert_int_equal(head, 0);

    /* the broker is still serving: the sound record alone is stored */
    up.upload_id = "u-2";
    up.n_records = 1;
    assert_int_equal(gs_client_upload(c, &up, &ack, &err), 0);
    assert_int_equal(ack->results[0]->status, GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED);
    gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_client_destroy(&c);
    gs_arena_destroy(&a);
    assert_int_equal(gs_fk_broker_term(&e->broker), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_map_grows_under_load, gs_fk_setup, gs_fk_teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, gs_fk_setup, gs_fk_teardown),
        cmocka_unit_test_setup_teardown(test_damaged_registry_entry, gs_fk_setup,
                                        gs_fk_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_fault_store: the store's files under operator mistakes and damage.
 *
 * One store, one broker: a second gridsyncd on a store a broker runs on is
 * refused with a message naming the first one's pid, also after lock.mdb
 * was deleted under the first, and the first one's admin socket keeps
 * answering. A broker never removes an admin socket someone else listens
 * on, nor a file that is not a socket; a socket left by a killed broker is
 * replaced.
 *
 * Hot backups: taken while devices upload and the store grows past the
 * backup's map (MDB_MAP_RESIZED at the copy), each succeeds, opens,
 * verifies, holds everything committed before it started, has modes
 * 0700/0600 and its own lineage epoch; a backup that fails half-way (the
 * file size limit) leaves nothing behind.
 *
 * Damage: a data.mdb truncated to half is refused with a message by the
 * store, gridsyncd and gridctl verify, without a signal; garbage over its
 * pages makes gridctl verify report damage, never crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_kit.h"
#include "gs_store.h"
#include "gs_store_debug.h"

static const char *const s_grids[] = {
    "440305005001001", "440305005001002", "440305005002001", "440305006001001",
};

typedef gs_fk_env_t s_env_t;

/* ---- running programs ----------------------------------------------------- */

/* Run argv with stdout and stderr into out (NUL-terminated, truncated to
 * size). fsize_limit > 0 runs it under that RLIMIT_FSIZE, with SIGXFSZ
 * ignored so that a write past it fails with EFBIG. A program that logs
 * event=ready (a broker that should have been refused) is sent SIGTERM so
 * that it ends. Returns the wait status; the bound turns a hang into a
 * failure. */
static int
s_run(const char *const *argv, char *out, size_t size, long fsize_limit)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        dup2(p[1], STDERR_FILENO);
        if (fsize_limit > 0) {
            struct rlimit rl = { (rlim_t) fsize_limit, (rlim_t) fsize_limit };
            signal(SIGXFSZ, SIG_IGN);
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        execv(argv[0], (char *const *) argv);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    int termed = 0;
    out[0] = 0;
    for (;;) {
        struct pollfd pf = { p[0], POLLIN, 0 };
        int n = poll(&pf, 1, 120000);
        if (n <= 0) {
            fprintf(stderr, "%s did not finish; killing it\n", argv[0]);
            kill(pid, SIGKILL);
            break;
        }
        char buf[4096];
        ssize_t got = read(p[0], buf, sizeof buf);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        size_t take = (size_t) got < size - 1 - len ? (size_t) got : size - 1 - len;
        memcpy(out + len, buf, take);
        len += take;
        out[len] = 0;
        if (!termed && strstr(out, "event=ready")) {
            kill(pid, SIGTERM);
            termed = 1;
        }
    }
    close(p[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    fprintf(stderr, "--- %s ... -> %s %d\n%s---\n", argv[0],
            WIFSIGNALED(st) ? "signal" : "exit",
            WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), out);
    return st;
}

/* A second gridsyncd on store, on ports of its own. */
static int
s_run_broker(const char *store, const char *admin, char *out, size_t size)
{
    char store_arg[300], admin_arg[300];
    snprintf(store_arg, sizeof store_arg, "--store=%s", store);
    snprintf(admin_arg, sizeof admin_arg, "--admin-endpoint=ipc://%s", admin ? admin : "");
    const char *argv[] = { GS_GRIDSYNCD, store_arg, "--upload-endpoint=tcp://127.0.0.1:*",
                           "--feed-endpoint=tcp://127.0.0.1:*", "--metrics-port=0",
                           "--insecure-dev", admin ? admin_arg : NULL, NULL };
    return s_run(argv, out, size, 0);
}

#define S_GRIDCTL(out, limit, ...)                                                   \
    s_run((const char *const[]) { GS_GRIDCTL, __VA_ARGS__, NULL }, out, sizeof out, limit)

static int
s_exited(int st, int code)
{
    return WIFEXITED(st) && WEXITSTATUS(st) == code;
}

/* Upload uploads uploads of 20 records to the running broker. */
static void
s_load(s_env_t *e, const char *tag, long uploads)
{
    gs_fk_load_opts_t lo = {
        .endpoint = e->broker.upload, .tag = tag, .grids = s_grids,
        .n_grids = sizeof s_grids / sizeof s_grids[0], .records = 20, .members = 6,
        .timeout_ms = 10000, .retries = 5, .max_uploads = uploads,
    };
    gs_fk_load_t *l = gs_fk_load_start(&lo, 2);
    assert_non_null(l);
    assert_int_equal(gs_fk_load_wait(l, 2 * (uint64_t) uploads, 60000), 0);
    gs_fk_load_stop(l);
    assert_int_equal(gs_fk_load_errors(l), 0);
    gs_fk_load_destroy(&l);
}

/* A store with data and no broker. */
static void
s_filled_store(s_env_t *e)
{
    assert_int_equal(gs_tk_broker_start(&e->broker, e->store, NULL), 0);
    s_load(e, "F", 15);
    assert_int_equal(gs_fk_broker_term(&e->broker), 0);
}

static off_t
s_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_size : -1;
}

/* Entries of dir whose name contains part. */
static int
s_entries_with(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strstr(de->d_name, part)) {
            fprintf(stderr, "left behind: %s/%s\n", dir, de->d_name);
            n++;
        }
    closedir(d);
    return n;
}

/* ---- one store, one broker -------------------------------------------------------- */

static void
s_health_up(const char *store)
{
    char out[8192];
    int st = S_GRIDCTL(out, 0, "--store", store, "health");
    assert_true(s_exited(st, 0));
    assert_non_null(strstr(out, "broker    up"));
}

static void
test_second_broker_refused(void **state)
{
    s_env_t *e = *state;
    assert_int_equal(gs_tk_broker_start(&e->broker, e->store, NULL), 0);
    char want[64], out[16384];
    snprintf(want, sizeof want, "gridsyncd pid %d", (int) e->broker.pid);

    int st = s_run_broker(e->store, NULL, out, sizeof out);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    assert_non_null(strstr(out, "event=store_locked"));
    assert_non_null(strstr(out, want));
    s_health_up(e->store);

    /* LMDB's lock file deleted under the running broker: LMDB alone would
     * let a second writer in beside it; the store lock does not */
    char lock[300];
    snprintf(lock, sizeof lock, "%s/lock.mdb", e->store);
    assert_int_equal(unlink(lock), 0);
    st = s_run_broker(e->store, NULL, out, sizeof out);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    assert_non_null(strstr(out, want));
    /* gridctl would make a lock.mdb of its own that the broker never looks
     * at: writes and reads alike are refused until the broker restarts */
    char deleted[96];
    snprintf(deleted, sizeof deleted, "lock.mdb was deleted under gridsyncd pid %d",
             (int) e->broker.pid);
    st = S_GRIDCTL(out, 0, "--store", e->store, "devices", "add", "dev-x", "--prefix", "440305",
                   "--collector", "c1");
    assert_true(s_exited(st, 1));
    assert_non_null(strstr(out, deleted));
    st = S_GRIDCTL(out, 0, "--store", e->store, "health");
    assert_true(s_exited(st, 1));
    assert_non_null(strstr(out, deleted));
    assert_true(s_size(lock) < 0);
    s_load(e, "L", 3);  /* the broker goes on taking uploads */

    /* the lock goes with the broker: after a clean stop, and after SIGKILL
     * (which leaves its admin socket behind for the next one to replace) */
    assert_int_equal(gs_fk_broker_term(&e->broker), 0);
    assert_int_equal(gs_tk_broker_start(&e->broker, e->store, NULL), 0);
    s_health_up(e->store);
    st = S_GRIDCTL(out, 0, "--store", e->store, "verify");
    assert_true(s_exited(st, 0));
    gs_tk_broker_stop(&e->broker, SIGKILL);
    char sock[300];
    snprintf(sock, sizeof sock, "%s/admin.sock", e->store);
    assert_true(s_size(sock) >= 0);
    assert_int_equal(gs_tk_broker_start(&e->broker, e->store, NULL), 0);
    s_health_up(e->store);
}

static void
test_admin_socket_kept(void **state)
{
    s_env_t *e = *state;
    /* someone else listens on the configured admin path */
    char path[200], out[16384];
    snprintf(path, sizeof path, "%s/other.sock", e->dir);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 4), 0);
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    int st = s_run_broker(e->store, path, out, sizeof out);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    assert_non_null(strstr(out, "event=admin_refused"));
    assert_int_equal(stat(path, &after), 0);
    assert_true(before.st_ino == after.st_ino);
    close(fd);

    /* a file that is not a socket */
    snprintf(path, sizeof path, "%s/plain", e->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("keep me\n", f);
    fclose(f);
    st = s_run_broker(e->store, path, out, sizeof out);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    assert_non_null(strstr(out, "event=admin_refused"));
    assert_int_equal(s_size(path), 8);
}

/* ---- hot backups ------------------------------------------------------------------- */

/* A backup in dest: 0700 with data.mdb and secret.key, 0600 (and LMDB's
 * lock.mdb once something opened it, as gridctl backup does); opens,
 * verifies clean, holds at least head and records; its epoch (returned) is
 * set. */
static uint64_t
s_check_backup(const char *dest, uint64_t head, uint64_t records)
{
    struct stat sb;
    assert_int_equal(stat(dest, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0700);
    DIR *d = opendir(dest);
    assert_non_null(d);
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[400];
        snprintf(p, sizeof p, "%s/%s", dest, de->d_name);
        assert_int_equal(stat(p, &sb), 0);
        if (!strcmp(de->d_name, "lock.mdb"))
            files--;
        else if (strcmp(de->d_name, "data.mdb") && strcmp(de->d_name, "secret.key"))
            fail_msg("unexpected file in the backup: %s", p);
        assert_int_equal(sb.st_mode & 07777, 0600);
        files++;
    }
    closedir(d);
    assert_int_equal(files, 2);

    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.read_only = 1;
    int err = 0;
    gs_store_t *st = gs_store_new(dest, &o, &err);
    assert_non_null(st);
    uint64_t problems = 0;
    assert_int_equal(gs_store_verify(st, NULL, NULL, &problems), 0);
    assert_int_equal(problems, 0);
    gs_store_info_t info;
    assert_int_equal(gs_store_info(st, &info), 0);
    assert_true(info.head_seq >= head);
    assert_true(info.records >= records);
    uint8_t ep[8];
    size_t n = 0;
    assert_int_equal(gs_store_debug_get(st, "meta", "epoch", 5, ep, sizeof ep, &n), 0);
    assert_int_equal(n, 8);
    uint64_t epoch = 0;
    for (int i = 7; i >= 0; i--)
        epoch = epoch << 8 | ep[i];
    assert_true(epoch != 0);
    gs_store_destroy(&st);
    return epoch;
}

static void
test_backup_while_growing(void **state)
{
    s_env_t *e = *state;
    const char *extra[] = { "--map-size-mb=1", NULL };
    assert_int_equal(gs_tk_broker_start(&e->broker, e->store, extra), 0);
    gs_fk_load_opts_t lo = {
        .endpoint = e->broker.upload, .tag = "G", .grids = s_grids,
        .n_grids = sizeof s_grids / sizeof s_grids[0], .records = 20, .members = 8,
        .timeout_ms = 10000, .retries = 5, .max_uploads = 0,
    };
    gs_fk_load_t *l = gs_fk_load_start(&lo, 2);
    assert_non_null(l);
    assert_int_equal(gs_fk_load_wait(l, 10, 60000), 0);

    uint64_t epochs[8];
    for (int round = 0; round < 8; round++) {
        /* the backup's own view of the store, mapped no larger than the
         * data is now (LMDB raises a small map to that), as gridctl's is
         * once the broker's writes outgrow it */
        gs_store_opts_t o;
        gs_store_opts_init(&o);
        o.read_only = 1;
        o.map_size = 4096;
        int err = 0;
        gs_store_t *h = gs_store_new(e->store, &o, &err);
        if (!h)
            fail_msg("open for backup %d: %s (%s)", round, gs_store_strerror(err),
                     gs_store_errdetail());
        gs_store_info_t before;
        assert_int_equal(gs_store_info(h, &before), 0);
        /* the broker commits new pages meanwhile: the copy's read
         * transaction then finds the map outgrown (MDB_MAP_RESIZED) */
        assert_int_equal(gs_fk_load_wait(l, gs_fk_load_acked(l) + 10, 60000), 0);
        char dest[200];
        snprintf(dest, sizeof dest, "%s/backup-%d", e->dir, round);
        err = gs_store_backup(h, dest);
        if (err)
            fail_msg("backup %d: %s (%s)", round, gs_store_strerror(err), gs_store_errdetail());
        gs_store_destroy(&h);
        epochs[round] = s_check_backup(dest, before.head_seq, before.records);
        for (int i = 0; i < round; i++)
            assert_true(epochs[i] != epochs[round]);
        assert_int_equal(s_entries_with(e->dir, ".tmp-"), 0);
    }

    /* and through gridctl, as an operator takes it */
    char out[8192], dest[200];
    snprintf(dest, sizeof dest, "%s/backup-cli", e->dir);
    int st = S_GRIDCTL(out, 0, "--store", e->store, "backup", dest);
    assert_true(s_exited(st, 0));
    gs_fk_load_stop(l);
    assert_int_equal(gs_fk_load_errors(l), 0);
    gs_fk_load_destroy(&l);
    double grows = gs_fk_metric(&e->broker, "gridsync_map_grows_total");
    fprintf(stderr, "the broker's map grew %.0f times during the backups\n", grows);
    assert_true(grows > 0);
    assert_int_equal(gs_fk_broker_term(&e->broker), 0);
    s_check_backup(dest, 0, 0);
}

static void
test_backup_failure_leaves_nothing(void **state)
{
    s_env_t *e = *state;
    assert_int_equal(gs_tk_broker_start(&e->broker, e->store, NULL), 0);
    s_load(e, "B", 20);
    char data[300], dest[200], out[8192];
    snprintf(data, sizeof data, "%s/data.mdb", e->store);
    assert_true(s_size(data) > 256 * 1024);

    /* the copy runs into the file size limit half-way */
    snprintf(dest, sizeof dest, "%s/backup", e->dir);
    int st = S_GRIDCTL(out, 128 * 1024, "--store", e->store, "backup", dest);
    assert_true(s_exited(st, 1));
    assert_int_equal(s_entries_with(e->dir, "backup"), 0);

    /* an existing, non-empty destination is left as it was */
    assert_int_equal(mkdir(dest, 0755), 0);
    char keep[300];
    snprintf(keep, sizeof keep, "%s/keep", dest);
    FILE *f = fopen(keep, "w");
    assert_non_null(f);
    fclose(f);
    st = S_GRIDCTL(out, 0, "--store", e->store, "backup", dest);
    assert_true(s_exited(st, 1));
    assert_int_equal(s_size(keep), 0);
    assert_int_equal(s_entries_with(e->dir, ".tmp-"), 0);
    assert_int_equal(unlink(keep), 0);
    assert_int_equal(rmdir(dest), 0);

    /* nothing in the way of the next one */
    st = S_GRIDCTL(out, 0, "--store", e->store, "backup", dest);
    assert_true(s_exited(st, 0));
    s_check_backup(dest, 1, 1);
}

/* ---- restore ------------------------------------------------------------------------ */

static void
test_restore(void **state)
{
    s_env_t *e = *state;
    s_filled_store(e);
    char bk[200], out[16384];
    snprintf(bk, sizeof bk, "%s/bk", e->dir);
    int st = S_GRIDCTL(out, 0, "--store", e->store, "backup", bk);
    assert_true(s_exited(st, 0));
    uint64_t bk_epoch = s_check_backup(bk, 1, 1);

    /* refused while a broker holds the store, naming it */
    assert_int_equal(gs_tk_broker_start(&e->broker, e->store, NULL), 0);
    char want[64];
    snprintf(want, sizeof want, "gridsyncd pid %d", (int) e->broker.pid);
    st = S_GRIDCTL(out, 0, "restore", "--force", bk, e->store);
    assert_true(s_exited(st, 1));
    assert_non_null(strstr(out, want));
    s_health_up(e->store);
    assert_int_equal(gs_fk_broker_term(&e->broker), 0);

    /* a store there: refused without --force, swapped in with it */
    st = S_GRIDCTL(out, 0, "restore", bk, e->store);
    assert_true(s_exited(st, 1));
    assert_int_equal(s_entries_with(e->dir, "replaced"), 0);
    st = S_GRIDCTL(out, 0, "restore", "--force", bk, e->store);
    assert_true(s_exited(st, 0));
    assert_int_equal(s_entries_with(e->dir, "store.replaced-"), 1);
    assert_int_equal(s_entries_with(e->dir, ".tmp-"), 0);
    struct stat sb;
    assert_int_equal(stat(e->store, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0700);
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.read_only = 1;
    int err = 0;
    gs_store_t *s = gs_store_new(e->store, &o, &err);
    assert_non_null(s);
    uint8_t ep[8];
    size_t n = 0;
    assert_int_equal(gs_store_debug_get(s, "meta", "epoch", 5, ep, sizeof ep, &n), 0);
    uint64_t epoch = 0;
    for (int i = 7; i >= 0; i--)
        epoch = epoch << 8 | ep[i];
    assert_true(epoch != 0 && epoch != bk_epoch);
    gs_store_destroy(&s);

    /* into a new directory; and the broker runs on the result */
    char fresh[200];
    snprintf(fresh, sizeof fresh, "%s/fresh", e->dir);
    st = S_GRIDCTL(out, 0, "restore", bk, fresh);
    assert_true(s_exited(st, 0));
    st = S_GRIDCTL(out, 0, "--store", fresh, "verify");
    assert_true(s_exited(st, 0));
    assert_int_equal(gs_tk_broker_start(&e->broker, fresh, NULL), 0);
    s_load(e, "R", 2);
}

/* ---- damage ----------------------------------------------------------------------------- */

static void
test_truncated_store(void **state)
{
    s_env_t *e = *state;
    s_filled_store(e);
    char data[300], out[16384];
    snprintf(data, sizeof data, "%s/data.mdb", e->store);
    off_t size = s_size(data);
    assert_true(size > 64 * 1024);
    assert_int_equal(truncate(data, size / 2), 0);

    for (int ro = 0; ro < 2; ro++) {
        gs_store_opts_t o;
        gs_store_opts_init(&o);
        o.read_only = ro;
        int err = 0;
        gs_store_t *st = gs_store_new(e->store, &o, &err);
        assert_null(st);
        assert_int_equal(err, GS_ECORRUPT);
        assert_non_null(strstr(gs_store_errdetail(), "data.mdb is truncated"));
    }
    int st = s_run_broker(e->store, NULL, out, sizeof out);
    assert_true(s_exited(st, 1));
    assert_non_null(strstr(out, "event=store_failed"));
    assert_non_null(strstr(out, "data.mdb is truncated"));
    st = S_GRIDCTL(out, 0, "--store", e->store, "verify");
    assert_true(s_exited(st, 1));
    assert_non_null(strstr(out, "data.mdb is truncated"));

    /* garbage over a meta page */
    int fd = open(data, O_WRONLY);
    assert_true(fd >= 0);
    char junk[512];
    memset(junk, 0x5a, sizeof junk);
    assert_int_equal(pwrite(fd, junk, sizeof junk, 0), (ssize_t) sizeof junk);
    close(fd);
    st = S_GRIDCTL(out, 0, "--store", e->store, "verify");
    assert_true(s_exited(st, 1));
    assert_non_null(strstr(out, "meta page 0 is damaged"));
}

/* Copy src to dst. */
static void
s_copy(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY), out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(in >= 0 && out >= 0);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        assert_int_equal(write(out, buf, (size_t) n), n);
    close(in);
    close(out);
}

static void
test_garbage_pages(void **state)
{
    s_env_t *e = *state;
    s_filled_store(e);
    char data[300], clean[300], out[16384];
    snprintf(data, sizeof data, "%s/data.mdb", e->store);
    snprintf(clean, sizeof clean, "%s/clean.mdb", e->dir);
    s_copy(data, clean);
    off_t size = s_size(clean);
    long pages = (long) (size / 4096);
    assert_true(pages > 8);
    uint64_t rng = gs_fk_seed();
    int crashed = 0;
    for (int round = 0; round < 12; round++) {
        s_copy(clean, data);
        int fd = open(data, O_WRONLY);
        assert_true(fd >= 0);
        /* round 0: every page but the two meta pages; then a random third */
        for (long pg = 2; pg < pages; pg++) {
            if (round && gs_fk_rand(&rng) % 3)
                continue;
            uint8_t junk[4096];
            for (size_t i = 0; i < sizeof junk; i += 8) {
                uint64_t r = gs_fk_rand(&rng);
                memcpy(junk + i, &r, 8);
            }
            assert_int_equal(pwrite(fd, junk, sizeof junk, (off_t) pg * 4096),
                             (ssize_t) sizeof junk);
        }
        close(fd);
        int st = S_GRIDCTL(out, 0, "--store", e->store, "verify");
        /* gridctl itself never dies of the damage; it finds it or, where
         * only unused pages were hit, finds none */
        assert_true(WIFEXITED(st));
        assert_true(WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 1);
        if (round == 0)
            assert_int_equal(WEXITSTATUS(st), 1);
        if (WEXITSTATUS(st) == 1)
            assert_true(strstr(out, "problem: ") || strstr(out, "cannot open the store: "));
        crashed += strstr(out, "the check died") != NULL;
    }
    fprintf(stderr, "%d of 12 damaged stores crashed the checker's child\n", crashed);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_second_broker_refused, gs_fk_setup, gs_fk_teardown),
        cmocka_unit_test_setup_teardown(test_admin_socket_kept, gs_fk_setup, gs_fk_teardown),
        cmocka_unit_test_setup_teardown(test_backup_while_growing, gs_fk_setup, gs_fk_teardown),
        cmocka_unit_test_setup_teardown(test_backup_failure_leaves_nothing, gs_fk_setup,
                                        gs_fk_teardown),
        cmocka_unit_test_setup_teardown(test_restore, gs_fk_setup, gs_fk_teardown),
        cmocka_unit_test_setup_teardown(test_truncated_store, gs_fk_setup, gs_fk_teardown),
        cmocka_unit_test_setup_teardown(test_garbage_pages, gs_fk_setup, gs_fk_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

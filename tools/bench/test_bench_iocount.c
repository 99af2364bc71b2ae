/*
 * test_bench_iocount: the write-counting shim (libbench_iocount.so) counts
 * exactly what bench_iocount.h promises, so that the bench's bytes per
 * record and flushes per commit can be trusted.
 *
 * The test runs itself again as a child with the shim preloaded and
 * GS_BENCH_IOCOUNT set; the child makes a known set of calls (writes of
 * every wrapped kind on a regular file, a write on an O_DSYNC descriptor,
 * writes to a pipe and to stderr that must not count, fdatasync, fsync and
 * msync), and the parent reads the counter file and checks every counter.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "bench_iocount.h"
#include "bench_util.h"

static const char *s_self;          /* this program, for the child */

/* The child: the calls whose counts the parent checks. */
static int
s_child(const char *dir)
{
    char path[4096], buf[256];
    memset(buf, 'x', sizeof buf);
    snprintf(path, sizeof path, "%s/plain", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    snprintf(path, sizeof path, "%s/dsync", dir);
    int dfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DSYNC, 0600);
    int p[2];
    if (fd < 0 || dfd < 0 || pipe(p) != 0)
        return 2;
    struct iovec iov[2] = { { buf, 10 }, { buf, 20 } };
    struct iovec iov2[2] = { { buf, 30 }, { buf, 40 } };
    if (write(fd, buf, 100) != 100 || pwrite(fd, buf, 200, 100) != 200 ||
        writev(fd, iov, 2) != 30 || pwritev(fd, iov2, 2, 0) != 70 ||
        pwrite(dfd, buf, 50, 0) != 50)
        return 3;
    /* not regular files: not counted */
    if (write(p[1], buf, 5) != 5 || write(2, "", 0) != 0)
        return 4;
    if (fdatasync(fd) != 0 || fsync(fd) != 0)
        return 5;
    fsync(p[1]);                /* EINVAL on a pipe, and not counted */
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED || msync(m, 4096, MS_SYNC) != 0)
        return 6;
    return 0;
}

static void
test_counts_exactly(void **state)
{
    (void) state;
    char dir[] = "/tmp/test_bench_iocount.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char io[4096];
    snprintf(io, sizeof io, "%s/io", dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("GS_BENCH_IOCOUNT", io, 1);
        setenv("LD_PRELOAD", GS_BENCH_IOCOUNT_SO, 1);
        /* in the sanitizer build ASan's runtime would refuse to start after
         * a preloaded library */
        setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 1);
        execl(s_self, s_self, "--child", dir, (char *) NULL);
        _exit(127);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    gs_bench_iocount_t c;
    assert_int_equal(gs_bench_iocount_read(io, &c), 0);
    assert_int_equal(c.pid, pid);
    assert_int_equal(c.write_calls, 5);
    assert_int_equal(c.write_bytes, 100 + 200 + 30 + 70 + 50);
    assert_int_equal(c.sync_writes, 1);
    assert_int_equal(c.fdatasyncs, 1);
    assert_int_equal(c.fsyncs, 1);
    assert_int_equal(c.msyncs, 1);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void
test_no_file_no_counts(void **state)
{
    (void) state;
    gs_bench_iocount_t c;
    assert_int_equal(gs_bench_iocount_read("/nonexistent/iocount", &c), -1);
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--child") == 0)
        return s_child(argv[2]);
    s_self = argv[0];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_exactly),
        cmocka_unit_test(test_no_file_no_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

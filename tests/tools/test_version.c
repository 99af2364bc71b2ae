/*
 * test_version: every program prints the one version string.
 *
 * gridsyncd, gridctl, gridsim and gridfeed are run as subprocesses (paths
 * from CMake) with --version: each must exit 0 and print "NAME VERSION"
 * on stdout, VERSION being GS_VERSION from the generated gs_version.h
 * (project(gridsync VERSION ...) in the top CMakeLists.txt); each --help
 * must name --version. That the broker's HEALTH reply carries the same
 * string is checked where health is read (test_gridctl test_with_broker).
 * Subprocesses are waited for; nothing sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gs_version.h"

#if !defined(GS_GRIDSYNCD) || !defined(GS_GRIDCTL) || !defined(GS_GRIDSIM) || \
    !defined(GS_GRIDFEED)
#error "GS_GRIDSYNCD, GS_GRIDCTL, GS_GRIDSIM and GS_GRIDFEED must name the binaries"
#endif

/* Run path with one argument; return its exit status (-1 if it did not
 * exit) and its stdout, read to the end through a pipe. */
static int
s_run(const char *path, const char *arg, char *out, size_t size)
{
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd[1], STDOUT_FILENO);
        close(fd[0]);
        close(fd[1]);
        execl(path, path, arg, (char *) NULL);
        _exit(127);
    }
    close(fd[1]);
    size_t n = 0;
    for (;;) {
        char buf[4096];
        ssize_t r = read(fd[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        /* keep what fits; read the rest so the child never blocks */
        size_t k = (size_t) r < size - 1 - n ? (size_t) r : size - 1 - n;
        memcpy(out + n, buf, k);
        n += k;
    }
    out[n] = 0;
    close(fd[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
test_version_everywhere(void **state)
{
    (void) state;
    static const struct {
        const char *name;
        const char *path;
    } progs[] = {
        { "gridsyncd", GS_GRIDSYNCD },
        { "gridctl", GS_GRIDCTL },
        { "gridsim", GS_GRIDSIM },
        { "gridfeed", GS_GRIDFEED },
    };
    /* the generated header carries the project's version, not an empty one */
    assert_true(strlen(GS_VERSION) > 0);
    for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++) {
        char out[16384], want[128];
        int rc = s_run(progs[i].path, "--version", out, sizeof out);
        snprintf(want, sizeof want, "%s %s\n", progs[i].name, GS_VERSION);
        if (rc != 0 || strcmp(out, want))
            fprintf(stderr, "%s --version: exit %d, printed '%s', wanted '%s'\n",
                    progs[i].name, rc, out, want);
        assert_int_equal(rc, 0);
        assert_string_equal(out, want);
        rc = s_run(progs[i].path, "--help", out, sizeof out);
        assert_int_equal(rc, 0);
        if (!strstr(out, "--version"))
            fprintf(stderr, "%s --help does not name --version:\n%s\n", progs[i].name, out);
        assert_non_null(strstr(out, "--version"));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_everywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

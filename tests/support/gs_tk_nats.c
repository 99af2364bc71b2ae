/*
 * gs_tk_nats: a real nats-server for the federation tests. See gs_tk_nats.h.
 */
#include "gs_tk_nats.h"
#include "gs_testkit.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_SERVER "nats-server"
#define S_READY_MS 30000
#define S_STOP_MS 20000

static int64_t
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
gs_tk_nats_available(void)
{
    if (system(S_SERVER " --version >/dev/null 2>&1") == 0)
        return 1;
    fprintf(stderr, "nats-server is not installed (make deps installs it)\n");
    return 0;
}

/* Whether the log, from n->log_from on, has a line containing want. */
static int
s_log_has(const gs_tk_nats_t *n, const char *want)
{
    FILE *f = fopen(n->log, "r");
    if (!f)
        return 0;
    int found = 0;
    char line[2048];
    if (fseek(f, n->log_from, SEEK_SET) == 0)
        while (!found && fgets(line, sizeof line, f))
            found = strstr(line, want) != NULL;
    fclose(f);
    return found;
}

int
gs_tk_nats_wait_log(gs_tk_nats_t *n, const char *want, int patience_ms)
{
    /* woken by every change in the server's directory (its log grows),
     * with a bounded wait in all */
    int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (in >= 0)
        inotify_add_watch(in, n->dir, IN_MODIFY | IN_CREATE);
    int64_t end = s_now_ms() + patience_ms;
    int rc = -1;
    for (;;) {
        if (s_log_has(n, want)) {
            rc = 0;
            break;
        }
        if (n->pid > 0 && waitpid(n->pid, NULL, WNOHANG) == n->pid) {
            n->pid = 0;
            break; /* exited */
        }
        int64_t left = end - s_now_ms();
        if (left <= 0)
            break;
        struct pollfd p = { .fd = in, .events = POLLIN };
        /* without inotify, look again every 50 ms */
        int r = poll(&p, in >= 0 ? 1 : 0, (int) (left < 200 ? left : 200) / (in >= 0 ? 1 : 4));
        if (r > 0) {
            char buf[4096];
            while (read(in, buf, sizeof buf) > 0)
                ;
        }
    }
    if (in >= 0)
        close(in);
    return rc;
}

static int
s_write_conf(gs_tk_nats_t *n, const gs_tk_nats_t *peers, int count, const char *extra)
{
    FILE *f = fopen(n->conf, "w");
    if (!f)
        return -1;
    fprintf(f, "server_name: %s\nlisten: 127.0.0.1:%d\nlog_file: \"%s\"\n"
               "jetstream {\n  store_dir: \"%s/js\"\n  max_memory_store: 64MB\n"
               "  max_file_store: 4GB\n}\n",
            n->name, n->port, n->log, n->dir);
    if (count > 1) {
        fprintf(f, "cluster {\n  name: gridsync-test\n  listen: 127.0.0.1:%d\n  routes: [\n",
                n->cluster_port);
        for (int i = 0; i < count; i++)
            if (&peers[i] != n)
                fprintf(f, "    nats-route://127.0.0.1:%d\n", peers[i].cluster_port);
        fprintf(f, "  ]\n}\n");
    }
    if (extra)
        fprintf(f, "%s\n", extra);
    return fclose(f);
}

/* Fork the server on its config. */
static int
s_spawn(gs_tk_nats_t *n)
{
    struct stat st;
    n->log_from = stat(n->log, &st) == 0 ? (long) st.st_size : 0;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        execlp(S_SERVER, S_SERVER, "-c", n->conf, (char *) NULL);
        _exit(127);
    }
    n->pid = pid;
    return 0;
}

static int
s_prepare(gs_tk_nats_t *n, const char *name)
{
    memset(n, 0, sizeof *n);
    gs_tk_tmpdir(n->dir, sizeof n->dir);
    snprintf(n->name, sizeof n->name, "%s", name);
    snprintf(n->conf, sizeof n->conf, "%s/nats.conf", n->dir);
    snprintf(n->log, sizeof n->log, "%s/nats.log", n->dir);
    n->port = gs_tk_free_port();
    if (!n->port)
        return -1;
    snprintf(n->url, sizeof n->url, "nats://127.0.0.1:%d", n->port);
    return 0;
}

/* Attempts at a start: a port found free can be taken by another program
 * before the server binds it (tests run in parallel), and a loaded machine
 * can miss a cluster's first metadata election; a fresh start then, on
 * new ports in a new directory. */
#define S_START_ATTEMPTS 3

int
gs_tk_nats_start(gs_tk_nats_t *n, const char *extra)
{
    for (int attempt = 0; attempt < S_START_ATTEMPTS; attempt++) {
        if (s_prepare(n, "n1") || s_write_conf(n, n, 1, extra))
            return -1;
        if (gs_tk_nats_restart(n) == 0)
            return 0;
        gs_tk_nats_destroy(n);
    }
    return -1;
}

int
gs_tk_nats_restart(gs_tk_nats_t *n)
{
    if (n->pid > 0 || s_spawn(n))
        return -1;
    if (gs_tk_nats_wait_log(n, "Server is ready", S_READY_MS) == 0)
        return 0;
    fprintf(stderr, "nats-server %s did not get ready (log: %s)\n", n->name, n->log);
    gs_tk_nats_stop(n, SIGKILL);
    return -1;
}

static int s_cluster_start_once(gs_tk_nats_t *nodes, int count, const char *extra);

int
gs_tk_nats_cluster_start(gs_tk_nats_t *nodes, int count, const char *extra)
{
    for (int attempt = 0; attempt < S_START_ATTEMPTS; attempt++) {
        if (s_cluster_start_once(nodes, count, extra) == 0)
            return 0;
        for (int i = 0; i < count; i++)
            gs_tk_nats_destroy(&nodes[i]);
    }
    return -1;
}

static int
s_cluster_start_once(gs_tk_nats_t *nodes, int count, const char *extra)
{
    /* 2 * count ports, all different: a port is free until a server binds it */
    int used[64], n_used = 0;
    assert(count > 0 && 2 * count <= 64);
    for (int i = 0; i < count; i++) {
        char name[16];
        snprintf(name, sizeof name, "n%d", i + 1);
        if (s_prepare(&nodes[i], name))
            return -1;
        for (int k = 0; k < 2; k++) {
            int port, clash;
            do {
                port = k == 0 ? nodes[i].port : gs_tk_free_port();
                clash = 0;
                for (int j = 0; j < n_used; j++)
                    clash |= used[j] == port;
                if (clash && k == 0)
                    nodes[i].port = gs_tk_free_port();
            } while (clash || !port);
            used[n_used++] = port;
            if (k == 1)
                nodes[i].cluster_port = port;
        }
        snprintf(nodes[i].url, sizeof nodes[i].url, "nats://127.0.0.1:%d", nodes[i].port);
    }
    for (int i = 0; i < count; i++)
        if (s_write_conf(&nodes[i], nodes, count, extra))
            return -1;
    int rc = 0;
    for (int i = 0; i < count && !rc; i++)
        rc = s_spawn(&nodes[i]);
    for (int i = 0; i < count && !rc; i++)
        rc = gs_tk_nats_wait_log(&nodes[i], "Server is ready", S_READY_MS);
    /* every node learns the metadata leader (its own election or another's) */
    for (int i = 0; i < count && !rc; i++)
        rc = gs_tk_nats_wait_log(&nodes[i], "metadata leader", S_READY_MS);
    if (rc) {
        fprintf(stderr, "nats-server cluster did not get ready (logs: %s ...)\n", nodes[0].log);
        for (int i = 0; i < count; i++)
            gs_tk_nats_stop(&nodes[i], SIGKILL);
    }
    return rc;
}

int
gs_tk_nats_stop(gs_tk_nats_t *n, int sig)
{
    int st = 0;
    if (n->pid <= 0)
        return 0;
    kill(n->pid, sig);
    int pfd = (int) syscall(SYS_pidfd_open, n->pid, 0);
    if (pfd >= 0) {
        struct pollfd p = { .fd = pfd, .events = POLLIN };
        int r;
        while ((r = poll(&p, 1, S_STOP_MS)) < 0 && errno == EINTR)
            ;
        close(pfd);
        if (r == 0) {
            fprintf(stderr, "nats-server %s (pid %d) still running after signal %d: killed\n",
                    n->name, (int) n->pid, sig);
            kill(n->pid, SIGKILL);
        }
    }
    while (waitpid(n->pid, &st, 0) < 0 && errno == EINTR)
        ;
    n->pid = 0;
    return st;
}

void
gs_tk_nats_destroy(gs_tk_nats_t *n)
{
    gs_tk_nats_stop(n, SIGKILL);
    if (n->dir[0])
        gs_tk_rmtree(n->dir);
    n->dir[0] = 0;
}

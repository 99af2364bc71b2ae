/*
 * gs_testkit: see gs_testkit.h.
 */
#include "gs_testkit.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

#include "gs_store.h"
#include "gs_store_debug.h"
#include "gs_validate.h"

/* How long gs_tk_broker_stop waits for the broker to exit. */
#define S_STOP_SECONDS 120

#ifndef GS_GRIDSYNCD
#error "GS_GRIDSYNCD must name the gridsyncd binary"
#endif

void
gs_tk_tmpdir(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/gs-test-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
}

static int
s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove(path);
}

void
gs_tk_rmtree(const char *dir)
{
    nftw(dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* Copy the child's stderr to the log file until it closes. */
static void *
s_drain_main(void *arg)
{
    gs_tk_broker_t *b = arg;
    int out = open(b->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    char buf[4096];
    ssize_t n;
    while ((n = read(b->err_fd, buf, sizeof buf)) > 0)
        if (out >= 0 && write(out, buf, (size_t) n) < 0)
            break;
    if (out >= 0)
        close(out);
    return NULL;
}

static void
s_field(const char *line, const char *key, char *out, size_t size)
{
    const char *p = strstr(line, key);
    out[0] = 0;
    if (!p)
        return;
    p += strlen(key);
    size_t n = strcspn(p, " \n");
    if (n >= size)
        n = size - 1;
    memcpy(out, p, n);
    out[n] = 0;
}

int
gs_tk_broker_start(gs_tk_broker_t *b, const char *store_dir, const char *const *extra)
{
    return gs_tk_broker_start_mode(b, store_dir, extra, 0);
}

/* The last (at most) max bytes of the file at path, to stderr. */
static void
s_print_tail(const char *path, long max)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        fseek(f, size > max ? size - max : 0, SEEK_SET);
    }
    char buf[512];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stderr);
    fclose(f);
}

/* One line (with its newline, NUL-terminated, cut at size - 1 bytes) read
 * from fd a byte at a time. Returns 0 at the end of the input. */
static int
s_read_line(int fd, char *line, size_t size)
{
    size_t n = 0;
    char c;
    for (;;) {
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (n + 1 < size)
            line[n++] = c;
        if (c == '\n')
            break;
    }
    line[n] = 0;
    return n > 0;
}

int
gs_tk_broker_start_mode(gs_tk_broker_t *b, const char *store_dir, const char *const *extra,
                        int secure)
{
    memset(b, 0, sizeof *b);
    snprintf(b->store, sizeof b->store, "%s", store_dir);
    snprintf(b->log_path, sizeof b->log_path, "%s.log", store_dir);
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC))
        return -1;
    char store_arg[300];
    snprintf(store_arg, sizeof store_arg, "--store=%s", store_dir);
    const char *argv[64];
    int argc = 0;
    argv[argc++] = GS_GRIDSYNCD;
    argv[argc++] = store_arg;
    argv[argc++] = "--upload-endpoint=tcp://127.0.0.1:*";
    argv[argc++] = "--feed-endpoint=tcp://127.0.0.1:*";
    argv[argc++] = "--metrics-port=0";
    argv[argc++] = "--heartbeat-ms=100";
    if (getenv("GS_TEST_DEBUG"))
        argv[argc++] = "--log-level=debug";
    if (!secure)
        argv[argc++] = "--insecure-dev";
    for (int i = 0; extra && extra[i] && argc < 62; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* a test that dies (an assert, a deadline) takes its broker along */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(pfd[1], STDERR_FILENO);
        const char *vg = getenv("GS_TEST_VALGRIND");
        if (vg && *vg && strcmp(vg, "0") != 0) {
            /* make test-valgrind: the broker under memcheck; an error or a
             * definite leak makes it exit 99, which the test sees */
            char logarg[400];
            snprintf(logarg, sizeof logarg, "--log-file=%s.valgrind.%%p", store_dir);
            const char *vargv[72];
            int vc = 0;
            vargv[vc++] = "valgrind";
            vargv[vc++] = "-q";
            vargv[vc++] = "--error-exitcode=99";
            vargv[vc++] = "--leak-check=full";
            vargv[vc++] = "--errors-for-leak-kinds=definite";
            vargv[vc++] = logarg;
            for (int i = 0; i < argc; i++)
                vargv[vc++] = argv[i];
            vargv[vc] = NULL;
            execvp("valgrind", (char *const *) vargv);
            _exit(127);
        }
        execv(GS_GRIDSYNCD, (char *const *) argv);
        _exit(127);
    }
    close(pfd[1]);
    b->pid = pid;
    b->err_fd = pfd[0];
    /* read log lines until the broker says it is ready (or exits), byte
     * by byte, so that nothing after the ready line is taken from the
     * pipe: the drain thread copies the rest to the log file */
    char line[2048];
    int ready = 0;
    FILE *log = fopen(b->log_path, "a");
    while (s_read_line(pfd[0], line, sizeof line)) {
        if (log)
            fputs(line, log);
        if (strstr(line, "event=ready")) {
            s_field(line, "upload=", b->upload, sizeof b->upload);
            s_field(line, "feed=", b->feed, sizeof b->feed);
            s_field(line, "admin=", b->admin, sizeof b->admin);
            char port[16];
            s_field(line, "metrics_port=", port, sizeof port);
            b->metrics_port = atoi(port);
            s_field(line, "server_key=", b->server_key, sizeof b->server_key);
            ready = 1;
            break;
        }
    }
    if (log)
        fclose(log);
    if (!ready) {
        int st;
        waitpid(pid, &st, 0);
        close(b->err_fd);
        b->pid = 0;
        /* the log is in the test's temporary directory, which goes with
         * the test: show its end here, where the run's output keeps it */
        fprintf(stderr, "gridsyncd did not start (exit %d); its log %s ends:\n",
                WIFEXITED(st) ? WEXITSTATUS(st) : -1, b->log_path);
        s_print_tail(b->log_path, 2048);
        return -1;
    }
    if (pthread_create(&b->drain, NULL, s_drain_main, b) == 0)
        b->drain_running = 1;
    return 0;
}

int
gs_tk_free_port(void)
{
    /* below the ephemeral range: try a few random ports there first */
    int lo = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d", &lo) != 1)
            lo = 32768;
        fclose(f);
    }
    /* each candidate drawn from the kernel's random source: a seed of pid
     * and time gave tests started a few seconds apart the same sequence
     * (pid A ^ t == pid B ^ t' when t' = t ^ A ^ B), so that one test took
     * the port another's broker was restarting on */
    for (int attempt = 0; attempt < 64; attempt++) {
        int port = 0; /* last resort: whatever the kernel gives */
        uint32_t r = 0;
        if (attempt < 63 && lo > 11000 && getrandom(&r, sizeof r, 0) == (ssize_t) sizeof r)
            port = lo - 10000 + (int) (r % 9000u);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return 0;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sa.sin_port = htons((uint16_t) port);
        socklen_t sl = sizeof sa;
        int ok = bind(fd, (struct sockaddr *) &sa, sizeof sa) == 0 &&
                 getsockname(fd, (struct sockaddr *) &sa, &sl) == 0;
        close(fd);
        if (ok)
            return ntohs(sa.sin_port);
    }
    return 0;
}

int
gs_tk_broker_start_fixed(gs_tk_broker_t *b, const char *store_dir, const char *const *extra,
                         int secure)
{
    /* another test may take a port between our probe and the broker's
     * bind; the broker then exits, and fresh ports are tried */
    for (int attempt = 0; attempt < 3; attempt++) {
        int up = gs_tk_free_port(), feed = gs_tk_free_port();
        while (feed && feed == up)
            feed = gs_tk_free_port();
        if (!up || !feed)
            return -1;
        char up_arg[64], feed_arg[64];
        snprintf(up_arg, sizeof up_arg, "--upload-endpoint=tcp://127.0.0.1:%d", up);
        snprintf(feed_arg, sizeof feed_arg, "--feed-endpoint=tcp://127.0.0.1:%d", feed);
        const char *argv[64];
        int n = 0;
        argv[n++] = up_arg;
        argv[n++] = feed_arg;
        for (int i = 0; extra && extra[i] && n < 63; i++)
            argv[n++] = extra[i];
        argv[n] = NULL;
        if (gs_tk_broker_start_mode(b, store_dir, argv, secure) == 0)
            return 0;
    }
    return -1;
}

int
gs_tk_broker_restart(gs_tk_broker_t *b, const char *const *extra)
{
    if (b->pid > 0 || !b->upload[0] || !b->feed[0])
        return -1;
    char store[sizeof b->store];
    char up_arg[sizeof b->upload + 32], feed_arg[sizeof b->feed + 32];
    snprintf(store, sizeof store, "%s", b->store);
    snprintf(up_arg, sizeof up_arg, "--upload-endpoint=%s", b->upload);
    snprintf(feed_arg, sizeof feed_arg, "--feed-endpoint=%s", b->feed);
    /* the ready line names the key in secure mode and "-" without */
    int secure = b->server_key[0] && strcmp(b->server_key, "-") != 0;
    const char *argv[64];
    int n = 0;
    argv[n++] = up_arg;
    argv[n++] = feed_arg;
    for (int i = 0; extra && extra[i] && n < 63; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return gs_tk_broker_start_mode(b, store, argv, secure);
}

int
gs_tk_broker_stop(gs_tk_broker_t *b, int sig)
{
    int st = 0;
    if (b->pid > 0) {
        kill(b->pid, sig);
        /* A broker that does not exit is a failure, not a hang of the test
         * run: it is killed after S_STOP_SECONDS (valgrind makes a drain
         * slow, never this slow), and the caller sees the kill in the status.
         * The wait is on the process itself (a pidfd turns readable when it
         * exits). */
        int pfd = (int) syscall(SYS_pidfd_open, b->pid, 0);
        if (pfd >= 0) {
            struct pollfd p = { .fd = pfd, .events = POLLIN };
            int r;
            while ((r = poll(&p, 1, S_STOP_SECONDS * 1000)) < 0 && errno == EINTR)
                ;
            close(pfd);
            if (r == 0) {
                fprintf(stderr, "gridsyncd (pid %d) still running %d s after signal %d: "
                        "killed\n", (int) b->pid, S_STOP_SECONDS, sig);
                kill(b->pid, SIGKILL);
            }
        }
        while (waitpid(b->pid, &st, 0) < 0 && errno == EINTR)
            ;
        b->pid = 0;
        const char *vg = getenv("GS_TEST_VALGRIND");
        if (vg && *vg && strcmp(vg, "0") != 0 && WIFEXITED(st) && WEXITSTATUS(st) == 99) {
            /* the log sits in the test's temporary directory: show it */
            char pat[400];
            snprintf(pat, sizeof pat, "%s.valgrind.*", b->store);
            glob_t g;
            if (glob(pat, 0, NULL, &g) == 0) {
                for (size_t i = 0; i < g.gl_pathc; i++) {
                    FILE *f = fopen(g.gl_pathv[i], "r");
                    char line[1024];
                    while (f && fgets(line, sizeof line, f))
                        fputs(line, stderr);
                    if (f)
                        fclose(f);
                }
                globfree(&g);
            }
            fprintf(stderr, "valgrind found errors in gridsyncd (log above)\n");
            abort();
        }
    }
    if (b->drain_running) {
        pthread_join(b->drain, NULL);
        b->drain_running = 0;
    }
    if (b->err_fd > 0) {
        close(b->err_fd);
        b->err_fd = 0;
    }
    return st;
}

void
gs_tk_idnum(uint32_t seed, int *birth, int *sex, char out[19])
{
    int year = 1940 + (int) (seed % 60);
    int month = 1 + (int) ((seed / 60) % 12);
    int day = 1 + (int) ((seed / 720) % 28);
    int seq = (int) ((seed / 20160) % 1000);
    snprintf(out, 19, "440305%04d%02d%02d%03d", year, month, day, seq);
    out[17] = gs_idnum_check_char(out);
    out[18] = 0;
    *birth = year * 10000 + month * 100 + day;
    *sex = (seq % 2) ? 1 : 2;
}

/* A valid person with the ID number of seed (gs_tk_idnum). */
static Gridsync__V1__Person *
s_tk_person(gs_arena_t *a, uint32_t seed, const char *name, Gridsync__V1__Relation rel)
{
    Gridsync__V1__Person *p = gs_arena_alloc(a, sizeof *p);
    gridsync__v1__person__init(p);
    char id[19];
    int birth, sex;
    gs_tk_idnum(seed, &birth, &sex, id);
    char bd[16];
    snprintf(bd, sizeof bd, "%04d-%02d-%02d", birth / 10000, birth / 100 % 100, birth % 100);
    p->id_type = GRIDSYNC__V1__ID_TYPE__ID_TYPE_RESIDENT_CARD;
    p->id_number = gs_arena_strdup(a, id);
    p->name = gs_arena_strdup(a, name);
    p->sex = (Gridsync__V1__Sex) sex;
    p->birth_date = gs_arena_strdup(a, bd);
    p->population_type = GRIDSYNC__V1__POPULATION_TYPE__POPULATION_TYPE_REGISTERED;
    p->residence_status = GRIDSYNC__V1__RESIDENCE_STATUS__RESIDENCE_STATUS_PRESENT_REGISTERED;
    p->relation = rel;
    return p;
}

Gridsync__V1__Record *
gs_tk_household(gs_arena_t *a, const char *grid, const char *hid, const char *address_code,
                int members, uint32_t person_seed)
{
    Gridsync__V1__Record *rec = gs_arena_alloc(a, sizeof *rec);
    Gridsync__V1__Household *h = gs_arena_alloc(a, sizeof *h);
    Gridsync__V1__RecordMeta *meta = gs_arena_alloc(a, sizeof *meta);
    gridsync__v1__record__init(rec);
    gridsync__v1__household__init(h);
    gridsync__v1__record_meta__init(meta);
    rec->body_case = GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD;
    rec->household = h;
    h->household_id = gs_arena_strdup(a, hid);
    h->grid_code = gs_arena_strdup(a, grid);
    if (address_code) {
        h->address_code = gs_arena_strdup(a, address_code);
    } else {
        Gridsync__V1__RoomAddress *ra = gs_arena_alloc(a, sizeof *ra);
        gridsync__v1__room_address__init(ra);
        ra->building = gs_arena_strdup(a, "1");
        ra->unit = gs_arena_strdup(a, "1");
        ra->floor = gs_arena_strdup(a, "1");
        ra->room = gs_arena_strdup(a, hid);
        h->room = ra;
    }
    char dev[64];
    snprintf(dev, sizeof dev, "dev-%s", grid);
    meta->device_id = gs_arena_strdup(a, dev);
    meta->collector_id = gs_arena_strdup(a, "col-test");
    meta->collected_at = 1760000000000;
    h->meta = meta;
    h->n_members = (size_t) members;
    h->members = gs_arena_alloc(a, sizeof(void *) * (size_t) members);
    for (int i = 0; i < members; i++)
        h->members[i] = s_tk_person(a, person_seed + (uint32_t) i, i ? "李四" : "张三",
                                    i ? GRIDSYNC__V1__RELATION__RELATION_CHILD
                                      : GRIDSYNC__V1__RELATION__RELATION_HEAD);
    return rec;
}

Gridsync__V1__Record *
gs_tk_org(gs_arena_t *a, const char *grid, const char *oid, const char *uscc,
          const char *address_code, int employees, uint32_t person_seed)
{
    Gridsync__V1__Record *rec = gs_arena_alloc(a, sizeof *rec);
    Gridsync__V1__OrganisationUnit *o = gs_arena_alloc(a, sizeof *o);
    Gridsync__V1__RecordMeta *meta = gs_arena_alloc(a, sizeof *meta);
    gridsync__v1__record__init(rec);
    gridsync__v1__organisation_unit__init(o);
    gridsync__v1__record_meta__init(meta);
    rec->body_case = GRIDSYNC__V1__RECORD__BODY_ORGANISATION;
    rec->organisation = o;
    o->org_id = gs_arena_strdup(a, oid);
    o->grid_code = gs_arena_strdup(a, grid);
    o->name = gs_arena_strdup(a, uscc ? "南联便利店" : "阿强水果摊");
    o->kind = uscc ? GRIDSYNC__V1__ORG_KIND__ORG_KIND_ENTERPRISE
                   : GRIDSYNC__V1__ORG_KIND__ORG_KIND_INDIVIDUAL_BUSINESS;
    if (uscc)
        o->uscc = gs_arena_strdup(a, uscc);
    o->industry = gs_arena_strdup(a, "F5261");
    o->status = GRIDSYNC__V1__ORG_STATUS__ORG_STATUS_OPERATING;
    if (address_code) {
        o->address_code = gs_arena_strdup(a, address_code);
    } else {
        Gridsync__V1__RoomAddress *ra = gs_arena_alloc(a, sizeof *ra);
        gridsync__v1__room_address__init(ra);
        ra->building = gs_arena_strdup(a, "农贸市场");
        ra->room = gs_arena_strdup(a, oid);
        o->room = ra;
    }
    char dev[64];
    snprintf(dev, sizeof dev, "dev-%s", grid);
    meta->device_id = gs_arena_strdup(a, dev);
    meta->collector_id = gs_arena_strdup(a, "col-test");
    meta->collected_at = 1760000000000;
    o->meta = meta;
    o->legal_representative = s_tk_person(a, person_seed + (uint32_t) employees, "王老板",
                                          GRIDSYNC__V1__RELATION__RELATION_UNSPECIFIED);
    o->contact = o->legal_representative;
    o->n_employees = (size_t) employees;
    o->employees = gs_arena_alloc(a, sizeof(void *) * (size_t) (employees ? employees : 1));
    for (int i = 0; i < employees; i++)
        o->employees[i] = s_tk_person(a, person_seed + (uint32_t) i, "店员",
                                      GRIDSYNC__V1__RELATION__RELATION_UNSPECIFIED);
    return rec;
}

uint8_t *
gs_tk_upload_request(const char *device, const char *upload_id, Gridsync__V1__Record **recs,
                     size_t n, uint64_t request_id, size_t *len)
{
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = (char *) device;
    up.upload_id = (char *) upload_id;
    up.records = recs;
    up.n_records = n;
    Gridsync__V1__Request req = GRIDSYNC__V1__REQUEST__INIT;
    req.request_id = request_id;
    req.body_case = GRIDSYNC__V1__REQUEST__BODY_UPLOAD;
    req.upload = &up;
    *len = gridsync__v1__request__get_packed_size(&req);
    uint8_t *buf = malloc(*len);
    gridsync__v1__request__pack(&req, buf);
    return buf;
}

int
gs_tk_listen_silent(char *endpoint, size_t size)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof sin;
    assert_int_equal(bind(ls, (struct sockaddr *) &sin, sizeof sin), 0);
    assert_int_equal(listen(ls, 16), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *) &sin, &sl), 0);
    snprintf(endpoint, size, "tcp://127.0.0.1:%d", ntohs(sin.sin_port));
    return ls;
}

pid_t
gs_tk_spawn(const char *const *argv, int *err_fd)
{
    int pfd[2] = { -1, -1 };
    if (err_fd)
        assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (err_fd) {
            dup2(pfd[1], STDERR_FILENO);
            close(pfd[0]);
        }
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDOUT_FILENO);
        execv(argv[0], (char *const *) argv);
        _exit(127);
    }
    if (err_fd) {
        close(pfd[1]);
        *err_fd = pfd[0];
    }
    return pid;
}

#ifdef GS_GRIDCTL
int
gs_tk_gridctl(const char *store, const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s --store %s %s >/dev/null 2>&1", GS_GRIDCTL, store, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
#endif

int
gs_tk_wait_exit(pid_t pid, const char *what, int patience_ms)
{
    int pfd = (int) syscall(SYS_pidfd_open, pid, 0);
    assert_true(pfd >= 0);
    struct pollfd p = { .fd = pfd, .events = POLLIN };
    int r;
    while ((r = poll(&p, 1, patience_ms)) < 0 && errno == EINTR)
        ;
    close(pfd);
    if (r == 0)
        kill(pid, SIGKILL);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (r == 0)
        fail_msg("%s still running after %d ms: killed", what, patience_ms);
    return st;
}

void
gs_tk_wait_line(int fd, const char *what, const char *want, int patience_ms)
{
    char line[1024];
    size_t n = 0;
    int64_t waited = 0;
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, 1000);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0) {
            waited += 1000;
            if (waited >= patience_ms)
                fail_msg("no line with '%s' from %s within %d ms", want, what, patience_ms);
            continue;
        }
        char c;
        if (read(fd, &c, 1) != 1)
            fail_msg("%s ended before printing '%s'", what, want);
        if (c != '\n' && n + 1 < sizeof line) {
            line[n++] = c;
            continue;
        }
        line[n] = 0;
        n = 0;
        if (strstr(line, want))
            return;
    }
}

double
gs_tk_metric(int port, const char *name)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return GS_TK_METRIC_UNREADABLE;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t) port);
    static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
    if (connect(fd, (struct sockaddr *) &sa, sizeof sa) ||
        send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t) (sizeof req - 1)) {
        close(fd);
        return GS_TK_METRIC_UNREADABLE;
    }
    /* the whole reply: the endpoint closes after it (HTTP/1.0) */
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    ssize_t r;
    while (buf && (r = read(fd, buf + len, cap - len)) > 0) {
        len += (size_t) r;
        if (len == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
    }
    close(fd);
    if (!buf)
        return GS_TK_METRIC_UNREADABLE;
    buf[len] = 0;
    char *eoh = strstr(buf, "\r\n\r\n");
    char *eos = strstr(buf, "\r\n");
    if (!eoh || !eos || !memmem(buf, (size_t) (eos - buf), " 200 ", 5)) {
        free(buf);
        return GS_TK_METRIC_UNANSWERED;
    }
    double sum = GS_TK_METRIC_ABSENT;
    size_t nl = strlen(name);
    int labelled = strchr(name, '{') != NULL; /* one label set asked for */
    char *line = eoh + 4;
    while (line && *line) {
        char *eol = strchr(line, '\n');
        if (eol)
            *eol = 0;
        /* "name value" or "name{labels} value" */
        if (strncmp(line, name, nl) == 0 &&
            (line[nl] == ' ' || (!labelled && line[nl] == '{'))) {
            char *after = line[nl] == '{' ? strchr(line, '}') : line + nl;
            char *sp = after ? strchr(after, ' ') : NULL;
            if (sp)
                sum = (sum < 0 ? 0 : sum) + strtod(sp + 1, NULL);
        }
        line = eol ? eol + 1 : NULL;
    }
    free(buf);
    return sum;
}

uint64_t
gs_tk_store_epoch(const char *dir)
{
    gs_store_t *st = gs_store_new(dir, NULL, NULL);
    assert_non_null(st);
    uint64_t epoch = 0;
    assert_int_equal(gs_store_epoch(st, &epoch), 0);
    gs_store_destroy(&st);
    return epoch;
}

void
gs_tk_store_backup_epoch(const char *dir, const char *backup, const uint8_t epoch[8])
{
    gs_store_t *st = gs_store_new(dir, NULL, NULL);
    assert_non_null(st);
    assert_int_equal(gs_store_backup(st, backup), 0);
    gs_store_destroy(&st);
    st = gs_store_new(backup, NULL, NULL);
    assert_non_null(st);
    assert_int_equal(gs_store_debug_put(st, "meta", "epoch", 5, epoch, 8), 0);
    gs_store_destroy(&st);
}

char *
gs_tk_read_file(const char *path, size_t *len, int missing_ok)
{
    FILE *f = fopen(path, "rb");
    if (!f && missing_ok) {
        if (len)
            *len = 0;
        return strdup("");
    }
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    char *buf = malloc((size_t) n + 1);
    assert_non_null(buf);
    size_t got = fread(buf, 1, (size_t) n, f);
    assert_int_equal(got, (size_t) n);
    buf[got] = 0;
    fclose(f);
    if (len)
        *len = got;
    return buf;
}

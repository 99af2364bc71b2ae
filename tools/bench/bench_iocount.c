/*
 * bench_iocount: an LD_PRELOAD shim that counts the bytes a process passes
 * to write calls on regular files and its flush calls (see
 * bench_iocount.h for what is counted and how the counters are read).
 *
 * Where it sits: built as libbench_iocount.so in tools/bench and preloaded
 * into gridsyncd by run_bench.sh only; no product code knows about it.
 * Each wrapper forwards to the next definition (dlsym RTLD_NEXT) and adds
 * to the shared counters with relaxed atomics (the store's writer thread
 * does all the writing; the atomics keep other threads' calls exact too).
 * Without GS_BENCH_IOCOUNT, or when the file cannot be mapped, the calls
 * are forwarded and nothing is counted.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench_iocount.h"

static gs_bench_iocount_t *s_c;     /* the shared counters, or NULL */

__attribute__((constructor)) static void
s_init(void)
{
    const char *path = getenv("GS_BENCH_IOCOUNT");
    if (!path || !*path)
        return;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    if (ftruncate(fd, sizeof *s_c) != 0) {
        close(fd);
        return;
    }
    void *p = mmap(NULL, sizeof *s_c, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return;
    s_c = p;
    s_c->pid = (uint32_t) getpid();
    __atomic_store_n(&s_c->magic, GS_BENCH_IOCOUNT_MAGIC, __ATOMIC_RELEASE);
}

/* Count only the store's files: not stdin/out/err (the log), sockets, pipes. */
static int
s_regular(int fd)
{
    struct stat st;
    return s_c && fd > 2 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

static void
s_wrote(int fd, ssize_t rc, size_t asked)
{
    (void) rc;
    if (!s_regular(fd))
        return;
    __atomic_add_fetch(&s_c->write_calls, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s_c->write_bytes, asked, __ATOMIC_RELAXED);
    int fl = fcntl(fd, F_GETFL);
    if (fl != -1 && (fl & (O_DSYNC | O_SYNC)))
        __atomic_add_fetch(&s_c->sync_writes, 1, __ATOMIC_RELAXED);
}

static size_t
s_iov_bytes(const struct iovec *iov, int n)
{
    size_t b = 0;
    for (int i = 0; i < n; i++)
        b += iov[i].iov_len;
    return b;
}

/* The definition this wrapper hides (libc's), looked up once. */
#define S_NEXT(name) \
    static __typeof__(&name) next; \
    if (!next) \
        next = (__typeof__(&name)) dlsym(RTLD_NEXT, #name)

ssize_t
write(int fd, const void *buf, size_t n)
{
    S_NEXT(write);
    ssize_t rc = next(fd, buf, n);
    s_wrote(fd, rc, n);
    return rc;
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
    S_NEXT(pwrite);
    ssize_t rc = next(fd, buf, n, off);
    s_wrote(fd, rc, n);
    return rc;
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    S_NEXT(pwrite64);
    ssize_t rc = next(fd, buf, n, off);
    s_wrote(fd, rc, n);
    return rc;
}

ssize_t
writev(int fd, const struct iovec *iov, int cnt)
{
    S_NEXT(writev);
    ssize_t rc = next(fd, iov, cnt);
    s_wrote(fd, rc, s_iov_bytes(iov, cnt));
    return rc;
}

ssize_t
pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    S_NEXT(pwritev);
    ssize_t rc = next(fd, iov, cnt, off);
    s_wrote(fd, rc, s_iov_bytes(iov, cnt));
    return rc;
}

ssize_t
pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
{
    S_NEXT(pwritev64);
    ssize_t rc = next(fd, iov, cnt, off);
    s_wrote(fd, rc, s_iov_bytes(iov, cnt));
    return rc;
}

ssize_t
pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    S_NEXT(pwritev2);
    ssize_t rc = next(fd, iov, cnt, off, flags);
    s_wrote(fd, rc, s_iov_bytes(iov, cnt));
    return rc;
}

int
fdatasync(int fd)
{
    S_NEXT(fdatasync);
    if (s_c)
        __atomic_add_fetch(&s_c->fdatasyncs, 1, __ATOMIC_RELAXED);
    return next(fd);
}

int
fsync(int fd)
{
    S_NEXT(fsync);
    if (s_regular(fd))
        __atomic_add_fetch(&s_c->fsyncs, 1, __ATOMIC_RELAXED);
    return next(fd);
}

int
msync(void *addr, size_t len, int flags)
{
    S_NEXT(msync);
    if (s_c)
        __atomic_add_fetch(&s_c->msyncs, 1, __ATOMIC_RELAXED);
    return next(addr, len, flags);
}

/*
 * gs_checkpoint: see gs_checkpoint.h.
 */
#include "gs_checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
gs_checkpoint_read(const char *path, const char *const *prefixes, size_t n,
                   uint64_t *seq, uint64_t *epoch, char *extra, size_t extra_size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 1 : GS_CLIENT_EIO;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!strncmp(line, "extra ", 6)) {
            if (extra && extra_size)
                snprintf(extra, extra_size, "%s", line + 6);
        } else if (!strncmp(line, "epoch ", 6)) {
            char *end;
            errno = 0;
            uint64_t e = strtoull(line + 6, &end, 16);
            if (errno || end == line + 6 || *end || e == 0) {
                fclose(f);
                return GS_CLIENT_EIO; /* a damaged epoch must not pass for "unknown" */
            }
            *epoch = e;
        } else if (!strncmp(line, "prefix \"", 8)) {
            char *q = strchr(line + 8, '"');
            if (!q)
                continue;
            *q = 0;
            unsigned long long s = strtoull(q + 1, NULL, 10);
            for (size_t i = 0; i < n; i++)
                if (!strcmp(prefixes[i], line + 8))
                    seq[i] = s;
        }
    }
    fclose(f);
    return 0;
}

/* fsync the directory holding path, so that a rename in it is durable. */
static int
s_fsync_dir(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = 0;     /* a file in the root directory */
    else
        *slash = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    if (close(fd))
        rc = -1;
    return rc;
}

int
gs_checkpoint_write(const char *path, const char *const *prefixes,
                    const uint64_t *seq, size_t n, uint64_t epoch, const char *extra)
{
    char tmp[4096];
    if ((size_t) snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return GS_CLIENT_EIO;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return GS_CLIENT_EIO;
    char buf[8192];
    size_t len = (size_t) snprintf(buf, sizeof buf, "gridsync-checkpoint 1\n");
    if (epoch) /* the store lineage these positions belong to */
        len += (size_t) snprintf(buf + len, sizeof buf - len, "epoch %016llx\n",
                                 (unsigned long long) epoch);
    for (size_t i = 0; i < n && len < sizeof buf; i++)
        len += (size_t) snprintf(buf + len, sizeof buf - len, "prefix \"%s\" %llu\n",
                                 prefixes[i], (unsigned long long) seq[i]);
    if (extra && extra[0] && len < sizeof buf)
        len += (size_t) snprintf(buf + len, sizeof buf - len, "extra %s\n", extra);
    /* what does not fit is refused rather than cut: a cut file loses positions */
    int ok = len < sizeof buf && n <= 64 && (!extra || strlen(extra) < 256);
    ok = ok && write(fd, buf, len) == (ssize_t) len && fsync(fd) == 0;
    if (close(fd))
        ok = 0;
    if (!ok || rename(tmp, path)) {
        unlink(tmp);
        return GS_CLIENT_EIO;
    }
    /* the rename is durable only once the directory entry is on disk */
    if (s_fsync_dir(path))
        return GS_CLIENT_EIO;
    return 0;
}

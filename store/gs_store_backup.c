/*
 * gs_store_backup: backup, restore and a new lineage epoch. A backup is a
 * compacting copy of the environment plus secret.key, built in a temporary
 * directory beside the destination and renamed into place, so a backup
 * either exists whole or not at all; restore checks the backup, sets an
 * existing store aside and moves the copy in (docs/store.md, "Backup").
 *
 * Where it sits: beside gs_store.c, on the environment it opens; called by
 * gridctl (and the broker for a backup of a live store). Any thread.
 */
#include "gs_store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Is dir empty, apart from a file named but (NULL: nothing excepted)? */
static int
s_dir_empty(const char *dir, const char *but)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            !(but && !strcmp(e->d_name, but)))
            empty = 0;
    closedir(d);
    return empty;
}

/* path without trailing slashes (malloc'd), so that "dest/" and "dest" get
 * their temporary directory beside them, in the same parent. */
static char *
s_path_trim(const char *path)
{
    char *p = strdup(path);
    if (p)
        for (size_t n = strlen(p); n > 1 && p[n - 1] == '/'; n--)
            p[n - 1] = 0;
    return p;
}

/* fsync a file or directory by path. */
static int
s_fsync_path(const char *path, int dir)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
    if (fd < 0)
        return errno;
    int rc = fsync(fd) != 0 ? errno : 0;
    close(fd);
    return rc;
}

/* fsync the directory that holds path, after a rename into it. */
static int
s_fsync_parent(const char *path)
{
    char *p = strdup(path);
    if (!p)
        return ENOMEM;
    char *slash = strrchr(p, '/');
    const char *parent = !slash ? "." : slash == p ? "/" : (*slash = 0, p);
    int rc = s_fsync_path(parent, 1);
    free(p);
    return rc;
}

/* Remove a directory this file made for a copy, with the only files it can
 * hold (LMDB's lock.mdb comes from opening the copy). */
static void
s_copy_remove(const char *dir)
{
    static const char *const names[] = { "data.mdb", "lock.mdb", "secret.key", "broker.pid",
                                         NULL };
    for (int i = 0; names[i]; i++) {
        char *p = gs_store_path(dir, names[i]);
        if (p)
            unlink(p);
        free(p);
    }
    rmdir(dir);
}

/* Compacting copy of self's environment into a new dir/data.mdb (0600 from
 * the start). The copy's read transaction fails with MDB_MAP_RESIZED when
 * another process (the broker) grew the map since this one last looked;
 * nothing is copied then, so the map size is adopted and the copy starts
 * again on an emptied file. Every retry follows a doubling of the map by
 * someone else, so the bound below is never reached before map_max would
 * be: growth during a backup is not an error. */
static int
s_copy_data(gs_store_t *self, const char *dir)
{
    char *path = gs_store_path(dir, "data.mdb");
    if (!path)
        return GS_ENOMEM;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    free(path);
    if (fd < 0)
        return gs_store_err(errno, "create backup data.mdb");
    int rc;
    for (int tries = 0;; tries++) {
        /* the copy runs its own read transaction: hold the lock shared */
        pthread_rwlock_rdlock(&self->env_lock);
        rc = self->env ? mdb_env_copyfd2(self->env, fd, MDB_CP_COMPACT) : MDB_PANIC;
        pthread_rwlock_unlock(&self->env_lock);
        if (rc != MDB_MAP_RESIZED || tries == 64)
            break;
        gs_store_adopt_mapsize(self);
        if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0) {
            rc = errno;
            break;
        }
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = errno;
    if (close(fd) != 0 && rc == 0)
        rc = errno;
    return rc ? gs_store_err(rc, "copy data.mdb") : 0;
}

/* Write the 32-byte secret as dir/secret.key (0600), synced. */
static int
s_secret_write(const char *dir, const uint8_t secret[32])
{
    char *path = gs_store_path(dir, "secret.key");
    if (!path)
        return GS_ENOMEM;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    free(path);
    int rc = 0;
    errno = 0;
    if (fd < 0 || write(fd, secret, 32) != 32 || fsync(fd) != 0)
        rc = errno ? errno : EIO;
    if (fd >= 0 && close(fd) != 0 && rc == 0)
        rc = errno;
    return rc ? gs_store_err(rc, "write secret.key of the copy") : 0;
}

/* A complete copy of self in a fresh directory beside dest (mkdtemp: mode
 * 0700), its path in *tmp_out (malloc'd): data.mdb compacted, secret.key, a
 * new epoch, everything synced. On failure nothing is left. */
static int
s_copy_build(gs_store_t *self, const char *dest, char **tmp_out)
{
    *tmp_out = NULL;
    size_t n = strlen(dest) + 16;
    char *tmp = malloc(n);
    if (!tmp)
        return GS_ENOMEM;
    snprintf(tmp, n, "%s.tmp-XXXXXX", dest);
    if (!mkdtemp(tmp)) {
        int rc = gs_store_err(errno, "create a directory beside the copy");
        free(tmp);
        return rc;
    }
    int rc = s_copy_data(self, tmp);
    if (!rc)
        rc = s_secret_write(tmp, self->secret);
    if (!rc)
        rc = gs_store_epoch_renew(tmp);
    if (!rc) {
        /* LMDB's lock file of the renewing open: not part of a store copy */
        char *lock = gs_store_path(tmp, "lock.mdb");
        if (lock)
            unlink(lock);
        free(lock);
        int e = s_fsync_path(tmp, 1);
        if (e)
            rc = gs_store_err(e, "sync the copy's directory");
    }
    if (rc) {
        s_copy_remove(tmp);
        free(tmp);
        return rc;
    }
    *tmp_out = tmp;
    return 0;
}

int
gs_store_backup(gs_store_t *self, const char *dest_in)
{
    if (!dest_in || !*dest_in)
        return GS_EINVAL;
    if (!self->have_secret) {
        gs_store_detail("no secret.key loaded: a backup without it is useless");
        return GS_ENOTFOUND;
    }
    char *dest = s_path_trim(dest_in);
    if (!dest)
        return GS_ENOMEM;
    int rc = 0;
    struct stat sb;
    if (lstat(dest, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode) || !s_dir_empty(dest, NULL)) {
            gs_store_detail("backup directory %s exists and is not empty", dest);
            rc = GS_EINVAL;
        }
    } else if (errno != ENOENT) {
        rc = gs_store_err(errno, "look at the backup directory");
    }
    char *tmp = NULL;
    if (!rc)
        rc = s_copy_build(self, dest, &tmp);
    if (!rc) {
        /* one step: dest is either absent (or the empty directory it was)
         * or the whole synced copy */
        if (rename(tmp, dest) != 0) {
            int e = errno;
            s_copy_remove(tmp);
            if (e == ENOTEMPTY || e == EEXIST || e == ENOTDIR) {
                gs_store_detail("backup directory %s appeared meanwhile and is not empty", dest);
                rc = GS_EINVAL;
            } else {
                rc = gs_store_err(e, "rename the backup into place");
            }
        } else {
            int e = s_fsync_parent(dest);
            if (e) {
                s_copy_remove(dest);
                rc = gs_store_err(e, "sync the backup's parent directory");
            }
        }
    }
    free(tmp);
    free(dest);
    return rc;
}

static int
s_epoch_fn(gs_txn_t *t, void *arg)
{
    MDB_val k = { 5, "epoch" }, v = { 8, arg };
    return gs_txn_put(t, GS_DB_META, &k, &v, 0);
}

int
gs_store_epoch_renew(const char *dir)
{
    if (!dir || !*dir)
        return GS_EINVAL;
    char *data = gs_store_path(dir, "data.mdb");
    if (!data)
        return GS_ENOMEM;
    struct stat sb;
    int have = stat(data, &sb) == 0 && sb.st_size > 0;
    free(data);
    if (!have) {
        /* a read-write open would make a new empty store */
        gs_store_detail("no store in %s (data.mdb missing)", dir);
        return GS_ENOTFOUND;
    }
    int rc = 0;
    gs_store_t *st = gs_store_new(dir, NULL, &rc);
    if (!st)
        return rc;
    uint8_t epoch[8];
    gs_store_epoch_make(epoch);
    rc = gs_store_write(st, s_epoch_fn, epoch);
    gs_store_destroy(&st);
    return rc;
}

int
gs_store_restore(const char *backup, const char *dir_in, int force, char *aside,
                 size_t aside_size)
{
    if (aside && aside_size)
        aside[0] = 0;
    if (!backup || !*backup || !dir_in || !*dir_in)
        return GS_EINVAL;
    char *dir = s_path_trim(dir_in);
    if (!dir)
        return GS_ENOMEM;
    gs_store_t *src = NULL;
    char *tmp = NULL;
    int lock = -1, rc = 0, exists = 0, empty = 1;
    struct stat sb;
    if (lstat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) {
            gs_store_detail("%s is not a directory", dir);
            rc = GS_EINVAL;
            goto done;
        }
        exists = 1;
        /* no broker may run on it, nor start before the restore is done */
        if ((rc = gs_store_lock_take(dir, "gridctl-restore", &lock)))
            goto done;
        empty = s_dir_empty(dir, "broker.pid");
        if (!empty && !force) {
            gs_store_detail("%s is not empty: --force moves the store in it aside", dir);
            rc = GS_EINVAL;
            goto done;
        }
    } else if (errno != ENOENT) {
        rc = gs_store_err(errno, "look at the store directory");
        goto done;
    }
    /* the backup must open as a store, with its secret */
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.read_only = 1;
    if (!(src = gs_store_new(backup, &o, &rc)))
        goto done;
    if (!src->have_secret) {
        gs_store_detail("the backup in %s has no secret.key", backup);
        rc = GS_ENOTFOUND;
        goto done;
    }
    if ((rc = s_copy_build(src, dir, &tmp)))
        goto done;
    gs_store_destroy(&src);
    if (empty) {
        if (exists) {
            char *pid = gs_store_path(dir, "broker.pid");   /* ours, from the lock */
            if (pid)
                unlink(pid);
            free(pid);
        }
        if (rename(tmp, dir) != 0) {
            rc = gs_store_err(errno, "rename the restored store into place");
            s_copy_remove(tmp);
            goto done;
        }
    } else {
        /* swap in one step: no moment without a store at dir */
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) != 0) {
            rc = gs_store_err(errno, "swap the restored store into place");
            s_copy_remove(tmp);
            goto done;
        }
        /* tmp now holds the old store: give it a name that says what it is */
        char stamp[32], name[4200];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
        const char *where = tmp;
        for (int i = 0; i < 100; i++) {
            if (i == 0)
                snprintf(name, sizeof name, "%s.replaced-%s", dir, stamp);
            else
                snprintf(name, sizeof name, "%s.replaced-%s-%d", dir, stamp, i);
            if (renameat2(AT_FDCWD, tmp, AT_FDCWD, name, RENAME_NOREPLACE) == 0) {
                where = name;
                break;
            }
            if (errno != EEXIST)
                break;
        }
        if (aside && aside_size)
            snprintf(aside, aside_size, "%s", where);
    }
    int e = s_fsync_parent(dir);
    if (e)
        rc = gs_store_err(e, "sync the store's parent directory");
done:
    gs_store_destroy(&src);
    if (lock >= 0)
        close(lock);
    free(tmp);
    free(dir);
    return rc;
}

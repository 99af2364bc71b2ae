/*
 * gs_store: opening and closing the LMDB environment, error translation,
 * the transaction helpers every other store file uses (read locks, map
 * growth, reopening after MDB_PANIC), and the operational calls: info,
 * backup, stale-reader cleanup and the debug hooks.
 *
 * Where it sits: the bottom of the store. gs_store_apply.c (the writer
 * path), gs_store_read.c (sync and lookups), gs_store_admin.c (registries)
 * and gs_store_verify.c build on the helpers here. Key layouts are in
 * gs_store_int.h and docs/store.md.
 */
#include "gs_store_int.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define S_DEFAULT_MAP ((size_t) 64 << 20)
#define S_DEFAULT_MAP_MAX ((size_t) 1 << 40)

/* ---- Errors ------------------------------------------------------------------ */

static _Thread_local char s_detail_buf[256];

const char *
gs_store_strerror(int err)
{
    switch (err) {
    case GS_OK: return "success";
    case GS_ENOTFOUND: return "not found";
    case GS_EFULL: return "storage full: disk full or map at its size limit";
    case GS_EIO: return "input/output error in the store files";
    case GS_ECORRUPT: return "store damaged or not a gridsync store";
    case GS_EINVAL: return "invalid argument";
    case GS_ENOMEM: return "out of memory";
    case GS_EREADONLY: return "store is read-only or not writable";
    case GS_EVERSION: return "store written by an incompatible version";
    case GS_EBUSY: return "store busy: locked or out of reader slots";
    case GS_EINTERNAL: return "internal store error";
    default: return "unknown store error";
    }
}

const char *
gs_store_errdetail(void)
{
    return s_detail_buf;
}

void
gs_store_detail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s_detail_buf, sizeof s_detail_buf, fmt, ap);
    va_end(ap);
}

int
gs_store_err(int rc, const char *what)
{
    if (rc == 0)
        return 0;
    if (rc <= GS_ENOTFOUND && rc >= GS_EINTERNAL)
        return rc;  /* already ours */
    gs_store_detail("%s: %s (%d)", what, mdb_strerror(rc), rc);
    switch (rc) {
    case MDB_NOTFOUND:
    case ENOENT:
        return GS_ENOTFOUND;
    case MDB_MAP_FULL:
    case ENOSPC:
    case EFBIG:
    case EDQUOT:
        return GS_EFULL;
    case EIO:
        return GS_EIO;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_INCOMPATIBLE:
        return GS_ECORRUPT;
    case MDB_VERSION_MISMATCH:
        return GS_EVERSION;
    case ENOMEM:
        return GS_ENOMEM;
    case EACCES:
    case EPERM:
    case EROFS:
        return GS_EREADONLY;
    case MDB_READERS_FULL:
    case EAGAIN:
    case EBUSY:
        return GS_EBUSY;
    case EINVAL:
    case MDB_BAD_VALSIZE:
    case MDB_TXN_FULL:
        return GS_EINVAL;
    default:
        return GS_EINTERNAL;
    }
}

/* ---- Environment ------------------------------------------------------------- */

void
gs_store_opts_init(gs_store_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->map_size = S_DEFAULT_MAP;
    o->map_max = S_DEFAULT_MAP_MAX;
    o->idem_max_entries = 1000000;
    o->idem_max_age_ms = 30LL * 24 * 3600 * 1000;
    o->max_readers = 256;
}

static char *
s_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Read dir/secret.key, or create it when allowed. */
static int
s_secret_load(gs_store_t *self, int may_create)
{
    char *path = s_path(self->dir, "secret.key");
    if (!path)
        return GS_ENOMEM;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && may_create) {
        uint8_t key[32];
        randombytes_buf(key, sizeof key);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            if (write(fd, key, sizeof key) != (ssize_t) sizeof key || fsync(fd) != 0)
                rc = gs_store_err(errno ? errno : EIO, "write secret.key");
            close(fd);
            sodium_memzero(key, sizeof key);
            if (rc) {
                unlink(path);
                free(path);
                return rc;
            }
            fd = open(path, O_RDONLY | O_CLOEXEC);
        }
    }
    if (fd < 0) {
        int e = errno;
        free(path);
        if (e == ENOENT) {
            gs_store_detail("secret.key missing: the person index cannot be keyed");
            return GS_ENOTFOUND;
        }
        return gs_store_err(e, "open secret.key");
    }
    ssize_t got = read(fd, self->secret, sizeof self->secret);
    close(fd);
    free(path);
    if (got != (ssize_t) sizeof self->secret) {
        gs_store_detail("secret.key is not 32 bytes");
        return GS_ECORRUPT;
    }
    crypto_auth_hmacsha256_init(&self->hmac0, self->secret, sizeof self->secret);
    self->have_secret = 1;
    return 0;
}

static void
s_env_close(gs_store_t *self)
{
    if (self->env)
        mdb_env_close(self->env);
    self->env = NULL;
}

static int
s_env_open(gs_store_t *self)
{
    int rc = mdb_env_create(&self->env);
    if (rc)
        return gs_store_err(rc, "mdb_env_create");
    if ((rc = mdb_env_set_maxdbs(self->env, 16)) ||
        (rc = mdb_env_set_maxreaders(self->env, self->opts.max_readers)) ||
        (rc = mdb_env_set_mapsize(self->env, self->map_size))) {
        s_env_close(self);
        return gs_store_err(rc, "configure environment");
    }
    rc = mdb_env_open(self->env, self->dir, self->env_flags, 0600);
    if (rc) {
        s_env_close(self);
        return gs_store_err(rc, "mdb_env_open");
    }
    MDB_envinfo ei;
    MDB_stat es;
    mdb_env_info(self->env, &ei);
    mdb_env_stat(self->env, &es);
    self->map_size = ei.me_mapsize;
    /* LMDB opens an existing store with a map just large enough for its
     * data; give it room at once instead of failing the first apply into a
     * growth (no transaction is open here) */
    size_t used = (size_t) (ei.me_last_pgno + 1) * es.ms_psize;
    if (!self->opts.read_only && self->map_size < used + used / 2 &&
        self->map_size < self->opts.map_max) {
        size_t want = used * 2 > self->opts.map_max ? self->opts.map_max : used * 2;
        if (want > self->map_size && mdb_env_set_mapsize(self->env, want) == 0) {
            mdb_env_info(self->env, &ei);
            self->map_size = ei.me_mapsize;
        }
    }
    return 0;
}

/* Read the store's lineage epoch into self->epoch; a writable open of a
 * store without one (new, or made before epochs existed) creates it. A
 * read-only open of such a store reports 0. */
static int
s_epoch_load(gs_store_t *self, MDB_txn *txn)
{
    MDB_val k = { 5, "epoch" }, v;
    int rc = mdb_get(txn, self->db[GS_DB_META], &k, &v);
    if (rc == 0) {
        if (v.mv_size != 8 || gs_le64_get(v.mv_data) == 0) {
            gs_store_detail("meta 'epoch' is damaged (%zu bytes)", v.mv_size);
            return GS_ECORRUPT;
        }
        uint64_t e = gs_le64_get(v.mv_data);
        if (self->epoch != e) /* a reopen after MDB_PANIC writes nothing others read */
            self->epoch = e;
        return 0;
    }
    if (rc != MDB_NOTFOUND)
        return gs_store_err(rc, "read epoch");
    if (self->opts.read_only)
        return 0;   /* self->epoch stays 0: not known */
    uint64_t e = 0;
    while (e == 0) /* 0 means "no epoch" on the wire */
        randombytes_buf(&e, sizeof e);
    uint8_t buf[8];
    gs_le64_put(buf, e);
    MDB_val ev = { 8, buf };
    rc = mdb_put(txn, self->db[GS_DB_META], &k, &ev, 0);
    if (rc)
        return gs_store_err(rc, "write epoch");
    self->epoch = e;
    return 0;
}

int
gs_store_epoch(gs_store_t *self, uint64_t *epoch)
{
    assert(self && epoch);
    *epoch = self->epoch;
    return self->epoch ? 0 : GS_ENOTFOUND;
}

/* Open the named databases; on a new store write the format and create the
 * secret and the epoch. */
static int
s_dbs_open(gs_store_t *self)
{
    int ro = self->opts.read_only;
    MDB_txn *txn;
    int rc = mdb_txn_begin(self->env, NULL, ro ? MDB_RDONLY : 0, &txn);
    if (rc)
        return gs_store_err(rc, "begin open transaction");
    for (int i = 0; i < GS_DB_COUNT; i++) {
        rc = mdb_dbi_open(txn, gs_db_names[i], ro ? 0 : MDB_CREATE, &self->db[i]);
        if (rc) {
            mdb_txn_abort(txn);
            if (rc == MDB_NOTFOUND) {
                gs_store_detail("database '%s' missing: not a gridsync store", gs_db_names[i]);
                return i == 0 ? GS_ENOTFOUND : GS_ECORRUPT;
            }
            return gs_store_err(rc, "mdb_dbi_open");
        }
    }
    MDB_val k = { 6, "format" }, v;
    rc = mdb_get(txn, self->db[GS_DB_META], &k, &v);
    int fresh = 0;
    if (rc == MDB_NOTFOUND) {
        if (ro) {
            mdb_txn_abort(txn);
            gs_store_detail("store has no format mark (never opened for writing)");
            return GS_ENOTFOUND;
        }
        uint8_t fmt[4];
        gs_le32_put(fmt, GS_FORMAT_VERSION);
        MDB_val fv = { 4, fmt };
        rc = mdb_put(txn, self->db[GS_DB_META], &k, &fv, 0);
        fresh = 1;
    } else if (rc == 0) {
        if (v.mv_size != 4 || gs_le32_get(v.mv_data) != GS_FORMAT_VERSION) {
            mdb_txn_abort(txn);
            gs_store_detail("store format %u, this build reads %u",
                            v.mv_size == 4 ? gs_le32_get(v.mv_data) : 0, GS_FORMAT_VERSION);
            return GS_EVERSION;
        }
    }
    if (rc) {
        mdb_txn_abort(txn);
        return gs_store_err(rc, "read format");
    }
    if ((rc = s_epoch_load(self, txn)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    if (!self->have_secret) {
        /* a store that has a format but no secret lost its key: refuse to
         * invent another one, which would silently split the index */
        int src = s_secret_load(self, fresh);
        if (src == GS_ENOTFOUND && !ro)
            src = GS_ECORRUPT;
        if (src && !(ro && src == GS_ENOTFOUND)) {
            mdb_txn_abort(txn);
            return src;
        }
    }
    rc = mdb_txn_commit(txn);
    if (rc)
        return gs_store_err(rc, "commit open transaction");
    return 0;
}

gs_store_t *
gs_store_new(const char *dir, const gs_store_opts_t *opts, int *err)
{
    int rc = 0;
    int dummy;
    if (!err)
        err = &dummy;
    *err = 0;
    if (!dir || !*dir) {
        *err = GS_EINVAL;
        return NULL;
    }
    if (sodium_init() < 0) {
        *err = GS_EINTERNAL;
        return NULL;
    }
    gs_store_t *self = calloc(1, sizeof *self);
    if (!self) {
        *err = GS_ENOMEM;
        return NULL;
    }
    gs_store_opts_t def;
    gs_store_opts_init(&def);
    self->opts = opts ? *opts : def;
    if (!self->opts.map_size)
        self->opts.map_size = def.map_size;
    if (!self->opts.map_max)
        self->opts.map_max = def.map_max;
    if (self->opts.map_max < self->opts.map_size)
        self->opts.map_max = self->opts.map_size;
    if (!self->opts.idem_max_entries)
        self->opts.idem_max_entries = def.idem_max_entries;
    if (self->opts.idem_max_age_ms <= 0)
        self->opts.idem_max_age_ms = def.idem_max_age_ms;
    if (!self->opts.max_readers)
        self->opts.max_readers = def.max_readers;
    self->limits = self->opts.limits ? *self->opts.limits : gs_limits_default;
    self->opts.limits = NULL;   /* not kept: the copy above is used */
    self->map_size = self->opts.map_size;
    self->env_flags = MDB_NOTLS | (self->opts.no_sync ? MDB_NOSYNC : 0) |
                      (self->opts.read_only ? MDB_RDONLY : 0);
    gs_wbuf_init(&self->out);
    gs_wbuf_init(&self->pack);

    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&self->env_lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&self->write_lock, NULL);

    self->dir = strdup(dir);
    self->arena = gs_arena_new(256 * 1024);
    if (!self->dir || !self->arena) {
        rc = GS_ENOMEM;
        goto fail;
    }
    if (self->opts.read_only) {
        char *data = s_path(dir, "data.mdb");
        struct stat sb;
        int have = data && stat(data, &sb) == 0;
        free(data);
        if (!have) {
            gs_store_detail("no store in %s (data.mdb missing)", dir);
            rc = GS_ENOTFOUND;
            goto fail;
        }
    } else if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rc = gs_store_err(errno, "create store directory");
        goto fail;
    }
    if ((rc = s_env_open(self)) || (rc = s_dbs_open(self)))
        goto fail;
    int dead = 0;
    mdb_reader_check(self->env, &dead);
    return self;
fail:
    *err = rc;
    gs_store_destroy(&self);
    return NULL;
}

void
gs_store_destroy(gs_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gs_store_t *self = *self_p;
    s_env_close(self);
    gs_arena_destroy(&self->arena);
    gs_wbuf_deinit(&self->out);
    gs_wbuf_deinit(&self->pack);
    pthread_rwlock_destroy(&self->env_lock);
    pthread_mutex_destroy(&self->write_lock);
    sodium_memzero(self->secret, sizeof self->secret);
    sodium_memzero(&self->hmac0, sizeof self->hmac0);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

/* ---- Transactions ------------------------------------------------------------ */

/* Take a map size grown by another process. */
static void
s_adopt_mapsize(gs_store_t *self)
{
    pthread_rwlock_wrlock(&self->env_lock);
    if (self->env) {
        mdb_env_set_mapsize(self->env, 0);
        MDB_envinfo ei;
        mdb_env_info(self->env, &ei);
        self->map_size = ei.me_mapsize;
    }
    pthread_rwlock_unlock(&self->env_lock);
}

int
gs_store_reopen(gs_store_t *self)
{
    /* MDB_PANIC: the environment must be closed and opened again; nothing
     * committed is lost (the last good meta page is used). */
    pthread_rwlock_wrlock(&self->env_lock);
    s_env_close(self);
    int rc = s_env_open(self);
    if (!rc)
        rc = s_dbs_open(self);
    if (rc)
        s_env_close(self);
    pthread_rwlock_unlock(&self->env_lock);
    return rc;
}

static int
s_txn_begin(gs_store_t *self, unsigned flags, MDB_txn **txn)
{
    int rc = 0;
    for (int tries = 0; tries < 4; tries++) {
        pthread_rwlock_rdlock(&self->env_lock);
        rc = self->env ? mdb_txn_begin(self->env, NULL, flags, txn) : MDB_PANIC;
        if (rc == 0)
            return 0;   /* env_lock stays shared until the end */
        pthread_rwlock_unlock(&self->env_lock);
        if (rc == MDB_MAP_RESIZED)
            s_adopt_mapsize(self);
        else if (rc == MDB_PANIC)
            gs_store_reopen(self);
        else
            break;
    }
    *txn = NULL;
    return gs_store_err(rc, flags ? "begin read transaction" : "begin write transaction");
}

int
gs_rtxn_begin(gs_store_t *self, MDB_txn **txn)
{
    return s_txn_begin(self, MDB_RDONLY, txn);
}

void
gs_rtxn_end(gs_store_t *self, MDB_txn **txn)
{
    if (*txn) {
        mdb_txn_abort(*txn);
        *txn = NULL;
        pthread_rwlock_unlock(&self->env_lock);
    }
}

int
gs_scan(gs_store_t *self, int db, const char *prefix, gs_scan_fn *each, void *arg,
        const char *what)
{
    if (!prefix)
        prefix = "";
    size_t pl = strlen(prefix);
    if (pl > GS_GRID_LEN)
        return GS_EINVAL;
    MDB_txn *txn;
    int rc = gs_rtxn_begin(self, &txn);
    if (rc)
        return rc;
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(txn, self->db[db], &c))) {
        gs_rtxn_end(self, &txn);
        return gs_store_err(rc, what);
    }
    MDB_val k = { pl, (void *) prefix }, v;
    int user = 0;
    for (rc = mdb_cursor_get(c, &k, &v, pl ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size < pl || memcmp(k.mv_data, prefix, pl) != 0)
            break;
        if ((rc = each(arg, txn, &k, &v, &user)) || user)
            break;
    }
    mdb_cursor_close(c);
    gs_rtxn_end(self, &txn);
    if (user)
        return user;
    return rc == MDB_NOTFOUND ? 0 : gs_store_err(rc, what);
}

int
gs_wtxn_begin(gs_store_t *self, MDB_txn **txn)
{
    if (self->opts.read_only) {
        gs_store_detail("store opened read-only");
        return GS_EREADONLY;
    }
    int rc = s_txn_begin(self, 0, txn);
    if (rc == 0 && self->trace)
        self->trace(self->trace_arg, 3, NULL, NULL, 0, NULL, 0, 0);
    return rc;
}

/* LMDB reports a short write of dirty pages as EIO ("short write,
 * filesystem full?" in mdb_page_flush); only a write that could store
 * nothing at all gives ENOSPC. A commit that failed with EIO on a
 * filesystem left with (almost) no free space ran out of room. */
static int
s_fs_full(const char *dir)
{
    struct statvfs sv;
    if (statvfs(dir, &sv) != 0)
        return 0;
    return (unsigned long long) sv.f_bavail * sv.f_frsize < (1ULL << 20);
}

int
gs_wtxn_commit(gs_store_t *self, MDB_txn **txn)
{
    int rc;
    if (self->fail_commit) {
        rc = self->fail_commit;
        self->fail_commit = 0;
        mdb_txn_abort(*txn);
    } else {
        rc = mdb_txn_commit(*txn);
    }
    *txn = NULL;
    pthread_rwlock_unlock(&self->env_lock);
    if (rc == EIO && s_fs_full(self->dir))
        rc = ENOSPC;
    if (rc == 0 && self->trace)
        self->trace(self->trace_arg, 2, NULL, NULL, 0, NULL, 0, 0);
    return rc;
}

void
gs_wtxn_abort(gs_store_t *self, MDB_txn **txn)
{
    gs_rtxn_end(self, txn);
}

int
gs_store_grow(gs_store_t *self)
{
    /* mdb_env_set_mapsize needs every transaction of this process closed */
    pthread_rwlock_wrlock(&self->env_lock);
    size_t cur = self->map_size;
    if (cur >= self->opts.map_max) {
        pthread_rwlock_unlock(&self->env_lock);
        gs_store_detail("map at its limit of %zu bytes", self->opts.map_max);
        return GS_EFULL;
    }
    size_t next = cur > self->opts.map_max / 2 ? self->opts.map_max : cur * 2;
    int rc = self->env ? mdb_env_set_mapsize(self->env, next) : MDB_PANIC;
    if (!rc) {
        MDB_envinfo ei;
        mdb_env_info(self->env, &ei);
        self->map_size = ei.me_mapsize;
    }
    pthread_rwlock_unlock(&self->env_lock);
    return gs_store_err(rc, "grow map");
}

int
gs_put(gs_store_t *self, MDB_txn *txn, int db, MDB_val *k, MDB_val *v,
       unsigned flags)
{
    int rc = mdb_put(txn, self->db[db], k, v, flags);
    if (rc == 0 && self->trace && !(flags & MDB_RESERVE))
        self->trace(self->trace_arg, 0, gs_db_names[db], k->mv_data, k->mv_size,
                    v->mv_data, v->mv_size, (flags & MDB_APPEND) != 0);
    return rc;
}

int
gs_del(gs_store_t *self, MDB_txn *txn, int db, MDB_val *k)
{
    int rc = mdb_del(txn, self->db[db], k, NULL);
    if (rc == 0 && self->trace)
        self->trace(self->trace_arg, 1, gs_db_names[db], k->mv_data, k->mv_size,
                    NULL, 0, 0);
    return rc;
}

int
gs_store_write(gs_store_t *self, gs_wfn *fn, void *arg)
{
    pthread_mutex_lock(&self->write_lock);
    int rc;
    for (;;) {
        MDB_txn *txn;
        rc = gs_wtxn_begin(self, &txn);
        if (rc)
            break;
        rc = fn(self, txn, arg);
        if (rc == 0)
            rc = gs_wtxn_commit(self, &txn);
        else
            gs_wtxn_abort(self, &txn);
        if (rc == MDB_MAP_FULL) {
            rc = gs_store_grow(self);
            if (rc == 0)
                continue;
        }
        break;
    }
    pthread_mutex_unlock(&self->write_lock);
    return gs_store_err(rc, "write");
}

/* ---- Operations -------------------------------------------------------------- */

int
gs_store_info(gs_store_t *self, gs_store_info_t *info)
{
    memset(info, 0, sizeof *info);
    MDB_txn *txn;
    int rc = gs_rtxn_begin(self, &txn);
    if (rc)
        return rc;
    MDB_envinfo ei;
    MDB_stat es, st;
    mdb_env_info(self->env, &ei);
    mdb_env_stat(self->env, &es);
    info->map_size = ei.me_mapsize;
    info->map_used = (size_t) (ei.me_last_pgno + 1) * es.ms_psize;
    info->readers_used = ei.me_numreaders;
    info->readers_max = ei.me_maxreaders;
    if (!mdb_stat(txn, self->db[GS_DB_RECORDS], &st))
        info->records = st.ms_entries;
    if (!mdb_stat(txn, self->db[GS_DB_LOG], &st))
        info->events = st.ms_entries;
    if (!mdb_stat(txn, self->db[GS_DB_IDEM], &st))
        info->idem_entries = st.ms_entries;
    MDB_val k = { 8, "head_seq" }, v;
    if (mdb_get(txn, self->db[GS_DB_META], &k, &v) == 0 && v.mv_size == 8)
        info->head_seq = gs_le64_get(v.mv_data);
    gs_rtxn_end(self, &txn);
    char *data = s_path(self->dir, "data.mdb");
    struct stat sb;
    if (data && stat(data, &sb) == 0)
        info->file_size = (size_t) sb.st_size;
    free(data);
    return 0;
}

int
gs_store_reader_check(gs_store_t *self, int *dead)
{
    int d = 0;
    pthread_rwlock_rdlock(&self->env_lock);
    int rc = self->env ? mdb_reader_check(self->env, &d) : MDB_PANIC;
    pthread_rwlock_unlock(&self->env_lock);
    if (dead)
        *dead = d;
    return gs_store_err(rc, "mdb_reader_check");
}

static int
s_dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            empty = 0;
    closedir(d);
    return empty;
}

int
gs_store_backup(gs_store_t *self, const char *dest)
{
    if (!dest || !*dest)
        return GS_EINVAL;
    if (!self->have_secret) {
        gs_store_detail("no secret.key loaded: a backup without it is useless");
        return GS_ENOTFOUND;
    }
    if (mkdir(dest, 0700) != 0) {
        if (errno != EEXIST)
            return gs_store_err(errno, "create backup directory");
        if (!s_dir_empty(dest)) {
            gs_store_detail("backup directory %s is not empty", dest);
            return GS_EINVAL;
        }
    }
    int rc = MDB_MAP_RESIZED;
    for (int tries = 0; tries < 3 && rc == MDB_MAP_RESIZED; tries++) {
        /* the copy runs its own read transaction: hold the lock shared */
        pthread_rwlock_rdlock(&self->env_lock);
        rc = self->env ? mdb_env_copy2(self->env, dest, MDB_CP_COMPACT) : MDB_PANIC;
        pthread_rwlock_unlock(&self->env_lock);
        if (rc == MDB_MAP_RESIZED)
            s_adopt_mapsize(self);
    }
    if (rc)
        return gs_store_err(rc, "mdb_env_copy2");
    char *data = s_path(dest, "data.mdb");
    char *key = s_path(dest, "secret.key");
    if (!data || !key) {
        free(data);
        free(key);
        return GS_ENOMEM;
    }
    chmod(data, 0600);
    int fd = open(key, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, self->secret, sizeof self->secret) != (ssize_t) sizeof self->secret ||
        fsync(fd) != 0)
        rc = gs_store_err(errno ? errno : EIO, "write backup secret.key");
    if (fd >= 0)
        close(fd);
    free(data);
    free(key);
    if (!rc) {
        int dfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    return rc;
}

int
gs_store_person_key(gs_store_t *self, const char *id_number, uint8_t out[16])
{
    if (!id_number || !*id_number)
        return GS_EINVAL;
    if (!self->have_secret) {
        gs_store_detail("no secret.key loaded");
        return GS_ENOTFOUND;
    }
    gs_person_hmac(self, id_number, out);
    return 0;
}

/* ---- Debug hooks --------------------------------------------------------------- */

static int
s_db_index(const char *name)
{
    for (int i = 0; i < GS_DB_COUNT; i++)
        if (name && strcmp(name, gs_db_names[i]) == 0)
            return i;
    return -1;
}

typedef struct {
    int db;                 /* database index */
    MDB_val k, v;           /* key, value (v unused for a delete) */
    int del;                /* 1 = delete */
} s_raw_t;

static int
s_raw_fn(gs_store_t *self, MDB_txn *txn, void *arg)
{
    s_raw_t *r = arg;
    if (r->del)
        return gs_del(self, txn, r->db, &r->k);
    return gs_put(self, txn, r->db, &r->k, &r->v, 0);
}

int
gs_store_debug_del(gs_store_t *self, const char *db, const void *key, size_t klen)
{
    s_raw_t r = { s_db_index(db), { klen, (void *) key }, { 0, NULL }, 1 };
    if (r.db < 0)
        return GS_EINVAL;
    return gs_store_write(self, s_raw_fn, &r);
}

int
gs_store_debug_put(gs_store_t *self, const char *db, const void *key,
                   size_t klen, const void *val, size_t vlen)
{
    s_raw_t r = { s_db_index(db), { klen, (void *) key }, { vlen, (void *) val }, 0 };
    if (r.db < 0)
        return GS_EINVAL;
    return gs_store_write(self, s_raw_fn, &r);
}

void
gs_store_debug_trace(gs_store_t *self, gs_store_trace_fn *fn, void *arg)
{
    pthread_mutex_lock(&self->write_lock);
    self->trace = fn;
    self->trace_arg = arg;
    pthread_mutex_unlock(&self->write_lock);
}

int
gs_store_debug_reopen(gs_store_t *self)
{
    pthread_mutex_lock(&self->write_lock);
    int rc = gs_store_reopen(self);
    pthread_mutex_unlock(&self->write_lock);
    return rc;
}

void
gs_store_debug_dup_pass(gs_store_t *self, size_t entries)
{
    self->dup_pass = entries;
}

void
gs_store_debug_fail_commit(gs_store_t *self, int err)
{
    pthread_mutex_lock(&self->write_lock);
    self->fail_commit = err;
    pthread_mutex_unlock(&self->write_lock);
}

/*
 * gs_store: opening and closing the LMDB environment, error translation,
 * adopting a map grown elsewhere and reopening after MDB_PANIC, the checks
 * before LMDB opens the files (the data file against its meta pages, the
 * broker's store lock), and the operational calls: info, stale-reader
 * cleanup, the person key and the debug hooks.
 *
 * Where it sits: the bottom of the store. gs_store_txn.c (transactions and
 * map growth) builds on the environment opened here, and everything else
 * on that: gs_store_apply.c (the write path), gs_store_read.c and
 * gs_store_log.c (reads), gs_store_admin.c (registries), gs_store_verify.c
 * and gs_store_backup.c. Key layouts are in gs_store_keys.h and
 * docs/store.md.
 */
#include "gs_store_digest.h"
#include "gs_store_int.h"
#include "gs_store_idem.h"
#include "gs_store_ids.h"
#include "gs_store_persons.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
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

char *
gs_store_path(const char *dir, const char *name)
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
    char *path = gs_store_path(self->dir, "secret.key");
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
    if ((rc = gs_person_hmac_init(self)) != 0)
        return rc;
    self->have_secret = 1;
    return 0;
}

/* ---- The data file before LMDB maps it -------------------------------------- */

/* LMDB 0.9 (liblmdb 0.9.24, mdb.c) on a 64-bit build: pages 0 and 1 are
 * meta pages, each an MDB_page header (mp_pgno 8, mp_pad 2, mp_flags 2,
 * mp_lower/mp_upper 4: 16 bytes) followed by MDB_meta: mm_magic u32 @0,
 * mm_version u32 @4, mm_address @8, mm_mapsize @16, mm_dbs[2] (MDB_db, 48
 * bytes each: md_pad u32 @0 (in mm_dbs[0] it is the page size), md_flags,
 * md_depth, branch/leaf/overflow pages, entries, md_root u64 @40) @24,
 * mm_last_pg u64 @120, mm_txnid u64 @128. LMDB uses the meta page with the
 * larger txnid and maps the file without looking at its size: pages it
 * believes committed but the file lacks fault with SIGBUS on first touch. */
_Static_assert(sizeof(size_t) == 8 && sizeof(void *) == 8,
               "the meta page offsets below are those of LMDB's 64-bit builds");
#define S_PAGEHDR 16
#define S_P_META 0x08
#define S_MDB_MAGIC 0xBEEFC0DEu
#define S_MDB_VERSION 1u
#define S_P_INVALID UINT64_MAX

typedef struct {
    uint32_t psize;             /* page size */
    uint64_t last_pg;           /* last page in use */
    uint64_t txnid;             /* transaction that wrote this meta page */
    uint64_t root[2];           /* free and main database roots */
} s_meta_t;

/* Read one meta page at off; 0 or GS_ECORRUPT/GS_EVERSION with a detail. */
static int
s_meta_read(int fd, off_t off, int which, s_meta_t *m)
{
    uint8_t b[S_PAGEHDR + 136];
    ssize_t got = pread(fd, b, sizeof b, off);
    if (got < 0)
        return gs_store_err(errno, "read data.mdb meta page");
    if (got != (ssize_t) sizeof b) {
        gs_store_detail("data.mdb is truncated: meta page %d is missing", which);
        return GS_ECORRUPT;
    }
    uint16_t flags;
    memcpy(&flags, b + 10, 2);
    uint32_t magic = gs_le32_get(b + S_PAGEHDR), version = gs_le32_get(b + S_PAGEHDR + 4);
    if (!(flags & S_P_META) || magic != S_MDB_MAGIC) {
        gs_store_detail("data.mdb is not an LMDB file or its meta page %d is damaged", which);
        return GS_ECORRUPT;
    }
    if (version != S_MDB_VERSION) {
        gs_store_detail("data.mdb has LMDB data format %u, this build reads %u", version,
                        S_MDB_VERSION);
        return GS_EVERSION;
    }
    m->psize = gs_le32_get(b + S_PAGEHDR + 24);
    m->root[0] = gs_le64_get(b + S_PAGEHDR + 24 + 40);
    m->root[1] = gs_le64_get(b + S_PAGEHDR + 72 + 40);
    m->last_pg = gs_le64_get(b + S_PAGEHDR + 120);
    m->txnid = gs_le64_get(b + S_PAGEHDR + 128);
    return 0;
}

/* Check dir/data.mdb against its own meta pages before LMDB maps it, so a
 * truncated or foreign file is refused with a message instead of a SIGBUS
 * or an assertion. A missing or empty file is a new store (LMDB creates
 * it). Order matters on a live store: the meta pages are read before the
 * size, and a committed meta page is only written after its pages. */
static int
s_data_check(const char *dir)
{
    char *path = gs_store_path(dir, "data.mdb");
    if (!path)
        return GS_ENOMEM;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0)
        return errno == ENOENT ? 0 : gs_store_err(errno, "open data.mdb");
    struct stat sb;
    s_meta_t m[2];
    int rc = 0;
    if (fstat(fd, &sb) != 0) {
        rc = gs_store_err(errno, "stat data.mdb");
        goto done;
    }
    if (sb.st_size == 0)
        goto done;
    if ((rc = s_meta_read(fd, 0, 0, &m[0])))
        goto done;
    uint32_t ps = m[0].psize;
    if (ps < 512 || ps > 65536 || (ps & (ps - 1))) {
        gs_store_detail("data.mdb meta page 0 is damaged: page size %u", ps);
        rc = GS_ECORRUPT;
        goto done;
    }
    if ((rc = s_meta_read(fd, ps, 1, &m[1])))
        goto done;
    const s_meta_t *cur = m[1].txnid > m[0].txnid ? &m[1] : &m[0];
    int which = cur == &m[1];
    if (cur->psize != ps || cur->last_pg < 1 || cur->last_pg > ((uint64_t) 1 << 40)) {
        gs_store_detail("data.mdb meta page %d is damaged: page size %u, last page %llu", which,
                        cur->psize, (unsigned long long) cur->last_pg);
        rc = GS_ECORRUPT;
        goto done;
    }
    for (int i = 0; i < 2; i++)
        if (cur->root[i] != S_P_INVALID && (cur->root[i] < 2 || cur->root[i] > cur->last_pg)) {
            gs_store_detail("data.mdb meta page %d is damaged: a root page %llu outside 2..%llu",
                            which, (unsigned long long) cur->root[i],
                            (unsigned long long) cur->last_pg);
            rc = GS_ECORRUPT;
            goto done;
        }
    if (fstat(fd, &sb) != 0) {
        rc = gs_store_err(errno, "stat data.mdb");
        goto done;
    }
    uint64_t need = (cur->last_pg + 1) * (uint64_t) ps;
    if ((uint64_t) sb.st_size < need) {
        gs_store_detail("data.mdb is truncated: %llu bytes, the last committed page needs %llu",
                        (unsigned long long) sb.st_size, (unsigned long long) need);
        rc = GS_ECORRUPT;
    }
done:
    close(fd);
    return rc;
}

/* A new lineage epoch: a random non-zero uint64, 8 bytes little-endian. */
void
gs_store_epoch_make(uint8_t out[8])
{
    uint64_t v = 0;
    while (!v)
        randombytes_buf(&v, sizeof v);
    gs_le64_put(out, v);
}

/* ---- The broker lock ------------------------------------------------------------ */

/* Who holds dir's lock, from dir/broker.pid ("PID PROGRAM"), for a message. */
static void
s_lock_holder(const char *dir, char *buf, size_t size)
{
    snprintf(buf, size, "another process (pid unknown: broker.pid unreadable)");
    char *path = gs_store_path(dir, "broker.pid");
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
    free(path);
    if (fd < 0)
        return;
    char t[64];
    ssize_t n = read(fd, t, sizeof t - 1);
    close(fd);
    if (n <= 0)
        return;
    t[n] = 0;
    long pid = 0;
    char who[32] = "";
    if (sscanf(t, "%ld %31s", &pid, who) == 2 && pid > 0)
        snprintf(buf, size, "%s pid %ld", who, pid);
}

/* One store, one broker: an exclusive flock on the store directory itself,
 * taken before LMDB opens anything. The directory, unlike a lock file, cannot
 * be deleted from under a running broker while the store is in it, and
 * LMDB's own lock.mdb plays no part (deleting that under a running broker
 * does not let a second one in). The holder's pid goes into broker.pid for
 * the refusal message. O_CLOEXEC: a child the holder execs does not keep the
 * lock. *fd_out gets the descriptor that holds it. */
int
gs_store_lock_take(const char *dir, const char *who, int *fd_out)
{
    *fd_out = -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return gs_store_err(errno, "open store directory to lock it");
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e != EWOULDBLOCK)
            return gs_store_err(e, "lock store directory");
        char holder[96];
        s_lock_holder(dir, holder, sizeof holder);
        gs_store_detail("store %s is in use by %s", dir, holder);
        return GS_EBUSY;
    }
    char *path = gs_store_path(dir, "broker.pid");
    int pf = path ? open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600) : -1;
    int e = errno;
    free(path);
    char t[64];
    int n = snprintf(t, sizeof t, "%ld %s\n", (long) getpid(), who);
    if (pf < 0 || ftruncate(pf, 0) != 0 || write(pf, t, (size_t) n) != n) {
        int rc = gs_store_err(pf < 0 ? e : (errno ? errno : EIO), "write broker.pid");
        if (pf >= 0)
            close(pf);
        close(fd);
        return rc;
    }
    close(pf);
    *fd_out = fd;
    return 0;
}

/* LMDB's assertion callback: a page it read contradicts itself. LMDB
 * aborts the process when this returns; say why first. */
static void
s_lmdb_assert(MDB_env *env, const char *msg)
{
    gs_store_t *self = mdb_env_get_userctx(env);
    char line[512];
    snprintf(line, sizeof line, "LMDB stopped on a damaged store (%s): %s; run gridctl verify",
             self ? self->dir : "?", msg);
    if (self && self->opts.on_fatal)
        self->opts.on_fatal(line);
    else
        fprintf(stderr, "%s\n", line);
}

/* A non-exclusive open (gridctl) beside a running broker must share the
 * broker's lock.mdb: it holds LMDB's writer mutex and reader table. When
 * that file was deleted under the broker, LMDB here would make a new one
 * that the broker never looks at: a write would not wait for the broker's,
 * and neither would see the other's readers, so pages still in use get
 * overwritten. LMDB never removes lock.mdb itself, so a store with a data
 * file and no lock.mdb is new (made by a copy) or was tampered with; only
 * then is the broker lock probed (shared, and let go at once). */
static int
s_lockfile_check(const char *dir)
{
    char *lockp = gs_store_path(dir, "lock.mdb"), *datap = gs_store_path(dir, "data.mdb");
    struct stat sb;
    int suspect = lockp && datap && stat(lockp, &sb) != 0 && errno == ENOENT &&
                  stat(datap, &sb) == 0 && sb.st_size > 0;
    free(lockp);
    free(datap);
    if (!suspect)
        return 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0;   /* LMDB's open reports it */
    int held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);      /* lets go of the shared lock if it was taken */
    if (!held)
        return 0;
    char holder[96];
    s_lock_holder(dir, holder, sizeof holder);
    gs_store_detail("lock.mdb was deleted under %s: restart it before opening the store "
                    "(a new lock.mdb would bypass its locks)", holder);
    return GS_EBUSY;
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
    int rc = s_data_check(self->dir);
    if (rc == GS_ECORRUPT)
        /* a live writer rewrites a meta page at every commit, and a read
         * racing that write can see it half old, half new: look again */
        rc = s_data_check(self->dir);
    if (rc)
        return rc;
    rc = mdb_env_create(&self->env);
    if (rc)
        return gs_store_err(rc, "mdb_env_create");
    mdb_env_set_userctx(self->env, self);
    mdb_env_set_assert(self->env, s_lmdb_assert);
    if ((rc = mdb_env_set_maxdbs(self->env, 24)) ||
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
        self->epoch = gs_le64_get(v.mv_data);
        return 0;
    }
    if (rc != MDB_NOTFOUND)
        return gs_store_err(rc, "read epoch");
    if (self->opts.read_only)
        return 0;   /* self->epoch stays 0: not known */
    uint8_t buf[8];
    gs_store_epoch_make(buf);
    MDB_val ev = { 8, buf };
    rc = mdb_put(txn, self->db[GS_DB_META], &k, &ev, 0);
    if (rc)
        return gs_store_err(rc, "write epoch");
    self->epoch = gs_le64_get(buf);
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
    int rc;
    for (int tries = 0;; tries++) {
        rc = mdb_txn_begin(self->env, NULL, ro ? MDB_RDONLY : 0, &txn);
        if (rc != MDB_MAP_RESIZED || tries == 64)
            break;
        /* a live store (a read-only open beside the broker) grew past the
         * size LMDB mapped at open: adopt its new size and begin again.
         * Called with env_lock held by gs_store_reopen, or before any other
         * thread has the store, so the lock is not taken here. */
        mdb_env_set_mapsize(self->env, 0);
        MDB_envinfo ei;
        mdb_env_info(self->env, &ei);
        self->map_size = ei.me_mapsize;
    }
    if (rc)
        return gs_store_err(rc, "begin open transaction");
    for (int i = 0; i < GS_DB_COUNT; i++) {
        rc = mdb_dbi_open(txn, gs_db_names[i], ro ? 0 : MDB_CREATE, &self->db[i]);
        if (rc == MDB_NOTFOUND && ro && i == GS_DB_DIGESTS) {
            /* a store made before digests, read before its upgrade: the
             * format check below decides */
            self->db[i] = 0;
            continue;
        }
        if (rc == MDB_NOTFOUND && ro && i == GS_DB_ORIGINS) {
            /* a store no replica-aware build has opened for writing yet:
             * it has no origins, and a read-only open cannot create the
             * table (the readers of origins check no_origins) */
            self->no_origins = 1;
            continue;
        }
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
        uint32_t format = v.mv_size == 4 ? gs_le32_get(v.mv_data) : 0;
        if (format != GS_FORMAT_VERSION && format != GS_FORMAT_FULL_REFS &&
            format != GS_FORMAT_RAW_LOG && format != GS_FORMAT_FULL_IDS &&
            format != GS_FORMAT_PERSON_KEYS && format != GS_FORMAT_NO_DIGESTS) {
            mdb_txn_abort(txn);
            gs_store_detail("store format %u, this build reads %u (and upgrades %u, %u, %u, "
                            "%u and %u)", format, GS_FORMAT_VERSION, GS_FORMAT_NO_DIGESTS,
                            GS_FORMAT_PERSON_KEYS, GS_FORMAT_FULL_IDS, GS_FORMAT_RAW_LOG,
                            GS_FORMAT_FULL_REFS);
            return GS_EVERSION;
        }
        /* format 2 has no digests, format 3 the person index of one entry
         * per ref, formats 2 to 4 canonical ids entries that repeat the id,
         * formats 2 to 5 only raw log bodies and formats 2 to 6 only full
         * person refs (both of which this build reads as they are): an
         * exclusive open upgrades them (s_upgrade), other
         * opens read everything but the digests of format 2 and write no
         * records */
        self->format = format;
        self->digests_ready = format != GS_FORMAT_NO_DIGESTS;
        self->persons_sets = format >= GS_FORMAT_FULL_IDS;
        self->format_current = format == GS_FORMAT_VERSION;
        if (self->digests_ready && ro && self->db[GS_DB_DIGESTS] == 0) {
            mdb_txn_abort(txn);
            gs_store_detail("database 'digests' missing in a format %u store",
                            GS_FORMAT_VERSION);
            return GS_ECORRUPT;
        }
    }
    if (fresh) {
        self->format = GS_FORMAT_VERSION;
        self->digests_ready = self->persons_sets = self->format_current = 1;
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

/* The upgrade of a store of an older format, in one transaction: a store
 * made before digests (format 2) gets them built from the records, and the
 * person index of format 2 and 3 (one entry per ref) is rebuilt as one set
 * of tags per cell (gs_store_persons.h), the idempotency entries get their
 * encoding byte (gs_idem_upgrade) and the chain table is emptied (its heads
 * are derived from `cells`); the canonical ids entries of formats 2 to 4
 * lose the repeated id (gs_ids_compact); then format 7 is marked, which
 * is all a format 5 or 6 store needs (its raw log bodies and full person
 * refs stay as they are: new entries may be LZ4 bodies and records values
 * with refs as tags, which older builds cannot read). Only the
 * broker's exclusive open does it: it holds the store lock, so no broker
 * of the previous build can be writing meanwhile. */
static int
s_upgrade_fn(gs_txn_t *t, void *arg)
{
    gs_store_t *self = arg;
    if (!self->digests_ready && gs_digest_build(t, &self->digests_built))
        return t->err;
    if (!self->persons_sets) {
        uint64_t entries;
        if (gs_persons_build(t, &self->persons_built) || gs_idem_upgrade(t, &entries))
            return t->err;
        /* the chain heads are derived from the cells now (gs_store_log.c) */
        int rc = mdb_drop(t->txn, self->db[GS_DB_CHAIN], 0);
        if (rc)
            return gs_txn_fail(t, rc, "empty the chain table");
    }
    if (self->format < GS_FORMAT_RAW_LOG && gs_ids_compact(t, &self->ids_compacted))
        return t->err;
    uint8_t fmt[4];
    gs_le32_put(fmt, GS_FORMAT_VERSION);
    MDB_val k = { 6, "format" }, v = { 4, fmt };
    return gs_txn_put(t, GS_DB_META, &k, &v, 0);
}

static int
s_upgrade(gs_store_t *self)
{
    if (self->format_current || !self->opts.exclusive)
        return 0;
    self->digests_built = self->persons_built = self->ids_compacted = 0;
    int rc = gs_store_write(self, s_upgrade_fn, self);
    if (rc == 0) {
        self->upgraded_from = self->format;
        self->format = GS_FORMAT_VERSION;
        self->digests_ready = self->persons_sets = self->format_current = 1;
    }
    return rc;
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
    self->lock_fd = -1;
    self->limits = self->opts.limits ? *self->opts.limits : gs_limits_default;
    self->opts.limits = NULL;   /* not kept: the copy above is used */
    self->map_size = self->opts.map_size;
    /* read-ahead left on (no MDB_NORDAHEAD): see "The environment" in
     * docs/store.md */
    self->env_flags = MDB_NOTLS | (self->opts.no_sync ? MDB_NOSYNC : 0) |
                      (self->opts.read_only ? MDB_RDONLY : 0);
    gs_wbuf_init(&self->out);
    gs_wbuf_init(&self->pack);
    gs_wbuf_init(&self->stored);

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
        char *data = gs_store_path(dir, "data.mdb");
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
    assert(!(self->opts.exclusive && self->opts.read_only));
    if (self->opts.exclusive ? (rc = gs_store_lock_take(dir, "gridsyncd", &self->lock_fd))
                             : (rc = s_lockfile_check(dir)))
        goto fail;
    if ((rc = s_env_open(self)) || (rc = s_dbs_open(self)) || (rc = s_upgrade(self)))
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
    if (self->lock_fd >= 0)
        close(self->lock_fd);   /* after LMDB let go of the files */
    gs_arena_destroy(&self->arena);
    if (self->chain) {
        gs_smap_deinit(self->chain);
        free(self->chain);
    }
    gs_wbuf_deinit(&self->out);
    gs_wbuf_deinit(&self->pack);
    gs_wbuf_deinit(&self->stored);
    pthread_rwlock_destroy(&self->env_lock);
    pthread_mutex_destroy(&self->write_lock);
    sodium_memzero(self->secret, sizeof self->secret);
    gs_person_hmac_deinit(self);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

/* ---- Transactions ------------------------------------------------------------ */

void
gs_store_adopt_mapsize(gs_store_t *self)
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
    char *data = gs_store_path(self->dir, "data.mdb");
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

uint64_t
gs_store_persons_built(const gs_store_t *self)
{
    assert(self);
    return self->persons_built;
}

uint64_t
gs_store_ids_compacted(const gs_store_t *self)
{
    assert(self);
    return self->ids_compacted;
}

unsigned
gs_store_upgraded_from(const gs_store_t *self)
{
    assert(self);
    return self->upgraded_from;
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
    return gs_person_hmac(self, id_number, out);
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
s_raw_fn(gs_txn_t *t, void *arg)
{
    s_raw_t *r = arg;
    if (r->del)
        return gs_txn_del(t, r->db, &r->k);
    return gs_txn_put(t, r->db, &r->k, &r->v, 0);
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

int
gs_store_debug_get(gs_store_t *self, const char *db, const void *key, size_t klen,
                   void *val, size_t cap, size_t *vlen)
{
    int i = s_db_index(db);
    if (i < 0)
        return GS_EINVAL;
    if (i == GS_DB_DIGESTS && !self->digests_ready)
        return GS_ENOTFOUND;    /* a read-only open of a store made before digests */
    MDB_txn *txn;
    int rc = gs_rtxn_begin(self, &txn);
    if (rc)
        return rc;
    MDB_val k = { klen, (void *) key }, v;
    rc = mdb_get(txn, self->db[i], &k, &v);
    if (rc == 0) {
        memcpy(val, v.mv_data, v.mv_size < cap ? v.mv_size : cap);
        *vlen = v.mv_size;
    }
    gs_rtxn_end(self, &txn);
    return gs_store_err(rc, "debug get");
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

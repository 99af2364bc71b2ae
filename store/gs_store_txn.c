/*
 * gs_store_txn: read transactions, the scan helper and the write
 * transaction with its sticky error (contract in gs_store_txn.h), and the
 * retry loop that grows the map when a write transaction runs out of it.
 *
 * Where it sits: on LMDB, below every other store file. LMDB and errno
 * codes of a write become GS_E* codes here (gs_txn_fail), once.
 */
#include "gs_store_int.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <sys/statvfs.h>

/* ---- Read transactions ---------------------------------------------------------- */

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
            gs_store_adopt_mapsize(self);
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
    assert(db >= 0 && db < GS_DB_COUNT && each);
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

/* ---- The write transaction --------------------------------------------------------- */

int
gs_txn_begin(gs_store_t *st, gs_txn_t *t)
{
    assert(st && t);
    /* the caller holds write_lock: one writer at a time */
    assert(pthread_mutex_trylock(&st->write_lock) == EBUSY);
    memset(t, 0, sizeof *t);
    t->st = st;
    if (st->opts.read_only) {
        gs_store_detail("store opened read-only");
        return t->err = GS_EREADONLY;
    }
    int rc = s_txn_begin(st, 0, &t->txn);
    if (rc)
        return t->err = rc;
    if (st->trace)
        st->trace(st->trace_arg, 3, NULL, NULL, 0, NULL, 0, 0);
    return 0;
}

int
gs_txn_fail(gs_txn_t *t, int rc, const char *what)
{
    assert(t && rc != 0);
    if (t->err)
        return t->err;     /* the first failure is the one to report */
    if (rc == MDB_MAP_FULL)
        t->map_full = 1;
    t->err = gs_store_err(rc, what);
    return t->err;
}

/* "op db" for the detail of a failed get, put or del. */
static int
s_fail(gs_txn_t *t, int rc, const char *op, int db)
{
    char what[40];
    snprintf(what, sizeof what, "%s %s", op, gs_db_names[db]);
    return gs_txn_fail(t, rc, what);
}

_Static_assert(GS_DB_COUNT <= GS_TXN_CURSORS, "a cursor per database");

MDB_cursor *
gs_txn_cursor(gs_txn_t *t, int db)
{
    assert(t && t->txn && db >= 0 && db < GS_DB_COUNT);
    if (!t->cur[db]) {
        int rc = mdb_cursor_open(t->txn, t->st->db[db], &t->cur[db]);
        if (rc) {
            t->cur[db] = NULL;
            s_fail(t, rc, "open cursor", db);
        }
    }
    return t->cur[db];
}

/* Close the cursors before the transaction ends (LMDB would free them
 * with a write transaction, but closing them here keeps one owner). */
static void
s_cursors_close(gs_txn_t *t)
{
    for (int i = 0; i < GS_DB_COUNT; i++) {
        if (t->cur[i])
            mdb_cursor_close(t->cur[i]);
        t->cur[i] = NULL;
    }
}

int
gs_txn_get(gs_txn_t *t, int db, const MDB_val *k, MDB_val *v)
{
    assert(t && db >= 0 && db < GS_DB_COUNT && k && v);
    if (t->err)
        return t->err;
    assert(t->txn);
    MDB_cursor *c = gs_txn_cursor(t, db);
    if (!c)
        return t->err;
    /* MDB_SET: the data of exactly k, as mdb_get; k itself is not changed */
    MDB_val key = *k;
    int rc = mdb_cursor_get(c, &key, v, MDB_SET);
    if (rc == MDB_NOTFOUND)
        return GS_ENOTFOUND;
    return rc ? s_fail(t, rc, "get", db) : 0;
}

void
gs_txn_trace(gs_txn_t *t, int db, const MDB_val *k, const MDB_val *v, int append)
{
    gs_store_t *st = t->st;
    if (st->trace)
        st->trace(st->trace_arg, 0, gs_db_names[db], k->mv_data, k->mv_size,
                  v->mv_data, v->mv_size, append);
}

int
gs_txn_put(gs_txn_t *t, int db, MDB_val *k, MDB_val *v, unsigned flags)
{
    assert(t && db >= 0 && db < GS_DB_COUNT && k && v);
    if (t->err)
        return t->err;
    assert(t->txn);
    MDB_cursor *c = gs_txn_cursor(t, db);
    if (!c)
        return t->err;
    int rc = mdb_cursor_put(c, k, v, flags);
    if (rc)
        return s_fail(t, rc, "put", db);
    if (!(flags & MDB_RESERVE))     /* a reservation is traced once filled */
        gs_txn_trace(t, db, k, v, (flags & MDB_APPEND) != 0);
    return 0;
}

int
gs_txn_del(gs_txn_t *t, int db, const MDB_val *k)
{
    assert(t && db >= 0 && db < GS_DB_COUNT && k);
    if (t->err)
        return t->err;
    assert(t->txn);
    gs_store_t *st = t->st;
    int rc = mdb_del(t->txn, st->db[db], (MDB_val *) k, NULL);
    if (rc == MDB_NOTFOUND)
        return GS_ENOTFOUND;
    if (rc)
        return s_fail(t, rc, "del", db);
    if (st->trace)
        st->trace(st->trace_arg, 1, gs_db_names[db], k->mv_data, k->mv_size, NULL, 0, 0);
    return 0;
}

int
gs_txn_count(gs_txn_t *t, int db, size_t *n)
{
    assert(t && db >= 0 && db < GS_DB_COUNT && n);
    *n = 0;
    if (t->err)
        return t->err;
    MDB_stat ms;
    int rc = mdb_stat(t->txn, t->st->db[db], &ms);
    if (rc)
        return s_fail(t, rc, "stat", db);
    *n = ms.ms_entries;
    return 0;
}

int
gs_txn_meta_get(gs_txn_t *t, const char *name, uint64_t *out)
{
    assert(name && out);
    *out = 0;
    MDB_val k = { strlen(name), (void *) name }, v;
    int rc = gs_txn_get(t, GS_DB_META, &k, &v);
    if (rc == GS_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (v.mv_size != 8)
        return gs_txn_fail(t, MDB_CORRUPTED, name);
    *out = gs_le64_get(v.mv_data);
    return 0;
}

int
gs_txn_meta_put(gs_txn_t *t, const char *name, uint64_t val)
{
    assert(name);
    uint8_t b[8];
    gs_le64_put(b, val);
    MDB_val k = { strlen(name), (void *) name }, v = { 8, b };
    return gs_txn_put(t, GS_DB_META, &k, &v, 0);
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

void
gs_txn_abort(gs_txn_t *t)
{
    assert(t);
    /* the change log may have moved the chain heads with this transaction */
    t->st->chain_built = 0;
    s_cursors_close(t);
    if (t->txn)
        gs_rtxn_end(t->st, &t->txn);
}

int
gs_txn_commit(gs_txn_t *t)
{
    assert(t);
    if (t->err) {
        gs_txn_abort(t);    /* commit becomes abort after any failure */
        return t->err;
    }
    assert(t->txn);
    gs_store_t *st = t->st;
    int rc;
    s_cursors_close(t);
    if (st->fail_commit) {
        rc = st->fail_commit;
        st->fail_commit = 0;
        mdb_txn_abort(t->txn);
    } else {
        rc = mdb_txn_commit(t->txn);
    }
    t->txn = NULL;
    pthread_rwlock_unlock(&st->env_lock);
    if (rc == EIO && s_fs_full(st->dir))
        rc = ENOSPC;
    if (rc) {
        st->chain_built = 0;    /* the chain heads moved with what was not committed */
        return gs_txn_fail(t, rc, "commit");
    }
    if (st->trace)
        st->trace(st->trace_arg, 2, NULL, NULL, 0, NULL, 0, 0);
    return 0;
}

/* ---- Map growth and the retry loop ------------------------------------------------- */

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
gs_store_write_locked(gs_store_t *self, gs_wfn *fn, void *arg, uint32_t *grows)
{
    assert(self && fn);
    int rc;
    for (;;) {
        gs_txn_t t;
        if ((rc = gs_txn_begin(self, &t)))
            break;
        rc = fn(&t, arg);
        if (rc == 0)
            rc = gs_txn_commit(&t);
        else
            gs_txn_abort(&t);
        if (rc && t.map_full) {
            /* redo the whole write in a bigger map: nothing half-applied */
            if ((rc = gs_store_grow(self)) == 0) {
                if (grows)
                    (*grows)++;
                continue;
            }
        }
        break;
    }
    return rc;
}

int
gs_store_write(gs_store_t *self, gs_wfn *fn, void *arg)
{
    pthread_mutex_lock(&self->write_lock);
    int rc = gs_store_write_locked(self, fn, arg, NULL);
    pthread_mutex_unlock(&self->write_lock);
    return rc;
}

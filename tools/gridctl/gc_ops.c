/*
 * gc_ops: operations on the store as a whole. `backup DEST` (a hot,
 * compacting copy through gs_store_backup), `restore BACKUP STORE` (through
 * gs_store_restore, with the broker stopped), `verify` (every index checked
 * against the records, in a child process so that a damaged file is reported
 * rather than crashing gridctl) and `health` (the store's figures, and the broker's
 * if one answers on the admin endpoint).
 *
 * `health` asks the broker through the client library's gs_admin (the
 * admin endpoint: a local ipc:// ROUTER, owner-only file permissions, no
 * CURVE). With --admin and no store at --store, it shows the broker's side
 * only: a store on another machine, reached through a forwarded socket.
 */
#include "gc.h"
#include "gs_admin.h"
#include "gs_store_replica.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- backup ------------------------------------------------------------------------ */

/* Open the store in dir read-only and read its figures, as a broker will
 * open it: a backup or restore that does not open is not one. */
static int
s_readback(const char *dir, gs_store_info_t *info)
{
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.read_only = 1;
    int err = 0;
    gs_store_t *st = gs_store_new(dir, &o, &err);
    memset(info, 0, sizeof *info);
    if (st)
        err = gs_store_info(st, info);
    gs_store_destroy(&st);
    return err;
}

/* The head seq and counts of info as JSON members. */
static void
s_json_counts(gs_json_t *j, const gs_store_info_t *info)
{
    gs_json_key(j, "head_seq");
    gs_json_u64(j, info->head_seq);
    gs_json_key(j, "records");
    gs_json_u64(j, info->records);
    gs_json_key(j, "events");
    gs_json_u64(j, info->events);
}

static const char s_backup_help[] =
    "Usage: gridctl backup DEST\n"
    "\n"
    "A hot, compacting copy of the store into directory DEST (which must not exist,\n"
    "or be empty), consistent as of one read transaction while the broker keeps\n"
    "writing and the store grows; secret.key is copied with it. The copy is built\n"
    "beside DEST (DEST.tmp-XXXXXX), given a new lineage epoch, synced and renamed to\n"
    "DEST in one step: DEST is 0700 with files 0600, and a failed backup leaves\n"
    "nothing behind. The copy opens as a store: check it with\n"
    "gridctl --store DEST verify, bring it back with gridctl restore.\n"
    "\n"
    "--json: {dest, head_seq, records, events, file_size}.\n";

int
gc_cmd_backup(gc_ctx_t *ctx, int argc, char **argv)
{
    gc_args_t a;
    int rc = gc_args_parse(ctx, argc, argv, NULL, &a);
    if (rc)
        return rc;
    if (a.help) {
        fputs(s_backup_help, ctx->out);
        return GC_EXIT_OK;
    }
    if (a.n_pos != 1 || !*a.pos[0])
        return gc_usage(ctx, "expected one DEST directory");
    const char *dest = a.pos[0];
    gs_store_t *st = gc_store_open(ctx, 0, &rc);
    if (!st)
        return rc;
    int err = gs_store_backup(st, dest);
    gs_store_destroy(&st);
    if (err)
        return gc_store_fail(ctx, "backup", err);
    gs_store_info_t info;
    err = s_readback(dest, &info);
    if (err)
        return gc_store_fail(ctx, "the backup was written but does not open", err);
    if (ctx->json) {
        gs_json_t j;
        gs_json_init_file(&j, ctx->out);
        gs_json_obj(&j);
        gs_json_key(&j, "dest");
        gs_json_str(&j, dest);
        s_json_counts(&j, &info);
        gs_json_key(&j, "file_size");
        gs_json_u64(&j, info.file_size);
        gs_json_end(&j);
    } else {
        char b1[32], b2[32], b3[32], b4[32];
        fprintf(ctx->out, "backup written to %s: head seq %s, %s records, %s events, %s bytes\n",
                dest, gc_num(info.head_seq, b1, sizeof b1), gc_num(info.records, b2, sizeof b2),
                gc_num(info.events, b3, sizeof b3), gc_num(info.file_size, b4, sizeof b4));
    }
    return gc_finish(ctx, GC_EXIT_OK);
}

/* ---- restore ----------------------------------------------------------------------- */

static const char s_restore_help[] =
    "Usage: gridctl restore [--force] BACKUP_DIR STORE_DIR\n"
    "\n"
    "Put the backup in BACKUP_DIR (made by gridctl backup) in place as the store in\n"
    "STORE_DIR. The broker must be stopped: while gridsyncd holds STORE_DIR the\n"
    "restore is refused (naming its pid), and no broker can start during it. The\n"
    "backup must open as a store. A compacted copy of it (data.mdb and secret.key,\n"
    "0600, in a 0700 directory) is built beside STORE_DIR, given a new lineage\n"
    "epoch, synced, and then renamed to STORE_DIR in one step. BACKUP_DIR is not\n"
    "changed.\n"
    "\n"
    "  --force  STORE_DIR holds a store: swap the restored one in atomically and\n"
    "           keep the old one as STORE_DIR.replaced-YYYYMMDDTHHMMSSZ (UTC)\n"
    "\n"
    "Without --force a STORE_DIR that holds anything is refused. Afterwards: start\n"
    "gridsyncd; every district system (gridfeed) that followed the old store must\n"
    "start over from a snapshot, and devices resend what they did not get acked\n"
    "(records acked after the backup was taken are not in it).\n"
    "\n"
    "--json: {store, backup, aside, head_seq, records, events}.\n";

int
gc_cmd_restore(gc_ctx_t *ctx, int argc, char **argv)
{
    static const gc_optspec_t spec[] = { { "force", 0 }, { NULL, 0 } };
    gc_args_t a;
    int rc = gc_args_parse(ctx, argc, argv, spec, &a);
    if (rc)
        return rc;
    if (a.help) {
        fputs(s_restore_help, ctx->out);
        return GC_EXIT_OK;
    }
    if ((rc = gc_admin_unserved(ctx)))
        return rc;
    if (a.n_pos != 2 || !*a.pos[0] || !*a.pos[1])
        return gc_usage(ctx, "expected BACKUP_DIR and STORE_DIR");
    const char *backup = a.pos[0], *store = a.pos[1];
    char aside[4200];
    int err = gs_store_restore(backup, store, gc_args_has(&a, "force"), aside, sizeof aside);
    if (err == GS_EBUSY)
        return gc_store_fail(ctx, "refused: stop the broker first", err);
    if (err)
        return gc_store_fail(ctx, "restore", err);
    gs_store_info_t info;
    err = s_readback(store, &info);
    if (err)
        return gc_store_fail(ctx, "the store was restored but does not open", err);
    if (ctx->json) {
        gs_json_t j;
        gs_json_init_file(&j, ctx->out);
        gs_json_obj(&j);
        gs_json_key(&j, "store");
        gs_json_str(&j, store);
        gs_json_key(&j, "backup");
        gs_json_str(&j, backup);
        gs_json_key(&j, "aside");
        gs_json_str(&j, aside);
        s_json_counts(&j, &info);
        gs_json_end(&j);
    } else {
        char b1[32], b2[32], b3[32];
        fprintf(ctx->out, "restored %s into %s: head seq %s, %s records, %s events\n", backup,
                store, gc_num(info.head_seq, b1, sizeof b1), gc_num(info.records, b2, sizeof b2),
                gc_num(info.events, b3, sizeof b3));
        if (aside[0])
            fprintf(ctx->out, "the store it replaced is in %s\n", aside);
        fprintf(ctx->out,
                "the restored store has a new lineage epoch. Next: start gridsyncd; every\n"
                "district system (gridfeed) that followed the old store must start over from\n"
                "a snapshot (its checkpoint belongs to the old lineage). Records acked after\n"
                "the backup was taken are not in it and must be collected again.\n");
    }
    return gc_finish(ctx, GC_EXIT_OK);
}

/* ---- verify -------------------------------------------------------------------------- */

static const char s_verify_help[] =
    "Usage: gridctl verify\n"
    "\n"
    "Check every index of the store against the records (ids, aliases, natural\n"
    "keys, person index, per-cell counts and logs, the change log's seqs, the\n"
    "digests of every prefix). Works\n"
    "read-only beside a running broker, on a backup (--store DEST) and on a store\n"
    "whose broker is down. Prints each problem; exit status 1 if there is any.\n"
    "The check runs in a child process: a damaged data.mdb (truncated, garbage\n"
    "pages) is reported as \"problem: the store is damaged: ...\", never a crash.\n"
    "\n"
    "--json: {ok, problems:[text], head_seq, records, events}; damaged: true when\n"
    "the check died on the file.\n";

typedef struct s_verify {
    gc_ctx_t *ctx;              /* options, output */
    gs_json_t *json;            /* --json: problems go into the array */
} s_verify_t;

static void
s_on_problem(void *arg, const char *problem)
{
    s_verify_t *v = arg;
    if (v->json)
        gs_json_str(v->json, problem);
    else
        fprintf(v->ctx->out, "problem: %s\n", problem);
}

/* The check itself: open, walk, print. Runs in verify's child process. */
static int
s_verify_run(gc_ctx_t *ctx)
{
    int rc;
    gs_store_t *st = gc_store_open(ctx, 0, &rc);
    if (!st)
        return rc;
    gs_json_t j;
    gs_json_init_file(&j, ctx->out);
    s_verify_t v = { ctx, ctx->json ? &j : NULL };
    if (ctx->json) {
        gs_json_obj(&j);
        gs_json_key(&j, "problems");
        gs_json_arr(&j);
    }
    uint64_t problems = 0;
    int err = gs_store_verify(st, s_on_problem, &v, &problems);
    if ((err == GS_ECORRUPT || err == GS_EINTERNAL || err == GS_EINVAL) && !problems) {
        /* LMDB itself found a damaged page and the walk stopped there
         * (MDB_CORRUPTED, MDB_PAGE_NOTFOUND, or a transaction it then
         * refuses to go on with: MDB_BAD_TXN); a read-only walk has no
         * other way to meet these */
        err = GS_ECORRUPT;
        char problem[400];
        snprintf(problem, sizeof problem, "the store is damaged: %s", gs_store_errdetail());
        s_on_problem(&v, problem);
        problems = 1;
    }
    gs_store_info_t info;
    memset(&info, 0, sizeof info);
    int ierr = gs_store_info(st, &info);
    gs_store_destroy(&st);
    if (ctx->json) {
        gs_json_end(&j);
        gs_json_key(&j, "ok");
        gs_json_bool(&j, err == 0 && problems == 0);
        gs_json_key(&j, "head_seq");
        gs_json_u64(&j, info.head_seq);
        gs_json_key(&j, "records");
        gs_json_u64(&j, info.records);
        gs_json_key(&j, "events");
        gs_json_u64(&j, info.events);
        gs_json_end(&j);
    }
    if (err && err != GS_ECORRUPT)
        return gc_finish(ctx, gc_store_fail(ctx, "verify could not finish", err));
    if (problems || err) {
        if (!ctx->json)
            fprintf(ctx->out, "%llu problem(s) found in %s\n", (unsigned long long) problems,
                    ctx->store_dir);
        return gc_finish(ctx, GC_EXIT_FAIL);
    }
    if (!ctx->json) {
        char b1[32], b2[32], b3[32];
        fprintf(ctx->out, "ok: %s records, %s events, head seq %s; every index agrees\n",
                ierr ? "?" : gc_num(info.records, b1, sizeof b1),
                ierr ? "?" : gc_num(info.events, b2, sizeof b2),
                ierr ? "?" : gc_num(info.head_seq, b3, sizeof b3));
    }
    return gc_finish(ctx, GC_EXIT_OK);
}

/* Report a check that did not finish: the walk died (SIGBUS on a page the
 * file lacks, SIGSEGV on a garbage page, an LMDB assertion's abort). */
static int
s_verify_crashed(gc_ctx_t *ctx, int status)
{
    char how[96];
    if (WIFSIGNALED(status))
        snprintf(how, sizeof how, "the check died with signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(how, sizeof how, "the check stopped without finishing (exit status %d)",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    char problem[512];
    snprintf(problem, sizeof problem,
             "the store is damaged: %s while reading data.mdb; pages are garbage or missing "
             "(LMDB keeps no checksums: restore from a backup)", how);
    if (ctx->json) {
        gs_json_t j;
        gs_json_init_file(&j, ctx->out);
        gs_json_obj(&j);
        gs_json_key(&j, "problems");
        gs_json_arr(&j);
        gs_json_str(&j, problem);
        gs_json_end(&j);
        gs_json_key(&j, "ok");
        gs_json_bool(&j, 0);
        gs_json_key(&j, "damaged");
        gs_json_bool(&j, 1);
        gs_json_end(&j);
    } else {
        fprintf(ctx->out, "problem: %s\n", problem);
        fprintf(ctx->out, "1 problem(s) found in %s\n", ctx->store_dir);
    }
    return gc_finish(ctx, GC_EXIT_FAIL);
}

int
gc_cmd_verify(gc_ctx_t *ctx, int argc, char **argv)
{
    gc_args_t a;
    int rc = gc_args_parse(ctx, argc, argv, NULL, &a);
    if (rc)
        return rc;
    if (a.help) {
        fputs(s_verify_help, ctx->out);
        return GC_EXIT_OK;
    }
    if (a.n_pos)
        return gc_usage(ctx, "verify takes no arguments (use --store DIR for another store)");
    /* A damaged data.mdb can crash whoever reads it: LMDB trusts its pages
     * (SIGBUS past the end of a short file, SIGSEGV or an assertion on a
     * garbage page). The check runs in a child process; its output is held
     * here and shown only when it finished, and a child that died is
     * reported as damage. The child says it finished by writing its exit
     * status on a second pipe (a sanitizer turns a crash into an exit). */
    fflush(ctx->out);
    fflush(stderr);
    int out[2] = { -1, -1 }, done[2] = { -1, -1 };
    if (pipe2(out, O_CLOEXEC) || pipe2(done, O_CLOEXEC))
        return gc_fail(ctx, "cannot make a pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(out[0]), close(out[1]), close(done[0]), close(done[1]);
        return gc_fail(ctx, "cannot start the check: %s", strerror(e));
    }
    if (pid == 0) {
        close(out[0]);
        close(done[0]);
        FILE *f = fdopen(out[1], "w");
        if (!f)
            _exit(GC_EXIT_FAIL);
        ctx->out = f;
        uint8_t code = (uint8_t) s_verify_run(ctx);
        fflush(stderr);
        if (fclose(f) != 0)
            code = GC_EXIT_FAIL;
        if (write(done[1], &code, 1) != 1)
            _exit(GC_EXIT_FAIL);
        _exit(code);
    }
    close(out[1]);
    close(done[1]);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int oom = 0;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                oom = 1;    /* keep draining, so the child is not blocked */
                len = 0;
            } else {
                buf = nb;
                cap = ncap;
            }
        }
        char sink[4096];
        ssize_t n = oom ? read(out[0], sink, sizeof sink) : read(out[0], buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (!oom)
            len += (size_t) n;
    }
    close(out[0]);
    uint8_t code = 0;
    ssize_t got;
    while ((got = read(done[0], &code, 1)) < 0 && errno == EINTR)
        ;
    close(done[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (got != 1) {
        free(buf);
        return s_verify_crashed(ctx, status);
    }
    if (oom) {
        free(buf);
        return gc_fail(ctx, "out of memory holding the check's output");
    }
    if (len)
        fwrite(buf, 1, len, ctx->out);
    free(buf);
    return gc_finish(ctx, code);
}

/* ---- health ------------------------------------------------------------------------------ */

#define S_ORIGINS_SHOWN 64          /* a replica's origins listed by health */

/* The origins of a city replica's store (its origins table), for health. */
typedef struct s_origins {
    gs_origin_t o[S_ORIGINS_SHOWN]; /* the entries, in area order */
    size_t n;                       /* how many */
} s_origins_t;

static int
s_origin_take(void *arg, const gs_origin_t *o)
{
    s_origins_t *l = arg;
    if (l->n < S_ORIGINS_SHOWN)
        l->o[l->n++] = *o;
    return 0;
}

static const char *
s_origin_state(int state)
{
    return state == GS_ORIGIN_RUNNING ? "running" : state == GS_ORIGIN_STOPPED ? "stopped"
                                                                               : "new";
}

static const char s_health_help[] =
    "Usage: gridctl health [--admin ENDPOINT] [--timeout-ms MS]\n"
    "\n"
    "The store's figures (head seq, records, events, map use, reader slots), read\n"
    "directly, and whether the broker answers on its admin endpoint\n"
    "(default ipc://STORE/admin.sock): then its version, uptime, head seq and\n"
    "feed subscriptions. Both show the store's lineage epoch: they differ when the\n"
    "broker serves another store (or a restored one). For a city replica's store,\n"
    "each origin (district area): running or stopped (and why), its epoch, the\n"
    "last district seq applied. Exit status 0 when the broker answers, 1 when it\n"
    "is down.\n"
    "\n"
    "  --admin EP       the broker's admin-endpoint (ipc://PATH), when configured\n"
    "                   elsewhere or forwarded from another machine; when there\n"
    "                   is no store at --store, only the broker's side is shown\n"
    "                   (its head seq, records, map use and epoch)\n"
    "  --timeout-ms MS  how long to wait for the answer (default 2000)\n"
    "\n"
    "--json: {store:{head_seq, records, events, map_size, map_used, file_size,\n"
    "readers_used, readers_max, epoch, origins:[{area, followed, state, epoch,\n"
    "last_seq, applied, reason, stop_seq, message}]} or null, broker:{up, reason, version,\n"
    "uptime_ms, head_seq, records, map_size, map_used, feed_subscriptions,\n"
    "store_epoch}}; epochs as 16 hex digits.\n";

int
gc_cmd_health(gc_ctx_t *ctx, int argc, char **argv)
{
    static const gc_optspec_t spec[] = { { "timeout-ms", 1 }, { NULL, 0 } };
    gc_args_t a;
    int rc = gc_args_parse(ctx, argc, argv, spec, &a);
    if (rc)
        return rc;
    if (a.help) {
        fputs(s_health_help, ctx->out);
        return GC_EXIT_OK;
    }
    uint64_t timeout;
    if (a.n_pos)
        return gc_usage(ctx, "health takes no arguments");
    if ((rc = gc_args_u64(ctx, &a, "timeout-ms", 2000, 1, 600000, &timeout)))
        return rc;
    char ep[4200], why[512] = "";
    if (ctx->admin)
        snprintf(ep, sizeof ep, "%s", ctx->admin);
    else
        snprintf(ep, sizeof ep, "ipc://%s/admin.sock", ctx->store_dir);
    gs_admin_opts_t ao;
    gs_admin_opts_init(&ao);
    ao.timeout_ms = (int) timeout;
    gs_client_error_t cerr;
    gs_admin_t *adm = gs_admin_new(ep, &ao, &rc, &cerr);
    if (!adm)
        return rc == GS_CLIENT_EINVAL ? gc_usage(ctx, "--admin: %s", cerr.message)
                                      : gc_fail(ctx, "%s", cerr.message);

    /* the store's own figures; with --admin and no store here (a broker
     * reached from another machine), the broker's alone */
    char data[4200];
    struct stat sb;
    snprintf(data, sizeof data, "%s/data.mdb", ctx->store_dir);
    int local = !ctx->admin || stat(data, &sb) == 0;
    gs_store_info_t info;
    memset(&info, 0, sizeof info);
    uint64_t epoch = 0;
    static s_origins_t origins;
    origins.n = 0;
    if (local) {
        gs_store_t *st = gc_store_open(ctx, 0, &rc);
        if (!st) {
            gs_admin_destroy(&adm);
            return rc;
        }
        int err = gs_store_info(st, &info);
        gs_store_epoch(st, &epoch); /* 0: a store from before epochs, opened read-only */
        if (!err)
            err = gs_store_origins(st, s_origin_take, &origins);
        gs_store_destroy(&st);
        if (err) {
            gs_admin_destroy(&adm);
            return gc_store_fail(ctx, "reading the store's figures", err);
        }
    }

    Gridsync__V1__HealthReply *h = NULL;
    rc = gs_admin_health(adm, &h, &cerr);
    gs_admin_destroy(&adm);
    if (rc == GS_CLIENT_ESERVER)
        snprintf(why, sizeof why, "the broker answered with an error: %s", cerr.message);
    else if (rc)
        gs_client_errtext(rc, &cerr, why, sizeof why);

    if (ctx->json) {
        gs_json_t j;
        char hex[20];
        gs_json_init_file(&j, ctx->out);
        gs_json_obj(&j);
        gs_json_key(&j, "store");
        if (local) {
            gs_json_obj(&j);
            gs_json_key(&j, "dir");
            gs_json_str(&j, ctx->store_dir);
            gs_json_key(&j, "head_seq");
            gs_json_u64(&j, info.head_seq);
            gs_json_key(&j, "records");
            gs_json_u64(&j, info.records);
            gs_json_key(&j, "events");
            gs_json_u64(&j, info.events);
            gs_json_key(&j, "map_size");
            gs_json_u64(&j, info.map_size);
            gs_json_key(&j, "map_used");
            gs_json_u64(&j, info.map_used);
            gs_json_key(&j, "file_size");
            gs_json_u64(&j, info.file_size);
            gs_json_key(&j, "readers_used");
            gs_json_u64(&j, info.readers_used);
            gs_json_key(&j, "readers_max");
            gs_json_u64(&j, info.readers_max);
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long) epoch);
            gs_json_key(&j, "epoch");
            gs_json_str(&j, hex); /* text: a JSON number cannot hold 64 bits */
            gs_json_key(&j, "origins");
            gs_json_arr(&j);
            for (size_t i = 0; i < origins.n; i++) {
                const gs_origin_t *o = &origins.o[i];
                gs_json_obj(&j);
                gs_json_key(&j, "area");
                gs_json_str(&j, o->area);
                gs_json_key(&j, "followed");
                gs_json_str(&j, o->followed);
                gs_json_key(&j, "state");
                gs_json_str(&j, s_origin_state(o->state));
                snprintf(hex, sizeof hex, "%016llx", (unsigned long long) o->epoch);
                gs_json_key(&j, "epoch");
                gs_json_str(&j, hex);
                gs_json_key(&j, "last_seq");
                gs_json_u64(&j, o->last_seq);
                gs_json_key(&j, "applied");
                gs_json_u64(&j, o->applied);
                gs_json_key(&j, "reason");
                gs_json_str(&j, o->state == GS_ORIGIN_STOPPED ? gs_repl_reason_name(o->reason)
                                                              : "");
                gs_json_key(&j, "stop_seq");
                gs_json_u64(&j, o->stop_seq);
                gs_json_key(&j, "message");
                gs_json_str(&j, o->message);
                gs_json_end(&j);
            }
            gs_json_end(&j);
            gs_json_end(&j);
        } else {
            gs_json_null(&j); /* not on this machine: only the broker was asked */
        }
        gs_json_key(&j, "broker");
        gs_json_obj(&j);
        gs_json_key(&j, "up");
        gs_json_bool(&j, h != NULL);
        if (h) {
            gs_json_key(&j, "version");
            gs_json_str(&j, h->version);
            gs_json_key(&j, "uptime_ms");
            gs_json_i64(&j, h->uptime_ms);
            gs_json_key(&j, "head_seq");
            gs_json_u64(&j, h->head_seq);
            gs_json_key(&j, "records");
            gs_json_u64(&j, h->records);
            gs_json_key(&j, "map_size");
            gs_json_u64(&j, h->map_size);
            gs_json_key(&j, "map_used");
            gs_json_u64(&j, h->map_used);
            gs_json_key(&j, "feed_subscriptions");
            gs_json_u64(&j, h->feed_subscriptions);
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long) h->store_epoch);
            gs_json_key(&j, "store_epoch");
            gs_json_str(&j, hex);
        } else {
            gs_json_key(&j, "reason");
            gs_json_str(&j, why);
        }
        gs_json_end(&j);
        gs_json_end(&j);
    } else {
        char b[6][32];
        FILE *o = ctx->out;
        if (local) {
            fprintf(o, "store     %s\n", ctx->store_dir);
            fprintf(o, "  head seq %s, %s records, %s events\n", gc_num(info.head_seq, b[0], 32),
                    gc_num(info.records, b[1], 32), gc_num(info.events, b[2], 32));
            fprintf(o, "  map %s of %s bytes used, file %s bytes, readers %u of %u\n",
                    gc_num(info.map_used, b[3], 32), gc_num(info.map_size, b[4], 32),
                    gc_num(info.file_size, b[5], 32), info.readers_used, info.readers_max);
            fprintf(o, "  epoch %016llx\n", (unsigned long long) epoch);
            for (size_t i = 0; i < origins.n; i++) {
                const gs_origin_t *og = &origins.o[i];
                fprintf(o, "  origin %s %s, epoch %016llx, last seq %s, %s applied", og->area,
                        s_origin_state(og->state), (unsigned long long) og->epoch,
                        gc_num(og->last_seq, b[0], 32), gc_num(og->applied, b[1], 32));
                if (og->state == GS_ORIGIN_STOPPED)
                    fprintf(o, "; stopped (%s) at seq %llu: %s", gs_repl_reason_name(og->reason),
                            (unsigned long long) og->stop_seq, og->message);
                fputc('\n', o);
            }
        } else {
            fprintf(o, "store     not on this machine (asked through %s)\n", ep);
        }
        if (h) {
            int64_t up = h->uptime_ms / 1000;
            fprintf(o, "broker    up (version %s), uptime %lldd %02lld:%02lld:%02lld\n",
                    h->version ? h->version : "?", (long long) (up / 86400),
                    (long long) (up / 3600 % 24), (long long) (up / 60 % 60),
                    (long long) (up % 60));
            fprintf(o, "  head seq %s, %s records, %u feed subscriptions\n",
                    gc_num(h->head_seq, b[0], 32), gc_num(h->records, b[1], 32),
                    h->feed_subscriptions);
            if (!local)
                fprintf(o, "  map %s of %s bytes used\n", gc_num(h->map_used, b[3], 32),
                        gc_num(h->map_size, b[4], 32));
            fprintf(o, "  store epoch %016llx%s\n", (unsigned long long) h->store_epoch,
                    local && h->store_epoch != epoch
                        ? " (not the store above: it serves another one)" : "");
        } else {
            fprintf(o, "broker    down: %s\n", why);
        }
    }
    if (h)
        gridsync__v1__health_reply__free_unpacked(h, NULL);
    return gc_finish(ctx, h ? GC_EXIT_OK : GC_EXIT_FAIL);
}

/*
 * gc_cli: gridctl's command-line plumbing. Option parsing shared by every
 * subcommand, error messages and exit statuses, opening the store without
 * ever creating one, and the audit log that --reveal writes before any
 * unmasked data is shown.
 */
#include "gc.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gs_validate.h"

/* ---- Messages -------------------------------------------------------------- */

int
gc_usage(gc_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "gridctl%s%s: ", ctx->cmd ? " " : "", ctx->cmd ? ctx->cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'gridctl%s%s --help'.\n", ctx->cmd ? " " : "",
            ctx->cmd ? ctx->cmd : "");
    return GC_EXIT_USAGE;
}

int
gc_fail(gc_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "gridctl%s%s: ", ctx->cmd ? " " : "", ctx->cmd ? ctx->cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return GC_EXIT_FAIL;
}

int
gc_store_fail(gc_ctx_t *ctx, const char *what, int err)
{
    const char *detail = gs_store_errdetail();
    if (detail && *detail)
        return gc_fail(ctx, "%s: %s (%s)", what, gs_store_strerror(err), detail);
    return gc_fail(ctx, "%s: %s", what, gs_store_strerror(err));
}

int
gc_prefix_arg(gc_ctx_t *ctx, const char *prefix)
{
    size_t n = strlen(prefix);
    if (n > GS_GRID_LEN)
        return gc_usage(ctx, "prefix '%.20s' is longer than a grid code (15 digits)", prefix);
    for (size_t i = 0; i < n; i++)
        if (prefix[i] < '0' || prefix[i] > '9')
            return gc_usage(ctx, "prefix '%.20s' must be digits (a grid code or its start)",
                            prefix);
    return GC_EXIT_OK;
}

int
gc_finish(gc_ctx_t *ctx, int rc)
{
    if (fflush(ctx->out) != 0 || ferror(ctx->out))
        return gc_fail(ctx, "writing the output failed: %s", strerror(errno));
    return rc;
}

/* ---- Options ------------------------------------------------------------------ */

static const gc_optspec_t s_global[] = {
    { "store", 1 },
    { "admin", 1 },
    { "json", 0 },
    { "reveal", 0 },
    { "help", 0 },
    { NULL, 0 }
};

static const gc_optspec_t *
s_spec_find(const gc_optspec_t *spec, const char *name, size_t len)
{
    for (; spec && spec->name; spec++)
        if (strlen(spec->name) == len && !strncmp(spec->name, name, len))
            return spec;
    return NULL;
}

int
gc_args_parse(gc_ctx_t *ctx, int argc, char **argv, const gc_optspec_t *spec, gc_args_t *a)
{
    memset(a, 0, sizeof *a);
    int only_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *w = argv[i];
        if (only_pos || w[0] != '-' || !w[1]) {
            if (a->n_pos == GC_MAX_ARGS)
                return gc_usage(ctx, "too many arguments");
            a->pos[a->n_pos++] = w;
            continue;
        }
        if (!strcmp(w, "--")) {
            only_pos = 1;
            continue;
        }
        if (!strcmp(w, "-h")) {
            a->help = 1;
            continue;
        }
        if (w[1] != '-')
            return gc_usage(ctx, "unknown option '%s' (options are spelt --name)", w);
        const char *name = w + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t) (eq - name) : strlen(name);
        const gc_optspec_t *o = s_spec_find(s_global, name, len);
        int global = o != NULL;
        if (!o)
            o = s_spec_find(spec, name, len);
        if (!o)
            return gc_usage(ctx, "unknown option '--%.*s'", (int) len, name);
        const char *value = NULL;
        if (o->has_arg) {
            if (eq)
                value = eq + 1;
            else if (i + 1 < argc)
                value = argv[++i];
            else
                return gc_usage(ctx, "option '--%s' needs a value", o->name);
        } else if (eq) {
            return gc_usage(ctx, "option '--%s' takes no value", o->name);
        }
        if (global) {
            if (!strcmp(o->name, "store")) {
                if (!*value)
                    return gc_usage(ctx, "--store needs a directory");
                ctx->store_dir = value;
            } else if (!strcmp(o->name, "admin")) {
                if (!*value)
                    return gc_usage(ctx, "--admin needs an endpoint (ipc://PATH)");
                ctx->admin = value;
            } else if (!strcmp(o->name, "json")) {
                ctx->json = 1;
            } else if (!strcmp(o->name, "reveal")) {
                ctx->reveal = 1;
            } else {
                a->help = 1;
            }
            continue;
        }
        if (a->n_opt == GC_MAX_ARGS)
            return gc_usage(ctx, "too many options");
        a->opt_name[a->n_opt] = o->name;
        a->opt_value[a->n_opt] = value;
        a->n_opt++;
    }
    return GC_EXIT_OK;
}

const char *
gc_args_get(const gc_args_t *a, const char *name)
{
    const char *v = NULL;
    for (size_t i = 0; i < a->n_opt; i++)
        if (!strcmp(a->opt_name[i], name))
            v = a->opt_value[i];
    return v;
}

int
gc_args_has(const gc_args_t *a, const char *name)
{
    for (size_t i = 0; i < a->n_opt; i++)
        if (!strcmp(a->opt_name[i], name))
            return 1;
    return 0;
}

size_t
gc_args_all(const gc_args_t *a, const char *name, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < a->n_opt; i++)
        if (!strcmp(a->opt_name[i], name)) {
            if (n < max)
                out[n] = a->opt_value[i];
            n++;
        }
    return n;
}

int
gc_args_u64(gc_ctx_t *ctx, const gc_args_t *a, const char *name, uint64_t def, uint64_t min,
            uint64_t max, uint64_t *out)
{
    const char *v = gc_args_get(a, name);
    *out = def;
    if (!v)
        return GC_EXIT_OK;
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (!*v || *end || errno || v[0] == '-' || x < min || x > max)
        return gc_usage(ctx, "--%s must be a number from %llu to %llu, not '%.32s'", name,
                        (unsigned long long) min, (unsigned long long) max, v);
    *out = x;
    return GC_EXIT_OK;
}

/* ---- Audit log for --reveal ------------------------------------------------------ */

/* Who is asking: the login name when there is one (su/sudo keep it), and
 * the effective user. */
static void
s_user(char *buf, size_t size)
{
    char login[64] = "";
    if (getlogin_r(login, sizeof login) != 0)
        login[0] = 0;
    struct passwd pw, *res = NULL;
    char pwbuf[1024];
    const char *euser = "?";
    if (getpwuid_r(geteuid(), &pw, pwbuf, sizeof pwbuf, &res) == 0 && res)
        euser = res->pw_name;
    snprintf(buf, size, "user=%s euser=%s uid=%u", login[0] ? login : euser, euser,
             (unsigned) geteuid());
}

/* An argument that looks like a resident ID number is masked even here:
 * no subcommand takes one, so it can only be a mistake. */
static int
s_looks_like_idnum(const char *w)
{
    if (strlen(w) != 18)
        return 0;
    for (int i = 0; i < 17; i++)
        if (w[i] < '0' || w[i] > '9')
            return 0;
    return (w[17] >= '0' && w[17] <= '9') || w[17] == 'X' || w[17] == 'x';
}

/* One argument for the log: quoted with \" and \\ escaped when it has
 * spaces, quotes or control characters. */
static void
s_log_arg(FILE *f, const char *w)
{
    char masked[24];
    if (s_looks_like_idnum(w))
        w = gc_mask_id(w, 0, masked, sizeof masked);
    int plain = *w != 0;
    for (const char *p = w; *p; p++)
        if ((unsigned char) *p <= ' ' || *p == '"' || *p == '\\')
            plain = 0;
    if (plain) {
        fputs(w, f);
        return;
    }
    fputc('"', f);
    for (const char *p = w; *p; p++) {
        unsigned char c = (unsigned char) *p;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < ' ')
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

int
gc_audit_reveal(gc_ctx_t *ctx)
{
    if (ctx->audited)
        return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/audit.log", ctx->store_dir);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        gc_fail(ctx, "--reveal is logged, but %s cannot be written: %s; nothing was shown",
                path, strerror(errno));
        return -1;
    }
    /* an audit log that others can read would itself leak who looked */
    fchmod(fd, 0600);
    FILE *f = fdopen(fd, "a");
    if (!f) {
        close(fd);
        gc_fail(ctx, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    char when[64], who[256];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S%z", &tm);
    s_user(who, sizeof who);
    fprintf(f, "%s %s pid=%ld reveal cmd=\"%s\" args=", when, who, (long) getpid(),
            ctx->cmd ? ctx->cmd : "");
    /* the whole command line after the program name, in one field */
    fputc('[', f);
    for (int i = 1; i < ctx->argc; i++) {
        if (i > 1)
            fputc(' ', f);
        s_log_arg(f, ctx->argv[i]);
    }
    fputs("]\n", f);
    int bad = fflush(f) != 0 || fsync(fd) != 0;
    bad |= fclose(f) != 0;
    if (bad) {
        gc_fail(ctx, "cannot write %s: %s; nothing was shown", path, strerror(errno));
        return -1;
    }
    fprintf(stderr,
            "gridctl: --reveal: ID numbers and phones are shown unmasked; this was logged "
            "in %s\n", path);
    ctx->audited = 1;
    return 0;
}

/* ---- Store ------------------------------------------------------------------------- */

int
gc_admin_unserved(gc_ctx_t *ctx)
{
    if (!ctx->admin)
        return GC_EXIT_OK;
    return gc_usage(ctx, "%s works on the store directly, which the admin endpoint does "
                         "not serve (--admin works with stats, get, devices list|show, "
                         "grids list, digest and health)", ctx->cmd ? ctx->cmd : "this command");
}

gs_store_t *
gc_store_open(gc_ctx_t *ctx, int writable, int *exit_code)
{
    *exit_code = GC_EXIT_FAIL;
    /* health reads the store's own figures beside the broker's; everything
     * else that opens the store is what the admin endpoint cannot serve */
    if (!ctx->cmd || strcmp(ctx->cmd, "health")) {
        if ((*exit_code = gc_admin_unserved(ctx)) != GC_EXIT_OK)
            return NULL;
        *exit_code = GC_EXIT_FAIL;
    }
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.read_only = 1;
    int err = 0;
    /* read-only first, even for writes: a read-write open would create a
     * new empty store at a mistyped path */
    gs_store_t *st = gs_store_new(ctx->store_dir, &o, &err);
    if (!st) {
        char data[4200];
        struct stat sb;
        snprintf(data, sizeof data, "%s/data.mdb", ctx->store_dir);
        if (err == GS_ENOTFOUND && stat(data, &sb) != 0)
            gc_fail(ctx, "no store at %s: start gridsyncd or pass --store", ctx->store_dir);
        else
            gc_store_fail(ctx, "cannot open the store", err);
        return NULL;
    }
    if (writable) {
        gs_store_destroy(&st);
        o.read_only = 0;
        st = gs_store_new(ctx->store_dir, &o, &err);
        if (!st) {
            gc_store_fail(ctx, "cannot open the store for writing", err);
            return NULL;
        }
    }
    if (ctx->reveal && gc_audit_reveal(ctx)) {
        gs_store_destroy(&st);
        return NULL;
    }
    *exit_code = GC_EXIT_OK;
    return st;
}

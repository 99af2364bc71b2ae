/*
 * gc_ping: `gridctl ping`, asks a running broker who it takes a key for.
 *
 * It connects to the upload endpoint with an enrolment bundle (or in
 * plaintext, for a broker in --insecure-dev mode), sends the protocol's
 * Ping request (docs/protocol.md) through gs_client_ping, and prints
 * whether the handshake passed, the registry entry the broker found for
 * the key, what it may touch, and the round-trip time. The exit status
 * says which of these held (docs/tools.md). It does not open the store.
 */
#include "gc.h"
#include "gs_client.h"

#include <stdlib.h>
#include <string.h>

static const char s_help[] =
    "Usage: gridctl ping [--keys FILE] [--endpoint EP] [--count N] [--timeout-ms MS]\n"
    "\n"
    "Connect to a running broker, complete the handshake and ask who it takes\n"
    "the key for: its registry id, role and status, what it may touch, the\n"
    "broker's version and store epoch, and the round-trip time of each ping\n"
    "(min/median/max when --count > 1; the first one includes connecting).\n"
    "\n"
    "  --keys FILE      the enrolment bundle (gridctl devices enrol --bundle): CURVE\n"
    "                   keys, and the endpoint unless --endpoint is given; without\n"
    "                   it the connection is plaintext (brokers in --insecure-dev)\n"
    "  --endpoint EP    the broker's upload endpoint (default: the bundle's\n"
    "                   upload_endpoint)\n"
    "  --count N        pings to send, one after another (default 1)\n"
    "  --timeout-ms MS  wait for each reply (default 3000)\n"
    "  --json           one JSON document\n"
    "\n"
    "Exit status: 0 the key is enrolled, active and may touch some grids; 1 the\n"
    "broker could not be reached or did not answer in time; 2 bad arguments or\n"
    "an unreadable bundle; 3 the handshake was refused (key not enrolled or\n"
    "revoked, or the broker runs in the other security mode) or the broker\n"
    "refused the key; 4 the broker answered but the key may touch nothing (no\n"
    "grid prefixes assigned).\n";

static int
s_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

/* The exit status a failed ping maps to (see s_help). */
static int
s_fail_status(int rc, const gs_client_error_t *err)
{
    if (rc == GS_CLIENT_EAUTH)
        return GC_EXIT_REFUSED;
    if (rc == GS_CLIENT_ESERVER && (err->reason == GRIDSYNC__V1__REASON__REASON_UNAUTHORISED ||
                                    err->reason == GRIDSYNC__V1__REASON__REASON_OUT_OF_SCOPE))
        return GC_EXIT_REFUSED;
    return GC_EXIT_FAIL;
}

static void
s_print_text(gc_ctx_t *ctx, const Gridsync__V1__PingReply *p)
{
    FILE *f = ctx->out;
    char rb[32], sb[32];
    if (!p->registered) {
        fprintf(f, "key        not enrolled: the broker runs in development mode "
                   "(--insecure-dev) and lets unregistered senders do anything\n");
    } else {
        fprintf(f, "key        %s (%s, %s)\n", p->device_id,
                gc_enum_name(&gridsync__v1__principal_role__descriptor, p->role, rb, sizeof rb),
                gc_enum_name(&gridsync__v1__device_status__descriptor, p->status, sb,
                             sizeof sb));
    }
    if (p->scope_all) {
        fprintf(f, "may touch  every grid (%s)\n", p->registered ? "ADMIN" : "development mode");
    } else if (p->n_prefixes == 0) {
        fprintf(f, "may touch  nothing: no prefixes assigned (gridctl devices assign)\n");
    } else {
        fprintf(f, "may touch ");
        for (size_t i = 0; i < p->n_prefixes; i++)
            fprintf(f, " %s", p->prefixes[i]);
        fprintf(f, "\n");
    }
    fprintf(f, "broker     gridsync %s, %s, store epoch %llu, head seq %llu\n", p->version,
            p->secure ? "CURVE" : "plaintext (--insecure-dev)",
            (unsigned long long) p->store_epoch, (unsigned long long) p->head_seq);
}

static void
s_print_json(gc_ctx_t *ctx, const char *ep, const Gridsync__V1__PingReply *p,
             const int64_t *rtt, size_t n, int status, int rc, const char *error)
{
    gs_json_t j;
    gs_json_init_file(&j, ctx->out);
    gs_json_obj(&j);
    gs_json_key(&j, "endpoint");
    gs_json_str(&j, ep);
    gs_json_key(&j, "handshake");
    /* a broker's error reply (ESERVER) came over a completed handshake */
    gs_json_str(&j, rc == GS_CLIENT_EAUTH                 ? "refused"
                    : p || rc == GS_CLIENT_ESERVER ? "ok"
                                                   : "unknown");
    if (p) {
        char rb[32], sb[32];
        gs_json_key(&j, "registered");
        gs_json_bool(&j, p->registered);
        gs_json_key(&j, "device_id");
        gs_json_str(&j, p->device_id);
        gs_json_key(&j, "role");
        gs_json_str(&j, p->registered ? gc_enum_name(&gridsync__v1__principal_role__descriptor,
                                                     p->role, rb, sizeof rb)
                                      : NULL);
        gs_json_key(&j, "status");
        gs_json_str(&j, p->registered ? gc_enum_name(&gridsync__v1__device_status__descriptor,
                                                     p->status, sb, sizeof sb)
                                      : NULL);
        gs_json_key(&j, "scope_all");
        gs_json_bool(&j, p->scope_all);
        gs_json_key(&j, "prefixes");
        gs_json_arr(&j);
        for (size_t i = 0; i < p->n_prefixes; i++)
            gs_json_str(&j, p->prefixes[i]);
        gs_json_end(&j);
        gs_json_key(&j, "version");
        gs_json_str(&j, p->version);
        gs_json_key(&j, "secure");
        gs_json_bool(&j, p->secure);
        gs_json_key(&j, "store_epoch");
        gs_json_u64(&j, p->store_epoch);
        gs_json_key(&j, "head_seq");
        gs_json_u64(&j, p->head_seq);
        gs_json_key(&j, "broker_time");
        gs_json_i64(&j, p->broker_time);
    }
    gs_json_key(&j, "rtt_us");
    gs_json_arr(&j);
    for (size_t i = 0; i < n; i++)
        gs_json_i64(&j, rtt[i]);
    gs_json_end(&j);
    if (error) {
        gs_json_key(&j, "error");
        gs_json_str(&j, error);
    }
    gs_json_key(&j, "exit");
    gs_json_i64(&j, status);
    gs_json_end(&j);
}

int
gc_cmd_ping(gc_ctx_t *ctx, int argc, char **argv)
{
    static const gc_optspec_t spec[] = { { "keys", 1 }, { "endpoint", 1 }, { "count", 1 },
                                         { "timeout-ms", 1 }, { NULL, 0 } };
    gc_args_t a;
    int rc = gc_args_parse(ctx, argc, argv, spec, &a);
    if (rc)
        return rc;
    if (a.help) {
        fputs(s_help, ctx->out);
        return GC_EXIT_OK;
    }
    if ((rc = gc_admin_unserved(ctx)))
        return rc;
    if (a.n_pos)
        return gc_usage(ctx, "takes no positional arguments");
    uint64_t count, timeout;
    if ((rc = gc_args_u64(ctx, &a, "count", 1, 1, 100000, &count)) ||
        (rc = gc_args_u64(ctx, &a, "timeout-ms", 3000, 1, 3600000, &timeout)))
        return rc;
    const char *keys = gc_args_get(&a, "keys");
    const char *ep = gc_args_get(&a, "endpoint");
    gs_client_opts_t o;
    gs_client_opts_init(&o);
    o.timeout_ms = (int) timeout;
    o.retries = 0;
    char epbuf[256];
    gs_client_t *cli = gc_client_open(ctx, keys, ep, &o, epbuf, sizeof epbuf, &rc);
    if (!cli)
        return rc;
    ep = epbuf;
    int64_t *rtt = calloc(count, sizeof *rtt);
    if (!rtt) {
        gs_client_destroy(&cli);
        return gc_fail(ctx, "out of memory");
    }
    if (!ctx->json)
        fprintf(ctx->out, "endpoint   %s\n", ep);
    Gridsync__V1__PingReply *last = NULL;
    size_t n = 0;
    int status = GC_EXIT_OK;
    char ebuf[512];
    const char *error = NULL;
    for (; n < count; n++) {
        gs_client_error_t err = { 0, "" };
        Gridsync__V1__PingReply *p = NULL;
        rc = gs_client_ping(cli, &p, &rtt[n], &err);
        if (rc) {
            status = s_fail_status(rc, &err);
            error = gs_client_errtext(rc, &err, ebuf, sizeof ebuf);
            break;
        }
        if (!last && !ctx->json) {
            fprintf(ctx->out, "handshake ok\n");
            s_print_text(ctx, p);
        }
        if (!ctx->json)
            fprintf(ctx->out, "ping %-5zu  %.3f ms\n", n + 1, (double) rtt[n] / 1000.0);
        if (last)
            gridsync__v1__ping_reply__free_unpacked(last, NULL);
        last = p;
    }
    gs_client_destroy(&cli);
    if (!error && last && !last->scope_all && last->n_prefixes == 0)
        status = GC_EXIT_NO_SCOPE;
    if (ctx->json) {
        s_print_json(ctx, ep, last, rtt, n, status, error ? rc : 0, error);
    } else {
        if (n > 1) {
            int64_t *s = malloc(n * sizeof *s);
            if (s) {
                memcpy(s, rtt, n * sizeof *s);
                qsort(s, n, sizeof *s, s_cmp_i64);
                int64_t med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
                fprintf(ctx->out, "rtt        min %.3f / median %.3f / max %.3f ms over %zu\n",
                        (double) s[0] / 1000.0, (double) med / 1000.0,
                        (double) s[n - 1] / 1000.0, n);
                free(s);
            }
        }
        if (error) {
            fflush(ctx->out);
            fprintf(stderr, "gridctl ping: %s%s\n",
                    status == GC_EXIT_REFUSED && rc == GS_CLIENT_EAUTH ? "handshake refused: "
                    : status == GC_EXIT_REFUSED                        ? "refused: "
                                                                       : "",
                    error);
        }
    }
    if (last)
        gridsync__v1__ping_reply__free_unpacked(last, NULL);
    free(rtt);
    return gc_finish(ctx, status);
}

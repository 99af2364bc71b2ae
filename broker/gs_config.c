/*
 * gs_config: the option table and its parsers. See gs_config.h.
 * Adding an option means adding one row here and one field in the struct;
 * --help, the file parser and the dump all follow.
 */
#include "gs_config.h"
#include "gs_version.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef enum { S_STR, S_INT, S_BOOL } s_type_t;

typedef struct {
    const char *name;       /* option name, as in the file and after -- */
    s_type_t type;          /* value type */
    size_t offset;          /* field in gs_config_t */
    size_t size;            /* field size (strings) */
    const char *def;        /* default, as text */
    int64_t min, max;       /* bounds (integers) */
    const char *help;       /* one line for --help */
} s_option_t;

#define S_STRF(f) S_STR, offsetof(gs_config_t, f), sizeof(((gs_config_t *) 0)->f)
#define S_INTF(f) S_INT, offsetof(gs_config_t, f), sizeof(int64_t)
#define S_BOOLF(f) S_BOOL, offsetof(gs_config_t, f), sizeof(int)

static const s_option_t s_options[] = {
    { "store", S_STRF(store), "var/store", 0, 0,
      "directory of the LMDB store (created if missing)" },
    { "upload-endpoint", S_STRF(upload_endpoint), "tcp://127.0.0.1:7510", 0, 0,
      "ROUTER endpoint for uploads, sync and snapshot requests" },
    { "feed-endpoint", S_STRF(feed_endpoint), "tcp://127.0.0.1:7511", 0, 0,
      "XPUB endpoint of the live change feed (topic = grid code)" },
    { "admin-endpoint", S_STRF(admin_endpoint), "", 0, 0,
      "admin endpoint, ipc:// only; default ipc://STORE/admin.sock (owner-only)" },
    { "metrics-address", S_STRF(metrics_address), "127.0.0.1", 0, 0,
      "address of the Prometheus /metrics HTTP listener; \"off\" disables it" },
    { "metrics-port", S_INTF(metrics_port), "9510", 0, 65535,
      "port of the /metrics listener (0 = any free port, logged at start)" },
    { "batch-max-records", S_INTF(batch_max_records), "8192", 1, 1000000,
      "group commit: most records applied in one transaction" },
    { "batch-linger-us", S_INTF(batch_linger_us), "0", 0, 100000,
      "group commit: how long to wait for more uploads after the first" },
    { "max-pending-records", S_INTF(max_pending_records), "200000", 1000, 100000000,
      "records queued for the writer before new uploads get REASON_BUSY" },
    { "max-message-bytes", S_INTF(max_message_bytes), "4194304", 1024, 268435456,
      "largest message a client may send (ZMQ_MAXMSGSIZE); larger are dropped" },
    { "max-connections", S_INTF(max_connections), "0", 0, 1000000,
      "client connections held at once (request and feed together); 0 = fd limit - 256" },
    { "handshake-timeout-ms", S_INTF(handshake_timeout_ms), "10000", 100, 600000,
      "a client connection that has not finished its handshake by then is dropped" },
    { "max-records", S_INTF(max_records), "1000", 1, 100000,
      "most records in one upload" },
    { "sync-max-events", S_INTF(sync_max_events), "5000", 1, 1000000,
      "most events in one sync reply" },
    { "snapshot-max-records", S_INTF(snapshot_max_records), "2000", 1, 1000000,
      "most records in one snapshot page" },
    { "readers", S_INTF(readers), "2", 1, 64,
      "reader threads serving sync, snapshot and admin requests" },
    { "heartbeat-ms", S_INTF(heartbeat_ms), "1000", 10, 60000,
      "interval of live-feed heartbeats" },
    { "feed-sndhwm", S_INTF(feed_sndhwm), "100000", 1, 100000000,
      "messages queued per feed subscriber before the feed drops (see protocol.md)" },
    { "feed-max-prefixes", S_INTF(feed_max_prefixes), "8192", 1, 1000000,
      "distinct prefixes one key may follow on the live feed at a time (see security.md)" },
    { "map-size-mb", S_INTF(map_size_mb), "64", 1, 1048576,
      "initial LMDB map size in MiB (it grows on demand)" },
    { "map-max-gb", S_INTF(map_max_gb), "1024", 1, 65536,
      "largest the LMDB map may grow, in GiB" },
    { "idem-max-entries", S_INTF(idem_max_entries), "1000000", 1000, 100000000,
      "uploads remembered for retransmission answers (count bound)" },
    { "idem-max-age-h", S_INTF(idem_max_age_h), "720", 1, 87600,
      "uploads remembered for retransmission answers (age bound, hours)" },
    { "feed-restricted", S_BOOLF(feed_restricted), "false", 0, 1,
      "feeds and sync replies carry the restricted part of a person" },
    { "insecure-dev", S_BOOLF(insecure_dev), "false", 0, 1,
      "DEVELOPMENT ONLY: plaintext, no CURVE; refused unless every endpoint is loopback" },
    { "server-cert", S_STRF(server_cert), "", 0, 0,
      "broker CURVE certificate (zcert); default STORE/broker.cert, created if missing" },
    { "no-sync", S_BOOLF(no_sync), "false", 0, 1,
      "BENCHMARK ONLY: commit without fsync; acked data can be lost on power loss" },
    { "log-level", S_STRF(log_level), "info", 0, 0,
      "debug, info, warn or error" },
    { "log-format", S_STRF(log_format), "kv", 0, 0,
      "kv (key=value lines) or json (JSON lines)" },
    { "jetstream-url", S_STRF(jetstream_url), "", 0, 0,
      "NATS server URL(s), comma-separated (nats:// or tls://): the bridge's, or the replica's" },
    { "jetstream-area", S_STRF(jetstream_area), "", 0, 0,
      "bridge: the district's area, a 2/4/6/9/12-digit prefix (stream GRIDSYNC_<area>)" },
    { "jetstream-replicas", S_INTF(jetstream_replicas), "1", 1, 5,
      "bridge: replicas of the stream when the bridge creates it" },
    { "jetstream-user", S_STRF(jetstream_user), "", 0, 0,
      "NATS user name (needs jetstream-password-file)" },
    { "jetstream-password-file", S_STRF(jetstream_password_file), "", 0, 0,
      "file holding the NATS user's password (never on the command line)" },
    { "jetstream-nkey-seed-file", S_STRF(jetstream_nkey_seed_file), "", 0, 0,
      "file holding a NATS user nkey seed (SU...)" },
    { "jetstream-creds-file", S_STRF(jetstream_creds_file), "", 0, 0,
      "NATS .creds file (user JWT and nkey seed)" },
    { "jetstream-tls-ca", S_STRF(jetstream_tls_ca), "", 0, 0,
      "CA certificates (PEM) to verify the NATS server; turns TLS on" },
    { "jetstream-tls-cert", S_STRF(jetstream_tls_cert), "", 0, 0,
      "client certificate (PEM) for TLS, with jetstream-tls-key" },
    { "jetstream-tls-key", S_STRF(jetstream_tls_key), "", 0, 0,
      "private key (PEM) of jetstream-tls-cert" },
    { "jetstream-rebaseline", S_BOOLF(jetstream_rebaseline), "false", 0, 1,
      "bridge: purge a stream that holds another lineage and republish from seq 1" },
    { "replica-of", S_STRF(replica_of), "", 0, 0,
      "run as a read-only city replica of these district areas (comma-separated)" },
    { "replica-area", S_STRF(replica_area), "", 0, 0,
      "replica: follow only this prefix (covering or under each origin area)" },
    { "replica-name", S_STRF(replica_name), "replica", 0, 0,
      "replica: durable consumer name, + \"_\" + origin area, per origin" },
    { "replica-rebaseline", S_STRF(replica_rebaseline), "", 0, 0,
      "command line only: remove origin AREA's records and accept its new lineage" },
    { "replica-repair", S_STRF(replica_repair), "", 0, 0,
      "command line only: re-sync these cells (CELL,...) from their origin's stream" },
};

#define S_NOPTIONS (sizeof s_options / sizeof s_options[0])

static const s_option_t *
s_find(const char *name)
{
    for (size_t i = 0; i < S_NOPTIONS; i++)
        if (strcmp(s_options[i].name, name) == 0)
            return &s_options[i];
    return NULL;
}

static int
s_apply(gs_config_t *c, const s_option_t *o, const char *value, char *err,
        size_t err_size)
{
    char *field = (char *) c + o->offset;
    switch (o->type) {
    case S_STR:
        if (strlen(value) >= o->size) {
            snprintf(err, err_size, "%s: value longer than %zu characters",
                     o->name, o->size - 1);
            return -1;
        }
        strcpy(field, value);
        return 0;
    case S_INT: {
        errno = 0;
        char *end;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end) {
            snprintf(err, err_size, "%s: '%s' is not a whole number", o->name, value);
            return -1;
        }
        if (v < o->min || v > o->max) {
            snprintf(err, err_size, "%s: %lld is outside %lld..%lld", o->name, v,
                     (long long) o->min, (long long) o->max);
            return -1;
        }
        *(int64_t *) field = v;
        return 0;
    }
    case S_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "1") ||
            !strcmp(value, "on"))
            *(int *) field = 1;
        else if (!strcmp(value, "false") || !strcmp(value, "no") ||
                 !strcmp(value, "0") || !strcmp(value, "off"))
            *(int *) field = 0;
        else {
            snprintf(err, err_size, "%s: '%s' is not true or false", o->name, value);
            return -1;
        }
        return 0;
    }
    return -1;
}

void
gs_config_defaults(gs_config_t *c)
{
    memset(c, 0, sizeof *c);
    char err[128];
    for (size_t i = 0; i < S_NOPTIONS; i++) {
        int rc = s_apply(c, &s_options[i], s_options[i].def, err, sizeof err);
        (void) rc;
    }
}

int
gs_config_set(gs_config_t *c, const char *name, const char *value, char *err,
              size_t err_size)
{
    const s_option_t *o = s_find(name);
    if (!o) {
        snprintf(err, err_size, "unknown option '%s' (see --help)", name);
        return -1;
    }
    return s_apply(c, o, value, err, err_size);
}

static char *
s_trim(char *s)
{
    while (isspace((unsigned char) *s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char) e[-1]))
        *--e = 0;
    return s;
}

int
gs_config_load(gs_config_t *c, const char *path, char *err, size_t err_size)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char line[1024];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *s = s_trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, err_size, "%s:%d: expected 'name = value'", path, lineno);
            fclose(f);
            return -1;
        }
        *eq = 0;
        char *name = s_trim(s);
        char *value = s_trim(eq + 1);
        size_t vn = strlen(value);
        if (vn >= 2 && value[0] == '"' && value[vn - 1] == '"') {
            value[vn - 1] = 0;
            value++;
        }
        if (strcmp(name, "replica-rebaseline") == 0 || strcmp(name, "replica-repair") == 0) {
            /* a one-time action: from a file it would run at every start */
            snprintf(err, err_size, "%s:%d: %s is a one-time action; give it on the command "
                     "line (--%s=%s), not in a file", path, lineno, name, name,
                     strcmp(name, "replica-repair") == 0 ? "CELL,..." : "AREA");
            fclose(f);
            return -1;
        }
        char sub[256];
        if (gs_config_set(c, name, value, sub, sizeof sub)) {
            snprintf(err, err_size, "%s:%d: %s", path, lineno, sub);
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

int
gs_config_parse_args(gs_config_t *c, int argc, char **argv, char *err,
                     size_t err_size)
{
    /* the config file first, wherever --config appears */
    for (int i = 1; i < argc; i++) {
        const char *path = NULL;
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            path = argv[i + 1];
        else if (!strncmp(argv[i], "--config=", 9))
            path = argv[i] + 9;
        if (path && gs_config_load(c, path, err, err_size))
            return -1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            gs_config_help(stdout, argv[0]);
            return 1;
        }
        if (!strcmp(a, "--version")) {
            printf("gridsyncd %s\n", GS_VERSION);
            return 1;
        }
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (!strncmp(a, "--config=", 9))
            continue;
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, err_size, "unexpected argument '%s' (options start with --)", a);
            return -1;
        }
        char name[64];
        const char *value;
        const char *eq = strchr(a + 2, '=');
        if (eq) {
            size_t n = (size_t) (eq - (a + 2));
            if (n >= sizeof name)
                n = sizeof name - 1;
            memcpy(name, a + 2, n);
            name[n] = 0;
            value = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a + 2);
            const s_option_t *o = s_find(name);
            if (o && o->type == S_BOOL &&
                (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)) {
                value = "true"; /* a bare boolean flag turns it on */
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                snprintf(err, err_size, "option --%s needs a value", name);
                return -1;
            }
        }
        if (gs_config_set(c, name, value, err, err_size))
            return -1;
    }
    return 0;
}

void
gs_config_help(FILE *out, const char *prog)
{
    fprintf(out,
            "Usage: %s [--config FILE] [--OPTION=VALUE ...]\n"
            "\n"
            "gridsyncd is the gridsync broker: handhelds upload household, rental and\n"
            "organisation records, district systems follow the change feed, admins\n"
            "inspect the store.\n"
            "Settings come from the defaults, then FILE, then the flags given here.\n"
            "\n"
            "Options:\n"
            "  --config FILE             read settings from FILE (name = value lines)\n"
            "  --help                    show this help and exit\n"
            "  --version                 show the version and exit\n",
            prog);
    for (size_t i = 0; i < S_NOPTIONS; i++) {
        const s_option_t *o = &s_options[i];
        char lhs[64];
        snprintf(lhs, sizeof lhs, "--%s=%s", o->name,
                 o->type == S_INT ? "N" : o->type == S_BOOL ? "BOOL" : "TEXT");
        if (strlen(lhs) >= 26)     /* a long name: its help on the next line */
            fprintf(out, "  %s\n  %-26s%s\n", lhs, "", o->help);
        else
            fprintf(out, "  %-26s%s\n", lhs, o->help);
        if (o->type == S_INT)
            fprintf(out, "  %-26s  default %s, range %lld..%lld\n", "", o->def,
                    (long long) o->min, (long long) o->max);
        else
            fprintf(out, "  %-26s  default %s\n", "", o->def[0] ? o->def : "(see above)");
    }
    fprintf(out, "\nSignals: SIGTERM or SIGINT drains (commit pending uploads, send\n"
                 "their acks) and exits. See docs/operations.md.\n");
}

void
gs_config_dump(const gs_config_t *c, FILE *out)
{
    for (size_t i = 0; i < S_NOPTIONS; i++) {
        const s_option_t *o = &s_options[i];
        const char *field = (const char *) c + o->offset;
        switch (o->type) {
        case S_STR:
            fprintf(out, "%s = %s\n", o->name, field);
            break;
        case S_INT:
            fprintf(out, "%s = %lld\n", o->name, (long long) *(const int64_t *) field);
            break;
        case S_BOOL:
            fprintf(out, "%s = %s\n", o->name, *(const int *) field ? "true" : "false");
            break;
        }
    }
}

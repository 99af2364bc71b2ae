/*
 * gs_config: gridsyncd's settings, from one table.
 *
 * Every option has a name, a type, bounds, a default and a help line in the
 * table in gs_config.c; the config file, the command line, --help and the
 * shipped example (broker/gridsyncd.conf.example) all follow that table.
 * Precedence: defaults < config file < command-line flags.
 *
 * Thread safety: filled once at start-up, read-only afterwards.
 */
#ifndef GS_CONFIG_H
#define GS_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct gs_config {
    char store[512];            /* store directory */
    char upload_endpoint[256];  /* ROUTER: uploads, sync, snapshots */
    char feed_endpoint[256];    /* XPUB: live change feed */
    char admin_endpoint[512];   /* admin requests (ipc:// by default) */
    char metrics_address[64];   /* HTTP listen address for /metrics */
    int64_t metrics_port;       /* 0 = any free port (logged); metrics_address "off" = none */
    int64_t batch_max_records;  /* group commit: records per transaction */
    int64_t batch_linger_us;    /* group commit: wait for more after the first */
    int64_t max_pending_records;/* backpressure: records queued for the writer */
    int64_t max_message_bytes;  /* ZMQ_MAXMSGSIZE on client-facing sockets */
    int64_t max_connections;    /* client connections held at once; 0 = from the fd limit */
    int64_t handshake_timeout_ms; /* ZMQ_HANDSHAKE_IVL on client-facing sockets */
    int64_t max_records;        /* records per upload */
    int64_t sync_max_events;    /* events per sync reply */
    int64_t snapshot_max_records; /* records per snapshot page */
    int64_t readers;            /* reader threads for sync and admin */
    int64_t heartbeat_ms;       /* live-feed heartbeat interval */
    int64_t feed_sndhwm;        /* XPUB send high-water mark, per subscriber */
    int64_t feed_max_prefixes;  /* distinct live-feed prefixes per key */
    int64_t map_size_mb;        /* initial LMDB map size */
    int64_t map_max_gb;         /* LMDB map growth limit */
    int64_t idem_max_entries;   /* idempotency table bound (count) */
    int64_t idem_max_age_h;     /* idempotency table bound (age, hours) */
    int feed_restricted;        /* 1: feeds carry Person.restricted */
    int insecure_dev;           /* 1: no CURVE (loopback endpoints only) */
    char server_cert[512];      /* broker keypair (zcert); default STORE/broker.cert */
    int no_sync;                /* benchmark only: commits not durable */
    char log_level[16];         /* debug, info, warn, error */
    char log_format[8];         /* kv or json */
    /* federation (docs/federation.md): NATS JetStream, for the district's
     * bridge and the city's replica alike unless marked */
    char jetstream_url[512];    /* NATS server URL(s), comma-separated; "" = neither */
    char jetstream_area[16];    /* bridge: the district's area prefix (stream and origin) */
    int64_t jetstream_replicas; /* bridge: replicas of the stream when it is created */
    char jetstream_user[128];   /* NATS user (with jetstream_password_file) */
    char jetstream_password_file[512]; /* file holding that user's password */
    char jetstream_nkey_seed_file[512]; /* file holding a user nkey seed */
    char jetstream_creds_file[512];     /* a NATS .creds file (JWT and seed) */
    char jetstream_tls_ca[512];   /* CA certificates that sign the server's */
    char jetstream_tls_cert[512]; /* client certificate (with jetstream_tls_key) */
    char jetstream_tls_key[512];  /* its private key */
    int jetstream_rebaseline;   /* bridge: purge and republish a stream of another lineage */
    char replica_of[512];       /* a replica of these origin areas; "" = not a replica */
    char replica_area[16];      /* the prefix followed ("" = each origin's whole area) */
    char replica_name[32];      /* durable consumer name prefix */
    char replica_rebaseline[16]; /* one-time, command line only: re-baseline this origin */
    char replica_repair[600];   /* one-time, command line only: repair these cells */
} gs_config_t;

/* Fill c with the defaults from the table. */
void gs_config_defaults(gs_config_t *c);

/* Apply one setting by name. Returns 0, or -1 with a message for a person
 * in err (unknown name, bad value, out of bounds). */
int gs_config_set(gs_config_t *c, const char *name, const char *value,
                  char *err, size_t err_size);

/* Read a config file of "name = value" lines ('#' starts a comment).
 * Returns 0, or -1 with err naming the file, line and problem. */
int gs_config_load(gs_config_t *c, const char *path, char *err, size_t err_size);

/* Parse argv: --config FILE is applied first, then --name=value or
 * --name value flags in order, then the --help / --version request.
 * Returns 0 to run, 1 when --help or --version was printed (exit 0),
 * -1 on error (message in err). */
int gs_config_parse_args(gs_config_t *c, int argc, char **argv,
                         char *err, size_t err_size);

/* Print --help text (every option with default and bounds). */
void gs_config_help(FILE *out, const char *prog);

/* Print the effective configuration as name = value lines. */
void gs_config_dump(const gs_config_t *c, FILE *out);

#endif

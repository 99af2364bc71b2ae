/*
 * gs_tk_nats: a real nats-server for the federation tests. Starts Debian's
 * nats-server as a child with JetStream on, listening on loopback on a
 * fixed free port, with its JetStream store in a temporary directory, and
 * waits for its own "ready" log line (JetStream's, for a cluster: a
 * metadata leader elected). The port, the directory and the config stay
 * the same across a stop and a restart, so a client reconnecting finds the
 * server where it was and the streams it held. Nothing is mocked.
 *
 * Every function runs on the test thread only.
 */
#ifndef GS_TK_NATS_H
#define GS_TK_NATS_H

#include <sys/types.h>

typedef struct gs_tk_nats {
    pid_t pid;                  /* nats-server child, 0 when not running */
    int port;                   /* client port (loopback) */
    int cluster_port;           /* route port, 0 outside a cluster */
    char name[32];              /* server_name */
    char dir[256];              /* temporary directory: config, log, JetStream store */
    char url[64];               /* nats://127.0.0.1:PORT */
    char conf[300];             /* config file */
    char log[300];              /* log file */
    long log_from;              /* log offset where the last start began */
} gs_tk_nats_t;

/* Whether a nats-server program is installed; when it is not, says so on
 * stderr (make deps installs it). */
int gs_tk_nats_available(void);

/* Start one nats-server with JetStream in a new temporary directory. extra
 * is config text added to the generated config (an authorization block,
 * tls, accounts), or NULL. Returns 0 once the server logged that it is
 * ready, -1 when it exited first or did not get ready in 30 s (killed
 * then) three times, each on a fresh port (another program may take a
 * port found free before the server binds it). */
int gs_tk_nats_start(gs_tk_nats_t *n, const char *extra);

/* Start count servers as one JetStream cluster (routes between all of
 * them, server names n1..nCOUNT), each as gs_tk_nats_start. Returns 0 once
 * every server is ready and the cluster elected a JetStream metadata
 * leader, -1 when three fresh clusters did not (their servers are stopped
 * and their directories removed). */
int gs_tk_nats_cluster_start(gs_tk_nats_t *nodes, int count, const char *extra);

/* Start a stopped server again: same port, config and JetStream store.
 * Returns as gs_tk_nats_start. */
int gs_tk_nats_restart(gs_tk_nats_t *n);

/* Send sig (SIGTERM, SIGKILL) and reap the server; killed after 20 s if it
 * is still running. Returns the wait status. A stopped server is left. */
int gs_tk_nats_stop(gs_tk_nats_t *n, int sig);

/* Stop the server if it runs (SIGKILL) and remove its directory. */
void gs_tk_nats_destroy(gs_tk_nats_t *n);

/* Wait until the server's log (since it was last started) has a line
 * containing want, at most patience_ms. Returns 0 or -1. */
int gs_tk_nats_wait_log(gs_tk_nats_t *n, const char *want, int patience_ms);

#endif

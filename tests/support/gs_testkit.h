/*
 * gs_testkit: what integration tests share. Starts the real gridsyncd as a
 * child process on loopback with ephemeral ports and a temporary store,
 * waits for its "ready" log line (the daemon's own signal, not a sleep), and
 * makes valid records for uploads. It also starts the tools as children and
 * waits on them (bounded: a line of stderr, the exit), reads the broker's
 * metrics endpoint, and backs up stores and reads their epochs. Functions
 * that say so fail the running cmocka test themselves.
 */
#ifndef GS_TESTKIT_H
#define GS_TESTKIT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "gridsync.pb-c.h"
#include "gs_arena.h"

typedef struct gs_tk_broker {
    pid_t pid;                  /* gridsyncd child, 0 when not running */
    char store[256];            /* store directory */
    char upload[128];           /* bound upload endpoint */
    char feed[128];             /* bound feed endpoint */
    char admin[400];            /* bound admin endpoint */
    int metrics_port;           /* bound metrics port */
    int err_fd;                 /* read end of the child's stderr */
    pthread_t drain;            /* copies stderr to store/../broker.log */
    int drain_running;          /* drain thread started */
    char log_path[300];         /* where the child's log goes */
    char server_key[41];        /* broker public key (secure mode) */
} gs_tk_broker_t;

/* Make a fresh temporary directory (mkdtemp under /tmp) into dir. */
void gs_tk_tmpdir(char *dir, size_t size);

/* Remove a directory tree. */
void gs_tk_rmtree(const char *dir);

/* Start gridsyncd on store_dir with ephemeral loopback ports plus the extra
 * "--name=value" arguments (NULL-terminated, may be NULL). Returns 0 when
 * the broker logged event=ready, -1 if it exited first. */
int gs_tk_broker_start(gs_tk_broker_t *b, const char *store_dir, const char *const *extra);

/* The same with CURVE on (secure = 1) instead of --insecure-dev. */
int gs_tk_broker_start_mode(gs_tk_broker_t *b, const char *store_dir,
                            const char *const *extra, int secure);

/* A free loopback TCP port for a broker endpoint that must stay the same
 * across restarts. Taken below the kernel's ephemeral range when possible,
 * so that no outgoing connection (a client reconnecting to a dead broker)
 * can be given it as its local port meanwhile. 0 on failure. */
int gs_tk_free_port(void);

/* gs_tk_broker_start_mode on fixed free ports (gs_tk_free_port) for the
 * upload and feed endpoints, so that gs_tk_broker_restart can bring the
 * broker back where its clients will reconnect. */
int gs_tk_broker_start_fixed(gs_tk_broker_t *b, const char *store_dir,
                             const char *const *extra, int secure);

/* Start a stopped broker again on the same store and the same upload and
 * feed endpoints it had bound (and the same security mode); extra as for
 * gs_tk_broker_start. The metrics port is chosen afresh. Returns as
 * gs_tk_broker_start. */
int gs_tk_broker_restart(gs_tk_broker_t *b, const char *const *extra);

/* Send sig (SIGTERM, SIGKILL) and wait for the exit. Returns the exit
 * status as from waitpid (use WIFEXITED...). */
int gs_tk_broker_stop(gs_tk_broker_t *b, int sig);

/* A valid household of members people in grid, with ID numbers derived from
 * person_seed, built in arena a. address_code may be NULL (then a room
 * address is used). */
Gridsync__V1__Record *gs_tk_household(gs_arena_t *a, const char *grid, const char *hid,
                                      const char *address_code, int members,
                                      uint32_t person_seed);

/* A valid organisation in grid with employees people whose ID numbers
 * come from person_seed (the same scheme as gs_tk_household, so a seed
 * names the same person in both), and a legal representative (also the
 * contact) with seed person_seed + employees. uscc NULL makes an
 * unregistered stall; address_code NULL a room address named after oid. */
Gridsync__V1__Record *gs_tk_org(gs_arena_t *a, const char *grid, const char *oid,
                                const char *uscc, const char *address_code, int employees,
                                uint32_t person_seed);

/* A valid resident ID number for a seed: unique per seed. */
void gs_tk_idnum(uint32_t seed, int *birth_yyyymmdd, int *sex, char out[19]);

/* Pack an Upload of the records into a Request (caller frees *buf). */
uint8_t *gs_tk_upload_request(const char *device, const char *upload_id,
                              Gridsync__V1__Record **recs, size_t n, uint64_t request_id,
                              size_t *len);

/* A TCP socket listening on an ephemeral loopback port, for a peer that
 * accepts connections and never says a word; "tcp://127.0.0.1:PORT" goes
 * into endpoint. Returns the listening fd (the caller accepts on it and
 * closes it); the running cmocka test fails when it cannot listen. */
int gs_tk_listen_silent(char *endpoint, size_t size);

/* Start the program argv[0] (a path; argv NULL-terminated) with stdout on
 * /dev/null and stderr on a pipe whose read end goes into *err_fd, or, with
 * err_fd NULL, on the test's own stderr. Returns the child's pid; the
 * running cmocka test fails when there is no pipe or fork. The caller
 * reaps the child (gs_tk_wait_exit) and closes *err_fd. Test thread only. */
pid_t gs_tk_spawn(const char *const *argv, int *err_fd);

/* Run gridctl --store store args (args split by the shell) with its output
 * discarded; returns its exit status, -1 when it did not exit normally.
 * Only in a build with gridctl. Test thread only. */
int gs_tk_gridctl(const char *store, const char *args);

/* Wait for the child pid to exit, at most patience_ms. One still running
 * then is killed (SIGKILL), reaped, and the running cmocka test fails (a
 * hang, not slowness), naming the child as what. Returns the wait status
 * (WIFEXITED...). Test thread only. */
int gs_tk_wait_exit(pid_t pid, const char *what, int patience_ms);

/* Read the raw fd (a child's stderr) until a line contains want, waiting
 * at most patience_ms in all (bounded while the child prints other lines
 * too). The running cmocka test fails when the time is up or the fd ends
 * first (the child named what exited). Lines longer than 1,023 bytes are
 * matched on their first 1,023. Reads byte by byte, so nothing after the
 * matching line is consumed. Test thread only. */
void gs_tk_wait_line(int fd, const char *what, const char *want, int patience_ms);

/* gs_tk_metric when the endpoint answered without the sample, when no
 * connection could be made or the request not sent, and when the endpoint
 * took the request but gave no 200 reply (it drops one it cannot serve in
 * time). */
#define GS_TK_METRIC_ABSENT (-1.0)
#define GS_TK_METRIC_UNREADABLE (-2.0)
#define GS_TK_METRIC_UNANSWERED (-3.0)

/* The value of one sample from the broker's metrics endpoint (HTTP GET
 * /metrics on loopback port). name is a metric name or a name with one
 * label set exactly as printed, e.g. gridsync_request_errors_total{reason=
 * "BUSY"}; a bare name of a metric printed with label sets is the sum over
 * them. Returns the value or one of the GS_TK_METRIC_ codes above; never
 * fails the test itself. Any thread. */
double gs_tk_metric(int port, const char *name);

/* Back the store in dir up into backup (gs_store_backup) and give the copy
 * the epoch (8 bytes, through gs_store_debug_put) as a restore gives it one
 * of its own: a store of another lineage with the same log. The running
 * cmocka test fails on any error. Test thread only. */
void gs_tk_store_backup_epoch(const char *dir, const char *backup, const uint8_t epoch[8]);

/* The epoch of the store in dir (gs_store_epoch), opened and closed again;
 * the running cmocka test fails when it cannot be read. Not while a broker
 * has the store open. Test thread only. */
uint64_t gs_tk_store_epoch(const char *dir);

/* The whole file at path, malloc'd and NUL-terminated (free it); its
 * length in *len when len is non-NULL. A file that does not exist is ""
 * when missing_ok, else the running cmocka test fails. Test thread only. */
char *gs_tk_read_file(const char *path, size_t *len, int missing_ok);

#endif

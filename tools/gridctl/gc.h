/*
 * gc: what gridctl's subcommands share. The command-line context, the
 * option parser, opening the store, the --reveal audit log, aligned tables,
 * CSV cells, and records decoded and masked for output (JSON: gs_render.h).
 *
 * Where it sits: gridctl is the administrator's side of the flow
 * (admin -> store). It reads the LMDB store directly through gs_store.h, in
 * read-only transactions, so it works beside a running broker and when the
 * broker is down; registry writes open the store read-write (LMDB
 * serialises writers across processes). With --admin EP, the reads the
 * admin endpoint serves (stats, get, devices list|show, grids list) go
 * through a running broker instead (gc_src, over gs_admin.h), which is how
 * a store is reached that gridctl cannot open; every other command then
 * refuses. `health` asks the admin endpoint too, and `ping` the upload
 * endpoint with a device's bundle.
 *
 * Personal data: every record printed goes through gc_record_load /
 * gc_event_load, which mask ID numbers, phones and the restricted part of
 * each person unless --reveal was given (and logged). Output code never
 * sees unmasked data otherwise.
 *
 * Single-threaded: one process, one command.
 */
#ifndef GC_H
#define GC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gridsync.pb-c.h"
#include "gs_arena.h"
#include "gs_client.h"
#include "gs_render.h"
#include "gs_store.h"

/* Exit statuses, the same for every subcommand. */
enum {
    GC_EXIT_OK = 0,             /* done */
    GC_EXIT_FAIL = 1,           /* missing store, unknown key, problems found, I/O */
    GC_EXIT_USAGE = 2,          /* bad arguments */
    GC_EXIT_REFUSED = 3,        /* ping only: the broker refused the key's handshake */
    GC_EXIT_NO_SCOPE = 4        /* ping only: answered, but the key may touch nothing */
};

/* ---- Context and options ------------------------------------------------- */

typedef struct gc_ctx {
    const char *store_dir;      /* --store, else $GRIDSYNC_STORE, else var/store */
    const char *admin;          /* --admin: read through this admin endpoint, or NULL */
    int json;                   /* --json: machine output */
    int reveal;                 /* --reveal: unmasked ID numbers and phones */
    int audited;                /* the audit line for --reveal is written */
    const char *cmd;            /* "stats", "devices add", ... for messages */
    int argc;                   /* the whole command line, for the audit log */
    char **argv;
    FILE *out;                  /* where results go (stdout) */
} gc_ctx_t;

/* One option a subcommand accepts (global options are always accepted). */
typedef struct gc_optspec {
    const char *name;           /* long name without "--"; NULL ends a table */
    int has_arg;                /* 1: takes a value (--name V or --name=V) */
} gc_optspec_t;

#define GC_MAX_ARGS 64

/* A parsed command line: positionals and options in order. */
typedef struct gc_args {
    const char *pos[GC_MAX_ARGS];       /* positional arguments */
    size_t n_pos;
    const char *opt_name[GC_MAX_ARGS];  /* options given, in order */
    const char *opt_value[GC_MAX_ARGS]; /* their values (NULL for flags) */
    size_t n_opt;
    int help;                           /* --help / -h was given */
} gc_args_t;

/* Parse argv[0..argc) (the words after the subcommand) against spec plus
 * the global options (--store, --admin, --json, --reveal, --help), which
 * set ctx.
 * "--" ends the options. Returns GC_EXIT_OK, or GC_EXIT_USAGE after
 * printing what was wrong. */
int gc_args_parse(gc_ctx_t *ctx, int argc, char **argv, const gc_optspec_t *spec,
                  gc_args_t *a);

/* The last value of option name, or NULL. */
const char *gc_args_get(const gc_args_t *a, const char *name);
/* Whether the option was given at all. */
int gc_args_has(const gc_args_t *a, const char *name);
/* Every value of a repeatable option, in order; returns how many (at most
 * max are stored). */
size_t gc_args_all(const gc_args_t *a, const char *name, const char **out, size_t max);

/* Option name as an unsigned number in [min, max], or def when absent.
 * Returns GC_EXIT_OK or GC_EXIT_USAGE after printing the problem. */
int gc_args_u64(gc_ctx_t *ctx, const gc_args_t *a, const char *name, uint64_t def,
                uint64_t min, uint64_t max, uint64_t *out);

/* Print "gridctl CMD: message" and the hint to --help on stderr; returns
 * GC_EXIT_USAGE. */
int gc_usage(gc_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print "gridctl CMD: message" on stderr; returns GC_EXIT_FAIL. */
int gc_fail(gc_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A store error as a message: "gridctl CMD: what: <strerror> (<detail>)";
 * returns GC_EXIT_FAIL. */
int gc_store_fail(gc_ctx_t *ctx, const char *what, int err);

/* Check a grid-code prefix given on the command line: 0..15 ASCII digits
 * (any length; stats and ls accept partial levels). Returns GC_EXIT_OK or
 * GC_EXIT_USAGE after printing the problem. */
int gc_prefix_arg(gc_ctx_t *ctx, const char *prefix);

/* Open the store at ctx->store_dir: read-only, or read-write for registry
 * writes (never creating a store: a missing one is reported the same way
 * in both modes). With --reveal, first appends the audit line (and
 * refuses, returning NULL, when it cannot be written). With --admin, a
 * command that reads the store directly is refused (GC_EXIT_USAGE): the
 * admin endpoint does not serve it. NULL on failure, with the message
 * printed and *exit_code set. */
gs_store_t *gc_store_open(gc_ctx_t *ctx, int writable, int *exit_code);

/* For a command the admin endpoint does not serve: GC_EXIT_OK without
 * --admin, else GC_EXIT_USAGE after saying so (gc_store_open calls it; a
 * command that works without opening the store calls it itself). */
int gc_admin_unserved(gc_ctx_t *ctx);

/* ---- Sources: the store, or a broker's admin endpoint ---------------------- */

/* Where the reads of stats, get, devices list|show and grids list come
 * from: the store opened read-only (gc_store_open), or, with --admin, a
 * running broker's admin endpoint (gs_admin.h). The calls mirror
 * gs_store.h's, callbacks included, so a command renders both alike.
 * Through the broker each call is one request (at most GC_ADMIN_TIMEOUT_MS)
 * and its callbacks run after the reply arrived. */
typedef struct gc_src gc_src_t;

#define GC_ADMIN_TIMEOUT_MS 10000

/* Open ctx's source. With --reveal, the audit line is appended to
 * STORE/audit.log first either way (refused when it cannot be). NULL on
 * failure, with the message printed and *exit_code set: GC_EXIT_USAGE for
 * an --admin that is not ipc://PATH, else GC_EXIT_FAIL. */
gc_src_t *gc_src_open(gc_ctx_t *ctx, int *exit_code);
void gc_src_close(gc_src_t **self_p);

/* A client of a broker's request endpoint, connecting as an enrolled
 * key's holder does: CURVE keys from the enrolment bundle keys (NULL:
 * plaintext, for a broker in --insecure-dev), at endpoint ep, else the
 * bundle's upload_endpoint; o carries the caller's timeout and retries
 * (its keys are filled here). The endpoint used is copied into ep_out.
 * NULL after saying why, with *exit_code GC_EXIT_USAGE: an unreadable
 * bundle, no endpoint, or one ZeroMQ cannot use. */
gs_client_t *gc_client_open(gc_ctx_t *ctx, const char *keys, const char *ep,
                            gs_client_opts_t *o, char *ep_out, size_t ep_size,
                            int *exit_code);

/* A source over a broker's request endpoint (gc_client_open's keys and
 * ep), reading as that key: one Request per call, at most
 * GC_ADMIN_TIMEOUT_MS. It serves gc_src_incident_table only (what every
 * enrolled key may read); the other reads are for gc_src_open's sources. */
gc_src_t *gc_src_open_request(gc_ctx_t *ctx, const char *keys, const char *ep,
                              int *exit_code);

/* The reads. Each returns 0, or an error for gc_src_fail; a missing
 * record, device or grid is GS_ENOTFOUND on both paths. */
int gc_src_cells(gc_src_t *self, const char *prefix, gs_cell_fn *fn, void *arg,
                 uint64_t *head);
int gc_src_grids(gc_src_t *self, const char *prefix, gs_grid_fn *fn, void *arg);
int gc_src_grid_get(gc_src_t *self, const char *grid_code, Gridsync__V1__Grid **out);
int gc_src_devices(gc_src_t *self, gs_device_fn *fn, void *arg);
int gc_src_device_get(gc_src_t *self, const char *device_id, Gridsync__V1__Device **out);
/* The store's incident category table (gs_store_incident_table), and
 * whether it was set in the store (configured may be NULL). */
int gc_src_incident_table(gc_src_t *self, gs_incident_table_t *out, int *configured);
/* One record. Through the broker the view's updated_at is 0 (an admin
 * reply does not carry the commit time) and its status is the record's
 * meta.status. */
int gc_src_get(gc_src_t *self, int kind, const char *key, gs_record_fn *fn, void *arg);

/* A source named on the command line (compare's SRC_A and SRC_B): an
 * admin endpoint when where starts with "ipc://", else a store directory
 * opened read-only; otherwise as gc_src_open. */
gc_src_t *gc_src_open_at(gc_ctx_t *ctx, const char *where, int *exit_code);

/* A prefix's digest (gs_store_digest): with q->child_fn its children, at a
 * cell with q->record_fn its records after q->cursor, at most q->limit
 * (0: all from the store, the broker's bound through it); *out as
 * gs_store_digest fills it (next_cursor malloc'd), *epoch (may be NULL)
 * the store's lineage epoch. */
int gc_src_digest(gc_src_t *self, const gs_digest_query_t *q, gs_digest_result_t *out,
                  uint64_t *epoch);

/* Print "gridctl CMD: what: <the store's message or the broker's
 * refusal>", or for a broker that could not be asked the client's message
 * alone (it names the endpoint and the cause); returns GC_EXIT_FAIL. */
int gc_src_fail(gc_ctx_t *ctx, const gc_src_t *self, const char *what, int err);

/* Append the --reveal audit line to STORE/audit.log (mode 0600) and print
 * a notice on stderr. Returns 0, or -1 after printing why not. Called by
 * gc_store_open; safe to call twice (writes once). */
int gc_audit_reveal(gc_ctx_t *ctx);

/* Flush ctx->out and report a write error (disk full, closed pipe).
 * Returns rc unchanged when the output is fine, GC_EXIT_FAIL otherwise. */
int gc_finish(gc_ctx_t *ctx, int rc);

/* ---- Subcommands (one file per group) ------------------------------------- */

typedef int (gc_cmd_fn)(gc_ctx_t *ctx, int argc, char **argv);

gc_cmd_fn gc_cmd_stats;         /* gc_stats.c */
gc_cmd_fn gc_cmd_ls;            /* gc_records.c */
gc_cmd_fn gc_cmd_get;
gc_cmd_fn gc_cmd_history;
gc_cmd_fn gc_cmd_export;
gc_cmd_fn gc_cmd_dups;          /* gc_dups.c */
gc_cmd_fn gc_cmd_incidents;     /* gc_incidents.c */
gc_cmd_fn gc_cmd_incident_categories; /* gc_categories.c: incidents categories ... */
gc_cmd_fn gc_cmd_tail;          /* gc_tail.c */
gc_cmd_fn gc_cmd_devices;       /* gc_registry.c */
gc_cmd_fn gc_cmd_grids;
gc_cmd_fn gc_cmd_backup;        /* gc_ops.c */
gc_cmd_fn gc_cmd_restore;
gc_cmd_fn gc_cmd_verify;
gc_cmd_fn gc_cmd_health;
gc_cmd_fn gc_cmd_ping;          /* gc_ping.c */
gc_cmd_fn gc_cmd_digest;        /* gc_digest.c */
gc_cmd_fn gc_cmd_compare;

/* ---- Tables ----------------------------------------------------------------- */

/* Column-aligned text; widths count display columns (a CJK character is
 * two), so Chinese names and addresses line up. */
typedef struct gc_table gc_table_t;

/* headers: ncols strings; align: ncols characters, 'l' or 'r'. NULL on
 * allocation failure. */
gc_table_t *gc_table_new(size_t ncols, const char *const *headers, const char *align);
void gc_table_destroy(gc_table_t **self_p);
/* Start a new row; then add its cells with gc_table_cell (missing cells
 * print empty). */
void gc_table_row(gc_table_t *self);
void gc_table_cell(gc_table_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A horizontal rule (before a totals row). */
void gc_table_rule(gc_table_t *self);
/* Print every row; returns 0 or -1 if an allocation failed earlier. */
int gc_table_print(const gc_table_t *self, FILE *f);
size_t gc_table_rows(const gc_table_t *self);

/* Display width of a UTF-8 string in terminal columns. */
size_t gc_text_width(const char *s);

/* A number with thousands separators ("139,000") into buf. */
const char *gc_num(uint64_t v, char *buf, size_t size);

/* Unix ms as local time "2026-05-20 14:03:11" into buf ("-" for 0). */
const char *gc_time_local(int64_t ms, char *buf, size_t size);

/* ---- JSON output -------------------------------------------------------------- */

/* --json output is written with gs_render.h's writer (gs_json_init_file on
 * ctx->out), the one gridfeed uses. Records and events reach it masked
 * already (gc_record_load / gc_event_load), so gridctl passes reveal = 1 to
 * gs_json_msg and gs_json_event. Computed figures use gs_json_figure. */

/* ---- CSV --------------------------------------------------------------------- */

/* One CSV cell (RFC 4180 quoting), preceded by a comma unless first. A
 * value starting with = + - @ or a tab is prefixed with ' so that
 * spreadsheets do not run it as a formula. */
void gc_csv_cell(FILE *f, const char *s, int first);

/* ---- Records for output ------------------------------------------------------------ */

/* Decode a packed Record into arena a and, unless reveal, mask it in place:
 * ID numbers (id_number, permit_number) as 110101********1234, phones
 * (phones, phone, contact_phone) as 138****5678, and every string of a
 * person's restricted part as "***". NULL if the bytes do not decode. */
Gridsync__V1__Record *gc_record_load(const uint8_t *data, size_t len, gs_arena_t *a,
                                     int reveal);

/* The same for a packed ChangeEvent (its record is masked). */
Gridsync__V1__ChangeEvent *gc_event_load(const uint8_t *data, size_t len, gs_arena_t *a,
                                         int reveal);

/* Mask one ID number / phone into buf (returns buf), or copy it when
 * reveal. */
const char *gc_mask_id(const char *id, int reveal, char *buf, size_t size);
const char *gc_mask_phone(const char *phone, int reveal, char *buf, size_t size);

/* A readable address: the address text, else the standard address code,
 * else "building 3 unit 2 floor 5 room 502". */
const char *gc_record_address(const Gridsync__V1__Record *r, char *buf, size_t size);

/* Members of a household, leases of a rental unit. */
size_t gc_record_people(const Gridsync__V1__Record *r);

/* Names for output: "household"/"rental", "upsert"/"void"/"move_out"/
 * "move_in", "active"/"void". */
const char *gc_kind_name(int kind);
const char *gc_op_name(int op);
const char *gc_status_name(int status);

/* An enum value by its short lower-case name: SEX_FEMALE -> "female"
 * (the number for a value newer than the schema). Returns buf. */
const char *gc_enum_name(const ProtobufCEnumDescriptor *ed, int v, char *buf, size_t size);

/* Print a message as indented "field: value" lines (enums by short name,
 * *_at times as local time). */
void gc_text_msg(FILE *f, const ProtobufCMessage *m, int indent);

/* Today (YYYYMMDD, China Standard Time) and the wall clock in ms. */
int gc_today(void);
int64_t gc_now_ms(void);

#endif

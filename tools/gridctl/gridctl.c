/*
 * gridctl: the administrator's tool. Inspects the grid store (statistics,
 * records, history, duplicates, the change log, exports), manages the
 * device and grid registries, and backs up and verifies the store.
 *
 * Where it sits: admin -> store. It opens the LMDB store directly,
 * read-only for everything it reads, so it works beside a running broker
 * and when the broker is down; registry writes open it read-write (LMDB
 * serialises them with the broker's commits). With --admin, the reads the
 * broker's admin endpoint serves go through it instead (gc_source.c). See
 * docs/tools.md.
 *
 * main() only picks the subcommand: each lives in its own file (gc.h).
 */
#include "gc.h"
#include "gs_version.h"

#include <stdlib.h>
#include <string.h>

/* One subcommand. */
typedef struct s_cmd {
    const char *name;           /* as typed */
    gc_cmd_fn *fn;              /* runs it; returns the exit status */
    const char *summary;        /* one line for gridctl --help */
} s_cmd_t;

static const s_cmd_t s_cmds[] = {
    { "stats", gc_cmd_stats, "households, persons, rentals per level; coverage" },
    { "ls", gc_cmd_ls, "the records of a grid or community" },
    { "get", gc_cmd_get, "one record in full (masked)" },
    { "history", gc_cmd_history, "the change events of one record" },
    { "dups", gc_cmd_dups, "persons in two places, shared phones, crowded rentals" },
    { "incidents", gc_cmd_incidents, "open, overdue, closed incidents; 结案率, 按期结案率" },
    { "tail", gc_cmd_tail, "the change log; --follow for new events" },
    { "export", gc_cmd_export, "every record under a prefix as JSON lines or CSV" },
    { "devices", gc_cmd_devices,
      "the device registry: list, show, add, enrol, assign, rekey, revoke" },
    { "grids", gc_cmd_grids, "the grid registry: list, import" },
    { "backup", gc_cmd_backup, "hot, compacting copy of the store" },
    { "restore", gc_cmd_restore, "put a backup in place as the store (broker stopped)" },
    { "verify", gc_cmd_verify, "check every index against the records" },
    { "health", gc_cmd_health, "the store's figures and whether the broker answers" },
    { "ping", gc_cmd_ping, "whether the broker accepts a bundle's key, and what it may touch" },
    { "digest", gc_cmd_digest, "the digest of the records under a prefix, and of its children" },
    { "compare", gc_cmd_compare, "compare two stores by their digests; name what differs" },
    { NULL, NULL, NULL }
};

static void
s_help(FILE *f)
{
    fputs("Usage: gridctl [--store DIR] [--admin EP] [--json] [--reveal] COMMAND [ARGS]\n"
          "\n"
          "The gridsync admin tool. It reads the store directly and read-only, so it\n"
          "works whether gridsyncd runs or not; registry changes apply to a running\n"
          "broker at once. With --admin it reads through a running broker instead.\n"
          "\n"
          "Commands:\n",
          f);
    for (const s_cmd_t *c = s_cmds; c->name; c++)
        fprintf(f, "  %-9s %s\n", c->name, c->summary);
    fputs("\n"
          "Options (before or after the command):\n"
          "  --store DIR   the store directory (default $GRIDSYNC_STORE, else var/store)\n"
          "  --admin EP    read through the broker's admin endpoint EP (ipc://PATH, e.g.\n"
          "                ipc://var/store/admin.sock, or a socket forwarded from another\n"
          "                machine) instead of opening the store: stats, get, devices\n"
          "                list|show, grids list, digest and health; other commands\n"
          "                refuse (compare takes its two sources as arguments).\n"
          "                Output as from the store, except that get shows no commit\n"
          "                time (- in text, null in --json)\n"
          "  --json        machine output: one JSON document, or JSON lines where a\n"
          "                command says so\n"
          "  --reveal      show ID numbers, phones and restricted data unmasked; each use\n"
          "                is appended to STORE/audit.log (time, user, command)\n"
          "  --help        this text; gridctl COMMAND --help for a command\n"
          "  --version     print \"gridctl VERSION\" and exit (before the command)\n"
          "\n"
          "Exit status: 0 done; 1 a missing store, an unknown key or device, problems\n"
          "found, or a failure; 2 bad arguments. ping also exits 3 when the handshake\n"
          "is refused and 4 when the key may touch nothing (gridctl ping --help).\n"
          "compare exits 0 equal, 1 different, 2 on any error (gridctl compare --help).\n",
          f);
}

static const s_cmd_t *
s_cmd_find(const char *name)
{
    for (const s_cmd_t *c = s_cmds; c->name; c++)
        if (!strcmp(c->name, name))
            return c;
    return NULL;
}

int
main(int argc, char **argv)
{
    gc_ctx_t ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.argc = argc;
    ctx.argv = argv;
    ctx.out = stdout;
    const char *env = getenv("GRIDSYNC_STORE");
    ctx.store_dir = env && *env ? env : "var/store";

    /* global options before the command; the command's parser takes them
     * after it too */
    int i = 1, help = 0;
    static const gc_optspec_t none[] = { { NULL, 0 } };
    while (i < argc && argv[i][0] == '-') {
        if (!strcmp(argv[i], "--version")) {
            printf("gridctl %s\n", GS_VERSION);
            return GC_EXIT_OK;
        }
        if (!strcmp(argv[i], "--")) {
            i++;
            break;
        }
        /* --store and --admin take a value: hand the pair to the shared
         * parser */
        int n = ((!strcmp(argv[i], "--store") || !strcmp(argv[i], "--admin")) && i + 1 < argc)
                    ? 2 : 1;
        gc_args_t a;
        int rc = gc_args_parse(&ctx, n, argv + i, none, &a);
        if (rc)
            return rc;
        help |= a.help;
        i += n;
    }
    if (i >= argc) {
        s_help(help ? stdout : stderr);
        return help ? GC_EXIT_OK : GC_EXIT_USAGE;
    }
    const char *name = argv[i];
    if (!strcmp(name, "help")) {
        /* gridctl help [COMMAND] */
        if (i + 1 >= argc) {
            s_help(stdout);
            return GC_EXIT_OK;
        }
        name = argv[++i];
        help = 1;
    }
    const s_cmd_t *c = s_cmd_find(name);
    if (!c) {
        fprintf(stderr, "gridctl: unknown command '%.40s'\nTry 'gridctl --help'.\n", name);
        return GC_EXIT_USAGE;
    }
    ctx.cmd = c->name;
    if (help) {
        char *h[] = { (char *) "--help", NULL };
        return c->fn(&ctx, 1, h);
    }
    return c->fn(&ctx, argc - i - 1, argv + i + 1);
}

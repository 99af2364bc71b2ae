/*
 * gridfeed: the district subscriber.
 *
 * Where it sits: downstream of gridsyncd, where a district system would
 * be. It follows one or more grid-code prefixes through the client
 * library's subscriber (live feed, gap detection and repair from the sync
 * service), and writes every change event once, in order, as a JSON line
 * (gs_render.h) to stdout or appended to --output. With --category it
 * follows the incident topics of those categories in the prefixes instead
 * and writes only their incidents: a department's follow (分拨), which the
 * broker refuses on grid topics.
 *
 * Exactly once across restarts: lines are written in batches; after each
 * batch the output is fsynced and then the checkpoint (positions per
 * prefix) is written with the output's size in its "extra" field. On
 * restart the output is cut back to that size before following resumes, so
 * lines written after the last checkpoint (a crash between the two steps)
 * are dropped and then written again: nothing is lost or duplicated.
 *
 * Store lineage: when the broker's store is restored from a backup or
 * replaced, its seqs are handed out again for other events, and everything
 * written so far describes a store that no longer exists. The subscriber
 * reports that (GS_CLIENT_ELINEAGE); gridfeed says so on stderr and, by
 * default, stops with status 3 so that an operator re-baselines the
 * consumers; --on-restore rebaseline instead moves the output aside as
 * FILE.void-EPOCH and starts over from seq 0 into a fresh FILE.
 *
 * Silence: when no heartbeat (nor event) arrived for a followed prefix for
 * --heartbeat-warn ms, a warning goes to stderr, "no heartbeat for N s:
 * check enrolment (...)", again every --heartbeat-warn ms while it lasts;
 * following goes on (a broker that comes back is followed again). A
 * handshake the broker refuses ends the run: ZeroMQ does not try again.
 *
 * Exit status: 0 done (stop condition met, or SIGTERM/SIGINT after a last
 * checkpoint); 1 the feed or the output failed (including a refused
 * handshake); 2 bad arguments; 3 the broker's store was restored or
 * replaced (see above).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gs_client.h"
#include "gs_render.h"
#include "gs_version.h"

#define S_MAX_PREFIXES 64
#define S_POLL_MS 200           /* how often a quiet feed checks stop conditions */
#define S_EXIT_LINEAGE 3        /* the broker's store was restored or replaced */

/* Set by SIGTERM/SIGINT; also the client library's cancel flag, so a
 * signal ends its waits too (lock-free, so a handler may set it). */
static atomic_int s_stop;

static void
s_on_signal(int sig)
{
    (void) sig;
    atomic_store(&s_stop, 1);
}

static int64_t
s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Everything the command line sets. */
typedef struct s_args {
    const char *feed;               /* live feed endpoint */
    const char *sync;               /* upload/sync endpoint */
    const char *prefixes[S_MAX_PREFIXES];
    size_t n_prefixes;
    char *categories[S_MAX_PREFIXES]; /* --category, split at commas (malloc'd) */
    size_t n_categories;
    const char *checkpoint;         /* checkpoint file or NULL */
    const char *output;             /* output file or NULL for stdout */
    const char *keys;               /* CURVE key bundle or NULL */
    uint64_t since;                 /* start after this seq without a checkpoint */
    uint64_t until_seq;             /* stop once every event <= this is written (0 = no) */
    uint64_t count;                 /* stop after this many events (0 = no) */
    int64_t idle_exit_ms;           /* stop after this long without events (0 = no) */
    int64_t hb_warn_ms;             /* warn after this long without a heartbeat (0 = no) */
    uint64_t every;                 /* events per checkpoint */
    uint64_t crash_after;           /* testing: SIGKILL self after this many lines */
    int omit_restricted;            /* ask for events without Person.restricted */
    int reveal;                     /* do not mask ID numbers and phones */
    int quiet;                      /* no statistics at exit */
    int verbose;                    /* a stderr line when following starts and per checkpoint */
    int rebaseline;                 /* --on-restore rebaseline (else stop) */
} s_args_t;

static void
s_usage(FILE *out)
{
    fprintf(out,
        "usage: gridfeed --feed EP --upload EP --prefix P [--prefix P2 ...] [options]\n"
        "       gridfeed --keys FILE --prefix P [--prefix P2 ...] [options]\n"
        "       gridfeed --keys FILE --prefix P --category C[,C2...] [options]\n"
        "Follow grid-code prefixes and write each change event once, as a JSON line.\n"
        "With --category, follow only the incidents of those categories in the\n"
        "prefixes (a department's key may follow nothing else).\n"
        "\n"
        "  --feed EP            the broker's live feed endpoint (XPUB); default: the\n"
        "                       feed_endpoint line of --keys FILE\n"
        "  --upload EP          the broker's upload/sync endpoint (gap repair, catch-up);\n"
        "                       default: the upload_endpoint line of --keys FILE\n"
        "                       (--sync EP is the same option under its older name)\n"
        "  --prefix P           a grid-code prefix of 0, 2, 4, 6, 9, 12 or 15 digits\n"
        "                       (repeatable; no prefix may contain another)\n"
        "  --category C[,C2...] follow the incident topics of these categories (codes of\n"
        "                       the category table, e.g. 02) in every --prefix: only\n"
        "                       incidents of these categories are written (repeatable;\n"
        "                       categories x prefixes at most 64)\n"
        "  --checkpoint FILE    resume from here after a restart, and keep it current\n"
        "  --output FILE        append lines to FILE (default stdout); with --checkpoint,\n"
        "                       FILE is cut back to the checkpointed size on restart\n"
        "  --since SEQ          without a checkpoint, start after SEQ (default 0: all)\n"
        "  --until-seq N        exit once every event up to seq N has been written\n"
        "  --count N            exit after writing N events\n"
        "  --idle-exit MS       exit after MS milliseconds without an event\n"
        "  --heartbeat-warn MS  warn on stderr when no heartbeat arrived for a topic\n"
        "                       for MS milliseconds, and again every MS while it lasts;\n"
        "                       following goes on (default 5000, 0 = never)\n"
        "  --checkpoint-every N events per checkpoint (default 256; also when idle)\n"
        "  --on-restore WHAT    when the broker's store was restored or replaced: stop\n"
        "                       (default; exit status 3) or rebaseline (move --output\n"
        "                       aside as FILE.void-EPOCH, start over from seq 0)\n"
        "  --omit-restricted    ask for events without persons' restricted data\n"
        "  --reveal             write ID numbers and phones unmasked (logged to stderr)\n"
        "  --keys FILE          CURVE keys (server_public, public_key, secret_key): the\n"
        "                       enrolment bundle of gridctl devices enrol --bundle, whose\n"
        "                       endpoints serve when --feed or --upload is not given\n"
        "  --quiet              no statistics on stderr at exit\n"
        "  --verbose            a line on stderr when following starts, when every prefix\n"
        "                       has had a heartbeat (served), and at each checkpoint\n"
        "  --crash-after N      testing: kill itself (SIGKILL) after writing N lines,\n"
        "                       before checkpointing them\n"
        "  --help\n"
        "  --version            print \"gridfeed VERSION\" and exit\n"
        "\n"
        "Exit status: 0 done or stopped by SIGTERM/SIGINT, 1 feed or output failure\n"
        "(a refused handshake included), 2 bad arguments, 3 the broker's store was\n"
        "restored or replaced.\n");
}

static int
s_parse_u64(const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') {
        fprintf(stderr, "gridfeed: %s wants a whole number, not '%s'\n", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

static void
s_args_free(s_args_t *a)
{
    for (size_t i = 0; i < a->n_categories; i++)
        free(a->categories[i]);
    a->n_categories = 0;
}

static int
s_parse_args(int argc, char **argv, s_args_t *a)
{
    enum { O_FEED = 256, O_UPLOAD, O_PREFIX, O_CATEGORY, O_CHECKPOINT, O_OUTPUT, O_SINCE, O_UNTIL,
           O_COUNT, O_IDLE, O_EVERY, O_OMIT, O_REVEAL, O_KEYS, O_QUIET, O_VERBOSE, O_CRASH,
           O_HELP, O_RESTORE, O_HB_WARN, O_VERSION };
    static const struct option opts[] = {
        { "feed", required_argument, 0, O_FEED },
        { "upload", required_argument, 0, O_UPLOAD },
        { "sync", required_argument, 0, O_UPLOAD },
        { "prefix", required_argument, 0, O_PREFIX },
        { "category", required_argument, 0, O_CATEGORY },
        { "checkpoint", required_argument, 0, O_CHECKPOINT },
        { "output", required_argument, 0, O_OUTPUT },
        { "since", required_argument, 0, O_SINCE },
        { "until-seq", required_argument, 0, O_UNTIL },
        { "count", required_argument, 0, O_COUNT },
        { "idle-exit", required_argument, 0, O_IDLE },
        { "heartbeat-warn", required_argument, 0, O_HB_WARN },
        { "checkpoint-every", required_argument, 0, O_EVERY },
        { "omit-restricted", no_argument, 0, O_OMIT },
        { "reveal", no_argument, 0, O_REVEAL },
        { "keys", required_argument, 0, O_KEYS },
        { "quiet", no_argument, 0, O_QUIET },
        { "verbose", no_argument, 0, O_VERBOSE },
        { "crash-after", required_argument, 0, O_CRASH },
        { "help", no_argument, 0, O_HELP },
        { "version", no_argument, 0, O_VERSION },
        { "on-restore", required_argument, 0, O_RESTORE },
        { 0, 0, 0, 0 }
    };
    int c;
    uint64_t v;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case O_FEED: a->feed = optarg; break;
        case O_UPLOAD: a->sync = optarg; break;
        case O_PREFIX:
            if (a->n_prefixes == S_MAX_PREFIXES) {
                fprintf(stderr, "gridfeed: at most %d prefixes\n", S_MAX_PREFIXES);
                return -1;
            }
            a->prefixes[a->n_prefixes++] = optarg;
            break;
        case O_CHECKPOINT: a->checkpoint = optarg; break;
        case O_OUTPUT: a->output = optarg; break;
        case O_CATEGORY:
            for (const char *p = optarg;; p++) {
                size_t n = strcspn(p, ",");
                if (a->n_categories == S_MAX_PREFIXES) {
                    fprintf(stderr, "gridfeed: at most %d categories\n", S_MAX_PREFIXES);
                    return -1;
                }
                if (n == 0) {
                    fprintf(stderr, "gridfeed: --category wants codes separated by commas, "
                            "not '%s'\n", optarg);
                    return -1;
                }
                a->categories[a->n_categories] = strndup(p, n);
                if (!a->categories[a->n_categories++]) {
                    fprintf(stderr, "gridfeed: out of memory\n");
                    return -1;
                }
                p += n;
                if (!*p)
                    break;
            }
            break;
        case O_SINCE: rc = s_parse_u64("--since", optarg, &a->since); break;
        case O_UNTIL: rc = s_parse_u64("--until-seq", optarg, &a->until_seq); break;
        case O_COUNT: rc = s_parse_u64("--count", optarg, &a->count); break;
        case O_IDLE: rc = s_parse_u64("--idle-exit", optarg, &v);
            a->idle_exit_ms = (int64_t) v;
            break;
        case O_HB_WARN: rc = s_parse_u64("--heartbeat-warn", optarg, &v);
            if (!rc && v > 86400000) {
                fprintf(stderr, "gridfeed: --heartbeat-warn is at most 86400000 ms\n");
                rc = -1;
            }
            a->hb_warn_ms = (int64_t) v;
            break;
        case O_EVERY: rc = s_parse_u64("--checkpoint-every", optarg, &a->every);
            if (!rc && a->every == 0) {
                fprintf(stderr, "gridfeed: --checkpoint-every must be at least 1\n");
                rc = -1;
            }
            break;
        case O_OMIT: a->omit_restricted = 1; break;
        case O_REVEAL: a->reveal = 1; break;
        case O_KEYS: a->keys = optarg; break;
        case O_QUIET: a->quiet = 1; break;
        case O_VERBOSE: a->verbose = 1; break;
        case O_CRASH: rc = s_parse_u64("--crash-after", optarg, &a->crash_after); break;
        case O_HELP: s_usage(stdout); return 1;
        case O_VERSION: printf("gridfeed %s\n", GS_VERSION); return 1;
        case O_RESTORE:
            if (!strcmp(optarg, "stop") || !strcmp(optarg, "rebaseline")) {
                a->rebaseline = optarg[0] == 'r';
            } else {
                fprintf(stderr, "gridfeed: --on-restore wants 'stop' or 'rebaseline', not "
                        "'%s'\n", optarg);
                rc = -1;
            }
            break;
        default:
            fprintf(stderr, "gridfeed: unknown option or missing value: %s\n",
                    argv[optind - 1]);
            fprintf(stderr, "try 'gridfeed --help'\n");
            return -1;
        }
        if (rc)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "gridfeed: unexpected argument '%s'; try 'gridfeed --help'\n",
                argv[optind]);
        return -1;
    }
    /* without --keys the endpoints can come from nowhere else; with it, main
     * reads the missing ones from the bundle */
    if ((!a->keys && (!a->feed || !a->sync)) || a->n_prefixes == 0) {
        fprintf(stderr, "gridfeed: --feed and --upload (or --keys with a bundle that names "
                "them) and at least one --prefix are required; try 'gridfeed --help'\n");
        return -1;
    }
    if (a->rebaseline && !a->output) {
        /* on stdout the old lines cannot be set apart from the new ones */
        fprintf(stderr, "gridfeed: --on-restore rebaseline needs --output FILE, so that the "
                "lines of the old store can be moved aside\n");
        return -1;
    }
    return 0;
}

/* The open output and what has been written. */
typedef struct s_out {
    int fd;                         /* output file, or 1 */
    int is_file;                    /* --output given */
    gs_wbuf_t buf;                  /* lines not yet written */
    uint64_t pending;               /* events in buf */
    uint64_t written;               /* events written this run */
    uint64_t checkpointed;          /* written, as of the last checkpoint */
} s_out_t;

static int
s_write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t) w;
    }
    return 0;
}

/* Write the pending lines, make them durable, then checkpoint: the order
 * that makes a restart safe (see the top of the file). Without force,
 * nothing happens when nothing was delivered since the last checkpoint. */
static int
s_commit(s_out_t *o, gs_sub_t *sub, const s_args_t *a, int force)
{
    if (!force && o->pending == 0 && o->written == o->checkpointed)
        return 0;
    if (o->pending || o->buf.len) {
        if (s_write_all(o->fd, (const char *) o->buf.data, o->buf.len)) {
            fprintf(stderr, "gridfeed: cannot write %s: %s\n",
                    o->is_file ? a->output : "stdout", strerror(errno));
            return -1;
        }
        /* pipes and terminals cannot be synced; files must be */
        if (fsync(o->fd) && errno != EINVAL && errno != EROFS && errno != ENOTSUP) {
            fprintf(stderr, "gridfeed: cannot sync %s: %s\n",
                    o->is_file ? a->output : "stdout", strerror(errno));
            return -1;
        }
        o->written += o->pending;
        o->pending = 0;
        gs_wbuf_reset(&o->buf);
        if (a->crash_after && o->written >= a->crash_after)
            raise(SIGKILL); /* testing: die between the write and the checkpoint */
    }
    if (!a->checkpoint)
        return 0;
    char extra[64];
    const char *ex = NULL;
    if (o->is_file) {
        struct stat st;
        if (fstat(o->fd, &st)) {
            fprintf(stderr, "gridfeed: cannot stat %s: %s\n", a->output, strerror(errno));
            return -1;
        }
        snprintf(extra, sizeof extra, "output_size=%lld", (long long) st.st_size);
        ex = extra;
    }
    int rc = gs_sub_checkpoint(sub, ex);
    o->checkpointed = o->written;
    if (rc) {
        fprintf(stderr, "gridfeed: cannot write checkpoint %s: %s\n", a->checkpoint,
                gs_client_strerror(rc));
        return -1;
    }
    if (a->verbose)
        fprintf(stderr, "gridfeed: checkpoint: %" PRIu64 " events written, \"%s\" at seq %"
                PRIu64 "%s%s\n", o->written, gs_sub_topic(sub, 0), gs_sub_position(sub, 0),
                ex ? ", " : "", ex ? ex : "");
    return 0;
}

/* Has every event with seq <= until been written? Positions at or past it
 * answer without asking; otherwise (ask set) the sync service says
 * whether any event of the prefix lies between the position and until. */
static int
s_until_reached(gs_sub_t *sub, gs_client_t *cli, const s_args_t *a, int ask)
{
    for (size_t i = 0; i < gs_sub_count(sub); i++) {
        uint64_t since = gs_sub_position(sub, i);
        if (since >= a->until_seq)
            continue;
        if (!ask)
            return 0;
        for (int round = 0;; round++) {
            Gridsync__V1__SyncResponse *r = NULL;
            gs_client_error_t err;
            const char *p[1] = { gs_sub_prefix(sub, i) };
            if (gs_client_sync(cli, p, 1, since, 1, 1, &r, &err))
                return 0; /* ask again at the next quiet moment */
            /* an event of another category (or kind) of the prefix is
             * stepped over: next_seq is its seq */
            int wanted = r->n_events > 0 && gs_sub_wants(sub, i, r->events[0]);
            int more = wanted && r->events[0]->seq <= a->until_seq;
            int beyond = r->n_events > 0 && r->events[0]->seq > a->until_seq;
            int none = r->n_events == 0 && r->next_seq >= r->head_seq;
            int early = r->head_seq < a->until_seq;
            uint64_t next = r->next_seq;
            gridsync__v1__sync_response__free_unpacked(r, NULL);
            if (more || early)
                return 0;
            if (beyond || none)
                break;
            if (next <= since || round > 1000)
                return 0;
            since = next; /* the broker stopped scanning early; go on */
        }
    }
    return 1;
}

/* Cut the output back to the checkpointed size, or record the size a
 * fresh start begins at. Returns 0, or -1 with a message. */
static int
s_resume(s_out_t *o, gs_sub_t *sub, const s_args_t *a, int had_checkpoint)
{
    if (!a->checkpoint || !o->is_file)
        return 0;
    struct stat st;
    if (fstat(o->fd, &st)) {
        fprintf(stderr, "gridfeed: cannot stat %s: %s\n", a->output, strerror(errno));
        return -1;
    }
    const char *extra = gs_sub_checkpoint_extra(sub);
    long long size = -1;
    if (had_checkpoint && extra && sscanf(extra, "output_size=%lld", &size) == 1) {
        if (size > st.st_size) {
            fprintf(stderr, "gridfeed: %s has %lld bytes but checkpoint %s says %lld were "
                    "written: the output was changed behind gridfeed's back; restore it "
                    "or remove the checkpoint to start again\n",
                    a->output, (long long) st.st_size, a->checkpoint, size);
            return -1;
        }
        if (size < st.st_size) {
            /* lines written after the last checkpoint: they come again */
            if (ftruncate(o->fd, (off_t) size) || fsync(o->fd)) {
                fprintf(stderr, "gridfeed: cannot truncate %s: %s\n", a->output,
                        strerror(errno));
                return -1;
            }
            if (!a->quiet)
                fprintf(stderr, "gridfeed: resuming: dropped %lld bytes written after the "
                        "last checkpoint\n", (long long) (st.st_size - size));
        }
        return 0;
    }
    if (had_checkpoint)
        fprintf(stderr, "gridfeed: checkpoint %s holds no output size; appending to %s "
                "without cutting it back\n", a->checkpoint, a->output);
    /* first run: checkpoint the starting point, so a crash before the first
     * batch is cut back to here */
    return s_commit(o, sub, a, 1);
}

/* Move the output aside as FILE.void-EPOCH (FILE.void-EPOCH.N when taken)
 * and open a fresh, empty FILE. An empty output stays where it is. */
static int
s_output_void(s_out_t *o, const s_args_t *a, uint64_t epoch, char *moved, size_t cap)
{
    moved[0] = 0;
    struct stat st;
    if (fstat(o->fd, &st)) {
        fprintf(stderr, "gridfeed: cannot stat %s: %s\n", a->output, strerror(errno));
        return -1;
    }
    if (st.st_size == 0)
        return 0;
    for (int n = 0; n < 1000; n++) {
        if (n == 0)
            snprintf(moved, cap, "%s.void-%016" PRIx64, a->output, epoch);
        else
            snprintf(moved, cap, "%s.void-%016" PRIx64 ".%d", a->output, epoch, n);
        if (access(moved, F_OK) != 0)
            break;
    }
    if (access(moved, F_OK) == 0 || rename(a->output, moved)) {
        fprintf(stderr, "gridfeed: cannot move %s aside to %s: %s\n", a->output, moved,
                access(moved, F_OK) == 0 ? "it exists" : strerror(errno));
        return -1;
    }
    close(o->fd);
    o->fd = open(a->output, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
    if (o->fd < 0) {
        fprintf(stderr, "gridfeed: cannot open %s: %s\n", a->output, strerror(errno));
        return -1;
    }
    /* make the rename and the new file durable before the checkpoint names them */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", a->output);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = 0;
    else
        snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd)) {
        fprintf(stderr, "gridfeed: cannot sync directory %s: %s\n", dir, strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return -1;
    }
    close(dfd);
    return 0;
}

/* The broker's store was restored or replaced (GS_CLIENT_ELINEAGE): say so
 * loudly. By default stop and tell the operator what to do; with
 * --on-restore rebaseline move the output aside and start over from seq 0
 * into a fresh one. Returns 0 when following goes on, else the exit status. */
static int
s_on_lineage(s_out_t *o, gs_sub_t *sub, const s_args_t *a)
{
    gs_sub_lineage_t l;
    gs_sub_lineage(sub, &l);
    fprintf(stderr, "gridfeed: THE BROKER'S STORE WAS RESTORED OR REPLACED: %s\n", l.message);
    if (!a->rebaseline) {
        char rm[4200] = "";
        if (a->checkpoint)
            snprintf(rm, sizeof rm, "remove the checkpoint %s, ", a->checkpoint);
        fprintf(stderr, "gridfeed: stopped: every event written so far belongs to a store that "
                "no longer exists, and the broker hands out those seqs again for other "
                "events. To re-baseline: tell the consumers of %s that it is void, move it "
                "aside, %sand start gridfeed again (it then takes everything from seq 0); "
                "or run with --on-restore rebaseline, which does this\n",
                a->output ? a->output : "what it wrote to stdout", rm);
        return S_EXIT_LINEAGE;
    }
    /* not yet written lines are the old store's too */
    gs_wbuf_reset(&o->buf);
    o->pending = 0;
    char moved[4200];
    if (s_output_void(o, a, l.epoch, moved, sizeof moved))
        return 1;
    int rc = gs_sub_rebaseline(sub);
    if (rc == GS_CLIENT_ELINEAGE)
        return s_on_lineage(o, sub, a); /* restored once more meanwhile */
    if (rc) {
        fprintf(stderr, "gridfeed: cannot start over: %s\n", gs_client_strerror(rc));
        return 1;
    }
    o->written = o->checkpointed = 0;
    if (s_commit(o, sub, a, 1))
        return 1;
    fprintf(stderr, "gridfeed: re-baselined: %s%s; following store epoch %016" PRIx64
            " from seq 0 into a fresh %s\n", moved[0] ? "the old lines are void, kept in " :
            "the output was empty", moved, gs_sub_epoch(sub), a->output);
    return 0;
}

static void
s_stats(gs_sub_t *sub, const s_out_t *o, const s_args_t *a)
{
    gs_sub_stats_t st;
    gs_sub_stats(sub, &st);
    fprintf(stderr,
            "gridfeed: %" PRIu64 " events written (%" PRIu64 " live, %" PRIu64
            " pulled by sync); %" PRIu64 " gaps detected and repaired, %" PRIu64
            " duplicates dropped, %" PRIu64 " heartbeats\n",
            o->written, st.live, st.pulled, st.gaps, st.duplicates, st.heartbeats);
    for (size_t i = 0; i < gs_sub_count(sub); i++)
        fprintf(stderr, "gridfeed: %s \"%s\" at seq %" PRIu64 " (broker head %" PRIu64 ")\n",
                a->n_categories ? "topic" : "prefix", gs_sub_topic(sub, i),
                gs_sub_position(sub, i), gs_sub_head(sub));
}

int
main(int argc, char **argv)
{
    s_args_t a;
    memset(&a, 0, sizeof a);
    a.every = 256;
    a.hb_warn_ms = 5000; /* five heartbeats at the broker's default 1 s */
    int prc = s_parse_args(argc, argv, &a);
    if (prc) {
        s_args_free(&a);
        return prc > 0 ? 0 : 2;
    }

    /* from the start, so a SIGTERM during the catch-up still ends cleanly */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    gs_client_error_t cerr = { 0, "" };
    gs_sub_opts_t so;
    gs_sub_opts_init(&so);
    so.omit_restricted = a.omit_restricted;
    so.categories = (const char *const *) a.categories;
    so.n_categories = a.n_categories;
    so.cancel = &s_stop;
    so.err = &cerr;
    gs_client_opts_t co;
    gs_client_opts_init(&co);
    co.cancel = &s_stop;
    gs_bundle_info_t bundle;
    memset(&bundle, 0, sizeof bundle);
    if (a.keys) {
        if (gs_curve_keys_load(&so.curve, a.keys) || gs_bundle_info_load(&bundle, a.keys)) {
            fprintf(stderr, "gridfeed: cannot read CURVE keys from %s\n", a.keys);
            s_args_free(&a);
            return 2;
        }
        co.curve = so.curve;
        /* the bundle names the broker it was made for: nothing typed twice */
        if (!a.feed && bundle.feed_endpoint[0])
            a.feed = bundle.feed_endpoint;
        if (!a.sync && bundle.upload_endpoint[0])
            a.sync = bundle.upload_endpoint;
        if (!a.feed || !a.sync) {
            fprintf(stderr, "gridfeed: %s names no %s; give %s\n", a.keys,
                    !a.feed ? "feed_endpoint" : "upload_endpoint",
                    !a.feed ? "--feed EP" : "--upload EP");
            s_args_free(&a);
            return 2;
        }
    }
    if (a.reveal)
        fprintf(stderr, "gridfeed: --reveal: ID numbers and phones are written unmasked "
                "(prefixes:%s%s)\n", a.prefixes[0], a.n_prefixes > 1 ? " ..." : "");

    s_out_t o;
    memset(&o, 0, sizeof o);
    o.fd = STDOUT_FILENO;
    if (a.output) {
        o.fd = open(a.output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (o.fd < 0) {
            fprintf(stderr, "gridfeed: cannot open %s: %s\n", a.output, strerror(errno));
            s_args_free(&a);
            return 2;
        }
        o.is_file = 1;
    }
    int had_checkpoint = a.checkpoint && access(a.checkpoint, F_OK) == 0;
    int err = 0;
    gs_sub_t *sub = gs_sub_new(a.feed, a.sync, a.prefixes, a.n_prefixes, a.checkpoint,
                               a.since, &so, &err);
    if (!sub) {
        if (o.is_file)
            close(o.fd);
        if (err == GS_CLIENT_ECANCELLED) {
            fprintf(stderr, "gridfeed: interrupted before following began\n");
            return 0;
        }
        char text[512];
        fprintf(stderr, "gridfeed: cannot follow %s via %s: %s\n", a.feed, a.sync,
                err == GS_CLIENT_EINVAL ? "bad prefix (level boundary: 0, 2, 4, 6, 9, 12 "
                                          "or 15 digits; none inside another) or category "
                                          "(1 to 8 letters or digits, each once; at most 64 "
                                          "categories x prefixes)"
                                        : gs_client_errtext(err, &cerr, text, sizeof text));
        s_args_free(&a);
        return err == GS_CLIENT_EINVAL ? 2 : 1;
    }
    gs_client_t *cli = a.until_seq ? gs_client_new(a.sync, &co) : NULL;
    int rc = 0;
    if (gs_sub_lineage(sub, NULL))
        /* found in the catch-up, before the output is cut back to the
         * checkpoint: that output may already have been moved aside */
        rc = s_on_lineage(&o, sub, &a);
    else if (s_resume(&o, sub, &a, had_checkpoint))
        rc = 1;
    if (rc == 0 && a.until_seq && !cli)
        rc = 1;

    if (a.verbose && rc == 0)
        fprintf(stderr, "gridfeed: following %zu %s from seq %" PRIu64 "\n",
                gs_sub_count(sub), a.n_categories ? "incident topics" : "prefixes",
                gs_sub_position(sub, 0));
    int64_t last_event = s_mono_ms();
    int served = 0;                 /* --verbose said every topic is served */
    if (rc == 0 && a.until_seq && s_until_reached(sub, cli, &a, 1))
        s_stop = 1; /* already there: nothing to wait for */
    while (rc == 0 && !s_stop) {
        if (a.count && o.written + o.pending >= a.count)
            break;
        Gridsync__V1__ChangeEvent *ev = NULL;
        int r = gs_sub_next(sub, S_POLL_MS, &ev);
        if (r == GS_CLIENT_ECANCELLED)
            break; /* a signal: checkpoint below, exit 0 */
        if (r == GS_CLIENT_ELINEAGE) {
            rc = s_on_lineage(&o, sub, &a);
            continue;
        }
        if (r < 0) {
            char text[512];
            fprintf(stderr, "gridfeed: feed failed: %s\n",
                    gs_client_errtext(r, &cerr, text, sizeof text));
            rc = 1;
            break;
        }
        if (a.verbose && !served && gs_sub_served(sub)) {
            served = 1;
            fprintf(stderr, "gridfeed: served: a heartbeat arrived for every %s\n",
                    a.n_categories ? "incident topic" : "prefix");
        }
        char warning[256];
        if (gs_sub_silence(sub, a.hb_warn_ms, warning, sizeof warning))
            fprintf(stderr, "gridfeed: %s\n", warning);
        if (r == 1) {
            /* quiet: make what we have durable, then see if we are done */
            if (o.pending && s_commit(&o, sub, &a, 0)) {
                rc = 1;
                break;
            }
            if (a.until_seq && s_until_reached(sub, cli, &a, 1))
                break;
            if (a.idle_exit_ms && s_mono_ms() - last_event >= a.idle_exit_ms)
                break;
            continue;
        }
        last_event = s_mono_ms();
        gs_json_t jw;
        gs_json_init_buf(&jw, &o.buf);
        gs_json_event(&jw, ev, a.reveal);
        int jr = gs_json_failed(&jw);
        gridsync__v1__change_event__free_unpacked(ev, NULL);
        if (jr) {
            fprintf(stderr, "gridfeed: out of memory\n");
            rc = 1;
            break;
        }
        o.pending++;
        if (o.pending >= a.every && s_commit(&o, sub, &a, 0)) {
            rc = 1;
            break;
        }
        if (a.until_seq && s_until_reached(sub, cli, &a, 0))
            break;
    }
    /* whatever was delivered is written and checkpointed, even on failure */
    if (s_commit(&o, sub, &a, 0))
        rc = 1;
    if (!a.quiet)
        s_stats(sub, &o, &a);
    gs_wbuf_deinit(&o.buf);
    gs_client_destroy(&cli);
    gs_sub_destroy(&sub);
    if (o.is_file)
        close(o.fd);
    s_args_free(&a);
    return rc;
}

/*
 * gridsim: the collector fleet simulator and load generator.
 *
 * Where it sits: in front of gridsyncd's upload endpoint, where the
 * handhelds would be. It generates the seed district (gs_gen), lets
 * --devices threads play the grids' devices (each thread with its own
 * client and socket, one grid after another), sends each grid's day as
 * planned by gs_sim (offline bursts, follow-ups, a second device's
 * conflicting edits, retransmissions, lost acks, invalid records), and
 * checks every ack against the exact answer a correct broker gives. A
 * wrong dedup answer is an error, printed, and makes the exit status 1.
 *
 * Output: a progress bar on a terminal, then a summary (records/s,
 * persons/s, ack latency percentiles, counts by result, noise injected,
 * expectation errors); --json prints the summary as one JSON object.
 *
 * Security: the default broker runs CURVE; --keys FILE reads an enrolment
 * bundle (`gridctl devices enrol --bundle`) for the keys and, unless
 * --endpoint is given, the upload endpoint. A refused handshake stops the
 * run with the client library's message.
 *
 * Exit status: 0 all acks as expected; 1 expectation or transport errors
 * (or interrupted by SIGINT/SIGTERM); 2 bad arguments or setup failure.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gs_client.h"
#include "gs_gen.h"
#include "gs_gen_incident.h"
#include "gs_incident.h"
#include "gs_sim.h"
#include "gs_validate.h"
#include "gs_version.h"

#define S_R(name) GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_##name
#define S_DETAILS_MAX 10        /* expectation errors printed in full */

/* What the whole run shares. */
typedef struct s_run {
    const gs_gen_t *gen;            /* the district */
    gs_sim_opts_t sim;              /* noise model */
    const char *endpoint;           /* broker upload endpoint */
    const char *device_id;          /* with --keys: the one device every upload names */
    gs_client_opts_t copts;         /* the devices' client options */
    gs_client_opts_t lossy_opts;    /* the client whose acks get lost */
    uint32_t n_grids;               /* grids to play */
    atomic_uint next_grid;          /* next grid to hand to a device thread */
    atomic_ullong progress;         /* district records acked so far */
    atomic_ullong records_sent;     /* records in acked uploads (for the bar) */
    atomic_ullong errors;           /* expectation errors */
    atomic_ullong transport_errors; /* uploads never answered, or refused */
    atomic_int stop;                /* set on a fatal error or a signal */
    atomic_int running;             /* device threads still running */
    pthread_mutex_t lock;           /* details_printed, done signalling */
    pthread_cond_t done;            /* signalled when a device thread ends */
    int details_printed;            /* expectation errors printed so far */
    int bar;                        /* progress bar on stderr */
} s_run_t;

/* One device thread and what it counted. */
typedef struct s_worker {
    s_run_t *run;
    pthread_t tid;
    uint64_t uploads;               /* acks received */
    uint64_t records;               /* records in them */
    uint64_t persons;               /* household members and tenants in them */
    uint64_t results[GS_RESULT_STATUSES]; /* results by ResultStatus */
    uint64_t retransmits;           /* uploads sent again after their ack */
    uint64_t lost_acks;             /* uploads whose first ack was dropped */
    uint32_t *lat_us;               /* ack latency of every upload, microseconds */
    size_t n_lat, cap_lat;          /* latencies held, and room for */
    uint64_t *seqs;                 /* seqs of first-time acks, to prove none twice */
    size_t n_seqs, cap_seqs;        /* seqs held, and room for */
    gs_sim_tally_t tally;           /* what the plans held */
    gs_client_stats_t cstats;       /* the client's resends and stale replies */
} s_worker_t;

static atomic_int s_signalled;
/* Ends every client wait at once: set by a signal, or when one device's
 * upload failed for good and the run stops. */
static atomic_int s_cancel;

static void
s_on_signal(int sig)
{
    (void) sig;
    atomic_store(&s_signalled, 1);
    atomic_store(&s_cancel, 1);
}

static int64_t
s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* 1234567 -> "1,234,567" */
static const char *
s_count(uint64_t v, char *buf, size_t size)
{
    char raw[32];
    int n = snprintf(raw, sizeof raw, "%llu", (unsigned long long) v);
    size_t o = 0;
    for (int i = 0; i < n && o + 2 < size; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = 0;
    return buf;
}

static int
s_push_u32(uint32_t **v, size_t *n, size_t *cap, uint32_t x)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 1024;
        uint32_t *nv = realloc(*v, nc * sizeof *nv);
        if (!nv)
            return -1;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = x;
    return 0;
}

static int
s_push_u64(uint64_t **v, size_t *n, size_t *cap, uint64_t x)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4096;
        uint64_t *nv = realloc(*v, nc * sizeof *nv);
        if (!nv)
            return -1;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = x;
    return 0;
}

/* Count an expectation error and print the first few in full. */
static void
s_error(s_run_t *run, uint64_t n, const char *detail)
{
    atomic_fetch_add(&run->errors, n);
    pthread_mutex_lock(&run->lock);
    if (run->details_printed < S_DETAILS_MAX) {
        fprintf(stderr, "%sgridsim: expectation error: %s\n", run->bar ? "\r\033[K" : "",
                detail);
        if (++run->details_printed == S_DETAILS_MAX)
            fprintf(stderr, "gridsim: (further expectation errors are counted, not shown)\n");
    }
    pthread_mutex_unlock(&run->lock);
}

/* An upload that got no usable answer: the run cannot go on. */
static void
s_fail(s_run_t *run, const char *upload_id, int rc, const gs_client_error_t *err)
{
    atomic_store(&run->stop, 1);
    if (rc == GS_CLIENT_ECANCELLED)
        return; /* a signal, or another device's failure, said it */
    atomic_fetch_add(&run->transport_errors, 1);
    atomic_store(&s_cancel, 1); /* the other devices need not wait out their timeouts */
    char text[512];
    pthread_mutex_lock(&run->lock);
    fprintf(stderr, "%sgridsim: upload %s to %s failed: %s\n", run->bar ? "\r\033[K" : "",
            upload_id, run->endpoint, gs_client_errtext(rc, err, text, sizeof text));
    pthread_mutex_unlock(&run->lock);
}

static void
s_tally_ack(s_worker_t *w, const gs_sim_upload_t *u, const Gridsync__V1__Ack *ack,
            int64_t lat_us)
{
    w->uploads++;
    w->records += ack->n_results;
    w->persons += u->persons;
    for (size_t i = 0; i < ack->n_results; i++)
        if ((unsigned) ack->results[i]->status < GS_RESULT_STATUSES)
            w->results[ack->results[i]->status]++;
    s_push_u32(&w->lat_us, &w->n_lat, &w->cap_lat,
               lat_us > UINT32_MAX ? UINT32_MAX : (uint32_t) lat_us);
    atomic_fetch_add(&w->run->records_sent, ack->n_results);
}

/* Send one planned upload with its wire noise and check the answers.
 * Returns 0, or -1 when the broker did not answer (the run stops). */
static int
s_send(s_worker_t *w, gs_client_t *cli, gs_client_t **lossy, const gs_sim_upload_t *u)
{
    s_run_t *run = w->run;
    gs_client_error_t err = { 0, "" };
    char detail[768];
    /* a CURVE broker takes uploads only in the name of the key's device */
    if (run->device_id)
        u->up->device_id = (char *) run->device_id;
    if (u->noise == GS_SIM_LOST_ACK) {
        /* The first attempt goes out on its own connection whose reply is
         * dropped unread (or never arrives before the connection is torn
         * down); the device then sends the same upload again. */
        if (!*lossy)
            *lossy = gs_client_new(run->endpoint, &run->lossy_opts);
        if (*lossy) {
            Gridsync__V1__Request req = GRIDSYNC__V1__REQUEST__INIT;
            req.body_case = GRIDSYNC__V1__REQUEST__BODY_UPLOAD;
            req.upload = u->up;
            Gridsync__V1__Reply *rep = NULL;
            gs_client_call(*lossy, &req, 0, &rep, NULL);
            if (rep)
                gridsync__v1__reply__free_unpacked(rep, NULL);
            w->lost_acks++;
        }
    }
    Gridsync__V1__Ack *ack = NULL;
    int64_t t0 = s_now_us();
    int rc = gs_client_upload(cli, u->up, &ack, &err);
    if (rc) {
        s_fail(run, u->up->upload_id, rc, &err);
        return -1;
    }
    s_tally_ack(w, u, ack, s_now_us() - t0);
    int bad = gs_sim_check(u, ack, detail, sizeof detail);
    if (bad)
        s_error(run, (uint64_t) bad, detail);
    for (size_t i = 0; i < ack->n_results; i++)
        if (ack->results[i]->seq)
            s_push_u64(&w->seqs, &w->n_seqs, &w->cap_seqs, ack->results[i]->seq);

    if (u->noise == GS_SIM_RETRANSMIT) {
        Gridsync__V1__Ack *again = NULL;
        t0 = s_now_us();
        rc = gs_client_upload(cli, u->up, &again, &err);
        if (rc) {
            gridsync__v1__ack__free_unpacked(ack, NULL);
            s_fail(run, u->up->upload_id, rc, &err);
            return -1;
        }
        s_tally_ack(w, u, again, s_now_us() - t0);
        if (gs_sim_ack_same(ack, again, detail, sizeof detail))
            s_error(run, 1, detail);
        w->retransmits++;
        gridsync__v1__ack__free_unpacked(again, NULL);
    }
    gridsync__v1__ack__free_unpacked(ack, NULL);
    atomic_fetch_add(&run->progress, u->fresh);
    return 0;
}

static void *
s_worker_main(void *arg)
{
    s_worker_t *w = arg;
    s_run_t *run = w->run;
    gs_client_t *cli = gs_client_new(run->endpoint, &run->copts);
    gs_client_t *lossy = NULL;
    gs_arena_t *a = gs_arena_new(1 << 20);
    if (!cli || !a) {
        gs_client_error_t err = { 0, "cannot create a client" };
        s_fail(run, "-", GS_CLIENT_EIO, &err);
    }
    while (cli && a && !atomic_load(&run->stop) && !atomic_load(&s_signalled)) {
        uint32_t g = atomic_fetch_add(&run->next_grid, 1);
        if (g >= run->n_grids)
            break;
        gs_arena_reset(a);
        gs_sim_upload_t *ups = NULL;
        size_t n = 0;
        if (gs_sim_plan_grid(&run->sim, run->gen, g, a, &ups, &n, &w->tally)) {
            gs_client_error_t err = { 0, "out of memory while planning" };
            s_fail(run, gs_gen_grid_code(run->gen, g), GS_CLIENT_ENOMEM, &err);
            break;
        }
        for (size_t i = 0; i < n && !atomic_load(&s_signalled); i++)
            if (s_send(w, cli, &lossy, &ups[i]))
                break;
    }
    if (cli)
        gs_client_stats(cli, &w->cstats);
    gs_client_destroy(&cli);
    gs_client_destroy(&lossy);
    gs_arena_destroy(&a);
    pthread_mutex_lock(&run->lock);
    atomic_fetch_sub(&run->running, 1);
    pthread_cond_signal(&run->done);
    pthread_mutex_unlock(&run->lock);
    return NULL;
}

static void
s_draw_bar(s_run_t *run, uint64_t total, int64_t t_start)
{
    uint64_t done = atomic_load(&run->progress);
    double secs = (double) (s_now_us() - t_start) / 1e6;
    double rate = secs > 0 ? (double) atomic_load(&run->records_sent) / secs : 0;
    int width = 30, fill = total ? (int) ((double) done / (double) total * width) : width;
    char bar[64], a[32], b[32], c[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r\033[K[%s] %3d%%  %s/%s records  %s rec/s  errors %llu", bar,
            total ? (int) (100 * done / total) : 100, s_count(done, a, sizeof a),
            s_count(total, b, sizeof b), s_count((uint64_t) rate, c, sizeof c),
            (unsigned long long) atomic_load(&run->errors));
    fflush(stderr);
}

static int
s_cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *) x, b = *(const uint32_t *) y;
    return a < b ? -1 : a > b;
}

static int
s_cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *) x, b = *(const uint64_t *) y;
    return a < b ? -1 : a > b;
}

static double
s_pct_ms(const uint32_t *sorted, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t i = (size_t) ceil(q * (double) n);
    if (i < 1)
        i = 1;
    if (i > n)
        i = n;
    return sorted[i - 1] / 1000.0;
}

static void
s_usage(FILE *out)
{
    fprintf(out,
        "usage: gridsim [options]\n"
        "Simulate the district's collector devices against gridsyncd and check every ack.\n"
        "\n"
        "District (the deterministic seed district of gs_gen):\n"
        "  --seed N               district and noise seed (default 1)\n"
        "  --district CODE        6-digit district code (default 440305)\n"
        "  --grids N              grids (default 1372)\n"
        "  --households N         households (default 139000)\n"
        "  --rental-buildings N   rental buildings (default 13055)\n"
        "  --organisations N      organisations (default 8232; 0 leaves them out)\n"
        "  --incidents            also each grid's incident reports (事件: its rental\n"
        "                         units' open hazards and other reports), last\n"
        "  --workflow             no fleet: take every incident the fleet reported (an\n"
        "                         earlier run with --incidents and the same district)\n"
        "                         through its planned steps, as the grids' devices, the\n"
        "                         centre (--centre ID, default centre-sim) and the\n"
        "                         departments (enrolled under their department codes);\n"
        "                         needs a broker in --insecure-dev mode\n"
        "  --scale F              multiply the four counts above by F (e.g. 0.02)\n"
        "Fleet:\n"
        "  --endpoint EP          broker upload endpoint (default: the bundle's with\n"
        "                         --keys, else tcp://127.0.0.1:7510)\n"
        "  --keys FILE            enrolment bundle (gridctl devices enrol --bundle) with\n"
        "                         the CURVE keys for a broker in CURVE mode (the\n"
        "                         default); without it gridsim speaks plaintext, which\n"
        "                         only a broker started with --insecure-dev accepts\n"
        "  --devices N            concurrent device threads, one socket each (default 8)\n"
        "  --batch N              records per upload (default 50)\n"
        "  --run-id ID            prefix of upload ids (default: new for every run);\n"
        "                         reusing one replays the same uploads, as a device\n"
        "                         retrying after a crash would\n"
        "  --timeout-ms N         wait for one ack (default 3000)\n"
        "  --retries N            resends after a timeout (default 5)\n"
        "  --lost-ack-ms N        how long a lost-ack attempt waits before dropping\n"
        "                         its connection (default 20)\n"
        "Noise, in percent (record kinds are exclusive; so are upload kinds):\n"
        "  --retransmit PCT       uploads sent again after their ack (default 3)\n"
        "  --lost-ack PCT         uploads whose first ack is lost (default 2)\n"
        "  --invalid PCT          records with a wrong ID (or USCC) check character\n"
        "                         (default 2)\n"
        "  --recollect PCT        records re-collected unchanged (default 5)\n"
        "  --new-id PCT           records collected again under a new id (default 2)\n"
        "  --conflict PCT         records edited by two devices from version 1 (default 1)\n"
        "  --no-noise             all of the above 0\n"
        "Cross-district duplicates (persons registered in two districts):\n"
        "  --twins-from D[:SEED]  plant persons of district D (6 digits, generated by\n"
        "                         gs_gen with SEED, default 1, which must differ from\n"
        "                         --seed, and this run's sizes) into households here:\n"
        "                         each picked household also lists the head of one\n"
        "                         household of D, a different one each; the city that\n"
        "                         replicates both finds exactly these (the summary\n"
        "                         says how many); D's own gridsim run must upload it\n"
        "  --twins PCT            households that get one (default 0.3)\n"
        "Output:\n"
        "  --json                 print the summary as JSON\n"
        "  --quiet                no progress bar\n"
        "  --help\n"
        "  --version              print \"gridsim VERSION\" and exit\n"
        "\n"
        "Exit status: 0 every ack as expected, 1 expectation or transport errors\n"
        "(a refused handshake, no reply within the timeouts) or interrupted by\n"
        "SIGINT/SIGTERM, 2 bad arguments or unreadable --keys.\n");
}

/* Parse an unsigned number within bounds, or complain. */
static int
s_parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi) {
        fprintf(stderr, "gridsim: %s wants a whole number in %llu..%llu, not '%s'\n", opt,
                (unsigned long long) lo, (unsigned long long) hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int
s_parse_pct(const char *opt, const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= 0 && v <= 100)) {
        fprintf(stderr, "gridsim: %s wants a percentage in 0..100, not '%s'\n", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Everything the command line sets. */
typedef struct s_args {
    gs_gen_opts_t gen;              /* district */
    double scale;                   /* multiplier of grids, households, buildings,
                                     * organisations */
    gs_sim_opts_t sim;              /* noise model */
    const char *endpoint;           /* broker, or NULL for the default */
    const char *keys;               /* enrolment bundle, or NULL */
    uint32_t devices;               /* threads */
    int timeout_ms;                 /* wait for one ack */
    int retries;                    /* resends after a timeout */
    int lost_ack_ms;                /* how long a lost-ack attempt waits */
    int json;                       /* summary as JSON */
    int quiet;                      /* no progress bar */
    char run_id[32];                /* default run id */
    int workflow;                   /* --workflow: play the incidents' steps */
    const char *centre;             /* --centre: the centre's registry id */
    const char *twins_from;         /* --twins-from DISTRICT[:SEED], or NULL */
    char twins_district[8];         /* its district */
    uint64_t twins_seed;            /* and seed */
} s_args_t;

static int
s_parse_args(int argc, char **argv, s_args_t *g)
{
    enum { O_SEED = 256, O_DISTRICT, O_GRIDS, O_HOUSEHOLDS, O_BUILDINGS, O_ORGS, O_SCALE,
           O_ENDPOINT, O_DEVICES, O_BATCH, O_RUN_ID, O_TIMEOUT, O_RETRIES, O_LOST_MS,
           O_RETX, O_LOST, O_INVALID, O_RECOLLECT, O_NEW_ID, O_CONFLICT, O_NO_NOISE,
           O_JSON, O_QUIET, O_HELP, O_KEYS, O_VERSION, O_INCIDENTS, O_WORKFLOW, O_CENTRE,
           O_TWINS_FROM, O_TWINS };
    static const struct option opts[] = {
        { "seed", required_argument, 0, O_SEED },
        { "twins-from", required_argument, 0, O_TWINS_FROM },
        { "twins", required_argument, 0, O_TWINS },
        { "district", required_argument, 0, O_DISTRICT },
        { "grids", required_argument, 0, O_GRIDS },
        { "households", required_argument, 0, O_HOUSEHOLDS },
        { "rental-buildings", required_argument, 0, O_BUILDINGS },
        { "organisations", required_argument, 0, O_ORGS },
        { "scale", required_argument, 0, O_SCALE },
        { "endpoint", required_argument, 0, O_ENDPOINT },
        { "keys", required_argument, 0, O_KEYS },
        { "devices", required_argument, 0, O_DEVICES },
        { "batch", required_argument, 0, O_BATCH },
        { "run-id", required_argument, 0, O_RUN_ID },
        { "timeout-ms", required_argument, 0, O_TIMEOUT },
        { "retries", required_argument, 0, O_RETRIES },
        { "lost-ack-ms", required_argument, 0, O_LOST_MS },
        { "retransmit", required_argument, 0, O_RETX },
        { "lost-ack", required_argument, 0, O_LOST },
        { "invalid", required_argument, 0, O_INVALID },
        { "recollect", required_argument, 0, O_RECOLLECT },
        { "new-id", required_argument, 0, O_NEW_ID },
        { "conflict", required_argument, 0, O_CONFLICT },
        { "no-noise", no_argument, 0, O_NO_NOISE },
        { "incidents", no_argument, 0, O_INCIDENTS },
        { "workflow", no_argument, 0, O_WORKFLOW },
        { "centre", required_argument, 0, O_CENTRE },
        { "json", no_argument, 0, O_JSON },
        { "quiet", no_argument, 0, O_QUIET },
        { "help", no_argument, 0, O_HELP },
        { "version", no_argument, 0, O_VERSION },
        { 0, 0, 0, 0 }
    };
    uint64_t v;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        const char *name = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
        int rc = 0;
        switch (c) {
        case O_SEED: rc = s_parse_u64("--seed", optarg, 0, UINT64_MAX, &g->gen.seed);
            g->sim.seed = g->gen.seed;
            break;
        case O_DISTRICT: g->gen.district = optarg; break;
        case O_GRIDS: rc = s_parse_u64("--grids", optarg, 1, 15000, &v);
            g->gen.grids = (uint32_t) v;
            break;
        case O_HOUSEHOLDS: rc = s_parse_u64("--households", optarg, 0, 50000000, &v);
            g->gen.households = (uint32_t) v;
            break;
        case O_ORGS: rc = s_parse_u64("--organisations", optarg, 0, 10000000, &v);
            g->gen.organisations = (uint32_t) v;
            break;
        case O_BUILDINGS: rc = s_parse_u64("--rental-buildings", optarg, 0, 10000000, &v);
            g->gen.rental_buildings = (uint32_t) v;
            break;
        case O_SCALE: {
            char *end;
            g->scale = strtod(optarg, &end);
            if (end == optarg || *end || !(g->scale > 0 && g->scale <= 100)) {
                fprintf(stderr, "gridsim: --scale wants a number in (0, 100], not '%s'\n",
                        optarg);
                rc = -1;
            }
            break;
        }
        case O_ENDPOINT: g->endpoint = optarg; break;
        case O_KEYS: g->keys = optarg; break;
        case O_DEVICES: rc = s_parse_u64("--devices", optarg, 1, 4096, &v);
            g->devices = (uint32_t) v;
            break;
        case O_BATCH: rc = s_parse_u64("--batch", optarg, 2, 1000, &v);
            g->sim.batch = (uint32_t) v;
            break;
        case O_RUN_ID: g->sim.run_id = optarg; break;
        case O_TIMEOUT: rc = s_parse_u64("--timeout-ms", optarg, 1, 3600000, &v);
            g->timeout_ms = (int) v;
            break;
        case O_RETRIES: rc = s_parse_u64("--retries", optarg, 0, 1000000, &v);
            g->retries = (int) v;
            break;
        case O_LOST_MS: rc = s_parse_u64("--lost-ack-ms", optarg, 1, 60000, &v);
            g->lost_ack_ms = (int) v;
            break;
        case O_RETX: rc = s_parse_pct("--retransmit", optarg, &g->sim.retransmit_pct); break;
        case O_LOST: rc = s_parse_pct("--lost-ack", optarg, &g->sim.lost_ack_pct); break;
        case O_INVALID: rc = s_parse_pct("--invalid", optarg, &g->sim.invalid_pct); break;
        case O_RECOLLECT: rc = s_parse_pct("--recollect", optarg, &g->sim.recollect_pct); break;
        case O_NEW_ID: rc = s_parse_pct("--new-id", optarg, &g->sim.new_id_pct); break;
        case O_CONFLICT: rc = s_parse_pct("--conflict", optarg, &g->sim.conflict_pct); break;
        case O_INCIDENTS: g->sim.incidents = 1; break;
        case O_WORKFLOW: g->workflow = g->sim.incidents = 1; break;
        case O_CENTRE: g->centre = optarg; break;
        case O_NO_NOISE:
            g->sim.retransmit_pct = g->sim.lost_ack_pct = g->sim.invalid_pct = 0;
            g->sim.recollect_pct = g->sim.new_id_pct = g->sim.conflict_pct = 0;
            break;
        case O_TWINS_FROM: g->twins_from = optarg; break;
        case O_TWINS: rc = s_parse_pct("--twins", optarg, &g->sim.twins_pct); break;
        case O_JSON: g->json = 1; break;
        case O_QUIET: g->quiet = 1; break;
        case O_HELP: s_usage(stdout); return 1;
        case O_VERSION: printf("gridsim %s\n", GS_VERSION); return 1;
        default:
            fprintf(stderr, "gridsim: unknown option or missing value: %s\n", name);
            fprintf(stderr, "try 'gridsim --help'\n");
            return -1;
        }
        if (rc)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "gridsim: unexpected argument '%s'; try 'gridsim --help'\n",
                argv[optind]);
        return -1;
    }
    if (g->twins_from) {
        const char *t = g->twins_from, *colon = strchr(t, ':');
        size_t dl = colon ? (size_t) (colon - t) : strlen(t);
        g->twins_seed = 1;
        if (dl != 6 || strspn(t, "0123456789") < 6 ||
            (colon && s_parse_u64("--twins-from SEED", colon + 1, 0, UINT64_MAX,
                                  &g->twins_seed))) {
            fprintf(stderr, "gridsim: --twins-from wants DISTRICT[:SEED] (6 digits, then a "
                    "whole number), not '%s'\n", t);
            return -1;
        }
        memcpy(g->twins_district, t, 6);
        g->twins_district[6] = 0;
        if (strcmp(g->twins_district, g->gen.district) == 0) {
            fprintf(stderr, "gridsim: --twins-from names this district (%s); name the "
                    "other district whose persons are registered here too\n", t);
            return -1;
        }
        if (g->twins_seed == g->gen.seed) {
            fprintf(stderr, "gridsim: --twins-from %s has this run's seed %llu: districts "
                    "generated under one seed share their migrant persons anyway, so the "
                    "planted duplicates could not be counted; give each district its own "
                    "seed\n", t, (unsigned long long) g->gen.seed);
            return -1;
        }
    }
    char msg[160];
    if (gs_sim_opts_check(&g->sim, msg, sizeof msg)) {
        fprintf(stderr, "gridsim: %s\n", msg);
        return -1;
    }
    return 0;
}

/* The run's totals, merged from the device threads. */
typedef struct s_total {
    uint64_t uploads, records, persons; /* acks, records and persons in them */
    uint64_t results[GS_RESULT_STATUSES]; /* results by ResultStatus */
    uint64_t retransmits, lost_acks; /* uploads with wire noise */
    uint64_t resends, stale;        /* the clients' Lazy Pirate resends, stale replies */
    uint64_t events, max_seq;       /* distinct new seqs, the highest */
    uint64_t dup_seqs;              /* seqs acked for more than one record */
    gs_sim_tally_t tally;           /* record-level noise planned */
    double p50, p90, p99, max_ms;   /* ack latency, milliseconds */
    double secs;                    /* wall time of the run */
    uint64_t incident_steps;        /* --workflow: incident steps acked */
} s_total_t;

/* --workflow: instead of the fleet, every grid's incidents are taken through the
 * steps gs_gen_incident planned, each by the principal whose step it is,
 * named by its registry id: the grid's device, the centre (centre_id) or
 * the department (its department code). One plaintext client: a broker in
 * --insecure-dev holds an enrolled id to its registry entry. Every step
 * must be ACCEPTED; the first may meet a report that a second device's
 * edit made version 2, and is then sent again on the version the CONFLICT
 * names. Steps acked go to t->incident_steps, anything else is an
 * expectation error. */
static void
s_play_workflow(s_run_t *run, const char *centre_id, s_total_t *t)
{
    gs_client_t *cli = gs_client_new(run->endpoint, &run->copts);
    gs_arena_t *a = gs_arena_new(0);
    if (!cli || !a) {
        s_error(run, 1, "--workflow: out of memory");
        gs_client_destroy(&cli);
        gs_arena_destroy(&a);
        return;
    }
    uint64_t n_up = 0;
    for (uint32_t grid = 0; grid < run->n_grids && !atomic_load(&run->stop); grid++) {
        gs_arena_reset(a);
        uint32_t n = gs_gen_grid_incident_count(run->gen, grid, a);
        char dev[GS_ID_MAX + 1];
        gs_sim_device_id(gs_gen_grid_code(run->gen, grid), 0, dev, sizeof dev);
        for (uint32_t k = 0; k < n && !atomic_load(&run->stop); k++) {
            gs_arena_reset(a);
            gs_gen_incident_t inc;
            if (gs_gen_incident(run->gen, grid, k, run->sim.now_ms, a, &inc)) {
                s_error(run, 1, "--workflow: an incident could not be made");
                continue;
            }
            Gridsync__V1__Incident *in = inc.report->incident;
            Gridsync__V1__IncidentTransition note = GRIDSYNC__V1__INCIDENT_TRANSITION__INIT;
            Gridsync__V1__IncidentTransition *notes[1] = { &note };
            uint64_t base = 1;
            for (size_t i = 0; i < inc.n_steps && !atomic_load(&run->stop); i++) {
                const gs_gen_inc_step_t *s = &inc.steps[i];
                in->status = (Gridsync__V1__IncidentStatus) s->status;
                in->department = (char *) (s->department ? s->department : "");
                note.to = in->status;
                note.note = (char *) s->note;
                in->history = notes;
                in->n_history = 1;
                const char *by =
                    s->role == GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_CENTRE ? centre_id
                    : s->role == GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEPARTMENT
                        ? s->department
                        : dev;
                int ok = 0;
                for (int attempt = 0; attempt < 2; attempt++) {
                    in->meta->base_version = base;
                    char uid[48];
                    snprintf(uid, sizeof uid, "%s-w%llu", run->sim.run_id,
                             (unsigned long long) ++n_up);
                    Gridsync__V1__Record *rec = inc.report;
                    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
                    up.device_id = (char *) by;
                    up.upload_id = uid;
                    up.records = &rec;
                    up.n_records = 1;
                    Gridsync__V1__Ack *ack = NULL;
                    gs_client_error_t err;
                    int rc = gs_client_upload(cli, &up, &ack, &err);
                    if (rc) {
                        s_fail(run, uid, rc, &err);
                        break;
                    }
                    const Gridsync__V1__RecordResult *r = ack->n_results ? ack->results[0] : NULL;
                    int status = r ? (int) r->status : 0;
                    uint64_t version = r ? r->version : 0;
                    if (status == S_R(CONFLICT) && i == 0 && attempt == 0) {
                        base = version;     /* the report was edited: step on from there */
                        gridsync__v1__ack__free_unpacked(ack, NULL);
                        continue;
                    }
                    if (status == S_R(ACCEPTED)) {
                        base = version;
                        t->incident_steps++;
                        ok = 1;
                    } else {
                        char detail[320];
                        snprintf(detail, sizeof detail, "incident %s, step to %s by %s: %s %s",
                                 in->incident_id, gs_incident_status_name(s->status), by,
                                 gs_sim_status_name(status), r && r->message ? r->message : "");
                        s_error(run, 1, detail);
                    }
                    gridsync__v1__ack__free_unpacked(ack, NULL);
                    break;
                }
                if (!ok)
                    break;      /* the rest of this plan cannot follow */
            }
        }
    }
    gs_client_destroy(&cli);
    gs_arena_destroy(&a);
}

static void
s_print_json(const s_args_t *g, const gs_gen_t *gen, const s_total_t *t, uint64_t errors,
             uint64_t transport, int interrupted)
{
    printf("{\"seed\":%llu,\"district\":\"%s\",\"run_id\":\"%s\",\"devices\":%u,"
           "\"grids\":%u,\"households\":%u,\"rentals\":%u,\"organisations\":%u,",
           (unsigned long long) g->gen.seed, g->gen.district, g->sim.run_id, g->devices,
           gs_gen_grid_count(gen), gs_gen_household_count(gen), gs_gen_rental_count(gen),
           gs_gen_org_count(gen));
    printf("\"uploads\":%llu,\"records_sent\":%llu,\"persons_sent\":%llu,"
           "\"elapsed_s\":%.3f,\"records_per_s\":%.1f,\"persons_per_s\":%.1f,",
           (unsigned long long) t->uploads, (unsigned long long) t->records,
           (unsigned long long) t->persons, t->secs,
           t->secs > 0 ? (double) t->records / t->secs : 0,
           t->secs > 0 ? (double) t->persons / t->secs : 0);
    printf("\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f},",
           t->p50, t->p90, t->p99, t->max_ms);
    printf("\"results\":{\"accepted\":%llu,\"unchanged\":%llu,\"merged\":%llu,"
           "\"conflict\":%llu,\"rejected\":%llu},",
           (unsigned long long) t->results[S_R(ACCEPTED)],
           (unsigned long long) t->results[S_R(UNCHANGED)],
           (unsigned long long) t->results[S_R(MERGED)],
           (unsigned long long) t->results[S_R(CONFLICT)],
           (unsigned long long) t->results[S_R(REJECTED)]);
    printf("\"noise\":{\"retransmissions\":%llu,\"lost_acks\":%llu,\"invalid\":%llu,"
           "\"recollections\":%llu,\"new_ids\":%llu,\"conflicts\":%llu},",
           (unsigned long long) t->retransmits, (unsigned long long) t->lost_acks,
           (unsigned long long) t->tally.by_noise[GS_SIM_INVALID],
           (unsigned long long) t->tally.by_noise[GS_SIM_RECOLLECT],
           (unsigned long long) t->tally.by_noise[GS_SIM_NEW_ID],
           (unsigned long long) t->tally.by_noise[GS_SIM_CONFLICT]);
    if (g->twins_from)
        printf("\"twins\":{\"from\":\"%s\",\"seed\":%llu,\"planted\":%llu},",
               g->twins_district, (unsigned long long) g->twins_seed,
               (unsigned long long) t->tally.twins);
    printf("\"events\":%llu,\"max_seq\":%llu,\"client_resends\":%llu,"
           "\"stale_replies\":%llu,\"expectation_errors\":%llu,\"transport_errors\":%llu,"
           "\"incident_steps\":%llu,\"interrupted\":%s}\n",
           (unsigned long long) t->events, (unsigned long long) t->max_seq,
           (unsigned long long) t->resends, (unsigned long long) t->stale,
           (unsigned long long) errors, (unsigned long long) transport,
           (unsigned long long) t->incident_steps, interrupted ? "true" : "false");
}

static void
s_print_human(const s_args_t *g, const gs_gen_t *gen, const s_total_t *t, uint64_t errors,
              uint64_t transport, int interrupted)
{
    char a[32], b[32], c[32], d[32], e[32];
    printf("gridsim: seed %llu, district %s: %s grids, %s households, %s rental units, "
           "%s organisations\n",
           (unsigned long long) g->gen.seed, g->gen.district,
           s_count(gs_gen_grid_count(gen), a, sizeof a),
           s_count(gs_gen_household_count(gen), b, sizeof b),
           s_count(gs_gen_rental_count(gen), c, sizeof c),
           s_count(gs_gen_org_count(gen), d, sizeof d));
    printf("  devices          %u at a time, upload ids %s-<grid>-<n>\n", g->devices,
           g->sim.run_id);
    printf("  uploads          %s acked (%s retransmitted, %s after a lost ack)\n",
           s_count(t->uploads, a, sizeof a), s_count(t->retransmits, b, sizeof b),
           s_count(t->lost_acks, c, sizeof c));
    printf("  records sent     %s in %.1f s: %s records/s, %s persons/s\n",
           s_count(t->records, a, sizeof a), t->secs,
           s_count((uint64_t) (t->secs > 0 ? (double) t->records / t->secs : 0), b, sizeof b),
           s_count((uint64_t) (t->secs > 0 ? (double) t->persons / t->secs : 0), c, sizeof c));
    printf("  results          accepted %s, unchanged %s, merged %s, conflict %s, rejected %s\n",
           s_count(t->results[S_R(ACCEPTED)], a, sizeof a),
           s_count(t->results[S_R(UNCHANGED)], b, sizeof b),
           s_count(t->results[S_R(MERGED)], c, sizeof c),
           s_count(t->results[S_R(CONFLICT)], d, sizeof d),
           s_count(t->results[S_R(REJECTED)], e, sizeof e));
    printf("  noise (records)  invalid %s, re-collected %s, new id %s, conflicting edits %s\n",
           s_count(t->tally.by_noise[GS_SIM_INVALID], a, sizeof a),
           s_count(t->tally.by_noise[GS_SIM_RECOLLECT], b, sizeof b),
           s_count(t->tally.by_noise[GS_SIM_NEW_ID], c, sizeof c),
           s_count(t->tally.by_noise[GS_SIM_CONFLICT], d, sizeof d));
    if (g->twins_from)
        printf("  twins            %s persons of district %s (seed %llu) also listed here\n",
               s_count(t->tally.twins, a, sizeof a), g->twins_district,
               (unsigned long long) g->twins_seed);
    printf("  ack latency      p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n",
           t->p50, t->p90, t->p99, t->max_ms);
    printf("  events           %s new change events (highest seq %llu)%s\n",
           s_count(t->events, a, sizeof a), (unsigned long long) t->max_seq,
           t->dup_seqs ? ", SOME SEQS ACKED TWICE" : ", no seq acked twice");
    printf("  client           %s resends after timeouts, %s stale replies\n",
           s_count(t->resends, a, sizeof a), s_count(t->stale, b, sizeof b));
    if (t->incident_steps)
        printf("  incident steps   %llu (the workflow played)\n",
               (unsigned long long) t->incident_steps);
    printf("  expectation errors %llu%s%s\n", (unsigned long long) errors,
           transport ? "; the broker stopped answering" : "",
           interrupted ? "; interrupted before the end" : "");
}

int
main(int argc, char **argv)
{
    s_args_t g;
    memset(&g, 0, sizeof g);
    gs_gen_opts_init(&g.gen);
    gs_sim_opts_init(&g.sim);
    g.sim.organisations = 1;   /* the fleet collects organisations too */
    g.sim.seed = g.gen.seed;
    g.devices = 8;
    g.timeout_ms = 3000;
    g.retries = 5;
    g.lost_ack_ms = 20;
    g.scale = 1;
    /* a new run id each run, so a second run is new uploads, not replays */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(g.run_id, sizeof g.run_id, "r%08x",
             (unsigned) ((uint64_t) ts.tv_sec * 1000003u ^ (uint64_t) ts.tv_nsec ^
                         ((uint64_t) getpid() << 16)));
    g.sim.run_id = g.run_id;
    int prc = s_parse_args(argc, argv, &g);
    if (prc)
        return prc > 0 ? 0 : 2;
    if (g.workflow && g.keys) {
        fprintf(stderr, "gridsim: --workflow uploads in the names of the centre and the "
                "departments, which a broker in CURVE mode allows only with their own keys; "
                "run it against a broker in --insecure-dev mode, without --keys\n");
        return 2;
    }
    gs_curve_keys_t curve;
    memset(&curve, 0, sizeof curve);
    gs_bundle_info_t bundle;
    memset(&bundle, 0, sizeof bundle);
    if (g.keys) {
        int kr = gs_curve_keys_load(&curve, g.keys);
        if (!kr)
            kr = gs_bundle_info_load(&bundle, g.keys);
        if (kr) {
            fprintf(stderr, "gridsim: cannot read the enrolment bundle %s: %s (it needs "
                    "server_public, public_key and secret_key lines, as gridctl devices "
                    "enrol --bundle writes)\n", g.keys,
                    kr == GS_CLIENT_EIO ? strerror(errno) : "keys missing or malformed");
            explicit_bzero(&curve, sizeof curve);
            return 2;
        }
    }
    if (!g.centre)
        g.centre = "centre-sim";
    if (!g.endpoint)
        g.endpoint = bundle.upload_endpoint[0] ? bundle.upload_endpoint
                                               : "tcp://127.0.0.1:7510";
    if (g.scale != 1) {
        g.gen.grids = (uint32_t) fmax(1, round(g.gen.grids * g.scale));
        g.gen.households = (uint32_t) round(g.gen.households * g.scale);
        g.gen.rental_buildings = (uint32_t) round(g.gen.rental_buildings * g.scale);
        g.gen.organisations = (uint32_t) round(g.gen.organisations * g.scale);
    }
    if (g.gen.streets > g.gen.grids)
        g.gen.streets = g.gen.grids;
    g.sim.now_ms = g.gen.now_ms;    /* the incidents' reports are dated by it */
    gs_gen_t *gen = gs_gen_new(&g.gen);
    if (!gen) {
        fprintf(stderr, "gridsim: cannot lay out the district (check --district, --grids, "
                "--households, --rental-buildings, --organisations)\n");
        return 2;
    }

    gs_gen_t *twin_gen = NULL;
    if (g.twins_from) {
        /* the other district, as its own gridsim run generates it */
        gs_gen_opts_t to = g.gen;
        to.district = g.twins_district;
        to.seed = g.twins_seed;
        twin_gen = gs_gen_new(&to);
        if (!twin_gen) {
            fprintf(stderr, "gridsim: cannot lay out district %s of --twins-from (not a "
                    "real district code?)\n", g.twins_district);
            gs_gen_destroy(&gen);
            return 2;
        }
        g.sim.twins_from = twin_gen;
    }

    s_run_t run;
    memset(&run, 0, sizeof run);
    run.gen = gen;
    run.sim = g.sim;
    run.endpoint = g.endpoint;
    run.device_id = bundle.device_id[0] ? bundle.device_id : NULL;
    gs_client_opts_init(&run.copts);
    run.copts.timeout_ms = g.timeout_ms;
    run.copts.retries = g.retries;
    run.copts.curve = curve;
    run.copts.cancel = &s_cancel;
    explicit_bzero(&curve, sizeof curve);
    run.lossy_opts = run.copts;
    run.lossy_opts.timeout_ms = g.lost_ack_ms;
    run.lossy_opts.retries = 0;
    run.n_grids = gs_gen_grid_count(gen);
    run.bar = !g.quiet && isatty(STDERR_FILENO);
    pthread_mutex_init(&run.lock, NULL);
    pthread_cond_init(&run.done, NULL);
    uint64_t total = (uint64_t) gs_gen_household_count(gen) + gs_gen_rental_count(gen) +
                     gs_gen_org_count(gen);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (g.devices > run.n_grids)
        g.devices = run.n_grids; /* one device per grid: more threads would idle */
    if (g.workflow) {
        /* the fleet ran before (with --incidents): only the incidents' steps */
        g.devices = 0;
        atomic_store(&run.next_grid, run.n_grids);
    }
    s_worker_t *ws = calloc(g.devices ? g.devices : 1, sizeof *ws);
    if (!ws) {
        gs_gen_destroy(&gen);
        gs_gen_destroy(&twin_gen);
        return 2;
    }
    int64_t t_start = s_now_us();
    uint32_t started = 0;
    for (uint32_t i = 0; i < g.devices; i++) {
        ws[i].run = &run;
        atomic_fetch_add(&run.running, 1);
        if (pthread_create(&ws[i].tid, NULL, s_worker_main, &ws[i])) {
            atomic_fetch_sub(&run.running, 1);
            break;
        }
        started++;
    }
    /* wait for the device threads, redrawing the bar meanwhile */
    pthread_mutex_lock(&run.lock);
    while (atomic_load(&run.running) > 0) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 200 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&run.done, &run.lock, &until);
        if (run.bar) {
            pthread_mutex_unlock(&run.lock);
            s_draw_bar(&run, total, t_start);
            pthread_mutex_lock(&run.lock);
        }
    }
    pthread_mutex_unlock(&run.lock);
    for (uint32_t i = 0; i < started; i++)
        pthread_join(ws[i].tid, NULL);
    if (run.bar) {
        s_draw_bar(&run, total, t_start);
        fputc('\n', stderr);
    }

    s_total_t t;
    memset(&t, 0, sizeof t);
    t.secs = (double) (s_now_us() - t_start) / 1e6;
    size_t n_lat = 0, n_seqs = 0;
    for (uint32_t i = 0; i < started; i++) {
        n_lat += ws[i].n_lat;
        n_seqs += ws[i].n_seqs;
    }
    uint32_t *lat = malloc((n_lat + 1) * sizeof *lat);
    uint64_t *seqs = malloc((n_seqs + 1) * sizeof *seqs);
    size_t li = 0, si = 0;
    for (uint32_t i = 0; i < started; i++) {
        s_worker_t *w = &ws[i];
        t.uploads += w->uploads;
        t.records += w->records;
        t.persons += w->persons;
        for (int k = 0; k < GS_RESULT_STATUSES; k++)
            t.results[k] += w->results[k];
        t.retransmits += w->retransmits;
        t.lost_acks += w->lost_acks;
        t.resends += w->cstats.resends;
        t.stale += w->cstats.stale_replies;
        for (int k = 0; k < GS_SIM_RECORD_KINDS; k++)
            t.tally.by_noise[k] += w->tally.by_noise[k];
        t.tally.twins += w->tally.twins;
        if (lat && w->n_lat)
            memcpy(lat + li, w->lat_us, w->n_lat * sizeof *lat);
        if (seqs && w->n_seqs)
            memcpy(seqs + si, w->seqs, w->n_seqs * sizeof *seqs);
        li += w->n_lat;
        si += w->n_seqs;
        free(w->lat_us);
        free(w->seqs);
    }
    if (lat && n_lat) {
        qsort(lat, n_lat, sizeof *lat, s_cmp_u32);
        t.p50 = s_pct_ms(lat, n_lat, 0.50);
        t.p90 = s_pct_ms(lat, n_lat, 0.90);
        t.p99 = s_pct_ms(lat, n_lat, 0.99);
        t.max_ms = lat[n_lat - 1] / 1000.0;
    }
    if (seqs && n_seqs) {
        /* every new event has its own seq: one seq acked for two records
         * means something was stored twice */
        qsort(seqs, n_seqs, sizeof *seqs, s_cmp_u64);
        for (size_t i = 1; i < n_seqs; i++)
            if (seqs[i] == seqs[i - 1]) {
                char detail[128];
                snprintf(detail, sizeof detail, "seq %llu was acked for two records",
                         (unsigned long long) seqs[i]);
                s_error(&run, 1, detail);
                t.dup_seqs++;
            }
        t.events = n_seqs - t.dup_seqs;
        t.max_seq = seqs[n_seqs - 1];
    }
    free(lat);
    free(seqs);
    free(ws);
    if (g.workflow && !atomic_load(&run.stop))
        s_play_workflow(&run, g.centre, &t);

    uint64_t errors = atomic_load(&run.errors);
    uint64_t transport = atomic_load(&run.transport_errors);
    int interrupted = atomic_load(&s_signalled) ||
                      atomic_load(&run.next_grid) < run.n_grids;
    if (atomic_load(&s_signalled))
        fprintf(stderr, "gridsim: interrupted by a signal; the summary covers the uploads "
                "acked so far\n");
    if (g.json)
        s_print_json(&g, gen, &t, errors, transport, interrupted);
    else
        s_print_human(&g, gen, &t, errors, transport, interrupted);
    fflush(stdout);
    explicit_bzero(&run.copts.curve, sizeof run.copts.curve);
    explicit_bzero(&run.lossy_opts.curve, sizeof run.lossy_opts.curve);
    pthread_mutex_destroy(&run.lock);
    pthread_cond_destroy(&run.done);
    gs_gen_destroy(&gen);
    gs_gen_destroy(&twin_gen);
    return errors || transport || interrupted ? 1 : 0;
}

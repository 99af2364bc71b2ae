/*
 * fault_kit: see fault_kit.h.
 */
#include "fault_kit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gs_arena.h"
#include "gs_client.h"
#include "gs_grid.h"
#include "gs_store.h"

#define S_MAX_THREADS 8
#define S_MAX_PRINTS 20         /* problems printed per check; the rest counted */

/* Absolute CLOCK_REALTIME deadline ms from now, for pthread_cond_timedwait. */
static struct timespec
s_deadline(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long) (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* ---- load ----------------------------------------------------------------- */

typedef struct s_loader {
    gs_fk_load_t *load;         /* owner */
    int index;                  /* thread number, in record ids */
    pthread_t tid;              /* the thread */
    int started;                /* tid is valid */
    gs_fk_ack_t *acks;          /* acked records of this thread */
    size_t n_acks, cap;         /* used and allocated */
    uint64_t errors;            /* failed or unexpected uploads */
    uint64_t resends;           /* Lazy Pirate resends of its client */
} s_loader_t;

struct gs_fk_load {
    gs_fk_load_opts_t o;        /* settings (strings below) */
    char endpoint[256];         /* copy of o.endpoint */
    char tag[32];               /* copy of o.tag */
    s_loader_t threads[S_MAX_THREADS];  /* the device threads */
    int n_threads;              /* how many started */
    pthread_mutex_t mu;         /* guards acked, running */
    pthread_cond_t cv;          /* signalled on every ack and thread end */
    uint64_t acked;             /* uploads acked, all threads */
    int running;                /* threads not yet ended */
    atomic_int stop;            /* asked to stop */
    gs_fk_ack_t *merged;        /* all acks, sorted (after stop) */
    size_t n_merged;            /* how many */
};

static int
s_ack_push(s_loader_t *t, const char *id, const char *grid, uint64_t version, uint64_t seq)
{
    if (t->n_acks == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        gs_fk_ack_t *a = realloc(t->acks, cap * sizeof *a);
        if (!a)
            return -1;
        t->acks = a;
        t->cap = cap;
    }
    gs_fk_ack_t *a = &t->acks[t->n_acks++];
    snprintf(a->id, sizeof a->id, "%s", id);
    snprintf(a->grid, sizeof a->grid, "%s", grid);
    a->version = version;
    a->seq = seq;
    return 0;
}

/* Is the Ack what fresh records must get? Records it when so. */
static int
s_ack_check(s_loader_t *t, const Gridsync__V1__Upload *up, const Gridsync__V1__Ack *ack)
{
    if (ack->reason != GRIDSYNC__V1__REASON__REASON_NONE || ack->n_results != up->n_records) {
        fprintf(stderr, "upload %s: ack reason %d, %zu results for %zu records: %s\n",
                up->upload_id, ack->reason, ack->n_results, up->n_records,
                ack->message ? ack->message : "");
        return -1;
    }
    for (size_t i = 0; i < ack->n_results; i++) {
        const Gridsync__V1__RecordResult *r = ack->results[i];
        const Gridsync__V1__Household *h = up->records[i]->household;
        if (r->status != GRIDSYNC__V1__RESULT_STATUS__RESULT_STATUS_ACCEPTED ||
            r->version != 1 || r->seq == 0 || strcmp(r->record_key, h->household_id) != 0) {
            fprintf(stderr,
                    "upload %s record %s: status %d version %llu seq %llu key %s (%s); "
                    "a fresh record must be accepted at version 1\n",
                    up->upload_id, h->household_id, r->status, (unsigned long long) r->version,
                    (unsigned long long) r->seq, r->record_key, r->message ? r->message : "");
            return -1;
        }
    }
    for (size_t i = 0; i < ack->n_results; i++) {
        const Gridsync__V1__Household *h = up->records[i]->household;
        if (s_ack_push(t, h->household_id, h->grid_code, ack->results[i]->version,
                       ack->results[i]->seq))
            return -1;
    }
    return 0;
}

static void *
s_loader_main(void *arg)
{
    s_loader_t *t = arg;
    gs_fk_load_t *l = t->load;
    gs_client_opts_t co;
    gs_client_opts_init(&co);
    co.timeout_ms = l->o.timeout_ms;
    co.retries = l->o.retries;
    gs_client_t *c = gs_client_new(l->endpoint, &co);
    if (!c)
        t->errors++;
    /* each thread draws persons from its own range of seeds (gs_tk_idnum is
     * unique below 20,160,000); a long run wraps within its range, which
     * only makes some persons live in two households */
    const uint32_t range = 20160000u / S_MAX_THREADS;
    uint32_t drawn = 0;
    char device[64];
    snprintf(device, sizeof device, "dev-%s-%d", l->tag, t->index);
    int nrec = l->o.records;
    Gridsync__V1__Record **recs = calloc((size_t) nrec, sizeof *recs);
    for (long k = 0; c && recs && !atomic_load(&l->stop) &&
                     (l->o.max_uploads == 0 || k < l->o.max_uploads);
         k++) {
        gs_arena_t *a = gs_arena_new(0);
        for (int r = 0; r < nrec; r++) {
            char id[40];
            snprintf(id, sizeof id, "%s-%d-%ld-%d", l->tag, t->index, k, r);
            const char *grid = l->o.grids[((size_t) k * (size_t) nrec + (size_t) r +
                                           (size_t) t->index) % l->o.n_grids];
            if (drawn + (uint32_t) l->o.members >= range - 1)
                drawn = 0;
            recs[r] = gs_tk_household(a, grid, id, NULL, l->o.members,
                                      1 + (uint32_t) t->index * range + drawn);
            drawn += (uint32_t) l->o.members;
        }
        char upload_id[64];
        snprintf(upload_id, sizeof upload_id, "%s-u%d-%ld", l->tag, t->index, k);
        Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
        up.device_id = device;
        up.upload_id = upload_id;
        up.records = recs;
        up.n_records = (size_t) nrec;
        Gridsync__V1__Ack *ack = NULL;
        gs_client_error_t err;
        int rc = gs_client_upload(c, &up, &ack, &err);
        if (rc) {
            fprintf(stderr, "upload %s: %s: %s\n", upload_id, gs_client_strerror(rc),
                    err.message);
            t->errors++;
        } else if (s_ack_check(t, &up, ack)) {
            t->errors++;
        }
        if (ack)
            gridsync__v1__ack__free_unpacked(ack, NULL);
        gs_arena_destroy(&a);
        if (rc == 0) {
            pthread_mutex_lock(&l->mu);
            l->acked++;
            pthread_cond_broadcast(&l->cv);
            pthread_mutex_unlock(&l->mu);
        }
    }
    free(recs);
    if (c) {
        gs_client_stats_t cs;
        gs_client_stats(c, &cs);
        t->resends = cs.resends;
    }
    gs_client_destroy(&c);
    pthread_mutex_lock(&l->mu);
    l->running--;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

gs_fk_load_t *
gs_fk_load_start(const gs_fk_load_opts_t *o, int threads)
{
    if (threads < 1 || threads > S_MAX_THREADS || !o->n_grids || o->records < 1 ||
        o->members < 1)
        return NULL;
    gs_fk_load_t *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->o = *o;
    snprintf(l->endpoint, sizeof l->endpoint, "%s", o->endpoint);
    snprintf(l->tag, sizeof l->tag, "%s", o->tag);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    for (int i = 0; i < threads; i++) {
        s_loader_t *t = &l->threads[i];
        t->load = l;
        t->index = i;
        pthread_mutex_lock(&l->mu);
        l->running++;
        pthread_mutex_unlock(&l->mu);
        if (pthread_create(&t->tid, NULL, s_loader_main, t)) {
            pthread_mutex_lock(&l->mu);
            l->running--;
            pthread_mutex_unlock(&l->mu);
            break;
        }
        t->started = 1;
        l->n_threads++;
    }
    return l;
}

uint64_t
gs_fk_load_acked(gs_fk_load_t *l)
{
    pthread_mutex_lock(&l->mu);
    uint64_t v = l->acked;
    pthread_mutex_unlock(&l->mu);
    return v;
}

int
gs_fk_load_wait(gs_fk_load_t *l, uint64_t uploads, int bound_ms)
{
    int rc = 0;
    pthread_mutex_lock(&l->mu);
    uint64_t seen = l->acked;
    struct timespec dl = s_deadline(bound_ms);
    while (l->acked < uploads) {
        if (l->running == 0) {
            rc = -1;
            break;
        }
        if (pthread_cond_timedwait(&l->cv, &l->mu, &dl) == ETIMEDOUT) {
            if (l->acked == seen) {
                fprintf(stderr, "load: no upload acked for %d ms (%llu of %llu)\n", bound_ms,
                        (unsigned long long) l->acked, (unsigned long long) uploads);
                rc = -1;
                break;
            }
            seen = l->acked;
            dl = s_deadline(bound_ms);
        }
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

static int
s_ack_cmp(const void *a, const void *b)
{
    return strcmp(((const gs_fk_ack_t *) a)->id, ((const gs_fk_ack_t *) b)->id);
}

void
gs_fk_acks_sort(gs_fk_ack_t *acks, size_t n)
{
    qsort(acks, n, sizeof *acks, s_ack_cmp);
}

void
gs_fk_load_stop(gs_fk_load_t *l)
{
    atomic_store(&l->stop, 1);
    for (int i = 0; i < l->n_threads; i++)
        if (l->threads[i].started) {
            pthread_join(l->threads[i].tid, NULL);
            l->threads[i].started = 0;
        }
    if (l->merged)
        return;
    size_t n = 0;
    for (int i = 0; i < l->n_threads; i++)
        n += l->threads[i].n_acks;
    l->merged = malloc((n ? n : 1) * sizeof *l->merged);
    if (!l->merged)
        return;
    for (int i = 0; i < l->n_threads; i++) {
        memcpy(l->merged + l->n_merged, l->threads[i].acks,
               l->threads[i].n_acks * sizeof *l->merged);
        l->n_merged += l->threads[i].n_acks;
    }
    qsort(l->merged, l->n_merged, sizeof *l->merged, s_ack_cmp);
}

uint64_t
gs_fk_load_errors(gs_fk_load_t *l)
{
    uint64_t e = 0;
    for (int i = 0; i < l->n_threads; i++)
        e += l->threads[i].errors;
    return e;
}

uint64_t
gs_fk_load_resends(gs_fk_load_t *l)
{
    uint64_t r = 0;
    for (int i = 0; i < l->n_threads; i++)
        r += l->threads[i].resends;
    return r;
}

const gs_fk_ack_t *
gs_fk_load_acks(gs_fk_load_t *l, size_t *n)
{
    *n = l->n_merged;
    return l->merged;
}

void
gs_fk_load_destroy(gs_fk_load_t **l_p)
{
    if (!l_p || !*l_p)
        return;
    gs_fk_load_t *l = *l_p;
    gs_fk_load_stop(l);
    for (int i = 0; i < l->n_threads; i++)
        free(l->threads[i].acks);
    free(l->merged);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
    *l_p = NULL;
}

/* ---- follower ------------------------------------------------------------- */

struct gs_fk_follow {
    gs_fk_follow_opts_t o;      /* settings (strings below) */
    char feed[256];             /* copy of o.feed */
    char sync[256];             /* copy of o.sync */
    char prefix[16];            /* copy of o.prefix */
    char checkpoint[512];       /* copy of o.checkpoint */
    pthread_t tid;              /* the thread */
    int started;                /* tid is valid */
    pthread_mutex_t mu;         /* guards the control fields and position */
    pthread_cond_t cv;          /* signalled on progress and control changes */
    int stalled;                /* read nothing until released */
    int crash;                  /* crash requested */
    int finishing;              /* stop once position >= target */
    uint64_t target;            /* seq to reach when finishing */
    int stop;                   /* stop now */
    int ended;                  /* the thread returned */
    uint64_t position;          /* last seq delivered */
    uint64_t progress;          /* events delivered, any kind of step counts */
    uint64_t *seqs;             /* delivered seqs */
    size_t n, cap;              /* used and allocated */
    size_t n_checkpointed;      /* seqs covered by the checkpoint file */
    gs_fk_follow_stats_t st;    /* counters */
};

static void
s_stats_add(gs_fk_follow_t *f, gs_sub_t *sub)
{
    gs_sub_stats_t s;
    gs_sub_stats(sub, &s);
    f->st.live += s.live;
    f->st.pulled += s.pulled;
    f->st.duplicates += s.duplicates;
    f->st.gaps += s.gaps;
    f->st.heartbeats += s.heartbeats;
}

static int
s_seq_push(gs_fk_follow_t *f, uint64_t seq)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4096;
        uint64_t *s = realloc(f->seqs, cap * sizeof *s);
        if (!s)
            return -1;
        f->seqs = s;
        f->cap = cap;
    }
    f->seqs[f->n++] = seq;
    return 0;
}

static void *
s_follow_main(void *arg)
{
    gs_fk_follow_t *f = arg;
    gs_sub_opts_t so;
    gs_sub_opts_init(&so);
    if (f->o.rcvhwm > 0)
        so.rcvhwm = f->o.rcvhwm;
    if (f->o.timeout_ms > 0)
        so.timeout_ms = f->o.timeout_ms;
    int every = f->o.checkpoint_every > 0 ? f->o.checkpoint_every : 50;
    const char *pfx[1] = { f->prefix };
    gs_sub_t *sub = NULL;
    int since_cp = 0, created = 0;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        /* stalled means: subscribed, but not reading (its queues fill up) */
        while (f->stalled && sub && !f->stop)
            pthread_cond_wait(&f->cv, &f->mu);
        int stop = f->stop || (f->finishing && f->position >= f->target);
        int crash = f->crash && sub; /* kept pending until there is one to crash */
        if (crash)
            f->crash = 0;
        pthread_mutex_unlock(&f->mu);
        if (stop)
            break;
        if (crash) {
            /* no checkpoint: what came after the last one is forgotten */
            s_stats_add(f, sub);
            gs_sub_destroy(&sub);
            pthread_mutex_lock(&f->mu);
            f->n = f->n_checkpointed;
            f->position = f->n ? f->seqs[f->n - 1] : 0;
            f->st.crashes++;
            pthread_mutex_unlock(&f->mu);
            since_cp = 0;
        }
        if (!sub) {
            int err = 0;
            sub = gs_sub_new(f->feed, f->sync, pfx, 1, f->checkpoint, 0, &so, &err);
            if (!sub) {
                /* a timeout means the broker is down and gs_sub_new waited
                 * out its retries: try again; anything else is for good */
                if (err != GS_CLIENT_ETIMEOUT) {
                    fprintf(stderr, "follower %s: %s\n", f->prefix, gs_client_strerror(err));
                    pthread_mutex_lock(&f->mu);
                    f->st.errors++;
                    pthread_mutex_unlock(&f->mu);
                    break;
                }
                continue;
            }
            if (created++)
                f->st.resumes++;
            pthread_mutex_lock(&f->mu);
            f->progress++;
            pthread_cond_broadcast(&f->cv);
            pthread_mutex_unlock(&f->mu);
            continue;
        }
        Gridsync__V1__ChangeEvent *ev = NULL;
        int rc = gs_sub_next(sub, 200, &ev);
        if (rc == 0) {
            pthread_mutex_lock(&f->mu);
            uint64_t last = f->n ? f->seqs[f->n - 1] : 0;
            if (ev->seq <= last || !gs_grid_prefix_covers(f->prefix, ev->grid_code)) {
                fprintf(stderr, "follower %s: event seq %llu grid %s after seq %llu\n",
                        f->prefix, (unsigned long long) ev->seq, ev->grid_code,
                        (unsigned long long) last);
                f->st.errors++;
            }
            if (s_seq_push(f, ev->seq))
                f->st.errors++;
            f->position = ev->seq;
            f->progress++;
            pthread_cond_broadcast(&f->cv);
            pthread_mutex_unlock(&f->mu);
            gridsync__v1__change_event__free_unpacked(ev, NULL);
            if (++since_cp >= every) {
                if (gs_sub_checkpoint(sub, NULL) == 0) {
                    pthread_mutex_lock(&f->mu);
                    f->n_checkpointed = f->n;
                    pthread_mutex_unlock(&f->mu);
                }
                since_cp = 0;
            }
        } else if (rc == GS_CLIENT_ELINEAGE) {
            /* no fault test restores a store: a broker whose head fell
             * below what it delivered, or whose epoch changed, lost
             * committed events */
            gs_sub_lineage_t l;
            gs_sub_lineage(sub, &l);
            fprintf(stderr, "follower %s: %s\n", f->prefix, l.message);
            pthread_mutex_lock(&f->mu);
            f->st.errors++;
            pthread_mutex_unlock(&f->mu);
            break;
        } else if (rc < 0) {
            /* e.g. a repair that ran out of retries while the broker was
             * down: keep what was delivered and resume from there */
            if (gs_sub_checkpoint(sub, NULL) == 0) {
                pthread_mutex_lock(&f->mu);
                f->n_checkpointed = f->n;
                pthread_mutex_unlock(&f->mu);
            }
            s_stats_add(f, sub);
            gs_sub_destroy(&sub);
            since_cp = 0;
        }
    }
    if (sub) {
        s_stats_add(f, sub);
        gs_sub_destroy(&sub);
    }
    pthread_mutex_lock(&f->mu);
    f->ended = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

gs_fk_follow_t *
gs_fk_follow_start(const gs_fk_follow_opts_t *o)
{
    gs_fk_follow_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->o = *o;
    snprintf(f->feed, sizeof f->feed, "%s", o->feed);
    snprintf(f->sync, sizeof f->sync, "%s", o->sync);
    snprintf(f->prefix, sizeof f->prefix, "%s", o->prefix);
    snprintf(f->checkpoint, sizeof f->checkpoint, "%s", o->checkpoint);
    f->stalled = o->stalled;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    if (pthread_create(&f->tid, NULL, s_follow_main, f)) {
        gs_fk_follow_destroy(&f);
        return NULL;
    }
    f->started = 1;
    /* return once subscribed, so that the caller's load is followed live */
    pthread_mutex_lock(&f->mu);
    struct timespec dl = s_deadline(30000);
    while (f->progress == 0 && !f->ended)
        if (pthread_cond_timedwait(&f->cv, &f->mu, &dl) == ETIMEDOUT)
            break;
    int ok = f->progress > 0;
    pthread_mutex_unlock(&f->mu);
    if (!ok) {
        fprintf(stderr, "follower %s: could not subscribe\n", f->prefix);
        gs_fk_follow_destroy(&f);
    }
    return f;
}

void
gs_fk_follow_release(gs_fk_follow_t *f)
{
    pthread_mutex_lock(&f->mu);
    f->stalled = 0;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

void
gs_fk_follow_crash(gs_fk_follow_t *f)
{
    pthread_mutex_lock(&f->mu);
    f->crash = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

int
gs_fk_follow_finish(gs_fk_follow_t *f, uint64_t target, int bound_ms)
{
    int rc = 0;
    pthread_mutex_lock(&f->mu);
    f->finishing = 1;
    f->target = target;
    f->stalled = 0;
    pthread_cond_broadcast(&f->cv);
    uint64_t seen = f->progress;
    struct timespec dl = s_deadline(bound_ms);
    while (f->position < target && !f->ended) {
        if (pthread_cond_timedwait(&f->cv, &f->mu, &dl) == ETIMEDOUT) {
            if (f->progress == seen) {
                fprintf(stderr, "follower %s: stuck at seq %llu of %llu for %d ms\n",
                        f->prefix, (unsigned long long) f->position,
                        (unsigned long long) target, bound_ms);
                rc = -1;
                break;
            }
            seen = f->progress;
            dl = s_deadline(bound_ms);
        }
    }
    f->stop = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    if (f->started) {
        pthread_join(f->tid, NULL);
        f->started = 0;
    }
    return rc;
}

const uint64_t *
gs_fk_follow_seqs(gs_fk_follow_t *f, size_t *n)
{
    *n = f->n;
    return f->seqs;
}

void
gs_fk_follow_stats(gs_fk_follow_t *f, gs_fk_follow_stats_t *st)
{
    pthread_mutex_lock(&f->mu);
    *st = f->st;
    pthread_mutex_unlock(&f->mu);
}

void
gs_fk_follow_destroy(gs_fk_follow_t **f_p)
{
    if (!f_p || !*f_p)
        return;
    gs_fk_follow_t *f = *f_p;
    if (f->started) {
        pthread_mutex_lock(&f->mu);
        f->stop = 1;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        pthread_join(f->tid, NULL);
    }
    free(f->seqs);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
    *f_p = NULL;
}

/* ---- checks --------------------------------------------------------------- */

typedef struct s_check {
    const gs_fk_ack_t *acks;    /* sorted by id */
    size_t n;                   /* how many */
    uint32_t *hits;             /* events seen per ack */
    uint64_t expect;            /* next seq the log must hold */
    int problems;               /* found so far */
} s_check_t;

static void s_problem(int *problems, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
s_problem(int *problems, const char *fmt, ...)
{
    if (++*problems <= S_MAX_PRINTS) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "store check: ");
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
}

static const gs_fk_ack_t *
s_ack_find(const gs_fk_ack_t *acks, size_t n, const char *id)
{
    gs_fk_ack_t key;
    snprintf(key.id, sizeof key.id, "%s", id);
    return bsearch(&key, acks, n, sizeof *acks, s_ack_cmp);
}

static int
s_check_event(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    s_check_t *c = arg;
    if (seq != c->expect)
        s_problem(&c->problems, "change log holds seq %llu where %llu belongs",
                  (unsigned long long) seq, (unsigned long long) c->expect);
    c->expect = seq + 1;
    Gridsync__V1__ChangeEvent *ev = gridsync__v1__change_event__unpack(NULL, len, data);
    if (!ev) {
        s_problem(&c->problems, "event %llu does not decode", (unsigned long long) seq);
        return 0;
    }
    const gs_fk_ack_t *a = s_ack_find(c->acks, c->n, ev->record_key);
    if (!a)
        s_problem(&c->problems, "event %llu is for %s, which no device was acked for",
                  (unsigned long long) seq, ev->record_key);
    else if (a->version != ev->version || a->seq != seq || strcmp(a->grid, grid) != 0)
        s_problem(&c->problems,
                  "event %llu: %s version %llu in %s; the ack said version %llu seq %llu in %s",
                  (unsigned long long) seq, ev->record_key, (unsigned long long) ev->version,
                  grid, (unsigned long long) a->version, (unsigned long long) a->seq, a->grid);
    if (a)
        c->hits[a - c->acks]++;
    gridsync__v1__change_event__free_unpacked(ev, NULL);
    return 0;
}

typedef struct s_got {
    int found;                  /* the record was seen */
    uint64_t version;           /* its version */
    char grid[16];              /* its grid */
} s_got_t;

static int
s_got_record(void *arg, const gs_record_view_t *r)
{
    s_got_t *g = arg;
    g->found = 1;
    g->version = r->version;
    snprintf(g->grid, sizeof g->grid, "%s", r->grid);
    return 0;
}

static void
s_verify_report(void *arg, const char *problem)
{
    (void) arg;
    fprintf(stderr, "verify: %s\n", problem);
}

int
gs_fk_check_store(const char *dir, const gs_fk_ack_t *acks, size_t n)
{
    gs_store_opts_t so;
    gs_store_opts_init(&so);
    so.read_only = 1;
    int err = 0;
    gs_store_t *st = gs_store_new(dir, &so, &err);
    if (!st) {
        fprintf(stderr, "store check: cannot open %s: %s\n", dir, gs_store_strerror(err));
        return 1;
    }
    s_check_t c = { .acks = acks, .n = n, .expect = 1 };
    c.hits = calloc(n ? n : 1, sizeof *c.hits);
    for (size_t i = 1; i < n; i++)
        if (strcmp(acks[i - 1].id, acks[i].id) == 0)
            s_problem(&c.problems, "record %s was acked twice as accepted", acks[i].id);
    uint64_t next = 0, head = 0;
    const char *all[] = { "" };
    int rc = gs_store_events(st, all, 1, 0, 0, s_check_event, &c, &next, &head);
    if (rc)
        s_problem(&c.problems, "reading the change log: %s", gs_store_strerror(rc));
    if (c.expect != head + 1)
        s_problem(&c.problems, "change log ends at seq %llu but head is %llu",
                  (unsigned long long) c.expect - 1, (unsigned long long) head);
    for (size_t i = 0; i < n; i++) {
        if (c.hits[i] != 1)
            s_problem(&c.problems, "record %s (acked seq %llu) has %u events, not 1",
                      acks[i].id, (unsigned long long) acks[i].seq, c.hits[i]);
        s_got_t g = { 0 };
        rc = gs_store_get(st, 0, acks[i].id, s_got_record, &g);
        if (rc || !g.found)
            s_problem(&c.problems, "acked record %s is not in the store (%s)", acks[i].id,
                      gs_store_strerror(rc));
        else if (g.version != acks[i].version || strcmp(g.grid, acks[i].grid) != 0)
            s_problem(&c.problems, "record %s is version %llu in %s; acked version %llu in %s",
                      acks[i].id, (unsigned long long) g.version, g.grid,
                      (unsigned long long) acks[i].version, acks[i].grid);
    }
    gs_store_info_t info;
    memset(&info, 0, sizeof info);
    rc = gs_store_info(st, &info);
    if (rc)
        s_problem(&c.problems, "info: %s", gs_store_strerror(rc));
    else if (info.records != n || info.events != head)
        s_problem(&c.problems, "store holds %llu records and %llu events for %zu acked records",
                  (unsigned long long) info.records, (unsigned long long) info.events, n);
    uint64_t problems = 0;
    rc = gs_store_verify(st, s_verify_report, NULL, &problems);
    if (rc || problems)
        s_problem(&c.problems, "gs_store_verify: %s, %llu problems", gs_store_strerror(rc),
                  (unsigned long long) problems);
    gs_store_destroy(&st);
    free(c.hits);
    if (c.problems > S_MAX_PRINTS)
        fprintf(stderr, "store check: %d problems in all\n", c.problems);
    return c.problems;
}

typedef struct s_seqs {
    uint64_t *v;                /* collected seqs */
    size_t n, cap;              /* used and allocated */
    int failed;                 /* out of memory */
} s_seqs_t;

static int
s_seq_collect(void *arg, uint64_t seq, const char *grid, const uint8_t *data, size_t len)
{
    (void) grid;
    (void) data;
    (void) len;
    s_seqs_t *s = arg;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        uint64_t *v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            s->failed = 1;
            return 1;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = seq;
    return 0;
}

size_t
gs_fk_log_seqs(const char *dir, const char *prefix, uint64_t **seqs, uint64_t *last)
{
    *seqs = NULL;
    *last = 0;
    gs_store_opts_t so;
    gs_store_opts_init(&so);
    so.read_only = 1;
    int err = 0;
    gs_store_t *st = gs_store_new(dir, &so, &err);
    if (!st) {
        fprintf(stderr, "log seqs: cannot open %s: %s\n", dir, gs_store_strerror(err));
        return (size_t) -1;
    }
    s_seqs_t s = { 0 };
    uint64_t next = 0, head = 0;
    const char *p[] = { prefix };
    int rc = gs_store_events(st, p, 1, 0, 0, s_seq_collect, &s, &next, &head);
    gs_store_destroy(&st);
    if (rc || s.failed) {
        free(s.v);
        return (size_t) -1;
    }
    *seqs = s.v;
    *last = s.n ? s.v[s.n - 1] : 0;
    return s.n;
}

int
gs_fk_seqs_compare(const char *what, const uint64_t *got, size_t n_got, const uint64_t *want,
                   size_t n_want)
{
    size_t i = 0;
    while (i < n_got && i < n_want && got[i] == want[i])
        i++;
    if (i == n_got && i == n_want)
        return 0;
    fprintf(stderr, "%s: %zu events, the log has %zu; first difference at #%zu: got %llu, "
                    "log %llu\n",
            what, n_got, n_want, i, i < n_got ? (unsigned long long) got[i] : 0ULL,
            i < n_want ? (unsigned long long) want[i] : 0ULL);
    return -1;
}

/* ---- broker --------------------------------------------------------------- */

double
gs_fk_metric(const gs_tk_broker_t *b, const char *name)
{
    double v = gs_tk_metric(b->metrics_port, name);
    return v < 0 ? -1 : v;
}

int
gs_fk_broker_term(gs_tk_broker_t *b)
{
    pid_t pid = b->pid;
    int st = gs_tk_broker_stop(b, SIGTERM);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (WIFEXITED(st))
        fprintf(stderr, "gridsyncd %d exited with status %d after SIGTERM (leak report or "
                        "failed drain?); see %s\n", (int) pid, WEXITSTATUS(st), b->log_path);
    else
        fprintf(stderr, "gridsyncd %d died of signal %d after SIGTERM; see %s\n", (int) pid,
                WIFSIGNALED(st) ? WTERMSIG(st) : -1, b->log_path);
    return -1;
}

long
gs_fk_proc_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

uint64_t
gs_fk_seed(void)
{
    const char *e = getenv("GS_FAULT_SEED");
    uint64_t seed = e && *e ? strtoull(e, NULL, 0)
                            : ((uint64_t) time(NULL) << 20) ^ (uint64_t) getpid();
    fprintf(stderr, "fault test seed: GS_FAULT_SEED=%llu\n", (unsigned long long) seed);
    return seed ? seed : 1;
}

uint64_t
gs_fk_rand(uint64_t *state)
{
    /* splitmix64 */
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

int
gs_fk_soak(void)
{
    const char *e = getenv("GRIDSYNC_SOAK");
    return e && *e && strcmp(e, "0") != 0;
}

void
gs_fk_cleanup(const char *dir)
{
    const char *keep = getenv("GS_FAULT_KEEP");
    if (keep && *keep && strcmp(keep, "0") != 0)
        fprintf(stderr, "kept %s (GS_FAULT_KEEP)\n", dir);
    else
        gs_tk_rmtree(dir);
}

int
gs_fk_setup(void **state)
{
    gs_fk_env_t *e = calloc(1, sizeof *e);
    if (!e)
        return -1;
    gs_tk_tmpdir(e->dir, sizeof e->dir);
    snprintf(e->store, sizeof e->store, "%s/store", e->dir);
    *state = e;
    return 0;
}

int
gs_fk_teardown(void **state)
{
    gs_fk_env_t *e = *state;
    gs_tk_broker_stop(&e->broker, SIGKILL);
    if (e->mounted && umount(e->mnt) != 0) {
        fprintf(stderr, "umount %s: %s; detaching it\n", e->mnt, strerror(errno));
        umount2(e->mnt, MNT_DETACH);
    }
    gs_fk_cleanup(e->dir);
    free(e);
    return 0;
}

/*
 * fuzz_replicate: arbitrary messages of a district's stream through
 * gs_store_replicate on a real LMDB replica store. See gs_fuzz.h.
 *
 * Input: a sequence of messages of origin GS_FUZZ_ORIGIN, each written as
 * one flags byte (GS_FUZZ_REPL_*), a 16-bit little-endian length and that
 * many bytes of message data (a packed ChangeEvent, or anything); a
 * truncated last message takes what is left. The flags choose its
 * headers: Gridsync-Seq is the event's own seq when the data decodes (else
 * "1"), Gridsync-Epoch is the input's epoch, Gridsync-Origin the origin,
 * unless a flag breaks one of them. All messages of one input go to one
 * gs_store_replicate call, as one fetch does. The store is made once per
 * process (no_sync); each input first re-baselines the origin, so inputs
 * do not depend on each other, and the re-baseline's removals are
 * exercised on whatever the previous input left.
 *
 * What must hold for any input:
 *  - gs_store_origin_rebaseline and gs_store_replicate return 0: nothing on
 *    a stream is a storage error;
 *  - applied + skipped = consumed <= messages; a refusal exactly when
 *    consumed < messages, with a reason and a message, and the origin
 *    recorded as stopped; one event out per message applied;
 *  - the events continue the change log without holes, decode, and carry
 *    the origin;
 *  - gs_store_verify finds nothing, checked every S_VERIFY_EVERY inputs and
 *    at exit.
 */
#include "gs_fuzz.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gs_store_replica.h"

#define S_VERIFY_EVERY 32
#define S_MAX_MSGS 256              /* messages of one input looked at */

static gs_store_t *s_store;         /* the one replica store, made at first call */
static uint64_t s_calls;            /* inputs so far */

static void
s_fail(const char *what)
{
    fprintf(stderr, "fuzz_replicate: %s\n", what);
    abort();
}

static void
s_report(void *arg, const char *problem)
{
    (void) arg;
    fprintf(stderr, "fuzz_replicate: verify: %s\n", problem);
}

static void
s_verify(void)
{
    uint64_t problems = 0;
    int rc = gs_store_verify(s_store, s_report, NULL, &problems);
    if (rc) {
        fprintf(stderr, "fuzz_replicate: gs_store_verify: %s, %llu problems\n",
                gs_store_strerror(rc), (unsigned long long) problems);
        abort();
    }
}

static void
s_close(void)
{
    if (s_store)
        s_verify();
    gs_store_destroy(&s_store);
}

static void
s_init(void)
{
    gs_store_opts_t o;
    gs_store_opts_init(&o);
    o.no_sync = 1;
    int err = 0;
    s_store = gs_store_new(gs_fuzz_tmpdir(), &o, &err);
    if (!s_store) {
        fprintf(stderr, "fuzz_replicate: cannot make the store: %s\n", gs_store_strerror(err));
        abort();
    }
    atexit(s_close); /* runs before the directory is removed */
}

/* The events of out continue the log after head and carry the origin. */
static void
s_check_events(const gs_apply_out_t *out, uint64_t head)
{
    if (out->n_events && out->head_seq != head + out->n_events)
        s_fail("head_seq did not advance by the number of events");
    for (size_t i = 0; i < out->n_events; i++) {
        const gs_event_out_t *e = &out->events[i];
        if (e->seq != head + 1 + i)
            s_fail("event seqs are not consecutive from the old head");
        Gridsync__V1__ChangeEvent *ev = gridsync__v1__change_event__unpack(NULL, e->len, e->data);
        if (!ev)
            s_fail("a change event does not decode");
        if (ev->seq != e->seq || !ev->grid_code || strcmp(ev->grid_code, e->grid) != 0)
            s_fail("a change event disagrees with its topic or seq");
        if (!ev->origin || strcmp(ev->origin, GS_FUZZ_ORIGIN) != 0)
            s_fail("a replicated event without its origin");
        gridsync__v1__change_event__free_unpacked(ev, NULL);
    }
}

int
gs_fuzz_replicate(const uint8_t *data, size_t len)
{
    if (!s_store)
        s_init();
    gs_repl_msg_t msgs[S_MAX_MSGS];
    char seqs[S_MAX_MSGS][24];
    size_t n = 0;
    for (size_t at = 0; at < len && n < S_MAX_MSGS;) {
        int flags = data[at++];
        size_t ml = 0;
        if (at + 2 <= len)
            ml = (size_t) data[at] | (size_t) data[at + 1] << 8;
        at += at + 2 <= len ? 2 : len - at;
        if (ml > len - at)
            ml = len - at;
        gs_repl_msg_t *m = &msgs[n];
        m->data = data + at;
        m->len = ml;
        m->stream_seq = n + 1;
        at += ml;
        snprintf(seqs[n], sizeof seqs[n], "1");
        Gridsync__V1__ChangeEvent *ev =
            ml ? gridsync__v1__change_event__unpack(NULL, ml, m->data) : NULL;
        if (ev && !(flags & GS_FUZZ_REPL_BAD_SEQ))
            snprintf(seqs[n], sizeof seqs[n], "%" PRIu64, ev->seq);
        if (ev)
            gridsync__v1__change_event__free_unpacked(ev, NULL);
        m->h_seq = flags & GS_FUZZ_REPL_NO_SEQ ? NULL : seqs[n];
        m->h_epoch = flags & GS_FUZZ_REPL_OTHER_EPOCH ? "00000000000000e2" : GS_FUZZ_EPOCH;
        m->h_origin = flags & GS_FUZZ_REPL_OTHER_ORIGIN ? "440399" : GS_FUZZ_ORIGIN;
        n++;
    }

    gs_apply_out_t out;
    uint64_t removed = 0;
    if (gs_store_origin_rebaseline(s_store, GS_FUZZ_ORIGIN, gs_fuzz_now_ms(), &removed, &out))
        s_fail("gs_store_origin_rebaseline failed");
    gs_apply_out_clear(&out);
    uint64_t head = 0;
    if (gs_store_head(s_store, &head))
        s_fail("gs_store_head failed");

    gs_repl_result_t res;
    int rc = gs_store_replicate(s_store, GS_FUZZ_ORIGIN, GS_FUZZ_ORIGIN, msgs, n,
                                gs_fuzz_now_ms(), &res, &out);
    if (rc) {
        fprintf(stderr, "fuzz_replicate: gs_store_replicate: %s (%s)\n", gs_store_strerror(rc),
                gs_store_errdetail());
        abort();
    }
    if (res.applied + res.skipped != res.consumed || res.consumed > n)
        s_fail("applied and skipped do not add up to the messages consumed");
    if ((res.consumed < n) != (res.refused != 0))
        s_fail("messages left unconsumed without a refusal, or a refusal of none");
    if (res.refused && (!res.message[0] || res.origin.state != GS_ORIGIN_STOPPED))
        s_fail("a refusal without a message, or the origin not stopped");
    if (out.n_events != res.applied)
        s_fail("not one event per message applied");
    s_check_events(&out, head);
    gs_apply_out_clear(&out);
    if (++s_calls % S_VERIFY_EVERY == 0)
        s_verify();
    return 0;
}

#ifdef GS_FUZZ_LIBFUZZER
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return gs_fuzz_replicate(data, size);
}
#endif

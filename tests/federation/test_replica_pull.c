/*
 * test_replica_pull: the replica's reading of a JetStream pull consumer
 * (broker/gs_replica_pull) against a real nats-server with JetStream on
 * loopback (support/gs_tk_nats) and nats.c: a fetch keeps at most the room
 * its list has and acks nothing it drops (those messages come again from
 * the consumer made anew from the ack floor); the leftovers of a standing
 * request are taken a batch at a time without a request; a fetch that
 * makes requests hands every message once, in order; the ack-subject
 * reader reads both forms of the subject, refuses malformed ones, and
 * agrees with natsMsg_GetMetaData on real deliveries; a standing request
 * delivers messages published after it without another request, and is
 * renewed only when it has less than half a batch or half its life left.
 *
 * Every wait on the server is bounded (s_wait_pending); none is a sleep
 * standing in for a reply.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <nats/nats.h>

#include "gs_broker_int.h"
#include "gs_replica_pull.h"
#include "fed_lib.h"
#include "gs_tk_nats.h"

#define S_PATIENCE_MS 20000         /* a wait on the server gives up after this */

static gs_tk_nats_t s_nats;         /* one server for the whole program */

typedef struct {
    natsConnection *nc;
    jsCtx *js;
} s_conn_t;

static int
s_group_setup(void **state)
{
    (void) state;
    return gs_tk_nats_start(&s_nats, NULL);
}

static int
s_group_teardown(void **state)
{
    (void) state;
    gs_tk_nats_destroy(&s_nats);
    return 0;
}

static void
s_connect(s_conn_t *c)
{
    natsOptions *o = NULL;
    assert_int_equal(natsOptions_Create(&o), NATS_OK);
    assert_int_equal(natsOptions_SetURL(o, s_nats.url), NATS_OK);
    assert_int_equal(natsOptions_SetTimeout(o, 5000), NATS_OK);
    /* as the replica's connection (gs_replica.c's s_connect) */
    assert_int_equal(natsOptions_SetSendAsap(o, true), NATS_OK);
    assert_int_equal(natsConnection_Connect(&c->nc, o), NATS_OK);
    natsOptions_Destroy(o);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    assert_int_equal(natsConnection_JetStream(&c->js, c->nc, &jo), NATS_OK);
}

static void
s_close(s_conn_t *c)
{
    jsCtx_Destroy(c->js);
    natsConnection_Destroy(c->nc);
}

/* "<stream name in lower case>.<last>": a subject of stream's. */
static void
s_subject(const char *stream, const char *last, char *out, size_t size)
{
    snprintf(out, size, "%s.%s", stream, last);
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char) (*p - 'A' + 'a');
}

/* Stream name with subjects "<lower-case name>.>". */
static void
s_add_stream(s_conn_t *c, const char *name)
{
    char subject[64];
    s_subject(name, ">", subject, sizeof subject);
    fed_add_stream(c->js, name, subject, 1);
}

/* Publish messages first..last of stream (data "m<i>"), each stored. */
static void
s_publish(s_conn_t *c, const char *stream, int first, int last)
{
    char subject[64], data[32];
    s_subject(stream, "x", subject, sizeof subject);
    for (int i = first; i <= last; i++) {
        int n = snprintf(data, sizeof data, "m%d", i);
        jsPubAck *pa = NULL;
        jsErrCode jerr = 0;
        natsStatus s = js_Publish(&pa, c->js, subject, data, n, NULL, &jerr);
        if (s != NATS_OK)
            fail_msg("publish %d: %s (%d)", i, natsStatus_GetText(s), (int) jerr);
        assert_int_equal(pa->Sequence, (uint64_t) i);
        jsPubAck_Destroy(pa);
    }
}

/* The durable pull consumer durable of stream, as the replica makes its
 * own (gs_replica.c's s_subscribe): made anew, acks of all before, from
 * stream position start (0: all), and a pull subscription bound to it. */
static natsSubscription *
s_subscribe(s_conn_t *c, const char *stream, const char *durable, uint64_t start)
{
    js_DeleteConsumer(c->js, stream, durable, NULL, NULL);
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = durable;
    cc.AckPolicy = js_AckAll;
    cc.DeliverPolicy = start ? js_DeliverByStartSequence : js_DeliverAll;
    cc.OptStartSeq = start;
    cc.AckWait = 30000000000LL;     /* nothing comes again by itself during a test */
    cc.MaxAckPending = 1000;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_AddConsumer(&ci, c->js, stream, &cc, NULL, &jerr);
    if (s != NATS_OK)
        fail_msg("add consumer %s: %s (%d)", durable, natsStatus_GetText(s), (int) jerr);
    jsConsumerInfo_Destroy(ci);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Consumer = durable;
    natsSubscription *sub = NULL;
    s = js_PullSubscribe(&sub, c->js, NULL, durable, NULL, &so, &jerr);
    if (s != NATS_OK)
        fail_msg("pull subscribe %s: %s (%d)", durable, natsStatus_GetText(s), (int) jerr);
    return sub;
}

/* Wait until sub holds at least want messages (statuses count too),
 * at most S_PATIENCE_MS. Returns what it holds. */
static int
s_wait_pending(natsSubscription *sub, int want)
{
    int64_t deadline = gs_mono_us() + (int64_t) S_PATIENCE_MS * 1000;
    int n = 0;
    for (;;) {
        assert_int_equal(natsSubscription_GetPending(sub, &n, NULL), NATS_OK);
        if (n >= want || gs_mono_us() > deadline)
            return n;
        /* nats.c offers no wake-up on a synchronous subscription's
         * queue: look again shortly */
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
}

/* The stream position of m, from nats.c's own reading of its metadata. */
static uint64_t
s_sseq(natsMsg *m)
{
    jsMsgMetaData *meta = NULL;
    assert_int_equal(natsMsg_GetMetaData(&meta, m), NATS_OK);
    uint64_t sseq = meta->Sequence.Stream;
    jsMsgMetaData_Destroy(meta);
    return sseq;
}

/* Take stream positions first..last from what sub holds, in order, with
 * fetches of only the leftovers (wait_ms 0: gs_rpull_fetch makes no
 * request), each waiting for the subscription to hold something first;
 * at most S_PATIENCE_MS in all. A status a request ends with (its expiry)
 * may come among them: the fetch drops it. */
static void
s_take_leftovers(natsSubscription *sub, int batch, uint64_t first, uint64_t last)
{
    int64_t deadline = gs_mono_us() + (int64_t) S_PATIENCE_MS * 1000;
    uint64_t next = first;
    while (next <= last) {
        if (gs_mono_us() > deadline || s_wait_pending(sub, 1) < 1)
            fail_msg("stream position %llu was not delivered into the subscription",
                     (unsigned long long) next);
        natsMsgList list;
        natsStatus s = gs_rpull_fetch(sub, batch, batch, 0, 0, &list);
        if (s == NATS_TIMEOUT)
            continue;                   /* only a status was there */
        assert_int_equal(s, NATS_OK);
        assert_true(list.Count <= batch);
        for (int i = 0; i < list.Count; i++)
            assert_int_equal(s_sseq(list.Msgs[i]), next++);
        natsMsgList_Destroy(&list);
    }
    assert_int_equal(next, last + 1);
}

static jsConsumerInfo *
s_consumer_info(s_conn_t *c, const char *stream, const char *durable)
{
    jsConsumerInfo *ci = NULL;
    assert_int_equal(js_GetConsumerInfo(&ci, c->js, stream, durable, NULL, NULL), NATS_OK);
    return ci;
}

/* A fetch into a list of room cap keeps cap messages when nats.c hands it
 * more (here: a batch of 4 of the 6 a standing request left in the
 * subscription), writes nothing past them, and acks none of those it
 * drops: the consumer's ack floor stays below them, and they are the first
 * the consumer delivers when made anew from it. */
static void
test_fetch_into_keeps_cap(void **state)
{
    (void) state;
    s_conn_t c;
    s_connect(&c);
    s_add_stream(&c, "CAP");
    natsSubscription *sub = s_subscribe(&c, "CAP", "cap", 0);
    s_publish(&c, "CAP", 1, 6);
    /* a standing request for all six: delivered at once, and it ends */
    gs_rpull_t p;
    gs_rpull_init(&p, "CAP", "cap");
    gs_rpull_ask_ahead(&p, c.nc, sub, 6, 0);
    assert_int_equal(s_wait_pending(sub, 6), 6);

    enum { CAP = 2, BATCH = 4, ROOM = 16 };
    natsMsgList list = { calloc(ROOM, sizeof(natsMsg *)), 0 };
    assert_non_null(list.Msgs);
    assert_int_equal(gs_rpull_fetch_into(sub, BATCH, 1000, &list, CAP), NATS_OK);
    assert_int_equal(list.Count, CAP);
    for (int i = CAP; i < ROOM; i++)
        assert_null(list.Msgs[i]);      /* nothing stored past cap */
    assert_int_equal(s_sseq(list.Msgs[0]), 1);
    assert_int_equal(s_sseq(list.Msgs[1]), 2);
    /* nats.c took the batch: the two past it are still in the subscription */
    int left = 0;
    assert_int_equal(natsSubscription_GetPending(sub, &left, NULL), NATS_OK);
    assert_int_equal(left, 6 - BATCH);

    /* nothing was acked: all six delivered await their ack */
    jsConsumerInfo *ci = s_consumer_info(&c, "CAP", "cap");
    assert_int_equal(ci->Delivered.Stream, 6);
    assert_int_equal(ci->AckFloor.Stream, 0);
    assert_int_equal(ci->NumAckPending, 6);
    jsConsumerInfo_Destroy(ci);
    /* the replica's ack after its commit: the last message kept */
    assert_int_equal(natsMsg_AckSync(list.Msgs[CAP - 1], NULL, NULL), NATS_OK);
    ci = s_consumer_info(&c, "CAP", "cap");
    uint64_t floor = ci->AckFloor.Stream;
    assert_int_equal(floor, CAP);
    assert_int_equal(ci->NumAckPending, 6 - CAP);
    jsConsumerInfo_Destroy(ci);
    natsMsgList_Destroy(&list);
    natsSubscription_Destroy(sub);

    /* made anew from the ack floor: the dropped messages come first */
    sub = s_subscribe(&c, "CAP", "cap", floor + 1);
    uint64_t next = floor + 1;
    while (next <= 6) {
        natsMsgList got = { NULL, 0 };
        natsStatus s = gs_rpull_fetch(sub, 8, (int) (7 - next), 2000, 0, &got);
        if (s == NATS_TIMEOUT)
            fail_msg("stream position %llu did not come again", (unsigned long long) next);
        assert_int_equal(s, NATS_OK);
        for (int i = 0; i < got.Count; i++) {
            char want[16];
            snprintf(want, sizeof want, "m%llu", (unsigned long long) next);
            assert_int_equal(s_sseq(got.Msgs[i]), next);
            assert_int_equal(natsMsg_GetDataLength(got.Msgs[i]), (int) strlen(want));
            assert_memory_equal(natsMsg_GetData(got.Msgs[i]), want, strlen(want));
            next++;
        }
        natsMsgList_Destroy(&got);
    }
    natsSubscription_Destroy(sub);
    s_close(&c);
}

/* The leftovers of a standing request are taken a batch at a time (the
 * list gs_rpull_fetch allocates has room for a batch), in order; with
 * wait_ms 0 no request is made, so an empty subscription gives
 * NATS_TIMEOUT even though the consumer still has messages. */
static void
test_fetch_takes_leftovers_by_batch(void **state)
{
    (void) state;
    s_conn_t c;
    s_connect(&c);
    s_add_stream(&c, "LEFT");
    natsSubscription *sub = s_subscribe(&c, "LEFT", "left", 0);
    s_publish(&c, "LEFT", 1, 6);
    gs_rpull_t p;
    gs_rpull_init(&p, "LEFT", "left");
    gs_rpull_ask_ahead(&p, c.nc, sub, 6, 0);
    assert_int_equal(s_wait_pending(sub, 6), 6);

    natsMsgList list;
    assert_int_equal(gs_rpull_fetch(sub, 4, 4, 0, 0, &list), NATS_OK);
    assert_int_equal(list.Count, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(s_sseq(list.Msgs[i]), (uint64_t) i + 1);
    natsMsgList_Destroy(&list);
    assert_int_equal(gs_rpull_fetch(sub, 4, 4, 0, 0, &list), NATS_OK);
    assert_int_equal(list.Count, 2);
    assert_int_equal(s_sseq(list.Msgs[0]), 5);
    assert_int_equal(s_sseq(list.Msgs[1]), 6);
    natsMsgList_Destroy(&list);

    /* the standing request (6) is used up: these wait in the consumer */
    s_publish(&c, "LEFT", 7, 9);
    assert_int_equal(gs_rpull_fetch(sub, 4, 4, 0, 0, &list), NATS_TIMEOUT);
    assert_int_equal(list.Count, 0);
    /* a fetch that may wait asks for them, a batch at most each time */
    uint64_t next = 7;
    while (next <= 9) {
        assert_int_equal(gs_rpull_fetch(sub, 2, 1, 2000, 0, &list), NATS_OK);
        assert_true(list.Count >= 1 && list.Count <= 2);
        for (int i = 0; i < list.Count; i++)
            assert_int_equal(s_sseq(list.Msgs[i]), next++);
        natsMsgList_Destroy(&list);
    }
    natsSubscription_Destroy(sub);
    s_close(&c);
}

/* A fetch that makes its own requests (no standing one) hands each
 * message once, in stream order, never more than a batch at a time. */
static void
test_fetch_requests_in_order(void **state)
{
    (void) state;
    s_conn_t c;
    s_connect(&c);
    s_add_stream(&c, "ORDER");
    s_publish(&c, "ORDER", 1, 25);
    natsSubscription *sub = s_subscribe(&c, "ORDER", "order", 0);
    uint64_t next = 1;
    int fetches = 0;
    while (next <= 25) {
        natsMsgList list;
        natsStatus s = gs_rpull_fetch(sub, 4, 1, 2000, 0, &list);
        if (s == NATS_TIMEOUT)
            fail_msg("stream position %llu was not delivered", (unsigned long long) next);
        assert_int_equal(s, NATS_OK);
        assert_true(list.Count >= 1 && list.Count <= 4);
        for (int i = 0; i < list.Count; i++)
            assert_int_equal(s_sseq(list.Msgs[i]), next++);
        natsMsgList_Destroy(&list);
        assert_true(++fetches <= 25);
    }
    natsSubscription_Destroy(sub);
    s_close(&c);
}

/* While a standing request may deliver (standing set), a fetch with no
 * leftovers asks for one message and no more, however many are pending:
 * nats.c 3.4.1 can overrun its own array when messages reach the
 * subscription just before a request for several. The rest comes
 * through the standing request, in order. Without the rule the first
 * fetch takes all five (its second request asks for what is pending). */
static void
test_fetch_standing_asks_one(void **state)
{
    (void) state;
    s_conn_t c;
    s_connect(&c);
    s_add_stream(&c, "ONE");
    s_publish(&c, "ONE", 1, 5);
    natsSubscription *sub = s_subscribe(&c, "ONE", "one", 0);
    gs_rpull_t p;
    gs_rpull_init(&p, "ONE", "one");
    assert_int_equal(gs_rpull_standing(&p), 0);
    natsMsgList list;
    assert_int_equal(gs_rpull_fetch(sub, 8, 5, 2000, 1, &list), NATS_OK);
    assert_int_equal(list.Count, 1);
    assert_int_equal(s_sseq(list.Msgs[0]), 1);
    natsMsgList_Destroy(&list);
    gs_rpull_ask_ahead(&p, c.nc, sub, 8, 1);
    assert_int_equal(gs_rpull_standing(&p), 1);
    s_take_leftovers(sub, 8, 2, 5);
    natsSubscription_Destroy(sub);
    s_close(&c);
}

/* gs_rpull_delivery on message m with reply subject reply (not bound to
 * a subscription: natsMsg_GetMetaData would refuse it). */
static int
s_delivery_of(const char *reply, uint64_t *sseq, uint64_t *cseq, int64_t *ts,
              uint64_t *pending)
{
    natsMsg *m = NULL;
    assert_int_equal(natsMsg_Create(&m, "t.x", reply, "d", 1), NATS_OK);
    *sseq = *cseq = *pending = 77;
    *ts = 77;
    int rc = gs_rpull_delivery(m, sseq, cseq, ts, pending);
    natsMsg_Destroy(m);
    return rc;
}

static void
test_delivery_forms(void **state)
{
    (void) state;
    static const struct {
        const char *reply;
        uint64_t sseq, cseq;
        int64_t ts;
        uint64_t pending;
    } ok[] = {
        { "$JS.ACK.STREAM.cons.1.22.33.1700000000123456789.44", 22, 33,
          1700000000123456789LL, 44 },
        /* the newer form: domain and account hash before, a token after */
        { "$JS.ACK.hub.ACCHASHABC.STREAM.cons.2.22.33.1700000000123456789.0.rnd9", 22, 33,
          1700000000123456789LL, 0 },
        { "$JS.ACK._.ACCHASH.S.c.1.5.6.7.8", 5, 6, 7, 8 },  /* without the token */
        { "$JS.ACK.d.a.S.c.1.5.6.7.8.t.u.v.w.x", 5, 6, 7, 8 }, /* 16 tokens */
        /* 19 digits, the most: 9999999999999999999 < 2^64 */
        { "$JS.ACK.S.c.1.9999999999999999999.1.2.3", 9999999999999999999ULL, 1, 2, 3 },
        { "$JS.ACK.S.c.0.0.0.0.0", 0, 0, 0, 0 },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t sseq, cseq, pending;
        int64_t ts;
        if (s_delivery_of(ok[i].reply, &sseq, &cseq, &ts, &pending) != 0)
            fail_msg("refused '%s'", ok[i].reply);
        assert_int_equal(sseq, ok[i].sseq);
        assert_int_equal(cseq, ok[i].cseq);
        assert_int_equal(ts, ok[i].ts);
        assert_int_equal(pending, ok[i].pending);
    }
    static const char *bad[] = {
        "$JS.ACK.S.c.1.2.3.4",                      /* 8 tokens */
        "$JS.ACK.x.S.c.1.2.3.4.5",                  /* 10 */
        "$JS.ACK.S",                                /* 3 */
        "$JS.ACK.",
        "$JS.ACK.d.a.S.c.1.5.6.7.8.t.u.v.w.x.y",    /* 17 */
        "$JS.ACK.S.c.1.2.3.4.5.",                   /* 10, the last empty */
        "$JS.ACK.S.c.1.12345678901234567890.3.4.5", /* 20 digits */
        "$JS.ACK.S.c.1.2.3.00000000000000000001.5", /* 20 digits, small */
        "$JS.ACK.S.c.1.2.3.4.18446744073709551616", /* 2^64 */
        "$JS.ACK.S.c.1..3.4.5",                     /* empty number */
        "$JS.ACK.S.c..2.3.4.5",                     /* empty delivered count */
        "$JS.ACK.S.c.1.2.3.4.",                     /* empty pending */
        "$JS.ACK.S.c.x.2.3.4.5",                    /* delivered count not digits */
        "$JS.ACK.S.c.1.2a.3.4.5",
        "$JS.ACK.S.c.1.2.-3.4.5",
        "$JS.ACK.S.c.1.2.3.+4.5",
        "$JS.ACK.S.c.1.2.3.4. 5",
        "$JS.ACK.d.a.S.c.1.2.3.4.x5.t",             /* newer form, pending not digits */
        "$JS.ACK.d.a.S.c.1.2..4.5.t",               /* newer form, empty number */
        "$JS.ACX.S.c.1.2.3.4.5",                    /* not an ack subject */
        "$JS.ack.S.c.1.2.3.4.5",
        "JS.ACK.S.c.1.2.3.4.5.6",
        "_INBOX.abc.1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t sseq, cseq, pending;
        int64_t ts;
        if (s_delivery_of(bad[i], &sseq, &cseq, &ts, &pending) != -1)
            fail_msg("read '%s'", bad[i]);
        /* nothing set */
        assert_int_equal(sseq, 77);
        assert_int_equal(cseq, 77);
        assert_int_equal(ts, 77);
        assert_int_equal(pending, 77);
    }
    /* no reply at all */
    natsMsg *m = NULL;
    assert_int_equal(natsMsg_Create(&m, "t.x", NULL, "d", 1), NATS_OK);
    uint64_t sseq, cseq, pending;
    int64_t ts;
    assert_int_equal(gs_rpull_delivery(m, &sseq, &cseq, &ts, &pending), -1);
    natsMsg_Destroy(m);
}

/* On real deliveries (of a consumer and of one made anew from a later
 * position; with messages still pending and without), the reader gives
 * what natsMsg_GetMetaData gives. */
static void
test_delivery_matches_metadata(void **state)
{
    (void) state;
    s_conn_t c;
    s_connect(&c);
    s_add_stream(&c, "META");
    s_publish(&c, "META", 1, 10);
    natsSubscription *sub = s_subscribe(&c, "META", "meta", 0);
    int seen = 0;
    for (int round = 0; round < 2; round++) {
        /* the second round: the consumer made anew, the same messages again */
        if (round)
            sub = s_subscribe(&c, "META", "meta", 3);
        for (;;) {
            natsMsgList list;
            natsStatus s = gs_rpull_fetch(sub, 3, 1, 2000, 0, &list);
            if (s == NATS_TIMEOUT)
                break;
            assert_int_equal(s, NATS_OK);
            for (int i = 0; i < list.Count; i++) {
                natsMsg *msg = list.Msgs[i];
                jsMsgMetaData *meta = NULL;
                assert_int_equal(natsMsg_GetMetaData(&meta, msg), NATS_OK);
                uint64_t sseq, cseq, pending;
                int64_t ts;
                if (gs_rpull_delivery(msg, &sseq, &cseq, &ts, &pending) != 0)
                    fail_msg("refused the delivery '%s'", natsMsg_GetReply(msg));
                assert_int_equal(sseq, meta->Sequence.Stream);
                assert_int_equal(cseq, meta->Sequence.Consumer);
                assert_int_equal(ts, meta->Timestamp);
                assert_int_equal(pending, meta->NumPending);
                assert_true(ts > 0);
                jsMsgMetaData_Destroy(meta);
                seen++;
            }
            natsMsgList_Destroy(&list);
        }
        natsSubscription_Destroy(sub);
    }
    assert_int_equal(seen, 10 + 8);
    s_close(&c);
}

/* After gs_rpull_ask_ahead, messages published later are delivered into
 * the subscription with no other request, and a fetch of only the
 * leftovers (wait_ms 0, no request) takes them. */
static void
test_ask_ahead_delivers(void **state)
{
    (void) state;
    s_conn_t c;
    s_connect(&c);
    s_add_stream(&c, "AHEAD");
    natsSubscription *sub = s_subscribe(&c, "AHEAD", "ahead", 0);
    gs_rpull_t p;
    gs_rpull_init(&p, "AHEAD", "ahead");
    assert_string_equal(p.next_subject, "$JS.API.CONSUMER.MSG.NEXT.AHEAD.ahead");
    assert_int_equal(p.ahead_until, 0);
    int64_t before = gs_mono_us();
    gs_rpull_ask_ahead(&p, c.nc, sub, 8, 0);
    assert_int_equal(p.ahead_left, 8);
    assert_true(p.ahead_until >= before + (int64_t) GS_RPULL_AHEAD_EXPIRES_MS * 1000);
    /* the request reaches the server before the messages do (one
     * connection keeps its order), so these are stored after it */
    s_publish(&c, "AHEAD", 1, 5);
    s_take_leftovers(sub, 8, 1, 5);
    /* as the replica does before it applies them: 3 of the 8 left, so
     * a new request stands, and what comes next is delivered the same way */
    gs_rpull_ask_ahead(&p, c.nc, sub, 8, 5);
    assert_int_equal(p.ahead_left, 8);
    s_publish(&c, "AHEAD", 6, 8);
    s_take_leftovers(sub, 8, 6, 8);
    natsSubscription_Destroy(sub);
    s_close(&c);
}

/* A new request is made only when the standing one has less than half a
 * batch (every message consumed counts) or less than half its life left. */
static void
test_ask_ahead_renews(void **state)
{
    (void) state;
    s_conn_t c;
    s_connect(&c);
    s_add_stream(&c, "RENEW");
    natsSubscription *sub = s_subscribe(&c, "RENEW", "renew", 0);
    gs_rpull_t p;
    gs_rpull_init(&p, "RENEW", "renew");
    int64_t far = gs_mono_us() + (int64_t) 3600 * 1000000;  /* an hour of life left */
    p.ahead_until = far;
    p.ahead_left = 8;
    gs_rpull_ask_ahead(&p, c.nc, sub, 8, 4);    /* 4 left: half, not less */
    assert_int_equal(p.ahead_until, far);
    assert_int_equal(p.ahead_left, 4);
    gs_rpull_ask_ahead(&p, c.nc, sub, 8, 1);    /* 3 left: renewed */
    assert_int_equal(p.ahead_left, 8);
    assert_true(p.ahead_until < far);
    /* half its life used: renewed although the batch is whole */
    int64_t soon = gs_mono_us() + (int64_t) GS_RPULL_AHEAD_EXPIRES_MS * 400;
    p.ahead_until = soon;
    gs_rpull_ask_ahead(&p, c.nc, sub, 8, 0);
    assert_int_equal(p.ahead_left, 8);
    assert_true(p.ahead_until > soon);
    /* the renewed request stands: a message published now is delivered */
    s_publish(&c, "RENEW", 1, 1);
    s_take_leftovers(sub, 8, 1, 1);
    natsSubscription_Destroy(sub);
    s_close(&c);
}

/* A quiet origin's fetch makes a request of its own (1 ms, its answer
 * read) when no standing request was made or the last has used half its
 * life, and none (0) while it is fresh: so an error of the consumer is
 * seen within half the life even while other origins stay busy. The
 * state is set directly: no timing. */
static void
test_quiet_wait(void **state)
{
    (void) state;
    gs_rpull_t p;
    gs_rpull_init(&p, "QUIET", "quiet");
    assert_int_equal(gs_rpull_quiet_wait_ms(&p), 1);
    int64_t half = (int64_t) GS_RPULL_AHEAD_EXPIRES_MS * 500;
    p.ahead_until = gs_mono_us() + 2 * half;
    assert_int_equal(gs_rpull_quiet_wait_ms(&p), 0);
    p.ahead_until = gs_mono_us() + half + 500000;
    assert_int_equal(gs_rpull_quiet_wait_ms(&p), 0);
    p.ahead_until = gs_mono_us() + half - 500000;
    assert_int_equal(gs_rpull_quiet_wait_ms(&p), 1);
    p.ahead_until = gs_mono_us() - 1;
    assert_int_equal(gs_rpull_quiet_wait_ms(&p), 1);
}

int
main(void)
{
    if (!gs_tk_nats_available())
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fetch_into_keeps_cap),
        cmocka_unit_test(test_fetch_takes_leftovers_by_batch),
        cmocka_unit_test(test_fetch_requests_in_order),
        cmocka_unit_test(test_fetch_standing_asks_one),
        cmocka_unit_test(test_delivery_forms),
        cmocka_unit_test(test_delivery_matches_metadata),
        cmocka_unit_test(test_ask_ahead_delivers),
        cmocka_unit_test(test_ask_ahead_renews),
        cmocka_unit_test(test_quiet_wait),
    };
    int rc = cmocka_run_group_tests(tests, s_group_setup, s_group_teardown);
    nats_Close();
    return rc;
}

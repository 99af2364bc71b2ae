/*
 * test_nats: the federation tests' NATS kit (support/gs_tk_nats) against
 * the real nats-server and nats.c: a JetStream server starts, keeps what a
 * stream holds across a restart on the same port, deduplicates by
 * Nats-Msg-Id, refuses a publish whose expected last message id is not the
 * stream's, and three servers form a cluster that takes an R3 stream.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <nats/nats.h>

#include "fed_lib.h"
#include "gs_tk_nats.h"

/* Connect to url, with a JetStream context. */
static void
s_connect(const char *url, natsConnection **nc, jsCtx **js)
{
    natsOptions *o = NULL;
    assert_int_equal(natsOptions_Create(&o), NATS_OK);
    assert_int_equal(natsOptions_SetURL(o, url), NATS_OK);
    assert_int_equal(natsOptions_SetTimeout(o, 5000), NATS_OK);
    assert_int_equal(natsConnection_Connect(nc, o), NATS_OK);
    natsOptions_Destroy(o);
    assert_int_equal(natsConnection_JetStream(js, *nc, NULL), NATS_OK);
}

static natsStatus
s_publish(jsCtx *js, const char *subject, const char *id, const char *expect_last)
{
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = id;
    po.ExpectLastMsgId = expect_last;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_Publish(&pa, js, subject, id, (int) strlen(id), &po, &jerr);
    jsPubAck_Destroy(pa);
    return s;
}

static uint64_t
s_count(jsCtx *js, const char *stream)
{
    jsStreamInfo *si = NULL;
    assert_int_equal(js_GetStreamInfo(&si, js, stream, NULL, NULL), NATS_OK);
    uint64_t n = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return n;
}

static void
test_single_server(void **state)
{
    (void) state;
    gs_tk_nats_t n;
    assert_int_equal(gs_tk_nats_start(&n, NULL), 0);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    s_connect(n.url, &nc, &js);
    fed_add_stream(js, "T", "t.>", 1);
    assert_int_equal(s_publish(js, "t.a", "m1", NULL), NATS_OK);
    assert_int_equal(s_publish(js, "t.a", "m1", NULL), NATS_OK); /* deduplicated */
    assert_int_equal(s_count(js, "T"), 1);
    /* the expectation holds the chain: m2 after m1, not after m0 */
    assert_int_not_equal(s_publish(js, "t.a", "m2", "m0"), NATS_OK);
    assert_int_equal(s_publish(js, "t.a", "m2", "m1"), NATS_OK);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);

    /* what the stream holds survives a restart on the same port */
    assert_int_equal(gs_tk_nats_stop(&n, SIGKILL) != 0, 1);
    assert_int_equal(gs_tk_nats_restart(&n), 0);
    s_connect(n.url, &nc, &js);
    assert_int_equal(s_count(js, "T"), 2);
    natsMsg *m = NULL;
    assert_int_equal(js_GetLastMsg(&m, js, "T", "t.a", NULL, NULL), NATS_OK);
    assert_string_equal(natsMsg_GetData(m), "m2");
    natsMsg_Destroy(m);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    gs_tk_nats_destroy(&n);
}

static void
test_cluster(void **state)
{
    (void) state;
    gs_tk_nats_t nodes[3];
    assert_int_equal(gs_tk_nats_cluster_start(nodes, 3, NULL), 0);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    s_connect(nodes[0].url, &nc, &js);
    fed_add_stream(js, "R", "r.>", 3);
    assert_int_equal(s_publish(js, "r.a", "x1", NULL), NATS_OK);
    assert_int_equal(s_count(js, "R"), 1);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    for (int i = 0; i < 3; i++)
        gs_tk_nats_destroy(&nodes[i]);
}

int
main(void)
{
    if (!gs_tk_nats_available())
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_server),
        cmocka_unit_test(test_cluster),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    nats_Close();
    return rc;
}

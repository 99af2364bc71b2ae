/*
 * gs_replica_pull: the replica's fetch from a JetStream pull consumer and
 * its standing request. See gs_replica_pull.h; the design is
 * docs/federation.md ("The city replica").
 */
#include "gs_replica_pull.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gs_broker_int.h"

void
gs_rpull_init(gs_rpull_t *self, const char *stream, const char *durable)
{
    self->ahead_until = 0;
    self->ahead_left = 0;
    snprintf(self->next_subject, sizeof self->next_subject, "$JS.API.CONSUMER.MSG.NEXT.%s.%s",
             stream, durable);
}

/* A delivery's place, from its reply subject, the JetStream ack subject
 * "$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.
 * <timestamp ns>.<pending>" (with "<domain>.<account hash>." before the
 * stream, and a token after, in the newer form), as natsMsg_GetMetaData
 * reads it but without its allocations. Returns 0, or -1 when the reply
 * is not one (the caller asks natsMsg_GetMetaData then). */
int
gs_rpull_delivery(natsMsg *m, uint64_t *sseq, uint64_t *cseq, int64_t *ts, uint64_t *pending)
{
    const char *r = natsMsg_GetReply(m);
    if (!r || strncmp(r, "$JS.ACK.", 8) != 0)
        return -1;
    const char *tok[16];
    size_t len[16], n = 0;
    for (const char *p = r;;) {
        const char *e = strchr(p, '.');
        if (n == 16)
            return -1;
        tok[n] = p;
        len[n++] = e ? (size_t) (e - p) : strlen(p);
        if (!e)
            break;
        p = e + 1;
    }
    size_t at = n == 9 ? 2 : n >= 11 ? 4 : 0;  /* the stream's token */
    if (!at || at + 7 > n)
        return -1;
    uint64_t v[5];
    for (int f = 0; f < 5; f++) {
        const char *t = tok[at + 2 + f];
        size_t l = len[at + 2 + f];
        if (l == 0 || l > 19)   /* below 10^19: no overflow */
            return -1;
        v[f] = 0;
        for (size_t c = 0; c < l; c++) {
            if (t[c] < '0' || t[c] > '9')
                return -1;
            v[f] = v[f] * 10 + (uint64_t) (t[c] - '0');
        }
    }
    *sseq = v[1];
    *cseq = v[2];
    *ts = (int64_t) v[3];
    *pending = v[4];
    return 0;
}

/* One pull request of sub for at most batch messages, "no wait", with an
 * expiry of expires_ms, its messages appended to list, which holds at most
 * cap. nats-server answers such a request with the messages pending now
 * and ends it; only when none are pending does it wait, until the first
 * message comes or the expiry passes. A message the standing request
 * (gs_rpull_ask_ahead) delivered just before the request was made is taken
 * too, beyond batch (see gs_rpull_fetch): what would not fit in list is
 * dropped, and the gap it leaves in the consumer's sequence makes the apply
 * resume from the store (gs_replica.c's s_fetch_apply). Returns NATS_OK
 * (list may have gained nothing), or another status. */
natsStatus
gs_rpull_fetch_into(natsSubscription *sub, int batch, int expires_ms, natsMsgList *list,
                    int cap)
{
    jsFetchRequest req;
    jsFetchRequest_Init(&req);
    req.NoWait = true;
    req.Batch = batch;
    req.Expires = (int64_t) expires_ms * 1000000;
    natsMsgList got = { NULL, 0 };
    natsStatus s = natsSubscription_FetchRequest(&got, sub, &req);
    for (int i = 0; i < got.Count && list->Count < cap; i++) {
        list->Msgs[list->Count++] = got.Msgs[i];
        got.Msgs[i] = NULL;
    }
    natsMsgList_Destroy(&got);     /* and any message beyond cap */
    return s == NATS_NOT_FOUND || s == NATS_TIMEOUT ? NATS_OK : s;
}

/* Fetch one batch of pull subscription sub into *list (free with
 * natsMsgList_Destroy); the fetch of an origin's consumer and of a repair's. It
 * asks for the `first` messages the last fetch said were still pending
 * (or for one, waiting up to wait_ms for it), then for exactly the
 * messages the last of those says are still pending (its metadata), up to
 * a batch. Each request is for messages the stream holds, so it ends as
 * soon as they are delivered, however slowly a loaded server delivers
 * them; the two share wait_ms as their expiry, so a fetch takes at most
 * that long, as one request for a batch would. A request for a whole batch is
 * not used: nats-server 2.9 ends a request that has delivered only once
 * it finds nothing more pending, so while messages come faster than it
 * delivers (a burst, a loaded server) such a request runs on to its batch
 * or its expiry, and the fetch holds what it has all that time (up to the
 * idle wait, 100 ms). So a message is applied about as soon as it is
 * there, in a batch of whatever came meanwhile, and a quiet origin costs
 * one request per wait_ms.
 *
 * Messages can be left in the subscription by an earlier request: the one
 * gs_rpull_ask_ahead made while the last batch was applied, or one whose fetch
 * had given up or was ended early by a late status.
 * nats.c 3.4.1 takes such messages first and then counts the new
 * request's messages against the batch less those, never meeting it, so
 * that a fetch can gather more messages than its list holds, written past
 * its end; and where only statuses were left (the end of a request) it
 * makes a request of its own, whose late status is then left in turn. So
 * leftovers are taken by a fetch that makes no request at all: its expiry,
 * 1 ns, is 0 ms to nats.c, so its deadline has passed once it has taken
 * what is there (at most a batch, statuses dropped), and it returns them.
 * A request is made only when no message was left; and a fetch that had
 * messages left asks for no more: it returns them at once, to be applied,
 * and the request gs_rpull_ask_ahead makes before they are applied brings what
 * came after them meanwhile. With wait_ms 0 only the leftovers are taken
 * (no request at all). Returns NATS_OK with at least one message,
 * NATS_TIMEOUT when there were none, or another status. */
natsStatus
gs_rpull_fetch(natsSubscription *sub, int batch, int first, int wait_ms, int standing,
               natsMsgList *list)
{
    list->Msgs = calloc((size_t) batch, sizeof *list->Msgs);
    list->Count = 0;
    if (!list->Msgs)
        return NATS_NO_MEMORY;
    natsStatus s = NATS_OK;
    int left = 0;
    int64_t deadline = gs_mono_us() + (int64_t) (wait_ms > 0 ? wait_ms : 1) * 1000;
    if (natsSubscription_GetPending(sub, &left, NULL) == NATS_OK && left > 0) {
        jsFetchRequest req;
        jsFetchRequest_Init(&req);
        req.NoWait = true;
        req.Batch = left < batch ? left : batch;
        req.Expires = 1;        /* past once the leftovers are taken: no request */
        natsMsgList got = { NULL, 0 };
        s = natsSubscription_FetchRequest(&got, sub, &req);
        for (int i = 0; i < got.Count; i++) {  /* at most req.Batch: room for them */
            list->Msgs[list->Count++] = got.Msgs[i];
            got.Msgs[i] = NULL;
        }
        natsMsgList_Destroy(&got);
        if (s == NATS_NOT_FOUND || s == NATS_TIMEOUT)
            s = NATS_OK;
    }
    /* While a standing request may deliver, a message can reach the
     * subscription between the check above and nats.c's fetch, which
     * then takes it first: with a request for more than one message, the
     * overrun described above (inside nats.c's own array, which no cap of
     * ours guards). A request for one message cannot overrun: nats.c ends
     * it at the first message, whichever request delivered it. The rest
     * of what is pending comes through the standing request. */
    int asked = s == NATS_OK && list->Count == 0 && wait_ms > 0;
    if (asked)
        s = gs_rpull_fetch_into(sub, standing ? 1 : first < 1 ? 1 : first > batch ? batch : first,
                                wait_ms > 0 ? wait_ms : 1, list, batch);
    jsMsgMetaData *meta = NULL;
    int64_t rest_ms = (deadline - gs_mono_us()) / 1000;
    if (asked && !standing && s == NATS_OK && list->Count > 0 && list->Count < batch &&
        rest_ms >= 1 &&
        natsSubscription_GetPending(sub, &left, NULL) == NATS_OK && left == 0 &&
        natsMsg_GetMetaData(&meta, list->Msgs[list->Count - 1]) == NATS_OK &&
        meta->NumPending > 0) {
        uint64_t want = (uint64_t) (batch - list->Count);
        if (meta->NumPending < want)
            want = meta->NumPending;
        s = gs_rpull_fetch_into(sub, (int) want, (int) rest_ms, list, batch);
    }
    jsMsgMetaData_Destroy(meta);
    if (list->Count)
        return NATS_OK;
    natsMsgList_Destroy(list);
    return s == NATS_OK || s == NATS_NOT_FOUND ? NATS_TIMEOUT : s;
}

int
gs_rpull_standing(const gs_rpull_t *p)
{
    /* the server's expiry runs from its receipt of the request, a little
     * after ahead_until was set: a second's margin */
    return p->ahead_until != 0 && gs_mono_us() < p->ahead_until + 1000000;
}

int
gs_rpull_quiet_wait_ms(const gs_rpull_t *p)
{
    return p->ahead_until - gs_mono_us() <= (int64_t) GS_RPULL_AHEAD_EXPIRES_MS * 500 ? 1 : 0;
}

/* Keep a pull request of sub's consumer standing, without waiting for its
 * answer: a request for a batch that is not "no wait", on the
 * subscription's own reply subject, so that nats-server delivers each
 * message into the subscription as soon as it is stored, while the store
 * applies and commits the batch before; the next gs_rpull_fetch then finds every
 * message stored up to then among the leftovers. (A "no wait" request
 * would end as soon as nothing was pending, and a message stored later in
 * the apply would wait at the server for the next request, one batch
 * more.) A new request is made when the last one has less than half a
 * batch (counting every message consumed as its) or less than half its
 * expiry (GS_RPULL_AHEAD_EXPIRES_MS) left; an older one stands until its batch is
 * delivered or it expires, so a few may stand at once, and the consumer's
 * MaxAckPending (four batches) bounds what they deliver, as for any
 * request. Nothing is acked earlier for it: each batch is still
 * acked after its commit, and what a request delivers after the
 * subscription is dropped comes again from the consumer made anew
 * (gs_replica.c's s_subscribe). Called before each batch is applied, with consumed the
 * messages of that batch, and before a quiet origin's fetch of only its
 * leftovers, with 0. */
void
gs_rpull_ask_ahead(gs_rpull_t *self, natsConnection *nc, natsSubscription *sub, int batch,
                   size_t consumed)
{
    int64_t now = gs_mono_us();
    self->ahead_left -= (int64_t) consumed;
    if (self->ahead_until - now > (int64_t) GS_RPULL_AHEAD_EXPIRES_MS * 500 &&
        self->ahead_left >= batch / 2)
        return;
    const char *inbox = natsSubscription_GetSubject(sub);
    if (!inbox)
        return;
    char req[96];
    int n = snprintf(req, sizeof req, "{\"batch\":%d,\"expires\":%lld}", batch,
                     (long long) GS_RPULL_AHEAD_EXPIRES_MS * 1000000);
    /* a request that is not sent only costs the next fetch its wait */
    if (natsConnection_PublishRequest(nc, self->next_subject, inbox, req, n) == NATS_OK) {
        self->ahead_until = now + (int64_t) GS_RPULL_AHEAD_EXPIRES_MS * 1000;
        self->ahead_left = batch;
    }
}

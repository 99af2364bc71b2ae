/*
 * gs_replica_pull: the city replica's reading of a JetStream pull
 * consumer (docs/federation.md, "The city replica"). It fetches a batch
 * from a pull subscription around nats.c 3.4.1's quirks (messages an
 * earlier request left in the subscription, a fetch that can gather more
 * than its batch), keeps a pull request standing so that messages stored
 * while a batch is applied are delivered meanwhile, and reads a delivery's
 * place from its JetStream ack subject without nats.c's allocations. The
 * replica thread (gs_replica.c) calls it for each origin's consumer and
 * for a repair's; it applies, acks and repairs nothing itself, and acks no
 * message: what it drops comes again from the consumer.
 *
 * Threads: gs_rpull_delivery is pure (any thread). The others run on the
 * thread that owns the subscription (the gs-replica thread): nats.c allows
 * one fetch at a time per subscription.
 */
#ifndef GS_REPLICA_PULL_H
#define GS_REPLICA_PULL_H

#include <nats/nats.h>
#include <stddef.h>
#include <stdint.h>

#define GS_RPULL_AHEAD_EXPIRES_MS 5000 /* the standing pull request lives at most this long */

/* One origin's pull state: the request subject of its consumer and the
 * request standing on its subscription. Embedded in the replica's origin;
 * gs_rpull_init sets it up for each subscription made. */
typedef struct gs_rpull {
    int64_t ahead_until;            /* gs_mono_us when its standing pull request
                                     * expires (0: none open) */
    int64_t ahead_left;             /* messages that request may still deliver (an
                                     * estimate: every message consumed counts) */
    char next_subject[160];         /* its consumer's pull request subject (under the
                                     * JetStream API's default prefix, as the
                                     * replica's jsCtx's) */
} gs_rpull_t;

/* Set self up for a new pull subscription of the durable consumer durable
 * of stream stream: its request subject, no request standing. */
void gs_rpull_init(gs_rpull_t *self, const char *stream, const char *durable);

/* The place of the delivery m from its reply subject, the JetStream ack
 * subject, either form: "$JS.ACK.<stream>.<consumer>.<delivered>.<stream
 * seq>.<consumer seq>.<timestamp ns>.<pending>", or the newer one with
 * "<domain>.<account hash>." before the stream and a token after. The same
 * values as natsMsg_GetMetaData, without its allocations. Returns 0 with
 * *sseq, *cseq, *ts, *pending set, or -1 (nothing set) when m has no reply
 * or it is not such a subject: another prefix, fewer than 9 tokens, 10, or
 * more than 16, a number field empty, not all digits or of more than 19
 * digits (the caller asks natsMsg_GetMetaData then). Any thread. */
int gs_rpull_delivery(natsMsg *m, uint64_t *sseq, uint64_t *cseq, int64_t *ts,
                      uint64_t *pending);

/* One "no wait" pull request of sub for at most batch messages, expiring
 * after expires_ms, its messages appended to list (list->Msgs has room for
 * cap), which never holds more than cap: messages nats.c hands beyond it
 * are destroyed, not acked (they come again from the consumer). Returns
 * NATS_OK (list may have gained nothing: no message, or a 404/408 status)
 * or nats.c's status. The subscription's thread. */
natsStatus gs_rpull_fetch_into(natsSubscription *sub, int batch, int expires_ms,
                               natsMsgList *list, int cap);

/* Fetch at most batch messages of pull subscription sub into *list (its
 * array allocated here, room for batch; free with natsMsgList_Destroy):
 * the messages earlier requests left in the subscription, without a
 * request, if there are any; else, with wait_ms > 0, a request for first
 * (1 to batch) messages waiting up to wait_ms, then one for what the last
 * of those says is still pending, within the same wait_ms. standing says
 * that a standing request (gs_rpull_ask_ahead) may still deliver into sub
 * (gs_rpull_standing): then the request is for one message only and no
 * second one is made, since nats.c 3.4.1 can write past its own array when
 * messages reach sub just before a request for several. With wait_ms 0
 * only the leftovers are taken. Returns NATS_OK with at least one message,
 * NATS_TIMEOUT when there were none (list empty), NATS_NO_MEMORY, or
 * another nats.c status (list empty). The subscription's thread. */
natsStatus gs_rpull_fetch(natsSubscription *sub, int batch, int first, int wait_ms,
                          int standing, natsMsgList *list);

/* The wait of a quiet origin's fetch while other origins are busy: 0 (take
 * what the standing request delivered, make no request) while p's standing
 * request has more than half its life left; else 1 ms, a request of its
 * own whose answer is read (the standing request's never is, so an error
 * of the consumer, deleted or its stream made anew, is seen this way),
 * after which the caller stands a new request (gs_rpull_ask_ahead). So a
 * quiet origin makes at most one such request every
 * GS_RPULL_AHEAD_EXPIRES_MS / 2. */
int gs_rpull_quiet_wait_ms(const gs_rpull_t *p);

/* 1 when p's standing request may still deliver (made, and not past its
 * expiry by more than a second), else 0. */
int gs_rpull_standing(const gs_rpull_t *p);

/* Keep a pull request for batch messages standing on sub (whose consumer
 * self was set up for), published on connection nc without waiting for
 * an answer: its messages are delivered into sub, for the next
 * gs_rpull_fetch. consumed is the messages taken from sub since the last
 * call (they count against the standing request). A new request is made
 * only when the standing one has less than half of batch or less than half
 * its life left; a request that cannot be sent is not reported (the next
 * fetch then waits for its own). The subscription's thread. */
void gs_rpull_ask_ahead(gs_rpull_t *self, natsConnection *nc, natsSubscription *sub,
                        int batch, size_t consumed);

#endif

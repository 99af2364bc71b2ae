/*
 * gs_writer: the broker's writer thread, the one writer of the store.
 *
 * Group commit: it waits for one upload from the frontend (a gs_job_t on
 * GS_EP_WRITER, already authorised and prepared), then takes whatever else
 * is queued, up to batch-max-records records, waiting up to
 * batch-linger-us for more. It makes one gs_store_apply call, which is one
 * durable transaction. Only after the commit returns does it queue every
 * ack for the frontend (GS_EP_REPLIES) and hand the batch's events to the
 * publisher (GS_EP_EVENTS). When the commit fails, every upload of the
 * batch gets a retry-later error (gs_serve_commit_error) and nothing is
 * stored. A NULL job is the frontend's drain marker: the writer commits
 * what it holds, answers it, reports "done" (a NULL reply) and returns.
 *
 * Thread safety: gs_writer_new and gs_writer_destroy on the thread that
 * builds and destroys the broker; gs_writer_main is the body of the
 * gs-writer thread, and the object is that thread's while it runs.
 */
#ifndef GS_WRITER_H
#define GS_WRITER_H

#include "gs_broker_int.h"

/* The writer of broker b, with its group's tables for b's
 * batch-max-records allocated now, where a failure can still be reported.
 * NULL when memory runs out (the caller logs it). */
gs_writer_t *gs_writer_new(gs_broker_t *b);

void gs_writer_destroy(gs_writer_t **self_p);

/* The writer thread's body (arg: the gs_writer_t). Connects to the
 * broker's inproc endpoints, which gs_broker_new bound. Returns NULL after
 * the drain marker, or when the context is shut down (ETERM). */
void *gs_writer_main(void *arg);

#endif

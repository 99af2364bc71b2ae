/*
 * gs_reader: the broker's reader threads (readers, default 2).
 *
 * Each takes jobs from the frontend (GS_EP_READERS, load-balanced): sync
 * and snapshot requests, already authorised, and admin requests. Each is
 * answered by the handlers of gs_serve from read-only LMDB transactions,
 * which never block the writer, and the reply goes back to the frontend
 * (GS_EP_REPLIES). A NULL job is the drain marker: the reader reports
 * "done" (a NULL reply) and returns.
 *
 * Thread safety: gs_reader_main is the body of each gs-reader-N thread; it
 * reads only what gs_broker_int.h lets every thread read.
 */
#ifndef GS_READER_H
#define GS_READER_H

#include "gs_broker_int.h"

/* A reader's two sockets: jobs in (PULL on GS_EP_READERS), replies out
 * (PUSH on GS_EP_REPLIES). gs_broker_run opens them on its own thread
 * before any reader starts, so every reader is connected before the
 * frontend sends a job: the frontend's PUSH deals its drain markers, one
 * a reader, only among the readers connected at the time, and a reader
 * still connecting would never get one (the broker would wait for it for
 * ever). The sockets then belong to the reader thread until it is joined. */
typedef struct gs_reader {
    gs_broker_t *b;
    void *in;
    void *out;
} gs_reader_t;

/* Create and connect r's sockets. 0, or -1 with errno (r then holds
 * none). */
int gs_reader_open(gs_reader_t *r, gs_broker_t *b);

/* Close r's sockets (before the thread started, or after it was joined).
 * Idempotent. */
void gs_reader_close(gs_reader_t *r);

/* A reader thread's body (arg: its gs_reader_t, opened). Returns NULL
 * after the drain marker, or when the context is shut down (ETERM). */
void *gs_reader_main(void *arg);

#endif

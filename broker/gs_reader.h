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

/* A reader thread's body (arg: the gs_broker_t). Returns NULL after the
 * drain marker, or when the context is shut down (ETERM). */
void *gs_reader_main(void *arg);

#endif

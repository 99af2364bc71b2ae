/*
 * gs_handoff: what the broker's threads pass each other. Internal to broker/.
 *
 * Hand-offs between threads carry a pointer in an inproc message: the
 * decoded request (and the arena it lives in) moves from the frontend to a
 * worker as a gs_job_t and the reply moves back as a gs_reply_t, without
 * copying. Whoever receives a pointer owns it. A NULL pointer is a control
 * message ("drain" to a worker, "done" back from it).
 *
 * Thread safety: a job or reply belongs to one thread at a time, the one
 * that last received its pointer.
 */
#ifndef GS_HANDOFF_H
#define GS_HANDOFF_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "gs_arena.h"
#include "gs_store.h"
#include "gs_wire.h"
#include "gridsync.pb-c.h"

/* Where a reply goes. */
enum { GS_TO_ROUTER = 0, GS_TO_ADMIN = 1 };

/* A request on its way from the frontend to a worker. */
typedef struct gs_job {
    zmq_msg_t identity;         /* ROUTER routing id of the client */
    int req_style;              /* 1: client used REQ; reply needs the empty delimiter */
    int target;                 /* GS_TO_ROUTER or GS_TO_ADMIN */
    uint64_t request_id;        /* echoed in the reply */
    gs_arena_t *arena;          /* owns the decoded request */
    Gridsync__V1__Request *req; /* decoded request (device side) */
    Gridsync__V1__AdminRequest *admin; /* decoded request (admin side) */
    int64_t recv_us;            /* monotonic receive time, for ack latency */
    gs_prepared_t *prepared;    /* uploads: validated, packed, hashed by the frontend */
    zmq_msg_t frame;            /* uploads: the request's bytes, which prepared records
                                 * kept as their packed form point into */
    int has_frame;              /* 1: frame holds them (closed with the job) */
    char **prefixes;            /* the sender's grid prefixes (arena); none = nothing */
    size_t n_prefixes;          /* how many */
    int scope_all;              /* 1: the sender may write every grid (gs_authz) */
    Gridsync__V1__Device *dev;  /* the sender's registry entry (owned; NULL for an
                                 * unregistered sender in --insecure-dev): its role,
                                 * department and categories for the incident
                                 * workflow and gs_authz_record */
} gs_job_t;

/* A reply on its way back to the frontend. */
typedef struct gs_reply {
    zmq_msg_t identity;         /* moved from the job */
    int req_style;              /* as in the job */
    int target;                 /* as in the job */
    zmq_msg_t body;             /* packed Reply / AdminReply */
    int64_t recv_us;            /* as in the job; 0 = no latency sample */
} gs_reply_t;

/* Send pointer p (NULL: a control message) on an inproc socket: 0 or -1. */
int gs_ptr_send(void *sock, void *p);

/* Receive a pointer; returns 0 and sets *p, or -1 (EAGAIN, ETERM, EINTR). */
int gs_ptr_recv(void *sock, void **p, int flags);

/* Free a job, its arena and its identity; NULLs *job_p; safe on NULL. */
void gs_job_destroy(gs_job_t **job_p);

/* Hand the events of a committed apply to the publisher over sock (the
 * broker's to_publisher), as one pointer the publisher then owns and
 * frees; *out is left empty either way. With no events, or when the
 * hand-off fails (no memory, the socket closing), the events are freed
 * here: subscribers then miss them live and repair from the sync service,
 * as after any lost feed message. Thread: the one that owns sock (the
 * writer, or the replica in its place). */
void gs_events_hand(void *sock, gs_apply_out_t *out);

/* A reply for job from a finished buffer (copied): the job's identity
 * moves into it. NULL when memory runs out. */
gs_reply_t *gs_reply_new(gs_job_t *job, const uint8_t *data, size_t len);

/* As gs_reply_new from the bytes of wb, which a reply of GS_REPLY_TAKE_MIN
 * bytes or more takes over without a copy (a sync page is megabytes),
 * leaving wb empty on a fresh buffer of the same capacity; a smaller one,
 * or one when memory runs short, is copied. NULL when memory runs out. */
#define GS_REPLY_TAKE_MIN (64 * 1024)
gs_reply_t *gs_reply_take(gs_job_t *job, gs_wbuf_t *wb);

void gs_reply_destroy(gs_reply_t **r_p);

#endif

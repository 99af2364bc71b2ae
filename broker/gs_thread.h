/*
 * gs_thread: how gridsyncd starts its own threads.
 *
 * SIGTERM and SIGINT ask the broker to drain. The kernel delivers a
 * process-directed signal to any thread that does not block it, and a
 * blocking call in that thread (zmq_recv, poll) then fails with EINTR. Only
 * the frontend thread (the one that calls gs_broker_run) is meant to see
 * them: every other thread is started with all asynchronous signals
 * blocked, so the drain begins in one place and no worker is interrupted
 * half-way. ZeroMQ's own I/O threads block signals the same way.
 */
#ifndef GS_THREAD_H
#define GS_THREAD_H

#include <pthread.h>

/* pthread_create with every signal blocked in the new thread (synchronous
 * faults such as SIGSEGV still end the process), named name (at most 15
 * characters: what top -H, gdb and /proc/PID/task/TID/comm show). Returns 0
 * or an errno value, as pthread_create does. Any thread may call it. */
int gs_thread_start(pthread_t *thread, const char *name, void *(*fn)(void *), void *arg);

#endif

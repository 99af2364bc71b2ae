/*
 * gs_arena: a bump allocator that protobuf-c can unpack into.
 *
 * Where it sits: the broker unpacks every request into an arena and frees
 * the whole arena after the reply, instead of one free() per string and
 * sub-message; generators build records in one. Replacement strings made by
 * validation (normalised ID numbers) come from the same arena, so a message
 * is always released in one step.
 *
 * Not thread-safe: one arena belongs to one thread at a time.
 */
#ifndef GS_ARENA_H
#define GS_ARENA_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

typedef struct gs_arena gs_arena_t;

/* New arena whose first block holds block_size bytes (0 = 64 KiB). NULL on
 * allocation failure. */
gs_arena_t *gs_arena_new(size_t block_size);

/* Free every block; sets *self_p to NULL. Safe on NULL and twice. */
void gs_arena_destroy(gs_arena_t **self_p);

/* Allocate size bytes, 16-byte aligned; NULL on failure. Freed only by
 * gs_arena_reset or gs_arena_destroy. */
void *gs_arena_alloc(gs_arena_t *self, size_t size);

/* Copy a NUL-terminated string into the arena. */
char *gs_arena_strdup(gs_arena_t *self, const char *s);

/* Forget every allocation but keep the first block for reuse. */
void gs_arena_reset(gs_arena_t *self);

/* Bytes handed out since the last reset (for limits and metrics). */
size_t gs_arena_used(const gs_arena_t *self);

/* The arena as a protobuf-c allocator: alloc from the arena, free a no-op.
 * Valid as long as the arena. */
ProtobufCAllocator *gs_arena_allocator(gs_arena_t *self);

#endif

/*
 * gs_arena: bump allocation in a chain of blocks. See gs_arena.h.
 * Large requests get a block of their own so one big string does not waste
 * the rest of a normal block.
 */
#include "gs_arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct s_block {
    struct s_block *next;   /* older block, or NULL */
    size_t size;            /* usable bytes after the header */
    size_t used;            /* bytes handed out from this block */
    max_align_t data[];     /* the bytes */
} s_block_t;

struct gs_arena {
    s_block_t *head;        /* block being filled; the chain holds the rest */
    s_block_t *first;       /* the first block, kept across resets */
    size_t block_size;      /* size of ordinary new blocks */
    size_t total;           /* bytes handed out since the last reset */
    ProtobufCAllocator pb;  /* protobuf-c view of this arena */
};

static s_block_t *
s_block_new(size_t size)
{
    s_block_t *b = malloc(sizeof(*b) + size);
    if (!b)
        return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

static void *
s_pb_alloc(void *data, size_t size)
{
    return gs_arena_alloc((gs_arena_t *) data, size);
}

static void
s_pb_free(void *data, void *ptr)
{
    (void) data;
    (void) ptr; /* released with the arena */
}

gs_arena_t *
gs_arena_new(size_t block_size)
{
    gs_arena_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->block_size = block_size ? block_size : 64 * 1024;
    self->first = self->head = s_block_new(self->block_size);
    if (!self->first) {
        free(self);
        return NULL;
    }
    self->pb.alloc = s_pb_alloc;
    self->pb.free = s_pb_free;
    self->pb.allocator_data = self;
    return self;
}

static void
s_free_chain(s_block_t *b, s_block_t *stop)
{
    while (b && b != stop) {
        s_block_t *next = b->next;
        free(b);
        b = next;
    }
}

void
gs_arena_destroy(gs_arena_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gs_arena_t *self = *self_p;
    s_free_chain(self->head, NULL);
    free(self);
    *self_p = NULL;
}

void *
gs_arena_alloc(gs_arena_t *self, size_t size)
{
    size_t need = (size + 15) & ~(size_t) 15;
    if (need < size)
        return NULL; /* overflow */
    if (need == 0)
        need = 16;
    s_block_t *b = self->head;
    if (b->size - b->used < need) {
        size_t bsize = need > self->block_size / 4 ? need : self->block_size;
        s_block_t *nb = s_block_new(bsize);
        if (!nb)
            return NULL;
        if (bsize == need && b->size - b->used > 0) {
            /* oversized request: keep filling the current block afterwards */
            nb->next = b->next;
            b->next = nb;
            nb->used = need;
            self->total += need;
            return nb->data;
        }
        nb->next = b;
        self->head = b = nb;
    }
    void *p = (char *) b->data + b->used;
    b->used += need;
    self->total += need;
    return p;
}

char *
gs_arena_strdup(gs_arena_t *self, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = gs_arena_alloc(self, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

void
gs_arena_reset(gs_arena_t *self)
{
    /* free every block but the first (oversized blocks may sit after it) */
    s_block_t *b = self->head;
    while (b) {
        s_block_t *next = b->next;
        if (b != self->first)
            free(b);
        b = next;
    }
    self->head = self->first;
    self->first->next = NULL;
    self->first->used = 0;
    self->total = 0;
}

size_t
gs_arena_used(const gs_arena_t *self)
{
    return self->total;
}

ProtobufCAllocator *
gs_arena_allocator(gs_arena_t *self)
{
    return &self->pb;
}

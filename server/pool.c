#include "pool.h"

#include "buf.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

struct pool_chunk {
    struct pool_chunk *next;
    size_t size; /* bytes of data */
    alignas(max_align_t) unsigned char data[];
};

struct pool_cleanup {
    struct pool_cleanup *next;
    void (*fn)(void *arg);
    void *arg;
};

#define ALIGN       alignof(max_align_t)
#define round_up(n) (((n) + ALIGN - 1) & ~(size_t)(ALIGN - 1))

static struct pool_chunk *chunk_new(size_t size)
{
    struct pool_chunk *c = xmalloc(sizeof *c + size);
    c->size = size;
    c->next = NULL;
    return c;
}

void *pool_alloc(struct pool *p, size_t n)
{
    size_t need = round_up(n ? n : 1);
    if (need > POOL_CHUNK / 4) {
        /* A chunk of its own, behind the current one, which keeps its room for small pieces. */
        struct pool_chunk *c = chunk_new(need);
        if (p->chunks) {
            c->next = p->chunks->next;
            p->chunks->next = c;
        } else {
            c->next = NULL;
            p->chunks = c;
            p->used = need;
        }
        memset(c->data, 0, need);
        return c->data;
    }
    if (!p->chunks || p->used + need > p->chunks->size) {
        struct pool_chunk *c = chunk_new(POOL_CHUNK);
        c->next = p->chunks;
        p->chunks = c;
        p->used = 0;
    }
    void *mem = p->chunks->data + p->used;
    p->used += need;
    memset(mem, 0, need);
    return mem;
}

char *pool_strndup(struct pool *p, const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *copy = pool_alloc(p, len + 1);
    memcpy(copy, s, len);
    return copy; /* zeroed: terminated */
}

char *pool_strdup(struct pool *p, const char *s)
{
    return pool_strndup(p, s, strlen(s));
}

void pool_on_free(struct pool *p, void (*fn)(void *arg), void *arg)
{
    struct pool_cleanup *c = pool_alloc(p, sizeof *c);
    *c = (struct pool_cleanup){p->cleanups, fn, arg};
    p->cleanups = c;
}

void pool_free(struct pool *p)
{
    /* A cleanup may take more from the pool (or add a cleanup): run until none is left. */
    while (p->cleanups) {
        struct pool_cleanup *c = p->cleanups;
        p->cleanups = c->next;
        c->fn(c->arg);
    }
    for (struct pool_chunk *c = p->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    p->chunks = NULL;
    p->used = 0;
}

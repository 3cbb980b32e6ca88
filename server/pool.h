/* pool: memory that lives as long as one request, freed all at once (h2o's req->pool).
 *
 * A request's pieces of unknown number and size (response headers, the invalid fields and
 * conflicts it reports, what phases keep between their steps) are taken from its pool and never
 * freed one by one: pool_free() at the request's completion returns all of them. Allocation
 * bumps a pointer in a chunk; a chunk is POOL_CHUNK bytes, made on first use, so a request that
 * needs nothing costs nothing. A piece larger than a quarter chunk gets a chunk of its own.
 *
 * A zeroed struct pool is an empty pool, ready to use. Memory is aligned for any type and zeroed.
 * Out of memory is fatal, as everywhere in werklabd (buf.h). Not thread-safe: a request is on
 * one thread at a time. */
#ifndef WERKLAB_POOL_H
#define WERKLAB_POOL_H

#include <stddef.h>

#define POOL_CHUNK 4096

struct pool_chunk;

struct pool_cleanup;

struct pool {
    struct pool_chunk *chunks;     /* the newest first; bumping happens in the first */
    size_t used;                   /* bytes taken in the first chunk */
    struct pool_cleanup *cleanups; /* the newest first */
};

/* n zeroed bytes, valid until pool_free(). n may be 0 (a valid, unique pointer). */
void *pool_alloc(struct pool *p, size_t n);
/* Copies of s (NUL-terminated), and of at most n bytes of s, in the pool. */
char *pool_strdup(struct pool *p, const char *s);
char *pool_strndup(struct pool *p, const char *s, size_t n);
/* Runs fn(arg) at pool_free(), before the memory goes: for what is not the pool's own (a
 * database result, a parsed document). Cleanups run newest first. */
void pool_on_free(struct pool *p, void (*fn)(void *arg), void *arg);
/* Runs the cleanups, then returns every piece to the system and leaves the pool empty (and usable
 * again). */
void pool_free(struct pool *p);

#endif

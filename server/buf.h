/* buf: a growing byte buffer, the one way werklabd assembles output.
 *
 * Out of memory is fatal (the process aborts with a message): no caller has an error path for
 * it, so none pretends to. The buffer keeps a terminating NUL after its contents, so `data` can be
 * read as a C string as long as nothing binary was appended. */
#ifndef WERKLAB_BUF_H
#define WERKLAB_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

struct buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap;
};

/* Makes room for extra more bytes (and the NUL) at once. */
void buf_reserve(struct buf *b, size_t extra);
static inline void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
static inline void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as one double-quoted element of a PostgreSQL array literal ("a\"b"), the way
 * werklabd hands lists of text to SQL as one parameter. */
void buf_put_array_element(struct buf *b, const char *s);
void buf_reset(struct buf *b); /* len = 0, keeps the memory */
void buf_free(struct buf *b);
/* Hands the memory to the caller (free() it) and leaves the buffer empty. Never NULL. */
char *buf_detach(struct buf *b);

/* malloc/calloc/strdup that abort on failure. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Inline: a response is written a few bytes at a time, and these two are on every byte's way. */
static inline void buf_append(struct buf *b, const void *data, size_t len)
{
    if (b->len + len >= b->cap)
        buf_reserve(b, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

static inline void buf_putc(struct buf *b, char c)
{
    if (b->len + 1 >= b->cap)
        buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

#endif

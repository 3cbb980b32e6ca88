/* buf: a growing byte buffer, the one way werklabd assembles output.
 *
 * Out of memory is fatal (the process aborts with a message): no caller has an error path for
 * it, so none pretends to. The buffer keeps a terminating NUL after its contents, so `data` can be
 * read as a C string as long as nothing binary was appended. */
#ifndef WERKLAB_BUF_H
#define WERKLAB_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap;
};

void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
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

#endif

/* jsonw: a direct JSON writer into a struct buf.
 *
 * Responses are written with this, not with jansson: it appends and escapes into one buffer and
 * places commas itself. Misuse (a value where a key is due, nesting deeper than JSONW_MAX_DEPTH,
 * closing what is not open) sets a sticky `failed` flag instead of asserting; check
 * jsonw_finished() once before sending. Strings are taken as UTF-8; a byte that does not belong
 * to a valid UTF-8 sequence (a URL can carry any bytes) is written as U+FFFD, so the output is
 * always valid JSON. */
#ifndef WERKLAB_JSONW_H
#define WERKLAB_JSONW_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>

#define JSONW_MAX_DEPTH 32

struct jsonw {
    struct buf *out;
    int depth;
    bool failed;
    bool key_written;                /* a key was written; its value is next */
    bool has_items[JSONW_MAX_DEPTH]; /* a comma goes before the next item at this depth */
    bool is_object[JSONW_MAX_DEPTH];
};

void jsonw_init(struct jsonw *w, struct buf *out);
void jsonw_object_begin(struct jsonw *w);
void jsonw_object_end(struct jsonw *w);
void jsonw_array_begin(struct jsonw *w);
void jsonw_array_end(struct jsonw *w);
void jsonw_key(struct jsonw *w, const char *key);
void jsonw_string(struct jsonw *w, const char *s);
void jsonw_stringn(struct jsonw *w, const char *s, size_t len);
void jsonw_int(struct jsonw *w, long long v);
void jsonw_bool(struct jsonw *w, bool v);
void jsonw_null(struct jsonw *w);
/* A value written as is: a number or literal PostgreSQL already rendered, or a JSON fragment. */
void jsonw_raw(struct jsonw *w, const char *json);
/* Shorthands for "key": value. A NULL string writes null. */
void jsonw_kv_string(struct jsonw *w, const char *key, const char *s);
void jsonw_kv_int(struct jsonw *w, const char *key, long long v);

/* True when nothing went wrong and every object and array was closed. */
bool jsonw_finished(const struct jsonw *w);

/* Appends s as the contents of a JSON string (no quotes) to b. */
void jsonw_escape(struct buf *b, const char *s, size_t len);

#endif

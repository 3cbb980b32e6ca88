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

/* A member name known before the requests that write it (a resource's field, a literal), kept
 * as the text it is written as, `,"name":`, escaped once: writing it is then one copy, where
 * jsonw_key() measures and escapes the name every time. The comma is written only where one is
 * due. */
struct jsonw_name {
    const char *text;
    size_t len; /* of text, the comma included */
};
/* The name of a literal that needs no escaping (ASCII letters and digits): JSONW_NAME("id") is
 * {",\"id\":", 6}. */
#define JSONW_NAME(literal)                                                                        \
    {                                                                                              \
        ",\"" literal "\":", sizeof(literal) + 3                                                   \
    }
/* Makes the name of key in memory of its own, kept for the life of the process (names are made
 * at startup). */
void jsonw_name_init(struct jsonw_name *n, const char *key);
/* As jsonw_key(), with a name made before. */
void jsonw_key_name(struct jsonw *w, const struct jsonw_name *n);
void jsonw_string(struct jsonw *w, const char *s);
void jsonw_stringn(struct jsonw *w, const char *s, size_t len);
void jsonw_int(struct jsonw *w, long long v);
void jsonw_bool(struct jsonw *w, bool v);
void jsonw_null(struct jsonw *w);
/* A value written as is: a number or literal PostgreSQL already rendered, or a JSON fragment. */
void jsonw_raw(struct jsonw *w, const char *json);
void jsonw_rawn(struct jsonw *w, const char *json, size_t len);
/* Shorthands for "key": value. A NULL string writes null. */
void jsonw_kv_string(struct jsonw *w, const char *key, const char *s);
void jsonw_kv_int(struct jsonw *w, const char *key, long long v);

/* True when nothing went wrong and every object and array was closed. */
bool jsonw_finished(const struct jsonw *w);

/* Appends s as the contents of a JSON string (no quotes) to b. */
void jsonw_escape(struct buf *b, const char *s, size_t len);

#endif

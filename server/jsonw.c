#include "jsonw.h"

#include <stdio.h>
#include <string.h>

void jsonw_init(struct jsonw *w, struct buf *out)
{
    *w = (struct jsonw){.out = out};
}

/* Called before every value: places the comma, and checks that a value may stand here. */
static bool before_value(struct jsonw *w)
{
    if (w->failed)
        return false;
    if (w->depth > 0 && w->is_object[w->depth - 1]) {
        if (!w->key_written) {
            w->failed = true;
            return false;
        }
        w->key_written = false;
        return true;
    }
    if (w->depth > 0) {
        if (w->has_items[w->depth - 1])
            buf_putc(w->out, ',');
        w->has_items[w->depth - 1] = true;
    }
    return true;
}

static void container_open(struct jsonw *w, bool object)
{
    if (!before_value(w))
        return;
    if (w->depth == JSONW_MAX_DEPTH) {
        w->failed = true;
        return;
    }
    buf_putc(w->out, object ? '{' : '[');
    w->is_object[w->depth] = object;
    w->has_items[w->depth] = false;
    w->depth++;
}

static void container_close(struct jsonw *w, bool object)
{
    if (w->failed)
        return;
    if (w->depth == 0 || w->is_object[w->depth - 1] != object || w->key_written) {
        w->failed = true;
        return;
    }
    w->depth--;
    buf_putc(w->out, object ? '}' : ']');
}

void jsonw_object_begin(struct jsonw *w)
{
    container_open(w, true);
}

void jsonw_object_end(struct jsonw *w)
{
    container_close(w, true);
}

void jsonw_array_begin(struct jsonw *w)
{
    container_open(w, false);
}

void jsonw_array_end(struct jsonw *w)
{
    container_close(w, false);
}

/* Length of the valid UTF-8 sequence at s (at most len bytes), or 0 when it is not one. */
static size_t utf8_sequence(const unsigned char *s, size_t len)
{
    size_t n = s[0] >= 0xf0 && s[0] <= 0xf4   ? 4
               : s[0] >= 0xe0 && s[0] <= 0xef ? 3
               : s[0] >= 0xc2 && s[0] <= 0xdf ? 2
                                              : 0;
    if (n == 0 || n > len)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    /* No overlong forms, no surrogates, nothing above U+10FFFF. */
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
        return 0;
    return n;
}

void jsonw_escape(struct buf *b, const char *s, size_t len)
{
    size_t run = 0; /* start of the stretch that needs no escaping */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            /* Text from a URL is bytes, not necessarily UTF-8: keep the JSON valid. */
            size_t n = utf8_sequence((const unsigned char *)s + i, len - i);
            if (n > 0) {
                i += n - 1;
                continue;
            }
            buf_append(b, s + run, i - run);
            buf_append(b, "\\ufffd", 6);
            run = i + 1;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        buf_append(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': buf_append(b, "\\\"", 2); break;
        case '\\': buf_append(b, "\\\\", 2); break;
        case '\n': buf_append(b, "\\n", 2); break;
        case '\r': buf_append(b, "\\r", 2); break;
        case '\t': buf_append(b, "\\t", 2); break;
        default: buf_printf(b, "\\u%04x", c); break;
        }
    }
    buf_append(b, s + run, len - run);
}

void jsonw_key(struct jsonw *w, const char *key)
{
    if (w->failed)
        return;
    if (w->depth == 0 || !w->is_object[w->depth - 1] || w->key_written) {
        w->failed = true;
        return;
    }
    if (w->has_items[w->depth - 1])
        buf_putc(w->out, ',');
    w->has_items[w->depth - 1] = true;
    buf_putc(w->out, '"');
    jsonw_escape(w->out, key, strlen(key));
    buf_append(w->out, "\":", 2);
    w->key_written = true;
}

void jsonw_stringn(struct jsonw *w, const char *s, size_t len)
{
    if (!before_value(w))
        return;
    buf_putc(w->out, '"');
    jsonw_escape(w->out, s, len);
    buf_putc(w->out, '"');
}

void jsonw_string(struct jsonw *w, const char *s)
{
    if (!s) {
        jsonw_null(w);
        return;
    }
    jsonw_stringn(w, s, strlen(s));
}

void jsonw_int(struct jsonw *w, long long v)
{
    if (!before_value(w))
        return;
    buf_printf(w->out, "%lld", v);
}

void jsonw_bool(struct jsonw *w, bool v)
{
    jsonw_raw(w, v ? "true" : "false");
}

void jsonw_null(struct jsonw *w)
{
    jsonw_raw(w, "null");
}

void jsonw_raw(struct jsonw *w, const char *json)
{
    if (!before_value(w))
        return;
    buf_puts(w->out, json);
}

void jsonw_kv_string(struct jsonw *w, const char *key, const char *s)
{
    jsonw_key(w, key);
    jsonw_string(w, s);
}

void jsonw_kv_int(struct jsonw *w, const char *key, long long v)
{
    jsonw_key(w, key);
    jsonw_int(w, v);
}

bool jsonw_finished(const struct jsonw *w)
{
    return !w->failed && w->depth == 0 && !w->key_written;
}

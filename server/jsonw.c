#include "jsonw.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <stdint.h>
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

/* The bytes a string cannot carry as they are: the controls, '"' and '\\', and every byte from
 * 0x80 (the start or the middle of a UTF-8 sequence, which utf8_sequence checks). */
static bool special_byte(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
}

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* Of 8 bytes loaded as one word: nonzero when one of them is special. No false alarms: a byte
 * that is not special never borrows in the subtractions, so the least significant special byte
 * sets its top bit exactly (bytes above it may be marked by its borrow). */
static uint64_t special_in_word(uint64_t v)
{
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    return (v | (v - ones * 0x20) | ((v ^ ones * '"') - ones) | ((v ^ ones * '\\') - ones)) & high;
}
#endif

#ifdef __SSE2__
/* Of the 16 bytes at p, one bit each (bit i for byte i): the special ones. Compared as signed
 * bytes, the controls and the bytes from 0x80 are exactly those below ' '. */
static unsigned special_in_16(const unsigned char *p)
{
    const __m128i space = _mm_set1_epi8(' '), quote = _mm_set1_epi8('"'),
                  backslash = _mm_set1_epi8('\\');
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i special =
        _mm_or_si128(_mm_cmplt_epi8(v, space),
                     _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)));
    return (unsigned)_mm_movemask_epi8(special);
}
#endif

/* The first special byte at or after p, or end. Most text is long runs of plain ASCII: they are
 * passed over 16 bytes at a time (SSE2, which every x86-64 has) or 8 (a word), and copied with
 * one append. A string's last bytes are read as the last whole block, overlapping bytes already
 * found plain, rather than one at a time. */
static inline const unsigned char *plain_end(const unsigned char *p, const unsigned char *end)
{
#ifdef __SSE2__
    if (end - p >= 16) {
        for (; end - p > 16; p += 16) {
            unsigned mask = special_in_16(p);
            if (mask)
                return p + __builtin_ctz(mask);
        }
        unsigned mask = special_in_16(end - 16) >> (16 - (end - p)); /* the bytes from p */
        return mask ? p + __builtin_ctz(mask) : end;
    }
#endif
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (end - p >= 8) {
        uint64_t v, special;
        for (; end - p > 8; p += 8) {
            memcpy(&v, p, sizeof v);
            special = special_in_word(v);
            if (special) /* the least significant byte is the first in memory */
                return p + __builtin_ctzll(special) / 8;
        }
        /* The bytes before p are plain: they borrow nothing, and the first special byte from
         * p on is marked exactly. */
        memcpy(&v, end - 8, sizeof v);
        special = special_in_word(v) >> (8 * (8 - (end - p)));
        return special ? p + __builtin_ctzll(special) / 8 : end;
    }
#endif
    while (p < end && !special_byte(*p))
        p++;
    return p;
}

/* From run, plain up to p, the first special byte: escapes what needs it, copies the plain runs
 * between. */
__attribute__((noinline)) static void escape_rest(struct buf *b, const unsigned char *run,
                                                  const unsigned char *p, const unsigned char *end)
{
    static const char hex[] = "0123456789abcdef";
    while (p != end) {
        unsigned char c = *p;
        if (c >= 0x80) {
            /* Text from a URL is bytes, not necessarily UTF-8: keep the JSON valid. */
            size_t n = utf8_sequence(p, (size_t)(end - p));
            if (n > 0) {
                p = plain_end(p + n, end);
                continue;
            }
            buf_append(b, run, (size_t)(p - run));
            buf_append(b, "\\ufffd", 6);
            run = ++p;
            p = plain_end(p, end);
            continue;
        }
        buf_append(b, run, (size_t)(p - run));
        run = ++p;
        switch (c) {
        case '"': buf_append(b, "\\\"", 2); break;
        case '\\': buf_append(b, "\\\\", 2); break;
        case '\n': buf_append(b, "\\n", 2); break;
        case '\r': buf_append(b, "\\r", 2); break;
        case '\t': buf_append(b, "\\t", 2); break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_append(b, u, sizeof u);
            break;
        }
        }
        p = plain_end(p, end);
    }
    buf_append(b, run, (size_t)(end - run));
}

void jsonw_escape(struct buf *b, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    const unsigned char *special = plain_end(p, end);
    if (special == end) /* the common case: nothing to escape */
        buf_append(b, s, len);
    else
        escape_rest(b, p, special, end);
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

void jsonw_name_init(struct jsonw_name *n, const char *key)
{
    struct buf b = {0};
    buf_append(&b, ",\"", 2);
    jsonw_escape(&b, key, strlen(key));
    buf_append(&b, "\":", 2);
    n->len = b.len;
    n->text = buf_detach(&b);
}

void jsonw_key_name(struct jsonw *w, const struct jsonw_name *n)
{
    if (w->failed)
        return;
    if (w->depth == 0 || !w->is_object[w->depth - 1] || w->key_written) {
        w->failed = true;
        return;
    }
    size_t skip = !w->has_items[w->depth - 1]; /* no comma before the first member */
    w->has_items[w->depth - 1] = true;
    buf_append(w->out, n->text + skip, n->len - skip);
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

void jsonw_rawn(struct jsonw *w, const char *json, size_t len)
{
    if (!before_value(w))
        return;
    buf_append(w->out, json, len);
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

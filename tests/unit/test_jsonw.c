/* jsonw: each case is a script of writer calls, the exact text it must produce and whether the
 * writer must call itself finished afterwards. */
#include "jsonw.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

enum op_kind {
    END,
    OB,  /* object_begin */
    OE,  /* object_end */
    AB,  /* array_begin */
    AE,  /* array_end */
    K,   /* key(s) */
    S,   /* string(s) */
    SN,  /* stringn(s, n) */
    I,   /* int(n) */
    BT,  /* bool(true) */
    BF,  /* bool(false) */
    NUL, /* null */
    RAW, /* raw(s) */
    KVS, /* kv_string(k, s) */
    KVI, /* kv_int(k, n) */
};

struct op {
    enum op_kind kind;
    const char *s;
    long long n;
    const char *k;
};

#define MAX_OPS 24

struct jsonw_case {
    const char *name;
    struct op ops[MAX_OPS];
    const char *want;
    bool finished;
    bool failed;
};

static void run_op(struct jsonw *w, const struct op *op)
{
    switch (op->kind) {
    case END: break;
    case OB: jsonw_object_begin(w); break;
    case OE: jsonw_object_end(w); break;
    case AB: jsonw_array_begin(w); break;
    case AE: jsonw_array_end(w); break;
    case K: jsonw_key(w, op->s); break;
    case S: jsonw_string(w, op->s); break;
    case SN: jsonw_stringn(w, op->s, (size_t)op->n); break;
    case I: jsonw_int(w, op->n); break;
    case BT: jsonw_bool(w, true); break;
    case BF: jsonw_bool(w, false); break;
    case NUL: jsonw_null(w); break;
    case RAW: jsonw_raw(w, op->s); break;
    case KVS: jsonw_kv_string(w, op->k, op->s); break;
    case KVI: jsonw_kv_int(w, op->k, op->n); break;
    }
}

static const struct jsonw_case script_cases[] = {
    /* Well-formed documents. */
    {"empty object", {{OB}, {OE}}, "{}", true, false},
    {"empty array", {{AB}, {AE}}, "[]", true, false},
    {"nothing written", {{END}}, "", true, false},
    {"top-level scalar", {{I, NULL, 42}}, "42", true, false},
    {"top-level string", {{S, "x"}}, "\"x\"", true, false},
    {"object members",
     {{OB},
      {K, "a"},
      {I, NULL, 1},
      {K, "b"},
      {S, "two"},
      {K, "c"},
      {BT},
      {K, "d"},
      {BF},
      {K, "e"},
      {NUL},
      {OE}},
     "{\"a\":1,\"b\":\"two\",\"c\":true,\"d\":false,\"e\":null}",
     true,
     false},
    {"array items",
     {{AB}, {I, NULL, 1}, {I, NULL, -2}, {S, ""}, {NUL}, {RAW, "1.50"}, {AE}},
     "[1,-2,\"\",null,1.50]",
     true,
     false},
    {"nesting and commas",
     {{OB},     {K, "a"}, {AB}, {I, NULL, 1}, {AB}, {AE}, {OB}, {K, "b"}, {NUL}, {OE}, {AE},
      {K, "c"}, {OB},     {OE}, {K, "d"},     {AB}, {AB}, {AB}, {AE},     {AE},  {AE}, {OE}},
     "{\"a\":[1,[],{\"b\":null}],\"c\":{},\"d\":[[[]]]}",
     true,
     false},
    {"arrays of objects",
     {{AB}, {OB}, {OE}, {OB}, {KVI, NULL, 1, "x"}, {OE}, {OB}, {OE}, {AE}},
     "[{},{\"x\":1},{}]",
     true,
     false},
    {"shorthands",
     {{OB}, {KVS, "v", 0, "s"}, {KVS, NULL, 0, "null"}, {KVI, NULL, 7, "i"}, {OE}},
     "{\"s\":\"v\",\"null\":null,\"i\":7}",
     true,
     false},
    {"string NULL is null", {{AB}, {S, NULL}, {AE}}, "[null]", true, false},
    {"int extremes",
     {{AB}, {I, NULL, LLONG_MAX}, {I, NULL, LLONG_MIN}, {I, NULL, 0}, {AE}},
     "[9223372036854775807,-9223372036854775808,0]",
     true,
     false},
    {"raw object fragment",
     {{OB}, {K, "r"}, {RAW, "{\"x\":[1]}"}, {K, "n"}, {I, NULL, 2}, {OE}},
     "{\"r\":{\"x\":[1]},\"n\":2}",
     true,
     false},

    /* Escaping. */
    {"quotes and backslashes", {{S, "a\"b\\c\"\\"}}, "\"a\\\"b\\\\c\\\"\\\\\"", true, false},
    {"newline, tab, return", {{S, "1\n2\t3\r"}}, "\"1\\n2\\t3\\r\"", true, false},
    {"control characters",
     {{S, "\x01|\x08|\x0c|\x1f"}},
     "\"\\u0001|\\u0008|\\u000c|\\u001f\"",
     true,
     false},
    {"DEL and slash pass", {{S, "\x7f/"}}, "\"\x7f/\"", true, false},
    {"UTF-8 passes through", {{S, "Fryslân € 😀 ñ"}}, "\"Fryslân € 😀 ñ\"", true, false},
    {"stringn stops at n", {{SN, "abcdef", 3}}, "\"abc\"", true, false},
    {"stringn with NUL", {{SN, "a\0b", 3}}, "\"a\\u0000b\"", true, false},
    {"escaped key",
     {{OB}, {K, "k\"\n\x02"}, {I, NULL, 1}, {OE}},
     "{\"k\\\"\\n\\u0002\":1}",
     true,
     false},
    {"only escapes", {{S, "\"\"\\\\"}}, "\"\\\"\\\"\\\\\\\\\"", true, false},

    /* Misuse: the flag sticks, nothing more is written, and the writer is not finished. */
    {"value without key", {{OB}, {I, NULL, 1}, {OE}}, "{", false, true},
    {"string without key", {{OB}, {S, "x"}}, "{", false, true},
    {"object without key",
     {{OB}, {K, "a"}, {I, NULL, 1}, {OB}, {OE}, {OE}},
     "{\"a\":1",
     false,
     true},
    {"sticky after misuse",
     {{OB}, {NUL}, {K, "a"}, {I, NULL, 2}, {OE}, {AB}, {AE}, {S, "more"}},
     "{",
     false,
     true},
    {"key in array", {{AB}, {K, "a"}, {AE}}, "[", false, true},
    {"key at top level", {{K, "a"}}, "", false, true},
    {"two keys in a row", {{OB}, {K, "a"}, {K, "b"}, {I, NULL, 1}, {OE}}, "{\"a\":", false, true},
    {"object closed by ]", {{OB}, {AE}}, "{", false, true},
    {"array closed by }", {{AB}, {OE}}, "[", false, true},
    {"close with nothing open", {{OE}}, "", false, true},
    {"array close with nothing open", {{AE}}, "", false, true},
    {"close once too often", {{AB}, {AE}, {AE}, {AB}}, "[]", false, true},
    {"close after a dangling key", {{OB}, {K, "a"}, {OE}}, "{\"a\":", false, true},
    {"kv_string in an array", {{AB}, {KVS, "v", 0, "k"}, {AE}}, "[", false, true},

    /* Unfinished, but not misused. */
    {"object left open", {{OB}, {K, "a"}, {I, NULL, 1}}, "{\"a\":1", false, false},
    {"key without value", {{OB}, {K, "a"}}, "{\"a\":", false, false},
    {"array left open", {{AB}, {AB}, {AE}}, "[[]", false, false},
};

static void test_cases(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof script_cases / sizeof *script_cases; c++) {
        const struct jsonw_case *tc = &script_cases[c];
        struct buf out = {0};
        struct jsonw w;
        jsonw_init(&w, &out);
        for (size_t i = 0; i < MAX_OPS && tc->ops[i].kind != END; i++)
            run_op(&w, &tc->ops[i]);
        const char *got = out.data ? out.data : "";
        if (strcmp(got, tc->want) != 0)
            fail_msg("%s: wrote '%s', want '%s'", tc->name, got, tc->want);
        if (out.data && out.len != strlen(tc->want))
            fail_msg("%s: len %zu, want %zu", tc->name, out.len, strlen(tc->want));
        if (jsonw_finished(&w) != tc->finished)
            fail_msg("%s: finished is %d, want %d", tc->name, jsonw_finished(&w), tc->finished);
        if (w.failed != tc->failed)
            fail_msg("%s: failed is %d, want %d", tc->name, w.failed, tc->failed);
        buf_free(&out);
    }
}

static void nest(struct jsonw *w, int levels, bool objects)
{
    for (int i = 0; i < levels; i++) {
        if (objects) {
            jsonw_object_begin(w);
            jsonw_key(w, "k");
        } else {
            jsonw_array_begin(w);
        }
    }
}

/* JSONW_MAX_DEPTH containers may be open at once; one more fails. */
static void test_depth(void **state)
{
    (void)state;
    for (int objects = 0; objects < 2; objects++) {
        struct buf out = {0};
        struct jsonw w;

        jsonw_init(&w, &out);
        nest(&w, JSONW_MAX_DEPTH, objects);
        assert_false(w.failed);
        assert_int_equal(w.depth, JSONW_MAX_DEPTH);
        if (objects)
            jsonw_null(&w);
        for (int i = 0; i < JSONW_MAX_DEPTH; i++)
            objects ? jsonw_object_end(&w) : jsonw_array_end(&w);
        assert_true(jsonw_finished(&w));
        assert_int_equal(out.len, (size_t)JSONW_MAX_DEPTH * (objects ? 6 : 2) + (objects ? 4 : 0));

        buf_reset(&out);
        jsonw_init(&w, &out);
        nest(&w, JSONW_MAX_DEPTH, objects);
        size_t len = out.len;
        objects ? jsonw_object_begin(&w) : jsonw_array_begin(&w);
        assert_true(w.failed);
        assert_int_equal(out.len, len); /* the 33rd bracket is not written */
        for (int i = 0; i <= JSONW_MAX_DEPTH; i++)
            objects ? jsonw_object_end(&w) : jsonw_array_end(&w);
        assert_false(jsonw_finished(&w));
        assert_int_equal(out.len, len);
        buf_free(&out);
    }
}

/* Commas are per level: an inner container's items do not put a comma at the outer level. */
static void test_commas_per_level(void **state)
{
    (void)state;
    struct buf out = {0};
    struct jsonw w;
    jsonw_init(&w, &out);
    jsonw_array_begin(&w);
    for (int i = 0; i < 3; i++) {
        jsonw_array_begin(&w);
        for (int k = 0; k <= i; k++)
            jsonw_int(&w, k);
        jsonw_array_end(&w);
    }
    jsonw_array_end(&w);
    assert_true(jsonw_finished(&w));
    assert_string_equal(out.data, "[[0],[0,1],[0,1,2]]");
    buf_free(&out);
}

/* The writer appends to what the buffer holds, and init starts a fresh document. */
static void test_appends_and_reinit(void **state)
{
    (void)state;
    struct buf out = {0};
    buf_puts(&out, "prefix:");
    struct jsonw w;
    jsonw_init(&w, &out);
    jsonw_array_begin(&w);
    jsonw_object_begin(&w); /* misuse after this point is forgotten by init */
    jsonw_init(&w, &out);
    assert_false(w.failed);
    assert_int_equal(w.depth, 0);
    jsonw_int(&w, 5);
    assert_true(jsonw_finished(&w));
    assert_string_equal(out.data, "prefix:[{5");
    buf_free(&out);
}

static void test_escape(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        const char *want;
    } cases[] = {
        {"", 0, ""},
        {"plain", 5, "plain"},
        {"\"", 1, "\\\""},
        {"\\", 1, "\\\\"},
        {"\x01", 1, "\\u0001"},
        {"\x1f", 1, "\\u001f"},
        {"\0", 1, "\\u0000"},
        {"\b\f", 2, "\\u0008\\u000c"},
        {"a\nb\tc\rd", 7, "a\\nb\\tc\\rd"},
        {"\xc3\xa2\xe2\x82\xac", 5, "\xc3\xa2\xe2\x82\xac"},
        {"\xff\xfe", 2, "\\ufffd\\ufffd"},            /* not UTF-8: replaced */
        {"a\xe2\x82", 3, "a\\ufffd\\ufffd"},          /* a cut sequence */
        {"\xc0\xaf", 2, "\\ufffd\\ufffd"},            /* overlong */
        {"\xed\xa0\x80", 3, "\\ufffd\\ufffd\\ufffd"}, /* a surrogate */
        {"\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80"},  /* U+1F600 */
        {"abc\"", 3, "abc"},                          /* only len bytes */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct buf b = {0};
        buf_puts(&b, "=");
        jsonw_escape(&b, cases[i].in, cases[i].len);
        assert_string_equal(b.data + 1, cases[i].want);
        buf_free(&b);
    }
}

/* Every byte below 0x20 has an escape; a lone byte from 0x80 is not UTF-8 and becomes U+FFFD;
 * everything else but " and \ passes. */
static void test_escape_all_bytes(void **state)
{
    (void)state;
    for (int c = 1; c < 256; c++) {
        char in = (char)c;
        struct buf b = {0};
        jsonw_escape(&b, &in, 1);
        char want[8];
        if (c == '"')
            strcpy(want, "\\\"");
        else if (c == '\\')
            strcpy(want, "\\\\");
        else if (c == '\n')
            strcpy(want, "\\n");
        else if (c == '\r')
            strcpy(want, "\\r");
        else if (c == '\t')
            strcpy(want, "\\t");
        else if (c < 0x20)
            snprintf(want, sizeof want, "\\u%04x", c);
        else if (c >= 0x80)
            strcpy(want, "\\ufffd");
        else
            want[0] = (char)c, want[1] = '\0';
        assert_non_null(b.data);
        if (strcmp(b.data, want) != 0)
            fail_msg("byte 0x%02x: wrote '%s', want '%s'", c, b.data, want);
        buf_free(&b);
    }
}

/* A byte that cannot begin a UTF-8 sequence (0x80 to 0xc1, 0xf5 to 0xff) is replaced, also
 * when continuation bytes follow it: passed through, it made a response that was not JSON. */
static void test_escape_invalid_leads(void **state)
{
    (void)state;
    for (int c = 0x80; c < 0x100; c++) {
        if (c >= 0xc2 && c <= 0xf4)
            continue;
        const char in[] = {(char)c, (char)0x90, (char)0x80, (char)0x80};
        struct buf b = {0};
        jsonw_escape(&b, in, sizeof in);
        assert_non_null(b.data);
        if (strcmp(b.data, "\\ufffd\\ufffd\\ufffd\\ufffd") != 0)
            fail_msg("lead byte 0x%02x: wrote '%s'", c, b.data);
        buf_free(&b);
    }
}

/* The escaping as it was written first, one byte at a time: the reference the word-at-a-time
 * scan must agree with, byte for byte. */
static size_t reference_utf8_sequence(const unsigned char *s, size_t len)
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
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
        return 0;
    return n;
}

static void reference_escape(struct buf *b, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t n = reference_utf8_sequence((const unsigned char *)s + i, len - i);
            if (n > 0) {
                buf_append(b, s + i, n);
                i += n - 1;
            } else {
                buf_append(b, "\\ufffd", 6);
            }
        } else if (c == '"') {
            buf_append(b, "\\\"", 2);
        } else if (c == '\\') {
            buf_append(b, "\\\\", 2);
        } else if (c == '\n') {
            buf_append(b, "\\n", 2);
        } else if (c == '\r') {
            buf_append(b, "\\r", 2);
        } else if (c == '\t') {
            buf_append(b, "\\t", 2);
        } else if (c < 0x20) {
            buf_printf(b, "\\u%04x", c);
        } else {
            buf_putc(b, (char)c);
        }
    }
}

/* Escapes in into the end of what b held, and checks it against the reference. */
static void check_escape(const char *what, const char *in, size_t len)
{
    struct buf got = {0}, want = {0};
    buf_puts(&got, "<");
    buf_puts(&want, "<");
    jsonw_escape(&got, in, len);
    reference_escape(&want, in, len);
    if (got.len != want.len || memcmp(got.data, want.data, got.len) != 0)
        fail_msg("%s (%zu bytes): wrote '%s', want '%s'", what, len, got.data, want.data);
    assert_int_equal(got.data[got.len], '\0');
    buf_free(&got);
    buf_free(&want);
}

/* Every byte that needs escaping, alone in plain text at every place of strings of every length
 * around the 8-byte words the scan reads: at the start, inside and at the end of a word, and in
 * the bytes after the last whole word. */
static void test_escape_at_every_position(void **state)
{
    (void)state;
    static const unsigned char specials[] = {0x00, 0x01, 0x08, '\t', '\n', '\r', 0x1f, '"', '\\',
                                             0x80, 0xbf, 0xc0, 0xc2, 0xe2, 0xf4, 0xf5, 0xff};
    char in[40];
    for (size_t len = 1; len <= sizeof in; len++)
        for (size_t at = 0; at < len; at++)
            for (size_t k = 0; k < sizeof specials; k++) {
                for (size_t i = 0; i < len; i++)
                    in[i] = (char)('a' + i % 26);
                in[at] = (char)specials[k];
                check_escape("one special byte", in, len);
                in[len - 1] = '"'; /* and a second one at the end */
                check_escape("two special bytes", in, len);
            }
    /* The bytes next to the ones that need escaping pass: DEL, space, '!', '#', '[', ']'. */
    static const char neighbours[] = "\x7f !#[]~\x7f !#[]~\x7f !#[]~";
    check_escape("neighbours", neighbours, sizeof neighbours - 1);
}

/* Valid UTF-8 sequences of 2, 3 and 4 bytes (U+2028 and U+2029 among them, which JSON allows
 * as they are and which are not escaped) pass whole, also across a word's end; cut off by the
 * end of the string, they are replaced. */
static void test_escape_utf8_across_words(void **state)
{
    (void)state;
    static const char *const sequences[] = {"\xc3\xa2",     "\xe2\x82\xac",     "\xe2\x80\xa8",
                                            "\xe2\x80\xa9", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf"};
    char in[40];
    for (size_t s = 0; s < sizeof sequences / sizeof *sequences; s++) {
        size_t n = strlen(sequences[s]);
        for (size_t at = 0; at + n <= 24; at++) {
            memset(in, 'x', sizeof in);
            memcpy(in + at, sequences[s], n);
            check_escape("a sequence", in, 24);
            check_escape("a cut sequence", in, at + n - 1);
        }
    }
    struct buf b = {0};
    jsonw_escape(&b, "a\xe2\x80\xa8z\xe2\x80\xa9", 8);
    assert_string_equal(b.data, "a\xe2\x80\xa8z\xe2\x80\xa9");
    buf_free(&b);
}

/* Random strings over an alphabet heavy with what needs escaping and with parts of UTF-8
 * sequences, of every length up to a few words: as the reference. */
static void test_escape_random(void **state)
{
    (void)state;
    static const unsigned char alphabet[] = {'a',  'b',  ' ',  '0',  '"',  '\\', '\n', 0x01,
                                             0x1f, 0x7f, 0x80, 0xa0, 0xbf, 0xc3, 0xe0, 0xe2,
                                             0xed, 0xf0, 0xf4, 0xff, 0x9f, 0x8f, 'z',  '~'};
    uint32_t seed = 12345;
    char in[200];
    for (int round = 0; round < 20000; round++) {
        seed = seed * 1103515245u + 12345u;
        size_t len = (seed >> 8) % sizeof in;
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = seed >> 16;
            /* mostly plain letters, so that runs of all lengths occur */
            in[i] = r % 4 ? (char)('a' + r % 26) : (char)alphabet[(r >> 4) % sizeof alphabet];
        }
        check_escape("random", in, len);
    }
}

/* A long string: the plain runs are copied whole, the escapes at both ends and in the middle
 * land where they belong. */
static void test_escape_long(void **state)
{
    (void)state;
    size_t len = 1 << 20;
    char *in = malloc(len);
    assert_non_null(in);
    for (size_t i = 0; i < len; i++)
        in[i] = (char)('a' + i % 26);
    in[0] = '"';
    in[len / 2 + 3] = '\n';
    in[len - 2] = 'x';
    in[len - 1] = '\\';
    check_escape("long", in, len);
    struct buf b = {0};
    jsonw_escape(&b, in, len);
    assert_int_equal(b.len, len + 3);
    assert_memory_equal(b.data, "\\\"bcd", 5);
    assert_memory_equal(b.data + b.len - 3, "x\\\\", 3);
    buf_free(&b);
    free(in);
}

/* Names made before: JSONW_NAME for literals and jsonw_name_init (which escapes) write what
 * jsonw_key writes, with the comma only where one is due, and the same checks. */
static void test_names(void **state)
{
    (void)state;
    static const struct jsonw_name id = JSONW_NAME("id"), at = JSONW_NAME("createdAt");
    assert_int_equal(id.len, strlen(id.text));
    assert_string_equal(id.text, ",\"id\":");
    assert_int_equal(at.len, strlen(at.text));
    static struct jsonw_name odd, plain; /* kept, as names are for the life of the process */
    jsonw_name_init(&odd, "k\"\n\x02\xff");
    jsonw_name_init(&plain, "email");
    assert_string_equal(odd.text, ",\"k\\\"\\n\\u0002\\ufffd\":");
    assert_int_equal(odd.len, strlen(odd.text));

    struct buf a = {0}, b = {0};
    struct jsonw wa, wb;
    jsonw_init(&wa, &a);
    jsonw_init(&wb, &b);
    jsonw_object_begin(&wa);
    jsonw_object_begin(&wb);
    jsonw_key_name(&wa, &id);
    jsonw_key(&wb, "id");
    jsonw_int(&wa, 1);
    jsonw_int(&wb, 1);
    jsonw_key_name(&wa, &odd);
    jsonw_key(&wb, "k\"\n\x02\xff");
    jsonw_object_begin(&wa);
    jsonw_object_begin(&wb);
    jsonw_key_name(&wa, &plain);
    jsonw_key(&wb, "email");
    jsonw_rawn(&wa, "12345", 2);
    jsonw_raw(&wb, "12");
    jsonw_key_name(&wa, &at);
    jsonw_key(&wb, "createdAt");
    jsonw_null(&wa);
    jsonw_null(&wb);
    jsonw_object_end(&wa);
    jsonw_object_end(&wb);
    jsonw_object_end(&wa);
    jsonw_object_end(&wb);
    assert_true(jsonw_finished(&wa));
    assert_string_equal(a.data, b.data);
    assert_string_equal(a.data,
                        "{\"id\":1,\"k\\\"\\n\\u0002\\ufffd\":{\"email\":12,\"createdAt\":null}}");

    /* Misuse: in an array, at the top, twice in a row. */
    buf_reset(&a);
    jsonw_init(&wa, &a);
    jsonw_key_name(&wa, &id);
    assert_true(wa.failed);
    jsonw_init(&wa, &a);
    jsonw_array_begin(&wa);
    jsonw_key_name(&wa, &id);
    assert_true(wa.failed);
    assert_string_equal(a.data, "[");
    buf_reset(&a);
    jsonw_init(&wa, &a);
    jsonw_object_begin(&wa);
    jsonw_key_name(&wa, &id);
    jsonw_key_name(&wa, &id);
    assert_true(wa.failed);
    assert_string_equal(a.data, "{\"id\":");
    buf_free(&a);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_commas_per_level),
        cmocka_unit_test(test_appends_and_reinit),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_escape_all_bytes),
        cmocka_unit_test(test_escape_invalid_leads),
        cmocka_unit_test(test_escape_at_every_position),
        cmocka_unit_test(test_escape_utf8_across_words),
        cmocka_unit_test(test_escape_random),
        cmocka_unit_test(test_escape_long),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests_name("jsonw", tests, NULL, NULL);
}

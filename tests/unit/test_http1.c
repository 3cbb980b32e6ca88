/* http1: where a head ends (CRLF, LF and mixed blank lines, a body after it, and the search
 * resumed from every point the head could have been split at), the request line's end, and the
 * head cut into its parts: method, target and version, the fields in order with their values
 * trimmed, names as sent, more fields than room; then every refusal with the word it must give.
 * Each head is parsed from a heap copy of exactly its length, so that the sanitizers see any read
 * past it. */
#include "../../server/http1.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define N_FIELDS 8

static char *copy;
static struct http1_field fields[N_FIELDS];
static struct http1_head head;
static const char untouched[] = "untouched";

/* A heap copy of text[0..len), without a NUL after it; it lives until the next call. */
static char *exact(const char *text, size_t len)
{
    free(copy);
    copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, text, len);
    return copy;
}

/* Parses the whole head text[0..len), storing at most room fields; http1_head_end() must find
 * that the head is all of it. fields[] is filled with markers first. */
static enum http1_result parse_n(const char *text, size_t len, size_t room)
{
    char *h = exact(text, len);
    assert_int_equal(http1_head_end(h, len, 0), len);
    for (size_t i = 0; i < N_FIELDS; i++)
        fields[i] = (struct http1_field){.name = untouched, .value = untouched};
    memset(&head, 0xa5, sizeof head);
    return http1_parse_head(h, len, fields, room, &head);
}

#define PARSE(lit) parse_n(lit, sizeof lit - 1, N_FIELDS)

static int teardown(void **state)
{
    (void)state;
    free(copy);
    copy = NULL;
    return 0;
}

/* Field i has this name and value, as C strings and by their lengths. */
static void assert_field(size_t i, const char *name, const char *value)
{
    assert_true(i < head.n_fields);
    assert_string_equal(fields[i].name, name);
    assert_int_equal(fields[i].name_len, strlen(name));
    assert_int_equal(strlen(fields[i].name), fields[i].name_len);
    assert_string_equal(fields[i].value, value);
    assert_int_equal(fields[i].value_len, strlen(value));
    assert_int_equal(strlen(fields[i].value), fields[i].value_len);
}

/* ---- http1_head_end ---- */

static size_t head_end(const char *text, size_t len, size_t from)
{
    return http1_head_end(exact(text, len), len, from);
}

#define HEAD_END(lit, from) head_end(lit, sizeof lit - 1, from)

static void test_head_end_blank_lines(void **state)
{
    (void)state;
    assert_int_equal(HEAD_END("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0), 27);
    assert_int_equal(HEAD_END("GET / HTTP/1.1\nHost: a\n\n", 0), 24);
    assert_int_equal(HEAD_END("GET / HTTP/1.1\r\nHost: a\r\n\n", 0), 26);
    assert_int_equal(HEAD_END("GET / HTTP/1.1\nHost: a\n\r\n", 0), 25);
    assert_int_equal(HEAD_END("GET / HTTP/1.1\r\n\r\n", 0), 18);
    assert_int_equal(HEAD_END("GET / HTTP/1.1\n\n", 0), 16);
}

static void test_head_end_incomplete(void **state)
{
    (void)state;
    assert_int_equal(head_end("", 0, 0), 0);
    assert_int_equal(HEAD_END("G", 0), 0);
    assert_int_equal(HEAD_END("GET / HTTP/1.1", 0), 0);
    assert_int_equal(HEAD_END("GET / HTTP/1.1\r\n", 0), 0);
    assert_int_equal(HEAD_END("GET / HTTP/1.1\r\nHost: a\r\n", 0), 0);
    assert_int_equal(HEAD_END("GET / HTTP/1.1\r\nHost: a\r\n\r", 0), 0);
    assert_int_equal(HEAD_END("GET / HTTP/1.1\nHost: a\n", 0), 0);
    /* A CR alone is no line end, and a line of a CR alone is not blank. */
    assert_int_equal(HEAD_END("GET / HTTP/1.1\r\r", 0), 0);
    assert_int_equal(HEAD_END("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 0), 0);
}

/* Only the head is counted, however the body looks. */
static void test_head_end_body_follows(void **state)
{
    (void)state;
    assert_int_equal(HEAD_END("POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody", 0), 38);
    assert_int_equal(HEAD_END("POST / HTTP/1.1\nContent-Length: 4\n\nbody", 0), 35);
    assert_int_equal(HEAD_END("POST / HTTP/1.1\r\nContent-Length: 8\r\n\r\n\r\n\r\nab\n\n", 0), 38);
    assert_int_equal(HEAD_END("GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0), 18);
}

/* The blank line straddles the end of what the first call saw. */
static void test_head_end_resumes(void **state)
{
    (void)state;
    static const char full[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    const size_t first = sizeof "GET / HTTP/1.1\r\nHost: a\r\n\r" - 1;
    assert_int_equal(head_end(full, first, 0), 0);
    assert_int_equal(head_end(full, sizeof full - 1, first), sizeof full - 1);

    static const char lf[] = "GET / HTTP/1.1\nHost: a\n\nbody";
    const size_t lf_first = sizeof "GET / HTTP/1.1\nHost: a\n" - 1;
    assert_int_equal(head_end(lf, lf_first, 0), 0);
    assert_int_equal(head_end(lf, sizeof lf - 1, lf_first), 24);
}

/* Whatever point the head is split at, the first call finds nothing when the blank line is not
 * all in it, and the second, told how much the first saw, finds the end. Also byte by byte. */
static void test_head_end_every_split(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t end;
    } heads[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27},
        {"GET / HTTP/1.1\nHost: a\n\n", 24},
        {"GET / HTTP/1.1\r\nHost: a\r\n\n", 26},
        {"GET / HTTP/1.1\nHost: a\n\r\n", 25},
        {"POST / HTTP/1.1\r\nContent-Length: 6\r\n\r\n\r\n\r\n\n\n", 38},
        {"GET / HTTP/1.1\r\n\r\n", 18},
    };
    for (size_t h = 0; h < sizeof heads / sizeof *heads; h++) {
        const char *text = heads[h].text;
        size_t len = strlen(text), end = heads[h].end;
        for (size_t k = 0; k <= len; k++) {
            size_t got = head_end(text, k, 0);
            size_t want = k < end ? 0 : end;
            if (got != want)
                fail_msg("head %zu, first %zu bytes: %zu, want %zu", h, k, got, want);
            if (k >= end)
                continue;
            got = head_end(text, len, k);
            if (got != end)
                fail_msg("head %zu, from %zu: %zu, want %zu", h, k, got, end);
        }
        size_t seen = 0, got = 0;
        for (size_t k = 1; k <= len && !got; k++) {
            got = head_end(text, k, seen);
            seen = k;
        }
        if (got != end || seen != end)
            fail_msg("head %zu byte by byte: %zu after %zu bytes, want %zu", h, got, seen, end);
    }
}

/* ---- http1_line_end ---- */

static size_t line_end(const char *text, size_t len)
{
    return http1_line_end(exact(text, len), len);
}

#define LINE_END(lit) line_end(lit, sizeof lit - 1)

static void test_line_end(void **state)
{
    (void)state;
    assert_int_equal(LINE_END("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 16);
    assert_int_equal(LINE_END("GET / HTTP/1.1\nHost: a\n\n"), 15);
    assert_int_equal(LINE_END("GET / HTTP/1.1\r\n"), 16);
    assert_int_equal(LINE_END("GET / HTTP/1.1\r"), 0);
    assert_int_equal(LINE_END("GET / HTTP/1.1"), 0);
    assert_int_equal(LINE_END("\n"), 1);
    assert_int_equal(LINE_END("\r\n"), 2);
    assert_int_equal(line_end("", 0), 0);
    /* Only data[0..len) counts. */
    assert_int_equal(line_end("GET / HTTP/1.1\r\n", 15), 0);
    assert_int_equal(line_end("GET / HTTP/1.1\r\n", 16), 16);
}

/* ---- http1_parse_head: heads taken ---- */

static void test_parse_request(void **state)
{
    (void)state;
    assert_int_equal(PARSE("GET /v1/things?limit=2 HTTP/1.1\r\n"
                           "Host: example.com\r\n"
                           "Accept: */*\r\n"
                           "\r\n"),
                     HTTP1_OK);
    assert_string_equal(head.method, "GET");
    assert_string_equal(head.target, "/v1/things?limit=2");
    assert_int_equal(head.target_len, 18);
    assert_int_equal(strlen(head.target), head.target_len);
    assert_int_equal(head.minor_version, 1);
    assert_int_equal(head.line_len, 33);
    assert_ptr_equal(head.fields, fields);
    assert_int_equal(head.n_fields, 2);
    assert_field(0, "Host", "example.com");
    assert_field(1, "Accept", "*/*");
    /* The parts lie in the buffer. */
    assert_ptr_equal(head.method, copy);
    assert_ptr_equal(head.target, copy + 4);
    assert_ptr_equal(fields[0].name, copy + 33);

    assert_int_equal(PARSE("GET / HTTP/1.1\r\n\r\n"), HTTP1_OK);
    assert_string_equal(head.method, "GET");
    assert_string_equal(head.target, "/");
    assert_int_equal(head.target_len, 1);
    assert_int_equal(head.line_len, 16);
    assert_int_equal(head.n_fields, 0);
    assert_ptr_equal(fields[0].name, untouched);
}

static void test_parse_versions(void **state)
{
    (void)state;
    assert_int_equal(PARSE("GET / HTTP/1.0\r\n\r\n"), HTTP1_OK);
    assert_int_equal(head.minor_version, 0);
    assert_int_equal(PARSE("GET / HTTP/1.1\r\n\r\n"), HTTP1_OK);
    assert_int_equal(head.minor_version, 1);
    assert_int_equal(PARSE("GET / HTTP/1.9\r\n\r\n"), HTTP1_OK);
    assert_int_equal(head.minor_version, 9);
}

/* Any token is a method, and a target is any run of visible bytes, over 0x7f too. */
static void test_parse_methods_targets(void **state)
{
    (void)state;
    static const struct {
        const char *line, *method, *target;
    } cases[] = {
        {"OPTIONS * HTTP/1.1\r\n\r\n", "OPTIONS", "*"},
        {"CONNECT example.com:443 HTTP/1.1\r\n\r\n", "CONNECT", "example.com:443"},
        {"GET http://example.com/a?b=c HTTP/1.1\r\n\r\n", "GET", "http://example.com/a?b=c"},
        {"M-SEARCH * HTTP/1.1\r\n\r\n", "M-SEARCH", "*"},
        {"delete /x HTTP/1.1\r\n\r\n", "delete", "/x"},
        {"!#$%&'*+-.^_`|~09azAZ / HTTP/1.1\r\n\r\n", "!#$%&'*+-.^_`|~09azAZ", "/"},
        {"GET /caf\xc3\xa9?q=\xff HTTP/1.1\r\n\r\n", "GET", "/caf\xc3\xa9?q=\xff"},
        {"GET /a\"<>{}\\^`| HTTP/1.1\r\n\r\n", "GET", "/a\"<>{}\\^`|"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        enum http1_result r = parse_n(cases[i].line, strlen(cases[i].line), N_FIELDS);
        if (r != HTTP1_OK)
            fail_msg("case %zu (%s): %d, want HTTP1_OK", i, cases[i].method, r);
        assert_string_equal(head.method, cases[i].method);
        assert_string_equal(head.target, cases[i].target);
        assert_int_equal(head.target_len, strlen(cases[i].target));
        assert_int_equal(head.n_fields, 0);
    }
}

static void test_parse_values_trimmed(void **state)
{
    (void)state;
    assert_int_equal(PARSE("GET / HTTP/1.1\r\n"
                           "X-A:  \t spaced out \t \r\n"
                           "X-B:\tv\t\r\n"
                           "X-C:v\r\n"
                           "X-D: a  \t b\r\n"
                           "Host: a:8080\r\n"
                           "X-E: q=\"a, b\"; x=y \r\n"
                           "\r\n"),
                     HTTP1_OK);
    assert_int_equal(head.n_fields, 6);
    assert_field(0, "X-A", "spaced out");
    assert_field(1, "X-B", "v");
    assert_field(2, "X-C", "v");
    assert_field(3, "X-D", "a  \t b");
    assert_field(4, "Host", "a:8080");
    assert_field(5, "X-E", "q=\"a, b\"; x=y");
}

static void test_parse_empty_values(void **state)
{
    (void)state;
    assert_int_equal(PARSE("GET / HTTP/1.1\r\n"
                           "X-Empty:\r\n"
                           "X-Blank: \t \r\n"
                           "X-Tab:\t\r\n"
                           "Host: a\r\n"
                           "\r\n"),
                     HTTP1_OK);
    assert_int_equal(head.n_fields, 4);
    assert_field(0, "X-Empty", "");
    assert_field(1, "X-Blank", "");
    assert_field(2, "X-Tab", "");
    assert_field(3, "Host", "a");
}

/* Names are not judged here: framing.h refuses those that are not tokens. */
static void test_parse_names_as_sent(void **state)
{
    (void)state;
    assert_int_equal(PARSE("POST / HTTP/1.1\r\n"
                           "Transfer-Encoding : chunked\r\n"
                           "content-LENGTH: 4\r\n"
                           "Bad Name: x\r\n"
                           "Tab\t:\ty\r\n"
                           ": no name\r\n"
                           "\r\n"),
                     HTTP1_OK);
    assert_int_equal(head.n_fields, 5);
    assert_field(0, "Transfer-Encoding ", "chunked");
    assert_int_equal(fields[0].name_len, 18);
    assert_field(1, "content-LENGTH", "4");
    assert_field(2, "Bad Name", "x");
    assert_field(3, "Tab\t", "y");
    assert_field(4, "", "no name");
}

/* n_fields counts every field; only room of them are stored, and nothing past them is touched. */
static void test_parse_more_fields_than_room(void **state)
{
    (void)state;
    static const char text[] = "GET / HTTP/1.1\r\n"
                               "A: 1\r\n"
                               "B: 2\r\n"
                               "C: 3\r\n"
                               "D: 4\r\n"
                               "E: 5\r\n"
                               "\r\n";
    assert_int_equal(parse_n(text, sizeof text - 1, 2), HTTP1_OK);
    assert_int_equal(head.n_fields, 5);
    assert_field(0, "A", "1");
    assert_field(1, "B", "2");
    for (size_t i = 2; i < N_FIELDS; i++) {
        assert_ptr_equal(fields[i].name, untouched);
        assert_ptr_equal(fields[i].value, untouched);
    }

    assert_int_equal(parse_n(text, sizeof text - 1, 0), HTTP1_OK);
    assert_int_equal(head.n_fields, 5);
    assert_ptr_equal(fields[0].name, untouched);

    assert_int_equal(parse_n(text, sizeof text - 1, 5), HTTP1_OK);
    assert_int_equal(head.n_fields, 5);
    assert_field(4, "E", "5");
    assert_ptr_equal(fields[5].name, untouched);
}

static void test_parse_lf_only(void **state)
{
    (void)state;
    assert_int_equal(PARSE("PUT /v1/things/7 HTTP/1.1\n"
                           "Host: a\n"
                           "X-Y:  b \n"
                           "\n"),
                     HTTP1_OK);
    assert_string_equal(head.method, "PUT");
    assert_string_equal(head.target, "/v1/things/7");
    assert_int_equal(head.target_len, 12);
    assert_int_equal(head.minor_version, 1);
    assert_int_equal(head.line_len, 26);
    assert_int_equal(head.n_fields, 2);
    assert_field(0, "Host", "a");
    assert_field(1, "X-Y", "b");

    /* Line ends mixed within one head. */
    assert_int_equal(PARSE("GET / HTTP/1.0\n"
                           "A: 1\r\n"
                           "B:2\n"
                           "\r\n"),
                     HTTP1_OK);
    assert_int_equal(head.line_len, 15);
    assert_int_equal(head.minor_version, 0);
    assert_int_equal(head.n_fields, 2);
    assert_field(0, "A", "1");
    assert_field(1, "B", "2");
}

/* A head followed by a body: parsed with the length http1_head_end() gave, the body untouched. */
static void test_parse_before_body(void **state)
{
    (void)state;
    static const char text[] = "POST /v1/things HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody";
    char *h = exact(text, sizeof text - 1);
    size_t len = http1_head_end(h, sizeof text - 1, 0);
    assert_int_equal(len, sizeof text - 1 - 4);
    assert_int_equal(http1_parse_head(h, len, fields, N_FIELDS, &head), HTTP1_OK);
    assert_string_equal(head.method, "POST");
    assert_string_equal(head.target, "/v1/things");
    assert_int_equal(head.n_fields, 1);
    assert_field(0, "Content-Length", "4");
    assert_memory_equal(h + len, "body", 4);
}

/* ---- http1_parse_head: heads refused ---- */

static void test_parse_refused(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t len; /* 0: strlen */
        enum http1_result want;
        const char *why;
    } cases[] = {
        {"GET /\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "no version"},
        {"GET / \r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "empty version"},
        {"GET\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "method alone"},
        {"\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "empty request line"},
        {"GET  / HTTP/1.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "two spaces after the method"},
        {"GET /  HTTP/1.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "two spaces after the target"},
        {"GET / HTTP/1.1 \r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "space after the version"},
        {"GET\t/ HTTP/1.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "tab after the method"},
        {"GET /\tHTTP/1.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "tab after the target"},
        {" GET / HTTP/1.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "empty method"},
        {" / HTTP/1.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "empty method, one space"},
        {"G(T / HTTP/1.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "( in the method"},
        {"GE:T / HTTP/1.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, ": in the method"},
        {"G\xc3\x89T / HTTP/1.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "non-ASCII method"},
        {"GET /a\x01z HTTP/1.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "0x01 in the target"},
        {"GET /a\x1fz HTTP/1.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "0x1f in the target"},
        {"GET /a\tz HTTP/1.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "tab in the target"},
        {"GET /a\x7fz HTTP/1.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "0x7f in the target"},
        {"GET /a\x7f HTTP/1.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "0x7f ending the target"},
        {"GET /a\0z HTTP/1.1\r\n\r\n", 21, HTTP1_BAD_REQUEST_LINE, "NUL in the target"},
        {"GET /a\rz HTTP/1.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "bare CR in the target"},
        {"GET / HTTP/1.1\r\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "CR CR LF"},
        {"GET / http/1.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "lower-case http"},
        {"GET / Http/1.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "mixed-case Http"},
        {"GET / HTTP/0.9\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "HTTP/0.9"},
        {"GET / HTTP/1.10\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "two-digit minor"},
        {"GET / HTTP/01.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "two-digit major"},
        {"GET / HTTP/1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "no minor"},
        {"GET / HTTP/1.\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "empty minor"},
        {"GET / HTTP/1.x\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "minor not a digit"},
        {"GET / HTTP/1,1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "comma for the dot"},
        {"GET / HTTP/a.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "major not a digit"},
        {"GET / HTTP/\xb9.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "major over 0x7f"},
        {"GET / HTTP 1.1\r\n\r\n", 0, HTTP1_BAD_REQUEST_LINE, "space for the slash"},
        {"GET / HTTP/2.0\r\n\r\n", 0, HTTP1_BAD_VERSION, "HTTP/2.0"},
        {"GET / HTTP/3.0\r\n\r\n", 0, HTTP1_BAD_VERSION, "HTTP/3.0"},
        {"GET / HTTP/9.9\n\n", 0, HTTP1_BAD_VERSION, "HTTP/9.9"},
        {"GET / HTTP/1.1\r\nHost example.com\r\n\r\n", 0, HTTP1_BAD_FIELD, "no colon"},
        {"GET / HTTP/1.1\r\nHost: a\r\nX\r\n\r\n", 0, HTTP1_BAD_FIELD, "no colon, later"},
        {"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 0, HTTP1_BAD_FIELD, "folded with a space"},
        {"GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", 0, HTTP1_BAD_FIELD, "folded with a tab"},
        {"GET / HTTP/1.1\r\nX: a\r\n b: c\r\n\r\n", 0, HTTP1_BAD_FIELD, "folded, a colon in it"},
        {"GET / HTTP/1.1\r\nX: a\r\n\tb: c\r\n\r\n", 0, HTTP1_BAD_FIELD, "tab-folded, a colon"},
        {"GET / HTTP/1.1\n X: a\n\n", 0, HTTP1_BAD_FIELD, "space before the first field"},
        {"GET / HTTP/1.1\r\n \r\n\r\n", 0, HTTP1_BAD_FIELD, "a line of a space"},
        {"GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 26, HTTP1_BAD_FIELD, "NUL in a value"},
        {"GET / HTTP/1.1\r\nX\0Y: a\r\n\r\n", 26, HTTP1_BAD_FIELD, "NUL in a name"},
        {"GET / HTTP/1.1\r\nX: a\0\r\n\r\n", 25, HTTP1_BAD_FIELD, "NUL before the line end"},
        {"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 0, HTTP1_BAD_FIELD, "bare CR in a value"},
        {"GET / HTTP/1.1\r\nX\r: a\r\n\r\n", 0, HTTP1_BAD_FIELD, "bare CR in a name"},
        {"GET / HTTP/1.1\r\nX: a\r\r\n\r\n", 0, HTTP1_BAD_FIELD, "CR CR LF after a field"},
        {"GET / HTTP/1.1\nX: a\rY: b\n\n", 0, HTTP1_BAD_FIELD, "bare CR between fields"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        enum http1_result r = parse_n(cases[i].text, len, N_FIELDS);
        if (r != cases[i].want)
            fail_msg("case %zu (%s): %d, want %d", i, cases[i].why, r, cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_end_blank_lines),
        cmocka_unit_test(test_head_end_incomplete),
        cmocka_unit_test(test_head_end_body_follows),
        cmocka_unit_test(test_head_end_resumes),
        cmocka_unit_test(test_head_end_every_split),
        cmocka_unit_test(test_line_end),
        cmocka_unit_test(test_parse_request),
        cmocka_unit_test(test_parse_versions),
        cmocka_unit_test(test_parse_methods_targets),
        cmocka_unit_test(test_parse_values_trimmed),
        cmocka_unit_test(test_parse_empty_values),
        cmocka_unit_test(test_parse_names_as_sent),
        cmocka_unit_test(test_parse_more_fields_than_room),
        cmocka_unit_test(test_parse_lf_only),
        cmocka_unit_test(test_parse_before_body),
        cmocka_unit_test(test_parse_refused),
    };
    return cmocka_run_group_tests_name("http1", tests, NULL, teardown);
}

/* negotiate: Accept against a route's media type (with problem+json, wildcards and q=0), CSV
 * asked for by name, the body's Content-Type per method, If-None-Match lists and If-Match
 * versions; then the request-level checks with http's header lookup and answers stubbed. The
 * .c is included: the test stands in for http.c. */
#include "../../server/negotiate.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* ---- http.c, stubbed: headers from a table, answers noted ---- */

static const char *headers[8][2];
static char set_etag[32];

const char *http_header(struct request *req, const char *name)
{
    (void)req;
    for (int i = 0; i < 8 && headers[i][0]; i++)
        if (strcasecmp(headers[i][0], name) == 0)
            return headers[i][1];
    return NULL;
}

void http_set_header(struct request *req, const char *name, const char *value)
{
    (void)req;
    if (strcmp(name, "ETag") == 0)
        snprintf(set_etag, sizeof set_etag, "%s", value);
}

void http_reply_empty(struct request *req, int status)
{
    req->status = status;
}

void http_problem(struct request *req, int status, const char *detail, ...)
{
    (void)detail;
    req->status = status;
}

static void given(const char *name, const char *value)
{
    memset(headers, 0, sizeof headers);
    headers[0][0] = name;
    headers[0][1] = value;
}

/* ---- the pure checks ---- */

static void test_accepts(void **state)
{
    (void)state;
    static const struct {
        const char *accept, *media;
        bool ok;
    } cases[] = {
        {NULL, "application/json", true},
        {"", "application/json", true},
        {"application/json", "application/json", true},
        {"APPLICATION/JSON", "application/json", true},
        {"*/*", "application/json", true},
        {"application/*", "application/json", true},
        {"text/*", "application/json", false},
        {"application/problem+json", "application/json", true},
        {"application/problem+json", "text/csv", false},
        {"text/html", "application/json", false},
        {"text/html, application/json;q=0.5", "application/json", true},
        {"application/json;q=0", "application/json", false},
        {"application/json; q=0.000", "application/json", false},
        {"application/json;q=0.1", "application/json", true},
        {"application/json;q=0, */*", "application/json", true},
        {"application/yaml", "application/yaml", true},
        {"application/jsonx", "application/json", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (negotiate_accepts(cases[i].accept, cases[i].media) != cases[i].ok)
            fail_msg("Accept: %s for %s: want %d", cases[i].accept ? cases[i].accept : "(none)",
                     cases[i].media, cases[i].ok);
}

static void test_names_csv(void **state)
{
    (void)state;
    assert_false(negotiate_names_csv(NULL));
    assert_false(negotiate_names_csv("*/*"));
    assert_false(negotiate_names_csv("text/*"));
    assert_true(negotiate_names_csv("text/csv"));
    assert_true(negotiate_names_csv("TEXT/CSV"));
    assert_true(negotiate_names_csv("application/json, text/csv;q=0.5"));
    assert_false(negotiate_names_csv("text/csv;q=0"));
    assert_false(negotiate_names_csv("text/csv; q=0.0"));
    assert_true(negotiate_names_csv("text/csv;q=0.1"));
    assert_false(negotiate_names_csv("text/csvx"));
    assert_false(negotiate_names_csv("xtext/csv"));
}

static void test_body_type(void **state)
{
    (void)state;
    assert_false(negotiate_body_type(NULL, HTTP_POST));
    assert_true(negotiate_body_type("application/json", HTTP_POST));
    assert_true(negotiate_body_type("Application/JSON; charset=utf-8", HTTP_PUT));
    assert_false(negotiate_body_type("application/jsonp", HTTP_POST));
    assert_false(negotiate_body_type("text/plain", HTTP_POST));
    assert_true(negotiate_body_type("application/merge-patch+json", HTTP_PATCH));
    assert_false(negotiate_body_type("application/merge-patch+json", HTTP_POST));
}

static void test_none_match(void **state)
{
    (void)state;
    assert_false(negotiate_none_match(NULL, "\"3\""));
    assert_true(negotiate_none_match("\"3\"", "\"3\""));
    assert_true(negotiate_none_match("W/\"3\"", "\"3\""));
    assert_true(negotiate_none_match("\"1\", \"3\"", "\"3\""));
    assert_true(negotiate_none_match("*", "\"3\""));
    assert_false(negotiate_none_match("\"33\"", "\"3\""));
    assert_false(negotiate_none_match("\"1\", \"2\"", "\"3\""));
    assert_false(negotiate_none_match("", "\"3\""));
}

static void test_if_match(void **state)
{
    (void)state;
    char out[16];
    assert_null(negotiate_if_match(NULL, out));
    assert_null(negotiate_if_match("*", out));
    assert_string_equal(negotiate_if_match("\"42\"", out), "42");
    assert_string_equal(negotiate_if_match("\"1234567890\"", out), "1234567890");
    /* Malformed: "" matches no version. */
    static const char *const bad[] = {"42",   "\"\"",    "\"4a\"", "W/\"42\"", "\"12345678901\"",
                                      "\"42", "\"4\"2\""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (strcmp(negotiate_if_match(bad[i], out), "") != 0)
            fail_msg("If-Match: %s should match nothing", bad[i]);
}

/* ---- on a request ---- */

static void test_response(void **state)
{
    (void)state;
    struct route csv_route = {.csv = true};
    struct route yaml_route = {.produces = "application/yaml"};
    struct request req = {.route = &csv_route};
    given("Accept", "text/csv");
    assert_true(negotiate_response(&req));
    assert_true(req.wants_csv);
    given("Accept", "application/json");
    assert_true(negotiate_response(&req));
    assert_false(req.wants_csv);
    given("Accept", "text/html");
    assert_false(negotiate_response(&req));
    assert_int_equal(req.status, 406);

    req = (struct request){.route = &yaml_route};
    given("Accept", "text/csv"); /* not a CSV route */
    assert_false(negotiate_response(&req));
    assert_int_equal(req.status, 406);
    given("Accept", "application/yaml");
    assert_true(negotiate_response(&req));
}

static void test_body(void **state)
{
    (void)state;
    struct request req = {.method = HTTP_GET};
    given("Content-Type", "text/plain");
    assert_true(negotiate_body(&req)); /* no body to check */
    req = (struct request){.method = HTTP_POST};
    given("Content-Type", "application/json");
    assert_false(negotiate_body(&req));
    assert_int_equal(req.status, 400); /* no body */
    req = (struct request){.method = HTTP_PATCH, .body = {.data = (char *)"{}", .len = 2}};
    given("Content-Type", "text/plain");
    assert_false(negotiate_body(&req));
    assert_int_equal(req.status, 415);
    given("Content-Type", "application/merge-patch+json");
    req.status = 0;
    assert_true(negotiate_body(&req));
    assert_int_equal(req.status, 0);
}

static void test_etag(void **state)
{
    (void)state;
    struct request req = {0};
    given("If-None-Match", "W/\"7\"");
    assert_true(http_etag(&req, "7"));
    assert_string_equal(set_etag, "\"7\"");
    given("If-None-Match", "\"6\"");
    assert_false(http_etag(&req, "7"));
    given("X-Other", "1");
    assert_false(http_etag(&req, "8"));
    assert_string_equal(set_etag, "\"8\"");
    http_reply_not_modified(&req);
    assert_int_equal(req.status, 304);
    char out[16];
    given("If-Match", "\"5\"");
    assert_string_equal(http_if_match(&req, out), "5");
}

/* A 412 names the version the row has now in its ETag, for a stale If-Match and a malformed one
 * alike; a made tag (a digest) is set as given. */
static void test_stale(void **state)
{
    (void)state;
    struct request req = {0};
    given("If-Match", "\"5\"");
    http_reply_stale(&req, "werklab", "6");
    assert_int_equal(req.status, 412);
    assert_string_equal(set_etag, "\"6\"");
    req.status = 0;
    given("If-Match", "W/\"5\"");
    http_reply_stale(&req, "werklab", "9");
    assert_int_equal(req.status, 412);
    assert_string_equal(set_etag, "\"9\"");
    given("If-None-Match", "\"abc\"");
    assert_true(http_entity_tag(&req, "\"abc\""));
    assert_string_equal(set_etag, "\"abc\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),   cmocka_unit_test(test_names_csv),
        cmocka_unit_test(test_body_type), cmocka_unit_test(test_none_match),
        cmocka_unit_test(test_if_match),  cmocka_unit_test(test_response),
        cmocka_unit_test(test_body),      cmocka_unit_test(test_etag),
        cmocka_unit_test(test_stale),
    };
    return cmocka_run_group_tests_name("negotiate", tests, NULL, NULL);
}

/* router: one small table, registered once; each case is a method and path with the result,
 * route, Allow set and parameters it must give. router_add's refusals are checked in forked
 * children, which must die by SIGABRT. */
#include "router.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "aborts.h"

static void handler(struct request *req)
{
    (void)req;
}

static const char *const list_keys[] = {"limit", "cursor", NULL};
static const int marker = 7;

static struct route table[] = {
    {.method = HTTP_GET, .pattern = "/healthz", .handler = handler, .roles = ROLE_PUBLIC},
    {.method = HTTP_GET,
     .pattern = "/v1/things",
     .handler = handler,
     .roles = ROLES_READ,
     .query_keys = list_keys,
     .context = &marker},
    {.method = HTTP_POST, .pattern = "/v1/things", .handler = handler, .roles = ROLES_WRITE},
    {.method = HTTP_GET, .pattern = "/v1/things/{id}", .handler = handler, .roles = ROLES_READ},
    {.method = HTTP_PATCH, .pattern = "/v1/things/{id}", .handler = handler, .roles = ROLES_WRITE},
    {.method = HTTP_DELETE, .pattern = "/v1/things/{id}", .handler = handler, .roles = ROLE_ADMIN},
    {.method = HTTP_GET,
     .pattern = "/v1/things/{thingId}/parts/{name}",
     .handler = handler,
     .roles = ROLES_READ},
    {.method = HTTP_PUT,
     .pattern = "/v1/things/{thingId}/parts/{name}",
     .handler = handler,
     .roles = ROLES_WRITE},
    {.method = HTTP_POST, .pattern = "/v1/only-post", .handler = handler, .roles = ROLE_STAFF},
    {.method = HTTP_GET, .pattern = "/a/b/c/d/e/f/g/h", .handler = handler, .roles = ROLE_ADMIN},
};

#define N_TABLE (sizeof table / sizeof *table)

static int setup(void **state)
{
    (void)state;
    router_add(table, N_TABLE);
    return 0;
}

#define UUID       "0b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c0e13"
#define UUID_UPPER "0B1E6F8C-3A52-4C1D-9F7E-2D4B6A8C0E13"
#define THING_ALL  (HTTP_GET | HTTP_HEAD | HTTP_PATCH | HTTP_DELETE | HTTP_OPTIONS)
#define LIST_ALL   (HTTP_GET | HTTP_HEAD | HTTP_POST | HTTP_OPTIONS)
#define PARTS_ALL  (HTTP_GET | HTTP_HEAD | HTTP_PUT | HTTP_OPTIONS)

struct match_case {
    enum http_method method;
    const char *path;
    enum router_result result;
    int route; /* index in table; -1: none */
    unsigned allowed;
    const char *params[2][2]; /* name, value */
};

static const struct match_case match_cases[] = {
    /* Literal segments. */
    {HTTP_GET, "/healthz", ROUTER_FOUND, 0, HTTP_GET | HTTP_HEAD | HTTP_OPTIONS, {{0}}},
    {HTTP_GET, "/v1/things", ROUTER_FOUND, 1, LIST_ALL, {{0}}},
    {HTTP_POST, "/v1/things", ROUTER_FOUND, 2, LIST_ALL, {{0}}},
    {HTTP_GET, "/v1/thing", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/v1/thingss", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/V1/things", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/v1", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/healthz/x", ROUTER_NOT_FOUND, -1, 0, {{0}}},

    /* {id}: a UUID in either case, nothing else. */
    {HTTP_GET, "/v1/things/" UUID, ROUTER_FOUND, 3, THING_ALL, {{"id", UUID}}},
    {HTTP_GET, "/v1/things/" UUID_UPPER, ROUTER_FOUND, 3, THING_ALL, {{"id", UUID_UPPER}}},
    {HTTP_PATCH, "/v1/things/" UUID, ROUTER_FOUND, 4, THING_ALL, {{"id", UUID}}},
    {HTTP_DELETE, "/v1/things/" UUID, ROUTER_FOUND, 5, THING_ALL, {{"id", UUID}}},
    {HTTP_GET, "/v1/things/123", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/v1/things/0b1e6f8c3a524c1d9f7e2d4b6a8c0e13", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/v1/things/0b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c0e1", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/v1/things/0b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c0e134", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/v1/things/0b1e6f8g-3a52-4c1d-9f7e-2d4b6a8c0e13", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/v1/things/0b1e6f8c_3a52-4c1d-9f7e-2d4b6a8c0e13", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/v1/things/{0b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c0e13}", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/v1/things/{id}", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_DELETE, "/v1/things/not-a-uuid", ROUTER_NOT_FOUND, -1, 0, {{0}}},

    /* {thingId} is a UUID too; {name} is any segment of up to 63 bytes. */
    {HTTP_GET,
     "/v1/things/" UUID "/parts/wheel",
     ROUTER_FOUND,
     6,
     PARTS_ALL,
     {{"thingId", UUID}, {"name", "wheel"}}},
    {HTTP_PUT,
     "/v1/things/" UUID "/parts/a%20b",
     ROUTER_FOUND,
     7,
     PARTS_ALL,
     {{"thingId", UUID}, {"name", "a%20b"}}},
    {HTTP_GET, "/v1/things/x/parts/wheel", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET,
     "/v1/things/" UUID "/parts/"
     "123456789012345678901234567890123456789012345678901234567890123",
     ROUTER_FOUND,
     6,
     PARTS_ALL,
     {{"thingId", UUID},
      {"name", "123456789012345678901234567890123456789012345678901234567890123"}}},
    {HTTP_GET,
     "/v1/things/" UUID "/parts/"
     "1234567890123456789012345678901234567890123456789012345678901234",
     ROUTER_NOT_FOUND,
     -1,
     0,
     {{0}}},

    /* Slashes: a trailing one, a double one, none at the start, the root. */
    {HTTP_GET, "/v1/things/", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/healthz/", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/v1/things/" UUID "/", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/v1/things/" UUID "/parts/", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/v1/things/" UUID "/parts//", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/v1/things/" UUID "/parts/x/", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/v1/things/" UUID "//wheel", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/v1//things", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "//v1/things", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/v1/things//", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "v1/things", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "//", ROUTER_NOT_FOUND, -1, 0, {{0}}},

    /* Segment counts: eight is the most, nine never match. */
    {HTTP_GET, "/a/b/c/d/e/f/g/h", ROUTER_FOUND, 9, HTTP_GET | HTTP_HEAD | HTTP_OPTIONS, {{0}}},
    {HTTP_GET, "/a/b/c/d/e/f/g/h/i", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {HTTP_GET, "/a/b/c/d/e/f/g", ROUTER_NOT_FOUND, -1, 0, {{0}}},

    /* Methods: 405 with the Allow set, HEAD finds GET, OPTIONS finds the path. */
    {HTTP_PUT, "/v1/things", ROUTER_METHOD_NOT_ALLOWED, -1, LIST_ALL, {{0}}},
    {HTTP_DELETE, "/v1/things", ROUTER_METHOD_NOT_ALLOWED, -1, LIST_ALL, {{0}}},
    {HTTP_POST, "/v1/things/" UUID, ROUTER_METHOD_NOT_ALLOWED, -1, THING_ALL, {{0}}},
    {HTTP_POST,
     "/healthz",
     ROUTER_METHOD_NOT_ALLOWED,
     -1,
     HTTP_GET | HTTP_HEAD | HTTP_OPTIONS,
     {{0}}},
    {HTTP_HEAD, "/v1/things", ROUTER_FOUND, 1, LIST_ALL, {{0}}},
    {HTTP_HEAD, "/v1/things/" UUID, ROUTER_FOUND, 3, THING_ALL, {{"id", UUID}}},
    {HTTP_HEAD, "/v1/only-post", ROUTER_METHOD_NOT_ALLOWED, -1, HTTP_POST | HTTP_OPTIONS, {{0}}},
    {HTTP_GET, "/v1/only-post", ROUTER_METHOD_NOT_ALLOWED, -1, HTTP_POST | HTTP_OPTIONS, {{0}}},
    {HTTP_POST, "/v1/only-post", ROUTER_FOUND, 8, HTTP_POST | HTTP_OPTIONS, {{0}}},
    {HTTP_OPTIONS, "/v1/things", ROUTER_FOUND, -1, LIST_ALL, {{0}}},
    {HTTP_OPTIONS, "/v1/only-post", ROUTER_FOUND, -1, HTTP_POST | HTTP_OPTIONS, {{0}}},
    {HTTP_OPTIONS, "/nowhere", ROUTER_NOT_FOUND, -1, 0, {{0}}},
    {0, "/v1/things", ROUTER_METHOD_NOT_ALLOWED, -1, LIST_ALL, {{0}}}, /* unknown method */
    {HTTP_GET, "/nowhere", ROUTER_NOT_FOUND, -1, 0, {{0}}},
};

static void test_match(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof match_cases / sizeof *match_cases; c++) {
        const struct match_case *tc = &match_cases[c];
        static const struct route poison;
        const struct route *route = &poison;
        struct route_params params;
        memset(&params, 0x5a, sizeof params);
        unsigned allowed = 12345;
        enum router_result r = router_match(tc->method, tc->path, &route, &params, &allowed);
        const char *m = router_method_name(tc->method);
        if (r != tc->result)
            fail_msg("%s %s: result %d, want %d", m, tc->path, r, tc->result);
        if (allowed != tc->allowed)
            fail_msg("%s %s: allowed 0x%x, want 0x%x", m, tc->path, allowed, tc->allowed);
        const struct route *want = tc->route >= 0 ? &table[tc->route] : NULL;
        if (route != want)
            fail_msg("%s %s: route %s, want %s", m, tc->path, route ? route->pattern : "none",
                     want ? want->pattern : "none");
        if (!want)
            continue;
        int n = 0;
        for (int i = 0; i < 2 && tc->params[i][0]; i++, n++) {
            const char *value = router_param(&params, tc->params[i][0]);
            if (!value || strcmp(value, tc->params[i][1]) != 0)
                fail_msg("%s %s: param %s is '%s', want '%s'", m, tc->path, tc->params[i][0],
                         value ? value : "(none)", tc->params[i][1]);
        }
        assert_int_equal(params.count, n);
    }
}

/* Parameters may be left out, and the route is still found. */
static void test_match_without_params(void **state)
{
    (void)state;
    const struct route *route;
    unsigned allowed;
    assert_int_equal(router_match(HTTP_GET, "/v1/things/" UUID, &route, NULL, &allowed),
                     ROUTER_FOUND);
    assert_ptr_equal(route, &table[3]);
}

static void test_registration(void **state)
{
    (void)state;
    assert_int_equal(router_count(), N_TABLE);
    for (size_t i = 0; i < N_TABLE; i++) {
        assert_ptr_equal(router_at(i), &table[i]);
        assert_int_equal(table[i].index, (int)i);
    }
    assert_null(router_at(N_TABLE));
    assert_null(router_at((size_t)-1));
    assert_int_equal(table[0].n_segments, 1);
    assert_int_equal(table[6].n_segments, 5);
    assert_int_equal(table[6].segment_len[2], strlen("{thingId}"));
    assert_memory_equal(table[6].segments[4], "{name}", 6);
    assert_ptr_equal(table[1].context, &marker);
    assert_ptr_equal(table[1].query_keys, list_keys);
}

static void test_param_lookup(void **state)
{
    (void)state;
    const struct route *route;
    struct route_params p;
    unsigned allowed;
    assert_int_equal(router_match(HTTP_GET, "/v1/things/" UUID "/parts/seat", &route, &p, &allowed),
                     ROUTER_FOUND);
    assert_int_equal(p.count, 2);
    assert_string_equal(router_param(&p, "thingId"), UUID);
    assert_string_equal(router_param(&p, "name"), "seat");
    /* Names compare whole, without the braces. */
    assert_null(router_param(&p, "thing"));
    assert_null(router_param(&p, "Id"));
    assert_null(router_param(&p, "thingIdx"));
    assert_null(router_param(&p, "nam"));
    assert_null(router_param(&p, "names"));
    assert_null(router_param(&p, "{name}"));
    assert_null(router_param(&p, "id"));
    assert_null(router_param(&p, ""));

    struct route_params none = {0};
    assert_null(router_param(&none, "id"));
}

static void test_allow_header(void **state)
{
    (void)state;
    static const struct {
        unsigned methods;
        const char *text;
    } cases[] = {
        {0, ""},
        {HTTP_GET, "GET"},
        {HTTP_OPTIONS, "OPTIONS"},
        {HTTP_GET | HTTP_HEAD | HTTP_OPTIONS, "GET, HEAD, OPTIONS"},
        {LIST_ALL, "GET, HEAD, POST, OPTIONS"},
        {THING_ALL, "GET, HEAD, PATCH, DELETE, OPTIONS"},
        {HTTP_OPTIONS | HTTP_POST, "POST, OPTIONS"},
        {127, "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"},
        {128 | HTTP_PUT, "PUT"}, /* unknown bits are ignored */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[64];
        memset(out, '#', sizeof out);
        router_allow_header(cases[i].methods, out, sizeof out);
        assert_string_equal(out, cases[i].text);
    }

    /* A short buffer is never overrun and always terminated. */
    char small[12];
    memset(small, '#', sizeof small);
    router_allow_header(127, small, sizeof small);
    assert_true(memchr(small, '\0', sizeof small) != NULL);
    assert_int_equal(strncmp(small, "GET, HEAD, POST", strlen(small)), 0);
}

static void test_methods(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum http_method method;
    } cases[] = {
        {"GET", HTTP_GET},         {"HEAD", HTTP_HEAD},   {"POST", HTTP_POST},
        {"PUT", HTTP_PUT},         {"PATCH", HTTP_PATCH}, {"DELETE", HTTP_DELETE},
        {"OPTIONS", HTTP_OPTIONS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        assert_int_equal(router_method(cases[i].name), cases[i].method);
        assert_string_equal(router_method_name(cases[i].method), cases[i].name);
    }
    static const char *const unknown[] = {"get", "TRACE", "CONNECT", "", "GET ", "POSTS"};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++)
        assert_int_equal(router_method(unknown[i]), 0);
}

static void test_is_uuid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        bool uuid;
    } cases[] = {
        {UUID, true},
        {UUID_UPPER, true},
        {"00000000-0000-0000-0000-000000000000", true},
        {"ffffffff-FFFF-ffff-FFFF-ffffffffffff", true},
        {"", false},
        {"0b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c0e1", false},
        {"0b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c0e133", false},
        {"0b1e6f8c3a52-4c1d-9f7e-2d4b6a8c0e13-", false},
        {"0b1e6f8c-3a52-4c1d-9f7e+2d4b6a8c0e13", false},
        {"0b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c0e1g", false},
        {"{b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c0e1}", false},
        {"0b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c 0e1", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (router_is_uuid(cases[i].s, strlen(cases[i].s)) != cases[i].uuid)
            fail_msg("router_is_uuid(\"%s\") is not %d", cases[i].s, cases[i].uuid);
    /* Only len bytes are read. */
    assert_true(router_is_uuid(UUID "trailing", 36));
    assert_false(router_is_uuid(UUID, 35));
}

/* ---- refusals: router_add aborts ---- */

struct refusal {
    const char *why;
    struct route route;
};

static const struct refusal refusals[] = {
    {"no roles", {.method = HTTP_GET, .pattern = "/x", .handler = handler, .roles = 0}},
    {"no handler", {.method = HTTP_GET, .pattern = "/x", .handler = NULL, .roles = 1}},
    {"HEAD route", {.method = HTTP_HEAD, .pattern = "/x", .handler = handler, .roles = 1}},
    {"OPTIONS route", {.method = HTTP_OPTIONS, .pattern = "/x", .handler = handler, .roles = 1}},
    {"no leading slash", {.method = HTTP_GET, .pattern = "x", .handler = handler, .roles = 1}},
    {"trailing slash", {.method = HTTP_GET, .pattern = "/x/", .handler = handler, .roles = 1}},
    {"root alone", {.method = HTTP_GET, .pattern = "/", .handler = handler, .roles = 1}},
    {"empty pattern", {.method = HTTP_GET, .pattern = "", .handler = handler, .roles = 1}},
    {"double slash", {.method = HTTP_GET, .pattern = "/a//b", .handler = handler, .roles = 1}},
    {"unclosed parameter",
     {.method = HTTP_GET, .pattern = "/a/{id", .handler = handler, .roles = 1}},
    {"nine segments",
     {.method = HTTP_GET, .pattern = "/1/2/3/4/5/6/7/8/9", .handler = handler, .roles = 1}},
    {"registered twice",
     {.method = HTTP_GET, .pattern = "/v1/things", .handler = handler, .roles = 1}},
    /* A route has exactly one method, and no more parameters than can be matched. */
    {"no method", {.method = 0, .pattern = "/x", .handler = handler, .roles = 1}},
    {"two methods",
     {.method = HTTP_GET | HTTP_POST, .pattern = "/x", .handler = handler, .roles = 1}},
    {"five parameters",
     {.method = HTTP_GET, .pattern = "/{a}/{b}/{c}/{d}/{e}", .handler = handler, .roles = 1}},
};

/* Registers a copy of one route (in a child: aborts.h). */
static void add_copy(const void *route)
{
    static struct route copy;
    copy = *(const struct route *)route;
    router_add(&copy, 1);
}

static void test_refusals(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof refusals / sizeof *refusals; i++)
        if (!aborts(add_copy, &refusals[i].route))
            fail_msg("router_add accepted a route with %s", refusals[i].why);
    /* The control: a good route does not abort. */
    static const struct route good = {
        .method = HTTP_GET, .pattern = "/fine/{id}", .handler = handler, .roles = 1};
    assert_false(aborts(add_copy, &good));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registration),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_match_without_params),
        cmocka_unit_test(test_param_lookup),
        cmocka_unit_test(test_allow_header),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_is_uuid),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests_name("router", tests, setup, NULL);
}

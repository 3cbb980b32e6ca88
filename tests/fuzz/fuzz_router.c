/* Routing: the fuzz input is a path, matched with every method against the real route table
 * (api_register()). Checks what router.h promises: HEAD finds GET, the Allow set, parameters
 * that are UUIDs where the name says so, and that no trailing or doubled slash ever matches. */
#include "fuzz.h"

#include "api.h"
#include "config.h"
#include "router.h"

#include <stdbool.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static const struct config defaults = {.changes_retention_s = 60, .prune_interval_s = 60};
    api_register(&defaults);
    FUZZ_CHECK(router_count() > 0);
    return 0;
}

static const enum http_method methods[] = {
    HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_PUT, HTTP_PATCH, HTTP_DELETE, HTTP_OPTIONS, 0,
};

static bool uuid_param(const char *name)
{
    size_t len = strcspn(name, "}") + 1; /* name is "{...}" followed by the rest of the pattern */
    return (len == 4 && memcmp(name, "{id}", 4) == 0) ||
           (len > 4 && memcmp(name + len - 3, "Id}", 3) == 0);
}

static size_t count_segments(const char *path)
{
    size_t n = 0;
    for (const char *p = path; *p; p++)
        n += *p == '/';
    return n;
}

static void check(enum http_method method, const char *path, size_t path_len)
{
    const struct route *route = NULL;
    struct route_params params;
    memset(&params, 0, sizeof params);
    unsigned allowed = 0xdead;
    enum router_result r = router_match(method, path, &route, &params, &allowed);
    enum http_method want = method == HTTP_HEAD ? HTTP_GET : method;

    char allow[64];
    router_allow_header(allowed, allow, sizeof allow);
    FUZZ_CHECK(memchr(allow, '\0', sizeof allow) != NULL);

    bool malformed =
        path_len == 0 || path[0] != '/' || path[path_len - 1] == '/' || strstr(path, "//") != NULL;
    switch (r) {
    case ROUTER_NOT_FOUND:
        FUZZ_CHECK(allowed == 0);
        FUZZ_CHECK(route == NULL);
        return;
    case ROUTER_METHOD_NOT_ALLOWED:
        FUZZ_CHECK(!malformed);
        FUZZ_CHECK(route == NULL);
        FUZZ_CHECK(allowed & HTTP_OPTIONS);
        FUZZ_CHECK(!(allowed & want));
        FUZZ_CHECK(method != HTTP_OPTIONS);
        return;
    case ROUTER_FOUND: break;
    default: FUZZ_CHECK(false);
    }

    FUZZ_CHECK(!malformed);
    FUZZ_CHECK(allowed & HTTP_OPTIONS);
    FUZZ_CHECK(!(allowed & HTTP_GET) == !(allowed & HTTP_HEAD));
    if (method == HTTP_OPTIONS) {
        FUZZ_CHECK(route == NULL);
        return;
    }
    FUZZ_CHECK(route != NULL);
    FUZZ_CHECK(route->method == want);
    FUZZ_CHECK(allowed & route->method);
    FUZZ_CHECK(route == router_at((size_t)route->index));
    FUZZ_CHECK((size_t)route->n_segments == count_segments(path));
    FUZZ_CHECK(params.count >= 0 && params.count <= ROUTER_MAX_PARAMS);

    /* Literal segments are the path's, parameters are copied whole. */
    const char *p = path;
    int k = 0;
    for (int i = 0; i < route->n_segments; i++) {
        FUZZ_CHECK(*p == '/');
        p++;
        size_t len = strcspn(p, "/");
        if (route->segments[i][0] != '{') {
            FUZZ_CHECK(len == route->segment_len[i]);
            FUZZ_CHECK(memcmp(p, route->segments[i], len) == 0);
        } else {
            FUZZ_CHECK(k < params.count);
            FUZZ_CHECK(params.names[k] == route->segments[i]);
            FUZZ_CHECK(strlen(params.values[k]) == len);
            FUZZ_CHECK(memcmp(params.values[k], p, len) == 0);
            if (uuid_param(params.names[k]))
                FUZZ_CHECK(router_is_uuid(params.values[k], len));
            char name[64];
            size_t name_len = route->segment_len[i] - 2;
            FUZZ_CHECK(name_len < sizeof name);
            memcpy(name, route->segments[i] + 1, name_len);
            name[name_len] = '\0';
            FUZZ_CHECK(router_param(&params, name) == params.values[k]);
            k++;
        }
        p += len;
    }
    FUZZ_CHECK(*p == '\0');
    FUZZ_CHECK(k == params.count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *path = malloc(size + 1);
    FUZZ_CHECK(path != NULL);
    memcpy(path, data, size);
    path[size] = '\0';

    /* The router sees a C string: a NUL in the input ends the path. */
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
        check(methods[i], path, strlen(path));

    /* The same bytes as a method name and as a UUID candidate. */
    enum http_method m = router_method(path);
    if (m)
        FUZZ_CHECK(strcmp(router_method_name(m), path) == 0);
    if (router_is_uuid(path, size))
        FUZZ_CHECK(size == 36 && path[8] == '-' && path[13] == '-' && path[18] == '-' &&
                   path[23] == '-');
    free(path);
    return 0;
}

#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROUTES 128

static struct route *table[MAX_ROUTES];
static size_t n_table;

static const struct {
    enum http_method method;
    const char *name;
} methods[] = {
    {HTTP_GET, "GET"},     {HTTP_HEAD, "HEAD"},     {HTTP_POST, "POST"},       {HTTP_PUT, "PUT"},
    {HTTP_PATCH, "PATCH"}, {HTTP_DELETE, "DELETE"}, {HTTP_OPTIONS, "OPTIONS"},
};

enum http_method router_method(const char *name)
{
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
        if (strcmp(methods[i].name, name) == 0)
            return methods[i].method;
    return 0;
}

const char *router_method_name(enum http_method m)
{
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
        if (methods[i].method == m)
            return methods[i].name;
    return "?";
}

static void fail(const struct route *r, const char *why)
{
    fprintf(stderr, "werklabd: route %s %s: %s\n", router_method_name(r->method), r->pattern, why);
    abort();
}

static bool is_param(const char *segment)
{
    return segment[0] == '{';
}

void router_add(struct route *routes, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        struct route *r = &routes[i];
        if (r->roles == 0)
            fail(r, "declares no roles");
        if (!r->handler)
            fail(r, "has no handler");
        if (r->method == HTTP_HEAD || r->method == HTTP_OPTIONS)
            fail(r, "HEAD and OPTIONS are answered by the server itself");
        if (strcmp(router_method_name(r->method), "?") == 0)
            fail(r, "a route has exactly one method");
        if (n_table == MAX_ROUTES)
            fail(r, "too many routes");
        const char *p = r->pattern;
        if (p[0] != '/' || (strlen(p) > 1 && p[strlen(p) - 1] == '/'))
            fail(r, "a pattern starts with / and does not end with one");
        r->n_segments = 0;
        int params = 0;
        while (*p == '/') {
            const char *start = ++p;
            while (*p && *p != '/')
                p++;
            if (p == start || r->n_segments == ROUTER_MAX_SEGMENTS)
                fail(r, "empty or too many segments");
            if (start[0] == '{' && p[-1] != '}')
                fail(r, "unclosed parameter");
            if (start[0] == '{' && ++params > ROUTER_MAX_PARAMS)
                fail(r, "too many parameters");
            r->segments[r->n_segments] = start;
            r->segment_len[r->n_segments] = (size_t)(p - start);
            r->n_segments++;
        }
        for (size_t k = 0; k < n_table; k++)
            if (table[k]->method == r->method && strcmp(table[k]->pattern, r->pattern) == 0)
                fail(r, "registered twice");
        r->index = (int)n_table;
        table[n_table++] = r;
    }
}

bool router_is_uuid(const char *s, size_t len)
{
    if (len != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

static bool param_is_uuid(const char *segment, size_t len)
{
    /* "{id}" or "{...Id}" */
    return (len == 4 && memcmp(segment, "{id}", 4) == 0) ||
           (len > 4 && memcmp(segment + len - 3, "Id}", 3) == 0);
}

/* Splits path into segments; false when it cannot match any pattern (empty segment, which is
 * also what a trailing slash makes). */
static int split(const char *path, const char **seg, size_t *len)
{
    int n = 0;
    const char *p = path;
    if (*p != '/')
        return -1;
    while (*p == '/') {
        const char *start = ++p;
        while (*p && *p != '/')
            p++;
        if (p == start || n == ROUTER_MAX_SEGMENTS)
            return -1;
        seg[n] = start;
        len[n] = (size_t)(p - start);
        n++;
    }
    return *p ? -1 : n;
}

static bool matches(const struct route *r, const char **seg, const size_t *len, int n,
                    struct route_params *params)
{
    if (r->n_segments != n)
        return false;
    /* Only the first count entries are ever read: zeroing all of them, for each of the routes a
     * path is tried against, cost more than the matching. */
    struct route_params found;
    found.count = 0;
    for (int i = 0; i < n; i++) {
        const char *want = r->segments[i];
        size_t want_len = r->segment_len[i];
        if (!is_param(want)) {
            if (want_len != len[i] || memcmp(want, seg[i], len[i]) != 0)
                return false;
            continue;
        }
        if (param_is_uuid(want, want_len) ? !router_is_uuid(seg[i], len[i])
                                          : len[i] >= sizeof found.values[0])
            return false;
        if (found.count == ROUTER_MAX_PARAMS)
            return false;
        /* names[] points into the pattern ("{id}..."); router_param() compares without braces. */
        found.names[found.count] = want;
        memcpy(found.values[found.count], seg[i], len[i]);
        found.values[found.count][len[i]] = '\0';
        found.count++;
    }
    if (params)
        *params = found;
    return true;
}

enum router_result router_match(enum http_method method, const char *path,
                                const struct route **route, struct route_params *params,
                                unsigned *allowed)
{
    const char *seg[ROUTER_MAX_SEGMENTS];
    size_t len[ROUTER_MAX_SEGMENTS];
    int n = split(path, seg, len);
    *allowed = 0;
    *route = NULL;
    if (n < 0)
        return ROUTER_NOT_FOUND;
    enum http_method want = method == HTTP_HEAD ? HTTP_GET : method;
    for (size_t i = 0; i < n_table; i++) {
        struct route_params p;
        if (!matches(table[i], seg, len, n, &p))
            continue;
        *allowed |= table[i]->method;
        if (table[i]->method == want && !*route) {
            *route = table[i];
            if (params)
                *params = p;
        }
    }
    if (!*allowed)
        return ROUTER_NOT_FOUND;
    *allowed |= HTTP_OPTIONS;
    if (*allowed & HTTP_GET)
        *allowed |= HTTP_HEAD;
    if (method == HTTP_OPTIONS)
        return ROUTER_FOUND;
    return *route ? ROUTER_FOUND : ROUTER_METHOD_NOT_ALLOWED;
}

void router_allow_header(unsigned allowed, char *out, size_t out_len)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
        if (!(allowed & methods[i].method))
            continue;
        int n = snprintf(out + used, out_len - used, "%s%s", used ? ", " : "", methods[i].name);
        if (n < 0 || (size_t)n >= out_len - used)
            return;
        used += (size_t)n;
    }
}

size_t router_count(void)
{
    return n_table;
}

const struct route *router_at(size_t i)
{
    return i < n_table ? table[i] : NULL;
}

const char *router_param(const struct route_params *p, const char *name)
{
    size_t len = strlen(name);
    for (int i = 0; i < p->count; i++)
        if (strncmp(p->names[i] + 1, name, len) == 0 && p->names[i][len + 1] == '}')
            return p->values[i];
    return NULL;
}

/* router: the route table.
 *
 * Each route names its method, its path pattern, its handler, the roles that may call it and the
 * query keys it takes. A route that declares no roles is refused at registration: forgetting to
 * think about access is a startup failure, not an open endpoint. Patterns are literal segments
 * and {parameters}; a parameter named `id` or ending in `Id` must be a UUID, or the path does not
 * match (so a malformed id is 404, as for an unknown one). Trailing slashes never match. */
#ifndef WERKLAB_ROUTER_H
#define WERKLAB_ROUTER_H

#include "auth.h" /* enum role: who may call a route */

#include <stdbool.h>
#include <stddef.h>

enum http_method {
    HTTP_GET = 1,
    HTTP_HEAD = 2,
    HTTP_POST = 4,
    HTTP_PUT = 8,
    HTTP_PATCH = 16,
    HTTP_DELETE = 32,
    HTTP_OPTIONS = 64,
};

struct request;
typedef void (*route_handler)(struct request *req);

#define ROUTER_MAX_PARAMS   4
#define ROUTER_MAX_SEGMENTS 8

struct route {
    enum http_method method;
    const char *pattern; /* "/v1/municipalities/{id}": also the route's name in logs and metrics */
    route_handler handler;
    unsigned roles;                /* enum role bits (auth.h); 0 is refused */
    const char *const *query_keys; /* NULL-terminated keys the route takes; NULL: none */
    const void *context;           /* handed to the handler (e.g. a resource description) */
    const char *produces;          /* media type of success bodies; NULL: application/json */
    bool csv;                      /* a list that can also answer text/csv */
    bool no_idempotency;           /* POST whose answer must not be stored (personal data) */
    bool no_body;                  /* an action (POST .../rotate-secret): a body is 400 */
    /* Filled at registration. */
    int index;
    int n_segments;
    const char *segments[ROUTER_MAX_SEGMENTS];
    size_t segment_len[ROUTER_MAX_SEGMENTS];
};

struct route_params {
    int count;
    const char *names[ROUTER_MAX_PARAMS];
    char values[ROUTER_MAX_PARAMS][64];
};

/* Adds routes (the array must outlive the router). Aborts with a message on a route without
 * roles, a malformed pattern, or a method and pattern registered twice. */
void router_add(struct route *routes, size_t count);

enum router_result { ROUTER_FOUND, ROUTER_NOT_FOUND, ROUTER_METHOD_NOT_ALLOWED };

/* Finds the route for method and path. HEAD finds the GET route. On ROUTER_FOUND, *route and
 * params are set; on ROUTER_METHOD_NOT_ALLOWED (and on FOUND), *allowed holds the methods the
 * path supports (HEAD and OPTIONS included). */
enum router_result router_match(enum http_method method, const char *path,
                                const struct route **route, struct route_params *params,
                                unsigned *allowed);

/* "GET, HEAD, POST, OPTIONS" for a method set; out must hold 64 bytes. */
void router_allow_header(unsigned methods, char *out, size_t out_len);
enum http_method router_method(const char *name); /* 0 when unknown */
const char *router_method_name(enum http_method m);

size_t router_count(void);
const struct route *router_at(size_t i);
/* The value of parameter name, or NULL. */
const char *router_param(const struct route_params *p, const char *name);

/* True for the canonical textual form of a UUID (any case, with hyphens). */
bool router_is_uuid(const char *s, size_t len);

#endif

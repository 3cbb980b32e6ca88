#include "http.h"

#include "audit.h"
#include "conns.h"
#include "crypto.h"
#include "dbpipe.h"
#include "idempotency.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"
#include "validate.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A body this many times over the limit is not read to its end: the connection is closed. */
#define DISCARD_FACTOR 16

static struct MHD_Daemon *daemon_handle;
static const struct config *cfg;
static atomic_int in_flight;
static atomic_int suspended; /* connections waiting for the pipeline or the audit log */
static atomic_bool stopping; /* no more suspending: libmicrohttpd is about to stop */

static const char expose_headers[] =
    "API-Version, ETag, Link, Location, Retry-After, X-Request-Id, RateLimit-Limit, "
    "RateLimit-Remaining, RateLimit-Reset, Idempotent-Replayed, Content-Disposition";
static const char allow_headers[] =
    "Authorization, Content-Type, If-Match, If-None-Match, Idempotency-Key, X-Request-Id";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *status_title(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

/* ---- request headers, query, parameters ---- */

const char *http_header(struct request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_query(const struct request *req, const char *key)
{
    for (int i = 0; i < req->n_query; i++)
        if (strcmp(req->query[i].key, key) == 0)
            return req->query[i].value;
    return NULL;
}

const char *http_param(const struct request *req, const char *name)
{
    return router_param(&req->params, name);
}

/* ---- building the response ---- */

void http_set_header(struct request *req, const char *name, const char *value)
{
    if (req->n_headers == HTTP_MAX_HEADERS)
        abort(); /* a handler bug, never input-driven */
    req->header_names[req->n_headers] = xstrdup(name);
    req->header_values[req->n_headers] = xstrdup(value);
    req->n_headers++;
}

static void restart_body(struct request *req)
{
    buf_reset(&req->out);
    jsonw_init(&req->w, &req->out);
}

void http_reply(struct request *req, int status)
{
    if (!jsonw_finished(&req->w)) {
        log_event("error", "%s %s: the handler wrote malformed JSON", req->method_name,
                  req->route ? req->route->pattern : req->path);
        http_problem(req, 500, "The server could not write the response.");
        return;
    }
    req->status = status;
    req->content_type = "application/json; charset=utf-8";
}

void http_reply_text(struct request *req, int status, const char *content_type, const char *body,
                     size_t len)
{
    restart_body(req);
    buf_append(&req->out, body, len);
    req->status = status;
    req->content_type = content_type;
}

void http_reply_stream(struct request *req, int status, const char *content_type,
                       long (*read)(void *ctx, char *out, size_t max), void (*free_ctx)(void *ctx),
                       void *ctx)
{
    restart_body(req);
    req->status = status;
    req->content_type = content_type;
    req->stream_read = read;
    req->stream_free = free_ctx;
    req->stream_ctx = ctx;
}

void http_clear_headers(struct request *req)
{
    for (int i = 0; i < req->n_headers; i++) {
        free(req->header_names[i]);
        free(req->header_values[i]);
    }
    req->n_headers = 0;
}

void http_reply_empty(struct request *req, int status)
{
    restart_body(req);
    req->status = status;
    req->content_type = NULL;
}

/* Cuts a string that snprintf shortened back to its last whole UTF-8 character. */
static void utf8_trim(char *s, size_t size)
{
    size_t n = strlen(s);
    if (n + 1 < size)
        return;
    size_t start = n;
    while (start > 0 && ((unsigned char)s[start - 1] & 0xc0) == 0x80)
        start--;
    if (start > 0 && (unsigned char)s[start - 1] >= 0xc0) {
        unsigned char lead = (unsigned char)s[start - 1];
        size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
        if (n - (start - 1) < need)
            s[start - 1] = '\0';
    }
}

static void write_problem(struct request *req, int status, const char *detail)
{
    restart_body(req);
    struct jsonw *w = &req->w;
    jsonw_object_begin(w);
    jsonw_kv_string(w, "type", "about:blank");
    jsonw_kv_string(w, "title", status_title(status));
    jsonw_kv_int(w, "status", status);
    jsonw_kv_string(w, "detail", detail);
    jsonw_kv_string(w, "instance", req->path);
    if (status == 400 && req->n_invalid > 0) {
        jsonw_key(w, "invalidParams");
        jsonw_array_begin(w);
        for (int i = 0; i < req->n_invalid; i++) {
            jsonw_object_begin(w);
            jsonw_kv_string(w, "name", req->invalid[i].name);
            jsonw_kv_string(w, "code", req->invalid[i].code);
            jsonw_kv_string(w, "reason", req->invalid[i].reason);
            jsonw_object_end(w);
        }
        jsonw_array_end(w);
    }
    if (status == 409 && req->n_conflicts > 0) {
        jsonw_key(w, "conflicts");
        jsonw_array_begin(w);
        for (int i = 0; i < req->n_conflicts; i++) {
            jsonw_object_begin(w);
            jsonw_kv_string(w, "code", req->conflicts[i].code);
            jsonw_kv_string(w, "detail", req->conflicts[i].detail);
            jsonw_object_end(w);
        }
        jsonw_array_end(w);
    }
    jsonw_object_end(w);
    req->status = status;
    req->content_type = "application/problem+json";
}

void http_problem(struct request *req, int status, const char *detail, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, detail);
    vsnprintf(text, sizeof text, detail, ap);
    va_end(ap);
    utf8_trim(text, sizeof text);
    write_problem(req, status, text);
}

void http_invalid(struct request *req, const char *name, const char *code, const char *reason, ...)
{
    if (req->n_invalid == HTTP_MAX_INVALID)
        return;
    struct http_invalid_param *p = &req->invalid[req->n_invalid++];
    snprintf(p->name, sizeof p->name, "%s", name);
    utf8_trim(p->name, sizeof p->name);
    p->code = code;
    va_list ap;
    va_start(ap, reason);
    vsnprintf(p->reason, sizeof p->reason, reason, ap);
    va_end(ap);
    utf8_trim(p->reason, sizeof p->reason);
}

void http_problem_invalid(struct request *req)
{
    if (req->n_invalid == 1)
        http_problem(req, 400, "The request has 1 invalid field: %s.", req->invalid[0].name);
    else
        http_problem(req, 400, "The request has %d invalid fields.", req->n_invalid);
}

void http_conflict(struct request *req, const char *code, const char *detail, ...)
{
    if (req->n_conflicts == HTTP_MAX_CONFLICTS)
        return;
    struct http_conflict *c = &req->conflicts[req->n_conflicts++];
    c->code = code;
    va_list ap;
    va_start(ap, detail);
    vsnprintf(c->detail, sizeof c->detail, detail, ap);
    va_end(ap);
}

void http_problem_conflicts(struct request *req, const char *detail)
{
    write_problem(req, 409, detail);
}

void http_problem_unavailable(struct request *req)
{
    write_problem(req, 503, "The database is unreachable; try again shortly.");
    http_set_header(req, "Retry-After", "2");
}

void http_problem_database(struct request *req, enum db_status status)
{
    if (status == DB_UNAVAILABLE || status == DB_RETRY)
        http_problem_unavailable(req);
    else if (status == DB_INVALID_INPUT)
        http_problem(req, 400, "A value in the request cannot be used here.");
    else
        http_problem(req, 500, "The server failed to handle this request.");
}

bool http_etag(struct request *req, const char *version)
{
    char tag[32];
    snprintf(tag, sizeof tag, "\"%s\"", version);
    http_set_header(req, "ETag", tag);
    const char *inm = http_header(req, "If-None-Match");
    if (!inm)
        return false;
    /* A list of entity tags, or *; weak tags compare equal for GET (RFC 9110 §13.1.2). */
    for (const char *p = inm; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        size_t n = strlen(tag);
        if (strncmp(p, tag, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
            return true;
        while (*p && *p != ',')
            p++;
    }
    return false;
}

void http_reply_not_modified(struct request *req)
{
    http_reply_empty(req, 304);
}

const char *http_if_match(struct request *req, char *out)
{
    const char *im = http_header(req, "If-Match");
    if (!im)
        return NULL;
    /* "*" matches whatever exists (RFC 9110 §13.1.1): no version to hold the write to. */
    if (strcmp(im, "*") == 0)
        return NULL;
    /* Otherwise one strong tag, "N": what our ETags look like. Anything else cannot match. */
    size_t len = strlen(im);
    out[0] = '\0';
    if (len < 3 || len > 12 || im[0] != '"' || im[len - 1] != '"')
        return out;
    for (size_t i = 1; i < len - 1; i++)
        if (im[i] < '0' || im[i] > '9')
            return out;
    memcpy(out, im + 1, len - 2);
    out[len - 2] = '\0';
    return out;
}

void http_url_encode(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~' || c == ',') {
            buf_putc(b, (char)c);
        } else {
            buf_putc(b, '%');
            buf_putc(b, hex[c >> 4]);
            buf_putc(b, hex[c & 15]);
        }
    }
}

/* ---- sending ---- */

static void add(struct MHD_Response *r, const char *name, const char *value)
{
    MHD_add_response_header(r, name, value);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    struct request *req = cls;
    long n = req->stream_read(req->stream_ctx, out, max);
    if (n < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : (ssize_t)n;
}

static enum MHD_Result send_response(struct request *req)
{
    if (req->status == 0)
        http_problem(req, 500, "The server could not answer this request.");
    size_t len = req->out.len;
    struct MHD_Response *r;
    if (req->stream_read)
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, stream_reader, req,
                                              NULL);
    else
        r = MHD_create_response_from_buffer(len, len ? buf_detach(&req->out) : (void *)"",
                                            len ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    bool cache_set = false;
    for (int i = 0; i < req->n_headers; i++) {
        add(r, req->header_names[i], req->header_values[i]);
        cache_set |= strcasecmp(req->header_names[i], "Cache-Control") == 0;
    }
    if (req->content_type)
        add(r, "Content-Type", req->content_type);
    add(r, "API-Version", HTTP_API_VERSION);
    add(r, "X-Request-Id", req->request_id);
    add(r, "X-Content-Type-Options", "nosniff");
    add(r, "X-Frame-Options", "DENY");
    add(r, "Content-Security-Policy", "frame-ancestors 'none'");
    add(r, "Strict-Transport-Security", "max-age=31536000");
    add(r, "Referrer-Policy", "no-referrer");
    if (!cache_set)
        add(r, "Cache-Control", "no-store");
    if (req->public_cors) {
        add(r, "Access-Control-Allow-Origin", "*");
        add(r, "Access-Control-Expose-Headers", expose_headers);
    } else if (req->origin) {
        add(r, "Access-Control-Allow-Origin", req->origin);
        add(r, "Access-Control-Expose-Headers", expose_headers);
        add(r, "Vary", "Origin");
    }
    /* The client now reads: it may take longer than it may take to send (idle_timeout_s). */
    MHD_set_connection_option(req->conn, MHD_CONNECTION_OPTION_TIMEOUT,
                              (unsigned)cfg->connection_timeout_s);
    /* Counted before the client can see the answer: whoever reads /metrics after an answer
     * arrived finds it counted, whichever thread serves the read. */
    metrics_request(req->route ? req->route->index : -1, req->status, now_s() - req->started);
    enum MHD_Result ret = MHD_queue_response(req->conn, (unsigned)req->status, r);
    MHD_destroy_response(r);
    req->queued = true;
    return ret;
}

/* ---- the checks every request passes ---- */

static void set_request_id(struct request *req)
{
    const char *given = http_header(req, "X-Request-Id");
    size_t n = given ? strlen(given) : 0;
    bool sane = n > 0 && n < sizeof req->request_id;
    for (size_t i = 0; sane && i < n; i++)
        sane = given[i] >= 0x20 && given[i] < 0x7f;
    if (sane) {
        memcpy(req->request_id, given, n + 1);
        return;
    }
    crypto_uuid(req->request_id);
}

/* Takes one query parameter; false once there are more than HTTP_MAX_QUERY. */
static bool collect_query(struct request *req, const char *key, size_t key_size, const char *value,
                          size_t value_size)
{
    /* A %00 would cut the value short where C reads it: refuse it instead. Text that is not
     * UTF-8 is refused here too, before it can reach the database (which would refuse it in
     * its own words). */
    if (strlen(key) != key_size || (value && strlen(value) != value_size)) {
        req->query_malformed = true;
        http_invalid(req, key, "format", "contains a NUL character (%%00)");
    } else if (!validate_utf8(key, key_size) || (value && !validate_utf8(value, value_size))) {
        req->query_malformed = true;
        http_invalid(req, key, "format", "is not UTF-8 text");
    }
    if (req->n_query == HTTP_MAX_QUERY) {
        req->n_query++; /* marks "too many" */
        return false;
    }
    if (req->n_query > HTTP_MAX_QUERY)
        return false;
    req->query[req->n_query++] = (struct http_query_arg){key, value ? value : ""};
    return true;
}

/* Decodes a query key or value in place, as libmicrohttpd does its own: '+' is a space, then
 * %XX escapes (a malformed one stays as it is). Returns the length, which a %00 makes longer
 * than strlen() sees. */
static size_t decode_query_part(char *s)
{
    for (char *p = s; *p; p++)
        if (*p == '+')
            *p = ' ';
    return MHD_http_unescape(s);
}

/* Splits req->query_text into req->query the way libmicrohttpd 0.9.75 splits a query: at each
 * '&', each part at its first '='; a part without '=' is a key without a value; an empty last
 * part is no parameter. */
static void split_query(struct request *req)
{
    for (char *part = req->query_text; part && *part;) {
        char *amper = strchr(part, '&');
        if (amper)
            *amper = '\0';
        char *equals = strchr(part, '=');
        if (equals)
            *equals = '\0';
        size_t key_size = decode_query_part(part);
        size_t value_size = equals ? decode_query_part(equals + 1) : 0;
        if (!collect_query(req, part, key_size, equals ? equals + 1 : NULL, value_size))
            return;
        part = amper ? amper + 1 : NULL;
    }
}

/* Query keys: at most HTTP_MAX_QUERY, each once, each one the route takes. */
static bool check_query(struct request *req)
{
    if (req->n_query > HTTP_MAX_QUERY) {
        http_problem(req, 400, "The query string has more than %d parameters.", HTTP_MAX_QUERY);
        return false;
    }
    for (int i = 0; i < req->n_query; i++) {
        const char *key = req->query[i].key;
        bool known = false;
        for (const char *const *k = req->route ? req->route->query_keys : NULL; k && *k; k++)
            known |= strcmp(*k, key) == 0;
        if (!known)
            http_invalid(req, key, "unknown", "is not a query parameter of this endpoint");
        for (int j = 0; j < i; j++)
            if (strcmp(req->query[j].key, key) == 0)
                http_invalid(req, key, "unknown", "is given more than once");
    }
    /* A route that takes query keys reports these together with its own findings. */
    if (req->n_invalid && !req->route->query_keys) {
        http_problem_invalid(req);
        return false;
    }
    return true;
}

/* True when the Accept header admits media (e.g. "application/json"). Problem bodies are
 * JSON too, so a client that accepts JSON accepts them. q=0 excludes a range. */
static bool accepts(const char *accept, const char *media)
{
    if (!accept || !*accept)
        return true;
    const char *slash = strchr(media, '/');
    size_t type_len = (size_t)(slash - media);
    for (const char *p = accept; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',' && *end != ';' && *end != ' ')
            end++;
        size_t n = (size_t)(end - p);
        const char *params = end;
        while (*params && *params != ',')
            params++;
        bool zero = false;
        for (const char *q = end; q < params; q++)
            if (strncmp(q, "q=0", 3) == 0 && (q[3] == '\0' || q[3] == ',' || q[3] == ' ' ||
                                              (q[3] == '.' && strspn(q + 4, "0") > 0 &&
                                               strchr(",; ", q[4 + strspn(q + 4, "0")]))))
                zero = true;
        if (!zero && n > 0) {
            if ((n == 3 && strncmp(p, "*/*", 3) == 0) ||
                (n == strlen(media) && strncasecmp(p, media, n) == 0) ||
                (n == type_len + 2 && strncasecmp(p, media, type_len + 1) == 0 && p[n - 1] == '*'))
                return true;
            if (strcmp(media, "application/json") == 0 && n == 24 &&
                strncasecmp(p, "application/problem+json", 24) == 0)
                return true;
        }
        p = params;
    }
    return false;
}

/* The media type of Content-Type without parameters matches one of the route's. */
static bool body_media_ok(struct request *req)
{
    const char *ct = http_header(req, "Content-Type");
    if (!ct)
        return false;
    size_t n = strcspn(ct, "; ");
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return true;
    return req->method == HTTP_PATCH && n == 28 &&
           strncasecmp(ct, "application/merge-patch+json", 28) == 0;
}

static bool takes_body(enum http_method m)
{
    return m == HTTP_POST || m == HTTP_PUT || m == HTTP_PATCH;
}

void http_client_address(struct request *req, char *out, size_t len)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = info ? info->client_addr : NULL;
    snprintf(out, len, "unknown");
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)len);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)len);
}

static bool answer_limit(struct request *req, const struct ratelimit_verdict *v, const char *who);

/* Writes without a key (a public inquiry form) are limited per client address: the one place
 * where anyone can make the server store something. */
static bool within_public_limit(struct request *req)
{
    if (req->who.role != ROLE_PUBLIC || req->method == HTTP_GET || req->method == HTTP_HEAD)
        return true;
    char address[64];
    http_client_address(req, address, sizeof address);
    struct ratelimit_verdict v;
    ratelimit_take("public-write", address, cfg->public_write_limit, 60, &v);
    return answer_limit(req, &v, "this address");
}

/* Sets the RateLimit headers; when the limit is reached, answers 429. */
static bool answer_limit(struct request *req, const struct ratelimit_verdict *v, const char *who)
{
    char text[16];
    snprintf(text, sizeof text, "%u", v->limit);
    http_set_header(req, "RateLimit-Limit", text);
    snprintf(text, sizeof text, "%u", v->remaining);
    http_set_header(req, "RateLimit-Remaining", text);
    snprintf(text, sizeof text, "%u", v->reset_s);
    http_set_header(req, "RateLimit-Reset", text);
    if (v->allowed)
        return true;
    http_problem(req, 429, "Too many requests from %s; try again in %u seconds.", who,
                 v->retry_after);
    snprintf(text, sizeof text, "%u", v->retry_after);
    http_set_header(req, "Retry-After", text);
    return false;
}

/* Requests per key per minute: the key's own limit, or the server's. */
static bool within_key_limit(struct request *req)
{
    if (!req->who.key_id[0])
        return true;
    unsigned limit = req->who.rate_limit >= 0 ? (unsigned)req->who.rate_limit : cfg->key_rate_limit;
    if (limit == 0)
        return true;
    struct ratelimit_verdict v;
    ratelimit_take("key", req->who.key_id, limit, 60, &v);
    return answer_limit(req, &v, "this API key");
}

/* True when the Accept header names text/csv itself (a wildcard keeps JSON). */
static bool names_csv(const char *accept)
{
    if (!accept)
        return false;
    for (const char *p = strcasestr(accept, "text/csv"); p; p = strcasestr(p + 8, "text/csv")) {
        const char *end = p + 8;
        if ((p == accept || p[-1] == ' ' || p[-1] == ',') &&
            (*end == '\0' || *end == ',' || *end == ';' || *end == ' ')) {
            const char *q = strstr(end, "q=");
            const char *next = strchr(end, ',');
            bool zero =
                q && (!next || q < next) && q[2] == '0' && strspn(q + 3, ".0") == strlen(q + 3);
            if (!zero)
                return true;
        }
    }
    return false;
}

static void answer_preflight(struct request *req, unsigned allowed)
{
    /* The method the browser asks about decides: a public one allows every origin. */
    const char *asked = http_header(req, "Access-Control-Request-Method");
    const struct route *route;
    unsigned ignored;
    if (asked &&
        router_match(router_method(asked), req->path, &route, NULL, &ignored) == ROUTER_FOUND &&
        route && (route->roles & ROLE_PUBLIC))
        req->public_cors = true;
    char methods[80];
    router_allow_header(allowed, methods, sizeof methods);
    http_reply_empty(req, 204);
    http_set_header(req, "Allow", methods);
    if (req->origin || req->public_cors) {
        http_set_header(req, "Access-Control-Allow-Methods", methods);
        http_set_header(req, "Access-Control-Allow-Headers", allow_headers);
        http_set_header(req, "Access-Control-Max-Age", "600");
    }
}

/* The request's end owns transaction cleanup: what a handler left open on its connection is
 * rolled back (so the next request on this thread starts clean), and an answer claiming success
 * is replaced, since the work it claims was never committed. depth: what was open before. */
static void end_transactions(struct request *req, int depth)
{
    if (db_transaction_depth() <= depth)
        return;
    log_event("error", "%s %s returned with a transaction open: rolled back", req->method_name,
              req->route->pattern);
    db_rollback_to(depth);
    if (!req->then && req->status < 400) {
        http_clear_headers(req);
        http_problem(req, 500, "The server failed to handle this request.");
    }
}

static void dispatch(struct request *req)
{
    if (req->target_refused == 414) {
        http_problem(req, 414, "The URL is longer than %d bytes.", HTTP_MAX_URL_BYTES);
        return;
    }
    if (req->target_refused == 400) {
        http_problem(req, 400, "The query string has more than %d parameters.", HTTP_MAX_QUERY);
        return;
    }
    if (req->bad_header[0]) {
        http_invalid(req, req->bad_header, "format",
                     "is not UTF-8 text without control characters");
        http_problem_invalid(req);
        return;
    }
    unsigned allowed;
    enum router_result found =
        router_match(req->method, req->path, &req->route, &req->params, &allowed);
    if (found == ROUTER_NOT_FOUND) {
        http_problem(req, 404, "There is nothing at %s.", req->path);
        return;
    }
    if (req->route && req->route->roles & ROLE_PUBLIC)
        req->public_cors = true;
    if (req->method == HTTP_OPTIONS) {
        answer_preflight(req, allowed);
        return;
    }
    if (found == ROUTER_METHOD_NOT_ALLOWED) {
        char methods[80];
        router_allow_header(allowed, methods, sizeof methods);
        http_problem(req, 405, "%s is not allowed here; allowed: %s.", req->method_name, methods);
        http_set_header(req, "Allow", methods);
        return;
    }

    split_query(req);
    if (req->query_malformed) {
        http_problem_invalid(req);
        return;
    }
    /* A key in a URL ends up in logs and browser histories: refuse it before anything else. */
    static const char *const key_in_query[] = {"key",          "apiKey",      "api_key",
                                               "access_token", "accessToken", "token"};
    for (int i = 0; i < req->n_query && i < HTTP_MAX_QUERY; i++) {
        const char *k = req->query[i].key;
        bool secret = false;
        for (size_t s = 0; s < sizeof key_in_query / sizeof *key_in_query; s++)
            secret |= strcmp(k, key_in_query[s]) == 0;
        if (secret) {
            http_invalid(req, k, "unknown",
                         "API keys are not accepted in the query string; send them in the "
                         "Authorization header");
            http_problem_invalid(req);
            return;
        }
    }

    switch (auth_check(http_header(req, "Authorization"), &req->who)) {
    case AUTH_UNAVAILABLE: http_problem_unavailable(req); return;
    case AUTH_REFUSED:
        http_problem(req, 401, "A valid API key is required: send Authorization: Bearer <key>.");
        http_set_header(req, "WWW-Authenticate", "Bearer realm=\"werklabd\"");
        return;
    case AUTH_NONE:
        if (!(req->route->roles & ROLE_PUBLIC)) {
            http_problem(req, 401,
                         "A valid API key is required: send Authorization: Bearer <key>.");
            http_set_header(req, "WWW-Authenticate", "Bearer realm=\"werklabd\"");
            return;
        }
        break;
    case AUTH_OK:
        if (!(req->route->roles & (req->who.role | ROLE_PUBLIC))) {
            http_problem(req, 403, "A %s key may not %s %s.", auth_role_name(req->who.role),
                         req->method_name, req->route->pattern);
            return;
        }
        break;
    }

    if (!within_public_limit(req) || !within_key_limit(req))
        return;
    if (req->who.require_if_match && !http_header(req, "If-Match") &&
        (req->method == HTTP_PATCH || req->method == HTTP_PUT || req->method == HTTP_DELETE)) {
        http_problem(req, 428, "This key must send If-Match with the ETag it last read.");
        return;
    }

    const char *produces = req->route->produces ? req->route->produces : "application/json";
    const char *accept = http_header(req, "Accept");
    req->wants_csv = req->route->csv && names_csv(accept);
    if (!req->wants_csv && !accepts(accept, produces)) {
        http_problem(req, 406, "This endpoint answers with %s%s.", produces,
                     req->route->csv ? " or text/csv" : "");
        return;
    }
    if (req->too_large) {
        http_problem(req, 413, "The request body is larger than %u bytes.", cfg->body_limit);
        return;
    }
    if (takes_body(req->method)) {
        if (req->body.len == 0) {
            http_problem(req, 400, "This request needs a JSON body.");
            return;
        }
        if (!body_media_ok(req)) {
            http_problem(req, 415, "The body must be application/json%s.",
                         req->method == HTTP_PATCH ? " or application/merge-patch+json" : "");
            return;
        }
    }
    if (!check_query(req))
        return;
    if (takes_body(req->method)) {
        json_error_t error;
        req->json = json_loadb(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &error);
        if (!req->json) {
            http_problem(req, 400, "The body is not valid JSON: %s (line %d, column %d).",
                         error.text, error.line, error.column);
            return;
        }
    }
    if (!idempotency_begin(req))
        return;
    int depth = db_transaction_depth(); /* idempotency_begin()'s, around the handler */
    req->route->handler(req);
    end_transactions(req, depth);
    if (!req->then)
        idempotency_finish(req);
}

/* ---- statements on the pipeline ---- */

/* On a pipeline thread: keep the result and let libmicrohttpd take the connection up again,
 * which calls on_request() once more. req is not touched after the resume. */
static void on_deferred_result(void *ctx, struct db_result *r)
{
    struct request *req = ctx;
    req->deferred = *r;
    atomic_store_explicit(&req->deferred_ready, true, memory_order_release);
    MHD_resume_connection(req->conn);
}

/* Counts a connection about to be suspended; false, counting nothing, when the server is
 * stopping: libmicrohttpd must not be stopped with a connection suspended, so http_stop() waits
 * for the count to reach 0, and this makes sure it stays there. */
static bool may_suspend(void)
{
    atomic_fetch_add(&suspended, 1);
    if (!atomic_load(&stopping))
        return true;
    atomic_fetch_sub(&suspended, 1);
    return false;
}

void http_defer(struct request *req, const char *sql, int n, const char *const *values,
                http_then then)
{
    if (!dbpipe_running() || req->idempotent || !may_suspend()) {
        struct db_result r;
        db_exec(sql, n, values, &r);
        then(req, &r);
        db_clear(&r);
        return;
    }
    req->then = then;
    /* Suspended before the statement is queued, so the resume can never come first. */
    MHD_suspend_connection(req->conn);
    dbpipe_submit(sql, n, values, on_deferred_result, req);
}

/* The deferred result is in: answer with it. */
static void answer_deferred(struct request *req)
{
    http_then then = req->then;
    req->then = NULL;
    atomic_fetch_sub(&suspended, 1);
    int depth = db_transaction_depth();
    then(req, &req->deferred);
    end_transactions(req, depth);
    db_clear(&req->deferred);
}

/* ---- libmicrohttpd callbacks ---- */

static struct request *request_new(struct MHD_Connection *conn)
{
    struct request *req = xcalloc(1, sizeof *req);
    req->conn = conn;
    req->started = now_s();
    jsonw_init(&req->w, &req->out);
    atomic_fetch_add(&in_flight, 1);
    return req;
}

/* The headers are in: what the request is. */
static void request_begin(struct request *req, const char *url, const char *method)
{
    req->begun = true;
    req->method_name = method;
    req->method = router_method(method);
    req->path = xstrdup(url);
    const char *origin = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Origin");
    if (origin && config_cors_allowed(cfg, origin))
        req->origin = origin;
    set_request_id(req);
}

/* Query parameters as libmicrohttpd 0.9.75 counts them: one per '&', and the last one unless
 * it is empty. */
static size_t count_query_parameters(const char *query)
{
    size_t n = 0;
    const char *last = query;
    for (const char *p = query; *p; p++)
        if (*p == '&') {
            n++;
            last = p + 1;
        }
    return n + (*last != '\0');
}

/* libmicrohttpd's URI log callback: the request line is in, the headers are not. It runs
 * before libmicrohttpd splits the query into parameters, which it would store in the
 * connection's memory: libmicrohttpd 0.9.75 can run out of it (on about a thousand parameters,
 * or fewer when the headers arrived with the request line and fill it), queues its own error
 * answer, then loses it, and the connection hangs until its timeout. So libmicrohttpd never
 * gets the query: werklabd keeps a copy and cuts it off in libmicrohttpd's buffer (its own
 * writable copy of the target, parsed in place right after this call, from just after the
 * '?'), and splits the copy itself (split_query), unless the target is refused anyway. */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    struct request *req = request_new(conn);
    conns_request_started(conn, req);
    req->target_bytes = strlen(uri);
    char *query = strchr(uri, '?');
    if (query && count_query_parameters(query + 1) > HTTP_MAX_QUERY)
        req->target_refused = 400;
    else if (req->target_bytes > HTTP_MAX_URL_BYTES)
        req->target_refused = 414;
    if (query) {
        if (!req->target_refused)
            req->query_text = xstrdup(query + 1);
        query[1] = '\0';
    }
    return req;
}

/* What the headers say about where the request ends. */
struct framing {
    unsigned fields, hosts, lengths, transfer_encodings;
    const char *transfer_encoding; /* the last one */
    bool bad_name;
    const char *bad_value; /* a header whose value is not UTF-8 text */
};

/* An RFC 9110 token: what a header name must be. */
static bool is_token(const char *s, size_t len)
{
    static const char other[] = "!#$%&'*+-.^_`|~";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c != '\0' && strchr(other, c))))
            return false;
    }
    return len > 0;
}

/* UTF-8 text without control characters other than tab. */
static bool is_field_text(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
            return false;
    return validate_utf8(s, len);
}

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    struct framing *f = cls;
    f->fields++;
    if (!is_token(key, key_size))
        f->bad_name = true;
    else if (strcasecmp(key, "Host") == 0)
        f->hosts++;
    else if (strcasecmp(key, "Content-Length") == 0)
        f->lengths++;
    else if (strcasecmp(key, "Transfer-Encoding") == 0) {
        f->transfer_encodings++;
        f->transfer_encoding = value;
    }
    if (!f->bad_value && value && !is_field_text(value, value_size))
        f->bad_value = key;
    return MHD_YES;
}

/* The last coding of a Transfer-Encoding value is chunked. */
static bool ends_chunked(const char *te)
{
    const char *last = strrchr(te, ',');
    last = last ? last + 1 : te;
    last += strspn(last, " \t");
    size_t n = strcspn(last, " \t;");
    return n == 7 && strncasecmp(last, "chunked", 7) == 0 &&
           last[n + strspn(last + n, " \t")] == '\0';
}

/* The header fields' bytes: libmicrohttpd counts the request line with them. */
static size_t header_bytes(struct request *req)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    size_t all = info ? info->header_size : 0;
    return all > req->target_bytes ? all - req->target_bytes : 0;
}

/* Refuses a request whose end is not certain (RFC 9112 §6.1, §6.3, §3.2), and one with more
 * header fields than werklabd reads, answering it with the connection closed: its remaining
 * bytes are not another request. True when it answered. */
static bool refuse_framing(struct request *req, const char *version)
{
    struct framing f = {0};
    MHD_get_connection_values_n(req->conn, MHD_HEADER_KIND, scan_header, &f);
    bool http11 = strcmp(version, MHD_HTTP_VERSION_1_1) == 0;
    if (f.bad_name)
        http_problem(req, 400,
                     "A header name is not a token (RFC 9110): nothing may stand "
                     "between the name and its colon.");
    else if (f.transfer_encodings && f.lengths)
        http_problem(req, 400, "Content-Length and Transfer-Encoding exclude each other.");
    else if (f.transfer_encodings && !ends_chunked(f.transfer_encoding))
        http_problem(req, 400, "Transfer-Encoding must end with chunked.");
    else if (f.transfer_encodings)
        http_problem(req, 411,
                     "Send the body with Content-Length; Transfer-Encoding is not "
                     "accepted.");
    else if (f.lengths > 1)
        http_problem(req, 400, "Content-Length is given more than once.");
    else if (f.hosts > 1 || (http11 && f.hosts == 0))
        http_problem(req, 400, "An HTTP/1.1 request needs exactly one Host header.");
    else if (f.fields > HTTP_MAX_HEADER_FIELDS)
        http_problem(req, 431, "The request has more than %d header fields.",
                     HTTP_MAX_HEADER_FIELDS);
    else if (header_bytes(req) > HTTP_MAX_HEADER_BYTES)
        http_problem(req, 431, "The request headers are longer than %d bytes.",
                     HTTP_MAX_HEADER_BYTES);
    else {
        if (f.bad_value)
            snprintf(req->bad_header, sizeof req->bad_header, "%s", f.bad_value);
        return false;
    }
    http_set_header(req, "Connection", "close");
    return true;
}

static void request_free(struct request *req)
{
    if (req->stream_free)
        req->stream_free(req->stream_ctx);
    http_clear_headers(req);
    if (req->json)
        json_decref(req->json);
    free(req->query_text);
    if (req->then || req->audit_waiting)
        atomic_fetch_sub(&suspended, 1); /* ended while waiting: at shutdown */
    db_clear(&req->deferred);
    buf_free(&req->body);
    buf_free(&req->out);
    free(req->path);
    free(req);
    atomic_fetch_sub(&in_flight, 1);
}

/* A request libmicrohttpd let go of without reporting it complete (conns.h says when). */
static void request_abandoned(void *request)
{
    request_free(request);
}

static enum MHD_Result answer(struct request *req);
static enum MHD_Result answer_audited(struct request *req);

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    struct request *req = *con_cls;
    if (!req) { /* not seen by on_request_line: cannot happen with libmicrohttpd 0.9.75 */
        req = request_new(conn);
        *con_cls = req;
    }
    if (!req->begun) {
        /* First call: headers only. Answering now costs the connection its keep-alive
         * (libmicrohttpd 0.9.75), so only what must close it anyway is answered here: a
         * request whose framing is in doubt, and a body far over the limit. */
        request_begin(req, url, method);
        if (refuse_framing(req, version))
            return send_response(req);
        const char *length = http_header(req, "Content-Length");
        unsigned long long declared = length ? strtoull(length, NULL, 10) : 0;
        if (declared > cfg->body_limit) {
            req->too_large = true;
            const char *expect = http_header(req, "Expect");
            if (declared > (unsigned long long)cfg->body_limit * DISCARD_FACTOR ||
                (expect && strcasecmp(expect, "100-continue") == 0)) {
                http_problem(req, 413, "The request body is larger than %u bytes.",
                             cfg->body_limit);
                return send_response(req);
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (req->queued)
            return MHD_YES;
        if (req->too_large || req->body.len + n > cfg->body_limit) {
            /* Read and drop the rest, so the client gets its 413 rather than a reset, up to a
             * point: a body that never ends is cut off. */
            req->too_large = true;
            buf_free(&req->body);
            req->discarded += n;
            return req->discarded > (size_t)cfg->body_limit * DISCARD_FACTOR ? MHD_NO : MHD_YES;
        }
        if (takes_body(req->method))
            buf_append(&req->body, upload_data, n);
        return MHD_YES;
    }
    if (req->queued)
        return MHD_YES;
    if (req->then) {
        if (!atomic_load_explicit(&req->deferred_ready, memory_order_acquire))
            return MHD_YES; /* not resumed by the pipeline: nothing to do yet */
        answer_deferred(req);
        return answer(req);
    }
    if (req->audit_waiting)
        return answer_audited(req);
    dispatch(req);
    return req->then ? MHD_YES : answer(req);
}

/* The id a request acted on: the last UUID in its path, or the one its 201 created. */
static void acted_on(const struct request *req, char *id)
{
    id[0] = '\0';
    for (int i = 0; i < req->params.count; i++)
        if (router_is_uuid(req->params.values[i], strlen(req->params.values[i])))
            memcpy(id, req->params.values[i], 37); /* 36 characters and the NUL */
    for (int i = 0; req->status == 201 && i < req->n_headers; i++) {
        const char *slash = strrchr(req->header_values[i], '/');
        if (strcasecmp(req->header_names[i], "Location") == 0 && slash &&
            router_is_uuid(slash + 1, strlen(slash + 1)))
            snprintf(id, 37, "%s", slash + 1);
    }
}

/* Every write, and every read that showed personal data, goes to the audit log. */
/* Fills e for req answered with status; false when the audit log does not record it. */
static bool audit_entry_of(const struct request *req, int status, struct audit_entry *e)
{
    static const struct {
        enum http_method method;
        const char *action;
    } actions[] = {{HTTP_POST, "create"},
                   {HTTP_PUT, "replace"},
                   {HTTP_PATCH, "update"},
                   {HTTP_DELETE, "delete"},
                   {HTTP_GET, "read"}};
    if (!req->route || (req->method == HTTP_GET && !req->personal_shown))
        return false;
    const char *action = NULL;
    for (size_t i = 0; i < sizeof actions / sizeof *actions; i++)
        if (actions[i].method == req->method)
            action = actions[i].action;
    if (req->audit_action)
        action = req->audit_action;
    if (!action)
        return false;
    *e = (struct audit_entry){.status = status};
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    size_t len = strftime(e->at, sizeof e->at, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(e->at + len, sizeof e->at - len, ".%06ldZ", now.tv_nsec / 1000);
    snprintf(e->key_id, sizeof e->key_id, "%s", req->who.key_id);
    snprintf(e->action, sizeof e->action, "%s", action);
    snprintf(e->resource, sizeof e->resource, "%s", req->route->pattern);
    acted_on(req, e->resource_id);
    /* Only ids that cannot be personal data are kept: a client chooses its X-Request-Id. */
    size_t n = strlen(req->request_id);
    if (n <= 64 && strspn(req->request_id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                           "0123456789-_.:") == n)
        memcpy(e->request_id, req->request_id, n + 1);
    return true;
}

bool http_audit_now(struct request *req, int status, const char *id)
{
    struct audit_entry e;
    if (!audit_entry_of(req, status, &e))
        return true;
    if (id)
        snprintf(e.resource_id, sizeof e.resource_id, "%s", id);
    return audit_write(&e) == DB_OK;
}

bool http_commit_audited(struct request *req, int status, const char *id)
{
    if (!http_audit_now(req, status, id)) {
        http_problem_unavailable(req);
        return false;
    }
    enum db_status committed = db_commit();
    if (committed == DB_RETRY) {
        http_problem(req, 409, "The change collided with another one; try again.");
        return false;
    }
    if (committed != DB_OK) {
        http_problem_unavailable(req);
        return false;
    }
    req->audited = true;
    return true;
}

/* What no handler recorded in its transaction is queued now, with the status sent. */
static void audit_request(struct request *req, int status)
{
    struct audit_entry e;
    if (!req->audited && audit_entry_of(req, status, &e))
        audit_add(&e);
}

enum { AUDIT_PENDING, AUDIT_COMMITTED, AUDIT_FAILED };

/* On the audit writer's thread: let libmicrohttpd take the connection up again, which calls
 * on_request() once more. req is not touched after the resume. */
static void on_audit_committed(void *ctx, bool committed)
{
    struct request *req = ctx;
    atomic_store_explicit(&req->audit_outcome, committed ? AUDIT_COMMITTED : AUDIT_FAILED,
                          memory_order_release);
    MHD_resume_connection(req->conn);
}

/* Sends the answer once its entry is committed, or, when it could not be, a 503 instead:
 * nothing the log does not hold is shown. */
static enum MHD_Result answer_recorded(struct request *req, bool committed)
{
    if (committed) {
        req->audited = true;
        return send_response(req);
    }
    if (req->stream_free)
        req->stream_free(req->stream_ctx);
    req->stream_read = NULL;
    req->stream_free = NULL;
    http_clear_headers(req);
    req->personal_shown = false; /* shown to nobody after all */
    http_problem_unavailable(req);
    return send_response(req);
}

/* Sends the answer — unless it is a success the audit log records and no transaction has
 * recorded yet (a read that showed personal data, an idempotent replay): then it leaves only
 * once its entry is committed, and meanwhile the connection waits suspended, holding no
 * thread. Refused requests are recorded after they are answered (audit_request). */
static enum MHD_Result answer(struct request *req)
{
    struct audit_entry e;
    if (req->audited || req->status < 200 || req->status > 299 ||
        !audit_entry_of(req, req->status, &e))
        return send_response(req);
    if (!may_suspend()) /* stopping: written here and now, holding the worker for it */
        return answer_recorded(req, audit_write(&e) == DB_OK);
    req->audit_waiting = true;
    atomic_store_explicit(&req->audit_outcome, AUDIT_PENDING, memory_order_relaxed);
    /* Suspended before the entry is queued, so the resume can never come first. */
    MHD_suspend_connection(req->conn);
    audit_submit(&e, on_audit_committed, req);
    return MHD_YES;
}

/* Resumed: the writer has reported. */
static enum MHD_Result answer_audited(struct request *req)
{
    int outcome = atomic_load_explicit(&req->audit_outcome, memory_order_acquire);
    if (outcome == AUDIT_PENDING)
        return MHD_YES; /* not resumed by the writer: nothing to do yet */
    req->audit_waiting = false;
    atomic_fetch_sub(&suspended, 1);
    return answer_recorded(req, outcome == AUDIT_COMMITTED);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    conns_request_done(conn);
    /* Waiting for the client to send again (or closing). */
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
                                  (unsigned)cfg->idle_timeout_s);
    struct request *req = *con_cls;
    if (!req)
        return;
    *con_cls = NULL;
    if (!req->begun) { /* libmicrohttpd refused its headers, or the client left before them */
        request_free(req);
        return;
    }
    double seconds = now_s() - req->started;
    int status = req->queued ? req->status : 499; /* the client left before an answer */
    if (!req->queued)
        metrics_request(req->route ? req->route->index : -1, status, seconds);
    audit_request(req, status);
    log_request(&(struct log_request){
        .request_id = req->request_id,
        .method = req->method_name,
        .route = req->route ? req->route->pattern : NULL,
        .status = status,
        .duration_ms = seconds * 1000,
        .key_id = req->who.key_id[0] ? req->who.key_id : NULL,
    });
    request_free(req);
}

static void on_mhd_error(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char text[512];
    vsnprintf(text, sizeof text, fmt, ap);
    size_t n = strlen(text);
    while (n > 0 && text[n - 1] == '\n')
        text[--n] = '\0';
    log_event("warning", "http: %s", text);
}

int http_start(const struct config *config)
{
    cfg = config;
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)cfg->listen_port)};
    struct sockaddr_in6 addr6 = {.sin6_family = AF_INET6,
                                 .sin6_port = htons((uint16_t)cfg->listen_port)};
    const char *host = cfg->listen_host;
    struct sockaddr *sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    char bare[64];
    snprintf(bare, sizeof bare, "%s", host);
    if (bare[0] == '[' && bare[strlen(bare) - 1] == ']') {
        memmove(bare, bare + 1, strlen(bare));
        bare[strlen(bare) - 1] = '\0';
    }
    if (inet_pton(AF_INET, bare, &addr.sin_addr) == 1) {
        sa = (struct sockaddr *)&addr;
    } else if (inet_pton(AF_INET6, bare, &addr6.sin6_addr) == 1) {
        sa = (struct sockaddr *)&addr6;
        flags |= MHD_USE_IPv6;
    } else {
        log_event("error", "listen: '%s' is not an IPv4 or IPv6 address", host);
        return -1;
    }
    if (dbpipe_start(cfg->db_pipelines) < 0)
        return -1;
    if (audit_start() < 0) {
        dbpipe_stop();
        return -1;
    }
    conns_init(cfg->connection_limit, cfg->per_ip_connection_limit, request_abandoned);
    daemon_handle = MHD_start_daemon(
        flags, (uint16_t)cfg->listen_port, NULL, NULL, on_request, NULL,
        /* First: the options before it would report through the default logger. */
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, NULL, MHD_OPTION_SOCK_ADDR, sa,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads,
        /* How long a connection waits for its client to send; send_response gives the
         * client connection_timeout_s to read the answer. */
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->idle_timeout_s,
        /* Above conns' limits, which make room by closing waiting connections; no
         * per-address limit here: libmicrohttpd's would refuse the new connection. */
        MHD_OPTION_CONNECTION_LIMIT, conns_daemon_limit(cfg->threads), MHD_OPTION_NOTIFY_CONNECTION,
        conns_notify, NULL, MHD_OPTION_URI_LOG_CALLBACK, on_request_line, NULL,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->connection_memory_limit,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!daemon_handle) {
        log_event("error", "cannot listen on %s", cfg->listen);
        dbpipe_stop();
        audit_stop();
        return -1;
    }
    return 0;
}

void http_stop(unsigned grace_ms)
{
    if (!daemon_handle)
        return;
    MHD_quiesce_daemon(daemon_handle);
    for (unsigned waited = 0; atomic_load(&in_flight) > 0 && waited < grace_ms; waited += 10)
        usleep(10000);
    /* libmicrohttpd must not be stopped with connections suspended: the pipeline answers what
     * it still has (503), which resumes them; an answer that then waits for its audit entry is
     * resumed by the audit writer, which still runs, once the entry is committed or has failed
     * (within the statement timeout, at once when the database is down). From now on nothing
     * is suspended any more. */
    atomic_store(&stopping, true);
    dbpipe_stop();
    for (unsigned waited = 0; atomic_load(&suspended) > 0; waited += 10) {
        if (waited > 0 && waited % 5000 == 0)
            log_event("warning", "stopping: %d requests still wait for the database",
                      atomic_load(&suspended));
        usleep(10000);
    }
    MHD_stop_daemon(daemon_handle);
    daemon_handle = NULL;
    audit_stop(); /* the entries of the last refused requests are written */
}

unsigned http_port(void)
{
    const union MHD_DaemonInfo *info =
        daemon_handle ? MHD_get_daemon_info(daemon_handle, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    return info ? info->port : 0;
}

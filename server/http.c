/* http: the request's life and dispatch (http.h). One cohesive thing, longer than most files:
 * the request's life from its head to its end, as its connection drives it (connection.h: the
 * head, the body, going on, waiting and being woken, the end), and the response every answer
 * leaves as. What a request is checked for lives in framing.c and
 * negotiate.c, how errors read in problem.c, and what modules add in their phases. */
#include "http.h"

#include "audit.h" /* the writer's start and stop; the policy is a phase */
#include "connection.h"
#include "conns.h"
#include "crypto.h"
#include "dbpipe.h"
#include "framing.h"
#include "log.h"
#include "metrics.h"
#include "proxies.h"
#include "ratelimit.h"
#include "replicas.h"

#include <arpa/inet.h>
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

static bool serving;
static const struct config *cfg;
static atomic_int in_flight;
static atomic_int suspended; /* requests waiting for the pipeline or the audit log */
static atomic_bool stopping; /* no more suspending: the connections are about to close */

static const char expose_headers[] =
    "API-Version, ETag, Link, Location, Retry-After, X-Request-Id, RateLimit-Limit, "
    "RateLimit-Remaining, RateLimit-Reset, Idempotent-Replayed, Content-Disposition, "
    "WWW-Authenticate, Consistency-Token";
/* traceparent and tracestate (W3C Trace Context) are what browsers' tracing SDKs add. */
static const char allow_headers[] = "Authorization, Content-Type, If-Match, If-None-Match, "
                                    "Idempotency-Key, X-Request-Id, traceparent, tracestate, "
                                    "Consistency-Token";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- request headers, query, parameters ---- */

const char *http_header(struct request *req, const char *name)
{
    for (size_t i = 0; i < req->n_fields; i++)
        if (strcasecmp(req->fields[i].name, name) == 0)
            return req->fields[i].value;
    return NULL;
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
    struct http_field *f = pool_alloc(&req->pool, sizeof *f);
    f->name = pool_strdup(&req->pool, name);
    f->value = pool_strdup(&req->pool, value);
    if (!req->headers)
        req->headers_end = &req->headers;
    *req->headers_end = f;
    req->headers_end = &f->next;
}

const char *http_response_header(const struct request *req, const char *name)
{
    const char *value = NULL;
    for (const struct http_field *f = req->headers; f; f = f->next)
        if (strcasecmp(f->name, name) == 0)
            value = f->value;
    return value;
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
    req->headers = NULL; /* the pool keeps them until the request's end */
}

void http_discard_answer(struct request *req)
{
    if (req->stream_free)
        req->stream_free(req->stream_ctx);
    req->stream_read = NULL;
    req->stream_free = NULL;
    http_clear_headers(req);
    restart_body(req);
}

void http_reply_empty(struct request *req, int status)
{
    restart_body(req);
    req->status = status;
    req->content_type = NULL;
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

static void add(struct buf *fields, const char *name, const char *value)
{
    buf_puts(fields, name);
    buf_append(fields, ": ", 2);
    buf_puts(fields, value);
    buf_append(fields, "\r\n", 2);
}

static const char *caller_of(const struct request *req)
{
    return req->who.key_id[0] ? req->who.key_id : req->who.subject;
}

/* With read replicas: a successful write's answer gives the position after its commit (and this
 * instance remembers it for the caller), a read's the position its database had replayed. */
static void add_consistency_token(struct request *req, struct buf *r)
{
    uint64_t committed = db_take_commit_position(), position;
    if (req->method == HTTP_GET || req->method == HTTP_HEAD) {
        position = req->position;
        if (!position) { /* read on the primary, which has whatever a token asked for */
            position = replicas_primary_position();
            if (position < req->min_position)
                position = req->min_position;
        }
    } else if (req->method == HTTP_OPTIONS || req->status >= 300) {
        return;
    } else {
        position = req->position > committed ? req->position : committed;
        /* A write committed on its own (one statement outside a transaction, not on the
         * pipes): where the WAL stands now is past it. */
        if (!position)
            position = db_position_now();
        replicas_note_write(caller_of(req), position);
    }
    if (position) {
        char token[REPLICAS_TOKEN_LEN + 1];
        replicas_format_token(position, token);
        add(r, "Consistency-Token", token);
    }
}

static void send_response(struct request *req)
{
    if (req->status == 0)
        http_problem(req, 500, "The server could not answer this request.");
    struct buf *r = &req->fields_out;
    bool cache_set = false, close = false;
    for (const struct http_field *f = req->headers; f; f = f->next) {
        if (strcasecmp(f->name, "Connection") == 0) { /* the connection writes its own */
            close |= strcasecmp(f->value, "close") == 0;
            continue;
        }
        add(r, f->name, f->value);
        cache_set |= strcasecmp(f->name, "Cache-Control") == 0;
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
    if (replicas_count() > 0)
        add_consistency_token(req, r);
    if (req->public_cors) {
        add(r, "Access-Control-Allow-Origin", "*");
        add(r, "Access-Control-Expose-Headers", expose_headers);
    } else if (req->origin) {
        add(r, "Access-Control-Allow-Origin", req->origin);
        add(r, "Access-Control-Expose-Headers", expose_headers);
        add(r, "Vary", "Origin");
    }
    /* Counted before the client can see the answer: whoever reads /metrics after an answer
     * arrived finds it counted, whichever thread serves the read. */
    metrics_request(req->route ? req->route->index : -1, req->status, now_s() - req->started);
    req->queued = true;
    connection_answer(req->conn, &(struct connection_answer){
                                     .status = req->status,
                                     .reason = problem_title(req->status),
                                     .fields = r->data,
                                     .fields_len = r->len,
                                     .body = req->out.data,
                                     .body_len = req->out.len,
                                     .read = req->stream_read,
                                     .read_ctx = req->stream_ctx,
                                     .close = close,
                                 });
}

/* ---- the checks every request passes ---- */

static bool lower_hex(const char *s, size_t n, bool nonzero)
{
    bool zero = true;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
        zero &= s[i] == '0';
    }
    return !(nonzero && zero);
}

/* The trace id of a valid W3C Trace Context traceparent (version-traceid-parentid-flags), for the
 * log line; an invalid header is ignored, as the specification asks. A version after 00 may add
 * fields after a dash; ff is invalid. */
static void set_trace_id(struct request *req)
{
    const char *tp = http_header(req, "traceparent");
    size_t n = tp ? strlen(tp) : 0;
    if (n < 55 || !lower_hex(tp, 2, false) || strncmp(tp, "ff", 2) == 0 || tp[2] != '-' ||
        !lower_hex(tp + 3, 32, true) || tp[35] != '-' || !lower_hex(tp + 36, 16, true) ||
        tp[52] != '-' || !lower_hex(tp + 53, 2, false) ||
        (strncmp(tp, "00", 2) == 0 ? n != 55 : n > 55 && tp[55] != '-'))
        return;
    memcpy(req->trace_id, tp + 3, 32);
    req->trace_id[32] = '\0';
}

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

static bool takes_body(enum http_method m)
{
    return m == HTTP_POST || m == HTTP_PUT || m == HTTP_PATCH;
}

/* Every X-Forwarded-For line in the order sent, as one list (RFC 9110 §5.3); lines with nothing
 * in them add no empty entry. */
static void join_forwarded_for(const struct request *req, struct buf *list)
{
    for (size_t i = 0; i < req->n_fields; i++) {
        const char *value = req->fields[i].value;
        if (strcasecmp(req->fields[i].name, "X-Forwarded-For") == 0 &&
            value[strspn(value, " \t")]) {
            if (list->len)
                buf_putc(list, ',');
            buf_puts(list, value);
        }
    }
}

/* The peer, or behind a trusted proxy the client it names (proxies.h). */
void http_client_address(struct request *req, char *out, size_t len)
{
    const struct sockaddr *peer = connection_peer(req->conn);
    struct buf forwarded = {0};
    if (proxies_trusted(&cfg->proxies, peer))
        join_forwarded_for(req, &forwarded);
    proxies_client_address(&cfg->proxies, peer, forwarded.data, out, len);
    buf_free(&forwarded);
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

/* Requests per key or person per minute: the key's own limit, or the server's (a person signed
 * in with a token has the server's, counted by the token's sub, whatever token they use). */
static bool within_key_limit(struct request *req)
{
    bool person = !req->who.key_id[0];
    if (person && !req->who.subject[0])
        return true;
    unsigned limit =
        req->who.rate_limit >= 0 && !person ? (unsigned)req->who.rate_limit : cfg->key_rate_limit;
    if (limit == 0)
        return true;
    struct ratelimit_verdict v;
    if (person)
        ratelimit_take("person", req->who.subject, limit, 60, &v);
    else
        ratelimit_take("key", req->who.key_id, limit, 60, &v);
    return answer_limit(req, &v, person ? "this person" : "this API key");
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

/* The request's end owns transactions: what the handler (or its continuation) left open on its
 * connection is rolled back, so that the next request on this thread starts clean. Behind an
 * error answer that is how a handler gives up; behind an answer claiming success it is a bug,
 * and the answer is replaced, since the work it claims was never committed. */
static void end_transactions(struct request *req)
{
    if (db_transaction_depth() <= req->handler_depth)
        return;
    db_rollback_to(req->handler_depth);
    if (req->status >= 400)
        return;
    log_event("error", "%s %s returned with a transaction open: rolled back", req->method_name,
              req->route->pattern);
    if (!req->resume) {
        http_clear_headers(req);
        http_problem(req, 500, "The server failed to handle this request.");
    }
}

static void dispatch_as(struct request *req, enum auth_result result);

/* What a deferred statement is: a read on the primary, a read of a resource (which a replica may
 * serve, counted by where it ran) or a write. */
enum deferred_kind { DEFER_PRIMARY, DEFER_RESOURCE, DEFER_WRITE };

static void defer(struct request *req, enum deferred_kind kind, unsigned target, const char *sql,
                  int n, const char *const *values, http_then then, void *ctx);

/* Keys are looked up on the primary, which knows at once of a key made or revoked on any
 * instance; only while it is down does a replica answer, so that reads go on. */
static void dispatch_looked_up(struct request *req, struct db_result *r, void *ctx)
{
    struct auth_lookup *lookup = ctx;
    uint64_t unused;
    unsigned replica;
    if (r->status == DB_UNAVAILABLE && !req->looked_up_on_replica && replicas_count() > 0 &&
        (replica = replicas_choose(0, &unused)) != REPLICAS_PRIMARY) {
        req->looked_up_on_replica = true;
        defer(req, DEFER_RESOURCE, replica, lookup->sql_read_only, 1, lookup->params,
              dispatch_looked_up, lookup);
        return;
    }
    dispatch_as(req, auth_looked_up(lookup, r, &req->who, &req->pool, &req->auth_refusal));
}

static void dispatch(struct request *req)
{
    db_take_commit_position(); /* one left by a request before on this thread is not ours */
    if (req->target_refused == 414) {
        http_problem(req, 414, "The URL is longer than %d bytes.", HTTP_MAX_URL_BYTES);
        return;
    }
    if (req->target_refused == 400) {
        http_problem(req, 400, "The query string has more than %d parameters.", HTTP_MAX_QUERY);
        return;
    }
    if (req->bad_header) {
        http_invalid(req, req->bad_header, "format",
                     "is not UTF-8 text without control characters");
        http_problem_invalid(req);
        return;
    }
    const char *token = http_header(req, "Consistency-Token");
    if (token && !replicas_parse_token(token, &req->min_position)) {
        http_invalid(req, "Consistency-Token", "format",
                     "is not a Consistency-Token this API gave: 16 lower-case hexadecimal digits");
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

    if (!framing_take_query(req))
        return;

    /* A key not in the cache is looked up on the pipeline, the request suspended meanwhile. */
    struct auth_lookup *lookup = pool_alloc(&req->pool, sizeof *lookup);
    enum auth_result result = auth_begin(http_header(req, "Authorization"), &req->who, &req->pool,
                                         &req->auth_refusal, lookup);
    if (result == AUTH_LOOKUP)
        http_defer(req, lookup->sql, 1, lookup->params, dispatch_looked_up, lookup);
    else
        dispatch_as(req, result);
}

/* The rest of dispatch, once the caller is known. */
static void dispatch_as(struct request *req, enum auth_result result)
{
    switch (result) {
    case AUTH_LOOKUP: /* auth_begin() only */
    case AUTH_UNAVAILABLE: http_problem_unavailable(req); return;
    case AUTH_NO_KEYS:
        http_problem(req, 503,
                     "Access tokens cannot be verified yet: the identity provider's "
                     "keys have not been fetched. API keys work; try again shortly.");
        http_set_header(req, "Retry-After", "5");
        return;
    case AUTH_REFUSED:
        /* One answer whatever the reason (RFC 6750 §3.1): the reason is in the log only. */
        http_problem(req, 401,
                     "A valid API key or access token is required: send "
                     "Authorization: Bearer <key or token>.");
        http_set_header(req, "WWW-Authenticate",
                        "Bearer realm=\"werklabd\", error=\"invalid_token\"");
        return;
    case AUTH_FORBIDDEN:
        http_problem(req, 403,
                     "This access token gives no access here: it carries no role "
                     "mapped to one of werklabd's, or it is a trainer's and no "
                     "trainer record is linked to it.");
        return;
    case AUTH_NONE:
        if (!(req->route->roles & ROLE_PUBLIC)) {
            http_problem(req, 401,
                         "A valid API key or access token is required: send "
                         "Authorization: Bearer <key or token>.");
            http_set_header(req, "WWW-Authenticate", "Bearer realm=\"werklabd\"");
            return;
        }
        break;
    case AUTH_OK:
        if (!(req->route->roles & (req->who.role | ROLE_PUBLIC))) {
            http_problem(req, 403, "A%s %s %s may not %s %s.",
                         req->who.role == ROLE_ADMIN ? "n" : "", auth_role_name(req->who.role),
                         req->who.subject[0] ? "token" : "key", req->method_name,
                         req->route->pattern);
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

    if (!negotiate_response(req))
        return;
    if (req->too_large) {
        http_problem(req, 413, "The request body is larger than %u bytes.", cfg->body_limit);
        return;
    }
    if (!negotiate_body(req))
        return;
    if (!framing_check_query(req))
        return;
    if (takes_body(req->method) && !(req->route && req->route->no_body)) {
        json_error_t error;
        req->json = json_loadb(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &error);
        if (!req->json) {
            http_problem(req, 400, "The body is not valid JSON: %s (line %d, column %d).",
                         error.text, error.line, error.column);
            return;
        }
    }
    if (!phase_before(req)) {
        phase_after(req);
        return;
    }
    req->handler_depth = db_transaction_depth(); /* the phases', around the handler */
    req->route->handler(req);
    end_transactions(req);
    if (!req->resume)
        phase_after(req);
}

/* ---- suspension, and statements on the pipeline ---- */

/* Counts a request about to wait; false, counting nothing, when the server is stopping: the
 * connections must not be closed with a request waiting, which its waker would wake after, so
 * http_stop() waits for the count to reach 0, and this makes sure it stays there. */
static bool may_suspend(void)
{
    atomic_fetch_add(&suspended, 1);
    if (!atomic_load(&stopping))
        return true;
    atomic_fetch_sub(&suspended, 1);
    return false;
}

bool http_suspend(struct request *req, http_resume resume, void *ctx)
{
    if (!may_suspend())
        return false;
    req->resume = resume;
    req->resume_ctx = ctx;
    return true;
}

/* The connection's loop calls go_on() again; whatever the waker wrote before this call is
 * visible to it (the wake queue's lock orders them). */
void http_wake(struct request *req)
{
    connection_wake(req->conn);
}

/* A statement on the pipeline, and what answers with its result. */
struct deferred {
    struct request *req;
    http_then then;
    void *ctx;
    struct db_result result;
};

static void deferred_clear(void *ctx)
{
    db_clear(&((struct deferred *)ctx)->result);
}

/* On a pipeline thread: keep the result and wake the request. */
static void on_deferred_result(void *ctx, struct db_result *r)
{
    struct deferred *d = ctx;
    d->result = *r;
    if (r->position && r->status == DB_OK)
        d->req->position = r->position; /* a write's commit: visible once woken */
    http_wake(d->req);
}

/* On a worker, the result in: answer with it, and end the request as dispatch() does. */
static void answer_deferred(struct request *req, void *ctx)
{
    struct deferred *d = ctx;
    d->then(req, &d->result, d->ctx);
    end_transactions(req);
    db_clear(&d->result);
    if (!req->resume)
        phase_after(req);
}

static void defer(struct request *req, enum deferred_kind kind, unsigned target, const char *sql,
                  int n, const char *const *values, http_then then, void *ctx)
{
    bool write = kind == DEFER_WRITE;
    struct deferred *d = NULL;
    /* Inside a transaction the statement must see it, and the request must stay on this
     * thread, whose connection holds it. */
    if ((write ? dbpipe_writing() : dbpipe_running()) && db_transaction_depth() == 0) {
        d = pool_alloc(&req->pool, sizeof *d);
        *d = (struct deferred){.req = req, .then = then, .ctx = ctx};
        pool_on_free(&req->pool, deferred_clear, d); /* a result never answered */
    }
    if (!d || !http_suspend(req, answer_deferred, d)) {
        struct db_result r;
        req->position = 0; /* on the primary after all (a write's: asked below) */
        db_exec(sql, n, values, &r);
        if (kind == DEFER_RESOURCE && r.status == DB_OK)
            replicas_served(REPLICAS_PRIMARY);
        if (write && r.status == DB_OK && replicas_count() > 0 && db_transaction_depth() == 0)
            req->position = db_position_now(); /* committed: it was its own transaction */
        then(req, &r, ctx);
        db_clear(&r);
        return;
    }
    if (write)
        dbpipe_submit_write(sql, n, values, on_deferred_result, d);
    else if (kind == DEFER_RESOURCE)
        dbpipe_submit_to(target, sql, n, values, on_deferred_result, d);
    else
        dbpipe_submit(sql, n, values, on_deferred_result, d);
}

void http_defer(struct request *req, const char *sql, int n, const char *const *values,
                http_then then, void *ctx)
{
    defer(req, DEFER_PRIMARY, REPLICAS_PRIMARY, sql, n, values, then, ctx);
}

void http_defer_read(struct request *req, const char *sql, int n, const char *const *values,
                     http_then then, void *ctx)
{
    unsigned target = REPLICAS_PRIMARY;
    if (replicas_count() > 0) {
        uint64_t min = req->min_position, recent = replicas_recent_write(caller_of(req));
        target = replicas_choose(recent > min ? recent : min, &req->position);
    }
    defer(req, DEFER_RESOURCE, target, sql, n, values, then, ctx);
}

void http_defer_write(struct request *req, const char *sql, int n, const char *const *values,
                      http_then then, void *ctx)
{
    defer(req, DEFER_WRITE, REPLICAS_PRIMARY, sql, n, values, then, ctx);
}

/* ---- the request's life, as its connection drives it (connection.h) ---- */

static struct request *request_new(struct connection *conn, char *head_buf)
{
    struct request *req = xcalloc(1, sizeof *req);
    req->conn = conn;
    req->head_buf = head_buf;
    req->started = now_s();
    jsonw_init(&req->w, &req->out);
    atomic_fetch_add(&in_flight, 1);
    return req;
}

static void request_free(struct request *req)
{
    if (req->stream_free)
        req->stream_free(req->stream_ctx);
    if (req->json)
        json_decref(req->json);
    if (req->resume)
        atomic_fetch_sub(&suspended, 1); /* ended while waiting: at shutdown */
    buf_free(&req->body);
    buf_free(&req->out);
    buf_free(&req->fields_out);
    pool_free(&req->pool);
    free(req->head_buf);
    free(req);
    atomic_fetch_sub(&in_flight, 1);
}

/* Sends the answer once the phases let it go (phase.h); a phase may hold it, waiting. */
static void answer(struct request *req)
{
    if (phase_send(req))
        send_response(req);
}

/* The request target: the path, and the query kept for framing_take_query(), unless the target
 * is refused anyway (too long, or too many query parameters to be worth splitting). */
static void take_target(struct request *req, const char *target, size_t len)
{
    req->target_bytes = len;
    const char *query = strchr(target, '?');
    if (query && framing_query_count(query + 1) > HTTP_MAX_QUERY)
        req->target_refused = 400;
    else if (len > HTTP_MAX_URL_BYTES)
        req->target_refused = 414;
    if (query && !req->target_refused)
        req->query_text = pool_strdup(&req->pool, query + 1);
    req->path = query ? pool_strndup(&req->pool, target, (size_t)(query - target))
                      : pool_strdup(&req->pool, target);
    framing_normalize_path(req->path);
}

/* A head is in: what the request is, and whether its body is to be read. Answering now costs
 * the connection (connection.h), so only what must close it anyway is answered here: a request
 * whose framing is in doubt, and a body far over the limit. */
static void *on_begin(struct connection *conn, char *head_buf, const struct http1_head *head)
{
    struct request *req = request_new(conn, head_buf);
    req->begun = true;
    req->fields = pool_alloc(&req->pool, head->n_fields * sizeof *req->fields + 1);
    memcpy(req->fields, head->fields, head->n_fields * sizeof *req->fields);
    req->n_fields = head->n_fields;
    req->method_name = head->method;
    req->method = router_method(head->method);
    take_target(req, head->target, head->target_len);
    const char *origin = http_header(req, "Origin");
    if (origin && config_cors_allowed(cfg, origin))
        req->origin = origin;
    set_request_id(req);
    set_trace_id(req);
    const char *length = http_header(req, "Content-Length");
    unsigned long long declared = 0;
    bool length_valid = framing_content_length(length, &declared);
    connection_expect_body(conn, declared);
    if (framing_refuse(req, head, length_valid)) {
        send_response(req);
        return req;
    }
    const char *expect = http_header(req, "Expect");
    bool continue_asked = expect && strcasecmp(expect, "100-continue") == 0 &&
                          head->minor_version >= 1 && declared > 0;
    if (declared > cfg->body_limit) {
        req->too_large = true;
        if (declared > (unsigned long long)cfg->body_limit * DISCARD_FACTOR || continue_asked) {
            http_problem(req, 413, "The request body is larger than %u bytes.", cfg->body_limit);
            http_set_header(req, "Connection", "close");
            send_response(req);
            return req;
        }
    } else if (continue_asked) {
        connection_continue(conn);
    }
    return req;
}

/* What arrived that cannot be a request (connection.h): answered, and the connection closed. */
static void *on_refuse(struct connection *conn, int status, const char *why)
{
    struct request *req = request_new(conn, NULL);
    req->begun = true;
    req->method_name = "";
    req->path = "";
    set_request_id(req);
    http_problem(req, status, "%s", why);
    http_set_header(req, "Connection", "close");
    send_response(req);
    return req;
}

static bool on_body(void *request, const char *data, size_t n)
{
    struct request *req = request;
    if (req->too_large || req->body.len + n > cfg->body_limit) {
        /* Read and drop the rest, so the client gets its 413 rather than a reset, up to a
         * point: a body that never ends is cut off. */
        req->too_large = true;
        buf_free(&req->body);
        req->discarded += n;
        return req->discarded <= (size_t)cfg->body_limit * DISCARD_FACTOR;
    }
    if (takes_body(req->method))
        buf_append(&req->body, data, n);
    return true;
}

/* The request is in, or it was woken: dispatch it, or go on where it stopped. */
static void on_go(void *request)
{
    struct request *req = request;
    if (req->resume) {
        http_resume resume = req->resume;
        req->resume = NULL;
        atomic_fetch_sub(&suspended, 1);
        resume(req, req->resume_ctx);
    } else {
        dispatch(req);
    }
    if (!req->resume)
        answer(req);
}

static void on_end(void *request, bool sent)
{
    struct request *req = request;
    double seconds = now_s() - req->started;
    (void)sent; /* an answer given is what the request ended with, delivered or not */
    int status = req->queued ? req->status : 499; /* the client left before the answer */
    if (!req->queued)
        metrics_request(req->route ? req->route->index : -1, status, seconds);
    phase_complete(req, status);
    log_request(&(struct log_request){
        .request_id = req->request_id,
        .method = req->method_name,
        .route = req->route ? req->route->pattern : NULL,
        .status = status,
        .duration_ms = seconds * 1000,
        .key_id = req->who.key_id[0] ? req->who.key_id : NULL,
        .subject = req->who.subject[0] ? req->who.subject : NULL,
        .client = req->who.client[0] ? req->who.client : NULL,
        .trace_id = req->trace_id[0] ? req->trace_id : NULL,
        .refusal = req->auth_refusal,
    });
    request_free(req);
}

static const struct connection_handler handler = {
    .begin = on_begin,
    .refuse = on_refuse,
    .body = on_body,
    .go = on_go,
    .end = on_end,
};

/* Each loop hosts a pipe for reads from the primary, while there are enough of them. */
static void *host_pipe(unsigned i, int epoll_fd, void *tag)
{
    return dbpipe_host(i, epoll_fd, tag);
}

static void on_pipe_event(void *pipe)
{
    dbpipe_hosted_event(pipe);
}

static int flush_pipe(void *pipe)
{
    return dbpipe_hosted_flush(pipe);
}

static void unhost_pipe(void *pipe)
{
    dbpipe_unhost(pipe);
}

static const struct connection_guest pipe_guest = {
    .attach = host_pipe,
    .event = on_pipe_event,
    .before_wait = flush_pipe,
    .detach = unhost_pipe,
};

int http_start(const struct config *config)
{
    cfg = config;
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)cfg->listen_port)};
    struct sockaddr_in6 addr6 = {.sin6_family = AF_INET6,
                                 .sin6_port = htons((uint16_t)cfg->listen_port)};
    const char *host = cfg->listen_host;
    struct sockaddr *sa;
    socklen_t sa_len;
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
        sa_len = sizeof addr;
    } else if (inet_pton(AF_INET6, bare, &addr6.sin6_addr) == 1) {
        sa = (struct sockaddr *)&addr6;
        sa_len = sizeof addr6;
    } else {
        log_event("error", "listen: '%s' is not an IPv4 or IPv6 address", host);
        return -1;
    }
    if (dbpipe_start(cfg->db_pipelines, cfg->threads, cfg->db_write_pipelines) < 0)
        return -1;
    if (audit_start(cfg->audit_writers) < 0) {
        dbpipe_stop();
        return -1;
    }
    conns_init(cfg->connection_limit, cfg->per_ip_connection_limit);
    atomic_store(&stopping, false);
    if (connection_start(&(struct connection_config){
            .address = sa,
            .address_len = sa_len,
            .threads = cfg->threads,
            .idle_timeout_s = cfg->idle_timeout_s,
            .connection_timeout_s = cfg->connection_timeout_s,
            .max_head = cfg->connection_memory_limit,
            .handler = &handler,
            .guest = &pipe_guest,
        }) < 0) {
        log_event("error", "cannot listen on %s", cfg->listen);
        dbpipe_stop();
        audit_stop();
        return -1;
    }
    serving = true;
    return 0;
}

void http_stop(unsigned grace_ms)
{
    if (!serving)
        return;
    /* A new connection is closed at once, which also tells a proxy in front to try another
     * instance, where one left in the listen backlog would wait until the daemon stops. */
    connection_refuse_new();
    for (unsigned waited = 0; atomic_load(&in_flight) > 0 && waited < grace_ms; waited += 10)
        usleep(10000);
    /* The connections must not be closed with a request waiting: the pipeline answers what
     * it still has (503), which wakes them; an answer that then waits for its audit entry is
     * woken by the audit writer, which still runs, once the entry is committed or has failed
     * (within the statement timeout, at once when the database is down). From now on nothing
     * waits any more. */
    atomic_store(&stopping, true);
    dbpipe_stop();
    for (unsigned waited = 0; atomic_load(&suspended) > 0; waited += 10) {
        if (waited > 0 && waited % 5000 == 0)
            log_event("warning", "stopping: %d requests still wait for the database",
                      atomic_load(&suspended));
        usleep(10000);
    }
    connection_stop();
    serving = false;
    audit_stop(); /* the entries of the last refused requests are written */
}

unsigned http_port(void)
{
    return serving ? connection_port() : 0;
}

/* http: the HTTP server, and everything every response has in common.
 *
 * http owns the request's life, and dispatches; its connection (connection.h) reads it and
 * writes its answer. A request travels:
 *
 *   head in        the target's length and its number of query parameters (414, 400), the
 *                  framing (400, 411, 431, closing the connection: framing.h), a body far over
 *                  the limit (413);
 *   body in        read into a bounded buffer;
 *   dispatch       the route (404, 405, OPTIONS), the query split (framing.h), the key and the
 *                  role (auth.h: 401, 403), the rate limits (429), If-Match required (428), the
 *                  media types (406, 413, 415: negotiate.h), the query keys, the JSON body;
 *   phases         the before steps of the modules registered (phase.h), the handler, the
 *                  transactions left open rolled back, the after steps;
 *   answer         the send steps (which may hold the answer, the request waiting), then
 *                  one function that adds API-Version, the security headers, X-Request-Id and
 *                  CORS to every response, whoever wrote it;
 *   complete       the complete steps, the log line, the pool freed.
 *
 * What is not HTTP itself is done by modules: problem details (problem.h), media types and
 * conditional requests (negotiate.h), and, as phases registered at start, idempotency
 * (idempotency.h) and the audit policy (audit_policy.h), which http.c does not know by name.
 *
 * Connection time: a connection may wait idle_timeout_s for the client to send (before, between
 * and within requests), and connection_timeout_s for the client to read an answer
 * (connection.h). conns closes waiting connections to make room when the limits are reached.
 *
 * Unknown query keys are recorded in req->invalid (problem.h); a route that declares query keys
 * gets called anyway, so that it can report them together with its own findings, and must answer
 * http_problem_invalid() when req->n_invalid is not 0 after its checks.
 *
 * Handlers write their body with req->w (a jsonw into req->out) and end with http_reply(), or
 * answer with one of the http_problem*() functions, or hand one reading statement to
 * http_defer() and answer in its continuation. A handler that does none of these answers 500.
 *
 * The request's end owns transactions: what the handler (or a deferred continuation) left open
 * is rolled back when it returns. Behind an error answer (>= 400) that is the normal way to
 * give up, quietly; behind an answer that claims success it is a bug: logged, and answered 500.
 *
 * Request-scoped memory comes from req->pool and is freed in one place, when the connection
 * reports the request's end. */
#ifndef WERKLAB_HTTP_H
#define WERKLAB_HTTP_H

#include "auth.h"
#include "buf.h"
#include "config.h"
#include "db.h"
#include "http1.h"
#include "jsonw.h"
#include "negotiate.h"
#include "phase.h"
#include "pool.h"
#include "problem.h"
#include "router.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>

#define HTTP_API_VERSION "1.0.0"
#define HTTP_MAX_QUERY   32

/* A longer request target is 414; more request header fields, or more bytes of them, 431. */
#define HTTP_MAX_URL_BYTES     8192
#define HTTP_MAX_HEADER_FIELDS 100
#define HTTP_MAX_HEADER_BYTES  16384

struct request;
/* What a handler does with the result of a statement it deferred (http_defer), with the ctx it
 * gave. */
typedef void (*http_then)(struct request *req, struct db_result *r, void *ctx);
/* What runs, on the connection's thread, when a waiting request is woken (http_suspend). */
typedef void (*http_resume)(struct request *req, void *ctx);

struct http_query_arg {
    const char *key;
    const char *value; /* "" for a key without a value */
};

/* A response header; the list lives in req->pool. */
struct http_field {
    struct http_field *next;
    const char *name;
    const char *value;
};

struct connection;

struct request {
    struct connection *conn;
    struct pool pool; /* everything below that points to memory of its own points here */
    char *head_buf;   /* the head as it came, parsed in place: fields and method point here */
    struct http1_field *fields;
    size_t n_fields;
    enum http_method method;
    const char *method_name;
    char *path;
    const struct route *route;
    struct route_params params;
    struct http_query_arg query[HTTP_MAX_QUERY];
    int n_query;
    char *query_text; /* the query string as sent, split and decoded in place into query */
    struct buf body;
    json_t *json; /* the parsed body, for POST, PUT and PATCH */
    struct auth_identity who;
    char request_id[129];
    char trace_id[33];        /* of a valid W3C traceparent; "" without one */
    const char *auth_refusal; /* why a key or token was refused, for the log; NULL */
    const char *origin;       /* Origin header, when on the allow-list */

    /* The response being built. */
    int status;
    const char *content_type;
    struct buf out;
    struct jsonw w;
    struct http_field *headers; /* in the order set */
    struct http_field **headers_end;
    bool public_cors; /* Access-Control-Allow-Origin: * */
    int n_invalid;
    struct http_invalid_param *invalid; /* n_invalid of them (problem.h) */
    int n_conflicts;
    struct http_conflict *conflicts; /* n_conflicts of them (problem.h) */

    /* Bookkeeping. */
    bool begun;             /* the headers are in and the fields above are set */
    int target_refused;     /* 400 (too many query parameters) or 414, from the request target */
    size_t target_bytes;    /* of the request target, as sent */
    const char *bad_header; /* a header whose value is not UTF-8 text */
    bool too_large;
    bool query_malformed;     /* a query key or value is not UTF-8 text, or holds a NUL */
    bool wants_csv;           /* a list asked for as text/csv */
    bool personal_shown;      /* the answer showed personal data: the read is audited */
    const char *audit_action; /* what the audit log calls this request, when not its method */
    bool audited;             /* recorded in the transaction of its effect already */
    int handler_depth;        /* transactions the phases held open around the handler */
    /* Read replicas (replicas.h): the position the client's Consistency-Token asks for, and the
     * one this answer's token gives: where a read's database stood, or a write's commit. */
    uint64_t min_position, position;
    bool looked_up_on_replica; /* the key's lookup went to a replica: the primary was down */

    /* Phases (phase.h): how far the request went through them, and their state. */
    int phases_entered;
    int phases_sent;
    void *phase_ctx[HTTP_MAX_PHASES];

    /* Waiting (http_suspend): resume(req, resume_ctx) runs once woken. */
    http_resume resume;
    void *resume_ctx;

    /* A streamed body (CSV): the connection pulls it through stream_read. */
    long (*stream_read)(void *ctx, char *out, size_t max); /* bytes, 0 at the end, -1 error */
    void (*stream_free)(void *ctx);
    void *stream_ctx;
    bool queued;
    struct buf fields_out; /* the answer's header fields, as they go on the wire */
    size_t discarded;
    double started;
};

/* Starts serving (and the database pipeline, dbpipe); returns 0, or -1 with a message logged. */
int http_start(const struct config *cfg);
/* Stops accepting, lets in-flight requests finish (up to grace_ms), then stops. */
void http_stop(unsigned grace_ms);
/* The port being served on: the one the system chose when cfg->listen asked for port 0, as
 * the HTTP fuzzer (tests/fuzz/fuzz_http.c) does to run the daemon in its own process. 0 when not
 * serving. */
unsigned http_port(void);

/* Runs one short statement that reads, outside any transaction, on the database pipeline
 * (dbpipe) and answers with then(req, r, ctx) once its result is in, on the connection's thread;
 * r is cleared after. Meanwhile the request waits and the thread serves others. The handler
 * returns right after this call, without answering; then may defer again. sql must live until
 * then has run (the program's SQL, or text in req->pool); values are copied. Without a pipeline,
 * or inside a transaction (a phase's, such as idempotency's, whose answer is stored when the
 * handler returns), the statement runs here and then is called at once. */
void http_defer(struct request *req, const char *sql, int n, const char *const *values,
                http_then then, void *ctx);
/* The same for a read of a resource or a list page, which a read replica may serve (replicas.h):
 * one that has replayed what the request's Consistency-Token, or the caller's own recent write
 * here, asks for; else the primary. Sets the position the answer's token gives. */
void http_defer_read(struct request *req, const char *sql, int n, const char *const *values,
                     http_then then, void *ctx);
/* The same for a write that is one statement and its own transaction (its audit entry made in
 * the statement: audit_sql_around()): on the pipes for writes (dbpipe_submit_write()), then once
 * it is committed. Without them, or inside a transaction, it runs here (committed at once
 * outside a transaction, as any statement). */
void http_defer_write(struct request *req, const char *sql, int n, const char *const *values,
                      http_then then, void *ctx);

/* Lets the request wait, holding no thread, until http_wake(req); then resume(req, ctx) runs on
 * the connection's thread and the request goes on where it stopped. Call it before handing
 * the request to whoever will wake it, so that the wake never comes first. False, with nothing
 * waiting, when the server is stopping: the caller then does its work here and now. */
bool http_suspend(struct request *req, http_resume resume, void *ctx);
/* From any thread, once per http_suspend(): lets the request go on. req is not to be touched
 * after this call by the caller. */
void http_wake(struct request *req);

/* A request header, or NULL. */
const char *http_header(struct request *req, const char *name);
/* A query value, or NULL when the key is absent. */
const char *http_query(const struct request *req, const char *key);
/* A path parameter: "{id}" → http_param(req, "id"). */
const char *http_param(const struct request *req, const char *name);

/* Adds a response header (copied into req->pool). */
void http_set_header(struct request *req, const char *name, const char *value);
/* A response header set so far (the last one of that name), or NULL. */
const char *http_response_header(const struct request *req, const char *name);
/* Answers with what the handler wrote through req->w, as application/json. */
void http_reply(struct request *req, int status);
/* Answers with a body produced piece by piece (sent chunked): read fills out with up to max
 * bytes and returns how many, 0 at the end, -1 on an error (the connection is then closed).
 * free_ctx runs when the response is done. */
void http_reply_stream(struct request *req, int status, const char *content_type,
                       long (*read)(void *ctx, char *out, size_t max), void (*free_ctx)(void *ctx),
                       void *ctx);
/* Drops the response headers set so far (e.g. a Location that no longer holds). */
void http_clear_headers(struct request *req);
/* Drops the answer written so far: its body, a stream, its headers (to answer otherwise). */
void http_discard_answer(struct request *req);
/* Answers with a body that is not JSON. */
void http_reply_text(struct request *req, int status, const char *content_type, const char *body,
                     size_t len);
void http_reply_empty(struct request *req, int status);

/* The audit entry of this request answered with status, into e; false when the audit log does
 * not record it. For a write whose statement records its own entry (audit_sql_around()). */
struct audit_entry;
bool http_audit_entry(const struct request *req, int status, struct audit_entry *e);
/* Writes the audit entry of this request, answered with status, into the open transaction
 * (id: the row acted on, when the path does not name it). A write recorded this way is in the
 * audit log exactly when its effect is committed; once it is, the caller sets req->audited so
 * that it is not queued again. False when the database failed. (The audit policy,
 * audit_policy.c, implements it.) */
bool http_audit_now(struct request *req, int status, const char *id);
/* The end of a successful write: its audit entry into the open transaction and the commit, sent
 * together (audit_write_and_commit()), then req->audited. False, with 503 answered (409 when the
 * commit collided with another transaction), when either failed; the request's end then rolls back.
 */
bool http_commit_audited(struct request *req, int status, const char *id);
/* The client's IP address as text. */
void http_client_address(struct request *req, char *out, size_t len);
/* Percent-encodes s for a query string into b. */
void http_url_encode(struct buf *b, const char *s);

#endif

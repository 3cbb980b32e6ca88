/* http: the HTTP server, and everything every response has in common.
 *
 * http owns the libmicrohttpd daemon and the request's life. For each request it matches the
 * route, answers OPTIONS, 404, 405, 406, 413 and 415 itself, checks the key and the role, checks
 * the query keys against the route's list, parses a JSON body with jansson, and only then calls
 * the route's handler. Every response, whoever wrote it, leaves through one function that adds
 * API-Version, the security headers, X-Request-Id and CORS.
 *
 * Before any of that, and before libmicrohttpd stores the query, the request line is checked
 * (414, or 400 for too many query parameters), and when the headers are in, the framing: a
 * request that could be read in more than one way (RFC 9112 §6.1, §6.3: Content-Length with
 * Transfer-Encoding, two Content-Lengths, a header name that is not a token, HTTP/1.1 without
 * exactly one Host) is 400 and closes the connection, so that nothing after it is taken for
 * another request. A body sent with Transfer-Encoding is 411 (bodies are JSON of known length:
 * send Content-Length), which also spares werklabd libmicrohttpd's chunk parser and its limits.
 * More than HTTP_MAX_HEADER_FIELDS headers, or HTTP_MAX_HEADER_BYTES, is 431; a header or query
 * value that is not UTF-8 text is 400 before any handler runs.
 *
 * Connection time: a connection may wait idle_timeout_s for the client to send (before, between
 * and within requests), and connection_timeout_s for the client to read an answer. conns closes
 * waiting connections to make room when the limits are reached.
 *
 * Unknown query keys are recorded in req->invalid; a route that declares query keys gets called
 * anyway, so that it can report them together with its own findings, and must answer
 * http_problem_invalid() when req->n_invalid is not 0 after its checks.
 *
 * Handlers write their body with req->w (a jsonw into req->out) and end with http_reply(), or
 * answer with one of the http_problem*() functions, or hand one reading statement to
 * http_defer() and answer in its continuation. A handler that does none of these answers 500.
 * A successful answer the audit log records and no transaction recorded (a read that showed
 * personal data) leaves only once its entry is committed, the connection suspended meanwhile;
 * when the entry cannot be committed the client gets 503 instead (audit.h).
 * Request-scoped memory is freed in one place, when libmicrohttpd reports the request complete. */
#ifndef WERKLAB_HTTP_H
#define WERKLAB_HTTP_H

#include "auth.h"
#include "buf.h"
#include "config.h"
#include "db.h"
#include "jsonw.h"
#include "router.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>

#define HTTP_API_VERSION   "1.0.0"
#define HTTP_MAX_QUERY     32
#define HTTP_MAX_HEADERS   16
#define HTTP_MAX_INVALID   64
#define HTTP_MAX_CONFLICTS 16

/* A longer request target is 414; more request header fields, or more bytes of them, 431. */
#define HTTP_MAX_URL_BYTES     8192
#define HTTP_MAX_HEADER_FIELDS 100
#define HTTP_MAX_HEADER_BYTES  16384

struct request;
/* What a handler does with the result of a statement it deferred (http_defer). */
typedef void (*http_then)(struct request *req, struct db_result *r);

struct http_query_arg {
    const char *key;
    const char *value; /* "" for a key without a value */
};

struct http_invalid_param {
    char name[96];
    const char *code; /* required, type, format, enum, minimum, maximum, minLength, ... */
    char reason[192];
};

struct http_conflict {
    const char *code;
    char detail[256];
};

struct request {
    struct MHD_Connection *conn;
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
    const char *origin; /* Origin header, when on the allow-list */

    /* The response being built. */
    int status;
    const char *content_type;
    struct buf out;
    struct jsonw w;
    int n_headers;
    char *header_names[HTTP_MAX_HEADERS];
    char *header_values[HTTP_MAX_HEADERS];
    bool public_cors; /* Access-Control-Allow-Origin: * */
    int n_invalid;
    struct http_invalid_param invalid[HTTP_MAX_INVALID];
    int n_conflicts;
    struct http_conflict conflicts[HTTP_MAX_CONFLICTS];

    /* Bookkeeping. */
    bool begun;          /* the headers are in and the fields above are set */
    int target_refused;  /* 400 (too many query parameters) or 414, from the request line */
    size_t target_bytes; /* of the request target, as sent */
    char bad_header[64]; /* a header whose value is not UTF-8 text */
    bool too_large;
    bool query_malformed;     /* a query key or value is not UTF-8 text, or holds a NUL */
    bool idempotent;          /* the handler runs inside idempotency's transaction */
    bool wants_csv;           /* a list asked for as text/csv */
    bool personal_shown;      /* the answer showed personal data: the read is audited */
    const char *audit_action; /* what the audit log calls this request, when not its method */
    bool audited;             /* recorded in the transaction of its effect already */
    /* An answer that may leave only once its audit entry is committed (audit.h): the
     * connection is suspended until the audit writer reports in audit_outcome. */
    bool audit_waiting;
    atomic_int audit_outcome; /* AUDIT_PENDING, then committed or failed (http.c) */

    /* A statement on the pipeline (http_defer): the connection is suspended until its result is
     * in `deferred`; then `then` answers. */
    http_then then;
    struct db_result deferred;
    atomic_bool deferred_ready;

    /* A streamed body (CSV): libmicrohttpd pulls it through stream_read. */
    long (*stream_read)(void *ctx, char *out, size_t max); /* bytes, 0 at the end, -1 error */
    void (*stream_free)(void *ctx);
    void *stream_ctx;
    bool queued;
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
 * (dbpipe) and answers with then(req, r) once its result is in, on a worker thread; r is cleared
 * after. Meanwhile the connection is suspended and the worker serves others. The handler returns
 * right after this call, without answering. Without a pipeline the statement runs here and then
 * is called at once. Not for idempotent requests, whose answer is stored when the handler
 * returns. */
void http_defer(struct request *req, const char *sql, int n, const char *const *values,
                http_then then);

/* A request header, or NULL. */
const char *http_header(struct request *req, const char *name);
/* A query value, or NULL when the key is absent. */
const char *http_query(const struct request *req, const char *key);
/* A path parameter: "{id}" → http_param(req, "id"). */
const char *http_param(const struct request *req, const char *name);

/* Adds a response header (copied). */
void http_set_header(struct request *req, const char *name, const char *value);
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
/* Answers with a body that is not JSON. */
void http_reply_text(struct request *req, int status, const char *content_type, const char *body,
                     size_t len);
void http_reply_empty(struct request *req, int status);

/* Problem details (RFC 9457). detail is a printf format. */
void http_problem(struct request *req, int status, const char *detail, ...)
    __attribute__((format(printf, 3, 4)));
/* Collects an invalid field or query key; http_problem_invalid() answers 400 with all of them. */
void http_invalid(struct request *req, const char *name, const char *code, const char *reason, ...)
    __attribute__((format(printf, 4, 5)));
void http_problem_invalid(struct request *req);
/* Collects a conflict; http_problem_conflicts() answers 409 with all of them. */
void http_conflict(struct request *req, const char *code, const char *detail, ...)
    __attribute__((format(printf, 3, 4)));
void http_problem_conflicts(struct request *req, const char *detail);
/* 503 with Retry-After: the database is unreachable. */
void http_problem_unavailable(struct request *req);
/* For a statement that failed where no failure is expected of the client's making: 503 when the
 * database is unreachable or the statement collided with another (DB_RETRY), else 500 (a bug:
 * db has logged it). */
void http_problem_database(struct request *req, enum db_status status);

/* ETag handling for a resource at version: sets ETag and returns true when If-None-Match
 * matches (the caller answers 304 with http_reply_not_modified()). */
bool http_etag(struct request *req, const char *version);
void http_reply_not_modified(struct request *req);
/* The version an If-Match header asks for: NULL when there is none (or "*", which any existing
 * version matches), "" when it cannot match any version (malformed), else the digits. out
 * must hold 16 bytes. */
const char *http_if_match(struct request *req, char *out);

/* Writes the audit entry of this request, answered with status, into the open transaction
 * (id: the row acted on, when the path does not name it). A write recorded this way is in the
 * audit log exactly when its effect is committed; once it is, the caller sets req->audited so
 * that it is not queued again. False when the database failed. */
bool http_audit_now(struct request *req, int status, const char *id);
/* The end of a successful write: its audit entry into the open transaction (http_audit_now),
 * then the commit, then req->audited. False, with 503 answered (409 when the commit collided
 * with another transaction), when either failed; the caller then rolls back. */
bool http_commit_audited(struct request *req, int status, const char *id);
/* The client's IP address as text. */
void http_client_address(struct request *req, char *out, size_t len);
/* Percent-encodes s for a query string into b. */
void http_url_encode(struct buf *b, const char *s);

#endif

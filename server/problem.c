#include "problem.h"

#include "http.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

const char *problem_title(int status)
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
    case 505: return "HTTP Version Not Supported";
    default: return "Internal Server Error";
    }
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
    buf_reset(&req->out);
    jsonw_init(&req->w, &req->out);
    struct jsonw *w = &req->w;
    jsonw_object_begin(w);
    jsonw_kv_string(w, "type", "about:blank");
    jsonw_kv_string(w, "title", problem_title(status));
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

/* Room for item n of an array in the pool that holds n items of size each: the array doubles
 * (4, 8, 16, ...), the old copy left to the pool, which frees both at the request's end. */
static void *room_for(struct pool *pool, void *items, int n, size_t size)
{
    bool full = n == 0 || (n >= 4 && (n & (n - 1)) == 0);
    if (!full)
        return items;
    void *grown = pool_alloc(pool, (size_t)(n == 0 ? 4 : 2 * n) * size);
    if (n > 0)
        memcpy(grown, items, (size_t)n * size);
    return grown;
}

void http_invalid(struct request *req, const char *name, const char *code, const char *reason, ...)
{
    if (req->n_invalid == HTTP_MAX_INVALID)
        return;
    req->invalid = room_for(&req->pool, req->invalid, req->n_invalid, sizeof *req->invalid);
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
    req->conflicts = room_for(&req->pool, req->conflicts, req->n_conflicts, sizeof *req->conflicts);
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

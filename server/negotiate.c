#include "negotiate.h"

#include "http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

bool negotiate_accepts(const char *accept, const char *media)
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

bool negotiate_names_csv(const char *accept)
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

bool negotiate_body_type(const char *ct, enum http_method method)
{
    if (!ct)
        return false;
    size_t n = strcspn(ct, "; ");
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return true;
    return method == HTTP_PATCH && n == 28 &&
           strncasecmp(ct, "application/merge-patch+json", 28) == 0;
}

bool negotiate_none_match(const char *inm, const char *tag)
{
    if (!inm)
        return false;
    /* A list of entity tags, or *; weak tags compare equal for GET (RFC 9110 §13.1.2). */
    size_t n = strlen(tag);
    for (const char *p = inm; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (strncmp(p, tag, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
            return true;
        while (*p && *p != ',')
            p++;
    }
    return false;
}

const char *negotiate_if_match(const char *im, char *out)
{
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

bool negotiate_response(struct request *req)
{
    const char *produces = req->route->produces ? req->route->produces : "application/json";
    const char *accept = http_header(req, "Accept");
    req->wants_csv = req->route->csv && negotiate_names_csv(accept);
    if (!req->wants_csv && !negotiate_accepts(accept, produces)) {
        http_problem(req, 406, "This endpoint answers with %s%s.", produces,
                     req->route->csv ? " or text/csv" : "");
        return false;
    }
    return true;
}

bool negotiate_body(struct request *req)
{
    if (req->method != HTTP_POST && req->method != HTTP_PUT && req->method != HTTP_PATCH)
        return true;
    if (req->route && req->route->no_body) {
        if (req->body.len == 0)
            return true;
        http_problem(req, 400, "This request takes no body.");
        return false;
    }
    if (req->body.len == 0) {
        http_problem(req, 400, "This request needs a JSON body.");
        return false;
    }
    if (!negotiate_body_type(http_header(req, "Content-Type"), req->method)) {
        http_problem(req, 415, "The body must be application/json%s.",
                     req->method == HTTP_PATCH ? " or application/merge-patch+json" : "");
        return false;
    }
    return true;
}

bool http_etag(struct request *req, const char *version)
{
    char tag[32];
    snprintf(tag, sizeof tag, "\"%s\"", version);
    return http_entity_tag(req, tag);
}

bool http_entity_tag(struct request *req, const char *tag)
{
    http_set_header(req, "ETag", tag);
    return negotiate_none_match(http_header(req, "If-None-Match"), tag);
}

void http_reply_not_modified(struct request *req)
{
    http_reply_empty(req, 304);
}

const char *http_if_match(struct request *req, char *out)
{
    return negotiate_if_match(http_header(req, "If-Match"), out);
}

void http_reply_stale(struct request *req, const char *what, const char *version)
{
    char asked[16];
    const char *if_match = http_if_match(req, asked);
    if (if_match && !*if_match)
        http_problem(req, 412, "If-Match must name the current version of the %s: \"%s\".", what,
                     version);
    else
        http_problem(req, 412, "The %s has changed: its version is now %s.", what, version);
    http_etag(req, version);
}

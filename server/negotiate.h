/* negotiate: what the client asks of the representation, and on which condition.
 *
 *   - Media types: the Accept header against what a route produces (406 otherwise; problem
 *     bodies count as JSON), text/csv for a list that offers it when Accept names it itself, and
 *     the body's Content-Type (415 otherwise: application/json, for PATCH also
 *     application/merge-patch+json).
 *   - Conditional requests (RFC 9110 §13): an ETag and If-None-Match for reads (304), and the
 *     version If-Match holds a write to.
 *
 * The negotiate_* functions on header values are pure (unit-tested); the http_* ones read the
 * request's headers and answer it. */
#ifndef WERKLAB_NEGOTIATE_H
#define WERKLAB_NEGOTIATE_H

#include "router.h"

#include <stdbool.h>

struct request;

/* True when an Accept value (NULL or "" when absent) admits media, e.g. "application/json".
 * A client that accepts JSON accepts problem details. q=0 excludes a range. */
bool negotiate_accepts(const char *accept, const char *media);
/* True when an Accept value names text/csv itself, without q=0 (a wildcard keeps JSON). */
bool negotiate_names_csv(const char *accept);
/* True when a Content-Type value (NULL when absent) is one that method takes for its body. */
bool negotiate_body_type(const char *content_type, enum http_method method);
/* True when an If-None-Match value lists tag ("\"3\"", weak or strong) or is "*". */
bool negotiate_none_match(const char *if_none_match, const char *tag);
/* The version an If-Match value asks for: NULL when there is none (or "*", which any existing
 * version matches), "" when it cannot match any version (malformed), else the digits. out must
 * hold 16 bytes. */
const char *negotiate_if_match(const char *if_match, char *out);

/* The representation: sets req->wants_csv, or answers 406 and returns false. */
bool negotiate_response(struct request *req);
/* The body of a POST, PUT or PATCH: answers 400 without one, 415 for another media type, and
 * returns false; true for a method without a body. */
bool negotiate_body(struct request *req);

/* ETag handling for a resource at version: sets ETag and returns true when If-None-Match
 * matches (the caller answers 304 with http_reply_not_modified()). */
bool http_etag(struct request *req, const char *version);
/* The same for an entity tag made elsewhere, quotes included (e.g. a document's digest). */
bool http_entity_tag(struct request *req, const char *tag);
void http_reply_not_modified(struct request *req);
/* negotiate_if_match() of the request's If-Match header. */
const char *http_if_match(struct request *req, char *out);
/* 412 for an If-Match that names another version than the one the row (a what, e.g.
 * "werklab") has: the ETag of that version goes with it, so that a client can show the conflict
 * without reading the row again. */
void http_reply_stale(struct request *req, const char *what, const char *version);

#endif

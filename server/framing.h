/* framing: what a request message may be before anything reads its meaning (RFC 9112).
 *
 *   - Its end must be certain: Content-Length with Transfer-Encoding, two Content-Lengths, a
 *     header name that is not a token, HTTP/1.1 without exactly one Host are 400, a body sent
 *     with Transfer-Encoding is 411 (bodies are JSON of known length), and more than
 *     HTTP_MAX_HEADER_FIELDS header fields or HTTP_MAX_HEADER_BYTES of them 431; all of these
 *     close the connection, so that nothing after them is taken for another request. A header
 *     value that is not UTF-8 text is noted (req->bad_header) for dispatch to refuse.
 *   - Its query is split as forms are (application/x-www-form-urlencoded): at most
 *     HTTP_MAX_QUERY parameters, each key and value UTF-8 text without a NUL, no API key among
 *     them, and each key one the route takes, once.
 *
 * Each check that refuses answers the request (problem.h) and returns so. */
#ifndef WERKLAB_FRAMING_H
#define WERKLAB_FRAMING_H

#include "http1.h"

#include <stdbool.h>
#include <stddef.h>

struct request;

/* Query parameters in a query string (after the '?'), as framing_take_query() counts them. */
size_t framing_query_count(const char *query);
/* Decodes, in place, the escapes in a path that stand for unreserved characters (letters,
 * digits, - . _ ~): they mean the same as the character (RFC 3986 §6.2.2.2). Every other escape
 * stays as sent, %2F above all, which is not a segment's end. */
void framing_normalize_path(char *path);
/* A Content-Length value (NULL: none, length 0) into length; false when it is not digits alone.
 * One too large to count is ULLONG_MAX. */
bool framing_content_length(const char *value, unsigned long long *length);
/* Checks the header fields of a request (its head, req->fields); true when it answered (and
 * the connection is to close). length_valid: what framing_content_length() said. */
bool framing_refuse(struct request *req, const struct http1_head *head, bool length_valid);
/* Splits req->query_text into req->query; false when it answered: a key or value is not text,
 * or a key is one that API keys go by. */
bool framing_take_query(struct request *req);
/* Query keys: at most HTTP_MAX_QUERY, each once, each one the route takes. False when it
 * answered; a route that takes query keys is left to report unknown ones with its own
 * findings (req->invalid). */
bool framing_check_query(struct request *req);

#endif

/* http1: the head of an HTTP/1.1 request as it comes off the wire (RFC 9112 §2–§5).
 *
 * http1_head_end() finds where a head ends in what has arrived; http1_parse_head() cuts a head
 * into its request line and header fields in place, ending each part with a NUL in the caller's
 * buffer, so that every part is a C string that lives as long as the buffer.
 *
 * Only the syntax that makes the parts is checked here: a request line of a method token, a
 * target without controls or spaces and HTTP/1.x; field lines with a colon, no line folding and
 * no NUL. What the fields mean, and whether the message's framing can be trusted (names that are
 * not tokens, Content-Length and Transfer-Encoding, Host), is framing.h's: it answers those with
 * words of its own. Lines may end with CRLF or, as RFC 9112 §2.2 allows a recipient to accept,
 * with LF alone; a CR anywhere else is refused, since two readers could split at it differently.
 *
 * Pure and thread-safe. */
#ifndef WERKLAB_HTTP1_H
#define WERKLAB_HTTP1_H

#include <stddef.h>

struct http1_field {
    const char *name;  /* as sent: framing.h checks that it is a token */
    const char *value; /* without the whitespace around it */
    size_t name_len, value_len;
};

struct http1_head {
    const char *method;
    const char *target;
    size_t target_len;
    int minor_version; /* HTTP/1.minor */
    size_t line_len;   /* of the request line, its line end included */
    /* The fields in the order sent; n_fields counts them all, also those beyond the room the
     * caller gave, which are not stored. */
    struct http1_field *fields;
    size_t n_fields;
};

enum http1_result {
    HTTP1_OK,
    HTTP1_BAD_REQUEST_LINE, /* 400 */
    HTTP1_BAD_VERSION,      /* HTTP/2 and later on this connection: 505 */
    HTTP1_BAD_FIELD,        /* a field line without a colon, folded, or with a NUL or CR: 400 */
};

/* The length of the head in data[0..len), its blank line included; 0 while it has not all
 * arrived. from: how much of data an earlier call saw without finding the end (the search goes
 * on from a little before it), 0 the first time. */
size_t http1_head_end(const char *data, size_t len, size_t from);
/* The length of the request line, its line end included, once it is all in data[0..len); else
 * 0. */
size_t http1_line_end(const char *data, size_t len);

/* Parses the head in head[0..len) (len as http1_head_end() gave it) into out, storing at most
 * room fields in fields[]. Writes NULs into head. */
enum http1_result http1_parse_head(char *head, size_t len, struct http1_field *fields, size_t room,
                                   struct http1_head *out);

#endif

#include "framing.h"

#include "http.h"
#include "validate.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

/* Query parameters as split_query() counts them: one per '&', and the last one unless it is
 * empty. */
size_t framing_query_count(const char *query)
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

/* UTF-8 text without control characters other than tab. The loop has no early exit, so that
 * the compiler makes vector code of it: a token is a kilobyte of header. The UTF-8 check runs
 * only when a byte is not ASCII, which header values nearly never have. */
static bool is_field_text(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    bool control = false;
    unsigned char any = 0;
    for (size_t i = 0; i < len; i++) {
        control |= (u[i] < 0x20 && u[i] != '\t') || u[i] == 0x7f;
        any |= u[i];
    }
    return !control && (any < 0x80 || validate_utf8(s, len));
}

static void scan_field(struct framing *f, const char *key, size_t key_size, const char *value,
                       size_t value_size)
{
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

void framing_normalize_path(char *path)
{
    char *out = strchr(path, '%');
    if (!out)
        return;
    for (const char *p = out; *p; p++) {
        int high, low;
        if (*p == '%' && (high = validate_hex_digit(p[1])) >= 0 &&
            (low = validate_hex_digit(p[2])) >= 0) {
            char c = (char)(high * 16 + low);
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '.' || c == '_' || c == '~') {
                *out++ = c;
                p += 2;
                continue;
            }
        }
        *out++ = *p;
    }
    *out = '\0';
}

bool framing_content_length(const char *value, unsigned long long *length)
{
    *length = 0;
    if (!value)
        return true;
    if (!*value)
        return false;
    for (const char *p = value; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned digit = (unsigned)(*p - '0');
        /* Beyond what can be counted is beyond every limit: kept at the largest. */
        *length = *length > (ULLONG_MAX - digit) / 10 ? ULLONG_MAX : *length * 10 + digit;
    }
    return true;
}

/* Refuses a request whose end is not certain (RFC 9112 §6.1, §6.3, §3.2), and one with more
 * header fields than werklabd reads, answering it with the connection closed: its remaining
 * bytes are not another request. True when it answered. */
bool framing_refuse(struct request *req, const struct http1_head *head, bool length_valid)
{
    struct framing f = {0};
    size_t header_bytes = 0;
    for (size_t i = 0; i < req->n_fields; i++) {
        const struct http1_field *h = &req->fields[i];
        scan_field(&f, h->name, h->name_len, h->value, h->value_len);
        header_bytes += h->name_len + h->value_len + 4; /* ": " and the line end */
    }
    f.fields = (unsigned)head->n_fields; /* also those beyond the ones stored */
    bool http11 = head->minor_version >= 1;
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
    else if (!length_valid)
        http_problem(req, 400, "Content-Length is not a number of bytes.");
    else if (f.hosts > 1 || (http11 && f.hosts == 0))
        http_problem(req, 400, "An HTTP/1.1 request needs exactly one Host header.");
    else if (f.fields > HTTP_MAX_HEADER_FIELDS)
        http_problem(req, 431, "The request has more than %d header fields.",
                     HTTP_MAX_HEADER_FIELDS);
    else if (header_bytes > HTTP_MAX_HEADER_BYTES)
        http_problem(req, 431, "The request headers are longer than %d bytes.",
                     HTTP_MAX_HEADER_BYTES);
    else {
        if (f.bad_value)
            req->bad_header = pool_strndup(&req->pool, f.bad_value, 63);
        return false;
    }
    http_set_header(req, "Connection", "close");
    return true;
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

/* Decodes a query key or value in place (application/x-www-form-urlencoded): '+' is a space,
 * %XX an escape, and a malformed escape stays as it is. Returns the length, which a %00 makes
 * longer than strlen() sees. */
static size_t decode_query_part(char *s)
{
    char *out = s;
    for (const char *p = s; *p; p++) {
        int high, low;
        if (*p == '+') {
            *out++ = ' ';
        } else if (*p == '%' && (high = validate_hex_digit(p[1])) >= 0 &&
                   (low = validate_hex_digit(p[2])) >= 0) {
            *out++ = (char)(high * 16 + low);
            p += 2;
        } else {
            *out++ = *p;
        }
    }
    *out = '\0';
    return (size_t)(out - s);
}

/* Splits req->query_text into req->query: at each '&', each part at its first '='; a part
 * without '=' is a key without a value; an empty last part is no parameter. */
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

bool framing_take_query(struct request *req)
{
    split_query(req);
    if (req->query_malformed) {
        http_problem_invalid(req);
        return false;
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
            return false;
        }
    }
    return true;
}

/* Query keys: at most HTTP_MAX_QUERY, each once, each one the route takes. */
bool framing_check_query(struct request *req)
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

#include "http1.h"

#include <stdbool.h>
#include <string.h>

size_t http1_head_end(const char *data, size_t len, size_t from)
{
    /* The blank line may have begun in what the last call saw: "\r\n\r" then "\n". */
    size_t i = from > 3 ? from - 3 : 0;
    while (i < len) {
        const char *lf = memchr(data + i, '\n', len - i);
        if (!lf)
            return 0;
        i = (size_t)(lf - data) + 1;
        if (i < len && data[i] == '\n')
            return i + 1;
        if (i + 1 < len && data[i] == '\r' && data[i + 1] == '\n')
            return i + 2;
    }
    return 0;
}

size_t http1_line_end(const char *data, size_t len)
{
    const char *lf = memchr(data, '\n', len);
    return lf ? (size_t)(lf - data) + 1 : 0;
}

/* The line that starts at s and ends at the next LF (which http1_head_end() found): its length
 * without the line end, or -1 when a CR or NUL stands anywhere but just before the LF. */
static long line_length(const char *s, const char *end)
{
    const char *lf = memchr(s, '\n', (size_t)(end - s));
    size_t n = (size_t)(lf - s);
    if (n > 0 && s[n - 1] == '\r')
        n--;
    if (memchr(s, '\r', n) || memchr(s, '\0', n))
        return -1;
    return (long)n;
}

static bool is_tchar(unsigned char c)
{
    static const char other[] = "!#$%&'*+-.^_`|~";
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr(other, c));
}

static enum http1_result parse_request_line(char *line, size_t n, struct http1_head *out)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)line[i]))
        i++;
    if (i == 0 || i == n || line[i] != ' ')
        return HTTP1_BAD_REQUEST_LINE;
    line[i] = '\0';
    out->method = line;
    size_t target = ++i;
    /* Visible bytes: a control or a space inside the target is how request lines get read two
     * ways. Bytes over 0x7f pass, for the router and the query's UTF-8 check to judge. */
    while (i < n && (unsigned char)line[i] > 0x20 && line[i] != 0x7f)
        i++;
    if (i == target || i == n || line[i] != ' ')
        return HTTP1_BAD_REQUEST_LINE;
    line[i] = '\0';
    out->target = line + target;
    out->target_len = i - target;
    const char *v = line + i + 1;
    if (n - i - 1 != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return HTTP1_BAD_REQUEST_LINE;
    if (v[5] == '0')
        return HTTP1_BAD_REQUEST_LINE;
    if (v[5] != '1')
        return HTTP1_BAD_VERSION;
    out->minor_version = v[7] - '0';
    return HTTP1_OK;
}

static enum http1_result parse_field(char *line, size_t n, struct http1_field *f)
{
    if (n > 0 && (line[0] == ' ' || line[0] == '\t'))
        return HTTP1_BAD_FIELD; /* obsolete line folding (RFC 9112 §5.2) */
    char *colon = memchr(line, ':', n);
    if (!colon)
        return HTTP1_BAD_FIELD;
    size_t name_len = (size_t)(colon - line);
    char *value = colon + 1, *end = line + n;
    while (value < end && (*value == ' ' || *value == '\t'))
        value++;
    while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *colon = '\0';
    *end = '\0';
    *f = (struct http1_field){
        .name = line, .value = value, .name_len = name_len, .value_len = (size_t)(end - value)};
    return HTTP1_OK;
}

enum http1_result http1_parse_head(char *head, size_t len, struct http1_field *fields, size_t room,
                                   struct http1_head *out)
{
    *out = (struct http1_head){.fields = fields};
    char *end = head + len, *p = head;
    long n = line_length(p, end);
    if (n < 0)
        return HTTP1_BAD_REQUEST_LINE;
    char *next = (char *)memchr(p, '\n', (size_t)(end - p)) + 1;
    out->line_len = (size_t)(next - head);
    enum http1_result r = parse_request_line(p, (size_t)n, out);
    if (r != HTTP1_OK)
        return r;
    for (p = next; p < end; p = next) {
        n = line_length(p, end);
        if (n < 0)
            return HTTP1_BAD_FIELD;
        next = (char *)memchr(p, '\n', (size_t)(end - p)) + 1;
        if (n == 0)
            break; /* the blank line */
        struct http1_field f;
        r = parse_field(p, (size_t)n, &f);
        if (r != HTTP1_OK)
            return r;
        if (out->n_fields < room)
            fields[out->n_fields] = f;
        out->n_fields++;
    }
    return HTTP1_OK;
}

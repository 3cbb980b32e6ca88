/* The request path, end to end: the fuzz input is what a client writes on a TCP connection.
 *
 * werklabd runs in this process, started once as `werklabd serve` starts it: libmicrohttpd,
 * http.c, the real routes (api_register), auth, query and body checks and dispatch. It listens
 * on an ephemeral loopback port, and its database cannot be reached (a socket directory that
 * does not exist), so a handler that needs it answers 503 at once through db's back-off: the
 * time goes to the HTTP path, not to SQL. The body limit is set low (the smallest the
 * configuration allows) so that short inputs reach it.
 *
 * Each input is written on a new connection, which is half-closed once the daemon has read it:
 * from then on the daemon knows that nothing more will come, and must answer or close. (So a
 * daemon that waits for the rest of a request that a client could still send is not seen
 * here: that needs a test that knows the request's framing.) What the daemon sends back is read
 * whole and checked. A finding abort()s, so that libFuzzer reports it like a crash and keeps
 * the input:
 *   - no progress (nothing read, nothing written, no close) for HANG_SECONDS: the daemon waits
 *     for something that cannot come, longer than the idle timeout after which it must
 *     close;
 *   - an answer that is not HTTP/1.x: each response has a status line, header lines that end,
 *     and a body its framing delimits; no header value holds a control character;
 *   - a 5xx other than 503 (the database) or 505 (an HTTP version not served): input the daemon
 *     cannot take is the client's error, 4xx, never a 500;
 *   - a werklabd response without X-Request-Id, or a problem+json body that is not a problem
 *     document with the status of its status line;
 *   - an audit entry with a request id the client could have put personal data in.
 * One 500 is libmicrohttpd's own and not ours to change: see known_mhd_500(). */
#include "fuzz.h"

#include "api.h"
#include "audit.h"
#include "auth.h"
#include "buf.h"
#include "config.h"
#include "db.h"
#include "http.h"
#include "metrics.h"
#include "migrate.h"
#include "resource.h"
#include "router.h"
#include "token.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A daemon that makes no progress this long is stuck. Answers take milliseconds even under
 * AddressSanitizer; the margin is for a loaded machine (libFuzzer's -timeout must exceed it). */
#define HANG_SECONDS 10
/* More of an answer than this is not kept (the checks see its beginning). */
#define ANSWER_MAX (16u << 20)

static unsigned port;
/* Where findings are told: stderr as it was at the start. libFuzzer's -close_fd_mask=2 sends
 * fd 2, and with it the daemon's request log, to /dev/null. */
static FILE *report;

static void finding(const char *what, const char *data, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));

static void finding(const char *what, const char *data, size_t len, const char *fmt, ...)
{
    fprintf(report, "fuzz_http: %s: ", what);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(report, fmt, ap);
    va_end(ap);
    fputc('\n', report);
    if (data) {
        fputs("fuzz_http: the daemon sent (escaped, at most 4096 bytes):\n", report);
        for (size_t i = 0; i < len && i < 4096; i++) {
            unsigned char c = (unsigned char)data[i];
            if (c == '\n')
                fputs("\\n\n", report);
            else if (c == '\r')
                fputs("\\r", report);
            else if (c < 0x20 || c >= 0x7f || c == '\\')
                fprintf(report, "\\x%02x", c);
            else
                fputc(c, report);
        }
        fputc('\n', report);
    }
    fflush(report);
    abort();
}

/* The audit queue is written by a job that this process does not run (the database is out of
 * reach, so the queue could only fill up and then block every write): entries are checked here
 * instead of being queued. Linked with -Wl,--wrap=audit_add. */
void __wrap_audit_add(const struct audit_entry *e);
void __wrap_audit_add(const struct audit_entry *e)
{
    size_t n = strlen(e->request_id);
    if (e->status < 100 || e->status > 599 || e->resource[0] != '/' ||
        strspn(e->request_id,
               "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:") != n ||
        n > 64 || e->key_id[0])
        finding("audit entry", NULL, 0, "status %d, resource '%s', request id '%s', key '%s'",
                e->status, e->resource, e->request_id, e->key_id);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    report = fdopen(dup(STDERR_FILENO), "w");
    FUZZ_CHECK(report != NULL);
    setvbuf(report, NULL, _IONBF, 0);
    signal(SIGPIPE, SIG_IGN);
    json_object_seed(1);

    /* The settings as `werklabd serve` reads them; what is not given here is the default. */
    char *args[] = {
        "werklabd", "serve", "--no-migrate", "--listen=127.0.0.1:0", "--threads=2",
        "--db-pipelines=0", "--database-url=host=/nonexistent/werklab-fuzz dbname=fuzz",
        /* The idle timeout is the default, 5 s, below HANG_SECONDS: what the daemon promises is
         * an answer or a close within it (libmicrohttpd 0.9.75 sometimes loses its own error
         * answer and only closes: tests/fuzz/README.md). An answer that waits for a client to
         * read it is far beyond. */
        "--connection-timeout=120",
        /* The smallest body limit allowed, so that short inputs reach it; the memory per
         * connection is the default (and the smallest allowed), as deployed. */
        "--body-limit=1024",
        /* Every input comes from 127.0.0.1: no 429 in the way of the handlers behind it. */
        "--public-write-limit=100000",
        /* ... which is a trusted proxy, so that X-Forwarded-For is read (proxies.h). */
        "--trusted-proxies=127.0.0.1"};
    static struct config cfg;
    char err[256];
    if (config_load(&cfg, (int)(sizeof args / sizeof *args), args, err, sizeof err) < 0) {
        fprintf(report, "fuzz_http: %s\n", err);
        abort();
    }

    /* What serve() in api/main.c does before http_start(), less what needs a database (the
     * cursor key is the fuzzer's) and the jobs (see __wrap_audit_add). */
    api_register(&cfg);
    static const unsigned char cursor_key[] = "werklab fuzzing cursor key, 32 b";
    token_set_key(cursor_key, sizeof cursor_key - 1);
    migrate_expected();
    db_configure(cfg.database_url, cfg.statement_timeout_ms);
    auth_configure(cfg.key_cache_ms);
    static const char *names[128];
    FUZZ_CHECK(router_count() <= sizeof names / sizeof *names);
    for (size_t i = 0; i < router_count(); i++)
        names[i] = router_at(i)->pattern;
    metrics_init(router_count(), names);

    FUZZ_CHECK(http_start(&cfg) == 0);
    port = http_port();
    FUZZ_CHECK(port != 0);
    return 0;
}

/* ---- the exchange ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int connect_daemon(struct sockaddr_in *local)
{
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(fd >= 0);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        finding("connect", NULL, 0, "the daemon does not accept connections: %s", strerror(errno));
    socklen_t len = sizeof *local;
    FUZZ_CHECK(getsockname(fd, (struct sockaddr *)local, &len) == 0);
    FUZZ_CHECK(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
    return fd;
}

/* The bytes of this connection that the daemon has not read yet, or -1 when its end is not
 * (or no longer) open. The daemon's socket is found among this process's descriptors by its
 * peer, which is the client's address. */
static int unread_by_daemon(const struct sockaddr_in *client)
{
    DIR *dir = opendir("/proc/self/fd");
    FUZZ_CHECK(dir != NULL);
    int unread = -1;
    for (struct dirent *e; unread < 0 && (e = readdir(dir));) {
        int fd = atoi(e->d_name);
        struct sockaddr_in peer, self;
        socklen_t peer_len = sizeof peer, self_len = sizeof self;
        if (fd > 2 && fd != dirfd(dir) &&
            getpeername(fd, (struct sockaddr *)&peer, &peer_len) == 0 &&
            peer.sin_family == AF_INET && peer.sin_port == client->sin_port &&
            getsockname(fd, (struct sockaddr *)&self, &self_len) == 0 &&
            self.sin_port == htons((uint16_t)port) && ioctl(fd, SIOCINQ, &unread) < 0)
            unread = -1;
    }
    closedir(dir);
    return unread;
}

/* True when the daemon has read all that was sent, or has closed its end: only then may the
 * half-close be sent (see exchange()). */
static bool daemon_read_all(int fd, const struct sockaddr_in *local, int *unread, bool *accepted)
{
    int in_flight = 0;
    FUZZ_CHECK(ioctl(fd, SIOCOUTQ, &in_flight) == 0); /* sent but not yet in its queue */
    if (in_flight > 0)
        return false;
    *unread = unread_by_daemon(local);
    if (*unread >= 0)
        *accepted = true;
    return *accepted && *unread <= 0;
}

struct answer {
    struct buf bytes;
    bool reset; /* ended by a reset, not a close: what was in flight may be cut */
};

/* Writes data, half-closes, and reads what comes back until the daemon closes, while reading
 * all along (a daemon that answers before it has read everything must not stall the write).
 *
 * The half-close waits until the daemon has read every byte: libmicrohttpd 0.9.75 with epoll
 * (edge-triggered) takes a short read to mean that the socket is drained (recv_param_adapter()
 * in connection.c clears MHD_EPOLL_STATE_READ_READY), so a FIN that arrives together with the
 * last bytes of a request is not seen until the connection times out. Sent after the daemon's
 * last read, the FIN wakes it again. */
static void exchange(const uint8_t *data, size_t size, struct answer *a)
{
    struct sockaddr_in local;
    int fd = connect_daemon(&local);
    size_t sent = 0;
    bool writing = size > 0, half_closed = false, accepted = false;
    int unread = -1, last_unread = -1;
    double progress = now_s();
    for (;;) {
        if (!writing && !half_closed && daemon_read_all(fd, &local, &unread, &accepted)) {
            shutdown(fd, SHUT_WR);
            half_closed = true;
        }
        if (unread != last_unread) { /* the daemon reads */
            last_unread = unread;
            progress = now_s();
        }
        double left = progress + HANG_SECONDS - now_s();
        if (left <= 0)
            finding("hang", a->bytes.data, a->bytes.len,
                    "no answer, no close and no reading for %d s; %zu of %zu bytes written, "
                    "%d of them not read by the daemon, %s; %zu bytes answered",
                    HANG_SECONDS, sent, size, unread, half_closed ? "half-closed" : "not closed",
                    a->bytes.len);
        struct pollfd p = {.fd = fd, .events = (short)(POLLIN | (writing ? POLLOUT : 0))};
        /* Until the half-close, the daemon's reading is looked at every millisecond. */
        int wait_ms = half_closed ? (int)(left * 1000) + 1 : 1;
        if (poll(&p, 1, wait_ms) <= 0)
            continue;
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            char chunk[65536];
            ssize_t got = recv(fd, chunk, sizeof chunk, 0);
            if (got == 0)
                break;
            if (got < 0 && errno != EAGAIN && errno != EINTR) {
                a->reset = true;
                break;
            }
            if (got > 0) {
                if (a->bytes.len < ANSWER_MAX)
                    buf_append(&a->bytes, chunk, (size_t)got);
                progress = now_s();
            }
        }
        if (writing && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t put = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
            if (put > 0) {
                sent += (size_t)put;
                progress = now_s();
            } else if (put < 0 && errno != EAGAIN && errno != EINTR) {
                writing = false; /* the daemon closed: what it answered is still to be read */
            }
            writing &= sent < size;
        }
    }
    close(fd);
    /* The request's memory is freed when libmicrohttpd lets its connection go, just after the
     * close: waited for, so that each input's allocations end within its run (libFuzzer runs an
     * input again, looking for leaks, when they do not). */
    while (unread_by_daemon(&local) >= 0) {
        if (now_s() > progress + HANG_SECONDS)
            finding("hang", NULL, 0, "the daemon closed but keeps its socket for %d s",
                    HANG_SECONDS);
        usleep(100);
    }
}

/* ---- the answer's checks ---- */

struct response {
    int status;
    bool ours; /* has API-Version: werklabd built it, not libmicrohttpd */
    bool request_id;
    bool chunked;
    bool has_length;
    unsigned long long length;
    bool problem_json;
    const char *body;
    size_t body_len;
};

/* The line at p (without CRLF), or NULL when no CRLF follows before end. */
static const char *line_end(const char *p, const char *end)
{
    for (const char *q = p; q + 1 < end; q++)
        if (q[0] == '\r' && q[1] == '\n')
            return q;
    return NULL;
}

static bool is_token_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", c);
}

static void header(struct response *r, const char *name, size_t name_len, const char *value,
                   size_t value_len, const char *all, size_t all_len)
{
    for (size_t i = 0; i < name_len; i++)
        if (!is_token_char((unsigned char)name[i]))
            finding("header name", all, all_len, "'%.*s' is not a token", (int)name_len, name);
    for (size_t i = 0; i < value_len; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            finding("header value", all, all_len, "%.*s holds byte 0x%02x", (int)name_len, name, c);
    }
#define IS(s) (name_len == sizeof s - 1 && strncasecmp(name, s, name_len) == 0)
    if (IS("API-Version"))
        r->ours = true;
    else if (IS("X-Request-Id"))
        r->request_id = value_len > 0;
    else if (IS("Transfer-Encoding"))
        r->chunked = value_len == 7 && strncasecmp(value, "chunked", 7) == 0;
    else if (IS("Content-Type"))
        r->problem_json = value_len >= 24 && strncmp(value, "application/problem+json", 24) == 0;
    else if (IS("Content-Length")) {
        if (r->has_length || value_len == 0 || strspn(value, "0123456789") < value_len ||
            value_len > 15)
            finding("Content-Length", all, all_len, "'%.*s'", (int)value_len, value);
        r->has_length = true;
        r->length = strtoull(value, NULL, 10);
    }
#undef IS
}

/* The length of a chunked body at p, or 0 when it is cut short. */
static size_t chunked_length(const char *p, const char *end, const char *all, size_t all_len)
{
    const char *start = p;
    for (;;) {
        const char *eol = line_end(p, end);
        if (!eol)
            return 0;
        size_t digits = strspn(p, "0123456789abcdefABCDEF");
        if (digits == 0 || digits > 8 || (p[digits] != '\r' && p[digits] != ';'))
            finding("chunk", all, all_len, "a chunk size line is malformed");
        unsigned long size = strtoul(p, NULL, 16);
        p = eol + 2;
        if (size == 0)
            break;
        if ((size_t)(end - p) < size + 2)
            return 0;
        if (p[size] != '\r' || p[size + 1] != '\n')
            finding("chunk", all, all_len, "a chunk does not end with CRLF");
        p += size + 2;
    }
    for (;;) { /* trailers, up to an empty line */
        const char *eol = line_end(p, end);
        if (!eol)
            return 0;
        bool empty = eol == p;
        p = eol + 2;
        if (empty)
            return (size_t)(p - start);
    }
}

/* libmicrohttpd 0.9.75 (connection.c, MHD_CONNECTION_CONTINUE_SENT) answers 500 with this page
 * of its own when a request body's chunk line does not fit in what is left of the connection's
 * memory: the request is refused, the connection closed, and werklabd is never called. It is
 * not werklabd's to change (libmicrohttpd parses the chunk framing before the application sees
 * the body), so it is let through here. */
static bool known_mhd_500(const struct response *r)
{
    static const char page[] = "GNU libmicrohttpd documentation about connection management";
    return r->status == 500 && !r->ours && r->body_len >= sizeof page - 1 &&
           memmem(r->body, r->body_len, page, sizeof page - 1) != NULL;
}

static void check_problem(const struct response *r, const char *all, size_t all_len)
{
    json_error_t error;
    json_t *doc = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &error);
    if (!doc)
        finding("problem+json", all, all_len, "the body is not JSON: %s", error.text);
    json_t *status = json_object_get(doc, "status");
    if (!json_is_object(doc) || json_integer_value(status) != r->status ||
        !json_is_string(json_object_get(doc, "title")) ||
        !json_is_string(json_object_get(doc, "detail")))
        finding("problem+json", all, all_len, "not a problem document with status %d", r->status);
    json_decref(doc);
}

/* Checks the response at p; returns its length, or 0 when it is cut short. */
static size_t check_response(const char *p, const char *end, const char *all, size_t all_len)
{
    struct response r = {0};
    const char *start = p;
    const char *eol = line_end(p, end);
    if (!eol)
        return 0;
    size_t n = (size_t)(eol - p);
    if (n < 13 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ' ||
        strspn(p + 9, "0123456789") != 3 || p[12] != ' ' || p[9] < '1' || p[9] > '5')
        finding("status line", all, all_len, "not an HTTP/1.x status line");
    r.status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    for (const char *q = p + 13; q < eol; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f)
            finding("status line", all, all_len, "the reason holds a control character");

    for (p = eol + 2;; p = eol + 2) {
        eol = line_end(p, end);
        if (!eol)
            return 0;
        if (eol == p)
            break;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p)
            finding("header", all, all_len, "a header line has no name");
        const char *value = colon + 1;
        while (value < eol && (*value == ' ' || *value == '\t'))
            value++;
        header(&r, p, (size_t)(colon - p), value, (size_t)(eol - value), all, all_len);
    }
    const char *body = eol + 2;
    size_t rest = (size_t)(end - body);

    size_t body_len;
    if (r.status < 200 || r.status == 204 || r.status == 304) {
        body_len = 0;
    } else if (r.chunked) {
        if (!(body_len = chunked_length(body, end, all, all_len)))
            return 0;
    } else if (r.has_length) {
        /* An answer to HEAD announces the length of a body it does not carry. */
        bool head = r.length > 0 && (rest == 0 || (rest >= 7 && memcmp(body, "HTTP/1.", 7) == 0));
        body_len = head ? 0 : (size_t)r.length;
        if (body_len > rest)
            return 0;
    } else {
        body_len = rest; /* up to the close */
    }
    r.body = body;
    r.body_len = body_len;

    if (r.status >= 500 && r.status != 503 && r.status != 505 && !known_mhd_500(&r))
        finding("status", all, all_len, "%d for what a client sent", r.status);
    if (r.ours && !r.request_id)
        finding("X-Request-Id", all, all_len, "a werklabd response without X-Request-Id");
    if (r.ours && r.problem_json && body_len > 0 && !r.chunked)
        check_problem(&r, all, all_len);
    return (size_t)(body + body_len - start);
}

static void check_answer(const struct answer *a)
{
    const char *all = a->bytes.data;
    size_t len = a->bytes.len;
    if (len == 0 || len >= ANSWER_MAX)
        return;
    const char *p = all, *end = all + len;
    while (p < end) {
        size_t n = check_response(p, end, all, len);
        if (n == 0) {
            /* Cut short: a reset may drop what was in flight; a close must not. */
            if (!a->reset)
                finding("cut short", all, len, "the daemon closed in the middle of a response");
            return;
        }
        p += n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct answer a = {0};
    exchange(data, size, &a);
    check_answer(&a);
    buf_free(&a.bytes);
    return 0;
}

/* The request path, end to end: the fuzz input is what a client writes on a TCP connection.
 *
 * werklabd runs in this process, started once as `werklabd serve` starts it: its connection
 * layer (connection.c, with http1.c for the request heads), http.c, the real routes
 * (api_register), auth, query and body checks and dispatch. It listens on an ephemeral loopback
 * port, and its database cannot be reached (a socket directory that does not exist), so a
 * handler that needs it answers 503 at once through db's back-off: the time goes to the HTTP
 * path, not to SQL. The body limit is set low (the smallest the configuration allows) so that
 * short inputs reach it.
 *
 * Each input is written on a new connection, which is half-closed right after its last byte
 * (the FIN may arrive together with it): from then on the daemon knows that nothing more will
 * come. It must answer each request it has whole, in order, and then close at once; a request
 * cut short by the end, or bytes that are not one, are answered or closed at once too. (A
 * daemon that waits for the rest of a request that a client could still send is not seen here:
 * that needs a test that knows the request's framing.) What the daemon sends back is read whole
 * and checked. A finding abort()s, so that libFuzzer reports it like a crash and keeps the
 * input:
 *   - no progress (nothing read, nothing written, no close) for HANG_SECONDS: after the
 *     half-close nothing is left to wait for, and the idle timeout is set far beyond
 *     HANG_SECONDS, so that a connection only the idle timeout would close is a hang;
 *   - an answer that is not HTTP/1.x: each response has a status line, header lines that end,
 *     and a body its framing delimits; no header value holds a control character; nothing
 *     follows a response that announced Connection: close;
 *   - a response without API-Version or X-Request-Id: every answer, also to bytes that cannot
 *     be a request (400, 414, 431, 505), leaves through http.c, which adds them;
 *   - an error (4xx, 5xx) that is not a problem+json document with the status and title of its
 *     status line, or whose reason phrase is that of another status;
 *   - a 5xx other than 503 (the database) or 505 (an HTTP version not served): input the daemon
 *     cannot take is the client's error, 4xx, never a 500;
 *   - the daemon's end of the connection kept open after the client closed its own;
 *   - an audit entry with a request id the client could have put personal data in.
 * Crashes, leaks and undefined behaviour in the daemon are AddressSanitizer's, LeakSanitizer's
 * and UndefinedBehaviorSanitizer's to find: the whole daemon is built with them. */
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

#include <errno.h>
#include <jansson.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A daemon that makes no progress this long is stuck. Answers take milliseconds even under
 * AddressSanitizer; the margin is for a loaded machine (libFuzzer's -timeout must exceed it, and
 * the daemon's idle timeout, set in LLVMFuzzerInitialize, too). */
#define HANG_SECONDS 10
/* More of an answer than this is not kept (the checks see its beginning). */
#define ANSWER_MAX (16u << 20)

static unsigned port;
/* A NETLINK_SOCK_DIAG socket: see daemon_end_open(). */
static int diag = -1;
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
        /* Far beyond HANG_SECONDS: every input ends with a half-close, after which the daemon
         * has nothing to wait for, so a connection that only the idle timeout closes is a hang
         * and not a close in time. An answer that waits for a client to read it is far beyond
         * too: the fuzzer reads all along. */
        "--idle-timeout=60", "--connection-timeout=120",
        /* The smallest body limit allowed, so that short inputs reach it; the longest request
         * head read is the default (and the smallest allowed), as deployed. */
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

    diag = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    FUZZ_CHECK(diag >= 0);
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
    /* Without blocking: libFuzzer's timer (SIGALRM) would interrupt a connect() that waits. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(fd >= 0);
    int error = 0;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        error = errno;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int ready;
        while ((ready = poll(&p, 1, HANG_SECONDS * 1000)) < 0 && errno == EINTR)
            ;
        socklen_t error_len = sizeof error;
        if (error == EINPROGRESS && ready > 0)
            FUZZ_CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &error_len) == 0);
        else if (error == EINPROGRESS)
            error = ETIMEDOUT;
    }
    if (error)
        finding("connect", NULL, 0, "the daemon does not accept connections: %s", strerror(error));
    socklen_t len = sizeof *local;
    FUZZ_CHECK(getsockname(fd, (struct sockaddr *)local, &len) == 0);
    return fd;
}

/* The daemon's end of the connection from client, as the kernel's socket table has it (sock_diag,
 * which ss(8) reads): true while a descriptor still holds it, with the bytes it has not read in
 * *unread. Asked of the kernel, never of the daemon's descriptor: a call on that descriptor holds
 * the socket for as long as it runs, and a socket the daemon closed meanwhile would stay in its
 * epoll set past the close, with events that name a connection already freed. */
static bool daemon_end_open(const struct sockaddr_in *client, unsigned *unread)
{
    struct {
        struct nlmsghdr h;
        struct inet_diag_req_v2 r;
    } q = {
        .h = {.nlmsg_len = sizeof q,
              .nlmsg_type = SOCK_DIAG_BY_FAMILY,
              .nlmsg_flags = NLM_F_REQUEST},
        .r = {.sdiag_family = AF_INET,
              .sdiag_protocol = IPPROTO_TCP,
              .idiag_states = ~0u,
              .id = {.idiag_sport = htons((uint16_t)port),
                     .idiag_dport = client->sin_port,
                     .idiag_src = {htonl(INADDR_LOOPBACK)},
                     .idiag_dst = {client->sin_addr.s_addr},
                     .idiag_cookie = {INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE}}},
    };
    ssize_t n;
    while ((n = send(diag, &q, sizeof q, 0)) < 0 && errno == EINTR)
        ;
    FUZZ_CHECK(n == (ssize_t)sizeof q);
    union {
        struct nlmsghdr h;
        char bytes[8192];
    } a;
    while ((n = recv(diag, &a, sizeof a, 0)) < 0 && errno == EINTR)
        ;
    FUZZ_CHECK(n >= (ssize_t)sizeof a.h && NLMSG_OK(&a.h, (size_t)n));
    if (a.h.nlmsg_type == NLMSG_ERROR) { /* ENOENT: gone, not even waiting out TIME_WAIT */
        FUZZ_CHECK(((struct nlmsgerr *)NLMSG_DATA(&a.h))->error == -ENOENT);
        return false;
    }
    FUZZ_CHECK(a.h.nlmsg_type == SOCK_DIAG_BY_FAMILY);
    const struct inet_diag_msg *m = NLMSG_DATA(&a.h);
    *unread = m->idiag_rqueue;
    /* Without its own socket the lookup finds the listening one; a closed socket has no inode. */
    return m->idiag_state != TCP_LISTEN && m->id.idiag_dport == client->sin_port &&
           m->idiag_inode != 0;
}

struct answer {
    struct buf bytes;
    bool reset; /* ended by a reset, not a close: what was in flight may be cut */
};

/* Writes data, half-closes at once, and reads what comes back until the daemon closes, while
 * reading all along (a daemon that answers before it has read everything must not stall the
 * write). */
static void exchange(const uint8_t *data, size_t size, struct answer *a)
{
    struct sockaddr_in local;
    int fd = connect_daemon(&local);
    size_t sent = 0;
    bool writing = true, half_closed = false;
    unsigned unread = 0;
    double progress = now_s();
    for (;;) {
        if (writing && sent == size) {
            shutdown(fd, SHUT_WR);
            half_closed = true;
            writing = false;
        }
        double left = progress + HANG_SECONDS - now_s();
        if (left <= 0)
            finding(
                "hang", a->bytes.data, a->bytes.len,
                "nothing sent, nothing received and no close for %d s; %zu of %zu bytes written, "
                "%u of them not read by the daemon, %s; %zu bytes answered",
                HANG_SECONDS, sent, size, daemon_end_open(&local, &unread) ? unread : 0,
                half_closed ? "half-closed" : "not closed", a->bytes.len);
        struct pollfd p = {.fd = fd, .events = (short)(POLLIN | (writing ? POLLOUT : 0))};
        if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
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
        }
    }
    close(fd);
    /* The daemon lets the connection go (its request ended, its socket closed) once the client
     * has closed too, after its answer: waited for, so that each input's allocations end within
     * its run (libFuzzer runs an input again, looking for leaks, when they do not). A socket it
     * keeps is a connection it has lost track of. */
    while (daemon_end_open(&local, &unread)) {
        if (now_s() > progress + HANG_SECONDS)
            finding("hang", NULL, 0, "the client closed, and the daemon keeps its socket for %d s",
                    HANG_SECONDS);
        usleep(100);
    }
}

/* ---- the answer's checks ---- */

struct response {
    int status;
    const char *reason;
    size_t reason_len;
    bool api_version;
    bool request_id;
    bool close; /* Connection: close, so it must be the last */
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
        r->api_version = value_len > 0;
    else if (IS("X-Request-Id"))
        r->request_id = value_len > 0;
    else if (IS("Connection"))
        r->close = value_len == 5 && strncasecmp(value, "close", 5) == 0;
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

static void check_problem(const struct response *r, const char *all, size_t all_len)
{
    json_error_t error;
    json_t *doc = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &error);
    if (!doc)
        finding("problem+json", all, all_len, "the body is not JSON: %s", error.text);
    json_t *status = json_object_get(doc, "status");
    json_t *title = json_object_get(doc, "title");
    if (!json_is_object(doc) || json_integer_value(status) != r->status || !json_is_string(title) ||
        !json_is_string(json_object_get(doc, "detail")))
        finding("problem+json", all, all_len, "not a problem document with status %d", r->status);
    /* The reason phrase is the problem's title: one text for the status, wherever it is read. */
    if (json_string_length(title) != r->reason_len ||
        memcmp(json_string_value(title), r->reason, r->reason_len) != 0)
        finding("problem+json", all, all_len, "the title is not the status line's reason");
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
    r.reason = p + 13;
    r.reason_len = (size_t)(eol - r.reason);
    for (const char *q = r.reason; q < eol; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f)
            finding("status line", all, all_len, "the reason holds a control character");
    /* problem_title() falls back to it for a status it has no title for. */
    static const char internal[] = "Internal Server Error";
    if (r.status != 500 && r.reason_len == sizeof internal - 1 &&
        memcmp(r.reason, internal, sizeof internal - 1) == 0)
        finding("status line", all, all_len, "%d is called %s", r.status, internal);

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

    if (r.status >= 500 && r.status != 503 && r.status != 505)
        finding("status", all, all_len, "%d for what a client sent", r.status);
    /* An interim 100 Continue is the connection's alone; every final response is http.c's. */
    if (r.status >= 200 && !r.api_version)
        finding("API-Version", all, all_len, "a response without API-Version");
    if (r.status >= 200 && !r.request_id)
        finding("X-Request-Id", all, all_len, "a response without X-Request-Id");
    if (r.status >= 400 && !r.problem_json)
        finding("problem+json", all, all_len, "a %d that is not application/problem+json",
                r.status);
    /* Without a body: the answer to HEAD. Problems are never streamed (chunked). */
    if (r.status >= 400 && body_len > 0) {
        if (r.chunked)
            finding("problem+json", all, all_len, "a %d with a chunked body", r.status);
        check_problem(&r, all, all_len);
    }
    if (r.close && end > body + body_len)
        finding("Connection: close", all, all_len, "bytes after a response that closes");
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

/* connection: the event loops and the connections' lives (connection.h). */
#include "connection.h"

#include "buf.h"
#include "conns.h"
#include "log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* At most this many fields are stored for the handler; more make it answer 431 anyway. */
#define MAX_FIELDS 128
/* Bytes read from a socket at a time, and of a streamed body's chunk. */
#define READ_SIZE  65536
#define CHUNK_SIZE 32768
/* Requests one connection may have answered in a row before the loop's others get a turn. */
#define TURN 16

enum state {
    STATE_HEAD,   /* waiting for a request's head */
    STATE_BODY,   /* reading its body */
    STATE_BUSY,   /* with the handler, or waiting to be woken */
    STATE_SEND,   /* writing the answer */
    STATE_LINGER, /* answered and closing: reading what the client still sends, until it stops */
};

enum timeout { TIMEOUT_NONE, TIMEOUT_IDLE, TIMEOUT_SEND };

struct loop;

struct connection {
    int fd;
    struct loop *loop;
    enum state state;
    struct sockaddr_storage peer;
    struct conns_record *record;

    /* What has arrived and no request has taken yet; NULL when nothing has. */
    char *in;
    size_t in_len, in_cap;
    size_t searched; /* of in, for the head's end without finding it */
    bool readable;   /* an edge came, and what it announced may not all have been read */
    bool rdhup;      /* the edge announced the end of the stream too */
    bool writable;
    bool peer_closed; /* the client sent its last byte */

    /* The request. */
    void *request;
    unsigned long long body_left;
    bool is_head_method;
    int minor_version;
    bool keep_alive; /* as the request asks */
    bool close_after;

    /* The answer. */
    struct buf out; /* status line and fields, or a chunk's frame */
    size_t out_sent;
    const char *body;
    size_t body_len, body_sent;
    long (*read)(void *ctx, char *out, size_t max);
    void *read_ctx;
    bool chunked, stream_done;

    /* Timeouts: the loop's list of connections with the same timeout, by deadline. */
    enum timeout timeout;
    double deadline;
    struct connection *t_prev, *t_next;
    /* Every connection of the loop, and the queues for woken and for postponed ones. */
    struct connection *all_prev, *all_next;
    struct connection *wake_next, *ready_next;
    bool ready;
};

struct timeout_list {
    struct connection *first, *last;
};

struct loop {
    pthread_t thread;
    int epoll_fd;
    int wake_fd;
    pthread_mutex_t wake_lock;
    struct connection *woken;   /* connection_wake()'s, newest first */
    struct connection *adopted; /* accepted by another loop for this one (also under wake_lock) */
    atomic_uint open;           /* connections of this loop, those adopted but not taken included */
    bool woken_here;            /* some of them by this loop's own thread, which wrote no signal */
    void *guest;                /* connection_guest's, and the tag of its descriptors */
    char guest_marker;
    struct connection *ready; /* to go on after this round: their turn ran out */
    struct connection *all;
    struct timeout_list idle, send;
    char scratch[READ_SIZE];
    char date[64];
    time_t date_second;
};

static struct connection_config config; /* a copy: the caller's may not outlive the call */
static const struct connection_config *cfg = &config;
static struct loop *loops;
static unsigned n_loops;
static int listen_fd = -1;
static unsigned port;
static atomic_bool refusing, stopping;
/* Markers for the epoll set: what is not a connection. */
static char listen_marker, wake_marker;
static _Thread_local struct loop *this_loop; /* the loop whose thread this is */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- timeouts ---- */

static struct timeout_list *list_of(struct connection *c, enum timeout t)
{
    return t == TIMEOUT_IDLE ? &c->loop->idle : &c->loop->send;
}

static void timeout_stop(struct connection *c)
{
    if (c->timeout == TIMEOUT_NONE)
        return;
    struct timeout_list *l = list_of(c, c->timeout);
    if (c->t_prev)
        c->t_prev->t_next = c->t_next;
    else
        l->first = c->t_next;
    if (c->t_next)
        c->t_next->t_prev = c->t_prev;
    else
        l->last = c->t_prev;
    c->t_prev = c->t_next = NULL;
    c->timeout = TIMEOUT_NONE;
}

/* (Re)starts c's clock: a list's timeout is the same for all, so appending keeps it in order. */
static void timeout_start(struct connection *c, enum timeout t)
{
    timeout_stop(c);
    struct timeout_list *l = list_of(c, t);
    c->timeout = t;
    c->deadline = now_s() + (t == TIMEOUT_IDLE ? cfg->idle_timeout_s : cfg->connection_timeout_s);
    c->t_prev = l->last;
    if (l->last)
        l->last->t_next = c;
    else
        l->first = c;
    l->last = c;
}

/* ---- buffers ---- */

static void in_append(struct connection *c, const char *data, size_t n)
{
    if (c->in_len + n + 1 > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 1024;
        while (cap < c->in_len + n + 1)
            cap *= 2;
        c->in = realloc(c->in, cap);
        if (!c->in)
            abort();
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, data, n);
    c->in_len += n;
}

static void in_consume(struct connection *c, size_t n)
{
    c->in_len -= n;
    if (c->in_len == 0) { /* a connection that waits holds no buffer */
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    } else {
        memmove(c->in, c->in + n, c->in_len);
    }
    c->searched = 0;
}

/* Reads what the socket has, up to READ_SIZE; false when nothing more can come now (EAGAIN,
 * the end of the stream, an error). */
static bool read_some(struct connection *c)
{
    if (!c->readable || c->peer_closed)
        return false;
    ssize_t n = recv(c->fd, c->loop->scratch, sizeof c->loop->scratch, 0);
    if (n > 0) {
        in_append(c, c->loop->scratch, (size_t)n);
        /* Less than asked for: the socket is empty now, and what comes later makes another
         * edge. This saves a recv that would say EAGAIN on every request; not when the end of
         * the stream was announced, which no later edge repeats (nginx reads the same way). */
        if ((size_t)n < sizeof c->loop->scratch && !c->rdhup)
            c->readable = false;
        timeout_start(c, TIMEOUT_IDLE); /* the client sends: its clock starts again */
        return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        c->readable = false;
        return false;
    }
    if (n < 0 && errno == EINTR)
        return true;
    c->peer_closed = true; /* the end, or a reset: nothing more comes */
    return false;
}

/* ---- closing ---- */

static void connection_free(struct connection *c)
{
    struct loop *l = c->loop;
    if (c->ready) /* rare: only a connection whose turn ran out is in this list */
        for (struct connection **p = &l->ready; *p; p = &(*p)->ready_next)
            if (*p == c) {
                *p = c->ready_next;
                break;
            }
    if (c->request)
        cfg->handler->end(c->request, false);
    c->request = NULL;
    timeout_stop(c);
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        l->all = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    conns_closed(c->record); /* before the descriptor can be another connection's */
    atomic_fetch_sub(&l->open, 1);
    /* Out of the epoll set before the close: a close takes it out only when no other reference
     * to the socket is left, and an event for a freed connection must never come. */
    epoll_ctl(l->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    buf_free(&c->out);
    free(c);
}

/* A connection closed with bytes from the client unread is reset, and a reset can reach the
 * client before the answer it was sent, which is then lost: a 413, 414 or 431 above all, whose
 * client is still sending. So the connection first ends its own side and reads what still comes,
 * until the client closes or idle_timeout_s is over (nginx's lingering close). */
static void linger(struct connection *c)
{
    shutdown(c->fd, SHUT_WR);
    c->state = STATE_LINGER;
    timeout_start(c, TIMEOUT_IDLE);
}

/* Reads and drops; false once the client has closed or failed. */
static bool drain(struct connection *c)
{
    while (c->readable) {
        ssize_t n = recv(c->fd, c->loop->scratch, sizeof c->loop->scratch, 0);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->readable = false;
            return true;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return false;
    }
    return true;
}

/* ---- answering ---- */

static const char *date_field(struct loop *l)
{
    time_t now = time(NULL);
    if (now != l->date_second) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(l->date, sizeof l->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        l->date_second = now;
    }
    return l->date;
}

/* The reason phrase of a status below 400; the handler names the others (its problem's title). */
static const char *reason_below_400(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    default: return "";
    }
}

static bool has_no_body(int status)
{
    return status < 200 || status == 204 || status == 304;
}

void connection_answer(struct connection *c, const struct connection_answer *a)
{
    struct buf *o = &c->out;
    c->close_after = a->close || !c->keep_alive || c->state == STATE_HEAD ||
                     (c->state == STATE_BODY && c->body_left > 0);
    buf_printf(o, "HTTP/1.1 %d %s\r\n", a->status,
               a->status < 400 ? reason_below_400(a->status) : a->reason);
    buf_puts(o, date_field(c->loop));
    buf_append(o, a->fields, a->fields_len);
    bool bodiless = has_no_body(a->status);
    c->read = bodiless ? NULL : a->read;
    c->read_ctx = a->read_ctx;
    c->body = NULL;
    c->body_len = c->body_sent = 0;
    c->stream_done = !c->read;
    c->chunked = false;
    if (c->read) {
        if (c->minor_version >= 1) {
            c->chunked = true;
            buf_puts(o, "Transfer-Encoding: chunked\r\n");
        } else {
            c->close_after = true; /* HTTP/1.0: the end of the body is the end of the stream */
        }
        if (c->is_head_method)
            c->stream_done = true;
    } else if (!bodiless) {
        buf_printf(o, "Content-Length: %zu\r\n", a->body_len);
        if (!c->is_head_method) {
            c->body = a->body;
            c->body_len = a->body_len;
        }
    }
    if (c->close_after)
        buf_puts(o, "Connection: close\r\n");
    else if (c->minor_version == 0)
        buf_puts(o, "Connection: keep-alive\r\n");
    buf_puts(o, "\r\n");
    c->state = STATE_SEND;
}

void connection_continue(struct connection *c)
{
    /* Sent now, before the body is read; what the socket does not take goes before the
     * answer. */
    buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
    ssize_t n = send(c->fd, c->out.data + c->out_sent, c->out.len - c->out_sent, MSG_NOSIGNAL);
    if (n > 0)
        c->out_sent += (size_t)n;
}

/* The next piece of a streamed body into c->out, framed as a chunk when chunked. */
static bool next_piece(struct connection *c)
{
    buf_reset(&c->out);
    c->out_sent = 0;
    size_t frame = c->chunked ? 16 : 0;
    buf_reserve(&c->out, frame + CHUNK_SIZE + 8);
    long n = c->read(c->read_ctx, c->out.data + frame, CHUNK_SIZE);
    if (n < 0)
        return false;
    if (n == 0) {
        c->stream_done = true;
        if (c->chunked)
            buf_puts(&c->out, "0\r\n\r\n");
        return true;
    }
    if (!c->chunked) {
        memmove(c->out.data, c->out.data + frame, (size_t)n);
        c->out.len = (size_t)n;
        return true;
    }
    char size[16];
    int k = snprintf(size, sizeof size, "%lx\r\n", n);
    memcpy(c->out.data + frame - (size_t)k, size, (size_t)k);
    memmove(c->out.data, c->out.data + frame - (size_t)k, (size_t)k + (size_t)n);
    c->out.len = (size_t)k + (size_t)n;
    buf_append(&c->out, "\r\n", 2);
    return true;
}

enum progress { PROGRESS_DONE, PROGRESS_WAIT, PROGRESS_FAILED };

/* Writes what the answer has left; DONE once all of it is with the kernel. */
static enum progress write_some(struct connection *c)
{
    for (;;) {
        if (c->out_sent == c->out.len && c->body_sent == c->body_len) {
            if (c->stream_done)
                return PROGRESS_DONE;
            if (!next_piece(c))
                return PROGRESS_FAILED;
            continue;
        }
        if (!c->writable)
            return PROGRESS_WAIT;
        struct iovec v[2] = {{c->out.data + c->out_sent, c->out.len - c->out_sent}};
        if (c->body) /* sendmsg only reads it; iovec has no const */
            v[1] = (struct iovec){(void *)(uintptr_t)(c->body + c->body_sent),
                                  c->body_len - c->body_sent};
        struct msghdr m = {.msg_iov = v, .msg_iovlen = c->body ? 2 : 1};
        ssize_t n = sendmsg(c->fd, &m, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->writable = false;
            return PROGRESS_WAIT;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return PROGRESS_FAILED;
        size_t sent = (size_t)n, head = v[0].iov_len < sent ? v[0].iov_len : sent;
        c->out_sent += head;
        c->body_sent += sent - head;
    }
}

/* ---- requests ---- */

static bool token_in_list(const char *list, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = list; *p;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, ",");
        size_t trimmed = len;
        while (trimmed > 0 && (p[trimmed - 1] == ' ' || p[trimmed - 1] == '\t'))
            trimmed--;
        if (trimmed == n && strncasecmp(p, token, n) == 0)
            return true;
        p += len;
    }
    return false;
}

static void note_request(struct connection *c, const struct http1_head *h)
{
    c->minor_version = h->minor_version;
    c->is_head_method = strcmp(h->method, "HEAD") == 0;
    bool close = false, keep = false;
    size_t stored = h->n_fields < MAX_FIELDS ? h->n_fields : MAX_FIELDS;
    for (size_t i = 0; i < stored; i++)
        if (strcasecmp(h->fields[i].name, "Connection") == 0) {
            close |= token_in_list(h->fields[i].value, "close");
            keep |= token_in_list(h->fields[i].value, "keep-alive");
        }
    c->keep_alive = h->minor_version >= 1 ? !close : keep && !close;
}

static void refuse(struct connection *c, int status, const char *why)
{
    c->keep_alive = false;
    c->minor_version = 1;
    c->is_head_method = false;
    conns_busy(c->record);
    c->request = cfg->handler->refuse(c, status, why);
    c->close_after = true;
}

/* Takes a request's head from c->in; false when it needs more bytes than have come. */
static bool take_head(struct connection *c)
{
    /* Empty lines before a request line are ignored (RFC 9112 §2.2). */
    size_t blank = 0;
    while (blank < c->in_len && (c->in[blank] == '\r' || c->in[blank] == '\n'))
        blank++;
    if (blank)
        in_consume(c, blank);
    /* A head longer than cfg->max_head is not read further: 414 while its request line has not
     * ended, else 431. The handler's own limits are below it, and answered in its words. */
    size_t end = c->in_len ? http1_head_end(c->in, c->in_len, c->searched) : 0;
    if (!end) {
        c->searched = c->in_len;
        if (c->in_len <= cfg->max_head)
            return false;
        if (!http1_line_end(c->in, c->in_len))
            refuse(c, 414, "The request line is longer than the server reads.");
        else
            refuse(c, 431, "The request head is longer than the server reads.");
        return true;
    }
    if (end > cfg->max_head) {
        refuse(c, http1_line_end(c->in, c->in_len) > cfg->max_head ? 414 : 431,
               "The request head is longer than the server reads.");
        return true;
    }
    char *head = c->in;
    size_t rest = c->in_len - end;
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    c->searched = 0;
    if (rest)
        in_append(c, head + end, rest);
    struct http1_field fields[MAX_FIELDS];
    struct http1_head h;
    enum http1_result r = http1_parse_head(head, end, fields, MAX_FIELDS, &h);
    if (r != HTTP1_OK) {
        free(head);
        if (r == HTTP1_BAD_VERSION)
            refuse(c, 505, "This server speaks HTTP/1.1 on this port.");
        else if (r == HTTP1_BAD_REQUEST_LINE)
            refuse(c, 400, "The request line is not METHOD TARGET HTTP/1.1.");
        else
            refuse(c, 400, "A header line is malformed: no colon, folded, or with a NUL or CR.");
        return true;
    }
    if (h.n_fields > MAX_FIELDS)
        h.n_fields = MAX_FIELDS; /* counted beyond: the handler's limit is below */
    note_request(c, &h);
    c->body_left = 0;
    c->state = STATE_BODY;
    conns_busy(c->record);
    c->request = cfg->handler->begin(c, head, &h);
    return true;
}

void connection_expect_body(struct connection *c, unsigned long long length)
{
    c->body_left = length;
}

enum body_progress { BODY_IN, BODY_MORE, BODY_ENDLESS };

/* Feeds the body from c->in. */
static enum body_progress take_body(struct connection *c)
{
    if (c->body_left > 0 && c->in_len > 0) {
        size_t n = c->body_left < c->in_len ? (size_t)c->body_left : c->in_len;
        bool go_on = cfg->handler->body(c->request, c->in, n);
        c->body_left -= n;
        in_consume(c, n);
        if (!go_on)
            return BODY_ENDLESS;
    }
    return c->body_left == 0 ? BODY_IN : BODY_MORE;
}

static void ready_later(struct connection *c)
{
    if (c->ready)
        return;
    c->ready = true;
    c->ready_next = c->loop->ready;
    c->loop->ready = c;
}

/* Takes c as far as it can go now. Runs the handler; may free c. */
static void run(struct connection *c)
{
    unsigned answered = 0;
    for (;;) {
        switch (c->state) {
        case STATE_HEAD:
            if (answered == TURN) {
                ready_later(c);
                return;
            }
            if (!take_head(c)) {
                if (read_some(c))
                    continue;
                if (c->peer_closed) { /* nothing, or part of a head: the client left */
                    connection_free(c);
                    return;
                }
                return;
            }
            continue;
        case STATE_BODY:
            switch (take_body(c)) {
            case BODY_ENDLESS: connection_free(c); return;
            case BODY_MORE:
                if (read_some(c))
                    continue;
                if (c->peer_closed) {
                    connection_free(c);
                    return;
                }
                return;
            case BODY_IN: break;
            }
            c->state = STATE_BUSY;
            timeout_stop(c);
            cfg->handler->go(c->request);
            continue;
        case STATE_BUSY: return; /* until connection_wake() */
        case STATE_LINGER:
            if (!drain(c))
                connection_free(c);
            return;
        case STATE_SEND:
            switch (write_some(c)) {
            case PROGRESS_WAIT: timeout_start(c, TIMEOUT_SEND); return;
            case PROGRESS_FAILED: connection_free(c); return;
            case PROGRESS_DONE: break;
            }
            cfg->handler->end(c->request, true);
            c->request = NULL;
            answered++;
            if (c->peer_closed && (c->close_after || c->in_len == 0)) {
                connection_free(c);
                return;
            }
            if (c->close_after) {
                linger(c);
                continue;
            }
            buf_free(&c->out);
            c->out_sent = 0;
            c->body = NULL;
            c->body_len = c->body_sent = 0;
            c->state = STATE_HEAD;
            conns_waiting(c->record);
            timeout_start(c, TIMEOUT_IDLE); /* waiting for the next request */
            continue;
        }
    }
}

/* Puts c on list, one of l's lists for l's thread to take (woken or adopted), and lets l know. */
static void hand_over(struct loop *l, struct connection **list, struct connection *c)
{
    pthread_mutex_lock(&l->wake_lock);
    bool first = !l->woken && !l->adopted;
    c->wake_next = *list;
    *list = c;
    pthread_mutex_unlock(&l->wake_lock);
    if (l == this_loop) { /* e.g. a result of the pipe this loop hosts: taken after this round */
        l->woken_here = true;
    } else if (first) { /* the loop takes both lists whole: one signal serves them all */
        uint64_t one = 1;
        ssize_t ignored = write(l->wake_fd, &one, sizeof one);
        (void)ignored;
    }
}

void connection_wake(struct connection *c)
{
    hand_over(c->loop, &c->loop->woken, c);
}

const struct sockaddr *connection_peer(const struct connection *c)
{
    return (const struct sockaddr *)&c->peer;
}

int connection_minor_version(const struct connection *c)
{
    return c->minor_version;
}

/* ---- the loop ---- */

/* On l's thread: c, accepted by l or for it, is served by l from now on. */
static void adopt(struct loop *l, struct connection *c)
{
    c->all_next = l->all;
    if (l->all)
        l->all->all_prev = c;
    l->all = c;
    timeout_start(c, TIMEOUT_IDLE);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        log_event("warning", "http: epoll_ctl: %s", strerror(errno));
        connection_free(c);
    }
}

/* The loop with the fewest connections, l on a tie. The kernel wakes whichever loop waits to
 * accept, and one wake-up often brings many connections: left to that, a loop may serve most of
 * them, and the database pipe it hosts (whose backend serves its requests only) would carry
 * most of the load while the others idle. */
static struct loop *least_loaded(struct loop *l)
{
    struct loop *best = l;
    unsigned fewest = atomic_load(&l->open);
    for (unsigned i = 0; i < n_loops; i++) {
        unsigned open = atomic_load(&loops[i].open);
        if (open < fewest) {
            fewest = open;
            best = &loops[i];
        }
    }
    return best;
}

static void accept_all(struct loop *l)
{
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int fd = accept4(listen_fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED && errno != EINTR)
                log_event("warning", "http: accept: %s", strerror(errno));
            if (errno == ECONNABORTED || errno == EINTR)
                continue;
            return;
        }
        if (atomic_load(&refusing)) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct connection *c = xcalloc(1, sizeof *c);
        c->fd = fd;
        c->loop = least_loaded(l);
        c->state = STATE_HEAD;
        c->writable = true;
        memcpy(&c->peer, &peer, len < sizeof peer ? len : sizeof peer);
        atomic_fetch_add(&c->loop->open, 1);
        /* conns may shut the socket down at once to keep within the limits: the loop then
         * reads its end and closes it. */
        c->record = conns_opened(fd, (struct sockaddr *)&peer);
        if (c->loop == l)
            adopt(l, c);
        else
            hand_over(c->loop, &c->loop->adopted, c);
    }
}

/* signalled: the wake signal came, and is read here. */
static void take_woken(struct loop *l, bool signalled)
{
    if (signalled) {
        uint64_t count;
        ssize_t ignored = read(l->wake_fd, &count, sizeof count);
        (void)ignored;
    }
    l->woken_here = false;
    pthread_mutex_lock(&l->wake_lock);
    struct connection *c = l->woken, *adopted = l->adopted;
    l->woken = NULL;
    l->adopted = NULL;
    pthread_mutex_unlock(&l->wake_lock);
    while (adopted) {
        struct connection *next = adopted->wake_next;
        adopted->wake_next = NULL;
        adopt(l, adopted);
        adopted = next;
    }
    /* Newest first in the list: turn it round, so that they go on in the order woken. */
    struct connection *in_order = NULL;
    while (c) {
        struct connection *next = c->wake_next;
        c->wake_next = in_order;
        in_order = c;
        c = next;
    }
    for (c = in_order; c;) {
        struct connection *next = c->wake_next;
        c->wake_next = NULL;
        cfg->handler->go(c->request);
        run(c);
        c = next;
    }
}

static void take_ready(struct loop *l)
{
    struct connection *c = l->ready;
    l->ready = NULL;
    while (c) {
        struct connection *next = c->ready_next;
        c->ready = false;
        c->ready_next = NULL;
        run(c);
        c = next;
    }
}

static void expire(struct timeout_list *list, double now)
{
    while (list->first && list->first->deadline <= now)
        connection_free(list->first);
}

static void *loop_main(void *arg)
{
    struct loop *l = arg;
    this_loop = l;
    const struct connection_guest *guest = cfg->guest;
    if (guest)
        l->guest = guest->attach((unsigned)(l - loops), l->epoll_fd, &l->guest_marker);
    struct epoll_event events[64];
    while (!atomic_load(&stopping)) {
        /* The guest first: it sends what this round's requests submitted to it, and may answer
         * some at once (the database down), which wakes them here. */
        int guest_wait = l->guest ? guest->before_wait(l->guest) : -1;
        int timeout = l->ready || l->woken_here ? 0 : 1000;
        if (guest_wait >= 0 && guest_wait < timeout)
            timeout = guest_wait;
        int n = epoll_wait(l->epoll_fd, events, 64, timeout);
        if (n < 0 && errno != EINTR) {
            log_event("error", "http: epoll_wait: %s", strerror(errno));
            break;
        }
        bool woken = false;
        for (int i = 0; i < n; i++) {
            void *p = events[i].data.ptr;
            if (p == &listen_marker) {
                accept_all(l);
            } else if (p == &wake_marker) {
                woken = true; /* after this round, which may still name a connection it frees */
            } else if (p == &l->guest_marker) {
                guest->event(l->guest); /* what it wakes goes on after this round, as above */
            } else {
                struct connection *c = p;
                uint32_t e = events[i].events;
                if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                    c->readable = true;
                if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                    c->rdhup = true;
                if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
                    c->writable = true;
                if (c->state != STATE_BUSY)
                    run(c);
            }
        }
        if (woken || l->woken_here)
            take_woken(l, woken);
        take_ready(l);
        double now = now_s();
        expire(&l->idle, now);
        expire(&l->send, now);
    }
    if (l->guest)
        guest->detach(l->guest);
    return NULL;
}

/* ---- start and stop ---- */

static int listen_on(const struct sockaddr *address, socklen_t len)
{
    int fd = socket(address->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, address, len) < 0 || listen(fd, 1024) < 0) {
        close(fd);
        return -1;
    }
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &bound_len);
    port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                             : ((struct sockaddr_in *)&bound)->sin_port);
    return fd;
}

int connection_start(const struct connection_config *given)
{
    config = *given;
    atomic_store(&refusing, false);
    atomic_store(&stopping, false);
    listen_fd = listen_on(cfg->address, cfg->address_len);
    if (listen_fd < 0) {
        log_event("error", "http: cannot listen: %s", strerror(errno));
        return -1;
    }
    n_loops = cfg->threads ? cfg->threads : 1;
    loops = xcalloc(n_loops, sizeof *loops);
    for (unsigned i = 0; i < n_loops; i++) {
        struct loop *l = &loops[i];
        pthread_mutex_init(&l->wake_lock, NULL);
        l->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        struct epoll_event on_listen = {.events = EPOLLIN | EPOLLEXCLUSIVE,
                                        .data.ptr = &listen_marker};
        struct epoll_event on_wake = {.events = EPOLLIN, .data.ptr = &wake_marker};
        if (l->epoll_fd < 0 || l->wake_fd < 0 ||
            epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, listen_fd, &on_listen) < 0 ||
            epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, l->wake_fd, &on_wake) < 0 ||
            pthread_create(&l->thread, NULL, loop_main, l) != 0) {
            log_event("error", "http: cannot start an event loop: %s", strerror(errno));
            abort(); /* at start only: nothing to serve with */
        }
    }
    return 0;
}

void connection_refuse_new(void)
{
    atomic_store(&refusing, true);
}

void connection_stop(void)
{
    if (!loops)
        return;
    atomic_store(&stopping, true);
    for (unsigned i = 0; i < n_loops; i++) {
        uint64_t one = 1;
        ssize_t ignored = write(loops[i].wake_fd, &one, sizeof one);
        (void)ignored;
    }
    for (unsigned i = 0; i < n_loops; i++) {
        struct loop *l = &loops[i];
        pthread_join(l->thread, NULL);
        while (l->adopted) {
            struct connection *c = l->adopted;
            l->adopted = c->wake_next;
            adopt(l, c); /* to be freed as the others */
        }
        while (l->all)
            connection_free(l->all);
        close(l->epoll_fd);
        close(l->wake_fd);
        pthread_mutex_destroy(&l->wake_lock);
    }
    close(listen_fd);
    listen_fd = -1;
    port = 0;
    free(loops);
    loops = NULL;
}

unsigned connection_port(void)
{
    return port;
}

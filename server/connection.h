/* connection: client connections, served by a few event-loop threads (HTTP/1.1, RFC 9112).
 *
 * Each loop thread accepts, reads, answers and closes its own connections through one epoll
 * set, edge-triggered, so that a connection is registered once and never again. A loop that
 * accepts hands each new connection to the loop with the fewest, so that the loops (and what
 * each hosts, connection_guest) carry about the same share however the kernel's wake-ups fall.
 * A connection has a life of states:
 *
 *   head    waiting for (the rest of) a request's head: idle_timeout_s, then it is closed;
 *   body    reading the body that Content-Length announced: idle_timeout_s between bytes;
 *   busy    the request is with its handler (connection_handler.go), or waits, holding no
 *           thread, until connection_wake() from any thread; no timeout, since what it waits for
 *           (the database, the audit log) has timeouts of its own;
 *   send    the answer is being written: connection_timeout_s for the client to read it; then
 *           the next request, or the close.
 *
 * Memory: a connection that waits for a request holds only its record here and in conns.h; the
 * bytes it receives are kept only until a request takes them. A request's head becomes the
 * request's (its handler frees it with the request), so that its fields stay valid without a copy.
 *
 * What cannot be a request (a malformed or endless head, HTTP/2 on an HTTP/1.1 connection) is
 * answered through connection_handler.refuse, so that every answer leaves through the same code;
 * the connection is closed after it. A head that parses goes to connection_handler.begin; what
 * its fields mean is the handler's to judge.
 *
 * Pipelined requests are answered one after another, in order. A client that half-closes after
 * its request still gets the answer. Nothing here blocks except the handler's own calls. */
#ifndef WERKLAB_CONNECTION_H
#define WERKLAB_CONNECTION_H

#include "http1.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct connection;

/* What a request is to the connection: an opaque pointer the handler returned. */
struct connection_handler {
    /* A head is in: head_buf (malloc'd, head_len bytes and parsed into head) is the request's
     * from now on. Returns the request. The handler tells the connection the body's length
     * (connection_expect_body), or answers at once (a refused head). */
    void *(*begin)(struct connection *c, char *head_buf, const struct http1_head *head);
    /* What arrived of the bytes that cannot be a request: answered with status, why in words. */
    void *(*refuse)(struct connection *c, int status, const char *why);
    /* Body bytes as they arrive; false closes the connection (a body that would never end). */
    bool (*body)(void *request, const char *data, size_t n);
    /* The request is in (and each time after connection_wake()): go on. Answers with
     * connection_answer(), or leaves the request waiting for connection_wake(). */
    void (*go)(void *request);
    /* The request is over: sent is whether its whole answer went to the client. It is not
     * touched here after this call. */
    void (*end)(void *request, bool sent);
};

/* An answer: the status line and the fields are written here; fields are the handler's
 * "Name: value\r\n" lines. A body is either the bytes (owned by the request until its end) or
 * pulled through read (0 at its end, -1 on an error, which closes the connection). */
struct connection_answer {
    int status;
    const char *reason; /* of a status from 400 on; the connection knows those below */
    const char *fields;
    size_t fields_len;
    const char *body;
    size_t body_len;
    long (*read)(void *ctx, char *out, size_t max);
    void *read_ctx;
    bool close; /* close the connection after it */
};

/* What else each loop serves in its epoll set besides connections: the database pipe it hosts
 * (dbpipe.h), so that what a request waits for is sent and answered on the request's thread. */
struct connection_guest {
    /* On loop i's thread as it starts: the guest registers its descriptors in epoll_fd with tag
     * as their data; returns it, or NULL when loop i has none. */
    void *(*attach)(unsigned i, int epoll_fd, void *tag);
    /* A descriptor it registered is ready. */
    void (*event)(void *guest);
    /* Before the loop waits: the longest wait for the guest's sake, in ms (-1: no limit). */
    int (*before_wait)(void *guest);
    /* On the loop's thread as it ends. */
    void (*detach)(void *guest);
};

struct connection_config {
    const struct sockaddr *address;
    socklen_t address_len;
    unsigned threads;
    unsigned idle_timeout_s;
    unsigned connection_timeout_s;
    size_t max_head; /* bytes of a head read at most: beyond, 414 or 431 (refuse) */
    const struct connection_handler *handler;
    const struct connection_guest *guest; /* NULL: none */
};

/* Listens and starts the loop threads; 0, or -1 with a message logged. */
int connection_start(const struct connection_config *cfg);
/* New connections are closed once accepted, from now on. */
void connection_refuse_new(void);
/* Stops the loops and closes every connection, ending the requests still on them; the handler
 * must wake no request after this is called. */
void connection_stop(void);
/* The port listened on; 0 when not listening. */
unsigned connection_port(void);

/* The body announced: length bytes (0: none). The request is told through handler.body. */
void connection_expect_body(struct connection *c, unsigned long long length);
/* Sends "100 Continue" (RFC 9110 §10.1.1) before the body is read. */
void connection_continue(struct connection *c);
/* Answers the request on c. From the handler's thread only, once per request. */
void connection_answer(struct connection *c, const struct connection_answer *a);
/* From any thread, once for each time go() returned without answering: go() runs again on the
 * connection's thread (after the current event, when called on that thread). */
void connection_wake(struct connection *c);

/* The client's address (the TCP peer). */
const struct sockaddr *connection_peer(const struct connection *c);
/* HTTP/1.minor of the request on c. */
int connection_minor_version(const struct connection *c);

#endif

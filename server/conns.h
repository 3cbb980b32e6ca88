/* conns: the client connections that are open, which of them wait for a request, and room for
 * a new one.
 *
 * libmicrohttpd keeps an idle keep-alive connection until its timeout and refuses (or leaves in
 * the listen backlog) a new one when it is at its limit, so a client that holds many idle
 * connections locks every other client out. conns keeps a record of each connection, from
 * libmicrohttpd's "started" to its "closed" notification, and knows whether it waits for a
 * request (fresh, or kept alive after one) and since when. When a new connection makes more than
 * the limit in total, or from its address, the connection of that scope that has waited longest
 * is closed to make room, as nginx and h2o do; when none of them waits, the new connection is
 * closed instead. A connection busy with a request is never closed here.
 *
 * A connection is closed by shutting its socket down; libmicrohttpd sees the end of the stream
 * and cleans up by itself, on the thread that owns the connection. libmicrohttpd must therefore
 * allow a few more connections than the limit (conns_daemon_limit), or it would refuse the new
 * connection before conns sees it; and its own per-address limit must be off, which refuses
 * instead of making room.
 *
 * The per-address limit counts the TCP peer, also behind a trusted proxy (WERKLAB_TRUSTED_PROXIES,
 * proxies.h), where it counts the proxy's connections: X-Forwarded-For is a request's, known only
 * once its headers are in, and one kept-alive connection from a proxy carries the requests of
 * many clients, one after another. A connection is opened (and room made for it) before any
 * request, so the only address it has is its peer's; behind a proxy the limit must leave room
 * for the proxy's upstream connections (nginx's keepalive and its peak of requests at once).
 *
 * Every function may be called from any thread. A socket is shut down only while its record
 * exists, under conns' lock, and libmicrohttpd 0.9.75 reports "closed" (which removes the record
 * under the same lock) before it closes the socket: a descriptor that was closed and reused for
 * another connection is never touched. */
#ifndef WERKLAB_CONNS_H
#define WERKLAB_CONNS_H

#include "buf.h"

#include <microhttpd.h>

/* Limits: connections at once in total, and from one client address. abandoned_request frees a
 * request that libmicrohttpd let go of without reporting it complete: libmicrohttpd 0.9.75 does
 * so when it runs out of a connection's memory after the request line (its own 431, then the
 * connection closes without the completion callback, or the next request line comes). It is
 * called on the connection's own thread, when the connection closes or its next request begins. */
void conns_init(unsigned limit, unsigned per_address_limit,
                void (*abandoned_request)(void *request));
/* The connection limit to give libmicrohttpd: the limit and room for the connections that
 * arrive while others are being closed for them. */
unsigned conns_daemon_limit(unsigned threads);

/* libmicrohttpd's MHD_OPTION_NOTIFY_CONNECTION callback. */
void conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                  enum MHD_ConnectionNotificationCode code);
/* A request has begun on conn (its request line is in): conn is busy until conns_request_done,
 * and request is conn's until then. */
void conns_request_started(struct MHD_Connection *conn, void *request);
/* The request on conn has ended: conn waits for the next one (or is about to close). */
void conns_request_done(struct MHD_Connection *conn);

/* Prometheus lines: connections open and waiting, and how many were closed to make room. */
void conns_render(struct buf *out);

#endif

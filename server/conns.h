/* conns: the client connections that are open, which of them wait for a request, and room for
 * a new one.
 *
 * A client that holds many idle connections must not lock every other client out. conns keeps
 * a record of each connection from its accept to its close, and knows whether it waits for a
 * request (fresh, or kept alive after one) and since when. When a new connection makes more than
 * the limit in total, or from its address, the connection of that scope that has waited longest
 * is closed to make room, as nginx and h2o do; when none of them waits, the new connection is
 * closed instead. A connection busy with a request is never closed here.
 *
 * A connection is closed by shutting its socket down; its event loop (connection.h) then reads
 * the end of the stream and closes it on its own thread.
 *
 * The per-address limit counts the TCP peer, also behind a trusted proxy (WERKLAB_TRUSTED_PROXIES,
 * proxies.h), where it counts the proxy's connections: X-Forwarded-For is a request's, known only
 * once its headers are in, and one kept-alive connection from a proxy carries the requests of
 * many clients, one after another. A connection is opened (and room made for it) before any
 * request, so the only address it has is its peer's; behind a proxy the limit must leave room
 * for the proxy's upstream connections (nginx's keepalive and its peak of requests at once).
 *
 * Every function may be called from any thread. A socket is shut down only while its record
 * exists, under conns' lock, and the record is removed (conns_closed) before the socket is
 * closed: a descriptor that was closed and reused for another connection is never touched. */
#ifndef WERKLAB_CONNS_H
#define WERKLAB_CONNS_H

#include "buf.h"

#include <sys/socket.h>

struct conns_record;

/* Limits: connections at once in total, and from one client address. */
void conns_init(unsigned limit, unsigned per_address_limit);

/* A connection was accepted on fd from peer: its record, waiting for a request. Its socket may
 * have been shut down at once, when there was no room for it. */
struct conns_record *conns_opened(int fd, const struct sockaddr *peer);
/* A request has begun on the connection: it is busy until conns_waiting(). */
void conns_busy(struct conns_record *r);
/* Its request has ended: it waits for the next one. */
void conns_waiting(struct conns_record *r);
/* The connection is about to be closed: the record is freed. */
void conns_closed(struct conns_record *r);

/* Prometheus lines: connections open and waiting, and how many were closed to make room. */
void conns_render(struct buf *out);

#endif

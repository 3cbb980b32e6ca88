/* dbpipe: statements run for requests that wait without holding a worker thread.
 *
 * With one blocking connection per worker, every request costs a round trip in which the worker
 * and the PostgreSQL backend take turns sleeping: on two cores most of the time went to waking
 * them. Here a few threads of their own each keep one connection in libpq's pipeline mode: they
 * send whatever statements have queued up since the last batch in one write, with one Sync, and
 * hand each result to its caller as it arrives, so that one wake-up on either side serves many
 * requests.
 *
 * Statements are prepared on first use on each connection, as in db, and the least recently used
 * are deallocated when a connection holds too many (prepared.h). Between two Syncs the
 * statements of a batch share an implicit transaction, and one that fails aborts the rest of
 * its batch: those are sent again in the next one. So dbpipe_submit() is for single statements
 * that read (no transaction of the caller's, no effect to be rolled back); a slow statement
 * delays the ones behind it on its connection, so it is for short ones too. A write that is one
 * statement goes to pipes of its own (dbpipe_submit_write()), each alone in its segment.
 *
 * A connection that fails fails what it had in hand with DB_UNAVAILABLE and is made again by its
 * thread as soon as the back-off allows, whether or not statements wait for it; meanwhile
 * statements fail at once, as in db. A server that closes an idle connection is noticed at once:
 * the thread watches its socket.
 *
 * The pipes for reads from the primary can be hosted by the server's event loops instead
 * (dbpipe_host()): a loop thread then sends the reads it submits itself on its own connection,
 * without a lock, a wake-up or a hand-off to another thread, in one write before it waits, and
 * answers them on the same thread when their results arrive; and there are as many backends
 * for reads as loops, so that a list page on one does not hold up the reads of the others. A
 * hosted pipe connects again without blocking its loop (PQconnectPoll()). */
#ifndef WERKLAB_DBPIPE_H
#define WERKLAB_DBPIPE_H

#include "db.h"

#include <stdbool.h>

#define DBPIPE_MAX_PARAMS      64 /* a list page's statement, a write with its audit entry */
#define DBPIPE_MAX_CONNECTIONS 16

/* Called on a pipeline thread (or, after dbpipe_stop(), on the caller's) with the result; r is
 * the callee's to db_clear(). */
typedef void (*dbpipe_done)(void *ctx, struct db_result *r);

/* Starts the pipes (after db_configure()): `readers` for reads from the primary (and as many
 * from each replica), the first `hosted` of those for event loops to host, the others with
 * threads of their own, and `writers` for writes (each at most DBPIPE_MAX_CONNECTIONS); waits
 * until each has tried to connect once (at most the connect timeout). Returns 0, or -1 with a
 * message logged. */
int dbpipe_start(unsigned readers, unsigned hosted, unsigned writers);
/* True between dbpipe_start() with readers and dbpipe_stop(). */
bool dbpipe_running(void);
/* True between dbpipe_start() with writers and dbpipe_stop(). */
bool dbpipe_writing(void);
/* The pipes' connections now, into out (at most max); returns how many were written. */
size_t dbpipe_connections(struct metrics_connection *out, size_t max);
/* Answers what is queued or under way with DB_UNAVAILABLE, closes the connections and ends the
 * threads; a hosted pipe does so on its host's thread, at its next event. Statements submitted
 * after it get DB_UNAVAILABLE at once. */
void dbpipe_stop(void);

/* ---- hosted pipes, driven by an event loop's thread ---- */

struct dbpipe;
/* On the loop's thread: it hosts the i-th pipe for reads from the primary (NULL: there is no
 * such hosted pipe). Its descriptors go into epoll_fd with tag as their data; the reads this
 * thread submits go to it from now on. */
struct dbpipe *dbpipe_host(unsigned i, int epoll_fd, void *tag);
/* A descriptor tagged for p is ready: results are handed out, a connect goes on. */
void dbpipe_hosted_event(struct dbpipe *p);
/* Before the loop waits: sends what was submitted since. Returns how long the loop may wait for
 * the pipe's sake, in ms (-1: no limit): until a back-off allows a connect, or a connect's end. */
int dbpipe_hosted_flush(struct dbpipe *p);
/* As the loop ends: ends the pipe if dbpipe_stop() has not, and takes it out of the epoll set. */
void dbpipe_unhost(struct dbpipe *p);

/* Queues sql with n (≤ DBPIPE_MAX_PARAMS) text parameters, copied; NULL is SQL NULL. sql itself
 * is not copied: it must live until done has run (the program's SQL lives forever). done runs
 * exactly once. */
void dbpipe_submit(const char *sql, int n, const char *const *values, dbpipe_done done, void *ctx);

/* As dbpipe_submit(), for a read of a resource or a list page, on the pipes for reads from
 * target (replicas.h: REPLICAS_PRIMARY or a replica). A read the replica cannot run (its
 * connection is down or lost, or replay cancelled it) runs on the primary instead, so it fails
 * only as a read on the primary would. Counted, by where it ran, in /metrics. */
void dbpipe_submit_to(unsigned target, const char *sql, int n, const char *const *values,
                      dbpipe_done done, void *ctx);

/* As dbpipe_submit(), for one statement that writes and is its own transaction: it is sent on a
 * pipe for writes in a segment of its own (its Sync commits it), so that no other statement's
 * failure rolls it back and a commit's WAL flush never holds reads up; done gets its result once
 * the Sync is in, that is once it is committed; with replicas configured, r->position is then the
 * primary's WAL position after the commit, asked for in the same round trip (DB_UNAVAILABLE when
 * the connection was lost before: committed or not, as for any commit whose answer is lost).
 * Several pipes for writes commit side by side, and PostgreSQL flushes their commits together. */
void dbpipe_submit_write(const char *sql, int n, const char *const *values, dbpipe_done done,
                         void *ctx);

#endif

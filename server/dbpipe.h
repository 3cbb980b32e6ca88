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
 * the thread watches its socket. */
#ifndef WERKLAB_DBPIPE_H
#define WERKLAB_DBPIPE_H

#include "db.h"

#include <stdbool.h>

#define DBPIPE_MAX_PARAMS      64 /* a list page's statement, a write with its audit entry */
#define DBPIPE_MAX_CONNECTIONS 16

/* Called on a pipeline thread (or, after dbpipe_stop(), on the caller's) with the result; r is
 * the callee's to db_clear(). */
typedef void (*dbpipe_done)(void *ctx, struct db_result *r);

/* Starts pipeline threads (after db_configure()): `readers` for reads, `writers` for writes
 * (each at most DBPIPE_MAX_CONNECTIONS), and waits until each has tried to connect once (at most
 * the connect timeout). Returns 0, or -1 with a message logged. */
int dbpipe_start(unsigned readers, unsigned writers);
/* True between dbpipe_start() with readers and dbpipe_stop(). */
bool dbpipe_running(void);
/* True between dbpipe_start() with writers and dbpipe_stop(). */
bool dbpipe_writing(void);
/* The pipes' connections now, into out (at most max); returns how many were written. */
size_t dbpipe_connections(struct metrics_connection *out, size_t max);
/* Answers what is queued or under way with DB_UNAVAILABLE, closes the connections and ends the
 * threads. Statements submitted after it get DB_UNAVAILABLE at once. */
void dbpipe_stop(void);

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

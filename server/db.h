/* db: PostgreSQL for the threads that serve requests and for the jobs thread.
 *
 * Each such thread has a connection of its own: a slot in a registry made at start, with one
 * slot per thread that will use it, connected before the server takes requests. A thread takes a
 * free slot on its first statement and keeps it until it ends. The slot's lock is its owner's
 * while it runs a statement or has a transaction open; a keeper thread looks at every other slot
 * several times a second and makes again, on its own, any connection that is broken or was never
 * made, with a back-off between attempts. So after an outage every connection is back within
 * about a second of the database accepting connections, not only those a request happens to
 * touch, and /readyz can tell whether all of them are. A thread whose connection is down gets
 * DB_UNAVAILABLE at once (503) and never waits for a connection to be made: the keeper makes it.
 *
 * Every statement is prepared on its connection on first use (least recently used ones are
 * deallocated when a connection holds too many: prepared.h) and run with parameters: SQL text
 * comes only from the program, values only from parameters. Connections run in UTC with ISO
 * dates and the configured statement_timeout.
 *
 * Errors are classified once, here, so that handlers map classes (a unique value taken, a missing
 * reference, a failed CHECK) to HTTP statuses without reading SQLSTATEs. */
#ifndef WERKLAB_DB_H
#define WERKLAB_DB_H

#include "metrics.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

enum db_status {
    DB_OK,
    DB_UNAVAILABLE,   /* no connection, lost connection, timeout, shutdown: retry later (503) */
    DB_UNIQUE,        /* 23505 */
    DB_FOREIGN_KEY,   /* 23503 */
    DB_CHECK,         /* 23514, 23502 */
    DB_EXCLUSION,     /* 23P01 */
    DB_INVALID_INPUT, /* 22xxx: a value PostgreSQL could not take */
    DB_RETRY,         /* 40001, 40P01: serialization failure or deadlock: run again */
    DB_RAISED,        /* P0001: a rule enforced in SQL refused; message says which */
    DB_ERROR,         /* anything else: a bug (500) */
};

struct db_result {
    PGresult *res; /* the result; also set for errors, for the fields below */
    enum db_status status;
    char constraint[64]; /* the violated constraint's name, when there is one */
    char message[256];   /* PostgreSQL's message: for the log, never for a client */
    /* A committed write's: the primary's WAL position once it was committed; a read's: a
     * position its database had replayed at least that far before it ran; 0: unknown. Set only
     * with read replicas configured (replicas.h), where it becomes the Consistency-Token. */
    uint64_t position;
};

/* Before any thread uses the database. */
void db_configure(const char *url, unsigned statement_timeout_ms);

/* The most slots the registry holds: one per worker thread (256 at most), the jobs thread's, a
 * few to spare. */
#define DB_MAX_SLOTS 272

/* Makes `slots` slots, starts the keeper and waits until each slot's first connection attempt
 * is over (a few milliseconds when the database is up; at most the connect timeout). A thread
 * that finds no free slot gets a new one, which the keeper connects like the others. Without
 * db_start() nothing connects: statements are DB_UNAVAILABLE. */
void db_start(unsigned slots);
/* Stops the keeper and closes the registry's connections, after the threads using them ended. */
void db_stop(void);
/* Names this thread's kind of connection in /metrics, "worker" unless named (the jobs thread
 * says "jobs"), and takes its slot now rather than at its first statement. kind must outlive the
 * process. */
void db_thread_kind(const char *kind);
/* The registry's slots now, into out (at most max); returns how many were written. */
size_t db_connections(struct metrics_connection *out, size_t max);

/* Runs sql with n text parameters (NULL pointer = SQL NULL) on this thread's connection. The
 * statement is prepared on first use on each connection. Always fills r; db_clear() it. */
enum db_status db_exec(const char *sql, int n, const char *const *values, struct db_result *r);
void db_clear(struct db_result *r);

/* Transactions on this thread's connection. They nest: inside an open transaction, begin
 * makes a savepoint, commit releases it and rollback returns to it. db_begin() may fail with
 * DB_UNAVAILABLE; db_rollback() is always safe to call, also after a failed statement or a lost
 * connection. A connection lost inside a transaction stays lost until the transaction's
 * rollback: its statements fail meanwhile, none runs outside the transaction.
 *
 * Round trips are what a write waits for, so a transaction costs none of its own: the outermost
 * BEGIN is sent with the transaction's first statement, in one round trip (libpq's pipeline
 * mode), and a transaction that ran nothing sends nothing. db_commit_after() sends its last
 * statement and the COMMIT together. */
enum db_status db_begin(void);
enum db_status db_commit(void);
/* Runs sql (as db_exec() would, its result dropped) and commits the innermost level (or releases
 * its savepoint), in one round trip. A failure of the statement leaves the level open, for the
 * request's end to roll back; a COMMIT that fails has ended the transaction. Returns the
 * statement's failure, else the commit's status (DB_RETRY: a serialization failure). */
enum db_status db_commit_after(const char *sql, int n, const char *const *values);
void db_rollback(void);
/* How many levels are open on this thread's connection: 0 outside a transaction, 1 in one, more
 * with savepoints. The request's end owns cleanup: it compares this with what it was before the
 * handler, and rolls back what the handler left open (db_rollback_to()). */
int db_transaction_depth(void);
/* Rolls back levels until depth are left open (0: all of them). */
void db_rollback_to(int depth);

/* WAL positions, for reads from replicas (replicas.h). With tracking on, the outermost commit of
 * a thread's transaction asks where the primary's WAL stands once it is committed (one more
 * round trip), for db_take_commit_position() to hand over, once. db_position_now() asks it for
 * this thread's connection now (0 when it cannot). db_lsn_parse() reads PostgreSQL's "X/Y". */
void db_track_commit_positions(bool on);
uint64_t db_take_commit_position(void);
uint64_t db_position_now(void);
bool db_lsn_parse(const char *text, uint64_t *out);
/* The statement that asks it: the insert position, past every commit record, written or not
 * (with synchronous_commit off a commit can be inserted and not yet written). */
extern const char db_position_sql[];

/* Shorthands for results. db_value() returns NULL for SQL NULL. */
int db_rows(const struct db_result *r);
const char *db_value(const struct db_result *r, int row, int col);

/* Connections open now: the registry's, the pipeline's and any other db_connect_session()'s. */
int db_open_connections(void);
/* Gives this thread's slot back (at thread end; a transaction left open is rolled back). Its
 * connection stays open for another thread; db_stop() closes it. */
void db_disconnect(void);

/* ---- for connections kept outside the workers' (dbpipe) ---- */

/* A connection with the workers' session settings, counted among the open connections, or NULL
 * (db_release() it); a result classified as db_exec() classifies it (r takes res). It blocks for
 * up to the connect timeout (2 s). Its owner makes it again when it breaks: nothing else does. */
PGconn *db_connect_session(void);
/* The same to another database than the one configured: a read replica (replicas.h). */
PGconn *db_connect_session_to(const char *url);
/* The same without waiting, for an event loop: the connection is under way, PQconnectPoll()
 * drives it on, and db_connect_ended() says how it ended; NULL when it cannot even start (counted
 * as an error). The connect timeout is the caller's to keep: libpq keeps it only when it waits. */
PGconn *db_connect_start(void);
/* The connection db_connect_start() began is made (counted among the open ones, and then
 * db_release() it) or failed (counted as an error, and finished here). */
void db_connect_ended(PGconn *pg, bool made);
void db_release(PGconn *pg);
enum db_status db_result_of(struct db_result *r, PGresult *res, PGconn *pg);

/* The wait between attempts to connect after a failure: 100 ms, doubled at each failure, at
 * most 1 s, so that a database back from an outage is found within a second. Zeroed: no wait. */
struct db_backoff {
    int64_t next_attempt_ms;
    int delay_ms;
};
bool db_backoff_allows(const struct db_backoff *b);
/* Milliseconds until the back-off allows an attempt (0: now). */
int db_backoff_wait_ms(const struct db_backoff *b);
void db_backoff_failed(struct db_backoff *b);
void db_backoff_succeeded(struct db_backoff *b);

/* A connection of its own, outside the worker pool, for migrations and commands. Returns NULL
 * and writes why to err when it cannot connect. db_close_once() it. */
PGconn *db_connect_once(const char *url, char *err, size_t err_len);
void db_close_once(PGconn *pg);

/* ---- for commands (create-key, the cursor key read before serving) ---- */

/* Gives this thread a db_connect_once() connection as its own: db_exec(), db_begin(),
 * db_commit() and the rest then run on it as on a worker's, so a command runs the statements
 * the server runs. It is outside the registry (no slot, not counted, never made again by the
 * keeper: a command that loses it gets DB_UNAVAILABLE), and its statements run unprepared, since
 * each runs once. Returns false, with why in err, when it cannot connect or this thread has a
 * connection already. db_close_command() ends it, rolling back what is left open. */
bool db_open_command(const char *url, char *err, size_t err_len);
void db_close_command(void);

#endif

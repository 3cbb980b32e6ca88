/* db: PostgreSQL for the worker threads.
 *
 * Each thread has its own connection, made on first use and made again after it fails, with a
 * back-off so that a database that is down costs a request microseconds, not a connect timeout:
 * callers then get DB_UNAVAILABLE and answer 503. Every statement is prepared once per connection,
 * on first use, and run with parameters: SQL text comes only from the program, values only from
 * parameters. Connections run in UTC with ISO dates and the configured statement_timeout.
 *
 * Errors are classified once, here, so that handlers map classes (a unique value taken, a missing
 * reference, a failed CHECK) to HTTP statuses without reading SQLSTATEs. */
#ifndef WERKLAB_DB_H
#define WERKLAB_DB_H

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
};

/* Before any thread uses the database. */
void db_configure(const char *url, unsigned statement_timeout_ms);

/* Runs sql with n text parameters (NULL pointer = SQL NULL) on this thread's connection. The
 * statement is prepared on first use on each connection. Always fills r; db_clear() it. */
enum db_status db_exec(const char *sql, int n, const char *const *values, struct db_result *r);
void db_clear(struct db_result *r);

/* Transactions on this thread's connection. They nest: inside an open transaction, begin
 * makes a savepoint, commit releases it and rollback returns to it. db_begin() may fail with
 * DB_UNAVAILABLE; db_rollback() is always safe to call, also after a failed statement or a lost
 * connection. */
enum db_status db_begin(void);
enum db_status db_commit(void);
void db_rollback(void);

/* Shorthands for results. db_value() returns NULL for SQL NULL. */
int db_rows(const struct db_result *r);
const char *db_value(const struct db_result *r, int row, int col);

/* Connections open now, over all threads. */
int db_open_connections(void);
/* Closes this thread's connection (at thread end). */
void db_disconnect(void);

/* ---- for connections kept outside the workers' (dbpipe) ---- */

/* A connection with the workers' session settings, counted among the open connections, or NULL
 * (db_release() it); a result classified as db_exec() classifies it (r takes res). */
PGconn *db_connect_session(void);
void db_release(PGconn *pg);
enum db_status db_result_of(struct db_result *r, PGresult *res, PGconn *pg);

/* The wait between attempts to connect after a failure: 100 ms, doubled at each failure, at
 * most 2 s. Zeroed: no wait. */
struct db_backoff {
    int64_t next_attempt_ms;
    int delay_ms;
};
bool db_backoff_allows(const struct db_backoff *b);
void db_backoff_failed(struct db_backoff *b);
void db_backoff_succeeded(struct db_backoff *b);

/* The statements one connection has prepared, by their SQL, in open addressing. A slot is never
 * emptied while the connection lives (db_statements_clear() when it ends), so that no search
 * stops short; it is filled to three quarters at most, and statements beyond that run
 * unprepared. */
#define DB_STATEMENT_SLOTS 512
struct db_statements {
    struct db_statement {
        uint64_t hash; /* of sql; 0: a free slot */
        char *sql;
        bool prepared; /* sent for preparing, and not known to have failed */
    } slot[DB_STATEMENT_SLOTS];
    int used;
};
/* The slot of sql, with *prepared telling whether it is prepared; else a free slot for it when
 * there is room, else -1. name gets the name sql is prepared under. */
int db_statements_find(const struct db_statements *t, const char *sql, char name[24],
                       bool *prepared);
/* Records sql in slot (found by db_statements_find()) as prepared or not; sql may be NULL when
 * the slot holds it already. */
void db_statements_set(struct db_statements *t, int slot, const char *sql, bool prepared);
void db_statements_clear(struct db_statements *t);

/* A connection of its own, outside the worker pool, for migrations and commands. Returns NULL
 * and writes why to err when it cannot connect. */
PGconn *db_connect_once(const char *url, char *err, size_t err_len);

#endif

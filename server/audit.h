/* audit: who did what. Every write and every read of personal data becomes a row in audit_log
 * (time, key or person, action, resource, id, status, request id), never with a secret or personal
 * data of anyone else: a person signed in with a token is named by the token's sub and client.
 *
 * What the log promises, by kind of request:
 *   - A successful write records its entry in its own transaction (audit_write(), through
 *     http_audit_now()): the entry is in the log exactly when the effect is committed.
 *   - Any other answer that is recorded and successful — a read that shows personal data, an
 *     export, an idempotent replay — leaves only after its entry is committed: the audit policy
 *     (audit_policy.h) hands the entry to the writer (audit_submit()) and keeps the connection
 *     suspended, holding no thread, until the writer says the entry is committed; when it is not
 *     (the database is down), the client gets 503 instead of the data. A crash therefore loses
 *     no entry of an answer sent.
 *   - A refused write (4xx, 5xx) is recorded asynchronously (audit_add()): the answer leaves at
 *     once and the entry is committed shortly after. A crash can lose the entries of the last
 *     moment; while the database is down they are kept (up to AUDIT_BACKLOG, then the oldest
 *     are dropped with an error logged) and written when it is back.
 *
 * The writers are threads (--audit-writers, default 1), each with a connection of its own,
 * sharing one queue. A free writer takes everything queued and commits it as one multi-row INSERT
 * (one transaction, one WAL flush): under load one commit holds the entries of many concurrent
 * requests — group commit. With more writers an entry arriving while one commits is taken at once
 * by another; on two cores that cost more than it saved (smaller batches, so more commits, and
 * inserts contending for the same index pages: bench/README.md), hence one by default. Nobody who
 * adds an entry ever waits for room: the queue is a list, and the only thing that waits is a
 * suspended connection. Without running writers (before audit_start(), after audit_stop(), in
 * commands) entries are written at once on the caller's connection. */
#ifndef WERKLAB_AUDIT_H
#define WERKLAB_AUDIT_H

#include "db.h"
#include "metrics.h"

#include <stdbool.h>
#include <stddef.h>

#define AUDIT_BACKLOG     100000 /* asynchronous entries kept while the database is down */
#define AUDIT_MAX_WRITERS 16     /* writer threads, each a connection */

struct audit_entry {
    char key_id[37];      /* "" for no key */
    char subject[256];    /* a person's token: its sub; "" otherwise */
    char client[128];     /* the client the token was issued to; "" otherwise */
    char action[16];      /* create, update, replace, delete, read, list, export, erase… */
    char resource[96];    /* the route, e.g. /v1/werklabs/{id}/participants/{participantId} */
    char resource_id[37]; /* "" for none */
    int status;
    char request_id[65]; /* "" when the client's id was not safe to keep */
    char at[40];         /* when the request was answered (RFC 3339); "": now */
};

/* Told, on the writer's thread, whether the entry it waits for is committed. Called exactly
 * once per audit_submit(). */
typedef void (*audit_committed)(void *ctx, bool committed);

/* Starts n writer threads (1 to AUDIT_MAX_WRITERS, after db_configure()); 0, or -1 with a
 * message logged. */
int audit_start(unsigned n);
/* Writes what is queued (one last attempt) and ends the writers. Entries added later are written
 * at once on the caller's connection. */
void audit_stop(void);

/* Queues an entry (copied) that nobody waits for. Never blocks. */
void audit_add(const struct audit_entry *e);
/* Queues an entry (copied); done(ctx, committed) runs once it is committed, or once its commit
 * failed (at once while the database is unreachable). Never blocks. */
void audit_submit(const struct audit_entry *e, audit_committed done, void *ctx);
/* Writes one entry now, on this thread's connection (inside its transaction, if one is open). */
enum db_status audit_write(const struct audit_entry *e);
/* Writes one entry into this thread's open transaction and commits it, in one round trip
 * (db_commit_after()). */
enum db_status audit_write_and_commit(const struct audit_entry *e);

/* A write and its entry in one statement, so that a write of one statement needs no transaction
 * of its own: the SQL of a statement that runs `write` (an INSERT or UPDATE ... RETURNING whose
 * first column is the row's id) and records an entry for the row it returns — none when it
 * returns none — and returns that row. The entry's values are parameters $first to
 * $first + AUDIT_ENTRY_VALUES - 1, from audit_entry_values(); its resource id is the row's.
 * Made at startup; the caller owns the string. */
#define AUDIT_ENTRY_VALUES 7
char *audit_sql_around(const char *write, int first);
/* e's values for audit_sql_around()'s parameters; status is the buffer for the status's text. */
void audit_entry_values(const struct audit_entry *e, char status[16],
                        const char *values[AUDIT_ENTRY_VALUES]);
/* The writers' connections, as /readyz and /metrics show them (kind "audit", their commits as
 * their statements): one per writer while the writers run, else 0. Each is made when its writer
 * starts and, when lost, made again within a second by the writer itself, whether or not
 * entries arrive. */
size_t audit_connections(struct metrics_connection *out, size_t max);

#endif

#include "db.h"

#include "buf.h"
#include "log.h"
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

static char *database_url;
static char session_options[256];
static atomic_int open_connections;

struct connection {
    PGconn *pg;
    int depth; /* open transactions: 1 is BEGIN, more are savepoints */
    struct db_statements statements;
    struct db_backoff backoff;
};

static _Thread_local struct connection *tls;
static pthread_key_t thread_end;
static pthread_once_t thread_end_once = PTHREAD_ONCE_INIT;

static void drop_connection(struct connection *c);

/* Worker threads end when the server stops: close their connections then. */
static void on_thread_end(void *c)
{
    drop_connection(c);
    free(c);
}

static void make_thread_end_key(void)
{
    pthread_key_create(&thread_end, on_thread_end);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void db_configure(const char *url, unsigned statement_timeout_ms)
{
    free(database_url);
    database_url = xstrdup(url);
    snprintf(session_options, sizeof session_options,
             "-c statement_timeout=%u -c lock_timeout=%u -c idle_in_transaction_session_timeout=%u "
             "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=iso_8601",
             statement_timeout_ms, statement_timeout_ms, statement_timeout_ms * 2);
}

static PGconn *connect_with(const char *url, const char *options)
{
    const char *keys[] = {"dbname",          "connect_timeout", "application_name",
                          "client_encoding", "options",         NULL};
    const char *values[] = {url, "2", "werklabd", "UTF8", options, NULL};
    return PQconnectdbParams(keys, values, 1);
}

PGconn *db_connect_once(const char *url, char *err, size_t err_len)
{
    PGconn *pg =
        connect_with(url, "-c TimeZone=UTC -c DateStyle=ISO,YMD -c client_min_messages=warning");
    if (PQstatus(pg) != CONNECTION_OK) {
        snprintf(err, err_len, "%s", PQerrorMessage(pg));
        size_t n = strlen(err);
        while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
            err[--n] = '\0';
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

PGconn *db_connect_session(void)
{
    PGconn *pg = connect_with(database_url, session_options);
    if (PQstatus(pg) != CONNECTION_OK) {
        metrics_db_error();
        PQfinish(pg);
        return NULL;
    }
    atomic_fetch_add(&open_connections, 1);
    return pg;
}

void db_release(PGconn *pg)
{
    if (!pg)
        return;
    PQfinish(pg);
    atomic_fetch_sub(&open_connections, 1);
}

bool db_backoff_allows(const struct db_backoff *b)
{
    return now_ms() >= b->next_attempt_ms;
}

void db_backoff_failed(struct db_backoff *b)
{
    b->delay_ms = b->delay_ms ? b->delay_ms * 2 : BACKOFF_MIN_MS;
    if (b->delay_ms > BACKOFF_MAX_MS)
        b->delay_ms = BACKOFF_MAX_MS;
    b->next_attempt_ms = now_ms() + b->delay_ms;
}

void db_backoff_succeeded(struct db_backoff *b)
{
    *b = (struct db_backoff){0};
}

static void drop_connection(struct connection *c)
{
    c->depth = 0;
    db_release(c->pg);
    c->pg = NULL;
    db_statements_clear(&c->statements);
}

/* This thread's connection, made now if needed and allowed by the back-off; NULL when there is
 * none to be had. */
static PGconn *connection(void)
{
    if (!tls) {
        tls = xcalloc(1, sizeof *tls);
        pthread_once(&thread_end_once, make_thread_end_key);
        pthread_setspecific(thread_end, tls);
    }
    struct connection *c = tls;
    if (c->pg && PQstatus(c->pg) == CONNECTION_OK)
        return c->pg;
    drop_connection(c);
    if (!db_backoff_allows(&c->backoff))
        return NULL;
    PGconn *pg = db_connect_session();
    if (!pg) {
        db_backoff_failed(&c->backoff);
        return NULL;
    }
    c->pg = pg;
    db_backoff_succeeded(&c->backoff);
    return pg;
}

static uint64_t hash_sql(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h ? h : 1;
}

static enum db_status classify(const char *state)
{
    if (!state)
        return DB_UNAVAILABLE;
    if (strcmp(state, "23505") == 0)
        return DB_UNIQUE;
    if (strcmp(state, "23503") == 0)
        return DB_FOREIGN_KEY;
    if (strcmp(state, "23514") == 0 || strcmp(state, "23502") == 0)
        return DB_CHECK;
    if (strcmp(state, "23P01") == 0)
        return DB_EXCLUSION;
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
        return DB_RETRY;
    if (strcmp(state, "P0001") == 0)
        return DB_RAISED;
    if (strncmp(state, "22", 2) == 0)
        return DB_INVALID_INPUT;
    /* 08: connection exception, 57: operator intervention (timeouts, shutdown), 53: resources. */
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57", 2) == 0 ||
        strncmp(state, "53", 2) == 0 || strcmp(state, "55P03") == 0)
        return DB_UNAVAILABLE;
    return DB_ERROR;
}

enum db_status db_result_of(struct db_result *r, PGresult *res, PGconn *pg)
{
    r->res = res;
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        r->status = DB_OK;
        return DB_OK;
    }
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *constraint = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    const char *message = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    snprintf(r->constraint, sizeof r->constraint, "%s", constraint ? constraint : "");
    snprintf(r->message, sizeof r->message, "%s", message ? message : PQerrorMessage(pg));
    r->status = PQstatus(pg) != CONNECTION_OK ? DB_UNAVAILABLE : classify(state);
    if (r->status == DB_UNAVAILABLE || r->status == DB_ERROR) {
        metrics_db_error();
        log_event("error", "database: %s (SQLSTATE %s)", r->message, state ? state : "none");
    }
    return r->status;
}

int db_statements_find(const struct db_statements *t, const char *sql, char name[24],
                       bool *prepared)
{
    uint64_t h = hash_sql(sql);
    snprintf(name, 24, "s%016llx", (unsigned long long)h);
    *prepared = false;
    for (int probe = 0, i = (int)(h % DB_STATEMENT_SLOTS); probe < DB_STATEMENT_SLOTS;
         probe++, i = (i + 1) % DB_STATEMENT_SLOTS) {
        const struct db_statement *st = &t->slot[i];
        if (st->hash == 0)
            return t->used < DB_STATEMENT_SLOTS * 3 / 4 ? i : -1;
        if (st->hash == h && strcmp(st->sql, sql) == 0) {
            *prepared = st->prepared;
            return i;
        }
    }
    return -1;
}

void db_statements_set(struct db_statements *t, int slot, const char *sql, bool prepared)
{
    struct db_statement *st = &t->slot[slot];
    if (st->hash == 0) {
        st->hash = hash_sql(sql);
        st->sql = xstrdup(sql);
        t->used++;
    }
    st->prepared = prepared;
}

void db_statements_clear(struct db_statements *t)
{
    for (int i = 0; i < DB_STATEMENT_SLOTS; i++)
        free(t->slot[i].sql);
    memset(t, 0, sizeof *t);
}

/* The name under which sql is prepared on c, preparing it now if it is new; false when it
 * cannot be prepared (then the caller runs it unprepared, still with parameters). */
static bool prepared_name(struct connection *c, const char *sql, int n, char name[24],
                          struct db_result *r)
{
    bool prepared;
    int slot = db_statements_find(&c->statements, sql, name, &prepared);
    if (prepared || slot < 0)
        return prepared;
    PGresult *res = PQprepare(c->pg, name, sql, n, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        db_result_of(r, res, c->pg);
        return false;
    }
    PQclear(res);
    db_statements_set(&c->statements, slot, sql, true);
    return true;
}

enum db_status db_exec(const char *sql, int n, const char *const *values, struct db_result *r)
{
    *r = (struct db_result){.status = DB_UNAVAILABLE};
    PGconn *pg = connection();
    if (!pg)
        return DB_UNAVAILABLE;
    char name[24];
    PGresult *res;
    if (prepared_name(tls, sql, n, name, r))
        res = PQexecPrepared(pg, name, n, values, NULL, NULL, 0);
    else if (r->res)
        return r->status; /* preparing failed: the statement itself is wrong */
    else
        res = PQexecParams(pg, sql, n, NULL, values, NULL, NULL, 0);
    return db_result_of(r, res, pg);
}

void db_clear(struct db_result *r)
{
    PQclear(r->res);
    r->res = NULL;
}

/* Transaction control goes through the simple protocol: it takes no parameters, and a ROLLBACK
 * must work in an aborted transaction without preparing anything. */
static enum db_status simple(const char *command)
{
    PGconn *pg = connection();
    if (!pg)
        return DB_UNAVAILABLE;
    struct db_result r = {0};
    enum db_status s = db_result_of(&r, PQexec(pg, command), pg);
    db_clear(&r);
    return s;
}

/* Transactions nest: an inner one is a savepoint, so a handler that runs its own transaction
 * can run inside another (an idempotent POST stores its answer in the transaction of its
 * effect). */
enum db_status db_begin(void)
{
    if (tls && tls->depth > 0 && tls->pg) {
        char sql[32];
        snprintf(sql, sizeof sql, "SAVEPOINT s%d", tls->depth);
        enum db_status s = simple(sql);
        if (s == DB_OK)
            tls->depth++;
        return s;
    }
    enum db_status s = simple("BEGIN");
    if (s == DB_OK)
        tls->depth = 1;
    return s;
}

enum db_status db_commit(void)
{
    if (!tls || tls->depth == 0)
        return DB_ERROR;
    if (tls->depth > 1) {
        char sql[40];
        snprintf(sql, sizeof sql, "RELEASE SAVEPOINT s%d", tls->depth - 1);
        tls->depth--;
        return simple(sql);
    }
    tls->depth = 0;
    return simple("COMMIT");
}

void db_rollback(void)
{
    if (!tls || tls->depth == 0)
        return;
    if (tls->depth > 1 && tls->pg && PQstatus(tls->pg) == CONNECTION_OK) {
        char sql[64];
        snprintf(sql, sizeof sql, "ROLLBACK TO SAVEPOINT s%d", tls->depth - 1);
        tls->depth--;
        simple(sql);
        return;
    }
    tls->depth = 0;
    if (tls->pg && PQstatus(tls->pg) == CONNECTION_OK &&
        PQtransactionStatus(tls->pg) != PQTRANS_IDLE)
        simple("ROLLBACK");
}

int db_rows(const struct db_result *r)
{
    return r->res ? PQntuples(r->res) : 0;
}

const char *db_value(const struct db_result *r, int row, int col)
{
    if (PQgetisnull(r->res, row, col))
        return NULL;
    return PQgetvalue(r->res, row, col);
}

int db_open_connections(void)
{
    return atomic_load(&open_connections);
}

void db_disconnect(void)
{
    if (!tls)
        return;
    pthread_setspecific(thread_end, NULL);
    drop_connection(tls);
    free(tls);
    tls = NULL;
}

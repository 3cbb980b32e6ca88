#include "audit.h"

#include "buf.h"
#include "db.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH    4096 /* entries in one commit at most: one statement stays a few hundred kB */
#define CHECK_MS 100  /* how often an idle writer checks its connection, as db's keeper does */

/* One entry, in the caller's transaction (audit_write). */
static const char SQL_INSERT_ONE[] =
    "INSERT INTO audit_log (key_id, action, resource, status, request_id, subject, client, "
    "resource_id) VALUES ($1::uuid, $2, $3, $4::integer, $5, $6, $7, $8::uuid)";

/* The entry of the row a write returns, in the write's own statement (audit_sql_around). */
static const char SQL_AROUND[] = "WITH w (written_id) AS (%s), a AS (INSERT INTO audit_log "
                                 "(key_id, action, resource, resource_id, status, "
                                 "request_id, subject, client) SELECT $%d::uuid, $%d, $%d, "
                                 "w.written_id, $%d::integer, $%d, $%d, $%d "
                                 "FROM w) SELECT * FROM w";

/* One multi-row INSERT for a batch: nine arrays, unnested side by side, in the order the
 * requests were answered, with the times they were answered. */
#define AUDIT_COLUMNS 9
static const char SQL_INSERT_MANY[] =
    "INSERT INTO audit_log (key_id, action, resource, resource_id, status, request_id, at, "
    "subject, client) "
    "SELECT k, a, r, i, s, q, coalesce(t, clock_timestamp()), p, c FROM unnest($1::uuid[], "
    "$2::text[], $3::text[], $4::uuid[], $5::integer[], $6::text[], $7::timestamptz[], "
    "$8::text[], $9::text[]) AS e(k, a, r, i, s, q, t, p, c) ORDER BY t";

/* SQL_INSERT_MANY is prepared once on each writer's connection: parsed, analysed and planned
 * again for every batch it cost PostgreSQL a sixth of its time under audited reads. */
static const char PREPARED_INSERT_MANY[] = "audit_insert_many";

struct pending {
    struct pending *next;
    struct audit_entry e;
    audit_committed done; /* NULL: nobody waits for this one */
    void *ctx;
};

struct list {
    struct pending *head, *tail;
};

/* The queue, shared with the threads that add to it and the writers. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;
static struct list queue;
static int queued_async;   /* entries in the queue nobody waits for */
static int queued_waiting; /* entries in the queue somebody waits for */
static int running;        /* writers running */
static bool stopping;

/* A writer: a thread with a connection of its own. */
struct writer {
    pthread_t thread;
    unsigned slot;
    PGconn *pg;
    struct db_backoff backoff;
    /* A batch's arrays, kept from one commit to the next so that a commit allocates nothing. */
    struct buf cols[AUDIT_COLUMNS];
    /* What /readyz and /metrics say of its connection (audit_connections). */
    atomic_bool up;
    atomic_ulong made, commits;
};

static struct writer writers[AUDIT_MAX_WRITERS];
static unsigned n_writers;

/* After w->pg changed: is it up? */
static void track_connection(struct writer *w)
{
    atomic_store(&w->up, w->pg && PQstatus(w->pg) == CONNECTION_OK);
}

static void push(struct list *l, struct pending *p)
{
    p->next = NULL;
    if (l->tail)
        l->tail->next = p;
    else
        l->head = p;
    l->tail = p;
}

static struct pending *pop(struct list *l)
{
    struct pending *p = l->head;
    if (p) {
        l->head = p->next;
        if (!l->head)
            l->tail = NULL;
    }
    return p;
}

/* SQL_INSERT_ONE's parameters for e: the entry's values as a write's statement takes them
 * (audit_entry_values), then the resource id; status is the buffer for the status's text. */
_Static_assert(AUDIT_ENTRY_VALUES + 1 == 8,
               "SQL_INSERT_ONE takes the entry's values and the resource id");
static void one_entry(const struct audit_entry *e, char status[16], const char *params[8])
{
    audit_entry_values(e, status, params);
    params[AUDIT_ENTRY_VALUES] = e->resource_id[0] ? e->resource_id : NULL;
}

char *audit_sql_around(const char *write, int first)
{
    struct buf b = {0};
    int n = first;
    buf_printf(&b, SQL_AROUND, write, n, n + 1, n + 2, n + 3, n + 4, n + 5, n + 6);
    return buf_detach(&b);
}

void audit_entry_values(const struct audit_entry *e, char status[16],
                        const char *values[AUDIT_ENTRY_VALUES])
{
    snprintf(status, 16, "%d", e->status);
    const char *of_entry[AUDIT_ENTRY_VALUES] = {e->key_id[0] ? e->key_id : NULL,
                                                e->action,
                                                e->resource,
                                                status,
                                                e->request_id[0] ? e->request_id : NULL,
                                                e->subject[0] ? e->subject : NULL,
                                                e->client[0] ? e->client : NULL};
    memcpy(values, of_entry, sizeof of_entry);
}

enum db_status audit_write(const struct audit_entry *e)
{
    char status[16];
    const char *params[8];
    one_entry(e, status, params);
    struct db_result r;
    enum db_status s = db_exec(SQL_INSERT_ONE, 8, params, &r);
    db_clear(&r);
    return s;
}

enum db_status audit_write_and_commit(const struct audit_entry *e)
{
    char status[16];
    const char *params[8];
    one_entry(e, status, params);
    return db_commit_after(SQL_INSERT_ONE, 8, params);
}

/* Appends s to a PostgreSQL array literal. */
static void element(struct buf *b, const char *s, bool first)
{
    if (!first)
        buf_putc(b, ',');
    if (!*s) {
        buf_puts(b, "NULL");
        return;
    }
    buf_put_array_element(b, s);
}

/* Prepares SQL_INSERT_MANY on a new connection; false (logged) when it cannot be. */
static bool prepare(PGconn *pg)
{
    PGresult *res = PQprepare(pg, PREPARED_INSERT_MANY, SQL_INSERT_MANY, AUDIT_COLUMNS, NULL);
    bool prepared = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!prepared)
        log_event("error", "audit: cannot prepare the batch insert: %s", PQerrorMessage(pg));
    PQclear(res);
    return prepared;
}

/* The writer's connection, made now if it has none and the back-off allows; NULL when down. */
static PGconn *connection(struct writer *w)
{
    if (w->pg && PQstatus(w->pg) == CONNECTION_OK)
        return w->pg;
    db_release(w->pg);
    w->pg = NULL;
    if (!db_backoff_allows(&w->backoff))
        return NULL;
    w->pg = db_connect_session();
    if (w->pg && !prepare(w->pg)) {
        db_release(w->pg);
        w->pg = NULL;
    }
    if (!w->pg) {
        db_backoff_failed(&w->backoff);
        track_connection(w);
        return NULL;
    }
    db_backoff_succeeded(&w->backoff);
    atomic_fetch_add(&w->made, 1);
    track_connection(w);
    return w->pg;
}

/* A connection the database has closed (a restart, an idle timeout) is noticed and made again
 * now — while idle, and before each commit — not by a commit that would fail on it and answer
 * its waiting requests 503. Reading the socket costs one non-blocking read. */
static void keep_connection(struct writer *w)
{
    if (w->pg && PQconsumeInput(w->pg) != 1) {
        log_event("error", "audit: lost the database connection: %s", PQerrorMessage(w->pg));
        db_release(w->pg);
        w->pg = NULL;
        track_connection(w);
    }
    connection(w);
}

/* Commits the n entries of batch in one statement, its own transaction. */
static enum db_status commit(struct writer *w, const struct list *batch, int n)
{
    keep_connection(w);
    if (!w->pg)
        return DB_UNAVAILABLE;
    struct buf *cols = w->cols;
    for (int c = 0; c < AUDIT_COLUMNS; c++) {
        buf_reset(&cols[c]);
        buf_putc(&cols[c], '{');
    }
    bool first = true;
    for (const struct pending *p = batch->head; p; p = p->next, first = false) {
        char status[16];
        snprintf(status, sizeof status, "%d", p->e.status);
        element(&cols[0], p->e.key_id, first);
        element(&cols[1], p->e.action, first);
        element(&cols[2], p->e.resource, first);
        element(&cols[3], p->e.resource_id, first);
        element(&cols[4], status, first);
        element(&cols[5], p->e.request_id, first);
        element(&cols[6], p->e.at, first);
        element(&cols[7], p->e.subject, first);
        element(&cols[8], p->e.client, first);
    }
    const char *params[AUDIT_COLUMNS];
    for (int c = 0; c < AUDIT_COLUMNS; c++) {
        buf_putc(&cols[c], '}');
        params[c] = cols[c].data;
    }
    struct db_result r = {0};
    enum db_status s = db_result_of(
        &r, PQexecPrepared(w->pg, PREPARED_INSERT_MANY, AUDIT_COLUMNS, params, NULL, NULL, 0),
        w->pg);
    db_clear(&r);
    if (s == DB_OK) {
        atomic_fetch_add(&w->commits, 1);
        metrics_audit_commit((unsigned)n);
    } else {
        metrics_audit_failed();
        if (s == DB_UNAVAILABLE) {
            db_release(w->pg);
            w->pg = NULL;
            db_backoff_failed(&w->backoff);
            track_connection(w);
        }
    }
    return s;
}

/* Hands the outcome to whoever waits. Entries nobody waits for go back to the front of the
 * queue when the failure may pass (the database is down), as many as the backlog allows. */
static void settle(struct list *batch, enum db_status s)
{
    struct list again = {0};
    int kept = 0, dropped = 0;
    for (struct pending *p; (p = pop(batch));) {
        if (p->done) {
            metrics_audit_waiting(-1);
            p->done(p->ctx, s == DB_OK);
            free(p);
        } else if (s == DB_UNAVAILABLE || s == DB_RETRY) {
            push(&again, p);
            kept++;
        } else {
            if (s != DB_OK)
                dropped++;
            free(p);
        }
    }
    pthread_mutex_lock(&lock);
    while (again.head && queued_async + kept > AUDIT_BACKLOG) {
        free(pop(&again)); /* the oldest first */
        kept--;
        dropped++;
    }
    if (again.head) {
        again.tail->next = queue.head;
        queue.head = again.head;
        if (!queue.tail)
            queue.tail = again.tail;
        queued_async += kept;
    }
    pthread_mutex_unlock(&lock);
    if (dropped)
        log_event("error",
                  "audit: %d entries of refused requests could not be written and are "
                  "lost",
                  dropped);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum wait { WORK, WOKEN, IDLE };

/* Under lock: WORK when there is something worth an attempt now. Entries somebody waits for
 * always are (while the database is down it fails at once, and they are answered 503); entries
 * nobody waits for wait for the back-off. Else waits for a wake-up (WOKEN), at most until the
 * back-off ends or the connection is due a check (IDLE). */
static enum wait wait_for_work(struct writer *w)
{
    if (stopping || queued_waiting > 0 ||
        (queued_async > 0 && (w->pg || db_backoff_allows(&w->backoff))))
        return WORK;
    int64_t until_ms = now_ms() + CHECK_MS;
    if (!w->pg && w->backoff.next_attempt_ms < until_ms)
        until_ms = w->backoff.next_attempt_ms;
    struct timespec until = {.tv_sec = until_ms / 1000, .tv_nsec = (until_ms % 1000) * 1000000};
    return pthread_cond_timedwait(&wake, &lock, &until) == ETIMEDOUT ? IDLE : WOKEN;
}

/* Each writer takes everything queued when it is free, so an entry that arrives while others
 * commit is committed at once by another writer, in a transaction of its own, rather than
 * waiting for theirs to end: an answer waits for about one commit, not one and a half. The
 * commits of concurrent writers share their WAL flushes in PostgreSQL (its group commit), so
 * more writers cost little more I/O. */
static void *run(void *arg)
{
    struct writer *w = arg;
    connection(w); /* at start, so that /readyz can say the writer is up */
    pthread_mutex_lock(&lock);
    for (;;) {
        enum wait wait = wait_for_work(w);
        if (wait == IDLE) {
            pthread_mutex_unlock(&lock);
            keep_connection(w);
            pthread_mutex_lock(&lock);
        }
        if (wait != WORK)
            continue;
        if (!queue.head) {
            if (stopping)
                break; /* everything is written */
            continue;  /* another writer took it */
        }
        /* Whatever has queued up meanwhile goes in this commit. */
        struct list batch = {0};
        int n = 0;
        for (struct pending *p; n < BATCH && (p = pop(&queue)); n++) {
            if (p->done)
                queued_waiting--;
            else
                queued_async--;
            push(&batch, p);
        }
        bool last = stopping;
        pthread_mutex_unlock(&lock);
        enum db_status s = commit(w, &batch, n);
        /* At the end one attempt is all there is: nothing is put back for a later one. */
        settle(&batch, last && s != DB_OK ? DB_ERROR : s);
        pthread_mutex_lock(&lock);
    }
    running--;
    pthread_mutex_unlock(&lock);
    db_release(w->pg);
    w->pg = NULL;
    track_connection(w);
    for (int c = 0; c < AUDIT_COLUMNS; c++)
        buf_free(&w->cols[c]);
    return NULL;
}

int audit_start(unsigned n)
{
    if (n < 1)
        n = 1;
    if (n > AUDIT_MAX_WRITERS)
        n = AUDIT_MAX_WRITERS;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_lock(&lock);
    stopping = false;
    for (n_writers = 0; n_writers < n; n_writers++) {
        struct writer *w = &writers[n_writers];
        *w = (struct writer){.slot = n_writers};
        if (pthread_create(&w->thread, NULL, run, w) != 0)
            break;
        running++;
    }
    bool started = n_writers == n;
    pthread_mutex_unlock(&lock);
    if (!started) {
        log_event("error", "audit: cannot start the writers: %s", strerror(errno));
        audit_stop();
        return -1;
    }
    return 0;
}

void audit_stop(void)
{
    pthread_mutex_lock(&lock);
    bool was_running = running > 0 && !stopping;
    stopping = true;
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
    if (was_running)
        for (unsigned i = 0; i < n_writers; i++)
            pthread_join(writers[i].thread, NULL);
}

/* Queues e for the writers; false when there is none (then nothing is queued). */
static bool enqueue(const struct audit_entry *e, audit_committed done, void *ctx)
{
    struct pending *p = xcalloc(1, sizeof *p);
    *p = (struct pending){.e = *e, .done = done, .ctx = ctx};
    pthread_mutex_lock(&lock);
    bool accepted = running > 0; /* while stopping, too: the last writer writes it */
    if (accepted) {
        push(&queue, p);
        if (done) {
            queued_waiting++;
            metrics_audit_waiting(1);
        } else {
            queued_async++;
        }
        pthread_cond_signal(&wake);
    }
    pthread_mutex_unlock(&lock);
    if (!accepted)
        free(p);
    return accepted;
}

void audit_add(const struct audit_entry *e)
{
    if (!enqueue(e, NULL, NULL) && audit_write(e) != DB_OK)
        log_event("error", "audit: an entry (%s %s, %d) could not be written", e->action,
                  e->resource, e->status);
}

void audit_submit(const struct audit_entry *e, audit_committed done, void *ctx)
{
    if (!enqueue(e, done, ctx))
        done(ctx, audit_write(e) == DB_OK);
}

size_t audit_connections(struct metrics_connection *out, size_t max)
{
    pthread_mutex_lock(&lock);
    bool has_writers = running > 0;
    pthread_mutex_unlock(&lock);
    size_t n = 0;
    for (; has_writers && n < n_writers && n < max; n++) {
        struct writer *w = &writers[n];
        out[n] = (struct metrics_connection){
            .kind = "audit",
            .slot = w->slot,
            .up = atomic_load(&w->up),
            .made = atomic_load(&w->made),
            .statements = atomic_load(&w->commits),
        };
    }
    return n;
}

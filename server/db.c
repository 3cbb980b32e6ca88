/* db: each thread's PostgreSQL connection (db.h). One cohesive thing, longer than most files:
 * connecting with back-off, the registry of slots, the keeper that watches them, statements and
 * transactions all work on the same per-thread slot and its state, which nothing outside this
 * file may touch; split, they would need that state in a shared header. The pipeline of
 * reads by id is dbpipe.c, the statement cache prepared.c. */
#include "db.h"

#include "buf.h"
#include "log.h"
#include "prepared.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     1000
#define CONNECT_TIMEOUT_MS 2000
#define KEEPER_ROUND_MS    100 /* how often the keeper looks at every slot */

static char *database_url;
static char session_options[256];
static atomic_int open_connections;

/* One thread's connection. Its lock is held by its owner while it runs a statement or has a
 * transaction open (so depth > 0 implies held), and by the keeper for a moment when it looks at
 * an idle connection or puts a new one in place; the keeper never waits for it. */
struct slot {
    pthread_mutex_t lock;
    /* Under lock. */
    PGconn *pg;
    int depth; /* open transactions: 1 is BEGIN, more are savepoints */
    /* Depth 1 is open on this side only: its BEGIN goes with the next statement, in the same
     * round trip (exec_batch), and a transaction that runs nothing sends nothing. */
    bool begin_pending;
    struct prepared statements;
    /* The owner's. */
    bool held;
    bool command; /* db_open_command()'s: outside the registry */
    /* Under the registry's lock. */
    bool taken;
    /* Read by anyone (/metrics, /readyz). */
    const char *_Atomic kind;
    atomic_bool up, tried;
    atomic_ulong made, succeeded; /* statements run successfully */
    unsigned number;
    /* The keeper's: a connection being made, without the lock. */
    PGconn *connecting;
    PostgresPollingStatusType polling;
    int64_t give_up_ms;
    struct db_backoff backoff;
};

static struct slot *slots[DB_MAX_SLOTS];
static atomic_uint n_slots;
static pthread_mutex_t registry = PTHREAD_MUTEX_INITIALIZER;

static _Thread_local struct slot *mine;
static _Thread_local const char *my_kind;
static pthread_key_t thread_end;
static pthread_once_t thread_end_once = PTHREAD_ONCE_INIT;

static pthread_t keeper;
static bool keeper_running;
static atomic_bool keeper_stopping;
static int keeper_wake = -1;

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

/* ---- connecting ---- */

#define CONNECT_KEYS                                                                               \
    {                                                                                              \
        "dbname", "connect_timeout", "application_name", "client_encoding", "options", NULL        \
    }
#define CONNECT_VALUES(url, options)                                                               \
    {                                                                                              \
        url, "2", "werklabd", "UTF8", options, NULL                                                \
    }

/* What the server says outside a statement (e.g. why it is about to close an idle connection)
 * goes to the log, not raw to stderr. */
static void log_notice(void *unused, const char *message)
{
    (void)unused;
    int n = (int)strlen(message);
    while (n > 0 && (message[n - 1] == '\n' || message[n - 1] == ' '))
        n--;
    log_event("warning", "database: %.*s", n, message);
}

static PGconn *connect_with(const char *url, const char *options)
{
    const char *keys[] = CONNECT_KEYS;
    const char *values[] = CONNECT_VALUES(url, options);
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

void db_close_once(PGconn *pg)
{
    PQfinish(pg);
}

PGconn *db_connect_session(void)
{
    return db_connect_session_to(database_url);
}

PGconn *db_connect_session_to(const char *url)
{
    PGconn *pg = connect_with(url, session_options);
    if (PQstatus(pg) != CONNECTION_OK) {
        metrics_db_error();
        PQfinish(pg);
        return NULL;
    }
    PQsetNoticeProcessor(pg, log_notice, NULL);
    atomic_fetch_add(&open_connections, 1);
    return pg;
}

PGconn *db_connect_start(void)
{
    const char *keys[] = CONNECT_KEYS;
    const char *values[] = CONNECT_VALUES(database_url, session_options);
    PGconn *pg = PQconnectStartParams(keys, values, 1);
    if (pg && PQstatus(pg) != CONNECTION_BAD)
        return pg;
    metrics_db_error();
    PQfinish(pg);
    return NULL;
}

void db_connect_ended(PGconn *pg, bool made)
{
    if (!made) {
        metrics_db_error();
        PQfinish(pg);
        return;
    }
    PQsetNoticeProcessor(pg, log_notice, NULL);
    atomic_fetch_add(&open_connections, 1);
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

int db_backoff_wait_ms(const struct db_backoff *b)
{
    int64_t wait = b->next_attempt_ms - now_ms();
    return wait > 0 ? (int)wait : 0;
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

/* ---- the registry ---- */

/* Under s's lock. */
static void drop(struct slot *s)
{
    if (s->command)
        db_close_once(s->pg); /* never counted among the open connections */
    else
        db_release(s->pg);
    s->pg = NULL;
    s->depth = 0;
    s->begin_pending = false;
    prepared_clear(&s->statements);
    atomic_store(&s->up, false);
}

/* Under the registry's lock. */
static struct slot *add_slot(void)
{
    unsigned n = atomic_load(&n_slots);
    if (n == DB_MAX_SLOTS)
        return NULL;
    struct slot *s = xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    atomic_store(&s->kind, "worker");
    s->number = n;
    slots[n] = s;
    atomic_store(&n_slots, n + 1); /* after the slot is whole: the keeper reads without the lock */
    return s;
}

static void give_back(struct slot *s);

static void on_thread_end(void *s)
{
    give_back(s);
}

static void make_thread_end_key(void)
{
    pthread_key_create(&thread_end, on_thread_end);
}

/* This thread's slot, taken now if it has none; NULL when the registry is full. */
static struct slot *my_slot(void)
{
    if (mine)
        return mine;
    pthread_mutex_lock(&registry);
    struct slot *s = NULL;
    for (unsigned i = 0; i < atomic_load(&n_slots) && !s; i++)
        if (!slots[i]->taken)
            s = slots[i];
    if (!s)
        s = add_slot();
    if (s) {
        s->taken = true;
        atomic_store(&s->kind, my_kind ? my_kind : "worker");
    }
    pthread_mutex_unlock(&registry);
    if (!s) {
        log_event("error", "database: all %d connection slots are taken", DB_MAX_SLOTS);
        return NULL;
    }
    pthread_once(&thread_end_once, make_thread_end_key);
    pthread_setspecific(thread_end, s);
    mine = s;
    return s;
}

void db_thread_kind(const char *kind)
{
    my_kind = kind;
    if (mine)
        atomic_store(&mine->kind, kind);
    else
        my_slot();
}

/* s's connection for its owner, with s locked; NULL when it is down. Either way the caller ends
 * with let_go(), as after a statement. */
static PGconn *hold(struct slot *s)
{
    if (!s->held) {
        pthread_mutex_lock(&s->lock); /* the keeper holds it for microseconds at most */
        s->held = true;
    }
    if (s->pg && PQstatus(s->pg) == CONNECTION_OK)
        return s->pg;
    return NULL;
}

/* After a statement: the lock goes back unless a transaction keeps it. A connection found broken
 * is dropped, and the keeper makes it again. */
static void let_go(struct slot *s)
{
    if (s->depth > 0 || !s->held)
        return;
    if (s->pg && PQstatus(s->pg) != CONNECTION_OK)
        drop(s);
    s->held = false;
    pthread_mutex_unlock(&s->lock);
}

/* ---- the keeper ---- */

/* Keeps libpq's message, without its newline, for the log. */
static void keep_reason(char *why, size_t why_len, const char *text)
{
    snprintf(why, why_len, "%s", text);
    for (size_t n = strlen(why); n > 0 && (why[n - 1] == '\n' || why[n - 1] == ' ');)
        why[--n] = '\0';
}

/* Whether s has no connection and no owner using it: then the keeper may make one. An idle
 * connection whose server has closed it (a restart, say) is noticed here, by reading what is
 * waiting on its socket, and dropped. */
static bool needs_connecting(struct slot *s, char *why, size_t why_len)
{
    if (pthread_mutex_trylock(&s->lock) != 0)
        return false; /* in use: its owner drops it if it is broken */
    if (s->pg && PQstatus(s->pg) == CONNECTION_OK) {
        struct pollfd fd = {.fd = PQsocket(s->pg), .events = POLLIN};
        if (poll(&fd, 1, 0) > 0 && PQconsumeInput(s->pg) != 1)
            keep_reason(why, why_len, PQerrorMessage(s->pg));
        else if (PQstatus(s->pg) == CONNECTION_OK)
            goto done;
    }
    if (s->pg)
        drop(s);
done:;
    bool down = !s->pg;
    pthread_mutex_unlock(&s->lock);
    return down;
}

/* reason NULL: what libpq says. */
static void connect_failed(struct slot *s, const char *reason, char *why, size_t why_len)
{
    keep_reason(why, why_len, reason ? reason : PQerrorMessage(s->connecting));
    metrics_db_error();
    PQfinish(s->connecting);
    s->connecting = NULL;
    db_backoff_failed(&s->backoff);
    atomic_store(&s->tried, true);
}

/* The connection being made is ready: into the slot with it (or next round, if the slot's owner
 * is still rolling back a transaction on the connection it lost). */
static void put_in_place(struct slot *s)
{
    if (pthread_mutex_trylock(&s->lock) != 0)
        return;
    if (!s->pg) {
        s->pg = s->connecting;
        s->connecting = NULL;
        atomic_fetch_add(&open_connections, 1);
        atomic_fetch_add(&s->made, 1);
        atomic_store(&s->up, true);
        db_backoff_succeeded(&s->backoff);
        atomic_store(&s->tried, true);
    }
    pthread_mutex_unlock(&s->lock);
    if (s->connecting) { /* the slot had one after all: this one is not needed */
        PQfinish(s->connecting);
        s->connecting = NULL;
    }
}

static void start_connecting(struct slot *s, char *why, size_t why_len)
{
    const char *keys[] = CONNECT_KEYS;
    const char *values[] = CONNECT_VALUES(database_url, session_options);
    s->connecting = PQconnectStartParams(keys, values, 1);
    if (!s->connecting || PQstatus(s->connecting) == CONNECTION_BAD) {
        connect_failed(s, NULL, why, why_len);
        return;
    }
    PQsetNoticeProcessor(s->connecting, log_notice, NULL);
    s->polling = PGRES_POLLING_WRITING; /* as libpq asks: wait until the socket is writable */
    s->give_up_ms = now_ms() + CONNECT_TIMEOUT_MS;
}

/* One step of making s's connection, when its socket is ready. */
static void advance(struct slot *s, char *why, size_t why_len)
{
    s->polling = PQconnectPoll(s->connecting);
    if (s->polling == PGRES_POLLING_OK)
        put_in_place(s);
    else if (s->polling == PGRES_POLLING_FAILED)
        connect_failed(s, NULL, why, why_len);
}

/* One round over s; *wait_ms is lowered to when s next needs the keeper. */
static void tend(struct slot *s, int *wait_ms, char *why, size_t why_len)
{
    if (!s->connecting) {
        if (!needs_connecting(s, why, why_len))
            return;
        int backoff = db_backoff_wait_ms(&s->backoff);
        if (backoff > 0) {
            if (backoff < *wait_ms)
                *wait_ms = backoff;
            return;
        }
        start_connecting(s, why, why_len);
    }
    if (!s->connecting)
        return;
    if (s->polling == PGRES_POLLING_OK) {
        put_in_place(s);
        return;
    }
    int64_t left = s->give_up_ms - now_ms();
    if (left <= 0)
        connect_failed(s, "no connection within the connect timeout", why, why_len);
    else if (left < *wait_ms) {
        *wait_ms = (int)left;
    }
}

/* Logs when connections go down and when all are back, with the reason last seen. */
static void report(unsigned *down_before, const char *why)
{
    unsigned n = atomic_load(&n_slots), down = 0;
    for (unsigned i = 0; i < n; i++) {
        if (!atomic_load(&slots[i]->tried))
            return; /* still starting */
        down += !atomic_load(&slots[i]->up);
    }
    if (down > 0 && *down_before == 0)
        log_event("warning", "database: %u of %u connections are down: %s", down, n,
                  why[0] ? why : "lost");
    else if (down == 0 && *down_before > 0)
        log_event("info", "database: all %u connections are up again", n);
    *down_before = down;
}

static void *keep(void *unused)
{
    (void)unused;
    static struct pollfd fds[DB_MAX_SLOTS + 1];
    static struct slot *waiting[DB_MAX_SLOTS + 1];
    unsigned down_before = 0;
    char why[256] = "";
    while (!atomic_load(&keeper_stopping)) {
        int wait_ms = KEEPER_ROUND_MS, n_fds = 1;
        fds[0] = (struct pollfd){.fd = keeper_wake, .events = POLLIN};
        unsigned n = atomic_load(&n_slots);
        for (unsigned i = 0; i < n; i++) {
            struct slot *s = slots[i];
            tend(s, &wait_ms, why, sizeof why);
            if (s->connecting && s->polling != PGRES_POLLING_OK) {
                fds[n_fds] = (struct pollfd){
                    .fd = PQsocket(s->connecting),
                    .events = s->polling == PGRES_POLLING_READING ? POLLIN : POLLOUT};
                waiting[n_fds++] = s;
            }
        }
        report(&down_before, why);
        if (poll(fds, (nfds_t)n_fds, wait_ms) < 0 && errno != EINTR) {
            log_event("error", "database keeper: poll: %s", strerror(errno));
            usleep(10000);
            continue;
        }
        if (fds[0].revents & POLLIN) {
            uint64_t ignored;
            if (read(keeper_wake, &ignored, sizeof ignored) < 0 && errno != EAGAIN)
                log_event("error", "database keeper: wake: %s", strerror(errno));
        }
        for (int k = 1; k < n_fds; k++)
            if (fds[k].revents)
                advance(waiting[k], why, sizeof why);
    }
    return NULL;
}

void db_start(unsigned n)
{
    pthread_mutex_lock(&registry);
    for (unsigned i = 0; i < n && add_slot(); i++)
        ;
    pthread_mutex_unlock(&registry);
    keeper_wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    atomic_store(&keeper_stopping, false);
    if (keeper_wake < 0 || pthread_create(&keeper, NULL, keep, NULL) != 0) {
        log_event("error", "database: cannot start the connection keeper: %s", strerror(errno));
        return;
    }
    keeper_running = true;
    /* Until each slot has been tried once, so that /readyz is true from the first request. */
    for (int waited = 0; waited < CONNECT_TIMEOUT_MS + 500; waited += 5) {
        unsigned tried = 0, all = atomic_load(&n_slots);
        for (unsigned i = 0; i < all; i++)
            tried += atomic_load(&slots[i]->tried);
        if (tried == all)
            break;
        usleep(5000);
    }
}

void db_stop(void)
{
    if (keeper_running) {
        atomic_store(&keeper_stopping, true);
        uint64_t one = 1;
        if (write(keeper_wake, &one, sizeof one) < 0)
            log_event("error", "database keeper: wake: %s", strerror(errno));
        pthread_join(keeper, NULL);
        keeper_running = false;
    }
    if (keeper_wake >= 0)
        close(keeper_wake);
    keeper_wake = -1;
    pthread_mutex_lock(&registry);
    unsigned n = atomic_load(&n_slots);
    atomic_store(&n_slots, 0);
    for (unsigned i = 0; i < n; i++) {
        struct slot *s = slots[i];
        PQfinish(s->connecting);
        drop(s);
        pthread_mutex_destroy(&s->lock);
        free(s);
        slots[i] = NULL;
    }
    pthread_mutex_unlock(&registry);
}

size_t db_connections(struct metrics_connection *out, size_t max)
{
    unsigned n = atomic_load(&n_slots);
    size_t i = 0;
    for (; i < n && i < max; i++) {
        struct slot *s = slots[i];
        out[i] = (struct metrics_connection){
            .kind = atomic_load(&s->kind),
            .slot = s->number,
            .up = atomic_load(&s->up),
            .made = atomic_load(&s->made),
            .statements = atomic_load(&s->succeeded),
        };
    }
    return i;
}

int db_open_connections(void)
{
    return atomic_load(&open_connections);
}

/* ---- statements ---- */

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

/* Makes room for a statement: the evicted one is deallocated at once. Prepared statements are
 * not transactional, so this holds whatever becomes of a transaction around it. */
static void deallocate(struct slot *s, const char *name)
{
    char sql[PREPARED_NAME + 16];
    snprintf(sql, sizeof sql, "DEALLOCATE %s", name);
    PGresult *res = PQexec(s->pg, sql);
    if (PQresultStatus(res) == PGRES_COMMAND_OK)
        metrics_db_evicted(METRICS_DB_WORKER);
    else if (PQstatus(s->pg) == CONNECTION_OK)
        log_event("warning", "database: %s: %s", sql, PQresultErrorField(res, PG_DIAG_SQLSTATE));
    PQclear(res);
}

/* The name under which sql is prepared on s, preparing it now if it is new; false (with r
 * holding why) when it cannot be prepared: then the statement itself is wrong. */
static bool prepared_name(struct slot *s, const char *sql, int n, char name[PREPARED_NAME],
                          struct db_result *r)
{
    struct prepared_statement *st = prepared_find(&s->statements, sql);
    if (!st) {
        char evicted[PREPARED_NAME];
        st = prepared_add(&s->statements, sql, evicted);
        if (evicted[0])
            deallocate(s, evicted);
    }
    if (!st->prepared) {
        PGresult *res = PQprepare(s->pg, st->name, sql, n, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            db_result_of(r, res, s->pg);
            return false;
        }
        PQclear(res);
        st->prepared = true;
        metrics_db_prepared(METRICS_DB_WORKER);
    }
    memcpy(name, st->name, PREPARED_NAME);
    return true;
}

static atomic_bool positions_wanted; /* db_track_commit_positions() */
static _Thread_local uint64_t committed_position;

const char db_position_sql[] = "SELECT pg_current_wal_insert_lsn()::text";

/* After the outermost COMMIT of a thread that tracks positions, in the same round trip. */
static bool wants_position(const struct slot *s, const char *then)
{
    return then && strcmp(then, "COMMIT") == 0 && !s->command && atomic_load(&positions_wanted);
}

static void take_position(PGresult *res)
{
    uint64_t position;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        db_lsn_parse(PQgetvalue(res, 0, 0), &position))
        committed_position = position;
}

/* Sends in one round trip (libpq's pipeline mode, one Sync): the pending BEGIN, if any; the
 * statement, prepared as name, or sql unprepared when name is NULL; then `then` (COMMIT, RELEASE
 * SAVEPOINT), if given, and after a COMMIT where the WAL then stands (wants_position()). Returns
 * the statement's result, or the first failure's: a BEGIN that failed, or a `then` that failed
 * after the statement succeeded. *then_ran says whether `then`
 * was carried out, successfully or not (it is skipped after a failure before it). s is held and
 * its connection up. */
static PGresult *exec_batch(struct slot *s, const char *name, const char *sql, int n,
                            const char *const *values, const char *then, bool *then_ran)
{
    PGconn *pg = s->pg;
    bool begin = s->begin_pending, position = wants_position(s, then);
    s->begin_pending = false;
    *then_ran = false;
    if (PQenterPipelineMode(pg) != 1)
        return NULL; /* a lost connection (or a bug): the transaction is lost with it */
    bool sent =
        (!begin || PQsendQueryParams(pg, "BEGIN", 0, NULL, NULL, NULL, NULL, 0)) &&
        (name ? PQsendQueryPrepared(pg, name, n, values, NULL, NULL, 0)
              : PQsendQueryParams(pg, sql, n, NULL, values, NULL, NULL, 0)) &&
        (!then || PQsendQueryParams(pg, then, 0, NULL, NULL, NULL, NULL, 0)) &&
        (!position || PQsendQueryParams(pg, db_position_sql, 0, NULL, NULL, NULL, NULL, 0)) &&
        PQpipelineSync(pg);
    /* Each command's first result (there is one each), then the Sync's. */
    PGresult *res[4] = {0};
    int commands = begin + 1 + (then != NULL) + position;
    for (int i = 0; sent && i < commands; i++)
        for (PGresult *r; (r = PQgetResult(pg));) {
            if (res[i])
                PQclear(r);
            else
                res[i] = r;
        }
    PQclear(sent ? PQgetResult(pg) : NULL);
    if (PQexitPipelineMode(pg) != 1 && PQstatus(pg) == CONNECTION_OK) {
        /* Every result of what was sent is read, so this is a bug here; a connection left in
         * pipeline mode would refuse every later statement of the transaction, and replacing
         * it would run them outside the transaction. */
        log_event("error", "database: leaving pipeline mode: %s", PQerrorMessage(pg));
        abort();
    }
    PGresult *begun = begin ? res[0] : NULL, *statement = res[begin],
             *after = then ? res[begin + 1] : NULL;
    *then_ran = after && PQresultStatus(after) != PGRES_PIPELINE_ABORTED;
    if (position && *then_ran && PQresultStatus(after) == PGRES_COMMAND_OK)
        take_position(res[commands - 1]);
    PGresult *result = statement;
    if (begun && PQresultStatus(begun) != PGRES_COMMAND_OK)
        result = begun;
    else if (after && PQresultStatus(statement) != PGRES_FATAL_ERROR &&
             PQresultStatus(after) != PGRES_COMMAND_OK)
        result = after;
    for (int i = 0; i < commands; i++)
        if (res[i] != result)
            PQclear(res[i]);
    return result;
}

/* Runs sql on s (held, its connection up): unprepared on a command's connection (each runs once:
 * see db.h), else prepared; in one round trip with the pending BEGIN before it and `then` after
 * it when there are any (exec_batch). NULL, with r holding why, when it cannot be prepared. */
static PGresult *run(struct slot *s, const char *sql, int n, const char *const *values,
                     const char *then, bool *then_ran, struct db_result *r)
{
    char name[PREPARED_NAME];
    const char *prepared = NULL;
    if (!s->command) {
        if (!prepared_name(s, sql, n, name, r))
            return NULL;
        prepared = name;
    }
    if (s->begin_pending || then)
        return exec_batch(s, prepared, prepared ? NULL : sql, n, values, then, then_ran);
    *then_ran = false;
    return prepared ? PQexecPrepared(s->pg, prepared, n, values, NULL, NULL, 0)
                    : PQexecParams(s->pg, sql, n, NULL, values, NULL, NULL, 0);
}

enum db_status db_exec(const char *sql, int n, const char *const *values, struct db_result *r)
{
    *r = (struct db_result){.status = DB_UNAVAILABLE};
    struct slot *s = my_slot();
    PGconn *pg = s ? hold(s) : NULL;
    if (!pg) {
        if (s)
            let_go(s);
        return DB_UNAVAILABLE;
    }
    PGresult *res;
    bool unused;
    if (!s->command && PQtransactionStatus(pg) == PQTRANS_INERROR) {
        /* A failed transaction refuses every statement until its rollback: have PostgreSQL say
         * so, without preparing (or evicting) anything for it. */
        metrics_db_unprepared(METRICS_DB_WORKER);
        res = PQexecParams(pg, sql, n, NULL, values, NULL, NULL, 0);
    } else if (!(res = run(s, sql, n, values, NULL, &unused, r)) && r->res) {
        let_go(s); /* it could not be prepared: r says why */
        return r->status;
    }
    enum db_status status = db_result_of(r, res, pg);
    if (status == DB_OK)
        atomic_fetch_add_explicit(&s->succeeded, 1, memory_order_relaxed);
    let_go(s);
    return status;
}

void db_clear(struct db_result *r)
{
    PQclear(r->res);
    r->res = NULL;
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

/* ---- transactions ---- */

/* Transaction control goes through the simple protocol: it takes no parameters, and a ROLLBACK
 * must work in an aborted transaction without preparing anything. s is held. */
static enum db_status simple(struct slot *s, const char *command)
{
    if (!s->pg || PQstatus(s->pg) != CONNECTION_OK)
        return DB_UNAVAILABLE;
    char with_begin[80];
    if (s->begin_pending) { /* a savepoint first thing: one round trip all the same */
        snprintf(with_begin, sizeof with_begin, "BEGIN; %s", command);
        command = with_begin;
        s->begin_pending = false;
    }
    struct db_result r = {0};
    enum db_status status = db_result_of(&r, PQexec(s->pg, command), s->pg);
    db_clear(&r);
    return status;
}

/* Transactions nest: an inner one is a savepoint, so a handler that runs its own transaction
 * can run inside another (an idempotent POST stores its answer in the transaction of its
 * effect). */
enum db_status db_begin(void)
{
    struct slot *s = my_slot();
    if (!s || !hold(s)) {
        if (s)
            let_go(s);
        return DB_UNAVAILABLE;
    }
    if (s->depth == 0) { /* BEGIN goes with the first statement */
        s->depth = 1;
        s->begin_pending = true;
        return DB_OK;
    }
    char sql[32];
    snprintf(sql, sizeof sql, "SAVEPOINT s%d", s->depth);
    enum db_status status = simple(s, sql);
    if (status == DB_OK)
        s->depth++;
    let_go(s);
    return status;
}

/* Returns to the level below the innermost one on s. */
static void rollback_level(struct slot *s)
{
    if (s->depth == 0)
        return;
    bool alive = s->pg && PQstatus(s->pg) == CONNECTION_OK;
    if (s->depth > 1 && alive) {
        char sql[64];
        snprintf(sql, sizeof sql, "ROLLBACK TO SAVEPOINT s%d", s->depth - 1);
        s->depth--;
        simple(s, sql);
        return;
    }
    s->depth = 0; /* a lost connection takes every level with it */
    s->begin_pending = false;
    if (alive && PQtransactionStatus(s->pg) != PQTRANS_IDLE)
        simple(s, "ROLLBACK");
    let_go(s);
}

/* A commit of a failed transaction is refused, and the level rolled back: PostgreSQL would answer
 * COMMIT with a ROLLBACK that looks like success. */
static bool failed_commit(struct slot *s)
{
    if (!s->pg || PQtransactionStatus(s->pg) != PQTRANS_INERROR)
        return false;
    log_event("error", "database: commit of a failed transaction: rolled back");
    rollback_level(s);
    return true;
}

/* What ends the innermost level of s: COMMIT, or the release of its savepoint. */
static void commit_command(const struct slot *s, char sql[40])
{
    if (s->depth > 1)
        snprintf(sql, 40, "RELEASE SAVEPOINT s%d", s->depth - 1);
    else
        strcpy(sql, "COMMIT");
}

bool db_lsn_parse(const char *text, uint64_t *out)
{
    unsigned hi, lo;
    int used = 0;
    if (!text || sscanf(text, "%8X/%8X%n", &hi, &lo, &used) != 2 || text[used] != '\0')
        return false;
    *out = (uint64_t)hi << 32 | lo;
    return true;
}

void db_track_commit_positions(bool on)
{
    atomic_store(&positions_wanted, on);
}

uint64_t db_take_commit_position(void)
{
    uint64_t position = committed_position;
    committed_position = 0;
    return position;
}

uint64_t db_position_now(void)
{
    struct db_result r;
    uint64_t position = 0;
    if (db_exec(db_position_sql, 0, NULL, &r) == DB_OK && db_rows(&r) == 1 &&
        !db_lsn_parse(db_value(&r, 0, 0), &position))
        position = 0;
    db_clear(&r);
    return position;
}

/* The outermost COMMIT and, in the same round trip, where the WAL then stands. */
static enum db_status commit_noting_position(struct slot *s)
{
    if (!s->pg || PQstatus(s->pg) != CONNECTION_OK)
        return DB_UNAVAILABLE;
    char sql[64];
    snprintf(sql, sizeof sql, "COMMIT; %s", db_position_sql);
    struct db_result r = {0};
    enum db_status status = db_result_of(&r, PQexec(s->pg, sql), s->pg);
    if (status == DB_OK)
        take_position(r.res);
    db_clear(&r);
    return status;
}

enum db_status db_commit(void)
{
    struct slot *s = mine;
    if (!s || s->depth == 0)
        return DB_ERROR;
    if (failed_commit(s))
        return DB_ERROR;
    char sql[40];
    commit_command(s, sql);
    s->depth--;
    enum db_status status = DB_OK;
    if (s->begin_pending) /* nothing ran: nothing to commit */
        s->begin_pending = false;
    else if (wants_position(s, sql))
        status = commit_noting_position(s);
    else
        status = simple(s, sql);
    let_go(s);
    return status;
}

enum db_status db_commit_after(const char *sql, int n, const char *const *values)
{
    struct slot *s = mine;
    if (!s || s->depth == 0)
        return DB_ERROR;
    if (!s->pg || PQstatus(s->pg) != CONNECTION_OK)
        return DB_UNAVAILABLE; /* the request's end rolls back */
    if (failed_commit(s))
        return DB_ERROR;
    char then[40];
    commit_command(s, then);
    struct db_result r = {0};
    bool committed = false;
    PGresult *res = run(s, sql, n, values, then, &committed, &r);
    if (!res) { /* r holds why when it could not be prepared; the level stays open */
        enum db_status failed = r.res ? r.status : DB_UNAVAILABLE;
        db_clear(&r);
        let_go(s);
        return failed;
    }
    /* A COMMIT carried out ends the level, also when it failed (the transaction is then rolled
     * back); one skipped after the statement failed leaves it open for the request's end. */
    if (committed)
        s->depth--;
    enum db_status status = db_result_of(&r, res, s->pg);
    db_clear(&r);
    if (status == DB_OK)
        atomic_fetch_add_explicit(&s->succeeded, 1, memory_order_relaxed);
    let_go(s);
    return status;
}

void db_rollback(void)
{
    if (mine)
        rollback_level(mine);
}

int db_transaction_depth(void)
{
    return mine ? mine->depth : 0;
}

void db_rollback_to(int depth)
{
    while (mine && mine->depth > depth)
        rollback_level(mine);
}

/* The slot goes back to the registry; a transaction its thread left open is rolled back. */
static void give_back(struct slot *s)
{
    while (s->depth > 0)
        rollback_level(s);
    pthread_mutex_lock(&registry);
    s->taken = false;
    pthread_mutex_unlock(&registry);
}

/* ---- commands ---- */

bool db_open_command(const char *url, char *err, size_t err_len)
{
    if (mine) {
        snprintf(err, err_len, "this thread has a database connection already");
        return false;
    }
    PGconn *pg = db_connect_once(url, err, err_len);
    if (!pg)
        return false;
    struct slot *s = xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    atomic_store(&s->kind, "command");
    s->command = true;
    s->pg = pg;
    atomic_store(&s->up, true);
    atomic_store(&s->tried, true);
    mine = s;
    return true;
}

void db_close_command(void)
{
    struct slot *s = mine;
    if (!s || !s->command)
        return;
    while (s->depth > 0)
        rollback_level(s);
    drop(s);
    pthread_mutex_destroy(&s->lock);
    free(s);
    mine = NULL;
}

void db_disconnect(void)
{
    if (!mine)
        return;
    pthread_setspecific(thread_end, NULL);
    give_back(mine);
    mine = NULL;
}

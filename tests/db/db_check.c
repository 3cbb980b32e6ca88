/* db_check DATABASE_URL: the threads' connections (server/db) against a real PostgreSQL.
 *
 * Run by tests/api/test_db.py on the throwaway cluster. Each check prints "ok N - what" or
 * "not ok N - what: why"; the exit status is the number that failed. Checked:
 *   - db_start() makes every slot's connection before it returns;
 *   - threads each take a slot of their own, and a thread beyond them gets a new one, which the
 *     keeper connects;
 *   - transactions nest, db_transaction_depth() counts them, db_rollback_to() undoes the levels
 *     above the one asked for and keeps what is below;
 *   - a commit of a failed transaction is an error, not PostgreSQL's silent ROLLBACK;
 *   - a BEGIN sent with the transaction's first statement opens the transaction for it and
 *     those after (one transaction id), also when that statement is a savepoint's;
 *     db_commit_after() commits its statement with the rest, leaves the level open when its
 *     statement fails, and ends it when the COMMIT itself fails;
 *   - with positions tracked, an outermost commit gives the WAL position after it, once;
 *   - a connection lost inside a transaction runs nothing more (none of its statements runs
 *     outside the transaction) until the rollback, and then comes back;
 *   - connections killed while idle come back by themselves, with no statement run on them;
 *   - more distinct statements than a connection keeps prepared all answer right, the least
 *     recently used are deallocated on the server, and none runs unprepared;
 *   - db_stop() closes every connection. */
#include "buf.h"
#include "db.h"
#include "metrics.h"
#include "prepared.h"

#include "tap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 3

static const char *url;

/* The first value of sql's first row, into out ("" when there is none); the status. */
static enum db_status value_of(const char *sql, int n, const char *const *values, char *out,
                               size_t len)
{
    struct db_result r;
    enum db_status s = db_exec(sql, n, values, &r);
    out[0] = '\0';
    if (s == DB_OK && db_rows(&r) > 0 && db_value(&r, 0, 0))
        snprintf(out, len, "%s", db_value(&r, 0, 0));
    db_clear(&r);
    return s;
}

static struct metrics_connection kept[DB_MAX_SLOTS];

static size_t connections(void)
{
    return db_connections(kept, DB_MAX_SLOTS);
}

static size_t up(void)
{
    size_t n = connections(), count = 0;
    for (size_t i = 0; i < n; i++)
        count += kept[i].up;
    return count;
}

static unsigned long made(void)
{
    size_t n = connections();
    unsigned long count = 0;
    for (size_t i = 0; i < n; i++)
        count += kept[i].made;
    return count;
}

/* A sample of the metrics, e.g. "werklabd_db_statements_evicted_total{connection=\"worker\"}". */
static unsigned long metric(const char *sample)
{
    struct buf text = {0}, line = {0};
    metrics_render(&text, 0, NULL, 0);
    buf_printf(&line, "\n%s ", sample);
    const char *at = strstr(text.data, line.data);
    unsigned long v = at ? strtoul(at + line.len, NULL, 10) : 0;
    buf_free(&text);
    buf_free(&line);
    return v;
}

/* Terminates the backends whose pids are listed in pids ("{1,2}"): this program's own, never
 * those of a daemon on the same cluster. Returns how many. */
static int terminate(const char *pids)
{
    char err[256];
    PGconn *admin = db_connect_once(url, err, sizeof err);
    if (!admin)
        return -1;
    const char *values[] = {pids};
    PGresult *res =
        PQexecParams(admin, "SELECT count(pg_terminate_backend(pid)) FROM unnest($1::int[]) pid", 1,
                     NULL, values, NULL, NULL, 0);
    int n = PQresultStatus(res) == PGRES_TUPLES_OK ? atoi(PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);
    PQfinish(admin);
    return n;
}

/* Waits up to seconds for done() to hold. */
static bool eventually(bool (*done)(void), int seconds)
{
    for (int i = 0; i < seconds * 100; i++) {
        if (done())
            return true;
        usleep(10000);
    }
    return done();
}

static void started(void)
{
    char why[80];
    snprintf(why, sizeof why, "%zu slots, %zu up, made %lu times", connections(), up(), made());
    check(connections() == SLOTS && up() == SLOTS && made() == SLOTS,
          "db_start() returns with every slot connected", why);
}

/* ---- slots and threads ---- */

static pthread_barrier_t all_in;
static char pids[DB_MAX_SLOTS][32];

static void *take_a_slot(void *arg)
{
    long i = (long)arg;
    /* A thread beyond the slots made at start gets a new one, connected by the keeper: its
     * first statements may find it not yet made. */
    for (int attempt = 0; attempt < 500; attempt++) {
        if (value_of("SELECT pg_backend_pid()::text", 0, NULL, pids[i], sizeof pids[i]) == DB_OK)
            break;
        usleep(10000);
    }
    pthread_barrier_wait(&all_in); /* all hold their slots at once */
    db_disconnect();
    return NULL;
}

/* n threads at once each take a slot and note its backend's pid in pids[first...]. */
static void take_slots(int first, int n)
{
    pthread_t threads[DB_MAX_SLOTS];
    pthread_barrier_init(&all_in, NULL, (unsigned)n);
    for (long i = 0; i < n; i++)
        pthread_create(&threads[i], NULL, take_a_slot, (void *)(first + i));
    for (int i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&all_in);
}

static void threads_take_slots(void)
{
    take_slots(0, SLOTS + 1);
    bool distinct = true;
    for (int i = 0; i <= SLOTS; i++)
        for (int k = 0; k < i; k++)
            distinct &= pids[i][0] && strcmp(pids[i], pids[k]) != 0;
    check(distinct, "threads at once each run on a connection of their own", "shared or missing");
    check(connections() == SLOTS + 1, "the thread beyond the slots made one more", "it did not");
}

/* The backend pids of every slot, as "{1,2,3}", from the calling thread (which holds a slot) and
 * as many threads as there are other slots. */
static void every_pid(struct buf *out)
{
    int n = (int)connections();
    value_of("SELECT pg_backend_pid()::text", 0, NULL, pids[0], sizeof pids[0]);
    take_slots(1, n - 1);
    buf_puts(out, "{");
    for (int i = 0; i < n; i++)
        buf_printf(out, "%s%s", i ? "," : "", pids[i]);
    buf_puts(out, "}");
}

/* ---- transactions ---- */

static void transactions(void)
{
    char v[64];
    struct db_result r;
    db_exec("CREATE TEMPORARY TABLE t (x int)", 0, NULL, &r);
    db_clear(&r);
    check(db_transaction_depth() == 0, "outside a transaction the depth is 0", "it is not");
    db_begin();
    db_exec("INSERT INTO t VALUES (1)", 0, NULL, &r);
    db_clear(&r);
    db_begin();
    db_exec("INSERT INTO t VALUES (2)", 0, NULL, &r);
    db_clear(&r);
    db_begin();
    check(db_transaction_depth() == 3, "a transaction and two savepoints: depth 3", "not 3");
    db_rollback_to(1);
    check(db_transaction_depth() == 1, "rolled back to depth 1", "another depth");
    db_commit();
    value_of("SELECT string_agg(x::text, ',') FROM t", 0, NULL, v, sizeof v);
    check(strcmp(v, "1") == 0, "what was below the level asked for is kept, the rest undone", v);

    db_begin();
    db_exec("INSERT INTO t VALUES (3)", 0, NULL, &r);
    db_clear(&r);
    db_begin();
    db_exec("INSERT INTO t VALUES (4)", 0, NULL, &r);
    db_clear(&r);
    db_rollback_to(0);
    check(db_transaction_depth() == 0, "db_rollback_to(0) leaves no level open", "it does");
    value_of("SELECT string_agg(x::text, ',') FROM t", 0, NULL, v, sizeof v);
    check(strcmp(v, "1") == 0, "... and undoes every level", v);
    /* The rolled back inserts had a transaction id: a transaction still open would have it. */
    value_of("SELECT pg_current_xact_id_if_assigned() IS NULL", 0, NULL, v, sizeof v);
    check(strcmp(v, "t") == 0, "... on the server too: no transaction is open", v);

    db_begin();
    check(value_of("SELECT 1 / 0", 0, NULL, v, sizeof v) == DB_INVALID_INPUT,
          "a statement fails inside a transaction", "it did not");
    check(value_of("SELECT 1", 0, NULL, v, sizeof v) == DB_ERROR,
          "the failed transaction refuses the next statement", "it did not");
    check(db_commit() == DB_ERROR, "committing the failed transaction is an error", "it is not");
    check(db_transaction_depth() == 0, "... and it is over", "it is not");
    check(value_of("SELECT 2", 0, NULL, v, sizeof v) == DB_OK && strcmp(v, "2") == 0,
          "the connection goes on", v);
    db_exec("DROP TABLE t", 0, NULL, &r);
    db_clear(&r);
}

/* The few round trips of a write: BEGIN with the first statement, the last with the COMMIT. */
static void transactions_in_few_round_trips(void)
{
    char v[64], xid[64];
    struct db_result r;
    db_exec("CREATE TEMPORARY TABLE t (x int)", 0, NULL, &r);
    db_clear(&r);
    db_exec("CREATE TEMPORARY TABLE u (x int UNIQUE DEFERRABLE INITIALLY DEFERRED)", 0, NULL, &r);
    db_clear(&r);

    db_begin();
    value_of("SELECT pg_current_xact_id()::text", 0, NULL, xid, sizeof xid);
    value_of("SELECT pg_current_xact_id()::text", 0, NULL, v, sizeof v);
    check(xid[0] && strcmp(xid, v) == 0,
          "the first statement after db_begin() and the next run in one transaction", v);
    db_exec("INSERT INTO t VALUES (5)", 0, NULL, &r);
    db_clear(&r);
    const char *six[] = {"6"};
    check(db_commit_after("INSERT INTO t VALUES ($1::int)", 1, six) == DB_OK,
          "db_commit_after() commits", "it did not");
    check(db_transaction_depth() == 0, "... and ends the transaction", "it did not");
    value_of("SELECT string_agg(x::text, ',' ORDER BY x) FROM t", 0, NULL, v, sizeof v);
    check(strcmp(v, "5,6") == 0, "... with its statement and those before it", v);

    db_begin();
    db_begin();
    check(db_transaction_depth() == 2, "a savepoint as the first thing: depth 2", "not 2");
    value_of("SELECT pg_current_xact_id()::text", 0, NULL, xid, sizeof xid);
    db_rollback();
    value_of("SELECT pg_current_xact_id()::text", 0, NULL, v, sizeof v);
    check(xid[0] && strcmp(xid, v) == 0, "... inside the transaction the BEGIN opened", v);
    db_rollback();

    db_begin();
    db_exec("INSERT INTO t VALUES (7)", 0, NULL, &r);
    db_clear(&r);
    check(db_commit_after("INSERT INTO t VALUES (1 / 0)", 0, NULL) == DB_INVALID_INPUT,
          "db_commit_after() says its statement failed", "it did not");
    check(db_transaction_depth() == 1, "... and leaves the transaction open", "it did not");
    db_rollback();
    value_of("SELECT string_agg(x::text, ',' ORDER BY x) FROM t", 0, NULL, v, sizeof v);
    check(strcmp(v, "5,6") == 0, "... which the rollback undoes", v);

    db_begin();
    db_exec("INSERT INTO t VALUES (8)", 0, NULL, &r);
    db_clear(&r);
    check(db_commit_after("INSERT INTO u VALUES (1), (1)", 0, NULL) == DB_UNIQUE,
          "a COMMIT that fails (a deferred unique key) is db_commit_after()'s status", "it is not");
    check(db_transaction_depth() == 0, "... and has ended the transaction", "it has not");
    value_of("SELECT (SELECT count(*) FROM u) || ',' || (SELECT count(*) FROM t WHERE x = 8)", 0,
             NULL, v, sizeof v);
    check(strcmp(v, "0,0") == 0, "... with nothing of it kept", v);

    db_begin();
    check(db_commit() == DB_OK, "a transaction that ran nothing commits", "it did not");
    check(value_of("SELECT 9", 0, NULL, v, sizeof v) == DB_OK && strcmp(v, "9") == 0,
          "... and the connection goes on", v);
    db_exec("DROP TABLE t, u", 0, NULL, &r);
    db_clear(&r);
}

/* With positions tracked (read replicas), the outermost commit hands over where the WAL stood
 * once it was done: past the WAL its transaction wrote, asked in the same round trip. */
static void commit_positions(void)
{
    char before[64], after[64];
    uint64_t start = 0, end = 0, position;
    struct db_result r;
    db_exec("CREATE TEMPORARY TABLE p (x int)", 0, NULL, &r);
    db_clear(&r);
    db_track_commit_positions(true);
    db_take_commit_position();

    value_of("SELECT pg_current_wal_insert_lsn()::text", 0, NULL, before, sizeof before);
    db_begin();
    db_exec("INSERT INTO p SELECT generate_series(1, 100)", 0, NULL, &r);
    db_clear(&r);
    check(db_commit() == DB_OK, "db_commit() with positions tracked commits", "it did not");
    position = db_take_commit_position();
    value_of("SELECT pg_current_wal_insert_lsn()::text", 0, NULL, after, sizeof after);
    check(db_lsn_parse(before, &start) && db_lsn_parse(after, &end) && position > start &&
              position <= end,
          "... and gives the WAL position after its commit", before);
    check(db_take_commit_position() == 0, "... once", "twice");

    db_begin();
    db_exec("INSERT INTO p VALUES (1)", 0, NULL, &r);
    db_clear(&r);
    value_of("SELECT pg_current_wal_insert_lsn()::text", 0, NULL, before, sizeof before);
    const char *two[] = {"2"};
    check(db_commit_after("INSERT INTO p VALUES ($1::int)", 1, two) == DB_OK,
          "db_commit_after() with positions tracked commits", "it did not");
    position = db_take_commit_position();
    check(db_lsn_parse(before, &start) && position > start,
          "... and gives the WAL position after its commit", before);

    db_begin();
    db_begin();
    db_exec("INSERT INTO p VALUES (3)", 0, NULL, &r);
    db_clear(&r);
    check(db_commit() == DB_OK && db_take_commit_position() == 0,
          "a savepoint's release gives no position", "it did");
    check(db_commit_after("INSERT INTO p VALUES (1 / 0)", 0, NULL) == DB_INVALID_INPUT &&
              db_take_commit_position() == 0,
          "a commit whose statement failed gives no position", "it did");
    db_rollback();
    db_track_commit_positions(false);
    db_exec("DROP TABLE p", 0, NULL, &r);
    db_clear(&r);
}

static bool all_up(void)
{
    return up() == connections();
}

static unsigned long made_target;

static bool all_made_again(void)
{
    return all_up() && made() >= made_target;
}

static void lost_inside_a_transaction(void)
{
    char v[64];
    char own[80];
    db_begin();
    value_of("SELECT pg_backend_pid()::text", 0, NULL, v, sizeof v);
    snprintf(own, sizeof own, "{%s}", v);
    terminate(own);
    check(value_of("SELECT 1", 0, NULL, v, sizeof v) == DB_UNAVAILABLE,
          "a statement on a connection lost in a transaction is unavailable", "it is not");
    usleep(300 * 1000); /* time enough for the keeper, were it allowed to make it again */
    check(value_of("SELECT 1", 0, NULL, v, sizeof v) == DB_UNAVAILABLE,
          "... and so is the next: nothing runs outside the transaction", "it ran");
    check(db_transaction_depth() == 1, "the transaction stays open until its rollback", "not");
    db_rollback();
    check(eventually(all_up, 10), "after the rollback the keeper makes the connection again",
          "it did not");
    check(value_of("SELECT 3", 0, NULL, v, sizeof v) == DB_OK && strcmp(v, "3") == 0,
          "... and statements run on it", v);
}

static void killed_while_idle(void)
{
    struct buf all = {0};
    every_pid(&all);
    unsigned long before = made();
    size_t n = connections();
    made_target = before + n;
    char why[64];
    int killed = terminate(all.data);
    buf_free(&all);
    snprintf(why, sizeof why, "%d of %zu", killed, n);
    check(killed == (int)n, "every kept connection's backend is terminated", why);
    /* No statement runs meanwhile: the keeper notices and connects by itself. */
    bool back = eventually(all_made_again, 10);
    snprintf(why, sizeof why, "%zu of %zu up, made %lu times (before %lu)", up(), n, made(),
             before);
    check(back, "every connection comes back by itself, without a statement", why);
    char v[64];
    check(value_of("SELECT 4", 0, NULL, v, sizeof v) == DB_OK && strcmp(v, "4") == 0,
          "... and the first statement after it succeeds", v);
}

/* ---- prepared statements ---- */

static void more_statements_than_slots(void)
{
    enum { DISTINCT = PREPARED_SLOTS + 60 };
    unsigned long evicted = metric("werklabd_db_statements_evicted_total{connection=\"worker\"}");
    unsigned long prepared = metric("werklabd_db_statements_prepared_total{connection=\"worker\"}");
    unsigned long unprepared =
        metric("werklabd_db_statements_unprepared_total{connection=\"worker\"}");
    int wrong = 0;
    char sql[64], v[32], expected[32], why[128] = "";
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < DISTINCT; i++) {
            snprintf(sql, sizeof sql, "SELECT $1::int + %d", i);
            const char *values[] = {"1000"};
            snprintf(expected, sizeof expected, "%d", 1000 + i);
            if (value_of(sql, 1, values, v, sizeof v) != DB_OK || strcmp(v, expected) != 0) {
                if (wrong++ == 0)
                    snprintf(why, sizeof why, "%s gave '%s'", sql, v);
            }
        }
    }
    check(wrong == 0, "more distinct statements than slots, twice over, all answer right", why);
    unsigned long now_evicted =
        metric("werklabd_db_statements_evicted_total{connection=\"worker\"}") - evicted;
    unsigned long now_prepared =
        metric("werklabd_db_statements_prepared_total{connection=\"worker\"}") - prepared;
    snprintf(why, sizeof why, "%lu evicted, %lu prepared", now_evicted, now_prepared);
    check(now_evicted >= 2 * DISTINCT - PREPARED_SLOTS && now_prepared >= 2 * DISTINCT,
          "the least recently used were evicted, and prepared again when used again", why);
    check(metric("werklabd_db_statements_unprepared_total{connection=\"worker\"}") == unprepared,
          "none ran unprepared", "some did");
    value_of("SELECT count(*)::text FROM pg_prepared_statements", 0, NULL, v, sizeof v);
    check(atoi(v) > 0 && atoi(v) <= PREPARED_SLOTS,
          "the server holds no more prepared statements than the table", v);
}

static void stopped(void)
{
    db_stop();
    char why[32];
    snprintf(why, sizeof why, "%d open", db_open_connections());
    check(db_open_connections() == 0 && connections() == 0, "db_stop() closes every connection",
          why);
}

/* The main thread's statements run on its own slot, taken like any thread's. */
static void *main_checks(void *unused)
{
    (void)unused;
    transactions();
    transactions_in_few_round_trips();
    commit_positions();
    lost_inside_a_transaction();
    killed_while_idle();
    more_statements_than_slots();
    db_disconnect();
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: db_check DATABASE_URL\n");
        return 2;
    }
    url = argv[1];
    db_configure(url, 1000);
    db_start(SLOTS);
    started();
    threads_take_slots();
    pthread_t thread;
    pthread_create(&thread, NULL, main_checks, NULL);
    pthread_join(thread, NULL);
    stopped();
    return tap_done();
}

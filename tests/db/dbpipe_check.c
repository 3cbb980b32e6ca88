/* dbpipe_check DATABASE_URL: the database pipeline against a real PostgreSQL.
 *
 * Run by tests/api/test_dbpipe.py on the throwaway cluster. Each check prints "ok N - what" or
 * "not ok N - what: why"; the exit status is the number that failed. Checked:
 *   - thousands of statements submitted at once from several threads all get their own result,
 *     and they went in batches of more than one;
 *   - a failing statement gets its own error, and the statements its failure aborted are sent
 *     again and succeed;
 *   - NULL parameters, and more distinct statements than are kept prepared: the least recently
 *     used are deallocated (the server holds no more than the table), none runs unprepared;
 *   - a statement that cannot be prepared fails alone: statements new with it succeed;
 *   - a statement over statement_timeout is DB_UNAVAILABLE and the pipe goes on;
 *   - a connection killed under it: what it had is answered, and it connects again;
 *   - a connection killed while idle: it connects again by itself, with no statement to send;
 *   - writes (dbpipe_submit_write) from several threads: each is answered once it is committed
 *     (another connection sees it from within the answer), a failing one fails alone and rolls
 *     back no other, and reads on the pipes for reads go on meanwhile;
 *   - stopping answers everything exactly once, and submitting after the stop answers at once. */
#include "db.h"
#include "dbpipe.h"
#include "metrics.h"
#include "prepared.h"

#include "tap.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MANY    4000
#define THREADS 4
#define FAILING 37 /* every 37th statement divides by zero */

struct outcome {
    atomic_int calls;
    enum db_status status;
    char value[64];
    bool null;
};

static struct outcome outcomes[MANY];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int answered;

static void on_done(void *ctx, struct db_result *r)
{
    struct outcome *o = ctx;
    o->status = r->status;
    o->null = r->status == DB_OK && db_rows(r) == 1 && !db_value(r, 0, 0);
    if (r->status == DB_OK && db_rows(r) == 1 && db_value(r, 0, 0))
        snprintf(o->value, sizeof o->value, "%s", db_value(r, 0, 0));
    db_clear(r);
    atomic_fetch_add(&o->calls, 1);
    pthread_mutex_lock(&lock);
    answered++;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

static void reset(int n)
{
    for (int i = 0; i < n; i++) {
        atomic_store(&outcomes[i].calls, 0);
        outcomes[i].status = DB_ERROR;
        outcomes[i].value[0] = '\0';
        outcomes[i].null = false;
    }
    pthread_mutex_lock(&lock);
    answered = 0;
    pthread_mutex_unlock(&lock);
}

/* Waits until n answers are in, up to seconds; false on timeout. */
static bool wait_answers(int n, int seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += seconds;
    pthread_mutex_lock(&lock);
    int rc = 0;
    while (answered < n && rc == 0)
        rc = pthread_cond_timedwait(&changed, &lock, &until);
    bool all = answered >= n;
    pthread_mutex_unlock(&lock);
    return all;
}

static void submit_number(int i)
{
    char text[16];
    snprintf(text, sizeof text, "%d", i);
    const char *values[] = {text};
    if (i % FAILING == 0)
        dbpipe_submit("SELECT 1 / ($1::int - $1::int)", 1, values, on_done, &outcomes[i]);
    else
        dbpipe_submit("SELECT $1::int * 2", 1, values, on_done, &outcomes[i]);
}

static void *submitter(void *arg)
{
    for (int i = (int)(long)arg; i < MANY; i += THREADS)
        submit_number(i);
    return NULL;
}

static unsigned long metric(const char *name)
{
    struct buf text = {0}, line = {0};
    metrics_render(&text, 0, NULL, 0);
    buf_printf(&line, "\n%s ", name); /* the sample, not the HELP or TYPE line */
    const char *at = strstr(text.data, line.data);
    unsigned long v = at ? strtoul(at + line.len, NULL, 10) : 0;
    buf_free(&text);
    buf_free(&line);
    return v;
}

static void many_at_once(void)
{
    reset(MANY);
    unsigned long batches = metric("werklabd_db_pipeline_batches_total");
    unsigned long statements = metric("werklabd_db_pipeline_statements_total");
    pthread_t threads[THREADS];
    for (long t = 0; t < THREADS; t++)
        pthread_create(&threads[t], NULL, submitter, (void *)t);
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    check(wait_answers(MANY, 30), "4000 statements from 4 threads are all answered", "timed out");
    int wrong = 0, twice = 0;
    char why[160] = "";
    for (int i = 0; i < MANY; i++) {
        struct outcome *o = &outcomes[i];
        char expected[16];
        snprintf(expected, sizeof expected, "%d", i * 2);
        bool ok = i % FAILING == 0 ? o->status == DB_INVALID_INPUT
                                   : o->status == DB_OK && strcmp(o->value, expected) == 0;
        if (!ok && wrong++ == 0)
            snprintf(why, sizeof why, "statement %d: status %d, value '%s'", i, o->status,
                     o->value);
        twice += atomic_load(&o->calls) != 1;
    }
    check(wrong == 0, "each gets its own result; the failing ones their error", why);
    check(twice == 0, "each is answered exactly once", "some were answered twice or never");
    unsigned long sent_batches = metric("werklabd_db_pipeline_batches_total") - batches;
    unsigned long sent = metric("werklabd_db_pipeline_statements_total") - statements;
    snprintf(why, sizeof why, "%lu statements in %lu batches", sent, sent_batches);
    check(sent >= MANY && sent_batches < sent, "they went in batches of more than one", why);
    printf("# %s\n", why);
    check(metric("werklabd_db_pipeline_resent_total") > 0,
          "statements aborted by a failing one were sent again", "none was resent");
}

static unsigned long pipeline_metric(const char *name)
{
    char sample[128];
    snprintf(sample, sizeof sample, "%s{connection=\"pipeline\"}", name);
    return metric(sample);
}

/* The first value of one statement sent through the pipe ("" when it failed). */
static void one_value(const char *sql, char *out, size_t len)
{
    reset(1);
    dbpipe_submit(sql, 0, NULL, on_done, &outcomes[0]);
    wait_answers(1, 10);
    snprintf(out, len, "%s", outcomes[0].status == DB_OK ? outcomes[0].value : "");
}

static void nulls_and_many_statements(void)
{
    enum { DISTINCT = PREPARED_SLOTS + 172 }; /* more than a connection keeps prepared */
    static char sql[DISTINCT][48];
    unsigned long evicted = pipeline_metric("werklabd_db_statements_evicted_total");
    reset(DISTINCT + 1);
    for (int i = 0; i < DISTINCT; i++) {
        snprintf(sql[i], sizeof sql[i], "SELECT $1::int + %d", i);
        const char *values[] = {"1000"};
        dbpipe_submit(sql[i], 1, values, on_done, &outcomes[i]);
    }
    const char *null_value[] = {NULL};
    dbpipe_submit("SELECT $1::text", 1, null_value, on_done, &outcomes[DISTINCT]);
    check(wait_answers(DISTINCT + 1, 30), "300 distinct statements are answered", "timed out");
    int wrong = 0;
    for (int i = 0; i < DISTINCT; i++) {
        char expected[16];
        snprintf(expected, sizeof expected, "%d", 1000 + i);
        wrong += outcomes[i].status != DB_OK || strcmp(outcomes[i].value, expected) != 0;
    }
    check(wrong == 0, "prepared or not, each gives its own value", "a value was wrong");
    check(outcomes[DISTINCT].status == DB_OK && outcomes[DISTINCT].null,
          "a NULL parameter is SQL NULL", "not NULL");
    /* Again, the first ones were evicted meanwhile: prepared anew, under new names. */
    reset(DISTINCT);
    for (int i = 0; i < DISTINCT; i++) {
        const char *values[] = {"2000"};
        dbpipe_submit(sql[i], 1, values, on_done, &outcomes[i]);
    }
    check(wait_answers(DISTINCT, 30), "... and again, all answered", "timed out");
    wrong = 0;
    for (int i = 0; i < DISTINCT; i++) {
        char expected[16];
        snprintf(expected, sizeof expected, "%d", 2000 + i);
        wrong += outcomes[i].status != DB_OK || strcmp(outcomes[i].value, expected) != 0;
    }
    check(wrong == 0, "... each with its own value", "a value was wrong");
    char why[96];
    unsigned long now_evicted = pipeline_metric("werklabd_db_statements_evicted_total") - evicted;
    snprintf(why, sizeof why, "%lu evicted", now_evicted);
    check(now_evicted >= 2 * DISTINCT - PREPARED_SLOTS,
          "the least recently used were deallocated to make room", why);
    check(pipeline_metric("werklabd_db_statements_unprepared_total") == 0, "none ran unprepared",
          "some did");
    char count[32];
    one_value("SELECT count(*)::text FROM pg_prepared_statements", count, sizeof count);
    check(atoi(count) > 0 && atoi(count) <= PREPARED_SLOTS,
          "the server holds no more prepared statements than the table", count);
}

static void unpreparable(void)
{
    enum { NEW = 20 };
    static char sql[NEW][64];
    reset(NEW + 1);
    dbpipe_submit("SELECT no_such_column FROM no_such_table", 0, NULL, on_done, &outcomes[NEW]);
    for (int i = 0; i < NEW; i++) {
        snprintf(sql[i], sizeof sql[i], "SELECT $1::int * 1000 + %d", i);
        const char *values[] = {"7"};
        dbpipe_submit(sql[i], 1, values, on_done, &outcomes[i]);
    }
    check(wait_answers(NEW + 1, 30), "a statement that cannot be prepared is answered",
          "timed out");
    check(outcomes[NEW].status == DB_ERROR, "... as an error (500)", "another status");
    int wrong = 0;
    for (int i = 0; i < NEW; i++) {
        char expected[16];
        snprintf(expected, sizeof expected, "%d", 7000 + i);
        wrong += outcomes[i].status != DB_OK || strcmp(outcomes[i].value, expected) != 0;
    }
    check(wrong == 0, "the statements new with it are prepared and answered", "one was not");
}

static void timeout(void)
{
    reset(2);
    dbpipe_submit("SELECT pg_sleep(1.5)::text", 0, NULL, on_done, &outcomes[0]);
    const char *values[] = {"21"};
    dbpipe_submit("SELECT $1::int * 2", 1, values, on_done, &outcomes[1]);
    check(wait_answers(2, 10), "a statement over the timeout is answered", "timed out");
    check(outcomes[0].status == DB_UNAVAILABLE, "... as unavailable (503)", "another status");
    check(outcomes[1].status == DB_OK && strcmp(outcomes[1].value, "42") == 0,
          "the statement behind it succeeds", "it did not");
}

static void killed_connection(const char *url)
{
    reset(1);
    dbpipe_submit("SELECT pg_backend_pid()::text", 0, NULL, on_done, &outcomes[0]);
    wait_answers(1, 10);
    char pid[64];
    snprintf(pid, sizeof pid, "%s", outcomes[0].value);
    char err[256];
    PGconn *admin = db_connect_once(url, err, sizeof err);
    if (!admin) {
        check(false, "a second connection to kill the pipeline's", err);
        return;
    }
    reset(MANY);
    /* Statements under way while the backend dies: each is answered, one way or the other. */
    dbpipe_submit("SELECT pg_sleep(0.5)::text", 0, NULL, on_done, &outcomes[0]);
    for (int i = 1; i < 50; i++)
        dbpipe_submit("SELECT 'x'", 0, NULL, on_done, &outcomes[i]);
    usleep(100 * 1000);
    const char *values[] = {pid};
    PGresult *res =
        PQexecParams(admin, "SELECT pg_terminate_backend($1::int)", 1, NULL, values, NULL, NULL, 0);
    check(PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), "t") == 0,
          "the pipeline's backend is terminated", PQerrorMessage(admin));
    PQclear(res);
    PQfinish(admin);
    check(wait_answers(50, 10), "what it had in hand is answered", "timed out");
    check(outcomes[0].status == DB_UNAVAILABLE, "the statement under way is unavailable",
          "another status");
    /* Back within the back-off: a new backend answers. */
    char now[64] = "";
    for (int attempt = 0; attempt < 50 && !now[0]; attempt++) {
        reset(1);
        dbpipe_submit("SELECT pg_backend_pid()::text", 0, NULL, on_done, &outcomes[0]);
        wait_answers(1, 10);
        if (outcomes[0].status == DB_OK)
            snprintf(now, sizeof now, "%s", outcomes[0].value);
        else
            usleep(100 * 1000);
    }
    check(now[0] && strcmp(now, pid) != 0, "it connects again, to a new backend", now);
}

static struct metrics_connection pipe_state(void)
{
    struct metrics_connection c = {0};
    dbpipe_connections(&c, 1);
    return c;
}

static void killed_while_idle(const char *url)
{
    char pid[64], err[256];
    one_value("SELECT pg_backend_pid()::text", pid, sizeof pid);
    unsigned long made = pipe_state().made;
    PGconn *admin = db_connect_once(url, err, sizeof err);
    if (!admin) {
        check(false, "a second connection to kill the pipeline's", err);
        return;
    }
    const char *values[] = {pid};
    PQclear(PQexecParams(admin, "SELECT pg_terminate_backend($1::int)", 1, NULL, values, NULL, NULL,
                         0));
    PQfinish(admin);
    /* Nothing is submitted: the pipe notices the closed socket and connects by itself. */
    bool back = false;
    for (int i = 0; i < 1000 && !back; i++) {
        struct metrics_connection c = pipe_state();
        back = c.up && c.made > made;
        if (!back)
            usleep(10000);
    }
    check(back, "a connection killed while idle is made again without a statement", "it is not");
    char now[64];
    one_value("SELECT pg_backend_pid()::text", now, sizeof now);
    check(now[0] && strcmp(now, pid) != 0, "... and the next statement runs on a new backend", now);
}

/* ---- writes ---- */

#define WRITES   600
#define CLASHING 10 /* every 10th write repeats a value taken: a unique violation */

static PGconn *observer; /* another connection, which sees only what is committed */
static atomic_int seen_before_answer, checked_in_answer; /* of the first 50 answers */

static void on_written(void *ctx, struct db_result *r)
{
    if (r->status == DB_OK && db_rows(r) == 1 && atoi(db_value(r, 0, 0)) < 50) {
        atomic_fetch_add(&checked_in_answer, 1);
        const char *values[] = {db_value(r, 0, 0)};
        PGresult *res = PQexecParams(observer, "SELECT count(*) FROM written WHERE x = $1::int", 1,
                                     NULL, values, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), "1") == 0)
            atomic_fetch_add(&seen_before_answer, 1);
        PQclear(res);
    }
    on_done(ctx, r);
}

static void submit_write(int i)
{
    char text[16];
    snprintf(text, sizeof text, "%d", i % CLASHING == CLASHING - 1 ? i - 1 : i);
    const char *values[] = {text};
    dbpipe_submit_write("INSERT INTO written VALUES ($1::int) RETURNING x", 1, values, on_written,
                        &outcomes[i]);
}

static void *write_submitter(void *arg)
{
    /* Each thread writes a value and the one that repeats it in order: the repeat clashes. */
    for (int i = (int)(long)arg * CLASHING; i < WRITES; i += THREADS * CLASHING)
        for (int k = i; k < i + CLASHING; k++)
            submit_write(k);
    return NULL;
}

static void writes(const char *url)
{
    char err[256];
    observer = db_connect_once(url, err, sizeof err);
    check(observer != NULL, "a connection to watch the writes from", err);
    if (!observer)
        return;
    PGresult *made = PQexec(observer, "CREATE TABLE written (x int PRIMARY KEY);"
                                      "CREATE TABLE deferred (x int UNIQUE DEFERRABLE "
                                      "INITIALLY DEFERRED)");
    check(PQresultStatus(made) == PGRES_COMMAND_OK, "tables to write to", PQerrorMessage(observer));
    PQclear(made);
    reset(1);
    dbpipe_submit_write("INSERT INTO written VALUES (-1)", 0, NULL, on_done, &outcomes[0]);
    check(wait_answers(1, 10) && outcomes[0].status == DB_OK, "a write without a result",
          "it failed");
    reset(WRITES + 100);
    pthread_t threads[THREADS];
    for (long t = 0; t < THREADS; t++)
        pthread_create(&threads[t], NULL, write_submitter, (void *)t);
    for (int i = WRITES; i < WRITES + 100; i++) { /* reads meanwhile, on the pipes for reads */
        char text[16];
        snprintf(text, sizeof text, "%d", i);
        const char *values[] = {text};
        dbpipe_submit("SELECT $1::int * 2", 1, values, on_done, &outcomes[i]);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    check(wait_answers(WRITES + 100, 30), "every write and read is answered", "timed out");
    int wrong = 0, clashed = 0, once = 0;
    for (int i = 0; i < WRITES; i++) {
        once += atomic_load(&outcomes[i].calls) == 1;
        if (i % CLASHING == CLASHING - 1)
            clashed += outcomes[i].status == DB_UNIQUE;
        else
            wrong += outcomes[i].status != DB_OK || atoi(outcomes[i].value) != i;
    }
    for (int i = WRITES; i < WRITES + 100; i++)
        wrong += outcomes[i].status != DB_OK || atoi(outcomes[i].value) != 2 * i;
    check(once == WRITES, "... each exactly once", "some twice or never");
    check(wrong == 0, "each write that does not clash succeeds, and the reads", "some did not");
    check(clashed == WRITES / CLASHING, "each clashing write fails alone, as a unique violation",
          "some did not");
    check(atomic_load(&checked_in_answer) == 50 - 50 / CLASHING &&
              atomic_load(&seen_before_answer) == atomic_load(&checked_in_answer),
          "a write is committed when it is answered: another connection sees it",
          "it did not, yet");
    PGresult *res = PQexec(observer, "SELECT count(*) FROM written");
    char expected[16];
    snprintf(expected, sizeof expected, "%d", 1 + WRITES - WRITES / CLASHING);
    check(PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), expected) == 0,
          "no failure rolled back another's write: every success is in the table",
          PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0) : "no count");
    PQclear(res);
    /* A statement that succeeds and a commit that fails: the write failed. */
    reset(1);
    dbpipe_submit_write("INSERT INTO deferred VALUES (1), (1) RETURNING x", 0, NULL, on_done,
                        &outcomes[0]);
    check(wait_answers(1, 10) && outcomes[0].status == DB_UNIQUE,
          "a write whose commit fails (a deferred unique key) is answered with that failure",
          "it is not");
    reset(1);
    dbpipe_submit("SELECT count(*)::text FROM deferred", 0, NULL, on_done, &outcomes[0]);
    check(wait_answers(1, 10) && strcmp(outcomes[0].value, "0") == 0,
          "... and nothing of it is kept", outcomes[0].value);
    PQclear(PQexec(observer, "DROP TABLE written, deferred"));
    db_close_once(observer);
}

static void stopping(void)
{
    reset(200);
    for (int i = 0; i < 200; i++)
        dbpipe_submit(i % 2 ? "SELECT pg_sleep(0.01)::text" : "SELECT 'y'", 0, NULL, on_done,
                      &outcomes[i]);
    dbpipe_stop();
    check(wait_answers(200, 10), "stopping answers everything queued or under way", "timed out");
    int twice = 0;
    for (int i = 0; i < 200; i++)
        twice += atomic_load(&outcomes[i].calls) != 1;
    check(twice == 0, "... exactly once", "some twice or never");
    reset(1);
    dbpipe_submit("SELECT 'z'", 0, NULL, on_done, &outcomes[0]);
    check(atomic_load(&outcomes[0].calls) == 1 && outcomes[0].status == DB_UNAVAILABLE,
          "after the stop a statement is answered at once, unavailable", "it was not");
    check(!dbpipe_running(), "the pipeline says it is not running", "it says it is");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: dbpipe_check DATABASE_URL\n");
        return 2;
    }
    db_configure(argv[1], 1000);
    if (dbpipe_start(1, 0, 1) != 0 || !dbpipe_running()) {
        printf("not ok 1 - the pipeline starts\n");
        return 1;
    }
    many_at_once();
    unpreparable(); /* while there is room to prepare: nulls_and_many_statements() fills it */
    nulls_and_many_statements();
    timeout();
    killed_connection(argv[1]);
    killed_while_idle(argv[1]);
    writes(argv[1]);
    stopping();
    return tap_done();
}

#include "jobs.h"

#include "db.h"
#include "log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define MAX_JOBS 8

/* The lock is tried, never waited for: a run that finds it taken is skipped, not delayed. */
static const char SQL_TRY_LOCK[] = "SELECT pg_try_advisory_lock($1::bigint)";
static const char SQL_UNLOCK[] = "SELECT pg_advisory_unlock($1::bigint)";

enum outcome { RAN, SKIPPED, UNAVAILABLE, OUTCOMES };
static const char *const outcome_names[OUTCOMES] = {"ran", "skipped", "unavailable"};

static struct job {
    const char *name;
    unsigned interval_ms;
    jobs_fn fn;
    int64_t lock;
    int64_t due_ms;
    atomic_ulong runs[OUTCOMES];
} jobs[MAX_JOBS];
static int n_jobs;
static pthread_t thread;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static bool stopping, started;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void jobs_add(const char *name, unsigned interval_ms, jobs_fn fn, int64_t advisory_lock)
{
    if (n_jobs == MAX_JOBS)
        return;
    struct job *j = &jobs[n_jobs++];
    j->name = name;
    j->interval_ms = interval_ms;
    j->fn = fn;
    j->lock = advisory_lock;
}

/* Whether this instance may run j now: its lock taken, or none needed. */
static enum outcome take(const struct job *j, const char *key)
{
    if (j->lock == JOBS_EVERY_INSTANCE)
        return RAN;
    const char *params[] = {key};
    struct db_result r;
    enum outcome o = UNAVAILABLE;
    if (db_exec(SQL_TRY_LOCK, 1, params, &r) == DB_OK && db_rows(&r) == 1)
        o = db_value(&r, 0, 0)[0] == 't' ? RAN : SKIPPED;
    db_clear(&r);
    return o;
}

/* One run of j, on this instance's turn. */
static void run_job(struct job *j)
{
    char key[24];
    snprintf(key, sizeof key, "%" PRId64, j->lock);
    enum outcome o = take(j, key);
    atomic_fetch_add_explicit(&j->runs[o], 1, memory_order_relaxed);
    if (o != RAN)
        return;
    j->fn();
    if (j->lock != JOBS_EVERY_INSTANCE) {
        const char *params[] = {key};
        struct db_result r;
        db_exec(SQL_UNLOCK, 1, params, &r); /* a lost connection has given it back already */
        db_clear(&r);
    }
}

static void *run(void *unused)
{
    (void)unused;
    db_thread_kind("jobs");
    pthread_mutex_lock(&lock);
    while (!stopping) {
        int64_t next = now_ms() + 60000;
        for (int i = 0; i < n_jobs; i++) {
            if (jobs[i].due_ms <= now_ms()) {
                pthread_mutex_unlock(&lock);
                run_job(&jobs[i]);
                pthread_mutex_lock(&lock);
                jobs[i].due_ms = now_ms() + jobs[i].interval_ms;
            }
            if (jobs[i].due_ms < next)
                next = jobs[i].due_ms;
        }
        if (stopping)
            break;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        int64_t wait = next - now_ms();
        if (wait < 1)
            wait = 1;
        until.tv_sec += wait / 1000;
        until.tv_nsec += (wait % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&wake, &lock, &until);
    }
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < n_jobs; i++)
        run_job(&jobs[i]);
    db_disconnect();
    return NULL;
}

void jobs_start(void)
{
    if (pthread_create(&thread, NULL, run, NULL) == 0)
        started = true;
    else
        log_event("error", "cannot start the jobs thread");
}

void jobs_stop(void)
{
    if (!started)
        return;
    pthread_mutex_lock(&lock);
    stopping = true;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
    pthread_join(thread, NULL);
    started = false;
}

void jobs_render(struct buf *out)
{
    buf_puts(out, "# HELP werklabd_job_runs_total Runs of a periodic job on this instance: ran, "
                  "skipped (another instance held the job's lock) or unavailable (the database "
                  "could not be asked for it).\n# TYPE werklabd_job_runs_total counter\n");
    for (int i = 0; i < n_jobs; i++)
        for (int o = 0; o < OUTCOMES; o++)
            buf_printf(out, "werklabd_job_runs_total{job=\"%s\",outcome=\"%s\"} %lu\n",
                       jobs[i].name, outcome_names[o], atomic_load(&jobs[i].runs[o]));
}

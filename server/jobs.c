#include "jobs.h"

#include "db.h"
#include "log.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define MAX_JOBS 8

static struct job {
    const char *name;
    unsigned interval_ms;
    jobs_fn fn;
    int64_t due_ms;
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

void jobs_add(const char *name, unsigned interval_ms, jobs_fn fn)
{
    if (n_jobs < MAX_JOBS)
        jobs[n_jobs++] = (struct job){name, interval_ms, fn, 0};
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
                jobs[i].fn();
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
        jobs[i].fn();
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

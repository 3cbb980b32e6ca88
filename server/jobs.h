/* jobs: work the server does by itself, every so often, on a thread of its own (pruning the
 * change feed, retention, giving memory back). A job uses the database like a request does,
 * through db.h, on the jobs thread's own connection.
 *
 * Instances that share a database take turns: a job that changes the database has an advisory
 * lock of its own (PostgreSQL's bigint form), and each run first tries to take it, at session
 * level, on the jobs thread's connection (pg_try_advisory_lock), and gives it back when the job
 * returns. An instance that finds it taken skips that run, saying nothing in the log (it would
 * say so at every tick): /metrics counts it (werklabd_job_runs_total{outcome="skipped"}). A
 * connection lost during a run takes the lock with it. The locks are each job's name in ASCII,
 * left-aligned in the 8 bytes. The server's other advisory locks: migrate.c's, the idempotency
 * records' (64-bit hashes of their keys, in this key space too) and the webhook sender's (the
 * two-integer form, another key space). */
#ifndef WERKLAB_JOBS_H
#define WERKLAB_JOBS_H

#include "buf.h"

#include <stdint.h>

typedef void (*jobs_fn)(void);

/* Every instance runs it (it changes nothing in the database). */
#define JOBS_EVERY_INSTANCE 0
/* 'retain': the lock retention_run() in migrations/0008_retention.sql takes too, for the length
 * of its transaction (the same session holding it already, it is granted at once). */
#define JOBS_LOCK_RETENTION INT64_C(8243122654701027328)
/* 'prune': the change feed, webhook deliveries and idempotent answers past their time. */
#define JOBS_LOCK_PRUNE INT64_C(8102667796594294784)

/* Before jobs_start(): run fn every interval_ms, under lock (JOBS_EVERY_INSTANCE: none); name
 * labels it in /metrics and must outlive the process. */
void jobs_add(const char *name, unsigned interval_ms, jobs_fn fn, int64_t lock);
void jobs_start(void);
/* Stops the thread after running every job once more (so queued work is not lost). */
void jobs_stop(void);
/* werklabd_job_runs_total{job,outcome}: "ran", "skipped" (another instance held the lock) or
 * "unavailable" (the lock could not be asked for: the database is away). */
void jobs_render(struct buf *out);

#endif

/* jobs: work the server does by itself, every so often, on a thread of its own (pruning the
 * change feed). A job uses the database like a request does, through
 * db.h, on the jobs thread's own connection. */
#ifndef WERKLAB_JOBS_H
#define WERKLAB_JOBS_H

typedef void (*jobs_fn)(void);

/* Before jobs_start(): run fn every interval_ms. */
void jobs_add(const char *name, unsigned interval_ms, jobs_fn fn);
void jobs_start(void);
/* Stops the thread after running every job once more (so queued work is not lost). */
void jobs_stop(void);

#endif

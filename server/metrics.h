/* metrics: counters for /metrics, in the Prometheus text format (version 0.0.4).
 *
 * Every counter is a relaxed atomic: a scrape may see one request counted in the total but not
 * yet in its histogram bucket, which Prometheus tolerates, and the request path takes no lock. */
#ifndef WERKLAB_METRICS_H
#define WERKLAB_METRICS_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>

/* route_names[i] labels route i; the array must outlive the process. */
void metrics_init(size_t n_routes, const char *const *route_names);
/* route: index given to metrics_init, or -1 for a request no route matched. */
void metrics_request(int route, int status, double seconds);
void metrics_db_error(void);
/* The database pipeline (dbpipe) sent a batch of this many statements; sent one again. */
void metrics_db_pipeline_batch(unsigned statements);
void metrics_db_pipeline_resent(void);
/* The audit writer committed a batch of this many entries; a commit failed; a request began
 * (+1) or ended (-1) waiting for its entry. */
void metrics_audit_commit(unsigned entries);
void metrics_audit_failed(void);
void metrics_audit_waiting(int delta);
/* A webhook delivery attempt's outcome: "delivered", "failed" or "unanswered". */
void metrics_webhook_delivery(const char *outcome);
/* The oldest undelivered event's age, as the sender last measured it. */
void metrics_webhook_oldest(long seconds);

/* The prepared statements of the workers' connections (the jobs thread's included) and of the
 * pipeline's: prepared, evicted to make room (deallocated), run unprepared. */
enum metrics_db_kind { METRICS_DB_WORKER, METRICS_DB_PIPELINE };
void metrics_db_prepared(enum metrics_db_kind kind);
void metrics_db_evicted(enum metrics_db_kind kind);
void metrics_db_unprepared(enum metrics_db_kind kind);

/* One database connection the server keeps open (a worker's, the jobs thread's, a pipeline's),
 * as /metrics shows it: labelled with its kind and its slot among those of its kind. */
struct metrics_connection {
    const char *kind; /* "worker", "jobs", "pipeline" */
    unsigned slot;
    bool up;
    unsigned long made;       /* times it was made (connected) */
    unsigned long statements; /* statements it ran successfully */
};

/* db_connections_open: every connection open now; kept: the n_kept connections kept open. */
void metrics_render(struct buf *out, int db_connections_open, const struct metrics_connection *kept,
                    size_t n_kept);

#endif

/* metrics: counters for /metrics, in the Prometheus text format (version 0.0.4).
 *
 * Every counter is a relaxed atomic: a scrape may see one request counted in the total but not
 * yet in its histogram bucket, which Prometheus tolerates, and the request path takes no lock. */
#ifndef WERKLAB_METRICS_H
#define WERKLAB_METRICS_H

#include "buf.h"

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
void metrics_render(struct buf *out, int db_connections_open);

#endif

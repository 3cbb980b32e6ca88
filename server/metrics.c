#include "metrics.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* The statuses werklabd answers with; anything else is counted under "other". */
static const int statuses[] = {200, 201, 204, 304, 400, 401, 403, 404, 405, 406,
                               409, 410, 412, 413, 415, 422, 428, 429, 500, 503};
#define N_STATUSES (sizeof statuses / sizeof *statuses + 1)

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05,   0.1,   0.25,   0.5,   1,    2.5};
#define N_BUCKETS (sizeof buckets / sizeof *buckets)

static size_t n_rows; /* routes + 1 for "no route" */
static const char *const *names;
static atomic_ulong *requests; /* [row][status] */
static atomic_ulong latency[N_BUCKETS + 1];
static atomic_ulong latency_count;
static atomic_ulong latency_micros;
static atomic_ulong db_errors;
static atomic_ulong pipeline_batches, pipeline_statements, pipeline_resent;
static atomic_ulong audit_commits, audit_entries, audit_failures;
static atomic_long audit_waiting;
/* Webhook deliveries by outcome (metrics.h), and the oldest undelivered event's age. */
static const char *const webhook_outcomes[] = {"delivered", "failed", "unanswered"};
static atomic_ulong webhook_deliveries[3];
static atomic_long webhook_oldest_s;
static atomic_ulong statements_prepared[2], statements_evicted[2], statements_unprepared[2];
static const char *const db_kinds[2] = {"worker", "pipeline"};

void metrics_init(size_t n_routes, const char *const *route_names)
{
    n_rows = n_routes + 1;
    names = route_names;
    requests = calloc(n_rows * N_STATUSES, sizeof *requests);
    if (!requests)
        abort();
}

static size_t status_slot(int status)
{
    for (size_t i = 0; i < N_STATUSES - 1; i++)
        if (statuses[i] == status)
            return i;
    return N_STATUSES - 1;
}

void metrics_request(int route, int status, double seconds)
{
    size_t row = route < 0 ? n_rows - 1 : (size_t)route;
    if (!requests || row >= n_rows)
        return;
    atomic_fetch_add_explicit(&requests[row * N_STATUSES + status_slot(status)], 1,
                              memory_order_relaxed);
    size_t b = 0;
    while (b < N_BUCKETS && seconds > buckets[b])
        b++;
    atomic_fetch_add_explicit(&latency[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&latency_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&latency_micros, (unsigned long)(seconds * 1e6),
                              memory_order_relaxed);
}

void metrics_db_error(void)
{
    atomic_fetch_add_explicit(&db_errors, 1, memory_order_relaxed);
}

static unsigned long load(atomic_ulong *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

void metrics_db_pipeline_batch(unsigned statements)
{
    atomic_fetch_add_explicit(&pipeline_batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pipeline_statements, statements, memory_order_relaxed);
}

void metrics_db_pipeline_resent(void)
{
    atomic_fetch_add_explicit(&pipeline_resent, 1, memory_order_relaxed);
}

void metrics_audit_commit(unsigned entries)
{
    atomic_fetch_add_explicit(&audit_commits, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&audit_entries, entries, memory_order_relaxed);
}

void metrics_audit_failed(void)
{
    atomic_fetch_add_explicit(&audit_failures, 1, memory_order_relaxed);
}

void metrics_audit_waiting(int delta)
{
    atomic_fetch_add_explicit(&audit_waiting, delta, memory_order_relaxed);
}

void metrics_webhook_delivery(const char *outcome)
{
    for (size_t i = 0; i < 3; i++)
        if (strcmp(webhook_outcomes[i], outcome) == 0)
            atomic_fetch_add_explicit(&webhook_deliveries[i], 1, memory_order_relaxed);
}

void metrics_webhook_oldest(long seconds)
{
    atomic_store_explicit(&webhook_oldest_s, seconds, memory_order_relaxed);
}

static void render_webhooks(struct buf *out)
{
    buf_puts(out, "# HELP werklabd_webhook_deliveries_total Attempts to deliver a webhook, by "
                  "outcome: delivered (2xx), failed (another answer), unanswered (no answer: "
                  "refused, unreachable, timed out; or the object could not be read).\n"
                  "# TYPE werklabd_webhook_deliveries_total counter\n");
    for (size_t i = 0; i < 3; i++)
        buf_printf(out, "werklabd_webhook_deliveries_total{outcome=\"%s\"} %lu\n",
                   webhook_outcomes[i], load(&webhook_deliveries[i]));
    buf_printf(out,
               "# HELP werklabd_webhook_oldest_undelivered_seconds Age of the oldest event an "
               "enabled subscription has not been told of yet (0: none).\n"
               "# TYPE werklabd_webhook_oldest_undelivered_seconds gauge\n"
               "werklabd_webhook_oldest_undelivered_seconds %ld\n",
               atomic_load_explicit(&webhook_oldest_s, memory_order_relaxed));
}

static void render_audit(struct buf *out)
{
    buf_printf(out,
               "# HELP werklabd_audit_commits_total Commits of the audit writer, each one "
               "multi-row INSERT.\n# TYPE werklabd_audit_commits_total counter\n"
               "werklabd_audit_commits_total %lu\n"
               "# HELP werklabd_audit_entries_total Audit entries in those commits (entries per "
               "commit: this over the commits).\n# TYPE werklabd_audit_entries_total counter\n"
               "werklabd_audit_entries_total %lu\n"
               "# HELP werklabd_audit_commit_failures_total Commits of the audit writer that "
               "failed.\n# TYPE werklabd_audit_commit_failures_total counter\n"
               "werklabd_audit_commit_failures_total %lu\n"
               "# HELP werklabd_audit_waiting Requests whose answer waits for its audit entry "
               "to be committed.\n# TYPE werklabd_audit_waiting gauge\nwerklabd_audit_waiting "
               "%ld\n",
               load(&audit_commits), load(&audit_entries), load(&audit_failures),
               atomic_load_explicit(&audit_waiting, memory_order_relaxed));
}

void metrics_db_prepared(enum metrics_db_kind kind)
{
    atomic_fetch_add_explicit(&statements_prepared[kind], 1, memory_order_relaxed);
}

void metrics_db_evicted(enum metrics_db_kind kind)
{
    atomic_fetch_add_explicit(&statements_evicted[kind], 1, memory_order_relaxed);
}

void metrics_db_unprepared(enum metrics_db_kind kind)
{
    atomic_fetch_add_explicit(&statements_unprepared[kind], 1, memory_order_relaxed);
}

static void render_statements(struct buf *out, const char *name, const char *help,
                              atomic_ulong *by_kind)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (size_t k = 0; k < 2; k++)
        buf_printf(out, "%s{connection=\"%s\"} %lu\n", name, db_kinds[k], load(&by_kind[k]));
}

/* Each kept connection's samples, then how many of each kind are up. */
static void render_connections(struct buf *out, const struct metrics_connection *kept, size_t n)
{
    buf_puts(out, "# HELP werklabd_db_connection_up Whether a connection the server keeps is up "
                  "(1) or down (0).\n# TYPE werklabd_db_connection_up gauge\n");
    for (size_t i = 0; i < n; i++)
        buf_printf(out, "werklabd_db_connection_up{connection=\"%s\",slot=\"%u\"} %d\n",
                   kept[i].kind, kept[i].slot, kept[i].up);
    buf_puts(out, "# HELP werklabd_db_connection_made_total Times a kept connection was made.\n"
                  "# TYPE werklabd_db_connection_made_total counter\n");
    for (size_t i = 0; i < n; i++)
        buf_printf(out, "werklabd_db_connection_made_total{connection=\"%s\",slot=\"%u\"} %lu\n",
                   kept[i].kind, kept[i].slot, kept[i].made);
    buf_puts(out, "# HELP werklabd_db_connection_statements_total Statements a kept connection "
                  "ran successfully.\n# TYPE werklabd_db_connection_statements_total counter\n");
    for (size_t i = 0; i < n; i++)
        buf_printf(out,
                   "werklabd_db_connection_statements_total{connection=\"%s\",slot=\"%u\"} "
                   "%lu\n",
                   kept[i].kind, kept[i].slot, kept[i].statements);
}

void metrics_render(struct buf *out, int db_connections_open, const struct metrics_connection *kept,
                    size_t n_kept)
{
    buf_puts(out, "# HELP werklabd_http_requests_total HTTP requests answered, by route and "
                  "status.\n# TYPE werklabd_http_requests_total counter\n");
    for (size_t row = 0; row < n_rows; row++) {
        for (size_t s = 0; s < N_STATUSES; s++) {
            unsigned long n = load(&requests[row * N_STATUSES + s]);
            if (!n)
                continue;
            const char *route = row < n_rows - 1 ? names[row] : "none";
            if (s < N_STATUSES - 1)
                buf_printf(out, "werklabd_http_requests_total{route=\"%s\",status=\"%d\"} %lu\n",
                           route, statuses[s], n);
            else
                buf_printf(out, "werklabd_http_requests_total{route=\"%s\",status=\"other\"} %lu\n",
                           route, n);
        }
    }
    buf_puts(out, "# HELP werklabd_http_request_duration_seconds Time from request to response.\n"
                  "# TYPE werklabd_http_request_duration_seconds histogram\n");
    unsigned long cumulative = 0;
    for (size_t b = 0; b < N_BUCKETS; b++) {
        cumulative += load(&latency[b]);
        buf_printf(out, "werklabd_http_request_duration_seconds_bucket{le=\"%g\"} %lu\n",
                   buckets[b], cumulative);
    }
    cumulative += load(&latency[N_BUCKETS]);
    buf_printf(out, "werklabd_http_request_duration_seconds_bucket{le=\"+Inf\"} %lu\n", cumulative);
    buf_printf(out, "werklabd_http_request_duration_seconds_sum %.6f\n",
               (double)load(&latency_micros) / 1e6);
    buf_printf(out, "werklabd_http_request_duration_seconds_count %lu\n", load(&latency_count));
    buf_printf(out,
               "# HELP werklabd_db_errors_total Database failures: lost connections, failed "
               "connects, timeouts and unexpected errors.\n# TYPE werklabd_db_errors_total "
               "counter\nwerklabd_db_errors_total %lu\n",
               load(&db_errors));
    buf_printf(out,
               "# HELP werklabd_db_pipeline_batches_total Batches sent on the database pipeline, "
               "each ended by one Sync.\n# TYPE werklabd_db_pipeline_batches_total counter\n"
               "werklabd_db_pipeline_batches_total %lu\n"
               "# HELP werklabd_db_pipeline_statements_total Statements sent in those batches.\n"
               "# TYPE werklabd_db_pipeline_statements_total counter\n"
               "werklabd_db_pipeline_statements_total %lu\n"
               "# HELP werklabd_db_pipeline_resent_total Statements sent again because another "
               "of their batch failed.\n# TYPE werklabd_db_pipeline_resent_total counter\n"
               "werklabd_db_pipeline_resent_total %lu\n",
               load(&pipeline_batches), load(&pipeline_statements), load(&pipeline_resent));
    render_audit(out);
    render_webhooks(out);
    render_statements(out, "werklabd_db_statements_prepared_total",
                      "Statements prepared, by kind of connection.", statements_prepared);
    render_statements(out, "werklabd_db_statements_evicted_total",
                      "Prepared statements deallocated to make room for others (least recently "
                      "used first).",
                      statements_evicted);
    render_statements(
        out, "werklabd_db_statements_unprepared_total",
        "Statements sent without being prepared: only into a transaction that had failed "
        "already, which refuses them anyway.",
        statements_unprepared);
    render_connections(out, kept, n_kept);
    buf_printf(out,
               "# HELP werklabd_db_connections_open Database connections now open: the "
               "workers', the jobs thread's, the pipeline's and any other.\n"
               "# TYPE werklabd_db_connections_open gauge\nwerklabd_db_connections_open %d\n",
               db_connections_open);
}

/* log: one JSON object per line on stderr.
 *
 * Each line is written with a single write(2), so lines from different threads never interleave.
 * Never pass a secret or personal data: keys appear by id only, bodies never. */
#ifndef WERKLAB_LOG_H
#define WERKLAB_LOG_H

#include <stdbool.h>

struct log_request {
    const char *request_id;
    const char *method;
    const char *route; /* the route's pattern, or NULL when none matched */
    int status;
    double duration_ms;
    const char *key_id;   /* NULL: anonymous or a person */
    const char *subject;  /* a person's token: its sub; NULL otherwise */
    const char *client;   /* and the client it was issued to; NULL otherwise */
    const char *trace_id; /* W3C Trace Context trace id; NULL without one */
    const char *refusal;  /* why the key or token was refused; NULL */
};

void log_request(const struct log_request *r);
/* A time (CLOCK_REALTIME), UTC, in RFC 3339 with milliseconds ("2026-03-01T09:30:00.123Z"), as
 * log lines carry it, or with microseconds; log_time_now() formats now. */
#define LOG_TIME_LEN 40
struct timespec;
void log_time_format(char out[LOG_TIME_LEN], const struct timespec *t, bool microseconds);
void log_time_now(char out[LOG_TIME_LEN], bool microseconds);
/* An event outside a request: level is "info", "warning" or "error". */
void log_event(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

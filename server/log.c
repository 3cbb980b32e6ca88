#include "log.h"

#include "buf.h"
#include "jsonw.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

void log_time_format(char out[LOG_TIME_LEN], const struct timespec *t, bool microseconds)
{
    /* The date and time up to the second are formatted once a second on each thread rather than
     * once a line: a line is written for every request, and audit entries take the same. */
    static _Thread_local time_t second = -1;
    static _Thread_local char prefix[24];
    if (t->tv_sec != second) {
        struct tm tm;
        gmtime_r(&t->tv_sec, &tm);
        if (strftime(prefix, sizeof prefix, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
            prefix[0] = '\0';
        second = t->tv_sec;
    }
    /* tv_nsec is below 10^9: as unsigned, the compiler knows how many digits it can have. */
    unsigned nanoseconds = (unsigned)t->tv_nsec % 1000000000u;
    if (microseconds)
        snprintf(out, LOG_TIME_LEN, "%s.%06uZ", prefix, nanoseconds / 1000u);
    else
        snprintf(out, LOG_TIME_LEN, "%s.%03uZ", prefix, nanoseconds / 1000000u);
}

void log_time_now(char out[LOG_TIME_LEN], bool microseconds)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    log_time_format(out, &now, microseconds);
}

static void write_time(struct jsonw *w)
{
    char text[LOG_TIME_LEN];
    log_time_now(text, false);
    jsonw_kv_string(w, "time", text);
}

static void emit(struct buf *line)
{
    buf_putc(line, '\n');
    ssize_t ignored = write(STDERR_FILENO, line->data, line->len);
    (void)ignored;
    buf_free(line);
}

void log_request(const struct log_request *r)
{
    struct buf line = {0};
    struct jsonw w;
    jsonw_init(&w, &line);
    jsonw_object_begin(&w);
    write_time(&w);
    jsonw_kv_string(&w, "level", "info");
    jsonw_kv_string(&w, "requestId", r->request_id);
    jsonw_kv_string(&w, "method", r->method);
    jsonw_kv_string(&w, "route", r->route);
    jsonw_kv_int(&w, "status", r->status);
    jsonw_key(&w, "durationMs");
    char ms[32];
    snprintf(ms, sizeof ms, "%.3f", r->duration_ms);
    jsonw_raw(&w, ms);
    jsonw_kv_string(&w, "keyId", r->key_id);
    /* Only what there is: most lines are a key's, and keep their shape. */
    if (r->subject)
        jsonw_kv_string(&w, "subject", r->subject);
    if (r->client)
        jsonw_kv_string(&w, "client", r->client);
    if (r->trace_id)
        jsonw_kv_string(&w, "traceId", r->trace_id);
    if (r->refusal)
        jsonw_kv_string(&w, "authRefused", r->refusal);
    jsonw_object_end(&w);
    emit(&line);
}

void log_event(const char *level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct buf line = {0};
    struct jsonw w;
    jsonw_init(&w, &line);
    jsonw_object_begin(&w);
    write_time(&w);
    jsonw_kv_string(&w, "level", level);
    jsonw_kv_string(&w, "message", msg);
    jsonw_object_end(&w);
    emit(&line);
}

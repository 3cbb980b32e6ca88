#include "audit.h"

#include "buf.h"
#include "db.h"
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define QUEUE 4096

static struct audit_entry queue[QUEUE];
static int queued;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t drained = PTHREAD_COND_INITIALIZER;

void audit_add(const struct audit_entry *e)
{
    pthread_mutex_lock(&lock);
    while (queued == QUEUE)
        pthread_cond_wait(&drained, &lock);
    queue[queued++] = *e;
    pthread_mutex_unlock(&lock);
}

enum db_status audit_write(const struct audit_entry *e)
{
    char status[16];
    snprintf(status, sizeof status, "%d", e->status);
    const char *params[] = {e->key_id[0] ? e->key_id : NULL,
                            e->action,
                            e->resource,
                            e->resource_id[0] ? e->resource_id : NULL,
                            status,
                            e->request_id[0] ? e->request_id : NULL};
    struct db_result r;
    enum db_status s = db_exec("INSERT INTO audit_log (key_id, action, resource, resource_id, "
                               "status, request_id) VALUES ($1::uuid, $2, $3, $4::uuid, "
                               "$5::integer, $6)",
                               6, params, &r);
    db_clear(&r);
    return s;
}

/* Appends s to a PostgreSQL array literal. */
static void element(struct buf *b, const char *s, bool first)
{
    if (!first)
        buf_putc(b, ',');
    if (!*s) {
        buf_puts(b, "NULL");
        return;
    }
    buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            buf_putc(b, '\\');
        buf_putc(b, *s);
    }
    buf_putc(b, '"');
}

void audit_flush(void)
{
    static struct audit_entry batch[QUEUE];
    pthread_mutex_lock(&lock);
    int n = queued;
    memcpy(batch, queue, (size_t)n * sizeof *batch);
    queued = 0;
    pthread_cond_broadcast(&drained);
    pthread_mutex_unlock(&lock);
    if (n == 0)
        return;

    /* One statement for the batch: seven arrays, unnested side by side. */
    struct buf cols[7] = {0};
    for (int c = 0; c < 7; c++)
        buf_putc(&cols[c], '{');
    for (int i = 0; i < n; i++) {
        char status[16];
        snprintf(status, sizeof status, "%d", batch[i].status);
        element(&cols[0], batch[i].key_id, i == 0);
        element(&cols[1], batch[i].action, i == 0);
        element(&cols[2], batch[i].resource, i == 0);
        element(&cols[3], batch[i].resource_id, i == 0);
        element(&cols[4], status, i == 0);
        element(&cols[5], batch[i].request_id, i == 0);
        element(&cols[6], batch[i].at, i == 0);
    }
    for (int c = 0; c < 7; c++)
        buf_putc(&cols[c], '}');
    const char *params[] = {cols[0].data, cols[1].data, cols[2].data, cols[3].data,
                            cols[4].data, cols[5].data, cols[6].data};
    struct db_result r;
    /* In the order the requests were answered, with the times they were answered. */
    if (db_exec(
            "INSERT INTO audit_log (key_id, action, resource, resource_id, status, request_id, "
            "at) SELECT k, a, r, i, s, q, coalesce(t, clock_timestamp()) FROM unnest($1::uuid[], "
            "$2::text[], $3::text[], $4::uuid[], $5::integer[], $6::text[], $7::timestamptz[]) "
            "AS e(k, a, r, i, s, q, t) ORDER BY t",
            7, params, &r) != DB_OK) {
        /* Put them back: they are written when the database is back. */
        log_event("error", "audit: %d entries wait for the database", n);
        pthread_mutex_lock(&lock);
        int room = QUEUE - queued;
        int keep = n < room ? n : room;
        memmove(queue + keep, queue, (size_t)queued * sizeof *queue);
        memcpy(queue, batch, (size_t)keep * sizeof *queue);
        queued += keep;
        pthread_mutex_unlock(&lock);
    }
    db_clear(&r);
    for (int c = 0; c < 7; c++)
        buf_free(&cols[c]);
}

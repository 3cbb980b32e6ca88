#include "dbpipe.h"

#include "buf.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_CONNECTIONS 16
#define IN_FLIGHT       4096 /* messages sent and not yet answered, per connection */
#define ATTEMPTS        3    /* sendings of a statement whose preparation failed */

struct job {
    struct job *next;
    const char *sql;
    int n;
    int attempts;
    bool resent;   /* aborted once by another's failure: now sent in a segment of its own */
    bool prepared; /* in the batch being sent: run as the prepared statement `name` */
    char name[24];
    const char *values[DBPIPE_MAX_PARAMS];
    dbpipe_done done;
    void *ctx;
    char text[]; /* the values, copied */
};

enum sent_kind { SENT_PREPARE, SENT_QUERY, SENT_SYNC };

/* What was sent, in the order its results come back. */
struct sent {
    enum sent_kind kind;
    struct job *job; /* SENT_QUERY */
    int slot;        /* SENT_PREPARE: the statement it prepares */
    PGresult *res;   /* the first result; later ones (there are none for these) are dropped */
};

struct job_list {
    struct job *head, *tail;
};

struct pipe {
    pthread_t thread;
    int wake; /* eventfd: something was queued, or it is time to stop */
    pthread_mutex_t lock;
    struct job_list queued; /* under lock */
    bool stopping;          /* under lock */

    /* The thread's own. */
    struct job_list pending; /* taken from queued, to be sent */
    PGconn *pg;
    struct db_backoff backoff;
    struct db_statements statements;
    struct sent sent[IN_FLIGHT]; /* a ring */
    unsigned first, count;
};

static struct pipe *pipes[MAX_CONNECTIONS];
static unsigned n_pipes;
static atomic_uint next_pipe;
static atomic_bool running;

static void list_push(struct job_list *l, struct job *j)
{
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

static void list_push_front(struct job_list *l, struct job *j)
{
    j->next = l->head;
    l->head = j;
    if (!l->tail)
        l->tail = j;
}

static struct job *list_pop(struct job_list *l)
{
    struct job *j = l->head;
    if (j) {
        l->head = j->next;
        if (!l->head)
            l->tail = NULL;
    }
    return j;
}

static void list_append(struct job_list *to, struct job_list *from)
{
    if (!from->head)
        return;
    if (to->tail)
        to->tail->next = from->head;
    else
        to->head = from->head;
    to->tail = from->tail;
    *from = (struct job_list){0};
}

/* Hands the job its result (res may be NULL: then status says why) and frees it. */
static void answer(struct job *j, enum db_status status, PGresult *res, PGconn *pg)
{
    struct db_result r = {.status = status};
    if (res)
        db_result_of(&r, res, pg);
    j->done(j->ctx, &r);
    free(j);
}

static void answer_all(struct job_list *l, enum db_status status)
{
    for (struct job *j; (j = list_pop(l));)
        answer(j, status, NULL, NULL);
}

static struct sent *push_sent(struct pipe *p, struct sent s)
{
    struct sent *slot = &p->sent[(p->first + p->count++) % IN_FLIGHT];
    *slot = s;
    return slot;
}

/* The connection failed (or the pipe stops): everything in hand is answered as unavailable. */
static void drop_connection(struct pipe *p, const char *why)
{
    if (why)
        log_event("error", "database pipeline: %s", why);
    for (; p->count > 0; p->first = (p->first + 1) % IN_FLIGHT, p->count--) {
        struct sent *s = &p->sent[p->first];
        PQclear(s->res);
        if (s->kind == SENT_QUERY)
            answer(s->job, DB_UNAVAILABLE, NULL, NULL);
    }
    p->first = 0;
    answer_all(&p->pending, DB_UNAVAILABLE);
    db_release(p->pg);
    p->pg = NULL;
    db_statements_clear(&p->statements);
    db_backoff_failed(&p->backoff);
}

static bool connect_pipe(struct pipe *p)
{
    if (!db_backoff_allows(&p->backoff))
        return false;
    p->pg = db_connect_session();
    if (!p->pg) {
        drop_connection(p, NULL); /* db has counted the error; this sets the back-off */
        return false;
    }
    if (PQsetnonblocking(p->pg, 1) != 0 || PQenterPipelineMode(p->pg) != 1) {
        drop_connection(p, PQerrorMessage(p->pg));
        return false;
    }
    db_backoff_succeeded(&p->backoff);
    return true;
}

static bool send_sync(struct pipe *p)
{
    if (PQpipelineSync(p->pg) != 1) {
        drop_connection(p, PQerrorMessage(p->pg));
        return false;
    }
    push_sent(p, (struct sent){.kind = SENT_SYNC});
    return true;
}

/* Sends what is pending (as much as the ring has room for) as one batch ended by one Sync. The
 * statements new to this connection are prepared first, in a segment of their own: a failing
 * query then never aborts a preparation that statements of later batches count on. */
static void send_pending(struct pipe *p)
{
    if (p->count + 3 > IN_FLIGHT) /* a prepare's Sync, a query, its Sync */
        return;
    unsigned room = IN_FLIGHT - p->count - 2, jobs = 0, prepared = 0;
    for (struct job *j = p->pending.head; j && 2 * jobs + prepared + 3 <= room;
         j = j->next, jobs++) {
        bool known;
        int slot = db_statements_find(&p->statements, j->sql, j->name, &known);
        j->prepared = slot >= 0; /* prepared already, or in this batch */
        if (known || slot < 0)
            continue;
        if (PQsendPrepare(p->pg, j->name, j->sql, j->n, NULL) != 1) {
            drop_connection(p, PQerrorMessage(p->pg));
            return;
        }
        db_statements_set(&p->statements, slot, j->sql, true);
        push_sent(p, (struct sent){.kind = SENT_PREPARE, .slot = slot});
        prepared++;
    }
    if (prepared && !send_sync(p))
        return;
    for (unsigned i = 0; i < jobs; i++) {
        struct job *j = list_pop(&p->pending);
        int ok = j->prepared
                     ? PQsendQueryPrepared(p->pg, j->name, j->n, j->values, NULL, NULL, 0)
                     : PQsendQueryParams(p->pg, j->sql, j->n, NULL, j->values, NULL, NULL, 0);
        if (!ok) {
            list_push_front(&p->pending, j);
            drop_connection(p, PQerrorMessage(p->pg));
            return;
        }
        push_sent(p, (struct sent){.kind = SENT_QUERY, .job = j});
        /* So that a failure among statements sent again aborts nothing else: no statement is
         * sent more than twice however many fail. */
        if (j->resent && !send_sync(p))
            return;
    }
    if (jobs > 0 && send_sync(p))
        metrics_db_pipeline_batch(jobs);
}

/* One message's results are all in. */
static void finish(struct pipe *p, struct sent *s, struct job_list *again)
{
    ExecStatusType status = PQresultStatus(s->res);
    if (s->kind == SENT_PREPARE) {
        if (status != PGRES_COMMAND_OK) {
            /* Prepared again when next used; its queries sent meanwhile fail as not prepared. */
            if (status != PGRES_PIPELINE_ABORTED)
                log_event("error", "database pipeline: preparing failed: %s",
                          PQresultErrorMessage(s->res));
            db_statements_set(&p->statements, s->slot, NULL, false);
        }
        PQclear(s->res);
        return;
    }
    const char *state = PQresultErrorField(s->res, PG_DIAG_SQLSTATE);
    /* Aborted by a statement before it in its batch: innocent, sent again first thing, in a
     * segment of its own. */
    bool aborted = status == PGRES_PIPELINE_ABORTED;
    /* Not prepared after all (its preparation failed): prepared again, a few times at most. */
    bool unprepared = state && strcmp(state, "26000") == 0 && ++s->job->attempts < ATTEMPTS;
    if (aborted || unprepared) {
        s->job->resent = true;
        PQclear(s->res);
        list_push(again, s->job);
        metrics_db_pipeline_resent();
    } else if (!s->res) {
        answer(s->job, DB_ERROR, NULL, NULL);
    } else {
        answer(s->job, DB_OK, s->res, p->pg);
    }
}

/* Reads what has arrived and hands out every result that is complete. */
static void receive(struct pipe *p)
{
    if (PQconsumeInput(p->pg) != 1) {
        drop_connection(p, PQerrorMessage(p->pg));
        return;
    }
    struct job_list again = {0};
    while (p->count > 0 && !PQisBusy(p->pg)) {
        struct sent *s = &p->sent[p->first];
        PGresult *res = PQgetResult(p->pg);
        if (s->kind == SENT_SYNC) {
            /* A Sync's result stands alone: no NULL follows it. */
            if (!res)
                break;
            PQclear(res);
        } else if (res) {
            if (s->res)
                PQclear(res);
            else
                s->res = res;
            continue;
        }
        struct sent done = *s;
        p->first = (p->first + 1) % IN_FLIGHT;
        p->count--;
        if (done.kind != SENT_SYNC)
            finish(p, &done, &again);
    }
    list_append(&again, &p->pending);
    p->pending = again;
}

static void *run(void *arg)
{
    struct pipe *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        bool stopping = p->stopping;
        list_append(&p->pending, &p->queued);
        pthread_mutex_unlock(&p->lock);
        if (stopping)
            break;

        if (p->pending.head && !p->pg && !connect_pipe(p))
            answer_all(&p->pending, DB_UNAVAILABLE); /* down: say so at once, as db does */
        if (p->pg && p->pending.head)
            send_pending(p);
        bool writing = false;
        if (p->pg) {
            int flushed = PQflush(p->pg);
            if (flushed < 0)
                drop_connection(p, PQerrorMessage(p->pg));
            writing = flushed == 1;
        }

        struct pollfd fds[2] = {{.fd = p->wake, .events = POLLIN},
                                {.fd = p->pg ? PQsocket(p->pg) : -1,
                                 .events = (short)(POLLIN | (writing ? POLLOUT : 0))}};
        if (poll(fds, p->pg ? 2 : 1, -1) < 0) {
            if (errno != EINTR) {
                log_event("error", "database pipeline: poll: %s", strerror(errno));
                usleep(10000);
            }
            continue;
        }
        if (fds[0].revents & POLLIN) {
            uint64_t n;
            if (read(p->wake, &n, sizeof n) < 0 && errno != EAGAIN)
                log_event("error", "database pipeline: wake: %s", strerror(errno));
        }
        if (p->pg && (fds[1].revents & (POLLIN | POLLERR | POLLHUP)))
            receive(p);
    }
    drop_connection(p, NULL);
    /* Nothing more is queued once stopping is set; what came before it is answered here. */
    pthread_mutex_lock(&p->lock);
    struct job_list left = p->queued;
    p->queued = (struct job_list){0};
    pthread_mutex_unlock(&p->lock);
    answer_all(&left, DB_UNAVAILABLE);
    return NULL;
}

int dbpipe_start(unsigned connections)
{
    if (connections > MAX_CONNECTIONS)
        connections = MAX_CONNECTIONS;
    for (n_pipes = 0; n_pipes < connections; n_pipes++) {
        struct pipe *p = xcalloc(1, sizeof *p);
        p->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        pthread_mutex_init(&p->lock, NULL);
        if (p->wake < 0 || pthread_create(&p->thread, NULL, run, p) != 0) {
            log_event("error", "database pipeline: cannot start: %s", strerror(errno));
            if (p->wake >= 0)
                close(p->wake);
            free(p);
            dbpipe_stop();
            return -1;
        }
        pipes[n_pipes] = p;
    }
    atomic_store(&running, connections > 0);
    return 0;
}

bool dbpipe_running(void)
{
    return atomic_load(&running);
}

static void wake(struct pipe *p)
{
    uint64_t one = 1;
    if (write(p->wake, &one, sizeof one) < 0 && errno != EAGAIN)
        log_event("error", "database pipeline: wake: %s", strerror(errno));
}

/* The pipes stay allocated (and their eventfds open): a request on a kept-alive connection may
 * still submit while they stop, and then finds its pipe stopping. */
void dbpipe_stop(void)
{
    atomic_store(&running, false);
    for (unsigned i = 0; i < n_pipes; i++) {
        struct pipe *p = pipes[i];
        pthread_mutex_lock(&p->lock);
        bool was_running = !p->stopping;
        p->stopping = true;
        pthread_mutex_unlock(&p->lock);
        if (was_running) {
            wake(p);
            pthread_join(p->thread, NULL);
        }
    }
}

void dbpipe_submit(const char *sql, int n, const char *const *values, dbpipe_done done, void *ctx)
{
    if (n > DBPIPE_MAX_PARAMS) {
        log_event("error", "database pipeline: %d parameters, at most %d", n, DBPIPE_MAX_PARAMS);
        abort(); /* a bug in the program's SQL */
    }
    size_t size = 0;
    for (int i = 0; i < n; i++)
        size += values[i] ? strlen(values[i]) + 1 : 0;
    struct job *j = xcalloc(1, sizeof *j + size);
    *j = (struct job){.sql = sql, .n = n, .done = done, .ctx = ctx};
    char *text = j->text;
    for (int i = 0; i < n; i++) {
        if (!values[i])
            continue;
        size_t len = strlen(values[i]) + 1;
        memcpy(text, values[i], len);
        j->values[i] = text;
        text += len;
    }
    if (!atomic_load(&running)) {
        answer(j, DB_UNAVAILABLE, NULL, NULL);
        return;
    }
    struct pipe *p = pipes[atomic_fetch_add(&next_pipe, 1) % n_pipes];
    pthread_mutex_lock(&p->lock);
    bool accepted = !p->stopping;
    bool was_empty = !p->queued.head;
    if (accepted)
        list_push(&p->queued, j);
    pthread_mutex_unlock(&p->lock);
    if (!accepted)
        answer(j, DB_UNAVAILABLE, NULL, NULL);
    else if (was_empty)
        wake(p); /* a queue that was not empty has a wake-up on its way already */
}

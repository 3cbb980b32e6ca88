#include "dbpipe.h"

#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "prepared.h"
#include "replicas.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define IN_FLIGHT  4096                 /* messages sent and not yet answered, per connection */
#define ATTEMPTS   3                    /* sendings of a statement whose preparation failed */
#define DOOMED_MAX (2 * PREPARED_SLOTS) /* evicted statements waiting to be deallocated */
/* A hosted pipe's connect gives up after this long, as db's connect_timeout does when libpq
 * waits itself: an event loop's connect is the loop's to time. */
#define CONNECT_TIMEOUT_MS 2000

struct job {
    struct job *next;
    const char *sql;
    int n;
    int attempts;
    bool resent;  /* aborted once by another's failure: now sent in a segment of its own */
    bool write;   /* a write: a segment of its own, answered once that segment's Sync is in */
    bool counted; /* a read of a resource (dbpipe_submit_to()): counted by where it ran */
    PGresult *committing; /* a write's result, until its Sync says it is committed */
    /* In the batch being sent: the prepared statement it runs as, and whether this batch
     * prepares it. */
    struct prepared_statement *statement;
    bool prepare;
    char name[PREPARED_NAME];
    const char *values[DBPIPE_MAX_PARAMS];
    dbpipe_done done;
    void *ctx;
    char text[]; /* the values, copied */
};

enum sent_kind { SENT_DEALLOCATE, SENT_PREPARE, SENT_QUERY, SENT_SYNC, SENT_POSITION };

/* What was sent, in the order its results come back. */
struct sent {
    enum sent_kind kind;
    struct job *job;                      /* SENT_QUERY */
    struct prepared_statement *statement; /* SENT_PREPARE: the statement it prepares... */
    char name[PREPARED_NAME];             /* ... under this name; SENT_DEALLOCATE: the name */
    PGresult *res; /* the first result; later ones (there are none for these) are dropped */
};

struct job_list {
    struct job *head, *tail;
};

struct pipe {
    pthread_t thread;
    bool writes;     /* takes writes (dbpipe_submit_write), not reads */
    unsigned target; /* REPLICAS_PRIMARY, or the replica it reads from */
    bool hosted;     /* run by an event loop (dbpipe_host()), not by a thread of its own */
    int wake;        /* eventfd: something was queued, or it is time to stop */
    pthread_mutex_t lock;
    struct job_list queued; /* under lock */
    bool stopping;          /* under lock */
    atomic_bool woken;      /* a hosted pipe's: wake has been written to since it was read */

    /* The thread's own (the host's, for a hosted pipe). */
    struct job_list pending; /* taken from queued, or submitted by the host itself, to be sent */
    PGconn *pg;
    bool connecting; /* a hosted pipe's pg is still being connected (PQconnectPoll()) */
    int64_t connect_deadline_ms;
    int epoll_fd;            /* a hosted pipe's host's epoll set, its descriptors there with tag */
    void *tag;               /* as their data */
    int watched_fd;          /* pg's socket as it is registered there (-1: not)... */
    uint32_t watched_events; /* ... for these events */
    bool ended;              /* a hosted pipe has answered everything and closed its connection */
    struct db_backoff backoff;
    struct prepared statements;
    /* Statements evicted from the table and not yet deallocated on the connection (a
     * DEALLOCATE that another's failure aborted comes back here). */
    char doomed[DOOMED_MAX][PREPARED_NAME];
    unsigned n_doomed;
    struct sent sent[IN_FLIGHT]; /* a ring */
    unsigned first, count;
    struct job_list committing; /* writes whose statement succeeded, until their Sync is in */
    /* Committed writes, until the WAL position after their batch is in (with replicas only). */
    struct job_list positioned;

    /* Read by anyone (/metrics, /readyz). */
    atomic_bool up, tried;
    atomic_ulong made, succeeded; /* statements run successfully */
};

/* The pipes for reads from the primary, those for reads from each replica (as many), then those
 * for writes. */
static struct pipe *pipes[(REPLICAS_MAX + 2) * DBPIPE_MAX_CONNECTIONS];
static unsigned n_pipes, n_readers, n_reading; /* n_readers per database; n_reading in all */
static unsigned n_hosted; /* of the pipes for reads from the primary, the first n_hosted */
/* The pipe this thread hosts, to which it submits its reads from the primary without a lock. */
static _Thread_local struct pipe *hosted_here;
static atomic_uint next_pipe, next_writer;
static atomic_bool reads_on, writes_on; /* pipes for reads, for writes, are running */

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

/* Hands the job its result (res may be NULL: then status says why), with the WAL position a
 * write's commit reached, and frees it. */
static enum db_status answer_at(struct job *j, enum db_status status, PGresult *res, PGconn *pg,
                                uint64_t position)
{
    if (j->committing != res)
        PQclear(j->committing); /* a write's result that never saw its commit */
    struct db_result r = {.status = status, .position = position};
    if (res)
        db_result_of(&r, res, pg);
    status = r.status;
    j->done(j->ctx, &r);
    free(j);
    return status;
}

static enum db_status answer(struct job *j, enum db_status status, PGresult *res, PGconn *pg)
{
    return answer_at(j, status, res, pg, 0);
}

static void queue(struct pipe *p, struct job *j);

/* A read its replica could not run goes to the primary: the client gets its answer from there,
 * not an error. */
static void reroute(struct job *j)
{
    j->resent = false;
    j->attempts = 0;
    queue(pipes[atomic_fetch_add(&next_pipe, 1) % n_readers], j);
}

static void reroute_all(struct job_list *l)
{
    for (struct job *j; (j = list_pop(l));)
        reroute(j);
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

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Has a hosted pipe's host watch fd (-1: nothing) for events. libpq may close its socket and
 * open another while it connects (the next address): a descriptor closed is out of the epoll set
 * already, and one that got the same number again is not in it yet. */
static void watch(struct pipe *p, int fd, uint32_t events)
{
    if (!p->hosted || (fd == p->watched_fd && events == p->watched_events))
        return;
    if (p->watched_fd >= 0 && fd != p->watched_fd)
        epoll_ctl(p->epoll_fd, EPOLL_CTL_DEL, p->watched_fd, NULL); /* closed already, maybe */
    p->watched_fd = -1;
    if (fd >= 0) {
        struct epoll_event ev = {.events = events, .data.ptr = p->tag};
        if (epoll_ctl(p->epoll_fd, EPOLL_CTL_MOD, fd, &ev) < 0 &&
            epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            log_event("error", "database pipeline: epoll_ctl: %s", strerror(errno));
            return;
        }
        p->watched_fd = fd;
        p->watched_events = events;
    }
}

/* Before pg's socket is closed: out of the host's epoll set first. */
static void unwatch(struct pipe *p)
{
    watch(p, -1, 0);
}

/* The connection failed (or the pipe stops): everything in hand is answered as unavailable. */
static void drop_connection(struct pipe *p, const char *why)
{
    if (why)
        log_event("error", "database pipeline: %s", why);
    for (; p->count > 0; p->first = (p->first + 1) % IN_FLIGHT, p->count--) {
        struct sent *s = &p->sent[p->first];
        PQclear(s->res);
        if (s->kind == SENT_QUERY && p->target != REPLICAS_PRIMARY)
            reroute(s->job);
        else if (s->kind == SENT_QUERY)
            answer(s->job, DB_UNAVAILABLE, NULL, NULL);
    }
    p->first = 0;
    /* Whether these committed is unknown, as for any commit whose answer was lost. */
    answer_all(&p->committing, DB_UNAVAILABLE);
    /* These did: only the position after them is lost. */
    for (struct job *j; (j = list_pop(&p->positioned));)
        answer_at(j, DB_OK, j->committing, p->pg, 0);
    if (p->target != REPLICAS_PRIMARY) {
        reroute_all(&p->pending);
        replicas_failed(p->target);
    } else {
        answer_all(&p->pending, DB_UNAVAILABLE);
    }
    unwatch(p);
    if (p->connecting)
        PQfinish(p->pg); /* not made yet, so never counted among the open connections */
    else
        db_release(p->pg);
    p->pg = NULL;
    p->connecting = false;
    atomic_store(&p->up, false);
    prepared_clear(&p->statements);
    p->n_doomed = 0; /* the connection took its prepared statements with it */
    db_backoff_failed(&p->backoff);
}

/* Made at start, and again by the pipe itself after a failure, as soon as the back-off allows,
 * whether or not a statement waits for it. */
static void connect_pipe(struct pipe *p)
{
    p->pg = p->target == REPLICAS_PRIMARY ? db_connect_session()
                                          : db_connect_session_to(replicas_url(p->target));
    if (!p->pg) {
        drop_connection(p, NULL); /* db has counted the error; this sets the back-off */
    } else if (PQsetnonblocking(p->pg, 1) != 0 || PQenterPipelineMode(p->pg) != 1) {
        drop_connection(p, PQerrorMessage(p->pg));
    } else {
        db_backoff_succeeded(&p->backoff);
        if (atomic_fetch_add(&p->made, 1) > 0)
            log_event("info", "database pipeline: connected again");
        atomic_store(&p->up, true);
    }
    atomic_store(&p->tried, true);
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

/* A statement evicted from the table, to be deallocated in the next batch. */
static void doom(struct pipe *p, const char *name)
{
    if (p->n_doomed == DOOMED_MAX) {
        log_event("warning", "database pipeline: %s stays prepared until the connection ends",
                  name);
        return;
    }
    memcpy(p->doomed[p->n_doomed++], name, PREPARED_NAME);
}

/* Sends what is pending (as much as the ring has room for) as one batch ended by one Sync. The
 * statements new to this connection are prepared first, in a segment of their own, after the
 * deallocation of those they evict: a failing query then never aborts a preparation that
 * statements of later batches count on. A batch never evicts a statement it runs itself: when the
 * table is full of the batch's own statements, the batch ends there and the rest wait for the
 * next. So every statement runs prepared. */
static void send_pending(struct pipe *p)
{
    unsigned space = IN_FLIGHT - p->count, jobs = 0, preparing = 0;
    if (p->n_doomed + 7 > space) /* the deallocations and one statement at worst (below) */
        return;
    uint64_t batch = p->statements.clock;
    for (struct job *j = p->pending.head; j; j = j->next, jobs++) {
        /* Room for this one at worst: a deallocation, a preparation, the query and a Sync. */
        if (p->n_doomed + 1 + preparing + 1 + 1 + 2 * (jobs + 1) + 1 > space)
            break;
        struct prepared_statement *st = prepared_find(&p->statements, j->sql);
        if (!st) {
            if (prepared_evicts_since(&p->statements, batch) || p->n_doomed == DOOMED_MAX)
                break;
            char evicted[PREPARED_NAME];
            st = prepared_add(&p->statements, j->sql, evicted);
            if (evicted[0])
                doom(p, evicted);
        }
        j->statement = st;
        j->prepare = !st->prepared;
        st->prepared = true; /* prepared already, or in this batch */
        preparing += j->prepare;
        memcpy(j->name, st->name, PREPARED_NAME);
    }
    if (p->n_doomed > 0 || preparing > 0) {
        for (unsigned i = 0; i < p->n_doomed; i++) {
            char sql[PREPARED_NAME + 16];
            snprintf(sql, sizeof sql, "DEALLOCATE %s", p->doomed[i]);
            if (PQsendQueryParams(p->pg, sql, 0, NULL, NULL, NULL, NULL, 0) != 1) {
                drop_connection(p, PQerrorMessage(p->pg));
                return;
            }
            struct sent *s = push_sent(p, (struct sent){.kind = SENT_DEALLOCATE});
            memcpy(s->name, p->doomed[i], PREPARED_NAME);
        }
        p->n_doomed = 0;
        unsigned i = 0;
        for (struct job *j = p->pending.head; i < jobs; j = j->next, i++) {
            if (!j->prepare)
                continue;
            if (PQsendPrepare(p->pg, j->name, j->sql, j->n, NULL) != 1) {
                drop_connection(p, PQerrorMessage(p->pg));
                return;
            }
            struct sent *s =
                push_sent(p, (struct sent){.kind = SENT_PREPARE, .statement = j->statement});
            memcpy(s->name, j->name, PREPARED_NAME);
            metrics_db_prepared(METRICS_DB_PIPELINE);
        }
        if (!send_sync(p))
            return;
    }
    bool open = false; /* statements sent since the last Sync */
    for (unsigned i = 0; i < jobs; i++) {
        struct job *j = list_pop(&p->pending);
        if (!PQsendQueryPrepared(p->pg, j->name, j->n, j->values, NULL, NULL, 0)) {
            list_push_front(&p->pending, j);
            drop_connection(p, PQerrorMessage(p->pg));
            return;
        }
        push_sent(p, (struct sent){.kind = SENT_QUERY, .job = j});
        open = true;
        /* So that a failure among statements sent again aborts nothing else: no statement is
         * sent more than twice however many fail. A write is alone in its segment (a write
         * pipe carries nothing else, and a Sync ends the preparations before it): its commit is
         * its own, and nothing else's failure rolls it back. */
        if (j->resent || j->write) {
            if (!send_sync(p))
                return;
            open = false;
        }
    }
    /* A batch whose last statement had its own Sync needs no other. */
    if (jobs == 0 || (open && !send_sync(p)))
        return;
    metrics_db_pipeline_batch(jobs);
    /* Where the WAL stands once the batch's writes are committed: their Consistency-Token. One
     * statement more for the whole batch, in the same round trip. */
    if (p->writes && replicas_count() > 0) {
        if (PQsendQueryParams(p->pg, db_position_sql, 0, NULL, NULL, NULL, NULL, 0) != 1) {
            drop_connection(p, PQerrorMessage(p->pg));
            return;
        }
        push_sent(p, (struct sent){.kind = SENT_POSITION});
        send_sync(p);
    }
}

/* One message's results are all in. */
static void finish(struct pipe *p, struct sent *s, struct job_list *again)
{
    ExecStatusType status = PQresultStatus(s->res);
    if (s->kind == SENT_POSITION) {
        uint64_t position = 0;
        if (status != PGRES_TUPLES_OK || PQntuples(s->res) != 1 ||
            !db_lsn_parse(PQgetvalue(s->res, 0, 0), &position))
            position = 0; /* the writes stand; only their token is missing */
        PQclear(s->res);
        for (struct job *j; (j = list_pop(&p->positioned));)
            if (answer_at(j, DB_OK, j->committing, p->pg, position) == DB_OK)
                atomic_fetch_add_explicit(&p->succeeded, 1, memory_order_relaxed);
        return;
    }
    if (s->kind == SENT_DEALLOCATE) {
        if (status == PGRES_COMMAND_OK)
            metrics_db_evicted(METRICS_DB_PIPELINE);
        else if (status == PGRES_PIPELINE_ABORTED)
            doom(p, s->name); /* innocent: sent again with the next batch */
        else /* e.g. its own preparation had failed: there is nothing to deallocate */
            log_event("warning", "database pipeline: DEALLOCATE %s: %s", s->name,
                      PQresultErrorField(s->res, PG_DIAG_SQLSTATE));
        PQclear(s->res);
        return;
    }
    if (s->kind == SENT_PREPARE) {
        if (status != PGRES_COMMAND_OK) {
            /* Prepared again when next used; its queries sent meanwhile fail as not prepared.
             * Unless it was evicted meanwhile: then the slot holds another statement. */
            if (status != PGRES_PIPELINE_ABORTED)
                log_event("error", "database pipeline: preparing failed: %s",
                          PQresultErrorMessage(s->res));
            if (strcmp(s->statement->name, s->name) == 0)
                s->statement->prepared = false;
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
    /* On a replica, what is the replica's doing rather than the statement's goes to the primary:
     * replay cancelled it (a conflict with recovery, 40001), or the replica is shutting down or
     * the connection is going (57xxx but a statement timeout, 08xxx, or an error of libpq's
     * own, which has no SQLSTATE; the connection's end follows). */
    if (p->target != REPLICAS_PRIMARY &&
        (!s->res || (!state && status == PGRES_FATAL_ERROR) ||
         (state && (strcmp(state, "40001") == 0 ||
                    (strncmp(state, "57", 2) == 0 && strcmp(state, "57014") != 0) ||
                    strncmp(state, "08", 2) == 0)))) {
        PQclear(s->res);
        reroute(s->job);
        return;
    }
    if (aborted || unprepared) {
        s->job->resent = true;
        PQclear(s->res);
        list_push(again, s->job);
        metrics_db_pipeline_resent();
    } else if (!s->res) {
        answer(s->job, DB_ERROR, NULL, NULL);
    } else if (s->job->write && (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)) {
        s->job->committing = s->res; /* answered when its Sync is in: then it is committed */
        list_push(&p->committing, s->job);
    } else {
        bool counted = s->job->counted;
        if (answer(s->job, DB_OK, s->res, p->pg) == DB_OK) {
            atomic_fetch_add_explicit(&p->succeeded, 1, memory_order_relaxed);
            if (counted)
                replicas_served(p->target);
        }
    }
}

/* Reads what has arrived and hands out every result that is complete. */
static void receive(struct pipe *p)
{
    /* Also when nothing is under way: a server that closes an idle connection is noticed at
     * once, and the pipe connects again without waiting for a statement. */
    if (PQconsumeInput(p->pg) != 1 || PQstatus(p->pg) != CONNECTION_OK) {
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
            if (PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
                /* The commit at the Sync failed (a deferred constraint): the write before it
                 * gets the error; the Sync's own result follows. */
                struct job *j = list_pop(&p->committing); /* one at most: it is alone */
                if (j)
                    answer(j, DB_OK, res, p->pg); /* classified as the error it is */
                else
                    PQclear(res);
                continue;
            }
            PQclear(res);
            /* The writes before it are committed now; with replicas they wait for the position
             * after them, which comes next. */
            for (struct job *j; (j = list_pop(&p->committing));) {
                if (replicas_count() > 0) {
                    list_push(&p->positioned, j);
                    continue;
                }
                if (answer_at(j, DB_OK, j->committing, p->pg, 0) == DB_OK)
                    atomic_fetch_add_explicit(&p->succeeded, 1, memory_order_relaxed);
            }
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

/* Takes what other threads queued; false when the pipe is to stop. */
static bool take_queued(struct pipe *p)
{
    pthread_mutex_lock(&p->lock);
    bool stopping = p->stopping;
    list_append(&p->pending, &p->queued);
    pthread_mutex_unlock(&p->lock);
    return !stopping;
}

/* Sends what is pending, or answers it at once when there is no connection, as db does (a read
 * from a replica down goes to the primary). Returns whether what was sent is still to be flushed:
 * then the socket is to be watched for room. While a hosted pipe connects, statements wait. */
static bool send_what_is_pending(struct pipe *p)
{
    if (!p->pg && p->target != REPLICAS_PRIMARY)
        reroute_all(&p->pending);
    else if (!p->pg)
        answer_all(&p->pending, DB_UNAVAILABLE);
    if (!p->pg || p->connecting)
        return false;
    if (p->pending.head)
        send_pending(p);
    int flushed = p->pg ? PQflush(p->pg) : 0;
    if (flushed < 0)
        drop_connection(p, PQerrorMessage(p->pg));
    return flushed == 1;
}

/* Whether libpq holds whole results already. It reads what has arrived while it sends when the
 * socket will take no more: results read then no longer make the socket readable, and waiting
 * for it would hold them (and their requests) until something else happens. */
static bool results_held(struct pipe *p)
{
    return p->pg && !p->connecting && p->count > 0 && !PQisBusy(p->pg);
}

/* The pipe stops: what is in hand, pending or queued is answered as unavailable. */
static void end_pipe(struct pipe *p)
{
    drop_connection(p, NULL);
    /* Nothing more is queued once stopping is set; what came before it is answered here. */
    pthread_mutex_lock(&p->lock);
    struct job_list left = p->queued;
    p->queued = (struct job_list){0};
    pthread_mutex_unlock(&p->lock);
    answer_all(&left, DB_UNAVAILABLE);
    p->ended = true;
}

static void *run(void *arg)
{
    struct pipe *p = arg;
    while (take_queued(p)) {
        if (!p->pg && db_backoff_allows(&p->backoff))
            connect_pipe(p);
        bool writing = send_what_is_pending(p);
        struct pollfd fds[2] = {{.fd = p->wake, .events = POLLIN},
                                {.fd = p->pg ? PQsocket(p->pg) : -1,
                                 .events = (short)(POLLIN | (writing ? POLLOUT : 0))}};
        /* Without a connection: awake when the back-off allows the next attempt. */
        int timeout = p->pg ? -1 : db_backoff_wait_ms(&p->backoff) + 1;
        if (results_held(p))
            timeout = 0;
        if (poll(fds, p->pg ? 2 : 1, timeout) < 0) {
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
        if (p->pg && (fds[1].revents & (POLLIN | POLLERR | POLLHUP) || results_held(p)))
            receive(p);
    }
    end_pipe(p);
    return NULL;
}

/* ---- pipes hosted by event loops ---- */

/* The connect under way failed, or took too long. */
static void connect_failed(struct pipe *p)
{
    unwatch(p);
    db_connect_ended(p->pg, false);
    p->pg = NULL;
    p->connecting = false;
    db_backoff_failed(&p->backoff);
}

/* As connect_pipe(), without blocking the loop: started here, driven by connect_on(). */
static void connect_begin(struct pipe *p)
{
    p->pg = db_connect_start();
    if (!p->pg) {
        db_backoff_failed(&p->backoff);
        return;
    }
    p->connecting = true;
    p->connect_deadline_ms = now_ms() + CONNECT_TIMEOUT_MS;
    /* As if PQconnectPoll() had asked for writing, which is how libpq says to begin. */
    watch(p, PQsocket(p->pg), EPOLLOUT);
}

static void connect_on(struct pipe *p)
{
    PostgresPollingStatusType polled = PQconnectPoll(p->pg);
    if (polled == PGRES_POLLING_FAILED) {
        connect_failed(p);
    } else if (polled != PGRES_POLLING_OK) {
        watch(p, PQsocket(p->pg), polled == PGRES_POLLING_READING ? EPOLLIN : EPOLLOUT);
    } else {
        p->connecting = false;
        db_connect_ended(p->pg, true);
        if (PQsetnonblocking(p->pg, 1) != 0 || PQenterPipelineMode(p->pg) != 1) {
            drop_connection(p, PQerrorMessage(p->pg));
            return;
        }
        db_backoff_succeeded(&p->backoff);
        if (atomic_fetch_add(&p->made, 1) > 0)
            log_event("info", "database pipeline: connected again");
        atomic_store(&p->up, true);
        watch(p, PQsocket(p->pg), EPOLLIN);
    }
}

struct dbpipe *dbpipe_host(unsigned i, int epoll_fd, void *tag)
{
    if (i >= n_hosted)
        return NULL;
    struct pipe *p = pipes[i];
    p->epoll_fd = epoll_fd;
    p->tag = tag;
    p->watched_fd = -1;
    /* Edge-triggered: wake is read only when woken says it was written to (dbpipe_hosted_event),
     * so a write that raced with the last read must not make it ready forever. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = tag};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, p->wake, &ev) < 0) {
        log_event("error", "database pipeline: epoll_ctl: %s", strerror(errno));
        abort(); /* at start only */
    }
    if (p->pg)
        watch(p, PQsocket(p->pg), EPOLLIN);
    hosted_here = p;
    return (struct dbpipe *)p;
}

void dbpipe_hosted_event(struct dbpipe *pipe)
{
    struct pipe *p = (struct pipe *)pipe;
    if (p->ended)
        return;
    if (atomic_exchange(&p->woken, false)) {
        uint64_t n;
        if (read(p->wake, &n, sizeof n) < 0 && errno != EAGAIN)
            log_event("error", "database pipeline: wake: %s", strerror(errno));
        if (!take_queued(p)) {
            end_pipe(p);
            return;
        }
    }
    if (p->connecting)
        connect_on(p);
    else if (p->pg)
        receive(p);
}

int dbpipe_hosted_flush(struct dbpipe *pipe)
{
    struct pipe *p = (struct pipe *)pipe;
    if (p->ended)
        return -1;
    if (!p->pg && db_backoff_allows(&p->backoff))
        connect_begin(p);
    if (p->connecting && now_ms() >= p->connect_deadline_ms)
        connect_failed(p); /* what waited for it is answered below */
    bool writing = send_what_is_pending(p);
    if (results_held(p)) {
        receive(p); /* what it answers goes on at once; what it sends again, next time here */
        return 0;
    }
    if (p->pg && !p->connecting)
        watch(p, PQsocket(p->pg), EPOLLIN | (writing ? EPOLLOUT : 0));
    if (!p->pg)
        return db_backoff_wait_ms(&p->backoff) + 1;
    if (p->connecting)
        return (int)(p->connect_deadline_ms - now_ms()) + 1;
    return -1;
}

void dbpipe_unhost(struct dbpipe *pipe)
{
    struct pipe *p = (struct pipe *)pipe;
    if (!p->ended)
        end_pipe(p);
    epoll_ctl(p->epoll_fd, EPOLL_CTL_DEL, p->wake, NULL);
    hosted_here = NULL;
}

int dbpipe_start(unsigned readers, unsigned hosted, unsigned writers)
{
    if (readers > DBPIPE_MAX_CONNECTIONS)
        readers = DBPIPE_MAX_CONNECTIONS;
    if (writers > DBPIPE_MAX_CONNECTIONS)
        writers = DBPIPE_MAX_CONNECTIONS;
    n_readers = readers;
    n_hosted = hosted < readers ? hosted : readers;
    /* Reads from replicas need pipes for reads: without them every read runs on a worker. */
    n_reading = readers * (1 + (readers ? replicas_count() : 0));
    unsigned connections = n_reading + writers;
    for (n_pipes = 0; n_pipes < connections; n_pipes++) {
        struct pipe *p = xcalloc(1, sizeof *p);
        p->writes = n_pipes >= n_reading;
        p->target = p->writes ? REPLICAS_PRIMARY : n_pipes / readers;
        p->hosted = n_pipes < n_hosted;
        p->watched_fd = -1;
        p->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        pthread_mutex_init(&p->lock, NULL);
        if (p->hosted && p->wake >= 0) {
            /* Its first connect here, where waiting is allowed; its host connects it again
             * without waiting when it breaks. */
            pipes[n_pipes] = p;
            connect_pipe(p);
            continue;
        }
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
    atomic_store(&reads_on, readers > 0);
    atomic_store(&writes_on, writers > 0);
    /* Until each has tried to connect once, so that /readyz is true from the first request. */
    for (unsigned tried = 0, waited = 0; tried < n_pipes && waited < 2500; waited += 5) {
        tried = 0;
        for (unsigned i = 0; i < n_pipes; i++)
            tried += atomic_load(&pipes[i]->tried);
        if (tried < n_pipes)
            usleep(5000);
    }
    return 0;
}

size_t dbpipe_connections(struct metrics_connection *out, size_t max)
{
    size_t n = 0;
    for (; n < n_pipes && n < max; n++) {
        struct pipe *p = pipes[n];
        out[n] = (struct metrics_connection){
            .kind = p->writes                       ? "writes"
                    : p->target == REPLICAS_PRIMARY ? "pipeline"
                                                    : replicas_name(p->target),
            .slot = (unsigned)(p->writes ? n - n_reading : n % n_readers),
            .up = atomic_load(&p->up),
            .made = atomic_load(&p->made),
            .statements = atomic_load(&p->succeeded),
        };
    }
    return n;
}

bool dbpipe_running(void)
{
    return atomic_load(&reads_on);
}

bool dbpipe_writing(void)
{
    return atomic_load(&writes_on);
}

static void wake(struct pipe *p)
{
    atomic_store(&p->woken, true); /* for a hosted pipe: its host reads wake when it sees this */
    uint64_t one = 1;
    if (write(p->wake, &one, sizeof one) < 0 && errno != EAGAIN)
        log_event("error", "database pipeline: wake: %s", strerror(errno));
}

/* The pipes stay allocated (and their eventfds open): a request on a kept-alive connection may
 * still submit while they stop, and then finds its pipe stopping. */
void dbpipe_stop(void)
{
    atomic_store(&reads_on, false);
    atomic_store(&writes_on, false);
    for (unsigned i = 0; i < n_pipes; i++) {
        struct pipe *p = pipes[i];
        pthread_mutex_lock(&p->lock);
        bool was_running = !p->stopping;
        p->stopping = true;
        pthread_mutex_unlock(&p->lock);
        if (was_running)
            wake(p);
        if (was_running && !p->hosted)
            pthread_join(p->thread, NULL); /* a hosted pipe ends on its host's thread */
    }
}

static void submit(unsigned target, bool counted, const char *sql, int n, const char *const *values,
                   bool write, dbpipe_done done, void *ctx)
{
    if (n > DBPIPE_MAX_PARAMS) {
        log_event("error", "database pipeline: %d parameters, at most %d", n, DBPIPE_MAX_PARAMS);
        abort(); /* a bug in the program's SQL */
    }
    size_t size = 0;
    for (int i = 0; i < n; i++)
        size += values[i] ? strlen(values[i]) + 1 : 0;
    struct job *j = xcalloc(1, sizeof *j + size);
    *j = (struct job){.sql = sql, .n = n, .write = write, .done = done, .ctx = ctx};
    char *text = j->text;
    for (int i = 0; i < n; i++) {
        if (!values[i])
            continue;
        size_t len = strlen(values[i]) + 1;
        memcpy(text, values[i], len);
        j->values[i] = text;
        text += len;
    }
    if (!atomic_load(write ? &writes_on : &reads_on)) {
        answer(j, DB_UNAVAILABLE, NULL, NULL);
        return;
    }
    j->counted = counted;
    if (target > replicas_count())
        target = REPLICAS_PRIMARY;
    if (!write && target == REPLICAS_PRIMARY && hosted_here && !hosted_here->ended) {
        list_push(&hosted_here->pending, j); /* sent before the host waits again */
        return;
    }
    queue(write ? pipes[n_reading + atomic_fetch_add(&next_writer, 1) % (n_pipes - n_reading)]
                : pipes[target * n_readers + atomic_fetch_add(&next_pipe, 1) % n_readers],
          j);
}

static void queue(struct pipe *p, struct job *j)
{
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

void dbpipe_submit(const char *sql, int n, const char *const *values, dbpipe_done done, void *ctx)
{
    submit(REPLICAS_PRIMARY, false, sql, n, values, false, done, ctx);
}

void dbpipe_submit_to(unsigned target, const char *sql, int n, const char *const *values,
                      dbpipe_done done, void *ctx)
{
    submit(target, true, sql, n, values, false, done, ctx);
}

void dbpipe_submit_write(const char *sql, int n, const char *const *values, dbpipe_done done,
                         void *ctx)
{
    submit(REPLICAS_PRIMARY, false, sql, n, values, true, done, ctx);
}

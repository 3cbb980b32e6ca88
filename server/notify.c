#include "notify.h"

#include "auth.h"
#include "db.h"
#include "log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* Keep-alive on the listener's TCP connection: a probe after 10 s of silence, then every 5 s,
 * and the connection is given up after 3 unanswered ones. */
#define KEEPALIVE_IDLE_S     10
#define KEEPALIVE_INTERVAL_S 5
#define KEEPALIVE_COUNT      3

/* Both in one round trip: the name first, so that the session is found by it from the start. */
static const char SQL_LISTEN[] =
    "SET application_name TO '" NOTIFY_APPLICATION_NAME "'; LISTEN " NOTIFY_CHANNEL;

static pthread_t thread;
static int wake = -1; /* eventfd: time to stop */
static atomic_bool stopping, started, up, tried;
static atomic_ulong made, listens, heard;

/* libpq turns keep-alive on but leaves its timing to the system (two hours of silence before the
 * first probe): far too long for a connection whose loss must be noticed. Unix sockets need none:
 * their peer's end is seen at once. */
static void keep_alive(int fd)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0 ||
        (addr.ss_family != AF_INET && addr.ss_family != AF_INET6))
        return;
    int on = 1, idle = KEEPALIVE_IDLE_S, interval = KEEPALIVE_INTERVAL_S, count = KEEPALIVE_COUNT;
    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count) != 0)
        log_event("warning", "revocation listener: cannot set keep-alive: %s", strerror(errno));
}

/* A connection that LISTENs, or NULL (db has counted the failure). */
static PGconn *listen_again(void)
{
    PGconn *pg = db_connect_session();
    if (!pg)
        return NULL;
    PGresult *res = PQexec(pg, SQL_LISTEN);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        log_event("error", "revocation listener: LISTEN failed: %s", PQresultErrorMessage(res));
    PQclear(res);
    if (!ok) {
        db_release(pg);
        return NULL;
    }
    atomic_fetch_add(&listens, 1);
    keep_alive(PQsocket(pg));
    return pg;
}

/* Whatever has arrived: each notification forgets its key. False when the connection is lost. */
static bool hear(PGconn *pg)
{
    bool alive = PQconsumeInput(pg) == 1;
    PGnotify *n;
    while ((n = PQnotifies(pg)) != NULL) {
        auth_forget(n->extra);
        atomic_fetch_add_explicit(&heard, 1, memory_order_relaxed);
        PQfreemem(n);
    }
    return alive && PQstatus(pg) == CONNECTION_OK;
}

static void *run(void *unused)
{
    (void)unused;
    PGconn *pg = NULL;
    struct db_backoff backoff = {0};
    bool said_down = false; /* a failure is logged once, not at every attempt */
    while (!atomic_load(&stopping)) {
        if (!pg && db_backoff_allows(&backoff)) {
            pg = listen_again();
            if (pg) {
                db_backoff_succeeded(&backoff);
                /* After LISTEN: a revocation from now on is heard, one from before is found by
                 * looking the key up again. */
                auth_forget_all();
                atomic_store(&up, true);
                if (atomic_fetch_add(&made, 1) > 0)
                    log_event("info", "revocation listener: connected again; the key cache was "
                                      "emptied");
                said_down = false;
            } else {
                db_backoff_failed(&backoff);
                if (!said_down)
                    log_event("warning", "revocation listener: cannot connect; until it can, keys "
                                         "revoked on other instances are refused here within "
                                         "the key cache period");
                said_down = true;
            }
            atomic_store(&tried, true);
        }
        struct pollfd fds[2] = {{.fd = wake, .events = POLLIN},
                                {.fd = pg ? PQsocket(pg) : -1, .events = POLLIN}};
        /* Without a connection: awake when the back-off allows the next attempt. */
        int timeout = pg ? -1 : db_backoff_wait_ms(&backoff) + 1;
        if (poll(fds, pg ? 2 : 1, timeout) < 0) {
            if (errno != EINTR) {
                log_event("error", "revocation listener: poll: %s", strerror(errno));
                usleep(10000);
            }
            continue;
        }
        if (fds[0].revents & POLLIN) {
            uint64_t n;
            if (read(wake, &n, sizeof n) < 0 && errno != EAGAIN)
                log_event("error", "revocation listener: wake: %s", strerror(errno));
        }
        if (pg && (fds[1].revents & (POLLIN | POLLERR | POLLHUP)) && !hear(pg)) {
            char why[256];
            snprintf(why, sizeof why, "%s", PQerrorMessage(pg));
            why[strcspn(why, "\n")] = '\0';
            log_event("warning",
                      "revocation listener: connection lost (%s); until it is back, "
                      "keys revoked on other instances are refused here within the key "
                      "cache period",
                      why);
            said_down = true;
            db_release(pg);
            pg = NULL;
            atomic_store(&up, false);
            db_backoff_failed(&backoff);
        }
    }
    db_release(pg);
    atomic_store(&up, false);
    return NULL;
}

int notify_start(void)
{
    atomic_store(&stopping, false);
    wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake < 0 || pthread_create(&thread, NULL, run, NULL) != 0) {
        log_event("error", "revocation listener: cannot start: %s", strerror(errno));
        if (wake >= 0)
            close(wake);
        wake = -1;
        return -1;
    }
    atomic_store(&started, true);
    /* Until it has tried once, so that a key revoked right after the start is heard. */
    for (unsigned waited = 0; !atomic_load(&tried) && waited < 2500; waited += 5)
        usleep(5000);
    return 0;
}

void notify_stop(void)
{
    if (!atomic_load(&started))
        return;
    atomic_store(&stopping, true);
    uint64_t one = 1;
    if (write(wake, &one, sizeof one) < 0)
        log_event("error", "revocation listener: wake: %s", strerror(errno));
    pthread_join(thread, NULL);
    close(wake);
    wake = -1;
    atomic_store(&started, false);
}

size_t notify_connections(struct metrics_connection *out, size_t max)
{
    if (!atomic_load(&started) || max == 0)
        return 0;
    out[0] = (struct metrics_connection){
        .kind = "notify",
        .slot = 0,
        .up = atomic_load(&up),
        .made = atomic_load(&made),
        .statements = atomic_load(&listens),
    };
    return 1;
}

void notify_render(struct buf *out)
{
    buf_printf(out,
               "# HELP werklabd_revocation_notifications_total Revocations heard from the "
               "database (LISTEN " NOTIFY_CHANNEL ").\n"
               "# TYPE werklabd_revocation_notifications_total counter\n"
               "werklabd_revocation_notifications_total %lu\n",
               atomic_load(&heard));
}

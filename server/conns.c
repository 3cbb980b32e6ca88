#include "conns.h"

#include "buf.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Connections from one client address (IPv4 as IPv4-mapped IPv6). */
struct address {
    unsigned char ip[16];
    unsigned open;
    struct address *next; /* in its hash bucket */
};

struct conns_record {
    int fd;
    struct address *from;
    bool waiting; /* for a request: in the waiting list */
    bool closing; /* shut down here: no longer counted */
    struct conns_record *older, *newer;
};

#define BUCKETS 256

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned limit, per_address_limit;
static unsigned open_count, waiting_count;
static unsigned long long closed_for_room, refused;
static struct address *buckets[BUCKETS];
/* The connections that wait for a request, the one that has waited longest first. */
static struct conns_record *oldest, *newest;

void conns_init(unsigned total, unsigned per_address)
{
    limit = total;
    per_address_limit = per_address;
}

static void address_key(const struct sockaddr *sa, unsigned char ip[16])
{
    memset(ip, 0, 16);
    if (sa && sa->sa_family == AF_INET) {
        ip[10] = ip[11] = 0xff;
        memcpy(ip + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (sa && sa->sa_family == AF_INET6) {
        memcpy(ip, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    }
}

static struct address **bucket_of(const unsigned char ip[16])
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ ip[i]) * 16777619u;
    return &buckets[h % BUCKETS];
}

static struct address *address_take(const unsigned char ip[16])
{
    struct address **b = bucket_of(ip);
    for (struct address *a = *b; a; a = a->next)
        if (memcmp(a->ip, ip, 16) == 0) {
            a->open++;
            return a;
        }
    struct address *a = calloc(1, sizeof *a);
    if (!a)
        abort();
    memcpy(a->ip, ip, 16);
    a->open = 1;
    a->next = *b;
    *b = a;
    return a;
}

static void address_release(struct address *a)
{
    if (--a->open > 0)
        return;
    for (struct address **p = bucket_of(a->ip); *p; p = &(*p)->next)
        if (*p == a) {
            *p = a->next;
            break;
        }
    free(a);
}

static void wait_begin(struct conns_record *r)
{
    r->waiting = true;
    r->newer = NULL;
    r->older = newest;
    if (newest)
        newest->newer = r;
    else
        oldest = r;
    newest = r;
    waiting_count++;
}

static void wait_end(struct conns_record *r)
{
    if (!r->waiting)
        return;
    if (r->older)
        r->older->newer = r->newer;
    else
        oldest = r->newer;
    if (r->newer)
        r->newer->older = r->older;
    else
        newest = r->older;
    r->older = r->newer = NULL;
    r->waiting = false;
    waiting_count--;
}

/* Under the lock, with r's record still present: its socket is open and still r's. */
static void close_record(struct conns_record *r)
{
    shutdown(r->fd, SHUT_RDWR);
    wait_end(r);
    r->closing = true;
    open_count--;
    address_release(r->from);
    r->from = NULL;
}

/* Closes the connection that has waited longest, from `from` (or from anywhere when NULL);
 * when no other connection of that scope waits, the newcomer itself. */
static void make_room(struct conns_record *newcomer, const struct address *from)
{
    for (struct conns_record *r = oldest; r; r = r->newer)
        if (r != newcomer && (!from || r->from == from)) {
            close_record(r);
            closed_for_room++;
            return;
        }
    close_record(newcomer);
    refused++;
}

struct conns_record *conns_opened(int fd, const struct sockaddr *peer)
{
    unsigned char ip[16];
    address_key(peer, ip);
    struct conns_record *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->fd = fd;
    pthread_mutex_lock(&lock);
    r->from = address_take(ip);
    open_count++;
    wait_begin(r);
    if (open_count > limit)
        make_room(r, NULL);
    if (!r->closing && r->from->open > per_address_limit)
        make_room(r, r->from);
    pthread_mutex_unlock(&lock);
    return r;
}

void conns_closed(struct conns_record *r)
{
    pthread_mutex_lock(&lock);
    wait_end(r);
    if (!r->closing) {
        open_count--;
        address_release(r->from);
    }
    pthread_mutex_unlock(&lock);
    free(r);
}

void conns_busy(struct conns_record *r)
{
    pthread_mutex_lock(&lock);
    wait_end(r);
    pthread_mutex_unlock(&lock);
}

void conns_waiting(struct conns_record *r)
{
    pthread_mutex_lock(&lock);
    if (!r->closing && !r->waiting)
        wait_begin(r);
    pthread_mutex_unlock(&lock);
}

void conns_render(struct buf *out)
{
    pthread_mutex_lock(&lock);
    unsigned open = open_count, waiting = waiting_count;
    unsigned long long room = closed_for_room, turned_away = refused;
    pthread_mutex_unlock(&lock);
    buf_printf(out,
               "# HELP werklabd_http_connections Client connections open, by whether they wait "
               "for a request or are busy with one.\n"
               "# TYPE werklabd_http_connections gauge\n"
               "werklabd_http_connections{state=\"waiting\"} %u\n"
               "werklabd_http_connections{state=\"busy\"} %u\n",
               waiting, open - waiting);
    buf_printf(out,
               "# HELP werklabd_http_connections_closed_for_room_total Waiting connections closed "
               "to make room for a new one.\n"
               "# TYPE werklabd_http_connections_closed_for_room_total counter\n"
               "werklabd_http_connections_closed_for_room_total %llu\n",
               room);
    buf_printf(out,
               "# HELP werklabd_http_connections_refused_total New connections closed at once: "
               "the limit was reached and no connection was waiting.\n"
               "# TYPE werklabd_http_connections_refused_total counter\n"
               "werklabd_http_connections_refused_total %llu\n",
               turned_away);
}

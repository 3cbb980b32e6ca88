#include "replicas.h"

#include "db.h"
#include "log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SAMPLES    256  /* the primary's positions of the last 51 s */
#define REMEMBERED 1024 /* callers whose last write is remembered; a clash forgets one */

enum replica_state { REPLICA_DOWN, REPLICA_UP, REPLICA_LAGGING, REPLICA_NOT_IN_RECOVERY };

static const char *const state_names[] = {"down", "up", "lagging", "not-in-recovery"};

struct replica {
    char *url;
    char name[16];
    PGconn *pg; /* the poller's */
    struct db_backoff backoff;
    atomic_int state;
    atomic_uint_fast64_t replayed;
    atomic_uint lag_ms;
    bool warned; /* not in recovery: said once */
};

struct sample {
    int64_t at_ms;
    uint64_t position;
};

static struct replica replicas[REPLICAS_MAX + 1]; /* [0] is the primary */
static unsigned n_replicas;
static unsigned max_lag_ms;
static atomic_uint next_replica;
static atomic_ulong reads[REPLICAS_MAX + 1];
static atomic_uint_fast64_t primary_position;

/* The poller's own. */
static struct sample samples[SAMPLES];
static unsigned n_samples, newest;

static pthread_t poller;
static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cond; /* on the monotonic clock: replicas_start() */
static bool stopping, running;

struct remembered_write {
    uint64_t caller, position;
    int64_t until_ms;
};

static struct {
    pthread_mutex_t lock;
    struct remembered_write slot[REMEMBERED];
} remembered = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int replicas_configure(const char *primary_url, const char *urls, unsigned max_lag, char *err,
                       size_t err_len)
{
    for (unsigned i = 0; i <= REPLICAS_MAX; i++) { /* configured again: a test's */
        free(replicas[i].url);
        replicas[i].url = NULL;
    }
    replicas[0].url = primary_url ? xstrdup(primary_url) : NULL;
    snprintf(replicas[0].name, sizeof replicas[0].name, "primary");
    max_lag_ms = max_lag;
    n_replicas = 0;
    if (!urls)
        return 0;
    char *copy = xstrdup(urls), *rest = copy;
    for (char *url; (url = strsep(&rest, ","));) {
        while (*url == ' ')
            url++;
        size_t len = strlen(url);
        while (len > 0 && url[len - 1] == ' ')
            url[--len] = '\0';
        if (!*url) {
            if (rest || n_replicas > 0) {
                snprintf(err, err_len, "read database URLs: an empty entry in '%s'", urls);
                free(copy);
                return -1;
            }
            continue;
        }
        if (n_replicas == REPLICAS_MAX) {
            snprintf(err, err_len, "read database URLs: at most %d", REPLICAS_MAX);
            free(copy);
            return -1;
        }
        struct replica *r = &replicas[++n_replicas];
        r->url = xstrdup(url);
        snprintf(r->name, sizeof r->name, "replica-%u", n_replicas);
    }
    free(copy);
    return 0;
}

unsigned replicas_count(void)
{
    return n_replicas;
}

const char *replicas_url(unsigned target)
{
    return target <= n_replicas ? replicas[target].url : NULL;
}

const char *replicas_name(unsigned target)
{
    return target <= n_replicas ? replicas[target].name : "?";
}

/* Runs one short statement on r's poller connection, connecting first when the back-off
 * allows; NULL when r cannot be reached. */
static PGresult *ask(struct replica *r, const char *sql)
{
    if (!r->pg) {
        if (!db_backoff_allows(&r->backoff))
            return NULL;
        r->pg = db_connect_session_to(r->url);
        if (!r->pg) {
            db_backoff_failed(&r->backoff);
            return NULL;
        }
        db_backoff_succeeded(&r->backoff);
    }
    PGresult *res = PQexec(r->pg, sql);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        return res;
    PQclear(res);
    if (PQstatus(r->pg) != CONNECTION_OK) {
        db_release(r->pg);
        r->pg = NULL;
        db_backoff_failed(&r->backoff);
    }
    return NULL;
}

static void poll_primary(int64_t now)
{
    PGresult *res = ask(&replicas[0], "SELECT pg_current_wal_lsn()::text");
    uint64_t position;
    if (res && db_lsn_parse(PQgetvalue(res, 0, 0), &position)) {
        newest = (newest + 1) % SAMPLES;
        samples[newest] = (struct sample){.at_ms = now, .position = position};
        if (n_samples < SAMPLES)
            n_samples++;
        atomic_store(&primary_position, position);
        atomic_store(&replicas[0].state, REPLICA_UP);
    } else {
        atomic_store(&replicas[0].state, REPLICA_DOWN);
    }
    PQclear(res);
}

/* How long ago the primary first stood past what the replica has replayed: 0 when the replica
 * has everything the primary had at the last poll. While the primary cannot be asked, the last
 * positions it gave are the measure. */
static unsigned lag_of(uint64_t replayed, int64_t now)
{
    if (n_samples == 0 || replayed >= samples[newest].position)
        return 0;
    unsigned oldest = (newest + SAMPLES - n_samples + 1) % SAMPLES;
    int64_t since = samples[oldest].at_ms;
    for (unsigned i = 0; i < n_samples; i++) {
        const struct sample *s = &samples[(oldest + i) % SAMPLES];
        if (s->position > replayed) {
            since = s->at_ms;
            break;
        }
    }
    int64_t lag = now - since;
    return lag < 0 ? 0 : lag > UINT32_MAX ? UINT32_MAX : (unsigned)lag;
}

static void poll_replica(struct replica *r, int64_t now)
{
    PGresult *res = ask(r, "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text");
    uint64_t replayed;
    enum replica_state state = REPLICA_DOWN;
    if (!res) {
        state = REPLICA_DOWN;
    } else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0 ||
               !db_lsn_parse(PQgetvalue(res, 0, 1), &replayed)) {
        /* Promoted, or never a replica: its data could be anything, so it is not read. */
        if (!r->warned)
            log_event("error", "%s is not a replica in recovery: not used for reads", r->name);
        r->warned = true;
        state = REPLICA_NOT_IN_RECOVERY;
    } else {
        r->warned = false;
        unsigned lag = lag_of(replayed, now);
        atomic_store(&r->replayed, replayed);
        atomic_store(&r->lag_ms, lag);
        state = lag > max_lag_ms ? REPLICA_LAGGING : REPLICA_UP;
    }
    PQclear(res);
    enum replica_state was = atomic_exchange(&r->state, state);
    if (was != state && (was == REPLICA_UP || state == REPLICA_UP))
        log_event(state == REPLICA_UP ? "info" : "warning", "%s: %s (lag %u ms)", r->name,
                  state_names[state], atomic_load(&r->lag_ms));
}

static void poll_round(void)
{
    int64_t now = now_ms();
    poll_primary(now);
    for (unsigned i = 1; i <= n_replicas; i++)
        poll_replica(&replicas[i], now);
}

static void *run(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&stop_lock);
    while (!stopping) {
        pthread_mutex_unlock(&stop_lock);
        poll_round();
        /* Monotonic: a wall clock set back would stop the polls, and the lags with them. */
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += REPLICAS_POLL_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&stop_lock);
        if (!stopping)
            pthread_cond_timedwait(&stop_cond, &stop_lock, &until);
    }
    pthread_mutex_unlock(&stop_lock);
    for (unsigned i = 0; i <= n_replicas; i++) {
        db_release(replicas[i].pg);
        replicas[i].pg = NULL;
    }
    return NULL;
}

int replicas_start(void)
{
    if (n_replicas == 0)
        return 0;
    poll_round(); /* on this thread: the replicas are known before the first request */
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&stop_cond, &attr);
    pthread_condattr_destroy(&attr);
    stopping = false;
    if (pthread_create(&poller, NULL, run, NULL) != 0) {
        log_event("error", "replicas: cannot start the poller");
        return -1;
    }
    running = true;
    return 0;
}

void replicas_stop(void)
{
    if (!running)
        return;
    pthread_mutex_lock(&stop_lock);
    stopping = true;
    pthread_cond_signal(&stop_cond);
    pthread_mutex_unlock(&stop_lock);
    pthread_join(poller, NULL);
    running = false;
}

unsigned replicas_choose(uint64_t min, uint64_t *position)
{
    unsigned start = n_replicas ? atomic_fetch_add(&next_replica, 1) : 0;
    for (unsigned i = 0; i < n_replicas; i++) {
        struct replica *r = &replicas[1 + (start + i) % n_replicas];
        uint64_t replayed = atomic_load(&r->replayed);
        if (atomic_load(&r->state) == REPLICA_UP && replayed >= min) {
            *position = replayed;
            return (unsigned)(r - replicas);
        }
    }
    /* The primary has every committed write, so also the one whose position was given. */
    uint64_t at = atomic_load(&primary_position);
    *position = at > min ? at : min;
    return REPLICAS_PRIMARY;
}

void replicas_served(unsigned target)
{
    if (target <= n_replicas)
        atomic_fetch_add_explicit(&reads[target], 1, memory_order_relaxed);
}

void replicas_failed(unsigned target)
{
    if (target >= 1 && target <= n_replicas) {
        int up = REPLICA_UP;
        atomic_compare_exchange_strong(&replicas[target].state, &up, REPLICA_DOWN);
    }
}

uint64_t replicas_primary_position(void)
{
    return atomic_load(&primary_position);
}

/* FNV-1a: callers are spread over the slots; a clash costs a read on the primary. */
static uint64_t caller_hash(const char *caller)
{
    uint64_t h = 14695981039346656037u;
    for (const unsigned char *c = (const unsigned char *)caller; *c; c++)
        h = (h ^ *c) * 1099511628211u;
    return h | 1; /* never 0, the empty slot */
}

void replicas_note_write(const char *caller, uint64_t position)
{
    if (n_replicas == 0 || !caller || !*caller || position == 0)
        return;
    uint64_t h = caller_hash(caller);
    pthread_mutex_lock(&remembered.lock);
    struct remembered_write *s = &remembered.slot[h % REMEMBERED];
    if (s->caller != h || s->position < position)
        s->position = position;
    s->caller = h;
    s->until_ms = now_ms() + REPLICAS_REMEMBER_MS;
    pthread_mutex_unlock(&remembered.lock);
}

uint64_t replicas_recent_write(const char *caller)
{
    if (n_replicas == 0 || !caller || !*caller)
        return 0;
    uint64_t h = caller_hash(caller), position = 0;
    pthread_mutex_lock(&remembered.lock);
    struct remembered_write *s = &remembered.slot[h % REMEMBERED];
    if (s->caller == h && s->until_ms > now_ms())
        position = s->position;
    pthread_mutex_unlock(&remembered.lock);
    return position;
}

void replicas_format_token(uint64_t position, char out[REPLICAS_TOKEN_LEN + 1])
{
    snprintf(out, REPLICAS_TOKEN_LEN + 1, "%016llx", (unsigned long long)position);
}

bool replicas_parse_token(const char *text, uint64_t *position)
{
    if (!text || strlen(text) != REPLICAS_TOKEN_LEN)
        return false;
    uint64_t v = 0;
    for (const char *c = text; *c; c++) {
        int d = *c >= '0' && *c <= '9' ? *c - '0' : *c >= 'a' && *c <= 'f' ? *c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *position = v;
    return true;
}

bool replicas_any_up(void)
{
    for (unsigned i = 1; i <= n_replicas; i++)
        if (atomic_load(&replicas[i].state) == REPLICA_UP)
            return true;
    return false;
}

void replicas_describe(struct jsonw *w, bool primary_up)
{
    jsonw_key(w, "databases");
    jsonw_array_begin(w);
    jsonw_object_begin(w);
    jsonw_kv_string(w, "name", "primary");
    jsonw_kv_string(w, "state", primary_up ? "up" : "down");
    jsonw_object_end(w);
    for (unsigned i = 1; i <= n_replicas; i++) {
        int state = atomic_load(&replicas[i].state);
        jsonw_object_begin(w);
        jsonw_kv_string(w, "name", replicas[i].name);
        jsonw_kv_string(w, "state", state_names[state]);
        if (state == REPLICA_UP || state == REPLICA_LAGGING)
            jsonw_kv_int(w, "lagMs", atomic_load(&replicas[i].lag_ms));
        jsonw_object_end(w);
    }
    jsonw_array_end(w);
}

void replicas_metrics(struct buf *out)
{
    if (n_replicas == 0)
        return;
    buf_puts(out, "# HELP werklabd_replica_lag_seconds How long ago the primary first stood past "
                  "what the replica has replayed (0: caught up at the last poll).\n"
                  "# TYPE werklabd_replica_lag_seconds gauge\n");
    for (unsigned i = 1; i <= n_replicas; i++)
        buf_printf(out, "werklabd_replica_lag_seconds{replica=\"%s\"} %.3f\n", replicas[i].name,
                   atomic_load(&replicas[i].lag_ms) / 1000.0);
    buf_puts(out, "# HELP werklabd_replica_up Whether the replica is used for reads: reachable, "
                  "in recovery and within the lag bound.\n"
                  "# TYPE werklabd_replica_up gauge\n");
    for (unsigned i = 1; i <= n_replicas; i++)
        buf_printf(out, "werklabd_replica_up{replica=\"%s\"} %d\n", replicas[i].name,
                   atomic_load(&replicas[i].state) == REPLICA_UP);
    buf_puts(out, "# HELP werklabd_reads_total Reads of resources and lists, by the database that "
                  "ran them.\n# TYPE werklabd_reads_total counter\n");
    for (unsigned i = 0; i <= n_replicas; i++)
        buf_printf(out, "werklabd_reads_total{target=\"%s\"} %lu\n", replicas[i].name,
                   atomic_load(&reads[i]));
}

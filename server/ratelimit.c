#include "ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SLOTS  16384
#define PROBES 8 /* slots a key may occupy, from its hash on */

struct bucket {
    uint64_t key; /* hash of scope and key; 0: free */
    double tokens;
    double updated; /* monotonic seconds */
};

static struct bucket buckets[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t hash(const char *scope, const char *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = scope; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h ? h : 1;
}

void ratelimit_take(const char *scope, const char *key, unsigned limit, unsigned window_s,
                    struct ratelimit_verdict *v)
{
    double rate = (double)limit / (double)(window_s ? window_s : 1); /* tokens per second */
    uint64_t h = hash(scope, key);
    double t = now();
    pthread_mutex_lock(&lock);
    /* The key's bucket is in one of PROBES slots; a new key takes a free one, or else the one
     * idle longest: a busy key is never pushed out by one other key. */
    struct bucket *b = NULL, *oldest = &buckets[h % SLOTS];
    for (size_t i = 0; i < PROBES && !b; i++) {
        struct bucket *c = &buckets[(h + i) % SLOTS];
        if (c->key == h)
            b = c;
        else if (c->updated < oldest->updated) /* a free slot was never updated: 0 */
            oldest = c;
    }
    if (!b) {
        b = oldest;
        *b = (struct bucket){.key = h, .tokens = limit, .updated = t};
    }
    b->tokens = fmin((double)limit, b->tokens + (t - b->updated) * rate);
    b->updated = t;
    v->allowed = b->tokens >= 1.0;
    if (v->allowed)
        b->tokens -= 1.0;
    double tokens = b->tokens;
    pthread_mutex_unlock(&lock);

    v->limit = limit;
    v->remaining = (unsigned)floor(tokens);
    v->reset_s = (unsigned)ceil(((double)limit - tokens) / rate);
    v->retry_after = v->allowed ? 0 : (unsigned)ceil((1.0 - tokens) / rate);
    if (!v->allowed && v->retry_after == 0)
        v->retry_after = 1;
}

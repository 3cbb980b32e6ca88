/* ratelimit: token buckets by key (a client address, an API key id), kept in memory.
 *
 * A bucket holds up to `limit` requests and refills at `limit` per `window_s` seconds. Buckets
 * live in a fixed table; a key's bucket is one of a few slots from its hash on, and a new key
 * takes the one idle longest, so memory stays bounded whatever the traffic, at the price of
 * forgetting a quiet key early (it then starts full again). Each instance
 * counts for itself: behind a load balancer of N instances a client gets up to N times the
 * limit, which is the usual trade for keeping the hot path free of a shared store. */
#ifndef WERKLAB_RATELIMIT_H
#define WERKLAB_RATELIMIT_H

#include <stdbool.h>

struct ratelimit_verdict {
    bool allowed;
    unsigned limit;       /* RateLimit-Limit */
    unsigned remaining;   /* RateLimit-Remaining */
    unsigned reset_s;     /* RateLimit-Reset: seconds until the bucket is full again */
    unsigned retry_after; /* Retry-After, when not allowed */
};

/* Takes one request from the bucket of (scope, key). */
void ratelimit_take(const char *scope, const char *key, unsigned limit, unsigned window_s,
                    struct ratelimit_verdict *v);

#endif

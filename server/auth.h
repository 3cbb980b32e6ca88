/* auth: API keys.
 *
 * A key is "wlk_" and 64 hex digits (256 random bits). The server stores only the SHA-256 of the
 * key, looks keys up by that hash, and keeps what it found in a small cache for key_cache_ms, so
 * that most requests cost no query for authentication. A revocation on this instance evicts the
 * key at once; other instances notice within key_cache_ms. lastUsedAt is written when a key is
 * looked up, so it is exact to within the same period. */
#ifndef WERKLAB_AUTH_H
#define WERKLAB_AUTH_H

#include "pool.h"

#include <stdbool.h>
#include <stddef.h>

/* A key's role, and, as a bit set, who may call a route (router.h). ROLE_PUBLIC means no key
 * is needed. */
enum role {
    ROLE_PUBLIC = 1,
    ROLE_PARTNER = 2,
    ROLE_STAFF = 4,
    ROLE_ADMIN = 8,
};
#define ROLES_READ  (ROLE_PARTNER | ROLE_STAFF | ROLE_ADMIN)
#define ROLES_WRITE (ROLE_STAFF | ROLE_ADMIN)

#define AUTH_KEY_LEN            68 /* "wlk_" + 64 hex digits */
#define AUTH_MAX_MUNICIPALITIES 64

struct auth_identity {
    unsigned role;   /* one enum role bit; ROLE_PUBLIC without a key */
    char key_id[37]; /* "" without a key */
    /* A partner key may be limited to municipalities (their ids). A limited key whose codes
     * match no municipality (any more) sees none: a limit never widens. */
    bool limited;
    int n_municipalities;
    const char (*municipality_ids)[37]; /* n_municipalities of them, in auth_check()'s pool */
    bool require_if_match;              /* PATCH, PUT and DELETE must carry If-Match (else 428) */
    int rate_limit; /* requests per minute; -1: the server's default; 0: unlimited */
};

enum auth_result {
    AUTH_NONE,        /* no Authorization header: anonymous */
    AUTH_OK,          /* a valid key */
    AUTH_REFUSED,     /* malformed, unknown, expired or revoked: all alike to the client */
    AUTH_UNAVAILABLE, /* the database could not be asked */
};

void auth_configure(unsigned key_cache_ms);
/* Checks an Authorization header value (NULL when absent) and fills who; what who points to
 * (its municipalities) is taken from pool and lives as long as it. */
enum auth_result auth_check(const char *authorization, struct auth_identity *who,
                            struct pool *pool);
/* Forgets a key at once (after revocation). */
void auth_forget(const char *key_id);

/* Makes a new key: fills key (AUTH_KEY_LEN + 1 bytes) and its SHA-256 as "\\x..." hex for
 * storage (67 bytes). The key itself is never stored. */
void auth_new_key(char *key, char *hash_hex);

/* Parses "admin", "staff" or "partner"; 0 when it is none of them. */
unsigned auth_role_parse(const char *name);
const char *auth_role_name(unsigned role);

#endif

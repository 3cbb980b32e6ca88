/* auth: who is asking — an API key (machines) or an OpenID Connect access token (people).
 *
 * A Bearer value that has the shape of a JWT is verified by oidc.h against the issuer's keys;
 * anything else is taken for an API key.
 *
 * A key is "wlk_" and 64 hex digits (256 random bits). The server stores only the SHA-256 of the
 * key, looks keys up by that hash, and keeps what it found in a small cache for key_cache_ms, so
 * that most requests cost no query for authentication. A revocation evicts the key at once: on
 * this instance by auth_forget(), on every other one by the notification the database sends
 * (notify.h calls auth_forget() and, whenever its listening connection is made, auth_forget_all()).
 * While that connection is down, other instances notice within key_cache_ms. lastUsedAt is
 * written when a key is looked up, so it is exact to within the same period. */
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
    ROLE_TRAINER = 16, /* a person only (a token): the werklabs they are assigned to */
};
#define ROLES_READ  (ROLE_PARTNER | ROLE_STAFF | ROLE_ADMIN)
#define ROLES_WRITE (ROLE_STAFF | ROLE_ADMIN)

#define AUTH_KEY_LEN            68 /* "wlk_" + 64 hex digits */
#define AUTH_MAX_MUNICIPALITIES 64

#define AUTH_SUBJECT_MAX 256 /* bytes of a token's sub, with the NUL */
#define AUTH_CLIENT_MAX  128 /* bytes of a token's azp or client_id, with the NUL */
#define AUTH_NAME_MAX    128 /* bytes of a token's name or preferred_username, with the NUL */

struct auth_identity {
    unsigned role;   /* one enum role bit; ROLE_PUBLIC without a key or token */
    char key_id[37]; /* "" without a key */
    /* A person signed in with a token: its sub, the client it was issued to (azp, else
     * client_id) and the name it gives (name, else preferred_username); "" for a key. */
    char subject[AUTH_SUBJECT_MAX];
    char client[AUTH_CLIENT_MAX];
    char name[AUTH_NAME_MAX];
    char trainer_id[37]; /* ROLE_TRAINER: the trainer record the token was linked to */
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
    AUTH_OK,          /* a valid key or token */
    AUTH_REFUSED,     /* malformed, unknown, expired, revoked, badly signed: alike to the client */
    AUTH_FORBIDDEN,   /* a valid token that gives no role, or a trainer with no trainer record */
    AUTH_UNAVAILABLE, /* the database could not be asked */
    AUTH_NO_KEYS,     /* a token, but the issuer's keys could never be fetched: 503, retry */
    AUTH_LOOKUP,      /* auth_begin() only: a key to look up in the database (auth_lookup) */
};

struct db_result;

/* A key to look up: the statement and its parameter, and what the answer is kept under. */
struct auth_lookup {
    const char *sql;
    const char *sql_read_only; /* the same without recording the key's use, for a replica */
    const char *params[1];
    char hex[2 + 2 * 32 + 1];
    unsigned char digest[32];
    /* How many forgettings there had been when the lookup began: a key forgotten while its
     * statement ran (it may have read the key before the revocation committed) is answered as
     * the statement found it but not kept in the cache. */
    unsigned long forgotten;
};

void auth_configure(unsigned key_cache_ms);
/* Checks an Authorization header value (NULL when absent) and fills who; what who points to
 * (its municipalities) is taken from pool and lives as long as it. Unless AUTH_OK or AUTH_NONE,
 * *reason says why, for the log (a static string; never the key or token itself). */
enum auth_result auth_check(const char *authorization, struct auth_identity *who, struct pool *pool,
                            const char **reason);
/* The same in two steps, so that the caller can run the key's statement elsewhere (on the
 * database pipeline, holding no thread): auth_begin() does all that needs no database — the
 * cache, tokens, the key's form — and answers AUTH_LOOKUP, with *lookup filled, when a key must
 * be looked up; the caller runs lookup->sql with lookup->params (one) and hands the result to
 * auth_looked_up(), which answers as auth_check() would. (A token seen for the first time may
 * still ask the database on this thread: its trainer and municipalities, once per token.) */
enum auth_result auth_begin(const char *authorization, struct auth_identity *who, struct pool *pool,
                            const char **reason, struct auth_lookup *lookup);
enum auth_result auth_looked_up(const struct auth_lookup *lookup, struct db_result *r,
                                struct auth_identity *who, struct pool *pool, const char **reason);
/* Forgets a key at once (after revocation). */
void auth_forget(const char *key_id);
/* Forgets every key and token: whatever may have been revoked while no notification could
 * arrive is looked up again. */
void auth_forget_all(void);

/* Makes a new key: fills key (AUTH_KEY_LEN + 1 bytes) and its SHA-256 as "\\x..." hex for
 * storage (67 bytes). The key itself is never stored. */
void auth_new_key(char *key, char *hash_hex);

/* Parses "admin", "staff", "partner" or "trainer"; 0 when it is none of them. A key is never a
 * trainer (api_keys and create-key refuse it). */
unsigned auth_role_parse(const char *name);
const char *auth_role_name(unsigned role);

#endif

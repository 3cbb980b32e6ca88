#include "auth.h"

#include "crypto.h"
#include "db.h"
#include "jwt.h"
#include "oidc.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PREFIX      "wlk_"
#define CACHE_SLOTS 256

struct cached_key {
    uint8_t digest[CRYPTO_SHA256_LEN];
    bool used;
    int64_t checked_ms;       /* when the database last confirmed it */
    int64_t expires_s;        /* wall-clock expiry; 0: none */
    struct auth_identity who; /* its municipality_ids point to ids */
    char ids[AUTH_MAX_MUNICIPALITIES][37];
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cached_key cache[CACHE_SLOTS];
static unsigned cache_ms = 1000;
static unsigned long forgettings; /* under cache_lock: auth_forget() and auth_forget_all() calls */

#define SQL_KEY_LIVE                                                                               \
    "secret_hash = $1::bytea AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > "      \
    "now())"
#define SQL_KEY_SELECT                                                                             \
    "SELECT id, role, COALESCE(extract(epoch FROM expires_at)::bigint, 0), "                       \
    "(SELECT string_agg(m.id::text, ',') FROM municipalities m "                                   \
    "WHERE m.code = ANY (api_keys.municipality_codes)), require_if_match, "                        \
    "coalesce(rate_limit, -1), municipality_codes IS NOT NULL FROM api_keys WHERE " SQL_KEY_LIVE

/* The key, with its last use recorded, unless another transaction holds the row: then that one
 * records it. A lookup never waits for another's lock, since several may be under way at once on
 * different connections, each in a batch of statements whose transaction ends with the batch;
 * waiting, two batches that each held one key's row and wanted the other's deadlocked, and one
 * failed after PostgreSQL's deadlock timeout (1 s). */
static const char SQL_LOOKUP_KEY[] =
    "WITH used AS (UPDATE api_keys SET last_used_at = now() WHERE id IN (SELECT id FROM api_keys "
    "WHERE " SQL_KEY_LIVE " FOR UPDATE SKIP LOCKED)) " SQL_KEY_SELECT;

/* The same on a read replica, while the primary is down: nothing can be written there, so the
 * key's last use is not recorded. */
static const char SQL_LOOKUP_KEY_READ_ONLY[] = SQL_KEY_SELECT;

/* A partner token's CBS codes to municipality ids, as for a key: codes that match no
 * municipality give none. $1 is a text[] of validated codes. */
static const char SQL_TOKEN_MUNICIPALITIES[] =
    "SELECT string_agg(id::text, ',') FROM municipalities WHERE code = ANY ($1::text[])";
/* A trainer token's record: by subject first ... */
static const char SQL_TRAINER_BY_SUBJECT[] = "SELECT id FROM trainers WHERE subject = $1";
/* ... else by a verified e-mail address, where no subject is set: only when exactly one
 * trainer has it (two would make the link a guess). */
static const char SQL_TRAINER_BY_EMAIL[] =
    "SELECT id FROM trainers WHERE subject IS NULL AND lower(email) = lower($1) LIMIT 2";

void auth_configure(unsigned key_cache_ms)
{
    cache_ms = key_cache_ms;
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

unsigned auth_role_parse(const char *name)
{
    if (!name)
        return 0;
    if (strcmp(name, "admin") == 0)
        return ROLE_ADMIN;
    if (strcmp(name, "staff") == 0)
        return ROLE_STAFF;
    if (strcmp(name, "partner") == 0)
        return ROLE_PARTNER;
    if (strcmp(name, "trainer") == 0)
        return ROLE_TRAINER;
    return 0;
}

const char *auth_role_name(unsigned role)
{
    switch (role) {
    case ROLE_ADMIN: return "admin";
    case ROLE_STAFF: return "staff";
    case ROLE_PARTNER: return "partner";
    case ROLE_TRAINER: return "trainer";
    default: return "public";
    }
}

static bool well_formed(const char *key)
{
    if (strncmp(key, PREFIX, strlen(PREFIX)) != 0 || strlen(key) != AUTH_KEY_LEN)
        return false;
    for (const char *p = key + strlen(PREFIX); *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

static size_t slot_of(const uint8_t *digest)
{
    return ((size_t)digest[0] << 8 | digest[1]) % CACHE_SLOTS;
}

/* The ids into the request's pool, for who. */
static void keep_ids(struct auth_identity *who, const char (*ids)[37], struct pool *pool)
{
    if (who->n_municipalities == 0) {
        who->municipality_ids = NULL;
        return;
    }
    char(*kept)[37] = pool_alloc(pool, (size_t)who->n_municipalities * sizeof *kept);
    memcpy(kept, ids, (size_t)who->n_municipalities * sizeof *kept);
    who->municipality_ids = (const char(*)[37])kept;
}

static bool from_cache(const uint8_t *digest, struct auth_identity *who, struct pool *pool)
{
    bool hit = false;
    pthread_mutex_lock(&cache_lock);
    struct cached_key *c = &cache[slot_of(digest)];
    if (c->used && crypto_equal(c->digest, digest, sizeof c->digest) &&
        monotonic_ms() - c->checked_ms < cache_ms &&
        (c->expires_s == 0 || c->expires_s > (int64_t)time(NULL))) {
        *who = c->who;
        keep_ids(who, (const char(*)[37])c->ids, pool);
        hit = true;
    }
    pthread_mutex_unlock(&cache_lock);
    return hit;
}

/* Keeps who under digest, unless something was forgotten since since (a revocation may have
 * committed after the database was asked). */
static void to_cache(const uint8_t *digest, const struct auth_identity *who, int64_t expires_s,
                     unsigned long since)
{
    pthread_mutex_lock(&cache_lock);
    if (forgettings != since) {
        pthread_mutex_unlock(&cache_lock);
        return;
    }
    struct cached_key *c = &cache[slot_of(digest)];
    memcpy(c->digest, digest, sizeof c->digest);
    c->used = true;
    c->checked_ms = monotonic_ms();
    c->expires_s = expires_s;
    c->who = *who;
    if (who->n_municipalities > 0)
        memcpy(c->ids, who->municipality_ids, (size_t)who->n_municipalities * sizeof *c->ids);
    c->who.municipality_ids = (const char(*)[37])c->ids;
    pthread_mutex_unlock(&cache_lock);
}

void auth_forget(const char *key_id)
{
    pthread_mutex_lock(&cache_lock);
    forgettings++;
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        if (cache[i].used && strcmp(cache[i].who.key_id, key_id) == 0)
            cache[i].used = false;
    pthread_mutex_unlock(&cache_lock);
}

void auth_forget_all(void)
{
    pthread_mutex_lock(&cache_lock);
    forgettings++;
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        cache[i].used = false;
    pthread_mutex_unlock(&cache_lock);
}

static unsigned long forgettings_now(void)
{
    pthread_mutex_lock(&cache_lock);
    unsigned long n = forgettings;
    pthread_mutex_unlock(&cache_lock);
    return n;
}

static void parse_municipalities(const char *list, struct auth_identity *who, struct pool *pool)
{
    char ids[AUTH_MAX_MUNICIPALITIES][37];
    who->n_municipalities = 0;
    for (const char *p = list; p && *p && who->n_municipalities < AUTH_MAX_MUNICIPALITIES;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == 36) {
            memcpy(ids[who->n_municipalities], p, 36);
            ids[who->n_municipalities++][36] = '\0';
        }
        p = comma ? comma + 1 : p + n;
    }
    keep_ids(who, (const char(*)[37])ids, pool);
}

/* The trainer record of a trainer's token into who->trainer_id; AUTH_FORBIDDEN when none. */
static enum auth_result link_trainer(const struct oidc_person *p, struct auth_identity *who,
                                     const char **reason)
{
    struct db_result r;
    const char *by_subject[] = {p->subject};
    if (db_exec(SQL_TRAINER_BY_SUBJECT, 1, by_subject, &r) != DB_OK) {
        db_clear(&r);
        *reason = "the database could not be asked";
        return AUTH_UNAVAILABLE;
    }
    bool found = db_rows(&r) == 1;
    if (found)
        snprintf(who->trainer_id, sizeof who->trainer_id, "%s", db_value(&r, 0, 0));
    db_clear(&r);
    if (!found && p->email[0] && p->email_verified) {
        const char *by_email[] = {p->email};
        if (db_exec(SQL_TRAINER_BY_EMAIL, 1, by_email, &r) != DB_OK) {
            db_clear(&r);
            *reason = "the database could not be asked";
            return AUTH_UNAVAILABLE;
        }
        found = db_rows(&r) == 1;
        if (found)
            snprintf(who->trainer_id, sizeof who->trainer_id, "%s", db_value(&r, 0, 0));
        db_clear(&r);
    }
    if (!found) {
        *reason = "no trainer record";
        return AUTH_FORBIDDEN;
    }
    return AUTH_OK;
}

/* A partner token's codes to municipality ids in who. */
static enum auth_result limit_partner(const struct oidc_person *p, struct auth_identity *who,
                                      struct pool *pool)
{
    who->limited = true;
    if (p->n_codes == 0)
        return AUTH_OK; /* limited to nothing */
    char array[2 + OIDC_MAX_CODES * 7 + 1];
    size_t n = 0;
    array[n++] = '{';
    for (int i = 0; i < p->n_codes; i++)
        n += (size_t)snprintf(array + n, sizeof array - n, "%s%s", i ? "," : "", p->codes[i]);
    array[n++] = '}';
    array[n] = '\0';
    const char *params[] = {array};
    struct db_result r;
    enum db_status s = db_exec(SQL_TOKEN_MUNICIPALITIES, 1, params, &r);
    if (s == DB_OK && db_rows(&r) == 1)
        parse_municipalities(db_value(&r, 0, 0), who, pool);
    db_clear(&r);
    return s == DB_OK ? AUTH_OK : AUTH_UNAVAILABLE;
}

/* A JWT-shaped Bearer value: verified by oidc.h, then linked to what the database knows. */
static enum auth_result check_token(const char *token, const uint8_t *digest,
                                    struct auth_identity *who, struct pool *pool,
                                    const char **reason)
{
    if (!oidc_enabled()) {
        *reason = "tokens are not accepted";
        return AUTH_REFUSED;
    }
    unsigned long since = forgettings_now();
    struct oidc_person p;
    switch (oidc_verify(token, &p, reason)) {
    case OIDC_OK: break;
    case OIDC_NO_KEYS: return AUTH_NO_KEYS;
    case OIDC_NO_ROLE: return AUTH_FORBIDDEN;
    case OIDC_REFUSED: return AUTH_REFUSED;
    }
    who->role = p.role;
    who->rate_limit = -1;
    snprintf(who->subject, sizeof who->subject, "%s", p.subject);
    snprintf(who->client, sizeof who->client, "%s", p.client);
    snprintf(who->name, sizeof who->name, "%s", p.name);
    enum auth_result result = AUTH_OK;
    if (p.role == ROLE_TRAINER)
        result = link_trainer(&p, who, reason);
    else if (p.role == ROLE_PARTNER && p.limited &&
             (result = limit_partner(&p, who, pool)) == AUTH_UNAVAILABLE)
        *reason = "the database could not be asked";
    if (result == AUTH_OK)
        to_cache(digest, who, p.expires_at, since);
    return result;
}

static enum auth_result begin(const char *authorization, struct auth_identity *who,
                              struct pool *pool, const char **reason, struct auth_lookup *lookup)
{
    *who = (struct auth_identity){.role = ROLE_PUBLIC};
    *reason = "not a valid key";
    if (!authorization)
        return AUTH_NONE;
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return AUTH_REFUSED;
    const char *key = authorization + 7;
    while (*key == ' ')
        key++;
    /* A value accepted within the last cache_ms is found by its digest before anything reads
     * it: a token's 1 KB is then hashed once per request and not also scanned for its shape. */
    uint8_t digest[CRYPTO_SHA256_LEN];
    crypto_sha256(key, strlen(key), digest);
    if (from_cache(digest, who, pool))
        return AUTH_OK;
    if (jwt_shaped(key)) {
        enum auth_result result = check_token(key, digest, who, pool, reason);
        if (result != AUTH_OK)
            *who = (struct auth_identity){.role = ROLE_PUBLIC};
        return result;
    }
    if (!well_formed(key))
        return AUTH_REFUSED;
    _Static_assert(sizeof lookup->digest == CRYPTO_SHA256_LEN, "a SHA-256");
    memcpy(lookup->digest, digest, sizeof digest);
    memcpy(lookup->hex, "\\x", 2);
    crypto_hex(digest, sizeof digest, lookup->hex + 2);
    lookup->params[0] = lookup->hex;
    lookup->sql = SQL_LOOKUP_KEY;
    lookup->sql_read_only = SQL_LOOKUP_KEY_READ_ONLY;
    lookup->forgotten = forgettings_now(); /* before the statement is sent */
    return AUTH_LOOKUP;
}

static enum auth_result looked_up(const struct auth_lookup *lookup, struct db_result *r,
                                  struct auth_identity *who, struct pool *pool, const char **reason)
{
    *reason = "not a valid key";
    enum auth_result result = AUTH_REFUSED;
    if (r->status != DB_OK) {
        result = AUTH_UNAVAILABLE;
        *reason = "the database could not be asked";
    } else if (db_rows(r) == 1) {
        who->role = auth_role_parse(db_value(r, 0, 1));
        snprintf(who->key_id, sizeof who->key_id, "%s", db_value(r, 0, 0));
        parse_municipalities(db_value(r, 0, 3), who, pool);
        who->require_if_match = db_value(r, 0, 4)[0] == 't';
        who->rate_limit = atoi(db_value(r, 0, 5));
        who->limited = db_value(r, 0, 6)[0] == 't';
        if (who->role) {
            to_cache(lookup->digest, who, strtoll(db_value(r, 0, 2), NULL, 10), lookup->forgotten);
            result = AUTH_OK;
        }
    }
    if (result != AUTH_OK) {
        struct auth_identity anonymous = {.role = ROLE_PUBLIC};
        *who = anonymous;
    }
    return result;
}

/* The log line says authRefused only when something was refused. */
static enum auth_result without_reason_unless_refused(enum auth_result result, const char **reason)
{
    if (result == AUTH_OK || result == AUTH_NONE || result == AUTH_LOOKUP)
        *reason = NULL;
    return result;
}

enum auth_result auth_begin(const char *authorization, struct auth_identity *who, struct pool *pool,
                            const char **reason, struct auth_lookup *lookup)
{
    return without_reason_unless_refused(begin(authorization, who, pool, reason, lookup), reason);
}

enum auth_result auth_looked_up(const struct auth_lookup *lookup, struct db_result *r,
                                struct auth_identity *who, struct pool *pool, const char **reason)
{
    return without_reason_unless_refused(looked_up(lookup, r, who, pool, reason), reason);
}

enum auth_result auth_check(const char *authorization, struct auth_identity *who, struct pool *pool,
                            const char **reason)
{
    struct auth_lookup lookup;
    enum auth_result result = auth_begin(authorization, who, pool, reason, &lookup);
    if (result != AUTH_LOOKUP)
        return result;
    struct db_result r;
    db_exec(lookup.sql, 1, lookup.params, &r);
    result = auth_looked_up(&lookup, &r, who, pool, reason);
    db_clear(&r);
    return result;
}

void auth_new_key(char *key, char *hash_hex)
{
    uint8_t secret[32], digest[CRYPTO_SHA256_LEN];
    crypto_random(secret, sizeof secret);
    memcpy(key, PREFIX, strlen(PREFIX));
    crypto_hex(secret, sizeof secret, key + strlen(PREFIX));
    crypto_sha256(key, strlen(key), digest);
    hash_hex[0] = '\\';
    hash_hex[1] = 'x';
    crypto_hex(digest, sizeof digest, hash_hex + 2);
}

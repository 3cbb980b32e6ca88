/* api_keys: making an API key, for POST /v1/api-keys and `werklabd create-key` alike, so that
 * both store a key by the same statement and under the same rules. */
#ifndef WERKLAB_API_KEYS_H
#define WERKLAB_API_KEYS_H

#include "auth.h"
#include "db.h"

/* A key to make, each value as text as the statement takes it; NULL is SQL NULL.
 * municipalities is a PostgreSQL array ("{GM0297,GM0363}"), require_if_match "true"/"false". */
struct api_key_values {
    const char *name, *role, *expires_at, *municipalities, *require_if_match, *rate_limit;
};

/* Makes a key: its secret goes to key (shown once, stored only as its hash) and its row, as the
 * resource reads it (id first), to r (the caller db_clear()s it). Runs in the caller's open
 * transaction, which the caller audits and commits. DB_OK with no row: a municipality named is
 * not in the database, and nothing was stored. After api_keys_register(). */
enum db_status api_keys_insert(const struct api_key_values *k, char key[AUTH_KEY_LEN + 1],
                               struct db_result *r);

#endif

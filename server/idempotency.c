#include "idempotency.h"

#include "crypto.h"
#include "db.h"
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEY_LEN 255
#define HASH_HEX    (2 + 2 * CRYPTO_SHA256_LEN + 1) /* "\\x", the digits, the NUL */

/* The key's lock, held to the end of the transaction: whoever holds it is still working on it. */
static const char SQL_LOCK_KEY[] =
    "SELECT pg_try_advisory_xact_lock(hashtextextended($1 || ' ' || $2, 0))";

/* The answer stored for the key in the last 24 hours, and whether it was for this request. */
static const char SQL_STORED_ANSWER[] =
    "SELECT request_hash = $3::bytea, status, location, etag, content_type, body "
    "FROM idempotency_keys WHERE owner = $1 AND key = $2 "
    "AND created_at > now() - interval '24 hours'";

/* Stores the answer; a key older than 24 hours (not yet pruned) is taken over. */
static const char SQL_STORE_ANSWER[] =
    "INSERT INTO idempotency_keys (owner, key, request_hash, status, location, etag, "
    "content_type, body) VALUES ($1, $2, $3::bytea, $4::integer, $5, $6, $7, $8) "
    "ON CONFLICT (owner, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, "
    "status = EXCLUDED.status, location = EXCLUDED.location, etag = EXCLUDED.etag, "
    "content_type = EXCLUDED.content_type, body = EXCLUDED.body, created_at = now()";

/* What the phase keeps between before and after, in req->pool. */
struct idempotent {
    const char *key;
    char owner[8 + AUTH_SUBJECT_MAX];
    char hash[HASH_HEX];
};

/* A key is 1 to MAX_KEY_LEN visible ASCII characters. */
static bool key_valid(const char *key)
{
    size_t len = strlen(key);
    bool sane = len > 0 && len <= MAX_KEY_LEN;
    for (size_t i = 0; sane && i < len; i++)
        sane = key[i] >= 0x21 && key[i] < 0x7f;
    return sane;
}

/* Whose key it is: the API key's, the person's (a token's sub), or the client address's for a
 * public POST. */
static void owner_of(struct request *req, char *owner, size_t len)
{
    if (req->who.key_id[0]) {
        snprintf(owner, len, "key:%s", req->who.key_id);
    } else if (req->who.subject[0]) {
        snprintf(owner, len, "person:%s", req->who.subject);
    } else {
        char address[64];
        http_client_address(req, address, sizeof address);
        snprintf(owner, len, "address:%s", address);
    }
}

/* The request's fingerprint, as bytea text: SHA-256 of method, path and body. */
static void fingerprint(const char *method, const char *path, const char *body, size_t len,
                        char *hex)
{
    struct buf b = {0};
    buf_printf(&b, "%s %s\n", method, path);
    buf_append(&b, body ? body : "", len);
    uint8_t digest[CRYPTO_SHA256_LEN];
    crypto_sha256(b.data, b.len, digest);
    hex[0] = '\\';
    hex[1] = 'x';
    crypto_hex(digest, sizeof digest, hex + 2);
    buf_free(&b);
}

/* A stored answer to the key: the same request gets it again, another one is refused. */
enum replay { REPLAY_NONE, REPLAY_ANSWER, REPLAY_OTHER_REQUEST };

static enum replay replay_of(int rows, const char *same_request)
{
    if (rows != 1)
        return REPLAY_NONE;
    return same_request && same_request[0] == 't' ? REPLAY_ANSWER : REPLAY_OTHER_REQUEST;
}

/* The stored content type, as one of the two the server answers with (the text must outlive
 * the result it came from). */
static const char *stored_type(const char *stored)
{
    return stored && strncmp(stored, "application/problem+json", 24) == 0
               ? "application/problem+json"
               : "application/json; charset=utf-8";
}

static struct http_phase phase;

/* Answers the stored answer or a refusal; false when the request goes on to its handler. */
static bool answered_from_store(struct request *req, const struct idempotent *k)
{
    const char *params[] = {k->owner, k->key, k->hash};
    struct db_result r;
    /* Whoever holds the key's lock is still working on it. */
    if (db_exec(SQL_LOCK_KEY, 2, params, &r) != DB_OK) {
        db_clear(&r);
        http_problem_unavailable(req);
        return true;
    }
    bool locked = db_value(&r, 0, 0)[0] == 't';
    db_clear(&r);
    if (!locked) {
        http_problem(req, 409, "A request with this Idempotency-Key is still being processed.");
        return true;
    }
    if (db_exec(SQL_STORED_ANSWER, 3, params, &r) != DB_OK) {
        db_clear(&r);
        http_problem_unavailable(req);
        return true;
    }
    enum replay replay = replay_of(db_rows(&r), db_rows(&r) == 1 ? db_value(&r, 0, 0) : NULL);
    if (replay == REPLAY_OTHER_REQUEST) {
        http_problem(req, 422,
                     "This Idempotency-Key was used for another request in the last 24 hours.");
    } else if (replay == REPLAY_ANSWER) {
        const char *body = db_value(&r, 0, 5);
        http_reply_text(req, atoi(db_value(&r, 0, 1)), stored_type(db_value(&r, 0, 4)), body,
                        strlen(body));
        if (db_value(&r, 0, 2))
            http_set_header(req, "Location", db_value(&r, 0, 2));
        if (db_value(&r, 0, 3))
            http_set_header(req, "ETag", db_value(&r, 0, 3));
        http_set_header(req, "Idempotent-Replayed", "true");
    }
    db_clear(&r);
    return replay != REPLAY_NONE;
}

/* Before the handler of a POST with a key: the replay, a refusal, or on to the handler inside
 * a transaction this phase opened (and a savepoint, so that the handler's failure undoes its
 * work, not this transaction). */
static bool begin(struct request *req)
{
    req->phase_ctx[phase.index] = NULL;
    const char *key = http_header(req, "Idempotency-Key");
    if (!key || req->method != HTTP_POST || req->route->no_idempotency)
        return true;
    if (!key_valid(key)) {
        http_problem(req, 400, "Idempotency-Key must be 1 to %d visible ASCII characters.",
                     MAX_KEY_LEN);
        return false;
    }
    struct idempotent *k = pool_alloc(&req->pool, sizeof *k);
    k->key = key;
    owner_of(req, k->owner, sizeof k->owner);
    fingerprint(req->method_name, req->path, req->body.data, req->body.len, k->hash);

    if (db_begin() != DB_OK) {
        http_problem_unavailable(req);
        return false;
    }
    if (answered_from_store(req, k) || db_begin() != DB_OK) {
        if (req->status == 0)
            http_problem_unavailable(req);
        db_rollback();
        return false;
    }
    req->phase_ctx[phase.index] = k;
    return true;
}

/* After the handler: the handler's work kept for an answer under 400, the answer stored and
 * committed; everything rolled back for a 5xx (not stored: the client may try again). */
static void finish(struct request *req)
{
    const struct idempotent *k = req->phase_ctx[phase.index];
    if (!k)
        return;
    req->phase_ctx[phase.index] = NULL;
    if (req->status >= 500 || req->status == 0) {
        db_rollback();
        db_rollback();
        return;
    }
    if (req->status < 400)
        db_commit();
    else
        db_rollback();

    char status[12];
    snprintf(status, sizeof status, "%d", req->status);
    const char *params[] = {k->owner,
                            k->key,
                            k->hash,
                            status,
                            http_response_header(req, "Location"),
                            http_response_header(req, "ETag"),
                            req->content_type ? req->content_type : "application/json",
                            req->out.data ? req->out.data : ""};
    struct db_result r;
    enum db_status s = db_exec(SQL_STORE_ANSWER, 8, params, &r);
    db_clear(&r);
    if (s == DB_OK)
        s = db_commit();
    else
        db_rollback();
    if (s != DB_OK) {
        /* Nothing is acknowledged that was not committed. */
        http_clear_headers(req);
        http_problem_unavailable(req);
    }
}

static struct http_phase phase = {
    .name = "idempotency",
    .before = begin,
    .after = finish,
};

void idempotency_install(void)
{
    phase_add(&phase);
}

#include "idempotency.h"

#include "crypto.h"
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_KEY_LEN 255

static void owner_of(struct request *req, char *owner, size_t len)
{
    if (req->who.key_id[0]) {
        snprintf(owner, len, "key:%s", req->who.key_id);
    } else {
        char address[64];
        http_client_address(req, address, sizeof address);
        snprintf(owner, len, "address:%s", address);
    }
}

/* SHA-256 of the request: method, path and body. */
static void request_hash(struct request *req, char *hex)
{
    struct buf b = {0};
    buf_printf(&b, "%s %s\n", req->method_name, req->path);
    buf_append(&b, req->body.data ? req->body.data : "", req->body.len);
    uint8_t digest[CRYPTO_SHA256_LEN];
    crypto_sha256(b.data, b.len, digest);
    hex[0] = '\\';
    hex[1] = 'x';
    crypto_hex(digest, sizeof digest, hex + 2);
    buf_free(&b);
}

static const char *header_value(const struct request *req, const char *name)
{
    for (int i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->header_names[i], name) == 0)
            return req->header_values[i];
    return NULL;
}

bool idempotency_begin(struct request *req)
{
    const char *key = http_header(req, "Idempotency-Key");
    req->idempotent = false;
    if (!key || req->method != HTTP_POST || req->route->no_idempotency)
        return true;
    size_t len = strlen(key);
    bool sane = len > 0 && len <= MAX_KEY_LEN;
    for (size_t i = 0; sane && i < len; i++)
        sane = key[i] >= 0x21 && key[i] < 0x7f;
    if (!sane) {
        http_problem(req, 400, "Idempotency-Key must be 1 to %d visible ASCII characters.",
                     MAX_KEY_LEN);
        return false;
    }
    char owner[80], hash[2 + 2 * CRYPTO_SHA256_LEN + 1];
    owner_of(req, owner, sizeof owner);
    request_hash(req, hash);

    if (db_begin() != DB_OK) {
        http_problem_unavailable(req);
        return false;
    }
    struct db_result r;
    const char *params[] = {owner, key, hash};
    /* Whoever holds the key's lock is still working on it. */
    if (db_exec("SELECT pg_try_advisory_xact_lock(hashtextextended($1 || ' ' || $2, 0))", 2, params,
                &r) != DB_OK) {
        http_problem_unavailable(req);
        goto refuse;
    }
    bool locked = db_value(&r, 0, 0)[0] == 't';
    db_clear(&r);
    if (!locked) {
        http_problem(req, 409, "A request with this Idempotency-Key is still being processed.");
        goto refuse;
    }
    if (db_exec("SELECT request_hash = $3::bytea, status, location, etag, content_type, body "
                "FROM idempotency_keys WHERE owner = $1 AND key = $2 "
                "AND created_at > now() - interval '24 hours'",
                3, params, &r) != DB_OK) {
        http_problem_unavailable(req);
        goto refuse;
    }
    if (db_rows(&r) == 1) {
        if (db_value(&r, 0, 0)[0] != 't') {
            http_problem(req, 422,
                         "This Idempotency-Key was used for another request in the last 24 hours.");
        } else {
            /* The content type must outlive the result: one of the two the server answers. */
            const char *stored = db_value(&r, 0, 4);
            const char *type = strncmp(stored, "application/problem+json", 24) == 0
                                   ? "application/problem+json"
                                   : "application/json; charset=utf-8";
            const char *body = db_value(&r, 0, 5);
            http_reply_text(req, atoi(db_value(&r, 0, 1)), type, body, strlen(body));
            if (db_value(&r, 0, 2))
                http_set_header(req, "Location", db_value(&r, 0, 2));
            if (db_value(&r, 0, 3))
                http_set_header(req, "ETag", db_value(&r, 0, 3));
            http_set_header(req, "Idempotent-Replayed", "true");
        }
        db_clear(&r);
        goto refuse;
    }
    db_clear(&r);
    /* The handler runs in a savepoint: its failure undoes its work, not this transaction. */
    if (db_begin() != DB_OK) {
        http_problem_unavailable(req);
        goto refuse;
    }
    req->idempotent = true;
    return true;
refuse:
    db_rollback();
    return false;
}

void idempotency_finish(struct request *req)
{
    if (!req->idempotent)
        return;
    req->idempotent = false;
    if (req->status >= 500 || req->status == 0) {
        db_rollback();
        db_rollback();
        return;
    }
    if (req->status < 400)
        db_commit();
    else
        db_rollback();

    char owner[80], hash[2 + 2 * CRYPTO_SHA256_LEN + 1], status[8];
    owner_of(req, owner, sizeof owner);
    request_hash(req, hash);
    snprintf(status, sizeof status, "%d", req->status);
    const char *params[] = {owner,
                            http_header(req, "Idempotency-Key"),
                            hash,
                            status,
                            header_value(req, "Location"),
                            header_value(req, "ETag"),
                            req->content_type ? req->content_type : "application/json",
                            req->out.data ? req->out.data : ""};
    struct db_result r;
    enum db_status s =
        db_exec("INSERT INTO idempotency_keys (owner, key, request_hash, status, location, etag, "
                "content_type, body) VALUES ($1, $2, $3::bytea, $4::integer, $5, $6, $7, $8) "
                "ON CONFLICT (owner, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, "
                "status = EXCLUDED.status, location = EXCLUDED.location, etag = EXCLUDED.etag, "
                "content_type = EXCLUDED.content_type, body = EXCLUDED.body, created_at = now()",
                8, params, &r);
    db_clear(&r);
    if (s == DB_OK)
        s = db_commit();
    else
        db_rollback();
    if (s != DB_OK) {
        /* Nothing is acknowledged that was not committed. */
        http_clear_headers(req);
        http_problem_unavailable(req);
        req->audited = false; /* its entry went with the rollback: the 503 is queued instead */
    }
}

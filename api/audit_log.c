/* GET /v1/audit-log: who did what, for administrators. Filters keyId, subject (a person signed in
 * with a token: its sub), resource (the route),
 * resourceId, action, from and to (times); paged by a signed cursor, oldest first by the time
 * each request was answered (writes are recorded in their transaction, the rest in batches by the
 * audit writer, so ids alone are not in time order). */
#include "audit_log.h"

#include "api.h"
#include "common.h"
#include "token.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_LIMIT 50
#define MAX_LIMIT     200

static const char SQL_AUDIT_PAGE[] =
    "SELECT " AUDIT_LOG_ENTRY ", at::text AS position FROM audit_log "
    "WHERE (at, id) > ($9::timestamptz, $1::bigint) AND ($2::uuid IS NULL OR key_id = $2::uuid) "
    "AND ($3::text IS NULL OR resource = $3) AND ($4::uuid IS NULL OR resource_id = $4::uuid) "
    "AND ($5::text IS NULL OR action = $5) AND ($6::timestamptz IS NULL OR at >= $6) "
    "AND ($7::timestamptz IS NULL OR at < $7) AND ($10::text IS NULL OR subject = $10) ORDER BY "
    "audit_log.at, audit_log.id LIMIT "
    "$8::integer";

void audit_log_write_entry(struct jsonw *w, const struct db_result *r, int row)
{
    jsonw_object_begin(w);
    jsonw_key(w, "id");
    jsonw_raw(w, db_value(r, row, 0));
    jsonw_key(w, "at");
    resource_write_timestamp(w, db_value(r, row, 1));
    jsonw_kv_string(w, "keyId", db_value(r, row, 2));
    jsonw_kv_string(w, "subject", db_value(r, row, 8));
    jsonw_kv_string(w, "client", db_value(r, row, 9));
    jsonw_kv_string(w, "action", db_value(r, row, 3));
    jsonw_kv_string(w, "resource", db_value(r, row, 4));
    jsonw_kv_string(w, "resourceId", db_value(r, row, 5));
    jsonw_key(w, "status");
    jsonw_raw(w, db_value(r, row, 6));
    jsonw_kv_string(w, "requestId", db_value(r, row, 7));
    jsonw_object_end(w);
}

static void check_uuid(struct request *req, const char *key)
{
    const char *v = http_query(req, key);
    if (v && !router_is_uuid(v, strlen(v)))
        http_invalid(req, key, "format", "must be a UUID");
}

static void check_time(struct request *req, const char *key)
{
    const char *v = http_query(req, key);
    if (v && !validate_timestamp(v))
        http_invalid(req, key, "format", "must be an RFC 3339 timestamp");
}

static void answer_page(struct request *req, struct db_result *result, void *page_limit);

static void audit_log(struct request *req)
{
    long limit = DEFAULT_LIMIT;
    const char *limit_text = http_query(req, "limit"), *cursor = http_query(req, "cursor");
    list_read_limit(req, limit_text, MAX_LIMIT, &limit);
    check_uuid(req, "keyId");
    check_uuid(req, "resourceId");
    check_time(req, "from");
    static const char *const actions[] = {"create", "replace", "update", "delete",
                                          "read",   "export",  "erase",  "retention"};
    const char *action = http_query(req, "action");
    bool known = !action;
    for (size_t i = 0; action && i < COUNT(actions); i++)
        known |= strcmp(actions[i], action) == 0;
    if (!known)
        http_invalid(req, "action", "enum",
                     "must be create, replace, update, delete, read, export, erase or retention");
    check_time(req, "to");
    const char *subject = http_query(req, "subject");
    if (subject && (!*subject || strlen(subject) >= AUTH_SUBJECT_MAX))
        http_invalid(req, "subject", "length", "must be 1 to 255 characters");
    /* The cursor is "<at>|<id>" of the last entry given. */
    char after[24] = "0", after_at[48] = "-infinity";
    struct buf payload = {0};
    const char *bar = NULL;
    if (cursor && token_unsign(cursor, &payload))
        bar = strchr(payload.data, '|');
    if (cursor &&
        (!bar || (size_t)(bar - payload.data) >= sizeof after_at ||
         strlen(bar + 1) >= sizeof after || !validate_whole(bar + 1, 0, 999999999999999999, NULL)))
        http_invalid(req, "cursor", "format", "is not a cursor this list gave out");
    else if (cursor) {
        snprintf(after_at, sizeof after_at, "%.*s", (int)(bar - payload.data), payload.data);
        snprintf(after, sizeof after, "%s", bar + 1);
    }
    buf_free(&payload);
    if (req->n_invalid) {
        http_problem_invalid(req);
        return;
    }
    char rows[24];
    snprintf(rows, sizeof rows, "%ld", limit + 1);
    const char *params[] = {after,
                            http_query(req, "keyId"),
                            http_query(req, "resource"),
                            http_query(req, "resourceId"),
                            http_query(req, "action"),
                            http_query(req, "from"),
                            http_query(req, "to"),
                            rows,
                            after_at,
                            subject};
    long *page_limit = pool_alloc(&req->pool, sizeof *page_limit);
    *page_limit = limit;
    http_defer(req, SQL_AUDIT_PAGE, 10, params, answer_page, page_limit);
}

static void answer_page(struct request *req, struct db_result *result, void *page_limit)
{
    long limit = *(const long *)page_limit;
    if (result->status != DB_OK) {
        http_problem_database(req, result->status);
        return;
    }
    const struct db_result r = *result;
    struct jsonw *w = &req->w;
    list_begin(req);
    int n = db_rows(&r) < limit ? db_rows(&r) : (int)limit;
    for (int i = 0; i < n; i++)
        audit_log_write_entry(w, &r, i);
    struct buf token = {0};
    if (db_rows(&r) > limit) {
        struct buf last = {0};
        buf_printf(&last, "%s|%s", db_value(&r, n - 1, 10), db_value(&r, n - 1, 0));
        token_sign(&token, last.data, last.len);
        buf_free(&last);
    }
    list_end_paged(req, db_rows(&r) > limit ? token.data : NULL);
    buf_free(&token);
}

static const char *const keys[] = {"keyId", "subject", "resource", "resourceId", "action",
                                   "from",  "to",      "limit",    "cursor",     NULL};

static struct route routes[] = {
    {.method = HTTP_GET,
     .pattern = "/v1/audit-log",
     .handler = audit_log,
     .roles = ROLE_ADMIN,
     .query_keys = keys},
};

void audit_log_register(void)
{
    router_add(routes, COUNT(routes));
}

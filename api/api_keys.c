/* API keys, for administrators. A key's secret is made here, shown once in the answer to its
 * creation, and stored only as a hash (see server/auth.h). Deleting a key revokes it: the row
 * stays, so the audit trail keeps its name. */
#include "api.h"

#include "auth.h"
#include "common.h"

#include <string.h>

static const char *const roles[] = {"admin", "staff", "partner", NULL};

static const struct field fields[] = {
    {.name = "name",
     .column = "name",
     .type = FIELD_TEXT,
     .flags = FIELD_REQUIRED,
     .min = 1,
     .max = 200},
    {.name = "role",
     .column = "role",
     .type = FIELD_ENUM,
     .flags = FIELD_REQUIRED | FIELD_IMMUTABLE,
     .values = roles},
    {.name = "expiresAt",
     .column = "expires_at",
     .type = FIELD_TIMESTAMP,
     .flags = FIELD_NULLABLE | FIELD_IMMUTABLE},
    {.name = "municipalities",
     .column = "municipality_codes",
     .type = FIELD_ENUM_ARRAY,
     .flags = FIELD_NULLABLE | FIELD_IMMUTABLE,
     .min = 1,
     .pattern = "^GM[0-9]{4}$",
     .hint = "must be a CBS code, e.g. GM0297"},
    {.name = "requireIfMatch",
     .column = "require_if_match",
     .type = FIELD_BOOL,
     .flags = FIELD_IMMUTABLE,
     .fallback = "false"},
    {.name = "rateLimit",
     .column = "rate_limit",
     .type = FIELD_INT,
     .flags = FIELD_NULLABLE | FIELD_IMMUTABLE,
     .min = 0,
     .max = 10000000},
    {.name = "revokedAt",
     .column = "revoked_at",
     .type = FIELD_TIMESTAMP,
     .flags = FIELD_READONLY | FIELD_NULLABLE},
    {.name = "lastUsedAt",
     .column = "last_used_at",
     .type = FIELD_TIMESTAMP,
     .flags = FIELD_READONLY | FIELD_NULLABLE},
};

static const struct filter filters[] = {
    {"role", FILTER_ANY, "role", "role = ANY ($::text[])"},
    {"updatedSince", FILTER_SINCE, NULL, "updated_at >= $::timestamptz"},
};

static const struct sort_key sort_keys[] = {
    {"name", "name", "text"},
    {"createdAt", "created_at", "timestamptz"},
};

static const struct constraint_rule constraints[] = {
    {"api_keys_name_length", "name", "maxLength", "must have 1 to 200 characters", NULL},
    {"api_keys_role", "role", "enum", "must be admin, staff or partner", NULL},
    {"api_keys_rate_limit", "rateLimit", "minimum", "must be 0 or more", NULL},
};

static void create_key(struct request *req);
static void revoke_key(struct request *req);

static struct resource api_keys = {
    .name = "API key",
    .table = "api_keys",
    .path = "/v1/api-keys",
    RESOURCE_TABLES(fields, filters, sort_keys, constraints),
    .methods = RESOURCE_LIST | RESOURCE_CREATE | RESOURCE_GET | RESOURCE_DELETE,
    .read_roles = ROLE_ADMIN,
    .write_roles = ROLE_ADMIN,
    .on_create = create_key,
    .no_idempotency = true,
    .on_delete = revoke_key,
};

static void create_key(struct request *req)
{
    struct resource_values v;
    if (!resource_read_body(req, &api_keys, true, &v))
        return;
    char key[AUTH_KEY_LEN + 1], hash[67];
    auth_new_key(key, hash);
    struct buf sql = {0};
    buf_printf(&sql,
               "INSERT INTO api_keys (name, role, expires_at, secret_hash, municipality_codes, "
               "require_if_match, rate_limit) SELECT $1, $2, $3::timestamptz, $4::bytea, "
               "$5::text[], $6::boolean, $7::integer "
               /* A limit names municipalities that exist; otherwise nothing is inserted. */
               "WHERE $5::text[] IS NULL OR (SELECT count(*) FROM municipalities "
               "WHERE code = ANY ($5::text[])) = cardinality($5::text[]) RETURNING %s",
               resource_select_list(&api_keys));
    const char *codes = v.value[resource_field(&api_keys, "municipalities")];
    const char *role = v.value[resource_field(&api_keys, "role")];
    if (codes && strcmp(role, "partner") != 0) {
        http_invalid(req, "municipalities", "unknown", "limits partner keys only");
        http_problem_invalid(req);
        resource_values_free(&v);
        buf_free(&sql);
        return;
    }
    const char *params[] = {v.value[resource_field(&api_keys, "name")],
                            role,
                            v.value[resource_field(&api_keys, "expiresAt")],
                            hash,
                            codes,
                            v.value[resource_field(&api_keys, "requireIfMatch")],
                            v.value[resource_field(&api_keys, "rateLimit")]};
    struct db_result r = {0};
    bool made = false; /* committed with its audit entry: only then is the secret shown */
    if (db_begin() != DB_OK) {
        http_problem_unavailable(req);
    } else {
        enum db_status s = db_exec(sql.data, 7, params, &r);
        if (s == DB_OK && db_rows(&r) == 0) {
            http_invalid(req, "municipalities", "reference",
                         "names a code that is not a municipality");
            http_problem_invalid(req);
        } else if (s != DB_OK) {
            resource_fail(req, &api_keys, &r, false);
        } else {
            made = http_commit_audited(req, 201, db_value(&r, 0, 0));
        }
        if (!made)
            db_rollback();
    }
    if (made) {
        jsonw_object_begin(&req->w);
        resource_render_members(req, &api_keys, &r, 0);
        jsonw_kv_string(&req->w, "key", key);
        jsonw_object_end(&req->w);
        struct buf location = {0};
        buf_printf(&location, "%s/%s", api_keys.path, db_value(&r, 0, 0));
        http_set_header(req, "Location", location.data);
        buf_free(&location);
        http_reply(req, 201);
    }
    db_clear(&r);
    buf_free(&sql);
    resource_values_free(&v);
}

static void revoke_key(struct request *req)
{
    const char *id = http_param(req, "id");
    char version_buf[16];
    const char *version = http_if_match(req, version_buf);
    if (version && !*version) {
        http_problem(req, 412, "If-Match must name the current version, e.g. \"3\".");
        return;
    }
    const char *params[] = {id, version};
    struct db_result r;
    if (db_begin() != DB_OK) {
        http_problem_unavailable(req);
        return;
    }
    enum db_status s =
        db_exec("UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 "
                "AND ($2::integer IS NULL OR version = $2::integer) RETURNING id",
                2, params, &r);
    if (s != DB_OK) {
        resource_fail(req, &api_keys, &r, true);
        db_rollback();
    } else if (db_rows(&r) == 0) {
        resource_answer_missing(req, &api_keys, id);
        db_rollback();
    } else if (!http_commit_audited(req, 204, id)) {
        db_rollback();
    } else {
        auth_forget(id);
        http_reply_empty(req, 204);
    }
    db_clear(&r);
}

void api_keys_register(void)
{
    resource_register(&api_keys);
}

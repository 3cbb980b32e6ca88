/* API keys, for administrators. A key's secret is made here, shown once in the answer to its
 * creation, and stored only as a hash (see server/auth.h). Deleting a key revokes it: the row
 * stays, so the audit trail keeps its name. */
#include "api_keys.h"

#include "api.h"
#include "common.h"

#include <string.h>

/* Makes a key: $1 name, $2 role, $3 expires_at, $4 the secret's hash, $5 municipality codes,
 * $6 require_if_match, $7 rate_limit. A limit names municipalities that exist; otherwise
 * nothing is inserted and no row answered. api_keys_register() appends the resource's select
 * list, once. */
static const char SQL_INSERT_KEY[] =
    "INSERT INTO api_keys (name, role, expires_at, secret_hash, municipality_codes, "
    "require_if_match, rate_limit) SELECT $1, $2, $3::timestamptz, $4::bytea, $5::text[], "
    "$6::boolean, $7::integer "
    "WHERE $5::text[] IS NULL OR (SELECT count(*) FROM municipalities "
    "WHERE code = ANY ($5::text[])) = cardinality($5::text[]) RETURNING ";
/* Revokes key $1, at version $2 when the client named one (If-Match). A revoked key stays
 * revoked as it was: revoking again changes nothing but the version. */
static const char SQL_REVOKE_KEY[] =
    "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 "
    "AND ($2::integer IS NULL OR version = $2::integer) RETURNING id";

static char *insert_key_sql; /* SQL_INSERT_KEY with the select list; for the process' life */

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
    MUNICIPALITY_CODES_FIELD,
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

/* The fields a new key is made of, by index (make_key). */
static size_t name_field, role_field, expires_at_field, municipalities_field,
    require_if_match_field, rate_limit_field;

static struct resource api_keys = {
    .name = "API key",
    .field_refs = (const struct field_ref[]){{"name", &name_field},
                                             {"role", &role_field},
                                             {"expiresAt", &expires_at_field},
                                             {"municipalities", &municipalities_field},
                                             {"requireIfMatch", &require_if_match_field},
                                             {"rateLimit", &rate_limit_field},
                                             {NULL, NULL}},
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

enum db_status api_keys_insert(const struct api_key_values *k, char key[AUTH_KEY_LEN + 1],
                               struct db_result *r)
{
    char hash[67];
    auth_new_key(key, hash);
    const char *params[] = {k->name,      k->role,           k->expires_at,
                            hash,         k->municipalities, k->require_if_match,
                            k->rate_limit};
    return db_exec(insert_key_sql, 7, params, r);
}

/* Answers 201 with the key made (row 0 of r) and its secret, shown this once. */
static void answer_made(struct request *req, const struct db_result *r, const char *key)
{
    jsonw_object_begin(&req->w);
    resource_render_members(req, &api_keys, r, 0);
    jsonw_kv_string(&req->w, "key", key);
    jsonw_object_end(&req->w);
    struct buf location = {0};
    buf_printf(&location, "%s/%s", api_keys.path, db_value(r, 0, 0));
    http_set_header(req, "Location", location.data);
    buf_free(&location);
    http_reply(req, 201);
}

/* Stores the key of v, in one transaction with its audit entry: only once both are committed is
 * the secret shown. */
static void make_key(struct request *req, const struct resource_values *v)
{
    const struct api_key_values k = {
        .name = v->value[name_field],
        .role = v->value[role_field],
        .expires_at = v->value[expires_at_field],
        .municipalities = v->value[municipalities_field],
        .require_if_match = v->value[require_if_match_field],
        .rate_limit = v->value[rate_limit_field],
    };
    if (k.municipalities && strcmp(k.role, "partner") != 0) {
        http_invalid(req, "municipalities", "unknown", "limits partner keys only");
        http_problem_invalid(req);
        return;
    }
    if (db_begin() != DB_OK) {
        http_problem_unavailable(req);
        return;
    }
    char key[AUTH_KEY_LEN + 1];
    struct db_result r;
    enum db_status s = api_keys_insert(&k, key, &r);
    if (s != DB_OK) {
        resource_fail(req, &api_keys, &r, false);
    } else if (db_rows(&r) == 0) {
        http_invalid(req, "municipalities", "reference", "names a code that is not a municipality");
        http_problem_invalid(req);
    } else if (http_commit_audited(req, 201, db_value(&r, 0, 0))) {
        answer_made(req, &r, key);
    }
    db_clear(&r);
}

static void create_key(struct request *req)
{
    struct resource_values v;
    if (!resource_read_body(req, &api_keys, true, &v))
        return;
    make_key(req, &v);
}

static void revoke_key(struct request *req)
{
    const char *id = http_param(req, "id");
    char version_buf[16];
    const char *version = http_if_match(req, version_buf);
    if (version && !*version) {
        resource_answer_missing(req, &api_keys, id);
        return;
    }
    if (db_begin() != DB_OK) {
        http_problem_unavailable(req);
        return;
    }
    const char *params[] = {id, version};
    struct db_result r;
    enum db_status s = db_exec(SQL_REVOKE_KEY, 2, params, &r);
    int rows = db_rows(&r);
    if (s != DB_OK)
        resource_fail(req, &api_keys, &r, true);
    db_clear(&r);
    if (s != DB_OK)
        return;
    if (rows == 0) {
        resource_answer_missing(req, &api_keys, id);
    } else if (http_commit_audited(req, 204, id)) {
        auth_forget(id);
        http_reply_empty(req, 204);
    }
}

void api_keys_register(void)
{
    resource_register(&api_keys);
    struct buf sql = {0};
    buf_printf(&sql, "%s%s", SQL_INSERT_KEY, resource_select_list(&api_keys));
    insert_key_sql = buf_detach(&sql);
}

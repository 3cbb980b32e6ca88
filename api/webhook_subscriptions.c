/* Webhook subscriptions, for administrators: a receiver's URL, the events it wants, and the view
 * it reads them with — staff (whole objects) or partner (what a partner key limited to the same
 * municipalities reads). The signing secret is made here and shown twice only: in the answer to
 * the creation and to rotate-secret; the sender signs with it (Standard Webhooks). Deliveries are
 * the sender's attempts, read under the subscription. */
#include "api.h"
#include "api_keys.h"
#include "changes.h"
#include "common.h"
#include "crypto.h"
#include "netguard.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* "whsec_" and the standard base64 of 32 random bytes, as the specification writes secrets. */
#define SECRET_BYTES 32
#define SECRET_LEN   (6 + 4 * ((SECRET_BYTES + 2) / 3))

/* How long a rotated-out secret keeps signing next to the new one. */
#define ROTATION_OVERLAP "24 hours"

/* The change feed's types and their operations; partners read only some types (changes.c). */
#define EVENT_PATTERN                                                                              \
    "^(municipality|initiative|trainer|werklab|participant|session|attendance|feedback|"           \
    "inquiry)\\.(created|updated|deleted|\\*)$"

/* A new subscription: $1 url, $2 events, $3 description, $4 enabled, $5 view, $6 codes,
 * $7 secret, $8 the view key, $9 its id. It starts where a reader of the feed would stand now:
 * after the last entry of the transactions that have all ended, so it is told of every change
 * that commits from now on and of none before. The select list is appended once by
 * webhook_subscriptions_register(). */
static const char SQL_INSERT_SUBSCRIPTION[] =
    "INSERT INTO webhook_subscriptions (url, events, description, enabled, view, "
    "municipality_codes, secret, view_key, view_key_id, position_txid, position_seq) "
    "SELECT $1, $2::text[], $3, $4::boolean, $5, $6::text[], $7, $8, $9::uuid, p.txid, p.seq "
    "FROM (SELECT txid, seq FROM changes WHERE txid < pg_snapshot_xmin(pg_current_snapshot()) "
    "UNION ALL SELECT txid, seq FROM changes_horizon ORDER BY txid DESC, seq DESC LIMIT 1) p "
    "RETURNING ";

/* A new secret $2 for subscription $1 (at version $3 when If-Match names one); the one it had
 * keeps signing for ROTATION_OVERLAP. */
static const char SQL_ROTATE_SECRET[] =
    "UPDATE webhook_subscriptions SET previous_secret = secret, "
    "previous_secret_until = now() + interval '" ROTATION_OVERLAP "', secret = $2 "
    "WHERE id = $1 AND ($3::integer IS NULL OR version = $3::integer) RETURNING ";

static char *insert_sql, *rotate_sql; /* with the select list; for the process' life */

static const char *const views[] = {"staff", "partner", NULL};

static const struct field fields[] = {
    {.name = "url",
     .column = "url",
     .type = FIELD_TEXT,
     .flags = FIELD_REQUIRED,
     .min = 1,
     .max = 2000},
    {.name = "events",
     .column = "events",
     .type = FIELD_ENUM_ARRAY,
     .flags = FIELD_REQUIRED,
     .min = 1,
     .pattern = EVENT_PATTERN,
     .hint = "must be a type and an operation, e.g. werklab.created or werklab.*"},
    {.name = "description",
     .column = "description",
     .type = FIELD_TEXT,
     .flags = FIELD_NULLABLE,
     .max = 500},
    {.name = "enabled", .column = "enabled", .type = FIELD_BOOL, .fallback = "true"},
    {.name = "as",
     .column = "view",
     .type = FIELD_ENUM,
     .flags = FIELD_REQUIRED | FIELD_IMMUTABLE,
     .values = views},
    MUNICIPALITY_CODES_FIELD,
    /* Where the subscription stands in the feed: the webhook-id of the last event its receiver
     * acknowledged (or of the last entry before it was made), in the webhook-id's own form. */
    {.name = "position",
     .column = "'msg_' || position_txid::text || '_' || position_seq::text",
     .type = FIELD_TEXT,
     .flags = FIELD_READONLY},
    {.name = "backlog",
     .column = "webhook_backlog(webhook_subscriptions)",
     .type = FIELD_INT,
     .flags = FIELD_READONLY},
    {.name = "lastSuccessAt",
     .column = "last_success_at",
     .type = FIELD_TIMESTAMP,
     .flags = FIELD_READONLY | FIELD_NULLABLE},
    {.name = "lastFailureAt",
     .column = "last_failure_at",
     .type = FIELD_TIMESTAMP,
     .flags = FIELD_READONLY | FIELD_NULLABLE},
    {.name = "lastError",
     .column = "last_error",
     .type = FIELD_TEXT,
     .flags = FIELD_READONLY | FIELD_NULLABLE},
    {.name = "nextAttemptAt",
     .column = "next_attempt_at",
     .type = FIELD_TIMESTAMP,
     .flags = FIELD_READONLY | FIELD_NULLABLE},
    {.name = "disabledReason",
     .column = "disabled_reason",
     .type = FIELD_TEXT,
     .flags = FIELD_READONLY | FIELD_NULLABLE},
    {.name = "previousSecretUntil",
     .column = "CASE WHEN previous_secret_until > now() THEN previous_secret_until END",
     .type = FIELD_TIMESTAMP,
     .flags = FIELD_READONLY | FIELD_NULLABLE},
};

static const struct filter filters[] = {
    {"enabled", FILTER_EQUALS, "enabled", "enabled = $::boolean"},
    UPDATED_SINCE_FILTER,
};

static const struct sort_key sort_keys[] = {
    CREATED_AT_SORT,
    UPDATED_AT_SORT,
};

static const struct constraint_rule constraints[] = {
    {"webhook_subscriptions_url_length", "url", "maxLength", "must have 1 to 2000 characters",
     NULL},
    {"webhook_subscriptions_events", "events", "maxItems", "must name 1 to 40 events", NULL},
    {"webhook_subscriptions_description_length", "description", "maxLength",
     "must have at most 500 characters", NULL},
    {"webhook_subscriptions_view", "as", "enum", "must be staff or partner", NULL},
};

static size_t url_field, events_field, description_field, enabled_field, as_field,
    municipalities_field;

static void create_subscription(struct request *req);
static bool check_write(struct request *req, const struct resource *res, struct resource_write *w);

static struct resource subscriptions = {
    .name = "webhook subscription",
    .field_refs = (const struct field_ref[]){{"url", &url_field},
                                             {"events", &events_field},
                                             {"description", &description_field},
                                             {"enabled", &enabled_field},
                                             {"as", &as_field},
                                             {"municipalities", &municipalities_field},
                                             {NULL, NULL}},
    .table = "webhook_subscriptions",
    .path = "/v1/webhook-subscriptions",
    RESOURCE_TABLES(fields, filters, sort_keys, constraints),
    .methods = RESOURCE_ALL,
    .read_roles = ROLE_ADMIN,
    .write_roles = ROLE_ADMIN,
    .on_create = create_subscription,
    .no_idempotency = true, /* its answer holds the secret */
    .live = true,           /* the sender's account changes without a new version */
    .before_write = check_write,
};

static void new_secret(char out[SECRET_LEN + 1])
{
    unsigned char raw[SECRET_BYTES];
    crypto_random(raw, sizeof raw);
    memcpy(out, "whsec_", 6);
    EVP_EncodeBlock((unsigned char *)out + 6, raw, sizeof raw);
}

/* Answers status with row 0 of r and the secret, shown this once. */
static void answer_with_secret(struct request *req, const struct db_result *r, const char *secret,
                               int status)
{
    jsonw_object_begin(&req->w);
    resource_render_members(req, &subscriptions, r, 0);
    jsonw_kv_string(&req->w, "secret", secret);
    jsonw_object_end(&req->w);
    if (status == 201) {
        struct buf location = {0};
        buf_printf(&location, "%s/%s", subscriptions.path, db_value(r, 0, 0));
        http_set_header(req, "Location", location.data);
        buf_free(&location);
    }
    http_reply(req, status);
}

/* True when every event of events names a type partners read. events is a PostgreSQL array of
 * values EVENT_PATTERN took: {"werklab.created","session.*"}, no quote or comma inside one. */
static bool partners_read(const char *events)
{
    for (const char *p = events; *p && *p != '}';) {
        p += strspn(p, "{,\"");
        if (!changes_partners_read(p, strcspn(p, ".")))
            return false;
        p += strcspn(p, ",}");
    }
    return true;
}

/* The view a patch keeps (a subscription's view is never changed): "staff" or "partner". */
static bool view_of(const char *id, char view[8])
{
    const char *params[] = {id};
    struct db_result r;
    bool found =
        db_exec("SELECT view FROM webhook_subscriptions WHERE id = $1", 1, params, &r) == DB_OK &&
        db_rows(&r) == 1;
    if (found)
        snprintf(view, 8, "%s", db_value(&r, 0, 0));
    db_clear(&r);
    return found;
}

/* What a create or patch gives that the fields alone cannot judge, inside its transaction: the
 * URL (https, or http to an allowed host; no address that is not public unless allowed:
 * netguard.h; a host name is resolved only when delivering), and the events and municipalities
 * against the view — a partner view is told only of what partners read, and only a partner view
 * is limited to municipalities. */
static bool check_write(struct request *req, const struct resource *res, struct resource_write *w)
{
    (void)res;
    const struct resource_values *v = w->values;
    char reason[200], view[8] = "";
    if (v->given[url_field] && netguard_check_url(v->value[url_field], reason, sizeof reason) != 0)
        http_invalid(req, "url", "format", "%s", reason);
    if (w->create)
        snprintf(view, sizeof view, "%s", v->value[as_field]);
    else if (v->given[events_field])
        view_of(w->id, view); /* none when it is gone: the write then answers 404 */
    bool partner = strcmp(view, "partner") == 0;
    if (w->create && v->value[municipalities_field] && !partner)
        http_invalid(req, "municipalities", "unknown", "limits a partner view only");
    if (partner && v->given[events_field] && !partners_read(v->value[events_field]))
        http_invalid(req, "events", "forbidden",
                     "a partner view is told only of municipalities, initiatives, werklabs, "
                     "sessions and feedback");
    if (req->n_invalid == 0)
        return true;
    http_problem_invalid(req);
    return false;
}

static void create_subscription(struct request *req)
{
    struct resource_values v;
    if (!resource_read_body(req, &subscriptions, true, &v))
        return;
    struct resource_write w = {.create = true, .values = &v};
    if (db_begin() != DB_OK) {
        http_problem_unavailable(req);
        return;
    }
    if (!check_write(req, &subscriptions, &w))
        return;
    /* The view's key first: it also checks that the municipalities named exist. No limit on
     * its rate: the sender reads one object per event, never more than the feed holds. */
    const struct api_key_values view = {.name = "webhook subscription view",
                                        .role = v.value[as_field],
                                        .municipalities = v.value[municipalities_field],
                                        .require_if_match = "false",
                                        .rate_limit = "0"};
    char key[AUTH_KEY_LEN + 1];
    struct db_result r;
    enum db_status s = api_keys_insert(&view, key, &r);
    if (s != DB_OK) {
        resource_fail(req, &subscriptions, &r, false);
    } else if (db_rows(&r) == 0) {
        http_invalid(req, "municipalities", "reference", "names a code that is not a municipality");
        http_problem_invalid(req);
    }
    char key_id[37] = "";
    if (s == DB_OK && db_rows(&r) == 1)
        snprintf(key_id, sizeof key_id, "%s", db_value(&r, 0, 0));
    db_clear(&r);
    if (!key_id[0])
        return;
    char secret[SECRET_LEN + 1];
    new_secret(secret);
    const char *params[] = {v.value[url_field],
                            v.value[events_field],
                            v.value[description_field],
                            v.value[enabled_field],
                            v.value[as_field],
                            v.value[municipalities_field],
                            secret,
                            key,
                            key_id};
    s = db_exec(insert_sql, 9, params, &r);
    if (s != DB_OK)
        resource_fail(req, &subscriptions, &r, false);
    else if (http_commit_audited(req, 201, db_value(&r, 0, 0)))
        answer_with_secret(req, &r, secret, 201);
    db_clear(&r);
}

/* POST /v1/webhook-subscriptions/{id}/rotate-secret: a new secret, shown once; the previous one
 * signs next to it for ROTATION_OVERLAP, so receivers can take the new one without a gap. */
static void rotate_secret(struct request *req)
{
    const char *id = http_param(req, "id");
    char version_buf[16];
    const char *version = http_if_match(req, version_buf);
    if (version && !*version) {
        resource_answer_missing(req, &subscriptions, id);
        return;
    }
    if (db_begin() != DB_OK) {
        http_problem_unavailable(req);
        return;
    }
    char secret[SECRET_LEN + 1];
    new_secret(secret);
    const char *params[] = {id, secret, version};
    struct db_result r;
    enum db_status s = db_exec(rotate_sql, 3, params, &r);
    if (s != DB_OK)
        resource_fail(req, &subscriptions, &r, false);
    else if (db_rows(&r) == 0)
        resource_answer_missing(req, &subscriptions, id);
    else if (http_commit_audited(req, 200, id))
        answer_with_secret(req, &r, secret, 200);
    db_clear(&r);
}

/* ---- deliveries: the sender's attempts, newest first when asked (sort=-attemptedAt) ---- */

static const struct field delivery_fields[] = {
    {.name = "subscriptionId",
     .column = "subscription_id",
     .type = FIELD_UUID,
     .flags = FIELD_PARENT},
    {.name = "webhookId", .column = "webhook_id", .type = FIELD_TEXT, .flags = FIELD_READONLY},
    {.name = "event", .column = "event", .type = FIELD_TEXT, .flags = FIELD_READONLY},
    {.name = "attemptedAt",
     .column = "created_at",
     .type = FIELD_TIMESTAMP,
     .flags = FIELD_READONLY},
    {.name = "status",
     .column = "status",
     .type = FIELD_INT,
     .flags = FIELD_READONLY | FIELD_NULLABLE},
    {.name = "error",
     .column = "error",
     .type = FIELD_TEXT,
     .flags = FIELD_READONLY | FIELD_NULLABLE},
    {.name = "durationMs", .column = "duration_ms", .type = FIELD_INT, .flags = FIELD_READONLY},
    {.name = "nextAttemptAt",
     .column = "next_attempt_at",
     .type = FIELD_TIMESTAMP,
     .flags = FIELD_READONLY | FIELD_NULLABLE},
};

static const struct filter delivery_filters[] = {
    {"webhookId", FILTER_EQUALS, "webhookId", "webhook_id = $"},
};

static const struct sort_key delivery_sort_keys[] = {
    {"attemptedAt", "created_at", "timestamptz"},
};

static const struct constraint_rule no_constraints[] = {{NULL, NULL, NULL, NULL, NULL}};

static struct resource deliveries = {
    .name = "delivery",
    .table = "webhook_deliveries",
    .path = "/v1/webhook-subscriptions/{id}/deliveries",
    .item_param = "deliveryId",
    .parent_table = "webhook_subscriptions",
    .fields = delivery_fields,
    .n_fields = COUNT(delivery_fields),
    .filters = delivery_filters,
    .n_filters = COUNT(delivery_filters),
    .sort_keys = delivery_sort_keys,
    .n_sort_keys = COUNT(delivery_sort_keys),
    .constraints = no_constraints,
    .n_constraints = 0,
    .no_meta = true,
    .methods = RESOURCE_LIST | RESOURCE_GET,
    .read_roles = ROLE_ADMIN,
    .write_roles = ROLE_ADMIN,
};

static struct route routes[] = {
    {.method = HTTP_POST,
     .pattern = "/v1/webhook-subscriptions/{id}/rotate-secret",
     .handler = rotate_secret,
     .roles = ROLE_ADMIN,
     .no_idempotency = true,
     .no_body = true},
};

void webhook_subscriptions_register(void)
{
    resource_register(&subscriptions);
    resource_register(&deliveries);
    router_add(routes, COUNT(routes));
    struct buf sql = {0};
    buf_printf(&sql, "%s%s", SQL_INSERT_SUBSCRIPTION, resource_select_list(&subscriptions));
    insert_sql = buf_detach(&sql);
    buf_printf(&sql, "%s%s", SQL_ROTATE_SECRET, resource_select_list(&subscriptions));
    rotate_sql = buf_detach(&sql);
}

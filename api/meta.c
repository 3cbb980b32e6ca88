/* What is not a resource: the OpenAPI document, liveness, readiness and metrics. */
#include "api.h"
#include "conns.h"

#include "audit.h"
#include "buf.h"
#include "crypto.h"
#include "db.h"
#include "dbpipe.h"
#include "embedded.h"
#include "http.h"
#include "jobs.h"
#include "metrics.h"
#include "migrate.h"
#include "notify.h"
#include "replicas.h"

#include <string.h>

/* A strong ETag for the document: its SHA-256, computed once at registration. */
static char openapi_tag[2 * CRYPTO_SHA256_LEN + 3];

static void openapi(struct request *req)
{
    http_set_header(req, "Cache-Control", "public, max-age=300");
    if (http_entity_tag(req, openapi_tag))
        http_reply_not_modified(req);
    else
        http_reply_text(req, 200, "application/json; charset=utf-8", embedded_openapi_json,
                        embedded_openapi_json_len);
}

static void healthz(struct request *req)
{
    jsonw_object_begin(&req->w);
    jsonw_kv_string(&req->w, "status", "ok");
    jsonw_object_end(&req->w);
    http_reply(req, 200);
}

#define MAX_KEPT                                                                                   \
    (DB_MAX_SLOTS + (REPLICAS_MAX + 2) * DBPIPE_MAX_CONNECTIONS + AUDIT_MAX_WRITERS + 8)

/* The connections the server keeps open: the threads', the pipeline's, the audit writer's and
 * the revocation listener's. */
static size_t kept_connections(struct metrics_connection *out)
{
    size_t n = db_connections(out, MAX_KEPT);
    n += dbpipe_connections(out + n, MAX_KEPT - n);
    n += audit_connections(out + n, MAX_KEPT - n);
    return n + notify_connections(out + n, MAX_KEPT - n);
}

/* "2 of 4 worker, 1 of 1 pipeline" for the kinds with connections down; "" when none is. A
 * replica's connections are left out: a replica down is a read served by the primary, which
 * /readyz reports apart. */
static void describe_down(const struct metrics_connection *kept, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (strncmp(kept[i].kind, "replica-", 8) == 0)
            continue;
        bool first_of_kind = true;
        for (size_t k = 0; k < i && first_of_kind; k++)
            first_of_kind = strcmp(kept[k].kind, kept[i].kind) != 0;
        if (!first_of_kind)
            continue;
        unsigned all = 0, down = 0;
        for (size_t k = i; k < n; k++) {
            if (strcmp(kept[k].kind, kept[i].kind) == 0) {
                all++;
                down += !kept[k].up;
            }
        }
        if (down > 0)
            buf_printf(out, "%s%u of %u %s", out->len ? ", " : "", down, all, kept[i].kind);
    }
}

/* Ready means: every connection the server keeps is up, and the database's schema is exactly
 * the one this binary expects. A connection down is named by kind and count. With read replicas
 * an instance whose primary cannot be reached still serves reads: it stays ready, "degraded",
 * while a replica can serve them, and the answer lists each database's state. (A connection
 * down while the primary answers, such as the revocation listener's, is still not ready.) */
static void readyz(struct request *req)
{
    struct metrics_connection *kept = xcalloc(MAX_KEPT, sizeof *kept);
    struct buf down = {0};
    describe_down(kept, kept_connections(kept), &down);
    free(kept);
    struct db_result r;
    enum db_status s = db_exec(migrate_state_sql, 0, NULL, &r);
    bool schema_ok = s == DB_OK && db_rows(&r) == 1 && db_value(&r, 0, 0) &&
                     strcmp(db_value(&r, 0, 0), migrate_expected()) == 0;
    db_clear(&r);
    bool replicas_serve = replicas_count() > 0 && replicas_any_up();
    if (s != DB_UNAVAILABLE && !schema_ok) {
        http_problem(req, 503, "The database schema is not the one this version expects.");
        http_set_header(req, "Retry-After", "5");
    } else if (down.len && (s == DB_OK || !replicas_serve)) {
        http_problem(req, 503, "Database connections are down: %s.", down.data);
        http_set_header(req, "Retry-After", "1");
    } else if (s == DB_UNAVAILABLE && !replicas_serve) {
        http_problem_unavailable(req);
    } else {
        jsonw_object_begin(&req->w);
        jsonw_kv_string(&req->w, "status", schema_ok ? "ready" : "degraded");
        if (replicas_count() > 0)
            replicas_describe(&req->w, schema_ok);
        jsonw_object_end(&req->w);
        http_reply(req, 200);
    }
    buf_free(&down);
}

static void metrics(struct request *req)
{
    struct metrics_connection *kept = xcalloc(MAX_KEPT, sizeof *kept);
    struct buf text = {0};
    metrics_render(&text, db_open_connections(), kept, kept_connections(kept));
    free(kept);
    conns_render(&text);
    replicas_metrics(&text);
    jobs_render(&text);
    notify_render(&text);
    http_reply_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", text.data, text.len);
    buf_free(&text);
}

static struct route routes[] = {
    {.method = HTTP_GET, .pattern = "/v1/openapi.json", .handler = openapi, .roles = ROLE_PUBLIC},
    {.method = HTTP_GET, .pattern = "/healthz", .handler = healthz, .roles = ROLE_PUBLIC},
    {.method = HTTP_GET, .pattern = "/readyz", .handler = readyz, .roles = ROLE_PUBLIC},
    {.method = HTTP_GET,
     .pattern = "/metrics",
     .handler = metrics,
     .roles = ROLE_ADMIN,
     .produces = "text/plain"},
};

void meta_register(void)
{
    uint8_t digest[CRYPTO_SHA256_LEN];
    crypto_sha256(embedded_openapi_json, embedded_openapi_json_len, digest);
    openapi_tag[0] = '"';
    crypto_hex(digest, sizeof digest, openapi_tag + 1);
    strcpy(openapi_tag + 1 + 2 * CRYPTO_SHA256_LEN, "\"");
    router_add(routes, sizeof routes / sizeof *routes);
}

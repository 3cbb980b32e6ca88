/* What is not a resource: the OpenAPI document, liveness, readiness and metrics. */
#include "api.h"
#include "conns.h"

#include "db.h"
#include "embedded.h"
#include "http.h"
#include "metrics.h"
#include "migrate.h"

#include <string.h>

static void openapi(struct request *req)
{
    http_reply_text(req, 200, "application/json; charset=utf-8", embedded_openapi_json,
                    embedded_openapi_json_len);
    http_set_header(req, "Cache-Control", "public, max-age=300");
}

static void healthz(struct request *req)
{
    jsonw_object_begin(&req->w);
    jsonw_kv_string(&req->w, "status", "ok");
    jsonw_object_end(&req->w);
    http_reply(req, 200);
}

/* Ready means: the database answers, and its schema is exactly the one this binary expects. */
static void readyz(struct request *req)
{
    struct db_result r;
    enum db_status s = db_exec(migrate_state_sql, 0, NULL, &r);
    if (s == DB_UNAVAILABLE) {
        http_problem_unavailable(req);
    } else if (s != DB_OK || db_rows(&r) != 1 || !db_value(&r, 0, 0) ||
               strcmp(db_value(&r, 0, 0), migrate_expected()) != 0) {
        http_problem(req, 503, "The database schema is not the one this version expects.");
        http_set_header(req, "Retry-After", "5");
    } else {
        jsonw_object_begin(&req->w);
        jsonw_kv_string(&req->w, "status", "ready");
        jsonw_object_end(&req->w);
        http_reply(req, 200);
    }
    db_clear(&r);
}

static void metrics(struct request *req)
{
    struct buf text = {0};
    metrics_render(&text, db_open_connections());
    conns_render(&text);
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
    router_add(routes, sizeof routes / sizeof *routes);
}

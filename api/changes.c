/* The change feed: GET /v1/changes?after=<token>&limit=N.
 *
 * Triggers write an entry for every create, update and delete in the transaction of the change
 * (migrations/0004_integration.sql). The feed serves only entries of transactions older than
 * every transaction still running, in (transaction id, seq) order: a transaction that took its
 * sequence numbers early but commits late is held back until nothing older is running, so no
 * entry ever appears behind a position a reader already passed. `next` is always given; a reader
 * stores it and polls it again later. Pruning moves a horizon; a position before it is 410. */
#include "changes.h"

#include "api.h"
#include "common.h"
#include "jobs.h"
#include "token.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_LIMIT 100
#define MAX_LIMIT     1000

/* Drops the entries older than $1 seconds and moves the horizon to the last one dropped, in one
 * statement, so that a reader never sees entries gone without the horizon saying so. */
static const char SQL_PRUNE_CHANGES[] =
    "WITH gone AS (DELETE FROM changes WHERE at < now() - make_interval(secs => "
    "$1::integer) RETURNING txid, seq), "
    "last AS (SELECT txid, seq FROM gone ORDER BY txid DESC, seq DESC LIMIT 1) "
    "UPDATE changes_horizon h SET txid = last.txid, seq = last.seq FROM last "
    "WHERE (last.txid, last.seq) > (h.txid, h.seq)";

/* Webhook delivery attempts are kept as long as the entries they were for. */
static const char SQL_PRUNE_DELIVERIES[] =
    "DELETE FROM webhook_deliveries WHERE created_at < now() - make_interval(secs => "
    "$1::integer)";

/* Stored idempotent answers are replayed for 24 hours (idempotency.h), then dropped. */
static const char SQL_PRUNE_IDEMPOTENCY_KEYS[] =
    "DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'";

/* What partners may read of the feed: the types they may read. */
#define PARTNER_TYPES "{municipality,initiative,werklab,session,feedback}"

/* Where the feed begins now, and whether a position is before that (410). */
static const char SQL_HORIZON[] = "SELECT txid::text AS position, seq, "
                                  "($1::xid8, $2::bigint) < (txid, seq) FROM changes_horizon";

/* The text form of txid is not called txid: ORDER BY txid would then sort that text ("100000"
 * before "99999") instead of the transaction ids. */
static const char SQL_FEED[] =
    "SELECT seq, txid::text AS position, type, id, op, version, at, parent_id FROM changes "
    "WHERE (txid, seq) > ($1::xid8, $2::bigint) "
    "AND txid < pg_snapshot_xmin(pg_current_snapshot()) "
    "AND ($3::text[] IS NULL OR type = ANY ($3::text[])) "
    "AND ($4::uuid[] IS NULL OR municipality_id = ANY ($4::uuid[])) "
    "ORDER BY changes.txid, changes.seq LIMIT $5::integer";

/* Where each type of entry is read. */
static const struct {
    const char *type;
    const char *path; /* %1$s: the id; %2$s: the parent's id */
} paths[] = {
    {"municipality", "/v1/municipalities/%1$s"},
    {"initiative", "/v1/initiatives/%1$s"},
    {"trainer", "/v1/trainers/%1$s"},
    {"werklab", "/v1/werklabs/%1$s"},
    {"participant", "/v1/werklabs/%2$s/participants/%1$s"},
    {"session", "/v1/sessions/%1$s"},
    {"attendance", "/v1/sessions/%1$s/attendance"},
    {"feedback", "/v1/feedback/%1$s"},
    {"inquiry", "/v1/inquiries/%1$s"},
};

bool changes_partners_read(const char *type, size_t len)
{
    static const char types[] = PARTNER_TYPES;
    for (const char *p = types + 1; *p;) { /* past the array's brace */
        size_t n = strcspn(p, ",}");
        if (n == len && strncmp(p, type, len) == 0)
            return true;
        p += n + (p[n] != '\0');
    }
    return false;
}

bool changes_path(const char *type, const char *id, const char *parent, char *out, size_t len)
{
    for (size_t i = 0; i < COUNT(paths); i++) {
        if (strcmp(paths[i].type, type) == 0) {
            snprintf(out, len, paths[i].path, id, parent ? parent : "");
            return true;
        }
    }
    return false;
}

static void write_path(struct jsonw *w, const char *type, const char *id, const char *parent)
{
    char path[160];
    jsonw_kv_string(w, "path", changes_path(type, id, parent, path, sizeof path) ? path : NULL);
}

/* "txid:seq" of a position; false when the text is not one. */
static bool parse_position(const char *text, char *txid, size_t txid_len, char *seq, size_t seq_len)
{
    const char *colon = strchr(text, ':');
    if (!colon || colon == text || colon[1] == '\0' || (size_t)(colon - text) >= txid_len ||
        strlen(colon + 1) >= seq_len)
        return false;
    if (strspn(text, "0123456789") != (size_t)(colon - text) ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1))
        return false;
    snprintf(txid, txid_len, "%.*s", (int)(colon - text), text);
    snprintf(seq, seq_len, "%s", colon + 1);
    return true;
}

static void next_link(struct buf *b, const char *txid, const char *seq, const char *limit)
{
    char payload[64];
    int n = snprintf(payload, sizeof payload, "%s:%s", txid, seq);
    struct buf token = {0};
    token_sign(&token, payload, (size_t)n);
    buf_puts(b, "/v1/changes?after=");
    buf_puts(b, token.data);
    if (limit) {
        buf_puts(b, "&limit=");
        buf_puts(b, limit);
    }
    buf_free(&token);
}

/* A read of the feed between its two statements. */
struct reading {
    bool after;
    char txid[24], seq[24];
    long limit;
    const char *limit_text;
};

static void answer_feed(struct request *req, struct db_result *r, void *ctx);

/* Where the feed begins now is in: a position before it has been pruned away (410); else the
 * page from the position (or from the beginning). */
static void read_feed(struct request *req, struct db_result *r, void *ctx)
{
    struct reading *at = ctx;
    if (r->status != DB_OK || db_rows(r) != 1) {
        http_problem_database(req, r->status == DB_OK ? DB_ERROR : r->status);
        return;
    }
    if (!at->after) {
        snprintf(at->txid, sizeof at->txid, "%s", db_value(r, 0, 0));
        snprintf(at->seq, sizeof at->seq, "%s", db_value(r, 0, 1));
    } else if (db_value(r, 0, 2)[0] == 't') {
        http_problem(req, 410,
                     "This position is older than the oldest change kept: read the resources "
                     "again, then follow the feed from its beginning (GET /v1/changes).");
        return;
    }
    /* Partner keys limited to municipalities follow only those. */
    char limit_param[16];
    snprintf(limit_param, sizeof limit_param, "%ld", at->limit);
    const char *params[] = {at->txid, at->seq, req->who.role == ROLE_PARTNER ? PARTNER_TYPES : NULL,
                            list_scope(req), limit_param};
    http_defer(req, SQL_FEED, 5, params, answer_feed, at);
}

static void answer_feed(struct request *req, struct db_result *result, void *ctx)
{
    const struct reading *at = ctx;
    if (result->status != DB_OK) {
        http_problem_database(req, result->status);
        return;
    }
    const struct db_result r = *result;
    struct jsonw *w = &req->w;
    list_begin(req);
    for (int i = 0; i < db_rows(&r); i++) {
        jsonw_object_begin(w);
        jsonw_key(w, "seq");
        jsonw_raw(w, db_value(&r, i, 0));
        jsonw_kv_string(w, "type", db_value(&r, i, 2));
        jsonw_kv_string(w, "id", db_value(&r, i, 3));
        jsonw_kv_string(w, "op", db_value(&r, i, 4));
        jsonw_key(w, "version");
        jsonw_raw(w, db_value(&r, i, 5));
        jsonw_key(w, "at");
        resource_write_timestamp(w, db_value(&r, i, 6));
        write_path(w, db_value(&r, i, 2), db_value(&r, i, 3), db_value(&r, i, 7));
        jsonw_object_end(w);
    }
    /* `next` is always given, and only with the feed's own keys: a reader polls it as is. */
    int last = db_rows(&r) - 1;
    struct buf next = {0};
    next_link(&next, last >= 0 ? db_value(&r, last, 1) : at->txid,
              last >= 0 ? db_value(&r, last, 0) : at->seq, at->limit_text);
    list_end(req, next.data);
    buf_free(&next);
}

/* Two statements on the pipeline, one after the other, as two requests would: where the feed
 * begins, then the page. Neither needs the other's snapshot: the page holds back whatever is
 * not older than every running transaction at its own snapshot. */
static void changes(struct request *req)
{
    struct reading *at = pool_alloc(&req->pool, sizeof *at);
    const char *after = http_query(req, "after");
    *at = (struct reading){.after = after != NULL,
                           .txid = "0",
                           .seq = "0",
                           .limit = DEFAULT_LIMIT,
                           .limit_text = http_query(req, "limit")};
    list_read_limit(req, at->limit_text, MAX_LIMIT, &at->limit);
    struct buf payload = {0};
    if (after &&
        (!token_unsign(after, &payload) ||
         !parse_position(payload.data, at->txid, sizeof at->txid, at->seq, sizeof at->seq)))
        http_invalid(req, "after", "format", "is not a position this feed gave out");
    buf_free(&payload);
    if (req->n_invalid) {
        http_problem_invalid(req);
        return;
    }
    const char *horizon_params[] = {at->txid, at->seq};
    http_defer(req, SQL_HORIZON, 2, horizon_params, read_feed, at);
}

static unsigned retention_s;

/* Drops entries older than the retention and moves the horizon past them. */
static void prune_changes(void)
{
    char seconds[16];
    snprintf(seconds, sizeof seconds, "%u", retention_s);
    const char *params[] = {seconds};
    struct db_result r;
    db_exec(SQL_PRUNE_CHANGES, 1, params, &r);
    db_clear(&r);
    db_exec(SQL_PRUNE_DELIVERIES, 1, params, &r);
    db_clear(&r);
    db_exec(SQL_PRUNE_IDEMPOTENCY_KEYS, 0, NULL, &r);
    db_clear(&r);
}

static const char *const keys[] = {"after", "limit", NULL};

static struct route routes[] = {
    {.method = HTTP_GET,
     .pattern = "/v1/changes",
     .handler = changes,
     .roles = ROLES_READ,
     .query_keys = keys},
};

void changes_register(unsigned retention_seconds, unsigned prune_interval_s)
{
    retention_s = retention_seconds;
    router_add(routes, COUNT(routes));
    jobs_add("prune", prune_interval_s * 1000, prune_changes, JOBS_LOCK_PRUNE);
}

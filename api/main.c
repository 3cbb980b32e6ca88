/* werklabd: the commands — serve, migrate, create-key, routes, schema. */
#include "api.h"
#include "api_keys.h"

#include "audit.h"
#include "auth.h"
#include "config.h"
#include "crypto.h"
#include "db.h"
#include "http.h"
#include "jobs.h"
#include "log.h"
#include "metrics.h"
#include "migrate.h"
#include "netguard.h"
#include "notify.h"
#include "oidc.h"
#include "replicas.h"
#include "resource.h"
#include "retention.h"
#include "router.h"
#include "schema.h"
#include "token.h"
#include "validate.h"
#include "webhooks.h"

#include <jansson.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHUTDOWN_GRACE_MS 10000
/* What the audit log names as the resource of a key made on the command line. */
#define CREATE_KEY_RESOURCE "werklabd create-key"

/* The key that signs cursors, made by the first migration; as hex, since statements answer in
 * text. */
static const char SQL_CURSOR_KEY[] =
    "SELECT encode(value, 'hex') FROM server_secrets WHERE name = 'cursor'";

static int migrate_with(const struct config *cfg)
{
    char err[1024];
    PGconn *pg = db_connect_once(cfg->database_url, err, sizeof err);
    if (!pg) {
        log_event("error", "cannot connect to the database: %s", err);
        return -1;
    }
    int applied = migrate_apply(pg, err, sizeof err);
    db_close_once(pg);
    if (applied < 0) {
        log_event("error", "%s", err);
        return -1;
    }
    log_event("info", "database schema is current (%d migration%s applied now)", applied,
              applied == 1 ? "" : "s");
    return 0;
}

/* The cursor key lives in the database so that every instance signs alike. */
static int load_cursor_key(const struct config *cfg)
{
    char err[1024];
    if (!db_open_command(cfg->database_url, err, sizeof err)) {
        log_event("error", "cannot connect to the database: %s", err);
        return -1;
    }
    struct db_result r;
    unsigned char key[64];
    long len = -1;
    if (db_exec(SQL_CURSOR_KEY, 0, NULL, &r) == DB_OK && db_rows(&r) == 1)
        len = crypto_unhex(db_value(&r, 0, 0), key, sizeof key);
    db_clear(&r);
    db_close_command();
    if (len < 0) {
        log_event("error", "the database has no cursor key: run werklabd migrate");
        return -1;
    }
    token_set_key(key, (size_t)len);
    return 0;
}

/* The OpenID provider's settings; -1 after a message for the user when they do not hold. */
static int configure_oidc(const struct config *cfg)
{
    const struct oidc_settings s = {.issuer = cfg->oidc_issuer,
                                    .audience = cfg->oidc_audience,
                                    .jwks_file = cfg->oidc_jwks_file,
                                    .roles_claim = cfg->oidc_roles_claim,
                                    .role_map = cfg->oidc_role_map,
                                    .municipalities_claim = cfg->oidc_municipalities_claim,
                                    .user_agent = "werklabd/" HTTP_API_VERSION};
    char err[512];
    if (oidc_configure(&s, err, sizeof err) < 0) {
        fprintf(stderr, "werklabd: %s\n", err);
        return -1;
    }
    return 0;
}

/* What a burst of requests took goes back to the system once the burst is over: glibc keeps
 * what its per-thread arenas freed for the next burst, so without this the resident size stays
 * at its peak. Every ten seconds, on the jobs thread; it costs a walk over the arenas. */
#define MEMORY_TRIM_MS 10000

static void give_memory_back(void)
{
    malloc_trim(0);
}

static int serve(const struct config *cfg)
{
    char err[512];
    if (netguard_allow_parse(cfg->webhook_allow_http, err, sizeof err) < 0 ||
        webhooks_configure(cfg, err, sizeof err) < 0) {
        fprintf(stderr, "werklabd: %s\n", err);
        return 2;
    }
    if (configure_oidc(cfg) < 0)
        return 2;
    if (replicas_configure(cfg->database_url, cfg->read_database_urls, cfg->max_replica_lag_ms, err,
                           sizeof err) < 0) {
        fprintf(stderr, "werklabd: %s\n", err);
        return 2;
    }
    if (!cfg->no_migrate && migrate_with(cfg) < 0)
        return 1;
    if (load_cursor_key(cfg) < 0)
        return 1;
    migrate_expected(); /* computed once, before threads share it */
    db_configure(cfg->database_url, cfg->statement_timeout_ms);
    auth_configure(cfg->key_cache_ms);

    static const char *names[128];
    for (size_t i = 0; i < router_count(); i++)
        names[i] = router_at(i)->pattern;
    metrics_init(router_count(), names);

    /* Signals are taken by this thread alone, with sigwait; the workers inherit the mask. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    db_start(cfg->threads + 1); /* a connection for each worker thread and the jobs thread */
    db_track_commit_positions(replicas_count() > 0);
    if (replicas_start() < 0) {
        db_stop();
        return 1;
    }
    /* Before the first request, so that a key revoked on another instance is heard from then
     * on. A listener that cannot start leaves the cache period as the bound, as when its
     * connection is down: the server goes on. */
    notify_start();
    retention_configure(cfg->retain_inquiries_days, cfg->retain_participants_days,
                        cfg->retain_audit_days);
    jobs_add("retention", cfg->prune_interval_s * 1000, retention_run, JOBS_LOCK_RETENTION);
    jobs_add("memory", MEMORY_TRIM_MS, give_memory_back, JOBS_EVERY_INSTANCE);
    jobs_start();
    /* Before the first request: a token finds the key file read, or the fetcher under way. */
    if (oidc_start() < 0 || http_start(cfg) < 0) {
        oidc_stop();
        replicas_stop();
        jobs_stop();
        notify_stop();
        db_stop();
        return 1;
    }
    if (cfg->webhook_sender && webhooks_start(cfg) < 0) {
        http_stop(0);
        replicas_stop();
        oidc_stop();
        jobs_stop();
        notify_stop();
        db_stop();
        return 1;
    }
    log_event("info", "serving on http://%s with %u threads", cfg->listen, cfg->threads);
    int sig;
    sigwait(&stop, &sig);
    log_event("info", "%s: finishing requests in flight, then stopping",
              sig == SIGTERM ? "SIGTERM" : "SIGINT");
    webhooks_stop(); /* first: it reads objects through the server */
    http_stop(SHUTDOWN_GRACE_MS);
    replicas_stop();
    oidc_stop();
    jobs_stop();
    notify_stop();
    db_stop();
    log_event("info", "stopped");
    return 0;
}

/* "GM0297,GM0363" → "{GM0297,GM0363}", or NULL after a message when a code is malformed. */
static char *codes_array(const char *list)
{
    if (!*list) {
        fprintf(stderr, "werklabd: --municipalities needs at least one GM code\n");
        return NULL;
    }
    struct buf b = {0};
    buf_putc(&b, '{');
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n != 6 || strncmp(p, "GM", 2) != 0 || strspn(p + 2, "0123456789") < 4) {
            fprintf(stderr, "werklabd: --municipalities: '%.*s' is not a GM code\n", (int)n, p);
            buf_free(&b);
            return NULL;
        }
        buf_printf(&b, "%s%.*s", b.len > 1 ? "," : "", (int)n, p);
        p += n + (p[n] == ',');
    }
    buf_putc(&b, '}');
    return buf_detach(&b);
}

/* Makes the key of k as POST /v1/api-keys makes one, and audits it alike in the same
 * transaction: no key, resource CREATE_KEY_RESOURCE, the new key's id. Prints the key once it is
 * committed; the exit status. */
static int store_key(const struct api_key_values *k)
{
    char key[AUTH_KEY_LEN + 1];
    struct db_result r = {0};
    enum db_status s = db_begin();
    if (s == DB_OK)
        s = api_keys_insert(k, key, &r);
    bool made = s == DB_OK && db_rows(&r) == 1;
    struct audit_entry e = {.action = "create", .resource = CREATE_KEY_RESOURCE, .status = 201};
    if (made) {
        snprintf(e.resource_id, sizeof e.resource_id, "%s", db_value(&r, 0, 0));
        s = audit_write(&e);
        if (s == DB_OK)
            s = db_commit();
    }
    int rc = 0;
    if (s != DB_OK) {
        fprintf(stderr, "werklabd: cannot create the key: %s\n",
                r.message[0] ? r.message : "the database did not take it");
        rc = 1;
    } else if (!made) {
        fprintf(stderr, "werklabd: --municipalities names a code that is not in the database\n");
        rc = 1;
    } else {
        fprintf(stderr, "created %s key %s (\"%s\"); the key is shown once:\n", k->role,
                e.resource_id, k->name);
        printf("%s\n", key);
    }
    db_clear(&r);
    return rc;
}

static int create_key(const struct config *cfg)
{
    unsigned role = auth_role_parse(cfg->key_role);
    if (!role || role == ROLE_TRAINER || !cfg->key_name || !*cfg->key_name ||
        strlen(cfg->key_name) > 200) {
        fprintf(stderr, "werklabd: create-key needs --role admin|staff|partner and --name "
                        "(1 to 200 characters)\n");
        return 2;
    }
    if (cfg->key_expires_at && !validate_timestamp(cfg->key_expires_at)) {
        fprintf(stderr,
                "werklabd: --expires-at: '%s' is not an RFC 3339 time, e.g. "
                "2027-01-01T00:00:00Z\n",
                cfg->key_expires_at);
        return 2;
    }
    if (cfg->key_rate && !validate_whole(cfg->key_rate, 0, 10000000, NULL)) {
        fprintf(stderr, "werklabd: --rate-limit: '%s' is not a whole number from 0\n",
                cfg->key_rate);
        return 2;
    }
    char *codes = NULL;
    if (cfg->key_municipalities) {
        if (role != ROLE_PARTNER) {
            fprintf(stderr, "werklabd: --municipalities limits partner keys only\n");
            return 2;
        }
        if (!(codes = codes_array(cfg->key_municipalities)))
            return 2;
    }
    if (migrate_with(cfg) < 0) {
        free(codes);
        return 1;
    }
    char err[1024];
    if (!db_open_command(cfg->database_url, err, sizeof err)) {
        fprintf(stderr, "werklabd: cannot connect to the database: %s\n", err);
        free(codes);
        return 1;
    }
    const struct api_key_values k = {.name = cfg->key_name,
                                     .role = auth_role_name(role),
                                     .expires_at = cfg->key_expires_at,
                                     .municipalities = codes,
                                     .require_if_match =
                                         cfg->key_require_if_match ? "true" : "false",
                                     .rate_limit = cfg->key_rate};
    int rc = store_key(&k);
    db_close_command();
    free(codes);
    return rc;
}

int main(int argc, char **argv)
{
    struct config cfg;
    char err[512];
    if (config_load(&cfg, argc, argv, err, sizeof err) < 0) {
        fprintf(stderr, "werklabd: %s\n", err);
        config_free(&cfg); /* what was set before the refused value */
        return 2;
    }
    json_object_seed(0);
    api_register(&cfg);
    int rc = 0;
    switch (cfg.command) {
    case CONFIG_HELP: config_usage(stdout); break;
    case CONFIG_ROUTES:
        for (size_t i = 0; i < router_count(); i++)
            printf("%s %s\n", router_method_name(router_at(i)->method), router_at(i)->pattern);
        break;
    case CONFIG_SCHEMA: rc = schema_print(stdout) < 0 ? 1 : 0; break;
    case CONFIG_MIGRATE: rc = migrate_with(&cfg) < 0 ? 1 : 0; break;
    case CONFIG_CREATE_KEY: rc = create_key(&cfg); break;
    case CONFIG_SERVE: rc = serve(&cfg); break;
    }
    config_free(&cfg);
    return rc;
}

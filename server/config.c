#include "config.h"

#include "buf.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum option_type { OPT_STRING, OPT_UINT, OPT_FLAG };

struct option {
    const char *flag; /* without the leading -- */
    const char *env;  /* NULL: flag only */
    enum option_type type;
    size_t offset;
    const char *fallback; /* default, as text; NULL: none */
    unsigned commands;    /* CONFIG_* bits this option applies to */
    unsigned min, max;    /* for OPT_UINT */
    const char *help;
};

#define DB        (CONFIG_SERVE | CONFIG_MIGRATE | CONFIG_CREATE_KEY)
#define AT(field) offsetof(struct config, field)

static const struct option options[] = {
    {"database-url", "WERKLAB_DATABASE_URL", OPT_STRING, AT(database_url), NULL, DB, 0, 0,
     "PostgreSQL connection URL (required)"},
    {"read-database-url", "WERKLAB_READ_DATABASE_URL", OPT_STRING, AT(read_database_urls), "",
     CONFIG_SERVE, 0, 0,
     "PostgreSQL streaming replicas that serve reads of resources and lists, comma-separated "
     "URLs; empty: the primary serves every read"},
    {"max-replica-lag-ms", "WERKLAB_MAX_REPLICA_LAG_MS", OPT_UINT, AT(max_replica_lag_ms), "1000",
     CONFIG_SERVE, 0, 3600000,
     "a replica further behind the primary than this is not read from until it catches up"},
    {"listen", "WERKLAB_LISTEN", OPT_STRING, AT(listen), "127.0.0.1:8080", CONFIG_SERVE, 0, 0,
     "address and port to serve on, host:port"},
    {"threads", "WERKLAB_THREADS", OPT_UINT, AT(threads), "4", CONFIG_SERVE, 1, 256,
     "worker threads, each with its own database connection"},
    {"db-pipelines", "WERKLAB_DB_PIPELINES", OPT_UINT, AT(db_pipelines), "4", CONFIG_SERVE, 0, 16,
     "database connections in pipeline mode that serve reads of one object by id and list pages, "
     "each hosted by a worker thread while there are threads for them; 0: none, the worker "
     "threads read them"},
    {"db-write-pipelines", "WERKLAB_DB_WRITE_PIPELINES", OPT_UINT, AT(db_write_pipelines), "4",
     CONFIG_SERVE, 0, 16,
     "database connections in pipeline mode that commit writes of one statement side by side; 0: "
     "none, the worker threads write them"},
    {"audit-writers", "WERKLAB_AUDIT_WRITERS", OPT_UINT, AT(audit_writers), "1", CONFIG_SERVE, 1,
     16,
     "database connections that commit the audit entries of reads of personal data, side by "
     "side"},
    {"cors-origins", "WERKLAB_CORS_ORIGINS", OPT_STRING, AT(cors_origins), "", CONFIG_SERVE, 0, 0,
     "comma-separated browser origins allowed to call the API"},
    {"body-limit", "WERKLAB_BODY_LIMIT", OPT_UINT, AT(body_limit), "1048576", CONFIG_SERVE, 1024,
     64u << 20, "largest request body in bytes; larger is 413"},
    {"statement-timeout-ms", "WERKLAB_STATEMENT_TIMEOUT_MS", OPT_UINT, AT(statement_timeout_ms),
     "5000", CONFIG_SERVE, 100, 600000, "PostgreSQL statement_timeout for every query"},
    {"key-cache-ms", "WERKLAB_KEY_CACHE_MS", OPT_UINT, AT(key_cache_ms), "1000", CONFIG_SERVE, 0,
     60000, "how long a verified API key is trusted before it is checked again"},
    {"connection-timeout", "WERKLAB_CONNECTION_TIMEOUT", OPT_UINT, AT(connection_timeout_s), "30",
     CONFIG_SERVE, 1, 3600, "seconds an answer may wait for the client to read it"},
    {"idle-timeout", "WERKLAB_IDLE_TIMEOUT", OPT_UINT, AT(idle_timeout_s), "5", CONFIG_SERVE, 1,
     3600,
     "seconds a connection may wait for the client to send: before a request, between requests "
     "(keep-alive) and within one; then it is closed"},
    {"connection-limit", "WERKLAB_CONNECTION_LIMIT", OPT_UINT, AT(connection_limit), "1000",
     CONFIG_SERVE, 1, 100000,
     "client connections at once; a new one beyond it closes the one that has waited longest for "
     "a request"},
    {"per-ip-connection-limit", "WERKLAB_PER_IP_CONNECTION_LIMIT", OPT_UINT,
     AT(per_ip_connection_limit), "512", CONFIG_SERVE, 1, 100000,
     "client connections at once from one address; a new one beyond it closes that address's "
     "connection that has waited longest for a request"},
    {"connection-memory-limit", "WERKLAB_CONNECTION_MEMORY_LIMIT", OPT_UINT,
     /* At least 32 KiB: room for the longest target (HTTP_MAX_URL_BYTES) and header fields
      * (HTTP_MAX_HEADER_BYTES) werklabd answers in its own words, 414 and 431 naming the limit. */
     AT(connection_memory_limit), "32768", CONFIG_SERVE, 32768, 1u << 24,
     "bytes of request head (request line and header fields) a connection reads at most; a "
     "longer one is 414 or 431, and the connection is closed"},
    {"public-write-limit", "WERKLAB_PUBLIC_WRITE_LIMIT", OPT_UINT, AT(public_write_limit), "10",
     CONFIG_SERVE, 1, 100000,
     "writes without a key (public inquiries) per client address per minute"},
    {"trusted-proxies", "WERKLAB_TRUSTED_PROXIES", OPT_STRING, AT(trusted_proxies), "",
     CONFIG_SERVE, 0, 0,
     "comma-separated addresses and networks (10.0.0.0/8, fd00::/8) of reverse proxies whose "
     "X-Forwarded-For names the client (its right-most entry that is not one of them); from "
     "any other peer the header is ignored"},
    {"key-rate-limit", "WERKLAB_KEY_RATE_LIMIT", OPT_UINT, AT(key_rate_limit), "6000", CONFIG_SERVE,
     0, 10000000,
     "requests per API key per minute (a key's own rateLimit overrides it); 0: unlimited"},
    {"changes-retention", "WERKLAB_CHANGES_RETENTION", OPT_UINT, AT(changes_retention_s), "2592000",
     CONFIG_SERVE, 1, 1u << 31, "seconds the change feed keeps an entry; an older position is 410"},
    {"prune-interval", "WERKLAB_PRUNE_INTERVAL", OPT_UINT, AT(prune_interval_s), "60", CONFIG_SERVE,
     1, 86400,
     "seconds between prunings of the change feed and stored idempotent answers, and between "
     "retention runs"},
    /* The floors (30, 30, 180 days) are the database's too: migrations/0008_retention.sql. */
    {"retain-inquiries-days", "WERKLAB_RETAIN_INQUIRIES_DAYS", OPT_UINT, AT(retain_inquiries_days),
     "365", CONFIG_SERVE, 30, 36500,
     "days after its last change that an inquiry which never became a werklab is deleted "
     "(at least 30)"},
    {"retain-participants-days", "WERKLAB_RETAIN_PARTICIPANTS_DAYS", OPT_UINT,
     AT(retain_participants_days), "730", CONFIG_SERVE, 30, 36500,
     "days after a werklab is completed or cancelled that its participants and contact person "
     "are anonymised; counts and ratings stay (at least 30)"},
    {"retain-audit-days", "WERKLAB_RETAIN_AUDIT_DAYS", OPT_UINT, AT(retain_audit_days), "730",
     CONFIG_SERVE, 180, 36500, "days an audit log entry is kept (at least 180)"},
    {"oidc-issuer", "WERKLAB_OIDC_ISSUER", OPT_STRING, AT(oidc_issuer), "", CONFIG_SERVE, 0, 0,
     "OpenID Connect issuer whose access tokens sign people in (exactly its iss); empty: "
     "tokens are refused like unknown keys"},
    {"oidc-audience", "WERKLAB_OIDC_AUDIENCE", OPT_STRING, AT(oidc_audience), "", CONFIG_SERVE, 0,
     0, "the audience a token must name in aud (required with an issuer)"},
    {"oidc-jwks-file", "WERKLAB_OIDC_JWKS_FILE", OPT_STRING, AT(oidc_jwks_file), "", CONFIG_SERVE,
     0, 0, "the issuer's keys as a JWK Set file, instead of fetching them through discovery"},
    {"oidc-roles-claim", "WERKLAB_OIDC_ROLES_CLAIM", OPT_STRING, AT(oidc_roles_claim), "roles",
     CONFIG_SERVE, 0, 0,
     "dotted path to the token's list of roles, e.g. realm_access.roles for Keycloak"},
    {"oidc-role-map", "WERKLAB_OIDC_ROLE_MAP", OPT_STRING, AT(oidc_role_map), "", CONFIG_SERVE, 0,
     0,
     "which role claim value gives which role: value=role,... with roles admin, staff, partner, "
     "trainer; a token with none of them is 403"},
    {"oidc-municipalities-claim", "WERKLAB_OIDC_MUNICIPALITIES_CLAIM", OPT_STRING,
     AT(oidc_municipalities_claim), "", CONFIG_SERVE, 0, 0,
     "dotted path to the CBS codes (GM0297, ...) a partner token is limited to; empty: none"},
    {"webhook-allow-http", "WERKLAB_WEBHOOK_ALLOW_HTTP", OPT_STRING, AT(webhook_allow_http), "",
     CONFIG_SERVE, 0, 0,
     "hosts webhook URLs may reach over plain http and at any address (comma-separated)"},
    {"webhook-sender", "WERKLAB_WEBHOOK_SENDER", OPT_UINT, AT(webhook_sender), "1", CONFIG_SERVE, 0,
     1, "1: this instance delivers webhooks (any number of instances may), 0: it does not"},
    {"webhook-retry", "WERKLAB_WEBHOOK_RETRY", OPT_STRING, AT(webhook_retry),
     "5,60,600,3600,21600,43200", CONFIG_SERVE, 0, 0,
     "seconds between failed webhook deliveries and the next attempt, the last repeated"},
    {"webhook-timeout", "WERKLAB_WEBHOOK_TIMEOUT", OPT_UINT, AT(webhook_timeout_s), "15",
     CONFIG_SERVE, 1, 300,
     "seconds a webhook delivery may take in all, name lookup and connection included"},
    {"no-migrate", NULL, OPT_FLAG, AT(no_migrate), NULL, CONFIG_SERVE, 0, 0,
     "do not apply migrations at start"},
    {"role", NULL, OPT_STRING, AT(key_role), NULL, CONFIG_CREATE_KEY, 0, 0,
     "create-key: admin, staff or partner (required)"},
    {"name", NULL, OPT_STRING, AT(key_name), NULL, CONFIG_CREATE_KEY, 0, 0,
     "create-key: what the key is for (required)"},
    {"expires-at", NULL, OPT_STRING, AT(key_expires_at), NULL, CONFIG_CREATE_KEY, 0, 0,
     "create-key: RFC 3339 time after which the key is refused"},
    {"municipalities", NULL, OPT_STRING, AT(key_municipalities), NULL, CONFIG_CREATE_KEY, 0, 0,
     "create-key: comma-separated GM codes a partner key is limited to"},
    {"require-if-match", NULL, OPT_FLAG, AT(key_require_if_match), NULL, CONFIG_CREATE_KEY, 0, 0,
     "create-key: the key must send If-Match on PATCH, PUT and DELETE"},
    {"rate-limit", NULL, OPT_STRING, AT(key_rate), NULL, CONFIG_CREATE_KEY, 0, 0,
     "create-key: requests per minute for this key (0: unlimited)"},
};

static const struct {
    const char *name;
    enum config_command command;
    const char *help;
} commands[] = {
    {"serve", CONFIG_SERVE, "apply migrations and serve the API"},
    {"migrate", CONFIG_MIGRATE, "apply migrations and exit"},
    {"create-key", CONFIG_CREATE_KEY, "create an API key and print its secret once"},
    {"routes", CONFIG_ROUTES, "print the route table, one `METHOD /path` per line"},
    {"schema", CONFIG_SCHEMA, "print the resources' JSON Schemas (read, create, patch, list)"},
    {"help", CONFIG_HELP, "print this text"},
};

static int set_option(struct config *c, const struct option *o, const char *value, const char *from,
                      char *err, size_t err_len)
{
    void *field = (char *)c + o->offset;
    switch (o->type) {
    case OPT_STRING:
        free(*(char **)field);
        *(char **)field = xstrdup(value);
        return 0;
    case OPT_FLAG: *(bool *)field = true; return 0;
    case OPT_UINT: {
        char *end;
        errno = 0;
        unsigned long v = strtoul(value, &end, 10);
        if (errno || end == value || *end || value[0] == '-' || v < o->min || v > o->max) {
            snprintf(err, err_len, "%s: '%s' is not a whole number from %u to %u", from, value,
                     o->min, o->max);
            return -1;
        }
        *(unsigned *)field = (unsigned)v;
        return 0;
    }
    }
    return 0;
}

static int parse_listen(struct config *c, char *err, size_t err_len)
{
    const char *colon = strrchr(c->listen, ':');
    char *end;
    unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
    size_t host_len = colon ? (size_t)(colon - c->listen) : 0;
    if (!colon || *end || colon[1] == '\0' || port > 65535 || host_len == 0 ||
        host_len >= sizeof c->listen_host) {
        snprintf(err, err_len, "listen: '%s' is not host:port", c->listen);
        return -1;
    }
    memcpy(c->listen_host, c->listen, host_len);
    c->listen_host[host_len] = '\0';
    c->listen_port = (unsigned)port;
    return 0;
}

int config_load(struct config *c, int argc, char **argv, char *err, size_t err_len)
{
    *c = (struct config){0};
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        c->command = CONFIG_HELP;
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            c->command = commands[i].command;
    if (!c->command) {
        snprintf(err, err_len, "unknown command '%s' (see werklabd --help)", argv[1]);
        return -1;
    }

    for (size_t i = 0; i < sizeof options / sizeof *options; i++) {
        const struct option *o = &options[i];
        const char *env = o->env ? getenv(o->env) : NULL;
        const char *value = env && *env ? env : o->fallback;
        if (value && set_option(c, o, value, env && *env ? o->env : o->flag, err, err_len) < 0)
            return -1;
    }

    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            c->command = CONFIG_HELP;
            return 0;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, err_len, "unexpected argument '%s'", arg);
            return -1;
        }
        const char *eq = strchr(arg, '=');
        size_t name_len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        const struct option *o = NULL;
        for (size_t k = 0; k < sizeof options / sizeof *options; k++)
            if (strlen(options[k].flag) == name_len &&
                strncmp(options[k].flag, arg + 2, name_len) == 0 &&
                (options[k].commands & c->command))
                o = &options[k];
        if (!o) {
            snprintf(err, err_len, "unknown option '%.*s' for %s", (int)name_len + 2, arg, argv[1]);
            return -1;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (o->type != OPT_FLAG && !value) {
            if (i + 1 >= argc) {
                snprintf(err, err_len, "option --%s needs a value", o->flag);
                return -1;
            }
            value = argv[++i];
        }
        if (o->type == OPT_FLAG && value) {
            snprintf(err, err_len, "option --%s takes no value", o->flag);
            return -1;
        }
        if (set_option(c, o, value ? value : "", o->flag, err, err_len) < 0)
            return -1;
    }

    if ((c->command & DB) && (!c->database_url || !*c->database_url)) {
        snprintf(err, err_len, "no database: set WERKLAB_DATABASE_URL or --database-url");
        return -1;
    }
    if (c->command == CONFIG_SERVE && parse_listen(c, err, err_len) < 0)
        return -1;
    /* Parsed once here: each request only reads the table. */
    if (c->command == CONFIG_SERVE &&
        proxies_parse(&c->proxies, c->trusted_proxies, err, err_len) < 0)
        return -1;
    return 0;
}

void config_free(struct config *c)
{
    for (size_t i = 0; i < sizeof options / sizeof *options; i++)
        if (options[i].type == OPT_STRING)
            free(*(char **)((char *)c + options[i].offset));
    *c = (struct config){0};
}

void config_usage(void *out_file)
{
    FILE *out = out_file;
    fputs("usage: werklabd COMMAND [OPTIONS]\n\ncommands:\n", out);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].help);
    fputs("\noptions (flags override environment variables):\n", out);
    for (size_t i = 0; i < sizeof options / sizeof *options; i++) {
        const struct option *o = &options[i];
        fprintf(out, "  --%-26s %s\n", o->flag, o->help);
        if (o->env || o->fallback)
            fprintf(out, "  %-28s %s%s%s%s\n", "", o->env ? o->env : "",
                    o->env && o->fallback ? ", " : "", o->fallback ? "default " : "",
                    o->fallback ? (*o->fallback ? o->fallback : "none") : "");
    }
}

bool config_cors_allowed(const struct config *c, const char *origin)
{
    if (!origin || !c->cors_origins)
        return false;
    size_t len = strlen(origin);
    for (const char *p = c->cors_origins; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n > 0 && (*p == ' '))
            p++, n--;
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n == len && n > 0 && memcmp(p, origin, n) == 0)
            return true;
        if (!comma)
            break;
        p = comma + 1;
    }
    return false;
}

/* config: werklabd's settings, from WERKLAB_* environment variables with command-line flags over
 * them. One table in config.c names every setting, its variable, its flag, its default and its
 * help text; `werklabd --help` prints that table. */
#ifndef WERKLAB_CONFIG_H
#define WERKLAB_CONFIG_H

#include "proxies.h"

#include <stdbool.h>
#include <stddef.h>

enum config_command {
    CONFIG_SERVE = 1,
    CONFIG_MIGRATE = 2,
    CONFIG_CREATE_KEY = 4,
    CONFIG_ROUTES = 8,
    CONFIG_HELP = 16,
    CONFIG_SCHEMA = 32,
};

struct config {
    enum config_command command;
    char *database_url;
    char *read_database_urls; /* replicas, comma-separated; "" for none */
    unsigned max_replica_lag_ms;
    char *listen;         /* host:port as given */
    char listen_host[64]; /* parsed from listen */
    unsigned listen_port;
    unsigned threads;
    unsigned db_pipelines;
    unsigned db_write_pipelines;
    unsigned audit_writers;
    char *cors_origins; /* comma-separated, as given */
    unsigned body_limit;
    unsigned statement_timeout_ms;
    unsigned key_cache_ms;
    unsigned connection_timeout_s; /* for the client to read an answer */
    unsigned idle_timeout_s;       /* for the client to send: between requests and within one */
    unsigned connection_limit;
    unsigned per_ip_connection_limit;
    unsigned connection_memory_limit;
    unsigned public_write_limit; /* anonymous writes per client address per minute */
    char *trusted_proxies;       /* as given: addresses and networks, comma-separated */
    struct proxies proxies;      /* parsed from trusted_proxies (serve only) */
    unsigned key_rate_limit;     /* requests per key per minute, unless the key says otherwise */
    unsigned changes_retention_s;
    unsigned prune_interval_s;
    unsigned retain_inquiries_days;    /* an inquiry that never became a werklab */
    unsigned retain_participants_days; /* the people of a completed or cancelled werklab */
    unsigned retain_audit_days;        /* an audit entry */
    bool no_migrate;
    /* OpenID Connect access tokens (oidc.h); no issuer: none are accepted */
    char *oidc_issuer;
    char *oidc_audience;
    char *oidc_jwks_file;
    char *oidc_roles_claim;
    char *oidc_role_map;
    char *oidc_municipalities_claim;
    /* webhook receivers reached over plain http, at any address (netguard.h) */
    char *webhook_allow_http;
    char *webhook_retry;        /* seconds between attempts: "5,60,600,..." (webhooks.h) */
    unsigned webhook_timeout_s; /* a receiver's time to answer */
    unsigned webhook_sender;    /* 1: this instance delivers webhooks */
    /* create-key */
    char *key_role;
    char *key_name;
    char *key_expires_at;
    char *key_municipalities;
    bool key_require_if_match;
    char *key_rate;
};

/* Fills c from the environment, then argv (argv[1] is the command). Returns 0, or -1 with a
 * message for the user in err. Strings in c are owned by it: config_free() releases them. */
int config_load(struct config *c, int argc, char **argv, char *err, size_t err_len);
void config_free(struct config *c);
/* Writes the usage text, every setting with its flag, variable and default, to out. */
void config_usage(void *out_file);
/* True when origin is on the CORS allow-list (exact, case-sensitive match of scheme://host[:port]).
 */
bool config_cors_allowed(const struct config *c, const char *origin);

#endif

/* oidc: access tokens of an OpenID Connect provider (Keycloak, Microsoft Entra ID, ...).
 *
 * The issuer's keys come from its discovery document (<issuer>/.well-known/openid-configuration,
 * jwks_uri), fetched with libcurl by a thread of this module at start and then every
 * OIDC_REFRESH_S; again, at most once per OIDC_KID_REFRESH_S, when a token names a key the set
 * does not hold. Or they come from a file (a deployment without outbound access), read at start.
 * A request never fetches: a token with an unknown kid waits (at most OIDC_KID_WAIT_MS) for the
 * fetch it asked the thread for, and is refused when the key is still not there. A failed fetch
 * keeps the keys there were.
 *
 * A verified token's claims give the person: role through the role map applied to the roles
 * claim (a dotted path into the token, e.g. realm_access.roles), and for a partner the CBS codes
 * of the municipalities claim. */
#ifndef WERKLAB_OIDC_H
#define WERKLAB_OIDC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OIDC_REFRESH_S     300  /* keys fetched again in the background */
#define OIDC_KID_REFRESH_S 60   /* at most one fetch for an unknown kid in this period */
#define OIDC_KID_WAIT_MS   3000 /* how long a token with an unknown kid waits for that fetch */
#define OIDC_START_WAIT_MS 5000 /* how long the start waits for the first fetch */
#define OIDC_LEEWAY_S      60   /* clock difference allowed for exp and nbf */
#define OIDC_MAX_CODES     64   /* municipality codes of a partner token */

struct oidc_settings {
    const char *issuer;               /* NULL or "": tokens are not accepted */
    const char *audience;             /* required with an issuer */
    const char *jwks_file;            /* instead of discovery; NULL: discovery */
    const char *roles_claim;          /* dotted path; NULL: "roles" */
    const char *role_map;             /* "claim-value=role,...", roles admin, staff, partner,
                                         trainer */
    const char *municipalities_claim; /* dotted path; NULL: partners are not limited by token */
    const char *user_agent;           /* for outbound requests: "werklabd/<version>" */
};

/* Checks and keeps the settings (copied). 0, or -1 with a message for the user in err (an
 * issuer without audience, a role map that does not parse, an issuer that is not https
 * unless it is on loopback, ...). */
int oidc_configure(const struct oidc_settings *s, char *err, size_t err_len);
bool oidc_enabled(void);
/* Reads the key file, or starts the fetching thread, which fetches at once, and waits for that
 * first fetch up to OIDC_START_WAIT_MS: a werklabd started beside a provider that answers takes
 * tokens from its first request on, and one that does not answer delays the start by that much
 * at most. 0, or -1 with a message logged (an unreadable or invalid key file). Discovery
 * failures are not fatal: they are logged and retried, and tokens get OIDC_NO_KEYS meanwhile. */
int oidc_start(void);
void oidc_stop(void);
/* True once a key set was ever had (for /readyz and the 503). */
bool oidc_has_keys(void);

enum oidc_result {
    OIDC_OK,
    OIDC_REFUSED, /* not valid: reason says why */
    OIDC_NO_ROLE, /* valid, but no claim value maps to a role */
    OIDC_NO_KEYS, /* no key set was ever fetched */
};

struct oidc_person {
    unsigned role; /* one enum role bit (auth.h) */
    char subject[256];
    char client[128]; /* azp, else client_id */
    char name[128];   /* name, else preferred_username */
    char email[256];
    bool email_verified;
    int64_t expires_at; /* exp */
    /* Partner: the municipalities claim was present (a partner limited to these codes). */
    bool limited;
    int n_codes;
    char codes[OIDC_MAX_CODES][8]; /* "GM0297" */
};

/* Verifies token (a JWT-shaped Bearer value) and fills person. *reason says why on anything
 * but OIDC_OK (static text for the log, never the token). */
enum oidc_result oidc_verify(const char *token, struct oidc_person *person, const char **reason);

#endif

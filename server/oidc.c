#include "oidc.h"

#include "auth.h"
#include "jwt.h"
#include "log.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DISCOVERY_PATH    "/.well-known/openid-configuration"
#define FETCH_MAX_BYTES   (1024 * 1024) /* a discovery document or key set larger is refused */
#define CONNECT_TIMEOUT_S 5
#define REQUEST_TIMEOUT_S 10
#define RETRY_FIRST_S     5 /* after a failed fetch; doubles up to OIDC_REFRESH_S */
#define MAX_ROLE_MAP      64

struct role_entry {
    char *value; /* a value of the roles claim */
    unsigned role;
};

/* The settings, set once by oidc_configure() before any thread reads them. */
static struct {
    bool enabled;
    char *issuer;
    char *audience;
    char *jwks_file; /* NULL: discovery */
    char *roles_claim;
    char *municipalities_claim; /* NULL: not limited by token */
    char *user_agent;
    struct role_entry map[MAX_ROLE_MAP];
    size_t n_map;
} cfg;

/* The key set and the fetcher's state, under lock. begun and fetched count fetches started and
 * finished (good or not): a request waits for the first fetch begun after it asked. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake; /* the fetcher: a kid was asked for, or stop */
static pthread_cond_t done; /* requests: a fetch finished */
static struct jwks *keys;   /* NULL until a set was had */
static bool stopping;
static bool kid_wanted; /* a request asked for a fetch */
static uint64_t begun, fetched;
static uint64_t kid_target; /* the fetch that answers the last ask: done when fetched >= it */
static int64_t last_kid_fetch_ms = -1; /* monotonic; -1: never */
static pthread_t fetcher;
static bool fetcher_running;
static bool curl_ready;

/* ------------------------------------------------------------------ settings */

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void forget_settings(void)
{
    free(cfg.issuer);
    free(cfg.audience);
    free(cfg.jwks_file);
    free(cfg.roles_claim);
    free(cfg.municipalities_claim);
    free(cfg.user_agent);
    for (size_t i = 0; i < cfg.n_map; i++)
        free(cfg.map[i].value);
    memset(&cfg, 0, sizeof cfg);
}

static bool given(const char *s)
{
    return s && *s;
}

/* https, or http only to this machine (a provider on loopback, as in the tests): a token's
 * keys must not come over a network in the clear. */
static bool url_allowed(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *user = NULL;
    bool ok = false;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        bool has_user = curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK;
        if (strcmp(scheme, "https") == 0)
            ok = !has_user;
        else if (strcmp(scheme, "http") == 0)
            ok = !has_user && (strcmp(host, "127.0.0.1") == 0 || strcmp(host, "[::1]") == 0 ||
                               strcmp(host, "localhost") == 0);
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_url_cleanup(u);
    return ok;
}

/* "value=role,value=role": values are taken as written, around them spaces are dropped. */
static int parse_role_map(const char *text, char *err, size_t err_len)
{
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, ",");
        const char *eq = memchr(p, '=', n);
        const char *v = p, *v_end = eq ? eq : p + n;
        while (v < v_end && *v == ' ')
            v++;
        while (v_end > v && v_end[-1] == ' ')
            v_end--;
        char role[16] = "";
        if (eq) {
            const char *r = eq + 1, *r_end = p + n;
            while (r < r_end && *r == ' ')
                r++;
            while (r_end > r && r_end[-1] == ' ')
                r_end--;
            if ((size_t)(r_end - r) < sizeof role)
                memcpy(role, r, (size_t)(r_end - r));
        }
        unsigned bit = auth_role_parse(role);
        if (!eq || v == v_end || !bit) {
            snprintf(err, err_len,
                     "WERKLAB_OIDC_ROLE_MAP: '%.*s' is not value=role with a role of admin, "
                     "staff, partner or trainer",
                     (int)n, p);
            return -1;
        }
        if (cfg.n_map == MAX_ROLE_MAP) {
            snprintf(err, err_len, "WERKLAB_OIDC_ROLE_MAP: more than %d entries", MAX_ROLE_MAP);
            return -1;
        }
        cfg.map[cfg.n_map].value = strndup(v, (size_t)(v_end - v));
        cfg.map[cfg.n_map++].role = bit;
        p += n + (p[n] == ',');
    }
    if (cfg.n_map == 0) {
        snprintf(err, err_len,
                 "WERKLAB_OIDC_ROLE_MAP is needed with an issuer: which value of "
                 "the roles claim gives which role");
        return -1;
    }
    return 0;
}

int oidc_configure(const struct oidc_settings *s, char *err, size_t err_len)
{
    forget_settings();
    if (!given(s->issuer)) {
        const char *stray = given(s->audience)               ? "WERKLAB_OIDC_AUDIENCE"
                            : given(s->jwks_file)            ? "WERKLAB_OIDC_JWKS_FILE"
                            : given(s->role_map)             ? "WERKLAB_OIDC_ROLE_MAP"
                            : given(s->municipalities_claim) ? "WERKLAB_OIDC_MUNICIPALITIES_CLAIM"
                                                             : NULL;
        if (stray) {
            snprintf(err, err_len, "%s is set, but WERKLAB_OIDC_ISSUER is not", stray);
            return -1;
        }
        return 0;
    }
    if (!url_allowed(s->issuer)) {
        snprintf(err, err_len,
                 "WERKLAB_OIDC_ISSUER must be an https URL (http only on loopback: 127.0.0.1, "
                 "::1, localhost): '%s'",
                 s->issuer);
        return -1;
    }
    if (!given(s->audience)) {
        snprintf(err, err_len,
                 "WERKLAB_OIDC_AUDIENCE is needed with an issuer: the audience "
                 "tokens for werklabd carry");
        return -1;
    }
    if (parse_role_map(given(s->role_map) ? s->role_map : "", err, err_len) < 0) {
        forget_settings();
        return -1;
    }
    cfg.issuer = strdup(s->issuer);
    cfg.audience = strdup(s->audience);
    cfg.jwks_file = given(s->jwks_file) ? strdup(s->jwks_file) : NULL;
    cfg.roles_claim = strdup(given(s->roles_claim) ? s->roles_claim : "roles");
    cfg.municipalities_claim =
        given(s->municipalities_claim) ? strdup(s->municipalities_claim) : NULL;
    cfg.user_agent = strdup(given(s->user_agent) ? s->user_agent : "werklabd");
    cfg.enabled = true;
    return 0;
}

bool oidc_enabled(void)
{
    return cfg.enabled;
}

/* ------------------------------------------------------------------ keys */

static void keep_keys(struct jwks *set)
{
    pthread_mutex_lock(&lock);
    struct jwks *old = keys;
    keys = set;
    pthread_mutex_unlock(&lock);
    jwks_decref(old);
}

bool oidc_has_keys(void)
{
    pthread_mutex_lock(&lock);
    bool has = keys != NULL;
    pthread_mutex_unlock(&lock);
    return has;
}

struct body {
    char *data;
    size_t len;
    bool too_large;
};

static size_t take_bytes(char *ptr, size_t size, size_t n, void *userdata)
{
    struct body *b = userdata;
    size_t add = size * n;
    if (b->len + add > FETCH_MAX_BYTES) {
        b->too_large = true;
        return 0; /* curl stops */
    }
    char *grown = realloc(b->data, b->len + add + 1);
    if (!grown)
        return 0;
    memcpy(grown + b->len, ptr, add);
    b->data = grown;
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

/* Stops a transfer under way when the server stops. */
static int still_wanted(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                        curl_off_t ulnow)
{
    (void)userdata, (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    pthread_mutex_lock(&lock);
    bool stop = stopping;
    pthread_mutex_unlock(&lock);
    return stop ? 1 : 0;
}

/* GETs url into b (NUL-terminated); 0, or -1 with why in err. */
static int http_get(const char *url, struct body *b, char *err, size_t err_len)
{
    *b = (struct body){0};
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(err, err_len, "cannot make a transfer");
        return -1;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)REQUEST_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)FETCH_MAX_BYTES);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, cfg.user_agent);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, take_bytes);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, still_wanted);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (rc == CURLE_OK && status == 200 && b->data)
        return 0;
    if (b->too_large || rc == CURLE_FILESIZE_EXCEEDED)
        snprintf(err, err_len, "%s: larger than %d bytes", url, FETCH_MAX_BYTES);
    else if (rc != CURLE_OK)
        snprintf(err, err_len, "%s: %s", url, curl_easy_strerror(rc));
    else
        snprintf(err, err_len, "%s: answered %ld", url, status);
    free(b->data);
    *b = (struct body){0};
    return -1;
}

/* The discovery document, then the key set it names. The new set, or NULL with why in err. */
static struct jwks *fetch_keys(char *err, size_t err_len)
{
    size_t n = strlen(cfg.issuer);
    if (n > 0 && cfg.issuer[n - 1] == '/')
        n--;
    char *url = NULL;
    if (asprintf(&url, "%.*s%s", (int)n, cfg.issuer, DISCOVERY_PATH) < 0) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    struct body b;
    int rc = http_get(url, &b, err, err_len);
    free(url);
    if (rc < 0)
        return NULL;
    json_error_t jerr;
    json_t *doc = json_loadb(b.data, b.len, 0, &jerr);
    free(b.data);
    const char *issuer = json_string_value(json_object_get(doc, "issuer"));
    const char *jwks_uri = json_string_value(json_object_get(doc, "jwks_uri"));
    struct jwks *set = NULL;
    if (!json_is_object(doc)) {
        snprintf(err, err_len, "the discovery document is not a JSON object");
    } else if (!issuer || strcmp(issuer, cfg.issuer) != 0) {
        snprintf(err, err_len,
                 "the discovery document names another issuer than WERKLAB_OIDC_ISSUER");
    } else if (!jwks_uri || !url_allowed(jwks_uri)) {
        snprintf(err, err_len,
                 "the discovery document has no jwks_uri that is https (or http "
                 "on loopback)");
    } else if (http_get(jwks_uri, &b, err, err_len) == 0) {
        char why[256];
        set = jwks_parse(b.data, b.len, why, sizeof why);
        if (!set)
            snprintf(err, err_len, "the key set of %s: %s", jwks_uri, why);
        free(b.data);
    }
    json_decref(doc);
    return set;
}

static void fetch_finished(void)
{
    pthread_mutex_lock(&lock);
    fetched++;
    pthread_cond_broadcast(&done);
    pthread_mutex_unlock(&lock);
}

/* The monotonic time ms from now, for pthread_cond_timedwait on the conditions above. */
static struct timespec deadline_in(unsigned ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    return until;
}

/* Waits, under lock, until fetch number target has finished, stop, or until. */
static bool wait_for_fetch(uint64_t target, const struct timespec *until)
{
    while (fetched < target && !stopping)
        if (pthread_cond_timedwait(&done, &lock, until) == ETIMEDOUT)
            break;
    return fetched >= target;
}

static void *fetch_loop(void *arg)
{
    (void)arg;
    unsigned retry_s = RETRY_FIRST_S;
    for (;;) {
        pthread_mutex_lock(&lock);
        begun++;
        kid_wanted = false;
        pthread_mutex_unlock(&lock);
        char err[512] = "";
        struct jwks *set = fetch_keys(err, sizeof err);
        unsigned wait_s;
        if (set) {
            log_event("info", "keys of the OpenID provider fetched: %zu", jwks_size(set));
            keep_keys(set);
            retry_s = RETRY_FIRST_S;
            wait_s = OIDC_REFRESH_S;
        } else {
            bool had = oidc_has_keys();
            log_event("warning", "cannot fetch the OpenID provider's keys (%s); %s, again in %u s",
                      err, had ? "the keys there were stay" : "tokens are not accepted yet",
                      retry_s);
            wait_s = retry_s;
            retry_s = retry_s * 2 > OIDC_REFRESH_S ? OIDC_REFRESH_S : retry_s * 2;
        }
        fetch_finished();

        struct timespec until = deadline_in(wait_s * 1000);
        pthread_mutex_lock(&lock);
        while (!stopping && !kid_wanted)
            if (pthread_cond_timedwait(&wake, &lock, &until) == ETIMEDOUT)
                break;
        bool stop = stopping;
        pthread_mutex_unlock(&lock);
        if (stop)
            return NULL;
    }
}

static int read_key_file(void)
{
    FILE *f = fopen(cfg.jwks_file, "rb");
    if (!f) {
        log_event("error", "cannot read WERKLAB_OIDC_JWKS_FILE %s: %s", cfg.jwks_file,
                  strerror(errno));
        return -1;
    }
    char *text = malloc(FETCH_MAX_BYTES + 1);
    size_t n = text ? fread(text, 1, FETCH_MAX_BYTES + 1, f) : 0;
    bool failed = ferror(f) || !text;
    fclose(f);
    char err[256] = "too large";
    struct jwks *set = failed || n > FETCH_MAX_BYTES ? NULL : jwks_parse(text, n, err, sizeof err);
    free(text);
    if (!set) {
        log_event("error", "WERKLAB_OIDC_JWKS_FILE %s is not a usable key set: %s", cfg.jwks_file,
                  err);
        return -1;
    }
    log_event("info", "keys of the OpenID provider read from %s: %zu", cfg.jwks_file,
              jwks_size(set));
    keep_keys(set);
    return 0;
}

int oidc_start(void)
{
    if (!cfg.enabled)
        return 0;
    if (cfg.jwks_file)
        return read_key_file();
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_event("error", "cannot start libcurl");
        return -1;
    }
    curl_ready = true;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&wake, &attr);
    pthread_cond_init(&done, &attr);
    pthread_condattr_destroy(&attr);
    stopping = false;
    if (pthread_create(&fetcher, NULL, fetch_loop, NULL) != 0) {
        log_event("error", "cannot start the thread that fetches the OpenID provider's keys");
        return -1;
    }
    fetcher_running = true;
    struct timespec until = deadline_in(OIDC_START_WAIT_MS);
    pthread_mutex_lock(&lock);
    wait_for_fetch(1, &until);
    pthread_mutex_unlock(&lock);
    return 0;
}

void oidc_stop(void)
{
    if (fetcher_running) {
        pthread_mutex_lock(&lock);
        stopping = true;
        pthread_cond_broadcast(&wake);
        pthread_cond_broadcast(&done);
        pthread_mutex_unlock(&lock);
        pthread_join(fetcher, NULL);
        fetcher_running = false;
        pthread_cond_destroy(&wake);
        pthread_cond_destroy(&done);
    }
    if (curl_ready)
        curl_global_cleanup();
    curl_ready = false;
    keep_keys(NULL);
    forget_settings();
}

/* The key set for a token whose kid the set does not hold: asks the fetcher, at most once per
 * OIDC_KID_REFRESH_S, and waits for that fetch (or one already under way) up to
 * OIDC_KID_WAIT_MS. NULL when there is nothing newer to try. */
static struct jwks *keys_after_fetch(void)
{
    if (!fetcher_running)
        return NULL; /* a key file: nothing to fetch */
    pthread_mutex_lock(&lock);
    int64_t now = monotonic_ms();
    bool wait = fetched < kid_target; /* another request's ask, not answered yet */
    if (!wait && (last_kid_fetch_ms < 0 || now - last_kid_fetch_ms >= OIDC_KID_REFRESH_S * 1000)) {
        last_kid_fetch_ms = now;
        kid_wanted = true;
        kid_target = begun + 1;
        pthread_cond_signal(&wake);
        wait = true;
    }
    struct jwks *set = NULL;
    if (wait) {
        struct timespec until = deadline_in(OIDC_KID_WAIT_MS);
        if (wait_for_fetch(kid_target, &until))
            set = jwks_incref(keys);
    }
    pthread_mutex_unlock(&lock);
    return set;
}

/* ------------------------------------------------------------------ claims */

/* The value at a dotted path ("realm_access.roles") in claims; NULL when absent. */
static json_t *claim_at(json_t *claims, const char *path)
{
    json_t *at = claims;
    for (const char *p = path; at;) {
        size_t n = strcspn(p, ".");
        if (!json_is_object(at))
            return NULL;
        at = json_object_getn(at, p, n);
        if (!p[n])
            break;
        p += n + 1;
    }
    return at;
}

/* Copies the string claim name into out (out_len bytes with the NUL). false when it is there
 * and is not a string or is too long; an absent claim leaves out empty. */
static bool copy_claim(json_t *claims, const char *name, char *out, size_t out_len)
{
    json_t *v = json_object_get(claims, name);
    out[0] = '\0';
    if (!v)
        return true;
    if (!json_is_string(v) || json_string_length(v) >= out_len ||
        strlen(json_string_value(v)) != json_string_length(v))
        return false;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return true;
}

static int role_rank(unsigned role)
{
    switch (role) {
    case ROLE_ADMIN: return 4;
    case ROLE_STAFF: return 3;
    case ROLE_TRAINER: return 2;
    case ROLE_PARTNER: return 1;
    default: return 0;
    }
}

static unsigned mapped_role(const char *value)
{
    for (size_t i = 0; i < cfg.n_map; i++)
        if (strcmp(cfg.map[i].value, value) == 0)
            return cfg.map[i].role;
    return 0;
}

/* The highest role the roles claim maps to; 0 with *reason when none. */
static unsigned role_of(json_t *claims, const char **reason)
{
    json_t *v = claim_at(claims, cfg.roles_claim);
    if (!v) {
        *reason = "token has no roles claim";
        return 0;
    }
    unsigned best = 0;
    if (json_is_string(v)) {
        best = mapped_role(json_string_value(v));
    } else if (json_is_array(v)) {
        if (json_array_size(v) == 0) {
            *reason = "token's roles claim is empty";
            return 0;
        }
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
        {
            if (!json_is_string(item)) {
                *reason = "token's roles claim is not a list of strings";
                return 0;
            }
            unsigned r = mapped_role(json_string_value(item));
            if (role_rank(r) > role_rank(best))
                best = r;
        }
    } else {
        *reason = "token's roles claim is not a list of strings";
        return 0;
    }
    if (!best)
        *reason = "token's roles map to no role";
    return best;
}

static bool is_code(const char *s)
{
    return strlen(s) == 6 && s[0] == 'G' && s[1] == 'M' && strspn(s + 2, "0123456789") == 4;
}

/* A partner's municipalities claim into person; false when it is there and is not a list of
 * GM codes. */
static bool codes_of(json_t *claims, struct oidc_person *person)
{
    if (!cfg.municipalities_claim)
        return true;
    json_t *v = claim_at(claims, cfg.municipalities_claim);
    if (!v)
        return true;
    if (!json_is_array(v) || json_array_size(v) > OIDC_MAX_CODES)
        return false;
    person->limited = true;
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item) || !is_code(json_string_value(item)))
            return false;
        memcpy(person->codes[person->n_codes++], json_string_value(item), 7);
    }
    return true;
}

static enum oidc_result person_of(json_t *claims, struct oidc_person *person, const char **reason)
{
    json_t *exp = json_object_get(claims, "exp");
    person->expires_at = (int64_t)json_number_value(exp);
    if (!copy_claim(claims, "sub", person->subject, sizeof person->subject) ||
        !person->subject[0]) {
        *reason = "token's sub is missing, not a string or too long";
        return OIDC_REFUSED;
    }
    bool by_azp = json_object_get(claims, "azp") != NULL;
    if (!copy_claim(claims, by_azp ? "azp" : "client_id", person->client, sizeof person->client)) {
        *reason = "token's azp or client_id is not a string or too long";
        return OIDC_REFUSED;
    }
    bool by_name = json_object_get(claims, "name") != NULL;
    if (!copy_claim(claims, by_name ? "name" : "preferred_username", person->name,
                    sizeof person->name)) {
        *reason = "token's name or preferred_username is not a string or too long";
        return OIDC_REFUSED;
    }
    if (!copy_claim(claims, "email", person->email, sizeof person->email)) {
        *reason = "token's email is not a string or too long";
        return OIDC_REFUSED;
    }
    person->email_verified = json_is_true(json_object_get(claims, "email_verified"));
    person->role = role_of(claims, reason);
    if (!person->role)
        return OIDC_NO_ROLE;
    if (person->role == ROLE_PARTNER && !codes_of(claims, person)) {
        *reason = "token's municipalities claim is not a list of GM codes";
        return OIDC_REFUSED;
    }
    return OIDC_OK;
}

enum oidc_result oidc_verify(const char *token, struct oidc_person *person, const char **reason)
{
    memset(person, 0, sizeof *person);
    if (!cfg.enabled) {
        *reason = "tokens are not accepted";
        return OIDC_REFUSED;
    }
    pthread_mutex_lock(&lock);
    struct jwks *set = jwks_incref(keys);
    pthread_mutex_unlock(&lock);
    if (!set) {
        *reason = "no keys of the OpenID provider yet";
        return OIDC_NO_KEYS;
    }
    struct jwt_expect expect = {.issuer = cfg.issuer,
                                .audience = cfg.audience,
                                .now = (int64_t)time(NULL),
                                .leeway_s = OIDC_LEEWAY_S};
    json_t *claims = NULL;
    enum jwt_result r = jwt_verify(token, set, &expect, &claims);
    if (r == JWT_UNKNOWN_KEY) {
        struct jwks *newer = keys_after_fetch();
        if (newer) {
            expect.now = (int64_t)time(NULL);
            r = jwt_verify(token, newer, &expect, &claims);
            jwks_decref(newer);
        }
    }
    jwks_decref(set);
    if (r != JWT_OK) {
        *reason = jwt_reason(r);
        return OIDC_REFUSED;
    }
    enum oidc_result result = person_of(claims, person, reason);
    json_decref(claims);
    return result;
}

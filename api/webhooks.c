/* webhooks: the sender (webhooks.h says what it guarantees and how). */
#include "webhooks.h"

#include "changes.h"
#include "crypto.h"
#include "db.h"
#include "http.h"
#include "jsonw.h"
#include "log.h"
#include "metrics.h"
#include "netguard.h"
#include "resource.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOCK_CLASS     "22341" /* the advisory lock class of webhook subscriptions */
#define MAX_RETRY      16      /* steps of the retry schedule */
#define SELF_TIMEOUT_S 10      /* reading an object from this server */
#define AGE_EVERY_MS   5000    /* how often the oldest undelivered event's age is measured */

/* The subscriptions due now, the ones waiting longest first. */
static const char SQL_DUE[] =
    "SELECT id FROM webhook_subscriptions WHERE enabled AND coalesce(next_attempt_at, "
    "'-infinity') <= now() ORDER BY next_attempt_at NULLS FIRST, id LIMIT $1::integer";
static const char SQL_LOCK[] = "SELECT pg_try_advisory_lock(" LOCK_CLASS ", hashtext($1))";
static const char SQL_UNLOCK[] = "SELECT pg_advisory_unlock(" LOCK_CLASS ", hashtext($1))";

/* Subscription $1's next entry, read under its lock so that the position is the latest one
 * acknowledged by any instance; the feed's own rule for what may be read (api/changes.c). */
static const char SQL_NEXT[] =
    "SELECT s.url, s.secret, CASE WHEN s.previous_secret_until > now() THEN s.previous_secret "
    "END, s.view_key, c.txid::text, c.seq, c.type, c.id, c.op, c.at, c.parent_id, s.attempts "
    "FROM webhook_subscriptions s CROSS JOIN LATERAL (SELECT * FROM changes c "
    "WHERE (c.txid, c.seq) > (s.position_txid, s.position_seq) "
    "AND c.txid < pg_snapshot_xmin(pg_current_snapshot()) AND webhook_selects(s, c) "
    "ORDER BY c.txid, c.seq LIMIT 1) c "
    "WHERE s.id = $1 AND s.enabled AND coalesce(s.next_attempt_at, '-infinity') <= now()";

/* Acknowledged: the attempt, and the position past the entry ($2, $3), never backwards. */
static const char SQL_DELIVERED[] =
    "WITH attempt AS (INSERT INTO webhook_deliveries (subscription_id, webhook_id, event, status, "
    "duration_ms) VALUES ($1, $4, $5, $6::integer, $7::integer)) "
    "UPDATE webhook_subscriptions SET position_txid = $2::xid8, position_seq = $3::bigint, "
    "last_success_at = now(), failing_since = NULL, attempts = 0, next_attempt_at = NULL "
    "WHERE id = $1 AND (position_txid, position_seq) < ($2::xid8, $3::bigint)";

/* Not acknowledged: the attempt, and the next one in $6 seconds. */
static const char SQL_FAILED[] =
    "WITH s AS (UPDATE webhook_subscriptions SET attempts = attempts + 1, "
    "last_failure_at = now(), last_error = $4, failing_since = coalesce(failing_since, now()), "
    "next_attempt_at = now() + make_interval(secs => $6::double precision) WHERE id = $1 "
    "RETURNING next_attempt_at) "
    "INSERT INTO webhook_deliveries (subscription_id, webhook_id, event, status, error, "
    "duration_ms, next_attempt_at) SELECT $1, $2, $3, $5::integer, $4, $7::integer, "
    "s.next_attempt_at FROM s";

/* Three days of nothing but failures: disabled, saying why, until an administrator enables it
 * again (which resumes at the position: migrations/0012_webhooks.sql). */
static const char SQL_DISABLE[] =
    "UPDATE webhook_subscriptions SET enabled = false, next_attempt_at = NULL, "
    "disabled_reason = 'every delivery failed for 3 days since ' || "
    "to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') || "
    "'; the last: ' || coalesce(last_error, 'unknown') "
    "WHERE id = $1 AND enabled AND failing_since <= now() - interval '3 days'";

/* A subscription whose position the feed's pruning passed (disabled longer than the feed keeps
 * its entries) would skip what was pruned without a word: it is disabled, saying so. */
static const char SQL_BEHIND[] =
    "UPDATE webhook_subscriptions s SET enabled = false, next_attempt_at = NULL, "
    "disabled_reason = 'the change feed no longer holds the events after its position (kept "
    "for less time than the subscription was disabled); enabling it resumes at the oldest it "
    "holds' FROM changes_horizon h WHERE s.id = $1 AND s.enabled "
    "AND (s.position_txid, s.position_seq) < (h.txid, h.seq)";

/* How long the oldest event not yet delivered to an enabled subscription has waited. */
static const char SQL_OLDEST[] =
    "SELECT coalesce(extract(epoch FROM now() - min(c.at)), 0)::bigint "
    "FROM webhook_subscriptions s CROSS JOIN LATERAL (SELECT c.at FROM changes c "
    "WHERE (c.txid, c.seq) > (s.position_txid, s.position_seq) "
    "AND c.txid < pg_snapshot_xmin(pg_current_snapshot()) AND webhook_selects(s, c) "
    "ORDER BY c.txid, c.seq LIMIT 1) c WHERE s.enabled";

/* One delivery in flight. */
struct flight {
    bool used;
    char subscription[37];
    char webhook_id[64];
    char event[64];
    char txid[24], seq[24];
    int attempts; /* failed attempts at this entry so far: the next wait's step */
    CURL *curl;
    struct curl_slist *headers;
    char *body;
    struct netguard_verdict verdict;
    size_t answered; /* bytes of the answer seen (read up to WEBHOOKS_ANSWER_MAX) */
    int64_t started_ms;
    char error[CURL_ERROR_SIZE];
};

static unsigned retry_s[MAX_RETRY];
static int n_retry;
static unsigned timeout_s;
static char self_base[160]; /* "http://127.0.0.1:8080": where this server answers */

static pthread_t thread;
static bool running;
static atomic_bool stopping;
static CURLM *multi;
static PGconn *pg;
static struct flight flights[WEBHOOKS_MAX_IN_FLIGHT];

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int webhooks_configure(const struct config *cfg, char *err, size_t err_len)
{
    n_retry = 0;
    for (const char *p = cfg->webhook_retry; *p;) {
        char *end;
        errno = 0;
        unsigned long s = strtoul(p, &end, 10);
        if (end == p || errno || s == 0 || s > 7 * 86400 || n_retry == MAX_RETRY ||
            (*end && *end != ',')) {
            snprintf(err, err_len,
                     "WERKLAB_WEBHOOK_RETRY must be up to %d numbers of seconds (1 to 604800) "
                     "separated by commas, e.g. 5,60,600,3600,21600,43200",
                     MAX_RETRY);
            return -1;
        }
        retry_s[n_retry++] = (unsigned)s;
        p = *end ? end + 1 : end;
    }
    if (n_retry == 0) {
        snprintf(err, err_len, "WERKLAB_WEBHOOK_RETRY names no wait");
        return -1;
    }
    timeout_s = cfg->webhook_timeout_s;
    return 0;
}

/* ---- the sender's connection ---- */

static bool connected(void)
{
    if (pg && PQstatus(pg) == CONNECTION_OK)
        return true;
    if (pg)
        db_release(pg); /* its advisory locks went with it */
    pg = db_connect_session();
    return pg != NULL;
}

/* Runs sql on the sender's connection; a broken connection is made again next time. */
static enum db_status run(const char *sql, int n, const char *const *params, struct db_result *r)
{
    PGresult *res = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    enum db_status s = db_result_of(r, res, pg);
    if (s != DB_OK)
        log_event("warning", "webhooks: %s", r->message);
    return s;
}

static void run_only(const char *sql, int n, const char *const *params)
{
    struct db_result r;
    run(sql, n, params, &r);
    db_clear(&r);
}

/* ---- one delivery: the object, the body, the signature ---- */

static size_t take_answer(char *ptr, size_t size, size_t n, void *userdata)
{
    buf_append(userdata, ptr, size * n);
    return size * n;
}

/* Appends to out what this server answers GET path with key; returns the status, 0 when it did
 * not answer. */
static long read_object(const char *path, const char *key, struct buf *out)
{
    CURL *c = curl_easy_init();
    if (!c)
        return 0;
    struct buf url = {0}, auth = {0};
    buf_printf(&url, "%s%s", self_base, path);
    buf_printf(&auth, "Authorization: Bearer %s", key);
    struct curl_slist *headers = curl_slist_append(NULL, auth.data);
    headers = curl_slist_append(headers, "Accept: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url.data);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)SELF_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, take_answer);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    buf_free(&url);
    buf_free(&auth);
    buf_putc(out, '\0');
    out->len--;
    return status;
}

/* The body: {"type", "timestamp", "data"}; false with why in err when the object could not be
 * read (the delivery then fails and is tried again). */
static bool make_body(const struct db_result *r, struct buf *body, char *err, size_t err_len)
{
    const char *key = db_value(r, 0, 3), *type = db_value(r, 0, 6), *id = db_value(r, 0, 7),
               *op = db_value(r, 0, 8), *at = db_value(r, 0, 9), *parent = db_value(r, 0, 10);
    struct buf object = {0};
    long status = 404;
    if (strcmp(op, "deleted") != 0) {
        char path[200];
        if (!changes_path(type, id, parent, path, sizeof path)) {
            snprintf(err, err_len, "no path for type %s", type);
            return false;
        }
        status = read_object(path, key, &object);
    }
    bool ok = status == 200 || status == 404;
    if (!ok)
        snprintf(err, err_len, "reading the %s as the subscription's view answered %ld", type,
                 status);
    struct jsonw w;
    jsonw_init(&w, body);
    jsonw_object_begin(&w);
    char event[64];
    snprintf(event, sizeof event, "%s.%s", type, op);
    jsonw_kv_string(&w, "type", event);
    jsonw_key(&w, "timestamp");
    resource_write_timestamp(&w, at);
    jsonw_key(&w, "data");
    json_t *list =
        status == 200 && strcmp(type, "attendance") == 0 ? json_loads(object.data, 0, NULL) : NULL;
    if (list) { /* a session's attendance is a list: named by its session */
        char *items = json_dumps(json_object_get(list, "items"), JSON_COMPACT);
        jsonw_object_begin(&w);
        jsonw_kv_string(&w, "sessionId", id);
        jsonw_key(&w, "attendance");
        jsonw_raw(&w, items ? items : "[]");
        jsonw_object_end(&w);
        free(items);
        json_decref(list);
    } else if (status == 200) {
        jsonw_raw(&w, object.data);
    } else {
        jsonw_object_begin(&w);
        jsonw_kv_string(&w, "id", id);
        jsonw_kv_string(&w, "type", type);
        jsonw_key(&w, "deleted");
        jsonw_bool(&w, true);
        jsonw_object_end(&w);
    }
    jsonw_object_end(&w);
    buf_free(&object);
    return ok;
}

/* "v1,<base64 HMAC-SHA-256 of id.timestamp.body>" with secret ("whsec_<base64>") into sig. */
static void sign(const char *secret, const char *to_sign, size_t len, struct buf *sig)
{
    const char *b64 = strncmp(secret, "whsec_", 6) == 0 ? secret + 6 : secret;
    size_t n = strlen(b64);
    unsigned char key[128];
    if (n > 4 * (sizeof key / 3))
        n = 4 * (sizeof key / 3);
    int bytes = EVP_DecodeBlock(key, (const unsigned char *)b64, (int)n);
    if (bytes < 0)
        bytes = 0;
    /* EVP_DecodeBlock counts the padding's bytes as zeros: not part of the key. */
    for (size_t i = n; i > 0 && b64[i - 1] == '='; i--)
        bytes--;
    uint8_t mac[CRYPTO_SHA256_LEN];
    crypto_hmac_sha256(key, (size_t)bytes, to_sign, len, mac);
    unsigned char text[4 * ((CRYPTO_SHA256_LEN + 2) / 3) + 1];
    EVP_EncodeBlock(text, mac, sizeof mac);
    buf_printf(sig, "%sv1,%s", sig->len ? " " : "", (const char *)text);
}

static size_t discard_answer(char *ptr, size_t size, size_t n, void *userdata)
{
    (void)ptr;
    struct flight *f = userdata;
    f->answered += size * n;
    return f->answered > WEBHOOKS_ANSWER_MAX ? 0 : size * n; /* 0: stop reading */
}

static void release(struct flight *f)
{
    if (f->curl) {
        curl_multi_remove_handle(multi, f->curl);
        curl_easy_cleanup(f->curl);
    }
    curl_slist_free_all(f->headers);
    free(f->body);
    const char *params[] = {f->subscription};
    if (pg)
        run_only(SQL_UNLOCK, 1, params);
    *f = (struct flight){0};
}

/* The wait before attempt number `attempts` + 1, with ±20 % jitter so that receivers coming back
 * are not met by every sender at once. */
static double backoff_s(int attempts)
{
    unsigned base = retry_s[attempts < n_retry ? attempts : n_retry - 1];
    uint32_t r;
    crypto_random(&r, sizeof r);
    return base * (0.8 + 0.4 * (r / 4294967296.0));
}

/* Records a failed attempt of f (status 0: no answer) and schedules the next. */
static void failed(struct flight *f, long status, const char *error, long retry_after, int ms)
{
    const char *id[] = {f->subscription};
    double wait = backoff_s(f->attempts);
    if (retry_after > wait)
        wait = retry_after > 43200 ? 43200 : (double)retry_after;
    char status_text[16], wait_text[32], ms_text[16];
    snprintf(status_text, sizeof status_text, "%ld", status);
    snprintf(wait_text, sizeof wait_text, "%.3f", wait);
    snprintf(ms_text, sizeof ms_text, "%d", ms);
    const char *params[] = {
        f->subscription, f->webhook_id, f->event, error, status ? status_text : NULL,
        wait_text,       ms_text};
    run_only(SQL_FAILED, 7, params);
    run_only(SQL_DISABLE, 1, id);
    metrics_webhook_delivery(status ? "failed" : "unanswered");
}

/* A transfer ended: acknowledged (2xx) or not. */
static void finish(struct flight *f, CURLcode result)
{
    long status = 0, retry_after = 0;
    curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_off_t ra = 0;
    if (curl_easy_getinfo(f->curl, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
        retry_after = (long)ra;
    int ms = (int)(now_ms() - f->started_ms);
    /* An answer longer than WEBHOOKS_ANSWER_MAX is cut off: its status stands. */
    bool answered = result == CURLE_OK || (result == CURLE_WRITE_ERROR && status > 0);
    if (answered && status >= 200 && status < 300) {
        char status_text[16], ms_text[16];
        snprintf(status_text, sizeof status_text, "%ld", status);
        snprintf(ms_text, sizeof ms_text, "%d", ms);
        const char *params[] = {f->subscription, f->txid,     f->seq, f->webhook_id,
                                f->event,        status_text, ms_text};
        run_only(SQL_DELIVERED, 7, params);
        metrics_webhook_delivery("delivered");
    } else {
        char error[CURL_ERROR_SIZE + 64];
        if (f->verdict.refused > 0)
            snprintf(error, sizeof error, "%s", f->verdict.reason);
        else if (!answered)
            snprintf(error, sizeof error, "%s",
                     f->error[0] ? f->error : curl_easy_strerror(result));
        else
            snprintf(error, sizeof error, "the receiver answered %ld", status);
        failed(f, answered ? status : 0, error, status == 429 ? retry_after : 0, ms);
    }
    release(f);
}

/* Starts the delivery of subscription id's next entry, when it has one and no other instance
 * is delivering to it. */
static void start(const char *id)
{
    for (int i = 0; i < WEBHOOKS_MAX_IN_FLIGHT; i++)
        if (flights[i].used && strcmp(flights[i].subscription, id) == 0)
            return;
    struct flight *f = NULL;
    for (int i = 0; i < WEBHOOKS_MAX_IN_FLIGHT && !f; i++)
        if (!flights[i].used)
            f = &flights[i];
    if (!f)
        return;
    const char *params[] = {id};
    struct db_result r;
    bool locked = run(SQL_LOCK, 1, params, &r) == DB_OK && db_value(&r, 0, 0)[0] == 't';
    db_clear(&r);
    if (!locked)
        return;
    *f = (struct flight){.used = true, .started_ms = now_ms()};
    snprintf(f->subscription, sizeof f->subscription, "%s", id);
    run_only(SQL_BEHIND, 1, params);
    if (run(SQL_NEXT, 1, params, &r) != DB_OK || db_rows(&r) == 0) {
        db_clear(&r);
        release(f);
        return;
    }
    snprintf(f->txid, sizeof f->txid, "%s", db_value(&r, 0, 4));
    snprintf(f->seq, sizeof f->seq, "%s", db_value(&r, 0, 5));
    f->attempts = atoi(db_value(&r, 0, 11));
    snprintf(f->webhook_id, sizeof f->webhook_id, "msg_%s_%s", f->txid, f->seq);
    snprintf(f->event, sizeof f->event, "%s.%s", db_value(&r, 0, 6), db_value(&r, 0, 8));
    struct buf body = {0};
    char why[200] = "";
    if (!make_body(&r, &body, why, sizeof why)) {
        buf_free(&body);
        db_clear(&r);
        failed(f, 0, why, 0, (int)(now_ms() - f->started_ms));
        release(f);
        return;
    }
    f->body = buf_detach(&body);

    char timestamp[24];
    snprintf(timestamp, sizeof timestamp, "%lld", (long long)time(NULL));
    struct buf to_sign = {0}, sig = {0}, header = {0};
    buf_printf(&to_sign, "%s.%s.%s", f->webhook_id, timestamp, f->body);
    sign(db_value(&r, 0, 1), to_sign.data, to_sign.len, &sig);
    if (db_value(&r, 0, 2))
        sign(db_value(&r, 0, 2), to_sign.data, to_sign.len, &sig);
    f->headers = curl_slist_append(f->headers, "Content-Type: application/json");
    buf_printf(&header, "webhook-id: %s", f->webhook_id);
    f->headers = curl_slist_append(f->headers, header.data);
    buf_reset(&header);
    buf_printf(&header, "webhook-timestamp: %s", timestamp);
    f->headers = curl_slist_append(f->headers, header.data);
    buf_reset(&header);
    buf_printf(&header, "webhook-signature: %s", sig.data);
    f->headers = curl_slist_append(f->headers, header.data);
    f->headers = curl_slist_append(f->headers, "Expect:"); /* no 100-continue round trip */
    buf_free(&to_sign);
    buf_free(&sig);
    buf_free(&header);

    f->curl = curl_easy_init();
    bool ready = f->curl && netguard_setup(f->curl, db_value(&r, 0, 0), &f->verdict) == 0;
    db_clear(&r);
    if (!ready) {
        failed(f, 0, f->verdict.reason[0] ? f->verdict.reason : "cannot make a transfer", 0, 0);
        release(f);
        return;
    }
    curl_easy_setopt(f->curl, CURLOPT_POSTFIELDS, f->body);
    curl_easy_setopt(f->curl, CURLOPT_HTTPHEADER, f->headers);
    curl_easy_setopt(f->curl, CURLOPT_USERAGENT, "werklabd/" HTTP_API_VERSION);
    curl_easy_setopt(f->curl, CURLOPT_CONNECTTIMEOUT, (long)WEBHOOKS_CONNECT_S);
    curl_easy_setopt(f->curl, CURLOPT_TIMEOUT, (long)timeout_s);
    curl_easy_setopt(f->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(f->curl, CURLOPT_WRITEFUNCTION, discard_answer);
    curl_easy_setopt(f->curl, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(f->curl, CURLOPT_ERRORBUFFER, f->error);
    curl_easy_setopt(f->curl, CURLOPT_PRIVATE, f);
    curl_multi_add_handle(multi, f->curl);
}

static void start_due(void)
{
    int free_slots = 0;
    for (int i = 0; i < WEBHOOKS_MAX_IN_FLIGHT; i++)
        free_slots += !flights[i].used;
    if (free_slots == 0)
        return;
    char limit[16];
    snprintf(limit, sizeof limit, "%d", free_slots);
    const char *params[] = {limit};
    struct db_result r;
    if (run(SQL_DUE, 1, params, &r) == DB_OK)
        for (int i = 0; i < db_rows(&r) && connected(); i++)
            start(db_value(&r, i, 0));
    db_clear(&r);
}

static void measure_age(void)
{
    struct db_result r;
    if (run(SQL_OLDEST, 0, NULL, &r) == DB_OK && db_rows(&r) == 1)
        metrics_webhook_oldest(atoll(db_value(&r, 0, 0)));
    db_clear(&r);
}

static void *sender(void *arg)
{
    (void)arg;
    int64_t measured = 0;
    bool busy = false;
    while (!atomic_load(&stopping)) {
        if (!connected()) {
            int n;
            curl_multi_poll(multi, NULL, 0, 1000, &n);
            continue;
        }
        start_due();
        if (now_ms() - measured >= AGE_EVERY_MS) {
            measure_age();
            measured = now_ms();
        }
        int n;
        curl_multi_poll(multi, NULL, 0, busy ? 0 : 1000, &n);
        int still;
        curl_multi_perform(multi, &still);
        busy = false;
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct flight *f = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&f);
            if (f) {
                finish(f, m->data.result);
                busy = true; /* its next entry may be waiting: look again at once */
            }
        }
    }
    for (int i = 0; i < WEBHOOKS_MAX_IN_FLIGHT; i++)
        if (flights[i].used)
            release(&flights[i]);
    if (pg)
        db_release(pg);
    pg = NULL;
    return NULL;
}

int webhooks_start(const struct config *cfg)
{
    /* This server as the sender reaches it: the address it listens on (loopback for a wildcard)
     * and the port it was given (http_port(): also when the configuration said 0). */
    const char *host = cfg->listen_host;
    if (!*host || strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0 || strcmp(host, "[::]") == 0)
        host = "[::1]";
    snprintf(self_base, sizeof self_base,
             strchr(host, ':') && host[0] != '[' ? "http://[%s]:%u" : "http://%s:%u", host,
             http_port());
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(multi = curl_multi_init())) {
        log_event("error", "webhooks: cannot start libcurl");
        return -1;
    }
    atomic_store(&stopping, false);
    if (pthread_create(&thread, NULL, sender, NULL) != 0) {
        log_event("error", "webhooks: cannot start the sender thread");
        return -1;
    }
    running = true;
    return 0;
}

void webhooks_stop(void)
{
    if (!running)
        return;
    atomic_store(&stopping, true);
    curl_multi_wakeup(multi);
    pthread_join(thread, NULL);
    curl_multi_cleanup(multi);
    multi = NULL;
    curl_global_cleanup();
    running = false;
}

/* base64url and list cursors.
 *
 * The whole input is first text for crypto_base64url_decode(), checked against a reference
 * (canonical unpadded base64url is accepted, nothing else, and what is accepted encodes back to
 * itself), and bytes for the encoder. Then it becomes a cursor for GET /v1/municipalities, given
 * to the real resource_list(): as is, or (first byte odd) signed with the server's cursor key so
 * that the payload gets past the signature. A cursor is accepted exactly when its payload is a
 * JSON array of strings [sort, value per sort key, id] for the list's sort order; an accepted
 * cursor leads to the database, which is configured unreachable, so the answer is 503. */
#include "fuzz.h"

#include "api.h"
#include "buf.h"
#include "config.h"
#include "crypto.h"
#include "db.h"
#include "http.h"
#include "resource.h"
#include "router.h"
#include "token.h"

#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#define CURSOR_MAC_LEN TOKEN_MAC_LEN

static const unsigned char cursor_key[] = "werklab fuzzing cursor key, 32 b";
static const struct route *list_route;
static char list_path[] = "/v1/municipalities";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_object_seed(1);
    static const struct config defaults = {.changes_retention_s = 60, .prune_interval_s = 60};
    api_register(&defaults);
    token_set_key(cursor_key, sizeof cursor_key - 1);
    /* A socket directory that does not exist: every query fails at once with DB_UNAVAILABLE. */
    db_configure("host=/nonexistent/werklab-fuzz dbname=fuzz connect_timeout=1", 1000);
    for (size_t i = 0; i < router_count(); i++) {
        const struct route *r = router_at(i);
        if (r->method == HTTP_GET && strcmp(r->pattern, list_path) == 0)
            list_route = r;
    }
    FUZZ_CHECK(list_route != NULL);
    return 0;
}

/* ---- base64url against a reference ---- */

static int value_of(char c)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *p = c ? memchr(alphabet, c, 64) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

static bool reference_canonical(const char *text, size_t len)
{
    if (len % 4 == 1)
        return false;
    for (size_t i = 0; i < len; i++)
        if (value_of(text[i]) < 0)
            return false;
    if (len % 4 == 2)
        return (value_of(text[len - 1]) & 0x0f) == 0;
    if (len % 4 == 3)
        return (value_of(text[len - 1]) & 0x03) == 0;
    return true;
}

static void check_base64url(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    /* Exactly the room the header asks for: ASan reports any byte written past it. */
    uint8_t *out = malloc(size * 3 / 4 + 1);
    FUZZ_CHECK(out != NULL);
    long n = crypto_base64url_decode(text, size, out);
    FUZZ_CHECK((n >= 0) == reference_canonical(text, size));
    if (n >= 0) {
        FUZZ_CHECK((size_t)n <= size * 3 / 4);
        FUZZ_CHECK(crypto_base64url_len((size_t)n) == size);
        char *again = malloc(size + 1);
        FUZZ_CHECK(again != NULL);
        crypto_base64url_encode(out, (size_t)n, again);
        FUZZ_CHECK(memcmp(again, text, size) == 0 && again[size] == '\0');
        free(again);
    }
    free(out);

    size_t len = crypto_base64url_len(size);
    char *encoded = malloc(len + 1);
    uint8_t *back = malloc(size + 1);
    FUZZ_CHECK(encoded != NULL && back != NULL);
    crypto_base64url_encode(data, size, encoded);
    FUZZ_CHECK(strlen(encoded) == len);
    FUZZ_CHECK(crypto_base64url_decode(encoded, len, back) == (long)size);
    FUZZ_CHECK(memcmp(back, data, size) == 0);
    free(encoded);
    free(back);
}

/* ---- cursors through resource_list() ---- */

static const struct {
    const char *query;     /* the sort query value; NULL: none */
    const char *canonical; /* what the cursor must name; NULL: the sort is invalid */
    size_t keys;
} sorts[] = {
    {NULL, "createdAt", 1},
    {"name", "name", 1},
    {"-code", "-code", 1},
    {"province,-name", "province,-name", 2},
    {"updatedAt,code,-name", "updatedAt,code,-name", 3},
    {"nonsense", NULL, 0},
};

/* The reference for read_cursor() after the signature. */
static bool payload_fits(const uint8_t *payload, size_t len, size_t s)
{
    if (len == 0 || !sorts[s].canonical)
        return false;
    json_t *doc = json_loadb((const char *)payload, len, JSON_REJECT_DUPLICATES, NULL);
    bool ok = json_is_array(doc) && json_array_size(doc) == sorts[s].keys + 2;
    for (size_t i = 0; ok && i < sorts[s].keys + 2; i++)
        ok = json_is_string(json_array_get(doc, i));
    ok = ok && strcmp(json_string_value(json_array_get(doc, 0)), sorts[s].canonical) == 0;
    json_decref(doc);
    return ok;
}

static char *signed_cursor(const uint8_t *payload, size_t len)
{
    uint8_t mac[CRYPTO_SHA256_LEN];
    crypto_hmac_sha256(cursor_key, sizeof cursor_key - 1, payload, len, mac);
    size_t text_len = crypto_base64url_len(len);
    char *cursor = xmalloc(text_len + 1 + crypto_base64url_len(CURSOR_MAC_LEN) + 1);
    crypto_base64url_encode(payload, len, cursor);
    cursor[text_len] = '.';
    crypto_base64url_encode(mac, CURSOR_MAC_LEN, cursor + text_len + 1);
    return cursor;
}

/* Lists with cursor and sort; returns the status. */
static int list(const char *cursor, size_t s)
{
    struct request *req = xcalloc(1, sizeof *req);
    req->method = HTTP_GET;
    req->method_name = "GET";
    req->path = list_path;
    req->route = list_route;
    jsonw_init(&req->w, &req->out);
    if (sorts[s].query)
        req->query[req->n_query++] = (struct http_query_arg){"sort", sorts[s].query};
    req->query[req->n_query++] = (struct http_query_arg){"cursor", cursor};

    list_route->handler(req);

    int status = req->status;
    FUZZ_CHECK(status == 400 || status == 503);
    FUZZ_CHECK(jsonw_finished(&req->w));
    json_t *doc = json_loadb(req->out.data, req->out.len, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(json_is_object(doc));
    FUZZ_CHECK(json_integer_value(json_object_get(doc, "status")) == status);
    json_decref(doc);

    pool_free(&req->pool);
    buf_free(&req->out);
    free(req);
    return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 3000)
        return 0;
    check_base64url(data, size);
    if (size == 0)
        return 0;

    size_t s = (data[0] >> 1) % (sizeof sorts / sizeof *sorts);
    const uint8_t *rest = data + 1;
    size_t rest_len = size - 1;
    if (data[0] & 1) {
        char *cursor = signed_cursor(rest, rest_len);
        bool fits = payload_fits(rest, rest_len, s);
        FUZZ_CHECK((list(cursor, s) == 503) == fits);
        free(cursor);
    } else {
        /* Unsigned text is never a cursor of ours (a forged signature is out of reach). */
        char *cursor = xstrndup((const char *)rest, rest_len);
        FUZZ_CHECK(list(cursor, s) == 400);
        free(cursor);
    }
    return 0;
}

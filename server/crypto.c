#include "crypto.h"

#include "validate.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <uuid/uuid.h>

/* libcrypto's one-shot calls: they fail only when OpenSSL itself is broken (out of memory, no
 * provider), and a server that cannot hash cannot check a key or a cursor, so that aborts. */
static void require(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "werklabd: %s failed\n", what);
        abort();
    }
}

/* The algorithms fetched from the provider once: EVP_sha256() and EVP_Q_mac() look them up again
 * on every call, which cost more than hashing a key or signing a cursor. */
static EVP_MD *sha256;
static EVP_MAC *hmac;
static pthread_once_t fetched = PTHREAD_ONCE_INIT;

/* Each thread keeps one HMAC context, keyed with the key it was last given. Setting a key costs
 * two SHA-256 blocks and the provider looking the digest up by name, which was most of the price
 * of signing a cursor; a context keyed already is only reset (EVP_MAC_init without a key). The
 * key is kept to tell whether the next call uses the same one: a server secret, compared with a
 * server secret. Freed when the thread ends. */
#define CACHED_KEY_MAX 64 /* longer keys are hashed first (RFC 2104): they are not cached */

struct hmac_cache {
    EVP_MAC_CTX *ctx;
    size_t key_len;
    bool keyed;
    uint8_t key[CACHED_KEY_MAX];
};

static pthread_key_t hmac_cache_key;

static void hmac_cache_free(void *p)
{
    struct hmac_cache *c = p;
    EVP_MAC_CTX_free(c->ctx);
    OPENSSL_cleanse(c, sizeof *c);
    free(c);
}

static void fetch(void)
{
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    require(sha256 && hmac, "fetching SHA-256 and HMAC");
    require(pthread_key_create(&hmac_cache_key, hmac_cache_free) == 0, "a thread key");
}

void crypto_sha256(const void *data, size_t len, uint8_t out[CRYPTO_SHA256_LEN])
{
    pthread_once(&fetched, fetch);
    unsigned int n = 0;
    require(EVP_Digest(data, len, out, &n, sha256, NULL) == 1 && n == CRYPTO_SHA256_LEN, "SHA-256");
}

/* This thread's HMAC context, made on its first call. */
static struct hmac_cache *thread_hmac(void)
{
    struct hmac_cache *c = pthread_getspecific(hmac_cache_key);
    if (c)
        return c;
    c = calloc(1, sizeof *c);
    require(c != NULL, "HMAC context");
    c->ctx = EVP_MAC_CTX_new(hmac);
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    require(c->ctx && EVP_MAC_CTX_set_params(c->ctx, params) == 1, "HMAC-SHA-256 context");
    require(pthread_setspecific(hmac_cache_key, c) == 0, "HMAC context");
    return c;
}

void crypto_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                        uint8_t out[CRYPTO_SHA256_LEN])
{
    pthread_once(&fetched, fetch);
    /* An empty key is a valid HMAC key (RFC 2104 pads it with zeros); OpenSSL wants a non-NULL
     * pointer for it. */
    static const uint8_t no_key[1];
    struct hmac_cache *c = thread_hmac();
    bool same_key = c->keyed && c->key_len == key_len && memcmp(c->key, key, key_len) == 0;
    int initialised = same_key ? EVP_MAC_init(c->ctx, NULL, 0, NULL)
                               : EVP_MAC_init(c->ctx, key_len ? key : no_key, key_len, NULL);
    c->keyed = false; /* until this call has succeeded with the key */
    size_t n = 0;
    require(initialised == 1 && EVP_MAC_update(c->ctx, data, len) == 1 &&
                EVP_MAC_final(c->ctx, out, &n, CRYPTO_SHA256_LEN) == 1 && n == CRYPTO_SHA256_LEN,
            "HMAC-SHA-256");
    if (key_len <= CACHED_KEY_MAX) {
        if (!same_key)
            memcpy(c->key, key, key_len);
        c->key_len = key_len;
        c->keyed = true;
    }
}

bool crypto_equal(const void *a, const void *b, size_t len)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t diff = 0;
    for (size_t i = 0; i < len; i++)
        diff |= x[i] ^ y[i];
    return diff == 0;
}

/* The kernel's generator rather than RAND_bytes(): it has no state in this process to reseed
 * after a fork, it is ready once the system has booted, and the request ids drawn in bulk by
 * crypto_uuid() need nothing more. */
void crypto_random(void *out, size_t len)
{
    uint8_t *p = out;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n <= 0) {
            perror("werklabd: getrandom");
            abort();
        }
        p += n;
        len -= (size_t)n;
    }
}

void crypto_uuid(char out[37])
{
    /* 256 UUIDs' worth of randomness per getrandom(2): a request id costs no system call. */
    static _Thread_local uint8_t pool[4096];
    static _Thread_local size_t used = sizeof pool;
    if (used + 16 > sizeof pool) {
        crypto_random(pool, sizeof pool);
        used = 0;
    }
    uint8_t *b = pool + used;
    used += 16;
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* variant 10 */
    uuid_unparse_lower(b, out);
}

void crypto_hex(const uint8_t *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * len] = '\0';
}

long crypto_unhex(const char *hex, uint8_t *out, size_t max)
{
    size_t n = strlen(hex);
    if (n % 2 || n / 2 > max)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = validate_hex_digit(hex[2 * i]), lo = validate_hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (long)(n / 2);
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t crypto_base64url_len(size_t len)
{
    return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
}

void crypto_base64url_encode(const uint8_t *data, size_t len, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        out[o++] = b64url[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)data[i] << 16;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
    }
    out[o] = '\0';
}

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long crypto_base64url_decode(const char *text, size_t len, uint8_t *out)
{
    if (len % 4 == 1)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value(text[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* Canonical form only: the bits left over after the last byte must be zero. */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (long)o;
}

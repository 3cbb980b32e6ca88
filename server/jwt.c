/* jwt: the checks of jwt.h in the order the header gives them; libcrypto does the mathematics.
 *
 * Keys become EVP_PKEYs once, in jwks_parse(), built with the provider APIs of OpenSSL 3
 * (EVP_PKEY_fromdata, EVP_PKEY_new_raw_public_key), so that verifying never converts or caches
 * anything inside a shared key: many threads can verify with one set at the same time, each
 * with an EVP_MD_CTX of its own. */
#include "jwt.h"

#include "crypto.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 16384 /* OpenSSL's own limit for a public RSA operation */
#define P256_LEN     32    /* bytes of a P-256 coordinate and of r and s */
#define ED25519_LEN  32    /* bytes of an Ed25519 public key */
#define SIG64_LEN    64    /* ES256 (r || s) and Ed25519 signatures */
#define PSS_SALT_LEN 32    /* RFC 7518 §3.5: the salt is as long as the hash */

enum alg { ALG_RS256, ALG_PS256, ALG_ES256, ALG_EDDSA, ALG_COUNT };
enum kty { KTY_RSA, KTY_EC, KTY_OKP };

static const char *const alg_names[ALG_COUNT] = {"RS256", "PS256", "ES256", "EdDSA"};
static const enum kty alg_kty[ALG_COUNT] = {KTY_RSA, KTY_RSA, KTY_EC, KTY_OKP};

struct jwk {
    char *kid; /* NULL: the key has none */
    enum kty kty;
    int alg; /* the key's own "alg", or -1 when it names none */
    EVP_PKEY *pkey;
};

struct jwks {
    atomic_size_t refs;
    size_t n;
    struct jwk keys[];
};

/* ---- key sets ---- */

static int alg_by_name(const char *name)
{
    for (int a = 0; a < ALG_COUNT; a++)
        if (strcmp(name, alg_names[a]) == 0)
            return a;
    return -1;
}

static void fail(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || err_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* A base64url member of a key into out (room for max bytes); the number of bytes, or -1 when
 * the member is missing, not a string, not canonical base64url, empty or too long. */
static long member_bytes(json_t *key, const char *name, uint8_t *out, size_t max)
{
    const char *text = json_string_value(json_object_get(key, name));
    if (!text)
        return -1;
    size_t len = strlen(text);
    if (len == 0 || len * 3 / 4 > max) /* the decoder writes at most len * 3 / 4 bytes */
        return -1;
    return crypto_base64url_decode(text, len, out);
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

/* For EC: the point is on the curve and not the point at infinity. (Not for RSA: OpenSSL's
 * check there wants e > 2^16, more than a signature needs.) */
static bool public_ok(EVP_PKEY *pkey)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    bool ok = ctx && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

/* Which of the three a key is; -1: a kind this module does not take (left out). */
static int key_kind(json_t *key)
{
    const char *kty = json_string_value(json_object_get(key, "kty"));
    const char *crv = json_string_value(json_object_get(key, "crv"));
    if (!kty)
        return -1;
    if (strcmp(kty, "RSA") == 0)
        return KTY_RSA;
    if (strcmp(kty, "EC") == 0 && crv && strcmp(crv, "P-256") == 0)
        return KTY_EC;
    if (strcmp(kty, "OKP") == 0 && crv && strcmp(crv, "Ed25519") == 0)
        return KTY_OKP;
    return -1;
}

/* 0: the key is built into *pkey; 1: a key to leave out (too weak for us); -1: broken. */
static int rsa_key(json_t *key, EVP_PKEY **pkey)
{
    uint8_t n[RSA_MAX_BITS / 8 + 1], e[8];
    long n_len = member_bytes(key, "n", n, sizeof n);
    long e_len = member_bytes(key, "e", e, sizeof e);
    if (n_len <= 0 || e_len <= 0)
        return -1;
    BIGNUM *bn_n = BN_bin2bn(n, (int)n_len, NULL), *bn_e = BN_bin2bn(e, (int)e_len, NULL);
    int rc = -1;
    if (bn_n && bn_e && BN_is_odd(bn_e) && !BN_is_one(bn_e) && BN_is_odd(bn_n)) {
        int bits = BN_num_bits(bn_n);
        if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
            rc = 1;
        } else {
            OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
            if (bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
                OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1)
                *pkey = from_params("RSA", bld);
            OSSL_PARAM_BLD_free(bld);
            rc = *pkey ? 0 : -1;
        }
    }
    BN_free(bn_n);
    BN_free(bn_e);
    return rc;
}

static int ec_key(json_t *key, EVP_PKEY **pkey)
{
    /* The uncompressed point: 04 || x || y, each coordinate at its full length (RFC 7518
     * §6.2.1.2). */
    uint8_t point[1 + 2 * P256_LEN + 2];
    point[0] = 0x04;
    if (member_bytes(key, "x", point + 1, P256_LEN + 2) != P256_LEN ||
        member_bytes(key, "y", point + 1 + P256_LEN, P256_LEN + 2) != P256_LEN)
        return -1;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * P256_LEN) ==
            1)
        *pkey = from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    return *pkey ? 0 : -1;
}

static int okp_key(json_t *key, EVP_PKEY **pkey)
{
    uint8_t x[ED25519_LEN + 2];
    if (member_bytes(key, "x", x, sizeof x) != ED25519_LEN)
        return -1;
    *pkey = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x, ED25519_LEN);
    return *pkey ? 0 : -1;
}

/* One element of "keys": 0 kept in *out, 1 left out, -1 broken (message in err). */
static int parse_key(json_t *key, size_t i, struct jwk *out, char *err, size_t err_len)
{
    if (!json_is_object(key)) {
        fail(err, err_len, "key %zu is not an object", i);
        return -1;
    }
    int kind = key_kind(key);
    json_t *use = json_object_get(key, "use"), *alg = json_object_get(key, "alg");
    json_t *kid = json_object_get(key, "kid");
    if (kind < 0 || (use && !(json_is_string(use) && strcmp(json_string_value(use), "sig") == 0)))
        return 1;
    int a = -1;
    if (alg) {
        a = json_is_string(alg) ? alg_by_name(json_string_value(alg)) : -1;
        if (a < 0)
            return 1;
        if (alg_kty[a] != (enum kty)kind) {
            fail(err, err_len, "key %zu: alg %s does not fit its kty", i, alg_names[a]);
            return -1;
        }
    }
    if (kid && !json_is_string(kid)) {
        fail(err, err_len, "key %zu: kid is not a string", i);
        return -1;
    }

    EVP_PKEY *pkey = NULL;
    int rc = kind == KTY_RSA  ? rsa_key(key, &pkey)
             : kind == KTY_EC ? ec_key(key, &pkey)
                              : okp_key(key, &pkey);
    if (rc == 0 && kind == KTY_EC && !public_ok(pkey))
        rc = -1;
    if (rc != 0) {
        EVP_PKEY_free(pkey);
        ERR_clear_error();
        if (rc < 0)
            fail(err, err_len, "key %zu%s%s%s: broken %s key", i, kid ? " (kid " : "",
                 kid ? json_string_value(kid) : "", kid ? ")" : "",
                 kind == KTY_RSA  ? "RSA"
                 : kind == KTY_EC ? "EC P-256"
                                  : "Ed25519");
        return rc;
    }
    out->kid = kid ? strdup(json_string_value(kid)) : NULL;
    if (kid && !out->kid) {
        EVP_PKEY_free(pkey);
        fail(err, err_len, "out of memory");
        return -1;
    }
    out->kty = (enum kty)kind;
    out->alg = a;
    out->pkey = pkey;
    return 0;
}

static void jwks_free(struct jwks *set)
{
    for (size_t i = 0; i < set->n; i++) {
        free(set->keys[i].kid);
        EVP_PKEY_free(set->keys[i].pkey);
    }
    free(set);
}

struct jwks *jwks_parse(const char *text, size_t len, char *err, size_t err_len)
{
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        fail(err, err_len, "not JSON: %s (line %d)", jerr.text, jerr.line);
        return NULL;
    }
    json_t *keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        fail(err, err_len, "no \"keys\" array");
        json_decref(doc);
        return NULL;
    }
    size_t n = json_array_size(keys);
    struct jwks *set = calloc(1, sizeof *set + n * sizeof set->keys[0]);
    if (!set) {
        fail(err, err_len, "out of memory");
        json_decref(doc);
        return NULL;
    }
    atomic_init(&set->refs, 1);
    for (size_t i = 0; i < n; i++) {
        int rc = parse_key(json_array_get(keys, i), i, &set->keys[set->n], err, err_len);
        if (rc < 0) {
            jwks_free(set);
            json_decref(doc);
            return NULL;
        }
        if (rc == 0)
            set->n++;
    }
    json_decref(doc);
    return set;
}

struct jwks *jwks_incref(struct jwks *keys)
{
    if (keys)
        atomic_fetch_add_explicit(&keys->refs, 1, memory_order_relaxed);
    return keys;
}

void jwks_decref(struct jwks *keys)
{
    if (keys && atomic_fetch_sub_explicit(&keys->refs, 1, memory_order_acq_rel) == 1)
        jwks_free(keys);
}

size_t jwks_size(const struct jwks *keys)
{
    return keys ? keys->n : 0;
}

/* ---- signatures ---- */

/* ES256 signatures travel as r || s (RFC 7518 §3.4); libcrypto verifies DER. Returns the DER
 * length written to *der (free with OPENSSL_free), or 0. */
static int es256_der(const uint8_t *sig, unsigned char **der)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, P256_LEN, NULL), *s = BN_bin2bn(sig + P256_LEN, P256_LEN, NULL);
    int len = 0;
    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* es owns them now */
        len = i2d_ECDSA_SIG(es, der);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return len > 0 ? len : 0;
}

static bool signature_ok(enum alg alg, EVP_PKEY *pkey, const char *input, size_t input_len,
                         const uint8_t *sig, size_t sig_len)
{
    unsigned char *der = NULL;
    if (alg == ALG_ES256 || alg == ALG_EDDSA) {
        if (sig_len != SIG64_LEN)
            return false;
        if (alg == ALG_ES256) {
            int der_len = es256_der(sig, &der);
            if (der_len == 0)
                return false;
            sig = der;
            sig_len = (size_t)der_len;
        }
    } else if (sig_len != (size_t)EVP_PKEY_get_size(pkey)) {
        return false;
    }

    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    /* EdDSA hashes inside the signature scheme: no digest of its own (NULL). */
    bool ok = ctx && EVP_DigestVerifyInit_ex(ctx, &pctx, alg == ALG_EDDSA ? NULL : "SHA256", NULL,
                                             NULL, pkey, NULL) == 1;
    if (ok && alg == ALG_PS256)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, "SHA256", NULL) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, PSS_SALT_LEN) == 1;
    else if (ok && alg == ALG_RS256)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
    ok = ok && EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)input, input_len) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    /* A refused signature leaves errors in this thread's queue, where libpq (which reads it for
     * its TLS errors) would find them. */
    ERR_clear_error();
    return ok;
}

/* ---- tokens ---- */

static bool b64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

bool jwt_shaped(const char *bearer)
{
    if (!bearer)
        return false;
    size_t part_len = 0;
    int dots = 0;
    for (const char *p = bearer;; p++) {
        if (*p == '.' || *p == '\0') {
            if (part_len == 0)
                return false;
            if (*p == '\0')
                return dots == 2;
            if (++dots > 2)
                return false;
            part_len = 0;
        } else if (b64url_char(*p)) {
            part_len++;
        } else {
            return false;
        }
    }
}

/* Decodes a base64url part into a JSON object; NULL when it is not one. */
static json_t *part_object(const char *text, size_t len, uint8_t *scratch)
{
    long n = crypto_base64url_decode(text, len, scratch);
    if (n <= 0)
        return NULL;
    json_t *doc = json_loadb((const char *)scratch, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static bool typ_ok(json_t *typ)
{
    static const char *const allowed[] = {"at+jwt", "application/at+jwt", "JWT"};
    if (!typ)
        return true;
    const char *t = json_string_value(typ);
    if (!t)
        return false;
    /* Media types compare without regard to case (RFC 7515 §4.1.9). */
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
        if (strcasecmp(t, allowed[i]) == 0)
            return true;
    return false;
}

static bool key_fits(const struct jwk *k, enum alg alg)
{
    return k->kty == alg_kty[alg] && (k->alg < 0 || k->alg == (int)alg);
}

/* The signature against the key named by kid, or against every fitting key when there is no
 * kid. */
static enum jwt_result check_signature(const struct jwks *keys, const char *kid, enum alg alg,
                                       const char *input, size_t input_len, const uint8_t *sig,
                                       size_t sig_len)
{
    bool named = false, fitting = false;
    for (size_t i = 0; keys && i < keys->n; i++) {
        const struct jwk *k = &keys->keys[i];
        if (kid && !(k->kid && strcmp(k->kid, kid) == 0))
            continue;
        named = true;
        if (!key_fits(k, alg))
            continue;
        fitting = true;
        if (signature_ok(alg, k->pkey, input, input_len, sig, sig_len))
            return JWT_OK;
    }
    if (!named || (!kid && !fitting))
        return JWT_UNKNOWN_KEY;
    return fitting ? JWT_BAD_SIGNATURE : JWT_BAD_ALGORITHM;
}

static bool audience_ok(json_t *aud, const char *audience)
{
    if (!audience)
        return false;
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), audience) == 0;
    if (!json_is_array(aud))
        return false;
    bool found = false;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v)
    {
        if (!json_is_string(v))
            return false;
        found = found || strcmp(json_string_value(v), audience) == 0;
    }
    return found;
}

static enum jwt_result check_claims(json_t *payload, const struct jwt_expect *expect)
{
    const char *iss = json_string_value(json_object_get(payload, "iss"));
    if (!iss || !expect->issuer || strcmp(iss, expect->issuer) != 0)
        return JWT_BAD_ISSUER;
    if (!audience_ok(json_object_get(payload, "aud"), expect->audience))
        return JWT_BAD_AUDIENCE;
    json_t *exp = json_object_get(payload, "exp"), *nbf = json_object_get(payload, "nbf");
    if (!json_is_number(exp))
        return JWT_NO_EXPIRY;
    /* In doubles: exp may be a fraction (RFC 7519 NumericDate), and nothing overflows. */
    double now = (double)expect->now, leeway = (double)expect->leeway_s;
    if (json_number_value(exp) + leeway <= now)
        return JWT_EXPIRED;
    if (nbf && (!json_is_number(nbf) || json_number_value(nbf) - leeway > now))
        return JWT_NOT_YET;
    return JWT_OK;
}

enum jwt_result jwt_verify(const char *token, const struct jwks *keys,
                           const struct jwt_expect *expect, json_t **claims)
{
    *claims = NULL;
    if (!token)
        return JWT_MALFORMED;
    size_t len = strnlen(token, JWT_MAX_LEN + 1);
    if (len > JWT_MAX_LEN || !jwt_shaped(token))
        return JWT_MALFORMED;
    const char *dot1 = strchr(token, '.'), *dot2 = strchr(dot1 + 1, '.');
    size_t header_len = (size_t)(dot1 - token), payload_len = (size_t)(dot2 - dot1 - 1);
    size_t sig_text_len = len - (size_t)(dot2 - token) - 1;

    /* Every part decodes into at most 3/4 of its text. */
    uint8_t scratch[JWT_MAX_LEN * 3 / 4 + 1];
    json_t *header = part_object(token, header_len, scratch);
    json_t *payload = header ? part_object(dot1 + 1, payload_len, scratch) : NULL;
    long sig_len = payload ? crypto_base64url_decode(dot2 + 1, sig_text_len, scratch) : -1;
    enum jwt_result r = JWT_OK;
    if (sig_len <= 0 || json_object_get(header, "crit")) {
        /* We understand no extension, so a critical one is always refused (RFC 7515 §4.1.11). */
        r = JWT_MALFORMED;
    } else if (!typ_ok(json_object_get(header, "typ"))) {
        r = JWT_BAD_TYPE;
    } else {
        const char *alg_name = json_string_value(json_object_get(header, "alg"));
        json_t *kid = json_object_get(header, "kid");
        int alg = alg_name ? alg_by_name(alg_name) : -1;
        if (alg < 0)
            r = JWT_BAD_ALGORITHM;
        else if (kid && !json_is_string(kid))
            r = JWT_MALFORMED;
        else
            r = check_signature(keys, json_string_value(kid), (enum alg)alg, token,
                                (size_t)(dot2 - token), scratch, (size_t)sig_len);
    }
    if (r == JWT_OK)
        r = check_claims(payload, expect);
    json_decref(header);
    if (r == JWT_OK)
        *claims = payload;
    else
        json_decref(payload);
    return r;
}

const char *jwt_reason(enum jwt_result r)
{
    switch (r) {
    case JWT_OK: return "ok";
    case JWT_MALFORMED: return "malformed token";
    case JWT_BAD_TYPE: return "token type not accepted";
    case JWT_BAD_ALGORITHM: return "algorithm not accepted";
    case JWT_UNKNOWN_KEY: return "unknown key";
    case JWT_BAD_SIGNATURE: return "bad signature";
    case JWT_BAD_ISSUER: return "wrong issuer";
    case JWT_BAD_AUDIENCE: return "wrong audience";
    case JWT_NO_EXPIRY: return "no expiry";
    case JWT_EXPIRED: return "expired";
    case JWT_NOT_YET: return "not yet valid";
    }
    return "refused";
}

/* jwt: tokens signed here, with keys made here, verified through a JWK set exported here.
 *
 * The group setup makes an RSA-2048, an EC P-256 and an Ed25519 key with libcrypto and writes
 * their public halves as a JWK set (with keys the set must leave out beside them). Each accepted
 * algorithm is signed and verified; then every way a token is refused, each with the one
 * jwt_result it must get, and the key sets jwks_parse() must refuse or thin out. */
#include "crypto.h"
#include "jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define NOW      1800000000LL
#define ISSUER   "https://id.example.nl/realms/werklab"
#define AUDIENCE "werklabd"
#define LEEWAY   60

enum how { SIGN_RS256, SIGN_PS256, SIGN_ES256, SIGN_EDDSA, SIGN_ES256_DER, SIGN_PS256_MAX_SALT };

static EVP_PKEY *rsa, *ec, *ed, *ec_other, *rsa_weak;
static char *jwks_text, *rsa_jwk_text;
static struct jwks *keys;
static const struct jwt_expect expect = {ISSUER, AUDIENCE, NOW, LEEWAY};

/* ---- making keys and tokens ---- */

static char *b64(const uint8_t *data, size_t len)
{
    char *out = malloc(crypto_base64url_len(len) + 1);
    assert_non_null(out);
    crypto_base64url_encode(data, len, out);
    return out;
}

static char *b64_text(const char *text)
{
    return b64((const uint8_t *)text, strlen(text));
}

static char *b64_bn(const BIGNUM *bn, int len)
{
    uint8_t buf[512];
    if (len == 0)
        len = BN_num_bytes(bn);
    assert_true(len <= (int)sizeof buf);
    assert_int_equal(BN_bn2binpad(bn, buf, len), len);
    return b64(buf, (size_t)len);
}

static BIGNUM *bn_param(EVP_PKEY *pkey, const char *name)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(pkey, name, &bn), 1);
    return bn;
}

/* Sets name to text and frees text. */
static void set_text(json_t *o, const char *name, char *text)
{
    json_object_set_new(o, name, json_string(text));
    free(text);
}

/* The public JWK of a key, as a jansson object, with kid (and further members) added. */
static json_t *jwk_of(EVP_PKEY *pkey, const char *kid)
{
    json_t *jwk = json_object();
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        BIGNUM *n = bn_param(pkey, OSSL_PKEY_PARAM_RSA_N),
               *e = bn_param(pkey, OSSL_PKEY_PARAM_RSA_E);
        json_object_set_new(jwk, "kty", json_string("RSA"));
        set_text(jwk, "n", b64_bn(n, 0));
        set_text(jwk, "e", b64_bn(e, 0));
        BN_free(n);
        BN_free(e);
    } else if (EVP_PKEY_is_a(pkey, "EC")) {
        BIGNUM *x = bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X);
        BIGNUM *y = bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y);
        json_object_set_new(jwk, "kty", json_string("EC"));
        json_object_set_new(jwk, "crv", json_string("P-256"));
        set_text(jwk, "x", b64_bn(x, 32));
        set_text(jwk, "y", b64_bn(y, 32));
        BN_free(x);
        BN_free(y);
    } else {
        uint8_t raw[32];
        size_t len = sizeof raw;
        assert_int_equal(EVP_PKEY_get_raw_public_key(pkey, raw, &len), 1);
        json_object_set_new(jwk, "kty", json_string("OKP"));
        json_object_set_new(jwk, "crv", json_string("Ed25519"));
        set_text(jwk, "x", b64(raw, len));
    }
    if (kid)
        json_object_set_new(jwk, "kid", json_string(kid));
    return jwk;
}

/* jwk_of with member set to value (stolen), or removed when value is NULL. */
static json_t *jwk_with(EVP_PKEY *pkey, const char *kid, const char *member, json_t *value)
{
    json_t *k = jwk_of(pkey, kid);
    if (value)
        json_object_set_new(k, member, value);
    else
        json_object_del(k, member);
    return k;
}

static char *dump(json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    assert_non_null(text);
    return text;
}

static size_t sign_raw(enum how how, EVP_PKEY *pkey, const char *input, uint8_t *sig, size_t max)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    assert_int_equal(EVP_DigestSignInit_ex(ctx, &pctx, how == SIGN_EDDSA ? NULL : "SHA256", NULL,
                                           NULL, pkey, NULL),
                     1);
    if (how == SIGN_PS256 || how == SIGN_PS256_MAX_SALT) {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, "SHA256", NULL), 1);
        assert_int_equal(
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, how == SIGN_PS256 ? 32 : RSA_PSS_SALTLEN_MAX),
            1);
    }
    size_t len = max;
    assert_int_equal(EVP_DigestSign(ctx, sig, &len, (const unsigned char *)input, strlen(input)),
                     1);
    EVP_MD_CTX_free(ctx);
    if (how == SIGN_ES256) {
        /* DER to r || s. */
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
        assert_non_null(es);
        const BIGNUM *r, *s;
        ECDSA_SIG_get0(es, &r, &s);
        assert_int_equal(BN_bn2binpad(r, sig, 32), 32);
        assert_int_equal(BN_bn2binpad(s, sig + 32, 32), 32);
        ECDSA_SIG_free(es);
        len = 64;
    }
    return len;
}

/* header.payload.signature, the texts given as they are (so that odd JSON can be signed). */
static char *token_of(const char *header, const char *payload, enum how how, EVP_PKEY *pkey)
{
    char *h = b64_text(header), *p = b64_text(payload);
    size_t input_len = strlen(h) + 1 + strlen(p);
    char *input = malloc(input_len + 1);
    assert_non_null(input);
    snprintf(input, input_len + 1, "%s.%s", h, p);
    uint8_t sig[1024];
    size_t sig_len =
        sign_raw(how == SIGN_ES256_DER ? SIGN_RS256 : how, pkey, input, sig, sizeof sig);
    char *s = b64(sig, sig_len);
    char *token = malloc(input_len + 1 + strlen(s) + 1);
    assert_non_null(token);
    sprintf(token, "%s.%s", input, s);
    free(h);
    free(p);
    free(input);
    free(s);
    return token;
}

/* The claims of a good token; tests change them before signing. */
static json_t *claims(void)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:[s]}", "iss", ISSUER, "aud", AUDIENCE, "sub",
                     "u-123", "exp", (json_int_t)(NOW + 300), "iat", (json_int_t)NOW, "roles",
                     "lsa-staff");
}

static const char *alg_name(enum how how)
{
    static const char *const names[] = {"RS256", "PS256", "ES256", "EdDSA", "ES256", "PS256"};
    return names[how];
}

/* A token with header {"alg", "kid" (NULL: none), "typ" (NULL: none)} and claims (taken). */
static char *make(enum how how, EVP_PKEY *pkey, const char *alg, const char *kid, const char *typ,
                  json_t *payload)
{
    json_t *header = json_pack("{s:s}", "alg", alg ? alg : alg_name(how));
    if (kid)
        json_object_set_new(header, "kid", json_string(kid));
    if (typ)
        json_object_set_new(header, "typ", json_string(typ));
    char *h = dump(header), *p = dump(payload);
    char *token = token_of(h, p, how, pkey);
    free(h);
    free(p);
    json_decref(header);
    json_decref(payload);
    return token;
}

/* A good token of each algorithm with its key. */
static char *good(enum how how)
{
    static const char *const kids[] = {"rsa-1", "rsa-1", "ec-1", "ed-1"};
    EVP_PKEY *const pkeys[] = {rsa, rsa, ec, ed};
    return make(how, pkeys[how], NULL, kids[how], "at+jwt", claims());
}

/* Verifies with the set of the setup; a refusal must leave no claims. */
static enum jwt_result verify_with(const char *token, const struct jwks *set,
                                   const struct jwt_expect *e)
{
    json_t *c = (json_t *)&c; /* not NULL: jwt_verify must set it */
    enum jwt_result r = jwt_verify(token, set, e, &c);
    if (r == JWT_OK) {
        assert_true(json_is_object(c));
        assert_string_equal(json_string_value(json_object_get(c, "sub")), "u-123");
        json_decref(c);
    } else {
        assert_null(c);
    }
    return r;
}

static enum jwt_result verify(const char *token)
{
    return verify_with(token, keys, &expect);
}

/* Verifies a token and frees it. */
static enum jwt_result verify_free(char *token)
{
    enum jwt_result r = verify(token);
    free(token);
    return r;
}

#define assert_result(got, want)                                                                   \
    do {                                                                                           \
        enum jwt_result got_ = (got), want_ = (want);                                              \
        if (got_ != want_)                                                                         \
            fail_msg("%s: got %s, want %s", #got, jwt_reason(got_), jwt_reason(want_));            \
    } while (0)

static int setup(void **state)
{
    (void)state;
    rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    ec_other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    rsa_weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    if (!rsa || !ec || !ed || !ec_other || !rsa_weak)
        return -1;

    json_t *list = json_array();
    json_t *k = jwk_with(rsa, "rsa-1", "use", json_string("sig"));
    rsa_jwk_text = dump(k);
    json_array_append_new(list, k);
    json_array_append_new(list, jwk_with(rsa, "rsa-ps", "alg", json_string("PS256")));
    json_array_append_new(list, jwk_with(ec, "ec-1", "alg", json_string("ES256")));
    json_array_append_new(list, jwk_of(ed, "ed-1"));
    /* Left out: a symmetric key, an encryption key, an RSA key for encryption by its alg, a
     * weak RSA key, curves other than ours. */
    json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "kty", "oct", "kid", "hmac", "k",
                                          "c2VjcmV0LXNlY3JldC1zZWNyZXQ"));
    json_array_append_new(list, jwk_with(rsa, "enc-1", "use", json_string("enc")));
    json_array_append_new(list, jwk_with(rsa, "oaep", "alg", json_string("RSA-OAEP-256")));
    json_array_append_new(list, jwk_of(rsa_weak, "weak"));
    json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "kid", "p384",
                                          "crv", "P-384", "x", "AA", "y", "AA"));
    json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s}", "kty", "OKP", "kid", "x25519",
                                          "crv", "X25519", "x", "AA"));
    json_t *doc = json_pack("{s:o}", "keys", list);
    jwks_text = dump(doc);
    json_decref(doc);

    char err[200] = "";
    keys = jwks_parse(jwks_text, strlen(jwks_text), err, sizeof err);
    if (!keys)
        fprintf(stderr, "jwks_parse: %s\n", err);
    return keys ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    jwks_decref(keys);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(ec_other);
    EVP_PKEY_free(rsa_weak);
    free(jwks_text);
    free(rsa_jwk_text);
    return 0;
}

/* ---- accepted ---- */

static void test_set_kept(void **state)
{
    (void)state;
    assert_int_equal(jwks_size(keys), 4); /* rsa-1, rsa-ps, ec-1, ed-1 */
}

static void test_each_algorithm(void **state)
{
    (void)state;
    for (enum how how = SIGN_RS256; how <= SIGN_EDDSA; how++) {
        char *token = good(how);
        assert_true(jwt_shaped(token));
        json_t *c = NULL;
        assert_result(jwt_verify(token, keys, &expect, &c), JWT_OK);
        assert_string_equal(json_string_value(json_object_get(c, "iss")), ISSUER);
        assert_string_equal(json_string_value(json_object_get(c, "sub")), "u-123");
        assert_int_equal(json_integer_value(json_object_get(c, "exp")), NOW + 300);
        assert_string_equal(json_string_value(json_array_get(json_object_get(c, "roles"), 0)),
                            "lsa-staff");
        json_decref(c);
        free(token);
    }
    /* The RSA key published with alg PS256 verifies PS256. */
    assert_result(verify_free(make(SIGN_PS256, rsa, NULL, "rsa-ps", NULL, claims())), JWT_OK);
}

static void test_typ_accepted(void **state)
{
    (void)state;
    static const char *const typs[] = {"at+jwt", "application/at+jwt", "JWT",
                                       "AT+JWT", "Application/AT+JWT", "jwt"};
    for (size_t i = 0; i < sizeof typs / sizeof *typs; i++)
        assert_result(verify_free(make(SIGN_ES256, ec, NULL, "ec-1", typs[i], claims())), JWT_OK);
    assert_result(verify_free(make(SIGN_ES256, ec, NULL, "ec-1", NULL, claims())), JWT_OK);
}

/* Without kid every key that fits the algorithm is tried. */
static void test_no_kid(void **state)
{
    (void)state;
    for (enum how how = SIGN_RS256; how <= SIGN_EDDSA; how++) {
        EVP_PKEY *const pkeys[] = {rsa, rsa, ec, ed};
        assert_result(verify_free(make(how, pkeys[how], NULL, NULL, NULL, claims())), JWT_OK);
    }
    /* Signed by a key the set does not have. */
    assert_result(verify_free(make(SIGN_ES256, ec_other, NULL, NULL, NULL, claims())),
                  JWT_BAD_SIGNATURE);
    /* No key of the kind at all: as an unknown key. */
    static const char only_ed[] = "{\"keys\":[%s]}";
    json_t *k = jwk_of(ed, "ed-1");
    char *jwk = dump(k), text[400];
    snprintf(text, sizeof text, only_ed, jwk);
    struct jwks *set = jwks_parse(text, strlen(text), NULL, 0);
    assert_non_null(set);
    char *token = make(SIGN_ES256, ec, NULL, NULL, NULL, claims());
    assert_result(verify_with(token, set, &expect), JWT_UNKNOWN_KEY);
    free(token);
    jwks_decref(set);
    free(jwk);
    json_decref(k);
}

static void test_leeway(void **state)
{
    (void)state;
    json_t *c = claims();
    json_object_set_new(c, "exp", json_integer(NOW - LEEWAY + 1));
    assert_result(verify_free(make(SIGN_EDDSA, ed, NULL, "ed-1", NULL, c)), JWT_OK);
    c = claims();
    json_object_set_new(c, "exp", json_real((double)NOW - 59.5));
    assert_result(verify_free(make(SIGN_EDDSA, ed, NULL, "ed-1", NULL, c)), JWT_OK);
    c = claims();
    json_object_set_new(c, "nbf", json_integer(NOW + LEEWAY));
    assert_result(verify_free(make(SIGN_EDDSA, ed, NULL, "ed-1", NULL, c)), JWT_OK);
    c = claims();
    json_object_set_new(c, "nbf", json_integer(NOW - 10));
    assert_result(verify_free(make(SIGN_EDDSA, ed, NULL, "ed-1", NULL, c)), JWT_OK);
}

static void test_audience_array(void **state)
{
    (void)state;
    json_t *c = claims();
    json_object_set_new(c, "aud", json_pack("[s, s]", "account", AUDIENCE));
    assert_result(verify_free(make(SIGN_RS256, rsa, NULL, "rsa-1", NULL, c)), JWT_OK);
}

/* ---- refused: algorithm and key ---- */

static void test_alg_none(void **state)
{
    (void)state;
    /* As attacks send it: no signature at all. */
    char *h = b64_text("{\"alg\":\"none\",\"typ\":\"JWT\"}");
    json_t *c = claims();
    char *pt = dump(c), *p = b64_text(pt), token[2048];
    snprintf(token, sizeof token, "%s.%s.", h, p);
    assert_false(jwt_shaped(token));
    assert_result(verify(token), JWT_MALFORMED);
    /* With something in the signature's place. */
    snprintf(token, sizeof token, "%s.%s.AAAA", h, p);
    assert_result(verify(token), JWT_BAD_ALGORITHM);
    free(h);
    free(p);
    free(pt);
    json_decref(c);
    /* Other spellings, and a signature that is right for the key. */
    static const char *const nones[] = {"none",  "None",    "NONE",  "",        "RS512",
                                        "ES384", "Ed25519", "PS384", "RSA-OAEP"};
    for (size_t i = 0; i < sizeof nones / sizeof *nones; i++)
        assert_result(verify_free(make(SIGN_RS256, rsa, nones[i], "rsa-1", NULL, claims())),
                      JWT_BAD_ALGORITHM);
    /* alg missing or not a string. */
    char *t = token_of("{\"kid\":\"rsa-1\"}", "{}", SIGN_RS256, rsa);
    assert_result(verify_free(t), JWT_BAD_ALGORITHM);
    t = token_of("{\"alg\":[\"RS256\"],\"kid\":\"rsa-1\"}", "{}", SIGN_RS256, rsa);
    assert_result(verify_free(t), JWT_BAD_ALGORITHM);
}

/* The classic confusion: HS256 with the server's public key (as it is published) as the HMAC
 * secret. */
static void hs256_with(const char *secret, const char *kid)
{
    json_t *header = json_pack("{s:s, s:s}", "alg", "HS256", "typ", "JWT");
    if (kid)
        json_object_set_new(header, "kid", json_string(kid));
    json_t *c = claims();
    char *ht = dump(header), *pt = dump(c), *h = b64_text(ht), *p = b64_text(pt);
    char input[2048];
    snprintf(input, sizeof input, "%s.%s", h, p);
    uint8_t mac[CRYPTO_SHA256_LEN];
    crypto_hmac_sha256(secret, strlen(secret), input, strlen(input), mac);
    char *m = b64(mac, sizeof mac), token[2200];
    snprintf(token, sizeof token, "%s.%s", input, m);
    assert_result(verify(token), JWT_BAD_ALGORITHM);
    free(m);
    free(h);
    free(p);
    free(ht);
    free(pt);
    json_decref(c);
    json_decref(header);
}

static void test_hs256(void **state)
{
    (void)state;
    hs256_with(rsa_jwk_text, "rsa-1");
    hs256_with(rsa_jwk_text, NULL);
    hs256_with(jwks_text, NULL);
    hs256_with("c2VjcmV0LXNlY3JldC1zZWNyZXQ", "hmac");
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, rsa), 1);
    assert_int_equal(BIO_write(bio, "", 1), 1);
    char *pem = NULL;
    BIO_get_mem_data(bio, &pem);
    hs256_with(pem, "rsa-1");
    hs256_with(pem, NULL);
    BIO_free(bio);
}

static void test_alg_not_fitting_key(void **state)
{
    (void)state;
    /* An RS256 header naming the EC key (signed by RSA, or by the EC key as ES256 is). */
    assert_result(verify_free(make(SIGN_RS256, rsa, "RS256", "ec-1", NULL, claims())),
                  JWT_BAD_ALGORITHM);
    assert_result(verify_free(make(SIGN_ES256, ec, "RS256", "ec-1", NULL, claims())),
                  JWT_BAD_ALGORITHM);
    assert_result(verify_free(make(SIGN_ES256, ec, "ES256", "rsa-1", NULL, claims())),
                  JWT_BAD_ALGORITHM);
    assert_result(verify_free(make(SIGN_EDDSA, ed, "EdDSA", "ec-1", NULL, claims())),
                  JWT_BAD_ALGORITHM);
    assert_result(verify_free(make(SIGN_ES256, ec, "ES256", "ed-1", NULL, claims())),
                  JWT_BAD_ALGORITHM);
    /* The key's own alg is PS256: RS256 with it is refused, although the key is RSA. */
    assert_result(verify_free(make(SIGN_RS256, rsa, NULL, "rsa-ps", NULL, claims())),
                  JWT_BAD_ALGORITHM);
    /* PS256 naming the Ed25519 key. */
    assert_result(verify_free(make(SIGN_RS256, rsa, "PS256", "ed-1", NULL, claims())),
                  JWT_BAD_ALGORITHM);
}

static void test_unknown_kid(void **state)
{
    (void)state;
    static const char *const kids[] = {"rsa-2", "",     "RSA-1", "rsa-1 ", "enc-1",
                                       "oaep",  "weak", "hmac",  "p384"};
    for (size_t i = 0; i < sizeof kids / sizeof *kids; i++)
        assert_result(verify_free(make(SIGN_RS256, rsa, NULL, kids[i], NULL, claims())),
                      JWT_UNKNOWN_KEY);
    /* The weak key's own signature: still unknown, it is not in the set. */
    assert_result(verify_free(make(SIGN_RS256, rsa_weak, NULL, "weak", NULL, claims())),
                  JWT_UNKNOWN_KEY);
    assert_result(verify_free(make(SIGN_RS256, rsa_weak, NULL, NULL, NULL, claims())),
                  JWT_BAD_SIGNATURE);
    /* kid not a string. */
    char *t = token_of("{\"alg\":\"RS256\",\"kid\":1}", "{}", SIGN_RS256, rsa);
    assert_result(verify_free(t), JWT_MALFORMED);
}

/* ---- refused: signature ---- */

/* The token with one bit of part (0 header, 1 payload, 2 signature) flipped, re-encoded. */
static char *flipped(const char *token, int part, size_t byte, int bit)
{
    const char *start = token;
    for (int i = 0; i < part; i++)
        start = strchr(start, '.') + 1;
    const char *end = strchr(start, '.');
    size_t len = end ? (size_t)(end - start) : strlen(start);
    uint8_t data[1024];
    long n = crypto_base64url_decode(start, len, data);
    assert_true(n > 0);
    data[byte % (size_t)n] ^= (uint8_t)(1u << bit);
    char *mid = b64(data, (size_t)n);
    char *out = malloc(strlen(token) + 8);
    assert_non_null(out);
    sprintf(out, "%.*s%s%s", (int)(start - token), token, mid, end ? end : "");
    free(mid);
    return out;
}

static void test_tampered(void **state)
{
    (void)state;
    for (enum how how = SIGN_RS256; how <= SIGN_EDDSA; how++) {
        char *token = good(how);
        static const size_t bytes[] = {0, 7, 20, 1000};
        for (size_t b = 0; b < sizeof bytes / sizeof *bytes; b++) {
            for (int bit = 0; bit < 8; bit += 3) {
                /* A flipped payload bit may break the JSON too: either way refused. */
                enum jwt_result r = verify_free(flipped(token, 1, bytes[b], bit));
                if (r != JWT_BAD_SIGNATURE && r != JWT_MALFORMED)
                    fail_msg("%s payload byte %zu bit %d: %s", alg_name(how), bytes[b], bit,
                             jwt_reason(r));
                assert_result(verify_free(flipped(token, 2, bytes[b], bit)), JWT_BAD_SIGNATURE);
            }
        }
        /* A claim changed in readable form keeps the JSON valid: only the signature tells. */
        char *p1 = strchr(token, '.') + 1, *p2 = strchr(p1, '.');
        uint8_t payload[1024];
        long n = crypto_base64url_decode(p1, (size_t)(p2 - p1), payload);
        payload[n] = '\0';
        char *sub = strstr((char *)payload, "u-123");
        assert_non_null(sub);
        sub[4] = '4';
        char *forged_p = b64(payload, (size_t)n), forged[4096];
        snprintf(forged, sizeof forged, "%.*s%s%s", (int)(p1 - token), token, forged_p, p2);
        assert_result(verify(forged), JWT_BAD_SIGNATURE);
        free(forged_p);

        /* Truncated: a byte less of signature, and half of it. */
        char *cut = strdup(token);
        size_t len = strlen(cut);
        char *sig = strrchr(cut, '.') + 1;
        size_t sig_text = strlen(sig);
        uint8_t raw[600];
        long sig_len = crypto_base64url_decode(sig, sig_text, raw);
        char *shorter = b64(raw, (size_t)sig_len - 1);
        strcpy(sig, shorter);
        assert_result(verify(cut), JWT_BAD_SIGNATURE);
        free(shorter);
        shorter = b64(raw, (size_t)sig_len / 2);
        strcpy(sig, shorter);
        assert_result(verify(cut), JWT_BAD_SIGNATURE);
        free(shorter);
        /* A byte more. */
        memcpy(cut, token, len + 1);
        sig = strrchr(cut, '.') + 1;
        raw[sig_len] = 0;
        char *longer = b64(raw, (size_t)sig_len + 1);
        char *with = malloc(len + 8);
        sprintf(with, "%.*s%s", (int)(sig - cut), cut, longer);
        assert_result(verify(with), JWT_BAD_SIGNATURE);
        free(with);
        free(longer);
        free(cut);
        free(token);
    }
    /* ES256 with the DER signature libcrypto makes, not r || s. */
    assert_result(verify_free(make(SIGN_ES256_DER, ec, "ES256", "ec-1", NULL, claims())),
                  JWT_BAD_SIGNATURE);
    /* The right kid, another key of the same kind. */
    assert_result(verify_free(make(SIGN_ES256, ec_other, NULL, "ec-1", NULL, claims())),
                  JWT_BAD_SIGNATURE);
    /* PS256 signature sent as RS256, and the other way round. */
    char *t = make(SIGN_PS256, rsa, "RS256", "rsa-1", NULL, claims());
    assert_result(verify_free(t), JWT_BAD_SIGNATURE);
    t = make(SIGN_RS256, rsa, "PS256", "rsa-1", NULL, claims());
    assert_result(verify_free(t), JWT_BAD_SIGNATURE);
    /* PS256 with the salt as long as the key allows, not 32 bytes (RFC 7518 §3.5). */
    assert_result(verify_free(make(SIGN_PS256_MAX_SALT, rsa, "PS256", "rsa-1", NULL, claims())),
                  JWT_BAD_SIGNATURE);
    /* r || s of zeros. */
    char *good_es = good(SIGN_ES256);
    char *dot = strrchr(good_es, '.') + 1;
    uint8_t zeros[64] = {0};
    char *z = b64(zeros, sizeof zeros);
    strcpy(dot, z);
    assert_result(verify(good_es), JWT_BAD_SIGNATURE);
    free(z);
    free(good_es);
}

/* ---- refused: claims ---- */

static enum jwt_result with_claim(const char *name, json_t *value)
{
    json_t *c = claims();
    if (value)
        json_object_set_new(c, name, value);
    else
        json_object_del(c, name);
    return verify_free(make(SIGN_ES256, ec, NULL, "ec-1", NULL, c));
}

static void test_expiry(void **state)
{
    (void)state;
    assert_result(with_claim("exp", json_integer(NOW - LEEWAY)), JWT_EXPIRED);
    assert_result(with_claim("exp", json_integer(NOW - 3600)), JWT_EXPIRED);
    assert_result(with_claim("exp", json_integer(0)), JWT_EXPIRED);
    assert_result(with_claim("exp", json_integer(-1)), JWT_EXPIRED);
    assert_result(with_claim("exp", NULL), JWT_NO_EXPIRY);
    assert_result(with_claim("exp", json_string("1800000300")), JWT_NO_EXPIRY);
    assert_result(with_claim("exp", json_null()), JWT_NO_EXPIRY);
    assert_result(with_claim("exp", json_true()), JWT_NO_EXPIRY);
    assert_result(with_claim("nbf", json_integer(NOW + LEEWAY + 1)), JWT_NOT_YET);
    assert_result(with_claim("nbf", json_integer(NOW + 86400)), JWT_NOT_YET);
    assert_result(with_claim("nbf", json_string("0")), JWT_NOT_YET);
    /* With no leeway the boundary moves. */
    struct jwt_expect strict = expect;
    strict.leeway_s = 0;
    json_t *c = claims();
    json_object_set_new(c, "exp", json_integer(NOW));
    char *token = make(SIGN_ES256, ec, NULL, "ec-1", NULL, c);
    assert_result(verify_with(token, keys, &strict), JWT_EXPIRED);
    strict.now = NOW - 1;
    assert_result(verify_with(token, keys, &strict), JWT_OK);
    free(token);
}

static void test_issuer(void **state)
{
    (void)state;
    static const char *const wrong[] = {
        "https://id.example.nl/realms/werk",     "https://id.example.nl/realms/werklab/",
        "https://id.example.nl/realms/werklabx", "https://ID.example.nl/realms/werklab",
        "http://id.example.nl/realms/werklab",   "https://id.example.nl/realms/werklab ",
        " https://id.example.nl/realms/werklab", "",
        "https://evil.example/realms/werklab",
    };
    for (size_t i = 0; i < sizeof wrong / sizeof *wrong; i++)
        assert_result(with_claim("iss", json_string(wrong[i])), JWT_BAD_ISSUER);
    assert_result(with_claim("iss", NULL), JWT_BAD_ISSUER);
    assert_result(with_claim("iss", json_pack("[s]", ISSUER)), JWT_BAD_ISSUER);
    assert_result(with_claim("iss", json_integer(1)), JWT_BAD_ISSUER);
}

static void test_audience(void **state)
{
    (void)state;
    assert_result(with_claim("aud", json_pack("[s, s]", "account", "werklab")), JWT_BAD_AUDIENCE);
    assert_result(with_claim("aud", json_array()), JWT_BAD_AUDIENCE);
    assert_result(with_claim("aud", json_string("werklab")), JWT_BAD_AUDIENCE);
    assert_result(with_claim("aud", json_string("werklabd2")), JWT_BAD_AUDIENCE);
    assert_result(with_claim("aud", json_string("WERKLABD")), JWT_BAD_AUDIENCE);
    assert_result(with_claim("aud", NULL), JWT_BAD_AUDIENCE);
    assert_result(with_claim("aud", json_integer(1)), JWT_BAD_AUDIENCE);
    assert_result(with_claim("aud", json_pack("{s:s}", "aud", AUDIENCE)), JWT_BAD_AUDIENCE);
    /* An array holding the audience and something not a string. */
    assert_result(with_claim("aud", json_pack("[s, i]", AUDIENCE, 1)), JWT_BAD_AUDIENCE);
    assert_result(with_claim("aud", json_pack("[[s]]", AUDIENCE)), JWT_BAD_AUDIENCE);
}

/* ---- refused: header and shape ---- */

static void test_typ_refused(void **state)
{
    (void)state;
    static const char *const typs[] = {"JOSE+JSON", "JOSE",   "dpop+jwt",        "",
                                       "at+jwt ",   "jwt+at", "application/jwt", "secevent+jwt"};
    for (size_t i = 0; i < sizeof typs / sizeof *typs; i++)
        assert_result(verify_free(make(SIGN_EDDSA, ed, NULL, "ed-1", typs[i], claims())),
                      JWT_BAD_TYPE);
    char *t = token_of("{\"alg\":\"EdDSA\",\"kid\":\"ed-1\",\"typ\":1}", "{}", SIGN_EDDSA, ed);
    assert_result(verify_free(t), JWT_BAD_TYPE);
    /* typ is looked at before alg. */
    assert_result(verify_free(make(SIGN_EDDSA, ed, "none", "ed-1", "JOSE", claims())),
                  JWT_BAD_TYPE);
}

/* A token from texts as they are, signed properly with the EC key. */
static enum jwt_result raw(const char *header, const char *payload)
{
    return verify_free(token_of(header, payload, SIGN_ES256, ec));
}

static void test_not_json(void **state)
{
    (void)state;
    json_t *c = claims();
    char *good_payload = dump(c);
    json_decref(c);
    static const char header[] = "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}";
    assert_result(raw(header, good_payload), JWT_OK);
    assert_result(raw("not json", good_payload), JWT_MALFORMED);
    assert_result(raw("[\"ES256\"]", good_payload), JWT_MALFORMED);
    assert_result(raw("\"ES256\"", good_payload), JWT_MALFORMED);
    assert_result(raw("{\"alg\":\"ES256\",\"kid\":\"ec-1\"", good_payload), JWT_MALFORMED);
    assert_result(raw("{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"alg\":\"none\"}", good_payload),
                  JWT_MALFORMED);
    assert_result(raw(header, "[1,2,3]"), JWT_MALFORMED);
    assert_result(raw(header, "\"sub\""), JWT_MALFORMED);
    assert_result(raw(header, "not json"), JWT_MALFORMED);
    assert_result(raw(header, "{\"sub\":\"u-123\",\"sub\":\"admin\"}"), JWT_MALFORMED);
    assert_result(raw(header, "{\"sub\":\"u\\u0000-123\"}"), JWT_MALFORMED);
    /* A critical extension we cannot know. */
    assert_result(
        raw("{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"crit\":[\"exp\"],\"exp\":1}", good_payload),
        JWT_MALFORMED);
    assert_result(raw("{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"crit\":[]}", good_payload),
                  JWT_MALFORMED);
    free(good_payload);
}

static void test_shape(void **state)
{
    (void)state;
    char *token = good(SIGN_RS256);
    size_t len = strlen(token);
    char buf[2048];
    assert_true(len + 8 < sizeof buf);

    /* Padding, as base64 (not base64url) would have it, after each part. */
    size_t d1 = (size_t)(strchr(token, '.') - token), d2 = (size_t)(strrchr(token, '.') - token);
    const size_t ends[] = {d1, d2, len};
    for (int part = 0; part < 3; part++) {
        size_t at = ends[part];
        snprintf(buf, sizeof buf, "%.*s=%s", (int)at, token, token + at);
        assert_false(jwt_shaped(buf));
        assert_result(verify(buf), JWT_MALFORMED);
        snprintf(buf, sizeof buf, "%.*s==%s", (int)at, token, token + at);
        assert_result(verify(buf), JWT_MALFORMED);
    }
    /* The standard alphabet in place of the URL one, whitespace, a fourth part, two parts. */
    snprintf(buf, sizeof buf, "%s", token);
    char *sig = strrchr(buf, '.') + 1;
    sig[3] = '+';
    assert_result(verify(buf), JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%s ", token);
    assert_result(verify(buf), JWT_MALFORMED);
    snprintf(buf, sizeof buf, " %s", token);
    assert_result(verify(buf), JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%s.%s", token, "AAAA");
    assert_result(verify(buf), JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%.*s", (int)(strrchr(token, '.') - token), token);
    assert_result(verify(buf), JWT_MALFORMED);
    /* A signature text that is not base64url (a character left over: 342 + 3 characters). */
    snprintf(buf, sizeof buf, "%sAAA", token);
    assert_result(verify(buf), JWT_MALFORMED);

    static const char *const empties[] = {
        "..", ".a.b", "a..b", "a.b.", "...", "", ".", "a.b", "eyJhbGciOiJub25lIn0..", "a.b.c.d"};
    for (size_t i = 0; i < sizeof empties / sizeof *empties; i++)
        assert_result(verify(empties[i]), JWT_MALFORMED);
    json_t *c = NULL;
    assert_result(jwt_verify(NULL, keys, &expect, &c), JWT_MALFORMED);
    assert_null(c);
    free(token);
}

static void test_too_long(void **state)
{
    (void)state;
    /* A long claim, first still within the limit, then beyond it. */
    char filler[6200];
    memset(filler, 'x', sizeof filler);
    filler[5000] = '\0';
    json_t *c = claims();
    json_object_set_new(c, "filler", json_string(filler));
    char *token = make(SIGN_EDDSA, ed, NULL, "ed-1", NULL, c);
    assert_true(strlen(token) < JWT_MAX_LEN);
    assert_result(verify_free(token), JWT_OK);

    filler[5000] = 'x';
    filler[6199] = '\0';
    c = claims();
    json_object_set_new(c, "filler", json_string(filler));
    token = make(SIGN_EDDSA, ed, NULL, "ed-1", NULL, c);
    assert_true(strlen(token) > JWT_MAX_LEN);
    assert_true(jwt_shaped(token));
    assert_result(verify_free(token), JWT_MALFORMED);
}

static void test_shaped(void **state)
{
    (void)state;
    static const char *const yes[] = {"a.b.c", "eyJ.eyJ.s-_9", "A-_.0.z"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        assert_true(jwt_shaped(yes[i]));
    static const char *const no[] = {"wlk_0123456789abcdef0123456789abcdef",
                                     "wlk_0123.abcd",
                                     "",
                                     ".",
                                     "..",
                                     "a.b",
                                     "a..c",
                                     ".b.c",
                                     "a.b.",
                                     "a.b.c.d",
                                     "a.b.c=",
                                     "a b.c.d",
                                     "a.b.c ",
                                     "a.b/c.d",
                                     "a.b+.c",
                                     "a.b.c\n"};
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (jwt_shaped(no[i]))
            fail_msg("\"%s\" is not JWT-shaped", no[i]);
    assert_false(jwt_shaped(NULL));
}

/* ---- key sets ---- */

static struct jwks *parse_one(json_t *jwk, char *err, size_t err_len)
{
    json_t *doc = json_pack("{s:[o]}", "keys", jwk);
    char *text = dump(doc);
    struct jwks *set = jwks_parse(text, strlen(text), err, err_len);
    free(text);
    json_decref(doc);
    return set;
}

/* One of the test's keys as a JWK with one member changed: set to json, or removed (NULL). */
struct jwk_change {
    EVP_PKEY **key;
    const char *member;
    const char *json;
    const char *why;
};

static json_t *changed(const struct jwk_change *c)
{
    return jwk_with(*c->key, "changed", c->member,
                    c->json ? json_loads(c->json, JSON_DECODE_ANY, NULL) : NULL);
}

static void expect_refused(json_t *jwk, const char *why)
{
    char err[200] = "";
    struct jwks *set = parse_one(jwk, err, sizeof err);
    if (set) {
        jwks_decref(set);
        fail_msg("a key set with %s was accepted", why);
    }
    assert_true(strlen(err) > 0);
}

static void expect_left_out(json_t *jwk, const char *why)
{
    char err[200] = "";
    struct jwks *set = parse_one(jwk, err, sizeof err);
    if (!set)
        fail_msg("a key set with %s was refused: %s", why, err);
    if (jwks_size(set) != 0)
        fail_msg("%s was kept", why);
    jwks_decref(set);
}

static void test_jwks_refused(void **state)
{
    (void)state;
    static const char *const texts[] = {"",
                                        "not json",
                                        "[]",
                                        "{}",
                                        "{\"keys\":{}}",
                                        "{\"keys\":null}",
                                        "{\"keys\":[],\"keys\":[]}",
                                        "{\"keys\":[1]}",
                                        "{\"keys\":[\"RSA\"]}"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        char err[200] = "";
        struct jwks *set = jwks_parse(texts[i], strlen(texts[i]), err, sizeof err);
        if (set) {
            jwks_decref(set);
            fail_msg("\"%s\" was accepted as a key set", texts[i]);
        }
        assert_true(strlen(err) > 0);
    }
    /* No room for a message: still refused. */
    assert_null(jwks_parse("{}", 2, NULL, 0));

    static const struct jwk_change refused[] = {
        {&rsa, "n", "\"!!!not base64url\"", "an RSA n that is not base64url"},
        {&rsa, "n", "\"AQAB=\"", "a padded RSA n"},
        {&rsa, "n", NULL, "no RSA n"},
        {&rsa, "n", "\"\"", "an empty RSA n"},
        {&rsa, "e", "65537", "an RSA e that is a number"},
        {&rsa, "e", "\"Ag\"", "an even RSA e"},
        {&rsa, "kid", "7", "a kid that is a number"},
        {&rsa, "alg", "\"ES256\"", "an RSA key with alg ES256"},
        {&ec, "x", "\"AAAA\"", "an EC x too short"},
        {&ec, "y", NULL, "an EC key without y"},
        {&ed, "x", "\"AAAA\"", "an Ed25519 x too short"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
        expect_refused(changed(&refused[i]), refused[i].why);
    /* A point that is not on the curve: y of another key. */
    json_t *k = jwk_of(ec, "e");
    json_t *other = jwk_of(ec_other, NULL);
    json_object_set(k, "y", json_object_get(other, "y"));
    json_decref(other);
    expect_refused(k, "an EC point off the curve");
}

static void test_jwks_left_out(void **state)
{
    (void)state;
    expect_left_out(json_pack("{s:s, s:s}", "kty", "oct", "k", "c2VjcmV0"), "kty oct");
    static const struct jwk_change left_out[] = {
        {&rsa, "use", "\"enc\"", "use enc"},
        {&ec, "use", "1", "use not a string"},
        {&rsa, "alg", "\"RS384\"", "alg RS384"},
        {&rsa, "alg", "\"HS256\"", "alg HS256"},
    };
    for (size_t i = 0; i < sizeof left_out / sizeof *left_out; i++)
        expect_left_out(changed(&left_out[i]), left_out[i].why);
    expect_left_out(jwk_of(rsa_weak, "w"), "RSA of 1024 bits");
    expect_left_out(
        json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "secp256k1", "x", "AA", "y", "AA"),
        "EC secp256k1");
    expect_left_out(json_pack("{s:s, s:s, s:s}", "kty", "OKP", "crv", "Ed448", "x", "AA"),
                    "OKP Ed448");
    expect_left_out(json_pack("{s:s}", "kty", "RSA-ish"), "an unknown kty");
    expect_left_out(json_pack("{s:s}", "n", "AQAB"), "no kty");

    /* An empty set parses, and knows no key. */
    struct jwks *set = jwks_parse("{\"keys\":[]}", 11, NULL, 0);
    assert_non_null(set);
    assert_int_equal(jwks_size(set), 0);
    char *token = good(SIGN_EDDSA);
    assert_result(verify_with(token, set, &expect), JWT_UNKNOWN_KEY);
    jwks_decref(set);
    /* No set at all: the same. */
    assert_result(verify_with(token, NULL, &expect), JWT_UNKNOWN_KEY);
    free(token);
}

/* An EC key whose x has a leading zero byte, for the lengths issuers write coordinates in. */
static const char ec_short_x_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgIQ/bJc2fmxmXUN7H\n"
    "p0QLuCdt9WMcvXuaEsJuaVk3PMShRANCAAQAxyrgttNTcD+mFprAcXYs3B/bZnMt\n"
    "Ce80EwCovenPufaknlfS+/s9Dr/pZfwwAgC0Y4gsRl0PJ5ItruSnpL3K\n"
    "-----END PRIVATE KEY-----\n";

/* A set of the one JWK with x (and y) as given; NULL when refused. */
static struct jwks *ec_set(EVP_PKEY *pkey, const uint8_t *x, size_t x_len, const uint8_t *y,
                           size_t y_len)
{
    json_t *k = jwk_of(pkey, "ec-z");
    set_text(k, "x", b64(x, x_len));
    set_text(k, "y", b64(y, y_len));
    return parse_one(k, NULL, 0);
}

/* RFC 7518 wants each coordinate at 32 bytes; a coordinate without its leading zero byte, or
 * with a sign byte before it, is the same number and taken. Anything else is refused. */
static void test_ec_coordinates(void **state)
{
    (void)state;
    BIO *bio = BIO_new_mem_buf(ec_short_x_pem, -1);
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_non_null(pkey);
    uint8_t x[33] = {0}, y[33] = {0};
    BIGNUM *bx = bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X),
           *by = bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y);
    assert_int_equal(BN_bn2binpad(bx, x + 1, 32), 32);
    assert_int_equal(BN_bn2binpad(by, y + 1, 32), 32);
    BN_free(bx);
    BN_free(by);
    assert_int_equal(x[1], 0); /* the key is the one this test needs */

    char *token = make(SIGN_ES256, pkey, NULL, "ec-z", NULL, claims());
    const struct {
        const uint8_t *x;
        size_t x_len;
        const uint8_t *y;
        size_t y_len;
        bool taken;
    } cases[] = {
        {x + 1, 32, y + 1, 32, true},  /* as RFC 7518 has it */
        {x + 2, 31, y + 1, 32, true},  /* the leading zero dropped */
        {x, 33, y, 33, true},          /* a sign byte before each */
        {x + 2, 30, y + 1, 32, false}, /* a byte of x missing that is not zero */
        {x + 1, 32, y + 2, 31, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct jwks *set = ec_set(pkey, cases[i].x, cases[i].x_len, cases[i].y, cases[i].y_len);
        if (!cases[i].taken) {
            assert_null(set);
            continue;
        }
        assert_non_null(set);
        assert_result(verify_with(token, set, &expect), JWT_OK);
        jwks_decref(set);
    }
    /* A sign byte that is not zero. */
    x[0] = 1;
    assert_null(ec_set(pkey, x, 33, y + 1, 32));
    free(token);
    EVP_PKEY_free(pkey);
}

/* A set lives as long as its last reference: a reader that took one keeps verifying after the
 * owner let go (a key rotation). */
static void test_references(void **state)
{
    (void)state;
    struct jwks *set = jwks_parse(jwks_text, strlen(jwks_text), NULL, 0);
    assert_non_null(set);
    struct jwks *reader = jwks_incref(set);
    assert_ptr_equal(reader, set);
    jwks_decref(set);
    char *token = good(SIGN_RS256);
    assert_result(verify_with(token, reader, &expect), JWT_OK);
    jwks_decref(reader);
    free(token);
    assert_null(jwks_incref(NULL));
    jwks_decref(NULL);
    assert_int_equal(jwks_size(NULL), 0);
}

struct worker {
    char *tokens[4];
    int ok;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    for (int round = 0; round < 25; round++)
        for (int i = 0; i < 4; i++) {
            json_t *c = NULL;
            if (jwt_verify(w->tokens[i], keys, &expect, &c) == JWT_OK)
                w->ok++;
            json_decref(c);
        }
    return NULL;
}

/* Threads share the set; each verification has its own context. */
static void test_threads(void **state)
{
    (void)state;
    enum { THREADS = 4 };
    struct worker w[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i].ok = 0;
        for (enum how how = SIGN_RS256; how <= SIGN_EDDSA; how++)
            w[i].tokens[how] = good(how);
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].ok, 100);
        for (int k = 0; k < 4; k++)
            free(w[i].tokens[k]);
    }
}

static void test_reasons(void **state)
{
    (void)state;
    for (int a = JWT_OK; a <= JWT_NOT_YET; a++) {
        assert_true(strlen(jwt_reason((enum jwt_result)a)) > 0);
        for (int b = JWT_OK; b < a; b++)
            assert_string_not_equal(jwt_reason((enum jwt_result)a), jwt_reason((enum jwt_result)b));
    }
    assert_string_equal(jwt_reason(JWT_EXPIRED), "expired");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_kept),
        cmocka_unit_test(test_each_algorithm),
        cmocka_unit_test(test_typ_accepted),
        cmocka_unit_test(test_no_kid),
        cmocka_unit_test(test_leeway),
        cmocka_unit_test(test_audience_array),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_hs256),
        cmocka_unit_test(test_alg_not_fitting_key),
        cmocka_unit_test(test_unknown_kid),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_issuer),
        cmocka_unit_test(test_audience),
        cmocka_unit_test(test_typ_refused),
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_shaped),
        cmocka_unit_test(test_jwks_refused),
        cmocka_unit_test(test_jwks_left_out),
        cmocka_unit_test(test_ec_coordinates),
        cmocka_unit_test(test_references),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_reasons),
    };
    return cmocka_run_group_tests_name("jwt", tests, setup, teardown);
}

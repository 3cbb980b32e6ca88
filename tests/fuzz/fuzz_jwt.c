/* Access tokens and key sets.
 *
 * The first byte chooses what the rest is:
 * - 0 mod 3: a token as it comes in a Bearer header. Nobody can sign without the key, so it is
 *   never accepted; a refusal leaves no claims, and what is not JWT-shaped is malformed.
 * - 1 mod 3: a header and a payload (split at the first NUL byte) signed with the Ed25519 key of
 *   the set (its signatures are deterministic), so the checks after the signature are reached.
 *   What is accepted must have what the header says it has: an alg of EdDSA, a typ of the
 *   three, no crit, iss and aud as expected, exp in the future.
 * - 2 mod 3: a JWK set, parsed and, when taken, used for a signed token.
 * The keys are fixed, so that a finding reproduces. */
#include "fuzz.h"

#include "crypto.h"
#include "jwt.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#define ISSUER   "https://id.example.nl/realms/werklab"
#define AUDIENCE "werklabd"
#define NOW      1800000000LL

static const char ed_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                             "MC4CAQAwBQYDK2VwBCIEIHxfyFFTAFxfVWJQReer43Yvf+yYoqz908rsy/ngXNHW\n"
                             "-----END PRIVATE KEY-----\n";

static EVP_PKEY *ed;
static struct jwks *keys;
static char *good_token;
static const struct jwt_expect expect = {ISSUER, AUDIENCE, NOW, 60};

static char *b64(const void *data, size_t len)
{
    char *out = malloc(crypto_base64url_len(len) + 1);
    FUZZ_CHECK(out != NULL);
    crypto_base64url_encode(data, len, out);
    return out;
}

/* header.payload.signature with Ed25519. */
static char *signed_token(const char *header, size_t header_len, const char *payload,
                          size_t payload_len)
{
    char *h = b64(header, header_len), *p = b64(payload, payload_len);
    size_t input_len = strlen(h) + 1 + strlen(p);
    char *token = malloc(input_len + 1 + crypto_base64url_len(64) + 1);
    FUZZ_CHECK(token != NULL);
    sprintf(token, "%s.%s", h, p);
    uint8_t sig[64];
    size_t sig_len = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    FUZZ_CHECK(ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, ed) == 1 &&
               EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)token, input_len) == 1);
    EVP_MD_CTX_free(ctx);
    token[input_len] = '.';
    crypto_base64url_encode(sig, sig_len, token + input_len + 1);
    free(h);
    free(p);
    return token;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_object_seed(1);
    BIO *bio = BIO_new_mem_buf(ed_pem, -1);
    ed = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    FUZZ_CHECK(ed != NULL);
    uint8_t raw[32];
    size_t raw_len = sizeof raw;
    FUZZ_CHECK(EVP_PKEY_get_raw_public_key(ed, raw, &raw_len) == 1);
    char *x = b64(raw, raw_len), text[256];
    snprintf(text, sizeof text,
             "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ed-1\",\"x\":\"%s\"}]}", x);
    free(x);
    keys = jwks_parse(text, strlen(text), NULL, 0);
    FUZZ_CHECK(keys != NULL && jwks_size(keys) == 1);
    static const char header[] = "{\"alg\":\"EdDSA\",\"kid\":\"ed-1\"}";
    static const char payload[] =
        "{\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\",\"exp\":1800000300,\"sub\":\"u\"}";
    good_token = signed_token(header, strlen(header), payload, strlen(payload));
    json_t *claims = NULL;
    FUZZ_CHECK(jwt_verify(good_token, keys, &expect, &claims) == JWT_OK);
    json_decref(claims);
    return 0;
}

/* Verifies; a refusal leaves no claims, an acceptance an object. */
static enum jwt_result verify(const char *token, const struct jwks *set, json_t **claims)
{
    *claims = (json_t *)claims;
    enum jwt_result r = jwt_verify(token, set, &expect, claims);
    FUZZ_CHECK((r == JWT_OK) == (*claims != NULL));
    FUZZ_CHECK(r == JWT_OK ? json_is_object(*claims) : true);
    FUZZ_CHECK(jwt_reason(r)[0] != '\0');
    if (!jwt_shaped(token) || strlen(token) > JWT_MAX_LEN)
        FUZZ_CHECK(r == JWT_MALFORMED);
    return r;
}

static void as_token(const uint8_t *data, size_t size)
{
    char *token = malloc(size + 1);
    FUZZ_CHECK(token != NULL);
    memcpy(token, data, size);
    token[size] = '\0';
    json_t *claims;
    FUZZ_CHECK(verify(token, keys, &claims) != JWT_OK);
    free(token);
}

static bool typ_fits(json_t *typ)
{
    const char *t = json_string_value(typ);
    return !typ || (t && (strcasecmp(t, "at+jwt") == 0 ||
                          strcasecmp(t, "application/at+jwt") == 0 || strcasecmp(t, "JWT") == 0));
}

static void as_signed(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t header_len = nul ? (size_t)(nul - data) : size;
    const char *payload = nul ? (const char *)nul + 1 : "";
    size_t payload_len = nul ? size - header_len - 1 : 0;
    char *token = signed_token((const char *)data, header_len, payload, payload_len);
    json_t *claims;
    if (verify(token, keys, &claims) == JWT_OK) {
        json_t *header = json_loadb((const char *)data, header_len, JSON_REJECT_DUPLICATES, NULL);
        FUZZ_CHECK(json_is_object(header));
        FUZZ_CHECK(strcmp(json_string_value(json_object_get(header, "alg")), "EdDSA") == 0);
        FUZZ_CHECK(!json_object_get(header, "crit"));
        FUZZ_CHECK(typ_fits(json_object_get(header, "typ")));
        json_t *kid = json_object_get(header, "kid");
        FUZZ_CHECK(!kid || strcmp(json_string_value(kid), "ed-1") == 0);
        FUZZ_CHECK(strcmp(json_string_value(json_object_get(claims, "iss")), ISSUER) == 0);
        FUZZ_CHECK(json_number_value(json_object_get(claims, "exp")) + 60 > (double)NOW);
        json_t *aud = json_object_get(claims, "aud");
        FUZZ_CHECK(json_is_string(aud) || json_is_array(aud));
        json_decref(header);
        json_decref(claims);
    }
    free(token);
}

static void as_key_set(const uint8_t *data, size_t size)
{
    char err[200];
    struct jwks *set = jwks_parse((const char *)data, size, err, sizeof err);
    if (!set) {
        FUZZ_CHECK(err[0] != '\0');
        return;
    }
    json_t *claims;
    enum jwt_result r = verify(good_token, set, &claims);
    /* Only a set holding the Ed25519 key (under its kid) can accept the token. */
    FUZZ_CHECK(r == JWT_OK || r == JWT_UNKNOWN_KEY || r == JWT_BAD_SIGNATURE ||
               r == JWT_BAD_ALGORITHM);
    json_decref(claims);
    jwks_decref(set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > JWT_MAX_LEN + 64)
        return 0;
    switch (data[0] % 3) {
    case 0: as_token(data + 1, size - 1); break;
    case 1: as_signed(data + 1, size - 1); break;
    default: as_key_set(data + 1, size - 1); break;
    }
    return 0;
}

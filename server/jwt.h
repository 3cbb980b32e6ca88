/* jwt: verifying signed JSON Web Tokens (RFC 7515, RFC 7519) with a JSON Web Key Set (RFC 7517).
 *
 * Only what an access token (RFC 9068) needs: the compact form, signatures RS256, PS256, ES256
 * and EdDSA (Ed25519), each only with a key of the matching kind (kty RSA, EC with crv P-256,
 * OKP with crv Ed25519); "none", every HMAC algorithm and anything else are refused. The
 * cryptography is OpenSSL's libcrypto (EVP); this module only parses and checks.
 *
 * A key set is immutable once parsed and counted by reference (incref/decref as in jansson, on
 * an atomic counter), so a key set can be replaced under readers that still verify with the old
 * one. */
#ifndef WERKLAB_JWT_H
#define WERKLAB_JWT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JWT_MAX_LEN 8192 /* characters of a token; longer is JWT_MALFORMED */

struct jwks;

/* Parses a JWK Set document ({"keys": [...]}). Keys of another kind (kty oct, another curve),
 * with "use" other than "sig", with an "alg" outside the four, or RSA keys under 2048 bits are
 * left out; a key that claims a supported kind but is broken (a member missing or not canonical
 * base64url, a point off the curve, an "alg" that does not fit its kty, a kid not a string)
 * makes the whole set invalid. EC coordinates shorter than 32 bytes (leading zeros dropped) or
 * with a zero sign byte are taken: some issuers write them so. An empty "keys" array is a set
 * of no keys. Returns a new set (one reference), or NULL with a message in err (may be NULL)
 * when text is not a usable set (not JSON, no keys array, a broken key). */
struct jwks *jwks_parse(const char *text, size_t len, char *err, size_t err_len);
struct jwks *jwks_incref(struct jwks *keys); /* returns keys; NULL-safe */
void jwks_decref(struct jwks *keys);         /* frees at the last reference; NULL-safe */
size_t jwks_size(const struct jwks *keys);   /* keys kept */

enum jwt_result {
    JWT_OK,
    JWT_MALFORMED,     /* not three base64url parts, header or payload not a JSON object, too long,
                          a "crit" header, a kid that is not a string */
    JWT_BAD_TYPE,      /* typ present and not "at+jwt", "application/at+jwt" or "JWT" (any case) */
    JWT_BAD_ALGORITHM, /* none, HMAC, unknown, or not fitting the key named by kid */
    JWT_UNKNOWN_KEY,   /* kid names no key of the set (a rotation may have happened), or there
                          is no kid and no key fits the algorithm */
    JWT_BAD_SIGNATURE,
    JWT_BAD_ISSUER,   /* iss missing or not exactly the expected issuer */
    JWT_BAD_AUDIENCE, /* aud (a string or an array of strings) does not hold the audience */
    JWT_NO_EXPIRY,    /* exp missing or not a number */
    JWT_EXPIRED,      /* exp + leeway <= now */
    JWT_NOT_YET,      /* nbf - leeway > now (nbf, when present, must be a number) */
};

struct jwt_expect {
    const char *issuer;   /* compared exactly */
    const char *audience; /* one of aud */
    int64_t now;          /* seconds since the epoch */
    unsigned leeway_s;    /* allowed clock difference for exp and nbf */
};

/* Verifies token (NUL-terminated) with keys: shape, header, algorithm against key, signature,
 * then the claims. On JWT_OK *claims is a new reference to the payload object (the caller
 * decrefs it); otherwise *claims is NULL. A token without kid is tried with every key that fits
 * its algorithm. Safe to call from many threads with the same set. */
enum jwt_result jwt_verify(const char *token, const struct jwks *keys,
                           const struct jwt_expect *expect, json_t **claims);
/* A short reason for the log, e.g. "expired". */
const char *jwt_reason(enum jwt_result r);
/* True when a Bearer value has the shape of a JWT (three non-empty base64url parts), so that it
 * is verified as a token and not looked up as a key. */
bool jwt_shaped(const char *bearer);

#endif

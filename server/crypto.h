/* crypto: the little cryptography werklabd needs, on OpenSSL's libcrypto.
 *
 * SHA-256 (FIPS 180-4) for storing API key secrets as hashes, HMAC-SHA-256 (RFC 2104) for
 * tamper-proof list cursors, both computed by libcrypto (EVP); randomness from the kernel; and
 * the text encodings they travel in, which are werklabd's own (strict, canonical base64url). */
#ifndef WERKLAB_CRYPTO_H
#define WERKLAB_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_SHA256_LEN 32

void crypto_sha256(const void *data, size_t len, uint8_t out[CRYPTO_SHA256_LEN]);
void crypto_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                        uint8_t out[CRYPTO_SHA256_LEN]);
/* Constant-time comparison, for secrets and MACs. */
bool crypto_equal(const void *a, const void *b, size_t len);
/* Fills out with len bytes from getrandom(2); aborts when the kernel cannot supply them. */
void crypto_random(void *out, size_t len);

/* A random (version 4) UUID, lowercase with hyphens. */
void crypto_uuid(char out[37]);
/* Lowercase hex: out must hold 2 * len + 1 bytes; it is NUL-terminated. */
void crypto_hex(const uint8_t *data, size_t len, char *out);
/* Decodes hex digits (either case) into out (room for max bytes); returns the number of bytes,
 * or -1 when hex is not an even number of hex digits or does not fit. */
long crypto_unhex(const char *hex, uint8_t *out, size_t max);
/* base64url without padding (RFC 4648 §5): out must hold crypto_base64url_len(len) + 1 bytes. */
size_t crypto_base64url_len(size_t len);
void crypto_base64url_encode(const uint8_t *data, size_t len, char *out);
/* Decodes unpadded base64url into out (room for len * 3 / 4 bytes); returns the number of bytes,
 * or -1 when the text is not canonical base64url. */
long crypto_base64url_decode(const char *text, size_t len, uint8_t *out);

#endif

/* token: signing and checking opaque tokens (token.h). */
#include "token.h"

#include "crypto.h"

#include <stdlib.h>
#include <string.h>

static unsigned char key[64];
static size_t key_len;

void token_set_key(const unsigned char *k, size_t len)
{
    key_len = len < sizeof key ? len : sizeof key;
    memcpy(key, k, key_len);
}

void token_sign(struct buf *out, const char *payload, size_t len)
{
    unsigned char mac[CRYPTO_SHA256_LEN];
    crypto_hmac_sha256(key, key_len, payload, len, mac);
    char *text = xmalloc(crypto_base64url_len(len) + 1);
    crypto_base64url_encode((const unsigned char *)payload, len, text);
    char mac_text[32];
    crypto_base64url_encode(mac, TOKEN_MAC_LEN, mac_text);
    buf_printf(out, "%s.%s", text, mac_text);
    free(text);
}

bool token_unsign(const char *token, struct buf *payload)
{
    const char *dot = strchr(token, '.');
    /* The signature decodes into a fixed buffer: anything longer than ours is not ours. */
    if (!dot || strlen(token) > TOKEN_MAX_LEN ||
        strlen(dot + 1) != crypto_base64url_len(TOKEN_MAC_LEN))
        return false;
    size_t text_len = (size_t)(dot - token);
    unsigned char *data = xmalloc(text_len + 1);
    long n = crypto_base64url_decode(token, text_len, data);
    unsigned char mac[CRYPTO_SHA256_LEN], given[CRYPTO_SHA256_LEN];
    bool ok = n > 0 && crypto_base64url_decode(dot + 1, strlen(dot + 1), given) == TOKEN_MAC_LEN;
    if (ok) {
        crypto_hmac_sha256(key, key_len, data, (size_t)n, mac);
        ok = crypto_equal(mac, given, TOKEN_MAC_LEN);
    }
    if (ok) {
        buf_reset(payload);
        buf_append(payload, data, (size_t)n);
    }
    free(data);
    return ok;
}

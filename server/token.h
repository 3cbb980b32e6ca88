/* token: opaque tokens the server gives out and takes back (list cursors, change feed positions).
 *
 * A token is the base64url payload, a dot, and the base64url first 16 bytes of its HMAC-SHA256
 * under one key. The key is set once at startup and is the same on every instance (it lives in
 * the database), so a token one instance gave out is good on all of them; the format is fixed,
 * because clients keep tokens across restarts and releases. The payload is not secret, only
 * unforgeable: callers put nothing in it a client may not read. */
#ifndef WERKLAB_TOKEN_H
#define WERKLAB_TOKEN_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>

#define TOKEN_MAC_LEN 16   /* bytes of the HMAC a token carries */
#define TOKEN_MAX_LEN 4096 /* longer text is never one of ours */

/* Sets the signing key (copied; at most 64 bytes are used). Call once, before serving. */
void token_set_key(const unsigned char *key, size_t len);
/* Appends the token for payload (len bytes) to out. */
void token_sign(struct buf *out, const char *payload, size_t len);
/* Puts the payload of a token this server signed into payload (replacing what it held) and
 * returns true; returns false, leaving payload as it was, for anything else. */
bool token_unsign(const char *token, struct buf *payload);

#endif

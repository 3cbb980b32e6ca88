/* webhooks: the sender of webhook deliveries (Standard Webhooks 1.0), on a thread of its own.
 *
 * Each enabled subscription (api/webhook_subscriptions.c) follows the change feed as a CRM
 * polling /v1/changes would: the next entry after its position that its events and view select
 * (webhook_selects() in migrations/0012_webhooks.sql), one at a time, and its position moves
 * past an entry only once the receiver answered 2xx. So every event is delivered at least once
 * and in feed order per subscription; nothing but the feed says what is to be sent.
 *
 * An entry's object is read at sending time as the subscription's view reads it: by a GET of the
 * entry's path on this very server with the subscription's view key, so a partner view gets
 * exactly what a partner key of those municipalities gets, with the same code, the same 404 and
 * the same audit entry. A deleted object, or one gone meanwhile, is {"id", "type", "deleted"}.
 *
 * Deliveries go out with libcurl's multi interface, one in flight per subscription and many
 * subscriptions at once, so a slow or failing receiver delays only its own. Each is a POST with
 * webhook-id (the entry's position: the same for every retry), webhook-timestamp and
 * webhook-signature (HMAC-SHA-256 with the secret, and with the previous one too while a
 * rotation lasts), checked by netguard.h before any connection, answered within
 * WEBHOOKS_CONNECT_S / the configured timeout, its answer read up to 64 KB and discarded.
 * A failure is retried after the configured back-off (with ±20 % jitter; a 429's Retry-After
 * when longer); after three days of failures the subscription is disabled, saying why.
 *
 * A subscription is sent for by one instance at a time: the sender holds a PostgreSQL advisory
 * lock on it, on its own connection, while a delivery is in flight; a killed instance's locks go
 * with its connection. */
#ifndef WERKLAB_WEBHOOKS_H
#define WERKLAB_WEBHOOKS_H

#include "config.h"

#define WEBHOOKS_CONNECT_S     5
#define WEBHOOKS_MAX_IN_FLIGHT 64    /* subscriptions delivered to at once by one instance */
#define WEBHOOKS_ANSWER_MAX    65536 /* bytes of a receiver's answer read; the rest is not */

/* Checks the settings (the retry schedule); 0, or -1 with a message for the user in err. */
int webhooks_configure(const struct config *cfg, char *err, size_t err_len);
/* Starts the sender (after the HTTP server: it reads objects through it). 0 or -1. */
int webhooks_start(const struct config *cfg);
/* Stops it: deliveries in flight are abandoned unacknowledged (sent again later). */
void webhooks_stop(void);

#endif

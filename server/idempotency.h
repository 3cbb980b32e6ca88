/* idempotency: POST with an Idempotency-Key header (IETF draft-ietf-httpapi-idempotency-key).
 *
 * The first answer to a key is stored in the same transaction as the POST's effect, and for 24
 * hours a retry with the same key and the same request gets that answer again
 * (Idempotent-Replayed: true) without doing anything. The same key with another request is 422;
 * a retry while the first is still running is 409 (a transaction-scoped advisory lock on the
 * key tells). Keys belong to the API key that sent them, or to the client address for public
 * POSTs. Answers of 5xx are not stored: the client may try again. */
#ifndef WERKLAB_IDEMPOTENCY_H
#define WERKLAB_IDEMPOTENCY_H

#include "http.h"

/* Before the handler of a POST. Returns true when the request goes on to its handler (inside a
 * transaction this module opened, when it carries a key); false when it has been answered. */
bool idempotency_begin(struct request *req);
/* After the handler: stores the answer and commits, or rolls back; may replace the answer
 * with 503 when the commit fails. */
void idempotency_finish(struct request *req);

#endif

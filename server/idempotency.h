/* idempotency: POST with an Idempotency-Key header (IETF draft-ietf-httpapi-idempotency-key).
 *
 * The first answer to a key is stored in the same transaction as the POST's effect, and for 24
 * hours a retry with the same key and the same request gets that answer again
 * (Idempotent-Replayed: true) without doing anything. The same key with another request is 422;
 * a retry while the first is still running is 409 (a transaction-scoped advisory lock on the
 * key tells). Keys belong to the API key that sent them, or to the client address for public
 * POSTs. Answers of 5xx are not stored: the client may try again.
 *
 * It is a phase (phase.h): before the handler it opens the transaction (and a savepoint for
 * the handler) or answers the replay; after the handler it keeps the handler's work for an
 * answer under 400, stores the answer and commits, or rolls everything back for a 5xx. When
 * that final commit fails the answer becomes 503: nothing is acknowledged that was not
 * committed. http knows none of this; it sees a phase. */
#ifndef WERKLAB_IDEMPOTENCY_H
#define WERKLAB_IDEMPOTENCY_H

/* Registers the phase, once, before serving. */
void idempotency_install(void);

#endif

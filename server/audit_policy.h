/* audit_policy: which requests the audit log records, as what, and when their answer may leave
 * (audit.h says what the log promises; audit.c writes it).
 *
 *   - Recorded: every write (POST create, PUT replace, PATCH update, DELETE delete) and every
 *     read that showed personal data (req->personal_shown: read), whatever its outcome; a
 *     handler may name the action itself (req->audit_action: list, export, erase...). The id
 *     acted on is the last UUID in the path, or the one a 201's Location names.
 *   - A write records its entry in its own transaction, through http_audit_now() and
 *     http_commit_audited() (declared in http.h, defined here), and marks req->audited.
 *   - A successful answer recorded by no transaction (a read of personal data, an export, an
 *     idempotent replay) is held until its entry is committed (the send step of the phase); when
 *     it cannot be, the client gets 503 instead.
 *   - Everything else recorded is queued when the request is complete (the complete step).
 *
 * An entry a handler committed inside a transaction a phase held open around it (idempotency's)
 * lasts only if that transaction does: the phase keeps the effects of answers under 400 only,
 * so for any other answer the entry is taken as lost and queued again with the status sent. */
#ifndef WERKLAB_AUDIT_POLICY_H
#define WERKLAB_AUDIT_POLICY_H

/* Registers the audit policy's phase (phase.h), once, before serving. */
void audit_policy_install(void);

#endif

/* audit: who did what. Every write and every read of personal data becomes a row in audit_log
 * (time, key, action, resource, id, status, request id), never with a secret or personal data.
 *
 * A successful write of a resource is recorded in its own transaction (audit_write(), through
 * http_audit_now()): it is in the log exactly when its effect is committed. Everything else (a
 * refused write, a read of personal data) is queued when the request completes and written in
 * batches by a job every AUDIT_FLUSH_MS, and once more at shutdown; a crash can lose the entries
 * of that last interval. A full queue blocks the request that adds to it until the job has
 * written. */
#ifndef WERKLAB_AUDIT_H
#define WERKLAB_AUDIT_H

#include "db.h"

#define AUDIT_FLUSH_MS 200

struct audit_entry {
    char key_id[37];      /* "" for no key */
    char action[16];      /* create, update, replace, delete, read, list, export, erase… */
    char resource[96];    /* the route, e.g. /v1/werklabs/{id}/participants/{participantId} */
    char resource_id[37]; /* "" for none */
    int status;
    char request_id[65]; /* "" when the client's id was not safe to keep */
    char at[40];         /* when the request was answered (RFC 3339); "": now */
};

/* Queues an entry (copied). */
void audit_add(const struct audit_entry *e);
/* Writes one entry now, on this thread's connection (inside its transaction, if one is open). */
enum db_status audit_write(const struct audit_entry *e);
/* Writes what is queued: the job, and the last call at shutdown. */
void audit_flush(void);

#endif

/* audit_log: how an audit entry is read and shown, for the audit log's own list and for a data
 * subject's export (what the log holds about a person as an actor). */
#ifndef WERKLAB_API_AUDIT_LOG_H
#define WERKLAB_API_AUDIT_LOG_H

#include "db.h"
#include "jsonw.h"

/* The select list of one entry, in the order audit_log_write_entry() reads it. */
#define AUDIT_LOG_ENTRY                                                                            \
    "id, at, key_id, action, resource, resource_id, status, request_id, subject, client"

/* Writes row `row` of r (selected with AUDIT_LOG_ENTRY first) as the entry's JSON object. */
void audit_log_write_entry(struct jsonw *w, const struct db_result *r, int row);

#endif

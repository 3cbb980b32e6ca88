/* changes: the change feed, GET /v1/changes (changes.c says how it keeps its order). */
#ifndef WERKLAB_CHANGES_H
#define WERKLAB_CHANGES_H

#include <stdbool.h>
#include <stddef.h>

/* Where an entry's object is read: its path for type, id and parent (a participant's werklab)
 * into out. False for a type the feed does not know. */
bool changes_path(const char *type, const char *id, const char *parent, char *out, size_t len);

/* True when partners read entries of type (its first len characters): the feed's types they
 * may read (PARTNER_TYPES in changes.c; webhook_selects() in migrations/0012_webhooks.sql holds
 * the same list for webhook subscriptions). */
bool changes_partners_read(const char *type, size_t len);

#endif

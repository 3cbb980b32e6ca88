/* changes: the change feed, GET /v1/changes (changes.c says how it keeps its order). */
#ifndef WERKLAB_CHANGES_H
#define WERKLAB_CHANGES_H

#include <stdbool.h>
#include <stddef.h>

/* Where an entry's object is read: its path for type, id and parent (a participant's werklab)
 * into out. False for a type the feed does not know. */
bool changes_path(const char *type, const char *id, const char *parent, char *out, size_t len);

#endif

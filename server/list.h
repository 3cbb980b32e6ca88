/* list: the one way the API answers a collection.
 *
 * Every list answers {"items": [...], "next": <link or null>}: a page of at most `limit` items
 * (a whole number from 1 to the list's maximum), and the link to the next page, which is this
 * request's own query with its `cursor` replaced; the same link goes in a `Link: <...>;
 * rel="next"` header. Cursors are tokens (token.h) of the position after the last item given:
 * opaque to clients, checked on the way back in. Resource lists (resource_list) are built
 * from the description; a hand-written list (the change feed, the audit log, the figures) reads
 * its own rows and uses the pieces below for the rest, so that every list checks its `limit`,
 * limits a partner key to its municipalities and writes its envelope alike. */
#ifndef WERKLAB_LIST_H
#define WERKLAB_LIST_H

#include "http.h"

/* Reads a `limit` query value (NULL: keep *limit) of 1 to max, or records why it is invalid
 * (http_invalid on "limit"). */
void list_read_limit(struct request *req, const char *text, long max, long *limit);

/* A caller's reach: what a caller is limited to, and so what lists, reads and writes keep to.
 * A partner key may be limited to municipalities; a trainer (a person signed in) reaches the
 * werklabs they are assigned to, and what belongs to them. Whoever else is not limited. */
enum reach {
    REACH_NONE = -1,
    REACH_MUNICIPALITY, /* param: "{id,id}" of the municipalities, as $n::uuid[] */
    REACH_WERKLAB,      /* param: the trainer's id, as $n::uuid */
    REACH_KINDS,
};

/* The kind of reach that limits the caller, and in *param (in req->pool, or the identity's)
 * the value that stands for it in SQL; REACH_NONE (and *param NULL) when nothing does. */
enum reach list_reach(struct request *req, const char **param);
/* Appends " AND (<expr lies in the reach of kind>)" with parameter $n the value list_reach
 * gave: one condition for each kind, so every statement limits the same way. */
void list_append_reach(struct buf *b, enum reach kind, const char *expr, int n);

/* "{id,id}" of the municipalities a partner key is limited to, for SQL ($n::uuid[]), in
 * req->pool. NULL when the caller is not limited to municipalities (staff, a partner of all, a
 * trainer: list_reach tells the trainer's). */
const char *list_scope(struct request *req);

/* Opens the envelope: {"items": [ — each item is then written to req->w. */
void list_begin(struct request *req);
/* Closes the envelope with "next": next (NULL: null), as given, no Link header, and answers
 * 200. For a list whose next link is not its own query with a cursor (the change feed). */
void list_end(struct request *req, const char *next);
/* Closes the envelope with the link to the next page, this request's query with cursor=cursor,
 * also as a Link header; cursor NULL: "next": null (the last page). Answers 200. */
void list_end_paged(struct request *req, const char *cursor);

#endif

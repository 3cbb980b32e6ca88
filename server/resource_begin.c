/* "Begin and guard": the start of a hand-written write to what belongs to a row (a werklab's
 * trainers, a session's attendance). Its end is http_commit_audited(); on any failure between
 * the two a handler answers and returns, and the request's end rolls the transaction back. */
#include "resource.h"

bool resource_begin_guarded(struct request *req, const struct resource *res, const char *id)
{
    if (db_begin() != DB_OK) {
        http_problem_unavailable(req);
        return false;
    }
    return resource_guard(req, res, id, true);
}

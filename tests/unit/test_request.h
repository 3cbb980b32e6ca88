/* A request as a handler sees it, for unit tests of the code that answers requests (bodies,
 * lists): no connection, no database; the answer is built in req->out and req->status. Static
 * functions, for the test files that include this header. */
#ifndef WERKLAB_TEST_REQUEST_H
#define WERKLAB_TEST_REQUEST_H

#include "http.h"

#include <stdlib.h>
#include <string.h>

static inline struct request *test_request(char *path)
{
    struct request *req = xcalloc(1, sizeof *req);
    req->path = path;
    req->who.role = ROLE_STAFF;
    jsonw_init(&req->w, &req->out);
    return req;
}

static inline void test_request_free(struct request *req)
{
    pool_free(&req->pool);
    json_decref(req->json);
    buf_free(&req->out);
    free(req);
}

/* The invalidParams code recorded for name, or NULL. */
static inline const char *test_invalid_code(const struct request *req, const char *name)
{
    for (int i = 0; i < req->n_invalid; i++)
        if (strcmp(req->invalid[i].name, name) == 0)
            return req->invalid[i].code;
    return NULL;
}

/* The value of a header the answer sets, or NULL. */
static inline const char *test_header(const struct request *req, const char *name)
{
    return http_response_header(req, name);
}

#endif

#include "audit_policy.h"

#include "audit.h"
#include "http.h"
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Copies src into dst of size bytes, cut short to fit, always NUL-terminated (as snprintf's
 * "%s" would, at a fraction of its price: an entry is made for every audited request). */
static void copy_field(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

_Static_assert(sizeof((struct audit_entry *)0)->at == LOG_TIME_LEN,
               "an entry's time is written by log_time_format()");

static struct http_phase phase; /* below */

/* When the answer was let go (the send step), or NULL before then. A refused request is recorded
 * once it is complete, and its connection reports that after the client has had the answer: by
 * then the client may have sent its next request, on another connection, and had it recorded.
 * The entry keeps the time of the answer, so that the log's order is the order of the answers. */
static const struct timespec *answered_at(const struct request *req)
{
    return req->phase_ctx[phase.index];
}

/* The id a request acted on: the last UUID in its path, or the one its 201 created. */
static void acted_on(const struct request *req, char *id)
{
    id[0] = '\0';
    for (int i = 0; i < req->params.count; i++)
        if (router_is_uuid(req->params.values[i], strlen(req->params.values[i])))
            memcpy(id, req->params.values[i], 37); /* 36 characters and the NUL */
    const char *location = req->status == 201 ? http_response_header(req, "Location") : NULL;
    const char *slash = location ? strrchr(location, '/') : NULL;
    if (slash && router_is_uuid(slash + 1, strlen(slash + 1)))
        snprintf(id, 37, "%s", slash + 1);
}

bool http_audit_entry(const struct request *req, int status, struct audit_entry *e)
{
    static const struct {
        enum http_method method;
        const char *action;
    } actions[] = {{HTTP_POST, "create"},
                   {HTTP_PUT, "replace"},
                   {HTTP_PATCH, "update"},
                   {HTTP_DELETE, "delete"},
                   {HTTP_GET, "read"}};
    if (!req->route || (req->method == HTTP_GET && !req->personal_shown))
        return false;
    const char *action = NULL;
    for (size_t i = 0; i < sizeof actions / sizeof *actions; i++)
        if (actions[i].method == req->method)
            action = actions[i].action;
    if (req->audit_action)
        action = req->audit_action;
    if (!action)
        return false;
    e->status = status;
    const struct timespec *answered = answered_at(req);
    if (answered)
        log_time_format(e->at, answered, true);
    else
        log_time_now(e->at, true);
    copy_field(e->key_id, sizeof e->key_id, req->who.key_id);
    copy_field(e->subject, sizeof e->subject, req->who.subject);
    copy_field(e->client, sizeof e->client, req->who.client);
    copy_field(e->action, sizeof e->action, action);
    copy_field(e->resource, sizeof e->resource, req->route->pattern);
    acted_on(req, e->resource_id);
    /* Only ids that cannot be personal data are kept: a client chooses its X-Request-Id. */
    size_t n = strlen(req->request_id);
    if (n <= 64 && strspn(req->request_id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                           "0123456789-_.:") == n)
        memcpy(e->request_id, req->request_id, n + 1);
    else
        e->request_id[0] = '\0';
    return true;
}

bool http_audit_now(struct request *req, int status, const char *id)
{
    struct audit_entry e;
    if (!http_audit_entry(req, status, &e))
        return true;
    if (id)
        snprintf(e.resource_id, sizeof e.resource_id, "%s", id);
    return audit_write(&e) == DB_OK;
}

bool http_commit_audited(struct request *req, int status, const char *id)
{
    struct audit_entry e;
    bool recorded = http_audit_entry(req, status, &e);
    if (recorded && id)
        snprintf(e.resource_id, sizeof e.resource_id, "%s", id);
    /* The entry and the COMMIT leave together: one round trip ends the write. */
    enum db_status committed = recorded ? audit_write_and_commit(&e) : db_commit();
    if (committed == DB_RETRY) {
        http_problem(req, 409, "The change collided with another one; try again.");
        return false;
    }
    if (committed != DB_OK) {
        http_problem_unavailable(req);
        return false;
    }
    req->audited = true;
    return true;
}

/* Sends the answer once its entry is committed, or, when it could not be, a 503 instead:
 * nothing the log does not hold is shown. */
static void answer_recorded(struct request *req, bool committed)
{
    if (committed) {
        req->audited = true;
        return;
    }
    http_discard_answer(req);
    req->personal_shown = false; /* shown to nobody after all */
    http_problem_unavailable(req);
}

/* An answer held for its entry: the writer's verdict, written before the wake. */
struct held {
    struct request *req;
    bool committed;
};

/* On the audit writer's thread. */
static void on_committed(void *ctx, bool committed)
{
    struct held *h = ctx;
    h->committed = committed;
    http_wake(h->req); /* publishes h->committed to the worker that resumes */
}

/* On a worker, woken. */
static void resume_held(struct request *req, void *ctx)
{
    answer_recorded(req, ((struct held *)ctx)->committed);
}

/* The send step: lets the answer go, unless it is a success the audit log records and no
 * transaction recorded (a read that showed personal data, an idempotent replay): that leaves
 * once its entry is committed, the connection waiting suspended meanwhile. */
static bool hold_until_recorded(struct request *req)
{
    struct timespec *answered = pool_alloc(&req->pool, sizeof *answered);
    clock_gettime(CLOCK_REALTIME, answered);
    req->phase_ctx[phase.index] = answered;
    /* An entry committed inside a transaction held around the handler went with it unless the
     * answer is one whose effects were kept (audit_policy.h). */
    if (req->audited && req->handler_depth > 0 && req->status >= 400)
        req->audited = false;
    struct audit_entry e;
    if (req->audited || req->status < 200 || req->status > 299 ||
        !http_audit_entry(req, req->status, &e))
        return true;
    struct held *h = pool_alloc(&req->pool, sizeof *h);
    h->req = req;
    if (!http_suspend(req, resume_held, h)) { /* stopping: written here and now */
        answer_recorded(req, audit_write(&e) == DB_OK);
        return true;
    }
    audit_submit(&e, on_committed, h);
    return false;
}

/* The complete step: what no transaction recorded is queued now, with the status sent.
 * Refused requests are recorded after they are answered. */
static void queue_unrecorded(struct request *req, int status)
{
    struct audit_entry e;
    if (!req->audited && http_audit_entry(req, status, &e))
        audit_add(&e);
}

static struct http_phase phase = {
    .name = "audit",
    .send = hold_until_recorded,
    .complete = queue_unrecorded,
};

void audit_policy_install(void)
{
    phase_add(&phase);
}

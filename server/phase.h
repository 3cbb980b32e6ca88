/* phase: what modules add to every request that reaches a handler, without http knowing them
 * (in the spirit of h2o's handlers, filters and loggers).
 *
 * A module describes its steps in one struct http_phase and registers it once, before serving
 * (its *_install() function, called from api_register()). For each request that passed http's
 * own checks (route, key, role, limits, media types, query, body):
 *
 *   before    in order of registration, before the handler. True: go on. False: the phase has
 *             answered; the phases after it and the handler do not run.
 *   after     once the handler has answered (after a deferred statement's continuation, too), in
 *             reverse order of registration: the phases that were entered are left like nested
 *             blocks. A phase whose before answered is not left; those before it are.
 *   send      in order, for every answer that leaves through dispatch, before it leaves. True:
 *             go on. False: the phase holds the answer; it has called http_suspend() and its
 *             continuation runs when it calls http_wake(); then the phases after it run.
 *   complete  in order, when the request is over (the status sent, or 499 when the client left
 *             first), also for requests answered before any handler was found.
 *
 * Any step may be NULL. A phase keeps per-request state in req->phase_ctx[phase->index]
 * (memory from req->pool). Phases run on the request's worker thread, one request at a time. */
#ifndef WERKLAB_PHASE_H
#define WERKLAB_PHASE_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_MAX_PHASES 8

struct request;

struct http_phase {
    const char *name;
    bool (*before)(struct request *req);
    void (*after)(struct request *req);
    bool (*send)(struct request *req);
    void (*complete)(struct request *req, int status);
    int index; /* set by phase_add(): the phase's slot in req->phase_ctx */
};

/* Registers a phase (it must outlive the server). Aborts beyond HTTP_MAX_PHASES, or when the
 * same phase is added twice: a startup error, not a request's. */
void phase_add(struct http_phase *phase);
/* Forgets every phase (for tests). */
void phase_reset(void);

/* For http.c: the steps, run over the phases registered. phase_before() returns false when a
 * phase answered; phase_after() leaves the phases entered (once; later calls do nothing);
 * phase_send() goes on from where the last call stopped and returns false when a phase holds
 * the answer. */
bool phase_before(struct request *req);
void phase_after(struct request *req);
bool phase_send(struct request *req);
void phase_complete(struct request *req, int status);

#endif

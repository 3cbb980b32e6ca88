#include "phase.h"

#include "http.h"
#include "log.h"

#include <stdlib.h>

static struct http_phase *phases[HTTP_MAX_PHASES];
static int n_phases;

void phase_add(struct http_phase *phase)
{
    for (int i = 0; i < n_phases; i++)
        if (phases[i] == phase) {
            log_event("error", "phase %s is added twice", phase->name);
            abort();
        }
    if (n_phases == HTTP_MAX_PHASES) {
        log_event("error", "phase %s: more than %d phases", phase->name, HTTP_MAX_PHASES);
        abort();
    }
    phase->index = n_phases;
    phases[n_phases++] = phase;
}

void phase_reset(void)
{
    n_phases = 0;
}

bool phase_before(struct request *req)
{
    req->phases_entered = 0;
    for (int i = 0; i < n_phases; i++) {
        if (phases[i]->before && !phases[i]->before(req))
            return false;
        req->phases_entered = i + 1;
    }
    return true;
}

void phase_after(struct request *req)
{
    while (req->phases_entered > 0) {
        const struct http_phase *p = phases[--req->phases_entered];
        if (p->after)
            p->after(req);
    }
}

bool phase_send(struct request *req)
{
    while (req->phases_sent < n_phases) {
        const struct http_phase *p = phases[req->phases_sent++];
        if (p->send && !p->send(req))
            return false;
    }
    return true;
}

void phase_complete(struct request *req, int status)
{
    for (int i = 0; i < n_phases; i++)
        if (phases[i]->complete)
            phases[i]->complete(req, status);
}

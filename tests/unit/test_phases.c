/* phase: before steps in order of registration, after steps in reverse (nested), a before that
 * answers stops the handler and the later phases and leaves only the phases entered; send steps
 * go on where a holding phase stopped; complete steps run in order with the status. */
#include "http.h"
#include "phase.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "aborts.h"

/* What ran, as a string: "a<" for a's before, "a>" for after, "a!" send, "a." complete. */
static char trace[128];
static int stop_at = -1; /* the index of the phase whose before answers */
static int hold_at = -1; /* the index of the phase whose send holds */

static void mark(const char *what)
{
    strcat(trace, what);
}

#define PHASE(x)                                                                                   \
    static struct http_phase x;                                                                    \
    static bool x##_before(struct request *req)                                                    \
    {                                                                                              \
        mark(#x "<");                                                                              \
        req->phase_ctx[x.index] = (void *)#x;                                                      \
        if (stop_at == x.index) {                                                                  \
            req->status = 409;                                                                     \
            return false;                                                                          \
        }                                                                                          \
        return true;                                                                               \
    }                                                                                              \
    static void x##_after(struct request *req)                                                     \
    {                                                                                              \
        assert_string_equal(req->phase_ctx[x.index], #x);                                          \
        mark(#x ">");                                                                              \
    }                                                                                              \
    static bool x##_send(struct request *req)                                                      \
    {                                                                                              \
        (void)req;                                                                                 \
        mark(#x "!");                                                                              \
        if (hold_at == x.index) {                                                                  \
            hold_at = -1;                                                                          \
            return false;                                                                          \
        }                                                                                          \
        return true;                                                                               \
    }                                                                                              \
    static void x##_complete(struct request *req, int status)                                      \
    {                                                                                              \
        assert_int_equal(status, req->status);                                                     \
        mark(#x ".");                                                                              \
    }                                                                                              \
    static struct http_phase x = {#x, x##_before, x##_after, x##_send, x##_complete, -1};

PHASE(a)
PHASE(b)
PHASE(c)

/* A phase with no steps at all is passed over. */
static struct http_phase empty = {.name = "empty"};

static int setup(void **state)
{
    (void)state;
    phase_reset();
    phase_add(&a);
    phase_add(&empty);
    phase_add(&b);
    phase_add(&c);
    return 0;
}

/* What dispatch() does around a handler. */
static void run(struct request *req)
{
    if (!phase_before(req)) {
        phase_after(req);
        return;
    }
    mark("H");
    phase_after(req);
}

static void reset(struct request *req)
{
    memset(req, 0, sizeof *req);
    trace[0] = '\0';
    stop_at = hold_at = -1;
}

static void test_indexes(void **state)
{
    (void)state;
    assert_int_equal(a.index, 0);
    assert_int_equal(empty.index, 1);
    assert_int_equal(b.index, 2);
    assert_int_equal(c.index, 3);
}

static void test_order(void **state)
{
    (void)state;
    struct request req;
    reset(&req);
    run(&req);
    assert_string_equal(trace, "a<b<c<Hc>b>a>");
    phase_after(&req); /* once only */
    assert_string_equal(trace, "a<b<c<Hc>b>a>");
    trace[0] = '\0';
    assert_true(phase_send(&req));
    assert_true(phase_send(&req)); /* all sent: nothing again */
    phase_complete(&req, 0);
    assert_string_equal(trace, "a!b!c!a.b.c.");
}

static void test_short_circuit(void **state)
{
    (void)state;
    struct request req;
    reset(&req);
    stop_at = b.index; /* b answers */
    run(&req);
    assert_string_equal(trace, "a<b<a>");
    assert_int_equal(req.status, 409);

    reset(&req);
    stop_at = a.index; /* the first answers: nothing to leave */
    run(&req);
    assert_string_equal(trace, "a<");
}

static void test_hold(void **state)
{
    (void)state;
    struct request req;
    reset(&req);
    hold_at = b.index; /* b holds the answer */
    assert_false(phase_send(&req));
    assert_string_equal(trace, "a!b!");
    /* Woken: the phases after the holder, not the holder again. */
    assert_true(phase_send(&req));
    assert_string_equal(trace, "a!b!c!");
}

/* Adds `extra` more phases, then p (in a child: aborts.h). */
struct adding {
    struct http_phase *p;
    int extra;
};

static void add_phases(const void *arg)
{
    const struct adding *add = arg;
    static struct http_phase more[HTTP_MAX_PHASES];
    for (int i = 0; i < add->extra; i++) {
        more[i].name = "more";
        phase_add(&more[i]);
    }
    if (add->p)
        phase_add(add->p);
}

static void test_refusals(void **state)
{
    (void)state;
    assert_true(aborts(add_phases, &(struct adding){&a, 0}));                         /* twice */
    assert_true(aborts(add_phases, &(struct adding){NULL, HTTP_MAX_PHASES - 4 + 1})); /* too many */
    assert_false(aborts(add_phases, &(struct adding){NULL, HTTP_MAX_PHASES - 4}));    /* control */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_indexes),       cmocka_unit_test(test_order),
        cmocka_unit_test(test_short_circuit), cmocka_unit_test(test_hold),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests_name("phases", tests, setup, NULL);
}

/* tap: what the checks in tests/db print, in the Test Anything Protocol that tests/api reads:
 * "ok N - what" or "not ok N - what: why" per check, then the plan "1..N". Included by one
 * check program each (the functions are its own, static). */
#ifndef WERKLAB_TESTS_DB_TAP_H
#define WERKLAB_TESTS_DB_TAP_H

#include <stdbool.h>
#include <stdio.h>

static int tap_failures, tap_number;

static void check(bool ok, const char *what, const char *why)
{
    tap_number++;
    if (ok) {
        printf("ok %d - %s\n", tap_number, what);
    } else {
        printf("not ok %d - %s: %s\n", tap_number, what, why);
        tap_failures++;
    }
    fflush(stdout);
}

/* Prints the plan; returns how many checks failed, the program's exit status. */
static int tap_done(void)
{
    printf("1..%d\n", tap_number);
    return tap_failures;
}

#endif

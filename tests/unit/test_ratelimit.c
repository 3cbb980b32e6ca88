/* ratelimit: token buckets per key. */
#include "ratelimit.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

static void test_a_burst_then_refusal(void **state)
{
    (void)state;
    struct ratelimit_verdict v;
    for (unsigned i = 0; i < 5; i++) {
        ratelimit_take("test", "burst", 5, 60, &v);
        assert_true(v.allowed);
        assert_int_equal(v.limit, 5);
        assert_int_equal(v.remaining, 4 - i);
    }
    ratelimit_take("test", "burst", 5, 60, &v);
    assert_false(v.allowed);
    assert_int_equal(v.remaining, 0);
    /* One token comes back every 12 s at 5 a minute. */
    assert_in_range(v.retry_after, 1, 12);
    assert_in_range(v.reset_s, 1, 60);
}

static void test_keys_and_scopes_are_apart(void **state)
{
    (void)state;
    struct ratelimit_verdict v;
    ratelimit_take("test", "one", 1, 60, &v);
    assert_true(v.allowed);
    ratelimit_take("test", "one", 1, 60, &v);
    assert_false(v.allowed);
    ratelimit_take("test", "two", 1, 60, &v);
    assert_true(v.allowed);
    ratelimit_take("other", "one", 1, 60, &v);
    assert_true(v.allowed);
}

/* Many keys at once: each keeps its own bucket (none is pushed out by the others while the
 * table has room). */
static void test_many_keys_keep_their_buckets(void **state)
{
    (void)state;
    struct ratelimit_verdict v;
    char key[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "many-%d", i);
        ratelimit_take("test", key, 1, 3600, &v);
        assert_true(v.allowed);
    }
    int refused = 0;
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "many-%d", i);
        ratelimit_take("test", key, 1, 3600, &v);
        refused += !v.allowed;
    }
    assert_int_equal(refused, 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_burst_then_refusal),
        cmocka_unit_test(test_keys_and_scopes_are_apart),
        cmocka_unit_test(test_many_keys_keep_their_buckets),
    };
    return cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL);
}

/* replicas: the list of replica URLs, the Consistency-Token's text, a replica's lag from the
 * primary's positions, which database a read goes to, and the memory of a caller's last write. */
#include "../../server/replicas.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void configure(const char *urls)
{
    char err[200];
    assert_int_equal(replicas_configure("postgresql://p@127.0.0.1/w", urls, 1000, err, sizeof err),
                     0);
}

static void test_urls(void **state)
{
    (void)state;
    char err[200];
    configure("");
    assert_int_equal(replicas_count(), 0);
    configure(" postgresql://a@127.0.0.1:5433/w , postgresql://b@127.0.0.1:5434/w");
    assert_int_equal(replicas_count(), 2);
    assert_string_equal(replicas_url(1), "postgresql://a@127.0.0.1:5433/w");
    assert_string_equal(replicas_url(2), "postgresql://b@127.0.0.1:5434/w");
    assert_string_equal(replicas_name(0), "primary");
    assert_string_equal(replicas_name(2), "replica-2");
    assert_int_equal(
        replicas_configure(NULL, "postgresql://a@h/w,,postgresql://b@h/w", 1000, err, sizeof err),
        -1);
    assert_non_null(strstr(err, "empty"));
    assert_int_equal(replicas_configure(NULL, "postgresql://a@h/w,", 1000, err, sizeof err), -1);
    assert_int_equal(replicas_configure(NULL, "a,b,c,d,e,f,g,h,i", 1000, err, sizeof err), -1);
    assert_non_null(strstr(err, "at most 8"));
}

static void test_tokens(void **state)
{
    (void)state;
    char text[REPLICAS_TOKEN_LEN + 1];
    uint64_t position = 0;
    replicas_format_token(0x16B374D848ull, text);
    assert_string_equal(text, "00000016b374d848");
    assert_true(replicas_parse_token(text, &position));
    assert_true(position == 0x16B374D848ull);
    replicas_format_token(UINT64_MAX, text);
    assert_true(replicas_parse_token(text, &position) && position == UINT64_MAX);
    const char *bad[] = {"",
                         "0",
                         "00000016B374D848",
                         "00000016b374d84",
                         "00000016b374d8480",
                         "0x000016b374d848",
                         " 0000016b374d848",
                         "00000016b374d84g",
                         "16/B374D848"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(replicas_parse_token(bad[i], &position));
    assert_false(replicas_parse_token(NULL, &position));
}

static void sample(int64_t at_ms, uint64_t position)
{
    newest = (newest + 1) % SAMPLES;
    samples[newest] = (struct sample){.at_ms = at_ms, .position = position};
    if (n_samples < SAMPLES)
        n_samples++;
}

static void test_lag(void **state)
{
    (void)state;
    n_samples = 0;
    assert_int_equal(lag_of(0, 1000), 0); /* nothing known of the primary yet */
    sample(1000, 100);
    sample(1200, 100); /* idle primary */
    sample(1400, 250); /* a write between 1200 and 1400 */
    sample(1600, 400);
    assert_int_equal(lag_of(400, 1700), 0);   /* has everything */
    assert_int_equal(lag_of(500, 1700), 0);   /* further than the last poll saw */
    assert_int_equal(lag_of(100, 1700), 300); /* misses what the primary had at 1400 */
    assert_int_equal(lag_of(250, 1700), 100);
    assert_int_equal(lag_of(100, 5000), 3600); /* paused: grows by the clock */
    /* Behind everything the ring remembers: at least as old as its oldest sample. */
    for (int i = 0; i < SAMPLES; i++)
        sample(2000 + 200 * i, 1000 + (uint64_t)i);
    assert_int_equal(lag_of(10, 2000 + 200 * SAMPLES), 200 * SAMPLES);
}

static void test_choose(void **state)
{
    (void)state;
    configure("postgresql://a@h/w,postgresql://b@h/w");
    atomic_store(&primary_position, 900);
    atomic_store(&replicas[1].state, REPLICA_UP);
    atomic_store(&replicas[1].replayed, 500);
    atomic_store(&replicas[2].state, REPLICA_LAGGING);
    atomic_store(&replicas[2].replayed, 800);
    uint64_t at = 0;
    for (int i = 0; i < 4; i++) { /* only the replica in use, whichever's turn it is */
        assert_int_equal(replicas_choose(0, &at), 1);
        assert_true(at == 500);
    }
    assert_int_equal(replicas_choose(500, &at), 1);
    /* Not replayed that far: the primary, which has it, at least at the token's position. */
    assert_int_equal(replicas_choose(501, &at), REPLICAS_PRIMARY);
    assert_true(at == 900);
    assert_int_equal(replicas_choose(950, &at), REPLICAS_PRIMARY);
    assert_true(at == 950);
    atomic_store(&replicas[2].state, REPLICA_UP);
    bool seen[3] = {0};
    for (int i = 0; i < 4; i++)
        seen[replicas_choose(0, &at)] = true;
    assert_true(seen[1] && seen[2] && !seen[0]); /* in turn */
    assert_int_equal(replicas_choose(700, &at), 2);
    replicas_failed(2);
    assert_int_equal(replicas_choose(700, &at), REPLICAS_PRIMARY);
    atomic_store(&replicas[1].state, REPLICA_NOT_IN_RECOVERY);
    assert_int_equal(replicas_choose(0, &at), REPLICAS_PRIMARY);
}

static void test_remembered_writes(void **state)
{
    (void)state;
    configure("postgresql://a@h/w");
    replicas_note_write("key-a", 700);
    replicas_note_write("key-a", 650); /* an older position never replaces a newer one */
    assert_true(replicas_recent_write("key-a") == 700);
    assert_true(replicas_recent_write("key-b") == 0);
    assert_true(replicas_recent_write("") == 0);
    replicas_note_write("", 800); /* nobody: nothing remembered */
    assert_true(replicas_recent_write("") == 0);
    /* Once the time is up, forgotten. */
    remembered.slot[caller_hash("key-a") % REMEMBERED].until_ms = now_ms() - 1;
    assert_true(replicas_recent_write("key-a") == 0);
    configure("");
    replicas_note_write("key-c", 900); /* without replicas there is nothing to remember */
    assert_true(replicas_recent_write("key-c") == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_lag),
        cmocka_unit_test(test_choose),
        cmocka_unit_test(test_remembered_writes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* prepared: the table of one connection's prepared statements, least recently used evicted. */
#include "prepared.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static char *sql_of(int i)
{
    static char text[8][64];
    static int next;
    char *s = text[next++ % 8];
    snprintf(s, 64, "SELECT * FROM t ORDER BY c LIMIT %d", i);
    return s;
}

/* Adds statement i and marks it prepared, as a connection does once it has sent it. */
static struct prepared_statement *add_prepared(struct prepared *t, int i, char *evicted)
{
    struct prepared_statement *st = prepared_add(t, sql_of(i), evicted);
    st->prepared = true;
    return st;
}

static void test_found_after_adding(void **state)
{
    (void)state;
    struct prepared *t = calloc(1, sizeof *t);
    char evicted[PREPARED_NAME];
    assert_null(prepared_find(t, "SELECT 1"));
    struct prepared_statement *st = prepared_add(t, "SELECT 1", evicted);
    assert_string_equal(evicted, "");
    assert_false(st->prepared);
    assert_string_equal(st->sql, "SELECT 1");
    st->prepared = true;
    assert_ptr_equal(prepared_find(t, "SELECT 1"), st);
    assert_null(prepared_find(t, "SELECT 2"));
    struct prepared_statement *other = prepared_add(t, "SELECT 2", evicted);
    assert_string_not_equal(other->name, st->name);
    prepared_clear(t);
    assert_null(prepared_find(t, "SELECT 1"));
    assert_int_equal(t->count, 0);
    free(t);
}

static void test_full_evicts_the_least_recently_used(void **state)
{
    (void)state;
    struct prepared *t = calloc(1, sizeof *t);
    char evicted[PREPARED_NAME], first[PREPARED_NAME], second[PREPARED_NAME];
    for (int i = 0; i < PREPARED_SLOTS; i++) {
        struct prepared_statement *st = add_prepared(t, i, evicted);
        assert_string_equal(evicted, ""); /* room left: nothing evicted */
        if (i == 0)
            memcpy(first, st->name, PREPARED_NAME);
        if (i == 1)
            memcpy(second, st->name, PREPARED_NAME);
    }
    for (int i = 0; i < PREPARED_SLOTS; i++)
        assert_non_null(prepared_find(t, sql_of(i)));
    /* All were just used in order 0, 1, ...: 0 is the least recent. Use it again: 1 is now. */
    assert_non_null(prepared_find(t, sql_of(0)));
    add_prepared(t, PREPARED_SLOTS, evicted);
    assert_string_equal(evicted, second);
    assert_null(prepared_find(t, sql_of(1)));
    assert_non_null(prepared_find(t, sql_of(0)));
    assert_non_null(prepared_find(t, sql_of(PREPARED_SLOTS)));
    /* Statement 1 comes back under a new name, never the one being deallocated. */
    struct prepared_statement *again = add_prepared(t, 1, evicted);
    assert_string_not_equal(again->name, second);
    assert_string_not_equal(again->name, first);
    assert_int_equal(t->count, PREPARED_SLOTS);
    prepared_clear(t);
    free(t);
}

static void test_an_unprepared_victim_needs_no_deallocation(void **state)
{
    (void)state;
    struct prepared *t = calloc(1, sizeof *t);
    char evicted[PREPARED_NAME];
    prepared_add(t, sql_of(0), evicted); /* its preparation failed: never marked prepared */
    for (int i = 1; i < PREPARED_SLOTS; i++)
        add_prepared(t, i, evicted);
    add_prepared(t, PREPARED_SLOTS, evicted);
    assert_string_equal(evicted, "");
    assert_null(prepared_find(t, sql_of(0)));
    prepared_clear(t);
    free(t);
}

static void test_evicts_since(void **state)
{
    (void)state;
    struct prepared *t = calloc(1, sizeof *t);
    char evicted[PREPARED_NAME];
    uint64_t start = t->clock;
    for (int i = 0; i < PREPARED_SLOTS - 1; i++) {
        add_prepared(t, i, evicted);
        assert_false(prepared_evicts_since(t, start)); /* room left */
    }
    add_prepared(t, PREPARED_SLOTS - 1, evicted);
    /* Full of statements used since start: adding would evict one of them. */
    assert_true(prepared_evicts_since(t, start));
    /* A new batch that used one statement so far: the victim is older than the batch. */
    uint64_t batch = t->clock;
    assert_non_null(prepared_find(t, sql_of(5)));
    assert_false(prepared_evicts_since(t, batch));
    for (int i = 0; i < PREPARED_SLOTS; i++)
        assert_non_null(prepared_find(t, sql_of(i)));
    assert_true(prepared_evicts_since(t, batch));
    prepared_clear(t);
    free(t);
}

/* Random finds and adds over more statements than slots, against a plain model of LRU: the
 * chains and the order of use stay consistent through thousands of evictions. */
static void test_against_a_model(void **state)
{
    (void)state;
    enum { DISTINCT = 3 * PREPARED_SLOTS, STEPS = 200000 };
    struct prepared *t = calloc(1, sizeof *t);
    static uint64_t last_use[DISTINCT]; /* 0: not in the model's table */
    static char names[DISTINCT][PREPARED_NAME];
    uint64_t now = 0;
    int in_table = 0, evictions = 0;
    srand(8);
    for (int step = 0; step < STEPS; step++) {
        int i = rand() % DISTINCT;
        now++;
        struct prepared_statement *st = prepared_find(t, sql_of(i));
        assert_true((st != NULL) == (last_use[i] != 0));
        if (st) {
            assert_string_equal(st->name, names[i]);
            assert_string_equal(st->sql, sql_of(i));
            last_use[i] = now;
            continue;
        }
        int victim = -1;
        if (in_table == PREPARED_SLOTS) {
            for (int k = 0; k < DISTINCT; k++)
                if (last_use[k] && (victim < 0 || last_use[k] < last_use[victim]))
                    victim = k;
        }
        char evicted[PREPARED_NAME];
        st = add_prepared(t, i, evicted);
        if (victim >= 0) {
            assert_string_equal(evicted, names[victim]);
            last_use[victim] = 0;
            evictions++;
        } else {
            assert_string_equal(evicted, "");
            in_table++;
        }
        memcpy(names[i], st->name, PREPARED_NAME);
        last_use[i] = now;
    }
    assert_int_equal(t->count, PREPARED_SLOTS);
    assert_true(evictions > STEPS / 2);
    prepared_clear(t);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_found_after_adding),
        cmocka_unit_test(test_full_evicts_the_least_recently_used),
        cmocka_unit_test(test_an_unprepared_victim_needs_no_deallocation),
        cmocka_unit_test(test_evicts_since),
        cmocka_unit_test(test_against_a_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

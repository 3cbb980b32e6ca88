/* pool: pieces are zeroed, aligned, distinct and survive later allocations; large pieces get a
 * chunk of their own without taking the small pieces' room; strdup and strndup copy; cleanups
 * run newest first at pool_free(), which leaves the pool empty and usable again. Leaks are left
 * to the ASan build. */
#include "pool.h"

#include <setjmp.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void test_empty(void **state)
{
    (void)state;
    struct pool p = {0};
    pool_free(&p); /* an empty pool frees nothing */
    assert_null(p.chunks);
    void *a = pool_alloc(&p, 0);
    void *b = pool_alloc(&p, 0);
    assert_non_null(a);
    assert_ptr_not_equal(a, b);
    pool_free(&p);
}

static void test_small_pieces(void **state)
{
    (void)state;
    struct pool p = {0};
    unsigned char *pieces[600];
    /* Enough to span several chunks; each piece filled with its own byte. */
    for (int i = 0; i < 600; i++) {
        size_t n = (size_t)(i % 37) + 1;
        pieces[i] = pool_alloc(&p, n);
        assert_int_equal((uintptr_t)pieces[i] % alignof(max_align_t), 0);
        for (size_t k = 0; k < n; k++)
            assert_int_equal(pieces[i][k], 0);
        memset(pieces[i], i & 0xff, n);
    }
    for (int i = 0; i < 600; i++) {
        size_t n = (size_t)(i % 37) + 1;
        for (size_t k = 0; k < n; k++)
            assert_int_equal(pieces[i][k], i & 0xff);
    }
    pool_free(&p);
    assert_null(p.chunks);
    assert_int_equal(p.used, 0);
}

static void test_large_piece(void **state)
{
    (void)state;
    struct pool p = {0};
    char *small = pool_alloc(&p, 16);
    size_t used = p.used;
    char *large = pool_alloc(&p, 3 * POOL_CHUNK);
    assert_int_equal(p.used, used); /* the small pieces keep their room */
    memset(large, 'x', 3 * POOL_CHUNK);
    char *next = pool_alloc(&p, 16);
    assert_ptr_equal(next, small + 16);
    pool_free(&p);
    /* A large piece first, then small ones. */
    large = pool_alloc(&p, POOL_CHUNK);
    memset(large, 'y', POOL_CHUNK);
    small = pool_alloc(&p, 8);
    assert_int_equal(small[0], 0);
    pool_free(&p);
}

static void test_strings(void **state)
{
    (void)state;
    struct pool p = {0};
    char text[] = "hello, pool";
    char *copy = pool_strdup(&p, text);
    text[0] = 'j';
    assert_string_equal(copy, "hello, pool");
    assert_string_equal(pool_strndup(&p, "abcdef", 3), "abc");
    assert_string_equal(pool_strndup(&p, "ab", 10), "ab");
    assert_string_equal(pool_strdup(&p, ""), "");
    pool_free(&p);
}

static char order[8];
static int n_order;

static void note(void *arg)
{
    order[n_order++] = *(const char *)arg;
}

static void note_and_add(void *arg)
{
    note(arg);
    /* A cleanup that adds one: it runs too, before the memory goes. */
    struct pool *p = *(struct pool **)((char *)arg + 8);
    static char late = 'z';
    pool_on_free(p, note, &late);
}

static void test_cleanups(void **state)
{
    (void)state;
    struct pool p = {0};
    n_order = 0;
    static char a = 'a', b = 'b';
    pool_on_free(&p, note, &a);
    pool_on_free(&p, note, &b);
    char *c = pool_alloc(&p, 16);
    c[0] = 'c';
    *(struct pool **)(c + 8) = &p;
    pool_on_free(&p, note_and_add, c);
    pool_free(&p);
    assert_int_equal(n_order, 4);
    assert_memory_equal(order, "czba", 4);
    /* Usable again, with no cleanup left over. */
    n_order = 0;
    pool_alloc(&p, 10);
    pool_free(&p);
    assert_int_equal(n_order, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),       cmocka_unit_test(test_small_pieces),
        cmocka_unit_test(test_large_piece), cmocka_unit_test(test_strings),
        cmocka_unit_test(test_cleanups),
    };
    return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}

/* buf: growth, the terminating NUL, printf past the small-buffer path, detach and reset. */
#include "buf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void assert_terminated(const struct buf *b)
{
    assert_non_null(b->data);
    assert_true(b->cap >= b->len + 1);
    assert_int_equal(b->data[b->len], '\0');
}

static void test_empty(void **state)
{
    (void)state;
    struct buf b = {0};
    buf_append(&b, "", 0);
    assert_terminated(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    buf_free(&b); /* twice is harmless */
}

static void test_puts_putc(void **state)
{
    (void)state;
    struct buf b = {0};
    buf_puts(&b, "ab");
    buf_putc(&b, 'c');
    buf_puts(&b, "");
    buf_append(&b, "defXYZ", 3);
    assert_int_equal(b.len, 6);
    assert_string_equal(b.data, "abcdef");
    assert_terminated(&b);
    buf_free(&b);
}

/* Appends of every size up to well past the first capacity keep contents, length and NUL. */
static void test_growth(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 7, 255, 256, 257, 1000, 4096, 100000};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        struct buf b = {0};
        size_t total = 0;
        char chunk[16];
        for (size_t i = 0; total < sizes[s]; i++) {
            size_t n = (i % 16) + 1;
            if (total + n > sizes[s])
                n = sizes[s] - total;
            for (size_t k = 0; k < n; k++)
                chunk[k] = (char)('a' + (total + k) % 26);
            buf_append(&b, chunk, n);
            total += n;
            assert_int_equal(b.len, total);
            assert_terminated(&b);
        }
        for (size_t k = 0; k < total; k++)
            assert_int_equal(b.data[k], 'a' + k % 26);
        buf_free(&b);
    }

    struct buf c = {0};
    for (int i = 0; i < 10000; i++)
        buf_putc(&c, (char)('0' + i % 10));
    assert_int_equal(c.len, 10000);
    assert_terminated(&c);
    assert_memory_equal(c.data + 9990, "0123456789", 10);
    buf_free(&c);
}

static void test_binary(void **state)
{
    (void)state;
    struct buf b = {0};
    buf_append(&b, "a\0b", 3);
    buf_putc(&b, '\0');
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "a\0b\0", 4);
    assert_terminated(&b);
    buf_free(&b);
}

static void test_array_element(void **state)
{
    (void)state;
    struct buf b = {0};
    buf_put_array_element(&b, "plain");
    buf_putc(&b, ',');
    buf_put_array_element(&b, "a\"b\\c,{d}");
    buf_putc(&b, ',');
    buf_put_array_element(&b, "");
    assert_string_equal(b.data, "\"plain\",\"a\\\"b\\\\c,{d}\",\"\"");
    buf_free(&b);
}

static void test_printf(void **state)
{
    (void)state;
    struct buf b = {0};
    buf_printf(&b, "%d-%s-%c", 42, "x", 'y');
    assert_string_equal(b.data, "42-x-y");
    buf_printf(&b, "%s", "");
    assert_int_equal(b.len, 6);

    /* Lengths around the 256-byte stack buffer, appended after what is there. */
    static const int widths[] = {254, 255, 256, 257, 1000, 70000};
    for (size_t i = 0; i < sizeof widths / sizeof *widths; i++) {
        buf_reset(&b);
        buf_puts(&b, "<");
        buf_printf(&b, "%0*d>", widths[i], 7);
        size_t want = 1 + (size_t)widths[i] + 1;
        assert_int_equal(b.len, want);
        assert_terminated(&b);
        assert_int_equal(strlen(b.data), want);
        assert_int_equal(b.data[0], '<');
        for (int k = 1; k < widths[i]; k++)
            assert_int_equal(b.data[k], '0');
        assert_int_equal(b.data[widths[i]], '7');
        assert_int_equal(b.data[want - 1], '>');
    }

    /* A long string argument, twice: the second call grows an already large buffer. */
    char *long_text = malloc(5001);
    assert_non_null(long_text);
    memset(long_text, 'q', 5000);
    long_text[5000] = '\0';
    buf_reset(&b);
    buf_printf(&b, "[%s]", long_text);
    buf_printf(&b, "(%s)", long_text);
    assert_int_equal(b.len, 10004);
    assert_int_equal(b.data[0], '[');
    assert_int_equal(b.data[5001], ']');
    assert_int_equal(b.data[5002], '(');
    assert_int_equal(b.data[10003], ')');
    assert_terminated(&b);
    free(long_text);
    buf_free(&b);
}

static void test_detach(void **state)
{
    (void)state;
    struct buf b = {0};
    buf_puts(&b, "hello");
    char *p = buf_detach(&b);
    assert_string_equal(p, "hello");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    free(p);

    /* Never NULL, even when nothing was appended. */
    p = buf_detach(&b);
    assert_non_null(p);
    assert_string_equal(p, "");
    assert_null(b.data);
    free(p);

    /* The buffer is usable again after a detach. */
    buf_puts(&b, "again");
    assert_string_equal(b.data, "again");
    buf_free(&b);
}

static void test_reset(void **state)
{
    (void)state;
    struct buf b = {0};
    buf_reset(&b); /* on an empty buffer */
    assert_null(b.data);
    assert_int_equal(b.len, 0);

    for (int i = 0; i < 100; i++)
        buf_puts(&b, "0123456789");
    char *data = b.data;
    size_t cap = b.cap;
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, data); /* keeps the memory */
    assert_int_equal(b.cap, cap);
    assert_string_equal(b.data, "");
    buf_puts(&b, "xy");
    assert_string_equal(b.data, "xy");
    assert_int_equal(b.len, 2);
    assert_ptr_equal(b.data, data);
    buf_free(&b);
}

static void test_x_allocators(void **state)
{
    (void)state;
    char *s = xstrdup("werklab");
    assert_string_equal(s, "werklab");
    free(s);
    s = xstrndup("werklab", 4);
    assert_string_equal(s, "werk");
    free(s);
    s = xstrndup("ab\0cd", 5);
    assert_memory_equal(s, "ab\0cd", 6);
    free(s);

    int *z = xcalloc(64, sizeof *z);
    for (int i = 0; i < 64; i++)
        assert_int_equal(z[i], 0);
    free(z);
    free(xcalloc(0, 0)); /* never NULL, even for nothing */
    void *m = xmalloc(0);
    assert_non_null(m);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),        cmocka_unit_test(test_puts_putc),
        cmocka_unit_test(test_growth),       cmocka_unit_test(test_binary),
        cmocka_unit_test(test_printf),       cmocka_unit_test(test_array_element),
        cmocka_unit_test(test_detach),       cmocka_unit_test(test_reset),
        cmocka_unit_test(test_x_allocators),
    };
    return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}

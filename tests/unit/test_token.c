/* token: what is signed comes back, byte for byte; a token with any byte changed, cut short,
 * signed under another key or not a token at all is refused, and the refused call leaves the
 * payload buffer as it was. The format is pinned by one known token: clients keep tokens. */
#include "token.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const unsigned char key[] = "unit test key, thirty-two bytes!";

static int setup(void **state)
{
    (void)state;
    token_set_key(key, sizeof key - 1);
    return 0;
}

static char *signed_text(const char *payload)
{
    struct buf b = {0};
    token_sign(&b, payload, strlen(payload));
    return buf_detach(&b);
}

static void round_trip(void **state)
{
    (void)state;
    static const char *const payloads[] = {"x", "12345:67", "[\"createdAt\",\"2025-03-01\",\"id\"]",
                                           "2025-03-01 09:30:00+00|42"};
    for (size_t i = 0; i < sizeof payloads / sizeof *payloads; i++) {
        char *t = signed_text(payloads[i]);
        struct buf out = {0};
        assert_true(token_unsign(t, &out));
        assert_int_equal(out.len, strlen(payloads[i]));
        assert_memory_equal(out.data, payloads[i], out.len);
        buf_free(&out);
        free(t);
    }
}

/* The bytes a token is made of: base64url of the payload, a dot, base64url of the first 16 bytes
 * of HMAC-SHA256 (computed independently, with Python's hmac module). */
static void format(void **state)
{
    (void)state;
    char *t = signed_text("abc");
    assert_string_equal(t, "YWJj.EK9lgNM-m-T-r2vGveHdFg");
    free(t);
}

static void tampered(void **state)
{
    (void)state;
    char *t = signed_text("12345:67");
    size_t n = strlen(t);
    struct buf out = {0};
    buf_puts(&out, "kept");
    for (size_t i = 0; i < n; i++) {
        char saved = t[i];
        t[i] = saved == 'A' ? 'B' : 'A';
        assert_false(token_unsign(t, &out));
        t[i] = saved;
    }
    assert_string_equal(out.data, "kept");
    t[n - 1] = '\0'; /* a MAC cut short */
    assert_false(token_unsign(t, &out));
    free(t);
    static const char *const junk[] = {"", ".", "abc", "abc.", ".abc", "YWJj.YWJj", "%%%.%%%"};
    for (size_t i = 0; i < sizeof junk / sizeof *junk; i++)
        assert_false(token_unsign(junk[i], &out));
    buf_free(&out);
}

static void too_long(void **state)
{
    (void)state;
    char *payload = malloc(TOKEN_MAX_LEN);
    memset(payload, 'a', TOKEN_MAX_LEN - 1);
    payload[TOKEN_MAX_LEN - 1] = '\0';
    char *t = signed_text(payload);
    struct buf out = {0};
    assert_false(token_unsign(t, &out));
    buf_free(&out);
    free(t);
    free(payload);
}

static void wrong_key(void **state)
{
    (void)state;
    char *t = signed_text("12345:67");
    static const unsigned char other[] = "another key, also thirty-two b!!";
    token_set_key(other, sizeof other - 1);
    struct buf out = {0};
    assert_false(token_unsign(t, &out));
    token_set_key(key, sizeof key - 1);
    assert_true(token_unsign(t, &out));
    buf_free(&out);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip), cmocka_unit_test(format),    cmocka_unit_test(tampered),
        cmocka_unit_test(too_long),   cmocka_unit_test(wrong_key),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

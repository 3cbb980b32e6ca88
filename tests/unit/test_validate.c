/* validate: the formats werklabd accepts, as tables of texts and verdicts. */
#include "validate.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

struct verdict {
    const char *text;
    bool valid;
};

#define CHECK(fn, cases)                                                                           \
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)                                      \
        if (fn(cases[i].text) != cases[i].valid)                                                   \
            fail_msg("%s(\"%s\") should be %s", #fn, cases[i].text,                                \
                     cases[i].valid ? "valid" : "invalid");

static void test_dates(void **state)
{
    (void)state;
    static const struct verdict cases[] = {
        {"2025-01-01", true},  {"2024-02-29", true},  {"2000-02-29", true},  {"1900-02-29", false},
        {"2025-02-29", false}, {"2025-04-31", false}, {"2025-13-01", false}, {"2025-00-10", false},
        {"2025-01-00", false}, {"25-01-01", false},   {"2025/01/01", false}, {"", false},
        {"0000-01-01", false}, {"2025-1-01", false},
    };
    CHECK(validate_date, cases);
}

static void test_timestamps(void **state)
{
    (void)state;
    static const struct verdict cases[] = {
        {"2025-03-01T09:30:00Z", true},
        {"2025-03-01T09:30:00.123456Z", true},
        {"2025-03-01t09:30:00z", true},
        {"2025-03-01T09:30:00+01:00", true},
        {"2025-03-01T23:59:60-12:30", true},
        {"2025-03-01T09:30:00.123456789Z", true},
        {"2025-03-01T09:30:00.1234567890Z", false},
        {"2025-03-01T09:30:00", false},
        {"2025-03-01 09:30:00Z", false},
        {"2025-03-01T24:00:00Z", false},
        {"2025-03-01T09:60:00Z", false},
        {"2025-03-01T09:30Z", false},
        {"2025-03-01T09:30:00.Z", false},
        {"2025-03-01T09:30:00+0100", false},
        {"2025-03-01T09:30:00+24:00", false},
        {"2025-03-01T09:30:00Z ", false},
        {"tomorrow", false},
        {"2025-02-30T09:30:00Z", false},
    };
    CHECK(validate_timestamp, cases);
}

static void test_emails(void **state)
{
    (void)state;
    static const struct verdict cases[] = {
        {"anna@example.nl", true},
        {"a.b+c_d@sub.example.org", true},
        {"x@y.nl", true},
        {"anna@example", false},
        {"anna@@example.nl", false},
        {"anna@exa@mple.nl", false},
        {"@example.nl", false},
        {"anna@", false},
        {"anna.@example.nl", false},
        {".anna@example.nl", false},
        {"an..na@example.nl", false},
        {"anna@example..nl", false},
        {"anna@-example.nl", false},
        {"anna@example.nl.", false},
        {"an na@example.nl", false},
        {"anna@exam_ple.nl", false},
        {"annë@example.nl", false},
        {"", false},
    };
    CHECK(validate_email, cases);
}

static void test_urls(void **state)
{
    (void)state;
    static const struct verdict cases[] = {
        {"https://www.lsabewoners.nl", true},
        {"http://buurthuis.nl/over-ons?x=1#y", true},
        {"https://", false},
        {"ftp://example.nl", false},
        {"www.example.nl", false},
        {"https://exa mple.nl", false},
        {"https://example.nl/\"quote", false},
        {"javascript:alert(1)", false},
        {"https://-bad", false},
    };
    CHECK(validate_url, cases);
}

static void test_phones(void **state)
{
    (void)state;
    static const struct verdict cases[] = {
        {"+31 6 1234 5678", true},
        {"(010) 123-4567", true},
        {"0612345678", true},
        {"12345", false},
        {"call me", false},
        {"+31 6 1234 5678 ext 2", false},
        {"", false},
    };
    CHECK(validate_phone, cases);
}

static void test_chars(void **state)
{
    (void)state;
    assert_int_equal(validate_chars(""), 0);
    assert_int_equal(validate_chars("abc"), 3);
    assert_int_equal(validate_chars("Fryslân"), 7);
    assert_int_equal(validate_chars("€"), 1);
    assert_int_equal(validate_chars("\xf0\x9f\x98\x80"), 1);
}

static void test_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t len;
        bool valid;
    } cases[] = {
        {"", 0, true},
        {"Fryslân", 8, true},
        {"\xf0\x9f\x98\x80", 4, true},
        {"a\0b", 3, true}, /* NUL is UTF-8; callers refuse it themselves */
        {"\xff\xfe", 2, false},
        {"caf\xe9", 4, false},          /* Latin-1 */
        {"\xc3", 1, false},             /* cut short */
        {"\xc0\xaf", 2, false},         /* overlong */
        {"\xe0\x80\xaf", 3, false},     /* overlong */
        {"\xed\xa0\x80", 3, false},     /* surrogate */
        {"\xf4\x90\x80\x80", 4, false}, /* above U+10FFFF */
        {"\xf0\x9f\x98", 3, false},     /* cut short */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (validate_utf8(cases[i].text, cases[i].len) != cases[i].valid)
            fail_msg("case %zu: expected %s", i, cases[i].valid ? "valid" : "invalid");
}

static void test_whole_numbers(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        long min, max;
        bool valid;
        long value;
    } cases[] = {
        {"1", 1, 200, true, 1},
        {"200", 1, 200, true, 200},
        {"0", 1, 200, false, 0},
        {"201", 1, 200, false, 0},
        {"-5", -10, 10, true, -5},
        {"+5", 0, 10, false, 0},
        {" 5", 0, 10, false, 0},
        {"5 ", 0, 10, false, 0},
        {"", 0, 10, false, 0},
        {"-", -10, 10, false, 0},
        {"1e3", 0, 5000, false, 0},
        {"0x10", 0, 100, false, 0},
        {"99999999999999999999", 0, 10, false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        long v = -1;
        bool ok = validate_whole(cases[i].text, cases[i].min, cases[i].max, &v);
        if (ok != cases[i].valid || (ok && v != cases[i].value))
            fail_msg("validate_whole(\"%s\", %ld, %ld) gave %d (%ld)", cases[i].text, cases[i].min,
                     cases[i].max, ok, v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dates),  cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_emails), cmocka_unit_test(test_urls),
        cmocka_unit_test(test_phones), cmocka_unit_test(test_chars),
        cmocka_unit_test(test_utf8),   cmocka_unit_test(test_whole_numbers),
    };
    return cmocka_run_group_tests_name("validate", tests, NULL, NULL);
}

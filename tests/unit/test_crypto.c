/* crypto: SHA-256 against FIPS 180-4, HMAC-SHA-256 against RFC 4231, base64url against RFC 4648
 * and its canonical-form rules, constant-time comparison and hex. */
#include "crypto.h"
#include "router.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void hex_of(const uint8_t *data, size_t len, char *out)
{
    crypto_hex(data, len, out);
}

/* ---- SHA-256 ---- */

static const char abc448[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
static const char abc896[] = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                             "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";

static void test_sha256_fips(void **state)
{
    (void)state;
    static const struct {
        const char *message;
        const char *digest;
    } cases[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {abc448, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {abc896, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint8_t digest[CRYPTO_SHA256_LEN];
        char text[2 * CRYPTO_SHA256_LEN + 1];
        crypto_sha256(cases[i].message, strlen(cases[i].message), digest);
        hex_of(digest, sizeof digest, text);
        assert_string_equal(text, cases[i].digest);
    }
}

static void test_sha256_million_a(void **state)
{
    (void)state;
    size_t n = 1000000;
    char *a = malloc(n);
    assert_non_null(a);
    memset(a, 'a', n);
    uint8_t digest[CRYPTO_SHA256_LEN];
    char text[2 * CRYPTO_SHA256_LEN + 1];
    crypto_sha256(a, n, digest);
    hex_of(digest, sizeof digest, text);
    assert_string_equal(text, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

/* Lengths around the padding boundaries: 55 bytes still fit the length in one block, 56 need a
 * second one. Expected values from Python's hashlib. */
static void test_sha256_block_boundaries(void **state)
{
    (void)state;
    static const struct {
        size_t n;
        const char *digest;
    } cases[] = {
        {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {57, "f13b2d724659eb3bf47f2dd6af1accc87b81f09f59f2b75e5c0bed6589dfe8c6"},
        {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
        {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
        {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
        {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
    };
    char a[128];
    memset(a, 'a', sizeof a);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint8_t digest[CRYPTO_SHA256_LEN];
        char text[2 * CRYPTO_SHA256_LEN + 1];
        crypto_sha256(a, cases[i].n, digest);
        hex_of(digest, sizeof digest, text);
        assert_string_equal(text, cases[i].digest);
    }
}

/* ---- HMAC-SHA-256 (RFC 4231; case 5 is a truncated MAC, not tested) ---- */

static void test_hmac_rfc4231(void **state)
{
    (void)state;
    uint8_t k0b[20], kaa20[20], k1to25[25], kaa131[131], ddd[50], cdd[50];
    memset(k0b, 0x0b, sizeof k0b);
    memset(kaa20, 0xaa, sizeof kaa20);
    for (size_t i = 0; i < sizeof k1to25; i++)
        k1to25[i] = (uint8_t)(i + 1);
    memset(kaa131, 0xaa, sizeof kaa131);
    memset(ddd, 0xdd, sizeof ddd);
    memset(cdd, 0xcd, sizeof cdd);
    static const char large_key[] = "Test Using Larger Than Block-Size Key - Hash Key First";
    static const char large_both[] =
        "This is a test using a larger than block-size key and a larger than block-size data. "
        "The key needs to be hashed before being used by the HMAC algorithm.";

    const struct {
        int number;
        const void *key;
        size_t key_len;
        const void *data;
        size_t data_len;
        const char *mac;
    } cases[] = {
        {1, k0b, sizeof k0b, "Hi There", 8,
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {2, "Jefe", 4, "what do ya want for nothing?", 28,
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {3, kaa20, sizeof kaa20, ddd, sizeof ddd,
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
        {4, k1to25, sizeof k1to25, cdd, sizeof cdd,
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
        {6, kaa131, sizeof kaa131, large_key, strlen(large_key),
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
        {7, kaa131, sizeof kaa131, large_both, strlen(large_both),
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
    };
    /* Each thread keeps its context keyed with the last key: the same key again, another key,
     * a key longer than a block (not kept) and back must all give the vectors. */
    static const size_t order[] = {0, 0, 1, 0, 2, 2, 3, 4, 4, 1, 5, 3, 3, 0};
    for (size_t o = 0; o < sizeof order / sizeof *order; o++) {
        size_t i = order[o];
        uint8_t mac[CRYPTO_SHA256_LEN];
        char text[2 * CRYPTO_SHA256_LEN + 1];
        crypto_hmac_sha256(cases[i].key, cases[i].key_len, cases[i].data, cases[i].data_len, mac);
        hex_of(mac, sizeof mac, text);
        if (strcmp(text, cases[i].mac) != 0)
            fail_msg("RFC 4231 case %d: got %s, want %s", cases[i].number, text, cases[i].mac);
    }
}

/* A key of exactly one block is used as is; one byte more is hashed first. Expected values from
 * Python's hmac module. */
static void test_hmac_key_boundaries(void **state)
{
    (void)state;
    uint8_t key[65];
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)i;
    uint8_t mac[CRYPTO_SHA256_LEN];
    char text[2 * CRYPTO_SHA256_LEN + 1];

    static const char d64[] = "key of exactly one block";
    crypto_hmac_sha256(key, 64, d64, strlen(d64), mac);
    hex_of(mac, sizeof mac, text);
    assert_string_equal(text, "9b56baaf04d2ab336830b1e8a0a14bade386e94a82ac8fd7837b72054396ba26");

    static const char d65[] = "key of one block and a byte";
    crypto_hmac_sha256(key, 65, d65, strlen(d65), mac);
    hex_of(mac, sizeof mac, text);
    assert_string_equal(text, "36ea4bb07624ae64d307fceceb469ecab26b1f955ce81b35bd92d4697f2909f3");

    crypto_hmac_sha256("", 0, "", 0, mac);
    hex_of(mac, sizeof mac, text);
    assert_string_equal(text, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

/* Threads signing at once, each with two keys in turn, each get the MACs of a lone caller:
 * the kept contexts are the thread's own. */
#define HMAC_THREADS 4
static void *sign_in_turn(void *arg)
{
    uint8_t want[2][CRYPTO_SHA256_LEN], mac[CRYPTO_SHA256_LEN];
    static const char *const keys[2] = {"key of the cursors", "Jefe"};
    memcpy(want, arg, sizeof want);
    for (int i = 0; i < 2000; i++) {
        const char *k = keys[i % 2];
        crypto_hmac_sha256(k, strlen(k), "what do ya want for nothing?", 28, mac);
        if (memcmp(mac, want[i % 2], sizeof mac) != 0)
            return (void *)1;
    }
    return NULL;
}

static void test_hmac_threads(void **state)
{
    (void)state;
    uint8_t want[2][CRYPTO_SHA256_LEN];
    crypto_hmac_sha256("key of the cursors", 18, "what do ya want for nothing?", 28, want[0]);
    crypto_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, want[1]);
    char text[2 * CRYPTO_SHA256_LEN + 1];
    hex_of(want[1], sizeof want[1], text);
    assert_string_equal(text, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    pthread_t threads[HMAC_THREADS];
    for (int i = 0; i < HMAC_THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, sign_in_turn, want), 0);
    for (int i = 0; i < HMAC_THREADS; i++) {
        void *failed = NULL;
        pthread_join(threads[i], &failed);
        assert_null(failed);
    }
}

/* ---- base64url ---- */

static void test_base64url_rfc4648(void **state)
{
    (void)state;
    static const struct {
        const char *data;
        size_t len;
        const char *text;
    } cases[] = {
        {"", 0, ""},
        {"f", 1, "Zg"},
        {"fo", 2, "Zm8"},
        {"foo", 3, "Zm9v"},
        {"foob", 4, "Zm9vYg"},
        {"fooba", 5, "Zm9vYmE"},
        {"foobar", 6, "Zm9vYmFy"},
        /* The URL alphabet: - and _ where base64 has + and /. */
        {"\xfb\xff", 2, "-_8"},
        {"\xff\xff\xff", 3, "____"},
        {"\xfb\xef\xbe", 3, "----"},
        {"\x00\x00\x00", 3, "AAAA"},
        {"\x00", 1, "AA"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char text[16];
        uint8_t back[16];
        size_t want = strlen(cases[i].text);
        assert_int_equal(crypto_base64url_len(cases[i].len), want);
        crypto_base64url_encode((const uint8_t *)cases[i].data, cases[i].len, text);
        assert_string_equal(text, cases[i].text);
        long n = crypto_base64url_decode(cases[i].text, want, back);
        assert_int_equal(n, (long)cases[i].len);
        assert_memory_equal(back, cases[i].data, cases[i].len);
    }
}

static bool in_alphabet(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Every length 0..64, with three byte patterns; the decoder must not write past len * 3 / 4. */
static void test_base64url_round_trip(void **state)
{
    (void)state;
    for (int pattern = 0; pattern < 3; pattern++) {
        for (size_t len = 0; len <= 64; len++) {
            uint8_t data[64];
            for (size_t i = 0; i < len; i++)
                data[i] = pattern == 0   ? (uint8_t)i
                          : pattern == 1 ? (uint8_t)(255 - i)
                                         : (uint8_t)(i * 37 + 11);
            char text[100];
            memset(text, '#', sizeof text);
            crypto_base64url_encode(data, len, text);
            size_t text_len = crypto_base64url_len(len);
            assert_int_equal(strlen(text), text_len);
            assert_int_equal(text_len, (len * 8 + 5) / 6);
            for (size_t i = 0; i < text_len; i++)
                assert_true(in_alphabet(text[i]));

            uint8_t back[64 + 8];
            memset(back, 0xA5, sizeof back);
            long n = crypto_base64url_decode(text, text_len, back);
            assert_int_equal(n, (long)len);
            assert_memory_equal(back, data, len);
            for (size_t i = text_len * 3 / 4; i < sizeof back; i++)
                assert_int_equal(back[i], 0xA5);
        }
    }
}

static void test_base64url_rejects(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t len; /* 0: strlen */
        const char *why;
    } cases[] = {
        {"Zg==", 0, "padding"},
        {"Zg=", 0, "padding"},
        {"Zm8=", 0, "padding"},
        {"=", 0, "padding alone"},
        {"Z", 0, "one character left over"},
        {"Zm9vY", 0, "one character left over"},
        {"Zm9v+", 0, "standard alphabet +"},
        {"Zm9v/w", 0, "standard alphabet /"},
        {"Zm 9v", 0, "space"},
        {"Zm9v\n", 0, "newline"},
        {"Zm.v", 0, "dot"},
        {"Zm9v\xc3\xa9", 0, "non-ASCII"},
        {"Zm\0v", 4, "NUL"},
        {"Zh", 0, "non-canonical trailing bits (1 byte)"},
        {"Zm9", 0, "non-canonical trailing bits (2 bytes)"},
        {"Zm9vYh", 0, "non-canonical trailing bits after a group"},
        {"__", 0, "non-canonical: 1 byte with all bits set"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint8_t out[16];
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        long n = crypto_base64url_decode(cases[i].text, len, out);
        if (n != -1)
            fail_msg("'%s' (%s) decoded to %ld bytes; want -1", cases[i].text, cases[i].why, n);
    }
}

/* For a tail of 2 characters 4 bits are left over, for 3 characters 2: exactly 64 / 16 and
 * 64 / 4 of the possible last characters are canonical. */
static void test_base64url_canonical_tails(void **state)
{
    (void)state;
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    static const struct {
        const char *prefix;
        int canonical;
    } cases[] = {{"Z", 4}, {"Zm", 16}, {"Zm9vZ", 4}, {"Zm9vYm", 16}, {"Zm9v", 0}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int accepted = 0;
        for (int i = 0; i < 64; i++) {
            char text[16];
            snprintf(text, sizeof text, "%s%c", cases[c].prefix, alphabet[i]);
            uint8_t out[16];
            long n = crypto_base64url_decode(text, strlen(text), out);
            if (n >= 0) {
                accepted++;
                /* What is accepted encodes back to itself. */
                char again[16];
                crypto_base64url_encode(out, (size_t)n, again);
                assert_string_equal(again, text);
            }
        }
        assert_int_equal(accepted, cases[c].canonical);
    }
}

/* ---- comparison, hex, randomness ---- */

static void test_equal(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    for (size_t i = 0; i < sizeof a; i++)
        a[i] = b[i] = (uint8_t)(i * 7);
    assert_true(crypto_equal(a, b, sizeof a));
    assert_true(crypto_equal(a, b, 0));
    static const size_t positions[] = {0, 1, 15, 31};
    for (size_t p = 0; p < sizeof positions / sizeof *positions; p++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(b, a, sizeof a);
            b[positions[p]] ^= (uint8_t)(1u << bit);
            assert_false(crypto_equal(a, b, sizeof a));
            assert_true(crypto_equal(a, b, positions[p])); /* the prefix before it is equal */
        }
    }
}

static void test_hex(void **state)
{
    (void)state;
    static const uint8_t data[] = {0x00, 0x01, 0x09, 0x0a, 0x7f, 0x80, 0xab, 0xff};
    char out[2 * sizeof data + 1];
    memset(out, '#', sizeof out);
    crypto_hex(data, sizeof data, out);
    assert_string_equal(out, "0001090a7f80abff");
    memset(out, '#', sizeof out);
    crypto_hex(data, 0, out);
    assert_string_equal(out, "");
}

static void test_unhex(void **state)
{
    (void)state;
    uint8_t out[4], round[3] = {0x00, 0x7f, 0xff};
    char hex[7];
    crypto_hex(round, sizeof round, hex);
    assert_int_equal(crypto_unhex(hex, out, sizeof out), 3);
    assert_memory_equal(out, round, 3);
    assert_int_equal(crypto_unhex("A0fF", out, sizeof out), 2);
    assert_int_equal(out[0], 0xa0);
    assert_int_equal(out[1], 0xff);
    assert_int_equal(crypto_unhex("", out, sizeof out), 0);
    const char *refused[] = {"a", "0g", " f", "+f", "0x", "0011223344"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
        if (crypto_unhex(refused[i], out, sizeof out) != -1)
            fail_msg("crypto_unhex(\"%s\") should be refused", refused[i]);
}

static void test_random(void **state)
{
    (void)state;
    uint8_t a[32] = {0}, b[32] = {0}, zero[32] = {0};
    crypto_random(a, sizeof a);
    crypto_random(b, sizeof b);
    assert_memory_not_equal(a, zero, sizeof a);
    assert_memory_not_equal(a, b, sizeof a);
    crypto_random(a, 0);

    size_t n = 1 << 20;
    uint8_t *big = calloc(1, n);
    assert_non_null(big);
    crypto_random(big, n);
    size_t zeros = 0;
    for (size_t i = n - 4096; i < n; i++)
        zeros += big[i] == 0;
    assert_true(zeros < 64); /* about 16 expected: the tail was filled too */
    free(big);
}

/* Request ids: version 4 UUIDs in canonical form, none repeated, also across the refills of the
 * per-thread pool (256 a refill). */
static void test_uuid(void **state)
{
    (void)state;
    enum { N = 1000 };
    static char ids[N][37];
    for (int i = 0; i < N; i++) {
        crypto_uuid(ids[i]);
        assert_int_equal(strlen(ids[i]), 36);
        assert_true(router_is_uuid(ids[i], 36));
        assert_int_equal(ids[i][14], '4');
        assert_non_null(strchr("89ab", ids[i][19]));
        for (const char *p = ids[i]; *p; p++)
            assert_true(*p == '-' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
        for (int k = 0; k < i; k++)
            assert_string_not_equal(ids[i], ids[k]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_fips),
        cmocka_unit_test(test_sha256_million_a),
        cmocka_unit_test(test_sha256_block_boundaries),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_hmac_key_boundaries),
        cmocka_unit_test(test_hmac_threads),
        cmocka_unit_test(test_base64url_rfc4648),
        cmocka_unit_test(test_base64url_round_trip),
        cmocka_unit_test(test_base64url_rejects),
        cmocka_unit_test(test_base64url_canonical_tails),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_unhex),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_uuid),
    };
    return cmocka_run_group_tests_name("crypto", tests, NULL, NULL);
}

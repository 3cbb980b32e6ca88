/* proxies: the list's parser (good lists, and every bad entry refused with the entry named), which
 * peers are trusted at the edges of each network, and the client's address from X-Forwarded-For:
 * the right-most untrusted entry, trusted hops passed over, malformed entries never taken. */
#include "../../server/proxies.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include <sys/un.h>

/* A peer from its text: IPv4 as AF_INET, anything else as AF_INET6. */
struct peer {
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
    };
};

static const struct sockaddr *peer(struct peer *p, const char *text)
{
    memset(p, 0, sizeof *p);
    if (inet_pton(AF_INET, text, &p->in4.sin_addr) == 1) {
        p->in4.sin_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, text, &p->in6.sin6_addr), 1);
        p->in6.sin6_family = AF_INET6;
    }
    return &p->sa;
}

static void parse_ok(struct proxies *p, const char *list)
{
    char err[256] = "";
    if (proxies_parse(p, list, err, sizeof err) != 0)
        fail_msg("'%s' refused: %s", list ? list : "(null)", err);
}

/* ------------------------------------------------------------------ parsing */

static void test_parse_good(void **state)
{
    (void)state;
    static struct proxies p;
    static const struct {
        const char *list;
        size_t n;
    } cases[] = {
        {"", 0},
        {"  ,\t, ", 0},
        {"127.0.0.1", 1},
        {"10.0.0.0/8, 192.168.1.0/24 ,::1,fd00::/8", 4},
        {",,1.2.3.4,,", 1},
        {"\t10.0.0.0/8\t", 1},
        {"0.0.0.0/0", 1},
        {"::/0", 1},
        {"1.2.3.4/32,2001:db8::1/128", 2},
        {"::ffff:10.0.0.0/104", 1},
        {"2001:0db8:0000:0000:0000:ffff:192.168.100.228/128", 1},
    };
    parse_ok(&p, NULL);
    assert_int_equal(p.n, 0);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        parse_ok(&p, cases[i].list);
        if (p.n != cases[i].n)
            fail_msg("'%s': %zu entries, not %zu", cases[i].list, p.n, cases[i].n);
    }
    parse_ok(&p, "10.0.0.0/8");
    assert_int_equal(p.nets[0].bits, 96 + 8);
    parse_ok(&p, "fd00::/8");
    assert_int_equal(p.nets[0].bits, 8);
    parse_ok(&p, "::1");
    assert_int_equal(p.nets[0].bits, 128);
}

static void test_parse_bad(void **state)
{
    (void)state;
    static struct proxies p;
    static const struct {
        const char *list;
        const char *named; /* in the message */
    } cases[] = {
        {"localhost", "'localhost' is not an IPv4 or IPv6 address or network"},
        {"10.0.0.0/8,proxy.example.nl", "'proxy.example.nl' is not"},
        {"10.0.0.1/8", "'10.0.0.1/8' has bits set after its prefix"},
        {"fd00::1/8", "'fd00::1/8' has bits set after its prefix"},
        {"192.168.1.128/24", "'192.168.1.128/24' has bits"},
        {"10.0.0.0/33", "'10.0.0.0/33' is not"},
        {"::/129", "'::/129' is not"},
        {"10.0.0.0/", "'10.0.0.0/' is not"},
        {"10.0.0.0/+8", "'10.0.0.0/+8' is not"},
        {"10.0.0.0/-8", "'10.0.0.0/-8' is not"},
        {"10.0.0.0/08", "'10.0.0.0/08' is not"},
        {"10.0.0.0/ 8", "'10.0.0.0/ 8' is not"},
        {"10.0.0.0/8/8", "'10.0.0.0/8/8' is not"},
        {"10.0.0.0/0008", "'10.0.0.0/0008' is not"},
        {"1.2.3.4:80", "'1.2.3.4:80' is not"},
        {"[::1]", "'[::1]' is not"},
        {"fe80::1%eth0", "'fe80::1%eth0' is not"},
        {"10.0.0", "'10.0.0' is not"},
        {"010.0.0.1", "'010.0.0.1' is not"},
        {"1.2.3.4 5.6.7.8", "'1.2.3.4 5.6.7.8' is not"},
        {"/8", "'/8' is not"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[256] = "";
        p.n = 7;
        if (proxies_parse(&p, cases[i].list, err, sizeof err) != -1)
            fail_msg("'%s' accepted", cases[i].list);
        if (!strstr(err, cases[i].named) || strncmp(err, "trusted-proxies: ", 17) != 0)
            fail_msg("'%s': message '%s' does not name it", cases[i].list, err);
        assert_int_equal(p.n, 0);
    }

    /* PROXIES_MAX entries, and one more. */
    char list[PROXIES_MAX * 16 + 32] = "";
    for (int i = 0; i < PROXIES_MAX; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "10.0.%d.%d,", i / 256, i % 256);
    parse_ok(&p, list);
    assert_int_equal(p.n, PROXIES_MAX);
    strcat(list, "10.1.0.0");
    char err[256];
    assert_int_equal(proxies_parse(&p, list, err, sizeof err), -1);
    assert_non_null(strstr(err, "more than 128"));
    assert_int_equal(p.n, 0);
}

/* ------------------------------------------------------------------ trusted peers */

static bool trusted(const struct proxies *p, const char *text)
{
    struct peer a;
    return proxies_trusted(p, peer(&a, text));
}

static void test_trusted_edges(void **state)
{
    (void)state;
    static struct proxies p;
    parse_ok(&p, "192.168.1.0/24, 10.0.0.0/23, 172.16.0.7, fd00::/8, 2001:db8::/127");
    const char *in[] = {"192.168.1.0", "192.168.1.255", "10.0.0.0", "10.0.1.255", "172.16.0.7",
                        "fd00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                        "2001:db8::", "2001:db8::1",
                        /* an IPv4 peer as an IPv6 socket reports it */
                        "::ffff:192.168.1.9", "::ffff:172.16.0.7"};
    const char *out[] = {"192.168.0.255", "192.168.2.0", "10.0.2.0", "9.255.255.255", "172.16.0.6",
                         "172.16.0.8", "fc00::", "fe00::", "2001:db8::2", "::1", "127.0.0.1",
                         /* an IPv6 address whose last 32 bits look like a trusted IPv4 one */
                         "::c0a8:101", "64:ff9b::c0a8:101"};
    for (size_t i = 0; i < sizeof in / sizeof *in; i++)
        if (!trusted(&p, in[i]))
            fail_msg("%s is not trusted", in[i]);
    for (size_t i = 0; i < sizeof out / sizeof *out; i++)
        if (trusted(&p, out[i]))
            fail_msg("%s is trusted", out[i]);

    /* 0.0.0.0/0 is every IPv4 peer and no IPv6 one; ::/0 is every peer. */
    parse_ok(&p, "0.0.0.0/0");
    assert_true(trusted(&p, "203.0.113.1"));
    assert_true(trusted(&p, "::ffff:203.0.113.1"));
    assert_false(trusted(&p, "2001:db8::1"));
    parse_ok(&p, "::/0");
    assert_true(trusted(&p, "203.0.113.1"));
    assert_true(trusted(&p, "2001:db8::1"));

    /* The empty table trusts nobody; NULL and other families are never trusted. */
    parse_ok(&p, "");
    assert_false(trusted(&p, "127.0.0.1"));
    parse_ok(&p, "::/0");
    assert_false(proxies_trusted(&p, NULL));
    struct peer un = {.un = {.sun_family = AF_UNIX}};
    assert_false(proxies_trusted(&p, &un.sa));
}

/* ------------------------------------------------------------------ the client's address */

static const char *client(const struct proxies *p, const char *from, const char *forwarded)
{
    static char out[PROXIES_ADDRESS_MAX];
    struct peer a;
    memset(out, 'x', sizeof out);
    proxies_client_address(p, peer(&a, from), forwarded, out, sizeof out);
    return out;
}

static void test_client_address(void **state)
{
    (void)state;
    static struct proxies p;
    parse_ok(&p, "127.0.0.1, 10.0.0.0/8, fd00::/8");
    static const struct {
        const char *peer, *forwarded, *client;
    } cases[] = {
        /* From a peer that is not trusted the header means nothing. */
        {"203.0.113.5", "198.51.100.7", "203.0.113.5"},
        {"203.0.113.5", "10.0.0.2", "203.0.113.5"},
        {"2001:db8::5", "198.51.100.7", "2001:db8::5"},
        /* From a trusted peer without the header, or with nothing in it: the peer. */
        {"127.0.0.1", NULL, "127.0.0.1"},
        {"127.0.0.1", "", "127.0.0.1"},
        /* The right-most entry that is not trusted. */
        {"127.0.0.1", "198.51.100.7", "198.51.100.7"},
        {"127.0.0.1", "1.1.1.1, 198.51.100.7", "198.51.100.7"},
        {"127.0.0.1", "1.1.1.1,198.51.100.7", "198.51.100.7"},
        {"127.0.0.1", " \t198.51.100.7\t ", "198.51.100.7"},
        /* Trusted hops passed over. */
        {"127.0.0.1", "198.51.100.7, 10.0.0.2", "198.51.100.7"},
        {"10.1.2.3", "1.1.1.1, 198.51.100.7, 10.0.0.2, 127.0.0.1", "198.51.100.7"},
        {"fd00::1", "2001:db8::7, fd00::2", "2001:db8::7"},
        /* Every entry trusted: the left-most. */
        {"127.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.3"},
        /* Malformed: never the address; the last trusted hop is. */
        {"127.0.0.1", "198.51.100.7, garbage", "127.0.0.1"},
        {"127.0.0.1", "garbage, 10.0.0.2", "10.0.0.2"},
        {"127.0.0.1", "198.51.100.7, unknown, 10.0.0.2", "10.0.0.2"},
        {"127.0.0.1", "198.51.100.7,,10.0.0.2", "10.0.0.2"},
        {"127.0.0.1", "198.51.100.7,", "127.0.0.1"},
        {"127.0.0.1", ",198.51.100.7", "198.51.100.7"},
        {"127.0.0.1", "198.51.100.7:4711", "127.0.0.1"},
        {"127.0.0.1", "[2001:db8::1]", "127.0.0.1"},
        {"127.0.0.1", "[2001:db8::1]:443", "127.0.0.1"},
        {"127.0.0.1", "fe80::1%eth0", "127.0.0.1"},
        {"127.0.0.1", "198.51.100.0/24", "127.0.0.1"},
        {"127.0.0.1", "198.51.100.7 198.51.100.8", "127.0.0.1"},
        {"127.0.0.1", "0x7f.1", "127.0.0.1"},
        {"127.0.0.1", "198.51.100.007", "127.0.0.1"},
        {"127.0.0.1", "1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16:17:18:19:20", "127.0.0.1"},
        /* The address as it is usually written, whatever the entry's spelling. */
        {"127.0.0.1", "2001:DB8:0:0::1", "2001:db8::1"},
        {"127.0.0.1", "::ffff:198.51.100.7", "198.51.100.7"},
        {"::ffff:127.0.0.1", "198.51.100.7", "198.51.100.7"},
        {"::ffff:203.0.113.5", "198.51.100.7", "203.0.113.5"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *got = client(&p, cases[i].peer, cases[i].forwarded);
        if (strcmp(got, cases[i].client) != 0)
            fail_msg("from %s with '%s': %s, not %s", cases[i].peer,
                     cases[i].forwarded ? cases[i].forwarded : "(none)", got, cases[i].client);
    }

    /* Nothing trusted: the peer, whatever the header says. */
    static struct proxies none;
    parse_ok(&none, "");
    assert_string_equal(client(&none, "127.0.0.1", "198.51.100.7"), "127.0.0.1");

    /* No address to go by. */
    char out[PROXIES_ADDRESS_MAX];
    proxies_client_address(&p, NULL, "198.51.100.7", out, sizeof out);
    assert_string_equal(out, "unknown");
    struct peer un = {.un = {.sun_family = AF_UNIX}};
    proxies_client_address(&p, &un.sa, "198.51.100.7", out, sizeof out);
    assert_string_equal(out, "unknown");
}

/* A header as long as a request may send, all trusted hops but the first entry. */
static void test_long_chain(void **state)
{
    (void)state;
    static struct proxies p;
    parse_ok(&p, "10.0.0.0/8");
    static char list[16384];
    strcpy(list, "198.51.100.7");
    while (strlen(list) + 12 < sizeof list)
        strcat(list, ", 10.9.8.7");
    assert_string_equal(client(&p, "10.0.0.1", list), "198.51.100.7");
    list[0] = 'x'; /* the first entry malformed: the left-most trusted hop */
    assert_string_equal(client(&p, "10.0.0.1", list), "10.9.8.7");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),    cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_trusted_edges), cmocka_unit_test(test_client_address),
        cmocka_unit_test(test_long_chain),
    };
    return cmocka_run_group_tests_name("proxies", tests, NULL, NULL);
}

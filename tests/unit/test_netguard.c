/* netguard: the refused address ranges with the addresses on both sides of each boundary, public
 * addresses that must pass, the allow-list's parser and matching, the URL check, and real
 * libcurl transfers (easy and multi) to listening sockets this test opens on loopback: a refused
 * address gets no connection at all (nothing to accept), an allow-listed host gets its request,
 * redirects are not followed and a proxy in the environment is not taken.
 *
 * Nothing here connects anywhere but 127.0.0.1 and ::1: names resolve through CURLOPT_RESOLVE
 * (no DNS query is made), and the public addresses are only judged, never connected to. */
#include "netguard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#define WAIT_MS 5000 /* the most a test server waits for a connection or a request */

/* ------------------------------------------------------------------ addresses */

static bool refused(const char *text)
{
    struct sockaddr_in s4 = {.sin_family = AF_INET};
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
    if (inet_pton(AF_INET, text, &s4.sin_addr) == 1)
        return netguard_address_refused((const struct sockaddr *)&s4);
    if (inet_pton(AF_INET6, text, &s6.sin6_addr) == 1)
        return netguard_address_refused((const struct sockaddr *)&s6);
    fail_msg("not an address: %s", text);
    return false;
}

struct judged {
    const char *address;
    bool refused;
};

static void judge_all(const struct judged *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (refused(cases[i].address) != cases[i].refused)
            fail_msg("%s must be %s", cases[i].address, cases[i].refused ? "refused" : "allowed");
    }
}

#define JUDGE_ALL(cases) judge_all(cases, sizeof cases / sizeof *cases)

/* The addresses the issue names. */
static void test_issue_examples(void **state)
{
    (void)state;
    static const struct judged cases[] = {
        {"10.0.0.1", true},
        {"172.16.0.1", true},
        {"192.168.1.1", true},
        {"169.254.169.254", true},
        {"fc00::1", true},
        {"fe80::1", true},
        {"::ffff:10.0.0.1", true},
        {"0.0.0.0", true},
        {"224.0.0.1", true},
        {"239.255.255.250", true},
        {"ff02::1", true},
        {"127.0.0.1", true},
        {"::1", true},
        {"::", true},
    };
    JUDGE_ALL(cases);
}

static void test_public_allowed(void **state)
{
    (void)state;
    static const struct judged cases[] = {
        {"1.1.1.1", false},
        {"8.8.8.8", false},
        {"9.9.9.9", false},
        {"1.0.0.0", false},
        {"223.255.255.255", false},
        {"192.31.196.1", false}, /* AS112-v4: globally reachable in IANA's registry */
        {"192.175.48.1", false}, /* AS112 direct delegation, likewise */
        {"2606:4700:4700::1111", false},
        {"2001:4860:4860::8888", false},
        {"2a00:1450:4001:80b::200e", false},
        {"2620:4f:8000::1", false}, /* AS112-v6, globally reachable */
        {"2000::", false},
        {"3ffe:ffff::1", false},
    };
    JUDGE_ALL(cases);
}

/* Every IPv4 range, with the last address before it, its first and last, and the first after. */
static void test_ipv4_ranges(void **state)
{
    (void)state;
    static const struct judged cases[] = {
        /* 0.0.0.0/8 this network */
        {"0.0.0.0", true},
        {"0.0.0.1", true},
        {"0.255.255.255", true},
        {"1.0.0.0", false},
        /* 10/8 private */
        {"9.255.255.255", false},
        {"10.0.0.0", true},
        {"10.255.255.255", true},
        {"11.0.0.0", false},
        /* 100.64/10 shared address space */
        {"100.63.255.255", false},
        {"100.64.0.0", true},
        {"100.127.255.255", true},
        {"100.128.0.0", false},
        /* 127/8 loopback */
        {"126.255.255.255", false},
        {"127.0.0.0", true},
        {"127.0.0.1", true},
        {"127.255.255.255", true},
        {"128.0.0.0", false},
        /* 169.254/16 link-local */
        {"169.253.255.255", false},
        {"169.254.0.0", true},
        {"169.254.255.255", true},
        {"169.255.0.0", false},
        /* 172.16/12 private */
        {"172.15.255.255", false},
        {"172.16.0.0", true},
        {"172.31.255.255", true},
        {"172.32.0.0", false},
        /* 192.0.0/24 IETF protocol assignments, 192.0.2/24 TEST-NET-1 */
        {"191.255.255.255", false},
        {"192.0.0.0", true},
        {"192.0.0.9", true},
        {"192.0.0.255", true},
        {"192.0.1.0", false},
        {"192.0.1.255", false},
        {"192.0.2.0", true},
        {"192.0.2.255", true},
        {"192.0.3.0", false},
        /* 192.88.99/24 6to4 relay anycast */
        {"192.88.98.255", false},
        {"192.88.99.0", true},
        {"192.88.99.255", true},
        {"192.88.100.0", false},
        /* 192.168/16 private */
        {"192.167.255.255", false},
        {"192.168.0.0", true},
        {"192.168.255.255", true},
        {"192.169.0.0", false},
        /* 198.18/15 benchmarking */
        {"198.17.255.255", false},
        {"198.18.0.0", true},
        {"198.19.255.255", true},
        {"198.20.0.0", false},
        /* 198.51.100/24 TEST-NET-2 */
        {"198.51.99.255", false},
        {"198.51.100.0", true},
        {"198.51.100.255", true},
        {"198.51.101.0", false},
        /* 203.0.113/24 TEST-NET-3 */
        {"203.0.112.255", false},
        {"203.0.113.0", true},
        {"203.0.113.255", true},
        {"203.0.114.0", false},
        /* 224/4 multicast, 240/4 reserved up to the broadcast address */
        {"223.255.255.255", false},
        {"224.0.0.0", true},
        {"239.255.255.255", true},
        {"240.0.0.0", true},
        {"255.255.255.254", true},
        {"255.255.255.255", true},
    };
    JUDGE_ALL(cases);
}

static void test_ipv6_ranges(void **state)
{
    (void)state;
    static const struct judged cases[] = {
        /* unspecified, loopback, IPv4-compatible (deprecated: refused whatever it holds) */
        {"::", true},
        {"::1", true},
        {"::2", true},
        {"::10.0.0.1", true},
        {"::8.8.8.8", true},
        /* IPv4-mapped: by the IPv4 address, with its boundaries */
        {"::ffff:8.8.8.8", false},
        {"::ffff:1.1.1.1", false},
        {"::ffff:127.0.0.1", true},
        {"::ffff:0.0.0.0", true},
        {"::ffff:169.254.169.254", true},
        {"::ffff:172.15.255.255", false},
        {"::ffff:172.16.0.0", true},
        {"::ffff:172.31.255.255", true},
        {"::ffff:172.32.0.0", false},
        {"::ffff:255.255.255.255", true},
        {"::fffe:808:808", true},   /* next to the mapped range: outside 2000::/3 */
        {"::1:ffff:808:808", true}, /* likewise */
        {"::ffff:0:808:808", true}, /* IPv4-translated (RFC 2765): outside 2000::/3 */
        /* NAT64 64:ff9b::/96 by the IPv4 address; the local-use 64:ff9b:1::/48 refused */
        {"64:ff9b::8.8.8.8", false},
        {"64:ff9b::10.0.0.1", true},
        {"64:ff9b::127.0.0.1", true},
        {"64:ff9b::169.254.169.254", true},
        {"64:ff9b::1:808:808", true},
        {"64:ff9b:1::808:808", true},
        /* discard-only, SRv6 SIDs */
        {"100::1", true},
        {"5f00::1", true},
        /* the edges of 2000::/3 */
        {"1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
        {"2000::", false},
        {"3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
        {"4000::", true},
        /* 2001::/23 IETF protocol assignments (Teredo 2001::/32 among them) */
        {"2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
        {"2001::", true},
        {"2001:0:4136:e378:8000:63bf:3fff:fdd2", true},
        {"2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", true},
        {"2001:200::", false},
        /* 2001:db8::/32 documentation */
        {"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false},
        {"2001:db8::", true},
        {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true},
        {"2001:db9::", false},
        /* 6to4 2002::/16 by the IPv4 address in bits 16-47 */
        {"2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
        {"2002::", true},
        {"2002:a00:1::", true},
        {"2002:7f00:1::1", true},
        {"2002:a9fe:a9fe::", true},
        {"2002:808:808::1", false},
        {"2002:ac0f:ffff::", false},
        {"2002:ac10::", true},
        {"2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
        {"2003::", false},
        /* 3fff::/20 documentation */
        {"3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
        {"3fff::", true},
        {"3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", true},
        {"3fff:1000::", false},
        /* unique-local fc00::/7, link-local fe80::/10, site-local fec0::/10, multicast ff00::/8 */
        {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
        {"fc00::", true},
        {"fc00::1", true},
        {"fd12:3456:789a::1", true},
        {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
        {"fe80::", true},
        {"fe80::1", true},
        {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
        {"fec0::1", true},
        {"ff00::", true},
        {"ff02::1", true},
        {"ff05::1:3", true},
        {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
    };
    JUDGE_ALL(cases);
}

static void test_other_families(void **state)
{
    (void)state;
    struct sockaddr_un un = {.sun_family = AF_UNIX, .sun_path = "/run/postgresql/.s.PGSQL.5432"};
    assert_true(netguard_address_refused((const struct sockaddr *)&un));
    struct sockaddr_storage unspec = {.ss_family = AF_UNSPEC};
    assert_true(netguard_address_refused((const struct sockaddr *)&unspec));
    assert_true(netguard_address_refused(NULL));
}

/* ------------------------------------------------------------------ the allow-list */

static void allow(const char *list)
{
    char err[256] = "";
    if (netguard_allow_parse(list, err, sizeof err) != 0)
        fail_msg("allow-list %s refused: %s", list, err);
}

static void test_allow_parse_good(void **state)
{
    (void)state;
    static const char *const lists[] = {
        NULL,
        "",
        " ",
        ",",
        " , ,",
        "localhost",
        "127.0.0.1",
        "::1",
        "[::1]",
        "Receiver.Internal, 10.0.0.5 ,[fd00::1],",
        "my_host,a-b.c-d.example,x1",
        "0:0:0:0:0:0:0:1,::ffff:127.0.0.1",
        "example.com1x",
    };
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++)
        allow(lists[i]);

    char many[64 * 12 + 1] = "";
    for (int i = 0; i < 64; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%shost%d", i ? "," : "", i);
    allow(many);
    assert_true(netguard_host_allowed("host0"));
    assert_true(netguard_host_allowed("host63"));
    allow("");
}

static void test_allow_parse_bad(void **state)
{
    (void)state;
    char label64[65], name254[256], long_entry[400];
    memset(label64, 'a', 64);
    label64[64] = '\0';
    /* 63 + 1 + 63 + 1 + 63 + 1 + 62 = 254 characters */
    snprintf(name254, sizeof name254, "%.63s.%.63s.%.63s.%.62s", label64, label64, label64,
             label64);
    memset(long_entry, 'b', sizeof long_entry - 1);
    long_entry[sizeof long_entry - 1] = '\0';
    char too_many[65 * 12 + 1] = "";
    for (int i = 0; i < 65; i++)
        snprintf(too_many + strlen(too_many), sizeof too_many - strlen(too_many), "%shost%d",
                 i ? "," : "", i);
    const char *const lists[] = {
        "127.0.0.1:8080",
        "[::1]:9",
        "localhost:9",
        "http://localhost",
        "*.example",
        "a..b",
        ".a",
        "a.",
        "a b",
        "fe80::1%eth0",
        "[::1",
        "::1]",
        "127.1",
        "1.2.3.256",
        "example.0x10",
        "10",
        "localhost/",
        "host,bad host",
        "höst",
        label64,
        name254,
        long_entry,
        too_many,
    };
    allow("kept.example");
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
        char err[256] = "";
        if (netguard_allow_parse(lists[i], err, sizeof err) != -1)
            fail_msg("allow-list %.80s taken", lists[i]);
        assert_non_null(strstr(err, "WERKLAB_WEBHOOK_ALLOW_HTTP"));
        /* a list that does not parse leaves the one there was */
        assert_true(netguard_host_allowed("kept.example"));
    }
    char err[256];
    assert_int_equal(netguard_allow_parse("127.0.0.1:8080", err, sizeof err), -1);
    assert_string_equal(err, "WERKLAB_WEBHOOK_ALLOW_HTTP: \"127.0.0.1:8080\" is not a host name "
                             "or an IP address (hosts only, without port)");
    /* a message cut short is still a string */
    char small[8];
    assert_int_equal(netguard_allow_parse("a b", small, sizeof small), -1);
    assert_int_equal(strlen(small), sizeof small - 1);
    allow("");
}

static void test_host_allowed(void **state)
{
    (void)state;
    allow("Receiver.Internal, 127.0.0.1, ::1, [fd00::1], localhost");
    assert_true(netguard_host_allowed("receiver.internal"));
    assert_true(netguard_host_allowed("RECEIVER.INTERNAL"));
    assert_true(netguard_host_allowed("127.0.0.1"));
    assert_true(netguard_host_allowed("::1"));
    assert_true(netguard_host_allowed("[::1]"));
    assert_true(netguard_host_allowed("0:0:0:0:0:0:0:1"));
    assert_true(netguard_host_allowed("[fd00::1]"));
    assert_true(netguard_host_allowed("fd00:0::1"));
    assert_true(netguard_host_allowed("LocalHost"));

    assert_false(netguard_host_allowed("receiver.internal."));
    assert_false(netguard_host_allowed("x.receiver.internal"));
    assert_false(netguard_host_allowed("receiver"));
    assert_false(netguard_host_allowed("127.0.0.2"));
    assert_false(netguard_host_allowed("::ffff:127.0.0.1"));
    assert_false(netguard_host_allowed("[::2]"));
    assert_false(netguard_host_allowed("sub.localhost"));
    assert_false(netguard_host_allowed("localhost."));
    assert_false(netguard_host_allowed(""));
    assert_false(netguard_host_allowed(NULL));

    allow("");
    assert_false(netguard_host_allowed("127.0.0.1"));
    assert_false(netguard_host_allowed("localhost"));
}

/* ------------------------------------------------------------------ URLs */

static void url_ok(const char *url)
{
    char reason[NETGUARD_REASON_MAX] = "";
    if (netguard_check_url(url, reason, sizeof reason) != 0)
        fail_msg("%s refused: %s", url, reason);
}

/* Refused with a reason that holds want. */
static void url_refused(const char *url, const char *want)
{
    char reason[NETGUARD_REASON_MAX] = "";
    if (netguard_check_url(url, reason, sizeof reason) != -1)
        fail_msg("%s taken", url ? url : "NULL");
    if (!strstr(reason, want))
        fail_msg("%s: reason \"%s\" does not say \"%s\"", url ? url : "NULL", reason, want);
}

#define NOT_URL   "must be an absolute http or https URL"
#define NO_HTTP   "must use https: plain http only to hosts on WERKLAB_WEBHOOK_ALLOW_HTTP"
#define NOT_HERE  "must not name a loopback, private or other non-public address"
#define NO_USER   "must not carry a user name or password"
#define NO_FRAG   "must not have a fragment"
#define NOT_ASCII "must be ASCII"

static void test_url_https(void **state)
{
    (void)state;
    allow("");
    url_ok("https://example.com/hook");
    url_ok("https://example.com");
    url_ok("https://crm.example.nl:8443/a/b?c=d&e=%20f");
    url_ok("HTTPS://Example.COM/Hook");
    url_ok("https://1.1.1.1/");
    url_ok("https://[2606:4700:4700::1111]:443/");
    url_ok("https://sub.localhost.example/"); /* not under localhost */
    url_ok("https://example.com:/");
}

static void test_url_http_only_allow_listed(void **state)
{
    (void)state;
    allow("");
    url_refused("http://example.com/hook", NO_HTTP);
    url_refused("HTTP://example.com/hook", NO_HTTP);
    allow("example.com");
    url_ok("http://example.com/hook");
    url_ok("http://EXAMPLE.com:8080/hook");
    url_refused("http://www.example.com/hook", NO_HTTP);
    allow("");
    url_refused("http://example.com/hook", NO_HTTP);
}

static void test_url_loopback(void **state)
{
    (void)state;
    allow("");
    url_refused("http://127.0.0.1:8080/", NO_HTTP);
    url_refused("https://127.0.0.1:8080/", NOT_HERE " (127.0.0.1)");
    url_refused("http://[::1]:9/", NO_HTTP);
    url_refused("https://[::1]:9/", NOT_HERE " ([::1])");
    url_refused("http://localhost:9/", NO_HTTP);
    url_refused("https://localhost:9/", NOT_HERE " (localhost)");
    url_refused("https://LOCALHOST./", NOT_HERE);
    url_refused("https://hooks.localhost/", NOT_HERE);
    url_refused("https://.localhost/", "must");
    /* what libcurl reads as 127.0.0.1 */
    url_refused("https://0x7f.1/", NOT_HERE " (127.0.0.1)");
    url_refused("https://2130706433/", NOT_HERE " (127.0.0.1)");
    url_refused("https://017700000001/", NOT_HERE " (127.0.0.1)");
    url_refused("https://%31%32%37.0.0.1/", NOT_HERE " (127.0.0.1)");
    url_refused("https://127.0.0.1./", NOT_HERE);
    url_refused("https://[0:0::1]/", NOT_HERE);
    url_refused("https://[::ffff:127.0.0.1]/", NOT_HERE);

    allow("127.0.0.1");
    url_ok("http://127.0.0.1:8080/");
    url_ok("https://127.0.0.1:8080/");
    url_ok("http://127.1:8080/"); /* libcurl reads it as 127.0.0.1, and so connects */
    url_refused("http://[::1]:9/", NO_HTTP);
    url_refused("http://localhost:9/", NO_HTTP);
    allow("::1");
    url_ok("http://[::1]:9/");
    url_ok("https://[0:0::1]:9/");
    url_refused("http://127.0.0.1:8080/", NO_HTTP);
    allow("[::1]");
    url_ok("http://[::1]:9/");
    allow("localhost");
    url_ok("http://localhost:9/");
    url_ok("http://LocalHost:9/");
    url_refused("http://127.0.0.1:9/", NO_HTTP);
    allow("");
}

static void test_url_refused_addresses(void **state)
{
    (void)state;
    allow("");
    static const char *const urls[] = {
        "https://10.0.0.1/",
        "https://172.16.0.1/",
        "https://192.168.1.1/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fc00::1]/",
        "https://[fe80::1]/",
        "https://[::ffff:10.0.0.1]/",
        "https://0.0.0.0/",
        "https://0/",
        "https://224.0.0.1/",
        "https://[ff02::1]/",
        "https://100.64.0.1/",
        "https://192.0.2.1/",
        "https://[2001:db8::1]/",
        "https://[64:ff9b::a9fe:a9fe]/",
        "https://[2002:a00:1::]/",
        "https://255.255.255.255/",
    };
    for (size_t i = 0; i < sizeof urls / sizeof *urls; i++)
        url_refused(urls[i], NOT_HERE);
    allow("10.0.0.1, fc00::1");
    url_ok("https://10.0.0.1/");
    url_ok("http://[fc00::1]/");
    allow("");
}

static void test_url_credentials(void **state)
{
    (void)state;
    allow("example.com");
    url_refused("https://user:secret@example.com/", NO_USER);
    url_refused("https://user@example.com/", NO_USER);
    url_refused("https://:secret@example.com/", NO_USER);
    url_refused("https://@example.com/", NO_USER);
    url_refused("http://user:secret@example.com/", NO_USER);
    url_refused("https://user;auth=x@example.com/", NO_USER);
    allow("");
}

static void test_url_fragment(void **state)
{
    (void)state;
    url_refused("https://example.com/#x", NO_FRAG);
    url_refused("https://example.com/hook#", NO_FRAG);
    url_refused("https://example.com/?a=1#b", NO_FRAG);
}

static void test_url_schemes(void **state)
{
    (void)state;
    static const char *const urls[] = {
        "ftp://example.com/",   "file:///etc/passwd",        "gopher://example.com/",
        "ws://example.com/",    "wss://example.com/",        "javascript:alert(1)",
        "mailto:a@example.com", "dict://example.com:11211/", "ldap://example.com/",
        "httpx://example.com/", "https+unix://example.com/", "telnet://example.com/",
    };
    for (size_t i = 0; i < sizeof urls / sizeof *urls; i++)
        url_refused(urls[i], NOT_URL);
}

static void test_url_garbage(void **state)
{
    (void)state;
    static const char *const not_urls[] = {
        "",
        "example.com",
        "example.com/hook",
        "//example.com/",
        "/hook",
        "https:",
        "https:/example.com/",
        "https:///example.com/",
        "https://",
        "https:///",
        "https://[::1/",
        "https://[zz::1]/",
        "https://example.com:65536/",
        "https://example.com:-1/",
        "https://example.com:port/",
        "https://example.com\\@evil.example/",
        "https:\\\\example.com/",
        "https://exa\"mple.com/",
    };
    for (size_t i = 0; i < sizeof not_urls / sizeof *not_urls; i++)
        url_refused(not_urls[i], NOT_URL);
    url_refused(NULL, NOT_URL);
    url_refused("https://exa mple.com/", NOT_ASCII);
    url_refused(" https://example.com/", NOT_ASCII);
    url_refused("https://example.com/\x01", NOT_ASCII);
    url_refused("https://example.com/\x7f", NOT_ASCII);
    url_refused("https://ex\xc3\xa4mple.com/", NOT_ASCII);
    url_refused("https://example.com/\r\nHost: x", NOT_ASCII);
    url_refused("https://example.com:0/", "must not use port 0");
    url_refused("https://example.com:00/", "must not use port 0");
    url_refused("https://[2001:4860:4860::8888%25eth0]/", "must not have an IPv6 zone");
    url_refused("https://[fe80::1%25eth0]/", "must not");

    char url[NETGUARD_URL_MAX + 2];
    int n = snprintf(url, sizeof url, "https://example.com/");
    memset(url + n, 'a', sizeof url - 1 - (size_t)n);
    url[sizeof url - 1] = '\0';
    url_refused(url, "must be at most 2048 characters");
    url[sizeof url - 2] = '\0'; /* exactly NETGUARD_URL_MAX */
    url_ok(url);

    /* a reason cut short is still a string */
    char small[8];
    assert_int_equal(netguard_check_url("ftp://x/", small, sizeof small), -1);
    assert_int_equal(strlen(small), sizeof small - 1);
}

/* ------------------------------------------------------------------ transfers */

struct listener {
    int fd;
    unsigned port;
};

/* A listening TCP socket on loopback (family AF_INET or AF_INET6), on a port the kernel picks;
 * false when the family is not there (no IPv6 in the container). */
static bool listen_on(int family, struct listener *l)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *s4;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_loopback;
        len = sizeof *s6;
    }
    l->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0)
        return false;
    if (bind(l->fd, (struct sockaddr *)&ss, len) != 0 || listen(l->fd, 8) != 0 ||
        getsockname(l->fd, (struct sockaddr *)&ss, &len) != 0) {
        close(l->fd);
        return false;
    }
    l->port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                      : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return true;
}

/* True when a connection reached l (accepted and closed). A connect() completes in the kernel
 * before libcurl goes on, so after a transfer ended, anything that connected is in the queue. */
static bool connection_arrived(const struct listener *l)
{
    int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        return true;
    }
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    return false;
}

/* A server for one request: accepts one connection (waiting up to WAIT_MS), reads the request
 * head and answers with answer. */
struct server {
    struct listener l;
    const char *answer;
    pthread_t thread;
    bool served;
    char request[2048];
};

static bool wait_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, WAIT_MS) == 1;
}

static void *serve_one(void *arg)
{
    struct server *s = arg;
    if (!wait_readable(s->l.fd))
        return NULL;
    int fd = accept4(s->l.fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t n = 0;
    while (n < sizeof s->request - 1 && !strstr(s->request, "\r\n\r\n") && wait_readable(fd)) {
        ssize_t got = read(fd, s->request + n, sizeof s->request - 1 - n);
        if (got <= 0)
            break;
        n += (size_t)got;
        s->request[n] = '\0';
    }
    s->served = write(fd, s->answer, strlen(s->answer)) == (ssize_t)strlen(s->answer);
    close(fd);
    return NULL;
}

static void server_start(struct server *s, int family, const char *answer)
{
    memset(s, 0, sizeof *s);
    s->answer = answer;
    assert_true(listen_on(family, &s->l));
    assert_int_equal(pthread_create(&s->thread, NULL, serve_one, s), 0);
}

static void server_join(struct server *s)
{
    pthread_join(s->thread, NULL);
    close(s->l.fd);
}

static const char no_content[] = "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n"
                                 "Connection: close\r\n\r\n";

static size_t discard(char *data, size_t size, size_t n, void *user)
{
    (void)data;
    (void)user;
    return size * n;
}

/* An easy handle with the test's own limits (so a fault cannot hang the test) and, when name
 * is given, name:port resolved to address without asking DNS. */
static CURL *handle(struct curl_slist **resolve, const char *name, unsigned port,
                    const char *address)
{
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)WAIT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)WAIT_MS * 2);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    *resolve = NULL;
    if (name) {
        char entry[128];
        snprintf(entry, sizeof entry, "%s:%u:%s", name, port, address);
        *resolve = curl_slist_append(NULL, entry);
        assert_non_null(*resolve);
        curl_easy_setopt(c, CURLOPT_RESOLVE, *resolve);
    }
    return c;
}

static long status_of(CURL *c)
{
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

/* A literal loopback address not on the list is refused before libcurl is even given it. */
static void test_send_literal_not_listed(void **state)
{
    (void)state;
    allow("");
    struct listener l;
    assert_true(listen_on(AF_INET, &l));
    char url[64];
    struct netguard_verdict v;
    struct curl_slist *resolve;
    CURL *c = handle(&resolve, NULL, 0, NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", l.port);
    assert_int_equal(netguard_setup(c, url, &v), -1);
    assert_string_equal(v.reason, NO_HTTP);
    snprintf(url, sizeof url, "https://127.0.0.1:%u/", l.port);
    assert_int_equal(netguard_setup(c, url, &v), -1);
    assert_non_null(strstr(v.reason, NOT_HERE));
    assert_false(connection_arrived(&l));
    curl_easy_cleanup(c);
    close(l.fd);
}

/* A name that resolves to loopback (as a DNS answer could at any time) passes the URL check;
 * its address is refused when libcurl is about to connect, and no connection is made. */
static void test_send_name_resolving_to_loopback(void **state)
{
    (void)state;
    allow("");
    struct listener l;
    assert_true(listen_on(AF_INET, &l));
    char url[64];
    snprintf(url, sizeof url, "https://receiver.test:%u/hook", l.port);
    struct curl_slist *resolve;
    CURL *c = handle(&resolve, "receiver.test", l.port, "127.0.0.1");
    struct netguard_verdict v;
    assert_int_equal(netguard_setup(c, url, &v), 0);
    assert_false(v.host_allowed);
    assert_int_equal(curl_easy_perform(c), CURLE_COULDNT_CONNECT);
    assert_int_equal(v.refused, 1);
    assert_string_equal(v.reason, "refused address 127.0.0.1");
    assert_false(connection_arrived(&l));
    curl_easy_cleanup(c);
    curl_slist_free_all(resolve);

    /* the same on the multi interface, which the sender uses */
    c = handle(&resolve, "receiver.test", l.port, "127.0.0.1");
    assert_int_equal(netguard_setup(c, url, &v), 0);
    CURLM *m = curl_multi_init();
    assert_non_null(m);
    assert_int_equal(curl_multi_add_handle(m, c), CURLM_OK);
    int running = 1;
    for (int rounds = 0; running && rounds < 100; rounds++) {
        assert_int_equal(curl_multi_perform(m, &running), CURLM_OK);
        if (running)
            assert_int_equal(curl_multi_poll(m, NULL, 0, 100, NULL), CURLM_OK);
    }
    assert_int_equal(running, 0);
    int left;
    CURLMsg *msg = curl_multi_info_read(m, &left);
    assert_non_null(msg);
    assert_int_equal(msg->msg, CURLMSG_DONE);
    assert_int_equal(msg->data.result, CURLE_COULDNT_CONNECT);
    assert_string_equal(v.reason, "refused address 127.0.0.1");
    assert_false(connection_arrived(&l));
    curl_multi_remove_handle(m, c);
    curl_multi_cleanup(m);
    curl_easy_cleanup(c);
    curl_slist_free_all(resolve);
    close(l.fd);
}

/* ::1 likewise; refused before any socket exists, so this needs no IPv6 in the container. */
static void test_send_name_resolving_to_ipv6_loopback(void **state)
{
    (void)state;
    allow("");
    struct curl_slist *resolve;
    CURL *c = handle(&resolve, "receiver.test", 9, "[::1]");
    struct netguard_verdict v;
    assert_int_equal(netguard_setup(c, "https://receiver.test:9/", &v), 0);
    assert_int_equal(curl_easy_perform(c), CURLE_COULDNT_CONNECT);
    assert_int_equal(v.refused, 1);
    assert_string_equal(v.reason, "refused address ::1");
    curl_easy_cleanup(c);
    curl_slist_free_all(resolve);
}

/* An allow-listed address and an allow-listed name both get their request. */
static void test_send_allow_listed(void **state)
{
    (void)state;
    allow("127.0.0.1");
    struct server s;
    server_start(&s, AF_INET, no_content);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/hook", s.l.port);
    struct curl_slist *resolve;
    CURL *c = handle(&resolve, NULL, 0, NULL);
    struct netguard_verdict v;
    assert_int_equal(netguard_setup(c, url, &v), 0);
    assert_true(v.host_allowed);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    assert_int_equal(status_of(c), 204);
    assert_int_equal(v.refused, 0);
    assert_string_equal(v.reason, "");
    server_join(&s);
    assert_true(s.served);
    assert_memory_equal(s.request, "GET /hook HTTP/1.1\r\n", 20);
    curl_easy_cleanup(c);

    allow("receiver.test");
    server_start(&s, AF_INET, no_content);
    snprintf(url, sizeof url, "http://receiver.test:%u/named", s.l.port);
    c = handle(&resolve, "receiver.test", s.l.port, "127.0.0.1");
    assert_int_equal(netguard_setup(c, url, &v), 0);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    assert_int_equal(status_of(c), 204);
    assert_int_equal(v.refused, 0);
    server_join(&s);
    assert_memory_equal(s.request, "GET /named HTTP/1.1\r\n", 21);
    curl_easy_cleanup(c);
    curl_slist_free_all(resolve);

    /* localhost by name, as the API tests use it (IPv4: the server listens there only) */
    allow("localhost");
    server_start(&s, AF_INET, no_content);
    snprintf(url, sizeof url, "http://localhost:%u/", s.l.port);
    c = handle(&resolve, NULL, 0, NULL);
    assert_int_equal(netguard_setup(c, url, &v), 0);
    curl_easy_setopt(c, CURLOPT_IPRESOLVE, (long)CURL_IPRESOLVE_V4);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    assert_int_equal(status_of(c), 204);
    server_join(&s);
    assert_true(s.served);
    curl_easy_cleanup(c);
    allow("");
}

static void test_send_allow_listed_ipv6(void **state)
{
    (void)state;
    struct listener probe;
    if (!listen_on(AF_INET6, &probe))
        skip();
    close(probe.fd);
    allow("::1");
    struct server s;
    server_start(&s, AF_INET6, no_content);
    char url[64];
    snprintf(url, sizeof url, "http://[::1]:%u/v6", s.l.port);
    struct curl_slist *resolve;
    CURL *c = handle(&resolve, NULL, 0, NULL);
    struct netguard_verdict v;
    assert_int_equal(netguard_setup(c, url, &v), 0);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    assert_int_equal(status_of(c), 204);
    server_join(&s);
    assert_memory_equal(s.request, "GET /v6 HTTP/1.1\r\n", 18);
    curl_easy_cleanup(c);
    allow("");
}

/* A redirect is an answer, not an instruction: its target gets no connection, even when the
 * caller had asked libcurl to follow redirects before the setup. */
static void test_send_no_redirect(void **state)
{
    (void)state;
    allow("127.0.0.1");
    struct listener target;
    assert_true(listen_on(AF_INET, &target));
    char answer[160];
    snprintf(answer, sizeof answer,
             "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%u/elsewhere\r\n"
             "Content-Length: 0\r\nConnection: close\r\n\r\n",
             target.port);
    struct server s;
    server_start(&s, AF_INET, answer);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", s.l.port);
    struct curl_slist *resolve;
    CURL *c = handle(&resolve, NULL, 0, NULL);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    struct netguard_verdict v;
    assert_int_equal(netguard_setup(c, url, &v), 0);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    assert_int_equal(status_of(c), 302);
    server_join(&s);
    assert_true(s.served);
    assert_false(connection_arrived(&target));
    curl_easy_cleanup(c);
    close(target.fd);
    allow("");
}

/* http_proxy and ALL_PROXY in the environment: without the setup libcurl sends to the proxy
 * (the control), with it straight to the receiver. */
static void test_send_no_proxy_from_environment(void **state)
{
    (void)state;
    allow("receiver.test");
    struct server proxy, receiver;
    server_start(&proxy, AF_INET, no_content);
    char proxy_url[64];
    snprintf(proxy_url, sizeof proxy_url, "http://127.0.0.1:%u", proxy.l.port);
    setenv("http_proxy", proxy_url, 1);
    setenv("ALL_PROXY", proxy_url, 1);
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");

    char url[64];
    snprintf(url, sizeof url, "http://receiver.test:%u/direct", proxy.l.port + 1);
    struct curl_slist *resolve;
    CURL *c = handle(&resolve, "receiver.test", proxy.l.port + 1, "127.0.0.1");
    curl_easy_setopt(c, CURLOPT_URL, url);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    server_join(&proxy);
    assert_true(proxy.served);
    assert_non_null(strstr(proxy.request, "GET http://receiver.test:"));
    curl_easy_cleanup(c);
    curl_slist_free_all(resolve);

    struct listener quiet_proxy;
    assert_true(listen_on(AF_INET, &quiet_proxy));
    snprintf(proxy_url, sizeof proxy_url, "http://127.0.0.1:%u", quiet_proxy.port);
    setenv("http_proxy", proxy_url, 1);
    setenv("ALL_PROXY", proxy_url, 1);
    server_start(&receiver, AF_INET, no_content);
    snprintf(url, sizeof url, "http://receiver.test:%u/direct", receiver.l.port);
    c = handle(&resolve, "receiver.test", receiver.l.port, "127.0.0.1");
    struct netguard_verdict v;
    assert_int_equal(netguard_setup(c, url, &v), 0);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    assert_int_equal(status_of(c), 204);
    server_join(&receiver);
    assert_true(receiver.served);
    assert_memory_equal(receiver.request, "GET /direct HTTP/1.1\r\n", 22);
    assert_false(connection_arrived(&quiet_proxy));
    close(quiet_proxy.fd);
    curl_easy_cleanup(c);
    curl_slist_free_all(resolve);
    unsetenv("http_proxy");
    unsetenv("ALL_PROXY");
    allow("");
}

/* A URL the check refuses sets nothing: the setup says why. */
static void test_setup_refuses_url(void **state)
{
    (void)state;
    allow("");
    struct curl_slist *resolve;
    CURL *c = handle(&resolve, NULL, 0, NULL);
    struct netguard_verdict v;
    assert_int_equal(netguard_setup(c, "ftp://example.com/", &v), -1);
    assert_string_equal(v.reason, NOT_URL);
    assert_int_equal(netguard_setup(c, "https://u:p@example.com/", &v), -1);
    assert_string_equal(v.reason, NO_USER);
    /* the allow-list no longer holds the host of a URL taken earlier */
    allow("hooks.example");
    assert_int_equal(netguard_setup(c, "http://hooks.example/", &v), 0);
    allow("");
    assert_int_equal(netguard_setup(c, "http://hooks.example/", &v), -1);
    assert_string_equal(v.reason, NO_HTTP);
    curl_easy_cleanup(c);
}

static int setup(void **state)
{
    (void)state;
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue_examples),
        cmocka_unit_test(test_public_allowed),
        cmocka_unit_test(test_ipv4_ranges),
        cmocka_unit_test(test_ipv6_ranges),
        cmocka_unit_test(test_other_families),
        cmocka_unit_test(test_allow_parse_good),
        cmocka_unit_test(test_allow_parse_bad),
        cmocka_unit_test(test_host_allowed),
        cmocka_unit_test(test_url_https),
        cmocka_unit_test(test_url_http_only_allow_listed),
        cmocka_unit_test(test_url_loopback),
        cmocka_unit_test(test_url_refused_addresses),
        cmocka_unit_test(test_url_credentials),
        cmocka_unit_test(test_url_fragment),
        cmocka_unit_test(test_url_schemes),
        cmocka_unit_test(test_url_garbage),
        cmocka_unit_test(test_send_literal_not_listed),
        cmocka_unit_test(test_send_name_resolving_to_loopback),
        cmocka_unit_test(test_send_name_resolving_to_ipv6_loopback),
        cmocka_unit_test(test_send_allow_listed),
        cmocka_unit_test(test_send_allow_listed_ipv6),
        cmocka_unit_test(test_send_no_redirect),
        cmocka_unit_test(test_send_no_proxy_from_environment),
        cmocka_unit_test(test_setup_refuses_url),
    };
    return cmocka_run_group_tests_name("netguard", tests, setup, teardown);
}

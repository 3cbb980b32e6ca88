#include "netguard.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define ALLOW_HTTP_VAR "WERKLAB_WEBHOOK_ALLOW_HTTP"
#define HOST_MAX       253 /* characters of a DNS name */
#define LABEL_MAX      63

/* ------------------------------------------------------------------ addresses */

#define V4(a, b, c, d)                                                                             \
    ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

/* IANA IPv4 Special-Purpose Address Registry, the ranges not globally reachable (and those
 * that are but are never a receiver: all of 192.0.0/24, 6to4 relay anycast), with multicast. */
static const struct {
    uint32_t net;
    unsigned bits;
} v4_refused[] = {
    {V4(0, 0, 0, 0), 8},       /* "this network" (RFC 791); 0.0.0.0 reaches this machine */
    {V4(10, 0, 0, 0), 8},      /* private use (RFC 1918) */
    {V4(100, 64, 0, 0), 10},   /* shared address space, carrier-grade NAT (RFC 6598) */
    {V4(127, 0, 0, 0), 8},     /* loopback (RFC 1122) */
    {V4(169, 254, 0, 0), 16},  /* link-local (RFC 3927): cloud instance metadata lives here */
    {V4(172, 16, 0, 0), 12},   /* private use (RFC 1918) */
    {V4(192, 0, 0, 0), 24},    /* IETF protocol assignments (RFC 6890): DS-Lite, NAT64 ... */
    {V4(192, 0, 2, 0), 24},    /* documentation, TEST-NET-1 (RFC 5737) */
    {V4(192, 88, 99, 0), 24},  /* 6to4 relay anycast, deprecated (RFC 7526) */
    {V4(192, 168, 0, 0), 16},  /* private use (RFC 1918) */
    {V4(198, 18, 0, 0), 15},   /* benchmarking (RFC 2544) */
    {V4(198, 51, 100, 0), 24}, /* documentation, TEST-NET-2 (RFC 5737) */
    {V4(203, 0, 113, 0), 24},  /* documentation, TEST-NET-3 (RFC 5737) */
    {V4(224, 0, 0, 0), 4},     /* multicast (RFC 5771) */
    {V4(240, 0, 0, 0), 4},     /* reserved (RFC 1112), with 255.255.255.255 broadcast (RFC 919) */
};

static bool v4_refused_addr(uint32_t a)
{
    for (size_t i = 0; i < sizeof v4_refused / sizeof *v4_refused; i++) {
        uint32_t mask = UINT32_MAX << (32 - v4_refused[i].bits);
        if ((a & mask) == v4_refused[i].net)
            return true;
    }
    return false;
}

static uint32_t v4_at(const uint8_t *p)
{
    return V4(p[0], p[1], p[2], p[3]);
}

static bool prefix_is(const uint8_t *a, const uint8_t *prefix, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, prefix, whole) != 0)
        return false;
    return rest == 0 || ((a[whole] ^ prefix[whole]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

/* Within 2000::/3, the global unicast space, the ranges of IANA's IPv6 Special-Purpose Address
 * Registry that are not a receiver. 2001::/23 holds a few globally reachable anycast and
 * overlay addresses (TURN, AMT, AS112, ORCHIDv2, DET), none of which is a webhook receiver. */
static const struct {
    uint8_t prefix[16];
    unsigned bits;
} v6_refused[] = {
    {{0x20, 0x01}, 23},             /* IETF protocol assignments (RFC 2928): Teredo, ... */
    {{0x20, 0x01, 0x0d, 0xb8}, 32}, /* documentation (RFC 3849) */
    {{0x3f, 0xff}, 20},             /* documentation (RFC 9637) */
};

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}; /* RFC 4291 */
static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};                       /* RFC 6052 */
static const uint8_t six_to_four[2] = {0x20, 0x02};                              /* RFC 3056 */

static bool v6_refused_addr(const uint8_t a[16])
{
    /* What the address is a wrapper of is what it reaches: ::ffff:10.0.0.1 connects to 10.0.0.1
     * on a dual-stack socket, 64:ff9b::a.b.c.d through a NAT64 and 2002:a.b.c.d:: through a 6to4
     * relay to a.b.c.d. */
    if (memcmp(a, v4_mapped, 12) == 0 || memcmp(a, nat64, 12) == 0)
        return v4_refused_addr(v4_at(a + 12));
    if (memcmp(a, six_to_four, 2) == 0)
        return v4_refused_addr(v4_at(a + 2));
    if ((a[0] & 0xe0) != 0x20) /* outside 2000::/3 */
        return true;
    for (size_t i = 0; i < sizeof v6_refused / sizeof *v6_refused; i++)
        if (prefix_is(a, v6_refused[i].prefix, v6_refused[i].bits))
            return true;
    return false;
}

bool netguard_address_refused(const struct sockaddr *sa)
{
    if (!sa)
        return true;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        return v4_refused_addr(ntohl(s4->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        return v6_refused_addr(s6->sin6_addr.s6_addr);
    }
    return true;
}

/* ------------------------------------------------------------------ literal addresses */

struct literal {
    int family; /* AF_INET, AF_INET6 */
    uint8_t addr[16];
};

/* True when host is an IPv4 address in dotted-quad or an IPv6 address, with or without
 * brackets (as libcurl gives a URL's host: it has already turned 0x7f.1 or 2130706433 into
 * 127.0.0.1). */
static bool literal_of(const char *host, struct literal *out)
{
    char text[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof text)
        return false;
    memcpy(text, host, n);
    text[n] = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, text, out->addr) == 1) {
        out->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, text, out->addr) == 1) {
        out->family = AF_INET6;
        return true;
    }
    return false;
}

static bool literal_refused(const struct literal *l)
{
    if (l->family == AF_INET)
        return v4_refused_addr(v4_at(l->addr));
    return v6_refused_addr(l->addr);
}

/* ------------------------------------------------------------------ the allow-list */

struct allowed {
    bool is_literal;
    struct literal literal;
    char name[HOST_MAX + 1];
};

/* Written by netguard_allow_parse() before any thread reads it. */
static struct allowed allow[NETGUARD_ALLOW_MAX];
static size_t n_allow;

/* A URL reads a host whose last label is a number (decimal, or 0x hex) as an IPv4 address
 * (WHATWG URL, "ends in a number"), so such a name could never match a URL's host. */
static bool numeric_label(const char *label, size_t n)
{
    size_t i = 0;
    bool hex = n >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X');
    if (hex)
        i = 2;
    for (; i < n; i++)
        if (!(hex ? isxdigit((unsigned char)label[i]) : isdigit((unsigned char)label[i])))
            return false;
    return true;
}

/* isalnum() would take letters of the locale's character set. */
static bool ascii_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool host_name(const char *s, size_t n)
{
    if (n == 0 || n > HOST_MAX)
        return false;
    const char *label = s;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            size_t len = (size_t)(s + i - label);
            if (len == 0 || len > LABEL_MAX)
                return false; /* empty label: leading, trailing or double dot */
            if (i == n)
                return !numeric_label(label, len);
            label = s + i + 1;
        } else if (!ascii_alnum(s[i]) && s[i] != '-' && s[i] != '_') {
            return false;
        }
    }
    return true;
}

int netguard_allow_parse(const char *list, char *err, size_t err_len)
{
    static struct allowed next[NETGUARD_ALLOW_MAX];
    size_t n_next = 0;
    for (const char *p = list ? list : ""; *p;) {
        size_t n = strcspn(p, ",");
        const char *s = p, *e = p + n;
        p = *e ? e + 1 : e;
        while (s < e && isspace((unsigned char)*s))
            s++;
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        size_t len = (size_t)(e - s);
        if (len == 0)
            continue;
        if (n_next == NETGUARD_ALLOW_MAX) {
            snprintf(err, err_len, "%s: more than %d hosts", ALLOW_HTTP_VAR, NETGUARD_ALLOW_MAX);
            return -1;
        }
        struct allowed *a = &next[n_next];
        memset(a, 0, sizeof *a);
        char text[HOST_MAX + 1];
        if (len > HOST_MAX) {
            snprintf(err, err_len, "%s: %.40s... is longer than a host name", ALLOW_HTTP_VAR, s);
            return -1;
        }
        memcpy(text, s, len);
        text[len] = '\0';
        if (literal_of(text, &a->literal)) {
            a->is_literal = true;
        } else if (host_name(text, len)) {
            memcpy(a->name, text, len + 1);
        } else {
            snprintf(err, err_len,
                     "%s: \"%s\" is not a host name or an IP address (hosts only, without port)",
                     ALLOW_HTTP_VAR, text);
            return -1;
        }
        n_next++;
    }
    memcpy(allow, next, n_next * sizeof *next);
    n_allow = n_next;
    return 0;
}

bool netguard_host_allowed(const char *host)
{
    if (!host || !*host)
        return false;
    struct literal l;
    bool is_literal = literal_of(host, &l);
    for (size_t i = 0; i < n_allow; i++) {
        const struct allowed *a = &allow[i];
        if (is_literal ? a->is_literal && a->literal.family == l.family &&
                             memcmp(a->literal.addr, l.addr, sizeof l.addr) == 0
                       : !a->is_literal && strcasecmp(a->name, host) == 0)
            return true;
    }
    return false;
}

/* ------------------------------------------------------------------ URLs */

#define MUST_BE_URL "must be an absolute http or https URL"

/* "localhost" and names under it mean loopback whatever DNS says (RFC 6761 §6.3; libcurl
 * answers them itself). */
static bool localhost_name(const char *host)
{
    size_t n = strlen(host);
    if (n > 0 && host[n - 1] == '.')
        n--;
    static const char sub[] = ".localhost";
    size_t k = sizeof sub - 1;
    return (n == k - 1 && strncasecmp(host, sub + 1, n) == 0) ||
           (n >= k && strncasecmp(host + n - k, sub, k) == 0);
}

/* The checks of netguard_check_url(); *allowed tells whether the host is on the allow-list. */
static int check_url(const char *url, char *reason, size_t reason_len, bool *allowed)
{
    *allowed = false;
    if (!url || !*url) {
        snprintf(reason, reason_len, MUST_BE_URL);
        return -1;
    }
    size_t n = strlen(url);
    if (n > NETGUARD_URL_MAX) {
        snprintf(reason, reason_len, "must be at most %d characters", NETGUARD_URL_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f) {
            snprintf(reason, reason_len,
                     "must be ASCII without spaces or control characters (percent-encode others; "
                     "an international host name in its xn-- form)");
            return -1;
        }
    }
    /* libcurl forgives: it reads http:/host and http:///host as http://host, and backslashes as
     * slashes. A URL is taken only as it is written to be read by anyone. */
    size_t scheme_len = strncasecmp(url, "http://", 7) == 0    ? 7
                        : strncasecmp(url, "https://", 8) == 0 ? 8
                                                               : 0;
    if (scheme_len == 0 || url[scheme_len] == '/' || strchr(url, '\\')) {
        snprintf(reason, reason_len, MUST_BE_URL);
        return -1;
    }
    if (strchr(url, '#')) {
        snprintf(reason, reason_len, "must not have a fragment");
        return -1;
    }

    int rc = -1;
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *zone = NULL, *port = NULL, *part = NULL;
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        snprintf(reason, reason_len, MUST_BE_URL);
        goto done;
    }
    if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_PASSWORD, &part, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_OPTIONS, &part, 0) == CURLUE_OK) {
        snprintf(reason, reason_len, "must not carry a user name or password");
        goto done;
    }
    if (curl_url_get(u, CURLUPART_ZONEID, &zone, 0) == CURLUE_OK) {
        snprintf(reason, reason_len, "must not have an IPv6 zone");
        goto done;
    }
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK && strcmp(port, "0") == 0) {
        snprintf(reason, reason_len, "must not use port 0");
        goto done;
    }
    *allowed = netguard_host_allowed(host);
    if (!*allowed) {
        if (strcmp(scheme, "http") == 0) {
            snprintf(reason, reason_len,
                     "must use https: plain http only to hosts on " ALLOW_HTTP_VAR);
            goto done;
        }
        /* An address is judged now; so is one written with a trailing dot, which a resolver
         * may read as the address. */
        struct literal l;
        char bare[INET6_ADDRSTRLEN + 2];
        size_t hn = strlen(host);
        bool literal = literal_of(host, &l);
        if (!literal && hn > 1 && hn <= sizeof bare && host[hn - 1] == '.') {
            memcpy(bare, host, hn - 1);
            bare[hn - 1] = '\0';
            literal = literal_of(bare, &l);
        }
        if ((literal && literal_refused(&l)) || localhost_name(host)) {
            snprintf(reason, reason_len,
                     "must not name a loopback, private or other non-public address (%s)", host);
            goto done;
        }
    }
    rc = 0;
done:
    curl_free(scheme);
    curl_free(host);
    curl_free(zone);
    curl_free(port);
    curl_free(part);
    curl_url_cleanup(u);
    return rc;
}

int netguard_check_url(const char *url, char *reason, size_t reason_len)
{
    bool allowed;
    return check_url(url, reason, reason_len, &allowed);
}

/* ------------------------------------------------------------------ connections */

/* libcurl asks for each socket it will connect, with the address it will connect to, after
 * resolving and before connecting: the last moment the address can be refused, and the right
 * one, since nothing but this address is then connected to. */
static curl_socket_t open_checked(void *data, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct netguard_verdict *v = data;
    bool complete = (a->addr.sa_family == AF_INET && a->addrlen >= sizeof(struct sockaddr_in)) ||
                    (a->addr.sa_family == AF_INET6 && a->addrlen >= sizeof(struct sockaddr_in6));
    if (purpose == CURLSOCKTYPE_IPCXN && complete &&
        (v->host_allowed || !netguard_address_refused(&a->addr)))
        return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);

    if (v->refused++ == 0) {
        char text[INET6_ADDRSTRLEN] = "?";
        if (complete && a->addr.sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)&a->addr)->sin_addr,
                      text, sizeof text);
        else if (complete)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)&a->addr)->sin6_addr,
                      text, sizeof text);
        snprintf(v->reason, sizeof v->reason, "refused address %s", text);
    }
    return CURL_SOCKET_BAD;
}

int netguard_setup(CURL *curl, const char *url, struct netguard_verdict *v)
{
    memset(v, 0, sizeof *v);
    if (check_url(url, v->reason, sizeof v->reason, &v->host_allowed) != 0)
        return -1;
    /* Each in turn, naming the one libcurl refuses (one older than 7.85 has no _STR options). */
    CURLcode rc = CURLE_OK;
    const char *failed = NULL;
#define SET(option, value)                                                                         \
    if (!failed && (rc = curl_easy_setopt(curl, option, value)) != CURLE_OK)                       \
    failed = #option
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    /* "" is no proxy at all: libcurl then reads none of http_proxy, ALL_PROXY, ... */
    SET(CURLOPT_PROXY, "");
    SET(CURLOPT_OPENSOCKETFUNCTION, open_checked);
    SET(CURLOPT_OPENSOCKETDATA, v);
#undef SET
    if (failed) {
        snprintf(v->reason, sizeof v->reason, "libcurl refused %s: %s", failed,
                 curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

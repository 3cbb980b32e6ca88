#include "proxies.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* Longest entry that can be an address with a prefix: an IPv6 address written out in full with
 * an embedded IPv4 one (45 characters), "/128". */
#define ENTRY_MAX 50

static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* text (n bytes, no NUL needed) as a bare address; family is AF_INET or AF_INET6. */
static bool address_of(const char *text, size_t n, unsigned char ip[16], int *family)
{
    char s[ENTRY_MAX + 1];
    if (n == 0 || n > ENTRY_MAX)
        return false;
    memcpy(s, text, n);
    s[n] = '\0';
    struct in_addr a4;
    if (inet_pton(AF_INET, s, &a4) == 1) {
        memcpy(ip, v4_mapped, 12);
        memcpy(ip + 12, &a4, 4);
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, s, ip) == 1) {
        *family = AF_INET6;
        return true;
    }
    return false;
}

static bool sockaddr_ip(const struct sockaddr *sa, unsigned char ip[16])
{
    if (sa && sa->sa_family == AF_INET) {
        memcpy(ip, v4_mapped, 12);
        memcpy(ip + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        return true;
    }
    if (sa && sa->sa_family == AF_INET6) {
        memcpy(ip, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

/* Whether ip's first bits bits are net's. */
static bool in_net(const struct proxies_net *net, const unsigned char ip[16])
{
    unsigned whole = net->bits / 8, rest = net->bits % 8;
    if (memcmp(ip, net->ip, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (ip[whole] & mask) == net->ip[whole];
}

static bool trusted_ip(const struct proxies *p, const unsigned char ip[16])
{
    for (size_t i = 0; i < p->n; i++)
        if (in_net(&p->nets[i], ip))
            return true;
    return false;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* One entry of the list, "address" or "address/prefix", into net; false when it is not one.
 * *host_bits is set when the address has bits set after the prefix. */
static bool net_of(const char *s, size_t n, struct proxies_net *net, bool *host_bits)
{
    *host_bits = false;
    const char *slash = memchr(s, '/', n);
    size_t addr_len = slash ? (size_t)(slash - s) : n;
    int family;
    if (!address_of(s, addr_len, net->ip, &family))
        return false;
    unsigned max = family == AF_INET ? 32 : 128, prefix = max;
    if (slash) {
        const char *digits = slash + 1;
        size_t n_digits = n - addr_len - 1;
        /* Digits only (strtoul would take a sign and spaces), no leading zeros, at most 3. */
        if (n_digits == 0 || n_digits > 3 || strspn(digits, "0123456789") < n_digits ||
            (n_digits > 1 && digits[0] == '0'))
            return false;
        prefix = 0;
        for (size_t i = 0; i < n_digits; i++)
            prefix = prefix * 10 + (unsigned)(digits[i] - '0');
        if (prefix > max)
            return false;
    }
    net->bits = family == AF_INET ? 96 + prefix : prefix;
    for (unsigned bit = net->bits; bit < 128; bit++)
        if (net->ip[bit / 8] & (0x80 >> (bit % 8)))
            *host_bits = true;
    return true;
}

int proxies_parse(struct proxies *p, const char *list, char *err, size_t err_len)
{
    p->n = 0;
    for (const char *q = list ? list : ""; *q;) {
        size_t n = strcspn(q, ",");
        const char *s = q, *e = q + n;
        q = *e ? e + 1 : e;
        while (s < e && is_space(*s))
            s++;
        while (e > s && is_space(e[-1]))
            e--;
        size_t len = (size_t)(e - s);
        if (len == 0)
            continue;
        if (p->n == PROXIES_MAX) {
            snprintf(err, err_len, "trusted-proxies: more than %d addresses and networks",
                     PROXIES_MAX);
            p->n = 0;
            return -1;
        }
        bool host_bits;
        if (!net_of(s, len, &p->nets[p->n], &host_bits)) {
            snprintf(err, err_len,
                     "trusted-proxies: '%.*s' is not an IPv4 or IPv6 address or network "
                     "(address/prefix, e.g. 10.0.0.0/8; no host names or ports)",
                     (int)(len > 64 ? 64 : len), s);
            p->n = 0;
            return -1;
        }
        if (host_bits) {
            snprintf(err, err_len,
                     "trusted-proxies: '%.*s' has bits set after its prefix; write the "
                     "network's own address (e.g. 10.0.0.0/8), or the address alone",
                     (int)(len > 64 ? 64 : len), s);
            p->n = 0;
            return -1;
        }
        p->n++;
    }
    return 0;
}

bool proxies_trusted(const struct proxies *p, const struct sockaddr *sa)
{
    unsigned char ip[16];
    return sockaddr_ip(sa, ip) && trusted_ip(p, ip);
}

static void address_text(const unsigned char ip[16], char *out, size_t len)
{
    if (memcmp(ip, v4_mapped, 12) == 0)
        inet_ntop(AF_INET, ip + 12, out, (socklen_t)len);
    else
        inet_ntop(AF_INET6, ip, out, (socklen_t)len);
}

void proxies_client_address(const struct proxies *p, const struct sockaddr *peer,
                            const char *forwarded_for, char *out, size_t len)
{
    unsigned char ip[16];
    if (!sockaddr_ip(peer, ip)) {
        snprintf(out, len, "unknown");
        return;
    }
    if (trusted_ip(p, ip) && forwarded_for && *forwarded_for) {
        /* From the right: ip is always the last trusted hop reached, until an entry that is not
         * trusted takes its place and ends the walk. */
        const char *end = forwarded_for + strlen(forwarded_for);
        for (;;) {
            const char *start = end;
            while (start > forwarded_for && start[-1] != ',')
                start--;
            const char *s = start, *e = end;
            while (s < e && is_space(*s))
                s++;
            while (e > s && is_space(e[-1]))
                e--;
            unsigned char entry[16];
            int family;
            if (!address_of(s, (size_t)(e - s), entry, &family))
                break; /* malformed: the last trusted hop is the client */
            memcpy(ip, entry, 16);
            if (!trusted_ip(p, ip) || start == forwarded_for)
                break;
            end = start - 1; /* before the comma */
        }
    }
    address_text(ip, out, len);
}

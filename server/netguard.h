/* netguard: requests to URLs that users give werklabd (webhooks) cannot be turned against the
 * network werklabd runs in (server-side request forgery, OWASP API7).
 *
 * Three checks, at two moments:
 * - when a URL is given, netguard_check_url(): an absolute http or https URL; https unless its
 *   host is on the allow-list; no user name or password, no fragment; and, when the host is an
 *   address (or localhost), one that is not refused. A host name cannot be told then: what it
 *   resolves to may change at any time.
 * - when a request is sent, netguard_setup() on the libcurl handle: every address libcurl is about
 *   to connect to is checked before the connection is made (CURLOPT_OPENSOCKETFUNCTION), after
 *   the name was resolved for that very request, so a name that resolves to a refused address
 *   (now, or after a DNS rebinding) gets no connection. Redirects are not followed, only http
 *   and https are spoken and no proxy is taken from the environment, so the request goes where
 *   the checked URL says and nowhere else.
 *
 * The allow-list (WERKLAB_WEBHOOK_ALLOW_HTTP) names hosts whose URLs may use plain http and may
 * reach any address, refused or not: for the tests' receivers on loopback and for receivers
 * inside the operator's own network. It names hosts, not hosts and ports: the tests' receivers
 * listen on ports chosen when they start, and a port adds nothing to trusting a machine. */
#ifndef WERKLAB_NETGUARD_H
#define WERKLAB_NETGUARD_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define NETGUARD_URL_MAX    2048 /* characters of a URL; longer ones are refused */
#define NETGUARD_ALLOW_MAX  64   /* hosts on the allow-list */
#define NETGUARD_REASON_MAX 192  /* room for a reason (an invalidParams reason holds 192) */

/* True when sa is an address werklabd never sends a request to: anything but a publicly
 * routable unicast address. The reference is IANA's IPv4 and IPv6 Special-Purpose Address
 * Registries (RFC 6890 and its updates) and the IPv6 Address Space registry:
 * - IPv4: 0.0.0.0/8 (this network; 0.0.0.0 reaches the machine itself), 10/8, 172.16/12 and
 *   192.168/16 (private), 100.64/10 (shared, carrier-grade NAT), 127/8 (loopback), 169.254/16
 *   (link-local, where clouds serve instance metadata), 192.0.0/24 (IETF protocol assignments),
 *   192.0.2/24, 198.51.100/24 and 203.0.113/24 (documentation), 192.88.99/24 (6to4 relay
 *   anycast, deprecated), 198.18/15 (benchmarking), 224/4 (multicast), 240/4 (reserved, with
 *   the broadcast address 255.255.255.255).
 * - IPv6: everything outside 2000::/3, the only global unicast space IANA has assigned (so ::,
 *   ::1, fc00::/7 unique-local, fe80::/10 link-local, fec0::/10 site-local, ff00::/8 multicast,
 *   100::/64 discard, 64:ff9b:1::/48 local NAT64, 5f00::/16 SRv6 and the deprecated
 *   IPv4-compatible ::a.b.c.d are refused whatever they hold), except that IPv4-mapped
 *   ::ffff:a.b.c.d and NAT64 64:ff9b::a.b.c.d are judged by the IPv4 address they carry;
 *   within 2000::/3: 2001::/23 (IETF protocol assignments: Teredo, ORCHID, benchmarking, ...),
 *   2001:db8::/32 and 3fff::/20 (documentation), and 6to4 2002::/16 when the IPv4 address it
 *   carries is refused.
 * Other families (AF_UNIX, ...) and NULL are refused. Pure: no state, no system calls. */
bool netguard_address_refused(const struct sockaddr *sa);

/* Sets the allow-list from list, the value of WERKLAB_WEBHOOK_ALLOW_HTTP: host names and literal
 * addresses separated by commas, spaces around them ignored, empty entries skipped (NULL or ""
 * is an empty list). An IPv6 address is written with or without brackets ("::1", "[::1]"); a
 * port is an error, as is a name that is not one (letters, digits, '-' and '_' in labels of up
 * to 63 separated by dots, no trailing dot, not ending in a numeric label, which a URL reads as
 * an IPv4 address). 0, or -1 with a message for the user in err and the list unchanged. Called
 * before threads read the list (at start, and in tests); not thread-safe against readers. */
int netguard_allow_parse(const char *list, char *err, size_t err_len);

/* True when host is on the allow-list: a name matches a name case-insensitively and exactly (no
 * trailing dot, no wildcard), an address matches the same address however written ("[::1]",
 * "::1", "0:0::1"; IPv4-mapped and IPv4 addresses are not the same). */
bool netguard_host_allowed(const char *host);

/* Checks a URL a user gives (a webhook subscription's), with libcurl's URL parser, as libcurl
 * will read it when sending. Refused: not an absolute http or https URL written as
 * scheme://host (ASCII without spaces or control characters, at most NETGUARD_URL_MAX), plain
 * http to a host not on the allow-list, a user name or password, a fragment, an IPv6 zone,
 * port 0, and a host not on the allow-list that is a refused address or localhost (a name
 * that means loopback, RFC 6761). 0, or -1 with a reason fit for an invalidParams reason
 * ("must use https: plain http only to hosts on WERKLAB_WEBHOOK_ALLOW_HTTP"). */
int netguard_check_url(const char *url, char *reason, size_t reason_len);

/* What netguard_setup() decided and what its checks refused, for one transfer. */
struct netguard_verdict {
    bool host_allowed;                /* the URL's host is on the allow-list: no address check */
    unsigned refused;                 /* connections refused so far */
    char reason[NETGUARD_REASON_MAX]; /* "" or why: the URL's fault, or "refused address
                                         10.0.0.1" (the first address refused) */
};

/* Prepares curl to send to url: checks url (netguard_check_url(); -1 with the reason in
 * v->reason and nothing set when it fails, e.g. an allow-list that no longer holds its host)
 * and sets CURLOPT_URL, the address check on every connection (v must live until the transfer
 * ends), no redirects, only http and https, no proxy (not even from http_proxy and the like).
 * 0, or -1 (also when libcurl refuses one of those options). A transfer that fails with
 * v->refused > 0 had addresses refused (all of them, when it is CURLE_COULDNT_CONNECT and the
 * host resolved to nothing else): report v->reason. The caller sets no proxy,
 * CURLOPT_CONNECT_TO, CURLOPT_RESOLVE or socket callbacks of its own; a connection libcurl
 * reuses was checked when it was opened for the same host. */
int netguard_setup(CURL *curl, const char *url, struct netguard_verdict *v);

#endif

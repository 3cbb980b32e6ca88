/* proxies: the reverse proxies werklabd trusts (WERKLAB_TRUSTED_PROXIES), and the address of the
 * client behind them.
 *
 * Behind a proxy every request arrives from the proxy's address, so limits per client address
 * would count the proxy. The proxy says whom it forwards for in X-Forwarded-For, a list that each
 * hop extends on the right with the address it received the request from. Only the hops werklabd
 * trusts wrote their entries honestly; everything left of them may be made up by the client. So:
 *
 * - From a peer (the TCP connection's other end) that is not trusted, X-Forwarded-For is ignored
 *   entirely: the client is the peer.
 * - From a trusted peer, the list is read from the right. An entry that is itself a trusted proxy
 *   is a hop to pass over; the first entry that is not trusted is the client.
 * - A malformed entry (not a bare IPv4 or IPv6 address: a name, "unknown", an address with a
 *   port or zone, brackets, an empty entry) stops the walk, and the client is the last trusted
 *   hop reached (the peer, or the trusted entry right of the bad one): werklabd cannot tell what
 *   the hop that wrote it meant, and an address is never made from text that is not one. A
 *   client cannot use this to pass for someone else: it can only make itself count as that
 *   trusted hop, which nothing trusts more.
 * - When every entry is trusted, the left-most is the client (a request the proxies' own
 *   machines made).
 *
 * Addresses are kept as 16 bytes, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), so an IPv4 entry of
 * the list matches an IPv4 peer however the listening socket reports it; the client's address is
 * written back in its usual text (IPv4 dotted, IPv6 as inet_ntop writes it).
 *
 * Pure: no state, no system calls. A table is filled once at start and only read after. */
#ifndef WERKLAB_PROXIES_H
#define WERKLAB_PROXIES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define PROXIES_MAX 128 /* entries of WERKLAB_TRUSTED_PROXIES */
/* Room for an address as text: INET6_ADDRSTRLEN, and "unknown". */
#define PROXIES_ADDRESS_MAX 46

struct proxies_net {
    unsigned char ip[16]; /* the network's address, the bits after the prefix 0 */
    unsigned bits;        /* prefix length over the 16 bytes: an IPv4 /24 is 96 + 24 */
};

struct proxies {
    size_t n;
    struct proxies_net nets[PROXIES_MAX];
};

/* Fills p from list: IPv4 and IPv6 addresses and networks (address/prefix, e.g. 10.0.0.0/8,
 * fd00::/8) separated by commas, spaces and tabs around them ignored, empty entries skipped; NULL
 * or "" is the empty table (nothing is trusted). A network's bits after its prefix must be 0
 * (10.0.0.1/8 is an error, not 10.0.0.0/8: a mistyped address would otherwise trust a whole
 * network quietly). No host names, ports or brackets. 0, or -1 with a message for the user in
 * err (naming the entry; "trusted-proxies: ..."), p then empty. */
int proxies_parse(struct proxies *p, const char *list, char *err, size_t err_len);

/* True when sa (AF_INET or AF_INET6; anything else and NULL are not) is in the table. */
bool proxies_trusted(const struct proxies *p, const struct sockaddr *sa);

/* The client's address as text into out (at least PROXIES_ADDRESS_MAX bytes), by the rules above:
 * peer is the connection's other end, forwarded_for every X-Forwarded-For line of the request
 * joined in order with commas (NULL or "" when there is none), read only when the peer is
 * trusted. "unknown" when peer is NULL or neither IPv4 nor IPv6. */
void proxies_client_address(const struct proxies *p, const struct sockaddr *peer,
                            const char *forwarded_for, char *out, size_t len);

#endif

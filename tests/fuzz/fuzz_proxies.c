/* Trusted proxies and X-Forwarded-For.
 *
 * The input is a WERKLAB_TRUSTED_PROXIES list and an X-Forwarded-For value, split at the first
 * NUL byte (without one: the list is fixed and the whole input is the header). For a list that
 * parses, the client's address is asked for from a trusted and from an untrusted peer, and must
 * be:
 * - from the untrusted peer, the peer, whatever the header says;
 * - from the trusted one, an address (never "unknown", never text that is not one): the peer, or
 *   one of the header's entries written the way proxies_client_address() writes addresses;
 * - the same for the same input (no state).
 * A list that is refused leaves the table empty and says why. */
#include "fuzz.h"

#include "proxies.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

#define FIXED_LIST "127.0.0.1, 10.0.0.0/8, fd00::/8, 2001:db8:ffff::/48"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* Whether text is an entry of list (comma-separated, spaces and tabs around entries) that, parsed,
 * writes as text. */
static bool written_from_entry(const char *list, const char *text)
{
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        const char *s = p, *e = p + n;
        p = *e ? e + 1 : e;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        char entry[64], again[PROXIES_ADDRESS_MAX];
        if ((size_t)(e - s) >= sizeof entry)
            continue;
        memcpy(entry, s, (size_t)(e - s));
        entry[e - s] = '\0';
        unsigned char ip[16];
        struct in_addr a4;
        if (inet_pton(AF_INET, entry, &a4) == 1) {
            inet_ntop(AF_INET, &a4, again, sizeof again);
        } else if (inet_pton(AF_INET6, entry, ip) == 1) {
            static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
            if (memcmp(ip, mapped, 12) == 0)
                inet_ntop(AF_INET, ip + 12, again, sizeof again);
            else
                inet_ntop(AF_INET6, ip, again, sizeof again);
        } else {
            continue;
        }
        if (strcmp(again, text) == 0)
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    const char *list = FIXED_LIST, *forwarded = text;
    size_t first = strlen(text);
    if (first < size) {
        list = text;
        forwarded = text + first + 1;
    }

    static struct proxies p;
    char err[256] = "";
    if (proxies_parse(&p, list, err, sizeof err) < 0) {
        FUZZ_CHECK(p.n == 0 && strncmp(err, "trusted-proxies: ", 17) == 0);
        free(text);
        return 0;
    }
    FUZZ_CHECK(p.n <= PROXIES_MAX);

    struct sockaddr_in untrusted = {.sin_family = AF_INET};
    inet_pton(AF_INET, "203.0.113.9", &untrusted.sin_addr);
    char out[PROXIES_ADDRESS_MAX], again[PROXIES_ADDRESS_MAX];
    if (!proxies_trusted(&p, (const struct sockaddr *)&untrusted)) {
        proxies_client_address(&p, (const struct sockaddr *)&untrusted, forwarded, out, sizeof out);
        FUZZ_CHECK(strcmp(out, "203.0.113.9") == 0);
    }

    /* A trusted peer: the first network of the table (its own address is in it). */
    if (p.n > 0) {
        struct sockaddr_in6 peer = {.sin6_family = AF_INET6};
        memcpy(&peer.sin6_addr, p.nets[0].ip, 16);
        FUZZ_CHECK(proxies_trusted(&p, (const struct sockaddr *)&peer));
        char peer_text[PROXIES_ADDRESS_MAX];
        proxies_client_address(&p, (const struct sockaddr *)&peer, NULL, peer_text,
                               sizeof peer_text);
        proxies_client_address(&p, (const struct sockaddr *)&peer, forwarded, out, sizeof out);
        proxies_client_address(&p, (const struct sockaddr *)&peer, forwarded, again, sizeof again);
        FUZZ_CHECK(strcmp(out, again) == 0);
        FUZZ_CHECK(strcmp(out, peer_text) == 0 || written_from_entry(forwarded, out));
    }
    free(text);
    return 0;
}

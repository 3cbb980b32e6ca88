"""Behind a proxy: WERKLAB_TRUSTED_PROXIES and X-Forwarded-For.

Only from a trusted peer is the client address taken from X-Forwarded-For: its right-most entry
that is not itself a trusted proxy, several header lines read as one list in order, a malformed
entry never taken as an address (the last trusted hop is). From any other peer the header is
ignored. The client address is what the per-address limit of public writes counts, and whose
idempotency keys a public POST's are; both are shown here through RateLimit-Remaining, 429 and
Idempotent-Replayed, on daemons of their own with a small limit. The tests connect from
127.0.0.1, which one daemon trusts and the other does not.

Every test uses addresses of its own (random, in ranges reserved for documentation and
benchmarks), so that the buckets of one test are never another's.
"""

import http.client
import json
import random
import uuid

import pytest

from conftest import Daemon
from wlclient import Response, assert_problem, describe

LIMIT = 3  # public writes per minute: a token every 20 s, far more than a test's requests take
TRUSTED = "127.0.0.1/32, 10.0.0.0/8, 2001:db8:ffff::/48"


_used = set()


def _unique(make):
    """An address no other test here has used: a bucket of its own."""
    while True:
        address = make()
        if address not in _used:
            _used.add(address)
            return address


def client_v4():
    """An address in 198.18.0.0/15 (benchmarking): never a trusted proxy here."""
    return _unique(lambda: f"198.{random.randint(18, 19)}.{random.randint(0, 255)}."
                           f"{random.randint(1, 254)}")


def client_v6():
    """An address in 2001:db8::/32 (documentation), outside the trusted 2001:db8:ffff::/48."""
    return _unique(lambda: f"2001:db8:{random.randint(1, 0xfffe):x}::{random.randint(1, 0xffff):x}")


def hop():
    """A trusted proxy's address (10.0.0.0/8)."""
    return _unique(lambda: f"10.{random.randint(0, 255)}.{random.randint(0, 255)}."
                           f"{random.randint(1, 254)}")


def inquiry():
    return {"municipalityName": "Zaltbommel", "contactName": "Marieke van Dijk",
            "email": f"marieke.{uuid.uuid4().hex[:6]}@example.nl",
            "message": "Wij willen graag een werklab voor onze gemeente."}


def post(daemon, forwarded=None, body=None, headers=None):
    """A public POST /v1/inquiries; forwarded is one X-Forwarded-For value, a list of them (one
    header line each, in order), or None for no header."""
    lines = [] if forwarded is None else [forwarded] if isinstance(forwarded, str) else forwarded
    data = json.dumps(body or inquiry()).encode()
    c = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    try:
        c.putrequest("POST", "/v1/inquiries", skip_accept_encoding=True)
        c.putheader("Content-Type", "application/json")
        c.putheader("Content-Length", str(len(data)))
        for line in lines:
            c.putheader("X-Forwarded-For", line)
        for name, value in (headers or {}).items():
            c.putheader(name, value)
        c.endheaders(data)
        r = c.getresponse()
        return Response(r.status, r.reason, r.headers, r.read(), "POST", "/v1/inquiries")
    finally:
        c.close()


def remaining(r):
    assert r.status == 201, describe(r)
    assert r.header("RateLimit-Limit") == str(LIMIT), describe(r)
    return int(r.header("RateLimit-Remaining"))


def assert_exhausted(daemon, forwarded):
    """The bucket that forwarded counts in is empty: its next public write is 429."""
    r = post(daemon, forwarded)
    p = assert_problem(r, 429)
    assert "this address" in p["detail"], p
    assert r.header("RateLimit-Remaining") == "0", describe(r)
    assert int(r.header("Retry-After")) >= 1, describe(r)


@pytest.fixture(scope="module")
def untrusted(werklabd, log_dir):
    """Trusts proxies, but not the tests' address."""
    d = Daemon(werklabd, log_dir, name="untrusted-proxy", threads=2,
               extra_args=("--public-write-limit", str(LIMIT), "--trusted-proxies", "10.0.0.0/8"))
    try:
        d.wait_ready()
        yield d
    finally:
        d.terminate(timeout=10)


@pytest.fixture(scope="module")
def trusted(werklabd, log_dir):
    """Trusts the tests' address (from the environment: the flag's variable works alike)."""
    d = Daemon(werklabd, log_dir, name="trusted-proxy", threads=2,
               extra_args=("--public-write-limit", str(LIMIT)),
               env=werklabd.env(WERKLAB_TRUSTED_PROXIES=TRUSTED))
    try:
        d.wait_ready()
        yield d
    finally:
        d.terminate(timeout=10)


# ------------------------------------------------------------------ from a peer not trusted


def test_forged_header_from_an_untrusted_peer_changes_nothing(untrusted):
    """Every forged X-Forwarded-For, whatever it holds, counts against the peer: the limit is
    reached after LIMIT writes however the header varies, and then refused whatever it says. A
    public POST's Idempotency-Key stays the peer's too: another forged client gets the answer
    replayed."""
    key = f"forged-{uuid.uuid4().hex}"
    body = inquiry()
    first = post(untrusted, client_v4(), body=body, headers={"Idempotency-Key": key})
    assert remaining(first) == LIMIT - 1
    assert not first.header("Idempotent-Replayed"), describe(first)
    again = post(untrusted, [client_v4(), f"{client_v6()}, {hop()}"], body=body,
                 headers={"Idempotency-Key": key})
    assert again.status == 201 and again.header("Idempotent-Replayed") == "true", describe(again)
    assert again.json["id"] == first.json["id"], describe(again)
    assert remaining(post(untrusted, f"{client_v4()}, 10.0.0.1")) == LIMIT - 3
    for forged in [None, client_v4(), "garbage", [hop(), client_v4()], f"{client_v6()}, 127.0.0.1",
                   "10.1.2.3"]:
        assert_exhausted(untrusted, forged)


# ------------------------------------------------------------------ from a trusted peer


def test_different_forwarded_clients_are_counted_apart(trusted):
    a, b, c = client_v4(), client_v4(), client_v6()
    assert remaining(post(trusted, a)) == LIMIT - 1
    assert remaining(post(trusted, b)) == LIMIT - 1
    assert remaining(post(trusted, c)) == LIMIT - 1
    for n in range(LIMIT - 1):
        assert remaining(post(trusted, a)) == LIMIT - 2 - n
    assert_exhausted(trusted, a)
    # The others still have their own budget.
    assert remaining(post(trusted, b)) == LIMIT - 2
    assert remaining(post(trusted, c)) == LIMIT - 2
    # An address is one client however it is spelt.
    v6 = client_v6()
    assert remaining(post(trusted, v6)) == LIMIT - 1
    assert remaining(post(trusted, v6.upper().replace("::", ":0:0::"))) == LIMIT - 2
    assert_exhausted(trusted, "::ffff:" + a)


def test_the_right_most_untrusted_entry_is_the_client(trusted):
    """What a client writes into the header itself (left of the entry its first trusted proxy
    added) is not believed: varying it does not get a new budget."""
    client = client_v4()
    seen = [remaining(post(trusted, f"{client_v4()}, {client}")) for _ in range(LIMIT)]
    assert seen == list(range(LIMIT - 1, -1, -1)), seen
    assert_exhausted(trusted, client)
    assert_exhausted(trusted, f"{client_v6()}, {client_v4()}, {client}")
    # The left entries were never counted.
    assert remaining(post(trusted, client_v4())) == LIMIT - 1


def test_trusted_proxies_in_the_chain_are_passed_over(trusted):
    client = client_v4()
    chains = [f"{client}, {hop()}", f"{client_v4()}, {client}, {hop()}, 127.0.0.1",
              f"{client}, 2001:db8:ffff::{random.randint(1, 0xffff):x}, {hop()}"]
    seen = [remaining(post(trusted, chain)) for chain in chains]
    assert seen == list(range(LIMIT - 1, -1, -1)), seen
    assert_exhausted(trusted, client)
    # The hops were not counted: each has its whole budget (a chain of trusted hops only is the
    # left-most one's, a request the proxies' own machines made).
    first_hop = chains[0].split(", ")[1]
    assert remaining(post(trusted, first_hop)) == LIMIT - 1


def test_several_header_lines_are_one_list_in_order(trusted):
    client, earlier = client_v4(), client_v4()
    # [earlier, client]: the right-most is client (the first line alone would be earlier).
    assert remaining(post(trusted, [earlier, client])) == LIMIT - 1
    # [client, hop]: client (the last line alone would be the hop).
    assert remaining(post(trusted, [client, hop()])) == LIMIT - 2
    # [client] and [hop] lines with a list in one of them.
    assert remaining(post(trusted, [f"{client_v4()}, {client}", hop()])) == LIMIT - 3
    assert_exhausted(trusted, client)
    assert remaining(post(trusted, earlier)) == LIMIT - 1
    # A line with nothing in it adds no (malformed) empty entry.
    other = client_v4()
    assert remaining(post(trusted, [other, ""])) == LIMIT - 1
    assert remaining(post(trusted, other)) == LIMIT - 2


@pytest.mark.parametrize("garbage", [
    "garbage", "unknown", "_hidden", "198.18.0.1:4711", "[2001:db8::1]", "[2001:db8::1]:443",
    "198.18.0.0/24", "0x7f.1", "fe80::1%eth0", "", "<script>",
], ids=["word", "unknown", "obfuscated", "port", "brackets", "brackets-port", "network", "hex",
        "zone", "empty", "markup"])
def test_a_malformed_entry_is_never_the_address(trusted, garbage):
    """A malformed entry stops the walk: the client is the trusted hop right of it, whatever is
    left of it; the entry itself is not an address to count."""
    behind, client = hop(), client_v4()
    seen = [remaining(post(trusted, f"{client}, {garbage}, {behind}")) for _ in range(LIMIT)]
    assert seen == list(range(LIMIT - 1, -1, -1)), seen
    # Counted as the hop (a chain of trusted hops alone is counted as its left-most) ...
    assert_exhausted(trusted, behind)
    # ... and neither as the client left of the garbage nor as the garbage.
    assert remaining(post(trusted, client)) == LIMIT - 1


def test_a_malformed_right_most_entry_counts_the_peer(trusted):
    """With nothing trusted right of it, the malformed entry leaves the peer as the client. (The
    only test that counts the daemon's peer, 127.0.0.1, itself.)"""
    seen = [remaining(post(trusted, bad)) for bad in ["garbage", f"{client_v4()}, unknown",
                                                       f"{client_v4()}:80"]]
    assert seen == list(range(LIMIT - 1, -1, -1)), seen
    assert_exhausted(trusted, None)
    assert_exhausted(trusted, "still garbage")
    # A request with a well-formed client still has its own budget.
    assert remaining(post(trusted, client_v4())) == LIMIT - 1


def test_public_idempotency_keys_are_the_forwarded_clients(trusted):
    """A public POST's Idempotency-Key belongs to the client address: the same key from another
    client behind the proxy is a new request, not the first client's answer replayed."""
    key = f"proxy-{uuid.uuid4().hex}"
    body = inquiry()
    a, b = client_v4(), client_v4()
    first = post(trusted, a, body=body, headers={"Idempotency-Key": key})
    assert first.status == 201 and not first.header("Idempotent-Replayed"), describe(first)
    again = post(trusted, f"{client_v4()}, {a}", body=body, headers={"Idempotency-Key": key})
    assert again.status == 201 and again.header("Idempotent-Replayed") == "true", describe(again)
    assert again.json["id"] == first.json["id"], describe(again)
    other = post(trusted, b, body=body, headers={"Idempotency-Key": key})
    assert other.status == 201 and not other.header("Idempotent-Replayed"), describe(other)
    assert other.json["id"] != first.json["id"], describe(other)


# ------------------------------------------------------------------ the setting


@pytest.mark.parametrize("value, named", [
    ("nginx", "'nginx' is not an IPv4 or IPv6 address or network"),
    ("10.0.0.0/8, proxy.internal", "'proxy.internal' is not"),
    ("127.0.0.1:8080", "'127.0.0.1:8080' is not"),
    ("[::1]", "'[::1]' is not"),
    ("::1/129", "'::1/129' is not"),
    ("10.0.0.0/33", "'10.0.0.0/33' is not"),
    ("10.0.0.1/8", "'10.0.0.1/8' has bits set after its prefix"),
], ids=["name", "name-in-list", "port", "brackets", "ipv6-prefix", "ipv4-prefix", "host-bits"])
@pytest.mark.parametrize("way", ["flag", "variable"])
def test_bad_setting_refuses_to_start(werklabd, value, named, way):
    if way == "flag":
        out = werklabd.run("serve", "--listen", "127.0.0.1:0", "--trusted-proxies", value,
                           timeout=30)
    else:
        out = werklabd.run("serve", "--listen", "127.0.0.1:0", timeout=30,
                           env=werklabd.env(WERKLAB_TRUSTED_PROXIES=value))
    assert out.returncode == 2, f"{value!r}: exit {out.returncode}\n{out.stdout}{out.stderr}"
    assert f"werklabd: trusted-proxies: {named}" in out.stderr, out.stderr

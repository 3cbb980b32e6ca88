"""Odd and oversized requests: each gets an answer below 500 (or a closed connection for what
the HTTP layer refuses outright), and the daemon lives on (checked after every test by the
daemon_survives fixture in conftest.py). Most useful under AddressSanitizer: WERKLABD=<asan build>."""

import urllib.parse

import pytest

from wlclient import assert_problem, assert_status, describe, raw_request


def survive(api, keys):
    r = api.get("/v1/municipalities?limit=1", key=keys.admin)
    assert r.status == 200, describe(r)


@pytest.fixture(scope="module")
def cursor(api, keys):
    r = api.get("/v1/municipalities?limit=2&sort=name", key=keys.admin)
    nxt = r.json["next"]
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(nxt).query))["cursor"]


@pytest.mark.parametrize("how", ["long-signature", "long-payload", "signature-only", "payload-only",
                                 "many-dots", "empty-parts", "max-length"])
def test_cursor_shapes(api, keys, cursor, how):
    payload, _, sig = cursor.partition(".")
    bad = {
        "long-signature": payload + "." + "A" * 3000,
        "long-payload": "A" * 3000 + "." + sig,
        "signature-only": "." + sig,
        "payload-only": payload + ".",
        "many-dots": ".".join([payload] * 50),
        "empty-parts": ".",
        "max-length": payload + "." + sig + "A" * (4096 - len(cursor) - 1),
    }[how]
    r = api.get("/v1/municipalities?" + urllib.parse.urlencode({"limit": 2, "sort": "name", "cursor": bad}),
                key=keys.admin)
    assert_problem(r, 400, names={"cursor"})
    survive(api, keys)


@pytest.mark.parametrize("path", [
    "/v1/" + "a/" * 40 + "b",
    "/v1/municipalities/" + "x" * 5000,
    "/v1/municipalities/" + "0" * 200,
    "/v1/municipalities/%zz",
    "/v1/municipalities/%",
    "/v1/municipalities/%00",
    "/v1/municipalities%2f",
    "/v1/municipalities/../api-keys",
    "/v1/%2e%2e/healthz",
    "//v1//municipalities",
    "/v1/municipalities?",
    "/v1/municipalities?&&&",
    "/v1/municipalities?=x",
    "/v1/municipalities?limit",
    "/v1/municipalities?limit=1&limit=2",
    "/v1/municipalities?" + "&".join(f"k{i}=v" for i in range(500)),
    "/v1/municipalities?q=" + "%C3" * 10,
    "/v1/municipalities?province=" + "%FF%FE",
    "/v1/municipalities?code=" + ",".join(["GM0297"] * 500),
    "/v1/municipalities?sort=" + ",".join(["name"] * 100),
    "/v1/municipalities?sort=" + ",".join(["name", "code", "province", "createdAt", "updatedAt"] * 2),
])
def test_odd_paths_and_queries(api, keys, path):
    with api.raw() as c:
        c.send(raw_request("GET", path, {"Authorization": f"Bearer {keys.admin}", "Connection": "close"}))
        try:
            r = c.response("GET", path[:80])
        except EOFError:
            r = None  # refused by the HTTP layer
    if r is not None:
        assert r.status < 500, describe(r)
        if r.status >= 400 and r.header("API-Version"):
            assert_problem(r, r.status)
    survive(api, keys)


@pytest.mark.parametrize("name,value", [
    ("X-Request-Id", "r" * 10000),
    ("Authorization", "Bearer " + "wlk_" + "a" * 8000),
    ("Accept", ", ".join(["text/html;q=0.1"] * 300) + ", application/json"),
    ("Content-Type", "application/json; " + "x=y; " * 500),
    ("If-None-Match", ", ".join(f'"{i}"' for i in range(1000))),
    ("If-Match", "W/" * 100 + '"1"'),
    ("Origin", "https://" + "a" * 5000 + ".nl"),
])
def test_big_headers(api, keys, municipality, name, value):
    headers = {"Authorization": f"Bearer {keys.admin}", "Content-Type": "application/json",
               "Connection": "close"}
    headers[name] = value
    path = f"/v1/municipalities/{municipality['id']}"
    with api.raw() as c:
        c.send(raw_request("PATCH", path, headers, body=b'{"notes": "big header"}'))
        try:
            r = c.response("PATCH", path)
        except EOFError:
            r = None
    if r is not None:
        assert r.status < 500, describe(r)
    survive(api, keys)


@pytest.mark.parametrize("body", [
    b"[" * 10000 + b"]" * 10000,
    b'{"contact":' * 5000 + b"1" + b"}" * 5000,
    b'{"name": "' + b"\\u00e9" * 50000 + b'"}',
    b'{"name": "\\ud800"}',
    b'{"name": "\\udc00\\ud800"}',
    b'{"name": 1e999999}',
    b'{"notes": ' + b"9" * 5000 + b"}",
    b"\xef\xbb\xbf{}",
    b'{"' + b"k" * 100000 + b'": 1}',
    b"{" + b",".join(b'"k%d": 1' % i for i in range(5000)) + b"}",
])
def test_hostile_json(api, keys, body):
    r = api.post("/v1/municipalities", body=body, key=keys.admin)
    assert r.status in (400, 413), describe(r)
    assert_problem(r, r.status)
    survive(api, keys)


def test_many_connections_at_once(api, keys):
    conns = [api.raw() for _ in range(64)]
    try:
        for c in conns:
            c.send(raw_request("GET", "/healthz"))
        for c in conns:
            assert c.response("GET", "/healthz").status == 200
    finally:
        for c in conns:
            c.close()
    survive(api, keys)


def test_half_sent_requests_do_not_block_others(api, keys):
    conns = [api.raw() for _ in range(16)]
    try:
        for c in conns:
            c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
        for _ in range(8):
            assert_status(api.get("/healthz", timeout=5), 200)
    finally:
        for c in conns:
            c.close()
    survive(api, keys)

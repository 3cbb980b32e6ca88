"""Requests at the edges of HTTP, over raw sockets: each is answered with problem+json (see the
README's "Limits worth knowing") or closed, well within the connection timeout, and the daemon
serves the next client. Ambiguous framing is 400 with the connection closed: the bytes after it
are never answered as another request. Idle keep-alive connections give way to new clients, and
cost next to no memory.

Each case prints how long it took (pytest -s). The socket timeout (15 s) is far below the
connection timeout (30 s): a case that hangs fails instead of waiting for the daemon."""

import os
import resource
import socket
import time

import pytest

from conftest import Daemon
from wlclient import assert_problem, assert_status, chunked, describe

TIMEOUT = 15  # seconds a case may take before it counts as a hang; the daemon's is 30
UTF8_ERRORS = ("UTF8", "UTF-8\"", "byte sequence", "encoding", "0xff")


def timed(name, started):
    print(f"\n[timing] {name}: {time.monotonic() - started:.3f} s")


def head(method, path, headers=(), host=True, version="HTTP/1.1"):
    lines = [f"{method} {path} {version}"] + (["Host: 127.0.0.1"] if host else [])
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def exchange(api, data, name):
    """Sends data (in pieces, stopping early when the server answers), then reads
    responses until the server closes or TIMEOUT passes. Returns (responses, closed)."""
    pieces = [data[i:i + 16384] for i in range(0, len(data), 16384)]
    started = time.monotonic()
    responses, closed = [], False
    with api.raw(timeout=TIMEOUT) as c:
        try:
            c.send_until_answered(pieces)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while True:
                responses.append(c.response("GET", name))
        except EOFError:
            closed = True
        except (ConnectionResetError, BrokenPipeError):
            closed = True
        except socket.timeout:
            pass
    timed(name, started)
    return responses, closed


def normal_request_works(api):
    assert_status(api.get("/healthz", timeout=TIMEOUT), 200)


def auth(keys):
    return ("Authorization", f"Bearer {keys.admin}")


# ------------------------------------------------------------------ the request line and headers


def params(n):
    return "/v1/municipalities?" + "&".join(f"p{i}=1" for i in range(n))


@pytest.mark.parametrize("n", [33, 1000, 3000])
def test_too_many_query_parameters_is_400(api, keys, n):
    responses, _ = exchange(api, head("GET", params(n), [auth(keys), ("Connection", "close")]),
                            f"{n} query parameters")
    assert len(responses) == 1
    p = assert_problem(responses[0], 400)
    assert "more than 32 parameters" in p["detail"]
    normal_request_works(api)


@pytest.mark.parametrize("n", [5000, 50000])
def test_request_line_longer_than_a_head_may_be_is_414(api, keys, n):
    """A request line longer than a head may be (WERKLAB_CONNECTION_MEMORY_LIMIT, 32 KiB) is not
    read to its end: 414, and the connection closed, after the client's bytes are read and
    dropped, so that no reset overtakes the answer."""
    responses, closed = exchange(api, head("GET", params(n), [auth(keys)]),
                                 f"{n} query parameters")
    assert closed
    assert [r.status for r in responses] == [414]
    assert_problem(responses[0], 414)
    normal_request_works(api)


@pytest.mark.parametrize("fill", [0, 90])
def test_a_query_is_answered_however_full_the_head_is(api, keys, fill):
    """A long query with headers that nearly fill the head (about 8 KB of query and 15 KB of
    headers in one go) is answered in werklabd's words."""
    query = "&".join(f"p{i}={'v' * 240}" for i in range(32))
    headers = [auth(keys), ("Connection", "close")]
    headers += [(f"X-Fill-{i}", "f" * 150) for i in range(fill)]
    responses, _ = exchange(api, head("GET", "/v1/municipalities?" + query, headers),
                            f"32 long query parameters and {fill} headers")
    assert len(responses) == 1
    p = assert_problem(responses[0], 400)
    assert any(i["name"] == "p31" for i in p["invalidParams"]), p
    normal_request_works(api)


def test_query_decoding(api, keys):
    """'+' is a space, %XX an escape, a key without '=' has the empty value, an empty last part
    is no parameter, an empty part in the middle is a key named \"\"."""
    r = api.get("/v1/municipalities?q=den+bosch&limit=%35&", key=keys.admin)
    assert r.status == 200, describe(r)
    p = assert_problem(api.get("/v1/municipalities?limit=5&&sort", key=keys.admin), 400)
    assert sorted(i["name"] for i in p["invalidParams"]) == ["", "sort"], p


def test_a_body_read_as_the_next_request_line_is_answered_and_closed(api):
    """A POST whose Content-Length is misspelt: its body is read as the next request line. The
    first request is answered; the bytes after it are no request line, which is answered 400 and
    closes the connection (tests/fuzz/README.md)."""
    seed = os.path.join(os.path.dirname(__file__), "..", "fuzz", "seeds", "http",
                        "regress_abandoned_request")
    with open(seed, "rb") as f:
        data = f.read()
    responses, closed = exchange(api, data, "a body read as the next request line")
    assert closed
    assert [r.status for r in responses] == [400, 400]
    assert "request line" in assert_problem(responses[1], 400)["detail"]
    normal_request_works(api)


def test_url_over_the_limit_is_414(api, keys):
    responses, _ = exchange(api, head("GET", "/v1/municipalities?q=" + "a" * 9000,
                                      [auth(keys), ("Connection", "close")]), "9 KB URL")
    assert len(responses) == 1
    assert_problem(responses[0], 414)
    normal_request_works(api)


def test_200kb_url_is_414_and_closed(api, keys):
    responses, closed = exchange(api, head("GET", "/v1/municipalities?q=" + "a" * 200_000),
                                 "200 KB URL")
    assert closed
    assert [r.status for r in responses] == [414]
    assert_problem(responses[0], 414)
    normal_request_works(api)


def test_long_headers_are_431(api):
    responses, _ = exchange(api, head("GET", "/healthz", [("X-Big", "a" * 20_000)]),
                            "20 KB header")
    assert len(responses) == 1
    assert_problem(responses[0], 431)
    normal_request_works(api)


def test_300kb_header_is_431_and_closed(api):
    responses, closed = exchange(api, head("GET", "/healthz", [("X-Big", "a" * 300_000)]),
                                 "300 KB header")
    assert closed
    assert [r.status for r in responses] == [431]
    assert_problem(responses[0], 431)
    normal_request_works(api)


def test_too_many_headers_are_431(api):
    responses, _ = exchange(api, head("GET", "/healthz", [(f"X-H{i}", "v") for i in range(150)]),
                            "150 headers")
    assert len(responses) == 1
    assert_problem(responses[0], 431)
    normal_request_works(api)


def test_2000_headers(api):
    """More than a head may hold: 431, and the connection closed."""
    responses, closed = exchange(api, head("GET", "/healthz", [(f"X-H{i}", "v") for i in range(2000)]),
                                 "2,000 headers")
    assert closed
    assert [r.status for r in responses] == [431]
    assert_problem(responses[0], 431)
    normal_request_works(api)


def test_body_announced_but_never_sent_is_closed(api, keys):
    """The connection waits for the client only the idle timeout (5 s), not the 30 s."""
    responses, closed = exchange(api, head("POST", "/v1/municipalities", [
        auth(keys), ("Content-Type", "application/json"), ("Content-Length", "100")]),
        "body announced, never sent")
    assert closed and responses == []
    normal_request_works(api)


def test_stalled_request_line_is_closed(api):
    responses, closed = exchange(api, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", "headers never ended")
    assert closed and responses == []
    normal_request_works(api)


# ------------------------------------------------------------------ framing

SMUGGLED = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
JSON = ("Content-Type", "application/json")

FRAMING = {
    "content-length-and-chunked": (400, lambda a: head("POST", "/v1/municipalities", [
        a, JSON, ("Content-Length", "5"), ("Transfer-Encoding", "chunked")]) + b"0\r\n\r\n" + SMUGGLED),
    "two-content-lengths": (400, lambda a: head("POST", "/v1/municipalities", [
        a, JSON, ("Content-Length", "0"), ("Content-Length", str(len(SMUGGLED)))]) + SMUGGLED),
    "two-equal-content-lengths": (400, lambda a: head("POST", "/v1/municipalities", [
        a, JSON, ("Content-Length", "2"), ("Content-Length", "2")]) + b"{}" + SMUGGLED),
    "space-before-colon": (400, lambda a: head("POST", "/v1/municipalities", [
        a, JSON, ("Transfer-Encoding ", "chunked")]) + b"0\r\n\r\n" + SMUGGLED),
    "http11-without-host": (400, lambda a: head("GET", "/healthz", host=False) + SMUGGLED),
    "http11-with-two-hosts": (400, lambda a: head("GET", "/healthz", [("Host", "evil.example")])
                              + SMUGGLED),
    "chunked-then-identity": (400, lambda a: head("POST", "/v1/municipalities", [
        a, JSON, ("Transfer-Encoding", "chunked, identity")]) + b"2\r\n{}\r\n0\r\n\r\n" + SMUGGLED),
    "xchunked": (400, lambda a: head("POST", "/v1/municipalities", [
        a, JSON, ("Transfer-Encoding", "xchunked")]) + b"2\r\n{}\r\n0\r\n\r\n" + SMUGGLED),
    "chunk-size-ffffffffffffffff": (411, lambda a: head("POST", "/v1/municipalities", [
        a, JSON, ("Transfer-Encoding", "chunked")]) + b"ffffffffffffffff\r\n{"),
    "chunk-size-2mib": (411, lambda a: head("POST", "/v1/municipalities", [
        a, JSON, ("Transfer-Encoding", "chunked")]) + b"200000\r\n{"),
    "chunk-extension-100kb": (411, lambda a: head("POST", "/v1/municipalities", [
        a, JSON, ("Transfer-Encoding", "chunked")]) + b"2;" + b"e" * 100_000 + b"\r\n{}\r\n0\r\n\r\n"),
    "chunked-small-body": (411, lambda a: head("POST", "/v1/municipalities", [
        a, JSON, ("Transfer-Encoding", "chunked")]) + b"".join(chunked(b"{}")) + SMUGGLED),
}


@pytest.mark.parametrize("shape", sorted(FRAMING))
def test_ambiguous_framing_is_refused_and_closed(api, keys, shape):
    status, build = FRAMING[shape]
    responses, closed = exchange(api, build(auth(keys)), f"framing: {shape}")
    assert closed, "the connection stays open after ambiguous framing"
    assert len(responses) == 1, "the bytes after the request were answered as another request:\n" \
        + "\n".join(describe(r) for r in responses)
    assert_problem(responses[0], status)
    assert (responses[0].header("Connection") or "").lower() == "close"
    normal_request_works(api)


def test_a_hundred_pipelined_requests_are_answered_in_order(api):
    """More than one turn's worth (a connection has 16 answered in a row before the others on its
    thread get theirs): the rest are taken up in the next round, in order, none lost."""
    data = b"".join(head("GET", "/healthz", [("X-Request-Id", f"many-{i}")]) for i in range(100))
    with api.raw(timeout=TIMEOUT) as c:
        c.send(data)
        ids = [c.response("GET", "/healthz").header("X-Request-Id") for _ in range(100)]
    assert ids == [f"many-{i}" for i in range(100)]


def test_expect_100_continue_with_a_body_over_the_limit_is_413_at_once(api, keys):
    """The client waits for 100 Continue before it sends the body: a body that would be refused
    anyway is refused before it is sent."""
    with api.raw(timeout=TIMEOUT) as c:
        c.send(head("POST", "/v1/inquiries", [("Content-Type", "application/json"),
                                              ("Content-Length", "2000000"),
                                              ("Expect", "100-continue")]))
        r = c.response("POST", "/v1/inquiries")
        assert_problem(r, 413)
        assert c.at_eof(wait=TIMEOUT)


def test_ten_pipelined_requests_are_answered_in_order(api):
    data = b"".join(head("GET", "/healthz", [("X-Request-Id", f"pipelined-{i}")]) for i in range(10))
    started = time.monotonic()
    with api.raw(timeout=TIMEOUT) as c:
        c.send(data)
        ids = [c.response("GET", "/healthz").header("X-Request-Id") for _ in range(10)]
    timed("10 pipelined requests", started)
    assert ids == [f"pipelined-{i}" for i in range(10)]


# ------------------------------------------------------------------ the wire


@pytest.mark.parametrize("data,status", [
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    (b"GET /healthz HTTP/3.0\r\nHost: x\r\n\r\n", 505),
    (b"GET /healthz\r\nHost: x\r\n\r\n", 400),
    (b"GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1 \r\nHost: x\r\n\r\n", 400),
    (b"GET /health\x7fz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /healthz http/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    (b"POST /v1/inquiries HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n", 400),
    (b"POST /v1/inquiries HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
], ids=["http2-preface", "http3", "no-version", "two-spaces", "trailing-space", "del-in-target",
        "lower-case-version", "folded-line", "no-colon", "bare-cr", "nul", "length-not-digits",
        "negative-length"])
def test_what_is_no_request_is_answered_and_closed(api, data, status):
    """Bytes that are no HTTP/1.1 request head are answered in werklabd's words, and close the
    connection: what follows them cannot be trusted to be a request."""
    responses, closed = exchange(api, data + SMUGGLED, "no request head")
    assert closed
    assert [r.status for r in responses] == [status]
    assert_problem(responses[0], status)
    assert (responses[0].header("Connection") or "").lower() == "close"
    normal_request_works(api)


def test_empty_lines_before_a_request_line_are_ignored(api):
    """RFC 9112 §2.2: some clients send a CRLF after a body; the next request still counts."""
    responses, _ = exchange(api, b"\r\n\r\n" + head("GET", "/healthz", [("Connection", "close")]),
                            "empty lines before a request")
    assert [r.status for r in responses] == [200]


def test_a_half_close_after_a_request_gets_the_answer_then_the_close(roomy_daemon):
    """A client may end its side once its request is sent. It gets its answer, and the connection
    closes at once: the roomy daemon's idle timeout (300 s) is far beyond the socket's (15 s), so
    a connection left to time out fails here."""
    with socket.create_connection(("127.0.0.1", roomy_daemon.port), timeout=TIMEOUT) as s:
        s.sendall(head("GET", "/healthz") + head("GET", "/healthz", [("X-Request-Id", "second")]))
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK\r\n") == 2, data[:400]
    assert b"X-Request-Id: second" in data


def test_expect_100_continue_is_answered_before_the_body(api, keys):
    with api.raw(timeout=TIMEOUT) as c:
        c.send(head("POST", "/v1/inquiries", [("Content-Type", "application/json"),
                                              ("Content-Length", "2"), ("Expect", "100-continue")]))
        assert c._readline() == b"HTTP/1.1 100 Continue"
        assert c._readline() == b""
        c.send(b"{}")
        r = c.response("POST", "/v1/inquiries")
    assert_problem(r, 400)  # an empty inquiry: the body was read and judged


def test_http10_closes_unless_kept_alive(api):
    with api.raw(timeout=TIMEOUT) as c:
        c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        r = c.response("GET", "/healthz")
        assert r.status == 200 and (r.header("Connection") or "").lower() == "close"
        assert c.at_eof(wait=TIMEOUT)
    with api.raw(timeout=TIMEOUT) as c:
        for _ in range(2):
            c.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            r = c.response("GET", "/healthz")
            assert r.status == 200 and (r.header("Connection") or "").lower() == "keep-alive"


def test_head_has_the_length_and_no_body(api):
    """A HEAD's answer says how long the GET's body is and sends none: the next answer on the
    connection starts right after its head."""
    with api.raw(timeout=TIMEOUT) as c:
        c.send(head("HEAD", "/healthz") + head("GET", "/healthz", [("X-Request-Id", "after-head")]))
        r = c.response("HEAD", "/healthz")
        assert r.status == 200 and r.header("Content-Length") == "15", describe(r)
        r = c.response("GET", "/healthz")
        assert r.status == 200 and r.header("X-Request-Id") == "after-head", describe(r)
        assert r.json == {"status": "ok"}


def test_escaped_unreserved_characters_in_a_path_are_the_characters(api, keys):
    """RFC 3986 §6.2.2.2: %61 is "a". Other escapes stay: %2F is no segment's end."""
    m = api.get("/v1/municipalities?limit=1", key=keys.admin).json["items"][0]
    escaped = "".join(f"%{ord(ch):02X}" for ch in m["id"])
    r = api.get(f"/v1/m%75nicipalities/{escaped}", key=keys.admin)
    assert r.status == 200 and r.json["id"] == m["id"], describe(r)
    assert_problem(api.get(f"/v1/municipalities%2F{m['id']}", key=keys.admin), 404)


def test_every_answer_has_a_date(api):
    r = api.get("/healthz")
    assert r.header("Date") and r.header("Date").endswith(" GMT"), describe(r)


# ------------------------------------------------------------------ text that is not UTF-8


@pytest.mark.parametrize("path,name", [
    ("/v1/municipalities?q=%ff%fe", "q"),
    ("/v1/municipalities?province=%C3", "province"),
    ("/v1/audit-log?resource=%ff%fe", "resource"),
    ("/v1/municipalities?%ff=1", None),
])
def test_query_that_is_not_utf8_is_400(api, keys, path, name):
    started = time.monotonic()
    r = api.get(path, key=keys.admin, timeout=TIMEOUT)
    timed(f"not UTF-8: {path}", started)
    p = assert_problem(r, 400)
    params = p.get("invalidParams") or []
    assert any(i["code"] == "format" and (name is None or i["name"] == name) for i in params), describe(r)
    assert not any(word in r.body.decode("utf-8", "replace") for word in UTF8_ERRORS), describe(r)


@pytest.mark.parametrize("value", [b"\xff\xfe", b"caf\xe9", b"a\x01b"])
def test_header_that_is_not_utf8_text_is_400(api, keys, value):
    data = head("GET", "/v1/municipalities?limit=1",
                [auth(keys), ("X-Client", "VALUE"), ("Connection", "close")])
    responses, _ = exchange(api, data.replace(b"VALUE", value), "header not UTF-8")
    r = responses[0]
    p = assert_problem(r, 400)
    assert [i["name"] for i in p["invalidParams"]] == ["X-Client"], describe(r)
    normal_request_works(api)


# ------------------------------------------------------------------ idle connections


@pytest.fixture(scope="module")
def roomy_daemon(werklabd, log_dir):
    """A daemon whose idle connections would outlive the test: the limits make the room."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < 2500:
        pytest.skip(f"needs 2,500 open files, the limit is {hard}")
    d = Daemon(werklabd, log_dir, name="roomy", extra_args=[
        "--idle-timeout", "300", "--connection-limit", "1000", "--per-ip-connection-limit", "512"])
    try:
        d.wait_ready()
        yield d
    finally:
        code = d.terminate()
    assert code == 0, d.log_text()[-3000:]


def open_idle(port, n, sources):
    """n connections, spread over the source addresses, each answered once and then left idle."""
    conns = []
    for i in range(n):
        s = socket.socket()
        s.settimeout(TIMEOUT)
        s.bind((sources[i % len(sources)], 0))
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            assert chunk, f"connection {i} closed before its answer"
            data += chunk
        assert data.startswith(b"HTTP/1.1 200"), data[:200]
        conns.append(s)
    return conns


def closed_for_room(daemon, key):
    r = daemon.api.get("/metrics", key=key, timeout=TIMEOUT)
    assert_status(r, 200)
    for line in r.body.decode().splitlines():
        if line.startswith("werklabd_http_connections_closed_for_room_total "):
            return int(line.split()[1])
    raise AssertionError("no werklabd_http_connections_closed_for_room_total in /metrics")


def served_from(daemon, source, name):
    started = time.monotonic()
    with socket.socket() as s:
        s.settimeout(TIMEOUT)
        s.bind((source, 0))
        s.connect(("127.0.0.1", daemon.port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
    timed(name, started)


@pytest.mark.parametrize("sources", [["127.0.0.1"], ["127.0.0.1", "127.0.0.2"]],
                         ids=["one-address", "two-addresses"])
def test_idle_connections_give_way_to_new_clients(roomy_daemon, keys, sources):
    before = closed_for_room(roomy_daemon, keys.admin)
    conns = open_idle(roomy_daemon.port, 1000, sources)
    try:
        for source in sources:
            served_from(roomy_daemon, source, f"new client from {source} after 1,000 idle "
                                              f"from {len(sources)} address(es)")
        assert closed_for_room(roomy_daemon, keys.admin) > before
    finally:
        for s in conns:
            s.close()


def resident_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_idle_connections_cost_next_to_no_memory(werklabd, log_dir):
    """A connection that waits between requests holds no buffer: 500 of them, each after a
    request, add far less than a kilobyte each to the resident memory of a daemon that never had
    more connections (a buffer of even 8 KiB kept per connection would add 4 MiB)."""
    d = Daemon(werklabd, log_dir, name="idle-memory", extra_args=["--idle-timeout", "300"])
    try:
        d.wait_ready()
        with open(f"/proc/{d.proc.pid}/maps") as f:
            if "libasan" in f.read():
                # Its allocator keeps redzones, shadow and caches of its own per allocation.
                pytest.skip("measures the daemon's memory, not AddressSanitizer's")
        open_idle(d.port, 8, ["127.0.0.1"])  # every thread has served a request: warm
        before = resident_kib(d.proc.pid)
        conns = open_idle(d.port, 500, ["127.0.0.1"])
        grown = resident_kib(d.proc.pid) - before
        print(f"\n[memory] 500 idle connections: +{grown} KiB")
        for s in conns:
            s.close()
        assert grown < 2048, f"500 idle connections added {grown} KiB"
    finally:
        code = d.terminate()
    assert code == 0, d.log_text()[-3000:]


def test_metrics_count_connections(api, keys):
    r = api.get("/metrics", key=keys.admin)
    assert_status(r, 200)
    text = r.body.decode()
    for name in ('werklabd_http_connections{state="waiting"}', 'werklabd_http_connections{state="busy"}',
                 "werklabd_http_connections_closed_for_room_total",
                 "werklabd_http_connections_refused_total"):
        assert name in text, name


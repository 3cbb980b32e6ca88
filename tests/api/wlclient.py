"""HTTP client helpers and assertions for the werklabd black-box tests.

Standard library only. `Api` speaks HTTP through a fresh http.client connection per call;
`RawConnection` sends bytes over a socket and parses the responses itself, for requests
http.client will not make (chunked uploads, control characters, keep-alive checks by hand).
"""

import datetime
import http.client
import json
import re
import select
import socket
import time
import urllib.parse

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Strict-Transport-Security": "max-age=31536000",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}
API_VERSION = "1.0.0"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


def parse_time(text):
    """An API timestamp as a time. Compare these, never the text: a fraction's trailing zeros
    are left out (".78Z" is .780), so an earlier time's text can sort after a later one's."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def as_ordered(value):
    """A field's value as the API sorts it: a timestamp as a time (parse_time), anything else as
    it is."""
    return parse_time(value) if isinstance(value, str) and TIMESTAMP_RE.match(value) else value
KEY_RE = re.compile(r"^wlk_[0-9a-f]{64}$")
PROVINCES = ["Groningen", "Fryslân", "Drenthe", "Overijssel", "Flevoland", "Gelderland", "Utrecht",
             "Noord-Holland", "Zuid-Holland", "Zeeland", "Noord-Brabant", "Limburg"]


class Response:
    """One HTTP response. Unpacks as (status, headers, body, json)."""

    def __init__(self, status, reason, headers, body, method="", path=""):
        self.status = status
        self.reason = reason
        self.headers = headers  # http.client.HTTPMessage: case-insensitive .get / .get_all
        self.body = body
        self.method = method
        self.path = path
        self.json = None
        ctype = (headers.get("Content-Type") or "").lower()
        if body and "json" in ctype:
            try:
                self.json = json.loads(body)
            except ValueError:
                pass

    def __iter__(self):
        return iter((self.status, self.headers, self.body, self.json))

    def header(self, name):
        return self.headers.get(name)

    def __repr__(self):
        return describe(self)


def describe(resp, limit=1500):
    """A response as text for assertion messages (and for bug reports)."""
    head = "\n".join(f"  {k}: {v}" for k, v in resp.headers.items())
    body = resp.body[:limit].decode("utf-8", "replace")
    if len(resp.body) > limit:
        body += f"... ({len(resp.body)} bytes)"
    return f"{resp.method} {resp.path} -> {resp.status} {resp.reason}\n{head}\n  body: {body}"


def qs(path, params=None, **kw):
    """path + encoded query string; values keep their order; lists become repeated keys."""
    items = list((params or {}).items()) + list(kw.items())
    if not items:
        return path
    return path + "?" + urllib.parse.urlencode(items, doseq=True, quote_via=urllib.parse.quote)


class Api:
    def __init__(self, host, port, timeout=10.0):
        self.host = host
        self.port = port
        self.timeout = timeout

    @property
    def base(self):
        return f"http://{self.host}:{self.port}"

    def connection(self, timeout=None):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout)

    def request(self, method, path, json_body=None, body=None, key=None, headers=None,
                content_type=None, timeout=None, conn=None):
        """One request. json_body is serialised; body is sent as is (bytes or str).

        A body gets Content-Type application/json unless content_type is given (use
        content_type="" to send none). key is sent as 'Authorization: Bearer <key>'.
        """
        hdrs = {}
        if json_body is not None:
            body = json.dumps(json_body).encode()
        if isinstance(body, str):
            body = body.encode()
        if body is not None:
            ctype = "application/json" if content_type is None else content_type
            if ctype:
                hdrs["Content-Type"] = ctype
        if key is not None:
            hdrs["Authorization"] = f"Bearer {key}"
        hdrs.update(headers or {})
        own = conn is None
        c = conn or self.connection(timeout)
        try:
            c.request(method, path, body=body, headers=hdrs)
            r = c.getresponse()
            data = r.read()
            return Response(r.status, r.reason, r.headers, data, method, path)
        finally:
            if own:
                c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def head(self, path, **kw):
        return self.request("HEAD", path, **kw)

    def post(self, path, json_body=None, **kw):
        return self.request("POST", path, json_body=json_body, **kw)

    def patch(self, path, json_body=None, **kw):
        return self.request("PATCH", path, json_body=json_body, **kw)

    def put(self, path, json_body=None, **kw):
        return self.request("PUT", path, json_body=json_body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def options(self, path, **kw):
        return self.request("OPTIONS", path, **kw)

    def raw(self, timeout=None):
        return RawConnection(self.host, self.port, timeout or self.timeout)

    def list_all(self, path, key, params=None, limit=200):
        """Every item of a list, following `next`. Returns (items, pages)."""
        items, pages = [], 0
        url = qs(path, dict(params or {}, limit=limit))
        while url:
            r = self.get(url, key=key)
            assert r.status == 200, describe(r)
            items += r.json["items"]
            pages += 1
            url = r.json["next"]
            assert pages < 1000, "pagination does not end"
        return items, pages


class RawConnection:
    """A plain socket; requests are bytes, responses parsed here."""

    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.closed_by_peer = False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def send_until_answered(self, pieces):
        """Send pieces one by one, stopping early when the server answers or closes.

        For oversized uploads: the server may answer 413 before the body is complete and
        then close; reading as soon as data arrives keeps the answer from being lost.
        Returns True when everything was sent.
        """
        deadline = time.monotonic() + 30
        for piece in pieces:
            view = memoryview(piece)
            while view:
                readable, writable, _ = select.select([self.sock], [self.sock], [], 1)
                if readable:
                    return False
                if time.monotonic() > deadline:
                    raise AssertionError("the server neither reads the body nor answers")
                if not writable:
                    continue
                try:
                    n = self.sock.send(view[:65536])
                except (BrokenPipeError, ConnectionResetError):
                    return False
                view = view[n:]
        return True

    def _fill(self):
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed_by_peer = True
            return False
        self.buf += data
        return True

    def _readline(self):
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise EOFError("connection closed while reading a line; got %r" % self.buf[:200])
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _readn(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(f"connection closed with {len(self.buf)} of {n} body bytes")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self, method="GET", path=""):
        """Read one response (skipping 100 Continue)."""
        while True:
            status_line = self._readline().decode("latin-1")
            parts = status_line.split(" ", 2)
            assert parts[0].startswith("HTTP/1."), f"bad status line {status_line!r}"
            status = int(parts[1])
            reason = parts[2] if len(parts) > 2 else ""
            lines = []
            while True:
                line = self._readline()
                if not line:
                    break
                lines.append(line)
            headers = http.client.parse_headers(_Lines(lines))
            if status == 100:
                continue
            break
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "chunked" in (headers.get("Transfer-Encoding") or "").lower():
            body = b""
            while True:
                size = int(self._readline().split(b";")[0], 16)
                if size == 0:
                    while self._readline():
                        pass
                    break
                body += self._readn(size)
                self._readline()
        elif headers.get("Content-Length") is not None:
            body = self._readn(int(headers["Content-Length"]))
        else:
            while self._fill():
                pass
            body, self.buf = self.buf, b""
        return Response(status, reason, headers, body, method, path)

    def at_eof(self, wait=0.5):
        """True when the server has closed the connection (waits up to `wait` seconds)."""
        if self.closed_by_peer:
            return True
        readable, _, _ = select.select([self.sock], [], [], wait)
        if not readable:
            return False
        return not self._fill()


class _Lines:
    def __init__(self, lines):
        self.lines = [l + b"\r\n" for l in lines] + [b"\r\n"]

    def readline(self, limit=-1):
        return self.lines.pop(0) if self.lines else b""


def raw_request(method, path, headers=None, body=b"", host="127.0.0.1"):
    """Bytes of an HTTP/1.1 request. Header values are sent verbatim."""
    if isinstance(body, str):
        body = body.encode()
    hdrs = {"Host": host}
    hdrs.update(headers or {})
    if body and "Content-Length" not in hdrs and "Transfer-Encoding" not in hdrs:
        hdrs["Content-Length"] = str(len(body))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    return head.encode("latin-1") + b"\r\n" + body


def chunked(data, size=65536):
    """`data` as HTTP chunks (a list of byte strings ending with the last chunk)."""
    out = [b"%x\r\n" % len(data[i:i + size]) + data[i:i + size] + b"\r\n"
           for i in range(0, len(data), size)]
    return out + [b"0\r\n\r\n"]


# ---------------------------------------------------------------- assertions


# Public, cacheable endpoints may send another Cache-Control than no-store (api.md, Conventions).
CACHEABLE = ("/v1/openapi.json",)


def assert_conventions(resp):
    """The headers every response carries."""
    assert resp.header("API-Version") == API_VERSION, describe(resp)
    cacheable = resp.status == 200 and resp.method in ("GET", "HEAD") and resp.path.startswith(CACHEABLE)
    for name, value in SECURITY_HEADERS.items():
        if name == "Cache-Control" and cacheable:
            assert resp.header(name), f"{name} missing\n{describe(resp)}"
            continue
        assert resp.header(name) == value, f"{name} missing or wrong\n{describe(resp)}"
    rid = resp.header("X-Request-Id")
    assert rid, f"no X-Request-Id\n{describe(resp)}"


def assert_problem(resp, status, names=None, conflicts=None):
    """resp is an application/problem+json error with this status.

    names: the exact set of invalidParams names, or a dict name -> code (or set of codes
    any of which is acceptable); conflicts: the exact set of conflict codes.
    Returns the parsed problem.
    """
    assert resp.status == status, f"expected {status}\n{describe(resp)}"
    ctype = (resp.header("Content-Type") or "").split(";")[0].strip().lower()
    assert ctype == "application/problem+json", describe(resp)
    p = resp.json
    assert isinstance(p, dict), describe(resp)
    assert p.get("status") == status, describe(resp)
    assert isinstance(p.get("title"), str) and p["title"], describe(resp)
    assert isinstance(p.get("detail"), str) and p["detail"], describe(resp)
    assert_conventions(resp)
    if names is not None:
        params = p.get("invalidParams")
        assert isinstance(params, list), f"no invalidParams\n{describe(resp)}"
        for ip in params:
            assert set(ip) >= {"name", "code", "reason"}, describe(resp)
        got = {ip["name"] for ip in params}
        assert got == set(names), f"invalidParams {sorted(got)} != {sorted(names)}\n{describe(resp)}"
        assert len(params) == len(got), f"an invalidParams name repeats\n{describe(resp)}"
        if isinstance(names, dict):
            for ip in params:
                want = names[ip["name"]]
                want = {want} if isinstance(want, str) else set(want)
                assert ip["code"] in want, f"{ip} code not in {want}\n{describe(resp)}"
    if conflicts is not None:
        got = {c.get("code") for c in p.get("conflicts") or []}
        assert got == set(conflicts), f"conflicts {got} != {set(conflicts)}\n{describe(resp)}"
        for c in p["conflicts"]:
            assert isinstance(c.get("detail"), str) and c["detail"], describe(resp)
    return p


def invalid_param(problem, name):
    for ip in problem.get("invalidParams") or []:
        if ip["name"] == name:
            return ip
    raise AssertionError(f"{name} not in invalidParams of {problem}")


def assert_status(resp, status):
    assert resp.status == status, f"expected {status}\n{describe(resp)}"
    assert_conventions(resp)
    return resp.json


def wait_for(predicate, timeout, interval=0.1, what="condition"):
    """Poll predicate() until it returns a truthy value; returns it, or fails after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)

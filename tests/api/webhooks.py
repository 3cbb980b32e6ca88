"""A webhook receiver for the API tests: tests/webhooks/receiver.mjs on loopback, which verifies
every delivery with the reference library of the Standard Webhooks specification (the npm
package standardwebhooks) and answers as the test asks.

    r = Receiver(directory).start()            # Receiver(directory, ipv6=True): also on [::1]
    r.url("crm")                               # http://127.0.0.1:<port>/hooks/crm
    r.url("crm", host="localhost")             # also "[::1]" (with ipv6=True)
    r.set("crm", secrets=["whsec_…"], mode="ok")   # fields left out keep their value
    r.set("crm", mode="status 429", retry_after=2) # "ok", "ok 200", "status N", "slow S", "down"
    r.wait_for("crm", lambda ds: len(acknowledged(ds)) >= 3, timeout=30)
    r.deliveries("crm")                        # records, oldest first (also while stopped)
    r.assert_verified()                        # fails on any delivery that did not verify
    r.stop(); r.restart()                      # stopped: connections are refused; same port after

A record (a dict): seq (order of arrival over all names), name, webhook_id, webhook_timestamp,
type, body (parsed JSON or None), raw (the body as text), headers, signatures (entries in
webhook-signature), verified, error, secret (index in the secrets of the first that verified),
secrets_verified (every index that verified), errors (per secret), problems (what the
specification asks and the library does not check), received_at (ISO), received_ms, mode,
status (what was answered; "dropped" in mode down; None when the sender hung up before the
answer), acknowledged (a 2xx written whole before the sender hung up: what a sender should
count as delivered; None while unknown).

Modes: "ok" answers 204 ("ok 200": 200); "status N" answers N; "slow S" answers 204 after S
seconds; "down" reads the request and destroys the connection (a network error, not a refusal:
stop() for that). A delivery that does not verify is answered 400 in every mode but down.
headers= adds headers to every answer (Retry-After, Location); body_bytes= gives answers a body.

sign() and post() sign and send as a sender would; they are for the harness's own tests.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import secrets as _secrets
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from node_process import NodeProcess

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.path.join(HERE, "..", "webhooks")
_UNSET = object()
# Control calls go straight to loopback, whatever proxy the environment names.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port(ipv6):
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if not ipv6:
                return port
            try:
                with socket.socket(socket.AF_INET6) as s6:
                    s6.bind(("::1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no port free on both 127.0.0.1 and ::1")


def install():
    """npm ci of the harness when it is missing (scripts/test does it before pytest)."""
    out = subprocess.run([os.path.join(HARNESS, "install")], capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"tests/webhooks/install failed:\n{out.stdout}\n{out.stderr}")


def acknowledged(records):
    """The records a sender saw acknowledged (a 2xx answered whole)."""
    return [r for r in records if r["acknowledged"]]


def summary(records):
    return "\n".join(
        f"  #{r['seq']} {r['name']} id={r['webhook_id']} type={r['type']} "
        f"verified={r['verified']} status={r['status']} ack={r['acknowledged']}"
        + (f" error={r['error']}" if r["error"] else "")
        + (f" problems={r['problems']}" if r["problems"] else "")
        for r in records) or "  (none)"


class Receiver:
    def __init__(self, directory, ipv6=False, name="webhooks"):
        self.dir = directory
        self.ipv6 = ipv6
        self.port = _free_port(ipv6)
        base = os.path.join(directory, f"{name}-{self.port}")
        self.config_path = base + ".json"
        self.state_path = base + "-state.json"
        self.log_path = base + ".log"
        self.proc = None
        self._hooks = {}  # name -> settings, given again to a restarted receiver
        if os.path.exists(self.state_path):
            os.remove(self.state_path)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -------------------------------------------------------------- process

    @property
    def running(self):
        return self.proc is not None and self.proc.running

    def start(self, timeout=15):
        """Starts the receiver (again, on the same port, with the records and settings it had)."""
        install()
        with open(self.config_path, "w") as f:
            json.dump({"port": self.port, "ipv6": self.ipv6, "state": self.state_path,
                       "hooks": self._hooks}, f)
        self.proc = NodeProcess("the webhook receiver", os.path.join(HARNESS, "receiver.mjs"),
                                self.config_path, self.log_path, HARNESS)
        self.proc.start(timeout)
        return self

    def stop(self):
        """Stops the receiver: its port refuses connections; the records are kept."""
        if self.proc:
            self.proc.stop()
        self.proc = None

    def restart(self, timeout=15):
        self.stop()
        return self.start(timeout)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    # -------------------------------------------------------------- control

    def url(self, name, host="127.0.0.1"):
        return f"http://{host}:{self.port}/hooks/{name}"

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/control/{path}", data=data,
                                     method=method, headers={"Content-Type": "application/json"})
        try:
            with _opener.open(req, timeout=10) as r:
                text = r.read()
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} /control/{path}: {e.code} {e.read().decode()}") from None
        return json.loads(text) if text else None

    def set(self, name, secrets=None, mode=None, headers=None, retry_after=_UNSET,
            body_bytes=None):
        """Sets what the receiver knows and does at /hooks/<name>; what is left out is kept.
        retry_after: a Retry-After header on every answer (None removes it)."""
        change = {}
        if secrets is not None:
            change["secrets"] = list(secrets)
        if mode is not None:
            change["mode"] = mode
        if headers is not None or retry_after is not _UNSET:
            h = dict(headers if headers is not None
                     else self._hooks.get(name, {}).get("headers", {}))
            if retry_after is not _UNSET:
                h.pop("Retry-After", None)
                if retry_after is not None:
                    h["Retry-After"] = str(retry_after)
            change["headers"] = h
        if body_bytes is not None:
            change["body_bytes"] = body_bytes
        if self.running:
            self._call("PUT", name, change)
        self._hooks.setdefault(name, {}).update(change)
        return self

    def deliveries(self, name=None):
        """The records of <name> (of every name when None), oldest first."""
        if self.running:
            return self._call("GET", f"{name}/deliveries" if name else "deliveries")
        if not os.path.exists(self.state_path):
            return []
        with open(self.state_path) as f:
            records = json.load(f)["records"]
        return [r for r in records if name is None or r["name"] == name]

    def clear(self, name):
        self._call("DELETE", f"{name}/deliveries")

    def wait_for(self, name, predicate, timeout=30, interval=0.05):
        """Polls until predicate(records of name) is true; returns those records. On timeout
        fails with what arrived."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.deliveries(name)
            if predicate(records):
                return records
            if time.monotonic() >= deadline:
                raise AssertionError(f"webhook receiver: condition not met in {timeout}s at "
                                     f"{name}; deliveries:\n{summary(records)}")
            time.sleep(interval)

    def failures(self, name=None, problems=True):
        """Records that did not verify (and, with problems, those the checks beyond the library
        found fault with)."""
        return [r for r in self.deliveries(name)
                if not r["verified"] or (problems and r["problems"])]

    def assert_verified(self, name=None, problems=True):
        """Fails when a delivery (to name, or to any name) did not verify with the library."""
        bad = self.failures(name, problems)
        assert not bad, (f"webhook deliveries that failed verification:\n{summary(bad)}\n"
                         + "\n".join(f"  #{r['seq']} headers={r['headers']} raw={r['raw'][:500]}"
                                     for r in bad))


# ------------------------------------------------------------------ a sender, for self-tests

def new_secret(size=24):
    return "whsec_" + base64.b64encode(_secrets.token_bytes(size)).decode()


def sign(secret, msg_id, timestamp, body):
    """The Standard Webhooks v1 signature: HMAC-SHA256 over "{id}.{timestamp}.{body}" with the
    key base64-decoded from after "whsec_", base64, "v1,"-prefixed."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    if isinstance(body, str):
        body = body.encode()
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def post(url, body, secrets=(), msg_id=None, timestamp=None, headers=None, timeout=10):
    """POSTs body (a dict, made JSON, or bytes/str as is) to url signed with every secret as a
    sender during rotation would. headers= replaces or (value None) removes headers.
    Returns (status, headers, body)."""
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    msg_id = msg_id or "msg_" + _secrets.token_hex(12)
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    h = {"Content-Type": "application/json", "webhook-id": msg_id,
         "webhook-timestamp": timestamp,
         "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets)}
    for k, v in (headers or {}).items():
        h.pop(k, None)
        if v is not None:
            h[k] = v
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("POST", u.path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()

"""Fixtures for the black-box tests of werklabd.

Run from the repository root:  /usr/bin/python3 -m pytest tests/api
The binary is $WERKLABD (default build/werklabd), so the suite also runs against a sanitizer
build. Every session starts its own PostgreSQL cluster (scripts/pg) in a temporary directory,
migrates it, makes one key per role and serves on a free port; all of it is removed at the end.

The session's werklabd accepts access tokens of a real OpenID provider on loopback (tests/oidc,
started by the `oidc` fixture: .token(client), .mint(claims), .rotate(); see oidc.py).

Fixtures for tests: `api` (wlclient.Api), `keys` (.admin/.staff/.partner secrets, .ids),
`daemon` (the running server: .log_lines(), .log_text()), `cluster` (.stop()/.start()),
`werklabd` (run the command line), `new_municipality` (factory), `municipality` (a fresh one),
`fresh_code` (an unused GM code).
"""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from wlclient import Api, describe, wait_for  # noqa: E402
import oidc as oidc_harness  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.environ.get("WERKLABD", os.path.join(REPO, "build", "werklabd"))
CORS_ORIGIN = "https://www.lsabewoners.nl"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, directory):
        self.dir = directory
        self.url = None

    def start(self):
        out = subprocess.run([os.path.join(REPO, "scripts", "pg"), "start", self.dir],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"scripts/pg start failed:\n{out.stdout}\n{out.stderr}"
        self.url = out.stdout.strip().splitlines()[-1]
        return self.url

    def stop(self):
        subprocess.run([os.path.join(REPO, "scripts", "pg"), "stop", self.dir],
                       capture_output=True, timeout=120)


class Werklabd:
    """Runs the werklabd command line against the test database."""

    def __init__(self, database_url):
        self.database_url = database_url

    def env(self, **extra):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("WERKLAB_"):
                del env[k]
        env["WERKLAB_DATABASE_URL"] = self.database_url
        # Webhook receivers of the tests listen on loopback. Only the daemons of the webhook
        # tests send (test_webhooks.py): a daemon of another test would meanwhile take a
        # subscription's deliveries over.
        env["WERKLAB_WEBHOOK_ALLOW_HTTP"] = "127.0.0.1,::1,localhost"
        env["WERKLAB_WEBHOOK_SENDER"] = "0"
        env.update(extra)
        return env

    def run(self, *args, timeout=60, env=None):
        return subprocess.run([BINARY, *args], capture_output=True, text=True,
                              timeout=timeout, env=env or self.env())

    def create_key(self, role, name, expires_at=None):
        args = ["create-key", "--role", role, "--name", name]
        if expires_at:
            args += ["--expires-at", expires_at]
        out = self.run(*args)
        assert out.returncode == 0, f"create-key failed: {out.stderr}"
        return out.stdout.strip()


class Daemon:
    """One `werklabd serve` process with its stderr in a file."""

    started = []  # every one of the session, for no_daemon_left()

    def __init__(self, werklabd, log_dir, name="werklabd", threads=4, extra_args=(), env=None):
        self.port = free_port()
        self.log_path = os.path.join(log_dir, f"{name}-{self.port}.log")
        self.api = Api("127.0.0.1", self.port)
        self.args = [BINARY, "serve", "--listen", f"127.0.0.1:{self.port}", "--threads", str(threads),
                     "--cors-origins", CORS_ORIGIN, *extra_args]
        self.env = env or werklabd.env()
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=self.log_file, env=self.env)
        self.returncode = None
        Daemon.started.append(self)

    def restart(self):
        """After a crash: a new process on the same port, logging to the same file."""
        self.log_file.close()
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=self.log_file, env=self.env)
        self.wait_ready()

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"werklabd exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                if self.api.get("/healthz", timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"werklabd did not answer /healthz in {timeout}s:\n{self.log_text()}")

    def terminate(self, timeout=15):
        """SIGTERM, wait; SIGKILL when it does not exit. Returns the exit code (None if killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.log_file.close()
                return None
        self.log_file.close()
        self.returncode = self.proc.returncode
        if self.returncode != 0:
            # What it said last (a sanitizer's report, a message) goes into the failure's output:
            # the log directory is gone when the session ends.
            sys.stderr.write(f"{self.log_path} (exit {self.returncode}):\n{self.log_text()[-20000:]}\n")
        return self.returncode

    def log_text(self):
        if not self.log_file.closed:
            self.log_file.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_lines(self):
        """The JSON objects logged so far (other lines, e.g. sanitizer output, are skipped)."""
        lines = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    pass
        return lines

    def wait_log(self, predicate, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            found = [l for l in self.log_lines() if predicate(l)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


# ------------------------------------------------------------------ session fixtures


@pytest.fixture(scope="session", autouse=True)
def no_daemon_left():
    """Ends the session (set up first, so torn down last) with every werklabd a test started
    stopped: one left running would go on running jobs and sending webhooks on the shared
    database for the rest of the session. A test that leaves one is an error here."""
    yield
    left = [d for d in Daemon.started if d.proc.poll() is None]
    for d in left:
        d.terminate(timeout=5)
    assert not left, f"werklabd left running by a test: {[d.log_path for d in left]}"


@pytest.fixture(scope="session")
def binary():
    if not os.access(BINARY, os.X_OK):
        pytest.exit(f"werklabd binary not found at {BINARY} (build it: ninja -C build, "
                    f"or set WERKLABD)", returncode=1)
    return BINARY


@pytest.fixture(scope="session")
def log_dir():
    d = tempfile.mkdtemp(prefix="werklab-test-logs-")
    yield d
    if os.environ.get("WERKLAB_KEEP_LOGS"):
        print(f"\nwerklabd logs kept in {d}")
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster(binary):
    # Directly under /tmp: the cluster runs as user postgres, which must reach the directory.
    d = tempfile.mkdtemp(prefix="werklab-test-pg-", dir="/tmp")
    c = Cluster(d)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def werklabd(cluster):
    w = Werklabd(cluster.url)
    out = w.run("migrate", timeout=120)
    assert out.returncode == 0, f"werklabd migrate failed:\n{out.stdout}\n{out.stderr}"
    return w


class Keys:
    def __init__(self):
        self.admin = self.staff = self.partner = None
        self.names = {}
        self.ids = {}

    def __getitem__(self, role):
        return None if role in (None, "none") else getattr(self, role)


@pytest.fixture(scope="session")
def keys(werklabd):
    k = Keys()
    for role in ("admin", "staff", "partner"):
        name = f"test-{role}-{uuid.uuid4().hex[:8]}"
        setattr(k, role, werklabd.create_key(role, name))
        k.names[role] = name
    # The key ids, for the log and role tests: read here rather than through a daemon, so that a
    # test that starts a daemon of its own has them whatever ran before it.
    rows = subprocess.run(["psql", "-X", "-q", "-At", "-F", " ", "-v", "ON_ERROR_STOP=1", "-d",
                           werklabd.database_url, "-c",
                           "SELECT name, id FROM api_keys WHERE name IN ('%s')" % "','".join(k.names.values())],
                          capture_output=True, text=True, check=True).stdout.split("\n")
    by_name = dict(line.split(" ", 1) for line in rows if line)
    k.ids = {role: by_name[name] for role, name in k.names.items()}
    return k


def oidc_env(provider, **extra):
    """The settings that make werklabd take provider's tokens (the session's role map)."""
    env = {"WERKLAB_OIDC_ISSUER": provider.issuer, "WERKLAB_OIDC_AUDIENCE": provider.audience,
           "WERKLAB_OIDC_ROLE_MAP": oidc_harness.ROLE_MAP,
           "WERKLAB_OIDC_MUNICIPALITIES_CLAIM": oidc_harness.MUNICIPALITIES_CLAIM}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def oidc(log_dir):
    """The OpenID provider (tests/oidc) whose tokens the session's werklabd accepts.

    Rotate a provider of your own (oidc.Provider, as test_oidc.py does), not this one: after a
    rotation the session's werklabd learns the new kid by a fetch it makes at most once a minute,
    so tokens of other tests could be refused meanwhile."""
    p = oidc_harness.Provider(log_dir)
    try:
        p.start()
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="session")
def daemon(werklabd, keys, log_dir, oidc):
    # The suite sends hundreds of requests a second with one key and posts many public
    # inquiries: the limits are tested with daemons and keys of their own.
    d = Daemon(werklabd, log_dir, extra_args=["--key-rate-limit", "0", "--public-write-limit", "100000"],
               env=werklabd.env(**oidc_env(oidc)))
    try:
        d.wait_ready()
        yield d
    finally:
        code = d.terminate()
    assert code == 0, f"werklabd exited with {code} at the end of the session:\n{d.log_text()[-4000:]}"


@pytest.fixture(scope="session")
def api(daemon):
    return daemon.api


@pytest.fixture(autouse=True)
def daemon_survives(request):
    """A test after which the session's werklabd is dead fails, with the end of its log;
    the daemon is started again so that the tests after it still mean something."""
    if "daemon" not in request.fixturenames and "api" not in request.fixturenames:
        yield
        return
    d = request.getfixturevalue("daemon")
    yield
    if d.proc.poll() is not None:
        code = d.proc.returncode
        tail = d.log_text()[-6000:]
        d.restart()
        pytest.fail(f"werklabd died during this test (exit {code}); its log ends:\n{tail}")


# ------------------------------------------------------------------ municipalities

# Codes the shipped data does not use: GM9xxx first (no real municipality has one), then the
# gaps between real codes, so that a long session never runs out.
with open(os.path.join(REPO, "data", "gemeenten-2025.csv"), encoding="utf-8") as _f:
    _SHIPPED = {line.split(",", 1)[0] for line in _f}
_used_codes = set()


@pytest.fixture(scope="session")
def code_pool():
    def take():
        for prefix in ("GM9", "GM8", "GM7", "GM6", "GM5"):
            free = [f"{prefix}{n:03d}" for n in range(1000)
                    if f"{prefix}{n:03d}" not in _used_codes and f"{prefix}{n:03d}" not in _SHIPPED]
            if free:
                code = random.choice(free)
                _used_codes.add(code)
                return code
        raise RuntimeError("no unused GM code left")
    return take


@pytest.fixture
def fresh_code(code_pool):
    return code_pool()


@pytest.fixture
def new_municipality(api, keys, code_pool):
    """Factory: creates a municipality with an unused GM9xxx code; fields may be overridden."""
    def make(**fields):
        body = {"code": code_pool(), "name": f"Testgemeente {uuid.uuid4().hex[:6]}",
                "province": "Gelderland",
                "contact": {"name": "Jan de Vries", "email": "jan@example.nl",
                            "phone": "+31 6 1234 5678"},
                "notes": "made by the api tests"}
        body.update(fields)
        for _ in range(20):
            r = api.post("/v1/municipalities", body, key=keys.admin)
            if r.status == 409 and "code" not in fields:
                body["code"] = code_pool()
                continue
            break
        assert r.status == 201, describe(r)
        return r.json
    return make


@pytest.fixture
def municipality(new_municipality):
    return new_municipality()


def psql(url, sql):
    """Runs sql with psql on the database at url; its output, stripped. Fails the test when psql
    does."""
    out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"psql failed: {out.stderr}"
    return out.stdout.strip()


def wait_for_the_horizon(url):
    """Until every transaction that began before this call has ended (on the database at url).
    From then on the change feed shows every entry committed before the call: an entry appears
    only once every older transaction has ended, and while an answered write is committed, a
    transaction of someone else's (the audit writer's, the key check's, a job's) that began
    before it may still be open."""
    now = int(psql(url, "SELECT pg_current_xact_id()::text"))
    deadline = time.monotonic() + 30
    while int(psql(url, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text")) <= now:
        assert time.monotonic() < deadline, "a transaction older than the call stays open"
        time.sleep(0.01)


class HeldLock:
    """A psql session that runs sql (a row lock, an advisory lock) in a transaction it keeps open
    until release()."""

    def __init__(self, url, sql):
        self.proc = subprocess.Popen(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.url = url
        self.proc.stdin.write(f"BEGIN; {sql}\nSELECT pg_backend_pid() AS pid \\gset\n\\echo locked :pid\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith("locked "):
                self.pid = int(line.split()[1])
                return
        raise AssertionError(f"psql could not take the lock: {self.proc.stderr.read()}")

    def wait_for_waiters(self, n=1, timeout=30):
        """Until n other sessions wait for this one's lock (pg_blocking_pids)."""
        def waiting():
            return int(psql(self.url, "SELECT count(*) FROM pg_stat_activity "
                                      f"WHERE {self.pid} = ANY(pg_blocking_pids(pid))")) >= n
        wait_for(waiting, timeout=timeout, interval=0.05, what=f"{n} session(s) to wait for the lock")

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("COMMIT;\n")
            self.proc.stdin.close()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

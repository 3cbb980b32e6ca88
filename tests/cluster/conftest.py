"""Fixtures for the cluster tests: scripts/cluster started once for the module.

Run from the repository root:  /usr/bin/python3 -m pytest tests/cluster
The binary is $WERKLABD (default build/werklabd). scripts/cluster runs a PostgreSQL primary, a
streaming replica, two werklabd instances and nginx in front, all on loopback, and writes what
the tests need (ports, pids, data directories, the CA certificate) into an env file; the
`cluster` fixture reads it. After every test `restored` puts the cluster back as it was (replay
resumed, both databases and both instances running), so each test starts from a whole cluster.

Fixtures: `cluster` (Cluster: .nginx()/.instance(n) endpoints, .metrics(n), .readyz(n),
.stop_/start_primary/replica, .pause_/resume_replay, .kill_instance(n), .restart_instances()),
`keys` (.writer and .reader: two admin keys without a rate limit, made with the CLI).
"""

import http.client
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "api"))
from wlclient import Api, wait_for  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.environ.get("WERKLABD", os.path.join(REPO, "build", "werklabd"))
PGBIN = os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin")

# What the instances run with, beyond what scripts/cluster sets.
SETTINGS = {
    # Small, so that the test of a paused replica sees it left within a second or so.
    "WERKLAB_MAX_REPLICA_LAG_MS": "300",
    # Long: a revoked key refused by the other instance within the tests' poll can only have
    # been refused because of the notification, never because its cache entry ran out.
    "WERKLAB_KEY_CACHE_MS": "60000",
    # Two public writes a minute per client address (a token every 30 s): the per-address test
    # exhausts it in a few requests and finishes long before a token comes back.
    "WERKLAB_PUBLIC_WRITE_LIMIT": "2",
    # The load of the test that kills an instance is many requests a second with one key.
    "WERKLAB_KEY_RATE_LIMIT": "0",
    "WERKLAB_THREADS": "4",
}


class Endpoint(Api):
    """wlclient's Api over HTTP or HTTPS (ca: the certificate to trust), optionally from a chosen
    source address (all of 127/8 is loopback on Linux, so 127.0.0.2 is a client nginx and
    werklabd can tell apart)."""

    def __init__(self, host, port, ca=None, source=None, timeout=10.0):
        super().__init__(host, port, timeout)
        self.ca, self.source = ca, source

    def connection(self, timeout=None):
        src = (self.source, 0) if self.source else None
        if self.ca:
            ctx = ssl.create_default_context(cafile=self.ca)
            return http.client.HTTPSConnection(self.host, self.port, context=ctx,
                                               timeout=timeout or self.timeout, source_address=src)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout,
                                          source_address=src)


def read_env(path):
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            name, sep, value = line.rstrip("\n").partition("=")
            if sep:
                env[name] = value
    return env


METRIC_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ([-+0-9.eEnaNInf]+)$')


def parse_metrics(text):
    """{(name, frozenset of (label, value)): float} from Prometheus' text format."""
    out = {}
    for line in text.splitlines():
        m = METRIC_RE.match(line)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


class Cluster:
    def __init__(self, env_file, admin_key):
        self.env_file = env_file
        self.admin = admin_key
        self.reload()

    def reload(self):
        self.env = read_env(self.env_file)

    def __getitem__(self, name):
        return self.env[name]

    # ---- endpoints
    def nginx(self, source=None):
        return Endpoint("127.0.0.1", int(self["NGINX_HTTPS_PORT"]), ca=self["CA_CERT"], source=source)

    def instance(self, n, source=None):
        return Endpoint("127.0.0.1", int(self[f"WERKLABD_{n}_PORT"]), source=source)

    # ---- what an instance says about itself
    def metrics(self, n):
        r = self.instance(n).get("/metrics", key=self.admin)
        assert r.status == 200, r
        return parse_metrics(r.body.decode())

    def reads(self, n):
        """werklabd_reads_total of instance n by target: {"primary": x, "replica-1": y}."""
        return {dict(labels).get("target"): value
                for (name, labels), value in self.metrics(n).items() if name == "werklabd_reads_total"}

    def readyz(self, n):
        return self.instance(n).get("/readyz")

    def database_state(self, n, name):
        """The state /readyz of instance n gives database `name` ("up", "lagging", "down")."""
        r = self.readyz(n)
        for db in (r.json or {}).get("databases", []):
            if db.get("name") == name:
                return db.get("state")
        return None

    def wait_state(self, name, state, timeout=20):
        wait_for(lambda: all(self.database_state(n, name) == state for n in (1, 2)), timeout,
                 what=f"both instances' /readyz to say {name} is {state}")

    # ---- PostgreSQL
    def psql(self, which, sql):
        d = self[f"{which}_DIR"]
        out = subprocess.run([os.path.join(PGBIN, "psql"), "-X", "-qtA", "-h", d, "-p", self[f"{which}_PORT"],
                              "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, f"psql on the {which.lower()}: {out.stderr}"
        return out.stdout.strip()

    def _pg(self, action, which):
        out = subprocess.run([os.path.join(REPO, "scripts", "pg"), action, self[f"{which}_DIR"]],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"scripts/pg {action} {which}: {out.stdout}{out.stderr}"
        with open(os.path.join(self[f"{which}_DIR"], "port")) as f:
            assert f.read().strip() == self[f"{which}_PORT"], \
                f"the {which.lower()} came back on another port: the instances cannot find it"

    def running(self, which):
        out = subprocess.run([os.path.join(PGBIN, "pg_ctl"), "status", "-D",
                              os.path.join(self[f"{which}_DIR"], "data")], capture_output=True)
        return out.returncode == 0

    def stop_primary(self):
        self._pg("stop", "PRIMARY")

    def start_primary(self):
        self._pg("start", "PRIMARY")

    def stop_replica(self):
        self._pg("stop", "REPLICA")

    def start_replica(self):
        self._pg("start", "REPLICA")

    def pause_replay(self):
        self.psql("REPLICA", "SELECT pg_wal_replay_pause()")

    def resume_replay(self):
        self.psql("REPLICA", "SELECT pg_wal_replay_resume()")

    def wait_replayed(self, timeout=30):
        """Until the replica has replayed everything the primary has written so far: a read
        without a Consistency-Token may be served by a replica within the lag bound, which need
        not have a row written a moment ago."""
        lsn = self.psql("PRIMARY", "SELECT pg_current_wal_lsn()")
        wait_for(lambda: self.psql("REPLICA", f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn") == "t",
                 timeout, what=f"the replica to replay up to {lsn}")

    def replay_paused(self):
        return self.psql("REPLICA", "SELECT pg_is_wal_replay_paused()") == "t"

    # ---- instances
    def pid(self, n):
        return int(self[f"WERKLABD_{n}_PID"])

    def alive(self, n):
        try:
            os.kill(self.pid(n), 0)
        except ProcessLookupError:
            return False
        # A zombie (exited, not yet reaped by scripts/cluster) is not alive.
        with open(f"/proc/{self.pid(n)}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"

    def kill_instance(self, n):
        os.kill(self.pid(n), signal.SIGKILL)

    def restart_instances(self):
        """Asks scripts/cluster to start again the instances that exited; waits for them."""
        old = {n: self.pid(n) for n in (1, 2)}
        gone = [n for n in (1, 2) if not self.alive(n)]
        if not gone:
            return
        os.kill(int(self["CLUSTER_PID"]), signal.SIGUSR1)

        def back():
            self.reload()
            return all(self.pid(n) != old[n] for n in gone)
        wait_for(back, 60, what="scripts/cluster to start the killed instances again")
        for n in (1, 2):
            wait_for(lambda: self.instance(n).get("/healthz").status == 200, 30,
                     what=f"werklabd-{n} to answer")

    def create_key(self, role="admin", name=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("WERKLAB_")}
        env["WERKLAB_DATABASE_URL"] = self["PRIMARY_URL"]
        out = subprocess.run([self["WERKLABD"], "create-key", "--role", role, "--name",
                              name or f"cluster-test-{uuid.uuid4().hex[:8]}", "--rate-limit", "0"],
                             capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def restore(self):
        """The whole cluster again: both databases up, replay running, both instances up."""
        for which in ("PRIMARY", "REPLICA"):
            if not self.running(which):
                self._pg("start", which)
        if self.replay_paused():
            self.resume_replay()
        self.restart_instances()
        for n in (1, 2):
            wait_for(lambda: self.readyz(n).status == 200 and (self.readyz(n).json or {}).get("status") == "ready",
                     30, what=f"werklabd-{n} to be ready with every database")


@pytest.fixture(scope="module")
def cluster():
    if not os.access(BINARY, os.X_OK):
        pytest.exit(f"werklabd binary not found at {BINARY} (build it, or set WERKLABD)", returncode=1)
    d = tempfile.mkdtemp(prefix="werklab-cluster-test-")
    env_file = os.path.join(d, "cluster.env")
    log_path = os.path.join(d, "cluster.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WERKLAB_")}
    env.update(SETTINGS, WERKLABD=BINARY)
    log = open(log_path, "wb")
    # A session of its own: a Ctrl-C of pytest does not reach it half-way; the teardown stops it.
    proc = subprocess.Popen([os.path.join(REPO, "scripts", "cluster"), "--env-file", env_file],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                            start_new_session=True)

    def log_text():
        with open(log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    try:
        deadline = time.monotonic() + 300
        while not os.path.exists(env_file):
            if proc.poll() is not None:
                pytest.fail(f"scripts/cluster exited with {proc.returncode}:\n{log_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"scripts/cluster did not come up in 300 s:\n{log_text()}")
            time.sleep(0.2)
        c = Cluster(env_file, read_env(env_file)["ADMIN_KEY"])
        yield c
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        text = log_text()
        if proc.returncode not in (143, -signal.SIGTERM):
            sys.stderr.write(f"scripts/cluster ended with {proc.returncode}:\n{text[-6000:]}\n")
        subprocess.run(["rm", "-rf", d])


class Keys:
    pass


@pytest.fixture(scope="module")
def keys(cluster):
    k = Keys()
    # Writes with one key and reads with another: werklabd remembers a key's recent writes and
    # reads them from the primary for a few seconds; a reader key sees where reads really go.
    k.writer = cluster.create_key("admin")
    k.reader = cluster.create_key("admin")
    k.admin = cluster.admin
    # Known to both instances (found, cached) before any test stops a database.
    for n in (1, 2):
        for key in (k.writer, k.reader, k.admin):
            wait_for(lambda: cluster.instance(n).get("/v1/municipalities?limit=1", key=key).status == 200,
                     30, what=f"a new key to work on werklabd-{n}")
    return k


@pytest.fixture(autouse=True)
def restored(cluster):
    """After each test (also a failed one), the whole cluster again for the next."""
    yield
    cluster.restore()

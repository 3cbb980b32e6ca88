"""Reads by id go through the database pipeline (server/dbpipe): they wait for PostgreSQL without
holding a worker thread. These tests check that it answers right under concurrency, that the
daemon stops cleanly with such reads under way, that it can be switched off, and (through
tests/db/dbpipe_check, a C program run against the session's cluster) the pipeline's own cases:
batches, failures inside a batch, timeouts, a killed connection, stopping."""

import itertools
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import BINARY, Daemon, psql
from test_operations import find, metrics
from wlclient import Api, assert_problem, assert_status, describe, wait_for

CHECK = os.path.join(os.path.dirname(BINARY), "tests", "db", "dbpipe_check")


def test_pipeline_check_program(cluster):
    assert os.path.exists(CHECK), f"{CHECK} is not built (meson -Dtests=true)"
    run = subprocess.run([CHECK, cluster.url], capture_output=True, text=True, timeout=120)
    report = run.stdout + run.stderr[-3000:]
    assert run.returncode == 0, report
    assert "not ok" not in run.stdout, report
    assert run.stdout.count("\nok ") + run.stdout.startswith("ok ") >= 29, report


def counters(api, keys):
    samples = metrics(api, keys)[1]
    return (sum(find(samples, "werklabd_db_pipeline_batches_total")),
            sum(find(samples, "werklabd_db_pipeline_statements_total")))


def test_reads_by_id_go_through_the_pipeline(api, keys, municipality):
    batches, statements = counters(api, keys)
    for _ in range(5):
        assert_status(api.get(f"/v1/municipalities/{municipality['id']}", key=keys.staff), 200)
    after_batches, after_statements = counters(api, keys)
    assert after_statements - statements >= 5
    assert after_batches > batches


def test_concurrent_reads_over_kept_alive_connections(api, keys, new_municipality):
    """Each answer belongs to its own request: 16 connections, 40 reads each, of 4 objects."""
    objects = [new_municipality() for _ in range(4)]
    errors = []

    def reader(n):
        conn = api.connection(timeout=20)
        try:
            for i in range(40):
                m = objects[(n + i) % len(objects)]
                r = api.get(f"/v1/municipalities/{m['id']}", key=keys.staff, conn=conn)
                if r.status != 200 or r.json["id"] != m["id"] or r.json["code"] != m["code"]:
                    errors.append(describe(r))
                    return
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]


def test_not_modified_and_missing_through_the_pipeline(api, keys, municipality):
    path = f"/v1/municipalities/{municipality['id']}"
    r = api.get(path, key=keys.staff)
    assert_status(r, 200)
    etag = r.header("ETag")
    assert etag, describe(r)
    r = api.get(path, key=keys.staff, headers={"If-None-Match": etag})
    assert r.status == 304 and r.body == b"", describe(r)
    r = api.get("/v1/municipalities/00000000-0000-4000-8000-000000000000", key=keys.staff)
    assert r.status == 404 and r.json["status"] == 404, describe(r)


@pytest.fixture
def daemon_without_pipeline(werklabd, log_dir):
    d = Daemon(werklabd, log_dir, name="no-pipeline", threads=2, extra_args=("--db-pipelines", "0"))
    try:
        d.wait_ready()
        yield d
    finally:
        d.terminate(timeout=5)


def test_without_the_pipeline_the_workers_read(daemon_without_pipeline, api, keys, municipality):
    d = daemon_without_pipeline
    path = f"/v1/municipalities/{municipality['id']}"
    mine = assert_status(d.api.get(path, key=keys.staff), 200)
    assert mine == assert_status(api.get(path, key=keys.staff), 200)
    samples = metrics(d.api, keys)[1]
    assert sum(find(samples, "werklabd_db_pipeline_statements_total")) == 0


def test_sigterm_with_reads_waiting_on_the_pipeline(werklabd, log_dir, keys, municipality):
    """The connections must not be closed with requests waiting for the pipeline: the daemon
    answers or closes them and exits 0."""
    d = Daemon(werklabd, log_dir, name="sigterm-pipeline", threads=2)
    try:
        d.wait_ready()
        stop = threading.Event()
        answered = []

        def reader():
            api = Api("127.0.0.1", d.port, timeout=10)
            while not stop.is_set():
                try:
                    r = api.get(f"/v1/municipalities/{municipality['id']}", key=keys.staff)
                    answered.append(r.status)
                except OSError:
                    time.sleep(0.01)

        threads = [threading.Thread(target=reader) for _ in range(8)]
        for t in threads:
            t.start()
        # The readers are under way: each new read of theirs now meets others on the pipeline.
        wait_for(lambda: answered.count(200) >= 16, timeout=30, interval=0.01,
                 what="the readers' first answers")
        d.proc.send_signal(signal.SIGTERM)
        try:
            code = d.proc.wait(15)
        finally:
            stop.set()
            for t in threads:
                t.join(15)
        assert code == 0, f"exit code {code}\n{d.log_text()[-3000:]}"
        assert answered.count(200) > 0
        assert set(answered) <= {200, 503}, sorted(set(answered))
    finally:
        d.terminate(timeout=5)


def statements_of(api, keys, kind):
    samples = metrics(api, keys)[1]
    return sum(find(samples, "werklabd_db_connection_statements_total", connection=kind))


def test_lists_and_writes_go_through_the_pipes(api, keys, municipality):
    """A list page is read on the pipeline; a create and a patch of one statement are committed
    on the pipes for writes, each with its audit entry in the same statement."""
    reads, writes = statements_of(api, keys, "pipeline"), statements_of(api, keys, "writes")
    for _ in range(3):
        assert_status(api.get("/v1/municipalities?limit=5", key=keys.staff), 200)
    body = {"municipalityId": municipality["id"], "name": f"Pijp {time.monotonic_ns()}",
            "kind": "residentInitiative"}
    r = api.post("/v1/initiatives", body, key=keys.staff)
    created = assert_status(r, 201)
    assert r.headers["Location"].endswith(created["id"]), describe(r)
    patched = assert_status(api.patch(f"/v1/initiatives/{created['id']}", {"description": "anders"},
                                      key=keys.staff, headers={"If-Match": r.headers["ETag"]}), 200)
    assert patched["version"] == created["version"] + 1 and patched["description"] == "anders"
    assert statements_of(api, keys, "pipeline") - reads >= 3
    assert statements_of(api, keys, "writes") - writes >= 2
    entries = assert_status(api.get(f"/v1/audit-log?resourceId={created['id']}", key=keys.admin),
                            200)["items"]
    assert sorted((e["action"], e["status"], e["resource"]) for e in entries) == [
        ("create", 201, "/v1/initiatives"), ("update", 200, "/v1/initiatives/{id}")], entries


def test_a_stale_write_on_the_pipes_for_writes(api, keys, municipality):
    """A patch naming an old version, or a missing row, changes nothing and is not recorded as a
    success: 412 with the current ETag, 404."""
    body = {"municipalityId": municipality["id"], "name": f"Oud {time.monotonic_ns()}",
            "kind": "residentInitiative"}
    r = api.post("/v1/initiatives", body, key=keys.staff)
    created = assert_status(r, 201)
    assert_status(api.patch(f"/v1/initiatives/{created['id']}", {"description": "een"},
                            key=keys.staff, headers={"If-Match": r.headers["ETag"]}), 200)
    stale = api.patch(f"/v1/initiatives/{created['id']}", {"description": "twee"},
                      key=keys.staff, headers={"If-Match": r.headers["ETag"]})
    assert stale.status == 412, describe(stale)
    assert stale.headers["ETag"] != r.headers["ETag"], describe(stale)
    missing = api.patch("/v1/initiatives/00000000-0000-4000-8000-000000000000",
                        {"description": "drie"}, key=keys.staff)
    assert missing.status == 404, describe(missing)
    now = assert_status(api.get(f"/v1/initiatives/{created['id']}", key=keys.staff), 200)
    assert now["description"] == "een"
    entries = assert_status(api.get(f"/v1/audit-log?resourceId={created['id']}", key=keys.admin),
                            200)["items"]
    assert sorted(e["status"] for e in entries if e["action"] == "update") in ([200], [200, 412]), \
        entries


def test_without_the_pipes_for_writes_the_workers_write(werklabd, log_dir, keys, municipality):
    d = Daemon(werklabd, log_dir, name="no-write-pipes", extra_args=("--db-write-pipelines", "0"))
    try:
        d.wait_ready()
        body = {"municipalityId": municipality["id"], "name": f"Zonder {time.monotonic_ns()}",
                "kind": "residentInitiative"}
        created = assert_status(d.api.post("/v1/initiatives", body, key=keys.staff), 201)
        assert statements_of(d.api, keys, "writes") == 0
        entries = assert_status(d.api.get(f"/v1/audit-log?resourceId={created['id']}",
                                          key=keys.admin), 200)["items"]
        assert [(e["action"], e["status"]) for e in entries] == [("create", 201)], entries
    finally:
        d.terminate(timeout=5)


def test_a_key_is_looked_up_on_the_pipeline(api, keys, municipality):
    """A key not in the cache is looked up on the pipeline, the request suspended meanwhile: a
    read by id with a new key touches no worker's connection."""
    made = assert_status(api.post("/v1/api-keys", {"name": "pijp", "role": "staff"},
                                  key=keys.admin), 201)
    workers, reads = statements_of(api, keys, "worker"), statements_of(api, keys, "pipeline")
    assert_status(api.get(f"/v1/municipalities/{municipality['id']}", key=made["key"]), 200)
    assert_problem(api.get(f"/v1/municipalities/{municipality['id']}",
                           key="wlk_" + "0" * 64), 401)
    assert statements_of(api, keys, "pipeline") - reads >= 3  # two lookups, one read
    # The two /metrics reads above are the admin's (cached); nothing else ran on the workers.
    assert statements_of(api, keys, "worker") == workers


class SilencingProxy:
    """A TCP proxy in front of the cluster that can fall silent: a connection made while it is
    silent is accepted and then hears nothing, as from a database host that is down behind an
    address that still answers; cut() ends every connection it carries."""

    def __init__(self, port):
        self.upstream = port
        self.silent = False
        self.sockets = []
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _keep(self, *socks):
        with self.lock:
            self.sockets.extend(socks)

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.silent:
                self._keep(client)
                continue
            server = socket.create_connection(("127.0.0.1", self.upstream))
            self._keep(client, server)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self.lock:
            socks, self.sockets = self.sockets, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.listener.close()
        self.cut()


def test_a_thread_serves_while_its_pipeline_connects_to_a_silent_database(werklabd, cluster, log_dir,
                                                                         keys, municipality):
    """Each worker thread hosts a pipeline connection and makes it again itself when it breaks:
    without waiting, so that a database that accepts connections and then says nothing (for the
    connect timeout, 2 s, at each attempt) holds none of the thread's other requests up. Reads
    that need the connection meanwhile get 503 once the attempt has failed, and read again once
    the database answers. One thread: then every request is that thread's to serve."""
    port = int(cluster.url.split("@127.0.0.1:")[1].split("/")[0])
    proxy = SilencingProxy(port)
    url = cluster.url.replace(f"127.0.0.1:{port}", f"127.0.0.1:{proxy.port}")
    d = Daemon(werklabd, log_dir, name="silent-db", threads=1,
               env=werklabd.env(WERKLAB_DATABASE_URL=url))
    path = f"/v1/municipalities/{municipality['id']}"
    try:
        d.wait_ready()
        assert_status(d.api.get(path, key=keys.partner), 200)
        proxy.silent = True
        proxy.cut()
        slowest, reads, errors = [], [], []
        until = time.monotonic() + 5  # past two attempts to connect, each of 2 s

        def client():
            try:
                api = Api("127.0.0.1", d.port, timeout=15)
                while time.monotonic() < until:
                    time.sleep(0.05)
                    conn = api.connection(timeout=15)
                    t = time.monotonic()
                    assert_status(api.get("/healthz", conn=conn), 200)
                    slowest.append(time.monotonic() - t)
                    reads.append(api.get(path, key=keys.partner, conn=conn).status)
                    conn.close()
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors[:3]
        # A thread blocked in a connect would keep /healthz waiting for up to 2 s.
        assert max(slowest) < 1.0, sorted(slowest)[-5:]
        assert 503 in reads and set(reads) <= {200, 503}, reads
        proxy.silent = False
        deadline = time.monotonic() + 20
        while d.api.get("/readyz", timeout=10).status != 200:
            assert time.monotonic() < deadline, d.log_text()[-3000:]
            time.sleep(0.1)
        for _ in range(16):
            assert_status(Api("127.0.0.1", d.port).get(path, key=keys.partner), 200)
    finally:
        d.terminate(timeout=10)
        proxy.close()


def test_keys_looked_up_at_once_on_every_thread(werklabd, log_dir, keys, municipality):
    """Without a key cache every request looks its key up, recording its last use, and each
    thread does so on the pipeline it hosts, in batches whose transactions end with the batch:
    two batches that each hold one key's row must not wait for each other's (a deadlock, which
    PostgreSQL breaks after a second by failing one: a 503)."""
    d = Daemon(werklabd, log_dir, name="key-lookups", threads=4,
               extra_args=("--key-cache-ms", "0"))
    statuses, errors = [], []
    path = f"/v1/municipalities/{municipality['id']}"
    try:
        d.wait_ready()
        until = time.monotonic() + 4

        def client(n):
            try:
                api = Api("127.0.0.1", d.port, timeout=15)
                conn = api.connection(timeout=15)
                for i in itertools.count(n):
                    if time.monotonic() >= until:
                        break
                    key = (keys.admin, keys.staff, keys.partner)[i % 3]
                    statuses.append(api.get(path, key=key, conn=conn).status)
                conn.close()
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, errors[:3]
        assert len(statuses) > 100 and set(statuses) == {200}, (
            len(statuses), {s: statuses.count(s) for s in set(statuses)})
        # Their last uses were recorded all the same.
        recent = psql(werklabd.database_url, "SELECT count(*) FROM api_keys WHERE last_used_at > "
                                             "now() - interval '10 seconds'")
        assert int(recent) >= 3, recent
    finally:
        d.terminate(timeout=10)

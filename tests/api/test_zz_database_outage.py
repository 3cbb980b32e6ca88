"""The database goes away and comes back; the daemon keeps running, and every connection it keeps
(each worker thread's, the jobs thread's, the pipeline's, the audit writer's) comes back by
itself.

Named test_zz_* so it runs last: it stops the session's cluster (and starts it again).
"""

import threading
import time

from test_operations import find, metrics
from wlclient import assert_problem, assert_status, describe

THREADS = 4  # the session daemon's worker threads (conftest.Daemon)
AUDIT_WRITERS = 1  # --audit-writers, its default


def kept_connections(api, keys):
    """{(kind, slot): {"up": .., "made": .., "statements": ..}} from /metrics."""
    samples = metrics(api, keys)[1]
    kept = {}
    for name, field in (("werklabd_db_connection_up", "up"),
                        ("werklabd_db_connection_made_total", "made"),
                        ("werklabd_db_connection_statements_total", "statements")):
        for (n, labels), value in samples.items():
            if n == name:
                labels = dict(labels)
                kept.setdefault((labels["connection"], labels["slot"]), {})[field] = value
    return kept


def restart(cluster, stop_and_wait):
    url = cluster.url
    cluster.stop()
    try:
        stop_and_wait()
    finally:
        # The cluster keeps its port unless another took it meanwhile: then nothing can reconnect.
        assert cluster.start() == url, "the cluster came back on another port"


def wait_until_ready(api, timeout=30):
    """Polls /readyz (and nothing else) until it says 200; fails with what it last said."""
    deadline = time.monotonic() + timeout
    while True:
        last = api.get("/readyz", timeout=10)
        if last.status == 200:
            return
        assert last.status == 503, describe(last)
        assert time.monotonic() < deadline, f"/readyz not 200 within {timeout} s:\n{describe(last)}"
        time.sleep(0.1)


def assert_all_up(kept):
    down = [k for k, v in kept.items() if v["up"] != 1]
    assert not down, f"connections down after /readyz said 200: {down}"
    kinds = sorted(k for k, _ in kept)
    assert kinds.count("worker") == THREADS and kinds.count("jobs") == 1, kinds
    assert kinds.count("pipeline") >= 1 and kinds.count("audit") == AUDIT_WRITERS, kinds


def every_connection_answers(api, keys, kept_before, kind, path, headers=None, timeout=30):
    """Requests for path through many kept-alive connections at once, until every kept database
    connection of this kind has served statements; every answer must be 200. The connections of
    a server's client land on its worker threads as the kernel spreads them, and each thread
    reads on its own connection and the pipeline it hosts: so many, until each has served."""
    workers = [k for k in kept_before if k[0] == kind]
    deadline = time.monotonic() + timeout
    answers, errors = [], []

    def client():
        conn = api.connection(timeout=10)
        try:
            for _ in range(4):
                r = api.get(path, key=keys.staff, conn=conn, headers=headers)
                answers.append(r.status)
                if r.status != 200:
                    errors.append(describe(r))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        finally:
            conn.close()

    while True:
        threads = [threading.Thread(target=client) for _ in range(2 * THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, errors[:3]
        kept = kept_connections(api, keys)
        silent = [k for k in workers if kept[k]["statements"] <= kept_before[k]["statements"]]
        if not silent:
            return len(answers)
        assert time.monotonic() < deadline, (
            f"{kind} connections {silent} served nothing in {timeout} s ({len(answers)} answers)")


def every_worker_answers(api, keys, kept_before):
    """Lists as CSV: their pages are read on the worker's own connection (a list as JSON goes
    through the pipeline)."""
    return every_connection_answers(api, keys, kept_before, "worker",
                                    "/v1/municipalities?limit=1", {"Accept": "text/csv"})


def test_database_outage_and_recovery(api, keys, cluster, daemon, municipality):
    assert api.get("/v1/municipalities?limit=1", key=keys.admin).status == 200
    db_errors_before = sum(find(metrics(api, keys)[1], "werklabd_db_errors_total"))

    def while_down():
        # Each answer within 10 s (the client's timeout); several, so every worker thread is hit.
        for _ in range(8):
            t = time.monotonic()
            r = api.get("/v1/municipalities?limit=1", key=keys.admin, timeout=10)
            assert_problem(r, 503)
            retry = r.header("Retry-After")
            assert retry and retry.isdigit() and 1 <= int(retry) <= 5, describe(r)
            assert time.monotonic() - t < 10
        for path, body in [("/v1/municipalities", {"code": "GM0001", "name": "x"})]:
            r = api.post(path, body, key=keys.staff, timeout=10)
            assert_problem(r, 503)
        r = api.get(f"/v1/municipalities/{municipality['id']}", key=keys.partner, timeout=10)
        assert_problem(r, 503)
        r = api.get("/readyz", timeout=10)
        assert_problem(r, 503)
        assert r.header("Retry-After"), describe(r)
        assert_status(api.get("/healthz", timeout=10), 200)
        assert daemon.proc.poll() is None, "the daemon died"

    restart(cluster, while_down)
    wait_until_ready(api)
    kept = kept_connections(api, keys)
    assert_all_up(kept)
    # Every thread answers, not one streak through whichever thread answered.
    every_worker_answers(api, keys, kept)
    # Reads by id go through the pipelines' connections, which their threads made again
    # without blocking: each answers too.
    every_connection_answers(api, keys, kept, "pipeline", f"/v1/municipalities/{municipality['id']}")
    m = assert_status(api.patch(f"/v1/municipalities/{municipality['id']}",
                                {"notes": "na de storing",
                                 "contact": {"name": "Anne de Vries", "email": "anne@zaltbommel.nl"}},
                                key=keys.staff), 200)
    assert m["version"] == municipality["version"] + 1
    # A read that shows the contact person waits for the audit writer's commit: it answers too.
    assert_status(api.get(f"/v1/municipalities/{municipality['id']}", key=keys.staff), 200)
    audit = [k for k in kept if k[0] == "audit"]
    after = kept_connections(api, keys)
    # One of the writers committed it (whichever was free).
    assert sum(after[k]["statements"] for k in audit) > sum(kept[k]["statements"] for k in audit), \
        (kept, after)
    assert daemon.proc.poll() is None
    assert sum(find(metrics(api, keys)[1], "werklabd_db_errors_total")) > db_errors_before


def test_connections_come_back_without_requests(api, keys, cluster, daemon):
    """Between the stop and /readyz turning 200 only /readyz is asked: every connection, also
    those no request touches, is made again by the daemon itself."""
    before = kept_connections(api, keys)
    assert_all_up(before)

    kinds = sorted({kind for kind, _ in before})
    all_down = [f"{n} of {n} {kind}" for kind in kinds
                for n in [sum(1 for k, _ in before if k == kind)]]

    def while_down():
        # Until the daemon has noticed every connection is gone: each one is then made again.
        deadline = time.monotonic() + 30
        while True:
            r = api.get("/readyz", timeout=10)
            if r.status == 503 and all(d in r.json["detail"] for d in all_down):
                break
            assert time.monotonic() < deadline, \
                f"/readyz does not say {all_down} with the database down:\n{describe(r)}"
            time.sleep(0.05)

    restart(cluster, while_down)
    wait_until_ready(api)
    after = kept_connections(api, keys)
    assert_all_up(after)
    remade = [k for k in before if after[k]["made"] > before[k]["made"]]
    assert sorted(remade) == sorted(before), (before, after)
    assert daemon.proc.poll() is None

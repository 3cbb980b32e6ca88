"""The audit log loses nothing that was answered.

An answer that shows personal data leaves werklabd only once its audit entry is committed. So
when werklabd is killed (kill -9) in the middle of a stream of such reads, every read a client
got a 200 for is in the audit log after the restart; the reads cut off by the kill may or may
not be, as their clients never saw the data.
"""

import http.client
import threading
import time
import uuid

from conftest import Daemon

CLIENTS = 4
BEFORE_KILL = 400  # answered reads, over all clients, before the kill
READ_SECONDS = 1.0  # and for at least this long, so that the kill comes in mid-stream


class Reader(threading.Thread):
    """Reads one municipality with its contact person, as fast as it can, on one keep-alive
    connection, each request with an X-Request-Id of its own; keeps the ids answered 200."""

    def __init__(self, n, port, path, key, run, unavailable_ok=False):
        super().__init__(daemon=True)
        self.n, self.port, self.path, self.key, self.run_id = n, port, path, key, run
        self.unavailable_ok = unavailable_ok  # a 503 (without the data) is an answer too
        self.answered = []
        self.unavailable = 0
        self.stop = threading.Event()
        self.error = None

    def run(self):
        conn = None
        i = 0
        while not self.stop.is_set():
            request_id = f"kill9-{self.run_id}-{self.n}-{i}"
            i += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", self.path, headers={"Authorization": f"Bearer {self.key}",
                                                        "X-Request-Id": request_id})
                r = conn.getresponse()
                body = r.read()
            except (OSError, http.client.HTTPException):
                # The kill: the answer never came (or came in part), so nothing was shown.
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.01)
                continue
            if r.status == 503 and self.unavailable_ok and b"jan@example.nl" not in body:
                self.unavailable += 1
                continue
            if r.status != 200 or b"jan@example.nl" not in body:
                self.error = f"{request_id}: {r.status} {body[:300]!r}"
                return
            self.answered.append(request_id)
        if conn is not None:
            conn.close()


def test_every_answered_read_of_personal_data_survives_kill_9(werklabd, keys, log_dir,
                                                             new_municipality):
    m = new_municipality()  # with a contact person: personal data for a staff key
    d = Daemon(werklabd, log_dir, name="audit-kill", threads=4,
               extra_args=["--key-rate-limit", "0"])
    readers = []
    try:
        d.wait_ready()
        run = uuid.uuid4().hex[:8]
        readers = [Reader(n, d.port, f"/v1/municipalities/{m['id']}", keys.staff, run)
                   for n in range(CLIENTS)]
        for r in readers:
            r.start()
        started = time.monotonic()
        deadline = started + 120
        while (sum(len(r.answered) for r in readers) < BEFORE_KILL
               or time.monotonic() < started + READ_SECONDS):
            assert all(r.error is None for r in readers), [r.error for r in readers]
            assert all(r.is_alive() for r in readers), "a reader stopped"
            assert time.monotonic() < deadline, "the readers were not answered"
            time.sleep(0.01)
        d.proc.kill()  # SIGKILL, in the middle of the reads
        d.proc.wait()
        for r in readers:
            r.stop.set()
        for r in readers:
            r.join(30)
            assert not r.is_alive(), "a reader hangs"
        assert all(r.error is None for r in readers), [r.error for r in readers]

        d.restart()
        items, _ = d.api.list_all("/v1/audit-log", keys.admin,
                                  {"resourceId": m["id"], "action": "read"})
        logged = {e["requestId"] for e in items}
        answered = [rid for r in readers for rid in r.answered]
        missing = [rid for rid in answered if rid not in logged]
        assert not missing, (f"{len(missing)} of {len(answered)} reads answered with personal "
                             f"data are not in the audit log, e.g. {missing[:5]}")
        assert len(answered) >= BEFORE_KILL
    finally:
        for r in readers:
            r.stop.set()
        d.terminate()


def test_sigterm_answers_every_waiting_read(werklabd, keys, log_dir, new_municipality, api):
    """Stopping: every read waiting for its entry (or for the pipeline) is answered before the
    HTTP server stops, and each one answered 200 is in the log."""
    m = new_municipality()
    d = Daemon(werklabd, log_dir, name="audit-sigterm", threads=4,
               extra_args=["--key-rate-limit", "0"])
    readers = []
    try:
        d.wait_ready()
        run = uuid.uuid4().hex[:8]
        readers = [Reader(n, d.port, f"/v1/municipalities/{m['id']}", keys.staff, run,
                          unavailable_ok=True) for n in range(CLIENTS)]
        for r in readers:
            r.start()
        deadline = time.monotonic() + 120
        while sum(len(r.answered) for r in readers) < BEFORE_KILL:
            assert all(r.error is None for r in readers), [r.error for r in readers]
            assert time.monotonic() < deadline, "the readers were not answered"
            time.sleep(0.01)
        code = d.terminate(timeout=30)
        for r in readers:
            r.stop.set()
            r.join(30)
            assert not r.is_alive(), "a reader hangs"
        assert code == 0, f"werklabd exited with {code}:\n{d.log_text()[-3000:]}"
        assert all(r.error is None for r in readers), [r.error for r in readers]
        items, _ = api.list_all("/v1/audit-log", keys.admin,
                                {"resourceId": m["id"], "action": "read"})
        logged = {e["requestId"] for e in items}
        answered = [rid for r in readers for rid in r.answered]
        missing = [rid for rid in answered if rid not in logged]
        assert not missing, f"{len(missing)} of {len(answered)} answered reads are not logged"
    finally:
        for r in readers:
            r.stop.set()
        d.terminate()


def audit_metrics(api, keys):
    r = api.get("/metrics", key=keys.admin)
    assert r.status == 200
    values = {}
    for line in r.body.decode().splitlines():
        if line.startswith("werklabd_audit_"):
            name, value = line.split()
            values[name] = float(value)
    return values


def test_concurrent_reads_share_commits(api, keys, new_municipality):
    """Group commit: the entries of reads that wait at the same time go in one commit, so there
    are fewer commits than entries; and nothing waits once all are answered."""
    m = new_municipality()
    before = audit_metrics(api, keys)
    run = uuid.uuid4().hex[:8]
    readers = [Reader(n, api.port, f"/v1/municipalities/{m['id']}", keys.staff, run)
               for n in range(8)]
    for r in readers:
        r.start()
    deadline = time.monotonic() + 120
    while sum(len(r.answered) for r in readers) < BEFORE_KILL:
        assert all(r.error is None for r in readers), [r.error for r in readers]
        assert time.monotonic() < deadline, "the readers were not answered"
        time.sleep(0.01)
    for r in readers:
        r.stop.set()
    for r in readers:
        r.join(30)
    assert all(r.error is None for r in readers), [r.error for r in readers]
    after = audit_metrics(api, keys)
    commits = after["werklabd_audit_commits_total"] - before["werklabd_audit_commits_total"]
    entries = after["werklabd_audit_entries_total"] - before["werklabd_audit_entries_total"]
    answered = sum(len(r.answered) for r in readers)
    assert entries >= answered, (entries, answered)
    assert commits < entries, f"{commits} commits for {entries} entries: none was shared"
    assert after["werklabd_audit_waiting"] == 0, after

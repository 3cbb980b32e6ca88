"""Instances that agree: two werklabd on one database (issue 13).

A key revoked through one instance is refused by the other as soon as the database's notification
arrives (LISTEN werklab_revoked, server/notify.h), not after the other's key cache period; the
listening connection, killed, is made again, and whatever it may have missed meanwhile is looked
up again. Periodic jobs that change the database run on one instance at a time, under an advisory
lock of their own (server/jobs.h), and the instance that finds the lock taken skips its turn
without a word in the log.

Both daemons trust a checked key for the longest period they accept (60 s), so that only the
notification can explain a refusal within it. No test asserts how fast anything is: each waits,
polling, for a condition, with a deadline far below that period, and the delay between the
revocation's answer and the first refusal is reported (pytest -rP shows it), as the issue asks
for it to be within 100 ms.
"""

import contextlib
import os
import time

import pytest

from conftest import Daemon, HeldLock, psql
from test_operations import find, metrics
from wlclient import assert_status, describe

KEY_CACHE_MS = 60000  # --key-cache-ms's largest value
# Far below KEY_CACHE_MS: a refusal within it is the notification's doing, not the cache's.
DEADLINE_S = 20
# The jobs' advisory locks (server/jobs.h): their names in ASCII, left-aligned in 8 bytes.
PRUNE_LOCK = int.from_bytes(b"prune\0\0\0", "big")
RETENTION_LOCK = int.from_bytes(b"retain\0\0", "big")


def sample(d, keys, name, **labels):
    values = find(metrics(d.api, keys)[1], name, **labels)
    assert len(values) == 1, (name, labels, values)
    return values[0]


def listener(d, keys):
    """B's listener as /metrics shows it: (up, times made, notifications heard)."""
    samples = metrics(d.api, keys)[1]
    up = find(samples, "werklabd_db_connection_up", connection="notify")
    made = find(samples, "werklabd_db_connection_made_total", connection="notify")
    heard = find(samples, "werklabd_revocation_notifications_total")
    assert len(up) == len(made) == len(heard) == 1, samples
    return up[0], made[0], heard[0]


def wait_listening(d, keys, made_at_least=1, timeout=DEADLINE_S):
    deadline = time.monotonic() + timeout
    while True:
        up, made, _ = listener(d, keys)
        if up == 1 and made >= made_at_least:
            return
        assert time.monotonic() < deadline, \
            f"the listener is not up (made {made_at_least} times) within {timeout} s:\n{d.log_text()[-3000:]}"
        time.sleep(0.02)


@contextlib.contextmanager
def daemons(werklabd, log_dir, n, *extra):
    started = []
    try:
        for i in range(n):
            d = Daemon(werklabd, log_dir, name=f"instance-{i}", threads=2,
                       extra_args=["--key-cache-ms", str(KEY_CACHE_MS), "--key-rate-limit", "0",
                                   *extra])
            started.append(d)
        for d in started:
            d.wait_ready()
        yield started
    finally:
        for d in started:
            d.terminate()
    for d in started:
        assert d.returncode == 0, d.log_text()[-3000:]


@pytest.fixture
def pair(werklabd, log_dir, keys):
    with daemons(werklabd, log_dir, 2) as (a, b):
        wait_listening(a, keys)
        wait_listening(b, keys)
        yield a, b


def new_key(d, keys, name):
    made = assert_status(d.api.post("/v1/api-keys", {"name": name, "role": "staff"}, key=keys.admin),
                         201)
    return made["id"], made["key"]


def cached_on(d, key):
    """Uses key on d, twice: the second answer comes from d's cache (the first put it there)."""
    for _ in range(2):
        assert_status(d.api.get("/v1/municipalities?limit=1", key=key), 200)


def first_refusal(d, key, since):
    """Asks d with key every 10 ms on one connection until it answers 401; the seconds from since
    to that answer. Fails when it is still accepted after DEADLINE_S."""
    conn = d.api.connection(timeout=10)
    try:
        while True:
            r = d.api.get("/v1/municipalities?limit=1", key=key, conn=conn)
            now = time.monotonic()
            if r.status == 401:
                return now - since
            assert r.status == 200, describe(r)
            assert now - since < DEADLINE_S, \
                f"still accepted {DEADLINE_S} s after its revocation:\n{d.log_text()[-3000:]}"
            time.sleep(0.01)
    finally:
        conn.close()


def revoke_on_a_refused_by_b(a, b, keys, name):
    """A key made and revoked through a, used on b before: (seconds until b refused it, key)."""
    key_id, key = new_key(a, keys, name)
    cached_on(b, key)
    heard = listener(b, keys)[2]
    assert_status(a.api.delete(f"/v1/api-keys/{key_id}", key=keys.admin), 204)
    delay = first_refusal(b, key, time.monotonic())
    # The refusal is the notification's doing: B heard it (the cache would keep it 60 s).
    assert listener(b, keys)[2] > heard
    return delay, key


def test_a_key_revoked_on_one_instance_is_refused_by_the_other_at_once(pair, keys):
    a, b = pair
    delay, key = revoke_on_a_refused_by_b(a, b, keys, "revoked-across")
    print(f"revoked through A, refused by B {delay * 1000:.1f} ms after A's answer "
          f"(the issue asks for < 100 ms; B's cache period is {KEY_CACHE_MS} ms)")
    # A, which revoked it, refuses it too.
    assert a.api.get("/v1/municipalities?limit=1", key=key).status == 401


def test_a_revocation_by_another_path_is_heard_too(pair, keys, cluster):
    """Revoked in SQL, not through any instance (as a subscription's deletion revokes its view
    key): the database announces it all the same."""
    _, b = pair
    key_id, key = new_key(b, keys, "revoked-in-sql")
    cached_on(b, key)
    psql(cluster.url, f"UPDATE api_keys SET revoked_at = now() WHERE id = '{key_id}'")
    delay = first_refusal(b, key, time.monotonic())
    print(f"revoked in SQL, refused by B {delay * 1000:.1f} ms after the commit")


def test_only_changes_of_a_key_are_announced(pair, keys, cluster):
    """A key's use (its last_used_at written by each lookup) is not announced, nor is revoking a
    key that is revoked already. Counted against one real revocation made after them: the
    notifications of one connection arrive in commit order, so once that one is heard, any the
    others had sent would have been heard before it."""
    a, b = pair
    used_id, _ = new_key(a, keys, "used-not-announced")
    sentinel_id, _ = new_key(a, keys, "sentinel")
    wait_heard = listener(b, keys)[2] + 1
    psql(cluster.url, f"UPDATE api_keys SET revoked_at = now() WHERE id = '{used_id}'")
    deadline = time.monotonic() + DEADLINE_S
    while listener(b, keys)[2] < wait_heard:
        assert time.monotonic() < deadline, "the revocation was not heard"
        time.sleep(0.01)
    heard = listener(b, keys)[2]
    psql(cluster.url, f"UPDATE api_keys SET last_used_at = now() WHERE id = '{sentinel_id}'")
    psql(cluster.url, "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) "
                      f"WHERE id = '{used_id}'")
    psql(cluster.url, f"UPDATE api_keys SET revoked_at = now() WHERE id = '{sentinel_id}'")
    deadline = time.monotonic() + DEADLINE_S
    while listener(b, keys)[2] == heard:
        assert time.monotonic() < deadline, "the sentinel's revocation was not heard"
        time.sleep(0.01)
    assert listener(b, keys)[2] == heard + 1


def listener_pid(cluster, d):
    """The backend serving d's listening connection: the pg_stat_activity row with the
    listener's application_name whose client port is one of d's own sockets."""
    inodes = set()
    fd_dir = f"/proc/{d.proc.pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    rows = psql(cluster.url, "SELECT pid, client_port FROM pg_stat_activity "
                             "WHERE application_name = 'werklabd-notify'").splitlines()
    pids = [pid for pid, port in (r.split("|") for r in rows) if int(port) in ports]
    assert len(pids) == 1, (rows, sorted(ports))
    return pids[0]


def test_the_listener_killed_comes_back_and_hears_again(pair, keys, cluster):
    a, b = pair
    made = listener(b, keys)[1]
    pid = listener_pid(cluster, b)
    assert psql(cluster.url, f"SELECT pg_terminate_backend({pid})") == "t"
    wait_listening(b, keys, made_at_least=made + 1)
    assert listener_pid(cluster, b) != pid
    assert b.wait_log(lambda l: "revocation listener: connection lost" in l.get("message", ""))
    delay, _ = revoke_on_a_refused_by_b(a, b, keys, "revoked-after-reconnect")
    print(f"after the listener came back: refused by B {delay * 1000:.1f} ms after A's answer")


def test_what_the_listener_missed_is_looked_up_again(pair, keys, cluster):
    """A revocation whose notification never arrives (here: the trigger held back for it, as a
    notification sent while the listener is down is lost) is noticed once the listener is made
    again, since every cached key is then looked up afresh."""
    _, b = pair
    key_id, key = new_key(b, keys, "revoked-unheard")
    cached_on(b, key)
    psql(cluster.url, "BEGIN; ALTER TABLE api_keys DISABLE TRIGGER api_keys_announce; "
                      f"UPDATE api_keys SET revoked_at = now() WHERE id = '{key_id}'; "
                      "ALTER TABLE api_keys ENABLE TRIGGER api_keys_announce; COMMIT")
    # Unheard: B trusts its cache still.
    assert_status(b.api.get("/v1/municipalities?limit=1", key=key), 200)
    made = listener(b, keys)[1]
    assert psql(cluster.url, f"SELECT pg_terminate_backend({listener_pid(cluster, b)})") == "t"
    wait_listening(b, keys, made_at_least=made + 1)
    assert b.api.get("/v1/municipalities?limit=1", key=key).status == 401


# ------------------------------------------------------------------ jobs


def runs(d, keys, job):
    return {o: sample(d, keys, "werklabd_job_runs_total", job=job, outcome=o)
            for o in ("ran", "skipped", "unavailable")}


def wait_runs(ds, keys, job, outcome, more_than, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        now = [runs(d, keys, job)[outcome] for d in ds]
        if all(n > m for n, m in zip(now, more_than)):
            return now
        assert time.monotonic() < deadline, f"{job}: {outcome} runs {now}, not beyond {more_than}"
        time.sleep(0.1)


@pytest.mark.parametrize("job, lock", [("prune", PRUNE_LOCK), ("retention", RETENTION_LOCK)])
def test_a_job_runs_on_one_instance_at_a_time(werklabd, log_dir, keys, cluster, job, lock):
    """While its lock is held elsewhere (as another instance holds it while it runs the job), no
    instance runs the job: each skips its turn, quietly; the memory job, which touches no
    database, runs on every instance regardless. Once the lock is free they run it again."""
    with daemons(werklabd, log_dir, 2, "--prune-interval", "1") as ds:
        held = HeldLock(cluster.url, f"SELECT pg_advisory_lock({lock});")
        try:
            # A run under way when the lock was asked for has ended: it was granted only then.
            ran = [runs(d, keys, job)["ran"] for d in ds]
            skipped = [runs(d, keys, job)["skipped"] for d in ds]
            memory = [runs(d, keys, "memory")["ran"] for d in ds]
            wait_runs(ds, keys, job, "skipped", [s + 1 for s in skipped])
            assert [runs(d, keys, job)["ran"] for d in ds] == ran
            wait_runs(ds, keys, "memory", "ran", memory, timeout=30)
            assert all(runs(d, keys, "memory")["skipped"] == 0 for d in ds)
            for d in ds:
                said = [l for l in d.log_lines() if l.get("level") == "info" and job in l.get("message", "")
                        and ("skip" in l["message"] or "another instance" in l["message"])]
                assert not said, said
        finally:
            held.release()
        # Free again: it runs (on one instance or the other, each at its turn).
        deadline = time.monotonic() + 60
        while sum(runs(d, keys, job)["ran"] for d in ds) <= sum(ran):
            assert time.monotonic() < deadline, f"{job} did not run again within 60 s"
            time.sleep(0.1)

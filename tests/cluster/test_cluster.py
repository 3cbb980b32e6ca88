"""The cluster of scripts/cluster, end to end: nginx in front of two werklabd instances, a
PostgreSQL primary and a streaming replica (issue 13).

Every wait is a poll on a condition with a generous deadline; the one time measured (how soon a
revocation reaches the other instance) is reported, not asserted.
"""

import collections
import http.client
import random
import socket
import ssl
import threading
import time
import uuid
import warnings

from wlclient import describe, wait_for

MUNICIPALITY = "/v1/municipalities"


def new_municipality(endpoint, key):
    """A municipality with an unused GM code (GM9xxx: no real one), made through endpoint."""
    for _ in range(20):
        body = {"code": f"GM9{random.randrange(1000):03d}", "name": f"Clustergemeente {uuid.uuid4().hex[:6]}",
                "province": "Gelderland", "notes": "made by tests/cluster"}
        r = endpoint.post(MUNICIPALITY, body, key=key)
        if r.status != 409:
            break
    assert r.status == 201, describe(r)
    return r


def inquiry():
    tag = uuid.uuid4().hex[:6]
    return {"municipalityName": "Zaltbommel", "contactName": "Marieke van Dijk",
            "email": f"marieke.{tag}@example.nl", "message": "Wij willen graag een werklab.",
            "preferredPeriod": "najaar"}


# ------------------------------------------------------------------ nginx itself


def test_nginx_terminates_tls_with_http2_and_redirects_http(cluster):
    # HTTP/2 offered and chosen by ALPN, over TLS 1.2 or 1.3.
    ctx = ssl.create_default_context(cafile=cluster["CA_CERT"])
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", int(cluster["NGINX_HTTPS_PORT"])), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() == "h2"
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    # TLS 1.1 is refused.
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(cluster["CA_CERT"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # that is the point
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", int(cluster["NGINX_HTTPS_PORT"])), timeout=10) as raw:
        try:
            old.wrap_socket(raw, server_hostname="localhost").close()
            raise AssertionError("nginx accepted TLS 1.1")
        except ssl.SSLError:
            pass
    # Plain HTTP redirects to https, keeping the path and query.
    c = http.client.HTTPConnection("127.0.0.1", int(cluster["NGINX_HTTP_PORT"]), timeout=10)
    c.request("GET", "/v1/municipalities?limit=1")
    r = c.getresponse()
    r.read()
    c.close()
    assert r.status == 308
    assert r.getheader("Location") == \
        f"https://127.0.0.1:{cluster['NGINX_HTTPS_PORT']}/v1/municipalities?limit=1"
    # A body over werklabd's limit (1 MiB) is refused by nginx already.
    big = cluster.nginx().request("POST", MUNICIPALITY, key=cluster.admin,
                                  headers={"Content-Type": "application/json"},
                                  json_body={"notes": "x" * (1 << 20)})
    assert big.status == 413, describe(big)


# ------------------------------------------------------------------ read your writes


def test_write_read_through_the_other_instance_with_its_token_also_while_replay_is_paused(cluster, keys):
    one, two = cluster.instance(1), cluster.instance(2)
    made = new_municipality(one, keys.writer)
    token = made.header("Consistency-Token")
    assert token, describe(made)
    path = f"{MUNICIPALITY}/{made.json['id']}"
    r = two.get(path, key=keys.reader, headers={"Consistency-Token": token})
    assert r.status == 200 and r.json["name"] == made.json["name"], describe(r)
    assert r.header("Consistency-Token"), describe(r)

    cluster.pause_replay()
    try:
        changed = one.patch(path, {"notes": "after the replay was paused"}, key=keys.writer)
        assert changed.status == 200, describe(changed)
        token = changed.header("Consistency-Token")
        assert token, describe(changed)
        # The replica cannot have it: served by the primary, never older data.
        r = two.get(path, key=keys.reader, headers={"Consistency-Token": token})
        assert r.status == 200 and r.json["notes"] == "after the replay was paused", describe(r)

        # Without the token: once the paused replica lags more than 300 ms, both instances leave
        # it, and the change is visible through both with a key that never wrote.
        cluster.wait_state("replica-1", "lagging")
        before = {n: cluster.reads(n) for n in (1, 2)}
        for n in (1, 2):
            for _ in range(5):
                r = cluster.instance(n).get(path, key=keys.reader)
                assert r.status == 200 and r.json["notes"] == "after the replay was paused", describe(r)
        for n in (1, 2):
            after = cluster.reads(n)
            assert after.get("replica-1", 0) == before[n].get("replica-1", 0), (n, before[n], after)
            assert after["primary"] >= before[n].get("primary", 0) + 5, (n, before[n], after)
    finally:
        cluster.resume_replay()


def test_every_kind_of_write_gives_a_token_and_its_writer_reads_it_back_without_one(cluster, keys):
    """A write in a transaction (an Idempotency-Key keeps its answer with it) and a delete give a
    token as the one-statement writes do; the writer reads its write through the same instance
    without sending the token (the instance remembers it), while replay is paused."""
    one, two = cluster.instance(1), cluster.instance(2)
    cluster.wait_replayed()
    cluster.pause_replay()
    try:
        body = {"code": f"GM9{random.randrange(1000):03d}", "name": f"Idempotent {uuid.uuid4().hex[:6]}",
                "province": "Utrecht"}
        made = one.post(MUNICIPALITY, body, key=keys.writer,
                        headers={"Idempotency-Key": str(uuid.uuid4())})
        assert made.status in (201, 409), describe(made)
        if made.status == 409:  # the code is taken: the test is about tokens, not codes
            made = new_municipality(one, keys.writer)
        token = made.header("Consistency-Token")
        assert token, describe(made)
        path = f"{MUNICIPALITY}/{made.json['id']}"
        r = one.get(path, key=keys.writer)
        assert r.status == 200, describe(r)
        r = two.get(path, key=keys.reader, headers={"Consistency-Token": token})
        assert r.status == 200, describe(r)

        gone = one.delete(path, key=keys.writer)
        assert gone.status == 204, describe(gone)
        token = gone.header("Consistency-Token")
        assert token, describe(gone)
        r = two.get(path, key=keys.reader, headers={"Consistency-Token": token})
        assert r.status == 404, describe(r)
        r = one.get(path, key=keys.writer)
        assert r.status == 404, describe(r)
    finally:
        cluster.resume_replay()


def test_a_malformed_consistency_token_is_400(cluster, keys):
    r = cluster.nginx().get(f"{MUNICIPALITY}?limit=1", key=keys.reader,
                            headers={"Consistency-Token": "not a position"})
    assert r.status == 400 and (r.header("Content-Type") or "").startswith("application/problem+json"), describe(r)


# ------------------------------------------------------------------ replica down and back


def test_reads_go_on_while_the_replica_is_stopped_and_use_it_again_once_it_is_back(cluster, keys):
    path = f"{MUNICIPALITY}/{new_municipality(cluster.nginx(), keys.writer).json['id']}"
    cluster.wait_replayed()
    front = cluster.nginx()
    cluster.stop_replica()
    # At once and from then on: every read answers 200, from the primary.
    for _ in range(20):
        r = front.get(path, key=keys.reader)
        assert r.status == 200, describe(r)
    cluster.wait_state("replica-1", "down")
    for n in (1, 2):
        for _ in range(5):
            r = cluster.instance(n).get(path, key=keys.reader)
            assert r.status == 200, describe(r)
    before = {n: cluster.reads(n).get("replica-1", 0) for n in (1, 2)}

    cluster.start_replica()
    cluster.wait_state("replica-1", "up", timeout=30)

    # Used again: reads by the replica grow on both instances.
    def replica_used_again(n):
        r = cluster.instance(n).get(path, key=keys.reader)
        assert r.status == 200, describe(r)
        return cluster.reads(n).get("replica-1", 0) > before[n]
    for n in (1, 2):
        wait_for(lambda: replica_used_again(n), 30, what=f"werklabd-{n} to read from the replica again")


def test_reads_under_way_when_the_replica_stops_are_answered_by_the_primary(cluster, keys):
    """Straight to the instances, with no nginx to retry: reads running while the replica
    shuts down (those it is serving, those queued for it, those sent while it refuses new
    connections) are all answered, from the primary."""
    path = f"{MUNICIPALITY}/{new_municipality(cluster.nginx(), keys.writer).json['id']}"
    cluster.wait_replayed()
    cluster.wait_state("replica-1", "up", timeout=30)
    stop = threading.Event()
    lock = threading.Lock()
    answered, failures = collections.Counter(), []

    def reader(n):
        endpoint = cluster.instance(n)
        conn = endpoint.connection()
        try:
            while not stop.is_set():
                r = endpoint.get(path, key=keys.reader, conn=conn)
                with lock:
                    if r.status == 200:
                        answered[n] += 1
                    else:
                        failures.append(f"werklabd-{n}: {r.status} {r.body[:200]!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=reader, args=(1 + i % 2,)) for i in range(6)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: sum(answered.values()) >= 200, 60, what="200 reads before the stop")
        cluster.stop_replica()
        with lock:
            at_stop = sum(answered.values())
        wait_for(lambda: sum(answered.values()) >= at_stop + 400, 60, what="400 reads after the stop")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        cluster.start_replica()
    print(f"{sum(answered.values())} reads straight to the instances, {len(failures)} failed")
    assert not failures, failures[:10]
    cluster.wait_state("replica-1", "up", timeout=30)


# ------------------------------------------------------------------ revocation


def test_a_key_revoked_on_one_instance_is_refused_by_the_other_at_once(cluster, keys):
    one, two = cluster.instance(1), cluster.instance(2)
    latencies = []
    for attempt in range(3):
        made = one.post("/v1/api-keys", {"name": f"cluster-revoke-{attempt}-{uuid.uuid4().hex[:6]}",
                                         "role": "staff", "rateLimit": 0}, key=keys.admin)
        assert made.status == 201, describe(made)
        secret, key_id = made.json["key"], made.json["id"]
        # Used on the other instance first, so that it holds the key in its cache
        # (WERKLAB_KEY_CACHE_MS is 60 s here: only the notification can make it refuse the key
        # within the poll below).
        conn = two.connection()
        try:
            r = two.get(f"{MUNICIPALITY}?limit=1", key=secret, conn=conn)
            assert r.status == 200, describe(r)
            revoked = one.delete(f"/v1/api-keys/{key_id}", key=keys.admin)
            assert revoked.status == 204, describe(revoked)
            start = time.monotonic()
            deadline = start + 10
            while True:
                r = two.get(f"{MUNICIPALITY}?limit=1", key=secret, conn=conn)
                if r.status == 401:
                    break
                assert r.status == 200, describe(r)
                assert time.monotonic() < deadline, \
                    "the other instance still took a revoked key after 10 s (its cache holds it 60 s)"
                time.sleep(0.002)
            latencies.append(time.monotonic() - start)
        finally:
            conn.close()
    ms = [round(s * 1000, 1) for s in latencies]
    # Reported, not asserted: tests hold no wall-clock bounds (a busy machine would make one
    # fail at random). What the test holds is that the refusal comes long before the 60 s cache
    # period could explain it; bench and the README give the delay measured.
    print(f"revocation seen by the other instance after {ms} ms")


# ------------------------------------------------------------------ per-address limits


def test_per_address_limits_count_the_client_behind_nginx_and_ignore_a_forged_header(cluster):
    """Clients at 127.0.0.2 and 127.0.0.3 reach nginx; nginx reaches the instances from
    127.0.0.1, the only trusted proxy. Public writes are limited to 2 a minute per address
    and instance. If the instances counted nginx, a client's exhausted limit would be every
    client's; they count the client, so the second client still gets through. A client's own
    X-Forwarded-For stays left of the address nginx appends and is ignored; sent straight to an
    instance from an untrusted address, it is ignored too."""
    first, second = cluster.nginx(source="127.0.0.2"), cluster.nginx(source="127.0.0.3")

    def exhaust(endpoint, most=12, headers=None):
        statuses = []
        for _ in range(most):
            r = endpoint.post("/v1/inquiries", inquiry(), headers=headers)
            assert r.status in (201, 429), describe(r)
            statuses.append(r.status)
            # Two refusals in a row: through nginx, both instances (round robin) refuse.
            if statuses[-2:] == [429, 429]:
                return statuses
        raise AssertionError(f"no limit reached: {statuses}")

    statuses = exhaust(first)
    # 2 per instance, two instances: at most 4 went through.
    assert statuses.count(201) <= 4, statuses
    # Another client behind the same nginx is not refused: the limit is not nginx's.
    for _ in range(2):
        r = second.post("/v1/inquiries", inquiry())
        assert r.status == 201, describe(r)
    # The first client forging another address: nginx sends "forged, 127.0.0.2"; the right-most
    # untrusted entry is still 127.0.0.2.
    for forged in ("203.0.113.7", "203.0.113.8, 127.0.0.1"):
        r = first.post("/v1/inquiries", inquiry(), headers={"X-Forwarded-For": forged})
        assert r.status == 429, describe(r)

    # Straight to an instance from an untrusted peer (127.0.0.4): its own address counts, and
    # a forged header changes nothing.
    direct = cluster.instance(1, source="127.0.0.4")
    for _ in range(6):
        r = direct.post("/v1/inquiries", inquiry())
        if r.status == 429:
            break
        assert r.status == 201, describe(r)
    assert r.status == 429, describe(r)
    for forged in ("198.51.100.9", "127.0.0.1", "198.51.100.10, 127.0.0.1"):
        r = direct.post("/v1/inquiries", inquiry(), headers={"X-Forwarded-For": forged})
        assert r.status == 429, describe(r)
    # From the trusted address the header is taken: a new client address, a fresh limit.
    r = cluster.instance(1, source="127.0.0.1").post("/v1/inquiries", inquiry(),
                                                      headers={"X-Forwarded-For": "198.51.100.11"})
    assert r.status == 201, describe(r)


# ------------------------------------------------------------------ an instance killed


def established_to(port):
    """TCP connections established to a local listening port (its accepted ones)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                        count += 1
        except FileNotFoundError:
            pass
    return count


def test_an_instance_killed_under_read_load_fails_no_request_but_its_own(cluster, keys):
    path = f"{MUNICIPALITY}/{new_municipality(cluster.nginx(), keys.writer).json['id']}"
    cluster.wait_replayed()
    front = cluster.nginx()
    stop = threading.Event()
    lock = threading.Lock()
    counts = collections.Counter()
    failures = []

    def reader():
        conn = None
        while not stop.is_set():
            try:
                if conn is None:
                    conn = front.connection()
                r = front.get(path, key=keys.reader, conn=conn)
                with lock:
                    if r.status == 200:
                        counts["ok"] += 1
                    else:
                        failures.append(f"{r.status} {r.body[:200]!r}")
            except (OSError, ssl.SSLError, ConnectionError) as e:
                with lock:
                    failures.append(repr(e))
                if conn:
                    conn.close()
                conn = None
        if conn:
            conn.close()

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: counts["ok"] >= 300, 60, what="300 reads through nginx")
        open_to_killed = established_to(int(cluster["WERKLABD_1_PORT"]))
        with lock:
            ok_before = counts["ok"]
        cluster.kill_instance(1)
        wait_for(lambda: counts["ok"] >= ok_before + 600, 60, what="600 reads after the kill")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    total = counts["ok"] + len(failures)
    print(f"{total} reads through nginx, {len(failures)} failed; {open_to_killed} connections "
          f"were open to the killed instance")
    # nginx sends a GET that failed on the killed instance to the other: no failure expected;
    # at most those in flight on the killed instance's connections.
    assert len(failures) <= open_to_killed, failures[:10]
    assert not cluster.alive(1)


# ------------------------------------------------------------------ the primary down


def test_the_primary_stopped_writes_are_503_with_retry_after_and_reads_go_on(cluster, keys):
    front = cluster.nginx()
    made = new_municipality(front, keys.writer)
    path = f"{MUNICIPALITY}/{made.json['id']}"
    token = made.header("Consistency-Token")
    assert token, describe(made)
    # Read through both instances at the write's position before the primary goes.
    for n in (1, 2):
        r = cluster.instance(n).get(path, key=keys.reader, headers={"Consistency-Token": token})
        assert r.status == 200, describe(r)
    cluster.wait_state("replica-1", "up", timeout=30)
    # The replica has the row: with the primary gone, it answers every read.
    cluster.wait_replayed()
    cluster.stop_primary()
    try:
        for _ in range(4):
            r = front.post(MUNICIPALITY, {"code": "GM9999", "name": "Nooit", "province": "Gelderland"},
                           key=keys.writer)
            assert r.status == 503, describe(r)
            assert r.header("Retry-After") and r.header("Retry-After").isdigit(), describe(r)
            r = front.patch(path, {"notes": "never"}, key=keys.writer)
            assert r.status == 503 and r.header("Retry-After"), describe(r)
        for endpoint in (front, cluster.instance(1), cluster.instance(2)):
            for _ in range(5):
                r = endpoint.get(path, key=keys.reader)
                assert r.status == 200 and r.json["id"] == made.json["id"], describe(r)
        cluster.wait_state("primary", "down")
        for n in (1, 2):
            r = cluster.readyz(n)
            assert r.status == 200 and r.json["status"] == "degraded", describe(r)
    finally:
        cluster.start_primary()
    # Back: writes work again (the instances reconnect by themselves).
    wait_for(lambda: new_municipality_status(front, keys.writer) == 201, 60,
             what="a write through nginx to succeed again")


def new_municipality_status(endpoint, key):
    body = {"code": f"GM9{random.randrange(1000):03d}", "name": f"Terug {uuid.uuid4().hex[:6]}",
            "province": "Gelderland"}
    return endpoint.post(MUNICIPALITY, body, key=key).status

"""Webhook deliveries (issue 11), end to end: werklabd sending to a receiver that verifies every
delivery with the specification's own library (tests/webhooks, npm standardwebhooks).

Each test runs its own sending werklabd (the session's sends nothing: conftest) with a fast
retry schedule, and deletes its subscriptions at the end. Receivers listen on loopback only."""

import signal
import time
import uuid

import pytest

import webhooks
from conftest import Daemon, psql
from domain import advance, make_initiative, make_werklab
from test_operations import find, metrics
from wlclient import assert_status, describe, wait_for

PATH = "/v1/webhook-subscriptions"
# Attempts 1 s apart (the last repeated): failures are retried within the tests' patience.
SENDER_ENV = {"WERKLAB_WEBHOOK_SENDER": "1", "WERKLAB_WEBHOOK_RETRY": "1",
              "WERKLAB_WEBHOOK_TIMEOUT": "2"}


def start_sender(werklabd, log_dir, name="webhooks", **env):
    d = Daemon(werklabd, log_dir, name=name, threads=2, env=werklabd.env(**{**SENDER_ENV, **env}))
    try:
        d.wait_ready()
    except BaseException:
        d.terminate(timeout=5)
        raise
    return d


@pytest.fixture
def receiver(log_dir):
    r = webhooks.Receiver(log_dir, ipv6=True).start()
    yield r
    r.stop()
    r.assert_verified()  # no delivery may fail verification, in any test


@pytest.fixture
def sender(werklabd, log_dir):
    d = start_sender(werklabd, log_dir)
    yield d
    assert d.terminate() == 0


@pytest.fixture
def subscribe(api, keys, receiver):
    made = []

    def make(name, events, host="127.0.0.1", **fields):
        body = {"url": receiver.url(name, host=host), "events": events, "as": "staff", **fields}
        sub = assert_status(api.post(PATH, body, key=keys.admin), 201)
        made.append(sub["id"])
        receiver.set(name, secrets=[sub["secret"]], mode="ok")
        return sub

    yield make
    for sid in made:
        api.delete(f"{PATH}/{sid}", key=keys.admin)


def position(webhook_id):
    """The feed position a webhook-id names: msg_<txid>_<seq>."""
    _, txid, seq = webhook_id.split("_")
    return int(txid), int(seq)


def expected_events(cluster, type_, object_id):
    rows = psql(cluster.url, f"SELECT type || '.' || op FROM changes WHERE type = '{type_}' "
                             f"AND id = '{object_id}' ORDER BY txid, seq")
    return rows.splitlines()


def acknowledged_for(receiver, name, object_id=None):
    """The acknowledged deliveries, oldest first, each webhook-id once (the first)."""
    seen, out = set(), []
    for d in webhooks.acknowledged(receiver.deliveries(name)):
        data = (d["body"] or {}).get("data") or {}
        if object_id and data.get("id") != object_id:
            continue
        if d["webhook_id"] not in seen:
            seen.add(d["webhook_id"])
            out.append(d)
    return out


def wait_delivered(receiver, name, count, object_id=None, timeout=60):
    return receiver.wait_for(name, lambda ds: len(acknowledged_for(receiver, name, object_id))
                             >= count, timeout=timeout)


def caught_up(api, keys, sid):
    """The subscription once its backlog is 0. The receiver records a delivery before its answer
    leaves; the sender records the attempt and moves the position on after reading that answer,
    a moment later."""
    def state():
        s = assert_status(api.get(f"{PATH}/{sid}", key=keys.admin), 200)
        return s if s["backlog"] == 0 else None
    return wait_for(state, timeout=30, interval=0.05, what=f"subscription {sid} to catch up")


def deliveries(api, keys, sid):
    r = api.get(f"{PATH}/{sid}/deliveries?limit=200&sort=attemptedAt", key=keys.admin)
    return assert_status(r, 200)["items"]


def oldest_undelivered(daemon, keys):
    r = daemon.api.get("/metrics", key=keys.admin)
    assert r.status == 200, describe(r)
    for line in r.body.decode().splitlines():
        if line.startswith("werklabd_webhook_oldest_undelivered_seconds "):
            return int(line.split()[1])
    raise AssertionError("no werklabd_webhook_oldest_undelivered_seconds in /metrics")


def test_a_werklabs_way_arrives_complete_and_in_order(api, keys, cluster, receiver, sender,
                                                       subscribe, municipality):
    sub = subscribe("crm", ["werklab.*"])
    w = make_werklab(api, keys.admin, municipality["id"])
    advance(api, keys.admin, w["id"], "completed")
    want = expected_events(cluster, "werklab", w["id"])
    assert want[0] == "werklab.created" and len(want) >= 5, want
    wait_delivered(receiver, "crm", len(want), w["id"])
    got = acknowledged_for(receiver, "crm", w["id"])
    assert [d["type"] for d in got] == want
    assert [position(d["webhook_id"]) for d in got] == sorted(position(d["webhook_id"]) for d in got)
    for d in got:
        assert set(d["body"]) == {"type", "timestamp", "data"}, d["body"]
        assert d["body"]["timestamp"].endswith("Z") and d["headers"]["user-agent"].startswith("werklabd/")
    # the object as it is when sent: by the end, the werklab is completed
    assert got[-1]["body"]["data"]["status"] == "completed"
    s = caught_up(api, keys, sub["id"])
    assert s["lastSuccessAt"], s
    assert position(s["position"]) >= position(got[-1]["webhook_id"]), s
    page = deliveries(api, keys, sub["id"])
    assert {d["webhookId"] for d in page} >= {d["webhook_id"] for d in got}
    assert all(d["status"] in (200, 204) and d["error"] is None for d in page), page
    # Counted just after the attempt is recorded.
    wait_for(lambda: sum(find(metrics(sender.api, keys)[1], "werklabd_webhook_deliveries_total",
                              outcome="delivered")) >= len(want),
             timeout=10, interval=0.05,
             what=f"werklabd_webhook_deliveries_total to count {len(want)} delivered")
    assert oldest_undelivered(sender, keys) >= 0


def test_failures_are_retried_and_nothing_is_lost(api, keys, cluster, receiver, sender,
                                                  subscribe, municipality):
    sub = subscribe("flaky", ["municipality.updated"])
    mid = municipality["id"]
    receiver.stop()  # refused connections
    for n in range(3):
        assert_status(api.patch(f"/v1/municipalities/{mid}", {"name": f"Gemeente {n} {uuid.uuid4().hex[:6]}"},
                                key=keys.admin), 200)
    wait_for(lambda: [d for d in deliveries(api, keys, sub["id"]) if d["status"] is None],
             timeout=20, what="a refused attempt")
    receiver.restart()
    receiver.set("flaky", mode="status 500")
    wait_for(lambda: [d for d in deliveries(api, keys, sub["id"]) if d["status"] == 500],
             timeout=20, what="an attempt answered 500")
    receiver.set("flaky", mode="slow 4")  # past the 2 s timeout
    wait_for(lambda: [d for d in deliveries(api, keys, sub["id"])
                      if d["status"] is None and "imeout" in (d["error"] or "") or
                      "timed out" in (d["error"] or "")],
             timeout=30, what="an attempt that timed out")
    # the oldest undelivered event's age, as /metrics tells it, has grown meanwhile
    wait_for(lambda: oldest_undelivered(sender, keys) >= 2, timeout=15,
             what="werklabd_webhook_oldest_undelivered_seconds to grow")
    receiver.set("flaky", mode="ok")
    want = expected_events(cluster, "municipality", mid)
    updates = [e for e in want if e == "municipality.updated"]
    wait_delivered(receiver, "flaky", len(updates), mid)
    got = acknowledged_for(receiver, "flaky", mid)
    assert len(got) == len(updates)
    assert [position(d["webhook_id"]) for d in got] == sorted(position(d["webhook_id"]) for d in got)
    assert got[-1]["body"]["data"]["name"].startswith("Gemeente 2")
    s = caught_up(api, keys, sub["id"])
    assert s["lastFailureAt"] and s["lastSuccessAt"], s
    failed = [d for d in deliveries(api, keys, sub["id"]) if d["status"] not in (200, 204)]
    assert all(d["nextAttemptAt"] for d in failed), failed


def test_kill_9_while_delivering_loses_nothing(api, keys, cluster, werklabd, log_dir, receiver,
                                               subscribe, municipality):
    subscribe("kill", ["municipality.updated"])
    mid = municipality["id"]
    receiver.set("kill", mode="slow 1")
    d = start_sender(werklabd, log_dir, name="webhooks-killed")
    for n in range(5):
        assert_status(api.patch(f"/v1/municipalities/{mid}", {"notes": f"note {n}"},
                                key=keys.admin), 200)
    receiver.wait_for("kill", lambda ds: len(ds) >= 2, timeout=30)  # under way
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(10)
    receiver.set("kill", mode="ok")
    again = start_sender(werklabd, log_dir, name="webhooks-restarted")
    try:
        wait_delivered(receiver, "kill", 5, mid)
        got = acknowledged_for(receiver, "kill", mid)
        want = expected_events(cluster, "municipality", mid).count("municipality.updated")
        assert len(got) == want == 5
        assert [position(x["webhook_id"]) for x in got] == sorted(position(x["webhook_id"]) for x in got)
        assert got[-1]["body"]["data"]["notes"] == "note 4"
    finally:
        assert again.terminate() == 0


PERSONAL = ("Jan de Vries", "jan@example.nl", "+31 6 1234 5678")


def test_a_partner_view_sees_only_its_municipality_and_no_personal_data(
        api, keys, cluster, receiver, sender, subscribe, new_municipality):
    inside, outside = new_municipality(), new_municipality()
    sub = subscribe("partner", ["municipality.*", "initiative.*", "werklab.*"],
                    **{"as": "partner", "municipalities": [inside["code"]]})
    # Where the subscription starts, read before any write: the sender moves its position on
    # as it delivers, so read after the writes it would leave out what was already delivered.
    start = psql(cluster.url, f"SELECT position_txid || ',' || position_seq FROM "
                              f"webhook_subscriptions WHERE id = '{sub['id']}'").strip()
    txid, seq = start.split(",")
    contact = {"name": PERSONAL[0], "email": PERSONAL[1], "phone": PERSONAL[2]}
    for m in (inside, outside):
        assert_status(api.patch(f"/v1/municipalities/{m['id']}", {"contact": contact},
                                key=keys.admin), 200)
        make_initiative(api, keys.admin, m["id"], contact=contact)
        make_werklab(api, keys.admin, m["id"])
    want = int(psql(cluster.url, f"SELECT count(*) FROM changes WHERE municipality_id = "
                                 f"'{inside['id']}' AND type IN ('municipality', 'initiative', 'werklab') "
                                 f"AND (txid, seq) > ('{txid}'::xid8, {seq})"))
    assert want >= 3
    receiver.wait_for("partner", lambda ds: len(webhooks.acknowledged(ds)) >= want, timeout=60)
    time.sleep(2)  # anything more that would come
    got = webhooks.acknowledged(receiver.deliveries("partner"))
    assert len({d["webhook_id"] for d in got}) == want
    for d in got:
        for secret in PERSONAL:
            assert secret not in d["raw"], d["raw"]
        assert outside["id"] not in d["raw"] and outside["code"] not in d["raw"], d["raw"]
        data = d["body"]["data"]
        assert inside["id"] in (data.get("id"), data.get("municipalityId")), data


def test_loopback_names_and_ipv6_are_delivered_when_allowed(api, keys, receiver, sender,
                                                            subscribe, municipality):
    subscribe("v6", ["municipality.updated"], host="[::1]")
    subscribe("name", ["municipality.updated"], host="localhost")
    assert_status(api.patch(f"/v1/municipalities/{municipality['id']}", {"notes": "v6 and name"},
                            key=keys.admin), 200)
    for name in ("v6", "name"):
        wait_delivered(receiver, name, 1, municipality["id"])


def test_the_address_check_runs_before_any_connection(api, keys, werklabd, log_dir, receiver,
                                                      subscribe, municipality):
    sub = subscribe("guarded", ["municipality.updated"])
    d = start_sender(werklabd, log_dir, name="webhooks-guarded", WERKLAB_WEBHOOK_ALLOW_HTTP="")
    try:
        assert_status(api.patch(f"/v1/municipalities/{municipality['id']}", {"notes": "guarded"},
                                key=keys.admin), 200)
        failed = wait_for(lambda: [x for x in deliveries(api, keys, sub["id"]) if x["error"]],
                          timeout=20, what="a refused delivery")
        assert "http" in failed[0]["error"] and failed[0]["status"] is None, failed
        assert receiver.deliveries("guarded") == []  # never reached
    finally:
        assert d.terminate() == 0


def test_during_a_rotation_both_secrets_sign(api, keys, receiver, sender, subscribe,
                                             municipality):
    sub = subscribe("rotating", ["municipality.updated"])
    rotated = assert_status(api.post(f"{PATH}/{sub['id']}/rotate-secret", key=keys.admin), 200)
    receiver.set("rotating", secrets=[sub["secret"], rotated["secret"]])
    assert_status(api.patch(f"/v1/municipalities/{municipality['id']}", {"notes": "rotated"},
                            key=keys.admin), 200)
    wait_delivered(receiver, "rotating", 1, municipality["id"])
    d = acknowledged_for(receiver, "rotating", municipality["id"])[0]
    assert d["signatures"] == 2 and d["secrets_verified"] == [0, 1], d
    # the old one alone verifies, and so does the new one alone
    receiver.set("rotating", secrets=[rotated["secret"]])
    assert_status(api.patch(f"/v1/municipalities/{municipality['id']}", {"notes": "rotated 2"},
                            key=keys.admin), 200)
    wait_delivered(receiver, "rotating", 2, municipality["id"])


def test_two_instances_never_deliver_an_event_twice_at_once(api, keys, werklabd, log_dir,
                                                            receiver, subscribe, municipality):
    subscribe("pair", ["municipality.updated"])
    receiver.set("pair", mode="slow 0.3")
    senders = [start_sender(werklabd, log_dir, name="webhooks-one")]
    try:
        senders.append(start_sender(werklabd, log_dir, name="webhooks-two"))
        for n in range(6):
            assert_status(api.patch(f"/v1/municipalities/{municipality['id']}",
                                    {"notes": f"pair {n}"}, key=keys.admin), 200)
        wait_delivered(receiver, "pair", 6, municipality["id"])
        ids = [d["webhook_id"] for d in receiver.deliveries("pair")]
        assert len(ids) == len(set(ids)) == 6, ids
    finally:
        codes = [d.terminate() for d in senders]
    assert codes == [0, 0], codes


def test_three_days_of_failures_disable_and_enabling_resumes(api, keys, cluster, receiver,
                                                            sender, subscribe, municipality):
    sub = subscribe("failing", ["municipality.updated"])
    receiver.set("failing", mode="status 503")
    assert_status(api.patch(f"/v1/municipalities/{municipality['id']}", {"notes": "failing"},
                            key=keys.admin), 200)
    wait_for(lambda: deliveries(api, keys, sub["id"]), timeout=20, what="a failed attempt")
    psql(cluster.url, "UPDATE webhook_subscriptions SET failing_since = now() - interval '3 days 1 "
                      f"minute' WHERE id = '{sub['id']}'")
    s = wait_for(lambda: (lambda s: s if not s["enabled"] else None)(
        assert_status(api.get(f"{PATH}/{sub['id']}", key=keys.admin), 200)),
        timeout=20, what="the subscription to be disabled")
    assert "3 days" in s["disabledReason"] and "503" in s["disabledReason"], s
    receiver.set("failing", mode="ok")
    assert_status(api.patch(f"{PATH}/{sub['id']}", {"enabled": True}, key=keys.admin), 200)
    wait_delivered(receiver, "failing", 1, municipality["id"])
    s = caught_up(api, keys, sub["id"])
    assert s["disabledReason"] is None, s


def test_429_retry_after_is_honoured(api, keys, receiver, sender, subscribe, municipality):
    sub = subscribe("busy", ["municipality.updated"])
    receiver.set("busy", mode="status 429", retry_after=4)
    assert_status(api.patch(f"/v1/municipalities/{municipality['id']}", {"notes": "busy"},
                            key=keys.admin), 200)
    got = wait_for(lambda: deliveries(api, keys, sub["id"]), timeout=20, what="an attempt")
    first = got[0]
    assert first["status"] == 429
    attempted = first["attemptedAt"]
    wait = (time.mktime(time.strptime(first["nextAttemptAt"][:19], "%Y-%m-%dT%H:%M:%S")) -
            time.mktime(time.strptime(attempted[:19], "%Y-%m-%dT%H:%M:%S")))
    assert wait >= 3, first  # Retry-After 4 over the schedule's 1 s


def test_a_deleted_object_arrives_as_deleted(api, keys, receiver, sender, subscribe,
                                            municipality):
    subscribe("gone", ["initiative.*"])
    receiver.set("gone", mode="status 503")  # held back until the initiative is gone
    i = make_initiative(api, keys.admin, municipality["id"])
    receiver.wait_for("gone", lambda ds: len(ds) >= 1, timeout=20)
    assert_status(api.delete(f"/v1/initiatives/{i['id']}", key=keys.admin), 204)
    receiver.set("gone", mode="ok")
    wait_delivered(receiver, "gone", 2, i["id"])
    got = acknowledged_for(receiver, "gone", i["id"])
    assert [d["type"] for d in got] == ["initiative.created", "initiative.deleted"]
    # read at sending time: by then the initiative was gone, also for its creation
    for d in got:
        assert d["body"]["data"] == {"id": i["id"], "type": "initiative", "deleted": True}, d


def test_attendance_arrives_with_its_session(api, keys, receiver, sender, subscribe,
                                             municipality):
    from domain import make_participant, make_session
    subscribe("attendance", ["attendance.*"])
    w = make_werklab(api, keys.admin, municipality["id"], status="intake")
    p = make_participant(api, keys.admin, w["id"])
    s = make_session(api, keys.admin, w["id"], 1, "2025-03-02T09:00:00Z", "2025-03-02T12:00:00Z")
    body = [{"participantId": p["id"], "status": "present"}]
    assert_status(api.put(f"/v1/sessions/{s['id']}/attendance", body, key=keys.admin), 200)
    receiver.wait_for("attendance", lambda ds: any(
        (d["body"] or {}).get("data", {}).get("sessionId") == s["id"]
        for d in webhooks.acknowledged(ds)), timeout=30)
    d = [d for d in webhooks.acknowledged(receiver.deliveries("attendance"))
         if d["body"]["data"].get("sessionId") == s["id"]][-1]
    assert d["type"].startswith("attendance.")
    assert d["body"]["data"] == {"sessionId": s["id"], "attendance": body}, d["body"]


def test_a_position_the_feed_pruned_past_disables_and_enabling_resumes_at_the_oldest(
        cluster, log_dir, receiver):
    """In a database of its own: the test moves the feed's horizon as pruning does, which the
    shared database's other tests rely on staying where it is."""
    from conftest import Werklabd
    name = f"werklab_horizon_{uuid.uuid4().hex[:8]}"
    base = cluster.url.rsplit("/", 1)[0]
    psql(base.replace("//werklab@", "//postgres@") + "/postgres",
         f"CREATE DATABASE {name} OWNER werklab")
    own = Werklabd(f"{base}/{name}")
    out = own.run("migrate", timeout=120)
    assert out.returncode == 0, out.stderr
    key = own.create_key("admin", "horizon")
    d = Daemon(own, log_dir, name="webhooks-horizon", threads=2, env=own.env(**SENDER_ENV))
    try:
        d.wait_ready()
        body = {"url": receiver.url("horizon"), "events": ["municipality.updated"], "as": "staff"}
        sub = assert_status(d.api.post(PATH, body, key=key), 201)
        receiver.set("horizon", secrets=[sub["secret"]], mode="status 500")
        mid = assert_status(d.api.get("/v1/municipalities?limit=1", key=key), 200)["items"][0]["id"]
        for n in range(2):
            assert_status(d.api.patch(f"/v1/municipalities/{mid}", {"notes": f"pruned {n}"},
                                      key=key), 200)
        receiver.wait_for("horizon", lambda ds: len(ds) >= 1, timeout=20)
        # what pruning does: the entries go, the horizon moves past them
        psql(own.database_url, "WITH last AS (SELECT txid, seq FROM changes ORDER BY txid DESC, "
                               "seq DESC LIMIT 1) UPDATE changes_horizon h SET txid = last.txid, "
                               "seq = last.seq FROM last")
        psql(own.database_url, "DELETE FROM changes WHERE (txid, seq) <= "
                               "(SELECT txid, seq FROM changes_horizon)")
        s = wait_for(lambda: (lambda s: s if not s["enabled"] else None)(
            assert_status(d.api.get(f"{PATH}/{sub['id']}", key=key), 200)),
            timeout=20, what="the subscription to be disabled")
        assert "no longer holds" in s["disabledReason"], s
        receiver.set("horizon", mode="ok")
        enabled = assert_status(d.api.patch(f"{PATH}/{sub['id']}", {"enabled": True}, key=key), 200)
        horizon = psql(own.database_url, "SELECT 'msg_' || txid || '_' || seq FROM changes_horizon")
        assert enabled["position"] == horizon and enabled["disabledReason"] is None, enabled
        assert_status(d.api.patch(f"/v1/municipalities/{mid}", {"notes": "after"}, key=key), 200)
        wait_delivered(receiver, "horizon", 1, mid)
        got = acknowledged_for(receiver, "horizon", mid)
        assert [x["body"]["data"]["notes"] for x in got] == ["after"], got
    finally:
        assert d.terminate() == 0
        psql(base.replace("//werklab@", "//postgres@") + "/postgres",
             f"DROP DATABASE {name} WITH (FORCE)")

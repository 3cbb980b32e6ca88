"""Tests of the webhook receiver itself (tests/webhooks, tests/api/webhooks.py), with a sender
written here: the receiver must accept exactly what the Standard Webhooks reference library
accepts, refuse and record everything else, and answer as it was told. No werklabd needed."""

import base64
import http.client
import json
import subprocess
import threading
import time
import uuid

import pytest

import webhooks
from webhooks import Receiver, acknowledged, new_secret, post, sign

ENVELOPE = {"type": "werklab.updated", "timestamp": "2025-03-01T12:00:00Z",
            "data": {"id": "w-1", "name": "Werklab Één"}}


@pytest.fixture(scope="module")
def receiver(tmp_path_factory):
    r = Receiver(str(tmp_path_factory.mktemp("webhooks")), ipv6=True)
    r.start()
    yield r
    r.stop()


@pytest.fixture
def hook(receiver):
    """A fresh path with one secret, answering "ok": (name, secret)."""
    name = "h-" + uuid.uuid4().hex[:10]
    secret = new_secret()
    receiver.set(name, secrets=[secret], mode="ok")
    return name, secret


def only(receiver, name):
    records = receiver.deliveries(name)
    assert len(records) == 1, webhooks.summary(records)
    return records[0]


# ------------------------------------------------------------------ verification


def test_a_signed_delivery_is_recorded_verified(receiver, hook):
    name, secret = hook
    status, _, _ = post(receiver.url(name), ENVELOPE, [secret], msg_id="msg_one", timestamp=None)
    assert status == 204
    r = only(receiver, name)
    assert r["verified"] is True and r["error"] is None
    assert r["secret"] == 0 and r["secrets_verified"] == [0]
    assert r["webhook_id"] == "msg_one"
    assert abs(int(r["webhook_timestamp"]) - time.time()) < 60
    assert r["type"] == "werklab.updated" and r["body"] == ENVELOPE
    assert json.loads(r["raw"]) == ENVELOPE
    assert r["headers"]["content-type"] == "application/json"
    assert r["signatures"] == 1 and r["problems"] == []
    assert r["status"] == 204 and r["acknowledged"] is True
    assert r["received_at"].endswith("Z") and r["received_ms"] > 0
    receiver.assert_verified(name)


def test_the_python_signer_agrees_with_the_library():
    # The self-tests' sender must sign as the library does, or they would test nothing.
    secret, body = new_secret(), json.dumps(ENVELOPE, ensure_ascii=False)
    script = ("const {Webhook} = require('standardwebhooks');"
              "const [s, id, ts, body] = process.argv.slice(1);"
              "console.log(new Webhook(s).sign(id, new Date(ts * 1000), body));")
    out = subprocess.run(["node", "-e", script, secret, "msg_x", "1614265330", body],
                         cwd=webhooks.HARNESS, capture_output=True, text=True, timeout=30,
                         check=True)
    assert out.stdout.strip() == sign(secret, "msg_x", 1614265330, body)
    # A fixed vector, what standardwebhooks 1.3.0 answers for it.
    assert sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330, '{"test": 2432232314}') == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def refused(receiver, name, status, error):
    assert status == 400
    r = only(receiver, name)
    assert r["verified"] is False and r["secret"] is None and r["secrets_verified"] == []
    assert error in r["error"], r["error"]
    assert r["status"] == 400 and r["acknowledged"] is False
    with pytest.raises(AssertionError, match="failed verification"):
        receiver.assert_verified(name)
    return r


def test_a_wrong_signature_is_refused_and_recorded(receiver, hook):
    name, secret = hook
    forged = "v1," + base64.b64encode(bytes(32)).decode()
    status, _, _ = post(receiver.url(name), ENVELOPE, [secret],
                        headers={"webhook-signature": forged})
    refused(receiver, name, status, "No matching signature found")


def test_a_wrong_secret_is_refused_and_recorded(receiver, hook):
    name, _ = hook
    status, _, _ = post(receiver.url(name), ENVELOPE, [new_secret()])
    refused(receiver, name, status, "No matching signature found")


@pytest.mark.parametrize("offset, error", [(-310, "too old"), (310, "too new")])
def test_a_timestamp_outside_five_minutes_is_refused_and_recorded(receiver, hook, offset, error):
    name, secret = hook
    status, _, _ = post(receiver.url(name), ENVELOPE, [secret],
                        timestamp=int(time.time()) + offset)
    refused(receiver, name, status, error)


def test_a_timestamp_within_five_minutes_verifies(receiver, hook):
    name, secret = hook
    status, _, _ = post(receiver.url(name), ENVELOPE, [secret],
                        timestamp=int(time.time()) - 240)
    assert status == 204 and only(receiver, name)["verified"] is True


def test_a_changed_body_is_refused_and_recorded(receiver, hook):
    name, secret = hook
    msg_id, ts = "msg_changed", str(int(time.time()))
    signed = json.dumps(ENVELOPE).encode()
    sent = signed.replace(b"w-1", b"w-2")
    status, _, _ = post(receiver.url(name), sent, msg_id=msg_id, timestamp=ts,
                        headers={"webhook-signature": sign(secret, msg_id, ts, signed)})
    r = refused(receiver, name, status, "No matching signature found")
    assert r["body"]["data"]["id"] == "w-2"


def test_a_changed_id_is_refused(receiver, hook):
    name, secret = hook
    ts = str(int(time.time()))
    body = json.dumps(ENVELOPE).encode()
    status, _, _ = post(receiver.url(name), body, msg_id="msg_b", timestamp=ts,
                        headers={"webhook-signature": sign(secret, "msg_a", ts, body)})
    refused(receiver, name, status, "No matching signature found")


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_refused(receiver, hook, header):
    name, secret = hook
    status, _, _ = post(receiver.url(name), ENVELOPE, [secret], headers={header: None})
    r = refused(receiver, name, status, "Missing required headers")
    assert f"no {header} header" in r["problems"]


def test_a_path_without_secret_is_refused(receiver):
    name = "unset-" + uuid.uuid4().hex[:8]
    status, _, _ = post(receiver.url(name), ENVELOPE, [new_secret()])
    refused(receiver, name, status, "no secret is set")


def test_the_body_is_verified_as_bytes(receiver, hook):
    # Not re-encoded JSON: exact bytes, with a multi-byte character and odd spacing.
    name, secret = hook
    body = '{"type":"x.created" ,  "timestamp":"2025-03-01T12:00:00Z","data":{"n":"Ééé"}}'
    status, _, _ = post(receiver.url(name), body.encode(), [secret])
    assert status == 204 and only(receiver, name)["verified"] is True


# ------------------------------------------------------------------ rotation


def test_two_secrets_accept_either_and_both(receiver):
    name = "rot-" + uuid.uuid4().hex[:8]
    old, new = new_secret(), new_secret()
    receiver.set(name, secrets=[old, new])
    assert post(receiver.url(name), ENVELOPE, [old])[0] == 204
    assert post(receiver.url(name), ENVELOPE, [new])[0] == 204
    assert post(receiver.url(name), ENVELOPE, [old, new])[0] == 204
    assert post(receiver.url(name), ENVELOPE, [new_secret(), new])[0] == 204
    assert post(receiver.url(name), ENVELOPE, [new_secret(), new_secret()])[0] == 400
    rs = receiver.deliveries(name)
    assert [r["verified"] for r in rs] == [True, True, True, True, False]
    assert [r["secret"] for r in rs] == [0, 1, 0, 1, None]
    assert [r["secrets_verified"] for r in rs] == [[0], [1], [0, 1], [1], []]
    assert [r["signatures"] for r in rs] == [1, 1, 2, 2, 2]
    assert all(r["problems"] == [] for r in rs)


def test_after_rotation_the_old_secret_alone_is_refused(receiver):
    name = "rot-" + uuid.uuid4().hex[:8]
    old, new = new_secret(), new_secret()
    receiver.set(name, secrets=[old, new])
    assert post(receiver.url(name), ENVELOPE, [old])[0] == 204
    receiver.set(name, secrets=[new])
    assert post(receiver.url(name), ENVELOPE, [old])[0] == 400
    assert post(receiver.url(name), ENVELOPE, [new])[0] == 204
    assert [r["verified"] for r in receiver.deliveries(name)] == [True, False, True]


def test_a_secret_the_library_cannot_decode_is_refused_by_the_control_api(receiver):
    with pytest.raises(RuntimeError, match="400"):
        receiver.set("bad-secret", secrets=["whsec_not*base64!"])


# ------------------------------------------------------------------ checks beyond the library


def test_what_the_library_lets_pass_but_the_contract_does_not_is_a_problem(receiver, hook):
    name, secret = hook
    url = receiver.url(name)
    post(url, ENVELOPE, [secret], headers={"Content-Type": "text/plain"})
    post(url, {"data": {}}, [secret])
    post(url, b"not json", [secret])
    msg_id, ts = "msg_x", str(int(time.time()))
    body = json.dumps(ENVELOPE).encode()
    good = sign(secret, msg_id, ts, body)
    post(url, body, msg_id=msg_id, timestamp=ts, headers={"webhook-signature": "v2,abc " + good})
    rs = receiver.deliveries(name)
    assert all(r["verified"] for r in rs), webhooks.summary(rs)
    problems = [r["problems"] for r in rs]
    assert problems[0] == ['content-type "text/plain"']
    assert problems[1] == ['body is not {"type": string, "timestamp": string, "data": object}']
    assert problems[2] == ["body is not JSON"]
    assert problems[3] == ['signature entry "v2,abc" is not v1,<base64>']
    assert len(receiver.failures(name)) == 4 and receiver.failures(name, problems=False) == []
    receiver.assert_verified(name, problems=False)
    with pytest.raises(AssertionError):
        receiver.assert_verified(name)


def test_a_header_sent_twice_is_a_problem(receiver, hook):
    name, secret = hook
    msg_id, ts = "msg_twice", str(int(time.time()))
    body = json.dumps(ENVELOPE).encode()
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    conn.putrequest("POST", f"/hooks/{name}")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(len(body)))
    conn.putheader("webhook-id", msg_id)
    conn.putheader("webhook-timestamp", ts)
    conn.putheader("webhook-signature", sign(secret, msg_id, ts, body))
    conn.putheader("webhook-signature", sign(new_secret(), msg_id, ts, body))
    conn.endheaders(body)
    assert conn.getresponse().status == 400  # the two are joined by ", ", which no entry is
    conn.close()
    r = only(receiver, name)
    assert "webhook-signature header sent 2 times" in r["problems"]


# ------------------------------------------------------------------ modes


@pytest.mark.parametrize("mode, status", [("ok", 204), ("ok 200", 200), ("status 500", 500),
                                          ("status 410", 410), ("status 408", 408)])
def test_a_mode_answers_as_set(receiver, hook, mode, status):
    name, secret = hook
    receiver.set(name, mode=mode)
    assert post(receiver.url(name), ENVELOPE, [secret])[0] == status
    r = only(receiver, name)
    assert r["verified"] and r["status"] == status and r["mode"] == mode
    assert r["acknowledged"] is (200 <= status < 300)


def test_429_with_retry_after(receiver, hook):
    name, secret = hook
    receiver.set(name, mode="status 429", retry_after=7)
    status, headers, _ = post(receiver.url(name), ENVELOPE, [secret])
    assert status == 429 and headers["Retry-After"] == "7"
    receiver.set(name, retry_after=None, mode="ok")
    status, headers, _ = post(receiver.url(name), ENVELOPE, [secret])
    assert status == 204 and "Retry-After" not in headers


def test_a_redirect_and_a_large_answer(receiver, hook):
    name, secret = hook
    receiver.set(name, mode="status 302", headers={"Location": receiver.url("elsewhere")},
                 body_bytes=200_000)
    status, headers, body = post(receiver.url(name), ENVELOPE, [secret])
    assert status == 302 and headers["Location"].endswith("/hooks/elsewhere")
    assert len(body) == 200_000


def test_a_bad_signature_is_answered_400_whatever_the_mode(receiver, hook):
    name, _ = hook
    receiver.set(name, mode="status 500")
    assert post(receiver.url(name), ENVELOPE, [new_secret()])[0] == 400


def test_slow_answers_late(receiver, hook):
    name, secret = hook
    receiver.set(name, mode="slow 0.5")
    t = time.monotonic()
    assert post(receiver.url(name), ENVELOPE, [secret])[0] == 204
    assert time.monotonic() - t >= 0.5
    assert only(receiver, name)["acknowledged"] is True


def test_slow_past_the_senders_timeout_is_not_acknowledged(receiver, hook):
    name, secret = hook
    receiver.set(name, mode="slow 2")
    with pytest.raises(TimeoutError):
        post(receiver.url(name), ENVELOPE, [secret], timeout=0.3)
    rs = receiver.wait_for(name, lambda rs: rs and rs[0]["acknowledged"] is not None, timeout=5)
    assert rs[0]["verified"] is True and rs[0]["acknowledged"] is False
    assert rs[0]["status"] is None  # the sender hung up before the answer
    time.sleep(2.2)  # the late answer does not turn it into an acknowledgement
    assert only(receiver, name)["acknowledged"] is False


def test_down_drops_the_connection(receiver, hook):
    name, secret = hook
    receiver.set(name, mode="down")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        post(receiver.url(name), ENVELOPE, [secret])
    r = only(receiver, name)
    assert r["verified"] is True and r["status"] == "dropped" and r["acknowledged"] is False
    receiver.set(name, mode="ok")
    assert post(receiver.url(name), ENVELOPE, [secret])[0] == 204


def test_ipv6_and_localhost(receiver, hook):
    name, secret = hook
    assert post(receiver.url(name, host="[::1]"), ENVELOPE, [secret])[0] == 204
    assert post(receiver.url(name, host="localhost"), ENVELOPE, [secret])[0] == 204
    assert [r["verified"] for r in receiver.deliveries(name)] == [True, True]


# ------------------------------------------------------------------ records


def test_records_keep_the_order_of_arrival_across_paths(receiver, hook):
    name, secret = hook
    other = name + "-b"
    receiver.set(other, secrets=[secret])
    for i in range(10):
        post(receiver.url(name if i % 2 else other), dict(ENVELOPE, data={"i": i}), [secret])
    mine = receiver.deliveries(name)
    assert [r["body"]["data"]["i"] for r in mine] == [1, 3, 5, 7, 9]
    every = [r for r in receiver.deliveries() if r["name"] in (name, other)]
    assert [r["body"]["data"]["i"] for r in every] == list(range(10))
    assert [r["seq"] for r in every] == sorted(r["seq"] for r in every)
    receiver.clear(other)
    assert receiver.deliveries(other) == [] and len(receiver.deliveries(name)) == 5


def test_wait_for_returns_when_met_and_fails_with_what_arrived(receiver, hook):
    name, secret = hook
    post(receiver.url(name), ENVELOPE, [secret], msg_id="msg_waited")
    rs = receiver.wait_for(name, lambda rs: len(acknowledged(rs)) == 1, timeout=5)
    assert rs[0]["webhook_id"] == "msg_waited"
    with pytest.raises(AssertionError, match="msg_waited"):
        receiver.wait_for(name, lambda rs: len(rs) == 2, timeout=0.3)


# ------------------------------------------------------------------ stop and restart


def test_stop_refuses_and_restart_keeps_port_settings_and_records(tmp_path):
    r = Receiver(str(tmp_path))
    with r:
        secret = new_secret()
        r.set("s", secrets=[secret], mode="ok 200")
        assert post(r.url("s"), ENVELOPE, [secret], msg_id="msg_before")[0] == 200
        port = r.port
        r.stop()
        assert not r.running
        with pytest.raises(ConnectionRefusedError):
            post(r.url("s"), ENVELOPE, [secret])
        assert [x["webhook_id"] for x in r.deliveries("s")] == ["msg_before"]
        r.set("s", mode="status 503")  # set while stopped: applies at the start
        r.start()
        assert r.port == port
        assert post(r.url("s"), ENVELOPE, [secret], msg_id="msg_after")[0] == 503
        r.set("s", mode="ok")
        r.restart()
        assert post(r.url("s"), ENVELOPE, [secret], msg_id="msg_last")[0] == 204
        rs = r.deliveries("s")
        assert [x["webhook_id"] for x in rs] == ["msg_before", "msg_after", "msg_last"]
        assert [x["seq"] for x in rs] == [1, 2, 3]
        r.assert_verified()
    assert not r.running


def test_stop_during_a_slow_answer_is_not_an_acknowledgement(tmp_path):
    r = Receiver(str(tmp_path)).start()
    try:
        secret = new_secret()
        r.set("s", secrets=[secret], mode="slow 30")
        errors = []

        def send():
            try:
                post(r.url("s"), ENVELOPE, [secret], timeout=20)
            except Exception as e:  # noqa: BLE001 - the connection closed under it
                errors.append(e)

        t = threading.Thread(target=send)
        t.start()
        r.wait_for("s", lambda rs: len(rs) == 1, timeout=5)
        started = time.monotonic()
        r.stop()
        assert time.monotonic() - started < 5
        t.join(10)
        assert errors, "the sender got an answer from a stopped receiver"
        [x] = r.deliveries("s")
        assert x["verified"] is True and x["acknowledged"] is False
    finally:
        r.stop()


def test_a_receiver_that_cannot_listen_says_why(tmp_path):
    a = Receiver(str(tmp_path)).start()
    try:
        b = Receiver(str(tmp_path))
        b.port = a.port  # taken
        b.config_path = str(tmp_path / "b.json")
        b.log_path = str(tmp_path / "b.log")
        b.state_path = str(tmp_path / "b-state.json")
        with pytest.raises(RuntimeError, match="EADDRINUSE"):
            b.start(timeout=10)
        assert not b.running
    finally:
        a.stop()

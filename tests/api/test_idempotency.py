"""Idempotency-Key on POST: a retry with the same key gets the first answer again, without a
second effect.

The first request's effect and its stored answer are committed together; a retry with the same
key and the same method, path and body answers the same status, body, Location and ETag with
`Idempotent-Replayed: true`; the same key with another body is 422; a retry while the first is
still running is 409. Keys belong to the API key. 4xx answers are stored and replayed; a key
that is not 1-255 visible ASCII characters is 400.
"""

import json
import random
import socket
import subprocess
import threading
import time
import uuid

import pytest

from conftest import Daemon, HeldLock
from domain import make_werklab
from wlclient import assert_problem, assert_status, describe, qs, raw_request

REPLAYED = "Idempotent-Replayed"


def ikey():
    return f"test-{uuid.uuid4()}"


def post(api, path, body, key, idem, **kw):
    headers = dict(kw.pop("headers", {}) or {})
    if idem is not None:
        headers["Idempotency-Key"] = idem
    return api.post(path, body, key=key, headers=headers, **kw)


def initiative_body(municipality, name=None):
    return {"municipalityId": municipality["id"], "name": name or f"Initiatief {uuid.uuid4().hex[:8]}",
            "kind": "residentInitiative"}


def initiatives_named(api, key, municipality, name):
    r = api.get(qs("/v1/initiatives", municipalityId=municipality["id"], limit=200), key=key)
    assert r.status == 200, describe(r)
    return [i for i in r.json["items"] if i["name"] == name]


def assert_same_answer(first, again):
    assert again.status == first.status, f"{describe(first)}\n---\n{describe(again)}"
    assert again.body == first.body, f"{describe(first)}\n---\n{describe(again)}"
    # (Content-Type: test_every_replay_has_the_content_type_of_the_first_answer)
    for h in ("Location", "ETag"):
        assert again.header(h) == first.header(h), f"{h} differs\n{describe(first)}\n---\n{describe(again)}"


# ------------------------------------------------------------------ replay


def test_same_key_twice_is_one_effect_and_the_same_answer(api, keys, fresh_code):
    body = {"code": fresh_code, "name": "Idempotentia", "province": "Limburg"}
    k = ikey()
    first = post(api, "/v1/municipalities", body, keys.staff, k)
    created = assert_status(first, 201)
    assert first.header(REPLAYED) is None, describe(first)
    assert first.header("Location", ).endswith(created["id"]), describe(first)
    for _ in range(2):
        again = post(api, "/v1/municipalities", body, keys.staff, k)
        assert_status(again, 201)
        assert again.header(REPLAYED) == "true", describe(again)
        assert_same_answer(first, again)
    r = api.get(qs("/v1/municipalities", code=fresh_code), key=keys.staff)
    assert [m["id"] for m in r.json["items"]] == [created["id"]], describe(r)
    # Without the key the same body is a new request: here a conflict, the code is taken.
    assert_problem(api.post("/v1/municipalities", body, key=keys.staff), 409)


def test_every_replay_has_the_content_type_of_the_first_answer(api, keys, municipality):
    """Replays repeat the stored Content-Type (of a JSON body and of a problem body), every
    time. (Bodies of several sizes: a wrong Content-Type may depend on what memory is reused.)"""
    cases = []
    for size in (0, 300, 600, 1000, 1300, 2500, 4000):
        body = initiative_body(municipality)
        if size:
            body["description"] = "x" * size
        cases.append((ikey(), body))
    cases.append((ikey(), {"name": "x"}))
    firsts = []
    for k, body in cases:
        first = post(api, "/v1/initiatives", body, keys.staff, k)
        assert first.status in (201, 400), describe(first)
        firsts.append(first)
    wrong, n = [], 0
    for _ in range(30):
        for (k, body), first in zip(cases, firsts):
            r = post(api, "/v1/initiatives", body, keys.staff, k)
            n += 1
            assert r.header(REPLAYED) == "true" and r.body == first.body, describe(r)
            if r.header("Content-Type") != first.header("Content-Type"):
                wrong.append(repr(r.header("Content-Type")))
    assert not wrong, (f"{len(wrong)} of {n} replays had another Content-Type than the first "
                       f"answer's (application/json; charset=utf-8 or application/problem+json): "
                       f"{sorted(set(wrong))}")


def test_replay_of_a_nested_create(api, keys, municipality):
    w = make_werklab(api, keys.staff, municipality["id"], status="intake")
    body = {"name": "Herhaal Mij", "email": f"herhaal-{uuid.uuid4().hex[:6]}@example.nl"}
    k = ikey()
    path = f"/v1/werklabs/{w['id']}/participants"
    first = post(api, path, body, keys.staff, k)
    assert_status(first, 201)
    again = post(api, path, body, keys.staff, k)
    assert again.header(REPLAYED) == "true", describe(again)
    assert_same_answer(first, again)
    got = assert_status(api.get(f"/v1/werklabs/{w['id']}", key=keys.staff), 200)
    assert got["participantCount"] == 1, got


def test_same_key_other_body_or_path_is_422(api, keys, municipality):
    k = ikey()
    body = initiative_body(municipality)
    assert_status(post(api, "/v1/initiatives", body, keys.staff, k), 201)
    other = dict(body, name=body["name"] + " anders")
    assert_problem(post(api, "/v1/initiatives", other, keys.staff, k), 422)
    assert initiatives_named(api, keys.staff, municipality, other["name"]) == []
    # Whitespace is part of the body: the bytes are compared, not their meaning.
    r = api.post("/v1/initiatives", body=json.dumps(body, indent=1), key=keys.staff,
                 headers={"Idempotency-Key": k})
    assert_problem(r, 422)
    # Another path with the same key.
    r = post(api, "/v1/trainers", {"name": "T", "email": "t@example.nl",
                                   "expertise": ["residentInitiatives"]}, keys.staff, k)
    assert_problem(r, 422)
    assert len(initiatives_named(api, keys.staff, municipality, body["name"])) == 1


def test_4xx_answers_are_stored_and_replayed(api, keys, new_municipality, fresh_code):
    # A 400: the same again, replayed.
    k = ikey()
    bad = {"code": "XX", "name": ""}
    first = post(api, "/v1/municipalities", bad, keys.staff, k)
    assert_problem(first, 400)
    again = post(api, "/v1/municipalities", bad, keys.staff, k)
    assert_problem(again, 400)
    assert again.header(REPLAYED) == "true", describe(again)
    assert_same_answer(first, again)
    # A 409 stays the answer even when the conflict has gone away meanwhile: it is stored.
    taken = new_municipality(code=fresh_code)
    k = ikey()
    body = {"code": fresh_code, "name": "Tweede"}
    first = post(api, "/v1/municipalities", body, keys.staff, k)
    assert_problem(first, 409)
    assert_status(api.delete(f"/v1/municipalities/{taken['id']}", key=keys.staff), 204)
    again = post(api, "/v1/municipalities", body, keys.staff, k)
    assert again.status == 409 and again.header(REPLAYED) == "true", describe(again)
    assert_same_answer(first, again)
    r = api.get(qs("/v1/municipalities", code=fresh_code), key=keys.staff)
    assert r.json["items"] == [], describe(r)


def test_keys_belong_to_the_api_key(api, keys, municipality):
    made = []
    for n in range(2):
        r = api.post("/v1/api-keys", {"name": f"idem-{n}", "role": "staff"}, key=keys.admin)
        made.append(assert_status(r, 201)["key"])
    k = ikey()
    body = initiative_body(municipality)
    a = post(api, "/v1/initiatives", body, made[0], k)
    b = post(api, "/v1/initiatives", body, made[1], k)
    assert_status(a, 201)
    assert_status(b, 201)
    assert b.header(REPLAYED) is None, describe(b)
    assert a.json["id"] != b.json["id"]
    assert len(initiatives_named(api, keys.staff, municipality, body["name"])) == 2
    # And each key replays its own.
    again = post(api, "/v1/initiatives", body, made[1], k)
    assert again.header(REPLAYED) == "true" and json.loads(again.body)["id"] == b.json["id"], describe(again)


def test_public_posts_are_idempotent_per_address(api, keys, municipality):
    body = {"municipalityCode": municipality["code"], "contactName": "Openbaar",
            "email": f"open-{uuid.uuid4().hex[:6]}@example.nl", "message": "Graag een werklab."}
    k = ikey()
    first = post(api, "/v1/inquiries", body, None, k)
    assert_status(first, 201)
    again = post(api, "/v1/inquiries", body, None, k)
    assert again.header(REPLAYED) == "true", describe(again)
    assert_same_answer(first, again)
    r = api.get("/v1/inquiries?limit=200&sort=-createdAt", key=keys.staff)
    assert [i["id"] for i in r.json["items"] if i["email"] == body["email"]] == [first.json["id"]]


@pytest.mark.parametrize("value", ["", "a" * 256, "mit spatie", "tab\there"])
def test_invalid_key_header_is_400(api, keys, municipality, value):
    name = f"Ongeldig {uuid.uuid4().hex[:6]}"
    with api.raw() as c:
        body = json.dumps(initiative_body(municipality, name)).encode()
        c.send(raw_request("POST", "/v1/initiatives", {
            "Authorization": f"Bearer {keys.staff}", "Content-Type": "application/json",
            "Idempotency-Key": value, "Content-Length": str(len(body)), "Connection": "close"}, body))
        r = c.response("POST", "/v1/initiatives")
    assert_problem(r, 400)
    assert initiatives_named(api, keys.staff, municipality, name) == []


def test_non_ascii_key_is_400(api, keys, municipality):
    name = f"Ongeldig {uuid.uuid4().hex[:6]}"
    body = json.dumps(initiative_body(municipality, name)).encode()
    with api.raw() as c:
        head = (f"POST /v1/initiatives HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {keys.staff}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\nIdempotency-Key: ").encode() + "sleutel-é".encode() + b"\r\n\r\n"
        c.send(head + body)
        r = c.response("POST", "/v1/initiatives")
    assert_problem(r, 400)
    assert initiatives_named(api, keys.staff, municipality, name) == []


def test_longest_key_is_fine(api, keys, municipality):
    k = "k" * 255
    body = initiative_body(municipality)
    assert_status(post(api, "/v1/initiatives", body, keys.staff, k), 201)
    again = post(api, "/v1/initiatives", body, keys.staff, k)
    assert again.header(REPLAYED) == "true", describe(again)


def test_not_stored_for_data_subject_requests(api, keys):
    k = ikey()
    body = {"email": f"niemand-{uuid.uuid4().hex[:6]}@example.nl", "action": "erase"}
    for _ in range(2):
        r = post(api, "/v1/data-subject-requests", body, keys.admin, k)
        assert_status(r, 200)
        assert r.header(REPLAYED) is None, describe(r)
    # The key was not taken either: another body with it is not 422.
    r = post(api, "/v1/data-subject-requests", dict(body, email="ander@example.nl"), keys.admin, k)
    assert_status(r, 200)


# ------------------------------------------------------------------ concurrency


def test_retry_while_the_first_still_runs_is_409(api, keys, cluster, municipality):
    w = make_werklab(api, keys.staff, municipality["id"], status="intake")
    path = f"/v1/werklabs/{w['id']}/participants"
    body = {"name": "Trage Deelnemer", "email": f"traag-{uuid.uuid4().hex[:6]}@example.nl"}
    k = ikey()
    # The participant's insert locks the werklab's row: while psql holds it, the first POST waits.
    lock = HeldLock(cluster.url, f"SELECT 1 FROM werklabs WHERE id = '{w['id']}' FOR UPDATE;")
    results = {}

    def first():
        results["first"] = post(api, path, body, keys.staff, k, timeout=30)

    t = threading.Thread(target=first, daemon=True)
    try:
        t.start()
        lock.wait_for_waiters()
        assert t.is_alive(), f"the first POST did not wait for the lock: {results.get('first')}"
        retry = post(api, path, body, keys.staff, k, timeout=10)
        # Answered while the first still waits for the lock: the retry waited for nothing.
        assert t.is_alive(), f"the first POST ended before the retry was answered: {describe(retry)}"
    finally:
        lock.release()
    t.join(30)
    assert_problem(retry, 409)
    first_r = results["first"]
    assert_status(first_r, 201)
    assert first_r.header(REPLAYED) is None
    later = post(api, path, body, keys.staff, k)
    assert later.header(REPLAYED) == "true", describe(later)
    assert_same_answer(first_r, later)
    r = api.get(path, key=keys.staff)
    assert [p["id"] for p in r.json["items"]] == [first_r.json["id"]], describe(r)


def send_and_drop(api, key, path, body, idem):
    """Sends a POST and closes the socket without reading the answer."""
    data = json.dumps(body).encode()
    s = socket.create_connection((api.host, api.port), timeout=10)
    try:
        s.sendall(raw_request("POST", path, {
            "Authorization": f"Bearer {key}", "Content-Type": "application/json",
            "Idempotency-Key": idem, "Content-Length": str(len(data))}, data))
    finally:
        s.close()


def test_a_client_retrying_lost_answers_creates_each_thing_exactly_once(api, keys, municipality):
    """The client sends each POST, loses the answer (closes the socket before reading it, or
    reads it and throws it away) and retries with the same Idempotency-Key until it gets an
    answer it keeps. 30 creates → exactly 30 objects, each answered with its own id."""
    rng = random.Random(7)
    path = "/v1/initiatives"
    wanted, answers, attempts = {}, {}, 0
    for n in range(30):
        name = f"Eenmalig {n} {uuid.uuid4().hex[:6]}"
        body = initiative_body(municipality, name)
        k = ikey()
        wanted[name] = k
        losses = rng.choice([1, 1, 2, 3])
        for _ in range(losses):
            attempts += 1
            if rng.random() < 0.6:
                send_and_drop(api, keys.staff, path, body, k)
                if rng.random() < 0.5:
                    time.sleep(0.01)
            else:
                r = post(api, path, body, keys.staff, k)
                assert r.status in (201, 409), describe(r)  # 409: the dropped one still runs
        deadline = time.monotonic() + 10
        while True:
            attempts += 1
            r = post(api, path, body, keys.staff, k)
            if r.status != 409:
                break
            assert time.monotonic() < deadline, f"still 409 after 10s\n{describe(r)}"
            time.sleep(0.05)
        assert_status(r, 201)
        answer = json.loads(r.body)  # (parsed here: a replay's Content-Type is checked elsewhere)
        assert answer["name"] == name, describe(r)
        answers[name] = answer["id"]
    r = api.get(qs("/v1/initiatives", municipalityId=municipality["id"], limit=200), key=keys.staff)
    made = [i for i in r.json["items"] if i["name"] in wanted]
    names = sorted(i["name"] for i in made)
    assert names == sorted(wanted), (f"{attempts} POSTs for 30 creates made {len(made)} objects: "
                                     f"{len(set(names))} distinct names")
    assert {i["name"]: i["id"] for i in made} == answers


def test_5xx_answers_are_not_stored(werklabd, log_dir, keys, cluster, municipality):
    """A first attempt that ends in a server error (here: the lock wait outlasts a short
    statement timeout) leaves the key free: the retry makes the effect."""
    d = Daemon(werklabd, log_dir, name="idem-timeout", threads=2,
               env=werklabd.env(WERKLAB_STATEMENT_TIMEOUT_MS="300"), extra_args=["--key-rate-limit", "0"])
    try:
        d.wait_ready()
        api = d.api
        w = make_werklab(api, keys.staff, municipality["id"], status="intake")
        path = f"/v1/werklabs/{w['id']}/participants"
        body = {"name": "Na Een Fout", "email": f"fout-{uuid.uuid4().hex[:6]}@example.nl"}
        k = ikey()
        lock = HeldLock(cluster.url, f"SELECT 1 FROM werklabs WHERE id = '{w['id']}' FOR UPDATE;")
        try:
            first = post(api, path, body, keys.staff, k, timeout=15)
        finally:
            lock.release()
        assert first.status >= 500, describe(first)
        retry = post(api, path, body, keys.staff, k)
        assert_status(retry, 201)
        assert retry.header(REPLAYED) is None, describe(retry)
        assert [p["id"] for p in api.get(path, key=keys.staff).json["items"]] == [retry.json["id"]]
    finally:
        d.terminate(timeout=10)


def test_a_key_is_kept_24_hours(api, keys, cluster, municipality):
    body = initiative_body(municipality)
    k = ikey()
    first = post(api, "/v1/initiatives", body, keys.staff, k)
    assert_status(first, 201)

    def age(hours):
        out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", cluster.url, "-c",
                              f"UPDATE idempotency_keys SET created_at = now() - interval '{hours} hours' "
                              f"WHERE key = '{k}'"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr

    age(23)
    again = post(api, "/v1/initiatives", body, keys.staff, k)
    assert again.header(REPLAYED) == "true" and again.body == first.body, describe(again)
    age(25)
    later = post(api, "/v1/initiatives", body, keys.staff, k)
    assert_status(later, 201)
    assert later.header(REPLAYED) is None and later.json["id"] != first.json["id"], describe(later)
    assert len(initiatives_named(api, keys.staff, municipality, body["name"])) == 2

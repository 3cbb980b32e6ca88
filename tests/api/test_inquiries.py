"""Inquiries (aanvragen): a public web form posts them, staff read and answer them.

The session's daemon allows 10 public writes per minute per address, shared by the whole
suite, so only two tests here post without a key; the rate limit itself is tested on a daemon
of its own with a small limit.
"""

import time
import uuid

import pytest

from conftest import Daemon
from domain import make_werklab
from wlclient import assert_problem, assert_status, describe, qs

LIMIT = 6  # public writes per minute on the rate-limit daemon: a token every 10 s


def inquiry(**fields):
    tag = uuid.uuid4().hex[:6]
    body = {"municipalityName": "Zaltbommel", "contactName": "Marieke van Dijk",
            "email": f"marieke.{tag}@example.nl", "phone": "0418 123 456",
            "message": "Wij willen graag een werklab voor onze gemeente.",
            "preferredPeriod": "najaar"}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def post(api, key, **fields):
    r = api.post("/v1/inquiries", inquiry(**fields), key=key)
    assert r.status == 201, describe(r)
    return r.json


def test_public_post(api, keys, municipality):
    body = inquiry(municipalityCode=municipality["code"], municipalityName=None)
    r = api.post("/v1/inquiries", body)
    created = assert_status(r, 201)
    assert (r.header("Location") or "").endswith(f"/v1/inquiries/{created['id']}"), describe(r)
    assert created["status"] == "new"
    assert created["werklabId"] is None
    assert created["municipalityCode"] == municipality["code"]
    assert created["municipalityId"] == municipality["id"]
    # A public write is counted: the answer says how much is left.
    assert r.header("RateLimit-Limit") and r.header("RateLimit-Remaining") is not None, describe(r)
    assert r.header("RateLimit-Reset") is not None, describe(r)

    got = assert_status(api.get(f"/v1/inquiries/{created['id']}", key=keys.staff), 200)
    for k, v in body.items():
        assert got[k] == v, k
    assert got["version"] == 1


def test_public_post_needs_no_key_but_a_valid_body(api):
    r = api.post("/v1/inquiries", inquiry(municipalityName=None))
    assert_problem(r, 400, {"municipalityCode": "required"})


def test_staff_and_partner_may_post_too(api, keys):
    for key in (keys.staff, keys.admin, keys.partner):
        created = post(api, key, municipalityCode="GM0297", municipalityName=None)
        assert created["status"] == "new"
        assert created["municipalityId"], created  # GM0297 Zaltbommel is in the database


def test_name_only_and_unknown_code(api, keys):
    created = post(api, keys.staff, municipalityName="Gemeente Altena")
    assert created["municipalityCode"] is None and created["municipalityId"] is None
    # A well-formed code that no municipality has is kept; it resolves to nothing.
    r = api.get(qs("/v1/municipalities", code="GM0001"), key=keys.staff)
    assert assert_status(r, 200)["items"] == []
    created = post(api, keys.staff, municipalityCode="GM0001")
    assert created["municipalityCode"] == "GM0001" and created["municipalityId"] is None


def test_municipality_code_or_name_required(api, keys):
    r = api.post("/v1/inquiries", inquiry(municipalityName=None), key=keys.staff)
    p = assert_problem(r, 400, {"municipalityCode": "required"})
    assert "municipalityName" in p["invalidParams"][0]["reason"]
    r = api.post("/v1/inquiries", inquiry(municipalityName=None, municipalityCode="0297"),
                 key=keys.staff)
    assert_problem(r, 400, {"municipalityCode": "pattern"})


def test_required_and_invalid_fields_all_at_once(api, keys):
    r = api.post("/v1/inquiries", {"municipalityName": "Zaltbommel"}, key=keys.staff)
    assert_problem(r, 400, {"contactName": "required", "email": "required", "message": "required"})
    r = api.post("/v1/inquiries", inquiry(email="geen-adres", message="x" * 4001, phone="bel mij",
                                          contactName=""), key=keys.staff)
    assert_problem(r, 400, {"email": "format", "message": "maxLength", "phone": "pattern",
                            "contactName": "minLength"})


@pytest.mark.parametrize("field, value", [
    ("status", "new"), ("status", "converted"), ("werklabId", str(uuid.uuid4())),
    ("municipalityId", str(uuid.uuid4())), ("id", str(uuid.uuid4())), ("version", 1),
    ("createdAt", "2026-01-01T00:00:00Z"), ("priority", "hoog"),
])
def test_server_fields_not_on_post(api, keys, field, value):
    r = api.post("/v1/inquiries", inquiry(**{field: value}), key=keys.staff)
    assert_problem(r, 400, {field: "unknown"})


def test_staff_status_flow(api, keys, municipality):
    i = post(api, keys.staff, municipalityCode=municipality["code"])
    path = f"/v1/inquiries/{i['id']}"
    r = api.patch(path, {"status": "contacted"}, key=keys.staff)
    assert assert_status(r, 200)["status"] == "contacted"
    assert r.json["version"] == 2

    r = api.patch(path, {"status": "converted"}, key=keys.staff)
    assert_problem(r, 400, {"werklabId": "required"})
    assert api.get(path, key=keys.staff).json["status"] == "contacted"

    r = api.patch(path, {"status": "converted", "werklabId": str(uuid.uuid4())}, key=keys.staff)
    assert_problem(r, 400, {"werklabId": "reference"})

    r = api.patch(path, {"status": "pending"}, key=keys.staff)
    assert_problem(r, 400, {"status": "enum"})

    w = make_werklab(api, keys.staff, municipality["id"])
    r = api.patch(path, {"status": "converted", "werklabId": w["id"]}, key=keys.admin)
    got = assert_status(r, 200)
    assert (got["status"], got["werklabId"]) == ("converted", w["id"])

    # A converted inquiry keeps its werklab.
    r = api.patch(path, {"werklabId": None}, key=keys.staff)
    assert_problem(r, 400, {"werklabId": "required"})
    # The werklab an inquiry became cannot be deleted under it.
    r = api.delete(f"/v1/werklabs/{w['id']}", key=keys.staff)
    assert_problem(r, 409, conflicts={"referenced"})

    r = api.patch(path, {"contactName": "M. van Dijk-de Boer"}, key=keys.staff)
    assert assert_status(r, 200)["contactName"] == "M. van Dijk-de Boer"


def test_close_without_werklab(api, keys):
    i = post(api, keys.staff)
    r = api.patch(f"/v1/inquiries/{i['id']}", {"status": "closed"}, key=keys.staff)
    got = assert_status(r, 200)
    assert got["status"] == "closed" and got["werklabId"] is None


def test_staff_list_and_filter(api, keys):
    a = post(api, keys.staff)
    b = post(api, keys.staff)
    r = api.patch(f"/v1/inquiries/{b['id']}", {"status": "closed"}, key=keys.staff)
    assert_status(r, 200)
    items, _ = api.list_all("/v1/inquiries", keys.staff)
    ids = {i["id"] for i in items}
    assert {a["id"], b["id"]} <= ids
    closed, _ = api.list_all("/v1/inquiries", keys.staff, {"status": "closed"})
    assert b["id"] in {i["id"] for i in closed} and a["id"] not in {i["id"] for i in closed}
    assert all(i["status"] == "closed" for i in closed)
    both, _ = api.list_all("/v1/inquiries", keys.staff, {"status": "new,closed"})
    assert {a["id"], b["id"]} <= {i["id"] for i in both}
    r = api.get(qs("/v1/inquiries", status="open"), key=keys.staff)
    assert_problem(r, 400, {"status": "enum"})
    r = api.get(qs("/v1/inquiries", sort="-status,createdAt", limit=5), key=keys.staff)
    assert_status(r, 200)


def test_partner_and_no_key_cannot_read(api, keys):
    i = post(api, keys.staff)
    for path in ("/v1/inquiries", f"/v1/inquiries/{i['id']}"):
        assert_problem(api.get(path, key=keys.partner), 403)
        r = api.get(path)
        assert_problem(r, 401)
        assert (r.header("WWW-Authenticate") or "").startswith("Bearer"), describe(r)
    assert_problem(api.patch(f"/v1/inquiries/{i['id']}", {"status": "closed"}, key=keys.partner),
                   403)
    assert_problem(api.patch(f"/v1/inquiries/{i['id']}", {"status": "closed"}), 401)


def test_no_delete(api, keys):
    i = post(api, keys.staff)
    r = api.delete(f"/v1/inquiries/{i['id']}", key=keys.admin)
    assert_problem(r, 405)
    allow = {m.strip() for m in r.header("Allow").split(",")}
    assert allow >= {"GET", "PATCH", "OPTIONS"} and "DELETE" not in allow, allow
    r = api.delete("/v1/inquiries", key=keys.admin)
    assert_problem(r, 405)
    allow = {m.strip() for m in r.header("Allow").split(",")}
    assert allow >= {"GET", "POST", "OPTIONS"} and "DELETE" not in allow, allow
    assert api.get(f"/v1/inquiries/{i['id']}", key=keys.staff).status == 200


# ------------------------------------------------------------------ the rate limit


@pytest.fixture(scope="module")
def limited(werklabd, keys, log_dir):
    """A daemon of its own whose public writes are limited to LIMIT per minute."""
    d = Daemon(werklabd, log_dir, name="ratelimit", threads=2,
               extra_args=("--public-write-limit", str(LIMIT)))
    try:
        d.wait_ready()
        yield d
    finally:
        d.terminate(timeout=5)


def test_public_posts_are_rate_limited_per_address(limited, keys):
    api = limited.api
    remaining = []
    for n in range(LIMIT):
        r = api.post("/v1/inquiries", inquiry())
        assert r.status == 201, f"public post {n + 1} of {LIMIT}\n{describe(r)}"
        assert r.header("RateLimit-Limit") == str(LIMIT), describe(r)
        remaining.append(int(r.header("RateLimit-Remaining")))
        assert int(r.header("RateLimit-Reset")) >= 1, describe(r)
    assert remaining == list(range(LIMIT - 1, -1, -1)), remaining

    r = api.post("/v1/inquiries", inquiry())
    p = assert_problem(r, 429)
    assert "try again" in p["detail"], p
    retry = int(r.header("Retry-After"))
    assert 1 <= retry <= 60 // LIMIT, describe(r)
    assert r.header("RateLimit-Limit") == str(LIMIT), describe(r)
    assert r.header("RateLimit-Remaining") == "0", describe(r)
    assert int(r.header("RateLimit-Reset")) >= retry, describe(r)

    # Reading is not limited; neither are writes with a key.
    assert api.get("/v1/testimonials").status == 200
    assert api.get("/healthz").status == 200
    # (A key has a budget of its own, per key and much larger: --key-rate-limit.)
    for _ in range(LIMIT + 2):
        r = api.post("/v1/inquiries", inquiry(), key=keys.staff)
        assert r.status == 201, describe(r)
        assert r.header("RateLimit-Limit") != str(LIMIT), describe(r)

    # After Retry-After seconds one more public post goes through.
    time.sleep(retry + 0.2)
    r = api.post("/v1/inquiries", inquiry())
    assert r.status == 201, describe(r)
    assert r.header("RateLimit-Remaining") == "0", describe(r)
    assert_problem(api.post("/v1/inquiries", inquiry()), 429)

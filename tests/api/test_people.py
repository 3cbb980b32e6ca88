"""Who is asking: GET /v1/me for keys and tokens; audit entries, the log line, the audit log's
subject filter and a data subject's export name the person (a token's sub and client) where
they name a key for machines."""

import uuid

from domain import make_trainer
from wlclient import assert_problem, assert_status

ME = {"role", "keyId", "subject", "client", "name", "municipalities", "trainerId"}


def me(api, key):
    got = assert_status(api.get("/v1/me", key=key), 200)
    assert set(got) == ME, got
    return got


def test_me_for_each_key(api, keys):
    for role in ("admin", "staff", "partner"):
        got = me(api, keys[role])
        assert got == {"role": role, "keyId": keys.ids[role], "subject": None, "client": None,
                       "name": None, "municipalities": None, "trainerId": None}, got


def test_me_for_a_limited_partner_key_lists_its_codes(api, keys, new_municipality):
    a, b = new_municipality(), new_municipality()
    r = api.post("/v1/api-keys", {"name": f"me-{uuid.uuid4().hex[:6]}", "role": "partner",
                                  "municipalities": [b["code"], a["code"]]}, key=keys.admin)
    created = assert_status(r, 201)
    got = me(api, created["key"])
    assert got["role"] == "partner" and got["keyId"] == created["id"], got
    assert got["municipalities"] == sorted([a["code"], b["code"]]), got


def test_me_needs_a_key_or_token(api):
    r = api.get("/v1/me")
    assert_problem(r, 401)
    assert r.header("Cache-Control") is not None


def test_me_for_each_token(api, keys, oidc):
    for client, role in (("werklab-admin", "admin"), ("werklab-staff", "staff")):
        got = me(api, oidc.token(client))
        assert got["role"] == role and got["keyId"] is None, got
        assert got["subject"] == client and got["client"] == client, got
        assert got["municipalities"] is None and got["trainerId"] is None, got
    got = me(api, oidc.token("werklab-partner"))
    assert got["role"] == "partner" and got["municipalities"] == ["GM0297"], got
    token = oidc.mint({"sub": "p-" + uuid.uuid4().hex, "roles": ["lsa-staff"], "azp": "staff-tool",
                       "preferred_username": "jdevries"})
    got = me(api, token)
    assert (got["client"], got["name"]) == ("staff-tool", "jdevries"), got
    token = oidc.mint({"sub": "p-" + uuid.uuid4().hex, "roles": ["lsa-staff"], "client_id": "tool",
                       "name": "Jan de Vries", "preferred_username": "jdevries"})
    got = me(api, token)
    assert (got["client"], got["name"]) == ("tool", "Jan de Vries"), got


def test_me_for_a_trainer(api, keys, oidc):
    subject = "t-" + uuid.uuid4().hex
    trainer = make_trainer(api, keys.admin, subject=subject)
    got = me(api, oidc.mint({"sub": subject, "roles": ["lsa-trainer"], "name": "Trainer"}))
    assert got["role"] == "trainer" and got["trainerId"] == trainer["id"], got
    assert got["subject"] == subject and got["name"] == "Trainer", got


def entries(api, key, **params):
    items, _ = api.list_all("/v1/audit-log", key, params)
    return items


def test_a_persons_writes_and_reads_are_audited_by_sub_and_client(api, keys, oidc, daemon):
    subject = "p-" + uuid.uuid4().hex
    token = oidc.mint({"sub": subject, "roles": ["lsa-staff"], "azp": "lsa-staff-tool"})
    rid = "people-" + uuid.uuid4().hex[:8]
    created = assert_status(api.post("/v1/trainers", {
        "name": "Audit Trainer", "email": f"audit-{uuid.uuid4().hex[:6]}@example.nl",
        "expertise": ["residentInitiatives"]}, key=token, headers={"X-Request-Id": rid}), 201)
    assert_status(api.get(f"/v1/trainers/{created['id']}", key=token), 200)  # personal data: read
    got = entries(api, keys.admin, subject=subject)
    assert [(e["action"], e["resourceId"], e["keyId"], e["client"]) for e in got] == [
        ("create", created["id"], None, "lsa-staff-tool"),
        ("read", created["id"], None, "lsa-staff-tool")], got
    assert entries(api, keys.admin, subject="p-" + uuid.uuid4().hex) == []
    [line] = daemon.wait_log(lambda l: l.get("requestId") == rid)
    assert line["subject"] == subject and line["client"] == "lsa-staff-tool", line
    assert line.get("keyId") is None, line


def test_export_holds_the_persons_audit_entries_as_actor(api, keys, oidc):
    subject = "t-" + uuid.uuid4().hex
    email = f"actor-{uuid.uuid4().hex[:8]}@example.nl"
    trainer = make_trainer(api, keys.admin, subject=subject, email=email)
    token = oidc.mint({"sub": subject, "roles": ["lsa-trainer"]})
    assert_status(api.get(f"/v1/trainers/{trainer['id']}", key=token), 200)
    export = lambda body: assert_status(api.post("/v1/data-subject-requests", body, key=keys.admin), 200)
    got = export({"email": email, "action": "export"})
    mine = got["auditEntriesAsActor"]
    assert mine and all(e["subject"] == subject for e in mine), got
    assert any(e["action"] == "read" and e["resourceId"] == trainer["id"] for e in mine), mine
    # A staff member is known by sub only: the sub is given with the request.
    staff_sub = "p-" + uuid.uuid4().hex
    staff = oidc.mint({"sub": staff_sub, "roles": ["lsa-staff"]})
    assert_status(api.get(f"/v1/trainers/{trainer['id']}", key=staff), 200)
    got = export({"email": f"nobody-{uuid.uuid4().hex[:6]}@example.nl", "action": "export",
                  "subject": staff_sub})
    assert [e["subject"] for e in got["auditEntriesAsActor"]] == [staff_sub], got
    assert got["trainers"] == [], got


def test_a_person_has_idempotency_keys_of_their_own(api, keys, oidc):
    one = oidc.mint({"sub": "p-" + uuid.uuid4().hex, "roles": ["lsa-staff"]})
    two = oidc.mint({"sub": "p-" + uuid.uuid4().hex, "roles": ["lsa-staff"]})
    key = "idem-" + uuid.uuid4().hex
    body = {"name": "Idem", "email": f"idem-{uuid.uuid4().hex[:6]}@example.nl",
            "expertise": ["residentInitiatives"]}
    first = assert_status(api.post("/v1/trainers", body, key=one, headers={"Idempotency-Key": key}), 201)
    again = api.post("/v1/trainers", body, key=one, headers={"Idempotency-Key": key})
    assert again.status == 201 and again.json["id"] == first["id"]
    other = assert_status(api.post("/v1/trainers", body | {"email": "x" + body["email"]}, key=two,
                                   headers={"Idempotency-Key": key}), 201)
    assert other["id"] != first["id"]


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_valid_traceparent_puts_its_trace_id_in_the_log_line(api, keys, daemon):
    cases = {
        f"00-{TRACE}-00f067aa0ba902b7-01": TRACE,
        f"01-{TRACE}-00f067aa0ba902b7-00-later-fields": TRACE,  # a later version may add fields
        f"00-{TRACE}-00f067aa0ba902b7-01-x": None,  # version 00 has exactly four
        f"ff-{TRACE}-00f067aa0ba902b7-01": None,  # version ff is invalid
        f"00-{'0' * 32}-00f067aa0ba902b7-01": None,  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01": None,  # all-zero parent id
        f"00-{TRACE.upper()}-00f067aa0ba902b7-01": None,  # upper case
        f"00-{TRACE[:-1]}-00f067aa0ba902b7-01": None,
        "garbage": None,
    }
    for header, want in cases.items():
        rid = "trace-" + uuid.uuid4().hex[:8]
        assert_status(api.get("/v1/municipalities?limit=1", key=keys.staff,
                              headers={"traceparent": header, "X-Request-Id": rid}), 200)
        [line] = daemon.wait_log(lambda l: l.get("requestId") == rid)
        assert line.get("traceId") == want, (header, line)


def test_a_refused_key_is_logged_with_a_reason_and_without_the_key(api, daemon):
    rid = "refused-" + uuid.uuid4().hex[:8]
    bad = "wlk_" + "0" * 64
    r = api.get("/v1/municipalities?limit=1", key=bad, headers={"X-Request-Id": rid})
    assert_problem(r, 401)
    assert 'error="invalid_token"' in r.header("WWW-Authenticate"), r.header("WWW-Authenticate")
    [line] = daemon.wait_log(lambda l: l.get("requestId") == rid)
    assert line.get("authRefused"), line
    assert bad not in daemon.log_text()


def test_erasure_unlinks_the_trainer_from_the_persons_account(api, keys, oidc):
    subject = "t-" + uuid.uuid4().hex
    email = f"unlink-{uuid.uuid4().hex[:8]}@example.nl"
    trainer = make_trainer(api, keys.admin, subject=subject, email=email)
    token = oidc.mint({"sub": subject, "roles": ["lsa-trainer"]})
    assert me(api, token)["trainerId"] == trainer["id"]
    got = assert_status(api.post("/v1/data-subject-requests", {"email": email, "action": "erase"},
                                 key=keys.admin), 200)
    assert got["changed"]["trainers"] == 1, got
    assert assert_status(api.get(f"/v1/trainers/{trainer['id']}", key=keys.admin), 200)["subject"] is None
    # Signed in again (a new token, so no cached identity): no trainer record is linked any more.
    again = oidc.mint({"sub": subject, "roles": ["lsa-trainer"], "jti": uuid.uuid4().hex})
    assert_problem(api.get("/v1/me", key=again), 403)

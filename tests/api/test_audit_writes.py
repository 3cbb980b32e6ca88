"""Every successful write commits its audit entry in the transaction of its effect, and every
other success the log records (a read that showed personal data, an export, an idempotent
replay) is in the log by the time its answer arrives.

Each write path is checked twice: once succeeding (its entry is there the moment the answer is,
without waiting for anything), and once with the transaction failing at its very end (a deferred
constraint trigger the test adds makes the COMMIT fail, after the effect and the entry were
written): then neither the effect nor a successful entry is in the database, only the entry of
the refused request (503), which is written asynchronously.

The database is read directly as werklabd's own role (`werklab`, which owns the tables): the
audit log has no filter by request id.
"""

import contextlib
import subprocess
import time
import uuid

import pytest

from conftest import Daemon
from domain import make_participant, make_session, make_trainer, make_werklab
from wlclient import assert_problem, assert_status, describe

MO = "municipalOrganisation"
S1 = ("2026-05-01T09:00:00Z", "2026-05-01T12:00:00Z")


def psql(url, sql):
    out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, (sql, out.stderr)
    return out.stdout


def rid():
    return f"audit-w-{uuid.uuid4().hex}"


def logged(cluster, request_id):
    """The entries of one request: (action, resource, resourceId or "", status), oldest first."""
    out = psql(cluster.url, "SELECT action, resource, coalesce(resource_id::text, ''), status "
                            f"FROM audit_log WHERE request_id = '{request_id}' ORDER BY at, id")
    return [(a, r, i, int(s)) for a, r, i, s in (line.split("|") for line in out.splitlines())]


def refused_only(cluster, request_id, action, resource, status=503):
    """A request whose transaction was rolled back: in the log only with its refusal, once the
    writer has written that (asynchronously)."""
    deadline = time.monotonic() + 10
    while not logged(cluster, request_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    got = logged(cluster, request_id)
    assert [(a, r, s) for a, r, _, s in got] == [(action, resource, status)], got


@contextlib.contextmanager
def doomed(cluster, table, events, condition):
    """While it lasts, a transaction that writes a row of table matching condition (a WHEN
    clause on NEW or OLD) fails at COMMIT, after everything it did."""
    name = f"audit_doom_{uuid.uuid4().hex[:10]}"
    psql(cluster.url,
         f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
         f"$$ BEGIN RAISE EXCEPTION 'rolled back by the test'; END $$; "
         f"CREATE CONSTRAINT TRIGGER {name} AFTER {events} ON {table} DEFERRABLE INITIALLY "
         f"DEFERRED FOR EACH ROW WHEN ({condition}) EXECUTE FUNCTION {name}()")
    try:
        yield
    finally:
        psql(cluster.url, f"DROP TRIGGER {name} ON {table}; DROP FUNCTION {name}()")


def with_id(request_id):
    return {"X-Request-Id": request_id}


# ------------------------------------------------------------------ API keys


def test_key_creation(api, keys, cluster):
    name = f"audit-key-{uuid.uuid4().hex[:8]}"
    request_id = rid()
    k = assert_status(api.post("/v1/api-keys", {"name": name, "role": "partner"}, key=keys.admin,
                               headers=with_id(request_id)), 201)
    assert logged(cluster, request_id) == [("create", "/v1/api-keys", k["id"], 201)]

    name = f"audit-doomed-{uuid.uuid4().hex[:8]}"
    request_id = rid()
    with doomed(cluster, "api_keys", "INSERT", f"NEW.name = '{name}'"):
        r = api.post("/v1/api-keys", {"name": name, "role": "partner"}, key=keys.admin,
                     headers=with_id(request_id))
    assert_problem(r, 503)
    assert b"wlk_" not in r.body, "the secret of a key that does not exist was shown"
    assert psql(cluster.url, f"SELECT count(*) FROM api_keys WHERE name = '{name}'").strip() == "0"
    refused_only(cluster, request_id, "create", "/v1/api-keys")


def test_key_revocation(api, keys, cluster):
    made = [assert_status(api.post("/v1/api-keys", {"name": f"audit-revoke-{n}", "role": "partner"},
                                   key=keys.admin), 201) for n in range(2)]
    request_id = rid()
    assert_status(api.delete(f"/v1/api-keys/{made[0]['id']}", key=keys.admin,
                             headers=with_id(request_id)), 204)
    assert logged(cluster, request_id) == [("delete", "/v1/api-keys/{id}", made[0]["id"], 204)]
    assert_problem(api.get("/v1/municipalities?limit=1", key=made[0]["key"]), 401)

    request_id = rid()
    with doomed(cluster, "api_keys", "UPDATE", f"NEW.id = '{made[1]['id']}'"):
        r = api.delete(f"/v1/api-keys/{made[1]['id']}", key=keys.admin, headers=with_id(request_id))
    assert_problem(r, 503)
    assert assert_status(api.get(f"/v1/api-keys/{made[1]['id']}", key=keys.admin), 200)[
        "revokedAt"] is None
    assert_status(api.get("/v1/municipalities?limit=1", key=made[1]["key"]), 200)
    refused_only(cluster, request_id, "delete", "/v1/api-keys/{id}")


def test_a_key_made_on_the_command_line_is_recorded(werklabd, cluster):
    name = f"audit-cli-{uuid.uuid4().hex[:8]}"
    werklabd.create_key("staff", name)
    key_id = psql(cluster.url, f"SELECT id FROM api_keys WHERE name = '{name}'").strip()
    out = psql(cluster.url, "SELECT action, resource, status, key_id IS NULL FROM audit_log "
                            f"WHERE resource_id = '{key_id}'")
    assert out.splitlines() == ["create|werklabd create-key|201|t"], out


# ------------------------------------------------------------------ trainer assignments


@pytest.fixture
def werklab(api, keys, municipality):
    return make_werklab(api, keys.admin, municipality["id"], status="intake")


def trainers_of(api, keys, w):
    return assert_status(api.get(f"/v1/werklabs/{w['id']}/trainers", key=keys.admin), 200)["items"]


def test_trainer_assignment(api, keys, cluster, municipality):
    t = make_trainer(api, keys.admin)
    w, doomed_w = (make_werklab(api, keys.admin, municipality["id"]) for _ in range(2))
    resource = "/v1/werklabs/{id}/trainers/{role}"
    request_id = rid()
    assert_status(api.put(f"/v1/werklabs/{w['id']}/trainers/{MO}", {"trainerId": t["id"]},
                          key=keys.staff, headers=with_id(request_id)), 200)
    assert logged(cluster, request_id) == [("replace", resource, w["id"], 200)]

    request_id = rid()
    with doomed(cluster, "werklab_trainers", "INSERT OR UPDATE", f"NEW.werklab_id = '{doomed_w['id']}'"):
        r = api.put(f"/v1/werklabs/{doomed_w['id']}/trainers/{MO}", {"trainerId": t["id"]},
                    key=keys.staff, headers=with_id(request_id))
    assert_problem(r, 503)
    assert trainers_of(api, keys, doomed_w) == []
    refused_only(cluster, request_id, "replace", resource)

    request_id = rid()
    with doomed(cluster, "werklab_trainers", "DELETE", f"OLD.werklab_id = '{w['id']}'"):
        r = api.delete(f"/v1/werklabs/{w['id']}/trainers/{MO}", key=keys.staff,
                       headers=with_id(request_id))
    assert_problem(r, 503)
    assert [a["trainerId"] for a in trainers_of(api, keys, w)] == [t["id"]]
    refused_only(cluster, request_id, "delete", resource)

    request_id = rid()
    assert_status(api.delete(f"/v1/werklabs/{w['id']}/trainers/{MO}", key=keys.staff,
                             headers=with_id(request_id)), 204)
    assert logged(cluster, request_id) == [("delete", resource, w["id"], 204)]
    assert trainers_of(api, keys, w) == []


# ------------------------------------------------------------------ attendance


def attendance_of(api, keys, s):
    return assert_status(api.get(f"/v1/sessions/{s['id']}/attendance", key=keys.admin), 200)["items"]


def test_attendance(api, keys, cluster, werklab):
    p = make_participant(api, keys.admin, werklab["id"])
    s = make_session(api, keys.admin, werklab["id"], 1, *S1)
    body = [{"participantId": p["id"], "status": "present"}]
    resource = "/v1/sessions/{id}/attendance"
    request_id = rid()
    r = api.put(f"/v1/sessions/{s['id']}/attendance", body, key=keys.staff,
                headers=with_id(request_id))
    assert_status(r, 200)
    assert logged(cluster, request_id) == [("replace", resource, s["id"], 200)]
    version = psql(cluster.url, f"SELECT version FROM sessions WHERE id = '{s['id']}'").strip()
    assert r.header("ETag") == f'"{version}"', describe(r)

    request_id = rid()
    with doomed(cluster, "attendance", "INSERT", f"NEW.session_id = '{s['id']}'"):
        r = api.put(f"/v1/sessions/{s['id']}/attendance", [dict(body[0], status="absent")],
                    key=keys.staff, headers=with_id(request_id))
    assert_problem(r, 503)
    assert r.header("ETag") is None, describe(r)
    assert attendance_of(api, keys, s) == body
    refused_only(cluster, request_id, "replace", resource)


def test_attendance_that_cannot_be_read_back_changes_nothing(werklabd, keys, cluster, log_dir,
                                                            api, werklab):
    """The list read back after the replacement fails: the replacement is rolled back, and the
    worker's connection is left outside any transaction for the requests after it. One worker
    thread, so that those requests are certainly on its connection."""
    p = make_participant(api, keys.admin, werklab["id"])
    s = make_session(api, keys.admin, werklab["id"], 1, *S1)
    path = f"/v1/sessions/{s['id']}/attendance"
    before = [{"participantId": p["id"], "status": "present"}]
    assert_status(api.put(path, before, key=keys.admin), 200)
    version = psql(cluster.url, f"SELECT version FROM sessions WHERE id = '{s['id']}'").strip()

    d = Daemon(werklabd, log_dir, name="attendance-leak", threads=1,
               extra_args=["--key-rate-limit", "0"])
    try:
        d.wait_ready()
        request_id = rid()
        # The replacement needs session_id (DELETE ... WHERE session_id); the list read back
        # needs participant_id and status too.
        psql(cluster.url, "REVOKE SELECT ON attendance FROM werklab; "
                          "GRANT SELECT (session_id) ON attendance TO werklab")
        try:
            r = d.api.put(path, [dict(before[0], status="absent")], key=keys.staff,
                          headers=with_id(request_id))
        finally:
            psql(cluster.url, "GRANT SELECT ON attendance TO werklab; "
                              "REVOKE SELECT (session_id) ON attendance FROM werklab")
        assert_problem(r, 500)
        # Nothing of it was committed: the list, the session's version, no successful entry.
        for _ in range(3):
            assert attendance_of(d.api, keys, s) == before
        assert psql(cluster.url,
                    f"SELECT version FROM sessions WHERE id = '{s['id']}'").strip() == version
        refused_only(cluster, request_id, "replace", "/v1/sessions/{id}/attendance", 500)
        # The one worker goes on normally: a write and reads on its connection.
        after = [dict(before[0], status="excused")]
        got = assert_status(d.api.put(path, after, key=keys.staff), 200)
        assert got["items"] == after
        assert attendance_of(d.api, keys, s) == after
        assert_status(d.api.get("/v1/municipalities?limit=5", key=keys.staff), 200)
        assert_status(d.api.get("/readyz"), 200)
    finally:
        assert d.terminate() == 0, d.log_text()[-3000:]


# ------------------------------------------------------------------ data subjects


def subject_request(api, keys, email, action, request_id):
    return api.post("/v1/data-subject-requests", {"email": email, "action": action},
                    key=keys.admin, headers=with_id(request_id))


def test_erasure(api, keys, cluster, werklab):
    p = make_participant(api, keys.admin, werklab["id"])
    resource = "/v1/data-subject-requests"
    request_id = rid()
    with doomed(cluster, "participants", "UPDATE", f"NEW.id = '{p['id']}'"):
        r = subject_request(api, keys, p["email"], "erase", request_id)
    assert_problem(r, 503)
    assert psql(cluster.url, f"SELECT name FROM participants WHERE id = '{p['id']}'").strip() == p["name"]
    refused_only(cluster, request_id, "erase", resource)

    request_id = rid()
    got = assert_status(subject_request(api, keys, p["email"], "erase", request_id), 200)
    assert got["changed"]["participants"] == 1, got
    assert logged(cluster, request_id) == [("erase", resource, "", 200)]


def test_export_is_in_the_log_when_it_is_answered(api, keys, cluster, werklab):
    p = make_participant(api, keys.admin, werklab["id"])
    request_id = rid()
    got = assert_status(subject_request(api, keys, p["email"], "export", request_id), 200)
    assert [x["id"] for x in got["participants"]] == [p["id"]]
    assert logged(cluster, request_id) == [("export", "/v1/data-subject-requests", "", 200)]


# ------------------------------------------------------------------ reads and replays


def test_a_read_of_personal_data_is_in_the_log_when_it_is_answered(api, keys, cluster,
                                                                   municipality, werklab):
    request_id = rid()
    got = assert_status(api.get(f"/v1/municipalities/{municipality['id']}", key=keys.staff,
                                headers=with_id(request_id)), 200)
    assert got["contact"]["email"], got
    assert logged(cluster, request_id) == [("read", "/v1/municipalities/{id}", municipality["id"], 200)]

    make_participant(api, keys.admin, werklab["id"])
    path = f"/v1/werklabs/{werklab['id']}/participants"
    for accept in ("application/json", "text/csv"):
        request_id = rid()
        r = api.get(path, key=keys.staff, headers={"Accept": accept, "X-Request-Id": request_id})
        assert r.status == 200 and b"@example.nl" in r.body, describe(r)
        assert logged(cluster, request_id) == [("read", "/v1/werklabs/{id}/participants",
                                                werklab["id"], 200)]


def test_an_idempotent_replay_is_in_the_log_when_it_is_answered(api, keys, cluster, werklab):
    path = f"/v1/werklabs/{werklab['id']}/participants"
    body = {"name": "Deelnemer Herhaling", "email": f"herhaling-{uuid.uuid4().hex[:8]}@example.nl"}
    idem = {"Idempotency-Key": uuid.uuid4().hex}
    first, replay = rid(), rid()
    p = assert_status(api.post(path, body, key=keys.staff, headers=dict(idem, **with_id(first))), 201)
    assert logged(cluster, first) == [("create", path.replace(werklab["id"], "{id}"), p["id"], 201)]
    r = api.post(path, body, key=keys.staff, headers=dict(idem, **with_id(replay)))
    assert r.status == 201 and r.header("Idempotent-Replayed") == "true", describe(r)
    assert r.json["email"] == body["email"]
    assert logged(cluster, replay) == [("create", path.replace(werklab["id"], "{id}"), p["id"], 201)]


def test_no_personal_data_without_its_entry(api, keys, cluster, municipality):
    """When the entry cannot be committed, the answer is 503, without the data."""
    request_id = rid()
    psql(cluster.url, "REVOKE INSERT ON audit_log FROM werklab")
    try:
        r = api.get(f"/v1/municipalities/{municipality['id']}", key=keys.staff,
                    headers=with_id(request_id))
    finally:
        psql(cluster.url, "GRANT INSERT ON audit_log TO werklab")
    assert_problem(r, 503)
    assert r.header("Retry-After"), describe(r)
    assert b"example.nl" not in r.body and b"Jan" not in r.body, describe(r)
    assert logged(cluster, request_id) == []
    # The same read, with the log writable again, is answered and recorded.
    request_id = rid()
    assert_status(api.get(f"/v1/municipalities/{municipality['id']}", key=keys.staff,
                          headers=with_id(request_id)), 200)
    assert len(logged(cluster, request_id)) == 1

"""The audit log: GET /v1/audit-log (admin only).

Every write (also refused ones) and every GET that showed personal data to a staff or admin key
is recorded (a refused write asynchronously, just after its answer; see test_audit_writes.py for
what is committed before the answer): {id, at, keyId, action, resource (the route
pattern), resourceId, status, requestId}. Filters keyId, resource, resourceId, action, from, to,
limit, cursor; oldest first. The database role of the server cannot change or remove entries.
A request id is kept only when it cannot be personal data.
"""

import datetime
import subprocess
import time
import uuid

import pytest

from domain import make_participant, make_werklab
from wlclient import TIMESTAMP_RE, assert_problem, assert_status, describe, qs

FIELDS = {"id", "at", "keyId", "subject", "client", "action", "resource", "resourceId", "status",
          "requestId"}


def entries(api, admin, **params):
    items, _ = api.list_all("/v1/audit-log", admin, params)
    return items


def wait_entries(api, admin, n=1, timeout=2.5, **params):
    deadline = time.monotonic() + timeout
    while True:
        found = entries(api, admin, **params)
        if len(found) >= n or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def settle():
    """Long enough for an entry to have been written if one were coming."""
    time.sleep(1.0)


def rid():
    return f"audit-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def own(api, keys):
    """A staff key of its own, so that its entries are only this module's."""
    r = api.post("/v1/api-keys", {"name": f"audit-staff-{uuid.uuid4().hex[:6]}", "role": "staff"},
                 key=keys.admin)
    k = assert_status(r, 201)
    return {"key": k["key"], "id": k["id"]}


def test_a_write_is_recorded(api, keys, own, fresh_code):
    request_id = rid()
    r = api.post("/v1/municipalities", {"code": fresh_code, "name": "Auditdorp"}, key=own["key"],
                 headers={"X-Request-Id": request_id})
    m = assert_status(r, 201)
    got = wait_entries(api, keys.admin, resourceId=m["id"])
    assert len(got) == 1, got
    e = got[0]
    assert set(e) == FIELDS, e
    assert isinstance(e["id"], int) and TIMESTAMP_RE.match(e["at"]), e
    assert e["keyId"] == own["id"] and e["action"] == "create" and e["resource"] == "/v1/municipalities", e
    assert e["resourceId"] == m["id"] and e["status"] == 201 and e["requestId"] == request_id, e

    request_id = rid()
    r = api.patch(f"/v1/municipalities/{m['id']}", {"notes": "bijgewerkt"}, key=own["key"],
                  headers={"X-Request-Id": request_id})
    assert_status(r, 200)
    got = wait_entries(api, keys.admin, n=2, resourceId=m["id"])
    assert [(e["action"], e["resource"], e["status"], e["requestId"]) for e in got][1] == (
        "update", "/v1/municipalities/{id}", 200, request_id), got
    # A refused write is recorded too, with its status.
    assert_problem(api.patch(f"/v1/municipalities/{m['id']}", {"name": ""}, key=own["key"]), 400)
    assert_problem(api.delete(f"/v1/municipalities/{m['id']}", key=keys.partner), 403)
    assert_status(api.delete(f"/v1/municipalities/{m['id']}", key=own["key"]), 204)
    got = wait_entries(api, keys.admin, n=5, resourceId=m["id"])
    assert [(e["action"], e["status"], e["keyId"]) for e in got] == [
        ("create", 201, own["id"]), ("update", 200, own["id"]), ("update", 400, own["id"]),
        ("delete", 403, keys.ids["partner"]), ("delete", 204, own["id"])], got
    at = [datetime.datetime.fromisoformat(e["at"].replace("Z", "+00:00")) for e in got]
    assert at == sorted(at), "not oldest first"


def test_refused_writes_are_in_the_order_they_were_answered(api, keys, own, municipality):
    """A refused request is recorded once its connection reports it complete, which can come after
    the client has had the answer and sent its next request on another connection; its entry
    keeps the time of the answer, so one client's refused requests are in the log in the order
    it made them. Each call below is a connection of its own, so the requests spread over the
    worker threads."""
    ids = [rid() for _ in range(40)]
    for request_id in ids:
        assert_problem(api.patch(f"/v1/municipalities/{municipality['id']}", {"name": ""},
                                 key=own["key"], headers={"X-Request-Id": request_id}), 400)
    got = wait_entries(api, keys.admin, n=len(ids), keyId=own["id"], resourceId=municipality["id"],
                       action="update")
    logged = [e["requestId"] for e in got if e["requestId"] in ids]
    assert logged == ids, [(e["at"], e["requestId"]) for e in got]


def test_a_write_without_a_key_is_recorded(api, keys):
    request_id = rid()
    r = api.post("/v1/municipalities", {"code": "GM0001", "name": "x"}, headers={"X-Request-Id": request_id})
    assert_problem(r, 401)
    deadline = time.monotonic() + 2.5
    while True:
        got = [e for e in entries(api, keys.admin, resource="/v1/municipalities", action="create")
               if e["requestId"] == request_id]
        if got or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [(e["keyId"], e["status"], e["resourceId"]) for e in got] == [(None, 401, None)], got


def test_a_nested_write_names_the_route(api, keys, own, municipality):
    w = make_werklab(api, keys.staff, municipality["id"], status="intake")
    p = make_participant(api, own["key"], w["id"])
    got = wait_entries(api, keys.admin, resourceId=p["id"])
    assert [(e["action"], e["resource"], e["status"]) for e in got] == [
        ("create", "/v1/werklabs/{id}/participants", 201)], got
    assert_status(api.patch(f"/v1/werklabs/{w['id']}/participants/{p['id']}", {"jobTitle": "x"},
                            key=own["key"]), 200)
    got = wait_entries(api, keys.admin, n=2, resourceId=p["id"])
    assert got[-1]["resource"] == "/v1/werklabs/{id}/participants/{participantId}", got


def test_reads_of_personal_data_are_recorded_others_not(api, keys, own, new_municipality):
    with_contact = new_municipality()
    without = new_municipality(contact=None)
    request_id = rid()
    assert_status(api.get(f"/v1/municipalities/{with_contact['id']}", key=own["key"],
                          headers={"X-Request-Id": request_id}), 200)
    assert_status(api.get(f"/v1/municipalities/{without['id']}", key=own["key"]), 200)
    # A partner sees no contact: no personal data shown, nothing recorded.
    assert_status(api.get(f"/v1/municipalities/{with_contact['id']}", key=keys.partner), 200)
    got = wait_entries(api, keys.admin, resourceId=with_contact["id"], action="read")
    settle()
    got = entries(api, keys.admin, resourceId=with_contact["id"], action="read")
    assert [(e["keyId"], e["resource"], e["status"], e["requestId"]) for e in got] == [
        (own["id"], "/v1/municipalities/{id}", 200, request_id)], got
    assert entries(api, keys.admin, resourceId=without["id"], action="read") == []
    assert not [e for e in entries(api, keys.admin, keyId=keys.ids["partner"], action="read")]


def test_list_and_csv_reads_of_personal_data_are_recorded(api, keys, own, municipality):
    w = make_werklab(api, keys.staff, municipality["id"], status="intake")
    make_participant(api, keys.staff, w["id"])
    path = f"/v1/werklabs/{w['id']}/participants"
    assert_status(api.get(path, key=own["key"]), 200)
    r = api.get(path, key=own["key"], headers={"Accept": "text/csv"})
    assert r.status == 200 and r.header("Content-Type").startswith("text/csv"), describe(r)
    got = wait_entries(api, keys.admin, n=2, resourceId=w["id"], action="read")
    assert [(e["keyId"], e["resource"], e["status"]) for e in got] == [
        (own["id"], "/v1/werklabs/{id}/participants", 200)] * 2, got


def test_filters_and_paging(api, keys, own, municipality):
    ids = []
    for n in range(5):
        r = api.patch(f"/v1/municipalities/{municipality['id']}", {"notes": f"n{n}"}, key=own["key"])
        assert_status(r, 200)
    got = wait_entries(api, keys.admin, n=5, resourceId=municipality["id"], action="update")
    assert len(got) == 5, got
    ids = [e["id"] for e in got]
    # Paging: two at a time, following next (and Link), oldest first.
    url = qs("/v1/audit-log", resourceId=municipality["id"], action="update", limit=2)
    seen, pages = [], 0
    while url:
        r = api.get(url, key=keys.admin)
        page = assert_status(r, 200)
        assert set(page) == {"items", "next"}, page
        assert len(page["items"]) <= 2
        if page["next"]:
            assert page["next"] in (r.header("Link") or ""), describe(r)
        seen += [e["id"] for e in page["items"]]
        url = page["next"]
        pages += 1
    assert seen == ids and pages == 3, (seen, ids, pages)
    # from (inclusive) and to (exclusive), by the entries' own times
    ats = [e["at"] for e in got]
    if len(set(ats)) == 5:
        window = entries(api, keys.admin, resourceId=municipality["id"], **{"from": ats[1], "to": ats[3]})
        assert [e["id"] for e in window] == ids[1:3], window
    # keyId, resource and action
    mine = entries(api, keys.admin, keyId=own["id"], resource="/v1/municipalities/{id}", action="update")
    assert set(ids) <= {e["id"] for e in mine}
    assert all(e["keyId"] == own["id"] and e["action"] == "update" for e in mine), mine
    assert entries(api, keys.admin, resourceId=municipality["id"], action="delete") == []
    assert entries(api, keys.admin, keyId=str(uuid.uuid4())) == []


@pytest.mark.parametrize("query, name", [
    ("limit=0", "limit"), ("limit=201", "limit"), ("limit=x", "limit"),
    ("keyId=abc", "keyId"), ("resourceId=123", "resourceId"),
    ("from=yesterday", "from"), ("to=2025-13-01T00:00:00Z", "to"),
    ("cursor=abc", "cursor"), ("colour=red", "colour"), ("subject=", "subject"),
    ("subject=" + "s" * 256, "subject"),
])
def test_bad_queries_are_400(api, keys, query, name):
    assert_problem(api.get(f"/v1/audit-log?{query}", key=keys.admin), 400, [name])


def test_admin_only(api, keys):
    assert_problem(api.get("/v1/audit-log", key=keys.staff), 403)
    assert_problem(api.get("/v1/audit-log", key=keys.partner), 403)
    assert_problem(api.get("/v1/audit-log"), 401)
    assert_status(api.get("/v1/audit-log?limit=1", key=keys.admin), 200)


def psql(url, sql):
    return subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("sql", [
    "UPDATE audit_log SET status = 200",
    "UPDATE audit_log SET request_id = NULL WHERE id = (SELECT max(id) FROM audit_log)",
    "DELETE FROM audit_log",
    "DELETE FROM audit_log WHERE id = (SELECT min(id) FROM audit_log)",
    "TRUNCATE audit_log",
])
def test_the_server_role_cannot_change_the_log(api, keys, cluster, sql):
    assert_status(api.get("/v1/audit-log?limit=1", key=keys.admin), 200)
    assert psql(cluster.url, "SELECT current_user").stdout.strip() == "werklab"
    # In one session: the entries as they are, the attempt (its own transaction), then every one
    # of those entries as it is after. Only these: the log goes on growing meanwhile (the
    # session's werklabd audits its retention runs; refused requests are recorded once complete).
    out = subprocess.run(["psql", "-X", "-q", "-At", "-d", cluster.url], input=f"""
        CREATE TEMP TABLE seen AS SELECT id, status, request_id FROM audit_log;
        SELECT count(*) FROM seen;
        {sql};
        SELECT count(*) FROM seen LEFT JOIN audit_log a USING (id)
         WHERE a.id IS NULL OR a.status <> seen.status OR a.request_id IS DISTINCT FROM seen.request_id;
        """, capture_output=True, text=True, timeout=30)
    assert "permission denied" in out.stderr, (out.returncode, out.stderr)
    seen, changed = out.stdout.split()
    assert seen != "0", "the audit log is empty: nothing to protect"
    assert changed == "0", f"{changed} of {seen} entries were changed or removed"


@pytest.mark.parametrize("request_id", [
    "jan.jansen@example.nl",
    "Jan Jansen",
    "req-" + "a" * 70,
    "key=wlk_" + "0" * 20,
])
def test_request_ids_that_may_be_personal_are_not_stored(api, keys, own, municipality, request_id):
    r = api.patch(f"/v1/municipalities/{municipality['id']}", {"notes": "x"}, key=own["key"],
                  headers={"X-Request-Id": request_id})
    assert_status(r, 200)
    got = wait_entries(api, keys.admin, resourceId=municipality["id"], action="update")
    assert len(got) == 1, got
    assert got[0]["requestId"] is None, got

"""Participants of a werklab (/v1/werklabs/{id}/participants): create, read, list, merge-patch,
delete, validation, the werklab's status and capacity, also when requests race."""

import threading
import time
import uuid

import pytest

from domain import advance, get_werklab, make_participant, make_session, make_werklab
from wlclient import TIMESTAMP_RE, UUID_RE, assert_problem, assert_status, describe, as_ordered

FIELDS = {"id", "werklabId", "name", "email", "jobTitle", "department", "role", "version",
          "createdAt", "updatedAt"}


def coll(w):
    return f"/v1/werklabs/{w['id'] if isinstance(w, dict) else w}/participants"


def url(p):
    return f"{coll(p['werklabId'])}/{p['id']}"


def get(api, keys, p):
    return assert_status(api.get(url(p), key=keys.admin), 200)


def listed(api, keys, w, params=None):
    items, _ = api.list_all(coll(w), keys.admin, params)
    return items


def ids(items):
    return [i["id"] for i in items]


def assert_shape(p):
    assert set(p) == FIELDS, p
    assert UUID_RE.match(p["id"]) and UUID_RE.match(p["werklabId"]), p
    assert p["role"] in (None, "adviser", "connector", "director"), p
    assert TIMESTAMP_RE.match(p["createdAt"]) and TIMESTAMP_RE.match(p["updatedAt"]), p


@pytest.fixture
def werklab(api, keys, municipality):
    """A werklab in intake: participants may join."""
    return make_werklab(api, keys.admin, municipality["id"], status="intake")


# ------------------------------------------------------------------ create and read


def test_create_full_201_location_etag(api, keys, werklab):
    body = {"name": "Sanne de Boer", "email": "sanne.deboer@gemeente.example.nl",
            "jobTitle": "Beleidsadviseur participatie", "department": "Sociaal Domein",
            "role": "adviser"}
    r = api.post(coll(werklab), body, key=keys.staff)
    p = assert_status(r, 201)
    assert_shape(p)
    assert {k: p[k] for k in body} == body and p["werklabId"] == werklab["id"]
    assert p["version"] == 1 and p["createdAt"] == p["updatedAt"]
    assert (r.header("Location") or "").endswith(url(p)), describe(r)
    assert r.header("ETag") == '"1"'
    g = api.get(url(p), key=keys.admin)
    assert assert_status(g, 200) == p and g.header("ETag") == '"1"'
    assert listed(api, keys, werklab) == [p]
    w = get_werklab(api, keys.admin, werklab["id"])
    assert w["participantCount"] == 1 and w["version"] > werklab["version"]


def test_create_minimal(api, keys, werklab):
    p = assert_status(api.post(coll(werklab), {"name": "Ali", "email": "ali@example.nl"},
                               key=keys.admin), 201)
    assert_shape(p)
    assert p["jobTitle"] is None and p["department"] is None and p["role"] is None


@pytest.mark.parametrize("role", ["adviser", "connector", "director"])
def test_every_role(api, keys, werklab, role):
    assert make_participant(api, keys.admin, werklab["id"], role=role)["role"] == role


def test_partner_gets_403(api, keys, werklab):
    p = make_participant(api, keys.admin, werklab["id"])
    assert_problem(api.get(coll(werklab), key=keys.partner), 403)
    assert_problem(api.get(url(p), key=keys.partner), 403)
    assert_problem(api.post(coll(werklab), {"name": "P", "email": "p@example.nl"},
                            key=keys.partner), 403)
    assert_problem(api.patch(url(p), {"name": "P"}, key=keys.partner), 403)
    assert_problem(api.delete(url(p), key=keys.partner), 403)
    assert get(api, keys, p) == p and listed(api, keys, werklab) == [p]


def test_unknown_werklab_is_404(api, keys):
    w = str(uuid.uuid4())
    assert_problem(api.get(coll(w), key=keys.admin), 404)
    assert_problem(api.post(coll(w), {"name": "N", "email": "n@example.nl"}, key=keys.admin), 404)
    assert_problem(api.get(f"{coll(w)}/{uuid.uuid4()}", key=keys.admin), 404)


@pytest.mark.parametrize("wid", ["not-a-uuid", "00000000-0000-0000-0000-00000000000g"])
def test_malformed_werklab_id_is_404(api, keys, wid):
    assert_problem(api.get(coll(wid), key=keys.admin), 404)
    assert_problem(api.post(coll(wid), {"name": "N", "email": "n@example.nl"}, key=keys.admin), 404)


@pytest.mark.parametrize("pid", ["not-a-uuid", "{uuid}x", "{uuid}-1"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_malformed_participant_id_is_404(api, keys, werklab, method, pid):
    p = make_participant(api, keys.admin, werklab["id"])
    body = {"name": "x"} if method == "PATCH" else None
    r = api.request(method, f"{coll(werklab)}/{pid.replace('{uuid}', p['id'])}", json_body=body,
                    key=keys.admin)
    assert_problem(r, 404)
    assert get(api, keys, p) == p


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_participant_is_404(api, keys, werklab, method):
    body = {"name": "x"} if method == "PATCH" else None
    r = api.request(method, f"{coll(werklab)}/{uuid.uuid4()}", json_body=body, key=keys.admin)
    assert_problem(r, 404)


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_participant_under_another_werklab_is_404(api, keys, municipality, werklab, method):
    other = make_werklab(api, keys.admin, municipality["id"], status="intake")
    p = make_participant(api, keys.admin, werklab["id"])
    body = {"name": "x"} if method == "PATCH" else None
    r = api.request(method, f"{coll(other)}/{p['id']}", json_body=body, key=keys.admin)
    assert_problem(r, 404)
    assert get(api, keys, p) == p
    assert listed(api, keys, other) == []


# ------------------------------------------------------------------ validation


BAD_FIELDS = {
    "name-empty": ({"name": ""}, {"name": "minLength"}),
    "name-long": ({"name": "n" * 201}, {"name": "maxLength"}),
    "name-type": ({"name": 1}, {"name": "type"}),
    "name-null": ({"name": None}, {"name": {"required", "type"}}),
    "email-format": ({"email": "sanne@"}, {"email": "format"}),
    "email-long": ({"email": "a" * 250 + "@example.nl"}, {"email": {"maxLength", "format"}}),
    "email-type": ({"email": ["a@example.nl"]}, {"email": "type"}),
    "email-null": ({"email": None}, {"email": {"required", "type"}}),
    "jobTitle-long": ({"jobTitle": "j" * 201}, {"jobTitle": "maxLength"}),
    "jobTitle-type": ({"jobTitle": 3}, {"jobTitle": "type"}),
    "department-long": ({"department": "d" * 201}, {"department": "maxLength"}),
    "role-enum": ({"role": "manager"}, {"role": "enum"}),
    "role-case": ({"role": "Adviser"}, {"role": "enum"}),
    "role-type": ({"role": True}, {"role": "type"}),
    "werklabId": ({"werklabId": str(uuid.uuid4())}, {"werklabId": "unknown"}),
    "unknown-field": ({"phone": "0612345678"}, {"phone": "unknown"}),
    "read-only-id": ({"id": str(uuid.uuid4())}, {"id": "unknown"}),
    "read-only-version": ({"version": 4}, {"version": "unknown"}),
    "read-only-createdAt": ({"createdAt": "2020-01-01T00:00:00Z"}, {"createdAt": "unknown"}),
}


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_post_bad_field(api, keys, werklab, case):
    fields, expected = BAD_FIELDS[case]
    body = dict({"name": "Geldig", "email": "geldig@example.nl"}, **fields)
    assert_problem(api.post(coll(werklab), body, key=keys.admin), 400, names=expected)
    assert listed(api, keys, werklab) == []
    assert get_werklab(api, keys.admin, werklab["id"]) == werklab


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_patch_bad_field_changes_nothing(api, keys, werklab, case):
    fields, expected = BAD_FIELDS[case]
    p = make_participant(api, keys.admin, werklab["id"], jobTitle="Adviseur", department="Wonen",
                         role="connector")
    assert_problem(api.patch(url(p), fields, key=keys.admin), 400, names=expected)
    assert get(api, keys, p) == p


def test_required_fields(api, keys, werklab):
    assert_problem(api.post(coll(werklab), {}, key=keys.admin), 400,
                   names={"name": "required", "email": "required"})
    assert listed(api, keys, werklab) == []


# ------------------------------------------------------------------ e-mail unique per werklab


@pytest.mark.parametrize("variant", ["same", "upper", "mixed"])
def test_email_unique_per_werklab_case_insensitive(api, keys, werklab, variant):
    p = make_participant(api, keys.admin, werklab["id"], email="sanne@example.nl")
    email = {"same": "sanne@example.nl", "upper": "SANNE@EXAMPLE.NL",
             "mixed": "Sanne@Example.nl"}[variant]
    assert_problem(api.post(coll(werklab), {"name": "Twee", "email": email}, key=keys.admin), 409,
                   conflicts={"unique"})
    assert listed(api, keys, werklab) == [p]


def test_same_email_in_another_werklab_is_fine(api, keys, municipality, werklab):
    other = make_werklab(api, keys.admin, municipality["id"], status="intake")
    make_participant(api, keys.admin, werklab["id"], email="sanne@example.nl")
    make_participant(api, keys.admin, other["id"], email="sanne@example.nl")


def test_patch_to_a_taken_email_is_409(api, keys, werklab):
    make_participant(api, keys.admin, werklab["id"], email="a@example.nl")
    b = make_participant(api, keys.admin, werklab["id"], email="b@example.nl")
    assert_problem(api.patch(url(b), {"email": "A@example.nl"}, key=keys.admin), 409,
                   conflicts={"unique"})
    assert get(api, keys, b) == b
    b2 = assert_status(api.patch(url(b), {"email": "B@example.nl"}, key=keys.admin), 200)
    assert b2["email"] == "B@example.nl"


# ------------------------------------------------------------------ merge patch, preconditions


def test_patch_merges_and_bumps_version(api, keys, werklab):
    p0 = make_participant(api, keys.admin, werklab["id"], jobTitle="Adviseur", role="adviser")
    r = api.patch(url(p0), {"department": "Wonen"}, key=keys.staff)
    p1 = assert_status(r, 200)
    assert r.header("ETag") == '"2"'
    assert p1 == dict(p0, department="Wonen", version=2, updatedAt=p1["updatedAt"])
    p2 = assert_status(api.patch(url(p0), {"role": None, "jobTitle": None}, key=keys.admin), 200)
    assert p2["role"] is None and p2["jobTitle"] is None and p2["department"] == "Wonen"
    assert p2["version"] == 3
    assert get(api, keys, p0) == p2


def test_patch_in_a_completed_werklab(api, keys, municipality):
    """Joining is limited by status; correcting a participant's details is not."""
    w = advance(api, keys.admin, make_werklab(api, keys.admin, municipality["id"])["id"], "completed")
    p = listed(api, keys, w)[0]
    p2 = assert_status(api.patch(url(p), {"department": "Later gewijzigd"}, key=keys.admin), 200)
    assert p2["department"] == "Later gewijzigd"


def test_if_none_match_and_if_match(api, keys, werklab):
    p = make_participant(api, keys.admin, werklab["id"])
    assert_status(api.get(url(p), key=keys.admin, headers={"If-None-Match": '"1"'}), 304)
    p2 = assert_status(api.patch(url(p), {"name": "Twee"}, key=keys.admin), 200)
    assert_problem(api.patch(url(p), {"name": "Oud"}, key=keys.admin, headers={"If-Match": '"1"'}),
                   412)
    assert_problem(api.delete(url(p), key=keys.admin, headers={"If-Match": '"1"'}), 412)
    assert get(api, keys, p) == p2
    assert_status(api.delete(url(p), key=keys.admin, headers={"If-Match": '"2"'}), 204)


# ------------------------------------------------------------------ delete


def test_delete(api, keys, werklab):
    a = make_participant(api, keys.admin, werklab["id"])
    b = make_participant(api, keys.admin, werklab["id"])
    assert get_werklab(api, keys.admin, werklab["id"])["participantCount"] == 2
    r = api.delete(url(a), key=keys.staff)
    assert_status(r, 204)
    assert r.body == b""
    assert_problem(api.get(url(a), key=keys.admin), 404)
    assert_problem(api.delete(url(a), key=keys.admin), 404)
    assert listed(api, keys, werklab) == [b]
    assert get_werklab(api, keys.admin, werklab["id"])["participantCount"] == 1


def test_delete_with_attendance_is_409_referenced(api, keys, werklab):
    p = make_participant(api, keys.admin, werklab["id"])
    s = make_session(api, keys.admin, werklab["id"], 1, "2026-05-01T09:00:00Z",
                     "2026-05-01T12:00:00Z")
    assert_status(api.put(f"/v1/sessions/{s['id']}/attendance",
                          [{"participantId": p["id"], "status": "present"}], key=keys.admin), 200)
    assert_problem(api.delete(url(p), key=keys.admin), 409, conflicts={"referenced"})
    assert get(api, keys, p) == p


def test_delete_with_feedback_is_409_referenced(api, keys, werklab):
    p = make_participant(api, keys.admin, werklab["id"])
    assert_status(api.post("/v1/feedback", {"werklabId": werklab["id"], "kind": "evaluation",
                                            "participantId": p["id"], "rating": 4,
                                            "body": "Leerzaam."}, key=keys.admin), 201)
    assert_problem(api.delete(url(p), key=keys.admin), 409, conflicts={"referenced"})
    assert get(api, keys, p) == p


# ------------------------------------------------------------------ the werklab's status and capacity


@pytest.mark.parametrize("status", ["intake", "planned", "running"])
def test_join_while_intake_planned_running(api, keys, municipality, status):
    w = make_werklab(api, keys.admin, municipality["id"])
    w = advance(api, keys.admin, w["id"], status)
    before = w["participantCount"]
    make_participant(api, keys.admin, w["id"])
    assert get_werklab(api, keys.admin, w["id"])["participantCount"] == before + 1


@pytest.mark.parametrize("status", ["inquiry", "completed", "cancelled"])
def test_join_in_other_states_is_409_status(api, keys, municipality, status):
    w = make_werklab(api, keys.admin, municipality["id"])
    w = advance(api, keys.admin, w["id"], status) if status != "inquiry" else w
    before = listed(api, keys, w)
    r = api.post(coll(w), {"name": "Te laat", "email": "laat@example.nl"}, key=keys.admin)
    assert_problem(r, 409, conflicts={"status"})
    assert listed(api, keys, w) == before
    assert get_werklab(api, keys.admin, w["id"]) == w


def test_full_werklab_is_409_full(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"], status="intake",
                     capacity={"min": 1, "max": 2})
    make_participant(api, keys.admin, w["id"])
    make_participant(api, keys.admin, w["id"])
    w = get_werklab(api, keys.admin, w["id"])
    before = listed(api, keys, w)
    assert_problem(api.post(coll(w), {"name": "Drie", "email": "drie@example.nl"}, key=keys.admin),
                   409, conflicts={"full"})
    assert listed(api, keys, w) == before and get_werklab(api, keys.admin, w["id"]) == w
    # Raising capacity.max opens a place.
    assert_status(api.patch(f"/v1/werklabs/{w['id']}", {"capacity": {"max": 3}}, key=keys.admin), 200)
    make_participant(api, keys.admin, w["id"], email="drie@example.nl")


def test_place_frees_up_after_delete(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"], status="intake",
                     capacity={"min": 1, "max": 1})
    p = make_participant(api, keys.admin, w["id"])
    assert_problem(api.post(coll(w), {"name": "B", "email": "b@example.nl"}, key=keys.admin), 409,
                   conflicts={"full"})
    assert_status(api.delete(url(p), key=keys.admin), 204)
    make_participant(api, keys.admin, w["id"], email="b@example.nl")


def race(api, keys, werklab_id, n):
    """n concurrent POSTs, each on its own connection, released together. Returns responses."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def post(i):
        conn = api.connection(timeout=30)
        try:
            conn.connect()
            barrier.wait(timeout=30)
            results[i] = api.request("POST", coll(werklab_id), conn=conn, key=keys.admin,
                                     json_body={"name": f"Racer {i}",
                                                "email": f"racer-{i}-{uuid.uuid4().hex[:6]}@example.nl"})
        finally:
            conn.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r is not None for r in results), "a racing request got no answer"
    return results


@pytest.mark.parametrize("round_", range(3))
def test_capacity_race_for_the_last_places(api, keys, municipality, round_):
    w = make_werklab(api, keys.admin, municipality["id"], status="intake",
                     capacity={"min": 1, "max": 12})
    for _ in range(10):
        make_participant(api, keys.admin, w["id"])
    results = race(api, keys, w["id"], 12)
    created = [r for r in results if r.status == 201]
    refused = [r for r in results if r.status != 201]
    assert len(created) == 2, [describe(r) for r in results if r.status not in (201, 409)] or \
        [r.status for r in results]
    assert len(refused) == 10
    for r in refused:
        assert_problem(r, 409, conflicts={"full"})
    items = listed(api, keys, w)
    assert len(items) == 12
    assert {r.json["id"] for r in created} <= set(ids(items))
    assert get_werklab(api, keys.admin, w["id"])["participantCount"] == 12


def test_capacity_race_into_an_empty_werklab(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"], status="intake",
                     capacity={"min": 1, "max": 3})
    results = race(api, keys, w["id"], 10)
    assert sorted(r.status for r in results) == [201] * 3 + [409] * 7, [r.status for r in results]
    assert len(listed(api, keys, w)) == 3
    assert get_werklab(api, keys.admin, w["id"])["participantCount"] == 3


# ------------------------------------------------------------------ lists


def test_role_filter(api, keys, werklab):
    a = make_participant(api, keys.admin, werklab["id"], role="adviser")
    c = make_participant(api, keys.admin, werklab["id"], role="connector")
    d = make_participant(api, keys.admin, werklab["id"], role="director")
    make_participant(api, keys.admin, werklab["id"])
    assert ids(listed(api, keys, werklab, {"role": "adviser"})) == [a["id"]]
    assert set(ids(listed(api, keys, werklab, {"role": "connector,director"}))) == {c["id"], d["id"]}


def test_list_only_holds_its_werklab(api, keys, municipality, werklab):
    other = make_werklab(api, keys.admin, municipality["id"], status="intake")
    a = make_participant(api, keys.admin, werklab["id"])
    b = make_participant(api, keys.admin, other["id"])
    assert ids(listed(api, keys, werklab)) == [a["id"]]
    assert ids(listed(api, keys, other)) == [b["id"]]


def test_updated_since(api, keys, werklab):
    a = make_participant(api, keys.admin, werklab["id"])
    b = make_participant(api, keys.admin, werklab["id"])
    time.sleep(0.05)
    b2 = assert_status(api.patch(url(b), {"department": "Later"}, key=keys.admin), 200)
    assert ids(listed(api, keys, werklab, {"updatedSince": b2["updatedAt"]})) == [b["id"]]
    assert set(ids(listed(api, keys, werklab, {"updatedSince": a["createdAt"]}))) == \
        {a["id"], b["id"]}


@pytest.mark.parametrize("query,name", [("role=manager", "role"), ("sort=email", "sort"),
                                        ("updatedSince=x", "updatedSince"), ("q=jan", "q"),
                                        ("limit=abc", "limit")])
def test_bad_query(api, keys, werklab, query, name):
    assert_problem(api.get(f"{coll(werklab)}?{query}", key=keys.admin), 400, names=[name])


@pytest.mark.parametrize("desc", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("sort_key", ["name", "createdAt", "updatedAt"])
def test_sort_keys(api, keys, werklab, sort_key, desc):
    made = [make_participant(api, keys.admin, werklab["id"], name=n)
            for n in ("Carla", "Anouk", "Daan", "Bas")]
    for p in (made[2], made[0], made[3], made[1]):
        assert_status(api.patch(url(p), {"department": "bijgewerkt"}, key=keys.admin), 200)
    now = [get(api, keys, p) for p in made]
    want = sorted(now, key=lambda p: (as_ordered(p[sort_key]), p["id"]), reverse=desc)
    sort = ("-" if desc else "") + sort_key
    assert ids(listed(api, keys, werklab, {"sort": sort})) == ids(want)
    paged, _ = api.list_all(coll(werklab), keys.admin, {"sort": sort}, limit=1)
    assert ids(paged) == ids(want)

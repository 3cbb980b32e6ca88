"""Sessions of a werklab: create, read, list, merge-patch, delete, validation, overlap,
sequence, the initiatives taking part, the werklab's startsOn/endsOn, and attendance."""

import threading
import time
import uuid

import pytest

from domain import (advance, get_werklab, make_initiative, make_participant, make_session,
                    make_werklab)
from wlclient import TIMESTAMP_RE, UUID_RE, assert_problem, assert_status, describe, as_ordered

FIELDS = {"id", "werklabId", "sequence", "kind", "title", "description", "startsAt", "endsAt",
          "location", "initiatives", "version", "createdAt", "updatedAt"}
KINDS = ["initiativeVisit", "municipalCollaboration", "ownRole", "custom"]
S1 = ("2026-05-01T09:00:00Z", "2026-05-01T12:00:00Z")


def url(s):
    return f"/v1/sessions/{s['id'] if isinstance(s, dict) else s}"


def get(api, keys, s):
    return assert_status(api.get(url(s), key=keys.admin), 200)


def ids(items):
    return [i["id"] for i in items]


def of_werklab(api, keys, w, params=None):
    items, _ = api.list_all("/v1/sessions", keys.admin, dict(params or {}, werklabId=w["id"]))
    return items


def assert_shape(s):
    assert set(s) == FIELDS, s
    assert UUID_RE.match(s["id"]) and UUID_RE.match(s["werklabId"]), s
    assert s["kind"] in KINDS, s
    assert TIMESTAMP_RE.match(s["startsAt"]) and TIMESTAMP_RE.match(s["endsAt"]), s
    assert isinstance(s["initiatives"], list), s
    if s["location"] is not None:
        assert set(s["location"]) == {"name", "address", "onSite"}, s


@pytest.fixture
def werklab(api, keys, municipality):
    return make_werklab(api, keys.admin, municipality["id"], status="intake")


def body_for(w, **fields):
    b = {"werklabId": w["id"], "sequence": 1, "kind": "custom", "title": "Aftrap",
         "startsAt": S1[0], "endsAt": S1[1]}
    b.update(fields)
    return b


# ------------------------------------------------------------------ create and read


def test_create_full_201_location_etag(api, keys, municipality, werklab):
    host = make_initiative(api, keys.admin, municipality["id"])
    guest = make_initiative(api, keys.admin, municipality["id"])
    body = body_for(werklab, kind="initiativeVisit", title="Bezoek aan de moestuin",
                    description="We lopen mee met de vrijwilligers.",
                    location={"name": "De Ploeg", "address": "Tuinstraat 1, Zaltbommel",
                              "onSite": True},
                    initiatives=[{"initiativeId": guest["id"], "role": "guest"},
                                 {"initiativeId": host["id"], "role": "host"}])
    r = api.post("/v1/sessions", body, key=keys.staff)
    s = assert_status(r, 201)
    assert_shape(s)
    for k in ("werklabId", "sequence", "kind", "title", "description", "startsAt", "endsAt",
              "location"):
        assert s[k] == body[k], (k, s)
    assert sorted(s["initiatives"], key=lambda i: i["initiativeId"]) == \
        sorted(body["initiatives"], key=lambda i: i["initiativeId"])
    assert s["version"] == 1 and s["createdAt"] == s["updatedAt"]
    assert (r.header("Location") or "").endswith(url(s)), describe(r)
    assert r.header("ETag") == '"1"'
    g = api.get(url(s), key=keys.admin)
    assert assert_status(g, 200) == s and g.header("ETag") == '"1"'
    assert of_werklab(api, keys, werklab) == [s]


def test_create_minimal(api, keys, werklab):
    s = assert_status(api.post("/v1/sessions", body_for(werklab), key=keys.admin), 201)
    assert_shape(s)
    assert s["description"] is None and s["location"] is None and s["initiatives"] == []


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind(api, keys, werklab, kind):
    assert make_session(api, keys.admin, werklab["id"], 1, *S1, kind=kind)["kind"] == kind


def test_timestamps_with_offsets_come_back_in_utc(api, keys, werklab):
    s = make_session(api, keys.admin, werklab["id"], 1, "2026-05-01T11:00:00+02:00",
                     "2026-05-01T14:30:00.250+02:00")
    assert s["startsAt"] == "2026-05-01T09:00:00Z"
    assert s["endsAt"].startswith("2026-05-01T12:30:00.25") and s["endsAt"].endswith("Z")


def test_partner_reads_but_cannot_write(api, keys, werklab):
    s = make_session(api, keys.admin, werklab["id"], 1, *S1)
    assert assert_status(api.get(url(s), key=keys.partner), 200) == s
    lst = assert_status(api.get(f"/v1/sessions?werklabId={werklab['id']}", key=keys.partner), 200)
    assert lst["items"] == [s]
    assert_problem(api.post("/v1/sessions", body_for(werklab, sequence=2,
                                                     startsAt="2026-06-01T09:00:00Z",
                                                     endsAt="2026-06-01T10:00:00Z"),
                            key=keys.partner), 403)
    assert_problem(api.patch(url(s), {"title": "p"}, key=keys.partner), 403)
    assert_problem(api.delete(url(s), key=keys.partner), 403)
    assert_problem(api.get(f"{url(s)}/attendance", key=keys.partner), 403)
    assert_problem(api.put(f"{url(s)}/attendance", [], key=keys.partner), 403)
    assert get(api, keys, s) == s


@pytest.mark.parametrize("path", ["not-a-uuid", "00000000-0000-0000-0000-00000000000g", "{uuid}x"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_malformed_id_is_404(api, keys, werklab, method, path):
    s = make_session(api, keys.admin, werklab["id"], 1, *S1)
    body = {"title": "x"} if method == "PATCH" else None
    r = api.request(method, f"/v1/sessions/{path.replace('{uuid}', s['id'])}", json_body=body,
                    key=keys.admin)
    assert_problem(r, 404)
    assert get(api, keys, s) == s


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_id_is_404(api, keys, method):
    body = {"title": "x"} if method == "PATCH" else None
    assert_problem(api.request(method, url(str(uuid.uuid4())), json_body=body, key=keys.admin), 404)


# ------------------------------------------------------------------ validation


BAD_FIELDS = {
    "sequence-zero": ({"sequence": 0}, {"sequence": "minimum"}),
    "sequence-negative": ({"sequence": -3}, {"sequence": "minimum"}),
    "sequence-1001": ({"sequence": 1001}, {"sequence": "maximum"}),
    "sequence-string": ({"sequence": "1"}, {"sequence": "type"}),
    "sequence-float": ({"sequence": 1.5}, {"sequence": "type"}),
    "sequence-null": ({"sequence": None}, {"sequence": {"required", "type"}}),
    "kind-enum": ({"kind": "workshop"}, {"kind": "enum"}),
    "kind-type": ({"kind": 2}, {"kind": "type"}),
    "title-empty": ({"title": ""}, {"title": "minLength"}),
    "title-long": ({"title": "t" * 201}, {"title": "maxLength"}),
    "title-type": ({"title": None}, {"title": {"required", "type"}}),
    "description-long": ({"description": "d" * 4001}, {"description": "maxLength"}),
    "startsAt-no-offset": ({"startsAt": "2026-05-01T09:00:00"}, {"startsAt": "format"}),
    "startsAt-date": ({"startsAt": "2026-05-01"}, {"startsAt": "format"}),
    "startsAt-garbage": ({"startsAt": "morgen"}, {"startsAt": "format"}),
    "startsAt-month": ({"startsAt": "2026-13-01T09:00:00Z"}, {"startsAt": "format"}),
    "startsAt-type": ({"startsAt": 1767258000}, {"startsAt": "type"}),
    "endsAt-no-offset": ({"endsAt": "2026-05-01 12:00"}, {"endsAt": "format"}),
    "location-type": ({"location": "Buurthuis"}, {"location": "type"}),
    "location-name-long": ({"location": {"name": "n" * 201}}, {"location.name": "maxLength"}),
    "location-address-long": ({"location": {"address": "a" * 401}},
                              {"location.address": "maxLength"}),
    "location-onSite-type": ({"location": {"onSite": "yes"}}, {"location.onSite": "type"}),
    "location-unknown": ({"location": {"city": "Zaltbommel"}}, {"location.city": "unknown"}),
    "initiatives-type": ({"initiatives": {"initiativeId": "x"}}, {"initiatives": "type"}),
    "initiatives-item-type": ({"initiatives": ["x"]}, {"initiatives[0]": "type"}),
    "initiatives-malformed": ({"initiatives": [{"initiativeId": "x", "role": "host"}]},
                              {"initiatives[0]": "format"}),
    "initiatives-role": ({"initiatives": [{"initiativeId": str(uuid.uuid4()), "role": "owner"}]},
                         {"initiatives[0]": "enum"}),
    "initiatives-no-role": ({"initiatives": [{"initiativeId": str(uuid.uuid4())}]},
                            {"initiatives[0]": "required"}),
    "initiatives-extra": ({"initiatives": [{"initiativeId": str(uuid.uuid4()), "role": "host",
                                            "since": "2020"}]}, {"initiatives[0]": "unknown"}),
    "initiatives-null": ({"initiatives": None}, {"initiatives": "type"}),
    "unknown-field": ({"colour": "red"}, {"colour": "unknown"}),
    "read-only-id": ({"id": str(uuid.uuid4())}, {"id": "unknown"}),
    "read-only-version": ({"version": 2}, {"version": "unknown"}),
    "read-only-updatedAt": ({"updatedAt": "2020-01-01T00:00:00Z"}, {"updatedAt": "unknown"}),
}


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_post_bad_field(api, keys, werklab, case):
    fields, expected = BAD_FIELDS[case]
    assert_problem(api.post("/v1/sessions", body_for(werklab, **fields), key=keys.admin), 400,
                   names=expected)
    assert of_werklab(api, keys, werklab) == []
    assert get_werklab(api, keys.admin, werklab["id"]) == werklab


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_patch_bad_field_changes_nothing(api, keys, municipality, werklab, case):
    fields, expected = BAD_FIELDS[case]
    host = make_initiative(api, keys.admin, municipality["id"])
    s = make_session(api, keys.admin, werklab["id"], 1, *S1, kind="initiativeVisit",
                     description="Eerst", location={"name": "Buurthuis"},
                     initiatives=[{"initiativeId": host["id"], "role": "host"}])
    w = get_werklab(api, keys.admin, werklab["id"])
    assert_problem(api.patch(url(s), fields, key=keys.admin), 400, names=expected)
    assert get(api, keys, s) == s
    assert get_werklab(api, keys.admin, werklab["id"]) == w


def test_required_fields(api, keys, werklab):
    assert_problem(api.post("/v1/sessions", {}, key=keys.admin), 400, names={
        "werklabId": "required", "sequence": "required", "kind": "required", "title": "required",
        "startsAt": "required", "endsAt": "required"})
    for missing in ("werklabId", "sequence", "kind", "title", "startsAt", "endsAt"):
        body = body_for(werklab)
        del body[missing]
        assert_problem(api.post("/v1/sessions", body, key=keys.admin), 400,
                       names={missing: "required"})
    assert of_werklab(api, keys, werklab) == []


@pytest.mark.parametrize("ends", ["2026-05-01T09:00:00Z", "2026-05-01T08:59:59Z",
                                  "2026-05-01T10:00:00+02:00"],
                         ids=["equal", "before", "before-by-offset"])
def test_ends_at_must_follow_starts_at(api, keys, werklab, ends):
    assert_problem(api.post("/v1/sessions", body_for(werklab, endsAt=ends), key=keys.admin), 400,
                   names={"endsAt": "minimum"})
    assert of_werklab(api, keys, werklab) == []
    s = make_session(api, keys.admin, werklab["id"], 1, *S1)
    assert_problem(api.patch(url(s), {"endsAt": ends}, key=keys.admin), 400,
                   names={"endsAt": "minimum"})
    assert_problem(api.patch(url(s), {"startsAt": "2026-05-01T12:00:00Z"}, key=keys.admin), 400,
                   names={"endsAt": "minimum"})
    assert get(api, keys, s) == s


def test_unknown_werklab_is_400_reference(api, keys):
    assert_problem(api.post("/v1/sessions", body_for({"id": str(uuid.uuid4())}), key=keys.admin),
                   400, names={"werklabId": "reference"})
    assert_problem(api.post("/v1/sessions", body_for({"id": "nope"}), key=keys.admin),
                   400, names={"werklabId": "format"})


@pytest.mark.parametrize("target", ["same", "other"])
def test_werklab_is_immutable(api, keys, municipality, werklab, target):
    other = make_werklab(api, keys.admin, municipality["id"])
    s = make_session(api, keys.admin, werklab["id"], 1, *S1)
    wid = werklab["id"] if target == "same" else other["id"]
    assert_problem(api.patch(url(s), {"werklabId": wid}, key=keys.admin), 400,
                   names={"werklabId": "unknown"})
    assert get(api, keys, s) == s
    assert of_werklab(api, keys, other) == []


def test_limits_are_inclusive(api, keys, werklab):
    s = make_session(api, keys.admin, werklab["id"], 1000, *S1, title="ë" * 200,
                     description="d" * 4000, location={"name": "n" * 200, "address": "a" * 400,
                                                       "onSite": False})
    assert get(api, keys, s) == s


# ------------------------------------------------------------------ sequence and overlap


def test_sequence_unique_per_werklab(api, keys, municipality, werklab):
    a = make_session(api, keys.admin, werklab["id"], 1, *S1)
    w = get_werklab(api, keys.admin, werklab["id"])
    r = api.post("/v1/sessions", body_for(werklab, startsAt="2026-06-01T09:00:00Z",
                                          endsAt="2026-06-01T12:00:00Z"), key=keys.admin)
    assert_problem(r, 409, conflicts={"unique"})
    assert of_werklab(api, keys, werklab) == [a]
    assert get_werklab(api, keys.admin, werklab["id"]) == w
    b = make_session(api, keys.admin, werklab["id"], 2, "2026-06-01T09:00:00Z",
                     "2026-06-01T12:00:00Z")
    assert_problem(api.patch(url(b), {"sequence": 1}, key=keys.admin), 409, conflicts={"unique"})
    assert get(api, keys, b) == b
    # Another werklab may use the same numbers.
    other = make_werklab(api, keys.admin, municipality["id"])
    make_session(api, keys.admin, other["id"], 1, *S1)


OVERLAPS = {
    "same": S1,
    "inside": ("2026-05-01T10:00:00Z", "2026-05-01T11:00:00Z"),
    "around": ("2026-05-01T08:00:00Z", "2026-05-01T13:00:00Z"),
    "start-inside": ("2026-05-01T11:59:59Z", "2026-05-01T14:00:00Z"),
    "end-inside": ("2026-05-01T07:00:00Z", "2026-05-01T09:00:01Z"),
    "by-offset": ("2026-05-01T13:30:00+02:00", "2026-05-01T15:00:00+02:00"),
}


@pytest.mark.parametrize("case", sorted(OVERLAPS))
def test_overlap_is_409(api, keys, werklab, case):
    a = make_session(api, keys.admin, werklab["id"], 1, *S1)
    w = get_werklab(api, keys.admin, werklab["id"])
    starts, ends = OVERLAPS[case]
    r = api.post("/v1/sessions", body_for(werklab, sequence=2, startsAt=starts, endsAt=ends),
                 key=keys.admin)
    assert_problem(r, 409, conflicts={"overlap"})
    assert of_werklab(api, keys, werklab) == [a]
    assert get_werklab(api, keys.admin, werklab["id"]) == w


def test_overlap_on_patch_is_409(api, keys, werklab):
    make_session(api, keys.admin, werklab["id"], 1, *S1)
    b = make_session(api, keys.admin, werklab["id"], 2, "2026-05-02T09:00:00Z",
                     "2026-05-02T12:00:00Z")
    w = get_werklab(api, keys.admin, werklab["id"])
    assert_problem(api.patch(url(b), {"startsAt": "2026-05-01T11:00:00Z",
                                      "endsAt": "2026-05-01T13:00:00Z"}, key=keys.admin), 409,
                   conflicts={"overlap"})
    assert get(api, keys, b) == b
    assert get_werklab(api, keys.admin, werklab["id"]) == w


@pytest.mark.parametrize("side", ["after", "before"])
def test_touching_sessions_are_fine(api, keys, werklab, side):
    make_session(api, keys.admin, werklab["id"], 1, *S1)
    times = (S1[1], "2026-05-01T15:00:00Z") if side == "after" else ("2026-05-01T06:00:00Z", S1[0])
    make_session(api, keys.admin, werklab["id"], 2, *times)
    assert len(of_werklab(api, keys, werklab)) == 2


def test_moving_a_session_over_its_own_time_is_fine(api, keys, werklab):
    s = make_session(api, keys.admin, werklab["id"], 1, *S1)
    s2 = assert_status(api.patch(url(s), {"endsAt": "2026-05-01T13:00:00Z"}, key=keys.admin), 200)
    assert s2["endsAt"] == "2026-05-01T13:00:00Z"


def test_sessions_of_other_werklabs_may_overlap(api, keys, municipality, werklab):
    other = make_werklab(api, keys.admin, municipality["id"])
    make_session(api, keys.admin, werklab["id"], 1, *S1)
    make_session(api, keys.admin, other["id"], 1, *S1)


# ------------------------------------------------------------------ initiatives taking part


def test_initiative_of_another_municipality_is_400_reference(api, keys, new_municipality):
    here, there = new_municipality(), new_municipality()
    w = make_werklab(api, keys.admin, here["id"])
    foreign = make_initiative(api, keys.admin, there["id"])
    local = make_initiative(api, keys.admin, here["id"])
    body = body_for(w, initiatives=[{"initiativeId": local["id"], "role": "host"},
                                    {"initiativeId": foreign["id"], "role": "guest"}])
    assert_problem(api.post("/v1/sessions", body, key=keys.admin), 400,
                   names={"initiatives": "reference"})
    assert of_werklab(api, keys, w) == []
    s = make_session(api, keys.admin, w["id"], 1, *S1,
                     initiatives=[{"initiativeId": local["id"], "role": "host"}])
    assert_problem(api.patch(url(s), {"initiatives": [{"initiativeId": foreign["id"],
                                                       "role": "host"}]}, key=keys.admin), 400,
                   names={"initiatives": "reference"})
    assert get(api, keys, s) == s
    # The rest of a refused patch is not kept either.
    assert_problem(api.patch(url(s), {"title": "Nieuw", "startsAt": "2026-05-01T08:00:00Z",
                                      "initiatives": [{"initiativeId": foreign["id"],
                                                       "role": "guest"}]}, key=keys.admin), 400,
                   names={"initiatives": "reference"})
    assert get(api, keys, s) == s


def test_unknown_initiative_is_400_reference(api, keys, werklab):
    body = body_for(werklab, initiatives=[{"initiativeId": str(uuid.uuid4()), "role": "host"}])
    assert_problem(api.post("/v1/sessions", body, key=keys.admin), 400,
                   names={"initiatives": "reference"})
    assert of_werklab(api, keys, werklab) == []


def test_repeated_initiative_is_400(api, keys, municipality, werklab):
    i = make_initiative(api, keys.admin, municipality["id"])
    for second_role in ("host", "guest"):
        body = body_for(werklab, initiatives=[{"initiativeId": i["id"], "role": "host"},
                                              {"initiativeId": i["id"], "role": second_role}])
        p = assert_problem(api.post("/v1/sessions", body, key=keys.admin), 400)
        assert {ip["name"] for ip in p["invalidParams"]} <= {"initiatives", "initiatives[1]"}, p
    body = body_for(werklab, initiatives=[{"initiativeId": i["id"], "role": "host"},
                                          {"initiativeId": i["id"].upper(), "role": "guest"}])
    assert_problem(api.post("/v1/sessions", body, key=keys.admin), 400)
    assert of_werklab(api, keys, werklab) == []


def test_initiatives_are_replaced_on_patch(api, keys, municipality, werklab):
    a, b, c = (make_initiative(api, keys.admin, municipality["id"]) for _ in range(3))
    s = make_session(api, keys.admin, werklab["id"], 1, *S1, kind="initiativeVisit",
                     initiatives=[{"initiativeId": a["id"], "role": "host"},
                                  {"initiativeId": b["id"], "role": "guest"}])
    r = api.patch(url(s), {"initiatives": [{"initiativeId": c["id"], "role": "host"}]},
                  key=keys.admin)
    s2 = assert_status(r, 200)
    assert s2["initiatives"] == [{"initiativeId": c["id"], "role": "host"}]
    assert s2["version"] == 2 and r.header("ETag") == '"2"'
    assert get(api, keys, s) == s2
    # A patch without initiatives keeps them.
    s3 = assert_status(api.patch(url(s), {"title": "Ander bezoek"}, key=keys.admin), 200)
    assert s3["initiatives"] == s2["initiatives"] and s3["version"] == 3
    # Roles change too; [] clears.
    s4 = assert_status(api.patch(url(s), {"initiatives": [
        {"initiativeId": c["id"], "role": "guest"}, {"initiativeId": a["id"], "role": "host"}]},
        key=keys.admin), 200)
    assert sorted((i["initiativeId"], i["role"]) for i in s4["initiatives"]) == \
        sorted([(c["id"], "guest"), (a["id"], "host")])
    s5 = assert_status(api.patch(url(s), {"initiatives": []}, key=keys.admin), 200)
    assert s5["initiatives"] == [] and s5["version"] == 5
    # b no longer takes part anywhere: it can be deleted.
    assert_status(api.delete(f"/v1/initiatives/{b['id']}", key=keys.admin), 204)


def test_initiatives_listed_host_first(api, keys, municipality, werklab):
    made = [make_initiative(api, keys.admin, municipality["id"]) for _ in range(4)]
    host = made[2]
    s = make_session(api, keys.admin, werklab["id"], 1, *S1, kind="initiativeVisit",
                     initiatives=[{"initiativeId": i["id"], "role": "host" if i is host else "guest"}
                                  for i in made])
    assert s["initiatives"][0] == {"initiativeId": host["id"], "role": "host"}
    assert len(s["initiatives"]) == 4


# ------------------------------------------------------------------ the werklab's dates


def test_werklab_dates_follow_sessions_in_amsterdam_time(api, keys, werklab):
    w0 = get_werklab(api, keys.admin, werklab["id"])
    assert w0["startsOn"] is None and w0["endsOn"] is None
    # 23:30 UTC on 1 March is 00:30 on 2 March in Amsterdam (CET, +1).
    a = make_session(api, keys.admin, werklab["id"], 1, "2026-03-01T23:30:00Z",
                     "2026-03-02T01:00:00Z")
    w1 = get_werklab(api, keys.admin, werklab["id"])
    assert (w1["startsOn"], w1["endsOn"]) == ("2026-03-02", "2026-03-02")
    assert w1["version"] > w0["version"]
    # 22:30 UTC on 1 July is 00:30 on 2 July (CEST, +2); 21:59 UTC stays on 1 July.
    b = make_session(api, keys.admin, werklab["id"], 2, "2026-07-01T20:00:00Z",
                     "2026-07-01T21:59:00Z")
    w2 = get_werklab(api, keys.admin, werklab["id"])
    assert (w2["startsOn"], w2["endsOn"]) == ("2026-03-02", "2026-07-01")
    assert_status(api.patch(url(b), {"endsAt": "2026-07-01T22:30:00Z"}, key=keys.admin), 200)
    w3 = get_werklab(api, keys.admin, werklab["id"])
    assert (w3["startsOn"], w3["endsOn"]) == ("2026-03-02", "2026-07-02")
    assert w3["version"] > w2["version"]
    # An earlier session moves startsOn; 22:59 UTC on 28 Feb is still 28 Feb in Amsterdam.
    c = make_session(api, keys.admin, werklab["id"], 3, "2026-02-28T22:00:00Z",
                     "2026-02-28T22:59:00Z")
    w4 = get_werklab(api, keys.admin, werklab["id"])
    assert (w4["startsOn"], w4["endsOn"]) == ("2026-02-28", "2026-07-02")
    # Deleting sessions moves the dates back.
    assert_status(api.delete(url(c), key=keys.admin), 204)
    assert get_werklab(api, keys.admin, werklab["id"])["startsOn"] == "2026-03-02"
    assert_status(api.delete(url(b), key=keys.admin), 204)
    w5 = get_werklab(api, keys.admin, werklab["id"])
    assert (w5["startsOn"], w5["endsOn"]) == ("2026-03-02", "2026-03-02")
    assert_status(api.delete(url(a), key=keys.admin), 204)
    w6 = get_werklab(api, keys.admin, werklab["id"])
    assert w6["startsOn"] is None and w6["endsOn"] is None


def test_moving_the_start_moves_starts_on(api, keys, werklab):
    s = make_session(api, keys.admin, werklab["id"], 1, "2026-03-10T09:00:00Z",
                     "2026-03-10T12:00:00Z")
    assert_status(api.patch(url(s), {"startsAt": "2026-03-09T23:00:00Z"}, key=keys.admin), 200)
    w = get_werklab(api, keys.admin, werklab["id"])
    assert (w["startsOn"], w["endsOn"]) == ("2026-03-10", "2026-03-10")
    assert_status(api.patch(url(s), {"startsAt": "2026-03-09T22:59:00Z"}, key=keys.admin), 200)
    assert get_werklab(api, keys.admin, werklab["id"])["startsOn"] == "2026-03-09"


def test_refused_session_leaves_werklab_dates(api, keys, werklab):
    make_session(api, keys.admin, werklab["id"], 1, *S1)
    w = get_werklab(api, keys.admin, werklab["id"])
    assert_problem(api.post("/v1/sessions", body_for(werklab, sequence=1,
                                                     startsAt="2026-01-01T09:00:00Z",
                                                     endsAt="2026-01-01T10:00:00Z"),
                            key=keys.admin), 409, conflicts={"unique"})
    assert get_werklab(api, keys.admin, werklab["id"]) == w


# ------------------------------------------------------------------ merge patch, preconditions


def test_patch_merges_and_bumps_version(api, keys, werklab):
    s0 = make_session(api, keys.admin, werklab["id"], 1, *S1, description="Eerst",
                      location={"name": "Buurthuis", "address": "Dorpsstraat 1", "onSite": True})
    r = api.patch(url(s0), {"location": {"onSite": False}}, key=keys.staff)
    s1 = assert_status(r, 200)
    assert r.header("ETag") == '"2"'
    assert s1 == dict(s0, location=dict(s0["location"], onSite=False), version=2,
                      updatedAt=s1["updatedAt"])
    s2 = assert_status(api.patch(url(s0), {"description": None, "sequence": 7,
                                           "kind": "ownRole"}, key=keys.admin), 200)
    assert s2["description"] is None and s2["sequence"] == 7 and s2["kind"] == "ownRole"
    assert s2["title"] == s0["title"] and s2["version"] == 3
    s3 = assert_status(api.patch(url(s0), {"location": None}, key=keys.admin), 200)
    assert s3["location"] is None
    assert get(api, keys, s0) == s3


def test_if_none_match_and_if_match(api, keys, werklab):
    s = make_session(api, keys.admin, werklab["id"], 1, *S1)
    assert_status(api.get(url(s), key=keys.admin, headers={"If-None-Match": '"1"'}), 304)
    s2 = assert_status(api.patch(url(s), {"title": "Twee"}, key=keys.admin), 200)
    assert_problem(api.patch(url(s), {"title": "Oud"}, key=keys.admin,
                             headers={"If-Match": '"1"'}), 412)
    assert_problem(api.delete(url(s), key=keys.admin, headers={"If-Match": '"1"'}), 412)
    assert get(api, keys, s) == s2
    assert_status(api.delete(url(s), key=keys.admin, headers={"If-Match": '"2"'}), 204)


# ------------------------------------------------------------------ delete


def test_delete(api, keys, werklab):
    s = make_session(api, keys.admin, werklab["id"], 1, *S1)
    r = api.delete(url(s), key=keys.staff)
    assert_status(r, 204)
    assert r.body == b""
    assert_problem(api.get(url(s), key=keys.admin), 404)
    assert_problem(api.delete(url(s), key=keys.admin), 404)
    assert_problem(api.get(f"{url(s)}/attendance", key=keys.admin), 404)
    assert of_werklab(api, keys, werklab) == []


def test_delete_with_attendance_and_initiatives(api, keys, municipality, werklab):
    i = make_initiative(api, keys.admin, municipality["id"])
    p = make_participant(api, keys.admin, werklab["id"])
    s = make_session(api, keys.admin, werklab["id"], 1, *S1,
                     initiatives=[{"initiativeId": i["id"], "role": "host"}])
    assert_status(api.put(f"{url(s)}/attendance", [{"participantId": p["id"], "status": "present"}],
                          key=keys.admin), 200)
    assert_status(api.delete(url(s), key=keys.admin), 204)
    # What hung under it went with it: the participant and the initiative are free.
    assert_status(api.delete(f"/v1/werklabs/{werklab['id']}/participants/{p['id']}",
                             key=keys.admin), 204)
    assert_status(api.delete(f"/v1/initiatives/{i['id']}", key=keys.admin), 204)


def test_delete_with_feedback_is_409_referenced(api, keys, werklab):
    s = make_session(api, keys.admin, werklab["id"], 1, *S1)
    assert_status(api.post("/v1/feedback", {"werklabId": werklab["id"], "sessionId": s["id"],
                                            "kind": "trainerNote", "body": "Goede sfeer."},
                           key=keys.admin), 201)
    assert_problem(api.delete(url(s), key=keys.admin), 409, conflicts={"referenced"})
    assert get(api, keys, s) == s


# ------------------------------------------------------------------ lists


def test_filters(api, keys, municipality, werklab):
    other = make_werklab(api, keys.admin, municipality["id"])
    a = make_session(api, keys.admin, werklab["id"], 1, "2026-03-01T09:00:00Z",
                     "2026-03-01T12:00:00Z", kind="ownRole")
    b = make_session(api, keys.admin, werklab["id"], 2, "2026-04-01T09:00:00Z",
                     "2026-04-01T12:00:00Z", kind="custom")
    c = make_session(api, keys.admin, werklab["id"], 3, "2026-05-01T09:00:00Z",
                     "2026-05-01T12:00:00Z", kind="municipalCollaboration")
    x = make_session(api, keys.admin, other["id"], 1, "2026-04-01T09:00:00Z",
                     "2026-04-01T12:00:00Z", kind="custom")
    assert ids(of_werklab(api, keys, werklab)) == [a["id"], b["id"], c["id"]]
    assert ids(of_werklab(api, keys, other)) == [x["id"]]
    assert x["id"] in ids(api.list_all("/v1/sessions", keys.admin, {"kind": "custom"})[0])
    a, b, c = a["id"], b["id"], c["id"]
    cases = [({"kind": "custom"}, {b}), ({"kind": "ownRole,municipalCollaboration"}, {a, c}),
             ({"kind": "initiativeVisit"}, set()),
             ({"startsAtFrom": "2026-04-01T09:00:00Z"}, {b, c}),
             ({"startsAtFrom": "2026-04-01T09:00:01Z"}, {c}),
             ({"startsAtTo": "2026-04-01T09:00:00Z"}, {a, b}),
             ({"startsAtTo": "2026-04-01T11:00:00+02:00"}, {a, b}),
             ({"startsAtTo": "2026-04-01T10:59:59+02:00"}, {a}),
             ({"startsAtFrom": "2026-03-15T00:00:00Z", "startsAtTo": "2026-04-15T00:00:00Z"}, {b})]
    for params, want in cases:
        got = of_werklab(api, keys, werklab, params)
        assert set(ids(got)) == want, params


def test_updated_since(api, keys, werklab):
    a = make_session(api, keys.admin, werklab["id"], 1, *S1)
    b = make_session(api, keys.admin, werklab["id"], 2, "2026-06-01T09:00:00Z",
                     "2026-06-01T12:00:00Z")
    time.sleep(0.05)
    b2 = assert_status(api.patch(url(b), {"title": "Later"}, key=keys.admin), 200)
    assert ids(of_werklab(api, keys, werklab, {"updatedSince": b2["updatedAt"]})) == [b["id"]]
    assert set(ids(of_werklab(api, keys, werklab, {"updatedSince": a["createdAt"]}))) == \
        {a["id"], b["id"]}


BAD_QUERIES = {
    "werklabId": ("werklabId=abc", "werklabId"),
    "kind": ("kind=workshop", "kind"),
    "startsAtFrom": ("startsAtFrom=2026-04-01", "startsAtFrom"),
    "startsAtTo": ("startsAtTo=later", "startsAtTo"),
    "updatedSince": ("updatedSince=1", "updatedSince"),
    "sort": ("sort=title", "sort"),
    "sort-endsAt": ("sort=-endsAt", "sort"),
    "unknown": ("municipalityId=" + str(uuid.uuid4()), "municipalityId"),
}


@pytest.mark.parametrize("case", sorted(BAD_QUERIES))
def test_bad_query(api, keys, case):
    query, name = BAD_QUERIES[case]
    assert_problem(api.get(f"/v1/sessions?{query}", key=keys.admin), 400, names=[name])


def test_filter_on_unknown_werklab(api, keys):
    r = api.get(f"/v1/sessions?werklabId={uuid.uuid4()}", key=keys.admin)
    assert r.status in (200, 404), describe(r)
    if r.status == 200:
        assert r.json["items"] == []


@pytest.mark.parametrize("desc", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("sort_key", ["startsAt", "sequence", "createdAt", "updatedAt"])
def test_sort_keys(api, keys, werklab, sort_key, desc):
    # sequence, start day: made in an order that differs from both.
    made = [make_session(api, keys.admin, werklab["id"], seq, f"2026-05-{day:02d}T09:00:00Z",
                         f"2026-05-{day:02d}T12:00:00Z")
            for seq, day in ((3, 10), (1, 20), (4, 5), (2, 15))]
    for s in (made[1], made[3], made[0], made[2]):
        assert_status(api.patch(url(s), {"description": "bijgewerkt"}, key=keys.admin), 200)
    now = [get(api, keys, s) for s in made]
    want = sorted(now, key=lambda s: (as_ordered(s[sort_key]), s["id"]), reverse=desc)
    sort = ("-" if desc else "") + sort_key
    assert ids(of_werklab(api, keys, werklab, {"sort": sort})) == ids(want)
    paged, _ = api.list_all("/v1/sessions", keys.admin, {"werklabId": werklab["id"], "sort": sort},
                            limit=1)
    assert ids(paged) == ids(want)


# ------------------------------------------------------------------ attendance


def attendance_url(s):
    return f"{url(s)}/attendance"


def attendance(api, keys, s):
    return assert_status(api.get(attendance_url(s), key=keys.admin), 200)


@pytest.fixture
def gathering(api, keys, werklab):
    """A session and three participants of its werklab."""
    people = [make_participant(api, keys.admin, werklab["id"]) for _ in range(3)]
    return make_session(api, keys.admin, werklab["id"], 1, *S1), people


def by_participant(items):
    return sorted(items, key=lambda a: a["participantId"])


def test_attendance_starts_empty(api, keys, gathering):
    s, _ = gathering
    assert attendance(api, keys, s) == {"items": [], "next": None}


def test_attendance_put_replaces_the_list(api, keys, gathering):
    s, (a, b, c) = gathering
    body = [{"participantId": a["id"], "status": "present"},
            {"participantId": b["id"], "status": "absent"},
            {"participantId": c["id"], "status": "excused"}]
    r = api.put(attendance_url(s), body, key=keys.staff)
    got = assert_status(r, 200)
    assert got["next"] is None
    assert by_participant(got["items"]) == by_participant(body)
    assert attendance(api, keys, s) == got
    # A second PUT replaces: b is gone, a changed.
    body2 = [{"participantId": a["id"], "status": "excused"},
             {"participantId": c["id"], "status": "excused"}]
    got2 = assert_status(api.put(attendance_url(s), body2, key=keys.admin), 200)
    assert by_participant(got2["items"]) == by_participant(body2)
    assert attendance(api, keys, s) == got2
    assert assert_status(api.put(attendance_url(s), [], key=keys.admin), 200) == \
        {"items": [], "next": None}
    assert attendance(api, keys, s)["items"] == []


def test_attendance_is_per_session(api, keys, werklab, gathering):
    s, (a, b, _) = gathering
    s2 = make_session(api, keys.admin, werklab["id"], 2, "2026-06-01T09:00:00Z",
                      "2026-06-01T12:00:00Z")
    assert_status(api.put(attendance_url(s), [{"participantId": a["id"], "status": "present"}],
                          key=keys.admin), 200)
    assert_status(api.put(attendance_url(s2), [{"participantId": b["id"], "status": "absent"}],
                          key=keys.admin), 200)
    assert attendance(api, keys, s)["items"] == [{"participantId": a["id"], "status": "present"}]
    assert attendance(api, keys, s2)["items"] == [{"participantId": b["id"], "status": "absent"}]


def test_attendance_participant_of_another_werklab_changes_nothing(api, keys, municipality,
                                                                   gathering):
    s, (a, b, _) = gathering
    before = assert_status(api.put(attendance_url(s), [{"participantId": a["id"],
                                                        "status": "present"}], key=keys.admin), 200)
    other = make_werklab(api, keys.admin, municipality["id"], status="intake")
    stranger = make_participant(api, keys.admin, other["id"])
    body = [{"participantId": b["id"], "status": "present"},
            {"participantId": stranger["id"], "status": "present"}]
    assert_problem(api.put(attendance_url(s), body, key=keys.admin), 400,
                   names={"body[1].participantId": "reference"})
    assert attendance(api, keys, s) == before


def test_attendance_unknown_participants_are_all_listed(api, keys, gathering):
    s, (a, _, _) = gathering
    body = [{"participantId": str(uuid.uuid4()), "status": "present"},
            {"participantId": a["id"], "status": "present"},
            {"participantId": str(uuid.uuid4()), "status": "absent"}]
    assert_problem(api.put(attendance_url(s), body, key=keys.admin), 400,
                   names={"body[0].participantId": "reference",
                          "body[2].participantId": "reference"})
    assert attendance(api, keys, s)["items"] == []


@pytest.mark.parametrize("same_status", [True, False])
def test_attendance_duplicate_participant_is_400(api, keys, gathering, same_status):
    s, (a, b, _) = gathering
    before = assert_status(api.put(attendance_url(s), [{"participantId": b["id"],
                                                        "status": "absent"}], key=keys.admin), 200)
    body = [{"participantId": a["id"], "status": "present"},
            {"participantId": a["id"], "status": "present" if same_status else "absent"}]
    assert_problem(api.put(attendance_url(s), body, key=keys.admin), 400, names=["body[1]"])
    assert attendance(api, keys, s) == before


def test_attendance_refused_list_changes_nothing(api, keys, municipality, gathering):
    """Unknown participants and participants of another werklab in one list: each is named, in
    the order of the list, and neither the list nor the session's version moves."""
    s, (a, b, _) = gathering
    r = api.put(attendance_url(s), [{"participantId": a["id"], "status": "present"}],
                key=keys.admin)
    before = assert_status(r, 200)
    version = r.header("ETag")
    other = make_werklab(api, keys.admin, municipality["id"], status="intake")
    stranger = make_participant(api, keys.admin, other["id"])
    body = [{"participantId": b["id"], "status": "present"},
            {"participantId": str(uuid.uuid4()), "status": "absent"},
            {"participantId": stranger["id"], "status": "excused"},
            {"participantId": a["id"], "status": "absent"}]
    assert_problem(api.put(attendance_url(s), body, key=keys.admin), 400,
                   names={"body[1].participantId": "reference",
                          "body[2].participantId": "reference"})
    r = api.get(attendance_url(s), key=keys.admin)
    assert assert_status(r, 200) == before
    assert r.header("ETag") == version, describe(r)
    assert get(api, keys, s)["version"] == int(version.strip('"'))


def test_attendance_concurrent_replacements_take_turns(api, keys, gathering):
    """PUTs of one list at the same time: each replaces the whole list and answers it (the
    session is locked for the replacement), each gets a version of its own, and the list left is
    the one of the last version."""
    s, people = gathering
    bodies = [[{"participantId": p["id"], "status": status} for p in people[:n]]
              for n in (1, 2, 3) for status in ("present", "absent")]
    answers = [None] * len(bodies)

    def put(i):
        answers[i] = api.put(attendance_url(s), bodies[i], key=keys.admin)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    versions = []
    for body, r in zip(bodies, answers):
        assert by_participant(assert_status(r, 200)["items"]) == by_participant(body)
        versions.append(int(r.header("ETag").strip('"')))
    assert len(set(versions)) == len(bodies), versions
    last = bodies[versions.index(max(versions))]
    assert attendance(api, keys, s)["items"] == by_participant(last)
    assert get(api, keys, s)["version"] == max(versions)


BAD_ATTENDANCE = {
    "object": ({"participantId": "{a}", "status": "present"}, {"body": "type"}),
    "string": ("present", None),  # not a JSON text the server takes: 400 without invalidParams
    "item-type": (["{a}"], {"body[0]": "type"}),
    "status-enum": ([{"participantId": "{a}", "status": "late"}], {"body[0]": "enum"}),
    "status-missing": ([{"participantId": "{a}"}], {"body[0]": "required"}),
    "status-type": ([{"participantId": "{a}", "status": 1}], {"body[0]": "type"}),
    "participant-missing": ([{"status": "present"}], {"body[0]": "required"}),
    "participant-malformed": ([{"participantId": "p1", "status": "present"}], {"body[0]": "format"}),
    "extra-member": ([{"participantId": "{a}", "status": "present", "note": "laat"}],
                     {"body[0]": "unknown"}),
}


def fill_a(value, a):
    if isinstance(value, list):
        return [fill_a(v, a) for v in value]
    if isinstance(value, dict):
        return {k: fill_a(v, a) for k, v in value.items()}
    return a["id"] if value == "{a}" else value


@pytest.mark.parametrize("case", sorted(BAD_ATTENDANCE))
def test_attendance_bad_body(api, keys, gathering, case):
    s, (a, b, _) = gathering
    before = assert_status(api.put(attendance_url(s), [{"participantId": b["id"],
                                                        "status": "absent"}], key=keys.admin), 200)
    body, names = BAD_ATTENDANCE[case]
    assert_problem(api.put(attendance_url(s), fill_a(body, a), key=keys.admin), 400, names=names)
    assert attendance(api, keys, s) == before


@pytest.mark.parametrize("sid", ["{unknown}", "not-a-uuid"])
def test_attendance_of_unknown_session_is_404(api, keys, sid):
    sid = str(uuid.uuid4()) if sid == "{unknown}" else sid
    assert_problem(api.get(f"/v1/sessions/{sid}/attendance", key=keys.admin), 404)
    assert_problem(api.put(f"/v1/sessions/{sid}/attendance", [], key=keys.admin), 404)


def test_attendance_in_a_running_werklab(api, keys, municipality):
    w = advance(api, keys.admin, make_werklab(api, keys.admin, municipality["id"])["id"], "running")
    s = of_werklab(api, keys, w)[0]
    people, _ = api.list_all(f"/v1/werklabs/{w['id']}/participants", keys.admin)
    body = [{"participantId": p["id"], "status": "present"} for p in people]
    got = assert_status(api.put(attendance_url(s), body, key=keys.admin), 200)
    assert len(got["items"]) == len(people) == w["capacity"]["min"]

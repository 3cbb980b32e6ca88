"""Partner keys: read only, never personal data (nor quotes), and when limited to a set of
municipalities (`werklabd create-key --role partner --municipalities GM....`), nothing outside
them exists: GET by id and filters naming something outside answer 404, lists hold only rows
inside, and /v1/stats counts only inside.
"""

import uuid

import pytest

from domain import advance, make_initiative, make_participant, make_session, make_werklab
from wlclient import KEY_RE, assert_problem, assert_status, describe, qs


def make_world(api, keys, code_pool, label):
    """A municipality with an initiative, a werklab (two trainers, a participant, a session the
    initiative hosts, and rated feedback naming the participant)."""
    key = keys.staff
    for _ in range(20):
        r = api.post("/v1/municipalities", {
            "code": code_pool(), "name": f"{label} {uuid.uuid4().hex[:4]}", "province": "Zeeland",
            "contact": {"name": "Gemeentesecretaris", "email": "secretaris@example.nl",
                        "phone": "0118 123 456"}}, key=keys.admin)
        if r.status != 409:
            break
    assert r.status == 201, describe(r)
    m = r.json
    initiative = make_initiative(api, key, m["id"], name=f"Dorpshuis {label}",
                                 contact={"name": "Ans Bosman", "email": "ans@example.nl"})
    werklab = make_werklab(api, key, m["id"], status="intake", title=f"Werklab {label}",
                           quote={"amountCents": 990000, "note": "offerte"})
    werklab = advance(api, key, werklab["id"], "planned")
    participant = make_participant(api, key, werklab["id"], name=f"Deelnemer {label}")
    session = make_session(api, key, werklab["id"], 1, "2031-05-06T08:00:00Z",
                           "2031-05-06T11:00:00Z", kind="initiativeVisit",
                           initiatives=[{"initiativeId": initiative["id"], "role": "host"}])
    r = api.post("/v1/feedback", {"werklabId": werklab["id"], "sessionId": session["id"],
                                  "kind": "evaluation", "participantId": participant["id"],
                                  "rating": 4, "body": "Mooi bezoek."}, key=key)
    assert r.status == 201, describe(r)
    return dict(municipality=m, initiative=initiative, werklab=werklab, participant=participant,
                session=session, feedback=r.json)


@pytest.fixture(scope="module")
def world(api, keys, code_pool, werklabd):
    inside = make_world(api, keys, code_pool, "Veere")
    outside = make_world(api, keys, code_pool, "Sluis")
    out = werklabd.run("create-key", "--role", "partner",
                       "--name", f"partner-veere-{uuid.uuid4().hex[:6]}",
                       "--municipalities", inside["municipality"]["code"])
    assert out.returncode == 0, out.stderr
    limited = out.stdout.strip()
    assert KEY_RE.match(limited), out.stdout
    return dict(inside=inside, outside=outside, limited=limited)


def paths(w):
    return {
        "municipality": f"/v1/municipalities/{w['municipality']['id']}",
        "initiative": f"/v1/initiatives/{w['initiative']['id']}",
        "werklab": f"/v1/werklabs/{w['werklab']['id']}",
        "session": f"/v1/sessions/{w['session']['id']}",
        "feedback": f"/v1/feedback/{w['feedback']['id']}",
        "werklab trainers": f"/v1/werklabs/{w['werklab']['id']}/trainers",
    }


def test_create_key_needs_existing_municipalities(werklabd, code_pool):
    out = werklabd.run("create-key", "--role", "partner", "--name", "nergens",
                       "--municipalities", code_pool())
    assert out.returncode != 0 and out.stdout == "", out
    out = werklabd.run("create-key", "--role", "staff", "--name", "staf",
                       "--municipalities", "GM0297")
    assert out.returncode != 0 and out.stdout == "", out


@pytest.mark.parametrize("what", ["municipality", "initiative", "werklab", "session", "feedback",
                                  "werklab trainers"])
def test_get_inside_and_outside(api, keys, world, what):
    inside, outside = paths(world["inside"])[what], paths(world["outside"])[what]
    assert_status(api.get(inside, key=world["limited"]), 200)
    assert_problem(api.get(outside, key=world["limited"]), 404)
    # HEAD too, and the unlimited partner sees both.
    assert api.head(outside, key=world["limited"]).status == 404
    assert_status(api.get(inside, key=keys.partner), 200)
    assert_status(api.get(outside, key=keys.partner), 200)


def test_outside_looks_like_nothing(api, world):
    """The 404 for an outside row is the 404 for a row that does not exist."""
    real = api.get(paths(world["outside"])["werklab"], key=world["limited"])
    fake = api.get(f"/v1/werklabs/{uuid.uuid4()}", key=world["limited"])
    assert real.status == fake.status == 404
    assert set(real.json) == set(fake.json)
    assert real.json["title"] == fake.json["title"]


LISTS = {
    "/v1/municipalities": lambda item, ids: item["id"] in ids["municipalities"],
    "/v1/initiatives": lambda item, ids: item["municipalityId"] in ids["municipalities"],
    "/v1/werklabs": lambda item, ids: item["municipalityId"] in ids["municipalities"],
    "/v1/sessions": lambda item, ids: item["werklabId"] in ids["werklabs"],
    "/v1/feedback": lambda item, ids: item["werklabId"] in ids["werklabs"],
}


@pytest.mark.parametrize("path", sorted(LISTS))
def test_lists_hold_only_inside(api, world, path):
    inside = world["inside"]
    items, _ = api.list_all(path, world["limited"])
    ids = {"municipalities": {inside["municipality"]["id"]}, "werklabs": {inside["werklab"]["id"]}}
    assert items, f"{path} is empty for the limited key"
    strays = [i for i in items if not LISTS[path](i, ids)]
    assert not strays, strays[:3]
    key = {"/v1/municipalities": "municipality", "/v1/initiatives": "initiative",
           "/v1/werklabs": "werklab", "/v1/sessions": "session", "/v1/feedback": "feedback"}[path]
    assert inside[key]["id"] in {i["id"] for i in items}


def test_list_filters_by_value_stay_inside(api, world):
    outside = world["outside"]["municipality"]
    r = api.get(qs("/v1/municipalities", code=outside["code"]), key=world["limited"])
    assert assert_status(r, 200)["items"] == []
    r = api.get(qs("/v1/municipalities", province="Zeeland"), key=world["limited"])
    assert [m["id"] for m in assert_status(r, 200)["items"]] == \
        [world["inside"]["municipality"]["id"]]


@pytest.mark.parametrize("path, param, what", [
    ("/v1/initiatives", "municipalityId", "municipality"),
    ("/v1/werklabs", "municipalityId", "municipality"),
    ("/v1/sessions", "werklabId", "werklab"),
    ("/v1/feedback", "werklabId", "werklab"),
    ("/v1/feedback", "sessionId", "session"),
])
def test_filter_naming_outside(api, keys, world, path, param, what):
    inside, outside = world["inside"][what]["id"], world["outside"][what]["id"]
    r = api.get(qs(path, **{param: inside}), key=world["limited"])
    assert assert_status(r, 200)["items"], describe(r)
    assert_problem(api.get(qs(path, **{param: outside}), key=world["limited"]), 404)
    r = api.get(qs(path, **{param: outside}), key=keys.partner)
    assert assert_status(r, 200)["items"], describe(r)


def stats_totals(api, key, **params):
    r = api.get(qs("/v1/stats", **params), key=key)
    return assert_status(r, 200)["items"]


def test_stats_count_only_inside(api, keys, world):
    items = stats_totals(api, world["limited"])
    assert len(items) == 1, items
    s = items[0]
    assert (s["year"], s["province"]) == (2031, "Zeeland")
    assert s["werklabs"]["total"] == 1 and s["werklabs"]["planned"] == 1
    assert s["participants"] == 1
    assert s["initiatives"] == 1
    assert s["averageRating"] == 4
    assert s["sessionsHeld"] == 0  # its one session, in 2031, is still to come

    unlimited = stats_totals(api, keys.partner, year=2031, province="Zeeland")
    assert unlimited and unlimited[0]["werklabs"]["total"] >= 2
    assert stats_totals(api, world["limited"], year=2031, province="Zeeland") == items
    assert stats_totals(api, world["limited"], province="Groningen") == []


# ------------------------------------------------------------------ what partners never see


@pytest.fixture(params=["limited", "unlimited"])
def partner(request, keys, world):
    return world["limited"] if request.param == "limited" else keys.partner


def test_no_personal_data_or_quote(api, keys, world, partner):
    w = world["inside"]
    m = assert_status(api.get(paths(w)["municipality"], key=partner), 200)
    assert "contact" not in m, m
    i = assert_status(api.get(paths(w)["initiative"], key=partner), 200)
    assert "contact" not in i, i
    f = assert_status(api.get(paths(w)["feedback"], key=partner), 200)
    assert "participantId" not in f, f
    assert f["rating"] == 4
    wl = assert_status(api.get(paths(w)["werklab"], key=partner), 200)
    assert "quote" not in wl, wl
    assert wl["title"] == w["werklab"]["title"] and len(wl["trainers"]) == 2

    # The same with the staff key: they are there.
    assert assert_status(api.get(paths(w)["initiative"], key=keys.staff), 200)["contact"]
    assert assert_status(api.get(paths(w)["werklab"], key=keys.staff), 200)["quote"]
    assert assert_status(api.get(paths(w)["feedback"], key=keys.staff), 200)["participantId"]

    # And in lists.
    for path, field, params in (
            ("/v1/municipalities", "contact", {"code": w["municipality"]["code"]}),
            ("/v1/initiatives", "contact", {"municipalityId": w["municipality"]["id"]}),
            ("/v1/werklabs", "quote", {"municipalityId": w["municipality"]["id"]}),
            ("/v1/feedback", "participantId", {"werklabId": w["werklab"]["id"]})):
        items, _ = api.list_all(path, partner, params)
        assert items, path
        for item in items:
            assert field not in item, (path, item)
    text = api.get(qs("/v1/initiatives", municipalityId=w["municipality"]["id"]),
                   key=partner).body.decode()
    assert "ans@example.nl" not in text and "Ans Bosman" not in text


def test_forbidden_to_partners(api, world, partner):
    w = world["inside"]
    werklab, participant = w["werklab"]["id"], w["participant"]["id"]
    forbidden = [
        ("GET", f"/v1/werklabs/{werklab}/participants"),
        ("GET", f"/v1/werklabs/{werklab}/participants/{participant}"),
        ("GET", f"/v1/sessions/{w['session']['id']}/attendance"),
        ("GET", "/v1/inquiries"),
        ("GET", "/v1/trainers"),
        ("GET", f"/v1/trainers/{w['werklab']['trainers'][0]['trainerId']}"),
        ("PUT", f"/v1/werklabs/{werklab}/trainers/municipalOrganisation"),
        ("DELETE", f"/v1/werklabs/{werklab}/trainers/municipalOrganisation"),
        ("PUT", f"/v1/sessions/{w['session']['id']}/attendance"),
        ("PATCH", f"/v1/werklabs/{werklab}"),
        ("POST", "/v1/initiatives"),
        ("DELETE", f"/v1/initiatives/{w['initiative']['id']}"),
        ("POST", "/v1/sessions"),
        ("PATCH", f"/v1/municipalities/{w['municipality']['id']}"),
    ]
    for method, path in forbidden:
        body = None if method in ("GET", "DELETE") else {}
        r = api.request(method, path, json_body=body, key=partner)
        assert_problem(r, 403)
    # Out of scope too: still 403, the role decides first.
    outside = world["outside"]["werklab"]["id"]
    assert_problem(api.get(f"/v1/werklabs/{outside}/participants", key=partner), 403)


def test_staff_key_is_not_limited(api, keys, world):
    for what, path in paths(world["outside"]).items():
        assert api.get(path, key=keys.staff).status == 200, what


def test_trainer_assignments_for_partners(api, world, partner):
    items = assert_status(api.get(paths(world["inside"])["werklab trainers"], key=partner),
                          200)["items"]
    assert {a["role"] for a in items} == {"municipalOrganisation", "residentInitiatives"}
    for a in items:
        assert set(a) == {"trainerId", "role", "assignedAt"}, a

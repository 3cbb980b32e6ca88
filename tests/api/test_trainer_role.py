"""The trainer role (issue 10): a person signed in with an access token whose role is trainer,
linked to a trainer record by the token's sub.

A trainer reads the werklabs they are assigned to, with their participants, sessions,
attendance and feedback; records attendance, edits those sessions' details and records feedback
for them. Everything outside is 404, as for a limited partner: by id, in lists, through filters,
in CSV and in the figures. They never see quotes, inquiries, other trainers' personal data, the
change feed, the audit log or keys, and write nothing else (403). A trainer token that matches no
trainer record is 403 everywhere.

Every test builds a world of its own (`world`): a trainer assigned to werklab A, and werklabs
B1 (same municipality) and B2 (another municipality, another province) they are not assigned to,
each with participants, an attended session hosted by an initiative and rated feedback.
"""

import csv
import io
import uuid

import pytest

from domain import assign_trainer, make_initiative, make_participant, make_session, make_trainer, \
    make_werklab
from wlclient import assert_problem, assert_status, describe, qs

TRAINER = ["lsa-trainer"]
PROVINCE_A, PROVINCE_OTHER = "Zeeland", "Drenthe"
# The one session of each werklab lies in the past (so it counts as held); its year is the
# werklab's year in the figures.
YEAR = 2025
SESSION = ("2025-04-08T08:00:00Z", "2025-04-08T11:00:00Z")


def unique():
    return uuid.uuid4().hex[:10]


def trainer_token(oidc, subject, **claims):
    return oidc.mint(dict({"sub": subject, "roles": TRAINER}, **claims))


def ids(items):
    return {item["id"] for item in items}


def build_werklab(api, admin, municipality, label, tag, trainers, rating):
    """A werklab in intake with trainers {role: trainer id}, two participants, a past session
    hosted by an initiative of its municipality, attendance and rated feedback."""
    w = make_werklab(api, admin, municipality["id"], status="intake",
                     title=f"Werklab {label} {tag}",
                     quote={"amountCents": 123400, "currency": "EUR", "note": f"offerte {label}"})
    for role, trainer_id in trainers.items():
        assign_trainer(api, admin, w["id"], role, trainer_id)
    participants = [make_participant(api, admin, w["id"], name=f"Deelnemer {label}{n} {tag}",
                                     email=f"{label.lower()}{n}-{tag}@example.nl",
                                     jobTitle="beleidsadviseur")
                    for n in (1, 2)]
    initiative = make_initiative(api, admin, municipality["id"], name=f"Dorpshuis {label} {tag}")
    session = make_session(api, admin, w["id"], 1, *SESSION, kind="initiativeVisit",
                           title=f"Bezoek {label} {tag}",
                           initiatives=[{"initiativeId": initiative["id"], "role": "host"}])
    attendance = [{"participantId": participants[0]["id"], "status": "present"}]
    assert_status(api.put(f"/v1/sessions/{session['id']}/attendance", attendance, key=admin), 200)
    r = api.post("/v1/feedback", {"werklabId": w["id"], "sessionId": session["id"],
                                  "kind": "evaluation", "participantId": participants[0]["id"],
                                  "rating": rating, "body": f"Leerzaam {label} {tag}"}, key=admin)
    feedback = assert_status(r, 201)
    # As they are now (attendance gave the session a new version).
    w = assert_status(api.get(f"/v1/werklabs/{w['id']}", key=admin), 200)
    session = assert_status(api.get(f"/v1/sessions/{session['id']}", key=admin), 200)
    return dict(werklab=w, participants=participants, initiative=initiative, session=session,
                attendance=attendance, feedback=feedback)


@pytest.fixture
def world(api, keys, oidc, new_municipality):
    admin = keys.admin
    tag = unique()
    home = new_municipality(province=PROVINCE_A)
    away = new_municipality(province=PROVINCE_OTHER)
    subject = f"t-{uuid.uuid4().hex}"
    me = make_trainer(api, admin, expertise=["municipalOrganisation"], subject=subject,
                      phone="+31 6 1111 2222", bio=f"Trainer {tag}")
    other_subject = f"t-{uuid.uuid4().hex}"
    other = make_trainer(api, admin, subject=other_subject, phone="+31 6 3333 4444",
                         bio=f"Collega {tag}")
    a = build_werklab(api, admin, home, "A", tag, {"municipalOrganisation": me["id"],
                                                    "residentInitiatives": other["id"]}, rating=2)
    b1 = build_werklab(api, admin, home, "B1", tag, {"municipalOrganisation": other["id"]},
                       rating=5)
    b2 = build_werklab(api, admin, away, "B2", tag, {"residentInitiatives": other["id"]},
                       rating=5)
    token = trainer_token(oidc, subject)
    return dict(tag=tag, home=home, away=away, me=me, other=other, subject=subject,
                other_subject=other_subject, a=a, b1=b1, b2=b2, outside=(b1, b2), token=token)


def item_paths(w):
    """What belongs to one werklab, by id."""
    wid, sid = w["werklab"]["id"], w["session"]["id"]
    return {
        "werklab": f"/v1/werklabs/{wid}",
        "participants": f"/v1/werklabs/{wid}/participants",
        "participant": f"/v1/werklabs/{wid}/participants/{w['participants'][0]['id']}",
        "session": f"/v1/sessions/{sid}",
        "attendance": f"/v1/sessions/{sid}/attendance",
        "feedback": f"/v1/feedback/{w['feedback']['id']}",
        "trainers": f"/v1/werklabs/{wid}/trainers",
    }


def csv_table(api, path, key):
    r = api.get(path, key=key, headers={"Accept": "text/csv"})
    assert r.status == 200, describe(r)
    assert r.header("Content-Type") == "text/csv; charset=utf-8", describe(r)
    rows = list(csv.reader(io.StringIO(r.body.decode("utf-8"), newline=""), strict=True))
    assert rows, describe(r)
    header = rows[0]
    return header, [dict(zip(header, row)) for row in rows[1:]]


# ------------------------------------------------------------------ who the trainer is


def test_the_token_is_the_linked_trainer(api, world):
    got = assert_status(api.get("/v1/me", key=world["token"]), 200)
    assert got["role"] == "trainer", got
    assert got["trainerId"] == world["me"]["id"], got
    assert got["subject"] == world["subject"] and got["keyId"] is None, got


# ------------------------------------------------------------------ their own werklab


def test_reads_their_werklab_by_id_and_in_the_list(api, world):
    token, a = world["token"], world["a"]
    got = assert_status(api.get(item_paths(a)["werklab"], key=token), 200)
    assert got["id"] == a["werklab"]["id"] and got["title"] == a["werklab"]["title"], got
    assert got["participantCount"] == 2 and got["status"] == "intake", got
    assert {(t["trainerId"], t["role"]) for t in got["trainers"]} == {
        (world["me"]["id"], "municipalOrganisation"),
        (world["other"]["id"], "residentInitiatives")}, got
    items, _ = api.list_all("/v1/werklabs", token)
    assert [i["id"] for i in items] == [a["werklab"]["id"]], items
    assert items[0]["title"] == a["werklab"]["title"]


def test_reads_their_werklabs_participants(api, world):
    token, a = world["token"], world["a"]
    items, _ = api.list_all(item_paths(a)["participants"], token)
    # A trainer takes attendance: they see who is in their werklab, e-mail address included.
    assert {(p["id"], p["name"], p["email"]) for p in items} == {
        (p["id"], p["name"], p["email"]) for p in a["participants"]}, items
    got = assert_status(api.get(item_paths(a)["participant"], key=token), 200)
    first = a["participants"][0]
    assert (got["id"], got["email"], got["jobTitle"]) == (first["id"], first["email"],
                                                          "beleidsadviseur"), got


def test_reads_their_werklabs_sessions_attendance_and_feedback(api, world):
    token, a = world["token"], world["a"]
    paths = item_paths(a)
    items, _ = api.list_all("/v1/sessions", token)
    assert [s["id"] for s in items] == [a["session"]["id"]], items
    got = assert_status(api.get(paths["session"], key=token), 200)
    assert got["title"] == a["session"]["title"] and got["werklabId"] == a["werklab"]["id"], got
    assert got["initiatives"] == [{"initiativeId": a["initiative"]["id"], "role": "host"}], got

    got = assert_status(api.get(paths["attendance"], key=token), 200)
    assert got["items"] == a["attendance"], got

    items, _ = api.list_all("/v1/feedback", token)
    assert [f["id"] for f in items] == [a["feedback"]["id"]], items
    got = assert_status(api.get(paths["feedback"], key=token), 200)
    assert (got["rating"], got["body"]) == (2, a["feedback"]["body"]), got
    assert got["participantId"] == a["participants"][0]["id"], got

    got = assert_status(api.get(paths["trainers"], key=token), 200)
    assert {(t["trainerId"], t["role"]) for t in got["items"]} == {
        (world["me"]["id"], "municipalOrganisation"),
        (world["other"]["id"], "residentInitiatives")}, got
    for t in got["items"]:
        assert set(t) == {"trainerId", "role", "assignedAt"}, t


# ------------------------------------------------------------------ other werklabs: nothing


@pytest.mark.parametrize("what", ["werklab", "participants", "participant", "session",
                                  "attendance", "feedback", "trainers"])
def test_other_werklabs_are_404_by_id(api, keys, world, what):
    token = world["token"]
    nothing = api.get(f"/v1/werklabs/{uuid.uuid4()}", key=token)
    assert_problem(nothing, 404)
    for outside in world["outside"]:
        path = item_paths(outside)[what]
        # The admin reads it: it is there.
        assert_status(api.get(path, key=keys.admin), 200)
        r = api.get(path, key=token)
        p = assert_problem(r, 404)
        assert set(p) == set(nothing.json), (p, nothing.json)
        assert outside["werklab"]["title"] not in r.body.decode(), describe(r)
        assert api.head(path, key=token).status == 404


def test_another_werklabs_participant_is_404_under_their_own_werklab(api, keys, world):
    a = world["a"]
    for outside in world["outside"]:
        stray = outside["participants"][0]["id"]
        path = f"/v1/werklabs/{a['werklab']['id']}/participants/{stray}"
        assert_problem(api.get(path, key=world["token"]), 404)
        path = f"/v1/werklabs/{outside['werklab']['id']}/participants/{stray}"
        assert_status(api.get(path, key=keys.admin), 200)
        assert_problem(api.get(path, key=world["token"]), 404)


def test_lists_leave_other_werklabs_out(api, keys, world):
    token, a, tag = world["token"], world["a"], world["tag"]
    everything = {w["werklab"]["id"] for w in (a, *world["outside"])}
    # Found by the admin with the same query, so that they are there to be left out.
    got, _ = api.list_all("/v1/werklabs", keys.admin, {"q": tag})
    assert ids(got) == everything, got
    got, _ = api.list_all("/v1/werklabs", token, {"q": tag})
    assert ids(got) == {a["werklab"]["id"]}, got

    got, _ = api.list_all("/v1/werklabs", keys.admin, {"municipalityId": world["home"]["id"]})
    assert ids(got) == {a["werklab"]["id"], world["b1"]["werklab"]["id"]}, got
    got, _ = api.list_all("/v1/werklabs", token, {"municipalityId": world["home"]["id"]})
    assert ids(got) == {a["werklab"]["id"]}, got
    got, _ = api.list_all("/v1/werklabs", keys.admin, {"municipalityId": world["away"]["id"]})
    assert ids(got) == {world["b2"]["werklab"]["id"]}, got
    r = api.get(qs("/v1/werklabs", municipalityId=world["away"]["id"]), key=token)
    assert assert_status(r, 200)["items"] == [], describe(r)
    got, _ = api.list_all("/v1/werklabs", token, {"status": "intake,planned"})
    assert ids(got) == {a["werklab"]["id"]}, got

    got, _ = api.list_all("/v1/sessions", token, {"werklabId": a["werklab"]["id"]})
    assert ids(got) == {a["session"]["id"]}, got
    got, _ = api.list_all("/v1/feedback", token, {"sessionId": a["session"]["id"]})
    assert ids(got) == {a["feedback"]["id"]}, got


@pytest.mark.parametrize("path, param, what", [
    ("/v1/sessions", "werklabId", "werklab"),
    ("/v1/feedback", "werklabId", "werklab"),
    ("/v1/feedback", "sessionId", "session"),
])
def test_filters_naming_another_werklab_are_404(api, keys, world, path, param, what):
    for outside in world["outside"]:
        query = qs(path, **{param: outside[what]["id"]})
        r = api.get(query, key=keys.admin)
        assert len(assert_status(r, 200)["items"]) == 1, describe(r)
        assert_problem(api.get(query, key=world["token"]), 404)
        r = api.get(query, key=world["token"], headers={"Accept": "text/csv"})
        assert_problem(r, 404)


def test_csv_lists_leave_other_werklabs_out(api, keys, world):
    token, a = world["token"], world["a"]
    cases = [("/v1/werklabs", a["werklab"]["id"]), ("/v1/sessions", a["session"]["id"]),
             ("/v1/feedback", a["feedback"]["id"])]
    for path, only in cases:
        header, rows = csv_table(api, path, token)
        assert [row["id"] for row in rows] == [only], (path, rows)
        # The admin's CSV holds the others.
        _, rows = csv_table(api, qs(path), keys.admin)
        got = {row["id"] for row in rows}
        for outside in world["outside"]:
            assert outside[{"/v1/werklabs": "werklab", "/v1/sessions": "session",
                            "/v1/feedback": "feedback"}[path]]["id"] in got, path
    header, rows = csv_table(api, item_paths(a)["participants"], token)
    assert {(row["id"], row["email"]) for row in rows} == {
        (p["id"], p["email"]) for p in a["participants"]}, rows
    for outside in world["outside"]:
        r = api.get(item_paths(outside)["participants"], key=token,
                    headers={"Accept": "text/csv"})
        assert_problem(r, 404)
        # Neither the CSV of their own lists nor the JSON names anything of the others.
        for path in ("/v1/werklabs", "/v1/sessions", "/v1/feedback"):
            for accept in ("text/csv", "application/json"):
                r = api.get(path, key=token, headers={"Accept": accept})
                text = r.body.decode()
                assert r.status == 200 and a["werklab"]["id"] in text, describe(r)
                assert outside["werklab"]["id"] not in text, (path, text)
                assert outside["werklab"]["title"] not in text, (path, text)


def stats(api, key, **params):
    return assert_status(api.get(qs("/v1/stats", **params), key=key), 200)["items"]


def test_figures_count_only_their_werklab(api, keys, world):
    token = world["token"]
    # A: 2 participants, its session held, one host initiative, one rating of 2. B1 (same
    # province) and B2 (another) have as much, with ratings of 5: counted, they would show.
    mine = {"year": YEAR, "province": PROVINCE_A,
            "werklabs": {"total": 1, "inquiry": 0, "intake": 1, "planned": 0, "running": 0,
                         "completed": 0, "cancelled": 0},
            "participants": 2, "sessionsHeld": 1, "initiatives": 1, "averageRating": 2}
    assert stats(api, token) == [mine]
    assert stats(api, token, year=YEAR, province=PROVINCE_A) == [mine]
    assert stats(api, token, province=PROVINCE_OTHER) == []
    assert stats(api, token, year=YEAR - 1) == []
    # The admin's figures hold the other werklabs (and whatever other tests made).
    [same] = stats(api, keys.admin, year=YEAR, province=PROVINCE_A)
    assert same["werklabs"]["total"] >= 2 and same["participants"] >= 4, same
    assert same["sessionsHeld"] >= 2 and same["initiatives"] >= 2, same
    [other] = stats(api, keys.admin, year=YEAR, province=PROVINCE_OTHER)
    assert other["werklabs"]["intake"] >= 1 and other["participants"] >= 2, other


def test_figures_of_a_trainer_without_werklabs_are_empty(api, keys, oidc):
    subject = f"t-{uuid.uuid4().hex}"
    make_trainer(api, keys.admin, subject=subject)
    token = trainer_token(oidc, subject)
    assert stats(api, token) == []
    assert assert_status(api.get("/v1/werklabs", key=token), 200)["items"] == []
    assert assert_status(api.get("/v1/sessions", key=token), 200)["items"] == []
    assert assert_status(api.get("/v1/feedback", key=token), 200)["items"] == []
    assert stats(api, keys.admin), "the admin's figures are not empty"


def test_an_ended_assignment_ends_the_reach_at_the_next_request(api, keys, world):
    token, a = world["token"], world["a"]
    path = item_paths(a)["werklab"]
    assert_status(api.get(path, key=token), 200)
    successor = make_trainer(api, keys.admin, expertise=["municipalOrganisation"])
    assign_trainer(api, keys.admin, a["werklab"]["id"], "municipalOrganisation", successor["id"])
    # The same token: the reach is the assignments of now, not of when it was first seen.
    for p in item_paths(a).values():
        assert_problem(api.get(p, key=token), 404)
    assert assert_status(api.get("/v1/werklabs", key=token), 200)["items"] == []
    assert stats(api, token) == []
    r = api.put(item_paths(a)["attendance"], [], key=token)
    assert_problem(r, 404)
    got = assert_status(api.get(item_paths(a)["attendance"], key=keys.admin), 200)
    assert got["items"] == a["attendance"], got


# ------------------------------------------------------------------ what they write


def attendance_of(api, key, session_id):
    r = api.get(f"/v1/sessions/{session_id}/attendance", key=key)
    return {(i["participantId"], i["status"]) for i in assert_status(r, 200)["items"]}


def test_records_attendance_of_their_sessions_only(api, keys, world):
    token, a = world["token"], world["a"]
    first, second = (p["id"] for p in a["participants"])
    body = [{"participantId": first, "status": "absent"},
            {"participantId": second, "status": "excused"}]
    r = api.put(item_paths(a)["attendance"], body, key=token)
    got = assert_status(r, 200)
    assert {(i["participantId"], i["status"]) for i in got["items"]} == {
        (first, "absent"), (second, "excused")}, got
    assert attendance_of(api, keys.admin, a["session"]["id"]) == {(first, "absent"),
                                                                  (second, "excused")}

    for outside in world["outside"]:
        before = attendance_of(api, keys.admin, outside["session"]["id"])
        assert before == {(outside["participants"][0]["id"], "present")}
        body = [{"participantId": p["id"], "status": "absent"} for p in outside["participants"]]
        assert_problem(api.put(item_paths(outside)["attendance"], body, key=token), 404)
        # Clearing it is refused too, whatever If-Match says: no 412, no ETag.
        current = f'"{outside["session"]["version"]}"'
        for headers in ({}, {"If-Match": current}, {"If-Match": 'W/"1"'}):
            r = api.put(item_paths(outside)["attendance"], [], key=token, headers=headers)
            assert_problem(r, 404)
            assert r.header("ETag") is None, describe(r)
        assert attendance_of(api, keys.admin, outside["session"]["id"]) == before
        # Their own session with another werklab's participant: refused, nothing changes.
        r = api.put(item_paths(a)["attendance"],
                    [{"participantId": outside["participants"][1]["id"], "status": "present"}],
                    key=token)
        assert_problem(r, 400, {"body[0].participantId": "reference"})
        assert attendance_of(api, keys.admin, a["session"]["id"]) == {(first, "absent"),
                                                                      (second, "excused")}


def session_of(api, key, session_id):
    return assert_status(api.get(f"/v1/sessions/{session_id}", key=key), 200)


def test_edits_their_sessions_details_only(api, keys, world):
    token, a = world["token"], world["a"]
    title = f"Bezoek aan het dorpshuis {unique()}"
    r = api.patch(item_paths(a)["session"],
                  {"title": title, "description": "Met rondleiding.",
                   "location": {"name": "Dorpshuis", "address": "Markt 1", "onSite": True}},
                  key=token, headers={"If-Match": f'"{a["session"]["version"]}"'})
    got = assert_status(r, 200)
    assert got["title"] == title and got["version"] == a["session"]["version"] + 1, got
    stored = session_of(api, keys.admin, a["session"]["id"])
    assert (stored["title"], stored["description"], stored["location"]) == (
        title, "Met rondleiding.", {"name": "Dorpshuis", "address": "Markt 1", "onSite": True})
    # Not to another werklab.
    r = api.patch(item_paths(a)["session"], {"werklabId": world["b1"]["werklab"]["id"]}, key=token)
    assert_problem(r, 400, ["werklabId"])
    assert session_of(api, keys.admin, a["session"]["id"])["werklabId"] == a["werklab"]["id"]

    for outside in world["outside"]:
        path, before = item_paths(outside)["session"], outside["session"]
        current = f'"{before["version"]}"'
        for headers in ({}, {"If-Match": current}, {"If-Match": '"999"'}, {"If-Match": "*"}):
            r = api.patch(path, {"title": "Gekaapt"}, key=token, headers=headers)
            assert_problem(r, 404)
            assert r.header("ETag") is None, describe(r)
        after = session_of(api, keys.admin, before["id"])
        assert (after["title"], after["version"]) == (before["title"], before["version"]), after


def test_a_malformed_if_match_on_another_werklabs_session_is_404(api, keys, world):
    """As for a session that does not exist: no 412, and no ETag telling its version."""
    token = world["token"]
    nothing = api.patch(f"/v1/sessions/{uuid.uuid4()}", {"title": "Gekaapt"}, key=token,
                        headers={"If-Match": 'W/"1"'})
    assert_problem(nothing, 404)
    for outside in world["outside"]:
        before = outside["session"]
        r = api.patch(item_paths(outside)["session"], {"title": "Gekaapt"}, key=token,
                      headers={"If-Match": 'W/"1"'})
        assert_problem(r, 404)
        assert r.header("ETag") is None, describe(r)
        assert r.json["title"] == nothing.json["title"], describe(r)
        after = session_of(api, keys.admin, before["id"])
        assert (after["title"], after["version"]) == (before["title"], before["version"]), after
    # Their own session still answers 412 with the version to use.
    a = world["a"]["session"]
    r = api.patch(f"/v1/sessions/{a['id']}", {"title": "Anders"}, key=token,
                  headers={"If-Match": 'W/"1"'})
    assert_problem(r, 412)
    assert r.header("ETag") == f'"{a["version"]}"', describe(r)


def feedback_bodies(api, key, werklab_id):
    items, _ = api.list_all("/v1/feedback", key, {"werklabId": werklab_id})
    return sorted(f["body"] for f in items)


def test_records_feedback_for_their_werklabs_only(api, keys, world):
    token, a = world["token"], world["a"]
    text = f"Goede groep, veel energie {unique()}"
    r = api.post("/v1/feedback", {"werklabId": a["werklab"]["id"], "sessionId": a["session"]["id"],
                                  "kind": "trainerNote", "rating": 4, "body": text}, key=token)
    created = assert_status(r, 201)
    assert (created["body"], created["moderation"], created["kind"]) == (
        text, "pending", "trainerNote"), created
    stored = assert_status(api.get(f"/v1/feedback/{created['id']}", key=keys.admin), 200)
    assert (stored["werklabId"], stored["body"]) == (a["werklab"]["id"], text), stored
    assert sorted([a["feedback"]["body"], text]) == feedback_bodies(api, keys.admin,
                                                                    a["werklab"]["id"])

    for outside in world["outside"]:
        werklab_id = outside["werklab"]["id"]
        before = feedback_bodies(api, keys.admin, werklab_id)
        assert before == [outside["feedback"]["body"]]
        stray = f"Stiekem {unique()}"
        r = api.post("/v1/feedback", {"werklabId": werklab_id, "kind": "trainerNote",
                                      "body": stray}, key=token)
        assert_problem(r, 404)
        r = api.post("/v1/feedback", {"werklabId": werklab_id,
                                      "sessionId": outside["session"]["id"],
                                      "kind": "evaluation", "rating": 1,
                                      "participantId": outside["participants"][1]["id"],
                                      "body": stray}, key=token)
        assert_problem(r, 404)
        # Their own werklab naming another's session: refused as a bad reference.
        r = api.post("/v1/feedback", {"werklabId": a["werklab"]["id"],
                                      "sessionId": outside["session"]["id"],
                                      "kind": "trainerNote", "body": stray}, key=token)
        assert_problem(r, 400, {"sessionId": "reference"})
        assert feedback_bodies(api, keys.admin, werklab_id) == before
        assert stray not in feedback_bodies(api, keys.admin, a["werklab"]["id"])


@pytest.mark.parametrize("moderation", ["approved", "pending", "rejected"])
def test_feedback_with_a_moderation_is_refused(api, keys, world, moderation):
    token, a = world["token"], world["a"]
    text = f"Zelf goedgekeurd {unique()}"
    r = api.post("/v1/feedback", {"werklabId": a["werklab"]["id"], "kind": "trainerNote",
                                  "body": text, "moderation": moderation}, key=token)
    assert_problem(r, 400, ["moderation"])
    assert text not in feedback_bodies(api, keys.admin, a["werklab"]["id"])
    # Nor changed afterwards: changing feedback is staff's.
    r = api.patch(item_paths(a)["feedback"], {"moderation": "approved"}, key=token)
    assert_problem(r, 403)
    got = assert_status(api.get(item_paths(a)["feedback"], key=keys.admin), 200)
    assert got["moderation"] == "pending", got


def test_writes_outside_their_tasks_are_403(api, keys, world):
    token, a, tag = world["token"], world["a"], world["tag"]
    wid, pid = a["werklab"]["id"], a["participants"][0]["id"]
    sid, fid = a["session"]["id"], a["feedback"]["id"]
    me, other = world["me"]["id"], world["other"]["id"]
    home = world["home"]["id"]
    gone = str(uuid.uuid4())  # destructive requests name nothing that exists
    writes = [
        ("POST", "/v1/werklabs", {"municipalityId": home, "title": f"Eigen werklab {tag}"}),
        ("PATCH", f"/v1/werklabs/{wid}", {"title": "Gekaapt"}),
        ("PATCH", f"/v1/werklabs/{wid}", {"quote": {"amountCents": 1}}),
        ("DELETE", f"/v1/werklabs/{wid}", None),
        ("POST", f"/v1/werklabs/{wid}/participants",
         {"name": "Nieuwe Deelnemer", "email": f"nieuw-{tag}@example.nl"}),
        ("PATCH", f"/v1/werklabs/{wid}/participants/{pid}", {"jobTitle": "directeur"}),
        ("DELETE", f"/v1/werklabs/{wid}/participants/{pid}", None),
        ("PUT", f"/v1/werklabs/{wid}/trainers/residentInitiatives", {"trainerId": me}),
        ("DELETE", f"/v1/werklabs/{wid}/trainers/residentInitiatives", None),
        ("POST", "/v1/sessions", {"werklabId": wid, "sequence": 2, "kind": "custom",
                                  "title": "Extra", "startsAt": "2031-01-01T08:00:00Z",
                                  "endsAt": "2031-01-01T10:00:00Z"}),
        ("DELETE", f"/v1/sessions/{sid}", None),
        ("PATCH", f"/v1/feedback/{fid}", {"body": "Herschreven"}),
        ("DELETE", f"/v1/feedback/{fid}", None),
        ("POST", "/v1/trainers", {"name": "Nieuw", "email": f"nieuw-{tag}@example.nl",
                                  "expertise": ["residentInitiatives"]}),
        ("PATCH", f"/v1/trainers/{me}", {"bio": "Zelf bewerkt"}),
        ("PATCH", f"/v1/trainers/{me}", {"subject": f"t-{uuid.uuid4().hex}"}),
        ("PATCH", f"/v1/trainers/{other}", {"phone": "+31 6 9999 9999"}),
        ("DELETE", f"/v1/trainers/{gone}", None),
        ("POST", "/v1/municipalities", {"code": "GM9999", "name": "Nergens"}),
        ("PATCH", f"/v1/municipalities/{home}", {"notes": "Gekaapt"}),
        ("DELETE", f"/v1/municipalities/{gone}", None),
        ("POST", "/v1/initiatives", {"municipalityId": home, "name": f"Nieuw {tag}",
                                     "kind": "residentInitiative"}),
        ("PATCH", f"/v1/initiatives/{a['initiative']['id']}", {"description": "Gekaapt"}),
        ("DELETE", f"/v1/initiatives/{gone}", None),
        ("POST", "/v1/api-keys", {"name": f"eigen-{tag}", "role": "admin"}),
        ("DELETE", f"/v1/api-keys/{gone}", None),
        ("POST", "/v1/data-subject-requests",
         {"email": world["other"]["email"], "action": "export"}),
    ]
    for outside in world["outside"]:  # outside their reach: the role decides first, still 403
        writes += [("PATCH", f"/v1/werklabs/{outside['werklab']['id']}", {"title": "Gekaapt"}),
                   ("DELETE", f"/v1/sessions/{outside['session']['id']}", None),
                   ("DELETE", f"/v1/feedback/{outside['feedback']['id']}", None)]
    for method, path, body in writes:
        r = api.request(method, path, json_body=body, key=token)
        assert_problem(r, 403)

    # Nothing changed.
    for w in (a, *world["outside"]):
        got = assert_status(api.get(f"/v1/werklabs/{w['werklab']['id']}", key=keys.admin), 200)
        assert (got["title"], got["version"], got["quote"]["amountCents"]) == (
            w["werklab"]["title"], w["werklab"]["version"], 123400), got
        items, _ = api.list_all(f"/v1/werklabs/{w['werklab']['id']}/participants", keys.admin)
        assert ids(items) == ids(w["participants"]), items
        assert assert_status(api.get(f"/v1/sessions/{w['session']['id']}", key=keys.admin), 200)
        got = assert_status(api.get(f"/v1/feedback/{w['feedback']['id']}", key=keys.admin), 200)
        assert got["body"] == w["feedback"]["body"], got
    got = assert_status(api.get(f"/v1/werklabs/{wid}/trainers", key=keys.admin), 200)
    assert {(t["trainerId"], t["role"]) for t in got["items"]} == {
        (me, "municipalOrganisation"), (other, "residentInitiatives")}, got
    got = assert_status(api.get(f"/v1/trainers/{me}", key=keys.admin), 200)
    assert (got["bio"], got["subject"]) == (f"Trainer {tag}", world["subject"]), got
    got = assert_status(api.get(f"/v1/trainers/{other}", key=keys.admin), 200)
    assert got["phone"] == "+31 6 3333 4444", got
    got = assert_status(api.get(f"/v1/municipalities/{home}", key=keys.admin), 200)
    assert got["notes"] == world["home"]["notes"], got
    r = api.get(qs("/v1/werklabs", municipalityId=home), key=keys.admin)
    assert {w["title"] for w in assert_status(r, 200)["items"]} == {
        a["werklab"]["title"], world["b1"]["werklab"]["title"]}, describe(r)


# ------------------------------------------------------------------ what they never see


def test_never_sees_quotes(api, keys, world):
    token, a = world["token"], world["a"]
    got = assert_status(api.get(item_paths(a)["werklab"], key=keys.admin), 200)
    assert got["quote"] == {"amountCents": 123400, "currency": "EUR", "note": "offerte A"}, got
    got = assert_status(api.get(item_paths(a)["werklab"], key=token), 200)
    assert "quote" not in got, got
    r = api.get("/v1/werklabs", key=token)
    items = assert_status(r, 200)["items"]
    assert items and all("quote" not in w for w in items), items
    assert "offerte" not in r.body.decode(), describe(r)
    header, rows = csv_table(api, "/v1/werklabs", token)
    assert [c for c in header if c.startswith("quote")] == [], header
    assert rows and "title" in header
    assert all("offerte" not in "".join(row.values()) for row in rows), rows
    # The admin's CSV has the columns.
    header, _ = csv_table(api, qs("/v1/werklabs", municipalityId=world["home"]["id"]), keys.admin)
    assert {"quote.amountCents", "quote.currency", "quote.note"} <= set(header), header


def test_never_sees_inquiries_changes_audit_log_or_keys(api, keys, world):
    token = world["token"]
    r = api.post("/v1/inquiries", {"municipalityCode": world["home"]["code"],
                                   "contactName": "Marieke van Dijk",
                                   "email": f"marieke-{world['tag']}@example.nl",
                                   "message": "Wij willen graag een werklab."}, key=keys.staff)
    inquiry = assert_status(r, 201)
    forbidden = [
        "/v1/inquiries",
        f"/v1/inquiries/{inquiry['id']}",
        qs("/v1/inquiries", status="new"),
        "/v1/changes",
        qs("/v1/changes", limit=1),
        "/v1/audit-log",
        qs("/v1/audit-log", subject=world["subject"]),
        "/v1/api-keys",
        f"/v1/api-keys/{keys.ids['staff']}",
        "/metrics",
    ]
    for path in forbidden:
        assert_status(api.get(path, key=keys.admin), 200)  # there is something to see
        r = api.get(path, key=token)
        assert_problem(r, 403)
        assert inquiry["email"] not in r.body.decode(), describe(r)
    for path in ("/v1/inquiries", "/v1/changes", "/v1/audit-log", "/v1/api-keys"):
        assert_problem(api.get(path, key=token, headers={"Accept": "text/csv"}), 403)
    r = api.patch(f"/v1/inquiries/{inquiry['id']}", {"status": "closed"}, key=token)
    assert_problem(r, 403)
    got = assert_status(api.get(f"/v1/inquiries/{inquiry['id']}", key=keys.admin), 200)
    assert got["status"] == inquiry["status"] and got["version"] == inquiry["version"], got


PERSONAL = ("name", "email", "phone", "subject")


def test_sees_other_trainers_without_their_personal_data(api, keys, world):
    token, me, other = world["token"], world["me"], world["other"]
    got = assert_status(api.get(f"/v1/trainers/{me['id']}", key=token), 200)
    assert {k: got[k] for k in PERSONAL} == {
        "name": me["name"], "email": me["email"], "phone": "+31 6 1111 2222",
        "subject": world["subject"]}, got
    assert got["bio"] == me["bio"], got

    r = api.get(f"/v1/trainers/{other['id']}", key=token)
    got = assert_status(r, 200)
    assert [k for k in PERSONAL if k in got] == [], got
    assert (got["id"], got["bio"]) == (other["id"], other["bio"]), got
    assert sorted(got["expertise"]) == ["municipalOrganisation", "residentInitiatives"], got
    text = r.body.decode()
    for secret in (other["name"], other["email"], "3333", world["other_subject"]):
        assert secret not in text, (secret, text)
    # The admin sees all of it.
    got = assert_status(api.get(f"/v1/trainers/{other['id']}", key=keys.admin), 200)
    assert (got["email"], got["subject"]) == (other["email"], world["other_subject"]), got

    items, _ = api.list_all("/v1/trainers", token)
    by_id = {t["id"]: t for t in items}
    assert {me["id"], other["id"]} <= set(by_id), "the list holds both trainers"
    assert by_id[me["id"]]["email"] == me["email"]
    assert by_id[me["id"]]["subject"] == world["subject"]
    for t in items:
        if t["id"] != me["id"]:
            assert [k for k in PERSONAL if k in t] == [], t

    header, rows = csv_table(api, "/v1/trainers", token)
    by_id = {row["id"]: row for row in rows}
    assert {me["id"], other["id"]} <= set(by_id), "the CSV holds both trainers"
    assert (by_id[me["id"]]["email"], by_id[me["id"]]["subject"]) == (me["email"],
                                                                      world["subject"])
    for row in rows:
        if row["id"] != me["id"]:
            assert [row[k] for k in PERSONAL if row.get(k)] == [], row
    text = api.get("/v1/trainers", key=token, headers={"Accept": "text/csv"}).body.decode()
    assert other["email"] not in text and world["other_subject"] not in text


# ------------------------------------------------------------------ no trainer record


def test_a_token_matching_no_trainer_is_403_everywhere(api, keys, oidc, world):
    a = world["a"]
    # A trainer without a subject, linked by a verified address only: here it is not verified.
    unlinked = make_trainer(api, keys.admin, expertise=["municipalOrganisation"])
    tokens = [
        trainer_token(oidc, f"t-{uuid.uuid4().hex}"),
        trainer_token(oidc, f"t-{uuid.uuid4().hex}", email=f"niemand-{unique()}@example.nl",
                      email_verified=True),
        trainer_token(oidc, f"t-{uuid.uuid4().hex}", email=unlinked["email"],
                      email_verified=False),
        trainer_token(oidc, f"t-{uuid.uuid4().hex}", email=unlinked["email"]),
        trainer_token(oidc, f"t-{uuid.uuid4().hex}", email=unlinked["email"],
                      email_verified="true"),  # a string is not a verification
        # the linked trainer's address, verified: their record is linked by its subject only
        trainer_token(oidc, f"t-{uuid.uuid4().hex}", email=world["me"]["email"],
                      email_verified=True),
        # a subject differing from a trainer's only in case
        trainer_token(oidc, world["subject"].upper()),
    ]
    paths = ["/v1/me", "/healthz", "/v1/werklabs", "/v1/stats", "/v1/trainers",
             "/v1/municipalities", *item_paths(a).values()]
    for token in tokens:
        for path in paths:
            assert_problem(api.get(path, key=token), 403)
        r = api.put(item_paths(a)["attendance"], [], key=token)
        assert_problem(r, 403)
        r = api.post("/v1/feedback", {"werklabId": a["werklab"]["id"], "kind": "trainerNote",
                                      "body": "Zonder account"}, key=token)
        assert_problem(r, 403)
    got = assert_status(api.get(item_paths(a)["attendance"], key=keys.admin), 200)
    assert got["items"] == a["attendance"], got
    assert "Zonder account" not in feedback_bodies(api, keys.admin, a["werklab"]["id"])
    # The linked trainer's own token works, and the address verified links the other record:
    # the refusals above are about the link.
    assert_status(api.get(item_paths(a)["werklab"], key=world["token"]), 200)
    verified = trainer_token(oidc, f"t-{uuid.uuid4().hex}", email=unlinked["email"],
                             email_verified=True)
    assert assert_status(api.get("/v1/me", key=verified), 200)["trainerId"] == unlinked["id"]

"""Feedback on a werklab and the testimonials the public may read.

Feedback links stay inside its werklab: its session, its participant (evaluations only) and an
initiative that takes part in one of its sessions (initiative perspectives only). Testimonials
are the approved feedback given with consent to publish, signed with an attribution: never a
name, an e-mail address or a participant id.
"""

import random
import uuid

import pytest

from domain import make_initiative, make_participant, make_session, make_werklab
from wlclient import assert_problem, assert_status, describe, qs

TESTIMONIAL_FIELDS = {"id", "body", "attribution", "municipality", "year"}


def quiet_year(api, low, high):
    """A year in [low, high] that has no testimonials yet."""
    years = list(range(low, high + 1))
    random.shuffle(years)
    for year in years:
        r = api.get(qs("/v1/testimonials", year=year))
        assert r.status == 200, describe(r)
        if not r.json["items"]:
            return year
    pytest.fail("no year without testimonials")


@pytest.fixture(scope="module")
def lab(api, keys, code_pool):
    """Two werklabs A and B in one municipality, with sessions in a year of their own.

    A: participant pa, session sa (host ia), initiative idle not taking part.
    B: participant pb, session sb (host ib).
    """
    key = keys.staff
    code = code_pool()
    r = api.post("/v1/municipalities", {"code": code, "name": "Culemborg (test)",
                                        "province": "Gelderland"}, key=keys.admin)
    assert r.status == 201, describe(r)
    m = r.json
    year = quiet_year(api, 2040, 2060)
    a = make_werklab(api, key, m["id"], status="intake", title="Werklab Culemborg A")
    b = make_werklab(api, key, m["id"], status="intake", title="Werklab Culemborg B")
    ia = make_initiative(api, key, m["id"], name="Buurthuis De Ster")
    ib = make_initiative(api, key, m["id"], name="Repair Café Culemborg")
    idle = make_initiative(api, key, m["id"], name="Speeltuinvereniging Oostersingel")
    sa = make_session(api, key, a["id"], 1, f"{year}-03-10T09:00:00Z", f"{year}-03-10T12:00:00Z",
                      kind="initiativeVisit",
                      initiatives=[{"initiativeId": ia["id"], "role": "host"}])
    sb = make_session(api, key, b["id"], 1, f"{year}-04-10T09:00:00Z", f"{year}-04-10T12:00:00Z",
                      kind="initiativeVisit",
                      initiatives=[{"initiativeId": ib["id"], "role": "host"}])
    pa = make_participant(api, key, a["id"], name="Femke Jansen", email=f"femke.{code}@example.nl")
    pb = make_participant(api, key, b["id"], name="Gert Hoek", email=f"gert.{code}@example.nl")
    return dict(m=m, year=year, a=a, b=b, ia=ia, ib=ib, idle=idle, sa=sa, sb=sb, pa=pa, pb=pb)


def evaluation(lab, **fields):
    body = {"werklabId": lab["a"]["id"], "sessionId": lab["sa"]["id"], "kind": "evaluation",
            "participantId": lab["pa"]["id"], "rating": 4,
            "body": "Een leerzame ochtend bij de buurtvereniging."}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def create(api, key, body):
    r = api.post("/v1/feedback", body, key=key)
    assert r.status == 201, describe(r)
    return r.json


# ------------------------------------------------------------------ links


def test_valid_links(api, keys, lab):
    f = create(api, keys.staff, evaluation(lab))
    assert f["participantId"] == lab["pa"]["id"] and f["sessionId"] == lab["sa"]["id"]
    assert (f["moderation"], f["consentToPublish"], f["attribution"]) == ("pending", False, None)
    assert (f["rating"], f["initiativeId"]) == (4, None)
    perspective = create(api, keys.staff, {
        "werklabId": lab["a"]["id"], "kind": "initiativePerspective",
        "initiativeId": lab["ia"]["id"], "rating": 5, "body": "Goed bezoek."})
    assert perspective["sessionId"] is None and perspective["participantId"] is None
    note = create(api, keys.staff, {"werklabId": lab["a"]["id"], "kind": "trainerNote",
                                    "body": "Groep is actief."})
    assert note["rating"] is None
    anonymous = create(api, keys.staff, evaluation(lab, participantId=None, sessionId=None))
    assert anonymous["participantId"] is None


def test_session_of_another_werklab(api, keys, lab):
    r = api.post("/v1/feedback", evaluation(lab, sessionId=lab["sb"]["id"]), key=keys.staff)
    assert_problem(r, 400, {"sessionId": "reference"})


def test_participant_of_another_werklab(api, keys, lab):
    r = api.post("/v1/feedback", evaluation(lab, participantId=lab["pb"]["id"]), key=keys.staff)
    assert_problem(r, 400, {"participantId": "reference"})


def test_initiative_not_taking_part(api, keys, lab):
    for initiative in (lab["idle"], lab["ib"]):
        r = api.post("/v1/feedback", {"werklabId": lab["a"]["id"], "kind": "initiativePerspective",
                                      "initiativeId": initiative["id"], "body": "x"},
                     key=keys.staff)
        assert_problem(r, 400, {"initiativeId": "reference"})


@pytest.mark.parametrize("field", ["sessionId", "participantId", "initiativeId", "werklabId"])
def test_unknown_ids(api, keys, lab, field):
    body = evaluation(lab, **{field: str(uuid.uuid4())})
    if field == "initiativeId":
        body.update(kind="initiativePerspective", participantId=None)
        body.pop("participantId")
    if field == "werklabId":
        body.pop("sessionId")
        body.pop("participantId")
    r = api.post("/v1/feedback", body, key=keys.staff)
    assert_problem(r, 400, {field: "reference"})


@pytest.mark.parametrize("kind", ["trainerNote", "initiativePerspective"])
def test_participant_only_on_evaluations(api, keys, lab, kind):
    r = api.post("/v1/feedback", evaluation(lab, kind=kind), key=keys.staff)
    assert_problem(r, 400, {"participantId": "reference"})


@pytest.mark.parametrize("kind", ["trainerNote", "evaluation"])
def test_initiative_only_on_perspectives(api, keys, lab, kind):
    r = api.post("/v1/feedback", {"werklabId": lab["a"]["id"], "kind": kind,
                                  "initiativeId": lab["ia"]["id"], "body": "x"}, key=keys.staff)
    assert_problem(r, 400, {"initiativeId": "reference"})


def test_patch_keeps_links_inside(api, keys, lab):
    f = create(api, keys.staff, evaluation(lab))
    path = f"/v1/feedback/{f['id']}"
    assert_problem(api.patch(path, {"sessionId": lab["sb"]["id"]}, key=keys.staff), 400,
                   {"sessionId": "reference"})
    assert_problem(api.patch(path, {"participantId": lab["pb"]["id"]}, key=keys.staff), 400,
                   {"participantId": "reference"})
    assert_problem(api.patch(path, {"kind": "trainerNote"}, key=keys.staff), 400,
                   {"participantId": "reference"})
    assert_problem(api.patch(path, {"werklabId": lab["b"]["id"]}, key=keys.staff), 400,
                   {"werklabId": "unknown"})
    got = assert_status(api.get(path, key=keys.staff), 200)
    assert got == f
    r = api.patch(path, {"kind": "trainerNote", "participantId": None}, key=keys.staff)
    got = assert_status(r, 200)
    assert got["kind"] == "trainerNote" and got["participantId"] is None


def test_required_fields(api, keys):
    r = api.post("/v1/feedback", {"rating": 3}, key=keys.staff)
    assert_problem(r, 400, {"werklabId": "required", "kind": "required", "body": "required"})
    r = api.post("/v1/feedback", {"werklabId": "nope", "kind": "praise", "body": 5},
                 key=keys.staff)
    assert_problem(r, 400, {"werklabId": "format", "kind": "enum", "body": "type"})


# ------------------------------------------------------------------ values


@pytest.mark.parametrize("rating, code", [(0, "minimum"), (6, "maximum"), (-1, "minimum"),
                                          ("4", "type"), (4.5, "type"), (True, "type")])
def test_rating_bounds(api, keys, lab, rating, code):
    r = api.post("/v1/feedback", evaluation(lab, rating=rating), key=keys.staff)
    assert_problem(r, 400, {"rating": code})


@pytest.mark.parametrize("rating", [1, 5])
def test_rating_edges(api, keys, lab, rating):
    assert create(api, keys.staff, evaluation(lab, rating=rating))["rating"] == rating


def test_rating_cleared(api, keys, lab):
    f = create(api, keys.staff, evaluation(lab))
    r = api.patch(f"/v1/feedback/{f['id']}", {"rating": None}, key=keys.staff)
    assert assert_status(r, 200)["rating"] is None
    assert_problem(api.patch(f"/v1/feedback/{f['id']}", {"rating": 9}, key=keys.staff), 400,
                   {"rating": "maximum"})


def test_text_limits(api, keys, lab):
    r = api.post("/v1/feedback", evaluation(lab, body="", attribution="a" * 201), key=keys.staff)
    assert_problem(r, 400, {"body": "minLength", "attribution": "maxLength"})
    r = api.post("/v1/feedback", evaluation(lab, body="é" * 4001), key=keys.staff)
    assert_problem(r, 400, {"body": "maxLength"})
    f = create(api, keys.staff, evaluation(lab, body="é" * 4000, attribution="a" * 200))
    assert len(f["body"]) == 4000


def test_moderation(api, keys, lab):
    f = create(api, keys.staff, evaluation(lab))
    path = f"/v1/feedback/{f['id']}"
    assert f["moderation"] == "pending"
    assert_problem(api.patch(path, {"moderation": "published"}, key=keys.staff), 400,
                   {"moderation": "enum"})
    for state in ("approved", "rejected", "pending", "approved"):
        r = api.patch(path, {"moderation": state}, key=keys.staff)
        assert assert_status(r, 200)["moderation"] == state
    assert api.get(path, key=keys.staff).json["version"] == 5
    assert_problem(api.patch(path, {"moderation": "rejected"}, key=keys.partner), 403)
    assert_problem(api.patch(path, {"moderation": "rejected"}), 401)

    mine = {x["id"] for x in api.list_all("/v1/feedback", keys.staff,
                                          {"werklabId": lab["a"]["id"],
                                           "moderation": "approved"})[0]}
    assert f["id"] in mine
    pending = api.list_all("/v1/feedback", keys.staff,
                           {"werklabId": lab["a"]["id"], "moderation": "pending,rejected"})[0]
    assert f["id"] not in {x["id"] for x in pending}
    assert_problem(api.get(qs("/v1/feedback", moderation="open"), key=keys.staff), 400,
                   {"moderation": "enum"})


def test_list_filters(api, keys, lab):
    fb = create(api, keys.staff, evaluation(lab, werklabId=lab["b"]["id"],
                                            sessionId=lab["sb"]["id"],
                                            participantId=lab["pb"]["id"]))
    items = api.list_all("/v1/feedback", keys.staff, {"werklabId": lab["b"]["id"]})[0]
    assert fb["id"] in {x["id"] for x in items}
    assert all(x["werklabId"] == lab["b"]["id"] for x in items)
    items = api.list_all("/v1/feedback", keys.staff, {"sessionId": lab["sb"]["id"]})[0]
    assert all(x["sessionId"] == lab["sb"]["id"] for x in items) and items
    items = api.list_all("/v1/feedback", keys.staff,
                         {"werklabId": lab["a"]["id"], "kind": "trainerNote"})[0]
    assert all(x["kind"] == "trainerNote" for x in items)
    r = api.get(qs("/v1/feedback", werklabId=lab["a"]["id"], sort="-rating"), key=keys.staff)
    ratings = [x["rating"] or 0 for x in assert_status(r, 200)["items"]]
    assert ratings == sorted(ratings, reverse=True)


# ------------------------------------------------------------------ testimonials


@pytest.fixture(scope="module")
def published(api, keys, lab):
    """Feedback in every state of moderation and consent; only one may be published."""
    key = keys.staff

    def make(moderation, consent, text):
        f = create(api, key, evaluation(lab, body=text, consentToPublish=consent,
                                        attribution="wijkregisseur gemeente Culemborg"))
        if moderation != "pending":
            r = api.patch(f"/v1/feedback/{f['id']}", {"moderation": moderation}, key=key)
            assert r.status == 200, describe(r)
        return f["id"]

    return {
        "shown": make("approved", True, "Ik ken nu de mensen achter het buurthuis."),
        "no consent": make("approved", False, "Niet voor publicatie."),
        "pending": make("pending", True, "Nog niet beoordeeld."),
        "rejected": make("rejected", True, "Afgewezen tekst."),
    }


def get_testimonials(api, year, key=None, headers=None):
    r = api.get(qs("/v1/testimonials", year=year, limit=200), key=key, headers=headers)
    assert r.status == 200, describe(r)
    return r


def test_only_approved_with_consent(api, lab, published):
    r = get_testimonials(api, lab["year"])
    items = r.json["items"]
    assert [t["id"] for t in items] == [published["shown"]], items
    t = items[0]
    assert set(t) == TESTIMONIAL_FIELDS, t
    assert t == {"id": published["shown"], "body": "Ik ken nu de mensen achter het buurthuis.",
                 "attribution": "wijkregisseur gemeente Culemborg",
                 "municipality": lab["m"]["name"], "year": lab["year"]}
    assert r.json["next"] is None


def test_no_personal_data_in_testimonials(api, lab, published):
    r = get_testimonials(api, lab["year"])
    text = r.body.decode()
    for leak in (lab["pa"]["name"], lab["pa"]["email"], lab["pa"]["id"], "participantId",
                 "email", "name", "version", "createdAt", "updatedAt", "moderation",
                 "consentToPublish", "werklabId", "sessionId"):
        assert leak not in text, leak
    everything = api.list_all("/v1/testimonials", None)[0]
    for t in everything:
        assert set(t) == TESTIMONIAL_FIELDS, t


def test_testimonials_follow_moderation_and_consent(api, keys, lab, published):
    key = keys.staff
    r = api.patch(f"/v1/feedback/{published['pending']}", {"moderation": "approved"}, key=key)
    assert_status(r, 200)
    ids = [t["id"] for t in get_testimonials(api, lab["year"]).json["items"]]
    assert sorted(ids) == sorted([published["shown"], published["pending"]])

    r = api.patch(f"/v1/feedback/{published['pending']}", {"consentToPublish": False}, key=key)
    assert_status(r, 200)
    r = api.patch(f"/v1/feedback/{published['shown']}", {"attribution": "beleidsadviseur"},
                  key=key)
    assert_status(r, 200)
    items = get_testimonials(api, lab["year"]).json["items"]
    assert [(t["id"], t["attribution"]) for t in items] == [(published["shown"],
                                                              "beleidsadviseur")]
    r = api.patch(f"/v1/feedback/{published['pending']}", {"moderation": "pending"}, key=key)
    assert_status(r, 200)


def test_public_and_cacheable(api, keys, lab, published):
    for key in (None, keys.partner, keys.staff, keys.admin):
        r = get_testimonials(api, lab["year"], key=key)
        assert [t["id"] for t in r.json["items"]] == [published["shown"]]
        assert r.header("Cache-Control") == "public, max-age=300", describe(r)
        assert r.header("API-Version") == "1.0.0"
        assert r.header("X-Content-Type-Options") == "nosniff"
    r = get_testimonials(api, lab["year"], headers={"Origin": "https://example.org"})
    assert r.header("Access-Control-Allow-Origin") == "*", describe(r)
    r = api.head(qs("/v1/testimonials", year=lab["year"]))
    assert r.status == 200 and r.body == b"", describe(r)
    assert r.header("Cache-Control") == "public, max-age=300", describe(r)


def test_testimonials_are_read_only_and_strict(api, keys, lab):
    r = api.post("/v1/testimonials", {"body": "x"}, key=keys.admin)
    assert_problem(r, 405)
    assert "POST" not in r.header("Allow")
    assert_problem(api.get(qs("/v1/testimonials", year="twintig")), 400, {"year": "type"})
    assert_problem(api.get(qs("/v1/testimonials", municipality="Culemborg")), 400,
                   {"municipality": "unknown"})
    assert_problem(api.get(f"/v1/testimonials/{uuid.uuid4()}"), 404)
    r = api.get(qs("/v1/testimonials", year=lab["year"], sort="-year,createdAt"))
    assert r.status == 200, describe(r)


def test_partner_reads_feedback_without_participant(api, keys, lab, published):
    r = api.get(f"/v1/feedback/{published['shown']}", key=keys.partner)
    f = assert_status(r, 200)
    assert "participantId" not in f, f
    assert f["body"] and f["werklabId"] == lab["a"]["id"]
    for item in api.list_all("/v1/feedback", keys.partner, {"werklabId": lab["a"]["id"]})[0]:
        assert "participantId" not in item, item
    assert_problem(api.post("/v1/feedback", evaluation(lab, participantId=None), key=keys.partner),
                   403)
    assert_problem(api.delete(f"/v1/feedback/{published['shown']}", key=keys.partner), 403)


def test_delete_feedback(api, keys, lab):
    f = create(api, keys.staff, evaluation(lab))
    assert api.delete(f"/v1/feedback/{f['id']}", key=keys.staff).status == 204
    assert_problem(api.get(f"/v1/feedback/{f['id']}", key=keys.staff), 404)
    # The participant that wrote feedback cannot go while it is there.
    g = create(api, keys.staff, evaluation(lab))
    r = api.delete(f"/v1/werklabs/{lab['a']['id']}/participants/{lab['pa']['id']}",
                   key=keys.staff)
    assert_problem(r, 409, conflicts={"referenced"})
    assert g["participantId"] == lab["pa"]["id"]

"""The whole life of a werklab, from a municipality's public inquiry to completed (scenario.py),
and what it adds to the figures (/v1/stats) and the public testimonials afterwards.

The scenario checks every answer on its way; the tests here read everything back. The werklab
is put in a year no other werklab of its province uses yet, so its figures stand alone in the
stats and its testimonial alone in that year's testimonials.
"""

import datetime
import json
import random

import pytest

from scenario import PARTICIPANTS, run_scenario
from wlclient import assert_problem, assert_status, describe, qs

UTC = datetime.timezone.utc
PROVINCE = "Gelderland"


def stats(api, key, **params):
    r = api.get(qs("/v1/stats", **params), key=key)
    assert_status(r, 200)
    assert r.json["next"] is None, describe(r)
    return r.json["items"]


def get_testimonials(api, **params):
    r = api.get(qs("/v1/testimonials", **params))
    assert r.status == 200, describe(r)
    return r


def quiet_year(api, key):
    """A year with neither figures for PROVINCE nor testimonials."""
    years = list(range(2001, 2019))
    random.shuffle(years)
    for year in years:
        if not stats(api, key, year=year, province=PROVINCE) and \
                not get_testimonials(api, year=year).json["items"]:
            return year
    pytest.fail("no quiet year left for the scenario")


@pytest.fixture(scope="module")
def story(api, keys, code_pool):
    body = {"code": code_pool(), "name": "Zaltbommel", "province": PROVINCE,
            "contact": {"name": "Griffie Zaltbommel", "email": "griffie@example.nl"}}
    for _ in range(20):
        r = api.post("/v1/municipalities", body, key=keys.admin)
        if r.status != 409:
            break
        body["code"] = code_pool()
    assert r.status == 201, describe(r)
    municipality = r.json
    year = quiet_year(api, keys.staff)
    this_year = datetime.datetime.now(UTC).year
    before_this_year = stats(api, keys.staff, year=this_year, province=PROVINCE)
    now = datetime.datetime(year, 11, 20, 12, 0, tzinfo=UTC)
    result = run_scenario(api, keys.staff, municipality["id"], now)
    result["municipality"] = municipality
    result["before_this_year"] = before_this_year
    result["after_this_year"] = stats(api, keys.staff, year=this_year, province=PROVINCE)
    result["asked_year"] = year
    return result


def test_every_step_answered_as_expected(story):
    steps = story["steps"]
    assert len(steps) >= 40
    assert [s[3] for s in steps if s[0] == "post the inquiry"] == [201]
    assert all(s[3] in (200, 201) for s in steps), steps
    assert story["year"] == story["asked_year"]


def test_inquiry_converted_into_the_werklab(api, keys, story):
    r = api.get(f"/v1/inquiries/{story['inquiry_id']}", key=keys.staff)
    i = assert_status(r, 200)
    assert i["status"] == "converted"
    assert i["werklabId"] == story["werklab_id"]
    assert i["municipalityCode"] == story["municipality"]["code"]
    assert i["municipalityId"] == story["municipality"]["id"]
    assert i["version"] == 3  # posted, contacted, converted


def test_werklab_is_completed_with_everything_on_it(api, keys, story):
    w = assert_status(api.get(f"/v1/werklabs/{story['werklab_id']}", key=keys.staff), 200)
    assert w["status"] == "completed"
    assert w["municipalityId"] == story["municipality"]["id"]
    assert w["participantCount"] == 12
    assert sorted((t["role"], t["trainerId"]) for t in w["trainers"]) == \
        sorted(story["trainer_ids"].items())
    assert w["intake"]["developments"].startswith("energietransitie, Omgevingswet")
    assert w["intake"]["heldOn"] == f"{story['year']}-09-11"  # ten weeks before 20 November
    assert w["startsOn"] == f"{story['year']}-10-09"
    assert w["endsOn"] == f"{story['year']}-11-06"
    assert w["quote"] == {"amountCents": 1250000, "currency": "EUR",
                          "note": "incl. twee trainers en drie bijeenkomsten"}
    assert w["sharedVision"]

    r = api.get(f"/v1/werklabs/{story['werklab_id']}/trainers", key=keys.staff)
    items = assert_status(r, 200)["items"]
    assert {(a["role"], a["trainerId"]) for a in items} == set(story["trainer_ids"].items())


def test_completed_is_final(api, keys, story):
    r = api.patch(f"/v1/werklabs/{story['werklab_id']}", {"status": "running"}, key=keys.staff)
    assert_problem(r, 409, conflicts={"statusTransition"})
    r = api.post(f"/v1/werklabs/{story['werklab_id']}/participants",
                 {"name": "Laatkomer", "email": "laat@example.nl"}, key=keys.staff)
    assert_problem(r, 409, conflicts={"status"})
    r = api.delete(f"/v1/werklabs/{story['werklab_id']}", key=keys.staff)
    assert r.status == 409, describe(r)


def test_participants(api, keys, story):
    items, _ = api.list_all(f"/v1/werklabs/{story['werklab_id']}/participants", keys.staff)
    assert sorted(p["id"] for p in items) == sorted(story["participant_ids"])
    assert sorted((p["name"], p["jobTitle"], p["department"], p["role"]) for p in items) == \
        sorted(PARTICIPANTS)
    assert {p["role"] for p in items} == {"adviser", "connector", "director"}


def test_sessions_and_attendance(api, keys, story):
    items, _ = api.list_all("/v1/sessions", keys.staff,
                            {"werklabId": story["werklab_id"], "sort": "sequence"})
    assert [s["id"] for s in items] == story["session_ids"]
    assert [s["kind"] for s in items] == ["initiativeVisit", "municipalCollaboration", "ownRole"]
    visit = items[0]
    assert visit["title"] == "Op de koffie bij bewonersinitiatieven"
    assert visit["location"]["onSite"] is True
    assert sorted((i["initiativeId"], i["role"]) for i in visit["initiatives"]) == \
        sorted([(story["host_id"], "host"), (story["guest_id"], "guest")])
    assert items[1]["initiatives"] == [] and items[2]["initiatives"] == []
    for sid, expected in zip(story["session_ids"], story["attendance"]):
        got = assert_status(api.get(f"/v1/sessions/{sid}/attendance", key=keys.staff), 200)
        assert sorted((a["participantId"], a["status"]) for a in got["items"]) == \
            sorted((a["participantId"], a["status"]) for a in expected)
    statuses = [a["status"] for rows in story["attendance"] for a in rows]
    assert statuses.count("present") == 33 and statuses.count("excused") == 2


def test_feedback(api, keys, story):
    items, _ = api.list_all("/v1/feedback", keys.staff, {"werklabId": story["werklab_id"]})
    assert sorted(f["id"] for f in items) == sorted(story["feedback_ids"])
    kinds = sorted(f["kind"] for f in items)
    assert kinds == ["evaluation"] * 8 + ["initiativePerspective"] * 2 + ["trainerNote"]
    assert sorted(f["rating"] for f in items if f["rating"] is not None) == \
        sorted(story["ratings"])
    perspectives = [f for f in items if f["kind"] == "initiativePerspective"]
    assert sorted(f["initiativeId"] for f in perspectives) == sorted(story["initiative_ids"])
    assert all(f["participantId"] is None for f in perspectives)
    by_id = {f["id"]: f for f in items}
    t = by_id[story["testimonial_id"]]
    assert (t["moderation"], t["consentToPublish"]) == ("approved", True)
    assert t["attribution"] == "beleidsmedewerker gemeente Zaltbommel"
    moderated = sorted(f["moderation"] for f in items)
    assert moderated.count("approved") == 2 and moderated.count("rejected") == 1

    r = api.get(qs("/v1/feedback", werklabId=story["werklab_id"], moderation="approved"),
                key=keys.staff)
    assert len(assert_status(r, 200)["items"]) == 2


def test_stats_of_the_year(api, keys, story):
    items = stats(api, keys.staff, year=story["year"], province=PROVINCE)
    ratings = story["ratings"]
    mean = sum(ratings) / len(ratings)
    assert len(items) == 1, items
    s = items[0]
    assert (s["year"], s["province"]) == (story["year"], PROVINCE)
    assert s["werklabs"] == {"total": 1, "inquiry": 0, "intake": 0, "planned": 0, "running": 0,
                             "completed": 1, "cancelled": 0}
    assert s["participants"] == 12
    assert s["sessionsHeld"] == 3
    assert s["initiatives"] == 2
    assert isinstance(s["averageRating"], (int, float)), s
    assert abs(s["averageRating"] - mean) < 0.005, (s["averageRating"], mean)
    assert s["averageRating"] == story["expected"]["averageRating"]

    # The same figures without the province filter, in that year's list.
    rows = [x for x in stats(api, keys.staff, year=story["year"]) if x["province"] == PROVINCE]
    assert rows == items
    # A partner key (not limited) sees the same figures.
    assert stats(api, keys.partner, year=story["year"], province=PROVINCE) == items


def test_the_werklab_moved_out_of_the_year_it_was_made_in(story):
    """Made this year, it counts in the year of its first session once it has sessions."""
    def total(items):
        return sum(i["werklabs"]["total"] for i in items)
    assert total(story["after_this_year"]) == total(story["before_this_year"])


def test_testimonials_show_the_approved_one_only(api, keys, story):
    r = get_testimonials(api, year=story["year"])
    assert (r.header("Cache-Control") or "").startswith("public"), describe(r)
    items = r.json["items"]
    assert items == [story["testimonial"]], json.dumps(items, indent=1)
    assert items[0]["municipality"] == "Zaltbommel"
    assert items[0]["year"] == story["year"]

    # Nothing that names a participant, anywhere in the answer.
    text = r.body.decode()
    for name, *_ in PARTICIPANTS:
        assert name not in text
        assert name.lower().replace(" ", ".") not in text
    for word in ("participantId", "email", "@", "version", "createdAt", "rating", "moderation"):
        assert word not in text, word

    # Also in the full list (all years).
    everything, _ = api.list_all("/v1/testimonials", None)
    ours = [t for t in everything if t["id"] in story["feedback_ids"]]
    assert ours == [story["testimonial"]]

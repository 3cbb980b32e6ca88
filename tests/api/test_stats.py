"""/v1/stats: per year and province, werklabs by status, participants, sessions held, distinct
initiatives taking part and the average rating.

A werklab counts in the year of its first session (Europe/Amsterdam), or of its creation while
it has none. The werklabs here get sessions in a year and provinces that no other werklab uses
yet (checked first), so every figure can be compared exactly.
"""

import datetime
import random
import uuid

import pytest

from domain import advance, make_initiative, make_participant, make_session, make_werklab
from wlclient import PROVINCES, assert_problem, assert_status, describe, qs

UTC = datetime.timezone.utc
THIS_YEAR = datetime.datetime.now(UTC).year


def stats(api, key, **params):
    r = api.get(qs("/v1/stats", **params), key=key)
    body = assert_status(r, 200)
    assert set(body) == {"items", "next"} and body["next"] is None, describe(r)
    return body["items"]


def row(api, key, year, province):
    items = stats(api, key, year=year, province=province)
    assert len(items) <= 1, items
    return items[0] if items else None


def quiet(api, key, year, province):
    items = [i for i in stats(api, key, year=year) if i["province"] == province]
    return not items


def pick(api, key):
    """A year Y and provinces P, P2, P3 with no figures for (Y, P), (Y, P2), (Y+1, P2), (Y, P3)
    and (Y, no province)."""
    years = list(range(2019, 2025))
    random.shuffle(years)
    for year in years:
        provinces = [p for p in PROVINCES if quiet(api, key, year, p)]
        if not quiet(api, key, year, None):
            continue
        later = [p for p in provinces if quiet(api, key, year + 1, p)]
        if len(provinces) >= 3 and later:
            p2 = random.choice(later)
            p, p3 = random.sample([x for x in provinces if x != p2], 2)
            return year, p, p2, p3
    pytest.fail("no quiet year and provinces left for the stats tests")


def municipality(api, keys, code_pool, province, name):
    for _ in range(20):
        r = api.post("/v1/municipalities", {"code": code_pool(), "name": name,
                                            "province": province}, key=keys.admin)
        if r.status != 409:
            break
    assert r.status == 201, describe(r)
    return r.json


def feedback(api, key, werklab_id, kind, rating=None, **fields):
    body = dict(werklabId=werklab_id, kind=kind, body="Terugblik op het werklab.", **fields)
    if rating is not None:
        body["rating"] = rating
    r = api.post("/v1/feedback", body, key=key)
    assert r.status == 201, describe(r)
    return r.json


def day(year, month, d, hour=9, hours=3):
    start = datetime.datetime(year, month, d, hour, tzinfo=UTC)
    end = start + datetime.timedelta(hours=hours)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def figures(api, keys, code_pool):
    key = keys.staff
    year, p, p2, p3 = pick(api, key)
    m = municipality(api, keys, code_pool, p, "Statdorp")
    m2 = municipality(api, keys, code_pool, p, "Statstad")
    m3 = municipality(api, keys, code_pool, p2, "Elders")
    i1 = make_initiative(api, key, m["id"], name="Dorpshuis Statdorp")
    i2 = make_initiative(api, key, m["id"], name="Zonnepark Statdorp")
    i3 = make_initiative(api, key, m2["id"], name="Buurtbus Statstad")
    make_initiative(api, key, m["id"], name="Initiatief dat nergens aan meedoet")

    def with_participants(werklab, n):
        for _ in range(n):
            make_participant(api, key, werklab["id"])

    # A: inquiry, one past session.
    a = make_werklab(api, key, m["id"])
    make_session(api, key, a["id"], 1, *day(year, 1, 15))
    # B: intake, two participants.
    b = make_werklab(api, key, m["id"], status="intake")
    with_participants(b, 2)
    make_session(api, key, b["id"], 1, *day(year, 2, 10))
    # C: planned, three participants.
    c = make_werklab(api, key, m["id"], status="intake")
    with_participants(c, 3)
    make_session(api, key, c["id"], 1, *day(year, 3, 10))
    advance(api, key, c["id"], "planned")
    # D: running; a visit to i1 with i2 as guest, and a session in 2090 not yet held.
    d = make_werklab(api, key, m["id"], status="intake", capacity={"min": 2, "max": 4})
    with_participants(d, 2)
    make_session(api, key, d["id"], 1, *day(year, 4, 7), kind="initiativeVisit",
                 initiatives=[{"initiativeId": i1["id"], "role": "host"},
                              {"initiativeId": i2["id"], "role": "guest"}])
    make_session(api, key, d["id"], 2, *day(2090, 1, 10))
    advance(api, key, d["id"], "running")
    pd = api.get(f"/v1/werklabs/{d['id']}/participants", key=key).json["items"][0]
    feedback(api, key, d["id"], "evaluation", 2, participantId=pd["id"])
    feedback(api, key, d["id"], "initiativePerspective", 5, initiativeId=i2["id"])
    # E: completed; i1 again (counted once), two ratings and a note without one.
    e = make_werklab(api, key, m["id"], status="intake", capacity={"min": 1, "max": 3})
    with_participants(e, 1)
    make_session(api, key, e["id"], 1, *day(year, 5, 12), kind="initiativeVisit",
                 initiatives=[{"initiativeId": i1["id"], "role": "host"}])
    advance(api, key, e["id"], "completed")
    feedback(api, key, e["id"], "evaluation", 4)
    feedback(api, key, e["id"], "evaluation", 3)
    feedback(api, key, e["id"], "trainerNote")
    # F: cancelled after intake.
    f = make_werklab(api, key, m["id"], status="intake")
    make_session(api, key, f["id"], 1, *day(year, 6, 1))
    advance(api, key, f["id"], "cancelled")
    # G: inquiry in the second municipality of the province, two sessions, i3 as guest.
    g = make_werklab(api, key, m2["id"])
    make_session(api, key, g["id"], 1, *day(year, 7, 1),
                 initiatives=[{"initiativeId": i3["id"], "role": "guest"}])
    make_session(api, key, g["id"], 2, *day(year, 7, 8))
    # H: another province, same year, no ratings.
    h = make_werklab(api, key, m3["id"])
    make_session(api, key, h["id"], 1, *day(year, 8, 1))
    # H2: another province; its session starts on 31 December at 23:30 UTC, which is already
    # 1 January in Amsterdam: it counts in the next year. Its rating stays there.
    h2 = make_werklab(api, key, m3["id"])
    make_session(api, key, h2["id"], 1, f"{year}-12-31T23:30:00Z", f"{year + 1}-01-01T01:00:00Z")
    feedback(api, key, h2["id"], "evaluation", 1)

    w = api.get(f"/v1/werklabs/{h2['id']}", key=key).json
    assert w["startsOn"] == f"{year + 1}-01-01", w
    return dict(year=year, p=p, p2=p2, p3=p3, m=m, m2=m2, m3=m3,
                werklabs=dict(a=a, b=b, c=c, d=d, e=e, f=f, g=g, h=h, h2=h2))


def test_every_figure(api, keys, figures):
    s = row(api, keys.staff, figures["year"], figures["p"])
    assert s is not None
    assert s == {
        "year": figures["year"], "province": figures["p"],
        "werklabs": {"total": 7, "inquiry": 2, "intake": 1, "planned": 1, "running": 1,
                     "completed": 1, "cancelled": 1},
        "participants": 2 + 3 + 2 + 1,
        "sessionsHeld": 8,  # one each for A to F, two for G; D's session in 2090 is not held
        "initiatives": 3,  # i1 (twice), i2, i3; the idle initiative does not count
        "averageRating": 3.5,  # (2 + 5 + 4 + 3) / 4; H2's rating is in another year
    }


def test_other_province_same_year(api, keys, figures):
    s = row(api, keys.staff, figures["year"], figures["p2"])
    assert s == {"year": figures["year"], "province": figures["p2"],
                 "werklabs": {"total": 1, "inquiry": 1, "intake": 0, "planned": 0, "running": 0,
                              "completed": 0, "cancelled": 0},
                 "participants": 0, "sessionsHeld": 1, "initiatives": 0, "averageRating": None}


def test_year_of_the_first_session_in_amsterdam(api, keys, figures):
    s = row(api, keys.staff, figures["year"] + 1, figures["p2"])
    assert s is not None
    assert s["werklabs"]["total"] == 1 and s["werklabs"]["inquiry"] == 1
    assert s["sessionsHeld"] == 1
    assert s["averageRating"] == 1


def test_filters_agree(api, keys, figures):
    year, p, p2 = figures["year"], figures["p"], figures["p2"]
    ours = row(api, keys.staff, year, p)
    by_year = stats(api, keys.staff, year=year)
    assert all(i["year"] == year for i in by_year)
    assert [i for i in by_year if i["province"] == p] == [ours]
    assert [i for i in by_year if i["province"] == p2] == [row(api, keys.staff, year, p2)]
    by_province = stats(api, keys.staff, province=p)
    assert all(i["province"] == p for i in by_province)
    assert [i for i in by_province if i["year"] == year] == [ours]
    everything = stats(api, keys.staff)
    assert [i for i in everything if (i["year"], i["province"]) == (year, p)] == [ours]
    years = [i["year"] for i in everything]
    assert years == sorted(years)
    pairs = [(i["year"], i["province"]) for i in everything]
    assert len(pairs) == len(set(pairs))


@pytest.mark.parametrize("role", ["admin", "staff", "partner"])
def test_every_role_reads_figures(api, keys, figures, role):
    assert row(api, keys[role], figures["year"], figures["p"])["werklabs"]["total"] == 7


def test_no_key(api):
    r = api.get("/v1/stats")
    assert_problem(r, 401)
    assert (r.header("WWW-Authenticate") or "").startswith("Bearer")


def test_werklab_without_sessions_counts_in_its_year_of_creation(api, keys, code_pool, figures):
    key, p3, year = keys.staff, figures["p3"], figures["year"]
    m = municipality(api, keys, code_pool, p3, "Nieuwdorp")

    def total(y):
        s = row(api, key, y, p3)
        return (s["werklabs"]["total"], s["werklabs"]["inquiry"]) if s else (0, 0)

    before = total(THIS_YEAR)
    w = make_werklab(api, key, m["id"])
    assert total(THIS_YEAR) == (before[0] + 1, before[1] + 1)
    assert total(year) == (0, 0)
    # A first session moves it to the year of that session.
    s = make_session(api, key, w["id"], 1, *day(year, 9, 1))
    assert total(THIS_YEAR) == before
    assert total(year) == (1, 1)
    # Without it again, back to the year it was made in.
    assert api.delete(f"/v1/sessions/{s['id']}", key=key).status == 204
    assert total(THIS_YEAR) == (before[0] + 1, before[1] + 1)
    assert api.delete(f"/v1/werklabs/{w['id']}", key=key).status == 204
    assert total(THIS_YEAR) == before


def test_municipality_without_province(api, keys, code_pool, figures):
    key, year = keys.staff, figures["year"]
    m = municipality(api, keys, code_pool, None, "Zonder Provincie")
    w = make_werklab(api, key, m["id"])
    make_session(api, key, w["id"], 1, *day(year, 10, 1))
    items = [i for i in stats(api, key, year=year) if i["province"] is None]
    assert len(items) == 1, items
    assert items[0]["werklabs"]["total"] == 1 and items[0]["sessionsHeld"] == 1
    assert items[-1] == stats(api, key, year=year)[-1]  # no province sorts last
    # Asking for a province leaves it out.
    assert all(i["province"] == figures["p"] for i in stats(api, key, province=figures["p"]))


@pytest.mark.parametrize("year", ["2000", "2100"])
def test_year_bounds_accepted(api, keys, year):
    assert_status(api.get(qs("/v1/stats", year=year), key=keys.staff), 200)


@pytest.mark.parametrize("params, names", [
    ({"year": "1999", "province": "Brabant"}, {"year", "province"}),
    ({"year": "2101"}, {"year"}),
    ({"year": "abc", "province": "gelderland"}, {"year", "province"}),
    ({"year": ""}, {"year"}),
    ({"year": "2020.5"}, {"year"}),
    ({"year": " 2020"}, {"year"}),
    ({"year": "+2020"}, {"year"}),
    ({"province": ""}, {"province"}),
    ({"province": "Gelderland,Utrecht"}, {"province"}),
    ({"limit": "10"}, {"limit"}),
    ({"municipalityId": str(uuid.uuid4())}, {"municipalityId"}),
])
def test_bad_parameters_listed_at_once(api, keys, params, names):
    r = api.get(qs("/v1/stats", **params), key=keys.staff)
    assert_problem(r, 400, names)


def test_stats_is_read_only(api, keys):
    r = api.post("/v1/stats", {}, key=keys.admin)
    assert_problem(r, 405)
    assert {m.strip() for m in r.header("Allow").split(",")} >= {"GET", "OPTIONS"}

"""Initiatives: create, read, list (filters, sort keys), merge-patch, delete, validation,
preconditions, references and personal data."""

import threading
import time
import uuid

import pytest

from domain import make_initiative, make_session, make_werklab
from wlclient import (TIMESTAMP_RE, UUID_RE, assert_problem, assert_status, describe, parse_time,
                      as_ordered)

FIELDS = {"id", "municipalityId", "name", "kind", "legalForm", "kvkNumber", "themes",
          "neighbourhood", "description", "website", "lsaMember", "rightToChallenge", "contact",
          "version", "createdAt", "updatedAt"}
KINDS = ["residentInitiative", "communityCentre", "neighbourhoodCooperative",
         "communityEnterprise", "residentsCompany", "other"]
THEMES = ["careWelfare", "communityCentre", "greenPublicSpace", "energyTransition", "housing",
          "environmentPlanning", "socialCohesion", "economyWork", "other"]


def url(i):
    return f"/v1/initiatives/{i['id'] if isinstance(i, dict) else i}"


def get(api, keys, i):
    return assert_status(api.get(url(i), key=keys.admin), 200)


def listed(api, keys, params, key=None):
    items, _ = api.list_all("/v1/initiatives", key or keys.admin, params)
    return items


def ids(items):
    return [i["id"] for i in items]


def assert_shape(i, partner=False):
    assert set(i) == (FIELDS - {"contact"} if partner else FIELDS), i
    assert UUID_RE.match(i["id"]) and UUID_RE.match(i["municipalityId"]), i
    assert i["kind"] in KINDS, i
    assert isinstance(i["themes"], list) and set(i["themes"]) <= set(THEMES), i
    assert isinstance(i["lsaMember"], bool) and isinstance(i["rightToChallenge"], bool), i
    assert TIMESTAMP_RE.match(i["createdAt"]) and TIMESTAMP_RE.match(i["updatedAt"]), i
    if not partner and i["contact"] is not None:
        assert set(i["contact"]) == {"name", "email", "phone"}, i


FULL = {"name": "Buurtkracht Oost", "kind": "neighbourhoodCooperative", "legalForm": "cooperative",
        "kvkNumber": "12345678", "themes": ["energyTransition", "socialCohesion"],
        "neighbourhood": "Oost", "description": "Een coöperatie die zonnepanelen legt.",
        "website": "https://buurtkracht.example.nl/over", "lsaMember": True,
        "rightToChallenge": True,
        "contact": {"name": "Fatma Yilmaz", "email": "fatma@example.nl", "phone": "+31 6 8765 4321"}}


# ------------------------------------------------------------------ create and read


def test_create_full_201_location_etag(api, keys, municipality):
    body = dict(FULL, municipalityId=municipality["id"])
    r = api.post("/v1/initiatives", body, key=keys.staff)
    i = assert_status(r, 201)
    assert_shape(i)
    assert {k: i[k] for k in body} == body
    assert i["version"] == 1 and i["createdAt"] == i["updatedAt"]
    assert (r.header("Location") or "").endswith(url(i)), describe(r)
    assert r.header("ETag") == '"1"', describe(r)
    g = api.get(url(i), key=keys.admin)
    assert assert_status(g, 200) == i
    assert g.header("ETag") == '"1"'


def test_create_minimal_has_defaults(api, keys, municipality):
    body = {"municipalityId": municipality["id"], "name": "Klein", "kind": "other"}
    i = assert_status(api.post("/v1/initiatives", body, key=keys.admin), 201)
    assert_shape(i)
    assert i["themes"] == [] and i["lsaMember"] is False and i["rightToChallenge"] is False
    for k in ("legalForm", "kvkNumber", "neighbourhood", "description", "website", "contact"):
        assert i[k] is None, (k, i)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind(api, keys, municipality, kind):
    i = make_initiative(api, keys.admin, municipality["id"], kind=kind)
    assert get(api, keys, i)["kind"] == kind


def test_every_theme_and_legal_form(api, keys, municipality):
    i = make_initiative(api, keys.admin, municipality["id"], themes=THEMES)
    assert sorted(i["themes"]) == sorted(THEMES)
    for form in ["association", "foundation", "cooperative", "informal", "other"]:
        r = api.patch(url(i), {"legalForm": form}, key=keys.admin)
        assert assert_status(r, 200)["legalForm"] == form


def test_partner_reads_without_contact(api, keys, municipality):
    i = make_initiative(api, keys.admin, municipality["id"], **FULL)
    r = api.get(url(i), key=keys.partner)
    p = assert_status(r, 200)
    assert_shape(p, partner=True)
    assert p == {k: v for k, v in i.items() if k != "contact"}
    assert b"fatma@example.nl" not in r.body and b"Yilmaz" not in r.body
    lst = api.get(f"/v1/initiatives?municipalityId={municipality['id']}", key=keys.partner)
    items = assert_status(lst, 200)["items"]
    assert ids(items) == [i["id"]] and "contact" not in items[0]
    assert b"fatma@example.nl" not in lst.body


def test_partner_cannot_write(api, keys, municipality):
    i = make_initiative(api, keys.admin, municipality["id"])
    body = {"municipalityId": municipality["id"], "name": "P", "kind": "other"}
    assert_problem(api.post("/v1/initiatives", body, key=keys.partner), 403)
    assert_problem(api.patch(url(i), {"name": "p"}, key=keys.partner), 403)
    assert_problem(api.delete(url(i), key=keys.partner), 403)
    assert get(api, keys, i) == i
    assert ids(listed(api, keys, {"municipalityId": municipality["id"]})) == [i["id"]]


@pytest.mark.parametrize("path", ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g",
                                  "{uuid}x", "{uuid}-1"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_malformed_id_is_404(api, keys, municipality, method, path):
    i = make_initiative(api, keys.admin, municipality["id"])
    body = {"name": "x"} if method == "PATCH" else None
    r = api.request(method, f"/v1/initiatives/{path.replace('{uuid}', i['id'])}", json_body=body,
                    key=keys.admin)
    assert_problem(r, 404)
    assert get(api, keys, i) == i


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_id_is_404(api, keys, method):
    body = {"name": "x"} if method == "PATCH" else None
    assert_problem(api.request(method, url(str(uuid.uuid4())), json_body=body, key=keys.admin), 404)


# ------------------------------------------------------------------ validation


BAD_FIELDS = {
    "name-empty": ({"name": ""}, {"name": "minLength"}),
    "name-long": ({"name": "n" * 201}, {"name": "maxLength"}),
    "name-type": ({"name": 7}, {"name": "type"}),
    "name-null": ({"name": None}, {"name": {"required", "type"}}),
    "kind-enum": ({"kind": "club"}, {"kind": "enum"}),
    "kind-case": ({"kind": "ResidentInitiative"}, {"kind": "enum"}),
    "kind-type": ({"kind": ["other"]}, {"kind": "type"}),
    "kind-null": ({"kind": None}, {"kind": {"required", "type"}}),
    "legalForm-enum": ({"legalForm": "bv"}, {"legalForm": "enum"}),
    "legalForm-type": ({"legalForm": 1}, {"legalForm": "type"}),
    "kvk-short": ({"kvkNumber": "1234567"}, {"kvkNumber": "pattern"}),
    "kvk-long": ({"kvkNumber": "123456789"}, {"kvkNumber": "pattern"}),
    "kvk-letters": ({"kvkNumber": "1234567a"}, {"kvkNumber": "pattern"}),
    "kvk-newline": ({"kvkNumber": "12345678\n"}, {"kvkNumber": "pattern"}),
    "kvk-number": ({"kvkNumber": 12345678}, {"kvkNumber": "type"}),
    "themes-type": ({"themes": "housing"}, {"themes": "type"}),
    "themes-enum": ({"themes": ["housing", "sports"]}, {"themes": "enum"}),
    "themes-item-type": ({"themes": [1]}, {"themes": "type"}),
    "themes-duplicate": ({"themes": ["housing", "housing"]}, {"themes": {"enum", "unknown"}}),
    "themes-null": ({"themes": None}, {"themes": "type"}),
    "neighbourhood-long": ({"neighbourhood": "b" * 201}, {"neighbourhood": "maxLength"}),
    "description-long": ({"description": "d" * 4001}, {"description": "maxLength"}),
    "description-type": ({"description": False}, {"description": "type"}),
    "website-scheme": ({"website": "ftp://example.nl"}, {"website": "format"}),
    "website-relative": ({"website": "www.example.nl"}, {"website": "format"}),
    "website-js": ({"website": "javascript:alert(1)"}, {"website": "format"}),
    "website-long": ({"website": "https://example.nl/" + "a" * 2000},
                     {"website": {"maxLength", "format"}}),
    "lsaMember-string": ({"lsaMember": "true"}, {"lsaMember": "type"}),
    "lsaMember-number": ({"lsaMember": 1}, {"lsaMember": "type"}),
    "lsaMember-null": ({"lsaMember": None}, {"lsaMember": "type"}),
    "rightToChallenge-string": ({"rightToChallenge": "yes"}, {"rightToChallenge": "type"}),
    "contact-type": ({"contact": "Fatma"}, {"contact": "type"}),
    "contact-email": ({"contact": {"email": "fatma"}}, {"contact.email": "format"}),
    "contact-phone": ({"contact": {"phone": "bel me"}}, {"contact.phone": "pattern"}),
    "contact-name-long": ({"contact": {"name": "n" * 201}}, {"contact.name": "maxLength"}),
    "contact-unknown": ({"contact": {"fax": "1"}}, {"contact.fax": "unknown"}),
    "municipalityId-format": ({"municipalityId": "GM0297"}, {"municipalityId": "format"}),
    "municipalityId-type": ({"municipalityId": 5}, {"municipalityId": "type"}),
    "unknown-field": ({"colour": "red"}, {"colour": "unknown"}),
    "read-only-id": ({"id": str(uuid.uuid4())}, {"id": "unknown"}),
    "read-only-version": ({"version": 3}, {"version": "unknown"}),
    "read-only-createdAt": ({"createdAt": "2020-01-01T00:00:00Z"}, {"createdAt": "unknown"}),
    "read-only-updatedAt": ({"updatedAt": "2020-01-01T00:00:00Z"}, {"updatedAt": "unknown"}),
}


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_post_bad_field(api, keys, municipality, case):
    fields, expected = BAD_FIELDS[case]
    body = dict({"municipalityId": municipality["id"], "name": "Geldig", "kind": "other"}, **fields)
    p = assert_problem(api.post("/v1/initiatives", body, key=keys.admin), 400, names=expected)
    if case.startswith("read-only"):
        assert "read-only" in p["invalidParams"][0]["reason"], p
    assert listed(api, keys, {"municipalityId": municipality["id"]}) == []


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_patch_bad_field_changes_nothing(api, keys, municipality, case):
    fields, expected = BAD_FIELDS[case]
    i = make_initiative(api, keys.admin, municipality["id"], **FULL)
    assert_problem(api.patch(url(i), fields, key=keys.admin), 400, names=expected)
    assert get(api, keys, i) == i


def test_post_required_fields(api, keys, municipality):
    assert_problem(api.post("/v1/initiatives", {}, key=keys.admin), 400,
                   names={"municipalityId": "required", "name": "required", "kind": "required"})
    for missing in ("municipalityId", "name", "kind"):
        body = {"municipalityId": municipality["id"], "name": "Verplicht", "kind": "other"}
        del body[missing]
        assert_problem(api.post("/v1/initiatives", body, key=keys.admin), 400,
                       names={missing: "required"})
    assert listed(api, keys, {"municipalityId": municipality["id"]}) == []


def test_all_invalid_fields_at_once(api, keys, municipality):
    body = {"municipalityId": municipality["id"], "name": "", "kind": "club", "kvkNumber": "1",
            "themes": ["x"], "website": "nope", "contact": {"email": "x"}, "id": str(uuid.uuid4())}
    assert_problem(api.post("/v1/initiatives", body, key=keys.admin), 400, names={
        "name": "minLength", "kind": "enum", "kvkNumber": "pattern", "themes": "enum",
        "website": "format", "contact.email": "format", "id": "unknown"})
    assert listed(api, keys, {"municipalityId": municipality["id"]}) == []


def test_unknown_municipality_is_400_reference(api, keys, municipality):
    body = {"municipalityId": str(uuid.uuid4()), "name": "Nergens", "kind": "other"}
    assert_problem(api.post("/v1/initiatives", body, key=keys.admin), 400,
                   names={"municipalityId": "reference"})
    i = make_initiative(api, keys.admin, municipality["id"])
    assert_problem(api.patch(url(i), {"municipalityId": str(uuid.uuid4())}, key=keys.admin), 400,
                   names={"municipalityId": "reference"})
    assert get(api, keys, i) == i


@pytest.mark.parametrize("website", ["http://example.nl", "https://www.example.nl/a?b=c#d",
                                     "https://example.nl:8443/"])
def test_valid_websites(api, keys, municipality, website):
    i = make_initiative(api, keys.admin, municipality["id"], website=website)
    assert i["website"] == website


def test_limits_are_inclusive(api, keys, municipality):
    i = make_initiative(api, keys.admin, municipality["id"], name="ü" * 200,
                        neighbourhood="b" * 200, description="é" * 4000, kvkNumber="00000000")
    assert get(api, keys, i)["description"] == "é" * 4000


# ------------------------------------------------------------------ merge patch


def test_patch_merges_and_bumps_version(api, keys, municipality):
    i0 = make_initiative(api, keys.admin, municipality["id"], **FULL)
    r = api.patch(url(i0), {"contact": {"phone": "010 123 4567"}}, key=keys.staff)
    i1 = assert_status(r, 200)
    assert r.header("ETag") == '"2"'
    assert i1 == dict(i0, contact=dict(i0["contact"], phone="010 123 4567"), version=2,
                      updatedAt=i1["updatedAt"])
    assert parse_time(i1["updatedAt"]) >= parse_time(i0["updatedAt"])

    i2 = assert_status(api.patch(url(i0), {"themes": ["housing"], "description": None,
                                           "lsaMember": False}, key=keys.admin), 200)
    assert i2["themes"] == ["housing"] and i2["description"] is None
    assert i2["lsaMember"] is False and i2["rightToChallenge"] is True and i2["version"] == 3

    i3 = assert_status(api.patch(url(i0), {"contact": None, "kvkNumber": None,
                                           "themes": []}, key=keys.admin), 200)
    assert i3["contact"] is None and i3["kvkNumber"] is None and i3["themes"] == []
    assert i3["name"] == FULL["name"] and i3["version"] == 4

    i4 = assert_status(api.patch(url(i0), {"contact": {"email": "nieuw@example.nl"}},
                                 key=keys.admin), 200)
    assert i4["contact"] == {"name": None, "email": "nieuw@example.nl", "phone": None}
    assert get(api, keys, i0) == i4


def test_patch_moves_to_another_municipality(api, keys, new_municipality):
    a, b = new_municipality(), new_municipality()
    i = make_initiative(api, keys.admin, a["id"])
    moved = assert_status(api.patch(url(i), {"municipalityId": b["id"]}, key=keys.admin), 200)
    assert moved["municipalityId"] == b["id"]
    assert listed(api, keys, {"municipalityId": a["id"]}) == []
    assert ids(listed(api, keys, {"municipalityId": b["id"]})) == [i["id"]]


def test_moving_an_initiative_that_takes_part_in_a_session_is_refused(api, keys, new_municipality):
    """An initiative takes part only in werklabs of its own municipality: moving it away while
    it takes part in a session of a werklab there would break that rule."""
    a, b = new_municipality(), new_municipality()
    i = make_initiative(api, keys.admin, a["id"])
    w = make_werklab(api, keys.admin, a["id"])
    make_session(api, keys.admin, w["id"], 1, "2026-05-01T09:00:00Z", "2026-05-01T12:00:00Z",
                 kind="initiativeVisit", initiatives=[{"initiativeId": i["id"], "role": "host"}])
    r = api.patch(url(i), {"municipalityId": b["id"]}, key=keys.admin)
    assert_problem(r, 409, conflicts={"takingPart"})
    assert get(api, keys, i) == i
    assert ids(listed(api, keys, {"municipalityId": a["id"]})) == [i["id"]]


def test_empty_patch_changes_nothing(api, keys, municipality):
    i = make_initiative(api, keys.admin, municipality["id"])
    r = api.patch(url(i), {}, key=keys.admin)
    assert r.status == 200, describe(r)
    assert r.json["version"] in (1, 2)
    assert {k: v for k, v in r.json.items() if k not in ("version", "updatedAt")} == \
        {k: v for k, v in i.items() if k not in ("version", "updatedAt")}


# ------------------------------------------------------------------ preconditions


def test_if_none_match_304_and_stale_200(api, keys, municipality):
    i = make_initiative(api, keys.admin, municipality["id"])
    r = api.get(url(i), key=keys.admin, headers={"If-None-Match": '"1"'})
    assert_status(r, 304)
    assert r.body == b"" and r.header("ETag") == '"1"'
    assert_status(api.patch(url(i), {"name": "Twee"}, key=keys.admin), 200)
    r = api.get(url(i), key=keys.admin, headers={"If-None-Match": '"1"'})
    assert assert_status(r, 200)["name"] == "Twee"
    assert r.header("ETag") == '"2"'


def test_if_match_stale_is_412_and_changes_nothing(api, keys, municipality):
    i = make_initiative(api, keys.admin, municipality["id"])
    i2 = assert_status(api.patch(url(i), {"name": "Twee"}, key=keys.admin), 200)
    assert_problem(api.patch(url(i), {"name": "Verloren"}, key=keys.admin,
                             headers={"If-Match": '"1"'}), 412)
    assert_problem(api.delete(url(i), key=keys.admin, headers={"If-Match": '"1"'}), 412)
    assert get(api, keys, i) == i2
    r = api.patch(url(i), {"name": "Drie"}, key=keys.admin, headers={"If-Match": '"2"'})
    assert assert_status(r, 200)["version"] == 3
    assert_status(api.delete(url(i), key=keys.admin, headers={"If-Match": '"3"'}), 204)
    assert_problem(api.get(url(i), key=keys.admin), 404)


# ------------------------------------------------------------------ delete


def test_delete(api, keys, municipality):
    i = make_initiative(api, keys.admin, municipality["id"])
    r = api.delete(url(i), key=keys.staff)
    assert_status(r, 204)
    assert r.body == b""
    assert_problem(api.get(url(i), key=keys.admin), 404)
    assert_problem(api.delete(url(i), key=keys.admin), 404)
    assert_problem(api.patch(url(i), {"name": "x"}, key=keys.admin), 404)
    assert listed(api, keys, {"municipalityId": municipality["id"]}) == []


def test_delete_taking_part_in_a_session_is_409_referenced(api, keys, municipality):
    i = make_initiative(api, keys.admin, municipality["id"])
    w = make_werklab(api, keys.admin, municipality["id"])
    s = make_session(api, keys.admin, w["id"], 1, "2026-05-01T09:00:00Z", "2026-05-01T12:00:00Z",
                     initiatives=[{"initiativeId": i["id"], "role": "guest"}])
    assert_problem(api.delete(url(i), key=keys.admin), 409, conflicts={"referenced"})
    assert get(api, keys, i) == i
    # Once it no longer takes part, it can go.
    assert_status(api.patch(f"/v1/sessions/{s['id']}", {"initiatives": []}, key=keys.admin), 200)
    assert_status(api.delete(url(i), key=keys.admin), 204)


def test_delete_with_feedback_is_409_referenced(api, keys, municipality):
    i = make_initiative(api, keys.admin, municipality["id"])
    w = make_werklab(api, keys.admin, municipality["id"])
    make_session(api, keys.admin, w["id"], 1, "2026-05-01T09:00:00Z", "2026-05-01T12:00:00Z",
                 initiatives=[{"initiativeId": i["id"], "role": "guest"}])
    r = api.post("/v1/feedback", {"werklabId": w["id"], "kind": "initiativePerspective",
                                  "initiativeId": i["id"], "body": "Goed gesprek."}, key=keys.admin)
    assert_status(r, 201)
    assert_problem(api.delete(url(i), key=keys.admin), 409, conflicts={"referenced"})
    assert get(api, keys, i) == i


def test_municipality_with_initiatives_cannot_be_deleted(api, keys, municipality):
    make_initiative(api, keys.admin, municipality["id"])
    assert_problem(api.delete(f"/v1/municipalities/{municipality['id']}", key=keys.admin), 409,
                   conflicts={"referenced"})
    assert_status(api.get(f"/v1/municipalities/{municipality['id']}", key=keys.admin), 200)


# ------------------------------------------------------------------ lists: filters


@pytest.fixture
def spread(api, keys, municipality):
    """Four initiatives of one municipality that differ in every filtered field."""
    m = municipality["id"]
    return m, {
        "a": make_initiative(api, keys.admin, m, name="Moestuin De Ploeg", kind="residentInitiative",
                             themes=["greenPublicSpace", "careWelfare"], lsaMember=True,
                             description="Wij onderhouden de moestuinen van de wijk."),
        "b": make_initiative(api, keys.admin, m, name="Wijkcentrum Het Anker",
                             kind="communityCentre", themes=["communityCentre"],
                             rightToChallenge=True, description="Een huiskamer voor de buurt."),
        "c": make_initiative(api, keys.admin, m, name="Energiecoöperatie Zon",
                             kind="neighbourhoodCooperative", themes=["energyTransition"],
                             lsaMember=True, rightToChallenge=True),
        "d": make_initiative(api, keys.admin, m, name="Repair café", kind="other"),
    }


FILTERS = {
    "kind": ({"kind": "communityCentre"}, {"b"}),
    "kind-list": ({"kind": "communityCentre,other"}, {"b", "d"}),
    "theme": ({"theme": "careWelfare"}, {"a"}),
    "theme-any": ({"theme": "energyTransition,communityCentre"}, {"b", "c"}),
    "theme-none": ({"theme": "housing"}, set()),
    "lsaMember-true": ({"lsaMember": "true"}, {"a", "c"}),
    "lsaMember-false": ({"lsaMember": "false"}, {"b", "d"}),
    "rightToChallenge-true": ({"rightToChallenge": "true"}, {"b", "c"}),
    "rightToChallenge-false": ({"rightToChallenge": "false"}, {"a", "d"}),
    "q-name": ({"q": "anker"}, {"b"}),
    "q-description-stemmed": ({"q": "moestuin"}, {"a"}),
    "q-description": ({"q": "huiskamer"}, {"b"}),
    "q-nothing": ({"q": "zwembad"}, set()),
    "combined": ({"lsaMember": "true", "rightToChallenge": "true"}, {"c"}),
    "combined-kind-theme": ({"kind": "residentInitiative,other", "theme": "greenPublicSpace"}, {"a"}),
}


@pytest.mark.parametrize("case", sorted(FILTERS))
def test_filters(api, keys, spread, case):
    m, made = spread
    params, want = FILTERS[case]
    got = listed(api, keys, dict(params, municipalityId=m))
    assert set(ids(got)) == {made[k]["id"] for k in want}, (case, [g["name"] for g in got])


def test_municipality_filter(api, keys, new_municipality):
    a, b = new_municipality(), new_municipality()
    ia = make_initiative(api, keys.admin, a["id"])
    ib = make_initiative(api, keys.admin, b["id"])
    assert ids(listed(api, keys, {"municipalityId": a["id"]})) == [ia["id"]]
    assert ids(listed(api, keys, {"municipalityId": b["id"]})) == [ib["id"]]


def test_filter_on_unknown_municipality(api, keys):
    r = api.get(f"/v1/initiatives?municipalityId={uuid.uuid4()}", key=keys.admin)
    assert r.status in (200, 404), describe(r)
    if r.status == 200:
        assert r.json["items"] == []


def test_updated_since(api, keys, municipality):
    a = make_initiative(api, keys.admin, municipality["id"])
    b = make_initiative(api, keys.admin, municipality["id"])
    time.sleep(0.05)
    b2 = assert_status(api.patch(url(b), {"name": "Later"}, key=keys.admin), 200)
    got = listed(api, keys, {"municipalityId": municipality["id"], "updatedSince": b2["updatedAt"]})
    assert ids(got) == [b["id"]]
    got = listed(api, keys, {"municipalityId": municipality["id"], "updatedSince": a["createdAt"]})
    assert set(ids(got)) == {a["id"], b["id"]}


BAD_QUERIES = {
    "kind": ("kind=club", "kind"),
    "kind-one-bad": ("kind=other,club", "kind"),
    "theme": ("theme=sports", "theme"),
    "lsaMember": ("lsaMember=yes", "lsaMember"),
    "rightToChallenge": ("rightToChallenge=1", "rightToChallenge"),
    "municipalityId": ("municipalityId=GM0297", "municipalityId"),
    "updatedSince": ("updatedSince=yesterday", "updatedSince"),
    "sort": ("sort=kind", "sort"),
    "sort-desc": ("sort=-website", "sort"),
    "limit": ("limit=0", "limit"),
    "unknown": ("colour=red", "colour"),
    "cursor": ("cursor=abc", "cursor"),
}


@pytest.mark.parametrize("case", sorted(BAD_QUERIES))
def test_bad_query(api, keys, case):
    query, name = BAD_QUERIES[case]
    assert_problem(api.get(f"/v1/initiatives?{query}", key=keys.admin), 400, names=[name])


# ------------------------------------------------------------------ lists: sort keys


@pytest.mark.parametrize("desc", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("sort_key", ["name", "createdAt", "updatedAt"])
def test_sort_keys(api, keys, municipality, sort_key, desc):
    m = municipality["id"]
    made = [make_initiative(api, keys.admin, m, name=n) for n in ("Charlie", "Alpha", "Delta", "Bravo")]
    time.sleep(0.01)
    # Touch them in another order than they were made, so updatedAt differs from createdAt.
    for i in (made[2], made[0], made[3], made[1]):
        assert_status(api.patch(url(i), {"description": "bijgewerkt"}, key=keys.admin), 200)
    now = {i["id"]: get(api, keys, i) for i in made}
    want = sorted(now.values(), key=lambda i: (as_ordered(i[sort_key]), i["id"]), reverse=desc)
    sort = ("-" if desc else "") + sort_key
    got = listed(api, keys, {"municipalityId": m, "sort": sort})
    assert ids(got) == ids(want), [g[sort_key] for g in got]
    # The same order page by page.
    paged, _ = api.list_all("/v1/initiatives", keys.admin, {"municipalityId": m, "sort": sort},
                            limit=1)
    assert ids(paged) == ids(want)


def test_default_order_is_creation(api, keys, municipality):
    made = [make_initiative(api, keys.admin, municipality["id"], name=n) for n in ("Z", "A", "M")]
    assert ids(listed(api, keys, {"municipalityId": municipality["id"]})) == ids(made)


# ------------------------------------------------------------------ races


def concurrently(*calls):
    """Runs the calls at once, each on its own connection; returns their responses in order."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, call):
        barrier.wait(timeout=30)
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r is not None for r in results), "a request got no answer"
    return results


@pytest.mark.parametrize("round_", range(20))
def test_moving_an_initiative_racing_a_session_that_invites_it(api, keys, new_municipality,
                                                               round_):
    """One of the two is refused: never an initiative taking part in a session of a werklab
    outside its municipality."""
    a, b = new_municipality(), new_municipality()
    i = make_initiative(api, keys.admin, a["id"])
    w = make_werklab(api, keys.admin, a["id"])
    move, invite = concurrently(
        lambda: api.patch(url(i), {"municipalityId": b["id"]}, key=keys.admin),
        lambda: api.post("/v1/sessions", {
            "werklabId": w["id"], "sequence": 1, "kind": "initiativeVisit", "title": "Bezoek",
            "startsAt": "2026-05-01T09:00:00Z", "endsAt": "2026-05-01T12:00:00Z",
            "initiatives": [{"initiativeId": i["id"], "role": "host"}]}, key=keys.admin))
    now = get(api, keys, i)
    sessions, _ = api.list_all("/v1/sessions", keys.admin, {"werklabId": w["id"]})
    if sessions:
        assert now["municipalityId"] == a["id"], (describe(move), describe(invite))
        assert_problem(move, 409, conflicts={"takingPart"})
        assert_status(invite, 201)
    else:
        assert now["municipalityId"] == b["id"], (describe(move), describe(invite))
        assert_status(move, 200)
        assert_problem(invite, 400, names={"initiatives": "reference"})

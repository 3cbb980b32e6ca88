"""Municipalities: create, read, merge-patch, delete, validation, preconditions."""

import uuid

import pytest

from wlclient import (PROVINCES, TIMESTAMP_RE, UUID_RE, assert_problem, assert_status, describe,
                      parse_time)

FIELDS = {"id", "code", "name", "province", "contact", "notes", "version", "createdAt", "updatedAt"}


def url(m):
    return f"/v1/municipalities/{m['id'] if isinstance(m, dict) else m}"


def assert_shape(m, partner=False):
    want = FIELDS - {"contact"} if partner else FIELDS
    assert set(m) == want, m
    assert UUID_RE.match(m["id"]), m
    assert isinstance(m["version"], int) and m["version"] >= 1, m
    assert TIMESTAMP_RE.match(m["createdAt"]) and TIMESTAMP_RE.match(m["updatedAt"]), m
    assert m["province"] is None or m["province"] in PROVINCES, m
    if not partner and m["contact"] is not None:
        assert set(m["contact"]) == {"name", "email", "phone"}, m


def count_code(api, keys, code):
    r = api.get(f"/v1/municipalities?code={code}", key=keys.admin)
    assert r.status == 200, describe(r)
    return len(r.json["items"])


# ------------------------------------------------------------------ create and read


def test_create_returns_201_location_etag_and_body(api, keys, fresh_code):
    body = {"code": fresh_code, "name": "Súdwest-Testlân", "province": "Fryslân",
            "contact": {"name": "Anna Bakker", "email": "anna@example.nl", "phone": "+31 (0)58 123-4567"},
            "notes": "eerste"}
    r = api.post("/v1/municipalities", body, key=keys.staff)
    m = assert_status(r, 201)
    assert_shape(m)
    assert {k: m[k] for k in body} == body
    assert m["version"] == 1 and m["createdAt"] == m["updatedAt"]
    assert r.header("Location", ).endswith(f"/v1/municipalities/{m['id']}"), describe(r)
    assert r.header("ETag") == '"1"', describe(r)
    g = api.get(url(m), key=keys.admin)
    assert assert_status(g, 200) == m
    assert g.header("ETag") == '"1"'


def test_create_minimal_fills_optional_fields_with_null(api, keys, fresh_code):
    m = assert_status(api.post("/v1/municipalities", {"code": fresh_code, "name": "Klein"},
                               key=keys.admin), 201)
    assert_shape(m)
    assert m["province"] is None and m["contact"] is None and m["notes"] is None


def test_create_with_partial_contact(api, keys, fresh_code):
    m = assert_status(api.post("/v1/municipalities", {"code": fresh_code, "name": "Half",
                                                      "contact": {"email": "a@example.nl"}},
                               key=keys.admin), 201)
    assert m["contact"] == {"name": None, "email": "a@example.nl", "phone": None}


@pytest.mark.parametrize("name", ["ü" * 100, "x", "'s-Hertogenbosch", "Súdwest-Fryslân",
                                  "Bergen (NH.)", "Ñandú 東京 ☃"])
def test_valid_names(api, keys, fresh_code, name):
    m = assert_status(api.post("/v1/municipalities", {"code": fresh_code, "name": name},
                               key=keys.admin), 201)
    assert m["name"] == name
    assert api.get(url(m), key=keys.admin).json["name"] == name


def test_partner_sees_no_contact(api, keys, municipality):
    r = api.get(url(municipality), key=keys.partner)
    m = assert_status(r, 200)
    assert "contact" not in m, m
    assert_shape(m, partner=True)
    assert {k: v for k, v in municipality.items() if k != "contact"} == m
    assert b"jan@example.nl" not in r.body
    lst = api.get(f"/v1/municipalities?code={municipality['code']}", key=keys.partner)
    items = assert_status(lst, 200)["items"]
    assert len(items) == 1 and "contact" not in items[0], items
    assert b"jan@example.nl" not in lst.body


def test_staff_sees_contact(api, keys, municipality):
    m = assert_status(api.get(url(municipality), key=keys.staff), 200)
    assert m["contact"]["email"] == "jan@example.nl"


@pytest.mark.parametrize("path", ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g",
                                  "{uuid}x", "{uuid}-1", "%20{uuid}", "..%2f..%2fhealthz"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_malformed_id_is_404(api, keys, municipality, method, path):
    path = path.replace("{uuid}", municipality["id"])
    body = {"name": "x"} if method == "PATCH" else None
    r = api.request(method, f"/v1/municipalities/{path}", json_body=body, key=keys.admin)
    assert_problem(r, 404)
    assert api.get(url(municipality), key=keys.admin).json == municipality


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_id_is_404(api, keys, method):
    body = {"name": "x"} if method == "PATCH" else None
    assert_problem(api.request(method, url(str(uuid.uuid4())), json_body=body, key=keys.admin), 404)


# ------------------------------------------------------------------ validation


LONG = "x" * 101
# field value -> expected invalidParams (name -> code or set of acceptable codes).
BAD_FIELDS = {
    "code-number": ({"code": 297}, {"code": "type"}),
    "code-short": ({"code": "GM297"}, {"code": "pattern"}),
    "code-lowercase": ({"code": "gm0297"}, {"code": "pattern"}),
    "code-long": ({"code": "GM02971"}, {"code": "pattern"}),
    "code-prefix": ({"code": "XGM0297"}, {"code": "pattern"}),
    "code-newline": ({"code": "GM0297\n"}, {"code": "pattern"}),
    "code-null": ({"code": None}, {"code": {"type", "required"}}),
    "name-empty": ({"name": ""}, {"name": "minLength"}),
    "name-101": ({"name": LONG}, {"name": "maxLength"}),
    "name-101-umlauts": ({"name": "ü" * 101}, {"name": "maxLength"}),
    "name-number": ({"name": 5}, {"name": "type"}),
    "name-array": ({"name": ["a"]}, {"name": "type"}),
    "name-null": ({"name": None}, {"name": {"type", "required"}}),
    "province-unknown": ({"province": "Friesland"}, {"province": "enum"}),
    "province-lowercase": ({"province": "zeeland"}, {"province": "enum"}),
    "province-number": ({"province": 3}, {"province": "type"}),
    "contact-string": ({"contact": "Jan"}, {"contact": "type"}),
    "contact-array": ({"contact": []}, {"contact": "type"}),
    "contact-email": ({"contact": {"email": "not-an-address"}}, {"contact.email": "format"}),
    "contact-email-long": ({"contact": {"email": "a" * 250 + "@example.nl"}},
                           {"contact.email": {"maxLength", "format"}}),
    "contact-phone": ({"contact": {"phone": "call me"}}, {"contact.phone": "pattern"}),
    "contact-phone-long": ({"contact": {"phone": "1" * 41}}, {"contact.phone": "maxLength"}),
    "contact-name-long": ({"contact": {"name": "n" * 201}}, {"contact.name": "maxLength"}),
    "contact-name-type": ({"contact": {"name": 1}}, {"contact.name": "type"}),
    "contact-unknown": ({"contact": {"fax": "1"}}, {"contact.fax": "unknown"}),
    "notes-long": ({"notes": "n" * 4001}, {"notes": "maxLength"}),
    "notes-type": ({"notes": {}}, {"notes": "type"}),
    "unknown-field": ({"colour": "red"}, {"colour": "unknown"}),
    "read-only-id": ({"id": str(uuid.uuid4())}, {"id": "unknown"}),
    "read-only-version": ({"version": 7}, {"version": "unknown"}),
    "read-only-createdAt": ({"createdAt": "2020-01-01T00:00:00Z"}, {"createdAt": "unknown"}),
    "read-only-updatedAt": ({"updatedAt": "2020-01-01T00:00:00Z"}, {"updatedAt": "unknown"}),
}


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_post_bad_field(api, keys, fresh_code, case):
    fields, expected = BAD_FIELDS[case]
    body = dict({"code": fresh_code, "name": "Geldig"}, **fields)
    before = len(api.list_all("/v1/municipalities", keys.admin)[0]) if "code" in fields else None
    p = assert_problem(api.post("/v1/municipalities", body, key=keys.admin), 400, names=expected)
    if case.startswith("read-only"):
        assert "read-only" in p["invalidParams"][0]["reason"], p
    if case in ("unknown-field", "contact-unknown"):
        assert "is not a field" in p["invalidParams"][0]["reason"], p
    assert count_code(api, keys, fresh_code) == 0
    if before is not None:
        assert len(api.list_all("/v1/municipalities", keys.admin)[0]) == before


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_patch_bad_field_changes_nothing(api, keys, municipality, case):
    fields, expected = BAD_FIELDS[case]
    r = api.patch(url(municipality), fields, key=keys.admin)
    assert_problem(r, 400, names=expected)
    assert api.get(url(municipality), key=keys.admin).json == municipality


@pytest.mark.parametrize("missing", ["code", "name"])
def test_post_required_fields(api, keys, fresh_code, missing):
    body = {"code": fresh_code, "name": "Verplicht"}
    del body[missing]
    assert_problem(api.post("/v1/municipalities", body, key=keys.admin), 400, names={missing: "required"})
    assert count_code(api, keys, fresh_code) == 0


def test_post_empty_object_lists_both_required(api, keys):
    assert_problem(api.post("/v1/municipalities", {}, key=keys.admin), 400,
                   names={"code": "required", "name": "required"})


def test_all_invalid_fields_at_once(api, keys, fresh_code):
    body = {"code": "GM297", "name": LONG, "province": "Holland", "colour": "red", "id": str(uuid.uuid4())}
    p = assert_problem(api.post("/v1/municipalities", body, key=keys.admin), 400, names={
        "code": "pattern", "name": "maxLength", "province": "enum", "colour": "unknown", "id": "unknown"})
    assert len(p["invalidParams"]) == 5
    body = {"code": 1, "name": "", "contact": {"email": "x", "phone": "abc", "name": "n" * 201, "fax": 1},
            "notes": "n" * 4001, "version": 3}
    assert_problem(api.post("/v1/municipalities", body, key=keys.admin), 400, names={
        "code": "type", "name": "minLength", "contact.email": "format", "contact.phone": "pattern",
        "contact.name": "maxLength", "contact.fax": "unknown", "notes": "maxLength", "version": "unknown"})
    # A malformed code cannot exist; filtering by one is itself invalid input.
    assert_problem(api.get("/v1/municipalities?code=GM297", key=keys.admin), 400,
                   names={"code": "pattern"})


def test_all_invalid_fields_at_once_on_patch(api, keys, municipality):
    body = {"code": "gm0001", "name": "", "province": "Brabant", "updatedAt": "2020-01-01T00:00:00Z",
            "contact": {"email": "@"}}
    assert_problem(api.patch(url(municipality), body, key=keys.admin), 400, names={
        "code": "pattern", "name": "minLength", "province": "enum", "updatedAt": "unknown",
        "contact.email": "format"})
    assert api.get(url(municipality), key=keys.admin).json == municipality


@pytest.mark.parametrize("email", ["a@example.nl", "jan.de.vries+werklab@gemeente.example.nl",
                                   "x@sub.domain.example"])
def test_valid_emails(api, keys, municipality, email):
    m = assert_status(api.patch(url(municipality), {"contact": {"email": email}}, key=keys.admin), 200)
    assert m["contact"]["email"] == email


@pytest.mark.parametrize("email", ["plain", "@example.nl", "a@", "a b@example.nl", "a@@example.nl",
                                   "a@example.nl\n"])
def test_invalid_emails(api, keys, municipality, email):
    assert_problem(api.patch(url(municipality), {"contact": {"email": email}}, key=keys.admin), 400,
                   names={"contact.email": {"format", "pattern"}})
    assert api.get(url(municipality), key=keys.admin).json == municipality


@pytest.mark.parametrize("phone", ["+31 6 1234 5678", "(010) 123-4567", "0612345678", "1" * 40])
def test_valid_phones(api, keys, municipality, phone):
    m = assert_status(api.patch(url(municipality), {"contact": {"phone": phone}}, key=keys.admin), 200)
    assert m["contact"]["phone"] == phone


def test_notes_at_the_limit(api, keys, municipality):
    m = assert_status(api.patch(url(municipality), {"notes": "é" * 4000}, key=keys.admin), 200)
    assert m["notes"] == "é" * 4000


# ------------------------------------------------------------------ uniqueness


def test_duplicate_code_is_409(api, keys, municipality):
    before, _ = api.list_all("/v1/municipalities", keys.admin)
    r = api.post("/v1/municipalities", {"code": municipality["code"], "name": "Dubbel"}, key=keys.admin)
    assert_problem(r, 409, conflicts={"unique"})
    r = api.post("/v1/municipalities", {"code": "GM0297", "name": "Zaltbommel 2"}, key=keys.admin)
    assert_problem(r, 409, conflicts={"unique"})
    after, _ = api.list_all("/v1/municipalities", keys.admin)
    assert len(after) == len(before)


def test_patch_to_a_taken_code_is_409(api, keys, new_municipality):
    a, b = new_municipality(), new_municipality()
    assert_problem(api.patch(url(a), {"code": b["code"]}, key=keys.admin), 409, conflicts={"unique"})
    assert api.get(url(a), key=keys.admin).json == a


# ------------------------------------------------------------------ merge patch


def test_patch_merges_contact_and_bumps_version(api, keys, municipality):
    m0 = municipality
    r = api.patch(url(m0), {"contact": {"phone": "+31 20 555 0000"}}, key=keys.staff)
    m1 = assert_status(r, 200)
    assert r.header("ETag") == '"2"'
    assert m1["contact"] == dict(m0["contact"], phone="+31 20 555 0000")
    assert m1["version"] == 2 and m1["createdAt"] == m0["createdAt"]
    assert parse_time(m1["updatedAt"]) >= parse_time(m0["updatedAt"])
    assert {k: m1[k] for k in ("code", "name", "province", "notes")} == \
        {k: m0[k] for k in ("code", "name", "province", "notes")}

    m2 = assert_status(api.patch(url(m0), {"contact": {"email": None}, "notes": None}, key=keys.admin), 200)
    assert m2["contact"] == dict(m1["contact"], email=None)
    assert m2["notes"] is None and m2["version"] == 3

    m3 = assert_status(api.patch(url(m0), {"province": None, "name": "Nieuwe naam"}, key=keys.admin), 200)
    assert m3["province"] is None and m3["name"] == "Nieuwe naam" and m3["version"] == 4

    m4 = assert_status(api.patch(url(m0), {"contact": None}, key=keys.admin), 200)
    assert m4["contact"] is None and m4["version"] == 5

    m5 = assert_status(api.patch(url(m0), {"contact": {"name": "Piet"}}, key=keys.admin), 200)
    assert m5["contact"] == {"name": "Piet", "email": None, "phone": None}

    m6 = assert_status(api.patch(url(m0), {"code": "GM" + m0["code"][2:]}, key=keys.admin), 200)
    assert m6["code"] == m0["code"]
    assert api.get(url(m0), key=keys.admin).json == m6


def test_patch_code(api, keys, municipality, fresh_code):
    m = assert_status(api.patch(url(municipality), {"code": fresh_code}, key=keys.admin), 200)
    assert m["code"] == fresh_code
    assert count_code(api, keys, municipality["code"]) == 0
    assert count_code(api, keys, fresh_code) == 1


# ------------------------------------------------------------------ preconditions


@pytest.mark.parametrize("inm", ['"{v}"', '"99", "{v}"', "*"])
def test_if_none_match_gives_304(api, keys, municipality, inm):
    r = api.get(url(municipality), key=keys.admin,
                headers={"If-None-Match": inm.replace("{v}", str(municipality["version"]))})
    assert_status(r, 304)
    assert r.body == b""
    assert r.header("ETag") == f'"{municipality["version"]}"'


def test_stale_if_none_match_gives_200(api, keys, municipality):
    api.patch(url(municipality), {"notes": "changed"}, key=keys.admin)
    r = api.get(url(municipality), key=keys.admin, headers={"If-None-Match": '"1"'})
    assert assert_status(r, 200)["version"] == 2
    assert r.header("ETag") == '"2"'


def test_if_match_stale_patch_is_412_and_changes_nothing(api, keys, municipality):
    m = assert_status(api.patch(url(municipality), {"notes": "v2"}, key=keys.admin), 200)
    r = api.patch(url(municipality), {"notes": "lost update"}, key=keys.admin, headers={"If-Match": '"1"'})
    assert_problem(r, 412)
    assert api.get(url(municipality), key=keys.admin).json == m
    r = api.patch(url(municipality), {"notes": "v3"}, key=keys.admin, headers={"If-Match": '"2"'})
    assert assert_status(r, 200)["version"] == 3


def test_if_match_stale_delete_is_412_and_keeps_it(api, keys, municipality):
    r = api.delete(url(municipality), key=keys.admin, headers={"If-Match": '"5"'})
    assert_problem(r, 412)
    assert api.get(url(municipality), key=keys.admin).json == municipality
    assert_status(api.delete(url(municipality), key=keys.admin, headers={"If-Match": '"1"'}), 204)
    assert_problem(api.get(url(municipality), key=keys.admin), 404)


# ------------------------------------------------------------------ delete


def test_delete(api, keys, municipality):
    r = api.delete(url(municipality), key=keys.staff)
    assert_status(r, 204)
    assert r.body == b""
    assert_problem(api.get(url(municipality), key=keys.admin), 404)
    assert_problem(api.patch(url(municipality), {"notes": "x"}, key=keys.admin), 404)
    assert_problem(api.delete(url(municipality), key=keys.admin), 404)
    assert count_code(api, keys, municipality["code"]) == 0


def test_code_is_free_again_after_delete(api, keys, municipality):
    assert_status(api.delete(url(municipality), key=keys.admin), 204)
    m = assert_status(api.post("/v1/municipalities", {"code": municipality["code"], "name": "Terug"},
                               key=keys.admin), 201)
    assert m["id"] != municipality["id"] and m["version"] == 1


# ------------------------------------------------------------------ roles


def test_partner_cannot_write(api, keys, municipality, fresh_code):
    assert_problem(api.post("/v1/municipalities", {"code": fresh_code, "name": "P"}, key=keys.partner), 403)
    assert_problem(api.patch(url(municipality), {"notes": "p"}, key=keys.partner), 403)
    assert_problem(api.delete(url(municipality), key=keys.partner), 403)
    assert api.get(url(municipality), key=keys.admin).json == municipality
    assert count_code(api, keys, fresh_code) == 0

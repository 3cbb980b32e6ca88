"""Trainers: staff-only personal data; create, read, list, merge-patch, delete, validation,
preconditions, and the rules that tie expertise to werklab assignments."""

import threading
import time
import uuid

import pytest

from domain import advance, assign_trainer, make_trainer, make_werklab
from wlclient import TIMESTAMP_RE, UUID_RE, assert_problem, assert_status, describe, as_ordered

FIELDS = {"id", "name", "email", "phone", "expertise", "bio", "subject", "version", "createdAt",
          "updatedAt"}
MO, RI = "municipalOrganisation", "residentInitiatives"


def url(t):
    return f"/v1/trainers/{t['id'] if isinstance(t, dict) else t}"


def get(api, keys, t):
    return assert_status(api.get(url(t), key=keys.admin), 200)


def ids(items):
    return [i["id"] for i in items]


def tagged(api, keys, tag, **params):
    """The trainers whose name carries tag (trainers are not per municipality)."""
    items, _ = api.list_all("/v1/trainers", keys.admin, dict(params, q=tag))
    return items


def new_tag():
    return "t" + uuid.uuid4().hex[:10]


def assert_shape(t):
    assert set(t) == FIELDS, t
    assert UUID_RE.match(t["id"]), t
    assert t["expertise"] and set(t["expertise"]) <= {MO, RI}, t
    assert TIMESTAMP_RE.match(t["createdAt"]) and TIMESTAMP_RE.match(t["updatedAt"]), t


# ------------------------------------------------------------------ create and read


def test_create_full_201_location_etag(api, keys):
    body = {"name": "Marieke Jansen", "email": "marieke@example.nl", "phone": "+31 6 1111 2222",
            "expertise": [MO, RI], "bio": "Twintig jaar ambtenaar, tien jaar bewonersinitiatief."}
    r = api.post("/v1/trainers", body, key=keys.staff)
    t = assert_status(r, 201)
    assert_shape(t)
    assert {k: t[k] for k in body} == body
    assert t["version"] == 1 and t["createdAt"] == t["updatedAt"]
    assert (r.header("Location") or "").endswith(url(t)), describe(r)
    assert r.header("ETag") == '"1"'
    g = api.get(url(t), key=keys.admin)
    assert assert_status(g, 200) == t and g.header("ETag") == '"1"'


def test_create_minimal(api, keys):
    t = assert_status(api.post("/v1/trainers", {"name": "Kees", "email": "kees@example.nl",
                                                "expertise": [RI]}, key=keys.admin), 201)
    assert_shape(t)
    assert t["phone"] is None and t["bio"] is None and t["expertise"] == [RI]


def test_partner_gets_403_everywhere(api, keys):
    t = make_trainer(api, keys.admin)
    assert_problem(api.get("/v1/trainers", key=keys.partner), 403)
    assert_problem(api.get(url(t), key=keys.partner), 403)
    assert_problem(api.post("/v1/trainers", {"name": "P", "email": "p@example.nl",
                                             "expertise": [MO]}, key=keys.partner), 403)
    assert_problem(api.patch(url(t), {"name": "P"}, key=keys.partner), 403)
    assert_problem(api.delete(url(t), key=keys.partner), 403)
    assert get(api, keys, t) == t


@pytest.mark.parametrize("path", ["not-a-uuid", "00000000-0000-0000-0000-00000000000g", "{uuid}x"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_malformed_id_is_404(api, keys, method, path):
    t = make_trainer(api, keys.admin)
    body = {"name": "x"} if method == "PATCH" else None
    r = api.request(method, f"/v1/trainers/{path.replace('{uuid}', t['id'])}", json_body=body,
                    key=keys.admin)
    assert_problem(r, 404)
    assert get(api, keys, t) == t


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_id_is_404(api, keys, method):
    body = {"name": "x"} if method == "PATCH" else None
    assert_problem(api.request(method, url(str(uuid.uuid4())), json_body=body, key=keys.admin), 404)


# ------------------------------------------------------------------ validation


BAD_FIELDS = {
    "name-empty": ({"name": ""}, {"name": "minLength"}),
    "name-long": ({"name": "n" * 201}, {"name": "maxLength"}),
    "name-type": ({"name": ["a"]}, {"name": "type"}),
    "name-null": ({"name": None}, {"name": {"required", "type"}}),
    "email-format": ({"email": "marieke"}, {"email": "format"}),
    "email-long": ({"email": "a" * 250 + "@example.nl"}, {"email": {"maxLength", "format"}}),
    "email-type": ({"email": 3}, {"email": "type"}),
    "email-null": ({"email": None}, {"email": {"required", "type"}}),
    "phone-pattern": ({"phone": "bel maar"}, {"phone": "pattern"}),
    "phone-long": ({"phone": "1" * 41}, {"phone": "maxLength"}),
    "expertise-empty": ({"expertise": []}, {"expertise": "minLength"}),
    "expertise-type": ({"expertise": MO}, {"expertise": "type"}),
    "expertise-enum": ({"expertise": ["coaching"]}, {"expertise": "enum"}),
    "expertise-item-type": ({"expertise": [None]}, {"expertise": "type"}),
    "expertise-duplicate": ({"expertise": [MO, MO]}, {"expertise": {"enum", "unknown"}}),
    "expertise-null": ({"expertise": None}, {"expertise": {"required", "type"}}),
    "bio-long": ({"bio": "b" * 4001}, {"bio": "maxLength"}),
    "bio-type": ({"bio": 1}, {"bio": "type"}),
    "unknown-field": ({"colour": "red"}, {"colour": "unknown"}),
    "read-only-id": ({"id": str(uuid.uuid4())}, {"id": "unknown"}),
    "read-only-version": ({"version": 9}, {"version": "unknown"}),
    "read-only-createdAt": ({"createdAt": "2020-01-01T00:00:00Z"}, {"createdAt": "unknown"}),
}


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_post_bad_field(api, keys, case):
    fields, expected = BAD_FIELDS[case]
    tag = new_tag()
    body = dict({"name": f"Trainer {tag}", "email": "t@example.nl", "expertise": [MO]}, **fields)
    assert_problem(api.post("/v1/trainers", body, key=keys.admin), 400, names=expected)
    if "name" not in fields:
        assert tagged(api, keys, tag) == []


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_patch_bad_field_changes_nothing(api, keys, case):
    fields, expected = BAD_FIELDS[case]
    t = make_trainer(api, keys.admin, phone="020 123 4567", bio="Bio")
    assert_problem(api.patch(url(t), fields, key=keys.admin), 400, names=expected)
    assert get(api, keys, t) == t


def test_required_fields(api, keys):
    assert_problem(api.post("/v1/trainers", {}, key=keys.admin), 400,
                   names={"name": "required", "email": "required", "expertise": "required"})


# ------------------------------------------------------------------ merge patch, preconditions


def test_patch_merges_and_bumps_version(api, keys):
    t0 = make_trainer(api, keys.admin, expertise=[MO], phone="020 123 4567", bio="Eerst")
    r = api.patch(url(t0), {"bio": "Daarna"}, key=keys.staff)
    t1 = assert_status(r, 200)
    assert r.header("ETag") == '"2"'
    assert t1 == dict(t0, bio="Daarna", version=2, updatedAt=t1["updatedAt"])
    t2 = assert_status(api.patch(url(t0), {"phone": None, "expertise": [RI, MO]},
                                 key=keys.admin), 200)
    assert t2["phone"] is None and sorted(t2["expertise"]) == [MO, RI] and t2["version"] == 3
    assert t2["bio"] == "Daarna" and t2["name"] == t0["name"]
    assert get(api, keys, t0) == t2


def test_if_none_match_and_if_match(api, keys):
    t = make_trainer(api, keys.admin)
    assert_status(api.get(url(t), key=keys.admin, headers={"If-None-Match": '"1"'}), 304)
    t2 = assert_status(api.patch(url(t), {"name": "Nieuw"}, key=keys.admin), 200)
    assert_problem(api.patch(url(t), {"name": "Oud"}, key=keys.admin, headers={"If-Match": '"1"'}),
                   412)
    assert_problem(api.delete(url(t), key=keys.admin, headers={"If-Match": '"1"'}), 412)
    assert get(api, keys, t) == t2
    assert_status(api.delete(url(t), key=keys.admin, headers={"If-Match": '"2"'}), 204)


def test_delete(api, keys):
    t = make_trainer(api, keys.admin)
    assert_status(api.delete(url(t), key=keys.staff), 204)
    assert_problem(api.get(url(t), key=keys.admin), 404)
    assert_problem(api.delete(url(t), key=keys.admin), 404)


# ------------------------------------------------------------------ assignments and expertise


def test_removing_an_assigned_expertise_is_409(api, keys, municipality):
    t = make_trainer(api, keys.admin, expertise=[MO, RI])
    w = make_werklab(api, keys.admin, municipality["id"])
    assign_trainer(api, keys.admin, w["id"], RI, t["id"])
    assert_problem(api.patch(url(t), {"expertise": [MO]}, key=keys.admin), 409,
                   conflicts={"expertiseAssigned"})
    assert get(api, keys, t) == t
    # Dropping the role it does not hold is fine.
    t2 = assert_status(api.patch(url(t), {"expertise": [RI]}, key=keys.admin), 200)
    assert t2["expertise"] == [RI]


def test_deleting_an_assigned_trainer_is_409_referenced(api, keys, municipality):
    t = make_trainer(api, keys.admin, expertise=[MO])
    w = make_werklab(api, keys.admin, municipality["id"])
    assign_trainer(api, keys.admin, w["id"], MO, t["id"])
    assert_problem(api.delete(url(t), key=keys.admin), 409, conflicts={"referenced"})
    assert get(api, keys, t) == t
    assert_status(api.delete(f"/v1/werklabs/{w['id']}/trainers/{MO}", key=keys.admin), 204)
    assert_status(api.delete(url(t), key=keys.admin), 204)


def test_trainer_of_a_running_werklab_cannot_be_deleted(api, keys, municipality):
    w = advance(api, keys.admin, make_werklab(api, keys.admin, municipality["id"])["id"], "running")
    for a in w["trainers"]:
        assert_problem(api.delete(url(a["trainerId"]), key=keys.admin), 409,
                       conflicts={"referenced"})
    r = api.get(f"/v1/werklabs/{w['id']}", key=keys.admin)
    assert r.json["trainers"] == w["trainers"] and r.json["version"] == w["version"]


# ------------------------------------------------------------------ lists


def test_filters(api, keys):
    tag = new_tag()
    mo = make_trainer(api, keys.admin, name=f"Anna {tag}", expertise=[MO])
    ri = make_trainer(api, keys.admin, name=f"Bert {tag}", expertise=[RI],
                      bio="Kent de energiecoöperaties")
    both = make_trainer(api, keys.admin, name=f"Cor {tag}", expertise=[RI, MO])
    assert set(ids(tagged(api, keys, tag))) == {mo["id"], ri["id"], both["id"]}
    assert set(ids(tagged(api, keys, tag, expertise=MO))) == {mo["id"], both["id"]}
    assert set(ids(tagged(api, keys, tag, expertise=RI))) == {ri["id"], both["id"]}
    assert set(ids(tagged(api, keys, tag, expertise=f"{MO},{RI}"))) == \
        {mo["id"], ri["id"], both["id"]}
    items, _ = api.list_all("/v1/trainers", keys.admin, {"q": f"Bert {tag}"})
    assert ids(items) == [ri["id"]]
    items, _ = api.list_all("/v1/trainers", keys.admin, {"q": "energiecoöperaties " + tag})
    assert ids(items) == [ri["id"]]


def test_updated_since(api, keys):
    tag = new_tag()
    a = make_trainer(api, keys.admin, name=f"A {tag}")
    b = make_trainer(api, keys.admin, name=f"B {tag}")
    time.sleep(0.05)
    b2 = assert_status(api.patch(url(b), {"bio": "later"}, key=keys.admin), 200)
    assert ids(tagged(api, keys, tag, updatedSince=b2["updatedAt"])) == [b["id"]]
    assert set(ids(tagged(api, keys, tag, updatedSince=a["createdAt"]))) == {a["id"], b["id"]}


@pytest.mark.parametrize("query,name", [("expertise=coaching", "expertise"), ("sort=email", "sort"),
                                        ("updatedSince=gisteren", "updatedSince"),
                                        ("colour=red", "colour"), ("limit=201", "limit")])
def test_bad_query(api, keys, query, name):
    assert_problem(api.get(f"/v1/trainers?{query}", key=keys.admin), 400, names=[name])


@pytest.mark.parametrize("desc", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("sort_key", ["name", "createdAt", "updatedAt"])
def test_sort_keys(api, keys, sort_key, desc):
    tag = new_tag()
    made = [make_trainer(api, keys.admin, name=f"{n} {tag}") for n in ("Cees", "Anna", "Dirk", "Bea")]
    for t in (made[2], made[0], made[3], made[1]):
        assert_status(api.patch(url(t), {"bio": "bijgewerkt"}, key=keys.admin), 200)
    now = [get(api, keys, t) for t in made]
    want = sorted(now, key=lambda t: (as_ordered(t[sort_key]), t["id"]), reverse=desc)
    sort = ("-" if desc else "") + sort_key
    assert ids(tagged(api, keys, tag, sort=sort)) == ids(want)
    paged, _ = api.list_all("/v1/trainers", keys.admin, {"q": tag, "sort": sort}, limit=1)
    assert ids(paged) == ids(want)


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
def test_expertise_change_racing_an_assignment(api, keys, municipality, round_):
    """Dropping residentInitiatives from a trainer's expertise while the trainer is being
    assigned that role: one of the two is refused. Never a trainer holding a role outside its
    expertise."""
    t = make_trainer(api, keys.admin, expertise=[MO, RI])
    w = make_werklab(api, keys.admin, municipality["id"])
    change, assign = concurrently(
        lambda: api.patch(url(t), {"expertise": [MO]}, key=keys.admin),
        lambda: api.put(f"/v1/werklabs/{w['id']}/trainers/{RI}", {"trainerId": t["id"]},
                        key=keys.admin))
    expertise = get(api, keys, t)["expertise"]
    roles = [a["role"] for a in assert_status(api.get(f"/v1/werklabs/{w['id']}/trainers",
                                                      key=keys.admin), 200)["items"]]
    assert set(roles) <= set(expertise), (describe(change), describe(assign), expertise, roles)
    if roles:
        assert_problem(change, 409, conflicts={"expertiseAssigned"})
        assert_status(assign, 200)
    else:
        assert_status(change, 200)
        assert_problem(assign, 400, names={"trainerId": "reference"})


# ------------------------------------------------------------------ a trainer reading trainers


def test_a_trainer_may_not_search_or_order_the_others_by_what_they_do_not_see(api, keys, oidc):
    """The other trainers' names are hidden from a trainer: a search on them, or an order by
    them (and the cursor that carries the last name of a page), would tell them anyway."""
    tag = new_tag()
    subject = f"self-{uuid.uuid4().hex}"
    me = make_trainer(api, keys.admin, name=f"Zelf {tag}", subject=subject)
    other = make_trainer(api, keys.admin, name=f"Ander {tag}")
    token = oidc.mint({"sub": subject, "roles": ["lsa-trainer"]})
    for query, key in ((f"q={tag}", "q"), ("sort=name", "sort"), ("sort=-name", "sort"),
                       ("sort=createdAt,name", "sort")):
        assert_problem(api.get(f"/v1/trainers?{query}", key=token), 400, {key: "forbidden"})
        r = api.get(f"/v1/trainers?{query}", key=token, headers={"Accept": "text/csv"})
        assert_problem(r, 400, {key: "forbidden"})
    # what hides nothing still works, and staff search and order as before
    page = assert_status(api.get("/v1/trainers?sort=-createdAt&limit=200", key=token), 200)
    seen = {t["id"]: t for t in page["items"]}
    assert seen[me["id"]]["name"] == me["name"], seen[me["id"]]
    assert "name" not in seen[other["id"]] and "email" not in seen[other["id"]], seen[other["id"]]
    assert {t["id"] for t in tagged(api, keys, tag, sort="name")} == {me["id"], other["id"]}
    assert [t["id"] for t in tagged(api, keys, tag, sort="name")] == [other["id"], me["id"]]

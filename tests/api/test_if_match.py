"""Keys that must send If-Match: `requireIfMatch` (POST /v1/api-keys) or
`werklabd create-key ... --require-if-match`.

Such a key's PATCH, PUT and DELETE without If-Match are 428 problem+json and change nothing; with
the current ETag they work; with a stale one they are 412 and change nothing. GET and POST are not
affected, nor are other keys.
"""

import uuid

import pytest

from domain import make_participant, make_session, make_trainer, make_werklab
from wlclient import assert_problem, assert_status, describe


@pytest.fixture(scope="module")
def strict(api, keys):
    r = api.post("/v1/api-keys", {"name": f"strict-{uuid.uuid4().hex[:6]}", "role": "staff",
                                  "requireIfMatch": True}, key=keys.admin)
    k = assert_status(r, 201)
    assert k["requireIfMatch"] is True, k
    return k["key"]


def etag(api, key, path):
    r = api.get(path, key=key)
    assert_status(r, 200)
    assert r.header("ETag") == f'"{r.json["version"]}"', describe(r)
    return r.header("ETag"), r.json


def test_patch_and_delete_need_if_match(api, keys, strict, municipality):
    path = f"/v1/municipalities/{municipality['id']}"
    tag, before = etag(api, strict, path)
    # Without: 428, nothing changed.
    assert_problem(api.patch(path, {"notes": "zonder"}, key=strict), 428)
    assert_problem(api.delete(path, key=strict), 428)
    _, now = etag(api, strict, path)
    assert now == before
    # With the current ETag: works.
    r = api.patch(path, {"notes": "met"}, key=strict, headers={"If-Match": tag})
    changed = assert_status(r, 200)
    assert changed["notes"] == "met" and changed["version"] == before["version"] + 1, changed
    # With a stale one: 412, nothing changed.
    assert_problem(api.patch(path, {"notes": "oud"}, key=strict, headers={"If-Match": tag}), 412)
    assert_problem(api.delete(path, key=strict, headers={"If-Match": tag}), 412)
    new_tag, now = etag(api, strict, path)
    assert now == changed
    assert_status(api.delete(path, key=strict, headers={"If-Match": new_tag}), 204)
    assert_problem(api.get(path, key=strict), 404)


def test_nested_patch_and_delete(api, keys, strict, municipality):
    w = make_werklab(api, keys.staff, municipality["id"], status="intake")
    p = make_participant(api, keys.staff, w["id"])
    path = f"/v1/werklabs/{w['id']}/participants/{p['id']}"
    tag, before = etag(api, strict, path)
    assert_problem(api.patch(path, {"jobTitle": "x"}, key=strict), 428)
    assert_problem(api.delete(path, key=strict), 428)
    assert etag(api, strict, path)[1] == before
    assert_status(api.patch(path, {"jobTitle": "x"}, key=strict, headers={"If-Match": tag}), 200)
    assert_problem(api.delete(path, key=strict, headers={"If-Match": tag}), 412)
    tag, _ = etag(api, strict, path)
    assert_status(api.delete(path, key=strict, headers={"If-Match": tag}), 204)


def test_put_needs_if_match(api, keys, strict, municipality):
    w = make_werklab(api, keys.staff, municipality["id"], status="intake")
    t = make_trainer(api, keys.staff, expertise=["municipalOrganisation"])
    wpath = f"/v1/werklabs/{w['id']}"
    put_path = f"{wpath}/trainers/municipalOrganisation"
    # Without If-Match: 428, nothing assigned.
    assert_problem(api.put(put_path, {"trainerId": t["id"]}, key=strict), 428)
    tag, lab = etag(api, strict, wpath)
    assert lab["trainers"] == [] and lab["version"] == w["version"], lab
    # With the werklab's current ETag: assigned.
    r = api.put(put_path, {"trainerId": t["id"]}, key=strict, headers={"If-Match": tag})
    assert_status(r, 200)
    tag, lab = etag(api, strict, wpath)
    assert [x["trainerId"] for x in lab["trainers"]] == [t["id"]], lab
    # DELETE of the assignment, and attendance (PUT) need it as well.
    assert_problem(api.delete(put_path, key=strict), 428)
    assert etag(api, strict, wpath)[1]["trainers"] == lab["trainers"]
    p = make_participant(api, keys.staff, w["id"])
    s = make_session(api, keys.staff, w["id"], 1, "2033-01-04T09:00:00Z", "2033-01-04T12:00:00Z")
    apath = f"/v1/sessions/{s['id']}/attendance"
    assert_problem(api.put(apath, [{"participantId": p["id"], "status": "present"}], key=strict), 428)
    assert api.get(apath, key=strict).json["items"] == []
    stag, _ = etag(api, strict, f"/v1/sessions/{s['id']}")
    r = api.put(apath, [{"participantId": p["id"], "status": "present"}], key=strict,
                headers={"If-Match": stag})
    assert_status(r, 200)


def test_put_with_a_stale_if_match_is_412(api, keys, strict, municipality):
    """A stale ETag must not pass on PUT either: otherwise any If-Match value satisfies the
    key's requirement and a lost update goes unnoticed."""
    w = make_werklab(api, keys.staff, municipality["id"], status="intake")
    t1 = make_trainer(api, keys.staff, expertise=["residentInitiatives"])
    t2 = make_trainer(api, keys.staff, expertise=["residentInitiatives"])
    wpath = f"/v1/werklabs/{w['id']}"
    put_path = f"{wpath}/trainers/residentInitiatives"
    stale, _ = etag(api, strict, wpath)
    assert_status(api.put(put_path, {"trainerId": t1["id"]}, key=keys.staff), 200)  # someone else
    r = api.put(put_path, {"trainerId": t2["id"]}, key=strict, headers={"If-Match": stale})
    assert_problem(r, 412)
    _, lab = etag(api, strict, wpath)
    assert [x["trainerId"] for x in lab["trainers"]] == [t1["id"]], lab
    r = api.delete(put_path, key=strict, headers={"If-Match": stale})
    assert_problem(r, 412)


def test_get_and_post_are_not_affected(api, keys, strict, municipality, fresh_code):
    assert_status(api.get(f"/v1/municipalities/{municipality['id']}", key=strict), 200)
    assert_status(api.get("/v1/municipalities?limit=2", key=strict), 200)
    r = api.post("/v1/municipalities", {"code": fresh_code, "name": "Zonder If-Match"}, key=strict)
    assert_status(r, 201)
    r = api.post("/v1/initiatives", {"municipalityId": municipality["id"], "name": "Vrij",
                                     "kind": "other"}, key=strict)
    assert_status(r, 201)


def test_other_keys_are_not_affected(api, keys, municipality):
    path = f"/v1/municipalities/{municipality['id']}"
    assert_status(api.patch(path, {"notes": "gewone sleutel"}, key=keys.staff), 200)
    r = api.post("/v1/api-keys", {"name": "loose", "role": "staff", "requireIfMatch": False},
                 key=keys.admin)
    loose = assert_status(r, 201)
    assert loose["requireIfMatch"] is False
    assert_status(api.patch(path, {"notes": "ook zonder"}, key=loose["key"]), 200)


def test_create_key_cli_flag(api, werklabd, municipality):
    out = werklabd.run("create-key", "--role", "staff", "--name", f"cli-strict-{uuid.uuid4().hex[:6]}",
                       "--require-if-match")
    assert out.returncode == 0, out.stderr
    secret = out.stdout.strip()
    path = f"/v1/municipalities/{municipality['id']}"
    assert_problem(api.patch(path, {"notes": "cli"}, key=secret), 428)
    tag, _ = etag(api, secret, path)
    assert_status(api.patch(path, {"notes": "cli"}, key=secret, headers={"If-Match": tag}), 200)


@pytest.mark.parametrize("value", ['W/"1"', '"abc"', "1", '""'])
def test_malformed_if_match_is_412_not_a_pass(api, strict, municipality, value):
    path = f"/v1/municipalities/{municipality['id']}"
    _, before = etag(api, strict, path)
    assert_problem(api.patch(path, {"notes": "x"}, key=strict, headers={"If-Match": value}), 412)
    assert etag(api, strict, path)[1] == before


# ---- A 412 carries the current ETag: a front end shows the conflict without reading again ----

def assert_stale(r, current_tag):
    assert_problem(r, 412)
    assert r.header("ETag") == current_tag, describe(r)


def test_412_on_patch_and_delete_carries_the_current_etag(api, keys, municipality):
    path = f"/v1/municipalities/{municipality['id']}"
    stale, _ = etag(api, keys.staff, path)
    assert_status(api.patch(path, {"notes": "eerst"}, key=keys.staff), 200)
    current, now = etag(api, keys.staff, path)
    assert current != stale
    assert_stale(api.patch(path, {"notes": "later"}, key=keys.staff, headers={"If-Match": stale}),
                 current)
    assert_stale(api.delete(path, key=keys.staff, headers={"If-Match": stale}), current)
    assert etag(api, keys.staff, path) == (current, now)


def test_412_on_a_nested_row_carries_its_etag(api, keys, municipality):
    w = make_werklab(api, keys.staff, municipality["id"], status="intake")
    p = make_participant(api, keys.staff, w["id"])
    path = f"/v1/werklabs/{w['id']}/participants/{p['id']}"
    stale, _ = etag(api, keys.staff, path)
    assert_status(api.patch(path, {"jobTitle": "eerst"}, key=keys.staff), 200)
    current, _ = etag(api, keys.staff, path)
    assert_stale(api.patch(path, {"jobTitle": "later"}, key=keys.staff,
                           headers={"If-Match": stale}), current)
    assert_stale(api.delete(path, key=keys.staff, headers={"If-Match": stale}), current)


def test_412_on_trainer_assignment_and_attendance_carries_the_parents_etag(api, keys, municipality):
    w = make_werklab(api, keys.staff, municipality["id"], status="intake")
    t = make_trainer(api, keys.staff, expertise=["municipalOrganisation"])
    wpath = f"/v1/werklabs/{w['id']}"
    stale, _ = etag(api, keys.staff, wpath)
    assert_status(api.patch(wpath, {"title": "Gewijzigd"}, key=keys.staff), 200)
    current, _ = etag(api, keys.staff, wpath)
    put_path = f"{wpath}/trainers/municipalOrganisation"
    assert_stale(api.put(put_path, {"trainerId": t["id"]}, key=keys.staff,
                         headers={"If-Match": stale}), current)
    assert_stale(api.delete(put_path, key=keys.staff, headers={"If-Match": stale}), current)

    p = make_participant(api, keys.staff, w["id"])
    s = make_session(api, keys.staff, w["id"], 1, "2033-02-04T09:00:00Z", "2033-02-04T12:00:00Z")
    spath = f"/v1/sessions/{s['id']}"
    stale, _ = etag(api, keys.staff, spath)
    assert_status(api.patch(spath, {"title": "Elders"}, key=keys.staff), 200)
    current, _ = etag(api, keys.staff, spath)
    r = api.put(f"{spath}/attendance", [{"participantId": p["id"], "status": "present"}],
                key=keys.staff, headers={"If-Match": stale})
    assert_stale(r, current)
    assert api.get(f"{spath}/attendance", key=keys.staff).json["items"] == []


def test_412_on_key_revocation_carries_the_keys_etag(api, keys):
    r = api.post("/v1/api-keys", {"name": f"stale-{uuid.uuid4().hex[:6]}", "role": "staff"},
                 key=keys.admin)
    k = assert_status(r, 201)
    path = f"/v1/api-keys/{k['id']}"
    current, _ = etag(api, keys.admin, path)
    stale = f'"{k["version"] + 7}"'
    assert_stale(api.delete(path, key=keys.admin, headers={"If-Match": stale}), current)
    assert_status(api.delete(path, key=keys.admin, headers={"If-Match": current}), 204)


@pytest.mark.parametrize("value", ['W/"1"', '"abc"', '""'])
def test_malformed_if_match_412_carries_the_current_etag(api, keys, municipality, value):
    path = f"/v1/municipalities/{municipality['id']}"
    current, before = etag(api, keys.staff, path)
    assert_stale(api.patch(path, {"notes": "x"}, key=keys.staff, headers={"If-Match": value}),
                 current)
    assert_stale(api.delete(path, key=keys.staff, headers={"If-Match": value}), current)
    assert etag(api, keys.staff, path)[1] == before


def test_malformed_if_match_on_a_missing_row_is_404(api, keys):
    path = f"/v1/municipalities/{uuid.uuid4()}"
    assert_problem(api.patch(path, {"notes": "x"}, key=keys.staff, headers={"If-Match": '"x"'}), 404)

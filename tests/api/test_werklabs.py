"""Werklabs: create, read, list (filters, sort keys), merge-patch, delete, validation,
preconditions, the status machine with its conditions, and trainer assignments."""

import datetime
import threading
import time
import uuid

import pytest

from domain import (advance, assign_trainer, get_werklab, make_initiative, make_participant,
                    make_session, make_trainer, make_werklab, prepare)
from wlclient import (TIMESTAMP_RE, UUID_RE, as_ordered, assert_problem, assert_status, describe,
                      parse_time)

FIELDS = {"id", "municipalityId", "title", "status", "intake", "capacity", "trainers",
          "participantCount", "quote", "sharedVision", "startsOn", "endsOn", "version",
          "createdAt", "updatedAt"}
STATUSES = ["inquiry", "intake", "planned", "running", "completed", "cancelled"]
MO, RI = "municipalOrganisation", "residentInitiatives"
PAST = ("2025-03-02T09:00:00Z", "2025-03-02T12:00:00Z")
FUTURE = ("2030-06-03T09:00:00Z", "2030-06-03T12:00:00Z")


def url(w):
    return f"/v1/werklabs/{w['id'] if isinstance(w, dict) else w}"


def get(api, keys, w):
    return get_werklab(api, keys.admin, w["id"] if isinstance(w, dict) else w)


def ids(items):
    return [i["id"] for i in items]


def listed(api, keys, params, key=None):
    items, _ = api.list_all("/v1/werklabs", key or keys.admin, params)
    return items


def assert_shape(w, partner=False):
    assert set(w) == (FIELDS - {"quote"} if partner else FIELDS), w
    assert UUID_RE.match(w["id"]) and UUID_RE.match(w["municipalityId"]), w
    assert w["status"] in STATUSES, w
    assert set(w["capacity"]) == {"min", "max"}, w
    assert isinstance(w["trainers"], list) and isinstance(w["participantCount"], int), w
    assert TIMESTAMP_RE.match(w["createdAt"]) and TIMESTAMP_RE.match(w["updatedAt"]), w


def werklab_at(api, keys, municipality, status, **fields):
    w = make_werklab(api, keys.admin, municipality["id"], **fields)
    return advance(api, keys.admin, w["id"], status) if status != "inquiry" else w


def patch_status(api, keys, w, status, **fields):
    return api.patch(url(w), dict(fields, status=status), key=keys.admin)


# ------------------------------------------------------------------ create and read


FULL = {"title": "Werklab Zaltbommel 2026", "status": "intake",
        "intake": {"heldOn": "2026-01-15", "needs": "Samenwerken met initiatieven",
                   "developments": "Nieuwe participatieverordening", "goals": "Een gedeelde visie"},
        "capacity": {"min": 8, "max": 12},
        "quote": {"amountCents": 1250000, "note": "Inclusief locatie"},
        "sharedVision": "Samen sterker in de wijk."}


def test_create_full_201_location_etag(api, keys, municipality):
    body = dict(FULL, municipalityId=municipality["id"])
    r = api.post("/v1/werklabs", body, key=keys.staff)
    w = assert_status(r, 201)
    assert_shape(w)
    for k in ("municipalityId", "title", "status", "intake", "capacity", "sharedVision"):
        assert w[k] == body[k], (k, w)
    assert w["quote"] == {"amountCents": 1250000, "currency": "EUR", "note": "Inclusief locatie"}
    assert w["trainers"] == [] and w["participantCount"] == 0
    assert w["startsOn"] is None and w["endsOn"] is None
    assert w["version"] == 1 and w["createdAt"] == w["updatedAt"]
    assert (r.header("Location") or "").endswith(url(w)), describe(r)
    assert r.header("ETag") == '"1"'
    g = api.get(url(w), key=keys.admin)
    assert assert_status(g, 200) == w and g.header("ETag") == '"1"'


def test_create_minimal_has_defaults(api, keys, municipality):
    w = assert_status(api.post("/v1/werklabs", {"municipalityId": municipality["id"],
                                                "title": "Klein"}, key=keys.admin), 201)
    assert_shape(w)
    assert w["status"] == "inquiry" and w["capacity"] == {"min": 10, "max": 15}
    assert w["intake"] is None and w["quote"] is None and w["sharedVision"] is None
    assert w["trainers"] == [] and w["participantCount"] == 0


def test_quote_currency_may_be_given_as_eur(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"],
                     quote={"amountCents": 0, "currency": "EUR"})
    assert w["quote"] == {"amountCents": 0, "currency": "EUR", "note": None}
    w2 = assert_status(api.patch(url(w), {"quote": None}, key=keys.admin), 200)
    assert w2["quote"] is None


def test_quote_without_amount_has_no_currency(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"], quote={"amountCents": 500, "note": "n"})
    assert w["quote"] == {"amountCents": 500, "currency": "EUR", "note": "n"}
    w2 = assert_status(api.patch(url(w), {"quote": {"amountCents": None}}, key=keys.admin), 200)
    assert w2["quote"] == {"amountCents": None, "currency": None, "note": "n"}
    w3 = make_werklab(api, keys.admin, municipality["id"], quote={"note": "nog geen bedrag"})
    assert w3["quote"] == {"amountCents": None, "currency": None, "note": "nog geen bedrag"}


def test_partner_reads_without_quote(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"], quote={"amountCents": 99900})
    r = api.get(url(w), key=keys.partner)
    p = assert_status(r, 200)
    assert_shape(p, partner=True)
    assert p == {k: v for k, v in w.items() if k != "quote"}
    assert b"99900" not in r.body
    lst = api.get(f"/v1/werklabs?municipalityId={municipality['id']}", key=keys.partner)
    items = assert_status(lst, 200)["items"]
    assert ids(items) == [w["id"]] and "quote" not in items[0]
    assert b"99900" not in lst.body
    t = api.get(f"{url(w)}/trainers", key=keys.partner)
    assert assert_status(t, 200) == {"items": [], "next": None}


def test_partner_cannot_write(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"])
    assert_problem(api.post("/v1/werklabs", {"municipalityId": municipality["id"], "title": "P"},
                            key=keys.partner), 403)
    assert_problem(api.patch(url(w), {"title": "P"}, key=keys.partner), 403)
    assert_problem(api.delete(url(w), key=keys.partner), 403)
    t = make_trainer(api, keys.admin)
    assert_problem(api.put(f"{url(w)}/trainers/{MO}", {"trainerId": t["id"]}, key=keys.partner), 403)
    assert get(api, keys, w) == w


@pytest.mark.parametrize("path", ["not-a-uuid", "00000000-0000-0000-0000-00000000000g", "{uuid}x"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_malformed_id_is_404(api, keys, municipality, method, path):
    w = make_werklab(api, keys.admin, municipality["id"])
    body = {"title": "x"} if method == "PATCH" else None
    r = api.request(method, f"/v1/werklabs/{path.replace('{uuid}', w['id'])}", json_body=body,
                    key=keys.admin)
    assert_problem(r, 404)
    assert get(api, keys, w) == w


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_id_is_404(api, keys, method):
    body = {"title": "x"} if method == "PATCH" else None
    assert_problem(api.request(method, url(str(uuid.uuid4())), json_body=body, key=keys.admin), 404)


@pytest.mark.parametrize("status", ["intake", "cancelled"])
def test_status_patch_of_unknown_id_is_404(api, keys, status):
    assert_problem(api.patch(url(str(uuid.uuid4())), {"status": status}, key=keys.admin), 404)


# ------------------------------------------------------------------ validation


BAD_FIELDS = {
    "title-empty": ({"title": ""}, {"title": "minLength"}),
    "title-long": ({"title": "t" * 201}, {"title": "maxLength"}),
    "title-type": ({"title": 12}, {"title": "type"}),
    "title-null": ({"title": None}, {"title": {"required", "type"}}),
    "status-enum": ({"status": "done"}, {"status": "enum"}),
    "status-type": ({"status": 1}, {"status": "type"}),
    "status-null": ({"status": None}, {"status": "type"}),
    "intake-type": ({"intake": "gisteren"}, {"intake": "type"}),
    "intake-heldOn-format": ({"intake": {"heldOn": "15-01-2026"}}, {"intake.heldOn": "format"}),
    "intake-heldOn-month": ({"intake": {"heldOn": "2026-13-01"}}, {"intake.heldOn": "format"}),
    "intake-heldOn-day": ({"intake": {"heldOn": "2026-02-30"}}, {"intake.heldOn": "format"}),
    "intake-heldOn-time": ({"intake": {"heldOn": "2026-01-15T10:00:00Z"}},
                           {"intake.heldOn": "format"}),
    "intake-heldOn-type": ({"intake": {"heldOn": 20260115}}, {"intake.heldOn": "type"}),
    "intake-needs-long": ({"intake": {"needs": "n" * 4001}}, {"intake.needs": "maxLength"}),
    "intake-developments-long": ({"intake": {"developments": "d" * 4001}},
                                 {"intake.developments": "maxLength"}),
    "intake-goals-long": ({"intake": {"goals": "g" * 4001}}, {"intake.goals": "maxLength"}),
    "intake-unknown": ({"intake": {"when": "2026-01-01"}}, {"intake.when": "unknown"}),
    "capacity-type": ({"capacity": 12}, {"capacity": "type"}),
    "capacity-null": ({"capacity": None}, {"capacity": "type"}),
    "capacity-min-zero": ({"capacity": {"min": 0}}, {"capacity.min": "minimum"}),
    "capacity-max-16": ({"capacity": {"max": 16}}, {"capacity.max": "maximum"}),
    "capacity-max-zero": ({"capacity": {"min": 1, "max": 0}}, {"capacity.max": "minimum"}),
    "capacity-min-type": ({"capacity": {"min": "10"}}, {"capacity.min": "type"}),
    "capacity-min-float": ({"capacity": {"min": 10.5}}, {"capacity.min": "type"}),
    "capacity-min-null": ({"capacity": {"min": None}}, {"capacity.min": "type"}),
    "capacity-min-over-max": ({"capacity": {"min": 12, "max": 11}}, {"capacity.min": "maximum"}),
    "capacity-unknown": ({"capacity": {"avg": 12}}, {"capacity.avg": "unknown"}),
    "quote-type": ({"quote": 100}, {"quote": "type"}),
    "quote-amount-negative": ({"quote": {"amountCents": -1}}, {"quote.amountCents": "minimum"}),
    "quote-amount-type": ({"quote": {"amountCents": "100"}}, {"quote.amountCents": "type"}),
    "quote-amount-float": ({"quote": {"amountCents": 1.5}}, {"quote.amountCents": "type"}),
    "quote-currency": ({"quote": {"amountCents": 100, "currency": "USD"}},
                       {"quote.currency": "enum"}),
    "quote-note-long": ({"quote": {"note": "q" * 2001}}, {"quote.note": "maxLength"}),
    "sharedVision-long": ({"sharedVision": "v" * 8001}, {"sharedVision": "maxLength"}),
    "sharedVision-type": ({"sharedVision": ["v"]}, {"sharedVision": "type"}),
    "unknown-field": ({"colour": "red"}, {"colour": "unknown"}),
    "read-only-trainers": ({"trainers": []}, {"trainers": "unknown"}),
    "read-only-trainers-filled": ({"trainers": [{"trainerId": str(uuid.uuid4()), "role": MO}]},
                                  {"trainers": "unknown"}),
    "read-only-participantCount": ({"participantCount": 3}, {"participantCount": "unknown"}),
    "read-only-startsOn": ({"startsOn": "2026-03-01"}, {"startsOn": "unknown"}),
    "read-only-endsOn": ({"endsOn": "2026-03-01"}, {"endsOn": "unknown"}),
    "read-only-id": ({"id": str(uuid.uuid4())}, {"id": "unknown"}),
    "read-only-version": ({"version": 2}, {"version": "unknown"}),
    "read-only-updatedAt": ({"updatedAt": "2020-01-01T00:00:00Z"}, {"updatedAt": "unknown"}),
}


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_post_bad_field(api, keys, municipality, case):
    fields, expected = BAD_FIELDS[case]
    body = dict({"municipalityId": municipality["id"], "title": "Geldig"}, **fields)
    p = assert_problem(api.post("/v1/werklabs", body, key=keys.admin), 400, names=expected)
    if case.startswith("read-only"):
        assert "read-only" in p["invalidParams"][0]["reason"], p
    assert listed(api, keys, {"municipalityId": municipality["id"]}) == []


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_patch_bad_field_changes_nothing(api, keys, municipality, case):
    fields, expected = BAD_FIELDS[case]
    w = make_werklab(api, keys.admin, municipality["id"], **{k: v for k, v in FULL.items()
                                                             if k != "status"})
    assert_problem(api.patch(url(w), fields, key=keys.admin), 400, names=expected)
    assert get(api, keys, w) == w


@pytest.mark.parametrize("status", ["planned", "running", "completed", "cancelled"])
def test_create_only_in_inquiry_or_intake(api, keys, municipality, status):
    body = {"municipalityId": municipality["id"], "title": "Te vroeg", "status": status}
    assert_problem(api.post("/v1/werklabs", body, key=keys.admin), 400, names={"status": "enum"})
    assert listed(api, keys, {"municipalityId": municipality["id"]}) == []


@pytest.mark.parametrize("status", ["inquiry", "intake"])
def test_create_in_inquiry_or_intake(api, keys, municipality, status):
    assert make_werklab(api, keys.admin, municipality["id"], status=status)["status"] == status


def test_required_fields(api, keys, municipality):
    assert_problem(api.post("/v1/werklabs", {}, key=keys.admin), 400,
                   names={"municipalityId": "required", "title": "required"})
    assert_problem(api.post("/v1/werklabs", {"title": "x"}, key=keys.admin), 400,
                   names={"municipalityId": "required"})
    assert_problem(api.post("/v1/werklabs", {"municipalityId": municipality["id"]}, key=keys.admin),
                   400, names={"title": "required"})


def test_unknown_municipality_is_400_reference(api, keys):
    assert_problem(api.post("/v1/werklabs", {"municipalityId": str(uuid.uuid4()), "title": "x"},
                            key=keys.admin), 400, names={"municipalityId": "reference"})
    assert_problem(api.post("/v1/werklabs", {"municipalityId": "GM0297", "title": "x"},
                            key=keys.admin), 400, names={"municipalityId": "format"})


@pytest.mark.parametrize("value", ["same", "other"])
def test_municipality_is_immutable(api, keys, new_municipality, value):
    a, b = new_municipality(), new_municipality()
    w = make_werklab(api, keys.admin, a["id"])
    target = a["id"] if value == "same" else b["id"]
    assert_problem(api.patch(url(w), {"municipalityId": target}, key=keys.admin), 400,
                   names={"municipalityId": "unknown"})
    assert get(api, keys, w) == w


def test_capacity_max_below_default_min_on_create(api, keys, municipality):
    """capacity {max: 5} alone leaves min at its default 10: min > max."""
    assert_problem(api.post("/v1/werklabs", {"municipalityId": municipality["id"], "title": "x",
                                             "capacity": {"max": 5}}, key=keys.admin), 400,
                   names={"capacity.min": "maximum"})


def test_capacity_patch_merges_and_keeps_min_le_max(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"])
    w1 = assert_status(api.patch(url(w), {"capacity": {"max": 12}}, key=keys.admin), 200)
    assert w1["capacity"] == {"min": 10, "max": 12}
    assert_problem(api.patch(url(w), {"capacity": {"min": 13}}, key=keys.admin), 400,
                   names={"capacity.min": "maximum"})
    assert_problem(api.patch(url(w), {"capacity": {"max": 9}}, key=keys.admin), 400,
                   names={"capacity.min": "maximum"})
    assert get(api, keys, w) == w1
    w2 = assert_status(api.patch(url(w), {"capacity": {"min": 1, "max": 1}}, key=keys.admin), 200)
    assert w2["capacity"] == {"min": 1, "max": 1}
    w3 = assert_status(api.patch(url(w), {"capacity": {"min": 15, "max": 15}}, key=keys.admin), 200)
    assert w3["capacity"] == {"min": 15, "max": 15}


def test_lowering_capacity_max_below_participants_is_409(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"], status="intake",
                     capacity={"min": 2, "max": 5})
    for _ in range(4):
        make_participant(api, keys.admin, w["id"])
    w = get(api, keys, w)
    assert w["participantCount"] == 4
    assert_problem(api.patch(url(w), {"capacity": {"max": 3}}, key=keys.admin), 409,
                   conflicts={"capacity"})
    assert get(api, keys, w) == w
    w2 = assert_status(api.patch(url(w), {"capacity": {"max": 4}}, key=keys.admin), 200)
    assert w2["capacity"] == {"min": 2, "max": 4}


def test_limits_are_inclusive(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"], title="é" * 200,
                     sharedVision="v" * 8000, intake={"needs": "n" * 4000},
                     quote={"amountCents": 2000000000, "note": "q" * 2000})
    assert get(api, keys, w) == w


# ------------------------------------------------------------------ merge patch, preconditions


def test_patch_merges_and_bumps_version(api, keys, municipality):
    w0 = make_werklab(api, keys.admin, municipality["id"],
                      **{k: v for k, v in FULL.items() if k != "status"})
    r = api.patch(url(w0), {"intake": {"goals": "Nieuwe doelen"}}, key=keys.staff)
    w1 = assert_status(r, 200)
    assert r.header("ETag") == '"2"'
    assert w1 == dict(w0, intake=dict(w0["intake"], goals="Nieuwe doelen"), version=2,
                      updatedAt=w1["updatedAt"])
    w2 = assert_status(api.patch(url(w0), {"quote": {"note": None}, "sharedVision": None},
                                 key=keys.admin), 200)
    assert w2["quote"] == dict(w0["quote"], note=None) and w2["sharedVision"] is None
    assert w2["version"] == 3 and w2["title"] == w0["title"]
    w3 = assert_status(api.patch(url(w0), {"intake": None, "title": "Nieuw"}, key=keys.admin), 200)
    assert w3["intake"] is None and w3["title"] == "Nieuw" and w3["capacity"] == w0["capacity"]
    assert get(api, keys, w0) == w3


def test_if_none_match_and_if_match(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"])
    r = api.get(url(w), key=keys.admin, headers={"If-None-Match": '"1"'})
    assert_status(r, 304)
    assert r.body == b""
    w2 = assert_status(api.patch(url(w), {"title": "Twee"}, key=keys.admin), 200)
    assert assert_status(api.get(url(w), key=keys.admin, headers={"If-None-Match": '"1"'}),
                         200) == w2
    assert_problem(api.patch(url(w), {"title": "Oud"}, key=keys.admin,
                             headers={"If-Match": '"1"'}), 412)
    assert_problem(api.patch(url(w), {"status": "intake"}, key=keys.admin,
                             headers={"If-Match": '"1"'}), 412)
    assert_problem(api.delete(url(w), key=keys.admin, headers={"If-Match": '"1"'}), 412)
    assert get(api, keys, w) == w2
    assert_status(api.delete(url(w), key=keys.admin, headers={"If-Match": '"2"'}), 204)


def test_etag_moves_with_participants(api, keys, municipality):
    """A new participant changes participantCount, so the werklab's version and ETag move."""
    w = make_werklab(api, keys.admin, municipality["id"], status="intake")
    make_participant(api, keys.admin, w["id"])
    r = api.get(url(w), key=keys.admin, headers={"If-None-Match": f'"{w["version"]}"'})
    w2 = assert_status(r, 200)
    assert w2["participantCount"] == 1 and w2["version"] > w["version"]
    assert r.header("ETag") == f'"{w2["version"]}"'


# ------------------------------------------------------------------ delete


@pytest.mark.parametrize("status", ["inquiry", "cancelled"])
def test_delete_in_inquiry_or_cancelled(api, keys, municipality, status):
    w = make_werklab(api, keys.admin, municipality["id"])
    if status == "cancelled":
        advance(api, keys.admin, w["id"], "cancelled")
    assert_status(api.delete(url(w), key=keys.staff), 204)
    assert_problem(api.get(url(w), key=keys.admin), 404)
    assert_problem(api.get(f"{url(w)}/trainers", key=keys.admin), 404)
    assert listed(api, keys, {"municipalityId": municipality["id"]}) == []


@pytest.mark.parametrize("status", ["intake", "planned", "running", "completed"])
def test_delete_in_other_states_is_409_status(api, keys, municipality, status):
    w = werklab_at(api, keys, municipality, status)
    assert_problem(api.delete(url(w), key=keys.admin), 409, conflicts={"status"})
    assert get(api, keys, w) == w


def test_delete_with_trainers_assigned(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"])
    assign_trainer(api, keys.admin, w["id"], MO, make_trainer(api, keys.admin)["id"])
    assert_status(api.delete(url(w), key=keys.admin), 204)
    assert_problem(api.get(url(w), key=keys.admin), 404)


def test_delete_cancelled_with_trainers_assigned(api, keys, municipality):
    w = werklab_at(api, keys, municipality, "planned")
    advance(api, keys.admin, w["id"], "cancelled")
    assert_status(api.delete(url(w), key=keys.admin), 204)
    assert_problem(api.get(url(w), key=keys.admin), 404)
    for a in w["trainers"]:  # the trainers are free again
        assert_status(api.delete(f"/v1/trainers/{a['trainerId']}", key=keys.admin), 204)


def test_delete_with_participants_is_409_referenced(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"], status="intake")
    make_participant(api, keys.admin, w["id"])
    w = advance(api, keys.admin, w["id"], "cancelled")
    assert_problem(api.delete(url(w), key=keys.admin), 409, conflicts={"referenced"})
    assert get(api, keys, w) == w


def test_delete_with_sessions_is_409_referenced(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"])
    make_session(api, keys.admin, w["id"], 1, *FUTURE)
    w = get(api, keys, w)
    assert_problem(api.delete(url(w), key=keys.admin), 409, conflicts={"referenced"})
    assert get(api, keys, w) == w


def test_delete_with_feedback_is_409_referenced(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"])
    assert_status(api.post("/v1/feedback", {"werklabId": w["id"], "kind": "trainerNote",
                                            "body": "Goed begin."}, key=keys.admin), 201)
    assert_problem(api.delete(url(w), key=keys.admin), 409, conflicts={"referenced"})
    assert get(api, keys, w) == w


def test_municipality_with_werklabs_cannot_be_deleted(api, keys, municipality):
    make_werklab(api, keys.admin, municipality["id"])
    assert_problem(api.delete(f"/v1/municipalities/{municipality['id']}", key=keys.admin), 409,
                   conflicts={"referenced"})


# ------------------------------------------------------------------ status machine: steps


ALLOWED = [("inquiry", "intake"), ("intake", "planned"), ("planned", "running"),
           ("running", "completed"), ("inquiry", "cancelled"), ("intake", "cancelled"),
           ("planned", "cancelled"), ("running", "cancelled")]


@pytest.mark.parametrize("frm,to", ALLOWED, ids=[f"{a}-{b}" for a, b in ALLOWED])
def test_allowed_step(api, keys, municipality, frm, to):
    w = werklab_at(api, keys, municipality, frm)
    w = prepare(api, keys.admin, w["id"], to)
    r = patch_status(api, keys, w, to)
    w2 = assert_status(r, 200)
    assert w2["status"] == to and w2["version"] == w["version"] + 1
    assert r.header("ETag") == f'"{w2["version"]}"'
    assert get(api, keys, w) == w2


FORBIDDEN = [("inquiry", "planned"), ("inquiry", "running"), ("inquiry", "completed"),
             ("intake", "running"), ("intake", "completed"), ("intake", "inquiry"),
             ("planned", "completed"), ("planned", "intake"), ("planned", "inquiry"),
             ("running", "planned"), ("running", "intake"),
             ("completed", "running"), ("completed", "cancelled"), ("completed", "inquiry"),
             ("cancelled", "inquiry"), ("cancelled", "intake"), ("cancelled", "planned"),
             ("cancelled", "running"), ("cancelled", "completed")]


def reach(api, keys, municipality, status):
    """A werklab in status; cancelled ones after planning, so that every condition of a later
    step is met and only the machine refuses."""
    if status == "cancelled":
        w = werklab_at(api, keys, municipality, "running")
        return advance(api, keys.admin, w["id"], "cancelled")
    return werklab_at(api, keys, municipality, status)


@pytest.mark.parametrize("frm,to", FORBIDDEN, ids=[f"{a}-{b}" for a, b in FORBIDDEN])
def test_forbidden_step_is_409_status_transition(api, keys, municipality, frm, to):
    w = reach(api, keys, municipality, frm)
    assert_problem(patch_status(api, keys, w, to), 409, conflicts={"statusTransition"})
    assert get(api, keys, w) == w


def test_forbidden_step_changes_nothing_else_in_the_patch(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"])
    assert_problem(patch_status(api, keys, w, "running", title="Nieuw"), 409,
                   conflicts={"statusTransition"})
    assert get(api, keys, w) == w


def test_status_enum(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"])
    assert_problem(patch_status(api, keys, w, "Intake"), 400, names={"status": "enum"})
    assert get(api, keys, w) == w


def test_whole_life(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"])
    seen = [w["status"]]
    for status in ("intake", "planned", "running", "completed"):
        w = advance(api, keys.admin, w["id"], status)
        seen.append(w["status"])
    assert seen == ["inquiry", "intake", "planned", "running", "completed"]
    assert [x["status"] for x in listed(api, keys, {"municipalityId": municipality["id"]})] == \
        ["completed"]


# ------------------------------------------------------------------ status machine: conditions


def conflicts_of(p):
    return sorted(c["code"] for c in p["conflicts"])


def test_planned_needs_intake_and_both_trainers(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"], status="intake")
    p = assert_problem(patch_status(api, keys, w, "planned"), 409,
                       conflicts={"intakeNotHeld", "trainerMissing"})
    assert conflicts_of(p) == ["intakeNotHeld", "trainerMissing", "trainerMissing"], p
    details = " ".join(c["detail"] for c in p["conflicts"])
    assert MO in details and RI in details, p
    assert get(api, keys, w) == w


def test_planned_with_one_trainer_missing(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"], status="intake",
                     intake={"heldOn": "2026-01-10"})
    assign_trainer(api, keys.admin, w["id"], MO, make_trainer(api, keys.admin, expertise=[MO])["id"])
    w = get(api, keys, w)
    p = assert_problem(patch_status(api, keys, w, "planned"), 409, conflicts={"trainerMissing"})
    assert len(p["conflicts"]) == 1 and RI in p["conflicts"][0]["detail"], p
    assert get(api, keys, w) == w


def test_planned_without_intake_held(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"], status="intake",
                     intake={"needs": "Veel"})
    assign_trainer(api, keys.admin, w["id"], MO, make_trainer(api, keys.admin, expertise=[MO])["id"])
    assign_trainer(api, keys.admin, w["id"], RI, make_trainer(api, keys.admin, expertise=[RI])["id"])
    w = get(api, keys, w)
    p = assert_problem(patch_status(api, keys, w, "planned"), 409, conflicts={"intakeNotHeld"})
    assert len(p["conflicts"]) == 1, p
    assert get(api, keys, w) == w


def test_planned_and_intake_held_in_one_patch(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"], status="intake")
    assign_trainer(api, keys.admin, w["id"], MO, make_trainer(api, keys.admin, expertise=[MO])["id"])
    assign_trainer(api, keys.admin, w["id"], RI, make_trainer(api, keys.admin, expertise=[RI])["id"])
    w = get(api, keys, w)
    r = api.patch(url(w), {"status": "planned", "intake": {"heldOn": "2026-01-20"}}, key=keys.admin)
    w2 = assert_status(r, 200)
    assert w2["status"] == "planned" and w2["intake"]["heldOn"] == "2026-01-20"
    assert w2["version"] == w["version"] + 1
    assert get(api, keys, w) == w2


def test_refused_one_patch_keeps_intake_unset(api, keys, municipality):
    """The patch is written and then refused: none of it stays."""
    w = make_werklab(api, keys.admin, municipality["id"], status="intake")
    r = api.patch(url(w), {"status": "planned", "intake": {"heldOn": "2026-01-20"},
                           "title": "Nieuw"}, key=keys.admin)
    p = assert_problem(r, 409, conflicts={"trainerMissing"})
    assert len(p["conflicts"]) == 2, p
    assert get(api, keys, w) == w


def test_running_with_nothing_lists_every_condition(api, keys, municipality):
    w = werklab_at(api, keys, municipality, "planned")
    p = assert_problem(patch_status(api, keys, w, "running"), 409,
                       conflicts={"tooFewParticipants", "noSessions"})
    assert len(p["conflicts"]) == 2, p
    assert get(api, keys, w) == w


def test_running_with_a_visit_without_host_and_too_few(api, keys, municipality):
    w = werklab_at(api, keys, municipality, "planned", capacity={"min": 3, "max": 5})
    make_participant(api, keys.admin, w["id"])
    guest = make_initiative(api, keys.admin, municipality["id"])
    make_session(api, keys.admin, w["id"], 1, *FUTURE, kind="initiativeVisit",
                 initiatives=[{"initiativeId": guest["id"], "role": "guest"}])
    w = get(api, keys, w)
    p = assert_problem(patch_status(api, keys, w, "running"), 409,
                       conflicts={"tooFewParticipants", "visitWithoutHost"})
    assert len(p["conflicts"]) == 2, p
    assert get(api, keys, w) == w


def test_running_with_a_visit_without_any_initiative(api, keys, municipality):
    w = werklab_at(api, keys, municipality, "planned", capacity={"min": 1, "max": 5})
    make_participant(api, keys.admin, w["id"])
    make_session(api, keys.admin, w["id"], 1, *FUTURE, kind="initiativeVisit")
    make_session(api, keys.admin, w["id"], 2, "2030-06-10T09:00:00Z", "2030-06-10T12:00:00Z",
                 kind="initiativeVisit")
    w = get(api, keys, w)
    p = assert_problem(patch_status(api, keys, w, "running"), 409, conflicts={"visitWithoutHost"})
    assert len(p["conflicts"]) == 1, p
    assert get(api, keys, w) == w


def test_running_with_only_other_kinds_of_session(api, keys, municipality):
    w = werklab_at(api, keys, municipality, "planned", capacity={"min": 2, "max": 5})
    make_participant(api, keys.admin, w["id"])
    make_participant(api, keys.admin, w["id"])
    make_session(api, keys.admin, w["id"], 1, *FUTURE, kind="ownRole")
    w = get(api, keys, w)
    assert assert_status(patch_status(api, keys, w, "running"), 200)["status"] == "running"


def test_running_and_lower_capacity_min_in_one_patch(api, keys, municipality):
    w = werklab_at(api, keys, municipality, "planned")
    for _ in range(3):
        make_participant(api, keys.admin, w["id"])
    make_session(api, keys.admin, w["id"], 1, *FUTURE)
    w = get(api, keys, w)
    p = assert_problem(patch_status(api, keys, w, "running"), 409,
                       conflicts={"tooFewParticipants"})
    assert "3" in p["conflicts"][0]["detail"], p
    w2 = assert_status(patch_status(api, keys, w, "running", capacity={"min": 3}), 200)
    assert w2["status"] == "running" and w2["capacity"] == {"min": 3, "max": 15}


def test_completed_needs_every_session_ended(api, keys, municipality):
    w = werklab_at(api, keys, municipality, "running")
    make_session(api, keys.admin, w["id"], 2, *FUTURE)
    make_session(api, keys.admin, w["id"], 3, "2030-06-10T09:00:00Z", "2030-06-10T12:00:00Z")
    w = get(api, keys, w)
    p = assert_problem(patch_status(api, keys, w, "completed"), 409,
                       conflicts={"sessionsNotEnded"})
    assert len(p["conflicts"]) == 1 and "2" in p["conflicts"][0]["detail"], p
    assert get(api, keys, w) == w


def test_cancel_skips_every_condition(api, keys, municipality):
    w = werklab_at(api, keys, municipality, "running")
    make_session(api, keys.admin, w["id"], 2, *FUTURE)
    w2 = assert_status(patch_status(api, keys, get(api, keys, w), "cancelled"), 200)
    assert w2["status"] == "cancelled"


# ------------------------------------------------------------------ trainer assignments


def assignments(api, keys, w, key=None):
    return assert_status(api.get(f"{url(w)}/trainers", key=key or keys.admin), 200)


def put_trainer(api, keys, w, role, body):
    return api.put(f"{url(w)}/trainers/{role}", body, key=keys.admin)


def test_assign_and_unassign(api, keys, municipality):
    w0 = make_werklab(api, keys.admin, municipality["id"])
    a = make_trainer(api, keys.admin, expertise=[MO])
    r = put_trainer(api, keys, w0, MO, {"trainerId": a["id"]})
    body = assert_status(r, 200)
    assert body["next"] is None and len(body["items"]) == 1
    item = body["items"][0]
    assert set(item) == {"trainerId", "role", "assignedAt"}, item
    assert item["trainerId"] == a["id"] and item["role"] == MO
    assert TIMESTAMP_RE.match(item["assignedAt"]), item
    assert assignments(api, keys, w0) == body
    assert assignments(api, keys, w0, key=keys.partner) == body
    w1 = get(api, keys, w0)
    assert w1["trainers"] == [{"trainerId": a["id"], "role": MO}]
    assert w1["version"] == w0["version"] + 1 and parse_time(w1["updatedAt"]) >= parse_time(w0["updatedAt"])

    b = make_trainer(api, keys.admin, expertise=[RI, MO])
    body = assert_status(put_trainer(api, keys, w0, RI, {"trainerId": b["id"]}), 200)
    assert [(i["role"], i["trainerId"]) for i in body["items"]] == [(MO, a["id"]), (RI, b["id"])]
    w2 = get(api, keys, w0)
    assert w2["version"] == w1["version"] + 1
    assert w2["trainers"] == [{"trainerId": a["id"], "role": MO}, {"trainerId": b["id"], "role": RI}]

    r = api.delete(f"{url(w0)}/trainers/{MO}", key=keys.staff)
    assert_status(r, 204)
    assert r.body == b""
    w3 = get(api, keys, w0)
    assert w3["trainers"] == [{"trainerId": b["id"], "role": RI}]
    assert w3["version"] == w2["version"] + 1
    assert [i["role"] for i in assignments(api, keys, w0)["items"]] == [RI]


def test_assigning_a_filled_role_replaces_the_trainer(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"])
    a = make_trainer(api, keys.admin, expertise=[MO])
    b = make_trainer(api, keys.admin, expertise=[MO])
    first = assert_status(put_trainer(api, keys, w, MO, {"trainerId": a["id"]}), 200)["items"][0]
    v1 = get(api, keys, w)["version"]
    body = assert_status(put_trainer(api, keys, w, MO, {"trainerId": b["id"]}), 200)
    assert len(body["items"]) == 1 and body["items"][0]["trainerId"] == b["id"]
    assert parse_time(body["items"][0]["assignedAt"]) >= parse_time(first["assignedAt"])
    w2 = get(api, keys, w)
    assert w2["trainers"] == [{"trainerId": b["id"], "role": MO}] and w2["version"] == v1 + 1
    # a is free again
    assert_status(api.delete(f"/v1/trainers/{a['id']}", key=keys.admin), 204)


def test_replacing_a_trainer_of_a_running_werklab(api, keys, municipality):
    w = werklab_at(api, keys, municipality, "running")
    c = make_trainer(api, keys.admin, expertise=[RI])
    assert_status(put_trainer(api, keys, w, RI, {"trainerId": c["id"]}), 200)
    w2 = get(api, keys, w)
    assert {"trainerId": c["id"], "role": RI} in w2["trainers"] and w2["version"] == w["version"] + 1


def test_same_trainer_in_both_roles_is_409(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"])
    t = make_trainer(api, keys.admin, expertise=[MO, RI])
    assert_status(put_trainer(api, keys, w, MO, {"trainerId": t["id"]}), 200)
    before = get(api, keys, w)
    assert_problem(put_trainer(api, keys, w, RI, {"trainerId": t["id"]}), 409,
                   conflicts={"trainerRole"})
    assert get(api, keys, w) == before
    assert [i["role"] for i in assignments(api, keys, w)["items"]] == [MO]


def test_role_outside_expertise_is_400_reference(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"])
    t = make_trainer(api, keys.admin, expertise=[MO])
    assert_problem(put_trainer(api, keys, w, RI, {"trainerId": t["id"]}), 400,
                   names={"trainerId": "reference"})
    assert get(api, keys, w) == w and assignments(api, keys, w)["items"] == []


def test_unknown_trainer_is_400_reference(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"])
    assert_problem(put_trainer(api, keys, w, MO, {"trainerId": str(uuid.uuid4())}), 400,
                   names={"trainerId": "reference"})
    assert get(api, keys, w) == w


BAD_ASSIGNMENTS = {
    "empty": ({}, {"trainerId": "required"}),
    "number": ({"trainerId": 5}, {"trainerId": "type"}),
    "null": ({"trainerId": None}, {"trainerId": {"type", "required"}}),
    "malformed": ({"trainerId": "trainer-1"}, {"trainerId": "format"}),
    "extra": ({"trainerId": "{t}", "role": MO}, {"role": "unknown"}),
    "extra-only": ({"name": "x"}, {"name": "unknown", "trainerId": "required"}),
}


@pytest.mark.parametrize("case", sorted(BAD_ASSIGNMENTS))
def test_bad_assignment_body(api, keys, municipality, case):
    w = make_werklab(api, keys.admin, municipality["id"])
    t = make_trainer(api, keys.admin, expertise=[MO])
    body, names = BAD_ASSIGNMENTS[case]
    body = {k: (t["id"] if v == "{t}" else v) for k, v in body.items()}
    assert_problem(put_trainer(api, keys, w, MO, body), 400, names=names)
    assert get(api, keys, w) == w


@pytest.mark.parametrize("body", [[], "x", 5], ids=["array", "string", "number"])
def test_assignment_body_must_be_an_object(api, keys, municipality, body):
    w = make_werklab(api, keys.admin, municipality["id"])
    assert_problem(put_trainer(api, keys, w, MO, body), 400)
    assert get(api, keys, w) == w


@pytest.mark.parametrize("role", ["trainer", "MunicipalOrganisation", "municipalOrganisation2"])
def test_unknown_role_is_404(api, keys, municipality, role):
    w = make_werklab(api, keys.admin, municipality["id"])
    t = make_trainer(api, keys.admin)
    assert_problem(put_trainer(api, keys, w, role, {"trainerId": t["id"]}), 404)
    assert_problem(api.delete(f"{url(w)}/trainers/{role}", key=keys.admin), 404)
    assert get(api, keys, w) == w


def test_assignment_routes_on_unknown_werklab_are_404(api, keys):
    t = make_trainer(api, keys.admin)
    for wid in (str(uuid.uuid4()), "not-a-uuid"):
        assert_problem(api.get(f"/v1/werklabs/{wid}/trainers", key=keys.admin), 404)
        assert_problem(api.put(f"/v1/werklabs/{wid}/trainers/{MO}", {"trainerId": t["id"]},
                               key=keys.admin), 404)
        assert_problem(api.delete(f"/v1/werklabs/{wid}/trainers/{MO}", key=keys.admin), 404)


def test_unassigning_an_empty_role_is_404(api, keys, municipality):
    w = make_werklab(api, keys.admin, municipality["id"])
    assert_problem(api.delete(f"{url(w)}/trainers/{RI}", key=keys.admin), 404)
    assert get(api, keys, w) == w


@pytest.mark.parametrize("status", ["planned", "running", "completed"])
def test_unassigning_in_planned_running_completed_is_409(api, keys, municipality, status):
    w = werklab_at(api, keys, municipality, status)
    for role in (MO, RI):
        assert_problem(api.delete(f"{url(w)}/trainers/{role}", key=keys.admin), 409,
                       conflicts={"trainersRequired"})
    assert get(api, keys, w) == w


@pytest.mark.parametrize("status", ["intake", "cancelled"])
def test_unassigning_in_intake_or_cancelled(api, keys, municipality, status):
    w = werklab_at(api, keys, municipality, "planned")
    if status == "cancelled":
        w = advance(api, keys.admin, w["id"], "cancelled")
    else:
        w = make_werklab(api, keys.admin, municipality["id"], status="intake")
        assign_trainer(api, keys.admin, w["id"], MO, make_trainer(api, keys.admin)["id"])
        w = get(api, keys, w)
    assert_status(api.delete(f"{url(w)}/trainers/{MO}", key=keys.admin), 204)
    w2 = get(api, keys, w)
    assert MO not in [t["role"] for t in w2["trainers"]] and w2["version"] == w["version"] + 1


# ------------------------------------------------------------------ lists: filters


def test_status_filter(api, keys, municipality):
    m = municipality["id"]
    made = {s: werklab_at(api, keys, municipality, s) for s in ("inquiry", "intake", "planned")}
    made["cancelled"] = advance(api, keys.admin, make_werklab(api, keys.admin, m)["id"], "cancelled")
    for query, want in [("intake", {"intake"}), ("inquiry,cancelled", {"inquiry", "cancelled"}),
                        ("running", set()), ("planned,intake,inquiry", {"planned", "intake", "inquiry"})]:
        got = listed(api, keys, {"municipalityId": m, "status": query})
        assert set(ids(got)) == {made[s]["id"] for s in want}, query


def test_municipality_filter(api, keys, new_municipality):
    a, b = new_municipality(), new_municipality()
    wa = make_werklab(api, keys.admin, a["id"])
    wb = make_werklab(api, keys.admin, b["id"])
    assert ids(listed(api, keys, {"municipalityId": a["id"]})) == [wa["id"]]
    assert ids(listed(api, keys, {"municipalityId": b["id"]})) == [wb["id"]]


def test_q_filter(api, keys, municipality):
    m = municipality["id"]
    a = make_werklab(api, keys.admin, m, title="Werklab Bommelerwaard")
    b = make_werklab(api, keys.admin, m, title="Werklab Oost", intake={"needs": "Meer moestuinen"})
    c = make_werklab(api, keys.admin, m, title="Werklab West", intake={"goals": "Groene daken"})
    assert ids(listed(api, keys, {"municipalityId": m, "q": "bommelerwaard"})) == [a["id"]]
    assert ids(listed(api, keys, {"municipalityId": m, "q": "moestuin"})) == [b["id"]]
    assert ids(listed(api, keys, {"municipalityId": m, "q": "groene daken"})) == [c["id"]]
    assert set(ids(listed(api, keys, {"municipalityId": m, "q": "werklab"}))) == \
        {a["id"], b["id"], c["id"]}
    assert listed(api, keys, {"municipalityId": m, "q": "zwembad"}) == []


def test_starts_on_filters(api, keys, municipality):
    m = municipality["id"]
    early = make_werklab(api, keys.admin, m)
    make_session(api, keys.admin, early["id"], 1, "2026-02-10T09:00:00Z", "2026-02-10T12:00:00Z")
    late = make_werklab(api, keys.admin, m)
    make_session(api, keys.admin, late["id"], 1, "2026-04-10T09:00:00Z", "2026-04-10T12:00:00Z")
    none = make_werklab(api, keys.admin, m)
    e, l = early["id"], late["id"]
    cases = [({"startsOnFrom": "2026-02-10"}, {e, l}),
             ({"startsOnFrom": "2026-02-11"}, {l}),
             ({"startsOnTo": "2026-02-10"}, {e}),
             ({"startsOnTo": "2026-02-09"}, set()),
             ({"startsOnFrom": "2026-01-01", "startsOnTo": "2026-12-31"}, {e, l}),
             ({"startsOnFrom": "2026-03-01", "startsOnTo": "2026-04-10"}, {l})]
    for params, want in cases:
        got = listed(api, keys, dict(params, municipalityId=m))
        assert set(ids(got)) == want, params
    assert none["id"] in ids(listed(api, keys, {"municipalityId": m}))


def test_updated_since(api, keys, municipality):
    m = municipality["id"]
    a = make_werklab(api, keys.admin, m)
    b = make_werklab(api, keys.admin, m)
    time.sleep(0.05)
    b2 = assert_status(api.patch(url(b), {"title": "Later"}, key=keys.admin), 200)
    assert ids(listed(api, keys, {"municipalityId": m, "updatedSince": b2["updatedAt"]})) == [b["id"]]
    assert set(ids(listed(api, keys, {"municipalityId": m, "updatedSince": a["createdAt"]}))) == \
        {a["id"], b["id"]}


BAD_QUERIES = {
    "status": ("status=done", "status"),
    "status-one-bad": ("status=intake,done", "status"),
    "municipalityId": ("municipalityId=abc", "municipalityId"),
    "startsOnFrom": ("startsOnFrom=2026-13-01", "startsOnFrom"),
    "startsOnTo": ("startsOnTo=tomorrow", "startsOnTo"),
    "startsOnFrom-timestamp": ("startsOnFrom=2026-01-01T00:00:00Z", "startsOnFrom"),
    "updatedSince": ("updatedSince=2026", "updatedSince"),
    "sort": ("sort=capacity", "sort"),
    "sort-endsOn": ("sort=-endsOn", "sort"),
    "unknown": ("trainerId=" + str(uuid.uuid4()), "trainerId"),
}


@pytest.mark.parametrize("case", sorted(BAD_QUERIES))
def test_bad_query(api, keys, case):
    query, name = BAD_QUERIES[case]
    assert_problem(api.get(f"/v1/werklabs?{query}", key=keys.admin), 400, names=[name])


# ------------------------------------------------------------------ lists: sort keys


@pytest.fixture
def sortable(api, keys, municipality):
    """Four werklabs differing in title, first session, status, createdAt and updatedAt."""
    m = municipality["id"]
    c = make_werklab(api, keys.admin, m, title="Charlie")
    a = make_werklab(api, keys.admin, m, title="Alpha", status="intake")
    d = make_werklab(api, keys.admin, m, title="Delta")
    b = make_werklab(api, keys.admin, m, title="Bravo")
    make_session(api, keys.admin, c["id"], 1, "2026-05-01T09:00:00Z", "2026-05-01T12:00:00Z")
    make_session(api, keys.admin, a["id"], 1, "2026-07-01T09:00:00Z", "2026-07-01T12:00:00Z")
    make_session(api, keys.admin, b["id"], 1, "2026-03-01T09:00:00Z", "2026-03-01T12:00:00Z")
    advance(api, keys.admin, b["id"], "cancelled")
    # d has no session: last when ascending by startsOn
    assert_status(api.patch(url(a), {"sharedVision": "x"}, key=keys.admin), 200)
    return m, [get(api, keys, w) for w in (c, a, d, b)]


def sort_value(w, key):
    if key == "startsOn":
        return w["startsOn"] or "9999-12-31"
    return as_ordered(w[key])


@pytest.mark.parametrize("desc", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("sort_key", ["title", "startsOn", "status", "createdAt", "updatedAt"])
def test_sort_keys(api, keys, sortable, sort_key, desc):
    m, made = sortable
    want = sorted(made, key=lambda w: (sort_value(w, sort_key), w["id"]), reverse=desc)
    sort = ("-" if desc else "") + sort_key
    got = listed(api, keys, {"municipalityId": m, "sort": sort})
    assert ids(got) == ids(want), [g[sort_key] for g in got]
    paged, _ = api.list_all("/v1/werklabs", keys.admin, {"municipalityId": m, "sort": sort}, limit=1)
    assert ids(paged) == ids(want)


def test_sort_by_two_keys(api, keys, sortable):
    m, made = sortable
    want = sorted(made, key=lambda w: w["title"], reverse=True)
    want = sorted(want, key=lambda w: w["status"])
    got = listed(api, keys, {"municipalityId": m, "sort": "status,-title"})
    assert ids(got) == ids(want)


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


@pytest.mark.parametrize("round_", range(10))
def test_planning_while_a_trainer_is_removed_keeps_both_trainers(api, keys, municipality, round_):
    """Planning and removing a trainer race: either the plan wins (and the removal is refused
    with trainersRequired) or the removal wins (and planning is refused with trainerMissing).
    Never a planned werklab with one trainer."""
    w = make_werklab(api, keys.admin, municipality["id"], status="intake")
    w = prepare(api, keys.admin, w["id"], "planned")
    plan, remove = concurrently(
        lambda: api.patch(url(w), {"status": "planned"}, key=keys.admin),
        lambda: api.delete(f"{url(w)}/trainers/{RI}", key=keys.admin))
    after = get(api, keys, w)
    roles = sorted(t["role"] for t in after["trainers"])
    assert plan.status in (200, 409) and remove.status in (204, 409), (describe(plan), describe(remove))
    if after["status"] == "planned":
        assert roles == [MO, RI], (describe(plan), describe(remove), after)
        assert_problem(remove, 409, conflicts={"trainersRequired"})
    else:
        assert after["status"] == "intake" and roles == [MO], after
        assert_problem(plan, 409, conflicts={"trainerMissing"})
        assert_status(remove, 204)


# ------------------------------------------------------------------ status lists, page by page


@pytest.mark.parametrize("sort", [None, "-createdAt", "title", "-title,createdAt"])
@pytest.mark.parametrize("limit", [1, 2, 7])
def test_several_statuses_page_through_in_order(api, keys, new_municipality, sort, limit):
    """Several statuses are read as one scan per status, merged (server/resource/plan.c): every page
    joins, in the list's order, each row once, whatever the sort and page size."""
    m = new_municipality()
    made = []
    for n, status in enumerate(["inquiry", "intake", "cancelled", "intake", "inquiry", "intake",
                                "inquiry", "cancelled", "intake"]):
        w = make_werklab(api, keys.staff, m["id"], title=f"Lab {n % 4} {uuid.uuid4().hex[:4]}",
                         status="intake" if status == "intake" else "inquiry")
        if status == "cancelled":
            w = assert_status(api.patch(f"/v1/werklabs/{w['id']}", {"status": "cancelled"},
                                        key=keys.staff), 200)
        made.append(w)
    wanted = [w for w in made if w["status"] in ("inquiry", "intake")]

    def value(w, field):
        # Timestamps compare as times: their text drops trailing zeros of the fraction, so
        # "…01.12Z" is earlier than "…01.123Z" but sorts after it as a string.
        if field == "createdAt":
            return datetime.datetime.fromisoformat(w[field].replace("Z", "+00:00"))
        return w[field]

    def key_of(w, spec):
        fields = (spec or "createdAt").split(",")
        return [(value(w, f.lstrip("-")), f.startswith("-")) for f in fields] + [(w["id"], None)]

    def order(ws, spec):
        import functools

        def cmp(a, b):
            for (x, desc), (y, _) in zip(key_of(a, spec), key_of(b, spec)):
                if x != y:
                    last_desc = [d for _, d in key_of(a, spec) if d is not None][-1]
                    d = desc if desc is not None else last_desc
                    return (1 if x > y else -1) * (-1 if d else 1)
            return 0
        return sorted(ws, key=functools.cmp_to_key(cmp))

    url = f"/v1/werklabs?municipalityId={m['id']}&status=inquiry,intake&limit={limit}"
    if sort:
        url += f"&sort={sort}"
    got = []
    while url:
        page = assert_status(api.get(url, key=keys.staff), 200)
        assert len(page["items"]) <= limit
        got += page["items"]
        url = page["next"]
    assert [w["id"] for w in got] == [w["id"] for w in order(wanted, sort)]

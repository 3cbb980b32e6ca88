"""Factories for the domain objects of werklabd (tests/api), shared by several test modules.

Every factory POSTs a valid object (fields may be overridden or added with keyword arguments;
a value of None drops a default), asserts 201 and returns the created object (the JSON body).
`key` is the secret of a key allowed to write (keys.admin or keys.staff).

    from domain import make_initiative, make_werklab, advance
    w = make_werklab(api, keys.admin, municipality["id"])
    w = advance(api, keys.admin, w["id"], "running")

Keep this module small and stable: other test modules import it.
"""

import uuid

from wlclient import describe

STATUS_ORDER = ["inquiry", "intake", "planned", "running", "completed"]
TRAINER_ROLES = ["municipalOrganisation", "residentInitiatives"]

# Sessions made by advance() lie in the past (so a werklab can be completed), one day apart.
PAST_SESSION_DAY = "2025-03-{day:02d}T{hour:02d}:00:00Z"


def _tag():
    return uuid.uuid4().hex[:8]


def _body(defaults, fields):
    body = dict(defaults)
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def _create(api, key, path, body):
    r = api.post(path, body, key=key)
    assert r.status == 201, describe(r)
    return r.json


def make_initiative(api, key, municipality_id, **fields):
    body = _body({"municipalityId": municipality_id, "name": f"Initiatief {_tag()}",
                  "kind": "residentInitiative"}, fields)
    return _create(api, key, "/v1/initiatives", body)


def make_trainer(api, key, expertise=("municipalOrganisation", "residentInitiatives"), **fields):
    tag = _tag()
    body = _body({"name": f"Trainer {tag}", "email": f"trainer-{tag}@example.nl",
                  "expertise": list(expertise)}, fields)
    return _create(api, key, "/v1/trainers", body)


def make_werklab(api, key, municipality_id, **fields):
    body = _body({"municipalityId": municipality_id, "title": f"Werklab {_tag()}"}, fields)
    return _create(api, key, "/v1/werklabs", body)


def make_participant(api, key, werklab_id, **fields):
    tag = _tag()
    body = _body({"name": f"Deelnemer {tag}", "email": f"deelnemer-{tag}@example.nl"}, fields)
    return _create(api, key, f"/v1/werklabs/{werklab_id}/participants", body)


def make_session(api, key, werklab_id, sequence, starts_at, ends_at, **fields):
    body = _body({"werklabId": werklab_id, "sequence": sequence, "kind": "custom",
                  "title": f"Bijeenkomst {sequence}", "startsAt": starts_at, "endsAt": ends_at},
                 fields)
    return _create(api, key, "/v1/sessions", body)


def get_werklab(api, key, werklab_id):
    r = api.get(f"/v1/werklabs/{werklab_id}", key=key)
    assert r.status == 200, describe(r)
    return r.json


def assign_trainer(api, key, werklab_id, role, trainer_id):
    r = api.put(f"/v1/werklabs/{werklab_id}/trainers/{role}", {"trainerId": trainer_id}, key=key)
    assert r.status == 200, describe(r)
    return r.json


def set_status(api, key, werklab_id, status, **fields):
    r = api.patch(f"/v1/werklabs/{werklab_id}", dict(fields, status=status), key=key)
    assert r.status == 200, describe(r)
    assert r.json["status"] == status, describe(r)
    return r.json


def _sessions(api, key, werklab_id):
    r = api.get(f"/v1/sessions?werklabId={werklab_id}&limit=200", key=key)
    assert r.status == 200, describe(r)
    return r.json["items"]


def _prepare_planned(api, key, w):
    """intake.heldOn and both trainers."""
    if not (w.get("intake") or {}).get("heldOn"):
        r = api.patch(f"/v1/werklabs/{w['id']}", {"intake": {"heldOn": "2025-02-01"}}, key=key)
        assert r.status == 200, describe(r)
    have = {t["role"] for t in w.get("trainers") or []}
    for role in TRAINER_ROLES:
        if role not in have:
            t = make_trainer(api, key, expertise=[role])
            assign_trainer(api, key, w["id"], role, t["id"])


def _prepare_running(api, key, w):
    """capacity.min participants and a past initiativeVisit session with a host initiative."""
    for _ in range(w["capacity"]["min"] - w["participantCount"]):
        make_participant(api, key, w["id"])
    sessions = _sessions(api, key, w["id"])
    if not sessions:
        host = make_initiative(api, key, w["municipalityId"])
        make_session(api, key, w["id"], 1, PAST_SESSION_DAY.format(day=2, hour=9),
                     PAST_SESSION_DAY.format(day=2, hour=12), kind="initiativeVisit",
                     initiatives=[{"initiativeId": host["id"], "role": "host"}])


def prepare(api, key, werklab_id, to_status):
    """Meets the conditions of the step to to_status (planned or running) without making it,
    as advance() would. Returns the werklab as it then is."""
    w = get_werklab(api, key, werklab_id)
    if to_status == "planned":
        _prepare_planned(api, key, w)
    elif to_status == "running":
        _prepare_running(api, key, w)
    return get_werklab(api, key, werklab_id)


def advance(api, key, werklab_id, to_status):
    """Brings a werklab step by step to to_status, meeting every condition on the way.

    intake → planned: sets intake.heldOn, assigns a trainer to each role (new trainers);
    planned → running: adds participants up to capacity.min, and when the werklab has no
    sessions one past initiativeVisit session (sequence 1, 2025-03-02) hosted by a new
    initiative of its municipality; running → completed: nothing (the sessions made here are
    past). to_status "cancelled" cancels at once. Returns the werklab after the last step.
    """
    w = get_werklab(api, key, werklab_id)
    if to_status == "cancelled":
        return set_status(api, key, werklab_id, "cancelled")
    assert to_status in STATUS_ORDER, to_status
    here, there = STATUS_ORDER.index(w["status"]), STATUS_ORDER.index(to_status)
    assert here <= there, f"cannot advance a werklab from {w['status']} back to {to_status}"
    for status in STATUS_ORDER[here + 1:there + 1]:
        if status == "planned":
            _prepare_planned(api, key, w)
        elif status == "running":
            _prepare_running(api, key, w)
        w = set_status(api, key, werklab_id, status)
    return w

"""Webhook subscriptions (issue 11): made, read, changed and deleted by administrators; the
signing secret shown only when made or rotated; bad bodies refused and nothing stored."""

import base64
import datetime
import re
import uuid

import pytest

from conftest import wait_for_the_horizon
from domain import make_initiative
from wlclient import TIMESTAMP_RE, assert_problem, assert_status, describe

PATH = "/v1/webhook-subscriptions"
SECRET_RE = re.compile(r"^whsec_([A-Za-z0-9+/]{43}=)$")
# The session's werklabd allows plain http to loopback only (conftest) and sends nothing: no
# URL here is ever contacted (port 9 is discard's, closed on loopback), and every subscription
# made here is deleted when the module ends, so that no later sender tries it.
RECEIVER = "http://127.0.0.1:9/hooks/werklab"
MADE = []
FIELDS = {"id", "url", "events", "description", "enabled", "as", "municipalities", "position",
          "backlog",
          "lastSuccessAt", "lastFailureAt", "lastError", "nextAttemptAt", "disabledReason",
          "previousSecretUntil", "version", "createdAt", "updatedAt"}


def body_of(**fields):
    """A valid body with fields changed; a field given as None is left out."""
    body = {"url": RECEIVER, "events": ["werklab.*"], "as": "staff"}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def create(api, keys, **fields):
    r = api.post(PATH, body_of(**fields), key=keys.admin)
    if r.status == 201:
        MADE.append(r.json["id"])
    return r


@pytest.fixture(scope="module", autouse=True)
def delete_what_was_made(api, keys):
    yield
    for sid in MADE:
        api.delete(f"{PATH}/{sid}", key=keys.admin)


def made(api, keys, **fields):
    r = create(api, keys, **fields)
    return assert_status(r, 201)


def read(api, keys, sid):
    return assert_status(api.get(f"{PATH}/{sid}", key=keys.admin), 200)


def count(api, keys):
    return len(api.list_all(PATH, keys.admin)[0])


def test_made_with_a_secret_shown_once(api, keys):
    r = create(api, keys, description="CRM")
    got = assert_status(r, 201)
    assert set(got) == FIELDS | {"secret"}, got
    assert SECRET_RE.match(got["secret"]), got["secret"]
    assert len(base64.b64decode(SECRET_RE.match(got["secret"]).group(1))) == 32
    assert r.header("Location") == f"{PATH}/{got['id']}", describe(r)
    assert got["enabled"] is True and got["as"] == "staff" and got["municipalities"] is None
    assert got["events"] == ["werklab.*"] and got["description"] == "CRM"
    assert got["backlog"] == 0 and got["lastSuccessAt"] is None and got["disabledReason"] is None
    assert TIMESTAMP_RE.match(got["createdAt"])
    again = read(api, keys, got["id"])
    assert "secret" not in again and set(again) == FIELDS, again
    listed = {s["id"]: s for s in api.list_all(PATH, keys.admin)[0]}
    assert "secret" not in listed[got["id"]]
    assert made(api, keys)["secret"] != got["secret"]


def test_rotating_gives_a_new_secret_and_keeps_the_old_a_day(api, keys):
    sub = made(api, keys)
    r = api.post(f"{PATH}/{sub['id']}/rotate-secret", key=keys.admin)
    rotated = assert_status(r, 200)
    assert SECRET_RE.match(rotated["secret"]) and rotated["secret"] != sub["secret"]
    until = datetime.datetime.fromisoformat(rotated["previousSecretUntil"].replace("Z", "+00:00"))
    left = until - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(hours=23, minutes=55) < left <= datetime.timedelta(hours=24), left
    assert rotated["version"] == sub["version"] + 1
    assert read(api, keys, sub["id"])["previousSecretUntil"] == rotated["previousSecretUntil"]
    # stale If-Match: nothing rotated
    r = api.post(f"{PATH}/{sub['id']}/rotate-secret", key=keys.admin,
                 headers={"If-Match": f'"{sub["version"]}"'})
    assert_problem(r, 412)
    assert read(api, keys, sub["id"])["version"] == rotated["version"]
    assert_problem(api.post(f"{PATH}/{uuid.uuid4()}/rotate-secret", key=keys.admin), 404)
    # an action without a body: one given is refused, and nothing rotates
    r = api.post(f"{PATH}/{sub['id']}/rotate-secret", {"secret": "whsec_mine"}, key=keys.admin)
    assert_problem(r, 400)
    assert read(api, keys, sub["id"])["version"] == rotated["version"]


@pytest.mark.parametrize("role", ["staff", "partner", None])
def test_for_administrators_only(api, keys, role):
    sub = made(api, keys)
    status = 401 if role is None else 403
    assert_problem(api.get(PATH, key=keys[role]), status)
    assert_problem(api.get(f"{PATH}/{sub['id']}", key=keys[role]), status)
    assert_problem(api.post(PATH, body_of(), key=keys[role]), status)
    assert_problem(api.post(f"{PATH}/{sub['id']}/rotate-secret", key=keys[role]), status)
    assert_problem(api.get(f"{PATH}/{sub['id']}/deliveries", key=keys[role]), status)
    assert_problem(api.delete(f"{PATH}/{sub['id']}", key=keys[role]), status)


BAD = {
    "plain http": ({"url": "http://receiver.example.nl/hooks"}, "url"),
    "loopback https": ({"url": "https://127.0.0.2/hooks"}, "url"),
    "private https": ({"url": "https://10.0.0.1/hooks"}, "url"),
    "metadata": ({"url": "https://169.254.169.254/latest"}, "url"),
    "mapped": ({"url": "https://[::ffff:10.0.0.1]/hooks"}, "url"),
    "credentials": ({"url": "https://user:pw@receiver.example.nl/hooks"}, "url"),
    "not a url": ({"url": "receiver"}, "url"),
    "ftp": ({"url": "ftp://receiver.example.nl/hooks"}, "url"),
    "empty url": ({"url": ""}, "url"),
    "long url": ({"url": "https://receiver.example.nl/" + "a" * 2000}, "url"),
    "no events": ({"events": []}, "events"),
    "unknown event": ({"events": ["werklab.exploded"]}, "events"),
    "unknown type": ({"events": ["apikey.created"]}, "events"),
    "event not text": ({"events": [7]}, "events"),
    "events not a list": ({"events": "werklab.*"}, "events"),
    "view": ({"as": "guest"}, "as"),
    "no view": ({"as": None}, "as"),
    "codes for staff": ({"municipalities": ["GM0297"]}, "municipalities"),
    "bad code": ({"as": "partner", "municipalities": ["0297"]}, "municipalities"),
    # a code of the tests' pool, which no test will make (fresh_code)
    "unknown code": ({"as": "partner", "municipalities": ["fresh"]}, "municipalities"),
    "partner inquiries": ({"as": "partner", "events": ["inquiry.created"]}, "events"),
    "partner trainers": ({"as": "partner", "events": ["werklab.*", "trainer.*"]}, "events"),
    "secret given": ({"secret": "whsec_" + "A" * 44}, "secret"),
    "unknown field": ({"colour": "red"}, "colour"),
    "enabled not bool": ({"enabled": "yes"}, "enabled"),
    "description long": ({"description": "d" * 501}, "description"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_bodies_are_refused_and_store_nothing(api, keys, fresh_code, case):
    fields, name = BAD[case]
    if fields.get("municipalities") == ["fresh"]:
        fields = dict(fields, municipalities=[fresh_code])
    before = count(api, keys)
    problem = assert_problem(create(api, keys, **fields), 400)
    assert name in {p["name"] for p in problem["invalidParams"]}, problem
    assert count(api, keys) == before


def test_changed_by_merge_patch(api, keys):
    sub = made(api, keys)
    r = api.patch(f"{PATH}/{sub['id']}", {"events": ["session.created", "feedback.*"],
                                           "enabled": False, "description": None},
                  key=keys.admin, headers={"If-Match": f'"{sub["version"]}"'})
    got = assert_status(r, 200)
    assert got["events"] == ["session.created", "feedback.*"] and got["enabled"] is False
    assert got["version"] == sub["version"] + 1 and "secret" not in got
    for body, name in (({"as": "partner"}, "as"), ({"url": "http://10.0.0.1/"}, "url"),
                       ({"municipalities": ["GM0297"]}, "municipalities")):
        assert_problem(api.patch(f"{PATH}/{sub['id']}", body, key=keys.admin), 400)
    assert read(api, keys, sub["id"])["version"] == got["version"]


def test_backlog_counts_what_the_view_selects(api, keys, cluster, new_municipality):
    inside, outside = new_municipality(), new_municipality()
    sub = made(api, keys, **{"as": "partner", "municipalities": [inside["code"]],
                             "events": ["initiative.created"]})
    assert sub["backlog"] == 0
    make_initiative(api, keys.admin, outside["id"])
    make_initiative(api, keys.admin, inside["id"])
    # The backlog counts what the feed shows: an entry once every older transaction has ended.
    wait_for_the_horizon(cluster.url)
    assert read(api, keys, sub["id"])["backlog"] == 1
    made_later = made(api, keys, **{"as": "partner", "municipalities": [inside["code"]],
                                    "events": ["initiative.*"]})
    assert made_later["backlog"] == 0  # it starts at the feed's end


def test_deliveries_and_deletion(api, keys):
    sub = made(api, keys)
    page = assert_status(api.get(f"{PATH}/{sub['id']}/deliveries", key=keys.admin), 200)
    assert page["items"] == [], page
    assert_problem(api.get(f"{PATH}/{uuid.uuid4()}/deliveries", key=keys.admin), 404)
    assert_status(api.delete(f"{PATH}/{sub['id']}", key=keys.admin), 204)
    assert_problem(api.get(f"{PATH}/{sub['id']}", key=keys.admin), 404)
    assert_problem(api.post(f"{PATH}/{sub['id']}/rotate-secret", key=keys.admin), 404)


LOOPBACK = ["http://127.0.0.1:9/hooks", "http://[::1]:9/hooks", "http://localhost:9/hooks"]


def test_loopback_only_when_allowed(api, keys, werklabd, log_dir):
    """Without WERKLAB_WEBHOOK_ALLOW_HTTP every loopback URL is refused when given; with it
    (the session's werklabd), each is taken."""
    from conftest import Daemon
    d = Daemon(werklabd, log_dir, name="webhooks-no-allow",
               env=werklabd.env(WERKLAB_WEBHOOK_ALLOW_HTTP=""))
    try:
        d.wait_ready()
        for url in LOOPBACK:
            before = count(api, keys)
            r = d.api.post(PATH, body_of(url=url), key=keys.admin)
            assert "url" in {p["name"] for p in assert_problem(r, 400)["invalidParams"]}, url
            assert count(api, keys) == before
    finally:
        assert d.terminate() == 0
    for url in LOOPBACK:
        assert made(api, keys, url=url)["url"] == url


def test_a_partner_view_cannot_be_patched_to_what_partners_do_not_read(api, keys, municipality):
    sub = made(api, keys, **{"as": "partner", "municipalities": [municipality["code"]]})
    for events in (["inquiry.*"], ["werklab.*", "trainer.created"], ["participant.updated"]):
        r = api.patch(f"{PATH}/{sub['id']}", {"events": events}, key=keys.admin)
        assert assert_problem(r, 400, {"events": "forbidden"})
    assert read(api, keys, sub["id"])["events"] == sub["events"]
    ok = api.patch(f"{PATH}/{sub['id']}", {"events": ["session.*", "feedback.created"]},
                   key=keys.admin)
    assert assert_status(ok, 200)["events"] == ["session.*", "feedback.created"]


def test_a_read_is_never_304_since_the_senders_account_moves_without_a_version(api, keys):
    sub = made(api, keys)
    r = api.get(f"{PATH}/{sub['id']}", key=keys.admin)
    assert_status(r, 200)
    etag = r.header("ETag")
    assert etag == f'"{sub["version"]}"', describe(r)
    again = api.get(f"{PATH}/{sub['id']}", key=keys.admin, headers={"If-None-Match": etag})
    assert_status(again, 200)

"""Retention: personal data is kept no longer than needed (--retain-*-days).

Each test writes old timestamps through SQL (the clock moved by the test), starts a werklabd of
its own with short periods and a prune interval of one second (a run at start, then every
second), and checks what is older is gone or anonymised, what is younger is untouched, each run
is one audit entry (action "retention", counts only; a run that found nothing has zero counts),
and the changes are in the change feed.

The session's own werklabd runs retention too, with the defaults (365, 730, 730 days): the ages
written here (20 to 200 days) lie where it never acts, so each effect is this test's daemon's.
"""

import contextlib
import re
import subprocess
import time
import uuid

import pytest

from conftest import Daemon, HeldLock, wait_for_the_horizon
from domain import advance, make_participant, make_werklab, set_status
from test_operations import find, metrics
from wlclient import assert_problem, assert_status, describe, qs

# The advisory lock retention_run() takes (migrations/0008_retention.sql): 'retain' in ASCII.
RETENTION_LOCK = 8243122654701027328
PERIODS = ["--retain-inquiries-days", "30", "--retain-participants-days", "30",
           "--retain-audit-days", "180"]
NOTHING = {"inquiries": 0, "participants": 0, "contacts": 0, "mentions": 0, "auditEntries": 0}


def psql(url, sql, check=True):
    out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                         capture_output=True, text=True, timeout=60)
    if check:
        assert out.returncode == 0, f"psql failed: {out.stderr}"
        return out.stdout.strip()
    return out


def db_now(url):
    return psql(url, "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")


def letters():
    return "".join(chr(ord("a") + int(c, 16) % 26) for c in uuid.uuid4().hex[:10])


@contextlib.contextmanager
def retention_daemon(werklabd, log_dir, extra=PERIODS):
    d = Daemon(werklabd, log_dir, name="retention", threads=2,
               extra_args=["--prune-interval", "1", "--key-rate-limit", "0", *extra])
    try:
        d.wait_ready()
        yield d
    finally:
        d.terminate(timeout=15)


def retention_entries(api, admin, since):
    items, _ = api.list_all("/v1/audit-log", admin, {"action": "retention", "from": since})
    return items


def effects(entries):
    """The counts of the runs that changed something (every run is audited, most find nothing)."""
    return [c for c in map(counts, entries) if c != NOTHING]


def wait_run(api, admin, since, timeout=60, runs=1):
    """The retention entries written since `since`, once `runs` of them changed something."""
    deadline = time.monotonic() + timeout
    while True:
        found = retention_entries(api, admin, since)
        if len(effects(found)) >= runs or time.monotonic() > deadline:
            assert len(effects(found)) >= runs, f"no retention run changed anything in {timeout} s"
            return found
        time.sleep(0.1)


def counts(entry):
    assert entry["keyId"] is None and entry["resourceId"] is None and entry["requestId"] is None, entry
    assert entry["action"] == "retention" and entry["status"] == 200, entry
    assert re.fullmatch(r"(\w+=\d+)( \w+=\d+)*", entry["resource"]), entry
    return {k: int(v) for k, v in (pair.split("=") for pair in entry["resource"].split())}


def settle_runs():
    """Long enough for two more runs (one a second), if any were to change something again."""
    time.sleep(2.5)


def end_position(api, key):
    url = "/v1/changes?limit=1000"
    while True:
        page = assert_status(api.get(url, key=key), 200)
        url = page["next"]
        if not page["items"]:
            return url


def changes_since(api, key, url, database):
    """Every entry after the position in url, once every entry committed before the call can be
    read (wait_for_the_horizon)."""
    wait_for_the_horizon(database)
    items = []
    while True:
        page = assert_status(api.get(url, key=key), 200)
        items += page["items"]
        url = page["next"]
        if not page["items"]:
            return items


def insert_inquiry(url, age_days, changed_days=None, status="new", werklab_id=None):
    """An inquiry created age_days ago and last changed changed_days ago (default: then)."""
    changed_days = age_days if changed_days is None else changed_days
    werklab = f"'{werklab_id}'" if werklab_id else "NULL"
    return psql(url, "INSERT INTO inquiries (municipality_name, contact_name, email, phone, message, "
                     "status, werklab_id, created_at, updated_at) VALUES ('Zaltbommel', "
                     f"'Anne de Vries', 'anne-{uuid.uuid4().hex[:8]}@zaltbommel.nl', '+31 6 1234 5678', "
                     f"'Graag een werklab', '{status}', {werklab}, "
                     f"now() - interval '{age_days} days', now() - interval '{changed_days} days') "
                     "RETURNING id").splitlines()[0]


# ------------------------------------------------------------------ inquiries


def test_inquiries_that_never_became_a_werklab_are_deleted_after_the_period(
        api, keys, cluster, werklabd, log_dir, municipality):
    url = cluster.url
    werklab = make_werklab(api, keys.staff, municipality["id"], status="intake")
    old = [insert_inquiry(url, 40, status=s) for s in ("new", "contacted", "closed")]
    kept = {
        "younger": insert_inquiry(url, 20),
        "changed lately": insert_inquiry(url, 400, changed_days=20, status="contacted"),
        "became a werklab": insert_inquiry(url, 40, status="converted", werklab_id=werklab["id"]),
    }
    before = {i: assert_status(api.get(f"/v1/inquiries/{i}", key=keys.staff), 200)
              for i in kept.values()}
    position = end_position(api, keys.staff)
    since = db_now(url)

    with retention_daemon(werklabd, log_dir):
        entries = wait_run(api, keys.admin, since)
        for i in old:
            assert_problem(api.get(f"/v1/inquiries/{i}", key=keys.staff), 404)
        for why, i in kept.items():
            r = api.get(f"/v1/inquiries/{i}", key=keys.staff)
            assert r.status == 200 and r.json == before[i], f"{why}: {describe(r)}"
        settle_runs()
        entries = retention_entries(api, keys.admin, since)

    assert effects(entries) == [dict(NOTHING, inquiries=3)], entries
    # Deleted as any delete is: a tombstone in the feed, and nothing for what was kept.
    feed = [(e["type"], e["id"], e["op"]) for e in changes_since(api, keys.staff, position, url)
            if e["id"] in old or e["id"] in kept.values()]
    assert sorted(feed) == sorted(("inquiry", i, "deleted") for i in old), feed


# ------------------------------------------------------------------ participants


def test_the_people_of_a_werklab_closed_long_ago_are_anonymised_counts_and_ratings_stay(
        api, keys, cluster, werklabd, log_dir, municipality):
    url, staff = cluster.url, keys.staff
    name, contact = f"Annelies {letters().capitalize()}", f"Bram {letters().capitalize()}"
    email = f"annelies.{uuid.uuid4().hex[:8]}@zaltbommel.nl"

    # A werklab completed 40 days ago: a named participant among ten, who gave feedback with a
    # rating and is named in the werklab's shared vision; it came from an inquiry whose contact
    # person signed its message.
    old = make_werklab(api, staff, municipality["id"], status="intake")
    person = make_participant(api, staff, old["id"], name=name, email=email, jobTitle="adviseur",
                              department="Wmo")
    advance(api, staff, old["id"], "running")
    assert_status(api.patch(f"/v1/werklabs/{old['id']}",
                            {"sharedVision": f"Met dank aan {name} voor de ideeën."}, key=staff), 200)
    set_status(api, staff, old["id"], "completed")
    feedback = assert_status(api.post("/v1/feedback", {
        "werklabId": old["id"], "kind": "evaluation", "participantId": person["id"], "rating": 4,
        "body": f"{name}: een leerzame reeks bijeenkomsten."}, key=staff), 201)
    inquiry = assert_status(api.post("/v1/inquiries", {
        "municipalityCode": municipality["code"], "contactName": contact,
        "email": f"bram.{uuid.uuid4().hex[:8]}@zaltbommel.nl", "phone": "+31 6 8765 4321",
        "message": f"Wij willen graag een werklab. Groet, {contact}"}, key=staff), 201)
    assert_status(api.patch(f"/v1/inquiries/{inquiry['id']}",
                            {"status": "converted", "werklabId": old["id"]}, key=staff), 200)
    psql(url, f"UPDATE werklabs SET closed_at = now() - interval '40 days' WHERE id = '{old['id']}'")

    # Younger: a werklab cancelled 20 days ago, and the same person in a werklab still open.
    young = make_werklab(api, staff, municipality["id"], status="intake")
    young_person = make_participant(api, staff, young["id"], jobTitle="verbinder")
    set_status(api, staff, young["id"], "cancelled")
    psql(url, f"UPDATE werklabs SET closed_at = now() - interval '20 days' WHERE id = '{young['id']}'")
    still_open = make_werklab(api, staff, municipality["id"], status="intake")
    same_person = make_participant(api, staff, still_open["id"], name=name, email=email,
                                   jobTitle="adviseur")

    def participants(werklab):
        items, _ = api.list_all(f"/v1/werklabs/{werklab['id']}/participants", staff)
        return items

    old_participants = participants(old)
    assert len(old_participants) == 10
    untouched = {"young": participants(young), "open": participants(still_open),
                 "werklab": assert_status(api.get(f"/v1/werklabs/{young['id']}", key=staff), 200)}
    stats_path = qs("/v1/stats", year=2025, province=municipality["province"])
    stats = assert_status(api.get(stats_path, key=keys.partner), 200)
    position = end_position(api, staff)
    since = db_now(url)

    with retention_daemon(werklabd, log_dir):
        entries = wait_run(api, keys.admin, since)
        settle_runs()
        entries = retention_entries(api, keys.admin, since)

    # One mention of the participant in the feedback, one in the shared vision, one of the
    # contact in the inquiry's message.
    assert effects(entries) == [dict(NOTHING, participants=10, contacts=1, mentions=3)], entries

    after = participants(old)
    assert [p["id"] for p in after] == [p["id"] for p in old_participants]
    for p in after:
        assert p["name"] == "[erased]" and p["email"] == f"erased-{p['id']}@erased.invalid", p
        assert p["jobTitle"] is None, p
    assert [p.get("department") for p in after] == [p.get("department") for p in old_participants]
    w = assert_status(api.get(f"/v1/werklabs/{old['id']}", key=staff), 200)
    assert w["participantCount"] == 10 and w["status"] == "completed", w
    assert w["sharedVision"] == "Met dank aan [erased] voor de ideeën.", w
    f = assert_status(api.get(f"/v1/feedback/{feedback['id']}", key=staff), 200)
    assert f["rating"] == 4 and f["participantId"] == person["id"], f
    assert f["body"] == "[erased]: een leerzame reeks bijeenkomsten.", f
    i = assert_status(api.get(f"/v1/inquiries/{inquiry['id']}", key=staff), 200)
    assert (i["contactName"], i["email"], i["phone"]) == (
        "[erased]", f"erased-{inquiry['id']}@erased.invalid", None), i
    assert i["message"] == "Wij willen graag een werklab. Groet, [erased]", i
    assert i["status"] == "converted" and i["werklabId"] == old["id"], i
    # The figures are the same; nothing younger, and no one elsewhere, is touched.
    assert assert_status(api.get(stats_path, key=keys.partner), 200) == stats
    assert participants(young) == untouched["young"]
    assert participants(still_open) == untouched["open"]
    assert participants(still_open)[0]["name"] == name and same_person["email"] == email
    assert assert_status(api.get(f"/v1/werklabs/{young['id']}", key=staff), 200) == untouched["werklab"]
    # Every change is in the feed, as any write's.
    feed = changes_since(api, staff, position, url)
    updated = {e["id"] for e in feed if e["op"] == "updated"}
    assert {p["id"] for p in old_participants} | {old["id"], feedback["id"], inquiry["id"]} <= updated
    assert not updated & {young_person["id"], same_person["id"], young["id"], still_open["id"]}
    assert not [e for e in feed if e["op"] == "deleted" and e["type"] != "inquiry"], feed


def test_a_werklab_the_erasure_cannot_store_is_left_as_it_was_and_tried_again(
        api, keys, cluster, werklabd, log_dir, municipality):
    url, staff = cluster.url, keys.staff
    # "[erased]" is longer than this name: in a feedback body of the longest length allowed, the
    # erasure would break its CHECK.
    name = f"Ab {letters()[:3]}"
    stuck = make_werklab(api, staff, municipality["id"], status="intake")
    stuck_person = make_participant(api, staff, stuck["id"], name=name)
    feedback = assert_status(api.post("/v1/feedback", {
        "werklabId": stuck["id"], "kind": "evaluation", "participantId": stuck_person["id"],
        "rating": 5, "body": f"{name} " + "x" * (4000 - len(name) - 1)}, key=staff), 201)
    done = make_werklab(api, staff, municipality["id"], status="intake")
    make_participant(api, staff, done["id"])
    for w in (stuck, done):
        set_status(api, staff, w["id"], "cancelled")
        psql(url, f"UPDATE werklabs SET closed_at = now() - interval '40 days' WHERE id = '{w['id']}'")
    since = db_now(url)

    with retention_daemon(werklabd, log_dir) as d:
        first = wait_run(api, keys.admin, since)
        assert d.wait_log(lambda l: "could not be anonymised" in l.get("message", ""), timeout=60)
        assert effects(first) == [dict(NOTHING, participants=1)], first
        r = assert_status(api.get(f"/v1/werklabs/{stuck['id']}/participants/{stuck_person['id']}",
                                  key=staff), 200)
        assert r == stuck_person, r
        # Mended, it is anonymised by the next run.
        assert_status(api.patch(f"/v1/feedback/{feedback['id']}", {"body": f"{name} was er."},
                                key=staff), 200)
        entries = wait_run(api, keys.admin, since, runs=2)
    assert effects(entries) == [dict(NOTHING, participants=1),
                                dict(NOTHING, participants=1, mentions=1)], entries
    f = assert_status(api.get(f"/v1/feedback/{feedback['id']}", key=staff), 200)
    assert f["body"] == "[erased] was er." and f["rating"] == 5, f


# ------------------------------------------------------------------ audit entries


def insert_audit(url, marker, age_days, n):
    psql(url, "INSERT INTO audit_log (at, action, resource, status) SELECT "
              f"now() - interval '{age_days} days', 'read', '{marker}', 200 FROM generate_series(1, {n})")


def audit_ages(url, marker):
    return psql(url, "SELECT coalesce(string_agg(extract(day FROM now() - at)::text, ',' ORDER BY at), '') "
                     f"FROM audit_log WHERE resource = '{marker}'")


def test_audit_entries_older_than_the_period_are_deleted(api, keys, cluster, werklabd, log_dir):
    url, marker = cluster.url, f"/test/retention-{uuid.uuid4().hex[:8]}"
    insert_audit(url, marker, 200, 3)
    insert_audit(url, marker, 170, 2)
    since = db_now(url)
    with retention_daemon(werklabd, log_dir):
        entries = wait_run(api, keys.admin, since)
        settle_runs()
        entries = retention_entries(api, keys.admin, since)
    assert effects(entries) == [dict(NOTHING, auditEntries=3)], entries
    assert audit_ages(url, marker) == "170,170"


def test_the_server_role_can_delete_audit_entries_only_through_retention(api, keys, cluster):
    url, marker = cluster.url, f"/test/retention-{uuid.uuid4().hex[:8]}"
    assert psql(url, "SELECT current_user") == "werklab"
    insert_audit(url, marker, 200, 1)
    insert_audit(url, marker, 170, 1)
    insert_audit(url, marker, 0, 1)
    for age in (200, 170, 0):
        # Not directly, however old the entry.
        out = psql(url, f"DELETE FROM audit_log WHERE resource = '{marker}' "
                        f"AND at < now() - interval '{age - 1} days'", check=False)
        assert out.returncode != 0 and "permission denied" in out.stderr, (age, out.stderr)
    # Not through the function with a period below the floor.
    for days in (0, 1, 179, -1):
        out = psql(url, f"SELECT audit_log_expire({days})", check=False)
        assert out.returncode != 0 and "kept at least 180 days" in out.stderr, (days, out.stderr)
    assert audit_ages(url, marker) == "200,170,0"
    # Through the function: only what is older than the period, and the privilege is gone after.
    assert int(psql(url, "SELECT audit_log_expire(190)")) >= 1
    assert audit_ages(url, marker) == "170,0"
    assert psql(url, "SELECT has_table_privilege('audit_log', 'DELETE')") == "f"
    # Even an owner that grants itself DELETE cannot remove an entry younger than the floor
    # without dropping the trigger.
    out = psql(url, "BEGIN; GRANT DELETE ON audit_log TO CURRENT_USER; "
                    f"DELETE FROM audit_log WHERE resource = '{marker}'; COMMIT", check=False)
    assert out.returncode != 0 and "kept at least 180 days" in out.stderr, out.stderr
    assert audit_ages(url, marker) == "170,0"
    assert psql(url, "SELECT has_table_privilege('audit_log', 'DELETE')") == "f"


# ------------------------------------------------------------------ one instance at a time


def test_a_run_that_finds_nothing_is_audited_too(api, keys, cluster, werklabd, log_dir):
    """The log shows the periods were applied, not only what they removed."""
    since = db_now(cluster.url)
    with retention_daemon(werklabd, log_dir) as d:
        # This daemon's run (the session's werklabd runs retention too): it says so once its run
        # and entry are committed.
        said = " ".join(f"{k}=0" for k in NOTHING)
        assert d.wait_log(lambda l: l.get("message") == f"retention: {said}", timeout=60), \
            d.log_text()[-3000:]
        assert any(counts(e) == NOTHING for e in retention_entries(api, keys.admin, since))


def test_a_run_waits_for_no_one_and_does_nothing_while_another_holds_the_lock(
        api, keys, cluster, werklabd, log_dir):
    url = cluster.url
    inquiry = insert_inquiry(url, 40)
    lock = HeldLock(url, f"SELECT pg_advisory_lock({RETENTION_LOCK});")
    try:
        # Only now: every instance runs retention (the session's werklabd every 60 s, and each one
        # once more as it stops), so a run that ended before the lock was taken may be anyone's.
        # From here on no instance's run can be committed.
        since = db_now(url)
        with retention_daemon(werklabd, log_dir) as d:
            # It skips its turns (server/jobs.h), counted in /metrics and not said in the log.
            deadline = time.monotonic() + 60
            while not sum(find(metrics(d.api, keys)[1], "werklabd_job_runs_total",
                               job="retention", outcome="skipped")):
                assert time.monotonic() < deadline, d.log_text()[-3000:]
                time.sleep(0.1)
            assert not [l for l in d.log_lines() if "retention" in l.get("message", "")], \
                d.log_text()[-3000:]
            assert_status(api.get(f"/v1/inquiries/{inquiry}", key=keys.staff), 200)
            assert retention_entries(api, keys.admin, since) == []
            lock.release()
            entries = wait_run(api, keys.admin, since)
            assert_problem(api.get(f"/v1/inquiries/{inquiry}", key=keys.staff), 404)
    finally:
        lock.release()
    assert effects(entries) == [dict(NOTHING, inquiries=1)], entries


# ------------------------------------------------------------------ configuration


def test_help_states_the_periods_and_their_defaults(werklabd):
    out = werklabd.run("--help")
    assert out.returncode == 0, out.stderr
    for flag, env, default in [("--retain-inquiries-days", "WERKLAB_RETAIN_INQUIRIES_DAYS", 365),
                               ("--retain-participants-days", "WERKLAB_RETAIN_PARTICIPANTS_DAYS", 730),
                               ("--retain-audit-days", "WERKLAB_RETAIN_AUDIT_DAYS", 730)]:
        line = out.stdout.index(flag)
        assert f"{env}, default {default}" in out.stdout[line:line + 400], out.stdout


@pytest.mark.parametrize("env, value, message", [
    ("WERKLAB_RETAIN_AUDIT_DAYS", "0", "WERKLAB_RETAIN_AUDIT_DAYS: '0' is not a whole number from 180 to 36500"),
    ("WERKLAB_RETAIN_AUDIT_DAYS", "179", "WERKLAB_RETAIN_AUDIT_DAYS: '179' is not a whole number from 180 to 36500"),
    ("WERKLAB_RETAIN_INQUIRIES_DAYS", "29", "WERKLAB_RETAIN_INQUIRIES_DAYS: '29' is not a whole number from 30 to 36500"),
    ("WERKLAB_RETAIN_PARTICIPANTS_DAYS", "-730", "WERKLAB_RETAIN_PARTICIPANTS_DAYS: '-730' is not a whole number from 30 to 36500"),
    ("WERKLAB_RETAIN_PARTICIPANTS_DAYS", "2 years", "WERKLAB_RETAIN_PARTICIPANTS_DAYS: '2 years' is not a whole number from 30 to 36500"),
    ("WERKLAB_RETAIN_INQUIRIES_DAYS", "36501", "WERKLAB_RETAIN_INQUIRIES_DAYS: '36501' is not a whole number from 30 to 36500"),
])
def test_a_period_below_its_floor_or_not_a_number_stops_the_start(werklabd, env, value, message):
    out = werklabd.run("serve", "--listen", "127.0.0.1:1", env=werklabd.env(**{env: value}), timeout=30)
    assert out.returncode == 2 and out.stderr.strip() == f"werklabd: {message}", (out.returncode, out.stderr)


def test_a_flag_below_its_floor_stops_the_start(werklabd):
    out = werklabd.run("serve", "--retain-audit-days=30", timeout=30)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == "werklabd: retain-audit-days: '30' is not a whole number from 180 to 36500"

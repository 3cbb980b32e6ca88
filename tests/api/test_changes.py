"""The change feed: GET /v1/changes?after=<position>&limit=N.

Every create, update and delete of every resource enters the feed in the transaction of the
change; a reader follows `next` (always present, also on an empty page) and must never miss an
entry nor see one twice, however many writers there are: entries of a transaction appear only
once every older transaction has ended. Deletes are tombstones (version = last + 1). Partners see
only some types, and a partner key limited to municipalities only their entries. A position
older than the oldest entry kept answers 410.

Some tests hold a transaction open with psql on the test cluster (the `cluster` fixture's URL)
to show that later entries wait for it.
"""

import random
import subprocess
import threading
import time
import uuid

import pytest

from conftest import Daemon, psql, wait_for_the_horizon
from domain import make_initiative, make_participant, make_session, make_trainer, make_werklab
from wlclient import TIMESTAMP_RE, UUID_RE, assert_problem, assert_status, describe

OPS = {"created", "updated", "deleted"}
PARTNER_TYPES = {"municipality", "initiative", "werklab", "session", "feedback"}


# ------------------------------------------------------------------ helpers


class HeldTransaction:
    """A psql session fed statement by statement, so that a transaction can stay open."""

    def __init__(self, url):
        self.proc = subprocess.Popen(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)

    def run(self, sql):
        marker = f"__done_{uuid.uuid4().hex}__"
        self.proc.stdin.write(sql + "\n\\echo " + marker + "\n")
        self.proc.stdin.flush()
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"psql ended: {self.proc.stderr.read()}")
            if line.strip() == marker:
                return lines
            lines.append(line.rstrip("\n"))

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def read(api, key, url):
    r = api.get(url, key=key)
    assert r.status == 200, describe(r)
    return r.json


def end_position(api, key):
    """The `next` of the feed's last page: a position after every entry there is now."""
    url = "/v1/changes?limit=1000"
    while True:
        page = read(api, key, url)
        url = page["next"]
        if not page["items"]:
            return url


@pytest.fixture(autouse=True)
def _feed_database(cluster):
    """The test cluster's URL, for drain() to wait for the feed's horizon."""
    global FEED_DATABASE
    FEED_DATABASE = cluster.url
    yield


FEED_DATABASE = None


def drain(api, key, url, limit=None, settled=True):
    """Every entry after the position in url; returns (items, next). settled: first wait until no
    transaction begun before the call is open (wait_for_the_horizon), so that every entry
    committed before it is there to read: the writes a test has made and had answered, even
    while the audit writer or the key check has a transaction open."""
    if settled and FEED_DATABASE:
        wait_for_the_horizon(FEED_DATABASE)
    items = []
    for _ in range(10000):
        page = read(api, key, url)
        items += page["items"]
        url = page["next"]
        if not page["items"]:
            return items, url
    raise AssertionError("the feed does not end")


def with_limit(url, limit):
    base = url.split("&limit=")[0]
    return f"{base}&limit={limit}"


def entries_of(items, object_id):
    return [(e["type"], e["op"], e["version"]) for e in items if e["id"] == object_id]


def municipality_body(code, **fields):
    body = {"code": code, "name": f"Feedgemeente {uuid.uuid4().hex[:6]}", "province": "Utrecht"}
    body.update(fields)
    return body


# ------------------------------------------------------------------ shape


def test_shape_and_next_always_present(api, keys):
    r = api.get("/v1/changes?limit=5", key=keys.staff)
    page = assert_status(r, 200)
    assert set(page) == {"items", "next"}, describe(r)
    assert len(page["items"]) == 5, describe(r)
    for e in page["items"]:
        # (a `path` saying where the resource is read may come with it)
        assert {"seq", "type", "id", "op", "version", "at"} <= set(e) <= {
            "seq", "type", "id", "op", "version", "at", "path"}, e
        assert e.get("path", f"/v1/municipalities/{e['id']}") == f"/v1/municipalities/{e['id']}", e
        assert isinstance(e["seq"], int) and not isinstance(e["seq"], bool), e
        assert isinstance(e["version"], int) and e["version"] >= 1, e
        assert e["op"] in OPS, e
        assert UUID_RE.match(e["id"]), e
        assert TIMESTAMP_RE.match(e["at"]), e
    assert page["next"].startswith("/v1/changes?after="), describe(r)
    assert "limit=5" in page["next"], describe(r)
    # Without a position the feed starts at its beginning: the municipalities of 2025 are there
    # as created (as long as nothing has been pruned, which only the last test here does).
    assert all(e["type"] == "municipality" and e["op"] == "created" for e in page["items"]), page
    # Following next gives the following entries, never the same ones again.
    page2 = read(api, keys.staff, page["next"])
    seqs1 = {e["seq"] for e in page["items"]}
    assert not seqs1 & {e["seq"] for e in page2["items"]}, (page, page2)
    # At the end: no items, and still a next that can be polled again.
    end = end_position(api, keys.staff)
    empty = assert_status(api.get(end, key=keys.staff), 200)
    assert empty["items"] == [] and isinstance(empty["next"], str) and empty["next"], empty
    again = assert_status(api.get(empty["next"], key=keys.staff), 200)
    assert again["items"] == [] and again["next"], again
    # No key: 401; the limit default and maximum.
    assert_problem(api.get("/v1/changes"), 401)
    default = read(api, keys.admin, "/v1/changes")
    assert len(default["items"]) == 100
    assert default["next"].startswith("/v1/changes?after=") and "limit" not in default["next"], default
    big = read(api, keys.admin, "/v1/changes?limit=1000")["items"]
    assert 342 <= len(big) <= 1000, len(big)


def test_created_updated_deleted_with_tombstone(api, keys, code_pool):
    start = end_position(api, keys.staff)
    r = api.post("/v1/municipalities", municipality_body(code_pool()), key=keys.staff)
    m = assert_status(r, 201)
    assert_status(api.patch(f"/v1/municipalities/{m['id']}", {"notes": "een"}, key=keys.staff), 200)
    assert_status(api.patch(f"/v1/municipalities/{m['id']}", {"notes": "twee"}, key=keys.staff), 200)
    assert_status(api.delete(f"/v1/municipalities/{m['id']}", key=keys.staff), 204)
    items, _ = drain(api, keys.staff, start)
    assert entries_of(items, m["id"]) == [("municipality", "created", 1),
                                          ("municipality", "updated", 2),
                                          ("municipality", "updated", 3),
                                          ("municipality", "deleted", 4)], items


def test_children_change_the_werklab_too(api, keys, municipality):
    w = make_werklab(api, keys.staff, municipality["id"], status="intake")
    start = end_position(api, keys.staff)
    p = make_participant(api, keys.staff, w["id"])
    s = make_session(api, keys.staff, w["id"], 1, "2032-02-03T09:00:00Z", "2032-02-03T12:00:00Z")
    r = api.put(f"/v1/sessions/{s['id']}/attendance",
                [{"participantId": p["id"], "status": "present"}], key=keys.staff)
    assert r.status == 200, describe(r)
    items, _ = drain(api, keys.staff, start)
    assert entries_of(items, p["id"]) == [("participant", "created", 1)], items
    assert ("session", "created", 1) in entries_of(items, s["id"]), items
    assert any(t == "attendance" and op == "updated" for t, op, _ in entries_of(items, s["id"])), items
    lab = [e for e in items if e["id"] == w["id"]]
    now = assert_status(api.get(f"/v1/werklabs/{w['id']}", key=keys.staff), 200)
    # participantCount and startsOn changed: two werklab updates, the last one is the version now.
    assert [e["op"] for e in lab] == ["updated", "updated"], items
    assert lab[-1]["version"] == now["version"] == w["version"] + 2, (lab, now)


# ------------------------------------------------------------------ partners


def test_partners_see_only_their_types(api, keys, municipality):
    start = end_position(api, keys.admin)
    key = keys.staff
    i = make_initiative(api, key, municipality["id"])
    t = make_trainer(api, key)
    w = make_werklab(api, key, municipality["id"], status="intake")
    p = make_participant(api, key, w["id"])
    s = make_session(api, key, w["id"], 1, "2032-03-03T09:00:00Z", "2032-03-03T12:00:00Z",
                     kind="initiativeVisit", initiatives=[{"initiativeId": i["id"], "role": "host"}])
    assert api.put(f"/v1/sessions/{s['id']}/attendance",
                   [{"participantId": p["id"], "status": "present"}], key=key).status == 200
    f = assert_status(api.post("/v1/feedback", {"werklabId": w["id"], "sessionId": s["id"],
                                                "kind": "evaluation", "participantId": p["id"],
                                                "rating": 5, "body": "Goed."}, key=key), 201)
    q = assert_status(api.post("/v1/inquiries", {"municipalityCode": municipality["code"],
                                                 "contactName": "Piet Feed", "email": "piet@example.nl",
                                                 "message": "Graag."}, key=key), 201)
    everything, _ = drain(api, keys.admin, start)
    seen = {e["type"] for e in everything}
    assert {"initiative", "trainer", "werklab", "participant", "session", "attendance",
            "feedback", "inquiry"} <= seen, everything
    partner, _ = drain(api, keys.partner, start)
    assert {e["type"] for e in partner} <= PARTNER_TYPES, partner
    want = [e for e in everything if e["type"] in PARTNER_TYPES]
    assert [e["seq"] for e in partner] == [e["seq"] for e in want], (partner, want)
    hidden = {t["id"], p["id"], q["id"]}
    assert not [e for e in partner if e["id"] in hidden], partner
    assert any(e["id"] == f["id"] for e in partner), partner


def test_partner_limited_to_municipalities_sees_only_theirs(api, keys, new_municipality):
    inside, outside = new_municipality(), new_municipality()
    r = api.post("/v1/api-keys", {"name": "feed-partner", "role": "partner",
                                  "municipalities": [inside["code"]]}, key=keys.admin)
    limited = assert_status(r, 201)["key"]
    start = end_position(api, keys.admin)
    ids = {}
    for label, m in (("in", inside), ("out", outside)):
        i = make_initiative(api, keys.staff, m["id"])
        w = make_werklab(api, keys.staff, m["id"], status="intake")
        s = make_session(api, keys.staff, w["id"], 1, "2032-04-03T09:00:00Z", "2032-04-03T12:00:00Z")
        assert_status(api.patch(f"/v1/municipalities/{m['id']}", {"notes": label}, key=keys.staff), 200)
        ids[label] = {m["id"], i["id"], w["id"], s["id"]}
    got, nxt = drain(api, limited, start)
    assert nxt, got
    got_ids = {e["id"] for e in got}
    assert got_ids == ids["in"], (got, ids)
    assert {e["type"] for e in got} == {"municipality", "initiative", "werklab", "session"}, got


# ------------------------------------------------------------------ bad requests


@pytest.mark.parametrize("query, name", [
    ("after=abc", "after"),
    ("after=", "after"),
    ("after=MTox.AAAAAAAAAAAAAAAAAAAAAA", "after"),  # "1:1" with a wrong signature
    ("limit=0", "limit"),
    ("limit=1001", "limit"),
    ("limit=abc", "limit"),
    ("limit=-1", "limit"),
    ("since=2025-01-01T00:00:00Z", "since"),
    ("cursor=x", "cursor"),
])
def test_bad_query_is_400(api, keys, query, name):
    assert_problem(api.get(f"/v1/changes?{query}", key=keys.staff), 400, [name])


def test_tampered_position_is_400(api, keys):
    nxt = read(api, keys.staff, "/v1/changes?limit=3")["next"]
    token = nxt.split("after=")[1].split("&")[0]
    payload, sig = token.split(".", 1)
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    assert_problem(api.get(f"/v1/changes?after={flipped}.{sig}", key=keys.staff), 400, ["after"])


# ------------------------------------------------------------------ held transactions


def test_later_entries_wait_for_an_open_transaction(api, keys, cluster, new_municipality):
    held_m, api_m = new_municipality(), new_municipality()
    start = end_position(api, keys.staff)
    tx = HeldTransaction(cluster.url)
    try:
        tx.run(f"BEGIN; UPDATE municipalities SET notes = 'held open' WHERE id = '{held_m['id']}';")
        r = api.patch(f"/v1/municipalities/{api_m['id']}", {"notes": "api write"}, key=keys.staff)
        assert_status(r, 200)
        # The API write is committed, but an older transaction is still open: it must wait.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            items, _ = drain(api, keys.staff, start, settled=False)  # the open one holds it
            ids = {e["id"] for e in items}
            assert api_m["id"] not in ids, f"an entry appeared before an older transaction ended: {items}"
            assert held_m["id"] not in ids, items
            time.sleep(0.1)
        tx.run("COMMIT;")
    finally:
        tx.close()
    items, _ = drain(api, keys.staff, start)
    mine = [(e["id"], e["op"], e["version"]) for e in items if e["id"] in (held_m["id"], api_m["id"])]
    assert mine == [(held_m["id"], "updated", 2), (api_m["id"], "updated", 2)], items


def test_last_entry_of_an_object_is_its_last_committed_version(api, keys, cluster, new_municipality):
    """Order follows commits: an old transaction that changes an object after a younger one
    changed (and committed) it must not put its entry before the younger one's. A reader who
    keeps the last entry per object must end with the version the database has."""
    a, b = new_municipality(), new_municipality()
    start = end_position(api, keys.staff)
    tx = HeldTransaction(cluster.url)
    try:
        # The psql transaction begins (and takes its transaction id) first ...
        tx.run(f"BEGIN; UPDATE municipalities SET notes = 'psql 1' WHERE id = '{a['id']}';")
        # ... a younger API transaction changes b and commits ...
        assert_status(api.patch(f"/v1/municipalities/{b['id']}", {"notes": "api"}, key=keys.staff), 200)
        # ... then the old transaction changes b again and commits last.
        tx.run(f"UPDATE municipalities SET notes = 'psql 2' WHERE id = '{b['id']}'; COMMIT;")
    finally:
        tx.close()
    now = assert_status(api.get(f"/v1/municipalities/{b['id']}", key=keys.staff), 200)
    assert now["version"] == 3 and now["notes"] == "psql 2", now
    items, _ = drain(api, keys.staff, start)
    versions = [e["version"] for e in items if e["id"] == b["id"]]
    assert sorted(versions) == [2, 3], items
    assert versions == [2, 3], (
        f"the feed gives municipality {b['id']} versions in the order {versions}: a reader ends "
        f"with version {versions[-1]}, the database has {now['version']}\n{items}")


def test_the_feed_trigger_plans_its_lookup_once_a_session(cluster):
    """Every write's change-feed entry takes its transaction id from change_txid(). A LANGUAGE
    sql function whose body has a subquery is not inlined, and PostgreSQL then parses, analyses
    and plans its body on every call: on every write. PL/pgSQL keeps the plan for the session
    (migration 0014); the test above holds it to the same result."""
    language = psql(cluster.url, "SELECT l.lanname FROM pg_proc p JOIN pg_language l "
                                 "ON l.oid = p.prolang WHERE p.proname = 'change_txid'")
    assert language == "plpgsql", f"change_txid() is LANGUAGE {language}"


def test_positions_are_ordered_as_numbers_across_a_power_of_ten(api, keys, cluster, municipality):
    """Transaction ids grow: 9998, 9999, 10000, ... A feed ordered or compared as text would put
    "10000" before "9999" and jump over entries. Burn transaction ids (psql) up to just below
    the next power of ten, then write across it."""
    now = int(psql(cluster.url, "SELECT pg_current_xact_id()").strip())
    boundary = 10 ** len(str(now + 50))
    if boundary - now > 2_000_000:
        pytest.skip(f"transaction id {now} is far from a power of ten")
    burn = boundary - now - 6
    psql(cluster.url, "DO $$ BEGIN FOR i IN 1.." + str(burn) + " LOOP "
                      "PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$;")
    start = end_position(api, keys.staff)
    for n in range(12):
        assert_status(api.patch(f"/v1/municipalities/{municipality['id']}", {"notes": f"n{n}"},
                                key=keys.staff), 200)
    after = int(psql(cluster.url, "SELECT pg_current_xact_id()").strip())
    assert after > boundary, (now, boundary, after)
    want = list(range(2, 14))
    for limit in (1000, 3):
        items, _ = drain(api, keys.staff, with_limit(start, limit))
        got = [e["version"] for e in items if e["id"] == municipality["id"]]
        assert got == want, (f"limit={limit}: the feed gives versions {got} of 2..13 while "
                             f"transaction ids passed {boundary}")


# ------------------------------------------------------------------ many writers


@pytest.fixture(scope="module")
def busy(werklabd, log_dir):
    d = Daemon(werklabd, log_dir, name="feed", threads=8, extra_args=["--key-rate-limit", "0"])
    try:
        d.wait_ready()
        yield d
    finally:
        d.terminate(timeout=10)


WRITERS = 5
WRITE_SECONDS = 10


class Writer(threading.Thread):
    """Creates, changes and deletes municipalities, initiatives, werklabs, participants and
    sessions (with a host initiative: several statements in one transaction, each touching the
    werklab) at random, on a fresh connection per request."""

    def __init__(self, n, api, key, world, codes, deadline):
        super().__init__(daemon=True)
        self.n, self.api, self.key, self.world, self.deadline = n, api, key, world, deadline
        self.free_codes = list(codes)
        self.munis, self.inits, self.labs, self.parts, self.sessions = [], [], [], [], []
        self.touched = {}  # (type, id) -> path to GET it
        self.error = None
        self.ops = 0
        self.counter = 0
        self.made_sessions = 0
        self.rng = random.Random(n)

    def expect(self, r, *statuses):
        if r.status not in statuses:
            raise AssertionError(f"writer {self.n}: expected {statuses}\n{describe(r)}")
        return r.json

    def touch(self, kind, oid, path):
        self.touched[(kind, oid)] = path

    def touch_lab(self, lab_id):
        self.touch("werklab", lab_id, f"/v1/werklabs/{lab_id}")

    def run(self):
        ops = [self.muni_create, self.muni_patch, self.muni_delete, self.init_create,
               self.init_patch, self.init_delete, self.lab_create, self.lab_patch, self.lab_delete,
               self.part_create, self.part_create, self.part_patch, self.part_delete,
               self.session_create, self.session_create, self.session_patch, self.session_delete]
        try:
            while time.monotonic() < self.deadline:
                self.rng.choice(ops)()
                self.ops += 1
        except BaseException as e:  # reported by the test
            self.error = e

    # municipalities
    def muni_create(self):
        if not self.free_codes:
            return
        code = self.free_codes.pop()
        m = self.expect(self.api.post("/v1/municipalities", municipality_body(code), key=self.key), 201)
        self.munis.append((m["id"], code))
        self.touch("municipality", m["id"], f"/v1/municipalities/{m['id']}")

    def muni_patch(self):
        choices = [mid for mid, _ in self.munis] + [m["id"] for m in self.world["munis"]]
        mid = self.rng.choice(choices)
        self.expect(self.api.patch(f"/v1/municipalities/{mid}", {"notes": uuid.uuid4().hex},
                                   key=self.key), 200)
        self.touch("municipality", mid, f"/v1/municipalities/{mid}")

    def muni_delete(self):
        if not self.munis:
            return
        mid, code = self.munis.pop(self.rng.randrange(len(self.munis)))
        self.expect(self.api.delete(f"/v1/municipalities/{mid}", key=self.key), 204)
        self.free_codes.append(code)

    # initiatives
    def init_create(self):
        m = self.rng.choice(self.world["munis"])
        i = self.expect(self.api.post("/v1/initiatives", {
            "municipalityId": m["id"], "name": f"Initiatief {uuid.uuid4().hex[:6]}",
            "kind": "residentInitiative"}, key=self.key), 201)
        self.inits.append(i["id"])
        self.touch("initiative", i["id"], f"/v1/initiatives/{i['id']}")

    def init_patch(self):
        iid = self.rng.choice(self.inits + [h["id"] for h in self.world["hosts"]])
        self.expect(self.api.patch(f"/v1/initiatives/{iid}", {"description": uuid.uuid4().hex},
                                   key=self.key), 200)
        self.touch("initiative", iid, f"/v1/initiatives/{iid}")

    def init_delete(self):
        if not self.inits:
            return
        iid = self.inits.pop(self.rng.randrange(len(self.inits)))
        self.expect(self.api.delete(f"/v1/initiatives/{iid}", key=self.key), 204)

    # werklabs
    def lab_create(self):
        m = self.rng.choice(self.world["munis"])
        w = self.expect(self.api.post("/v1/werklabs", {"municipalityId": m["id"],
                                                       "title": f"Werklab {uuid.uuid4().hex[:6]}"},
                                      key=self.key), 201)
        self.labs.append(w["id"])
        self.touch_lab(w["id"])

    def lab_patch(self):
        wid = self.rng.choice(self.labs + [w["id"] for w in self.world["labs"]])
        self.expect(self.api.patch(f"/v1/werklabs/{wid}", {"title": f"Werklab {uuid.uuid4().hex[:6]}"},
                                   key=self.key), 200)
        self.touch_lab(wid)

    def lab_delete(self):
        if not self.labs:
            return
        wid = self.labs.pop(self.rng.randrange(len(self.labs)))
        self.expect(self.api.delete(f"/v1/werklabs/{wid}", key=self.key), 204)

    # participants (each one changes its werklab's participantCount)
    def part_create(self):
        w = self.rng.choice(self.world["labs"])
        tag = uuid.uuid4().hex[:8]
        r = self.api.post(f"/v1/werklabs/{w['id']}/participants",
                          {"name": f"Deelnemer {tag}", "email": f"d-{tag}@example.nl"}, key=self.key)
        p = self.expect(r, 201, 409)
        if r.status == 201:
            path = f"/v1/werklabs/{w['id']}/participants/{p['id']}"
            self.parts.append(path)
            self.touch("participant", p["id"], path)
            self.touch_lab(w["id"])
        else:
            self.part_delete()

    def part_patch(self):
        if not self.parts:
            return
        path = self.rng.choice(self.parts)
        self.expect(self.api.patch(path, {"jobTitle": f"Adviseur {self.counter}"}, key=self.key), 200)
        self.counter += 1

    def part_delete(self):
        if not self.parts:
            return
        path = self.parts.pop(self.rng.randrange(len(self.parts)))
        self.expect(self.api.delete(path, key=self.key), 204)
        self.touch_lab(path.split("/")[3])

    # sessions: session, its host initiative and the werklab's dates in one transaction
    def slot(self, number, minutes=0):
        base = time.gmtime(1956528000 + number * 7200 + minutes * 60)  # 2032 and on
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", base)

    def session_create(self):
        k = self.rng.randrange(len(self.world["labs"]))
        w, host = self.world["labs"][k], self.world["hosts"][k]
        if self.made_sessions >= 199:  # sequence is at most 1000: 199 numbers per writer
            return
        self.made_sessions += 1
        number = 1 + self.n * 199 + self.made_sessions
        s = self.expect(self.api.post("/v1/sessions", {
            "werklabId": w["id"], "sequence": number, "kind": "initiativeVisit",
            "title": f"Bezoek {number}", "startsAt": self.slot(number), "endsAt": self.slot(number, 60),
            "initiatives": [{"initiativeId": host["id"], "role": "host"}]}, key=self.key), 201)
        self.sessions.append((s["id"], number, w["id"]))
        self.touch("session", s["id"], f"/v1/sessions/{s['id']}")
        self.touch_lab(w["id"])

    def session_patch(self):
        if not self.sessions:
            return
        sid, number, wid = self.rng.choice(self.sessions)
        shift = self.rng.randrange(0, 50)
        self.expect(self.api.patch(f"/v1/sessions/{sid}", {"startsAt": self.slot(number, shift),
                                                           "endsAt": self.slot(number, shift + 60)},
                                   key=self.key), 200)

    def session_delete(self):
        if not self.sessions:
            return
        sid, _, wid = self.sessions.pop(self.rng.randrange(len(self.sessions)))
        self.expect(self.api.delete(f"/v1/sessions/{sid}", key=self.key), 204)
        self.touch_lab(wid)


def test_concurrent_writers_a_poller_misses_nothing_and_sees_nothing_twice(busy, keys, cluster,
                                                                          code_pool):
    api, key = busy.api, keys.staff
    munis = []
    for _ in range(2):
        for _ in range(20):
            r = api.post("/v1/municipalities", municipality_body(code_pool()), key=key)
            if r.status != 409:
                break
        munis.append(assert_status(r, 201))
    labs, hosts = [], []
    for k in range(4):
        m = munis[k % 2]
        labs.append(make_werklab(api, key, m["id"], status="intake", capacity={"min": 1, "max": 15}))
        hosts.append(make_initiative(api, key, m["id"]))
    world = {"munis": munis, "labs": labs, "hosts": hosts}
    codes = [[code_pool() for _ in range(8)] for _ in range(WRITERS)]
    # What the shared objects are now: the feed after `start` must begin right after this.
    before = {}
    for kind, path, objs in (("municipality", "/v1/municipalities", munis),
                             ("werklab", "/v1/werklabs", labs), ("initiative", "/v1/initiatives", hosts)):
        for o in objs:
            before[(kind, o["id"])] = assert_status(api.get(f"{path}/{o['id']}", key=key), 200)["version"]
    start = with_limit(end_position(api, key), 50)

    seen, stop, poll_error = [], threading.Event(), []
    polls = [0]

    def poll():
        url = start
        try:
            while True:
                page = read(api, key, url)
                polls[0] += 1
                seen.extend(page["items"])
                url = page["next"]
                if not page["items"]:
                    if stop.is_set():
                        return
                    time.sleep(0.01)
        except BaseException as e:
            poll_error.append(e)

    poller = threading.Thread(target=poll, daemon=True)
    began = time.monotonic()
    deadline = began + WRITE_SECONDS
    writers = [Writer(n, api, key, world, codes[n], deadline) for n in range(WRITERS)]
    poller.start()
    for w in writers:
        w.start()
    for w in writers:
        w.join(WRITE_SECONDS + 30)
        assert not w.is_alive(), "a writer hangs"
    for w in writers:
        if w.error:
            raise w.error
    # Every write has been answered, so committed; once no older transaction is open, the feed
    # shows them all, and the poller reads to its end and stops.
    wait_for_the_horizon(cluster.url)
    stop.set()
    poller.join(60)
    assert not poller.is_alive(), "the poller does not reach the end of the feed"
    assert not poll_error, poll_error
    n_ops = sum(w.ops for w in writers)
    print(f"\n{WRITERS} writers: {n_ops} writes in {time.monotonic() - began:.1f}s; "
          f"poller: {polls[0]} polls, {len(seen)} entries")
    assert n_ops >= 200, f"only {n_ops} writes: the test proves little"
    # A last look after a pause: nothing more arrives later.
    time.sleep(0.3)
    late, _ = drain(api, key, start)
    problems = []
    if [e["seq"] for e in late] != [e["seq"] for e in seen]:
        only_poller = {e["seq"] for e in seen} - {e["seq"] for e in late}
        only_late = {e["seq"] for e in late} - {e["seq"] for e in seen}
        problems.append(f"a fresh read from the same position gives another feed than the poller "
                        f"saw: {len(late)} vs {len(seen)} entries, {len(only_poller)} only in the "
                        f"poller's, {len(only_late)} only in the fresh read")

    # No entry twice.
    seqs = [e["seq"] for e in seen]
    dupes = sorted({s for s in seqs if seqs.count(s) > 1}) if len(set(seqs)) != len(seqs) else []
    if dupes:
        problems.append(f"{len(dupes)} entries seen twice, e.g. seq {dupes[:10]}")
    by_object = {}
    for e in seen:
        by_object.setdefault((e["type"], e["id"]), []).append(e)

    touched = {}
    for w in writers:
        touched.update(w.touched)
    n_before = len(problems)
    for (kind, oid), path in touched.items():
        entries = by_object.get((kind, oid), [])
        versions = [e["version"] for e in entries]
        if not entries:
            problems.append(f"{kind} {oid}: no entries")
            continue
        # Every version once, none missing, in order.
        first = before.get((kind, oid), 0) + 1
        if sorted(versions) != list(range(first, first + len(versions))):
            problems.append(f"{kind} {oid}: versions missing or repeated: {versions} (expected "
                            f"each from {first} on once)")
        elif versions != sorted(versions):
            swaps = [(a, b) for a, b in zip(versions, versions[1:]) if a > b]
            problems.append(f"{kind} {oid}: versions out of order in the feed: {swaps} appear as "
                            f"(later, earlier) among {len(versions)} entries")
        r = api.get(path, key=key)
        last = entries[-1]
        if r.status == 200:
            if last["op"] == "deleted" or last["version"] != r.json["version"]:
                problems.append(f"{kind} {oid}: last entry {last['op']} v{last['version']}, "
                                f"the database has v{r.json['version']}")
        elif r.status == 404:
            if last["op"] != "deleted":
                problems.append(f"{kind} {oid}: gone, but the last entry is {last['op']}")
            if any(e["op"] == "deleted" for e in entries[:-1]):
                problems.append(f"{kind} {oid}: a tombstone is not the last entry")
        else:
            problems.append(f"{kind} {oid}: GET {path} -> {r.status}")
    if len(problems) > n_before:
        problems.insert(n_before, f"{len(problems) - n_before} of {len(touched)} objects are wrong:")
    assert not problems, "\n".join(problems[:40])


# ------------------------------------------------------------------ pruning (last: it prunes)


def test_position_older_than_what_is_kept_is_410(api, werklabd, log_dir, keys, code_pool):
    d = Daemon(werklabd, log_dir, name="prune", threads=2,
               extra_args=["--changes-retention", "1", "--prune-interval", "1",
                           "--key-rate-limit", "0"])
    try:
        d.wait_ready()
        old = read(d.api, keys.staff, "/v1/changes?limit=1")["next"]
        r = d.api.post("/v1/municipalities", municipality_body(code_pool()), key=keys.staff)
        m = assert_status(r, 201)
        assert_status(d.api.patch(f"/v1/municipalities/{m['id']}", {"notes": "x"}, key=keys.staff), 200)
        deadline = time.monotonic() + 30
        while True:
            r = d.api.get(old, key=keys.staff)
            if r.status != 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        p = assert_problem(r, 410)
        assert p["detail"], p
        # A fresh read (no position) works and starts after what was pruned.
        fresh = assert_status(d.api.get("/v1/changes?limit=10", key=keys.staff), 200)
        assert fresh["next"], fresh
        assert_status(d.api.get(fresh["next"], key=keys.staff), 200)
    finally:
        d.terminate(timeout=10)
    # The pruned municipality's entries are gone; new ones keep arriving after a fresh start.
    # Read through the session's werklabd, with d stopped: d prunes what is older than a second,
    # and would take the new entry away from a reader slower than that.
    end = end_position(api, keys.staff)
    assert_status(api.patch(f"/v1/municipalities/{m['id']}", {"notes": "y"}, key=keys.staff), 200)
    items, _ = drain(api, keys.staff, end)
    assert entries_of(items, m["id"]) == [("municipality", "updated", 3)], items

"""Data subjects: POST /v1/data-subject-requests {"email", "action": "export" | "erase"} (admin).

One person (one e-mail address, in two spellings) is a participant in two werklabs with
feedback, a municipality contact, an initiative contact, a trainer and the sender of an
inquiry, and is named in a werklab's shared vision, a session description and feedback.
Export lists all of it; erase anonymises it everywhere, after which no text in any table of the
database (the audit log and stored idempotent answers included) holds the name, the address or
the phone number, while counts, ratings and figures stay as they were.
"""

import random
import string
import subprocess
import time
import uuid

import pytest

from domain import (advance, assign_trainer, get_werklab, make_initiative, make_participant,
                    make_session, make_werklab)
from wlclient import assert_problem, assert_status, describe, qs


def psql(url, sql):
    out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def dump(url):
    """Every row of every table in the public schema as text, table by table."""
    tables = psql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").split()
    assert "audit_log" in tables and "idempotency_keys" in tables and "participants" in tables
    return {t: psql(url, f'SELECT t::text FROM public."{t}" t') for t in tables}


def stats(api, key, year, province):
    r = api.get(qs("/v1/stats", year=year, province=province), key=key)
    assert r.status == 200, describe(r)
    return r.json["items"]


@pytest.fixture(scope="module")
def person(api, keys, code_pool):
    tag = "".join(random.choice(string.ascii_lowercase) for _ in range(8))
    # Characters that need care: a hyphen, brackets, an apostrophe, diacritics, a plus.
    name = f"Renée-Marie (Mia) O'Brien{tag}"
    email = f"renee.o'brien+{tag}@example.nl"
    mixed = f"Renee.O'Brien+{tag.upper()}@Example.NL"  # the same address, other case
    phone = f"+31 6 {random.randint(1000, 9999)} {random.randint(1000, 9999)}"
    year = random.randint(2061, 2099)
    key = keys.staff
    for _ in range(20):
        r = api.post("/v1/municipalities", {
            "code": code_pool(), "name": f"Privacyveen {uuid.uuid4().hex[:6]}", "province": "Drenthe",
            "contact": {"name": name, "email": mixed, "phone": phone}}, key=keys.admin)
        if r.status != 409:
            break
    m = assert_status(r, 201)
    initiative = make_initiative(api, key, m["id"], contact={"name": name, "email": email, "phone": phone},
                                 description=f"Opgericht door {name}.")
    r = api.post("/v1/trainers", {"name": name, "email": email, "phone": phone,
                                  "expertise": ["municipalOrganisation"],
                                  "bio": f"{name} begeleidt werklabs."}, key=key)
    trainer = assert_status(r, 201)
    w1 = make_werklab(api, key, m["id"], status="intake", capacity={"min": 1, "max": 15},
                      sharedVision=f"Met dank aan {name} ({email}).")
    w2 = make_werklab(api, key, m["id"], status="intake", capacity={"min": 1, "max": 15},
                      intake={"needs": f"Bel {phone} of mail {mixed}"})
    assign_trainer(api, key, w1["id"], "municipalOrganisation", trainer["id"])
    p1 = make_participant(api, key, w1["id"], name=name, email=email, jobTitle="Beleidsadviseur")
    # The second one through an idempotent POST: its stored answer repeats name and address.
    r = api.post(f"/v1/werklabs/{w2['id']}/participants", {"name": name, "email": mixed, "jobTitle": "Wijkcoach"},
                 key=key, headers={"Idempotency-Key": f"subject-{uuid.uuid4()}"})
    p2 = assert_status(r, 201)
    others = [make_participant(api, key, w["id"]) for w in (w1, w2) for _ in range(2)]
    s1 = make_session(api, key, w1["id"], 1, f"{year}-05-06T08:00:00Z", f"{year}-05-06T11:00:00Z",
                      kind="initiativeVisit", description=f"Rondleiding door {name}, bel {phone}.",
                      initiatives=[{"initiativeId": initiative["id"], "role": "host"}])
    s2 = make_session(api, key, w2["id"], 1, f"{year}-06-06T08:00:00Z", f"{year}-06-06T11:00:00Z")
    feedback = []
    for w, s, p, rating in ((w1, s1, p1, 4), (w2, s2, p2, 2)):
        r = api.post("/v1/feedback", {"werklabId": w["id"], "sessionId": s["id"], "kind": "evaluation",
                                      "participantId": p["id"], "rating": rating,
                                      "body": f"Ik, {name}, vond het leerzaam.", "attribution": name},
                     key=key)
        feedback.append(assert_status(r, 201))
    other_feedback = assert_status(api.post("/v1/feedback", {
        "werklabId": w1["id"], "sessionId": s1["id"], "kind": "evaluation",
        "participantId": others[0]["id"], "rating": 5, "body": "Prima."}, key=key), 201)
    r = api.post("/v1/inquiries", {"municipalityCode": m["code"], "contactName": name, "email": mixed,
                                   "phone": phone, "message": f"Groet, {name}"}, key=key)
    inquiry = assert_status(r, 201)
    return dict(tag=tag, name=name, email=email, mixed=mixed, phone=phone, year=year, m=m,
                initiative=initiative, trainer=trainer, w1=w1, w2=w2, p1=p1, p2=p2, others=others,
                s1=s1, s2=s2, feedback=feedback, other_feedback=other_feedback, inquiry=inquiry)


def request(api, key, body):
    return api.post("/v1/data-subject-requests", body, key=key)


def ids(items):
    return sorted(i["id"] for i in items)


def test_export_lists_everything(api, keys, person):
    for address in (person["email"], person["mixed"]):
        r = request(api, keys.admin, {"email": address, "action": "export"})
        got = assert_status(r, 200)
        assert set(got) == {"action", "email", "participants", "trainers", "inquiries",
                            "municipalityContacts", "initiativeContacts", "feedback",
                            "auditEntriesAsActor"}, got
        assert got["action"] == "export" and got["email"] == address, got
        assert ids(got["participants"]) == ids([person["p1"], person["p2"]]), got
        assert ids(got["trainers"]) == [person["trainer"]["id"]], got
        assert ids(got["inquiries"]) == [person["inquiry"]["id"]], got
        assert ids(got["municipalityContacts"]) == [person["m"]["id"]], got
        assert ids(got["initiativeContacts"]) == [person["initiative"]["id"]], got
        assert ids(got["feedback"]) == ids(person["feedback"]), got
        # Full resource objects, as GET answers them.
        p1 = [p for p in got["participants"] if p["id"] == person["p1"]["id"]][0]
        assert p1 == assert_status(api.get(f"/v1/werklabs/{person['w1']['id']}/participants/"
                                           f"{person['p1']['id']}", key=keys.admin), 200)
        assert got["municipalityContacts"][0]["contact"]["name"] == person["name"]


def test_export_of_an_unknown_address_is_empty(api, keys):
    got = assert_status(request(api, keys.admin, {"email": "niemand@example.nl", "action": "export"}), 200)
    for k in ("participants", "trainers", "inquiries", "municipalityContacts", "initiativeContacts",
              "feedback", "auditEntriesAsActor"):
        assert got[k] == [], got


@pytest.mark.parametrize("body, names", [
    ({}, {"email": "required", "action": "required"}),
    ({"email": "geen-adres", "action": "export"}, {"email": "format"}),
    ({"email": 7, "action": "erase"}, {"email": "type"}),
    ({"email": "a@example.nl", "action": "delete"}, {"action": "enum"}),
    ({"email": "a@example.nl", "action": "erase", "reason": "gdpr"}, {"reason": "unknown"}),
    ({"email": "x", "action": "wipe", "name": "Jan"}, {"email": "format", "action": "enum", "name": "unknown"}),
    ({"email": "a@example.nl", "action": "export", "subject": ""}, {"subject": "type"}),
    ({"email": "a@example.nl", "action": "export", "subject": 42}, {"subject": "type"}),
    ({"email": "a@example.nl", "action": "export", "subject": "s" * 256}, {"subject": "type"}),
    ({"email": "a@example.nl", "action": "erase", "subject": "abc"}, {"subject": "unsupported"}),
])
def test_bad_bodies_are_400_listing_all(api, keys, body, names):
    assert_problem(request(api, keys.admin, body), 400, names)


def test_not_an_object_is_400(api, keys):
    assert_problem(api.post("/v1/data-subject-requests", body="[]", key=keys.admin), 400)


def test_admin_only(api, keys):
    body = {"email": "a@example.nl", "action": "export"}
    assert_problem(request(api, keys.staff, body), 403)
    assert_problem(request(api, keys.partner, body), 403)
    assert_problem(request(api, None, body), 401)


def test_erase_leaves_no_trace_and_keeps_the_figures(api, keys, person, cluster):
    url = cluster.url
    name, email, phone = person["name"], person["email"], person["phone"]
    before_dump = "\n".join(dump(url).values()).lower()
    assert name.lower() in before_dump and email.lower() in before_dump and phone in before_dump

    def figures():
        w1 = api.get(f"/v1/werklabs/{person['w1']['id']}", key=keys.admin).json
        w2 = api.get(f"/v1/werklabs/{person['w2']['id']}", key=keys.admin).json
        ratings = [api.get(f"/v1/feedback/{f['id']}", key=keys.admin).json["rating"]
                   for f in person["feedback"] + [person["other_feedback"]]]
        return (w1["participantCount"], w2["participantCount"], ratings,
                stats(api, keys.admin, person["year"], "Drenthe"))

    before = figures()
    assert before[0] == 3 and before[1] == 3, before
    r = request(api, keys.admin, {"email": person["mixed"], "action": "erase"})
    got = assert_status(r, 200)
    assert got["action"] == "erase", got
    changed = got["changed"]
    assert set(changed) == {"participants", "trainers", "inquiries", "municipalityContacts",
                            "initiativeContacts", "mentions", "storedAnswers"}, got
    assert (changed["participants"], changed["trainers"], changed["inquiries"],
            changed["municipalityContacts"], changed["initiativeContacts"]) == (2, 1, 1, 1, 1), got
    # shared vision, intake needs, session description, two feedback bodies and attributions,
    # the initiative's description
    assert changed["mentions"] >= 6, got
    assert changed["storedAnswers"] >= 1, got

    # What is left: the rows, anonymised.
    p1 = api.get(f"/v1/werklabs/{person['w1']['id']}/participants/{person['p1']['id']}", key=keys.admin).json
    assert p1["name"] == "[erased]" and p1["email"] == f"erased-{p1['id']}@erased.invalid", p1
    assert p1["jobTitle"] is None, p1
    t = api.get(f"/v1/trainers/{person['trainer']['id']}", key=keys.admin).json
    assert t["name"] == "[erased]" and t["phone"] is None, t
    q = api.get(f"/v1/inquiries/{person['inquiry']['id']}", key=keys.admin).json
    assert q["contactName"] == "[erased]" and q["phone"] is None, q
    m = api.get(f"/v1/municipalities/{person['m']['id']}", key=keys.admin).json
    assert m["contact"] in (None, {"name": None, "email": None, "phone": None}), m
    w1 = api.get(f"/v1/werklabs/{person['w1']['id']}", key=keys.admin).json
    assert "[erased]" in w1["sharedVision"], w1
    # Figures unchanged.
    assert figures() == before

    # The audit log: an erase entry, without the address (the dump below checks the address).
    deadline = time.monotonic() + 2.5
    while True:
        items, _ = api.list_all("/v1/audit-log", keys.admin,
                                {"resource": "/v1/data-subject-requests", "action": "erase"})
        if items or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [e for e in items if e["keyId"] == keys.ids["admin"] and e["status"] == 200], items
    exports, _ = api.list_all("/v1/audit-log", keys.admin,
                              {"resource": "/v1/data-subject-requests", "action": "export"})
    assert [e for e in exports if e["keyId"] == keys.ids["admin"]], "the exports are not recorded"

    # No table holds the name, the address (any case) or the phone number any more.
    leaks = []
    for table, text in dump(url).items():
        low = text.lower()
        for what, needle in (("name", name.lower()), ("e-mail", email.lower()), ("phone", phone),
                             ("tag", person["tag"])):
            if needle in low:
                line = next(l for l in text.splitlines() if needle in l.lower())
                leaks.append(f"{table}: {what} in {line[:300]}")
    assert not leaks, "\n".join(leaks)
    # The export now finds nothing.
    again = assert_status(request(api, keys.admin, {"email": email, "action": "export"}), 200)
    assert again["participants"] == [] and again["trainers"] == [] and again["feedback"] == [], again


def test_erase_matches_whole_words_only(api, keys, new_municipality):
    """A short name is erased where it stands as a word, not inside other words: "Ann" is in
    "planned" (a status, guarded by the status rules), in "Annemarie" and in "Johann"."""
    m = new_municipality()
    planned = advance(api, keys.admin, make_werklab(api, keys.staff, m["id"], status="intake")["id"],
                      "planned")
    assert planned["status"] == "planned"
    email = f"ann.{uuid.uuid4().hex[:8]}@example.nl"
    w = make_werklab(api, keys.staff, m["id"], status="intake",
                     sharedVision="Ann, Annemarie en Johann deden mee; ann zei het eerst.")
    p = make_participant(api, keys.staff, w["id"], name="Ann", email=email)
    r = request(api, keys.admin, {"email": email, "action": "erase"})
    got = assert_status(r, 200)
    assert got["changed"]["participants"] == 1, got
    assert get_werklab(api, keys.admin, planned["id"])["status"] == "planned"
    vision = get_werklab(api, keys.admin, w["id"])["sharedVision"]
    assert vision == "[erased], Annemarie en Johann deden mee; [erased] zei het eerst.", vision
    p = api.get(f"/v1/werklabs/{w['id']}/participants/{p['id']}", key=keys.admin).json
    assert p["name"] == "[erased]", p

"""A realistic werklab, from a municipality's inquiry to a completed programme.

`run_scenario(api, key, municipality_id, now)` plays the whole story through the HTTP API with
a staff (or admin) key: a public inquiry from the municipality, staff contacting it and turning
it into a werklab (inquiry → intake with the intake conversation), two trainers, two local
initiatives, twelve civil servants, three sessions in the past, attendance, feedback from
participants, initiatives and a trainer, moderation, one approved testimonial, and the status
steps intake → planned → running → completed. Every answer is checked on the way (a wrong one
raises ScenarioError, an AssertionError, with the request and the response); the result is a
dict of the ids made and the figures the werklab should now add to /v1/stats.

Standard library and wlclient.py only: scripts/demo-data imports this file by path.
"""

import datetime
import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wlclient import describe, qs  # noqa: E402

DEMO_TITLE = "Werklab Samen aan de slag"

UTC = datetime.timezone.utc


class ScenarioError(AssertionError):
    pass


def expect(resp, status, what):
    """The answer has this status; returns its JSON body."""
    if resp.status != status:
        raise ScenarioError(f"{what}: expected {status}\n{describe(resp)}")
    return resp.json


def check(condition, what, resp=None):
    if not condition:
        raise ScenarioError(what + (f"\n{describe(resp)}" if resp is not None else ""))


def iso(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def same_instant(a, b):
    def parse(s):
        return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return parse(a) == parse(b)


# Twelve civil servants: name, job title, department, role in the werklab.
PARTICIPANTS = [
    ("Annelies de Groot", "beleidsadviseur", "Wmo", "adviser"),
    ("Bram van der Linden", "wijkregisseur", "Sociaal domein", "director"),
    ("Chantal Bakker", "omgevingsmanager", "Ruimtelijke ordening", "director"),
    ("Daan Verhoeven", "beleidsmedewerker participatie", "Bestuursondersteuning", "connector"),
    ("Esra Yilmaz", "gebiedsverbinder", "Wijkzaken", "connector"),
    ("Frank Jansen", "adviseur duurzaamheid", "Energietransitie", "adviser"),
    ("Gerda Smit", "teamleider", "Vergunningverlening", "director"),
    ("Hamid El Amrani", "jongerenwerker", "Jeugd", "connector"),
    ("Ingrid Mulder", "adviseur Omgevingswet", "Ruimtelijke ordening", "adviser"),
    ("Joris Hendriks", "subsidieadviseur", "Financiën", "adviser"),
    ("Karin Vos", "consulent", "Wmo", "connector"),
    ("Lotte de Wit", "communicatieadviseur", "Communicatie", "adviser"),
]

# Evaluation ratings given by the first eight participants (the rest gave none).
EVALUATIONS = [
    (5, "Eindelijk zag ik hoe een buurtkamer echt draait: ik kijk anders naar subsidieaanvragen."),
    (4, "Het bezoek aan de energiecoöperatie maakte de Omgevingswet concreet."),
    (5, "Door het gesprek met collega's van Ruimtelijke ordening weet ik nu bij wie ik moet zijn."),
    (4, "Goede mix van bezoek en reflectie; de derde bijeenkomst mocht langer."),
    (3, "Nuttig, al had ik meer tijd voor mijn eigen casus willen hebben."),
    (5, "Mijn rol als verbinder is helderder geworden."),
    (4, "Praktisch en dichtbij: de koffie bij de initiatieven was de kern."),
    (4, "We hebben afspraken gemaakt over één aanspreekpunt voor initiatieven."),
]
INITIATIVE_RATINGS = [5, 4]


def run_scenario(api, key, municipality_id, now=None, *, public_inquiry=True, title=None,
                 tag=None):
    """Plays a werklab from inquiry to completed in the municipality `municipality_id`.

    api: wlclient.Api; key: a staff or admin key. now: the moment the story is told from (an
    aware datetime, default the current time): the intake is held ten weeks before it and the
    three sessions are six, four and two weeks before it, so they have ended and the werklab
    can complete; pass a date in another year to put the werklab's figures in that year.
    public_inquiry: post the inquiry without a key (the public form; rate limited per address)
    or with `key`. title: the werklab's title (default DEMO_TITLE plus the municipality).
    tag: makes e-mail addresses and names unique (default a random one).

    Returns a dict with the ids made and the figures expected in /v1/stats.
    """
    now = now or datetime.datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    tag = tag or uuid.uuid4().hex[:6]
    out = {"steps": []}

    def step(name, resp, status):
        out["steps"].append((name, resp.method, resp.path, resp.status))
        return expect(resp, status, name)

    # -- the municipality
    r = api.get(f"/v1/municipalities/{municipality_id}", key=key)
    m = step("read the municipality", r, 200)
    name, code = m["name"], m["code"]
    out.update(municipality_id=municipality_id, municipality_name=name, municipality_code=code,
               province=m["province"])

    # -- a public inquiry from the web form
    inquiry = {
        "municipalityCode": code,
        "municipalityName": name,
        "contactName": "Marieke van Dijk",
        "email": f"m.vandijk.{tag}@example.nl",
        "phone": "0418 123 456",
        "message": (f"Wij zijn als gemeente {name} op zoek naar een betere samenwerking met "
                    "bewonersinitiatieven. Veel collega's weten niet goed wat er in de dorpen "
                    "en wijken gebeurt. Kunnen jullie een werklab voor ons verzorgen?"),
        "preferredPeriod": "na de zomer",
    }
    r = api.post("/v1/inquiries", inquiry, key=None if public_inquiry else key)
    body = step("post the inquiry", r, 201)
    check(body["status"] == "new", "a new inquiry is new", r)
    check(body["municipalityId"] == municipality_id, "the inquiry's code resolves", r)
    check(body.get("werklabId") is None, "a new inquiry has no werklab", r)
    check((r.header("Location") or "").endswith(f"/v1/inquiries/{body['id']}"), "Location", r)
    inquiry_id = out["inquiry_id"] = body["id"]

    r = api.patch(f"/v1/inquiries/{inquiry_id}", {"status": "contacted"}, key=key)
    check(step("contact the municipality", r, 200)["status"] == "contacted", "contacted", r)

    # -- the werklab, in inquiry, then the intake conversation
    title = title or f"{DEMO_TITLE} {name}"
    r = api.post("/v1/werklabs", {"municipalityId": municipality_id, "title": title,
                                  "quote": {"amountCents": 1250000,
                                            "note": "incl. twee trainers en drie bijeenkomsten"}},
                 key=key)
    w = step("create the werklab", r, 201)
    check(w["status"] == "inquiry", "a new werklab starts in inquiry", r)
    check(w["capacity"] == {"min": 10, "max": 15}, "default capacity", r)
    check(w["quote"]["currency"] == "EUR", "the quote is in euros", r)
    check(w["participantCount"] == 0 and w["trainers"] == [], "an empty werklab", r)
    werklab_id = out["werklab_id"] = w["id"]

    intake_day = (now - datetime.timedelta(days=70)).date().isoformat()
    intake = {
        "needs": ("Meer kennis van wat bewonersinitiatieven doen en nodig hebben; één "
                  "gezicht naar buiten vanuit de gemeente."),
        "developments": "energietransitie, Omgevingswet, decentralisatie in het sociaal domein",
        "goals": ("Medewerkers van Wmo, Ruimtelijke ordening en Wijkzaken werken samen met "
                  "initiatieven in plaats van langs elkaar heen."),
    }
    r = api.patch(f"/v1/werklabs/{werklab_id}", {"status": "intake", "intake": intake}, key=key)
    w = step("move to intake with the intake notes", r, 200)
    check(w["status"] == "intake", "intake", r)
    check(all(w["intake"][k] == v for k, v in intake.items()), "intake fields kept", r)
    check(w["intake"]["heldOn"] is None, "intake not held yet", r)

    r = api.patch(f"/v1/inquiries/{inquiry_id}", {"status": "converted", "werklabId": werklab_id},
                  key=key)
    body = step("convert the inquiry", r, 200)
    check(body["status"] == "converted" and body["werklabId"] == werklab_id, "converted", r)

    # -- two trainers, one per role
    trainers = {}
    for role, tname, bio in (
            ("municipalOrganisation", "Petra Kuipers",
             "Oud-gemeentesecretaris; begeleidt teams bij de Omgevingswet."),
            ("residentInitiatives", "Youssef Bennani",
             "Opbouwwerker en bestuurder van een buurtcoöperatie.")):
        r = api.post("/v1/trainers",
                     {"name": tname, "email": f"trainer.{role.lower()}.{tag}@example.nl",
                      "phone": "06 1234 5678", "expertise": [role], "bio": bio}, key=key)
        t = step(f"create trainer {role}", r, 201)
        trainers[role] = t["id"]
        r = api.put(f"/v1/werklabs/{werklab_id}/trainers/{role}", {"trainerId": t["id"]}, key=key)
        body = step(f"assign trainer {role}", r, 200)
        check(any(a["trainerId"] == t["id"] and a["role"] == role for a in body["items"]),
              "assignment listed", r)
    out["trainer_ids"] = trainers

    # -- intake held and planned in one patch
    r = api.patch(f"/v1/werklabs/{werklab_id}", {"intake": {"heldOn": intake_day},
                                                 "status": "planned"}, key=key)
    w = step("hold the intake and plan", r, 200)
    check(w["status"] == "planned" and w["intake"]["heldOn"] == intake_day, "planned", r)
    check(w["intake"]["needs"] == intake["needs"], "a merge patch keeps the other intake fields", r)
    check(sorted(a["role"] for a in w["trainers"]) == sorted(trainers), "both trainers shown", r)

    # -- two local initiatives
    host = {
        "municipalityId": municipality_id,
        "name": f"Buurtkamer De Waard ({tag})",
        "kind": "communityCentre",
        "legalForm": "foundation",
        "kvkNumber": "41234567",
        "themes": ["communityCentre", "socialCohesion", "careWelfare"],
        "neighbourhood": "Oude Stad",
        "description": "Huiskamer voor de buurt met koffie, eettafel en een klussendienst.",
        "website": "https://buurtkamer.example.nl",
        "lsaMember": True,
        "contact": {"name": "Ria Pauw", "email": f"ria.{tag}@example.nl",
                    "phone": "0418 555 010"},
    }
    guest = {
        "municipalityId": municipality_id,
        "name": f"Energiecoöperatie Bommelerwaard ({tag})",
        "kind": "neighbourhoodCooperative",
        "legalForm": "cooperative",
        "themes": ["energyTransition", "environmentPlanning"],
        "neighbourhood": "Zuilichem",
        "description": "Bewoners die samen zonnedaken en een buurtbatterij realiseren.",
        "rightToChallenge": True,
        "contact": {"name": "Kees Verbeek", "email": f"kees.{tag}@example.nl"},
    }
    initiative_ids = []
    for body in (host, guest):
        r = api.post("/v1/initiatives", body, key=key)
        i = step(f"create initiative {body['name']}", r, 201)
        check(i["themes"] == body["themes"] and i["contact"]["name"] == body["contact"]["name"],
              "initiative as given", r)
        initiative_ids.append(i["id"])
    out["initiative_ids"] = initiative_ids
    out["host_id"], out["guest_id"] = initiative_ids

    # -- twelve participants
    participant_ids = []
    for pname, job, dept, role in PARTICIPANTS:
        local = pname.lower().replace(" ", ".")
        r = api.post(f"/v1/werklabs/{werklab_id}/participants",
                     {"name": pname, "email": f"{local}.{tag}@example.nl", "jobTitle": job,
                      "department": dept, "role": role}, key=key)
        p = step(f"add participant {pname}", r, 201)
        check(p["werklabId"] == werklab_id and p["role"] == role, "participant as given", r)
        participant_ids.append(p["id"])
    out["participant_ids"] = participant_ids
    w = step("read the werklab", api.get(f"/v1/werklabs/{werklab_id}", key=key), 200)
    check(w["participantCount"] == len(PARTICIPANTS), "participantCount counts them")

    # -- three sessions, two weeks apart, all in the past relative to `now`
    def at(days_before, hour):
        d = (now - datetime.timedelta(days=days_before)).date()
        return datetime.datetime(d.year, d.month, d.day, hour, 0, tzinfo=UTC)

    sessions = [
        {"sequence": 1, "kind": "initiativeVisit",
         "title": "Op de koffie bij bewonersinitiatieven",
         "description": ("Op bezoek bij de buurtkamer, met de energiecoöperatie als gast: "
                         "wat doen zij, waar lopen ze tegenaan bij de gemeente?"),
         "startsAt": iso(at(42, 8)), "endsAt": iso(at(42, 12)),
         "location": {"name": "Buurtkamer De Waard", "address": "Waterstraat 12, Zaltbommel",
                      "onSite": True},
         "initiatives": [{"initiativeId": initiative_ids[0], "role": "host"},
                         {"initiativeId": initiative_ids[1], "role": "guest"}]},
        {"sequence": 2, "kind": "municipalCollaboration",
         "title": "Samenwerken binnen de gemeente",
         "description": "Wie doet wat als een initiatief aanklopt? Van loket tot vergunning.",
         "startsAt": iso(at(28, 12)), "endsAt": iso(at(28, 15)),
         "location": {"name": "Stadhuis, raadzaal", "address": "Oliestraat 1, Zaltbommel",
                      "onSite": False}},
        {"sequence": 3, "kind": "ownRole",
         "title": "Mijn rol: adviseur, verbinder of regisseur",
         "description": "Reflectie op de eigen rol en afspraken voor na het werklab.",
         "startsAt": iso(at(14, 12)), "endsAt": iso(at(14, 15)),
         "location": {"name": "Stadhuis, raadzaal", "address": "Oliestraat 1, Zaltbommel",
                      "onSite": False}},
    ]
    session_ids = []
    for s in sessions:
        r = api.post("/v1/sessions", dict(s, werklabId=werklab_id), key=key)
        body = step(f"create session {s['sequence']}", r, 201)
        check(body["kind"] == s["kind"] and same_instant(body["startsAt"], s["startsAt"]),
              "session as given", r)
        check(sorted(map(tuple, (sorted(x.items()) for x in body["initiatives"])))
              == sorted(map(tuple, (sorted(x.items()) for x in s.get("initiatives", [])))),
              "the initiatives taking part", r)
        session_ids.append(body["id"])
    out["session_ids"] = session_ids
    out["sessions"] = sessions

    w = step("read the werklab", api.get(f"/v1/werklabs/{werklab_id}", key=key), 200)
    check(w["startsOn"] == at(42, 8).date().isoformat(), f"startsOn {w['startsOn']}")
    check(w["endsOn"] == at(14, 15).date().isoformat(), f"endsOn {w['endsOn']}")
    out["year"] = int(w["startsOn"][:4])

    r = api.patch(f"/v1/werklabs/{werklab_id}", {"status": "running"}, key=key)
    check(step("start the werklab", r, 200)["status"] == "running", "running", r)

    # -- attendance: everyone at the first session; some absent or excused later
    attendance = []
    for n, sid in enumerate(session_ids):
        rows = []
        for i, pid in enumerate(participant_ids):
            status = "present"
            if n == 1 and i in (3, 7):
                status = "excused"
            if n == 2 and i == 10:
                status = "absent"
            rows.append({"participantId": pid, "status": status})
        r = api.put(f"/v1/sessions/{sid}/attendance", rows, key=key)
        body = step(f"attendance of session {n + 1}", r, 200)
        check(sorted((a["participantId"], a["status"]) for a in body["items"])
              == sorted((a["participantId"], a["status"]) for a in rows), "attendance kept", r)
        attendance.append(rows)
    out["attendance"] = attendance

    # -- feedback
    ratings = []
    feedback_ids = []
    for i, (rating, text) in enumerate(EVALUATIONS):
        body = {"werklabId": werklab_id, "kind": "evaluation", "participantId": participant_ids[i],
                "sessionId": session_ids[i % 3], "rating": rating, "body": text}
        if i == 0:
            body.update(consentToPublish=True,
                        attribution=f"beleidsmedewerker gemeente {name}")
        if i == 1:
            body.update(consentToPublish=True, attribution="adviseur Omgevingswet")
        r = api.post("/v1/feedback", body, key=key)
        f = step(f"evaluation {i + 1}", r, 201)
        check(f["moderation"] == "pending", "feedback waits for moderation", r)
        check(f["consentToPublish"] == bool(body.get("consentToPublish")), "consent default", r)
        feedback_ids.append(f["id"])
        ratings.append(rating)
    for initiative_id, rating, text in (
            (initiative_ids[0], INITIATIVE_RATINGS[0],
             "Fijn dat de ambtenaren eens bij ons aan tafel zaten in plaats van andersom."),
            (initiative_ids[1], INITIATIVE_RATINGS[1],
             "We weten nu wie we moeten bellen over de buurtbatterij.")):
        r = api.post("/v1/feedback", {"werklabId": werklab_id, "sessionId": session_ids[0],
                                      "kind": "initiativePerspective",
                                      "initiativeId": initiative_id, "rating": rating,
                                      "body": text}, key=key)
        feedback_ids.append(step("initiative perspective", r, 201)["id"])
        ratings.append(rating)
    r = api.post("/v1/feedback", {"werklabId": werklab_id, "kind": "trainerNote",
                                  "body": "Groep kwam na de eerste bijeenkomst goed op gang."},
                 key=key)
    feedback_ids.append(step("trainer note", r, 201)["id"])
    out["feedback_ids"] = feedback_ids
    out["ratings"] = ratings

    # -- moderation: one testimonial approved (with consent), one approved without consent,
    # one with consent rejected
    testimonial_id = feedback_ids[0]
    r = api.patch(f"/v1/feedback/{testimonial_id}", {"moderation": "approved"}, key=key)
    check(step("approve the testimonial", r, 200)["moderation"] == "approved", "approved", r)
    r = api.patch(f"/v1/feedback/{feedback_ids[2]}", {"moderation": "approved"}, key=key)
    step("approve feedback given without consent", r, 200)
    r = api.patch(f"/v1/feedback/{feedback_ids[1]}", {"moderation": "rejected"}, key=key)
    step("reject feedback given with consent", r, 200)
    out["testimonial_id"] = testimonial_id
    out["testimonial"] = {"id": testimonial_id, "body": EVALUATIONS[0][1],
                          "attribution": f"beleidsmedewerker gemeente {name}",
                          "municipality": name, "year": out["year"]}

    # -- completed
    r = api.patch(f"/v1/werklabs/{werklab_id}",
                  {"status": "completed",
                   "sharedVision": ("Gemeente en initiatieven zijn partners: één aanspreekpunt, "
                                    "vroeg samen aan tafel, ruimte om te experimenteren.")},
                  key=key)
    w = step("complete the werklab", r, 200)
    check(w["status"] == "completed", "completed", r)
    out["werklab"] = w

    out["expected"] = {
        "werklabs": {"total": 1, "completed": 1},
        "participants": len(participant_ids),
        "sessionsHeld": len(session_ids),
        "initiatives": len(initiative_ids),
        "ratings": list(ratings),
        "averageRating": round(sum(ratings) / len(ratings), 2),
    }
    return out


def find_werklab(api, key, municipality_id, title):
    """The werklab with this title in the municipality, or None (for idempotent demo loads)."""
    url = qs("/v1/werklabs", municipalityId=municipality_id, limit=200)
    while url:
        r = api.get(url, key=key)
        expect(r, 200, "list werklabs")
        for w in r.json["items"]:
            if w["title"] == title:
                return w
        url = r.json["next"]
    return None

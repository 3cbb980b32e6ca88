"""CSV exports: `Accept: text/csv` on every list route.

text/csv; charset=utf-8, an attachment named after the last path segment, streamed (chunked),
every row (no paging), the same filters, sort and roles as the JSON list (partners: no personal
columns). RFC 4180 quoting, CRLF, `?delimiter=semicolon`; a cell a spreadsheet would run as a
formula (=, +, -, @, tab, CR first) gets a leading ' and quotes. Here every CSV row is parsed with
Python's csv module and compared cell by cell with the JSON of the same objects.
"""

import csv
import io
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import Daemon
from domain import assign_trainer, make_initiative, make_trainer, make_werklab
from wlclient import assert_problem, assert_status, describe, qs

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def get_csv(api, path, key, accept="text/csv", **kw):
    return api.get(path, key=key, headers={"Accept": accept}, **kw)


def parse(resp, delimiter=","):
    text = resp.body.decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    return rows[0], rows[1:]


def flatten(obj, prefix=""):
    out = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def cell(v):
    """What the CSV cell of a JSON value must be."""
    if v is None:
        text = ""
    elif v is True:
        text = "true"
    elif v is False:
        text = "false"
    elif isinstance(v, list):
        text = ", ".join(":".join(str(x) for x in item.values()) if isinstance(item, dict) else str(item)
                         for item in v)
    else:
        text = str(v)
    if text.startswith(FORMULA_START):
        text = "'" + text
    return text


def compare(header, rows, objects, hidden=()):
    """Every CSV row equals the JSON object with its id; returns the rows by id."""
    by_id = {o["id"]: o for o in objects}
    assert header[0] == "id", header
    for h in hidden:
        assert not [c for c in header if c == h or c.startswith(h + ".")], (h, header)
    got = {}
    for row in rows:
        assert len(row) == len(header), (header, row)
        r = dict(zip(header, row))
        assert r["id"] in by_id, f"row {r['id']} is not in the JSON list"
        flat = flatten(by_id[r["id"]])
        for column in header:
            if column in flat:
                assert r[column] == cell(flat[column]), (
                    f"{r['id']} {column}: csv {r[column]!r} json {flat[column]!r}")
            else:
                # contact: null in JSON → empty contact.* cells
                parent = column.split(".")[0]
                assert flat.get(parent, "missing") is None and r[column] == "", (column, r, flat)
        # Every JSON field has its column (a null object, e.g. "intake": null, has its children's).
        missing = [c for c in flat if c not in header
                   and not (flat[c] is None and any(h.startswith(c + ".") for h in header))]
        assert not missing, (missing, header)
        got[r["id"]] = r
    assert set(got) == set(by_id), (set(by_id) - set(got), set(got) - set(by_id))
    return got


TRICKY = [
    # name, notes, contact
    ("=cmd|' /C calc'!A0", 'Hij zei "hallo"; en toen, weg', {"name": "+1", "email": "a@example.nl",
                                                             "phone": "+31 6 1234 5678"}),
    ("-2", "@x", {"name": 'Jan, "de" Vries', "email": "b@example.nl", "phone": "-012 345 67"}),
    ("Regels", "eerste regel\r\ntweede regel\nderde;vierde", None),
    ("Kerk, plein; 't Hof", "\tingesprongen", {"name": "@beheer", "email": None, "phone": None}),
    ("Gewoon", None, {"name": "Ans", "email": None, "phone": "(030) 123 4567"}),
    ("Terug", "\rterug aan het begin", None),
]


@pytest.fixture(scope="module")
def tricky(api, keys, code_pool):
    made = []
    for name, notes, contact in TRICKY:
        body = {"code": code_pool(), "name": name, "province": "Zeeland", "notes": notes,
                "contact": contact}
        for _ in range(20):
            r = api.post("/v1/municipalities", body, key=keys.admin)
            if r.status != 409:
                break
            body["code"] = code_pool()
        made.append(assert_status(r, 201))
    return made


def codes(ms):
    return ",".join(m["code"] for m in ms)


def json_list(api, path, key, params):
    items, _ = api.list_all(path, key, params)
    return items


# ------------------------------------------------------------------ headers and format


def test_headers_and_header_row(api, keys, tricky):
    r = get_csv(api, qs("/v1/municipalities", code=codes(tricky)), keys.staff)
    assert_status(r, 200)
    assert r.header("Content-Type") == "text/csv; charset=utf-8", describe(r)
    assert r.header("Content-Disposition") == 'attachment; filename="municipalities.csv"', describe(r)
    assert (r.header("Transfer-Encoding") or "").lower() == "chunked", describe(r)
    assert r.header("Content-Length") is None, describe(r)
    first_line = r.body.split(b"\r\n", 1)[0]
    assert first_line == (b"id,code,name,province,contact.name,contact.email,contact.phone,notes,"
                          b"version,createdAt,updatedAt"), r.body[:300]
    assert r.body.endswith(b"\r\n"), r.body[-50:]
    header, rows = parse(r)
    assert len(rows) == len(tricky)
    # Rows end with CRLF (those without line breaks in their cells: every LF is part of a CRLF).
    plain = [tricky[0], tricky[1], tricky[4]]
    r = get_csv(api, qs("/v1/municipalities", code=codes(plain)), keys.staff)
    assert r.body.count(b"\r\n") == r.body.count(b"\n") == len(plain) + 1, r.body


def test_nested_route_file_name(api, keys, municipality):
    w = make_werklab(api, keys.staff, municipality["id"], status="intake")
    r = get_csv(api, f"/v1/werklabs/{w['id']}/participants", keys.staff)
    assert_status(r, 200)
    assert r.header("Content-Disposition") == 'attachment; filename="participants.csv"', describe(r)
    header, rows = parse(r)
    assert rows == [] and header[0] == "id" and "email" in header, header


def test_values_come_out_exact_and_neutralised(api, keys, tricky):
    r = get_csv(api, qs("/v1/municipalities", code=codes(tricky)), keys.staff)
    header, rows = parse(r)
    objects = json_list(api, "/v1/municipalities", keys.staff, {"code": codes(tricky)})
    got = compare(header, rows, objects)
    calc = got[tricky[0]["id"]]
    assert calc["name"] == "'=cmd|' /C calc'!A0"
    assert calc["contact.name"] == "'+1"
    assert got[tricky[1]["id"]]["name"] == "'-2" and got[tricky[1]["id"]]["notes"] == "'@x"
    assert got[tricky[2]["id"]]["notes"] == "eerste regel\r\ntweede regel\nderde;vierde"
    assert got[tricky[3]["id"]]["notes"] == "'\tingesprongen"
    assert got[tricky[5]["id"]]["notes"] == "'\rterug aan het begin"
    # The raw bytes: formula cells quoted, quotes doubled.
    assert b"\"'=cmd|' /C calc'!A0\"" in r.body, r.body[:2000]
    assert b'"Jan, ""de"" Vries"' in r.body, r.body[:2000]
    assert b'"Hij zei ""hallo""; en toen, weg"' in r.body, r.body[:2000]


def test_semicolon_delimiter(api, keys, tricky):
    r = get_csv(api, qs("/v1/municipalities", code=codes(tricky), delimiter="semicolon"), keys.staff)
    assert_status(r, 200)
    assert r.body.startswith(b"id;code;name;province;contact.name;"), r.body[:200]
    header, rows = parse(r, delimiter=";")
    objects = json_list(api, "/v1/municipalities", keys.staff, {"code": codes(tricky)})
    got = compare(header, rows, objects)
    assert got[tricky[3]["id"]]["name"] == "Kerk, plein; 't Hof"
    assert b'"Kerk, plein; \'t Hof"' in r.body, r.body[:2000]
    # comma is the default and may be named
    r2 = get_csv(api, qs("/v1/municipalities", code=codes(tricky), delimiter="comma"), keys.staff)
    assert parse(r2) == parse(get_csv(api, qs("/v1/municipalities", code=codes(tricky)), keys.staff))


@pytest.mark.parametrize("value", ["tab", "pipe", ";", "", "SEMICOLON"])
def test_bad_delimiter_is_400(api, keys, value):
    r = get_csv(api, qs("/v1/municipalities", delimiter=value), keys.staff)
    assert_problem(r, 400, {"delimiter": "enum"})


def test_csv_on_a_single_resource_is_406(api, keys, tricky):
    r = get_csv(api, f"/v1/municipalities/{tricky[0]['id']}", keys.staff)
    assert_problem(r, 406)
    r = get_csv(api, "/v1/stats", keys.staff)
    assert r.status == 406, describe(r)
    # JSON is still the default for a list, also with a wildcard.
    r = get_csv(api, qs("/v1/municipalities", code=codes(tricky)), keys.staff, accept="*/*")
    assert r.status == 200 and r.json and "items" in r.json, describe(r)


# ------------------------------------------------------------------ filters, sort, paging, roles


def test_filters_sort_and_every_row(api, keys, tricky):
    params = {"code": codes(tricky), "sort": "-name"}
    r = get_csv(api, qs("/v1/municipalities", params, limit=1), keys.staff)
    header, rows = parse(r)
    objects = json_list(api, "/v1/municipalities", keys.staff, params)
    assert [row[0] for row in rows] == [o["id"] for o in objects], "not all rows, or another order"
    assert len(rows) == len(tricky)
    # A filter that leaves two of them
    r = get_csv(api, qs("/v1/municipalities", code=codes(tricky[:2])), keys.staff)
    assert {row[0] for row in parse(r)[1]} == {m["id"] for m in tricky[:2]}
    # Bad filters are 400 as for JSON
    assert_problem(get_csv(api, qs("/v1/municipalities", sort="shoeSize"), keys.staff), 400, ["sort"])


def test_all_rows_beyond_a_page(api, keys, municipality):
    # More rows than a JSON page can hold (200).
    many = 230
    for n in range(many):
        assert api.post("/v1/initiatives", {"municipalityId": municipality["id"], "name": f"I{n:03d}",
                                            "kind": "other"}, key=keys.staff).status == 201
    r = get_csv(api, qs("/v1/initiatives", municipalityId=municipality["id"], sort="name"), keys.staff)
    header, rows = parse(r)
    assert [row[header.index("name")] for row in rows] == [f"I{n:03d}" for n in range(many)]


def test_partner_gets_no_personal_columns(api, keys, tricky):
    r = get_csv(api, qs("/v1/municipalities", code=codes(tricky)), keys.partner)
    assert_status(r, 200)
    header, rows = parse(r)
    objects = json_list(api, "/v1/municipalities", keys.partner, {"code": codes(tricky)})
    compare(header, rows, objects, hidden=("contact",))
    assert b"a@example.nl" not in r.body and b"1234 5678" not in r.body


def test_werklabs_records_and_quote(api, keys, municipality):
    i = make_initiative(api, keys.staff, municipality["id"], themes=["housing", "energyTransition"],
                        lsaMember=True, description="=SUM(A1:A9)",
                        contact={"name": "Ria", "email": "ria@example.nl", "phone": None})
    t1 = make_trainer(api, keys.staff, expertise=["municipalOrganisation"])
    t2 = make_trainer(api, keys.staff, expertise=["residentInitiatives"])
    w = make_werklab(api, keys.staff, municipality["id"], status="intake",
                     quote={"amountCents": 125000, "note": "-korting"}, sharedVision='Samen "sterk"\n',
                     intake={"needs": "@all", "heldOn": "2025-01-02"})
    assign_trainer(api, keys.staff, w["id"], "municipalOrganisation", t1["id"])
    assign_trainer(api, keys.staff, w["id"], "residentInitiatives", t2["id"])
    for role, hidden in (("staff", ()), ("partner", ("quote",))):
        r = get_csv(api, qs("/v1/werklabs", municipalityId=municipality["id"]), keys[role])
        header, rows = parse(r)
        got = compare(header, rows, json_list(api, "/v1/werklabs", keys[role],
                                              {"municipalityId": municipality["id"]}), hidden=hidden)
        row = got[w["id"]]
        assert row["trainers"] == (f"{t1['id']}:municipalOrganisation, {t2['id']}:residentInitiatives"), row
        assert row["capacity.min"] == "10" and row["intake.needs"] == "'@all", row
        if role == "staff":
            assert row["quote.amountCents"] == "125000" and row["quote.note"] == "'-korting", row
    for role, hidden in (("staff", ()), ("partner", ("contact",))):
        r = get_csv(api, qs("/v1/initiatives", municipalityId=municipality["id"]), keys[role])
        header, rows = parse(r)
        got = compare(header, rows, json_list(api, "/v1/initiatives", keys[role],
                                              {"municipalityId": municipality["id"]}), hidden=hidden)
        row = got[i["id"]]
        assert row["themes"] == "housing, energyTransition" and row["lsaMember"] == "true", row
        assert row["rightToChallenge"] == "false" and row["description"] == "'=SUM(A1:A9)", row


def test_public_testimonials_without_meta_columns(api, keys, municipality):
    w = make_werklab(api, keys.staff, municipality["id"], status="intake")
    r = api.post("/v1/feedback", {"werklabId": w["id"], "kind": "trainerNote", "rating": 5,
                                  "body": '=HYPERLINK("http://x")', "attribution": "-Wijkteam, Oost",
                                  "consentToPublish": True, "moderation": "approved"}, key=keys.staff)
    f = assert_status(r, 201)
    r = api.get("/v1/testimonials", headers={"Accept": "text/csv"})
    assert r.status == 200, describe(r)  # (public and cacheable: not Cache-Control: no-store)
    assert r.header("Content-Type") == "text/csv; charset=utf-8", describe(r)
    assert r.header("Content-Disposition") == 'attachment; filename="testimonials.csv"', describe(r)
    header, rows = parse(r)
    assert header == ["id", "body", "attribution", "municipality", "year"], header
    objects = json_list(api, "/v1/testimonials", None, {})
    assert len(rows) == len(objects)
    got = compare(header, rows, objects)
    assert got[f["id"]]["body"] == '\'=HYPERLINK("http://x")' and got[f["id"]]["attribution"] == "\'-Wijkteam, Oost", got[f["id"]]


def test_roles_apply(api, keys):
    assert_problem(get_csv(api, "/v1/trainers", keys.partner), 403)
    assert_problem(get_csv(api, "/v1/municipalities", None), 401)
    assert_problem(get_csv(api, "/v1/api-keys", keys.staff), 403)


# ------------------------------------------------------------------ bounded memory

ROWS = 10_000
VISION = "Wij werken samen aan een sterke buurt. " * 52  # ~2 KB per row


@pytest.fixture(scope="module")
def csvd(werklabd, log_dir):
    # Under AddressSanitizer freed memory is held in a quarantine (it would count as growth).
    asan = ":".join(x for x in (os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=0") if x)
    d = Daemon(werklabd, log_dir, name="csv", threads=2, extra_args=["--key-rate-limit", "0"],
               env=werklabd.env(ASAN_OPTIONS=asan))
    try:
        d.wait_ready()
        yield d
    finally:
        d.terminate(timeout=10)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def stream(port, path, key, recv_size=4096):
    """GET with a small receive buffer, reading slowly-ish; returns the de-chunked body."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    s.settimeout(60)
    s.connect(("127.0.0.1", port))
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
               f"Accept: text/csv\r\nConnection: close\r\n\r\n").encode())
    raw = bytearray()
    n = 0
    while True:
        data = s.recv(recv_size)
        if not data:
            break
        raw += data
        n += 1
        if n % 256 == 0:
            time.sleep(0.002)
    s.close()
    head, _, rest = bytes(raw).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"transfer-encoding: chunked" in head.lower(), head
    body = bytearray()
    pos = 0
    while True:
        end = rest.index(b"\r\n", pos)
        size = int(rest[pos:end].split(b";")[0], 16)
        if size == 0:
            break
        body += rest[end + 2:end + 2 + size]
        pos = end + 2 + size + 2
    return bytes(body)


def test_ten_thousand_rows_stream_in_bounded_memory(csvd, keys, cluster, code_pool):
    api = csvd.api
    r = api.post("/v1/municipalities", {"code": code_pool(), "name": "Veel Werklabs"}, key=keys.staff)
    m = assert_status(r, 201)
    out = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", cluster.url, "-c",
         f"INSERT INTO werklabs (municipality_id, title, shared_vision) "
         f"SELECT '{m['id']}', 'Werklab ' || g, '{VISION}' || g FROM generate_series(1, {ROWS}) g"],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    path = qs("/v1/werklabs", municipalityId=m["id"])
    # Warm up: connections, caches, one small CSV and one JSON page.
    stream(csvd.port, qs("/v1/municipalities", code=m["code"]), keys.staff)
    assert api.get(qs("/v1/werklabs", municipalityId=m["id"], limit=200), key=keys.staff).status == 200
    pid = csvd.proc.pid
    baseline = max(rss_kb(pid) for _ in range(5))
    samples, done = [], threading.Event()

    def sample():
        while not done.is_set():
            samples.append(rss_kb(pid))
            time.sleep(0.003)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.monotonic()
    try:
        body = stream(csvd.port, path, keys.staff)
    finally:
        done.set()
        sampler.join(5)
    took = time.monotonic() - began
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    header, rows = rows[0], rows[1:]
    assert len(rows) == ROWS, len(rows)
    title = header.index("title")
    assert {row[title] for row in rows} == {f"Werklab {g}" for g in range(1, ROWS + 1)}
    assert len({row[0] for row in rows}) == ROWS
    growth_mb = (max(samples) - baseline) / 1024
    body_mb = len(body) / 1e6
    print(f"\nCSV of {ROWS} rows: {body_mb:.1f} MB in {took:.2f}s; daemon VmRSS {baseline / 1024:.1f} MB "
          f"before, peak {max(samples) / 1024:.1f} MB ({len(samples)} samples): growth {growth_mb:.1f} MB")
    # A server that built the whole answer before sending it would hold at least the body
    # (here ~22 MB of text, more with the rows it was made from): half of it is the bound.
    bound = body_mb / 2
    assert body_mb > 20, "the body is too small for the bound to mean anything"
    assert growth_mb < bound, (f"VmRSS grew by {growth_mb:.1f} MB while streaming a {body_mb:.1f} MB "
                               f"CSV: the answer is not streamed in bounded memory")

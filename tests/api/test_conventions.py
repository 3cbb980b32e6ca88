"""HTTP conventions that hold for every response: headers, errors, methods, media types,
body limits, request ids, keep-alive."""

import json
import uuid

import pytest

from wlclient import (UUID_RE, assert_conventions, assert_problem, assert_status, chunked,
                      describe, raw_request)

MIB = 1024 * 1024


def big_body(code, size):
    """A JSON municipality of about `size` bytes (the bulk in notes)."""
    head = json.dumps({"code": code, "name": "Groot", "notes": ""})[:-2]
    return (head + "x" * (size - len(head) - 2) + '"}').encode()


def count_code(api, keys, code):
    r = api.get(f"/v1/municipalities?code={code}", key=keys.admin)
    assert r.status == 200, describe(r)
    return len(r.json["items"])


# ------------------------------------------------------------------ every status code


def upload_413(api, keys, code, rid):
    body = big_body(code, 2 * MIB)
    with api.raw() as c:
        c.send(raw_request("POST", "/v1/municipalities", {
            "Authorization": f"Bearer {keys.admin}", "Content-Type": "application/json",
            "Content-Length": str(len(body)), "X-Request-Id": rid}))
        c.send_until_answered([body[i:i + 65536] for i in range(0, len(body), 65536)])
        return c.response("POST", "/v1/municipalities")


SCENARIOS = {
    200: lambda t: t.api.get("/v1/municipalities?limit=1", key=t.keys.admin, headers=t.h),
    201: lambda t: t.api.post("/v1/municipalities", {"code": t.code, "name": "Nieuw"},
                              key=t.keys.admin, headers=t.h),
    204: lambda t: t.api.delete(f"/v1/municipalities/{t.m['id']}", key=t.keys.admin, headers=t.h),
    304: lambda t: t.api.get(f"/v1/municipalities/{t.m['id']}", key=t.keys.admin,
                             headers=dict(t.h, **{"If-None-Match": f'"{t.m["version"]}"'})),
    400: lambda t: t.api.get("/v1/municipalities?limit=0", key=t.keys.admin, headers=t.h),
    401: lambda t: t.api.get("/v1/municipalities", headers=t.h),
    403: lambda t: t.api.post("/v1/municipalities", {"code": t.code, "name": "Nieuw"},
                              key=t.keys.partner, headers=t.h),
    404: lambda t: t.api.get("/v1/nothing-here", key=t.keys.admin, headers=t.h),
    405: lambda t: t.api.delete("/v1/municipalities", key=t.keys.admin, headers=t.h),
    406: lambda t: t.api.get("/v1/municipalities", key=t.keys.admin,
                             headers=dict(t.h, Accept="text/html")),
    412: lambda t: t.api.patch(f"/v1/municipalities/{t.m['id']}", {"notes": "x"}, key=t.keys.admin,
                               headers=dict(t.h, **{"If-Match": '"999"'})),
    413: lambda t: upload_413(t.api, t.keys, t.code, t.h["X-Request-Id"]),
    415: lambda t: t.api.post("/v1/municipalities", body="code=GM9999", content_type="text/plain",
                              key=t.keys.admin, headers=t.h),
}


class Ctx:
    pass


@pytest.mark.parametrize("status", sorted(SCENARIOS))
def test_every_response_carries_the_conventional_headers(api, keys, municipality, fresh_code, status):
    t = Ctx()
    t.api, t.keys, t.m, t.code = api, keys, municipality, fresh_code
    rid = f"conventions-{status}-{uuid.uuid4().hex[:8]}"
    t.h = {"X-Request-Id": rid}
    r = SCENARIOS[status](t)
    assert r.status == status, describe(r)
    assert_conventions(r)
    assert r.header("X-Request-Id") == rid, describe(r)
    if status >= 400:
        assert_problem(r, status)
    if status in (204, 304):
        assert r.body == b"", describe(r)
    if status in (200, 201):
        assert r.header("Content-Type").replace(" ", "").lower() == "application/json;charset=utf-8", \
            describe(r)


# ------------------------------------------------------------------ request id


def test_request_id_is_made_when_absent_and_unique(api):
    ids = {api.get("/healthz").header("X-Request-Id") for _ in range(3)}
    assert len(ids) == 3
    for rid in ids:
        assert UUID_RE.match(rid), rid


@pytest.mark.parametrize("rid", ["abc-123", "Req_0001.x:y/z", "a" * 128],
                         ids=["plain", "punctuation", "128-chars"])
def test_sane_request_id_is_echoed(api, rid):
    r = api.get("/healthz", headers={"X-Request-Id": rid})
    assert r.header("X-Request-Id") == rid, describe(r)


@pytest.mark.parametrize("rid", ["a" * 129, "a" * 200, "abc\x01def", "abc\x7fdef", "abc\tdef",
                                 "abc\xe9def", "abc\x1b[31mred"],
                         ids=["129-chars", "200-chars", "ctrl-01", "del", "tab", "latin1", "escape"])
def test_insane_request_id_is_replaced(api, rid):
    with api.raw() as c:
        c.send(raw_request("GET", "/healthz", {"X-Request-Id": rid, "Connection": "close"}))
        r = c.response("GET", "/healthz")
    got = r.header("X-Request-Id")
    assert got and got != rid and UUID_RE.match(got), describe(r)
    assert_conventions(r)


# ------------------------------------------------------------------ paths and methods


@pytest.mark.parametrize("path", ["/v1/municipalities/", "/v1/municipalities/{id}/", "/healthz/",
                                  "/v1/openapi.json/", "/v1/api-keys/", "/v1/", "/v2/municipalities",
                                  "/v1/Municipalities"])
def test_trailing_slash_and_unknown_paths_are_404(api, keys, municipality, path):
    path = path.replace("{id}", municipality["id"])
    r = api.get(path, key=keys.admin)
    assert_problem(r, 404)
    assert r.header("Location") is None, "no redirect"


@pytest.mark.parametrize("method,path,allow", [
    ("DELETE", "/v1/municipalities", {"GET", "HEAD", "POST", "OPTIONS"}),
    ("PUT", "/v1/municipalities", {"GET", "HEAD", "POST", "OPTIONS"}),
    ("PUT", "/v1/municipalities/{id}", {"GET", "HEAD", "PATCH", "DELETE", "OPTIONS"}),
    ("POST", "/v1/municipalities/{id}", {"GET", "HEAD", "PATCH", "DELETE", "OPTIONS"}),
    ("PATCH", "/v1/api-keys/{id}", {"GET", "HEAD", "DELETE", "OPTIONS"}),
    ("DELETE", "/v1/api-keys", {"GET", "HEAD", "POST", "OPTIONS"}),
    ("POST", "/healthz", {"GET", "HEAD", "OPTIONS"}),
    ("DELETE", "/v1/openapi.json", {"GET", "HEAD", "OPTIONS"}),
])
def test_wrong_method_is_405_with_allow(api, keys, municipality, method, path, allow):
    path = path.replace("{id}", municipality["id"])
    before = api.get(f"/v1/municipalities/{municipality['id']}", key=keys.admin).json
    body = {"name": "Veranderd"} if method in ("PUT", "POST", "PATCH") else None
    r = api.request(method, path, json_body=body, key=keys.admin)
    assert_problem(r, 405)
    got = {m.strip() for m in (r.header("Allow") or "").split(",") if m.strip()}
    assert got == allow, describe(r)
    assert api.get(f"/v1/municipalities/{municipality['id']}", key=keys.admin).json == before


# Headers that differ between any two requests: the date, the request id, and the rate limit
# left to the key (each request takes one).
IGNORED_IN_HEAD = {"date", "x-request-id", "ratelimit-remaining", "ratelimit-reset"}


@pytest.mark.parametrize("path", ["/v1/municipalities/{id}", "/v1/municipalities?limit=3",
                                  "/healthz", "/v1/openapi.json", "/v1/nothing", "/v1/municipalities/{missing}"])
def test_head_is_get_without_body(api, keys, municipality, path):
    path = path.replace("{id}", municipality["id"]).replace("{missing}", str(uuid.uuid4()))
    g = api.get(path, key=keys.admin)
    h = api.head(path, key=keys.admin)
    assert h.status == g.status, describe(h)
    assert_conventions(h)
    gh = {k.lower(): v for k, v in g.headers.items() if k.lower() not in IGNORED_IN_HEAD}
    hh = {k.lower(): v for k, v in h.headers.items() if k.lower() not in IGNORED_IN_HEAD}
    if "content-length" in hh:
        assert int(hh["content-length"]) == len(g.body), describe(h)
    gh.pop("content-length", None), hh.pop("content-length", None)
    gh.pop("transfer-encoding", None), hh.pop("transfer-encoding", None)
    assert hh == gh
    # On one connection: if HEAD had sent a body, the following GET would be misread.
    with api.raw() as c:
        auth = {"Authorization": f"Bearer {keys.admin}"}
        c.send(raw_request("HEAD", path, auth))
        rh = c.response("HEAD", path)
        c.send(raw_request("GET", path, dict(auth, Connection="close")))
        rg = c.response("GET", path)
        assert rh.status == g.status and rg.status == g.status, (describe(rh), describe(rg))
        assert rg.body == g.body, describe(rg)
        assert c.at_eof(5), "data after the GET response: HEAD sent a body"


# ------------------------------------------------------------------ media types


@pytest.mark.parametrize("path", ["/v1/municipalities", "/v1/municipalities/{id}", "/healthz"])
def test_unservable_accept_is_406(api, keys, municipality, path):
    path = path.replace("{id}", municipality["id"])
    assert_problem(api.get(path, key=keys.admin, headers={"Accept": "text/html"}), 406)
    assert_problem(api.get(path, key=keys.admin, headers={"Accept": "image/png, text/xml"}), 406)


@pytest.mark.parametrize("accept", ["application/json", "*/*", "application/*",
                                    "text/html;q=0.9, application/json",
                                    "application/json; charset=utf-8"])
def test_servable_accept_is_200(api, keys, accept):
    r = api.get("/v1/municipalities?limit=1", key=keys.admin, headers={"Accept": accept})
    assert_status(r, 200)


@pytest.mark.parametrize("ctype", ["text/plain", "", "application/x-www-form-urlencoded",
                                   "application/merge-patch+json", "multipart/form-data; boundary=x",
                                   "application/jsonp"])
def test_post_needs_a_json_body(api, keys, fresh_code, ctype):
    body = json.dumps({"code": fresh_code, "name": "Tekst"})
    r = api.post("/v1/municipalities", body=body, content_type=ctype, key=keys.admin)
    assert_problem(r, 415)
    assert count_code(api, keys, fresh_code) == 0


@pytest.mark.parametrize("ctype", ["application/json", "application/json; charset=utf-8",
                                   "Application/JSON"])
def test_post_accepts_json_media_types(api, keys, fresh_code, ctype):
    r = api.post("/v1/municipalities", body=json.dumps({"code": fresh_code, "name": "Json"}),
                 content_type=ctype, key=keys.admin)
    assert_status(r, 201)


@pytest.mark.parametrize("ctype,status", [
    ("application/json", 200), ("application/merge-patch+json", 200),
    ("text/plain", 415), ("", 415), ("application/xml", 415)])
def test_patch_media_types(api, keys, municipality, ctype, status):
    url = f"/v1/municipalities/{municipality['id']}"
    r = api.patch(url, body=json.dumps({"notes": "via " + ctype}), content_type=ctype, key=keys.admin)
    after = api.get(url, key=keys.admin).json
    if status == 200:
        assert_status(r, 200)
        assert after["notes"] == "via " + ctype
    else:
        assert_problem(r, status)
        assert after == municipality


# ------------------------------------------------------------------ body limits


def test_2mib_body_with_content_length_is_413(api, keys, fresh_code):
    r = upload_413(api, keys, fresh_code, "big-upload")
    assert_problem(r, 413)
    assert count_code(api, keys, fresh_code) == 0


@pytest.mark.parametrize("size", [2 * MIB, 3000])
def test_chunked_body_is_411_and_closes(api, keys, fresh_code, size):
    """Bodies are JSON of known length: Transfer-Encoding is refused before any of it is read."""
    body = json.dumps({"code": fresh_code, "name": "Chunky", "notes": "n" * size}).encode()
    with api.raw() as c:
        c.send(raw_request("POST", "/v1/municipalities", {
            "Authorization": f"Bearer {keys.admin}", "Content-Type": "application/json",
            "Transfer-Encoding": "chunked"}))
        c.send_until_answered(chunked(body))
        r = c.response("POST", "/v1/municipalities")
        assert c.at_eof(wait=5)
    assert_problem(r, 411)
    assert count_code(api, keys, fresh_code) == 0


def test_body_just_under_the_limit_is_validated_not_refused(api, keys, fresh_code):
    r = api.post("/v1/municipalities", body=big_body(fresh_code, MIB - 100), key=keys.admin)
    assert_problem(r, 400, names={"notes": "maxLength"})
    assert count_code(api, keys, fresh_code) == 0


# ------------------------------------------------------------------ bodies that are not JSON objects


BAD_JSON = {
    "empty": b"",
    "whitespace": b"   \n",
    "truncated": b'{"code": "GM9',
    "unquoted-key": b"{code: 1}",
    "trailing-garbage": b'{"name": "a"} x',
    "two-objects": b'{"name": "a"}{"name": "b"}',
    "trailing-comma": b'{"name": "a",}',
    "invalid-utf8": b'{"code": "CODE", "name": "\xff\xfe"}',
    "nul-in-string": b'{"code": "CODE", "name": "a\\u0000b"}',
    "duplicate-key": b'{"code": "CODE", "name": "a", "name": "b"}',
    "duplicate-nested-key": b'{"code": "CODE", "name": "a", "contact": {"name": "x", "name": "y"}}',
}


@pytest.mark.parametrize("case", sorted(BAD_JSON))
def test_malformed_body_is_400(api, keys, fresh_code, case):
    body = BAD_JSON[case].replace(b"CODE", fresh_code.encode())
    r = api.post("/v1/municipalities", body=body, key=keys.admin)
    p = assert_problem(r, 400)
    if case != "nul-in-string":
        assert not p.get("invalidParams"), describe(r)
    assert count_code(api, keys, fresh_code) == 0


@pytest.mark.parametrize("case", ["empty", "truncated", "duplicate-key"])
def test_malformed_patch_body_is_400_and_changes_nothing(api, keys, municipality, case):
    url = f"/v1/municipalities/{municipality['id']}"
    r = api.patch(url, body=BAD_JSON[case].replace(b"CODE", b"GM0001"), key=keys.admin)
    assert_problem(r, 400)
    assert api.get(url, key=keys.admin).json == municipality


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"42", b"null", b"true", b'[{"code": "GM9000"}]'])
def test_body_must_be_an_object(api, keys, body):
    before = api.list_all("/v1/municipalities", keys.admin)[0]
    assert_problem(api.post("/v1/municipalities", body=body, key=keys.admin), 400)
    assert len(api.list_all("/v1/municipalities", keys.admin)[0]) == len(before)


# ------------------------------------------------------------------ query strings


@pytest.mark.parametrize("path", ["/v1/municipalities", "/v1/municipalities/{id}", "/v1/api-keys"])
def test_unknown_query_key_is_400(api, keys, municipality, path):
    path = path.replace("{id}", municipality["id"])
    r = api.get(path + "?colour=red", key=keys.admin)
    assert_problem(r, 400, names={"colour": "unknown"})


def test_all_bad_query_values_are_listed_at_once(api, keys):
    r = api.get("/v1/municipalities?limit=0&sort=shoeSize&updatedSince=gisteren&cursor=x", key=keys.admin)
    assert_problem(r, 400, names={"limit", "sort", "updatedSince", "cursor"})


def test_all_bad_query_keys_are_listed_at_once(api, keys):
    r = api.get("/v1/municipalities?colour=red&limit=0&sort=shoeSize&Province=Zeeland", key=keys.admin)
    assert_problem(r, 400, names={"colour": "unknown", "limit": {"minimum", "format", "type"},
                                  "sort": {"enum", "unknown", "pattern"}, "Province": "unknown"})


# ------------------------------------------------------------------ keep-alive


KEEPALIVE_FIRST = {
    "200": ("GET", "/healthz", None, None),
    "404": ("GET", "/v1/nothing", None, "admin"),
    "401": ("GET", "/v1/municipalities", None, None),
    "400-body": ("POST", "/v1/municipalities", b'{"code":', "admin"),
    "400-query": ("GET", "/v1/municipalities?limit=0", None, "admin"),
    "405": ("DELETE", "/v1/municipalities", None, "admin"),
    "415": ("POST", "/v1/municipalities", "text", "admin"),
}


@pytest.mark.parametrize("first", sorted(KEEPALIVE_FIRST))
def test_keep_alive_serves_two_requests_on_one_connection(api, keys, first):
    method, path, body, role = KEEPALIVE_FIRST[first]
    conn = api.connection()
    try:
        headers = {"Authorization": f"Bearer {keys[role]}"} if role else {}
        if body == "text":
            headers["Content-Type"] = "text/plain"
            body = b"hello"
        elif body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        r1 = conn.getresponse()
        r1.read()
        assert str(r1.status).startswith(first[:3]), (r1.status, r1.headers)
        assert not r1.will_close, f"server closed after {first}: {dict(r1.headers)}"
        sock = conn.sock
        assert sock is not None
        local = sock.getsockname()
        conn.request("GET", "/v1/municipalities?limit=1", headers={"Authorization": f"Bearer {keys.admin}"})
        r2 = conn.getresponse()
        r2.read()
        assert r2.status == 200
        assert conn.sock is sock and sock.getsockname() == local, "http.client reconnected"
    finally:
        conn.close()


def test_keep_alive_many_requests(api, keys):
    with api.raw() as c:
        for i in range(20):
            c.send(raw_request("GET", "/v1/municipalities?limit=2",
                               {"Authorization": f"Bearer {keys.admin}", "X-Request-Id": f"ka-{i}"}))
            r = c.response("GET", "/v1/municipalities?limit=2")
            assert r.status == 200 and r.header("X-Request-Id") == f"ka-{i}", describe(r)
        assert not c.at_eof(0.2)

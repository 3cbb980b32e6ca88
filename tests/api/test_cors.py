"""CORS: the configured origin (https://www.lsabewoners.nl) and everyone else."""

import pytest

from conftest import CORS_ORIGIN
from wlclient import assert_conventions, assert_problem, describe


PUBLIC_PATHS = {"/healthz", "/readyz", "/v1/openapi.json"}


def cors_headers(resp):
    return {k.lower(): v for k, v in resp.headers.items() if k.lower().startswith("access-control-")}


def vary(resp):
    return {v.strip().lower() for h in resp.headers.get_all("Vary") or [] for v in h.split(",")}


@pytest.mark.parametrize("role,path,status", [
    ("admin", "/v1/municipalities?limit=1", 200),
    ("partner", "/v1/municipalities?limit=1", 200),
    (None, "/v1/municipalities", 401),
    ("partner", "/v1/api-keys", 403),
    ("admin", "/v1/nothing", 404),
    (None, "/healthz", 200),
])
def test_allowed_origin_gets_cors_headers(api, keys, role, path, status):
    r = api.get(path, key=keys[role], headers={"Origin": CORS_ORIGIN})
    assert r.status == status, describe(r)
    if path in PUBLIC_PATHS and r.header("Access-Control-Allow-Origin") == "*":
        pass  # public endpoints may allow every origin (api.md)
    else:
        assert r.header("Access-Control-Allow-Origin") == CORS_ORIGIN, describe(r)
        assert "origin" in vary(r), describe(r)
    assert r.header("Access-Control-Expose-Headers"), describe(r)
    assert_conventions(r)


@pytest.mark.parametrize("origin", ["https://evil.example", "https://www.lsabewoners.nl.evil.example",
                                    "http://www.lsabewoners.nl", "https://WWW.LSABEWONERS.NL.x", "null"])
def test_other_origins_get_no_cors_headers(api, keys, origin):
    r = api.get("/v1/municipalities?limit=1", key=keys.admin, headers={"Origin": origin})
    assert r.status == 200, describe(r)
    assert cors_headers(r) == {}, describe(r)


def test_no_origin_no_cors_headers(api, keys):
    r = api.get("/v1/municipalities?limit=1", key=keys.admin)
    assert cors_headers(r) == {}, describe(r)


@pytest.mark.parametrize("path,method", [
    ("/v1/municipalities", "POST"),
    ("/v1/municipalities/{id}", "PATCH"),
    ("/v1/municipalities/{id}", "DELETE"),
    ("/v1/api-keys", "GET"),
])
def test_preflight(api, municipality, path, method):
    path = path.replace("{id}", municipality["id"])
    r = api.options(path, headers={
        "Origin": CORS_ORIGIN, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert r.status == 204, describe(r)
    assert r.body == b""
    assert_conventions(r)
    assert r.header("Access-Control-Allow-Origin") == CORS_ORIGIN, describe(r)
    methods = {m.strip().upper() for m in (r.header("Access-Control-Allow-Methods") or "").split(",")}
    assert method in methods, describe(r)
    allowed = {h.strip().lower() for h in (r.header("Access-Control-Allow-Headers") or "").split(",")}
    assert {"authorization", "content-type"} <= allowed, describe(r)
    assert int(r.header("Access-Control-Max-Age") or "0") > 0, describe(r)
    assert "origin" in vary(r), describe(r)


def test_preflight_from_other_origin_has_no_cors_headers(api):
    r = api.options("/v1/municipalities", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert cors_headers(r) == {}, describe(r)
    assert_conventions(r)


def test_preflight_on_unknown_path_is_404(api):
    r = api.options("/v1/nothing", headers={
        "Origin": CORS_ORIGIN, "Access-Control-Request-Method": "GET"})
    assert_problem(r, 404)


@pytest.mark.parametrize("origin", [None, CORS_ORIGIN, "https://evil.example"])
def test_openapi_allows_every_origin(api, origin):
    r = api.get("/v1/openapi.json", headers={"Origin": origin} if origin else {})
    assert r.status == 200, describe(r)
    assert r.header("Access-Control-Allow-Origin") == "*", describe(r)
    assert r.json and r.json.get("openapi") == "3.0.3"
    assert_conventions(r)


ALLOWED_BEFORE = {"authorization", "content-type", "if-match", "if-none-match", "idempotency-key",
                  "x-request-id"}
EXPOSED_BEFORE = {"api-version", "etag", "link", "location", "retry-after", "x-request-id",
                  "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "idempotent-replayed",
                  "content-disposition"}


def header_set(resp, name):
    return {h.strip().lower() for h in (resp.header(name) or "").split(",") if h.strip()}


def test_preflight_allows_trace_context(api):
    """Browsers' tracing SDKs send W3C Trace Context headers; a preflight that did not allow them
    would make every traced request fail before it is sent."""
    r = api.options("/v1/municipalities", headers={
        "Origin": CORS_ORIGIN, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization, traceparent, tracestate"})
    assert r.status == 204, describe(r)
    allowed = header_set(r, "Access-Control-Allow-Headers")
    assert {"traceparent", "tracestate"} <= allowed, describe(r)
    assert ALLOWED_BEFORE <= allowed, describe(r)


@pytest.mark.parametrize("role,path,status", [
    ("admin", "/v1/municipalities?limit=1", 200),
    (None, "/v1/municipalities", 401),
    (None, "/v1/openapi.json", 200),
])
def test_www_authenticate_is_exposed(api, keys, role, path, status):
    """A front end reads WWW-Authenticate of a 401 (error="invalid_token": sign in again)."""
    r = api.get(path, key=keys[role], headers={"Origin": CORS_ORIGIN})
    assert r.status == status, describe(r)
    exposed = header_set(r, "Access-Control-Expose-Headers")
    assert "www-authenticate" in exposed, describe(r)
    assert EXPOSED_BEFORE <= exposed, describe(r)
    if status == 401:
        assert r.header("WWW-Authenticate"), describe(r)


def test_request_with_trace_context_is_served(api, keys):
    r = api.get("/v1/municipalities?limit=1", key=keys.admin, headers={
        "Origin": CORS_ORIGIN,
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "tracestate": "vendor=value"})
    assert r.status == 200, describe(r)
    assert r.header("Access-Control-Allow-Origin") == CORS_ORIGIN, describe(r)

"""Authentication (401), authorisation per route and role (403), keys in logs."""

import datetime
import time
import uuid

import pytest

from domain import make_trainer
from openapi_fields import load_document
from wlclient import TIMESTAMP_RE, assert_problem, assert_status, describe, parse_time, wait_for

ROLES = [None, "partner", "staff", "admin", "trainer"]
PUBLIC = {None, "partner", "staff", "admin", "trainer"}
SIGNED_IN = PUBLIC - {None}
READ = {"partner", "staff", "admin"}
WRITE = {"staff", "admin"}
ADMIN = {"admin"}
TRAINER = {"trainer"}  # within the werklabs the trainer is assigned to (test_trainer_role.py)

# Every route of the server and the roles that may use it (None: no key).
# A route the server has but this table lacks fails test_every_route_has_an_access_entry:
# add it here when adding it to the server.
ACCESS = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): ADMIN,
    ("GET", "/v1/openapi.json"): PUBLIC,
    ("GET", "/v1/me"): SIGNED_IN,
    ("GET", "/v1/municipalities"): READ | TRAINER,
    ("POST", "/v1/municipalities"): WRITE,
    ("GET", "/v1/municipalities/{id}"): READ | TRAINER,
    ("PATCH", "/v1/municipalities/{id}"): WRITE,
    ("DELETE", "/v1/municipalities/{id}"): WRITE,
    ("GET", "/v1/api-keys"): ADMIN,
    ("POST", "/v1/api-keys"): ADMIN,
    ("GET", "/v1/api-keys/{id}"): ADMIN,
    ("DELETE", "/v1/api-keys/{id}"): ADMIN,
    # The domain (issue 3): partners read, staff and admins write; trainers, participants and
    # attendance (personal data) are staff only; testimonials and new inquiries are public.
    # Trainers (issue 10) read what their werklabs hold and record attendance, session details
    # and feedback for them; never inquiries, keys, the change feed or the audit log.
    ("GET", "/v1/initiatives"): READ | TRAINER,
    ("POST", "/v1/initiatives"): WRITE,
    ("GET", "/v1/initiatives/{id}"): READ | TRAINER,
    ("PATCH", "/v1/initiatives/{id}"): WRITE,
    ("DELETE", "/v1/initiatives/{id}"): WRITE,
    ("GET", "/v1/trainers"): WRITE | TRAINER,
    ("POST", "/v1/trainers"): WRITE,
    ("GET", "/v1/trainers/{id}"): WRITE | TRAINER,
    ("PATCH", "/v1/trainers/{id}"): WRITE,
    ("DELETE", "/v1/trainers/{id}"): WRITE,
    ("GET", "/v1/werklabs"): READ | TRAINER,
    ("POST", "/v1/werklabs"): WRITE,
    ("GET", "/v1/werklabs/{id}"): READ | TRAINER,
    ("PATCH", "/v1/werklabs/{id}"): WRITE,
    ("DELETE", "/v1/werklabs/{id}"): WRITE,
    ("GET", "/v1/werklabs/{id}/trainers"): READ | TRAINER,
    ("PUT", "/v1/werklabs/{id}/trainers/{role}"): WRITE,
    ("DELETE", "/v1/werklabs/{id}/trainers/{role}"): WRITE,
    ("GET", "/v1/werklabs/{id}/participants"): WRITE | TRAINER,
    ("POST", "/v1/werklabs/{id}/participants"): WRITE,
    ("GET", "/v1/werklabs/{id}/participants/{participantId}"): WRITE | TRAINER,
    ("PATCH", "/v1/werklabs/{id}/participants/{participantId}"): WRITE,
    ("DELETE", "/v1/werklabs/{id}/participants/{participantId}"): WRITE,
    ("GET", "/v1/sessions"): READ | TRAINER,
    ("POST", "/v1/sessions"): WRITE,
    ("GET", "/v1/sessions/{id}"): READ | TRAINER,
    ("PATCH", "/v1/sessions/{id}"): WRITE | TRAINER,
    ("DELETE", "/v1/sessions/{id}"): WRITE,
    ("GET", "/v1/sessions/{id}/attendance"): WRITE | TRAINER,
    ("PUT", "/v1/sessions/{id}/attendance"): WRITE | TRAINER,
    ("GET", "/v1/feedback"): READ | TRAINER,
    ("POST", "/v1/feedback"): WRITE | TRAINER,
    ("GET", "/v1/feedback/{id}"): READ | TRAINER,
    ("PATCH", "/v1/feedback/{id}"): WRITE,
    ("DELETE", "/v1/feedback/{id}"): WRITE,
    ("GET", "/v1/testimonials"): PUBLIC,
    ("GET", "/v1/inquiries"): WRITE,
    ("POST", "/v1/inquiries"): PUBLIC,
    ("GET", "/v1/inquiries/{id}"): WRITE,
    ("PATCH", "/v1/inquiries/{id}"): WRITE,
    ("GET", "/v1/stats"): READ | TRAINER,
    ("GET", "/v1/changes"): READ,
    ("GET", "/v1/audit-log"): ADMIN,
    ("POST", "/v1/data-subject-requests"): ADMIN,
    # Webhooks (issue 11): subscriptions, their secrets and their deliveries are for
    # administrators only.
    ("GET", "/v1/webhook-subscriptions"): ADMIN,
    ("POST", "/v1/webhook-subscriptions"): ADMIN,
    ("GET", "/v1/webhook-subscriptions/{id}"): ADMIN,
    ("PATCH", "/v1/webhook-subscriptions/{id}"): ADMIN,
    ("DELETE", "/v1/webhook-subscriptions/{id}"): ADMIN,
    ("POST", "/v1/webhook-subscriptions/{id}/rotate-secret"): ADMIN,
    ("GET", "/v1/webhook-subscriptions/{id}/deliveries"): ADMIN,
    ("GET", "/v1/webhook-subscriptions/{id}/deliveries/{deliveryId}"): ADMIN,
}


def server_routes(werklabd):
    out = werklabd.run("routes")
    assert out.returncode == 0, out.stderr
    routes = set()
    for line in out.stdout.splitlines():
        if not line.strip():
            continue
        methods, path = line.split()
        for m in methods.split(","):
            if m not in ("HEAD", "OPTIONS"):
                routes.add((m, path))
    return routes


def test_every_route_has_an_access_entry(werklabd):
    missing = server_routes(werklabd) - set(ACCESS)
    assert not missing, f"routes without an entry in ACCESS (test_auth.py): {sorted(missing)}"


def test_every_access_entry_is_a_route(werklabd):
    stale = set(ACCESS) - server_routes(werklabd)
    assert not stale, f"ACCESS entries the server does not route: {sorted(stale)}"


def fill(path):
    """A path with every {parameter} replaced by an id that does not exist."""
    out, rest = "", path
    while "{" in rest:
        before, _, after = rest.partition("{")
        out += before + str(uuid.uuid4())
        rest = after.partition("}")[2]
    return out + rest


def test_openapi_x_roles_are_the_access_table(werklabd):
    """What openapi.yaml promises per operation (x-roles) is what the server does."""
    promised = {}
    for path, item in load_document()["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "x-roles" in operation:
                roles = {None if r == "public" else r for r in operation["x-roles"]}
                if None in roles:  # public: any caller, signed in or not
                    roles |= SIGNED_IN
                # A path item with servers of its own ("/") sits outside /v1.
                prefix = "" if item.get("servers") else "/v1"
                promised[(method.upper(), prefix + path)] = roles
    wrong = {route: (sorted(promised.get(route, set()), key=str), sorted(roles, key=str))
             for route, roles in ACCESS.items() if promised.get(route) != roles}
    assert not wrong, f"x-roles (openapi.yaml) against ACCESS (server): {wrong}"


@pytest.fixture(scope="module")
def trainer_subject(api, keys):
    """The subject of a trainer record, for the matrix's trainer tokens (assigned to nothing)."""
    subject = f"matrix-{uuid.uuid4().hex}"
    make_trainer(api, keys.admin, subject=subject)
    return subject


@pytest.mark.parametrize("role", ROLES, ids=[r or "none" for r in ROLES])
@pytest.mark.parametrize("method,path", sorted(ACCESS))
def test_role_matrix(api, keys, oidc, trainer_subject, method, path, role):
    body = {} if method in ("POST", "PATCH", "PUT") else None
    key = oidc.mint({"sub": trainer_subject, "roles": ["lsa-trainer"]}) if role == "trainer" else keys[role]
    r = api.request(method, fill(path), json_body=body, key=key)
    allowed = ACCESS[(method, path)]
    if role in allowed:
        assert r.status not in (401, 403) and r.status < 500, describe(r)
    elif role is None:
        assert_problem(r, 401)
        assert (r.header("WWW-Authenticate") or "").startswith("Bearer"), describe(r)
    else:
        assert_problem(r, 403)


# ------------------------------------------------------------------ 401


def unauthorized(api, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    r = api.get("/v1/municipalities", headers=headers)
    assert_problem(r, 401)
    assert (r.header("WWW-Authenticate") or "").split(" ")[0] == "Bearer", describe(r)
    return r


def utc(dt):
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def reference_401(api):
    return unauthorized(api, None).body


BAD_AUTHORIZATION = {
    "empty": "",
    "bearer-no-key": "Bearer",
    "bearer-blank": "Bearer ",
    "basic": "Basic dXNlcjpwYXNz",
    "token-scheme": "Token wlk_" + "0" * 64,
    "short": "Bearer wlk_1234",
    "not-hex": "Bearer wlk_" + "g" * 64,
    "no-prefix": "Bearer " + "a" * 64,
    "unknown": "Bearer wlk_" + "0123456789abcdef" * 4,
    "sql": "Bearer ' OR '1'='1",
    "long": "Bearer wlk_" + "a" * 5000,
}


@pytest.mark.parametrize("case", sorted(BAD_AUTHORIZATION))
def test_bad_keys_get_one_identical_401(api, reference_401, case):
    assert unauthorized(api, BAD_AUTHORIZATION[case]).body == reference_401


def test_valid_key_with_extra_or_changed_characters_is_401(api, keys, reference_401):
    last = "0" if keys.admin[-1] != "0" else "1"
    assert unauthorized(api, f"Bearer {keys.admin}0").body == reference_401
    assert unauthorized(api, f"Bearer {keys.admin[:-1]}{last}").body == reference_401
    assert unauthorized(api, f"Bearer {keys.admin[:-1]}").body == reference_401


def test_expired_key_is_401(api, werklabd, reference_401):
    # A key that expires a few seconds on, used once before then. Its first use must be answered
    # before the expiry for the test to hold: on a slow machine (creating a key starts a process)
    # it starts again with twice the time.
    for seconds in (3, 6, 12, 24):
        expires = (datetime.datetime.now(datetime.timezone.utc) +
                   datetime.timedelta(seconds=seconds)).replace(microsecond=0)  # as utc() gives it
        key = werklabd.create_key("staff", f"expiring-{uuid.uuid4().hex[:6]}", expires_at=utc(expires))
        r = api.get("/v1/municipalities?limit=1", key=key)
        if datetime.datetime.now(datetime.timezone.utc) < expires:
            break
    else:
        pytest.fail("no key could be used within 24 s of its creation")
    assert r.status == 200, f"key refused before it expired\n{describe(r)}"
    time.sleep(max(0.0, (expires - datetime.datetime.now(datetime.timezone.utc)).total_seconds()))
    r = wait_for(lambda: (lambda r: r if r.status == 401 else None)(
        api.get("/v1/municipalities", key=key)), timeout=3, what="the expired key to be refused")
    assert r.body == reference_401


def test_key_expired_at_creation_is_401(api, werklabd, reference_401):
    past = utc(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1))
    out = werklabd.run("create-key", "--role", "admin", "--name", "born-expired", "--expires-at", past)
    if out.returncode != 0:
        return  # refusing to make an expired key is fine too
    assert unauthorized(api, f"Bearer {out.stdout.strip()}").body == reference_401


def test_revoked_key_is_refused_at_once(api, keys, reference_401):
    r = api.post("/v1/api-keys", {"name": "to-revoke", "role": "staff"}, key=keys.admin)
    assert_status(r, 201)
    key, kid = r.json["key"], r.json["id"]
    for _ in range(3):  # used, so any cache holds it
        assert api.get("/v1/municipalities?limit=1", key=key).status == 200
    assert_status(api.delete(f"/v1/api-keys/{kid}", key=keys.admin), 204)
    assert unauthorized(api, f"Bearer {key}").body == reference_401
    for _ in range(8):  # whichever thread answers
        assert api.get("/v1/municipalities?limit=1", key=key).status == 401


def test_last_used_at_is_recorded(api, keys):
    r = api.post("/v1/api-keys", {"name": "last-used", "role": "partner"}, key=keys.admin)
    assert_status(r, 201)
    key, kid = r.json["key"], r.json["id"]
    assert r.json["lastUsedAt"] is None
    assert api.get(f"/v1/api-keys/{kid}", key=keys.admin).json["lastUsedAt"] is None
    assert api.get("/v1/municipalities?limit=1", key=key).status == 200

    def used():
        k = api.get(f"/v1/api-keys/{kid}", key=keys.admin).json
        return k if k["lastUsedAt"] else None
    k = wait_for(used, timeout=5, what="lastUsedAt")
    assert TIMESTAMP_RE.match(k["lastUsedAt"]), k
    assert parse_time(k["lastUsedAt"]) >= parse_time(k["createdAt"]), k


# ------------------------------------------------------------------ key in a query string


@pytest.mark.parametrize("param", ["key", "apiKey", "api_key", "access_token"])
def test_key_in_query_string_is_refused(api, keys, param):
    r = api.get(f"/v1/municipalities?{param}={keys.admin}", key=keys.admin)
    assert_problem(r, 400)
    r = api.get(f"/v1/municipalities?{param}={keys.admin}")
    assert r.status in (400, 401), describe(r)
    assert_problem(r, r.status)


# ------------------------------------------------------------------ the log (keep last in this module)


def test_secrets_never_in_the_log_but_key_ids_are(api, keys, daemon):
    rid = f"auth-log-{uuid.uuid4().hex[:8]}"
    for role in ("admin", "staff", "partner"):
        api.get("/v1/municipalities?limit=1", key=keys[role], headers={"X-Request-Id": f"{rid}-{role}"})
    api.get(f"/v1/municipalities?key={keys.staff}", key=keys.admin)
    created = api.post("/v1/api-keys", {"name": "log-check", "role": "staff"}, key=keys.admin).json
    api.get("/v1/municipalities?limit=1", key=created["key"])
    lines = daemon.wait_log(lambda l: l.get("requestId") == f"{rid}-partner")
    assert lines, "no log line for the request"
    text = daemon.log_text()
    for secret in (keys.admin, keys.staff, keys.partner, created["key"]):
        assert secret not in text and secret[4:] not in text and secret[4:20] not in text
    for role in ("admin", "staff", "partner"):
        kid = keys.ids.get(role)
        assert kid, f"no id known for the {role} key"
        line = daemon.wait_log(lambda l: l.get("requestId") == f"{rid}-{role}")
        assert line and line[0].get("keyId") == kid, line

"""OpenID Connect access tokens: tokens of a real provider (tests/oidc, the `oidc` fixture) for
each role, a key rotation picked up without a restart, and hostile tokens made here, each
refused alike (401 with invalid_token and one problem body, or 403 for a valid token without a
role) and changing nothing. Daemons of their own for: an issuer that cannot be reached, a
provider that went away, keys from a file, and no issuer at all.
"""

import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest

import oidc as harness
from conftest import Daemon, free_port, oidc_env, psql
from domain import make_trainer
from oidc import DROP
from wlclient import assert_problem, describe

PROBE = "/v1/municipalities?limit=1"  # any route partners, staff and admins may read


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rid():
    return f"oidc-{uuid.uuid4().hex[:12]}"


def get(api, token, path=PROBE):
    request_id = rid()
    return api.get(path, key=token, headers={"X-Request-Id": request_id}), request_id


def line_of(daemon, request_id):
    lines = daemon.wait_log(lambda l: l.get("requestId") == request_id)
    assert len(lines) == 1, f"no single log line for {request_id}"
    return lines[0]


def municipality_id(api, keys, code):
    r = api.get(f"/v1/municipalities?code={code}", key=keys.admin)
    assert r.status == 200 and len(r.json["items"]) == 1, describe(r)
    return r.json["items"][0]["id"]


# ------------------------------------------------------------------ tokens of the provider


def test_admin_and_staff_tokens(api, oidc, daemon):
    admin, staff = oidc.token("werklab-admin"), oidc.token("werklab-staff")
    r, request_id = get(api, admin, "/v1/api-keys?limit=1")
    assert r.status == 200, describe(r)
    line = line_of(daemon, request_id)
    assert line["subject"] == "werklab-admin" and line["client"] == "werklab-admin", line
    assert line["keyId"] is None and "authRefused" not in line, line
    assert get(api, staff)[0].status == 200
    # staff is not admin: the key list is not theirs
    assert get(api, staff, "/v1/api-keys?limit=1")[0].status == 403
    # twice: the second answer comes from the cache, alike
    assert get(api, admin, "/v1/api-keys?limit=1")[0].status == 200


def test_partner_token_is_limited_to_its_municipalities(api, oidc, keys):
    token = oidc.token("werklab-partner")
    inside, outside = municipality_id(api, keys, "GM0297"), municipality_id(api, keys, "GM0363")
    r, _ = get(api, token, f"/v1/municipalities/{inside}")
    assert r.status == 200 and r.json["code"] == "GM0297", describe(r)
    assert_problem(get(api, token, f"/v1/municipalities/{outside}")[0], 404)
    r, _ = get(api, token, "/v1/municipalities?limit=200")
    assert r.status == 200 and [m["code"] for m in r.json["items"]] == ["GM0297"], describe(r)


def test_highest_mapped_role_wins(api, oidc):
    token = oidc.mint(roles=["lsa-partner", "unknown", "lsa-admin", "lsa-staff"])
    assert get(api, token, "/v1/api-keys?limit=1")[0].status == 200
    # a single string is a role too
    assert get(api, oidc.mint(roles="lsa-staff"))[0].status == 200


def link_subject(api, keys, cluster, trainer, subject):
    """Sets a trainer's subject: through the API where trainers have the field, else in SQL."""
    r = api.patch(f"/v1/trainers/{trainer['id']}", {"subject": subject}, key=keys.admin,
                  headers={"If-Match": f'"{trainer["version"]}"'})
    if r.status != 200:
        psql(cluster.url, f"UPDATE trainers SET subject = '{subject}' WHERE id = '{trainer['id']}'")


def test_trainer_token_is_linked_by_subject(api, oidc, keys, cluster, daemon):
    token = oidc.token("werklab-trainer")
    # no trainer has the subject yet: 403, even where no role is needed
    if not psql(cluster.url, "SELECT id FROM trainers WHERE subject = 'werklab-trainer'"):
        r, request_id = get(api, token, "/healthz")
        assert_problem(r, 403)
        assert line_of(daemon, request_id)["authRefused"] == "no trainer record"
        link_subject(api, keys, cluster, make_trainer(api, keys.admin), "werklab-trainer")
    r, request_id = get(api, oidc.token("werklab-trainer"), "/healthz")
    assert r.status == 200, describe(r)
    line = line_of(daemon, request_id)
    assert line["subject"] == "werklab-trainer" and "authRefused" not in line, line


def test_trainer_token_is_linked_by_verified_email(api, oidc, keys, cluster):
    email = f"trainer-{uuid.uuid4().hex[:8]}@example.nl"
    make_trainer(api, keys.admin, email=email)
    person = {"sub": f"t-{uuid.uuid4().hex}", "roles": ["lsa-trainer"], "email": email.upper()}
    assert get(api, oidc.mint(person, email_verified=True), "/healthz")[0].status == 200
    # an address the provider did not verify links nothing
    assert_problem(get(api, oidc.mint(person, email_verified=False), "/healthz")[0], 403)
    assert_problem(get(api, oidc.mint(person), "/healthz")[0], 403)
    # two trainers with the address: no guess
    twin = f"twin-{uuid.uuid4().hex[:8]}@example.nl"
    make_trainer(api, keys.admin, email=twin)
    make_trainer(api, keys.admin, email=twin)
    person.update(email=twin, email_verified=True)
    assert_problem(get(api, oidc.mint(person), "/healthz")[0], 403)
    # a trainer whose subject is set is linked by that only
    linked = f"linked-{uuid.uuid4().hex[:8]}@example.nl"
    t = make_trainer(api, keys.admin, email=linked)
    link_subject(api, keys, cluster, t, f"s-{uuid.uuid4().hex}")
    person.update(email=linked)
    assert_problem(get(api, oidc.mint(person), "/healthz")[0], 403)


def test_token_without_mapped_role_is_forbidden(api, oidc, daemon):
    r, request_id = get(api, oidc.token("werklab-norole"))
    assert_problem(r, 403)
    assert r.header("WWW-Authenticate") is None, describe(r)
    assert line_of(daemon, request_id)["authRefused"]


# ------------------------------------------------------------------ hostile tokens


def signing_input(header, payload):
    return f"{b64url(json.dumps(header))}.{b64url(json.dumps(payload))}"


def valid_parts(oidc):
    now = int(time.time())
    header = {"alg": "RS256", "typ": "at+jwt", "kid": oidc.kid}
    payload = {"iss": oidc.issuer, "aud": oidc.audience, "iat": now, "exp": now + 300,
               "sub": "werklab-minted", "roles": ["lsa-admin"]}
    return header, payload


def alg_none(oidc, signature):
    header, payload = valid_parts(oidc)
    header["alg"] = "none"
    return signing_input(header, payload) + "." + signature


def hs256_with(oidc, secret):
    header, payload = valid_parts(oidc)
    header["alg"] = "HS256"
    head = signing_input(header, payload)
    return head + "." + b64url(hmac.new(secret, head.encode(), hashlib.sha256).digest())


def flip(token, part, char_index):
    """Flips the lowest bit of one byte of a part (1 payload, 2 signature), keeping the encoding."""
    parts = token.split(".")
    data = bytearray(unb64url(parts[part]))
    data[char_index] ^= 1
    parts[part] = b64url(bytes(data))
    return ".".join(parts)


def flipped_payload(oidc):
    token = oidc.mint(sub="werklab-minted")
    payload = unb64url(token.split(".")[1])
    at = payload.index(b"werklab-minted") + len("werklab-minted") - 1  # 'd' -> 'e'
    flipped = flip(token, 1, at)
    assert json.loads(unb64url(flipped.split(".")[1]))["sub"] == "werklab-mintee"
    return flipped


def token_of_length(oidc, n):
    """A well signed token of n characters, give or take three (base64url grows in steps)."""
    base = len(oidc.mint(pad=""))
    pad = (n - base) * 3 // 4
    while True:
        token = oidc.mint(pad="x" * pad)
        if n - 3 <= len(token) <= n:
            return token
        pad += -1 if len(token) > n else 1


def foreign_key_token(oidc):
    return oidc.mint(key=harness.new_key(), header={"kid": f"k-unknown-{uuid.uuid4().hex[:8]}"})


HOSTILE_401 = {
    "alg none, no signature": lambda o: alg_none(o, ""),
    "alg none, a signature": lambda o: alg_none(o, b64url(b"x" * 32)),
    "HS256 with the public key as PEM": lambda o: hs256_with(o, o.public_pem()),
    "HS256 with the public key as JWK": lambda o: hs256_with(o, o.public_jwk_text().encode()),
    "expired": lambda o: o.mint(iat=int(time.time()) - 900, exp=int(time.time()) - 120),
    "no exp": lambda o: o.mint(exp=DROP),
    "nbf in the future": lambda o: o.mint(nbf=int(time.time()) + 600),
    "wrong iss": lambda o: o.mint(iss=o.issuer + "/other"),
    "wrong aud": lambda o: o.mint(aud="https://elsewhere.test/api"),
    "unknown kid": foreign_key_token,
    "flipped bit in payload": flipped_payload,
    "flipped bit in signature": lambda o: flip(o.mint(), 2, 10),
    "a token of 16000 characters": lambda o: token_of_length(o, 16000),
    "header not JSON": lambda o: b64url("not json") + "." + o.mint().split(".", 1)[1],
    "typ of an ID token": lambda o: o.mint(header={"typ": "id_token+jwt"}),
    "sub too long": lambda o: o.mint(sub="s" * 300),
    "sub missing": lambda o: o.mint(sub=DROP),
    "municipalities not GM codes": lambda o: o.mint(roles=["lsa-partner"],
                                                    municipalities=["0297"]),
}
HOSTILE_403 = {
    "roles claim missing": lambda o: o.mint(roles=DROP),
    "roles claim empty": lambda o: o.mint(roles=[]),
    "roles claim an object": lambda o: o.mint(roles={"lsa-admin": True}),
    "roles claim numbers": lambda o: o.mint(roles=[1, 2]),
    "roles claim a number": lambda o: o.mint(roles=42),
    "roles claim mapping to nothing": lambda o: o.mint(roles=["lsa-visitor"]),
}


@pytest.fixture(scope="module")
def refused_body(api):
    """The one problem body every refused key or token gets."""
    r = api.get(PROBE, key="eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
    assert r.status == 401, describe(r)
    return r.body


def assert_creates_nothing(api, token, cluster, status):
    name = f"Hostile {uuid.uuid4().hex}"
    r = api.post("/v1/trainers", {"name": name, "email": "hostile@example.nl",
                                  "expertise": ["residentInitiatives"]}, key=token)
    assert r.status == status, describe(r)
    assert psql(cluster.url, f"SELECT count(*) FROM trainers WHERE name = '{name}'") == "0"


@pytest.mark.parametrize("name", sorted(HOSTILE_401))
def test_hostile_token_is_refused(api, oidc, daemon, cluster, refused_body, name):
    token = HOSTILE_401[name](oidc)
    r, request_id = get(api, token)
    assert_problem(r, 401)
    www = r.header("WWW-Authenticate") or ""
    assert www.startswith("Bearer ") and 'error="invalid_token"' in www, describe(r)
    assert r.body == refused_body, describe(r)
    line = line_of(daemon, request_id)
    assert isinstance(line.get("authRefused"), str) and line["authRefused"], line
    assert "subject" not in line, line
    log = daemon.log_text()
    assert token not in log and all(part not in log for part in token.split(".") if part)
    assert_creates_nothing(api, token, cluster, 401)


def test_token_beyond_the_header_limit_is_431(api, oidc, cluster):
    """A token of 16 KB does not fit in the 16384 bytes werklabd takes for all request headers
    (server/framing.c): 431 before any authentication, and nothing is made."""
    token = token_of_length(oidc, 16384)
    assert_problem(get(api, token)[0], 431)
    assert_creates_nothing(api, token, cluster, 431)


@pytest.mark.parametrize("name", sorted(HOSTILE_403))
def test_token_with_no_usable_roles_is_forbidden(api, oidc, daemon, cluster, name):
    token = HOSTILE_403[name](oidc)
    r, request_id = get(api, token)
    assert_problem(r, 403)
    assert "roles" in line_of(daemon, request_id)["authRefused"]
    assert token not in daemon.log_text()
    assert_creates_nothing(api, token, cluster, 403)


def test_a_valid_minted_token_works(api, oidc):
    """The hostile tokens differ from this one in one thing each."""
    assert get(api, oidc.mint(roles=["lsa-admin"]))[0].status == 200


# ------------------------------------------------------------------ daemons of their own


@pytest.fixture
def own_provider(log_dir):
    p = harness.Provider(log_dir, name="own-oidc")
    p.start()
    yield p
    p.stop()


def own_daemon(werklabd, log_dir, name, **env):
    d = Daemon(werklabd, log_dir, name=name, threads=2, env=werklabd.env(**env))
    d.wait_ready()
    return d


def test_rotation_at_the_provider_is_picked_up(werklabd, log_dir, own_provider):
    d = own_daemon(werklabd, log_dir, "oidc-rotation", **oidc_env(own_provider))
    try:
        before = own_provider.token("werklab-staff")
        assert get(d.api, before)[0].status == 200
        old_kid = own_provider.kid
        own_provider.rotate()
        after = own_provider.token("werklab-staff")
        kid = json.loads(unb64url(after.split(".")[0]))["kid"]
        assert kid == own_provider.kid and kid != old_kid
        r, request_id = get(d.api, after)  # the unknown kid makes werklabd fetch the keys
        assert r.status == 200, f"{describe(r)}\n{d.log_text()[-3000:]}"
        assert get(d.api, before)[0].status == 200  # the old key is still published
    finally:
        assert d.terminate() == 0


def test_tokens_work_from_the_first_request(werklabd, log_dir, own_provider):
    """The start waits for the first fetch of the keys: serving begins with them."""
    d = own_daemon(werklabd, log_dir, "oidc-start", **oidc_env(own_provider))
    try:
        # The listener answers (wait_ready's /healthz) before the main thread logs "serving on",
        # and a request's line is written once its answer is sent: wait for both lines. The
        # fetch must precede them.
        assert d.wait_log(lambda l: l.get("message", "").startswith("serving on")), d.log_text()
        assert d.wait_log(lambda l: "method" in l), d.log_text()
        lines = d.log_lines()
        fetched = [i for i, l in enumerate(lines) if l.get("message", "").startswith("keys of the OpenID provider")]
        serving = [i for i, l in enumerate(lines) if l.get("message", "").startswith("serving on")]
        requests = [i for i, l in enumerate(lines) if "method" in l]
        assert fetched and requests and fetched[0] < min(serving[0], requests[0]), lines
        assert get(d.api, own_provider.mint())[0].status == 200
    finally:
        assert d.terminate() == 0


def test_failed_fetch_keeps_the_keys(werklabd, log_dir, own_provider):
    d = own_daemon(werklabd, log_dir, "oidc-gone", **oidc_env(own_provider))
    try:
        assert get(d.api, own_provider.mint())[0].status == 200
        own_provider.stop()
        r, request_id = get(d.api, foreign_key_token(own_provider))
        assert_problem(r, 401)
        assert d.wait_log(lambda l: l.get("level") == "warning" and "keys" in l.get("message", ""))
        # a fresh token with the kid werklabd had: still verified
        assert get(d.api, own_provider.mint())[0].status == 200
    finally:
        assert d.terminate() == 0


def test_unreachable_issuer_is_503_for_tokens_only(werklabd, log_dir, oidc, keys):
    nowhere = f"http://127.0.0.1:{free_port()}"
    d = own_daemon(werklabd, log_dir, "oidc-nowhere", **oidc_env(oidc, WERKLAB_OIDC_ISSUER=nowhere))
    try:
        r, request_id = get(d.api, oidc.mint(iss=nowhere))
        assert_problem(r, 503)
        assert r.header("Retry-After"), describe(r)
        assert line_of(d, request_id)["authRefused"]
        assert get(d.api, keys.staff)[0].status == 200
    finally:
        assert d.terminate() == 0


def test_keys_from_a_file(werklabd, log_dir, oidc, keys, tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text(oidc.public_jwks())
    d = own_daemon(werklabd, log_dir, "oidc-file",
                   **oidc_env(oidc, WERKLAB_OIDC_JWKS_FILE=str(path),
                              WERKLAB_OIDC_ROLES_CLAIM="realm_access.roles"))
    try:
        # Keycloak's place for roles: a dotted path
        token = oidc.mint({"realm_access": {"roles": ["lsa-admin"]}}, roles=DROP)
        assert get(d.api, token, "/v1/api-keys?limit=1")[0].status == 200
        assert_problem(get(d.api, oidc.token("werklab-admin"))[0], 403)  # roles elsewhere
        # nothing to fetch: a kid the file does not hold is refused at once
        assert_problem(get(d.api, foreign_key_token(oidc))[0], 401)
    finally:
        assert d.terminate() == 0
    path.write_text('{"keys": "none"}')
    out = werklabd.run("serve", "--listen", f"127.0.0.1:{free_port()}",
                       env=werklabd.env(**oidc_env(oidc, WERKLAB_OIDC_JWKS_FILE=str(path))))
    assert out.returncode != 0 and "WERKLAB_OIDC_JWKS_FILE" in out.stderr, out.stderr


def test_no_issuer_refuses_tokens(werklabd, log_dir, oidc, keys):
    d = own_daemon(werklabd, log_dir, "oidc-none")
    try:
        r, request_id = get(d.api, oidc.token("werklab-admin"))
        assert_problem(r, 401)
        assert 'error="invalid_token"' in r.header("WWW-Authenticate")
        assert line_of(d, request_id)["authRefused"] == "tokens are not accepted"
        assert get(d.api, keys.staff)[0].status == 200
    finally:
        assert d.terminate() == 0


@pytest.mark.parametrize("settings, says", [
    ({"WERKLAB_OIDC_ISSUER": "http://idp.example.nl"}, "https"),
    ({"WERKLAB_OIDC_ISSUER": "http://127.0.0.1.example.nl"}, "https"),
    ({"WERKLAB_OIDC_AUDIENCE": ""}, "AUDIENCE"),
    ({"WERKLAB_OIDC_ROLE_MAP": "lsa-admin=root"}, "ROLE_MAP"),
    ({"WERKLAB_OIDC_ROLE_MAP": ""}, "ROLE_MAP"),
    ({"WERKLAB_OIDC_ISSUER": ""}, "ISSUER"),
])
def test_settings_that_do_not_hold_stop_the_start(werklabd, oidc, settings, says):
    out = werklabd.run("serve", "--listen", f"127.0.0.1:{free_port()}",
                       env=werklabd.env(**oidc_env(oidc, **settings)), timeout=30)
    assert out.returncode == 2, out.stderr
    assert says in out.stderr, out.stderr

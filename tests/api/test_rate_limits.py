"""Rate limits per API key: a token bucket of N requests per minute (refilling continuously).

The server's default is `--key-rate-limit N`; a key's own `rateLimit` (POST /v1/api-keys
{"rateLimit": N}, 0 = unlimited) overrides it. Keyed responses carry RateLimit-Limit,
RateLimit-Remaining and RateLimit-Reset; over the limit → 429 problem+json with Retry-After.
These tests run on a daemon of their own whose default limit is small.
"""

import subprocess
import time
import uuid

import pytest

from conftest import Daemon
from wlclient import assert_problem, assert_status, describe

DEFAULT_LIMIT = 5


@pytest.fixture(scope="module")
def limited(werklabd, log_dir):
    d = Daemon(werklabd, log_dir, name="keylimit", threads=2,
               extra_args=["--key-rate-limit", str(DEFAULT_LIMIT)])
    try:
        d.wait_ready()
        yield d
    finally:
        d.terminate(timeout=10)


def new_key(api, admin, **fields):
    """Made through the session's daemon: the admin key is limited here too."""
    body = {"name": f"limit-{uuid.uuid4().hex[:6]}", "role": "staff"}
    body.update(fields)
    r = api.post("/v1/api-keys", body, key=admin)
    return assert_status(r, 201)


def burst(api, key, n):
    return [api.get("/v1/municipalities?limit=1", key=key) for _ in range(n)]


def assert_limited_burst(rs, limit):
    ok = [r for r in rs if r.status == 200]
    refused = [r for r in rs if r.status != 200]
    assert [r.status for r in rs] == [200] * limit + [429] * (len(rs) - limit), [r.status for r in rs]
    for n, r in enumerate(ok):
        assert r.header("RateLimit-Limit") == str(limit), describe(r)
        assert r.header("RateLimit-Remaining") == str(limit - 1 - n), describe(r)
        assert int(r.header("RateLimit-Reset")) >= 0, describe(r)
    for r in refused:
        p = assert_problem(r, 429)
        assert p["detail"], p
        retry = r.header("Retry-After")
        assert retry and retry.isdigit() and 1 <= int(retry) <= 60 // limit + 1, describe(r)
        assert r.header("RateLimit-Limit") == str(limit), describe(r)
        assert r.header("RateLimit-Remaining") == "0", describe(r)
        assert r.header("RateLimit-Reset") and int(r.header("RateLimit-Reset")) >= 1, describe(r)
    return refused


def test_a_key_with_its_own_limit(limited, keys, api):
    k = new_key(api, keys.admin, rateLimit=5)
    assert k["rateLimit"] == 5, k
    other = new_key(api, keys.admin, rateLimit=5)
    api = limited.api
    refused = assert_limited_burst(burst(api, k["key"], 8), 5)
    # Another key is not affected.
    r = api.get("/v1/municipalities?limit=1", key=other["key"])
    assert_status(r, 200)
    assert r.header("RateLimit-Remaining") == "4", describe(r)
    # Writes count as well, and are refused before anything happens.
    r = api.post("/v1/municipalities", {"code": "GM0001", "name": "x"}, key=k["key"])
    assert_problem(r, 429)
    # After Retry-After one request is allowed again (one token: 60 s / 5), then it is 429 again.
    wait = int(refused[-1].header("Retry-After"))
    time.sleep(wait + 0.3)
    r = api.get("/v1/municipalities?limit=1", key=k["key"])
    assert_status(r, 200)
    assert r.header("RateLimit-Remaining") == "0", describe(r)
    assert_problem(api.get("/v1/municipalities?limit=1", key=k["key"]), 429)


def test_the_server_default_applies_to_keys_without_their_own(limited, keys, api):
    k = new_key(api, keys.admin)
    api = limited.api
    assert k["rateLimit"] is None, k
    assert_limited_burst(burst(api, k["key"], DEFAULT_LIMIT + 2), DEFAULT_LIMIT)


def test_a_higher_limit_of_its_own_overrides_the_default(limited, keys, api):
    k = new_key(api, keys.admin, rateLimit=20)
    api = limited.api
    rs = burst(api, k["key"], 22)
    assert [r.status for r in rs] == [200] * 20 + [429] * 2, [r.status for r in rs]


def test_rate_limit_0_is_unlimited(limited, keys, api):
    k = new_key(api, keys.admin, rateLimit=0)
    api = limited.api
    assert k["rateLimit"] == 0, k
    rs = burst(api, k["key"], 50)
    assert all(r.status == 200 for r in rs), [describe(r) for r in rs if r.status != 200][:1]


@pytest.mark.parametrize("value", [-1, 1.5, "5", True])
def test_bad_rate_limit_is_400(api, keys, value):
    r = api.post("/v1/api-keys", {"name": "bad-limit", "role": "staff", "rateLimit": value}, key=keys.admin)
    assert_problem(r, 400, ["rateLimit"])


def test_create_key_cli_rate_limit(limited, werklabd, keys):
    out = werklabd.run("create-key", "--role", "staff", "--name", f"cli-limit-{uuid.uuid4().hex[:6]}",
                       "--rate-limit", "3")
    assert out.returncode == 0, out.stderr
    secret = out.stdout.strip()
    assert_limited_burst(burst(limited.api, secret, 5), 3)


# ------------------------------------------------------------------ buckets of different keys

SLOTS = 4096  # server/ratelimit.c keeps this many buckets, chosen by a hash of the key's id


def bucket_slot(scope, key_id):
    """server/ratelimit.c's hash (FNV-1a over scope, 0xff, key) modulo its table size."""
    h = 1469598103934665603
    for b in scope.encode():
        h = ((h ^ b) * 1099511628211) % 2 ** 64
    h = ((h ^ 0xFF) * 1099511628211) % 2 ** 64
    for b in key_id.encode():
        h = ((h ^ b) * 1099511628211) % 2 ** 64
    return (h or 1) % SLOTS


def test_another_key_cannot_reset_a_keys_bucket(limited, keys, api, cluster):
    """Two keys whose ids hash to the same bucket slot: the requests of one must not give the
    other a fresh bucket (that would let two colluding keys, or one with many keys, get round
    the limit). The second key's id is chosen (psql) to land in the first one's slot."""
    first = new_key(api, keys.admin, rateLimit=3)
    second = new_key(api, keys.admin, rateLimit=3)
    slot = bucket_slot("key", first["id"])
    while True:
        candidate = str(uuid.uuid4())
        if bucket_slot("key", candidate) == slot and candidate != first["id"]:
            break
    out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", cluster.url, "-c",
                          f"UPDATE api_keys SET id = '{candidate}' WHERE id = '{second['id']}'"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lim = limited.api
    assert_limited_burst(burst(lim, first["key"], 4), 3)
    r = lim.get("/v1/municipalities?limit=1", key=second["key"])
    assert_status(r, 200)
    r = lim.get("/v1/municipalities?limit=1", key=first["key"])
    assert_problem(r, 429)
    # And the other way round: the second key's bucket is its own as well.
    rs = burst(lim, second["key"], 3)
    assert [x.status for x in rs] == [200, 200, 429], [x.status for x in rs]

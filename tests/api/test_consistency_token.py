"""Consistency-Token without read replicas: checked like any other input, and not given.

What it does with replicas (read your writes, lag, a replica or the primary down) is shown on a
real primary and streaming replica by tests/cluster."""
import pytest

from conftest import free_port
from wlclient import assert_problem, describe


# Whitespace around a header value is not part of it (RFC 9110 §5.5), so a token is spoiled by a
# space inside it only.
@pytest.mark.parametrize("token", ["", "xyz", "00000000030078D8", "0000000003007", "00000000 030078d8",
                                   "0x000000030078d8", "00000000030078d8a", "-0000000030078d8"])
def test_a_token_this_api_did_not_give_is_400(api, keys, municipality, token):
    r = api.get(f"/v1/municipalities/{municipality['id']}", key=keys.partner,
                headers={"Consistency-Token": token})
    assert_problem(r, 400)
    assert [p["name"] for p in r.json["invalidParams"]] == ["Consistency-Token"], describe(r)


def test_a_bad_token_on_a_write_changes_nothing(api, keys, municipality):
    before = api.get(f"/v1/municipalities/{municipality['id']}", key=keys.admin)
    r = api.patch(f"/v1/municipalities/{municipality['id']}", {"name": "Nooit geschreven"},
                  key=keys.admin, headers={"Consistency-Token": "not-a-token"})
    assert_problem(r, 400)
    after = api.get(f"/v1/municipalities/{municipality['id']}", key=keys.admin)
    assert after.json == before.json


def test_a_good_token_is_taken_and_none_is_given_without_replicas(api, keys, municipality):
    r = api.get(f"/v1/municipalities/{municipality['id']}", key=keys.partner,
                headers={"Consistency-Token": "00000000030078d8"})
    assert r.status == 200, describe(r)
    assert r.header("Consistency-Token") is None
    w = api.patch(f"/v1/municipalities/{municipality['id']}", {"name": municipality["name"]},
                  key=keys.admin)
    assert w.status == 200, describe(w)
    assert w.header("Consistency-Token") is None


def test_browsers_may_send_and_read_it(api, keys):
    from conftest import CORS_ORIGIN
    r = api.options("/v1/municipalities", headers={
        "Origin": CORS_ORIGIN, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "consistency-token"})
    assert "Consistency-Token" in (r.header("Access-Control-Allow-Headers") or ""), describe(r)
    r = api.get("/v1/municipalities?limit=1", key=keys.partner, headers={"Origin": CORS_ORIGIN})
    assert "Consistency-Token" in (r.header("Access-Control-Expose-Headers") or ""), describe(r)


@pytest.mark.parametrize("env, value", [
    ("WERKLAB_READ_DATABASE_URL", "postgresql://a@127.0.0.1:1/x,,postgresql://b@127.0.0.1:1/x"),
    ("WERKLAB_READ_DATABASE_URL", ",".join(["postgresql://a@127.0.0.1:1/x"] * 9)),
    ("WERKLAB_MAX_REPLICA_LAG_MS", "-1"),
    ("WERKLAB_MAX_REPLICA_LAG_MS", "soon"),
])
def test_bad_replica_settings_refuse_to_start(werklabd, env, value):
    out = werklabd.run("serve", "--listen", f"127.0.0.1:{free_port()}",
                       env=werklabd.env(**{env: value}), timeout=30)
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "werklabd:" in out.stderr

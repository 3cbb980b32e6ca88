"""API keys: admin only; the secret is shown once; revocation."""

import datetime
import uuid

import pytest

from wlclient import (KEY_RE, TIMESTAMP_RE, UUID_RE, assert_problem, assert_status, describe)

FIELDS = {"id", "name", "role", "municipalities", "requireIfMatch", "rateLimit", "expiresAt",
          "revokedAt", "lastUsedAt", "version", "createdAt", "updatedAt"}


def assert_key_shape(k):
    assert set(k) == FIELDS, k
    assert UUID_RE.match(k["id"]) and k["role"] in ("admin", "staff", "partner"), k
    for f in ("expiresAt", "revokedAt", "lastUsedAt"):
        assert k[f] is None or TIMESTAMP_RE.match(k[f]), k
    assert TIMESTAMP_RE.match(k["createdAt"]) and TIMESTAMP_RE.match(k["updatedAt"]), k


def all_keys(api, keys):
    items, _ = api.list_all("/v1/api-keys", keys.admin)
    return items


@pytest.mark.parametrize("role", ["staff", "partner"])
def test_only_admin(api, keys, role):
    n = len(all_keys(api, keys))
    assert_problem(api.get("/v1/api-keys", key=keys[role]), 403)
    assert_problem(api.post("/v1/api-keys", {"name": "x", "role": "admin"}, key=keys[role]), 403)
    assert_problem(api.get(f"/v1/api-keys/{keys.ids['admin']}", key=keys[role]), 403)
    assert_problem(api.delete(f"/v1/api-keys/{keys.ids['admin']}", key=keys[role]), 403)
    assert len(all_keys(api, keys)) == n
    assert api.get("/v1/municipalities?limit=1", key=keys.admin).status == 200  # not revoked


@pytest.mark.parametrize("role", ["admin", "staff", "partner"])
def test_create_shows_the_key_once(api, keys, role):
    name = f"made-{role}-{uuid.uuid4().hex[:6]}"
    r = api.post("/v1/api-keys", {"name": name, "role": role}, key=keys.admin)
    k = assert_status(r, 201)
    secret = k.pop("key")
    assert KEY_RE.match(secret), secret
    assert_key_shape(k)
    assert (k["name"], k["role"], k["version"]) == (name, role, 1)
    assert k["expiresAt"] is None and k["revokedAt"] is None and k["lastUsedAt"] is None
    assert r.header("Location").endswith(f"/v1/api-keys/{k['id']}"), describe(r)
    g = api.get(f"/v1/api-keys/{k['id']}", key=keys.admin)
    got = assert_status(g, 200)
    assert "key" not in got and secret.encode() not in g.body and secret[4:].encode() not in g.body
    assert_key_shape(got)
    assert got["id"] == k["id"] and got["name"] == name
    lst = api.get("/v1/api-keys?limit=200", key=keys.admin)
    assert secret[4:].encode() not in lst.body
    for item in assert_status(lst, 200)["items"]:
        assert_key_shape(item)
    # and the new key works with its role
    status = api.post("/v1/municipalities", {}, key=secret).status
    assert status == (403 if role == "partner" else 400)


def test_create_with_expiry(api, keys):
    expires = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)).replace(microsecond=0)
    body = {"name": "expires", "role": "partner",
            "expiresAt": expires.astimezone(datetime.timezone(datetime.timedelta(hours=2))).isoformat()}
    k = assert_status(api.post("/v1/api-keys", body, key=keys.admin), 201)
    assert k["expiresAt"].endswith("Z")
    got = datetime.datetime.fromisoformat(k["expiresAt"].replace("Z", "+00:00"))
    assert got == expires
    assert api.get("/v1/municipalities?limit=1", key=k["key"]).status == 200


BAD_KEYS = {
    "role-unknown": ({"name": "x", "role": "root"}, {"role": "enum"}),
    "role-case": ({"name": "x", "role": "Admin"}, {"role": "enum"}),
    "role-type": ({"name": "x", "role": 1}, {"role": "type"}),
    "role-missing": ({"name": "x"}, {"role": "required"}),
    "name-missing": ({"role": "staff"}, {"name": "required"}),
    "name-empty": ({"name": "", "role": "staff"}, {"name": "minLength"}),
    "name-type": ({"name": [], "role": "staff"}, {"name": "type"}),
    "expires-bad": ({"name": "x", "role": "staff", "expiresAt": "soon"}, {"expiresAt": "format"}),
    "expires-date": ({"name": "x", "role": "staff", "expiresAt": "2030-01-01"}, {"expiresAt": "format"}),
    "unknown-field": ({"name": "x", "role": "staff", "scope": "all"}, {"scope": "unknown"}),
    "key-given": ({"name": "x", "role": "staff", "key": "wlk_" + "0" * 64}, {"key": "unknown"}),
    "read-only-revokedAt": ({"name": "x", "role": "staff", "revokedAt": "2030-01-01T00:00:00Z"},
                            {"revokedAt": "unknown"}),
    "read-only-lastUsedAt": ({"name": "x", "role": "staff", "lastUsedAt": "2030-01-01T00:00:00Z"},
                             {"lastUsedAt": "unknown"}),
    "read-only-id": ({"name": "x", "role": "staff", "id": str(uuid.uuid4())}, {"id": "unknown"}),
    "all-at-once": ({"name": 5, "role": "root", "expiresAt": "x", "colour": 1},
                    {"name": "type", "role": "enum", "expiresAt": "format", "colour": "unknown"}),
}


@pytest.mark.parametrize("case", sorted(BAD_KEYS))
def test_bad_bodies(api, keys, case):
    n = len(all_keys(api, keys))
    body, expected = BAD_KEYS[case]
    r = api.post("/v1/api-keys", body, key=keys.admin)
    assert_problem(r, 400, names=expected)
    assert b"wlk_" not in r.body or case == "key-given"
    assert len(all_keys(api, keys)) == n


def test_delete_revokes(api, keys):
    k = assert_status(api.post("/v1/api-keys", {"name": "revoke-me", "role": "admin"}, key=keys.admin), 201)
    assert api.get("/v1/api-keys?limit=1", key=k["key"]).status == 200
    assert_status(api.delete(f"/v1/api-keys/{k['id']}", key=keys.admin), 204)
    r = api.get("/v1/api-keys?limit=1", key=k["key"])
    assert_problem(r, 401)
    got = assert_status(api.get(f"/v1/api-keys/{k['id']}", key=keys.admin), 200)
    assert got["revokedAt"] and TIMESTAMP_RE.match(got["revokedAt"]) and got["version"] == 2, got


def test_a_key_can_revoke_itself(api, keys):
    k = assert_status(api.post("/v1/api-keys", {"name": "self", "role": "admin"}, key=keys.admin), 201)
    assert_status(api.delete(f"/v1/api-keys/{k['id']}", key=k["key"]), 204)
    assert_problem(api.get("/v1/api-keys", key=k["key"]), 401)


def test_unknown_and_malformed_ids_are_404(api, keys):
    assert_problem(api.get(f"/v1/api-keys/{uuid.uuid4()}", key=keys.admin), 404)
    assert_problem(api.delete(f"/v1/api-keys/{uuid.uuid4()}", key=keys.admin), 404)
    assert_problem(api.get("/v1/api-keys/not-a-uuid", key=keys.admin), 404)
    assert_problem(api.delete("/v1/api-keys/not-a-uuid", key=keys.admin), 404)


def test_filter_by_role_and_sort(api, keys):
    for role in ("admin", "staff", "partner"):
        items, _ = api.list_all("/v1/api-keys", keys.admin, params={"role": role})
        assert items and {k["role"] for k in items} == {role}
    items, _ = api.list_all("/v1/api-keys", keys.admin, params={"sort": "name"})
    names = [k["name"] for k in items]
    assert names in (sorted(names), sorted(names, key=str.casefold))
    items, _ = api.list_all("/v1/api-keys", keys.admin, params={"sort": "-createdAt"})
    created = [datetime.datetime.fromisoformat(k["createdAt"].replace("Z", "+00:00")) for k in items]
    assert created == sorted(created, reverse=True)
    assert_problem(api.get("/v1/api-keys?sort=role", key=keys.admin), 400, names={"sort"})
    assert_problem(api.get("/v1/api-keys?limit=0", key=keys.admin), 400, names={"limit"})


def test_updated_since(api, keys):
    k = assert_status(api.post("/v1/api-keys", {"name": "recent", "role": "staff"}, key=keys.admin), 201)
    items, _ = api.list_all("/v1/api-keys", keys.admin, params={"updatedSince": k["updatedAt"]})
    assert k["id"] in {i["id"] for i in items}

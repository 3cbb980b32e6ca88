"""The command line: --help, create-key, routes."""

import re
import subprocess
import uuid

import pytest

from wlclient import KEY_RE, assert_status


def test_help_lists_every_option(werklabd):
    outs = [werklabd.run("serve", "--help"), werklabd.run("--help")]
    text = "".join(o.stdout + o.stderr for o in outs)
    assert any(o.returncode == 0 for o in outs), text
    for word in ["--listen", "--database-url", "--threads", "--cors-origins", "--no-migrate",
                 "WERKLAB_DATABASE_URL", "WERKLAB_LISTEN", "WERKLAB_THREADS", "WERKLAB_CORS_ORIGINS",
                 "WERKLAB_BODY_LIMIT", "WERKLAB_STATEMENT_TIMEOUT_MS", "WERKLAB_KEY_CACHE_MS"]:
        assert word in text, f"{word} not in --help:\n{text}"


@pytest.mark.parametrize("role", ["admin", "staff", "partner"])
def test_create_key_prints_only_the_key(werklabd, role):
    out = werklabd.run("create-key", "--role", role, "--name", f"cli-{role}")
    assert out.returncode == 0, out.stderr
    assert KEY_RE.match(out.stdout.rstrip("\n")), repr(out.stdout)
    assert out.stdout.count("\n") <= 1, repr(out.stdout)


@pytest.mark.parametrize("args", [
    ["--role", "root", "--name", "x"],
    ["--role", "admin"],
    ["--name", "x"],
    ["--role", "admin", "--name", "x", "--expires-at", "not-a-time"],
    ["--role", "admin", "--name", "x", "--expires-at", "tomorrow"],
    ["--role", "admin", "--name", "x", "--expires-at", "2030-01-01"],
], ids=["bad-role", "no-name", "no-role", "expires-garbage", "expires-tomorrow", "expires-date-only"])
def test_create_key_refuses_bad_arguments(werklabd, args):
    out = werklabd.run("create-key", *args)
    assert out.returncode != 0, f"accepted {args}: {out.stdout}"
    assert not KEY_RE.search(out.stdout), f"printed a key for {args}"


def test_routes_lists_method_and_path(werklabd):
    out = werklabd.run("routes")
    assert out.returncode == 0, out.stderr
    lines = [l for l in out.stdout.splitlines() if l.strip()]
    assert lines
    for line in lines:
        assert re.match(r"^[A-Z]+(,[A-Z]+)* /\S*$", line.strip()), repr(line)
    assert "GET /v1/municipalities" in [l.strip() for l in lines]


def test_create_key_stores_what_it_is_given_and_is_recorded(werklabd, api, keys, cluster,
                                                            municipality):
    """The key is made by the statement POST /v1/api-keys uses, with every value the command
    takes, and its audit entry is committed with it: no key, resource "werklabd create-key"."""
    name = f"cli-all-{uuid.uuid4().hex[:8]}"
    out = werklabd.run("create-key", "--role", "partner", "--name", name,
                       "--expires-at", "2031-02-03T04:05:06+01:00", "--require-if-match",
                       "--rate-limit", "77", "--municipalities", municipality["code"])
    assert out.returncode == 0, out.stderr
    assert KEY_RE.match(out.stdout.rstrip("\n")), repr(out.stdout)
    made = re.search(r"created partner key ([0-9a-f-]{36}) ", out.stderr)
    assert made, out.stderr
    key_id = made.group(1)
    k = assert_status(api.get(f"/v1/api-keys/{key_id}", key=keys.admin), 200)
    assert (k["name"], k["role"], k["expiresAt"], k["requireIfMatch"], k["rateLimit"],
            k["municipalities"], k["revokedAt"]) == \
        (name, "partner", "2031-02-03T03:05:06Z", True, 77, [municipality["code"]], None), k
    assert_status(api.get(f"/v1/municipalities/{municipality['id']}",
                          key=out.stdout.strip()), 200)
    logged = subprocess.run(
        ["psql", "-X", "-q", "-At", "-d", cluster.url, "-c",
         "SELECT action, resource, status, key_id IS NULL, request_id IS NULL FROM audit_log "
         f"WHERE resource_id = '{key_id}'"], capture_output=True, text=True, timeout=30)
    assert logged.stdout.splitlines() == ["create|werklabd create-key|201|t|t"], logged


def test_create_key_without_a_database_prints_no_key(werklabd):
    env = werklabd.env(WERKLAB_DATABASE_URL="host=/nonexistent/werklab-cli dbname=none")
    out = werklabd.run("create-key", "--role", "admin", "--name", "nowhere", env=env)
    assert out.returncode == 1, out
    assert out.stdout == "" and "cannot connect to the database" in out.stderr, out

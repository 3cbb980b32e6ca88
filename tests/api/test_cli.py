"""The command line: --help, create-key, routes."""

import re

import pytest

from wlclient import KEY_RE


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

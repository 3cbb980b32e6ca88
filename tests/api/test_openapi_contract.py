"""The contract and the server agree: every route the server has is in openapi.yaml, and every
operation in openapi.yaml is a route of the server (api.md, "OpenAPI").

The server's side is `werklabd routes`: one line per operation, `METHOD PATH` with the full path
(`GET /v1/municipalities/{id}`, `GET /healthz`), HEAD and OPTIONS not listed (a line
`GET,HEAD /path` is accepted too; HEAD and OPTIONS are dropped from it). The document's side
is each operation's path prefixed with the path of its server URL: the root `servers` end in `/v1`,
the operational endpoints have a path-level `servers: [{url: /}]`.

Run with Debian's interpreter: /usr/bin/python3 -m pytest tests/api/test_openapi_contract.py
The binary is $WERKLABD, else <repo>/build/werklabd; a missing binary is a failure, not a skip.
"""

import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import yaml

REPO = Path(__file__).resolve().parents[2]
OPENAPI = REPO / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ROUTE_LINE = re.compile(r"^([A-Z]+(?:,[A-Z]+)*)\s+(/\S*)$")


def werklabd_path():
    return Path(os.environ.get("WERKLABD") or REPO / "build" / "werklabd")


def load_document(path=OPENAPI):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def server_prefix(servers, where):
    """The path part of a list of server URLs ('' for '/'), which must be the same for all."""
    prefixes = set()
    for server in servers:
        url = server["url"]
        for name, var in (server.get("variables") or {}).items():
            url = url.replace("{" + name + "}", str(var["default"]))
        prefixes.add(urlsplit(url).path.rstrip("/"))
    assert len(prefixes) == 1, f"{where}: servers disagree on the base path: {sorted(prefixes)}"
    return prefixes.pop()


def document_operations(doc):
    """The document's operations as {'METHOD /full/path'}, HEAD and OPTIONS left out like the
    server's route table leaves them out."""
    root = doc.get("servers") or [{"url": "/"}]
    ops = set()
    for path, item in doc["paths"].items():
        path_servers = item.get("servers") or root
        for method in METHODS:
            if method not in item or method in ("head", "options"):
                continue
            op_servers = item[method].get("servers") or path_servers
            prefix = server_prefix(op_servers, f"{method.upper()} {path}")
            ops.add(f"{method.upper()} {prefix}{path}")
    return ops


def server_routes():
    binary = werklabd_path()
    assert binary.is_file() and os.access(binary, os.X_OK), (
        f"werklabd binary not found or not executable at {binary} "
        "(build it with `meson setup build && ninja -C build`, or set WERKLABD)"
    )
    proc = subprocess.run(
        [str(binary), "routes"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, (
        f"`{binary} routes` exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    routes, malformed, duplicates = set(), [], []
    for line in proc.stdout.splitlines():
        if not line.strip():
            continue
        m = ROUTE_LINE.match(line.strip())
        if not m:
            malformed.append(line)
            continue
        # `GET,HEAD /path` is read as `GET /path`; HEAD and OPTIONS are not operations here.
        for method in m.group(1).split(","):
            if method in ("HEAD", "OPTIONS"):
                continue
            route = f"{method} {m.group(2)}"
            if route in routes:
                duplicates.append(route)
            routes.add(route)
    assert not malformed, "lines of `werklabd routes` that are not `METHOD PATH`:\n" + "\n".join(malformed)
    assert not duplicates, "routes listed twice by `werklabd routes`:\n" + "\n".join(duplicates)
    return routes


def format_diff(server, document):
    lines = []
    only_server = sorted(server - document)
    only_document = sorted(document - server)
    if only_server:
        lines.append("routes of the server that openapi.yaml does not document:")
        lines += [f"  {r}" for r in only_server]
    if only_document:
        lines.append("operations in openapi.yaml that the server does not route:")
        lines += [f"  {r}" for r in only_document]
    return "\n".join(lines)


def test_document_operations_are_well_formed():
    ops = document_operations(load_document())
    assert ops, "openapi.yaml has no operations"
    for op in ops:
        method, path = op.split(" ", 1)
        assert path.startswith("/v1/") or path in ("/healthz", "/readyz", "/metrics"), (
            f"{op}: outside /v1 only the operational endpoints may live"
        )


def test_route_table_equals_openapi_operations():
    document = document_operations(load_document())
    server = server_routes()
    assert server, "`werklabd routes` printed no routes"
    assert server == document, "\n" + format_diff(server, document)


if __name__ == "__main__":
    # Shows the document's side of the comparison.
    for op in sorted(document_operations(load_document()), key=lambda s: (s.split(" ")[1], s)):
        print(op)

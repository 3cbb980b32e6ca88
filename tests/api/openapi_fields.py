"""Field-level comparison of openapi.yaml with `werklabd schema` (server/schema.h).

The C descriptions are the truth; openapi.yaml is written by hand (why: server/resource/schema.c). For
each resource `werklabd schema` prints, the document's schemas are found through its paths,
not through a list of names kept here:
  read    the 200 answer of GET on the item path (for a list-only resource: the items of the
          list's 200 answer);
  create  the JSON body of POST on the collection path;
  patch   every body of PATCH on the item path (merge-patch and plain JSON);
  list    the query parameters of GET on the collection path.
Both sides are reduced to the facts of each field (type, format, enum, limits, pattern,
nullable, required, readOnly, x-personal, default, array rules, nested members), references
resolved; descriptions and examples are the document's own and not compared.
"""

import json
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import yaml

REPO = Path(__file__).resolve().parents[2]
OPENAPI = REPO / "openapi.yaml"

# What is compared of every schema, with what its absence means.
FACTS = {
    "type": None,
    "format": None,
    "enum": None,
    "minLength": None,
    "maxLength": None,
    "minimum": None,
    "maximum": None,
    "pattern": None,
    "nullable": False,
    "readOnly": False,
    "x-personal": False,
    "uniqueItems": False,
    "minItems": None,
    "maxItems": None,
    "default": None,
}


def werklabd_path():
    return Path(os.environ.get("WERKLABD") or REPO / "build" / "werklabd")


def run_schema(env=None):
    """`werklabd schema` as parsed JSON (asserts that it ran and printed JSON)."""
    binary = werklabd_path()
    assert binary.is_file() and os.access(binary, os.X_OK), (
        f"werklabd binary not found or not executable at {binary} (build it, or set WERKLABD)"
    )
    proc = subprocess.run([str(binary), "schema"], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=30, env=env)
    assert proc.returncode == 0, (
        f"`{binary} schema` exited {proc.returncode}\nstderr:\n{proc.stderr}"
    )
    return json.loads(proc.stdout)


def load_document(path=OPENAPI):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def resolve(doc, node):
    """node with its $ref (and the $refs it leads to) followed."""
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/") and ref not in seen, f"unresolvable $ref {ref}"
        seen.add(ref)
        node = doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def document_path(doc, full_path):
    """The document's key for a full path ("/v1/municipalities" → "/municipalities")."""
    prefix = urlsplit(doc["servers"][0]["url"]).path.rstrip("/")
    assert full_path.startswith(prefix), f"{full_path} is not under the servers' {prefix}"
    return full_path[len(prefix):]


def _body_schemas(doc, operation):
    body = resolve(doc, operation.get("requestBody") or {})
    return {media: c["schema"] for media, c in (body.get("content") or {}).items()
            if "json" in media and "schema" in c}


def _answer_schema(doc, operation, status="200"):
    answer = resolve(doc, (operation.get("responses") or {}).get(status) or {})
    content = (answer.get("content") or {}).get("application/json") or {}
    return content.get("schema")


def document_shapes(doc, resource):
    """{shape: [(where, schema), ...]} and {query key: (where, schema)} for one resource."""
    paths = doc["paths"]
    collection = paths.get(document_path(doc, resource["path"])) or {}
    item = paths.get(document_path(doc, resource["itemPath"])) or {}
    shapes = {}
    if "get" in item and _answer_schema(doc, item["get"]) is not None:
        shapes["read"] = [(f"GET {resource['itemPath']} 200", _answer_schema(doc, item["get"]))]
    elif "get" in collection and _answer_schema(doc, collection["get"]) is not None:
        listed = resolve(doc, _answer_schema(doc, collection["get"]))
        items = resolve(doc, listed["properties"]["items"])["items"]
        shapes["read"] = [(f"GET {resource['path']} 200 items", items)]
    if "post" in collection:
        shapes["create"] = [(f"POST {resource['path']} {media}", s)
                            for media, s in _body_schemas(doc, collection["post"]).items()]
    if "patch" in item:
        shapes["patch"] = [(f"PATCH {resource['itemPath']} {media}", s)
                           for media, s in _body_schemas(doc, item["patch"]).items()]
    params = None
    if "get" in collection:
        params = {}
        for p in (collection.get("parameters") or []) + (collection["get"].get("parameters") or []):
            p = resolve(doc, p)
            if p.get("in") == "query":
                params[p["name"]] = (f"GET {resource['path']} ?{p['name']}", p.get("schema") or {})
    return shapes, params


def _enum_key(values):
    return sorted((json.dumps(v, ensure_ascii=False, sort_keys=True) for v in values))


def facts(doc, schema):
    """The compared facts of a schema: FACTS, then items, properties and required."""
    schema = resolve(doc, schema or {})
    out = {}
    for key, absent in FACTS.items():
        value = schema.get(key, absent)
        if key == "enum" and value is not None:
            value = _enum_key(value)
        out[key] = value
    if "items" in schema:
        out["items"] = facts(doc, schema["items"])
    if "properties" in schema or schema.get("type") == "object":
        out["properties"] = {name: facts(doc, s) for name, s in (schema.get("properties") or {}).items()}
        out["required"] = sorted(schema.get("required") or [])
    return out


def diff_facts(where, doc_facts, code_facts, out):
    """Appends a line for every difference between the two sets of facts."""
    for key in sorted(set(doc_facts) | set(code_facts)):
        if key in ("properties", "items"):
            continue
        d, c = doc_facts.get(key), code_facts.get(key)
        if d != c:
            out.append(f"{where}: {key}: openapi.yaml has {d!r}, the code {c!r}")
    for key in ("items",):
        if key in doc_facts or key in code_facts:
            if key not in doc_facts or key not in code_facts:
                out.append(f"{where}: items only in {'the code' if key in code_facts else 'openapi.yaml'}")
            else:
                diff_facts(f"{where}[]", doc_facts[key], code_facts[key], out)
    if "properties" in doc_facts or "properties" in code_facts:
        dp, cp = doc_facts.get("properties") or {}, code_facts.get("properties") or {}
        for name in sorted(set(dp) - set(cp)):
            out.append(f"{where}.{name}: only in openapi.yaml, not in the code")
        for name in sorted(set(cp) - set(dp)):
            out.append(f"{where}.{name}: only in the code, not in openapi.yaml")
        for name in sorted(set(dp) & set(cp)):
            diff_facts(f"{where}.{name}", dp[name], cp[name], out)


def compare(doc, generated):
    """Every field-level difference between doc and the `werklabd schema` output, as lines."""
    out = []
    for resource in generated["resources"]:
        name = resource["name"]
        shapes, params = document_shapes(doc, resource)
        for shape in ("read", "create", "patch"):
            if shape not in resource:
                if shapes.get(shape):
                    out.append(f"{name} {shape}: in openapi.yaml, but the code has no {shape}")
                continue
            if not shapes.get(shape):
                out.append(f"{name} {shape}: the code has it, openapi.yaml has no schema for it")
                continue
            code = facts(doc, resource[shape])
            for where, schema in shapes[shape]:
                diff_facts(f"{name} {shape} ({where})", facts(doc, schema), code, out)
        if "list" in resource:
            code_params = resource["list"]["parameters"]
            if params is None:
                out.append(f"{name} list: the code has it, openapi.yaml has no GET {resource['path']}")
                continue
            for key in sorted(set(params) - set(code_params)):
                out.append(f"{name} list ?{key}: only in openapi.yaml, not in the code")
            for key in sorted(set(code_params) - set(params)):
                out.append(f"{name} list ?{key}: only in the code, not in openapi.yaml")
            for key in sorted(set(params) & set(code_params)):
                where, schema = params[key]
                diff_facts(f"{name} list ({where})", facts(doc, schema),
                           facts(doc, code_params[key]), out)
    return out

"""openapi.yaml and the C resource descriptions agree field by field (server/schema.h).

`werklabd schema` prints, from the descriptions the server runs on, the JSON Schema of every
resource's read, create and patch shapes and the rules of its list's query keys; the document is
written by hand (server/resource/schema.c says why). These tests hold the two equal: type, format, enum,
limits, pattern, nullable, required, readOnly, x-personal, defaults, array rules, and fields or
query keys present on one side only, for every resource (tests/api/openapi_fields.py compares).

No database is needed: `werklabd schema` reads only the descriptions.
Run with Debian's interpreter: /usr/bin/python3 -m pytest tests/api/test_openapi_fields.py
The binary is $WERKLABD, else <repo>/build/werklabd.
"""

import copy
import os
import subprocess

import pytest

from openapi_fields import (compare, document_shapes, load_document, resolve, run_schema,
                            werklabd_path)

# Where the document is narrower than the description, because the database narrows what the
# description lets through; each must still be a difference (else it goes from this list), and
# the document's side must be inside the code's.
NARROWER = {
    # werklabs_status_initial: a new werklab starts in inquiry or intake (400, code enum).
    "werklab create (POST /v1/werklabs application/json).status: enum",
    # The database keeps participants within capacity.max (participants_capacity), at most 15.
    "werklab read (GET /v1/werklabs/{id} 200).participantCount: minimum",
    "werklab read (GET /v1/werklabs/{id} 200).participantCount: maximum",
    # One trainer per role (werklab_trainers primary key), and two roles.
    "werklab read (GET /v1/werklabs/{id} 200).trainers: maxItems",
}

SCHEMA_TYPES = {"string", "integer", "boolean", "array", "object"}


@pytest.fixture(scope="module")
def generated():
    # No database and no network: a URL that cannot be reached must not matter.
    env = {k: v for k, v in os.environ.items() if not k.startswith("WERKLAB_")}
    env["WERKLAB_DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"
    return run_schema(env)


@pytest.fixture(scope="module")
def document():
    return load_document()


def split_differences(lines):
    """(differences, narrower ones seen) of compare()'s lines."""
    known = {line for line in lines if line.split(": openapi.yaml has")[0] in NARROWER}
    return [line for line in lines if line not in known], {
        line.split(": openapi.yaml has")[0] for line in known}


def walk(schema, where, visit):
    visit(schema, where)
    for name, member in (schema.get("properties") or {}).items():
        walk(member, f"{where}.{name}", visit)
    if "items" in schema:
        walk(schema["items"], f"{where}[]", visit)


def test_schema_prints_every_resource_with_its_shapes(generated):
    assert generated["openapi"] == "3.0.3"
    resources = generated["resources"]
    names = [r["name"] for r in resources]
    for name in ("municipality", "initiative", "trainer", "werklab", "participant", "session",
                 "feedback", "testimonial", "inquiry", "API key"):
        assert name in names, f"{name} is not in `werklabd schema`"
    assert len(set(names)) == len(names), f"a resource is printed twice: {names}"
    for r in resources:
        ops = r["operations"]
        assert r["path"].startswith("/v1/") and r["itemPath"].startswith(r["path"] + "/{")
        assert set(ops) <= {"list", "create", "get", "patch", "delete"} and ops
        for shape, op in (("create", "create"), ("patch", "patch"), ("list", "list")):
            assert (shape in r) == (op in ops), f"{r['name']}: {shape} printed without {op} or not"
        read = r["read"]
        assert read["type"] == "object" and "id" in read["properties"]
        assert read["properties"]["id"] == {"type": "string", "format": "uuid", "readOnly": True}
        assert set(read["required"]) <= set(read["properties"])
        for shape in ("create", "patch"):
            if shape in r:
                body = r[shape]
                assert body["additionalProperties"] is False
                assert set(body.get("required", [])) <= set(body["properties"])
                for own in ("id", "version", "createdAt", "updatedAt"):
                    assert own not in body["properties"], f"{r['name']} {shape} takes {own}"
        assert "required" not in r.get("patch", {}), f"{r['name']}: a merge patch requires nothing"
        if "list" in r:
            params = r["list"]["parameters"]
            for key in ("limit", "cursor", "sort", "delimiter"):
                assert key in params, f"{r['name']} list has no {key}"
            assert params["limit"] == {"type": "integer", "minimum": 1, "maximum": 200,
                                       "default": 50}

        def well_formed(schema, where):
            assert schema.get("type") in SCHEMA_TYPES, f"{where}: type {schema.get('type')!r}"
            if schema.get("enum") is not None:
                assert schema["enum"], f"{where}: an empty enum"
                assert (None in schema["enum"]) == bool(schema.get("nullable")), (
                    f"{where}: an enum lists null exactly when it is nullable (OpenAPI 3.0.3)")
            if schema["type"] == "array":
                assert "items" in schema, f"{where}: an array without items"
            for low, high in (("minLength", "maxLength"), ("minimum", "maximum"),
                              ("minItems", "maxItems")):
                if low in schema and high in schema:
                    assert schema[low] <= schema[high], f"{where}: {low} above {high}"

        for shape in ("read", "create", "patch"):
            if shape in r:
                walk(r[shape], f"{r['name']} {shape}", well_formed)
        for key, schema in r.get("list", {}).get("parameters", {}).items():
            walk(schema, f"{r['name']} list ?{key}", well_formed)


def test_schema_maps_the_flags(generated):
    """Spot checks of the mapping, on fields whose flags are known."""
    by_name = {r["name"]: r for r in generated["resources"]}
    keys = by_name["API key"]
    # FIELD_NULLABLE | FIELD_IMMUTABLE: nullable, in create, not in a patch (there is none).
    assert keys["create"]["properties"]["expiresAt"] == {
        "type": "string", "format": "date-time", "nullable": True}
    # FIELD_READONLY: readOnly in the read, absent from the create.
    assert keys["read"]["properties"]["revokedAt"]["readOnly"] is True
    assert "revokedAt" not in keys["create"]["properties"]
    assert set(keys["create"]["required"]) == {"name", "role"}
    m = by_name["municipality"]
    # Dotted names are nested objects; personal fields say so, and a partner never gets them,
    # so a read does not promise them.
    contact = m["read"]["properties"]["contact"]
    assert contact["type"] == "object" and contact["nullable"] and contact["x-personal"]
    assert contact["properties"]["email"]["format"] == "email"
    assert "contact" not in m["read"]["required"]
    assert m["list"]["parameters"]["province"]["items"]["enum"][-1] == "Limburg"
    inquiry = by_name["inquiry"]
    # FIELD_NO_CREATE: not in the create, in the patch.
    assert "status" not in inquiry["create"]["properties"]
    assert "status" in inquiry["patch"]["properties"]
    # FIELD_RECORDS: an array of objects of its members.
    records = by_name["session"]["create"]["properties"]["initiatives"]
    assert records["items"]["required"] == ["initiativeId", "role"]
    assert records["items"]["properties"]["role"]["enum"] == ["host", "guest"]


def test_document_fields_equal_the_descriptions(generated, document):
    differences, narrower = split_differences(compare(document, generated))
    assert not differences, (
        f"openapi.yaml and `werklabd schema` differ in {len(differences)} place(s):\n"
        + "\n".join(differences))
    assert narrower == NARROWER, (
        "NARROWER names places where the document no longer differs; remove them: "
        + ", ".join(sorted(NARROWER - narrower)))


def test_narrower_places_are_inside_the_description(generated, document):
    by_name = {r["name"]: r for r in generated["resources"]}
    werklab = by_name["werklab"]
    shapes, _ = document_shapes(document, werklab)
    doc_create = resolve(document, shapes["create"][0][1])
    doc_status = resolve(document, doc_create["properties"]["status"])
    assert set(doc_status["enum"]) < set(werklab["create"]["properties"]["status"]["enum"])
    doc_read = resolve(document, shapes["read"][0][1])
    count = doc_read["properties"]["participantCount"]
    capacity = werklab["read"]["properties"]["capacity"]["properties"]["max"]
    assert count["minimum"] >= 0 and count["maximum"] <= capacity["maximum"]
    roles = werklab["read"]["properties"]["trainers"]["items"]["properties"]["role"]["enum"]
    assert doc_read["properties"]["trainers"]["maxItems"] == len(roles)


def _schemas(doc):
    return doc["components"]["schemas"]


def _param(doc, name):
    return doc["components"]["parameters"][name]["schema"]


# Each changes one fact of the document; the comparison must name the place.
MUTATIONS = [
    ("nullable", lambda d: _schemas(d)["ApiKeyCreate"]["properties"]["expiresAt"].pop("nullable"),
     "API key create (POST /v1/api-keys application/json).expiresAt: nullable"),
    ("type", lambda d: _schemas(d)["Trainer"]["properties"]["bio"].update(type="integer"),
     "trainer read (GET /v1/trainers/{id} 200).bio: type"),
    ("format", lambda d: _schemas(d)["SessionCreate"]["properties"]["startsAt"].update(format="date"),
     "session create (POST /v1/sessions application/json).startsAt: format"),
    ("enum", lambda d: _schemas(d)["Province"]["enum"].remove("Limburg"),
     "municipality list (GET /v1/municipalities ?province)[]: enum"),
    ("maxLength", lambda d: _schemas(d)["MunicipalityPatch"]["properties"]["name"].update(maxLength=101),
     "municipality patch (PATCH /v1/municipalities/{id} application/merge-patch+json).name: maxLength"),
    ("minimum", lambda d: _schemas(d)["FeedbackCreate"]["properties"]["rating"].update(minimum=0),
     "feedback create (POST /v1/feedback application/json).rating: minimum"),
    ("pattern", lambda d: _schemas(d)["InitiativeCreate"]["properties"]["kvkNumber"].update(pattern="^[0-9]+$"),
     "initiative create (POST /v1/initiatives application/json).kvkNumber: pattern"),
    ("required", lambda d: _schemas(d)["ParticipantCreate"]["required"].remove("email"),
     "participant create (POST /v1/werklabs/{id}/participants application/json): required"),
    ("readOnly", lambda d: _schemas(d)["ApiKey"]["properties"]["lastUsedAt"].pop("readOnly"),
     "API key read (GET /v1/api-keys/{id} 200).lastUsedAt: readOnly"),
    ("x-personal", lambda d: _schemas(d)["InquiryPatch"]["properties"]["phone"].pop("x-personal"),
     "inquiry patch (PATCH /v1/inquiries/{id} application/json).phone: x-personal"),
    ("extra field", lambda d: _schemas(d)["TrainerPatch"]["properties"].update(nickname={"type": "string"}),
     "trainer patch (PATCH /v1/trainers/{id} application/json).nickname: only in openapi.yaml"),
    ("missing field", lambda d: _schemas(d)["Werklab"]["properties"].pop("endsOn"),
     "werklab read (GET /v1/werklabs/{id} 200).endsOn: only in the code"),
    ("nested field", lambda d: _schemas(d)["SessionLocationInput"]["properties"]["onSite"].update(type="string"),
     "session patch (PATCH /v1/sessions/{id} application/json).location.onSite: type"),
    ("list limit", lambda d: _param(d, "limit").update(maximum=500),
     "testimonial list (GET /v1/testimonials ?limit): maximum"),
    ("sort keys", lambda d: _param(d, "trainerSort")["items"]["enum"].append("bio"),
     "trainer list (GET /v1/trainers ?sort)[]: enum"),
    ("missing query key", lambda d: d["paths"]["/inquiries"]["get"]["parameters"].pop(),
     "inquiry list ?"),
]


@pytest.mark.parametrize("fact,mutate,expected", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_comparison_fails_on_a_changed_document(generated, document, fact, mutate, expected):
    changed = copy.deepcopy(document)
    mutate(changed)
    differences, _ = split_differences(compare(changed, generated))
    assert any(line.startswith(expected) for line in differences), (
        f"changing {fact} in the document went unnoticed; the comparison said:\n"
        + "\n".join(differences))
    assert not split_differences(compare(document, generated))[0], "the document itself differs"


@pytest.mark.parametrize("args, says", [
    (["extra"], "unexpected argument 'extra'"),
    (["--bogus"], "unknown option '--bogus' for schema"),
])
def test_schema_refuses_arguments(args, says):
    """`werklabd schema` takes no arguments: anything else is a usage error (exit 2) on stderr,
    with nothing on stdout that a build step could take for a schema."""
    proc = subprocess.run([str(werklabd_path()), "schema", *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr
    assert proc.stdout == ""

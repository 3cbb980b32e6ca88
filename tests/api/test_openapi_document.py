"""GET /v1/openapi.json as served: a strong ETag (the digest of the document, the same on every
request of one build) and 304 for If-None-Match, so that a front end or a portal polls cheaply."""

import hashlib
import re

import pytest

from wlclient import assert_conventions, describe

PATH = "/v1/openapi.json"


def test_openapi_has_a_strong_etag_of_its_body(api):
    r = api.get(PATH)
    assert r.status == 200, describe(r)
    tag = r.header("ETag")
    assert tag and re.fullmatch(r'"[0-9a-f]{64}"', tag), describe(r)
    assert tag == '"' + hashlib.sha256(r.body).hexdigest() + '"', describe(r)
    again = api.get(PATH)
    assert again.header("ETag") == tag and again.body == r.body


@pytest.mark.parametrize("inm", ["{tag}", "W/{tag}", '"other", {tag}', "*"])
def test_openapi_if_none_match_is_304(api, inm):
    tag = api.get(PATH).header("ETag")
    r = api.get(PATH, headers={"If-None-Match": inm.format(tag=tag)})
    assert r.status == 304, describe(r)
    assert r.body == b""
    assert r.header("ETag") == tag, describe(r)
    assert r.header("Cache-Control") == "public, max-age=300", describe(r)
    assert r.header("Access-Control-Allow-Origin") == "*", describe(r)


@pytest.mark.parametrize("inm", ['"0000"', 'W/"1"', '""'])
def test_openapi_other_tag_is_200(api, inm):
    r = api.get(PATH, headers={"If-None-Match": inm})
    assert r.status == 200, describe(r)
    assert r.json.get("openapi") == "3.0.3"
    assert_conventions(r)

"""Municipality lists: the loaded data, pagination, sorting, filters."""

import csv
import datetime
import os
import re
import urllib.parse

import pytest

from conftest import REPO
from wlclient import assert_problem, assert_status, describe, qs

LIST = "/v1/municipalities"


def load_csv():
    with open(os.path.join(REPO, "data", "gemeenten-2025.csv"), newline="", encoding="utf-8") as f:
        return {row["code"]: row for row in csv.DictReader(f)}


GEMEENTEN = load_csv()


def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def link_next(resp):
    link = resp.header("Link")
    if link is None:
        return None
    m = re.search(r'<([^>]*)>\s*;\s*rel="?next"?', link)
    assert m, f"Link without rel=next: {link}"
    return m.group(1)


def get_page(api, key, url):
    r = api.get(url, key=key)
    body = assert_status(r, 200)
    assert set(body) == {"items", "next"}, body.keys()
    nxt = body["next"]
    link = link_next(r)
    if nxt is None:
        assert link is None, describe(r)
    else:
        assert nxt.startswith("/v1/municipalities?"), nxt
        assert link is not None and link.endswith(nxt), f"next {nxt} vs Link {r.header('Link')}"
    return body["items"], nxt


def page_through(api, key, params, limit):
    """All pages of a list; checks every page but the last is full."""
    pages, url = [], qs(LIST, dict(params, limit=limit))
    while url:
        items, url = get_page(api, key, url)
        pages.append(items)
        assert len(pages) < 500
    for p in pages[:-1]:
        assert len(p) == limit, [len(p) for p in pages]
    assert len(pages[-1]) <= limit
    return [m for p in pages for m in p]


# ------------------------------------------------------------------ the loaded municipalities


def test_the_342_municipalities_of_2025_are_loaded(api, keys):
    assert len(GEMEENTEN) == 342
    first, nxt = get_page(api, keys.admin, qs(LIST, limit=200))
    assert len(first) == 200 and nxt
    items = page_through(api, keys.admin, {}, 200)
    assert len({m["id"] for m in items}) == len(items)
    by_code = {m["code"]: m for m in items}
    assert len(by_code) == len(items)
    # Other tests add municipalities with codes the shipped data does not use.
    assert set(GEMEENTEN) <= set(by_code), sorted(set(GEMEENTEN) - set(by_code))
    for code, row in GEMEENTEN.items():
        assert (by_code[code]["name"], by_code[code]["province"]) == (row["name"], row["province"]), code


def test_default_limit_is_50(api, keys):
    items, nxt = get_page(api, keys.admin, LIST)
    assert len(items) == 50 and nxt


@pytest.mark.parametrize("limit", ["1", "200"])
def test_limit_bounds_are_allowed(api, keys, limit):
    items, _ = get_page(api, keys.admin, qs(LIST, limit=limit))
    assert len(items) == int(limit)


@pytest.mark.parametrize("limit", ["0", "201", "abc", "-1", "1.5", "99999999999999999999", "", "1e2", "0x10"])
def test_bad_limit_is_400(api, keys, limit):
    assert_problem(api.get(qs(LIST, limit=limit), key=keys.admin), 400, names={"limit"})


@pytest.mark.parametrize("sort", ["colour", "name,colour", "--name", "id", "contact", "notes", "name,",
                                  ",name", "Name"])
def test_unknown_sort_key_is_400(api, keys, sort):
    assert_problem(api.get(qs(LIST, sort=sort), key=keys.admin), 400, names={"sort"})


@pytest.mark.parametrize("since", ["yesterday", "2025-01-01", "2025-13-01T00:00:00Z",
                                   "2025-01-01T00:00:00", "2025-01-01 00:00:00Z", "1735689600"])
def test_bad_updated_since_is_400(api, keys, since):
    assert_problem(api.get(qs(LIST, updatedSince=since), key=keys.admin), 400, names={"updatedSince"})


# ------------------------------------------------------------------ cursors


@pytest.fixture(scope="module")
def a_cursor(api, keys):
    _, nxt = get_page(api, keys.admin, qs(LIST, limit=5, sort="name", province="Gelderland"))
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(nxt).query))
    assert "cursor" in query, nxt
    return query


def flip(s, i):
    c = s[i]
    return s[:i] + ("Z" if c != "Z" else "Q") + s[i + 1:]


def tampered(cursor):
    n = len(cursor)
    out = {f"flip-{i}": flip(cursor, i) for i in sorted({0, 1, n // 3, n // 2, 2 * n // 3, n - 2})}
    out.update({"truncated": cursor[: n // 2], "extended": cursor + "AAAA", "garbage": "abc",
                "not-base64": "!!!!" + cursor[4:], "nul": cursor + "\0", "doubled": cursor + cursor})
    return out


def test_the_cursor_works_untouched(api, keys, a_cursor):
    items, _ = get_page(api, keys.admin, qs(LIST, a_cursor))
    assert len(items) == 5


@pytest.mark.parametrize("how", ["flip-0", "flip-1", "flip-third", "flip-half", "flip-two-thirds",
                                 "flip-last-but-one", "truncated", "extended", "garbage", "not-base64",
                                 "nul", "doubled"])
def test_tampered_cursor_is_400(api, keys, a_cursor, how):
    cursor = a_cursor["cursor"]
    n = len(cursor)
    positions = {"flip-0": 0, "flip-1": 1, "flip-third": n // 3, "flip-half": n // 2,
                 "flip-two-thirds": 2 * n // 3, "flip-last-but-one": n - 2}
    bad = flip(cursor, positions[how]) if how in positions else tampered(cursor)[how]
    assert bad != cursor
    r = api.get(qs(LIST, dict(a_cursor, cursor=bad)), key=keys.admin)
    assert_problem(r, 400, names={"cursor"})


# ------------------------------------------------------------------ paging and order


@pytest.mark.parametrize("params", [
    {"province": "Zuid-Holland", "sort": "name"},
    {"province": "Zuid-Holland", "sort": "-name"},
    {"province": "Noord-Brabant,Limburg", "sort": "code"},
    {"province": "Gelderland"},
    {"province": "Utrecht", "sort": "-code"},
    {"province": "Overijssel,Drenthe", "sort": "province,-name"},
    {"sort": "-createdAt"},
], ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
def test_paging_by_7_gives_each_row_once_in_order(api, keys, params):
    one_page = page_through(api, keys.admin, params, 200)
    paged = page_through(api, keys.admin, params, 7)
    assert [m["id"] for m in paged] == [m["id"] for m in one_page]
    assert len({m["id"] for m in paged}) == len(paged)
    if "province" in params:
        wanted = set(params["province"].split(","))
        assert {m["province"] for m in paged} <= wanted
        assert {m["code"] for m in paged} >= {c for c, r in GEMEENTEN.items() if r["province"] in wanted}


def names_of(api, keys, params):
    return [m["name"] for m in page_through(api, keys.admin, params, 200)]


def test_sort_by_name_and_reverse(api, keys):
    asc = names_of(api, keys, {"province": "Zeeland", "sort": "name"})
    desc = names_of(api, keys, {"province": "Zeeland", "sort": "-name"})
    assert set(asc) >= {r["name"] for r in GEMEENTEN.values() if r["province"] == "Zeeland"}
    assert asc in (sorted(asc), sorted(asc, key=str.casefold)), asc
    assert desc == list(reversed(asc))


def test_sort_by_code_and_reverse(api, keys):
    asc = [m["code"] for m in page_through(api, keys.admin, {"sort": "code"}, 200)]
    desc = [m["code"] for m in page_through(api, keys.admin, {"sort": "-code"}, 200)]
    assert asc == sorted(asc) and desc == sorted(asc, reverse=True)


def test_sort_by_province_then_name(api, keys):
    items = page_through(api, keys.admin, {"sort": "province,name", "province": "Zeeland,Drenthe"}, 200)
    provinces = [m["province"] for m in items]
    assert provinces == sorted(provinces)
    for p in ("Drenthe", "Zeeland"):
        names = [m["name"] for m in items if m["province"] == p]
        assert names in (sorted(names), sorted(names, key=str.casefold))


def test_default_order_is_created_at(api, keys, new_municipality):
    a, b = new_municipality(), new_municipality()
    items = page_through(api, keys.admin, {}, 200)
    ids = [m["id"] for m in items]
    assert ids.index(a["id"]) < ids.index(b["id"])
    created = [ts(m["createdAt"]) for m in items]
    assert created == sorted(created)


def test_paging_while_the_list_changes(api, keys, new_municipality):
    before = [m["id"] for m in page_through(api, keys.admin, {}, 200)]
    seen, url, page = [], qs(LIST, limit=25), 0
    while url:
        items, url = get_page(api, keys.admin, url)
        seen += [m["id"] for m in items]
        page += 1
        if page % 3 == 0:  # meanwhile: new rows, and changes to rows not yet seen
            new_municipality()
            later = [i for i in before if i not in seen][:2]
            for i in later:
                api.patch(f"{LIST}/{i}", {"notes": f"paged {page}"}, key=keys.admin)
    assert len(seen) == len(set(seen)), "a row came twice"
    assert set(before) <= set(seen), "a row was skipped"


def test_next_keeps_the_filters(api, keys):
    _, nxt = get_page(api, keys.admin, qs(LIST, province="Noord-Holland", sort="-name", limit=3))
    items, _ = get_page(api, keys.admin, nxt)
    assert len(items) == 3 and all(m["province"] == "Noord-Holland" for m in items)


# ------------------------------------------------------------------ filters


@pytest.mark.parametrize("province", ["Zeeland", "Fryslân", "Zeeland,Drenthe", "Flevoland,Groningen,Utrecht"])
def test_filter_province(api, keys, province):
    wanted = set(province.split(","))
    items = page_through(api, keys.admin, {"province": province}, 200)
    assert {m["province"] for m in items} == wanted
    assert {m["code"] for m in items if m["code"] in GEMEENTEN} == \
        {c for c, r in GEMEENTEN.items() if r["province"] in wanted}


def test_filter_code(api, keys):
    items = page_through(api, keys.admin, {"code": "GM0297,GM0014"}, 200)
    assert sorted((m["code"], m["name"]) for m in items) == [("GM0014", "Groningen"), ("GM0297", "Zaltbommel")]
    items = page_through(api, keys.admin, {"code": "GM0297"}, 200)
    assert [m["name"] for m in items] == ["Zaltbommel"]


def test_filters_combine(api, keys):
    items = page_through(api, keys.admin, {"code": "GM0297,GM0014", "province": "Gelderland"}, 200)
    assert [m["code"] for m in items] == ["GM0297"]


@pytest.mark.parametrize("q", ["bergen", "Bergen", "BERGEN"])
def test_full_text_search(api, keys, q):
    items = page_through(api, keys.admin, {"q": q}, 200)
    names = {m["name"] for m in items}
    assert {"Bergen (NH.)", "Bergen (L.)"} <= names, names
    assert not names & {"Haaksbergen", "Steenbergen", "Tubbergen"}, names


def test_full_text_search_combines_with_province(api, keys):
    items = page_through(api, keys.admin, {"q": "bergen", "province": "Limburg"}, 200)
    assert [m["name"] for m in items] == ["Bergen (L.)"]


@pytest.mark.parametrize("q", ["'", "a & b", "!", "(", "foo:*", "\\", "bergen | zaltbommel", "<->", "%",
                               "ü" * 200, "a:* & !b | (c <-> d)"],
                         ids=lambda q: q if len(q) < 30 else f"{q[0]}*{len(q)}")
def test_full_text_search_odd_input_is_not_an_error(api, keys, q):
    r = api.get(qs(LIST, q=q), key=keys.admin)
    assert_status(r, 200)


@pytest.mark.parametrize("q", ["", "x" * 201, "ü" * 1000], ids=["empty", "201", "1000-umlauts"])
def test_full_text_search_bounds(api, keys, q):
    r = api.get(qs(LIST, q=q), key=keys.admin)
    if r.status != 200:  # a limit on q is fine, as a 400 naming it
        assert_problem(r, 400, names={"q"})


def test_updated_since(api, keys, municipality):
    t0 = municipality["updatedAt"]
    items = page_through(api, keys.admin, {"updatedSince": t0}, 200)
    assert municipality["id"] in {m["id"] for m in items}
    assert all(ts(m["updatedAt"]) >= ts(t0) for m in items), t0
    later = (ts(t0) + datetime.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert municipality["id"] not in {m["id"] for m in page_through(
        api, keys.admin, {"updatedSince": later}, 200)}
    future = "2999-01-01T00:00:00Z"
    assert page_through(api, keys.admin, {"updatedSince": future}, 200) == []


def test_updated_since_accepts_offsets(api, keys, municipality):
    utc = ts(municipality["updatedAt"])
    local = utc.astimezone(datetime.timezone(datetime.timedelta(hours=1))).isoformat()
    assert local.endswith("+01:00")
    items = page_through(api, keys.admin, {"updatedSince": local, "code": municipality["code"]}, 200)
    assert [m["id"] for m in items] == [municipality["id"]]


def test_updated_since_sees_a_patch(api, keys, municipality):
    later = (ts(municipality["updatedAt"]) + datetime.timedelta(microseconds=1)).isoformat()
    params = {"updatedSince": later, "code": municipality["code"]}
    assert page_through(api, keys.admin, params, 200) == []
    api.patch(f"{LIST}/{municipality['id']}", {"notes": "later"}, key=keys.admin)
    assert len(page_through(api, keys.admin, params, 200)) == 1


def test_partner_list_has_no_contact(api, keys):
    r = api.get(qs(LIST, limit=200), key=keys.partner)
    for m in assert_status(r, 200)["items"]:
        assert "contact" not in m, m

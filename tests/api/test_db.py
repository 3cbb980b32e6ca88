"""The threads' database connections (server/db) and the statements they keep prepared
(server/prepared): tests/db/db_check, a C program run against the session's cluster, checks the
connection registry, its keeper and transactions; the API test below sends more distinct list
shapes than a connection keeps prepared and checks every answer."""

import os
import re
import subprocess

import pytest

from conftest import BINARY, REPO, Daemon
from test_operations import find, metrics
from wlclient import assert_status, describe, qs

CHECK = os.path.join(os.path.dirname(BINARY), "tests", "db", "db_check")

with open(os.path.join(REPO, "server", "prepared.h"), encoding="utf-8") as _f:
    SLOTS = int(re.search(r"#define PREPARED_SLOTS\s+(\d+)", _f.read()).group(1))


def test_db_check_program(cluster):
    assert os.path.exists(CHECK), f"{CHECK} is not built (meson -Dtests=true)"
    run = subprocess.run([CHECK, cluster.url], capture_output=True, text=True, timeout=120)
    report = run.stdout + run.stderr[-3000:]
    assert run.returncode == 0, report
    assert "not ok" not in run.stdout, report
    assert run.stdout.count("\nok ") + run.stdout.startswith("ok ") >= 28, report


@pytest.fixture
def one_worker(werklabd, log_dir):
    """Every statement on one connection: one worker thread, no pipeline."""
    d = Daemon(werklabd, log_dir, name="one-worker", threads=1,
               extra_args=("--db-pipelines", "0", "--key-rate-limit", "0"))
    try:
        d.wait_ready()
        yield d
    finally:
        d.terminate(timeout=5)


SORTS = ["name", "-name", "code", "-code", "province,name", "-province,code"]
FILTERS = [{}, {"province": "Gelderland"}, {"province": "Noord-Holland,Zuid-Holland"}]
LIMITS = list(range(1, 9)) + [37, 150]


def statement_counts(api, keys):
    samples = metrics(api, keys)[1]
    return {what: sum(find(samples, f"werklabd_db_statements_{what}_total", connection="worker"))
            for what in ("prepared", "evicted", "unprepared")}


def test_more_list_shapes_than_prepared_slots(one_worker, keys):
    """Page sizes × sorts × filters, first and second pages: far more distinct statements than
    the connection keeps prepared. Each answer holds exactly the rows it should, twice over (the
    second time after the first shapes were evicted), and nothing runs unprepared."""
    api = one_worker.api
    expected = {}
    for sort in SORTS:
        for filters in FILTERS:
            items, _ = api.list_all("/v1/municipalities", keys.staff, dict(filters, sort=sort))
            assert len(items) > 2 * 8, (sort, filters, len(items))
            expected[(sort, str(filters))] = [m["id"] for m in items]
    shapes = len(SORTS) * len(FILTERS) * len(LIMITS)
    assert 2 * shapes > 2 * SLOTS, "not enough shapes to exceed the table"
    before = statement_counts(api, keys)
    for _ in range(2):
        for sort in SORTS:
            for filters in FILTERS:
                ids = expected[(sort, str(filters))]
                for limit in LIMITS:
                    r = api.get(qs("/v1/municipalities", dict(filters, sort=sort, limit=limit)),
                                key=keys.staff)
                    page = assert_status(r, 200)
                    assert [m["id"] for m in page["items"]] == ids[:limit], describe(r)
                    if len(ids) <= limit:
                        assert page["next"] is None, describe(r)
                        continue
                    r = api.get(page["next"], key=keys.staff)
                    second = assert_status(r, 200)
                    assert [m["id"] for m in second["items"]] == ids[limit:2 * limit], describe(r)
    after = statement_counts(api, keys)
    prepared = after["prepared"] - before["prepared"]
    evicted = after["evicted"] - before["evicted"]
    assert after["unprepared"] == before["unprepared"] == 0, (before, after)
    assert evicted > 0 and prepared >= shapes, (before, after)

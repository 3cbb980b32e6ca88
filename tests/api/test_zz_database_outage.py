"""The database goes away and comes back; the daemon keeps running.

Named test_zz_* so it runs last: it stops the session's cluster (and starts it again).
"""

import time

from test_operations import find, metrics
from wlclient import assert_problem, assert_status, describe


def test_database_outage_and_recovery(api, keys, cluster, daemon, municipality):
    assert api.get("/v1/municipalities?limit=1", key=keys.admin).status == 200
    db_errors_before = sum(find(metrics(api, keys)[1], "werklabd_db_errors_total"))
    cluster.stop()
    try:
        # Each answer within 10 s (the client's timeout); several, so every worker thread is hit.
        for i in range(8):
            t = time.monotonic()
            r = api.get("/v1/municipalities?limit=1", key=keys.admin, timeout=10)
            assert_problem(r, 503)
            retry = r.header("Retry-After")
            assert retry and retry.isdigit() and 1 <= int(retry) <= 5, describe(r)
            assert time.monotonic() - t < 10
        for path, body in [("/v1/municipalities", {"code": "GM0001", "name": "x"})]:
            r = api.post(path, body, key=keys.staff, timeout=10)
            assert_problem(r, 503)
        r = api.get(f"/v1/municipalities/{municipality['id']}", key=keys.partner, timeout=10)
        assert_problem(r, 503)
        assert_problem(api.get("/readyz", timeout=10), 503)
        assert_status(api.get("/healthz", timeout=10), 200)
        assert daemon.proc.poll() is None, "the daemon died"
    finally:
        cluster.start()

    # Recovers by itself: within 30 s, every thread answers again.
    deadline = time.monotonic() + 30
    streak, last = 0, None
    while streak < 12:
        assert time.monotonic() < deadline, f"not recovered in 30 s; last answer:\n{last and describe(last)}"
        # Lists read on the workers' connections, reads by id on the pipeline's: both recover.
        path = "/v1/municipalities?limit=1" if streak % 2 else f"/v1/municipalities/{municipality['id']}"
        last = api.get(path, key=keys.admin, timeout=10)
        streak = streak + 1 if last.status == 200 else 0
        if last.status != 200:
            assert last.status == 503, describe(last)
            time.sleep(0.2)
    assert_status(api.get("/readyz"), 200)
    m = assert_status(api.patch(f"/v1/municipalities/{municipality['id']}", {"notes": "na de storing"},
                                key=keys.staff), 200)
    assert m["version"] == municipality["version"] + 1
    assert daemon.proc.poll() is None
    assert sum(find(metrics(api, keys)[1], "werklabd_db_errors_total")) > db_errors_before

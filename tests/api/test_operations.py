"""Operations: /healthz, /readyz, /metrics, the request log, SIGTERM."""

import json
import re
import signal
import uuid

import pytest

from conftest import Daemon
from wlclient import TIMESTAMP_RE, assert_problem, assert_status, describe, raw_request, wait_for


def test_healthz(api):
    r = api.get("/healthz")
    assert assert_status(r, 200) == {"status": "ok"}


def test_readyz(api):
    r = api.get("/readyz")
    assert assert_status(r, 200) == {"status": "ready"}


# ------------------------------------------------------------------ metrics


def metric_samples(text):
    """{(name, frozenset(labels.items())): value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$', line)
        assert m, f"not a sample line: {line!r}"
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return out


def metrics(api, keys):
    r = api.get("/metrics", key=keys.admin)
    assert r.status == 200, describe(r)
    assert (r.header("Content-Type") or "").startswith("text/plain"), describe(r)
    return r.body.decode(), metric_samples(r.body.decode())


def find(samples, name, **labels):
    return [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls)]


def metrics_counting(api, keys, route, at_least):
    """/metrics once it counts at_least answers of 200 on route. A request is counted when its
    answer has been sent, so the client that read the answer can ask /metrics a moment before."""
    def counting():
        text, samples = metrics(api, keys)
        counted = sum(find(samples, "werklabd_http_requests_total", route=route, status="200"))
        return (text, samples, counted) if counted >= at_least else None
    return wait_for(counting, timeout=5, interval=0.05,
                    what=f"/metrics to count {at_least} answers of 200 on {route}")


def test_metrics_content(api, keys):
    api.get("/v1/municipalities?limit=1", key=keys.admin)
    text, samples, _ = metrics_counting(api, keys, "/v1/municipalities", 1)
    assert "# TYPE werklabd_http_requests_total counter" in text
    assert "# TYPE werklabd_http_request_duration_seconds histogram" in text
    assert find(samples, "werklabd_http_requests_total", route="/v1/municipalities", status="200"), text
    assert find(samples, "werklabd_http_request_duration_seconds_bucket", le="+Inf"), text
    assert any(n == "werklabd_http_request_duration_seconds_sum" for n, _ in samples)
    assert any(n == "werklabd_http_request_duration_seconds_count" for n, _ in samples)
    assert any(n == "werklabd_db_errors_total" for n, _ in samples), text


def test_metrics_count_requests(api, keys):
    _, before = metrics(api, keys)
    for _ in range(3):
        api.get("/healthz")
    b = sum(find(before, "werklabd_http_requests_total", route="/healthz", status="200"))
    a = metrics_counting(api, keys, "/healthz", b + 3)[2]
    assert a - b >= 3, (b, a)


def test_histogram_buckets_are_cumulative(api, keys):
    _, samples = metrics(api, keys)
    series = {}
    for (name, labels), v in samples.items():
        if name == "werklabd_http_request_duration_seconds_bucket":
            ls = dict(labels)
            le = ls.pop("le")
            le = float("inf") if le == "+Inf" else float(le)
            series.setdefault(frozenset(ls.items()), []).append((le, v))
    assert series
    for key, points in series.items():
        values = [v for _, v in sorted(points)]
        assert values == sorted(values), (key, points)


def test_unknown_paths_do_not_become_metric_labels(api, keys):
    marker = uuid.uuid4().hex
    api.get(f"/v1/{marker}", key=keys.admin)
    api.get(f"/v1/municipalities/{marker}", key=keys.admin)
    text, _ = metrics(api, keys)
    assert marker not in text


@pytest.mark.parametrize("role,status", [(None, 401), ("partner", 403), ("staff", 403)])
def test_metrics_need_admin(api, keys, role, status):
    assert_problem(api.get("/metrics", key=keys[role]), status)


# ------------------------------------------------------------------ the request log


def test_one_json_log_line_per_request(api, keys, daemon, municipality):
    rid = f"log-{uuid.uuid4().hex}"
    r = api.get(f"/v1/municipalities/{municipality['id']}", key=keys.admin, headers={"X-Request-Id": rid})
    assert r.status == 200
    lines = daemon.wait_log(lambda l: l.get("requestId") == rid)
    assert len(lines) == 1, lines
    line = lines[0]
    assert {"time", "requestId", "method", "route", "status", "durationMs", "keyId"} <= set(line), line
    assert TIMESTAMP_RE.match(line["time"]) or re.match(r"^\d{4}-\d\d-\d\dT", line["time"]), line
    assert line["method"] == "GET" and line["status"] == 200, line
    assert line["route"] == "/v1/municipalities/{id}", line
    assert isinstance(line["durationMs"], (int, float)) and 0 <= line["durationMs"] < 10000, line
    assert line["keyId"] == keys.ids["admin"], line


def test_log_line_without_key_and_for_errors(api, daemon):
    rid = f"log-{uuid.uuid4().hex}"
    api.get("/v1/municipalities", headers={"X-Request-Id": rid})
    lines = daemon.wait_log(lambda l: l.get("requestId") == rid)
    assert len(lines) == 1, lines
    assert lines[0]["status"] == 401 and lines[0]["keyId"] is None, lines


def test_log_has_no_personal_data(api, keys, daemon, fresh_code):
    email = f"geheim-{uuid.uuid4().hex[:8]}@example.nl"
    rid = f"log-{uuid.uuid4().hex}"
    api.post("/v1/municipalities", {"code": fresh_code, "name": "Privé",
                                    "contact": {"email": email, "phone": "+31 6 9999 0000"}},
             key=keys.admin, headers={"X-Request-Id": rid})
    api.post("/v1/municipalities", {"code": fresh_code, "name": "Privé", "contact": {"email": email}},
             key=keys.admin)  # a 409
    assert daemon.wait_log(lambda l: l.get("requestId") == rid)
    assert email not in daemon.log_text()


# ------------------------------------------------------------------ SIGTERM


@pytest.fixture
def second_daemon(werklabd, log_dir):
    d = Daemon(werklabd, log_dir, name="sigterm", threads=2)
    try:
        d.wait_ready()
        yield d
    finally:
        d.terminate(timeout=5)


def test_sigterm_exits_0_and_logs_the_request(second_daemon, keys):
    d = second_daemon
    rid = f"sigterm-{uuid.uuid4().hex}"
    r = d.api.get("/v1/municipalities?limit=1", key=keys.staff, headers={"X-Request-Id": rid})
    assert r.status == 200, describe(r)
    code = d.terminate(timeout=15)
    assert code == 0, f"exit code {code}\n{d.log_text()[-3000:]}"
    lines = [l for l in d.log_lines() if l.get("requestId") == rid]
    assert len(lines) == 1, d.log_text()[-3000:]
    assert lines[0]["status"] == 200 and lines[0]["route"] == "/v1/municipalities"
    assert lines[0]["keyId"] == keys.ids["staff"]


def start_a_post(d, c, keys, code, request_id):
    """Sends a municipality's POST with part of its body, and returns the rest of the body once
    the request is in flight: d counts its connection busy (the head is in), beside the one
    asking /metrics."""
    body = json.dumps({"code": code, "name": "Halverwege"}).encode()
    c.send(raw_request("POST", "/v1/municipalities", {
        "Authorization": f"Bearer {keys.admin}", "Content-Type": "application/json",
        "Content-Length": str(len(body)), "X-Request-Id": request_id}))
    c.send(body[:10])

    def busy():
        return sum(find(metrics(d.api, keys)[1], "werklabd_http_connections", state="busy")) >= 2
    wait_for(busy, timeout=15, interval=0.05, what="the POST's head to be read")
    return body[10:]


def wait_for_sigterm(d):
    """Until d has taken the SIGTERM in (it says so first)."""
    wait_for(lambda: any(l.get("message", "").startswith("SIGTERM") for l in d.log_lines()),
             timeout=15, interval=0.01, what="the SIGTERM to be taken in")


def finish_the_post(d, c, rest):
    """The rest of start_a_post()'s body, after a SIGTERM: the daemon waited for it, answers
    201, then exits 0."""
    assert d.proc.poll() is None, "exited with a request in flight"
    c.send(rest)
    r = c.response("POST", "/v1/municipalities")
    assert r.status == 201, describe(r)
    code = d.terminate(timeout=15)
    assert code == 0, f"exit code {code}\n{d.log_text()[-3000:]}"


def test_sigterm_finishes_a_request_in_flight(second_daemon, keys, fresh_code):
    d = second_daemon
    with d.api.raw(timeout=15) as c:
        rest = start_a_post(d, c, keys, fresh_code, "in-flight")
        d.proc.send_signal(signal.SIGTERM)
        wait_for_sigterm(d)
        finish_the_post(d, c, rest)
    assert [l for l in d.log_lines() if l.get("requestId") == "in-flight"]


def test_sigterm_closes_new_connections_while_finishing(second_daemon, keys, fresh_code):
    """While a request in flight is finished, a new connection is closed at once without an
    answer (a proxy in front then tries another instance), rather than left waiting in the
    listen backlog until the daemon stops; the request in flight is still answered."""
    d = second_daemon
    with d.api.raw(timeout=15) as c:
        rest = start_a_post(d, c, keys, fresh_code, "finishing")
        d.proc.send_signal(signal.SIGTERM)
        wait_for_sigterm(d)
        with d.api.raw(timeout=10) as late:
            try:
                late.send(raw_request("GET", "/healthz"))
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert not late._fill(), f"a new connection was answered: {late.buf[:200]!r}"
        finish_the_post(d, c, rest)


def test_sigterm_stops_accepting(second_daemon):
    d = second_daemon
    assert d.terminate(timeout=15) == 0, d.log_text()[-3000:]
    with pytest.raises(OSError):
        d.api.get("/healthz", timeout=2)

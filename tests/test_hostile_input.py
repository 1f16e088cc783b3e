"""Hostile input gets a 4xx that says what to fix: never a 500, invalid JSON or a broken stream.

Each shape goes as an attacker sends it: raw bytes over HTTP to the real server.
"""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from smacommon.strictjson import MAX_DEPTH

DEEP = "[" * 100_000 + "]" * 100_000
NOT_FINITE = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]


def _send(services, api, method: str, path: str, body: str, headers=None):
    """Raw JSON text to the real server, as curl would send it."""
    return requests.request(method, services["api_url"] + path, data=body.encode(),
                            headers={**api.headers, "Content-Type": "application/json",
                                     **(headers or {})}, timeout=60)


def _refuse_constant(name):
    raise ValueError(f"{name} in a response: not JSON")


def strict(resp) -> object:
    """The body as a strict JSON reader (a browser, jq) reads it: NaN or Infinity fail."""
    return json.loads(resp.text, parse_constant=_refuse_constant)


def _nested(levels: int) -> str:
    """A JSON value of `levels` arrays, one inside the other."""
    return "[" * levels + "1" + "]" * levels


@pytest.fixture
def rb(api):
    """A published runbook with an `any`, an `int` and a `float` parameter."""
    return api.create_runbook(content="def main(x=None, n=0, f=0.0):\n    print(x)\n",
                              parameters=[{"name": "x", "type": "any"},
                                          {"name": "n", "type": "int"},
                                          {"name": "f", "type": "float"}])["name"]


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/api/v1/runbooks", DEEP),
    ("POST", "/api/v1/variables", '{"name": "v", "value": ' + DEEP + "}"),
    ("PATCH", "/api/v1/variables/v", '{"value": ' + _nested(5000) + "}"),
    ("POST", "/api/v1/runbooks/{rb}/start", '{"parameters": {"x": ' + _nested(5000) + "}}"),
    ("POST", "/api/v1/jobs/batch", '{"jobs": [' + _nested(5000) + "]}"),
    ("PATCH", "/api/v1/schedules/s", DEEP),
])
def test_deeply_nested_json_is_400(api, services, rb, method, path, body):
    resp = _send(services, api, method, path.format(rb=rb), body)
    assert resp.status_code == 400, resp.text[:500]
    assert f"nested deeper than {MAX_DEPTH} levels" in resp.json()["message"]
    assert api.get("/api/v1/variables").get_json()["items"] == []
    assert api.get("/api/v1/jobs").get_json()["items"] == []


def test_depth_limit_is_exact_and_a_value_at_it_round_trips(api, services):
    # the body's object is one level, the value's arrays the rest
    ok = _send(services, api, "POST", "/api/v1/variables",
               '{"name": "deep", "value": ' + _nested(MAX_DEPTH - 1) + "}")
    assert ok.status_code == 201, ok.text[:300]
    assert api.get("/api/v1/variables/deep").get_json()["value"] == json.loads(
        _nested(MAX_DEPTH - 1))
    over = _send(services, api, "PATCH", "/api/v1/variables/deep",
                 '{"value": ' + _nested(MAX_DEPTH) + "}")
    assert over.status_code == 400 and "nested deeper" in over.json()["message"]


@pytest.mark.parametrize("token", NOT_FINITE)
def test_nan_infinity_and_1e999_are_refused_and_jobs_stay_valid_json(api, services, rb, token):
    api.start(rb, {"x": {"a": [1.5, -2]}, "f": 2.5})  # a job, so the list has something
    for body in ('{"parameters": {"x": ' + token + "}}",
                 '{"parameters": {"x": {"deep": [1, ' + token + "]}}}",
                 '{"parameters": {"f": ' + token + "}}"):
        resp = _send(services, api, "POST", f"/api/v1/runbooks/{rb}/start", body)
        assert resp.status_code == 400, (body, resp.text)
        assert "not JSON" in resp.json()["message"]
    var = _send(services, api, "POST", "/api/v1/variables", '{"name": "n", "value": '
                + token + "}")
    assert var.status_code == 400 and "not JSON" in var.json()["message"]
    # a float parameter given as text is checked by its type
    text = _send(services, api, "POST", f"/api/v1/runbooks/{rb}/start",
                 json.dumps({"parameters": {"f": token}}))
    assert text.status_code == 400 and "must be a number" in text.json()["message"]
    listed = requests.get(services["api_url"] + "/api/v1/jobs", headers=api.headers, timeout=30)
    jobs = strict(listed)["items"]
    assert len(jobs) == 1 and jobs[0]["parameters"]["x"] == {"a": [1.5, -2]}


def test_huge_numbers_are_400(api, services, rb):
    digits = "9" * 5000
    for body, words in (('{"parameters": {"n": ' + digits + "}}", "100 digits"),
                        ('{"parameters": {"x": [' + "9" * 200 + "]}}", "100 digits"),
                        ('{"parameters": {"n": "' + digits + '"}}', "an integer from"),
                        ('{"parameters": {"n": 9223372036854775808}}', "an integer from"),
                        ('{"parameters": {"n": 1e300}}', "an integer from")):
        resp = _send(services, api, "POST", f"/api/v1/runbooks/{rb}/start", body)
        assert resp.status_code == 400, (body[:80], resp.text[:300])
        assert words in resp.json()["message"]
    big = _send(services, api, "POST", "/api/v1/variables",
                '{"name": "big", "value": ' + digits + "}")
    assert big.status_code == 400 and "100 digits" in big.json()["message"]
    edge = api.start(rb, {"n": 2**63 - 1})
    assert edge["parameters"]["n"] == 2**63 - 1


def test_integers_beyond_the_database_in_paths_and_queries(api, services, rb):
    job = api.start(rb, worker_group="nobody")
    base = services["api_url"] + "/api/v1"
    for query in ("after_seq=99999999999999999999", "after_seq=2147483648",
                  "after_seq=" + "9" * 5000):
        for path in (f"/jobs/{job['id']}/streams", f"/jobs/{job['id']}/events?timeout=0"):
            resp = requests.get(f"{base}{path}{'&' if '?' in path else '?'}{query}",
                                headers=api.headers, timeout=30)
            assert resp.status_code == 400, (path, query[:30], resp.text[:300])
            assert "after_seq" in resp.json()["message"]
    for number in ("99999999999999999999999", "2147483648", "9" * 5000):
        resp = requests.get(f"{base}/runbooks/{rb}/versions/{number}", headers=api.headers,
                            timeout=30)
        assert resp.status_code == 404, resp.text[:300]
        assert resp.json()["code"] == 404
    assert requests.get(f"{base}/runbooks/{rb}/versions/1", headers=api.headers,
                        timeout=30).status_code == 200
    for cursor in ("99999999999999999999", "2147483648", "9" * 5000, "-1"):
        resp = requests.get(f"{base}/runbooks/{rb}/versions?cursor={cursor}",
                            headers=api.headers, timeout=30)
        assert resp.status_code == 400 and "cursor" in resp.json()["message"], resp.text[:300]


@pytest.mark.parametrize("last_event_id", ["9" * 50, "2147483648", "x", "\u00b2", "-1", "1.5"])
def test_bad_last_event_id_is_a_clean_400_before_the_stream(api, services, rb, last_event_id):
    job = api.start(rb, worker_group="nobody")
    url = f"{services['api_url']}/api/v1/jobs/{job['id']}/events?timeout=0"
    resp = requests.get(url, headers={**api.headers,
                                      "Last-Event-ID": last_event_id.encode("utf-8")},
                        timeout=30)
    assert resp.status_code == 400, resp.text[:300]
    assert resp.headers["Content-Type"].startswith("application/json")
    assert "Last-Event-ID" in resp.json()["message"]
    # the greatest seq the database holds still resumes (after everything so far)
    edge = requests.get(url, headers={**api.headers, "Last-Event-ID": str(2**31 - 1)},
                        timeout=30)
    assert edge.status_code == 200 and edge.text.startswith("retry:")


def _make(api, kind: str, name: str):
    """Create one object of `kind` named `name` through the API; the response."""
    from tests.test_assets import _self_signed

    if kind == "runbook":
        return api.post("/api/v1/runbooks", json={"name": name, "runbook_type": "python",
                                                  "content": "print(1)\n"})
    if kind == "variable":
        return api.post("/api/v1/variables", json={"name": name, "value": 1})
    if kind == "credential":
        return api.post("/api/v1/credentials", json={"name": name, "username": "u",
                                                     "password": "p"})
    if kind == "connection-type":
        return api.post("/api/v1/connection-types", json={"name": name,
                                                          "fields": [{"name": "Url"}]})
    if kind == "connection":
        api.post("/api/v1/connection-types", json={"name": "T", "fields": [{"name": "Url"}]})
        return api.post("/api/v1/connections", json={"name": name, "connection_type": "T",
                                                     "values": {"Url": "https://x"}})
    if kind == "certificate":
        import base64
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            pem = _self_signed(Path(tmp), b"pw")[2]
        return api.post("/api/v1/certificates", json={"name": name,
                                                      "data": base64.b64encode(pem).decode()})
    if kind == "schedule":
        return api.post("/api/v1/schedules", json={"name": name, "frequency": "Day"})
    if kind == "webhook":
        target = api.create_runbook()["name"]
        return api.post("/api/v1/webhooks", json={"name": name, "runbook": target})
    if kind == "token":
        return api.post("/api/v1/tokens", json={"name": name, "role": "reader"})
    raise AssertionError(kind)


KINDS = ["runbook", "variable", "credential", "connection-type", "connection", "certificate",
         "schedule", "webhook", "token"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", [".", ".."])
def test_dot_names_are_refused_for_every_kind(api, kind, name):
    resp = _make(api, kind, name)
    assert resp.status_code == 400, resp.get_json()
    body = resp.get_json()
    assert "'.' and '..'" in body["message"] and body["errors"]["name"]
    assert _make(api, kind, f"ok.{uuid.uuid4().hex[:6]}" if kind not in (
        "runbook",) else f"ok-{uuid.uuid4().hex[:6]}").status_code == 201


def test_portal_forms_refuse_hostile_json(client, api, rb):
    from tests.test_portal import sign_in

    csrf = sign_in(client)
    for value, words in (("NaN", "not JSON"), ("[" * 100_000, "nested deeper"),
                         (_nested(MAX_DEPTH + 1), "nested deeper"), ("9" * 5000, "100 digits")):
        made = client.post("/assets/variables/new", data={"csrf_token": csrf, "name": "v",
                                                          "value": value},
                           follow_redirects=True)
        assert made.status_code == 200 and words in made.get_data(as_text=True), value[:20]
        started = client.post(f"/runbooks/{rb}/start", data={"csrf_token": csrf,
                                                              "p_x": value})
        assert started.status_code == 400 and words in started.get_data(as_text=True)
        schedule = "s" + uuid.uuid4().hex[:6]
        api.post("/api/v1/schedules", json={"name": schedule, "frequency": "Day"})
        linked = client.post(f"/schedules/{schedule}/link", follow_redirects=True, data={
            "csrf_token": csrf, "runbook": rb, "parameters": f"x={value}"})
        assert words in linked.get_data(as_text=True)
    assert api.get("/api/v1/variables").get_json()["items"] == []
    assert api.get("/api/v1/jobs").get_json()["items"] == []
    # text that is not JSON is still text
    client.post("/assets/variables/new", data={"csrf_token": csrf, "name": "t",
                                               "value": "[not json"})
    assert api.get("/api/v1/variables/t").get_json()["value"] == "[not json"


BASH_RECORDS = r"""
deep=$(printf '[%.0s' $(seq 5000))$(printf ']%.0s' $(seq 5000))
checkpoint "$deep"
write_output_json '{"ratio": NaN}'
write_output_json '[1e999]'
echo done
"""


def test_hostile_records_from_a_runbook_are_refused_records(api, worker):
    """A runbook's record channel is input too: a checkpoint or typed output sma could not
    store and write back as JSON becomes an Error record that says why; the job goes on."""
    job = api.run(BASH_RECORDS, runbook_type="bash")
    assert job["status"] == "Completed", job
    resp = api.get(f"/api/v1/jobs/{job['id']}/streams?limit=100")
    records = strict(resp)["items"]
    errors = [r["text"] for r in records if r["stream"] == "Error"]
    assert len(errors) == 3, errors
    assert "nested deeper" in errors[0] and all("not JSON" in e for e in errors[1:])
    assert [r["text"] for r in records if r["stream"] == "Output"] == ["done"]


def test_nan_stored_before_the_fix_goes_out_as_null(api, services):
    """Rows an older sma stored with NaN (SQLite took them) still read as valid JSON."""
    from sqlalchemy.orm import Session

    from smacommon.db import get_engine, utcnow
    from smacommon.models import Job, JobStream

    engine = get_engine(services["database_url"])
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's jsonb never stored NaN")
    rb = api.create_runbook()
    job_id = uuid.uuid4()
    with Session(engine) as session:
        session.add(Job(id=job_id, runbook_id=uuid.UUID(rb["id"]), status="Completed",
                        parameters={"x": float("nan"), "y": [float("inf"), 1]},
                        created_at=utcnow(), end_time=utcnow()))
        session.flush()
        session.add(JobStream(job_id=job_id, seq=1, stream="Output", time=utcnow(),
                              text="v", value={"ratio": float("-inf")}))
        session.commit()
    base = f"{services['api_url']}/api/v1/jobs"
    listed = strict(requests.get(base, headers=api.headers, timeout=30))["items"]
    assert listed[0]["parameters"] == {"x": None, "y": [None, 1]}
    records = strict(requests.get(f"{base}/{job_id}/streams", headers=api.headers, timeout=30))
    assert records["items"][0]["value"] == {"ratio": None}
    events = requests.get(f"{base}/{job_id}/events", headers=api.headers, timeout=30).text
    data = [line[6:] for line in events.splitlines() if line.startswith("data: ")]
    assert [json.loads(d, parse_constant=_refuse_constant) for d in data][0]["value"] == {
        "ratio": None}


@pytest.mark.parametrize("fields, status", [
    ({"frequency": "Month", "interval": 100_000}, 400),    # 8,000 years: off the calendar
    ({"frequency": "Week", "interval": 100_000, "week_days": ["Monday"]}, 400),
    ({"frequency": "Day", "interval": 36_501}, 400),
    # a day that never comes (31 February, every century): no next run, found at once
    ({"frequency": "Month", "interval": 1200, "month_days": [31],
      "start_time": "2020-02-29T09:00:00Z"}, 201),
    ({"frequency": "Day", "interval": 30, "start_time": "9999-12-01T00:00:00Z"}, 201),
])
def test_schedule_intervals_that_leave_the_calendar(api, services, fields, status):
    import time

    started = time.monotonic()
    resp = _send(services, api, "POST", "/api/v1/schedules",
                 json.dumps({"name": f"s-{uuid.uuid4().hex[:6]}", **fields}))
    assert resp.status_code == status, resp.text[:300]
    assert time.monotonic() - started < 5
    if status == 400:
        assert "interval must be a whole number from 1 to" in resp.json()["message"]


def test_portal_schedule_interval_beyond_the_database(client, api):
    from tests.test_portal import sign_in

    csrf = sign_in(client)
    made = client.post("/schedules", follow_redirects=True, data={
        "csrf_token": csrf, "name": "huge", "frequency": "Day", "interval": "9" * 20,
        "time_zone": "UTC", "missed": "run_once"})
    assert made.status_code == 200 and "interval must be" in made.get_data(as_text=True)
    assert api.get("/api/v1/schedules").get_json()["items"] == []


def test_portal_earlier_records_beyond_the_database(client, api, rb):
    from tests.test_portal import sign_in

    sign_in(client)
    job = api.start(rb, worker_group="nobody")
    for before in ("9" * 20, "-" + "9" * 20, "2147483648"):
        page = client.get(f"/jobs/{job['id']}/records?before={before}")
        assert page.status_code == 200, before

"""The OpenAPI document as client generators read it: valid, every operation named once,
request bodies closed and answers open to fields added later, enums where values are few;
and list filters that take the key repeated (as generated clients send them) or commas."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

from tests.contract import CheckedApi, Contract


@pytest.fixture
def spec(client):
    resp = client.get("/api/openapi.json")
    assert resp.status_code == 200
    return resp.get_json()


@pytest.fixture
def checked(client, spec):
    return CheckedApi(client, Contract(spec))


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method != "parameters":
                yield method, path, op


def _schema(spec, ref_or_schema):
    while "$ref" in ref_or_schema:
        ref_or_schema = spec["components"]["schemas"][ref_or_schema["$ref"].split("/")[-1]]
    return ref_or_schema


def test_the_document_is_valid_openapi(spec):
    assert spec["openapi"].startswith("3.0")
    validate(spec)  # raises on any error


def test_every_operation_has_a_unique_readable_operation_id(spec):
    ids = [(op.get("operationId"), f"{method.upper()} {path}")
           for method, path, op in _operations(spec)]
    assert [where for name, where in ids if not name] == []
    names = [name for name, _ in ids]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert [n for n in names if not re.fullmatch(r"[a-z]+(?:[A-Z][a-z0-9]*)+|[a-z]+", n)] == []
    by_route = {where: name for name, where in ids}
    # what clients generated from the document call them: a rename here breaks those clients
    assert {where: by_route.get(where) for where in PINNED} == PINNED


PINNED = {
    "POST /api/v1/runbooks": "createRunbook",
    "GET /api/v1/runbooks": "listRunbooks",
    "POST /api/v1/runbooks/{runbook}/publish": "publishRunbook",
    "POST /api/v1/runbooks/{runbook}/start": "startRunbook",
    "POST /api/v1/runbooks/{runbook}/draft/test": "testRunbookDraft",
    "GET /api/v1/jobs": "listJobs",
    "GET /api/v1/jobs/{job_id}": "getJob",
    "POST /api/v1/jobs/{job_id}/stop": "stopJob",
    "GET /api/v1/jobs/{job_id}/streams": "listJobStreams",
    "GET /api/v1/jobs/{job_id}/output": "getJobOutput",
    "PUT /api/v1/admin/configuration": "setConfiguration",
    "PATCH /api/v1/admin/configuration": "updateConfiguration",
    "POST /api/v1/webhooks/invoke/{token}": "invokeWebhook",
    "POST /api/v1/runtime/jobs": "startChildJob",
    "GET /health": "getHealth",
    "GET /health/ready": "getReadiness",
    "GET /metrics": "getMetrics",
}


def test_health_and_metrics_are_documented_as_they_answer(spec, checked, client, worker):
    for path in ("/health", "/health/ready"):
        op = spec["paths"][path]["get"]
        assert op["security"] == []  # no token
        checked.contract.check("GET", path, client.get(path))
    metrics = spec["paths"]["/metrics"]["get"]
    assert {} in metrics["security"]
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] in metrics["responses"]["200"]["content"]
    checked.contract.check("GET", "/metrics", resp)


def test_not_ready_is_documented(checked, services):
    """Redis unreachable: 503, the body in the documented shape."""
    from smacommon.embedded_redis import free_port
    from smacommon.settings import load_settings
    from smaweb import create_app

    app = create_app({"TESTING": True, "SMA_SETTINGS": load_settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0")})
    resp = app.test_client().get("/health/ready")
    assert resp.status_code == 503
    assert resp.get_json()["checks"]["redis"]["ok"] is False
    checked.contract.check("GET", "/health/ready", resp)


def _reachable(spec, roots):
    """Every component schema reachable from `roots` (schemas or refs)."""
    found, todo = {}, list(roots)
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            ref = item.get("$ref", "")
            if ref.startswith("#/components/schemas/"):
                name = ref.split("/")[-1]
                if name not in found:
                    found[name] = spec["components"]["schemas"][name]
                    todo.append(found[name])
                continue
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return found


def _bodies(spec, key):
    for _, _, op in _operations(spec):
        if key == "requestBody" and "requestBody" in op:
            yield op["requestBody"]
        if key == "responses":
            yield from op["responses"].values()
    if key == "responses":
        yield from spec["components"].get("responses", {}).values()


def test_request_bodies_are_closed_and_answers_open(spec):
    requests = _reachable(spec, _bodies(spec, "requestBody"))
    responses = _reachable(spec, _bodies(spec, "responses"))
    assert "RunbookCreate" in requests and "Job" in responses and "Error" in responses
    assert set(requests).isdisjoint(responses)
    assert set(spec["components"]["schemas"]) == set(requests) | set(responses)  # none unused
    assert {n for n, s in requests.items() if s.get("additionalProperties") is not False} == set()
    assert {n for n, s in responses.items() if "additionalProperties" in s} == set()


def test_the_parameter_declaration_is_a_schema(spec):
    def items(schema_name, prop):
        return _schema(spec, spec["components"]["schemas"][schema_name]["properties"][prop]
                       ["items"])

    strict = items("RunbookCreate", "parameters")
    assert strict is items("RunbookSettings", "parameters")
    assert strict["additionalProperties"] is False
    assert strict["required"] == ["name"]
    open_ = items("Runbook", "declared_parameters")
    assert open_ is items("Version", "parameters") and open_ is items("VersionSummary",
                                                                      "parameters")
    assert "additionalProperties" not in open_
    assert set(open_["properties"]) == {"name", "type", "mandatory", "default", "secret",
                                        "minimum", "maximum"}
    assert open_["properties"]["type"]["enum"] == strict["properties"]["type"]["enum"] == [
        "string", "int", "float", "bool", "datetime", "list", "object", "any"]


def _query_parameter(spec, path, name):
    return next(p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == name)


def test_enums_of_answers_match_their_filters(spec):
    schemas = spec["components"]["schemas"]
    status = _query_parameter(spec, "/api/v1/jobs", "status")["schema"]["items"]["enum"]
    assert schemas["Job"]["properties"]["status"]["enum"] == status
    assert schemas["JobStatusEvent"]["properties"]["status"]["enum"] == status
    assert schemas["JobAttempt"]["properties"]["status"]["enum"] == [*status, None]
    stream = _query_parameter(spec, "/api/v1/jobs/{job_id}/streams", "stream")
    assert schemas["JobStream"]["properties"]["stream"]["enum"] == stream["schema"]["items"][
        "enum"]
    for schema, field, query in (("Runbook", "runbook_type", ("/api/v1/runbooks", "type")),
                                 ("Worker", "state", ("/api/v1/workers", "state")),
                                 ("AuditEvent", "door", ("/api/v1/audit", "door"))):
        enum = _query_parameter(spec, *query)["schema"]["enum"]
        assert set(enum) <= set(schemas[schema]["properties"][field]["enum"]), schema
    for schema, field, body in (("Schedule", "frequency", "ScheduleCreate"),
                                ("Schedule", "missed", "ScheduleCreate"),
                                ("Token", "role", "TokenCreate")):
        assert (schemas[schema]["properties"][field]["enum"]
                == schemas[body]["properties"][field]["enum"]), field
    assert schemas["Schedule"]["properties"]["week_days"]["items"]["enum"][0] == "Monday"


# every query parameter taking several values, and the test below that sends it both ways
MULTI_VALUE_FILTERS = {("/api/v1/jobs", "status"), ("/api/v1/jobs/{job_id}/streams", "stream")}


def test_every_multi_value_filter_is_an_exploded_array(spec):
    found = set()
    for _, path, op in _operations(spec):
        for param in op.get("parameters", []):
            if param["in"] == "query" and param["schema"].get("type") == "array":
                assert (param["style"], param["explode"]) == ("form", True), param
                found.add((path, param["name"]))
    assert found == MULTI_VALUE_FILTERS


def _ids(page):
    return sorted(item["id"] for item in page["items"])


def test_status_filter_takes_the_key_repeated_or_commas(checked, worker):
    done = checked.run("print('ok')\n")
    failed = checked.run("raise SystemExit(3)\n")
    assert (done["status"], failed["status"]) == ("Completed", "Failed")
    both = sorted([done["id"], failed["id"]])

    def jobs(query):
        resp = checked.get(f"/api/v1/jobs?{query}")
        assert resp.status_code == 200, resp.get_json()
        return _ids(resp.get_json())

    assert jobs("status=Failed&status=Completed") == both
    assert jobs("status=Completed,Failed") == both
    assert jobs("status=Stopped,Completed&status=Failed") == both
    assert jobs("status=Failed") == [failed["id"]]
    assert jobs("status=Failed&status=Stopped") == [failed["id"]]
    assert jobs("status=Completed,") == [done["id"]]
    assert jobs("status=") == both
    resp = checked.get("/api/v1/jobs?status=Completed&status=Done")
    assert resp.status_code == 400
    assert "status" in resp.get_json()["message"] and "status" in resp.get_json()["errors"]


def test_stream_filter_takes_the_key_repeated_or_commas(checked, worker):
    job = checked.run("import sys, smarunbook\nprint('out')\n"
                      "print('err', file=sys.stderr, flush=True)\n"
                      "smarunbook.write_warning('careful')\n")
    assert job["status"] == "Completed"

    def streams(query):
        resp = checked.get(f"/api/v1/jobs/{job['id']}/streams?{query}")
        assert resp.status_code == 200, resp.get_json()
        return sorted(r["text"] for r in resp.get_json()["items"])

    assert streams("stream=Output&stream=Warning") == ["careful", "out"]
    assert streams("stream=Output,Warning") == ["careful", "out"]
    assert streams("stream=Error&stream=Output,Warning") == ["careful", "err", "out"]
    assert streams("stream=Error") == ["err"]
    assert streams("") == ["careful", "err", "out"]
    resp = checked.get(f"/api/v1/jobs/{job['id']}/streams?stream=Output&stream=Nothing")
    assert resp.status_code == 400 and "stream" in resp.get_json()["message"]


def test_parameter_declarations_refuse_unknown_fields_and_answer_typed(checked):
    body = {"name": "declared", "runbook_type": "bash", "content": "echo \"$n\"\n",
            "parameters": [{"name": "n", "type": "int", "mandatory": "true", "default": "2"}]}
    created = checked.post("/api/v1/runbooks", json=body)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["declared_parameters"] == [
        {"name": "n", "type": "int", "mandatory": True, "default": 2}]
    published = checked.post("/api/v1/runbooks/declared/publish")
    assert published.get_json()["parameters"] == created.get_json()["declared_parameters"]
    for bad, says in (({"name": "m", "minimum": 1}, "minimum"),
                      ({"name": "m", "type": "integer"}, "Unknown type 'integer'"),
                      ({"name": "m", "mandatory": "maybe"}, "mandatory"),
                      ({"type": "int"}, "name")):
        resp = checked.patch("/api/v1/runbooks/declared", json={"parameters": [bad]})
        assert resp.status_code == 400, bad
        assert says in resp.get_json()["message"], resp.get_json()

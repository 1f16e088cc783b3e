"""Schemathesis over the whole OpenAPI document: no 500, no response that breaks its schema;
then the hostile shapes no schema describes, sent to every operation that takes them.

Bounded (a few examples per operation, derandomized, no deadline) so it fits in `make test`.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import ADMIN_TOKEN

EXAMPLES = 25
# what the API promises: no 5xx, documented status codes and content types, and bodies that
# match their schemas. (Not "every schema-valid request succeeds": names must be unique,
# scripts must parse, jobs must exist - rules a schema cannot state.)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def _checks(operation) -> list:
    """CHECKS, but a 5xx the operation documents (/health/ready's 503) is an answer."""
    if any(str(code).startswith("5") for code in operation.definition.raw["responses"]):
        return [check for check in CHECKS if check is not not_a_server_error]
    return CHECKS


def test_api_fuzz(app):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    failures = []
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                                   checks=_checks(case.operation))

        try:
            check()
        except BaseException as exc:  # noqa: B036  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}"[:3000])
    assert not failures, "\n\n".join(failures)


# JSON that Python reads but no other reader takes back, or that breaks a parser or a
# database column on the way in or out; numbers beyond every INTEGER column (and beyond
# Python's 4,300-digit int conversion); names that URLs resolve away
HOSTILE_BODIES = {
    "nested 100,000 deep": "[" * 100_000 + "]" * 100_000,
    "a value nested 5,000 deep": '{"value": ' + "[" * 5000 + "]" * 5000 + "}",
    "NaN": '{"name": "n", "value": NaN, "parameters": {"x": NaN}}',
    "Infinity": '{"name": "n", "value": [Infinity, -Infinity]}',
    "1e999": '{"name": "n", "parameters": {"x": 1e999}, "value": -1e999}',
    "5,000 digits": '{"name": "n", "value": ' + "9" * 5000 + "}",
}
HUGE_INTEGERS = ["9" * 20, "9" * 50, "9" * 5000, str(2**31), "-" + "9" * 50]
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _refused(case, response, what: str) -> str | None:
    """Why `response` is not the clean 4xx with a message that `what` deserves, or None."""
    try:
        case.validate_response(response, checks=[not_a_server_error, content_type_conformance])
    except BaseException as exc:  # noqa: B036  # schemathesis' failure groups
        return f"{what}: {exc}"[:1000]
    if not 400 <= response.status_code < 500:
        return f"{what}: answered {response.status_code}"
    if not response.json().get("message"):
        return f"{what}: no message in {response.text[:200]}"
    return None


def _hostile(operation, integers: list[tuple[str, str]], takes_json: bool,
             failures: list[str]):
    """A test of one operation: its one generated case, made hostile in every way it takes."""
    @given(case=operation.as_strategy())
    @settings(max_examples=1, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        found = []
        if takes_json:
            for label, body in HOSTILE_BODIES.items():
                response = case.call(headers={**AUTH, "Content-Type": "application/json"},
                                     data=body.encode())
                found.append(_refused(case, response, f"{operation.label} {label}"))
            if isinstance(case.body, dict) and "name" in case.body:
                for name in (".", ".."):
                    case.body["name"] = name
                    found.append(_refused(case, case.call(headers=AUTH),
                                          f"{operation.label} named {name!r}"))
        for location, name in integers:
            if location == "query" and case.query is None:
                case.query = {}
            if location == "header" and case.headers is None:
                case.headers = {}
            values = {"query": case.query, "path": case.path_parameters,
                      "header": case.headers}[location]
            kept = values.get(name)
            for number in HUGE_INTEGERS:
                values[name] = number
                found.append(_refused(case, case.call(headers=AUTH),
                                      f"{operation.label} {name}={number[:20]}"))
            values.pop(name)
            if kept is not None:
                values[name] = kept
        failures.extend(f for f in found if f)

    return check


def test_api_hostile_shapes(app):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    failures: list[str] = []
    tried = 0
    for operation in [result.ok() for result in schema.get_all_operations()]:
        integers = [(p.location.value, p.name) for p in operation.iter_parameters()
                    if p.definition.get("schema", {}).get("type") == "integer"]
        takes_json = any(body.media_type == "application/json" for body in operation.body)
        if integers or takes_json:
            _hostile(operation, integers, takes_json, failures)()
            tried += 1
    assert tried > 30
    assert not failures, "\n".join(failures)

"""Schemathesis over the whole OpenAPI document: no 500, no response that breaks its schema.

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
                                   checks=CHECKS)

        try:
            check()
        except BaseException as exc:  # noqa: B036  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}"[:3000])
    assert not failures, "\n\n".join(failures)

"""The API's answers checked against the OpenAPI document it serves: the status is documented,
the content type is the documented one, a JSON body is valid against its response schema
and carries no field the schema does not declare (the document lets clients accept more;
sma itself must not send what it does not document)."""

from __future__ import annotations

import copy
import re
from typing import Any
from urllib.parse import urlsplit

from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker

from tests.conftest import ADMIN_TOKEN, Api


def _closed(schemas: dict[str, Any]) -> dict[str, Any]:
    """The component schemas with every object that declares properties closed to others."""
    schemas = copy.deepcopy(schemas)
    for schema in schemas.values():
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    return schemas


class Contract:
    """One document; `check` each answer; `checked` holds the operationIds checked so far."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.closed = {"schemas": _closed(spec["components"]["schemas"])}
        self.checked: set[str] = set()
        # literal segments first, so /jobs/batch is not taken for /jobs/{job_id}
        self._routes = sorted(
            ((re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"), path)
             for path in spec["paths"]), key=lambda route: route[1].count("{"))

    def operation(self, method: str, path: str) -> dict[str, Any]:
        """The documented operation that answers `method` on the concrete `path`."""
        for pattern, template in self._routes:
            if pattern.match(path) and method.lower() in self.spec["paths"][template]:
                return self.spec["paths"][template][method.lower()]
        raise AssertionError(f"{method} {path} is not in the OpenAPI document")

    def _ref(self, item: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in item:
            kind, name = item["$ref"].split("/")[-2:]
            item = self.spec["components"][kind][name]
        return item

    def check(self, method: str, url: str, response: Any) -> None:
        """Fail unless `response` (a Flask test response) is what the document promises."""
        path = urlsplit(url).path
        op = self.operation(method, path)
        self.checked.add(op["operationId"])
        where = f"{method} {path} -> {response.status_code}"
        documented = op["responses"].get(str(response.status_code)) or op["responses"].get(
            "default")
        assert documented, f"{where}: status not documented"
        content = self._ref(documented).get("content")
        if not content:
            assert not response.data, f"{where}: a body where none is documented"
            return
        types = {key.split(";")[0].strip(): key for key in content}
        assert response.mimetype in types, f"{where}: {response.mimetype} not in {list(types)}"
        if response.mimetype != "application/json":
            return
        schema = content[types[response.mimetype]]["schema"]
        validator = OAS30ReadValidator({"allOf": [schema], "components": self.closed},
                                       format_checker=oas30_format_checker)
        problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                    for e in validator.iter_errors(response.get_json())]
        assert not problems, f"{where}: the body breaks its schema: {problems[:5]}"


class CheckedApi(Api):
    """The tests' Api helper, every answer checked against the document."""

    def __init__(self, client, contract: Contract, token: str = ADMIN_TOKEN) -> None:
        super().__init__(client, token)
        self.contract = contract

    def _checked(self, method: str, path: str, response):
        self.contract.check(method, path, response)
        return response

    def get(self, path, **kw):
        return self._checked("GET", path, super().get(path, **kw))

    def post(self, path, json=None, **kw):
        return self._checked("POST", path, super().post(path, json=json, **kw))

    def put(self, path, json=None, **kw):
        return self._checked("PUT", path, super().put(path, json=json, **kw))

    def patch(self, path, json=None, **kw):
        return self._checked("PATCH", path, super().patch(path, json=json, **kw))

    def delete(self, path, **kw):
        return self._checked("DELETE", path, super().delete(path, **kw))

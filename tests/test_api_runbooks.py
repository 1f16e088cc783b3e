"""Runbooks through the REST API: create, draft, publish, versions, and every bad input."""

from __future__ import annotations

import pytest

PY = "def main(name: str, count: int = 2, loud: bool = False):\n    print(name * count)\n"


def test_create_get_list_runbook(api):
    body = api.create_runbook("hello", content=PY, publish=False, description="says hi",
                              tags=["demo", "py"])
    assert body["name"] == "hello"
    assert body["runbook_type"] == "python"
    assert body["has_draft"] is True
    assert body["published_version"] is None
    assert api.get(f"/api/v1/runbooks/{body['id']}").get_json()["name"] == "hello"
    assert api.get("/api/v1/runbooks/hello").get_json()["id"] == body["id"]
    listing = api.get("/api/v1/runbooks").get_json()
    assert [r["name"] for r in listing["items"]] == ["hello"]
    assert listing["next_cursor"] is None


def test_draft_publish_versions(api):
    api.create_runbook("pub", content=PY, publish=False)
    draft = api.get("/api/v1/runbooks/pub/draft").get_json()
    assert draft["content"] == PY
    new = PY.replace("name * count", "name")
    assert api.put("/api/v1/runbooks/pub/draft", json={"content": new}).status_code == 200
    assert api.get("/api/v1/runbooks/pub/draft").get_json()["content"] == new
    v1 = api.post("/api/v1/runbooks/pub/publish")
    assert v1.status_code == 201
    v1 = v1.get_json()
    assert v1["number"] == 1
    assert v1["content"] == new
    assert v1["parameters"] == [
        {"name": "name", "type": "string", "mandatory": True},
        {"name": "count", "type": "int", "mandatory": False, "default": 2},
        {"name": "loud", "type": "bool", "mandatory": False, "default": False},
    ]
    # publishing clears the draft; a second publish needs a new draft
    assert api.get("/api/v1/runbooks/pub/draft").status_code == 404
    assert api.post("/api/v1/runbooks/pub/publish").status_code == 404
    api.put("/api/v1/runbooks/pub/draft", json={"content": "def main():\n    pass\n"})
    assert api.post("/api/v1/runbooks/pub/publish").get_json()["number"] == 2
    versions = api.get("/api/v1/runbooks/pub/versions").get_json()
    assert [v["number"] for v in versions["items"]] == [2, 1]
    assert api.get("/api/v1/runbooks/pub/versions/1").get_json()["content"] == new
    assert api.get("/api/v1/runbooks/pub/versions/9").status_code == 404
    rb = api.get("/api/v1/runbooks/pub").get_json()
    assert rb["published_version"]["number"] == 2
    assert rb["has_draft"] is False


def test_versions_paging(api):
    api.create_runbook("many", content="print(0)\n")
    for i in range(1, 5):
        api.put("/api/v1/runbooks/many/draft", json={"content": f"print({i})\n"})
        api.post("/api/v1/runbooks/many/publish")
    page = api.get("/api/v1/runbooks/many/versions?limit=2").get_json()
    assert [v["number"] for v in page["items"]] == [5, 4]
    page2 = api.get(f"/api/v1/runbooks/many/versions?limit=2&cursor={page['next_cursor']}")
    assert [v["number"] for v in page2.get_json()["items"]] == [3, 2]


def test_discard_draft_keeps_published(api):
    api.create_runbook("keep", content=PY)
    api.put("/api/v1/runbooks/keep/draft", json={"content": "print(1)\n"})
    assert api.delete("/api/v1/runbooks/keep/draft").status_code == 204
    assert api.get("/api/v1/runbooks/keep/draft").status_code == 404
    assert api.get("/api/v1/runbooks/keep").get_json()["published_version"]["number"] == 1
    assert api.delete("/api/v1/runbooks/keep/draft").status_code == 404


def test_discard_only_draft_is_refused(api):
    api.create_runbook("only", content=PY, publish=False)
    resp = api.delete("/api/v1/runbooks/only/draft")
    assert resp.status_code == 409
    assert "Delete the runbook" in resp.get_json()["message"]


def test_patch_and_delete(api):
    api.create_runbook("change", content=PY)
    resp = api.patch("/api/v1/runbooks/change", json={
        "description": "new", "tags": ["x"], "log_verbose": True, "timeout_seconds": 30,
        "worker_group": "linux"})
    assert resp.status_code == 200
    body = resp.get_json()
    assert (body["description"], body["tags"], body["log_verbose"], body["timeout_seconds"],
            body["worker_group"]) == ("new", ["x"], True, 30, "linux")
    assert api.delete("/api/v1/runbooks/change").status_code == 204
    assert api.get("/api/v1/runbooks/change").status_code == 404


def test_list_filters_and_paging(api):
    for i in range(5):
        api.create_runbook(f"list-{i}", content="echo hi\n" if i % 2 else PY,
                           runbook_type="bash" if i % 2 else "python", tags=[f"t{i % 2}"],
                           publish=False)
    page = api.get("/api/v1/runbooks?limit=2").get_json()
    assert [r["name"] for r in page["items"]] == ["list-4", "list-3"]
    names = [r["name"] for r in page["items"]]
    while page["next_cursor"]:
        page = api.get(f"/api/v1/runbooks?limit=2&cursor={page['next_cursor']}").get_json()
        names += [r["name"] for r in page["items"]]
    assert names == [f"list-{i}" for i in range(4, -1, -1)]
    bash = api.get("/api/v1/runbooks?type=bash").get_json()["items"]
    assert sorted(r["name"] for r in bash) == ["list-1", "list-3"]
    tagged = api.get("/api/v1/runbooks?tag=t0").get_json()["items"]
    assert sorted(r["name"] for r in tagged) == ["list-0", "list-2", "list-4"]
    named = api.get("/api/v1/runbooks?name=st-2").get_json()["items"]
    assert [r["name"] for r in named] == ["list-2"]


def test_explicit_parameters_for_bash(api):
    api.create_runbook("bashp", content="echo $who\n", runbook_type="bash", publish=False,
                       parameters=[{"name": "who", "type": "string", "mandatory": True}])
    version = api.post("/api/v1/runbooks/bashp/publish").get_json()
    assert version["parameters"] == [{"name": "who", "type": "string", "mandatory": True}]


@pytest.mark.parametrize("body, field, fragment", [
    ({"name": "bad name!", "runbook_type": "python", "content": "x=1"}, "name", "Invalid runbook name"),
    ({"name": "", "runbook_type": "python", "content": "x=1"}, "name", "Invalid runbook name"),
    ({"name": "a" * 129, "runbook_type": "python", "content": "x=1"}, "name", "Invalid runbook name"),
    ({"name": "ok", "runbook_type": "cobol", "content": "x=1"}, "runbook_type", "Unknown runbook type"),
    ({"name": "ok", "runbook_type": "python", "content": ""}, "content", "cannot be empty"),
    ({"name": "ok", "runbook_type": "python", "content": "   \n"}, "content", "cannot be empty"),
    ({"name": "ok", "runbook_type": "python"}, "content", "content"),
    ({"runbook_type": "python", "content": "x=1"}, "name", "name"),
    ({"name": "ok", "runbook_type": "python", "content": "x=1", "colour": "red"}, "colour", "colour"),
    ({"name": "ok", "runbook_type": "python", "content": "x=1", "worker_group": "a b"}, "worker_group", "worker group"),
    ({"name": "ok", "runbook_type": "python", "content": "x=1", "tags": "notalist"}, "tags", "tags"),
    ({"name": "ok", "runbook_type": "python", "content": "x=1", "timeout_seconds": 0}, "timeout_seconds", "timeout_seconds"),
    ({"name": "ok", "runbook_type": "bash", "content": "echo", "parameters": [{"name": "PATH"}]}, "parameters", "reserved"),
    ({"name": "ok", "runbook_type": "bash", "content": "echo", "parameters": [{"name": "x", "type": "blob"}]}, "parameters", "unknown type"),
])
def test_create_bad_input(api, body, field, fragment):
    resp = api.post("/api/v1/runbooks", json=body)
    assert resp.status_code == 400, resp.get_json()
    err = resp.get_json()
    assert err["code"] == 400 and err["status"] == "Bad Request"
    assert fragment.lower() in err["message"].lower()
    assert field in err["errors"]


def test_duplicate_name_is_409(api):
    api.create_runbook("dup", publish=False)
    resp = api.post("/api/v1/runbooks", json={"name": "dup", "runbook_type": "python",
                                              "content": "x=1"})
    assert resp.status_code == 409
    assert "already exists" in resp.get_json()["message"]


@pytest.mark.parametrize("runbook_type, content, line", [
    ("python", "def main(:\n    pass\n", 1),
    ("python", "x = 1\nif x\n    print(x)\n", 2),
    ("bash", "echo hi\nif true; then\necho no fi\n", 4),
])
def test_publish_syntax_error_names_line(api, runbook_type, content, line):
    api.create_runbook("broken", content=content, runbook_type=runbook_type, publish=False)
    resp = api.post("/api/v1/runbooks/broken/publish")
    assert resp.status_code == 400
    message = resp.get_json()["message"]
    assert "syntax error" in message.lower()
    assert f"line {line}" in message
    assert api.get("/api/v1/runbooks/broken").get_json()["published_version"] is None


@pytest.mark.parametrize("content, cause, line, column", [
    ('print "hello"\n', "(print statement); Python 3 writes print(...)", 1, 1),
    ("import sys\nprint >>sys.stderr, 'x'\n", "(print >>f); Python 3 writes print(..., file=f)",
     2, 1),
    ('exec "x = 1"\n', "(exec statement); Python 3 writes exec(...)", 1, 1),
    ("try:\n    pass\nexcept ValueError, e:\n    pass\n", "(except X, e:)", 3, 8),
    ("x = `1 + 2`\n", "(backtick repr); Python 3 writes repr(...)", 1, 5),
    ("import os\nos.chmod('f', 0777)\n", "(octal literal 0777); Python 3 writes 0o777", 2, 15),
    ("x = ur'abc'\n", "(ur'' string); Python 3 writes r''", 1, 5),
    ("x = 10L\n", "(long literal 10L); Python 3 writes 10", 1, 5),
    ("if 1 <> 2:\n    pass\n", "(<> operator); Python 3 writes !=", 1, 6),
    ("raise ValueError, 'bad'\n", "(raise E, message); Python 3 writes raise E(message)", 1, 17),
])
def test_publish_names_python_2(api, content, cause, line, column):
    api.create_runbook("legacy", content=content, publish=False)
    resp = api.post("/api/v1/runbooks/legacy/publish")
    assert resp.status_code == 400
    message = resp.get_json()["message"]
    assert message.startswith(f"sma runs Python 3 runbooks; this looks like Python 2 {cause}")
    assert message.endswith(f"(line {line}, column {column})")
    assert resp.get_json()["errors"]["content"] == [message]


@pytest.mark.parametrize("content, status", [
    ("x = 1\nif x\n    print(x)\n", 400),  # a Python 3 mistake is not called Python 2
    ("print = lambda *a: None\nprint >> 3\n", 201),  # a print of its own may take >>
])
def test_python_3_is_not_called_python_2(api, content, status):
    api.create_runbook("modern", content=content, publish=False)
    resp = api.post("/api/v1/runbooks/modern/publish")
    assert resp.status_code == status
    assert "Python 2" not in resp.get_json().get("message", "")


@pytest.mark.parametrize("guard", ['if __name__ == "__main__":', "if '__main__' == __name__:"])
def test_main_of_a_script_with_a_main_block_declares_no_parameters(api, guard):
    content = f"def main(cluster, action):\n    pass\n{guard}\n    main('a', 'b')\n"
    api.create_runbook("script", content=content)
    version = api.get("/api/v1/runbooks/script").get_json()["published_version"]
    assert version["parameters"] == []
    # a block that only looks alike (a test of something else) leaves main in charge
    other = content.replace(guard, "if __name__ != '__main__':")
    api.create_runbook("caller", content=other)
    version = api.get("/api/v1/runbooks/caller").get_json()["published_version"]
    assert [p["name"] for p in version["parameters"]] == ["cluster", "action"]


def test_unknown_runbook_is_404(api):
    for path in ("/api/v1/runbooks/nope", "/api/v1/runbooks/nope/draft",
                 "/api/v1/runbooks/nope/versions"):
        resp = api.get(path)
        assert resp.status_code == 404
        assert "nope" in resp.get_json()["message"]
    assert api.post("/api/v1/runbooks/nope/publish").status_code == 404
    assert api.post("/api/v1/runbooks/nope/start", json={}).status_code == 404


def test_malformed_json_is_400(api):
    resp = api.client.post("/api/v1/runbooks", data="{not json",
                           headers={**api.headers, "Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.get_json()["message"]


def test_body_over_limit_is_413(api, settings):
    content = "x = 1\n" * (settings.max_request_bytes // 6 + 10)
    resp = api.post("/api/v1/runbooks", json={"name": "big", "runbook_type": "python",
                                              "content": content})
    assert resp.status_code == 413
    assert resp.get_json()["code"] == 413


def test_content_over_limit_is_400(api, settings):
    content = "x = 1\n" * (settings.max_content_bytes // 6 + 10)
    resp = api.post("/api/v1/runbooks", json={"name": "big", "runbook_type": "python",
                                              "content": content})
    assert resp.status_code == 400
    assert "limit" in resp.get_json()["message"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}])
def test_missing_or_wrong_token_is_401(client, headers):
    resp = client.get("/api/v1/runbooks", headers=headers)
    assert resp.status_code == 401
    body = resp.get_json()
    assert body["code"] == 401 and "token" in body["message"].lower()


def test_health_and_openapi_need_no_token(client):
    assert client.get("/health").get_json() == {"status": "ok"}
    spec = client.get("/api/openapi.json").get_json()
    assert "/api/v1/runbooks/{runbook}/start" in spec["paths"]
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    assert b"/api/docs/assets/swagger-ui-bundle.js" in docs.data
    assert client.get("/api/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_unknown_route_is_json_404(api):
    resp = api.get("/api/v1/nothing-here")
    assert resp.status_code == 404
    assert resp.get_json()["code"] == 404


@pytest.mark.parametrize("request_args", [
    ("POST", "/api/v1/runbooks", {"name": "nul", "runbook_type": "python", "content": "x\x00"}),
    ("POST", "/api/v1/variables", {"name": "v", "value": {"k": ["ok", "bad\x00"]}}),
    ("GET", "/api/v1/jobs?runbook=a%00b", None),
    ("GET", "/api/v1/runbooks/a%00b", None),
])
def test_unstorable_text_is_400(api, request_args):
    method, path, body = request_args
    resp = api.client.open(path, method=method, json=body, headers=api.headers)
    assert resp.status_code == 400, resp.get_json()
    assert "NUL" in resp.get_json()["message"]


def test_lone_surrogate_is_400(api):
    raw = '{"name": "s", "runbook_type": "python", "content": "x = \\ud8ce"}'
    resp = api.client.post("/api/v1/runbooks", data=raw,
                           headers={**api.headers, "Content-Type": "application/json"})
    assert resp.status_code == 400
    assert "invalid Unicode" in resp.get_json()["message"]

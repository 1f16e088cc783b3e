"""Webhooks: created by authors, invoked by anyone with the URL, WEBHOOKDATA in the job."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import requests

from smacommon.services.webhooks import MAX_BODY_BYTES

PY_MAIN = ("def main(WEBHOOKDATA: dict, greeting: str):\n"
           "    print(greeting, WEBHOOKDATA['WebhookName'])\n"
           "    print(WEBHOOKDATA['RequestBody'])\n"
           "    print(WEBHOOKDATA['RequestHeader']['X-Build'])\n")
PY_SCRIPT = ("import json, sys\n"  # Azure style: no main, the data comes as an argument
             "data = json.loads(sys.argv[sys.argv.index('--WEBHOOKDATA') + 1])\n"
             "print(json.loads(data['RequestBody'])['ref'])\n")
BASH = 'echo "$WEBHOOKDATA" | grep -o \'"WebhookName": "[^"]*"\'\n'


def _hook(api, runbook, **fields):
    resp = api.post("/api/v1/webhooks", json={"name": f"wh-{uuid.uuid4().hex[:8]}",
                                               "runbook": runbook, **fields})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def _invoke_url(services, hook) -> str:
    # the URL as created, pointed at the live server the tests' workers call back
    return services["api_url"] + "/api/v1/webhooks/invoke/" + hook["uri"].rsplit("/", 1)[1]


def _output(api, job_id):
    return api.get(f"/api/v1/jobs/{job_id}/output").get_data(as_text=True).splitlines()


def test_webhook_invoke_end_to_end(api, services, worker):
    rb = api.create_runbook(content=PY_MAIN)
    hook = _hook(api, rb["name"], parameters={"greeting": "hello"})
    assert hook["uri"].startswith("http") and "/api/v1/webhooks/invoke/" in hook["uri"]
    token = hook["uri"].rsplit("/", 1)[1]
    # curl -X POST -H 'X-Build: 42' -d '{"ref": "main"}' <uri>  (no bearer token)
    resp = requests.post(_invoke_url(services, hook), data='{"ref": "main"}',
                         headers={"X-Build": "42", "Content-Type": "application/json"},
                         timeout=30)
    assert resp.status_code == 202, resp.text
    (job_id,) = resp.json()["JobIds"]
    job = api.wait(job_id)
    assert job["status"] == "Completed", job
    assert job["started_by"] == f"webhook:{hook['id']}"
    assert _output(api, job_id) == [f"hello {hook['name']}", '{"ref": "main"}', "42"]
    # the token is never shown again, nor stored in the audit
    listed = api.get("/api/v1/webhooks").get_data(as_text=True)
    one = api.get(f"/api/v1/webhooks/{hook['name']}").get_json()
    assert token not in listed and token not in json.dumps(one) and "uri" not in one
    assert one["last_invoked_at"] is not None
    audit = api.get("/api/v1/audit?limit=50").get_json()["items"]
    assert token not in json.dumps(audit)
    mine = [e for e in audit if e["actor"] == f"webhook:{hook['id']}"]
    assert [(e["action"], e["door"], e["target"]) for e in mine] == [
        ("job.start", "webhook", f"/api/v1/jobs/{job_id}")]
    assert mine[0]["client_address"] == "127.0.0.1"


def test_every_runbook_type_receives_webhooks(api, services, worker):
    script = _hook(api, api.create_runbook(content=PY_SCRIPT)["name"])
    bash = _hook(api, api.create_runbook(content=BASH, runbook_type="bash")["name"])
    plain = _hook(api, api.create_runbook(content="def main():\n    print('no data')\n")["name"])
    outputs = {}
    for hook in (script, bash, plain):
        resp = requests.post(_invoke_url(services, hook), json={"ref": "dev"}, timeout=30)
        assert resp.status_code == 202, resp.text
        job = api.wait(resp.json()["JobIds"][0])
        assert job["status"] == "Completed", job
        outputs[hook["name"]] = _output(api, job["id"])
    assert outputs[script["name"]] == ["dev"]
    assert outputs[bash["name"]] == [f'"WebhookName": "{bash["name"]}"']
    assert outputs[plain["name"]] == ["no data"]


def test_unknown_disabled_and_expired_tokens_are_the_same_404(api, client):
    rb = api.create_runbook()
    off = _hook(api, rb["name"], enabled=False)
    old = _hook(api, rb["name"])
    api.patch(f"/api/v1/webhooks/{old['name']}",
              json={"expiry_time": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()})
    gone = _hook(api, rb["name"])
    api.delete(f"/api/v1/webhooks/{gone['name']}")
    answers = []
    for hook in (off, old, gone, {"uri": "x/not-a-token"}):
        resp = client.post("/api/v1/webhooks/invoke/" + hook["uri"].rsplit("/", 1)[1],
                           data="{}")
        answers.append((resp.status_code, resp.get_json()["message"]))
    assert answers == [(404, "Webhook not found.")] * 4
    assert api.get("/api/v1/jobs").get_json()["items"] == []


def test_body_over_the_limit_is_413(api, client):
    hook = _hook(api, api.create_runbook()["name"])
    resp = client.post("/api/v1/webhooks/invoke/" + hook["uri"].rsplit("/", 1)[1],
                       data=b"x" * (MAX_BODY_BYTES + 1))
    assert resp.status_code == 413 and "limit" in resp.get_json()["message"]


def test_webhook_token_guessing_is_slowed_down(client):
    from smaweb.limiter import FAILURES_ALLOWED

    codes = [client.post(f"/api/v1/webhooks/invoke/guess{i}").status_code
             for i in range(FAILURES_ALLOWED + 1)]
    assert codes[:FAILURES_ALLOWED] == [404] * FAILURES_ALLOWED and codes[-1] == 429


def test_webhook_creation_checks(api):
    typed = api.create_runbook(content="def main(WEBHOOKDATA, count: int):\n    pass\n")
    bad = api.post("/api/v1/webhooks", json={"name": "w1", "runbook": typed["name"]})
    assert bad.status_code == 400 and "count" in bad.get_json()["message"]
    reserved = api.post("/api/v1/webhooks", json={
        "name": "w2", "runbook": typed["name"],
        "parameters": {"count": 1, "WebhookData": {}}})
    assert reserved.status_code == 400 and "WEBHOOKDATA" in reserved.get_json()["message"]
    draft = api.create_runbook(publish=False)
    assert api.post("/api/v1/webhooks", json={"name": "w3", "runbook": draft["name"]}) \
        .status_code == 409
    assert api.post("/api/v1/webhooks", json={"name": "w4", "runbook": "nope"}) \
        .status_code == 404
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert api.post("/api/v1/webhooks", json={
        "name": "w5", "runbook": typed["name"], "parameters": {"count": 1},
        "expiry_time": past}).status_code == 400
    ok = _hook(api, typed["name"], parameters={"count": "2"})
    expiry = datetime.fromisoformat(ok["expiry_time"])
    assert timedelta(days=364) < expiry - datetime.now(UTC) <= timedelta(days=365)
    assert ok["parameters"] == {"count": 2}
    assert api.post("/api/v1/webhooks", json={"name": ok["name"], "runbook": typed["name"],
                                              "parameters": {"count": 1}}).status_code == 409


def test_webhook_roles(client, api):
    from smacommon.db import get_engine  # noqa: F401 - the app's database is in use
    rb = api.create_runbook()
    created = client.post("/api/v1/tokens", json={"name": "op", "role": "operator"},
                          headers=api.headers).get_json()
    operator = {"Authorization": f"Bearer {created['token']}"}
    resp = client.post("/api/v1/webhooks", json={"name": "w", "runbook": rb["name"]},
                       headers=operator)
    assert resp.status_code == 403 and "author" in resp.get_json()["message"]
    assert client.get("/api/v1/webhooks", headers=operator).status_code == 200


BIG_BASH = r"""
seen=$(printf '%s' "$WEBHOOKDATA" | "$SMA_PYTHON" -I -c '
import hashlib, json, sys
body = json.load(sys.stdin)["RequestBody"]
print(len(body), hashlib.sha256(body.encode()).hexdigest())')
echo "variable $seen"
[ "$1" = --WEBHOOKDATA ] && [ "$2" = "$WEBHOOKDATA" ] && [ $# = 2 ] && echo "argument too"
bash -c 'echo "child sees ${#WEBHOOKDATA} characters"'
"""
BIG_PY_MAIN = ("import hashlib\n"
               "def main(WEBHOOKDATA: dict):\n"
               "    body = WEBHOOKDATA['RequestBody']\n"
               "    print('variable', len(body), hashlib.sha256(body.encode()).hexdigest())\n")
BIG_PY_SCRIPT = ("import hashlib, json, sys\n"
                 "body = json.loads(sys.argv[sys.argv.index('--WEBHOOKDATA') + 1])"
                 "['RequestBody']\n"
                 "print('variable', len(body), hashlib.sha256(body.encode()).hexdigest())\n")


def test_a_400_kib_webhook_body_reaches_every_runbook_whole(api, services, worker):
    """More than the kernel lets through a process's arguments and environment (128 KiB a
    string): Bash still gets it in $WEBHOOKDATA and its argument, from a file."""
    import hashlib

    body = "".join(f'{{"line": {i}, "text": "tab\\there \u00e9"}}\n' for i in range(11_000))
    body = body[:400 * 1024]
    assert len(body.encode()) > 400 * 1024 - 100
    expected = f"variable {len(body)} {hashlib.sha256(body.encode()).hexdigest()}"
    for content, kind, lines in (
            (BIG_BASH, "bash", [expected, "argument too", "child sees 0 characters"]),
            (BIG_PY_MAIN, "python", [expected]), (BIG_PY_SCRIPT, "python", [expected])):
        hook = _hook(api, api.create_runbook(content=content, runbook_type=kind)["name"])
        resp = requests.post(_invoke_url(services, hook), data=body.encode(), timeout=30)
        assert resp.status_code == 202, resp.text
        job = api.wait(resp.json()["JobIds"][0])
        assert job["status"] == "Completed", (kind, job)
        assert _output(api, job["id"]) == lines, kind

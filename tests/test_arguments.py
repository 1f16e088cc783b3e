"""Positional runbook arguments (Azure's Python runbook inputs): through the API, a webhook,
a schedule, a child runbook and the portal, run by a real worker; and what is refused."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from smacommon.arguments import MAX_ARGUMENTS
from tests.conftest import wait_for
from tests.test_portal import sign_in

# how Azure users write a Python runbook: options and a positional value from sys.argv
GETOPT = ("import getopt, sys\n"
          "opts, rest = getopt.getopt(sys.argv[1:], 's:r:')\n"
          "for name, value in opts:\n"
          "    print(f'{name}={value}')\n"
          "print('rest', rest)\n")
ARGV1 = "import sys\nprint('hello', sys.argv[1], len(sys.argv))\n"
ARGPARSE = ("import argparse\n"
            "parser = argparse.ArgumentParser()\n"
            "parser.add_argument('count', type=int)\n"
            "parser.add_argument('--name', default='nobody')\n"
            "args = parser.parse_args()\n"
            "print(args.count * 2, args.name)\n")
MAIN = "def main(n: int = 1):\n    print(n)\n"


def _output(api, job_id) -> list[str]:
    return api.get(f"/api/v1/jobs/{job_id}/output").get_data(as_text=True).splitlines()


def _start(api, runbook, **body):
    return api.post(f"/api/v1/runbooks/{runbook}/start", json=body)


def test_a_getopt_script_started_through_the_api(api, worker):
    rb = api.create_runbook(content=GETOPT)
    resp = _start(api, rb["name"], arguments=["-s", "sub-1", "-r", "east us", "vm01"])
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["arguments"] == ["-s", "sub-1", "-r", "east us", "vm01"]
    job = api.wait(resp.get_json()["id"])
    assert job["status"] == "Completed", job
    # each item is one argument, spaces and all (Azure splits values at spaces; sma does not)
    assert _output(api, job["id"]) == ["-s=sub-1", "-r=east us", "rest ['vm01']"]
    assert job["arguments"] == ["-s", "sub-1", "-r", "east us", "vm01"]
    listed = api.get(f"/api/v1/jobs?runbook={rb['name']}").get_json()["items"]
    assert listed[0]["arguments"] == job["arguments"]


def test_sys_argv_and_argparse_scripts_and_the_draft_test(api, worker):
    argv1 = api.create_runbook(content=ARGV1)
    # numbers and booleans are passed as their JSON text, as Azure passes typed values
    job = api.wait(_start(api, argv1["name"], arguments=[42, True]).get_json()["id"])
    assert job["arguments"] == ["42", "true"]
    assert _output(api, job["id"]) == ["hello 42 3"]
    plain = api.wait(api.start(argv1["name"], arguments=["world"])["id"])
    assert _output(api, plain["id"]) == ["hello world 2"]
    draft = api.create_runbook(content=ARGV1, publish=False)
    test = api.post(f"/api/v1/runbooks/{draft['name']}/draft/test",
                    json={"arguments": ["draft"]})
    assert test.status_code == 201, test.get_json()
    assert _output(api, api.wait(test.get_json()["id"])["id"]) == ["hello draft 2"]
    # a positional argparse argument, then a named parameter as --name value after it
    rb = api.create_runbook(content=ARGPARSE, parameters=[
        {"name": "count", "type": "int", "mandatory": True}, {"name": "name", "type": "string"}])
    both = api.wait(api.start(rb["name"], {"name": "ada"}, arguments=["21"])["id"])
    assert both["status"] == "Completed", both
    assert _output(api, both["id"]) == ["42 ada"]
    batch = api.post("/api/v1/jobs/batch", json={"jobs": [
        {"runbook": rb["name"], "arguments": ["5"]},
        {"runbook": argv1["name"], "arguments": ["batch"]}]})
    assert batch.status_code == 201, batch.get_json()
    ids = [j["id"] for j in batch.get_json()["items"]]
    assert [_output(api, api.wait(i)["id"]) for i in ids] == [["10 nobody"], ["hello batch 2"]]


def test_bash_takes_arguments_as_positional_parameters(api, worker):
    rb = api.create_runbook(content='printf "[%s]\\n" "$@"\n', runbook_type="bash")
    job = api.wait(api.start(rb["name"], arguments=["a b", "-x", ""])["id"])
    assert job["status"] == "Completed", job
    assert _output(api, job["id"]) == ["[a b]", "[-x]", "[]"]


@pytest.mark.parametrize("arguments, expected", [
    ("-s web01", "arguments is a list of strings"),
    ({"1": "web01"}, "arguments is a list of strings"),
    (["ok", {"nested": 1}], "arguments[1] is an object; each argument is one string"),
    (["ok", ["a"]], "arguments[1] is a list"),
    ([None], "arguments[0] is null"),
    (["x"] * (MAX_ARGUMENTS + 1), f"at most {MAX_ARGUMENTS}"),
    (["x" * 40_000, "y" * 40_000], "the limit is 65536"),
])
def test_malformed_arguments_are_a_400_saying_what_to_send(api, arguments, expected):
    rb = api.create_runbook(content=ARGV1)
    resp = _start(api, rb["name"], arguments=arguments)
    assert resp.status_code == 400, resp.get_json()
    assert expected in resp.get_json()["message"]
    assert resp.get_json()["errors"]["arguments"]
    assert api.get("/api/v1/jobs").get_json()["items"] == []


def test_runbooks_that_take_no_positional_arguments_say_why(api):
    main = api.create_runbook(content=MAIN)
    resp = _start(api, main["name"], arguments=["3"])
    assert resp.status_code == 400
    message = resp.get_json()["message"]
    assert "defines main()" in message and "give the values in parameters" in message
    ps = api.create_runbook(content="param([string]$Name)\nWrite-Output $Name\n",
                            runbook_type="powershell")
    resp = _start(api, ps["name"], arguments=["x"])
    assert resp.status_code == 400 and "PowerShell runbooks take named parameters only" in \
        resp.get_json()["message"]
    # no arguments, or an empty list, starts them as before
    assert _start(api, main["name"], arguments=[]).status_code == 201
    assert _start(api, main["name"], parameters={"n": 2}).status_code == 201


def test_arguments_are_checked_against_declared_parameters(api):
    rb = api.create_runbook(content=ARGPARSE, parameters=[
        {"name": "count", "type": "int", "mandatory": True},
        {"name": "name", "type": "string", "mandatory": True},
        {"name": "token", "type": "string", "secret": True}])

    def refused(**body) -> str:
        resp = _start(api, rb["name"], **body)
        assert resp.status_code == 400, resp.get_json()
        return resp.get_json()["message"]

    assert "declares 3 parameters (count, name, token)" in refused(arguments=["1", "a", "b", "c"])
    assert "arguments[0]: Parameter count must be an integer" in refused(arguments=["many"])
    assert "Missing mandatory parameter name" in refused(arguments=["1"])
    assert "count is given both by position (arguments[0]) and by name" in refused(
        arguments=["1"], parameters={"count": 1})
    assert "token is secret: give it by name" in refused(arguments=["1", "a", "s3cret"])
    assert _start(api, rb["name"], arguments=["1", "a"],
                  parameters={"token": "s3cret"}).status_code == 201
    assert _start(api, rb["name"], arguments=["1"], parameters={"name": "a"}).status_code == 201


def _hook(api, runbook, **fields):
    return api.post("/api/v1/webhooks", json={"name": f"wh-{uuid.uuid4().hex[:8]}",
                                               "runbook": runbook, **fields})


def test_a_webhook_gives_its_fixed_arguments_to_every_job(api, services, worker):
    rb = api.create_runbook(content=GETOPT)
    resp = _hook(api, rb["name"], arguments=["-s", "sub-1", "target"])
    assert resp.status_code == 201, resp.get_json()
    hook = resp.get_json()
    assert hook["arguments"] == ["-s", "sub-1", "target"]
    url = services["api_url"] + "/api/v1/webhooks/invoke/" + hook["uri"].rsplit("/", 1)[1]
    called = requests.post(url, json={"ref": "main"}, timeout=30)
    assert called.status_code == 202, called.text
    job = api.wait(called.json()["JobIds"][0])
    assert job["status"] == "Completed", job
    # WEBHOOKDATA still comes, as --WEBHOOKDATA after the positional arguments
    lines = _output(api, job["id"])
    assert lines[0] == "-s=sub-1"
    assert lines[1].startswith("rest ['target', '--WEBHOOKDATA', ")
    changed = api.patch(f"/api/v1/webhooks/{hook['name']}", json={"arguments": ["-r", "west"]})
    assert changed.status_code == 200 and changed.get_json()["arguments"] == ["-r", "west"]
    bad = api.patch(f"/api/v1/webhooks/{hook['name']}", json={"arguments": [{"a": 1}]})
    assert bad.status_code == 400 and "arguments[0] is an object" in bad.get_json()["message"]
    cleared = api.patch(f"/api/v1/webhooks/{hook['name']}", json={"arguments": []})
    assert cleared.get_json()["arguments"] == []
    main = api.create_runbook(content=MAIN)
    refused = _hook(api, main["name"], arguments=["1"])
    assert refused.status_code == 400 and "defines main()" in refused.get_json()["message"]


def test_a_large_webhook_body_beside_bash_arguments(api, services, worker):
    """WEBHOOKDATA over the size an argument may have reaches a Bash runbook through a file;
    its positional arguments stay $1 $2 in front of --WEBHOOKDATA."""
    rb = api.create_runbook(runbook_type="bash", content=(
        'echo "$1|$2|$3"\n'
        'echo "${#WEBHOOKDATA}" | awk \'{print ($1 > 100000) ? "big" : "small"}\'\n'
        '[ "$4" = "${WEBHOOKDATA}" ] && echo "same"\n'))
    hook = _hook(api, rb["name"], arguments=["one", "two words"]).get_json()
    url = services["api_url"] + "/api/v1/webhooks/invoke/" + hook["uri"].rsplit("/", 1)[1]
    called = requests.post(url, data="x" * 200_000, timeout=30)
    assert called.status_code == 202, called.text
    job = api.wait(called.json()["JobIds"][0])
    assert job["status"] == "Completed", job
    assert _output(api, job["id"]) == ["one|two words|--WEBHOOKDATA", "big", "same"]


def test_a_schedule_gives_its_fixed_arguments_to_the_jobs_it_starts(api, processes, worker):
    processes.beat()
    rb = api.create_runbook(content=GETOPT)
    schedule = api.post("/api/v1/schedules", json={
        "name": f"s-{uuid.uuid4().hex[:8]}", "frequency": "OneTime",
        "start_time": (datetime.now(UTC) + timedelta(seconds=2)).isoformat()}).get_json()
    links = f"/api/v1/schedules/{schedule['name']}/runbooks"
    refused = api.post(links, json={"runbook": rb["name"], "arguments": "-s x"})
    assert refused.status_code == 400 and "list of strings" in refused.get_json()["message"]
    link = api.post(links, json={"runbook": rb["name"], "arguments": ["-r", "north", "db1"]})
    assert link.status_code == 201, link.get_json()
    assert link.get_json()["arguments"] == ["-r", "north", "db1"]
    assert api.get(links).get_json()["items"][0]["arguments"] == ["-r", "north", "db1"]
    jobs = wait_for(lambda: api.get(f"/api/v1/jobs?runbook={rb['name']}").get_json()["items"],
                    what="the schedule's job")
    assert jobs[0]["started_by"] == f"schedule:{schedule['id']}"
    done = api.wait(jobs[0]["id"])
    assert done["status"] == "Completed", done
    assert done["arguments"] == ["-r", "north", "db1"]
    assert _output(api, done["id"]) == ["-r=north", "rest ['db1']"]


def test_a_child_runbook_started_with_arguments(api, worker):
    child = api.create_runbook(content=GETOPT)
    parent = api.run("import json\nfrom smarunbook import start_runbook\n"
                     f"out = start_runbook({child['name']!r}, "
                     "arguments=['-s', 'from parent', 'x'], wait=True)\n"
                     "print(json.dumps(out))\n")
    assert parent["status"] == "Completed", parent
    assert json.loads(_output(api, parent["id"])[0]) == ["-s=from parent", "rest ['x']"]
    bash = api.run(f"start_runbook {child['name']} --wait -- -r 'two words' tail\n",
                   runbook_type="bash")
    assert bash["status"] == "Completed", bash
    assert _output(api, bash["id"]) == ["-r=two words", "rest ['tail']"]
    refused = api.run("from smarunbook import start_runbook\n"
                      f"start_runbook({child['name']!r}, arguments='-s x')\n")
    assert refused["status"] == "Failed"
    assert "arguments is a list of strings" in refused["exception"]


def test_the_portal_start_form_takes_arguments_one_per_line(api, client, worker):
    csrf = sign_in(client)
    script = api.create_runbook(content=GETOPT)
    page = client.get(f"/runbooks/{script['name']}").get_data(as_text=True)
    assert 'name="arguments"' in page
    main = api.create_runbook(content=MAIN)
    assert 'name="arguments"' not in client.get(f"/runbooks/{main['name']}").get_data(
        as_text=True)
    resp = client.post(f"/runbooks/{script['name']}/start", data={
        "csrf_token": csrf, "arguments": "-s\r\nsub one\r\nlast\r\n\r\n"})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    job_id = resp.headers["Location"].rstrip("/").rsplit("/", 1)[1]
    job = api.wait(job_id)
    assert job["arguments"] == ["-s", "sub one", "last"]
    assert _output(api, job_id) == ["-s=sub one", "rest ['last']"]
    assert "sub one" in client.get(f"/jobs/{job_id}").get_data(as_text=True)
    typed = api.create_runbook(content=ARGPARSE, parameters=[{"name": "count", "type": "int"}])
    refused = client.post(f"/runbooks/{typed['name']}/start", data={
        "csrf_token": csrf, "arguments": "many"})
    assert refused.status_code == 400
    assert re.search(r'id="err-arguments"[^>]*>[^<]*must be an integer',
                     refused.get_data(as_text=True))


def test_a_resumed_job_runs_again_with_its_arguments(api, worker):
    rb = api.create_runbook(content="import sys, time\nprint(sys.argv[1:], flush=True)\n"
                                    "time.sleep(30)\n")
    job = api.start(rb["name"], arguments=["-s", "kept"])
    line = "['-s', 'kept']"
    wait_for(lambda: _output(api, job["id"]) == [line], what="the first run's line")
    assert api.post(f"/api/v1/jobs/{job['id']}/suspend").status_code == 202
    api.wait(job["id"], timeout=15, statuses=("Suspended",))
    assert api.post(f"/api/v1/jobs/{job['id']}/resume").status_code == 202
    wait_for(lambda: _output(api, job["id"]).count(line) == 2, what="the second run's line")
    api.post(f"/api/v1/jobs/{job['id']}/stop")
    assert api.wait(job["id"], timeout=15)["status"] == "Stopped"

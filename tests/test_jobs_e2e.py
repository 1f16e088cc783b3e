"""End to end: the API, a real Celery worker process, real child processes."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.conftest import wait_gone

pytestmark = pytest.mark.e2e


def test_publish_start_completed_with_exact_output(api, worker):
    rb = api.create_runbook("hello", content=(
        "def main(name: str, count: int = 2):\n"
        "    for i in range(count):\n"
        "        print(f'hello {name} {i}')\n"))
    job = api.start(rb["name"], {"name": "world", "count": 3})
    assert job["status"] == "New"
    done = api.wait(job["id"])
    assert done["status"] == "Completed", done
    assert done["exit_code"] == 0
    assert done["worker"] == worker.name
    assert done["start_time"] and done["end_time"]
    out = api.get(f"/api/v1/jobs/{job['id']}/output")
    assert out.status_code == 200 and out.mimetype == "text/plain"
    assert out.get_data(as_text=True) == "hello world 0\nhello world 1\nhello world 2\n"
    records = api.records(job["id"])
    assert [(r["seq"], r["stream"], r["text"]) for r in records] == [
        (1, "Output", "hello world 0"), (2, "Output", "hello world 1"),
        (3, "Output", "hello world 2")]


def test_status_moves_new_activating_running_completed(api, worker):
    rb = api.create_runbook(content="import time\nprint('go', flush=True)\ntime.sleep(1.5)\n")
    job = api.start(rb["name"])
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = api.get(f"/api/v1/jobs/{job['id']}").get_json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == "Completed":
            break
        time.sleep(0.01)
    assert seen[-1] == "Completed"
    assert "Running" in seen
    order = ["New", "Activating", "Running", "Completed"]
    assert [s for s in order if s in seen] == seen


def test_all_streams_with_log_settings(api, worker):
    content = (
        "import sys, smarunbook\n"
        "print('out')\n"
        "print('err', file=sys.stderr, flush=True)\n"
        "smarunbook.write_warning('careful')\n"
        "smarunbook.write_verbose('details')\n"
        "smarunbook.write_progress('copy', 'half', 50)\n"
        "smarunbook.write_debug('dbg')\n"
        "smarunbook.output({'answer': 42, 'list': [1, 'two']})\n")
    on = api.run(content, log_verbose=True, log_progress=True, log_debug=True)
    assert on["status"] == "Completed", on
    recs = api.records(on["id"])
    by_stream = {}
    for r in recs:
        by_stream.setdefault(r["stream"], []).append(r)
    assert [r["text"] for r in by_stream["Output"]][0] == "out"
    assert by_stream["Output"][1]["value"] == {"answer": 42, "list": [1, "two"]}
    assert [r["text"] for r in by_stream["Error"]] == ["err"]
    assert [r["text"] for r in by_stream["Warning"]] == ["careful"]
    assert [r["text"] for r in by_stream["Verbose"]] == ["details"]
    assert [r["text"] for r in by_stream["Debug"]] == ["dbg"]
    assert by_stream["Progress"][0]["value"] == {"activity": "copy", "status": "half",
                                                 "percent": 50}
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    only_warn = api.records(on["id"], stream="Warning")
    assert [r["text"] for r in only_warn] == ["careful"]
    # log settings off (the default): no Verbose, Progress or Debug records are kept
    off = api.run(content)
    streams = {r["stream"] for r in api.records(off["id"])}
    assert streams == {"Output", "Error", "Warning"}


def test_failed_job_keeps_exception_and_exit_code(api, worker):
    job = api.run("def main():\n    raise ValueError('disk is full')\n")
    assert job["status"] == "Failed"
    assert job["exit_code"] == 1
    assert "ValueError: disk is full" in job["exception"]
    assert "sma_python_host" not in job["exception"]
    errors = [r["text"] for r in api.records(job["id"], stream="Error")]
    assert errors[0] == "Traceback (most recent call last):"
    assert errors[-1] == "ValueError: disk is full"


def test_non_zero_exit(api, worker):
    job = api.run("import sys\nprint('bye')\nsys.exit(7)\n")
    assert (job["status"], job["exit_code"]) == ("Failed", 7)
    assert "code 7" in job["status_reason"]


def test_typed_parameters_reach_python_main(api, worker):
    content = ("import json\n"
               "def main(n: int, f: float, b: bool, items: list, opts: dict, s: str = 'd'):\n"
               "    print(json.dumps([n, f, b, items, opts, s, type(n).__name__, "
               "type(b).__name__]))\n")
    params = {"n": "5", "f": 2.5, "b": False, "items": [1, "x", None],
              "opts": {"k": {"deep": True}}}
    job = api.run(content, params)
    assert job["status"] == "Completed", job
    out = api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True)
    assert out == '[5, 2.5, false, [1, "x", null], {"k": {"deep": true}}, "d", "int", "bool"]\n'


def test_azure_style_script_gets_argv(api, worker):
    content = "import sys\nprint(' '.join(sys.argv[1:]))\n"
    rb = api.create_runbook(content=content, publish=False,
                            parameters=[{"name": "target", "type": "string"},
                                        {"name": "count", "type": "int"}])
    api.post(f"/api/v1/runbooks/{rb['name']}/publish")
    job = api.wait(api.start(rb["name"], {"target": "web 01", "count": 2})["id"])
    out = api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True)
    assert out == "--target web 01 --count 2\n"


def test_bash_runbook_parameters_and_helpers(api, worker):
    content = ('echo "who=$who n=$n flag=$flag list=$items"\n'
               'echo "args: $*"\n'
               'write_warning "low \\"disk\\" space"\n'
               'write_verbose "v"\n'
               'echo oops >&2\n')
    rb = api.create_runbook(content=content, runbook_type="bash", publish=False,
                            log_verbose=True,
                            parameters=[{"name": "who", "type": "string", "mandatory": True},
                                        {"name": "n", "type": "int", "default": 3},
                                        {"name": "flag", "type": "bool"},
                                        {"name": "items", "type": "list"}])
    api.post(f"/api/v1/runbooks/{rb['name']}/publish")
    job = api.wait(api.start(rb["name"], {"who": "ops", "flag": True, "items": [1, 2]})["id"])
    assert job["status"] == "Completed", job
    recs = [(r["stream"], r["text"]) for r in api.records(job["id"])]
    # each stream keeps its own order; across pipes the interleaving is the reader's
    assert [t for st, t in recs if st == "Output"] == [
        "who=ops n=3 flag=true list=[1, 2]", "args: --who ops --n 3 --flag true --items [1, 2]"]
    assert [t for st, t in recs if st == "Warning"] == ['low "disk" space']
    assert [t for st, t in recs if st == "Verbose"] == ["v"]
    assert [t for st, t in recs if st == "Error"] == ["oops"]


def test_bash_failure(api, worker):
    job = api.run("echo starting\nfalse_command_that_does_not_exist\nexit 4\n",
                  runbook_type="bash")
    assert (job["status"], job["exit_code"]) == ("Failed", 4)
    assert "not found" in job["exception"]


def test_test_job_runs_draft(api, worker):
    api.create_runbook("drafty", content="print('published')\n")
    api.put("/api/v1/runbooks/drafty/draft", json={"content": "print('draft')\n"})
    resp = api.post("/api/v1/runbooks/drafty/draft/test", json={})
    job = api.wait(resp.get_json()["id"])
    assert job["status"] == "Completed" and job["is_test"]
    assert api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True) == "draft\n"


def test_invalid_utf8_is_replaced_not_lost(api, worker):
    content = ("import sys\n"
               "sys.stdout.buffer.write(b'ok \\xff\\xfe bytes\\n')\n"
               "sys.stdout.buffer.write(b'caf\\xc3\\xa9\\n')\n")
    job = api.run(content)
    assert job["status"] == "Completed"
    texts = [r["text"] for r in api.records(job["id"])]
    assert texts == ["ok \ufffd\ufffd bytes", "café"]


def test_last_line_without_newline_and_long_lines(api, worker, settings):
    content = ("import sys\n"
               f"sys.stdout.write('x' * {settings.max_line_bytes * 2 + 10} + '\\n')\n"
               "sys.stdout.write('tail')\n")
    job = api.run(content)
    texts = [r["text"] for r in api.records(job["id"])]
    assert [len(t) for t in texts] == [settings.max_line_bytes, settings.max_line_bytes, 10, 4]
    assert texts[-1] == "tail"


def test_200000_lines_complete_and_in_order(api, worker):
    content = ("import sys\n"
               "w = sys.stdout.write\n"
               "for i in range(200000):\n"
               "    w(f'line {i}\\n')\n")
    job = api.run(content, timeout=120)
    assert job["status"] == "Completed", job
    out = api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True)
    assert out == "".join(f"line {i}\n" for i in range(200000))
    recs = api.get(f"/api/v1/jobs/{job['id']}/streams",
                   query_string={"after_seq": 199990, "limit": 100}).get_json()["items"]
    assert [r["seq"] for r in recs] == list(range(199991, 200001))


def test_output_limit_ends_job_with_clear_record(api, worker):
    # 50 MB against the test limit of 10 MB
    content = ("import sys\nchunk = 'y' * 1023 + '\\n'\n"
               "for _ in range(50 * 1024):\n    sys.stdout.write(chunk)\n")
    job = api.run(content, timeout=120)
    assert job["status"] == "Failed"
    assert "output limit" in job["status_reason"]
    last = api.records(job["id"], stream="Error")[-1]
    assert "output limit" in last["text"]
    follow = api.run("print('next')\n")
    assert follow["status"] == "Completed"


def test_timeout_kills_the_process_group(api, worker, job_tmp):
    marker, nap = job_tmp / "child.started", _unique_nap()
    content = ("import subprocess, time\n"
               f"p = subprocess.Popen(['sleep', '{nap}'])\n"
               f"open({str(marker)!r}, 'w').write('yes')\n"
               "print('waiting', flush=True)\n"
               "time.sleep(1000)\n")
    job = api.run(content, timeout_seconds=2, timeout=60)
    assert job["status"] == "Failed"
    assert "timeout of 2 s" in job["status_reason"]
    assert marker.read_text() == "yes"
    wait_gone(nap)


def test_child_that_outlives_runbook_is_ended(api, worker, job_tmp):
    marker, nap = job_tmp / "orphan.started", _unique_nap()
    content = ("import subprocess\n"
               f"p = subprocess.Popen(['sleep', '{nap}'])\n"
               f"open({str(marker)!r}, 'w').write('yes')\n"
               "print('leaving my child behind')\n")
    job = api.run(content, timeout=30)
    assert job["status"] == "Completed", job
    assert marker.read_text() == "yes"
    wait_gone(nap)
    nap = _unique_nap()
    bash_job = api.run(f"sleep {nap} &\necho $! > {job_tmp}/bg.pid\necho done\n",
                       runbook_type="bash", timeout=30)
    assert bash_job["status"] == "Completed"
    assert (job_tmp / "bg.pid").read_text().strip().isdigit()
    wait_gone(nap)


def _unique_nap() -> str:
    """A sleep length no other process has, to find the process by its command line."""
    return f"1000.{uuid.uuid4().int % 10**9:09d}"


def test_worker_serves_next_job_after_failures(api, worker):
    assert api.run("raise SystemExit(3)\n")["status"] == "Failed"
    killed = api.run("import os\nos.kill(os.getpid(), 9)\n")
    assert killed["status"] == "Failed" and "killed by SIGKILL" in killed["status_reason"]
    assert api.run("print('still here')\n")["status"] == "Completed"


def test_job_environment_is_clean(api, worker):
    job = api.run("import os, json\nprint(json.dumps(sorted(os.environ)))\n")
    names = set(__import__("json").loads(
        api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True)))
    assert {"SMA_JOB_ID", "SMA_API_URL", "SMA_RECORD_FD"} <= names
    assert "SMA_DATABASE_URL" not in names and "SMA_REDIS_URL" not in names
    assert "SMA_ADMIN_TOKEN" not in names


def test_duplicate_delivery_runs_once(api, worker, job_tmp):
    from smacommon.queue import enqueue_job

    marker = job_tmp / "runs"
    rb = api.create_runbook(content=f"open({str(marker)!r}, 'a').write('x')\n")
    job = api.start(rb["name"])
    enqueue_job(job["id"], "default")
    enqueue_job(job["id"], "default")
    assert api.wait(job["id"])["status"] == "Completed"
    time.sleep(1.0)
    assert marker.read_text() == "x"


PS = ("param(\n    [Parameter(Mandatory=$true)][string]$Name,\n    [int]$Count = 2\n)\n"
      "foreach ($i in 1..$Count) { Write-Output \"hello $Name $i\" }\n"
      "Write-Warning 'careful'\n")


def test_powershell_parameters_are_read_and_validated(api, worker):
    api.create_runbook("ps-hello", content=PS, runbook_type="powershell")
    version = api.get("/api/v1/runbooks/ps-hello/versions/1").get_json()
    assert version["parameters"] == [
        {"name": "Name", "type": "string", "mandatory": True},
        {"name": "Count", "type": "int", "mandatory": False, "minimum": -2**31,
         "maximum": 2**31 - 1, "default": 2}]
    resp = api.post("/api/v1/runbooks/ps-hello/start", json={"parameters": {"Count": "x"}})
    assert resp.status_code == 400
    assert "Count" in resp.get_json()["message"] and "Name" in resp.get_json()["message"]


@pytest.mark.skipif(__import__("shutil").which("pwsh") is not None,
                    reason="pwsh is installed: the job runs (see the test below)")
def test_powershell_job_without_pwsh_fails_with_clear_reason(api, worker):
    api.create_runbook("ps-nopwsh", content=PS, runbook_type="powershell")
    job = api.wait(api.start("ps-nopwsh", {"name": "x"})["id"])
    assert job["status"] == "Failed"
    assert "cannot run powershell runbooks" in job["status_reason"]
    assert "pwsh is not installed" in job["status_reason"]
    assert api.run("print('next')\n")["status"] == "Completed"


@pytest.mark.pwsh
def test_powershell_job_runs(api, worker):
    api.create_runbook("ps-run", content=PS, runbook_type="powershell")
    job = api.wait(api.start("ps-run", {"Name": "ps", "Count": 2})["id"], timeout=120)
    assert job["status"] == "Completed", job
    recs = [(r["stream"], r["text"]) for r in api.records(job["id"])]
    assert ("Output", "hello ps 1") in recs and ("Output", "hello ps 2") in recs
    assert ("Warning", "careful") in recs


def test_new_records_are_announced_on_redis(api, worker, services):
    import redis

    client = redis.Redis.from_url(services["redis_url"])
    pubsub = client.pubsub()
    pubsub.psubscribe("sma:job:*:streams")
    pubsub.get_message(timeout=5)  # the subscribe confirmation
    job = api.run("for i in range(5):\n    print(i)\n")
    channel = f"sma:job:{job['id']}:streams".encode()
    seqs = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and 5 not in seqs:
        message = pubsub.get_message(timeout=1)
        if message and message["type"] == "pmessage" and message["channel"] == channel:
            seqs.append(int(message["data"]))
    pubsub.close()
    assert seqs and seqs[-1] == 5

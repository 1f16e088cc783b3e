"""The `sma` command as a user runs it: a subprocess against a real running stack."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from smacommon.embedded_redis import free_port
from smaweb import gunicorn_conf
from tests.conftest import ADMIN_TOKEN, ROOT

SMA = [sys.executable, "-m", "smacli.main"]


@pytest.fixture
def cli(services, tmp_path):
    """Run `sma ...` with its own HOME, logged in through SMA_URL and SMA_TOKEN."""
    home = tmp_path / "home"
    home.mkdir()
    # PYTHONPATH: the `sma` of this checkout, whatever the environment has installed
    base = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8",
            "SMA_URL": services["api_url"], "SMA_TOKEN": ADMIN_TOKEN, "PYTHONPATH": str(ROOT)}

    def run(*args, stdin: str | None = None, env: dict | None = None, timeout: float = 60,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
        full = {**base, **(env or {})}
        for key in [k for k, v in full.items() if v is None]:
            del full[key]
        return subprocess.run([*SMA, *args], input=stdin, capture_output=True, text=True,
                              env=full, timeout=timeout, cwd=cwd or tmp_path)

    run.home = home
    run.tmp = tmp_path
    run.url = services["api_url"]
    return run


def _script(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def test_import_publish_start_follow_prints_live_and_exits_0(cli, worker):
    path = _script(cli.tmp, "count.py", (
        "import time\n"
        "def main(n: int = 3):\n"
        "    for i in range(n):\n"
        "        print(f'line {i}', flush=True)\n"
        "        time.sleep(0.4)\n"))
    imported = cli("runbook", "import", str(path), "--publish")
    assert imported.returncode == 0, imported.stderr
    assert "published version 1" in imported.stderr
    proc = subprocess.Popen([*SMA, "runbook", "start", "count", "-p", "n=4", "--follow"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={"PATH": os.environ["PATH"], "HOME": str(cli.home),
                                 "SMA_URL": cli.url,
                                 "SMA_TOKEN": ADMIN_TOKEN})
    try:
        first = proc.stdout.readline()
        began = time.monotonic()
        assert first == "line 0\n"
        assert proc.poll() is None  # printed live: the job is still going
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rest.splitlines() == ["line 1", "line 2", "line 3"]
    assert time.monotonic() - began > 0.8
    assert proc.returncode == 0 and "Completed" in err


def test_failing_runbook_exits_1_and_json_parses(cli, worker):
    _script(cli.tmp, "bad.py", "raise SystemExit('the disk is full')\n")
    assert cli("runbook", "import", "bad.py", "--publish").returncode == 0
    waited = cli("runbook", "start", "bad", "--wait")
    assert waited.returncode == 1
    assert "Failed" in waited.stderr and "the disk is full" in waited.stderr
    followed = cli("runbook", "start", "bad", "--follow", "-o", "json")
    assert followed.returncode == 1
    lines = [json.loads(line) for line in followed.stdout.splitlines()]
    assert lines[-1]["job"]["status"] == "Failed"
    listed = cli("job", "list", "-o", "json")
    assert listed.returncode == 0
    jobs = json.loads(listed.stdout)
    assert len(jobs) == 2 and {j["status"] for j in jobs} == {"Failed"}
    shown = json.loads(cli("job", "show", jobs[0]["id"], "-o", "json").stdout)
    assert shown["id"] == jobs[0]["id"] and shown["status_history"]
    runbooks = json.loads(cli("runbook", "list", "--output", "json").stdout)
    assert [r["name"] for r in runbooks] == ["bad"]
    out = cli("job", "output", jobs[0]["id"], "-o", "json")
    assert any(r["stream"] == "Error" for r in json.loads(out.stdout))
    assert cli("job", "wait", jobs[0]["id"]).returncode == 1



def test_start_wait_is_answered_by_the_service_and_gives_up_at_its_timeout(cli, worker,
                                                                         job_tmp):
    """`--wait` holds the start request until the job ends (the service's wait), and says
    so when `--timeout` passes first."""
    flag = job_tmp / "go"
    _script(cli.tmp, "held.py", "import os, time\n"
                                f"while not os.path.exists({str(flag)!r}):\n"
                                "    time.sleep(0.01)\n")
    assert cli("runbook", "import", "held.py", "--publish").returncode == 0
    held = cli("runbook", "start", "held", "--wait", "--timeout", "1")
    assert held.returncode != 0
    assert re.search(r"Job \S+ is still \w+ after 1 s\.", held.stderr), held.stderr
    flag.touch()
    done = cli("runbook", "start", "held", "--wait", "-o", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "Completed"

def test_bad_arguments_and_api_errors_are_one_line(cli, services):
    cases = [
        (["runbook", "start"], 2, "required: name"),
        (["runbook", "start", "nope"], 1, "not found"),
        (["job", "show", "not-a-job"], 1, "not found"),
        (["runbook", "import", "missing.py"], 2, "no such file"),
        (["runbook", "import", "notes.txt"], 2, "--type"),
        (["job", "list", "--limit", "0"], 2, "--limit"),
        (["runbook", "start", "x", "-p", "novalue"], 2, "name=value"),
        (["variable", "set", "K", "v", "--encrypted"], 2, "never an argument"),
        (["schedule", "create", "s", "--frequency", "Day", "--time-zone", "Mars/Base"], 1,
         "IANA"),
        (["frobnicate"], 2, "invalid choice"),
    ]
    _script(cli.tmp, "notes.txt", "hello\n")
    for args, code, text in cases:
        proc = cli(*args)
        assert proc.returncode == code, (args, proc.stderr)
        assert text in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_expired_token_and_missing_login(cli, services):
    expired = cli("runbook", "list", env={"SMA_TOKEN": "sma_not_a_real_token"})
    assert expired.returncode == 1
    assert "Invalid, expired or revoked token" in expired.stderr and "sma login" in expired.stderr
    nobody = cli("runbook", "list", env={"SMA_URL": None, "SMA_TOKEN": None})
    assert nobody.returncode == 2 and "sma login" in nobody.stderr
    down = cli("runbook", "list", env={"SMA_URL": f"http://127.0.0.1:{free_port()}"})
    assert down.returncode == 1 and "Cannot reach sma" in down.stderr


def test_login_saves_a_private_config(cli, services):
    bad = cli("login", services["api_url"], stdin="sma_wrong\n", env={"SMA_TOKEN": None,
                                                                      "SMA_URL": None})
    assert bad.returncode == 1 and "Invalid" in bad.stderr
    good = cli("login", services["api_url"], stdin=ADMIN_TOKEN + "\n",
               env={"SMA_TOKEN": None, "SMA_URL": None})
    assert good.returncode == 0, good.stderr
    config = cli.home / ".config" / "sma" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text())["url"] == services["api_url"]
    listed = cli("runbook", "list", env={"SMA_TOKEN": None, "SMA_URL": None})
    assert listed.returncode == 0, listed.stderr
    assert cli("logout", env={"SMA_TOKEN": None, "SMA_URL": None}).returncode == 0
    assert not config.exists()


def test_assets_schedules_webhooks_from_the_command_line(cli, services):
    assert cli("variable", "set", "Region", "eu-west").returncode == 0
    assert cli("variable", "set", "ApiKey", "--encrypted", stdin="s3cret-value\n") \
        .returncode == 0
    assert cli("credential", "set", "Db", "-u", "app", stdin="pw-123456\n").returncode == 0
    assert cli("connection", "create-type", "Svc", "--field", "Url",
               "--field", "Key:encrypted").returncode == 0
    made = cli("connection", "set", "Prod", "--type", "Svc", "--value", "Url=https://x",
               stdin="k3y-value\n")
    assert made.returncode == 0, made.stderr
    shown = cli("variable", "list", "-o", "json").stdout + cli("credential", "list").stdout \
        + cli("connection", "show", "Prod").stdout
    assert "eu-west" in shown and "app" in shown and "https://x" in shown
    assert "s3cret-value" not in shown and "pw-123456" not in shown and "k3y" not in shown
    # set again: the name is taken, so it changes what is there
    again = cli("variable", "set", "Region", "us-east")
    assert again.returncode == 0 and "Changed variable 'Region'." in again.stderr
    again = cli("credential", "set", "Db", "-u", "app2", "-o", "json", stdin="pw-7890123\n")
    assert again.returncode == 0 and json.loads(again.stdout)["username"] == "app2"
    _script(cli.tmp, "hello.sh", "echo hi\n")
    assert cli("runbook", "import", "hello.sh", "--publish").returncode == 0
    created = cli("schedule", "create", "nightly", "--frequency", "Week", "--week-day",
                  "Monday", "--start", "2030-01-01T02:00:00Z", "--time-zone", "Europe/Paris",
                  "-o", "json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["next_run"].startswith("2030-01-07T02:00")
    assert cli("schedule", "link", "nightly", "hello").returncode == 0
    show = json.loads(cli("schedule", "show", "nightly", "-o", "json").stdout)
    assert [r["runbook"] for r in show["runbooks"]] == ["hello"]
    hook = cli("webhook", "create", "push", "hello")
    assert hook.returncode == 0 and "not shown again" in hook.stderr
    uri = hook.stdout.strip()
    assert "/api/v1/webhooks/invoke/" in uri
    assert uri.rsplit("/", 1)[1] not in cli("webhook", "list", "-o", "json").stdout
    workers = cli("worker", "list", "-o", "json")
    assert workers.returncode == 0 and isinstance(json.loads(workers.stdout), list)
    token = cli("token", "create", "--name", "ci", "--role", "reader")
    assert token.returncode == 0 and token.stdout.startswith("sma_")
    reader = cli("runbook", "delete", "hello", "--yes",
                 env={"SMA_TOKEN": token.stdout.strip()})
    assert reader.returncode == 1 and "author" in reader.stderr
    completion = cli("completion", "bash")
    assert completion.returncode == 0 and "complete -o default -F _sma_complete sma" in \
        completion.stdout
    checked = subprocess.run(["bash", "-n"], input=completion.stdout, text=True,
                             capture_output=True, timeout=30)
    assert checked.returncode == 0, checked.stderr


def test_follow_survives_a_restart_of_the_web_server(cli, services, worker):
    """The job's records keep coming after the web service is killed and started again."""
    port = free_port()
    env = {**os.environ, **services["env"]}
    argv = [*gunicorn_conf.command(f"127.0.0.1:{port}"), "--log-level", "warning"]

    def serve() -> subprocess.Popen:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/health", timeout=1)
                return proc
            except requests.RequestException:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)

    def end(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)

    _script(cli.tmp, "slow.py", ("import time\n"
                                 "for i in range(8):\n"
                                 "    print(f'tick {i}', flush=True)\n"
                                 "    time.sleep(0.5)\n"))
    assert cli("runbook", "import", "slow.py", "--publish").returncode == 0
    web = serve()
    follower = None
    try:
        follower = subprocess.Popen(
            [*SMA, "runbook", "start", "slow", "--follow"], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
            env={"PATH": os.environ["PATH"], "HOME": str(cli.home),
                 "SMA_URL": f"http://127.0.0.1:{port}", "SMA_TOKEN": ADMIN_TOKEN})
        assert follower.stdout.readline() == "tick 0\n"
        end(web)  # the web service dies mid-job (the worker goes on)
        time.sleep(1.5)
        web = serve()
        out, err = follower.communicate(timeout=60)
        assert follower.returncode == 0, err
        assert out.splitlines() == [f"tick {i}" for i in range(1, 8)]  # no loss, no repeat
    finally:
        end(web)
        if follower is not None and follower.poll() is None:
            follower.kill()


def test_runbook_arguments_after_double_dash(cli, services, worker):
    """`sma runbook start NAME [options] -- ARG ...`: a getopt script gets them as sys.argv[1:];
    schedule link and webhook create fix them for their jobs."""
    _script(cli.tmp, "opts.py", ("import getopt, sys\n"
                                 "opts, rest = getopt.getopt(sys.argv[1:], 's:r:')\n"
                                 "print(dict(opts), rest)\n"))
    assert cli("runbook", "import", "opts.py", "--publish").returncode == 0
    followed = cli("runbook", "start", "opts", "--follow", "--", "-s", "sub 1", "-r", "east",
                   "--", "vm01")
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == "{'-s': 'sub 1', '-r': 'east'} ['vm01']\n"
    forgot = cli("runbook", "start", "opts", "-s", "x")
    assert forgot.returncode == 2 and "the runbook's own arguments go after --" in forgot.stderr
    started = json.loads(cli("runbook", "start", "opts", "-o", "json", "--", "-s", "x").stdout)
    assert started["arguments"] == ["-s", "x"]
    shown = cli("job", "show", started["id"])
    assert shown.returncode == 0 and '["-s", "x"]' in shown.stdout
    assert cli("schedule", "create", "daily", "--frequency", "Day",
               "--start", "2030-01-01T02:00:00Z").returncode == 0
    assert cli("schedule", "link", "daily", "opts", "--group", "nightly", "--",
               "-r", "west").returncode == 0
    link = json.loads(cli("schedule", "show", "daily", "-o", "json").stdout)["runbooks"][0]
    assert link["arguments"] == ["-r", "west"] and link["worker_group"] == "nightly"
    made = cli("webhook", "create", "push", "opts", "-o", "json", "--", "-s", "hooked")
    assert made.returncode == 0 and json.loads(made.stdout)["arguments"] == ["-s", "hooked"]
    assert cli("webhook", "update", "push", "--").returncode == 0
    assert json.loads(cli("webhook", "show", "push", "-o", "json").stdout)["arguments"] == []
    # a runbook whose main() sma calls takes no positional arguments: one line, exit 1
    _script(cli.tmp, "withmain.py", "def main(n: int = 1):\n    print(n)\n")
    assert cli("runbook", "import", "withmain.py", "--publish").returncode == 0
    refused = cli("runbook", "start", "withmain", "--", "3")
    assert refused.returncode == 1 and "defines main()" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

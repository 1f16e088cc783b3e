"""Python runbooks as Azure Automation runs them: a script runs as a script (its `__main__`
block, the parameters in sys.argv), `main(**parameters)` only for a script with a `main` and
no such block; tracebacks name the runbook, and a long one keeps its head in `exception`."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

# the shape of a field runbook (an AKS start/stop): a main with arguments, and its own
# argparse and login under `if __name__ == "__main__":`
AKS = '''import argparse


def main(cluster, action):
    print(f"{action} {cluster}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--action", choices=["start", "stop"], required=True)
    args = parser.parse_args()
    print("logged in as", __name__)
    main(args.cluster, args.action)
'''


def _output(api, job) -> str:
    return api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True)


def test_a_script_with_a_main_block_runs_the_block_with_parameters_in_argv(api, worker):
    api.create_runbook("aks-stop", content=AKS, publish=False,
                       parameters=[{"name": "cluster", "type": "string", "mandatory": True},
                                   {"name": "action", "type": "string", "default": "stop"}])
    assert api.post("/api/v1/runbooks/aks-stop/publish").status_code == 201
    job = api.wait(api.start("aks-stop", {"cluster": "aks1", "action": "start"})["id"])
    assert job["status"] == "Completed", job
    assert _output(api, job) == "logged in as __main__\nstart aks1\n"


def test_main_arguments_of_a_script_with_a_main_block_are_not_parameters(api, worker):
    """Published as is, the script declares no parameters (main's are not mandatory), and a
    start with none runs its __main__ block: argparse says what is missing."""
    api.create_runbook("aks-bare", content=AKS)
    assert api.get("/api/v1/runbooks/aks-bare").get_json()["published_version"][
        "parameters"] == []
    job = api.wait(api.start("aks-bare")["id"])
    assert (job["status"], job["exit_code"]) == ("Failed", 2)
    assert "the following arguments are required: --cluster, --action" in job["exception"]


def test_a_script_with_main_and_a_main_block_takes_positional_arguments(api, worker):
    """The field case end to end: the AKS runbook, published unmodified, started with the
    values an Azure user passes (in order), runs its __main__ block with them in sys.argv."""
    api.create_runbook("aks-args", content=AKS)
    response = api.post("/api/v1/runbooks/aks-args/start", json={
        "arguments": ["--cluster", "aks1", "--action", "start"]})
    assert response.status_code == 201, response.get_json()
    job = api.wait(response.get_json()["id"])
    assert job["status"] == "Completed", job
    assert job["arguments"] == ["--cluster", "aks1", "--action", "start"]
    assert _output(api, job) == "logged in as __main__\nstart aks1\n"


def test_a_script_with_only_main_is_called_with_the_parameters(api, worker):
    content = ("def main(cluster: str, action: str = 'stop'):\n"
               "    print(action, cluster, __name__ != '__main__')\n")
    api.create_runbook("aks-main", content=content)
    assert [p["name"] for p in api.get("/api/v1/runbooks/aks-main").get_json()[
        "published_version"]["parameters"]] == ["cluster", "action"]
    job = api.wait(api.start("aks-main", {"cluster": "aks1"})["id"])
    assert job["status"] == "Completed", job
    assert _output(api, job) == "stop aks1 True\n"


def test_reversed_main_guard_also_runs_as_a_script(api, worker):
    content = ("import sys\n"
               "def main(x):\n"
               "    raise AssertionError('main must not be called by sma')\n"
               "if '__main__' == __name__:\n"
               "    print(sys.argv[1:])\n")
    job = api.run(content)
    assert job["status"] == "Completed", job
    assert _output(api, job) == "[]\n"


def test_traceback_names_the_runbook_with_its_source_lines(api, worker):
    content = ("def main():\n"
               "    try:\n"
               "        {}['missing']\n"
               "    except KeyError:\n"
               "        raise RuntimeError('wrapped')\n")
    api.create_runbook("Nightly-Cleanup", content=content)
    job = api.wait(api.start("Nightly-Cleanup")["id"])
    assert job["status"] == "Failed"
    exception = job["exception"]
    assert 'File "Nightly-Cleanup.py", line 3, in main' in exception
    assert "{}['missing']" in exception  # the source line, read under the runbook's name
    assert 'File "Nightly-Cleanup.py", line 5, in main' in exception
    assert "raise RuntimeError('wrapped')" in exception
    # the chain as Python prints it: the first exception, then the one raised
    assert exception.index("KeyError: 'missing'") < exception.index("During handling") \
        < exception.index("RuntimeError: wrapped")
    assert "runbook.py" not in exception and "sma_python_host" not in exception


def test_a_long_traceback_keeps_its_head_and_its_end(api, worker):
    """Thirty nested calls: `exception` keeps where the traceback began and how it ended,
    and says how many lines it left out; lines written to stderr before it are not kept."""
    calls = "".join(f"def f{i}():\n    f{i + 1}()\n" for i in range(30))
    content = ("import sys\n"
               "for i in range(50):\n"
               "    print('noise', i, file=sys.stderr)\n"
               + calls +
               "def f30():\n    raise ValueError('deep down')\n"
               "f0()\n")
    api.create_runbook("deep", content=content)
    job = api.wait(api.start("deep")["id"])
    assert job["status"] == "Failed"
    errors = [r["text"] for r in api.records(job["id"], stream="Error")]
    report = errors[errors.index("Traceback (most recent call last):"):]
    assert len(report) > 60
    omitted = len(report) - 10 - 20
    assert job["exception"].splitlines() == (
        report[:10] + [f"… ({omitted} lines omitted) …"] + report[-20:])
    assert report[1].startswith('  File "deep.py", line ')
    assert report[-1] == "ValueError: deep down"
    assert "noise" not in job["exception"]

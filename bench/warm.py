"""Spawn to the runbook's first statement: the warm Python engine against the cold path.

Prints JSON: p50/p95 (ms) of the time from the worker's call that starts a job's process
(`launch.start_process`, cold) or hands the job to a pre-started host (`WarmHost.hand_off`,
warm) to the first statement of the runbook, measured in the runbook with the system-wide
monotonic clock; beside them the floor measured in the same run, a bare venv interpreter
started on the same script (`python -I -u script.py`), no sandbox. Run it as root for the
sandbox a root worker gives jobs (bubblewrap, the job user, a uid of its own); as another
user jobs run unsandboxed and the figures say so.

A warm host is handed its job BENCH_WARM_WAIT seconds (1.0) after it was started, as a
worker's idle moment between two jobs: by then a host left idle has imported sma's helpers
and the common modules (it starts them after 0.25 s without a job). A job that comes
sooner waits for the host's interpreter to start, or for the one module it is importing
(it stops there: BENCH_WARM_WAIT=0.3 shows that tail).

    python bench/warm.py            # BENCH_SPAWNS=200 by default
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smacommon.settings import load_settings  # noqa: E402
from smaworker import warm, zygote  # noqa: E402
from smaworker.cgroups import delegated_root  # noqa: E402
from smaworker.engines import get_engine  # noqa: E402
from smaworker.launch import job_env, start_process, write_workdir  # noqa: E402
from smaworker.resources import JobResources  # noqa: E402
from smaworker.sandbox import current_sandbox  # noqa: E402

N = int(os.environ.get("BENCH_SPAWNS", "200"))
WAIT = float(os.environ.get("BENCH_WARM_WAIT", "1.0"))
SCRIPT = "import time\nprint(time.monotonic_ns())\n"
RUNBOOK = SimpleNamespace(name="bench", log_verbose=False, log_progress=False,
                          log_debug=False, runbook_type="python")


def _first_line(fd: int) -> int:
    data = b""
    while b"\n" not in data:
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError(f"the runbook printed nothing: {data!r}")
        data += chunk
    return int(data.split(b"\n", 1)[0])


def _finish(proc: subprocess.Popen, fd: int) -> None:
    os.close(fd)
    proc.wait(timeout=30)
    if proc.stderr is not None:
        err = proc.stderr.read()
        proc.stderr.close()
        if proc.returncode:
            raise RuntimeError(f"the runbook failed ({proc.returncode}): {err!r}")


def cold_once(settings, sandbox) -> float:
    resources = JobResources(sandbox, settings, None, os.urandom(8).hex())
    workdir = sandbox.make_workdir(os.urandom(8).hex(), uid=resources.uid)
    try:
        env = job_env(sandbox, settings, workdir, "bench", RUNBOOK, "token")
        engine = get_engine("python")
        script = write_workdir(workdir, engine, SCRIPT, None, env)
        began = time.monotonic_ns()
        proc, fd, _ = start_process(engine, RUNBOOK, job_id="bench", workdir=workdir,
                                    script=script, parameters={}, declared=[], env=env,
                                    sandbox=sandbox, resources=resources)
        first = _first_line(fd)
        _finish(proc, fd)
        resources.usage(None)
        return (first - began) / 1e6
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        resources.release()


def warm_once(settings, sandbox) -> float:
    host = warm.WarmHost(sandbox, settings)
    try:
        time.sleep(WAIT)  # the worker's idle moment: the host warms up
        env = job_env(sandbox, settings, host.workdir, "bench", RUNBOOK, "token")
        script = write_workdir(host.workdir, get_engine("python"), SCRIPT, None, env)
        began = time.monotonic_ns()
        proc, fd, _ = host.hand_off(script, {}, [], [], env)
        first = _first_line(fd)
        _finish(proc, fd)
        return (first - began) / 1e6
    finally:
        host.discard()


def _cpu_seconds() -> float:
    """CPU of this process, its reaped children (the hosts' processes) and the zygote (with
    the forks it reaped)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    if zygote._zygote is not None and zygote._zygote.alive():
        fields = Path(f"/proc/{zygote._zygote.proc.pid}/stat").read_text().rsplit(")", 1)[1]
        total += sum(int(v) for v in fields.split()[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def _reap_adopted() -> None:
    """Reap what this process adopted (bubblewrap's inits), so their CPU counts."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.01)
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    return
        except ChildProcessError:
            return


def host_cpu_ms(settings, sandbox, forked: bool, n: int) -> float:
    """CPU per host made and handed one trivial job, all processes counted: forked by the
    zygote, or (forked=False) started by exec as before the zygote (and where it cannot
    fork). Hosts are handed their job at once: no idle imports in either."""
    zygote._broken = None if forked else "measuring the hosts started by exec"
    try:
        if forked:
            zygote._current(sandbox)  # started, its imports done: once per pool process
        _reap_adopted()
        before = _cpu_seconds()
        for _ in range(n):
            host = warm.WarmHost(sandbox, settings)
            env = job_env(sandbox, settings, host.workdir, "bench", RUNBOOK, "token")
            script = write_workdir(host.workdir, get_engine("python"), SCRIPT, None, env)
            proc, fd, _ = host.hand_off(script, {}, [], [], env)
            _first_line(fd)
            _finish(proc, fd)
            host.discard()
        _reap_adopted()
        return round((_cpu_seconds() - before) / n * 1000, 2)
    finally:
        zygote._broken = None


def bare_once(script: str) -> float:
    began = time.monotonic_ns()
    proc = subprocess.Popen([sys.executable, "-I", "-u", script], stdout=subprocess.PIPE)
    first = int(proc.stdout.readline())
    proc.wait()
    proc.stdout.close()
    return (first - began) / 1e6


def _stats(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"p50_ms": round(values[len(values) // 2], 2),
            "p95_ms": round(values[int(len(values) * 0.95)], 2)}


def main() -> None:
    settings = load_settings()
    sandbox = current_sandbox(settings)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(SCRIPT)
    figures = {"bare": [], "cold": [], "warm": []}
    for _ in range(N):  # interleaved, so a busy moment weighs on all three alike
        figures["bare"].append(bare_once(fh.name))
        figures["cold"].append(cold_once(settings, sandbox))
        figures["warm"].append(warm_once(settings, sandbox))
    os.unlink(fh.name)
    result = {name: _stats(values) for name, values in figures.items()}
    result["host_cpu_ms"] = {"forked": host_cpu_ms(settings, sandbox, True, N),
                             "exec": host_cpu_ms(settings, sandbox, False, N)}
    result["warm_over_bare_p50"] = round(result["warm"]["p50_ms"] / result["bare"]["p50_ms"], 3)
    result["cold_over_bare_p50"] = round(result["cold"]["p50_ms"] / result["bare"]["p50_ms"], 3)
    print(json.dumps({
        "benchmark": "warm", "spawns": N, "warm_wait_s": WAIT, "python": sys.executable,
        "sandbox": {"bubblewrap": bool(sandbox.bwrap), "job_user": sandbox.user,
                    "cgroup_per_job": settings.job_cgroups
                    and delegated_root()[0] is not None},
        **result}, indent=2))


if __name__ == "__main__":
    main()

"""Runbooks with their own requirements (PEP 723): what the first job (the environment is
built) and later jobs (it is reused) cost, next to the same runbook without requirements.

A private `sma up`-style stack (2 worker processes) and a private package index (pypiserver,
tests/pkgindex.py) serving 3 small wheels built here, so nothing comes from the network.
Prints JSON: start->Completed of the first job (build) and p50/p95 of later jobs (the
environment reused), for the runbook with requirements and for the plain one, the overhead
of the reused environment (target: under 20 ms), and the time to build the same environment
with uv and with venv + pip.

A runbook with requirements runs on the cold path (its environment's interpreter, not the
worker's warm host: smaworker/warm.py), so the overhead is measured against the plain
runbook on the cold path too (a second stack with SMA_WARM_PYTHON=false); the plain
runbook's warm-path figures are beside it. Each series says which engine path ran it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import make_runbook, ms, percentile, start, start_stack, stop_stack, ts, wait_all

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.pkgindex import PackageIndex  # noqa: E402

N = int(os.environ.get("BENCH_MODULES_JOBS", "40"))
PACKAGES = [("bench-alpha", "1.0"), ("bench-beta", "2.1"), ("bench-gamma", "0.3")]
HEAD = ("# /// script\n"
        f"# dependencies = [{', '.join(repr(f'{n}=={v}') for n, v in PACKAGES)}]\n"
        "# ///\n")
BODY = ("import bench_alpha, bench_beta, bench_gamma\n"
        "print(bench_alpha.VERSION, bench_beta.VERSION, bench_gamma.VERSION)\n")
PLAIN = "print('1.0 2.1 0.3')\n"


def _run(session, url: str, name: str, paths: set) -> float:
    """One job, started when the previous one ended: start->Completed in seconds."""
    job = start(session, url, name)
    (done,) = wait_all(session, url, [job["id"]], 300)
    if done["status"] != "Completed":
        raise SystemExit(f"{name}: job {done['id']} ended {done['status']}: "
                         f"{done.get('exception')}")
    paths.add(done.get("engine_path"))
    return ts(done["end_time"]) - ts(done["created_at"])


def _series(session, url: str, name: str) -> dict:
    paths: set = set()
    first = _run(session, url, name, paths)
    warm = [_run(session, url, name, paths) for _ in range(N)]
    return {"first_ms": ms(first), "warm_ms": {"p50": ms(percentile(warm, 50)),
                                               "p95": ms(percentile(warm, 95))},
            "engine_path": sorted(str(p) for p in paths), "warm": warm}


def _build(tool: str, index: str, folder: Path) -> float:
    """Seconds sma's worker takes to build the environment of the 3 packages with `tool`
    (uv, or venv + pip where uv is missing), from a fresh root (and so a fresh cache)."""
    from smacommon.requirements import environment_key
    from smacommon.settings import load_settings
    from smaworker.environments import Environments
    from smaworker.envroot import python_version

    folder.mkdir(parents=True)
    environments = Environments(folder, sys.executable, load_settings(pip_index_url=index))
    if tool == "pip":
        environments.uv = None
    pinned = [f"{n}=={v}" for n, v in PACKAGES]
    python = python_version(sys.executable)
    requirements = {"pinned": pinned, "python": python, "key": environment_key(pinned, python)}
    began = time.perf_counter()
    environments.ensure(requirements, on_progress=lambda _: None).release()
    return time.perf_counter() - began


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="sma-bench-modules-"))
    os.chmod(folder, 0o755)  # the environments below it are read by the job user
    index = PackageIndex(folder / "packages", folder / "pypiserver.log").start()
    try:
        for name, version in PACKAGES:
            index.add(name, version)
        env = {"SMA_PIP_INDEX_URL": index.simple, "SMA_ENV_DIR": str(folder / "envs")}
        stack, session = start_stack(2, env=env)
        url = stack.api_url
        try:
            make_runbook(session, url, "bench-plain", PLAIN)
            make_runbook(session, url, "bench-requirements", HEAD + BODY)
            plain = _series(session, url, "bench-plain")
            with_requirements = _series(session, url, "bench-requirements")
        finally:
            stop_stack(stack)
        stack, session = start_stack(2, env={**env, "SMA_WARM_PYTHON": "false"})
        try:
            make_runbook(session, stack.api_url, "bench-plain", PLAIN)
            plain_cold = _series(session, stack.api_url, "bench-plain")
        finally:
            stop_stack(stack)
        builds = {tool: [_build(tool, index.simple, folder / f"{tool}-{i}") for i in range(3)]
                  for tool in ("uv", "pip")}
    finally:
        index.stop()
        shutil.rmtree(folder, ignore_errors=True)
    overhead = (percentile(with_requirements["warm"], 50) - percentile(plain_cold["warm"], 50))
    over_warm = (percentile(with_requirements["warm"], 50) - percentile(plain["warm"], 50))
    for series in (plain, plain_cold, with_requirements):
        del series["warm"]
    print(json.dumps({
        "benchmark": "modules",
        "jobs_each": N,
        "requirements": [f"{n}=={v}" for n, v in PACKAGES],
        "plain": plain,
        "plain_cold": plain_cold,
        "with_requirements": with_requirements,
        # p50 of reused-environment jobs minus the plain runbook's on the same (cold) path
        "warm_overhead_ms": ms(overhead),
        "warm_overhead_target_ms": 20,
        "warm_overhead_met": overhead * 1000 < 20,
        # the same against the plain runbook on the warm path (not the same engine path)
        "over_warm_path_ms": ms(over_warm),
        # sma's own build (smaworker.environments) from a fresh root and cache, best of 3
        "build_seconds": {tool: round(min(times), 3) for tool, times in builds.items()},
    }, indent=2))


if __name__ == "__main__":
    main()

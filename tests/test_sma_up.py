"""`sma up`: everything on one machine in one command, stopped cleanly by Ctrl-C."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from smacommon.embedded_redis import free_port

pytestmark = pytest.mark.e2e


class Up:
    def __init__(self, data_dir: Path, extra: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        env = {**{k: v for k, v in os.environ.items()
                  if not k.startswith("SMA_") or k.startswith("SMA_TEST_")}, **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "smacli.main", "up", "--data-dir", str(data_dir),
             "--port", str(self.port), "--workers", "2", *(extra or [])],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} not printed; output:\n{''.join(self.seen)[-4000:]}")

    def interrupt(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def _broker_line(up: Up) -> str:
    return next(line for line in up.seen if line.startswith("Broker: "))


def _processes_using(data_dir: Path) -> list[int]:
    found = []
    needle = f"SMA_DATA_DIR={data_dir}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read()
        except OSError:
            continue
        if needle in env.split(b"\0") or str(data_dir).encode() in cmd:
            found.append(int(entry))
    return found


def _assert_all_gone(data_dir: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while _processes_using(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_using(data_dir) == []


def test_sma_up_runs_jobs_and_stops_cleanly(tmp_path):
    data = tmp_path / "data"
    up = Up(data)
    try:
        token = up.wait_for("Admin token").rsplit(" ", 1)[-1].strip()
        up.wait_for("Press Ctrl-C")
        broker = _broker_line(up)
        assert broker.startswith(f"Broker: unix://{data.resolve()}/redis/redis.sock")
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        r = s.post(f"{up.url}/api/v1/runbooks", json={
            "name": "hello", "runbook_type": "python",
            "content": "def main(name: str):\n    print(f'hello {name}')\n"})
        assert r.status_code == 201, r.text
        assert s.post(f"{up.url}/api/v1/runbooks/hello/publish").status_code == 201
        job = s.post(f"{up.url}/api/v1/runbooks/hello/start",
                     json={"parameters": {"name": "up"}, "wait": 60}).json()
        assert job["status"] == "Completed", job
        assert s.get(f"{up.url}/api/v1/jobs/{job['id']}/output").text == "hello up\n"
        assert up.interrupt() == 0
        _assert_all_gone(data)
    finally:
        up.kill()

    again = Up(data)
    try:
        again.wait_for("Press Ctrl-C")
        assert not any("Admin token" in line for line in again.seen)
        assert _broker_line(again) == broker  # `sma worker` and Flower can be pointed at it
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        assert s.get(f"{again.url}/api/v1/runbooks/hello").status_code == 200
        kept = s.get(f"{again.url}/api/v1/jobs/{job['id']}").json()
        assert kept["status"] == "Completed"
        second = s.post(f"{again.url}/api/v1/runbooks/hello/start",
                        json={"parameters": {"name": "again"}, "wait": 60}).json()
        assert second["status"] == "Completed"
        # `sma up` killed outright: what it started ends with it, nothing is left behind
        again.proc.send_signal(signal.SIGKILL)
        again.proc.wait(timeout=10)
        _assert_all_gone(data)
    finally:
        again.kill()
        for pid in _processes_using(data):
            os.kill(pid, signal.SIGKILL)

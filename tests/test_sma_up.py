"""`sma up`: everything on one machine in one command, stopped cleanly by Ctrl-C."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
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
                 env: dict[str, str] | None = None, port_by_env: bool = False) -> None:
        self.port = free_port()
        env = {**_env(), **(env or {})}
        if port_by_env:  # SMA_PORT and SMA_HOST rather than --port
            env.update(SMA_PORT=str(self.port), SMA_HOST="127.0.0.1")
        where = [] if port_by_env else ["--port", str(self.port)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "smacli.main", "up", "--data-dir", str(data_dir),
             *where, "--workers", "2", *(extra or [])],
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

    def wait_ready(self, timeout: float = 90) -> None:
        """Until /health/ready says ready (a worker has sent its heartbeat), as a load
        balancer waits before it sends traffic."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/health/ready", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"sma up was not ready within {timeout:g} s; output:\n"
                             f"{self.output()[-4000:]}")

    def output(self) -> str:
        """What sma up printed so far (without waiting for more)."""
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return "".join(self.seen)

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


def _env() -> dict[str, str]:
    """This environment without the test session's SMA_* settings."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("SMA_") or k.startswith("SMA_TEST_")}


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


VENV_BIN = Path(sys.prefix, "bin")
IN_A_VENV = sys.prefix != sys.base_prefix and (VENV_BIN / "sma").is_file()


def _path_without_the_venv() -> str:
    return os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if p and Path(p).resolve() != VENV_BIN.resolve())


def test_sma_up_listens_on_sma_port_and_sma_host_and_says_how_to_call_sma(tmp_path):
    """Without --port and --host, SMA_PORT and SMA_HOST say where to listen; started from a
    virtual environment that is not on PATH (after `make run`), it says how to call `sma`,
    and the command it shows works."""
    up = Up(tmp_path / "data", port_by_env=True, env={"PATH": _path_without_the_venv()})
    try:
        token = up.wait_for("Admin token").rsplit(" ", 1)[-1].strip()
        up.wait_for("Press Ctrl-C")
        assert f"sma is up: http://127.0.0.1:{up.port} " in "".join(up.seen)
        assert requests.get(f"{up.url}/health", timeout=10).status_code == 200
        hints = [line for line in up.seen if line.startswith("The sma command")]
        if not IN_A_VENV:
            assert hints == []
            return
        # shown relative to the folder sma up runs in when the venv is inside it
        bin_shown = VENV_BIN.relative_to(Path.cwd()) if VENV_BIN.is_relative_to(Path.cwd()) \
            else VENV_BIN
        assert len(hints) == 1 and f"`. {bin_shown / 'activate'}`" in hints[0]
        shown = hints[0].rsplit("e.g. `", 1)[1].rstrip().rstrip("`").split()
        assert shown == [str(bin_shown / "sma"), "login", up.url]
        login = subprocess.run(shown, input=token + "\n", capture_output=True, text=True,
                               timeout=60, env={**_env(), "XDG_CONFIG_HOME": str(tmp_path),
                                                "PATH": _path_without_the_venv()})
        assert login.returncode == 0, login.stderr
        assert json.loads((tmp_path / "sma" / "config.json").read_text())["url"] == up.url
        assert up.interrupt() == 0
    finally:
        up.kill()


def test_no_cli_hint_when_sma_on_path_is_this_one(monkeypatch):
    from smacli.up_checks import cli_hint

    if not IN_A_VENV:
        assert cli_hint("http://127.0.0.1:8080") is None
        return
    monkeypatch.setenv("PATH", _path_without_the_venv())
    assert "login http://127.0.0.1:8080" in cli_hint("http://127.0.0.1:8080")
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{_path_without_the_venv()}")
    assert cli_hint("http://127.0.0.1:8080") is None


def _up_once(tmp_path: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "smacli.main", "up", "--data-dir", str(tmp_path / "data"), *args],
        env={**_env(), **env}, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("by_env", [False, True], ids=["--port", "SMA_PORT"])
def test_sma_up_on_a_port_in_use_says_so_in_one_line(tmp_path, by_env):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = _up_once(tmp_path, [] if by_env else ["--port", str(port)],
                        {"SMA_PORT": str(port)} if by_env else {})
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"sma: port {port} on 127.0.0.1 is in use by another program; start on another with "
        "--port (or SMA_PORT; `make run PORT=...`)"]
    assert not (tmp_path / "data").exists()  # nothing started


@pytest.mark.parametrize("args, env, message", [
    (["--port", "0"], {}, "sma: --port must be a port number from 1 to 65535, not '0'"),
    (["--port", "http"], {}, "sma: --port must be a port number from 1 to 65535, not 'http'"),
    ([], {"SMA_PORT": "65536"}, "sma: SMA_PORT must be a port number from 1 to 65535, not '65536'"),
    ([], {"SMA_PORT": "eighty"}, "sma: SMA_PORT must be a port number from 1 to 65535, not 'eighty'"),
    ([], {"SMA_HOST": "192.0.2.1"}, "sma: 192.0.2.1 is not an address of this machine; choose another with --host (or SMA_HOST)"),
])
def test_sma_up_refuses_a_bad_port_or_host_in_one_line(tmp_path, args, env, message):
    proc = _up_once(tmp_path, args, env)
    assert (proc.returncode, proc.stderr.splitlines()) == (1, [message])
    assert not (tmp_path / "data").exists()

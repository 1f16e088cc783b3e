"""The broker: a job cannot reach it; SMA_REDIS_URL takes passwords, ACL users, sockets, TLS."""

from __future__ import annotations

import json
import os
import pwd
import re
import stat
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
import requests

from smacommon.embedded_redis import EmbeddedRedis, free_port
from tests.conftest import ROOT, end_group
from tests.test_sandbox import needs_bwrap, needs_job_user
from tests.test_sma_up import Up

# What an attacker's runbook does: every listening TCP and unix socket of the host (the
# network namespace is shared), a PING on each, and whatever it can read that would hold
# the broker's password (the folders of the sockets, every /proc/*/cmdline and environ).
PROBE = r'''
import glob, json, os, socket
from concurrent.futures import ThreadPoolExecutor

def probe(family, address):
    try:
        with socket.socket(family, socket.SOCK_STREAM) as conn:
            conn.settimeout(1.5)
            conn.connect(address)
            conn.sendall(b"PING\r\nINFO server\r\n")
            return conn.recv(4096).decode(errors="replace")
    except OSError as exc:
        return f"error: {type(exc).__name__} {exc.strerror or exc}"

targets = []
for name, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
    for line in open(name).read().splitlines()[1:]:
        fields = line.split()
        if fields[3] != "0A":  # LISTEN
            continue
        ip, port = fields[1].split(":")
        raw = bytes.fromhex(ip)
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # host order
        host = socket.inet_ntop(family, raw)
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        targets.append(("tcp", fields[9], f"{host}:{int(port, 16)}", family,
                        (host, int(port, 16))))
for line in open("/proc/net/unix").read().splitlines()[1:]:
    fields = line.split()
    # listening stream sockets: flags __SO_ACCEPTCON, type SOCK_STREAM
    if len(fields) >= 8 and fields[3] == "00010000" and fields[4] == "0001":
        path = fields[7]
        address = "\0" + path[1:] if path.startswith("@") else path
        targets.append(("unix", fields[6], path, socket.AF_UNIX, address))
with ThreadPoolExecutor(16) as pool:
    answers = list(pool.map(lambda t: probe(t[3], t[4]), targets))
readable = {}
folders = {os.path.dirname(t[2]) for t in targets if t[0] == "unix" and t[2].startswith("/")}
for path in [*(os.path.join(f, n) for f in folders for n in ("password", "redis.conf")),
             *glob.glob("/proc/[0-9]*/cmdline"), *glob.glob("/proc/[0-9]*/environ")]:
    try:
        readable[path] = open(path, "rb").read().decode(errors="replace")
    except OSError:
        pass
print(json.dumps({"listeners": [[t[0], t[1], t[2], a] for t, a in zip(targets, answers)],
                  "readable": readable, "env": dict(os.environ)}))
'''


def _broker_inodes(up: Up) -> set[str]:
    """The socket inodes of the redis-server `sma up` started (its child)."""
    with open(f"/proc/{up.proc.pid}/task/{up.proc.pid}/children") as fh:
        children = [int(p) for p in fh.read().split()]
    found = set()
    for pid in children:
        with open(f"/proc/{pid}/comm") as fh:
            if fh.read().strip() != "redis-server":
                continue
        for fd in os.listdir(f"/proc/{pid}/fd"):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                found.add(link[8:-1])
    assert found, "the broker of `sma up` was not found"
    return found


def _session(up: Up, token: str) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    return s


@needs_job_user
@needs_bwrap
def test_a_job_cannot_reach_the_broker_of_sma_up(tmp_path):
    data = tmp_path / "data"
    up = Up(data)
    worker = None
    try:
        token = up.wait_for("Admin token").rsplit(" ", 1)[-1].strip()
        up.wait_for("Press Ctrl-C")
        broker = _broker_inodes(up)
        s = _session(up, token)
        assert s.post(f"{up.url}/api/v1/runbooks", json={
            "name": "probe", "runbook_type": "python", "content": PROBE}).status_code == 201
        assert s.post(f"{up.url}/api/v1/runbooks/probe/publish").status_code == 201
        job = s.post(f"{up.url}/api/v1/runbooks/probe/start", json={"wait": 90}).json()
        assert job["status"] == "Completed", job
        out = s.get(f"{up.url}/api/v1/jobs/{job['id']}/output").text
        report = json.loads(out)
        seen = [entry for entry in report["listeners"] if entry[1] in broker]
        assert seen, "the job did not even see the broker's socket"
        for kind, _inode, _address, answer in seen:
            # a unix socket in a folder only root may enter: not even a connection (here the
            # data folder is under /tmp, which inside the job is its own: not even found)
            assert kind == "unix" and answer.startswith(
                ("error: PermissionError", "error: FileNotFoundError")), seen
        for kind, inode, address, answer in report["listeners"]:
            if answer.startswith(("+PONG", "-NOAUTH", "$")):
                print(f"a Redis answered the job at {kind} {address}: {answer[:40]!r}")
                assert inode not in broker
                assert str(data) not in answer  # not sma's (INFO names its config file)
        # nothing the job can read holds the password, nor its environment a broker
        password = (data / "redis" / "password").read_text().strip()
        assert password not in out
        assert not [k for k in report["env"] if re.search("REDIS|BROKER|CELERY", k)]
        assert not [p for p in report["readable"] if p.startswith(str(data))]

        broker_line = next(line for line in up.seen if line.startswith("Broker: "))
        assert broker_line.split()[1] == f"unix://{data.resolve()}/redis/redis.sock"
        assert password not in "".join(up.seen)

        # `sma worker` on the same host finds the broker in the data folder by itself
        group = f"g{uuid.uuid4().hex[:6]}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMA_")}
        env.update(SMA_DATA_DIR=str(data), SMA_WORKER_NAME=group)
        worker = subprocess.Popen(
            [sys.executable, "-m", "smacli.main", "worker", "--group", group, "--concurrency", "1"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True)
        s.post(f"{up.url}/api/v1/runbooks", json={
            "name": "there", "runbook_type": "python", "content": "print('there')\n",
            "worker_group": group})
        s.post(f"{up.url}/api/v1/runbooks/there/publish")
        job = s.post(f"{up.url}/api/v1/runbooks/there/start", json={"wait": 60}).json()
        assert job["status"] == "Completed" and job["worker"] == group, job
    finally:
        if worker is not None:
            end_group(worker)
        up.kill()


# --- SMA_REDIS_URL: ACL users, passwords, TLS, through Celery and redis-py -----------------

def _redis_server(folder: Path, lines: list[str]) -> subprocess.Popen:
    """A redis-server of this test with `lines` of configuration (no secret on its argv),
    also on folder/probe.sock to see when it is up."""
    import redis

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "redis.conf"
    config.write_text("\n".join(["daemonize no", 'save ""', f'dir "{folder}"',
                                 f'unixsocket "{folder / "probe.sock"}"',
                                 f'logfile "{folder / "redis.log"}"', *lines, ""]))
    proc = subprocess.Popen(["redis-server", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            redis.Redis(unix_socket_path=str(folder / "probe.sock")).ping()
            return proc
        except redis.AuthenticationError:
            return proc  # up, and wants a password
        except (redis.ConnectionError, redis.TimeoutError):
            time.sleep(0.05)
    end_group(proc)
    raise AssertionError(f"redis-server did not start: {(folder / 'redis.log').read_text()}")


def _job_through(url: str, api, processes, monkeypatch) -> dict:
    """A job run by a worker whose broker is `url`, sent there by the web's producer."""
    from tests.conftest import _reset_settings

    monkeypatch.setenv("SMA_REDIS_URL", url)
    _reset_settings()
    try:
        group = f"g-{uuid.uuid4().hex[:6]}"
        processes.worker(group, concurrency=1, env={"SMA_REDIS_URL": url})
        return api.run("print('through the broker')\n", worker_group=group)
    finally:
        monkeypatch.undo()
        _reset_settings()


def _health(url: str) -> dict:
    """The Redis check of /health/ready of a web service whose SMA_REDIS_URL is `url`."""
    from smacommon.settings import load_settings
    from smaweb import create_app

    app = create_app({"TESTING": True, "SMA_SETTINGS": load_settings(redis_url=url)})
    return app.test_client().get("/health/ready").get_json()["checks"]["redis"]


def test_an_acl_user_with_a_password_of_any_characters(api, processes, tmp_path, monkeypatch):
    password = "p@ss:w/rd %&?#"
    port = free_port()
    server = _redis_server(tmp_path / "redis", [
        f"port {port}", "bind 127.0.0.1", "user default off",
        f'user sma on ">{password}" ~* &* +@all'])
    try:
        quoted = urllib.parse.quote(password, safe="")
        url = f"redis://sma:{quoted}@127.0.0.1:{port}/0"
        job = _job_through(url, api, processes, monkeypatch)
        assert job["status"] == "Completed", job
        assert _health(url)["ok"] is True
        # user and password in the query, on the unix socket: Celery's socket transport
        socket_url = (f"unix://{tmp_path / 'redis' / 'probe.sock'}?db=2&username=sma"
                      f"&password={quoted}")
        job = _job_through(socket_url, api, processes, monkeypatch)
        assert job["status"] == "Completed", job
        assert _health(socket_url)["ok"] is True
        wrong = _health(f"redis://sma:wrong@127.0.0.1:{port}/0")
        assert wrong["ok"] is False and "invalid username-password" in wrong["error"]
    finally:
        end_group(server)


def test_rediss_verifies_the_server_certificate(api, processes, tmp_path, monkeypatch):
    from celery import Celery

    from smacommon.queue import celery_config
    from smacommon.settings import load_settings
    from tests.test_tls import _self_signed

    cert, key = _self_signed(tmp_path)  # for localhost and 127.0.0.1, its own CA
    port = free_port()
    try:
        server = _redis_server(tmp_path / "redis", [
            "port 0", f"tls-port {port}", "bind 127.0.0.1", f'tls-cert-file "{cert}"',
            f'tls-key-file "{key}"', f'tls-ca-cert-file "{cert}"', "tls-auth-clients no",
            "requirepass tls-secret"])
    except AssertionError as exc:
        if "TLS" in str(exc) or "tls" in str(exc):
            pytest.skip(f"redis-server here has no TLS: {exc}")
        raise
    try:
        url = f"rediss://:tls-secret@127.0.0.1:{port}/0?ssl_ca_certs={cert}"
        job = _job_through(url, api, processes, monkeypatch)
        assert job["status"] == "Completed", job
        assert _health(url)["ok"] is True
        # without the CA, neither Celery nor redis-py trusts the server (kombu alone would)
        untrusted = f"rediss://:tls-secret@127.0.0.1:{port}/0"
        assert "certificate verify failed" in _health(untrusted)["error"]
        app = Celery("probe", set_as_current=False)
        app.conf.update(celery_config(load_settings(redis_url=untrusted)))
        with pytest.raises(Exception, match="certificate verify failed"), \
                app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
        # and ssl_cert_reqs=none, when asked for in so many words, is taken
        app.conf.broker_url = f"{untrusted}?ssl_cert_reqs=none"
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
    finally:
        end_group(server)


# --- the embedded Redis of `sma up` --------------------------------------------------------

def test_embedded_redis_wants_its_password_and_keeps_its_address(tmp_path):
    import redis

    from smacommon.errors import ConfigurationError

    server = EmbeddedRedis(tmp_path / "data" / "redis", persist=False)
    server.start()
    try:
        folder = server.folder
        url, address = server.url, server.address
        assert address == f"unix://{folder / 'redis.sock'}" and server.password not in address
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        for name in ("password", "redis.conf"):
            assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
        with open(f"/proc/{_pid_of(server)}/cmdline", "rb") as fh:
            assert server.password.encode() not in fh.read()  # every user may read that
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(unix_socket_path=str(folder / "redis.sock")).ping()
        assert redis.Redis.from_url(url).ping()
        # a second one on the same folder would take the socket of the first
        with pytest.raises(ConfigurationError, match="another `sma up` uses this data"):
            EmbeddedRedis(folder, persist=False).start()
        assert redis.Redis.from_url(url).ping()
        server.stop()
        server.start()  # `sma up` again: the same address and password
        assert (server.url, server.address) == (url, address)
        assert redis.Redis.from_url(url).ping()
    finally:
        server.stop()


def _pid_of(server: EmbeddedRedis) -> int:
    """redis-server's pid (setpriv, which may start it, execs it: the same process)."""
    return server.proc.pid


def test_a_data_folder_too_long_for_a_socket_is_refused_in_one_line(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMA_")}
    proc = subprocess.run([sys.executable, "-m", "smacli.main", "up", "--data-dir", str(deep),
                           "--port", str(free_port())], env=env, capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("sma: The data folder's path is too long for Redis's socket")
    assert "Traceback" not in proc.stderr and not (deep / "redis" / "redis.sock").exists()


@needs_job_user
def test_sma_worker_that_cannot_read_the_password_says_so(job_tmp):
    from tests.test_sandbox import JOB_USER

    data = job_tmp / "data"
    (data / "redis").mkdir(parents=True, mode=0o755)
    (data / "redis" / "password").write_text("secret\n")
    (data / "redis" / "password").chmod(0o600)
    entry = pwd.getpwnam(JOB_USER)
    env = {"PATH": os.environ["PATH"], "SMA_DATA_DIR": str(data), "HOME": str(job_tmp),
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}",
                           "--clear-groups", sys.executable, "-m", "smacli.main", "worker"],
                          env=env, capture_output=True, text=True, timeout=60, cwd=job_tmp)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("sma: Cannot read the password of the embedded Redis")
    assert "set SMA_REDIS_URL" in proc.stderr and "secret" not in proc.stderr

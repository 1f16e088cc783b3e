"""Several hosts: a worker in its own network namespace (a host of its own as far as the
network goes) reaches the database, Redis and the web service over a virtual link only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import ROOT, end_group
from tests.relay import Relay


def _can_make_namespaces() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    name = f"smaprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode == 0
    if made:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return made


pytestmark = pytest.mark.skipif(not _can_make_namespaces(),
                                reason="network namespaces need root and iproute2 here")


@pytest.fixture
def netns():
    """A namespace joined to this host by a veth pair: host 10.x.y.1, namespace 10.x.y.2."""
    tag = uuid.uuid4().hex[:6]
    name, host_if, ns_if = f"sma{tag}", f"smh{tag}", f"smn{tag}"
    octet = int(tag[:2], 16) % 250 + 1
    host_ip, ns_ip = f"10.214.{octet}.1", f"10.214.{octet}.2"

    def ip(*args):
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)

    ip("netns", "add", name)
    try:
        ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        ip("link", "set", ns_if, "netns", name)
        ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("netns", "exec", name, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        ip("netns", "exec", name, "ip", "link", "set", ns_if, "up")
        ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield {"name": name, "host_ip": host_ip, "ns_ip": ns_ip}
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=10)


def _through(url: str, proxy: Relay, host_ip: str) -> str:
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")  # a user, a password or both
    return urlunsplit(parts._replace(netloc=f"{userinfo}{at}{host_ip}:{proxy.port}"))


def test_a_worker_on_another_host_runs_jobs(netns, services, api):
    host = netns["host_ip"]
    proxies = []
    try:
        redis = urlsplit(services["redis_url"])
        redis_proxy = Relay(host, redis.hostname, redis.port)
        api_url = urlsplit(services["api_url"])
        api_proxy = Relay(host, api_url.hostname, api_url.port)
        proxies += [redis_proxy, api_proxy]
        env = {**os.environ, **services["env"],
               "SMA_REDIS_URL": _through(services["redis_url"], redis_proxy, host),
               "SMA_API_URL": _through(services["api_url"], api_proxy, host)}
        db_url = services["database_url"]
        if not db_url.startswith("sqlite"):
            database = urlsplit(db_url)
            db_proxy = Relay(host, database.hostname, database.port or 5432)
            proxies.append(db_proxy)
            env["SMA_DATABASE_URL"] = _through(db_url, db_proxy, host)
        group = f"remote-{uuid.uuid4().hex[:6]}"
        name = f"far-away-{uuid.uuid4().hex[:6]}"
        env.update(SMA_WORKER_GROUP=group, SMA_WORKER_NAME=name)
        log = open(services["tmp"] / f"{name}.log", "wb")  # noqa: SIM115 - closed below
        worker = subprocess.Popen(
            ["ip", "netns", "exec", netns["name"], sys.executable, "-m", "celery",
             "-A", "smaworker", "worker", "-c", "2", "--without-gossip",
             "--without-mingle", "-l", "INFO", "-n", f"{name}@%h"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while not any(w["name"] == name for w in api.get("/api/v1/workers")
                          .get_json()["items"]):
                assert worker.poll() is None, (services["tmp"] / f"{name}.log").read_text()
                assert time.monotonic() < deadline, "the remote worker did not register"
                time.sleep(0.2)
            api.post("/api/v1/variables", json={"name": "Greeting", "value": "hello"})
            job = api.run("import os, socket, automationassets\n"
                          "print(automationassets.get_automation_variable('Greeting'),\n"
                          "      os.environ['SMA_API_URL'])\n",
                          worker_group=group, timeout=60)
            assert job["status"] == "Completed", job
            assert job["worker"] == name
            out = api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True)
            assert out.split() == ["hello", env["SMA_API_URL"]]
            assert host in env["SMA_API_URL"]  # the job called back over the virtual link
        finally:
            end_group(worker, timeout=20)
            log.close()
    finally:
        for proxy in proxies:
            proxy.stop()

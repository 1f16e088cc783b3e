"""The web server as `sma up` and the compose image run it (smaweb.gunicorn_conf.command), under
attack by slow and greedy clients (smaweb/ggevent.py), and its security headers over TLS."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import time

import pytest
import requests

from smacommon.embedded_redis import free_port
from smaweb import gunicorn_conf
from tests.conftest import ADMIN_TOKEN, ROOT, end_group
from tests.test_tls import _self_signed

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PARTIAL = b"GET /api/v1/runbooks HTTP/1.1\r\nHost: sma\r\nAuthorization: Bear"


class WebServer:
    """gunicorn with the command line `sma up` builds, on a free port."""

    def __init__(self, services, folder, tls=None, **settings: str) -> None:
        self.port = free_port()
        self.scheme = "https" if tls else "http"
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        env = {**os.environ, **services["env"], "SMA_DATA_DIR": str(folder / "data"),
               "SMA_LOG_FORMAT": "text", **settings}
        self.log = folder / "web.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                gunicorn_conf.command(f"127.0.0.1:{self.port}", tls=tls, graceful_timeout=1),
                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["Connection"] = "close"  # no kept-alive connection counts later
        self.session.verify = str(tls[0]) if tls else True
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            try:  # the socket is bound before the worker has loaded the app
                if self.get("/health", timeout=30).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                assert time.monotonic() < deadline, self.log.read_text()
                time.sleep(0.1)

    def get(self, path: str, **kw) -> requests.Response:
        return self.session.get(self.url + path, timeout=kw.pop("timeout", 5), **kw)

    def stop(self) -> None:
        end_group(self.proc)


@pytest.fixture
def web(services, tmp_path):
    servers = []

    def start(**kw) -> WebServer:
        servers.append(WebServer(services, tmp_path, **kw))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def _open(port: int, send: bytes, source: str = "127.0.0.1") -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    if send:
        conn.sendall(send)
    return conn


def _closed_by_server(conn: socket.socket) -> bool:
    """The server ended the connection (EOF or reset), within the socket's timeout."""
    try:
        while True:
            data = conn.recv(4096)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _answers_quickly(server: WebServer) -> None:
    began = time.monotonic()
    assert server.get("/health", timeout=5).json() == {"status": "ok"}
    assert server.get("/api/v1/runbooks", headers=AUTH, timeout=5).status_code == 200
    assert time.monotonic() - began < 3  # the stock worker: 15 s and more


def test_slow_request_heads_do_not_starve_the_server(web):
    server = web(SMA_HEADER_TIMEOUT_SECONDS="3")
    # 40 clients, each sending half a request and then nothing
    began = time.monotonic()
    slow = [_open(server.port, PARTIAL) for _ in range(40)]
    silent = [_open(server.port, b"") for _ in range(10)]  # and some that send nothing
    time.sleep(0.5)
    _answers_quickly(server)
    for conn in slow + silent:  # each is ended at its deadline, not before
        assert _closed_by_server(conn)
        conn.close()
    took = time.monotonic() - began
    assert 2.5 < took < 3 + 3, took
    _answers_quickly(server)


def test_slow_tls_clients_do_not_starve_the_server(web, tmp_path):
    cert, key = _self_signed(tmp_path)
    server = web(tls=(str(cert), str(key)), SMA_HEADER_TIMEOUT_SECONDS="3")
    hello = _open(server.port, b"")  # the start of a TLS handshake, then nothing
    half = [_open(server.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            for _ in range(20)]
    # whole TLS handshakes, then half a request
    context = ssl.create_default_context(cafile=str(cert))
    slow = [context.wrap_socket(_open(server.port, b""), server_hostname="localhost")
            for _ in range(20)]
    for conn in slow:
        conn.sendall(PARTIAL)
    time.sleep(0.5)
    _answers_quickly(server)
    for conn in [hello, *half, *slow]:
        assert _closed_by_server(conn)
        conn.close()


def test_clients_that_never_close_do_not_stall_the_server(web):
    server = web()
    # whole requests answered with "Connection: close", whose clients never read or close:
    # the server waits for them to close first, but not on its event loop
    stuck = [_open(server.port, b"GET /health HTTP/1.1\r\nHost: sma\r\nConnection: close\r\n\r\n")
             for _ in range(10)]
    time.sleep(0.5)
    _answers_quickly(server)
    for conn in stuck:
        conn.settimeout(5)
        assert conn.recv(4096).startswith(b"HTTP/1.1 200")
        conn.close()


def _raw_health(port: int, source: str) -> bytes:
    """/health over a connection from `source`: the answer's first bytes, b"" if reset."""
    conn = _open(port, b"GET /health HTTP/1.1\r\nHost: sma\r\nConnection: close\r\n\r\n",
                 source=source)
    try:
        return conn.recv(4096)
    except ConnectionResetError:
        return b""
    finally:
        conn.close()


def test_one_address_holds_only_so_many_connections(web):
    server = web(SMA_MAX_CONNECTIONS_PER_ADDRESS="10", SMA_HEADER_TIMEOUT_SECONDS="30")
    greedy = "127.0.0.5"  # an address nothing else in this test uses
    held = [_open(server.port, PARTIAL, source=greedy) for _ in range(10)]
    answer = _raw_health(server.port, greedy)  # the 11th: 503 and closed (or reset)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 503"), answer
    if answer:
        assert b"Too many connections from your address" in answer
    # other addresses are served all the while
    _answers_quickly(server)
    assert _raw_health(server.port, "127.0.0.2").startswith(b"HTTP/1.1 200")
    for conn in held[:3]:  # closed connections give their slots back
        conn.close()
    deadline = time.monotonic() + 5
    while not _raw_health(server.port, greedy).startswith(b"HTTP/1.1 200"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    for conn in held[3:]:
        conn.close()
    assert f"Refusing connections from {greedy}" in server.log.read_text()


def test_no_limit_per_address_when_set_to_zero(web):
    server = web(SMA_MAX_CONNECTIONS_PER_ADDRESS="0")
    held = [_open(server.port, PARTIAL) for _ in range(30)]
    time.sleep(0.3)
    _answers_quickly(server)
    for conn in held:
        conn.close()


def test_hsts_over_tls_only(web, tmp_path):
    cert, key = _self_signed(tmp_path)
    secure = web(tls=(str(cert), str(key))).get("/api/v1/runbooks", headers=AUTH)
    assert secure.status_code == 200
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "frame-ancestors 'none'" in secure.headers["Content-Security-Policy"]
    plain = web().get("/api/v1/runbooks", headers=AUTH)
    assert plain.status_code == 200 and "Strict-Transport-Security" not in plain.headers
    assert plain.headers["X-Content-Type-Options"] == "nosniff"


def test_sma_up_and_the_image_run_this_command():
    """`sma up` builds its web command with gunicorn_conf.command; the image uses the config."""
    import inspect

    from smacli import stack

    assert "gunicorn_conf.command(" in inspect.getsource(stack.Stack.start)
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert f"gunicorn -c {gunicorn_conf.CONFIG} " in dockerfile


def _data_segments_in(conn: socket.socket) -> int:
    """Segments with data this end received (Linux TCP_INFO tcpi_data_segs_in)."""
    info = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int.from_bytes(info[152:156], "little")


def _answer(conn: socket.socket, request: bytes) -> bytes:
    """One answer to `request` on a kept-alive connection, read whole."""
    conn.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length and not request.startswith(b"HEAD"):
        body += conn.recv(65536)
    return data


def test_an_answer_goes_out_head_and_body_in_one_segment(web):
    """The head of an answer of a known length is sent with its body (smaweb.ggevent.OneSend):
    one segment for the client to read, not two; an answer without a body still comes."""
    server = web()
    conn = _open(server.port, b"")
    try:
        for request in (b"GET /health HTTP/1.1\r\nHost: sma\r\n\r\n",
                        b"GET /api/v1/runbooks HTTP/1.1\r\nHost: sma\r\nAuthorization: "
                        + AUTH["Authorization"].encode() + b"\r\n\r\n"):
            before = _data_segments_in(conn)
            answer = _answer(conn, request)
            assert answer.startswith(b"HTTP/1.1 200") and answer.endswith((b"}", b"}\n")), answer
            assert _data_segments_in(conn) - before == 1
        head = _answer(conn, b"HEAD /health HTTP/1.1\r\nHost: sma\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
    finally:
        conn.close()

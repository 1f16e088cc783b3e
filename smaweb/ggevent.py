"""gunicorn's gevent worker, made safe from slow and greedy clients.

Each connection is a greenlet of a few KB, not a thread, so the long-lived requests of live
output (GET /jobs/{id}/events, start?wait=, the portal's job page) cost little and never
hold the service: thousands stay open beside quick requests (docs/live-output.md).

The stock worker would let a client that sends half a request head hold its greenlet and
its connection slot for as long as it likes, and it answers TLS handshakes without a
deadline. Here the handshake and each request head must arrive within
SMA_HEADER_TIMEOUT_SECONDS (a kept-alive connection may first idle for gunicorn's
keepalive), a head holds at most 64 KiB, one peer address holds at most
SMA_MAX_CONNECTIONS_PER_ADDRESS connections, and a connection is closed after its peer
closes (or LINGER_SECONDS), in its own greenlet, so unread request bytes never make the
kernel reset an answer before it is read.

gunicorn imports this module in its master process, before it forks the worker that
monkey-patches: it imports nothing of the app (see smaweb/__init__.py); settings and the
app load after the patch.
"""

from __future__ import annotations

import errno
import resource
import socket
import ssl
import time
from collections import Counter
from functools import partial

import gevent
from gevent.pool import Pool
from gevent.server import StreamServer
from gunicorn import http, util
from gunicorn.sock import ssl_context
from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker

HEAD_END = b"\r\n\r\n"
MAX_HEAD_BYTES = 64 * 1024  # held per connection while it comes in; clients send a few KiB
READ_CHUNK = 16 * 1024
LINGER_SECONDS = 2.0  # as gunicorn's graceful close: the peer's chance to close first
LINGER_DRAIN_BYTES = 64 * 1024
WARN_EVERY_SECONDS = 60.0
SPARE_FILES = 256  # file descriptors beyond the connections: database, Redis, logs
ONE_SEND_BYTES = 64 * 1024  # a body up to this size goes out in one send with its head


def _response(status: str, text: str) -> bytes:
    body = text.encode() + b"\n"
    return (f"HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\n").encode() + b"\r\n" + body


BUSY = _response("503 Service Unavailable",
                 "Too many connections from your address; close some and try again.")
HEAD_TOO_LARGE = _response("431 Request Header Fields Too Large",
                           f"The request line and headers must fit in {MAX_HEAD_BYTES} bytes.")


class OneSend:
    """The client's socket as gunicorn writes one answer of a known length to it: the head
    (gunicorn's first sendall) is held and goes out with the body in one send, so the
    client reads one segment, not two. A streamed answer (no Content-Length) is sent as it
    comes; a large body is not copied; anything else done with the socket (sendfile, close)
    sends what is held first."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._first = True
        self._held: bytes | None = None

    def sendall(self, data: bytes) -> None:
        if self._first:
            self._first = False
            head = bytes(data)
            if b"\r\ncontent-length:" in head.lower():
                self._held = head
                return
        elif self._held is not None:
            held, self._held = self._held, None
            if len(data) <= ONE_SEND_BYTES:
                data = held + bytes(data)
            else:
                self._sock.sendall(held)
        self._sock.sendall(data)

    def flush(self, quietly: bool = False) -> None:
        """Send what is held (an answer without a body: HEAD, 204, 304); `quietly`: a
        client that is gone is no error (another one is on its way)."""
        if self._held is not None:
            held, self._held = self._held, None
            try:
                self._sock.sendall(held)
            except OSError:
                if not quietly:
                    raise

    def __getattr__(self, name: str):
        self.flush()
        return getattr(self._sock, name)


class _HeadTooLarge(Exception):
    """The request head grew past MAX_HEAD_BYTES."""


class GuardedGeventWorker(GeventWorker):
    """GeventWorker whose greenlets read request heads under a deadline and a size cap."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = 10.0
        self.per_address = 0
        self.by_address: Counter[str] = Counter()
        self.warned: dict[str, float] = {}
        self.ssl_context = None

    @classmethod
    def check_config(cls, cfg, log) -> None:
        if "h2" in (getattr(cfg, "http_protocols", None) or ()):
            raise RuntimeError("sma's web worker reads HTTP/1.1 request heads itself: "
                               "remove h2 from gunicorn's http_protocols")

    def patch(self) -> None:
        super().patch()
        from smacommon.settings import get_settings  # after the patch, like the whole app

        settings = get_settings()
        self.header_timeout = settings.header_timeout_seconds
        self.per_address = settings.max_connections_per_address
        self._raise_file_limit()

    def _raise_file_limit(self) -> None:
        """Allow a descriptor per connection (soft limits are often 1,024)."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = self.worker_connections + SPARE_FILES
        if soft != resource.RLIM_INFINITY and soft < wanted:
            new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            if new > soft:
                resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            if new < wanted:
                self.log.warning("Open files are limited to %d: at most about %d connections "
                                 "(raise ulimit -n)", new, new - SPARE_FILES)

    def run(self) -> None:
        """GeventWorker.run, with TLS left to the connection's greenlet (under a deadline)."""
        if self.cfg.is_ssl:
            self.ssl_context = ssl_context(self.cfg)
        servers = []
        for listener in self.sockets:
            listener.setblocking(1)
            server = StreamServer(listener, handle=partial(self.handle, listener),
                                  spawn=Pool(self.worker_connections))
            if self.cfg.workers > 1:
                server.max_accept = 1
            server.start()
            servers.append(server)
        while self.alive:
            self.notify()
            gevent.sleep(1.0)
        for server in servers:  # stop accepting; let open requests end until graceful_timeout
            server.close()
        began = time.monotonic()
        while time.monotonic() - began <= self.cfg.graceful_timeout:
            if all(server.pool.free_count() == server.pool.size for server in servers):
                return
            self.notify()
            gevent.sleep(0.2)
        self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
        for server in servers:
            server.stop(timeout=1)

    def handle(self, listener, client, addr) -> None:
        """Serve one connection, unless its address already holds its share."""
        address = addr[0] if isinstance(addr, tuple) else ""  # "" for a unix socket
        if self.per_address and address and self.by_address[address] >= self.per_address:
            self._refuse(client, address)
            return
        self.by_address[address] += 1
        try:
            self._serve(listener, client, addr)
        finally:
            if self.by_address[address] <= 1:
                del self.by_address[address]
            else:
                self.by_address[address] -= 1

    def _serve(self, listener, client, addr) -> None:
        req = None
        try:
            client.setblocking(1)
            if self.ssl_context is not None:
                with gevent.Timeout(self.header_timeout):
                    client = self.ssl_context.wrap_socket(
                        client, server_side=True, do_handshake_on_connect=False,
                        suppress_ragged_eofs=self.cfg.suppress_ragged_eofs)
                    client.do_handshake()
            parser = http.get_parser(self.cfg, client, addr)
            listener_name = listener.getsockname()
            while self.alive:
                if not self._read_head(client, parser, first=req is None):
                    break
                req = next(parser)  # the whole head is in its buffer: no read here
                if not self.handle_request(listener_name, req, client, addr):
                    break
        except _HeadTooLarge:
            self._send_quietly(client, HEAD_TOO_LARGE)
        except (gevent.Timeout, StopIteration, http.errors.NoMoreData):
            pass  # a head too slow, a client gone, a request that closes the connection
        except ssl.SSLError as exc:
            if exc.args and exc.args[0] != ssl.SSL_ERROR_EOF and req is not None:
                self.handle_error(req, client, addr, exc)
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, None):
                self.log.exception("Socket error processing request.")
        except Exception as exc:  # a malformed request: gunicorn answers 400 and the like
            self.handle_error(req, client, addr, exc)
        except gevent.GreenletExit:  # the worker stops: no lingering
            util.close(client)
            raise
        finally:
            self._linger(client)

    def _read_head(self, client, parser, first: bool) -> bool:
        """Read until the parser's buffer holds a whole request head; False: none comes."""
        if not first:  # what the app left of the last request's body goes first
            if not parser.finish_body(deadline=time.monotonic() + self.header_timeout):
                return False
        head = bytearray(parser.unreader.take_buffered())
        if not head and not first:  # a kept-alive connection idles for keepalive at most
            if not self.cfg.keepalive:
                return False
            with gevent.Timeout(self.cfg.keepalive, False):
                head += client.recv(READ_CHUNK)
            if not head:
                return False
        scanned = 0
        with gevent.Timeout(self.header_timeout):
            while head.find(HEAD_END, max(0, scanned - 3)) < 0:
                if len(head) >= MAX_HEAD_BYTES:
                    raise _HeadTooLarge()
                scanned = len(head)
                chunk = client.recv(READ_CHUNK)
                if not chunk:
                    return False
                head += chunk
        parser.unreader.unread(bytes(head))
        return True

    def handle_request(self, listener_name, req, sock, addr) -> bool:
        """AsyncWorker's: True while the connection may serve another request."""
        out = OneSend(sock)
        try:
            keep = AsyncWorker.handle_request(self, listener_name, req, out, addr)
        except (gevent.GreenletExit, SystemExit):
            return False
        except BaseException:
            out.flush(quietly=True)  # (an answer gunicorn wrote before it gave up)
            raise
        out.flush()
        return keep

    @staticmethod
    def _send_quietly(client, answer: bytes) -> None:
        try:
            client.sendall(answer)  # small: fits an empty send buffer
        except OSError:
            pass

    @staticmethod
    def _linger(client) -> None:
        """Close after the peer does (or after LINGER_SECONDS)."""
        try:
            client.shutdown(socket.SHUT_WR)
            drained = 0
            with gevent.Timeout(LINGER_SECONDS, False):
                while drained < LINGER_DRAIN_BYTES:
                    data = client.recv(READ_CHUNK)
                    if not data:
                        break
                    drained += len(data)
        except (OSError, ValueError):
            pass
        util.close(client)

    def _refuse(self, client: socket.socket, address: str) -> None:
        if not self.cfg.is_ssl:
            try:
                client.setblocking(False)
                client.send(BUSY)
            except OSError:
                pass
        util.close(client)
        now = time.monotonic()
        if now - self.warned.get(address, -WARN_EVERY_SECONDS) >= WARN_EVERY_SECONDS:
            if len(self.warned) > 10_000:
                self.warned.clear()
            self.warned[address] = now
            self.log.warning("Refusing connections from %s: it holds %d "
                             "(SMA_MAX_CONNECTIONS_PER_ADDRESS)", address, self.per_address)

"""gunicorn's threaded worker, made safe from slow and greedy clients.

The stock worker (gunicorn 27) gives each connection to a pool thread that reads the request
head with blocking reads, so 16 clients that send half a request hold all 16 threads; and it
closes each finished connection on its event loop, waiting up to 2 s for the client to
close first, so a few clients that never close stall everyone. Here the event loop reads
request heads without blocking, under a deadline (SMA_HEADER_TIMEOUT_SECONDS), and only a
whole head reaches a thread; closing connections linger in the event loop, not on it; and
one peer address holds at most SMA_MAX_CONNECTIONS_PER_ADDRESS connections.
"""

from __future__ import annotations

import errno
import selectors
import socket
import ssl
import time
from collections import Counter
from functools import partial

from gunicorn import http
from gunicorn import sock as gsock
from gunicorn.workers.gthread import TConn, ThreadWorker

from smacommon.settings import get_settings

HEAD_END = b"\r\n\r\n"
MAX_HEAD_BYTES = 64 * 1024  # held per connection while it comes in; clients send a few KiB
READ_CHUNK = 16 * 1024
LINGER_SECONDS = 2.0  # as gunicorn's close_graceful: the peer's chance to close first
LINGER_DRAIN_BYTES = 64 * 1024
WARN_EVERY_SECONDS = 60.0


def _response(status: str, text: str) -> bytes:
    body = text.encode() + b"\n"
    return (f"HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\n").encode() + b"\r\n" + body


BUSY = _response("503 Service Unavailable",
                 "Too many connections from your address; close some and try again.")
HEAD_TOO_LARGE = _response("431 Request Header Fields Too Large",
                           f"The request line and headers must fit in {MAX_HEAD_BYTES} bytes.")


class GuardedConn(TConn):
    """A client connection, with the request head read so far and its peer's slot."""

    def __init__(self, worker: GuardedThreadWorker, sock, client, server, address: str) -> None:
        super().__init__(worker.cfg, sock, client, server)
        self.worker = worker
        self.address = address
        self.head = bytearray()
        self.scanned = 0  # bytes of head searched for its end
        self.events = 0  # what the poller waits for on it (0: not registered)
        self.handshaking = False
        self.drained = 0
        self.closed = False

    def close(self, graceful: bool = False) -> None:
        # the base class calls this on the event loop; a graceful close must not wait there
        if graceful and not self.closed:
            self.worker.linger(self)
        else:
            self.close_now()

    def close_now(self) -> None:
        if not self.closed:
            self.closed = True
            self.worker.release(self.address)
        super().close()


class GuardedThreadWorker(ThreadWorker):
    """ThreadWorker whose threads only ever see whole request heads."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.header_timeout = settings.header_timeout_seconds
        self.per_address = settings.max_connections_per_address
        self.by_address: Counter[str] = Counter()
        self.warned: dict[str, float] = {}
        # by deadline: a fixed delay each, so insertion order is deadline order
        self.reading: dict[GuardedConn, float] = {}
        self.lingering: dict[GuardedConn, float] = {}

    @classmethod
    def check_config(cls, cfg, log) -> None:
        super().check_config(cfg, log)
        if "h2" in (getattr(cfg, "http_protocols", None) or ()):
            raise RuntimeError("sma's web worker reads HTTP/1.1 request heads itself: "
                               "remove h2 from gunicorn's http_protocols")

    def accept(self, listener) -> None:
        """Take a new connection, unless its address already holds its share."""
        try:
            client, addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        address = addr[0] if isinstance(addr, tuple) else ""  # "" for a unix socket
        if self.per_address and address and self.by_address[address] >= self.per_address:
            self._refuse(client, address)
            return
        self.nr_conns += 1
        self.by_address[address] += 1
        conn = GuardedConn(self, client, addr, listener.getsockname(), address)
        if self.cfg.is_ssl:  # the handshake too happens here, without blocking
            try:
                conn.sock = gsock.ssl_context(self.cfg).wrap_socket(
                    client, server_side=True, do_handshake_on_connect=False,
                    suppress_ragged_eofs=self.cfg.suppress_ragged_eofs)
            except (OSError, ValueError):
                self._drop(conn)
                return
            conn.handshaking = True
        self._read_head(conn)

    def enqueue_req(self, conn: GuardedConn) -> None:
        # the base class calls this for a kept-alive connection that became readable and for
        # one whose parser holds the start of its next request: read that head here first
        self._read_head(conn)

    def _read_head(self, conn: GuardedConn) -> None:
        if conn.parser is not None:  # what the last request's parser read ahead
            conn.head[:0] = conn.parser.unreader.take_buffered()
        self.reading.pop(conn, None)
        self.reading[conn] = time.monotonic() + self.header_timeout
        conn.sock.setblocking(False)
        self._advance(conn)

    def _advance(self, conn: GuardedConn, _fileobj=None) -> None:
        """Read what the peer sent; a whole head goes to a thread, else wait for more."""
        try:
            if conn.handshaking:
                conn.sock.do_handshake()
                conn.handshaking = False
            while not self._complete(conn):
                if len(conn.head) >= MAX_HEAD_BYTES:
                    self._answer_and_drop(conn, HEAD_TOO_LARGE)
                    return
                chunk = conn.sock.recv(READ_CHUNK)
                if not chunk:  # the peer went away
                    self._drop(conn)
                    return
                conn.head += chunk
        except ssl.SSLWantWriteError:
            self._wait(conn, selectors.EVENT_WRITE, self._advance)
            return
        except (ssl.SSLWantReadError, BlockingIOError):
            self._wait(conn, selectors.EVENT_READ, self._advance)
            return
        except (OSError, ValueError):  # reset, or not TLS on a TLS port
            self._drop(conn)
            return
        self._forget(conn)
        conn.sock.setblocking(True)
        if conn.parser is None:  # what TConn.init() does in the thread, minus the reads
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
            conn.initialized = True
        conn.parser.unreader.unread(bytes(conn.head))
        conn.head.clear()
        conn.scanned = 0
        super().enqueue_req(conn)

    @staticmethod
    def _complete(conn: GuardedConn) -> bool:
        found = conn.head.find(HEAD_END, max(0, conn.scanned - 3)) >= 0
        conn.scanned = len(conn.head)
        return found

    def _wait(self, conn: GuardedConn, events: int, callback) -> None:
        if conn.events == events:
            return
        if conn.events:
            self.poller.modify(conn.sock, events, partial(callback, conn))
        else:
            self.poller.register(conn.sock, events, partial(callback, conn))
        conn.events = events

    def _forget(self, conn: GuardedConn) -> None:
        self.reading.pop(conn, None)
        self.lingering.pop(conn, None)
        if conn.events:
            conn.events = 0
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass

    def _drop(self, conn: GuardedConn) -> None:
        self._forget(conn)
        self.nr_conns -= 1
        conn.close_now()

    def _answer_and_drop(self, conn: GuardedConn, answer: bytes) -> None:
        try:
            conn.sock.send(answer)  # one small write into an empty buffer: does not block
        except OSError:
            pass
        self._forget(conn)
        self.nr_conns -= 1
        conn.close(graceful=True)

    def linger(self, conn: GuardedConn) -> None:
        """Close after the peer does (or after LINGER_SECONDS), so that unread request bytes
        do not make the kernel reset the connection before the answer is read."""
        self._forget(conn)
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
        except OSError:
            conn.close_now()
            return
        self.lingering[conn] = time.monotonic() + LINGER_SECONDS
        self._drain(conn)

    def _drain(self, conn: GuardedConn, _fileobj=None) -> None:
        try:
            while conn.drained < LINGER_DRAIN_BYTES:
                data = conn.sock.recv(READ_CHUNK)
                if not data:
                    break
                conn.drained += len(data)
        except (BlockingIOError, ssl.SSLWantReadError):
            self._wait(conn, selectors.EVENT_READ, self._drain)
            return
        except (OSError, ValueError):
            pass
        self._forget(conn)
        conn.close_now()

    def release(self, address: str) -> None:
        """One connection of this address is closed."""
        if self.by_address[address] <= 1:
            del self.by_address[address]
        else:
            self.by_address[address] -= 1

    def _refuse(self, client: socket.socket, address: str) -> None:
        if not self.cfg.is_ssl:
            try:
                client.setblocking(False)
                client.send(BUSY)
            except OSError:
                pass
        client.close()
        now = time.monotonic()
        if now - self.warned.get(address, -WARN_EVERY_SECONDS) >= WARN_EVERY_SECONDS:
            if len(self.warned) > 10_000:
                self.warned.clear()
            self.warned[address] = now
            self.log.warning("Refusing connections from %s: it holds %d "
                             "(SMA_MAX_CONNECTIONS_PER_ADDRESS)", address, self.per_address)

    def murder_keepalived(self, force: bool = False) -> None:
        """Also end heads that came too slowly and lingering closes past their time."""
        super().murder_keepalived(force)
        now = time.monotonic()
        for waiting, close in ((self.reading, self._drop), (self.lingering, self._end_linger)):
            while waiting:
                conn, deadline = next(iter(waiting.items()))
                if deadline > now and not force:
                    break
                close(conn)

    def _end_linger(self, conn: GuardedConn) -> None:
        self._forget(conn)
        conn.close_now()

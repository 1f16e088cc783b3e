"""Slowing down token guessing, without ever locking out a right token.

A token is checked before the limiter is asked, and a right one always passes: only wrong
tokens are counted, and only wrong tokens are refused. Past FAILURES_ALLOWED wrong tokens a
minute from one client address, that address's wrong tokens get 429 (with Retry-After)
instead of 401/404. Its right tokens (a job's own token, the admin's) still pass, so one
runbook guessing tokens breaks no other job that calls back from the same host. Guessing a
whole token (256 random bits) is hopeless with or without a limit; the 429 keeps logs and
the database quiet under a flood of wrong ones.

Kept in memory per web process (with gunicorn's N processes an address gets up to N times
the limit), bounded: at most MAX_KEYS addresses, the least recently failing forgotten first,
each holding at most FAILURES_ALLOWED times.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque

from flask import current_app, request
from flask_smorest import abort

FAILURES_ALLOWED = 20
FAILURE_WINDOW_SECONDS = 60.0
MAX_KEYS = 10_000


class _Windows:
    """Times of the latest failures per key, least recently failing first."""

    def __init__(self) -> None:
        self._times: OrderedDict[object, deque[float]] = OrderedDict()

    def wait(self, key: object, now: float) -> float:
        """Seconds until the key is under the limit again (0: it is)."""
        times = self._times.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - FAILURE_WINDOW_SECONDS:
            times.popleft()
        if not times:
            del self._times[key]
        if len(times) < FAILURES_ALLOWED:
            return 0.0
        return max(0.001, times[0] + FAILURE_WINDOW_SECONDS - now)

    def add(self, key: object, now: float) -> None:
        times = self._times.get(key)
        if times is None:
            times = self._times[key] = deque(maxlen=FAILURES_ALLOWED)
            if len(self._times) > MAX_KEYS:
                self._times.popitem(last=False)
        else:
            self._times.move_to_end(key)
        times.append(now)

    def __len__(self) -> int:
        return len(self._times)


class Failures:
    """Wrong tokens per client address (one per web process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_address = _Windows()

    def fail(self, address: object) -> float:
        """Count one wrong token (or password: the key is then also a user name); seconds the
        key must wait (0: answer it as usual)."""
        now = time.monotonic()
        with self._lock:
            wait = self._by_address.wait(address, now)
            self._by_address.add(address, now)
            return wait

    def waiting(self, key: object) -> float:
        """Seconds `key` must wait before it may try again (0: it may), counting nothing.
        A directory sign-in asks first, so a guesser past the limit costs the directory no
        bind (and its lockout policy no count)."""
        with self._lock:
            return self._by_address.wait(key, time.monotonic())

    def size(self) -> int:
        """Addresses held (bounded by MAX_KEYS)."""
        with self._lock:
            return len(self._by_address)

    def clear(self) -> None:
        with self._lock:
            self._by_address = _Windows()


def client_address() -> str:
    """The caller's address (the real client's behind SMA_TRUSTED_PROXIES proxies)."""
    return request.remote_addr or "unknown"


def _too_many(wait: float) -> None:
    seconds = int(wait) + 1
    abort(429, message=f"Too many requests with a wrong token from {client_address()}; "
                       f"try again in {seconds} s.", headers={"Retry-After": str(seconds)})


def count_failure() -> None:
    """One more wrong token from this address; 429 when the address is past its limit (the
    caller answers 401 or 404 otherwise)."""
    wait = current_app.extensions["sma_auth_failures"].fail(client_address())
    if wait:
        _too_many(wait)

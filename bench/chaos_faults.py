"""The chaos loop: faults at random intervals, each logged with its time, and a watch over
every process that tells a fault the loop caused from a process that died on its own.

It runs on the main thread (see chaos_stack: processes are started from there) as a
small scheduler, so a worker that dies on its own is seen and restarted within a second
even while a stalled worker waits for its SIGCONT.
"""

from __future__ import annotations

import heapq
import itertools
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from chaos_stack import ChaosStack, Proc

KINDS = ("kill_worker", "restart_redis", "restart_postgres", "kill_beat", "stall_worker")


@dataclass
class Fault:
    kind: str
    target: str
    start: float  # time.time()
    end: float | None = None
    detail: dict = field(default_factory=dict)

    def as_json(self, origin: float) -> dict:
        return {"at": _iso(self.start), "t": round(self.start - origin, 1), "kind": self.kind,
                "target": self.target,
                "seconds": None if self.end is None else round(self.end - self.start, 1),
                **self.detail}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


class ChaosLoop:
    """Schedules faults on `stack` every `interval` (min, max) seconds."""

    def __init__(self, stack: ChaosStack, interval: tuple[float, float], stall_seconds: float,
                 restart_after: float, kinds: tuple[str, ...], seed: int | None,
                 running_jobs: Callable[[str], int | None] = lambda _name: None) -> None:
        self.stack = stack
        self.running_jobs = running_jobs  # worker name -> jobs it runs (for the fault log)
        self.interval = interval
        self.stall_seconds = stall_seconds
        self.restart_after = restart_after
        self.kinds = kinds
        self.rng = random.Random(seed)
        self.faults: list[Fault] = []
        self.unexpected_exits: list[dict] = []
        self.origin = time.time()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._deck: list[str] = []
        self._busy: set[str] = set()  # processes a fault holds (killed, stalled)

    def after(self, seconds: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + seconds, next(self._seq), action))

    def run(self, until: Callable[[], bool], chaos: bool) -> None:
        """Watch the processes, and inject faults while `chaos`, until `until()`; then let
        the pending restarts happen."""
        if chaos and self.kinds:
            self.after(self.rng.uniform(*self.interval), self._next_fault)
        while not until():
            self.tick()
            time.sleep(0.2)
        self._timers = [t for t in self._timers if t[2] != self._next_fault]
        while self._timers:  # restarts and SIGCONTs still due
            self.tick()
            time.sleep(0.2)

    def tick(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, action = heapq.heappop(self._timers)
            action()
        self._watch()

    def _watch(self) -> None:
        for proc in [*self.stack.services, self.stack.redis, self.stack.postgres]:
            if proc.alive() or proc.expected_down or proc.proc is None:
                continue
            code = proc.proc.returncode
            self.unexpected_exits.append({"at": _iso(time.time()),
                                          "t": round(time.time() - self.origin, 1),
                                          "process": proc.name, "exit_code": code})
            self.log(f"UNEXPECTED EXIT of {proc.name} (code {code}); restarting it")
            proc.signal_group(signal.SIGKILL)  # whatever it left in its group
            self._restart(proc)

    def _restart(self, proc: Proc) -> None:
        if proc is self.stack.postgres:
            self.stack.start_postgres()
        elif proc is self.stack.redis:
            self.stack.start_redis()
        else:
            proc.start()

    def log(self, message: str) -> None:
        print(f"{_iso(time.time())} +{time.time() - self.origin:7.1f}s  {message}",
              file=sys.stderr, flush=True)

    def _next_fault(self) -> None:
        if not self._deck:  # every kind once per round, in a random order
            self._deck = list(self.kinds)
            self.rng.shuffle(self._deck)
        getattr(self, self._deck.pop())()
        self.after(self.rng.uniform(*self.interval), self._next_fault)

    def _begin(self, kind: str, target: str, **detail) -> Fault:
        fault = Fault(kind, target, time.time(), detail=detail)
        self.faults.append(fault)
        self.log(f"fault {kind} {target} {detail or ''}")
        return fault

    def _end(self, fault: Fault) -> None:
        fault.end = time.time()
        self.log(f"  {fault.kind} {fault.target} over after {fault.end - fault.start:.1f} s")

    def _free_worker(self) -> Proc | None:
        free = [w for w in self.stack.workers if w.name not in self._busy and w.alive()]
        return self.rng.choice(free) if free else None

    def kill_worker(self) -> None:
        worker = self._free_worker()
        if worker is None:
            return
        fault = self._begin("kill_worker", worker.name, pid=worker.pid,
                            running_jobs=self.running_jobs(worker.env["SMA_WORKER_NAME"]))
        worker.kill()
        self._busy.add(worker.name)
        self.after(self.restart_after, lambda: self._restarted(worker, fault))

    def _restarted(self, proc: Proc, fault: Fault) -> None:
        proc.start()
        self._busy.discard(proc.name)
        self._end(fault)

    def stall_worker(self) -> None:
        worker = self._free_worker()
        if worker is None:
            return
        fault = self._begin("stall_worker", worker.name, pid=worker.pid,
                            running_jobs=self.running_jobs(worker.env["SMA_WORKER_NAME"]))
        worker.signal_group(signal.SIGSTOP)
        self._busy.add(worker.name)

        def resume() -> None:
            worker.signal_group(signal.SIGCONT)
            self._busy.discard(worker.name)
            self._end(fault)

        self.after(self.stall_seconds, resume)

    def kill_beat(self) -> None:
        beat = self.stack.beat
        if not beat.alive():
            return
        fault = self._begin("kill_beat", "beat", pid=beat.pid)
        beat.kill()
        self.after(self.restart_after, lambda: self._restarted(beat, fault))

    def restart_redis(self) -> None:
        # a service restart: SIGTERM, at once started again; with no persistence (no RDB,
        # no AOF), what the broker held (queued and unacknowledged messages) is gone
        fault = self._begin("restart_redis", "redis")
        self.stack.redis.stop()
        self.stack.start_redis()
        self._end(fault)

    def restart_postgres(self) -> None:
        fault = self._begin("restart_postgres", "postgres")
        self.stack.stop_postgres_immediate()
        self.stack.start_postgres()
        self._end(fault)

"""API traffic during the chaos: the job starts (single and /jobs/batch, spread over the
run, retried as a client would) and readers (list jobs, get a job, its records), with
every answer recorded: its HTTP status, or the connection error or timeout instead."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass

import requests

TIMEOUT = 30.0  # seconds a request may take before it counts as a timeout


@dataclass
class Answer:
    at: float  # time.time() when the request was sent
    kind: str  # start, batch, list, get, streams
    outcome: str  # "200", "503", ..., "connection_error", "timeout"
    retry_after: bool


class HttpLog:
    """Every answer of the run, thread-safe."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self._lock = threading.Lock()

    def call(self, session: requests.Session, kind: str, method: str, url: str, **kw
             ) -> requests.Response | None:
        began = time.time()
        try:
            resp = session.request(method, url, timeout=TIMEOUT, **kw)
            outcome, retry = str(resp.status_code), "Retry-After" in resp.headers
        except requests.Timeout:
            resp, outcome, retry = None, "timeout", False
        except requests.ConnectionError:
            resp, outcome, retry = None, "connection_error", False
        with self._lock:
            self.answers.append(Answer(began, kind, outcome, retry))
        return resp

    def summary(self, windows: list[tuple[float, float]]) -> dict:
        """Answers by outcome, during faults (sent inside a window) and outside them."""
        during, outside, by_kind = Counter(), Counter(), Counter()
        no_retry_after = 0
        for a in self.answers:
            inside = any(lo <= a.at <= hi for lo, hi in windows)
            (during if inside else outside)[a.outcome] += 1
            by_kind[f"{a.kind} {a.outcome}"] += 1
            if a.outcome == "503" and not a.retry_after:
                no_retry_after += 1
        total = during + outside
        return {"requests": len(self.answers),
                "during_faults": dict(sorted(during.items())),
                "outside_faults": dict(sorted(outside.items())),
                "by_request": dict(sorted(by_kind.items())),
                "http_500": sum(v for k, v in total.items() if k.startswith("5") and k != "503"),
                "connection_errors": total["connection_error"],
                "timeouts": total["timeout"],
                "503_without_retry_after": no_retry_after}


def session(token: str) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    return s


class Starter(threading.Thread):
    """Starts `count` jobs spread evenly over `seconds`, some one by one, some in batches
    of 2-20 through /jobs/batch; a start that fails is sent again (after Retry-After, or
    1 s) until `give_up_at`. A start that failed with no answer (a connection error, a
    timeout, a 500) may have made its job anyway: `ambiguous` counts them."""

    def __init__(self, log: HttpLog, url: str, token: str, runbook: str, count: int,
                 seconds: float, params: dict, seed: int | None) -> None:
        super().__init__(name="chaos-starter", daemon=True)
        self.log, self.url, self.runbook = log, url, runbook
        self.session = session(token)
        self.count, self.seconds, self.params = count, seconds, params
        self.rng = random.Random(seed)
        self.acknowledged: dict[str, str] = {}  # tag -> job id
        self.never_accepted: list[str] = []  # tags
        self.ambiguous = 0
        self.give_up_at = float("inf")
        self.done = threading.Event()

    def tag(self, index: int) -> str:
        return f"j{index:05d}"

    def run(self) -> None:
        try:
            began = time.monotonic()
            index = 0
            while index < self.count:
                size = 1 if self.rng.random() < 0.6 else self.rng.randint(2, 20)
                tags = [self.tag(i) for i in range(index, min(self.count, index + size))]
                due = began + self.seconds * index / self.count
                time.sleep(max(0.0, due - time.monotonic()))
                self._start(tags)
                index += len(tags)
        finally:
            self.done.set()

    def _start(self, tags: list[str]) -> None:
        while time.monotonic() < self.give_up_at:
            if len(tags) == 1:
                resp = self.log.call(self.session, "start", "POST",
                                     f"{self.url}/api/v1/runbooks/{self.runbook}/start",
                                     json={"parameters": {"tag": tags[0], **self.params}})
            else:
                resp = self.log.call(self.session, "batch", "POST", f"{self.url}/api/v1/jobs/batch",
                                     json={"jobs": [{"runbook": self.runbook,
                                                     "parameters": {"tag": t, **self.params}}
                                                    for t in tags]})
            if resp is not None and resp.status_code == 201:
                body = resp.json()
                items = body["items"] if "items" in body else [body]
                for item in items:
                    self.acknowledged[item["parameters"]["tag"]] = item["id"]
                return
            if resp is None or (resp.status_code >= 500 and resp.status_code != 503):
                self.ambiguous += 1
            wait = 1.0
            if resp is not None and resp.headers.get("Retry-After", "").isdigit():
                wait = float(resp.headers["Retry-After"])
            time.sleep(wait)
        self.never_accepted.extend(tags)


class Reader(threading.Thread):
    """Reads as people and scripts do while jobs run: list, get one, its records."""

    def __init__(self, log: HttpLog, url: str, token: str, starter: Starter, seed: int | None,
                 pause: float = 0.3) -> None:
        super().__init__(name="chaos-reader", daemon=True)
        self.log, self.url, self.starter, self.pause = log, url, starter, pause
        self.session = session(token)
        self.rng = random.Random(seed)
        self.stop = threading.Event()

    def run(self) -> None:
        api = f"{self.url}/api/v1"
        while not self.stop.wait(self.pause):
            ids = list(self.starter.acknowledged.values())
            choice = self.rng.random()
            if choice < 0.3 or not ids:
                self.log.call(self.session, "list", "GET", f"{api}/jobs", params={"limit": 50})
            elif choice < 0.65:
                self.log.call(self.session, "get", "GET", f"{api}/jobs/{self.rng.choice(ids)}")
            else:
                self.log.call(self.session, "streams", "GET",
                              f"{api}/jobs/{self.rng.choice(ids)}/streams")

"""Cheap clients of live output for the live benchmark and its test: asyncio on raw sockets,
so one process holds a thousand followers (HTTP/1.0 requests: bodies are not chunked)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field


@dataclass
class Followed:
    """What one follower of GET /jobs/{id}/events received."""

    job_id: str
    status_code: int = 0
    records: list[tuple[int, str, float]] = field(default_factory=list)  # seq, text, when
    final: dict | None = None  # the `status` event
    error: str | None = None


async def _request(host: str, port: int, head: str, body: bytes = b"") -> tuple[
        asyncio.StreamReader, asyncio.StreamWriter, int]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(head.encode() + body)
    await writer.drain()
    status_line = await reader.readline()
    code = int(status_line.split()[1])
    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
        pass
    return reader, writer, code


def _head(method: str, path: str, token: str, extra: str = "") -> str:
    return (f"{method} {path} HTTP/1.0\r\nHost: sma\r\nAuthorization: Bearer {token}\r\n"
            f"{extra}\r\n")


async def follow(host: str, port: int, token: str, job_id: str, timeout: float = 300,
                 connected: asyncio.Event | None = None) -> Followed:
    """Follow one job's events until its `status` event, the stream's end or `timeout`."""
    result = Followed(job_id)
    writer = None
    try:
        reader, writer, result.status_code = await _request(
            host, port, _head("GET", f"/api/v1/jobs/{job_id}/events?timeout={timeout:g}",
                              token, "Accept: text/event-stream\r\n"))
        if connected is not None:
            connected.set()
        buffer = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return result
            now = time.time()
            buffer += chunk
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                name, data = None, None
                for line in event.decode().split("\n"):
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                if name == "record":
                    result.records.append((data["seq"], data["text"], now))
                elif name == "status":
                    result.final = data
                    return result
    except (OSError, ValueError, IndexError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    finally:
        if writer is not None:
            writer.close()


async def start_and_wait(host: str, port: int, token: str, runbook: str,
                         wait: float) -> tuple[int, dict | None, float]:
    """POST /runbooks/{runbook}/start with `wait`: (status code, job, when it answered)."""
    body = json.dumps({"wait": wait}).encode()
    writer = None
    try:
        reader, writer, code = await _request(
            host, port, _head("POST", f"/api/v1/runbooks/{runbook}/start", token,
                              "Content-Type: application/json\r\n"
                              f"Content-Length: {len(body)}\r\n"), body)
        data = await reader.read()
        return code, json.loads(data) if data else None, time.time()
    except (OSError, ValueError) as exc:
        return 0, {"error": str(exc)}, time.time()
    finally:
        if writer is not None:
            writer.close()

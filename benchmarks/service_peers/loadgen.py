"""A closed-loop HTTP/1.1 load generator on asyncio streams (stdlib only, loopback only).

Each of ``clients`` workers keeps one keep-alive connection and loops: POST the next body of the
list (the bodies are taken in turn, round robin over all workers, each with a fresh
``hookInstance``), read the whole response, repeat. Bodies are encoded once, before the clock starts. httpx is not used: on a 2-core machine its
client overhead, not the server, sets the pace. Returns requests, errors, throughput and latency
percentiles (nearest rank), and the client's own CPU share so a client-bound run can be spotted.

Given ``tokens`` (an iterator of bearer tokens, minted before the clock starts), each call carries
the next one in ``Authorization``: a server that refuses a replayed JWT needs a new one per call.

Given the server's process id (Linux), it also reads the server's CPU time per thread from
``/proc/<pid>/task/*/stat`` at the start and the end of the measured window and returns the CPU
milliseconds per completed call, with the event-loop (main) thread apart from the others: where a
call's time goes, and whether the server used its whole core.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

__all__ = ["run_load"]

_PLACEHOLDER = "00000000-0000-4000-8000-000000000000"


def _loopback(host: str) -> bool:
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
    except (OSError, ValueError):
        return False


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await reader.read()
    return status, body


def _thread_cpu(pid: int) -> dict[int, float] | None:
    """CPU seconds (user + system) of each thread of process ``pid``, or None where /proc cannot tell."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime (proc(5))
    except (OSError, ValueError, IndexError):
        return None
    return out


def _cpu_per_call(pid: int, before: dict[int, float] | None, after: dict[int, float] | None, calls: int) -> dict | None:
    """The server's CPU ms per call over the window, all threads and the event-loop (main) thread."""
    if before is None or after is None or calls <= 0:
        return None
    spent = {tid: cpu - before.get(tid, 0.0) for tid, cpu in after.items()}
    total, loop = sum(spent.values()), spent.get(pid, 0.0)
    return {"total_ms": round(1000 * total / calls, 3), "event_loop_ms": round(1000 * loop / calls, 3),
            "other_threads_ms": round(1000 * (total - loop) / calls, 3)}


async def _load(url: str, bodies: list[dict], clients: int, seconds: float, warmup: float,
                expect_cards: int | None, timeout: float, server_pid: int | None = None,
                tokens: Iterator[str] | None = None) -> dict:
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    if not _loopback(host):
        raise SystemExit(f"refusing to load {host}: loopback only")
    requests = []
    for body in bodies:
        template = json.dumps({**body, "hookInstance": _PLACEHOLDER}, separators=(",", ":")).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(template)}\r\n\r\n").encode()
        requests.append((head, template))
    turn = itertools.cycle(requests)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    completed = 0  # calls that ended inside the measured window (the server's CPU is read at its ends)
    start = time.perf_counter()
    measure_from = start + warmup
    stop = measure_from + seconds

    async def worker() -> None:
        nonlocal completed
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                now = time.perf_counter()
                if now >= stop:
                    return
                head, template = next(turn)
                if tokens is not None:  # one more header, before the blank line that ends them
                    token = next(tokens, None)
                    if token is None:
                        errors["no token left to send"] = errors.get("no token left to send", 0) + 1
                        return
                    head = head[:-2] + b"Authorization: Bearer " + token.encode() + b"\r\n\r\n"
                payload = template.replace(_PLACEHOLDER.encode(), str(uuid.uuid4()).encode(), 1)
                t0 = time.perf_counter()
                key = None
                try:
                    writer.write(head + payload)
                    status, data = await asyncio.wait_for(_read_response(reader), timeout)
                    if status != 200:
                        key = f"HTTP {status}"
                    elif expect_cards is not None and len(json.loads(data).get("cards", ())) != expect_cards:
                        key = "unexpected card count"
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    key = type(exc).__name__
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                t1 = time.perf_counter()
                if measure_from <= t1 < stop:
                    completed += 1
                if t0 >= measure_from:
                    if key is None:
                        latencies.append(t1 - t0)
                    else:
                        errors[key] = errors.get(key, 0) + 1
        finally:
            writer.close()

    server_cpu: list[dict[int, float] | None] = []

    async def read_server_cpu() -> None:
        for at in (measure_from, stop):
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            server_cpu.append(_thread_cpu(server_pid))

    cpu0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(clients)), *([read_server_cpu()] if server_pid else []))
    wall = time.perf_counter() - measure_from
    cpu = time.process_time() - cpu0
    latencies.sort()

    def pct(p: float) -> float | None:
        if not latencies:
            return None
        return round(1000 * latencies[min(len(latencies) - 1, max(0, int(round(p * len(latencies))) - 1))], 2)

    return {"clients": clients, "seconds": round(wall, 2), "requests": len(latencies),
            "errors": sum(errors.values()), "error_kinds": errors,
            "throughput_rps": round(len(latencies) / wall, 1) if wall > 0 else 0.0,
            "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
            "max_ms": round(1000 * latencies[-1], 2) if latencies else None,
            "client_cpu_pct": round(100 * cpu / (time.perf_counter() - start), 1),
            "server_cpu_per_call": _cpu_per_call(server_pid, *server_cpu, completed) if server_pid else None}


def run_load(url: str, bodies: dict | list[dict], *, clients: int = 50, seconds: float = 20, warmup: float = 2,
             expect_cards: int | None = None, timeout: float = 10, server_pid: int | None = None,
             tokens: Iterator[str] | None = None) -> dict:
    """Load ``url`` (loopback only) for ``seconds`` after ``warmup`` with one body or bodies in turn;
    bounded to 600 s and 1000 clients."""
    bodies = [bodies] if isinstance(bodies, dict) else list(bodies)
    if not bodies:
        raise ValueError("no request body to send")
    return asyncio.run(_load(url, bodies, min(clients, 1000), min(seconds, 600), min(warmup, 60), expect_cards,
                             timeout, server_pid, tokens))

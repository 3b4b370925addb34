"""Benchmark: does the work of the web pages or of the REST API hold up an EHR's CDS call?

A real server (``leukos serve --dev`` on a free loopback port) answers CDS patient-view calls from one
client, a call every 50 ms, first alone (the baseline of this run), then while ``--clients`` clients
each send, without pause, ``--load report`` (a PDF report of a bundled example, about a second of
CPU) or ``--load simulate`` (``/api/simulate`` of it, about a tenth of a second). Reported: the CDS
latency (median, 90th centile, worst) in both phases, their ratio, and the other calls answered.
When one pool served everything (issue 11, 2026-12-03), eight report clients made the CDS median
7.8 s and eight simulation clients 1.2 s, against 6-7 ms alone.

    python benchmarks/bench_bulkheads.py [--load report|simulate] [--clients 8] [--seconds 12]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.service_peers.request import patient_view_request  # noqa: E402

PV = "/cds-services/leukos-patient-view"
EXAMPLE = "01-aml-leukostasis.yaml"
CASE = (REPO / "examples" / EXAMPLE).read_bytes()
LOADS = {  # name -> (method path, request keyword arguments)
    "report": ("/ui/report?format=pdf", {"data": {"example": EXAMPLE}}),
    "simulate": ("/api/simulate", {"content": CASE, "headers": {"Content-Type": "application/yaml"}}),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-c", "from leukos.cli.main import run; run()", "serve", "--host", "127.0.0.1",
           "--port", str(port), "--examples", str(REPO / "examples"), "--dev"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_ready(base: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server did not start")
        try:
            if httpx.get(base + "/api/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("the server did not answer within 60 s")


def _cds_latencies(base: str, seconds: float) -> tuple[list[float], dict[int, int]]:
    ms: list[float] = []
    codes: dict[int, int] = {}
    end, i = time.monotonic() + seconds, 0
    with httpx.Client(timeout=60) as c:
        while time.monotonic() < end:
            body = patient_view_request(i)
            i += 1
            t0 = time.perf_counter()
            r = c.post(base + PV, json=body)
            ms.append((time.perf_counter() - t0) * 1000)
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
            time.sleep(0.05)
    return sorted(ms), codes


def _summary(ms: list[float]) -> tuple[float, float, float]:
    return statistics.median(ms), ms[int(len(ms) * 0.9)], ms[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--load", choices=sorted(LOADS), default="report", help="what the other clients ask for")
    ap.add_argument("--clients", type=int, default=8, help="clients sending that load without pause")
    ap.add_argument("--seconds", type=float, default=12.0, help="length of each phase")
    args = ap.parse_args()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(port)
    try:
        _wait_ready(base, proc)
        _cds_latencies(base, 2)  # warm-up
        alone, alone_codes = _cds_latencies(base, args.seconds)
        stop, load_codes = threading.Event(), {}
        path, kwargs = LOADS[args.load]

        def load() -> None:
            with httpx.Client(timeout=120) as c:
                while not stop.is_set():
                    r = c.post(base + path, **kwargs)
                    load_codes[r.status_code] = load_codes.get(r.status_code, 0) + 1

        clients = [threading.Thread(target=load) for _ in range(args.clients)]
        for t in clients:
            t.start()
        time.sleep(2)
        loaded, loaded_codes = _cds_latencies(base, args.seconds)
        stop.set()
        for t in clients:
            t.join()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"CDS patient-view, one client, a call every 50 ms, {args.seconds:g} s per phase")
    print(f"{'phase':36s} {'calls':>6s} {'p50 ms':>8s} {'p90 ms':>8s} {'max ms':>8s}  answers")
    for name, ms, codes in (("alone", alone, alone_codes), (f"with {args.clients} {args.load} clients", loaded,
                                                               loaded_codes)):
        p50, p90, worst = _summary(ms)
        print(f"{name:36s} {len(ms):6d} {p50:8.1f} {p90:8.1f} {worst:8.1f}  {codes}")
    print(f"median with the {args.load} clients / median alone: {_summary(loaded)[0] / _summary(alone)[0]:.2f}x")
    print(f"{args.load} calls answered: {load_codes}")


if __name__ == "__main__":
    main()

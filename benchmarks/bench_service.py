"""Load test of the CDS Hooks patient-view service on loopback.

Starts ``leukos serve`` (one uvicorn process, authentication off, 127.0.0.1 only) and drives it with
50 concurrent asyncio + httpx clients for 30 s, each POSTing a realistic patient-view request (the
prefetch an EHR sends for example 01: Patient + searchset Bundles of ~25 Observations and the
Conditions). Reports throughput, p50/p99 latency and errors, and, as the baseline measured in the
same run, the same load against ``GET /api/health`` (the framework's floor), so the figure that
travels between machines is the ratio.

Usage: ``python benchmarks/bench_service.py [--seconds 30] [--clients 50] [--json]``.
Bounded: at most --seconds (≤ 120) per phase, loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request_body() -> dict:
    from tests.service.fhir_data import patient_view_request

    return patient_view_request("01-aml-leukostasis.yaml")


async def _load(url: str, method: str, body: dict | None, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.perf_counter() + seconds
    payload = json.dumps(body).encode() if body is not None else None
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
        async def worker() -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    r = await client.request(method, url, content=payload,
                                             headers={"Content-Type": "application/json"} if payload else None)
                    ok = r.status_code == 200 and (body is None or "cards" in r.json())
                    key = None if ok else f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                if key is None:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors[key] = errors.get(key, 0) + 1

        t_start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - t_start
    latencies.sort()

    def pct(p: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2) if latencies else float("nan")

    return {"requests_ok": len(latencies), "errors": sum(errors.values()), "error_kinds": errors,
            "seconds": round(elapsed, 2), "throughput_rps": round(len(latencies) / elapsed, 1),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "mean_ms": round(1000 * statistics.fmean(latencies), 2)
            if latencies else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--baseline-seconds", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    seconds = min(args.seconds, 120.0)
    port = _free_port()
    leukos = Path(sys.executable).with_name("leukos")
    audit = Path(tempfile.mkdtemp(prefix="leukos-bench-")) / "audit.jsonl"  # audit on, as deployed
    proc = subprocess.Popen([str(leukos), "serve", "--host", "127.0.0.1", "--port", str(port), "--dev"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "LEUKOS_AUDIT_LOG_PATH": str(audit)})
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise SystemExit("the server did not start")
        body = _request_body()
        warm = httpx.post(f"{base}/cds-services/leukos-patient-view", json=body, timeout=30)
        if warm.status_code != 200:
            raise SystemExit(f"patient-view answered {warm.status_code}: {warm.text[:300]}")
        baseline = asyncio.run(_load(f"{base}/api/health", "GET", None, args.clients, min(args.baseline_seconds, 60)))
        result = asyncio.run(_load(f"{base}/cds-services/leukos-patient-view", "POST", body, args.clients, seconds))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    out = {"clients": args.clients, "cards_per_call": len(warm.json()["cards"]),
           "request_bytes": len(json.dumps(body)), "patient_view": result, "baseline_health": baseline,
           "throughput_ratio_vs_health": round(result["throughput_rps"] / baseline["throughput_rps"], 3),
           "cpu_count": os.cpu_count()}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    pv, bl = result, baseline
    print(f"patient-view, {args.clients} clients, {pv['seconds']} s on loopback ({out['request_bytes']} B request, "
          f"{out['cards_per_call']} cards)")
    print(f"  throughput {pv['throughput_rps']} req/s   p50 {pv['p50_ms']} ms   p99 {pv['p99_ms']} ms   "
          f"errors {pv['errors']} {pv['error_kinds'] or ''}")
    print(f"baseline GET /api/health: {bl['throughput_rps']} req/s, p50 {bl['p50_ms']} ms, p99 {bl['p99_ms']} ms")
    print(f"patient-view throughput = {out['throughput_ratio_vs_health']} x the health endpoint's")


if __name__ == "__main__":
    main()

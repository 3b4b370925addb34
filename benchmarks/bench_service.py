"""Load benchmark of CDS Hooks patient-view: leukos against a bare FastAPI floor and HealthChain, one run.

Each service runs as one uvicorn worker on 127.0.0.1 with the same settings (asyncio loop, h11,
no access log), pinned to CPU 0 when ``taskset`` exists; the load generator
(benchmarks/service_peers/loadgen.py) runs in this process, pinned to CPU 1. The requests are the
same for all (benchmarks/service_peers/request.py: Patient + 22 lab Observations + empty Condition
and MedicationRequest Bundles, a fresh hookInstance per call), taken in turn from a cohort of
``--patients`` different patients (default 5,000: ids, times, birth dates and values differ; every
patient gets the same cards), as a busy EHR would send them. ``--patients 1`` repeats one patient. The floor answers it with a trivial
rule on the raw JSON (service_peers/trivial_rule.py); HealthChain answers with the same rule in
its own framework; leukos validates, imports, assesses and renders its cards, with the audit trail on
and authentication off (the peers have none). ``--auth`` adds a row for leukos as deployed, with
authentication on: each call carries a CDS client JWT (ES384, a new ``jti`` per call, minted before
each phase's clock starts), which the service verifies and records in its replay store.

Phases, per service in turn: ``--clients`` concurrent clients for ``--seconds``, then one client for
``--unloaded-seconds``. Reported: throughput, p50/p90/p99 latency, errors, and the figure that
travels between machines: leukos throughput / floor throughput, measured in the same run. Beside it,
the server's own CPU milliseconds per call under load (read from /proc, Linux only) and the same
ratio in CPU (floor CPU per call / service CPU per call). A server that uses its whole core gives
the same ratio both ways; when they differ, a server was not CPU-bound (waiting on its client, a
disk or a lock), which the throughput alone does not show. For leukos the event-loop thread (HTTP,
middleware, audit) is shown apart from the worker threads (the call's work).

Usage::

    python benchmarks/bench_service.py [--seconds 20] [--clients 50] [--healthchain-python /tmp/hc-venv/bin/python]
                                       [--auth] [--json]

HealthChain pins versions that conflict with leukos's: install it in its own venv
(``python -m venv /tmp/hc-venv && /tmp/hc-venv/bin/pip install healthchain==0.16.1 uvicorn``); without
``--healthchain-python`` its row is skipped. Loopback only; every phase is bounded (≤ 120 s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.service_peers.loadgen import run_load  # noqa: E402
from benchmarks.service_peers.request import cohort, patient_view_request  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(python: str, target: str, port: int, env: dict[str, str], factory: bool = False) -> subprocess.Popen:
    cmd = [python, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--loop", "asyncio", "--http", "h11", "--no-access-log", "--log-level", "warning", "--app-dir", str(REPO)]
    if factory:
        cmd.append("--factory")
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    return subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _post(url: str, body: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - loopback URL built here
        return json.loads(r.read())


def _wait(url: str, body: dict, proc: subprocess.Popen, client: _Client | None = None) -> int:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
        try:
            return len(_post(url, body, next(client.tokens(url, 1)) if client else None)["cards"])
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url}: the server did not start")


class _Client:
    """A CDS client with its own ES384 key, as CDS Hooks 2.0 "Trusting CDS Clients" has it: the JWKS
    file the service trusts, and fresh JWTs for an endpoint (a new ``jti`` each, valid 10 minutes)."""

    ISSUER = "https://bench-ehr.invalid"
    KID = "bench-1"

    def __init__(self, folder: Path):
        import jwt
        from cryptography.hazmat.primitives.asymmetric import ec

        self._jwt, self._key = jwt, ec.generate_private_key(ec.SECP384R1())
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self._key.public_key()))
        public.update({"kid": self.KID, "alg": "ES384", "use": "sig"})
        self.jwks_path = folder / "jwks.json"
        self.jwks_path.write_text(json.dumps({"keys": [public]}), encoding="utf-8")

    def tokens(self, url: str, n: int):
        """``n`` tokens for the endpoint ``url`` (its ``aud``: the service's public base URL + path)."""
        aud = "http://127.0.0.1" + urllib.parse.urlsplit(url).path  # leukos_app's LEUKOS_PUBLIC_BASE_URL
        now = int(time.time())
        return iter([self._jwt.encode({"iss": self.ISSUER, "sub": "bench", "aud": aud, "iat": now, "exp": now + 600,
                                       "jti": str(uuid.uuid4())}, self._key, algorithm="ES384",
                                      headers={"kid": self.KID, "typ": "JWT"}) for _ in range(n)])


_MAX_CALLS_PER_S = 900  # tokens minted per second of a phase: above any rate leukos reached here


def _cpu_ms(loaded: dict) -> float | None:
    """The server's CPU ms per call under load, when /proc could tell."""
    split = loaded.get("server_cpu_per_call")
    return split["total_ms"] if split else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--unloaded-seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--patients", type=int, default=5000, help="distinct patients sent in turn (1 to 20000)")
    ap.add_argument("--healthchain-python", default=None, help="python of a venv with healthchain + uvicorn")
    ap.add_argument("--auth", action="store_true", help="add leukos with authentication on (a JWT per call)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    seconds, unloaded = min(args.seconds, 120.0), min(args.unloaded_seconds, 120.0)
    patients = max(1, min(args.patients, 20_000))
    bodies = [patient_view_request()] if patients == 1 else cohort(patients)
    body = bodies[0]
    state = Path(tempfile.mkdtemp(prefix="leukos-bench-"))
    services = [("leukos", sys.executable, "benchmarks.service_peers.leukos_app:app", True,
                 "/cds-services/leukos-patient-view", None),
                ("floor (bare FastAPI)", sys.executable, "benchmarks.service_peers.floor_app:app", False,
                 "/cds-services/bench-wbc", None)]
    if args.healthchain_python:
        services.append(("HealthChain", args.healthchain_python, "benchmarks.service_peers.healthchain_app:app", False,
                         "/cds/cds-services/bench-wbc", None))
    if args.auth:  # leukos again, with a CDS client to authenticate: its own audit trail and replay store
        auth_state = Path(tempfile.mkdtemp(prefix="leukos-bench-auth-"))
        services.append(("leukos (auth on)", *services[0][1:5], _Client(auth_state)))
    procs: list[subprocess.Popen] = []
    rows = []
    if hasattr(os, "sched_setaffinity") and shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    try:
        targets = []
        for name, python, target, factory, path, auth in services:
            port = _free_port()
            env = {"LEUKOS_BENCH_DIR": str(state)} if auth is None else {
                "LEUKOS_BENCH_DIR": str(auth_state), "LEUKOS_BENCH_JWKS": str(auth.jwks_path),
                "LEUKOS_BENCH_ISSUER": auth.ISSUER}
            proc = _start(python, target, port, env, factory)
            procs.append(proc)
            url = f"http://127.0.0.1:{port}{path}"
            targets.append((name, url, _wait(url, body, proc, auth), proc.pid, auth))
        for name, url, cards, pid, auth in targets:
            tokens = auth.tokens(url, int(_MAX_CALLS_PER_S * (seconds + 3))) if auth else None
            loaded = run_load(url, bodies, clients=args.clients, seconds=seconds, expect_cards=cards, server_pid=pid,
                              tokens=tokens)
            time.sleep(2)
            tokens = auth.tokens(url, int(_MAX_CALLS_PER_S * (unloaded + 3))) if auth else None
            single = run_load(url, bodies, clients=1, seconds=unloaded, expect_cards=cards, tokens=tokens)
            rows.append({"service": name, "cards": cards, "loaded": loaded, "unloaded": single})
            time.sleep(2)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    floor_row = next(r for r in rows if r["service"].startswith("floor"))["loaded"]
    floor, floor_cpu = floor_row["throughput_rps"], _cpu_ms(floor_row)
    out = {"clients": args.clients, "seconds": seconds, "patients": patients,
           "request_bytes": len(json.dumps(body, separators=(",", ":"))),
           "cpu_count": os.cpu_count(), "load_average_at_end": os.getloadavg(), "rows": rows,
           "ratio_to_floor": {r["service"]: round(r["loaded"]["throughput_rps"] / floor, 3) for r in rows},
           "cpu_ratio_to_floor": {r["service"]: round(floor_cpu / _cpu_ms(r["loaded"]), 3)
                                  for r in rows if floor_cpu and _cpu_ms(r["loaded"])}}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"patient-view, {args.clients} clients x {seconds:g} s, then 1 client x {unloaded:g} s, loopback, one worker each; "
          f"{patients} patient(s) in turn, request ~{out['request_bytes']} B")
    print(f"{'service':<22}{'req/s':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'errors':>8}{'x floor':>9}"
          f"{'  unloaded p50 ms':>18}{'  CPU ms/call':>14}{'  x floor (CPU)':>16}")
    for r in rows:
        ld, un = r["loaded"], r["unloaded"]
        cpu, cpu_ratio = _cpu_ms(ld), out["cpu_ratio_to_floor"].get(r["service"])
        print(f"{r['service']:<22}{ld['throughput_rps']:>8}{ld['p50_ms']:>9}{ld['p90_ms']:>9}{ld['p99_ms']:>9}"
              f"{ld['errors']:>8}{out['ratio_to_floor'][r['service']]:>9}{un['p50_ms']:>18}"
              f"{'n/a' if cpu is None else cpu:>14}{'n/a' if cpu_ratio is None else cpu_ratio:>16}")
    for r in rows:
        split = r["loaded"].get("server_cpu_per_call")
        if split and split["other_threads_ms"] > 0:
            print(f"{r['service']}: CPU ms per call under load: event loop {split['event_loop_ms']}, "
                  f"worker threads {split['other_threads_ms']}")
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in out['load_average_at_end'])}")


if __name__ == "__main__":
    main()

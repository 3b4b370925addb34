"""Where one CDS patient-view call spends its CPU: a per-stage table, in process, no sockets.

The benchmark's leukos app (service_peers/leukos_app.py: audit trail on, authentication off) and
the floor app (service_peers/floor_app.py) answer the benchmark requests (service_peers/request.py:
a different patient of its cohort and a fresh hookInstance per call; the calls measured are
patients not seen in the warm-up, which is long enough to fill the cache behind card links, as in a
server that has been up a while) through the same minimal ASGI driver, one call at a time. The worker
pool's hop is replaced by a direct call so that every stage runs in this thread and is counted;
each stage is timed with the process CPU clock (a shared machine's other processes do not count),
by wrapping the functions the route calls. Reported: CPU ms per call of each stage, the rest
(framework, middleware, audit bookkeeping around the stages), the total, and the total as a
multiple of the floor's measured in the same run: the figure that travels between machines.
HTTP parsing by the server (uvicorn/h11) is not in either total.

    python benchmarks/profile_patient_view.py [--calls 400] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.service_peers.request import patient_view_request  # noqa: E402

PATH = "/cds-services/leukos-patient-view"
CLOCK = time.process_time


async def _call(app: Any, raw: bytes) -> int:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": PATH, "raw_path": PATH.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(raw)).encode())],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # never: the routes read the body once
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(msg: dict[str, Any]) -> None:
        nonlocal status
        if msg["type"] == "http.response.start":
            status = msg["status"]

    await app(scope, receive, send)
    return status


def _bodies(n: int, first: int = 0) -> list[bytes]:
    """Patients ``first`` .. ``first + n - 1`` of the cohort, each with a fresh hookInstance."""
    return [json.dumps({**patient_view_request(p), "hookInstance": str(uuid.uuid4())}, separators=(",", ":")).encode()
            for p in range(first, first + n)]


def _per_call_ms(app: Any, bodies: list[bytes]) -> float:
    async def run() -> float:
        t0 = CLOCK()
        for raw in bodies:
            status = await _call(app, raw)
            if status != 200:
                raise SystemExit(f"HTTP {status} from {app!r}")
        return (CLOCK() - t0) / len(bodies) * 1000
    return asyncio.run(run())


STAGES = [  # (label, module, attribute): functions the patient-view route calls, in order
    ("parse + validate the request (JSON, CdsRequest)", "leukos.service.cds.routes", "_parse_call"),
    ("wrong-patient check", "leukos.service.cds.routes", "check_prefetch_patient"),
    ("prefetch -> Bundle", "leukos.service.cds.routes", "bundle_from_prefetch"),
    ("FHIR import (validation, units, case)", "leukos.interop.fhir", "case_from_fhir"),
    ("assess (rules; differential ranked, not explained)", None, "assess"),
    ("  of which the differential", "leukos.rules.engine", "differential_rules.ranked"),
    ("    of which explaining its entries", "leukos.rules.differential", "entry"),
    ("page link (keep the request)", None, "pages.put"),
    ("finding views", "leukos.service.cds.routes", "finding_views"),
    ("cards (render)", "leukos.service.cds.routes", "cards_for"),
    ("follow-up registry card", "leukos.service.registry_api", "registry_cards"),
    ("response JSON", "leukos.service.cds.models", "CdsResponse.json_bytes"),
    ("audit record (hash chain, write)", None, "audit.append"),
]


def _instrument(state: Any) -> dict[str, float]:
    acc: dict[str, float] = defaultdict(float)

    def timed(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kw: Any) -> Any:
            t0 = CLOCK()
            try:
                return fn(*args, **kw)
            finally:
                acc[label] += CLOCK() - t0
        return wrapper

    for label, module, attr in STAGES:
        if module is None:  # an attribute of the service state's objects (instances: set on the object)
            owner_name, _, name = attr.rpartition(".")
            owner = state.engines if not owner_name else getattr(state, owner_name)
            object.__setattr__(owner, name, timed(label, getattr(owner, name)))
            continue
        owner = importlib.import_module(module)
        *path, name = attr.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, name, timed(label, getattr(owner, name)))
    # case_from_fhir is imported inside the route's function: the module attribute above is what it finds

    from leukos.service.workers import WorkPool

    async def inline(self: WorkPool, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)

    WorkPool.run = inline  # type: ignore[method-assign]
    return acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--warm", type=int, default=None,
                    help="warm-up calls (default: enough to fill the cache behind card links)")
    args = ap.parse_args()
    os.environ.setdefault("LEUKOS_BENCH_DIR", tempfile.mkdtemp(prefix="leukos-profile-"))
    import logging

    logging.disable(logging.WARNING)  # the start-up banner of authentication being off
    from benchmarks.service_peers import floor_app, leukos_app

    leukos = leukos_app.app()
    acc = _instrument(leukos.state.leukos)
    warm_n = args.warm if args.warm is not None else leukos.state.leukos.pages.size + 100  # links cache full
    warm, bodies = _bodies(warm_n), _bodies(args.calls, first=warm_n)
    _per_call_ms(floor_app.app, warm)
    floor = _per_call_ms(floor_app.app, bodies)
    _per_call_ms(leukos, warm)
    acc.clear()
    total = _per_call_ms(leukos, bodies)
    rows = [(label, acc[label] / args.calls * 1000) for label, _, _ in STAGES]
    counted = sum(ms for label, ms in rows if not label.startswith("  "))
    rows.append(("framework, middleware, the rest", total - counted))
    if args.json:
        print(json.dumps({"calls": args.calls, "stages_ms": dict(rows), "total_ms": total, "floor_ms": floor,
                          "x_floor": total / floor}, indent=2))
        return
    print(f"patient-view, {args.calls} calls in process, CPU ms per call (pool hop inlined, no HTTP server)")
    for label, ms in rows:
        print(f"  {label:50s} {ms:7.3f}")
    print(f"  {'total':50s} {total:7.3f}")
    print(f"  {'floor (bare FastAPI, trivial rule)':50s} {floor:7.3f}")
    print(f"  {'leukos / floor':50s} {total / floor:7.1f}x")


if __name__ == "__main__":
    main()

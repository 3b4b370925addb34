"""Crash safety: SIGKILL the server while concurrent clients write; after a restart every
acknowledged write is there and the database is consistent (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from .pg import free_port
from .records import PATIENT, iso, procedure

SRC = Path(__file__).resolve().parents[2] / "src"
TOKEN = "kill-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WRITERS = 6


def _start(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-c", "from leukos.cli.main import run; run()", "serve", "--host",
                                 "127.0.0.1", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not start")


def _writer(base: str, wid: int, stop: threading.Event, acked_labs: list, acked_procs: list, cut: list) -> None:
    with httpx.Client(base_url=base, headers=AUTH, timeout=10) as c:
        k = 0
        while not stop.is_set():
            k += 1
            try:
                if k % 4 == 0:
                    r = c.post("/api/patients/LK-0001/procedures", json=procedure(day=-(k % 30), pre=200 + wid, post=150 + k % 40))
                    if r.status_code == 201:
                        acked_procs.append((r.json()["id"], 200 + wid, 150 + k % 40))
                else:
                    ref = f"Observation/w{wid}-{k}"
                    r = c.post("/api/patients/LK-0001/labs", json=[
                        {"analyte": "wbc", "value": 100 + k % 50, "taken_at": iso(-k / 10), "source": "fhir", "source_ref": ref}])
                    if r.status_code == 201 and r.json()["added"] == 1:
                        acked_labs.append(ref)
            except httpx.HTTPError:
                cut.append(wid)  # the server died under this write: never acknowledged
                return


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_during_concurrent_writes_loses_no_acknowledged_write(backend, tmp_path, request):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEUKOS_")}
    env.update({"PYTHONPATH": os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]), "LEUKOS_API_TOKEN": TOKEN,
                "LEUKOS_DATA_DIR": str(tmp_path / "data"), "LEUKOS_AUDIT_LOG_PATH": str(tmp_path / "audit.jsonl")})
    if backend == "postgresql":
        env["LEUKOS_DATABASE_URL"] = request.getfixturevalue("pg_url")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env["LEUKOS_PUBLIC_BASE_URL"] = base  # required outside --dev (the JWT audience)
    log = tmp_path / "server.log"
    server = _start(env, port, log)
    try:
        assert httpx.post(f"{base}/api/patients", json=PATIENT, headers=AUTH, timeout=30).status_code == 201
        stop = threading.Event()
        labs: list[str] = []
        procs: list[tuple[int, int, int]] = []
        cut: list[int] = []
        threads = [threading.Thread(target=_writer, args=(base, i, stop, labs, procs, cut)) for i in range(WRITERS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(labs) + len(procs) < 150 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(server.pid, signal.SIGKILL)  # mid-write: the writers are still sending
        server.wait(10)
        stop.set()
        for t in threads:
            t.join(15)
        assert len(labs) >= 50 and procs, (len(labs), len(procs))
        assert cut, "no write was in flight when the server was killed"

        server = _start(env, port, log)
        t = httpx.get(f"{base}/api/patients/LK-0001", headers=AUTH, timeout=30).json()
        stored_refs = {r.get("id") for r in t["labs"]}
        assert stored_refs  # the timeline came back
        export = httpx.get(f"{base}/api/patients/LK-0001/fhir", headers=AUTH, timeout=30)
        assert export.status_code == 200
        by_id = {p["id"]: p for p in t["procedures"]}
        for pid, pre, post in procs:
            assert by_id[pid]["pre_wbc"]["value"] == pre and by_id[pid]["post_wbc"]["value"] == post
        # every stored procedure is whole: its counts and adverse event came with it (one transaction)
        for p in t["procedures"]:
            assert p["pre_wbc"] and p["post_wbc"] and p["pre_platelets"] and len(p["adverse_events"]) == 1
        # every acknowledged lab: a repeat of its source id is recognised as already present
        again = [{"analyte": "wbc", "value": 1, "taken_at": iso(0), "source": "fhir", "source_ref": ref} for ref in labs]
        r = httpx.post(f"{base}/api/patients/LK-0001/labs", json=again, headers=AUTH, timeout=60).json()
        assert r == {"added": 0, "already_present": len(labs)}
        print(f"\n{backend}: {len(labs)} lab writes and {len(procs)} procedure writes acknowledged before SIGKILL, {len(cut)} in flight cut off; "
              f"all acknowledged present after restart; {len(t['procedures'])} procedures stored, all whole")
    finally:
        server.terminate()
        server.wait(15)
    if backend == "sqlite":
        import sqlite3

        con = sqlite3.connect(tmp_path / "data" / "registry.sqlite3")
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        orphans = con.execute("SELECT count(*) FROM lab_results WHERE procedure_id IS NOT NULL AND procedure_id NOT IN "
                              "(SELECT id FROM procedures)").fetchone()[0]
        assert orphans == 0
        con.close()

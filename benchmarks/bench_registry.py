"""Benchmark: the follow-up registry on SQLite (issue 13 goals).

* record a procedure (with its counts and an adverse event) for a patient who has 1,000 lab results
  and 20 procedures: p95 < 50 ms;
* read that patient's timeline: p95 < 50 ms;
* the ward list of 10,000 patients, paginated (50 per page, random pages): p95 < 100 ms.

Each is also reported as a ratio to a baseline measured in the same run on the same database: one
``SELECT 1`` round trip through the same engine (what any registry call costs at least). The
per-patient follow-up model (predicted vs observed, update, next session) is timed too, for
information: computed (a Monte Carlo computation) and read again (cached by the exact course).

    python benchmarks/bench_registry.py [--repeat N] [--patients N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, text

from leukos.knowledge import load_knowledge
from leukos.registry import RegistrySettings, open_registry
from leukos.registry.changes import Actor
from leukos.registry.inputs import LabIn, PatientIn, ProcedureIn
from leukos.registry.models import LabResult, Patient

T0 = dt.datetime(2026, 1, 1, 8, tzinfo=dt.UTC)


def _proc(k: int) -> ProcedureIn:
    s = T0 + dt.timedelta(days=k)
    return ProcedureIn.model_validate({
        "started_at": s, "ended_at": s + dt.timedelta(hours=3), "access": "femoral", "volume_processed_l": 9.6,
        "inlet_ac_ratio": 12, "calcium_given_mmol": 9, "calcium_route": "iv", "product_volume_ml": 400,
        "pre_wbc": {"value": 250 - k % 50, "taken_at": s - dt.timedelta(minutes=30)},
        "post_wbc": {"value": 190 - k % 50, "taken_at": s + dt.timedelta(hours=3, minutes=10)},
        "ionized_calcium": [{"value": 1.05, "taken_at": s + dt.timedelta(hours=1)}],
        "adverse_events": [{"type": "paraesthesia", "scale": "WAA", "severity": "mild"}], "recorded_by": "bench"})


def _pcts(times: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(times, n=20) if len(times) > 1 else [times[0]] * 19
    return statistics.median(times) * 1e3, q[18] * 1e3


def _timed(fn, repeat: int) -> list[float]:
    out = []
    for i in range(repeat):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--patients", type=int, default=10_000)
    args = ap.parse_args()
    kb = load_knowledge()
    with tempfile.TemporaryDirectory() as d:
        reg = open_registry(RegistrySettings(data_dir=Path(d)), kb).acting_as(Actor("benchmark", "cli"))
        # the busy patient: 1,000 results (5 analytes x 200 times) and 20 procedures
        for name in ("BENCH-READ", "BENCH-WRITE"):
            reg.add_patient(PatientIn(pseudonym=name, sex="male", age_years=60, weight_kg=75, height_cm=178, diagnosis="AML"))
            labs = [LabIn(analyte=a, value=v, taken_at=T0 + dt.timedelta(hours=3 * i), source="fhir",
                          source_ref=f"Observation/{name}-{a}-{i}")
                    for i in range(200) for a, v in (("wbc", 150.0), ("platelets", 60.0), ("hemoglobin", 8.5),
                                                     ("ionized_calcium", 1.1), ("potassium", 4.2))]
            reg.add_labs(name, labs)
            for k in range(20):
                reg.record_procedure(name, _proc(k))
        # the ward: patients with a count each, inserted in bulk (set-up, not measured)
        now = dt.datetime.now(dt.UTC)
        with reg.engine.begin() as c:
            c.execute(insert(Patient), [{"pseudonym": f"W{i:06d}", "active": True, "created_at": now, "version": 1,
                                         "ward": f"H{i % 8}", "weight_kg": 70.0} for i in range(args.patients)])
            ids = [r[0] for r in c.execute(text("SELECT id FROM patients WHERE pseudonym LIKE 'W%'"))]
            c.execute(insert(LabResult), [{"patient_id": pid, "analyte": "wbc", "value": 120.0 + pid % 80, "unit": "10*9/L",
                                           "given": "x", "taken_at": now - dt.timedelta(hours=pid % 48), "source": "typed",
                                           "recorded_at": now} for pid in ids])
        n_lab = len(reg.timeline("BENCH-READ")["labs"])

        def baseline(_):
            with reg.engine.connect() as c:
                c.execute(text("SELECT 1")).scalar()

        for _ in range(20):
            baseline(0)
        base = _timed(baseline, args.repeat)
        rec = _timed(lambda i: reg.record_procedure("BENCH-WRITE", _proc(20 + i)), args.repeat)
        read = _timed(lambda i: reg.timeline("BENCH-READ"), args.repeat)
        pages = max(1, args.patients // 50)
        rng = random.Random(1)
        ward = _timed(lambda i: reg.ward_list(page=rng.randint(1, pages), per_page=50), args.repeat)
        from leukos.followup import course_model
        from leukos.registry.store import course_inputs

        facts, labs_, sess = course_inputs(reg.timeline("BENCH-READ"))
        model = _timed(lambda i: course_model(facts, labs_, sess, kb=kb), 5)
        reg.follow_up("BENCH-READ")
        fu = _timed(lambda i: reg.follow_up("BENCH-READ"), max(10, args.repeat // 10))
        print(f"SQLite {reg.engine.url.database}; busy patient: {n_lab} lab results incl. counts, 20 procedures; "
              f"ward: {args.patients} patients; {args.repeat} repeats")
        b50, _ = _pcts(base)
        print(f"{'operation':44} {'median ms':>10} {'p95 ms':>8} {'goal':>10} {'x SELECT 1':>11}")
        print(f"{'baseline: SELECT 1 round trip':44} {b50:10.3f} {_pcts(base)[1]:8.3f} {'':>10} {1.0:11.1f}")
        for name, ts, goal in (("record a procedure (counts, AE, iCa)", rec, 50), ("read the timeline", read, 50),
                               ("ward list page (50 of 10,000)", ward, 100),
                               ("follow-up model, 20 sessions (computed)", model, None),
                               ("follow-up read (model cached, flags fresh)", fu, None)):
            m, p95 = _pcts(ts)
            ok = "" if goal is None else (f"< {goal} {'ok' if p95 < goal else 'MISSED'}")
            print(f"{name:44} {m:10.3f} {p95:8.3f} {ok:>10} {m / b50:11.1f}")
        reg.engine.dispose()


if __name__ == "__main__":
    main()

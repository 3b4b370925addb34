"""Benchmark: `assess` per example case, in process, and the same with FHIR Bundle parsing.

Speed is reported as absolute medians (for the issue's goals: < 2 ms per native case, < 10 ms
per 50-Observation Bundle) and as a ratio against a baseline measured in the same run: parsing
the same case text with json.loads, which no implementation can beat.

    python benchmarks/bench_assess.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from leukos.interop.case_format import load_case_text, parse_document
from leukos.knowledge import load_knowledge
from leukos.rules import assess

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=300)
    args = ap.parse_args()
    kb = load_knowledge()
    rows = []
    for path in sorted(EXAMPLES.glob("*")):
        if path.suffix not in (".yaml", ".yml", ".json"):
            continue
        raw = path.read_bytes()
        doc = parse_document(raw)
        case = load_case_text(raw, kb)  # warm caches (unit factors, schema validator)
        assess(case, kb)
        as_json = json.dumps(doc)
        t_assess = _median_time(lambda c=case: assess(c, kb), args.repeat)
        t_load = _median_time(lambda t=as_json: load_case_text(t, kb), args.repeat)
        t_json = _median_time(lambda t=as_json: json.loads(t), args.repeat)
        fhir = isinstance(doc, dict) and "resourceType" in doc
        rows.append((path.name, fhir, t_assess, t_load, t_json))
    print(f"{'case':34} {'kind':6} {'assess ms':>10} {'load ms':>9} {'load+assess ms':>15} {'x json.loads':>13}")
    for name, fhir, ta, tl, tj in rows:
        print(f"{name:34} {'FHIR' if fhir else 'case':6} {ta * 1e3:10.3f} {tl * 1e3:9.3f} {(ta + tl) * 1e3:15.3f} {(ta + tl) / tj:13.1f}")
    native = [ta for _, fhir, ta, _, _ in rows if not fhir]
    print(f"\nmedian assess per native case: {statistics.median(native) * 1e3:.3f} ms (goal < 2 ms)")
    bundles = [(ta + tl) for _, fhir, ta, tl, _ in rows if fhir]
    if bundles:
        print(f"median FHIR Bundle parse + assess: {statistics.median(bundles) * 1e3:.3f} ms (goal < 10 ms per 50-Observation Bundle)")


if __name__ == "__main__":
    main()

"""Benchmark: the differential per example case, against the rest of `assess` in the same run.

The baseline is `assess` with the differential replaced by an empty one (the other rules), so
the ratio says how much the differential (including the what-if recomputation behind
``would_change``) adds to an assessment. CPU time (process_time) is used because the machine
may be shared.

    python benchmarks/bench_differential.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from leukos.interop.case_format import load_case_text
from leukos.knowledge import load_knowledge
from leukos.rules import assess
from leukos.rules import differential as differential_rules

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    kb = load_knowledge()
    cases = []
    for path in sorted(EXAMPLES.glob("*")):
        if path.suffix in (".yaml", ".yml", ".json"):
            case = load_case_text(path.read_bytes(), kb)
            if case.source == "case":
                cases.append((path.name, case))
    real = differential_rules.differential

    def all_cases(fn):
        return lambda: [fn(c) for _, c in cases]

    real(cases[0][1], kb)  # warm the rules cache
    t_diff = _median_time(all_cases(lambda c: real(c, kb)), args.repeat) / len(cases)
    t_full = _median_time(all_cases(lambda c: assess(c, kb)), args.repeat) / len(cases)
    differential_rules.differential = lambda c, kb: ()
    try:
        t_rest = _median_time(all_cases(lambda c: assess(c, kb)), args.repeat) / len(cases)
    finally:
        differential_rules.differential = real
    print(f"cases: {len(cases)}")
    print(f"differential      {t_diff * 1e3:8.3f} ms/case")
    print(f"assess (all)      {t_full * 1e3:8.3f} ms/case")
    print(f"assess without it {t_rest * 1e3:8.3f} ms/case (baseline)")
    print(f"differential / baseline: {t_diff / t_rest:.1f}x")


if __name__ == "__main__":
    main()

"""CPU cost of ``assess`` per call, full and ranked-only, in process.

Cases: every published validation case, every bundled example and the case the CDS benchmark
request imports (the same set as tests/test_assess_golden.py), loaded once; then ``assess`` is run
over all of them ``--rounds`` times under the bundled knowledge base, timed with the process CPU
clock. Reported: ms per call (mean over the cases, fastest pass: the least disturbed by other
processes), full and ranked-only, and for the benchmark case alone. ``--profile full|ranked`` prints the top of a cProfile of that mode instead.

    python benchmarks/profile_assess.py [--rounds 20] [--profile ranked] [--json]
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import json
import pstats
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.test_assess_golden import cases, load  # noqa: E402

from leukos.knowledge import load_knowledge  # noqa: E402
from leukos.rules import assess  # noqa: E402

CLOCK = time.process_time


def _per_call_ms(fn, items, rounds: int) -> float:
    """The fastest of ``rounds`` passes over ``items``, per call (the least disturbed by a busy machine).

    Each pass assesses fresh copies of the cases (a service imports a new case per request: nothing
    a case memoises carries over); the knowledge base is warm, as in a running service."""
    fn(dataclasses.replace(items[0]))  # warm: per-kb caches filled
    best = float("inf")
    for _ in range(rounds):
        fresh = [dataclasses.replace(it) for it in items]
        t0 = CLOCK()
        for it in fresh:
            fn(it)
        best = min(best, CLOCK() - t0)
    return best / len(items) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--profile", choices=("full", "ranked"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    kb = load_knowledge()
    all_cases = [load(kind, data, kb) for _, kind, data in cases()]
    bench = [all_cases[-1]]
    full = lambda c: assess(c, kb)  # noqa: E731
    ranked = lambda c: assess(c, kb, explain_differential=False)  # noqa: E731
    if args.profile:
        fn = full if args.profile == "full" else ranked
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.rounds):
            for c in all_cases:
                fn(dataclasses.replace(c))
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(40)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(50)
        return
    res = {
        "cases": len(all_cases),
        "full_ms_all": _per_call_ms(full, all_cases, args.rounds),
        "ranked_ms_all": _per_call_ms(ranked, all_cases, args.rounds),
        "full_ms_bench_case": _per_call_ms(full, bench * 20, args.rounds),
        "ranked_ms_bench_case": _per_call_ms(ranked, bench * 20, args.rounds),
    }
    if args.json:
        print(json.dumps(res))
        return
    print(f"assess CPU ms per call ({res['cases']} cases, {args.rounds} rounds)")
    print(f"  all cases       full {res['full_ms_all']:.3f}   ranked-only {res['ranked_ms_all']:.3f}")
    print(f"  benchmark case  full {res['full_ms_bench_case']:.3f}   ranked-only {res['ranked_ms_bench_case']:.3f}")


if __name__ == "__main__":
    main()

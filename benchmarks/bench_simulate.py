"""Benchmark: 10,000 Monte Carlo draws of one 2-blood-volume leukapheresis plus 24 h after it.

Vectorised fixed-step RK4 across draws (leukos.apheresis.simulate) against a baseline of one
``scipy.integrate.solve_ivp`` call per draw (RK45, rtol 1e-6), measured in the same run on a
subset of draws and extrapolated. Single core: BLAS/OpenMP threads are pinned to 1.

    python benchmarks/bench_simulate.py [--draws 10000] [--baseline-draws 200]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=10_000)
    ap.add_argument("--baseline-draws", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    from scipy.integrate import solve_ivp

    from leukos.apheresis import PlanOptions, plan_leukapheresis, sample_params, simulate
    from leukos.apheresis import model as m
    from leukos.interop.case_format import load_case_text
    from leukos.knowledge import load_knowledge

    kb = load_knowledge()
    case = load_case_text((REPO / "examples" / "01-aml-leukostasis.yaml").read_bytes(), kb)
    plan = plan_leukapheresis(case, PlanOptions(blood_volumes=2.0, draws=50), kb)
    s, pat = plan.settings, plan.patient
    t_end = s.duration_min + 24 * 60
    times = np.linspace(0.0, t_end, 97)
    params = sample_params(kb, diagnosis="AML", weight_kg=s.weight_kg, n=args.draws, seed=1)

    # vectorised: all draws at once
    simulate(plan, params.take(np.arange(100)), times)  # warm-up
    best = np.inf
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        tr = simulate(plan, params, times)
        best = min(best, time.perf_counter() - t0)

    # baseline: one solve_ivp call per draw (piecewise RHS: procedure, then 24 h with flows off)
    sess = s.session(0.0)
    on = (sess.q_wb_l_per_min, sess.q_ac_l_per_min, sess.q_collect_l_per_min, sess.citrate_mmol_per_min,
          sess.calcium_mmol_per_min)
    off = (0.0,) * 5
    nb = min(args.baseline_draws, args.draws)
    base_post = np.empty(nb)
    t0 = time.perf_counter()
    for i in range(nb):
        pa = params.take(np.array([i]))
        k_in = 1.0 / (pa.refill_tau_min * (1 + pa.pool_ratio))
        k_out = pa.pool_ratio * k_in
        y0 = m.initial_state(pa, pat, 1)[:, 0]

        def f(t, y, pa=pa, k_in=k_in, k_out=k_out):
            return m.rhs(y.reshape(-1, 1), pa, pat, on if t < sess.end_min else off, k_in, k_out)[:, 0]

        sol = solve_ivp(f, (0.0, t_end), y0, t_eval=times, rtol=1e-6, atol=1e-6)
        base_post[i] = sol.y[m.NB, -1] / sol.y[m.VOL, -1]
    base_subset = time.perf_counter() - t0
    base_full = base_subset * args.draws / nb

    vec_post = tr.wbc_10e9_per_l[:nb, -1]
    out = {
        "benchmark": "10k-draw Monte Carlo, 2 TBV leukapheresis + 24 h",
        "draws": args.draws, "output_times": len(times), "procedure_min": round(s.duration_min, 1),
        "vectorised_s": round(best, 4), "vectorised_repeats": args.repeats,
        "baseline_draws_timed": nb, "baseline_subset_s": round(base_subset, 3),
        "baseline_extrapolated_s": round(base_full, 2),
        "speedup": round(base_full / best, 1),
        "max_rel_diff_24h_wbc_vs_solve_ivp": float(np.max(np.abs(vec_post - base_post) / base_post)),
        "goal": "speed-up >= 50x and < 0.5 s on one core",
        "met": bool(base_full / best >= 50 and best < 0.5),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

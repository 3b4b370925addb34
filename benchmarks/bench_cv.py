"""Benchmark: the full leave-one-source-out validation (`leukos calibrate --cv`).

Times ``validate_all`` (WBC: four structures; platelets and CE: three each; the band sensitivity
and the centre candidates; 4000 Monte Carlo draws per prediction) against a baseline measured in the same run: one fit of the chosen WBC
model on all rows plus its predictions for every row (what a single, non-validated calibration
costs). Goal: the whole validation well under a minute on 2 cores.

    python benchmarks/bench_cv.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "src" / "leukos" / "knowledge" / "data" / "apheresis"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from leukos.apheresis.outcome import fit_fall_model, predict_fall
    from leukos.apheresis.outcome_data import read_outcome_rows
    from leukos.apheresis.validate import validate_all
    from leukos.knowledge import load_knowledge

    kb = load_knowledge()
    tables = {k: list(csv.DictReader((DATA / f).read_text("utf-8").splitlines()))
              for k, f in (("calibration", "leukapheresis_calibration.csv"), ("more", "leukapheresis_outcomes_more.csv"),
                           ("yields", "collection_yields.csv"))}
    data = read_outcome_rows(kb, tables)

    def single():
        fit = fit_fall_model(data.wbc, structure="pooled", prior_scale=0.5, count_reference=250)
        for r in data.wbc:
            predict_fall(fit, r)

    best_cv = best_one = float("inf")
    res = None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        res = validate_all(kb, data)
        best_cv = min(best_cv, time.perf_counter() - t0)
        t0 = time.perf_counter()
        single()
        best_one = min(best_one, time.perf_counter() - t0)
    wbc = res["wbc"][res["chosen"]["wbc"]].summary
    print(json.dumps({
        "benchmark": "leave-one-source-out validation (WBC, platelets, collection efficiency)",
        "loso_s": round(best_cv, 3), "single_fit_and_predict_s": round(best_one, 3),
        "ratio_loso_to_single": round(best_cv / best_one, 1),
        "wbc_model_mae": wbc["model"]["mae_pct_points"], "wbc_best_constant_mae": min(
            wbc[m]["mae_pct_points"] for m in ("constant_35", "training_mean", "training_median", "asfa_45")),
        "goal": "LOSO < 60 s", "met": best_cv < 60.0,
    }, indent=2))


if __name__ == "__main__":
    main()

"""Reproducible calibration of the leukapheresis model (issue 4).

    python scripts/calibrate.py [--data PATH] [--draws N] [--write]

Reads ``src/leukos/knowledge/data/apheresis/leukapheresis_calibration.csv`` (the packaged data), fits the population priors (``leukos.apheresis.calibrate``), prints the fit
per row, and with ``--write`` stores the values and the fit in
``src/leukos/knowledge/data/rules/apheresis_calibration.toml`` so planning needs no fitting at run time.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / "src" / "leukos" / "knowledge" / "data" / "apheresis" / "leukapheresis_calibration.csv"
TARGET = REPO / "src" / "leukos" / "knowledge" / "data" / "rules" / "apheresis_calibration.toml"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--draws", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--write", action="store_true", help="write the fitted values into the knowledge data")
    ap.add_argument("--out", type=Path, default=TARGET)
    args = ap.parse_args(argv)
    from leukos.apheresis.calibrate import calibrate, calibration_toml
    from leukos.knowledge import load_knowledge

    raw = args.data.read_bytes()
    rows = list(csv.DictReader(raw.decode("utf-8").splitlines()))
    res = calibrate(load_knowledge(), rows, draws=args.draws, seed=args.seed)
    print(json.dumps({"params": res.params, "rows": res.rows, "platelets": res.platelet_rows, "citrate": res.citrate},
                     indent=1, default=str))
    if args.write:
        args.out.write_text(calibration_toml(res, data_sha256=hashlib.sha256(raw).hexdigest()), "utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

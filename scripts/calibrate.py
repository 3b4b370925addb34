"""Reproducible calibration and validation of the leukapheresis models (issues 4 and 10).

    python scripts/calibrate.py [--cv] [--write] [--data CSV] [--more-data CSV] [--yields-data CSV]

A thin wrapper around ``leukos calibrate``: reads the published data bundled in
``src/leukos/knowledge/data/apheresis``, fits the outcome model (validated leave-one-source-out with
``--cv``) and the citrate slope, and with ``--write`` stores them in
``src/leukos/knowledge/data/rules/apheresis_outcome_fit.toml`` and ``apheresis_calibration.toml``.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from leukos.cli.main import app, register

    register()
    try:
        app(["calibrate", *(sys.argv[1:] if argv is None else argv)], standalone_mode=False)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

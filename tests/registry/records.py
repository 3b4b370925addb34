"""Procedure records of the tests (plain dicts, as the API and the CLI receive them)."""

from __future__ import annotations

import datetime as dt
from typing import Any

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


def iso(hours: float) -> str:
    return (T0 + dt.timedelta(hours=hours)).isoformat()


def procedure(day: int = 0, pre: float | None = 250, post: float | None = 195, **over: Any) -> dict[str, Any]:
    h = 24 * day
    rec: dict[str, Any] = {
        "started_at": iso(h), "ended_at": iso(h + 3), "device": "spectra_optia_wbcd", "protocol": "WBCD 11.3",
        "access": "femoral", "volume_processed_l": 10.0, "run_time_min": 175, "anticoagulant": "acd_a",
        "inlet_ac_ratio": 12, "ac_volume_ml": 800, "calcium_given_mmol": 9.2, "calcium_route": "iv",
        "product_volume_ml": 410, "ionized_calcium": [{"value": 1.02, "taken_at": iso(h + 1.5)}],
        "pre_platelets": {"value": 90, "taken_at": iso(h - 0.5)}, "post_platelets": {"value": 70, "taken_at": iso(h + 3.2)},
        "adverse_events": [{"type": "paraesthesia", "scale": "WAA", "severity": "mild", "action": "calcium iv"}],
        "recorded_by": "nurse A"}
    if pre is not None:
        rec["pre_wbc"] = {"value": pre, "taken_at": iso(h - 0.5)}
    if post is not None:
        rec["post_wbc"] = {"value": post, "taken_at": iso(h + 3.2)}
    rec.update(over)
    return rec


PATIENT = {"pseudonym": "LK-0001", "mrn": "MRN-7734129", "sex": "male", "age_years": 54, "weight_kg": 70,
           "height_cm": 175, "diagnosis": "AML", "ward": "H5"}

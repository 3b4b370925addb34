"""Shared builders for the apheresis tests."""

from __future__ import annotations

from pathlib import Path

from leukos.interop.case_format import case_from_dict
from leukos.knowledge import load_knowledge

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "src" / "leukos" / "knowledge" / "data" / "apheresis"
CALIBRATION_CSV = DATA / "leukapheresis_calibration.csv"
OUTCOMES_MORE_CSV = DATA / "leukapheresis_outcomes_more.csv"
YIELDS_CSV = DATA / "collection_yields.csv"


def kb():
    return load_knowledge()


def make_case(**over):
    doc = {
        "id": "t-aml",
        "patient": {"age_years": 54, "sex": "female", "weight_kg": 70, "height_cm": 165},
        "labs": {"wbc": 250, "hemoglobin": 7.7, "hematocrit": 23, "platelets": 60, "ionized_calcium": 1.15,
                 "blasts_pct": 80},
        "symptoms": ["dyspnea_rest", "headache"],
        "findings": {"known_diagnosis": "AML", "genetics": {"pml_rara": "negative"}},
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(doc.get(k), dict):
            doc[k] = {**doc[k], **v}
        else:
            doc[k] = v
    doc["patient"] = {k: v for k, v in doc["patient"].items() if v is not None}
    return case_from_dict(doc, kb())

"""JSON Schema of the case format, built from the knowledge base so that the analytes and the
symptom vocabulary are written once. The package ships the generated file
(``case.schema.json``); a test checks that it is up to date (``python -m leukos.interop.schema``
regenerates it)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from leukos.domain.case import AGE_YEARS_MAX, AGE_YEARS_MIN, GENES, Diagnosis, Immunophenotype, Sex
from leukos.knowledge import KnowledgeBase, load_knowledge

__all__ = ["build_case_schema", "shipped_case_schema", "SCHEMA_ID"]

SCHEMA_ID = "urn:leukos:schema:case:1"
DRUGS = ("g_csf", "corticosteroids", "lithium", "epinephrine", "all_trans_retinoic_acid")
TREATMENTS = ("hydroxyurea", "chemotherapy", "leukapheresis", "rasburicase", "allopurinol")
TUMOUR_SITES = ("lung", "kidney", "liver", "bladder", "cervix", "other")
COMPARATORS = ("<", "<=", ">", ">=")
CYTOKINES = ("g_csf", "gm_csf", "il6")


def _lab_schema(unit: str, label: str) -> dict[str, Any]:
    item = {
        "type": "object",
        "additionalProperties": False,
        "required": ["value"],
        "properties": {
            "value": {"type": "number"},
            # the members other than value may be null: not recorded, as absent (the reader takes both)
            "unit": {"type": ["string", "null"], "description": "UCUM or a common alias (K/uL, mg/dL, ...)"},
            "time": {"type": ["string", "null"], "format": "date-time"},
            "comparator": {"enum": [*COMPARATORS, None]},
            "reference_low": {"type": ["number", "null"], "description": "laboratory reference range, same unit as value"},
            "reference_high": {"type": ["number", "null"],
                               "description": "laboratory upper limit of normal, same unit as value"},
        },
    }
    return {
        "description": f"{label}; a bare number is in {unit}",
        "anyOf": [
            {"type": "number"},
            {"type": "string", "description": "value and unit in one string, e.g. '250 K/uL' or '>1000 10*9/L'"},
            item,
            {"type": "array", "minItems": 1, "items": item, "description": "a time series; the latest is current"},
        ],
    }


def _bool(description: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": ["boolean", "null"]}
    if description:
        out["description"] = description
    return out


def build_case_schema(kb: KnowledgeBase | None = None) -> dict[str, Any]:
    kb = kb or load_knowledge()
    labs = {name: _lab_schema(a.unit, a.label) for name, a in kb.analytes.items()}
    symptoms = sorted(kb.symptoms)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "leukos case, version 1",
        "description": "One patient at one moment, as described in docs/case-format.md of leukos. Null or absent = not recorded.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "format": {"const": "leukos-case/1"},
            "id": {"type": ["string", "null"]},
            "as_of": {"type": ["string", "null"], "format": "date-time"},
            "patient": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "age_years": {"type": ["number", "null"], "minimum": AGE_YEARS_MIN, "maximum": AGE_YEARS_MAX},
                    "birth_date": {"type": ["string", "null"], "format": "date"},
                    "sex": {"enum": [s.value for s in Sex] + [None]},
                    "weight_kg": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 500},
                    "height_cm": {"type": ["number", "null"], "minimum": 20, "maximum": 275},
                    "pregnant": _bool(),
                },
            },
            "labs": {"type": "object", "additionalProperties": False, "properties": labs},
            "symptoms": {
                "type": ["array", "null"],
                "items": {"enum": symptoms},
                "description": "Controlled vocabulary; an empty list means 'no symptoms', absent means 'not recorded'.",
            },
            "leukostasis_grades": {
                "type": "object",
                "additionalProperties": False,
                "description": "Clinician override of the organ grades, 0-3.",
                "properties": {o: {"type": ["integer", "null"], "minimum": 0, "maximum": 3}
                               for o in ("pulmonary", "neurological", "other")},
            },
            "findings": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "known_diagnosis": {"enum": [d.value for d in Diagnosis] + [None]},
                    "immunophenotype": {"enum": [i.value for i in Immunophenotype] + [None]},
                    "genetics": {
                        "type": "object",
                        "additionalProperties": False,
                        "description": "Result of the test for each gene or fusion: positive (a pathogenic/defining variant found), negative, unknown. jak2 = JAK2 V617F or exon 12; calr, mpl = driver mutations; csf3r = activating CSF3R mutation (T618I or other).",
                        "properties": {g: {"enum": ["positive", "negative", "unknown", None]} for g in GENES},
                    },
                    "splenomegaly": _bool(),
                    "hepatomegaly": _bool(),
                    "lymphadenopathy": _bool(),
                    "solid_tumor": {
                        "type": ["object", "null"],
                        "additionalProperties": False,
                        "properties": {
                            "present": _bool(),
                            "site": {"enum": list(TUMOUR_SITES) + [None]},
                            "marrow_involvement": _bool(),
                        },
                    },
                    "cytokines": {
                        "type": ["object", "null"],
                        "additionalProperties": False,
                        "description": "Serum levels in pg/mL.",
                        "properties": {c: {"type": ["number", "null"], "minimum": 0} for c in CYTOKINES},
                    },
                    "infection": {
                        "type": ["object", "null"],
                        "additionalProperties": False,
                        "properties": {"present": _bool(), "organism": {"type": ["string", "null"]}},
                    },
                    "drugs": {"type": ["array", "null"], "items": {"enum": list(DRUGS)}},
                    "smear": {
                        "type": ["object", "null"],
                        "additionalProperties": False,
                        "properties": {
                            "toxic_granulation": _bool(),
                            "dohle_bodies": _bool(),
                            "auer_rods": _bool(),
                            "abnormal_promyelocytes": _bool("Promyelocyte-rich smear (hypergranular promyelocytes, faggot cells): part of the APL gate."),
                            "dysgranulopoiesis": _bool("Dysgranulopoiesis (hypo-/hypersegmented neutrophils, abnormal chromatin clumping, hypogranularity) on the blood smear or the marrow aspirate: defines atypical CML, argues against CNL."),
                            "teardrop_cells": _bool("Tear-drop red cells (dacrocytes), as in myelofibrosis."),
                            "leukoerythroblastosis": _bool("Nucleated red cells and immature granulocytes in the blood (leukoerythroblastic picture)."),
                        },
                    },
                    "lap_score": {"type": ["number", "null"], "minimum": 0},
                    "marrow": {
                        "type": ["object", "null"],
                        "additionalProperties": False,
                        "properties": {
                            "blasts_pct": {"type": ["number", "null"], "minimum": 0, "maximum": 100},
                            "tumour_cells": _bool(),
                            "fibrosis_grade": {
                                "type": ["integer", "null"], "minimum": 0, "maximum": 3,
                                "description": "Reticulin/collagen fibrosis of the marrow biopsy, grade 0-3 (MF-0 to MF-3); overt myelofibrosis is grade 2 or 3.",
                            },
                        },
                    },
                    "tissue_cytology": {
                        "type": ["object", "null"],
                        "additionalProperties": False,
                        "properties": {
                            "site": {"type": ["string", "null"]},
                            "blasts_pct": {"type": ["number", "null"], "minimum": 0, "maximum": 100},
                            "trilineage_precursors": _bool(),
                            "megakaryocytes": _bool(),
                            "erythroid_precursors": _bool(),
                            "immunophenotype": {"enum": [i.value for i in Immunophenotype] + [None]},
                        },
                    },
                    "treatment": {"type": ["array", "null"], "items": {"enum": list(TREATMENTS)}},
                },
            },
        },
    }


def shipped_case_schema() -> dict[str, Any]:
    """The JSON Schema file shipped in the package."""
    return json.loads(resources.files("leukos.interop").joinpath("case.schema.json").read_text("utf-8"))


def _main() -> None:  # pragma: no cover - developer tool
    path = resources.files("leukos.interop").joinpath("case.schema.json")
    with open(str(path), "w", encoding="utf-8") as fh:
        json.dump(build_case_schema(), fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":  # pragma: no cover
    _main()

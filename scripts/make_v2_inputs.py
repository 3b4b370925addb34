"""Build data/validation/published_cases_v2_inputs.jsonl: the development set with the case-format
fields added after it was transcribed (absolute counts, MPN genes, dysgranulopoiesis, tear-drop
cells, leukoerythroblastosis, marrow fibrosis grade), filled MECHANICALLY from the raw transcription.

What it does, for every one of the 60 cases and with the same rules for each:
- copies the row of published_cases.jsonl (id, case, expected) unchanged, and only ADDS fields that
  the original case does not have; ``expected`` is never touched;
- reads only the raw transcription's ``differential`` and ``findings`` (never ``notes``,
  ``source_final_diagnosis`` or the category, which carry the answer);
- writes each added value as printed in the source, with a ``v2_added`` map naming the raw text it
  came from, so that every value can be checked by hand.

Rules (case-independent):
1. Absolute counts: a differential key ``<cell>_abs`` for cell in neutrophils, lymphocytes,
   monocytes, eosinophils, basophils becomes ``labs.<cell>_abs`` with the printed value; the only
   edit is removing a thousands separator ("18 040/uL" -> "18040/uL"). Other keys (an "ANC" without a
   unit, "neutrophils_bands_abs") have no field and are not mapped.
2. Genes jak2, calr, mpl, setbp1, asxl1: each findings entry "key: value" is split into clauses at
   ';'. A clause naming the gene (whole word, any case) sets it to ``negative`` when the clause has
   a negation (negative, not mutated, not detected, absent, unmutated, wild-type, "no "), otherwise
   to ``positive``. A gene named both ways stays unmapped (conflict).
3. Smear words, searched in every clause the same way (a negated clause gives false):
   "dysgranulopoiesis" -> smear.dysgranulopoiesis; "tear-drop", "teardrop" or "dacrocyte" ->
   smear.teardrop_cells; "leukoerythroblast" -> smear.leukoerythroblastosis. Paraphrases (e.g.
   "dysplastic myeloid precursors", "myeloid dysplasia") are NOT mapped: that would be a reading.
4. Marrow fibrosis: in a findings entry whose key contains "marrow", "MF-<0-3>" or
   "reticulin grade <0-3>" -> marrow.fibrosis_grade. "prefibrotic" without a grade is not mapped.

Run: python scripts/make_v2_inputs.py  (from the repository root; stdlib only).
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "validation"
CELLS = ("neutrophils", "lymphocytes", "monocytes", "eosinophils", "basophils")
GENES = ("jak2", "calr", "mpl", "setbp1", "asxl1")
SMEAR = {"dysgranulopoiesis": ("dysgranulopoiesis",),
         "teardrop_cells": ("tear-drop", "teardrop", "dacrocyte"),
         "leukoerythroblastosis": ("leukoerythroblast",)}
NEGATION = re.compile(r"\b(negative|not mutated|not detected|absent|unmutated|wild[- ]type)\b|\bno\s", re.I)
THOUSANDS = re.compile(r"(?<=\d)[ \u00a0\u2009,](?=\d{3}\b)")
FIBROSIS = re.compile(r"\bMF-?([0-3])\b|reticulin (?:fibrosis )?grade ([0-3])", re.I)


def _clauses(findings: dict) -> list[tuple[str, str]]:
    out = []
    for key, value in findings.items():
        for clause in f"{key}: {value}".split(";"):
            out.append((key, clause.strip()))
    return out


def map_case(raw: dict) -> tuple[dict, dict]:
    """(fields to add, provenance) for one raw case; fields are nested like the case format."""
    labs, genetics, smear, marrow, why = {}, {}, {}, {}, {}
    for key, value in (raw.get("differential") or {}).items():
        cell = key[:-4] if key.endswith("_abs") else None
        if cell in CELLS and isinstance(value, str):
            labs[f"{cell}_abs"] = THOUSANDS.sub("", value)
            why[f"labs.{cell}_abs"] = f"differential.{key}: {value}"
    smear_text = {f"differential.{k}": v for k, v in (raw.get("differential") or {}).items() if k == "smear"}
    clauses = _clauses(raw.get("findings") or {}) + _clauses(smear_text)
    gene_votes: dict[str, set[str]] = {}
    for key, clause in clauses:
        negated = bool(NEGATION.search(clause))
        for gene in GENES:
            if re.search(rf"\b{gene}\b", clause, re.I):
                gene_votes.setdefault(gene, set()).add("negative" if negated else "positive")
                why.setdefault(f"findings.genetics.{gene}", clause)
        for field, words in SMEAR.items():
            if any(w in clause.lower() for w in words):
                smear[field] = not negated
                why[f"findings.smear.{field}"] = clause
        m = FIBROSIS.search(clause)
        if m and "marrow" in key.lower():
            marrow["fibrosis_grade"] = int(m.group(1) or m.group(2))
            why["findings.marrow.fibrosis_grade"] = clause
    for gene, votes in gene_votes.items():
        if len(votes) == 1:
            genetics[gene] = votes.pop()
        else:
            why.pop(f"findings.genetics.{gene}")
    add: dict = {}
    if labs:
        add["labs"] = labs
    findings = {k: v for k, v in (("genetics", genetics), ("smear", smear), ("marrow", marrow)) if v}
    if findings:
        add["findings"] = findings
    return add, why


def _merge(case: dict, add: dict, cid: str) -> dict:
    out = copy.deepcopy(case)
    for section, fields in add.items():
        target = out.setdefault(section, {})
        for name, value in fields.items():
            if isinstance(value, dict):
                sub = target.setdefault(name, {})
                for k, v in value.items():
                    if k in sub:
                        raise SystemExit(f"{cid}: {section}.{name}.{k} already in the case; v2 only adds fields")
                    sub[k] = v
            else:
                if name in target:
                    raise SystemExit(f"{cid}: {section}.{name} already in the case; v2 only adds fields")
                target[name] = value
    return out


def build(dev_lines: list[str], raw_lines: list[str]) -> list[str]:
    raw = {r["id"]: r for r in map(json.loads, filter(str.strip, raw_lines))}
    out = []
    for line in filter(str.strip, dev_lines):
        row = json.loads(line)
        add, why = map_case(raw[row["id"]])
        new = {"id": row["id"], "case": _merge(row["case"], add, row["id"]), "expected": row["expected"],
               "v2_added": why}
        out.append(json.dumps(new, ensure_ascii=False))
    return out


def main() -> None:
    dev = (DATA / "published_cases.jsonl").read_text("utf-8").splitlines()
    raw = (DATA / "published_cases_raw.jsonl").read_text("utf-8").splitlines()
    lines = build(dev, raw)
    (DATA / "published_cases_v2_inputs.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    added = sum(1 for ln in lines if json.loads(ln)["v2_added"])
    print(f"wrote {len(lines)} cases, {added} with added fields", file=sys.stderr)


if __name__ == "__main__":
    main()

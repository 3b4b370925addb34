"""Synthetic OMOP CDM 5.4 data with known hyperleukocytosis episodes (ground truth written beside it).

Two uses: :func:`synth_omop` writes a whole small OMOP folder (PERSON, CONCEPT, MEASUREMENT,
DRUG_EXPOSURE, PROCEDURE_OCCURRENCE); :func:`inject_omop` copies a real OMOP folder (e.g. the
Synthea27Nj sample) and appends injected episodes for some of its persons, adding only the
CONCEPT rows it lacks. ``ground_truth.csv`` lists each injected episode (person, start, end,
peak WBC, number of extreme results, expected TLS laboratory result, first cytoreduction).

Concept ids: those seen in the Synthea27Nj CONCEPT table are reused (3000905 = LOINC 6690-2
WBC, 3023103 potassium, 3006906 calcium, 3016723 creatinine; units 8848 10*3/uL, 8753 mmol/L,
8840 mg/dL, 8749 umol/L, 8554 %). The others are synthetic ids above 2,000,000,000 (OMOP's
range for local concepts), carrying the right LOINC code, so screening must resolve them through
CONCEPT by code as it would at a real site. The values are synthetic and say nothing clinical.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

__all__ = ["synth_omop", "inject_omop", "InjectedEpisode", "LAB_CONCEPTS", "UNIT_CONCEPTS"]

# analyte -> (concept_id, LOINC code, name, unit concept id)
LAB_CONCEPTS = {
    "wbc": (3000905, "6690-2", "Leukocytes [#/volume] in Blood by Automated count", 8848),
    "blasts_pct": (2000000101, "709-6", "Blasts/100 leukocytes in Blood by Manual count", 8554),
    "potassium": (3023103, "2823-3", "Potassium [Moles/volume] in Serum or Plasma", 8753),
    "phosphate": (2000000102, "2777-1", "Phosphate [Mass/volume] in Serum or Plasma", 8840),
    "uric_acid": (2000000103, "3084-1", "Urate [Mass/volume] in Serum or Plasma", 8840),
    "calcium": (3006906, "17861-6", "Calcium [Mass/volume] in Serum or Plasma", 8840),
    "creatinine": (3016723, "2160-0", "Creatinine [Mass/volume] in Serum or Plasma", 8840),
}
UNIT_CONCEPTS = {8848: ("10*3/uL", "thousand per microliter"), 8753: ("mmol/L", "millimole per liter"),
                 8840: ("mg/dL", "milligram per deciliter"), 8749: ("umol/L", "micromole per liter"),
                 8554: ("%", "percent")}
HYDROXYUREA = (2000000201, "hydroxyurea 500 MG Oral Capsule", "Drug", "RxNorm", "Clinical Drug", "197806")
LEUKAPHERESIS = (2000000202, "Therapeutic leukapheresis", "Procedure", "SNOMED", "Procedure", "0000000")

MEAS_COLS = ["measurement_id", "person_id", "measurement_concept_id", "measurement_date", "measurement_datetime",
             "measurement_time", "measurement_type_concept_id", "operator_concept_id", "value_as_number",
             "value_as_concept_id", "unit_concept_id", "range_low", "range_high", "provider_id",
             "visit_occurrence_id", "visit_detail_id", "measurement_source_value", "measurement_source_concept_id",
             "unit_source_value", "unit_source_concept_id", "value_source_value", "measurement_event_id",
             "meas_event_field_concept_id"]
CONCEPT_COLS = ["concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id", "standard_concept",
                "concept_code", "valid_start_date", "valid_end_date", "invalid_reason"]
PERSON_COLS = ["person_id", "gender_concept_id", "year_of_birth", "month_of_birth", "day_of_birth",
               "birth_datetime", "race_concept_id", "ethnicity_concept_id", "location_id", "provider_id",
               "care_site_id", "person_source_value", "gender_source_value", "gender_source_concept_id",
               "race_source_value", "race_source_concept_id", "ethnicity_source_value", "ethnicity_source_concept_id"]
DRUG_COLS = ["drug_exposure_id", "person_id", "drug_concept_id", "drug_exposure_start_date",
             "drug_exposure_start_datetime", "drug_exposure_end_date", "drug_exposure_end_datetime",
             "verbatim_end_date", "drug_type_concept_id", "stop_reason", "refills", "quantity", "days_supply", "sig",
             "route_concept_id", "lot_number", "provider_id", "visit_occurrence_id", "visit_detail_id",
             "drug_source_value", "drug_source_concept_id", "route_source_value", "dose_unit_source_value"]
PROC_COLS = ["procedure_occurrence_id", "person_id", "procedure_concept_id", "procedure_date", "procedure_datetime",
             "procedure_end_date", "procedure_end_datetime", "procedure_type_concept_id", "modifier_concept_id",
             "quantity", "provider_id", "visit_occurrence_id", "visit_detail_id", "procedure_source_value",
             "procedure_source_concept_id", "modifier_source_value"]

# Conversions used to write canonical values in the OMOP units above (clinical.md §10).
_TO_UNIT = {"phosphate": 1 / 0.3229, "uric_acid": 1 / 59.48, "calcium": 1 / 0.2495, "creatinine": 1 / 88.4}


@dataclass(frozen=True)
class InjectedEpisode:
    person_id: int
    start_ts: datetime
    end_ts: datetime
    peak_wbc_10e9_per_l: float
    n_results: int
    tls_laboratory: bool
    first_cytoreduction_ts: datetime | None
    first_cytoreduction_kind: str | None


class _Writer:
    def __init__(self, start_id: int = 1):
        self.meas: list[dict] = []
        self.drugs: list[dict] = []
        self.procs: list[dict] = []
        self.next_id = start_id

    def lab(self, person: int, analyte: str, ts: datetime, canonical: float, digits: int = 2):
        cid, loinc, _, unit_id = LAB_CONCEPTS[analyte]
        value = round(canonical * _TO_UNIT.get(analyte, 1.0), digits)
        self.meas.append({
            "measurement_id": self.next_id, "person_id": person, "measurement_concept_id": cid,
            "measurement_date": ts.date().isoformat(), "measurement_datetime": ts.isoformat(sep=" "),
            "measurement_time": ts.time().isoformat(), "measurement_type_concept_id": 32856,
            "operator_concept_id": 0, "value_as_number": value, "value_as_concept_id": 0,
            "unit_concept_id": unit_id, "measurement_source_value": loinc,
            "measurement_source_concept_id": cid, "unit_source_value": UNIT_CONCEPTS[unit_id][0],
            "value_source_value": value,
        })
        self.next_id += 1
        return value

    def drug(self, person: int, ts: datetime):
        self.drugs.append({
            "drug_exposure_id": len(self.drugs) + 900_000_001, "person_id": person, "drug_concept_id": HYDROXYUREA[0],
            "drug_exposure_start_date": ts.date().isoformat(), "drug_exposure_start_datetime": ts.isoformat(sep=" "),
            "drug_exposure_end_date": (ts + timedelta(days=5)).date().isoformat(), "drug_type_concept_id": 32838,
            "drug_source_value": "hydroxyurea", "drug_source_concept_id": 0,
        })

    def procedure(self, person: int, ts: datetime):
        self.procs.append({
            "procedure_occurrence_id": len(self.procs) + 900_000_001, "person_id": person,
            "procedure_concept_id": LEUKAPHERESIS[0], "procedure_date": ts.date().isoformat(),
            "procedure_datetime": ts.isoformat(sep=" "), "procedure_type_concept_id": 32817,
            "procedure_source_value": "leukapheresis",
        })


def _episode(w: _Writer, rng: np.random.Generator, person: int, start: datetime, threshold: float,
             gap_hours: float) -> InjectedEpisode:
    """A normal count a month before, 2-5 extreme counts 4-24 h apart, a normal count 5 days after."""
    w.lab(person, "wbc", start - timedelta(days=30), float(rng.uniform(5, 10)), 1)
    n = int(rng.integers(2, 6))
    ts = start
    values = []
    times = []
    for i in range(n):
        if i:
            ts = ts + timedelta(hours=float(rng.integers(4, min(24, int(gap_hours)) + 1)))
        v = w.lab(person, "wbc", ts, float(rng.uniform(threshold + 5, 600)), 1)
        w.lab(person, "blasts_pct", ts, float(rng.uniform(20, 95)), 0)
        values.append(v)
        times.append(ts)
    peak = max(values)
    peak_ts = times[values.index(peak)]
    tls = bool(rng.random() < 0.5)
    # Chemistry at the peak draw (nearest by construction); TLS: urate, potassium and phosphate high.
    if tls:
        w.lab(person, "uric_acid", peak_ts, float(rng.uniform(560, 900)), 1)
        w.lab(person, "potassium", peak_ts, float(rng.uniform(6.3, 7.5)), 1)
        w.lab(person, "phosphate", peak_ts, float(rng.uniform(1.8, 2.8)), 1)
    else:
        w.lab(person, "uric_acid", peak_ts, float(rng.uniform(200, 380)), 1)
        w.lab(person, "potassium", peak_ts, float(rng.uniform(3.6, 4.8)), 1)
        w.lab(person, "phosphate", peak_ts, float(rng.uniform(0.9, 1.3)), 1)
    w.lab(person, "calcium", peak_ts, float(rng.uniform(2.15, 2.5)), 1)
    w.lab(person, "creatinine", peak_ts, float(rng.uniform(60, 140)), 1)
    w.lab(person, "wbc", ts + timedelta(days=5), float(rng.uniform(5, 30)), 1)
    first, kind = None, None
    r = rng.random()
    if r < 0.6:
        first, kind = start + timedelta(hours=float(rng.integers(2, 30))), "hydroxyurea"
        w.drug(person, first)
    elif r < 0.8:
        first, kind = start + timedelta(hours=float(rng.integers(2, 30))), "leukapheresis"
        w.procedure(person, first)
    return InjectedEpisode(person, times[0], times[-1], peak, n, tls, first, kind)


def _background(w: _Writer, rng: np.random.Generator, person: int, first: datetime, years: int = 5, per_year: int = 3):
    for _ in range(years * per_year):
        ts = first + timedelta(days=float(rng.uniform(0, 365 * years)), hours=float(rng.integers(7, 18)))
        ts = ts.replace(microsecond=0)
        w.lab(person, "wbc", ts, float(rng.uniform(4, 11)), 1)
        if rng.random() < 0.5:
            w.lab(person, "potassium", ts, float(rng.uniform(3.5, 5.0)), 1)
            w.lab(person, "creatinine", ts, float(rng.uniform(50, 110)), 1)


def _write_csv(path: Path, cols: list[str], rows: list[dict], append: bool = False):
    mode = "a" if append else "w"
    if append:  # follow the existing file's column order; make sure it ends with a newline
        with path.open(encoding="utf-8", newline="") as f:
            cols = next(csv.reader(f))
        text = path.read_bytes()
        if text and not text.endswith(b"\n"):
            with path.open("ab") as f:
                f.write(b"\n")
    with path.open(mode, newline="", encoding="utf-8") as f:
        wr = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        if not append:
            wr.writeheader()
        for r in rows:
            wr.writerow({c: r.get(c, "") for c in cols})


def _concept_rows(skip: set[int] = frozenset()) -> list[dict]:
    rows = []
    for cid, loinc, name, _ in LAB_CONCEPTS.values():
        rows.append({"concept_id": cid, "concept_name": name, "domain_id": "Measurement", "vocabulary_id": "LOINC",
                     "concept_class_id": "Lab Test", "standard_concept": "S", "concept_code": loinc})
    for cid, (code, name) in UNIT_CONCEPTS.items():
        rows.append({"concept_id": cid, "concept_name": name, "domain_id": "Unit", "vocabulary_id": "UCUM",
                     "concept_class_id": "Unit", "standard_concept": "S", "concept_code": code})
    for cid, name, domain, vocab, cls, code in (HYDROXYUREA, LEUKAPHERESIS):
        rows.append({"concept_id": cid, "concept_name": name, "domain_id": domain, "vocabulary_id": vocab,
                     "concept_class_id": cls, "standard_concept": "S", "concept_code": code})
    for r in rows:
        r.update(valid_start_date="1970-01-01", valid_end_date="2099-12-31", invalid_reason="")
    return [r for r in rows if r["concept_id"] not in skip]


def _write_truth(path: Path, truth: list[InjectedEpisode]):
    with path.open("w", newline="", encoding="utf-8") as f:
        wr = csv.writer(f)
        wr.writerow(["person_id", "start_ts", "end_ts", "peak_wbc_10e9_per_l", "n_results", "tls_laboratory",
                     "first_cytoreduction_ts", "first_cytoreduction_kind"])
        for e in truth:
            wr.writerow([e.person_id, e.start_ts.isoformat(sep=" "), e.end_ts.isoformat(sep=" "),
                         e.peak_wbc_10e9_per_l, e.n_results, e.tls_laboratory,
                         e.first_cytoreduction_ts.isoformat(sep=" ") if e.first_cytoreduction_ts else "",
                         e.first_cytoreduction_kind or ""])


def synth_omop(out_dir: str | Path, *, persons: int = 100, episode_fraction: float = 0.1, seed: int = 0,
               threshold: float = 100.0, gap_hours: float = 72.0) -> list[InjectedEpisode]:
    """Write a small OMOP folder with background labs and injected episodes; return the ground truth.

    ``threshold`` and ``gap_hours`` shape the injected data (extreme values above the threshold,
    results closer than the gap); pass the knowledge-base values.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w = _Writer()
    people, truth = [], []
    base = datetime(2010, 1, 1)  # background 2010-2014; episodes 2015-2019, so none overlaps an episode
    for pid in range(1, persons + 1):
        yob = int(rng.integers(1930, 2005))
        people.append({"person_id": pid, "gender_concept_id": int(rng.choice([8507, 8532])), "year_of_birth": yob,
                       "month_of_birth": 1, "day_of_birth": 1, "birth_datetime": f"{yob}-01-01 00:00:00",
                       "race_concept_id": 0, "ethnicity_concept_id": 0, "person_source_value": f"synth-{pid}"})
        _background(w, rng, pid, base)
        if rng.random() < episode_fraction:
            start = datetime(2015, 3, 1) + timedelta(days=float(rng.integers(0, 365 * 4)), hours=float(rng.integers(0, 24)))
            truth.append(_episode(w, rng, pid, start, threshold, gap_hours))
    _write_csv(out / "PERSON.csv", PERSON_COLS, people)
    _write_csv(out / "CONCEPT.csv", CONCEPT_COLS, _concept_rows())
    _write_csv(out / "MEASUREMENT.csv", MEAS_COLS, w.meas)
    _write_csv(out / "DRUG_EXPOSURE.csv", DRUG_COLS, w.drugs)
    _write_csv(out / "PROCEDURE_OCCURRENCE.csv", PROC_COLS, w.procs)
    _write_truth(out / "ground_truth.csv", truth)
    return truth


def inject_omop(base_dir: str | Path, out_dir: str | Path, *, episodes: int = 5, seed: int = 0,
                threshold: float = 100.0, gap_hours: float = 72.0) -> list[InjectedEpisode]:
    """Copy the OMOP folder ``base_dir`` and append ``episodes`` injected episodes to existing persons."""
    base, out = Path(base_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for p in base.iterdir():
        if p.is_file() and p.suffix.lower() == ".csv":
            shutil.copy(p, out / p.name)
    rng = np.random.default_rng(seed)
    with (out / "PERSON.csv").open(encoding="utf-8") as f:
        person_ids = sorted(int(r["person_id"]) for r in csv.DictReader(f))
    with (out / "MEASUREMENT.csv").open(encoding="utf-8") as f:
        max_id = max((int(r["measurement_id"]) for r in csv.DictReader(f)), default=0)
    with (out / "CONCEPT.csv").open(encoding="utf-8") as f:
        have = {int(r["concept_id"]) for r in csv.DictReader(f)}
    chosen = rng.choice(person_ids, size=min(episodes, len(person_ids)), replace=False)
    w = _Writer(start_id=max_id + 1)
    truth = []
    for pid in sorted(int(p) for p in chosen):
        # After the sample's last results (2022), so that no existing count falls inside an episode.
        start = datetime(2024, 1, 1) + timedelta(days=float(rng.integers(0, 365)), hours=float(rng.integers(0, 24)))
        truth.append(_episode(w, rng, pid, start, threshold, gap_hours))
    _write_csv(out / "CONCEPT.csv", CONCEPT_COLS, _concept_rows(have), append=True)
    _write_csv(out / "MEASUREMENT.csv", MEAS_COLS, w.meas, append=True)
    for name, cols, rows in (("DRUG_EXPOSURE.csv", DRUG_COLS, w.drugs),
                             ("PROCEDURE_OCCURRENCE.csv", PROC_COLS, w.procs)):
        path = out / name
        _write_csv(path, cols, rows, append=path.exists())
    _write_truth(out / "ground_truth.csv", truth)
    return truth

"""Published leukapheresis rows -> validated model inputs (pure: the caller reads the CSV files).

``read_outcome_rows(kb, tables)`` takes the parsed CSV rows of the three bundled files
(``{"calibration": [...], "more": [...], "yields": [...]}``, each a list of dicts as from
``csv.DictReader``) and the row annotations of ``rules/apheresis_outcomes.toml`` and returns the
WBC-fall rows, platelet-fall rows and collection-efficiency rows the model uses, plus every
problem found. A bad row (missing column, text in a numeric cell, impossible value) is reported
with file, row, field, value and expectation, and skipped; it is never used silently.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from leukos.knowledge import KnowledgeBase

__all__ = ["FallRow", "CeRow", "RowProblem", "OutcomeData", "read_outcome_rows", "WBC_COLUMNS", "YIELD_COLUMNS"]

WBC_COLUMNS = ("row_id", "source_id", "pre_wbc_1e9_per_L", "post_wbc_1e9_per_L", "pct_reduction_reported",
               "pct_reduction_derived", "volume_processed_L", "stat", "concurrent_cytoreduction")
YIELD_COLUMNS = ("row_id", "source_id", "kind", "pre_count_per_uL", "volume_processed_L", "ce_pct", "ce_kind", "stat")
_NUMERIC = {"pre_wbc_1e9_per_L": (0.0, None), "post_wbc_1e9_per_L": (0.0, None), "pct_reduction_reported": (-1000.0, 100.0),
            "pct_reduction_derived": (-1000.0, 100.0), "volume_processed_L": (0.0, 100.0),
            "pre_count_per_uL": (0.0, None), "ce_pct": (0.0, 150.0)}


@dataclass(frozen=True)
class RowProblem:
    file: str
    row: str
    field: str
    value: str
    expected: str

    def text(self) -> str:
        return f"{self.file} row {self.row}: {self.field} = {self.value!r}; expected {self.expected} - row skipped"


@dataclass(frozen=True)
class FallRow:
    """One published % fall (WBC or platelets) and how it is used."""

    id: str
    source: str
    group: str
    kind: str                      # patient | cohort
    n: int
    observed_pct: float | None
    sd_pct: float | None
    median_stat: bool              # a median of procedures rather than a mean
    bv_low: float
    bv_high: float
    pre_wbc: float | None
    scored: bool
    reason: str
    note: str
    citations: tuple[str, ...]
    n_patients: int | None = None  # patients behind a cohort's n procedures (None: not reported)
    session_share: float = 1.0     # share of the between-procedure variance that changes per session
    volume_assumed: bool = False   # the source does not report the volume: bv_low-bv_high is the assumed range
    bv_sensitivity: tuple[float, float] | None = None   # wider range for a volume derived with assumptions

    @property
    def n_eff(self) -> float:
        """Procedures a cohort's mean is worth once same-patient procedures are counted as correlated:
        1 / ((1 - rho)/n_patients + rho/n); n when the number of patients is not reported."""
        if self.kind != "cohort" or not self.n_patients:
            return float(self.n)
        rho = self.session_share
        return 1.0 / ((1.0 - rho) / min(self.n_patients, self.n) + rho / self.n)

    @property
    def blood_volumes(self) -> float:
        return math.sqrt(self.bv_low * self.bv_high)


@dataclass(frozen=True)
class CeRow:
    """One published collection efficiency (CE, %), validating yield = CE x precount x volume."""

    id: str
    source: str
    marker: str                    # CD34 | CD3
    ce_pct: float
    ce_kind: str
    citations: tuple[str, ...]


@dataclass(frozen=True)
class OutcomeData:
    wbc: tuple[FallRow, ...]
    platelets: tuple[FallRow, ...]
    ce: tuple[CeRow, ...]
    unused_wbc_rows: tuple[str, ...]
    problems: tuple[RowProblem, ...]


def _float(file: str, row: Mapping[str, str], col: str, problems: list[RowProblem]) -> tuple[bool, float | None]:
    raw = (row.get(col) or "").strip()
    if raw == "":
        return True, None
    try:
        v = float(raw)
    except ValueError:
        problems.append(RowProblem(file, str(row.get("row_id", "?")), col, raw, "a number (or blank if not reported)"))
        return False, None
    lo, hi = _NUMERIC[col]
    if not math.isfinite(v) or v < lo or (hi is not None and v > hi):
        rng = f"{lo:g}-{hi:g}" if hi is not None else f"≥ {lo:g}"
        problems.append(RowProblem(file, str(row.get("row_id", "?")), col, raw, f"a value in {rng}"))
        return False, None
    return True, v


def _clean(file: str, rows: Sequence[Mapping[str, str]], columns: Sequence[str],
           problems: list[RowProblem]) -> dict[int, dict[str, object]]:
    """Validated rows by row_id; bad rows reported and left out."""
    if not rows:
        return {}
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        problems.append(RowProblem(file, "header", ", ".join(missing), "(missing)",
                                   "the columns " + ", ".join(columns) + " - whole file skipped"))
        return {}
    out: dict[int, dict[str, object]] = {}
    for r in rows:
        rid = (r.get("row_id") or "").strip()
        if not rid.isdigit():
            problems.append(RowProblem(file, rid or "?", "row_id", rid, "a positive whole number"))
            continue
        ok, vals = True, {}
        for c in columns:
            if c in _NUMERIC:
                good, v = _float(file, r, c, problems)
                ok &= good
                vals[c] = v
            else:
                vals[c] = (r.get(c) or "").strip()
        pre, post = vals.get("pre_wbc_1e9_per_L"), vals.get("post_wbc_1e9_per_L")
        if ok and pre is not None and post is not None and (pre == 0 or post > 10 * pre):
            problems.append(RowProblem(file, rid, "post_wbc_1e9_per_L", str(post),
                                       f"at most 10 x the pre count ({pre:g}); a larger rise is not a measurement of one procedure"))
            ok = False
        if ok:
            out[int(rid)] = vals
    return out


_SD = re.compile(r"SD\s*([0-9.]+)", re.I)


def _sd(stat: str) -> float | None:
    m = _SD.search(stat or "")
    return float(m.group(1)) if m else None


def _bv(kb: KnowledgeBase, ann: Mapping) -> tuple[float, float, bool]:
    """(low, high, assumed): the row's volume processed / TBV, and whether it is the assumption for a
    source that does not report it."""
    if "blood_volumes" in ann:
        return float(ann["blood_volumes"]), float(ann["blood_volumes"]), False
    if "blood_volumes_range" in ann:
        lo, hi = ann["blood_volumes_range"]
        return float(lo), float(hi), False
    return (kb.value("apheresis_outcomes.blood_volumes_unreported_low"),
            kb.value("apheresis_outcomes.blood_volumes_unreported_high"), True)


def _sens(ann: Mapping) -> tuple[float, float] | None:
    r = ann.get("blood_volumes_sensitivity")
    return (float(r[0]), float(r[1])) if r else None


def read_outcome_rows(kb: KnowledgeBase, tables: Mapping[str, Sequence[Mapping[str, str]]]) -> OutcomeData:
    """Validate the CSV rows and join them with their annotations (``rules/apheresis_outcomes.toml``)."""
    problems: list[RowProblem] = []
    ann = kb.table("apheresis_outcomes")
    rho = kb.value("apheresis_outcomes.session_noise_fraction")
    wbc_files = {f: _clean(f, tables.get(f, ()), WBC_COLUMNS, problems) for f in ("calibration", "more")}
    ylds = _clean("yields", tables.get("yields", ()), YIELD_COLUMNS, problems)

    wbc: list[FallRow] = []
    used: set[tuple[str, int]] = set()
    for rid, a in ann["wbc_rows"].items():
        row = wbc_files[a["file"]].get(int(a["row"]))
        if row is None:
            continue
        used.add((a["file"], int(a["row"])))
        pct = row["pct_reduction_reported"] if row["pct_reduction_reported"] is not None else row["pct_reduction_derived"]
        scored = bool(a["scored"]) and pct is not None and 0 < pct < 100
        reason = a.get("reason", "") if not a["scored"] else ("" if scored else "no usable fall")
        bv = _bv(kb, a)
        wbc.append(FallRow(id=rid, source=str(row["source_id"]), group=a["group"], kind=a["kind"], n=int(a.get("n", 1)),
                           observed_pct=pct, sd_pct=_sd(str(row["stat"])), median_stat="median" in str(row["stat"]).lower(),
                           bv_low=bv[0], bv_high=bv[1], pre_wbc=a.get("pre_wbc", row["pre_wbc_1e9_per_L"]),
                           scored=scored, reason=reason, note=a.get("note", ""), citations=tuple(a["citations"]),
                           n_patients=a.get("n_patients"), session_share=rho, volume_assumed=bv[2],
                           bv_sensitivity=_sens(a)))
    unused = tuple(f"{f}:{r}" for f, rows in wbc_files.items() for r in rows if (f, r) not in used)

    plt: list[FallRow] = []
    all_rows = {**{("calibration", k): v for k, v in wbc_files["calibration"].items()},
                **{("more", k): v for k, v in wbc_files["more"].items()},
                **{("yields", k): v for k, v in ylds.items()}}
    for rid, a in ann["platelet_rows"].items():
        row = all_rows.get((a["file"], int(a["row"])))
        if row is None:
            continue
        bv = _bv(kb, a)
        plt.append(FallRow(id=rid, source=str(row["source_id"]), group=a["procedure"], kind=a["kind"], n=int(a.get("n", 1)),
                           observed_pct=float(a["pct"]), sd_pct=a.get("sd_pct"), median_stat=False,
                           bv_low=bv[0], bv_high=bv[1], pre_wbc=None, scored=True, reason="", note=a.get("note", ""),
                           citations=tuple(a["citations"]), n_patients=a.get("n_patients"), session_share=rho,
                           volume_assumed=bv[2], bv_sensitivity=_sens(a)))

    ce: list[CeRow] = []
    cd3 = set(ann["yield_rows"]["cd3_sources"])
    for k, row in sorted(ylds.items()):
        if row["ce_pct"] is None:
            continue
        src = str(row["source_id"])
        marker = "CD3" if (row["kind"] == "cart" or src in cd3) else "CD34"
        ce.append(CeRow(id=f"{src}-{k}", source=src, marker=marker, ce_pct=float(row["ce_pct"]),
                        ce_kind=str(row.get("ce_kind", "")), citations=()))
    return OutcomeData(wbc=tuple(wbc), platelets=tuple(plt), ce=tuple(ce), unused_wbc_rows=unused, problems=tuple(problems))

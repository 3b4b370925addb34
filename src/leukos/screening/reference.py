"""The in-memory reference of the batch screening: plain Python over a list of observations.

It states the same definitions as :mod:`leukos.screening.episodes` in the simplest possible
code, so that a Hypothesis test can check that the ibis expression gives the same answer on
DuckDB and on Spark (the ehrQL pattern: the in-memory engine is the oracle). It is for tests
and small inputs; it is not used by ``leukos screen``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leukos.knowledge import KnowledgeBase
from leukos.screening.episodes import CHEMISTRY, ScreenParams
from leukos.screening.factors import unit_factors

__all__ = ["Obs", "reference_clean", "reference_episodes"]


@dataclass(frozen=True)
class Obs:
    """One observation in the common shape of :mod:`leukos.screening.sources`."""

    person_id: str | None
    ts: datetime | None
    analyte: str
    value: float | None
    unit: str | None
    comparator: str | None = None
    value_given: bool | None = None

    def given(self) -> bool:
        return self.value is not None if self.value_given is None else self.value_given


def _epoch(ts: datetime) -> float:
    return (ts - datetime(1970, 1, 1)).total_seconds()


def reference_clean(obs: list[Obs], params: ScreenParams, kb: KnowledgeBase) -> list[dict[str, Any]]:
    """Rows with canonical ``value`` and ``exclusion`` (None = usable)."""
    factors = {(f.analyte, f.unit): f.factor for f in unit_factors([(o.analyte, o.unit) for o in obs], kb)}
    out = []
    seen = set()
    thr = params.wbc_threshold
    for o in obs:
        low, high = kb.analyte(o.analyte).plausible
        factor = factors.get((o.analyte, o.unit or ""))
        canon = o.value * factor if (o.value is not None and factor is not None) else None
        cmp = o.comparator or ""
        reason = None
        if o.person_id is None or o.person_id == "":
            reason = "missing_person"
        elif o.value is None and not o.given():
            reason = "missing_value"
        elif o.value is None:
            reason = "non_numeric"
        elif o.ts is None:
            reason = "missing_time"
        elif o.ts > params.now:
            reason = "future_time"
        elif factor is None:
            reason = "unknown_unit"
        elif math.isnan(canon) or canon < low or canon > high:
            reason = "implausible"
        elif (o.analyte == "wbc" and ((cmp in ("<", "<=") and canon > thr) or (cmp == ">" and canon < thr)
                                      or (cmp == ">=" and canon <= thr))) or (o.analyte != "wbc" and cmp):
            reason = "censored_indeterminate"
        if reason is None:
            key = (o.person_id, o.analyte, o.ts, canon, cmp)
            if key in seen:
                reason = "duplicate"
            seen.add(key)
        out.append({"person_id": o.person_id, "ts": o.ts, "analyte": o.analyte, "value": canon,
                    "unit": o.unit, "comparator": o.comparator, "exclusion": reason})
    return out


def reference_episodes(obs: list[Obs], params: ScreenParams, kb: KnowledgeBase,
                       events: list[tuple[str, datetime, str]] | None = None) -> list[dict[str, Any]]:
    """Episodes as dicts with the columns of :data:`leukos.screening.episodes.EPISODE_COLUMNS`."""
    rows = [r for r in reference_clean(obs, params, kb) if r["exclusion"] is None]
    thr = params.wbc_threshold
    by_person: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r["analyte"] == "wbc":
            by_person[r["person_id"]].append(r)
    episodes = []
    for person, wbc in by_person.items():
        wbc.sort(key=lambda r: (r["ts"], r["value"], r["comparator"] or ""))
        current: list[dict] = []
        segments = []
        for r in wbc:
            cmp = r["comparator"] or ""
            high = r["value"] > thr or (cmp == ">" and r["value"] >= thr)
            if not high:
                if current:
                    segments.append(current)
                current = []
                continue
            if current and _epoch(r["ts"]) - _epoch(current[-1]["ts"]) > params.gap_hours * 3600.0:
                segments.append(current)
                current = []
            current.append(r)
        if current:
            segments.append(current)
        segments.sort(key=lambda s: s[0]["ts"])
        for no, seg in enumerate(segments, start=1):
            peak = max(r["value"] for r in seg)
            episodes.append({
                "person_id": person, "episode_no": no, "episode_id": f"{person}:{no}",
                "start_ts": seg[0]["ts"], "end_ts": seg[-1]["ts"],
                "duration_hours": (_epoch(seg[-1]["ts"]) - _epoch(seg[0]["ts"])) / 3600.0,
                "n_results": len(seg), "peak_wbc_10e9_per_l": peak,
                "peak_ts": min(r["ts"] for r in seg if r["value"] == peak),
                "peak_censored": any((r["comparator"] or "") in (">", ">=") and r["value"] == peak for r in seg),
            })
    for ep in episodes:
        _attach(ep, rows, params, events)
    episodes.sort(key=lambda e: (e["person_id"], e["episode_no"]))
    return episodes


def _attach(ep: dict, rows: list[dict], params: ScreenParams, events) -> None:
    person, start, end = ep["person_id"], ep["start_ts"], ep["end_ts"]
    mine = [r for r in rows if r["person_id"] == person]
    wbc_at = defaultdict(list)
    for r in mine:
        if r["analyte"] == "wbc":
            wbc_at[r["ts"]].append(r["value"])
    blasts = [w * r["value"] / 100.0 for r in mine if r["analyte"] == "blasts_pct" and start <= r["ts"] <= end
              for w in wbc_at.get(r["ts"], [])]
    ep["peak_abs_blasts_10e9_per_l"] = max(blasts) if blasts else None
    lo = _epoch(start) - params.chemistry_hours_before * 3600.0
    hi = _epoch(end) + params.chemistry_hours_after * 3600.0
    peak = _epoch(ep["peak_ts"])
    for analyte, col in CHEMISTRY.items():
        cands = [r for r in mine if r["analyte"] == analyte and lo <= _epoch(r["ts"]) <= hi]
        best = min(cands, key=lambda r: (abs(_epoch(r["ts"]) - peak), r["ts"], r["value"])) if cands else None
        ep[col] = best["value"] if best else None
        ep[f"{analyte}_ts"] = best["ts"] if best else None
    first = None
    if events:
        day = math.floor(_epoch(start) / 86400.0) * 86400.0
        mine_ev = sorted((t, k) for p, t, k in events if p == person and t is not None and _epoch(t) >= day)
        first = mine_ev[0] if mine_ev else None
    ep["first_cytoreduction_ts"] = first[0] if first else None
    ep["first_cytoreduction_kind"] = first[1] if first else None
    ep["hours_to_cytoreduction"] = (_epoch(first[0]) - _epoch(start)) / 3600.0 if first else None

    def cmp(v, limit, upper: bool):
        if v is None:
            return None
        if params.tls_inclusive:
            return v <= limit if upper else v >= limit
        return v < limit if upper else v > limit

    phos_a = cmp(ep["phosphate_mmol_per_l"], params.phosphate_min, False)
    phos_c = cmp(ep["phosphate_mmol_per_l"], params.phosphate_min_child, False)
    crit = {"tls_uric_acid": cmp(ep["uric_acid_umol_per_l"], params.uric_acid_min, False),
            "tls_potassium": cmp(ep["potassium_mmol_per_l"], params.potassium_min, False),
            "tls_phosphate": phos_a if phos_a == phos_c else None,
            "tls_calcium": cmp(ep["calcium_mmol_per_l"], params.calcium_max, True)}
    ep.update(crit)
    met = sum(1 for v in crit.values() if v)
    ep["tls_criteria_met"] = met
    unknown = sum(1 for v in crit.values() if v is None)
    ep["tls_laboratory"] = True if met >= 2 else (False if met + unknown < 2 else None)
    k = ep["potassium_mmol_per_l"]
    ep["pseudohyperkalemia_possible"] = None if k is None else k >= params.pseudohyperkalemia_potassium_min
    flags = []
    if ep["tls_laboratory"]:
        flags.append("TLS_LABORATORY")
    if ep["pseudohyperkalemia_possible"]:
        flags.append("PSEUDOHYPERKALEMIA_POSSIBLE")
    if ep["peak_censored"]:
        flags.append("PEAK_CENSORED")
    ep["flags"] = ",".join(flags)
    ep["threshold_10e9_per_l"] = float(params.wbc_threshold)
    ep["ruleset_version"] = params.ruleset_version

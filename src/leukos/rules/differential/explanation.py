"""One differential entry: its head (code, rank, likelihood: what the ranking says) and, on top of
the head, its explanation (for, against, next tests, what would change it, working)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from leukos.domain.assessment import DifferentialEntry, RankedDiagnosis
from leukos.knowledge import Parameter
from leukos.knowledge.differential_rules import AREA, CriterionRow, DiagnosisRules, DifferentialRules, gate_terms
from leukos.rules.differential.cml_phase import PhaseResult, cml_phase, cml_phase_code
from leukos.rules.differential.features import Feature
from leukos.rules.differential.quantities import MEASURES
from leukos.rules.differential.ranking import Context, Scored, rank_if_present

__all__ = ["head", "entry"]


def _fmt_cites(cites) -> str:
    return "[" + ", ".join(cites) + "]"


def _row_text(row: CriterionRow, feat: Feature | None) -> str:
    label = feat.label if feat is not None else "diagnosis stated in the case"
    detail = f" ({feat.detail})" if feat is not None and feat.detail else ""
    flag = " (unverified)" if row.status == "U" else ""
    return f"{label}{detail}: {row.text}{flag} {_fmt_cites(row.citations)}"


def _would_change(ctx: Context, ranked: list[Scored], me: Scored, my_rank: int) -> list[str]:
    out = []
    seen: set[str] = set()
    for name in _what_if_names(me.dx):
        if name in seen or name == "known_diagnosis" or ctx.vals[name] is not None:
            continue
        seen.add(name)
        new = rank_if_present(ctx, ranked, me.dx.code, name)
        if new is None:
            continue
        new_band, new_rank = new
        if new_band == me.band and new_rank == my_rank:
            continue
        f = ctx.feats[name]
        where = ", ".join(f.sources) if f.sources else ", ".join(_feature_sources(ctx.rules, name))
        change = []
        if new_band != me.band:
            change.append(f"likelihood {me.band} -> {new_band}")
        if new_rank != my_rank:
            change.append(f"rank {my_rank} -> {new_rank}")
        out.append(f"{f.label} ({where}): {'; '.join(change)}")
    return out


_NAMES: dict[int, tuple[DiagnosisRules, tuple[str, ...]]] = {}


def _what_if_names(dx: DiagnosisRules) -> tuple[str, ...]:
    """The features whose presence could change this diagnosis: its criteria, then its gate terms
    (cached per rules object: the rules are immutable)."""
    hit = _NAMES.get(id(dx))
    if hit is not None and hit[0] is dx:
        return hit[1]
    if len(_NAMES) >= 256:
        _NAMES.pop(next(iter(_NAMES)))
    names = tuple([r.feature for r in dx.rows] + sorted(gate_terms(dx)))
    _NAMES[id(dx)] = (dx, names)
    return names


def _feature_sources(rules: DifferentialRules, name: str) -> tuple[str, ...]:
    spec = rules.features[name]
    if spec["kind"] == "measure":
        return MEASURES[spec["measure"]][2]
    return tuple(spec.get("sources", ()))


def _next_tests(ctx: Context, dx: DiagnosisRules) -> tuple[list[str], list[str], list[str]]:
    texts, shorts, cites = [], [], []
    for key in dx.next_tests:
        t = ctx.rules.tests[key]
        decides = t.get("decides", [])
        if decides and all(ctx.source(s) is not None for s in decides):
            continue
        texts.append(f"{t['text']} {_fmt_cites(t['citations'])}")
        shorts.append(t.get("short", key))
        cites.extend(t["citations"])
    return texts, shorts, cites


def _short_text(row: CriterionRow, feat: Feature | None) -> str:
    label = feat.label if feat is not None else "diagnosis stated in the case"
    detail = f" ({feat.detail})" if feat is not None and feat.detail else ""
    return f"{label}{detail}" + (" (U)" if row.status == "U" else "")


def head(ctx: Context, s: Scored, rank: int, *, explain: bool = True) -> tuple[RankedDiagnosis, PhaseResult | None]:
    """The listed diagnosis as ranked: code (CML with its phase), rank, likelihood, label, score and the
    edition settings it was read under; with the CML phase when the diagnosis is CML (not capped) and
    ``explain`` (without ``explain`` only the phase's code is worked out: the ranking alone shows no
    phase). The one definition of these for both the ranking alone and the explained entry."""
    kb, dx = ctx.kb, s.dx
    ph: PhaseResult | None = None
    code = dx.code
    settings: dict[str, Any] = {}
    if dx.code == "CML" and not s.capped_by:
        if explain:
            ph = cml_phase(ctx.case, kb, ctx.feats)
            code = ph.code
            settings[f"{AREA}.cml_phase_system"] = ph.system
        else:
            code = cml_phase_code(ctx.case, kb, ctx.feats)
            settings[f"{AREA}.cml_phase_system"] = kb.value(f"{AREA}.cml_phase_system")
    if dx.code == "CNL":
        settings[f"{AREA}.cnl_criteria"] = kb.value(f"{AREA}.cnl_criteria")
    if dx.code == "LEUKEMOID_PARANEOPLASTIC":
        settings[f"{AREA}.plr_high_criteria"] = kb.value(f"{AREA}.plr_high_criteria")
        settings[f"{AREA}.plr_leukocytosis_min"] = kb.value(f"{AREA}.plr_leukocytosis_min")
    return RankedDiagnosis(code=code, rank=rank, likelihood=s.band, label=dx.label,
                           score=s.score, settings=MappingProxyType(settings)), ph


def entry(ctx: Context, ranked: list[Scored], s: Scored, top: RankedDiagnosis,
          ph: PhaseResult | None) -> DifferentialEntry:
    """The entry explained; ``top, ph`` are :func:`head` of ``s``."""
    kb, rules, feats = ctx.kb, ctx.rules, ctx.feats
    dx = s.dx
    rank = top.rank
    supporting = [_row_text(r, feats.get(r.feature)) for r in s.fired if r.weight >= 0]
    against = [_row_text(r, feats.get(r.feature)) for r in s.fired if r.weight < 0]
    citations: list[str] = [c for r in s.fired for c in r.citations]
    unverified = [f"{feats[r.feature].label if r.feature in feats else r.feature}: {r.text}"
                  for r in s.fired if r.status == "U"]
    used_params: dict[str, Parameter] = {}
    for r in s.fired:
        f = feats.get(r.feature)
        for p in (f.params if f else ()):
            used_params[p.key] = p
    for p in used_params.values():
        citations.extend(p.citations)
        if p.unverified:
            unverified.append(f"threshold {p.key} = {p.value} {p.unit} (unverified)")
    unverified.append("points per criterion and likelihood bands are software choices (leukos_operational)")
    band_params = [kb.param(f"{AREA}.likelihood_high_min_points"), kb.param(f"{AREA}.likelihood_moderate_min_points")]
    citations.append("leukos_operational")

    # Which case fields were looked at (every decided feature this diagnosis reads)
    features_used: dict[str, Any] = {}
    for r in dx.rows:
        v = ctx.known[dx.code] if r.feature == "known_diagnosis" else ctx.vals[r.feature]
        if v is None:
            continue
        read = ctx.read_by.get(r.feature)
        if read is None:  # once per feature and call: the case fields it reads that have a value
            sources = ("findings.known_diagnosis",) if r.feature == "known_diagnosis" else \
                _feature_sources(rules, r.feature)  # what its Feature lists: no need to build it
            read = ctx.read_by[r.feature] = [(src, ctx.source(src)) for src in sources
                                             if ctx.source(src) is not None]
        features_used.update(read)

    notes = list(dx.notes)
    working: dict[str, Any] = {
        "score": s.score,
        "points": [{"feature": r.feature, "weight": r.weight, "status": r.status} for r in s.fired],
        "likelihood_thresholds": {p.key: p.value for p in band_params},
        "high_requires": [list(alt) for alt in dx.gate],
        "high_requires_met": s.gate_met,
        "capped_by": list(s.capped_by),
    }
    would = _would_change(ctx, ranked, s, rank)
    if dx.code == "CML" and s.capped_by:
        working["phase"] = {"phase": None, "reason": "CML excluded by " + ", ".join(s.capped_by)}
    elif ph is not None:
        notes.extend(ph.notes)
        working["phase"] = {"system": ph.system, "phase": ph.phase, "criteria_met": list(ph.met),
                            "high_risk_features": list(ph.high_risk), "not_assessed": list(ph.not_assessed)}
        citations.extend(ph.citations)
        unverified.extend(f"phase criterion: {t}" for t in ph.unverified)
        for t in ph.met:
            supporting.append(f"phase ({ph.system}): {t} {_fmt_cites(ph.citations)}")
        for t in ph.high_risk:
            supporting.append(f"WHO 2022 {t} {_fmt_cites(ph.citations)}")
        for row in rules.phases:
            if row["system"] == ph.system and "measure" in row:
                for src in MEASURES[row["measure"]][2]:
                    if ctx.source(src) is not None:
                        features_used.setdefault(src, ctx.source(src))
        if ph.phase is None:
            would.append(f"CML phase ({ph.system}) undetermined: needs {', '.join(ph.missing) or 'more findings'}")
    if top.settings:
        working["settings"] = dict(top.settings)
    if dx.gate and not s.gate_met and s.band != "high":
        def lab(n: str) -> str:
            return feats[n].label if n in feats else n

        notes.append("Not 'high' without the defining finding(s): " + " OR ".join(
            " + ".join(lab(t) if isinstance(t, str) else "(" + " or ".join(map(lab, t)) + ")" for t in alt)
            for alt in dx.gate))
    elif not dx.gate:
        notes.append("No defining criteria are encoded for this code: it is never ranked 'high'.")
    if not s.may_lead:
        notes.append("Never ranked first without one of: " + ", ".join(
            feats[n].label if n in feats else "diagnosis stated in the case" for n in dx.lead_requires))
    if dx.outside:
        notes.append("Not in the case format (would also inform this): " + "; ".join(dx.outside))
    tests, short_tests, test_cites = _next_tests(ctx, dx)
    citations.extend(test_cites)
    working["summary"] = {
        "for": [_short_text(r, feats.get(r.feature)) for r in s.fired if r.weight > 0]
        + [t.split(" [", 1)[0] for t in supporting if t.startswith(("phase (", "WHO 2022"))],
        "context": [_short_text(r, feats.get(r.feature)) for r in s.fired if r.weight == 0],
        "against": [_short_text(r, feats.get(r.feature)) for r in s.fired if r.weight < 0],
        "tests": short_tests,
    }
    return DifferentialEntry(
        code=top.code,
        rank=rank,
        likelihood=top.likelihood,
        supporting=tuple(supporting),
        against=tuple(against),
        next_tests=tuple(tests),
        features_used=MappingProxyType(features_used),
        would_change=tuple(would),
        citations=tuple(dict.fromkeys(citations)),
        label=top.label,
        score=top.score,
        unverified=tuple(dict.fromkeys(unverified)),
        notes=tuple(notes),
        working=MappingProxyType(working),
    )


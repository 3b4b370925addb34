"""The episode logic, written once as ibis expressions that run unchanged on DuckDB and Spark.

Pipeline (every number from the knowledge base, see :class:`ScreenParams`):

1. **clean**: join each observation with the (analyte, unit) -> factor table computed from
   :class:`leukos.units.UnitConverter` (:func:`leukos.screening.factors.unit_factors`), convert
   to the canonical unit, and give every unusable row an ``exclusion`` reason (missing value,
   text in a numeric field, missing or future time, unknown unit, implausible value, duplicate,
   a censored value that cannot be placed against the threshold). Excluded rows are counted,
   never silently dropped.
2. **episodes**: WBC results above ``hyperleukocytosis.wbc_threshold`` (strictly greater,
   "> 100 x10^9/L"; a ``>X`` result counts when X >= threshold) grouped per person: a new
   episode starts after a WBC at or below the threshold, or after a gap longer than
   ``screening.episode_gap_hours`` between extreme counts.
3. per episode: peak WBC and its time, absolute blasts (WBC x blasts % / 100 of the same draw,
   i.e. same person and time) peak within the episode, the potassium, phosphate, uric acid,
   calcium and creatinine nearest in time to the peak WBC within the Cairo-Bishop window
   anchored at the episode, the TLS laboratory criteria on those values
   (``tumour_lysis.*``), the pseudohyperkalaemia flag and the first cytoreduction.

References: clinical.md §1 (threshold), §4 (pseudohyperkalaemia), §5a/5b (TLS laboratory criteria).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leukos.knowledge import KnowledgeBase

__all__ = ["ScreenParams", "clean_observations", "episodes", "EXCLUSION_REASONS", "CHEMISTRY", "EPISODE_COLUMNS"]

CHEMISTRY = {  # analyte -> output column (canonical units of labs.toml)
    "potassium": "potassium_mmol_per_l",
    "phosphate": "phosphate_mmol_per_l",
    "uric_acid": "uric_acid_umol_per_l",
    "calcium": "calcium_mmol_per_l",
    "creatinine": "creatinine_umol_per_l",
}
TLS_LAB_ANALYTES = ("uric_acid", "potassium", "phosphate", "calcium")

EXCLUSION_REASONS = ("missing_person", "missing_value", "non_numeric", "missing_time", "future_time",
                     "unknown_unit", "implausible", "censored_indeterminate", "duplicate")

EPISODE_COLUMNS = (
    "person_id", "episode_no", "episode_id", "start_ts", "end_ts", "duration_hours", "n_results",
    "peak_wbc_10e9_per_l", "peak_ts", "peak_censored", "peak_abs_blasts_10e9_per_l",
    *CHEMISTRY.values(), *(f"{a}_ts" for a in CHEMISTRY),
    "tls_uric_acid", "tls_potassium", "tls_phosphate", "tls_calcium", "tls_criteria_met", "tls_laboratory",
    "pseudohyperkalemia_possible", "first_cytoreduction_ts", "first_cytoreduction_kind",
    "hours_to_cytoreduction", "flags", "threshold_10e9_per_l", "ruleset_version",
)


def _chem_ts_name(analyte: str) -> str:
    return f"{analyte}_ts"


@dataclass(frozen=True)
class ScreenParams:
    """Every number the episode logic uses, read from the knowledge base once.

    Units: WBC x10^9/L, potassium/phosphate/calcium mmol/L, uric acid umol/L, hours.
    """

    ruleset_version: str
    wbc_threshold: float
    gap_hours: float
    chemistry_hours_before: float
    chemistry_hours_after: float
    tls_definition: str
    uric_acid_min: float
    potassium_min: float
    phosphate_min: float
    phosphate_min_child: float
    calcium_max: float
    tls_inclusive: bool  # Cairo-Bishop: >= / <= ; Howard: > / <
    pseudohyperkalemia_potassium_min: float
    now: datetime

    @classmethod
    def from_kb(cls, kb: KnowledgeBase, *, now: datetime, gap_hours: float | None = None) -> ScreenParams:
        # Thresholds in canonical units exactly as the per-patient rules compute them (a source's
        # two printed equivalents, e.g. 7 mg/dL = 1.75 mmol/L: the more inclusive one is used).
        from leukos.rules import threshold

        definition = kb.value("tumour_lysis.definition")
        howard = definition == "howard"
        return cls(
            ruleset_version=kb.ruleset_version,
            wbc_threshold=float(kb.value("hyperleukocytosis.wbc_threshold")),
            gap_hours=float(gap_hours if gap_hours is not None else kb.value("screening.episode_gap_hours")),
            chemistry_hours_before=24.0 * float(kb.value("screening.chemistry_days_before")),
            chemistry_hours_after=24.0 * float(kb.value("screening.chemistry_days_after")),
            tls_definition=definition,
            uric_acid_min=threshold(kb, "tumour_lysis.howard_uric_acid_min" if howard
                                         else "tumour_lysis.uric_acid_min", "uric_acid"),
            potassium_min=threshold(kb, "tumour_lysis.potassium_min", "potassium"),
            # Lab tables carry no age: like the per-patient engine with age unknown, the phosphate
            # criterion is decided only where the adult and child thresholds agree.
            phosphate_min=threshold(kb, "tumour_lysis.howard_phosphate_min_adult" if howard
                                         else "tumour_lysis.phosphate_min_adult", "phosphate"),
            phosphate_min_child=threshold(kb, "tumour_lysis.phosphate_min_child", "phosphate"),
            calcium_max=threshold(kb, "tumour_lysis.calcium_max", "calcium", met_when="below"),
            tls_inclusive=not howard,
            # "High potassium with extreme leukocytosis may be spurious": high = the TLS potassium
            # criterion, as in rules/artefacts.py.
            pseudohyperkalemia_potassium_min=float(kb.value("tumour_lysis.potassium_min")),
            now=now,
        )

    def citations(self) -> list[str]:
        return ["ganzel2012", "rollig2015", "cairo_bishop2004", "howard2011", "mahto2021", "leukos_operational"]

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["now"] = self.now.isoformat()
        return d


def _epoch(col):
    return col.epoch_seconds().cast("float64")


def clean_observations(obs, factors, params: ScreenParams):
    """Convert to canonical units and attach an ``exclusion`` reason (null = usable).

    ``factors`` has columns ``f_analyte, f_unit, factor, low, high`` (plausible bounds in the
    canonical unit). Returns columns person_id, ts, analyte, value (canonical), unit, comparator,
    exclusion.
    """
    import ibis

    o = obs.mutate(unit_key=obs.unit.coalesce(""))
    j = o.left_join(factors, [o.analyte == factors.f_analyte, o.unit_key == factors.f_unit])
    canon = j.value * j.factor
    thr = params.wbc_threshold
    cmp = j.comparator.coalesce("")
    is_wbc = j.analyte == "wbc"
    censored_bad = ibis.ifelse(
        is_wbc,
        ((cmp.isin(["<", "<="])) & (canon > thr)) | ((cmp == ">") & (canon < thr)) | ((cmp == ">=") & (canon <= thr)),
        cmp != "",
    )
    exclusion = ibis.cases(
        (j.person_id.isnull() | (j.person_id == ""), "missing_person"),
        (j.value.isnull() & ~j.value_given, "missing_value"),
        (j.value.isnull(), "non_numeric"),
        (j.ts.isnull(), "missing_time"),
        (j.ts > ibis.literal(params.now), "future_time"),
        (j.factor.isnull(), "unknown_unit"),
        (canon.isnan() | (canon < j.low) | (canon > j.high), "implausible"),
        (censored_bad, "censored_indeterminate"),
        else_=ibis.null("string"),
    )
    return j.select(person_id=j.person_id, ts=j.ts, analyte=j.analyte, value=canon, unit=j.unit,
                    comparator=j.comparator, exclusion=exclusion)


def usable(clean):
    """The rows without an exclusion, each once: a repeat of the same person, analyte, time, value
    and comparator is a duplicate (counted as ``duplicate``: rows before minus rows after)."""
    ok = clean.filter(clean.exclusion.isnull())
    return ok.select("person_id", "ts", "analyte", "value", "comparator").distinct()


def screened_persons(clean, params: ScreenParams):
    """The usable rows (:func:`usable`) of the persons with at least one WBC above the threshold:
    the only rows the episode logic needs, a small part of a population. The persons are found
    first and the rows joined to them (a semi-join) before anything costly is done."""
    ok = clean.filter(clean.exclusion.isnull())
    thr = params.wbc_threshold
    cmp_key = ok.comparator.coalesce("")
    high = (ok.analyte == "wbc") & ((ok.value > thr) | ((cmp_key == ">") & (ok.value >= thr)))
    persons = ok.filter(high).select(hp_person_id=ok.person_id).distinct()
    return usable(clean.semi_join(persons, clean.person_id == persons.hp_person_id))


def episodes(valid, params: ScreenParams, events=None, births=None):
    """Hyperleukocytosis episodes from :func:`usable` rows, one row per episode (:data:`EPISODE_COLUMNS`)."""
    import ibis

    thr = params.wbc_threshold
    cmp_key = valid.comparator.coalesce("")
    wbc = valid.filter(valid.analyte == "wbc").mutate(cmp_key=cmp_key)
    wbc = wbc.mutate(high=(wbc.value > thr) | ((wbc.cmp_key == ">") & (wbc.value >= thr)))
    order = [wbc.ts, wbc.value, wbc.cmp_key]
    w_all = ibis.window(group_by=wbc.person_id, order_by=order, rows=(None, 0))
    wbc = wbc.mutate(run=ibis.ifelse(wbc.high, 0, 1).sum().over(w_all))
    h = wbc.filter(wbc.high)
    w_run = ibis.window(group_by=[h.person_id, h.run], order_by=[h.ts, h.value, h.cmp_key])
    h = h.mutate(prev=h.ts.lag().over(w_run))
    h = h.mutate(brk=ibis.ifelse(h.prev.isnull() | ((_epoch(h.ts) - _epoch(h.prev)) > params.gap_hours * 3600.0), 1, 0))
    w_cum = ibis.window(group_by=[h.person_id, h.run], order_by=[h.ts, h.value, h.cmp_key], rows=(None, 0))
    h = h.mutate(seg=h.brk.sum().over(w_cum))
    h = h.mutate(peak=h.value.max().over(ibis.window(group_by=[h.person_id, h.run, h.seg])))
    ep = h.group_by([h.person_id, h.run, h.seg]).aggregate(
        start_ts=h.ts.min(),
        end_ts=h.ts.max(),
        n_results=h.count(),
        peak_wbc_10e9_per_l=h.value.max(),
        peak_ts=h.ts.min(where=h.value == h.peak),
        peak_censored=(h.cmp_key.isin([">", ">="]) & (h.value == h.peak)).any(),
    )
    ep = ep.mutate(episode_no=ibis.row_number().over(ibis.window(group_by=ep.person_id, order_by=ep.start_ts)) + 1)
    ep = ep.mutate(episode_id=ep.person_id.concat(":", ep.episode_no.cast("string")),
                   duration_hours=(_epoch(ep.end_ts) - _epoch(ep.start_ts)) / 3600.0)
    ep = ep.drop("run", "seg")
    keys = ep.select("episode_id", "person_id", "start_ts", "end_ts", "peak_ts")

    # Absolute blasts: blasts % x WBC of the same draw (same person and time), within the episode.
    bl = valid.filter(valid.analyte == "blasts_pct")
    wv = valid.filter(valid.analyte == "wbc").select(wp=valid.person_id, wt=valid.ts, wv=valid.value)
    bj = bl.join(wv, [bl.person_id == wv.wp, bl.ts == wv.wt])
    bj = bj.select(bp=bj.person_id, bt=bj.ts, abs_blasts=bj.wv * bj.value / 100.0)
    be = keys.join(bj, [keys.person_id == bj.bp, bj.bt >= keys.start_ts, bj.bt <= keys.end_ts])
    blasts = be.group_by(be.episode_id).aggregate(peak_abs_blasts_10e9_per_l=be.abs_blasts.max())
    blasts = blasts.rename(b_episode_id="episode_id")

    # Chemistry nearest to the peak WBC, within [start - before, end + after].
    ch = valid.filter(valid.analyte.isin(list(CHEMISTRY)))
    ch = ch.select(cp=ch.person_id, ct=ch.ts, ca=ch.analyte, cv=ch.value)
    cj = keys.join(ch, [keys.person_id == ch.cp,
                        _epoch(ch.ct) >= _epoch(keys.start_ts) - params.chemistry_hours_before * 3600.0,
                        _epoch(ch.ct) <= _epoch(keys.end_ts) + params.chemistry_hours_after * 3600.0])
    cj = cj.mutate(dist=(_epoch(cj.ct) - _epoch(cj.peak_ts)).abs())
    cj = cj.mutate(rn=ibis.row_number().over(ibis.window(group_by=[cj.episode_id, cj.ca],
                                                         order_by=[cj.dist, cj.ct, cj.cv])))
    cj = cj.filter(cj.rn == 0)
    aggs = {}
    for analyte, col in CHEMISTRY.items():
        aggs[col] = cj.cv.max(where=cj.ca == analyte)
        aggs[_chem_ts_name(analyte)] = cj.ct.max(where=cj.ca == analyte)
    chem = cj.group_by(cj.episode_id).aggregate(**aggs).rename(c_episode_id="episode_id")

    out = ep.left_join(blasts, ep.episode_id == blasts.b_episode_id).drop("b_episode_id")
    out = out.left_join(chem, out.episode_id == chem.c_episode_id).drop("c_episode_id")

    # First cytoreduction (drug or procedure) from the day of the first extreme count on.
    if events is not None:
        ev = events.filter(events.ts.notnull() & events.person_id.notnull())
        ev = ev.select(ep_=ev.person_id, et=ev.ts, ek=ev.kind)
        ej = keys.join(ev, [keys.person_id == ev.ep_,
                            _epoch(ev.et) >= (_epoch(keys.start_ts) / 86400.0).floor().cast("float64") * 86400.0])
        ej = ej.mutate(rn=ibis.row_number().over(ibis.window(group_by=ej.episode_id, order_by=[ej.et, ej.ek])))
        ej = ej.filter(ej.rn == 0).select(e_episode_id=ej.episode_id, first_cytoreduction_ts=ej.et,
                                          first_cytoreduction_kind=ej.ek)
        out = out.left_join(ej, out.episode_id == ej.e_episode_id).drop("e_episode_id")
    else:
        out = out.mutate(first_cytoreduction_ts=ibis.null("timestamp"), first_cytoreduction_kind=ibis.null("string"))
    out = out.mutate(hours_to_cytoreduction=(_epoch(out.first_cytoreduction_ts) - _epoch(out.start_ts)) / 3600.0)

    # TLS laboratory criteria on the attached values (null when the value is missing).
    p = params
    def ge(col, limit):
        return col >= limit if p.tls_inclusive else col > limit

    phos_adult, phos_child = ge(out.phosphate_mmol_per_l, p.phosphate_min), ge(out.phosphate_mmol_per_l,
                                                                            p.phosphate_min_child)
    crit = {"tls_uric_acid": ge(out.uric_acid_umol_per_l, p.uric_acid_min),
            "tls_potassium": ge(out.potassium_mmol_per_l, p.potassium_min),
            "tls_phosphate": ibis.ifelse(phos_adult == phos_child, phos_adult, ibis.null("boolean")),
            "tls_calcium": (out.calcium_mmol_per_l <= p.calcium_max) if p.tls_inclusive
            else (out.calcium_mmol_per_l < p.calcium_max)}
    out = out.mutate(**crit)
    met = sum(ibis.ifelse(out[c].coalesce(False), 1, 0) for c in crit)
    unknown = sum(ibis.ifelse(out[c].isnull(), 1, 0) for c in crit)
    out = out.mutate(tls_criteria_met=met.cast("int64"), _unknown=unknown)
    # As the per-patient engine: True with >= 2 criteria met, False when < 2 could still be met.
    out = out.mutate(tls_laboratory=ibis.cases((out.tls_criteria_met >= 2, True),
                                               (out.tls_criteria_met + out._unknown < 2, False),
                                               else_=ibis.null("boolean")),
                     pseudohyperkalemia_possible=out.potassium_mmol_per_l >= p.pseudohyperkalemia_potassium_min)
    flags = ibis.ifelse(out.tls_laboratory.coalesce(False), ",TLS_LABORATORY", "")
    flags = flags.concat(ibis.ifelse(out.pseudohyperkalemia_possible.coalesce(False), ",PSEUDOHYPERKALEMIA_POSSIBLE", ""))
    flags = flags.concat(ibis.ifelse(out.peak_censored.coalesce(False), ",PEAK_CENSORED", ""))
    out = out.mutate(flags=flags.substr(1), threshold_10e9_per_l=ibis.literal(float(thr)),
                     ruleset_version=ibis.literal(p.ruleset_version))
    return out.select(*EPISODE_COLUMNS).order_by(["person_id", "episode_no"])


def exclusion_counts(clean):
    """Rows per (analyte, exclusion) - small."""
    return clean.group_by(["analyte", "exclusion"]).aggregate(n=clean.count())


def unknown_units(clean):
    """Distinct (analyte, unit) pairs that could not be converted, with counts."""
    u = clean.filter(clean.exclusion == "unknown_unit")
    return u.group_by(["analyte", "unit"]).aggregate(n=u.count())

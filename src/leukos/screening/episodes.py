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

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from leukos.knowledge import KnowledgeBase

__all__ = ["ScreenParams", "clean_observations", "episodes", "EXCLUSION_REASONS", "CHEMISTRY", "EPISODE_COLUMNS"]

CHEMISTRY = {  # analyte -> output column (canonical units of labs.toml)
    "potassium": "potassium_mmol_per_l",
    "potassium_plasma": "potassium_plasma_mmol_per_l",
    "phosphate": "phosphate_mmol_per_l",
    "uric_acid": "uric_acid_umol_per_l",
    "calcium": "calcium_mmol_per_l",
    "ionized_calcium": "ionized_calcium_mmol_per_l",
    "creatinine": "creatinine_umol_per_l",
}
TLS_LAB_ANALYTES = ("uric_acid", "potassium", "phosphate", "calcium")

# What the batch path does not assess, by rule, and why (summary.json "not_assessed").
NOT_ASSESSED = {
    "tumour_lysis.clinical": "needs arrhythmia, seizure and the creatinine upper limit of normal per patient",
    "tumour_lysis.risk": "needs the diagnosis (Cairo 2010 tiers)",
    "artefacts.pseudohyperkalemia_confirmed": "needs serum and plasma potassium of the same draw; the batch path "
                                              "prefers a plasma potassium when one is in the window",
    "artefacts.other": "pseudohypoxaemia, spurious platelets and red cell indices, pseudohypokalaemia and "
                       "pseudohypophosphataemia are not screened",
    "leukostasis": "needs symptoms and signs",
    "differential": "needs smear, immunophenotype and history",
    "management": "needs the clinical picture; screening finds episodes, it does not recommend",
    "coagulation": "DIC scores are not screened",
}

EXCLUSION_REASONS = ("missing_person", "missing_value", "non_numeric", "missing_time", "future_time",
                     "unknown_unit", "implausible", "censored_indeterminate", "duplicate")

EPISODE_COLUMNS = (
    "person_id", "episode_no", "episode_id", "start_ts", "end_ts", "duration_hours", "n_results",
    "peak_wbc_10e9_per_l", "peak_ts", "peak_censored", "peak_abs_blasts_10e9_per_l",
    *CHEMISTRY.values(), *(f"{a}_ts" for a in CHEMISTRY), *(f"{a}_baseline" for a in CHEMISTRY),
    *(f"{a}_reference_high" for a in CHEMISTRY), "child",
    "tls_uric_acid", "tls_potassium", "tls_phosphate", "tls_calcium", "tls_criteria_met", "tls_laboratory",
    "pseudohyperkalemia_possible", "first_cytoreduction_ts", "first_cytoreduction_kind",
    "hours_to_cytoreduction", "flags", "threshold_10e9_per_l", "ruleset_version",
)


def _chem_ts_name(analyte: str) -> str:
    return f"{analyte}_ts"


@dataclass(frozen=True)
class ScreenParams:
    """The episode parameters (WBC x10^9/L, hours), read from the knowledge base once.

    The clinical criteria themselves are the shared definitions of
    :mod:`leukos.rules.definitions`, compiled with ``kb`` (:mod:`leukos.screening.compile`).
    """

    ruleset_version: str
    wbc_threshold: float
    gap_hours: float
    chemistry_hours_before: float
    chemistry_hours_after: float
    tls_definition: str
    child_below_age: float
    now: datetime
    kb: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_kb(cls, kb: KnowledgeBase, *, now: datetime, gap_hours: float | None = None) -> ScreenParams:
        from leukos.rules.definitions import limit, tls_laboratory

        # Convert every limit now (it builds the UCUM registry once, off the engine's critical path).
        for crit in tls_laboratory(kb).criteria:
            for part in _compares(crit.predicate):
                limit(kb, part)
        return cls(
            ruleset_version=kb.ruleset_version,
            wbc_threshold=float(kb.value("hyperleukocytosis.wbc_threshold")),
            gap_hours=float(gap_hours if gap_hours is not None else kb.value("screening.episode_gap_hours")),
            chemistry_hours_before=24.0 * float(kb.value("screening.chemistry_days_before")),
            chemistry_hours_after=24.0 * float(kb.value("screening.chemistry_days_after")),
            tls_definition=str(kb.value("tumour_lysis.definition")),
            child_below_age=float(kb.value("tumour_lysis.child_below_age")),
            now=now,
            kb=kb,
        )

    def citations(self) -> list[str]:
        from leukos.rules.definitions import params_of, pseudohyperkalaemia_possible, tls_laboratory

        keys = ["hyperleukocytosis.wbc_threshold", "screening.episode_gap_hours", "screening.chemistry_days_before",
                "tumour_lysis.laboratory_min_criteria", "tumour_lysis.child_below_age"]
        for crit in tls_laboratory(self.kb).criteria:
            keys += params_of(crit.predicate)
        keys += params_of(pseudohyperkalaemia_possible())
        return sorted({c for k in keys for c in self.kb.param(k).citations} | {"mahto2021"})

    def to_dict(self) -> dict[str, Any]:
        from leukos.rules.definitions import limit, tls_laboratory

        d = {k: v for k, v in self.__dict__.items() if k != "kb"}
        d["now"] = self.now.isoformat()
        d["tls_limits"] = {p.param: round(limit(self.kb, p), 6) for c in tls_laboratory(self.kb).criteria
                           for p in _compares(c.predicate)}
        d["tls_laboratory_min_criteria"] = int(self.kb.value("tumour_lysis.laboratory_min_criteria"))
        return d


def _compares(p):
    from leukos.rules.definitions import Compare, walk

    return [x for x in walk(p) if isinstance(x, Compare)]


def _epoch(col):
    return col.epoch_seconds().cast("float64")


def _missing_id(col):
    """No person: a null id, or (text ids only) an empty one."""
    if col.type().is_string():
        return col.isnull() | (col == "")
    return col.isnull()


def _id_as_text(col):
    """The person id as the episodes give it: text (an integer id is worked on as an integer)."""
    return col if col.type().is_string() else col.cast("string")


def clean_observations(obs, factors, params: ScreenParams):
    """Convert to canonical units and attach an ``exclusion`` reason (null = usable).

    ``factors`` has columns ``f_analyte, f_unit, factor, low, high`` (plausible bounds in the
    canonical unit). Returns columns person_id, ts, analyte, value (canonical), unit, comparator,
    exclusion.
    """
    import ibis

    from leukos.rules.definitions import hyperleukocytosis_present
    from leukos.screening.compile import compare_expr

    if "ref_high" not in obs.columns:
        obs = obs.mutate(ref_high=ibis.null("float64"))
    o = obs.mutate(unit_key=obs.unit.coalesce(""))
    j = o.left_join(factors, [o.analyte == factors.f_analyte, o.unit_key == factors.f_unit])
    canon = j.value * j.factor
    cmp = j.comparator.coalesce("")
    # A censored WBC that the hyperleukocytosis definition cannot place is unusable for episodes;
    # censored chemistry is not used (the TLS limits are not placed against censored values).
    placed = compare_expr(hyperleukocytosis_present(), canon, j.comparator, params.kb)
    censored_bad = ibis.ifelse(j.analyte == "wbc", placed.isnull() & (cmp != ""), cmp != "")
    exclusion = ibis.cases(
        (_missing_id(j.person_id), "missing_person"),
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
                    comparator=j.comparator, ref_high=j.ref_high * j.factor, exclusion=exclusion)


def _high(t, params: ScreenParams):
    """The shared hyperleukocytosis definition on rows with value and comparator (True only)."""
    from leukos.rules.definitions import hyperleukocytosis_present
    from leukos.screening.compile import compare_expr

    return compare_expr(hyperleukocytosis_present(), t.value, t.comparator, params.kb).coalesce(False)


def usable(clean):
    """The rows without an exclusion, each once: a repeat of the same person, analyte, time, value
    and comparator is a duplicate (counted as ``duplicate``: rows before minus rows after)."""
    ok = clean.filter(clean.exclusion.isnull())
    return ok.group_by(["person_id", "ts", "analyte", "value", "comparator"]).aggregate(ref_high=ok.ref_high.max())


def high_persons(clean, params: ScreenParams):
    """The distinct persons (column ``hp_person_id``) with at least one usable WBC above the threshold."""
    wbc = clean.filter(clean.analyte == "wbc")
    # The test above the threshold first: it is cheaper than the exclusion and leaves few rows.
    ok = wbc.filter(_high(wbc, params)).filter(wbc.exclusion.isnull())
    return ok.select(hp_person_id=ok.person_id).distinct()


def screened_persons(clean, params: ScreenParams, obs=None, factors=None):
    """The usable rows (:func:`usable`) of the persons with at least one WBC above the threshold:
    the only rows the episode logic needs, a small part of a population. The persons are found
    first and the rows joined to them (a semi-join) before anything costly is done.

    With ``obs`` and ``factors`` (what ``clean`` was made of), the semi-join is applied to the
    observations and only the persons' rows are cleaned: the same rows (cleaning is row by
    row), without converting and classifying every row of the population a second time.
    """
    persons = high_persons(clean, params)
    if obs is not None:
        rows = obs.semi_join(persons, obs.person_id == persons.hp_person_id)
        return usable(clean_observations(rows, factors, params))
    return usable(clean.semi_join(persons, clean.person_id == persons.hp_person_id))


def episodes(valid, params: ScreenParams, events=None, births=None, stage=None):
    """Hyperleukocytosis episodes from :func:`usable` rows, one row per episode (:data:`EPISODE_COLUMNS`).

    ``stage(name, table)`` is called on the intermediate tables (the WBC episodes, the chemistry
    per episode, the episodes joined to everything) and its result used in their place: the
    DuckDB plan compiles and runs each stage on its own (:mod:`leukos.screening.plan`); by
    default the expression is one piece.
    """
    import ibis

    stage = stage or (lambda name, table: table)

    thr = params.wbc_threshold
    cmp_key = valid.comparator.coalesce("")
    wbc = valid.filter(valid.analyte == "wbc").mutate(cmp_key=cmp_key)
    wbc = wbc.mutate(high=_high(wbc, params))
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
    # person_key: the id as text (output, events, year of birth); person_id: as the rows have it.
    ep = ep.mutate(person_key=_id_as_text(ep.person_id))
    ep = ep.mutate(episode_id=ep.person_key.concat(":", ep.episode_no.cast("string")),
                   duration_hours=(_epoch(ep.end_ts) - _epoch(ep.start_ts)) / 3600.0)
    ep = stage("wbc_episodes", ep.drop("run", "seg"))
    keys = ep.select("episode_id", "person_id", "person_key", "start_ts", "end_ts", "peak_ts")

    # Absolute blasts: blasts % x WBC of the same draw (same person and time), within the episode.
    bl = valid.filter(valid.analyte == "blasts_pct")
    wv = valid.filter(valid.analyte == "wbc").select(wp=valid.person_id, wt=valid.ts, wv=valid.value)
    bj = bl.join(wv, [bl.person_id == wv.wp, bl.ts == wv.wt])
    bj = bj.select(bp=bj.person_id, bt=bj.ts, abs_blasts=bj.wv * bj.value / 100.0)
    be = keys.join(bj, [keys.person_id == bj.bp, bj.bt >= keys.start_ts, bj.bt <= keys.end_ts])
    blasts = be.group_by(be.episode_id).aggregate(peak_abs_blasts_10e9_per_l=be.abs_blasts.max())
    blasts = blasts.rename(b_episode_id="episode_id")

    # Chemistry nearest to the peak WBC, within [start - before, end + after]; its baseline is the
    # earliest result of the window when the window has more than one (as Case.baseline).
    ch = valid.filter(valid.analyte.isin(list(CHEMISTRY)))
    ch = ch.select(cp=ch.person_id, ct=ch.ts, ca=ch.analyte, cv=ch.value, cc=ch.comparator, cr=ch.ref_high)
    cj = keys.join(ch, [keys.person_id == ch.cp,
                        _epoch(ch.ct) >= _epoch(keys.start_ts) - params.chemistry_hours_before * 3600.0,
                        _epoch(ch.ct) <= _epoch(keys.end_ts) + params.chemistry_hours_after * 3600.0])
    cj = cj.mutate(dist=(_epoch(cj.ct) - _epoch(cj.peak_ts)).abs())
    w_an = ibis.window(group_by=[cj.episode_id, cj.ca])
    cj = cj.mutate(rn=ibis.row_number().over(ibis.window(group_by=[cj.episode_id, cj.ca],
                                                         order_by=[cj.dist, cj.ct, cj.cv])),
                   first_rn=ibis.row_number().over(ibis.window(group_by=[cj.episode_id, cj.ca],
                                                               order_by=[cj.ct, cj.cv])),
                   n_in_window=cj.count().over(w_an))
    cur = cj.filter(cj.rn == 0)
    first = cj.filter((cj.first_rn == 0) & (cj.n_in_window > 1))
    first = first.select(b_episode_id=first.episode_id, b_ca=first.ca, cb=first.cv)
    cur = cur.left_join(first, [cur.episode_id == first.b_episode_id, cur.ca == first.b_ca])
    aggs = {}
    for analyte in CHEMISTRY:
        hit = cur.ca == analyte
        aggs[f"{analyte}_v"] = cur.cv.max(where=hit)
        aggs[f"{analyte}_c"] = cur.cc.max(where=hit)
        aggs[f"{analyte}_ref"] = cur.cr.max(where=hit)
        aggs[f"{analyte}_base"] = cur.cb.max(where=hit)
        aggs[_chem_ts_name(analyte)] = cur.ct.max(where=hit)
    chem = stage("chemistry", cur.group_by(cur.episode_id).aggregate(**aggs).rename(c_episode_id="episode_id"))

    out = ep.left_join(blasts, ep.episode_id == blasts.b_episode_id).drop("b_episode_id")
    out = out.left_join(chem, out.episode_id == chem.c_episode_id).drop("c_episode_id")

    # First cytoreduction (drug or procedure) from the day of the first extreme count on.
    if events is not None:
        ev = events.filter(events.ts.notnull() & events.person_id.notnull())
        ev = ev.select(ep_=ev.person_id, et=ev.ts, ek=ev.kind)
        ej = keys.join(ev, [keys.person_key == ev.ep_,
                            _epoch(ev.et) >= (_epoch(keys.start_ts) / 86400.0).floor().cast("float64") * 86400.0])
        ej = ej.mutate(rn=ibis.row_number().over(ibis.window(group_by=ej.episode_id, order_by=[ej.et, ej.ek])))
        ej = ej.filter(ej.rn == 0).select(e_episode_id=ej.episode_id, first_cytoreduction_ts=ej.et,
                                          first_cytoreduction_kind=ej.ek)
        out = out.left_join(ej, out.episode_id == ej.e_episode_id).drop("e_episode_id")
    else:
        out = out.mutate(first_cytoreduction_ts=ibis.null("timestamp"), first_cytoreduction_kind=ibis.null("string"))
    out = out.mutate(hours_to_cytoreduction=(_epoch(out.first_cytoreduction_ts) - _epoch(out.start_ts)) / 3600.0)

    # Age group at the first extreme count from the year of birth: the age is known to a year,
    # so the group is decided only when both ends of that year fall on the same side. A year of birth
    # that gives no person's age (after the count, or more than AGE_YEARS_MAX years before it) is a
    # slip in the record: the group is unknown, as the bedside leaves such a birth date out.
    if births is not None:
        from leukos.domain.case import AGE_YEARS_MAX, AGE_YEARS_MIN

        b = births.group_by("person_id").aggregate(yob=births.year_of_birth.min())
        b = b.select(y_person_id=b.person_id, yob=b.yob)
        out = out.left_join(b, out.person_key == b.y_person_id).drop("y_person_id")
        age_hi = out.start_ts.year() - out.yob
        cut = params.child_below_age
        out = out.mutate(child=ibis.cases((out.yob.isnull(), ibis.null("boolean")),
                                          ((age_hi < AGE_YEARS_MIN) | (age_hi - 1 > AGE_YEARS_MAX), ibis.null("boolean")),
                                          (age_hi < cut, True), (age_hi - 1 >= cut, False), else_=ibis.null("boolean")))
        out = out.drop("yob")
    else:
        out = out.mutate(child=ibis.null("boolean"))
    out = stage("joined", out)

    # The shared definitions (leukos.rules.definitions), compiled: the rules assess evaluates.
    from leukos.rules.definitions import pseudohyperkalaemia_possible, tls_laboratory
    from leukos.screening.compile import compile_count, compile_predicate

    kb = params.kb
    rule = tls_laboratory(kb)
    crit = {f"tls_{c.name}": compile_predicate(c.predicate, out, kb) for c in rule.criteria}
    out = out.mutate(**crit)
    met, verdict = compile_count({k: out[k] for k in crit}, rule, kb)
    out = out.mutate(tls_criteria_met=met, tls_laboratory=verdict)
    # Possible pseudohyperkalaemia: serum potassium only (a plasma potassium in the window decides instead).
    possible = compile_predicate(pseudohyperkalaemia_possible(), out, kb)
    out = out.mutate(pseudohyperkalemia_possible=ibis.ifelse(out.potassium_plasma_v.notnull(),
                                                             ibis.literal(False), possible))
    out = out.mutate(**{col: out[f"{a}_v"] for a, col in CHEMISTRY.items()},
                     **{f"{a}_baseline": out[f"{a}_base"] for a in CHEMISTRY},
                     **{f"{a}_reference_high": out[f"{a}_ref"] for a in CHEMISTRY})
    flags = ibis.ifelse(out.tls_laboratory.coalesce(False), ",TLS_LABORATORY", "")
    flags = flags.concat(ibis.ifelse(out.pseudohyperkalemia_possible.coalesce(False), ",PSEUDOHYPERKALEMIA_POSSIBLE", ""))
    flags = flags.concat(ibis.ifelse(out.peak_censored.coalesce(False), ",PEAK_CENSORED", ""))
    out = out.mutate(flags=flags.substr(1), threshold_10e9_per_l=ibis.literal(float(thr)),
                     ruleset_version=ibis.literal(params.ruleset_version))
    out = out.drop("person_id").rename(person_id="person_key")
    return out.select(*EPISODE_COLUMNS).order_by(["person_id", "episode_no"])


def exclusion_counts(clean):
    """Rows per (analyte, exclusion) - small."""
    return clean.group_by(["analyte", "exclusion"]).aggregate(n=clean.count())


def unknown_units(clean):
    """Distinct (analyte, unit) pairs that could not be converted, with counts."""
    u = clean.filter(clean.exclusion == "unknown_unit")
    return u.group_by(["analyte", "unit"]).aggregate(n=u.count())

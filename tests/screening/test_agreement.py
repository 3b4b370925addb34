"""One rule definition, three evaluators: ``assess`` (Python), DuckDB and Spark agree on every
finding they share, on generated multi-result series per person.

Each generated person has a series of WBC results (units as laboratories send them, censored
``>``/``<`` values, ties, gaps longer and shorter than the episode gap, counts at the
threshold), chemistry series around the TLS limits (serum and plasma potassium, total and
ionised calcium, upper reference limits), and a year of birth (adults, children and the
ambiguous year around the child age limit; and years of birth that give no person's age, which
both sides leave out).

For every episode the batch engine finds, the test builds the case of that episode itself,
in plain Python: the chemistry result nearest to the peak WBC in the episode window (the
current value) and the earliest result of the window (the baseline, when the window has more
than one), the age from the year of birth when the year decides the age group; then runs
``leukos.rules.assess`` on it and compares: hyperleukocytosis present, each TLS laboratory
criterion (met / not met / not assessed), laboratory TLS and possible pseudohyperkalaemia.
The episodes themselves are checked against a gaps-and-islands walk over the results the
shared hyperleukocytosis definition places above the threshold, and DuckDB against Spark.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from leukos.domain.case import AGE_YEARS_MAX, AGE_YEARS_MIN
from leukos.interop.case_format import case_from_dict
from leukos.knowledge import load_knowledge
from leukos.rules.definitions import hyperleukocytosis_present
from leukos.rules.engine import assess
from leukos.screening.engine import Obs, find_episodes, observations_table
from leukos.screening.episodes import CHEMISTRY, ScreenParams
from leukos.units import UnitConverter

from .conftest import NOW

KB = load_knowledge()
HOWARD = KB.with_overrides({"tumour_lysis.definition": "howard"})
BASE = NOW - timedelta(days=60)
UNITS = {  # unit -> factor to the canonical unit
    "wbc": {"10*9/L": 1.0, "K/uL": 1.0, "/uL": 0.001, "G/L": 1.0},
    "potassium": {"mmol/L": 1.0, "mEq/L": 1.0},
    "potassium_plasma": {"mmol/L": 1.0},
    "phosphate": {"mmol/L": 1.0, "mg/dL": 0.3229},
    "uric_acid": {"umol/L": 1.0, "mg/dL": 59.48},
    "calcium": {"mmol/L": 1.0, "mg/dL": 0.2495},
    "ionized_calcium": {"mmol/L": 1.0},
    "creatinine": {"umol/L": 1.0},
}
VALUES = {  # canonical values around the knowledge-base limits (WBC 100; TLS 476 / 6.0 / 1.45-2.1 / 1.75 / 1.12)
    "wbc": st.one_of(st.sampled_from([100.0, 100.5, 99.5, 150.0, 400.0, 20.0, 8.0]), st.floats(1, 1900)),
    "potassium": st.one_of(st.sampled_from([6.0, 5.9, 6.1, 4.2, 4.8, 3.5]), st.floats(1, 14)),
    "potassium_plasma": st.sampled_from([4.0, 6.0, 6.5]),
    "phosphate": st.one_of(st.sampled_from([1.45, 1.44, 2.1, 2.09, 1.0, 0.8]), st.floats(0.1, 9)),
    "uric_acid": st.one_of(st.sampled_from([476.0, 475.0, 300.0, 380.0, 700.0]), st.floats(10, 2900)),
    "calcium": st.one_of(st.sampled_from([1.75, 1.76, 2.3, 2.0]), st.floats(0.6, 5.5)),
    "ionized_calcium": st.sampled_from([1.0, 1.12, 1.2]),
    "creatinine": st.floats(20, 900),
}
REF_HIGH = {"potassium": 5.1, "uric_acid": 420.0}
_CONVERTER = UnitConverter(KB)


def _hours(draw) -> float:
    return draw(st.sampled_from([0.0, 0.0, 4.0, 12.0, 24.0, 71.0, 72.0, 73.0, 100.0, 200.0]))


@st.composite
def person(draw, pid: str):
    rows: list[Obs] = []
    t = BASE + timedelta(hours=draw(st.integers(0, 48)))
    for _ in range(draw(st.integers(1, 7))):
        t = t + timedelta(hours=_hours(draw))
        canonical = draw(VALUES["wbc"])
        unit = draw(st.sampled_from(sorted(UNITS["wbc"])))
        comparator = draw(st.sampled_from([None] * 8 + [">", "<"]))
        rows.append(Obs(pid, t, "wbc", canonical / UNITS["wbc"][unit], unit, comparator))
    first, last = rows[0].ts, rows[-1].ts
    for analyte in CHEMISTRY:
        for _ in range(draw(st.integers(0, 3 if analyte in ("potassium", "phosphate", "uric_acid", "calcium") else 1))):
            ts = first + timedelta(hours=draw(st.integers(-100, int((last - first).total_seconds() // 3600) + 200)))
            unit = draw(st.sampled_from(sorted(UNITS[analyte])))
            ref = REF_HIGH.get(analyte) if draw(st.booleans()) else None
            rows.append(Obs(pid, ts, analyte, draw(VALUES[analyte]) / UNITS[analyte][unit], unit,
                            ref_high=None if ref is None else ref / UNITS[analyte][unit]))
    if rows and draw(st.integers(0, 4)) == 0:
        rows.append(draw(st.sampled_from(rows)))  # an exact duplicate
    yob = draw(st.sampled_from([None, 1950, 1990, BASE.year - 10, BASE.year - 18, BASE.year - 19, BASE.year - 17,
                                BASE.year + 3, BASE.year - 200]))  # two slips: born after the count, 200 years before
    return rows, yob


@st.composite
def population(draw, n_min=1, n_max=6):
    out = [draw(person(f"p{i}")) for i in range(draw(st.integers(n_min, n_max)))]
    rows = [r for rs, _ in out for r in rs]
    births = {f"p{i}": yob for i, (_, yob) in enumerate(out) if yob is not None}
    return draw(st.permutations(rows)), births


# ---------------------------------------------------------------------------------------------
# the oracle side: plain Python over the same rows


class _One:
    """Inputs of a single WBC result, for the shared hyperleukocytosis definition."""

    def __init__(self, value, comparator):
        self.v = (value, comparator)


    def value(self, name):
        return self.v

    def reference_high(self, name):
        return None

    def baseline(self, name):
        return None

    def child(self):
        return None


def _canonical(rows, kb):
    """Distinct usable results in the canonical unit: (person, ts, analyte, value, comparator, ref)."""
    from leukos.rules.definitions import evaluate

    seen = {}
    for r in rows:
        f = _CONVERTER.factor(r.analyte, r.unit, field="test")
        value = r.value * f
        if r.analyte == "wbc" and evaluate(hyperleukocytosis_present(), _One(value, r.comparator), kb) is None:
            continue  # a censored count the definition cannot place: excluded (censored_indeterminate)
        key = (r.person_id, r.ts, r.analyte, value, r.comparator)
        ref = None if r.ref_high is None else r.ref_high * f
        seen[key] = max(ref, seen.get(key) or ref) if ref is not None else seen.get(key)
    return [(*k, ref) for k, ref in seen.items()]


def _oracle_episodes(results, kb, params):
    """Gaps and islands over the WBC results placed above the threshold by the shared definition."""
    from leukos.rules.definitions import evaluate

    by_person = defaultdict(list)
    for p, ts, a, v, c, _ in results:
        if a == "wbc":
            by_person[p].append((ts, v, c or ""))
    out = {}
    for p, series in by_person.items():
        series.sort()
        eps, cur = [], None
        for ts, v, c in series:
            high = evaluate(hyperleukocytosis_present(), _One(v, c or None), kb) is True
            if not high:
                cur = None
                continue
            if cur is None or (ts - cur[-1][0]).total_seconds() > params.gap_hours * 3600:
                cur = []
                eps.append(cur)
            cur.append((ts, v, c))
        for i, e in enumerate(eps, 1):
            peak = max(v for _, v, _ in e)
            out[f"{p}:{i}"] = {"start_ts": e[0][0], "end_ts": e[-1][0], "n_results": len(e),
                               "peak": peak, "peak_ts": min(t for t, v, _ in e if v == peak),
                               "peak_cmp": next(c for t, v, c in e if v == peak)}
    return out


def _case_of_episode(ep, results, yob, kb, params):
    """The episode as a case: current chemistry nearest the peak, baseline the earliest in the window."""
    lo = ep["start_ts"] - timedelta(hours=params.chemistry_hours_before)
    hi = ep["end_ts"] + timedelta(hours=params.chemistry_hours_after)
    labs = {"wbc": {"value": ep["peak"], "unit": kb.analyte("wbc").unit, "time": ep["peak_ts"].isoformat(),
                    **({"comparator": ep["peak_cmp"]} if ep["peak_cmp"] else {})}}
    for analyte in CHEMISTRY:
        window = sorted((ts, v, ref) for p, ts, a, v, c, ref in results
                        if p == ep["person_id"] and a == analyte and lo <= ts <= hi)
        if not window:
            continue
        peak_s = ep["peak_ts"].timestamp()
        cur = min(window, key=lambda r: (abs(r[0].timestamp() - peak_s), r[0], r[1]))

        def item(r, analyte=analyte):
            d = {"value": r[1], "unit": kb.analyte(analyte).unit, "time": r[0].isoformat()}
            if r[2] is not None:
                d["reference_high"] = r[2]
            return d

        labs[analyte] = [item(window[0]), item(cur)] if len(window) > 1 else [item(cur)]
    patient = {}
    if yob is not None:
        age_hi = ep["start_ts"].year - yob
        cut = float(kb.value("tumour_lysis.child_below_age"))
        if age_hi < AGE_YEARS_MIN or age_hi - 1 > AGE_YEARS_MAX:
            pass  # no person's age: the bedside leaves such a birth date out (age not recorded)
        elif age_hi < cut or age_hi - 1 >= cut:  # the year of birth decides the age group
            patient["age_years"] = age_hi - 0.5
    return case_from_dict({"id": ep["person_id"], "labs": labs, "patient": patient})


def _births_table(births):
    import ibis
    import pyarrow as pa

    return ibis.memtable(pa.table({"person_id": pa.array(list(births), pa.string()),
                                   "year_of_birth": pa.array(list(births.values()), pa.int64())}))


def _agree(backend, rows, births, kb=KB) -> dict[str, int]:
    params = ScreenParams.from_kb(kb, now=NOW)
    got, _ = find_episodes(backend, observations_table(rows), params, kb, births=_births_table(births))
    results = _canonical(rows, kb)
    want = _oracle_episodes(results, kb, params)
    eps = got.to_pylist()
    assert {e["episode_id"] for e in eps} == set(want), (sorted(want), [e["episode_id"] for e in eps])
    figures = defaultdict(int)
    for e in eps:
        w = want[e["episode_id"]]
        start = e["start_ts"].replace(tzinfo=None)
        assert (start, e["end_ts"].replace(tzinfo=None), e["n_results"]) == (w["start_ts"], w["end_ts"], w["n_results"])
        assert e["peak_wbc_10e9_per_l"] == w["peak"]
        w = {**w, "person_id": e["person_id"]}
        a = assess(_case_of_episode(w, results, births.get(e["person_id"]), kb, params), kb)
        assert a.hyperleukocytosis.present is True
        for name in ("uric_acid", "potassium", "phosphate", "calcium"):
            expected = True if name in a.tls.criteria_met else (None if name in a.tls.criteria_not_assessed else False)
            assert e[f"tls_{name}"] is expected, (name, {k: v for k, v in e.items() if name in k or k == "child"},
                                                  a.tls.working["criteria"][name])
            figures[f"tls_{name}={expected}"] += 1
        assert e["tls_laboratory"] is a.tls.laboratory, (e, a.tls)
        possible = "PSEUDOHYPERKALEMIA_POSSIBLE" in {x.code for x in a.artefacts}
        assert bool(e["pseudohyperkalemia_possible"]) is possible, (e, a.artefacts)
        figures["episodes"] += 1
        figures[f"tls_laboratory={a.tls.laboratory}"] += 1
        figures[f"child={e['child']}"] += 1
        figures["with_baseline"] += any(e[f"{n}_baseline"] is not None for n in CHEMISTRY)
        figures["pseudohyperkalaemia_possible"] += possible
    return figures


FIGURES: dict[str, int] = defaultdict(int)


# Derandomised: the figures below must cover every rule branch on every run (CI included), so the
# examples are the same each time (40 of them, drawn once from Hypothesis's fixed seed for this test).
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
          derandomize=True)
@given(data=population())
def test_duckdb_agrees_with_assess(data):
    from leukos.screening.backends import connect_duckdb

    rows, births = data
    backend = connect_duckdb()
    try:
        for k, v in _agree(backend, rows, births).items():
            FIGURES[k] += v
    finally:
        backend.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(data=population())
def test_duckdb_agrees_with_assess_under_howard(data):
    """The Howard 2011 definition (strict limits, ionised calcium, child uric acid above the
    laboratory's upper limit) through the same definitions."""
    from leukos.screening.backends import connect_duckdb

    rows, births = data
    backend = connect_duckdb()
    try:
        _agree(backend, rows, births, HOWARD)
    finally:
        backend.close()


def test_agreement_figures_cover_the_rules():
    """The generated series reach every branch that matters (runs after the property test above)."""
    if not FIGURES:
        pytest.skip("run with test_duckdb_agrees_with_assess")
    print(dict(FIGURES))
    assert FIGURES["episodes"] > 20
    for key in ("tls_laboratory=True", "tls_laboratory=False", "child=True", "child=False", "child=None"):
        assert FIGURES[key] > 0, (key, dict(FIGURES))
    assert FIGURES["with_baseline"] > 0 and FIGURES["pseudohyperkalaemia_possible"] > 0


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                HealthCheck.function_scoped_fixture])
@given(data=population(n_min=30, n_max=40))
def test_spark_agrees_with_assess_and_duckdb(data, spark_backend):
    from leukos.screening.backends import connect_duckdb

    rows, births = data
    # A fixed person with an episode (and a TLS picture), so that no generated case is empty.
    rows = list(rows) + [Obs("fixed", BASE, "wbc", 250.0, "10*9/L"), Obs("fixed", BASE + timedelta(hours=6), "wbc",
                                                                         300.0, "K/uL"),
                         Obs("fixed", BASE, "potassium", 6.5, "mmol/L"), Obs("fixed", BASE, "uric_acid", 700.0, "umol/L")]
    figures = _agree(spark_backend, rows, births)
    assert figures["episodes"] > 0 and figures["tls_laboratory=True"] > 0
    duck = connect_duckdb()
    try:
        params = ScreenParams.from_kb(KB, now=NOW)
        d, _ = find_episodes(duck, observations_table(rows), params, KB, births=_births_table(births))
        s, _ = find_episodes(spark_backend, observations_table(rows), params, KB, births=_births_table(births))
    finally:
        duck.close()

    def norm(t):
        return [{k: (v.replace(tzinfo=None) if isinstance(v, datetime) else v) for k, v in r.items()}
                for r in t.to_pylist()]

    assert norm(d) == norm(s)

"""One oracle, many engines: the ibis episode expression on DuckDB and on Spark agrees with the
in-memory reference (leukos.screening.reference) on generated lab tables with nulls, unit
variants, boundary values, duplicates, censored values, future and unsorted times."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leukos.knowledge import load_knowledge
from leukos.screening.engine import events_table, find_episodes, observations_table
from leukos.screening.episodes import EPISODE_COLUMNS, ScreenParams
from leukos.screening.reference import Obs, reference_episodes

from .conftest import NOW, assert_same_episodes, rows_of

UNITS = {
    "wbc": ["10*9/L", "10*3/uL", "K/uL", "x10E3/uL", "/uL", "G/L", None, "", "furlongs"],
    "blasts_pct": ["%", None],
    "potassium": ["mmol/L", "mEq/L", "mmol/l", None, "mg"],
    "phosphate": ["mmol/L", "mg/dL"],
    "uric_acid": ["umol/L", "mg/dL"],
    "calcium": ["mmol/L", "mg/dL"],
    "creatinine": ["umol/L", "mg/dL"],
}
BOUNDARY = {  # canonical-unit boundaries from the knowledge base (threshold 100, TLS 476/6.0/1.45/1.75)
    "wbc": [100.0, 100.1, 99.9, 50.0, 450.0, 1500.0, 150000.0, 2001.0, 5.0],
    "blasts_pct": [0.0, 50.0, 100.0, 101.0],
    "potassium": [6.0, 5.99, 6.01, 4.0, 16.0],
    "phosphate": [1.45, 1.44, 4.5, 2.0],
    "uric_acid": [476.0, 475.9, 8.0, 300.0],
    "calcium": [1.75, 1.76, 7.0, 2.3],
    "creatinine": [88.0, 1.5, 400.0],
}
BASE = NOW - timedelta(days=20)


@st.composite
def observation(draw, person):
    analyte = draw(st.sampled_from(["wbc"] * 5 + list(UNITS)))
    value = draw(st.one_of(st.sampled_from(BOUNDARY[analyte]), st.floats(0, 700, allow_nan=False),
                           st.none()))
    minutes = draw(st.integers(0, 60 * 24 * 25))  # some land after NOW: "future"
    ts = draw(st.one_of(st.just(BASE + timedelta(minutes=minutes)), st.none())) if draw(st.integers(0, 30)) == 0 \
        else BASE + timedelta(minutes=minutes)
    comparator = draw(st.sampled_from([None] * 12 + ["<", ">", ">=", "<="]))
    return Obs(person_id=person, ts=ts, analyte=analyte, value=value, unit=draw(st.sampled_from(UNITS[analyte])),
               comparator=comparator, value_given=True if value is None and draw(st.booleans()) else None)


@st.composite
def lab_table(draw, max_persons=4):
    persons = [f"p{i}" for i in range(draw(st.integers(1, max_persons)))] + [""]
    rows = []
    for p in persons:
        rows += draw(st.lists(observation(p), max_size=25 if p else 2))
    if rows:  # exact duplicates
        rows += draw(st.lists(st.sampled_from(rows), max_size=3))
    rows = draw(st.permutations(rows))  # unsorted times
    events = draw(st.lists(st.tuples(st.sampled_from(persons[:-1]),
                                     st.integers(0, 60 * 24 * 25).map(lambda m: BASE + timedelta(minutes=m)),
                                     st.sampled_from(["hydroxyurea", "leukapheresis", "chemotherapy"])),
                           max_size=4))
    return rows, events


def _check(backend, rows, events, params, kb, label):
    got, _ = find_episodes(backend, observations_table(rows), params, kb, events_table(events))
    want = reference_episodes(rows, params, kb, events)
    assert_same_episodes(rows_of(got), rows_of(want), EPISODE_COLUMNS, label)
    return len(want)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=lab_table())
def test_duckdb_agrees_with_reference(data):
    from leukos.screening.backends import connect_duckdb

    kb = load_knowledge()
    params = ScreenParams.from_kb(kb, now=NOW)
    rows, events = data
    backend = connect_duckdb()
    try:
        _check(backend, rows, events, params, kb, "duckdb")
    finally:
        backend.close()


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                HealthCheck.function_scoped_fixture])
@given(data=st.lists(lab_table(max_persons=3), min_size=10, max_size=15))
def test_spark_agrees_with_reference(data, spark_backend):
    kb = load_knowledge()
    params = ScreenParams.from_kb(kb, now=NOW)
    # Persons are independent, so several generated tables are screened as one (names made unique):
    # each Spark job then checks many scenarios.
    rows, events = [], []
    for i, (r, e) in enumerate(data):
        rows += [Obs(f"t{i}{o.person_id}" if o.person_id else o.person_id, o.ts, o.analyte, o.value, o.unit,
                     o.comparator, o.value_given) for o in r]
        events += [(f"t{i}{p}", t, k) for p, t, k in e]
    _check(spark_backend, rows, events, params, kb, "spark")


def test_generated_tables_contain_episodes(params, kb):
    """The reference itself on a fixed table (spec: threshold > 100 x10^9/L, a count at or below it ends an episode)."""
    # A fixed table with one episode of three results and a normal count that splits off a second one.
    rows = [Obs("a", BASE + timedelta(hours=h), "wbc", v, "K/uL") for h, v in
            [(0, 150.0), (5, 120.0), (10, 90.0), (20, 300.0), (30, 5.0)]]
    found = len(reference_episodes(rows, params, kb))
    assert found == 2

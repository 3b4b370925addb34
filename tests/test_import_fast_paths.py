"""The cheaper paths of the FHIR import give exactly what the plain ones give (issue 11, speed)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leukos.domain.case import LabValue
from leukos.interop import conflicts
from leukos.interop.fhir import _lab_value

T0 = dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC)


def test_lab_value_is_the_dataclass_value():
    args = ("wbc", 182.0, "10*9/L", "182 10*3/uL", T0, ">", 4.0, 11.0, "fhir:Observation/w1")
    fast = _lab_value(*args)
    plain = LabValue(analyte="wbc", value=182.0, unit="10*9/L", given="182 10*3/uL", time=T0, comparator=">",
                     reference_low=4.0, reference_high=11.0, source="fhir:Observation/w1")
    assert type(fast) is LabValue
    assert fast == plain and hash(fast) == hash(plain) and repr(fast) == repr(plain)
    assert list(vars(fast).items()) == list(vars(plain).items())  # same fields, same order
    assert pickle.loads(pickle.dumps(fast)) == plain
    assert dataclasses.replace(fast, value=1.0) == dataclasses.replace(plain, value=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.value = 2.0  # type: ignore[misc]


def _value(hours: int | None, value: float, comparator: str | None, source: str) -> LabValue:
    time = None if hours is None else T0 + dt.timedelta(hours=hours)
    return LabValue(analyte="wbc", value=value, unit="10*9/L", given=f"{value:g}", time=time, comparator=comparator,
                    source=source)


SERIES = st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 4)), st.sampled_from([12.0, 260.0, 260.0000000001]),
                            st.sampled_from([None, ">"]), st.sampled_from(["fhir:Observation/a", "fhir:Observation/b"])),
                  min_size=1, max_size=5)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(SERIES)
def test_series_at_distinct_times_sort_as_the_full_rule_does(rows):
    values = [_value(*row) for row in rows]
    out, notes = conflicts.resolve_same_time({"wbc": values})
    times = [v.time for v in values]
    if None not in times and len(set(times)) == len(times):  # the short path: no group, no note
        assert notes == []
        assert out == {"wbc": tuple(sorted(values, key=conflicts._order))}
    elif not notes:  # the full rule: every group one result or duplicates of one
        assert [v.time for v in out["wbc"]] == sorted({v.time for v in values},
                                                      key=lambda t: (t is not None, t or conflicts._NO_TIME))


def test_lean_resources_have_only_r4b_elements():
    # case_from_fhir takes a lean-valid resource as it is: none of its elements may be one that the
    # R4B model does not know (those are noted and dropped on the full path)
    from leukos.interop import fhir_lean
    from leukos.interop.fhir import _layout, _model

    for rtype in ("Observation", "Patient", "Condition"):
        elements, _ = fhir_lean._TYPES[rtype]
        allowed, _ = _layout(_model(rtype))
        assert set(elements) <= allowed, rtype


ENTRY = st.one_of(st.just({}), st.just({"fullUrl": "urn:uuid:1"}), st.just({"fullUrl": ""}),
                  st.just({"search": {"mode": "match"}}), st.just(3), st.just({"fullUrl": 1}))
RESOURCE = st.one_of(st.none(), st.just({"resourceType": "Observation"}), st.just("x"), st.just({}))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.tuples(ENTRY, st.booleans(), RESOURCE), max_size=4), st.sampled_from(["searchset", "x", None]))
def test_bundle_shell_check_passes_over_the_resources(entries, btype):
    from leukos.interop.fhir_lean import lean_valid

    bundle = {"resourceType": "Bundle", "type": btype, "entry": []}
    for entry, with_resource, resource in entries:
        if isinstance(entry, dict) and with_resource:
            entry = {**entry, "resource": resource}
        bundle["entry"].append(entry)
    shell = {**bundle, "entry": [{k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e
                                 for e in bundle["entry"]]}
    assert lean_valid(bundle) == lean_valid(shell)


# An Observation read after another one of the same call takes the shortcuts of the usual case (its
# UCUM code already admitted, its time already read, a reference limit in the result's own code); read
# first, it takes the plain helpers (_unit_of, _obs_time). Both must give the same result.
_UCUM = "http://unitsofmeasure.org"
_QUANTITY = st.fixed_dictionaries({}, optional={
    "code": st.sampled_from(["10*3/uL", "10*9/L", "/uL", " ", ""]),
    "system": st.sampled_from([_UCUM, "http://example.org/units"]),
    "unit": st.sampled_from(["10*3/uL", "10*9/L", "/uL", "x10^9/L", " "])})
_LIMIT = st.one_of(st.none(), st.builds(lambda q, v: {**q, "value": v}, _QUANTITY, st.sampled_from([0.0, 4.0, 11.0, 4000.0])))


def _wbc(rid: str, quantity: dict, low: dict | None, high: dict | None, time: str | None, subject: str) -> dict:
    r = {"resourceType": "Observation", "id": rid, "status": "final",
         "code": {"coding": [{"system": "http://loinc.org", "code": "6690-2"}]},
         "subject": {"reference": subject}, "valueQuantity": {**quantity, "value": 180.0}}
    if time is not None:
        r["effectiveDateTime"] = time
    limits = {k: q for k, q in (("low", low), ("high", high)) if q is not None}
    if limits:
        r["referenceRange"] = [limits]
    return r


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_QUANTITY, _LIMIT, _LIMIT, st.sampled_from([None, "2026-03-01T08:00:00Z", "2026-03-01"]),
       st.sampled_from(["Patient/p1", "http://ehr.example/fhir/Patient/p1"]))
def test_the_usual_case_shortcuts_read_as_the_plain_helpers(quantity, low, high, time, subject):
    from leukos.errors import LeukosUserError
    from leukos.interop.fhir import case_from_fhir

    patient = {"resourceType": "Patient", "id": "p1", "gender": "female"}
    x = _wbc("x", quantity, low, high, time, subject)
    earlier = _wbc("y", quantity, None, None, time, subject)
    if time is not None:
        earlier["effectiveDateTime"] = time.replace("2026-03-01", "2026-02-28")  # the same series, earlier
    def read(*resources: dict):
        try:
            case = case_from_fhir({"resourceType": "Bundle", "type": "collection",
                                   "entry": [{"resource": r} for r in resources]})
        except LeukosUserError as exc:  # the problems about x, wherever x is in the Bundle
            where = f"entry[{len(resources) - 1}]"
            return sorted((d.field.replace(where, "x"), str(d.value), d.expected) for d in exc.details
                          if d.field.startswith(where))
        return [v for v in case.labs.get("wbc", ()) if v.source == "fhir:Observation/x"]

    assert read(patient, x) == read(patient, earlier, x)


def _bundle(*resources: dict) -> dict:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def test_a_code_of_another_system_is_not_the_admitted_ucum_code():
    """The shortcut for an admitted UCUM code holds for the UCUM system only: in another system the
    human unit is read (180000 /uL = 180 x10^9/L), even when the code was admitted by an earlier result."""
    from leukos.interop.fhir import case_from_fhir

    earlier = _wbc("y", {"code": "10*9/L", "system": _UCUM}, None, None, "2026-02-28T08:00:00Z", "Patient/p1")
    x = _wbc("x", {"code": "10*9/L", "system": "http://example.org/units", "unit": "/uL"}, None, None,
             "2026-03-01T08:00:00Z", "Patient/p1")
    x["valueQuantity"]["value"] = 180000.0
    lab = case_from_fhir(_bundle(earlier, x)).lab("wbc")
    assert lab.source == "fhir:Observation/x" and lab.value == pytest.approx(180.0) and lab.given == "180000 /uL"


def test_a_reference_limit_coded_in_another_system_reads_its_own_unit():
    """A limit whose code equals the result's unit converts with the result's factor only in the UCUM
    system (or none): in another system its human unit is read (11000 /uL = 11 x10^9/L)."""
    from leukos.interop.fhir import case_from_fhir

    low = {"value": 4.0, "code": "10*9/L"}
    high = {"value": 11000.0, "code": "10*9/L", "system": "http://example.org/units", "unit": "/uL"}
    x = _wbc("x", {"code": "10*9/L", "system": _UCUM}, low, high, "2026-03-01T08:00:00Z", "Patient/p1")
    lab = case_from_fhir(_bundle(x)).lab("wbc")
    assert lab.reference_low == pytest.approx(4.0) and lab.reference_high == pytest.approx(11.0)


@pytest.mark.parametrize(("low", "high"), [
    ({"value": 4000.0, "code": "/uL", "system": _UCUM}, {"value": 11.0, "code": "10*9/L", "system": _UCUM}),
    ({"value": 4.0, "code": "10*9/L", "system": _UCUM}, {"value": 11000.0, "code": "/uL", "system": _UCUM}),
    ({"value": 4000.0, "code": "/uL", "system": _UCUM}, {"value": 11000.0, "code": "/uL", "system": _UCUM}),
])
def test_each_reference_limit_converts_with_its_own_unit(low, high):
    """A limit in another unit than the result's converts with its own factor, and does not change how
    the other limit converts (a low limit in /uL once made a high limit in 10*9/L read 0.011)."""
    from leukos.interop.fhir import case_from_fhir

    x = _wbc("x", {"code": "10*9/L", "system": _UCUM}, low, high, "2026-03-01T08:00:00Z", "Patient/p1")
    lab = case_from_fhir(_bundle(x)).lab("wbc")
    assert lab.value == pytest.approx(180.0)
    assert lab.reference_low == pytest.approx(4.0) and lab.reference_high == pytest.approx(11.0)

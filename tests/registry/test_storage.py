"""The registry on SQLite and on a real PostgreSQL server: what is recorded, read back, refused."""

from __future__ import annotations

import copy

import pytest
from sqlalchemy import func, select

from leukos.errors import LeukosUserError
from leukos.registry.errors import ConflictError, UnknownRecordError
from leukos.registry.inputs import FeedbackIn, LabIn, PatientIn, PatientUpdate, ProcedureIn, ProcedureUpdate, parse
from leukos.registry.models import AdverseEvent, LabResult, Procedure

from .conftest import at
from .records import PATIENT, iso, procedure


def _add(reg, **over):
    return reg.add_patient(parse(PatientIn, PATIENT | over))


def _rows(reg, model) -> int:
    with reg.engine.connect() as c:
        return c.scalar(select(func.count()).select_from(model))


def test_patient_shown_without_mrn_and_mrn_only_on_request(registry):
    p = _add(registry)
    assert "mrn" not in p and p["has_mrn"] is True and p["version"] == 1
    assert registry.identifiers("LK-0001")["mrn"] == "MRN-7734129"
    with pytest.raises(ConflictError):
        _add(registry)  # same pseudonym and MRN


def test_generated_pseudonym_when_none_given(registry):
    p = registry.add_patient(parse(PatientIn, {"weight_kg": 60}))
    assert p["pseudonym"].startswith("P-") and len(p["pseudonym"]) == 10


def test_labs_are_stored_in_canonical_units_and_imports_are_idempotent(registry):
    _add(registry)
    labs = [parse(LabIn, x) for x in (
        {"analyte": "wbc", "value": 250000, "unit": "/uL", "taken_at": iso(-1), "source": "fhir", "source_ref": "Observation/a"},
        {"analyte": "platelets", "value": 85, "unit": "K/uL", "taken_at": iso(-1), "source": "screening", "source_ref": "s-1"},
        {"analyte": "ionized_calcium", "value": 4.4, "unit": "mg/dL", "taken_at": iso(-1)})]
    assert registry.add_labs("LK-0001", labs) == {"added": 3, "already_present": 0}
    assert registry.add_labs("LK-0001", labs[:2]) == {"added": 0, "already_present": 2}
    t = registry.timeline("LK-0001")
    got = {r["analyte"]: (round(r["value"], 2), r["unit"], r["source"]) for r in t["labs"]}
    assert got["wbc"] == (250.0, "10*9/L", "fhir")
    assert got["platelets"] == (85.0, "10*9/L", "screening")
    assert got["ionized_calcium"][1] == "mmol/L" and 1.09 <= got["ionized_calcium"][0] <= 1.11  # 4.4 mg/dL / 4.008


def test_procedure_round_trip(registry):
    _add(registry)
    r = registry.record_procedure("LK-0001", parse(ProcedureIn, procedure()))
    t = registry.timeline("LK-0001")
    (x,) = t["procedures"]
    assert x["id"] == r["id"] and x["version"] == 1
    assert x["pre_wbc"]["value"] == 250 and x["post_wbc"]["value"] == 195
    assert x["pre_platelets"]["value"] == 90 and x["ionized_calcium"][0]["value"] == 1.02
    assert x["adverse_events"] == [{"type": "paraesthesia", "scale": "WAA", "severity": "mild", "action": "calcium iv",
                                    "run_stopped": False}]
    assert (x["device"], x["access"], x["volume_processed_l"], x["inlet_ac_ratio"], x["calcium_given_mmol"],
            x["product_volume_ml"], x["recorded_by"]) == ("spectra_optia_wbcd", "femoral", 10.0, 12, 9.2, 410, "nurse A")
    assert x["started_at"] == at(0) and x["ended_at"] == at(3)


def test_concurrent_edit_is_detected_not_overwritten(registry):
    _add(registry)
    r = registry.record_procedure("LK-0001", parse(ProcedureIn, procedure()))
    first = registry.update_procedure("LK-0001", r["id"], parse(ProcedureUpdate, procedure(post=180) | {"version": 1}))
    assert first["version"] == 2 and first["post_wbc"]["value"] == 180
    with pytest.raises(ConflictError) as e:  # a second editor who also read version 1
        registry.update_procedure("LK-0001", r["id"], parse(ProcedureUpdate, procedure(post=150) | {"version": 1}))
    assert e.value.details[0].field == "version"
    x = registry.timeline("LK-0001")["procedures"][0]
    assert x["post_wbc"]["value"] == 180 and x["version"] == 2
    p = registry.update_patient("LK-0001", PatientUpdate(version=1, weight_kg=72))
    assert p["version"] == 2 and p["weight_kg"] == 72
    with pytest.raises(ConflictError):
        registry.update_patient("LK-0001", PatientUpdate(version=1, weight_kg=74))


BAD = [  # (what is wrong, change to a valid record, field named in the error)
    ("impossible volume", {"volume_processed_l": 900}, "volume_processed_l"),
    ("zero volume", {"volume_processed_l": 0}, "volume_processed_l"),
    ("post-count before pre-count", {"post_wbc": {"value": 150, "taken_at": iso(-1)}}, "post_wbc.taken_at"),
    ("end before start", {"ended_at": iso(-2)}, "ended_at"),
    ("run time longer than the run", {"run_time_min": 400}, "run_time_min"),
    ("unknown device", {"device": "centrifuge-x"}, "device"),
    ("unknown access", {"access": "arm"}, "access"),
    ("WAA grade on CTCAE scale", {"adverse_events": [{"type": "hypotension", "scale": "CTCAE", "severity": "mild"}]},
     "adverse_events[0].severity"),
    ("unknown adverse event", {"adverse_events": [{"type": "headache-x", "scale": "WAA", "severity": "mild"}]},
     "adverse_events[0].type"),
    ("count in the wrong unit", {"pre_wbc": {"value": 250, "unit": "mmol/L", "taken_at": iso(-1)}}, "pre_wbc.value.unit"),
    ("implausible count", {"pre_wbc": {"value": 250000, "taken_at": iso(-1)}}, "pre_wbc.value"),
    ("product larger than the volume processed", {"product_volume_ml": 20000}, "product_volume_ml"),
    ("inlet:AC ratio the device cannot set", {"inlet_ac_ratio": 40}, "inlet_ac_ratio"),
    ("calcium without route", {"calcium_route": None}, "calcium_route"),
]


@pytest.mark.parametrize(("why", "change", "field"), BAD, ids=[b[0] for b in BAD])
def test_bad_procedure_is_refused_naming_the_field_and_nothing_is_written(registry, why, change, field):
    _add(registry)
    before = [_rows(registry, m) for m in (Procedure, LabResult, AdverseEvent)]
    rec = copy.deepcopy(procedure()) | change
    with pytest.raises(LeukosUserError) as e:
        registry.record_procedure("LK-0001", parse(ProcedureIn, rec))
    assert field in [d.field for d in e.value.details], e.value.message
    assert [_rows(registry, m) for m in (Procedure, LabResult, AdverseEvent)] == before


def test_unknown_analyte_and_unknown_patient(registry):
    _add(registry)
    with pytest.raises(LeukosUserError) as e:
        registry.add_labs("LK-0001", [parse(LabIn, {"analyte": "wbcc", "value": 3, "taken_at": iso(0)}),
                                      parse(LabIn, {"analyte": "wbc", "value": 3, "taken_at": iso(0)})])
    assert e.value.details[0].field == "labs[0].analyte"
    assert _rows(registry, LabResult) == 0  # the good row of the same request was not written either
    with pytest.raises(UnknownRecordError) as e:
        registry.record_procedure("NOBODY", parse(ProcedureIn, procedure()))
    assert e.value.details[0].field == "patient"
    with pytest.raises(UnknownRecordError) as e:
        registry.record_procedure("LK-0001", parse(ProcedureIn, procedure(plan_id=999)))
    assert e.value.details[0].field == "plan_id"
    assert _rows(registry, Procedure) == 0


def test_naive_times_are_refused():
    with pytest.raises(LeukosUserError) as e:
        parse(LabIn, {"analyte": "wbc", "value": 3, "taken_at": "2026-12-01T08:00:00"})
    assert e.value.details[0].field == "taken_at"


def test_ward_list_paginates_and_shows_latest_count_and_flags(registry):
    for i in range(7):
        _add(registry, pseudonym=f"W-{i:02d}", mrn=None)
    registry.record_procedure("W-03", parse(ProcedureIn, procedure(post=None)))
    registry.clock = lambda: at(30)
    page1 = registry.ward_list(page=1, per_page=5)
    page2 = registry.ward_list(page=2, per_page=5)
    assert page1["total"] == 7 and [p["pseudonym"] for p in page1["patients"]] == [f"W-{i:02d}" for i in range(5)]
    assert [p["pseudonym"] for p in page2["patients"]] == ["W-05", "W-06"]
    w3 = page1["patients"][3]
    assert w3["latest_wbc"]["value"] == 250 and w3["sessions"] == 1
    assert {f["code"] for f in w3["flags"]} == {"post_count_missing", "next_session_due"}
    assert w3["next_session_due_at"] == at(24)


def test_issued_outputs_are_kept_as_issued(registry):
    _add(registry)
    doc = {"ruleset_version": "2026.1", "leukos_version": "0.x", "findings": [{"key": "hyperleukocytosis"}]}
    i = registry.record_issued("LK-0001", "assessment", doc)
    assert registry.issued_output("LK-0001", "assessment", i)["output"] == doc
    assert registry.timeline("LK-0001")["issued"][0]["ruleset_version"] == "2026.1"


def test_cds_feedback_is_stored_once(registry):
    item = FeedbackIn(card="c-1", outcome="overridden", outcomeTimestamp="2026-12-01T10:00:00Z",
                      overrideReasons=[{"reason": {"code": "not-relevant"}}])
    assert registry.add_feedback("leukos-patient-view", item) is True
    assert registry.add_feedback("leukos-patient-view", item) is False
    assert registry.feedback_count() == 1


def test_follow_up_is_recomputed_when_the_course_changes(registry):
    _add(registry)
    r = registry.record_procedure("LK-0001", parse(ProcedureIn, procedure(post=None)))
    first = registry.follow_up("LK-0001", now=at(5))
    assert first.sessions[0].observed_fall_pct is None and "post_count_missing" in {f.code for f in first.flags}
    assert registry.follow_up("LK-0001", now=at(5)).to_dict() == first.to_dict()  # same course, same answer
    registry.update_procedure("LK-0001", r["id"], parse(ProcedureUpdate, procedure(post=195) | {"version": 1}))
    second = registry.follow_up("LK-0001", now=at(5))
    assert second.sessions[0].observed_fall_pct == 22.0 and second.sessions[0].fall_rate_after is not None
    assert "post_count_missing" not in {f.code for f in second.flags}


@pytest.mark.parametrize("bad", [{"recorded_by": "nurse\x00A"}, {"volume_processed_l": float("nan")},
                                 {"volume_processed_l": True}, {"interrupted": 1}])
def test_hostile_values_are_user_errors_on_both_databases(registry, bad):
    _add(registry)
    with pytest.raises(LeukosUserError) as e:
        registry.record_procedure("LK-0001", parse(ProcedureIn, procedure() | bad))
    assert e.value.details[0].field in (*bad, "")
    assert _rows(registry, Procedure) == 0


def test_backup_is_a_restorable_copy(registry, tmp_path):
    from leukos.registry.backup import backup

    _add(registry)
    registry.record_procedure("LK-0001", parse(ProcedureIn, procedure()))
    out = tmp_path / "registry.backup"
    msg = backup(registry, out)
    assert out.stat().st_size > 0
    if registry.engine.url.get_backend_name() == "sqlite":
        import sqlite3

        con = sqlite3.connect(out)
        assert con.execute("select count(*) from procedures").fetchone() == (1,)
        con.close()
    else:
        assert out.read_bytes().startswith(b"PGDMP") and "pg_dump" in msg


def test_find_by_fhir_id_names_the_registered_patient_only(registry):
    """The patient-view card's lookup: the pseudonym of the patient with that FHIR id, else None
    (ids compared exactly: no prefix, case or wildcard match)."""
    assert registry.find_by_fhir_id("pat-1") is None
    _add(registry, fhir_patient_id="pat-1")
    _add(registry, pseudonym="LK-0002", mrn="MRN-2", fhir_patient_id="pat-10")
    assert registry.find_by_fhir_id("pat-1") == "LK-0001"
    assert registry.find_by_fhir_id("pat-10") == "LK-0002"
    for other in ("pat-", "PAT-1", "pat-%", "pat-1 ", "", "x' OR '1'='1"):
        assert registry.find_by_fhir_id(other) is None

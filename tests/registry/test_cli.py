"""``leukos patient / procedure / registry``: records in, follow-up out, bad input exit 2 naming the field."""

from __future__ import annotations

import json
import sqlite3

import yaml

from .records import PATIENT, iso, procedure


def _patient(run, *more: str):
    r = run("patient", "add", "--pseudonym", PATIENT["pseudonym"], "--mrn", PATIENT["mrn"], "--sex", "male", "--age", "54",
            "--weight-kg", "70", "--height-cm", "175", "--diagnosis", "AML", "--ward", "H5", *more)
    assert r.exit_code == 0, r.output
    assert PATIENT["mrn"] not in r.output


def test_three_sessions_recorded_from_files_then_followed_up(run, tmp_path):
    _patient(run)
    for day, (pre, post) in enumerate([(250, 195), (215, 160), (180, 135)]):
        f = tmp_path / f"s{day}.yaml"
        f.write_text(yaml.safe_dump(procedure(day=day, pre=pre, post=post)))
        r = run("procedure", "record", "LK-0001", str(f))
        assert r.exit_code == 0 and "Recorded procedure" in r.output, r.output
    r = run("patient", "show", "LK-0001")
    assert r.exit_code == 0
    assert "Session 1: predicted" in r.output and "observed 22 %" in r.output and "Session 4 predicted" in r.output
    data = json.loads(run("patient", "show", "LK-0001", "--format", "json").output)
    assert [s["observed_fall_pct"] for s in data["follow_up"]["sessions"]] == [22.0, 25.6, 25.0]
    r = run("patient", "treatment", "LK-0001", "--agent", "hydroxyurea", "--dose", "2 g twice daily",
            "--start", iso(1), "--by", "Dr C")
    assert r.exit_code == 0, r.output
    assert run("patient", "treatment", "LK-0001", "--agent", "aspirin", "--start", iso(1), "--by", "x").exit_code == 2
    w = run("patient", "list")
    assert "LK-0001" in w.output and "×10⁹/L" in w.output


def test_bad_input_exits_2_naming_the_field_and_writes_nothing(run, tmp_path):
    _patient(run)
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(procedure(volume_processed_l=900, post_wbc={"value": 100, "taken_at": iso(-5)})))
    r = run("procedure", "record", "LK-0001", str(f))
    assert r.exit_code == 2 and "volume_processed_l" in r.output and "post_wbc.taken_at" in r.output
    assert "Traceback" not in r.output
    r = run("procedure", "record", "NOBODY", str(tmp_path / "missing.json"))
    assert r.exit_code == 2 and "FILE" in r.output
    good = tmp_path / "good.json"
    good.write_text(json.dumps(procedure()))
    r = run("procedure", "record", "NOBODY", str(good))
    assert r.exit_code == 2 and "patient" in r.output
    r = run("patient", "labs", "LK-0001", "-", input=json.dumps([{"analyte": "wbcx", "value": 1, "taken_at": iso(0)}]))
    assert r.exit_code == 2 and "labs[0].analyte" in r.output
    con = sqlite3.connect(tmp_path / "data" / "registry.sqlite3")
    assert con.execute("select count(*) from procedures").fetchone() == (0,)
    assert con.execute("select count(*) from lab_results").fetchone() == (0,)
    con.close()


def test_export_is_pseudonymised_and_backup_is_a_database(run, tmp_path):
    _patient(run)
    out = tmp_path / "export.json"
    assert run("registry", "export", "--out", str(out)).exit_code == 0
    data = json.loads(out.read_text())
    assert data["patients"][0]["pseudonym"] == "LK-0001" and PATIENT["mrn"] not in out.read_text()
    bak = tmp_path / "backup.sqlite3"
    assert run("registry", "backup", "--out", str(bak)).exit_code == 0
    con = sqlite3.connect(bak)
    assert con.execute("select pseudonym from patients").fetchall() == [("LK-0001",)]
    con.close()
    r = run("registry", "migrate", "--down", "--revision", "base")
    assert r.exit_code == 2 and "--yes-lose-data" in r.output  # the records would go
    r = run("registry", "migrate", "--down", "--revision", "base", "--yes-lose-data")
    assert r.exit_code == 0 and "base" in r.output and "before-downgrade" in r.output
    assert run("registry", "migrate").output.strip().endswith("revision 0004.")


def test_fhir_round_trip_and_issued_outputs(run, tmp_path):
    from tests.conftest import EXAMPLES

    _patient(run, "--fhir-id", "pat-aml-01")  # the Bundle's patient
    bundle = str(EXAMPLES / "fhir-bundle-aml.json")
    first = json.loads(run("patient", "fhir-import", "LK-0001", bundle, "--format", "json").output)
    again = json.loads(run("patient", "fhir-import", "LK-0001", bundle, "--format", "json").output)
    assert first["added"] > 0 and again["added"] == 0 and again["already_present"] == first["added"]
    out = tmp_path / "course.json"
    assert run("patient", "fhir-export", "LK-0001", "--out", str(out)).exit_code == 0
    from fhir.resources.R4B.bundle import Bundle

    b = Bundle.model_validate_json(out.read_text())
    assert sum(e.resource.get_resource_type() == "Observation" for e in b.entry) == first["added"]
    case = sorted(EXAMPLES.glob("01-*.yaml"))[0]
    ids = json.loads(run("patient", "assess", "LK-0001", str(case), "--plan", "--format", "json").output)
    assert set(ids) == {"assessment", "plan"}
    t = json.loads(run("patient", "show", "LK-0001", "--format", "json").output)["timeline"]
    assert [i["kind"] for i in t["issued"]] == ["assessment", "plan"]

"""The change history: every create or update of a registry record leaves one ``registry_changes`` row
(who, when, which surface, what, which record, which fields), written in the change's own transaction,
from every surface (store, CLI, REST API, web form, CDS feedback); a refused write leaves none."""

from __future__ import annotations

import getpass
import json

import pytest
from sqlalchemy import text

from leukos.errors import LeukosUserError
from leukos.registry import RegistrySettings
from leukos.registry.changes import Actor, MissingActorError
from leukos.registry.errors import ConflictError, OverlapError, UnknownRecordError
from leukos.registry.inputs import (
    FeedbackIn,
    LabIn,
    PatientIn,
    PatientUpdate,
    ProcedureIn,
    ProcedureUpdate,
    TreatmentIn,
    parse,
)
from leukos.service.app import create_app
from leukos.service.settings import ServiceSettings
from tests.conftest import EXAMPLES
from tests.service.conftest import Client

from .records import PATIENT, iso, procedure

ALICE = Actor("alice", "web")
COLUMNS = "action, surface, actor, patient_id, record_id, fields"


def _changes(reg_or_engine) -> list[dict]:
    """Every change row, oldest first, read with SQL (not through the code under test)."""
    engine = getattr(reg_or_engine, "engine", reg_or_engine)
    with engine.connect() as c:
        return [dict(r._mapping) for r in c.execute(text(f"SELECT id, at, {COLUMNS} FROM registry_changes ORDER BY id"))]


def _patient_id(reg, pseudonym: str = "LK-0001") -> int:
    with reg.engine.connect() as c:
        return c.execute(text("SELECT id FROM patients WHERE pseudonym = :p"), {"p": pseudonym}).scalar_one()


def _one_new(reg, before: int) -> dict:
    rows = _changes(reg)
    assert len(rows) == before + 1, rows[before:]
    return rows[-1]


# -- the store: one row per write, in the write's transaction ---------------------------------------------


def test_each_write_records_exactly_one_change_naming_the_actor(registry):
    reg = registry.acting_as(ALICE)
    p = reg.add_patient(parse(PatientIn, PATIENT | {"fhir_patient_id": "pat-1"}))
    pid = _patient_id(reg)
    row = _one_new(reg, 0)
    assert (row["action"], row["surface"], row["actor"], row["patient_id"], row["record_id"], row["fields"]) == \
        ("patient.add", "web", "alice", pid, pid, None)
    assert row["at"] is not None

    reg.update_patient("LK-0001", parse(PatientUpdate, {"ward": "H7", "target_wbc_10e9_per_l": 100,
                                                        "version": p["version"]}))
    row = _one_new(reg, 1)
    assert row["action"] == "patient.update" and row["record_id"] == pid
    assert sorted(row["fields"].split(",")) == ["target_wbc_10e9_per_l", "ward"]

    reg.add_labs("LK-0001", [LabIn(analyte="wbc", value=250, taken_at=iso(-1))], recorded_by="x")
    assert _one_new(reg, 2)["action"] == "labs.add"

    reg.import_labs("LK-0001", [LabIn(analyte="wbc", value=240, taken_at=iso(-0.8), source="fhir",
                                      source_ref="Observation/o1")])
    assert _one_new(reg, 3)["action"] == "labs.import"

    proc = reg.record_procedure("LK-0001", parse(ProcedureIn, procedure()))
    row = _one_new(reg, 4)
    assert (row["action"], row["patient_id"], row["record_id"]) == ("procedure.record", pid, proc["id"])

    reg.update_procedure("LK-0001", proc["id"], parse(ProcedureUpdate, procedure(post=180, notes="re-counted")
                                                      | {"version": 1}))
    row = _one_new(reg, 5)
    assert (row["action"], row["record_id"]) == ("procedure.update", proc["id"])
    assert sorted(row["fields"].split(",")) == ["notes", "post_wbc"]

    t = reg.add_treatment("LK-0001", parse(TreatmentIn, {"agent": "hydroxyurea", "started_at": iso(1),
                                                          "recorded_by": "Dr C"}))
    assert (_one_new(reg, 6)["action"], _one_new(reg, 6)["record_id"]) == ("treatment.add", t["id"])

    a = reg.record_issued("LK-0001", "assessment", {"ruleset_version": "1"})
    assert (_one_new(reg, 7)["action"], _one_new(reg, 7)["record_id"]) == ("assessment.issue", a)
    plan = reg.record_issued("LK-0001", "plan", {"ruleset_version": "1"})
    assert (_one_new(reg, 8)["action"], _one_new(reg, 8)["record_id"]) == ("plan.issue", plan)

    item = parse(FeedbackIn, {"card": "c1", "outcome": "accepted", "outcomeTimestamp": "2026-12-01T10:00:00Z"})
    assert reg.add_feedback("leukos-patient-view", item, fhir_patient_id="pat-1") is True
    row = _one_new(reg, 9)
    assert (row["action"], row["patient_id"]) == ("feedback.add", pid)
    reg.add_feedback("leukos-patient-view", parse(FeedbackIn, {"card": "c2", "outcome": "accepted",
                                                               "outcomeTimestamp": "2026-12-01T10:00:00Z"}))
    assert _one_new(reg, 10)["patient_id"] is None  # feedback about no registered patient
    assert {r["surface"] for r in _changes(reg)} == {"web"} and {r["actor"] for r in _changes(reg)} == {"alice"}


def test_change_rows_hold_names_only_never_values_or_identifiers(registry):
    p = registry.add_patient(parse(PatientIn, PATIENT | {"fhir_patient_id": "pat-secret"}))
    registry.update_patient("LK-0001", parse(PatientUpdate, {"ward": "Ward-Seven", "fhir_patient_id": "pat-other",
                                                             "version": p["version"]}))
    registry.record_procedure("LK-0001", parse(ProcedureIn, procedure(notes="patient anxious, Mrs Smith")))
    dumped = json.dumps(_changes(registry), default=str)
    for value in ("LK-0001", "MRN-7734129", "pat-secret", "pat-other", "Ward-Seven", "Smith", "nurse A", "250"):
        assert value not in dumped, value
    assert _changes(registry)[1]["fields"].split(",") == ["fhir_patient_id", "ward"]


def test_refused_writes_record_nothing(registry):
    registry.add_patient(parse(PatientIn, PATIENT | {"fhir_patient_id": "pat-1"}))
    registry.add_patient(parse(PatientIn, {"pseudonym": "LK-0002", "fhir_patient_id": "pat-2"}))
    first = registry.record_procedure("LK-0001", parse(ProcedureIn, procedure()))
    before = len(_changes(registry))
    refused = [
        (OverlapError, lambda: registry.record_procedure("LK-0001", parse(ProcedureIn, procedure()))),
        (ConflictError, lambda: registry.add_patient(parse(PatientIn, {"pseudonym": "LK-0003",
                                                                       "fhir_patient_id": "pat-1"}))),
        (ConflictError, lambda: registry.update_patient("LK-0002", parse(PatientUpdate, {"fhir_patient_id": "pat-1",
                                                                                         "version": 1}))),
        (ConflictError, lambda: registry.update_patient("LK-0001", parse(PatientUpdate, {"ward": "X", "version": 9}))),
        (ConflictError, lambda: registry.update_procedure("LK-0001", first["id"], parse(
            ProcedureUpdate, procedure() | {"version": 7}))),
        (ConflictError, lambda: registry.add_patient(parse(PatientIn, PATIENT))),  # pseudonym taken
        (UnknownRecordError, lambda: registry.add_treatment("NOBODY", parse(TreatmentIn, {
            "agent": "hydroxyurea", "started_at": iso(1), "recorded_by": "Dr C"}))),
        (LeukosUserError, lambda: registry.add_labs("LK-0001", [LabIn(analyte="wbc", value=1, unit="mmol/L",
                                                                      taken_at=iso(0))])),
    ]
    for error, write in refused:
        with pytest.raises(error):
            write()
        assert len(_changes(registry)) == before
    # a repeat that changes nothing records nothing either
    lab = LabIn(analyte="wbc", value=240, taken_at=iso(-0.8), source="fhir", source_ref="Observation/o1")
    registry.import_labs("LK-0001", [lab])
    registry.import_labs("LK-0001", [lab])
    item = parse(FeedbackIn, {"card": "c1", "outcome": "accepted", "outcomeTimestamp": "2026-12-01T10:00:00Z"})
    assert registry.add_feedback("s", item) and not registry.add_feedback("s", item)
    assert len(_changes(registry)) == before + 2


def test_a_change_and_its_record_roll_back_together(registry, monkeypatch):
    """A failure after the change row is written (here: building the answer) leaves neither."""
    import leukos.registry.store as store

    registry.add_patient(parse(PatientIn, PATIENT))

    def broken(*_a, **_k):
        raise RuntimeError("failed after the write")

    monkeypatch.setattr(store, "_procedure_dict", broken)
    with pytest.raises(RuntimeError):
        registry.record_procedure("LK-0001", parse(ProcedureIn, procedure()))
    with registry.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM procedures")).scalar() == 0
    assert [r["action"] for r in _changes(registry)] == ["patient.add"]


def test_a_write_without_an_actor_is_refused_and_writes_nothing(registry):
    from leukos.registry.store import Registry

    anonymous = Registry(registry.engine, registry.kb)
    with pytest.raises(MissingActorError):
        anonymous.add_patient(parse(PatientIn, PATIENT))
    with registry.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM patients")).scalar() == 0
    assert _changes(registry) == []


def test_history_outlives_a_deleted_patient_row(registry):
    registry.add_patient(parse(PatientIn, PATIENT))
    with registry.engine.begin() as c:
        c.execute(text("DELETE FROM episodes"))
        c.execute(text("DELETE FROM patients"))
    assert [(r["action"], r["patient_id"]) for r in _changes(registry)] == [("patient.add", None)]
    assert registry.changes()[0]["patient"] is None


# -- the command line: the operating-system user, surface 'cli' ----------------------------------------


def _db(tmp_path):
    from leukos.registry.db import make_engine

    return make_engine(RegistrySettings(data_dir=tmp_path / "data"))


def test_cli_writes_record_the_operating_system_user(run, tmp_path, monkeypatch):
    monkeypatch.setattr(getpass, "getuser", lambda: "nurse-on-ward")
    assert run("patient", "add", "--pseudonym", "LK-0001", "--mrn", "MRN-1", "--fhir-id", "pat-aml-01",
               "--weight-kg", "70").exit_code == 0
    assert run("patient", "update", "LK-0001", "--ward", "H5").exit_code == 0
    labs = json.dumps([{"analyte": "wbc", "value": 250, "taken_at": iso(-1)}])
    assert run("patient", "labs", "LK-0001", "-", input=labs).exit_code == 0
    rec = tmp_path / "p.json"
    rec.write_text(json.dumps(procedure()))
    assert run("procedure", "record", "LK-0001", str(rec)).exit_code == 0
    assert run("patient", "treatment", "LK-0001", "--agent", "hydroxyurea", "--start", iso(1),
               "--by", "Dr C").exit_code == 0
    r = run("patient", "fhir-import", "LK-0001", str(EXAMPLES / "fhir-bundle-aml.json"))
    assert r.exit_code == 0, r.output
    engine = _db(tmp_path)
    rows = _changes(engine)
    engine.dispose()
    assert [r["action"] for r in rows] == ["patient.add", "patient.update", "labs.add", "procedure.record",
                                           "treatment.add", "labs.import"]
    assert {(r["surface"], r["actor"]) for r in rows} == {("cli", "nurse-on-ward")}
    assert rows[1]["fields"] == "ward"


def test_cli_actor_is_unknown_when_the_system_cannot_name_the_user(run, tmp_path, monkeypatch):
    def no_user():
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", no_user)
    assert run("patient", "add", "--pseudonym", "LK-0001").exit_code == 0
    engine = _db(tmp_path)
    assert [(r["surface"], r["actor"]) for r in _changes(engine)] == [("cli", "unknown")]
    engine.dispose()


def test_changes_command_says_who_changed_what_in_plain_words(run, tmp_path, monkeypatch):
    monkeypatch.setattr(getpass, "getuser", lambda: "alice")
    run("patient", "add", "--pseudonym", "LK-0001", "--mrn", "MRN-7734129")
    run("patient", "add", "--pseudonym", "LK-0002")
    run("patient", "update", "LK-0001", "--ward", "H5", "--target", "90")
    rec = tmp_path / "p.json"
    rec.write_text(json.dumps(procedure()))
    run("procedure", "record", "LK-0001", str(rec))

    r = run("registry", "changes")
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 4
    assert "recorded procedure 1 of LK-0001" in lines[0]  # newest first
    assert "alice (command line)" in lines[0] and "UTC" in lines[0]
    assert "updated patient LK-0001" in lines[1] and "fields changed: target_wbc_10e9_per_l, ward" in lines[1]
    assert "registered patient LK-0001" in lines[3]
    for raw in ("None", "{", "[", "'", "MRN-7734129", "H5", "90"):
        assert raw not in r.output, raw

    mine = run("registry", "changes", "--patient", "LK-0002").output.strip().splitlines()
    assert len(mine) == 1 and "registered patient LK-0002" in mine[0]
    assert len(run("registry", "changes", "--limit", "2").output.strip().splitlines()) == 2
    data = json.loads(run("registry", "changes", "--format", "json", "--limit", "1").output)
    assert data[0]["action"] == "procedure.record" and data[0]["surface"] == "cli" and data[0]["patient"] == "LK-0001"
    assert data[0]["fields"] == [] and data[0]["actor"] == "alice"


def test_changes_command_refuses_what_it_cannot_show(run):
    run("patient", "add", "--pseudonym", "LK-0001")
    r = run("registry", "changes", "--patient", "NOBODY")
    assert r.exit_code == 2 and "patient" in r.output and "Traceback" not in r.output
    for bad in ("0", "-3", "1000000"):
        r = run("registry", "changes", "--limit", bad)
        assert r.exit_code == 2 and "--limit" in r.output, bad
    empty = run("registry", "changes", "--patient", "LK-0001")
    assert "registered patient LK-0001" in empty.output


# -- the REST API, the web form and CDS feedback: the authenticated caller --------------------------------

TOKEN = "registry-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _service(tmp_path, **settings) -> Client:
    app = create_app(ServiceSettings(examples_dir=EXAMPLES, audit_log_path=tmp_path / "audit.jsonl",
                                     public_base_url="http://testserver", data_dir=tmp_path / "service", **settings))
    app.state.registry_settings = RegistrySettings(data_dir=tmp_path / "data")
    return Client(app)


def test_api_writes_record_the_requestor(tmp_path):
    client = _service(tmp_path, api_token=TOKEN)
    assert client.post("/api/patients", json=PATIENT, headers=AUTH).status_code == 201
    assert client.request("PATCH", "/api/patients/LK-0001", json={"ward": "H7", "version": 1},
                          headers=AUTH).status_code == 200
    assert client.post("/api/patients/LK-0001/procedures", json=procedure(), headers=AUTH).status_code == 201
    assert client.post("/api/patients/LK-0001/procedures", json=procedure(), headers=AUTH).status_code == 409
    assert client.get("/api/patients/LK-0001", headers=AUTH).status_code == 200  # a read records nothing
    rows = _changes(client.app.state.registry)
    assert [(r["action"], r["surface"], r["actor"]) for r in rows] == [
        ("patient.add", "api", "api-token"), ("patient.update", "api", "api-token"),
        ("procedure.record", "api", "api-token")]
    assert rows[1]["fields"] == "ward"
    # the audit log names the same requestor for the same calls
    events = [json.loads(x)["event"] for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert "api-token" in json.dumps(events[0])


def test_the_api_shows_a_patients_change_history_to_an_authenticated_caller(tmp_path):
    client = _service(tmp_path, api_token=TOKEN)
    client.post("/api/patients", json=PATIENT, headers=AUTH)
    client.request("PATCH", "/api/patients/LK-0001", json={"ward": "H7", "version": 1}, headers=AUTH)
    assert client.get("/api/patients/LK-0001/changes").status_code == 401  # no token, no history
    got = client.get("/api/patients/LK-0001/changes", headers=AUTH).json()["changes"]
    assert [(c["action"], c["actor"], c["surface"], c["patient"], c["fields"]) for c in got] == [
        ("patient.update", "api-token", "api", "LK-0001", ["ward"]), ("patient.add", "api-token", "api", "LK-0001", [])]
    assert "MRN" not in json.dumps(got) and PATIENT["mrn"] not in json.dumps(got)
    assert [c["action"] for c in client.get("/api/patients/LK-0001/changes?limit=1", headers=AUTH).json()["changes"]] \
        == ["patient.update"]
    bad = client.get("/api/patients/LK-0001/changes?limit=0", headers=AUTH)
    assert bad.status_code == 422 and "limit" in json.dumps(bad.json()["details"])
    assert client.get("/api/patients/NOPE/changes", headers=AUTH).status_code == 404


def test_web_form_and_cds_feedback_record_their_caller(tmp_path):
    client = _service(tmp_path, auth_disabled=True)
    client.post("/api/patients", json=PATIENT)
    form = {"started_at": "2026-12-01T08:00", "ended_at": "2026-12-01T11:00", "device": "spectra_optia_wbcd",
            "access": "femoral", "volume_processed_l": "9.6", "anticoagulant": "acd_a", "calcium_route": "iv",
            "ae_type": "none", "recorded_by": "Nurse B"}
    r = client.post("/ui/patients/LK-0001/procedures", data=form)
    assert r.status_code == 303, r.text
    assert client.post("/ui/patients/LK-0001/procedures", data=form).status_code == 422  # the same run again
    fb = {"feedback": [{"card": "9b3a7e1c-0000-4000-8000-000000000001", "outcome": "accepted",
                        "outcomeTimestamp": "2026-12-01T10:00:00Z"}]}
    assert client.post("/cds-services/leukos-patient-view/feedback", json=fb).status_code == 200
    assert client.post("/cds-services/leukos-patient-view/feedback", json=fb).json()["new"] == 0
    rows = _changes(client.app.state.registry)
    assert [(r["action"], r["surface"], r["actor"]) for r in rows] == [
        ("patient.add", "api", "anonymous-dev"), ("procedure.record", "web", "anonymous-dev"),
        ("feedback.add", "api", "anonymous-dev")]


def test_actor_names_are_stored_printable_and_bounded():
    assert Actor("a\nb\x00c" + "x" * 300, "api").name == "abc" + "x" * 125
    assert Actor("   ", "cli").name == "unknown"
    with pytest.raises(ValueError):
        Actor("alice", "email")


def test_export_includes_the_change_history(run, tmp_path, monkeypatch):
    monkeypatch.setattr(getpass, "getuser", lambda: "alice")
    run("patient", "add", "--pseudonym", "LK-0001", "--mrn", "MRN-7734129")
    out = tmp_path / "export.json"
    assert run("registry", "export", "--out", str(out)).exit_code == 0
    [row] = json.loads(out.read_text())["registry_changes"]
    assert (row["action"], row["actor"], row["surface"]) == ("patient.add", "alice", "cli")


def test_a_client_jwt_is_recorded_by_its_issuer(tmp_path):
    """A write with a CDS client JWT names the JWT's issuer, as the audit log's requestor does; so does the
    card feedback that client sends."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.service.conftest import BASE, ISSUER, KID, mint

    key = ec.generate_private_key(ec.SECP384R1())
    pub = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())) | {"kid": KID, "alg": "ES384", "use": "sig"}
    app = create_app(ServiceSettings(trusted_issuers=(ISSUER,), api_token=TOKEN, audit_log_path=tmp_path / "a.jsonl",
                                     examples_dir=EXAMPLES, public_base_url=BASE, data_dir=tmp_path / "service"),
                     jwks={"keys": [pub]})
    app.state.registry_settings = RegistrySettings(data_dir=tmp_path / "data")
    client = Client(app)

    def bearer(path: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint(key, aud=BASE + path)}"}

    assert client.post("/api/patients", json=PATIENT, headers=bearer("/api/patients")).status_code == 201
    url = "/cds-services/leukos-patient-view/feedback"
    fb = {"feedback": [{"card": "9b3a7e1c-0000-4000-8000-000000000001", "outcome": "accepted",
                        "outcomeTimestamp": "2026-12-01T10:00:00Z"}]}
    assert client.post(url, json=fb, headers=bearer(url)).status_code == 200
    assert [(r["action"], r["surface"], r["actor"]) for r in _changes(app.state.registry)] == [
        ("patient.add", "api", ISSUER), ("feedback.add", "api", ISSUER)]

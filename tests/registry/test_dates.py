"""Recorded times must be in the plausible window (a software bound); the follow-up card never costs
the other CDS cards.

Year-9999 and year-1 times were taken (or failed with a 500 while being stored); a procedure dated
9999-12-31 was stored, after which the ward list, the follow-up and the CDS patient-view gave 500.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3

import pytest

from leukos.registry import RegistrySettings
from leukos.service.app import create_app
from leukos.service.registry_api import registry_of
from leukos.service.settings import ServiceSettings
from tests.conftest import EXAMPLES
from tests.service.conftest import Client
from tests.service.fhir_data import PATIENT_ID, patient_view_request

from .records import PATIENT, T0, iso, procedure

NOW = T0 + dt.timedelta(days=2)  # the server clock of these tests


@pytest.fixture
def client(tmp_path) -> Client:
    a = create_app(ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES, audit_log_path=tmp_path / "a.jsonl"))
    a.state.registry_settings = RegistrySettings(data_dir=tmp_path / "data")
    registry_of(a).clock = lambda: NOW
    c = Client(a)
    assert c.post("/api/patients", json=PATIENT | {"fhir_patient_id": PATIENT_ID}).status_code == 201
    return c


def _fields(r) -> list[str]:
    """The fields refused for being outside the window (its problems say it is a software bound)."""
    assert r.status_code == 422, r.text
    return [d["field"] for d in r.json()["details"] if "software plausibility window" in d["expected"] and d["fix"]]


def test_the_window_is_a_software_bound_from_1900_to_a_day_ahead():
    from leukos.registry.inputs import EARLIEST_TIME, FUTURE_ALLOWANCE

    assert EARLIEST_TIME == dt.datetime(1900, 1, 1, tzinfo=dt.UTC) and FUTURE_ALLOWANCE == dt.timedelta(days=1)


@pytest.mark.parametrize("taken_at", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00",
                                      "9999-12-31T23:59:59+00:00", "1899-12-31T23:59:59+00:00",
                                      (NOW + dt.timedelta(days=1, minutes=1)).isoformat()])
def test_a_lab_time_outside_the_window_is_refused_naming_the_field(client, taken_at):
    r = client.post("/api/patients/LK-0001/labs", json=[{"analyte": "wbc", "value": 50, "taken_at": iso(-1)},
                                                        {"analyte": "wbc", "value": 5, "taken_at": taken_at}])
    assert _fields(r) == ["labs[1].taken_at"]
    assert client.get("/api/patients/LK-0001").json()["labs"] == []  # nothing stored, not even the good one


def test_times_inside_the_window_are_taken(client):
    ok = [{"analyte": "wbc", "value": 5, "taken_at": t}
          for t in ("1900-01-01T00:00:00+00:00", (NOW + dt.timedelta(hours=23)).isoformat(), iso(0))]
    assert client.post("/api/patients/LK-0001/labs", json=ok).json()["added"] == 3


def test_a_procedure_in_year_9999_is_refused_and_the_reads_keep_working(client):
    far = "9999-12-31T18:00:00+00:00"
    rec = procedure(started_at=far, ended_at="9999-12-31T21:00:00+00:00")
    fields = _fields(client.post("/api/patients/LK-0001/procedures", json=rec))
    assert {"started_at", "ended_at"} <= set(fields)
    rec = procedure(pre_wbc={"value": 250, "taken_at": "0001-01-01T00:00:00+14:00"})
    assert "pre_wbc.taken_at" in _fields(client.post("/api/patients/LK-0001/procedures", json=rec))
    assert client.get("/api/patients/LK-0001").json()["procedures"] == []
    for url in ("/api/patients", "/api/patients/LK-0001/follow-up", "/ui/patients"):
        assert client.get(url).status_code == 200, url


def test_a_treatment_time_outside_the_window_is_refused(client):
    r = client.post("/api/patients/LK-0001/treatments", json={"agent": "hydroxyurea", "started_at": iso(0),
                                                              "ended_at": "9999-12-31T00:00:00+00:00", "recorded_by": "dr A"})
    assert _fields(r) == ["ended_at"]


def test_any_failure_of_the_follow_up_card_leaves_the_other_cards(client, monkeypatch, caplog):
    """Not only a database error: whatever fails while the card is built (here the follow-up model
    overflows, as a stored year-9999 record made it) is logged by type and the other cards come."""
    from leukos.registry.store import Registry

    assert client.post("/api/patients/LK-0001/procedures", json=procedure()).status_code == 201

    def broken(self, pseudonym, **kw):
        raise OverflowError(f"date value out of range for {pseudonym}")

    monkeypatch.setattr(Registry, "follow_up", broken)
    with caplog.at_level(logging.WARNING):
        r = client.post("/cds-services/leukos-patient-view", json=patient_view_request("01-aml-leukostasis.yaml"))
    assert r.status_code == 200 and r.json()["cards"]
    assert not any("leukapheresis follow-up" in (x.get("detail") or "").lower() for x in r.json()["cards"])
    logged = " ".join(x.getMessage() for x in caplog.records)
    assert "OverflowError" in logged and "LK-0001" not in logged and PATIENT_ID not in logged


@pytest.mark.parametrize("stored", ["9999-12-31 23:59:59.000000", "0001-01-01 00:00:00.000000"])
def test_rows_stored_before_the_window_existed_are_read_by_every_surface(client, tmp_path, stored):
    """A registry written before times were bounded may hold a lab, a session and a treatment dated
    year 9999 or year 1 (here written into the file as such a version stored them: the second session,
    its last lab result and the treatment). With the session in year 9999 the old code answered 500
    on the ward list (its next-session date overflowed). Every read surface still answers: the ward
    list, the timeline, the follow-up, the FHIR export, the change history, the registry pages and
    the CDS patient-view with its cards."""
    assert client.post("/api/patients/LK-0001/procedures", json=procedure()).status_code == 201
    assert client.post("/api/patients/LK-0001/procedures", json=procedure(day=1)).status_code == 201
    assert client.post("/api/patients/LK-0001/treatments", json={"agent": "hydroxyurea", "started_at": iso(0),
                                                                 "recorded_by": "dr A"}).status_code == 201
    con = sqlite3.connect(tmp_path / "data" / "registry.sqlite3")
    with con:
        for table, cols in (("lab_results", ("taken_at",)), ("procedures", ("started_at", "ended_at")),
                            ("treatments", ("started_at", "ended_at"))):
            sets = ", ".join(f"{c} = ?" for c in cols)
            n = con.execute(f"UPDATE {table} SET {sets} WHERE id = (SELECT max(id) FROM {table})",  # noqa: S608
                            (stored,) * len(cols)).rowcount
            assert n == 1, table
    con.close()
    for url in ("/api/patients", "/api/patients/LK-0001", "/api/patients/LK-0001/follow-up",
                "/api/patients/LK-0001/fhir", "/api/patients/LK-0001/changes", "/ui/patients", "/ui/patients/LK-0001"):
        assert client.get(url).status_code == 200, url
    r = client.post("/cds-services/leukos-patient-view", json=patient_view_request("01-aml-leukostasis.yaml"))
    assert r.status_code == 200 and any(c["indicator"] == "critical" for c in r.json()["cards"])

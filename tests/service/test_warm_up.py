"""Start-up warm-up (leukos.service.app.warm_up): what the first patient's call used to build, built before
the server takes calls, from the knowledge base and the code only. Behaviour, not timings: after the
warm-up the lazily built parts exist, nothing about a patient was recorded or kept, and the first call
answers as before."""

from __future__ import annotations

import dataclasses
import json

import pytest

import leukos.units as units
from leukos.knowledge import load_knowledge
from leukos.present import labels
from leukos.registry.settings import RegistrySettings
from leukos.service.app import create_app, warm_up
from leukos.service.settings import ServiceSettings

from .conftest import BASE, Client
from .fhir_data import patient_view_request


@pytest.fixture
def app(tmp_path):
    settings = ServiceSettings(auth_disabled=True, audit_log_path=tmp_path / "audit.jsonl",
                               public_base_url=BASE, data_dir=tmp_path / "data")
    # A knowledge base object of its own, so that its converter and labels are new: what the warm-up
    # builds for it cannot have been built by an earlier test
    service = create_app(settings, kb=dataclasses.replace(load_knowledge()))
    service.state.registry_settings = RegistrySettings.from_env({"LEUKOS_DATA_DIR": str(tmp_path / "data")})
    return service


def _audit_lines(app) -> list[str]:
    path = app.state.leukos.settings.audit_log_path
    return path.read_text("utf-8").splitlines() if path.exists() else []


def test_warm_up_builds_the_lazy_parts_and_records_no_call(app):
    st = app.state.leukos
    conv = units.converter_for(st.kb)
    assert conv._factor.cache_info().currsize == 0 and "vocabulary" not in labels(st.kb).derived
    audit_before = _audit_lines(app)
    warm_up(app)
    with_units = [n for n, a in st.kb.analytes.items() if a.unit]
    # each analyte's own unit converted, through the UCUM registry (seconds to build on first use)
    assert conv._factor.cache_info().currsize == len(with_units)
    assert "vocabulary" in labels(st.kb).derived  # the wording memo's vocabulary
    assert getattr(app.state, "registry", None) is not None  # the configured registry, opened and migrated
    assert _audit_lines(app) == audit_before  # no call was made, so none was recorded
    assert not st.pages._items  # no case kept behind a card link


def test_warm_up_opens_no_registry_nobody_configured(tmp_path, monkeypatch):
    monkeypatch.delenv("LEUKOS_DATA_DIR", raising=False)
    monkeypatch.delenv("LEUKOS_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    service = create_app(ServiceSettings(auth_disabled=True, audit_log_path=tmp_path / "audit.jsonl",
                                         public_base_url=BASE))
    warm_up(service)
    assert getattr(service.state, "registry", None) is None
    assert not any(tmp_path.rglob("*.sqlite*")) and not any(tmp_path.rglob("*.db"))


def _cards_without_links(response) -> list[dict]:
    """The cards as the clinician reads them; links carry a fresh page token on every call."""
    return [{k: v for k, v in c.items() if k != "links"} for c in response.json()["cards"]]


def test_first_call_after_warm_up_answers_as_before(app, tmp_path):
    body = patient_view_request("01-aml-leukostasis.yaml")
    cold = create_app(ServiceSettings(auth_disabled=True, audit_log_path=tmp_path / "cold-audit.jsonl",
                                      public_base_url=BASE, data_dir=tmp_path / "cold"))
    expected = Client(cold).post("/cds-services/leukos-patient-view", json=body)  # an app never warmed up
    warm_up(app)
    r = Client(app).post("/cds-services/leukos-patient-view", json=body)
    assert r.status_code == expected.status_code == 200, r.text
    assert _cards_without_links(r) == _cards_without_links(expected) and r.json()["cards"]
    [line] = _audit_lines(app)
    assert json.loads(line)["event"]["extension"][0]["valueString"] == "POST /cds-services/leukos-patient-view 200"


@pytest.mark.parametrize("module_name", ["leukos.service.ui", "leukos.service.registry_ui"])
def test_warm_up_compiles_every_page_a_module_renders(module_name):
    """Each page module's PAGES names every template it renders (read from its source), and its warm-up
    compiles them with what they extend, include and import."""
    import importlib
    import inspect
    import re

    module = importlib.import_module(module_name)
    rendered = set(re.findall(r'"([a-z_]+\.html)"', inspect.getsource(module)))
    assert rendered == set(module.PAGES)
    templates = module._TEMPLATES if hasattr(module, "_TEMPLATES") else module._T
    templates.env.cache.clear()
    module.warm_up()
    compiled = {key[1] for key in templates.env.cache.keys()}
    assert set(module.PAGES) | {"base.html"} <= compiled
    if module_name.endswith(".ui"):
        assert {"_macros.html", "_result.html", "_order_sheet.html"} <= compiled


def test_an_unreachable_registry_database_does_not_stop_start_up(tmp_path, caplog):
    """The registry is an extra: a database down at start-up is logged (no URL, no password) and left for
    the first call, as a patient-view leaves it when the database goes down later."""
    service = create_app(ServiceSettings(auth_disabled=True, audit_log_path=tmp_path / "audit.jsonl",
                                         public_base_url=BASE, data_dir=tmp_path / "data"))
    url = "postgresql+psycopg://leukos:pw-not-logged@127.0.0.1:1/leukos?connect_timeout=2"
    service.state.registry_settings = RegistrySettings.from_env({"LEUKOS_DATABASE_URL": url})
    warm_up(service)
    assert getattr(service.state, "registry", None) is None
    said = [r.getMessage() for r in caplog.records if "registry unavailable at start-up" in r.getMessage()]
    assert said and "pw-not-logged" not in caplog.text and "127.0.0.1:1" not in caplog.text
    r = Client(service).post("/cds-services/leukos-patient-view",
                             json=patient_view_request("01-aml-leukostasis.yaml"))
    assert r.status_code == 200 and r.json()["cards"]  # the cards the labs support, without the registry's

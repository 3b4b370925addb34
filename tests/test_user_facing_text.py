"""Nothing a user sees points at internal notes (issue 9, item 5).

Outputs cite publications, guidelines or labels. They never mention the project's private reference
folder ("shared/..."), never show a "(not seen)" placeholder as a source, and never show an aggregator
page as a citation (a source read only through a secondary page records that page in the data and
shows the primary). Checked on every bundled example (assessment, plan, simulation), the rules and
citation listings, the shipped JSON Schema, the OpenAPI document and every CLI help text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leukos.domain.assessment import jsonable
from leukos.interop.case_format import load_case_text
from leukos.knowledge import load_knowledge
from leukos.rules import assess

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (REPO / "examples").glob("*.yaml"))
FORBIDDEN = re.compile(r"shared/|\.\./shared|reference/[a-z-]+\.md|\(not seen\)", re.I)
# internal note files: allowed nowhere in what the assessment says
INTERNAL_NOTES = re.compile(r"\b(clinical|apheresis|codes|case-format|outputs|interop-and-stack)\.md\b")
AGGREGATORS = ("pathologyoutlines", "clinicalpub", "clicktocurecancer", "clinicalcommander", "researcher.life",
               "acutecaretesting", "med-life", "drugs.com", "everything.explained", "scilit", "scicurve",
               "acnpsearch", "droracle", "healthunlocked", "wikidoc", "mdapp", "scribd")


def _text(obj) -> str:
    return json.dumps(jsonable(obj), ensure_ascii=False)


@pytest.fixture(scope="module")
def kb():
    return load_knowledge()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_assessment_of_every_example_is_clean(path, kb):
    a = assess(load_case_text(path.read_text("utf-8"), kb, name=path.name), kb).to_dict()
    assert not FORBIDDEN.findall(_text(a)), FORBIDDEN.findall(_text(a))
    assert not INTERNAL_NOTES.findall(_text(a)), INTERNAL_NOTES.findall(_text(a))


def test_citations_are_publications_not_aggregators_or_notes(kb):
    for key, c in kb.citations.items():
        shown = {k: v for k, v in c.to_dict().items() if k != "key"}
        text = _text(shown).lower()
        assert not FORBIDDEN.search(text), key
        assert not INTERNAL_NOTES.search(text), key
        assert not any(a in text for a in AGGREGATORS), (key, text)
        assert c.authors or "authors" in c.unverified, key


def test_rules_listing_and_schema_are_clean(kb):
    params = {k: p.to_dict() for k, p in kb.parameters.items()}
    assert not FORBIDDEN.findall(_text(params))
    schema = (REPO / "src" / "leukos" / "interop" / "case.schema.json").read_text("utf-8")
    assert not FORBIDDEN.findall(schema)
    assert "docs/case-format.md" in schema


def test_plan_and_simulation_are_clean(kb):
    pytest.importorskip("leukos.apheresis")
    from leukos.service.apheresis_adapter import plan_dict, simulate_dict

    case = load_case_text((REPO / "examples" / "01-aml-leukostasis.yaml").read_text("utf-8"), kb, name="01")
    assert not FORBIDDEN.findall(_text(plan_dict(case, {"draws": 20}, kb)))
    assert not FORBIDDEN.findall(_text(simulate_dict(case, {"draws": 5, "hours_after": 1.0}, kb)))


def _commands(group, prefix=()):
    import typer.main

    click_group = typer.main.get_command(group) if not hasattr(group, "commands") else group
    yield prefix
    for name, cmd in getattr(click_group, "commands", {}).items():
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, prefix + (name,))
        else:
            yield prefix + (name,)


def test_every_cli_help_is_clean():
    from leukos.cli.main import app, register

    register()
    runner = CliRunner()
    seen = 0
    for path in _commands(app):
        r = runner.invoke(app, [*path, "--help"], terminal_width=200)
        assert r.exit_code == 0, (path, r.output)
        assert not FORBIDDEN.findall(r.output), (path, FORBIDDEN.findall(r.output))
        seen += 1
    assert seen > 5


def test_openapi_document_is_clean():
    pytest.importorskip("fastapi")
    from leukos.service.app import create_app
    from leukos.service.settings import ServiceSettings

    doc = create_app(ServiceSettings(auth_disabled=True)).openapi()
    text = json.dumps(doc)
    assert not FORBIDDEN.findall(text), FORBIDDEN.findall(text)
    assert not INTERNAL_NOTES.findall(text.replace("docs/outputs.md", "").replace("docs/case-format.md", "")), \
        INTERNAL_NOTES.findall(text)


# A file name of the team's notes ("clinical.md §7b", "codes.md legend IPS") or a path into the notes
# folder. `\.md\b` leaves domain names such as mdpi.com alone.
NOTE_REFERENCE = re.compile(r"\.md\b|shared/", re.I)


def _strings(obj, where: str):
    """Every string inside ``obj`` (mappings, sequences, dataclass-like records), with its location."""
    if isinstance(obj, str):
        yield where, obj
    elif isinstance(obj, dict) or hasattr(obj, "items"):
        for k, v in obj.items():
            yield from _strings(v, f"{where}.{k}")
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for i, v in enumerate(obj):
            yield from _strings(v, f"{where}[{i}]")


def _offending(pairs) -> list[tuple[str, str]]:
    return [(w, s) for w, s in pairs if NOTE_REFERENCE.search(s)]


def test_knowledge_base_text_never_points_at_internal_notes(kb):
    """Parameter notes, criterion texts, symptom grade bases, citation fields and every string of every
    rule table are shown to users (rules listing, API, differential output): they cite publications,
    never the team's notes."""
    import dataclasses

    from leukos.knowledge.differential_rules import differential_rules

    found = []
    for key, p in kb.parameters.items():
        found += _offending([(f"parameter {key}.note", p.note), (f"parameter {key}.deviation", p.deviation)])
    rules = differential_rules(kb)
    for code, dx in rules.diagnoses.items():
        found += _offending(_strings({"label": dx.label, "notes": dx.notes, "next_tests": dx.next_tests,
                                      "outside": dx.outside}, f"differential {code}"))
        found += _offending((f"differential {code} criterion {r.feature}", r.text) for r in dx.rows)
    for term, s in kb.symptoms.items():
        found += _offending([(f"symptom {term}.grade_basis", s.grade_basis), (f"symptom {term}.label", s.label)])
    for key, c in kb.citations.items():
        found += _offending(_strings({f.name: getattr(c, f.name) for f in dataclasses.fields(c)},
                                     f"citation {key}"))
    found += _offending(_strings(dict(kb.tables), "tables"))
    assert len(list(_strings(dict(kb.tables), "tables"))) > 500  # the walk really reaches the tables
    assert not found, "\n".join(f"{w}: {s}" for w, s in found)


def test_fhir_code_table_sources_never_point_at_internal_notes():
    import tomllib
    from importlib import resources

    text = resources.files("leukos.knowledge").joinpath("data", "fhir_codes.toml").read_text("utf-8")
    found = _offending(_strings(tomllib.loads(text), "fhir_codes"))
    assert not found, "\n".join(f"{w}: {s}" for w, s in found)

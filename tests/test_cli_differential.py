"""The differential in `leukos assess`: a ranked table in text, the features used with --explain."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from leukos.cli.main import app, register
from tests.conftest import EXAMPLES

register()
runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args), env={"COLUMNS": "160"})


def test_assess_shows_the_differential_ranked_with_for_against_and_tests():
    r = run("assess", str(EXAMPLES / "21-reactive-leukemoid-c-difficile.yaml"))
    assert r.exit_code == 0, r.output
    for fragment in ("Differential diagnosis", "1. Leukemoid reaction (reactive) — high", "for:", "next tests:",
                     "Clostridioides difficile infection", "CSF3R mutation"):
        assert fragment in r.output, fragment
    assert r.output.index("Leukemoid reaction (reactive)") < r.output.index("Chronic neutrophilic leukaemia")
    assert "LEUKEMOID_REACTIVE" not in r.output  # diagnoses by name, not codes


def test_differential_stays_readable_at_80_columns():
    """Each diagnosis is a block whose lines wrap under it, not a six-column table squeezed to ellipses."""
    r = runner.invoke(app, ["assess", str(EXAMPLES / "01-aml-leukostasis.yaml")], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    block = r.output[r.output.index("Differential diagnosis"):]
    assert "…" not in block.split("Possible lab artefacts")[0].split("Could not assess")[0]
    assert "marrow aspirate/biopsy" in block


def test_explain_shows_the_features_used_and_points():
    r = run("assess", str(EXAMPLES / "24-emh-lymph-node.yaml"), "--explain")
    assert r.exit_code == 0, r.output
    assert "Differential #1: Extramedullary haematopoiesis (high)" in r.output
    assert "features used" in r.output
    assert "tri-lineage precursors in tissue (erythroid + myeloid + megakaryocytic): 4 points · status V" in " ".join(r.output.replace("│", " ").split())
    # the working reads as labelled lines, not JSON or field names
    assert '"points"' not in r.output and "features_used" not in r.output


def test_json_differential_entries_carry_the_contract_keys():
    r = run("assess", str(EXAMPLES / "23-cml-blast-phase.yaml"), "--format", "json")
    d = json.loads(r.output)
    top = d["differential"][0]
    assert top["code"] == "CML_BP" and top["rank"] == 1 and top["likelihood"] == "high"
    for key in ("supporting", "against", "next_tests", "citations", "features_used", "would_change"):
        assert key in top
    assert all(k in d["references"] for e in d["differential"] for k in e["citations"])


def test_edition_can_be_set_from_the_command_line():
    r = run("assess", str(EXAMPLES / "23-cml-blast-phase.yaml"), "--format", "json",
            "--set", "differential.cml_phase_system=ELN")
    d = json.loads(r.output)
    assert d["settings"]["differential.cml_phase_system"] == "ELN"

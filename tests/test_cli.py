"""The CLI: text and JSON output, exit code 2 with a message (no traceback) for user errors."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from leukos.cli.main import app, register
from tests.conftest import EXAMPLES

register()
runner = CliRunner()


def run(*args, input=None):
    return runner.invoke(app, list(args), input=input)


def test_assess_text_reads_like_a_clinical_summary():
    r = run("assess", str(EXAMPLES / "01-aml-leukostasis.yaml"))
    assert r.exit_code == 0, r.output
    for fragment in ("EMERGENT", "Hyperleukocytosis", "leukostasis grade 3", "Act now", "not a medical device",
                     "Possible lab artefacts", "--explain"):
        assert fragment in r.output


def test_assess_explain_shows_working_and_references():
    r = run("assess", str(EXAMPLES / "01-aml-leukostasis.yaml"), "--explain")
    assert r.exit_code == 0
    assert "Working" in r.output and "References" in r.output and "Cairo MS" in r.output


def test_assess_json_follows_the_output_contract():
    r = run("assess", str(EXAMPLES / "02-apl-coagulopathy.yaml"), "--format", "json")
    assert r.exit_code == 0
    d = json.loads(r.output)
    for key in ("leukos_version", "ruleset_version", "case_id", "wbc_10e9_per_l", "absolute_blasts_10e9_per_l",
                "hyperleukocytosis", "leukostasis", "differential", "tls", "dic", "artefacts", "leukapheresis",
                "recommendations", "missing_data", "warnings"):
        assert key in d
    assert d["leukapheresis"]["indicated"] is False and d["leukapheresis"]["contraindications"]


def test_stdin_and_settings():
    r = run("assess", "-", "--format", "json", "--set", "hyperleukocytosis.wbc_threshold=50",
            input='{"labs": {"wbc": 60}, "symptoms": []}')
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["hyperleukocytosis"]["present"] is True


@pytest.mark.parametrize("args,stdin,fragment", [
    (["assess", "-"], "labs: {wbc: 250000}", "labs.wbc"),
    (["assess", "-"], "symptoms: [dyspnoea_rest]", "dyspnea_rest"),
    (["assess", "-"], "", "empty"),
    (["assess", "-"], "{not json", "JSON"),
    (["assess", "/no/such/file.yaml"], None, "existing file"),
    (["assess", "-", "--set", "nonsense"], "labs: {}", "key=value"),
    (["assess", "-", "--set", "hyperleukocytosis.wbc_threshold=75"], "labs: {}", "one of"),
    # a NaN or infinite setting compares false with every result: it would silently turn a criterion off
    (["assess", "-", "--set", "tumour_lysis.uric_acid_min=nan"], "labs: {}", "a finite number"),
    (["assess", "-", "--set", "tumour_lysis.uric_acid_min=1e400"], "labs: {}", "a finite number"),
])
def test_user_errors_exit_2_without_traceback(args, stdin, fragment):
    r = run(*args, input=stdin)
    assert r.exit_code == 2, r.output
    assert fragment in r.output
    assert "Traceback" not in r.output


def test_a_folder_is_not_a_case(tmp_path):
    r = run("assess", str(tmp_path))
    assert r.exit_code == 2 and "folder" in r.output


def test_demo_assesses_every_example():
    r = run("demo", "--format", "json")
    assert r.exit_code == 0, r.output
    files = {x["file"] for x in json.loads(r.output)}
    assert {p.name for p in EXAMPLES.iterdir() if p.suffix in (".yaml", ".json")} == files


def test_rules_lists_every_parameter_with_its_source(kb):
    r = run("rules", "--format", "json")
    d = json.loads(r.output)
    assert set(d["parameters"]) == set(kb.parameters)
    assert all(p["citations"] for p in d["parameters"].values())
    r = run("rules")
    assert r.exit_code == 0 and "hyperleukocytosis.wbc_threshold" in r.output
    r = run("rules", "--citations")
    assert r.exit_code == 0 and "Cairo" in r.output


def test_schema_case_prints_the_shipped_schema():
    r = run("schema", "case")
    assert r.exit_code == 0
    assert json.loads(r.output)["title"] == "leukos case, version 1"


def test_console_script_exits_2_on_user_error(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("labs: {potassium: 60}\n")
    p = subprocess.run([sys.executable, "-c", "from leukos.cli.main import run; run()", "assess", str(bad)],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert "labs.potassium" in p.stderr and "Traceback" not in p.stderr


def test_a_100_mb_file_is_refused_quickly(tmp_path):
    """Issue 2 'Bad input': a 100 MB file gives one clear message, exit 2 (read stops at the limit)."""
    big = tmp_path / "big.json"
    with big.open("wb") as fh:
        fh.truncate(100 * 1024 * 1024)
    r = run("assess", str(big))
    assert r.exit_code == 2 and "Traceback" not in r.output
    # the read stops at the limit, so the message says "over", not the size of what was read (5.2 MB)
    assert "more than 5 MB" in r.output and "5.2" not in r.output


CODE_NAME = re.compile(r"\b(?:labs|findings|patient|symptoms)\.[a-z_.]+|\b[a-z]+_[a-z_]+\b|\{INR\}|x10\^|⚠ [a-z]")


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_the_text_report_says_code_names_in_words(example):
    """What could not be assessed, the warnings, the differential's notes and what would change it read
    in words ("fibrin-related marker, PT prolongation"), as on the page and the cards: the text report
    said "ISTH DIC score incomplete: fibrin_marker, pt_prolongation", an artefact under its code
    ("⚠ hemoglobin") and units as "x10^9/L" beside "×10⁹/L". Only the settings line keeps the
    parameter names, which it shows as --set takes them."""
    r = runner.invoke(app, ["assess", str(EXAMPLES / example), "--explain"], env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    text = r.output
    if "Settings (as --set takes them)" in text:  # the settings line, however it wraps, up to the references
        before, _, rest = text.partition("Settings (as --set takes them)")
        text = before + rest[rest.index("References"):]
    for line in text.splitlines():
        assert not CODE_NAME.search(line), line

"""MIMIC-IV and long-table sources, and bad input: clear user errors or counted exclusions, never a crash."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from leukos.cli.main import app, register
from leukos.errors import LeukosUserError
from leukos.screening import ScreenOptions, screen

from .conftest import NOW

MIMIC_ITEMS = """itemid,label,fluid,category
51301,White Blood Cells,Blood,Hematology
51300,WBC Count,Blood,Hematology
51144,Blasts,Blood,Hematology
50971,Potassium,Blood,Chemistry
50893,"Calcium, Total",Blood,Chemistry
51007,Uric Acid,Urine,Chemistry
"""
# subject 1: an episode of two counts (K/uL), with potassium 6.4 at the peak; subject 2: normal.
MIMIC_LABS = """labevent_id,subject_id,hadm_id,specimen_id,itemid,charttime,storetime,value,valuenum,valueuom,ref_range_lower,ref_range_upper,flag,priority,comments
1,1,10,100,51301,2180-01-01 08:00:00,,180,180,K/uL,4,11,abnormal,STAT,
2,1,10,101,51300,2180-01-01 20:00:00,,250.5,250.5,K/uL,4,11,abnormal,STAT,
3,1,10,101,51144,2180-01-01 20:00:00,,80,80,%,,,abnormal,STAT,
4,1,10,102,50971,2180-01-01 20:00:00,,6.4,6.4,mEq/L,3.3,5.1,abnormal,STAT,
5,1,10,103,51301,2180-01-04 08:00:00,,12,12,K/uL,4,11,abnormal,,
6,2,11,104,51301,2180-02-01 08:00:00,,7.1,7.1,K/uL,4,11,,,
7,2,11,105,51007,2180-02-01 08:00:00,,900,900,mg/dL,,,,,
"""


@pytest.fixture()
def mimic(tmp_path):
    (tmp_path / "d_labitems.csv").write_text(MIMIC_ITEMS)
    (tmp_path / "labevents.csv").write_text(MIMIC_LABS)
    return tmp_path


def test_mimic_labevents_with_k_per_ul(mimic, tmp_path):
    r = screen(mimic, tmp_path / "out", options=ScreenOptions(fmt="mimic", now=NOW.replace(year=2200)))
    eps = r.episodes.to_pylist()
    assert len(eps) == 1
    e = eps[0]
    assert e["person_id"] == "1" and e["n_results"] == 2
    assert e["peak_wbc_10e9_per_l"] == 250.5  # K/uL = 10*3/uL = 10*9/L (units.toml alias, never kelvin)
    assert e["peak_abs_blasts_10e9_per_l"] == pytest.approx(250.5 * 80 / 100)  # clinical.md §10
    assert e["potassium_mmol_per_l"] == 6.4 and e["pseudohyperkalemia_possible"] is True  # mEq/L = mmol/L for K+
    assert e["tls_potassium"] is True and e["tls_laboratory"] is None  # urate/phosphate/calcium missing: not False
    assert r.summary["mapping"]["itemids"] == {"50893": "calcium", "50971": "potassium", "51144": "blasts_pct",
                                               "51300": "wbc", "51301": "wbc"}  # urine uric acid not used


TABLE = """patient,when,test,result,units
a,2024-01-01 08:00,White cell count,150,10^9/L
a,2024-01-01 09:00,WBC,160000,/uL
a,2024-01-01 09:00,WBC,160000,/uL
a,2024-01-02 09:00,wbc,lots,K/uL
a,2024-01-03 09:00,wbc,,K/uL
a,2030-01-03 09:00,wbc,300,K/uL
a,2024-01-01 10:00,wbc,170,bananas
a,not a date,wbc,170,K/uL
b,2024-01-01 08:00,Potassium,5.0,mmol/L
b,2024-01-01 07:00,wbc,120000,10*9/L
,2024-01-01 07:00,wbc,120,10*9/L
"""


def test_long_table_bad_rows_are_counted_not_fatal(tmp_path):
    path = tmp_path / "labs.csv"
    path.write_text(TABLE)
    r = screen(path, tmp_path / "out", options=ScreenOptions(
        fmt="table", now=NOW, columns={"person": "patient", "time": "when", "name": "test", "value": "result",
                                       "unit": "units"}))
    s = r.summary
    assert s["excluded"] == {"missing_person": 1, "missing_value": 1, "non_numeric": 1, "missing_time": 1,
                             "future_time": 1, "unknown_unit": 1, "implausible": 1,
                             "censored_indeterminate": 0, "duplicate": 1}
    assert s["unknown_units"] == [{"analyte": "wbc", "unit": "bananas", "rows": 1, "why": s["unknown_units"][0]["why"]}]
    assert "not a known unit" in s["unknown_units"][0]["why"]
    eps = r.episodes.to_pylist()
    assert [(e["person_id"], e["n_results"], e["peak_wbc_10e9_per_l"]) for e in eps] == [("a", 2, 160.0)]
    assert any("could not be converted" in w for w in s["warnings"])


def test_missing_table_is_a_user_error(tmp_path):
    (tmp_path / "CONCEPT.csv").write_text("concept_id,concept_name,domain_id,vocabulary_id,concept_code\n")
    with pytest.raises(LeukosUserError, match="MEASUREMENT"):
        screen(tmp_path, tmp_path / "out", options=ScreenOptions(fmt="omop"))


def test_missing_column_is_a_user_error(tmp_path):
    (tmp_path / "MEASUREMENT.csv").write_text("measurement_id,person_id\n1,1\n")
    (tmp_path / "CONCEPT.csv").write_text("concept_id,concept_name,domain_id,vocabulary_id,concept_code\n")
    with pytest.raises(LeukosUserError) as exc:
        screen(tmp_path, tmp_path / "out", options=ScreenOptions(fmt="omop"))
    fields = {d.field for d in exc.value.details}
    assert "MEASUREMENT.measurement_concept_id" in fields and "MEASUREMENT.value_as_number" in fields


def test_table_without_a_person_column(tmp_path):
    path = tmp_path / "labs.csv"
    path.write_text("who,time,name,value,unit\na,2024-01-01,wbc,5,K/uL\n")
    with pytest.raises(LeukosUserError, match="--columns person="):
        screen(path, tmp_path / "out", options=ScreenOptions(fmt="table"))


def test_cli_user_error_exit_2_without_traceback(tmp_path):
    register()
    res = CliRunner().invoke(app, ["screen", str(tmp_path / "nope"), "--format", "omop", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "Traceback" not in res.output


def test_cli_screen_json_and_report(mimic, tmp_path):
    register()
    out = tmp_path / "o"
    res = CliRunner().invoke(app, ["screen", str(mimic), "--format", "mimic", "--out", str(out), "--output", "json",
                                   "--now", "2200-01-01", "--fail-on-episodes"])
    assert res.exit_code == 1, res.output  # episodes found and --fail-on-episodes
    summary = json.loads(res.output)
    for key in ("rows_read", "persons", "episodes", "seconds", "engine", "ruleset_version", "leukos_version"):
        assert key in summary  # outputs.md 'screen' contract
    html = (out / "report.html").read_text()
    assert html.count("<svg") >= 2 and "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")


def test_cli_synth_then_screen_text(tmp_path):
    register()
    runner = CliRunner()
    res = runner.invoke(app, ["synth", "omop", "--persons", "30", "--out", str(tmp_path / "omop"), "--seed", "2"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["screen", str(tmp_path / "omop"), "--format", "omop", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "leukos screen:" in res.output and "persons with episodes" in res.output


UNITLESS = """person,time,name,value,unit
u,2024-01-01 08:00,wbc,150,
u,2024-01-01 20:00,wbc,170,
u,2024-01-02 08:00,wbc,160,10*9/L
"""


def test_unitless_values_are_unknown_unless_a_default_unit_is_given(tmp_path):
    path = tmp_path / "labs.csv"
    path.write_text(UNITLESS)
    plain = screen(path, tmp_path / "a", options=ScreenOptions(fmt="table", now=NOW))
    assert plain.summary["excluded"]["unknown_unit"] == 2  # never read as the canonical unit
    assert "--default-unit wbc=" in plain.summary["unknown_units"][0]["why"]
    assert [e["n_results"] for e in plain.episodes.to_pylist()] == [1]
    given = screen(path, tmp_path / "b", options=ScreenOptions(fmt="table", now=NOW, default_units={"wbc": "/uL"}))
    assert given.summary["excluded"]["unknown_unit"] == 0
    # 150 and 170 per microlitre are 0.15 and 0.17 x10^9/L: they end the first episode's run
    assert [(e["n_results"], e["peak_wbc_10e9_per_l"]) for e in given.episodes.to_pylist()] == [(1, 160.0)]
    kilo = screen(path, tmp_path / "c", options=ScreenOptions(fmt="table", now=NOW, default_units={"wbc": "10*9/L"}))
    assert [e["n_results"] for e in kilo.episodes.to_pylist()] == [3]


def test_cli_default_unit_is_checked_before_the_run(tmp_path):
    register()
    path = tmp_path / "labs.csv"
    path.write_text(UNITLESS)
    runner = CliRunner()
    res = runner.invoke(app, ["screen", str(path), "-f", "table", "-o", str(tmp_path / "o"), "--default-unit", "wbc=kg"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    res = runner.invoke(app, ["screen", str(path), "-f", "table", "-o", str(tmp_path / "o"), "--output", "json",
                              "--default-unit", "wbc=10*9/L", "--now", "2026-01-01"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["episodes"] == 1


@pytest.mark.parametrize("name,content", [("labs.csv", bytes(range(256)) * 20), ("labs.parquet", b"PAR1 not really"),
                                          ("labs.csv", b"person time name value\nu 2024-01-01 wbc 150\n")])
def test_a_file_that_is_not_a_table_is_exit_2(tmp_path, name, content):
    register()
    path = tmp_path / name
    path.write_bytes(content)
    res = CliRunner().invoke(app, ["screen", str(path), "-f", "table", "-o", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "INPUT" in res.output


@pytest.mark.parametrize("args, option", [
    (["--gap-hours", "nan"], "--gap-hours"),  # accepted: NaN ends no episode
    (["--gap-hours", "inf"], "--gap-hours"),
    (["--gap-hours", "-1"], "--gap-hours"),
    (["--threads", "-3"], "--threads"),  # was a DuckDB SyntaxException traceback
    (["--threads", "100000"], "--threads"),  # DuckDB stalled starting the threads
    (["--memory-limit", "abc"], "--memory-limit"),  # was a DuckDB ParserException traceback
])
def test_a_screening_option_that_cannot_be_used_is_named_exit_2(tmp_path, args, option):
    register()
    path = tmp_path / "labs.csv"
    path.write_text("person,time,name,value,unit\n1,2024-01-01T00:00,wbc,150,10*9/L\n")
    res = CliRunner().invoke(app, ["screen", str(path), "-f", "table", "-o", str(tmp_path / "o"), *args])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and f"{option}: got" in " ".join(res.output.split())


def test_a_missing_column_is_said_in_words_not_got_none(tmp_path):
    register()
    path = tmp_path / "labs.csv"
    path.write_text("person,time,value,unit\n1,2024-01-01T00:00,150,10*9/L\n")
    res = CliRunner().invoke(app, ["screen", str(path), "-f", "table", "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "got None" not in res.output and "got nothing" in res.output

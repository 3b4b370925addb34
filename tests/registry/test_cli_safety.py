"""The registry CLI never loses or leaks data by accident, and every bad input, output path or database
setting exits 2 with one message (never a traceback, never an MRN or a password)."""

from __future__ import annotations

import json
import os
import sqlite3
import stat

import pytest
from typer.testing import CliRunner

from leukos.cli.main import app, register

MRN = "MRN-SECRET-4711"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    register()
    monkeypatch.chdir(tmp_path)

    def go(*args, url: str = "", data_dir: str | None = None, input=None):
        env = {"LEUKOS_DATA_DIR": data_dir or str(tmp_path / "data"), "LEUKOS_DATABASE_URL": url}
        r = CliRunner().invoke(app, list(args), env=env, input=input)
        assert r.exit_code in (0, 2), (r.output, r.exception)  # 1 would be an uncaught exception (a traceback)
        assert "Traceback" not in r.output
        return r
    return go


def _flat(text: str) -> str:
    return " ".join(text.split())  # the message as one line (the console wraps it)


def _patients(db) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [p for (p,) in con.execute("select pseudonym from patients")]
    finally:
        con.close()


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _add(cli, *more):
    r = cli("patient", "add", "--pseudonym", "P1", "--mrn", MRN, *more)
    assert r.exit_code == 0, r.output


# -- 1. downgrade ----------------------------------------------------------------------------------------


def test_downgrade_that_drops_records_is_refused_without_the_flag_and_backed_up_with_it(cli, tmp_path):
    _add(cli)
    db = tmp_path / "data" / "registry.sqlite3"
    r = cli("registry", "migrate", "--down", "--revision", "base")
    assert r.exit_code == 2 and "--yes-lose-data" in r.output and "patients (1 row)" in r.output
    assert _patients(db) == ["P1"]
    assert list((tmp_path / "data").glob("*before-downgrade*")) == []  # refused before anything, backup included

    r = cli("registry", "migrate", "--down", "--revision", "base", "--yes-lose-data")
    assert r.exit_code == 0 and "base (empty)" in r.output
    [saved] = (tmp_path / "data").glob("registry.sqlite3.before-downgrade-from-0004-*.sqlite3")
    assert str(saved) in "".join(r.output.split())
    assert _patients(saved) == ["P1"] and _mode(saved) == 0o600
    assert MRN not in r.output


def test_a_downgrade_that_drops_no_records_needs_no_flag_but_is_backed_up(cli, tmp_path):
    _add(cli)
    r = cli("registry", "migrate", "--down", "--revision", "-1")  # 0004 -> 0003 drops the change history: records
    assert r.exit_code == 2 and "registry_changes (1 row)" in r.output
    assert cli("registry", "migrate", "--down", "--revision", "-1", "--yes-lose-data").exit_code == 0
    r = cli("registry", "migrate", "--down", "--revision", "-1")  # 0003 -> 0002: an index only
    assert r.exit_code == 0 and "revision 0002" in r.output and "before-downgrade-from-0003" in r.output
    assert _patients(tmp_path / "data" / "registry.sqlite3") == ["P1"]
    r = cli("registry", "migrate", "--down", "--revision", "0001")  # drops treatments: empty, so allowed
    assert r.exit_code == 0 and "revision 0001" in r.output


def test_unknown_revision_exits_2_naming_it(cli):
    r = cli("registry", "migrate", "--revision", "zzzz")
    assert r.exit_code == 2 and "--revision" in r.output and "zzzz" in r.output


# -- 2. which database -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file::memory:?uri=true",
                                 "sqlite:///file:x?mode=memory&uri=true"])
def test_in_memory_sqlite_is_refused(cli, url):
    for cmd in (("registry", "migrate"), ("patient", "add", "--pseudonym", "P1")):
        r = cli(*cmd, url=url)
        assert r.exit_code == 2 and "LEUKOS_DATABASE_URL" in r.output and "in-memory" in r.output


def test_messages_name_the_database_actually_used(cli, tmp_path):
    r = cli("registry", "migrate", url="sqlite:///rel.db")
    assert r.exit_code == 0 and f"SQLite{tmp_path / 'rel.db'}:" in "".join(r.output.split())
    assert (tmp_path / "rel.db").is_file() and not (tmp_path / "data").exists()


# -- 3. output files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cmd", [("registry", "export"), ("registry", "backup"), ("patient", "fhir-export", "P1")])
def test_an_existing_output_is_kept_unless_overwrite(cli, tmp_path, cmd):
    _add(cli)
    out = tmp_path / "precious.txt"
    out.write_text("precious")
    r = cli(*cmd, "--out", str(out))
    assert r.exit_code == 2 and "--overwrite" in r.output and out.read_text() == "precious"
    if cmd[1] == "backup":  # even with --overwrite, only an earlier backup is replaced
        assert cli(*cmd, "--out", str(out), "--overwrite").exit_code == 2 and out.read_text() == "precious"
        out.unlink()
        assert cli(*cmd, "--out", str(out)).exit_code == 0
    r = cli(*cmd, "--out", str(out), "--overwrite")
    assert r.exit_code == 0 and out.read_bytes() != b"precious" and _mode(out) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("cmd", [("registry", "export", "--with-identifiers"), ("registry", "backup"),
                                 ("patient", "fhir-export", "P1")])
def test_symlinks_are_never_followed_and_files_are_owner_only(cli, tmp_path, cmd):
    _add(cli)
    victim = tmp_path / "victim.txt"
    link = tmp_path / "link.out"
    link.symlink_to(victim)
    r = cli(*cmd, "--out", str(link))
    assert r.exit_code == 2 and "symbolic link" in r.output and not victim.exists()
    r = cli(*cmd, "--out", str(link), "--overwrite")
    assert r.exit_code == 2 and not victim.exists()
    (tmp_path / "out.json.tmp").symlink_to(tmp_path / "elsewhere.txt")  # the old temporary name
    r = cli(*cmd, "--out", str(tmp_path / "out.json"))
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "elsewhere.txt").exists() and _mode(tmp_path / "out.json") == 0o600
    assert MRN not in r.output


@pytest.mark.parametrize("cmd", [("registry", "export"), ("registry", "backup"), ("patient", "fhir-export", "P1")])
def test_a_folder_or_a_missing_folder_as_out_is_a_clear_error(cli, tmp_path, cmd):
    _add(cli)
    (tmp_path / "adir").mkdir()
    r = cli(*cmd, "--out", str(tmp_path / "adir"))
    assert r.exit_code == 2 and "folder" in r.output
    r = cli(*cmd, "--out", str(tmp_path / "missing" / "x.out"))
    assert r.exit_code == 2 and "folder" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "data"] and not any((tmp_path / "adir").iterdir())


def test_the_database_file_and_its_folder_are_owner_only(cli, tmp_path):
    _add(cli)
    assert _mode(tmp_path / "data" / "registry.sqlite3") == 0o600 and _mode(tmp_path / "data") == 0o700


def test_a_database_file_others_can_read_is_named_with_the_fix(cli, tmp_path, caplog):
    """A registry file made before files were created owner-only (or copied in with 0644) was used
    without a word, though it holds MRNs. Its mode is left alone (the operator may have a reason): a
    warning names the file, the mode and the command that fixes it, and never a record's content."""
    _add(cli)
    db = tmp_path / "data" / "registry.sqlite3"
    os.chmod(db, 0o644)
    with caplog.at_level("WARNING", logger="leukos.registry.db"):
        r = cli("patient", "list", "--format", "json")
    assert r.exit_code == 0 and _mode(db) == 0o644
    said = " ".join(m.getMessage() for m in caplog.records if m.name == "leukos.registry.db")
    assert str(db) in said and "mode 644" in said and f"chmod 600 {db}" in said and MRN not in said
    caplog.clear()
    os.chmod(db, 0o600)
    with caplog.at_level("WARNING", logger="leukos.registry.db"):
        cli("patient", "list", "--format", "json")
    assert not [m for m in caplog.records if m.name == "leukos.registry.db"]


# -- 4. hostile input and database settings ----------------------------------------------------------------


def _bomb(levels: int = 5) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text,words", [
    (_bomb(), "alias"),
    ("[" * 10_000 + "]" * 10_000, "nesting"),
    ('[{"analyte": "wbc", "value": ' + "9" * 5000 + "}]", "numbers of ordinary size"),
])
def test_record_files_are_read_with_the_shared_limits(cli, tmp_path, text, words):
    _add(cli)
    f = tmp_path / "in.yaml"
    f.write_text(text)
    for cmd in (("patient", "labs", "P1", str(f)), ("procedure", "record", "P1", str(f)),
                ("patient", "fhir-import", "P1", str(f))):
        r = cli(*cmd)
        assert r.exit_code == 2 and words in _flat(r.output), r.output


def test_text_that_is_not_unicode_is_refused_naming_the_option_not_the_mrn(cli):
    r = cli("patient", "show", "P\udced\udca0\udc80")
    assert r.exit_code == 2 and "PSEUDONYM" in r.output
    r = cli("patient", "add", "--pseudonym", "P2", "--mrn", "SECRET\udced")
    assert r.exit_code == 2 and "--mrn" in r.output and "SECRET" not in r.output


@pytest.mark.parametrize("url,words", [
    ("postgresql+psycopg://u:pw-XYZ@127.0.0.1:1/leukos", "PostgreSQL 127.0.0.1:1/leukos"),
    ("sqlitegarbage", "LEUKOS_DATABASE_URL"),
    ("postgresqlx://u:pw-XYZ@a/b", "postgresqlx://"),
    ("sqlite:////nonexistent-leukos/x.db", "existing folder"),
])
def test_database_urls_that_cannot_be_used_exit_2(cli, url, words):
    r = cli("patient", "list", url=url)
    assert r.exit_code == 2 and words in _flat(r.output) and "pw-XYZ" not in r.output


def test_a_file_that_is_not_a_database_or_a_data_dir_that_is_a_file_exit_2(cli, tmp_path):
    (tmp_path / "ns").mkdir()
    junk = tmp_path / "ns" / "registry.sqlite3"
    junk.write_text("not a database file at all" * 4)
    r = cli("patient", "list", data_dir=str(tmp_path / "ns"))
    assert r.exit_code == 2 and "not a folder" not in r.output and "something else" in r.output
    assert junk.read_text() == "not a database file at all" * 4
    (tmp_path / "f").touch()
    r = cli("patient", "list", data_dir=str(tmp_path / "f"))
    assert r.exit_code == 2 and "LEUKOS_DATA_DIR" in r.output
    r = cli("patient", "list", url=f"sqlite:///{tmp_path / 'ns'}")
    assert r.exit_code == 2 and "folder" in r.output


def test_a_read_only_database_never_shows_the_sql_parameters(cli, tmp_path):
    _add(cli)
    ro = f"sqlite:///file:{tmp_path / 'data' / 'registry.sqlite3'}?mode=ro&uri=true"
    r = cli("patient", "add", "--pseudonym", "P9", "--mrn", "SECRET-MRN-42", url=ro)
    assert r.exit_code == 2 and "readonly" in r.output
    assert "SECRET-MRN-42" not in r.output and "parameters" not in r.output.lower()


# -- 5. export without identifiers; 6. FHIR id from the command line --------------------------------------


def test_default_export_leaves_out_the_mrn_and_the_fhir_id(cli, tmp_path):
    _add(cli, "--fhir-id", "pat-1")
    assert cli("registry", "export", "--out", "e.json").exit_code == 0
    text = (tmp_path / "e.json").read_text()
    assert "pat-1" not in text and MRN not in text
    assert "fhir_patient_id" not in json.loads(text)["patients"][0]
    assert cli("registry", "export", "--out", "i.json", "--with-identifiers").exit_code == 0
    p = json.loads((tmp_path / "i.json").read_text())["patients"][0]
    assert p["fhir_patient_id"] == "pat-1" and p["mrn"] == MRN


def test_fhir_id_recorded_from_the_command_line(cli, tmp_path):
    from tests.conftest import EXAMPLES

    _add(cli)
    bundle = str(EXAMPLES / "fhir-bundle-aml.json")
    r = cli("patient", "fhir-import", "P1", bundle)
    assert r.exit_code == 2 and "leukos patient update P1 --fhir-id" in _flat(r.output)
    r = cli("patient", "update", "P1", "--fhir-id", "pat-aml-01")
    assert r.exit_code == 0 and "version 2" in r.output
    r = cli("patient", "fhir-import", "P1", bundle, "--format", "json")
    assert r.exit_code == 0 and json.loads(r.output)["added"] > 0
    assert cli("patient", "update", "P1", "--no-fhir-id").exit_code == 0
    assert cli("patient", "update", "P1").exit_code == 2

"""The Alembic migrations upgrade and downgrade on SQLite and PostgreSQL, and match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from leukos.registry.db import current_revision, downgrade, make_engine, upgrade
from leukos.registry.models import Base

TABLES = {"patients", "episodes", "lab_results", "assessments", "plans", "procedures", "adverse_events", "cds_feedback",
          "treatments", "registry_changes"}


def test_upgrade_downgrade_upgrade(settings):
    engine = make_engine(settings)
    upgrade(engine)
    assert TABLES <= set(inspect(engine).get_table_names())
    assert current_revision(engine) == "0004"
    downgrade(engine, "0001")  # back to the first schema: the treatments and the change history go
    assert set(inspect(engine).get_table_names()) >= TABLES - {"treatments", "registry_changes"}
    assert not {"treatments", "registry_changes"} & set(inspect(engine).get_table_names())
    downgrade(engine, "base")
    assert not TABLES & set(inspect(engine).get_table_names())
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == "0004"
    engine.dispose()


def test_change_history_migration_round_trip_keeps_the_records(settings):
    """0004 adds registry_changes to a database holding records (and drops only it on the way down);
    upgrading again gives an empty, working history beside the untouched records."""
    import datetime as dt

    from sqlalchemy import text

    engine = make_engine(settings)
    upgrade(engine, "0003")
    assert "registry_changes" not in inspect(engine).get_table_names()
    with engine.begin() as c:
        c.execute(text("INSERT INTO patients (pseudonym, active, created_at, version) VALUES ('LK-1', :a, :t, 1)"),
                  {"a": True, "t": dt.datetime(2026, 12, 1)})
    upgrade(engine, "0004")
    cols = {c["name"] for c in inspect(engine).get_columns("registry_changes")}
    assert cols == {"id", "at", "actor", "surface", "action", "patient_id", "record_id", "fields"}
    fks = inspect(engine).get_foreign_keys("registry_changes")
    assert [(f["referred_table"], f["constrained_columns"]) for f in fks] == [("patients", ["patient_id"])]
    with engine.begin() as c:
        c.execute(text("INSERT INTO registry_changes (at, actor, surface, action, patient_id, record_id) "
                       "SELECT :t, 'alice', 'cli', 'patient.add', id, id FROM patients"), {"t": dt.datetime(2026, 12, 1)})
    downgrade(engine, "0003")
    assert current_revision(engine) == "0003"
    assert "registry_changes" not in inspect(engine).get_table_names()
    with engine.connect() as c:
        assert c.execute(text("SELECT pseudonym FROM patients")).scalars().all() == ["LK-1"]
    upgrade(engine)
    assert current_revision(engine) == "0004"
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM registry_changes")).scalar() == 0
    engine.dispose()


def test_change_history_takes_only_the_three_surfaces(settings):
    """The database itself refuses a change row from a surface other than api, web or cli."""
    import datetime as dt

    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    engine = make_engine(settings)
    upgrade(engine)
    with pytest.raises(IntegrityError), engine.begin() as c:
        c.execute(text("INSERT INTO registry_changes (at, actor, surface, action) VALUES (:t, 'x', 'email', 'import')"),
                  {"t": dt.datetime(2026, 12, 1)})
    engine.dispose()


def test_migrated_schema_matches_the_models(settings):
    engine = make_engine(settings)
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    engine.dispose()


def test_sqlite_file_created_on_first_use_in_wal_mode(tmp_path):
    from leukos.registry import RegistrySettings, open_registry

    s = RegistrySettings.from_env({"LEUKOS_DATA_DIR": str(tmp_path / "fresh")})
    assert not (tmp_path / "fresh").exists()
    reg = open_registry(s)
    assert (tmp_path / "fresh" / "registry.sqlite3").is_file()
    with reg.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    reg.engine.dispose()


def test_default_data_dir_is_beside_the_working_directory(tmp_path):
    from leukos.registry import RegistrySettings

    s = RegistrySettings.from_env({}, cwd=tmp_path)
    assert s.data_dir == tmp_path / "leukos-data" and s.is_sqlite
    pg = RegistrySettings.from_env({"LEUKOS_DATABASE_URL": "postgresql+psycopg://u:secret@db.example/leukos"})
    assert "secret" not in pg.describe() and not pg.is_sqlite


def test_unique_fhir_id_migration_refuses_existing_duplicates_and_keeps_the_data(settings):
    """Two patients with one FHIR id (possible before 0003): the upgrade stops with the fix, names no
    patient, changes nothing; once the data are corrected it goes through."""
    import datetime as dt

    import pytest
    from sqlalchemy import text

    from leukos.registry.errors import MigrationBlockedError

    engine = make_engine(settings)
    upgrade(engine, "0002")
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    with engine.begin() as c:
        for pseudonym, mrn in (("LK-A", "MRN-111"), ("LK-B", "MRN-222")):
            c.execute(text("INSERT INTO patients (pseudonym, mrn, fhir_patient_id, active, created_at, version) "
                           "VALUES (:p, :m, 'pat-1', :a, :t, 1)"), {"p": pseudonym, "m": mrn, "a": True, "t": now})
    with pytest.raises(MigrationBlockedError) as err:
        upgrade(engine)
    d = err.value.details[0]
    assert d.field == "patients.fhir_patient_id" and "1 FHIR Patient id" in str(d.value)
    assert "leukos registry migrate" in d.fix and "SELECT" in d.fix
    assert not any(x in str(err.value.to_dict()) for x in ("LK-A", "LK-B", "MRN-111", "pat-1"))
    assert current_revision(engine) == "0002"
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM patients WHERE fhir_patient_id = 'pat-1'")).scalar() == 2
    with engine.begin() as c:
        c.execute(text("UPDATE patients SET fhir_patient_id = NULL WHERE pseudonym = 'LK-B'"))
    upgrade(engine, "0003")
    assert current_revision(engine) == "0003"
    engine.dispose()


def test_the_tables_each_downgrade_drops_are_declared(settings):
    """``DOWNGRADE_DROPS`` (what ``leukos registry migrate --down`` refuses to lose without --yes-lose-data)
    matches what each migration's downgrade really drops, for every revision shipped."""
    from alembic.script import ScriptDirectory

    from leukos.registry.db import DOWNGRADE_DROPS, alembic_config

    engine = make_engine(settings)
    revisions = [s.revision for s in ScriptDirectory.from_config(alembic_config(engine)).walk_revisions()]
    assert sorted(revisions) == sorted(DOWNGRADE_DROPS)
    for rev in sorted(revisions):
        upgrade(engine, rev)
        before = set(inspect(engine).get_table_names())
        downgrade(engine, "-1")
        gone = before - set(inspect(engine).get_table_names()) - {"alembic_version"}
        assert gone == set(DOWNGRADE_DROPS[rev]), rev
        upgrade(engine, rev)
    engine.dispose()

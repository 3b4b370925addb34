"""The Alembic migrations upgrade and downgrade on SQLite and PostgreSQL, and match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from leukos.registry.db import current_revision, downgrade, make_engine, upgrade
from leukos.registry.models import Base

TABLES = {"patients", "episodes", "lab_results", "assessments", "plans", "procedures", "adverse_events", "cds_feedback",
          "treatments"}


def test_upgrade_downgrade_upgrade(settings):
    engine = make_engine(settings)
    upgrade(engine)
    assert TABLES <= set(inspect(engine).get_table_names())
    assert current_revision(engine) == "0002"
    downgrade(engine, "0001")  # one step back: only the treatments table goes
    assert set(inspect(engine).get_table_names()) >= TABLES - {"treatments"}
    assert "treatments" not in inspect(engine).get_table_names()
    downgrade(engine, "base")
    assert not TABLES & set(inspect(engine).get_table_names())
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == "0002"
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

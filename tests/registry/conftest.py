"""Registry fixtures: a SQLite registry in a temp dir, and the same on a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from leukos.knowledge import load_knowledge
from leukos.registry import RegistrySettings, open_registry
from leukos.registry.changes import Actor

from .pg import PgServer, pg_bin

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
TEST_ACTOR = Actor("test-suite", "cli")  # the store refuses writes without an actor
_n = itertools.count()


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


@pytest.fixture(scope="session")
def pg_server():
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (scripts/system-deps/postgresql.sh)")
    server = PgServer(bindir).start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server) -> str:
    return pg_server.create_database(f"leukos_test_{next(_n)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request, tmp_path) -> RegistrySettings:
    if request.param == "sqlite":
        return RegistrySettings(data_dir=tmp_path / "data")
    return RegistrySettings(data_dir=tmp_path / "unused", database_url=request.getfixturevalue("pg_url"))


@pytest.fixture
def registry(settings):
    reg = open_registry(settings, load_knowledge()).acting_as(TEST_ACTOR)
    reg.clock = lambda: at(0)
    yield reg
    reg.engine.dispose()


@pytest.fixture
def sqlite_registry(tmp_path):
    reg = open_registry(RegistrySettings(data_dir=tmp_path / "data"), load_knowledge()).acting_as(TEST_ACTOR)
    reg.clock = lambda: at(0)
    yield reg
    reg.engine.dispose()


@pytest.fixture
def run(tmp_path):
    """The ``leukos`` command line on a SQLite registry in ``tmp_path/data``: ``run(*args, input=None)``."""
    from typer.testing import CliRunner

    from leukos.cli.main import app, register

    register()
    env = {"LEUKOS_DATA_DIR": str(tmp_path / "data"), "LEUKOS_DATABASE_URL": ""}

    def go(*args, input=None):
        return CliRunner().invoke(app, list(args), env=env, input=input)
    return go

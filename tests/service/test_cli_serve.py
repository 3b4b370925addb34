"""``leukos serve``: bad settings are user errors (exit 2, no traceback); never auth-off off loopback."""

from __future__ import annotations

from typer.testing import CliRunner

from leukos.cli.main import app, register


def _run(args, env=None):
    register()
    return CliRunner().invoke(app, args, env=env)


def test_dev_mode_refused_on_a_public_interface():
    r = _run(["serve", "--host", "0.0.0.0", "--dev"])
    assert r.exit_code == 2
    assert "LEUKOS_AUTH_DISABLED" in r.output and "Traceback" not in r.output


def test_bad_environment_variable_is_a_user_error():
    r = _run(["serve", "--port", "8000"], env={"LEUKOS_MAX_BODY_BYTES": "tiny"})
    assert r.exit_code == 2 and "LEUKOS_MAX_BODY_BYTES" in r.output


def test_help_lists_serve():
    assert "serve" in _run(["--help"]).output

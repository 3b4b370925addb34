"""Hostile ``LEUKOS_*`` settings: one clear message (exit 2), never a traceback, a secret or a silent start.

Each case is a value an operator can really write (a typo, a pasted newline, a URL with a password, a
path to a folder or to /dev/null). ``leukos serve`` must refuse it before it prints that it serves,
naming the variable (or the option), the value (secrets masked), what is expected and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leukos.cli.main import app as cli
from leukos.cli.main import register
from leukos.errors import LeukosUserError
from leukos.service.app import create_app
from leukos.service.settings import ServiceSettings

BASE = "https://cds.example.org/leukos"
TOKEN = "settings-test-token-0123456789"


def _refused(env: dict[str, str], **overrides) -> LeukosUserError:
    with pytest.raises(LeukosUserError) as exc:
        ServiceSettings.from_env(env, **overrides)
    return exc.value


@pytest.fixture
def serve(monkeypatch, tmp_path):
    """``leukos serve`` in-process with uvicorn, warm-up and the GC settling stubbed: returns
    (result, what uvicorn would have been given)."""
    import uvicorn

    import leukos.service.app as service_app

    ran: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: ran.update(kw))
    monkeypatch.setattr(service_app, "warm_up", lambda app: None)
    monkeypatch.setattr(service_app, "settle_gc", lambda: None)
    for name in ("LEUKOS_HOST", "LEUKOS_PORT", "LEUKOS_DATABASE_URL", "LEUKOS_AUDIT_LOG_PATH", "LEUKOS_JWKS_PATH",
                 "LEUKOS_AUDIT_KEY", "LEUKOS_AUTH_DISABLED", "LEUKOS_EXAMPLES_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)

    def run(env: dict[str, str], *args: str):
        register()
        full = {"LEUKOS_PUBLIC_BASE_URL": BASE, "LEUKOS_DATA_DIR": str(tmp_path / "data"), **env}
        return CliRunner().invoke(cli, ["serve", *args], env=full), ran

    return run


def _one_message(r, *names: str) -> str:
    out = r.output
    assert r.exit_code == 2, out
    assert "Traceback" not in out and "leukos web service on" not in out, out
    assert out.count("error:") == 1, out
    flat = " ".join(out.split())
    for name in names:
        assert name in flat, (name, out)
    return flat


# -- 1. secrets never in a message ----------------------------------------------------------------

def test_a_near_miss_audit_key_is_refused_without_showing_it():
    key = "0123456789abcdef" * 3 + "0123456789abcdeZ"
    err = _refused({"LEUKOS_AUDIT_KEY": key})
    assert err.details[0].field == "LEUKOS_AUDIT_KEY"
    assert "0123456789" not in err.message and "abcde" not in err.message
    assert "64" in err.message and "hex" in err.message


@pytest.mark.parametrize("token", ["s3cr3t-token-0123456789\n", " s3cr3t-token-0123456789", "short-s3cr3t",
                                   "s3cr3t token with spaces inside"])
def test_an_unusable_api_token_is_refused_without_showing_it(token):
    err = _refused({"LEUKOS_API_TOKEN": token})
    assert err.details[0].field == "LEUKOS_API_TOKEN"
    assert "s3cr3t" not in err.message


def test_a_good_api_token_is_accepted():
    assert ServiceSettings.from_env({"LEUKOS_API_TOKEN": TOKEN}).api_token == TOKEN


@pytest.mark.parametrize("url, why", [
    ("https://user:pw-0f9a@cds.example.org/leukos", "user info"),
    ("https://cds.example.org/leukos?x=1", "query"),
    ("https://cds.example.org/leukos#f", "fragment"),
    ("https://", "no host"),
    ("cds.example.org/leukos", "scheme"),
])
def test_public_base_url_is_a_plain_url_and_its_password_is_not_shown(url, why):
    err = _refused({"LEUKOS_PUBLIC_BASE_URL": url})
    assert err.details[0].field == "LEUKOS_PUBLIC_BASE_URL" and why in err.message
    assert "pw-0f9a" not in err.message


def test_a_password_in_an_allow_list_url_is_not_shown():
    err = _refused({"LEUKOS_FHIR_SERVER_ALLOWLIST": "https://u:pw-0f9a@ehr.example.org/fhir",
                    "LEUKOS_JKU_ALLOWLIST": json.dumps({"iss": ["https://u:pw-0f9a@idp.example.org/jwks"]})})
    assert {d.field for d in err.details} == {"LEUKOS_FHIR_SERVER_ALLOWLIST", "LEUKOS_JKU_ALLOWLIST"}
    assert "pw-0f9a" not in err.message


# -- 2. start-up: one message, exit 2, no traceback ------------------------------------------------

def _jwks(tmp_path: Path, text: str | bytes) -> str:
    p = tmp_path / "jwks.json"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(p)


@pytest.mark.parametrize("content", [None, "folder", "not json", b"\xff\xfe binary", "[]", '{"keys": "x"}',
                                     '{"keys": [{"kid": "a", "kty": "RSA"}]}', '{"keys": [{"kty": "EC"}]}',
                                     '{"keys": [{"kid": "a", "kty": "oct", "k": "c2VjcmV0"}]}', '{"keys": [7]}'])
def test_an_unusable_jwks_file_is_one_message(serve, tmp_path, content):
    if content is None:
        path = str(tmp_path / "missing.json")
    elif content == "folder":
        path = str(tmp_path)
    else:
        path = _jwks(tmp_path, content)
    r, ran = serve({"LEUKOS_JWKS_PATH": path})
    _one_message(r, "LEUKOS_JWKS_PATH")
    assert not ran


def test_a_data_dir_that_is_a_file_is_one_message(serve, tmp_path):
    (tmp_path / "afile").write_text("x")
    r, ran = serve({"LEUKOS_DATA_DIR": str(tmp_path / "afile")})
    _one_message(r, "LEUKOS_DATA_DIR", "afile")
    assert not ran


@pytest.mark.parametrize("kind", ["binary", "folder", "not hex"])
def test_a_bad_key_file_names_the_key_file_not_the_audit_log(serve, tmp_path, kind):
    data = tmp_path / "data"
    data.mkdir()
    key = data / "audit-pseudonym.key"
    secret = bytes(range(200, 256))
    if kind == "binary":
        key.write_bytes(secret)
    elif kind == "folder":
        key.mkdir()
    else:
        key.write_text("nothex-KEYCONTENT\n")
    r, ran = serve({})
    text = _one_message(r, "audit-pseudonym.key", "LEUKOS_DATA_DIR", "LEUKOS_AUDIT_KEY")
    assert "LEUKOS_AUDIT_LOG_PATH" not in text and "KEYCONTENT" not in text
    assert not ran


def test_a_corrupt_state_file_is_one_message(serve, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "state.sqlite3").write_text("garbage, not a database" * 10)
    r, ran = serve({})
    _one_message(r, "LEUKOS_DATA_DIR", "state.sqlite3")
    assert not ran


@pytest.mark.parametrize("where", ["folder", "blank", "under a file", "/dev/null"])
def test_an_audit_log_path_that_cannot_hold_the_trail_is_one_message(serve, tmp_path, where):
    (tmp_path / "afile").write_text("x")
    path = {"folder": str(tmp_path), "blank": " ", "under a file": str(tmp_path / "afile" / "audit.jsonl"),
            "/dev/null": "/dev/null"}[where]
    r, ran = serve({"LEUKOS_AUDIT_LOG_PATH": path})
    _one_message(r, "LEUKOS_AUDIT_LOG_PATH")
    assert not ran


def test_audit_log_to_dev_null_is_refused_by_the_app_factory(tmp_path):
    with pytest.raises(LeukosUserError) as exc:
        create_app(ServiceSettings(auth_disabled=True, audit_log_path=Path("/dev/null")))
    assert exc.value.details[0].field == "LEUKOS_AUDIT_LOG_PATH"


# -- 3. unsafe values are refused, not read as something else --------------------------------------

@pytest.mark.parametrize("word", ["enable", "2", "y", "disabled", "tru"])
def test_auth_disabled_must_be_a_clear_boolean(word):
    err = _refused({"LEUKOS_AUTH_DISABLED": word})
    assert err.details[0].field == "LEUKOS_AUTH_DISABLED"


@pytest.mark.parametrize("word, value", [("true", True), ("1", True), ("YES", True), ("false", False), ("0", False),
                                         ("no", False)])
def test_auth_disabled_clear_booleans(word, value):
    assert ServiceSettings.from_env({"LEUKOS_AUTH_DISABLED": word}).auth_disabled is value


@pytest.mark.parametrize("name, value", [
    ("LEUKOS_JWT_MAX_AGE_S", "99999999999999999999"), ("LEUKOS_JWT_MAX_AGE_S", "3601"),
    ("LEUKOS_MAX_BODY_BYTES", "99999999999999999999999"), ("LEUKOS_MAX_BODY_BYTES", str(64 * 1024 * 1024 + 1)),
    ("LEUKOS_REQUEST_TIMEOUT_S", "1e-300"), ("LEUKOS_FHIR_TIMEOUT_S", "1e-300"), ("LEUKOS_FHIR_TIMEOUT_S", "0.01"),
    ("LEUKOS_DATA_DIR", " "), ("LEUKOS_HOST", " "), ("LEUKOS_AUDIT_LOG_PATH", "  "), ("LEUKOS_PORT", "8000.0"),
])
def test_out_of_bound_or_blank_values_are_refused(name, value):
    err = _refused({name: value})
    assert [d.field for d in err.details] == [name]


@pytest.mark.parametrize("name, value, bad", [
    ("LEUKOS_FHIR_SERVER_ALLOWLIST", "https://ok.example.org/fhir, ehr.example.org/fhir;https://b.org", "ehr.example.org"),
    ("LEUKOS_FHIR_SERVER_ALLOWLIST", "https://ok.example.org/fhir, garbage", "garbage"),
    ("LEUKOS_FHIR_SERVER_ALLOWLIST", "http://ehr.example.org/fhir", "http://ehr.example.org"),
    ("LEUKOS_CORS_ORIGINS", "*", "*"),
    ("LEUKOS_CORS_ORIGINS", "https://ehr.example.org, garbage", "garbage"),
    ("LEUKOS_CORS_ORIGINS", "https://ehr.example.org/app", "/app"),
    ("LEUKOS_JKU_ALLOWLIST", '{"iss": ["not-a-url"]}', "not-a-url"),
    ("LEUKOS_JKU_ALLOWLIST", '{"iss": ["https://idp.example.org/jwks;x"]}', ";"),
])
def test_each_bad_allow_list_entry_is_named(name, value, bad):
    err = _refused({name: value})
    assert [d.field for d in err.details] == [name]
    assert bad in err.details[0].expected


def test_good_allow_lists_are_accepted():
    s = ServiceSettings.from_env({
        "LEUKOS_FHIR_SERVER_ALLOWLIST": "https://ehr.example.org/fhir, http://127.0.0.1:9000/fhir",
        "LEUKOS_CORS_ORIGINS": "https://ehr.example.org, https://ehr2.example.org:8443",
        "LEUKOS_JKU_ALLOWLIST": '{"iss": ["https://idp.example.org/jwks.json"]}'})
    assert len(s.fhir_server_allowlist) == 2 and len(s.cors_origins) == 2


# -- 4. leukos serve: the environment applies; options are named; checks before "serving" -----------

def test_serve_uses_leukos_host_and_port(serve):
    r, ran = serve({"LEUKOS_HOST": "::1", "LEUKOS_PORT": "8829"})
    assert r.exit_code == 0, r.output
    assert ran["host"] == "::1" and ran["port"] == 8829
    assert "http://[::1]:8829/" in r.output


def test_serve_options_win_over_the_environment(serve):
    r, ran = serve({"LEUKOS_HOST": "::1", "LEUKOS_PORT": "8829"}, "--host", "127.0.0.1", "--port", "8828")
    assert r.exit_code == 0, r.output
    assert ran["host"] == "127.0.0.1" and ran["port"] == 8828


def test_serve_defaults_without_environment(serve):
    r, ran = serve({})
    assert r.exit_code == 0, r.output
    assert ran["host"] == "127.0.0.1" and ran["port"] == 8000


def test_a_bad_leukos_port_is_not_ignored(serve):
    r, ran = serve({"LEUKOS_PORT": "abc"})
    _one_message(r, "LEUKOS_PORT")
    assert not ran


def test_a_bad_port_option_is_named_as_the_option(serve):
    r, _ = serve({}, "--port", "0")
    text = _one_message(r, "--port")
    assert "LEUKOS_PORT:" not in text


def test_a_bad_database_url_is_refused_before_serving_is_announced(serve):
    r, ran = serve({"LEUKOS_DATABASE_URL": "mysql://u:pw-0f9a@db/leukos"})
    text = _one_message(r, "LEUKOS_DATABASE_URL")
    assert "pw-0f9a" not in text and not ran


# -- 5. plain words, not pydantic's -----------------------------------------------------------------

@pytest.mark.parametrize("name, value", [("LEUKOS_REQUEST_TIMEOUT_S", "nan"), ("LEUKOS_FHIR_TIMEOUT_S", "inf"),
                                         ("LEUKOS_WORKERS", "many"), ("LEUKOS_PORT", "-1")])
def test_messages_say_what_is_expected_in_plain_words(name, value):
    err = _refused({name: value})
    assert "Input should" not in err.message
    assert "correct the environment variable or the command-line option" not in err.message
    assert "unset" in err.details[0].fix or "give" in err.details[0].fix


@pytest.mark.parametrize("how", ["env", "option"])
def test_an_examples_folder_that_is_not_there_is_one_message(serve, tmp_path, how):
    """A mistyped LEUKOS_EXAMPLES_DIR (or --examples) was accepted, and the web form then offered no
    example, with no word of why."""
    if how == "env":  # the fixture runs in tmp_path: a relative name keeps the message on one line
        r, ran = serve({"LEUKOS_EXAMPLES_DIR": "exmaples"})
        flat = _one_message(r, "LEUKOS_EXAMPLES_DIR", "got 'exmaples';")
    else:
        r, ran = serve({}, "--examples", "exmaples")
        flat = _one_message(r, "--examples", "got 'exmaples';")
    assert "an existing folder of example cases" in flat and "Path(" not in flat and not ran


def test_an_examples_path_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "case.yaml"
    f.write_text("id: x\n")
    err = _refused({"LEUKOS_EXAMPLES_DIR": str(f)})
    assert err.details[0].field == "LEUKOS_EXAMPLES_DIR" and "existing folder" in err.details[0].expected


def test_an_existing_examples_folder_is_accepted(tmp_path):
    assert ServiceSettings.from_env({"LEUKOS_EXAMPLES_DIR": str(tmp_path)}).examples_dir == tmp_path

"""Typed settings of the web service, read from ``LEUKOS_*`` environment variables.

Built by the app factory's caller (``leukos serve`` or a test), never at import time
. Every bad value is a :class:`~leukos.errors.LeukosUserError` naming the
variable, the value, what was expected and how to fix it.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from leukos.errors import ErrorDetail, LeukosUserError

__all__ = ["ServiceSettings", "SettingsError", "is_loopback", "mask_secret", "redact_url",
           "API_TOKEN_MIN_CHARS", "JWT_MAX_AGE_MAX_S", "MAX_BODY_BYTES_MAX", "TIMEOUT_MIN_S"]

# Software bounds: choices made for this software, not taken from a standard or a study. Each one
# refuses a value that can only be a mistake (or unsafe) for a bedside decision-support service.
API_TOKEN_MIN_CHARS = 16  # software choice: a static bearer token shorter than this is guessable
JWT_MAX_AGE_MAX_S = 3600  # software choice: a CDS client JWT older than 1 hour is never accepted
MAX_BODY_BYTES_MAX = 64 * 1024 * 1024  # software choice: 64 MiB, far above one case or one CDS request
TIMEOUT_MIN_S = 0.1  # software choice: a shorter wall time / FHIR deadline would fail every call

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
# RFC 6750 §2.1 b64token: the only characters a bearer token can carry in an Authorization header
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class SettingsError(LeukosUserError):
    """A ``LEUKOS_*`` setting that cannot be used."""

    default_title = "A service setting could not be used"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: addresses no other machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def mask_secret(value: Any) -> str:
    """How a secret is shown in a message: its length only, never a character of it."""
    if not isinstance(value, str):
        return "(secret, not shown)"
    return f"(secret of {len(value)} character{'' if len(value) == 1 else 's'}, not shown)"


def redact_url(text: Any) -> Any:
    """``text`` with the password (and user name) of every ``scheme://user:pw@host`` replaced by ``***``."""
    if not isinstance(text, str):
        return text
    return re.sub(r"(?<=://)[^/@\s,;]*@", "***@", text)


def _url_problem(url: str, *, origin: bool = False, http_loopback_only: bool = False) -> str | None:
    """Why ``url`` cannot be used as a configured URL (None = usable)."""
    if url != url.strip() or any(c.isspace() for c in url):
        return "contains spaces"
    if ";" in url:
        return "contains ';' (separate entries with commas)"
    if url == "*":
        return "(every origin) is not allowed: name the EHR's origins one by one"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a URL (bad host or port)"
    if parts.scheme not in ("http", "https"):
        return "has no http:// or https:// scheme"
    if not parts.hostname:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "carries user info (user:password@): it would be copied into links and logs"
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return "has a query or fragment"
    if port == 0:
        return "has port 0"
    if origin and parts.path:
        return "is not an origin (scheme://host[:port], no path, no trailing '/')"
    if http_loopback_only and parts.scheme == "http" and not is_loopback(parts.hostname):
        return "is plain http on a host other than loopback (https is required; it would never be used)"
    return None


def _check_urls(entries: tuple[str, ...], what: str, **kw: Any) -> tuple[str, ...]:
    bad = [f"{redact_url(e)!r} {p}" for e in entries if (p := _url_problem(e, **kw))]
    if bad:
        raise ValueError(f"{what}; refused: " + "; ".join(bad))
    return entries


def _finite(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _loopback_only(host: str, label: str = "LEUKOS_AUTH_DISABLED") -> SettingsError:
    return SettingsError(ErrorDetail(
        field=label, value="on",
        expected=f"authentication switched off only on a loopback host, not {host!r}",
        fix="unset LEUKOS_AUTH_DISABLED (or --dev), or bind to 127.0.0.1 for local development"))


# Per setting: what is expected and how to fix it, in plain words (used when pydantic's own check
# fails: wrong type, out of range, NaN). A validator's own message, which names the bad entry, wins.
_HELP: dict[str, tuple[str, str]] = {
    "host": ("an address of this machine to bind, e.g. 127.0.0.1 (loopback) or 0.0.0.0, without spaces",
             "set it to an address of this machine, or leave it unset for 127.0.0.1"),
    "port": ("a whole number from 1 to 65535", "give a free TCP port, e.g. 8000 (unset: 8000)"),
    "public_base_url": ("the https base URL clients call, e.g. https://cds.example.org/leukos",
                        "give the URL clients call, without user info, query or fragment"),
    "auth_disabled": ("one of true/false, 1/0, yes/no (on/off)",
                      "write LEUKOS_AUTH_DISABLED=1 (development on loopback) or unset it"),
    "api_token": (f"a bearer token of at least {API_TOKEN_MIN_CHARS} characters (software bound), RFC 6750 "
                  "characters only (letters, digits, - . _ ~ + / and trailing =), no spaces or line breaks",
                  "generate one, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"),
    "jwks_path": ("a JWKS file", "give the path of the trusted CDS clients' JWKS file"),
    "trusted_issuers": ("comma-separated JWT iss values", "list the iss of each trusted CDS client"),
    "jku_allowlist": ('JSON object {"issuer": ["https://…/jwks.json"]}',
                      "write the allow-list as JSON, with https URLs"),
    "jwt_max_age_s": (f"a whole number of seconds from 1 to {JWT_MAX_AGE_MAX_S} (software bound)",
                      "unset it for 300 s, or give the oldest JWT iat to accept"),
    "jwt_leeway_s": ("a whole number of seconds from 0 to 300", "unset it for 60 s"),
    "audit_log_path": ("a path for the audit file: an existing regular file or a new file",
                       "give e.g. /var/lib/leukos/audit.jsonl"),
    "cors_origins": ("comma-separated origins https://host[:port]", "name the EHR's origins, or unset it"),
    "max_body_bytes": (f"a whole number of bytes from 1024 to {MAX_BODY_BYTES_MAX} (64 MiB, software bound)",
                       "unset it for 1 MiB (1048576)"),
    "examples_dir": ("a folder of example cases", "give the folder, or unset it"),
    "fhir_timeout_s": (f"a number of seconds from {TIMEOUT_MIN_S} (software bound) to 60",
                       "unset it for 5 s"),
    "data_dir": ("a folder for the service's state", "give e.g. /var/lib/leukos (created if missing)"),
    "audit_key": ("64 hex characters (0-9, a-f)",
                  "generate one with python -c 'import secrets; print(secrets.token_hex(32))', or unset it "
                  "to use the key file in LEUKOS_DATA_DIR"),
    "fhir_server_allowlist": ("comma-separated FHIR base URLs, https://host/path",
                              "list each FHIR server's base URL, e.g. https://ehr.example.org/fhir"),
    "workers": ("a whole number of threads from 1 to 64", "unset it for 4"),
    "page_workers": ("a whole number of threads from 1 to 64", "unset it for 2"),
    "api_workers": ("a whole number of threads from 1 to 64", "unset it for 2"),
    "work_queue": ("a whole number of waiting calls from 0 to 10000", "unset it for 64"),
    "request_timeout_s": (f"a number of seconds from {TIMEOUT_MIN_S} (software bound) to 300",
                          "unset it for 15 s"),
}
_SECRET = ("api_token", "audit_key")
_LIST = ("trusted_issuers", "cors_origins", "fhir_server_allowlist")
_PATHS = ("jwks_path", "audit_log_path", "examples_dir", "data_dir")
# command-line options of ``leukos serve`` that override a variable
_OPTIONS = {"host": "--host", "port": "--port", "examples_dir": "--examples", "auth_disabled": "--dev"}


class ServiceSettings(BaseModel):
    """Settings of one running service. Frozen; ``from_env`` builds it from ``LEUKOS_*``.

    Attributes
    ----------
    host, port
        Where ``leukos serve`` listens. Loopback by default.
    public_base_url
        The base URL clients call (``https://cds.example.org/leukos``). It is what a CDS client's
        JWT ``aud`` must equal (plus the endpoint path). Default: the URL of the request. No user
        info, query or fragment (it is copied into every CDS card link).
    auth_disabled
        Development only: accept calls without a JWT or token. Refused unless ``host`` is loopback;
        the app logs a loud warning at start.
    api_token
        Static bearer token accepted by the REST API (``/api/*``) besides a CDS-style JWT. At least
        :data:`API_TOKEN_MIN_CHARS` characters (software bound), RFC 6750 characters only.
    jwks_path
        A JWKS file (``{"keys": [...]}``) with the public keys of trusted CDS clients.
    trusted_issuers
        The JWT ``iss`` values accepted. Empty = every call with a JWT is refused.
    jku_allowlist
        ``iss`` → list of JWKS URLs that issuer may name in its ``jku`` header. A ``jku`` that is not
        listed is refused before anything is fetched (SSRF guard).
    audit_log_path
        Append-only JSONL of FHIR AuditEvents, hash-chained. ``None`` keeps the chain in memory only.
    cors_origins
        Browser origins allowed to call the API (EHR-embedded clients); empty = no CORS headers.
        ``*`` is refused: a clinical service names its origins.
    max_body_bytes
        Larger request bodies get 413 before they are parsed (at most :data:`MAX_BODY_BYTES_MAX`).
    examples_dir
        Folder of case files offered in the UI's "pick an example" list.
    data_dir
        Folder for the service's own state: the JWT ``jti`` replay store and CDS feedback (SQLite,
        ``state.sqlite3``) and the audit pseudonym key (``audit-pseudonym.key``, created 0600 on first
        start). Required outside development mode, so that nothing is forgotten on a restart.
    audit_key
        The audit pseudonym key as 64 hex characters (overrides the key file; keep it secret).
    fhir_server_allowlist
        FHIR base URLs (``https://ehr.example.org/fhir``) a CDS request's ``fhirServer`` may name.
        Any other server is never contacted (SSRF guard); the request's bearer token goes only there.
    workers, work_queue, request_timeout_s
        The CDS Hooks services' worker pool for CPU-bound work: threads, calls allowed to wait, and
        the wall time of a call before it is answered 503 with ``Retry-After``.
    api_workers, page_workers
        The threads of the REST API's pool (``/api/assess``, ``/api/plan``, ``/api/simulate``) and of
        the web pages' pool (the assessment page, reports, PDFs, the page behind a CDS card link),
        with the same queue and wall-time bounds. A PDF report takes about a second of CPU and a
        simulation a tenth of one: sharing the CDS pool, a few of them at once held up every EHR call
        for seconds. Apart, they never take a thread an EHR call needs (a software choice).

    Software bounds (:data:`JWT_MAX_AGE_MAX_S`, :data:`MAX_BODY_BYTES_MAX`, :data:`TIMEOUT_MIN_S`,
    :data:`API_TOKEN_MIN_CHARS`) are choices of this software, not of a standard.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    public_base_url: str | None = None
    auth_disabled: bool = False
    api_token: str | None = Field(None, repr=False)
    jwks_path: Path | None = None
    trusted_issuers: tuple[str, ...] = ()
    jku_allowlist: Mapping[str, tuple[str, ...]] = Field(default_factory=dict)
    jwt_max_age_s: int = Field(300, ge=1, le=JWT_MAX_AGE_MAX_S, description="oldest accepted iat, seconds")
    jwt_leeway_s: int = Field(60, ge=0, le=300, description="clock skew allowed on exp/iat, seconds")
    audit_log_path: Path | None = None
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = Field(1_048_576, ge=1024, le=MAX_BODY_BYTES_MAX)
    examples_dir: Path | None = None
    fhir_timeout_s: float = Field(5.0, ge=TIMEOUT_MIN_S, le=60, allow_inf_nan=False)
    data_dir: Path | None = None
    audit_key: str | None = Field(None, repr=False, pattern=r"^[0-9a-fA-F]{64}$")
    fhir_server_allowlist: tuple[str, ...] = ()
    workers: int = Field(4, ge=1, le=64)
    api_workers: int = Field(2, ge=1, le=64)
    page_workers: int = Field(2, ge=1, le=64)
    work_queue: int = Field(64, ge=0, le=10_000)
    request_timeout_s: float = Field(15.0, ge=TIMEOUT_MIN_S, le=300, allow_inf_nan=False)

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not v or any(c.isspace() for c in v):
            raise ValueError("an address of this machine to bind (e.g. 127.0.0.1), not empty, without spaces")
        return v

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, v: str | None) -> str | None:
        if v is not None and (problem := _url_problem(v)):
            raise ValueError(f"the absolute http(s) URL clients call, e.g. https://cds.example.org/leukos; "
                             f"this one {problem}")
        return v

    @field_validator("api_token")
    @classmethod
    def _api_token(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if v != v.strip():
            raise ValueError("a bearer token without spaces or line breaks around it (a copied newline?)")
        if len(v) < API_TOKEN_MIN_CHARS:
            raise ValueError(f"a bearer token of at least {API_TOKEN_MIN_CHARS} characters (software bound); "
                             f"this one has {len(v)}")
        if not _B64TOKEN.fullmatch(v):
            raise ValueError("a bearer token of RFC 6750 characters only (letters, digits, - . _ ~ + / and "
                             "trailing =): no other token can be sent in an Authorization header")
        return v

    @field_validator(*_PATHS)
    @classmethod
    def _path(cls, v: Path | None) -> Path | None:
        if v is not None and (not str(v).strip() or str(v) != str(v).strip()):
            raise ValueError("a path, not blank and without spaces around it")
        return v

    @field_validator("fhir_server_allowlist")
    @classmethod
    def _fhir_allowlist(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_urls(v, "FHIR base URLs, https://host/path (http only on loopback)", http_loopback_only=True)

    @field_validator("cors_origins")
    @classmethod
    def _cors(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_urls(v, "browser origins https://host[:port], each named", origin=True)

    @field_validator("jku_allowlist")
    @classmethod
    def _jku(cls, v: Mapping[str, tuple[str, ...]]) -> Mapping[str, tuple[str, ...]]:
        for iss, urls in v.items():
            _check_urls(urls, f"JWKS URLs of issuer {iss!r}, https (http only on loopback)", http_loopback_only=True)
        return v

    def model_post_init(self, __context: Any) -> None:
        if self.auth_disabled and not is_loopback(self.host):
            raise _loopback_only(self.host)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> ServiceSettings:
        """Build settings from an environment mapping (``os.environ``) plus explicit overrides.

        ``overrides`` are ``leukos serve``'s options (``host``, ``port``, ``examples_dir``,
        ``auth_disabled``); a bad one is named as the option. An empty variable counts as unset; one of
        only spaces is refused. Secrets (``LEUKOS_API_TOKEN``, ``LEUKOS_AUDIT_KEY``) and passwords in
        URLs are never shown in a message.
        """
        raw: dict[str, Any] = {}
        problems: list[ErrorDetail] = []
        given = {k for k, v in overrides.items() if v is not None}

        def label(name: str) -> str:
            return _OPTIONS.get(name, "--" + name.replace("_", "-")) if name in given else "LEUKOS_" + name.upper()

        def shown(name: str, value: Any) -> Any:
            if name in _SECRET and value is not None:
                return mask_secret(value)
            if isinstance(value, (tuple, list)):
                value = ", ".join(map(str, value))
            elif isinstance(value, Mapping):
                value = json.dumps(dict(value), default=str)
            return redact_url(value)

        def problem(name: str, value: Any, expected: str | None = None) -> None:
            exp, fix = _HELP.get(name, ("a usable value", "correct it"))
            problems.append(ErrorDetail(field=label(name), value=shown(name, value), expected=expected or exp,
                                        fix=fix))

        for name, field in cls.model_fields.items():
            key = "LEUKOS_" + name.upper()
            if key not in environ or name in given:
                continue
            text = environ[key]
            if text == "":
                continue  # empty = unset
            if not text.strip():
                problem(name, text, "a value, not only spaces (leave the variable empty or unset it for the default)")
            elif name in _LIST:
                raw[name] = tuple(s.strip() for s in text.split(",") if s.strip())
            elif name == "jku_allowlist":
                try:
                    raw[name] = json.loads(text)
                except (json.JSONDecodeError, RecursionError):
                    problem(name, text)
            elif name == "auth_disabled":
                word = text.strip().lower()
                if word in _TRUE or word in _FALSE:
                    raw[name] = word in _TRUE
                else:
                    problem(name, text)
            elif field.annotation is int and not re.fullmatch(r"[0-9]+", text.strip()):
                problem(name, text)  # "8000.0", "8_000", "1e9", "-1": a whole number is asked for
            elif field.annotation is float and not _finite(text):
                problem(name, text)
            else:
                raw[name] = text
        raw.update({k: v for k, v in overrides.items() if v is not None})
        host = str(raw.get("host", "127.0.0.1"))
        if raw.get("auth_disabled") and not is_loopback(host):
            raise _loopback_only(host, "--dev" if overrides.get("auth_disabled") else "LEUKOS_AUTH_DISABLED")
        try:
            settings = cls(**raw)
        except ValidationError as exc:
            for e in exc.errors():
                name = str(e["loc"][0]) if e["loc"] else ""
                own = e["type"] == "value_error"
                problem(name, raw.get(name, e.get("input")), str(e["ctx"]["error"]) if own else None)
        else:
            examples = settings.examples_dir
            if examples is not None and not examples.is_dir():  # else the form offers no example, silently
                problem("examples_dir", str(examples), "an existing folder of example cases (.yaml files)")
        if problems:
            raise SettingsError(problems)
        return settings

    @property
    def dev_mode(self) -> bool:
        """Development mode = authentication off (only possible on loopback)."""
        return self.auth_disabled

    def check_can_serve(self) -> None:
        """Refuse to build a production service that would trust the Host header or forget its state.

        Outside development mode ``public_base_url`` is required (else a JWT ``aud`` would be checked
        against whatever Host header the caller sends) and so is ``data_dir`` (replay store, feedback
        and the audit pseudonym key must survive a restart).
        """
        if self.dev_mode:
            return
        problems = []
        if not self.public_base_url:
            problems.append(ErrorDetail(
                field="LEUKOS_PUBLIC_BASE_URL", value=None, expected="the https base URL clients call",
                fix="set LEUKOS_PUBLIC_BASE_URL=https://cds.example.org/leukos (a JWT aud must name it)"))
        elif not self.public_base_url.startswith(("https://", "http://")):
            problems.append(ErrorDetail(
                field="LEUKOS_PUBLIC_BASE_URL", value=self.public_base_url, expected="an absolute http(s) URL",
                fix="give the URL clients call, e.g. https://cds.example.org/leukos"))
        if self.data_dir is None:
            problems.append(ErrorDetail(
                field="LEUKOS_DATA_DIR", value=None, expected="a folder for the replay store, feedback and audit key",
                fix="set LEUKOS_DATA_DIR=/var/lib/leukos (created if missing)"))
        if problems:
            raise SettingsError(problems, title="The service cannot start outside development mode")

    def endpoint_url(self, request_url: str, path: str) -> str:
        """The exact URL a client's JWT ``aud`` must name for ``path``."""
        base = (self.public_base_url or request_url).rstrip("/")
        return base + path

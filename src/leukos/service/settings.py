"""Typed settings of the web service, read from ``LEUKOS_*`` environment variables.

Built by the app factory's caller (``leukos serve`` or a test), never at import time
. Every bad value is a :class:`~leukos.errors.LeukosUserError` naming the
variable, the value, what was expected and how to fix it.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from leukos.errors import ErrorDetail, LeukosUserError

__all__ = ["ServiceSettings", "SettingsError", "is_loopback"]


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


def _loopback_only(host: str) -> SettingsError:
    return SettingsError(ErrorDetail(
        field="LEUKOS_AUTH_DISABLED", value="1",
        expected=f"authentication switched off only on a loopback host, not {host!r}",
        fix="unset LEUKOS_AUTH_DISABLED (or --dev), or bind to 127.0.0.1 for local development"))


class ServiceSettings(BaseModel):
    """Settings of one running service. Frozen; ``from_env`` builds it from ``LEUKOS_*``.

    Attributes
    ----------
    host, port
        Where ``leukos serve`` listens. Loopback by default.
    public_base_url
        The base URL clients call (``https://cds.example.org/leukos``). It is what a CDS client's
        JWT ``aud`` must equal (plus the endpoint path). Default: the URL of the request.
    auth_disabled
        Development only: accept calls without a JWT or token. Refused unless ``host`` is loopback;
        the app logs a loud warning at start.
    api_token
        Static bearer token accepted by the REST API (``/api/*``) besides a CDS-style JWT.
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
    max_body_bytes
        Larger request bodies get 413 before they are parsed.
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
        The worker pool for CPU-bound work: threads, calls allowed to wait, and the wall time of a
        call before it is answered 503 with ``Retry-After``.
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
    jwt_max_age_s: int = Field(300, ge=1, description="oldest accepted iat, seconds")
    jwt_leeway_s: int = Field(60, ge=0, le=300, description="clock skew allowed on exp/iat, seconds")
    audit_log_path: Path | None = None
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = Field(1_048_576, ge=1024)
    examples_dir: Path | None = None
    fhir_timeout_s: float = Field(5.0, gt=0, le=60)
    data_dir: Path | None = None
    audit_key: str | None = Field(None, repr=False, pattern=r"^[0-9a-fA-F]{64}$")
    fhir_server_allowlist: tuple[str, ...] = ()
    workers: int = Field(4, ge=1, le=64)
    work_queue: int = Field(64, ge=0, le=10_000)
    request_timeout_s: float = Field(15.0, gt=0, le=300)

    def model_post_init(self, __context: Any) -> None:
        if self.auth_disabled and not is_loopback(self.host):
            raise _loopback_only(self.host)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> ServiceSettings:
        """Build settings from an environment mapping (``os.environ``) plus explicit overrides."""
        raw: dict[str, Any] = {}
        for name in cls.model_fields:
            key = "LEUKOS_" + name.upper()
            if key not in environ:
                continue
            text = environ[key]
            if name in ("trusted_issuers", "cors_origins", "fhir_server_allowlist"):
                raw[name] = tuple(s.strip() for s in text.split(",") if s.strip())
            elif name == "jku_allowlist":
                try:
                    raw[name] = json.loads(text)
                except json.JSONDecodeError:
                    raise SettingsError(ErrorDetail(
                        field=key, value=text, expected='JSON object {"issuer": ["https://…/jwks.json"]}',
                        fix="write the allow-list as JSON")) from None
            elif name == "auth_disabled":
                raw[name] = text.strip().lower() in ("1", "true", "yes", "on")
            else:
                raw[name] = text or None
        raw.update({k: v for k, v in overrides.items() if v is not None})
        host = str(raw.get("host", "127.0.0.1"))
        if raw.get("auth_disabled") and not is_loopback(host):
            raise _loopback_only(host)
        try:
            return cls(**raw)
        except ValidationError as exc:
            details = [ErrorDetail(field="LEUKOS_" + ".".join(str(p) for p in e["loc"]).upper(),
                                   value=e.get("input"), expected=e["msg"],
                                   fix="correct the environment variable or the command-line option")
                       for e in exc.errors()]
            raise SettingsError(details) from None

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

"""Who may call: CDS client JWTs (CDS Hooks 2.0 "Trusting CDS Clients") and a REST bearer token.

The CDS Hooks 2.0 specification (https://cds-hooks.hl7.org/2.0/#trusting-cds-clients) has each
call carry ``Authorization: Bearer <JWT>`` signed with the client's private key. We check:

- the header ``alg`` is asymmetric (ES*/RS*/PS*; never ``none`` or HMAC) and ``kid`` is present;
- ``iss`` is on the allow-list; a ``jku`` header is used only if listed for that ``iss``
  (so the service never fetches a URL an attacker chose); otherwise keys come from the configured JWKS;
- the signature, ``aud`` equal to the exact endpoint URL, ``exp`` (with ``jwt_leeway_s`` skew),
  ``iat`` neither in the future nor older than ``jwt_max_age_s`` (cds-hooks/docs#188);
- ``jti`` not seen before for this issuer (replay cache, entries kept until their ``exp``).

Nothing here logs a token or a claim value.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient

from leukos.errors import ErrorDetail
from leukos.service.settings import ServiceSettings, SettingsError

__all__ = ["ASYMMETRIC_ALGORITHMS", "AuthError", "Caller", "JwtVerifier", "ReplayCache", "check_api_token",
           "load_jwks", "jwks_keys"]

ASYMMETRIC_ALGORITHMS = ("ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")


_JWKS_EXPECTED = ('a JWKS file: JSON {"keys": [...]}, each key an object with a kid and the public key '
                  'material of an RSA or EC key')
_JWKS_FIX = "give the JWKS the CDS client publishes (its public keys), or unset LEUKOS_JWKS_PATH"


def _jwks_error(value: Any, expected: str) -> SettingsError:
    return SettingsError(ErrorDetail(field="LEUKOS_JWKS_PATH", value=value, expected=expected, fix=_JWKS_FIX),
                         title="The trusted clients' keys could not be loaded")


def load_jwks(path: Any) -> Any:
    """The JSON of the JWKS file at ``path``; :class:`SettingsError` naming ``LEUKOS_JWKS_PATH`` if it
    cannot be read (missing, a folder, not UTF-8 JSON). Its shape is checked by :func:`jwks_keys`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _jwks_error(str(path), _JWKS_EXPECTED + "; there is no file at this path") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a readable UTF-8 text file"
        raise _jwks_error(str(path), f"{_JWKS_EXPECTED}; this one cannot be read ({reason})") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise _jwks_error(str(path), f"{_JWKS_EXPECTED}; this file is not JSON") from None


def jwks_keys(jwks: Any, source: str) -> dict[str, PyJWK]:
    """``kid`` → key of a JWKS, every key checked: a key that cannot be used is refused at start
    (:class:`SettingsError`) rather than making every JWT naming it fail later. A symmetric (``oct``)
    key is refused: a shared secret does not belong in a file of public keys, and HMAC JWTs are refused."""
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise _jwks_error(source, f'{_JWKS_EXPECTED}; this one is not an object with a "keys" list')
    keys: dict[str, PyJWK] = {}
    for i, k in enumerate(jwks["keys"]):
        where = f"{source}: keys[{i}]"
        if not isinstance(k, Mapping):
            raise _jwks_error(where, f"{_JWKS_EXPECTED}; this key is not an object")
        kid = k.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _jwks_error(where, f"{_JWKS_EXPECTED}; this key has no kid (JWTs name their key by kid)")
        if k.get("kty") == "oct":
            raise _jwks_error(f"{where} (kid {kid!r})", f"{_JWKS_EXPECTED}; this key is symmetric (oct)")
        if kid in keys:
            raise _jwks_error(f"{where} (kid {kid!r})", f"{_JWKS_EXPECTED}; this kid is given twice")
        try:
            keys[kid] = PyJWK(dict(k))
        except (jwt.PyJWTError, KeyError, TypeError, ValueError, AttributeError):
            raise _jwks_error(f"{where} (kid {kid!r})",
                              f"{_JWKS_EXPECTED}; this key's material is missing or cannot be read") from None
    return keys


class AuthError(Exception):
    """The caller is not authenticated. ``reason`` is safe to return and to log (no token content)."""

    def __init__(self, reason: str, status: int = 401):
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Caller:
    """An authenticated caller, as written to the audit log."""

    kind: str  # "jwt" | "api-token" | "anonymous-dev"
    issuer: str | None = None
    tenant: str | None = None

    @property
    def label(self) -> str:
        return self.issuer or self.kind


class ReplayCache:
    """Remembers ``(iss, jti)`` until the token's ``exp`` (plus leeway); thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def check_and_add(self, iss: str, jti: str, expires_at: float) -> bool:
        """True if new (and now remembered); False if this ``jti`` was already used."""
        now = self._clock()
        with self._lock:
            if len(self._seen) > 10_000:
                for k in [k for k, exp in self._seen.items() if exp < now]:
                    del self._seen[k]
            if (iss, jti) in self._seen and self._seen[(iss, jti)] >= now:
                return False
            self._seen[(iss, jti)] = expires_at
            return True


class JwtVerifier:
    """Verify CDS client JWTs against the settings' allow-lists and JWKS."""

    def __init__(self, settings: ServiceSettings, jwks: Mapping[str, Any] | None = None,
                 clock: Callable[[], float] = time.time, replay: Any = None):
        self.settings = settings
        self._clock = clock
        # anything with check_and_add(iss, jti, expires_at) -> bool; the service passes its
        # persistent SQLite store (leukos.service.state_store) so a restart forgets no jti
        self.replay = replay if replay is not None else ReplayCache(clock)
        source = "(JWKS given to the app)"
        if jwks is None and settings.jwks_path is not None:
            jwks, source = load_jwks(settings.jwks_path), str(settings.jwks_path)
        self._keys: dict[str, PyJWK] = {} if jwks is None else jwks_keys(jwks, source)
        self._jku_clients: dict[str, PyJWKClient] = {}

    def _key_for(self, header: Mapping[str, Any], iss: str) -> Any:
        kid = header.get("kid")
        jku = header.get("jku")
        if jku is not None:
            if jku not in self.settings.jku_allowlist.get(iss, ()):
                raise AuthError("jku is not on the allow-list for this issuer")
            client = self._jku_clients.setdefault(jku, PyJWKClient(jku, cache_keys=True, lifespan=300, timeout=5))
            try:
                return client.get_signing_key(kid)
            except jwt.PyJWKClientError:
                raise AuthError("no key with this kid at the issuer's jku") from None
        if kid not in self._keys:
            raise AuthError("unknown kid")
        return self._keys[kid]

    def verify(self, token: str, audience: str) -> Caller:
        """Return the caller, or raise :class:`AuthError` with a reason that names no claim value."""
        # The header and the claims as sent, read once (to choose the key); nothing is trusted before
        # the signature is checked below.
        try:
            unverified = jwt.decode_complete(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise AuthError("malformed JWT") from None
        header = unverified["header"]
        alg = header.get("alg")
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise AuthError("JWT alg must be asymmetric (ES384/RS384 recommended); none and HMAC are refused")
        if not header.get("kid"):
            raise AuthError("JWT header has no kid")
        iss = unverified["payload"].get("iss")
        if not isinstance(iss, str) or iss not in self.settings.trusted_issuers:
            raise AuthError("issuer is not trusted")
        jwk = self._key_for(header, iss)
        if getattr(jwk, "algorithm_name", None) and jwk.algorithm_name != alg:
            raise AuthError("JWT alg does not match the algorithm of the key")
        key = jwk.key
        leeway = self.settings.jwt_leeway_s
        try:
            claims = jwt.decode(
                token, key, algorithms=[alg], audience=audience, issuer=iss, leeway=leeway,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]})
        except jwt.ExpiredSignatureError:
            raise AuthError("JWT has expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError("JWT aud is not this endpoint's URL") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("JWT iat or nbf is in the future") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"JWT lacks the {exc.claim} claim") from None
        except (jwt.InvalidTokenError, TypeError, ValueError):
            raise AuthError("JWT signature or claims are invalid") from None
        now = self._clock()
        iat = float(claims["iat"])
        if iat > now + leeway:
            raise AuthError("JWT iat is in the future")
        if iat < now - self.settings.jwt_max_age_s - leeway:
            raise AuthError("JWT iat is too old")
        if not self.replay.check_and_add(iss, str(claims["jti"]), float(claims["exp"]) + leeway):
            raise AuthError("JWT jti was already used (replay)")
        tenant = claims.get("tenant")
        return Caller(kind="jwt", issuer=iss, tenant=tenant if isinstance(tenant, str) else None)


def check_api_token(settings: ServiceSettings, token: str) -> bool:
    """Constant-time comparison with the configured REST API token."""
    return settings.api_token is not None and hmac.compare_digest(token.encode(), settings.api_token.encode())

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

from leukos.service.settings import ServiceSettings

__all__ = ["ASYMMETRIC_ALGORITHMS", "AuthError", "Caller", "JwtVerifier", "ReplayCache", "check_api_token"]

ASYMMETRIC_ALGORITHMS = ("ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")


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
        if jwks is None and settings.jwks_path is not None:
            jwks = json.loads(settings.jwks_path.read_text(encoding="utf-8"))
        self._keys: dict[str, PyJWK] = {}
        for k in (jwks or {}).get("keys", []):
            if "kid" in k:
                self._keys[k["kid"]] = PyJWK(k)
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

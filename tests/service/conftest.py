"""Fixtures of the web-service tests: an in-process client, a CDS client key pair, JWT minting."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from leukos.service.app import create_app
from leukos.service.settings import ServiceSettings

BASE = "http://testserver"
ISSUER = "https://ehr.example.org/"
KID = "test-es384"
REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
FIXTURES = Path(__file__).parent / "fixtures"


class Client:
    """Synchronous calls into the ASGI app (httpx.ASGITransport); no network, no server thread."""

    def __init__(self, app):
        self.app = app

    def request(self, method: str, url: str, **kw) -> httpx.Response:
        async def go():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app, client=("127.0.0.1", 5000)),
                                         base_url=BASE) as c:
                return await c.request(method, url, **kw)
        return asyncio.run(go())

    def get(self, url: str, **kw) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw) -> httpx.Response:
        return self.request("POST", url, **kw)


@pytest.fixture(scope="session")
def client_key():
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="session")
def jwks(client_key) -> dict[str, Any]:
    pub = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(client_key.public_key()))
    pub.update({"kid": KID, "alg": "ES384", "use": "sig"})
    return {"keys": [pub]}


def mint(key, *, aud: str, iss: str = ISSUER, kid: str = KID, exp_in: float = 300, iat_offset: float = 0,
         jti: str | None = None, alg: str = "ES384", headers: dict[str, Any] | None = None,
         drop: tuple[str, ...] = ()) -> str:
    """A CDS client JWT as CDS Hooks 2.0 §"Trusting CDS Clients" describes it."""
    now = time.time()
    claims = {"iss": iss, "sub": "cds-client", "aud": aud, "exp": int(now + exp_in), "iat": int(now + iat_offset),
              "jti": jti or str(uuid.uuid4()), "tenant": "t-1"}
    for k in drop:
        claims.pop(k)
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": "JWT", **(headers or {})})


@pytest.fixture
def secure_settings(tmp_path) -> ServiceSettings:
    return ServiceSettings(trusted_issuers=(ISSUER,), api_token="s3cret-api-token-for-tests",
                           audit_log_path=tmp_path / "audit.jsonl", examples_dir=EXAMPLES,
                           public_base_url=BASE, data_dir=tmp_path / "data")


@pytest.fixture
def secure_client(secure_settings, jwks) -> Client:
    return Client(create_app(secure_settings, jwks=jwks))


@pytest.fixture
def dev_client(tmp_path) -> Client:
    return Client(create_app(ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES,
                                             audit_log_path=tmp_path / "audit.jsonl")))


def needs_engine():
    try:
        from leukos.rules import assess  # noqa: F401
    except ImportError:
        return pytest.mark.skip(reason="leukos.rules.assess is not in this build yet")
    return pytest.mark.skipif(False, reason="in this build")


def needs_fhir():
    try:
        from leukos.interop.fhir import case_from_fhir  # noqa: F401
    except ImportError:
        return pytest.mark.skip(reason="leukos.interop.fhir is not in this build yet")
    return pytest.mark.skipif(False, reason="in this build")


def needs_planner():
    try:
        from leukos.apheresis import PlanOptions, plan_leukapheresis  # noqa: F401
    except ImportError:
        return pytest.mark.skip(reason="leukos.apheresis (planner) is not in this build yet")
    return pytest.mark.skipif(False, reason="in this build")

"""CDS client JWT verification: a harness signing ES384 JWTs with a test key, accept and reject paths.

Expected behaviour: CDS Hooks 2.0 §"Trusting CDS Clients" (asymmetric alg, kid, iss, aud = the
exact endpoint URL, exp, iat, jti) and the best practice of cds-hooks/docs#188 (reject expired,
replayed jti, very old iat); interop-and-stack.md §8.
"""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from leukos.errors import LeukosUserError
from leukos.service.settings import ServiceSettings

from .conftest import BASE, ISSUER, KID, mint

DISCOVERY = f"{BASE}/cds-services"


def _get(client, token):
    return client.get("/cds-services", headers={"Authorization": f"Bearer {token}"})


def test_valid_es384_jwt_is_accepted(secure_client, client_key):
    r = _get(secure_client, mint(client_key, aud=DISCOVERY))
    assert r.status_code == 200, r.text
    assert {s["hook"] for s in r.json()["services"]} == {"patient-view", "order-select"}


def test_aud_as_array_containing_the_endpoint_is_accepted(secure_client, client_key):
    token = jwt.encode({"iss": ISSUER, "aud": [DISCOVERY, "https://other"], "exp": int(time.time()) + 60,
                        "iat": int(time.time()), "jti": "j-array"}, client_key, algorithm="ES384",
                       headers={"kid": KID})
    assert _get(secure_client, token).status_code == 200


@pytest.mark.parametrize("case, kwargs, reason", [
    ("expired", {"exp_in": -3600}, "expired"),
    ("wrong aud: other service", {"aud": f"{BASE}/cds-services/leukos-patient-view"}, "aud"),
    ("wrong aud: other host", {"aud": "https://evil.example.com/cds-services"}, "aud"),
    ("unknown iss", {"iss": "https://unknown.example.org/"}, "issuer"),
    ("unknown kid", {"kid": "nope"}, "kid"),
    ("iat too old", {"iat_offset": -3600, "exp_in": 60}, "iat"),
    ("iat in the future", {"iat_offset": 3600, "exp_in": 7200}, "iat"),
    ("no jti", {"drop": ("jti",)}, "jti"),
    ("no exp", {"drop": ("exp",)}, "exp"),
    ("jku not on allow-list", {"headers": {"jku": "https://attacker.example/jwks.json"}}, "jku"),
])
def test_bad_jwts_are_rejected(secure_client, client_key, case, kwargs, reason):
    kwargs = {"aud": DISCOVERY, **kwargs}
    r = _get(secure_client, mint(client_key, **kwargs))
    assert r.status_code == 401, case
    assert reason in r.json()["title"]
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_replayed_jti_is_rejected(secure_client, client_key):
    token = mint(client_key, aud=DISCOVERY, jti="once-only")
    assert _get(secure_client, token).status_code == 200
    r = _get(secure_client, token)
    assert r.status_code == 401 and "replay" in r.json()["title"]


def test_alg_none_is_rejected(secure_client):
    token = jwt.encode({"iss": ISSUER, "aud": DISCOVERY, "exp": int(time.time()) + 60, "iat": int(time.time()),
                        "jti": "n1"}, None, algorithm="none", headers={"kid": KID})
    r = _get(secure_client, token)
    assert r.status_code == 401 and "asymmetric" in r.json()["title"]


def test_hmac_signed_with_the_public_key_is_rejected(secure_client, jwks):
    # The classic key-confusion attack: HS256 keyed with the public JWK text.
    token = jwt.encode({"iss": ISSUER, "aud": DISCOVERY, "exp": int(time.time()) + 60, "iat": int(time.time()),
                        "jti": "h1"}, json.dumps(jwks["keys"][0]).encode() * 2, algorithm="HS256",
                       headers={"kid": KID})
    r = _get(secure_client, token)
    assert r.status_code == 401 and "asymmetric" in r.json()["title"]


def test_signature_by_another_key_is_rejected(secure_client):
    other = ec.generate_private_key(ec.SECP384R1())
    r = _get(secure_client, mint(other, aud=DISCOVERY))
    assert r.status_code == 401 and "signature" in r.json()["title"]


def test_rs384_with_wrong_key_type_is_rejected(secure_client):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    r = _get(secure_client, mint(rsa_key, aud=DISCOVERY, alg="RS384"))
    assert r.status_code == 401


def test_missing_or_malformed_authorization(secure_client):
    assert secure_client.get("/cds-services").status_code == 401
    assert secure_client.get("/cds-services", headers={"Authorization": "Basic abc"}).status_code == 401
    assert _get(secure_client, "not.a.jwt").status_code == 401


def test_rest_api_takes_the_api_token_or_a_jwt(secure_client, client_key):
    assert secure_client.get("/api/rules").status_code == 401
    ok = secure_client.get("/api/rules", headers={"Authorization": "Bearer s3cret-api-token-for-tests"})
    assert ok.status_code == 200
    assert secure_client.get("/api/rules", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = secure_client.get("/api/rules", headers={"Authorization": f"Bearer {mint(client_key, aud=BASE + '/api/rules')}"})
    assert r.status_code == 200


def test_cds_endpoints_refuse_the_static_api_token(secure_client):
    r = secure_client.get("/cds-services", headers={"Authorization": "Bearer s3cret-api-token-for-tests"})
    assert r.status_code == 401


def test_health_needs_no_authentication(secure_client):
    assert secure_client.get("/api/health").json()["auth"] == "on"


def test_auth_can_be_switched_off_only_on_loopback():
    assert ServiceSettings(auth_disabled=True, host="127.0.0.1").auth_disabled
    assert ServiceSettings(auth_disabled=True, host="::1").auth_disabled
    with pytest.raises(ValueError):
        ServiceSettings(auth_disabled=True, host="0.0.0.0")
    with pytest.raises(LeukosUserError) as exc:
        ServiceSettings.from_env({"LEUKOS_AUTH_DISABLED": "1", "LEUKOS_HOST": "0.0.0.0"})
    assert exc.value.details[0].field == "LEUKOS_AUTH_DISABLED"


def test_settings_from_env():
    s = ServiceSettings.from_env({"LEUKOS_TRUSTED_ISSUERS": "a, b", "LEUKOS_PORT": "9000",
                                  "LEUKOS_JKU_ALLOWLIST": '{"a": ["https://a/jwks"]}', "LEUKOS_AUTH_DISABLED": "1"})
    assert s.trusted_issuers == ("a", "b") and s.port == 9000 and s.jku_allowlist["a"] == ("https://a/jwks",)
    with pytest.raises(LeukosUserError) as exc:
        ServiceSettings.from_env({"LEUKOS_PORT": "eighty"})
    assert exc.value.details[0].field == "LEUKOS_PORT"


def test_cors_only_for_configured_origins(secure_settings, jwks):
    from leukos.service.app import create_app

    from .conftest import Client
    c = Client(create_app(secure_settings.model_copy(update={"cors_origins": ("https://ehr.example.org",)}),
                          jwks=jwks))
    pre = {"Origin": "https://ehr.example.org", "Access-Control-Request-Method": "POST"}
    assert c.request("OPTIONS", "/cds-services/leukos-patient-view", headers=pre).headers[
        "access-control-allow-origin"] == "https://ehr.example.org"
    bad = c.request("OPTIONS", "/cds-services/leukos-patient-view",
                    headers={**pre, "Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in bad.headers

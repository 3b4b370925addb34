"""Property-based fuzzing of the REST API and CDS endpoints from the app's own OpenAPI spec
(schemathesis, bounded examples): no input may produce a server error (5xx) or a response that
breaks the documented schema. The one 5xx by design — 503 when a part of the core (the planner)
is not in this build — is allowed and named."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from leukos.registry import RegistrySettings
from leukos.service.app import create_app
from leukos.service.settings import ServiceSettings

from .conftest import EXAMPLES

APP = create_app(ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES))
APP.state.registry_settings = RegistrySettings(data_dir=Path(tempfile.mkdtemp(prefix="leukos-fuzz-")))  # not ./leukos-data
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case):
    response = case.call()
    if response.status_code == 503:
        assert response.json()["error"] == "EngineUnavailable", response.text
        return  # by design while that part is missing; other examples go on
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    # A schema-valid case may still be implausible (haemoglobin 0 g/dL): its 422 is correct, so the
    # "schema-valid request rejected" check does not apply; every other check does.
    case.validate_response(response, excluded_checks=[schemathesis.checks.not_a_server_error,
                                                      schemathesis.checks.positive_data_acceptance])

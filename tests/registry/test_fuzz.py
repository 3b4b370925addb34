"""Fuzzing /api/patients from the app's own OpenAPI spec (schemathesis): no input gives a 5xx or a
response outside the documented schema."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from leukos.registry import RegistrySettings
from leukos.service.app import create_app
from leukos.service.settings import ServiceSettings
from tests.conftest import EXAMPLES

APP = create_app(ServiceSettings(auth_disabled=True, examples_dir=EXAMPLES))
APP.state.registry_settings = RegistrySettings(data_dir=Path(tempfile.mkdtemp(prefix="leukos-fuzz-")))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).include(path_regex="^/api/patients")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_registry_api_never_fails_with_a_server_error(case):
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    case.validate_response(response, excluded_checks=[schemathesis.checks.not_a_server_error,
                                                      schemathesis.checks.positive_data_acceptance])

"""Schemathesis against /api/schema/: no 500, and every answer matches the schema.

Bounded in examples so it runs in well under two minutes.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from crontask.wsgi import application

pytestmark = pytest.mark.django_db

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def web_schema(db):
    # Called straight through WSGI, Django would close the test's connection after each request
    # (and with it the test's transaction); its own test client turns that off the same way.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("web_schema")


@pytest.fixture
def token_header(db) -> dict[str, str]:
    user = get_user_model().objects.create_superuser("fuzz", "", "fuzz-Passw0rd")
    return {"Authorization": f"Token {Token.objects.create(user=user).key}"}


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_api_answers_every_generated_request_within_its_schema(case, token_header):
    response = case.call(headers=token_header)
    # /api/health/ answers 503 by design when beat and workers are not running, as here.
    checks = CHECKS[1:] if case.path == "/api/health/" else CHECKS
    case.validate_response(response, checks=checks)

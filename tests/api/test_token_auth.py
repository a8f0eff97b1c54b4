"""The API's token authentication (``core.authentication``): DRF's, its query built once a
process. Nothing but the statement is kept: a token deleted or a user deactivated is refused on
the very next request, with DRF's own answers."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.test import APIClient

from core.authentication import TokenAuthentication

pytestmark = pytest.mark.django_db

URL = "http://127.0.0.1:9/"


def client_of(token: Token) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def test_it_is_the_api_s_token_authentication():
    from rest_framework.settings import api_settings

    assert TokenAuthentication in api_settings.DEFAULT_AUTHENTICATION_CLASSES


def test_a_token_gives_its_user_and_itself_as_drf_s_query_does(admin_user):
    token = Token.objects.create(user=admin_user)
    with CaptureQueriesContext(connection) as queries:
        user, found = TokenAuthentication().authenticate_credentials(token.key)
    assert len(queries) == 1
    assert (user.pk, found.pk) == (admin_user.pk, token.key)
    assert found.user is user
    assert user.auth_token is found
    stored = get_user_model().objects.get(pk=admin_user.pk)
    for field in get_user_model()._meta.concrete_fields:
        assert getattr(user, field.attname) == getattr(stored, field.attname), field.name
    assert found.created == token.created
    assert (user._state.adding, user._state.db, found._state.adding) == (False, "default", False)


def test_the_token_s_user_has_its_own_permissions(django_user_model):
    user = django_user_model.objects.create_user("writer", password=None)
    client = client_of(Token.objects.create(user=user))
    assert client.post("/api/jobs/", {"id": "one", "url": URL}, format="json").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="add_job"))
    response = client.post("/api/jobs/", {"id": "one", "url": URL}, format="json")
    assert response.status_code == 201, response.json()


def test_a_deleted_token_is_refused_on_the_next_request(admin_user):
    token = Token.objects.create(user=admin_user)
    client = client_of(token)
    assert client.get("/api/jobs/").status_code == 200
    Token.objects.filter(pk=token.key).delete()
    response = client.get("/api/jobs/")
    assert response.status_code == 403  # DRF's answer while session authentication comes first
    assert response.json()["detail"] == "Invalid token."


def test_a_deactivated_user_is_refused_on_the_next_request(admin_user):
    client = client_of(Token.objects.create(user=admin_user))
    assert client.get("/api/jobs/").status_code == 200
    type(admin_user).objects.filter(pk=admin_user.pk).update(is_active=False)
    response = client.get("/api/jobs/")
    assert response.status_code == 403  # DRF's answer while session authentication comes first
    assert response.json()["detail"] == "User inactive or deleted."


@pytest.mark.parametrize("key", ["0" * 40, "", "x' OR '1'='1"])
def test_an_unknown_key_is_refused_with_drf_s_error(admin_user, key):
    Token.objects.create(user=admin_user)
    with pytest.raises(AuthenticationFailed, match=r"Invalid token\."):
        TokenAuthentication().authenticate_credentials(key)


def test_a_token_model_with_a_manager_of_its_own_is_read_through_it(admin_user, monkeypatch):
    """A manager may leave tokens out (expired ones): then DRF's query, through the manager."""
    from django.db import models

    class Unexpired(models.Manager[Token]):
        def get_queryset(self):
            return super().get_queryset().none()

    manager: Unexpired = Unexpired()
    manager.model = Token
    token = Token.objects.create(user=admin_user)
    monkeypatch.setattr(Token._meta, "default_manager", manager)
    monkeypatch.setattr(Token, "objects", manager)
    with pytest.raises(AuthenticationFailed):
        TokenAuthentication().authenticate_credentials(token.key)

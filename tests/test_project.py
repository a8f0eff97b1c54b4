"""Project-level checks: migrations match the models, settings refuse bad values, first-start admin."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from crontask.bootstrap import ensure_admin_user
from crontask.env import envbool, envint


@pytest.mark.django_db
def test_the_migrations_match_the_models():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_bad_environment_values_stop_the_start(monkeypatch):
    monkeypatch.setenv("X_BOOL", "maybe")
    monkeypatch.setenv("X_INT", "ten")
    with pytest.raises(ImproperlyConfigured, match="X_BOOL"):
        envbool("X_BOOL", False)
    with pytest.raises(ImproperlyConfigured, match="X_INT"):
        envint("X_INT", 1)
    monkeypatch.setenv("X_INT", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        envint("X_INT", 5, minimum=1)
    monkeypatch.setenv("X_BOOL", "True")
    assert envbool("X_BOOL", False) is True


@pytest.mark.django_db
def test_the_admin_is_created_once_with_a_generated_password():
    password = ensure_admin_user()
    assert password
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser
    assert admin.check_password(password)
    assert ensure_admin_user() is None  # never reset on the next start


@pytest.mark.django_db
def test_the_admin_password_can_come_from_the_environment():
    assert ensure_admin_user(password="chosen-Passw0rd") is None
    assert get_user_model().objects.get(username="admin").check_password("chosen-Passw0rd")

"""First-start chores for the all-in-one command: the admin account."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model


def ensure_admin_user(*, username: str = "admin", password: str = "") -> str | None:
    """Create a superuser when there is none. Returns the generated password, if one was made.

    An existing superuser is left alone, so a password set by the operator is never reset.
    """
    user_model = get_user_model()
    if user_model.objects.filter(is_superuser=True).exists():
        return None
    generated = not password
    password = password or secrets.token_urlsafe(12)
    user_model.objects.create_superuser(username=username, email="", password=password)
    return password if generated else None

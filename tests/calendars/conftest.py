from __future__ import annotations

import pytest


@pytest.fixture
def staff(client, admin_user):
    """A test client logged in as a superuser."""
    client.force_login(admin_user)
    return client

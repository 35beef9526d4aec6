from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from tests.routers import SessionsOn


@pytest.fixture
def make_user(db):
    """Users in the test's transaction: these tests need no transactional database (and flush no PostgreSQL)."""

    def make(username: str = "alice"):
        return get_user_model().objects.create_user(username=username, password="pw-" + username)

    return make


def sessions_on_postgresql(settings) -> None:
    """Route the session table to the PostgreSQL test database (skip when there is none)."""
    from django.conf import settings as django_settings

    if "postgres" not in django_settings.DATABASES:
        pytest.skip(django_settings.POSTGRES_MISSING)
    settings.DATABASE_ROUTERS = [SessionsOn("postgres")]

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client


@pytest.fixture
def make_user(transactional_db):
    def make(username: str = "alice"):
        return get_user_model().objects.create_user(username=username, password="pw-" + username)

    return make


@pytest.fixture
def login(transactional_db):
    """Sign a user in over HTTP and return the session key of the new session."""

    def sign_in(user) -> str:
        client = Client()
        client.force_login(user)
        return client.cookies["sessionid"].value

    return sign_in


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")

"""The session-end receivers: what a logout and a bulk delete broadcast, and how long they wait for the layer."""

from __future__ import annotations

import time

import pytest
from django.contrib.sessions.models import Session
from django.test import Client

from django_stomp_push.destinations import HUBS_GROUP, session_group, session_hash
from tests.test_push import LAYER_TIMEOUT, scripted

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def layer():
    with scripted() as layer:
        yield layer


def signed_in(user) -> tuple[Client, str]:
    client = Client()
    client.force_login(user)
    return client, client.cookies["sessionid"].value


def test_a_logout_broadcasts_logged_out_once_and_not_again_for_the_flush(alice, layer):
    client, key = signed_in(alice)
    layer.sent.clear()
    client.logout()
    assert not Session.objects.filter(session_key=key).exists()
    assert [(group, message["reason"]) for group, message in layer.sent] == [
        (session_group(session_hash(key)), "logged out")
    ]


def test_a_logout_while_the_layer_hangs_returns_within_the_layer_timeout(alice, layer):
    client, key = signed_in(alice)
    layer.script = ["hang"]
    started = time.monotonic()
    client.logout()
    assert time.monotonic() - started < LAYER_TIMEOUT + 0.5
    assert not Session.objects.filter(session_key=key).exists()


def test_deleting_a_session_row_after_a_logout_of_another_still_broadcasts(alice, bob, layer):
    alice_client, _ = signed_in(alice)
    _, bob_key = signed_in(bob)
    alice_client.logout()
    layer.sent.clear()
    Session.objects.filter(session_key=bob_key).delete()
    assert [(group, message["reason"]) for group, message in layer.sent] == [
        (session_group(session_hash(bob_key)), "session ended")
    ]


def test_a_bulk_delete_is_one_broadcast_to_every_hub(alice, bob, make_user, layer):
    keys = {signed_in(user)[1] for user in (alice, bob, make_user("carol"))}
    layer.sent.clear()
    Session.objects.all().delete()
    [(group, message)] = layer.sent
    assert (group, message["reason"]) == (HUBS_GROUP, "session ended")
    assert sorted(message["sessions"]) == sorted(session_hash(key) for key in keys)

"""A connection older than channels-redis's group_expiry stays in its groups (the hub re-joins them)."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

from django_stomp_push import aend_session, apush
from django_stomp_push.redis import layer_config
from tests.stompclient import StompTestClient

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.slow]


async def test_pushes_and_session_close_still_arrive_after_group_expiry(redis_server, alice, login):
    layers = {"default": layer_config(redis_server.url, layer="core", group_expiry=1)}
    with override_settings(CHANNEL_LAYERS=layers, STOMP_PUSH={"GROUP_REFRESH_INTERVAL": 0.3}):
        key = await database_sync_to_async(login)(alice)
        client = StompTestClient(key)
        assert (await client.connect()).command == "CONNECTED"
        await client.send("SUBSCRIBE", {"id": "0", "destination": "/topic/long", "receipt": "r"})
        assert (await client.receive()).command == "RECEIPT"
        await asyncio.sleep(2.5)  # well past group_expiry: without re-joins channels-redis drops the members
        await apush("/topic/long", "still here")
        message = await client.receive(timeout=3)
        assert message.body == b"still here"
        await aend_session(key)
        error, code = await client.receive_error(timeout=3)
        assert (error.headers["message"], code) == ("session ended", 1008)

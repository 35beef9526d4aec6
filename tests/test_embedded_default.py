"""With no CHANNEL_LAYERS setting at all, the in-memory layer is the embedded default."""

import pytest
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, channel_layers
from django.test import override_settings

from django_stomp_push import apush
from django_stomp_push.layers import get_layer
from tests.stompclient import StompTestClient

pytestmark = pytest.mark.django_db(transaction=True)


@override_settings(CHANNEL_LAYERS={})
async def test_pushes_work_without_any_channel_layer_setting(alice, login):
    assert isinstance(get_layer(), InMemoryChannelLayer)
    key = await database_sync_to_async(login)(alice)
    client = StompTestClient(key)
    assert (await client.connect()).command == "CONNECTED"
    await client.send("SUBSCRIBE", {"id": "0", "destination": "/topic/embedded", "receipt": "r"})
    assert (await client.receive()).command == "RECEIPT"
    await apush("/topic/embedded", "hello")
    assert (await client.receive()).body == b"hello"
    await client.close()
    channel_layers.backends.pop("default", None)

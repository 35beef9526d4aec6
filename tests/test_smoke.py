import pytest
from channels.db import database_sync_to_async

from django_stomp_push import apush
from tests.stompclient import StompTestClient

pytestmark = pytest.mark.django_db(transaction=True)


async def test_connect_subscribe_and_receive_a_push(alice, login):
    key = await database_sync_to_async(login)(alice)
    client = StompTestClient(key)
    connected = await client.connect()
    assert connected.command == "CONNECTED", connected
    assert connected.headers["version"] == "1.2"
    assert connected.headers["user-name"] == "alice"
    await client.send("SUBSCRIBE", {"id": "s1", "destination": "/topic/news", "receipt": "r1"})
    receipt = await client.receive()
    assert receipt.command == "RECEIPT" and receipt.headers["receipt-id"] == "r1"
    await apush("/topic/news", {"n": 1})
    message = await client.receive()
    assert message.command == "MESSAGE"
    assert message.headers["destination"] == "/topic/news"
    assert message.headers["subscription"] == "s1"
    assert message.headers["content-type"] == "application/json"
    assert message.body == b'{"n":1}'
    await client.close()

"""A client streaming SENDs to a topic through Redis: every one arrives, in order, on both channels-redis layers;
a failure of the layer under pipelined SENDs closes the sender with 1011 instead of dropping them silently."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.reliability.clients import StompClient, sequence, stomp_frame
from tests.servers import DEMO_PASSWORDS

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SENDS = 5000
#: frames per WebSocket message: a client that batches, as stompjs does under load
PER_MESSAGE = 50


def test_a_stream_of_client_sends_arrives_complete_and_in_order(
    redis_server, project_factory, daphne_factory, redis_layer
):
    project = project_factory(redis_server.url, REDIS_LAYER=redis_layer)
    server = daphne_factory(project, STOMP_PUSH_JSON=json.dumps({"CLIENT_SEND_TO_TOPICS": True}))
    alice = server.login("alice", DEMO_PASSWORDS["alice"])
    bob = server.login("bob", DEMO_PASSWORDS["bob"])
    destination = "/topic/stream"

    async def scenario() -> tuple[list[str], list[str]]:
        receivers = [
            await StompClient.open(server, session.session_key, subscribe=[destination]) for session in (alice, bob)
        ]
        sender = await StompClient.open(server, bob.session_key)
        frames = [stomp_frame("SEND", {"destination": destination}, str(seq)) for seq in range(SENDS)]
        for start in range(0, SENDS, PER_MESSAGE):
            await sender.ws.send("".join(frames[start : start + PER_MESSAGE]))
        # A last SEND with a receipt: its RECEIPT comes once the layer took it, and so every earlier one.
        await sender.ws.send(stomp_frame("SEND", {"destination": destination, "receipt": "last"}, str(SENDS)))
        receipt = await sender.frame(30)
        assert receipt.command == "RECEIPT" and receipt.headers["receipt-id"] == "last", receipt
        got = [await receiver.messages(SENDS + 1, 60) for receiver in receivers]
        for client in (*receivers, sender):
            await client.close()
        return got[0], got[1]

    for bodies in asyncio.run(scenario()):
        assert sequence(bodies) == list(range(SENDS + 1))


def test_sends_the_layer_cannot_take_close_the_sender_with_1011(
    redis_server, project_factory, daphne_factory, redis_layer
):
    project = project_factory(redis_server.url, REDIS_LAYER=redis_layer)
    server = daphne_factory(project, STOMP_PUSH_JSON=json.dumps({"CLIENT_SEND_TO_TOPICS": True}))
    bob = server.login("bob", DEMO_PASSWORDS["bob"])

    async def scenario():
        sender = await StompClient.open(server, bob.session_key)
        redis_server.stop()
        await sender.ws.send("".join(stomp_frame("SEND", {"destination": "/topic/x"}, str(n)) for n in range(10)))
        return await sender.closed(30)

    closed = asyncio.run(scenario())
    assert closed.code == 1011, closed
    assert closed.error is not None and closed.error.headers["message"] == "internal server error", closed

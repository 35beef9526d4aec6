"""On daphne, pushes are written as WebSocket frames built by django-stomp-push (not autobahn) when autobahn would
send one plain frame: every payload length class (7-bit, 16-bit, 64-bit), text and binary, must arrive intact,
and so must one push larger than daphne's 1 MiB incoming message limit and the 512 KiB outbound buffer.
(The frame encoding itself, and the same sizes on the fallback, are in tests/test_daphne_seam.py.)"""

from __future__ import annotations

import asyncio

import pytest
import websockets

from tests.reliability.clients import stomp_frame
from tests.servers import DEMO_PASSWORDS

pytestmark = [pytest.mark.redis, pytest.mark.slow]

#: bodies whose frames cross 125/126 bytes and 65,535/65,536 bytes (the MESSAGE headers add about 120 bytes)
TEXT_SIZES = [*range(0, 40), *range(65_390, 65_440), 300_000]
BINARY_SIZES = [1, 10, 65_420, 65_500, 200_000]
#: pushed last, when the client has nothing left to read before it
BIG = 2_000_000


def test_pushes_of_every_length_class_arrive_intact_over_daphne(redis_server, project_factory, daphne_factory):
    project = project_factory(redis_server.url)
    server = daphne_factory(project)
    alice = server.login("alice", DEMO_PASSWORDS["alice"])

    async def scenario():
        ws = await websockets.connect(
            server.ws_url,
            subprotocols=["v12.stomp"],
            origin=server.http_url,
            additional_headers={"Cookie": f"sessionid={alice.session_key}"},
            max_size=None,
        )
        await ws.send(stomp_frame("CONNECT", {"accept-version": "1.2", "host": "127.0.0.1"}))
        assert (await ws.recv()).startswith("CONNECTED")
        await ws.send(stomp_frame("SUBSCRIBE", {"id": "s0", "destination": "/topic/frames", "receipt": "r"}))
        assert (await ws.recv()).startswith("RECEIPT")
        code = (
            "from django_stomp_push.push import push\n"
            f"for n in {TEXT_SIZES}: push('/topic/frames', 'x' * n)\n"
            f"for n in {BINARY_SIZES}: push('/topic/frames', b'\\xff' * n)\n"
        )
        last = "from django_stomp_push.push import push; push('/topic/frames', 'y' * %d)"
        publisher = asyncio.create_task(asyncio.to_thread(project.python, code))
        received = [await asyncio.wait_for(ws.recv(), 30) for _ in range(len(TEXT_SIZES) + len(BINARY_SIZES))]
        assert (await publisher).returncode == 0
        big = asyncio.create_task(asyncio.to_thread(project.python, last % BIG))
        received.append(await asyncio.wait_for(ws.recv(), 30))
        assert (await big).returncode == 0
        await ws.close()
        return received

    received = asyncio.run(scenario())
    texts, binaries = received[: len(TEXT_SIZES)], received[len(TEXT_SIZES) : -1]
    assert received[-1].endswith("\n\n" + "y" * BIG + "\x00")
    for size, frame in zip(TEXT_SIZES, texts, strict=True):
        assert isinstance(frame, str), f"body of {size} characters did not come as a text frame"
        assert frame.startswith("MESSAGE\n") and frame.endswith("\n\n" + "x" * size + "\x00")
    for size, frame in zip(BINARY_SIZES, binaries, strict=True):
        assert isinstance(frame, bytes), f"body of {size} bytes did not come as a binary frame"
        assert frame.startswith(b"MESSAGE\n") and frame.endswith(b"\n\n" + b"\xff" * size + b"\x00")

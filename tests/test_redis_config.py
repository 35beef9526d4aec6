"""channels-redis with redis-py 8: the default socket timeout breaks an idle receive loop; layer_config does not."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

from django_stomp_push import apush
from django_stomp_push.hub import get_hub
from django_stomp_push.redis import broken_host_settings, layer_config
from tests.stompclient import StompTestClient

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.slow]

IDLE = 6.5  # longer than redis-py's default 5 s socket_timeout and channels-redis's 5 s BZPOPMIN


async def idle_then_push(alice, login) -> tuple[bytes, int]:
    key = await database_sync_to_async(login)(alice)
    client = StompTestClient(key)
    assert (await client.connect()).command == "CONNECTED"
    await client.send("SUBSCRIBE", {"id": "0", "destination": "/topic/idle", "receipt": "r"})
    assert (await client.receive()).command == "RECEIPT"
    await asyncio.sleep(IDLE)
    await apush("/topic/idle", "after idling")
    message = await client.receive(timeout=5)
    hub = await get_hub()
    await client.close()
    # channels-redis's receive may not end on one cancellation (the event loop's own at its close); the hub's
    # stop cancels until it does.
    await hub.stop()
    return message.body, hub.stats["layer_errors"]


async def test_layer_config_keeps_the_receive_loop_alive_when_idle(redis_server, alice, login):
    layers = {"default": layer_config(redis_server.url, layer="core")}
    assert broken_host_settings(layers["default"]["CONFIG"]) == []
    with override_settings(CHANNEL_LAYERS=layers):
        body, errors = await idle_then_push(alice, login)
    assert body == b"after idling"
    assert errors == 0


async def test_redis_py_defaults_time_out_the_idle_receive_loop(redis_server, alice, login):
    layers = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [redis_server.url]}}}
    problems = broken_host_settings(layers["default"]["CONFIG"])
    assert any("socket_timeout" in p for p in problems) and any("max_connections" in p for p in problems)
    with override_settings(CHANNEL_LAYERS=layers):
        body, errors = await idle_then_push(alice, login)
    # The hub survives (it logs, waits and receives again), but only because it retries: the read timed out.
    assert body == b"after idling"
    assert errors >= 1


def test_the_checks_read_redis_py_defaults_without_importing_redis_py():
    import redis._defaults

    from django_stomp_push.redis import _load_defaults_alone

    alone = _load_defaults_alone()
    assert alone is not None and alone is not redis._defaults
    assert alone.DEFAULT_SOCKET_TIMEOUT == redis._defaults.DEFAULT_SOCKET_TIMEOUT


def test_system_checks_leave_redis_py_unimported():
    """Every manage.py command runs the checks; with channels-redis configured they do not import redis-py."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = (
        "import sys, django; django.setup(); from django.core import checks; checks.run_checks(); "
        "print('redis' in sys.modules)"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "testproject.settings",
        "REDIS_URL": "redis://127.0.0.1:1/0",  # channels-redis configured: check W005 reads redis-py's defaults
        "PYTHONPATH": os.pathsep.join([str(root), str(root / "testproject")]),
    }
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"

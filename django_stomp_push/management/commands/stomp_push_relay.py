"""``manage.py stomp_push_relay``: this machine's one subscription to Redis, shared by its server processes.

The relay is :class:`~django_stomp_push.relay.server.Relay`; this is the command around it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...conf import get_config
from ...layers import PUBSUB_BACKEND, layer_backend


class Command(BaseCommand):
    help = (
        "Run this machine's relay: one Redis pub/sub subscription per channel, shared by every server process of "
        "the machine that sets STOMP_PUSH['RELAY'] to the same socket. Redis then copies a push once per machine "
        "instead of once per process. Needs channels-redis's pub/sub layer. Stops on SIGTERM or SIGINT."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--socket", help="The unix socket to listen on (default: STOMP_PUSH['RELAY']).")
        parser.add_argument(
            "--mode",
            default="660",
            help="The socket's permissions, in octal (default 660: the owner and its group may connect).",
        )

    def handle(self, *args: Any, socket: str | None = None, mode: str = "660", **options: Any) -> None:
        path = socket or get_config().relay
        if not path:
            raise CommandError("no socket: pass --socket or set STOMP_PUSH['RELAY']")
        try:
            permissions = int(mode, 8)
        except ValueError:
            raise CommandError(f"--mode must be octal permissions such as 660, not {mode!r}") from None
        alias = get_config().channel_layer
        try:
            backend = layer_backend(alias)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        if backend != PUBSUB_BACKEND:
            raise CommandError(
                f"the relay needs channels-redis's pub/sub layer ({PUBSUB_BACKEND}); CHANNEL_LAYERS[{alias!r}] is "
                f"{backend or 'without a BACKEND'} (layer_config(url) builds the pub/sub layer)"
            )
        from channels_redis.utils import decode_hosts

        from ...pubsub import layout_matches
        from ...relay.server import Relay

        config = dict(settings.CHANNEL_LAYERS[alias].get("CONFIG") or {})
        if not layout_matches(config):
            raise CommandError(
                "the installed channels-redis names its pub/sub channels differently from what the relay "
                "reproduces: run the server processes without RELAY"
            )
        hosts = decode_hosts(config.get("hosts"))
        relay = Relay(hosts, config.get("prefix", "asgi"))
        if int(options.get("verbosity", 1)) >= 1:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logging.getLogger("django_stomp_push.relay").addHandler(handler)
            logging.getLogger("django_stomp_push.relay").setLevel(logging.INFO)
        self.stdout.write(f"relay: listening on {path} for {len(hosts)} Redis server(s)")
        self.stdout.flush()
        try:
            asyncio.run(self._serve(relay, path, permissions))
        except FileExistsError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write("relay: stopped")

    async def _serve(self, relay: Any, path: str, permissions: int) -> None:
        serving = asyncio.ensure_future(relay.serve(path, permissions))
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, serving.cancel)
        try:
            await serving
        except asyncio.CancelledError:
            if not serving.cancelled():
                raise

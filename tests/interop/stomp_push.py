"""Drive ``stomp_push_client.mjs`` (the stomp-push helper around real @stomp/stompjs 7 clients on Node's ``ws``).

The script prints what the helpers, its optional TCP proxy and its optional test-only STOMP server observe, as
JSON lines; :class:`StompPushNode` reuses :class:`~tests.interop.stompjs.StompJsClient`'s reading, waiting and
stopping, with the script and its options as the only differences.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from typing import Any

from tests.interop.stompjs import StompJsClient, node_binary
from tests.servers import REPO, DaphneServer

SCRIPT = REPO / "tests" / "interop" / "stomp_push_client.mjs"


class StompPushNode(StompJsClient):
    """One Node process running ``instances`` stomp-push helpers (see the script's header for ``options``)."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            [node_binary(), str(SCRIPT), json.dumps(options)],
            cwd=str(REPO),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def seen_of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        """Every event ``kind`` seen so far whose fields equal ``match``."""
        return [e for e in list(self.seen) if e["event"] == kind and all(e.get(k) == v for k, v in match.items())]


def against(server: DaphneServer, session_key: str, **options: Any) -> dict[str, Any]:
    """Options for helpers connecting to ``server`` with the browser's credentials: the cookie and the Origin."""
    return {"url": server.ws_url, "cookie": f"sessionid={session_key}", "origin": server.http_url, **options}

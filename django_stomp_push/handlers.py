"""Handlers for client SENDs to application destinations (``/app/...``), like Spring's ``@MessageMapping``.

    from django_stomp_push import handler

    @handler("/app/chat/{room}")
    def chat(message):
        push(f"/topic/chat/{message.params['room']}", {"from": message.user.get_username(), "text": message.text})
        return {"ok": True}          # a return value other than None is a reply to the sender

A handler gets a :class:`Message`; a plain function runs in a worker thread (it may use the ORM), an
``async def`` runs on the event loop. Register handlers in a module listed in ``STOMP_PUSH["HANDLER_MODULES"]``
(or any module imported at start-up, such as your app's ``apps.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from asgiref.sync import iscoroutinefunction
from channels.db import database_sync_to_async

from .stomp.frames import FrameContent

if TYPE_CHECKING:
    from .stomp import Send

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Sender(Protocol):
    """What a handler's :class:`Message` needs of the connection that sent it."""

    user: Any
    connection_id: str

    @property
    def session(self) -> Any:
        """The Django session object of the connection's handshake."""

    def reply(self, destination: str, body: Any, headers: dict[str, str] | None = None) -> int:
        """Send ``body`` to this connection's own subscriptions of ``destination``, from any thread."""


@dataclass
class Message(FrameContent):
    """A client SEND to an application destination, as a handler sees it."""

    # A SEND's body that is not UTF-8 reaches the handler as text with U+FFFD in place of the invalid bytes.
    _text_errors = "replace"

    connection: Sender
    frame: Send
    params: dict[str, str] = field(default_factory=dict)

    @property
    def destination(self) -> str:
        return self.frame.destination

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` for invalid JSON)."""
        return json.loads(self.frame.body)

    @property
    def user(self) -> Any:
        """``scope["user"]`` of the sending connection (``AnonymousUser`` when not signed in)."""
        return self.connection.user

    @property
    def session(self) -> Any:
        """``scope["session"]`` of the sending connection."""
        return self.connection.session

    @property
    def reply_to(self) -> str:
        """Where :meth:`reply` sends: the SEND's ``reply-to`` header, else ``/user/queue/reply``."""
        from .conf import get_config

        return self.frame.headers.get("reply-to") or get_config().user_prefix + "queue/reply"

    def reply(self, body: Any, headers: dict[str, str] | None = None) -> int:
        """Send ``body`` to the sending connection only, on its subscription(s) of :attr:`reply_to`.

        Works from a sync handler's worker thread too; returns how many subscriptions got it (from another
        thread: 1, as the delivery happens on the connection's event loop).
        """
        return self.connection.reply(self.reply_to, body, headers)


class Handler:
    """A registered handler and the destination pattern it serves."""

    def __init__(self, pattern: str, func: Callable[[Message], Any]) -> None:
        self.pattern = pattern
        self.func = func
        regex = "".join(
            f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part) for i, part in enumerate(_PLACEHOLDER.split(pattern))
        )
        self.regex = re.compile(regex + r"\Z")
        self.is_async = iscoroutinefunction(func)

    async def call(self, message: Message) -> None:
        if self.is_async:
            result = await self.func(message)
        else:
            result = await database_sync_to_async(self.func)(message)
        if result is not None:
            message.reply(result)


_registry: dict[str, Handler] = {}


def handler(destination: str) -> Callable[[Callable[[Message], Any]], Callable[[Message], Any]]:
    """Register the decorated function for client SENDs to ``destination`` (``{name}`` matches one segment)."""
    from .conf import get_config

    prefix = get_config().app_prefix
    if not destination.startswith(prefix):
        raise ValueError(f"handler destinations start with {prefix!r}; got {destination!r}")

    def register(func: Callable[[Message], Any]) -> Callable[[Message], Any]:
        _registry[destination] = Handler(destination, func)
        return func

    return register


def resolve(destination: str) -> tuple[Handler, dict[str, str]] | None:
    """The handler for ``destination`` and its placeholder values, or None."""
    exact = _registry.get(destination)
    if exact is not None and not exact.regex.groupindex:
        return exact, {}
    for registered in _registry.values():
        match = registered.regex.match(destination)
        if match:
            return registered, match.groupdict()
    return None


def unregister(destination: str) -> None:
    """Forget the handler of ``destination`` (for tests)."""
    _registry.pop(destination, None)

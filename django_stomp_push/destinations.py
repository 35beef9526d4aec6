"""Destinations: what a destination string means, which channel-layer group carries it, who may use it.

- ``/topic/...`` (each of the ``BROKER_PREFIXES``, such as ``/queue/`` too): broadcast to every subscriber on
  every server, like Spring's simple broker.
- ``/user/...``: a client subscribes to ``/user/queue/x`` and gets what the server sends to *its own user's*
  ``/queue/x`` (:func:`~django_stomp_push.push_to_user`). The user is never part of the string the client
  sends, so no crafted destination can name another user.
- ``/app/...``: client SENDs go to handlers registered with :func:`~django_stomp_push.handler`.

Group names never carry a destination, user id or session key in clear: each is a keyed BLAKE2b hash
(the key derived from ``SECRET_KEY``), so group names are short, ASCII and reveal nothing in Redis.
"""

from __future__ import annotations

import enum
import hashlib
from functools import lru_cache
from typing import Any

from asgiref.sync import iscoroutinefunction
from channels.db import database_sync_to_async
from django.conf import settings
from django.utils.module_loading import import_string

from .conf import Config, get_config

GROUP_PREFIX = "stomp_push."
#: Every delivery hub (one per server process) is a member of this group; sweeps are broadcast to it.
HUBS_GROUP = GROUP_PREFIX + "hubs"


class Kind(enum.Enum):
    TOPIC = "topic"
    USER = "user"
    APP = "app"


class DestinationError(ValueError):
    """A destination string this server does not serve."""


def classify(destination: str, config: Config | None = None) -> Kind:
    """Which kind of destination ``destination`` is; :class:`DestinationError` if none."""
    config = config or get_config()
    if not destination or len(destination) > 1024:
        raise DestinationError("a destination must be 1 to 1024 characters long")
    # No prefix starts with another (conf.py checks it), so the order does not matter.
    if destination.startswith(config.user_prefix):
        kind = Kind.USER
        prefix = config.user_prefix
    elif destination.startswith(config.app_prefix):
        kind = Kind.APP
        prefix = config.app_prefix
    else:
        prefix = next((p for p in config.broker_prefixes if destination.startswith(p)), "")
        kind = Kind.TOPIC
    if prefix and len(destination) > len(prefix):
        return kind
    served = ", ".join((*config.broker_prefixes, config.user_prefix, config.app_prefix))
    raise DestinationError(f"{destination!r} is not under one of {served}")


def user_destination(destination: str, config: Config | None = None) -> str:
    """The subscribed form of a per-user destination: ``/queue/x`` and ``/user/queue/x`` both give ``/user/queue/x``."""
    config = config or get_config()
    if destination.startswith(config.user_prefix):
        return destination
    if not destination.startswith("/"):
        raise DestinationError(f"{destination!r}: a user destination starts with '/' (e.g. '/queue/notices')")
    return config.user_prefix + destination[1:]


@lru_cache(maxsize=4)
def _group_key(secret: str) -> bytes:
    return hashlib.blake2b(secret.encode(), digest_size=32, person=b"stomp-push-grp").digest()


def _keyed(data: bytes) -> hashlib.blake2b:
    """The keyed BLAKE2b state after ``data`` (its ``.copy()`` continues from there without re-keying)."""
    return hashlib.blake2b(data, digest_size=16, key=_group_key(settings.SECRET_KEY))


def keyed_hash(value: str) -> str:
    """A 32-hex-digit keyed hash of ``value``; equal across processes that share ``SECRET_KEY``."""
    return _keyed(value.encode()).hexdigest()


@lru_cache(maxsize=4096)
def _destination_group(destination: str, secret: str) -> str:
    return GROUP_PREFIX + "d." + keyed_hash(destination)


def destination_group(destination: str) -> str:
    """Channel-layer group of a broker (``/topic/``, ``/queue/``, ...) destination."""
    return _destination_group(destination, settings.SECRET_KEY)


def user_group(user_hash: str) -> str:
    return GROUP_PREFIX + "u." + user_hash


def session_group(session_hash: str) -> str:
    return GROUP_PREFIX + "s." + session_hash


def user_hash(user: Any) -> str:
    """Hash of a user (instance or primary key) as used in group names and hub tables."""
    pk = getattr(user, "pk", user)
    if pk is None:
        raise ValueError("push_to_user() needs a saved user or a primary key")
    return keyed_hash("user:" + str(pk))


def session_hash(session_key: str) -> str:
    """``keyed_hash("session:" + session_key)``."""
    return session_hashes([session_key])[0]


def session_hashes(session_keys: list[str]) -> list[str]:
    """:func:`session_hash` of each key, the keyed state set up once (about twice as fast for a sweep's batch)."""
    prefixed = _keyed(b"session:")
    hashes = []
    for key in session_keys:
        state = prefixed.copy()
        state.update(key.encode())
        hashes.append(state.hexdigest())
    return hashes


# -- authorization -------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _load_authorizer(path: str) -> Any:
    return import_string(path)


async def authorize(user: Any, action: str, destination: str, config: Config | None = None) -> bool:
    """Ask the project's ``AUTHORIZE`` hook whether ``user`` may ``action`` ("subscribe"/"send") ``destination``.

    With no hook configured everything that passed the destination rules is allowed. A synchronous hook runs in
    a worker thread (it may query the database); an ``async def`` hook is awaited.
    """
    config = config or get_config()
    if not config.authorize:
        return True
    hook = _load_authorizer(config.authorize)
    if iscoroutinefunction(hook):
        return bool(await hook(user, action, destination))
    return bool(await database_sync_to_async(hook)(user, action, destination))

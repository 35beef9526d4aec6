"""Settings: one typed object built from ``settings.STOMP_PUSH``.

Every key is optional. :func:`get_config` validates the dict once (and again after ``override_settings``) and
raises :class:`ImproperlyConfigured` with the key's name for a bad value; the system check ``stomp_push.E001``
reports the same at start-up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from .stomp import Limits

ACTIVITY_POLICIES = ("none", "frames", "frames+heartbeats")
_LIMITS = Limits()


@dataclass(frozen=True)
class Config:
    """The effective settings. Field names are the lower-case ``STOMP_PUSH`` keys."""

    #: Let a WebSocket without a valid Django session connect (unbound: no user, no session close).
    allow_anonymous: bool = False
    #: Let clients SEND straight to ``/topic/...`` destinations (broadcast to every subscriber).
    client_send_to_topics: bool = False
    #: Dotted path of ``authorize(user, action, destination) -> bool``; action is "subscribe" or "send".
    authorize: str | None = None
    #: (server sends every ms, server wants client data every ms) offered in CONNECTED; 0 disables.
    heartbeat: tuple[int, int] = (10_000, 10_000)
    #: A client is closed when nothing arrives for ``heartbeat_grace`` times the negotiated interval.
    heartbeat_grace: float = 2.0
    #: Seconds a client has after the WebSocket opens to send CONNECT.
    connect_timeout: float = 10.0
    #: Protocol limits; defaults from :class:`~django_stomp_push.stomp.Limits` (frame size 64 KiB, as Spring).
    max_frame_size: int = _LIMITS.max_frame_size
    max_header_count: int = _LIMITS.max_header_count
    max_header_length: int = _LIMITS.max_header_length
    max_subscriptions: int = _LIMITS.max_subscriptions
    max_transactions: int = _LIMITS.max_transactions
    max_transaction_frames: int = _LIMITS.max_transaction_frames
    max_pending_acks: int = _LIMITS.max_pending_acks
    #: Bytes queued for one client before it counts as a slow consumer and is closed.
    outbound_buffer_size: int = 512 * 1024
    #: Seconds one WebSocket send may take before the client counts as a slow consumer and is closed.
    send_timeout: float = 10.0
    #: Bytes of received, not yet processed input held for one client; past it the server stops reading from it.
    inbound_buffer_size: int = 1024 * 1024
    #: What extends the Django session: "none", "frames" (SEND/SUBSCRIBE/UNSUBSCRIBE) or "frames+heartbeats".
    activity: str = "none"
    #: At most one session extension per connection per this many seconds.
    touch_interval: float = 60.0
    #: Seconds between re-reads of the session store by each connection (heals dropped close events).
    revalidate_interval: float = 60.0
    #: Seconds before expiry to send an "expiring" notice on ``session_destination`` (None: never).
    expiry_notice: float | None = None
    #: User destination that receives session notices (a client subscribes to it).
    session_destination: str = "/user/queue/session"
    #: Require a ``X-CSRFToken`` header (the page's CSRF token) on CONNECT.
    csrf_check: bool = False
    #: Channel layer alias used for pushes and session closes.
    channel_layer: str = "default"
    #: Connections of one process that may wait for their CONNECT to be carried out; past it new ones are refused
    #: with ERROR "server busy", a jittered ``retry-after`` and close 1013.
    admission_limit: int = 2000
    #: Seconds over which a draining process spreads its clients' reconnects (``retry-after`` of "server restarting").
    drain_window: float = 10.0
    #: Drain (ERROR "server restarting", close 1012) on SIGTERM/SIGINT before the server's own shutdown.
    drain_on_signals: bool = True
    #: Seconds a request (a push from sync code, a logout's session-end broadcast) waits for the channel layer.
    layer_timeout: float = 1.0
    #: Seconds between re-joins of channel-layer groups (channels-redis forgets members after group_expiry).
    group_refresh_interval: float = 3600.0
    #: Destination prefixes.
    topic_prefix: str = "/topic/"
    user_prefix: str = "/user/"
    app_prefix: str = "/app/"
    #: Modules imported at start-up so their ``@handler`` registrations exist (e.g. "myapp.stomp_handlers").
    handler_modules: tuple[str, ...] = field(default_factory=tuple)

    @property
    def limits(self) -> Limits:
        return Limits(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Limits)})


_POSITIVE_INTS = (
    "max_frame_size",
    "max_header_count",
    "max_header_length",
    "max_subscriptions",
    "max_transactions",
    "max_transaction_frames",
    "max_pending_acks",
    "outbound_buffer_size",
    "inbound_buffer_size",
    "admission_limit",
)
_POSITIVE_NUMBERS = (
    "heartbeat_grace",
    "connect_timeout",
    "send_timeout",
    "touch_interval",
    "revalidate_interval",
    "group_refresh_interval",
    "layer_timeout",
    "drain_window",
)


def build_config(raw: dict[str, Any] | None) -> Config:
    """Validate a ``STOMP_PUSH`` dict and return the :class:`Config`; raises ImproperlyConfigured."""
    raw = dict(raw or {})
    known = {f.name for f in dataclasses.fields(Config)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.lower()
        if name not in known:
            raise ImproperlyConfigured(f"STOMP_PUSH[{key!r}] is not a setting of django-stomp-push")
        values[name] = value
    if "heartbeat" in values:
        hb = values["heartbeat"]
        if not (isinstance(hb, (tuple, list)) and len(hb) == 2 and all(_is_int(v) and v >= 0 for v in hb)):
            raise ImproperlyConfigured("STOMP_PUSH['HEARTBEAT'] must be a pair of milliseconds (send, receive) >= 0")
        values["heartbeat"] = (int(hb[0]), int(hb[1]))
    for name in _POSITIVE_INTS:
        if name in values and not (_is_int(values[name]) and values[name] > 0):
            raise ImproperlyConfigured(f"STOMP_PUSH[{name.upper()!r}] must be a positive integer")
    for name in _POSITIVE_NUMBERS:
        if name in values and not (_is_number(values[name]) and values[name] > 0):
            raise ImproperlyConfigured(f"STOMP_PUSH[{name.upper()!r}] must be a positive number of seconds")
    notice = values.get("expiry_notice")
    if notice is not None and not (_is_number(notice) and notice > 0):
        raise ImproperlyConfigured("STOMP_PUSH['EXPIRY_NOTICE'] must be None or a positive number of seconds")
    if values.get("activity", "none") not in ACTIVITY_POLICIES:
        raise ImproperlyConfigured(f"STOMP_PUSH['ACTIVITY'] must be one of {', '.join(ACTIVITY_POLICIES)}")
    for name in ("topic_prefix", "user_prefix", "app_prefix"):
        value = values.get(name)
        if value is not None and not (isinstance(value, str) and value.startswith("/") and value.endswith("/")):
            raise ImproperlyConfigured(f"STOMP_PUSH[{name.upper()!r}] must start and end with '/'")
    destination = values.get("session_destination", Config.session_destination)
    user_prefix = values.get("user_prefix", Config.user_prefix)
    if not (isinstance(destination, str) and destination.startswith(user_prefix)):
        raise ImproperlyConfigured(f"STOMP_PUSH['SESSION_DESTINATION'] must start with {user_prefix!r}")
    for name in ("allow_anonymous", "client_send_to_topics", "csrf_check", "drain_on_signals"):
        if name in values and not isinstance(values[name], bool):
            raise ImproperlyConfigured(f"STOMP_PUSH[{name.upper()!r}] must be True or False")
    authorize = values.get("authorize")
    if authorize is not None and not (isinstance(authorize, str) and authorize):
        raise ImproperlyConfigured("STOMP_PUSH['AUTHORIZE'] must be None or the dotted path of a function")
    if "channel_layer" in values and not (isinstance(values["channel_layer"], str) and values["channel_layer"]):
        raise ImproperlyConfigured("STOMP_PUSH['CHANNEL_LAYER'] must be the alias of a CHANNEL_LAYERS entry")
    if "handler_modules" in values:
        modules = values["handler_modules"]
        # A bare string would be split into one-letter module names.
        if not isinstance(modules, (list, tuple)) or not all(isinstance(m, str) and m for m in modules):
            raise ImproperlyConfigured("STOMP_PUSH['HANDLER_MODULES'] must be a list of dotted module paths")
        values["handler_modules"] = tuple(modules)
    return Config(**values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@lru_cache(maxsize=1)
def get_config() -> Config:
    """The project's :class:`Config` (cached; reset when ``STOMP_PUSH`` changes in tests)."""
    return build_config(getattr(settings, "STOMP_PUSH", None))


def _reset(setting: str, **kwargs: Any) -> None:
    if setting in ("STOMP_PUSH", "SECRET_KEY", "SESSION_ENGINE"):
        get_config.cache_clear()


setting_changed.connect(_reset)

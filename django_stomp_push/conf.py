"""Settings: one typed object built from ``settings.STOMP_PUSH``.

Every key is optional. :func:`get_config` validates the dict once (and again after ``override_settings``) and
raises :class:`SettingsError` (an ``ImproperlyConfigured``) naming every bad key at once; the system check
``stomp_push.E001`` reports one error per bad key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
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
    #: Unix socket of the machine's relay (``manage.py stomp_push_relay``): hubs receive through it, so Redis has one
    #: subscriber per machine instead of one per server process. None: each hub subscribes to Redis itself.
    relay: str | None = None
    #: Connections of one process that may wait for their CONNECT to be carried out; past it new ones are refused
    #: with ERROR "server busy", a jittered ``retry-after`` and close 1013.
    admission_limit: int = 2000
    #: Raise the garbage collector's thresholds while more than 64 connections wait for their CONNECT (a storm).
    defer_gc_in_storms: bool = True
    #: Seconds over which a draining process spreads its clients' reconnects (``retry-after`` of "server restarting").
    drain_window: float = 10.0
    #: Drain (ERROR "server restarting", close 1012) on SIGTERM/SIGINT before the server's own shutdown.
    drain_on_signals: bool = True
    #: Seconds a request (a push from sync code, a logout's session-end broadcast) waits for the channel layer.
    layer_timeout: float = 1.0
    #: Seconds between re-joins of channel-layer groups (channels-redis forgets members after group_expiry).
    group_refresh_interval: float = 3600.0
    #: Destination prefixes served with topic semantics (broadcast to every subscriber), like Spring's simple broker.
    broker_prefixes: tuple[str, ...] = ("/topic/",)
    #: Deprecated one-prefix form of ``broker_prefixes``; always its first entry.
    topic_prefix: str = "/topic/"
    #: Prefixes of per-user and of application (``@handler``) destinations.
    user_prefix: str = "/user/"
    app_prefix: str = "/app/"
    #: Modules imported at start-up so their ``@handler`` registrations exist (e.g. "myapp.stomp_handlers").
    handler_modules: tuple[str, ...] = field(default_factory=tuple)

    @property
    def limits(self) -> Limits:
        return Limits(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Limits)})


class SettingsError(ImproperlyConfigured):
    """Every invalid ``STOMP_PUSH`` value at once: :attr:`errors` has one message per bad key."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        if len(self.errors) == 1:
            text = self.errors[0]
        else:
            text = f"STOMP_PUSH has {len(self.errors)} invalid settings:\n" + "\n".join(f"- {e}" for e in self.errors)
        super().__init__(text)


class _Invalid(ValueError):
    """Why a value is invalid: the text that follows the key's name."""


def _positive_int(value: Any) -> int:
    if not (_is_int(value) and value > 0):
        raise _Invalid("must be a positive integer")
    return int(value)


def _positive_seconds(value: Any) -> float:
    if not (_is_number(value) and value > 0):
        raise _Invalid("must be a positive number of seconds")
    return value  # type: ignore[no-any-return]


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("must be True or False")
    return value


def _heartbeat(value: Any) -> tuple[int, int]:
    if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) and v >= 0 for v in value)):
        raise _Invalid("must be a pair of milliseconds (send, receive) >= 0")
    return int(value[0]), int(value[1])


def _expiry_notice(value: Any) -> float | None:
    if value is not None and not (_is_number(value) and value > 0):
        raise _Invalid("must be None or a positive number of seconds")
    return value  # type: ignore[no-any-return]


def _activity(value: Any) -> str:
    if value not in ACTIVITY_POLICIES:
        raise _Invalid(f"must be one of {', '.join(ACTIVITY_POLICIES)}")
    return value  # type: ignore[no-any-return]


def _is_prefix(value: Any) -> bool:
    return isinstance(value, str) and len(value) > 1 and value.startswith("/") and value.endswith("/")


def _prefix(value: Any) -> str:
    if not _is_prefix(value):
        raise _Invalid("must start and end with '/', such as '/topic/'")
    return value  # type: ignore[no-any-return]


def _prefixes(value: Any) -> tuple[str, ...]:
    # A bare string would be read as one prefix per character.
    if not isinstance(value, (list, tuple)) or not value:
        raise _Invalid("must be a non-empty list of prefixes, such as ['/topic/', '/queue/']")
    bad = [prefix for prefix in value if not _is_prefix(prefix)]
    if bad:
        raise _Invalid(
            f"must be prefixes such as '/queue/' (starting and ending with '/'), not {', '.join(map(repr, bad))}"
        )
    return tuple(value)


def _destination(value: Any) -> str:
    if not (isinstance(value, str) and value.startswith("/")):
        raise _Invalid("must be a destination starting with '/'")
    return value


def _authorize(value: Any) -> str | None:
    if value is not None and not (isinstance(value, str) and value):
        raise _Invalid("must be None or the dotted path of a function")
    return value


def _alias(value: Any) -> str:
    if not (isinstance(value, str) and value):
        raise _Invalid("must be the alias of a CHANNEL_LAYERS entry")
    return value


def _relay(value: Any) -> str | None:
    if value is None:
        return None
    if not (isinstance(value, str) and value.startswith("/") and "\x00" not in value and len(value) < 108):
        raise _Invalid("must be the absolute path of the relay's unix socket (shorter than 108 bytes), or None")
    return value


def _modules(value: Any) -> tuple[str, ...]:
    # A bare string would be split into one-letter module names.
    if not isinstance(value, (list, tuple)) or not all(isinstance(m, str) and m for m in value):
        raise _Invalid("must be a list of dotted module paths")
    return tuple(value)


_POSITIVE_INTS = (
    "max_frame_size max_header_count max_header_length max_subscriptions max_transactions max_transaction_frames "
    "max_pending_acks outbound_buffer_size inbound_buffer_size admission_limit"
).split()
_POSITIVE_SECONDS = (
    "heartbeat_grace connect_timeout send_timeout touch_interval revalidate_interval group_refresh_interval "
    "layer_timeout drain_window"
).split()
_RULES: dict[str, Callable[[Any], Any]] = {
    **dict.fromkeys(_POSITIVE_INTS, _positive_int),
    **dict.fromkeys(_POSITIVE_SECONDS, _positive_seconds),
    **dict.fromkeys(
        ("allow_anonymous", "client_send_to_topics", "csrf_check", "drain_on_signals", "defer_gc_in_storms"), _boolean
    ),
    **dict.fromkeys(("topic_prefix", "user_prefix", "app_prefix"), _prefix),
    "broker_prefixes": _prefixes,
    "session_destination": _destination,
    "heartbeat": _heartbeat,
    "expiry_notice": _expiry_notice,
    "activity": _activity,
    "authorize": _authorize,
    "channel_layer": _alias,
    "relay": _relay,
    "handler_modules": _modules,
}


def build_config(raw: Any) -> Config:
    """Validate a ``STOMP_PUSH`` value and return the :class:`Config`; :class:`SettingsError` (an
    ImproperlyConfigured) lists every invalid key at once."""
    values, errors = validate(raw)
    if errors:
        raise SettingsError(errors)
    return Config(**values)


def validate(raw: Any) -> tuple[dict[str, Any], list[str]]:
    """(the valid values by field name, one message per invalid key) of a ``STOMP_PUSH`` value.

    The valid values make a :class:`Config` even when other keys are invalid: the system checks go on with them.
    """
    if raw is None:
        return {}, []
    if not isinstance(raw, Mapping):
        return {}, [f"STOMP_PUSH must be a dict of settings, not {type(raw).__name__}"]
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}  # by key, upper-case
    given: set[str] = set()
    for key, value in raw.items():
        name = key.lower() if isinstance(key, str) else None
        if name is None or name not in _RULES:
            errors[str(key).upper()] = f"STOMP_PUSH[{key!r}] is not a setting of django-stomp-push"
            continue
        given.add(name)
        try:
            values[name] = _RULES[name](value)
        except _Invalid as reason:
            errors[name.upper()] = f"STOMP_PUSH[{name.upper()!r}] {reason}"
    _check_destinations(values, given, errors)
    return values, list(errors.values())


def _check_destinations(values: dict[str, Any], given: set[str], errors: dict[str, str]) -> None:
    """The rules between keys: BROKER_PREFIXES or its deprecated form TOPIC_PREFIX, no overlapping prefixes, a
    session destination under the user prefix. A key found invalid here leaves ``values``."""

    def bad(name: str, reason: str) -> None:
        errors[name.upper()] = f"STOMP_PUSH[{name.upper()!r}] {reason}"
        values.pop(name, None)

    if "topic_prefix" in given and "broker_prefixes" in given:
        bad("topic_prefix", "is the deprecated one-prefix form of BROKER_PREFIXES: set only BROKER_PREFIXES")
    elif "topic_prefix" in values:
        values["broker_prefixes"] = (values["topic_prefix"],)
    brokers_key = "broker_prefixes" if "broker_prefixes" in given or "topic_prefix" not in given else "topic_prefix"
    if brokers_key.upper() in errors:
        values.pop("broker_prefixes", None)
    user = values.get("user_prefix", Config.user_prefix)
    app = values.get("app_prefix", Config.app_prefix)
    others = {
        name: prefix for name, prefix in (("user_prefix", user), ("app_prefix", app)) if name.upper() not in errors
    }
    if len(others) == 2 and _overlap(user, app):
        bad("app_prefix", f"({app!r}) overlaps USER_PREFIX ({user!r}): a destination would have two meanings")
        others.pop("app_prefix")
    if brokers_key.upper() not in errors:
        brokers = values.get("broker_prefixes", Config.broker_prefixes)
        clashes: list[tuple[str, str, str | None]] = [
            (a, b, None) for i, a in enumerate(brokers) for b in brokers[i + 1 :] if _overlap(a, b)
        ]
        clashes += [(a, prefix, name) for a in brokers for name, prefix in others.items() if _overlap(a, prefix)]
        blamed: dict[str, list[str]] = {}
        for a, b, other in clashes:
            # The key the project set takes the blame; between two broker prefixes, the broker setting.
            name = brokers_key if other is None or brokers_key in given else other
            label = brokers_key.upper()
            blamed.setdefault(name, []).append(f"{a!r} ({label}) and {b!r} ({(other or label).upper()})")
        for name, pairs in blamed.items():
            bad(name, "has prefixes that overlap: " + "; ".join(pairs) + " (no prefix may start with another)")
            if name == brokers_key:
                values.pop("broker_prefixes", None)
    if "broker_prefixes" in values:
        values["topic_prefix"] = values["broker_prefixes"][0]
    else:
        values.pop("topic_prefix", None)
    destination = values.get("session_destination", Config.session_destination)
    if "USER_PREFIX" not in errors and "SESSION_DESTINATION" not in errors and not destination.startswith(user):
        bad("session_destination", f"must start with {user!r} (USER_PREFIX)")


def _overlap(a: str, b: str) -> bool:
    """Whether a destination could be under both prefixes."""
    return a.startswith(b) or b.startswith(a)


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

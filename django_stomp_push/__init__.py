"""django-stomp-push: STOMP 1.0/1.1/1.2 over WebSocket for Django Channels, bound to the Django session.

The public API::

    from django_stomp_push import push, push_to_user, end_session, handler

    push("/topic/prices", {"EURUSD": 1.0842})                  # every subscriber, every server
    push_to_user(request.user, "/queue/notices", "Saved.")    # that user's /user/queue/notices
    end_session(session_key)                                  # ERROR + close 1008 on every server

Importing the package imports neither Django nor Channels: each name is loaded on first use, so the sans-IO
protocol (:mod:`django_stomp_push.stomp`) works with the standard library alone.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core.admission import adrain, drain
    from .handlers import Message, handler
    from .push import (
        aend_session,
        aend_sessions,
        apush,
        apush_to_user,
        end_session,
        end_sessions,
        push,
        push_to_user,
    )

__version__ = "0.1.0"

__all__ = [
    "Message",
    "adrain",
    "aend_session",
    "aend_sessions",
    "apush",
    "apush_to_user",
    "drain",
    "end_session",
    "end_sessions",
    "handler",
    "push",
    "push_to_user",
]

# public name -> the submodule that defines it
_HOMES = {
    "Message": "handlers",
    "handler": "handlers",
    "drain": "core.admission",
    "adrain": "core.admission",
    "aend_session": "push",
    "aend_sessions": "push",
    "apush": "push",
    "apush_to_user": "push",
    "end_session": "push",
    "end_sessions": "push",
    "push": "push",
    "push_to_user": "push",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """The package module, whose public names never turn into submodules.

    Importing a submodule binds it as an attribute of its package: the first ``import django_stomp_push.push``
    (by the consumer, say) would hide the function ``push`` behind the module of the same name.
    """

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and name in _HOMES:
            return  # the submodule stays in sys.modules; the name resolves to the function (see __getattr__)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

"""django-stomp-push: STOMP 1.0/1.1/1.2 over WebSocket for Django Channels, bound to the Django session.

The public API::

    from django_stomp_push import push, push_to_user, end_session, handler

    push("/topic/prices", {"EURUSD": 1.0842})                  # every subscriber, every server
    push_to_user(request.user, "/queue/notices", "Saved.")    # that user's /user/queue/notices
    end_session(session_key)                                  # ERROR + close 1008 on every server
"""

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
    "aend_session",
    "aend_sessions",
    "apush",
    "apush_to_user",
    "end_session",
    "end_sessions",
    "handler",
    "push",
    "push_to_user",
]

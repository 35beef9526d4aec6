"""An AUTHORIZE hook a real server runs in the broker-prefix tests (through ``STOMP_PUSH_JSON``)."""


def authorize(user, action: str, destination: str) -> bool:
    """``/queue/private/...`` is refused to everyone; everything else is open."""
    return not destination.startswith("/queue/private/")

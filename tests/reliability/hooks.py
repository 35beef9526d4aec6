"""Project hooks the attack tests configure on a real server (through ``STOMP_PUSH_JSON``)."""


def authorize(user, action: str, destination: str) -> bool:
    """Only staff may use ``/topic/staff/...``; everything else is open (the demo users are not staff)."""
    return not destination.startswith("/topic/staff/") or bool(getattr(user, "is_staff", False))

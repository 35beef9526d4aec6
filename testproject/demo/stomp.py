"""The demo's application destinations (imported through STOMP_PUSH["HANDLER_MODULES"])."""

from django.utils import timezone

from django_stomp_push import Message, handler


@handler("/app/echo")
def echo(message: Message) -> dict:
    """Reply to the sender with what it sent, who it is and the server time."""
    return {
        "echo": message.text,
        "user": message.user.get_username() if message.user.is_authenticated else None,
        "at": timezone.now().isoformat(),
    }

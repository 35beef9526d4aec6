"""Application destinations used by the tests."""

from django_stomp_push import Message, apush, handler


@handler("/app/echo-async")
async def echo_async(message: Message) -> str:
    return "async:" + message.text


@handler("/app/rooms/{room}")
async def room(message: Message) -> None:
    await apush(f"/topic/rooms/{message.params['room']}", message.text)


@handler("/app/fail")
def fail(message: Message) -> None:
    raise RuntimeError("handler failure on purpose")

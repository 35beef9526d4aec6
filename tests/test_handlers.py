"""Handlers for client SENDs to /app/ destinations: registration, routing, the Message a handler sees, replies."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth import get_user_model

from django_stomp_push import Message, handler
from django_stomp_push.handlers import resolve, unregister
from tests.test_consumer import connected, sign_in, subscribe

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def registered():
    """Register handlers for one test: ``registered(destination, func)``; all are forgotten afterwards."""
    destinations: list[str] = []

    def register(destination, func):
        handler(destination)(func)
        destinations.append(destination)
        return func

    yield register
    for destination in destinations:
        unregister(destination)


@pytest.fixture
async def key(alice, login):
    return await sign_in(alice, login)


@pytest.fixture
async def client(key):
    client = await connected(key)
    await subscribe(client, "/user/queue/reply", "reply")
    yield client
    await client.close()


# -- registration and routing --------------------------------------------------------------------------------


def test_handler_modules_are_imported_at_start_up():
    assert resolve("/app/echo") is not None  # demo.stomp, listed in STOMP_PUSH["HANDLER_MODULES"]
    assert resolve("/app/echo-async") is not None  # tests.handlers


def test_an_exact_destination_resolves_with_no_params(registered):
    func = registered("/app/t/exact", lambda m: None)
    found = resolve("/app/t/exact")
    assert found is not None and found[0].func is func and found[1] == {}


def test_a_placeholder_matches_one_segment_and_is_passed_as_a_param(registered):
    registered("/app/t/{room}/say/{who}", lambda m: None)
    assert resolve("/app/t/blue/say/bob")[1] == {"room": "blue", "who": "bob"}
    assert resolve("/app/t/blue/green/say/bob") is None
    assert resolve("/app/t//say/bob") is None
    assert resolve("/app/t/blue/say/bob/more") is None


def test_an_exact_registration_wins_over_a_pattern(registered):
    registered("/app/t/{room}", lambda m: "pattern")
    exact = registered("/app/t/lobby", lambda m: "exact")
    assert resolve("/app/t/lobby")[0].func is exact


def test_pattern_characters_outside_placeholders_are_literal(registered):
    registered("/app/t/a.b+c", lambda m: None)
    assert resolve("/app/t/a.b+c") is not None
    assert resolve("/app/t/aXb+c") is None
    assert resolve("/app/t/a.bbc") is None


def test_an_unknown_destination_resolves_to_none():
    assert resolve("/app/never-registered") is None


def test_a_handler_outside_the_application_prefix_is_refused():
    with pytest.raises(ValueError, match="/app/"):
        handler("/topic/x")


def test_unregister_forgets_a_handler(registered):
    registered("/app/t/gone", lambda m: None)
    unregister("/app/t/gone")
    assert resolve("/app/t/gone") is None


# -- what a handler sees -------------------------------------------------------------------------------------


async def test_a_handler_sees_the_frame_the_user_the_session_and_the_params(registered, client, key):
    seen = {}

    def inspect(message: Message) -> None:
        seen.update(
            destination=message.destination,
            body=message.body,
            text=message.text,
            json=message.json(),
            header=message.headers.get("x-custom"),
            params=message.params,
            user=message.user.get_username(),
            session=message.session.session_key,
            reply_to=message.reply_to,
        )

    registered("/app/t/inspect/{item}", inspect)
    await client.send(
        "SEND", {"destination": "/app/t/inspect/42", "x-custom": "yes", "receipt": "done"}, '{"qty": 3, "n": "é"}'
    )
    assert (await client.receive()).headers["receipt-id"] == "done"
    assert seen == {
        "destination": "/app/t/inspect/42",
        "body": '{"qty": 3, "n": "é"}'.encode(),
        "text": '{"qty": 3, "n": "é"}',
        "json": {"qty": 3, "n": "é"},
        "header": "yes",
        "params": {"item": "42"},
        "user": "alice",
        "session": key,
        "reply_to": "/user/queue/reply",
    }


async def test_a_sync_handler_runs_in_a_worker_thread_and_may_use_the_orm(registered, client):
    def count_users(message: Message) -> dict:
        return {
            "users": get_user_model().objects.count(),
            "main": threading.current_thread() is threading.main_thread(),
        }

    registered("/app/t/count", count_users)
    await client.send("SEND", {"destination": "/app/t/count"})
    assert (await client.receive()).body == b'{"users":1,"main":false}'


async def test_an_async_handler_runs_on_the_event_loop(registered, client):
    async def where(message: Message) -> str:
        return threading.current_thread().name

    registered("/app/t/where", where)
    await client.send("SEND", {"destination": "/app/t/where"})
    assert (await client.receive()).body == threading.current_thread().name.encode()


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_a_handler_returning_none_sends_no_reply(registered, client, is_async):
    async def nothing_async(message: Message) -> None:
        return None

    registered("/app/t/quiet", nothing_async if is_async else (lambda message: None))
    await client.send("SEND", {"destination": "/app/t/quiet", "receipt": "r"})
    assert (await client.receive()).command == "RECEIPT"
    assert await client.nothing_received()


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_a_handler_may_reply_several_times_with_headers(registered, client, is_async):
    def reply_twice(message: Message) -> None:
        message.reply("first", headers={"x-n": "1"})
        message.reply({"second": True}, headers={"x-n": "2"})

    async def reply_twice_async(message: Message) -> None:
        reply_twice(message)

    registered("/app/t/twice", reply_twice_async if is_async else reply_twice)
    await client.send("SEND", {"destination": "/app/t/twice", "receipt": "r"})
    first, second = await client.receive(), await client.receive()
    assert (first.body, first.headers["x-n"]) == (b"first", "1")
    assert (second.body, second.headers["x-n"], second.headers["content-type"]) == (
        b'{"second":true}',
        "2",
        "application/json",
    )
    assert (await client.receive()).headers["receipt-id"] == "r"


async def test_a_reply_to_an_unsubscribed_destination_is_dropped(registered, client):
    registered("/app/t/answer", lambda message: "unheard")
    await client.send("SEND", {"destination": "/app/t/answer", "reply-to": "/user/queue/elsewhere", "receipt": "r"})
    assert (await client.receive()).headers["receipt-id"] == "r"
    assert await client.nothing_received()


async def test_a_handler_that_raises_on_invalid_json_closes_with_1011(registered, client):
    registered("/app/t/json", lambda message: message.json())
    await client.send("SEND", {"destination": "/app/t/json"}, "not json")
    error, code = await client.receive_error()
    assert (error.headers["message"], code) == ("internal server error", 1011)

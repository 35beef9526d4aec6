"""The push API: bodies and content types, headers, MESSAGE frames, escaping per version, sync and async calls,
and how the sync calls wait for the channel layer (one loop thread per process, LAYER_TIMEOUT)."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import BaseChannelLayer
from django.test import override_settings

from django_stomp_push import apush, apush_to_user, end_session, end_sessions, push, push_to_user, sync_layer
from django_stomp_push.destinations import HUBS_GROUP, DestinationError, session_group, session_hash
from django_stomp_push.layers import get_layer
from django_stomp_push.push import END_SESSIONS_BATCH, RESERVED_HEADERS, encode_body
from django_stomp_push.stomp import Frame, encode
from tests.test_consumer import connected, sign_in, subscribe

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def client(alice, login):
    client = await connected(await sign_in(alice, login))
    await subscribe(client, "/topic/p", "sub-p")
    yield client
    await client.close()


async def raw_message(client) -> dict:
    """The next WebSocket message the server sends, as it is on the wire."""
    message = await client.communicator.receive_output(timeout=2)
    assert message["type"] == "websocket.send", message
    return message


# -- bodies --------------------------------------------------------------------------------------------------


async def test_a_str_body_is_text_plain_utf8_with_its_length_in_bytes(client):
    await apush("/topic/p", "héllo ✓")
    message = await client.receive()
    assert message.body == "héllo ✓".encode()
    assert message.headers["content-type"] == "text/plain;charset=utf-8"
    assert message.headers["content-length"] == str(len("héllo ✓".encode()))


async def test_a_str_body_is_sent_as_a_text_websocket_message(client):
    await apush("/topic/p", "text")
    message = await raw_message(client)
    assert message.get("bytes") is None and message["text"].endswith("\n\ntext\x00")


async def test_a_bytes_body_is_octet_stream_sent_as_a_binary_websocket_message(client):
    body = b"\x00\xff\x01binary\x00"
    await apush("/topic/p", body)
    message = await raw_message(client)
    assert message.get("text") is None
    assert message["bytes"].endswith(b"\n\n" + body + b"\x00")
    frame = client.parser.feed(message["bytes"])[0]
    assert frame.body == body
    assert frame.headers["content-type"] == "application/octet-stream"
    assert frame.headers["content-length"] == str(len(body))


@pytest.mark.parametrize(
    ("body", "encoded"),
    [
        ({"price": 1.5, "ok": True}, '{"price":1.5,"ok":true}'),
        ([1, "two", None], '[1,"two",null]'),
        (
            {"when": datetime.date(2024, 1, 2), "amount": decimal.Decimal("1.10")},
            '{"when":"2024-01-02","amount":"1.10"}',
        ),
        ({"text": "ünï"}, '{"text":"\\u00fcn\\u00ef"}'),
    ],
)
async def test_any_other_body_is_json(client, body, encoded):
    await apush("/topic/p", body)
    message = await client.receive()
    assert message.headers["content-type"] == "application/json"
    assert message.body == encoded.encode()
    assert message.headers["content-length"] == str(len(encoded.encode()))
    assert json.loads(message.body) == json.loads(encoded)


async def test_a_body_that_is_not_json_serialisable_is_a_type_error():
    with pytest.raises(TypeError, match="JSON"):
        await apush("/topic/p", object())


async def test_an_explicit_content_type_wins(client):
    await apush("/topic/p", "<b>hi</b>", content_type="text/html")
    assert (await client.receive()).headers["content-type"] == "text/html"


def test_encode_body_picks_the_content_type():
    assert encode_body("x") == ("x", "text/plain;charset=utf-8")
    assert encode_body(bytearray(b"x")) == (b"x", "application/octet-stream")
    assert encode_body(memoryview(b"x")) == (b"x", "application/octet-stream")
    assert encode_body({"a": 1}) == ('{"a":1}', "application/json")
    assert encode_body("x", "text/csv") == ("x", "text/csv")


# -- headers -------------------------------------------------------------------------------------------------


async def test_custom_headers_are_forwarded(client):
    await apush("/topic/p", "x", headers={"x-trace": "abc", "priority": 9})
    message = await client.receive()
    assert (message.headers["x-trace"], message.headers["priority"]) == ("abc", "9")


@pytest.mark.parametrize("header", sorted(RESERVED_HEADERS))
async def test_a_push_cannot_set_a_header_the_server_sets(header):
    with pytest.raises(ValueError, match=header):
        await apush("/topic/p", "x", headers={header: "forged"})


@pytest.mark.parametrize("header", ["subscription", "message-id", "destination"])
async def test_a_user_push_cannot_set_a_header_the_server_sets(alice, header):
    with pytest.raises(ValueError, match=header):
        await apush_to_user(alice, "/queue/x", "x", headers={header: "forged"})


# A NUL ends a STOMP frame; an empty name cannot be parsed back. (headers, what the error names)
FRAME_BREAKING_HEADERS = [
    ({"x-note": "before\x00after"}, "'x-note'"),
    ({"x-\x00note": "v"}, repr("x-\x00note")),
    ({"": "v"}, "empty name"),
]


@pytest.mark.parametrize(("headers", "named"), FRAME_BREAKING_HEADERS)
async def test_a_header_that_would_break_the_frame_is_a_value_error_naming_it(alice, headers, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        await apush("/topic/p", "x", headers=headers)
    with pytest.raises(ValueError, match=re.escape(named)):
        await apush_to_user(alice, "/queue/x", "x", headers=headers)


@pytest.mark.parametrize(("headers", "named"), FRAME_BREAKING_HEADERS)
def test_a_sync_push_with_a_header_that_would_break_the_frame_is_a_value_error(alice, headers, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        push("/topic/p", "x", headers=headers)
    with pytest.raises(ValueError, match=re.escape(named)):
        push_to_user(alice, "/queue/x", "x", headers=headers)


# -- MESSAGE frames ------------------------------------------------------------------------------------------


async def test_a_message_frame_has_destination_message_id_subscription_type_and_length(client):
    await apush("/topic/p", "abc")
    message = await client.receive()
    assert message.command == "MESSAGE"
    assert message.headers["destination"] == "/topic/p"
    assert message.headers["subscription"] == "sub-p"
    assert message.headers["message-id"]
    assert message.headers["content-type"] == "text/plain;charset=utf-8"
    assert message.headers["content-length"] == "3"


async def test_message_ids_are_unique_per_connection(client):
    await subscribe(client, "/topic/q", "sub-q")
    for n in range(20):
        await apush("/topic/p" if n % 2 else "/topic/q", str(n))
    ids = [(await client.receive()).headers["message-id"] for _ in range(20)]
    assert len(set(ids)) == 20


async def test_pushes_arrive_in_order(client):
    for n in range(50):
        await apush("/topic/p", str(n))
    assert [int((await client.receive()).body) for _ in range(50)] == list(range(50))


# -- destinations --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("destination", ["/user/queue/x", "/app/echo", "/queue/x", "/topic/", "prices"])
async def test_push_to_anything_but_a_topic_is_a_destination_error(destination):
    with pytest.raises(DestinationError):
        await apush(destination, "x")


def test_sync_push_to_a_non_topic_is_a_destination_error():
    with pytest.raises(DestinationError):
        push("/user/queue/x", "x")


# -- escaping per version ------------------------------------------------------------------------------------

AWKWARD = {"x-note": "a:b\nc\\d", "x-colon:name": "v"}


async def versioned(user, login, version: str):
    """A client of STOMP ``version`` subscribed to ``/topic/esc:aped`` (written as that version writes it)."""
    client = await connected(await sign_in(user, login), version)
    headers = {"id": "s1", "destination": "/topic/esc:aped", "receipt": "r"}
    await client.send_raw(encode(Frame("SUBSCRIBE", headers), version))
    assert (await client.receive()).command == "RECEIPT"
    return client


async def test_stomp_1_2_escapes_header_names_and_values(alice, login):
    client = await versioned(alice, login, "1.2")
    await apush("/topic/esc:aped", "x", headers={**AWKWARD, "x-cr": "a\rb"})
    text = (await raw_message(client))["text"]
    assert "\nx-note:a\\cb\\nc\\\\d\n" in text
    assert "\nx-colon\\cname:v\n" in text
    assert "\nx-cr:a\\rb\n" in text
    assert "\ndestination:/topic/esc\\caped\n" in text
    await client.close()


async def test_stomp_1_2_headers_read_back_as_pushed(alice, login):
    client = await versioned(alice, login, "1.2")
    await apush("/topic/esc:aped", "x", headers=AWKWARD)
    message = await client.receive()
    assert message.headers["x-note"] == AWKWARD["x-note"]
    assert message.headers["x-colon:name"] == "v"
    assert message.headers["destination"] == "/topic/esc:aped"
    await client.close()


async def test_stomp_1_1_escapes_colon_newline_and_backslash(alice, login):
    client = await versioned(alice, login, "1.1")
    await apush("/topic/esc:aped", "x", headers=AWKWARD)
    text = (await raw_message(client))["text"]
    assert "\nx-note:a\\cb\\nc\\\\d\n" in text
    assert "\nx-colon\\cname:v\n" in text
    assert "\ndestination:/topic/esc\\caped\n" in text
    await client.close()


async def test_stomp_1_0_does_not_escape_but_keeps_the_frame_well_formed(alice, login):
    client = await versioned(alice, login, "1.0")
    await apush("/topic/esc:aped", "x", headers=AWKWARD)
    text = (await raw_message(client))["text"]
    assert "\nx-note:a:b c\\d\n" in text  # 1.0 cannot carry a newline in a value
    assert "\ndestination:/topic/esc:aped\n" in text
    assert "\\c" not in text
    await client.close()


async def test_subscribers_of_different_versions_each_get_their_own_escaping(alice, bob, login):
    v10 = await versioned(alice, login, "1.0")
    v12 = await versioned(bob, login, "1.2")
    await apush("/topic/esc:aped", "x", headers={"x-note": "a:b"})
    assert "\nx-note:a:b\n" in (await raw_message(v10))["text"]
    assert "\nx-note:a\\cb\n" in (await raw_message(v12))["text"]
    await v10.close()
    await v12.close()


# -- sync API and push_to_user ---------------------------------------------------------------------------------


async def test_the_sync_push_works_from_sync_code(client):
    await database_sync_to_async(push)("/topic/p", {"from": "a view"})
    assert json.loads((await client.receive()).body) == {"from": "a view"}


async def test_the_sync_push_to_user_works_from_sync_code(alice, client):
    await subscribe(client, "/user/queue/notices", "n")
    await database_sync_to_async(push_to_user)(alice, "/queue/notices", "saved", headers={"x-kind": "info"})
    message = await client.receive()
    assert (message.headers["destination"], message.headers["subscription"]) == ("/user/queue/notices", "n")
    assert (message.body, message.headers["x-kind"]) == (b"saved", "info")


async def test_push_to_user_accepts_a_primary_key(alice, client):
    await subscribe(client, "/user/queue/notices", "n")
    await apush_to_user(alice.pk, "/user/queue/notices", b"\x01")
    message = await client.receive()
    assert (message.body, message.headers["content-type"]) == (b"\x01", "application/octet-stream")


async def test_a_push_with_no_subscriber_is_a_no_op():
    await apush("/topic/nobody-listens", "x")


async def test_pushes_from_eight_threads_at_once_all_arrive_in_each_threads_order(client):
    barrier = threading.Barrier(8)

    def pushes(thread: int) -> None:
        barrier.wait()
        for n in range(25):
            push("/topic/p", f"{thread}:{n}")

    threads = [threading.Thread(target=pushes, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    await asyncio.to_thread(lambda: [thread.join() for thread in threads])
    arrived: dict[str, list[int]] = {}
    for _ in range(200):
        thread, _, n = (await client.receive()).body.decode().partition(":")
        arrived.setdefault(thread, []).append(int(n))
    assert arrived == {str(t): list(range(25)) for t in range(8)}


@pytest.mark.parametrize(
    ("call", "instead"),
    [
        pytest.param(lambda: push("/topic/p", "x"), "apush", id="push"),
        pytest.param(lambda: push_to_user(1, "/queue/x", "x"), "apush_to_user", id="push_to_user"),
        pytest.param(lambda: end_session("some-key"), "aend_session", id="end_session"),
        pytest.param(lambda: end_sessions(["a", "b"]), "aend_sessions", id="end_sessions"),
    ],
)
async def test_a_sync_call_in_an_event_loops_thread_is_a_clear_error_not_a_deadlock(call, instead):
    with pytest.raises(RuntimeError, match=rf"thread that runs an event loop.*'await {instead}\(\.\.\.\)'"):
        call()


# -- sync calls and the channel layer's answer time ---------------------------------------------------------


class ScriptedLayer(BaseChannelLayer):
    """A channel layer whose group sends do what :attr:`script` says, in turn: "hang" (10 s, so that a regression
    fails instead of blocking the suite), "fail" (ConnectionError), a number of seconds to take, or (once the
    script is used up) succeed at once."""

    extensions = ["groups"]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.script: list[str | float] = []
        self.sent: list[tuple[str, dict]] = []
        self.where: list[tuple[threading.Thread, asyncio.AbstractEventLoop]] = []
        self.cancelled = threading.Event()

    async def group_send(self, group: str, message: dict) -> None:
        self.where.append((threading.current_thread(), asyncio.get_running_loop()))
        action = self.script.pop(0) if self.script else 0.0
        if action == "fail":
            raise ConnectionError("scripted failure")
        try:
            await asyncio.sleep(10.0 if action == "hang" else float(action))
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        self.sent.append((group, message))

    def wait_for_sent(self, count: int, timeout: float = 5.0) -> list[tuple[str, dict]]:
        deadline = time.monotonic() + timeout
        while len(self.sent) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.sent


SCRIPTED = {"default": {"BACKEND": "tests.test_push.ScriptedLayer"}}
LAYER_TIMEOUT = 0.2


@contextmanager
def scripted() -> Iterator[ScriptedLayer]:
    """The channel layer is a :class:`ScriptedLayer`; LAYER_TIMEOUT 0.2 s, REVALIDATE_INTERVAL 1 s."""
    with override_settings(
        CHANNEL_LAYERS=SCRIPTED, STOMP_PUSH={"LAYER_TIMEOUT": LAYER_TIMEOUT, "REVALIDATE_INTERVAL": 1.0}
    ):
        yield get_layer()


@pytest.fixture
def scripted_layer():
    with scripted() as layer:
        yield layer


def pretend_forked(monkeypatch) -> None:
    """Make the sync calls see another process id, as a forked child would (no loop thread of its own yet)."""
    fake = os.getpid() + 1_000_000
    monkeypatch.setattr(os, "getpid", lambda: fake)


@pytest.fixture
def new_process(monkeypatch):
    pretend_forked(monkeypatch)


@pytest.fixture
def quick_retries(monkeypatch):
    monkeypatch.setattr(sync_layer, "RETRY_PAUSES", (0.05,))


def test_sync_sends_of_a_process_run_on_one_long_lived_loop_thread(scripted_layer):
    push("/topic/a", "1")
    push_to_user(7, "/queue/b", "2")
    end_session("some-key")
    assert len(set(scripted_layer.where)) == 1
    thread, loop = scripted_layer.where[0]
    assert thread is not threading.current_thread() and thread.daemon and not loop.is_closed()


def test_a_forked_child_starts_a_loop_thread_of_its_own(scripted_layer, monkeypatch):
    push("/topic/a", "parent")
    pretend_forked(monkeypatch)
    push("/topic/a", "child")
    push("/topic/a", "child again")
    parent, child, child_again = scripted_layer.where
    assert child[0] is not parent[0] and child[1] is not parent[1]
    assert child_again == child


def test_threads_that_send_first_at_once_share_one_new_loop_thread(scripted_layer, new_process):
    barrier = threading.Barrier(8)

    def pushes() -> None:
        barrier.wait()
        push("/topic/a", "x")

    threads = [threading.Thread(target=pushes) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(scripted_layer.sent) == 8 and len(set(scripted_layer.where)) == 1


FORKED = """
import os, time, django
django.setup()
from django_stomp_push import push

push("/topic/x", "from the parent")  # the parent's loop thread exists now; the child will not have it
pid = os.fork()
if pid == 0:
    started = time.monotonic()
    try:
        push("/topic/x", "from the child")
    except BaseException as exc:
        print(f"child: {type(exc).__name__}: {exc}", flush=True)
        os._exit(1)
    os._exit(0 if time.monotonic() - started < 0.5 else 2)
_, status = os.waitpid(pid, 0)
push("/topic/x", "from the parent again")
print("child exit", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_sync_push_works_in_a_really_forked_child():
    repo = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": os.pathsep.join([str(repo), str(repo / "testproject")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", FORKED], env=env, cwd=repo, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "child exit 0" in result.stdout, result.stdout + result.stderr


def test_a_sync_push_the_layer_does_not_take_in_time_is_cancelled_with_a_timeout_error(scripted_layer):
    scripted_layer.script = ["hang"]
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"channel layer 'default' .*LAYER_TIMEOUT \(0.2 s\).*cancelled"):
        push("/topic/a", "late")
    assert time.monotonic() - started < LAYER_TIMEOUT + 0.5
    assert scripted_layer.cancelled.wait(2)
    assert scripted_layer.sent == []


def test_a_layer_error_reaches_the_caller_of_a_sync_push(scripted_layer):
    scripted_layer.script = ["fail"]
    with pytest.raises(ConnectionError, match="scripted"):
        push("/topic/a", "x")


def test_end_session_returns_true_once_the_close_is_sent(scripted_layer):
    assert end_session("some-key", "logged out") is True
    key = session_hash("some-key")
    assert scripted_layer.sent == [
        (session_group(key), {"type": "stomp_push.end_sessions", "sessions": [key], "reason": "logged out"})
    ]


def test_end_session_returns_within_the_layer_timeout_and_the_close_is_sent_when_the_layer_answers(
    scripted_layer, caplog
):
    scripted_layer.script = [0.6]
    started = time.monotonic()
    with caplog.at_level(logging.INFO, "django_stomp_push"):
        assert end_session("some-key", "logged out") is False
        assert time.monotonic() - started < LAYER_TIMEOUT + 0.3
        assert len(scripted_layer.wait_for_sent(1)) == 1
        time.sleep(0.05)
    assert "broadcast a session end (logged out) after 0.6 s, at attempt 1" in caplog.text


def test_end_session_is_retried_in_the_background_while_the_layer_fails(scripted_layer, quick_retries, caplog):
    scripted_layer.script = ["fail", "fail"]
    with caplog.at_level(logging.INFO, "django_stomp_push"):
        assert end_session("some-key") is False
        assert len(scripted_layer.wait_for_sent(1)) == 1
        time.sleep(0.05)
    assert len(scripted_layer.where) == 3
    assert "at attempt 3" in caplog.text


def test_end_session_gives_up_after_the_revalidate_interval_logging_once(scripted_layer, quick_retries, caplog):
    scripted_layer.script = ["fail"] * 1000
    with caplog.at_level(logging.INFO, "django_stomp_push"):
        assert end_session("some-key", "logged out") is False
        deadline = time.monotonic() + 3
        while "could not broadcast" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        attempts = len(scripted_layer.where)
        time.sleep(0.3)
    records = [r for r in caplog.records if r.name == "django_stomp_push"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    assert "could not broadcast a session end (logged out) within 1 s" in records[0].getMessage()
    assert "ConnectionError: scripted failure" in records[0].getMessage()
    assert len(scripted_layer.where) == attempts > 2  # no attempt after giving up


def test_past_the_bound_a_session_end_is_dropped_at_once_with_one_warning(
    scripted_layer, new_process, monkeypatch, caplog
):
    monkeypatch.setattr(sync_layer, "MAX_BACKGROUND_SENDS", 2)  # read when the (new process's) loop starts
    scripted_layer.script = ["hang", "hang"]
    assert end_session("a") is False and end_session("b") is False
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "django_stomp_push"):
        assert end_session("c") is False
        assert end_session("d") is False
    assert time.monotonic() - started < LAYER_TIMEOUT
    assert caplog.text.count("2 broadcasts are waiting for the channel layer already") == 1
    assert len(scripted_layer.where) == 2


def test_end_sessions_sends_one_message_per_batch_of_keys(scripted_layer):
    keys = [f"key-{n}" for n in range(2 * END_SESSIONS_BATCH + 1)]
    assert end_sessions(keys, "session expired") is True
    assert [group for group, _ in scripted_layer.sent] == [HUBS_GROUP] * 3
    sent = [key for _, message in scripted_layer.sent for key in message["sessions"]]
    assert sent == [session_hash(key) for key in keys]

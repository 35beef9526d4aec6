"""Destinations: classification, group names that reveal nothing, /user/ isolation, the authorization hook."""

from __future__ import annotations

import re

import pytest
from django.test import override_settings

from django_stomp_push import apush, apush_to_user
from django_stomp_push.destinations import (
    DestinationError,
    Kind,
    authorize,
    classify,
    destination_group,
    keyed_hash,
    session_group,
    session_hash,
    session_hashes,
    user_destination,
    user_group,
    user_hash,
)
from django_stomp_push.hub import get_hub
from tests.test_consumer import (
    POLICY_VIOLATION,
    connected,
    expect_error,
    sign_in,
    stomp_settings,
    subscribe,
)

pytestmark = pytest.mark.django_db(transaction=True)

GROUP_NAME = re.compile(r"\Astomp_push\.[a-z]\.[0-9a-f]{32}\Z")


# -- classification ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "kind"),
    [
        ("/topic/prices", Kind.TOPIC),
        ("/topic/a/b/c", Kind.TOPIC),
        ("/user/queue/x", Kind.USER),
        ("/app/echo", Kind.APP),
    ],
)
def test_a_destination_is_classified_by_its_prefix(destination, kind):
    assert classify(destination) is kind


@pytest.mark.parametrize(
    "destination",
    ["", "/topic/", "/user/", "/app/", "/queue/x", "topic/x", "/topics/x", "/TOPIC/x", "/topic/" + "x" * 1020],
)
def test_a_destination_outside_the_prefixes_or_too_long_is_a_destination_error(destination):
    with pytest.raises(DestinationError):
        classify(destination)


def test_prefixes_come_from_the_settings():
    prefixes = {"topic_prefix": "/exchange/", "user_prefix": "/me/", "app_prefix": "/rpc/"}
    with stomp_settings(**prefixes, session_destination="/me/queue/session"):
        assert classify("/exchange/x") is Kind.TOPIC
        assert classify("/me/queue/x") is Kind.USER
        assert classify("/rpc/x") is Kind.APP
        with pytest.raises(DestinationError):
            classify("/topic/x")


BROKERS = ("/topic/", "/queue/")


@pytest.mark.parametrize(
    ("destination", "kind"),
    [
        ("/topic/prices", Kind.TOPIC),
        ("/queue/orders", Kind.TOPIC),
        ("/queue/a/b", Kind.TOPIC),
        ("/user/queue/orders", Kind.USER),  # a user destination still, though /queue/ is a broker prefix
        ("/user/topic/x", Kind.USER),
        ("/app/echo", Kind.APP),
    ],
)
def test_each_broker_prefix_is_served_with_topic_semantics(destination, kind):
    with stomp_settings(broker_prefixes=BROKERS):
        assert classify(destination) is kind


@pytest.mark.parametrize("destination", ["/queue/", "/queues/x", "/exchange/x", "queue/x"])
def test_destinations_outside_every_broker_prefix_are_still_refused(destination):
    with stomp_settings(broker_prefixes=BROKERS):
        with pytest.raises(DestinationError, match="/topic/, /queue/, /user/, /app/"):
            classify(destination)


def test_each_broker_destination_has_its_own_group():
    assert destination_group("/queue/x") != destination_group("/topic/x")


def test_a_destination_error_is_a_value_error():
    assert issubclass(DestinationError, ValueError)


@pytest.mark.parametrize("destination", ["/queue/x", "/user/queue/x"])
def test_a_user_destination_is_written_with_or_without_the_user_prefix(destination):
    assert user_destination(destination) == "/user/queue/x"


def test_a_user_destination_must_start_with_a_slash():
    with pytest.raises(DestinationError):
        user_destination("queue/x")


# -- group names ---------------------------------------------------------------------------------------------

SECRET_SESSION_KEY = "k3yk3yk3yzzzqqqqwwwweeeerrrrtttt"
USER_ID = 987654321012345


@pytest.mark.parametrize(
    "group",
    [
        destination_group("/topic/prices"),
        destination_group("/topic/" + "é" * 1000),
        destination_group("/topic/ünïcödé/✓"),
        user_group(user_hash(USER_ID)),
        session_group(session_hash(SECRET_SESSION_KEY)),
    ],
)
def test_group_names_are_short_ascii_channel_layer_names(group):
    assert len(group) < 100
    assert group.isascii()
    assert GROUP_NAME.match(group), group


def test_group_names_never_contain_the_destination_user_id_or_session_key():
    assert "prices" not in destination_group("/topic/prices")
    assert str(USER_ID) not in user_group(user_hash(USER_ID))
    assert SECRET_SESSION_KEY not in session_group(session_hash(SECRET_SESSION_KEY))


def test_group_names_are_stable_and_distinct():
    assert destination_group("/topic/a") == destination_group("/topic/a")
    assert destination_group("/topic/a") != destination_group("/topic/b")
    assert user_hash(1) != user_hash(2)
    assert user_hash(1) != session_hash("1")  # different namespaces never collide by construction


def test_a_sweep_batch_hashes_each_session_key_as_a_single_close_does():
    keys = ["k", "abcdefghijklmnopqrstuvwxyz012345", ""]
    assert session_hashes(keys) == [keyed_hash("session:" + k) for k in keys] == [session_hash(k) for k in keys]
    assert len(set(session_hashes(keys))) == 3


def test_a_user_and_its_primary_key_hash_alike(alice):
    assert user_hash(alice) == user_hash(alice.pk)


def test_an_unsaved_user_has_no_group():
    from django.contrib.auth import get_user_model

    with pytest.raises(ValueError):
        user_hash(get_user_model()(username="unsaved"))


def test_group_names_depend_on_the_secret_key():
    before = destination_group("/topic/a"), user_hash(1), session_hash("k")
    with override_settings(SECRET_KEY="another-secret-key-for-another-deployment-0123456789"):
        after = destination_group("/topic/a"), user_hash(1), session_hash("k")
    assert all(b != a for b, a in zip(before, after, strict=True))


async def test_every_group_a_live_connection_joins_reveals_nothing(alice, login):
    key = await sign_in(alice, login)
    client = await connected(key)
    await subscribe(client, "/topic/secret-project", "t")
    await subscribe(client, "/user/queue/x", "u")
    hub = await get_hub()
    groups = set(hub.groups.refs)
    assert len(groups) >= 4  # hubs, destination, user, session
    for group in groups:
        assert group.isascii() and len(group) < 100, group
        assert "secret-project" not in group and key not in group and "alice" not in group, group
        assert group == "stomp_push.hubs" or GROUP_NAME.match(group), group
    await client.close()


# -- /user/ isolation ----------------------------------------------------------------------------------------


async def test_a_user_never_receives_another_users_message_on_the_same_destination(alice, bob, login):
    alice_tab = await connected(await sign_in(alice, login))
    bob_tab = await connected(await sign_in(bob, login))
    await subscribe(alice_tab, "/user/queue/x")
    await subscribe(bob_tab, "/user/queue/x")
    await apush_to_user(bob, "/queue/x", "for bob")
    message = await bob_tab.receive()
    assert (message.headers["destination"], message.body) == ("/user/queue/x", b"for bob")
    assert await alice_tab.nothing_received()
    await alice_tab.close()
    await bob_tab.close()


async def test_every_tab_of_a_user_receives_that_users_message(alice, login):
    key = await sign_in(alice, login)
    other_key = await sign_in(alice, login)  # another browser: another session of the same user
    tabs = [await connected(key), await connected(key), await connected(other_key)]
    for tab in tabs:
        await subscribe(tab, "/user/queue/x")
    await apush_to_user(alice, "/queue/x", "for every tab")
    for tab in tabs:
        assert (await tab.receive()).body == b"for every tab"
        await tab.close()


async def test_a_user_message_reaches_only_subscriptions_of_that_destination(alice, login):
    tab = await connected(await sign_in(alice, login))
    await subscribe(tab, "/user/queue/x", "x")
    await subscribe(tab, "/user/queue/y", "y")
    await apush_to_user(alice, "/queue/y", "y only")
    assert (await tab.receive()).headers["subscription"] == "y"
    assert await tab.nothing_received()
    await tab.close()


CRAFTED = [
    "/user/../queue/x",
    "/user/bob/queue/x",
    "/user/2/queue/x",
    "/user/%62ob/queue/x",
    "/user/bob%2Fqueue%2Fx",
    "/user//queue/x",
    "/user/queue/x/../x",
    "/user/queue/x\u200b",
    "/user/queue/x ",
]


async def test_crafted_user_destinations_never_receive_another_users_messages(alice, bob, login):
    alice_tab = await connected(await sign_in(alice, login))
    for n, destination in enumerate(CRAFTED):
        await subscribe(alice_tab, destination, f"c{n}")
    bob_tab = await connected(await sign_in(bob, login))
    await subscribe(bob_tab, "/user/queue/x")
    for destination in ["/queue/x", f"/{bob.pk}/queue/x", "/bob/queue/x", *CRAFTED]:
        await apush_to_user(bob, destination, "bob's eyes only")
        await apush_to_user(bob.pk, destination, "bob's eyes only")
    assert (await bob_tab.receive()).body == b"bob's eyes only"
    assert await alice_tab.nothing_received(0.3)
    await alice_tab.close()
    await bob_tab.close()


async def test_an_anonymous_connection_receives_no_users_messages(alice, login):
    with stomp_settings(allow_anonymous=True):
        anonymous = await connected(None)
        await subscribe(anonymous, "/user/queue/x")
        await apush_to_user(alice, "/queue/x", "for alice")
        assert await anonymous.nothing_received()
    await anonymous.close()


# -- the authorization hook ----------------------------------------------------------------------------------


def allow_only_news(user, action, destination):
    return destination == "/topic/news"


async def allow_only_news_async(user, action, destination):
    return destination == "/topic/news"


async def test_without_a_hook_everything_is_authorized(alice):
    assert await authorize(alice, "subscribe", "/topic/anything")


@pytest.mark.parametrize("hook", ["allow_only_news", "allow_only_news_async"])
async def test_the_hooks_answer_decides(alice, hook):
    with stomp_settings(authorize="tests.test_destinations." + hook):
        assert await authorize(alice, "subscribe", "/topic/news") is True
        assert await authorize(alice, "send", "/topic/sports") is False


# -- broker prefixes on a connection -------------------------------------------------------------------------


def deny_private_queues(user, action, destination):
    return not destination.startswith("/queue/private/")


async def test_a_queue_destination_receives_pushes_and_the_hook_guards_it(alice, login):
    hook = "tests.test_destinations.deny_private_queues"
    with stomp_settings(broker_prefixes=BROKERS, authorize=hook):
        client = await connected(await sign_in(alice, login))
        await subscribe(client, "/queue/orders", "q")
        await subscribe(client, "/topic/orders", "t")
        await apush("/queue/orders", "to the queue")
        message = await client.receive()
        assert (message.headers["destination"], message.headers["subscription"]) == ("/queue/orders", "q")
        assert message.body == b"to the queue"
        assert await client.nothing_received()  # the /topic/ destination of the same name is another one
        await client.send("SUBSCRIBE", {"id": "p", "destination": "/queue/private/alice"})
        await expect_error(client, "access denied to /queue/private/alice", POLICY_VIOLATION)


@pytest.mark.parametrize("allowed", [False, True])
async def test_client_send_to_topics_covers_every_broker_prefix(alice, login, allowed):
    with stomp_settings(broker_prefixes=BROKERS, client_send_to_topics=allowed):
        client = await connected(await sign_in(alice, login))
        await subscribe(client, "/queue/chat")
        await client.send("SEND", {"destination": "/queue/chat", "receipt": "r"}, "hi")
        if allowed:  # its own MESSAGE may come before the RECEIPT
            frames = sorted([await client.receive(), await client.receive()], key=lambda f: f.command)
            assert [(f.command, f.body) for f in frames] == [("MESSAGE", b"hi"), ("RECEIPT", b"")]
            await client.close()
        else:
            error = await expect_error(client, "SEND not allowed to /queue/chat", POLICY_VIOLATION)
            assert b"CLIENT_SEND_TO_TOPICS" in error.body


async def test_a_queue_is_not_served_without_its_broker_prefix(alice, login):
    client = await connected(await sign_in(alice, login))
    await client.send("SUBSCRIBE", {"id": "q", "destination": "/queue/orders"})
    error = await expect_error(client, "unknown destination /queue/orders", POLICY_VIOLATION)
    assert b"/topic/" in error.body

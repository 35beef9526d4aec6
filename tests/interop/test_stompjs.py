"""@stomp/stompjs 7 (Node, ``ws``) against real daphne servers on a real Redis.

Each test signs alice (or bob) in over HTTP, hands the ``sessionid`` cookie and the page's Origin to the
WebSocket, and asserts what the stompjs client itself reports: frames, headers, receipts, heart-beats, close codes.
"""

from __future__ import annotations

import itertools
import json
import time

import pytest

pytestmark = [pytest.mark.interop, pytest.mark.redis, pytest.mark.slow]


def connect(cluster, stompjs, username: str = "alice", server=None, **options):
    session = cluster.login(username)
    client = stompjs(server or cluster.a, session.session_key, **options)
    connected = client.expect("connected", timeout=15)
    return session, client, connected


def subscribe(client, destination: str, sub_id: str) -> None:
    """SUBSCRIBE with a receipt and wait for it: once it arrives, the server has joined the group."""
    client.command("subscribe", destination=destination, id=sub_id, headers={"receipt": f"r-{sub_id}"})
    client.expect("receipt", id=f"r-{sub_id}")


def test_connected_names_the_user_and_the_session_expiry(cluster, stompjs):
    _, _, connected = connect(cluster, stompjs)
    headers = connected["headers"]
    assert connected["version"] == headers["version"] == "1.2"
    assert connected["subprotocol"] == "v12.stomp"
    assert headers["user-name"] == "alice"
    assert headers["server"] == "django-stomp-push"
    assert headers["heart-beat"] == f"{cluster.heartbeat_ms},{cluster.heartbeat_ms}"
    assert int(headers["session-expires"]) > time.time() * 1000


def test_a_cookie_without_a_valid_session_gets_error_then_close_1008(cluster, stompjs):
    client = stompjs(cluster.a, "no-such-session")
    error = client.expect("stomp-error", timeout=15)
    closed = client.expect("ws-close", timeout=5)
    assert error["headers"]["message"] == "no valid session"
    assert (closed["code"], closed["reason"]) == (1008, "no valid session")
    assert "connected" not in client.kinds()


def test_a_foreign_origin_is_refused_at_the_handshake(cluster, stompjs):
    session = cluster.login("alice")
    client = stompjs(cluster.a, session.session_key, origin="http://evil.example")
    error = client.expect("ws-error", timeout=15)
    closed = client.expect("ws-close", timeout=5)
    assert "403" in error["message"]  # daphne answered the upgrade request with 403: no WebSocket at all
    assert closed["code"] == 1006
    assert "connected" not in client.kinds()


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_push_from_another_process_reaches_a_topic_subscriber_through_redis(cluster, stompjs, version):
    _, client, connected = connect(cluster, stompjs, versions=(version,))
    assert connected["version"] == version
    destination = f"/topic/interop.prices.v{version}"
    subscribe(client, destination, "prices")

    body = {"symbol": "ACME", "price": 101.5, "note": "café"}
    cluster.python(
        f"from django_stomp_push import push; push({destination!r}, {body!r}, headers={{'x-source': 'cron job'}})"
    )
    message = client.expect("message", timeout=10)
    assert json.loads(message["body"]) == body
    headers = message["headers"]
    assert headers["destination"] == destination
    assert headers["subscription"] == "prices"
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(message["body"].encode())  # bytes, not characters
    assert headers["x-source"] == "cron job"
    assert headers["message-id"]


#: What stompjs 7 reports for a pushed header value "at 12:30". The server escapes ':' as '\c' in 1.1 and 1.2
#: frames, as both specifications require; stompjs un-escapes only 1.2 frames, so a 1.1 client sees the escape.
COLON_AS_SEEN_BY_STOMPJS = {"1.0": "at 12:30", "1.1": "at 12\\c30", "1.2": "at 12:30"}


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_header_values_with_a_colon_follow_each_versions_escaping(cluster, stompjs, version):
    _, client, _ = connect(cluster, stompjs, versions=(version,))
    destination = f"/topic/interop.colon.v{version}"
    subscribe(client, destination, "colon")

    cluster.python(f"from django_stomp_push import push; push({destination!r}, 'x', headers={{'x-note': 'at 12:30'}})")
    message = client.expect("message", timeout=10)
    assert message["headers"]["x-note"] == COLON_AS_SEEN_BY_STOMPJS[version]


def test_push_to_user_from_another_process_reaches_only_that_users_queue(cluster, stompjs):
    _, alice, _ = connect(cluster, stompjs, "alice")
    _, bob, _ = connect(cluster, stompjs, "bob")
    subscribe(alice, "/user/queue/notices", "notices")
    subscribe(bob, "/user/queue/notices", "notices")

    cluster.python(
        "from django.contrib.auth import get_user_model\n"
        "from django_stomp_push import push_to_user\n"
        "push_to_user(get_user_model().objects.get(username='alice'), '/queue/notices', 'for alice only')"
    )
    message = alice.expect("message", timeout=10)
    assert message["body"] == "for alice only"
    assert message["headers"]["destination"] == "/user/queue/notices"
    assert message["headers"]["content-type"] == "text/plain;charset=utf-8"
    time.sleep(0.5)  # the same push reached alice; give a wrong delivery to bob time to show up
    assert [e for e in bob.drain() if e["event"] == "message"] == []


def test_send_to_app_echo_replies_on_user_queue_reply_with_a_receipt(cluster, stompjs):
    _, client, _ = connect(cluster, stompjs)
    subscribe(client, "/user/queue/reply", "reply")

    client.command("send", destination="/app/echo", body="hello from stompjs", headers={"receipt": "sent"})
    reply = client.expect("message", timeout=10)
    client.expect("receipt", id="sent")
    assert reply["headers"]["destination"] == "/user/queue/reply"
    assert reply["headers"]["subscription"] == "reply"
    echoed = json.loads(reply["body"])
    assert echoed["echo"] == "hello from stompjs"
    assert echoed["user"] == "alice"
    assert echoed["at"]


def test_heartbeats_keep_an_idle_connection_open_for_several_periods(cluster, stompjs):
    period = cluster.heartbeat_ms
    _, client, _ = connect(cluster, stompjs, heartbeat=(period, period))
    subscribe(client, "/user/queue/reply", "reply")
    client.drain()

    idle = 5.5  # both sides give up after 2 silent periods (server grace 2.0, stompjs heartbeatGracePeriods 2)
    time.sleep(idle)
    events = client.drain()
    kinds = [e["event"] for e in events]
    assert "ws-close" not in kinds and "heartbeat-lost" not in kinds, kinds
    assert kinds.count("heartbeat-sent") >= 4, kinds
    received = [e["t"] for e in events if e["event"] == "heartbeat-received"]
    assert len(received) >= 4, kinds
    gaps = [(b - a) / 1000 for a, b in itertools.pairwise(received)]
    assert max(gaps) < 2 * period / 1000, gaps

    # and the connection still works after the idle time
    client.command("send", destination="/app/echo", body="still here")
    assert json.loads(client.expect("message", timeout=10)["body"])["echo"] == "still here"


def test_disconnect_with_receipt_closes_the_websocket_normally(cluster, stompjs):
    _, client, _ = connect(cluster, stompjs)
    client.command("disconnect")
    assert client.expect("disconnected", timeout=10)["receipt"] == "bye"
    closed = client.expect("ws-close", timeout=10)
    assert (closed["code"], closed["wasClean"]) == (1000, True)
    assert "stomp-error" not in client.kinds()


def test_logout_on_another_server_sends_error_then_close_1008_within_a_second(cluster, stompjs):
    alice_session, alice, _ = connect(cluster, stompjs, "alice", server=cluster.a)
    _, bob, _ = connect(cluster, stompjs, "bob", server=cluster.a)
    subscribe(bob, "/user/queue/reply", "reply")

    logout_at = time.time()
    assert alice_session.logout() in (200, 302)  # over HTTP on server b; alice's client is on server a
    error = alice.expect("stomp-error", timeout=5)
    closed = alice.expect("ws-close", timeout=5)

    assert error["headers"]["message"] == "logged out"
    assert "log in again" in error["body"]
    assert (closed["code"], closed["reason"]) == (1008, "logged out")
    latency = closed["t"] / 1000 - logout_at
    print(f"stompjs: logout on server b -> close 1008 on server a after {latency * 1000:.0f} ms")
    assert latency < 1.0, f"closed {latency:.3f}s after the logout"

    # bob, on the same server, is untouched
    bob.command("send", destination="/app/echo", body="bob is fine")
    assert json.loads(bob.expect("message", timeout=10)["body"])["user"] == "bob"
    assert "ws-close" not in bob.kinds()

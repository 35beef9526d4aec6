"""ServerConnection: the server's side of one STOMP connection, fed bytes, answering events and bytes."""

from __future__ import annotations

import pytest

from django_stomp_push.stomp import (
    V10,
    V11,
    V12,
    VERSIONS,
    Abort,
    Ack,
    Begin,
    Commit,
    Connect,
    Disconnect,
    Event,
    Frame,
    FrameParser,
    LimitExceeded,
    Limits,
    MalformedFrame,
    Nack,
    ProtocolViolation,
    PushedMessage,
    Send,
    ServerConnection,
    State,
    Subscribe,
    Unsubscribe,
    UnsupportedVersion,
    encode,
)


def wire(command: str, headers: dict[str, str] | None = None, body: bytes = b"", version: str = V12) -> bytes:
    return encode(Frame(command, headers or {}, body), version)


def connect(version: str = V12, **options: object) -> ServerConnection:
    conn = ServerConnection(**options)  # type: ignore[arg-type]
    conn.receive_data(wire("CONNECT", {"accept-version": version, "host": "example.com"}))
    assert conn.version == version
    return conn


def read(data: bytes, version: str = V12) -> Frame:
    (frame,) = FrameParser(version=version).feed(data)
    return frame


def subscribe(conn: ServerConnection, sub_id: str = "s1", ack: str = "auto", destination: str = "/topic/t") -> None:
    conn.receive_data(wire("SUBSCRIBE", {"id": sub_id, "destination": destination, "ack": ack}, version=conn.version))


PUSHED = PushedMessage("/topic/t", "", "text/plain")


def deliver(conn: ServerConnection, message_id: str, sub_id: str = "s1") -> str | bytes:
    return conn.message(conn.subscriptions[sub_id], PUSHED, message_id)


def ack_headers(version: str, message_id: str, sub_id: str = "s1") -> dict[str, str]:
    """How each version names the message an ACK/NACK is about."""
    if version == V12:
        return {"id": message_id}
    return {"message-id": message_id, "subscription": sub_id}


def ack(conn: ServerConnection, message_id: str, command: str = "ACK", **headers: str) -> list[Event]:
    return conn.receive_data(wire(command, {**ack_headers(conn.version, message_id), **headers}, version=conn.version))


# -- CONNECT -----------------------------------------------------------------------------------------------


def test_new_connection_awaits_connect() -> None:
    assert ServerConnection().state is State.AWAITING_CONNECT


@pytest.mark.parametrize("command", ["CONNECT", "STOMP"])
def test_connect_frame_connects(command: str) -> None:
    conn = ServerConnection()
    (event,) = conn.receive_data(wire(command, {"accept-version": "1.2", "host": "example.com"}))
    assert isinstance(event, Connect)
    assert conn.state is State.CONNECTED


def test_connect_event_carries_host_login_passcode_and_headers() -> None:
    headers = {"accept-version": "1.2", "host": "h", "login": "u", "passcode": "p", "x-csrftoken": "t"}
    (event,) = ServerConnection().receive_data(wire("CONNECT", headers))
    assert event == Connect(version=V12, heartbeat=(0, 0), host="h", login="u", passcode="p", headers=headers)


@pytest.mark.parametrize(
    ("offered", "version"),
    [
        ("1.0,1.1,1.2", V12),
        ("1.2,1.0", V12),
        ("1.1, 1.2", V12),
        ("1.0,1.1", V11),
        ("1.1", V11),
        ("1.0", V10),
        ("1.1,2.0", V11),
        (None, V10),
    ],
)
def test_negotiates_the_highest_common_version(offered: str | None, version: str) -> None:
    headers = {"host": "h"} if offered is None else {"accept-version": offered, "host": "h"}
    conn = ServerConnection()
    (event,) = conn.receive_data(wire("CONNECT", headers))
    assert event.version == conn.version == version


def test_negotiates_only_versions_the_server_enables() -> None:
    conn = ServerConnection(versions=(V10, V11))
    conn.receive_data(wire("CONNECT", {"accept-version": "1.1,1.2"}))
    assert conn.version == V11


@pytest.mark.parametrize("offered", ["2.0", "1.3,1.4", "1", "", "1.2.0"])
def test_no_common_version_is_unsupported(offered: str) -> None:
    with pytest.raises(UnsupportedVersion) as info:
        ServerConnection().receive_data(wire("CONNECT", {"accept-version": offered}))
    assert info.value.supported == VERSIONS
    assert info.value.detail == f"client accepts {offered!r}; this server supports 1.0,1.1,1.2"


def test_missing_accept_version_is_1_0_and_unsupported_without_it() -> None:
    with pytest.raises(UnsupportedVersion) as info:
        ServerConnection(versions=(V11, V12)).receive_data(wire("CONNECT", {"host": "h"}))
    assert info.value.detail == "client accepts '1.0'; this server supports 1.1,1.2"


def test_unsupported_version_is_a_protocol_violation() -> None:
    assert issubclass(UnsupportedVersion, ProtocolViolation)


def test_stomp_frame_requires_host() -> None:
    with pytest.raises(ProtocolViolation, match="missing header"):
        ServerConnection().receive_data(wire("STOMP", {"accept-version": "1.2"}))


def test_connect_frame_does_not_require_host() -> None:
    # Design choice: lenient with CONNECT, which older clients send without host.
    (event,) = ServerConnection().receive_data(wire("CONNECT", {"accept-version": "1.2"}))
    assert event.host is None


@pytest.mark.parametrize(
    ("version", "value"),
    [
        (V10, "a\\tb\\"),
        (V11, "a:b"),
        (V12, "a:b\rc"),
    ],
)
def test_frames_after_connect_are_parsed_with_the_negotiated_version(version: str, value: str) -> None:
    conn = connect(version)
    (event,) = conn.receive_data(wire("SEND", {"destination": "/q", "k": value}, version=version))
    assert event.headers["k"] == value


def test_negotiated_1_1_rejects_the_1_2_carriage_return_escape() -> None:
    conn = connect(V11)
    with pytest.raises(MalformedFrame):
        conn.receive_data(b"SEND\ndestination:/q\nk:\\r\n\n\x00")


def test_frames_in_the_same_chunk_as_a_1_0_connect_are_not_unescaped() -> None:
    data = wire("CONNECT", {"accept-version": "1.0"}) + b"SEND\ndestination:/q\nk:a\\tb\n\n\x00"
    _, send = ServerConnection().receive_data(data)
    assert send.headers["k"] == "a\\tb"


def test_frames_in_the_same_chunk_as_a_1_1_connect_reject_the_1_2_carriage_return_escape() -> None:
    data = wire("CONNECT", {"accept-version": "1.1"}) + b"SEND\ndestination:/q\nk:\\r\n\n\x00"
    with pytest.raises(MalformedFrame):
        ServerConnection().receive_data(data)


# -- heart-beats -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "client", "negotiated"),
    [
        ((10_000, 10_000), "0,0", (0, 0)),
        ((10_000, 10_000), "5000,20000", (20_000, 10_000)),
        ((10_000, 10_000), "20000,5000", (10_000, 20_000)),
        ((10_000, 10_000), "0,5000", (10_000, 0)),
        ((10_000, 10_000), "5000,0", (0, 10_000)),
        ((0, 0), "1000,1000", (0, 0)),
        ((0, 5000), "1000,1000", (0, 5000)),
        ((5000, 0), "1000,1000", (5000, 0)),
        ((10_000, 10_000), " 1000 , 1000 ", (10_000, 10_000)),
    ],
)
@pytest.mark.parametrize("version", [V11, V12])
def test_heartbeat_is_the_max_of_each_pair_and_zero_disables(
    version: str, server: tuple[int, int], client: str, negotiated: tuple[int, int]
) -> None:
    conn = ServerConnection(heartbeat=server)
    (event,) = conn.receive_data(wire("CONNECT", {"accept-version": version, "heart-beat": client}))
    assert event.heartbeat == conn.heartbeat == negotiated


@pytest.mark.parametrize("version", [V11, V12])
def test_missing_heartbeat_header_is_no_heartbeat(version: str) -> None:
    assert connect(version).heartbeat == (0, 0)


def test_1_0_has_no_heartbeat() -> None:
    conn = ServerConnection()
    conn.receive_data(wire("CONNECT", {"accept-version": "1.0", "heart-beat": "1000,1000"}))
    assert conn.heartbeat == (0, 0)


@pytest.mark.parametrize("value", ["", "1", "1,2,3", "a,b", "-1,0", "1;2", "1.5,0", ",", "²,0"])
def test_malformed_heartbeat_header_is_an_error(value: str) -> None:
    with pytest.raises(ProtocolViolation, match="invalid heart-beat header"):
        ServerConnection().receive_data(wire("CONNECT", {"accept-version": "1.2", "heart-beat": value}))


def test_heartbeat_longer_than_ten_digits_is_an_error() -> None:
    # int() refuses more than 4300 digits with a ValueError; no interval needs more than ten.
    with pytest.raises(ProtocolViolation, match="invalid heart-beat header"):
        ServerConnection().receive_data(wire("CONNECT", {"accept-version": "1.2", "heart-beat": "9" * 5000 + ",0"}))


def test_heartbeats_received_counts_eols_between_frames() -> None:
    conn = connect()
    assert conn.receive_data(b"\n\r\n\n") == []
    assert conn.heartbeats_received == 3


# -- CONNECTED, RECEIPT, ERROR -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", [V11, V12])
def test_connected_frame_names_version_server_and_the_servers_heartbeat_offer(version: str) -> None:
    conn = ServerConnection(heartbeat=(4000, 6000), server="test/1")
    conn.receive_data(wire("CONNECT", {"accept-version": version, "heart-beat": "1000,1000"}))
    frame = read(conn.connected(), version)
    assert frame == Frame("CONNECTED", {"version": version, "server": "test/1", "heart-beat": "4000,6000"})


def test_connected_frame_in_1_0_has_no_heartbeat() -> None:
    assert "heart-beat" not in read(connect(V10).connected(), V10).headers


def test_connected_frame_carries_session_and_extra_headers() -> None:
    headers = read(connect().connected({"user-name": "a:b"}, session="sess-1")).headers
    assert (headers["session"], headers["user-name"]) == ("sess-1", "a:b")


@pytest.mark.parametrize("version", VERSIONS)
def test_receipt_frame_names_the_receipt_id(version: str) -> None:
    assert read(connect(version).receipt("r:1"), version) == Frame("RECEIPT", {"receipt-id": "r:1"})


@pytest.mark.parametrize("version", VERSIONS)
def test_error_frame_has_message_header_content_type_and_detail_body(version: str) -> None:
    frame = read(connect(version).error("bad thing", "the details"), version)
    assert frame == Frame("ERROR", {"message": "bad thing", "content-type": "text/plain"}, b"the details")


def test_error_frame_names_the_receipt_id() -> None:
    assert read(connect().error("bad", receipt_id="r-7")).headers["receipt-id"] == "r-7"


def test_error_closes_the_connection() -> None:
    conn = connect()
    conn.error("bad")
    assert conn.state is State.CLOSED
    assert conn.receive_data(wire("SEND", {"destination": "/q"})) == []


def test_error_for_an_offending_frame_with_a_receipt_names_it() -> None:
    conn = connect()
    with pytest.raises(ProtocolViolation) as info:
        conn.receive_data(wire("SEND", {"receipt": "r-9"}))
    frame = read(conn.error_for(info.value))
    assert frame.headers["message"] == "missing header"
    assert frame.headers["receipt-id"] == "r-9"
    assert frame.body == b"SEND frame requires a 'destination' header"


def test_error_for_an_offending_frame_without_receipt_has_no_receipt_id() -> None:
    conn = connect()
    with pytest.raises(ProtocolViolation) as info:
        conn.receive_data(wire("SEND"))
    assert "receipt-id" not in read(conn.error_for(info.value)).headers


def test_error_for_unsupported_version_lists_the_supported_versions() -> None:
    conn = ServerConnection()
    with pytest.raises(UnsupportedVersion) as info:
        conn.receive_data(wire("CONNECT", {"accept-version": "2.0", "receipt": "r"}))
    frame = read(conn.error_for(info.value))
    assert frame.headers["message"] == "unsupported STOMP version"
    assert frame.headers["receipt-id"] == "r"
    assert frame.body == b"client accepts '2.0'; this server supports 1.0,1.1,1.2"
    assert str(info.value) == "unsupported STOMP version: client accepts '2.0'; this server supports 1.0,1.1,1.2"


# -- frames out of place -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", ["SEND", "SUBSCRIBE", "UNSUBSCRIBE", "ACK", "NACK", "BEGIN", "COMMIT", "ABORT", "DISCONNECT"]
)
def test_frame_before_connect_is_an_error(command: str) -> None:
    with pytest.raises(ProtocolViolation, match="not connected"):
        ServerConnection().receive_data(wire(command))


@pytest.mark.parametrize("command", ["CONNECT", "STOMP"])
def test_second_connect_is_an_error(command: str) -> None:
    with pytest.raises(ProtocolViolation, match="already connected"):
        connect().receive_data(wire(command, {"accept-version": "1.2", "host": "h"}))


@pytest.mark.parametrize("command", ["FOO", "MESSAGE", "CONNECTED", "RECEIPT", "ERROR"])
@pytest.mark.parametrize("connected", [False, True], ids=["before-connect", "after-connect"])
def test_unknown_command_is_an_error(command: str, connected: bool) -> None:
    conn = connect() if connected else ServerConnection()
    with pytest.raises(ProtocolViolation, match="unknown command"):
        conn.receive_data(wire(command))


@pytest.mark.parametrize(
    ("version", "command", "headers"),
    [
        *[(v, "SEND", {}) for v in VERSIONS],
        *[(v, "SUBSCRIBE", {"id": "s1"}) for v in VERSIONS],
        (V11, "SUBSCRIBE", {"destination": "/q"}),
        (V12, "SUBSCRIBE", {"destination": "/q"}),
        (V10, "UNSUBSCRIBE", {}),
        (V11, "UNSUBSCRIBE", {"destination": "/q"}),
        (V12, "UNSUBSCRIBE", {"destination": "/q"}),
        (V10, "ACK", {"id": "m1"}),
        (V11, "ACK", {"id": "m1", "subscription": "s1"}),
        (V12, "ACK", {"message-id": "m1"}),
        (V11, "NACK", {"id": "m1", "subscription": "s1"}),
        (V12, "NACK", {"message-id": "m1"}),
        *[(v, command, {}) for v in VERSIONS for command in ("BEGIN", "COMMIT", "ABORT")],
    ],
)
def test_missing_required_header_is_an_error(version: str, command: str, headers: dict[str, str]) -> None:
    with pytest.raises(ProtocolViolation, match="missing header"):
        connect(version).receive_data(wire(command, headers, version=version))


# -- every client command's event --------------------------------------------------------------------------


def test_send_is_a_send_event() -> None:
    (event,) = connect().receive_data(wire("SEND", {"destination": "/q", "x": "1"}, b"hi"))
    assert event == Send("/q", {"destination": "/q", "x": "1"}, b"hi")


def test_send_body_with_nul_arrives_whole() -> None:
    (event,) = connect().receive_data(wire("SEND", {"destination": "/q"}, b"a\x00b"))
    assert event.body == b"a\x00b"


def test_subscribe_is_a_subscribe_event_and_registers_the_subscription() -> None:
    conn = connect()
    headers = {"id": "s1", "destination": "/q", "ack": "client"}
    (event,) = conn.receive_data(wire("SUBSCRIBE", headers))
    assert event == Subscribe("s1", "/q", "client", headers)
    assert (conn.subscriptions["s1"].destination, conn.subscriptions["s1"].ack) == ("/q", "client")


def test_subscribe_ack_mode_defaults_to_auto() -> None:
    (event,) = connect().receive_data(wire("SUBSCRIBE", {"id": "s1", "destination": "/q"}))
    assert event.ack == "auto"


def test_subscribe_with_an_unknown_ack_mode_is_an_error() -> None:
    with pytest.raises(ProtocolViolation, match="invalid ack mode"):
        connect().receive_data(wire("SUBSCRIBE", {"id": "s1", "destination": "/q", "ack": "sometimes"}))


def test_unsubscribe_is_an_unsubscribe_event_and_forgets_the_subscription() -> None:
    conn = connect()
    subscribe(conn, "s1", destination="/q")
    (event,) = conn.receive_data(wire("UNSUBSCRIBE", {"id": "s1"}))
    assert event == Unsubscribe("s1", "/q")
    assert conn.subscriptions == {}


@pytest.mark.parametrize("command", ["ACK", "NACK"])
def test_ack_and_nack_are_events_naming_message_and_subscription(command: str) -> None:
    conn = connect()
    subscribe(conn, "s1", ack="client-individual")
    deliver(conn, "m1")
    (event,) = ack(conn, "m1", command)
    assert event == {"ACK": Ack, "NACK": Nack}[command]("m1", "s1")


def test_begin_is_an_event() -> None:
    assert connect().receive_data(wire("BEGIN", {"transaction": "t1"})) == [Begin("t1")]


def test_abort_is_an_event() -> None:
    conn = connect()
    conn.receive_data(wire("BEGIN", {"transaction": "t1"}))
    assert conn.receive_data(wire("ABORT", {"transaction": "t1"})) == [Abort("t1")]


def test_commit_is_an_event() -> None:
    conn = connect()
    conn.receive_data(wire("BEGIN", {"transaction": "t1"}))
    assert conn.receive_data(wire("COMMIT", {"transaction": "t1"})) == [Commit("t1")]


def test_disconnect_is_an_event() -> None:
    assert connect().receive_data(wire("DISCONNECT")) == [Disconnect()]


# -- DISCONNECT --------------------------------------------------------------------------------------------


def test_disconnect_closes_the_connection() -> None:
    conn = connect()
    conn.receive_data(wire("DISCONNECT"))
    assert conn.state is State.CLOSED


def test_data_after_disconnect_is_ignored() -> None:
    conn = connect()
    conn.receive_data(wire("DISCONNECT"))
    assert conn.receive_data(wire("SEND", {"destination": "/q"}) + b"garbage\x00") == []


def test_frames_after_disconnect_in_the_same_chunk_are_ignored() -> None:
    conn = connect()
    data = wire("DISCONNECT", {"receipt": "bye"}) + wire("SEND", {"destination": "/q"}) + b"not a frame\n\n\x00"
    assert conn.receive_data(data) == [Disconnect(receipt="bye")]


# -- subscriptions -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_duplicate_subscription_id_is_an_error(version: str) -> None:
    conn = connect(version)
    subscribe(conn, "s1")
    with pytest.raises(ProtocolViolation, match="duplicate subscription id"):
        subscribe(conn, "s1", destination="/other")


def test_subscription_id_is_free_again_after_unsubscribe() -> None:
    conn = connect()
    subscribe(conn, "s1")
    conn.receive_data(wire("UNSUBSCRIBE", {"id": "s1"}))
    subscribe(conn, "s1")
    assert list(conn.subscriptions) == ["s1"]


@pytest.mark.parametrize("version", VERSIONS)
def test_unsubscribe_unknown_id_is_an_error(version: str) -> None:
    with pytest.raises(ProtocolViolation, match="unknown subscription"):
        connect(version).receive_data(wire("UNSUBSCRIBE", {"id": "nope"}, version=version))


def test_1_0_subscription_id_is_optional_and_defaults_to_the_destination() -> None:
    conn = connect(V10)
    (event,) = conn.receive_data(wire("SUBSCRIBE", {"destination": "/q"}, version=V10))
    assert event.id == "/q"
    assert list(conn.subscriptions) == ["/q"]


def test_1_0_unsubscribe_by_destination() -> None:
    conn = connect(V10)
    conn.receive_data(wire("SUBSCRIBE", {"destination": "/q"}, version=V10))
    (event,) = conn.receive_data(wire("UNSUBSCRIBE", {"destination": "/q"}, version=V10))
    assert event == Unsubscribe("/q", "/q")


def test_too_many_subscriptions_is_a_limit_exceeded() -> None:
    conn = connect(limits=Limits(max_subscriptions=2))
    subscribe(conn, "s1")
    subscribe(conn, "s2")
    with pytest.raises(LimitExceeded, match="too many subscriptions"):
        subscribe(conn, "s3")


@pytest.mark.parametrize(
    ("version", "prefix"),
    [
        (V10, "MESSAGE\nsubscription:a:b\nmessage-id:"),
        (V11, "MESSAGE\nsubscription:a\\cb\nmessage-id:"),
        (V12, "MESSAGE\nsubscription:a\\cb\nmessage-id:"),
    ],
)
def test_subscription_renders_its_message_head_prefix_escaped_for_the_version(version: str, prefix: str) -> None:
    conn = connect(version)
    subscribe(conn, "a:b")
    assert conn.subscriptions["a:b"].head_prefix == prefix


# -- MESSAGE and ACK/NACK ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "ack_mode", "head"),
    [
        (V12, "auto", "MESSAGE\nsubscription:s1\nmessage-id:7\n"),
        (V12, "client", "MESSAGE\nsubscription:s1\nmessage-id:7\nack:7\n"),
        (V12, "client-individual", "MESSAGE\nsubscription:s1\nmessage-id:7\nack:7\n"),
        (V11, "client", "MESSAGE\nsubscription:s1\nmessage-id:7\n"),
        (V10, "client", "MESSAGE\nsubscription:s1\nmessage-id:7\n"),
    ],
)
def test_message_names_subscription_message_and_ack_id_in_1_2(version: str, ack_mode: str, head: str) -> None:
    conn = connect(version)
    subscribe(conn, "s1", ack=ack_mode)
    assert deliver(conn, "7") == head + "destination:/topic/t\ncontent-type:text/plain\ncontent-length:0\n\n\x00"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("ack_mode", ["client", "client-individual"])
def test_ack_of_a_delivered_message_is_accepted_once(version: str, ack_mode: str) -> None:
    conn = connect(version)
    subscribe(conn, "s1", ack=ack_mode)
    deliver(conn, "m1")
    assert ack(conn, "m1") == [Ack("m1", "s1")]
    with pytest.raises(ProtocolViolation, match="ACK for unknown message"):
        ack(conn, "m1")


@pytest.mark.parametrize("version", VERSIONS)
def test_ack_of_an_unknown_message_is_an_error(version: str) -> None:
    conn = connect(version)
    subscribe(conn, "s1", ack="client")
    with pytest.raises(ProtocolViolation, match="ACK for unknown message") as info:
        ack(conn, "never-sent")
    assert "'never-sent'" in info.value.detail


def test_ack_on_an_auto_subscription_is_an_error_naming_it() -> None:
    conn = connect(V11)
    subscribe(conn, "s1", ack="auto")
    deliver(conn, "m1")
    with pytest.raises(ProtocolViolation, match="ACK not expected") as info:
        ack(conn, "m1")
    assert info.value.detail == "subscription 's1' uses ack mode auto; messages need no ACK"


def test_nack_on_an_auto_subscription_is_an_error_naming_it() -> None:
    conn = connect(V11)
    subscribe(conn, "s1", ack="auto")
    with pytest.raises(ProtocolViolation, match="NACK not expected"):
        ack(conn, "m1", "NACK")


def test_auto_subscription_registers_no_pending_ack() -> None:
    conn = connect()
    subscribe(conn, "s1", ack="auto")
    deliver(conn, "m1")
    with pytest.raises(ProtocolViolation, match="ACK for unknown message"):
        ack(conn, "m1")


def test_client_ack_is_cumulative() -> None:
    conn = connect()
    subscribe(conn, "s1", ack="client")
    deliver(conn, "m1")
    deliver(conn, "m2")
    ack(conn, "m2")
    with pytest.raises(ProtocolViolation, match="unknown message"):
        ack(conn, "m1")


def test_client_ack_leaves_later_and_other_subscriptions_messages_pending() -> None:
    conn = connect()
    subscribe(conn, "s1", ack="client")
    subscribe(conn, "s2", ack="client")
    for message_id, sub_id in [("m1", "s1"), ("x1", "s2"), ("m2", "s1"), ("m3", "s1")]:
        deliver(conn, message_id, sub_id)
    ack(conn, "m2")
    assert ack(conn, "m3") == [Ack("m3", "s1")]
    assert ack(conn, "x1") == [Ack("x1", "s2")]


def test_client_individual_ack_settles_only_that_message() -> None:
    conn = connect()
    subscribe(conn, "s1", ack="client-individual")
    deliver(conn, "m1")
    deliver(conn, "m2")
    ack(conn, "m2")
    assert ack(conn, "m1") == [Ack("m1", "s1")]


def test_nack_settles_the_message() -> None:
    conn = connect()
    subscribe(conn, "s1", ack="client-individual")
    deliver(conn, "m1")
    ack(conn, "m1", "NACK")
    with pytest.raises(ProtocolViolation, match="NACK for unknown message"):
        ack(conn, "m1", "NACK")


def test_1_2_ack_names_the_message_by_id() -> None:
    conn = connect(V12)
    subscribe(conn, "s1", ack="client")
    deliver(conn, "m1")
    assert conn.receive_data(wire("ACK", {"id": "m1"})) == [Ack("m1", "s1")]


@pytest.mark.parametrize("version", [V10, V11])
def test_1_0_and_1_1_ack_names_the_message_by_message_id(version: str) -> None:
    conn = connect(version)
    subscribe(conn, "s1", ack="client")
    deliver(conn, "m1")
    assert conn.receive_data(wire("ACK", {"message-id": "m1"}, version=version)) == [Ack("m1", "s1")]


def test_nack_is_not_part_of_1_0() -> None:
    conn = connect(V10)
    subscribe(conn, "s1", ack="client")
    deliver(conn, "m1")
    with pytest.raises(ProtocolViolation, match="unknown command"):
        ack(conn, "m1", "NACK")


def test_unsubscribe_drops_the_subscriptions_pending_acks() -> None:
    conn = connect()
    subscribe(conn, "s1", ack="client")
    deliver(conn, "m1")
    conn.receive_data(wire("UNSUBSCRIBE", {"id": "s1"}))
    subscribe(conn, "s1", ack="client")
    with pytest.raises(ProtocolViolation, match="unknown message"):
        ack(conn, "m1")


def test_too_many_pending_acks_is_a_limit_exceeded() -> None:
    conn = connect(limits=Limits(max_pending_acks=2))
    subscribe(conn, "s1", ack="client")
    deliver(conn, "m1")
    deliver(conn, "m2")
    with pytest.raises(LimitExceeded, match="too many unacknowledged messages"):
        deliver(conn, "m3")


# -- receipts ----------------------------------------------------------------------------------------------

RECEIPTED = {
    "SEND": {"destination": "/q"},
    "SUBSCRIBE": {"id": "s2", "destination": "/q"},
    "UNSUBSCRIBE": {"id": "s1"},
    "ACK": {"id": "m1"},
    "NACK": {"id": "m2"},
    "BEGIN": {"transaction": "t2"},
    "COMMIT": {"transaction": "t1"},
    "ABORT": {"transaction": "t1"},
    "DISCONNECT": {},
}


@pytest.mark.parametrize(("command", "headers"), RECEIPTED.items(), ids=RECEIPTED.keys())
def test_every_frame_with_a_receipt_header_gives_an_event_with_that_receipt(
    command: str, headers: dict[str, str]
) -> None:
    conn = connect()
    subscribe(conn, "s1", ack="client-individual")
    deliver(conn, "m1")
    deliver(conn, "m2")
    conn.receive_data(wire("BEGIN", {"transaction": "t1"}))
    (event,) = conn.receive_data(wire(command, {**headers, "receipt": "r-1"}))
    assert event.receipt == "r-1"


def test_connect_with_a_receipt_header_gives_an_event_with_that_receipt() -> None:
    (event,) = ServerConnection().receive_data(wire("CONNECT", {"accept-version": "1.2", "receipt": "r-0"}))
    assert event.receipt == "r-0"


def test_frame_without_receipt_header_gives_an_event_without_receipt() -> None:
    (event,) = connect().receive_data(wire("SEND", {"destination": "/q"}))
    assert event.receipt is None


def test_receipt_header_is_unescaped() -> None:
    (event,) = connect().receive_data(wire("SEND", {"destination": "/q", "receipt": "a:b"}))
    assert event.receipt == "a:b"


# -- transactions ------------------------------------------------------------------------------------------


def transaction_with_three_frames() -> ServerConnection:
    conn = connect()
    subscribe(conn, "s1", ack="client-individual")
    deliver(conn, "m1")
    conn.receive_data(wire("BEGIN", {"transaction": "t1"}))
    conn.receive_data(wire("SEND", {"destination": "/a", "transaction": "t1"}, b"1"))
    conn.receive_data(wire("ACK", {"id": "m1", "transaction": "t1"}))
    conn.receive_data(wire("SEND", {"destination": "/b", "transaction": "t1"}, b"2"))
    return conn


@pytest.mark.parametrize(
    ("command", "headers"),
    [
        ("SEND", {"destination": "/q", "transaction": "t1"}),
        ("ACK", {"id": "m1", "transaction": "t1"}),
        ("NACK", {"id": "m1", "transaction": "t1"}),
    ],
)
def test_frames_in_a_transaction_are_returned_when_they_arrive_and_held(command: str, headers: dict[str, str]) -> None:
    conn = connect()
    subscribe(conn, "s1", ack="client")
    deliver(conn, "m1")
    conn.receive_data(wire("BEGIN", {"transaction": "t1"}))
    (event,) = conn.receive_data(wire(command, headers))
    assert event.transaction == "t1"
    (commit,) = conn.receive_data(wire("COMMIT", {"transaction": "t1"}))
    assert commit.events == [event]


def test_commit_carries_the_held_frames_in_order() -> None:
    conn = transaction_with_three_frames()
    events = conn.receive_data(wire("COMMIT", {"transaction": "t1", "receipt": "c"}))
    held = [
        Send("/a", {"destination": "/a", "transaction": "t1"}, b"1", "t1"),
        Ack("m1", "s1", "t1"),
        Send("/b", {"destination": "/b", "transaction": "t1"}, b"2", "t1"),
    ]
    assert events == [Commit("t1", receipt="c", events=held)]


def test_abort_drops_held_frames() -> None:
    conn = transaction_with_three_frames()
    assert conn.receive_data(wire("ABORT", {"transaction": "t1"})) == [Abort("t1")]


@pytest.mark.parametrize("end", ["COMMIT", "ABORT"])
def test_transaction_is_over_after_commit_or_abort(end: str) -> None:
    conn = transaction_with_three_frames()
    conn.receive_data(wire(end, {"transaction": "t1"}))
    with pytest.raises(ProtocolViolation, match="unknown transaction"):
        conn.receive_data(wire("SEND", {"destination": "/q", "transaction": "t1"}))


def test_send_in_a_transaction_with_a_receipt_carries_its_receipt_when_it_arrives() -> None:
    conn = connect()
    conn.receive_data(wire("BEGIN", {"transaction": "t1"}))
    (send,) = conn.receive_data(wire("SEND", {"destination": "/q", "transaction": "t1", "receipt": "r"}))
    assert isinstance(send, Send) and send.receipt == "r" and send.transaction == "t1"
    (commit,) = conn.receive_data(wire("COMMIT", {"transaction": "t1"}))
    assert commit.events == [send]


def test_ack_in_a_transaction_with_a_receipt_carries_its_receipt_when_it_arrives() -> None:
    conn = connect()
    subscribe(conn, "s1", ack="client")
    deliver(conn, "m1")
    conn.receive_data(wire("BEGIN", {"transaction": "t1"}))
    assert conn.receive_data(wire("ACK", {"id": "m1", "transaction": "t1", "receipt": "r"})) == [
        Ack("m1", "s1", "t1", receipt="r")
    ]


def test_events_carry_their_own_subscription_when_an_id_is_reused_in_one_chunk() -> None:
    conn = connect()
    chunk = (
        wire("SUBSCRIBE", {"id": "x", "destination": "/topic/public"})
        + wire("UNSUBSCRIBE", {"id": "x"})
        + wire("SUBSCRIBE", {"id": "x", "destination": "/topic/staff"})
    )
    first, gone, second = conn.receive_data(chunk)
    assert first.subscription.destination == gone.subscription.destination == "/topic/public"
    assert gone.subscription is first.subscription
    assert second.subscription.destination == "/topic/staff" and second.subscription is not first.subscription


def test_receive_events_returns_the_frames_before_a_violation_and_the_violation() -> None:
    conn = connect()
    events, error = conn.receive_events(
        wire("SEND", {"destination": "/a"}) + wire("SUBSCRIBE", {"destination": "/b"}) + wire("SEND", {})
    )
    assert [type(e) for e in events] == [Send] and isinstance(error, ProtocolViolation)
    assert conn.receive_events(wire("SEND", {"destination": "/a"})) == ([], None)  # closed from then on


def test_ack_in_an_aborted_transaction_can_be_sent_again() -> None:
    conn = transaction_with_three_frames()
    conn.receive_data(wire("ABORT", {"transaction": "t1"}))
    assert conn.receive_data(wire("ACK", {"id": "m1"})) == [Ack("m1", "s1")]


def test_client_acks_in_an_aborted_transaction_are_pending_again_in_order() -> None:
    conn = connect()
    subscribe(conn, "s1", ack="client")
    for message_id in ["m1", "m2", "m3"]:
        deliver(conn, message_id)
    conn.receive_data(wire("BEGIN", {"transaction": "t1"}))
    conn.receive_data(wire("ACK", {"id": "m2", "transaction": "t1"}))
    conn.receive_data(wire("ABORT", {"transaction": "t1"}))
    ack(conn, "m1")  # settles m1 only: m2 and m3 stay pending
    assert ack(conn, "m3") == [Ack("m3", "s1")]
    with pytest.raises(ProtocolViolation, match="unknown message"):
        ack(conn, "m2")


def test_abort_after_unsubscribe_brings_no_acks_back() -> None:
    conn = transaction_with_three_frames()
    conn.receive_data(wire("UNSUBSCRIBE", {"id": "s1"}))
    subscribe(conn, "s1", ack="client-individual")
    conn.receive_data(wire("ABORT", {"transaction": "t1"}))
    with pytest.raises(ProtocolViolation, match="unknown message"):
        conn.receive_data(wire("ACK", {"id": "m1"}))


def test_ack_in_a_committed_transaction_is_settled() -> None:
    conn = transaction_with_three_frames()
    conn.receive_data(wire("COMMIT", {"transaction": "t1"}))
    with pytest.raises(ProtocolViolation, match="unknown message"):
        conn.receive_data(wire("ACK", {"id": "m1"}))


@pytest.mark.parametrize(
    ("command", "headers"),
    [
        ("SEND", {"destination": "/q", "transaction": "nope"}),
        ("ACK", {"id": "m1", "transaction": "nope"}),
        ("NACK", {"id": "m1", "transaction": "nope"}),
        ("COMMIT", {"transaction": "nope"}),
        ("ABORT", {"transaction": "nope"}),
    ],
)
def test_unknown_transaction_is_an_error(command: str, headers: dict[str, str]) -> None:
    conn = connect()
    subscribe(conn, "s1", ack="client")
    deliver(conn, "m1")
    with pytest.raises(ProtocolViolation, match="unknown transaction") as info:
        conn.receive_data(wire(command, headers))
    assert info.value.detail == "transaction 'nope' was not begun"


def test_begin_of_an_open_transaction_is_an_error() -> None:
    conn = connect()
    conn.receive_data(wire("BEGIN", {"transaction": "t1"}))
    with pytest.raises(ProtocolViolation, match="duplicate transaction"):
        conn.receive_data(wire("BEGIN", {"transaction": "t1"}))


def test_transaction_name_is_free_again_after_commit() -> None:
    conn = connect()
    conn.receive_data(wire("BEGIN", {"transaction": "t1"}))
    conn.receive_data(wire("COMMIT", {"transaction": "t1"}))
    assert conn.receive_data(wire("BEGIN", {"transaction": "t1"})) == [Begin("t1")]


def test_too_many_transactions_is_a_limit_exceeded() -> None:
    conn = connect(limits=Limits(max_transactions=2))
    conn.receive_data(wire("BEGIN", {"transaction": "t1"}) + wire("BEGIN", {"transaction": "t2"}))
    with pytest.raises(LimitExceeded, match="too many transactions"):
        conn.receive_data(wire("BEGIN", {"transaction": "t3"}))


def test_too_many_frames_in_a_transaction_is_a_limit_exceeded() -> None:
    conn = connect(limits=Limits(max_transaction_frames=2))
    conn.receive_data(wire("BEGIN", {"transaction": "t1"}))
    send = wire("SEND", {"destination": "/q", "transaction": "t1"})
    conn.receive_data(send + send)
    with pytest.raises(LimitExceeded, match="too many frames in transaction"):
        conn.receive_data(send)


def test_limit_exceeded_is_a_protocol_violation() -> None:
    assert issubclass(LimitExceeded, ProtocolViolation)


def test_a_malformed_frame_after_one_with_a_receipt_does_not_borrow_its_receipt() -> None:
    conn = connect()
    events, error = conn.receive_events(
        wire("SEND", {"destination": "/a", "receipt": "r1"}) + b"SEND\nbad header\n\n\x00"
    )
    assert [e.receipt for e in events] == ["r1"] and error.message == "malformed header"
    assert error.receipt_id is None

"""MESSAGE frames: one PushedMessage, rendered once per version, spliced for each subscriber by the connection."""

from __future__ import annotations

import pytest

from django_stomp_push.stomp import (
    V10,
    V11,
    V12,
    VERSIONS,
    Ack,
    Frame,
    FrameParser,
    LimitExceeded,
    Limits,
    PushedMessage,
    ServerConnection,
    TooManyUnacknowledged,
    encode,
    server_frames,
)


def connect(version: str = V12, **options: object) -> ServerConnection:
    conn = ServerConnection(**options)  # type: ignore[arg-type]
    conn.receive_data(encode(Frame("CONNECT", {"accept-version": version, "host": "example.com"}), version))
    return conn


def subscribe(conn: ServerConnection, sub_id: str = "s1", ack: str = "auto") -> None:
    headers = {"id": sub_id, "destination": "/topic/t", "ack": ack}
    conn.receive_data(encode(Frame("SUBSCRIBE", headers), conn.version))


def deliver(conn: ServerConnection, message: PushedMessage, message_id: str = "7", sub_id: str = "s1") -> str | bytes:
    return conn.message(conn.subscriptions[sub_id], message, message_id)


def read(data: str | bytes, version: str) -> Frame:
    (frame,) = FrameParser(version=version).feed(data.encode() if isinstance(data, str) else data)
    return frame


TEXT = PushedMessage("/topic/t", "hi", "text/plain", {"x": "1"})


# -- the wire ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "ack_mode", "expected"),
    [
        (V12, "auto", "MESSAGE\nsubscription:s1\nmessage-id:7\n"),
        (V12, "client", "MESSAGE\nsubscription:s1\nmessage-id:7\nack:7\n"),
        (V12, "client-individual", "MESSAGE\nsubscription:s1\nmessage-id:7\nack:7\n"),
        (V11, "client", "MESSAGE\nsubscription:s1\nmessage-id:7\n"),
        (V10, "client", "MESSAGE\nsubscription:s1\nmessage-id:7\n"),
    ],
)
def test_a_message_is_the_subscribers_lines_then_the_shared_lines_and_the_body(
    version: str, ack_mode: str, expected: str
) -> None:
    conn = connect(version)
    subscribe(conn, ack=ack_mode)
    shared = "destination:/topic/t\ncontent-type:text/plain\ncontent-length:2\nx:1\n\nhi\x00"
    assert deliver(conn, TEXT) == expected + shared


@pytest.mark.parametrize("version", VERSIONS)
def test_a_message_reads_back_with_every_header_and_its_body(version: str) -> None:
    conn = connect(version)
    subscribe(conn)
    headers = {
        "subscription": "s1",
        "message-id": "7",
        "destination": "/topic/t",
        "content-type": "text/plain",
        "content-length": "2",
        "x": "1",
    }
    assert read(deliver(conn, TEXT), version) == Frame("MESSAGE", headers, b"hi")


@pytest.mark.parametrize(
    ("version", "lines"),
    [
        (V10, "subscription:a:b\nmessage-id:7\ndestination:/t/a:b c\\d\ncontent-type:text/plain; x=y\n"),
        (V11, "subscription:a\\cb\nmessage-id:7\ndestination:/t/a\\cb\\nc\\\\d\ncontent-type:text/plain; x=y\n"),
        (V12, "subscription:a\\cb\nmessage-id:7\ndestination:/t/a\\cb\\nc\\\\d\ncontent-type:text/plain; x=y\n"),
    ],
)
def test_subscription_destination_and_headers_are_escaped_for_the_version(version: str, lines: str) -> None:
    conn = connect(version)
    subscribe(conn, "a:b")
    message = PushedMessage("/t/a:b\nc\\d", "", "text/plain; x=y", {"k:1": "v\rw"})
    frame = deliver(conn, message, sub_id="a:b")
    assert isinstance(frame, str)
    assert frame.startswith("MESSAGE\n" + lines)
    header = {V10: "k:1:v w", V11: "k\\c1:v\rw", V12: "k\\c1:v\\rw"}[version]
    assert f"\n{header}\n\n" in frame
    if version != V10:  # 1.0 has no escaping: what it cannot carry is replaced
        assert read(frame, version).headers["destination"] == "/t/a:b\nc\\d"


def test_one_pushed_message_is_rendered_for_each_connections_version() -> None:
    message = PushedMessage("/t/a:b", "x", "text/plain")
    for version, line in [
        (V12, "destination:/t/a\\cb\n"),
        (V10, "destination:/t/a:b\n"),
        (V11, "destination:/t/a\\cb\n"),
    ]:
        conn = connect(version)
        subscribe(conn)
        frame = deliver(conn, message)
        assert line in frame
        assert read(frame, version).headers["destination"] == "/t/a:b"


# -- bodies ------------------------------------------------------------------------------------------------


def test_a_text_body_makes_a_text_frame() -> None:
    conn = connect()
    subscribe(conn)
    assert isinstance(deliver(conn, TEXT), str)


def test_a_binary_body_makes_a_bytes_frame() -> None:
    conn = connect()
    subscribe(conn)
    frame = deliver(conn, PushedMessage("/topic/t", b"\x01\xff", "application/octet-stream"))
    assert isinstance(frame, bytes)
    assert frame.endswith(b"content-length:2\n\n\x01\xff\x00")


def test_content_length_counts_the_utf8_bytes_of_a_text_body() -> None:
    conn = connect()
    subscribe(conn)
    frame = read(deliver(conn, PushedMessage("/topic/t", "é€", "text/plain")), V12)
    assert frame.headers["content-length"] == "5"
    assert frame.body == "é€".encode()


@pytest.mark.parametrize("body", [b"a\x00b", "a\x00b"])
def test_a_body_containing_nul_reads_back_whole(body: str | bytes) -> None:
    conn = connect()
    subscribe(conn)
    assert read(deliver(conn, PushedMessage("/topic/t", body, "application/octet-stream")), V12).body == b"a\x00b"


def test_the_shared_part_is_rendered_once_per_version(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered: list[str] = []
    header_lines = server_frames.header_lines

    def counting(headers: object, version: str, command: str) -> str:
        rendered.append(version)
        return header_lines(headers, version, command)  # type: ignore[arg-type]

    connections = [connect(version) for version in (V12, V12, V11, V12, V11)]
    for conn in connections:
        subscribe(conn)
    monkeypatch.setattr(server_frames, "header_lines", counting)
    message = PushedMessage("/topic/t", "x", "text/plain")
    for conn in connections:
        deliver(conn, message)
    assert sorted(rendered) == [V11, V12]


# -- acknowledgements --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("ack_mode", ["client", "client-individual"])
def test_a_message_to_a_client_ack_subscription_awaits_its_ack(version: str, ack_mode: str) -> None:
    conn = connect(version)
    subscribe(conn, ack=ack_mode)
    frame = read(deliver(conn, TEXT, "m-1"), version)
    # 1.2 acknowledges the ack header's value; 1.0 and 1.1 the message-id and subscription.
    ack = {"id": frame.headers["ack"]} if version == V12 else {"message-id": "m-1", "subscription": "s1"}
    assert conn.receive_data(encode(Frame("ACK", ack), version)) == [Ack("m-1", "s1")]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_message_to_an_auto_subscription_has_no_ack_header(version: str) -> None:
    conn = connect(version)
    subscribe(conn, ack="auto")
    assert "ack" not in read(deliver(conn, TEXT), version).headers


def test_too_many_unacknowledged_messages_is_a_limit_that_closes_with_1008() -> None:
    conn = connect(limits=Limits(max_pending_acks=2))
    subscribe(conn, ack="client-individual")
    deliver(conn, TEXT, "m1")
    deliver(conn, TEXT, "m2")
    with pytest.raises(TooManyUnacknowledged, match="too many unacknowledged messages") as info:
        deliver(conn, TEXT, "m3")
    assert isinstance(info.value, LimitExceeded)
    assert info.value.detail == "the limit is 2"
    assert info.value.close_code == 1008


def test_auto_subscriptions_never_reach_the_unacknowledged_limit() -> None:
    conn = connect(limits=Limits(max_pending_acks=1))
    subscribe(conn, ack="auto")
    for message_id in range(5):
        deliver(conn, TEXT, str(message_id))


# -- the other frames the server sends ---------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_connected_offers_heart_beats_from_1_1_on(version: str) -> None:
    frame = read(server_frames.connected_frame(version, "srv", (5, 6), {"user-name": "a:b"}, "s-1"), version)
    expected = {"version": version, "server": "srv", "session": "s-1", "user-name": "a:b"}
    if version != V10:
        expected["heart-beat"] = "5,6"
    assert frame == Frame("CONNECTED", expected)


@pytest.mark.parametrize("version", VERSIONS)
def test_receipt_and_error_frames_read_back(version: str) -> None:
    assert read(server_frames.receipt_frame("r:1", version), version) == Frame("RECEIPT", {"receipt-id": "r:1"})
    error = read(server_frames.error_frame("bad", "why", "r:2", {"x": "y"}, version), version)
    headers = {"message": "bad", "content-type": "text/plain", "receipt-id": "r:2", "x": "y"}
    assert error == Frame("ERROR", headers, b"why")

"""FrameParser: bytes in, frames out, incrementally and within Limits."""

from __future__ import annotations

import time

import pytest

from django_stomp_push.stomp import (
    V10,
    V11,
    V12,
    VERSIONS,
    Frame,
    FrameParser,
    FrameTooLarge,
    HeaderTooLong,
    Limits,
    MalformedFrame,
    StompError,
    TooManyHeaders,
)

SEND = b"SEND\ndestination:/q\n\nhello\x00"


def feed_bytewise(parser: FrameParser, data: bytes) -> list[Frame]:
    return [frame for i in range(len(data)) for frame in parser.feed(data[i : i + 1])]


# -- one frame ---------------------------------------------------------------------------------------------


def test_parses_command_headers_and_body() -> None:
    assert FrameParser().feed(SEND) == [Frame("SEND", {"destination": "/q"}, b"hello")]


def test_frame_without_headers_or_body() -> None:
    assert FrameParser().feed(b"DISCONNECT\n\n\x00") == [Frame("DISCONNECT")]


def test_body_without_content_length_ends_at_the_first_nul() -> None:
    parser = FrameParser()
    assert parser.feed(b"SEND\n\nab\x00cd") == [Frame("SEND", {}, b"ab")]
    assert parser.buffered == 2


def test_content_length_body_may_contain_nul() -> None:
    data = b"SEND\ncontent-length:5\n\na\x00b\x00c\x00"
    assert FrameParser().feed(data) == [Frame("SEND", {"content-length": "5"}, b"a\x00b\x00c")]


def test_content_length_zero_is_an_empty_body() -> None:
    assert FrameParser().feed(b"SEND\ncontent-length:0\n\n\x00") == [Frame("SEND", {"content-length": "0"})]


def test_body_may_hold_any_bytes() -> None:
    assert FrameParser().feed(b"SEND\n\n\xff\xfe\n\n\r\n\x00")[0].body == b"\xff\xfe\n\n\r\n"


@pytest.mark.parametrize(
    "data",
    [
        b"SEND\r\ndestination:/q\r\n\r\nhello\x00",
        b"SEND\r\ndestination:/q\n\r\nhello\x00",
        b"SEND\ndestination:/q\r\n\nhello\x00",
    ],
)
def test_crlf_line_endings_are_accepted(data: bytes) -> None:
    assert FrameParser(version=V12).feed(data) == [Frame("SEND", {"destination": "/q"}, b"hello")]


@pytest.mark.parametrize("version", VERSIONS)
def test_repeated_header_first_one_wins(version: str) -> None:
    data = b"MESSAGE\nfoo:first\nfoo:second\nbar:x\nfoo:third\n\n\x00"
    assert FrameParser(version=version).feed(data)[0].headers == {"foo": "first", "bar": "x"}


def test_header_value_is_everything_after_the_first_colon() -> None:
    assert FrameParser(version=V10).feed(b"SEND\nk:a:b:\n\n\x00")[0].headers == {"k": "a:b:"}


def test_header_value_may_be_empty() -> None:
    assert FrameParser().feed(b"SEND\nk:\n\n\x00")[0].headers == {"k": ""}


@pytest.mark.parametrize(
    ("version", "value"),
    [
        (V10, "a\\\\b\\cc\\nd"),
        (V11, "a\\b:c\nd"),
        (V12, "a\\b:c\nd"),
    ],
)
def test_headers_are_unescaped_for_the_parsers_version(version: str, value: str) -> None:
    assert FrameParser(version=version).feed(b"SEND\nk:a\\\\b\\cc\\nd\n\n\x00")[0].headers == {"k": value}


@pytest.mark.parametrize("version", VERSIONS)
def test_connect_headers_are_not_unescaped(version: str) -> None:
    data = b"CONNECT\npasscode:a\\b\\c\n\n\x00"
    assert FrameParser(version=version).feed(data)[0].headers == {"passcode": "a\\b\\c"}


@pytest.mark.parametrize("version", [V11, V12])
def test_undefined_escape_in_a_header_is_malformed(version: str) -> None:
    with pytest.raises(MalformedFrame, match="invalid header escape"):
        FrameParser(version=version).feed(b"SEND\nk:a\\tb\n\n\x00")


def test_carriage_return_escape_in_a_1_1_header_is_malformed() -> None:
    with pytest.raises(MalformedFrame):
        FrameParser(version=V11).feed(b"SEND\nk:a\\rb\n\n\x00")


def test_carriage_return_escape_in_a_1_2_header_is_decoded() -> None:
    assert FrameParser(version=V12).feed(b"SEND\nk:a\\rb\n\n\x00")[0].headers == {"k": "a\rb"}


@pytest.mark.parametrize("command", [b"send", b"Send", b"SEND1", b"SE ND", b"S" * 33])
def test_command_line_must_be_an_uppercase_word(command: bytes) -> None:
    with pytest.raises(MalformedFrame, match="malformed command line"):
        FrameParser().feed(command + b"\n\n\x00")


def test_header_line_without_colon_is_malformed() -> None:
    with pytest.raises(MalformedFrame, match="malformed header"):
        FrameParser().feed(b"SEND\nno-colon\n\n\x00")


@pytest.mark.parametrize("header", [b"k\xff:v", b"k:\xc3(", b"k:\xed\xa0\x80", b"\xc0\xaf:v"])
def test_invalid_utf8_in_headers_is_malformed(header: bytes) -> None:
    with pytest.raises(MalformedFrame, match="invalid UTF-8"):
        FrameParser().feed(b"SEND\n" + header + b"\n\n\x00")


@pytest.mark.parametrize(
    "value", ["-1", "+1", "abc", "1.5", "", " 5", "5 ", "0x10", "1e3", "²", "١٢", "9" * 13], ids=repr
)
def test_bad_content_length_is_malformed(value: str) -> None:
    with pytest.raises(MalformedFrame, match="invalid content-length"):
        FrameParser().feed(b"SEND\ncontent-length:" + value.encode() + b"\n\n" + b"x" * 20 + b"\x00")


@pytest.mark.parametrize("after_body", [b"x", b"\n", b"x\x00"])
def test_missing_nul_after_content_length_body_is_malformed(after_body: bytes) -> None:
    with pytest.raises(MalformedFrame, match="not terminated"):
        FrameParser().feed(b"SEND\ncontent-length:3\n\nabc" + after_body)


def test_parse_errors_are_stomp_errors() -> None:
    assert issubclass(MalformedFrame, StompError)


# -- NUL in the head ---------------------------------------------------------------------------------------

#: A client forging an ERROR frame: forwarded as it is, its header would end the frame at the NUL.
FORGED_ERROR = b"SEND\ndestination:/q\nx-note:hi\x00ERROR\nmessage:forged\n\nbody\x00"


def parse_error(data: bytes, version: str, *, bytewise: bool) -> StompError:
    parser = FrameParser(version=version)
    with pytest.raises(StompError) as info:
        feed_bytewise(parser, data) if bytewise else parser.feed(data)
    return info.value


bytewise = pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "1-byte chunks"])


@bytewise
@pytest.mark.parametrize("version", VERSIONS)
def test_nul_in_a_header_value_is_malformed(version: str, bytewise: bool) -> None:
    error = parse_error(FORGED_ERROR, version, bytewise=bytewise)
    assert (type(error), error.message, error.detail) == (
        MalformedFrame,
        "NUL in header",
        "header 'x-note' holds a NUL octet",
    )


@bytewise
@pytest.mark.parametrize("version", VERSIONS)
def test_nul_in_a_header_name_is_malformed(version: str, bytewise: bool) -> None:
    error = parse_error(b"SEND\ndestination:/q\nx\x00y:1\n\n\x00", version, bytewise=bytewise)
    assert (type(error), error.message, error.detail) == (
        MalformedFrame,
        "NUL in header",
        "header 'x\\x00y' holds a NUL octet",
    )


@bytewise
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("command", [b"\x00SEND", b"SE\x00ND", b"SEND\x00"])
def test_nul_in_the_command_line_is_malformed(command: bytes, version: str, bytewise: bool) -> None:
    error = parse_error(command + b"\ndestination:/q\n\n\x00", version, bytewise=bytewise)
    assert (type(error), error.message) == (MalformedFrame, "NUL in header")
    assert error.detail == f"command line {command.decode()!r} holds a NUL octet"


@pytest.mark.parametrize("version", VERSIONS)
def test_nul_in_a_connect_header_is_malformed(version: str) -> None:
    error = parse_error(b"CONNECT\naccept-version:1.2\nlogin:a\x00b\n\n\x00", version, bytewise=False)
    assert (error.message, error.detail) == ("NUL in header", "header 'login' holds a NUL octet")


def test_nul_in_a_repeated_header_is_malformed_too() -> None:
    error = parse_error(b"SEND\nk:1\nk:2\x00\n\n\x00", V12, bytewise=False)
    assert (error.message, error.detail) == ("NUL in header", "header 'k' holds a NUL octet")


def test_nul_error_names_at_most_40_characters_of_the_header() -> None:
    name = "n" * 39 + "é" + "x" * 100
    error = parse_error(f"SEND\n{name}:\x00\n\n\x00".encode(), V12, bytewise=False)
    assert error.detail == f"header {name[:40]!r} holds a NUL octet"


def test_nul_error_does_not_take_the_frames_receipt() -> None:
    error = parse_error(b"SEND\nreceipt:r1\nx:\x00\n\n\x00", V12, bytewise=False)
    assert error.receipt_id is None


def test_nul_in_the_body_is_still_the_end_of_the_frame() -> None:
    assert FrameParser().feed(b"SEND\nk:v\n\nab\x00") == [Frame("SEND", {"k": "v"}, b"ab")]


# -- the stream --------------------------------------------------------------------------------------------


def test_several_frames_in_one_chunk_come_out_in_order() -> None:
    data = SEND + b"SEND\ncontent-length:1\n\n\x00\x00" + b"DISCONNECT\n\n\x00"
    assert [f.command for f in FrameParser().feed(data)] == ["SEND", "SEND", "DISCONNECT"]


def test_incomplete_frame_yields_nothing_and_stays_buffered() -> None:
    parser = FrameParser()
    assert parser.feed(SEND[:-1]) == []
    assert parser.buffered == len(SEND) - 1


def test_buffer_is_empty_after_a_complete_frame() -> None:
    parser = FrameParser()
    parser.feed(SEND)
    assert parser.buffered == 0


STREAMS = {
    "plain": SEND,
    "content-length with nul": b"SEND\ncontent-length:3\n\n\x00\x00\x00\x00",
    "crlf": b"SEND\r\nk:v\r\n\r\nbody\x00",
    "escaped": b"MESSAGE\na\\cb:c\\nd\n\n\x00",
    "utf-8": "SEND\nk:ünïcødé ✓\n\n\x00".encode(),
    "two frames and heart-beats": b"\r\n" + SEND + b"\n\r\n" + SEND + b"\n",
}


@pytest.mark.parametrize("data", STREAMS.values(), ids=STREAMS.keys())
def test_frames_split_at_any_point_parse_the_same(data: bytes) -> None:
    whole = FrameParser().feed(data)
    for split in range(len(data) + 1):
        parser = FrameParser()
        assert parser.feed(data[:split]) + parser.feed(data[split:]) == whole, split


@pytest.mark.parametrize("data", STREAMS.values(), ids=STREAMS.keys())
def test_frames_fed_one_byte_at_a_time_parse_the_same(data: bytes) -> None:
    parser = FrameParser()
    assert feed_bytewise(parser, data) == FrameParser().feed(data)
    assert parser.buffered == 0


def frames_and_error(chunks: list[bytes]) -> tuple[list[Frame], tuple[type, str, str] | None]:
    """The frames before the first error, and that error."""
    parser, frames = FrameParser(), []
    try:
        for chunk in chunks:
            parser.receive_data(chunk)
            while (frame := parser.next_frame()) is not None:
                frames.append(frame)
    except StompError as exc:
        return frames, (type(exc), exc.message, exc.detail)
    return frames, None


ERROR_STREAMS = {
    "nul in a header": SEND + FORGED_ERROR,
    "invalid content-length": b"\n" + SEND + b"SEND\ncontent-length:x\n\n\x00",
    "not terminated": SEND + b"\r\nSEND\ncontent-length:1\n\nab\x00",
    "invalid escape": SEND + b"SEND\r\nk:\\t\r\n\r\n\x00",
    "malformed command": SEND + b"\n\nsend\n\n\x00",
    "invalid utf-8": SEND + b"SEND\nk\xff:v\n\n\x00",
}


@pytest.mark.parametrize("data", ERROR_STREAMS.values(), ids=ERROR_STREAMS.keys())
def test_errors_are_the_same_however_the_stream_is_split(data: bytes) -> None:
    whole = frames_and_error([data])
    assert whole[0] == [Frame("SEND", {"destination": "/q"}, b"hello")]
    assert whole[1] is not None
    for split in range(len(data) + 1):
        assert frames_and_error([data[:split], data[split:]]) == whole, split
    assert frames_and_error([data[i : i + 1] for i in range(len(data))]) == whole


def test_version_may_change_between_two_frames_of_one_chunk() -> None:
    parser = FrameParser(version=V10)
    parser.receive_data(b"SEND\nk:a\\cb\n\n\x00" * 2)
    assert parser.next_frame() == Frame("SEND", {"k": "a\\cb"})
    parser.version = V12
    assert parser.next_frame() == Frame("SEND", {"k": "a:b"})


def test_version_changed_while_the_body_arrives_applies_to_the_frame() -> None:
    parser = FrameParser(version=V10)
    assert parser.feed(b"SEND\nk:a\\cb\n\nbo") == []
    parser.version = V12
    assert parser.feed(b"dy\x00") == [Frame("SEND", {"k": "a:b"}, b"body")]


@pytest.mark.parametrize(
    ("data", "count"),
    [
        (b"\n", 1),
        (b"\r\n", 1),
        (b"\n\n\n", 3),
        (b"\r\n\n\r\n", 3),
        (b"\n" + SEND + b"\r\n" + SEND + b"\n\n", 4),
    ],
)
def test_heartbeat_eols_between_frames_are_counted(data: bytes, count: int) -> None:
    parser = FrameParser()
    parser.feed(data)
    assert parser.heartbeats == count


def test_heartbeats_yield_no_frames() -> None:
    parser = FrameParser()
    assert parser.feed(b"\n\r\n\n") == []
    assert parser.buffered == 0


def test_heartbeat_crlf_split_over_two_chunks_counts_once() -> None:
    parser = FrameParser()
    parser.feed(b"\r")
    parser.feed(b"\n")
    assert (parser.heartbeats, parser.buffered) == (1, 0)


def test_eols_inside_a_body_are_not_heartbeats() -> None:
    parser = FrameParser()
    parser.feed(b"SEND\n\n\n\n\x00")
    assert parser.heartbeats == 0


# -- limits ------------------------------------------------------------------------------------------------

SMALL = Limits(max_frame_size=64, max_header_count=3, max_header_length=20)


def test_default_max_frame_size_is_64_kib() -> None:
    assert Limits().max_frame_size == 64 * 1024


def sized_frame(size: int, *, content_length: bool) -> bytes:
    """A SEND frame of exactly ``size`` (10 to 99) bytes before its NUL."""
    if content_length:
        body_size = size - len(b"SEND\ncontent-length:NN\n\n")
        head = b"SEND\ncontent-length:%d\n\n" % body_size
    else:
        head = b"SEND\n\n"
        body_size = size - len(head)
    return head + b"x" * body_size + b"\x00"


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "nul-terminated"])
def test_frame_of_max_frame_size_is_accepted(content_length: bool) -> None:
    assert len(FrameParser(SMALL).feed(sized_frame(64, content_length=content_length))) == 1


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "nul-terminated"])
def test_frame_over_max_frame_size_is_too_large(content_length: bool) -> None:
    with pytest.raises(FrameTooLarge):
        FrameParser(SMALL).feed(sized_frame(65, content_length=content_length))


def test_too_large_content_length_fails_as_soon_as_the_headers_arrive() -> None:
    with pytest.raises(FrameTooLarge, match="frame too large") as info:
        FrameParser(SMALL).feed(b"SEND\ncontent-length:1000\n\n")
    assert "content-length 1000 " in info.value.detail


def test_too_large_body_without_content_length_fails_before_its_nul_arrives() -> None:
    parser = FrameParser(SMALL)
    parser.feed(b"SEND\n\n" + b"x" * 58)
    with pytest.raises(FrameTooLarge):
        parser.feed(b"x")


def test_endless_head_fails_once_it_exceeds_max_frame_size() -> None:
    limits = Limits(max_frame_size=64, max_header_count=100, max_header_length=100)
    parser = FrameParser(limits)
    parser.feed(b"SEND\n" + b"k:v\n" * 14 + b"k:v")  # 64 bytes
    with pytest.raises(FrameTooLarge):
        parser.feed(b"v")


def test_max_header_count_headers_are_accepted() -> None:
    assert len(FrameParser(SMALL).feed(b"SEND\na:1\nb:2\nc:3\n\n\x00")[0].headers) == 3


def test_more_than_max_header_count_headers_is_too_many() -> None:
    with pytest.raises(TooManyHeaders):
        FrameParser(SMALL).feed(b"SEND\na:1\nb:2\nc:3\nd:4\n\n\x00")


def test_too_many_headers_fails_before_the_head_is_complete() -> None:
    with pytest.raises(TooManyHeaders):
        FrameParser(SMALL).feed(b"SEND\na:1\nb:2\nc:3\nd:4\n")


def test_header_of_max_header_length_is_accepted() -> None:
    line = b"k:" + b"v" * 18
    assert FrameParser(SMALL).feed(b"SEND\n" + line + b"\n\n\x00")[0].headers == {"k": "v" * 18}


def test_header_over_max_header_length_is_too_long() -> None:
    with pytest.raises(HeaderTooLong):
        FrameParser(SMALL).feed(b"SEND\nk:" + b"v" * 19 + b"\n\n\x00")


def test_header_too_long_fails_before_its_line_ends() -> None:
    with pytest.raises(HeaderTooLong):
        FrameParser(SMALL).feed(b"SEND\nk:" + b"v" * 19)


def test_a_header_line_too_long_fails_before_the_head_ends() -> None:
    parser = FrameParser(SMALL)
    parser.feed(b"SEND\nk:" + b"v" * 10)
    with pytest.raises(HeaderTooLong):
        parser.feed(b"v" * 9 + b"\na:1")  # the long line is complete, the head is not


def test_command_line_counts_against_max_header_length_before_it_ends() -> None:
    with pytest.raises(HeaderTooLong):
        FrameParser(SMALL).feed(b"S" * 21)


def test_header_length_is_measured_in_bytes() -> None:
    line = "k:" + "é" * 10  # 12 characters, 22 bytes
    with pytest.raises(HeaderTooLong):
        FrameParser(SMALL).feed(f"SEND\n{line}\n\n\x00".encode())


def test_crlf_does_not_count_against_max_header_length() -> None:
    line = b"k:" + b"v" * 18
    assert FrameParser(SMALL).feed(b"SEND\r\n" + line + b"\r\n\r\n\x00")[0].headers == {"k": "v" * 18}


@pytest.mark.parametrize(
    "data",
    [
        "SEND\nk:" + "é" * 9 + "\n\n\x00",  # 20 bytes: as long as allowed
        "SEND\r\nk:" + "v" * 18 + "\r\n\r\n\x00",
        "SEND\na:1\nb:2\nc:3\r\n\r\n\x00",
        "SEND\n\n" + "x" * 57 + "\x00",
    ],
)
def test_a_frame_within_limits_is_accepted_however_it_is_split(data: str) -> None:
    raw = data.encode()
    assert feed_bytewise(FrameParser(SMALL), raw) == FrameParser(SMALL).feed(raw) != []


@pytest.mark.parametrize(
    "data",
    [
        b"SEND\n\n" + b"x" * 10_000,
        b"SEND\n" + b"k:v\n" * 10_000,
        b"SEND\nk:" + b"v" * 10_000,
        b"SEND\ncontent-length:60\n\n" + b"x" * 10_000,
    ],
)
def test_buffered_bytes_never_exceed_max_frame_size(data: bytes) -> None:
    parser = FrameParser(Limits(max_frame_size=100, max_header_count=10_000, max_header_length=10_000))
    with pytest.raises(StompError):
        for i in range(0, len(data), 7):
            parser.feed(data[i : i + 7])
            assert parser.buffered <= 100


# -- cost --------------------------------------------------------------------------------------------------

#: CPU seconds for the 120 KB frame below fed one byte at a time. This parser needs about 0.2 s; the parser that
#: rescanned its buffer on each byte, at a cost that grew with the square of the frame, was past the bound before
#: byte 20,480 and needed 17 s for a frame a quarter this size (minutes for this one). Ten times what it needs.
ONE_BYTE_AT_A_TIME_CPU_SECONDS = 2.0


def test_a_frame_fed_one_byte_at_a_time_costs_time_linear_in_its_size() -> None:
    limits = Limits(max_frame_size=128 * 1024, max_header_count=8 * 1024)
    head = b"SEND\n" + b"".join(b"h%06d:v\n" % i for i in range(6_000)) + b"\n"  # 60 KB of headers
    data = head + b"x" * 60_000 + b"\x00"  # and a 60 KB body, without content-length
    parser, frames = FrameParser(limits), []
    started = time.process_time()
    for i in range(len(data)):
        parser.receive_data(data[i : i + 1])
        frames += iter(parser.next_frame, None)
        if i % 4096 == 0:  # fail fast rather than hang on a quadratic parser
            assert time.process_time() - started < ONE_BYTE_AT_A_TIME_CPU_SECONDS, f"at byte {i}"
    assert time.process_time() - started < ONE_BYTE_AT_A_TIME_CPU_SECONDS
    assert frames == FrameParser(limits).feed(data)
    assert len(frames[0].headers) == 6_000

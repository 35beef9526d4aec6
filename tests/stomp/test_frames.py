"""Frames: header escaping per STOMP version, and encoding."""

from __future__ import annotations

import pytest

from django_stomp_push.stomp import (
    V10,
    V11,
    V12,
    VERSIONS,
    Frame,
    FrameParser,
    MalformedFrame,
    encode,
    escape,
    unescape,
)

RAW = 'a\\b:c\nd\re"'

# -- escape ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "escaped"),
    [
        (V10, RAW),
        (V11, 'a\\\\b\\cc\\nd\re"'),
        (V12, 'a\\\\b\\cc\\nd\\re"'),
    ],
)
def test_escape_follows_the_versions_table(version: str, escaped: str) -> None:
    assert escape(RAW, version) == escaped


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("command", ["CONNECT", "CONNECTED"])
def test_connect_and_connected_headers_are_never_escaped(version: str, command: str) -> None:
    assert escape(RAW, version, command) == RAW


@pytest.mark.parametrize("version", [V11, V12])
def test_unescape_undoes_escape(version: str) -> None:
    assert unescape(escape(RAW, version), version) == RAW


@pytest.mark.parametrize(
    ("version", "escaped", "raw"),
    [
        (V11, "\\\\", "\\"),
        (V11, "\\n", "\n"),
        (V11, "\\c", ":"),
        (V12, "\\\\", "\\"),
        (V12, "\\n", "\n"),
        (V12, "\\c", ":"),
        (V12, "\\r", "\r"),
    ],
)
def test_unescape_decodes_each_defined_sequence(version: str, escaped: str, raw: str) -> None:
    assert unescape(f"x{escaped}y", version) == f"x{raw}y"


def test_unescape_is_identity_in_1_0() -> None:
    assert unescape("a\\nb\\c\\t\\", V10) == "a\\nb\\c\\t\\"


@pytest.mark.parametrize("version", VERSIONS)
def test_unescape_is_identity_for_connect_frames(version: str) -> None:
    assert unescape("pass\\word\\", version, "CONNECT") == "pass\\word\\"


@pytest.mark.parametrize("version", [V11, V12])
@pytest.mark.parametrize("value", ["\\t", "a\\tb", "\\x", "\\C", "\\N", "trailing\\"])
def test_undefined_escape_is_a_malformed_frame(version: str, value: str) -> None:
    with pytest.raises(MalformedFrame, match="invalid header escape"):
        unescape(value, version)


def test_carriage_return_escape_is_invalid_in_1_1() -> None:
    with pytest.raises(MalformedFrame) as info:
        unescape("a\\rb", V11)
    assert "'\\\\r'" in info.value.detail and "1.1" in info.value.detail


def test_raw_carriage_return_is_kept_in_1_1() -> None:
    assert escape("a\rb", V11) == "a\rb"


# -- encode ------------------------------------------------------------------------------------------------


def test_frame_defaults_to_no_headers_and_empty_body() -> None:
    frame = Frame("DISCONNECT")
    assert (frame.headers, frame.body) == ({}, b"")


def test_encode_writes_command_headers_blank_line_body_and_nul() -> None:
    frame = Frame("SEND", {"destination": "/q", "x": "1"}, b"hello")
    assert encode(frame) == b"SEND\ndestination:/q\nx:1\n\nhello\x00"


def test_encode_keeps_header_order() -> None:
    headers = {"z": "1", "a": "2", "m": "3"}
    assert encode(Frame("SEND", headers), V12) == b"SEND\nz:1\na:2\nm:3\n\n\x00"


def test_encode_defaults_to_1_2() -> None:
    frame = Frame("MESSAGE", {"k": "a\rb"})
    assert encode(frame) == encode(frame, V12) == b"MESSAGE\nk:a\\rb\n\n\x00"


@pytest.mark.parametrize(
    ("version", "line"),
    [
        (V11, b"a\\cb:c\\\\d\\ne\rf"),
        (V12, b"a\\cb:c\\\\d\\ne\\rf"),
    ],
)
def test_encode_escapes_header_names_and_values(version: str, line: bytes) -> None:
    assert encode(Frame("MESSAGE", {"a:b": "c\\d\ne\rf"}), version) == b"MESSAGE\n" + line + b"\n\n\x00"


@pytest.mark.parametrize("version", VERSIONS)
def test_encode_replaces_line_breaks_where_nothing_is_escaped(version: str) -> None:
    # 1.0 and CONNECTED cannot carry an EOL in a header: it would end the line. A space keeps the frame well formed.
    assert encode(Frame("CONNECTED", {"server": "a\r\nb:c\\d"}), version) == b"CONNECTED\nserver:a  b:c\\d\n\n\x00"


def test_encode_replaces_line_breaks_in_1_0() -> None:
    assert encode(Frame("MESSAGE", {"k": "a\nb\rc"}), V10) == b"MESSAGE\nk:a b c\n\n\x00"


def test_encode_adds_content_length_to_a_body_containing_nul() -> None:
    assert encode(Frame("SEND", {}, b"a\x00b")) == b"SEND\ncontent-length:3\n\na\x00b\x00"


def test_encode_adds_no_content_length_to_a_body_without_nul() -> None:
    assert b"content-length" not in encode(Frame("SEND", {}, b"abc"))


def test_encode_keeps_an_existing_content_length() -> None:
    assert encode(Frame("SEND", {"content-length": "3"}, b"a\x00b")) == b"SEND\ncontent-length:3\n\na\x00b\x00"


def test_encode_does_not_change_the_frame() -> None:
    frame = Frame("SEND", {"destination": "/q"}, b"\x00")
    encode(frame)
    assert frame.headers == {"destination": "/q"}


# -- encode, then decode -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "headers"),
    [
        (V10, {"destination": "/q", "path": "a\\b:c"}),
        (V11, {"destination": "/q", "odd:name": "a\\b:c\nd\re"}),
        (V12, {"destination": "/q", "odd:name": "a\\b:c\nd\re\r"}),
    ],
)
def test_what_encode_writes_the_parser_reads_back(version: str, headers: dict[str, str]) -> None:
    frame = Frame("MESSAGE", headers, b"body\x00with nul")
    parsed = FrameParser(version=version).feed(encode(frame, version))
    assert parsed == [Frame("MESSAGE", {**headers, "content-length": "13"}, b"body\x00with nul")]


@pytest.mark.parametrize("version", VERSIONS)
def test_connected_reads_back_unescaped(version: str) -> None:
    frame = Frame("CONNECTED", {"version": version, "session": "a\\b:c"})
    assert FrameParser(version=version).feed(encode(frame, version)) == [frame]


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
@pytest.mark.parametrize("command", ["ERROR", "MESSAGE", "CONNECTED"])
def test_a_nul_in_a_header_the_server_writes_never_ends_the_frame(version: str, command: str) -> None:
    data = encode(Frame(command, {"message": "bad\x00reason", "x\x00": "v"}, b"body"), version)
    assert data.count(b"\x00") == 1 and data.endswith(b"body\x00")
    (frame,) = FrameParser(version=version).feed(data)
    assert frame.headers["message"] == "bad\ufffdreason" and frame.headers["x\ufffd"] == "v"

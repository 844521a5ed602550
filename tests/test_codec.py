"""The codec: size before parsing, one map with string keys, no extension types, encode once."""

from __future__ import annotations

import subprocess
import sys

import msgpack
import orjson
import pytest

from messaging.errors import CloseCode, ErrorCode, ProtocolViolation
from messaging.protocol.codec import (
    MAX_DEPTH,
    MAX_FRAME_BYTES,
    SUBPROTOCOLS,
    EncodedFrame,
    Encoding,
    decode,
    encode,
    encoding_for,
    select_subprotocol,
)
from messaging.protocol.frames import InvalidFrame

FRAME = {"t": "send", "id": 7, "conv": "c-1", "cid": "a", "body": "Bonjour l'école ☀", "x": [1.5]}


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["messaging.v1.msgpack", "messaging.v1.json"], "messaging.v1.msgpack"),
        (["messaging.v1.json", "messaging.v1.msgpack"], "messaging.v1.json"),
        (["chat", "messaging.v1.json"], "messaging.v1.json"),
        (["messaging.v2.msgpack"], None),
        ([], None),
    ],
)
def test_select_subprotocol_takes_first_supported(offered: list[str], chosen: str | None) -> None:
    """The first offered subprotocol that the server supports is selected, else none."""
    assert select_subprotocol(offered) == chosen


def test_no_subprotocol_means_json() -> None:
    """A client offering no known subprotocol gets JSON semantics."""
    assert encoding_for(None) is Encoding.JSON
    assert encoding_for("messaging.v1.msgpack") is Encoding.MSGPACK
    assert set(SUBPROTOCOLS.values()) == set(Encoding)


@pytest.mark.parametrize("encoding", list(Encoding))
def test_round_trip_keeps_the_frame(encoding: Encoding) -> None:
    """A frame encoded then decoded in either encoding comes back equal."""
    assert decode(encode(FRAME, encoding), encoding) == FRAME


def test_encode_gives_text_for_json_and_bytes_for_msgpack() -> None:
    """JSON goes out as a text frame, msgpack as a binary frame."""
    assert isinstance(encode(FRAME, Encoding.JSON), str)
    assert isinstance(encode(FRAME, Encoding.MSGPACK), bytes)


def test_binary_json_frame_is_accepted_in_json_mode() -> None:
    """A binary frame holding UTF-8 JSON is read like a text frame."""
    assert decode(orjson.dumps(FRAME), Encoding.JSON) == FRAME


def test_text_frame_is_json_even_in_msgpack_mode() -> None:
    """A text frame cannot be msgpack, so it is read as JSON."""
    assert decode(orjson.dumps(FRAME).decode(), Encoding.MSGPACK) == FRAME


def test_msgpack_binary_values_keep_strings_as_str() -> None:
    """Strings unpack as str (raw=False) and binaries as bytes."""
    data = msgpack.packb({"t": "x", "b": b"\x00\x01"}, use_bin_type=True)
    assert decode(data, Encoding.MSGPACK) == {"t": "x", "b": b"\x00\x01"}


def _wire_size(data: bytes | str) -> int:
    return len(data.encode() if isinstance(data, str) else data)


@pytest.mark.parametrize("encoding", list(Encoding))
def test_frame_at_the_size_limit_is_decoded(encoding: Encoding) -> None:
    """A frame of exactly MAX_FRAME_BYTES bytes is accepted."""
    padding = MAX_FRAME_BYTES - _wire_size(encode({"t": "x", "p": "a" * 1000}, encoding))
    frame = {"t": "x", "p": "a" * (1000 + padding)}
    data = encode(frame, encoding)
    assert _wire_size(data) == MAX_FRAME_BYTES
    assert decode(data, encoding) == frame


@pytest.mark.parametrize("encoding", list(Encoding))
def test_frame_over_the_size_limit_closes_with_1009(encoding: Encoding) -> None:
    """One byte over MAX_FRAME_BYTES is a protocol violation with close code 1009."""
    with pytest.raises(ProtocolViolation) as caught:
        decode(b" " * (MAX_FRAME_BYTES + 1), encoding)
    assert caught.value.close_code is CloseCode.TOO_BIG


def test_size_counts_utf8_bytes_of_text_frames() -> None:
    """A text frame is measured in UTF-8 bytes, not characters."""
    text = '{"t":"x","p":"' + "é" * (MAX_FRAME_BYTES // 2) + '"}'
    assert len(text) < MAX_FRAME_BYTES
    with pytest.raises(ProtocolViolation):
        decode(text, Encoding.JSON)


def test_oversized_garbage_is_refused_before_parsing() -> None:
    """An oversized frame is refused for its size even when it is not valid JSON."""
    with pytest.raises(ProtocolViolation):
        decode("x" * (10 * MAX_FRAME_BYTES), Encoding.JSON)


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (b"", Encoding.JSON),
        (b"", Encoding.MSGPACK),
        ("{", Encoding.JSON),
        ("[1, 2]", Encoding.JSON),
        ("42", Encoding.JSON),
        ("null", Encoding.JSON),
        ('"t"', Encoding.JSON),
        ('{"t": "x"} {"t": "y"}', Encoding.JSON),
        ('{"t": NaN}', Encoding.JSON),
        ('{"t": "\\ud800"}', Encoding.JSON),
        (b'{"t": "\xff"}', Encoding.JSON),
        ("{\"t\": 'x'}", Encoding.JSON),
        ("\ud800", Encoding.JSON),
        (msgpack.packb([1, 2]), Encoding.MSGPACK),
        (msgpack.packb({"t": "x"}) + b"\x00", Encoding.MSGPACK),
        (msgpack.packb({"t": "x"})[:-1], Encoding.MSGPACK),
        (msgpack.packb({1: "x"}), Encoding.MSGPACK),
        (msgpack.packb({b"t": "x"}, use_bin_type=True), Encoding.MSGPACK),
        (msgpack.packb({"t": {2: "x"}}), Encoding.MSGPACK),
        (msgpack.packb({"t": [{(1, 2): 1}]}, use_bin_type=True), Encoding.MSGPACK),
        (b"\x81\xa1t\xa1\xff", Encoding.MSGPACK),
        (b"\xc1", Encoding.MSGPACK),
    ],
)
def test_malformed_frames_are_invalid(data: bytes | str, encoding: Encoding) -> None:
    """Anything but one complete map with string keys is InvalidFrame with code invalid."""
    with pytest.raises(InvalidFrame) as caught:
        decode(data, encoding)
    assert caught.value.code is ErrorCode.INVALID
    assert caught.value.request_id is None


_PREFIX = b"\x82\xa1t\xa1x\xa1v"  # {"t": "x", "v": <the value that follows>}


@pytest.mark.parametrize(
    "value",
    [
        msgpack.packb(msgpack.ExtType(1, b"abc")),
        msgpack.packb(msgpack.ExtType(5, b"")),
        b"\xd6\xff\x00\x00\x00\x01",  # a 32-bit timestamp (ext type -1)
        msgpack.packb(msgpack.Timestamp(1, 5)),  # a 64-bit timestamp
        b"\xc7\x00\x07",  # ext 8 of length 0
    ],
)
def test_msgpack_extension_types_are_refused(value: bytes) -> None:
    """Extension types, timestamps included, never reach the application."""
    with pytest.raises(InvalidFrame):
        decode(_PREFIX + value, Encoding.MSGPACK)


def test_msgpack_prefix_of_the_extension_test_is_a_valid_frame() -> None:
    """The map prefix used above decodes with a plain value, so the refusals are the ext's."""
    assert decode(_PREFIX + b"\x01", Encoding.MSGPACK) == {"t": "x", "v": 1}


@pytest.mark.parametrize("encoding", list(Encoding))
def test_nesting_at_the_depth_limit_is_accepted(encoding: Encoding) -> None:
    """A map nested exactly MAX_DEPTH deep (the outer map counting as 1) is accepted."""
    frame: dict[str, object] = {"t": "x"}
    for _ in range(MAX_DEPTH - 1):
        frame = {"t": "x", "n": frame}
    assert decode(encode(frame, encoding), encoding) == frame


@pytest.mark.parametrize("encoding", list(Encoding))
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 500, 5000, MAX_FRAME_BYTES // 3])
def test_deep_nesting_is_invalid(encoding: Encoding, depth: int) -> None:
    """Lists nested past MAX_DEPTH, up to what fits in a frame, are InvalidFrame."""
    if encoding is Encoding.JSON:
        data: bytes | str = '{"t":' + "[" * depth + "]" * depth + "}"
    else:
        data = b"\x81\xa1t" + b"\x91" * depth + b"\xc0"
    assert len(data) <= MAX_FRAME_BYTES
    with pytest.raises(InvalidFrame):
        decode(data, encoding)


def test_msgpack_oversized_length_headers_are_invalid() -> None:
    """A msgpack header announcing more items than the frame holds is InvalidFrame."""
    for header in (b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff"):
        with pytest.raises(InvalidFrame):
            decode(header, Encoding.MSGPACK)


@pytest.mark.parametrize("encoding", list(Encoding))
def test_encode_refuses_values_without_a_wire_form(encoding: Encoding) -> None:
    """A datetime or an object in a server frame is a programming error (TypeError)."""
    import datetime

    with pytest.raises(TypeError):
        encode({"t": "x", "ts": datetime.datetime.now(datetime.UTC)}, encoding)
    with pytest.raises(TypeError):
        encode({"t": "x", "o": object()}, encoding)


def test_encoded_frame_encodes_once_per_encoding() -> None:
    """EncodedFrame returns the same encoded object on every call for an encoding."""
    encoded = EncodedFrame(FRAME)
    first_json, first_msgpack = encoded.get(Encoding.JSON), encoded.get(Encoding.MSGPACK)
    assert encoded.get(Encoding.JSON) is first_json
    assert encoded.get(Encoding.MSGPACK) is first_msgpack
    assert first_json == encode(FRAME, Encoding.JSON)
    assert first_msgpack == encode(FRAME, Encoding.MSGPACK)


def test_encoded_frame_from_msgpack_keeps_the_payload() -> None:
    """A frame received already encoded is sent as is in msgpack and re-encoded for JSON."""
    payload = EncodedFrame(FRAME).msgpack()
    received = EncodedFrame.from_msgpack(payload)
    assert received.get(Encoding.MSGPACK) is payload
    assert received.frame == FRAME
    assert received.get(Encoding.JSON) == encode(FRAME, Encoding.JSON)


@pytest.mark.parametrize("payload", [b"\x91\x01", b"\xc1", b""])
def test_encoded_frame_from_a_bad_payload_is_refused(payload: bytes) -> None:
    """A payload that is not a msgpack map raises ValueError when it is decoded."""
    with pytest.raises(ValueError):
        _ = EncodedFrame.from_msgpack(payload).frame


def test_encoded_frame_is_lazy() -> None:
    """EncodedFrame encodes nothing until an encoding is asked for."""
    encoded = EncodedFrame({"t": "x", "o": object()})
    assert "EncodedFrame" in repr(encoded)
    with pytest.raises(TypeError):
        encoded.get(Encoding.JSON)


def test_protocol_package_is_pure() -> None:
    """Importing messaging.protocol loads no event loop, framework, broker or database module."""
    code = (
        "import sys, messaging.protocol.codec, messaging.protocol.frames, "
        "messaging.protocol.ratelimit\n"
        "bad = {'asyncio', 'anyio', 'starlette', 'redis', 'asyncpg', 'uvicorn'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"

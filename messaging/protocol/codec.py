"""Frames on the wire: one map per WebSocket message, in JSON or MessagePack.

This module owns every option of orjson and msgpack; nothing else in the project calls them for
frames. Decoding is defensive, in this order:

1. size: more than `MAX_FRAME_BYTES` is a `ProtocolViolation` (close 1009), before any parsing;
2. syntax: one complete value, no trailing data, no msgpack extension types (timestamps included),
   string/binary/array/map lengths bounded by the frame size;
3. shape: a map whose keys, at every depth, are strings, with nesting at most `MAX_DEPTH` deep,
   holding only null, booleans, numbers, strings, binaries (msgpack), arrays and maps.

Anything else is `InvalidFrame` (code `invalid`). No decoder exception escapes.

A text frame is always JSON, whichever subprotocol was chosen (a text frame cannot be msgpack); a
binary frame is msgpack under `messaging.v1.msgpack` and UTF-8 JSON otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any, Final, NoReturn

import msgpack
import orjson

from messaging.errors import CloseCode, ProtocolViolation
from messaging.protocol.frames import InvalidFrame, request_id_of

MAX_FRAME_BYTES: Final = 64 * 1024
MAX_DEPTH: Final = 16
"""Deepest nesting accepted; the deepest valid client frame (hello with resume) has depth 2."""


class Encoding(StrEnum):
    JSON = "json"
    MSGPACK = "msgpack"


SUBPROTOCOLS: Final[dict[str, Encoding]] = {
    "messaging.v1.msgpack": Encoding.MSGPACK,
    "messaging.v1.json": Encoding.JSON,
}


def select_subprotocol(offered: Sequence[str]) -> str | None:
    """The first subprotocol the client offers that we support; None: JSON, none named back."""
    for name in offered:
        if name in SUBPROTOCOLS:
            return name
    return None


def encoding_for(subprotocol: str | None) -> Encoding:
    """The encoding of a selected subprotocol (JSON when none was selected)."""
    return SUBPROTOCOLS.get(subprotocol or "", Encoding.JSON)


# --- decoding ------------------------------------------------------------------------------------


def _refuse_ext(code: int, data: bytes) -> NoReturn:
    raise ValueError("msgpack extension types are not accepted")


def _unpack(data: bytes) -> object:
    return msgpack.unpackb(
        data,
        raw=False,
        strict_map_key=True,
        use_list=True,
        ext_hook=_refuse_ext,
        timestamp=0,
        max_ext_len=0,
        max_str_len=MAX_FRAME_BYTES,
        max_bin_len=MAX_FRAME_BYTES,
        max_array_len=MAX_FRAME_BYTES,
        max_map_len=MAX_FRAME_BYTES // 2,
    )


_SCALARS: Final = frozenset({str, int, float, bool, bytes, type(None)})


def _check_shape(value: object) -> dict[str, Any]:
    """Raise InvalidFrame unless `value` is a map of plain values with string keys throughout."""
    if type(value) is not dict:
        raise InvalidFrame("frame_not_map")
    stack: list[tuple[dict[Any, Any] | list[Any], int]] = [(value, 1)]
    while stack:  # iterative: a deep frame must not exhaust Python's recursion
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidFrame("frame_too_deep", max=MAX_DEPTH)
        if type(node) is dict:
            if any(type(key) is not str for key in node):
                raise InvalidFrame("invalid_frame")
            items: Iterable[object] = node.values()
        else:
            items = node
        for item in items:
            if type(item) is dict or type(item) is list:
                stack.append((item, depth + 1))
            elif type(item) not in _SCALARS:
                raise InvalidFrame("invalid_frame")
    return value


def decode(data: bytes | str, encoding: Encoding) -> dict[str, Any]:
    """One received WebSocket message as a map.

    Raises `ProtocolViolation(CloseCode.TOO_BIG)` over `MAX_FRAME_BYTES`, else `InvalidFrame`
    for anything that is not one well-formed map (module docstring); nothing else.
    """
    if isinstance(data, str):
        if len(data) > MAX_FRAME_BYTES:  # at least one byte per character
            raise ProtocolViolation(CloseCode.TOO_BIG, "frame_too_large")
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: not from a real text frame
            raise InvalidFrame("invalid_frame") from None
        is_text = True
    else:
        is_text = False
    if len(data) > MAX_FRAME_BYTES:
        raise ProtocolViolation(CloseCode.TOO_BIG, "frame_too_large")
    try:
        if encoding is Encoding.MSGPACK and not is_text:
            value = _unpack(data)
        else:
            value = orjson.loads(data)
    except (ValueError, TypeError, RecursionError, OverflowError):
        # orjson.JSONDecodeError, msgpack's UnpackException family, UnicodeDecodeError and the
        # ValueError of the ext hook are all ValueError subclasses.
        raise InvalidFrame("invalid_frame") from None
    try:
        return _check_shape(value)
    except InvalidFrame as exc:
        if type(value) is dict:  # a map with a bad value inside: answer its request by id
            exc.request_id = request_id_of(value)
        raise


# --- encoding ------------------------------------------------------------------------------------


_JSON_OPTIONS: Final = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _to_json(frame: Mapping[str, Any]) -> str:
    return orjson.dumps(frame, option=_JSON_OPTIONS).decode("utf-8")


def _to_msgpack(frame: Mapping[str, Any]) -> bytes:
    packed: bytes = msgpack.packb(frame, use_bin_type=True, datetime=False)
    return packed


def encode(frame: Mapping[str, Any], encoding: Encoding) -> bytes | str:
    """A server frame for the wire: JSON as text (str), msgpack as binary (bytes).

    Frames hold plain values only (str, int, float, bool, None, lists, tuples, maps with string
    keys, enum members); anything else, datetimes included, is a programming error (TypeError):
    format timestamps with `frames.iso_utc`.
    """
    return _to_msgpack(frame) if encoding is Encoding.MSGPACK else _to_json(frame)


class EncodedFrame:
    """One server frame encoded at most once per encoding, for fan-out to many sockets.

    The frame must not be mutated after the first `get`.
    """

    __slots__ = ("_frame", "_json", "_msgpack")

    def __init__(self, frame: Mapping[str, Any]) -> None:
        self._frame: Mapping[str, Any] | None = frame
        self._json: str | None = None
        self._msgpack: bytes | None = None

    @classmethod
    def from_msgpack(cls, payload: bytes) -> EncodedFrame:
        """A frame that arrives already in msgpack (from the bus), kept as is for msgpack sockets
        and decoded only if a JSON socket or a reader of `frame` needs it.

        The payload is trusted (made by `msgpack()` on another process) and not held to client
        limits; anything but a msgpack map raises ValueError when it is decoded.
        """
        encoded = cls.__new__(cls)
        encoded._frame = None
        encoded._json = None
        encoded._msgpack = payload
        return encoded

    @property
    def frame(self) -> Mapping[str, Any]:
        if self._frame is None:
            assert self._msgpack is not None
            frame = msgpack.unpackb(self._msgpack, raw=False)
            if type(frame) is not dict:
                raise ValueError("an encoded frame must be a msgpack map")
            self._frame = frame
        return self._frame

    def get(self, encoding: Encoding) -> bytes | str:
        """The frame in `encoding`, encoded on first use."""
        return self.msgpack() if encoding is Encoding.MSGPACK else self.json()

    def msgpack(self) -> bytes:
        """The frame in msgpack, encoded on first use."""
        if self._msgpack is None:
            self._msgpack = _to_msgpack(self.frame)
        return self._msgpack

    def json(self) -> str:
        """The frame in JSON, encoded on first use."""
        if self._json is None:
            self._json = _to_json(self.frame)
        return self._json

    def __repr__(self) -> str:
        return f"EncodedFrame(t={self.frame.get('t')!r})"

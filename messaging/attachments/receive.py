"""An upload's body streamed to a file: raw, or multipart with the file in the field `file`.

The body is never held whole in memory: each chunk is written as it arrives, counted, and the
reading stops with a `Refused` the moment the count passes the limit, or as soon as the first
bytes show that the file cannot be of an accepted type. A multipart body is parsed by
python-multipart's streaming parser with bounds on parts, headers per part and header size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from messaging.attachments import policy
from messaging.attachments.inspect import Refused
from messaging.attachments.policy import Limits

# Bytes of the file kept aside for sniffing the type.
HEAD_BYTES = 64


@dataclass
class Received:
    """What arrived: the file's size, its first bytes, and the name the client gave."""

    size: int = 0
    head: bytes = b""
    name: str | None = None


class _Sink:
    """Writes the file's bytes, counting them against the limit and sniffing the first ones."""

    def __init__(self, out: BinaryIO, limits: Limits, received: Received) -> None:
        self._out = out
        self._limits = limits
        self._received = received

    def write(self, data: bytes) -> None:
        r = self._received
        r.size += len(data)
        if r.size > self._limits.max_bytes:
            raise Refused(policy.TOO_LARGE)
        if len(r.head) < HEAD_BYTES:
            r.head += data[: HEAD_BYTES - len(r.head)]
            refusal = policy.sniff_refusal(r.head, complete=False)
            if refusal is not None:
                raise Refused(refusal)
        # A write of one chunk to a local temporary file lands in the page cache at once.
        self._out.write(data)


async def receive_raw(
    chunks: AsyncIterator[bytes], out: BinaryIO, limits: Limits, name: str | None
) -> Received:
    received = Received(name=name)
    sink = _Sink(out, limits, received)
    async for chunk in chunks:
        if chunk:
            sink.write(chunk)
    return received


def multipart_boundary(content_type: str | None) -> bytes | None:
    """The boundary of a `multipart/form-data` Content-Type, or None for a raw upload."""
    ctype, options = parse_options_header(content_type)
    if ctype != b"multipart/form-data":
        return None
    return options.get(b"boundary", b"")


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    field_name: bytearray = field(default_factory=bytearray)
    value: bytearray = field(default_factory=bytearray)
    is_file: bool = False


class _MultipartState:
    """The parser's callbacks: only the first part named `file` is written out."""

    def __init__(self, sink: _Sink, limits: Limits, received: Received) -> None:
        self.sink = sink
        self.limits = limits
        self.received = received
        self.parts = 0
        self.part = _Part()
        self.file_seen = False
        self.ended = False

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.limits.multipart_max_parts:
            raise Refused(policy.MALFORMED)
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.part.field_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.part.value += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers[bytes(self.part.field_name).lower()] = bytes(self.part.value)
        self.part.field_name.clear()
        self.part.value.clear()

    def on_headers_finished(self) -> None:
        disposition = self.part.headers.get(b"content-disposition", b"").decode("latin-1")
        kind, options = parse_options_header(disposition)
        if kind != b"form-data" or options.get(b"name") != b"file":
            return
        if self.file_seen:
            raise Refused(policy.MALFORMED)
        self.file_seen = self.part.is_file = True
        filename = options.get(b"filename")
        if filename is not None:
            self.received.name = filename.decode("utf-8", errors="replace")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part.is_file:
            self.sink.write(data[start:end])

    def on_end(self) -> None:
        self.ended = True


async def receive_multipart(
    chunks: AsyncIterator[bytes], boundary: bytes, out: BinaryIO, limits: Limits
) -> Received:
    if not boundary or len(boundary) > 70:  # RFC 2046: 1 to 70 characters
        raise Refused(policy.MALFORMED)
    received = Received()
    state = _MultipartState(_Sink(out, limits, received), limits, received)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": state.on_part_begin,
            "on_header_field": state.on_header_field,
            "on_header_value": state.on_header_value,
            "on_header_end": state.on_header_end,
            "on_headers_finished": state.on_headers_finished,
            "on_part_data": state.on_part_data,
            "on_end": state.on_end,
        },
        max_header_count=limits.multipart_max_headers,
        max_header_size=limits.multipart_max_header_bytes,
    )
    total = 0
    body_limit = policy.body_limit(True, limits)
    try:
        async for chunk in chunks:
            total += len(chunk)
            if total > body_limit:
                raise Refused(policy.TOO_LARGE)
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError:
        raise Refused(policy.MALFORMED) from None
    if not state.ended:
        raise Refused(policy.MALFORMED)
    if not state.file_seen:
        raise Refused(policy.NO_FILE)
    return received

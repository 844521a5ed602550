"""Local fan-out: from the broker to the sockets of this process.

A published message is an envelope `[origin, kind, conv, seq, payload]`: `origin` is the
connection whose request caused it (it gets an `ok` instead), `payload` the frame already encoded
in msgpack once by the publisher. Each socket takes it without waiting: its outbox is bounded and
a socket that cannot keep up is closed as a slow consumer, so one slow client never slows
another or the process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import msgpack
import structlog

from messaging.bus.base import Bus, user_channel
from messaging.errors import CloseCode
from messaging.protocol.codec import EncodedFrame

log = structlog.get_logger(__name__)

FRAME = 0
CLOSE = 1


class Socket(Protocol):
    conn_id: str
    user_id: str

    def deliver(self, frame: EncodedFrame, conv: str | None, seq: int | None) -> None: ...

    def close_soon(self, code: CloseCode) -> None: ...


def envelope(origin: str | None, frame: Mapping[str, Any]) -> bytes:
    """Encode a frame once for every recipient of it."""
    payload = EncodedFrame(frame).msgpack()
    packed: bytes = msgpack.packb(
        [origin or "", FRAME, frame.get("conv"), frame.get("seq"), payload], use_bin_type=True
    )
    return packed


def close_envelope(code: CloseCode) -> bytes:
    packed: bytes = msgpack.packb(["", CLOSE, None, None, int(code)], use_bin_type=True)
    return packed


class Hub:
    def __init__(self) -> None:
        self._sockets: dict[str, set[Socket]] = {}
        self.bus: Bus | None = None

    @property
    def connections(self) -> int:
        return sum(len(s) for s in self._sockets.values())

    def sockets(self) -> Iterable[Socket]:
        for group in self._sockets.values():
            yield from group

    async def attach(self, sock: Socket) -> None:
        """Register a socket; its user's channel is subscribed before this returns."""
        group = self._sockets.setdefault(sock.user_id, set())
        group.add(sock)
        if len(group) == 1:
            assert self.bus is not None
            await self.bus.subscribe(user_channel(sock.user_id))

    async def detach(self, sock: Socket) -> None:
        group = self._sockets.get(sock.user_id)
        if group is None:
            return
        group.discard(sock)
        if not group:
            del self._sockets[sock.user_id]
            assert self.bus is not None
            await self.bus.unsubscribe(user_channel(sock.user_id))

    def on_message(self, channel: str, data: bytes) -> None:
        """Called by the bus for each message on a subscribed channel."""
        if not channel.startswith("u:"):
            return
        group = self._sockets.get(channel[2:])
        if not group:
            return
        try:
            origin, kind, conv, seq, payload = msgpack.unpackb(data, raw=False)
        except (ValueError, TypeError, msgpack.UnpackException):
            log.error("bus_envelope_invalid", channel_kind="user")
            return
        if kind == CLOSE:
            for sock in list(group):
                sock.close_soon(CloseCode(payload))
            return
        frame = EncodedFrame.from_msgpack(payload)
        for sock in list(group):
            if sock.conn_id != origin:
                sock.deliver(frame, conv, seq)

    def deliver_local(self, frame: Mapping[str, Any]) -> None:
        """Send a frame to every socket of this process (used for `resync`)."""
        encoded = EncodedFrame(frame)
        for sock in list(self.sockets()):
            sock.deliver(encoded, None, None)

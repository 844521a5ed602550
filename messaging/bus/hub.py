"""Local fan-out: from the broker to the sockets of this process.

A published message is an envelope `[origin, kind, conv, seq, payload]`: `origin` is the
connection whose request caused it (it gets an `ok` instead), `payload` the frame already encoded
in msgpack once by the publisher. Each socket takes it without waiting: its outbox is bounded and
a socket that cannot keep up is closed as a slow consumer, so one slow client never slows
another or the process.

Two ways to reach users: one user's channel (`u:ID`: every gateway holding one of their sockets
subscribes), and, for events with many recipients (a bulk send to a whole school), the fan-out
channel that every gateway subscribes to, whose envelope carries the recipients' ids as a sixth
element: one publish per language instead of one per recipient, each gateway picking its own
sockets. `TRACKED` frames also report each socket they reach (a bulk send's "delivered").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import msgpack
import structlog

from messaging.bus.base import Bus, user_channel
from messaging.errors import CloseCode
from messaging.protocol.codec import EncodedFrame

log = structlog.get_logger(__name__)

FRAME = 0
CLOSE = 1
TRACKED = 2

FANOUT_CHANNEL = "fanout"
# from this many recipients on, an event goes through the fan-out channel
FANOUT_MIN_RECIPIENTS = 32


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


def tracked_envelope(origin: str | None, frame: Mapping[str, Any]) -> bytes:
    """Like `envelope`, for a frame whose delivery to each socket is recorded."""
    payload = EncodedFrame(frame).msgpack()
    packed: bytes = msgpack.packb(
        [origin or "", TRACKED, frame.get("conv"), frame.get("seq"), payload], use_bin_type=True
    )
    return packed


def fanout_envelope(
    origin: str | None, frame: Mapping[str, Any], recipients: list[str], *, tracked: bool
) -> bytes:
    """One message for every gateway: the frame, and whom to give it to."""
    payload = EncodedFrame(frame).msgpack()
    packed: bytes = msgpack.packb(
        [
            origin or "",
            TRACKED if tracked else FRAME,
            frame.get("conv"),
            frame.get("seq"),
            payload,
            recipients,
        ],
        use_bin_type=True,
    )
    return packed


def close_envelope(code: CloseCode) -> bytes:
    packed: bytes = msgpack.packb(["", CLOSE, None, None, int(code)], use_bin_type=True)
    return packed


OnDelivered = Callable[[str, str], None]


class Hub:
    def __init__(self) -> None:
        self._sockets: dict[str, set[Socket]] = {}
        self.bus: Bus | None = None
        # called with (conv, user) for each socket a TRACKED frame reaches
        self.on_delivered: OnDelivered | None = None

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
        if channel == FANOUT_CHANNEL:
            self._fan_out(data)
            return
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
                if kind == TRACKED and self.on_delivered is not None:
                    self.on_delivered(conv, sock.user_id)

    def _fan_out(self, data: bytes) -> None:
        try:
            origin, kind, conv, seq, payload, recipients = msgpack.unpackb(data, raw=False)
        except (ValueError, TypeError, msgpack.UnpackException):
            log.error("bus_envelope_invalid", channel_kind="fanout")
            return
        frame = EncodedFrame.from_msgpack(payload)
        sockets = self._sockets
        for user in recipients:
            group = sockets.get(user)
            if not group:
                continue
            for sock in list(group):
                if sock.conn_id != origin:
                    sock.deliver(frame, conv, seq)
            if kind == TRACKED and self.on_delivered is not None:
                self.on_delivered(conv, user)

    def deliver_local(self, frame: Mapping[str, Any]) -> None:
        """Send a frame to every socket of this process (used for `resync`)."""
        encoded = EncodedFrame(frame)
        for sock in list(self.sockets()):
            sock.deliver(encoded, None, None)

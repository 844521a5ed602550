"""A lean WebSocket client (RFC 6455) for load generation, as an asyncio Protocol.

The load generator shares the machine's cores with the servers it measures, so its cost per
frame matters: this client parses frames straight in `data_received` and hands every message to
a callback, with no task, queue or future per connection or per message. It speaks only what
the bench needs: one subprotocol, no extensions (no compression), unfragmented messages out,
pings answered, the close handshake. Client frames are masked as the RFC requires (with the
C `apply_mask` of the websockets package).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
from collections.abc import Callable

from websockets.speedups import apply_mask

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_HANDSHAKE = 16 * 1024

OnMessage = Callable[["WsClient", bytes, bool], None]  # (client, payload, is_binary)


class HandshakeError(Exception):
    pass


def _frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
    mask = random.randbytes(4)
    return header + mask + apply_mask(payload, mask)


class WsClient(asyncio.Protocol):
    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        subprotocol: str | None,
        on_message: OnMessage,
        on_close: Callable[[WsClient], None] | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.host, self.port, self.path = host, port, path
        self.subprotocol = subprotocol
        self.on_message = on_message
        self.on_close = on_close
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.close_code: int | None = None
        self.transport: asyncio.Transport | None = None
        self._key = base64.b64encode(os.urandom(16))
        self._buf = bytearray()
        self._open = False
        self._fragments: list[bytes] = []
        self._fragment_binary = False
        self.user: str = ""  # free for the caller
        self.data: object = None  # free for the caller

    # asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check here
        self.transport = transport  # type: ignore[assignment]
        lines = [
            f"GET {self.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self._key.decode()}",
            "Sec-WebSocket-Version: 13",
        ]
        if self.subprotocol:
            lines.append(f"Sec-WebSocket-Protocol: {self.subprotocol}")
        self._write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._open:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > MAX_HANDSHAKE:
                    self._fail(HandshakeError("handshake response too large"))
                return
            head = bytes(self._buf[:end]).decode("latin-1")
            del self._buf[: end + 4]
            problem = self._check_handshake(head)
            if problem is not None:
                self._fail(HandshakeError(problem))
                return
            self._open = True
            if not self.opened.done():
                self.opened.set_result(None)
        self._parse()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("connection closed during handshake"))
        if not self.closed.done():
            self.closed.set_result(None)
        if self.on_close is not None:
            self.on_close(self)

    # Frames -------------------------------------------------------------------------------------

    def _check_handshake(self, head: str) -> str | None:
        status, *header_lines = head.split("\r\n")
        if not status.startswith("HTTP/1.1 101"):
            return f"handshake refused: {status}"
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1(self._key + _GUID).digest()).decode()  # noqa: S324
        if headers.get("sec-websocket-accept") != accept:
            return "bad Sec-WebSocket-Accept"
        if self.subprotocol and headers.get("sec-websocket-protocol") != self.subprotocol:
            return f"subprotocol not selected: {headers.get('sec-websocket-protocol')!r}"
        if headers.get("sec-websocket-extensions"):
            return "unexpected extension"
        return None

    def _parse(self) -> None:
        buf = self._buf
        size = len(buf)
        pos = 0
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                header = 10
            if b1 & 0x80:  # a server never masks
                self._fail(HandshakeError("masked frame from the server"))
                return
            end = pos + header + length
            if end > size:
                break
            payload = bytes(buf[pos + header : end])
            pos = end
            self._frame(b0 & 0x80, b0 & 0x0F, payload)
            if self.transport is None or self.transport.is_closing():
                break
        del buf[:pos]

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode == OP_BINARY or opcode == OP_TEXT:
            if fin:
                self.on_message(self, payload, opcode == OP_BINARY)
            else:
                self._fragments = [payload]
                self._fragment_binary = opcode == OP_BINARY
        elif opcode == OP_CONT:
            self._fragments.append(payload)
            if fin:
                message, self._fragments = b"".join(self._fragments), []
                self.on_message(self, message, self._fragment_binary)
        elif opcode == OP_PING:
            self._write(_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self._write(_frame(OP_CLOSE, payload[:2]))
            if self.transport is not None:
                self.transport.close()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    # API ------------------------------------------------------------------------------------------

    def send_binary(self, payload: bytes) -> None:
        self._write(_frame(OP_BINARY, payload))

    def send_text(self, text: str) -> None:
        self._write(_frame(OP_TEXT, text.encode()))

    def send_text_bytes(self, data: bytes) -> None:
        """A text frame whose UTF-8 bytes are already encoded (orjson's output)."""
        self._write(_frame(OP_TEXT, data))

    def abort(self) -> None:
        """Drop the connection without a close handshake, as a lost network would."""
        if self.transport is not None:
            self.transport.abort()

    async def close(self, code: int = 1000, timeout: float = 5.0) -> None:
        """Close handshake: send a close frame, wait for the server to close the TCP
        connection, abort after `timeout`."""
        if self.transport is None or self.closed.done():
            return
        self._write(_frame(OP_CLOSE, code.to_bytes(2, "big")))
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            self.transport.abort()


async def connect(
    host: str,
    port: int,
    path: str,
    subprotocol: str | None,
    on_message: OnMessage,
    *,
    on_close: Callable[[WsClient], None] | None = None,
    timeout: float = 30.0,
) -> WsClient:
    loop = asyncio.get_running_loop()
    _, client = await asyncio.wait_for(
        loop.create_connection(
            lambda: WsClient(host, port, path, subprotocol, on_message, on_close), host, port
        ),
        timeout,
    )
    try:
        await asyncio.wait_for(asyncio.shield(client.opened), timeout)
    except BaseException:
        if client.transport is not None:
            client.transport.abort()
        raise
    return client

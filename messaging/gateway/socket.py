"""One WebSocket connection: handshake, `hello`, the reader loop, a bounded outbox, the close.

The close code is decided in one place (`close_soon` records the first reason; `serve` sends
it). The reader runs in the ASGI handler's own task and a writer task exists only while the
outbox holds frames, so an idle connection costs one task and a few objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from typing import Any

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from messaging.domain.models import Person
from messaging.errors import CloseCode, ErrorCode, MessagingError, ProtocolViolation
from messaging.gateway import session
from messaging.gateway.auth import bearer_token
from messaging.gateway.services import Services
from messaging.i18n import text
from messaging.protocol import frames
from messaging.protocol.codec import (
    SUBPROTOCOLS,
    EncodedFrame,
    Encoding,
    decode,
    select_subprotocol,
)
from messaging.protocol.ratelimit import FrameLimiter, TokenBucket, Verdict
from messaging.store.pool import translated_errors
from messaging.store.roster import load_person

log = structlog.get_logger(__name__)

_ids = itertools.count(1)
# how long a closing connection may wait for a stalled client to take its close frame
CLOSE_WAIT_S = 5.0


async def endpoint(websocket: WebSocket) -> None:
    """The `/ws` route."""
    svc: Services = websocket.app.state.services
    origin = websocket.headers.get("origin")
    if not svc.settings.origin_allowed(origin, _own_origins(websocket)):
        log.info("ws_origin_refused")
        await websocket.close(code=CloseCode.POLICY)  # before accept: HTTP 403
        return
    subprotocol = select_subprotocol(websocket.scope.get("subprotocols", []))
    encoding = SUBPROTOCOLS.get(subprotocol or "", Encoding.JSON)
    await websocket.accept(subprotocol=subprotocol)
    if svc.draining:  # reconnect elsewhere
        await websocket.close(code=CloseCode.RESTART)
        return
    conn = Connection(websocket, encoding, svc)
    with structlog.contextvars.bound_contextvars(conn_id=conn.conn_id):
        await conn.serve()


def _own_origins(websocket: WebSocket) -> frozenset[str]:
    host = websocket.headers.get("host", "")
    return frozenset({f"http://{host}", f"https://{host}"})


class Connection:
    # Slots and containers made on first use: an idle connection should cost almost nothing
    # beyond its socket (loadtests/idle.py measures it against a bare Starlette server).
    __slots__ = (
        "_close_code",
        "_closing",
        "_held",
        "_limiter",
        "_outbox",
        "_outbox_max",
        "_task",
        "_waiters",
        "_writer",
        "conn_id",
        "encoding",
        "inflight",
        "svc",
        "user",
        "user_id",
        "ws",
    )

    def __init__(self, ws: WebSocket, encoding: Encoding, svc: Services) -> None:
        self.ws = ws
        self.encoding = encoding
        self.svc = svc
        self.conn_id = f"{svc.gateway_id}:{next(_ids)}"
        self.user_id = ""
        self.user: Person | None = None
        limits = svc.settings.limits
        self._outbox: deque[EncodedFrame] | None = None
        self._outbox_max = limits.outbox_frames
        self._writer: asyncio.Task[None] | None = None
        self._task: asyncio.Task[Any] | None = None
        self._close_code: CloseCode | None = None
        self._closing = False
        # while `ready` is being prepared, live events wait here, then those not already
        # covered by the snapshot are sent after it
        self._held: list[tuple[EncodedFrame, str | None, int | None]] | None = None
        self._limiter = FrameLimiter(TokenBucket(limits.frames_per_s, limits.frames_burst))
        self.inflight = asyncio.Semaphore(limits.inflight_sends)
        # sends queued for commit, answered by a callback when their commit is done
        self._waiters: set[asyncio.Future[Any]] | None = None

    def track(self, fut: asyncio.Future[Any]) -> None:
        if self._waiters is None:
            self._waiters = set()
        self._waiters.add(fut)

    def untrack(self, fut: asyncio.Future[Any]) -> None:
        if self._waiters is not None:
            self._waiters.discard(fut)

    # Delivery (called by the hub and by request handlers, never blocks) --------------------------

    def deliver(self, frame: EncodedFrame, conv: str | None, seq: int | None) -> None:
        # Closing, what is queued is still written (replies to committed sends, say); not to a
        # slow consumer, and nothing once the close frame is on its way.
        if self._closing or self._close_code is CloseCode.SLOW_CONSUMER:
            return
        if self._held is not None:
            self._held.append((frame, conv, seq))
            if len(self._held) > self._outbox_max:
                self.close_soon(CloseCode.SLOW_CONSUMER)
            return
        self._enqueue(frame)

    def send_frame(self, frame: dict[str, Any]) -> None:
        self.deliver(EncodedFrame(frame), None, None)

    def _enqueue(self, frame: EncodedFrame) -> None:
        if self._outbox is None:
            self._outbox = deque()
        elif len(self._outbox) >= self._outbox_max:
            self.svc.metrics.slow_consumers.inc()
            self.close_soon(CloseCode.SLOW_CONSUMER)
            return
        self._outbox.append(frame)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        try:
            while self._outbox:
                frame = self._outbox.popleft()
                data = frame.get(self.encoding)
                if isinstance(data, bytes):
                    await self.ws.send_bytes(data)
                else:
                    await self.ws.send_text(data)
                self.svc.metrics.frames_out.inc()
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.close_soon(CloseCode.NORMAL)
        except ValueError:  # a bus payload that does not decode: a bug, never the client's
            log.exception("ws_frame_undeliverable")
            self.close_soon(CloseCode.INTERNAL)
        finally:
            self._writer = None

    def close_soon(self, code: CloseCode) -> None:
        """Record why the connection ends (the first reason wins) and stop its reader."""
        if self._close_code is not None:
            return
        self._close_code = code
        if code not in (CloseCode.NORMAL,):
            self.svc.metrics.closes.labels(code=str(int(code))).inc()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    # The connection's life ------------------------------------------------------------------------

    async def serve(self) -> None:
        self._task = asyncio.current_task()
        try:
            await self._run()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._close_code is None or task is None:
                raise
            task.uncancel()
        except ProtocolViolation as exc:
            log.info("ws_protocol_violation", close_code=int(exc.close_code), reason=exc.reason)
            self.close_soon(exc.close_code)
        except MessagingError as exc:
            log.warning("ws_setup_failed", code=exc.code.value)
            self.close_soon(
                CloseCode.OVERLOADED if exc.code is ErrorCode.UNAVAILABLE else CloseCode.INTERNAL
            )
        await self._settle_sends()
        await self._close()

    async def _settle_sends(self) -> None:
        """Sends already queued for commit are answered before the close (a drain, a kick), so
        that nothing stored goes unacknowledged; unless the client is gone or not reading."""
        waiters = list(self._waiters or ())
        if waiters and self._close_code not in (CloseCode.NORMAL, CloseCode.SLOW_CONSUMER):
            await asyncio.wait(waiters, timeout=CLOSE_WAIT_S)
        for waiter in waiters:
            waiter.cancel()

    async def _run(self) -> None:
        hello = await self._hello()
        if hello is None:
            return
        person, resume = hello
        self.user, self.user_id = person, person.id
        structlog.contextvars.bind_contextvars(user_id=person.id)
        self._held = []
        await self.svc.hub.attach(self)
        self.svc.metrics.connections.inc()
        try:
            await self._ready(resume)
            await self._read_loop()
        finally:
            self.svc.metrics.connections.dec()
            await self.svc.hub.detach(self)

    async def _close(self) -> None:
        """Send what is queued (but to a slow consumer), then the close frame, both bounded."""
        code = self._close_code or CloseCode.NORMAL
        if self._writer is not None and code == CloseCode.SLOW_CONSUMER:
            self._writer.cancel()
        elif self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._writer), CLOSE_WAIT_S)
        if self.ws.application_state == WebSocketState.CONNECTED and (
            self.ws.client_state == WebSocketState.CONNECTED
        ):
            self._closing = True
            try:  # bounded by the server's protocol, which aborts a peer that reads nothing
                await asyncio.wait_for(self.ws.close(code=int(code)), 2 * CLOSE_WAIT_S)
            except (TimeoutError, RuntimeError, OSError, WebSocketDisconnect):
                log.info("ws_peer_gone")
        log.info("ws_closed", close_code=int(code))

    async def _receive(self) -> dict[str, Any]:
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            self._close_code = self._close_code or CloseCode.NORMAL
            raise WebSocketDisconnect(message.get("code", 1000))
        data = message.get("bytes")
        if data is None:
            data = message.get("text", "")
        return decode(data, self.encoding)

    async def _hello(self) -> tuple[Person, dict[str, int]] | None:
        timeouts = self.svc.settings.timeouts
        try:
            raw = await asyncio.wait_for(self._receive(), timeouts.hello_s)
            hello = frames.parse(raw)
        except TimeoutError:
            self.close_soon(CloseCode.UNAUTHENTICATED)
            return None
        except WebSocketDisconnect:
            return None
        except MessagingError as exc:
            self._send_error(getattr(exc, "request_id", None), exc)
            self.close_soon(CloseCode.UNAUTHENTICATED)
            return None
        if not isinstance(hello, frames.Hello):
            self._send_error(None, MessagingError(ErrorCode.UNAUTHENTICATED, "hello_expected"))
            self.close_soon(CloseCode.UNAUTHENTICATED)
            return None
        token = hello.token or bearer_token(self.ws.headers.get("authorization"))
        try:
            if token is None:
                raise MessagingError(ErrorCode.UNAUTHENTICATED, "token_missing")
            claims = self.svc.verifier.verify(token)
        except MessagingError as exc:
            log.info("ws_auth_refused", reason=exc.reason)
            self._send_error(None, exc)
            self.close_soon(CloseCode.UNAUTHENTICATED)
            return None
        async with translated_errors(), self.svc.pool.acquire() as db:
            person = await load_person(db, claims.sub)
        if person is None or not person.active:
            log.info("ws_account_refused", user_id=claims.sub)
            self.close_soon(CloseCode.REVOKED)
            return None
        return person, hello.resume_map()

    async def _ready(self, resume: dict[str, int]) -> None:
        assert self.user is not None
        ready_frame, events, covered = await session.ready(self, resume)
        held = self._held or []
        self._held = None
        self.send_frame(ready_frame)
        for ev in events:
            self.send_frame(ev)
        for frame, conv, seq in held:
            if conv is not None and seq is not None and seq <= covered.get(conv, 0):
                continue
            self._enqueue(frame)

    async def _read_loop(self) -> None:
        while True:
            decode_error: MessagingError | None = None
            try:
                raw = await self._receive()
            except WebSocketDisconnect:
                return
            except MessagingError as exc:  # undecodable frame: answered, connection kept
                raw, decode_error = {}, exc
            request_id = (
                frames.request_id_of(raw)
                if decode_error is None
                else getattr(decode_error, "request_id", None)
            )
            if not self._admitted():
                if self._close_code is not None:
                    return
                self._send_error(request_id, MessagingError(ErrorCode.RATE_LIMITED))
                continue
            if decode_error is not None:
                self.svc.metrics.frames_in.labels(type="undecodable").inc()
                self._send_error(request_id, decode_error)
                continue
            try:
                frame = frames.parse(raw)
                self.svc.metrics.frames_in.labels(type=type(frame).__name__.lower()).inc()
                await session.dispatch(self, frame)
            except MessagingError as exc:
                rid = getattr(exc, "request_id", None)
                self._send_error(request_id if rid is None else rid, exc)

    def _admitted(self) -> bool:
        """Flood control: over the rate, a frame is refused; a sustained flood closes 4029."""
        verdict = self._limiter.admit(time.monotonic())
        if verdict is Verdict.CLOSE:
            self.close_soon(CloseCode.RATE_LIMITED)
        return verdict is Verdict.ACCEPT

    def _send_error(self, request_id: int | None, exc: MessagingError) -> None:
        locale = self.user.locale if self.user is not None else "fr"
        self.svc.metrics.errors.labels(code=exc.code.value).inc()
        self.send_frame(frames.error(request_id, exc.code, text(exc.reason, locale, **exc.params)))

    def reply_error(self, request_id: int | None, exc: MessagingError) -> None:
        self._send_error(request_id, exc)
